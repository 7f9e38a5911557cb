// SPDX-License-Identifier: MIT
/* vdpa-sim: one simulated vDPA device per process, served on a socket. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "fault.h"
#include "sim.h"

static struct vsim *g_sim;

static void on_signal(int sig)
{
	(void)sig;
	if (g_sim)
		vsim_stop(g_sim);
}

static void log_stderr(void *opaque, int level, const char *msg)
{
	static const char *const names[] = {
		"emerg", "alert", "crit", "error", "warning", "notice",
		"info", "debug",
	};

	(void)opaque;
	fprintf(stderr, "vdpa-sim: %s: %s\n",
		names[level >= 0 && level <= LOG_DEBUG ? level : LOG_DEBUG],
		msg);
}

static void usage(FILE *f)
{
	fputs("usage: vdpa-sim --type net|blk --socket PATH [--queue-pairs N]\n"
	      "  [--vq-size N] [--no-suspend] [--no-resume] [--no-state]\n"
	      "  [--kernel 6.1|6.12] [--new-owner]\n"
	      "  [--fault NAME[,NAME...]|help] [--no-loopback]\n"
	      "  [--iova-range FIRST:LAST] [--mac XX:XX:XX:XX:XX:XX] "
	      "[--mtu N]\n"
	      "  [--capacity-mb N] [--backing FILE] "
	      "[--cache writeback|writethrough]\n"
	      "  [--crash-during state-save|state-load] [--pidfile FILE]\n"
	      "  [--ready-fd N] [-v]\n", f);
}

/* --ready-fd: "ready\n" once listening; closed without it on failure. */
static void tell_ready(struct vsim_opts *o, bool ready)
{
	if (o->ready_fd < 0)
		return;
	if (ready && write(o->ready_fd, "ready\n", 6) != 6)
		fprintf(stderr, "vdpa-sim: --ready-fd %d: %s\n", o->ready_fd,
			strerror(errno));
	close(o->ready_fd);
	o->ready_fd = -1;
}

/* --pidfile: written whole (a temporary file renamed into place). */
static int write_pidfile(const char *path)
{
	char tmp[4096], line[32];
	int fd, n, r = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid()) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	n = snprintf(line, sizeof(line), "%d\n", (int)getpid());
	if (write(fd, line, (size_t)n) != n)
		r = errno ? -errno : -EIO;
	if (close(fd) < 0 && !r)
		r = -errno;
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r)
		unlink(tmp);
	return r;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct vsim_opts o;
	const char *sock = NULL;
	int r;

	vsim_opts_init(&o, VSIM_TYPE_NET);
	o.log = log_stderr;
	r = vsim_opts_parse(&o, argc, argv, &sock);
	if (r == 1) {
		usage(stdout);
		return 0;
	}
	if (r == 2) {	/* --fault help */
		vsim_fault_print(stdout);
		return 0;
	}
	if (r < 0) {
		tell_ready(&o, false);
		return 2;
	}
	if (!sock) {
		fprintf(stderr, "vdpa-sim: --socket PATH is required\n");
		tell_ready(&o, false);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	r = vsim_create(&o, &g_sim);
	if (r < 0) {
		fprintf(stderr, "vdpa-sim: cannot create device: %s\n",
			strerror(-r));
		tell_ready(&o, false);
		return 1;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	r = vsim_listen(g_sim, sock);
	if (r < 0) {
		if (r == -EADDRINUSE)
			fprintf(stderr, "vdpa-sim: %s: another simulator is "
				"listening on it; not taking it over\n", sock);
		else if (r == -EEXIST)
			fprintf(stderr, "vdpa-sim: %s: exists and is not a "
				"socket; not replacing it\n", sock);
		else
			fprintf(stderr, "vdpa-sim: %s: %s\n", sock,
				strerror(-r));
		vsim_destroy(g_sim);
		tell_ready(&o, false);
		return 1;
	}
	if (o.pidfile) {
		r = write_pidfile(o.pidfile);
		if (r < 0) {
			fprintf(stderr, "vdpa-sim: --pidfile %s: %s\n",
				o.pidfile, strerror(-r));
			vsim_destroy(g_sim);
			tell_ready(&o, false);
			return 1;
		}
	}
	if (o.log_level >= LOG_INFO)
		fprintf(stderr, "vdpa-sim: %s device on %s\n",
			o.type == VSIM_TYPE_NET ? "net" : "blk", sock);
	tell_ready(&o, true);
	r = vsim_run(g_sim);
	vsim_destroy(g_sim);
	g_sim = NULL;
	if (o.pidfile)
		unlink(o.pidfile);
	return r < 0 ? 1 : 0;
}
