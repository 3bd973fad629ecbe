/*
 * handlers/auth.c: the /api/auth/ routes. Registration (and the in-place upgrade of
 * an anonymous account), login with per-account and per-address failure
 * counting, refresh-token rotation with reuse detection, logout, the
 * caller's own profile, password reset through the mail outbox, and API
 * keys. No response carries a password hash, and an email only to its
 * owner.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <libpq-fe.h>

#include "../fcgi/djamms.h"

#define PASSWORD_MIN	8
#define PASSWORD_MAX	1024
#define HASH_MAX	192

/* The columns every user query returns, in this order. */
#define USER_COLS \
	"id, username, email, display_name, role, is_anonymous, is_active," \
	" to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')," \
	" to_char(last_login AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')," \
	" token_version"
enum { U_ID, U_USERNAME, U_EMAIL, U_DISPLAY, U_ROLE, U_ANON, U_ACTIVE,
	U_CREATED, U_LOGIN, U_VERSION, U__N };

static const struct db_stmt st_registration_open = {
	"auth_registration_open",
	"SELECT value = 'false'::jsonb FROM system_settings WHERE key = 'registration_open'",
	0
};

static const struct db_stmt st_user_insert = {
	"auth_user_insert",
	"INSERT INTO users (username, email, password_hash, display_name, role)"
	" VALUES ($1, $2, $3, $4, 'user') RETURNING " USER_COLS,
	4
};

static const struct db_stmt st_user_upgrade = {
	"auth_user_upgrade",
	"UPDATE users SET username = $2, email = $3, password_hash = $4,"
	" display_name = coalesce($5, display_name), is_anonymous = false,"
	" role = 'user' WHERE id = $1 AND is_anonymous AND is_active"
	" RETURNING " USER_COLS,
	5
};

static const struct db_stmt st_user_anonymous = {
	"auth_user_anonymous",
	"INSERT INTO users (username, role, is_anonymous) VALUES ($1, 'guest', true)"
	" RETURNING " USER_COLS,
	1
};

static const struct db_stmt st_user_by_login = {
	"auth_user_by_login",
	"SELECT " USER_COLS ", password_hash FROM users"
	" WHERE username = $1::citext OR email = $1::citext",
	1
};

static const struct db_stmt st_user_by_id = {
	"auth_user_by_id",
	"SELECT " USER_COLS ", password_hash FROM users WHERE id = $1",
	1
};

static const struct db_stmt st_user_touch_login = {
	"auth_user_touch_login",
	"UPDATE users SET last_login = now() WHERE id = $1",
	1
};

static const struct db_stmt st_user_update = {
	"auth_user_update",
	"UPDATE users SET"
	" display_name = CASE WHEN $2::bool THEN $3 ELSE display_name END,"
	" email = CASE WHEN $4::bool THEN $5::citext ELSE email END,"
	" password_hash = CASE WHEN $6::bool THEN $7 ELSE password_hash END"
	" WHERE id = $1 AND is_active RETURNING " USER_COLS,
	7
};

static const struct db_stmt st_refresh_insert = {
	"auth_refresh_insert",
	"INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at, user_agent)"
	" VALUES ($1, coalesce($2::uuid, gen_random_uuid()), $3::bytea,"
	" now() + make_interval(days => $4::int), left($5, 512))",
	5
};

static const struct db_stmt st_refresh_lookup = {
	"auth_refresh_lookup",
	"SELECT t.id, t.family_id, t.rotated_at IS NOT NULL OR t.revoked_at IS NOT NULL,"
	" t.expires_at <= now(), t.user_id"
	" FROM refresh_tokens t WHERE t.token_hash = $1::bytea FOR UPDATE",
	1
};

static const struct db_stmt st_refresh_rotate = {
	"auth_refresh_rotate",
	"UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1",
	1
};

static const struct db_stmt st_refresh_revoke_family = {
	"auth_refresh_revoke_family",
	"UPDATE refresh_tokens SET revoked_at = now()"
	" WHERE family_id = $1 AND revoked_at IS NULL",
	1
};

static const struct db_stmt st_refresh_family_of = {
	"auth_refresh_family_of",
	"SELECT family_id FROM refresh_tokens WHERE token_hash = $1::bytea AND user_id = $2",
	2
};

static const struct db_stmt st_refresh_revoke_user = {
	"auth_refresh_revoke_user",
	"UPDATE refresh_tokens SET revoked_at = now()"
	" WHERE user_id = $1 AND revoked_at IS NULL",
	1
};

static const struct db_stmt st_user_by_email = {
	"auth_user_by_email",
	"SELECT id, email FROM users WHERE email = $1::citext AND is_active"
	" AND NOT is_anonymous",
	1
};

static const struct db_stmt st_reset_insert = {
	"auth_reset_insert",
	"INSERT INTO password_resets (user_id, token_hash, expires_at)"
	" VALUES ($1, $2::bytea, now() + interval '1 hour')",
	2
};

static const struct db_stmt st_outbox_insert = {
	"auth_outbox_insert",
	"INSERT INTO outbox (kind, to_address, subject, body)"
	" VALUES ('password_reset', $1, $2, $3)",
	3
};

static const struct db_stmt st_reset_take = {
	"auth_reset_take",
	"UPDATE password_resets SET used_at = now() WHERE token_hash = $1::bytea"
	" AND used_at IS NULL AND expires_at > now() RETURNING user_id",
	1
};

