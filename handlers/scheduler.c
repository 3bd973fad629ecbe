/*
 * handlers/scheduler.c: /api/scheduler/... Weekly schedule entries, the
 * conflicts between them, what plays at an instant, the occurrences in a
 * window and the schedule as an iCalendar file.
 *
 * Every instant is the database's work (sql/013): an entry's days and
 * times are wall-clock times in its own IANA zone, read with the zone's
 * real rules, so a daylight-saving change moves nothing by an hour, a
 * skipped start begins at the first instant after the jump, and a
 * repeated hour plays once. This file validates, checks permissions and
 * conflicts, and caches what plays now until the track or the slot ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <libpq-fe.h>

#include "../fcgi/djamms.h"


#define CONFLICT_WEEKS		8
#define UPCOMING_MAX_DAYS	92
#define CONFLICTS_MAX_DAYS	366
#define UPCOMING_MAX_ROWS	5000

static const char *const day_names[] = {
	"monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
	"sunday",
};

/* ---- input ---------------------------------------------------------- */

/*
 * "HH:MM" or "HH:MM:SS" as "HH:MM:SS"; "24:00" only when allow_24. Pure.
 * OUT: out. 0 if valid.
 */
static int
parse_clock(const char *s, int allow_24, char out[16])
{
	int	 h, m, sec = 0, n = 0;
	size_t	 len = strlen(s);

	if (len != 5 && len != 8)
		return -1;
	if (len == 5 && sscanf(s, "%2d:%2d%n", &h, &m, &n) != 2)
		return -1;
	if (len == 8 && sscanf(s, "%2d:%2d:%2d%n", &h, &m, &sec, &n) != 3)
		return -1;
	if ((size_t)n != len || s[2] != ':' || (len == 8 && s[5] != ':'))
		return -1;
	if (h < 0 || m < 0 || m > 59 || sec < 0 || sec > 59)
		return -1;
	if (h > 23 && !(allow_24 && h == 24 && m == 0 && sec == 0))
		return -1;
	snprintf(out, 16, "%02d:%02d:%02d", h % 100, m % 100, sec % 100);
	return 0;
}

/* "YYYY-MM-DD", a real calendar day between 1900 and 9999. Pure. */
static int
date_valid(const char *s)
{
	static const int	 mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int			 y, m, d, n = 0, leap;

	if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 ||
	    n != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	if (y < 1900 || m < 1 || m > 12 || d < 1)
		return 0;
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return d <= mdays[m - 1] + (m == 2 && leap);
}

struct sched_fields {
	const char	*title;
	const char	*playlist_id;
	char		 days[96];		/* "{monday,friday}", "" if absent */
	char		 start[16], end[16];	/* "" if absent */
	const char	*timezone;
	char		 priority[24];		/* "" if absent */
	int		 seed_set;		/* shuffle or shuffle_seed given */
	char		 seed[24];		/* "" for no shuffle */
	int		 first_set, last_set;
	const char	*first, *last;		/* NULL: none */
	int		 active_set, active;
};

static enum app_err
read_days(struct req *r, struct json_object *body, int required,
    struct sched_fields *f)
{
	struct json_object	*a;
	int			 seen[7] = { 0 }, i, j, n;
	size_t			 len = 0;

	f->days[0] = '\0';
	if (!json_object_object_get_ex(body, "days_of_week", &a) ||
	    json_object_is_type(a, json_type_null))
		return required ? body_fail(r, "days_of_week", "is required") : E_OK;
	if (!json_object_is_type(a, json_type_array) ||
	    (n = (int)json_object_array_length(a)) < 1 || n > 7)
		return body_fail(r, "days_of_week", "must be an array of 1 to 7 day names");
	for (i = 0; i < n; i++) {
		struct json_object	*v = json_object_array_get_idx(a, (size_t)i);
		const char		*s;

		if (!json_object_is_type(v, json_type_string))
			return body_fail(r, "days_of_week", "must hold day names");
		s = json_object_get_string(v);
		for (j = 0; j < 7; j++)
			if (strcasecmp(s, day_names[j]) == 0 ||
			    (strlen(s) == 3 && strncasecmp(s, day_names[j], 3) == 0))
				break;
		if (j == 7)
			return body_fail(r, "days_of_week", "holds something that is "
			    "not a day (monday ... sunday)");
		seen[j] = 1;
	}
	f->days[len++] = '{';
	for (j = 0; j < 7; j++)
		if (seen[j])
			len += (size_t)snprintf(f->days + len, sizeof(f->days) - len,
			    "%s%s", len > 1 ? "," : "", day_names[j]);
	snprintf(f->days + len, sizeof(f->days) - len, "}");
	return E_OK;
}

