/*
 * fcgi/metrics.c: request counts and latency histograms per route, method
 * and status, kept in memory the master maps before it forks, so every
 * worker adds to the same counters (relaxed atomic adds, no lock) and any
 * worker answers GET /metrics for the whole pool, in the Prometheus text
 * format (0.0.4), with the job queues' figures from Redis. nginx lets only
 * loopback reach it.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <hiredis/hiredis.h>

#include "djamms.h"

#define MX_ROUTES	160		/* route entries; one more for "unmatched" */
#define MX_METHODS	7		/* enum http_method bits */

static const int	 mx_status[] = {
	200, 201, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405, 409, 410,
	413, 415, 416, 422, 429, 500, 502, 503, 504,
};
#define MX_NSTATUS	(sizeof(mx_status) / sizeof(mx_status[0]) + 1)	/* + other */

/* Bucket upper bounds in microseconds (Prometheus: le, in seconds). */
static const uint64_t	 mx_bound_us[] = {
	250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000,
};
#define MX_NBUCKETS	(sizeof(mx_bound_us) / sizeof(mx_bound_us[0]))

struct mx_cell {
	uint64_t	 status[MX_NSTATUS];
	uint64_t	 bucket[MX_NBUCKETS];	/* not cumulative; +Inf is count */
	uint64_t	 count;
	uint64_t	 sum_us;
};

struct metrics_shared {
	struct mx_cell	 cell[MX_ROUTES + 1][MX_METHODS];
	uint64_t	 db_errors[2];		/* connection, statement */
	uint64_t	 redis_errors;
};

static struct metrics_shared	*mx;

int
metrics_shm_create(void)
{
	if (mx != NULL)
		return 0;
	mx = mmap(NULL, sizeof(*mx), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mx == MAP_FAILED) {
		mx = NULL;
		return -1;
	}
	memset(mx, 0, sizeof(*mx));
	return 0;
}

void
metrics_shm_destroy(void)
{
	if (mx != NULL)
		munmap(mx, sizeof(*mx));
	mx = NULL;
}

/* The index of route rt among all route entries; MX_ROUTES if none. */
static size_t
route_index(const struct route *rt, const char **pattern)
{
	const struct route_table	*tables;
	size_t				 nt, t, i, k = 0;

	*pattern = "unmatched";
	if (rt == NULL)
		return MX_ROUTES;
	tables = router_tables(&nt);
	for (t = 0; t < nt; t++)
		for (i = 0; i < tables[t].n; i++, k++)
			if (&tables[t].routes[i] == rt) {
				*pattern = rt->pattern;
				return k < MX_ROUTES ? k : MX_ROUTES;
			}
	return MX_ROUTES;
}

static size_t
method_index(enum http_method m)
{
	size_t	 i;

	for (i = 0; i < MX_METHODS; i++)
		if ((unsigned)m == 1u << i)
			return i;
	return 0;
}

static size_t
status_index(int status)
{
	size_t	 i;

	for (i = 0; i + 1 < MX_NSTATUS; i++)
		if (mx_status[i] == status)
			return i;
	return MX_NSTATUS - 1;
}

void
metrics_request(const struct route *rt, enum http_method m, int status,
    uint64_t us)
{
	struct mx_cell	*c;
	const char	*pattern;
	size_t		 b;

	if (mx == NULL)
		return;
	c = &mx->cell[route_index(rt, &pattern)][method_index(m)];
	__atomic_add_fetch(&c->status[status_index(status)], 1, __ATOMIC_RELAXED);
	for (b = 0; b < MX_NBUCKETS && us > mx_bound_us[b]; b++)
		;
	if (b < MX_NBUCKETS)
		__atomic_add_fetch(&c->bucket[b], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->sum_us, us, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->count, 1, __ATOMIC_RELAXED);
}

void
metrics_db_error(int connection)
{
	if (mx != NULL)
		__atomic_add_fetch(&mx->db_errors[connection ? 0 : 1], 1,
		    __ATOMIC_RELAXED);
}

void
metrics_redis_error(void)
{
	if (mx != NULL)
		__atomic_add_fetch(&mx->redis_errors, 1, __ATOMIC_RELAXED);
}

