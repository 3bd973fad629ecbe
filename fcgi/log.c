/*
 * fcgi/log.c: structured logs. Every line on stderr is one JSON object, so
 * journald, a file or a log shipper can parse it without a grammar. A
 * line is built in a stack buffer and written with one write(2), which
 * keeps lines from different workers from interleaving.
 */
#include <stdio.h>
#include <string.h>
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
	(void)!write(STDERR_FILENO, line, len);
}