static enum app_err
read_clock(struct req *r, struct json_object *body, const char *field,
    int required, int allow_24, char out[16])
{
	const char	*s;
	size_t		 len;
	enum app_err	 err;

	out[0] = '\0';
	if ((err = body_string(r, body, field, required, 1, 8, &s, &len)) != E_OK)
		return err;
	if (s != NULL && parse_clock(s, allow_24, out) != 0)
		return body_fail(r, field, allow_24 ? "must be a time HH:MM or "
		    "HH:MM:SS, up to 24:00" : "must be a time HH:MM or HH:MM:SS "
		    "before 24:00");
	return E_OK;
}

static enum app_err
read_date(struct req *r, struct json_object *body, const char *field,
    int *set, const char **out)
{
	struct json_object	*v;

	*set = 0;
	*out = NULL;
	if (!json_object_object_get_ex(body, field, &v))
		return E_OK;
	*set = 1;
	if (json_object_is_type(v, json_type_null))
		return E_OK;
	if (!json_object_is_type(v, json_type_string) ||
	    !date_valid(json_object_get_string(v)))
		return body_fail(r, field, "must be a date YYYY-MM-DD or null");
	*out = json_object_get_string(v);
	return E_OK;
}

static enum app_err
read_fields(struct req *r, struct json_object *body, int creating,
    struct sched_fields *f)
{
	static const char *const allowed[] = { "title", "playlist_id",
	    "days_of_week", "start_time", "end_time", "timezone", "priority",
	    "shuffle", "shuffle_seed", "first_date", "last_date", "is_active",
	    NULL };
	static const char *const forbidden[] = { "id", "created_by",
	    "created_at", "updated_at", NULL };
	size_t		 len;
	long		 v;
	int		 present, shuffle, seed_present;
	enum app_err	 err;

	memset(f, 0, sizeof(*f));
	if ((err = body_only(r, body, allowed, forbidden)) != E_OK ||
	    (err = body_string(r, body, "title", creating, 1, 255, &f->title,
	    &len)) != E_OK ||
	    (err = body_string(r, body, "playlist_id", creating, 36, 36,
	    &f->playlist_id, &len)) != E_OK)
		return err;
	if (f->playlist_id != NULL && !uuid_valid(f->playlist_id))
		return body_fail(r, "playlist_id", "must be a UUID");
	if ((err = read_days(r, body, creating, f)) != E_OK ||
	    (err = read_clock(r, body, "start_time", creating, 0, f->start)) != E_OK ||
	    (err = read_clock(r, body, "end_time", creating, 1, f->end)) != E_OK ||
	    (err = body_string(r, body, "timezone", 0, 1, 64, &f->timezone,
	    &len)) != E_OK)
		return err;
	if ((err = body_int(r, body, "priority", &present, -1000, 1000, &v)) != E_OK)
		return err;
	if (present)
		snprintf(f->priority, sizeof(f->priority), "%ld", v);
	if ((err = body_bool(r, body, "shuffle", &present, &shuffle)) != E_OK ||
	    (err = body_int(r, body, "shuffle_seed", &seed_present, 0, 2147483647L,
	    &v)) != E_OK)
		return err;
	if (present && !shuffle && seed_present)
		return body_fail(r, "shuffle_seed", "is only for a shuffled entry");
	if (seed_present) {
		f->seed_set = 1;
		snprintf(f->seed, sizeof(f->seed), "%ld", v);
	} else if (present) {
		f->seed_set = 1;
		if (shuffle) {
			unsigned char	 b[4];
			char		 tok[16];

			/* a seed of our own: the same order every time it plays */
			random_token(tok, 4);
			memcpy(b, tok, 4);
			snprintf(f->seed, sizeof(f->seed), "%lu", (unsigned long)
			    (((unsigned)b[0] << 24 | (unsigned)b[1] << 16 |
			    (unsigned)b[2] << 8 | b[3]) & 0x7fffffffu));
		}
	}
	if ((err = read_date(r, body, "first_date", &f->first_set, &f->first)) != E_OK ||
	    (err = read_date(r, body, "last_date", &f->last_set, &f->last)) != E_OK)
		return err;
	if (f->first != NULL && f->last != NULL && strcmp(f->last, f->first) < 0)
		return body_fail(r, "last_date", "must not be before first_date");
	if ((err = body_bool(r, body, "is_active", &f->active_set, &f->active)) != E_OK)
		return err;
	return E_OK;
}

static const char *
opt(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : NULL;
}

/* ---- checks inside the write's transaction --------------------------- */

