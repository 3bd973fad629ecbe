/*
 * fcgi/worker.c: one single-threaded FastCGI worker. Termination signals
 * stay blocked except inside ppoll(), so a SIGTERM either interrupts the
 * wait for the next request or waits until the current one is answered:
 * there is no window where it is lost between a flag check and accept()
 * (the race libfcgi's own FCGX_ShutdownPending() has). The listen socket
 * is non-blocking, so a worker that loses the accept race to a sibling
 * gets EAGAIN and goes back to waiting instead of blocking in accept().
 * Each worker waits on the listen socket with EPOLLEXCLUSIVE, so a new
 * connection wakes one worker, not the whole pool.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "djamms.h"

int			 worker_slot = -1;
static int		 listen_sock = -1;
extern pid_t		 master_pid;
static volatile sig_atomic_t stop_requested;
static int		 plain_close;	/* the listen socket is a unix socket */

static void
on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void
slot_state(uint32_t state)
{
	if (pool_shm != NULL)
		__atomic_store_n(&pool_shm->slots[worker_slot].state, state,
		    __ATOMIC_RELEASE);
}

/*
 * nginx may send a body the handler never read; with fastcgi_keep_conn
 * its records must be consumed before the connection serves the next
 * request.
 */
static void
drain_stdin(FCGX_Request *fr)
{
	char	 buf[4096];

	while (FCGX_GetStr(buf, sizeof(buf), fr->in) > 0)
		;
}

int
worker_busy(void)
{
	struct pollfd	 pfd = { listen_sock, POLLIN, 0 };

	return listen_sock >= 0 && poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN);
}

/*
 * Core and spare workers (opt-in: by default every worker is a core
 * worker). The first DJAMMS_CORE_WORKERS take every request; the others
 * are spares for a core worker that is away: on one request for longer
 * than DJAMMS_SPARE_AFTER_MS (an upload, a login's hash, a slow
 * statement) or not running (starting, or replaced after a crash). A
 * spare does not wait on the listening socket, where it could take the
 * wakeup of a new connection that an idle core worker should have had;
 * it looks every SPARE_POLL_MS.
 *
 * Why one would: more workers taking requests than there are CPUs only
 * share the CPUs with each other and their Postgres backends, and a
 * request waits for a CPU in the middle of its work. Why it is not the
 * default: a route that waits on Postgres or Redis leaves its CPU idle
 * with fewer workers. make bench on two cores, four workers against two
 * core workers and two spares: search at a million tracks p99 26.7-31.6
 * -> 22.7 ms flat out and 26.0 -> 12.5 ms paced to half; but likes at
 * 64 connections 11,160 -> 6,993 req/s, a 1,000-track playlist at 16
 * connections 1,247 -> 1,125 req/s, and the cached tracks page's p99
 * flat out 15.0 -> 26.9 ms.
 */
#define SPARE_POLL_MS	5

static int	 spare;
static int	 searcher;	/* one of search's workers (master.c) */

/* Whether a core worker is away: not running, or on one request too long. */
static int
core_away(void)
{
	uint64_t	 now = now_us(), after = (uint64_t)cfg.spare_after_ms * 1000;
	int		 i;

	/* config.c keeps core_workers within the pool's slots */
	for (i = 0; i < cfg.core_workers; i++) {
		struct pool_slot	*s = &pool_shm->slots[i];
		uint32_t		 st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);

		/* slot_busy_us() is 0 for a slot on no request */
		if ((st != SLOT_IDLE && st != SLOT_BUSY) || slot_busy_us(s, now) >= after)
			return 1;
	}
	return 0;
}

/*
 * A spare's wait: 1 when it should take a request, 0 when wait_ms (-1:
 * none) has passed, -1 with errno EINTR on a signal.
 */
static int
spare_wait(int wait_ms, const sigset_t *mask)
{
	uint64_t	 end = wait_ms < 0 ? 0 : now_us() + (uint64_t)wait_ms * 1000;

	for (;;) {
		struct timespec	 ts = { 0, SPARE_POLL_MS * 1000000L };
		uint64_t	 now;

		/* shared memory first: worker_busy() is a system call */
		if (core_away() && worker_busy())
			return 1;
		if (wait_ms >= 0) {
			if ((now = now_us()) >= end)
				return 0;
			if (end - now < SPARE_POLL_MS * 1000)
				ts.tv_nsec = (long)(end - now) * 1000;
		}
		if (ppoll(NULL, 0, &ts, mask) < 0 && errno == EINTR)
			return -1;
	}
}

