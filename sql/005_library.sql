-- 005_library.sql: what the music library needs beyond the core tracks
-- table: tracks without audio (catalogue entries), audio properties and
-- track numbers, where a track came from (upload, import, catalogue), the
-- import's bookkeeping (source path, mtime) for idempotent re-runs, cover
-- art, safe duplicate detection, and keyset indexes for every sort.

-- A catalogue entry has metadata but no audio file yet.
ALTER TABLE tracks ALTER COLUMN file_path DROP NOT NULL;

ALTER TABLE tracks
    ADD COLUMN duration_ms       integer CHECK (duration_ms >= 0),
    ADD COLUMN channels          smallint CHECK (channels BETWEEN 1 AND 64),
    ADD COLUMN track_number      integer CHECK (track_number BETWEEN 0 AND 9999),
    ADD COLUMN source            text NOT NULL DEFAULT 'upload'
                                 CHECK (source IN ('upload', 'import', 'catalog')),
    -- import: the file's own path (the library may reference it in place)
    ADD COLUMN source_path       text CHECK (source_path <> ''),
    ADD COLUMN source_size       bigint CHECK (source_size >= 0),
    ADD COLUMN source_mtime      bigint,
    ADD COLUMN has_cover         boolean NOT NULL DEFAULT false,
    ADD COLUMN original_filename text CHECK (char_length(original_filename) <= 255),
    -- catalogue loads: a stable key so loading the same file twice adds nothing
    ADD COLUMN catalog_key       text CHECK (char_length(catalog_key) = 64);

CREATE UNIQUE INDEX idx_tracks_catalog_key ON tracks (catalog_key)
    WHERE catalog_key IS NOT NULL;
CREATE UNIQUE INDEX idx_tracks_source_path ON tracks (source_path)
    WHERE source_path IS NOT NULL;
-- The same bytes uploaded twice by one user are one track; the index makes
-- two concurrent duplicate uploads collide instead of both landing.
CREATE UNIQUE INDEX idx_tracks_owner_sha256 ON tracks (uploaded_by, content_sha256)
    WHERE uploaded_by IS NOT NULL AND content_sha256 IS NOT NULL;

-- Keyset pagination: (sort key, id) for every sort the API offers (title,
-- artist and created_at have theirs from 002). Nullable columns sort by a
-- coalesced expression so the key is never NULL.
CREATE INDEX idx_tracks_album_key      ON tracks ((coalesce(album, '')), id);
CREATE INDEX idx_tracks_year_key       ON tracks ((coalesce(year, 0)), id);
CREATE INDEX idx_tracks_play_count_key ON tracks (play_count, id);
CREATE INDEX idx_tracks_duration_key   ON tracks (duration, id);
CREATE INDEX idx_tracks_popularity_key ON tracks (popularity, id);
-- Albums and artists pages group by these.
CREATE INDEX idx_tracks_artist_album   ON tracks (artist, album) WHERE is_active;
CREATE INDEX idx_tracks_uploaded_by    ON tracks (uploaded_by, created_at);

-- playback_history keeps plays too short to count; counted says which did.
ALTER TABLE playback_history
    ADD COLUMN counted boolean NOT NULL DEFAULT false;