static const struct db_stmt st_set_password = {
	"auth_set_password",
	"UPDATE users SET password_hash = $2 WHERE id = $1 AND is_active AND NOT is_anonymous",
	2
};

static const struct db_stmt st_keys_list = {
	"auth_keys_list",
	"SELECT id, name, prefix, array_to_json(permissions)::text,"
	" to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	" to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	" to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
	" FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL"
	" AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC LIMIT 100",
	1
};

static const struct db_stmt st_keys_count = {
	"auth_keys_count",
	"SELECT count(*) FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL"
	" AND (expires_at IS NULL OR expires_at > now())",
	1
};

static const struct db_stmt st_key_insert = {
	"auth_key_insert",
	"INSERT INTO api_keys (user_id, name, prefix, key_hash, permissions, expires_at)"
	" VALUES ($1, $2, $3, $4::bytea, string_to_array($5, ',')::text[],"
	" CASE WHEN $6::int IS NULL THEN NULL ELSE now() + make_interval(days => $6::int) END)"
	" RETURNING id,"
	" to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	" to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
	6
};

static const struct db_stmt st_key_revoke = {
	"auth_key_revoke",
	"UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND user_id = $2"
	" AND revoked_at IS NULL RETURNING id",
	2
};

/* ---- shared pieces -------------------------------------------------- */

/* The caller's own account: email included, password hash never. */
static struct json_object *
self_json(PGresult *res)
{
	struct json_object	*o = json_object_new_object();
	const char		*role = PQgetvalue(res, 0, U_ROLE);

	json_object_object_add(o, "id", pg_json_str(res, 0, U_ID));
	json_object_object_add(o, "username", pg_json_str(res, 0, U_USERNAME));
	json_object_object_add(o, "email", pg_json_str(res, 0, U_EMAIL));
	json_object_object_add(o, "display_name", pg_json_str(res, 0, U_DISPLAY));
	json_object_object_add(o, "role", pg_json_str(res, 0, U_ROLE));
	json_object_object_add(o, "is_anonymous", json_object_new_boolean(
	    strcmp(PQgetvalue(res, 0, U_ANON), "t") == 0));
	json_object_object_add(o, "permissions", perms_json(role_perms(role)));
	json_object_object_add(o, "created_at", pg_json_str(res, 0, U_CREATED));
	json_object_object_add(o, "last_login", pg_json_str(res, 0, U_LOGIN));
	return o;
}

static const char *
user_agent(struct req *r)
{
	const char	*ua = req_header(r, "User-Agent");

	return ua != NULL ? ua : "";
}

/*
 * Tokens for the user in row 0 of res: a fresh access token and a refresh
 * token in family (NULL: a new family). Writes the response with status.
 */
static enum app_err
issue_tokens(struct req *r, PGresult *res, const char *family, int status)
{
	struct token_user	 u;
	char			 refresh[48], hash[67], days[16];
	const char		*args[5] = { PQgetvalue(res, 0, U_ID), family, hash,
				    days, user_agent(r) };
	PGresult		*ins;
	struct json_object	*o;
	time_t			 now = time(NULL);
	long			 exp;
	enum app_err		 err;
	char			*access;

	u.id = PQgetvalue(res, 0, U_ID);
	u.username = PQgetvalue(res, 0, U_USERNAME);
	u.email = PQgetisnull(res, 0, U_EMAIL) ? NULL : PQgetvalue(res, 0, U_EMAIL);
	u.role = PQgetvalue(res, 0, U_ROLE);
	u.is_anonymous = strcmp(PQgetvalue(res, 0, U_ANON), "t") == 0;
	u.ver = atol(PQgetvalue(res, 0, U_VERSION));
	random_token(refresh, 32);
	sha256_bytea(refresh, strlen(refresh), hash);
	snprintf(days, sizeof(days), "%ld", cfg.refresh_ttl_days);
	if ((err = db_exec(r, &ins, &st_refresh_insert, args)) != E_OK)
		return err;
	access = auth_sign_access(r->pool, &u, now, &exp);
	o = json_object_new_object();
	json_object_object_add(o, "access_token", json_object_new_string(access));
	json_object_object_add(o, "token_type", json_object_new_string("Bearer"));
	json_object_object_add(o, "expires_in", json_object_new_int64(cfg.access_ttl_s));
	json_object_object_add(o, "refresh_token", json_object_new_string(refresh));
	json_object_object_add(o, "refresh_expires_in",
	    json_object_new_int64(cfg.refresh_ttl_days * 86400));
	json_object_object_add(o, "user", self_json(res));
	return resp_json(r, status, o);
}

static int
username_ok(const char *s, size_t n)
{
	size_t	 i;

	if (n < 3 || n > 50)
		return 0;
	for (i = 0; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.' ||
		    s[i] == '-'))
			return 0;
	return 1;
}

/* Lower-cased and checked: local@domain.tld, no spaces, <= 254 bytes. */
static char *
email_normalise(struct mpool *pool, const char *s, size_t n)
{
	char		*e;
	const char	*at, *dot;
	size_t		 i;

	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n < 3 || n > 254)
		return NULL;
	e = pool_strndup(pool, s, n);
	for (i = 0; i < n; i++) {
		if ((unsigned char)e[i] <= ' ' || e[i] == 0x7f || e[i] == '<' ||
		    e[i] == '>' || e[i] == ',' || e[i] == ';')
			return NULL;
		e[i] = (char)tolower((unsigned char)e[i]);
	}
	at = strchr(e, '@');
	if (at == NULL || at == e || strchr(at + 1, '@') != NULL || at - e > 64)
		return NULL;
	dot = strrchr(at + 1, '.');
	if (dot == NULL || dot == at + 1 || dot[1] == '\0')
		return NULL;
	return e;
}

