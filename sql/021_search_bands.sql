-- 021_search_bands.sql: the words of active tracks are indexed in two
-- parts by popularity, the popular band (25 and over: about three tracks in
-- ten of the bench's catalogue) and the rest, instead of in one index.
--
-- A search keeps the 500 most popular of its matches, so it must read
-- every match to find them: "bad bony" matches 2,066 of a million tracks.
-- Asked of the popular band first, it finds 716 there, and the rest are
-- not read at all, since no track below the band can be among the 500 once
-- the band holds 500. A search with fewer matches in the band reads both
-- parts, as it read the one before, and gets the same tracks. At a million
-- tracks the two heaviest queries of the bench's set took 5.7 and 4.7 ms
-- of the database's time instead of 9.0 and 6.8; the set as a whole about
-- the same (103.5-105.3 ms against 106.9-108.5). The two indexes take a
-- little more room than the one, since a word can be in both: 9 MB more at
-- a million tracks, 5 MB at 145,000.
--
-- handlers/search.c names the band's bound (POPULAR_BAND) in its query:
-- the planner uses a partial index only for a query whose conditions imply
-- its predicate, and it must see the same constant. A track whose
-- popularity crosses the bound moves from one index to the other in the
-- same write.

DROP INDEX idx_tracks_search_vec;
CREATE INDEX idx_tracks_search_popular ON tracks USING gin (search_vec)
    WHERE is_active AND popularity >= 25;
CREATE INDEX idx_tracks_search_rest ON tracks USING gin (search_vec)
    WHERE is_active AND popularity < 25;
