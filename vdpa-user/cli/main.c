// SPDX-License-Identifier: MIT
/*
 * vdpa-user: OBJECT VERB [args], shaped like iproute2's vdpa tool.
 * One cmd_<object>_<verb>() per command; errors are one line on stderr.
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

#include "stream.h"
#include "cli.h"

#define VDPA_USER_VERSION "0.1.0"

struct cli_opts cli;

int cli_err(const char *fmt, ...)
{
	va_list ap;

	fputs("vdpa-user: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

int cli_errno(int err, const char *fmt, ...)
{
	va_list ap;

	fputs("vdpa-user: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(err < 0 ? -err : err));
	return 1;
}

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

struct cmd {
	const char *object;
	const char *verb;	/* NULL: the object is the whole command */
	int (*fn)(int argc, char **argv);
	const char *usage;
};

static const struct cmd cmds[] = {
	{ "dev", "show", cmd_dev_show, "dev show [DEV]" },
	{ "dev", "info", cmd_dev_info, "dev info DEV" },
	{ "dev", "add", cmd_dev_add,
	  "dev add NAME mgmtdev M [mac ADDR] [mtu N] [max_vqp N] [device_features HEX]" },
	{ "dev", "del", cmd_dev_del, "dev del NAME" },
	{ "dev", "config", cmd_dev_config_show, "dev config show [NAME]" },
	{ "dev", "vstats", cmd_dev_vstats_show, "dev vstats show NAME qidx N" },
	{ "mgmtdev", "show", cmd_mgmtdev_show, "mgmtdev show [MGMTDEV]" },
	{ "traffic", NULL, cmd_traffic,
	  "traffic DEV --count N [--size B] [--queues Q]" },
	{ "migrate", NULL, cmd_migrate,
	  "migrate SRC DST [--traffic] [--via pipe|socket|file]" },
	{ "migrate-out", NULL, cmd_migrate_out,
	  "migrate-out SRC --to unix:PATH|tcp:HOST:PORT|file:PATH [--traffic]" },
	{ "migrate-in", NULL, cmd_migrate_in,
	  "migrate-in DST --from unix:PATH|tcp:HOST:PORT|file:PATH" },
	{ "state", "show", cmd_state_show, "state show FILE" },
	{ "state", "check", cmd_state_check, "state check FILE DEV" },
	{ "demo", NULL, cmd_demo, "demo" },
};

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: vdpa-user [-j] [-p] [-v] OBJECT VERB [ARGS]\n"
		   "  DEV is /dev/vhost-vdpa-N, a vdpa device name, or sim:PATH\n");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  vdpa-user %s\n", cmds[i].usage);
	fprintf(f, "Options: -j JSON output, -p pretty JSON, -v more log "
		   "(repeat), -V version, -h help,\n"
		   "  --max-state BYTES  largest device state accepted "
		   "(default %u)\n", VDPA_STATE_DEFAULT_CAP);
}

int main(int argc, char **argv)
{
	const char *object, *verb;
	size_t i;
	int argi = 1;

	signal(SIGPIPE, SIG_IGN);
	raise_memlock();
	for (; argi < argc && argv[argi][0] == '-' && argv[argi][1]; argi++) {
		const char *a = argv[argi];

		if (!strcmp(a, "-j") || !strcmp(a, "--json")) {
			cli.json = true;
		} else if (!strcmp(a, "-p") || !strcmp(a, "--pretty")) {
			cli.pretty = true;
		} else if (!strcmp(a, "-jp") || !strcmp(a, "-pj")) {
			cli.json = cli.pretty = true;
		} else if (!strncmp(a, "-v", 2) && strspn(a + 1, "v") ==
			   strlen(a + 1)) {
			cli.verbose += (int)strlen(a + 1);
		} else if (!strcmp(a, "--max-state")) {
			if (argi + 1 >= argc ||
			    cli_parse_u64(argv[++argi], STREAM_RECORD_MAX,
					  &cli.max_state) < 0 || !cli.max_state)
				return cli_err("--max-state needs a size in "
					       "bytes, 1..%llu (default %u)",
					       STREAM_RECORD_MAX,
					       VDPA_STATE_DEFAULT_CAP);
		} else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			printf("vdpa-user " VDPA_USER_VERSION "\n");
			return 0;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else {
			return cli_err("unknown option '%s' (try -h)", a);
		}
	}
	if (!cli.max_state)
		cli.max_state = VDPA_STATE_DEFAULT_CAP;
	stream_set_state_cap(cli.max_state);
	vdpa_set_log(log_to_stderr, NULL,
		     cli.verbose >= 2 ? LOG_DEBUG :
		     cli.verbose == 1 ? LOG_INFO : LOG_WARNING);
	if (argi >= argc) {
		usage(stderr);
		return 1;
	}
	object = argv[argi++];
	verb = argi < argc ? argv[argi] : NULL;
	if (!strcmp(object, "help")) {
		usage(stdout);
		return 0;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const struct cmd *c = &cmds[i];

		if (strcmp(c->object, object))
			continue;
		if (!c->verb)
			return c->fn(argc - argi, argv + argi);
		if (!verb || strcmp(c->verb, verb))
			continue;
		argi++;
		/* "dev config show", "dev vstats show": eat the "show" */
		if ((!strcmp(verb, "config") || !strcmp(verb, "vstats")) &&
		    argi < argc && !strcmp(argv[argi], "show"))
			argi++;
		return c->fn(argc - argi, argv + argi);
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(cmds[i].object, object))
			break;
	if (i == sizeof(cmds) / sizeof(cmds[0]))
		return cli_err("unknown command '%s' (try -h)", object);
	if (verb)
		return cli_err("unknown command '%s %s' (try -h)", object, verb);
	return cli_err("'%s' needs a verb (try -h)", object);
}