static enum app_err
password_field(struct req *r, struct json_object *body, const char *field,
    int required, const char **pw, size_t *len)
{
	return body_string(r, body, field, required, PASSWORD_MIN, PASSWORD_MAX,
	    pw, len);
}

/* ---- register / anonymous ------------------------------------------- */

static enum app_err
registration_closed(struct req *r, int *closed)
{
	PGresult	*res;
	enum app_err	 err;

	*closed = 0;
	if ((err = db_exec(r, &res, &st_registration_open, NULL)) != E_OK)
		return err;
	*closed = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	return E_OK;
}

/* POST /api/auth/register: a new account, or the caller's guest upgraded. */
static enum app_err
auth_register(struct req *r)
{
	static const char *const allowed[] = { "username", "email", "password",
	    "display_name", NULL };
	static const char *const forbidden[] = { "role", "id", "is_active",
	    "is_anonymous", "permissions", "created_at", "updated_at", NULL };
	struct json_object	*body;
	const char		*username, *email_in, *pw, *display;
	size_t			 ulen, elen, pwlen;
	char			*email, hash[HASH_MAX];
	PGresult		*res;
	enum app_err		 err;
	int			 closed, upgrade;

	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, forbidden)) != E_OK ||
	    (err = body_string(r, body, "username", 1, 1, 256, &username, &ulen)) != E_OK ||
	    (err = body_string(r, body, "email", 1, 1, 512, &email_in, &elen)) != E_OK ||
	    (err = password_field(r, body, "password", 1, &pw, &pwlen)) != E_OK ||
	    (err = body_string(r, body, "display_name", 0, 1, 100, &display, NULL)) != E_OK)
		return err;
	if (!username_ok(username, ulen))
		return body_fail(r, "username",
		    "must be 3 to 50 of A-Z, a-z, 0-9, '_', '.', '-'");
	if ((email = email_normalise(r->pool, email_in, elen)) == NULL)
		return body_fail(r, "email", "is not an email address");
	if ((err = registration_closed(r, &closed)) != E_OK)
		return err;
	if (closed)
		return req_fail(r, E_FORBIDDEN, "registration is closed", NULL);
	if ((err = password_hash(pw, pwlen, hash, sizeof(hash))) != E_OK)
		return err;
	upgrade = r->user_id != NULL && r->is_anonymous && r->api_key_id == NULL;
	if (upgrade) {
		const char	*args[5] = { r->user_id, username, email, hash, display };

		err = db_exec(r, &res, &st_user_upgrade, args);
	} else {
		const char	*args[4] = { username, email, hash, display };

		err = db_exec(r, &res, &st_user_insert, args);
	}
	if (err == E_CONFLICT)
		/* Which of the two is taken is not said: emails stay private. */
		return req_fail(r, err, "that username or email is already registered",
		    NULL);
	if (err != E_OK)
		return err;
	if (PQntuples(res) != 1)
		return req_fail(r, E_CONFLICT, "this account cannot be upgraded", NULL);
	if (upgrade) {
		/* The guest's old tokens carry the guest role: end them all. */
		PGresult	*x;

		db_exec(r, &x, &st_refresh_revoke_user,
		    (const char *const[]){ r->user_id });
		auth_revoke_user_tokens(r, r->user_id);
		if ((err = db_exec(r, &res, &st_user_by_id,
		    (const char *const[]){ r->user_id })) != E_OK)
			return err;
	}
	return issue_tokens(r, res, NULL, upgrade ? 200 : 201);
}

/* POST /api/auth/anonymous: a guest identity, usable at once. */
static enum app_err
auth_anonymous(struct req *r)
{
	char		 name[32], rnd[24];
	const char	*args[1] = { name };
	PGresult	*res;
	enum app_err	 err;
	int		 closed;

	if ((err = registration_closed(r, &closed)) != E_OK)
		return err;
	if (closed)
		return req_fail(r, E_FORBIDDEN, "registration is closed", NULL);
	random_token(rnd, 9);
	snprintf(name, sizeof(name), "guest-%s", rnd);
	if ((err = db_exec(r, &res, &st_user_anonymous, args)) != E_OK)
		return err;
	return issue_tokens(r, res, NULL, 201);
}

/* ---- login ---------------------------------------------------------- */

static void
lower_into(char *out, size_t cap, const char *s)
{
	size_t	 i;

	for (i = 0; s[i] != '\0' && i + 1 < cap; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[i] = '\0';
}

/*
 * Failed logins are counted per account and per address for
 * cfg.login_window_s. Without Redis the count is skipped: nginx's limit
 * on /api/auth/ still holds and logins keep working.
 */
static long
throttle_retry_after(struct req *r, const char *acct, const char *ip)
{
	struct redisReply	*rep;
	size_t			 i;
	long			 wait = 0;

	rep = rds_command(r, "MGET lfail:a:%s lfail:i:%s", acct, ip);
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2)
		return 0;
	for (i = 0; i < 2; i++) {
		struct redisReply	*ttl;

		if (rep->element[i]->type != REDIS_REPLY_STRING ||
		    atol(rep->element[i]->str) < cfg.login_max_failures)
			continue;
		ttl = rds_command(r, "TTL lfail:%s:%s", i == 0 ? "a" : "i",
		    i == 0 ? acct : ip);
		if (ttl != NULL && ttl->type == REDIS_REPLY_INTEGER &&
		    ttl->integer > wait)
			wait = (long)ttl->integer;
		if (wait <= 0)
			wait = 1;
	}
	return wait;
}

