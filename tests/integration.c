/*
 * tests/integration.c: end-to-end tests through real nginx, Postgres,
 * Redis and the worker pool, started by tests/run-all with tools/stack.
 * Environment: BASE_URL, STACK_DIR, TOP (the repository), DJAMMS_BIN.
 * Tests run in order; the ones that stop parts of the stack put them
 * back before they return.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "http.h"

/* tests/run-all: DJAMMS_WORKERS=4 for the API, DJAMMS_SEARCH_WORKERS=1 */
#define POOL_SLOTS	5

static const char	*stack_dir, *top;

/* ---- helpers ------------------------------------------------------ */

static pid_t
master_pid(void)
{
	return (pid_t)atol(sh_out("cat %s/run/djamms.pid 2>/dev/null", stack_dir));
}

/* The master's children, space separated. */
static const char *
worker_pids(void)
{
	pid_t	 m = master_pid();

	return sh_out("cat /proc/%ld/task/%ld/children 2>/dev/null",
	    (long)m, (long)m);
}

/* Poll until GET path answers want, up to ms. */
static int
wait_status(const char *path, long want, long ms)
{
	long	 waited;

	for (waited = 0; waited <= ms; waited += 100) {
		struct http_res	 res = http_get(path);
		long		 st = res.status;

		http_free(&res);
		if (st == want)
			return 1;
		sleep_ms(100);
	}
	return 0;
}

/* A load of GETs from several threads, each on its own connection. */
struct load {
	const char	*path;
	long		 duration_ms;
	long		 ok, failed;
	long		 statuses[600];
	pthread_mutex_t	 mu;
};

static void *
load_thread(void *arg)
{
	struct load	*l = arg;
	CURL		*c;
	char		 url[512];
	struct timespec	 t0, t;

	snprintf(url, sizeof(url), "%s%s", getenv("BASE_URL"), l->path);
	c = it_curl_handle(url, 30);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		long	 st = 0;
		CURLcode rc;

		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >
		    l->duration_ms)
			break;
		rc = curl_easy_perform(c);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
		pthread_mutex_lock(&l->mu);
		if (rc == CURLE_OK && st == 200)
			l->ok++;
		else
			l->failed++;
		if (st >= 0 && st < 600)
			l->statuses[st]++;
		pthread_mutex_unlock(&l->mu);
	}
	curl_easy_cleanup(c);
	return NULL;
}

static void
load_start(struct load *l, pthread_t *th, int n)
{
	pthread_mutex_init(&l->mu, NULL);
	it_threads(th, n, load_thread, l);
}

static void
load_join(struct load *l, pthread_t *th, int n)
{
	it_join(th, n);
	if (l->failed > 0) {
		int	 s;

		fprintf(stderr, "    load: %ld ok, %ld failed:", l->ok, l->failed);
		for (s = 0; s < 600; s++)
			if (l->statuses[s] && s != 200)
				fprintf(stderr, " %d x%ld", s, l->statuses[s]);
		fputc('\n', stderr);
	}
}

/* ---- the API core through nginx ---------------------------------- */

static void
test_health_answers_through_nginx_with_a_request_id(void)
{
	struct http_res	 res = http_get("/api/health");
	const char	*id;

	expect_status(&res, 200);
	expect_json_str(&res, "status", "ok");
	id = http_header(&res, "X-Request-Id");
	expect(id != NULL && strlen(id) == 32);
	expect(strstr(http_header(&res, "Content-Type"), "application/json") != NULL);
	http_free(&res);
}

static void
test_every_request_is_one_json_log_line(void)
{
	struct http_res	 res = http_get("/api/system/info");
	char		 id[64];
	const char	*line;

	expect_status(&res, 200);
	snprintf(id, sizeof(id), "%s", http_header(&res, "X-Request-Id"));
	http_free(&res);
	sleep_ms(50);
	line = sh_out("grep -h '\"id\":\"%s\"' %s/log/djamms.log", id, stack_dir);
	expect(strstr(line, "\"route\":\"/api/system/info\"") != NULL);
	expect(strstr(line, "\"status\":200") != NULL);
	expect(strstr(line, "\"duration_us\":") != NULL);
	expect(strstr(line, "\"method\":\"GET\"") != NULL);
	expect(strstr(line, "\"pid\":") != NULL);
	expect(strstr(line, "\"time\":\"20") != NULL);
	expect(strchr(line, '\n') == NULL);	/* exactly one line */
}

static void
test_status_is_200_when_everything_is_up(void)
{
	struct http_res	 res = http_get("/api/system/status");

	expect_status(&res, 200);
	expect_json_str(&res, "status", "ok");
	expect_json_str(&res, "checks.database.status", "ok");
	expect_json_str(&res, "checks.redis.status", "ok");
	expect_json_str(&res, "checks.storage.status", "ok");
	expect_json_str(&res, "checks.pool.status", "ok");
	/* tests/run-all: 4 workers for the API, 1 for search */
	expect(json_int(&res, "checks.pool.workers", 0) == POOL_SLOTS);
	expect(json_int(&res, "checks.pool.search_workers", 0) == 1);
	expect(json_int(&res, "checks.pool.alive", 0) == POOL_SLOTS);
	http_free(&res);
}

static void
test_info_reads_the_schema_version_from_the_database(void)
{
	struct http_res	 res = http_get("/api/system/info");

	expect_status(&res, 200);
	expect(json_str(&res, "schema_version") != NULL);
	expect(strstr(json_str(&res, "postgres_version"), "15") != NULL);
	http_free(&res);
}

