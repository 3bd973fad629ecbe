/*
 * fcgi/master.c: the pool master. It owns the listen sockets (its own, or
 * systemd's through LISTEN_FDS), pre-forks the workers and then only
 * supervises: it sleeps in poll() on a signalfd, so signal handling is
 * ordinary code, not async handlers. It respawns dead workers with
 * exponential back-off, gives up on a crash loop, kills a worker stuck
 * past the request deadline, drains on SIGTERM and replaces workers one
 * at a time on SIGHUP without closing the socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "djamms.h"

#define TICK_MS			100
#define BACKOFF_BASE_US		100000ULL	/* first respawn delay after a crash */
#define BACKOFF_MAX_US		10000000ULL
#define HEALTHY_LIFE_US		10000000ULL	/* a worker this old resets back-off */
#define EARLY_DEATH_US		1000000ULL

pid_t			 master_pid;
struct pool_shared	*pool_shm;

/* Master-private bookkeeping beside each shared slot. */
struct slot_ctl {
	uint64_t	 respawn_at_us;		/* 0: nothing scheduled */
	uint64_t	 term_sent_us;		/* when we asked it to stop */
	int		 crashes;		/* consecutive, for back-off */
	int		 replacing;		/* SIGHUP rolling reload */
	int		 deadline_killed;
};

static struct slot_ctl	*ctl;
/*
 * Two sockets, each with workers of its own: the API's (DJAMMS_WORKERS)
 * and search's (DJAMMS_SEARCH_WORKERS, as many as there are CPUs), which
 * nginx's djamms_search upstream takes GET /api/music/search to.
 *
 * Why: a search is work for the CPU alone (its statement ranks hundreds
 * of tracks in Postgres), while most other routes wait on Postgres or
 * Redis for most of their time. More searches at once than there are
 * CPUs only share the CPUs, and every search then takes as long as
 * several; the API's routes need more workers than CPUs to keep them
 * busy. On two cores, at a million tracks, 16 connections searching flat
 * out: four workers answered 1,008-1,348 req/s with p99 24.1-33.8 ms,
 * two 1,214-1,258 req/s with p99 21.3-23.3 ms (three runs of each, in
 * turn). A flood of searches also leaves the API's workers free for
 * sign-ins, pages and streams.
 */
static int		 listen_fd = -1;
static int		 socket_owned;
static int		 search_fd = -1;
static int		 search_owned;
static int		 draining;
static uint64_t		 drain_deadline_us;
static int		 exit_code;
static int		 reload_next = -1;	/* next slot to replace, -1: idle */
static int		 early_deaths;		/* in a row, across the pool */
static pid_t		 watcher_pid;		/* fcgi/revoke.c's LISTEN process */
static uint64_t		 watcher_respawn_us;
static int		 watcher_replacing;	/* SIGHUP: a new one at once */

void
pool_counts(int *alive, int *busy)
{
	uint32_t	 i;

	*alive = *busy = 0;
	if (pool_shm == NULL)
		return;
	for (i = 0; i < pool_shm->nslots; i++) {
		uint32_t	 st = __atomic_load_n(&pool_shm->slots[i].state,
				    __ATOMIC_ACQUIRE);

		if (pool_shm->slots[i].pid > 0 && st != SLOT_EMPTY)
			(*alive)++;
		if (st == SLOT_BUSY)
			(*busy)++;
	}
}

/* Bind path with mode 0660 (group DJAMMS_SOCKET_GROUP); -1 on failure. */
static int
bind_socket(const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	/* A live socket means another pool is running: do not steal it. */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		fprintf(stderr, "djamms: %s is in use by a running pool\n", path);
		close(fd);
		return -1;
	}
	close(fd);
	unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	{
		mode_t	 old = umask(0117);
		int	 rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));

		umask(old);
		if (rc != 0) {
			fprintf(stderr, "djamms: bind %s: %s\n", path, strerror(errno));
			close(fd);
			return -1;
		}
	}
	chmod(path, 0660);
	if (cfg.socket_group != NULL) {
		struct group	*g = getgrnam(cfg.socket_group);

		if (g == NULL || chown(path, (uid_t)-1, g->gr_gid) != 0) {
			fprintf(stderr, "djamms: cannot give %s to group %s\n", path,
			    cfg.socket_group);
			close(fd);
			unlink(path);
			return -1;
		}
	}
	if (listen(fd, SOMAXCONN) != 0) {
		close(fd);
		unlink(path);
		return -1;
	}
	{
		char	 esc[256];

		/* a path from the configuration: escaped into the JSON line */
		json_escape_into(esc, 0, sizeof(esc), path);
		log_info("listening", "\"socket\":\"%s\"", esc);
	}
	return fd;
}

