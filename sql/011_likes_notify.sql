-- 011_likes_notify.sql: a change to someone's likes is announced on
-- djamms_auth as "f <user id>" when it commits, whoever makes it. Each
-- worker keeps the liked sets of recent callers in memory to mark the
-- tracks of any page (shared by everyone through the list caches) with
-- the caller's "liked"; the announcement tells it a set is out of date.
-- Identical notifications in one transaction are delivered once, so a
-- bulk change costs one announcement per user.

CREATE FUNCTION djamms_likes_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('djamms_auth', 'f ' || OLD.user_id);
    ELSE
        PERFORM pg_notify('djamms_auth', 'f ' || NEW.user_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER user_favorites_notify
    AFTER INSERT OR DELETE OR UPDATE ON user_favorites
    FOR EACH ROW EXECUTE FUNCTION djamms_likes_notify();
