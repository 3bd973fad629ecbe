/*
 * handlers/monitoring.c: what an operator watches. GET
 * /api/system/monitoring gives the machine's figures (CPU, memory, disk),
 * the pool's (requests, error rate, response times, busy workers) and the
 * product's (plays today, searches per minute); GET /api/system/storage
 * says where the bytes are. Both are for staff (read:system).
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "../fcgi/djamms.h"

/* ---- the machine ----------------------------------------------------- */

struct cpu_sample {
	unsigned long long	 busy, total;
	uint64_t		 at_us;
};

static int
cpu_read(struct cpu_sample *s)
{
	unsigned long long	 v[8] = { 0 };
	FILE			*f = fopen("/proc/stat", "r");
	int			 n;

	if (f == NULL)
		return -1;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
	    &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 4)
		return -1;
	s->total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
	s->busy = s->total - v[3] - v[4];	/* idle and iowait */
	s->at_us = now_us();
	return 0;
}

/*
 * The machine's CPU use in percent since this worker last looked, or over
 * the next 100 ms when that was long ago (or never).
 */
static double
cpu_percent(void)
{
	static struct cpu_sample	 prev;
	struct cpu_sample		 now;
	double				 pct;

	if (prev.at_us == 0 || now_us() - prev.at_us > 60000000ULL) {
		if (cpu_read(&prev) != 0)
			return -1;
		usleep(100000);
	}
	if (cpu_read(&now) != 0 || now.total <= prev.total)
		return -1;
	pct = 100.0 * (double)(now.busy - prev.busy) / (double)(now.total - prev.total);
	prev = now;
	return pct;
}

/* MemTotal and MemAvailable in bytes; -1 if unknown. Also for the status. */
int
memory_read(long long *total, long long *available)
{
	char	 line[256];
	FILE	*f = fopen("/proc/meminfo", "r");
	long long v;

	*total = *available = -1;
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "MemTotal: %lld kB", &v) == 1)
			*total = v * 1024;
		else if (sscanf(line, "MemAvailable: %lld kB", &v) == 1)
			*available = v * 1024;
	}
	fclose(f);
	return *total > 0 && *available >= 0 ? 0 : -1;
}

static struct json_object *
num(double v)
{
	return json_object_new_double(v < 0 ? -1 : (double)(long long)(v * 10 + 0.5) / 10);
}