void
worker_run(int slot, int listen_fd)
{
	struct sigaction	 sa;
	sigset_t		 waitmask;
	FCGX_Request		 fr;
	struct mpool		*pool;
	long			 limit = cfg.max_requests, served = 0;
	struct epoll_event	 ev, got;
	int			 epfd = -1;

	worker_slot = slot;
	/* Die with the master; check it did not die before prctl. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != master_pid)
		_exit(0);
	searcher = pool_slot_is_search(slot);
	prctl(PR_SET_NAME, searcher ? "djamms-search" : "djamms-worker");

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;		/* no SA_RESTART */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	/* The master's mask (all of these blocked) is inherited. */
	sigprocmask(SIG_SETMASK, NULL, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);
	sigdelset(&waitmask, SIGQUIT);

	/* Recycle with jitter so workers do not all restart together. */
	if (limit > 0) {
		srandom((unsigned)(getpid() ^ now_us()));
		limit += random() % (limit / 10 + 1);
	}

	/* Connections are made here, after fork, never inherited. */
	db_connect();
	rds_connect();
	/* Finish what a worker that died mid-upload left behind. */
	library_recover();
	spell_preload();

	/* a spare never waits on the socket (spare_wait()); search has none */
	spare = pool_shm != NULL && slot >= cfg.core_workers && !searcher;
	if (!spare && (epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		log_error("epoll_create1 failed", "\"errno\":%d", errno);
		exit(1);
	}
	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	ev.data.fd = listen_fd;
	if (!spare && epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) != 0) {
		log_error("epoll_ctl failed", "\"errno\":%d", errno);
		exit(1);
	}

	pool = pool_new(16384);
	FCGX_Init();
	FCGX_InitRequest(&fr, listen_fd, 0);
	slot_state(SLOT_IDLE);

	listen_sock = listen_fd;
	{
		struct sockaddr_storage	 ss;
		socklen_t		 sslen = sizeof(ss);

		plain_close = getsockname(listen_fd, (struct sockaddr *)&ss, &sslen) == 0 &&
		    ss.ss_family == AF_UNIX;
	}
	while (!stop_requested && (limit == 0 || served < limit)) {
		struct pollfd	 pfd;
		struct req	 r;
		int		 rc, wait_ms;

		/* search history held back under load (history.c) */
		if ((wait_ms = history_wait_ms()) == 0 ||
		    (wait_ms > 0 && !worker_busy())) {
			history_write();
			wait_ms = -1;
		}

		/*
		 * With fastcgi_keep_conn the next request arrives on the
		 * connection we hold (libfcgi keeps it in ipcFd, a field its
		 * header marks private; 2.4.2 is what Debian ships).
		 */
		if (fr.ipcFd >= 0) {
			pfd.fd = fr.ipcFd;
			pfd.events = POLLIN;
			pfd.revents = 0;
			rc = ppoll(&pfd, 1, wait_ms < 0 ? NULL : &(struct timespec){
			    wait_ms / 1000, (long)(wait_ms % 1000) * 1000000 }, &waitmask);
		} else if (spare)
			rc = spare_wait(wait_ms, &waitmask);
		else
			rc = epoll_pwait(epfd, &got, 1, wait_ms, &waitmask);
		if (rc == 0)
			continue;	/* the history is due */
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			log_error("wait failed", "\"errno\":%d", errno);
			break;
		}
		rc = FCGX_Accept_r(&fr);
		if (rc < 0) {
			if (rc != -EAGAIN && rc != -EWOULDBLOCK && rc != -EINTR)
				log_warn("accept failed", "\"errno\":%d", -rc);
			continue;
		}
		req_init(&r, pool, &fr, fr.envp);
		dispatch(&r);
		drain_stdin(&fr);
		/*
		 * libfcgi ends a connection with shutdown(), then waits for
		 * nginx to close its side and reads to the end before close():
		 * on TCP, closing with data unread would reset the connection
		 * and could drop the answer nginx has not read yet. On a unix
		 * socket the answer is already in nginx's queue and a close
		 * never discards it, and stdin was read to its end above; the
		 * wait was a poll, a wakeup and a read per request, a fifth of
		 * the worker's CPU on a page of tracks. Detached, the request
		 * ends with a plain close().
		 */
		if (plain_close && !fr.keepConnection)
			FCGX_Detach(&fr);
		FCGX_Finish_r(&fr);
		pool_reset(pool);
		served++;
		if (pool_shm != NULL) {
			__atomic_add_fetch(&pool_shm->slots[slot].requests, 1,
			    __ATOMIC_RELAXED);
			__atomic_add_fetch(&pool_shm->requests_total, 1,
			    __ATOMIC_RELAXED);
			if (searcher)
				__atomic_add_fetch(&pool_shm->search_requests_total, 1,
				    __ATOMIC_RELAXED);
		}
	}

	history_write();
	slot_state(SLOT_EMPTY);
	if (epfd >= 0)
		close(epfd);
	FCGX_Free(&fr, 1);
	pool_free(pool);
	auth_cache_free();
	pagecache_free();
	likes_free();
	suggest_free();
	spell_free();
	media_shutdown();
	db_disconnect();
	rds_disconnect();
	exit(0);
}