static void
test_unknown_path_is_404_with_the_error_shape(void)
{
	struct http_res	 res = http_get("/api/no/such/thing");

	expect_status(&res, 404);
	expect_json_str(&res, "error.code", "not_found");
	expect(json_str(&res, "error.message") != NULL);
	expect(json_has(&res, "error.details"));
	http_free(&res);
}

static void
test_wrong_method_is_405_with_allow(void)
{
	struct http_res	 res = http_json("DELETE", "/api/health", "{}");

	expect_status(&res, 405);
	expect_json_str(&res, "error.code", "method_not_allowed");
	expect(http_header(&res, "Allow") != NULL);
	expect(strcmp(http_header(&res, "Allow"), "GET, HEAD") == 0);
	http_free(&res);
}

static void
test_malformed_json_is_400(void)
{
	static const char *const bad[] = {
		"{\"a\":", "{\"a\":1} trailing", "{'a':1}", "[1,2,]",
		"{\"a\":\"\xff\xfe\"}", "", "nul",
	};
	size_t	 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct http_res	 res = http_json("POST", "/api/_test/echo", bad[i]);

		if (res.status != 400)
			t_fail(__FILE__, __LINE__, "body %zu: status %ld", i, res.status);
		expect_json_str(&res, "error.code", "bad_request");
		http_free(&res);
	}
}

static void
test_deeply_nested_json_is_400(void)
{
	char		 doc[400];
	struct http_res	 res;
	int		 i;

	for (i = 0; i < 100; i++)
		doc[i] = '[';
	for (i = 100; i < 200; i++)
		doc[i] = ']';
	doc[200] = '\0';
	res = http_json("POST", "/api/_test/echo", doc);
	expect_status(&res, 400);
	expect(strstr(json_str(&res, "error.message"), "deep") != NULL);
	http_free(&res);
}

static void
test_valid_json_is_accepted(void)
{
	struct http_res	 res = http_json("POST", "/api/_test/echo",
			    "{\"name\":\"Beyonc\xc3\xa9\",\"n\":[1,2]}  \n");

	expect_status(&res, 200);
	expect_json_str(&res, "echo.name", "Beyonc\xc3\xa9");
	http_free(&res);
}

static void
test_wrong_content_type_is_415(void)
{
	static const char *const h[] = { "Content-Type: text/plain", NULL };
	struct http_res	 res = http_do("POST", "/api/_test/echo", h, "{}", 2);

	expect_status(&res, 415);
	expect_json_str(&res, "error.code", "unsupported_media_type");
	http_free(&res);
}

static void
test_body_over_the_worker_cap_is_413(void)
{
	size_t		 n = 100 * 1024;	/* DJAMMS_BODY_MAX is 64 KiB here */
	char		*doc = malloc(n + 1);
	struct http_res	 res;

	doc[0] = '"';
	memset(doc + 1, 'a', n - 2);
	doc[n - 1] = '"';
	doc[n] = '\0';
	res = http_json("POST", "/api/_test/echo", doc);
	free(doc);
	expect_status(&res, 413);
	expect_json_str(&res, "error.code", "payload_too_large");
	http_free(&res);
}

static void
test_body_over_nginx_cap_is_413_in_the_same_shape(void)
{
	size_t		 n = 3 * 1024 * 1024;
	char		*doc = malloc(n + 1);
	struct http_res	 res;

	memset(doc, ' ', n);
	doc[n] = '\0';
	res = http_json("POST", "/api/_test/echo", doc);
	free(doc);
	expect_status(&res, 413);
	expect_json_str(&res, "error.code", "payload_too_large");
	http_free(&res);
}

static void
test_bad_percent_escape_in_query_is_400(void)
{
	struct http_res	 res = http_get("/api/health?x=%zz");

	expect_status(&res, 400);
	expect_json_str(&res, "error.code", "bad_request");
	http_free(&res);
}

static void
test_path_tricks_do_not_reach_a_handler(void)
{
	static const char *const paths[] = {
		"/api/health/", "/api//health", "/api/%68ealth",
		"/api/health%00", "/api/./health",
	};
	size_t	 i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct http_res	 res = http_get(paths[i]);

		if (res.status != 404 && res.status != 400)
			t_fail(__FILE__, __LINE__, "%s answered %ld", paths[i],
			    res.status);
		http_free(&res);
	}
}

static void
test_check_config_accepts_a_minimal_environment(void)
{
	/* Only the database is required; everything else has a default. */
	const char	*out = sh_out("env -i DJAMMS_DATABASE_URL=x "
			    "DJAMMS_JWT_SECRET=0123456789abcdef0123456789abcdef "
			    "DJAMMS_MEDIA_SECRET=0123456789abcdef %s check-config "
			    ">/dev/null 2>&1; echo $?", getenv("DJAMMS_BIN"));

	expect(strcmp(out, "0") == 0);
}

/* ---- nginx ---------------------------------------------------------- */

static void
test_security_headers_and_no_version(void)
{
	struct http_res	 res = http_get("/api/health");

	expect(http_header(&res, "Strict-Transport-Security") != NULL);
	expect(strcmp(http_header(&res, "X-Content-Type-Options"), "nosniff") == 0);
	expect(strcmp(http_header(&res, "Server"), "nginx") == 0);
	http_free(&res);
}

static void
test_http2_is_negotiated(void)
{
	const char	*v = sh_out("curl -sk --http2 -o /dev/null -w '%%{http_version}' "
			    "%s/api/health", getenv("BASE_URL"));

	expect(strcmp(v, "2") == 0);
}

