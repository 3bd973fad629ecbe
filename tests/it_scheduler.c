/*
 * tests/it_scheduler.c: the scheduler end to end through nginx. Entries
 * and their validation, who may change them, cross-midnight and multi-day
 * slots, the Berlin and New York clock changes (slot lengths, the skipped
 * and the repeated hour), a leap day, Tokyo against New York, what plays
 * at an instant (boundaries, the rotation following the playlist, shuffle,
 * the fallback, the cache following changes) and the iCalendar file read
 * back by ical.js and compared with upcoming.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "http.h"

static const char	*top_dir, *stack_dir;

static struct it_session	 admin;
static int			 have_admin;

static char	 common_pl[37];		/* an empty public playlist */

static const struct it_session *
adm(void)
{
	if (!have_admin && it_new_admin("schedadm", &admin) == 0) {
		have_admin = 1;
		it_new_playlist(&admin, "Scheduled", 1, common_pl);
	}
	return &admin;
}

/* Every test starts from an empty schedule. */
static void
reset(void)
{
	it_psql("DELETE FROM schedule_entries");
	it_psql("UPDATE system_settings SET value = 'null' WHERE key = 'fallback_playlist_id'");
}

/* POST an entry; its status. OUT: id (when 201). */
static long
entry(const struct it_session *s, const char *json, char id[37])
{
	struct http_res	 res = http_bearer("POST", "/api/scheduler/schedules",
	    s->access, json);
	long		 st = res.status;
	const char	*v;

	if (id != NULL) {
		id[0] = '\0';
		if (st == 201 && (v = json_str(&res, "id")) != NULL)
			snprintf(id, 37, "%s", v);
	}
	http_free(&res);
	return st;
}

/* A playlist of n tracks of 100, 101... seconds. OUT: pl, tracks. */
static int
playlist_of(const struct it_session *s, const char *name, int n, char pl[37],
    char tracks[][37])
{
	char		 body[4096], path[128];
	const char	*out;
	size_t		 o;
	int		 i;

	if (it_new_playlist(s, name, 1, pl) != 0)
		return -1;
	out = it_psql("INSERT INTO tracks (title, artist, duration, source)"
	    " SELECT '%s-' || i, 'Scheduler Tester', 100 + i, 'catalog'"
	    " FROM generate_series(0, %d) i RETURNING id", name, n - 1);
	o = (size_t)snprintf(body, sizeof(body), "{\"track_ids\":[");
	for (i = 0; i < n; i++) {
		if (strlen(out) < 36)
			return -1;
		memcpy(tracks[i], out, 36);
		tracks[i][36] = '\0';
		out += 36;
		while (*out == '\n')
			out++;
		o += (size_t)snprintf(body + o, sizeof(body) - o, "%s\"%s\"",
		    i ? "," : "", tracks[i]);
	}
	snprintf(body + o, sizeof(body) - o, "]}");
	snprintf(path, sizeof(path), "/api/playlists/%s/tracks", pl);
	return it_status("POST", path, s->access, body) == 201 ? 0 : -1;
}

