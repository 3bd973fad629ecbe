-- 012_search.sql: search that forgives typos, on Postgres alone.
--
-- Three parts:
--   * tracks.search_vec: the normalised (lower-case, unaccented) words of
--     title (weight A), artist (B), album (C) and genre (D), GIN-indexed,
--     for full-text matching in any order;
--   * search_words: every word of the library once, with how many tracks
--     use it, trigram-indexed: the dictionary a misspelt word is corrected
--     against (pg_trgm finds words that look alike, fuzzystrmatch's
--     levenshtein() keeps those within one or two edits);
--   * prefix indexes on the normalised title, artist and album, for
--     as-you-type suggestions.
-- The worker keeps the dictionary in memory and corrects the words of a
-- query against it (fcgi/spell.c), then asks for the tracks in one
-- statement (handlers/search.c).
-- Statement triggers keep the dictionary in step with the library, in the
-- writing transaction: a new, edited or deleted track is searchable (or
-- gone) as soon as its write commits.

-- A text as search reads it: normalised, then once more with the
-- punctuation inside words taken out, so "FE!N" is also "fen" and
-- "Can't" also "cant", as people type them.
CREATE FUNCTION search_text_of(text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT search_normalize($1) || ' ' ||
           regexp_replace(search_normalize($1), '[^[:alnum:][:space:]]+', '', 'g')
$$;

-- The words of a text as search sees them.
CREATE FUNCTION search_words_of(text) RETURNS SETOF text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT DISTINCT w FROM regexp_split_to_table(search_text_of($1), '[^[:alnum:]]+') w
    WHERE w <> ''
$$;

-- The words of a track's searchable fields.
CREATE FUNCTION search_words_of_track(title text, artist text, album text, genre text)
RETURNS SETOF text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT search_words_of(title || ' ' || artist || ' ' || coalesce(album, '') || ' ' ||
                           coalesce(genre, ''))
$$;

ALTER TABLE tracks ADD COLUMN search_vec tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple'::regconfig, search_text_of(title)), 'A') ||
    setweight(to_tsvector('simple'::regconfig, search_text_of(artist)), 'B') ||
    setweight(to_tsvector('simple'::regconfig, coalesce(search_text_of(album), '')), 'C') ||
    setweight(to_tsvector('simple'::regconfig, coalesce(search_normalize(genre), '')), 'D')
) STORED;
CREATE INDEX idx_tracks_search_vec ON tracks USING gin (search_vec);

CREATE TABLE search_words (
    word    text PRIMARY KEY,
    tracks  integer NOT NULL CHECK (tracks >= 0)
);

CREATE FUNCTION search_words_add(words text[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO search_words (word, tracks)
    SELECT w, count(*) FROM unnest(words) w GROUP BY w
    ON CONFLICT (word) DO UPDATE SET tracks = search_words.tracks + EXCLUDED.tracks
$$;

CREATE FUNCTION search_words_remove(words text[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE search_words s SET tracks = greatest(s.tracks - g.n, 0)
    FROM (SELECT w, count(*) AS n FROM unnest(words) w GROUP BY w) g
    WHERE s.word = g.w;
    DELETE FROM search_words WHERE tracks = 0 AND word = ANY (words);
$$;

-- The words of active tracks only: a deactivated track is not searchable.
CREATE FUNCTION search_words_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM search_words_add(ARRAY(
        SELECT search_words_of_track(n.title, n.artist, n.album, n.genre)
        FROM added n WHERE n.is_active));
    RETURN NULL;
END
$$;

CREATE FUNCTION search_words_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM search_words_remove(ARRAY(
        SELECT search_words_of_track(o.title, o.artist, o.album, o.genre)
        FROM gone o WHERE o.is_active));
    RETURN NULL;
END
$$;

CREATE FUNCTION search_words_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM search_words_remove(ARRAY(
        SELECT search_words_of_track(o.title, o.artist, o.album, o.genre)
        FROM gone o JOIN added n ON n.id = o.id
        WHERE o.is_active AND (o.title, o.artist, o.album, o.genre, o.is_active)
              IS DISTINCT FROM (n.title, n.artist, n.album, n.genre, n.is_active)));
    PERFORM search_words_add(ARRAY(
        SELECT search_words_of_track(n.title, n.artist, n.album, n.genre)
        FROM gone o JOIN added n ON n.id = o.id
        WHERE n.is_active AND (o.title, o.artist, o.album, o.genre, o.is_active)
              IS DISTINCT FROM (n.title, n.artist, n.album, n.genre, n.is_active)));
    RETURN NULL;
END
$$;

CREATE TRIGGER tracks_search_words_insert AFTER INSERT ON tracks
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION search_words_insert();
CREATE TRIGGER tracks_search_words_delete AFTER DELETE ON tracks
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION search_words_delete();
CREATE TRIGGER tracks_search_words_update AFTER UPDATE ON tracks
    REFERENCING OLD TABLE AS gone NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION search_words_update();

SELECT search_words_add(ARRAY(
    SELECT search_words_of_track(title, artist, album, genre) FROM tracks WHERE is_active));

-- As-you-type: the titles, artists and albums that begin with what was
-- typed (normalised), most popular first.
-- Byte order ("C"), so "begins with p" is the range [p, p || U+10FFFF).
CREATE INDEX idx_tracks_title_prefix ON tracks ((search_normalize(title) COLLATE "C"))
    WHERE is_active;
CREATE INDEX idx_tracks_artist_prefix ON tracks ((search_normalize(artist) COLLATE "C"))
    WHERE is_active;
CREATE INDEX idx_tracks_album_prefix ON tracks ((search_normalize(album) COLLATE "C"))
    WHERE is_active AND album IS NOT NULL;

-- Popular queries and a user's recent ones.
CREATE INDEX idx_search_history_query ON search_history (search_normalize(query), searched_at);