static void
test_static_root_is_served_by_nginx(void)
{
	struct http_res	 res = http_get("/");

	expect_status(&res, 200);
	expect(strstr(res.body, "djamms") != NULL);
	http_free(&res);
}

static void
test_auth_routes_are_rate_limited_with_429_json(void)
{
	int	 i, limited = 0;

	/* The test stack allows 100 r/s with a burst of 200 on /api/auth/. */
	for (i = 0; i < 600 && limited < 5; i++) {
		struct http_res	 res = http_json("POST", "/api/auth/login", "{}");

		if (res.status == 429) {
			const char	*code = json_str(&res, "error.code");

			if (code == NULL || strcmp(code, "rate_limited") != 0)
				t_fail(__FILE__, __LINE__, "429 without the JSON shape");
			limited++;
		}
		http_free(&res);
	}
	expect(limited > 0);
}

static void
test_gzip_applies_to_json(void)
{
	/* gzip_min_length leaves small bodies alone: echo a 4 KB one. */
	const char	*enc = sh_out("printf '{\"pad\":\"%%04096d\"}' 0 | "
			    "curl -sk -H 'Accept-Encoding: gzip' -H 'Content-Type: "
			    "application/json' --data-binary @- -D - -o /dev/null "
			    "%s/api/_test/echo | tr -d '\\r' | "
			    "grep -i '^content-encoding:' | cut -d' ' -f2",
			    getenv("BASE_URL"));

	expect(strcmp(enc, "gzip") == 0);
}

/* ---- the pool ------------------------------------------------------- */

static void
test_socket_is_private_0660(void)
{
	struct stat	 st;
	char		 path[512];

	snprintf(path, sizeof(path), "%s/run/djamms.sock", stack_dir);
	expect(stat(path, &st) == 0);
	expect(S_ISSOCK(st.st_mode));
	expect((st.st_mode & 0777) == 0660);
	snprintf(path, sizeof(path), "%s/run/djamms-search.sock", stack_dir);
	expect(stat(path, &st) == 0);
	expect(S_ISSOCK(st.st_mode));
	expect((st.st_mode & 0777) == 0660);
}

/* One FastCGI name-value pair at b[*o] (names and values under 128 bytes). */
static void
fcgi_pair(unsigned char *b, size_t *o, const char *name, const char *value)
{
	size_t	 n = strlen(name), v = strlen(value);

	b[(*o)++] = (unsigned char)n;
	b[(*o)++] = (unsigned char)v;
	memcpy(b + *o, name, n);
	*o += n;
	memcpy(b + *o, value, v);
	*o += v;
}

/* A FastCGI record header of type t with len bytes of content, request 1. */
static void
fcgi_header(unsigned char *b, size_t *o, int t, size_t len)
{
	unsigned char	 h[8] = { 1, (unsigned char)t, 0, 1, (unsigned char)(len >> 8),
			    (unsigned char)len, 0, 0 };

	memcpy(b + *o, h, 8);
	*o += 8;
}

/*
 * GET uri from the FastCGI responder on the unix socket at path, as nginx
 * would ask it; what the responder wrote (headers and body) into out.
 * -1 if the socket does not answer.
 */
static int
fcgi_get(const char *path, const char *uri, char *out, size_t cap)
{
	static const unsigned char begin[8] = { 0, 1, 0, 0, 0, 0, 0, 0 };
	unsigned char		 req[1024], params[512], h[8], *body;
	size_t			 o = 0, p = 0, len = 0;
	struct sockaddr_un	 sun;
	int			 fd, done = 0;

	fcgi_pair(params, &p, "REQUEST_METHOD", "GET");
	fcgi_pair(params, &p, "REQUEST_URI", uri);
	fcgi_pair(params, &p, "QUERY_STRING", "");
	fcgi_pair(params, &p, "REQUEST_ID", "0123456789abcdef0123456789abcdef");
	fcgi_pair(params, &p, "REMOTE_ADDR", "127.0.0.1");
	fcgi_pair(params, &p, "SERVER_PROTOCOL", "HTTP/1.1");
	fcgi_header(req, &o, 1, sizeof(begin));		/* BEGIN_REQUEST */
	memcpy(req + o, begin, sizeof(begin));
	req[o + 1] = 1;					/* role: responder */
	o += sizeof(begin);
	fcgi_header(req, &o, 4, p);			/* PARAMS */
	memcpy(req + o, params, p);
	o += p;
	fcgi_header(req, &o, 4, 0);
	fcgi_header(req, &o, 5, 0);			/* STDIN, empty */

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
	    write(fd, req, o) != (ssize_t)o) {
		close(fd);
		return -1;
	}
	body = malloc(65536 + 256);
	while (!done && body != NULL) {
		size_t	 n, pad, got = 0;

		while (got < 8) {
			ssize_t	 r = read(fd, h + got, 8 - got);

			if (r <= 0)
				goto out;
			got += (size_t)r;
		}
		n = ((size_t)h[4] << 8 | h[5]);
		pad = h[6];
		for (got = 0; got < n + pad; ) {
			ssize_t	 r = read(fd, body + got, n + pad - got);

			if (r <= 0)
				goto out;
			got += (size_t)r;
		}
		if (h[1] == 6 && len + n < cap) {		/* STDOUT */
			memcpy(out + len, body, n);
			len += n;
		}
		done = h[1] == 3;				/* END_REQUEST */
	}
out:
	free(body);
	close(fd);
	out[len < cap ? len : cap - 1] = '\0';
	return done ? 0 : -1;
}

