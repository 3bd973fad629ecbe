/*
 * fcgi/revoke.c: what the pool knows about ended tokens and changed
 * profiles, in memory shared by the master and every worker, so checking
 * an access token costs no round trip to Redis or Postgres.
 *
 * The database is the truth. Triggers (sql/006) announce every token
 * version bump, every deny-listed jti and every profile change on the
 * channel djamms_auth when the change commits. A watcher process, forked
 * and restarted by the master, LISTENs on it, loads the state that can
 * still matter (changes younger than an access token's lifetime) and
 * applies each announcement. A worker that makes a change also writes it
 * here itself right after its commit, so on this machine a logout or a
 * deactivation takes effect before the response leaves; other machines
 * learn it from the announcement, a millisecond later.
 *
 * Each user's likes (sql/011) and search history (sql/020) have a
 * generation here too, which the workers' own copies of them (likes.c,
 * suggest's recent searches) are kept under.
 *
 * The same watcher keeps the library's version: triggers (sql/008)
 * announce every change to the library on djamms_library; the watcher
 * bumps Redis's lib:ver (the shared list cache) and then the version here,
 * which each worker's own page cache (pagecache.c) is keyed by; and the
 * scheduler's version (sql/013, payload 's'), Redis's sched:ver likewise.
 *
 * The tables are only trusted while the watcher is connected and loaded
 * ("live"). When it is not (starting, Postgres away, a table full, a
 * process died holding the lock), revoke_token_state() answers -1 and the
 * caller asks Redis or the database as before.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "djamms.h"

#define RV_CAP		16384		/* entries per table, a power of two */
#define RV_KEY		48		/* a uuid or a jti, NUL-terminated */
#define RV_PGEN		4096		/* profile generations, by uid hash */
#define RV_MARGIN_S	120		/* clock skew on top of a token's life */
#define RV_PING_MS	5000
#define RV_CHANNEL	"djamms_auth"
#define RV_LIBRARY	"djamms_library"

struct rv_entry {
	char		 key[RV_KEY];	/* "" : empty slot */
	int64_t		 val;		/* token version, or 1 for a jti */
	int64_t		 expires;	/* epoch seconds; then it no longer matters */
};

struct rv_table {
	uint32_t	 used;
	struct rv_entry	 e[RV_CAP];
};

struct revoke_shared {
	pthread_mutex_t	 lock;		/* robust: a writer may be killed */
	uint32_t	 watcher_live;	/* listening and loaded */
	uint32_t	 resync;	/* the tables may be incomplete: reload */
	uint64_t	 applied;	/* announcements applied */
	uint64_t	 loads;
	uint64_t	 library;	/* moves on with every library change */
	uint64_t	 schedule;	/* ... and with every schedule change */
	uint32_t	 pgen[RV_PGEN];
	uint32_t	 fgen[RV_PGEN];	/* each user's likes, by uid hash */
	uint32_t	 hgen[RV_PGEN];	/* ... and search history */
	struct rv_table	 ver;		/* user id -> newest token version */
	struct rv_table	 deny;		/* jti -> 1 */
};

static struct revoke_shared	*rv;

