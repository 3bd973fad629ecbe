/*
 * handlers/jobs_api.c: /api/system/jobs, the background queue for admins:
 * how many jobs wait, run and failed, the runners alive, the dead jobs
 * with their last error; retry or drop a dead job; queue one now.
 * The queue itself is fcgi/jobs.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <libpq-fe.h>

#include "../fcgi/djamms.h"

#define DEAD_SHOWN	100

static enum app_err
redis_away(struct req *r)
{
	return req_fail(r, E_UNAVAILABLE, "Redis, which holds the job queue, is "
	    "not reachable", NULL);
}

/* Keys matching pattern (SCAN). OUT: into arr as strings, after prefix. */
static int
scan_keys(struct req *r, const char *pattern, size_t skip, struct json_object *arr)
{
	char		 cursor[32] = "0";
	size_t		 i;

	do {
		struct redisReply	*rep = rds_command(r, "SCAN %s MATCH %s COUNT 200",
					    cursor, pattern);

		if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2)
			return -1;
		snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
		for (i = 0; i < rep->element[1]->elements; i++)
			json_object_array_add(arr, json_object_new_string(
			    rep->element[1]->element[i]->str + skip));
	} while (strcmp(cursor, "0") != 0);
	return 0;
}

static long long
int_of(struct redisReply *rep)
{
	return rep != NULL && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
}

/* GET /api/system/jobs */
static enum app_err
jobs_overview(struct req *r)
{
	static const char *const known[] = { NULL };
	struct json_object	*o, *runners, *lists, *running, *dead, *stats, *qs;
	struct redisReply	*rep;
	struct jobs_figures	 f;
	size_t			 i, n;
	enum app_err		 err;

	if ((err = query_only(r, known)) != E_OK)
		return err;
	if (jobs_figures(&f) != 0)
		return redis_away(r);
	o = json_object_new_object();
	json_object_object_add(o, "queued", json_object_new_int64(f.queued + f.bulk));
	qs = json_object_new_object();
	json_object_object_add(qs, "default", json_object_new_int64(f.queued));
	json_object_object_add(qs, "bulk", json_object_new_int64(f.bulk));
	json_object_object_add(o, "queues", qs);
	json_object_object_add(o, "delayed", json_object_new_int64(f.delayed));
	json_object_object_add(o, "dead_total", json_object_new_int64(f.dead));
	runners = json_object_new_array();
	lists = json_object_new_array();
	rep = rds_command(r, "ZRANGEBYSCORE jobs:runners %lld +inf", jobs_now_ms());
	for (i = 0; rep != NULL && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++)
		json_object_array_add(runners, json_object_new_string(rep->element[i]->str));
	scan_keys(r, "jobs:processing:*", 0, lists);
	json_object_object_add(o, "runners", runners);
	/* what runs now: the processing lists' jobs */
	running = json_object_new_array();
	n = json_object_array_length(lists);
	for (i = 0; i < n; i++) {
		const char	*list = json_object_get_string(json_object_array_get_idx(lists, i));
		size_t		 k;

		rep = rds_command(r, "LRANGE %s 0 99", list);
		for (k = 0; rep != NULL && rep->type == REDIS_REPLY_ARRAY &&
		    k < rep->elements; k++) {
			struct json_object	*j = json_tokener_parse(rep->element[k]->str);

			if (j == NULL)
				continue;
			json_object_object_add(j, "runner", json_object_new_string(
			    list + strlen("jobs:processing:")));
			json_object_array_add(running, j);
		}
	}
	json_object_put(lists);
	json_object_object_add(o, "running", running);
	dead = json_object_new_array();
	rep = rds_command(r, "LRANGE jobs:dead 0 %d", DEAD_SHOWN - 1);
	for (i = 0; rep != NULL && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
		struct json_object	*j = json_tokener_parse(rep->element[i]->str);

		if (j != NULL)
			json_object_array_add(dead, j);
	}
	json_object_object_add(o, "dead", dead);
	stats = json_object_new_object();
	rep = rds_command(r, "HGETALL jobs:stats");
	for (i = 0; rep != NULL && rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements;
	    i += 2)
		json_object_object_add(stats, rep->element[i]->str,
		    json_object_new_int64(atoll(rep->element[i + 1]->str)));
	json_object_object_add(o, "counts", stats);
	resp_header(r, "Cache-Control", "no-store");
	return resp_json(r, 200, o);
}

static const struct db_stmt st_track_with_audio = {
	"jobs_track_with_audio",
	"SELECT 1 FROM tracks WHERE id = $1 AND file_path IS NOT NULL",
	1
};

