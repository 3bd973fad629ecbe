/*
 * fcgi/auth.c: identities. The permission matrix, access tokens (JWT
 * HS256 through libjwt 1.10, which checks the signature and nothing else:
 * the algorithm, key id and every claim are checked here by hand), API
 * keys, Argon2id password hashing behind a pool-wide permit, and the
 * deny-list that ends tokens early (logout, deactivation, role change).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <argon2.h>
#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <jwt.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "djamms.h"

#define CLOCK_SKEW_S	60
#define TOKEN_MAX	4096

/* ---- the permission matrix --------------------------------------- */

static const char *const perm_names[] = {
	"read:tracks", "write:tracks", "delete:tracks",
	"read:playlists", "write:playlists", "delete:playlists",
	"read:schedules", "write:schedules", "delete:schedules",
	"read:system", "write:system", "admin:system",
};

#define GUEST_PERMS	(P_READ_TRACKS | P_READ_PLAYLISTS | P_READ_SCHEDULES)
/* A user's write and delete rights cover their own content only. */
#define USER_PERMS	(GUEST_PERMS | P_WRITE_TRACKS | P_DELETE_TRACKS | \
			 P_WRITE_PLAYLISTS | P_DELETE_PLAYLISTS)
#define MOD_PERMS	(USER_PERMS | P_WRITE_SCHEDULES | P_DELETE_SCHEDULES | \
			 P_READ_SYSTEM)
#define ADMIN_PERMS	(MOD_PERMS | P_WRITE_SYSTEM | P_ADMIN_SYSTEM)

static const struct {
	const char	*role;
	unsigned	 perms;
} roles[] = {
	{ "guest",	GUEST_PERMS },
	{ "user",	USER_PERMS },
	{ "moderator",	MOD_PERMS },
	{ "admin",	ADMIN_PERMS },
};

unsigned
role_perms(const char *role)
{
	size_t	 i;

	for (i = 0; role != NULL && i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcmp(role, roles[i].role) == 0)
			return roles[i].perms;
	return 0;
}

int
role_valid(const char *role)
{
	return role_perms(role) != 0;
}

const char *
perm_name(unsigned bit)
{
	size_t	 i;

	for (i = 0; i < sizeof(perm_names) / sizeof(perm_names[0]); i++)
		if (bit == 1u << i)
			return perm_names[i];
	return NULL;
}

unsigned
perm_parse(const char *name)
{
	size_t	 i;

	for (i = 0; name != NULL && i < sizeof(perm_names) / sizeof(perm_names[0]); i++)
		if (strcmp(name, perm_names[i]) == 0)
			return 1u << i;
	return 0;
}

struct json_object *
perms_json(unsigned perms)
{
	struct json_object	*a = json_object_new_array();
	size_t			 i;

	for (i = 0; i < sizeof(perm_names) / sizeof(perm_names[0]); i++)
		if (perms & (1u << i))
			json_object_array_add(a, json_object_new_string(perm_names[i]));
	return a;
}

/* ---- encodings ------------------------------------------------------ */

