// SPDX-License-Identifier: MIT
/*
 * demo: no hardware needed. Starts vdpa-sim processes on private sockets,
 * moves traffic through them and live-migrates under traffic.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct sim_proc {
	pid_t pid;
	char sock[PATH_MAX];
	char name[PATH_MAX + 4];
};

static void sim_path(char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n > 0) {
		self[n] = 0;
		slash = strrchr(self, '/');
		if (slash) {
			*slash = 0;
			if (snprintf(buf, len, "%s/vdpa-sim", self) < (int)len &&
			    access(buf, X_OK) == 0)
				return;
		}
	}
	snprintf(buf, len, "vdpa-sim");
}

/*
 * Start one simulator; it says "ready" on a pipe (--ready-fd) once it
 * listens. In its own process group: Ctrl-C reaches the demo only, which
 * stops at a safe point and then stops the simulators; they die with it.
 */
static int start_sim(const char *dir, const char *tag, const char *const *args,
		     struct sim_proc *p)
{
	char prog[PATH_MAX + 16], fdarg[16], ready[8] = "";
	const char *argv[20];
	struct pollfd pf;
	int i = 0, n, pfd[2];

	sim_path(prog, sizeof(prog));
	if (snprintf(p->sock, sizeof(p->sock), "%s/%s.sock", dir, tag) >=
	    (int)sizeof(p->sock))
		return cli_fail("demo: socket path too long");
	snprintf(p->name, sizeof(p->name), "sim:%s", p->sock);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return cli_fail_errno(-errno, "demo: pipe");
	snprintf(fdarg, sizeof(fdarg), "%d", pfd[1]);
	argv[i++] = prog;
	argv[i++] = "--socket";
	argv[i++] = p->sock;
	argv[i++] = "--ready-fd";
	argv[i++] = fdarg;
	for (n = 0; args[n] && i < 19; n++)
		argv[i++] = args[n];
	argv[i] = NULL;
	p->pid = fork();
	if (p->pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return cli_fail_errno(-errno, "demo: fork");
	}
	if (p->pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		fcntl(pfd[1], F_SETFD, 0);	/* inherited by vdpa-sim */
		execvp(prog, (char *const *)argv);
		fprintf(stderr, "vdpa-user: demo: cannot run %s\n", prog);
		_exit(127);
	}
	close(pfd[1]);
	pf.fd = pfd[0];
	pf.events = POLLIN;
	n = poll(&pf, 1, 5000) == 1 ? (int)read(pfd[0], ready, 6) : -1;
	close(pfd[0]);
	if (n == 6 && !memcmp(ready, "ready\n", 6))
		return 0;
	return cli_fail("demo: vdpa-sim on %s did not start%s", p->sock,
			n < 0 ? " within 5 s" : " (its error is above)");
}

static void stop_sim(struct sim_proc *p)
{
	if (p->pid > 0) {
		kill(p->pid, SIGTERM);
		waitpid(p->pid, NULL, 0);
		p->pid = 0;
	}
}

static int run(const char *title, const char *cmd, int (*fn)(int, char **),
	       char **argv, int argc)
{
	int i, rc;

	if (cli_interrupted)
		return CLI_EXIT_INTERRUPTED;
	printf("\n== %s\n$ vdpa-user %s", title, cmd);
	for (i = 0; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	fflush(stdout);
	rc = fn(argc, argv);
	fflush(stdout);
	return rc;
}

int cmd_demo(int argc, char **argv)
{
	static const char *const net_args[] = { "--type", "net",
						"--queue-pairs", "2", NULL };
	static const char *const blk_args_a[] = { "--type", "blk", "--cache",
						  "writeback", "--backing",
						  NULL, NULL };
	struct sim_proc s[4] = { 0 };
	char dir[] = "/tmp/vdpa-demo.XXXXXX", disk[PATH_MAX];
	const char *blk_args[8];
	int rc = 1, i, fd;

	(void)argv;
	cli_catch_sigint();
	if (argc)
		return cli_fail("usage: vdpa-user demo");
	if (cli.json)
		return cli_fail("demo: a narrated walk-through, no JSON output "
				"(run its commands with -j instead)");
	if (!mkdtemp(dir))
		return cli_fail_errno(-errno, "demo: temporary directory");
	snprintf(disk, sizeof(disk), "%s/disk.img", dir);
	fd = open(disk, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 64 << 20) < 0) {
		rc = cli_fail_errno(-errno, "demo: %s", disk);
		goto out;
	}
	close(fd);
	memcpy(blk_args, blk_args_a, sizeof(blk_args_a));
	blk_args[5] = disk;
	printf("vdpa-user demo: four vdpa-sim devices on private sockets in %s\n"
	       "(two virtio-net with 2 queue pairs, two virtio-blk with a "
	       "write-back cache\nover one shared backing file)\n", dir);
	if (start_sim(dir, "net-a", net_args, &s[0]) ||
	    start_sim(dir, "net-b", net_args, &s[1]) ||
	    start_sim(dir, "blk-a", blk_args, &s[2]) ||
	    start_sim(dir, "blk-b", blk_args, &s[3]))
		goto out;
	{
		char *a1[] = { "info", s[0].name };
		char *a2[] = { s[0].name, "--count", "200000", "--queues", "2" };
		char *a3[] = { s[0].name, s[1].name, "--traffic", "--queues",
			       "2", "--count", "300000" };
		char *a4[] = { s[0].name, s[1].name, "--traffic",
			       "--iterations", "20", "--via", "socket" };
		char *a5[] = { s[2].name, s[3].name, "--traffic", "--count",
			       "20000" };

		rc = run("what the device is", "dev info", cmd_dev_info, a1 + 1, 1);
		rc = rc ? rc : run("traffic: every packet looped back exactly "
				   "once", "traffic", cmd_traffic, a2, 5);
		rc = rc ? rc : run("live migration net-a -> net-b in the middle "
				   "of traffic", "migrate", cmd_migrate, a3, 7);
		rc = rc ? rc : run("20 migrations back and forth under traffic",
				   "migrate", cmd_migrate, a4, 7);
		rc = rc ? rc : run("blk with unflushed write-back data: the "
				   "device's own state moves too", "migrate", cmd_migrate,
				   a5, 5);
	}
	if (cli_interrupted) {
		printf("\ndemo interrupted\n");
		rc = CLI_EXIT_INTERRUPTED;
	} else {
		printf("\n%s\n", rc ? "demo FAILED" :
		       "demo ok: no request lost, duplicated or corrupted "
		       "(each driver flushed its disk before letting go; the "
		       "source's unflushed blocks went with its state)");
	}
out:
	for (i = 0; i < 4; i++)
		stop_sim(&s[i]);
	unlink(disk);
	for (i = 0; i < 4; i++)
		if (s[i].sock[0])
			unlink(s[i].sock);
	rmdir(dir);
	return rc;
}
