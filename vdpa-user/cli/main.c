// SPDX-License-Identifier: MIT
/*
 * vdpa-user: OBJECT VERB [args], shaped like iproute2's vdpa tool.
 * One cmd_<object>_<verb>() per command, found in usage.c's table (with
 * its help); global options anywhere; errors are one line on stderr.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <syslog.h>
#include <unistd.h>

#include <vdpa-user/state.h>
#include <vdpa-user/vdpa-user.h>
#include <vdpa-user/version.h>

#include "stream.h"
#include "cli.h"
#include "usage.h"

struct cli_opts cli;

void cli_progress(const char *fmt, ...)
{
	va_list ap;

	if (cli.json || !isatty(STDERR_FILENO))
		return;
	va_start(ap, fmt);
	fputc('\r', stderr);
	vfprintf(stderr, fmt, ap);
	fputs("\033[K", stderr);
	va_end(ap);
}

static void log_to_stderr(int level, const char *msg, void *opaque)
{
	static const char *const names[] = {
		"emerg", "alert", "crit", "error", "warning", "notice", "info",
		"debug",
	};

	fprintf(stderr, "vdpa-user: %s: %s\n",
		names[level & 7], msg);
}

/*
 * vhost-vdpa pins driver memory and counts it against RLIMIT_MEMLOCK
 * (8 MiB by default); raise the soft limit as far as we may.
 */
static void raise_memlock(void)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_MEMLOCK, &r))
		return;
	if (geteuid() == 0)
		r.rlim_max = RLIM_INFINITY;
	r.rlim_cur = r.rlim_max;
	setrlimit(RLIMIT_MEMLOCK, &r);
}

static void version(void)
{
	printf("vdpa-user %s, libvdpa-user %s\n", VDPA_USER_VERSION,
	       vdpa_version());
}

struct global {
	bool help, version;
};

/*
 * A global option at argv[*i] (before or after the command): 1 taken (with
 * its value, *i advanced past it), 0 not one, -1 bad (why in err).
 */
static int global_opt(int argc, char **argv, int *i, struct global *g,
		      char *err, size_t errlen)
{
	const char *a = argv[*i];
	const char *val = NULL;

	if (!strcmp(a, "-j") || !strcmp(a, "--json")) {
		cli.json = true;
	} else if (!strcmp(a, "-p") || !strcmp(a, "--pretty")) {
		cli.pretty = true;
	} else if (!strcmp(a, "--verbose")) {
		cli.verbose++;
	} else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
		g->version = true;
	} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
		g->help = true;
	} else if (!strcmp(a, "--max-state") ||
		   !strncmp(a, "--max-state=", 12)) {
		if (a[11] == '=')
			val = a + 12;
		else if (*i + 1 < argc)
			val = argv[++*i];
		if (!val || cli_parse_u64(val, STREAM_RECORD_MAX,
					  &cli.max_state) < 0 || !cli.max_state) {
			snprintf(err, errlen, "--max-state needs a size in "
				 "bytes, 1..%llu (default %u)",
				 STREAM_RECORD_MAX, VDPA_STATE_DEFAULT_CAP);
			return -1;
		}
	} else if (a[0] == '-' && a[1] && a[1] != '-' &&
		   strspn(a + 1, "jpv") == strlen(a + 1)) {
		/* -jp, -vv, -jpv: a cluster of the one-letter flags */
		for (a++; *a; a++) {
			if (*a == 'j')
				cli.json = true;
			else if (*a == 'p')
				cli.pretty = true;
			else
				cli.verbose++;
		}
	} else {
		return 0;
	}
	return 1;
}

/* Help for the command words in w[0..n): 0, or 1 for an unknown one. */
static int help(char **w, int n)
{
	const struct cli_cmd *c;
	char verbs[128];

	if (!n) {
		cli_usage_all(stdout);
		return 0;
	}
	if (!cli_is_object(w[0]))
		return cli_fail("unknown command '%s' (vdpa-user help lists "
				"them)", w[0]);
	c = cli_cmd_find(w[0], n > 1 ? w[1] : NULL);
	if (!c && (n == 1 || !strcmp(w[1], "help"))) {
		cli_usage_object(stdout, w[0]);
		return 0;
	}
	if (!c)
		return cli_fail("unknown command '%s %s' ('%s' takes %s)",
				w[0], w[1], w[0],
				cli_object_verbs(w[0], verbs, sizeof(verbs)));
	cli_usage_cmd(stdout, c);
	return 0;
}

