/*
 * fcgi/jobs.c: background jobs on a reliable queue in Redis, and the runner
 * that works them off (`djamms jobs run`, or the `djamms-jobs` name of the
 * same binary; djamms-jobs.service).
 *
 * A job is a JSON object {"id","type","args","attempts","max_attempts",
 * "enqueued_at"}. It waits in jobs:queue (the long media work, thumbnails,
 * analysis and HLS, in jobs:queue:bulk, which the first runner process
 * leaves to the others so mail is never stuck behind an encoding); a
 * runner process moves it
 * atomically (BLMOVE) to its own list jobs:processing:<runner> while it
 * runs, and removes it from there when done (the acknowledgement). A
 * failure puts it on jobs:delayed (a sorted set by due time) with an
 * exponential back-off, until max_attempts; then on jobs:dead with its
 * last error, where an admin retries or drops it (GET /api/system/jobs).
 * Every runner process keeps a heartbeat key (jobs:runner:<id>,
 * DJAMMS_JOBS_HEARTBEAT_S, 30 s by default); a
 * processing list whose runner's heartbeat is gone was left by a crash and
 * is put back on the queue by whichever runner notices first. Every job
 * is idempotent (cleanup deletes what is expired, popularity recomputes,
 * mail marks each message sent in the same transaction that locked it),
 * so running one twice does no harm.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <libpq-fe.h>

#include "djamms.h"

#define JOBS_QUEUE	"jobs:queue"
#define JOBS_BULK	"jobs:queue:bulk"	/* long media work: thumbnails, analysis, hls */
#define JOBS_DELAYED	"jobs:delayed"
#define JOBS_DEAD	"jobs:dead"
#define JOBS_STATS	"jobs:stats"
#define DEAD_KEEP	1000

/* SIGTERM: the runner finishes the job in hand, long sweeps stop early */
static volatile sig_atomic_t	 jobs_stop;

static const char *const job_types[] = {
	"cleanup", "popularity", "mail", "noop", "thumbnails", "analysis", "hls",
	"backup", "restore", "fail", "sleep", NULL
};

static long long
wall_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
reply_free(struct redisReply *rep)
{
	if (rep != NULL)
		freeReplyObject(rep);
}

long long
jobs_now_ms(void)
{
	return wall_ms();
}

/* A Redis integer reply's value (the reply freed), or -1. */
static long long
reply_int(struct redisReply *rep)
{
	long long	 v = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;

	reply_free(rep);
	return v;
}

int
jobs_figures(struct jobs_figures *f)
{
	f->queued = reply_int(rds_command(NULL, "LLEN %s", JOBS_QUEUE));
	f->bulk = reply_int(rds_command(NULL, "LLEN %s", JOBS_BULK));
	f->delayed = reply_int(rds_command(NULL, "ZCARD %s", JOBS_DELAYED));
	f->dead = reply_int(rds_command(NULL, "LLEN %s", JOBS_DEAD));
	f->runners = reply_int(rds_command(NULL, "ZCOUNT jobs:runners %lld +inf", wall_ms()));
	return f->queued < 0 || f->bulk < 0 || f->delayed < 0 || f->dead < 0 ||
	    f->runners < 0 ? -1 : 0;
}

int
jobs_health(long long *runners, long long *queued, long long *oldest_s)
{
	struct jobs_figures	 f;
	struct redisReply	*rep;

	*runners = *queued = 0;
	*oldest_s = -1;
	if (jobs_figures(&f) != 0)
		return -1;
	*runners = f.runners;
	*queued = f.queued + f.bulk;
	/* the oldest waits at the right end */
	rep = rds_command(NULL, "LINDEX %s -1", JOBS_QUEUE);
	if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
		struct json_object	*j = json_tokener_parse(rep->str), *v;

		if (j != NULL && json_object_object_get_ex(j, "enqueued_at", &v))
			*oldest_s = (wall_ms() - json_object_get_int64(v)) / 1000;
		json_object_put(j);
	}
	reply_free(rep);
	return 0;
}

/*
 * The media jobs: long work, queued on the bulk queue so it never holds
 * up mail and the rest (with two runner processes or more, the first
 * never takes it); the jobs that take args.track_id.
 */
int
jobs_media_type(const char *type)
{
	return strcmp(type, "thumbnails") == 0 || strcmp(type, "analysis") == 0 ||
	    strcmp(type, "hls") == 0;
}

int
jobs_type_known(const char *type)
{
	const char *const	*t;

	for (t = job_types; *t != NULL; t++)
		if (strcmp(*t, type) == 0)
			return (strcmp(type, "fail") != 0 && strcmp(type, "sleep") != 0) ||
			    cfg.test_routes;
	return 0;
}

