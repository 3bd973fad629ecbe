/*
 * tests/it_jobs.c: the background job runner against the real Redis and
 * Postgres of the stack: a job queued through the API runs and is counted;
 * a failing job is retried with back-off, then kept as dead with its error
 * until an admin retries or drops it; the jobs a crashed runner held are
 * recovered; a password reset reaches a (fake) SMTP server on loopback.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "http.h"

static const char	*stack_dir, *top_dir;
static int		 smtp_port;
static struct it_session admin;
static int		 have_admin, runner_up;

static const struct it_session *
adm(void)
{
	if (!have_admin && it_new_admin("jobsadm", &admin) == 0)
		have_admin = 1;
	return &admin;
}

/*
 * The fake SMTP server and the runner (2 processes, fast back-off); the
 * runner told of the server unless without_smtp.
 */
static int
start_runner_ex(int without_smtp)
{
	char	 smtp[64] = "";

	if (runner_up)
		return 0;
	/*
	 * The media jobs the other modules' uploads queued would keep the
	 * bulk runner busy for a minute (more under ASan): not this module's.
	 */
	sh("redis-cli -s %s/run/redis.sock DEL jobs:queue:bulk >/dev/null", stack_dir);
	smtp_port = 20000 + (int)(getpid() % 20000);
	if (sh("rm -rf %s/smtp && (python3 %s/tests/fakes/smtp.py %d %s/smtp "
	    ">%s/log/smtp.log 2>&1 & echo $! > %s/run/smtp.pid)", stack_dir, top_dir,
	    smtp_port, stack_dir, stack_dir, stack_dir) != 0)
		return -1;
	sleep_ms(300);
	/* empty is unset (config.c) */
	if (!without_smtp)
		snprintf(smtp, sizeof(smtp), "smtp://127.0.0.1:%d", smtp_port);
	/*
	 * Sanitizer reports of the runner (an ASan build) go where run-all
	 * looks for the pool's; a plain build ignores the variables.
	 */
	if (sh("ASAN_OPTIONS=log_path=%s/asan/report:detect_leaks=1 "
	    "UBSAN_OPTIONS=log_path=%s/asan/report:print_stacktrace=1 "
	    "DJAMMS_SMTP_URL=%s DJAMMS_JOBS_BACKOFF_MS=100 "
	    "DJAMMS_JOBS_POLL_MS=50 DJAMMS_JOBS_HEARTBEAT_S=3 DJAMMS_MAIL_MAX_ATTEMPTS=3 "
	    "STACK_JOBS_ARGS='--workers 2' %s/tools/stack "
	    "jobs-start %s", stack_dir, stack_dir, smtp, top_dir, stack_dir) != 0)
		return -1;
	runner_up = 1;
	sleep_ms(300);
	return 0;
}

static int
start_runner(void)
{
	return start_runner_ex(0);
}

static void
stop_runner(void)
{
	sh("%s/tools/stack jobs-stop %s", top_dir, stack_dir);
	sh("test ! -f %s/run/smtp.pid || kill $(cat %s/run/smtp.pid) 2>/dev/null",
	    stack_dir, stack_dir);
	runner_up = 0;
}

/* counts[key] of GET /api/system/jobs, or -1. */
static long long
job_count(const char *key)
{
	char		 path[128];
	struct http_res	 res = http_bearer("GET", "/api/system/jobs", adm()->access, NULL);
	long long	 n;

	snprintf(path, sizeof(path), "counts.%s", key);
	n = res.status == 200 ? json_int(&res, path, 0) : -1;
	http_free(&res);
	return n;
}

/* Wait up to ms for counts[key] to reach want. */
static int
wait_count(const char *key, long long want, long ms)
{
	long	 t;

	for (t = 0; t < ms; t += 100) {
		if (job_count(key) >= want)
			return 1;
		sleep_ms(100);
	}
	return 0;
}

static const char *
redis(const char *cmd)
{
	return sh_out("redis-cli -s %s/run/redis.sock %s", stack_dir, cmd);
}

static void
test_jobs_queued_through_the_api_run_and_are_counted(void)
{
	struct it_session	 u;
	struct http_res		 res;
	long long		 before;

	expect(start_runner() == 0);
	expect(it_new_user("jobsu", &u) == 0);
	expect(it_status("GET", "/api/system/jobs", u.access, NULL) == 403);
	expect(it_status("POST", "/api/system/jobs", u.access, "{\"type\":\"cleanup\"}") == 403);
	expect(it_status("POST", "/api/system/jobs", adm()->access, "{\"type\":\"mine\"}") == 422);
	expect(it_status("POST", "/api/system/jobs", adm()->access, "{}") == 422);
	/* something for cleanup to remove */
	it_psql("INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES"
	    " ('expired-jti-0123456789', '%s', now() - interval '1 hour')", u.id);
	before = job_count("done:cleanup");
	res = http_bearer("POST", "/api/system/jobs", adm()->access, "{\"type\":\"cleanup\"}");
	expect_status(&res, 202);
	expect_json_str(&res, "status", "queued");
	http_free(&res);
	expect(wait_count("done:cleanup", before + 1, 5000));
	expect(strcmp(it_psql("SELECT count(*) FROM revoked_tokens"
	    " WHERE jti = 'expired-jti-0123456789'"), "0") == 0);
	res = http_bearer("GET", "/api/system/jobs", adm()->access, NULL);
	expect_status(&res, 200);
	expect(json_int(&res, "queued", -1) >= 0);
	expect(json_array(&res, "runners") != NULL &&
	    json_object_array_length(json_array(&res, "runners")) >= 2);	/* two processes */
	http_free(&res);
	/* the status sees the runners */
	res = http_get("/api/system/status");
	expect_json_str(&res, "checks.jobs.status", "ok");
	expect(json_int(&res, "checks.jobs.runners", 0) >= 2);
	http_free(&res);
	/* popularity */
	before = job_count("done:popularity");
	expect(it_status("POST", "/api/system/jobs", adm()->access,
	    "{\"type\":\"popularity\"}") == 202);
	expect(wait_count("done:popularity", before + 1, 5000));
}

