/*
 * tests/it_auth.c: accounts, tokens and permissions through nginx: the
 * happy paths and the attacks (forged, tampered, expired and revoked
 * tokens, reuse of refresh tokens, mass assignment, brute force,
 * enumeration), and the route-by-role matrix read from docs/openapi.yaml.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "http.h"

#define PASSWORD	"correct horse battery staple"

static const char	*stack_dir, *top;

/* ---- helpers -------------------------------------------------------- */

static struct http_res
call_hdr(const char *method, const char *path, const char *header, const char *json)
{
	const char	*h[3] = { "Content-Type: application/json", header, NULL };

	return http_do(method, path, h, json, json ? strlen(json) : 0);
}

struct session {
	char	 access[2048];
	char	 refresh[128];
	char	 id[64];
};

static int
take_session(struct http_res *res, struct session *s)
{
	const char	*a = json_str(res, "access_token");
	const char	*f = json_str(res, "refresh_token");
	const char	*id = json_str(res, "user.id");

	if (a == NULL || f == NULL || id == NULL)
		return -1;
	snprintf(s->access, sizeof(s->access), "%s", a);
	snprintf(s->refresh, sizeof(s->refresh), "%s", f);
	snprintf(s->id, sizeof(s->id), "%s", id);
	return 0;
}

static unsigned	 seq;

/* A fresh account with a unique name; 0 on success. */
static int
new_user(const char *prefix, struct session *s, char *name, size_t cap)
{
	char		 body[512], nm[64];
	struct http_res	 res;
	int		 rc;

	snprintf(nm, sizeof(nm), "%s%ld%u", prefix, (long)getpid() % 100000, ++seq);
	if (name != NULL)
		snprintf(name, cap, "%s", nm);
	snprintf(body, sizeof(body), "{\"username\":\"%s\",\"email\":\"%s@example.org\","
	    "\"password\":\"" PASSWORD "\"}", nm, nm);
	res = http_bearer("POST", "/api/auth/register", NULL, body);
	rc = res.status == 201 ? take_session(&res, s) : -1;
	if (rc != 0)
		fprintf(stderr, "    register %s: %ld %s\n", nm, res.status, res.body);
	http_free(&res);
	return rc;
}

static int
login(const char *name, const char *password, struct session *s)
{
	char		 body[512];
	struct http_res	 res;
	int		 rc;

	snprintf(body, sizeof(body), "{\"login\":\"%s\",\"password\":\"%s\"}",
	    name, password);
	res = http_bearer("POST", "/api/auth/login", NULL, body);
	rc = res.status == 200 ? take_session(&res, s) : -(int)res.status;
	http_free(&res);
	return rc;
}

static long
status_of(const char *method, const char *path, const char *token, const char *json)
{
	struct http_res	 res = http_bearer(method, path, token, json);
	long		 st = res.status;

	http_free(&res);
	return st;
}

static void
reset_login_throttle(void)
{
	sh(". %s/stack.env; redis-cli -p $REDIS_PORT --scan --pattern 'lfail:*' | "
	    "xargs -r redis-cli -p $REDIS_PORT DEL >/dev/null", stack_dir);
}

static const char *
psql(const char *sql)
{
	return sh_out(". %s/stack.env; psql -h $PG_SOCKET_DIR -p $PG_PORT -U djamms "
	    "-d djamms -Atqc \"%s\"", stack_dir, sql);
}

/* The admin made with `djamms admin create`, once per run. */
static struct session	 admin;
static char		 admin_name[64];

static int
ensure_admin(void)
{
	if (admin.access[0] != '\0')
		return 0;
	snprintf(admin_name, sizeof(admin_name), "root%ld", (long)getpid());
	if (sh("eval \"$(%s/tools/stack env %s)\"; DJAMMS_ADMIN_PASSWORD='" PASSWORD
	    "' %s admin create %s >/dev/null", top, stack_dir, getenv("DJAMMS_BIN"),
	    admin_name) != 0)
		return -1;
	return login(admin_name, PASSWORD, &admin);
}

/* ---- forging tokens with the instance's real key ------------------ */

static void
b64url(const unsigned char *in, size_t n, char *out)
{
	int	 len = EVP_EncodeBlock((unsigned char *)out, in, (int)n), i;

	while (len > 0 && out[len - 1] == '=')
		len--;
	out[len] = '\0';
	for (i = 0; i < len; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
}

static const char *
secret(size_t *len)
{
	static char	 s[256];

	snprintf(s, sizeof(s), "%s", sh_out("cat %s/secrets/jwt.secret", stack_dir));
	*len = strlen(s);
	return s;
}

static const char *
kid_of(const char *key, size_t len)
{
	static char	 hex[17];
	unsigned char	 md[32];
	unsigned int	 n;
	int		 i;

	EVP_Digest(key, len, md, &n, EVP_sha256(), NULL);
	for (i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return hex;
}

/* header.payload.signature with HMAC-SHA256 under key (NULL: no signature). */
static char *
forge(const char *header, const char *payload, const char *key, size_t keylen)
{
	static char	 tok[4096];
	char		 h[1024], p[2048], sig[128];
	unsigned char	 mac[64];
	size_t		 maclen = 0;

	b64url((const unsigned char *)header, strlen(header), h);
	b64url((const unsigned char *)payload, strlen(payload), p);
	snprintf(tok, sizeof(tok), "%s.%s", h, p);
	if (key == NULL) {
		strcat(tok, ".");
		return tok;
	}
	EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, keylen,
	    (unsigned char *)tok, strlen(tok), mac, sizeof(mac), &maclen);
	b64url(mac, maclen, sig);
	strcat(tok, ".");
	strcat(tok, sig);
	return tok;
}

/* A payload like the server's, with fields to vary. */
static const char *
payload(const char *sub, long iat, long exp, const char *iss, const char *aud,
    const char *typ)
{
	static char	 p[1024];
	static unsigned	 n;

	snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"username\":\"x\",\"role\":\"admin\","
	    "\"permissions\":[],\"iat\":%ld,\"exp\":%ld,\"iss\":\"%s\",\"aud\":\"%s\","
	    "\"jti\":\"forgedtoken%08u%ld\",\"typ\":\"%s\",\"anon\":false,\"ver\":0}",
	    sub, iat, exp, iss, aud, ++n, (long)getpid(), typ);
	return p;
}