/* Workers poll, then accept; a lost race must give EAGAIN. */
static void
set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/*
 * Take the sockets from systemd (djamms.socket lists the API's first, fd
 * 3, then search's, fd 4), or bind DJAMMS_LISTEN and DJAMMS_SEARCH_LISTEN.
 * A djamms.socket of an older install passes the API's alone: the search
 * socket is then bound here. 0, or -1 with nothing left open.
 */
static int
listen_open(void)
{
	const char	*fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
	long		 n, p;

	if (fds != NULL && pid != NULL && config_parse_long(pid, 1, 1 << 30, &p) == 0 &&
	    (pid_t)p == getpid() && config_parse_long(fds, 1, 64, &n) == 0) {
		listen_fd = 3;		/* SD_LISTEN_FDS_START */
		if (n >= 2)
			search_fd = 4;
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDNAMES");
		socket_owned = 0;
		log_info("listening", "\"socket\":\"systemd\",\"fd\":3");
		if (search_fd >= 0)
			log_info("listening", "\"socket\":\"systemd\",\"fd\":4,"
			    "\"for\":\"search\"");
	} else {
		if ((listen_fd = bind_socket(cfg.listen_path)) < 0)
			return -1;
		socket_owned = 1;
	}
	if (search_fd < 0) {
		if ((search_fd = bind_socket(cfg.search_listen_path)) < 0) {
			close(listen_fd);
			if (socket_owned)
				unlink(cfg.listen_path);
			listen_fd = -1;
			return -1;
		}
		search_owned = 1;
	}
	set_nonblock(listen_fd);
	set_nonblock(search_fd);
	return 0;
}

int
pool_slot_is_search(int slot)
{
	return pool_shm != NULL && slot >= 0 &&
	    (uint32_t)slot >= pool_shm->nslots - pool_shm->nsearch;
}

static void
spawn(int i, int sigfd)
{
	struct pool_slot	*s = &pool_shm->slots[i];
	pid_t			 pid;

	s->requests = 0;
	s->route[0] = '\0';
	s->started_us = now_us();
	__atomic_store_n(&s->state, SLOT_STARTING, __ATOMIC_RELEASE);
	pid = fork();
	if (pid < 0) {
		log_error("fork failed", "\"errno\":%d", errno);
		s->state = SLOT_EMPTY;
		ctl[i].respawn_at_us = now_us() + BACKOFF_BASE_US;
		return;
	}
	if (pid == 0) {
		int	 mine = pool_slot_is_search(i) ? search_fd : listen_fd;

		close(sigfd);
		close(mine == search_fd ? listen_fd : search_fd);
		worker_run(i, mine);
	}
	s->pid = pid;
	ctl[i].respawn_at_us = 0;
	ctl[i].term_sent_us = 0;
	ctl[i].deadline_killed = 0;
}

/*
 * The revocation watcher keeps the shared token tables current. While it
 * is away the workers check tokens against Redis, so its death costs
 * speed, never correctness; it is restarted a second later.
 */
static void
spawn_watcher(int sigfd)
{
	pid_t	 pid = fork();

	if (pid < 0) {
		watcher_respawn_us = now_us() + 1000000;
		return;
	}
	if (pid == 0) {
		close(sigfd);
		close(listen_fd);
		close(search_fd);
		revoke_watch_run(master_pid);
	}
	watcher_pid = pid;
	watcher_respawn_us = 0;
}

static void
begin_drain(int code)
{
	uint32_t	 i;

	if (draining)
		return;
	draining = 1;
	exit_code = code;
	pool_shm->draining = 1;
	drain_deadline_us = now_us() + (uint64_t)cfg.drain_timeout_ms * 1000;
	log_info("draining", "\"timeout_ms\":%ld", cfg.drain_timeout_ms);
	for (i = 0; i < pool_shm->nslots; i++)
		if (pool_shm->slots[i].pid > 0)
			kill(pool_shm->slots[i].pid, SIGTERM);
	if (watcher_pid > 0)
		kill(watcher_pid, SIGTERM);
}