void
b64url_encode(const unsigned char *in, size_t n, char *out)
{
	int	 len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	int	 i;

	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (i = 0; i < len; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
}

int
b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap,
    size_t *outlen)
{
	char	 buf[TOKEN_MAX + 8];
	size_t	 i, padded = (n + 3) / 4 * 4;
	int	 len;

	if (n % 4 == 1 || padded >= sizeof(buf) || padded / 4 * 3 > cap)
		return -1;
	for (i = 0; i < n; i++) {
		char	 c = in[i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9')))
			return -1;
		buf[i] = c;
	}
	for (; i < padded; i++)
		buf[i] = '=';
	buf[padded] = '\0';
	len = EVP_DecodeBlock(out, (unsigned char *)buf, (int)padded);
	if (len < 0)
		return -1;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	*outlen = (size_t)len - (padded - n);
	return 0;
}

void
random_token(char *out, size_t nbytes)
{
	unsigned char	 raw[64];

	if (nbytes > sizeof(raw) || RAND_bytes(raw, (int)nbytes) != 1)
		abort();	/* no randomness, no tokens: never fall back */
	b64url_encode(raw, nbytes, out);
}

void
sha256_hex(const char *s, size_t len, char out[65])
{
	unsigned char	 md[32];
	unsigned int	 mdlen = 0;
	int		 i;

	EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void
sha256_bytea(const char *s, size_t len, char out[67])
{
	out[0] = '\\';
	out[1] = 'x';
	sha256_hex(s, len, out + 2);
}

int
uuid_valid(const char *s)
{
	int	 i;

	if (s == NULL || strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	}
	return 1;
}

/* ---- keys ----------------------------------------------------------- */

static char	 kid_current[17], kid_previous[17];

static void
key_id(const char *secret, size_t len, char out[17])
{
	char	 hex[67];

	sha256_bytea(secret, len, hex);
	memcpy(out, hex + 2, 16);	/* names the key without revealing it */
	out[16] = '\0';
}

int
auth_init(void)
{
	if (cfg.jwt_secret == NULL || cfg.jwt_secret_len < 32) {
		fprintf(stderr, "djamms: DJAMMS_JWT_SECRET (or _FILE) must hold at "
		    "least 32 bytes of secret\n");
		return -1;
	}
	key_id(cfg.jwt_secret, cfg.jwt_secret_len, kid_current);
	kid_previous[0] = '\0';
	if (cfg.jwt_previous_secret != NULL) {
		if (cfg.jwt_previous_secret_len < 32) {
			fprintf(stderr, "djamms: DJAMMS_JWT_PREVIOUS_SECRET must hold "
			    "at least 32 bytes\n");
			return -1;
		}
		key_id(cfg.jwt_previous_secret, cfg.jwt_previous_secret_len,
		    kid_previous);
	}
	return 0;
}

/* ---- access tokens -------------------------------------------------- */

char *
auth_sign_access(struct mpool *pool, const struct token_user *u, time_t now,
    long *exp)
{
	jwt_t			*j = NULL;
	char			 jti[44], *tok, *copy;
	struct json_object	*perms = perms_json(role_perms(u->role));
	char			*grants;

	random_token(jti, 18);
	*exp = (long)now + cfg.access_ttl_s;
	if (jwt_new(&j) != 0)
		abort();
	grants = pool_printf(pool, "{\"permissions\":%s}",
	    json_object_to_json_string_ext(perms, JSON_C_TO_STRING_PLAIN));
	json_object_put(perms);
	if (jwt_set_alg(j, JWT_ALG_HS256, (const unsigned char *)cfg.jwt_secret,
	    (int)cfg.jwt_secret_len) != 0 ||
	    jwt_add_header(j, "kid", kid_current) != 0 ||
	    jwt_add_grant(j, "sub", u->id) != 0 ||
	    jwt_add_grant(j, "username", u->username) != 0 ||
	    (u->email != NULL && jwt_add_grant(j, "email", u->email) != 0) ||
	    jwt_add_grant(j, "role", u->role) != 0 ||
	    jwt_add_grants_json(j, grants) != 0 ||
	    jwt_add_grant_int(j, "iat", (long)now) != 0 ||
	    jwt_add_grant_int(j, "exp", *exp) != 0 ||
	    jwt_add_grant(j, "iss", cfg.jwt_issuer) != 0 ||
	    jwt_add_grant(j, "aud", cfg.jwt_audience) != 0 ||
	    jwt_add_grant(j, "jti", jti) != 0 ||
	    jwt_add_grant(j, "typ", "access") != 0 ||
	    jwt_add_grant_int(j, "ver", u->ver) != 0 ||
	    jwt_add_grant_bool(j, "anon", u->is_anonymous) != 0)
		abort();
	if ((tok = jwt_encode_str(j)) == NULL)
		abort();
	copy = pool_strdup(pool, tok);
	free(tok);
	jwt_free(j);
	return copy;
}

/* The protected header, decoded by hand to choose the key before libjwt. */
static enum app_err
header_key(const char *token, const char **key, size_t *keylen, const char **why)
{
	const char		*dot = strchr(token, '.');
	unsigned char		 raw[1024];
	size_t			 n;
	struct json_object	*h, *alg, *kid;
	enum app_err		 err = E_UNAUTHORIZED;
	const char		*k;

	*why = "malformed token";
	if (dot == NULL || b64url_decode(token, (size_t)(dot - token), raw,
	    sizeof(raw) - 1, &n) != 0)
		return E_UNAUTHORIZED;
	raw[n] = '\0';
	if ((h = json_tokener_parse((char *)raw)) == NULL)
		return E_UNAUTHORIZED;
	if (!json_object_is_type(h, json_type_object) ||
	    !json_object_object_get_ex(h, "alg", &alg) ||
	    !json_object_is_type(alg, json_type_string) ||
	    strcmp(json_object_get_string(alg), "HS256") != 0) {
		*why = "token algorithm is not HS256";
		goto out;
	}
	if (!json_object_object_get_ex(h, "kid", &kid) ||
	    !json_object_is_type(kid, json_type_string)) {
		*why = "token has no key id";
		goto out;
	}
	k = json_object_get_string(kid);
	if (strcmp(k, kid_current) == 0) {
		*key = cfg.jwt_secret;
		*keylen = cfg.jwt_secret_len;
	} else if (kid_previous[0] != '\0' && strcmp(k, kid_previous) == 0) {
		*key = cfg.jwt_previous_secret;
		*keylen = cfg.jwt_previous_secret_len;
	} else {
		*why = "token signed with an unknown key";
		goto out;
	}
	err = E_OK;
out:
	json_object_put(h);
	return err;
}

/*
 * Claims are read from the payload with json-c after libjwt has checked
 * the signature: libjwt 1.10's getters turn a claim of the wrong type
 * into 0 or NULL without saying so.
 */
static int
grant_str(struct json_object *p, const char *name, char *out, size_t cap)
{
	struct json_object	*v;
	const char		*s;

	if (!json_object_object_get_ex(p, name, &v) ||
	    !json_object_is_type(v, json_type_string))
		return -1;
	s = json_object_get_string(v);
	if (*s == '\0' || strlen(s) >= cap)
		return -1;
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

/* 1 absent, 0 a whole number, -1 anything else. */
static int
grant_int(struct json_object *p, const char *name, long *out)
{
	struct json_object	*v;

	if (!json_object_object_get_ex(p, name, &v))
		return 1;
	if (!json_object_is_type(v, json_type_int))
		return -1;
	errno = 0;
	*out = (long)json_object_get_int64(v);
	return errno == 0 ? 0 : -1;
}

static struct json_object *
payload_json(const char *token)
{
	const char	*p = strchr(token, '.'), *e;
	unsigned char	 raw[TOKEN_MAX];
	size_t		 n;

	if (p == NULL || (e = strchr(p + 1, '.')) == NULL ||
	    b64url_decode(p + 1, (size_t)(e - p - 1), raw, sizeof(raw) - 1, &n) != 0)
		return NULL;
	raw[n] = '\0';
	return json_tokener_parse((char *)raw);
}

enum app_err
auth_verify_access(const char *token, time_t now, struct access_claims *c,
    const char **why)
{
	const char		*key = NULL;
	size_t			 keylen = 0;
	jwt_t			*j = NULL;
	struct json_object	*p = NULL, *v;
	char			 buf[256];
	long			 nbf;
	int			 has_nbf;
	enum app_err		 err;

	memset(c, 0, sizeof(*c));
	if (strlen(token) > TOKEN_MAX) {
		*why = "token too long";
		return E_UNAUTHORIZED;
	}
	if ((err = header_key(token, &key, &keylen, why)) != E_OK)
		return err;
	/* The key is always passed: without one libjwt accepts alg "none". */
	if (jwt_decode(&j, token, (const unsigned char *)key, (int)keylen) != 0 ||
	    j == NULL) {
		*why = "bad token signature";
		return E_UNAUTHORIZED;
	}
	err = E_UNAUTHORIZED;
	if (jwt_get_alg(j) != JWT_ALG_HS256) {
		*why = "token algorithm is not HS256";
		goto out;
	}
	if ((p = payload_json(token)) == NULL ||
	    !json_object_is_type(p, json_type_object)) {
		*why = "malformed token";
		goto out;
	}
	if (grant_str(p, "typ", buf, sizeof(buf)) != 0 || strcmp(buf, "access") != 0) {
		*why = "not an access token";
		goto out;
	}
	if (grant_str(p, "iss", buf, sizeof(buf)) != 0 ||
	    strcmp(buf, cfg.jwt_issuer) != 0) {
		*why = "wrong token issuer";
		goto out;
	}
	if (grant_str(p, "aud", buf, sizeof(buf)) != 0 ||
	    strcmp(buf, cfg.jwt_audience) != 0) {
		*why = "wrong token audience";
		goto out;
	}
	if (grant_int(p, "exp", &c->exp) != 0 || grant_int(p, "iat", &c->iat) != 0 ||
	    grant_int(p, "ver", &c->ver) != 0 || c->ver < 0 || c->ver > 0x7fffffff ||
	    (has_nbf = grant_int(p, "nbf", &nbf)) < 0) {
		*why = "token lacks exp, iat or ver, or a claim has the wrong type";
		goto out;
	}
	if ((long)now >= c->exp) {
		*why = "token expired";
		goto out;
	}
	/* Bounds first, so the subtraction below cannot overflow. */
	if (c->iat < (long)now - 2 * 86400 || c->iat > (long)now + CLOCK_SKEW_S ||
	    c->exp <= c->iat || c->exp - c->iat > 86400 ||
	    (has_nbf == 0 && nbf > (long)now + CLOCK_SKEW_S)) {
		*why = "token not valid yet";
		goto out;
	}
	if (grant_str(p, "sub", c->sub, sizeof(c->sub)) != 0 || !uuid_valid(c->sub) ||
	    grant_str(p, "jti", c->jti, sizeof(c->jti)) != 0 || strlen(c->jti) < 16 ||
	    grant_str(p, "username", c->username, sizeof(c->username)) != 0 ||
	    grant_str(p, "role", c->role, sizeof(c->role)) != 0 ||
	    !role_valid(c->role)) {
		*why = "token claims are incomplete";
		goto out;
	}
	if (json_object_object_get_ex(p, "anon", &v) &&
	    !json_object_is_type(v, json_type_boolean)) {
		*why = "token claims are incomplete";
		goto out;
	}
	c->anon = v != NULL && json_object_object_get_ex(p, "anon", &v) &&
	    json_object_get_boolean(v);
	err = E_OK;
out:
	json_object_put(p);
	jwt_free(j);
	return err;
}

/*
 * Verified tokens, remembered per worker: verification is a pure function
 * of the token, the keys and the clock, so a token seen before needs no
 * second signature check until it expires. Revocation is not cached: it
 * is asked of Redis (or the database) on every request.
 */
#define VCACHE_SIZE	512

static struct vcache_entry {
	char			*token;
	struct access_claims	 claims;
} vcache[VCACHE_SIZE];

static size_t
vcache_slot(const char *token)
{
	uint64_t	 h = 1469598103934665603ULL;	/* FNV-1a */

	for (; *token != '\0'; token++)
		h = (h ^ (unsigned char)*token) * 1099511628211ULL;
	return (size_t)(h % VCACHE_SIZE);
}

/*
 * The callers' own profiles (GET /api/auth/user), per worker, each with
 * the profile generation it was read under: a changed generation in the
 * shared tables means the row changed since.
 */
#define SELF_CACHE_SIZE	256

static struct self_entry {
	char		 user_id[40];
	uint32_t	 gen;
	char		*json;
	size_t		 len;
} self_cache[SELF_CACHE_SIZE];

const char *
auth_self_cached(const char *user_id, uint32_t gen, size_t *len)
{
	struct self_entry	*e = &self_cache[vcache_slot(user_id) % SELF_CACHE_SIZE];

	if (e->json == NULL || e->gen != gen || strcmp(e->user_id, user_id) != 0)
		return NULL;
	*len = e->len;
	return e->json;
}

void
auth_self_store(const char *user_id, uint32_t gen, const char *json, size_t len)
{
	struct self_entry	*e = &self_cache[vcache_slot(user_id) % SELF_CACHE_SIZE];

	if (strlen(user_id) >= sizeof(e->user_id))
		return;
	free(e->json);
	if ((e->json = malloc(len + 1)) == NULL)
		abort();
	memcpy(e->json, json, len);
	e->json[len] = '\0';
	e->len = len;
	e->gen = gen;
	snprintf(e->user_id, sizeof(e->user_id), "%s", user_id);
}

void
auth_cache_free(void)
{
	size_t	 i;

	for (i = 0; i < VCACHE_SIZE; i++) {
		free(vcache[i].token);
		vcache[i].token = NULL;
	}
	for (i = 0; i < SELF_CACHE_SIZE; i++) {
		free(self_cache[i].json);
		self_cache[i].json = NULL;
	}
}

enum app_err
auth_verify_cached(const char *token, time_t now, struct access_claims *c,
    const char **why)
{
	struct vcache_entry	*e = &vcache[vcache_slot(token)];
	enum app_err		 err;

	if (e->token != NULL && strcmp(e->token, token) == 0) {
		if ((long)now < e->claims.exp && e->claims.iat <= (long)now + CLOCK_SKEW_S) {
			*c = e->claims;
			return E_OK;
		}
	}
	if ((err = auth_verify_access(token, now, c, why)) != E_OK)
		return err;
	free(e->token);
	if ((e->token = strdup(token)) == NULL)
		abort();
	e->claims = *c;
	return E_OK;
}

/* ---- revocation ----------------------------------------------------- */

static const struct db_stmt st_user_state = {
	"auth_user_state",
	"SELECT u.is_active, u.role, u.token_version,"
	" EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = $2)"
	" FROM users u WHERE u.id = $1",
	2
};

static const struct db_stmt st_revoke_user = {
	"auth_revoke_user",
	"UPDATE users SET token_version = token_version + 1, token_version_at = now()"
	" WHERE id = $1 RETURNING token_version,"
	" floor(extract(epoch FROM token_version_at))::bigint",
	1
};

static const struct db_stmt st_deny_jti = {
	"auth_deny_jti",
	"INSERT INTO revoked_tokens (jti, user_id, expires_at)"
	" VALUES ($1, $2, to_timestamp($3::bigint)) ON CONFLICT (jti) DO NOTHING",
	3
};

static const struct db_stmt st_denylist = {
	"auth_denylist",
	"SELECT 'deny:' || jti, '1', (extract(epoch FROM expires_at - now()))::bigint + 60"
	" FROM revoked_tokens WHERE expires_at > now()"
	" UNION ALL"
	" SELECT 'tver:' || id, token_version::text,"
	" (extract(epoch FROM token_version_at - now()))::bigint + $1::bigint + 60"
	" FROM users WHERE token_version_at > now() - make_interval(secs => $1::bigint + 60)"
	" LIMIT 20000",
	1
};

/*
 * Is this access token still good? The pool's shared tables answer
 * without a round trip while their watcher is live (fcgi/revoke.c).
 * Otherwise Redis answers in one round trip (the jti deny-list and the
 * user's token version), and without Redis the database does. A token
 * older than the user's version belongs to before a deactivation, role
 * or password change: it ends at once. Redis keeps a version only as long
 * as an access token can live, so a missing key means no change within a
 * token's lifetime.
 */
static enum app_err
token_still_valid(struct req *r, const struct access_claims *c, const char **why)
{
	struct redisReply	*rep;
	PGresult		*res;
	const char		*args[2] = { c->sub, c->jti };
	enum app_err		 err;

	switch (revoke_token_state(c->sub, c->jti, c->ver, time(NULL))) {
	case 0:
		return E_OK;
	case 1:
		*why = "token was revoked";
		return E_UNAUTHORIZED;
	default:
		break;
	}
	/* The caller's cached profile rides along: GET /api/auth/user is hot. */
	rep = rds_command(r, "MGET deny:%s tver:%s uself:%s", c->jti, c->sub, c->sub);
	if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3) {
		if (rep->element[0]->type == REDIS_REPLY_STRING) {
			*why = "token was revoked";
			return E_UNAUTHORIZED;
		}
		if (rep->element[1]->type == REDIS_REPLY_STRING &&
		    atol(rep->element[1]->str) > c->ver) {
			*why = "token was revoked";
			return E_UNAUTHORIZED;
		}
		if (rep->element[2]->type == REDIS_REPLY_STRING)
			r->self_cache = rep->element[2]->str;	/* reply lives in the pool */
		return E_OK;
	}
	if ((err = db_exec(r, &res, &st_user_state, args)) != E_OK)
		return err;
	if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "t") != 0 ||
	    strcmp(PQgetvalue(res, 0, 3), "t") == 0 ||
	    atol(PQgetvalue(res, 0, 2)) > c->ver) {
		*why = "token was revoked";
		return E_UNAUTHORIZED;
	}
	return E_OK;
}