int
revoke_shm_create(void)
{
	pthread_mutexattr_t	 a;

	if (rv != NULL)
		return 0;
	rv = mmap(NULL, sizeof(*rv), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (rv == MAP_FAILED) {
		rv = NULL;
		return -1;
	}
	memset(rv, 0, sizeof(*rv));
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (pthread_mutex_init(&rv->lock, &a) != 0) {
		pthread_mutexattr_destroy(&a);
		munmap(rv, sizeof(*rv));
		rv = NULL;
		return -1;
	}
	pthread_mutexattr_destroy(&a);
	return 0;
}

void
revoke_shm_destroy(void)
{
	if (rv == NULL)
		return;
	pthread_mutex_destroy(&rv->lock);
	munmap(rv, sizeof(*rv));
	rv = NULL;
}

/*
 * 0 with the lock held. A holder that died may have left a table half
 * written: it is made consistent and marked for a reload, and until the
 * watcher has reloaded nobody trusts it.
 */
static int
rv_lock(void)
{
	int	 rc = pthread_mutex_lock(&rv->lock);

	if (rc == EOWNERDEAD) {
		pthread_mutex_consistent(&rv->lock);
		rv->resync = 1;
		return 0;
	}
	return rc == 0 ? 0 : -1;
}

static void
rv_unlock(void)
{
	pthread_mutex_unlock(&rv->lock);
}

static uint32_t
rv_hash(const char *key)
{
	return (uint32_t)str_hash(key);
}

static int
rv_live_locked(void)
{
	return rv->watcher_live && !rv->resync;
}

static struct rv_entry *
rv_find(struct rv_table *t, const char *key)
{
	uint32_t	 i = rv_hash(key) & (RV_CAP - 1);

	for (;; i = (i + 1) & (RV_CAP - 1)) {
		if (t->e[i].key[0] == '\0')
			return NULL;
		if (strcmp(t->e[i].key, key) == 0)
			return &t->e[i];
	}
}

/* Drop expired entries by rebuilding the table in place. */
static void
rv_purge(struct rv_table *t, int64_t now)
{
	struct rv_entry	*keep;
	uint32_t	 i, n = 0;

	if ((keep = malloc(sizeof(*keep) * t->used + 1)) == NULL)
		abort();
	for (i = 0; i < RV_CAP; i++)
		if (t->e[i].key[0] != '\0' && t->e[i].expires > now)
			keep[n++] = t->e[i];
	memset(t->e, 0, sizeof(t->e));
	t->used = 0;
	for (i = 0; i < n; i++) {
		uint32_t	 j = rv_hash(keep[i].key) & (RV_CAP - 1);

		while (t->e[j].key[0] != '\0')
			j = (j + 1) & (RV_CAP - 1);
		t->e[j] = keep[i];
		t->used++;
	}
	free(keep);
}

/*
 * Record key -> val until expires, keeping the larger value. A table
 * three quarters full is purged first; one still full after that drops
 * the entry and asks for a reload, so nobody trusts an incomplete table.
 */
static void
rv_put(struct rv_table *t, const char *key, int64_t val, int64_t expires,
    int64_t now)
{
	struct rv_entry	*e;
	uint32_t	 i;

	if (strlen(key) >= RV_KEY || key[0] == '\0' || expires <= now)
		return;
	if ((e = rv_find(t, key)) != NULL) {
		if (val > e->val)
			e->val = val;
		if (expires > e->expires)
			e->expires = expires;
		return;
	}
	if (t->used + 1 > RV_CAP / 4 * 3) {
		rv_purge(t, now);
		if (t->used + 1 > RV_CAP / 4 * 3) {
			rv->resync = 1;
			return;
		}
	}
	i = rv_hash(key) & (RV_CAP - 1);
	while (t->e[i].key[0] != '\0')
		i = (i + 1) & (RV_CAP - 1);
	e = &t->e[i];
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->val = val;
	e->expires = expires;
	t->used++;
}

int
revoke_token_state(const char *user_id, const char *jti, long ver, time_t now)
{
	struct rv_entry	*e;
	int		 state;

	if (rv == NULL || rv_lock() != 0)
		return -1;
	if (!rv_live_locked())
		state = -1;
	else if ((e = rv_find(&rv->deny, jti)) != NULL && e->expires > now)
		state = 1;
	else if ((e = rv_find(&rv->ver, user_id)) != NULL && e->expires > now &&
	    e->val > ver)
		state = 1;
	else
		state = 0;
	rv_unlock();
	return state;
}

/* A user's slot of a generation table, while the tables are trusted. */
static int
gen_read(const uint32_t *table, const char *user_id, uint32_t *gen)
{
	int	 rc = -1;

	if (rv == NULL || rv_lock() != 0)
		return -1;
	if (rv_live_locked()) {
		*gen = table[rv_hash(user_id) % RV_PGEN];
		rc = 0;
	}
	rv_unlock();
	return rc;
}

static void
gen_bump(uint32_t *table, const char *user_id)
{
	if (rv == NULL || rv_lock() != 0)
		return;
	table[rv_hash(user_id) % RV_PGEN]++;
	rv_unlock();
}

int
revoke_profile_gen(const char *user_id, uint32_t *gen)
{
	return rv == NULL ? -1 : gen_read(rv->pgen, user_id, gen);
}

int
revoke_likes_gen(const char *user_id, uint32_t *gen)
{
	return rv == NULL ? -1 : gen_read(rv->fgen, user_id, gen);
}

void
revoke_note_likes(const char *user_id)
{
	if (rv != NULL)
		gen_bump(rv->fgen, user_id);
}

int
revoke_history_gen(const char *user_id, uint32_t *gen)
{
	return rv == NULL ? -1 : gen_read(rv->hgen, user_id, gen);
}

void
revoke_note_history(const char *user_id)
{
	if (rv != NULL)
		gen_bump(rv->hgen, user_id);
}

int
revoke_is_live(void)
{
	int	 live;

	if (rv == NULL || rv_lock() != 0)
		return 0;
	live = rv_live_locked();
	rv_unlock();
	return live;
}

void
revoke_note_version(const char *user_id, long ver, time_t at)
{
	time_t	 now = time(NULL);

	if (rv == NULL || rv_lock() != 0)
		return;
	rv_put(&rv->ver, user_id, ver, (int64_t)at + cfg.access_ttl_s + RV_MARGIN_S,
	    now);
	rv->pgen[rv_hash(user_id) % RV_PGEN]++;
	rv_unlock();
}

void
revoke_note_jti(const char *jti, long exp)
{
	if (rv == NULL || rv_lock() != 0)
		return;
	rv_put(&rv->deny, jti, 1, (int64_t)exp + RV_MARGIN_S, time(NULL));
	rv_unlock();
}

void
revoke_note_profile(const char *user_id)
{
	if (rv != NULL)
		gen_bump(rv->pgen, user_id);
}

void
revoke_set_live(int live)
{
	if (rv == NULL || rv_lock() != 0)
		return;
	rv->watcher_live = live != 0;
	rv_unlock();
}

/*
 * Apply one announcement (the payload format of sql/006). Returns 0, or
 * -1 for a payload it does not understand (ignored by the caller).
 */
int
revoke_apply(const char *payload)
{
	char		 kind, key[RV_KEY + 1];
	long long	 a = 0, b = 0;
	int		 n;

	n = sscanf(payload, "%c %48s %lld %lld", &kind, key, &a, &b);
	if (n < 2 || strlen(key) >= RV_KEY)
		return -1;
	switch (kind) {
	case 'v':
		if (n != 4)
			return -1;
		revoke_note_version(key, (long)a, (time_t)b);
		break;
	case 'd':
		if (n != 3)
			return -1;
		revoke_note_jti(key, (long)a);
		break;
	case 'p':
		revoke_note_profile(key);
		break;
	case 'f':
		revoke_note_likes(key);
		break;
	case 'h':
		revoke_note_history(key);
		break;
	default:
		return -1;
	}
	if (rv != NULL)
		__atomic_add_fetch(&rv->applied, 1, __ATOMIC_RELAXED);
	return 0;
}

int
revoke_library_version(uint64_t *version)
{
	if (rv == NULL || !__atomic_load_n(&rv->watcher_live, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&rv->resync, __ATOMIC_ACQUIRE))
		return -1;
	*version = __atomic_load_n(&rv->library, __ATOMIC_ACQUIRE);
	return 0;
}

void
revoke_library_bump(void)
{
	if (rv != NULL)
		__atomic_add_fetch(&rv->library, 1, __ATOMIC_ACQ_REL);
}

int
revoke_schedule_version(uint64_t *version)
{
	uint64_t	 lib;

	if (revoke_library_version(&lib) != 0)
		return -1;
	*version = lib * 1000003u + __atomic_load_n(&rv->schedule, __ATOMIC_ACQUIRE);
	return 0;
}

void
revoke_schedule_bump(void)
{
	if (rv != NULL)
		__atomic_add_fetch(&rv->schedule, 1, __ATOMIC_ACQ_REL);
}

void
revoke_stats(int *live, unsigned *versions, unsigned *denied,
    unsigned long *applied)
{
	*live = 0;
	*versions = *denied = 0;
	*applied = 0;
	if (rv == NULL || rv_lock() != 0)
		return;
	*live = rv_live_locked();
	*versions = rv->ver.used;
	*denied = rv->deny.used;
	*applied = rv->applied;
	rv_unlock();
}

/* ---- the watcher ------------------------------------------------------ */

/*
 * Replace the tables with what the database says can still matter, and
 * move every profile generation on (changes made while nobody listened
 * are unknown). LISTEN comes first, so nothing committed after the load's
 * snapshot is missed: it arrives as an announcement and is applied on top.
 */
static int
watcher_load(PGconn *c)
{
	static const char	 sql[] =
	    "SELECT 'v', id::text, token_version::bigint,"
	    " floor(extract(epoch FROM token_version_at))::bigint"
	    " FROM users WHERE token_version_at > now() - make_interval(secs => $1::bigint)"
	    " UNION ALL"
	    " SELECT 'd', jti, floor(extract(epoch FROM expires_at))::bigint, 0"
	    " FROM revoked_tokens WHERE expires_at > now()";
	char		 ttl[24];
	const char	*args[1] = { ttl };
	PGresult	*res;
	time_t		 now = time(NULL);
	int		 i, n;

	snprintf(ttl, sizeof(ttl), "%ld", cfg.access_ttl_s + RV_MARGIN_S);
	res = PQexecParams(c, sql, 1, NULL, args, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		return -1;
	}
	n = PQntuples(res);
	if (rv_lock() != 0) {
		PQclear(res);
		return -1;
	}
	memset(&rv->ver, 0, sizeof(rv->ver));
	memset(&rv->deny, 0, sizeof(rv->deny));
	rv->resync = 0;
	for (i = 0; i < RV_PGEN; i++) {
		rv->pgen[i]++;
		rv->fgen[i]++;
		rv->hgen[i]++;
	}
	for (i = 0; i < n; i++) {
		const char	*key = PQgetvalue(res, i, 1);
		long long	 a = atoll(PQgetvalue(res, i, 2));

		if (PQgetvalue(res, i, 0)[0] == 'v')
			rv_put(&rv->ver, key, a, atoll(PQgetvalue(res, i, 3)) +
			    cfg.access_ttl_s + RV_MARGIN_S, now);
		else
			rv_put(&rv->deny, key, 1, a + RV_MARGIN_S, now);
	}
	rv->loads++;
	__atomic_add_fetch(&rv->library, 1, __ATOMIC_ACQ_REL);
	__atomic_add_fetch(&rv->schedule, 1, __ATOMIC_ACQ_REL);
	rv->watcher_live = !rv->resync;
	i = rv->watcher_live;
	rv_unlock();
	PQclear(res);
	log_info("revocation state loaded", "\"entries\":%d,\"live\":%s", n,
	    i ? "true" : "false");
	return i ? 0 : -1;
}

/*
 * A library change committed somewhere (a worker, the import CLI, psql):
 * Redis's list cache first, then the version the workers' own caches are
 * keyed by, so no worker can file a page read from the old Redis version
 * under the new local one. Several announcements in a row cost one INCR
 * each. When Redis is away the INCR is retried every second until it
 * lands, and the local version moves on again then: a page a worker read
 * from Redis in between (possibly from before the change) is not kept.
 */
static int	 library_pending;	/* Redis missed an INCR: retry */
static int	 schedule_pending;

static void
library_changed_elsewhere(void)
{
	struct redisReply	*rep = rds_command(NULL, "INCR lib:ver");

	library_pending = rep == NULL || rep->type != REDIS_REPLY_INTEGER;
	if (rep != NULL)
		freeReplyObject(rep);
	revoke_library_bump();
}

/* The same for the scheduler's answers (payload 's', sql/013). */
static void
schedule_changed_elsewhere(void)
{
	struct redisReply	*rep = rds_command(NULL, "INCR sched:ver");

	schedule_pending = rep == NULL || rep->type != REDIS_REPLY_INTEGER;
	if (rep != NULL)
		freeReplyObject(rep);
	revoke_schedule_bump();
}

static int
watcher_drain(PGconn *c)
{
	PGnotify	*note;

	if (PQconsumeInput(c) == 0)
		return -1;
	while ((note = PQnotifies(c)) != NULL) {
		if (strcmp(note->relname, RV_LIBRARY) == 0 &&
		    strcmp(note->extra, "s") == 0)
			schedule_changed_elsewhere();
		else if (strcmp(note->relname, RV_LIBRARY) == 0)
			library_changed_elsewhere();
		else if (revoke_apply(note->extra) != 0)
			log_warn("revocation announcement not understood", NULL);
		PQfreemem(note);
	}
	return 0;
}

static int
watcher_ping(PGconn *c)
{
	PGresult	*res = PQexec(c, "SELECT 1");
	int		 ok = PQresultStatus(res) == PGRES_TUPLES_OK;

	PQclear(res);
	return ok ? 0 : -1;
}

static PGconn *
watcher_connect(void)
{
	const char	*keys[4] = { "dbname", "application_name", "connect_timeout",
			    NULL };
	const char	*vals[4] = { cfg.database_url, "djamms-revoke", "3", NULL };
	PGconn		*c = PQconnectdbParams(keys, vals, 1);
	PGresult	*res;

	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		PQfinish(c);
		return NULL;
	}
	res = PQexec(c, "SET statement_timeout = 5000; LISTEN " RV_CHANNEL
	    "; LISTEN " RV_LIBRARY);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		PQclear(res);
		PQfinish(c);
		return NULL;
	}
	PQclear(res);
	return c;
}