static void
throttle_count(struct req *r, const char *acct, const char *ip)
{
	rds_command(r, "INCR lfail:a:%s", acct);
	rds_command(r, "EXPIRE lfail:a:%s %ld NX", acct, cfg.login_window_s);
	rds_command(r, "INCR lfail:i:%s", ip);
	rds_command(r, "EXPIRE lfail:i:%s %ld NX", ip, cfg.login_window_s);
}

/* POST /api/auth/login {"login" (or "username"/"email"), "password"} */
static enum app_err
auth_login(struct req *r)
{
	static const char *const allowed[] = { "login", "username", "email",
	    "password", NULL };
	struct json_object	*body;
	const char		*login = NULL, *pw, *hash = NULL, *ip;
	size_t			 pwlen;
	char			 acct[272];
	PGresult		*res;
	enum app_err		 err;
	long			 wait;
	int			 match, i;

	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, NULL)) != E_OK)
		return err;
	for (i = 0; i < 3 && login == NULL; i++)
		if ((err = body_string(r, body, allowed[i], 0, 1, 254, &login,
		    NULL)) != E_OK)
			return err;
	if (login == NULL)
		return body_fail(r, "login", "is required (a username or email)");
	if ((err = body_string(r, body, "password", 1, 1, PASSWORD_MAX, &pw,
	    &pwlen)) != E_OK)
		return err;
	ip = req_env(r, "REMOTE_ADDR");
	if (ip == NULL)
		ip = "unknown";
	if ((err = db_exec(r, &res, &st_user_by_login,
	    (const char *const[]){ login })) != E_OK)
		return err;
	/*
	 * Failures count against the account, whichever name was typed; an
	 * unknown name counts under itself so probing it is throttled too.
	 */
	if (PQntuples(res) == 1)
		snprintf(acct, sizeof(acct), "%s", PQgetvalue(res, 0, U_ID));
	else
		lower_into(acct, sizeof(acct), login);
	/* Redis keys are built with %s: keep them free of spaces. */
	for (i = 0; acct[i] != '\0'; i++)
		if (isspace((unsigned char)acct[i]))
			acct[i] = '_';
	if ((wait = throttle_retry_after(r, acct, ip)) > 0) {
		resp_header(r, "Retry-After", pool_printf(r->pool, "%ld", wait));
		return req_fail(r, E_RATE_LIMITED, pool_printf(r->pool,
		    "too many failed sign-ins; try again in %ld seconds", wait), NULL);
	}
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, U__N))
		hash = PQgetvalue(res, 0, U__N);
	/* Always one verification, against a dummy hash if need be. */
	if ((err = password_verify(hash, pw, pwlen, &match)) != E_OK)
		return err;
	if (!match) {
		throttle_count(r, acct, ip);
		return req_fail(r, E_UNAUTHORIZED, "wrong username or password", NULL);
	}
	if (strcmp(PQgetvalue(res, 0, U_ACTIVE), "t") != 0)
		return req_fail(r, E_FORBIDDEN, "this account is deactivated", NULL);
	rds_command(r, "DEL lfail:a:%s", acct);
	auth_forget_user(r, PQgetvalue(res, 0, U_ID));	/* last_login moves */
	{
		PGresult	*touched;

		db_exec(r, &touched, &st_user_touch_login,
		    (const char *const[]){ PQgetvalue(res, 0, U_ID) });
	}
	return issue_tokens(r, res, NULL, 200);
}

/* ---- refresh -------------------------------------------------------- */

struct refresh_tx {
	const char	*hash;
	PGresult	*user;		/* set on success */
	const char	*family;
	int		 outcome;	/* 0 ok, 1 unknown, 2 reused, 3 expired/inactive */
};

static enum app_err
refresh_body(struct req *r, void *arg)
{
	struct refresh_tx	*t = arg;
	PGresult		*res;
	enum app_err		 err;

	t->outcome = 1;
	if ((err = db_exec(r, &res, &st_refresh_lookup,
	    (const char *const[]){ t->hash })) != E_OK)
		return err;
	if (PQntuples(res) != 1)
		return E_OK;
	t->family = pool_strdup(r->pool, PQgetvalue(res, 0, 1));
	if (strcmp(PQgetvalue(res, 0, 2), "t") == 0) {
		/*
		 * A rotated token came back: someone kept a copy. Revoke the
		 * whole family and commit that, then refuse.
		 */
		t->outcome = 2;
		return db_exec(r, &res, &st_refresh_revoke_family,
		    (const char *const[]){ t->family });
	}
	if (strcmp(PQgetvalue(res, 0, 3), "t") == 0) {
		t->outcome = 3;
		return E_OK;
	}
	{
		const char	*id = pool_strdup(r->pool, PQgetvalue(res, 0, 0));
		const char	*uid = pool_strdup(r->pool, PQgetvalue(res, 0, 4));

		if ((err = db_exec(r, &t->user, &st_user_by_id,
		    (const char *const[]){ uid })) != E_OK)
			return err;
		if (PQntuples(t->user) != 1 ||
		    strcmp(PQgetvalue(t->user, 0, U_ACTIVE), "t") != 0) {
			t->outcome = 3;
			return E_OK;
		}
		if ((err = db_exec(r, &res, &st_refresh_rotate,
		    (const char *const[]){ id })) != E_OK)
			return err;
	}
	t->outcome = 0;
	return E_OK;
}

