-- 002_core.sql
-- Core DJAMMS schema: users, the track library, playlists (+ entries and
-- collaborators), favourites/stars, the scheduler, playback and search
-- history, and system settings. Also the shared set_updated_at() trigger.
--
-- Conventions: UUID keys from gen_random_uuid(); every timestamp is
-- timestamptz defaulting to now(); jsonb columns that hold a document are
-- NOT NULL and must be a JSON object; durations are whole seconds.

-- ---------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------

-- Keeps updated_at current on every UPDATE of a table that has one.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- Normalises text for search: lower-case, accents stripped. unaccent() is only
-- STABLE (its dictionary could change), so it cannot be used in an index or a
-- generated column directly; this wrapper pins the dictionary and is declared
-- IMMUTABLE. Call it on the search input too, so both sides match.
CREATE FUNCTION search_normalize(text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT lower(public.unaccent('public.unaccent'::regdictionary, $1))
$$;

-- ---------------------------------------------------------------------------
-- users
-- ---------------------------------------------------------------------------

CREATE TABLE users (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Checked as text: citext's ~ is case-insensitive and would let Unicode
    -- case variants such as U+212A (Kelvin sign) through the ASCII class.
    username            citext NOT NULL UNIQUE
                        CONSTRAINT users_username_format
                        CHECK (char_length(username::text) BETWEEN 3 AND 50
                               AND username::text ~ '^[A-Za-z0-9_.-]+$'),
    -- NULL for anonymous accounts.
    email               citext UNIQUE
                        CONSTRAINT users_email_format
                        CHECK (char_length(email::text) <= 254
                               AND email::text ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    -- NULL for anonymous accounts (and for accounts that only sign in via an
    -- external identity provider).
    password_hash       text CHECK (password_hash <> ''),
    display_name        text CHECK (char_length(display_name) BETWEEN 1 AND 100),
    role                text NOT NULL DEFAULT 'user'
                        CHECK (role IN ('guest', 'user', 'moderator', 'admin')),
    is_anonymous        boolean NOT NULL DEFAULT false,
    preferences         jsonb NOT NULL DEFAULT '{}'
                        CHECK (jsonb_typeof(preferences) = 'object'),
    storage_used_bytes  bigint NOT NULL DEFAULT 0 CHECK (storage_used_bytes >= 0),
    last_login          timestamptz,
    is_active           boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),

    -- An anonymous account has no credentials and can never hold a privileged
    -- role; upgrading it means setting is_anonymous = false in the same UPDATE
    -- that adds the e-mail / password.
    CONSTRAINT users_anonymous_shape CHECK (
        NOT is_anonymous
        OR (email IS NULL AND password_hash IS NULL AND role IN ('guest', 'user'))
    )
);

-- Purging anonymous accounts after a period of inactivity.
CREATE INDEX idx_users_anonymous_last_seen
    ON users ((coalesce(last_login, created_at)))
    WHERE is_anonymous;

CREATE TRIGGER users_set_updated_at
    BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- ---------------------------------------------------------------------------
-- tracks
-- ---------------------------------------------------------------------------

CREATE TABLE tracks (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title           text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 255),
    artist          text NOT NULL CHECK (char_length(artist) <= 255),
    album           text CHECK (char_length(album) <= 255),
    genre           text CHECK (char_length(genre) <= 100),
    duration        integer NOT NULL CHECK (duration >= 0),        -- seconds
    year            integer CHECK (year BETWEEN 1000 AND 9999),
    bitrate         integer CHECK (bitrate > 0),                   -- kbit/s
    sample_rate     integer CHECK (sample_rate > 0),               -- Hz
    file_size       bigint CHECK (file_size >= 0),                 -- bytes
    file_path       text NOT NULL CHECK (file_path <> ''),
    mime_type       text CHECK (mime_type ~ '^[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+$'),
    -- Lower-case hex SHA-256 of the audio file, for duplicate-upload detection.
    content_sha256  text CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    uploaded_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    thumbnail_url   text,
    audio_url       text,
    popularity      integer NOT NULL DEFAULT 0 CHECK (popularity BETWEEN 0 AND 100),
    play_count      bigint NOT NULL DEFAULT 0 CHECK (play_count >= 0),
    metadata        jsonb NOT NULL DEFAULT '{}'
                    CHECK (jsonb_typeof(metadata) = 'object'),
    -- Derived, do not write: normalised title/artist/album/genre for trigram
    -- search. Query with e.g.
    --   WHERE search_text LIKE '%' || search_normalize($1) || '%'
    --   WHERE search_text % search_normalize($1)
    search_text     text GENERATED ALWAYS AS (
                        search_normalize(title || ' ' || artist || ' '
                                         || coalesce(album, '') || ' '
                                         || coalesce(genre, ''))
                    ) STORED,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    is_active       boolean NOT NULL DEFAULT true
);

