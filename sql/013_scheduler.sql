-- 013_scheduler.sql: when each schedule entry happens, in absolute time,
-- by the real rules of its own zone (Postgres's time zone database), and
-- what is in force at any instant.
--
-- An entry names days of the week and a local start and end time in an
-- IANA zone. Its occurrence on local date d runs from d + start_time to
-- d + end_time (the next day when end_time <= start_time; end_time may be
-- 24:00), each read as a wall clock in the entry's zone:
--   * a wall time the clocks skip (spring forward) is the first instant
--     after the jump: a 02:30 start on that night starts at 03:00;
--   * a wall time shown twice (fall back) is its first showing, so a slot
--     in the repeated hour happens once, and two slots that meet at such
--     a time still meet;
--   * the length is what the clock says: 01:30-03:30 lasts one hour on the
--     spring-forward night and three on the fall-back night.
-- An occurrence that the clocks skip entirely does not happen.

-- ---------------------------------------------------------------------------
-- Zone names. pg_timezone_names reads the whole zone database on every
-- query (~50 ms), so the names are kept in a table; a name the table does
-- not know yet (a newer tzdata) is looked up there once and added.
-- ---------------------------------------------------------------------------

CREATE TABLE time_zones (
    name  text PRIMARY KEY
);

INSERT INTO time_zones (name)
    SELECT name FROM pg_catalog.pg_timezone_names ON CONFLICT DO NOTHING;

CREATE FUNCTION time_zone_known(z text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF z IS NULL THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM time_zones WHERE name = z) THEN
        RETURN true;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = z) THEN
        INSERT INTO time_zones (name) VALUES (z) ON CONFLICT DO NOTHING;
        RETURN true;
    END IF;
    RETURN false;
END
$$;

CREATE OR REPLACE FUNCTION schedule_entries_validate_timezone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT time_zone_known(NEW.timezone) THEN
        RAISE EXCEPTION 'unknown time zone "%"', NEW.timezone
            USING ERRCODE = 'check_violation',
                  TABLE = 'schedule_entries',
                  COLUMN = 'timezone',
                  CONSTRAINT = 'schedule_entries_timezone_valid';
    END IF;
    RETURN NEW;
END
$$;

-- ---------------------------------------------------------------------------
-- Wall clock to instant
-- ---------------------------------------------------------------------------

-- The zone's UTC offset at instant t.
CREATE FUNCTION tz_offset(t timestamptz, tz text) RETURNS interval
LANGUAGE sql STABLE PARALLEL SAFE STRICT AS $$
    SELECT (t AT TIME ZONE tz) - (t AT TIME ZONE 'UTC')
$$;

-- The first instant in (lo, hi] whose offset is hi's, to the microsecond;
-- lo and hi must have different offsets and one change between them.
CREATE FUNCTION tz_transition(lo timestamptz, hi timestamptz, tz text) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE STRICT AS $$
DECLARE
    want  interval := tz_offset(hi, tz);
    mid   timestamptz;
BEGIN
    WHILE hi - lo > interval '1 microsecond' LOOP
        mid := lo + (hi - lo) / 2;
        IF tz_offset(mid, tz) = want THEN
            hi := mid;
        ELSE
            lo := mid;
        END IF;
    END LOOP;
    RETURN hi;
END
$$;

-- The instant wall time l shows in zone tz, by the rules above. (Postgres
-- itself reads a skipped time with the offset before the jump and a
-- repeated time as its second showing.)
CREATE FUNCTION schedule_local_instant(l timestamp, tz text) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE STRICT AS $$
DECLARE
    x  timestamptz := l AT TIME ZONE tz;
    y  timestamptz;
BEGIN
    IF (x AT TIME ZONE tz) = l THEN
        -- Shown twice? Then it was shown first with the offset before.
        y := (l - tz_offset(x - interval '1 day', tz)) AT TIME ZONE 'UTC';
        IF y < x AND (y AT TIME ZONE tz) = l THEN
            RETURN y;
        END IF;
        RETURN x;
    END IF;
    -- Skipped: the jump itself, the first instant the clock shows after.
    IF tz_offset(x - interval '1 day', tz) = tz_offset(x + interval '1 day', tz) THEN
        RETURN x;
    END IF;
    RETURN tz_transition(x - interval '1 day', x + interval '1 day', tz);
END
$$;