void
metrics_summary(struct metrics_summary *out)
{
	uint64_t	 buckets[MX_NBUCKETS + 1] = { 0 }, cum = 0, want;
	size_t		 ri, mi, si, bi;
	int		 q;
	static const int pct[3] = { 50, 95, 99 };

	memset(out, 0, sizeof(*out));
	if (mx == NULL)
		return;
	for (ri = 0; ri <= MX_ROUTES; ri++)
		for (mi = 0; mi < MX_METHODS; mi++) {
			struct mx_cell	*c = &mx->cell[ri][mi];
			uint64_t	 n = __atomic_load_n(&c->count, __ATOMIC_RELAXED);
			uint64_t	 inb = 0;

			if (n == 0)
				continue;
			out->requests += n;
			out->sum_us += __atomic_load_n(&c->sum_us, __ATOMIC_RELAXED);
			for (si = 0; si + 1 < MX_NSTATUS; si++) {
				uint64_t	 k = __atomic_load_n(&c->status[si],
						    __ATOMIC_RELAXED);

				if (mx_status[si] >= 500)
					out->errors_5xx += k;
				else if (mx_status[si] >= 400)
					out->errors_4xx += k;
			}
			for (bi = 0; bi < MX_NBUCKETS; bi++) {
				uint64_t	 k = __atomic_load_n(&c->bucket[bi],
						    __ATOMIC_RELAXED);

				buckets[bi] += k;
				inb += k;
			}
			buckets[MX_NBUCKETS] += n > inb ? n - inb : 0;
		}
	out->db_errors = __atomic_load_n(&mx->db_errors[0], __ATOMIC_RELAXED) +
	    __atomic_load_n(&mx->db_errors[1], __ATOMIC_RELAXED);
	out->redis_errors = __atomic_load_n(&mx->redis_errors, __ATOMIC_RELAXED);
	/* a quantile is the upper bound of the bucket it falls in */
	for (q = 0; q < 3 && out->requests > 0; q++) {
		want = (out->requests * (uint64_t)pct[q] + 99) / 100;
		for (bi = 0, cum = 0; bi <= MX_NBUCKETS; bi++) {
			cum += buckets[bi];
			if (cum >= want && want > 0)
				break;
		}
		out->quantile_us[q] = bi < MX_NBUCKETS ? mx_bound_us[bi] :
		    mx_bound_us[MX_NBUCKETS - 1];
	}
}

/* ---- the text format ------------------------------------------------- */

struct sbuf {
	char	*p;
	size_t	 len, cap;
	struct mpool *pool;
};

static void
put(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(struct sbuf *b, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t	 cap = b->cap * 2 + (size_t)(n > 0 ? n : 0);
			char	*np = pool_alloc(b->pool, cap);

			memcpy(np, b->p, b->len);
			b->p = np;
			b->cap = cap;
		}
	}
}

static const char *
method_name(size_t i)
{
	static const char *const names[] = {
		"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
	};

	return names[i];
}

/* A route's label: its pattern (ASCII, no quotes or backslashes). */
static const char *
route_label(size_t idx)
{
	const struct route_table	*tables;
	size_t				 nt, t, i, k = 0;

	if (idx == MX_ROUTES)
		return "unmatched";
	tables = router_tables(&nt);
	for (t = 0; t < nt; t++)
		for (i = 0; i < tables[t].n; i++, k++)
			if (k == idx)
				return tables[t].routes[i].pattern;
	return "unknown";
}

static void
put_seconds(struct sbuf *b, uint64_t us)
{
	put(b, "%llu.%06llu", (unsigned long long)(us / 1000000),
	    (unsigned long long)(us % 1000000));
}

/*
 * The background jobs, from Redis (jobs.c keeps them there): what waits on
 * each queue, what waits for a retry, what is dead, the runners alive, and
 * the jobs done, retried and dead by type since the counts began. Nothing
 * when Redis does not answer (djamms_redis_errors_total says so).
 */
