/*
 * fcgi/router.c: the route tables are data (one const array per handler
 * file); this file matches a method and path against them, checks the
 * permission the route declares, runs the handler and turns its error
 * code into the one JSON error shape. One log line per request.
 */
#include <stdio.h>
#include <string.h>

#include <fcgiapp.h>

#include "djamms.h"

static const struct route_table *const all_tables[] = {
	&system_route_table,
	&auth_route_table,
	&admin_route_table,
	&music_route_table,
	&search_route_table,
	/* before playlist_route_table: /api/playlists/import is no :id */
	&m3u_route_table,
	&playlist_route_table,
	&user_route_table,
	&scheduler_route_table,
	&settings_route_table,
	&monitoring_route_table,
	&device_route_table,
	&log_route_table,
	&jobs_route_table,
};

const struct route_table *
router_tables(size_t *n)
{
	/* Flattened copy made once: a stable, iterable view for tests. */
	static struct route_table	 copy[sizeof(all_tables) / sizeof(all_tables[0])];
	size_t				 i;

	for (i = 0; i < sizeof(all_tables) / sizeof(all_tables[0]); i++)
		copy[i] = *all_tables[i];
	*n = i;
	return copy;
}

enum http_method
method_parse(const char *s)
{
	static const struct { const char *name; enum http_method m; } names[] = {
		{ "GET", M_GET }, { "HEAD", M_HEAD }, { "POST", M_POST },
		{ "PUT", M_PUT }, { "PATCH", M_PATCH }, { "DELETE", M_DELETE },
		{ "OPTIONS", M_OPTIONS },
	};
	size_t	 i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0)
			return names[i].m;
	return 0;
}

void
method_list(unsigned methods, char *buf, size_t cap)
{
	static const char *const names[] = {
		"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
	};
	size_t	 i, len = 0;

	buf[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(methods & (1u << i)))
			continue;
		len += (size_t)snprintf(buf + len, cap - len, "%s%s",
		    len ? ", " : "", names[i]);
		if (len >= cap)
			break;
	}
}

/*
 * Match path against pattern segment by segment. ":name" captures one
 * non-empty segment, percent-decoded. OUT: r->params. Returns 1 on a
 * match, 0 on none, -1 when a captured segment is badly encoded.
 */
static int
pattern_match(struct req *r, const char *pattern, const char *path)
{
	const char	*p = pattern, *s = path;
	int		 n = 0;

	while (*p != '\0' && *s != '\0') {
		if (*p == ':') {
			const char	*pend = strchrnul(p, '/');
			const char	*send = strchrnul(s, '/');
			char		*val;

			if (send == s || n == (int)(sizeof(r->params) /
			    sizeof(r->params[0])))
				return 0;
			val = url_decode(r->pool, s, (size_t)(send - s), 0);
			if (val == NULL)
				return -1;
			r->params[n].key = pool_strndup(r->pool, p + 1,
			    (size_t)(pend - p - 1));
			r->params[n].val = val;
			n++;
			p = pend;
			s = send;
			continue;
		}
		if (*p != *s)
			return 0;
		p++;
		s++;
	}
	if (*p != '\0' || *s != '\0')
		return 0;
	r->nparams = n;
	return 1;
}

enum route_match
router_match(struct req *r, enum http_method method, const char *path,
    unsigned *allow)
{
	size_t	 t, i;
	int	 path_known = 0;

	*allow = 0;
	for (t = 0; t < sizeof(all_tables) / sizeof(all_tables[0]); t++) {
		const struct route_table	*tab = all_tables[t];

		for (i = 0; i < tab->n; i++) {
			const struct route	*rt = &tab->routes[i];
			unsigned		 methods = rt->methods;
			int			 m;

			if ((rt->flags & ROUTE_TEST_ONLY) && !cfg.test_routes)
				continue;
			r->nparams = 0;
			if ((m = pattern_match(r, rt->pattern, path)) == 0)
				continue;
			if (m < 0)
				return ROUTE_NO_PATH;	/* undecodable: no such id */
			if (methods & M_GET)
				methods |= M_HEAD;
			path_known = 1;
			*allow |= methods;
			if (methods & method) {
				r->route = rt;
				return ROUTE_FOUND;
			}
		}
	}
	r->nparams = 0;
	return path_known ? ROUTE_NO_METHOD : ROUTE_NO_PATH;
}

static void
slot_mark(const char *route, int busy)
{
	struct pool_slot	*s;

	if (pool_shm == NULL || worker_slot < 0)
		return;
	s = &pool_shm->slots[worker_slot];
	if (busy) {
		snprintf(s->route, sizeof(s->route), "%s", route);
		__atomic_store_n(&s->busy_since_us, now_us(), __ATOMIC_RELAXED);
		__atomic_store_n(&s->state, SLOT_BUSY, __ATOMIC_RELEASE);
	} else {
		__atomic_store_n(&s->state, SLOT_IDLE, __ATOMIC_RELEASE);
	}
}