static void
test_jobs_failures_retry_with_backoff_then_die_until_an_admin_acts(void)
{
	struct http_res	 res;
	char		 id[37], path[160];
	long		 t;
	int		 found = 0;

	expect(start_runner() == 0);
	res = http_bearer("POST", "/api/system/jobs", adm()->access,
	    "{\"type\":\"fail\",\"max_attempts\":3}");
	expect_status(&res, 202);
	snprintf(id, sizeof(id), "%s", json_str(&res, "id"));
	http_free(&res);
	/* three attempts (100 ms, then 200 ms apart), then dead with its error */
	for (t = 0; t < 8000 && !found; t += 200) {
		sleep_ms(200);
		res = http_bearer("GET", "/api/system/jobs", adm()->access, NULL);
		if (json_str(&res, "dead.0.id") && strcmp(json_str(&res, "dead.0.id"), id) == 0) {
			found = 1;
			expect(json_int(&res, "dead.0.attempts", 0) == 3);
			expect_json_str(&res, "dead.0.last_error", "failing on purpose");
		}
		http_free(&res);
	}
	expect(found);
	expect(job_count("retried:fail") >= 2);
	/* retried by an admin: queued again, and dead again after three more */
	snprintf(path, sizeof(path), "/api/system/jobs/dead/%s/retry", id);
	expect(it_status("POST", path, adm()->access, NULL) == 202);
	expect(wait_count("dead:fail", 2, 8000));
	/* dropped */
	snprintf(path, sizeof(path), "/api/system/jobs/dead/%s", id);
	expect(it_status("DELETE", path, adm()->access, NULL) == 204);
	expect(it_status("DELETE", path, adm()->access, NULL) == 404);
	expect(it_status("DELETE", "/api/system/jobs/dead/nope", adm()->access, NULL) == 400);
}

static void
test_jobs_of_a_crashed_runner_are_recovered(void)
{
	long long	 before;
	char		 cmd[512];

	expect(start_runner() == 0);
	before = job_count("done:cleanup");
	/* a runner that died holding a job: its list, no heartbeat */
	snprintf(cmd, sizeof(cmd), "LPUSH jobs:processing:ghost-1-0 "
	    "'{\"id\":\"6f1c1e2a-5b7d-4c3e-9a8b-0c1d2e3f4a5b\",\"type\":\"cleanup\","
	    "\"args\":{},\"attempts\":0,\"max_attempts\":3}'");
	expect(atol(redis(cmd)) == 1);
	expect(wait_count("done:cleanup", before + 1, 15000));
	expect(strcmp(redis("EXISTS jobs:processing:ghost-1-0"), "0") == 0);
}

static void
test_jobs_a_runner_killed_mid_job_loses_nothing_and_does_it_once(void)
{
	struct http_res	 res;
	char		 runner[128];
	const char	*pid;
	long long	 before = job_count("done:sleep");
	long		 t;

	expect(start_runner() == 0);
	expect(it_status("POST", "/api/system/jobs", adm()->access,
	    "{\"type\":\"sleep\"}") == 202);
	runner[0] = '\0';
	for (t = 0; t < 3000 && runner[0] == '\0'; t += 50) {
		int	 k;

		res = http_bearer("GET", "/api/system/jobs", adm()->access, NULL);
		/* media jobs of earlier uploads may run alongside on the other runner */
		for (k = 0; k < 4; k++) {
			char	 p[64];

			snprintf(p, sizeof(p), "running.%d.type", k);
			if (json_str(&res, p) != NULL && strcmp(json_str(&res, p), "sleep") == 0) {
				snprintf(p, sizeof(p), "running.%d.runner", k);
				snprintf(runner, sizeof(runner), "%s", json_str(&res, p));
			}
		}
		http_free(&res);
		if (runner[0] == '\0')
			sleep_ms(50);
	}
	expect(runner[0] != '\0');
	/* "host-PID-index": kill that process in the middle of the job */
	pid = strchr(runner, '-') + 1;
	expect(sh("kill -9 %.*s", (int)(strrchr(runner, '-') - pid), pid) == 0);
	/* its heartbeat lapses (3 s here), another runner takes the job back */
	expect(wait_count("done:sleep", before + 1, 15000));
	sleep_ms(1500);
	expect(job_count("done:sleep") == before + 1);		/* once */
	res = http_bearer("GET", "/api/system/jobs", adm()->access, NULL);
	expect(json_int(&res, "queues.default", -1) == 0);
	expect(json_array(&res, "running") != NULL);
	expect(res.body != NULL && strstr(res.body, "\"type\":\"sleep\"") == NULL);
	http_free(&res);
}

