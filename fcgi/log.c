/*
 * fcgi/log.c: structured logs. Every line is one JSON object, so journald,
 * a file or a log shipper can parse it without a grammar. A line is built
 * in a stack buffer and written with one write(2), which keeps lines from
 * different workers from interleaving.
 *
 * Lines go to stderr, or with DJAMMS_LOG_FILE to that file, which every
 * process appends to (O_APPEND) and which the master rotates by size
 * (file -> file.1 -> ... file.KEEP); each process notices the new file
 * within a second and reopens it. GET /api/system/logs reads them.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "djamms.h"

static const char *const level_names[] = { "debug", "info", "warn", "error" };

uint64_t
now_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void
log_time_rfc3339(char buf[40])
{
	struct timespec	 ts;
	struct tm	 tm;
	char		 base[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, 40, "%.20s.%06dZ", base, (int)(ts.tv_nsec / 1000));
}

size_t
json_escape_into(char *buf, size_t len, size_t cap, const char *s)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*p;

	if (s == NULL)
		return len;
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		char	 esc[7];
		size_t	 n = 0;

		switch (*p) {
		case '"':  esc[n++] = '\\'; esc[n++] = '"'; break;
		case '\\': esc[n++] = '\\'; esc[n++] = '\\'; break;
		case '\n': esc[n++] = '\\'; esc[n++] = 'n'; break;
		case '\r': esc[n++] = '\\'; esc[n++] = 'r'; break;
		case '\t': esc[n++] = '\\'; esc[n++] = 't'; break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				esc[n++] = '\\'; esc[n++] = 'u';
				esc[n++] = '0'; esc[n++] = '0';
				esc[n++] = hex[*p >> 4]; esc[n++] = hex[*p & 15];
			} else
				esc[n++] = (char)*p;
		}
		if (len + n >= cap)
			break;		/* truncate rather than overflow */
		memcpy(buf + len, esc, n);
		len += n;
	}
	buf[len < cap ? len : cap - 1] = '\0';
	return len;
}

static int		 log_fd = -1;
static dev_t		 log_dev;
static ino_t		 log_ino;
static uint64_t		 log_checked_us;

static void
log_reopen(void)
{
	struct stat	 st;
	int		 fd;

	fd = open(cfg.log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd >= 0 && fstat(fd, &st) == 0) {
		if (log_fd >= 0)
			close(log_fd);
		log_fd = fd;
		log_dev = st.st_dev;
		log_ino = st.st_ino;
	} else if (fd >= 0)
		close(fd);
}

/* Where a line goes: the log file (reopened once it was rotated away). */
static int
log_target(void)
{
	uint64_t	 now;
	struct stat	 st;

	if (cfg.log_file == NULL || cfg.log_file[0] == '\0')
		return STDERR_FILENO;
	now = now_us();
	if (log_fd < 0 || now - log_checked_us >= 1000000) {
		log_checked_us = now;
		if (log_fd < 0 || stat(cfg.log_file, &st) != 0 ||
		    st.st_ino != log_ino || st.st_dev != log_dev)
			log_reopen();
	}
	return log_fd >= 0 ? log_fd : STDERR_FILENO;
}

void
log_rotate_check(void)
{
	static uint64_t	 last;
	struct stat	 st;
	char		 from[4200], to[4200];
	long		 i;

	if (cfg.log_file == NULL || cfg.log_file[0] == '\0' ||
	    now_us() - last < 1000000)
		return;
	last = now_us();
	if (stat(cfg.log_file, &st) != 0 || st.st_size < cfg.log_max_bytes)
		return;
	for (i = cfg.log_keep - 1; i >= 1; i--) {
		snprintf(from, sizeof(from), "%s.%ld", cfg.log_file, i);
		snprintf(to, sizeof(to), "%s.%ld", cfg.log_file, i + 1);
		rename(from, to);	/* a missing one is fine */
	}
	snprintf(to, sizeof(to), "%s.1", cfg.log_file);
	if (rename(cfg.log_file, to) != 0)
		return;
	log_checked_us = 0;
	log_target();			/* the master's own line goes to the new one */
	log_info("log rotated", "\"size\":%lld,\"keep\":%ld", (long long)st.st_size,
	    cfg.log_keep);
}

/*
 * fmt_kv is a printf format producing the rest of the object's members,
 * e.g. "\"route\":\"%s\"" (the caller escapes what it passes), or NULL.
 */
void
log_msg(enum log_level level, const char *msg, const char *fmt_kv, ...)
{
	char	 line[4096], ts[40];
	size_t	 len;
	int	 n;
	va_list	 ap;

	if ((int)level < cfg.log_level)
		return;
	log_time_rfc3339(ts);
	n = snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\","
	    "\"pid\":%ld,\"msg\":\"", ts, level_names[level], (long)getpid());
	len = json_escape_into(line, (size_t)n, sizeof(line) - 64, msg);
	line[len++] = '"';
	if (fmt_kv != NULL && *fmt_kv != '\0') {
		line[len++] = ',';
		va_start(ap, fmt_kv);
		n = vsnprintf(line + len, sizeof(line) - len - 3, fmt_kv, ap);
		va_end(ap);
		if (n > 0)
			len += (size_t)n < sizeof(line) - len - 3 ?
			    (size_t)n : sizeof(line) - len - 4;
	}
	line[len++] = '}';
	line[len++] = '\n';
	(void)!write(log_target(), line, len);
}
