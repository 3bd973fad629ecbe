-- 008_library_notify.sql: every change to what the library lists is
-- announced on the channel djamms_library when its transaction commits,
-- whoever makes it (a worker, the import CLI, an operator in psql). The
-- pool's watcher then moves the list caches on (Redis's lib:ver and the
-- version the workers' own page caches are keyed by), so no cached page
-- survives a change.
--
-- Plays change play_count (and with it the stored document) on every
-- listen; they are not announced, or every play would empty the caches.
-- Lists sorted by play count may lag by the cache's time to live.
-- Identical notifications in one transaction are delivered once, so a
-- bulk load costs one announcement.

CREATE FUNCTION djamms_library_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('djamms_library', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER tracks_library_insert_delete
    AFTER INSERT OR DELETE OR TRUNCATE ON tracks
    FOR EACH STATEMENT EXECUTE FUNCTION djamms_library_notify();

CREATE TRIGGER tracks_library_update
    AFTER UPDATE ON tracks FOR EACH ROW
    WHEN ((OLD.api_doc IS DISTINCT FROM NEW.api_doc
           AND OLD.play_count = NEW.play_count)
          OR (OLD.title, OLD.artist, OLD.album, OLD.genre, OLD.year,
              OLD.duration, OLD.popularity, OLD.is_active)
             IS DISTINCT FROM
             (NEW.title, NEW.artist, NEW.album, NEW.genre, NEW.year,
              NEW.duration, NEW.popularity, NEW.is_active))
    EXECUTE FUNCTION djamms_library_notify();