/*
 * What a committed change means outside the database, applied only once
 * it has committed (db_after_commit): a rolled-back version bump written
 * early would lock the user out for a token's lifetime.
 */
struct auth_change {
	struct req	*r;
	const char	*key;		/* user id or jti */
	long		 n;		/* version or expiry */
	time_t		 at;
};

static void
profile_changed(void *arg)
{
	struct auth_change	*a = arg;

	revoke_note_profile(a->key);
	rds_command(a->r, "DEL uself:%s", a->key);
}

static void
version_changed(void *arg)
{
	struct auth_change	*a = arg;

	revoke_note_version(a->key, a->n, a->at);
	rds_command(a->r, "SET tver:%s %ld EX %ld", a->key, a->n,
	    cfg.access_ttl_s + CLOCK_SKEW_S);
	rds_command(a->r, "DEL uself:%s", a->key);
}

static void
jti_denied(void *arg)
{
	struct auth_change	*a = arg;
	long			 ttl = a->n - (long)time(NULL);

	revoke_note_jti(a->key, a->n);
	if (ttl > 0)
		rds_command(a->r, "SET deny:%s 1 EX %ld", a->key, ttl + CLOCK_SKEW_S);
}

static struct auth_change *
auth_change(struct req *r, const char *key, long n, time_t at)
{
	struct auth_change	*a = pool_alloc(r->pool, sizeof(*a));

	a->r = r;
	a->key = pool_strdup(r->pool, key);
	a->n = n;
	a->at = at;
	return a;
}

