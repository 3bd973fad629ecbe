-- 016_media_jobs.sql: what the background jobs learn about a track's audio
-- (fcgi/jobs.c, fcgi/analysis.c): its tempo and loudness, and whether its
-- HLS renditions are ready. The track document shows them.
--
-- analyzed_at is set once the analysis ran, whether or not it found a
-- tempo (a spoken-word track has none), so the hourly sweep does not look
-- at the track again. hls_ready_at is set once <storage>/hls/<id>/ holds
-- the renditions and the master playlist; hls_error keeps why ffmpeg could
-- not make them (the sweep skips such a track; a retry clears it).

ALTER TABLE tracks
    ADD COLUMN bpm           real CHECK (bpm > 0 AND bpm < 1000),
    ADD COLUMN bpm_confidence real CHECK (bpm_confidence >= 0),
    ADD COLUMN loudness_lufs real CHECK (loudness_lufs BETWEEN -120 AND 20),
    ADD COLUMN loudness_range real CHECK (loudness_range >= 0),
    ADD COLUMN peak_dbfs     real CHECK (peak_dbfs <= 20),
    ADD COLUMN analyzed_at   timestamptz,
    ADD COLUMN hls_ready_at  timestamptz,
    ADD COLUMN hls_error     text CHECK (char_length(hls_error) <= 500);

-- What the sweeps look for: few rows, whatever the size of the library.
CREATE INDEX idx_tracks_unanalyzed ON tracks (created_at)
    WHERE analyzed_at IS NULL AND file_path IS NOT NULL;
CREATE INDEX idx_tracks_no_hls ON tracks (created_at)
    WHERE hls_ready_at IS NULL AND hls_error IS NULL AND file_path IS NOT NULL;
-- The orphan sweep asks which of a batch of files some track names.
CREATE INDEX idx_tracks_file_path ON tracks (file_path) WHERE file_path IS NOT NULL;

ALTER TYPE track_doc
    ADD ATTRIBUTE bpm           real,
    ADD ATTRIBUTE loudness_lufs real,
    ADD ATTRIBUTE hls_url       text;

CREATE OR REPLACE FUNCTION track_json(t tracks) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_json(ROW(
        t.id, t.title, t.artist, t.album, t.genre, t.year, t.track_number,
        t.duration, t.duration_ms, t.bitrate, t.sample_rate, t.channels,
        t.mime_type, t.file_size, t.file_path IS NOT NULL, t.has_cover,
        t.popularity, t.play_count, t.uploaded_by, t.source,
        to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        CASE WHEN t.file_path IS NOT NULL
             THEN '/api/music/tracks/' || t.id || '/stream' END,
        CASE WHEN t.has_cover
             THEN '/api/music/tracks/' || t.id || '/cover' END,
        round(t.bpm::numeric, 1)::real,
        round(t.loudness_lufs::numeric, 1)::real,
        CASE WHEN t.hls_ready_at IS NOT NULL AND t.file_path IS NOT NULL
             THEN '/api/music/tracks/' || t.id || '/hls' END
    )::track_doc)
$$;

UPDATE tracks SET api_doc = NULL;	-- the trigger writes it

INSERT INTO system_settings (key, value, description) VALUES
    ('hls_enabled',
     'true',
     'Whether the job runner makes HLS renditions (AAC 64k/128k/256k) of every track with audio.')
ON CONFLICT (key) DO NOTHING;