/* POST /api/auth/refresh {"refresh_token"}: rotate, in the same family. */
static enum app_err
auth_refresh(struct req *r)
{
	static const char *const allowed[] = { "refresh_token", NULL };
	struct json_object	*body;
	const char		*token;
	size_t			 len;
	char			 hash[67];
	struct refresh_tx	 t = { hash, NULL, NULL, 1 };
	enum app_err		 err;

	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, NULL)) != E_OK ||
	    (err = body_string(r, body, "refresh_token", 1, 1, 256, &token, &len)) != E_OK)
		return err;
	sha256_bytea(token, len, hash);
	if ((err = db_tx(r, "READ COMMITTED", refresh_body, &t)) != E_OK)
		return err;
	switch (t.outcome) {
	case 0:
		break;
	case 2:
		log_warn("refresh token reuse; family revoked", "\"family\":\"%s\"",
		    t.family);
		return req_fail(r, E_UNAUTHORIZED, "refresh token already used; "
		    "this session has been ended", NULL);
	default:
		return req_fail(r, E_UNAUTHORIZED, "invalid or expired refresh token",
		    NULL);
	}
	return issue_tokens(r, t.user, t.family, 200);
}

/* ---- logout --------------------------------------------------------- */

/*
 * POST /api/auth/logout [{"refresh_token"}]: ends this access token now
 * and, when given, the refresh token's whole session.
 */
static enum app_err
auth_logout(struct req *r)
{
	static const char *const allowed[] = { "refresh_token", NULL };
	struct json_object	*body = NULL;
	const char		*token = NULL;
	size_t			 len = 0;
	enum app_err		 err;
	const char		*cl = req_env(r, "CONTENT_LENGTH");

	if (cl != NULL && strcmp(cl, "0") != 0 && *cl != '\0') {
		if ((err = req_json_body(r, &body)) != E_OK ||
		    (err = body_only(r, body, allowed, NULL)) != E_OK ||
		    (err = body_string(r, body, "refresh_token", 0, 1, 256, &token,
		    &len)) != E_OK)
			return err;
	}
	if (token != NULL) {
		char		 hash[67];
		PGresult	*res;

		sha256_bytea(token, len, hash);
		if ((err = db_exec(r, &res, &st_refresh_family_of,
		    (const char *const[]){ hash, r->user_id })) != E_OK)
			return err;
		if (PQntuples(res) == 1 && (err = db_exec(r, &res,
		    &st_refresh_revoke_family, (const char *const[]){
		    PQgetvalue(res, 0, 0) })) != E_OK)
			return err;
	}
	if (r->jti != NULL)
		auth_deny_jti(r, r->jti, r->user_id, r->token_exp);
	r->status = 204;
	return E_OK;
}

/* ---- the caller's own account --------------------------------------- */

/*
 * GET /api/auth/user. While the pool's shared tables are live, served
 * from this worker's copy of the profile, good as long as the profile
 * generation it was read under (every change to the row moves it, see
 * sql/006). Otherwise from the copy in Redis that the token check brought
 * along. The generation is read before the row, so a change committed in
 * between leaves a copy that is already stale, never one that looks new.
 */
static enum app_err
auth_user_get(struct req *r)
{
	PGresult	*res;
	enum app_err	 err;
	uint32_t	 gen;
	int		 live = revoke_profile_gen(r->user_id, &gen) == 0;
	const char	*json;
	size_t		 len;

	if (live && (json = auth_self_cached(r->user_id, gen, &len)) != NULL) {
		r->status = 200;
		r->content_type = "application/json";
		r->body = json;
		r->body_len = len;
		return E_OK;
	}
	if (!live && r->self_cache != NULL) {
		r->status = 200;
		r->content_type = "application/json";
		r->body = r->self_cache;
		r->body_len = strlen(r->self_cache);
		return E_OK;
	}
	if ((err = db_exec(r, &res, &st_user_by_id,
	    (const char *const[]){ r->user_id })) != E_OK)
		return err;
	if (PQntuples(res) != 1)
		return E_NOT_FOUND;
	err = resp_json(r, 200, self_json(res));
	if (err == E_OK && live)
		auth_self_store(r->user_id, gen, r->body, r->body_len);
	else if (err == E_OK && r->api_key_id == NULL)
		rds_command(r, "SET uself:%s %b EX 60", r->user_id, r->body,
		    r->body_len);
	return err;
}

/*
 * The update and, with a new password, the end of every other session
 * commit together: a password change never leaves old sessions alive.
 */
struct profile_tx {
	const char *const	*args;
	int			 new_password;
	PGresult		*res;
};

static enum app_err
profile_body(struct req *r, void *arg)
{
	struct profile_tx	*t = arg;
	PGresult		*x;
	enum app_err		 err;

	if ((err = db_exec(r, &t->res, &st_user_update, t->args)) != E_OK)
		return err;
	if (!t->new_password || PQntuples(t->res) != 1)
		return E_OK;
	if ((err = db_exec(r, &x, &st_refresh_revoke_user,
	    (const char *const[]){ r->user_id })) != E_OK)
		return err;
	auth_revoke_user_tokens(r, r->user_id);
	return E_OK;
}

/*
 * PUT /api/auth/user: display_name, email and password only; changing
 * the email or password needs current_password. Anything else in the
 * body (role, id, is_active...) is refused: no mass assignment.
 */