static const char *
header(const char *alg, const char *kid)
{
	static char	 h[256];

	snprintf(h, sizeof(h), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg, kid);
	return h;
}

/* ---- registration and login --------------------------------------- */

static void
test_register_returns_tokens_and_no_secrets(void)
{
	struct http_res	 res = http_bearer("POST", "/api/auth/register", NULL,
			    "{\"username\":\"Carol_1\",\"email\":\" Carol.One@Example.ORG \","
			    "\"password\":\"" PASSWORD "\",\"display_name\":\"Carol\"}");

	expect_status(&res, 201);
	expect(json_str(&res, "access_token") != NULL);
	expect(json_str(&res, "refresh_token") != NULL);
	expect_json_str(&res, "token_type", "Bearer");
	expect(json_int(&res, "expires_in", 0) == 900);
	expect_json_str(&res, "user.email", "carol.one@example.org");
	expect_json_str(&res, "user.role", "user");
	expect(strstr(res.body, "password") == NULL);
	expect(strstr(res.body, "argon2") == NULL);
	http_free(&res);
}

static void
test_register_conflicts_do_not_say_which_field(void)
{
	struct http_res	 a = http_bearer("POST", "/api/auth/register", NULL,
			    "{\"username\":\"CAROL_1\",\"email\":\"new1@example.org\","
			    "\"password\":\"" PASSWORD "\"}");
	struct http_res	 b = http_bearer("POST", "/api/auth/register", NULL,
			    "{\"username\":\"someone_new\",\"email\":\"carol.one@example.org\","
			    "\"password\":\"" PASSWORD "\"}");

	expect_status(&a, 409);
	expect_status(&b, 409);
	expect(strcmp(json_str(&a, "error.message"), json_str(&b, "error.message")) == 0);
	http_free(&a);
	http_free(&b);
}

static void
test_register_validates_every_field(void)
{
	static const struct { const char *body; long status; } cases[] = {
		{ "{\"username\":\"ok_name\",\"email\":\"a@example.org\",\"password\":\"short\"}", 422 },
		{ "{\"username\":\"a b\",\"email\":\"a@example.org\",\"password\":\"" PASSWORD "\"}", 422 },
		{ "{\"username\":\"ok_name\",\"email\":\"not-an-email\",\"password\":\"" PASSWORD "\"}", 422 },
		{ "{\"username\":\"ok_name\",\"email\":\"a@example.org\"}", 422 },
		{ "{\"username\":\"ok_name\",\"email\":\"a@example.org\",\"password\":\"" PASSWORD "\",\"role\":\"admin\"}", 400 },
		{ "{\"username\":\"ok_name\",\"email\":\"a@example.org\",\"password\":\"" PASSWORD "\",\"nick\":1}", 400 },
		{ "{\"username\":5,\"email\":\"a@example.org\",\"password\":\"" PASSWORD "\"}", 422 },
		{ "[1,2]", 400 },
	};
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long	 st = status_of("POST", "/api/auth/register", NULL, cases[i].body);

		if (st != cases[i].status)
			t_fail(__FILE__, __LINE__, "case %zu: %ld, wanted %ld", i, st,
			    cases[i].status);
	}
	/* Oversized bodies: nginx's 1 MiB cap, then the worker's own. */
	{
		size_t		 n = 2 * 1024 * 1024;
		char		*big = malloc(n + 1);
		struct http_res	 res;

		memset(big, ' ', n);
		big[n] = '\0';
		res = http_bearer("POST", "/api/auth/login", NULL, big);
		expect_status(&res, 413);
		expect_json_str(&res, "error.code", "payload_too_large");
		http_free(&res);
		free(big);
	}
	/* A 1025-byte password is over the limit. */
	{
		char		*body = malloc(1200);
		char		 pw[1026];

		memset(pw, 'p', 1025);
		pw[1025] = '\0';
		snprintf(body, 1200, "{\"username\":\"long_pw\",\"email\":\"lp@example.org\","
		    "\"password\":\"%s\"}", pw);
		expect(status_of("POST", "/api/auth/register", NULL, body) == 422);
		free(body);
	}
}

