/*
 * tests/bench/bare_responder.c: the ceiling for `make bench`. The least a
 * libfcgi responder can do: N pre-forked processes answering a fixed JSON
 * body on a unix socket. djamms' trivial route is measured against it.
 * Like the workers (fcgi/worker.c), it ends a connection with a plain
 * close(), not libfcgi's shutdown-and-wait, which a unix socket does not
 * need.
 * usage: bare_responder SOCKET_PATH NPROCS
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcgiapp.h>

int
main(int argc, char **argv)
{
	static const char	 resp[] = "Status: 200 OK\r\n"
	    "Content-Type: application/json\r\nContent-Length: 15\r\n\r\n"
	    "{\"status\":\"ok\"}";
	int			 fd, i, n;

	if (argc != 3 || (n = atoi(argv[2])) < 1) {
		fprintf(stderr, "usage: bare_responder SOCKET NPROCS\n");
		return 2;
	}
	FCGX_Init();
	unlink(argv[1]);
	umask(0117);
	if ((fd = FCGX_OpenSocket(argv[1], 1024)) < 0)
		return 1;
	for (i = 0; i < n; i++) {
		if (fork() == 0) {
			FCGX_Request	 fr;

			prctl(PR_SET_PDEATHSIG, SIGTERM);
			FCGX_InitRequest(&fr, fd, 0);
			while (FCGX_Accept_r(&fr) >= 0) {
				FCGX_PutStr(resp, sizeof(resp) - 1, fr.out);
				if (!fr.keepConnection)
					FCGX_Detach(&fr);
				FCGX_Finish_r(&fr);
			}
			_exit(0);
		}
	}
	while (wait(NULL) > 0)
		;
	return 0;
}
