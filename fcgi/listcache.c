/*
 * fcgi/listcache.c: answers about the library (list pages, searches)
 * cached twice, under library versions, so none outlives a change.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "djamms.h"

/*
 * Two levels. Each worker keeps the pages it served under the library
 * version this machine's watcher keeps (pagecache.c): a hit there costs
 * no round trip. Behind it, Redis keeps pages for the whole pool (and
 * other machines) under lib:ver, cache-aside: every library write bumps
 * lib:ver, so a page cached before the write is never read again. The
 * version and the page come back in one round trip (a two-line Lua
 * script, run by its SHA-1 once Redis knows it).
 *
 * Both versions are read before the page's contents are, so a page is
 * never filed under a version newer than what it shows.
 */
static const char list_cache_lua[] =
	"local v = redis.call('GET', KEYS[1]) or '0' "
	"return {v, redis.call('GET', ARGV[1] .. v .. ':' .. ARGV[2])}";

static void
answer_cached(struct req *r, const char *body, size_t len)
{
	r->status = 200;
	r->content_type = "application/json";
	r->body = body;
	r->body_len = len;
	resp_header(r, "X-Cache", "hit");
}

const char *
listcache_lookup(struct req *r, const char *canon, long ttl_s, struct listcache *c,
    size_t *len)
{
	static char		 sha[41];
	struct redisReply	*rep, *page;
	const char		*body;
	time_t			 now = time(NULL);

	c->version[0] = '\0';
	c->local_ok = 0;
	c->ttl_s = ttl_s;
	if (cfg.list_cache_ttl_s == 0)
		return NULL;
	sha256_hex(canon, strlen(canon), c->key);
	c->local_ok = revoke_library_version(&c->local) == 0;
	if (c->local_ok && (body = pagecache_get(c->key, c->local, now, len)) != NULL)
		return body;
	rep = sha[0] == '\0' ? NULL :
	    rds_command(r, "EVALSHA %s 1 lib:ver lib: %s", sha, c->key);
	if (rep == NULL || (rep->type == REDIS_REPLY_ERROR &&
	    strncmp(rep->str, "NOSCRIPT", 8) == 0)) {
		/* Not loaded yet, or Redis restarted empty: load it again. */
		rep = rds_command(r, "SCRIPT LOAD %s", list_cache_lua);
		if (rep == NULL || rep->type != REDIS_REPLY_STRING ||
		    rep->len >= sizeof(sha))
			return NULL;
		memcpy(sha, rep->str, rep->len + 1);
		rep = rds_command(r, "EVALSHA %s 1 lib:ver lib: %s", sha, c->key);
	}
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_STRING)
		return NULL;
	snprintf(c->version, sizeof(c->version), "%s", rep->element[0]->str);
	page = rep->element[1];
	if (page->type != REDIS_REPLY_STRING)
		return NULL;
	if (c->local_ok)
		pagecache_put(c->key, c->local, now + c->ttl_s, page->str,
		    page->len);
	*len = page->len;
	return page->str;
}

int
listcache_get(struct req *r, const char *canon, long ttl_s, struct listcache *c)
{
	const char	*body;
	size_t		 len;

	if ((body = listcache_lookup(r, canon, ttl_s, c, &len)) == NULL)
		return 0;
	answer_cached(r, body, len);
	return 1;
}

void
listcache_store(struct req *r, const struct listcache *c, const char *body,
    size_t len)
{
	if (cfg.list_cache_ttl_s == 0 || c->ttl_s <= 0)
		return;
	if (c->local_ok)
		pagecache_put(c->key, c->local, time(NULL) + c->ttl_s, body, len);
	if (c->version[0] != '\0')
		rds_command(r, "SET lib:%s:%s %b EX %ld", c->version, c->key, body,
		    len, c->ttl_s);
}

void
listcache_put(struct req *r, const struct listcache *c)
{
	if (r->status == 200)
		listcache_store(r, c, r->body, r->body_len);
}

/*
 * Redis first, then this machine's version (see revoke.c for why in that
 * order). The database announces the change too (sql/008); doing it here
 * as well means the writer's next read cannot beat the announcement.
 */
void
library_changed(struct req *r)
{
	rds_command(r, "INCR lib:ver");
	revoke_library_bump();
}