int main(int argc, char **argv)
{
	const struct cli_cmd *c = NULL;
	struct global g = { false, false };
	char **rest, verbs[128], err[256] = "";
	bool value_next = false;
	int i, n = 0, rc, r;

	signal(SIGPIPE, SIG_IGN);
	raise_memlock();
	rest = calloc((size_t)argc + 1, sizeof(*rest));
	if (!rest)
		return cli_fail_errno(-ENOMEM, "starting");
	/*
	 * Global options go anywhere; what is left is the command and its
	 * arguments. A command option's value is never taken for a global
	 * option (--to -j is a URI "-j"). A bad option is reported once every
	 * option was seen (with -j after it, as JSON too).
	 */
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct cli_opt *o;
		char why[sizeof(err)];

		if (value_next) {
			rest[n++] = argv[i];
			value_next = false;
			continue;
		}
		r = global_opt(argc, argv, &i, &g, why, sizeof(why));
		if (r < 0 && !err[0])
			snprintf(err, sizeof(err), "%s", why);
		if (r)
			continue;
		if (!n && a[0] == '-' && a[1]) {
			if (!err[0])
				snprintf(err, sizeof(err), "unknown option '%s' "
					 "(vdpa-user help lists them)", a);
			continue;
		}
		rest[n++] = argv[i];
		if (!c)
			c = cli_cmd_find(rest[0], n > 1 ? rest[1] : NULL);
		else if ((o = cli_cmd_opt(c, a)) && o->arg)
			value_next = true;
	}
	if (err[0]) {
		free(rest);
		return cli_fail("%s", err);
	}
	if (g.version) {
		version();
		free(rest);
		return 0;
	}
	if (g.help || (n && !strcmp(rest[0], "help"))) {
		/* "help dev info", "dev info --help", "help -h" */
		i = n && !strcmp(rest[0], "help");
		rc = help(rest + i, n - i);
		free(rest);
		return rc;
	}
	if (!n) {
		cli_usage_all(stderr);
		free(rest);
		return 1;
	}
	if (!cli_is_object(rest[0])) {
		rc = cli_fail("unknown command '%s' (vdpa-user help lists "
			      "them)", rest[0]);
		free(rest);
		return rc;
	}
	/* "dev help", "traffic help": that object's or command's help */
	if (n > 1 && !strcmp(rest[1], "help")) {
		rc = help(rest, 1 + !c);
		free(rest);
		return rc;
	}
	if (!c) {
		if (n == 1)
			rc = cli_fail("'%s' needs a verb: %s (vdpa-user %s "
				      "help)", rest[0],
				      cli_object_verbs(rest[0], verbs,
						       sizeof(verbs)), rest[0]);
		else
			rc = cli_fail("unknown command '%s %s' ('%s' takes "
				      "%s)", rest[0], rest[1], rest[0],
				      cli_object_verbs(rest[0], verbs,
						       sizeof(verbs)));
		free(rest);
		return rc;
	}
	i = c->verb ? 2 : 1;
	/* "dev config show", "dev vstats show": the "show" may be left out */
	if (c->verb2 && i < n && !strcmp(rest[i], c->verb2))
		i++;
	if (c->verb2 && i < n && !strcmp(rest[i], "help")) {
		cli_usage_cmd(stdout, c);
		free(rest);
		return 0;
	}
	if (!cli.max_state)
		cli.max_state = VDPA_STATE_DEFAULT_CAP;
	stream_set_state_cap(cli.max_state);
	vdpa_set_log(log_to_stderr, NULL,
		     cli.verbose >= 2 ? LOG_DEBUG :
		     cli.verbose == 1 ? LOG_INFO : LOG_WARNING);
	rc = c->fn(n - i, rest + i);
	free(rest);
	return rc;
}