static void
test_login_by_username_or_email_in_any_case(void)
{
	struct session	 s;
	char		 name[64], upper[64], email[96];
	size_t		 i;

	expect(new_user("dave", &s, name, sizeof(name)) == 0);
	for (i = 0; name[i]; i++)
		upper[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
	upper[i] = '\0';
	snprintf(email, sizeof(email), "%s@EXAMPLE.org", name);
	expect(login(upper, PASSWORD, &s) == 0);
	expect(login(email, PASSWORD, &s) == 0);
}

static void
test_wrong_password_and_unknown_user_look_the_same(void)
{
	struct session	 s;
	char		 name[64];
	struct http_res	 a, b;
	char		 body[256];

	expect(new_user("erin", &s, name, sizeof(name)) == 0);
	snprintf(body, sizeof(body), "{\"login\":\"%s\",\"password\":\"wrong password\"}", name);
	a = http_bearer("POST", "/api/auth/login", NULL, body);
	b = http_bearer("POST", "/api/auth/login", NULL,
	    "{\"login\":\"nobody_at_all\",\"password\":\"wrong password\"}");
	expect_status(&a, 401);
	expect_status(&b, 401);
	expect(strcmp(a.body, b.body) == 0);
	http_free(&a);
	http_free(&b);
	reset_login_throttle();
}

static void
test_brute_force_is_throttled_with_retry_after(void)
{
	struct session	 s;
	char		 name[64], body[256];
	int		 i;
	struct http_res	 res;

	reset_login_throttle();
	expect(new_user("frank", &s, name, sizeof(name)) == 0);
	snprintf(body, sizeof(body), "{\"login\":\"%s\",\"password\":\"guess guess\"}", name);
	for (i = 0; i < 5; i++)
		expect(status_of("POST", "/api/auth/login", NULL, body) == 401);
	res = http_bearer("POST", "/api/auth/login", NULL, body);
	expect_status(&res, 429);
	expect_json_str(&res, "error.code", "rate_limited");
	expect(http_header(&res, "Retry-After") != NULL);
	expect(atol(http_header(&res, "Retry-After")) > 0);
	http_free(&res);
	/* Even the right password waits out the window. */
	expect(login(name, PASSWORD, &s) == -429);
	reset_login_throttle();
	expect(login(name, PASSWORD, &s) == 0);
}

static void
test_failures_are_also_counted_per_address(void)
{
	struct session	 s;
	char		 name[64], body[256];
	int		 i;

	reset_login_throttle();
	expect(new_user("gina", &s, name, sizeof(name)) == 0);
	for (i = 0; i < 5; i++) {
		snprintf(body, sizeof(body), "{\"login\":\"ghost%d\",\"password\":\"nope nope\"}", i);
		expect(status_of("POST", "/api/auth/login", NULL, body) == 401);
	}
	expect(login(name, PASSWORD, &s) == -429);
	reset_login_throttle();
}

static void
test_logins_work_without_redis(void)
{
	struct session	 s;
	char		 name[64];
	struct http_res	 res;

	struct session	 victim;
	char		 vpath[128];

	expect(ensure_admin() == 0);
	expect(new_user("hank", &s, name, sizeof(name)) == 0);
	expect(new_user("hvic", &victim, NULL, 0) == 0);
	snprintf(vpath, sizeof(vpath), "/api/admin/users/%s", victim.id);
	expect(sh("%s/tools/stack redis-stop %s", top, stack_dir) == 0);
	/* A revocation while Redis is away lands in the database only... */
	expect(status_of("PUT", vpath, admin.access, "{\"role\":\"guest\"}") == 200);
	expect(login(name, PASSWORD, &s) == 0);
	/* Tokens are checked against the database while Redis is away. */
	res = http_bearer("GET", "/api/auth/user", s.access, NULL);
	if (res.status != 200)
		t_fail(__FILE__, __LINE__, "user with Redis down: %ld", res.status);
	http_free(&res);
	/* A logout during the outage sticks after Redis returns. */
	expect(status_of("POST", "/api/auth/logout", s.access, NULL) == 204);
	expect(sh("%s/tools/stack redis-start %s", top, stack_dir) == 0);
	sleep_ms(1500);		/* workers reconnect at most once a second */
	{
		int	 i, ok = 1;

		for (i = 0; i < 8; i++)		/* every worker */
			if (status_of("GET", "/api/auth/user", s.access, NULL) != 401)
				ok = 0;
		expect(ok);
		/* ...and is copied back into Redis when it returns. */
		for (i = 0; i < 8; i++)
			if (status_of("GET", "/api/auth/user", victim.access, NULL) != 401)
				ok = 0;
		expect(ok);
	}
}

/* ---- tokens ----------------------------------------------------------- */

static void
test_no_token_is_401_with_www_authenticate(void)
{
	struct http_res	 res = http_bearer("GET", "/api/auth/user", NULL, NULL);

	expect_status(&res, 401);
	expect_json_str(&res, "error.code", "unauthorized");
	expect(http_header(&res, "WWW-Authenticate") != NULL);
	http_free(&res);
	expect(status_of("GET", "/api/auth/user", "garbage", NULL) == 401);
	{
		static const char *const h[] = { "Authorization: Basic YTpi", NULL };

		res = http_do("GET", "/api/auth/user", h, NULL, 0);
		expect_status(&res, 401);
		http_free(&res);
	}
}

static void
test_forged_tokens_are_refused(void)
{
	struct session	 s;
	size_t		 klen;
	const char	*key = secret(&klen);
	const char	*kid = kid_of(key, klen);
	long		 now = (long)time(NULL);
	char		 ok[4096];

	expect(new_user("ivan", &s, NULL, 0) == 0);
	/* The control: a token forged with the real key and sane claims works. */
	snprintf(ok, sizeof(ok), "%s", forge(header("HS256", kid),
	    payload(s.id, now, now + 600, "djamms", "djamms-api", "access"), key, klen));
	expect(status_of("GET", "/api/auth/user", ok, NULL) == 200);

#define REFUSED(tok, what) do { long st_ = status_of("GET", "/api/auth/user", (tok), NULL); \
	if (st_ != 401) t_fail(__FILE__, __LINE__, "%s: %ld", (what), st_); } while (0)
	REFUSED(forge(header("none", kid), payload(s.id, now, now + 600, "djamms",
	    "djamms-api", "access"), NULL, 0), "alg none");
	REFUSED(forge(header("HS256", kid), payload(s.id, now, now + 600, "djamms",
	    "djamms-api", "access"), "another key of at least thirty-two bytes", 40),
	    "another key");
	REFUSED(forge(header("HS512", kid), payload(s.id, now, now + 600, "djamms",
	    "djamms-api", "access"), key, klen), "HS512 header");
	REFUSED(forge(header("HS256", kid), payload(s.id, now - 2000, now - 1, "djamms",
	    "djamms-api", "access"), key, klen), "expired");
	REFUSED(forge(header("HS256", kid), payload(s.id, now + 3600, now + 4000,
	    "djamms", "djamms-api", "access"), key, klen), "issued in the future");
	REFUSED(forge(header("HS256", kid), payload(s.id, now, now + 600, "evil",
	    "djamms-api", "access"), key, klen), "wrong iss");
	REFUSED(forge(header("HS256", kid), payload(s.id, now, now + 600, "djamms",
	    "other-api", "access"), key, klen), "wrong aud");
	REFUSED(forge(header("HS256", kid), payload(s.id, now, now + 600, "djamms",
	    "djamms-api", "refresh"), key, klen), "wrong typ");
	REFUSED(forge(header("HS256", "0000000000000000"), payload(s.id, now, now + 600,
	    "djamms", "djamms-api", "access"), key, klen), "unknown kid");
	{
		/* Tampered: flip the payload of a real token, keep its signature. */
		char	 t[4096], *dot1, *dot2;

		snprintf(t, sizeof(t), "%s", s.access);
		dot1 = strchr(t, '.');
		dot2 = strrchr(t, '.');
		expect(dot1 != NULL && dot2 != NULL && dot2 > dot1 + 10);
		dot1[5] = dot1[5] == 'A' ? 'B' : 'A';
		REFUSED(t, "tampered payload");
	}
#undef REFUSED
}