static enum app_err
check_refs(struct req *r, const struct sched_fields *f)
{
	static const struct db_stmt st_zone = {
		"sch_zone", "SELECT time_zone_known($1)", 1
	};
	static const struct db_stmt st_playlist = {
		"sch_playlist",
		"SELECT playlist_role(p, $2::uuid) FROM playlists p"
		" WHERE p.id = $1 AND p.is_active",
		2
	};
	PGresult	*res;
	enum app_err	 err;

	if (f->timezone != NULL) {
		if ((err = db_exec(r, &res, &st_zone,
		    (const char *const[]){ f->timezone })) != E_OK)
			return err;
		if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
			return body_fail(r, "timezone", "is not a time zone the "
			    "database knows (an IANA name such as Europe/Berlin)");
	}
	if (f->playlist_id != NULL) {
		if ((err = db_exec(r, &res, &st_playlist,
		    (const char *const[]){ f->playlist_id, r->user_id })) != E_OK)
			return err;
		/* private to someone else: as if it did not exist */
		if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
			return body_fail(r, "playlist_id", "no such playlist");
	}
	return E_OK;
}

/*
 * 409 when the entry, if active, overlaps another active entry of the same
 * priority in the next CONFLICT_WEEKS weeks (from its first date when that
 * is later). A different priority settles it: the higher one plays.
 */
static enum app_err
check_conflicts(struct req *r, const char *id)
{
	static const struct db_stmt st = {
		"sch_conflicts",
		"SELECT json_build_object('id', e2.id, 'title', e2.title,"
		" 'priority', e2.priority, 'overlaps', json_agg(json_build_object("
		"'starts_at', utc_text(o.starts_at), 'ends_at', utc_text(o.ends_at))"
		" ORDER BY o.starts_at))::text, utc_text(min(w.f)),"
		" utc_text(min(w.f) + interval '" STR(CONFLICT_WEEKS) " weeks')"
		" FROM schedule_entries e"
		" CROSS JOIN LATERAL (SELECT greatest(now(), coalesce(e.first_date::timestamp"
		"  AT TIME ZONE e.timezone, now())) AS f) w"
		" CROSS JOIN LATERAL schedule_overlaps(w.f, w.f + interval '"
		STR(CONFLICT_WEEKS) " weeks', e.id) o"
		" JOIN schedule_entries e2 ON e2.id = o.b"
		" WHERE e.id = $1 AND e.is_active AND e2.priority = e.priority"
		" GROUP BY e2.id, e2.title, e2.priority ORDER BY e2.title, e2.id",
		1
	};
	struct json_object	*d, *a;
	PGresult		*res;
	enum app_err		 err;
	int			 i;

	if ((err = db_exec(r, &res, &st, (const char *const[]){ id })) != E_OK)
		return err;
	if (PQntuples(res) == 0)
		return E_OK;
	d = json_object_new_object();
	a = json_object_new_array();
	for (i = 0; i < PQntuples(res); i++)
		json_object_array_add(a, json_tokener_parse(PQgetvalue(res, i, 0)));
	json_object_object_add(d, "conflicts", a);
	json_object_object_add(d, "window_from", pg_json_str(res, 0, 1));
	json_object_object_add(d, "window_to", pg_json_str(res, 0, 2));
	return req_fail(r, E_CONFLICT, "the entry overlaps other entries of the "
	    "same priority; move it, or give it a different priority", d);
}

/* After a committed change: no cached answer outlives it. */
static void
schedule_changed(struct req *r)
{
	rds_command(r, "INCR sched:ver");
	revoke_schedule_bump();
}

static enum app_err
answer_entry(struct req *r, int status, const char *id)
{
	static const struct db_stmt st = {
		"sch_doc",
		"SELECT schedule_entry_json(e) FROM schedule_entries e WHERE e.id = $1",
		1
	};
	PGresult	*res;
	enum app_err	 err;

	if ((err = db_exec(r, &res, &st, (const char *const[]){ id })) != E_OK)
		return err;
	if (PQntuples(res) != 1)
		return req_fail(r, E_NOT_FOUND, "no such schedule entry", NULL);
	return resp_json_text(r, status, PQgetvalue(res, 0, 0),
	    (size_t)PQgetlength(res, 0, 0));
}

/* ---- entries ------------------------------------------------------------ */

/* GET /api/scheduler/schedules?active=&playlist_id=&page=&limit= */
static enum app_err
schedules_list(struct req *r)
{
	static const char *const known[] = { "active", "playlist_id", "page",
	    "limit", NULL };
	static const struct db_stmt st = {
		"sch_list",
		"SELECT schedule_entry_json(e), count(*) OVER () FROM schedule_entries e"
		" WHERE ($1::boolean IS NULL OR e.is_active = $1::boolean)"
		" AND ($2::uuid IS NULL OR e.playlist_id = $2::uuid)"
		" ORDER BY e.start_time, e.title, e.id LIMIT $3::int OFFSET $4::int",
		4
	};
	const char		*pl = req_query(r, "playlist_id");
	const char		*act;
	long			 page, limit;
	char			 lim[24], off[24];
	PGresult		*res;
	struct json_object	*rest;
	enum app_err		 err;

	if ((err = query_only(r, known)) != E_OK ||
	    (err = query_page(r, 50, 200, &page, &limit)) != E_OK ||
	    (err = query_flag(r, "active", &act)) != E_OK)
		return err;
	if (pl != NULL && !uuid_valid(pl))
		return req_fail(r, E_BAD_REQUEST, "playlist_id must be a UUID", NULL);
	snprintf(lim, sizeof(lim), "%ld", limit);
	snprintf(off, sizeof(off), "%ld", (page - 1) * limit);
	if ((err = db_exec(r, &res, &st, (const char *const[]){ act, pl, lim,
	    off })) != E_OK)
		return err;
	rest = json_object_new_object();
	json_object_object_add(rest, "page", json_object_new_int64(page));
	json_object_object_add(rest, "limit", json_object_new_int64(limit));
	json_object_object_add(rest, "total", json_object_new_int64(
	    PQntuples(res) > 0 ? atoll(PQgetvalue(res, 0, 1)) : 0));
	return resp_json_list(r, 200, "schedules", res, 0, PQntuples(res), rest);
}