void
auth_forget_user(struct req *r, const char *user_id)
{
	db_after_commit(profile_changed, auth_change(r, user_id, 0, 0));
}

void
auth_revoke_user_tokens(struct req *r, const char *user_id)
{
	PGresult	*res;
	const char	*args[1] = { user_id };

	if (db_exec(r, &res, &st_revoke_user, args) == E_OK && PQntuples(res) == 1)
		db_after_commit(version_changed, auth_change(r, user_id,
		    atol(PQgetvalue(res, 0, 0)), (time_t)atoll(PQgetvalue(res, 0, 1))));
}

void
auth_deny_jti(struct req *r, const char *jti, const char *user_id, long exp)
{
	PGresult	*res;
	char		 expstr[24];
	const char	*args[3] = { jti, user_id, expstr };

	if (exp <= (long)time(NULL))
		return;
	snprintf(expstr, sizeof(expstr), "%ld", exp);
	/* Without the database the token still ends here and in Redis. */
	db_exec(r, &res, &st_deny_jti, args);
	db_after_commit(jti_denied, auth_change(r, jti, exp, 0));
}

/*
 * Redis lost what the database knows (it restarted, or a write failed
 * while it was away): put back the deny-list and the token versions that
 * can still matter, those younger than an access token's lifetime.
 */
