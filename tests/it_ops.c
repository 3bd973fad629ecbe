/*
 * tests/it_ops.c: what an operator watches, through nginx: the monitoring
 * figures are real (plays and searches made here show up, requests and
 * errors are counted across the pool), storage sums what is on disk and
 * per listener, the status judges memory, and only staff may look.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"

static const char	*stack_dir, *top_dir;

static void
test_ops_monitoring_shows_real_figures_to_staff_only(void)
{
	struct it_session	 admin, u;
	struct http_res		 res;
	long long		 plays, searches, total, errors;
	char			 tid[37], body[128];
	int			 i;

	expect(it_new_admin("monadm", &admin) == 0);
	expect(it_new_user("monusr", &u) == 0);
	expect(it_status("GET", "/api/system/monitoring", NULL, NULL) == 401);
	expect(it_status("GET", "/api/system/monitoring", u.access, NULL) == 403);

	res = http_bearer("GET", "/api/system/monitoring", admin.access, NULL);
	expect_status(&res, 200);
	expect(json_int(&res, "cpu.cores", 0) >= 1);
	expect(json_int(&res, "memory.total_bytes", 0) > 0);
	expect(json_int(&res, "disk.total_bytes", 0) > 0);
	expect(json_int(&res, "pool.alive", 0) == 5);	/* 4 for the API, 1 search */
	expect(json_int(&res, "pool.active_requests", 0) >= 1);	/* this one */
	plays = json_int(&res, "activity.tracks_played_today", -1);
	searches = json_int(&res, "activity.searches_last_minute", -1);
	total = json_int(&res, "requests.total", -1);
	errors = json_int(&res, "requests.errors_4xx", -1);
	expect(plays >= 0 && searches >= 0 && total > 0 && errors >= 0);
	http_free(&res);

	/* a play, two searches and a 404 later */
	snprintf(tid, sizeof(tid), "%s", it_psql("INSERT INTO tracks (title, artist,"
	    " duration, source) VALUES ('Monitored', 'Ops', 200, 'catalog') RETURNING id"));
	snprintf(body, sizeof(body), "/api/music/tracks/%s/play", tid);
	i = (int)it_status("POST", body, u.access, "{\"duration_played\":30}");
	expect(i == 200 || i == 201);
	for (i = 0; i < 2; i++)
		expect(it_status("GET", "/api/music/search?q=monitored", u.access, NULL) == 200);
	expect(it_status("GET", "/api/no/such/thing", u.access, NULL) == 404);
	res = http_bearer("GET", "/api/system/monitoring", admin.access, NULL);
	expect(json_int(&res, "activity.tracks_played_today", -1) == plays + 1);
	expect(json_int(&res, "activity.searches_last_minute", -1) >= searches + 2);
	expect(json_int(&res, "requests.total", -1) >= total + 4);
	expect(json_int(&res, "requests.errors_4xx", -1) >= errors + 1);
	expect(json_has(&res, "requests.average_response_ms"));
	expect(json_has(&res, "requests.p99_ms_at_most"));
	http_free(&res);
}

static void
test_ops_storage_sums_the_disk_and_each_listener(void)
{
	struct it_session	 admin, u;
	struct http_res		 res;
	char			 path[4096];
	long long		 before;
	FILE			*f;

	expect(it_new_admin("stoadm", &admin) == 0);
	expect(it_new_user("stousr", &u) == 0);
	expect(it_status("GET", "/api/system/storage", u.access, NULL) == 403);
	expect(it_status("GET", "/api/system/storage?limit=0", admin.access, NULL) == 400);
	res = http_bearer("GET", "/api/system/storage", admin.access, NULL);
	expect_status(&res, 200);
	before = json_int(&res, "storage_dir.by_kind.images.bytes", -1);
	expect(before >= 0);
	expect(json_int(&res, "storage_dir.free_bytes", 0) > 0);
	http_free(&res);
	/* 10,000 bytes more under images/, and a listener's usage */
	snprintf(path, sizeof(path), "%s/storage/images/ops-test.bin", stack_dir);
	expect((f = fopen(path, "w")) != NULL);
	for (int i = 0; i < 10000; i++)
		fputc('x', f);
	fclose(f);
	it_psql("UPDATE users SET storage_used_bytes = 123456 WHERE id = '%s'", u.id);
	res = http_bearer("GET", "/api/system/storage?limit=1000", admin.access, NULL);
	expect(json_int(&res, "storage_dir.by_kind.images.bytes", -1) == before + 10000);
	expect(strstr(res.body, u.id) != NULL);
	expect(strstr(res.body, "123456") != NULL);
	http_free(&res);
	unlink(path);
}