int
jobs_enqueue(const char *type, const char *args_json, int max_attempts,
    char id_out[37])
{
	struct json_object	*j = json_object_new_object();
	struct json_object	*args = args_json ? json_tokener_parse(args_json) : NULL;
	struct redisReply	*rep;
	unsigned char		 b[16];
	char			 id[37], tok[40];
	int			 ok;

	random_token(tok, 16);
	memcpy(b, tok, 16);
	/* a version 4 UUID from random bytes */
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(id, sizeof(id), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5], b[6],
	    b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
	json_object_object_add(j, "id", json_object_new_string(id));
	json_object_object_add(j, "type", json_object_new_string(type));
	json_object_object_add(j, "args", args ? args : json_object_new_object());
	json_object_object_add(j, "attempts", json_object_new_int(0));
	json_object_object_add(j, "max_attempts", json_object_new_int(
	    max_attempts > 0 ? max_attempts : 5));
	json_object_object_add(j, "enqueued_at", json_object_new_int64(wall_ms()));
	/* where a retry or a recovery puts it back (the scripts below) */
	if (jobs_media_type(type))
		json_object_object_add(j, "queue", json_object_new_string("bulk"));
	rep = rds_command(NULL, "LPUSH %s %s", jobs_media_type(type) ? JOBS_BULK : JOBS_QUEUE,
	    json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	ok = rep != NULL && rep->type == REDIS_REPLY_INTEGER;
	reply_free(rep);
	json_object_put(j);
	if (ok && id_out != NULL)
		snprintf(id_out, 37, "%s", id);
	return ok ? 0 : -1;
}

/* ---- the jobs ------------------------------------------------------- */

static int
db_run(const char *sql, const char *const *args, int nargs, long *rows)
{
	PGresult	*res = PQexecParams(db_conn(), sql, nargs, NULL, args, NULL,
			    NULL, 0);
	int		 ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
			    PQresultStatus(res) == PGRES_TUPLES_OK;

	if (ok && rows != NULL)
		*rows = atol(PQcmdTuples(res));
	if (!ok)
		log_warn("job statement failed", "\"error\":\"%s\"",
		    PQresultErrorField(res, PG_DIAG_SQLSTATE) ?
		    PQresultErrorField(res, PG_DIAG_SQLSTATE) : "-");
	PQclear(res);
	return ok ? 0 : -1;
}

/*
 * Expired tokens, resets and share links, sent mail, stale devices; files
 * no track owns after DJAMMS_ORPHAN_GRACE_H (orphans.c); rotated logs
 * older than DJAMMS_LOG_KEEP_DAYS.
 */
static int
job_cleanup(struct json_object *args, char *err, size_t errlen)
{
	static const char *const sql[] = {
		"DELETE FROM refresh_tokens WHERE expires_at < now() - interval '1 day'",
		"DELETE FROM password_resets WHERE expires_at < now() - interval '1 day'",
		"DELETE FROM revoked_tokens WHERE expires_at < now()",
		"DELETE FROM outbox WHERE sent_at < now() - interval '30 days'",
		"DELETE FROM player_devices WHERE last_seen_at < now() - interval '90 days'",
	};
	struct orphan_counts	 oc;
	long			 rows, total = 0;
	long long		 logs;
	size_t			 i;

	(void)args;
	if (!db_ok()) {
		snprintf(err, errlen, "database unavailable");
		return -1;
	}
	for (i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		if (db_run(sql[i], NULL, 0, &rows) != 0) {
			snprintf(err, errlen, "cleanup statement %zu failed", i);
			return -1;
		}
		total += rows;
	}
	if (orphans_sweep(cfg.orphan_grace_h * 3600, &oc) != 0) {
		snprintf(err, errlen, "cannot tell orphaned files from the library's");
		return -1;
	}
	logs_prune(cfg.log_keep_days, &logs);
	log_info("cleanup done", "\"rows\":%ld,\"orphaned_files\":%lld,"
	    "\"cover_dirs\":%lld,\"hls_dirs\":%lld,\"upload_files\":%lld,"
	    "\"old_logs\":%lld", total, oc.audio_files, oc.cover_dirs, oc.hls_dirs,
	    oc.upload_files, logs);
	return 0;
}

/*
 * Popularity 0..100 from the last 30 days: plays (each counts 1, a play
 * of a week ago half) and likes (3 each), on a log scale against the most
 * popular track. Only rows whose figure changes are written.
 */
static int
job_popularity(struct json_object *args, char *err, size_t errlen)
{
	static const char	 sql[] =
	    "WITH s AS ("
	    " SELECT t.id, coalesce(p.score, 0) + 3 * coalesce(f.likes, 0) AS score"
	    " FROM tracks t"
	    " LEFT JOIN (SELECT track_id, sum(power(0.5, extract(epoch FROM now() - played_at)"
	    "  / 604800)) AS score FROM playback_history"
	    "  WHERE played_at > now() - interval '30 days' GROUP BY track_id) p"
	    "  ON p.track_id = t.id"
	    " LEFT JOIN (SELECT track_id, count(*) AS likes FROM user_favorites"
	    "  GROUP BY track_id) f ON f.track_id = t.id"
	    " WHERE t.is_active),"
	    " m AS (SELECT greatest(max(score), 1) AS top FROM s)"
	    " UPDATE tracks t SET popularity = n.pop FROM"
	    " (SELECT s.id, least(100, round(100 * ln(1 + s.score) / ln(1 + m.top)))::int AS pop"
	    "  FROM s, m) n WHERE t.id = n.id AND t.popularity <> n.pop";
	long	 rows;

	(void)args;
	if (!db_ok()) {
		snprintf(err, errlen, "database unavailable");
		return -1;
	}
	if (db_run(sql, NULL, 0, &rows) != 0) {
		snprintf(err, errlen, "popularity update failed");
		return -1;
	}
	log_info("popularity recomputed", "\"changed\":%ld", rows);
	return 0;
}

struct mail_src {
	const char	*data;
	size_t		 len, off;
};

static size_t
mail_read(char *buf, size_t size, size_t n, void *arg)
{
	struct mail_src	*m = arg;
	size_t		 k = size * n;

	if (k > m->len - m->off)
		k = m->len - m->off;
	memcpy(buf, m->data + m->off, k);
	m->off += k;
	return k;
}

/* One message by SMTP. 0 if the server took it. OUT: err. */
static int
smtp_send(const char *to, const char *subject, const char *body, char *err,
    size_t errlen)
{
	CURL			*c = curl_easy_init();
	struct curl_slist	*rcpt = NULL;
	struct mail_src		 m;
	char			 date[64], *msg;
	time_t			 now = time(NULL);
	struct tm		 tm;
	CURLcode		 rc;
	size_t			 cap;

	if (c == NULL) {
		snprintf(err, errlen, "curl unavailable");
		return -1;
	}
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	cap = strlen(to) + strlen(subject) + strlen(body) + strlen(cfg.smtp_from) + 512;
	if ((msg = malloc(cap)) == NULL)
		abort();
	m.len = (size_t)snprintf(msg, cap, "Date: %s\r\nFrom: %s\r\nTo: <%s>\r\n"
	    "Subject: %s\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n%s\r\n", date, cfg.smtp_from, to,
	    subject, body);
	m.data = msg;
	m.off = 0;
	rcpt = curl_slist_append(rcpt, to);
	curl_easy_setopt(c, CURLOPT_URL, cfg.smtp_url);
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, cfg.smtp_from);
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, mail_read);
	curl_easy_setopt(c, CURLOPT_READDATA, &m);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (cfg.smtp_user != NULL) {
		curl_easy_setopt(c, CURLOPT_USERNAME, cfg.smtp_user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, cfg.smtp_password ?
		    cfg.smtp_password : "");
	}
	if (strncmp(cfg.smtp_url, "smtps://", 8) != 0)
		curl_easy_setopt(c, CURLOPT_USE_SSL, cfg.smtp_starttls ?
		    (long)CURLUSESSL_ALL : (long)CURLUSESSL_NONE);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK)
		snprintf(err, errlen, "smtp: %s", curl_easy_strerror(rc));
	curl_slist_free_all(rcpt);
	curl_easy_cleanup(c);
	free(msg);
	return rc == CURLE_OK ? 0 : -1;
}