static void
reap(void)
{
	pid_t	 pid;
	int	 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		uint32_t		 i;
		struct pool_slot	*s = NULL;
		uint64_t		 now = now_us(), lived;
		int			 clean;

		if (pid == watcher_pid) {
			revoke_set_live(0);
			watcher_pid = 0;
			if (watcher_replacing && !draining) {
				watcher_replacing = 0;
				watcher_respawn_us = now;
			} else if (!draining) {
				log_warn("revocation watcher died", "\"exit\":%d,"
				    "\"signal\":%d", WIFEXITED(status) ?
				    WEXITSTATUS(status) : -1, WIFSIGNALED(status) ?
				    WTERMSIG(status) : 0);
				watcher_respawn_us = now + 1000000;
			}
			continue;
		}
		for (i = 0; i < pool_shm->nslots; i++)
			if (pool_shm->slots[i].pid == pid) {
				s = &pool_shm->slots[i];
				break;
			}
		if (s == NULL)
			continue;
		lived = now - s->started_us;
		clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
		if (!clean && !draining && !ctl[i].deadline_killed &&
		    !ctl[i].replacing) {
			char	 route[200];

			json_escape_into(route, 0, sizeof(route), s->route);
			pool_shm->crashes++;
			log_error("worker died", "\"worker\":%ld,\"slot\":%u,"
			    "\"exit\":%d,\"signal\":%d,\"route\":\"%s\"",
			    (long)pid, i,
			    WIFEXITED(status) ? WEXITSTATUS(status) : -1,
			    WIFSIGNALED(status) ? WTERMSIG(status) : 0,
			    s->state == SLOT_BUSY ? route : "");
			if (lived >= HEALTHY_LIFE_US)
				ctl[i].crashes = 0;
			ctl[i].crashes++;
			if (lived < EARLY_DEATH_US && s->requests == 0)
				early_deaths++;
			else
				early_deaths = 0;
		} else if (clean && lived >= EARLY_DEATH_US)
			early_deaths = 0;
		s->pid = 0;
		__atomic_store_n(&s->state, SLOT_EMPTY, __ATOMIC_RELEASE);
		if (__atomic_exchange_n(&s->hashing, 0, __ATOMIC_ACQ_REL))
			sem_post(&pool_shm->hash_sem);	/* died holding a permit */
		if (draining)
			continue;
		pool_shm->restarts++;
		if (!clean && !ctl[i].deadline_killed && !ctl[i].replacing) {
			int		 shift = ctl[i].crashes - 1;
			uint64_t	 delay = BACKOFF_BASE_US << (shift > 7 ? 7 : shift);

			if (delay > BACKOFF_MAX_US)
				delay = BACKOFF_MAX_US;
			ctl[i].respawn_at_us = now + delay;
		} else
			ctl[i].respawn_at_us = now;	/* planned: at once */
	}
	/*
	 * Workers that die before serving anything, over and over, will not
	 * get better by themselves (bad config, database schema missing...):
	 * stop, and let systemd's restart policy and the operator see it.
	 */
	if (!draining && early_deaths >= (int)(pool_shm->nslots * 2 > 10 ?
	    pool_shm->nslots * 2 : 10)) {
		log_error("crash loop: workers die at start; giving up",
		    "\"early_deaths\":%d", early_deaths);
		begin_drain(1);
	}
}

uint64_t
slot_busy_us(const struct pool_slot *s, uint64_t now)
{
	uint64_t	 since;

	if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != SLOT_BUSY)
		return 0;
	since = __atomic_load_n(&s->busy_since_us, __ATOMIC_RELAXED);
	/*
	 * A request may have begun after now was read: its start is later
	 * than now, and now - since would wrap to a huge age (a worker
	 * answering in microseconds was killed so).
	 */
	return since >= now ? 0 : now - since;
}

static void
check_deadlines(void)
{
	uint64_t	 now = now_us(), limit = (uint64_t)cfg.request_timeout_ms * 1000;
	uint32_t	 i;

	for (i = 0; i < pool_shm->nslots; i++) {
		struct pool_slot	*s = &pool_shm->slots[i];
		char			 route[200];

		if (s->pid <= 0 || ctl[i].deadline_killed || slot_busy_us(s, now) <= limit)
			continue;
		json_escape_into(route, 0, sizeof(route), s->route);
		log_error("request deadline exceeded; killing worker",
		    "\"worker\":%ld,\"slot\":%u,\"route\":\"%s\",\"deadline_ms\":%ld",
		    (long)s->pid, i, route, cfg.request_timeout_ms);
		/* counted before the kill: whoever sees the 502 sees the count */
		ctl[i].deadline_killed = 1;
		pool_shm->deadline_kills++;
		kill(s->pid, SIGKILL);
	}
}

static void
respawn_due(int sigfd)
{
	uint64_t	 now = now_us();
	uint32_t	 i;

	for (i = 0; i < pool_shm->nslots; i++)
		if (pool_shm->slots[i].pid == 0 && ctl[i].respawn_at_us != 0 &&
		    ctl[i].respawn_at_us <= now)
			spawn((int)i, sigfd);
}

/*
 * SIGHUP: replace workers one at a time. The next one is asked to stop
 * only when the previous replacement is up and accepting, so the pool
 * never has more than one slot out of service.
 */