static void
test_ops_status_is_503_past_the_disk_threshold(void)
{
	struct http_res	 res;

	/* a threshold no disk here meets: the pool reports storage down */
	expect(sh("%s/tools/stack pool-stop %s && DJAMMS_STORAGE_MIN_FREE_MB=1000000000 "
	    "%s/tools/stack pool-start %s", top_dir, stack_dir, top_dir, stack_dir) == 0);
	sleep_ms(300);
	res = http_get("/api/system/status");
	expect_status(&res, 503);
	expect_json_str(&res, "checks.storage.status", "down");
	expect_json_str(&res, "checks.storage.problem", "low on free space");
	http_free(&res);
	expect(it_status("GET", "/api/health", NULL, NULL) == 200);	/* still alive */
	expect(sh("%s/tools/stack pool-stop %s && %s/tools/stack pool-start %s", top_dir,
	    stack_dir, top_dir, stack_dir) == 0);
	sleep_ms(300);
	expect(it_status("GET", "/api/system/status", NULL, NULL) == 200);
}

static void
test_ops_status_judges_memory(void)
{
	struct http_res	 res = http_get("/api/system/status");

	expect_status(&res, 200);
	expect_json_str(&res, "checks.memory.status", "ok");
	expect(json_int(&res, "checks.memory.available_bytes", 0) > 0);
	http_free(&res);
}

static void
test_ops_devices_report_in_and_staff_see_them(void)
{
	struct it_session	 admin, u, v;
	struct http_res		 res;
	char			 tid[37], body[512], first[37];

	expect(it_new_admin("devadm", &admin) == 0);
	expect(it_new_user("devusr", &u) == 0);
	expect(it_new_user("devusr2", &v) == 0);
	snprintf(tid, sizeof(tid), "%s", it_psql("INSERT INTO tracks (title, artist,"
	    " duration, source) VALUES ('On the jukebox', 'Ops', 200, 'catalog') RETURNING id"));
	snprintf(body, sizeof(body), "{\"device_id\":\"bar-jukebox-01\",\"name\":\"Bar jukebox\","
	    "\"kind\":\"jukebox\",\"state\":\"playing\",\"track_id\":\"%s\","
	    "\"position_ms\":61000,\"volume\":70}", tid);
	res = http_bearer("POST", "/api/system/devices/heartbeat", u.access, body);
	expect_status(&res, 200);
	expect(json_int(&res, "interval_s", 0) == 30);
	expect(json_lookup_bool(&res, "device.online") == 1);
	expect_json_str(&res, "device.track.title", "On the jukebox");
	snprintf(first, sizeof(first), "%s", json_str(&res, "device.id"));
	http_free(&res);
	/* the same device again: one row, counted */
	res = http_bearer("POST", "/api/system/devices/heartbeat", u.access,
	    "{\"device_id\":\"bar-jukebox-01\",\"name\":\"Bar jukebox\",\"state\":\"paused\"}");
	expect_status(&res, 200);
	expect_json_str(&res, "device.id", first);
	expect(json_int(&res, "device.heartbeats", 0) == 2);
	expect_json_str(&res, "device.kind", "jukebox");	/* kept */
	expect_json_str(&res, "device.state", "paused");
	expect(json_int(&res, "device.volume", 0) == 70);	/* kept */
	http_free(&res);
	/* another account's device of the same name is its own */
	res = http_bearer("POST", "/api/system/devices/heartbeat", v.access,
	    "{\"device_id\":\"bar-jukebox-01\",\"name\":\"Tab\",\"kind\":\"browser\"}");
	expect_status(&res, 200);
	expect(strcmp(json_str(&res, "device.id"), first) != 0);
	http_free(&res);
	/* bad input */
	expect(it_status("POST", "/api/system/devices/heartbeat", u.access,
	    "{\"device_id\":\"short\",\"name\":\"x\"}") == 422);
	expect(it_status("POST", "/api/system/devices/heartbeat", u.access,
	    "{\"device_id\":\"bar-jukebox-01\",\"name\":\"x\",\"kind\":\"toaster\"}") == 422);
	expect(it_status("POST", "/api/system/devices/heartbeat", u.access,
	    "{\"device_id\":\"bar-jukebox-01\",\"name\":\"x\",\"track_id\":"
	    "\"00000000-0000-4000-8000-000000000000\"}") == 422);
	expect(it_status("POST", "/api/system/devices/heartbeat", u.access,
	    "{\"device_id\":\"bar-jukebox-01\",\"name\":\"x\",\"volume\":101}") == 422);
	expect(it_status("POST", "/api/system/devices/heartbeat", u.access,
	    "{\"device_id\":\"bar-jukebox-01\",\"name\":\"x\",\"admin\":true}") == 400);
	expect(it_status("POST", "/api/system/devices/heartbeat", NULL,
	    "{\"device_id\":\"bar-jukebox-01\",\"name\":\"x\"}") == 401);
	/* who sees them */
	expect(it_status("GET", "/api/system/devices", u.access, NULL) == 403);
	res = http_bearer("GET", "/api/system/devices?online=1&limit=200", admin.access, NULL);
	expect_status(&res, 200);
	expect(strstr(res.body, first) != NULL);
	expect(strstr(res.body, u.name) != NULL);
	http_free(&res);
	/* silent for ten minutes: offline */
	it_psql("UPDATE player_devices SET last_seen_at = now() - interval '10 minutes'"
	    " WHERE id = '%s'", first);
	res = http_bearer("GET", "/api/system/devices?online=1&limit=200", admin.access, NULL);
	expect(strstr(res.body, first) == NULL);
	http_free(&res);
	res = http_bearer("GET", "/api/system/devices?online=0&limit=200", admin.access, NULL);
	expect(strstr(res.body, first) != NULL);
	http_free(&res);
	expect(it_status("GET", "/api/system/devices?online=maybe", admin.access, NULL) == 400);
}