static struct http_res
get(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static struct http_res
get(const char *fmt, ...)
{
	char	 path[512];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return http_bearer("GET", path, adm()->access, NULL);
}

/* The occurrences of upcoming in [from, to) as "start end" lines. */
static int
occurrences(const char *from, const char *to, const char *title, char *out,
    size_t cap)
{
	struct http_res		 res = get("/api/scheduler/upcoming?from=%s&to=%s",
	    from, to);
	struct json_object	*a = json_array(&res, "occurrences");
	size_t			 i, o = 0;
	int			 n = 0;

	out[0] = '\0';
	for (i = 0; a != NULL && i < json_object_array_length(a); i++) {
		struct json_object	*e = json_object_array_get_idx(a, i), *v;

		if (title != NULL && (!json_object_object_get_ex(e, "title", &v) ||
		    strcmp(json_object_get_string(v), title) != 0))
			continue;
		json_object_object_get_ex(e, "starts_at", &v);
		o += (size_t)snprintf(out + o, cap - o, "%s ", json_object_get_string(v));
		json_object_object_get_ex(e, "ends_at", &v);
		o += (size_t)snprintf(out + o, cap - o, "%s\n", json_object_get_string(v));
		n++;
	}
	long			 st = res.status;

	if (st != 200)
		t_fail(__FILE__, __LINE__, "upcoming: %ld %.300s", st,
		    res.body ? res.body : "");
	http_free(&res);
	return st == 200 ? n : -1;
}

/* ---- entries ------------------------------------------------------------ */

static void
test_scheduler_entry_create_read_change_delete(void)
{
	char		 pl[37], id[37], path[128], body[512];
	struct http_res	 res;

	reset();
	expect(it_new_playlist(adm(), "Mornings", 0, pl) == 0);
	snprintf(body, sizeof(body), "{\"title\":\"Café mornings\",\"playlist_id\":\"%s\","
	    "\"days_of_week\":[\"Friday\",\"monday\",\"wed\"],\"start_time\":\"07:00\","
	    "\"end_time\":\"11:00\",\"timezone\":\"Europe/Berlin\"}", pl);
	res = http_bearer("POST", "/api/scheduler/schedules", adm()->access, body);
	expect_status(&res, 201);
	expect(http_header(&res, "Location") != NULL);
	expect_json_str(&res, "days_of_week.0", "monday");
	expect_json_str(&res, "days_of_week.1", "wednesday");
	expect_json_str(&res, "days_of_week.2", "friday");
	expect_json_str(&res, "start_time", "07:00");
	expect_json_str(&res, "timezone", "Europe/Berlin");
	expect_json_str(&res, "playlist.id", pl);
	expect(json_lookup_bool(&res, "crosses_midnight") == 0);
	expect(json_lookup_bool(&res, "is_active") == 1);
	snprintf(id, sizeof(id), "%s", json_str(&res, "id"));
	http_free(&res);

	snprintf(path, sizeof(path), "/api/scheduler/schedules/%s", id);
	res = get("%s", path);
	expect_status(&res, 200);
	expect_json_str(&res, "title", "Café mornings");
	http_free(&res);
	res = http_bearer("PUT", path, adm()->access, "{\"title\":\"Mornings\","
	    "\"end_time\":\"24:00\",\"shuffle\":true}");
	expect_status(&res, 200);
	expect_json_str(&res, "title", "Mornings");
	expect_json_str(&res, "end_time", "24:00");
	expect_json_str(&res, "start_time", "07:00");	/* untouched */
	expect(json_lookup_bool(&res, "shuffle") == 1);
	http_free(&res);
	res = get("/api/scheduler/schedules?active=1");
	expect_status(&res, 200);
	expect(json_int(&res, "total", -1) == 1);
	expect_json_str(&res, "schedules.0.id", id);
	http_free(&res);
	expect(it_status("DELETE", path, adm()->access, NULL) == 204);
	expect(it_status("GET", path, adm()->access, NULL) == 404);
	expect(it_status("DELETE", path, adm()->access, NULL) == 404);
}

static void
test_scheduler_bad_input_is_refused_clearly(void)
{
	static const struct { const char *json; long status; const char *field; } cases[] = {
		{ "{\"title\":\"x\",\"days_of_week\":[\"monday\"],\"start_time\":\"07:00\","
		  "\"end_time\":\"09:00\",\"timezone\":\"Mars/Olympus_Mons\"}", 422, "timezone" },
		{ "{\"title\":\"x\",\"days_of_week\":[\"monday\"],\"start_time\":\"25:00\","
		  "\"end_time\":\"09:00\"}", 422, "start_time" },
		{ "{\"title\":\"x\",\"days_of_week\":[\"monday\"],\"start_time\":\"24:00\","
		  "\"end_time\":\"09:00\"}", 422, "start_time" },
		{ "{\"title\":\"x\",\"days_of_week\":[\"monday\"],\"start_time\":\"7:00\","
		  "\"end_time\":\"09:00\"}", 422, "start_time" },
		{ "{\"title\":\"x\",\"days_of_week\":[],\"start_time\":\"07:00\","
		  "\"end_time\":\"09:00\"}", 422, "days_of_week" },
		{ "{\"title\":\"x\",\"days_of_week\":[\"funday\"],\"start_time\":\"07:00\","
		  "\"end_time\":\"09:00\"}", 422, "days_of_week" },
		{ "{\"title\":\"x\",\"days_of_week\":[\"monday\"],\"start_time\":\"07:00\","
		  "\"end_time\":\"09:00\",\"first_date\":\"2023-02-29\"}", 422, "first_date" },
		{ "{\"title\":\"x\",\"days_of_week\":[\"monday\"],\"start_time\":\"07:00\","
		  "\"end_time\":\"09:00\",\"first_date\":\"2025-05-02\",\"last_date\":\"2025-05-01\"}",
		  422, "last_date" },
		{ "{\"title\":\"x\",\"days_of_week\":[\"monday\"],\"start_time\":\"07:00\","
		  "\"end_time\":\"09:00\",\"priority\":5000}", 422, "priority" },
		{ "{\"title\":\"x\",\"days_of_week\":[\"monday\"],\"start_time\":\"07:00\","
		  "\"end_time\":\"09:00\",\"playlist_id\":\"not-a-uuid-not-a-uuid-not-a-uuid-12\"}",
		  422, "playlist_id" },
		{ "{\"title\":\"x\",\"days_of_week\":[\"monday\"],\"start_time\":\"07:00\","
		  "\"end_time\":\"09:00\",\"colour\":\"red\"}", 400, NULL },
		{ "[1,2]", 400, NULL },
	};
	char		 pl[37], body[1024];
	struct http_res	 res;
	size_t		 i;

	reset();
	expect(it_new_playlist(adm(), "Bad input", 0, pl) == 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* every case but the malformed ones names a real playlist */
		if (cases[i].json[0] == '{' && strstr(cases[i].json, "playlist_id") == NULL)
			snprintf(body, sizeof(body), "{\"playlist_id\":\"%s\",%s", pl,
			    cases[i].json + 1);
		else
			snprintf(body, sizeof(body), "%s", cases[i].json);
		res = http_bearer("POST", "/api/scheduler/schedules", adm()->access, body);
		if (res.status != cases[i].status)
			t_fail(__FILE__, __LINE__, "case %zu: %ld %s", i, res.status,
			    res.body ? res.body : "");
		expect(res.status == cases[i].status);
		expect(json_str(&res, "error.code") != NULL);
		if (cases[i].field != NULL)
			expect_json_str(&res, "error.details.field", cases[i].field);
		http_free(&res);
	}
	expect(strcmp(it_psql("SELECT count(*) FROM schedule_entries"), "0") == 0);
	expect(it_status("GET", "/api/scheduler/schedules/12345", adm()->access, NULL) == 400);
	expect(it_status("GET", "/api/scheduler/current?at=yesterday", adm()->access, NULL) == 400);
	expect(it_status("GET", "/api/scheduler/upcoming?from=2025-01-01&to=2026-01-01",
	    adm()->access, NULL) == 422);
	expect(it_status("GET", "/api/scheduler/upcoming?color=1", adm()->access, NULL) == 400);
}

static void
test_scheduler_permissions_and_private_playlists(void)
{
	struct it_session	 u, other, mod, guest;
	char			 mine[37], theirs[37], pub[37], body[512], id[37], path[128];

	reset();
	expect(it_new_user("schedu", &u) == 0);
	expect(it_new_user("schedo", &other) == 0);
	expect(it_new_user("schedm", &mod) == 0);
	expect(it_new_guest(&guest) == 0);
	it_psql("UPDATE users SET role = 'moderator' WHERE id = '%s'", mod.id);
	expect(it_login(mod.name, &mod) == 0);
	expect(it_new_playlist(&mod, "Mod's own", 0, mine) == 0);
	expect(it_new_playlist(&other, "Private", 0, theirs) == 0);
	expect(it_new_playlist(&other, "Public", 1, pub) == 0);

	snprintf(body, sizeof(body), "{\"title\":\"t\",\"playlist_id\":\"%s\","
	    "\"days_of_week\":[\"monday\"],\"start_time\":\"07:00\",\"end_time\":\"08:00\"}", mine);
	expect(it_status("POST", "/api/scheduler/schedules", NULL, body) == 401);
	expect(it_status("POST", "/api/scheduler/schedules", u.access, body) == 403);
	expect(it_status("POST", "/api/scheduler/schedules", guest.access, body) == 403);
	expect(entry(&mod, body, id) == 201);
	snprintf(path, sizeof(path), "/api/scheduler/schedules/%s", id);
	/* reading is for everyone signed in; changing is not */
	expect(it_status("GET", path, u.access, NULL) == 200);
	expect(it_status("GET", "/api/scheduler/current", guest.access, NULL) == 200);
	expect(it_status("PUT", path, u.access, "{\"title\":\"mine now\"}") == 403);
	expect(it_status("DELETE", path, u.access, NULL) == 403);
	/* someone else's private playlist does not exist for the scheduler */
	snprintf(body, sizeof(body), "{\"title\":\"t\",\"playlist_id\":\"%s\","
	    "\"days_of_week\":[\"tuesday\"],\"start_time\":\"07:00\",\"end_time\":\"08:00\"}",
	    theirs);
	expect(entry(&mod, body, NULL) == 422);
	snprintf(body, sizeof(body), "{\"playlist_id\":\"%s\"}", theirs);
	expect(it_status("PUT", path, mod.access, body) == 422);
	snprintf(body, sizeof(body), "{\"title\":\"t\",\"playlist_id\":\"%s\","
	    "\"days_of_week\":[\"tuesday\"],\"start_time\":\"07:00\",\"end_time\":\"08:00\"}",
	    pub);
	expect(entry(&mod, body, NULL) == 201);
	expect(it_status("DELETE", path, mod.access, NULL) == 204);
}

/* ---- time ------------------------------------------------------------- */

static void
test_scheduler_cross_midnight_and_several_days(void)
{
	char		 pl[37], body[512], id[37], occ[2048], t[2][37];
	struct http_res	 res;
	int		 n;

	reset();
	expect(playlist_of(adm(), "Late", 2, pl, t) == 0);
	snprintf(body, sizeof(body), "{\"title\":\"Late\",\"playlist_id\":\"%s\","
	    "\"days_of_week\":[\"friday\",\"saturday\"],\"start_time\":\"22:00\","
	    "\"end_time\":\"02:00\",\"timezone\":\"Europe/Berlin\"}", pl);
	expect(entry(adm(), body, id) == 201);
	/* 2025-01-10 is a Friday; CET is UTC+1 */
	n = occurrences("2025-01-06", "2025-01-12", NULL, occ, sizeof(occ));
	if (n != 2)
		t_fail(__FILE__, __LINE__, "%d occurrences: %s", n, occ);
	expect(n == 2);
	expect(strcmp(occ, "2025-01-10T21:00:00Z 2025-01-11T01:00:00Z\n"
	    "2025-01-11T21:00:00Z 2025-01-12T01:00:00Z\n") == 0);
	/* Saturday 00:30 local is still Friday's slot */
	res = get("/api/scheduler/current?at=2025-01-10T23:30:00Z");
	expect_status(&res, 200);
	expect_json_str(&res, "entry.id", id);
	expect_json_str(&res, "slot.starts_at", "2025-01-10T21:00:00Z");
	expect_json_str(&res, "slot.ends_at", "2025-01-11T01:00:00Z");
	expect_json_str(&res, "slot.local_starts_at", "2025-01-10T22:00:00+01:00");
	expect(json_lookup_bool(&res, "fallback") == 0);
	http_free(&res);
	/* Sunday night has no slot */
	res = get("/api/scheduler/current?at=2025-01-12T21:30:00Z");
	expect(json_lookup_bool(&res, "fallback") == 1);
	expect_json_str(&res, "fallback_reason", "nothing_scheduled");
	expect_json_str(&res, "slot.ends_at", "2025-01-17T21:00:00Z");
	http_free(&res);
}

/* An entry limited to 2025, so today's conflict check has nothing to see. */
static void
dated(const char *title, const char *day, const char *start, const char *end,
    const char *tz, char id[37])
{
	char	 body[512];

	snprintf(body, sizeof(body), "{\"title\":\"%s\",\"days_of_week\":[\"%s\"],"
	    "\"start_time\":\"%s\",\"end_time\":\"%s\",\"timezone\":\"%s\","
	    "\"first_date\":\"2025-01-01\",\"last_date\":\"2025-12-31\","
	    "\"playlist_id\":\"%s\"}", title, day, start, end, tz, adm() ? common_pl : "");
	if (entry(adm(), body, id) != 201)
		t_fail(__FILE__, __LINE__, "could not create %s", title);
}

static void
test_scheduler_berlin_clock_changes(void)
{
	char		 a[37], b[37], c[37], d[37], e[37], occ[2048];
	struct http_res	 res;

	reset();
	dated("Night", "sunday", "01:30", "03:30", "Europe/Berlin", a);
	dated("Skipped start", "sunday", "02:30", "04:00", "Europe/Berlin", b);
	dated("Inside the gap", "sunday", "02:10", "02:50", "Europe/Berlin", c);
	dated("Repeated hour", "sunday", "02:15", "02:45", "Europe/Berlin", d);
	dated("Before", "sunday", "00:00", "02:30", "Europe/Berlin", e);
	/* spring forward, 2025-03-30: 02:00 CET becomes 03:00 CEST */
	expect(occurrences("2025-03-30", "2025-03-30", "Night", occ, sizeof(occ)) == 1);
	expect(strcmp(occ, "2025-03-30T00:30:00Z 2025-03-30T01:30:00Z\n") == 0);  /* 1 h */
	expect(occurrences("2025-03-30", "2025-03-30", "Skipped start", occ, sizeof(occ)) == 1);
	expect(strcmp(occ, "2025-03-30T01:00:00Z 2025-03-30T02:00:00Z\n") == 0);  /* at 03:00 */
	expect(occurrences("2025-03-30", "2025-03-30", "Inside the gap", occ, sizeof(occ)) == 0);
	/* a slot ending in the gap meets the one starting there: no gap */
	expect(occurrences("2025-03-30", "2025-03-30", "Before", occ, sizeof(occ)) == 1);
	expect(strcmp(occ, "2025-03-29T23:00:00Z 2025-03-30T01:00:00Z\n") == 0);
	/* fall back, 2025-10-26: 03:00 CEST becomes 02:00 CET */
	expect(occurrences("2025-10-26", "2025-10-26", "Night", occ, sizeof(occ)) == 1);
	expect(strcmp(occ, "2025-10-25T23:30:00Z 2025-10-26T02:30:00Z\n") == 0);  /* 3 h */
	expect(occurrences("2025-10-26", "2025-10-26", "Repeated hour", occ, sizeof(occ)) == 1);
	expect(strcmp(occ, "2025-10-26T00:15:00Z 2025-10-26T00:45:00Z\n") == 0);
	/* the wall clock shows 02:20 twice; the slot plays the first time only */
	it_psql("DELETE FROM schedule_entries WHERE id <> '%s'", d);
	res = get("/api/scheduler/current?at=2025-10-26T00:20:00Z");
	expect_json_str(&res, "entry.id", d);
	http_free(&res);
	res = get("/api/scheduler/current?at=2025-10-26T01:20:00Z");
	expect(!json_has(&res, "entry.id"));
	expect_json_str(&res, "fallback_reason", "nothing_scheduled");
	http_free(&res);
	/* an ordinary Sunday: the skipped start at 02:30 CEST */
	dated("Skipped start", "sunday", "02:30", "04:00", "Europe/Berlin", b);
	expect(occurrences("2025-06-01", "2025-06-01", "Skipped start", occ, sizeof(occ)) == 1);
	expect(strcmp(occ, "2025-06-01T00:30:00Z 2025-06-01T02:00:00Z\n") == 0);
	(void)c;
}

static void
test_scheduler_new_york_clock_changes(void)
{
	char	 a[37], b[37], occ[2048];

	reset();
	dated("NY night", "sunday", "01:00", "03:00", "America/New_York", a);
	dated("NY skipped", "sunday", "02:00", "02:30", "America/New_York", b);
	/* 2025-03-09: 02:00 EST becomes 03:00 EDT */
	expect(occurrences("2025-03-09", "2025-03-10", "NY night", occ, sizeof(occ)) == 1);
	expect(strcmp(occ, "2025-03-09T06:00:00Z 2025-03-09T07:00:00Z\n") == 0);
	expect(occurrences("2025-03-09", "2025-03-10", "NY skipped", occ, sizeof(occ)) == 0);
	/* 2025-11-02: 02:00 EDT becomes 01:00 EST */
	expect(occurrences("2025-11-02", "2025-11-03", "NY night", occ, sizeof(occ)) == 1);
	expect(strcmp(occ, "2025-11-02T05:00:00Z 2025-11-02T08:00:00Z\n") == 0);
	expect(occurrences("2025-11-02", "2025-11-03", "NY skipped", occ, sizeof(occ)) == 1);
	expect(strcmp(occ, "2025-11-02T07:00:00Z 2025-11-02T07:30:00Z\n") == 0);
}

static void
test_scheduler_leap_day(void)
{
	char	 body[512], id[37], occ[1024];

	reset();
	/* 2024-02-29 is a Thursday */
	snprintf(body, sizeof(body), "{\"title\":\"Leap\",\"days_of_week\":[\"thursday\"],"
	    "\"start_time\":\"23:00\",\"end_time\":\"01:00\",\"timezone\":\"Asia/Tokyo\","
	    "\"first_date\":\"2024-02-29\",\"last_date\":\"2024-02-29\","
	    "\"playlist_id\":\"%s\"}", common_pl);
	expect(entry(adm(), body, id) == 201);
	expect(occurrences("2024-02-01", "2024-03-31", NULL, occ, sizeof(occ)) == 1);
	expect(strcmp(occ, "2024-02-29T14:00:00Z 2024-02-29T16:00:00Z\n") == 0);
}

static void
test_scheduler_tokyo_against_new_york(void)
{
	char		 tokyo[37], ny[37], body[512];
	struct http_res	 res;

	reset();
	/* Monday 09:00-11:00 in Tokyo is Monday 00:00-02:00 UTC */
	snprintf(body, sizeof(body), "{\"title\":\"Tokyo breakfast\",\"days_of_week\":"
	    "[\"monday\"],\"start_time\":\"09:00\",\"end_time\":\"11:00\","
	    "\"timezone\":\"Asia/Tokyo\",\"playlist_id\":\"%s\"}", common_pl);
	expect(entry(adm(), body, tokyo) == 201);
	/* Sunday 19:30-21:00 in New York overlaps it, in either season */
	snprintf(body, sizeof(body), "{\"title\":\"NY evening\",\"days_of_week\":"
	    "[\"sunday\"],\"start_time\":\"19:30\",\"end_time\":\"21:00\","
	    "\"timezone\":\"America/New_York\",\"playlist_id\":\"%s\"}", common_pl);
	res = http_bearer("POST", "/api/scheduler/schedules", adm()->access, body);
	expect_status(&res, 409);
	expect_json_str(&res, "error.details.conflicts.0.id", tokyo);
	expect(json_str(&res, "error.details.conflicts.0.overlaps.0.starts_at") != NULL);
	http_free(&res);
	expect(strcmp(it_psql("SELECT count(*) FROM schedule_entries"), "1") == 0);
	/* a higher priority settles it */
	snprintf(body, sizeof(body), "{\"title\":\"NY evening\",\"days_of_week\":"
	    "[\"sunday\"],\"start_time\":\"19:30\",\"end_time\":\"21:00\","
	    "\"timezone\":\"America/New_York\",\"priority\":5,\"playlist_id\":\"%s\"}",
	    common_pl);
	expect(entry(adm(), body, ny) == 201);
	res = get("/api/scheduler/conflicts?from=2025-01-01&to=2025-01-31");
	expect_status(&res, 200);
	expect(json_int(&res, "unresolved", -1) == 0);
	expect_json_str(&res, "conflicts.0.winner", ny);
	expect(json_int(&res, "conflicts.0.count", 0) == 4);	/* four Mondays */
	expect_json_str(&res, "conflicts.0.overlaps.0.starts_at", "2025-01-06T00:30:00Z");
	expect_json_str(&res, "conflicts.0.overlaps.0.ends_at", "2025-01-06T02:00:00Z");
	http_free(&res);
	/* Tokyo plays until New York starts, New York then, Tokyo never again */
	res = get("/api/scheduler/current?at=2025-01-06T00:10:00Z");
	expect_json_str(&res, "entry.id", tokyo);
	expect_json_str(&res, "slot.ends_at", "2025-01-06T00:30:00Z");
	expect_json_str(&res, "slot.interrupted_by", ny);
	http_free(&res);
	res = get("/api/scheduler/current?at=2025-01-06T00:30:00Z");
	expect_json_str(&res, "entry.id", ny);
	expect_json_str(&res, "slot.local_starts_at", "2025-01-05T19:30:00-05:00");
	http_free(&res);
	/* the same conflict, edited in: 409 and nothing changed */
	snprintf(body, sizeof(body), "/api/scheduler/schedules/%s", ny);
	expect(it_status("PUT", body, adm()->access, "{\"priority\":0}") == 409);
	expect(strcmp(it_psql("SELECT priority FROM schedule_entries WHERE id = '%s'", ny),
	    "5") == 0);
}

/* ---- what plays ------------------------------------------------------- */

static void
test_scheduler_current_track_offsets_and_boundaries(void)
{
	char		 pl[37], t[4][37], id[37], body[512], path[128];
	struct http_res	 res;

	reset();
	expect(playlist_of(adm(), "Rotation", 3, pl, t) == 0);	/* 100 + 101 + 102 s */
	snprintf(body, sizeof(body), "{\"title\":\"Rotation\",\"playlist_id\":\"%s\","
	    "\"days_of_week\":[\"monday\"],\"start_time\":\"10:00\",\"end_time\":\"12:00\","
	    "\"timezone\":\"UTC\"}", pl);
	expect(entry(adm(), body, id) == 201);
	/* 2025-01-06 is a Monday: exactly at the start */
	res = get("/api/scheduler/current?at=2025-01-06T10:00:00Z");
	expect_json_str(&res, "track.id", t[0]);
	expect(json_int(&res, "offset_ms", -1) == 0);
	expect_json_str(&res, "next.id", t[1]);
	expect_json_str(&res, "track_ends_at", "2025-01-06T10:01:40Z");
	expect(json_has(&res, "track.liked"));
	http_free(&res);
	/* exactly when the first track ends the second begins */
	res = get("/api/scheduler/current?at=2025-01-06T10:01:40Z");
	expect_json_str(&res, "track.id", t[1]);
	expect(json_int(&res, "offset_ms", -1) == 0);
	http_free(&res);
	/* a player joining mid-track starts at the right second */
	res = get("/api/scheduler/current?at=2025-01-06T10:02:30.500Z");
	expect_json_str(&res, "track.id", t[1]);
	expect(json_int(&res, "offset_ms", -1) == 50500);
	http_free(&res);
	/* after 303 s the playlist loops */
	res = get("/api/scheduler/current?at=2025-01-06T10:05:04Z");
	expect_json_str(&res, "track.id", t[0]);
	expect(json_int(&res, "offset_ms", -1) == 1000);
	expect(json_int(&res, "rotation.loop", -1) == 1);
	expect_json_str(&res, "next.id", t[1]);
	http_free(&res);
	res = get("/api/scheduler/current?at=2025-01-06T10:04:00Z");
	expect_json_str(&res, "next.id", t[0]);		/* after the last, the first */
	http_free(&res);
	/* the end is not part of the slot */
	res = get("/api/scheduler/current?at=2025-01-06T12:00:00Z");
	expect(json_lookup_bool(&res, "fallback") == 1);
	http_free(&res);
	res = get("/api/scheduler/current?at=2025-01-06T11:59:59.999Z");
	expect_json_str(&res, "entry.id", id);
	http_free(&res);
	/* the rotation follows the playlist as it is now */
	snprintf(path, sizeof(path), "/api/playlists/%s/tracks/%s", pl, t[0]);
	expect(it_status("DELETE", path, adm()->access, NULL) == 200);
	res = get("/api/scheduler/current?at=2025-01-06T10:00:00Z");
	expect_json_str(&res, "track.id", t[1]);
	expect(json_int(&res, "rotation.tracks", 0) == 2);
	http_free(&res);
	/* shuffled: a fixed order, every track once per loop */
	snprintf(path, sizeof(path), "/api/scheduler/schedules/%s", id);
	expect(it_status("PUT", path, adm()->access, "{\"shuffle_seed\":42}") == 200);
	{
		char	 first[37], again[37], second[37];

		res = get("/api/scheduler/current?at=2025-01-06T10:00:00Z");
		expect(json_lookup_bool(&res, "rotation.shuffle") == 1);
		snprintf(first, sizeof(first), "%s", json_str(&res, "track.id"));
		snprintf(second, sizeof(second), "%s", json_str(&res, "next.id"));
		http_free(&res);
		expect(strcmp(first, second) != 0);
		res = get("/api/scheduler/current?at=2025-01-13T10:00:00Z");
		snprintf(again, sizeof(again), "%s", json_str(&res, "track.id"));
		http_free(&res);
		expect(strcmp(first, again) == 0);
	}
}

static void
test_scheduler_fallback_and_the_cache_follows_changes(void)
{
	char		 fb[37], pl[37], t[4][37], t2[4][37], body[512], id[37];
	struct http_res	 res;

	reset();
	res = get("/api/scheduler/current");
	expect_status(&res, 200);
	expect(json_lookup_bool(&res, "fallback") == 1);
	expect(!json_has(&res, "track.id"));		/* no fallback set: silence, said so */
	http_free(&res);
	expect(playlist_of(adm(), "Fallback", 2, fb, t) == 0);
	it_psql("UPDATE system_settings SET value = to_jsonb('%s'::text)"
	    " WHERE key = 'fallback_playlist_id'", fb);
	/* the setting is announced: the cached answer goes at once */
	sleep_ms(300);
	res = get("/api/scheduler/current");
	expect(json_lookup_bool(&res, "fallback") == 1);
	expect_json_str(&res, "fallback_reason", "nothing_scheduled");
	expect_json_str(&res, "playlist.id", fb);
	expect(json_has(&res, "track.id"));
	expect(json_int(&res, "offset_ms", -1) >= 0);
	http_free(&res);
	/* twice from the cache: the same track, the offset moving on */
	res = get("/api/scheduler/current");
	expect_json_str(&res, "playlist.id", fb);
	http_free(&res);
	/* an entry covering now, every day all day, takes over at once */
	expect(playlist_of(adm(), "All day", 2, pl, t2) == 0);
	snprintf(body, sizeof(body), "{\"title\":\"All day\",\"playlist_id\":\"%s\","
	    "\"days_of_week\":[\"mon\",\"tue\",\"wed\",\"thu\",\"fri\",\"sat\",\"sun\"],"
	    "\"start_time\":\"00:00\",\"end_time\":\"00:00\",\"timezone\":\"UTC\"}", pl);
	expect(entry(adm(), body, id) == 201);
	res = get("/api/scheduler/current");
	expect(json_lookup_bool(&res, "fallback") == 0);
	expect_json_str(&res, "entry.id", id);
	expect_json_str(&res, "playlist.id", pl);
	http_free(&res);
	/* its playlist emptied: the fallback plays, and says why */
	it_psql("DELETE FROM playlist_tracks WHERE playlist_id = '%s'", pl);
	sleep_ms(300);
	res = get("/api/scheduler/current");
	expect(json_lookup_bool(&res, "fallback") == 1);
	expect_json_str(&res, "fallback_reason", "playlist_empty");
	expect_json_str(&res, "playlist.id", fb);
	expect_json_str(&res, "entry.id", id);
	http_free(&res);
	reset();
}

/* ---- iCalendar ------------------------------------------------------- */

static void
test_scheduler_ics_read_by_icaljs_matches_upcoming(void)
{
	char		 body[512], id[37], ics[256], up[256];
	struct http_res	 res;
	FILE		*f;
	static const char *const entries[][5] = {
		{ "Weekday mornings", "[\"mon\",\"tue\",\"wed\",\"thu\",\"fri\"]", "07:00", "11:00", "Europe/Berlin" },
		{ "Friday DJ set, \\\"late\\\"; loud", "[\"friday\"]", "22:00", "02:00", "Europe/Berlin" },
		{ "Skipped hour", "[\"sunday\"]", "02:30", "04:00", "Europe/Berlin" },
		{ "NY night", "[\"sunday\"]", "01:00", "03:00", "America/New_York" },
		{ "Tokyo", "[\"saturday\"]", "09:00", "24:00", "Asia/Tokyo" },
		{ "Kathmandu", "[\"wednesday\"]", "12:15", "13:45", "Asia/Kathmandu" },
	};
	size_t		 i;

	reset();
	for (i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
		snprintf(body, sizeof(body), "{\"title\":\"%s\",\"days_of_week\":%s,"
		    "\"start_time\":\"%s\",\"end_time\":\"%s\",\"timezone\":\"%s\","
		    "\"priority\":%zu,\"playlist_id\":\"%s\"}", entries[i][0], entries[i][1],
		    entries[i][2], entries[i][3], entries[i][4], i, common_pl);
		expect(entry(adm(), body, id) == 201);
	}
	res = get("/api/scheduler/calendar.ics");
	expect_status(&res, 200);
	expect(strstr(http_header(&res, "Content-Type"), "text/calendar") != NULL);
	expect(strstr(res.body, "BEGIN:VCALENDAR\r\n") == res.body);
	expect(strstr(res.body, "TZID:Europe/Berlin\r\n") != NULL);
	snprintf(ics, sizeof(ics), "%s/sched.ics", stack_dir);
	expect((f = fopen(ics, "w")) != NULL);
	fwrite(res.body, 1, res.body_len, f);
	fclose(f);
	http_free(&res);
	/* a window with both springs forward of next year and some weeks */
	snprintf(body, sizeof(body), "%s", sh_out("date -u -d 'next year' +%%Y"));
	res = get("/api/scheduler/upcoming?from=%s-03-01&to=%s-04-15", body, body);
	expect_status(&res, 200);
	snprintf(up, sizeof(up), "%s/sched-upcoming.json", stack_dir);
	expect((f = fopen(up, "w")) != NULL);
	fwrite(res.body, 1, res.body_len, f);
	fclose(f);
	http_free(&res);
	if (sh("cd %s/tests/ical && node check.mjs %s %s >&2", top_dir, ics, up) != 0)
		t_fail(__FILE__, __LINE__, "ical.js disagrees with upcoming (see above)");
}

const struct it_test scheduler_tests[] = {
#define T(f) { #f, f }
	T(test_scheduler_entry_create_read_change_delete),
	T(test_scheduler_bad_input_is_refused_clearly),
	T(test_scheduler_permissions_and_private_playlists),
	T(test_scheduler_cross_midnight_and_several_days),
	T(test_scheduler_berlin_clock_changes),
	T(test_scheduler_new_york_clock_changes),
	T(test_scheduler_leap_day),
	T(test_scheduler_tokyo_against_new_york),
	T(test_scheduler_current_track_offsets_and_boundaries),
	T(test_scheduler_fallback_and_the_cache_follows_changes),
	T(test_scheduler_ics_read_by_icaljs_matches_upcoming),
#undef T
};
const size_t scheduler_ntests = sizeof(scheduler_tests) / sizeof(scheduler_tests[0]);

void
scheduler_tests_init(const char *dir, const char *top)
{
	stack_dir = dir;
	top_dir = top;
}
