-- 022_suggest_index_only.sql: the prefix indexes of as-you-type suggestions
-- (012_search.sql) carry the name and the popularity of each track, so a
-- suggestion asked of Postgres reads the indexes alone.
--
-- For each kind, suggest reads the first 1,000 names of the prefix's range
-- and keeps the most popular. From the index of the normalised name alone
-- that was a thousand rows fetched from the table per kind, at random
-- places: "bad" at a million tracks read 2,982 buffers and took 7-8 ms of
-- the database's time; with the names and popularity in the indexes (an
-- index-only scan) it reads 704 and takes 1.2 ms. Through nginx, 16
-- connections asking the bench's eight prefixes with the cache off, four
-- runs: 2,698-3,168 req/s, p99 9.0-11.3 ms, against 1,147 and 1,263, p99
-- 23-29 ms.
--
-- The cost is room: an index with included columns keeps every entry
-- whole, where the old ones stored a repeated name once. At a million
-- tracks the three take 189 MB instead of 39. No write touches an index
-- it did not touch before, though it writes bigger entries: title, artist
-- and album were indexed already, and so is popularity
-- (idx_tracks_popularity), so a change of any of them updated every index
-- of the row before as well.
--
-- An index-only scan skips the table only for pages the visibility map
-- marks all-visible (autovacuum keeps it); on other pages it fetches the
-- row as before, with the same results.

DROP INDEX idx_tracks_title_prefix;
DROP INDEX idx_tracks_artist_prefix;
DROP INDEX idx_tracks_album_prefix;
CREATE INDEX idx_tracks_title_prefix ON tracks ((search_normalize(title) COLLATE "C"))
    INCLUDE (title, popularity) WHERE is_active;
CREATE INDEX idx_tracks_artist_prefix ON tracks ((search_normalize(artist) COLLATE "C"))
    INCLUDE (artist, popularity) WHERE is_active;
CREATE INDEX idx_tracks_album_prefix ON tracks ((search_normalize(album) COLLATE "C"))
    INCLUDE (album, popularity) WHERE is_active AND album IS NOT NULL;
