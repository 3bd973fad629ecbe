/*
 * fcgi/redis.c: one hiredis context per worker, opened after fork. After
 * a command returns NULL the context is dead (hiredis 0.14): it is freed
 * and a new one is made at most once a second, with the timeouts set
 * again. Callers treat NULL as "Redis is unavailable" and serve what they
 * can without it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "djamms.h"

static redisContext	*ctx;
static uint64_t		 next_attempt_us;
static int		 resyncing;

int
rds_parse_url(const char *url, char *host, size_t hostlen, int *port, int *db,
    int *is_unix)
{
	const char	*p, *colon, *slash;
	long		 n;
	char		 num[16];

	*db = 0;
	*port = 6379;
	*is_unix = 0;
	if (strncmp(url, "unix:", 5) == 0) {
		p = url + 5;
		if (*p != '/' || strlen(p) >= hostlen)
			return -1;
		snprintf(host, hostlen, "%s", p);
		*is_unix = 1;
		return 0;
	}
	if (strncmp(url, "redis://", 8) != 0)
		return -1;
	p = url + 8;
	slash = strchr(p, '/');
	colon = strchr(p, ':');
	if (colon != NULL && slash != NULL && colon > slash)
		colon = NULL;
	{
		const char	*hend = colon ? colon : slash ? slash : p + strlen(p);

		if (hend == p || (size_t)(hend - p) >= hostlen)
			return -1;
		memcpy(host, p, (size_t)(hend - p));
		host[hend - p] = '\0';
		if (strpbrk(host, "@ ") != NULL)
			return -1;	/* credentials are not supported here */
	}
	if (colon != NULL) {
		size_t	 len = slash ? (size_t)(slash - colon - 1) : strlen(colon + 1);

		if (len == 0 || len >= sizeof(num))
			return -1;
		memcpy(num, colon + 1, len);
		num[len] = '\0';
		if (config_parse_long(num, 1, 65535, &n) != 0)
			return -1;
		*port = (int)n;
	}
	if (slash != NULL && slash[1] != '\0') {
		if (config_parse_long(slash + 1, 0, 15, &n) != 0)
			return -1;
		*db = (int)n;
	}
	return 0;
}

static struct timeval
timeout_tv(void)
{
	struct timeval	 tv;

	tv.tv_sec = cfg.redis_timeout_ms / 1000;
	tv.tv_usec = (cfg.redis_timeout_ms % 1000) * 1000;
	return tv;
}

void
rds_disconnect(void)
{
	if (ctx != NULL)
		redisFree(ctx);
	ctx = NULL;
}

int
rds_connect(void)
{
	char		 host[256];
	int		 port, db, is_unix;
	struct timeval	 tv = timeout_tv();

	rds_disconnect();
	next_attempt_us = now_us() + 1000000;
	if (rds_parse_url(cfg.redis_url, host, sizeof(host), &port, &db,
	    &is_unix) != 0)
		return -1;
	ctx = is_unix ? redisConnectUnixWithTimeout(host, tv) :
	    redisConnectWithTimeout(host, port, tv);
	if (ctx == NULL || ctx->err) {
		char	 esc[256];

		json_escape_into(esc, 0, sizeof(esc), ctx ? ctx->errstr : "out of memory");
		log_warn("redis connect failed", "\"error\":\"%s\"", esc);
		rds_disconnect();
		return -1;
	}
	/* The command timeout is separate from the connect timeout. */
	redisSetTimeout(ctx, tv);
	if (!is_unix)
		redisEnableKeepAlive(ctx);
	if (db != 0) {
		redisReply	*rep = redisCommand(ctx, "SELECT %d", db);


		if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
			if (rep)
				freeReplyObject(rep);
			rds_disconnect();
			return -1;
		}
		freeReplyObject(rep);
	}
	/*
	 * Logouts recorded while Redis was away are only in the database:
	 * put them back on the deny-list the workers read.
	 */
	if (worker_slot >= 0 && !resyncing) {
		resyncing = 1;
		auth_resync_denylist();
		resyncing = 0;
	}
	return 0;
}

static void
reply_cleanup(void *rep)
{
	freeReplyObject(rep);
}

redisReply *
rds_command(struct req *r, const char *fmt, ...)
{
	redisReply	*rep;
	va_list		 ap;
	int		 attempt;

	for (attempt = 0; attempt < 2; attempt++) {
		if (ctx == NULL && (now_us() < next_attempt_us || rds_connect() != 0))
			return NULL;
		va_start(ap, fmt);
		rep = redisvCommand(ctx, fmt, ap);
		va_end(ap);
		if (rep != NULL)
			break;
		/*
		 * The context is dead. A restarted Redis closes our old socket:
		 * one fresh connection is worth trying at once; if that fails
		 * too, wait a second before the next attempt.
		 */
		{
			char	 esc[256];

			json_escape_into(esc, 0, sizeof(esc), ctx->errstr);
			log_warn("redis command failed", "\"error\":\"%s\"", esc);
		}
		rds_disconnect();
		next_attempt_us = 0;
	}
	if (rep == NULL) {
		metrics_redis_error();
		next_attempt_us = now_us() + 1000000;
		return NULL;
	}
	if (r != NULL)
		pool_cleanup(r->pool, reply_cleanup, rep);
	return rep;
}

int
rds_ping(void)
{
	redisReply	*rep = rds_command(NULL, "PING");
	int		 ok;

	if (rep == NULL)
		return -1;
	ok = rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
	freeReplyObject(rep);
	return ok ? 0 : -1;
}

/*
 * Answers cached per user and stamped with the versions they depend on:
 * the library's (lib:ver), one of the user's (their likes, favver:<uid>,
 * or their searches, shver:<uid>) and one of the caller's own (a
 * playlist's version, say). The versions and the cached value come back
 * in one MGET, which Redis answers atomically, with no script to run; a
 * stamp read before an answer is built never matches a change made
 * after, so nothing stale is served.
 */
static const char *
version_of(const struct redisReply *v)
{
	if (v->type == REDIS_REPLY_NIL)
		return "0";		/* never bumped */
	return v->type == REDIS_REPLY_STRING ? v->str : NULL;
}

const char *
rds_stamped_get(struct req *r, const char *key, const char *user_ver,
    const char *own, char *stamp, size_t cap, size_t *len)
{
	struct redisReply	*rep;
	const char		*lib, *user;
	size_t			 slen;

	stamp[0] = '\0';
	rep = rds_command(r, "MGET lib:ver %s:%s %s", user_ver,
	    r->user_id ? r->user_id : "-", key);
	if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
	    (lib = version_of(rep->element[0])) == NULL ||
	    (user = version_of(rep->element[1])) == NULL)
		return NULL;
	snprintf(stamp, cap, "%s:%s:%s\n", own, lib, user);
	slen = strlen(stamp);
	if (rep->element[2]->type != REDIS_REPLY_STRING ||
	    rep->element[2]->len < slen ||
	    memcmp(rep->element[2]->str, stamp, slen) != 0)
		return NULL;
	*len = rep->element[2]->len - slen;
	return rep->element[2]->str + slen;
}

void
rds_stamped_put(struct req *r, const char *key, const char *stamp,
    const char *body, size_t len, int ttl_s)
{
	if (stamp[0] != '\0')
		rds_command(r, "SET %s %s%b EX %d", key, stamp, body, len, ttl_s);
}