struct write_tx {
	struct sched_fields	 f;
	const char		*id;	/* PUT: the entry; POST: OUT */
};

static enum app_err
create_body(struct req *r, void *arg)
{
	static const struct db_stmt st = {
		"sch_insert",
		"INSERT INTO schedule_entries (title, playlist_id, days_of_week,"
		" start_time, end_time, timezone, priority, shuffle_seed, first_date,"
		" last_date, is_active, created_by) VALUES ($1, $2, $3::text[],"
		" $4::time, $5::time, coalesce($6, (SELECT value #>> '{}' FROM"
		" system_settings WHERE key = 'default_timezone'), 'UTC'),"
		" coalesce($7::int, 0), $8::bigint, $9::date, $10::date,"
		" coalesce($11::boolean, true), $12) RETURNING id",
		12
	};
	struct write_tx	*t = arg;
	PGresult	*res;
	enum app_err	 err;

	if ((err = check_refs(r, &t->f)) != E_OK)
		return err;
	if ((err = db_exec(r, &res, &st, (const char *const[]){ t->f.title,
	    t->f.playlist_id, t->f.days, t->f.start, t->f.end, t->f.timezone,
	    opt(t->f.priority), opt(t->f.seed), t->f.first, t->f.last,
	    t->f.active_set ? (t->f.active ? "true" : "false") : NULL,
	    r->user_id })) != E_OK)
		return err;
	t->id = pool_strdup(r->pool, PQgetvalue(res, 0, 0));
	return check_conflicts(r, t->id);
}

/* POST /api/scheduler/schedules */
static enum app_err
schedules_create(struct req *r)
{
	struct json_object	*body;
	struct write_tx		 t;
	enum app_err		 err;

	memset(&t, 0, sizeof(t));
	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = read_fields(r, body, 1, &t.f)) != E_OK)
		return err;
	if ((err = db_tx(r, "READ COMMITTED", create_body, &t)) != E_OK)
		return err;
	schedule_changed(r);
	resp_header(r, "Location", pool_printf(r->pool,
	    "/api/scheduler/schedules/%s", t.id));
	return answer_entry(r, 201, t.id);
}

/* GET /api/scheduler/schedules/:id */
static enum app_err
schedules_get(struct req *r)
{
	const char	*id = req_param(r, "id");

	if (!uuid_valid(id))
		return req_fail(r, E_BAD_REQUEST, "the entry id is not a UUID", NULL);
	return answer_entry(r, 200, id);
}

static enum app_err
update_body(struct req *r, void *arg)
{
	static const struct db_stmt st = {
		"sch_update",
		"UPDATE schedule_entries SET"
		" title = coalesce($2, title),"
		" playlist_id = coalesce($3::uuid, playlist_id),"
		" days_of_week = coalesce($4::text[], days_of_week),"
		" start_time = coalesce($5::time, start_time),"
		" end_time = coalesce($6::time, end_time),"
		" timezone = coalesce($7, timezone),"
		" priority = coalesce($8::int, priority),"
		" shuffle_seed = CASE WHEN $9::boolean THEN $10::bigint ELSE shuffle_seed END,"
		" first_date = CASE WHEN $11::boolean THEN $12::date ELSE first_date END,"
		" last_date = CASE WHEN $13::boolean THEN $14::date ELSE last_date END,"
		" is_active = coalesce($15::boolean, is_active)"
		" WHERE id = $1 RETURNING first_date, last_date",
		15
	};
	struct write_tx	*t = arg;
	PGresult	*res;
	enum app_err	 err;

	if ((err = check_refs(r, &t->f)) != E_OK)
		return err;
	if ((err = db_exec(r, &res, &st, (const char *const[]){ t->id,
	    t->f.title, t->f.playlist_id, opt(t->f.days), opt(t->f.start),
	    opt(t->f.end), t->f.timezone, opt(t->f.priority),
	    t->f.seed_set ? "true" : "false", opt(t->f.seed),
	    t->f.first_set ? "true" : "false", t->f.first,
	    t->f.last_set ? "true" : "false", t->f.last,
	    t->f.active_set ? (t->f.active ? "true" : "false") : NULL })) != E_OK) {
		if (err == E_INVALID && r->err_message == NULL)
			return body_fail(r, "last_date", "must not be before first_date");
		return err;
	}
	if (PQntuples(res) != 1)
		return req_fail(r, E_NOT_FOUND, "no such schedule entry", NULL);
	return check_conflicts(r, t->id);
}