/* A message that failed its last attempt, kept with the dead jobs. */
static void
mail_dead_letter(const char *id, const char *to, int attempts, const char *err)
{
	struct json_object	*j = json_object_new_object();
	struct json_object	*args = json_object_new_object();

	json_object_object_add(args, "outbox_id", json_object_new_string(id));
	json_object_object_add(args, "to", json_object_new_string(to));
	json_object_object_add(j, "id", json_object_new_string(id));
	json_object_object_add(j, "type", json_object_new_string("mail"));
	json_object_object_add(j, "args", args);
	json_object_object_add(j, "attempts", json_object_new_int(attempts));
	json_object_object_add(j, "max_attempts", json_object_new_int(3));
	json_object_object_add(j, "last_error", json_object_new_string(err));
	json_object_object_add(j, "failed_at", json_object_new_int64(wall_ms()));
	reply_free(rds_command(NULL, "LPUSH %s %s", JOBS_DEAD,
	    json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN)));
	reply_free(rds_command(NULL, "LTRIM %s 0 %d", JOBS_DEAD, DEAD_KEEP - 1));
	reply_free(rds_command(NULL, "HINCRBY %s dead:mail-message 1", JOBS_STATS));
	json_object_put(j);
}

/* The messages due: not sent, their time come, attempts left ($1). */
#define OUTBOX_DUE	" FROM outbox WHERE sent_at IS NULL AND send_after <= now()" \
			" AND attempts < $1::int"

/*
 * The outbox: every message due, each locked (SKIP LOCKED: runners share
 * the work), sent, and marked sent in the same transaction, so a message
 * is never sent by two runners. A failure is kept on the message, which
 * is tried again after the jobs' back-off; after DJAMMS_MAIL_MAX_ATTEMPTS
 * it is dead-lettered (kept, with its error, among the dead jobs; a retry
 * of that sends it again). args {"outbox_id"} first revives one message.
 * The job fails (and is retried) when the server refused everything, or
 * when mail waits and no server is set.
 */
static int
job_mail(struct json_object *args, char *err, size_t errlen)
{
	struct json_object	*v;
	PGconn			*c;
	char			 backoff[24];
	char			 att[16];
	int			 sent = 0, failed = 0;

	if (!db_ok()) {
		snprintf(err, errlen, "database unavailable");
		return -1;
	}
	c = db_conn();
	snprintf(att, sizeof(att), "%ld", cfg.mail_max_attempts);
	if (args != NULL && json_object_object_get_ex(args, "outbox_id", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    uuid_valid(json_object_get_string(v))) {
		const char	*a[1] = { json_object_get_string(v) };
		PGresult	*res = PQexecParams(c, "UPDATE outbox SET attempts = 0,"
		    " send_after = now(), last_error = NULL WHERE id = $1::uuid"
		    " AND sent_at IS NULL", 1, NULL, a, NULL, NULL, 0);

		PQclear(res);
	}
	if (cfg.smtp_url == NULL) {
		/*
		 * No mail server (mail is optional): the minutely run has
		 * nothing to do, which is no failure to retry and dead-letter
		 * every minute. Mail that waits stays in the outbox for when
		 * one is set, and the job fails, so that an operator sees it.
		 */
		const char	*a[1] = { att };
		PGresult	*res = PQexecParams(c, "SELECT count(*)" OUTBOX_DUE, 1, NULL,
		    a, NULL, NULL, 0);
		long		 waiting = PQresultStatus(res) == PGRES_TUPLES_OK ?
		    atol(PQgetvalue(res, 0, 0)) : -1;

		PQclear(res);
		if (waiting == 0)
			return 0;
		if (waiting < 0)
			snprintf(err, errlen, "outbox unreadable: %s", PQerrorMessage(c));
		else
			snprintf(err, errlen, "%ld message(s) wait in the outbox:"
			    " DJAMMS_SMTP_URL is not set", waiting);
		return -1;
	}
	for (;;) {
		PGresult	*res;
		char		 e[256] = "";
		const char	*id, *to;
		int		 ok, attempts;

		res = PQexec(c, "BEGIN");
		PQclear(res);
		{
			const char	*a[1] = { att };

			res = PQexecParams(c, "SELECT id, to_address, subject, body, attempts"
			    OUTBOX_DUE " ORDER BY send_after LIMIT 1"
			    " FOR UPDATE SKIP LOCKED", 1, NULL, a, NULL, NULL, 0);
		}
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			/* a connection cut (a restore switched databases): again later */
			snprintf(err, errlen, "outbox unreadable: %s", PQerrorMessage(c));
			PQclear(res);
			res = PQexec(c, "ROLLBACK");
			PQclear(res);
			return -1;
		}
		if (PQntuples(res) == 0) {
			PQclear(res);
			res = PQexec(c, "ROLLBACK");
			PQclear(res);
			break;
		}
		id = PQgetvalue(res, 0, 0);
		to = PQgetvalue(res, 0, 1);
		attempts = atoi(PQgetvalue(res, 0, 4)) + 1;
		ok = smtp_send(to, PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), e,
		    sizeof(e)) == 0;
		snprintf(backoff, sizeof(backoff), "%lld", jobs_backoff_ms(attempts));
		{
			const char	*a[3] = { id, e, backoff };
			PGresult	*u = PQexecParams(c, ok ?
			    "UPDATE outbox SET sent_at = now(), attempts = attempts + 1,"
			    " last_error = NULL WHERE id = $1 AND $2::text IS NOT NULL"
			    " AND $3::text IS NOT NULL" :
			    "UPDATE outbox SET attempts = attempts + 1, last_error = $2,"
			    " send_after = now() + make_interval(secs => $3::bigint / 1000.0)"
			    " WHERE id = $1", 3, NULL, a, NULL, NULL, 0);

			PQclear(u);
		}
		if (!ok && attempts >= cfg.mail_max_attempts)
			mail_dead_letter(id, to, attempts, e);
		PQclear(res);
		res = PQexec(c, "COMMIT");
		PQclear(res);
		if (ok)
			sent++;
		else {
			failed++;
			char	 esc[600];

			json_escape_into(esc, 0, sizeof(esc), e);
			log_warn("mail not sent", "\"error\":\"%s\",\"attempts\":%d", esc,
			    attempts);
			break;		/* the server is likely down: later */
		}
	}
	log_info("mail done", "\"sent\":%d,\"failed\":%d", sent, failed);
	if (failed > 0 && sent == 0) {
		snprintf(err, errlen, "the mail server refused or is away");
		return -1;
	}
	return 0;
}