/* A new account (prefix + pid) asks for a password reset. OUT: name. */
static int
reset_password_of_new_user(const char *prefix, char name[64])
{
	char	 body[256];
	long	 st;

	snprintf(name, 64, "%s%ld", prefix, (long)getpid() % 100000);
	snprintf(body, sizeof(body), "{\"username\":\"%s\",\"email\":\"%s@example.org\","
	    "\"password\":\"" IT_PASSWORD "\"}", name, name);
	if (it_status("POST", "/api/auth/register", NULL, body) != 201)
		return -1;
	snprintf(body, sizeof(body), "{\"email\":\"%s@example.org\"}", name);
	st = it_status("POST", "/api/auth/password-reset", NULL, body);
	return st == 200 || st == 202 ? 0 : -1;
}

/* Wait up to 5 s for outbox message oid to be sent. */
static int
wait_sent(const char *oid)
{
	long	 t;

	for (t = 0; t < 5000; t += 100) {
		if (strcmp(it_psql("SELECT sent_at IS NOT NULL FROM outbox WHERE id = '%s'",
		    oid), "t") == 0)
			return 1;
		sleep_ms(100);
	}
	return 0;
}

static void
test_jobs_smtp_down_retries_then_dead_letters_and_loses_nothing(void)
{
	char		 name[64], oid[37], path[160];
	struct http_res	 res;
	long		 t;
	int		 found = 0;

	expect(start_runner() == 0);
	/* mail left unsent by earlier suites (no server then) would go first */
	it_psql("UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL");
	expect(sh("touch %s/smtp/refuse", stack_dir) == 0);
	expect(reset_password_of_new_user("nomail", name) == 0);
	snprintf(oid, sizeof(oid), "%s", it_psql("SELECT id FROM outbox WHERE to_address ="
	    " '%s@example.org'", name));
	/* three refusals later the message is dead-lettered, not lost */
	for (t = 0; t < 10000 && !found; t += 200) {
		sleep_ms(200);
		res = http_bearer("GET", "/api/system/jobs", adm()->access, NULL);
		found = strstr(res.body, oid) != NULL;
		http_free(&res);
	}
	/* the server is back (before any check can end the test) */
	expect(sh("rm -f %s/smtp/refuse", stack_dir) == 0);
	expect(found);
	expect(strcmp(it_psql("SELECT attempts || ' ' || (sent_at IS NULL) || ' '"
	    " || (last_error LIKE 'smtp:%%') FROM outbox WHERE id = '%s'", oid),
	    "3 true true") == 0);
	/* an admin retries the dead letter: it is sent */
	snprintf(path, sizeof(path), "/api/system/jobs/dead/%s/retry", oid);
	expect(it_status("POST", path, adm()->access, NULL) == 202);
	expect(wait_sent(oid));
}

static void
test_jobs_password_reset_mail_reaches_the_smtp_server(void)
{
	char		 name[64];
	const char	*mail;
	long		 t;

	expect(start_runner() == 0);
	expect(reset_password_of_new_user("mailme", name) == 0);
	for (t = 0; t < 5000; t += 100) {
		if (sh("grep -lq '%s@example.org' %s/smtp/*.env 2>/dev/null", name,
		    stack_dir) == 0)
			break;
		sleep_ms(100);
	}
	mail = sh_out("cat $(grep -l '%s@example.org' %s/smtp/*.env | head -n 1 |"
	    " sed 's/env$/eml/')", name, stack_dir);
	expect(strstr(mail, "Subject: Reset your djamms password") != NULL);
	expect(strstr(mail, "reset-password?token=") != NULL);
	expect(strcmp(it_psql("SELECT count(*) FROM outbox WHERE to_address = '%s@example.org'"
	    " AND sent_at IS NOT NULL", name), "1") == 0);
	stop_runner();
}

/*
 * Without a mail server (mail is optional) the minutely mail job has
 * nothing to do and does not fail, retry and die every minute; mail that
 * waits fails it, and stays in the outbox until a server is set.
 */
static void
test_jobs_mail_without_a_server_fails_only_when_mail_waits(void)
{
	char		 name[64], oid[37];
	long long	 done, retried;

	stop_runner();
	expect(start_runner_ex(1) == 0);
	it_psql("UPDATE outbox SET sent_at = now() WHERE sent_at IS NULL");
	done = job_count("done:mail");
	retried = job_count("retried:mail");
	expect(it_status("POST", "/api/system/jobs", adm()->access,
	    "{\"type\":\"mail\"}") == 202);
	expect(wait_count("done:mail", done + 1, 5000));
	expect(job_count("retried:mail") == retried);
	/* a reset asked for now waits: the job fails, the message is kept */
	expect(reset_password_of_new_user("waitmail", name) == 0);
	snprintf(oid, sizeof(oid), "%s", it_psql("SELECT id FROM outbox WHERE to_address ="
	    " '%s@example.org'", name));
	expect(it_status("POST", "/api/system/jobs", adm()->access,
	    "{\"type\":\"mail\"}") == 202);
	expect(wait_count("retried:mail", retried + 1, 5000));
	expect(strcmp(it_psql("SELECT attempts || ' ' || (sent_at IS NULL) FROM outbox"
	    " WHERE id = '%s'", oid), "0 true") == 0);
	expect(strstr(sh_out("grep -h 'wait in the outbox' %s/log/*.log | tail -n 1",
	    stack_dir), "DJAMMS_SMTP_URL is not set") != NULL);
	/* a server set (the runner restarted with it): the next run sends it */
	stop_runner();
	expect(start_runner() == 0);
	expect(it_status("POST", "/api/system/jobs", adm()->access,
	    "{\"type\":\"mail\"}") == 202);
	expect(wait_sent(oid));
}