/* PUT /api/scheduler/schedules/:id: the fields given change. */
static enum app_err
schedules_put(struct req *r)
{
	struct json_object	*body;
	struct write_tx		 t;
	enum app_err		 err;

	memset(&t, 0, sizeof(t));
	t.id = req_param(r, "id");
	if (!uuid_valid(t.id))
		return req_fail(r, E_BAD_REQUEST, "the entry id is not a UUID", NULL);
	if ((err = req_json_body(r, &body)) != E_OK ||
	    (err = read_fields(r, body, 0, &t.f)) != E_OK)
		return err;
	if ((err = db_tx(r, "READ COMMITTED", update_body, &t)) != E_OK)
		return err;
	schedule_changed(r);
	return answer_entry(r, 200, t.id);
}

/* DELETE /api/scheduler/schedules/:id */
static enum app_err
schedules_delete(struct req *r)
{
	static const struct db_stmt st = {
		"sch_delete", "DELETE FROM schedule_entries WHERE id = $1", 1
	};
	const char	*id = req_param(r, "id");
	PGresult	*res;
	enum app_err	 err;

	if (!uuid_valid(id))
		return req_fail(r, E_BAD_REQUEST, "the entry id is not a UUID", NULL);
	if ((err = db_exec(r, &res, &st, (const char *const[]){ id })) != E_OK)
		return err;
	if (atol(PQcmdTuples(res)) == 0)
		return req_fail(r, E_NOT_FOUND, "no such schedule entry", NULL);
	schedule_changed(r);
	r->status = 204;
	return E_OK;
}

/* ---- windows --------------------------------------------------------- */

static long long
wall_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* "2024-03-31T01:00:00.000Z" for microseconds since 1970. */
static const char *
iso_us_text(struct req *r, long long us)
{
	time_t		 secs = (time_t)(us >= 0 ? us / 1000000 : (us - 999999) / 1000000);
	struct tm	 tm;

	gmtime_r(&secs, &tm);
	return pool_printf(r->pool, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (int)((us - (long long)secs * 1000000) / 1000));
}

/* An instant as SQL text: microseconds since 1970. */
static const char *
us_text(struct req *r, long long us)
{
	return pool_printf(r->pool, "%lld", us);
}

#define US_TS(n)	"(timestamptz 'epoch' + $" #n "::bigint * interval '1 microsecond')"

/*
 * The from= and to= arguments (ISO 8601; a date alone is its start, or its
 * end for to=), defaulting to now and now + def_days; at most max_days
 * apart. OUT: from, to (microseconds).
 */
static enum app_err
query_window(struct req *r, long def_days, long max_days, long long *from,
    long long *to)
{
	const char	*f = req_query(r, "from"), *t = req_query(r, "to");

	*from = wall_us();
	if (f != NULL && iso8601_to_us(f, 0, from) != 0)
		return req_fail(r, E_BAD_REQUEST, "from must be an ISO 8601 date or "
		    "date-time", NULL);
	*to = *from + def_days * 86400LL * 1000000LL;
	if (t != NULL && iso8601_to_us(t, 1, to) != 0)
		return req_fail(r, E_BAD_REQUEST, "to must be an ISO 8601 date or "
		    "date-time", NULL);
	if (*to <= *from)
		return req_fail(r, E_INVALID, "to must be after from", NULL);
	if (*to - *from > max_days * 86400LL * 1000000LL)
		return req_fail(r, E_INVALID, pool_printf(r->pool, "the window is "
		    "at most %ld days", max_days), NULL);
	return E_OK;
}