/*
 * Under systemd, djamms.socket passes the API's socket (fd 3) and then
 * search's (fd 4); a djamms.socket of an older install passes the API's
 * alone, and the pool binds the search socket itself. A pool of its own,
 * started as systemd would (systemd-socket-activate), answers on each.
 */
static void
test_socket_activation_passes_both_sockets(void)
{
	char		 dir[] = "/tmp/djamms-activate.XXXXXX", path[300], out[8192];
	int		 fds;

	if (sh("command -v systemd-socket-activate >/dev/null") != 0) {
		t_fail(__FILE__, __LINE__, "systemd-socket-activate is not installed");
		return;
	}
	expect(mkdtemp(dir) != NULL);
	for (fds = 2; fds >= 1; fds--) {
		const char	*search = fds == 2 ? "search.sock" : "bound.sock";
		int		 i, rc = -1;

		snprintf(path, sizeof(path), "%s/search.sock", dir);

		/*
		 * It waits for a first connection before it starts the pool,
		 * and passes only the variables named with -E.
		 */
		expect(sh("cd %s && eval \"$(%s/tools/stack env %s)\" && "
		    "export DJAMMS_WORKERS=1 DJAMMS_SEARCH_WORKERS=1 "
		    "DJAMMS_LOG_FILE=%s/pool%d.log DJAMMS_LISTEN=%s/unused.sock "
		    "DJAMMS_SEARCH_LISTEN=%s/bound.sock && "
		    "set -- $(env | grep -o '^DJAMMS_[A-Z0-9_]*' | sed 's/^/-E /') && "
		    "(setsid systemd-socket-activate -l %s/api.sock %s%s \"$@\" "
		    "-E PATH -E ASAN_OPTIONS -E UBSAN_OPTIONS -E VALGRIND_LOG_DIR "
		    "\"$DJAMMS_BIN\" serve >/dev/null 2>&1 & echo $! >%s/pid)",
		    top, top, stack_dir, dir, fds, dir, dir, dir,
		    fds == 2 ? "-l " : "", fds == 2 ? path : "", dir) == 0);
		for (i = 0; i < 100 && sh("test -S %s/api.sock", dir) != 0; i++)
			sleep_ms(50);
		/* the first request starts the pool: workers connect, then answer */
		snprintf(path, sizeof(path), "%s/api.sock", dir);
		rc = fcgi_get(path, "/api/health", out, sizeof(out));
		if (rc != 0 || strstr(out, "\"status\":\"ok\"") == NULL)
			t_fail(__FILE__, __LINE__, "the API's socket (%d fds): %d %.200s",
			    fds, rc, out);
		snprintf(path, sizeof(path), "%s/%s", dir, search);
		for (i = 0; i < 100 && sh("test -S %s", path) != 0; i++)
			sleep_ms(50);
		rc = fcgi_get(path, "/api/health", out, sizeof(out));
		if (rc != 0 || strstr(out, "\"status\":\"ok\"") == NULL)
			t_fail(__FILE__, __LINE__, "the search socket (%d fds): %d %.200s",
			    fds, rc, out);
		expect(sh("grep -q '\"fd\":3' %s/pool%d.log", dir, fds) == 0);
		if (fds == 2)
			expect(sh("grep -q '\"fd\":4,\"for\":\"search\"' %s/pool%d.log",
			    dir, fds) == 0);
		else
			expect(sh("grep -q '\"socket\":\"%s/bound.sock\"' %s/pool%d.log",
			    dir, dir, fds) == 0);
		expect(sh("test ! -e %s/unused.sock", dir) == 0);
		/* systemd-socket-activate execs the pool: its pid is the master's */
		expect(sh("kill -TERM $(cat %s/pid); for i in $(seq 1 100); do "
		    "kill -0 $(cat %s/pid) 2>/dev/null || exit 0; sleep 0.1; done; exit 1",
		    dir, dir) == 0);
		/* a socket the pool bound is gone with it */
		expect(sh("test ! -e %s/bound.sock", dir) == 0);
		sh("rm -f %s/api.sock %s/search.sock", dir, dir);
	}
	if (!t_failed_now)
		sh("rm -rf %s", dir);
}

static void
test_recycled_workers_lose_no_requests(void)
{
	long long	 before = it_pool_counter("restarts");
	int		 i, failed = 0;

	/* DJAMMS_MAX_REQUESTS is 300 (+jitter) here: 1500 requests recycle. */
	for (i = 0; i < 1500; i++) {
		struct http_res	 res = http_get("/api/health");

		if (res.status != 200)
			failed++;
		http_free(&res);
	}
	expect(failed == 0);
	expect(it_pool_counter("restarts") > before);
}

static void
test_killed_worker_is_respawned_and_nginx_keeps_serving(void)
{
	struct load	 l = { .path = "/api/health", .duration_ms = 3000 };
	pthread_t	 th[4];
	long long	 restarts = it_pool_counter("restarts");
	long		 victim;

	load_start(&l, th, 4);
	sleep_ms(800);
	victim = atol(worker_pids());
	expect(victim > 0);
	kill((pid_t)victim, SIGKILL);
	load_join(&l, th, 4);
	/* Only the request in flight on the killed worker may fail. */
	expect(l.failed <= 2);
	expect(l.ok > 100);
	expect(wait_status("/api/health", 200, 3000));
	sleep_ms(500);
	expect(it_pool_counter("alive") == POOL_SLOTS);
	expect(it_pool_counter("restarts") > restarts);
}