static void
reload_step(void)
{
	uint64_t	 now = now_us();
	uint32_t	 i;

	if (reload_next < 0)
		return;
	for (i = 0; i < pool_shm->nslots; i++) {
		if (!ctl[i].replacing)
			continue;
		if (pool_shm->slots[i].pid > 0 && ctl[i].term_sent_us == 0 &&
		    pool_shm->slots[i].state >= SLOT_IDLE)
			ctl[i].replacing = 0;		/* the new one is up */
		else {
			if (ctl[i].term_sent_us != 0 && pool_shm->slots[i].pid > 0 &&
			    now - ctl[i].term_sent_us >
			    (uint64_t)cfg.drain_timeout_ms * 1000)
				kill(pool_shm->slots[i].pid, SIGKILL);
			return;				/* still in progress */
		}
	}
	if ((uint32_t)reload_next >= pool_shm->nslots) {
		log_info("reload done", "\"workers\":%u", pool_shm->nslots);
		reload_next = -1;
		return;
	}
	i = (uint32_t)reload_next++;
	if (pool_shm->slots[i].pid > 0) {
		ctl[i].replacing = 1;
		ctl[i].term_sent_us = now;
		kill(pool_shm->slots[i].pid, SIGTERM);
	}
}

static int
alive_count(void)
{
	uint32_t	 i;
	int		 n = 0;

	for (i = 0; i < pool_shm->nslots; i++)
		if (pool_shm->slots[i].pid > 0)
			n++;
	return n;
}

int
master_run(void)
{
	sigset_t		 mask;
	int			 sigfd, i, nslots;
	size_t			 shm_size;
	struct sigaction	 sa;

	master_pid = getpid();
	if (listen_open() != 0)
		return 1;
	nslots = cfg.workers + cfg.search_workers;

	shm_size = sizeof(struct pool_shared) + (size_t)nslots * sizeof(struct pool_slot);
	pool_shm = mmap(NULL, shm_size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (pool_shm == MAP_FAILED)
		return 1;
	memset(pool_shm, 0, shm_size);
	pool_shm->nslots = (uint32_t)nslots;
	pool_shm->nsearch = (uint32_t)cfg.search_workers;
	if (sem_init(&pool_shm->hash_sem, 1, (unsigned)cfg.hash_concurrency) != 0)
		return 1;
	pool_shm->master_started_us = now_us();
	if (revoke_shm_create() != 0 || metrics_shm_create() != 0)
		return 1;
	ctl = calloc((size_t)nslots, sizeof(*ctl));
	if (ctl == NULL)
		abort();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGQUIT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if ((sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		return 1;

	spawn_watcher(sigfd);
	for (i = 0; i < nslots; i++)
		spawn(i, sigfd);
	log_info("pool started", "\"workers\":%d,\"core_workers\":%d,"
	    "\"search_workers\":%d,\"max_requests\":%ld,\"request_timeout_ms\":%ld",
	    cfg.workers, cfg.core_workers, cfg.search_workers, cfg.max_requests,
	    cfg.request_timeout_ms);

	for (;;) {
		struct pollfd			 pfd = { sigfd, POLLIN, 0 };
		struct signalfd_siginfo		 si;

		if (poll(&pfd, 1, TICK_MS) < 0 && errno != EINTR)
			break;
		while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
			switch (si.ssi_signo) {
			case SIGCHLD:
				break;		/* reaped below */
			case SIGHUP:
				if (!draining && reload_next < 0) {
					log_info("reload requested", NULL);
					reload_next = 0;
					if (watcher_pid > 0) {
						watcher_replacing = 1;
						kill(watcher_pid, SIGTERM);
					}
				}
				break;
			default:
				begin_drain(0);
				break;
			}
		}
		reap();
		if (draining) {
			if (alive_count() == 0 && watcher_pid == 0)
				break;
			if (now_us() >= drain_deadline_us) {
				uint32_t	 j;

				log_warn("drain timeout; killing workers",
				    "\"alive\":%d", alive_count());
				for (j = 0; j < pool_shm->nslots; j++)
					if (pool_shm->slots[j].pid > 0)
						kill(pool_shm->slots[j].pid, SIGKILL);
				if (watcher_pid > 0)
					kill(watcher_pid, SIGKILL);
				drain_deadline_us = (uint64_t)-1;
			}
			continue;
		}
		check_deadlines();
		log_rotate_check();
		respawn_due(sigfd);
		if (watcher_pid == 0 && watcher_respawn_us != 0 &&
		    now_us() >= watcher_respawn_us)
			spawn_watcher(sigfd);
		reload_step();
	}

	close(listen_fd);
	close(search_fd);
	if (socket_owned)
		unlink(cfg.listen_path);
	if (search_owned)
		unlink(cfg.search_listen_path);
	close(sigfd);
	log_info("pool stopped", "\"exit\":%d", exit_code);
	free(ctl);
	sem_destroy(&pool_shm->hash_sem);
	revoke_shm_destroy();
	metrics_shm_destroy();
	munmap(pool_shm, shm_size);
	pool_shm = NULL;
	return exit_code;
}