static void
test_logout_ends_the_access_and_refresh_token(void)
{
	struct session	 s;
	char		 body[256];

	expect(new_user("judy", &s, NULL, 0) == 0);
	snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", s.refresh);
	expect(status_of("POST", "/api/auth/logout", s.access, body) == 204);
	expect(status_of("GET", "/api/auth/user", s.access, NULL) == 401);
	expect(status_of("POST", "/api/auth/refresh", NULL, body) == 401);
}

static void
test_refresh_rotates_and_reuse_revokes_the_family(void)
{
	struct session	 s, s2;
	char		 body[256], body2[256];
	struct http_res	 res;

	expect(new_user("kate", &s, NULL, 0) == 0);
	snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", s.refresh);
	res = http_bearer("POST", "/api/auth/refresh", NULL, body);
	expect_status(&res, 200);
	expect(take_session(&res, &s2) == 0);
	http_free(&res);
	expect(strcmp(s.refresh, s2.refresh) != 0);
	expect(status_of("GET", "/api/auth/user", s2.access, NULL) == 200);
	/* The old refresh token again: theft. Both copies die. */
	expect(status_of("POST", "/api/auth/refresh", NULL, body) == 401);
	snprintf(body2, sizeof(body2), "{\"refresh_token\":\"%s\"}", s2.refresh);
	expect(status_of("POST", "/api/auth/refresh", NULL, body2) == 401);
}

static void
test_sessions_survive_a_reload_of_every_worker(void)
{
	struct session	 s;
	char		 body[256];
	pid_t		 m = (pid_t)atol(sh_out("cat %s/run/djamms.pid", stack_dir));
	int		 i;

	expect(new_user("liam", &s, NULL, 0) == 0);
	kill(m, SIGHUP);
	for (i = 0; i < 50; i++) {
		if (sh("grep -c '\"msg\":\"reload done\"' %s/log/djamms.log | "
		    "grep -qv '^0$'", stack_dir) == 0 && i > 5)
			break;
		sleep_ms(100);
	}
	for (i = 0; i < 8; i++)
		expect(status_of("GET", "/api/auth/user", s.access, NULL) == 200);
	snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", s.refresh);
	expect(status_of("POST", "/api/auth/refresh", NULL, body) == 200);
}

/* ---- the shared token tables (fcgi/revoke.c) -------------------------- */

/* checks.tokens.source of /api/system/status: "shared" or "redis". */
static int
token_source_is(const char *want, int wait_ms)
{
	int	 waited;

	for (waited = 0;; waited += 50) {
		struct http_res	 res = http_bearer("GET", "/api/system/status", NULL, NULL);
		const char	*src = json_str(&res, "checks.tokens.source");
		int		 same = src != NULL && strcmp(src, want) == 0;

		http_free(&res);
		if (same)
			return 1;
		if (waited >= wait_ms)
			return 0;
		sleep_ms(50);
	}
}

/* Poll path with token until it answers want; 1 if it did within ms. */
static int
status_becomes(const char *path, const char *token, long want, int ms)
{
	int	 waited;

	for (waited = 0; waited <= ms; waited += 20) {
		if (status_of("GET", path, token, NULL) == want)
			return 1;
		sleep_ms(20);
	}
	return 0;
}

static void
test_token_checks_use_the_shared_tables(void)
{
	expect(token_source_is("shared", 5000));
}

/*
 * A change made behind the service's back (an operator in psql, another
 * machine) reaches every worker through the announcement.
 */
static void
test_a_version_bump_in_psql_ends_tokens_within_a_second(void)
{
	struct session	 s;
	char		 sql[256];

	expect(token_source_is("shared", 5000));
	expect(new_user("vera", &s, NULL, 0) == 0);
	expect(status_of("GET", "/api/auth/user", s.access, NULL) == 200);
	snprintf(sql, sizeof(sql), "UPDATE users SET token_version = token_version + 1,"
	    " token_version_at = now() WHERE id = '%s'", s.id);
	psql(sql);
	expect(status_becomes("/api/auth/user", s.access, 401, 1000));
}

static void
test_a_profile_changed_in_psql_is_served_fresh(void)
{
	struct session	 s;
	char		 sql[256];
	int		 i, fresh = 0;

	expect(token_source_is("shared", 5000));
	expect(new_user("wade", &s, NULL, 0) == 0);
	for (i = 0; i < 8; i++)		/* every worker holds a copy now */
		expect(status_of("GET", "/api/auth/user", s.access, NULL) == 200);
	snprintf(sql, sizeof(sql), "UPDATE users SET display_name = 'Wade Changed'"
	    " WHERE id = '%s'", s.id);
	psql(sql);
	for (i = 0; i < 50 && fresh < 8; i++) {
		struct http_res	 res = http_bearer("GET", "/api/auth/user", s.access, NULL);
		const char	*d = json_str(&res, "display_name");

		fresh = d != NULL && strcmp(d, "Wade Changed") == 0 ? fresh + 1 : 0;
		http_free(&res);
		if (fresh == 0)
			sleep_ms(20);
	}
	expect(fresh == 8);
}