void
auth_resync_denylist(void)
{
	PGresult	*res;
	char		 ttl[24];
	const char	*args[1] = { ttl };
	int		 i;

	snprintf(ttl, sizeof(ttl), "%ld", cfg.access_ttl_s);
	if (db_exec(NULL, &res, &st_denylist, args) != E_OK)
		return;
	for (i = 0; i < PQntuples(res); i++) {
		struct redisReply	*rep;
		long			 secs = atol(PQgetvalue(res, i, 2));

		if (secs <= 0)
			continue;
		rep = rds_command(NULL, "SET %s %s EX %ld", PQgetvalue(res, i, 0),
		    PQgetvalue(res, i, 1), secs);
		if (rep == NULL)
			break;
		freeReplyObject(rep);
	}
	PQclear(res);
}

/* ---- identifying the caller ----------------------------------------- */

static const struct db_stmt st_api_key = {
	"auth_api_key",
	"SELECT k.id, k.user_id, array_to_string(k.permissions, ','), u.role,"
	" u.username, u.is_anonymous"
	" FROM api_keys k JOIN users u ON u.id = k.user_id"
	" WHERE k.key_hash = $1::bytea AND k.revoked_at IS NULL"
	" AND (k.expires_at IS NULL OR k.expires_at > now()) AND u.is_active",
	1
};

