/*
 * handlers/logs.c: the structured log, for admins. The pool writes one JSON
 * object per line to DJAMMS_LOG_FILE, rotated by size into file.1 ...
 * file.KEEP (fcgi/log.c); GET /api/system/logs reads them newest first
 * with filters and a cursor, POST /api/system/logs/download hands the
 * matching lines over as one gzip file, oldest first.
 *
 * Every field a filter looks at is one the pool wrote itself: "time" (fixed
 * width RFC 3339 UTC, so text order is time order), "level", "route",
 * "user", "id" (the request id) and "status".
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <zlib.h>

#include "../fcgi/djamms.h"

#define PAGE_BUDGET	(32LL << 20)	/* bytes one page may read */
#define DOWNLOAD_MAX	(256LL << 20)	/* bytes one download may read */

static const char *const levels[] = { "debug", "info", "warn", "error", NULL };

struct log_filter {
	int		 min_level;
	char		 since[40], until[40];	/* "" : open */
	const char	*route, *user, *request_id;
	long		 status;		/* 0 : any */
};

static int
level_of(const char *s)
{
	int	 i;

	for (i = 0; levels[i] != NULL; i++)
		if (strcmp(s, levels[i]) == 0)
			return i;
	return -1;
}

/* Microseconds since 1970 as the log's own time text. */
static void
time_text(long long us, char out[40])
{
	time_t		 secs = (time_t)(us / 1000000);
	struct tm	 tm;

	gmtime_r(&secs, &tm);
	snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
	    (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100, tm.tm_mday % 100,
	    tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100,
	    (int)(us % 1000000) % 1000000);
}