/*
 * Without the watcher the pool falls back to Redis: a logout still ends
 * the token at once. The master brings a new watcher up within seconds.
 */
static void
test_revocation_holds_while_the_watcher_is_away(void)
{
	struct session	 s, s2;
	char		 body[256];
	const char	*pid;

	expect(token_source_is("shared", 5000));
	pid = sh_out("pgrep -P $(cat %s/run/djamms.pid) -x djamms-revoke", stack_dir);
	expect(atol(pid) > 0);
	expect(sh("kill -KILL %ld", atol(pid)) == 0);
	expect(token_source_is("redis", 2000));
	expect(new_user("xena", &s, NULL, 0) == 0);
	expect(new_user("yuri", &s2, NULL, 0) == 0);
	expect(status_of("GET", "/api/auth/user", s.access, NULL) == 200);
	snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", s.refresh);
	expect(status_of("POST", "/api/auth/logout", s.access, body) == 204);
	expect(status_of("GET", "/api/auth/user", s.access, NULL) == 401);
	/* The new watcher loads what happened while it was away. */
	expect(token_source_is("shared", 8000));
	expect(status_of("GET", "/api/auth/user", s.access, NULL) == 401);
	expect(status_of("GET", "/api/auth/user", s2.access, NULL) == 200);
}

/* ---- the account ------------------------------------------------------ */

static void
test_profile_updates_refuse_mass_assignment(void)
{
	struct session	 s;
	static const char *const bad[] = {
		"{\"role\":\"admin\"}", "{\"is_active\":false}", "{\"id\":\"x\"}",
		"{\"created_at\":\"2020-01-01\"}", "{\"display_name\":\"x\",\"role\":\"admin\"}",
		"{\"password_hash\":\"x\"}",
	};
	size_t		 i;
	struct http_res	 res;

	expect(new_user("mia", &s, NULL, 0) == 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		long	 st = status_of("PUT", "/api/auth/user", s.access, bad[i]);

		if (st != 400)
			t_fail(__FILE__, __LINE__, "%s: %ld", bad[i], st);
	}
	res = http_bearer("PUT", "/api/auth/user", s.access, "{\"display_name\":\"Mia M\"}");
	expect_status(&res, 200);
	expect_json_str(&res, "display_name", "Mia M");
	http_free(&res);
	res = http_bearer("GET", "/api/auth/user", s.access, NULL);
	expect_json_str(&res, "role", "user");
	expect_json_str(&res, "display_name", "Mia M");
	http_free(&res);
}

static void
test_email_and_password_changes_need_the_current_password(void)
{
	struct session	 s, s2;
	char		 name[64];
	struct http_res	 res;

	expect(new_user("nora", &s, name, sizeof(name)) == 0);
	expect(status_of("PUT", "/api/auth/user", s.access,
	    "{\"email\":\"nora.new@example.org\"}") == 422);
	expect(status_of("PUT", "/api/auth/user", s.access,
	    "{\"email\":\"nora.new@example.org\",\"current_password\":\"wrong one\"}") == 403);
	expect(status_of("PUT", "/api/auth/user", s.access,
	    "{\"email\":\"nora.new@example.org\",\"current_password\":\"" PASSWORD "\"}") == 200);
	/* A new password ends the old tokens and hands out new ones. */
	res = http_bearer("PUT", "/api/auth/user", s.access,
	    "{\"password\":\"a brand new password\",\"current_password\":\"" PASSWORD "\"}");
	expect_status(&res, 200);
	expect(take_session(&res, &s2) == 0);
	http_free(&res);
	expect(status_of("GET", "/api/auth/user", s.access, NULL) == 401);
	expect(status_of("GET", "/api/auth/user", s2.access, NULL) == 200);
	expect(login(name, PASSWORD, &s) == -401);
	expect(login(name, "a brand new password", &s) == 0);
	reset_login_throttle();
}

static void
test_anonymous_guest_upgrades_in_place(void)
{
	struct http_res	 res = http_bearer("POST", "/api/auth/anonymous", NULL, NULL);
	struct session	 g, u;

	expect_status(&res, 201);
	expect(take_session(&res, &g) == 0);
	expect_json_str(&res, "user.role", "guest");
	http_free(&res);
	res = http_bearer("GET", "/api/auth/user", g.access, NULL);
	expect_status(&res, 200);
	expect(json_str(&res, "email") == NULL);
	http_free(&res);
	/* A guest reads but does not hold keys. */
	expect(status_of("POST", "/api/auth/api-keys", g.access,
	    "{\"name\":\"k\",\"permissions\":[\"read:tracks\"]}") == 403);
	res = http_bearer("POST", "/api/auth/register", g.access,
	    "{\"username\":\"upgraded_guest\",\"email\":\"upg@example.org\",\"password\":\"" PASSWORD "\"}");
	expect_status(&res, 200);
	expect(take_session(&res, &u) == 0);
	expect_json_str(&res, "user.role", "user");
	http_free(&res);
	expect(strcmp(g.id, u.id) == 0);		/* the same account */
	expect(status_of("GET", "/api/auth/user", g.access, NULL) == 401);
	{
		char	 body[256];

		snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", g.refresh);
		expect(status_of("POST", "/api/auth/refresh", NULL, body) == 401);
	}
	expect(status_of("GET", "/api/auth/user", u.access, NULL) == 200);
}