static void
test_reload_replaces_every_worker_without_dropping_requests(void)
{
	char		 before[512], padded[600];
	struct load	 l = { .path = "/api/health", .duration_ms = 4000 };
	pthread_t	 th[3];
	const char	*after;
	char		*tok, *save;
	int		 waited;

	snprintf(before, sizeof(before), "%s", worker_pids());
	load_start(&l, th, 3);
	sleep_ms(300);
	kill(master_pid(), SIGHUP);
	load_join(&l, th, 3);
	expect(l.failed == 0);
	for (waited = 0; waited < 50; waited++) {
		if (sh("grep -q '\"msg\":\"reload done\"' %s/log/djamms.log", stack_dir) == 0)
			break;
		sleep_ms(100);
	}
	snprintf(padded, sizeof(padded), " %s ", worker_pids());
	after = padded;
	for (tok = strtok_r(before, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char	 pat[32];

		snprintf(pat, sizeof(pat), " %s ", tok);
		if (strstr(after, pat) != NULL)
			t_fail(__FILE__, __LINE__, "worker %s survived the reload", tok);
	}
	/* a loaded machine (sanitizers) may take a moment to start the last */
	for (waited = 0; waited < 30 && it_pool_counter("alive") != POOL_SLOTS; waited++)
		sleep_ms(100);
	expect(it_pool_counter("alive") == POOL_SLOTS);
}

static void
test_stuck_request_is_killed_at_the_deadline(void)
{
	/* DJAMMS_REQUEST_TIMEOUT_MS is 2000 here. */
	long long	 kills = it_pool_counter("deadline_kills");
	struct http_res	 res = http_get("/api/_test/sleep?ms=6000");

	expect(res.status == 502 || res.status == 504);
	expect(json_str(&res, "error.code") != NULL);
	expect(res.seconds < 3.5);	/* killed once, not replayed */
	http_free(&res);
	expect(it_pool_counter("deadline_kills") == kills + 1);
	expect(sh("grep 'request deadline exceeded' %s/log/djamms.log | "
	    "grep -q '\"route\":\"/api/_test/sleep\"'", stack_dir) == 0);
	expect(wait_status("/api/health", 200, 3000));
}

static void
test_transactions_retry_serialization_failures(void)
{
	struct http_res	 res = http_json("POST", "/api/_test/tx?fail=2", "{}");

	expect_status(&res, 200);
	expect(json_int(&res, "attempts", 0) == 3);
	http_free(&res);
	/* Three attempts is the limit: the fourth is not made. */
	res = http_json("POST", "/api/_test/tx?fail=3", "{}");
	expect_status(&res, 409);
	expect_json_str(&res, "error.code", "conflict");
	expect(strstr(json_str(&res, "error.message"), "3 attempts") != NULL);
	http_free(&res);
	/* The connection is usable afterwards: no transaction left open. */
	res = http_get("/api/system/info");
	expect_status(&res, 200);
	http_free(&res);
}

static void
test_a_crashing_worker_is_respawned_with_back_off(void)
{
	long long	 crashes = it_pool_counter("crashes");
	struct http_res	 res = http_json("POST", "/api/_test/crash", "{}");
	int		 i;

	/* nginx answers for the dead worker in the one error shape. */
	expect_status(&res, 502);
	expect_json_str(&res, "error.code", "bad_gateway");
	http_free(&res);
	expect(wait_status("/api/health", 200, 3000));
	/* The master reaps asynchronously: give it a moment. */
	for (i = 0; i < 20 && it_pool_counter("crashes") == crashes; i++)
		sleep_ms(100);
	expect(it_pool_counter("crashes") == crashes + 1);
	expect(sh("grep '\"msg\":\"worker died\"' %s/log/djamms.log | "
	    "grep -q '\"route\":\"/api/_test/crash\"'", stack_dir) == 0);
	sleep_ms(500);
	expect(it_pool_counter("alive") == POOL_SLOTS);
}

static void
test_a_crash_loop_stops_the_pool(void)
{
	pid_t	 m = master_pid();
	int	 i;

	/* Every new worker dies on its first request: give up, exit 1. */
	for (i = 0; i < 200 && kill(m, 0) == 0; i++) {
		struct http_res	 res = http_json("POST", "/api/_test/crash", "{}");

		http_free(&res);
		sleep_ms(50);
	}
	sleep_ms(300);
	expect(kill(m, 0) != 0);
	expect(sh("grep -q 'crash loop' %s/log/djamms.log", stack_dir) == 0);
	expect(sh("grep '\"msg\":\"pool stopped\"' %s/log/djamms.log | "
	    "tail -n 1 | grep -q '\"exit\":1'", stack_dir) == 0);
	expect(sh("%s/tools/stack pool-start %s", top, stack_dir) == 0);
	expect(wait_status("/api/health", 200, 5000));
}

/* ---- dependencies going away ----------------------------------------- */

static void
test_redis_down_degrades_status_but_db_routes_still_answer(void)
{
	struct http_res	 res;

	expect(sh("%s/tools/stack redis-stop %s", top, stack_dir) == 0);
	res = http_get("/api/system/status");
	if (res.status != 503) {
		t_fail(__FILE__, __LINE__, "status %ld with Redis down", res.status);
		http_free(&res);
		goto restore;
	}
	if (json_str(&res, "checks.redis.status") == NULL ||
	    strcmp(json_str(&res, "checks.redis.status"), "down") != 0 ||
	    strcmp(json_str(&res, "checks.database.status"), "ok") != 0)
		t_fail(__FILE__, __LINE__, "checks: %s", res.body);
	http_free(&res);
	res = http_get("/api/system/info");
	if (res.status != 200)
		t_fail(__FILE__, __LINE__, "DB-only route answered %ld", res.status);
	http_free(&res);
restore:
	expect(sh("%s/tools/stack redis-start %s", top, stack_dir) == 0);
	/* Workers retry Redis at most once a second. */
	expect(wait_status("/api/system/status", 200, 5000));
}

static void
test_workers_reconnect_after_postgres_restarts(void)
{
	struct it_session	 u;
	char			 id[37];
	int			 i, failed = 0;

	expect(it_new_user("pgrestart", &u) == 0);
	expect(sh("%s/tools/stack pg-restart %s", top, stack_dir) == 0);
	/* writes first: a transaction's BEGIN meets the dead connection */
	for (i = 0; i < 12; i++)
		if (it_new_playlist(&u, "After the restart", 0, id) != 0)
			failed++;
	expect(failed == 0);
	for (i = 0; i < 20; i++) {
		struct http_res	 res = http_get("/api/system/info");

		if (res.status != 200)
			failed++;
		http_free(&res);
	}
	expect(failed == 0);
	expect(wait_status("/api/system/status", 200, 3000));
}

static void
test_postgres_down_is_503_not_a_hang(void)
{
	struct http_res	 res;

	expect(sh("%s/tools/stack pg-stop %s", top, stack_dir) == 0);
	res = http_get("/api/system/info");
	if (res.status != 503)
		t_fail(__FILE__, __LINE__, "info with Postgres down: %ld", res.status);
	else if (json_str(&res, "error.code") == NULL ||
	    strcmp(json_str(&res, "error.code"), "unavailable") != 0)
		t_fail(__FILE__, __LINE__, "no error shape: %s", res.body);
	else if (strstr(res.body, "PGSQL") != NULL || strstr(res.body, "socket") != NULL)
		t_fail(__FILE__, __LINE__, "leaks detail: %s", res.body);
	http_free(&res);
	res = http_get("/api/health");
	if (res.status != 200)
		t_fail(__FILE__, __LINE__, "liveness with Postgres down: %ld", res.status);
	http_free(&res);
	expect(sh("%s/tools/stack pg-start %s", top, stack_dir) == 0);
	expect(wait_status("/api/system/info", 200, 5000));
}

/* ---- lifecycle ------------------------------------------------------- */

struct slow {
	long	 status;
};

static void *
slow_request(void *arg)
{
	struct slow	*s = arg;
	CURL		*c;
	char		 url[512];

	snprintf(url, sizeof(url), "%s/api/_test/sleep?ms=1500", getenv("BASE_URL"));
	c = it_curl_handle(url, 0);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s->status);
	curl_easy_cleanup(c);
	return NULL;
}