/* GET /api/system/monitoring */
static enum app_err
system_monitoring(struct req *r)
{
	static const char *const known[] = { NULL };
	static const struct db_stmt st = {
		"mon_activity",
		"SELECT (SELECT count(*) FROM playback_history WHERE played_at >="
		"  (date_trunc('day', now() AT TIME ZONE z.tz) AT TIME ZONE z.tz)),"
		" (SELECT count(*) FROM search_history WHERE searched_at >="
		"  now() - interval '1 minute'),"
		" (SELECT count(*) FROM search_history WHERE searched_at >="
		"  now() - interval '1 hour'),"
		" z.tz,"
		" (SELECT count(*) FROM users WHERE is_active),"
		" (SELECT count(*) FROM tracks WHERE is_active)"
		" FROM (SELECT coalesce((SELECT value #>> '{}' FROM system_settings"
		"  WHERE key = 'default_timezone'), 'UTC') AS tz) z",
		0
	};
	struct json_object		*o, *cpu, *mem, *disk, *req, *act, *pool;
	struct metrics_summary		 m;
	struct statvfs			 vfs;
	double				 load[3] = { -1, -1, -1 };
	long long			 total, avail;
	int				 alive = 0, busy = 0;
	PGresult			*res;
	enum app_err			 err;

	if ((err = query_only(r, known)) != E_OK)
		return err;
	if ((err = db_exec(r, &res, &st, NULL)) != E_OK)
		return err;
	o = json_object_new_object();

	cpu = json_object_new_object();
	json_object_object_add(cpu, "cores", json_object_new_int((int)sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_object_add(cpu, "usage_percent", num(cpu_percent()));
	getloadavg(load, 3);
	json_object_object_add(cpu, "load_1m", num(load[0]));
	json_object_object_add(cpu, "load_5m", num(load[1]));
	json_object_object_add(cpu, "load_15m", num(load[2]));
	json_object_object_add(o, "cpu", cpu);

	mem = json_object_new_object();
	memory_read(&total, &avail);
	json_object_object_add(mem, "total_bytes", json_object_new_int64(total));
	json_object_object_add(mem, "available_bytes", json_object_new_int64(avail));
	json_object_object_add(mem, "used_percent", num(total > 0 ?
	    100.0 * (double)(total - avail) / (double)total : -1));
	json_object_object_add(o, "memory", mem);

	disk = json_object_new_object();
	if (statvfs(cfg.storage_dir, &vfs) == 0) {
		long long	 dt = (long long)vfs.f_blocks * (long long)vfs.f_frsize;
		long long	 df = (long long)vfs.f_bavail * (long long)vfs.f_frsize;

		json_object_object_add(disk, "total_bytes", json_object_new_int64(dt));
		json_object_object_add(disk, "free_bytes", json_object_new_int64(df));
		json_object_object_add(disk, "used_percent", num(dt > 0 ?
		    100.0 * (double)(dt - df) / (double)dt : -1));
	}
	json_object_object_add(o, "disk", disk);

	metrics_summary(&m);
	req = json_object_new_object();
	json_object_object_add(req, "total", json_object_new_int64((int64_t)m.requests));
	json_object_object_add(req, "errors_4xx", json_object_new_int64((int64_t)m.errors_4xx));
	json_object_object_add(req, "errors_5xx", json_object_new_int64((int64_t)m.errors_5xx));
	json_object_object_add(req, "error_rate_percent", num(m.requests ?
	    100.0 * (double)m.errors_5xx / (double)m.requests : 0));
	json_object_object_add(req, "average_response_ms", num(m.requests ?
	    (double)m.sum_us / (double)m.requests / 1000.0 : 0));
	json_object_object_add(req, "p50_ms_at_most", num((double)m.quantile_us[0] / 1000.0));
	json_object_object_add(req, "p95_ms_at_most", num((double)m.quantile_us[1] / 1000.0));
	json_object_object_add(req, "p99_ms_at_most", num((double)m.quantile_us[2] / 1000.0));
	json_object_object_add(req, "database_errors", json_object_new_int64((int64_t)m.db_errors));
	json_object_object_add(req, "redis_errors", json_object_new_int64((int64_t)m.redis_errors));
	json_object_object_add(o, "requests", req);

	pool = json_object_new_object();
	pool_counts(&alive, &busy);
	json_object_object_add(pool, "workers", json_object_new_int(pool_shm ?
	    (int)pool_shm->nslots : 0));
	json_object_object_add(pool, "alive", json_object_new_int(alive));
	/* requests being answered right now, this one included */
	json_object_object_add(pool, "active_requests", json_object_new_int(busy));
	json_object_object_add(pool, "uptime_s", json_object_new_int64(pool_shm ?
	    (int64_t)((now_us() - pool_shm->master_started_us) / 1000000) : 0));
	json_object_object_add(o, "pool", pool);

	act = json_object_new_object();
	json_object_object_add(act, "tracks_played_today", pg_json_int(res, 0, 0));
	json_object_object_add(act, "searches_last_minute", pg_json_int(res, 0, 1));
	json_object_object_add(act, "searches_per_minute_last_hour", num(
	    atof(PQgetvalue(res, 0, 2)) / 60.0));
	json_object_object_add(act, "day_timezone", pg_json_str(res, 0, 3));
	json_object_object_add(act, "active_users", pg_json_int(res, 0, 4));
	json_object_object_add(act, "tracks", pg_json_int(res, 0, 5));
	json_object_object_add(o, "activity", act);
	resp_header(r, "Cache-Control", "no-store");
	return resp_json(r, 200, o);
}

/* ---- storage ------------------------------------------------------------ */

static long long	 walk_bytes, walk_files;

static int
walk_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (flag == FTW_F) {
		walk_bytes += (long long)st->st_size;
		walk_files++;
	}
	return 0;
}

/* Bytes and files under storage_dir/sub (not following links). */
static struct json_object *
dir_usage(const char *sub)
{
	struct json_object	*o = json_object_new_object();
	char			 path[4096];

	snprintf(path, sizeof(path), "%s/%s", cfg.storage_dir, sub);
	walk_bytes = walk_files = 0;
	if (access(path, F_OK) == 0)
		nftw(path, walk_one, 16, FTW_PHYS);
	json_object_object_add(o, "bytes", json_object_new_int64(walk_bytes));
	json_object_object_add(o, "files", json_object_new_int64(walk_files));
	return o;
}

/* GET /api/system/storage?limit= */
static enum app_err
system_storage(struct req *r)
{
	static const char *const known[] = { "limit", NULL };
	static const struct db_stmt st_users = {
		"mon_storage_users",
		"SELECT u.id, u.username, u.storage_used_bytes,"
		" (SELECT count(*) FROM tracks t WHERE t.uploaded_by = u.id),"
		" count(*) OVER ()"
		" FROM users u WHERE u.storage_used_bytes > 0"
		" ORDER BY u.storage_used_bytes DESC, u.id LIMIT $1::int",
		1
	};
	static const struct db_stmt st_sources = {
		"mon_storage_sources",
		"SELECT source, count(*), coalesce(sum(file_size), 0) FROM tracks"
		" WHERE is_active GROUP BY source ORDER BY source",
		0
	};
	struct json_object	*o, *kinds, *users, *sources;
	struct statvfs		 vfs;
	const char		*limit;
	PGresult		*ru, *rs;
	enum app_err		 err;
	int			 i;

	if ((err = query_only(r, known)) != E_OK ||
	    (err = query_int(r, "limit", 1, 1000, &limit)) != E_OK)
		return err;
	if ((err = db_exec(r, &ru, &st_users, (const char *const[]){
	    limit ? limit : "50" })) != E_OK ||
	    (err = db_exec(r, &rs, &st_sources, NULL)) != E_OK)
		return err;
	o = json_object_new_object();
	kinds = json_object_new_object();
	json_object_object_add(kinds, "audio", dir_usage("audio"));
	json_object_object_add(kinds, "images", dir_usage("images"));
	json_object_object_add(kinds, "hls", dir_usage("hls"));
	json_object_object_add(kinds, "temporary", dir_usage("tmp"));
	json_object_object_add(o, "storage_dir", json_object_new_object());
	json_object_object_add(json_object_object_get(o, "storage_dir"), "by_kind", kinds);
	if (statvfs(cfg.storage_dir, &vfs) == 0) {
		json_object_object_add(json_object_object_get(o, "storage_dir"),
		    "free_bytes", json_object_new_int64((long long)vfs.f_bavail *
		    (long long)vfs.f_frsize));
		json_object_object_add(json_object_object_get(o, "storage_dir"),
		    "total_bytes", json_object_new_int64((long long)vfs.f_blocks *
		    (long long)vfs.f_frsize));
	}
	/* what the library says it holds, imports referenced in place included */
	sources = json_object_new_array();
	for (i = 0; i < PQntuples(rs); i++) {
		struct json_object	*e = json_object_new_object();

		json_object_object_add(e, "source", pg_json_str(rs, i, 0));
		json_object_object_add(e, "tracks", pg_json_int(rs, i, 1));
		json_object_object_add(e, "bytes", pg_json_int(rs, i, 2));
		json_object_array_add(sources, e);
	}
	json_object_object_add(o, "library_by_source", sources);
	users = json_object_new_array();
	for (i = 0; i < PQntuples(ru); i++) {
		struct json_object	*e = json_object_new_object();

		json_object_object_add(e, "id", pg_json_str(ru, i, 0));
		json_object_object_add(e, "username", pg_json_str(ru, i, 1));
		json_object_object_add(e, "bytes", pg_json_int(ru, i, 2));
		json_object_object_add(e, "uploads", pg_json_int(ru, i, 3));
		json_object_array_add(users, e);
	}
	json_object_object_add(o, "users", users);
	json_object_object_add(o, "users_with_uploads", json_object_new_int64(
	    PQntuples(ru) > 0 ? atoll(PQgetvalue(ru, 0, 4)) : 0));
	resp_header(r, "Cache-Control", "no-store");
	return resp_json(r, 200, o);
}

static const struct route monitoring_routes[] = {
	/* method	pattern				handler			needs */
	{ M_GET,	"/api/system/monitoring",	system_monitoring,	P_READ_SYSTEM, 0 },
	{ M_GET,	"/api/system/storage",		system_storage,		P_READ_SYSTEM, 0 },
};

const struct route_table monitoring_route_table = {
	monitoring_routes, sizeof(monitoring_routes) / sizeof(monitoring_routes[0])
};