static void
test_jobs_thumbnails_make_the_covers_the_library_lacks(void)
{
	char		 with[37], without[37];
	long long	 before = job_count("done:thumbnails");

	expect(start_runner() == 0);
	/* two files in storage: one with an embedded picture, one without */
	expect(sh("mkdir -p %s/storage/audio/thumbs && cd %s/storage/audio/thumbs &&"
	    " ffmpeg -v error -y -f lavfi -i color=c=0xcc6633:s=320x240 -frames:v 1 pic.jpg &&"
	    " ffmpeg -v error -y -f lavfi -i sine=frequency=500:duration=2 -i pic.jpg"
	    " -map 0:a -map 1:v -c:a libmp3lame -b:a 32k -c:v copy -disposition:v attached_pic"
	    " -id3v2_version 3 with.mp3 &&"
	    " ffmpeg -v error -y -f lavfi -i sine=frequency=520:duration=2 -c:a libmp3lame"
	    " -b:a 32k without.mp3", stack_dir, stack_dir) == 0);
	snprintf(with, sizeof(with), "%s", it_psql("INSERT INTO tracks (title, artist,"
	    " duration, source, file_path, mime_type) VALUES ('With art', 'Ops', 2, 'import',"
	    " 'audio/thumbs/with.mp3', 'audio/mpeg') RETURNING id"));
	snprintf(without, sizeof(without), "%s", it_psql("INSERT INTO tracks (title, artist,"
	    " duration, source, file_path, mime_type) VALUES ('No art', 'Ops', 2, 'import',"
	    " 'audio/thumbs/without.mp3', 'audio/mpeg') RETURNING id"));
	expect(it_status("POST", "/api/system/jobs", adm()->access,
	    "{\"type\":\"thumbnails\"}") == 202);
	expect(wait_count("done:thumbnails", before + 1, 10000));
	expect(strcmp(it_psql("SELECT has_cover FROM tracks WHERE id = '%s'", with), "t") == 0);
	expect(sh("test -s %s/storage/images/tracks/%s/300.jpg && test -s"
	    " %s/storage/images/tracks/%s/150.webp", stack_dir, with, stack_dir, with) == 0);
	expect(strcmp(it_psql("SELECT has_cover || ' ' || (metadata ? 'cover_checked')"
	    " FROM tracks WHERE id = '%s'", without), "false true") == 0);
}

static void
test_jobs_backup_then_restore_brings_everything_back(void)
{
	struct http_res	 res;
	char		 track[37], keep[37], gone[37], name[64], body[128], path[160];
	long		 t;

	expect(start_runner() == 0);
	expect(it_status("POST", "/api/settings/backup", NULL, "{}") == 401);
	snprintf(track, sizeof(track), "%s", it_psql("INSERT INTO tracks (title, artist,"
	    " duration, source) VALUES ('Backed up', 'Ops', 200, 'catalog') RETURNING id"));
	expect(it_new_playlist(adm(), "Before the backup", 0, keep) == 0);
	expect(sh("printf v1 > %s/storage/audio/backup-test.bin", stack_dir) == 0);

	res = http_bearer("POST", "/api/settings/backup", adm()->access, "{\"media\":true}");
	expect_status(&res, 202);
	http_free(&res);
	expect(wait_count("done:backup", 1, 20000));
	res = http_bearer("GET", "/api/settings/backups", adm()->access, NULL);
	expect_status(&res, 200);
	expect(json_lookup_bool(&res, "backups.0.media") == 1);
	expect_json_str(&res, "backups.0.files.0.name", "db.dump");
	expect(strlen(json_str(&res, "backups.0.files.0.sha256")) == 64);
	snprintf(name, sizeof(name), "%s", json_str(&res, "backups.0.name"));
	http_free(&res);

	/* then things change and go */
	it_psql("DELETE FROM tracks WHERE id = '%s'", track);
	expect(it_new_playlist(adm(), "After the backup", 0, gone) == 0);
	expect(it_status("PUT", "/api/settings/system", adm()->access,
	    "{\"max_playlists_per_user\":7}") == 200);
	expect(sh("printf v2 > %s/storage/audio/backup-test.bin && touch"
	    " %s/storage/audio/after.bin", stack_dir, stack_dir) == 0);

	/* a restore of something that is not a backup is refused */
	expect(it_status("POST", "/api/settings/restore", adm()->access,
	    "{\"name\":\"../../etc\"}") == 422);
	snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
	res = http_bearer("POST", "/api/settings/restore", adm()->access, body);
	expect_status(&res, 202);
	http_free(&res);
	expect(wait_count("done:restore", 1, 60000));
	/* everything as it was */
	for (t = 0; t < 3000; t += 100) {	/* the workers reconnect */
		if (it_status("GET", "/api/system/info", NULL, NULL) == 200)
			break;
		sleep_ms(100);
	}
	expect(strcmp(it_psql("SELECT title FROM tracks WHERE id = '%s'", track),
	    "Backed up") == 0);
	snprintf(path, sizeof(path), "/api/playlists/%s", keep);
	expect(it_status("GET", path, adm()->access, NULL) == 200);
	snprintf(path, sizeof(path), "/api/playlists/%s", gone);
	expect(it_status("GET", path, adm()->access, NULL) == 404);
	expect(strcmp(it_psql("SELECT value::text FROM system_settings"
	    " WHERE key = 'max_playlists_per_user'"), "500") == 0);
	expect(strcmp(sh_out("cat %s/storage/audio/backup-test.bin", stack_dir), "v1") == 0);
	expect(sh("test -e %s/storage/audio/after.bin", stack_dir) != 0);
	/* the database it replaced is kept aside */
	expect(atol(it_psql("SELECT count(*) FROM pg_database WHERE datname LIKE"
	    " 'djamms_before_%%'")) >= 1);
}