static const struct db_stmt st_api_key_used = {
	"auth_api_key_used",
	"UPDATE api_keys SET last_used_at = now() WHERE id = $1"
	" AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
	1
};

static enum app_err
identify_api_key(struct req *r, const char *key)
{
	char		 hash[67];
	const char	*args[1] = { hash };
	PGresult	*res;
	enum app_err	 err;
	char		*list, *tok, *save;
	unsigned	 perms = 0;

	if (strlen(key) < 20 || strlen(key) > 128)
		return req_fail(r, E_UNAUTHORIZED, "invalid API key", NULL);
	sha256_bytea(key, strlen(key), hash);
	if ((err = db_exec(r, &res, &st_api_key, args)) != E_OK)
		return err;
	if (PQntuples(res) != 1)
		return req_fail(r, E_UNAUTHORIZED, "invalid API key", NULL);
	list = pool_strdup(r->pool, PQgetvalue(res, 0, 2));
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		perms |= perm_parse(tok);
	r->api_key_id = pool_strdup(r->pool, PQgetvalue(res, 0, 0));
	r->user_id = pool_strdup(r->pool, PQgetvalue(res, 0, 1));
	r->role = pool_strdup(r->pool, PQgetvalue(res, 0, 3));
	r->username = pool_strdup(r->pool, PQgetvalue(res, 0, 4));
	r->is_anonymous = strcmp(PQgetvalue(res, 0, 5), "t") == 0;
	/* A key never exceeds what its owner's role allows today. */
	r->perms = (perms & role_perms(r->role)) | P_AUTHENTICATED;
	{
		const char	*a[1] = { r->api_key_id };

		db_exec(r, &res, &st_api_key_used, a);
	}
	return E_OK;
}