/* args.track_id if it is one, else NULL. */
static const char *
arg_track(struct json_object *args)
{
	struct json_object	*v;

	if (args != NULL && json_object_object_get_ex(args, "track_id", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    uuid_valid(json_object_get_string(v)))
		return json_object_get_string(v);
	return NULL;
}

/*
 * The tracks a media job works on, (id, file_path): one's, if it has
 * audio; else up to limit of the active tracks with audio that todo (a
 * constant SQL condition) picks, oldest first.
 */
static PGresult *
media_todo(const char *one, const char *todo, int limit)
{
	const char	*a[1] = { one };
	char		 sql[512];

	if (one != NULL)
		return PQexecParams(db_conn(), "SELECT id, file_path FROM tracks"
		    " WHERE id = $1::uuid AND file_path IS NOT NULL", 1, NULL, a, NULL,
		    NULL, 0);
	snprintf(sql, sizeof(sql), "SELECT id, file_path FROM tracks WHERE is_active"
	    " AND file_path IS NOT NULL AND %s ORDER BY created_at LIMIT %d", todo, limit);
	return PQexec(db_conn(), sql);
}

/*
 * Cover thumbnails for tracks that have none yet (an import, a restore, a
 * file replaced by hand), or for args {"track_id"} again: the embedded
 * picture at 150/300/600 px, JPEG and WebP. A track without a picture is
 * marked checked (metadata.cover_checked) and not looked at again.
 * Idempotent: the files are written whole, then has_cover is set.
 */
static int
job_thumbnails(struct json_object *args, char *err, size_t errlen)
{
	const char	*one = arg_track(args);
	PGresult	*res;
	int		 i, made = 0, none = 0;

	if (!db_ok()) {
		snprintf(err, errlen, "database unavailable");
		return -1;
	}
	res = media_todo(one, "NOT has_cover AND NOT metadata ? 'cover_checked'", 500);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		snprintf(err, errlen, "cannot list the tracks");
		return -1;
	}
	for (i = 0; i < PQntuples(res); i++) {
		const char	*id = PQgetvalue(res, i, 0);
		char		 path[4200], dir[4300];
		unsigned char	*data = NULL;
		size_t		 len = 0;
		int		 ok = 0;
		PGresult	*u;
		const char	*a[1] = { id };

		if (strstr(PQgetvalue(res, i, 1), "..") != NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", cfg.storage_dir, PQgetvalue(res, i, 1));
		if (media_cover_extract(path, &data, &len) == 0) {
			snprintf(dir, sizeof(dir), "%s/images/tracks", cfg.storage_dir);
			mkdir(dir, 0750);
			snprintf(dir, sizeof(dir), "%s/images/tracks/%s", cfg.storage_dir, id);
			ok = media_covers_write(data, len, dir) == 0;
			free(data);
		}
		u = PQexecParams(db_conn(), ok ?
		    "UPDATE tracks SET has_cover = true WHERE id = $1::uuid AND NOT has_cover" :
		    "UPDATE tracks SET metadata = metadata || '{\"cover_checked\":true}'"
		    " WHERE id = $1::uuid", 1, NULL, a, NULL, NULL, 0);
		PQclear(u);
		if (ok)
			made++;
		else
			none++;
	}
	PQclear(res);
	log_info("thumbnails done", "\"made\":%d,\"without_picture\":%d", made, none);
	return 0;
}

/* ---- tracks' audio: analysis and HLS -------------------------------- */

#define SWEEP_BATCH	20
#define SWEEP_BUDGET_S	300

/*
 * One sweep of a kind at a time across runners (a second one would only
 * redo the first one's tracks): a Redis lock with an expiry, in case the
 * holder dies. 1 taken, 0 held by another, -1 Redis away.
 */
static int
sweep_lock(const char *kind, int take)
{
	struct redisReply	*rep;
	int			 rc;

	if (!take) {
		reply_free(rds_command(NULL, "DEL jobs:sweep:%s", kind));
		return 1;
	}
	rep = rds_command(NULL, "SET jobs:sweep:%s %s NX EX %d", kind, cfg.jobs_name,
	    SWEEP_BUDGET_S * 2);
	rc = rep == NULL ? -1 : rep->type == REDIS_REPLY_STATUS ? 1 : 0;
	reply_free(rep);
	return rc;
}

/* Analyse one track; -1 only for a database failure (OUT: err). */
static int
analyse_one(const char *id, const char *rel, char *err, size_t errlen)
{
	struct media_analysis	 a;
	char			 path[4200], e[256] = "", n[5][32];
	const char		*abs = library_audio_path(rel, path, sizeof(path));
	PGresult		*res;
	int			 ok;

	ok = abs != NULL && media_analyze(abs, &a, e, sizeof(e)) == 0;
	if (!ok) {
		char	 esc[600];

		json_escape_into(esc, 0, sizeof(esc), abs == NULL ? "not in storage" : e);
		log_warn("track not analysed", "\"track\":\"%s\",\"error\":\"%s\"", id, esc);
		memset(&a, 0, sizeof(a));
	}
	snprintf(n[0], sizeof(n[0]), "%.2f", a.bpm);
	snprintf(n[1], sizeof(n[1]), "%.3f", a.bpm_confidence);
	snprintf(n[2], sizeof(n[2]), "%.2f", a.lufs);
	snprintf(n[3], sizeof(n[3]), "%.2f", a.lra);
	snprintf(n[4], sizeof(n[4]), "%.2f", a.peak_dbfs);
	{
		const char	*p[6] = { id, a.has_bpm ? n[0] : NULL,
				    a.has_bpm ? n[1] : NULL, a.has_loudness ? n[2] : NULL,
				    a.has_loudness ? n[3] : NULL, a.has_loudness ? n[4] : NULL };

		res = PQexecParams(db_conn(), "UPDATE tracks SET bpm = $2::real,"
		    " bpm_confidence = $3::real, loudness_lufs = $4::real,"
		    " loudness_range = $5::real, peak_dbfs = $6::real, analyzed_at = now()"
		    " WHERE id = $1::uuid", 6, NULL, p, NULL, NULL, 0);
	}
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	if (!ok)
		snprintf(err, errlen, "cannot store the analysis");
	return ok ? 0 : -1;
}

/* HLS for one track; -1 for a failure worth a retry of the job. */
static int
hls_one(const char *id, const char *rel, char *err, size_t errlen)
{
	char		 path[4200], e[400] = "";
	const char	*abs = library_audio_path(rel, path, sizeof(path));
	PGresult	*res;
	int		 rc;

	rc = abs == NULL ? 1 : hls_build(id, abs, e, sizeof(e));
	if (rc < 0) {
		snprintf(err, errlen, "%s", e);
		return -1;
	}
	{
		const char	*p[2] = { id, rc == 0 ? NULL : abs == NULL ?
				    "the file is not in storage" : e };

		/* the row may have gone meanwhile: then so do the renditions */
		res = PQexecParams(db_conn(), rc == 0 ?
		    "UPDATE tracks SET hls_ready_at = now(), hls_error = NULL"
		    " WHERE id = $1::uuid AND file_path IS NOT NULL AND $2::text IS NULL"
		    " RETURNING id" :
		    "UPDATE tracks SET hls_ready_at = NULL, hls_error = left($2, 500)"
		    " WHERE id = $1::uuid RETURNING id", 2, NULL, p, NULL, NULL, 0);
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		snprintf(err, errlen, "cannot record the renditions");
		return -1;
	}
	if (PQntuples(res) == 0 && rc == 0)
		hls_remove(id);
	if (rc != 0) {
		char	 esc[900];

		json_escape_into(esc, 0, sizeof(esc), abs == NULL ? "not in storage" : e);
		log_warn("no HLS for a track", "\"track\":\"%s\",\"error\":\"%s\"", id, esc);
	}
	PQclear(res);
	return 0;
}

/*
 * A media job's work: args.track_id's track, or, as a sweep, every track
 * todo picks, oldest first, in batches, for at most SWEEP_BUDGET_S; the
 * sweep queues itself again when tracks are left. One sweep of a kind at
 * a time across runners (sweep_lock). each() does one track; its -1 stops
 * the job, which fails (and is retried).
 */
static int
media_sweep(const char *kind, const char *todo, struct json_object *args,
    int (*each)(const char *, const char *, char *, size_t), char *err, size_t errlen)
{
	const char	*one = arg_track(args);
	time_t		 start = time(NULL);
	int		 done = 0, more = 0, failed = 0, i;
	PGresult	*res;

	if (one == NULL && sweep_lock(kind, 1) != 1)
		return 0;		/* another runner sweeps (or Redis is away) */
	do {
		res = media_todo(one, todo, SWEEP_BATCH);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			snprintf(err, errlen, "cannot list the tracks");
			failed = 1;
		}
		for (i = 0; !failed && i < PQntuples(res); i++, done++)
			failed = each(PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), err,
			    errlen) != 0;
		more = !failed && one == NULL && PQntuples(res) == SWEEP_BATCH;
		PQclear(res);
	} while (more && !jobs_stop && time(NULL) - start < SWEEP_BUDGET_S);
	if (one == NULL) {
		sweep_lock(kind, 0);
		if (more)
			jobs_enqueue(kind, NULL, 3, NULL);
	}
	log_info("media job done", "\"type\":\"%s\",\"tracks\":%d,\"more\":%s", kind, done,
	    more ? "true" : "false");
	return failed ? -1 : 0;
}