static void
test_jobs_a_damaged_backup_is_not_restored(void)
{
	struct http_res	 res;
	char		 name[64], body[128], track[37];
	long long	 dead;

	expect(start_runner() == 0);
	expect(it_status("POST", "/api/settings/backup", adm()->access,
	    "{\"media\":false}") == 202);
	expect(wait_count("done:backup", 2, 20000));
	res = http_bearer("GET", "/api/settings/backups", adm()->access, NULL);
	snprintf(name, sizeof(name), "%s", json_str(&res, "backups.0.name"));
	expect(json_lookup_bool(&res, "backups.0.media") == 0);
	http_free(&res);
	expect(sh("printf x >> %s/backups/%s/db.dump", stack_dir, name) == 0);
	snprintf(track, sizeof(track), "%s", it_psql("INSERT INTO tracks (title, artist,"
	    " duration, source) VALUES ('Stays', 'Ops', 200, 'catalog') RETURNING id"));
	dead = job_count("dead:restore");
	snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
	expect(it_status("POST", "/api/settings/restore", adm()->access, body) == 202);
	expect(wait_count("dead:restore", dead + 1, 20000));
	res = http_bearer("GET", "/api/system/jobs", adm()->access, NULL);
	expect(strstr(res.body, "does not match its checksum") != NULL);
	http_free(&res);
	/* nothing switched */
	expect(strcmp(it_psql("SELECT title FROM tracks WHERE id = '%s'", track),
	    "Stays") == 0);
}

/* ---- tracks' audio: analysis, HLS, orphans ------------------------------ */

/* Upload file (in the stack dir) as the admin; the new id in id[37]. */
static int
upload_file(const char *file, char id[37])
{
	char	 full[512], path[512];

	snprintf(full, sizeof(full), "%s/%s", stack_dir, file);
	snprintf(path, sizeof(path), "/api/music/tracks?filename=%s", strrchr(file, '/') + 1);
	return it_upload_file(adm()->access, full, path, id);
}

/* The master URL once GET .../hls answers 200 (waits up to ms). */
static int
wait_hls(const char *id, char *url, size_t cap, long ms)
{
	char		 path[128];
	struct http_res	 res;
	long		 t;

	snprintf(path, sizeof(path), "/api/music/tracks/%s/hls", id);
	for (t = 0; t < ms; t += 200) {
		res = http_bearer("GET", path, adm()->access, NULL);
		if (res.status == 200 && json_str(&res, "master_url") != NULL) {
			snprintf(url, cap, "%s", json_str(&res, "master_url"));
			http_free(&res);
			return 1;
		}
		if (res.status != 202) {
			fprintf(stderr, "    hls: %ld %.300s\n", res.status, res.body);
			http_free(&res);
			return 0;
		}
		if (http_header(&res, "Retry-After") == NULL ||
		    json_str(&res, "status") == NULL ||
		    strcmp(json_str(&res, "status"), "pending") != 0) {
			fprintf(stderr, "    hls 202 without Retry-After or status\n");
			http_free(&res);
			return 0;
		}
		http_free(&res);
		sleep_ms(200);
	}
	return 0;
}

/* The status of an unauthenticated GET. */
static long
get_status(const char *path)
{
	struct http_res	 res = http_do("GET", path, NULL, NULL, 0);
	long		 st = res.status;

	http_free(&res);
	return st;
}

/* A URL signed with the instance's secret, as nginx checks it. */
static void
hls_sign(const char *track, long expires, char *out, size_t cap)
{
	char		 material[512], sig[32];

	snprintf(material, sizeof(material), "%ld/hls/%s %s", expires, track,
	    sh_out("cat %s/secrets/media.secret", stack_dir));
	it_secure_link_sig(material, sig);
	snprintf(out, cap, "/hls/%s/%ld/%s/master.m3u8", track, expires, sig);
}