/*
 * The suite's pool has two core workers and two spares (tests/run-all).
 * With both core workers and a spare on slow requests, the last spare
 * still answers at once; the slow ones all finish.
 */
static void
test_spares_answer_while_the_core_workers_are_busy(void)
{
	struct slow	 s[3];
	pthread_t	 th[3];
	struct http_res	 res;
	int		 i;

	memset(s, 0, sizeof(s));
	for (i = 0; i < 3; i++)
		pthread_create(&th[i], NULL, slow_request, &s[i]);
	sleep_ms(400);
	res = http_get("/api/health");
	expect_status(&res, 200);
	expect(res.seconds < 1.0);	/* not behind a 1.5 s request */
	http_free(&res);
	for (i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		expect(s[i].status == 200);
	}
	expect(sh("grep -q '\"core_workers\":2' %s/log/djamms.log", stack_dir) == 0);
}

static void
test_graceful_stop_finishes_the_request_in_flight(void)
{
	struct slow	 s = { 0 };
	pthread_t	 th;
	pid_t		 m = master_pid();
	int		 i;

	pthread_create(&th, NULL, slow_request, &s);
	sleep_ms(400);
	kill(m, SIGTERM);
	pthread_join(th, NULL);
	for (i = 0; i < 100 && kill(m, 0) == 0; i++)
		sleep_ms(100);
	expect(s.status == 200);
	expect(kill(m, 0) != 0);	/* the master is gone */
	expect(sh("%s/tools/stack pool-start %s", top, stack_dir) == 0);
	expect(wait_status("/api/health", 200, 5000));
}

static void
test_migrate_is_idempotent_and_refuses_edited_files(void)
{
	const char	*out;

	out = sh_out("eval \"$(%s/tools/stack env %s)\"; %s migrate 2>&1",
	    top, stack_dir, getenv("DJAMMS_BIN"));
	expect(strstr(out, "0 applied now") != NULL);
	out = sh_out("set -e; d=$(mktemp -d); cp %s/sql/*.sql $d/; "
	    "eval \"$(%s/tools/stack env %s)\"; "
	    ". %s/stack.env; "
	    "createdb -h $PG_SOCKET_DIR -p $PG_PORT -U djamms scratch_migrate; "
	    "export DJAMMS_SQL_DIR=$d DJAMMS_DATABASE_URL=\"postgresql:///scratch_migrate?host=$PG_SOCKET_DIR&port=$PG_PORT&user=djamms\"; "
	    "%s migrate >/dev/null; echo '-- edited' >> $(ls $d/*.sql | head -n 1); "
	    "%s migrate 2>&1; echo rc=$?; rm -rf $d; "
	    "dropdb -h $PG_SOCKET_DIR -p $PG_PORT -U djamms scratch_migrate",
	    top, top, stack_dir, stack_dir, getenv("DJAMMS_BIN"), getenv("DJAMMS_BIN"));
	expect(strstr(out, "changed after it was applied") != NULL);
	expect(strstr(out, "rc=0") == NULL);
}

