/*
 * fcgi/proc.c: running helper programs (pg_dump, tar, ffmpeg) for the
 * jobs, and removing directory trees, for the jobs and the handlers alike.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "djamms.h"

int
proc_run(char *const argv[], const char *out_path, const char *err_path,
    int timeout_s, char *err, size_t errlen)
{
	pid_t		 pid, w;
	int		 status, fd;
	time_t		 start = time(NULL);

	if ((pid = fork()) < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		if ((fd = open("/dev/null", O_RDONLY)) >= 0) {
			dup2(fd, STDIN_FILENO);
			close(fd);
		}
		if (out_path != NULL) {
			if ((fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0640)) < 0)
				_exit(126);
			dup2(fd, STDOUT_FILENO);
			close(fd);
		}
		if (err_path != NULL) {
			if ((fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0640)) < 0)
				_exit(126);
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		/* its own process group, so a timeout takes its children too */
		if (timeout_s > 0)
			setpgid(0, 0);
		execvp(argv[0], argv);
		_exit(127);
	}
	for (;;) {
		w = waitpid(pid, &status, timeout_s > 0 ? WNOHANG : 0);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			snprintf(err, errlen, "waitpid: %s", strerror(errno));
			return -1;
		}
		if (w == 0) {
			if (time(NULL) - start >= timeout_s) {
				kill(-pid, SIGKILL);
				kill(pid, SIGKILL);
				while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
					;
				snprintf(err, errlen, "%s took more than %d s", argv[0],
				    timeout_s);
				return -1;
			}
			usleep(20000);
		}
	}
	if (!WIFEXITED(status)) {
		snprintf(err, errlen, "%s killed (signal %d)", argv[0], WTERMSIG(status));
		return -1;
	}
	if (WEXITSTATUS(status) != 0) {
		snprintf(err, errlen, "%s failed (status %d)", argv[0], WEXITSTATUS(status));
		return WEXITSTATUS(status);
	}
	return 0;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void
rm_tree(const char *path)
{
	struct stat	 st;

	if (lstat(path, &st) != 0)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlink(path);
		return;
	}
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