/* GET /api/scheduler/upcoming?from=&to=: the occurrences in the window. */
static enum app_err
schedules_upcoming(struct req *r)
{
	static const char *const known[] = { "from", "to", NULL };
	static const struct db_stmt st = {
		"sch_upcoming",
		"SELECT json_build_object('entry_id', e.id, 'title', e.title,"
		" 'playlist_id', e.playlist_id, 'priority', e.priority,"
		" 'timezone', e.timezone, 'local_date', x.local_date,"
		" 'starts_at', utc_text(x.starts_at), 'ends_at', utc_text(x.ends_at),"
		" 'local_starts_at', schedule_local_text(x.starts_at, e.timezone),"
		" 'local_ends_at', schedule_local_text(x.ends_at, e.timezone),"
		" 'duration_s', extract(epoch FROM x.ends_at - x.starts_at)::bigint)::text"
		" FROM schedule_entries e, LATERAL schedule_occurrences(e, " US_TS(1)
		", " US_TS(2) ") x WHERE e.is_active ORDER BY x.starts_at, e.id"
		" LIMIT " STR(UPCOMING_MAX_ROWS) " + 1",
		2
	};
	long long		 from, to;
	PGresult		*res;
	struct json_object	*rest;
	enum app_err		 err;
	int			 n;

	if ((err = query_only(r, known)) != E_OK ||
	    (err = query_window(r, 7, UPCOMING_MAX_DAYS, &from, &to)) != E_OK)
		return err;
	if ((err = db_exec(r, &res, &st, (const char *const[]){ us_text(r, from),
	    us_text(r, to) })) != E_OK)
		return err;
	n = PQntuples(res);
	rest = json_object_new_object();
	json_object_object_add(rest, "from", json_object_new_string(
	    iso_us_text(r, from)));
	json_object_object_add(rest, "to", json_object_new_string(
	    iso_us_text(r, to)));
	json_object_object_add(rest, "truncated", json_object_new_boolean(
	    n > UPCOMING_MAX_ROWS));
	return resp_json_list(r, 200, "occurrences", res, 0,
	    n > UPCOMING_MAX_ROWS ? UPCOMING_MAX_ROWS : n, rest);
}

/* GET /api/scheduler/conflicts?from=&to= (default: the next 8 weeks) */
static enum app_err
schedules_conflicts(struct req *r)
{
	static const char *const known[] = { "from", "to", NULL };
	static const struct db_stmt st = {
		"sch_conflicts_all",
		"SELECT json_build_object('entries', json_build_array("
		"  json_build_object('id', ea.id, 'title', ea.title, 'priority', ea.priority,"
		"   'timezone', ea.timezone),"
		"  json_build_object('id', eb.id, 'title', eb.title, 'priority', eb.priority,"
		"   'timezone', eb.timezone)),"
		" 'resolved', ea.priority <> eb.priority,"
		" 'winner', CASE WHEN ea.priority > eb.priority THEN ea.id"
		"  WHEN eb.priority > ea.priority THEN eb.id END,"
		" 'count', count(*),"
		" 'overlaps', (array_agg(json_build_object('starts_at', utc_text(o.starts_at),"
		"  'ends_at', utc_text(o.ends_at)) ORDER BY o.starts_at))[1:50])::text,"
		" ea.priority = eb.priority"
		" FROM schedule_overlaps(" US_TS(1) ", " US_TS(2) ", NULL) o"
		" JOIN schedule_entries ea ON ea.id = o.a"
		" JOIN schedule_entries eb ON eb.id = o.b"
		" GROUP BY ea.id, eb.id ORDER BY min(o.starts_at), ea.id, eb.id",
		2
	};
	long long		 from, to;
	PGresult		*res;
	struct json_object	*rest;
	enum app_err		 err;
	int			 i, open = 0;

	if ((err = query_only(r, known)) != E_OK ||
	    (err = query_window(r, CONFLICT_WEEKS * 7, CONFLICTS_MAX_DAYS, &from,
	    &to)) != E_OK)
		return err;
	if ((err = db_exec(r, &res, &st, (const char *const[]){ us_text(r, from),
	    us_text(r, to) })) != E_OK)
		return err;
	for (i = 0; i < PQntuples(res); i++)
		open += strcmp(PQgetvalue(res, i, 1), "t") == 0;
	rest = json_object_new_object();
	json_object_object_add(rest, "from", json_object_new_string(
	    iso_us_text(r, from)));
	json_object_object_add(rest, "to", json_object_new_string(
	    iso_us_text(r, to)));
	json_object_object_add(rest, "unresolved", json_object_new_int(open));
	return resp_json_list(r, 200, "conflicts", res, 0, PQntuples(res), rest);
}

/* ---- caching answers --------------------------------------------------- */

/*
 * Answers that depend only on the schedule and the library are kept in the
 * worker (pagecache.c) and in Redis, under the versions the pool's watcher
 * keeps (revoke_schedule_version(); Redis's lib:ver and sched:ver): every
 * change anywhere moves them on, so nothing is served after a change.
 */
struct sched_cache {
	uint64_t	 ver;		/* this machine's versions */
	int		 local;		/* ver is known (the watcher is live) */
	char		 stamp[64];	/* Redis's versions, "" if it did not answer */
};

static const char	 cache_lua[] =
	"return {redis.call('GET', 'lib:ver') or '0',"
	" redis.call('GET', 'sched:ver') or '0', redis.call('GET', KEYS[1]),"
	" redis.call('PTTL', KEYS[1])}";