static void
test_password_reset_answers_the_same_and_works_once(void)
{
	struct session	 s;
	char		 name[64], body[512], sql[256], token[128];
	struct http_res	 a, b;
	const char	*mail;

	expect(new_user("olga", &s, name, sizeof(name)) == 0);
	snprintf(body, sizeof(body), "{\"email\":\"%s@example.org\"}", name);
	a = http_bearer("POST", "/api/auth/password-reset", NULL, body);
	b = http_bearer("POST", "/api/auth/password-reset", NULL, "{\"email\":\"nobody@example.org\"}");
	expect_status(&a, 202);
	expect_status(&b, 202);
	expect(strcmp(a.body, b.body) == 0);
	http_free(&a);
	http_free(&b);
	snprintf(sql, sizeof(sql), "SELECT body FROM outbox WHERE to_address = '%s@example.org'"
	    " ORDER BY created_at DESC LIMIT 1", name);
	mail = psql(sql);
	expect(strstr(mail, "token=") != NULL);
	snprintf(token, sizeof(token), "%.43s", strstr(mail, "token=") + 6);
	/* The token is stored hashed only. */
	expect(strstr(psql("SELECT encode(token_hash, 'escape') FROM password_resets"), token) == NULL);
	snprintf(body, sizeof(body), "{\"token\":\"%s\",\"password\":\"reset new password\"}", token);
	expect(status_of("POST", "/api/auth/password-confirm", NULL, body) == 200);
	expect(status_of("POST", "/api/auth/password-confirm", NULL, body) == 422);
	expect(status_of("GET", "/api/auth/user", s.access, NULL) == 401);
	snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", s.refresh);
	expect(status_of("POST", "/api/auth/refresh", NULL, body) == 401);
	expect(login(name, "reset new password", &s) == 0);
}

/* ---- API keys ----------------------------------------------------------- */

static void
test_api_keys_are_shown_once_scoped_and_revocable(void)
{
	struct session	 s, other;
	struct http_res	 res;
	char		 key[128], id[64], hdr[200], path[128];

	expect(new_user("pete", &s, NULL, 0) == 0);
	expect(new_user("quin", &other, NULL, 0) == 0);
	expect(status_of("POST", "/api/auth/api-keys", s.access,
	    "{\"name\":\"too much\",\"permissions\":[\"admin:system\"]}") == 422);
	res = http_bearer("POST", "/api/auth/api-keys", s.access,
	    "{\"name\":\"jukebox\",\"permissions\":[\"read:tracks\",\"read:playlists\"]}");
	expect_status(&res, 201);
	snprintf(key, sizeof(key), "%s", json_str(&res, "key"));
	snprintf(id, sizeof(id), "%s", json_str(&res, "id"));
	http_free(&res);
	expect(strncmp(key, "djk_", 4) == 0);
	res = http_bearer("GET", "/api/auth/api-keys", s.access, NULL);
	expect_status(&res, 200);
	expect(strstr(res.body, key) == NULL);		/* never again */
	expect(strstr(res.body, "jukebox") != NULL);
	http_free(&res);
	snprintf(hdr, sizeof(hdr), "Authorization: ApiKey %s", key);
	res = call_hdr("GET", "/api/auth/user", hdr, NULL);
	expect_status(&res, 200);
	http_free(&res);
	snprintf(hdr, sizeof(hdr), "X-API-Key: %s", key);
	res = call_hdr("GET", "/api/auth/user", hdr, NULL);
	expect_status(&res, 200);
	http_free(&res);
	/* A key reads the account but cannot change it. */
	res = call_hdr("PUT", "/api/auth/user", hdr, "{\"display_name\":\"x\"}");
	expect_status(&res, 403);
	http_free(&res);
	/* Keys cannot mint keys. */
	res = call_hdr("POST", "/api/auth/api-keys", hdr, "{\"name\":\"x\",\"permissions\":[\"read:tracks\"]}");
	expect_status(&res, 403);
	http_free(&res);
	snprintf(path, sizeof(path), "/api/auth/api-keys/%s", id);
	expect(status_of("DELETE", path, other.access, NULL) == 404);
	expect(status_of("DELETE", path, s.access, NULL) == 204);
	res = call_hdr("GET", "/api/auth/user", hdr, NULL);
	expect_status(&res, 401);
	http_free(&res);
	expect(status_of("DELETE", "/api/auth/api-keys/not-a-uuid", s.access, NULL) == 404);
}

/* ---- roles and admin -------------------------------------------------- */

static void
test_users_cannot_call_admin_routes(void)
{
	struct session	 s;

	expect(new_user("rita", &s, NULL, 0) == 0);
	expect(status_of("GET", "/api/admin/users", s.access, NULL) == 403);
	expect(status_of("GET", "/api/admin/users", NULL, NULL) == 401);
	expect(ensure_admin() == 0);
	expect(status_of("GET", "/api/admin/users?q=rita&limit=5", admin.access, NULL) == 200);
}

static void
test_admin_lists_users_paged_and_searchable(void)
{
	struct http_res	 res;

	expect(ensure_admin() == 0);
	res = http_bearer("GET", "/api/admin/users?q=ROOT&limit=1&page=1", admin.access, NULL);
	expect_status(&res, 200);
	expect(json_int(&res, "limit", 0) == 1);
	expect(json_int(&res, "total", 0) >= 1);
	expect(strstr(res.body, admin_name) != NULL);
	expect(strstr(res.body, "password") == NULL);
	expect(strstr(res.body, "***@") != NULL);	/* emails are masked */
	expect(strstr(res.body, "@localhost.localdomain\"") == NULL ||
	    strstr(res.body, "r***@") != NULL);
	http_free(&res);
	expect(status_of("GET", "/api/admin/users?limit=abc", admin.access, NULL) == 400);
	expect(status_of("GET", "/api/admin/users?role=king", admin.access, NULL) == 400);
}