-- The notes' single-column title/artist indexes are widened with id so they
-- also serve keyset pagination; a separate (title) index would be redundant.
CREATE INDEX idx_tracks_title      ON tracks (title, id);
CREATE INDEX idx_tracks_artist     ON tracks (artist, id);
CREATE INDEX idx_tracks_genre      ON tracks (genre);
CREATE INDEX idx_tracks_popularity ON tracks (popularity DESC, id);
CREATE INDEX idx_tracks_metadata   ON tracks USING gin (metadata);
CREATE INDEX idx_tracks_created    ON tracks (created_at, id);
-- Duplicate detection per uploader; also serves the uploaded_by FK.
CREATE INDEX idx_tracks_uploader_sha256 ON tracks (uploaded_by, content_sha256);
CREATE INDEX idx_tracks_search_trgm ON tracks USING gin (search_text gin_trgm_ops);

CREATE TRIGGER tracks_set_updated_at
    BEFORE UPDATE ON tracks
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- ---------------------------------------------------------------------------
-- playlists
-- ---------------------------------------------------------------------------

CREATE TABLE playlists (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 255),
    description     text,
    owner_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source          text NOT NULL DEFAULT 'local'
                    CHECK (source IN ('local', 'spotify', 'import')),
    external_id     text,              -- e.g. the Spotify playlist ID
    external_url    text,
    thumbnail_url   text,
    is_public       boolean NOT NULL DEFAULT false,
    -- Denormalised from playlist_tracks; maintained by the application.
    track_count     integer NOT NULL DEFAULT 0 CHECK (track_count >= 0),
    total_duration  integer NOT NULL DEFAULT 0 CHECK (total_duration >= 0), -- seconds
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    is_active       boolean NOT NULL DEFAULT true
);

CREATE INDEX idx_playlists_owner_created ON playlists (owner_id, created_at, id);
CREATE INDEX idx_playlists_public ON playlists (created_at, id) WHERE is_public;
CREATE INDEX idx_playlists_external ON playlists (source, external_id)
    WHERE external_id IS NOT NULL;

CREATE TRIGGER playlists_set_updated_at
    BEFORE UPDATE ON playlists
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- ---------------------------------------------------------------------------
-- playlist_tracks
-- ---------------------------------------------------------------------------

-- A track may appear in a playlist more than once, so entries are identified
-- by id / (playlist_id, position), not by (playlist_id, track_id).
CREATE TABLE playlist_tracks (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    playlist_id  uuid NOT NULL REFERENCES playlists (id) ON DELETE CASCADE,
    track_id     uuid NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    position     integer NOT NULL CHECK (position >= 0),
    added_at     timestamptz NOT NULL DEFAULT now(),
    added_by     uuid REFERENCES users (id) ON DELETE SET NULL,

    -- Deferred so a reorder can shuffle positions freely and is only checked
    -- at COMMIT. Being deferrable, it cannot be an ON CONFLICT arbiter. Its
    -- index also serves ordered reads, replacing the notes' (playlist_id,
    -- position) index.
    CONSTRAINT playlist_tracks_position_key UNIQUE (playlist_id, position)
        DEFERRABLE INITIALLY DEFERRED
);

CREATE INDEX idx_playlist_tracks_track ON playlist_tracks (track_id);
CREATE INDEX idx_playlist_tracks_added_by ON playlist_tracks (added_by)
    WHERE added_by IS NOT NULL;

-- ---------------------------------------------------------------------------
-- playlist_collaborators
-- ---------------------------------------------------------------------------