static enum app_err
identify_bearer(struct req *r, const char *token)
{
	struct access_claims	 c;
	const char		*why = NULL;
	enum app_err		 err;

	if ((err = auth_verify_cached(token, time(NULL), &c, &why)) != E_OK)
		return req_fail(r, err, why, NULL);
	if ((err = token_still_valid(r, &c, &why)) != E_OK)
		return err == E_UNAUTHORIZED ? req_fail(r, err, why, NULL) : err;
	r->user_id = pool_strdup(r->pool, c.sub);
	r->username = pool_strdup(r->pool, c.username);
	r->role = pool_strdup(r->pool, c.role);
	r->jti = pool_strdup(r->pool, c.jti);
	r->token_exp = c.exp;
	r->is_anonymous = c.anon;
	r->perms = role_perms(c.role) | P_AUTHENTICATED;
	return E_OK;
}

enum app_err
auth_identify(struct req *r)
{
	const char	*authz = req_header(r, "Authorization");
	const char	*xkey = req_header(r, "X-API-Key");

	if (authz == NULL && xkey == NULL)
		return E_OK;
	if (authz != NULL && strncasecmp(authz, "Bearer ", 7) == 0)
		return identify_bearer(r, authz + 7);
	if (authz != NULL && strncasecmp(authz, "ApiKey ", 7) == 0)
		return identify_api_key(r, authz + 7);
	if (authz == NULL)
		return identify_api_key(r, xkey);
	return req_fail(r, E_UNAUTHORIZED,
	    "unsupported Authorization scheme; use Bearer or ApiKey", NULL);
}

