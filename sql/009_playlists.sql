-- 009_playlists.sql: what playlists need beyond the core tables.
--
-- Who may do what is decided in one place, playlist_role(): the owner,
-- a collaborator (editor or viewer), anyone signed in for a public one,
-- nobody else (the API then answers 404, as if it did not exist).
--
-- Counts and positions are kept by the database, whatever deletes an
-- entry: the API, or the library when a track goes (ON DELETE CASCADE).
-- After every statement that inserts or deletes entries, the playlists
-- it touched get their track_count and total_duration recounted and, on
-- delete, their positions closed up to 0..n-1. Writers lock the playlist
-- row first (SELECT ... FOR UPDATE), so edits of one playlist happen one
-- after another; the trigger takes the same lock.

ALTER TABLE playlists ADD COLUMN star_count integer NOT NULL DEFAULT 0
    CHECK (star_count >= 0);
CREATE INDEX idx_playlists_public_stars ON playlists (star_count, id) WHERE is_public;

-- 'owner', 'editor', 'viewer', 'public' (a public playlist seen by anyone
-- else), or NULL: not visible to uid.
CREATE FUNCTION playlist_role(p playlists, uid uuid) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN NOT p.is_active THEN NULL
        WHEN p.owner_id = uid THEN 'owner'
        ELSE coalesce((SELECT c.role FROM playlist_collaborators c
                       WHERE c.playlist_id = p.id AND c.user_id = uid),
                      CASE WHEN p.is_public THEN 'public' END)
    END
$$;

-- A playlist as the API shows it to uid (who must be able to see it);
-- to_json() of named row types writes compact JSON in this key order.
CREATE TYPE playlist_owner AS (id uuid, username text);
CREATE TYPE playlist_doc AS (
    id             uuid,
    name           text,
    description    text,
    owner          playlist_owner,
    is_public      boolean,
    track_count    integer,
    total_duration integer,
    star_count     integer,
    starred        boolean,
    role           text,
    cover_url      text,
    source         text,
    created_at     text,
    updated_at     text
);

CREATE FUNCTION playlist_json(p playlists, uid uuid) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_json(ROW(
        p.id, p.name, p.description,
        (SELECT ROW(u.id, u.username)::playlist_owner
         FROM users u WHERE u.id = p.owner_id),
        p.is_public, p.track_count, p.total_duration, p.star_count,
        EXISTS (SELECT 1 FROM starred_playlists s
                WHERE s.playlist_id = p.id AND s.user_id = uid),
        playlist_role(p, uid),
        coalesce(p.thumbnail_url,
            (SELECT '/api/music/tracks/' || t.id || '/cover'
             FROM playlist_tracks pt JOIN tracks t ON t.id = pt.track_id
             WHERE pt.playlist_id = p.id AND t.has_cover
             ORDER BY pt.position LIMIT 1)),
        p.source,
        to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        to_char(p.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    )::playlist_doc)::text
$$;

-- A track document with the caller's "liked" added (the stored document
-- always ends with its closing brace).
CREATE FUNCTION track_json_for(doc text, liked boolean) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT left(doc, -1) || ',"liked":' || CASE WHEN liked THEN 'true' ELSE 'false' END || '}'
$$;

-- Recount (and, after deletes, renumber) the playlists a statement touched.
CREATE FUNCTION playlist_entries_settle(ids uuid[], renumber boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM playlists WHERE id = ANY (ids) ORDER BY id FOR UPDATE;
    IF renumber THEN
        UPDATE playlist_tracks pt SET position = s.rn - 1
        FROM (SELECT id, row_number() OVER (PARTITION BY playlist_id
                                            ORDER BY position) AS rn
              FROM playlist_tracks WHERE playlist_id = ANY (ids)) s
        WHERE pt.id = s.id AND pt.position <> s.rn - 1;
    END IF;
    UPDATE playlists p SET
        track_count = coalesce(c.n, 0),
        total_duration = coalesce(c.secs, 0),
        updated_at = now()
    FROM (SELECT x.id, count(pt.id) AS n, sum(t.duration) AS secs
          FROM unnest(ids) AS x(id)
          LEFT JOIN playlist_tracks pt ON pt.playlist_id = x.id
          LEFT JOIN tracks t ON t.id = pt.track_id
          GROUP BY x.id) c
    WHERE p.id = c.id
      AND (p.track_count, p.total_duration)
          IS DISTINCT FROM (coalesce(c.n, 0)::int, coalesce(c.secs, 0)::int);
END
$$;

CREATE FUNCTION playlist_tracks_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM playlist_entries_settle(
        ARRAY(SELECT DISTINCT playlist_id FROM added), false);
    RETURN NULL;
END
$$;

CREATE FUNCTION playlist_tracks_after_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM playlist_entries_settle(
        ARRAY(SELECT DISTINCT playlist_id FROM gone), true);
    RETURN NULL;
END
$$;

CREATE TRIGGER playlist_tracks_counted_insert
    AFTER INSERT ON playlist_tracks REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION playlist_tracks_after_insert();

CREATE TRIGGER playlist_tracks_counted_delete
    AFTER DELETE ON playlist_tracks REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION playlist_tracks_after_delete();

-- Stars are counted on the playlist, for "most starred" without a scan.
CREATE FUNCTION starred_playlists_count() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE playlists SET star_count = star_count + 1 WHERE id = NEW.playlist_id;
    ELSE
        UPDATE playlists SET star_count = greatest(star_count - 1, 0)
        WHERE id = OLD.playlist_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER starred_playlists_counted
    AFTER INSERT OR DELETE ON starred_playlists
    FOR EACH ROW EXECUTE FUNCTION starred_playlists_count();

-- Favorites are listed newest first per user with a stable tie-break.
CREATE INDEX idx_user_favorites_user_keyset ON user_favorites (user_id, created_at DESC, id DESC);
CREATE INDEX idx_starred_playlists_user_keyset ON starred_playlists (user_id, created_at DESC, id DESC);

-- updated_at means "the playlist changed" (its details or its entries),
-- not "someone starred it": the writers set it, not a blanket trigger.
DROP TRIGGER playlists_set_updated_at ON playlists;