static const char *
field_str(struct json_object *o, const char *key)
{
	struct json_object	*v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* 1 if the line is a log object that passes f. */
static int
line_matches(const char *line, size_t len, const struct log_filter *f)
{
	struct json_tokener	*tok;
	struct json_object	*o, *v;
	const char		*s;
	int			 ok = 0;

	if (len < 2 || line[0] != '{')
		return 0;
	tok = json_tokener_new();
	o = json_tokener_parse_ex(tok, line, (int)len);
	json_tokener_free(tok);
	if (o == NULL || !json_object_is_type(o, json_type_object))
		goto done;
	if ((s = field_str(o, "level")) == NULL || level_of(s) < f->min_level)
		goto done;
	if ((s = field_str(o, "time")) == NULL ||
	    (f->since[0] && strcmp(s, f->since) < 0) ||
	    (f->until[0] && strcmp(s, f->until) > 0))
		goto done;
	if (f->route && ((s = field_str(o, "route")) == NULL || strcmp(s, f->route)))
		goto done;
	if (f->user && ((s = field_str(o, "user")) == NULL || strcmp(s, f->user)))
		goto done;
	if (f->request_id && ((s = field_str(o, "id")) == NULL ||
	    strcmp(s, f->request_id)))
		goto done;
	if (f->status && (!json_object_object_get_ex(o, "status", &v) ||
	    json_object_get_int64(v) != f->status))
		goto done;
	ok = 1;
done:
	json_object_put(o);
	return ok;
}

/* The log files, newest first: file, file.1 ... OUT: paths (pool). */
static int
log_files(struct req *r, const char **paths, ino_t *inos, off_t *sizes, int cap)
{
	struct stat	 st;
	int		 n = 0;
	long		 i;

	for (i = 0; i <= cfg.log_keep && n < cap; i++) {
		const char	*p = i == 0 ? cfg.log_file :
		    pool_printf(r->pool, "%s.%ld", cfg.log_file, i);

		if (stat(p, &st) != 0)
			continue;
		paths[n] = p;
		inos[n] = st.st_ino;
		sizes[n] = st.st_size;
		n++;
	}
	return n;
}

/* [from, to) of path into malloc'd memory. OUT: *got. NULL on failure. */
static char *
read_range(const char *path, off_t from, off_t to, size_t *got)
{
	int	 fd = open(path, O_RDONLY | O_CLOEXEC);
	char	*buf;
	size_t	 want = (size_t)(to - from), have = 0;

	*got = 0;
	if (fd < 0)
		return NULL;
	if ((buf = malloc(want + 1)) == NULL)
		abort();
	while (have < want) {
		ssize_t	 n = pread(fd, buf + have, want - have, from + (off_t)have);

		if (n <= 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	buf[have] = '\0';
	*got = have;
	return buf;
}

/* The filters from the query (GET) or a JSON body (download). */
static enum app_err
read_filter(struct req *r, const char *level, const char *since,
    const char *until, const char *route, const char *user, const char *rid,
    const char *status, struct log_filter *f)
{
	long long	 us;
	char		*end;

	memset(f, 0, sizeof(*f));
	if (level != NULL && (f->min_level = level_of(level)) < 0)
		return req_fail(r, E_BAD_REQUEST, "level must be debug, info, warn or "
		    "error (that level and above)", NULL);
	if (since != NULL) {
		if (iso8601_to_us(since, 0, &us) != 0)
			return req_fail(r, E_BAD_REQUEST, "since must be an ISO 8601 date "
			    "or date-time", NULL);
		time_text(us, f->since);
	}
	if (until != NULL) {
		if (iso8601_to_us(until, 1, &us) != 0)
			return req_fail(r, E_BAD_REQUEST, "until must be an ISO 8601 date "
			    "or date-time", NULL);
		time_text(us, f->until);
	}
	if (user != NULL && !uuid_valid(user))
		return req_fail(r, E_BAD_REQUEST, "user must be a UUID", NULL);
	if (route != NULL && (route[0] != '/' || strlen(route) > 200))
		return req_fail(r, E_BAD_REQUEST, "route must be a route pattern such as "
		    "/api/playlists/:id", NULL);
	if (rid != NULL && strlen(rid) > 64)
		return req_fail(r, E_BAD_REQUEST, "request_id is too long", NULL);
	if (status != NULL) {
		f->status = strtol(status, &end, 10);
		if (*end != '\0' || f->status < 100 || f->status > 599)
			return req_fail(r, E_BAD_REQUEST, "status must be an HTTP status",
			    NULL);
	}
	f->route = route;
	if (user != NULL) {		/* the log writes ids in lower case */
		char	*lc = pool_strdup(r->pool, user);

		for (size_t i = 0; lc[i] != '\0'; i++)
			if (lc[i] >= 'A' && lc[i] <= 'F')
				lc[i] = (char)(lc[i] - 'A' + 'a');
		user = lc;
	}
	f->user = user;
	f->request_id = rid;
	return E_OK;
}

static enum app_err
need_log_file(struct req *r)
{
	if (cfg.log_file == NULL || cfg.log_file[0] == '\0')
		return req_fail(r, E_UNAVAILABLE, "the log goes to stderr (journald); "
		    "set DJAMMS_LOG_FILE to keep and read it here", NULL);
	return E_OK;
}

/* GET /api/system/logs?level=&since=&until=&route=&user=&request_id=&status=&limit=&cursor= */
static enum app_err
logs_list(struct req *r)
{
	static const char *const known[] = { "level", "since", "until", "route",
	    "user", "request_id", "status", "limit", "cursor", NULL };
	const char		*paths[101], *lim, *cur = req_query(r, "cursor");
	ino_t			 inos[101];
	off_t			 sizes[101];
	struct log_filter	 f;
	struct mbuf {
		char	*p;
		size_t	 len, cap;
	}			 out = { NULL, 0, 0 };
	long long		 budget = PAGE_BUDGET;
	unsigned long long	 cino = 0;
	long long		 coff = -1;
	long			 limit = 100, found = 0;
	int			 nf, i, start = 0;
	char			 next[64] = "";
	enum app_err		 err;

	if ((err = query_only(r, known)) != E_OK ||
	    (err = need_log_file(r)) != E_OK ||
	    (err = query_int(r, "limit", 1, 1000, &lim)) != E_OK ||
	    (err = read_filter(r, req_query(r, "level"), req_query(r, "since"),
	    req_query(r, "until"), req_query(r, "route"), req_query(r, "user"),
	    req_query(r, "request_id"), req_query(r, "status"), &f)) != E_OK)
		return err;
	if (lim != NULL)
		limit = atol(lim);
	if (cur != NULL && (sscanf(cur, "%llu:%lld", &cino, &coff) != 2 || coff < 0))
		return req_fail(r, E_BAD_REQUEST, "cursor is not one this answered", NULL);
	nf = log_files(r, paths, inos, sizes, 101);
	if (cur != NULL) {
		for (start = 0; start < nf && (unsigned long long)inos[start] != cino; start++)
			;
		if (start < nf && coff < sizes[start])
			sizes[start] = (off_t)coff;
	}
	out.cap = 65536;
	out.p = pool_alloc(r->pool, out.cap);
	out.len = (size_t)snprintf(out.p, out.cap, "{\"entries\":[");
	for (i = start; i < nf && found < limit && budget > 0; i++) {
		off_t	 from = sizes[i] > budget ? sizes[i] - (off_t)budget : 0;
		size_t	 got, e;
		char	*buf = read_range(paths[i], from, sizes[i], &got);
		size_t	 first = 0;

		if (buf == NULL)
			continue;
		budget -= (long long)got;
		/* a range that starts mid-file starts mid-line: skip that part */
		if (from > 0) {
			char	*nl = memchr(buf, '\n', got);

			first = nl ? (size_t)(nl - buf) + 1 : got;
		}
		e = got;
		while (e > first && found < limit) {
			size_t	 b = e;

			if (buf[b - 1] == '\n')
				b--;
			while (b > first && buf[b - 1] != '\n')
				b--;
			/* the line is [b, e) with its newline */
			if (line_matches(buf + b, e - b, &f)) {
				size_t	 ll = e - b - (buf[e - 1] == '\n');

				if (out.len + ll + 64 > out.cap) {
					size_t	 cap = (out.len + ll + 64) * 2;
					char	*np = pool_alloc(r->pool, cap);

					memcpy(np, out.p, out.len);
					out.p = np;
					out.cap = cap;
				}
				if (found > 0)
					out.p[out.len++] = ',';
				memcpy(out.p + out.len, buf + b, ll);
				out.len += ll;
				found++;
			}
			e = b;
		}
		/* where the next page starts: before what was read, or the next file */
		{
			long long	 pos = (long long)from + (long long)e;

			if (pos > 0)
				snprintf(next, sizeof(next), "%llu:%lld",
				    (unsigned long long)inos[i], pos);
			else if (i + 1 < nf)
				snprintf(next, sizeof(next), "%llu:%lld",
				    (unsigned long long)inos[i + 1], (long long)sizes[i + 1]);
			else
				next[0] = '\0';
		}
		free(buf);
	}
	{
		char	 tail[160];
		int	 n = snprintf(tail, sizeof(tail), "],\"count\":%ld,\"next_cursor\":%s%s%s,"
		    "\"files\":%d}", found, next[0] ? "\"" : "", next[0] ? next : "null",
		    next[0] ? "\"" : "", nf);

		if (out.len + (size_t)n + 1 > out.cap) {
			char	*np = pool_alloc(r->pool, out.len + (size_t)n + 1);

			memcpy(np, out.p, out.len);
			out.p = np;
		}
		memcpy(out.p + out.len, tail, (size_t)n);
		out.len += (size_t)n;
		out.p[out.len] = '\0';
	}
	resp_header(r, "Cache-Control", "no-store");
	return resp_json_text(r, 200, out.p, out.len);
}

/* ---- download ------------------------------------------------------ */

struct gz {
	z_stream	 z;
	char		*p;
	size_t		 len, cap;
};

static void
gz_put(struct gz *g, const char *data, size_t len, int finish)
{
	g->z.next_in = (Bytef *)(uintptr_t)data;
	g->z.avail_in = (uInt)len;
	do {
		if (g->cap - g->len < 65536) {
			size_t	 cap = g->cap * 2 + 65536;
			char	*np = realloc(g->p, cap);

			if (np == NULL)
				abort();
			g->p = np;
			g->cap = cap;
		}
		g->z.next_out = (Bytef *)g->p + g->len;
		g->z.avail_out = (uInt)(g->cap - g->len);
		deflate(&g->z, finish ? Z_FINISH : Z_NO_FLUSH);
		g->len = g->cap - g->z.avail_out;
	} while (g->z.avail_in > 0 || (finish && g->z.avail_out == 0));
}

static void
gz_free(void *p)
{
	free(p);
}

/* POST /api/system/logs/download: the matching lines, oldest first, gzip. */
static enum app_err
logs_download(struct req *r)
{
	static const char *const allowed[] = { "level", "since", "until", "route",
	    "user", "request_id", "status", NULL };
	const char		*paths[101];
	ino_t			 inos[101];
	off_t			 sizes[101], starts[101];
	struct log_filter	 f;
	struct json_object	*body = NULL;
	const char		*v[7] = { NULL };
	const char		*cl = req_env(r, "CONTENT_LENGTH");
	long long		 budget = DOWNLOAD_MAX;
	char			 st[24], ts[40];
	struct gz		 g;
	int			 nf, i, k;
	long			 lines = 0;
	enum app_err		 err;

	if ((err = need_log_file(r)) != E_OK)
		return err;
	if (cl != NULL && strcmp(cl, "0") != 0 && cl[0] != '\0') {
		if ((err = req_json_body(r, &body)) != E_OK ||
		    (err = body_only(r, body, allowed, NULL)) != E_OK)
			return err;
		for (k = 0; allowed[k] != NULL; k++) {
			struct json_object	*x;

			if (!json_object_object_get_ex(body, allowed[k], &x) ||
			    json_object_is_type(x, json_type_null))
				continue;
			if (k == 6 && json_object_is_type(x, json_type_int)) {
				snprintf(st, sizeof(st), "%lld", (long long)json_object_get_int64(x));
				v[k] = st;
			} else if (json_object_is_type(x, json_type_string))
				v[k] = json_object_get_string(x);
			else
				return body_fail(r, allowed[k], "has the wrong type");
		}
	}
	if ((err = read_filter(r, v[0], v[1], v[2], v[3], v[4], v[5], v[6], &f)) != E_OK)
		return err;
	nf = log_files(r, paths, inos, sizes, 101);
	memset(&g, 0, sizeof(g));
	if (deflateInit2(&g.z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return req_fail(r, E_INTERNAL, "cannot compress", NULL);
	/* the newest bytes win when over the budget: share it out newest first */
	for (i = 0; i < nf; i++) {
		off_t	 take = sizes[i] < budget ? sizes[i] : (off_t)budget;

		starts[i] = sizes[i] - take;
		budget -= (long long)take;
	}
	/* then write oldest first */
	for (i = nf - 1; i >= 0; i--) {
		size_t	 got, b = 0;
		off_t	 from = starts[i];
		char	*buf;

		if (from >= sizes[i])
			continue;
		if ((buf = read_range(paths[i], from, sizes[i], &got)) == NULL)
			continue;
		if (from > 0) {
			char	*nl = memchr(buf, '\n', got);

			b = nl ? (size_t)(nl - buf) + 1 : got;
		}
		while (b < got) {
			char	*nl = memchr(buf + b, '\n', got - b);
			size_t	 e = nl ? (size_t)(nl - buf) + 1 : got;

			if (line_matches(buf + b, e - b - (buf[e - 1] == '\n'), &f)) {
				gz_put(&g, buf + b, e - b, 0);
				if (buf[e - 1] != '\n')
					gz_put(&g, "\n", 1, 0);
				lines++;
			}
			b = e;
		}
		free(buf);
	}
	gz_put(&g, "", 0, 1);
	deflateEnd(&g.z);
	pool_cleanup(r->pool, gz_free, g.p);
	r->status = 200;
	r->content_type = "application/gzip";
	r->body = g.p;
	r->body_len = g.len;
	log_time_rfc3339(ts);
	ts[19] = '\0';
	for (k = 0; ts[k] != '\0'; k++)
		if (ts[k] == ':')
			ts[k] = '-';
	resp_attachment(r, pool_printf(r->pool, "djamms-log-%s", ts), ".jsonl.gz");
	resp_header(r, "X-Log-Lines", pool_printf(r->pool, "%ld", lines));
	resp_header(r, "Cache-Control", "no-store");
	return E_OK;
}

static const struct route log_routes[] = {
	/* method	pattern				handler		needs */
	{ M_GET,	"/api/system/logs",		logs_list,	P_ADMIN_SYSTEM, 0 },
	{ M_POST,	"/api/system/logs/download",	logs_download,	P_ADMIN_SYSTEM, 0 },
};

const struct route_table log_route_table = {
	log_routes, sizeof(log_routes) / sizeof(log_routes[0])
};
