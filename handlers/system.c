/*
 * handlers/system.c: health and status. /api/health is liveness (the
 * process answers; no dependency is touched), /api/system/status is
 * readiness (database, Redis, storage and the pool, 503 when any fails),
 * /api/system/info reads only the database.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "../fcgi/djamms.h"

static const struct db_stmt st_ping = {
	"system_ping", "SELECT 1", 0
};

static const struct db_stmt st_info = {
	"system_info",
	"SELECT (SELECT max(version) FROM schema_migrations),"
	" to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
	" current_setting('server_version')",
	0
};

static const struct db_stmt st_sleep = {
	"test_sleep", "SELECT pg_sleep($1::float8 / 1000)", 1
};

/* GET /api/health: the worker is alive and answering. */
static enum app_err
system_health(struct req *r)
{
	static const char	 body[] = "{\"status\":\"ok\"}";

	/* The hottest route: a constant body, nothing to build. */
	r->status = 200;
	r->content_type = "application/json";
	r->body = body;
	r->body_len = sizeof(body) - 1;
	return E_OK;
}

/* {"status":"ok"|"down","latency_us":N} for a check that started at t0. */
static struct json_object *
check_result(int ok, uint64_t t0)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "status", json_object_new_string(ok ? "ok" : "down"));
	json_object_object_add(o, "latency_us", json_object_new_int64(
	    (int64_t)(now_us() - t0)));
	return o;
}

static struct json_object *
check_database(int *ok)
{
	uint64_t	 t0 = now_us();
	PGresult	*res;

	*ok = db_exec(NULL, &res, &st_ping, NULL) == E_OK;
	if (*ok)
		PQclear(res);
	return check_result(*ok, t0);
}

static struct json_object *
check_redis(int *ok)
{
	uint64_t	 t0 = now_us();

	*ok = rds_ping() == 0;
	return check_result(*ok, t0);
}

static struct json_object *
check_storage(int *ok)
{
	struct json_object	*o = json_object_new_object();
	struct statvfs		 vfs;
	const char		*problem = NULL;
	int64_t			 free_bytes = -1;

	if (access(cfg.storage_dir, W_OK | X_OK) != 0)
		problem = "not writable";
	else if (statvfs(cfg.storage_dir, &vfs) != 0)
		problem = "cannot stat";
	else {
		free_bytes = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
		if (free_bytes < (int64_t)cfg.storage_min_free_mb * 1024 * 1024)
			problem = "low on free space";
	}
	*ok = problem == NULL;
	json_object_object_add(o, "status", json_object_new_string(*ok ? "ok" : "down"));
	if (problem != NULL)
		json_object_object_add(o, "problem", json_object_new_string(problem));
	json_object_object_add(o, "free_bytes", json_object_new_int64(free_bytes));
	json_object_object_add(o, "min_free_bytes", json_object_new_int64(
	    (int64_t)cfg.storage_min_free_mb * 1024 * 1024));
	return o;
}

/*
 * The job runner: how many runners were heard from in the last 30 s and
 * how long the oldest job has waited. Down only when jobs have waited over
 * five minutes (nobody is working them off); an idle queue without a
 * runner is fine for the API.
 */
static struct json_object *
check_jobs(int *ok)
{
	struct json_object	*o = json_object_new_object();
	long long		 runners, queued, oldest;

	if (jobs_health(&runners, &queued, &oldest) != 0) {
		*ok = 1;	/* Redis's own check says it is down */
		json_object_object_add(o, "status", json_object_new_string("unknown"));
		return o;
	}
	*ok = !(queued > 0 && oldest > 300);
	json_object_object_add(o, "status", json_object_new_string(*ok ? "ok" : "down"));
	if (!*ok)
		json_object_object_add(o, "problem", json_object_new_string(runners == 0 ?
		    "jobs are waiting and no runner is alive" :
		    "jobs have waited over five minutes"));
	json_object_object_add(o, "runners", json_object_new_int64(runners));
	json_object_object_add(o, "queued", json_object_new_int64(queued));
	json_object_object_add(o, "oldest_waiting_s", json_object_new_int64(oldest));
	return o;
}

/* Degraded below DJAMMS_MEMORY_MIN_FREE_MB of available memory. */
static struct json_object *
check_memory(int *ok)
{
	struct json_object	*o = json_object_new_object();
	long long		 total, avail;

	if (memory_read(&total, &avail) != 0) {
		*ok = 1;	/* no /proc/meminfo: nothing to judge by */
		json_object_object_add(o, "status", json_object_new_string("ok"));
		json_object_object_add(o, "problem", json_object_new_string("unknown"));
		return o;
	}
	*ok = avail >= (long long)cfg.memory_min_free_mb * 1024 * 1024;
	json_object_object_add(o, "status", json_object_new_string(*ok ? "ok" : "down"));
	if (!*ok)
		json_object_object_add(o, "problem", json_object_new_string(
		    "low on available memory"));
	json_object_object_add(o, "available_bytes", json_object_new_int64(avail));
	json_object_object_add(o, "total_bytes", json_object_new_int64(total));
	json_object_object_add(o, "min_available_bytes", json_object_new_int64(
	    (long long)cfg.memory_min_free_mb * 1024 * 1024));
	return o;
}

