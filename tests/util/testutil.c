// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

const char *tu_build_dir(void)
{
	static char dir[PATH_MAX];
	ssize_t n;
	char *slash;

	if (dir[0])
		return dir;
	n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	if (n <= 0) {
		strcpy(dir, getenv("BUILD") ? getenv("BUILD") : "build");
		return dir;
	}
	dir[n] = 0;
	/* BUILD/tests/NAME or BUILD/bench/NAME -> BUILD */
	slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	return dir;
}

int tu_mkdtemp(char *buf, size_t len)
{
	const char *t = getenv("TMPDIR");

	if (snprintf(buf, len, "%s/vdpa-test.XXXXXX", t ? t : "/tmp") >=
	    (int)len)
		return -ENAMETOOLONG;
	return mkdtemp(buf) ? 0 : -errno;
}

void tu_rmtree(const char *dir)
{
	pid_t pid;

	if (!dir || !*dir)
		return;
	pid = fork();
	if (pid == 0) {
		execlp("rm", "rm", "-rf", "--", dir, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

pid_t tu_spawn_sim(const char *socket_path, const char *const *args)
{
	char prog[PATH_MAX];
	const char *argv[64];
	int i = 0, n;
	pid_t pid;

	snprintf(prog, sizeof(prog), "%s/vdpa-sim", tu_build_dir());
	if (access(prog, X_OK))
		return -ENOENT;
	argv[i++] = prog;
	argv[i++] = "--socket";
	argv[i++] = socket_path;
	for (n = 0; args && args[n] && i < 62; n++)
		argv[i++] = args[n];
	argv[i] = NULL;
	unlink(socket_path);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* a test that dies must not leave simulators behind */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(prog, (char *const *)argv);
		_exit(127);
	}
	for (n = 0; n < 500; n++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		int st;

		/* the sim renames its socket into place once it listens */
		if (access(socket_path, F_OK) == 0)
			return pid;
		if (waitpid(pid, &st, WNOHANG) == pid)
			return -ECHILD;
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -ETIMEDOUT;
}

int tu_stop_sim(pid_t pid, bool kill9)
{
	int st = 0;

	if (pid <= 0)
		return -EINVAL;
	kill(pid, kill9 ? SIGKILL : SIGTERM);
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	return st;
}