static void
test_deactivation_and_role_changes_end_tokens_at_once(void)
{
	struct session	 s;
	char		 name[64], path[128], body[256];
	struct http_res	 res;

	expect(ensure_admin() == 0);
	expect(new_user("sam", &s, name, sizeof(name)) == 0);
	snprintf(path, sizeof(path), "/api/admin/users/%s", s.id);
	res = http_bearer("PUT", path, admin.access, "{\"role\":\"moderator\"}");
	expect_status(&res, 200);
	expect_json_str(&res, "role", "moderator");
	http_free(&res);
	expect(status_of("GET", "/api/auth/user", s.access, NULL) == 401);
	expect(login(name, PASSWORD, &s) == 0);
	res = http_bearer("GET", "/api/auth/user", s.access, NULL);
	expect_json_str(&res, "role", "moderator");
	http_free(&res);
	expect(status_of("PUT", path, admin.access, "{\"is_active\":false}") == 200);
	expect(status_of("GET", "/api/auth/user", s.access, NULL) == 401);
	snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", s.refresh);
	expect(status_of("POST", "/api/auth/refresh", NULL, body) == 401);
	expect(login(name, PASSWORD, &s) == -403);
	expect(status_of("PUT", path, admin.access, "{\"email\":\"x@example.org\"}") == 400);
	expect(status_of("PUT", path, admin.access, "{\"role\":\"emperor\"}") == 422);
	expect(status_of("PUT", "/api/admin/users/00000000-0000-0000-0000-000000000000",
	    admin.access, "{\"role\":\"user\"}") == 404);
}

static void
test_the_last_admin_cannot_be_demoted(void)
{
	char		 path[128], sql[256];

	expect(ensure_admin() == 0);
	/* Leave this admin as the only active one. */
	snprintf(sql, sizeof(sql), "UPDATE users SET is_active = false WHERE role = 'admin'"
	    " AND username <> '%s'", admin_name);
	psql(sql);
	snprintf(path, sizeof(path), "/api/admin/users/%s", admin.id);
	expect(status_of("PUT", path, admin.access, "{\"role\":\"user\"}") == 409);
	expect(status_of("PUT", path, admin.access, "{\"is_active\":false}") == 409);
}

/* ---- the route-by-role matrix ------------------------------------------ */

struct op {
	char	 method[16];
	char	 path[128];
	char	 perm[64];
};

/* Every operation of docs/openapi.yaml with its x-permission. */
static int
read_ops(struct op *ops, int cap)
{
	char	 path[512], line[512], cur[128] = "";
	FILE	*f;
	int	 n = 0;

	snprintf(path, sizeof(path), "%s/docs/openapi.yaml", top);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	int	 in_paths = 0;

	while (fgets(line, sizeof(line), f) != NULL && n < cap) {
		char	 m[16], v[64];

		/* Only the paths: section; other top-level keys end it. */
		if (line[0] != ' ' && line[0] != '\n' && line[0] != '#') {
			in_paths = strncmp(line, "paths:", 6) == 0;
			continue;
		}
		if (!in_paths)
			continue;
		if (strncmp(line, "  /", 3) == 0 && strchr(line, ':') != NULL) {
			sscanf(line + 2, "%127[^:]", cur);
			continue;
		}
		if (sscanf(line, "    %15[a-z]:", m) == 1 && line[4] != ' ' &&
		    (strcmp(m, "get") == 0 || strcmp(m, "post") == 0 ||
		    strcmp(m, "put") == 0 || strcmp(m, "delete") == 0 ||
		    strcmp(m, "patch") == 0)) {
			snprintf(ops[n].method, sizeof(ops[n].method), "%s", m);
			snprintf(ops[n].path, sizeof(ops[n].path), "%s", cur);
			ops[n].perm[0] = '\0';
			n++;
			continue;
		}
		if (n > 0 && sscanf(line, "      x-permission: %63s", v) == 1)
			snprintf(ops[n - 1].perm, sizeof(ops[n - 1].perm), "%s", v);
	}
	fclose(f);
	return n;
}

static const char *const role_names[] = { "anonymous", "guest", "user", "moderator", "admin" };

/* The matrix of the product notes, as the doc's x-roles states it. */
static int
role_has(int role, const char *perm)
{
	static const char *const guest[] = { "read:tracks", "read:playlists",
	    "read:schedules", NULL };
	static const char *const user[] = { "read:tracks", "write:tracks",
	    "delete:tracks", "read:playlists", "write:playlists",
	    "delete:playlists", "read:schedules", NULL };
	static const char *const mod[] = { "read:tracks", "write:tracks",
	    "delete:tracks", "read:playlists", "write:playlists",
	    "delete:playlists", "read:schedules", "write:schedules",
	    "delete:schedules", "read:system", NULL };
	const char *const	*list;

	if (strcmp(perm, "public") == 0)
		return 1;
	if (role == 0)
		return 0;
	if (strcmp(perm, "authenticated") == 0 || role == 4)
		return 1;
	list = role == 1 ? guest : role == 2 ? user : mod;
	for (; *list != NULL; list++)
		if (strcmp(*list, perm) == 0)
			return 1;
	return 0;
}