static enum app_err
auth_user_put(struct req *r)
{
	static const char *const allowed[] = { "display_name", "email", "password",
	    "current_password", NULL };
	static const char *const forbidden[] = { "role", "id", "is_active",
	    "is_anonymous", "permissions", "username", "created_at", "updated_at",
	    "last_login", "password_hash", "preferences", NULL };
	struct json_object	*body, *v;
	const char		*display = NULL, *email_in, *pw, *cur;
	size_t			 elen, pwlen, curlen;
	char			*email = NULL, hash[HASH_MAX];
	PGresult		*res;
	enum app_err		 err;
	int			 set_display, match;
	const char		*args[7];

	if (r->api_key_id != NULL)
		return req_fail(r, E_FORBIDDEN,
		    "account changes need a signed-in session, not an API key", NULL);
	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, forbidden)) != E_OK)
		return err;
	set_display = json_object_object_get_ex(body, "display_name", &v);
	if (set_display && v != NULL &&
	    (err = body_string(r, body, "display_name", 1, 1, 100, &display,
	    NULL)) != E_OK)
		return err;
	if ((err = body_string(r, body, "email", 0, 1, 512, &email_in, &elen)) != E_OK ||
	    (err = password_field(r, body, "password", 0, &pw, &pwlen)) != E_OK ||
	    (err = body_string(r, body, "current_password", 0, 1, PASSWORD_MAX,
	    &cur, &curlen)) != E_OK)
		return err;
	if (email_in != NULL &&
	    (email = email_normalise(r->pool, email_in, elen)) == NULL)
		return body_fail(r, "email", "is not an email address");
	if ((email != NULL || pw != NULL) && r->is_anonymous)
		return req_fail(r, E_FORBIDDEN,
		    "a guest account gets an email and password by registering", NULL);
	if (email != NULL || pw != NULL) {
		if (cur == NULL)
			return body_fail(r, "current_password",
			    "is required to change the email or password");
		if ((err = db_exec(r, &res, &st_user_by_id,
		    (const char *const[]){ r->user_id })) != E_OK)
			return err;
		if (PQntuples(res) != 1)
			return E_NOT_FOUND;
		if ((err = password_verify(PQgetisnull(res, 0, U__N) ? NULL :
		    PQgetvalue(res, 0, U__N), cur, curlen, &match)) != E_OK)
			return err;
		if (!match)
			return req_fail(r, E_FORBIDDEN, "current_password is wrong", NULL);
	}
	if (pw != NULL && (err = password_hash(pw, pwlen, hash, sizeof(hash))) != E_OK)
		return err;
	args[0] = r->user_id;
	args[1] = set_display ? "t" : "f";
	args[2] = display;
	args[3] = email != NULL ? "t" : "f";
	args[4] = email;
	args[5] = pw != NULL ? "t" : "f";
	args[6] = pw != NULL ? hash : NULL;
	{
		struct profile_tx	 t = { args, pw != NULL, NULL };

		err = db_tx(r, "READ COMMITTED", profile_body, &t);
		res = t.res;
	}
	if (err == E_CONFLICT)
		return req_fail(r, err, "that email is already registered", NULL);
	if (err != E_OK)
		return err;
	if (res == NULL || PQntuples(res) != 1)
		return E_NOT_FOUND;
	auth_forget_user(r, r->user_id);
	if (pw != NULL) {
		if ((err = db_exec(r, &res, &st_user_by_id,
		    (const char *const[]){ r->user_id })) != E_OK)
			return err;
		return issue_tokens(r, res, NULL, 200);
	}
	return resp_json(r, 200, self_json(res));
}

/* ---- password reset ------------------------------------------------- */

struct reset_tx {
	const char	*user_id;
	const char	*email;
	const char	*hash;
	const char	*token;
};

/* After the reset's commit: the job runner sends it at once. */
static void
reset_mail_now(void *arg)
{
	(void)arg;
	if (jobs_enqueue("mail", NULL, 3, NULL) != 0)
		log_warn("mail job not queued; the runner's minutely run sends it",
		    NULL);
}

static enum app_err
reset_body(struct req *r, void *arg)
{
	struct reset_tx	*t = arg;
	PGresult	*res;
	enum app_err	 err;
	const char	*subject = "Reset your djamms password";
	char		*text;

	if ((err = db_exec(r, &res, &st_reset_insert,
	    (const char *const[]){ t->user_id, t->hash })) != E_OK)
		return err;
	text = pool_printf(r->pool,
	    "Someone asked to reset the password of your djamms account.\n\n"
	    "To choose a new one, open this link within an hour:\n"
	    "%s/reset-password?token=%s\n\n"
	    "If it was not you, ignore this message; your password stays as it is.\n",
	    cfg.public_url, t->token);
	db_after_commit(reset_mail_now, NULL);
	return db_exec(r, &res, &st_outbox_insert,
	    (const char *const[]){ t->email, subject, text });
}

/*
 * POST /api/auth/password-reset {"email"}: the same answer whether or
 * not the address has an account, so it cannot be used to probe.
 */