/* ---- passwords ------------------------------------------------------ */

/*
 * Hashing is deliberately slow and memory-hungry; a permit shared by the
 * pool bounds how many run at once so logins never take every worker or
 * every core. A worker that finds no permit free answers 503 at once
 * rather than wait: a waiting worker is as lost to other routes as a
 * hashing one. The master returns the permit of a worker that dies
 * holding it.
 */
static int
permit_take(void)
{
	if (pool_shm == NULL)
		return 0;
	while (sem_trywait(&pool_shm->hash_sem) != 0)
		if (errno != EINTR)
			return -1;
	__atomic_store_n(&pool_shm->slots[worker_slot].hashing, 1, __ATOMIC_RELEASE);
	return 0;
}

static void
permit_give(void)
{
	if (pool_shm == NULL)
		return;
	__atomic_store_n(&pool_shm->slots[worker_slot].hashing, 0, __ATOMIC_RELEASE);
	sem_post(&pool_shm->hash_sem);
}

enum app_err
password_hash(const char *pw, size_t len, char *out, size_t cap)
{
	unsigned char	 salt[16];
	int		 rc;

	if (RAND_bytes(salt, sizeof(salt)) != 1)
		abort();
	if (permit_take() != 0)
		return E_RATE_LIMITED;
	rc = argon2id_hash_encoded((uint32_t)cfg.password_iterations,
	    (uint32_t)cfg.password_memory_kib, 1, pw, len, salt, sizeof(salt),
	    32, out, cap);
	permit_give();
	return rc == ARGON2_OK ? E_OK : E_INTERNAL;
}

enum app_err
password_verify(const char *encoded, const char *pw, size_t len, int *match)
{
	static char	 dummy[160];
	int		 rc;

	*match = 0;
	if (encoded == NULL) {
		/*
		 * No such user: spend the same time on a hash of our own so
		 * the answer's timing does not tell which accounts exist.
		 */
		if (dummy[0] == '\0') {
			enum app_err	 err = password_hash("dummy password",
					    14, dummy, sizeof(dummy));

			if (err != E_OK)
				return err;
		}
		encoded = dummy;
		pw = "not the password";
		len = 16;
	}
	if (permit_take() != 0)
		return E_RATE_LIMITED;
	rc = argon2id_verify(encoded, pw, len);
	permit_give();
	*match = rc == ARGON2_OK && encoded != dummy;
	return rc == ARGON2_OK || rc == ARGON2_VERIFY_MISMATCH ? E_OK : E_INTERNAL;
}
