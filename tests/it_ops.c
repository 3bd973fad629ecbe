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

static const char	*stack_dir;

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
	expect(json_int(&res, "pool.alive", 0) == 4);
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
test_ops_status_judges_memory(void)
{
	struct http_res	 res = http_get("/api/system/status");

	expect_status(&res, 200);
	expect_json_str(&res, "checks.memory.status", "ok");
	expect(json_int(&res, "checks.memory.available_bytes", 0) > 0);
	http_free(&res);
}

const struct it_test ops_tests[] = {
#define T(f) { #f, f }
	T(test_ops_monitoring_shows_real_figures_to_staff_only),
	T(test_ops_storage_sums_the_disk_and_each_listener),
	T(test_ops_status_judges_memory),
#undef T
};
const size_t ops_ntests = sizeof(ops_tests) / sizeof(ops_tests[0]);

void
ops_tests_init(const char *dir, const char *top)
{
	(void)top;
	stack_dir = dir;
}