static enum app_err
auth_password_reset(struct req *r)
{
	static const char *const allowed[] = { "email", NULL };
	struct json_object	*body, *o;
	const char		*email_in;
	size_t			 elen;
	char			*email, token[48], hash[67];
	PGresult		*res;
	enum app_err		 err;

	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, NULL)) != E_OK ||
	    (err = body_string(r, body, "email", 1, 1, 512, &email_in, &elen)) != E_OK)
		return err;
	if ((email = email_normalise(r->pool, email_in, elen)) == NULL)
		return body_fail(r, "email", "is not an email address");
	if ((err = db_exec(r, &res, &st_user_by_email,
	    (const char *const[]){ email })) != E_OK)
		return err;
	if (PQntuples(res) == 1) {
		struct reset_tx	 t;

		random_token(token, 32);
		sha256_bytea(token, strlen(token), hash);
		t.user_id = pool_strdup(r->pool, PQgetvalue(res, 0, 0));
		t.email = pool_strdup(r->pool, PQgetvalue(res, 0, 1));
		t.hash = hash;
		t.token = token;
		if ((err = db_tx(r, "READ COMMITTED", reset_body, &t)) != E_OK)
			return err;
	}
	o = json_object_new_object();
	json_object_object_add(o, "status", json_object_new_string("accepted"));
	json_object_object_add(o, "message", json_object_new_string(
	    "If this address has an account, a reset link is on its way."));
	return resp_json(r, 202, o);
}

struct confirm_tx {
	const char	*hash;
	const char	*password_hash;
	const char	*user_id;	/* set when the token was good */
};

static enum app_err
confirm_body(struct req *r, void *arg)
{
	struct confirm_tx	*t = arg;
	PGresult		*res;
	enum app_err		 err;

	if ((err = db_exec(r, &res, &st_reset_take,
	    (const char *const[]){ t->hash })) != E_OK)
		return err;
	if (PQntuples(res) != 1)
		return E_OK;
	t->user_id = pool_strdup(r->pool, PQgetvalue(res, 0, 0));
	if ((err = db_exec(r, &res, &st_set_password,
	    (const char *const[]){ t->user_id, t->password_hash })) != E_OK)
		return err;
	if (strcmp(PQcmdTuples(res), "1") != 0) {
		/* Deactivated since the mail went out: roll back, keep the token. */
		t->user_id = NULL;
		return req_fail(r, E_INVALID, "token: the account is not active",
		    NULL);
	}
	return db_exec(r, &res, &st_refresh_revoke_user,
	    (const char *const[]){ t->user_id });
}

/* POST /api/auth/password-confirm {"token","password"}: single use. */
static enum app_err
auth_password_confirm(struct req *r)
{
	static const char *const allowed[] = { "token", "password", NULL };
	struct json_object	*body, *o;
	const char		*token, *pw;
	size_t			 tlen, pwlen;
	char			 hash[67], pwhash[HASH_MAX];
	struct confirm_tx	 t = { hash, pwhash, NULL };
	enum app_err		 err;

	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, NULL)) != E_OK ||
	    (err = body_string(r, body, "token", 1, 1, 256, &token, &tlen)) != E_OK ||
	    (err = password_field(r, body, "password", 1, &pw, &pwlen)) != E_OK)
		return err;
	sha256_bytea(token, tlen, hash);
	if ((err = password_hash(pw, pwlen, pwhash, sizeof(pwhash))) != E_OK)
		return err;
	if ((err = db_tx(r, "READ COMMITTED", confirm_body, &t)) != E_OK)
		return err;
	if (t.user_id == NULL)
		return body_fail(r, "token", "is invalid, used or expired");
	auth_revoke_user_tokens(r, t.user_id);
	o = json_object_new_object();
	json_object_object_add(o, "status", json_object_new_string("ok"));
	return resp_json(r, 200, o);
}

/* ---- API keys ------------------------------------------------------- */

static enum app_err
keys_allowed(struct req *r)
{
	if (r->is_anonymous)
		return req_fail(r, E_FORBIDDEN, "guest accounts cannot hold API keys",
		    NULL);
	if (r->api_key_id != NULL)
		return req_fail(r, E_FORBIDDEN,
		    "API keys are managed with a signed-in session, not a key", NULL);
	return E_OK;
}

/* GET /api/auth/api-keys: the caller's keys, never their secrets. */
static enum app_err
auth_keys_list(struct req *r)
{
	struct json_object	*a, *o;
	PGresult		*res;
	enum app_err		 err;
	int			 i;

	if ((err = keys_allowed(r)) != E_OK ||
	    (err = db_exec(r, &res, &st_keys_list,
	    (const char *const[]){ r->user_id })) != E_OK)
		return err;
	a = json_object_new_array();
	for (i = 0; i < PQntuples(res); i++) {
		struct json_object	*k = json_object_new_object();

		json_object_object_add(k, "id", pg_json_str(res, i, 0));
		json_object_object_add(k, "name", pg_json_str(res, i, 1));
		json_object_object_add(k, "prefix", pg_json_str(res, i, 2));
		json_object_object_add(k, "permissions",
		    json_tokener_parse(PQgetvalue(res, i, 3)));
		json_object_object_add(k, "created_at", pg_json_str(res, i, 4));
		json_object_object_add(k, "expires_at", pg_json_str(res, i, 5));
		json_object_object_add(k, "last_used_at", pg_json_str(res, i, 6));
		json_object_array_add(a, k);
	}
	o = json_object_new_object();
	json_object_object_add(o, "api_keys", a);
	return resp_json(r, 200, o);
}

/*
 * POST /api/auth/api-keys {"name","permissions":[...],"expires_in_days"}:
 * the key is in this response and nowhere else, ever.
 */
