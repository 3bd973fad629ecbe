-- 010_playlist_version.sql: a playlist's version moves on with every change
-- to it (details, entries, order), under the row lock its writers take, so
-- a rendered page of entries can be cached under (playlist, version) and
-- is never served after a change.

ALTER TABLE playlists ADD COLUMN version bigint NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION playlist_entries_settle(ids uuid[], renumber boolean) RETURNS void
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
        updated_at = now(),
        version = p.version + 1
    FROM (SELECT x.id, count(pt.id) AS n, sum(t.duration) AS secs
          FROM unnest(ids) AS x(id)
          LEFT JOIN playlist_tracks pt ON pt.playlist_id = x.id
          LEFT JOIN tracks t ON t.id = pt.track_id
          GROUP BY x.id) c
    WHERE p.id = c.id;
END
$$;

-- The cover falls back to the art of one of the first 50 entries: looking
-- through a whole 10,000-entry playlist of tracks without art, for every
-- read of it, cost milliseconds.
CREATE OR REPLACE FUNCTION playlist_json(p playlists, uid uuid) RETURNS text
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
             WHERE pt.playlist_id = p.id AND pt.position < 50 AND t.has_cover
             ORDER BY pt.position LIMIT 1)),
        p.source,
        to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        to_char(p.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
    )::playlist_doc)::text
$$;