static void
test_bad_configuration_is_refused_with_a_clear_message(void)
{
	const char	*out = sh_out("env -i DJAMMS_WORKERS=lots DJAMMS_REDIS_URL=http://x "
			    "%s check-config 2>&1; echo rc=$?", getenv("DJAMMS_BIN"));

	expect(strstr(out, "DJAMMS_WORKERS=\"lots\"") != NULL);
	expect(strstr(out, "DJAMMS_DATABASE_URL is not set") != NULL);
	expect(strstr(out, "DJAMMS_REDIS_URL") != NULL);
	expect(strstr(out, "DJAMMS_JWT_SECRET or DJAMMS_JWT_SECRET_FILE is not set") != NULL);
	expect(strstr(out, "rc=78") != NULL);
	out = sh_out("env -i DJAMMS_DATABASE_URL=x DJAMMS_JWT_SECRET=short %s check-config "
	    "2>&1; echo rc=$?", getenv("DJAMMS_BIN"));
	expect(strstr(out, "at least 32 are required") != NULL);
	expect(strstr(out, "rc=78") != NULL);
	out = sh_out("env -i DJAMMS_DATABASE_URL=x DJAMMS_SEARCH_WORKERS=0 "
	    "DJAMMS_LISTEN=/run/x.sock DJAMMS_SEARCH_LISTEN=/run/x.sock %s check-config "
	    "2>&1; echo rc=$?", getenv("DJAMMS_BIN"));
	expect(strstr(out, "DJAMMS_SEARCH_WORKERS=\"0\"") != NULL);
	expect(strstr(out, "searches need a socket of their own") != NULL);
	expect(strstr(out, "rc=78") != NULL);
}

static void
test_systemd_units_pass_systemd_analyze_verify(void)
{
	if (sh("command -v systemd-analyze >/dev/null") != 0) {
		t_fail(__FILE__, __LINE__, "systemd-analyze is not installed");
		return;
	}
	expect(sh("%s/systemd/verify.sh \"$(mktemp -d)\" \"$(dirname %s)\" >&2",
	    top, getenv("DJAMMS_BIN")) == 0);
}

static void
test_make_install_honours_prefix_and_destdir(void)
{
	const char	*out = sh_out("d=$(mktemp -d); make -s -C %s install PREFIX=/usr "
			    "DESTDIR=$d >/dev/null 2>&1 && cd $d && find . -type f | sort; "
			    "rm -rf $d", top);

	expect(strstr(out, "./usr/bin/djamms") != NULL);
	expect(strstr(out, "./usr/share/djamms/sql/002_core.sql") != NULL);
	expect(strstr(out, "./lib/systemd/system/djamms.service") != NULL);
	expect(strstr(out, "./etc/djamms/djamms.env") != NULL);
	expect(strstr(out, "./usr/share/djamms/nginx/djamms-server.conf.in") != NULL);
}

/* ---- runner ---------------------------------------------------------- */

#define T(fn)	{ #fn, fn }
/* ---- metrics ---------------------------------------------------------- */

static void
http_free_get(const char *path)
{
	struct http_res	 res = http_get(path);

	http_free(&res);
}

/* The counter of health answers with 200, from the pool's exposition. */
static long long
health_count(void)
{
	struct http_res	 res = http_get("/metrics");
	const char	*p;
	long long	 n = -1;

	if (res.status == 200 && (p = strstr(res.body, "djamms_http_requests_total"
	    "{route=\"/api/health\",method=\"GET\",status=\"200\"} ")) != NULL)
		n = atoll(strchr(p, '}') + 2);
	http_free(&res);
	return n;
}

static void
test_metrics_count_the_whole_pool_and_pass_promtool(void)
{
	struct http_res	 res;
	long long	 before, after;
	char		 path[512];
	int		 i;

	for (i = 0; i < 3; i++)
		http_free_get("/api/health");
	expect((before = health_count()) >= 3);
	for (i = 0; i < 40; i++)	/* spread over every worker */
		http_free_get("/api/health");
	after = health_count();
	if (after < before + 40)
		t_fail(__FILE__, __LINE__, "health counted %lld then %lld", before, after);
	expect(after >= before + 40);

	res = http_get("/metrics");
	expect_status(&res, 200);
	expect(strstr(http_header(&res, "Content-Type"), "text/plain; version=0.0.4") != NULL);
	expect(strstr(res.body, "djamms_http_request_duration_seconds_bucket{route="
	    "\"/api/health\",method=\"GET\",le=\"+Inf\"}") != NULL);
	expect(strstr(res.body, "djamms_pool_workers{state=\"alive\"} 5") != NULL);
	expect(strstr(res.body, "djamms_pool_search_workers 1") != NULL);
	expect(strstr(res.body, "djamms_db_errors_total{kind=\"connection\"}") != NULL);
	expect(strstr(res.body, "djamms_jobs_queued{queue=\"bulk\"}") != NULL);
	snprintf(path, sizeof(path), "%s/metrics.txt", stack_dir);
	expect(it_save_body(&res, path) == 0);
	http_free(&res);
	/* Prometheus's own checker reads it */
	if (sh("promtool check metrics < %s >&2", path) != 0)
		t_fail(__FILE__, __LINE__, "promtool check metrics failed on %s", path);
	/* ids never become labels: a path with one counts under its route */
	http_free_get("/api/playlists/00000000-0000-4000-8000-000000000000");
	res = http_get("/metrics");
	expect(strstr(res.body, "00000000-0000-4000-8000") == NULL);
	expect(strstr(res.body, "route=\"/api/playlists/:id\"") != NULL);
	http_free(&res);
}