static enum app_err
auth_keys_create(struct req *r)
{
	static const char *const allowed[] = { "name", "permissions",
	    "expires_in_days", NULL };
	struct json_object	*body, *perms, *days_v, *o;
	const char		*name;
	char			 key[64], raw[48], hash[67], prefix[16], days[16];
	char			*list;
	size_t			 i, n, len = 0;
	unsigned		 want = 0;
	PGresult		*res;
	enum app_err		 err;

	if ((err = keys_allowed(r)) != E_OK ||
	    (err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, NULL)) != E_OK ||
	    (err = body_string(r, body, "name", 1, 1, 100, &name, NULL)) != E_OK)
		return err;
	if (!json_object_object_get_ex(body, "permissions", &perms) ||
	    !json_object_is_type(perms, json_type_array) ||
	    (n = json_object_array_length(perms)) == 0 || n > 12)
		return body_fail(r, "permissions",
		    "must be a non-empty array of permission names");
	list = pool_alloc(r->pool, 12 * 20);
	list[0] = '\0';
	for (i = 0; i < n; i++) {
		struct json_object	*p = json_object_array_get_idx(perms, i);
		unsigned		 bit;

		if (!json_object_is_type(p, json_type_string) ||
		    (bit = perm_parse(json_object_get_string(p))) == 0)
			return body_fail(r, "permissions", "names an unknown permission");
		if (!(role_perms(r->role) & bit))
			return body_fail(r, "permissions", pool_printf(r->pool,
			    "%s is more than your role allows",
			    json_object_get_string(p)));
		if (want & bit)
			continue;
		want |= bit;
		len += (size_t)snprintf(list + len, 12 * 20 - len, "%s%s",
		    len ? "," : "", perm_name(bit));
	}
	days[0] = '\0';
	if (json_object_object_get_ex(body, "expires_in_days", &days_v) &&
	    days_v != NULL) {
		if (!json_object_is_type(days_v, json_type_int) ||
		    json_object_get_int64(days_v) < 1 ||
		    json_object_get_int64(days_v) > 3650)
			return body_fail(r, "expires_in_days", "must be 1 to 3650");
		snprintf(days, sizeof(days), "%lld",
		    (long long)json_object_get_int64(days_v));
	}
	if ((err = db_exec(r, &res, &st_keys_count,
	    (const char *const[]){ r->user_id })) != E_OK)
		return err;
	if (atol(PQgetvalue(res, 0, 0)) >= 50)
		return req_fail(r, E_INVALID, "at most 50 API keys per account", NULL);
	random_token(raw, 32);
	snprintf(key, sizeof(key), "djk_%s", raw);
	snprintf(prefix, sizeof(prefix), "%.12s", key);
	sha256_bytea(key, strlen(key), hash);
	if ((err = db_exec(r, &res, &st_key_insert, (const char *const[]){
	    r->user_id, name, prefix, hash, list, days[0] ? days : NULL })) != E_OK)
		return err;
	o = json_object_new_object();
	json_object_object_add(o, "id", pg_json_str(res, 0, 0));
	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, "prefix", json_object_new_string(prefix));
	json_object_object_add(o, "permissions", perms_json(want));
	json_object_object_add(o, "created_at", pg_json_str(res, 0, 1));
	json_object_object_add(o, "expires_at", pg_json_str(res, 0, 2));
	json_object_object_add(o, "key", json_object_new_string(key));
	return resp_json(r, 201, o);
}

/* DELETE /api/auth/api-keys/:id: another user's key is simply not found. */
static enum app_err
auth_keys_delete(struct req *r)
{
	const char	*id = req_param(r, "id");
	PGresult	*res;
	enum app_err	 err;

	if ((err = keys_allowed(r)) != E_OK)
		return err;
	if (!uuid_valid(id))
		return E_NOT_FOUND;
	if ((err = db_exec(r, &res, &st_key_revoke,
	    (const char *const[]){ id, r->user_id })) != E_OK)
		return err;
	if (PQntuples(res) != 1)
		return E_NOT_FOUND;
	r->status = 204;
	return E_OK;
}

static const struct route auth_routes[] = {
	/* methods	pattern				handler			needs		flags */
	{ M_POST,	"/api/auth/register",		auth_register,		P_NONE,		0 },
	{ M_POST,	"/api/auth/anonymous",		auth_anonymous,		P_NONE,		0 },
	{ M_POST,	"/api/auth/login",		auth_login,		P_NONE,		0 },
	{ M_POST,	"/api/auth/refresh",		auth_refresh,		P_NONE,		0 },
	{ M_POST,	"/api/auth/logout",		auth_logout,		P_AUTHENTICATED, 0 },
	{ M_GET,	"/api/auth/user",		auth_user_get,		P_AUTHENTICATED, 0 },
	{ M_PUT,	"/api/auth/user",		auth_user_put,		P_AUTHENTICATED, 0 },
	{ M_POST,	"/api/auth/password-reset",	auth_password_reset,	P_NONE,		0 },
	{ M_POST,	"/api/auth/password-confirm",	auth_password_confirm,	P_NONE,		0 },
	{ M_GET,	"/api/auth/api-keys",		auth_keys_list,		P_AUTHENTICATED, 0 },
	{ M_POST,	"/api/auth/api-keys",		auth_keys_create,	P_AUTHENTICATED, 0 },
	{ M_DELETE,	"/api/auth/api-keys/:id",	auth_keys_delete,	P_AUTHENTICATED, 0 },
};

const struct route_table auth_route_table = {
	auth_routes, sizeof(auth_routes) / sizeof(auth_routes[0])
};