/* The answer filed under key, or NULL. OUT: c, len. */
static const char *
cache_get(struct req *r, const char *key, long long now, struct sched_cache *c,
    size_t *len)
{
	struct redisReply	*rep;
	const char		*s;
	size_t			 sl;

	memset(c, 0, sizeof(*c));
	if (revoke_schedule_version(&c->ver) == 0) {
		c->local = 1;
		if ((s = pagecache_get(key, c->ver, (time_t)(now / 1000000), len)) != NULL)
			return s;
	}
	rep = rds_command(r, "EVAL %s 1 %s", cache_lua, key);
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 4 ||
	    rep->element[0]->type != REDIS_REPLY_STRING ||
	    rep->element[1]->type != REDIS_REPLY_STRING)
		return NULL;
	snprintf(c->stamp, sizeof(c->stamp), "%s:%s\n", rep->element[0]->str,
	    rep->element[1]->str);
	sl = strlen(c->stamp);
	if (rep->element[2]->type != REDIS_REPLY_STRING ||
	    rep->element[2]->len <= sl ||
	    memcmp(rep->element[2]->str, c->stamp, sl) != 0)
		return NULL;
	*len = rep->element[2]->len - sl;
	if (c->local && rep->element[3]->type == REDIS_REPLY_INTEGER &&
	    rep->element[3]->integer > 0)
		pagecache_put(key, c->ver, (time_t)((now / 1000 +
		    rep->element[3]->integer) / 1000), rep->element[2]->str + sl, *len);
	return rep->element[2]->str + sl;
}

/* File body under key for ttl_ms, with the versions cache_get() read. */
static void
cache_put(struct req *r, const char *key, const struct sched_cache *c,
    long long now, const char *body, size_t len, long long ttl_ms)
{
	if (ttl_ms <= 0)
		return;
	if (c->local)
		pagecache_put(key, c->ver, (time_t)((now / 1000 + ttl_ms) / 1000),
		    body, len);
	if (c->stamp[0] != '\0')
		rds_command(r, "SET %s %s%b PX %lld", key, c->stamp, body, len, ttl_ms);
}

/* ---- what plays now ---------------------------------------------------- */

#define NOW_KEY		"sched:now"

/* "<track_start_us> <valid_until_us>\n<rest of the answer>" */
struct now_answer {
	long long	 track_start;	/* 0: nothing plays */
	long long	 until;
	const char	*doc;
	size_t		 len;
};

static int
now_parse(const char *s, size_t len, struct now_answer *a)
{
	const char	*nl = memchr(s, '\n', len);

	if (nl == NULL || sscanf(s, "%lld %lld", &a->track_start, &a->until) != 2)
		return -1;
	a->doc = nl + 1;
	a->len = len - (size_t)(nl + 1 - s);
	return 0;
}

/*
 * The answer for instant at (microseconds): from a cache when at is now
 * (use_cache) and the cached answer still holds then, else from the
 * database, then filed until it stops holding (the track or the slot
 * ends). OUT: a (pool memory).
 */
static enum app_err
now_answer(struct req *r, long long at, int use_cache, struct now_answer *a)
{
	static const struct db_stmt st = {
		"sch_now",
		"SELECT n.doc, coalesce((extract(epoch FROM n.track_start) * 1e6)::bigint, 0),"
		" coalesce((extract(epoch FROM n.valid_until) * 1e6)::bigint, 0)"
		" FROM schedule_now(" US_TS(1) ") n",
		1
	};
	struct sched_cache	 c;
	const char		*s;
	char			*blob;
	size_t			 len;
	PGresult		*res;
	enum app_err		 err;

	memset(&c, 0, sizeof(c));
	if (use_cache && (s = cache_get(r, NOW_KEY, at, &c, &len)) != NULL &&
	    now_parse(s, len, a) == 0 && at < a->until && at >= a->track_start)
		return E_OK;
	if ((err = db_exec(r, &res, &st, (const char *const[]){ us_text(r, at) }))
	    != E_OK)
		return err;
	blob = pool_printf(r->pool, "%s %s\n%s", PQgetvalue(res, 0, 1),
	    PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 0));
	if (now_parse(blob, strlen(blob), a) != 0)
		return req_fail(r, E_INTERNAL, "the scheduler's answer is malformed",
		    NULL);
	if (use_cache && a->until > at)
		cache_put(r, NOW_KEY, &c, at, blob, strlen(blob),
		    (a->until - at) / 1000 + 1);
	return E_OK;
}

/*
 * GET /api/scheduler/current?at=: the entry in force at the instant (now
 * by default), its playlist, the track playing and how far into it, the
 * next track and when the slot ends; the fallback playlist when nothing is
 * scheduled.
 */