static void
test_jobs_an_upload_gets_tempo_loudness_and_hls_renditions(void)
{
	struct http_res	 res;
	char		 id[37], other[37], url[256], base[256], path[512], *slash;
	const char	*h[2] = { "Range: bytes=0-187", NULL };
	double		 bpm;

	expect(start_runner() == 0);
	/* 20 s of clicks at 120 BPM */
	expect(sh("mkdir -p %s/fx && cd %s/fx && ffmpeg -v error -y -f lavfi -i"
	    " \"aevalsrc='0.8*sin(2*PI*1000*t)*lt(mod(t,0.5),0.02)':s=44100:d=20\""
	    " -ac 2 -c:a libmp3lame -b:a 128k clicks.mp3", stack_dir, stack_dir) == 0);
	expect(upload_file("fx/clicks.mp3", id) == 0);
	/* not ready at first, or already: either way ready soon */
	expect(wait_hls(id, url, sizeof(url), 60000));
	expect(wait_count("done:analysis", 1, 30000));
	expect(strcmp(it_psql("SELECT analyzed_at IS NOT NULL FROM tracks WHERE id = '%s'",
	    id), "t") == 0);

	/* the track shows what the jobs found */
	snprintf(path, sizeof(path), "/api/music/tracks/%s", id);
	res = http_bearer("GET", path, adm()->access, NULL);
	expect_status(&res, 200);
	bpm = json_num(&res, "bpm", 0);
	expect(bpm > 118.5 && bpm < 121.5);
	expect(json_num(&res, "loudness_lufs", 0) < -5 && json_num(&res, "loudness_lufs", 0) > -40);
	expect(json_str(&res, "hls_url") != NULL &&
	    strstr(json_str(&res, "hls_url"), "/hls") != NULL);
	http_free(&res);

	/* the master playlist, from nginx: three renditions with their bandwidth */
	expect(strncmp(url, "/hls/", 5) == 0);
	res = http_do("GET", url, NULL, NULL, 0);
	expect_status(&res, 200);
	expect(http_header(&res, "Content-Type") != NULL &&
	    strstr(http_header(&res, "Content-Type"), "mpegurl") != NULL);
	expect(strncmp(res.body, "#EXTM3U", 7) == 0);
	expect(strstr(res.body, "BANDWIDTH=70400") != NULL);
	expect(strstr(res.body, "\n64k/index.m3u8") != NULL);
	expect(strstr(res.body, "\n128k/index.m3u8") != NULL);
	expect(strstr(res.body, "\n256k/index.m3u8") != NULL);
	expect(strstr(res.body, "CODECS=\"mp4a.40.2\"") != NULL);
	http_free(&res);
	/* a rendition's playlist and its segments, by their relative names */
	snprintf(base, sizeof(base), "%s", url);
	slash = strrchr(base, '/');
	slash[1] = '\0';
	snprintf(path, sizeof(path), "%s128k/index.m3u8", base);
	res = http_do("GET", path, NULL, NULL, 0);
	expect_status(&res, 200);
	expect(strstr(res.body, "#EXT-X-ENDLIST") != NULL);
	expect(strstr(res.body, "seg000.ts") != NULL);
	expect(strstr(res.body, "seg003.ts") != NULL);	/* 20 s in 6 s segments */
	http_free(&res);
	snprintf(path, sizeof(path), "%s256k/seg001.ts", base);
	res = http_do("GET", path, NULL, NULL, 0);
	expect_status(&res, 200);
	expect(strstr(http_header(&res, "Content-Type") ? http_header(&res, "Content-Type")
	    : "", "video/mp2t") != NULL);
	expect(res.body_len > 188 && (unsigned char)res.body[0] == 0x47);	/* TS sync */
	http_free(&res);
	res = http_do("GET", path, h, NULL, 0);
	expect_status(&res, 206);
	expect(res.body_len == 188);
	http_free(&res);

	/* a signature is for one track and one expiry */
	expect(it_status("GET", "/api/music/tracks?limit=1", NULL, NULL) == 401);
	snprintf(other, sizeof(other), "%s", it_psql("SELECT gen_random_uuid()"));
	snprintf(path, sizeof(path), "/hls/%s%s", other, url + 5 + 36);
	res = http_do("GET", path, NULL, NULL, 0);
	expect_status(&res, 403);
	expect_json_str(&res, "error.code", "forbidden");
	http_free(&res);
	snprintf(path, sizeof(path), "%s", url);
	path[5 + 36 + 1] = path[5 + 36 + 1] == '9' ? '8' : '9';	/* another expiry */
	expect(get_status(path) == 403);
	hls_sign(id, (long)time(NULL) - 60, path, sizeof(path));
	res = http_do("GET", path, NULL, NULL, 0);
	expect_status(&res, 410);
	expect_json_str(&res, "error.code", "gone");
	http_free(&res);
	/* nothing but the renditions is reachable through the prefix */
	snprintf(path, sizeof(path), "%s..%%2f..%%2f..%%2fsecrets%%2fmedia.secret", base);
	expect(get_status(path) == 404);
	snprintf(path, sizeof(path), "%s64k/../../../../audio/", base);
	expect(get_status(path) >= 400);
	snprintf(path, sizeof(path), "%sffmpeg.log", base);
	expect(get_status(path) == 404);

	/* the route checks who asks */
	snprintf(path, sizeof(path), "/api/music/tracks/%s/hls", id);
	expect(it_status("GET", path, NULL, NULL) == 401);
	snprintf(path, sizeof(path), "/api/music/tracks/%s/hls", other);
	expect(it_status("GET", path, adm()->access, NULL) == 404);
	/* turned off: no renditions are offered */
	expect(it_status("PUT", "/api/settings/system", adm()->access,
	    "{\"hls_enabled\":false}") == 200);
	snprintf(path, sizeof(path), "/api/music/tracks/%s/hls", id);
	expect(it_status("GET", path, adm()->access, NULL) == 404);
	expect(it_status("PUT", "/api/settings/system", adm()->access,
	    "{\"hls_enabled\":true}") == 200);

	/* deleting the track takes its renditions */
	expect(sh("test -s %s/storage/hls/%s/master.m3u8", stack_dir, id) == 0);
	snprintf(path, sizeof(path), "/api/music/tracks/%s", id);
	expect(it_status("DELETE", path, adm()->access, NULL) == 204);
	expect(sh("test -e %s/storage/hls/%s", stack_dir, id) != 0);
	expect(get_status(url) == 404);
}