/*
 * Tempo and loudness (analysis.c) of args.track_id, or of every track not
 * analysed yet. A file that does not decode is marked analysed without
 * figures (a retry would not change that).
 */
static int
job_analysis(struct json_object *args, char *err, size_t errlen)
{
	if (!db_ok()) {
		snprintf(err, errlen, "database unavailable");
		return -1;
	}
	return media_sweep("analysis", "analyzed_at IS NULL", args, analyse_one, err,
	    errlen);
}

/*
 * HLS renditions (hls.c) of args.track_id, or of every track without
 * them. Nothing when the hls_enabled setting is false. A file ffmpeg
 * refuses keeps the reason (hls_error) and is not tried again by the
 * sweep; a job for that one track tries again.
 */
static int
job_hls(struct json_object *args, char *err, size_t errlen)
{
	PGresult	*res;
	int		 off;

	if (!db_ok()) {
		snprintf(err, errlen, "database unavailable");
		return -1;
	}
	res = PQexec(db_conn(), "SELECT coalesce((SELECT value = 'false'::jsonb"
	    " FROM system_settings WHERE key = 'hls_enabled'), false)");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		snprintf(err, errlen, "cannot read the settings");
		return -1;
	}
	off = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (off) {
		log_info("hls is turned off", "\"track\":%s", arg_track(args) ? "true" : "false");
		return 0;
	}
	return media_sweep("hls", "hls_ready_at IS NULL AND hls_error IS NULL", args,
	    hls_one, err, errlen);
}