-- "2024-03-31T03:00:00+02:00": instant t on the wall clock of zone tz.
-- (One expression, so the planner inlines it.)
CREATE FUNCTION schedule_local_text(t timestamptz, tz text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE STRICT AS $$
    SELECT to_char(t AT TIME ZONE tz, 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN t AT TIME ZONE tz < t AT TIME ZONE 'UTC' THEN '-' ELSE '+' END
        || to_char(CASE WHEN t AT TIME ZONE tz < t AT TIME ZONE 'UTC'
                        THEN (t AT TIME ZONE 'UTC') - (t AT TIME ZONE tz)
                        ELSE (t AT TIME ZONE tz) - (t AT TIME ZONE 'UTC') END, 'HH24:MI')
$$;

CREATE FUNCTION utc_text(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- ---------------------------------------------------------------------------
-- Occurrences
-- ---------------------------------------------------------------------------

CREATE FUNCTION schedule_isodows(days text[]) RETURNS int[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT n ORDER BY n), '{}')
    FROM unnest(days) AS d,
         LATERAL array_position(ARRAY['monday', 'tuesday', 'wednesday', 'thursday',
                                      'friday', 'saturday', 'sunday'], d) AS n
    WHERE n IS NOT NULL
$$;

ALTER TABLE schedule_entries
    ADD COLUMN isodows int[] GENERATED ALWAYS AS (schedule_isodows(days_of_week)) STORED;

-- The entry's occurrences that overlap [from_ts, to_ts), whatever its
-- active flag. A slot lasts at most a day (and the hour a clock change
-- adds), so one that started the local day before from_ts may still run.
CREATE FUNCTION schedule_occurrences(e schedule_entries, from_ts timestamptz,
                                     to_ts timestamptz)
RETURNS TABLE (local_date date, starts_at timestamptz, ends_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT g.d::date, o.s, o.en
    FROM (SELECT d
          FROM generate_series(((from_ts AT TIME ZONE e.timezone)::date - 1)::timestamp,
                               (to_ts AT TIME ZONE e.timezone)::date::timestamp,
                               interval '1 day') AS d
          WHERE extract(isodow FROM d)::int = ANY (e.isodows)
            AND (e.first_date IS NULL OR d >= e.first_date)
            AND (e.last_date IS NULL OR d <= e.last_date)) g,
         LATERAL (SELECT schedule_local_instant(g.d + e.start_time, e.timezone) AS s,
                         schedule_local_instant(g.d + e.end_time
                             + CASE WHEN e.end_time <= e.start_time
                                    THEN interval '1 day' ELSE interval '0' END,
                             e.timezone) AS en
                  OFFSET 0) o	-- each instant computed once, not per use
    WHERE o.en > o.s AND o.s < to_ts AND o.en > from_ts
$$;

-- Every pair of active entries whose occurrences overlap within
-- [from_ts, to_ts), with the overlapping instants; only pairs with entry
-- only_id when it is given. Occurrences are matched through the UTC hours
-- they touch, so a sane schedule (few overlaps) costs little.
CREATE FUNCTION schedule_overlaps(from_ts timestamptz, to_ts timestamptz, only_id uuid)
RETURNS TABLE (a uuid, b uuid, starts_at timestamptz, ends_at timestamptz)
LANGUAGE sql STABLE AS $$
    WITH o AS MATERIALIZED (
        SELECT e.id, x.starts_at, x.ends_at
        FROM schedule_entries e, LATERAL schedule_occurrences(e, from_ts, to_ts) x
        WHERE e.is_active
    ), h AS MATERIALIZED (
        SELECT o.*, hr
        FROM o, LATERAL generate_series(date_trunc('hour', o.starts_at),
                                        o.ends_at - interval '1 microsecond',
                                        interval '1 hour') AS hr
    )
    SELECT DISTINCT x.id, y.id, greatest(x.starts_at, y.starts_at),
           least(x.ends_at, y.ends_at)
    FROM h x JOIN h y ON y.hr = x.hr AND y.id <> x.id
    WHERE (CASE WHEN only_id IS NULL THEN x.id < y.id ELSE x.id = only_id END)
      AND x.starts_at < y.ends_at AND y.starts_at < x.ends_at
$$;

-- ---------------------------------------------------------------------------
-- An entry as the API shows it
-- ---------------------------------------------------------------------------

CREATE FUNCTION schedule_time_text(t time) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT CASE WHEN extract(second FROM t) = 0 THEN to_char(t, 'HH24:MI')
                ELSE to_char(t, 'HH24:MI:SS') END
$$;

CREATE FUNCTION schedule_entry_json(e schedule_entries) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT json_build_object(
        'id', e.id,
        'title', e.title,
        'playlist', (SELECT json_build_object('id', p.id, 'name', p.name,
                                              'track_count', p.track_count)
                     FROM playlists p WHERE p.id = e.playlist_id),
        'days_of_week', (SELECT coalesce(json_agg((ARRAY['monday', 'tuesday',
                             'wednesday', 'thursday', 'friday', 'saturday',
                             'sunday'])[n] ORDER BY n), '[]')
                         FROM unnest(e.isodows) n),
        'start_time', schedule_time_text(e.start_time),
        'end_time', schedule_time_text(e.end_time),
        'crosses_midnight', e.end_time <= e.start_time,
        'timezone', e.timezone,
        'priority', e.priority,
        'shuffle', e.shuffle_seed IS NOT NULL,
        'shuffle_seed', e.shuffle_seed,
        'first_date', e.first_date,
        'last_date', e.last_date,
        'is_active', e.is_active,
        'created_by', e.created_by,
        'created_at', utc_text(e.created_at),
        'updated_at', utc_text(e.updated_at))::text
$$;

-- ---------------------------------------------------------------------------
-- What is in force at an instant
-- ---------------------------------------------------------------------------

-- The active entry in force at instant t: of the occurrences running then,
-- the highest priority (then the earliest start, then the id). It stays
-- in force until its occurrence ends or a higher-priority occurrence
-- starts (interrupted_by). No row: nothing is scheduled at t.
CREATE FUNCTION schedule_in_force(t timestamptz)
RETURNS TABLE (entry_id uuid, starts_at timestamptz, ends_at timestamptz,
               interrupted_by uuid)
LANGUAGE sql STABLE AS $$
    WITH o AS MATERIALIZED (
        SELECT e.id, e.priority, x.starts_at, x.ends_at
        FROM schedule_entries e,
             LATERAL schedule_occurrences(e, t, t + interval '26 hours') x
        WHERE e.is_active
    ), cur AS (
        SELECT * FROM o WHERE o.starts_at <= t AND o.ends_at > t
        ORDER BY o.priority DESC, o.starts_at, o.id LIMIT 1
    )
    SELECT c.id, c.starts_at, least(c.ends_at, p.starts_at), p.id
    FROM cur c
    LEFT JOIN LATERAL (SELECT o.id, o.starts_at FROM o
                       WHERE o.priority > c.priority AND o.starts_at > t
                         AND o.starts_at < c.ends_at
                       ORDER BY o.starts_at, o.priority DESC LIMIT 1) p ON true
$$;

-- Nothing in force at t: when the last occurrence before t ended and the
-- next one starts, each within 8 days (NULL beyond).
CREATE FUNCTION schedule_gap(t timestamptz, OUT since timestamptz, OUT until timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT max(x.ends_at) FILTER (WHERE x.ends_at <= t),
           min(x.starts_at) FILTER (WHERE x.starts_at > t)
    FROM schedule_entries e,
         LATERAL schedule_occurrences(e, t - interval '8 days', t + interval '8 days') x
    WHERE e.is_active
$$;

-- Where a playlist's rotation stands at instant t when it started playing
-- at anchor: it plays in order (or shuffled by seed, a fixed order per
-- entry) and loops. Tracks without a duration are skipped. One row: the
-- playing track and the next, with their documents; none when nothing in
-- it can play.
CREATE FUNCTION schedule_rotation(pid uuid, seed bigint, anchor timestamptz, t timestamptz)
RETURNS TABLE (track_doc text, offset_ms bigint, track_ms bigint,
               next_doc text, loop_no bigint, position_no bigint, tracks bigint)
LANGUAGE sql STABLE AS $$
    WITH r AS (
        SELECT t2.api_doc, coalesce(t2.duration_ms, t2.duration * 1000)::bigint AS ms,
               row_number() OVER (ORDER BY CASE WHEN seed IS NULL THEN NULL
                                       ELSE md5(seed::text || ':' || pt.id::text) END,
                                  pt.position) AS n
        FROM playlist_tracks pt
        JOIN tracks t2 ON t2.id = pt.track_id AND t2.is_active
        WHERE pt.playlist_id = pid
          AND coalesce(t2.duration_ms, t2.duration * 1000) > 0
    ), c AS (
        SELECT r.*, sum(r.ms) OVER (ORDER BY r.n) - r.ms AS before,
               sum(r.ms) OVER () AS total, count(*) OVER () AS cnt
        FROM r
    ), p AS (
        SELECT floor(extract(epoch FROM t - anchor) * 1000)::bigint AS el,
               (SELECT max(total) FROM c) AS total
    )
    SELECT c.api_doc, (p.el % p.total) - c.before, c.ms,
           coalesce((SELECT c2.api_doc FROM c c2 WHERE c2.n = c.n + 1),
                    (SELECT c2.api_doc FROM c c2 WHERE c2.n = 1)),
           p.el / p.total, c.n, c.cnt
    FROM p JOIN c ON c.before <= p.el % p.total AND p.el % p.total < c.before + c.ms
    WHERE p.total > 0 AND p.el >= 0
$$;

-- The answer of GET /api/scheduler/current for instant t, without its
-- first members (the caller adds "at" and "offset_ms", which change with
-- every request): doc is the rest of the object, without its opening
-- brace. The track documents come first and the entry after them, as
-- likes_mark_page() expects. track_start: when the playing track started
-- (NULL when nothing plays); valid_until: the answer holds until then
-- (the track or the slot ends), so it can be cached that long.
CREATE FUNCTION schedule_now(t timestamptz, OUT doc text, OUT track_start timestamptz,
                             OUT valid_until timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    f         record;
    e         schedule_entries;
    rot       record;
    pid       uuid;
    seed      bigint;
    anchor    timestamptz;
    s_start   timestamptz;
    s_end     timestamptz;
    zone      text;
    fallback  boolean := false;
    reason    text;
    fb        text;
    have_e    boolean := false;
BEGIN
    -- no rows: every field NULL, the record's shape known
    SELECT * INTO rot FROM schedule_rotation(NULL, NULL, NULL, NULL);
    SELECT * INTO f FROM schedule_in_force(t);
    IF FOUND THEN
        SELECT * INTO e FROM schedule_entries WHERE id = f.entry_id;
        have_e := true;
        pid := e.playlist_id;
        seed := e.shuffle_seed;
        anchor := f.starts_at;
        s_start := f.starts_at;
        s_end := f.ends_at;
        zone := e.timezone;
        IF pid IS NULL THEN
            fallback := true;
            reason := 'playlist_deleted';
        ELSE
            SELECT * INTO rot FROM schedule_rotation(pid, seed, anchor, t);
            IF NOT FOUND THEN
                fallback := true;
                reason := 'playlist_empty';
            END IF;
        END IF;
    ELSE
        SELECT g.since, g.until INTO s_start, s_end FROM schedule_gap(t) g;
        fallback := true;
        reason := 'nothing_scheduled';
        zone := coalesce((SELECT value #>> '{}' FROM system_settings
                          WHERE key = 'default_timezone'), 'UTC');
        IF NOT time_zone_known(zone) THEN
            zone := 'UTC';
        END IF;
    END IF;
    IF fallback THEN
        fb := (SELECT value #>> '{}' FROM system_settings
               WHERE key = 'fallback_playlist_id' AND jsonb_typeof(value) = 'string');
        pid := NULL;
        IF fb ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
            SELECT p.id INTO pid FROM playlists p WHERE p.id = fb::uuid AND p.is_active;
        END IF;
        anchor := coalesce(s_start, timestamptz 'epoch');
        SELECT * INTO rot FROM schedule_rotation(NULL, NULL, NULL, NULL);
        IF pid IS NOT NULL THEN
            SELECT * INTO rot FROM schedule_rotation(pid, NULL, anchor, t);
        END IF;
    END IF;
    IF rot.track_doc IS NOT NULL THEN
        track_start := t - make_interval(secs => rot.offset_ms / 1000.0);
    END IF;
    valid_until := least(s_end, track_start + make_interval(secs => rot.track_ms / 1000.0),
                         CASE WHEN rot.track_doc IS NULL AND s_end IS NULL
                              THEN t + interval '1 minute' END);
    doc := '"track":' || coalesce(rot.track_doc, 'null')
        || ',"track_started_at":' || coalesce(to_json(utc_text(track_start))::text, 'null')
        || ',"track_ends_at":' || coalesce(to_json(utc_text(track_start
               + make_interval(secs => rot.track_ms / 1000.0)))::text, 'null')
        || ',"next":' || coalesce(rot.next_doc, 'null')
        || ',"fallback":' || fallback::text
        || ',"fallback_reason":' || coalesce(to_json(reason)::text, 'null')
        || ',"slot":' || json_build_object(
               'starts_at', utc_text(s_start),
               'ends_at', utc_text(s_end),
               'local_starts_at', schedule_local_text(s_start, zone),
               'local_ends_at', schedule_local_text(s_end, zone),
               'timezone', zone,
               'interrupted_by', CASE WHEN have_e THEN f.interrupted_by END)::text
        || ',"rotation":' || CASE WHEN rot.track_doc IS NULL THEN 'null' ELSE
               json_build_object('position', rot.position_no, 'tracks', rot.tracks,
                                 'loop', rot.loop_no, 'shuffle', NOT fallback AND seed IS NOT NULL)::text END
        || ',"entry":' || CASE WHEN have_e THEN schedule_entry_json(e) ELSE 'null' END
        || ',"playlist":' || coalesce((SELECT json_build_object('id', p.id, 'name', p.name,
                                 'track_count', p.track_count)::text
                                FROM playlists p WHERE p.id = pid), 'null')
        || ',"valid_until":' || coalesce(to_json(utc_text(valid_until))::text, 'null')
        || '}';
END
$$;

-- ---------------------------------------------------------------------------
-- iCalendar (RFC 5545)
-- ---------------------------------------------------------------------------

-- The zone's changes of offset in [from_ts, to_ts), to the microsecond.
CREATE FUNCTION tz_transitions(tz text, from_ts timestamptz, to_ts timestamptz)
RETURNS TABLE (at timestamptz, off_from interval, off_to interval)
LANGUAGE sql STABLE AS $$
    SELECT tz_transition(d - interval '1 day', d, tz), a, b
    FROM generate_series(from_ts + interval '1 day', to_ts, interval '1 day') AS d,
         LATERAL (SELECT tz_offset(d - interval '1 day', tz) AS a, tz_offset(d, tz) AS b) o
    WHERE o.a <> o.b
$$;

CREATE FUNCTION ics_offset(o interval) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT CASE WHEN o < interval '0' THEN '-' ELSE '+' END
        || to_char(abs(extract(epoch FROM o))::int / 3600, 'FM00')
        || to_char(abs(extract(epoch FROM o))::int / 60 % 60, 'FM00')
        || CASE WHEN abs(extract(epoch FROM o))::int % 60 <> 0
                THEN to_char(abs(extract(epoch FROM o))::int % 60, 'FM00') ELSE '' END
$$;

CREATE FUNCTION ics_local(l timestamp) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT to_char(l, 'YYYYMMDD"T"HH24MISS')
$$;

CREATE FUNCTION ics_utc(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS"Z"')
$$;

-- TEXT value escaping (RFC 5545 3.3.11).
CREATE FUNCTION ics_text(s text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT replace(replace(replace(replace(replace(s, '\', '\\'), ';', '\;'),
                   ',', '\,'), E'\r\n', '\n'), E'\n', '\n')
$$;

-- The whole calendar of active entries, lines joined by LF (the caller
-- folds them and ends them with CRLF). Each entry is a weekly VEVENT
-- starting on its first day (first_date, else the day it was created);
-- every zone used gets a VTIMEZONE with its real transitions from then
-- until 4 years ahead. Where Postgres's rules and RFC 5545's reading of a
-- wall time differ (a start or end the clocks skip), that occurrence is
-- overridden with its exact instants (RECURRENCE-ID), or excluded when
-- the clocks skip all of it.
CREATE FUNCTION schedule_ics(now_ts timestamptz) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    horizon_to  timestamptz := now_ts + interval '4 years';
    out         text[] := ARRAY['BEGIN:VCALENDAR', 'VERSION:2.0',
                                'PRODID:-//djamms//scheduler//EN', 'CALSCALE:GREGORIAN',
                                'METHOD:PUBLISH', 'X-WR-CALNAME:djamms schedule',
                                'REFRESH-INTERVAL;VALUE=DURATION:PT1H',
                                'X-PUBLISHED-TTL:PT1H'];
    z           record;
    zt          record;
    j_tz        text[] := '{}';	-- every zone's jumps forward, for the overrides
    j_at        timestamptz[] := '{}';
    from_ts     timestamptz;
BEGIN
    -- the entries and the first day each starts on
    FOR z IN
        SELECT e.timezone AS tz,
               min(coalesce(e.first_date, (e.created_at AT TIME ZONE e.timezone)::date)) AS d0
        FROM schedule_entries e WHERE e.is_active GROUP BY e.timezone ORDER BY e.timezone
    LOOP
        from_ts := greatest((z.d0 - 2)::timestamp AT TIME ZONE z.tz, now_ts - interval '5 years');
        out := out || ARRAY['BEGIN:VTIMEZONE', 'TZID:' || z.tz,
                            'BEGIN:STANDARD', 'DTSTART:' || ics_local(from_ts AT TIME ZONE z.tz),
                            'TZOFFSETFROM:' || ics_offset(tz_offset(from_ts, z.tz)),
                            'TZOFFSETTO:' || ics_offset(tz_offset(from_ts, z.tz)),
                            'END:STANDARD'];
        FOR zt IN SELECT * FROM tz_transitions(z.tz, from_ts, horizon_to) ORDER BY 1 LOOP
            out := out || ARRAY[
                CASE WHEN zt.off_to > zt.off_from THEN 'BEGIN:DAYLIGHT' ELSE 'BEGIN:STANDARD' END,
                'DTSTART:' || ics_local((zt.at AT TIME ZONE 'UTC') + zt.off_from),
                'TZOFFSETFROM:' || ics_offset(zt.off_from),
                'TZOFFSETTO:' || ics_offset(zt.off_to),
                CASE WHEN zt.off_to > zt.off_from THEN 'END:DAYLIGHT' ELSE 'END:STANDARD' END];
            IF zt.off_to > zt.off_from THEN
                j_tz := j_tz || z.tz;
                j_at := j_at || zt.at;
            END IF;
        END LOOP;
        out := out || 'END:VTIMEZONE'::text;
    END LOOP;

    -- every event, its exclusions and overrides, in one statement
    out := out || ARRAY(
        WITH ev AS (
            SELECT e.*, p.name AS playlist_name, d0.d0,
                   CASE WHEN e.end_time <= e.start_time THEN interval '1 day'
                        ELSE interval '0' END AS over
            FROM schedule_entries e
            LEFT JOIN playlists p ON p.id = e.playlist_id
            CROSS JOIN LATERAL (
                SELECT g::date AS d0
                FROM generate_series(coalesce(e.first_date,
                                         (e.created_at AT TIME ZONE e.timezone)::date)::timestamp,
                                     coalesce(e.first_date,
                                         (e.created_at AT TIME ZONE e.timezone)::date)::timestamp
                                         + interval '6 days', interval '1 day') g
                WHERE extract(isodow FROM g)::int = ANY (e.isodows) ORDER BY g LIMIT 1) d0
            WHERE e.is_active AND (e.last_date IS NULL OR d0.d0 <= e.last_date)
        ), near AS (
            -- occurrences next to a spring-forward jump, and the RFC's reading
            SELECT ev.id, d, x.s, x.en,
                   (d + ev.start_time) AT TIME ZONE ev.timezone AS rfc_s,
                   (d + ev.end_time + ev.over) AT TIME ZONE ev.timezone AS rfc_en
            FROM ev
            JOIN unnest(j_tz, j_at) AS j(tz, at) ON j.tz = ev.timezone
            CROSS JOIN LATERAL generate_series(((j.at AT TIME ZONE ev.timezone)::date - 1)::timestamp,
                                               (j.at AT TIME ZONE ev.timezone)::date::timestamp,
                                               interval '1 day') d
            CROSS JOIN LATERAL (SELECT schedule_local_instant(d + ev.start_time, ev.timezone) AS s,
                                       schedule_local_instant(d + ev.end_time + ev.over,
                                                              ev.timezone) AS en) x
            WHERE extract(isodow FROM d)::int = ANY (ev.isodows)
              AND d >= ev.d0 AND (ev.last_date IS NULL OR d <= ev.last_date)
        )
        SELECT u.line
        FROM ev
        CROSS JOIN LATERAL unnest(
            ARRAY['BEGIN:VEVENT',
                  'UID:' || ev.id || '@djamms',
                  'DTSTAMP:' || ics_utc(ev.updated_at),
                  'LAST-MODIFIED:' || ics_utc(ev.updated_at),
                  'SUMMARY:' || ics_text(ev.title),
                  'DTSTART;TZID=' || ev.timezone || ':' || ics_local(ev.d0 + ev.start_time),
                  'DTEND;TZID=' || ev.timezone || ':' || ics_local(ev.d0 + ev.end_time + ev.over),
                  'RRULE:FREQ=WEEKLY;WKST=MO;BYDAY='
                      || (SELECT string_agg((ARRAY['MO','TU','WE','TH','FR','SA','SU'])[n], ','
                                            ORDER BY n) FROM unnest(ev.isodows) n)
                      || CASE WHEN ev.last_date IS NULL THEN ''
                              ELSE ';UNTIL=' || ics_utc(schedule_local_instant(
                                       ev.last_date + ev.start_time, ev.timezone)) END]
            || CASE WHEN ev.playlist_name IS NULL THEN ARRAY[]::text[]
                    ELSE ARRAY['DESCRIPTION:' || ics_text('Playlist: ' || ev.playlist_name)] END
            || ARRAY['X-DJAMMS-PRIORITY:' || ev.priority]
            -- an occurrence the clocks skip entirely does not happen
            || ARRAY(SELECT 'EXDATE;TZID=' || ev.timezone || ':' || ics_local(n.d + ev.start_time)
                     FROM near n WHERE n.id = ev.id AND n.s >= n.en ORDER BY n.d)
            || ARRAY['END:VEVENT']
            -- one whose start or end the RFC reads otherwise: its exact instants
            || ARRAY(SELECT l FROM near n,
                            LATERAL unnest(ARRAY['BEGIN:VEVENT',
                                'UID:' || ev.id || '@djamms',
                                'DTSTAMP:' || ics_utc(ev.updated_at),
                                'RECURRENCE-ID;TZID=' || ev.timezone || ':'
                                    || ics_local(n.d + ev.start_time),
                                'SUMMARY:' || ics_text(ev.title),
                                'DTSTART:' || ics_utc(n.s),
                                'DTEND:' || ics_utc(n.en),
                                'END:VEVENT']) WITH ORDINALITY AS o(l, k)
                     WHERE n.id = ev.id AND n.s < n.en
                       AND (n.s <> n.rfc_s OR n.en <> n.rfc_en)
                     ORDER BY n.d, o.k)
        ) WITH ORDINALITY AS u(line, k)
        ORDER BY ev.created_at, ev.id, u.k);
    out := out || 'END:VCALENDAR'::text;
    RETURN array_to_string(out, E'\n');
END
$$;

-- ---------------------------------------------------------------------------
-- Announcements: anything that can change what plays (an entry, a
-- playlist or its entries, the fallback setting) is announced on
-- djamms_library with payload 's' when it commits; the pool's watcher
-- moves the scheduler's cached answers on. Changes to tracks are library
-- changes already (sql/008), and the scheduler's cache is keyed by both.
-- ---------------------------------------------------------------------------

CREATE FUNCTION djamms_schedule_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('djamms_library', 's');
    RETURN NULL;
END
$$;

CREATE TRIGGER schedule_entries_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON schedule_entries
    FOR EACH STATEMENT EXECUTE FUNCTION djamms_schedule_notify();

CREATE TRIGGER playlists_schedule_notify
    AFTER UPDATE OR DELETE OR TRUNCATE ON playlists
    FOR EACH STATEMENT EXECUTE FUNCTION djamms_schedule_notify();

CREATE TRIGGER system_settings_schedule_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON system_settings
    FOR EACH STATEMENT EXECUTE FUNCTION djamms_schedule_notify();

CREATE INDEX idx_schedule_entries_active_all ON schedule_entries (id) WHERE is_active;

-- No JIT compilation for this database's sessions (the workers also ask
-- for none when they connect). The planner's costs of the functions above
-- (and of search's ranked statements) cross jit_above_cost although each
-- runs in milliseconds; compiling then took longer than running (8 ms of
-- 9 for the occurrences of four entries). Only the database's owner may
-- set it; anyone else is told, and the workers' own setting holds.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'jit stays as configured: not the database owner';
END
$$;