static void
put_jobs(struct sbuf *b)
{
	struct redisReply	*rep;
	struct jobs_figures	 f;
	size_t			 i;

	if (jobs_figures(&f) != 0)
		return;
	put(b, "# HELP djamms_jobs_queued Jobs waiting for a runner, by queue.\n"
	    "# TYPE djamms_jobs_queued gauge\n"
	    "djamms_jobs_queued{queue=\"default\"} %lld\n"
	    "djamms_jobs_queued{queue=\"bulk\"} %lld\n"
	    "# HELP djamms_jobs_delayed Failed jobs waiting for their retry.\n"
	    "# TYPE djamms_jobs_delayed gauge\n"
	    "djamms_jobs_delayed %lld\n"
	    "# HELP djamms_jobs_dead Dead jobs kept for an admin to retry or drop.\n"
	    "# TYPE djamms_jobs_dead gauge\n"
	    "djamms_jobs_dead %lld\n"
	    "# HELP djamms_jobs_runners Job runner processes whose heartbeat is current.\n"
	    "# TYPE djamms_jobs_runners gauge\n"
	    "djamms_jobs_runners %lld\n", f.queued, f.bulk, f.delayed, f.dead, f.runners);
	rep = rds_command(NULL, "HGETALL jobs:stats");
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
		if (rep != NULL)
			freeReplyObject(rep);
		return;
	}
	put(b, "# HELP djamms_jobs_total Jobs finished, by type and outcome (done, "
	    "retried, dead).\n# TYPE djamms_jobs_total counter\n");
	for (i = 0; i + 1 < rep->elements; i += 2) {
		const char	*k = rep->element[i]->str, *colon = strchr(k, ':');
		char		 type[48];
		size_t		 j, n;

		/* "done:mail": the type is ours (job_types), checked all the same */
		if (colon == NULL || (n = strlen(colon + 1)) == 0 || n >= sizeof(type))
			continue;
		for (j = 0; j < n && (isalnum((unsigned char)colon[1 + j]) ||
		    colon[1 + j] == '-' || colon[1 + j] == '_'); j++)
			type[j] = colon[1 + j];
		if (j != n)
			continue;
		type[n] = '\0';
		put(b, "djamms_jobs_total{type=\"%s\",outcome=\"%.*s\"} %lld\n", type,
		    (int)(colon - k), k, atoll(rep->element[i + 1]->str));
	}
	freeReplyObject(rep);
}