static struct json_object *
check_pool(int *ok)
{
	struct json_object	*o = json_object_new_object();
	int			 alive, busy;

	pool_counts(&alive, &busy);
	if (pool_shm == NULL) {
		*ok = 1;	/* not under a master: in-process tests */
		json_object_object_add(o, "status", json_object_new_string("ok"));
		return o;
	}
	/* Degraded when fewer than half the workers are up. */
	*ok = alive * 2 >= (int)pool_shm->nslots && !pool_shm->draining;
	json_object_object_add(o, "status", json_object_new_string(*ok ? "ok" : "down"));
	json_object_object_add(o, "workers", json_object_new_int((int)pool_shm->nslots));
	/* of them, on the search socket (master.c) */
	json_object_object_add(o, "search_workers", json_object_new_int(
	    (int)pool_shm->nsearch));
	json_object_object_add(o, "alive", json_object_new_int(alive));
	json_object_object_add(o, "busy", json_object_new_int(busy));
	json_object_object_add(o, "restarts", json_object_new_int64(
	    (int64_t)__atomic_load_n(&pool_shm->restarts, __ATOMIC_RELAXED)));
	json_object_object_add(o, "crashes", json_object_new_int64(
	    (int64_t)__atomic_load_n(&pool_shm->crashes, __ATOMIC_RELAXED)));
	json_object_object_add(o, "deadline_kills", json_object_new_int64(
	    (int64_t)__atomic_load_n(&pool_shm->deadline_kills, __ATOMIC_RELAXED)));
	json_object_object_add(o, "requests_served", json_object_new_int64(
	    (int64_t)__atomic_load_n(&pool_shm->requests_total, __ATOMIC_RELAXED)));
	json_object_object_add(o, "search_requests_served", json_object_new_int64(
	    (int64_t)__atomic_load_n(&pool_shm->search_requests_total,
	    __ATOMIC_RELAXED)));
	json_object_object_add(o, "uptime_s", json_object_new_int64(
	    (int64_t)((now_us() - pool_shm->master_started_us) / 1000000)));
	return o;
}

/*
 * Token checks from the pool's shared tables ("shared") or, while their
 * watcher is away, against Redis ("redis"). Either is correct, so this
 * never fails the status; it says which speed to expect.
 */
static struct json_object *
check_token_state(void)
{
	struct json_object	*o = json_object_new_object();
	int			 live;
	unsigned		 versions, denied;
	unsigned long		 applied;

	revoke_stats(&live, &versions, &denied, &applied);
	json_object_object_add(o, "status", json_object_new_string("ok"));
	json_object_object_add(o, "source",
	    json_object_new_string(live ? "shared" : "redis"));
	json_object_object_add(o, "versions", json_object_new_int((int)versions));
	json_object_object_add(o, "denied", json_object_new_int((int)denied));
	json_object_object_add(o, "announcements",
	    json_object_new_int64((int64_t)applied));
	return o;
}

/* GET /api/system/status: 200 when every check passes, else 503. */
static enum app_err
system_status(struct req *r)
{
	struct json_object	*o = json_object_new_object();
	struct json_object	*checks = json_object_new_object();
	int			 db_up, redis_up, storage_up, pool_up, memory_up, jobs_up;

	json_object_object_add(checks, "database", check_database(&db_up));
	json_object_object_add(checks, "redis", check_redis(&redis_up));
	json_object_object_add(checks, "storage", check_storage(&storage_up));
	json_object_object_add(checks, "memory", check_memory(&memory_up));
	json_object_object_add(checks, "jobs", check_jobs(&jobs_up));
	json_object_object_add(checks, "pool", check_pool(&pool_up));
	json_object_object_add(checks, "tokens", check_token_state());
	{
		int	 ok = db_up && redis_up && storage_up && pool_up && memory_up &&
			    jobs_up;

		json_object_object_add(o, "status",
		    json_object_new_string(ok ? "ok" : "degraded"));
		json_object_object_add(o, "version",
		    json_object_new_string(DJAMMS_VERSION));
		json_object_object_add(o, "checks", checks);
		return resp_json(r, ok ? 200 : 503, o);
	}
}

/* GET /api/system/info: version, schema version and database time. */
static enum app_err
system_info(struct req *r)
{
	struct json_object	*o;
	PGresult		*res;
	enum app_err		 err;

	if ((err = db_exec(r, &res, &st_info, NULL)) != E_OK)
		return err;
	o = json_object_new_object();
	json_object_object_add(o, "version", json_object_new_string(DJAMMS_VERSION));
	json_object_object_add(o, "schema_version", PQgetisnull(res, 0, 0) ? NULL :
	    json_object_new_string(PQgetvalue(res, 0, 0)));
	json_object_object_add(o, "server_time",
	    json_object_new_string(PQgetvalue(res, 0, 1)));
	json_object_object_add(o, "postgres_version",
	    json_object_new_string(PQgetvalue(res, 0, 2)));
	return resp_json(r, 200, o);
}