/* ---- the log ------------------------------------------------------------ */

static void
test_ops_logs_filter_and_page_for_admins_only(void)
{
	struct it_session	 admin, u;
	struct http_res		 res;
	char			 rid[80], path[256], cursor[80], last[40];
	int			 i;

	expect(it_new_admin("logadm", &admin) == 0);
	expect(it_new_user("logusr", &u) == 0);
	res = http_bearer("GET", "/api/auth/user", u.access, NULL);
	snprintf(rid, sizeof(rid), "%s", http_header(&res, "X-Request-Id"));
	http_free(&res);
	for (i = 0; i < 12; i++)
		expect(it_status("GET", "/api/health", NULL, NULL) == 200);
	expect(it_status("GET", "/api/system/logs", u.access, NULL) == 403);
	expect(it_status("GET", "/api/system/logs?level=loud", admin.access, NULL) == 400);
	expect(it_status("GET", "/api/system/logs?cursor=x", admin.access, NULL) == 400);
	expect(it_status("GET", "/api/system/logs?user=42", admin.access, NULL) == 400);

	/* one request by its id */
	snprintf(path, sizeof(path), "/api/system/logs?request_id=%s", rid);
	res = http_bearer("GET", path, admin.access, NULL);
	expect_status(&res, 200);
	expect(json_int(&res, "count", 0) == 1);
	expect_json_str(&res, "entries.0.id", rid);
	expect_json_str(&res, "entries.0.route", "/api/auth/user");
	expect_json_str(&res, "entries.0.user", u.id);
	http_free(&res);
	/* by user */
	snprintf(path, sizeof(path), "/api/system/logs?user=%s&limit=50", u.id);
	res = http_bearer("GET", path, admin.access, NULL);
	expect(json_int(&res, "count", 0) >= 1);
	expect(strstr(res.body, admin.id) == NULL);
	http_free(&res);
	/* pages of five health requests, newest first, then older */
	res = http_bearer("GET", "/api/system/logs?route=/api/health&limit=5", admin.access,
	    NULL);
	expect(json_int(&res, "count", 0) == 5);
	expect_json_str(&res, "entries.4.route", "/api/health");
	expect(json_str(&res, "next_cursor") != NULL);
	snprintf(cursor, sizeof(cursor), "%s", json_str(&res, "next_cursor"));
	snprintf(last, sizeof(last), "%s", json_str(&res, "entries.4.time"));
	expect(strcmp(json_str(&res, "entries.0.time"), last) >= 0);
	http_free(&res);
	snprintf(path, sizeof(path), "/api/system/logs?route=/api/health&limit=5&cursor=%s",
	    cursor);
	res = http_bearer("GET", path, admin.access, NULL);
	expect(json_int(&res, "count", 0) == 5);
	expect(strcmp(json_str(&res, "entries.0.time"), last) <= 0);
	http_free(&res);
	/* levels: warn and above only */
	res = http_bearer("GET", "/api/system/logs?level=warn&limit=1000", admin.access, NULL);
	expect_status(&res, 200);
	expect(strstr(res.body, "\"level\":\"info\"") == NULL);
	http_free(&res);
}