/* POST /api/system/jobs {"type", "max_attempts", "track_id"}: queue one now. */
static enum app_err
jobs_create(struct req *r)
{
	static const char *const allowed[] = { "type", "max_attempts", "track_id", NULL };
	struct json_object	*body, *o;
	const char		*type, *track = NULL, *args = NULL;
	size_t			 len, tlen;
	PGresult		*res;
	long			 max;
	int			 present;
	char			 id[37];
	enum app_err		 err;

	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = body_only(r, body, allowed, NULL)) != E_OK ||
	    (err = body_string(r, body, "type", 1, 1, 32, &type, &len)) != E_OK ||
	    (err = body_int(r, body, "max_attempts", &present, 1, 20, &max)) != E_OK)
		return err;
	if (!jobs_type_known(type))
		return body_fail(r, "type",
		    "cleanup, popularity, mail, thumbnails, analysis, hls or noop");
	if (strcmp(type, "backup") == 0 || strcmp(type, "restore") == 0)
		return body_fail(r, "type", "backups and restores go through "
		    "/api/settings/backup and /api/settings/restore");
	if ((err = body_string(r, body, "track_id", 0, 36, 36, &track, &tlen)) != E_OK)
		return err;
	if (track != NULL) {
		if (!jobs_media_type(type))
			return body_fail(r, "track_id",
			    "only thumbnails, analysis and hls take a track");
		if (!uuid_valid(track))
			return body_fail(r, "track_id", "not a track id");
		if ((err = db_exec(r, &res, &st_track_with_audio,
		    (const char *const[]){ track })) != E_OK)
			return err;
		if (PQntuples(res) != 1)
			return body_fail(r, "track_id", "no such track with audio");
		args = pool_printf(r->pool, "{\"track_id\":\"%s\"}", track);
	}
	if (jobs_enqueue(type, args, present ? (int)max : 5, id) != 0)
		return redis_away(r);
	o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "type", json_object_new_string(type));
	json_object_object_add(o, "status", json_object_new_string("queued"));
	return resp_json(r, 202, o);
}

/* Take the dead job id off the list; put it back on its queue if retry. */
static const char	 dead_lua[] =
	"local items = redis.call('LRANGE', KEYS[1], 0, -1)"
	" for _, j in ipairs(items) do"
	"  local ok, o = pcall(cjson.decode, j)"
	"  if ok and type(o) == 'table' and o.id == ARGV[1] then"
	"   redis.call('LREM', KEYS[1], 1, j)"
	"   if ARGV[2] == 'retry' then"
	"    o.attempts = 0 o.last_error = nil o.failed_at = nil"
	"    local q = KEYS[2]"
	"    if o.queue == 'bulk' then q = KEYS[3] end"	/* jobs_enqueue() marks it */
	"    redis.call('LPUSH', q, cjson.encode(o))"
	"   end return 1 end"
	" end return 0";

static enum app_err
dead_act(struct req *r, const char *what)
{
	const char		*id = req_param(r, "id");
	struct redisReply	*rep;
	long long		 n;

	if (!uuid_valid(id))
		return req_fail(r, E_BAD_REQUEST, "the job id is not a UUID", NULL);
	rep = rds_command(r, "EVAL %s 3 jobs:dead jobs:queue jobs:queue:bulk %s %s", dead_lua,
	    id, what);
	if ((n = int_of(rep)) < 0)
		return redis_away(r);
	if (n == 0)
		return req_fail(r, E_NOT_FOUND, "no such dead job", NULL);
	if (strcmp(what, "retry") == 0) {
		struct json_object	*o = json_object_new_object();

		json_object_object_add(o, "id", json_object_new_string(id));
		json_object_object_add(o, "status", json_object_new_string("queued"));
		return resp_json(r, 202, o);
	}
	r->status = 204;
	return E_OK;
}

/* POST /api/system/jobs/dead/:id/retry */
static enum app_err
jobs_dead_retry(struct req *r)
{
	return dead_act(r, "retry");
}

/* DELETE /api/system/jobs/dead/:id */
static enum app_err
jobs_dead_drop(struct req *r)
{
	return dead_act(r, "drop");
}

static const struct route jobs_routes[] = {
	/* method	pattern				handler		needs */
	{ M_GET,	"/api/system/jobs",		jobs_overview,	P_ADMIN_SYSTEM, 0 },
	{ M_POST,	"/api/system/jobs",		jobs_create,	P_ADMIN_SYSTEM, 0 },
	{ M_POST,	"/api/system/jobs/dead/:id/retry", jobs_dead_retry, P_ADMIN_SYSTEM, 0 },
	{ M_DELETE,	"/api/system/jobs/dead/:id",	jobs_dead_drop,	P_ADMIN_SYSTEM, 0 },
};

const struct route_table jobs_route_table = {
	jobs_routes, sizeof(jobs_routes) / sizeof(jobs_routes[0])
};
