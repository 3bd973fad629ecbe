-- 020_search_history_notify.sql: a change to someone's search history is
-- announced on djamms_auth as "h <user id>" when it commits, whoever makes
-- it (a worker's batch, a clear, an account deleted, psql). Each worker
-- keeps the recent searches of its recent callers in memory for suggest;
-- the announcement tells every machine's workers that a list is out of
-- date. One announcement per user per statement: a batch of 64 searches
-- by 3 users costs 3. A click (clicked_track_id) changes no suggestion and
-- announces nothing.

CREATE FUNCTION djamms_search_history_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('djamms_auth', 'h ' || u)
    FROM (SELECT DISTINCT user_id AS u FROM changed WHERE user_id IS NOT NULL) x;
    RETURN NULL;
END
$$;

CREATE TRIGGER search_history_notify_insert
    AFTER INSERT ON search_history REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION djamms_search_history_notify();

CREATE TRIGGER search_history_notify_delete
    AFTER DELETE ON search_history REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION djamms_search_history_notify();

-- An update that moves a row to another user or changes what was searched
-- (not something djamms does; an operator might): both users hear of it.
CREATE FUNCTION djamms_search_history_notify_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.user_id IS NOT NULL THEN
        PERFORM pg_notify('djamms_auth', 'h ' || OLD.user_id);
    END IF;
    IF NEW.user_id IS NOT NULL THEN
        PERFORM pg_notify('djamms_auth', 'h ' || NEW.user_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER search_history_notify_update
    AFTER UPDATE OF user_id, query, searched_at ON search_history
    FOR EACH ROW EXECUTE FUNCTION djamms_search_history_notify_update();
