// SPDX-License-Identifier: MIT
/* vdpa-sim: one simulated vDPA device per process, served on a socket. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

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
	      "  [--iova-range FIRST:LAST] [--mac XX:XX:XX:XX:XX:XX] "
	      "[--mtu N]\n"
	      "  [--capacity-mb N] [--backing FILE] "
	      "[--cache writeback|writethrough]\n"
	      "  [--crash-during state-save|state-load] [-v]\n", f);
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
	if (r < 0)
		return 2;
	if (!sock) {
		fprintf(stderr, "vdpa-sim: --socket PATH is required\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	r = vsim_create(&o, &g_sim);
	if (r < 0) {
		fprintf(stderr, "vdpa-sim: cannot create device: %s\n",
			strerror(-r));
		return 1;
	}
	r = vsim_listen(g_sim, sock);
	if (r < 0) {
		fprintf(stderr, "vdpa-sim: %s: %s\n", sock, strerror(-r));
		vsim_destroy(g_sim);
		return 1;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (o.log_level >= LOG_INFO)
		fprintf(stderr, "vdpa-sim: %s device on %s\n",
			o.type == VSIM_TYPE_NET ? "net" : "blk", sock);
	r = vsim_run(g_sim);
	vsim_destroy(g_sim);
	g_sim = NULL;
	return r < 0 ? 1 : 0;
}