/* args {"media": bool}: a backup (backup.c). */
static int
job_backup(struct json_object *args, char *err, size_t errlen)
{
	struct json_object	*v;
	char			 name[64];
	int			 media = 1;

	if (args != NULL && json_object_object_get_ex(args, "media", &v))
		media = json_object_get_boolean(v);
	return backup_create(media, name, err, errlen);
}

/* args {"name"}: a restore (backup.c); switches only when it succeeded. */
static int
job_restore(struct json_object *args, char *err, size_t errlen)
{
	struct json_object	*v;

	if (args == NULL || !json_object_object_get_ex(args, "name", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "no backup named");
		return -1;
	}
	return backup_restore(json_object_get_string(v), err, errlen);
}

/* A job that does nothing: the bench's, and a probe of the queue. */
static int
job_noop(struct json_object *args, char *err, size_t errlen)
{
	(void)args;
	(void)err;
	(void)errlen;
	return 0;
}

/* Tests only: sleeps args.ms (a job to kill a runner in the middle of). */
static int
job_sleep(struct json_object *args, char *err, size_t errlen)
{
	struct json_object	*v;
	long			 ms = 1000;

	(void)err;
	(void)errlen;
	if (args != NULL && json_object_object_get_ex(args, "ms", &v))
		ms = json_object_get_int(v);
	usleep((useconds_t)(ms > 0 && ms < 60000 ? ms : 1000) * 1000);
	return 0;
}

/* Tests only (DJAMMS_TEST_ROUTES=1): always fails. */
static int
job_fail(struct json_object *args, char *err, size_t errlen)
{
	(void)args;
	snprintf(err, errlen, "failing on purpose");
	return -1;
}

static int
job_run(const char *type, struct json_object *args, char *err, size_t errlen)
{
	if (strcmp(type, "cleanup") == 0)
		return job_cleanup(args, err, errlen);
	if (strcmp(type, "popularity") == 0)
		return job_popularity(args, err, errlen);
	if (strcmp(type, "mail") == 0)
		return job_mail(args, err, errlen);
	if (strcmp(type, "noop") == 0)
		return job_noop(args, err, errlen);
	if (strcmp(type, "backup") == 0)
		return job_backup(args, err, errlen);
	if (strcmp(type, "thumbnails") == 0)
		return job_thumbnails(args, err, errlen);
	if (strcmp(type, "analysis") == 0)
		return job_analysis(args, err, errlen);
	if (strcmp(type, "hls") == 0)
		return job_hls(args, err, errlen);
	if (strcmp(type, "restore") == 0)
		return job_restore(args, err, errlen);
	if (strcmp(type, "fail") == 0 && cfg.test_routes)
		return job_fail(args, err, errlen);
	if (strcmp(type, "sleep") == 0 && cfg.test_routes)
		return job_sleep(args, err, errlen);
	snprintf(err, errlen, "unknown job type");
	return -1;
}

/* ---- the runner ----------------------------------------------------- */

/* Due delayed jobs back on the queue, atomically. */
/* A job's queue: KEYS[3] (bulk) if jobs_enqueue() marked it so, else KEYS[2]. */
#define BULK_LUA \
	"local function queue_of(j) local ok, d = pcall(cjson.decode, j)" \
	" if ok and type(d) == 'table' and d.queue == 'bulk' then return KEYS[3] end" \
	" return KEYS[2] end "

/* Due delayed jobs back on their queue, atomically. */
static const char	 promote_lua[] = BULK_LUA
	"local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)"
	" for _, j in ipairs(due) do redis.call('ZREM', KEYS[1], j)"
	" redis.call('LPUSH', queue_of(j), j) end return #due";

/* A dead runner's list back on the queues, atomically. */
static const char	 recover_lua[] = BULK_LUA
	"if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end"
	" local n = 0 while true do local j = redis.call('RPOP', KEYS[1])"
	" if not j then break end redis.call('LPUSH', queue_of(j), j) n = n + 1 end"
	" return n";

static void
on_term(int sig)
{
	(void)sig;
	jobs_stop = 1;
}

static void
recover_orphans(void)
{
	struct redisReply	*rep;
	char			 cursor[32] = "0";
	size_t			 i;

	do {
		rep = rds_command(NULL, "SCAN %s MATCH jobs:processing:* COUNT 100", cursor);
		if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
			reply_free(rep);
			return;
		}
		snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
		for (i = 0; i < rep->element[1]->elements; i++) {
			const char		*list = rep->element[1]->element[i]->str;
			char			 hb[160];
			struct redisReply	*r2;

			snprintf(hb, sizeof(hb), "jobs:runner:%s",
			    list + strlen("jobs:processing:"));
			r2 = rds_command(NULL, "EVAL %s 4 %s %s %s %s", recover_lua, list,
			    JOBS_QUEUE, JOBS_BULK, hb);
			if (r2 != NULL && r2->type == REDIS_REPLY_INTEGER && r2->integer > 0) {
				char	 esc[400];

				json_escape_into(esc, 0, sizeof(esc), list);
				log_warn("jobs of a dead runner put back on the queue",
				    "\"list\":\"%s\",\"jobs\":%lld", esc, r2->integer);
			}
			reply_free(r2);
		}
		reply_free(rep);
	} while (strcmp(cursor, "0") != 0);
}

/* A job done: counted, its latency kept (noop), then off the processing list. */
static const char	 ack_lua[] =
	"redis.call('HINCRBY', KEYS[2], ARGV[1], 1)"
	" if tonumber(ARGV[3]) >= 0 then redis.call('LPUSH', KEYS[3], ARGV[3])"
	" redis.call('LTRIM', KEYS[3], 0, 99999) end"
	" return redis.call('LREM', KEYS[1], 1, ARGV[2])";

/* Back-off before attempt n + 1: base * 2^(n-1), at most an hour. */
long long
jobs_backoff_ms(int attempts)
{
	long long	 ms = cfg.jobs_backoff_ms;
	int		 i;

	for (i = 1; i < attempts && ms < 3600000; i++)
		ms *= 2;
	return ms < 3600000 ? ms : 3600000;
}