static volatile sig_atomic_t	 watcher_stop;

static void
watcher_on_term(int sig)
{
	(void)sig;
	watcher_stop = 1;
}

/*
 * The watcher's life: connect, listen, load, apply announcements; on any
 * failure mark the state untrusted and start over after a back-off. It
 * ends on SIGTERM and with the master (PDEATHSIG).
 */
void
revoke_watch_run(pid_t parent)
{
	struct sigaction	 sa;
	sigset_t		 none;
	useconds_t		 backoff = 100000;
	int			 warned = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = watcher_on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	prctl(PR_SET_NAME, "djamms-revoke");	/* for ps and the tests */
	if (getppid() != parent)
		_exit(0);
	while (!watcher_stop) {
		PGconn		*c = watcher_connect();
		uint64_t	 last_ping = now_us();

		if (c == NULL || watcher_load(c) != 0) {
			revoke_set_live(0);
			if (!warned++)
				log_warn("revocation watcher cannot load; tokens are "
				    "checked against Redis", NULL);
			PQfinish(c);
			if (!watcher_stop)
				usleep(backoff);
			backoff = backoff * 2 > 5000000 ? 5000000 : backoff * 2;
			continue;
		}
		backoff = 100000;
		warned = 0;
		log_info("revocation watcher live", NULL);
		while (!watcher_stop) {
			struct pollfd	 p = { PQsocket(c), POLLIN, 0 };

			if (poll(&p, 1, 1000) < 0 && errno != EINTR)
				break;
			if (watcher_drain(c) != 0)
				break;
			if (__atomic_load_n(&rv->resync, __ATOMIC_ACQUIRE) &&
			    watcher_load(c) != 0)
				break;
			if (library_pending)
				library_changed_elsewhere();
			if (schedule_pending)
				schedule_changed_elsewhere();
			if (now_us() - last_ping >= RV_PING_MS * 1000ULL) {
				if (watcher_ping(c) != 0 || watcher_drain(c) != 0)
					break;
				last_ping = now_us();
			}
		}
		revoke_set_live(0);
		PQfinish(c);
		if (watcher_stop)
			break;
		log_warn("revocation watcher lost the database; tokens are checked "
		    "against Redis until it is back", NULL);
		usleep(backoff);
	}
	_exit(0);
}