static void
test_jobs_a_file_ffmpeg_refuses_is_reported_not_retried_forever(void)
{
	struct http_res	 res;
	char		 id[37], path[128];
	long long	 before = job_count("done:hls"), an = job_count("done:analysis");

	expect(start_runner() == 0);
	/* MPEG frame headers, then noise: sniffs as MP3, decodes as nothing */
	expect(sh("mkdir -p %s/storage/audio/broken && (printf '\\377\\373\\220\\144';"
	    " head -c 20000 /dev/urandom) > %s/storage/audio/broken/noise.mp3",
	    stack_dir, stack_dir) == 0);
	snprintf(id, sizeof(id), "%s", it_psql("INSERT INTO tracks (title, artist,"
	    " duration, source, file_path, mime_type) VALUES ('Noise', 'Ops', 2, 'import',"
	    " 'audio/broken/noise.mp3', 'audio/mpeg') RETURNING id"));
	expect(it_status("POST", "/api/system/jobs", adm()->access, "{\"type\":\"hls\"}") == 202);
	expect(it_status("POST", "/api/system/jobs", adm()->access,
	    "{\"type\":\"analysis\"}") == 202);
	expect(wait_count("done:hls", before + 1, 30000));
	expect(wait_count("done:analysis", an + 1, 30000));
	expect(strcmp(it_psql("SELECT hls_error IS NOT NULL AND hls_ready_at IS NULL"
	    " FROM tracks WHERE id = '%s'", id), "t") == 0);
	/* analysed, without figures: the sweep does not come back to it */
	expect(strcmp(it_psql("SELECT analyzed_at IS NOT NULL AND bpm IS NULL"
	    " FROM tracks WHERE id = '%s'", id), "t") == 0);
	snprintf(path, sizeof(path), "/api/music/tracks/%s/hls", id);
	res = http_bearer("GET", path, adm()->access, NULL);
	expect_status(&res, 422);
	expect_json_str(&res, "error.code", "transcode_failed");
	expect(json_str(&res, "error.details.reason") != NULL);
	http_free(&res);
	expect(sh("test -e %s/storage/hls/%s", stack_dir, id) != 0);
	expect(sh("ls %s/storage/hls | grep -q '^\\.tmp-'", stack_dir) != 0);
	/* an admin may try that one track again; only media jobs take a track */
	snprintf(path, sizeof(path), "{\"type\":\"hls\",\"track_id\":\"%s\"}", id);
	expect(it_status("POST", "/api/system/jobs", adm()->access, path) == 202);
	expect(wait_count("done:hls", before + 2, 30000));
	snprintf(path, sizeof(path), "{\"type\":\"cleanup\",\"track_id\":\"%s\"}", id);
	expect(it_status("POST", "/api/system/jobs", adm()->access, path) == 422);
	expect(it_status("POST", "/api/system/jobs", adm()->access,
	    "{\"type\":\"hls\",\"track_id\":\"../../etc/passwd-0000000000000000000\"}") == 422);
	expect(it_status("POST", "/api/system/jobs", adm()->access,
	    "{\"type\":\"hls\",\"track_id\":\"00000000-0000-4000-8000-000000000000\"}") == 422);
	expect(it_status("POST", "/api/system/jobs", adm()->access,
	    "{\"type\":\"hls\",\"track_id\":7}") == 422);
}