static void
work_one(const char *proc, const char *raw)
{
	struct json_object	*j = json_tokener_parse(raw), *v;
	char			 err[512] = "";
	const char		*type = NULL;
	int			 attempts = 0, max = 5, rc;
	uint64_t		 t0 = now_us();

	if (j != NULL && json_object_object_get_ex(j, "type", &v))
		type = json_object_get_string(v);
	if (j != NULL && json_object_object_get_ex(j, "attempts", &v))
		attempts = json_object_get_int(v);
	if (j != NULL && json_object_object_get_ex(j, "max_attempts", &v))
		max = json_object_get_int(v);
	if (type == NULL) {
		snprintf(err, sizeof(err), "not a job");
		rc = -1;
		attempts = max;		/* nothing to retry */
	} else {
		json_object_object_get_ex(j, "args", &v);
		rc = job_run(type, v, err, sizeof(err));
	}
	/*
	 * A connection the server cut (a restore, a restart) still looks fine
	 * to libpq until used: after a failure, drop a bad one, so the retry
	 * connects again.
	 */
	if (rc != 0 && db_conn() != NULL && PQstatus(db_conn()) != CONNECTION_OK)
		db_disconnect();
	if (rc == 0) {
		long long	 lat = -1;

		/* end-to-end latency of the trivial jobs, for the bench */
		if (strcmp(type, "noop") == 0 &&
		    json_object_object_get_ex(j, "enqueued_at", &v))
			lat = wall_ms() - json_object_get_int64(v);
		/* counted and acknowledged in one round trip */
		reply_free(rds_command(NULL, "EVAL %s 3 %s %s jobs:latency:noop done:%s %s %lld",
		    ack_lua, proc, JOBS_STATS, type, raw, lat));
		log_info("job done", "\"type\":\"%s\",\"duration_us\":%llu", type,
		    (unsigned long long)(now_us() - t0));
		json_object_put(j);
		return;
	} else {
		char	 esc[600];

		attempts++;
		if (j == NULL)
			j = json_object_new_object();
		json_object_object_add(j, "attempts", json_object_new_int(attempts));
		json_object_object_add(j, "last_error", json_object_new_string(err));
		json_object_object_add(j, "failed_at", json_object_new_int64(wall_ms()));
		json_escape_into(esc, 0, sizeof(esc), err);
		if (attempts >= max) {
			reply_free(rds_command(NULL, "LPUSH %s %s", JOBS_DEAD,
			    json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN)));
			reply_free(rds_command(NULL, "LTRIM %s 0 %d", JOBS_DEAD, DEAD_KEEP - 1));
			reply_free(rds_command(NULL, "HINCRBY %s dead:%s 1", JOBS_STATS,
			    type ? type : "-"));
			log_error("job failed for good", "\"type\":\"%s\",\"attempts\":%d,"
			    "\"error\":\"%s\"", type ? type : "-", attempts, esc);
		} else {
			reply_free(rds_command(NULL, "ZADD %s %lld %s", JOBS_DELAYED,
			    wall_ms() + jobs_backoff_ms(attempts),
			    json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN)));
			reply_free(rds_command(NULL, "HINCRBY %s retried:%s 1", JOBS_STATS,
			    type));
			log_warn("job failed; retried later", "\"type\":\"%s\","
			    "\"attempts\":%d,\"error\":\"%s\"", type, attempts, esc);
		}
	}
	/* the acknowledgement: it leaves the processing list last */
	reply_free(rds_command(NULL, "LREM %s 1 %s", proc, raw));
	json_object_put(j);
}

static void
schedule_tick(long long *next_hourly, long long *next_minutely)
{
	long long	 now = wall_ms();

	if (now >= *next_minutely) {
		jobs_enqueue("mail", NULL, 3, NULL);
		*next_minutely = now + 60000;
	}
	if (now >= *next_hourly) {
		jobs_enqueue("cleanup", NULL, 3, NULL);
		jobs_enqueue("popularity", NULL, 3, NULL);
		jobs_enqueue("thumbnails", NULL, 3, NULL);
		jobs_enqueue("analysis", NULL, 3, NULL);
		jobs_enqueue("hls", NULL, 3, NULL);
		*next_hourly = now + 3600000;
	}
}

static void
runner_loop(int index, int workers, int schedule)
{
	char			 id[96], proc[160], hb[160];
	uint64_t		 last_hb = 0, last_recover = 0, last_promote = 0;
	long			 block_ms = cfg.jobs_poll_ms < cfg.redis_timeout_ms / 2 ?
				    cfg.jobs_poll_ms : cfg.redis_timeout_ms / 2;
	long long		 next_hourly = 0, next_minutely = 0;
	int			 bulk = index > 0 || workers < 2;

	snprintf(id, sizeof(id), "%s-%ld-%d", cfg.jobs_name, (long)getpid(), index);
	snprintf(proc, sizeof(proc), "jobs:processing:%s", id);
	snprintf(hb, sizeof(hb), "jobs:runner:%s", id);
	log_info("job runner started", "\"runner\":\"%s\"", id);
	while (!jobs_stop) {
		struct redisReply	*rep;

		if (now_us() - last_hb >= (uint64_t)cfg.jobs_heartbeat_s * 1000000 / 6) {
			reply_free(rds_command(NULL, "SET %s %lld EX %ld", hb, wall_ms(),
			    cfg.jobs_heartbeat_s));
			/*
			 * the runners, each with the moment it is taken for dead
			 * unless heard from again: a reader needs no heartbeat
			 * setting of its own (the pool's may not be the runners')
			 */
			reply_free(rds_command(NULL, "ZADD jobs:runners %lld %s", wall_ms() +
			    cfg.jobs_heartbeat_s * 1000LL, id));
			reply_free(rds_command(NULL, "ZREMRANGEBYSCORE jobs:runners -inf %lld",
			    wall_ms() - 86400000LL));
			last_hb = now_us();
		}
		if (now_us() - last_recover >= (uint64_t)cfg.jobs_heartbeat_s * 1000000 / 3) {
			recover_orphans();
			last_recover = now_us();
		}
		if (schedule && index == 0)
			schedule_tick(&next_hourly, &next_minutely);
		/* due retries back on the queue, ten times a second at most */
		if (now_us() - last_promote >= 100000) {
			reply_free(rds_command(NULL, "EVAL %s 3 %s %s %s %lld", promote_lua,
			    JOBS_DELAYED, JOBS_QUEUE, JOBS_BULK, wall_ms()));
			last_promote = now_us();
		}
		/*
		 * Wait for a job on the queue itself (BLMOVE) rather than polling
		 * it: a job pushed now is taken at once. The wait stays within the
		 * Redis command timeout, and the loop comes round for heartbeats
		 * and due retries.
		 */
		rep = NULL;
		if (bulk) {
			/* the main queue first, then the bulk one, then wait on the main */
			rep = rds_command(NULL, "LMOVE %s %s RIGHT LEFT", JOBS_QUEUE, proc);
			if (rep != NULL && rep->type != REDIS_REPLY_STRING) {
				reply_free(rep);
				rep = rds_command(NULL, "LMOVE %s %s RIGHT LEFT", JOBS_BULK, proc);
			}
			if (rep != NULL && rep->type != REDIS_REPLY_STRING) {
				reply_free(rep);
				rep = NULL;
			}
		}
		if (rep == NULL)
			rep = rds_command(NULL, "BLMOVE %s %s RIGHT LEFT %.3f", JOBS_QUEUE,
			    proc, (double)block_ms / 1000.0);
		if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
			char	*raw = strdup(rep->str);

			reply_free(rep);
			if (raw == NULL)
				abort();
			work_one(proc, raw);
			free(raw);
			continue;
		}
		if (rep == NULL)	/* Redis away: do not spin */
			usleep(cfg.jobs_poll_ms * 1000);
		reply_free(rep);
	}
	reply_free(rds_command(NULL, "DEL %s", hb));
	reply_free(rds_command(NULL, "ZREM jobs:runners %s", id));
	log_info("job runner stopped", "\"runner\":\"%s\"", id);
}

