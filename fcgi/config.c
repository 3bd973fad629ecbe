/*
 * fcgi/config.c: configuration from the environment (systemd's
 * EnvironmentFile=, or the shell). Every variable is validated at start;
 * a bad value stops the program with a message naming the variable, the
 * value and what would be accepted, before anything listens.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "djamms.h"

struct config	 cfg;

int
config_parse_long(const char *s, long min, long max, long *val)
{
	char	*end;
	long	 v;

	/* Digits only, an optional minus: no spaces, no '+', no hex. */
	if (s == NULL || !((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' &&
	    s[1] <= '9')))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*val = v;
	return 0;
}

static int	 bad;

static const char *
env_str(const char *name, const char *def, int required)
{
	const char	*v = getenv(name);

	if (v == NULL || *v == '\0') {
		if (required && def == NULL) {
			fprintf(stderr, "djamms: %s is not set (required)\n", name);
			bad++;
		}
		return def;
	}
	return v;
}

static long
env_long(const char *name, long def, long min, long max)
{
	const char	*v = getenv(name);
	long		 n;

	if (v == NULL || *v == '\0')
		return def;
	if (config_parse_long(v, min, max, &n) != 0) {
		fprintf(stderr, "djamms: %s=\"%s\" is not a whole number "
		    "between %ld and %ld\n", name, v, min, max);
		bad++;
		return def;
	}
	return n;
}

static int
env_log_level(void)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	const char	*v = getenv("DJAMMS_LOG_LEVEL");
	int		 i;

	if (v == NULL || *v == '\0')
		return LOG_INFO;
	for (i = 0; i < 4; i++)
		if (strcmp(v, names[i]) == 0)
			return i;
	fprintf(stderr, "djamms: DJAMMS_LOG_LEVEL=\"%s\" must be one of "
	    "debug, info, warn, error\n", v);
	bad++;
	return LOG_INFO;
}

/*
 * A secret from NAME or from the file NAME_FILE (systemd credentials,
 * a root-only file); trailing newlines are not part of it. OUT: *len.
 */
static char *
env_secret(const char *name, size_t *len)
{
	char		 fname[96];
	const char	*v = getenv(name), *path;
	char		*buf;
	FILE		*f;
	size_t		 n;

	*len = 0;
	snprintf(fname, sizeof(fname), "%s_FILE", name);
	path = getenv(fname);
	if (v != NULL && *v != '\0') {
		if ((buf = strdup(v)) == NULL)
			abort();
		*len = strlen(buf);
		return buf;
	}
	if (path == NULL || *path == '\0')
		return NULL;
	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "djamms: %s=\"%s\": cannot read it\n", fname, path);
		bad++;
		return NULL;
	}
	if ((buf = malloc(4097)) == NULL)
		abort();
	n = fread(buf, 1, 4096, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	*len = n;
	return buf;
}

static void
load_password_params(void)
{
	cfg.password_memory_kib = env_long("DJAMMS_PASSWORD_MEMORY_KIB", 19456,
	    8192, 4194304);
	cfg.password_iterations = env_long("DJAMMS_PASSWORD_ITERATIONS", 2, 1, 100);
}