static void
test_jobs_cleanup_removes_orphaned_files_after_the_grace_period(void)
{
	char		 kept[37], gone_id[37];
	long long	 before = job_count("done:cleanup");
	const char	*s = stack_dir;

	expect(start_runner() == 0);
	snprintf(gone_id, sizeof(gone_id), "%s", it_psql("SELECT gen_random_uuid()"));
	expect(sh("cd %s/storage && mkdir -p audio/orph/a images/tracks/%s hls/%s"
	    " hls/.tmp-%s-1 tmp/upload &&"
	    " echo old > audio/orph/a/old.mp3 && echo young > audio/orph/a/young.mp3 &&"
	    " echo named > audio/orph/a/named.mp3 && echo c > images/tracks/%s/300.jpg &&"
	    " echo m > hls/%s/master.m3u8 && echo body > tmp/upload/0000000001 &&"
	    " touch -d '3 days ago' audio/orph/a/old.mp3 audio/orph/a/named.mp3"
	    " images/tracks/%s hls/%s hls/.tmp-%s-1 tmp/upload/0000000001",
	    s, gone_id, gone_id, gone_id, gone_id, gone_id, gone_id, gone_id, gone_id) == 0);
	snprintf(kept, sizeof(kept), "%s", it_psql("INSERT INTO tracks (title, artist,"
	    " duration, source, file_path) VALUES ('Named', 'Ops', 2, 'import',"
	    " 'audio/orph/a/named.mp3') RETURNING id"));
	expect(sh("cd %s/storage && mkdir -p images/tracks/%s && touch -d '3 days ago'"
	    " images/tracks/%s", s, kept, kept) == 0);
	/* rotated logs: one past DJAMMS_LOG_KEEP_DAYS (30), one recent */
	expect(sh("cd %s/log && echo x > djamms.log.7 && echo y > djamms.log.8.gz &&"
	    " echo z > djamms.log.2 && echo w > djamms.logbook &&"
	    " touch -d '40 days ago' djamms.log.7 djamms.log.8.gz djamms.logbook", s) == 0);

	expect(it_status("POST", "/api/system/jobs", adm()->access,
	    "{\"type\":\"cleanup\"}") == 202);
	expect(wait_count("done:cleanup", before + 1, 20000));
	/* gone: the old file no track names, the dirs of a track that is not */
	expect(sh("test -e %s/storage/audio/orph/a/old.mp3", s) != 0);
	expect(sh("test -e %s/storage/images/tracks/%s", s, gone_id) != 0);
	expect(sh("test -e %s/storage/hls/%s", s, gone_id) != 0);
	expect(sh("test -e %s/storage/hls/.tmp-%s-1", s, gone_id) != 0);
	expect(sh("test -e %s/storage/tmp/upload/0000000001", s) != 0);
	expect(sh("test -e %s/log/djamms.log.7 || test -e %s/log/djamms.log.8.gz", s, s) != 0);
	/* kept: what is young, what a track names, what is not a rotated log */
	expect(sh("test -s %s/storage/audio/orph/a/young.mp3", s) == 0);
	expect(sh("test -s %s/storage/audio/orph/a/named.mp3", s) == 0);
	expect(sh("test -d %s/storage/images/tracks/%s", s, kept) == 0);
	expect(sh("test -e %s/log/djamms.log.2 && test -e %s/log/djamms.logbook", s, s) == 0);
	expect(sh("test -s %s/log/djamms.log", s) == 0);
}

static void
test_jobs_figures_are_in_the_metrics(void)
{
	struct http_res	 res;
	char		 path[256];

	expect(start_runner() == 0);
	expect(it_status("POST", "/api/system/jobs", adm()->access, "{\"type\":\"noop\"}") == 202);
	expect(wait_count("done:noop", 1, 5000));
	res = http_get("/metrics");
	expect_status(&res, 200);
	expect(strstr(res.body, "djamms_jobs_total{type=\"noop\",outcome=\"done\"}") != NULL);
	expect(strstr(res.body, "djamms_jobs_total{type=\"cleanup\",outcome=\"done\"}") != NULL);
	expect(strstr(res.body, "djamms_jobs_runners 2\n") != NULL);
	expect(strstr(res.body, "djamms_jobs_queued{queue=\"default\"} ") != NULL);
	expect(strstr(res.body, "djamms_jobs_dead ") != NULL);
	snprintf(path, sizeof(path), "%s/metrics-jobs.txt", stack_dir);
	expect(it_save_body(&res, path) == 0);
	http_free(&res);
	expect(sh("promtool check metrics < %s >&2", path) == 0);
}

const struct it_test jobs_tests[] = {
#define T(f) { #f, f }
	T(test_jobs_queued_through_the_api_run_and_are_counted),
	T(test_jobs_failures_retry_with_backoff_then_die_until_an_admin_acts),
	T(test_jobs_of_a_crashed_runner_are_recovered),
	T(test_jobs_a_runner_killed_mid_job_loses_nothing_and_does_it_once),
	T(test_jobs_smtp_down_retries_then_dead_letters_and_loses_nothing),
	T(test_jobs_thumbnails_make_the_covers_the_library_lacks),
	T(test_jobs_backup_then_restore_brings_everything_back),
	T(test_jobs_a_damaged_backup_is_not_restored),
	T(test_jobs_password_reset_mail_reaches_the_smtp_server),
	T(test_jobs_mail_without_a_server_fails_only_when_mail_waits),
	T(test_jobs_an_upload_gets_tempo_loudness_and_hls_renditions),
	T(test_jobs_a_file_ffmpeg_refuses_is_reported_not_retried_forever),
	T(test_jobs_cleanup_removes_orphaned_files_after_the_grace_period),
	T(test_jobs_figures_are_in_the_metrics),
#undef T
};
const size_t jobs_ntests = sizeof(jobs_tests) / sizeof(jobs_tests[0]);

void
jobs_tests_init(const char *dir, const char *top)
{
	stack_dir = dir;
	top_dir = top;
}