CREATE TABLE playlist_collaborators (
    playlist_id  uuid NOT NULL REFERENCES playlists (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         text NOT NULL DEFAULT 'viewer' CHECK (role IN ('editor', 'viewer')),
    added_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (playlist_id, user_id)
);

-- "Playlists shared with me".
CREATE INDEX idx_playlist_collaborators_user ON playlist_collaborators (user_id);

-- ---------------------------------------------------------------------------
-- user_favorites
-- ---------------------------------------------------------------------------

CREATE TABLE user_favorites (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    track_id    uuid NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX idx_user_favorites_unique ON user_favorites (user_id, track_id);
CREATE INDEX idx_user_favorites_user_created ON user_favorites (user_id, created_at DESC);
CREATE INDEX idx_user_favorites_track ON user_favorites (track_id);

-- ---------------------------------------------------------------------------
-- starred_playlists
-- ---------------------------------------------------------------------------

CREATE TABLE starred_playlists (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    playlist_id  uuid NOT NULL REFERENCES playlists (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX idx_starred_playlists_unique ON starred_playlists (user_id, playlist_id);
CREATE INDEX idx_starred_playlists_user_created ON starred_playlists (user_id, created_at DESC);
CREATE INDEX idx_starred_playlists_playlist ON starred_playlists (playlist_id);

-- ---------------------------------------------------------------------------
-- schedule_entries
-- ---------------------------------------------------------------------------

CREATE TABLE schedule_entries (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title         text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 255),
    -- NULL once the playlist is deleted; the scheduler then uses the
    -- fallback playlist (system setting fallback_playlist_id).
    playlist_id   uuid REFERENCES playlists (id) ON DELETE SET NULL,
    -- The notes' single day_of_week became a set of days, so one entry can
    -- cover e.g. every weekday.
    days_of_week  text[] NOT NULL
                  CONSTRAINT schedule_entries_days_of_week_valid CHECK (
                      cardinality(days_of_week) > 0
                      AND array_ndims(days_of_week) = 1
                      AND days_of_week <@ ARRAY['monday', 'tuesday', 'wednesday',
                                                'thursday', 'friday', 'saturday',
                                                'sunday']::text[]
                  ),
    -- Local times in "timezone". end_time <= start_time means the slot runs
    -- past midnight into the next day; end_time may be '24:00'.
    start_time    time NOT NULL CHECK (start_time < time '24:00'),
    end_time      time NOT NULL,
    -- IANA zone name, validated against pg_timezone_names by trigger below.
    timezone      text NOT NULL DEFAULT 'UTC',
    -- Higher wins when active entries overlap.
    priority      integer NOT NULL DEFAULT 0,
    -- Fixed seed for a reproducible shuffle; NULL = play in playlist order.
    shuffle_seed  bigint,
    -- Optional date range (in "timezone") during which the entry applies.
    first_date    date,
    last_date     date,
    is_active     boolean NOT NULL DEFAULT true,
    created_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT schedule_entries_date_range CHECK (last_date >= first_date)
);

CREATE INDEX idx_schedule_entries_active ON schedule_entries (start_time)
    WHERE is_active;
CREATE INDEX idx_schedule_entries_days ON schedule_entries USING gin (days_of_week);
CREATE INDEX idx_schedule_entries_playlist ON schedule_entries (playlist_id);

-- A CHECK constraint cannot consult pg_timezone_names, so validate in a
-- trigger. An unknown zone would otherwise only fail when the scheduler runs.
-- Raised as check_violation so callers can treat it like the other checks.
CREATE FUNCTION schedule_entries_validate_timezone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names
                   WHERE name = NEW.timezone) THEN
        RAISE EXCEPTION 'unknown time zone "%"', NEW.timezone
            USING ERRCODE = 'check_violation',
                  TABLE = 'schedule_entries',
                  COLUMN = 'timezone',
                  CONSTRAINT = 'schedule_entries_timezone_valid';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER schedule_entries_validate_timezone
    BEFORE INSERT OR UPDATE OF timezone ON schedule_entries
    FOR EACH ROW EXECUTE FUNCTION schedule_entries_validate_timezone();

CREATE TRIGGER schedule_entries_set_updated_at
    BEFORE UPDATE ON schedule_entries
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- ---------------------------------------------------------------------------
-- playback_history
-- ---------------------------------------------------------------------------

CREATE TABLE playback_history (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- NULL for playback not tied to a user (e.g. the scheduler).
    user_id          uuid REFERENCES users (id) ON DELETE CASCADE,
    track_id         uuid REFERENCES tracks (id) ON DELETE SET NULL,
    played_at        timestamptz NOT NULL DEFAULT now(),
    duration_played  integer CHECK (duration_played >= 0),  -- seconds
    source           text CHECK (source IN ('queue', 'playlist', 'search', 'shuffle',
                                            'schedule', 'radio', 'other')),
    metadata         jsonb NOT NULL DEFAULT '{}'
                     CHECK (jsonb_typeof(metadata) = 'object')
);

CREATE INDEX idx_playback_history_user_time ON playback_history (user_id, played_at DESC);
CREATE INDEX idx_playback_history_track ON playback_history (track_id);
-- Append-only, time-ordered: a tiny BRIN index serves retention purges and
-- system-wide "recently played" range scans.
CREATE INDEX idx_playback_history_played_brin ON playback_history USING brin (played_at);

-- ---------------------------------------------------------------------------
-- search_history
-- ---------------------------------------------------------------------------

CREATE TABLE search_history (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- NULL for searches made without a session.
    user_id           uuid REFERENCES users (id) ON DELETE CASCADE,
    query             text NOT NULL CHECK (char_length(query) <= 1000),
    filters           jsonb NOT NULL DEFAULT '{}'
                      CHECK (jsonb_typeof(filters) = 'object'),
    result_count      integer NOT NULL DEFAULT 0 CHECK (result_count >= 0),
    clicked_track_id  uuid REFERENCES tracks (id) ON DELETE SET NULL,
    searched_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_search_history_user_time ON search_history (user_id, searched_at DESC);
-- Serves the clicked_track_id FK when a track is deleted.
CREATE INDEX idx_search_history_clicked_track ON search_history (clicked_track_id)
    WHERE clicked_track_id IS NOT NULL;
CREATE INDEX idx_search_history_searched_brin ON search_history USING brin (searched_at);

-- ---------------------------------------------------------------------------
-- system_settings
-- ---------------------------------------------------------------------------

CREATE TABLE system_settings (
    key          text PRIMARY KEY
                 CONSTRAINT system_settings_key_format
                 CHECK (key ~ '^[a-z0-9_.]+$' AND char_length(key) <= 100),
    value        jsonb NOT NULL,
    description  text,
    updated_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER system_settings_set_updated_at
    BEFORE UPDATE ON system_settings
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