static void
test_metrics_only_from_loopback(void)
{
	const char	*port = strrchr(getenv("BASE_URL"), ':') + 1;

	/* another address of the machine (127.0.0.2 here) is not allowed */
	expect(strcmp(sh_out("curl -sk -o /dev/null -w '%%{http_code}' --interface 127.0.0.2 "
	    "https://127.0.0.1:%s/metrics", port), "403") == 0);
	expect(strcmp(sh_out("curl -sk -o /dev/null -w '%%{http_code}' "
	    "https://127.0.0.1:%s/metrics", port), "200") == 0);
}

static const struct it_test core_tests[] = {
	T(test_health_answers_through_nginx_with_a_request_id),
	T(test_metrics_count_the_whole_pool_and_pass_promtool),
	T(test_metrics_only_from_loopback),
	T(test_every_request_is_one_json_log_line),
	T(test_status_is_200_when_everything_is_up),
	T(test_info_reads_the_schema_version_from_the_database),
	T(test_unknown_path_is_404_with_the_error_shape),
	T(test_wrong_method_is_405_with_allow),
	T(test_malformed_json_is_400),
	T(test_deeply_nested_json_is_400),
	T(test_valid_json_is_accepted),
	T(test_wrong_content_type_is_415),
	T(test_body_over_the_worker_cap_is_413),
	T(test_body_over_nginx_cap_is_413_in_the_same_shape),
	T(test_bad_percent_escape_in_query_is_400),
	T(test_path_tricks_do_not_reach_a_handler),
	T(test_check_config_accepts_a_minimal_environment),
	T(test_security_headers_and_no_version),
	T(test_http2_is_negotiated),
	T(test_static_root_is_served_by_nginx),
	T(test_auth_routes_are_rate_limited_with_429_json),
	T(test_gzip_applies_to_json),
	T(test_socket_is_private_0660),
	T(test_socket_activation_passes_both_sockets),
	T(test_recycled_workers_lose_no_requests),
	T(test_killed_worker_is_respawned_and_nginx_keeps_serving),
	T(test_reload_replaces_every_worker_without_dropping_requests),
	T(test_stuck_request_is_killed_at_the_deadline),
	T(test_transactions_retry_serialization_failures),
	T(test_a_crashing_worker_is_respawned_with_back_off),
	T(test_redis_down_degrades_status_but_db_routes_still_answer),
	T(test_workers_reconnect_after_postgres_restarts),
	T(test_postgres_down_is_503_not_a_hang),
	T(test_spares_answer_while_the_core_workers_are_busy),
	T(test_graceful_stop_finishes_the_request_in_flight),
	T(test_a_crash_loop_stops_the_pool),
	T(test_migrate_is_idempotent_and_refuses_edited_files),
	T(test_bad_configuration_is_refused_with_a_clear_message),
	T(test_systemd_units_pass_systemd_analyze_verify),
	T(test_make_install_honours_prefix_and_destdir),
};

static int	 passed, failed;

static void
run(const struct it_test *tests, size_t n, int argc, char **argv)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		int	 a, wanted = argc == 1;

		/* Arguments select tests by any substring of their names. */
		for (a = 1; a < argc; a++)
			if (strstr(tests[i].name, argv[a]) != NULL)
				wanted = 1;
		if (!wanted)
			continue;
		t_failed_now = 0;
		tests[i].fn();
		if (t_failed_now) {
			printf("not ok - %s\n", tests[i].name);
			failed++;
		} else {
			printf("ok - %s\n", tests[i].name);
			passed++;
		}
		fflush(stdout);
	}
}

int
main(int argc, char **argv)
{
	stack_dir = getenv("STACK_DIR");
	top = getenv("TOP");
	if (stack_dir == NULL || top == NULL || getenv("BASE_URL") == NULL ||
	    getenv("DJAMMS_BIN") == NULL) {
		fprintf(stderr, "integration: run me from tests/run-all\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	auth_tests_init(stack_dir, top);
	music_tests_init(stack_dir, top);
	library_cli_tests_init(stack_dir, top);
	playlist_tests_init(stack_dir, top);
	user_tests_init(stack_dir, top);
	search_tests_init(stack_dir, top);
	m3u_tests_init(stack_dir, top);
	scheduler_tests_init(stack_dir, top);
	settings_tests_init(stack_dir, top);
	ops_tests_init(stack_dir, top);
	jobs_tests_init(stack_dir, top);
	run(core_tests, sizeof(core_tests) / sizeof(core_tests[0]), argc, argv);
	run(auth_tests, auth_ntests, argc, argv);
	run(music_tests, music_ntests, argc, argv);
	run(library_cli_tests, library_cli_ntests, argc, argv);
	run(playlist_tests, playlist_ntests, argc, argv);
	run(user_tests, user_ntests, argc, argv);
	run(search_tests, search_ntests, argc, argv);
	run(m3u_tests, m3u_ntests, argc, argv);
	run(scheduler_tests, scheduler_ntests, argc, argv);
	run(settings_tests, settings_ntests, argc, argv);
	run(ops_tests, ops_ntests, argc, argv);
	run(jobs_tests, jobs_ntests, argc, argv);
	printf("integration: %d passed, %d failed\n", passed, failed);
	curl_global_cleanup();
	return failed ? 1 : 0;
}