/*
 * Test-only routes (DJAMMS_TEST_ROUTES=1): a slow request for the drain
 * and deadline tests, and an echo of the JSON body for the body checks.
 */
static enum app_err
test_sleep(struct req *r)
{
	const char	*ms = req_query(r, "ms");
	const char	*args[1];
	long		 n;
	PGresult	*res;
	enum app_err	 err;

	if (ms == NULL || config_parse_long(ms, 0, 600000, &n) != 0)
		return req_fail(r, E_INVALID, "ms must be 0..600000", NULL);
	args[0] = ms;
	if (req_query(r, "db") != NULL) {
		if ((err = db_exec(r, &res, &st_sleep, args)) != E_OK)
			return err;
	} else {
		struct timespec	 ts = { n / 1000, (n % 1000) * 1000000 };

		while (nanosleep(&ts, &ts) != 0)
			;
	}
	return system_health(r);
}

static enum app_err
test_echo(struct req *r)
{
	struct json_object	*body, *o;
	enum app_err		 err;

	if ((err = req_json_body(r, &body)) != E_OK)
		return err;
	o = json_object_new_object();
	json_object_object_add(o, "echo", json_object_get(body));
	return resp_json(r, 200, o);
}

/*
 * The transaction helper against the real database: the first ?fail=N
 * attempts raise a serialization failure; db_tx must retry them and
 * report how many attempts it took (or give up with 409 past its limit).
 */
static const struct db_stmt st_fail_serialization = {
	"test_fail_serialization",
	"DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = 'serialization_failure'; END $$",
	0
};

static const struct db_stmt st_txid = {
	"test_txid", "SELECT txid_current()::text", 0
};

struct tx_test {
	long	 fail;
	long	 attempts;
	char	 txid[32];
};

static enum app_err
tx_test_body(struct req *r, void *arg)
{
	struct tx_test	*t = arg;
	PGresult	*res;
	enum app_err	 err;

	if (t->attempts++ < t->fail)
		return db_exec(r, &res, &st_fail_serialization, NULL);
	if ((err = db_exec(r, &res, &st_txid, NULL)) != E_OK)
		return err;
	snprintf(t->txid, sizeof(t->txid), "%s", PQgetvalue(res, 0, 0));
	return E_OK;
}

static enum app_err
test_tx(struct req *r)
{
	struct tx_test		 t = { 0, 0, "" };
	const char		*fail = req_query(r, "fail");
	struct json_object	*o;
	enum app_err		 err;

	if (fail != NULL && config_parse_long(fail, 0, 10, &t.fail) != 0)
		return req_fail(r, E_INVALID, "fail must be 0..10", NULL);
	if ((err = db_tx(r, "SERIALIZABLE", tx_test_body, &t)) != E_OK)
		return req_fail(r, err, pool_printf(r->pool,
		    "gave up after %ld attempts", t.attempts), NULL);
	o = json_object_new_object();
	json_object_object_add(o, "attempts", json_object_new_int64(t.attempts));
	json_object_object_add(o, "txid", json_object_new_string(t.txid));
	return resp_json(r, 200, o);
}

/*
 * GET /metrics: the pool's counters in the Prometheus text format. nginx
 * passes it from loopback only (a scraper on the machine, or one reached
 * through a tunnel); it names routes, not paths, so no id or user leaks.
 */
static enum app_err
system_metrics(struct req *r)
{
	size_t	 len;

	r->status = 200;
	r->content_type = "text/plain; version=0.0.4; charset=utf-8";
	r->body = metrics_render(r->pool, &len);
	r->body_len = len;
	resp_header(r, "Cache-Control", "no-store");
	return E_OK;
}

/* A worker that dies mid-request, for the respawn and crash-loop tests. */
static enum app_err
test_crash(struct req *r)
{
	(void)r;
	abort();
}

static const struct route system_routes[] = {
	/* methods	pattern			handler		needs	flags */
	{ M_GET,	"/api/health",		system_health,	P_NONE,	0 },
	{ M_GET,	"/api/system/status",	system_status,	P_NONE,	0 },
	{ M_GET,	"/api/system/info",	system_info,	P_NONE,	0 },
	{ M_GET,	"/metrics",		system_metrics,	P_NONE,	0 },
	{ M_GET,	"/api/_test/sleep",	test_sleep,	P_NONE,	ROUTE_TEST_ONLY },
	{ M_POST | M_PUT, "/api/_test/echo",	test_echo,	P_NONE,	ROUTE_TEST_ONLY },
	{ M_POST,	"/api/_test/tx",	test_tx,	P_NONE,	ROUTE_TEST_ONLY },
	{ M_POST,	"/api/_test/crash",	test_crash,	P_NONE,	ROUTE_TEST_ONLY },
};

const struct route_table system_route_table = {
	system_routes, sizeof(system_routes) / sizeof(system_routes[0])
};