/* The whole exposition. OUT: *len. Pool memory. */
char *
metrics_render(struct mpool *pool, size_t *len)
{
	struct sbuf	 b = { NULL, 0, 65536, pool };
	size_t		 ri, mi, si, bi;
	int		 alive = 0, busy = 0, live;
	unsigned	 versions, denied;
	unsigned long	 applied;

	b.p = pool_alloc(pool, b.cap);
	b.p[0] = '\0';
	if (mx != NULL) {
		put(&b, "# HELP djamms_http_requests_total Requests answered by the "
		    "workers, by route pattern, method and status.\n"
		    "# TYPE djamms_http_requests_total counter\n");
		for (ri = 0; ri <= MX_ROUTES; ri++)
			for (mi = 0; mi < MX_METHODS; mi++)
				for (si = 0; si < MX_NSTATUS; si++) {
					uint64_t	 n = __atomic_load_n(
					    &mx->cell[ri][mi].status[si], __ATOMIC_RELAXED);

					if (n == 0)
						continue;
					if (si + 1 < MX_NSTATUS)
						put(&b, "djamms_http_requests_total{route=\"%s\","
						    "method=\"%s\",status=\"%d\"} %llu\n",
						    route_label(ri), method_name(mi), mx_status[si],
						    (unsigned long long)n);
					else
						put(&b, "djamms_http_requests_total{route=\"%s\","
						    "method=\"%s\",status=\"other\"} %llu\n",
						    route_label(ri), method_name(mi),
						    (unsigned long long)n);
				}
		put(&b, "# HELP djamms_http_request_duration_seconds Time in the worker "
		    "from the request's start to the response written, by route "
		    "pattern and method.\n"
		    "# TYPE djamms_http_request_duration_seconds histogram\n");
		for (ri = 0; ri <= MX_ROUTES; ri++)
			for (mi = 0; mi < MX_METHODS; mi++) {
				struct mx_cell	*c = &mx->cell[ri][mi];
				uint64_t	 count = __atomic_load_n(&c->count,
						    __ATOMIC_RELAXED), cum = 0;
				const char	*rl;

				if (count == 0)
					continue;
				rl = route_label(ri);
				for (bi = 0; bi < MX_NBUCKETS; bi++) {
					cum += __atomic_load_n(&c->bucket[bi], __ATOMIC_RELAXED);
					put(&b, "djamms_http_request_duration_seconds_bucket{"
					    "route=\"%s\",method=\"%s\",le=\"", rl, method_name(mi));
					put_seconds(&b, mx_bound_us[bi]);
					put(&b, "\"} %llu\n", (unsigned long long)cum);
				}
				/* +Inf is at least every bucket (counts race a little) */
				put(&b, "djamms_http_request_duration_seconds_bucket{route=\"%s\","
				    "method=\"%s\",le=\"+Inf\"} %llu\n", rl, method_name(mi),
				    (unsigned long long)(count > cum ? count : cum));
				put(&b, "djamms_http_request_duration_seconds_sum{route=\"%s\","
				    "method=\"%s\"} ", rl, method_name(mi));
				put_seconds(&b, __atomic_load_n(&c->sum_us, __ATOMIC_RELAXED));
				put(&b, "\ndjamms_http_request_duration_seconds_count{route=\"%s\","
				    "method=\"%s\"} %llu\n", rl, method_name(mi),
				    (unsigned long long)(count > cum ? count : cum));
			}
		put(&b, "# HELP djamms_db_errors_total PostgreSQL errors seen by the "
		    "workers: lost or refused connections, failed statements.\n"
		    "# TYPE djamms_db_errors_total counter\n"
		    "djamms_db_errors_total{kind=\"connection\"} %llu\n"
		    "djamms_db_errors_total{kind=\"statement\"} %llu\n",
		    (unsigned long long)__atomic_load_n(&mx->db_errors[0], __ATOMIC_RELAXED),
		    (unsigned long long)__atomic_load_n(&mx->db_errors[1], __ATOMIC_RELAXED));
		put(&b, "# HELP djamms_redis_errors_total Redis commands that failed "
		    "(Redis away or the connection lost).\n"
		    "# TYPE djamms_redis_errors_total counter\n"
		    "djamms_redis_errors_total %llu\n",
		    (unsigned long long)__atomic_load_n(&mx->redis_errors, __ATOMIC_RELAXED));
	}
	if (pool_shm != NULL) {
		pool_counts(&alive, &busy);
		put(&b, "# HELP djamms_pool_workers Worker processes of the pool.\n"
		    "# TYPE djamms_pool_workers gauge\n"
		    "djamms_pool_workers{state=\"configured\"} %u\n"
		    "djamms_pool_workers{state=\"alive\"} %d\n"
		    "djamms_pool_workers{state=\"busy\"} %d\n"
		    "# HELP djamms_pool_search_workers Of the pool's workers, those on "
		    "the search socket.\n"
		    "# TYPE djamms_pool_search_workers gauge\n"
		    "djamms_pool_search_workers %u\n"
		    "# HELP djamms_pool_search_requests_total Requests answered by "
		    "the workers on the search socket.\n"
		    "# TYPE djamms_pool_search_requests_total counter\n"
		    "djamms_pool_search_requests_total %llu\n",
		    pool_shm->nslots, alive, busy, pool_shm->nsearch,
		    (unsigned long long)__atomic_load_n(&pool_shm->search_requests_total,
		    __ATOMIC_RELAXED));
		put(&b, "# HELP djamms_pool_worker_restarts_total Workers replaced "
		    "(recycled after their request quota, or reloaded).\n"
		    "# TYPE djamms_pool_worker_restarts_total counter\n"
		    "djamms_pool_worker_restarts_total %llu\n"
		    "# HELP djamms_pool_worker_crashes_total Workers that died "
		    "unexpectedly.\n"
		    "# TYPE djamms_pool_worker_crashes_total counter\n"
		    "djamms_pool_worker_crashes_total %llu\n"
		    "# HELP djamms_pool_deadline_kills_total Workers killed for "
		    "passing the request deadline.\n"
		    "# TYPE djamms_pool_deadline_kills_total counter\n"
		    "djamms_pool_deadline_kills_total %llu\n"
		    "# HELP djamms_pool_uptime_seconds Seconds since the master "
		    "started.\n"
		    "# TYPE djamms_pool_uptime_seconds gauge\n"
		    "djamms_pool_uptime_seconds %llu\n",
		    (unsigned long long)pool_shm->restarts,
		    (unsigned long long)pool_shm->crashes,
		    (unsigned long long)pool_shm->deadline_kills,
		    (unsigned long long)((now_us() - pool_shm->master_started_us) /
		    1000000));
	}
	put_jobs(&b);
	revoke_stats(&live, &versions, &denied, &applied);
	put(&b, "# HELP djamms_watcher_live Whether the change watcher is listening "
	    "and loaded (1), so tokens and caches are checked in shared memory.\n"
	    "# TYPE djamms_watcher_live gauge\n"
	    "djamms_watcher_live %d\n"
	    "# HELP djamms_watcher_announcements_total Change announcements "
	    "applied by the watcher.\n"
	    "# TYPE djamms_watcher_announcements_total counter\n"
	    "djamms_watcher_announcements_total %lu\n", live, applied);
	*len = b.len;
	return b.p;
}