static int
runner_child(int index, int workers, int schedule)
{
	struct sigaction	 sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rds_connect();
	db_connect();
	runner_loop(index, workers, schedule);
	db_disconnect();
	rds_disconnect();
	curl_global_cleanup();
	return 0;
}

/* djamms jobs run [--workers N] [--schedule]: the runner's master. */
static int
runner_run(int workers, int schedule)
{
	pid_t			*pids;
	struct sigaction	 sa;
	int			 i, alive;

	if ((pids = calloc((size_t)workers, sizeof(*pids))) == NULL)
		abort();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/*
	 * The API comes first on a shared machine: the runners (and what they
	 * start, ffmpeg, pg_dump) yield the CPU. SCHED_IDLE (no privilege
	 * needed) lets any API process that wakes up take the CPU from a
	 * runner at once; a nice level alone leaves it a slice first.
	 */
	if (setpriority(PRIO_PROCESS, 0, (int)cfg.jobs_nice) != 0)
		log_warn("job runner priority unchanged", "\"nice\":%ld", cfg.jobs_nice);
	if (cfg.jobs_idle) {
		struct sched_param	 sp = { .sched_priority = 0 };

		if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
			log_warn("job runner scheduling unchanged", "\"policy\":\"idle\"");
	}
	log_info("job runner starting", "\"workers\":%d,\"schedule\":%s,\"nice\":%ld,"
	    "\"idle\":%s", workers, schedule ? "true" : "false", cfg.jobs_nice,
	    cfg.jobs_idle ? "true" : "false");
	for (;;) {
		for (i = 0; i < workers && !jobs_stop; i++) {
			if (pids[i] > 0)
				continue;
			if ((pids[i] = fork()) == 0)
				_exit(runner_child(i, workers, schedule));
		}
		if (jobs_stop)
			break;
		{
			int	 status;
			pid_t	 p = waitpid(-1, &status, 0);

			for (i = 0; p > 0 && i < workers; i++)
				if (pids[i] == p) {
					pids[i] = 0;
					if (!jobs_stop) {
						log_warn("job runner process ended; replaced",
						    "\"status\":%d", status);
						sleep(1);
					}
				}
		}
	}
	for (i = 0; i < workers; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	do {
		alive = 0;
		for (i = 0; i < workers; i++)
			if (pids[i] > 0 && waitpid(pids[i], NULL, 0) == pids[i])
				pids[i] = 0;
			else if (pids[i] > 0)
				alive++;
	} while (alive > 0 && errno == EINTR);
	free(pids);
	log_info("job runner stopped", NULL);
	return 0;
}

int
jobs_cli(int argc, char **argv)
{
	int	 i;

	if (argc >= 1 && strcmp(argv[0], "run") == 0) {
		int	 workers = cfg.jobs_workers, schedule = 0;

		for (i = 1; i < argc; i++) {
			if (strcmp(argv[i], "--schedule") == 0)
				schedule = 1;
			else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
				workers = atoi(argv[++i]);
			else {
				fprintf(stderr, "djamms jobs run: unknown argument %s\n", argv[i]);
				return 2;
			}
		}
		if (workers < 1 || workers > 64) {
			fprintf(stderr, "djamms jobs run: --workers is 1 to 64\n");
			return 2;
		}
		return runner_run(workers, schedule);
	}
	if (argc >= 2 && strcmp(argv[0], "enqueue") == 0) {
		int	 rc = 0;

		if (rds_connect() != 0) {
			fprintf(stderr, "djamms jobs enqueue: Redis is not reachable\n");
			return 1;
		}
		for (i = 1; i < argc; i++) {
			char	 id[37];

			if (!jobs_type_known(argv[i])) {
				fprintf(stderr, "djamms jobs enqueue: unknown job type %s\n",
				    argv[i]);
				rc = 2;
				continue;
			}
			if (jobs_enqueue(argv[i], NULL, 3, id) != 0) {
				fprintf(stderr, "djamms jobs enqueue: %s not queued\n", argv[i]);
				rc = 1;
			} else
				printf("%s %s\n", argv[i], id);
		}
		rds_disconnect();
		return rc;
	}
	fprintf(stderr, "usage: djamms jobs run [--workers N] [--schedule]\n"
	    "       djamms jobs enqueue TYPE...  (cleanup, popularity, mail)\n");
	return 2;
}
