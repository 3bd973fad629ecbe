-- 006_auth_notify.sql: every change that ends tokens or alters a profile
-- is announced on the channel djamms_auth when its transaction commits,
-- whoever makes it (a worker, the admin CLI, an operator in psql). Each
-- pool keeps the announced state in shared memory, so a request checks
-- its token without a round trip and a revocation still lands at once.
--
-- Payloads (space separated, ids and jtis contain no spaces):
--   v <user id> <token_version> <epoch of the change>   tokens up to it end
--   d <jti> <epoch of the token's expiry>               one token ends
--   p <user id>                                          profile changed

CREATE FUNCTION djamms_users_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- a deleted user's tokens end: a version no token carries
        PERFORM pg_notify('djamms_auth', 'v ' || OLD.id || ' 2147483647 '
            || floor(extract(epoch FROM now()))::bigint);
        PERFORM pg_notify('djamms_auth', 'p ' || OLD.id);
        RETURN NULL;
    END IF;
    IF NEW.token_version IS DISTINCT FROM OLD.token_version THEN
        PERFORM pg_notify('djamms_auth', 'v ' || NEW.id || ' ' || NEW.token_version
            || ' ' || floor(extract(epoch FROM coalesce(NEW.token_version_at, now())))::bigint);
    END IF;
    IF (NEW.username, NEW.email, NEW.display_name, NEW.role, NEW.is_anonymous,
        NEW.is_active, NEW.last_login, NEW.token_version)
       IS DISTINCT FROM
       (OLD.username, OLD.email, OLD.display_name, OLD.role, OLD.is_anonymous,
        OLD.is_active, OLD.last_login, OLD.token_version) THEN
        PERFORM pg_notify('djamms_auth', 'p ' || NEW.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_notify AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION djamms_users_notify();

CREATE FUNCTION djamms_revoked_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('djamms_auth', 'd ' || NEW.jti || ' '
        || floor(extract(epoch FROM NEW.expires_at))::bigint);
    RETURN NULL;
END
$$;

CREATE TRIGGER revoked_tokens_notify AFTER INSERT ON revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION djamms_revoked_notify();