int
config_load(enum config_need need)
{
	long	 ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	bad = 0;
	if (ncpu < 1)
		ncpu = 1;
	cfg.log_level = env_log_level();
	cfg.log_file = env_str("DJAMMS_LOG_FILE", NULL, 0);
	cfg.log_max_bytes = (long long)env_long("DJAMMS_LOG_MAX_MB", 50, 1, 100000) *
	    1024 * 1024;
	cfg.log_keep = env_long("DJAMMS_LOG_KEEP", 5, 1, 100);
	cfg.database_url = env_str("DJAMMS_DATABASE_URL", NULL, 1);
	cfg.db_statement_timeout_ms = env_long("DJAMMS_DB_STATEMENT_TIMEOUT_MS",
	    5000, 10, 3600000);
	cfg.sql_dir = env_str("DJAMMS_SQL_DIR", DJAMMS_SQL_DIR_DEFAULT, 0);
	if (need == CONFIG_MIGRATE)
		return bad ? -1 : 0;
	load_password_params();
	cfg.redis_url = env_str("DJAMMS_REDIS_URL", "redis://127.0.0.1:6379", 0);
	cfg.redis_timeout_ms = env_long("DJAMMS_REDIS_TIMEOUT_MS", 250, 1, 60000);
	cfg.access_ttl_s = env_long("DJAMMS_ACCESS_TTL_S", 900, 30, 86400);
	cfg.storage_dir = env_str("DJAMMS_STORAGE_DIR", "/var/lib/djamms", 0);
	if (cfg.storage_dir[0] != '/') {
		fprintf(stderr, "djamms: DJAMMS_STORAGE_DIR=\"%s\" must be an "
		    "absolute path\n", cfg.storage_dir);
		bad++;
	}
	cfg.test_routes = (int)env_long("DJAMMS_TEST_ROUTES", 0, 0, 1);
	/* background jobs: the runner, and the pool that enqueues them */
	cfg.smtp_url = env_str("DJAMMS_SMTP_URL", NULL, 0);
	cfg.smtp_from = env_str("DJAMMS_SMTP_FROM", "djamms <noreply@localhost>", 0);
	cfg.smtp_user = env_str("DJAMMS_SMTP_USER", NULL, 0);
	cfg.smtp_password = env_str("DJAMMS_SMTP_PASSWORD", NULL, 0);
	cfg.smtp_starttls = (int)env_long("DJAMMS_SMTP_STARTTLS", 0, 0, 1);
	cfg.jobs_workers = (int)env_long("DJAMMS_JOBS_WORKERS", 2, 1, 64);
	cfg.jobs_backoff_ms = env_long("DJAMMS_JOBS_BACKOFF_MS", 10000, 10, 3600000);
	cfg.jobs_poll_ms = env_long("DJAMMS_JOBS_POLL_MS", 200, 10, 10000);
	cfg.jobs_nice = env_long("DJAMMS_JOBS_NICE", 10, 0, 19);
	cfg.jobs_idle = (int)env_long("DJAMMS_JOBS_IDLE", 1, 0, 1);
	cfg.jobs_heartbeat_s = env_long("DJAMMS_JOBS_HEARTBEAT_S", 30, 2, 3600);
	cfg.mail_max_attempts = env_long("DJAMMS_MAIL_MAX_ATTEMPTS", 8, 1, 100);
	cfg.backup_dir = env_str("DJAMMS_BACKUP_DIR", "/var/lib/djamms/backups", 0);
	cfg.backup_keep = env_long("DJAMMS_BACKUP_KEEP", 7, 1, 1000);
	cfg.ffmpeg = env_str("DJAMMS_FFMPEG", "ffmpeg", 0);
	cfg.hls_timeout_s = env_long("DJAMMS_HLS_TIMEOUT_S", 1800, 10, 86400);
	cfg.orphan_grace_h = env_long("DJAMMS_ORPHAN_GRACE_H", 24, 0, 8760);
	cfg.log_keep_days = env_long("DJAMMS_LOG_KEEP_DAYS", 30, 1, 3650);
	{
		static char	 host[64];

		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		cfg.jobs_name = host;
	}
	if (need == CONFIG_ADMIN)
		return bad ? -1 : 0;

	cfg.listen_path = env_str("DJAMMS_LISTEN", "/run/djamms/djamms.sock", 0);
	if (strlen(cfg.listen_path) >= 100) {
		fprintf(stderr, "djamms: DJAMMS_LISTEN=\"%s\" is longer than a "
		    "unix socket path may be (99 bytes)\n", cfg.listen_path);
		bad++;
	}
	/*
	 * Searches have a socket and workers of their own (master.c): as
	 * many as there are CPUs by default.
	 */
	cfg.search_listen_path = env_str("DJAMMS_SEARCH_LISTEN",
	    "/run/djamms/djamms-search.sock", 0);
	if (strlen(cfg.search_listen_path) >= 100) {
		fprintf(stderr, "djamms: DJAMMS_SEARCH_LISTEN=\"%s\" is longer than a "
		    "unix socket path may be (99 bytes)\n", cfg.search_listen_path);
		bad++;
	} else if (strcmp(cfg.search_listen_path, cfg.listen_path) == 0) {
		fprintf(stderr, "djamms: DJAMMS_SEARCH_LISTEN is DJAMMS_LISTEN; "
		    "searches need a socket of their own\n");
		bad++;
	}
	cfg.socket_group = env_str("DJAMMS_SOCKET_GROUP", NULL, 0);
	cfg.workers = (int)env_long("DJAMMS_WORKERS", 2 * ncpu, 1, 512);
	cfg.search_workers = (int)env_long("DJAMMS_SEARCH_WORKERS", ncpu, 1, 512);
	/*
	 * The first core_workers take every request, the rest are spares
	 * (worker.c); by default there are none.
	 */
	cfg.core_workers = (int)env_long("DJAMMS_CORE_WORKERS", cfg.workers, 1, 512);
	if (cfg.core_workers > cfg.workers)
		cfg.core_workers = cfg.workers;
	cfg.spare_after_ms = env_long("DJAMMS_SPARE_AFTER_MS", 25, 1, 60000);
	cfg.max_requests = env_long("DJAMMS_MAX_REQUESTS", 100000, 0, LONG_MAX);
	cfg.request_timeout_ms = env_long("DJAMMS_REQUEST_TIMEOUT_MS", 30000,
	    100, 86400000);
	cfg.drain_timeout_ms = env_long("DJAMMS_DRAIN_TIMEOUT_MS", 10000, 0,
	    3600000);

	cfg.storage_min_free_mb = env_long("DJAMMS_STORAGE_MIN_FREE_MB", 512, 0,
	    LONG_MAX / 2);
	cfg.memory_min_free_mb = env_long("DJAMMS_MEMORY_MIN_FREE_MB", 64, 0,
	    LONG_MAX / 2);
	cfg.body_max = env_long("DJAMMS_BODY_MAX", 1048576, 1024, 64L << 20);
	cfg.json_max_depth = (int)env_long("DJAMMS_JSON_MAX_DEPTH", 32, 2, 1000);
	cfg.jwt_secret = env_secret("DJAMMS_JWT_SECRET", &cfg.jwt_secret_len);
	cfg.jwt_previous_secret = env_secret("DJAMMS_JWT_PREVIOUS_SECRET",
	    &cfg.jwt_previous_secret_len);
	cfg.jwt_issuer = env_str("DJAMMS_JWT_ISSUER", "djamms", 0);
	cfg.jwt_audience = env_str("DJAMMS_JWT_AUDIENCE", "djamms-api", 0);
	cfg.refresh_ttl_days = env_long("DJAMMS_REFRESH_TTL_DAYS", 30, 1, 365);
	/* Half the cores hash at most; the rest keep serving other routes. */
	cfg.hash_concurrency = (int)env_long("DJAMMS_HASH_CONCURRENCY",
	    ncpu / 2 > 0 ? ncpu / 2 : 1, 1, 512);
	cfg.login_max_failures = env_long("DJAMMS_LOGIN_MAX_FAILURES", 5, 1, 1000);
	cfg.login_window_s = env_long("DJAMMS_LOGIN_WINDOW_S", 900, 10, 86400);
	cfg.public_url = env_str("DJAMMS_PUBLIC_URL", "https://localhost:8443", 0);
	if (strncmp(cfg.public_url, "https://", 8) != 0 &&
	    strncmp(cfg.public_url, "http://", 7) != 0) {
		fprintf(stderr, "djamms: DJAMMS_PUBLIC_URL=\"%s\" must start with "
		    "https:// or http://\n", cfg.public_url);
		bad++;
	}
	cfg.media_secret = env_secret("DJAMMS_MEDIA_SECRET", &cfg.media_secret_len);
	if (cfg.media_secret == NULL || cfg.media_secret_len < 16) {
		fprintf(stderr, "djamms: DJAMMS_MEDIA_SECRET or DJAMMS_MEDIA_SECRET_FILE "
		    "must hold at least 16 bytes (the secret nginx's secure_link "
		    "checks signed media URLs with)\n");
		bad++;
	} else if (strpbrk(cfg.media_secret, " \t\"'$;{}\\") != NULL) {
		fprintf(stderr, "djamms: DJAMMS_MEDIA_SECRET must not contain spaces, "
		    "quotes, '$', ';', braces or backslashes (it goes into nginx's "
		    "configuration)\n");
		bad++;
	}
	{
		static char	 updir[4096];
		const char	*u = env_str("DJAMMS_UPLOAD_DIR", NULL, 0);

		if (u == NULL) {
			snprintf(updir, sizeof(updir), "%s/tmp/upload", cfg.storage_dir);
			u = updir;
		}
		cfg.upload_dir = u;
	}
	cfg.upload_max = env_long("DJAMMS_UPLOAD_MAX", 50L * 1024 * 1024, 1024,
	    1L << 40);
	cfg.stream_url_ttl_s = env_long("DJAMMS_STREAM_URL_TTL_S", 3600, 10, 7 * 86400);
	cfg.list_cache_ttl_s = env_long("DJAMMS_LIST_CACHE_TTL_S", 60, 0, 86400);
	if (cfg.jwt_secret == NULL) {
		fprintf(stderr, "djamms: DJAMMS_JWT_SECRET or DJAMMS_JWT_SECRET_FILE "
		    "is not set (required: at least 32 random bytes, e.g. "
		    "openssl rand -hex 32)\n");
		bad++;
	} else if (cfg.jwt_secret_len < 32) {
		fprintf(stderr, "djamms: DJAMMS_JWT_SECRET is %zu bytes; at least "
		    "32 are required\n", cfg.jwt_secret_len);
		bad++;
	}
	if (cfg.jwt_previous_secret != NULL && cfg.jwt_previous_secret_len < 32) {
		fprintf(stderr, "djamms: DJAMMS_JWT_PREVIOUS_SECRET is shorter than "
		    "32 bytes\n");
		bad++;
	}

	{
		char	 host[256];
		int	 port, db, is_unix;

		if (rds_parse_url(cfg.redis_url, host, sizeof(host), &port,
		    &db, &is_unix) != 0) {
			fprintf(stderr, "djamms: DJAMMS_REDIS_URL=\"%s\" is not "
			    "redis://host:port[/db] or unix:/path\n",
			    cfg.redis_url);
			bad++;
		}
	}
	return bad ? -1 : 0;
}