static enum app_err
schedules_current(struct req *r)
{
	static const char *const known[] = { "at", NULL };
	const char		*at_s = req_query(r, "at");
	long long		 at = wall_us();
	struct now_answer	 a;
	char			 head[128];
	char			*body;
	size_t			 hl;
	enum app_err		 err;

	if ((err = query_only(r, known)) != E_OK)
		return err;
	if (at_s != NULL && iso8601_to_us(at_s, 0, &at) != 0)
		return req_fail(r, E_BAD_REQUEST, "at must be an ISO 8601 date or "
		    "date-time", NULL);
	if ((err = now_answer(r, at, at_s == NULL, &a)) != E_OK)
		return err;
	if (a.track_start != 0)
		hl = (size_t)snprintf(head, sizeof(head), "{\"at\":\"%s\","
		    "\"offset_ms\":%lld,", iso_us_text(r, at),
		    (at - a.track_start) / 1000);
	else
		hl = (size_t)snprintf(head, sizeof(head), "{\"at\":\"%s\","
		    "\"offset_ms\":null,", iso_us_text(r, at));
	body = pool_alloc(r->pool, hl + a.len + 1);
	memcpy(body, head, hl);
	memcpy(body + hl, a.doc, a.len);
	body[hl + a.len] = '\0';
	if ((err = resp_json_text(r, 200, body, hl + a.len)) != E_OK)
		return err;
	if (at_s == NULL)
		resp_header(r, "Cache-Control", "no-store");
	return likes_mark_page(r);
}

/* ---- iCalendar ------------------------------------------------------- */

/*
 * Lines joined by LF as RFC 5545 content lines: CRLF ends, folded before
 * 75 octets, never inside a UTF-8 character. Pure apart from pool.
 */
static char *
ics_fold(struct mpool *pool, const char *in, size_t *outlen)
{
	size_t	 len = strlen(in), o = 0, col = 0, i;
	char	*out = pool_alloc(pool, len * 2 + 8);

	for (i = 0; i < len; i++) {
		unsigned char	 c = (unsigned char)in[i];

		if (c == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			col = 0;
			continue;
		}
		/* a character's first byte, where a fold may go */
		if ((c & 0xc0) != 0x80 && col >= 74) {
			size_t	 clen = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;

			if (col + clen > 75) {
				out[o++] = '\r';
				out[o++] = '\n';
				out[o++] = ' ';
				col = 1;
			}
		}
		out[o++] = (char)c;
		col++;
	}
	out[o++] = '\r';
	out[o++] = '\n';
	out[o] = '\0';
	*outlen = o;
	return out;
}

#define ICS_KEY		"sched:ics"
#define ICS_TTL_S	600	/* the calendar looks 4 years ahead from today */

/* GET /api/scheduler/calendar.ics (cached until any change) */
static enum app_err
schedules_ics(struct req *r)
{
	static const char *const known[] = { NULL };
	static const struct db_stmt st = {
		"sch_ics", "SELECT schedule_ics(now())", 0
	};
	struct sched_cache	 c;
	PGresult		*res;
	enum app_err		 err;
	long long		 now = wall_us();
	const char		*body;
	size_t			 len;

	if ((err = query_only(r, known)) != E_OK)
		return err;
	if ((body = cache_get(r, ICS_KEY, now, &c, &len)) == NULL) {
		if ((err = db_exec(r, &res, &st, NULL)) != E_OK)
			return err;
		body = ics_fold(r->pool, PQgetvalue(res, 0, 0), &len);
		cache_put(r, ICS_KEY, &c, now, body, len, ICS_TTL_S * 1000LL);
	}
	r->status = 200;
	r->content_type = "text/calendar; charset=utf-8";
	r->body = body;
	r->body_len = len;
	resp_attachment(r, "djamms-schedule", ".ics");
	return E_OK;
}

static const struct route scheduler_routes[] = {
	/* method	pattern					handler			needs */
	{ M_GET,	"/api/scheduler/schedules",		schedules_list,		P_READ_SCHEDULES, 0 },
	{ M_POST,	"/api/scheduler/schedules",		schedules_create,	P_WRITE_SCHEDULES, 0 },
	{ M_GET,	"/api/scheduler/schedules/:id",		schedules_get,		P_READ_SCHEDULES, 0 },
	{ M_PUT,	"/api/scheduler/schedules/:id",		schedules_put,		P_WRITE_SCHEDULES, 0 },
	{ M_DELETE,	"/api/scheduler/schedules/:id",		schedules_delete,	P_DELETE_SCHEDULES, 0 },
	{ M_GET,	"/api/scheduler/conflicts",		schedules_conflicts,	P_READ_SCHEDULES, 0 },
	{ M_GET,	"/api/scheduler/current",		schedules_current,	P_READ_SCHEDULES, 0 },
	{ M_GET,	"/api/scheduler/upcoming",		schedules_upcoming,	P_READ_SCHEDULES, 0 },
	{ M_GET,	"/api/scheduler/calendar.ics",		schedules_ics,		P_READ_SCHEDULES, 0 },
};

const struct route_table scheduler_route_table = {
	scheduler_routes, sizeof(scheduler_routes) / sizeof(scheduler_routes[0])
};