static void
test_ops_logs_download_as_gzip(void)
{
	struct it_session	 admin;
	struct http_res		 res;
	char			 path[512];
	FILE			*f;

	expect(it_new_admin("logdl", &admin) == 0);
	expect(it_status("GET", "/api/health", NULL, NULL) == 200);
	res = http_bearer("POST", "/api/system/logs/download", admin.access,
	    "{\"route\":\"/api/health\",\"status\":200}");
	expect_status(&res, 200);
	expect(strcmp(http_header(&res, "Content-Type"), "application/gzip") == 0);
	expect(strstr(http_header(&res, "Content-Disposition"), ".jsonl.gz") != NULL);
	expect(atol(http_header(&res, "X-Log-Lines")) >= 1);
	snprintf(path, sizeof(path), "%s/log-download.gz", stack_dir);
	expect((f = fopen(path, "w")) != NULL);
	fwrite(res.body, 1, res.body_len, f);
	fclose(f);
	http_free(&res);
	/* every line is a health request with 200, oldest first */
	expect(sh("gzip -dc %s | grep -v '\"route\":\"/api/health\".*\"status\":200' "
	    "| grep -q .", path) != 0);
	expect(atol(sh_out("gzip -dc %s | wc -l", path)) >= 1);
	/* oldest first (lines of different processes may swap by microseconds) */
	expect(sh("gzip -dc %s | sed -n 's/.*\"time\":\"\\([^\"]*\\)\".*/\\1/p' > %s.t &&"
	    " test \"$(head -n 1 %s.t)\" \\< \"$(tail -n 1 %s.t)\"", path, path, path,
	    path) == 0);
	expect(it_status("POST", "/api/system/logs/download", admin.access,
	    "{\"level\":7}") == 422);
}

static void
test_ops_logs_rotate_and_stay_readable(void)
{
	struct it_session	 admin;
	struct http_res		 res;
	char			 first[80], path[1200], pad[701];
	int			 i;

	expect(it_new_admin("logrot", &admin) == 0);
	/* a pool that rotates at 1 MB and keeps two old files */
	expect(sh("%s/tools/stack pool-stop %s && DJAMMS_LOG_MAX_MB=1 DJAMMS_LOG_KEEP=2 "
	    "%s/tools/stack pool-start %s", top_dir, stack_dir, top_dir, stack_dir) == 0);
	sleep_ms(300);
	res = http_get("/api/health");
	snprintf(first, sizeof(first), "%s", http_header(&res, "X-Request-Id"));
	http_free(&res);
	memset(pad, 'p', 700);
	pad[700] = '\0';
	/* about 1.6 MB of log: 404s with long paths */
	for (i = 0; i < 1800; i++) {
		snprintf(path, sizeof(path), "/api/rotate/%d/%s", i, pad);
		res = http_get(path);
		http_free(&res);
	}
	sleep_ms(1500);
	expect(sh("test -s %s/log/djamms.log.1", stack_dir) == 0);
	expect(sh("test -e %s/log/djamms.log.3", stack_dir) != 0);
	/* the first request, now in a rotated file, is still found */
	snprintf(path, sizeof(path), "/api/system/logs?request_id=%s", first);
	res = http_bearer("GET", path, admin.access, NULL);
	expect(json_int(&res, "count", 0) == 1);
	expect(json_int(&res, "files", 0) >= 2);
	http_free(&res);
	/* and new lines go to the new file */
	expect(it_status("GET", "/api/health", NULL, NULL) == 200);
	sleep_ms(100);
	expect(atol(sh_out("grep -c '\"route\":\"/api/health\"' %s/log/djamms.log",
	    stack_dir)) >= 1);
	expect(sh("%s/tools/stack pool-stop %s && %s/tools/stack pool-start %s", top_dir,
	    stack_dir, top_dir, stack_dir) == 0);
	sleep_ms(300);
}

const struct it_test ops_tests[] = {
#define T(f) { #f, f }
	T(test_ops_monitoring_shows_real_figures_to_staff_only),
	T(test_ops_storage_sums_the_disk_and_each_listener),
	T(test_ops_status_judges_memory),
	T(test_ops_status_is_503_past_the_disk_threshold),
	T(test_ops_devices_report_in_and_staff_see_them),
	T(test_ops_logs_filter_and_page_for_admins_only),
	T(test_ops_logs_download_as_gzip),
	T(test_ops_logs_rotate_and_stay_readable),
#undef T
};
const size_t ops_ntests = sizeof(ops_tests) / sizeof(ops_tests[0]);

void
ops_tests_init(const char *dir, const char *top)
{
	top_dir = top;
	stack_dir = dir;
}
