-- 007_track_doc.sql: a track as the API shows it, written by the database
-- when the row is written, not when it is read. Every response that
-- carries tracks (one track, a page of them) takes tracks.api_doc as is:
-- one definition of the shape, and a list page is the stored documents
-- joined, with no per-field work in the worker nor JSON building in a
-- read query (which was a fifth of the CPU a list page cost).
--
-- to_json() of a named row type writes compact JSON with the keys in the
-- order of the type.

CREATE TYPE track_doc AS (
    id           uuid,
    title        text,
    artist       text,
    album        text,
    genre        text,
    year         integer,
    track_number integer,
    duration     integer,
    duration_ms  integer,
    bitrate      integer,
    sample_rate  integer,
    channels     smallint,
    mime_type    text,
    file_size    bigint,
    has_audio    boolean,
    has_cover    boolean,
    popularity   integer,
    play_count   bigint,
    uploaded_by  uuid,
    source       text,
    created_at   text,
    stream_url   text,
    cover_url    text
);

CREATE FUNCTION track_json(t tracks) RETURNS json
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
             THEN '/api/music/tracks/' || t.id || '/cover' END
    )::track_doc)
$$;

ALTER TABLE tracks ADD COLUMN api_doc text;

-- Before every insert and update, whatever the writer: the document always
-- matches the row it is stored in.
CREATE FUNCTION tracks_api_doc() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.api_doc := track_json(NEW)::text;
    RETURN NEW;
END
$$;

CREATE TRIGGER tracks_api_doc BEFORE INSERT OR UPDATE ON tracks
    FOR EACH ROW EXECUTE FUNCTION tracks_api_doc();

UPDATE tracks SET api_doc = NULL;	-- the trigger writes it
ALTER TABLE tracks ALTER COLUMN api_doc SET NOT NULL;