static void
log_request(struct req *r)
{
	char		 kv[1536];
	size_t		 len = 0;
	uint64_t	 us = now_us() - r->started_us;

	len = (size_t)snprintf(kv, sizeof(kv), "\"id\":\"");
	len = json_escape_into(kv, len, 200, r->request_id ? r->request_id : "");
	len += (size_t)snprintf(kv + len, sizeof(kv) - len, "\",\"method\":\"");
	len = json_escape_into(kv, len, len + 16, r->method_str);
	len += (size_t)snprintf(kv + len, sizeof(kv) - len, "\",\"route\":\"");
	len = json_escape_into(kv, len, len + 200,
	    r->route ? r->route->pattern : "-");
	len += (size_t)snprintf(kv + len, sizeof(kv) - len, "\",\"path\":\"");
	len = json_escape_into(kv, len, len + 600, r->path);
	len += (size_t)snprintf(kv + len, sizeof(kv) - len,
	    "\",\"status\":%d,\"duration_us\":%llu,\"user\":%s%s%s",
	    r->status, (unsigned long long)us,
	    r->user_id ? "\"" : "", r->user_id ? r->user_id : "null",
	    r->user_id ? "\"" : "");
	log_msg(r->status >= 500 ? LOG_ERROR : LOG_INFO, "request", "%s", kv);
}

static int
has_header(struct req *r, const char *name)
{
	struct hdr	*h;

	for (h = r->headers; h != NULL; h = h->next)
		if (strcasecmp(h->name, name) == 0)
			return 1;
	return 0;
}

void
dispatch(struct req *r)
{
	enum app_err	 err = E_OK;
	unsigned	 allow = 0;

	switch (router_match(r, r->method, r->path, &allow)) {
	case ROUTE_NO_PATH:
		err = req_fail(r, E_NOT_FOUND, "no such endpoint", NULL);
		goto respond;
	case ROUTE_NO_METHOD: {
		char	 list[96];

		method_list(allow, list, sizeof(list));
		err = req_fail(r, E_METHOD, pool_printf(r->pool,
		    "%s is not allowed here; allowed: %s", r->method_str, list),
		    NULL);
		goto respond;
	}
	case ROUTE_FOUND:
		break;
	}
	slot_mark(r->route->pattern, 1);
	if (r->query_bad) {
		err = req_fail(r, E_BAD_REQUEST,
		    "the query string is malformed (a bad percent-escape, "
		    "or more than 256 arguments)", NULL);
		goto respond;
	}
	if ((err = auth_identify(r)) != E_OK) {
		if (r->route->needs != P_NONE)
			goto respond;
		/* A stale token does not stop a public route: ignore it. */
		r->user_id = r->username = r->role = r->jti = r->api_key_id = NULL;
		r->perms = 0;
		r->is_anonymous = 0;
		r->err_message = NULL;
		err = E_OK;
	}
	if (r->route->needs != P_NONE &&
	    (r->perms & r->route->needs) != r->route->needs) {
		err = r->user_id == NULL ?
		    req_fail(r, E_UNAUTHORIZED, "sign in first", NULL) :
		    req_fail(r, E_FORBIDDEN, pool_printf(r->pool,
		    "your account lacks the permission this needs (%s)",
		    perm_name(r->route->needs & P_ALL_NAMED) ?
		    perm_name(r->route->needs & P_ALL_NAMED) : "an account"), NULL);
		goto respond;
	}
	if (r->route->flags & ROUTE_READS_HISTORY)
		history_write();
	err = r->route->handler(r);

respond:
	if (err != E_OK || r->status == 0) {
		if (err == E_OK)
			err = E_INTERNAL;	/* a handler that forgot to answer */
		resp_error(r, err);
		if (err == E_UNAUTHORIZED)
			resp_header(r, "WWW-Authenticate", "Bearer realm=\"djamms\"");
		if (err == E_RATE_LIMITED && !has_header(r, "Retry-After"))
			resp_header(r, "Retry-After", "1");
		if (err == E_METHOD && allow != 0) {
			char	 list[96];

			method_list(allow, list, sizeof(list));
			resp_header(r, "Allow", pool_strdup(r->pool, list));
		}
	}
	resp_send(r);
	if (r->route != NULL)
		slot_mark(NULL, 0);
	metrics_request(r->route, r->method, r->status, now_us() - r->started_us);
	log_request(r);
}