static void
test_every_route_answers_each_role_as_the_matrix_says(void)
{
	struct op	 ops[256];
	int		 n = read_ops(ops, 256), i, role;
	struct session	 sess[5];
	char		 name[64];
	struct http_res	 res;

	expect(n > 10);
	expect(ensure_admin() == 0);
	/* One session per role; the moderator is promoted by the admin. */
	res = http_bearer("POST", "/api/auth/anonymous", NULL, NULL);
	expect(take_session(&res, &sess[1]) == 0);
	http_free(&res);
	expect(new_user("matrixu", &sess[2], NULL, 0) == 0);
	expect(new_user("matrixm", &sess[3], name, sizeof(name)) == 0);
	{
		char	 path[128];

		snprintf(path, sizeof(path), "/api/admin/users/%s", sess[3].id);
		expect(status_of("PUT", path, admin.access, "{\"role\":\"moderator\"}") == 200);
		expect(login(name, PASSWORD, &sess[3]) == 0);
	}
	sess[4] = admin;

	for (role = 0; role < 5; role++) {
		for (i = 0; i < n; i++) {
			char		 path[160], *p, *q;
			const char	*tok = role == 0 ? NULL : sess[role].access;
			int		 allowed = role_has(role, ops[i].perm);
			int		 denied_by_route;

			if (ops[i].perm[0] == '\0') {
				t_fail(__FILE__, __LINE__, "%s %s has no x-permission",
				    ops[i].method, ops[i].path);
				continue;
			}
			/* Logging out would end the session the loop uses. */
			if (strcmp(ops[i].path, "/api/auth/logout") == 0 && role != 0)
				continue;
			/* {param} → a UUID that names nothing. */
			snprintf(path, sizeof(path), "%s", ops[i].path);
			while ((p = strchr(path, '{')) != NULL && (q = strchr(p, '}')) != NULL) {
				char	 rest[160];

				snprintf(rest, sizeof(rest), "%s", q + 1);
				snprintf(p, sizeof(path) - (size_t)(p - path),
				    "00000000-0000-4000-8000-000000000000%s", rest);
			}
			{
				char	 m[8];
				int	 k;

				for (k = 0; ops[i].method[k] && k < 7; k++)
					m[k] = (char)(ops[i].method[k] - 32);
				m[k] = '\0';
				res = http_bearer(m, path, tok,
				    strcmp(m, "GET") == 0 || strcmp(m, "DELETE") == 0 ?
				    NULL : "{}");
			}
			denied_by_route = res.status == 401 ||
			    (res.status == 403 && json_str(&res, "error.message") &&
			    strstr(json_str(&res, "error.message"), "lacks the permission"));
			if (allowed && denied_by_route)
				t_fail(__FILE__, __LINE__, "%s %s as %s: %ld, wanted access",
				    ops[i].method, ops[i].path, role_names[role], res.status);
			if (!allowed && res.status != (role == 0 ? 401 : 403))
				t_fail(__FILE__, __LINE__, "%s %s as %s: %ld, wanted %d",
				    ops[i].method, ops[i].path, role_names[role], res.status,
				    role == 0 ? 401 : 403);
			if (!allowed && !denied_by_route)
				t_fail(__FILE__, __LINE__, "%s %s as %s: not refused by the route",
				    ops[i].method, ops[i].path, role_names[role]);
			http_free(&res);
		}
	}
	reset_login_throttle();
}

/* ---- key rotation ----------------------------------------------------- */

static void
test_key_rotation_keeps_tokens_of_the_previous_key(void)
{
	struct session	 s, s2;

	expect(new_user("tina", &s, NULL, 0) == 0);
	/* New current secret; the old one becomes the previous one. */
	expect(sh("cd %s/secrets && cp jwt.secret jwt.previous && "
	    "openssl rand -hex 32 > jwt.secret", stack_dir) == 0);
	expect(sh("%s/tools/stack pool-stop %s && DJAMMS_JWT_PREVIOUS_SECRET_FILE=%s/secrets/jwt.previous "
	    "%s/tools/stack pool-start %s", top, stack_dir, stack_dir, top, stack_dir) == 0);
	sleep_ms(300);
	expect(status_of("GET", "/api/auth/user", s.access, NULL) == 200);
	expect(new_user("tina", &s2, NULL, 0) == 0);
	expect(status_of("GET", "/api/auth/user", s2.access, NULL) == 200);
	/* A third key, unknown to the pool, is refused. */
	{
		long	 now = (long)time(NULL);
		const char *k = "a third secret that nobody configured at all";

		expect(status_of("GET", "/api/auth/user", forge(header("HS256",
		    kid_of(k, strlen(k))), payload(s.id, now, now + 600, "djamms",
		    "djamms-api", "access"), k, strlen(k)), NULL) == 401);
	}
}

#define T(fn)	{ #fn, fn }
const struct it_test auth_tests[] = {
	T(test_register_returns_tokens_and_no_secrets),
	T(test_register_conflicts_do_not_say_which_field),
	T(test_register_validates_every_field),
	T(test_login_by_username_or_email_in_any_case),
	T(test_wrong_password_and_unknown_user_look_the_same),
	T(test_brute_force_is_throttled_with_retry_after),
	T(test_failures_are_also_counted_per_address),
	T(test_no_token_is_401_with_www_authenticate),
	T(test_forged_tokens_are_refused),
	T(test_logout_ends_the_access_and_refresh_token),
	T(test_token_checks_use_the_shared_tables),
	T(test_a_version_bump_in_psql_ends_tokens_within_a_second),
	T(test_a_profile_changed_in_psql_is_served_fresh),
	T(test_revocation_holds_while_the_watcher_is_away),
	T(test_refresh_rotates_and_reuse_revokes_the_family),
	T(test_sessions_survive_a_reload_of_every_worker),
	T(test_profile_updates_refuse_mass_assignment),
	T(test_email_and_password_changes_need_the_current_password),
	T(test_anonymous_guest_upgrades_in_place),
	T(test_password_reset_answers_the_same_and_works_once),
	T(test_api_keys_are_shown_once_scoped_and_revocable),
	T(test_users_cannot_call_admin_routes),
	T(test_admin_lists_users_paged_and_searchable),
	T(test_deactivation_and_role_changes_end_tokens_at_once),
	T(test_every_route_answers_each_role_as_the_matrix_says),
	T(test_logins_work_without_redis),
	T(test_the_last_admin_cannot_be_demoted),
	T(test_key_rotation_keeps_tokens_of_the_previous_key),
};
const size_t auth_ntests = sizeof(auth_tests) / sizeof(auth_tests[0]);

void
auth_tests_init(const char *dir, const char *repo)
{
	stack_dir = dir;
	top = repo;
}
