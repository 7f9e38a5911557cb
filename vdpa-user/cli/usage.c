// SPDX-License-Identifier: MIT
/*
 * Every command with its usage and options, in one table: main.c
 * dispatches on it, help prints it. Keep docs/man/vdpa-user.1 and
 * completions/vdpa-user in step (tests/cli-help.sh compares them).
 */
#include <stdio.h>
#include <string.h>

#include <vdpa-user/state.h>

#include "cli.h"
#include "usage.h"

static const struct cli_opt dev_add_opts[] = {
	{ "name", "NAME", "the new device's name (the word \"name\" may be "
	  "left out)" },
	{ "mgmtdev", "MGMTDEV", "the management device to create it on, as "
	  "\"mgmtdev show\" lists it (required)" },
	{ "mac", "ADDR", "net: MAC address xx:xx:xx:xx:xx:xx" },
	{ "mtu", "N", "net: MTU, 68..65535" },
	{ "max_vqp", "N", "net: maximum queue pairs, 1..65535" },
	{ "device_features", "HEX", "the feature bits the device offers "
	  "(0x...)" },
	{ NULL, NULL, NULL },
};

static const struct cli_opt vstats_opts[] = {
	{ "qidx", "N", "the queue index (required)" },
	{ NULL, NULL, NULL },
};

static const struct cli_opt traffic_opts[] = {
	{ "--count", "N", "requests to move (required)" },
	{ "--size", "B", "net: frame bytes (default 64); blk: bytes per "
	  "request, a multiple of 512 (default 4096)" },
	{ "--queues", "Q", "net: queue pairs to use, up to the device's "
	  "(default 1)" },
	{ NULL, NULL, NULL },
};

static const struct cli_opt migrate_opts[] = {
	{ "--traffic", NULL, "verified traffic across the migration(s); the "
	  "exit status is 1 if a request is lost, duplicated or corrupt" },
	{ "--via", "CHANNEL", "how the state moves: pipe (default), socket "
	  "(a unix socketpair), file (a temporary file), direct (see above)" },
	{ "--count", "N", "requests with --traffic (default 200000 net, "
	  "20000 blk, plus 1000 per iteration)" },
	{ "--size", "B", "request size with --traffic, as for traffic" },
	{ "--queues", "Q", "net: queue pairs (default 1)" },
	{ "--iterations", "K", "migrations, back and forth (default 1)" },
	{ "--precopy", NULL, "pre-copy (a proposal): the device's own state "
	  "in rounds while SRC runs, only the rest in the downtime; when a "
	  "device cannot, stop-and-copy (JSON \"precopy\": false)" },
	{ "--precopy-threshold", "BYTES", "switch over once at most BYTES "
	  "are pending (default 1 MiB; implies --precopy)" },
	{ "--precopy-rounds", "N", "at most N rounds (default 16; implies "
	  "--precopy)" },
	{ NULL, NULL, NULL },
};

static const struct cli_opt migrate_out_opts[] = {
	{ "--to", "URI", "unix:PATH or tcp:HOST:PORT (a migrate-in listening "
	  "there), or file:PATH (required)" },
	{ "--traffic", NULL, "verified traffic: half before the switch, the "
	  "rest continues on the destination" },
	{ "--count", "N", "requests with --traffic (default 100000 net, "
	  "10000 blk)" },
	{ "--size", "B", "request size with --traffic, as for traffic" },
	{ "--queues", "Q", "net: queue pairs (default 1)" },
	{ "--timeout", "SECONDS", "how long the destination may take: to "
	  "listen, and for each reply (default 30, at most 86400)" },
	{ "--precopy", NULL, "pre-copy (a proposal): before the source "
	  "stops, its device's own state in rounds, each applied and "
	  "acknowledged by migrate-in (sockets; a file saves as usual)" },
	{ "--precopy-threshold", "BYTES", "switch over once at most BYTES "
	  "are pending (default 1 MiB; implies --precopy)" },
	{ "--precopy-rounds", "N", "at most N rounds (default 16; implies "
	  "--precopy)" },
	{ NULL, NULL, NULL },
};

static const struct cli_opt serve_opts[] = {
	{ "--socket", "PATH", "the unix socket to listen on (required; "
	  "created 0600, a stale one replaced, a live one never)" },
	{ "--log-level", "LEVEL", "error, warning, notice (default), info "
	  "or debug (every request)" },
	{ "--ready-fd", "N", "write \"ready\\n\" to the inherited fd N, then "
	  "close it, once the socket listens" },
	{ "--stats", "FILE", "the back-end's counters as one JSON object "
	  "(42/43 saves, loads and checks, relay switches, times of the "
	  "last stop, 42 and 43), rewritten whole whenever one changes" },
	{ NULL, NULL, NULL },
};

static const struct cli_opt conform_opts[] = {
	{ "--peer", "DEV2", "a second device of the same class: migrate to "
	  "it and back under traffic (peer.migrate)" },
	{ "--latency-limit", "MS", "the p99 above which latency.suspend and "
	  "latency.resume fail (default 100)" },
	{ NULL, NULL, NULL },
};

static const struct cli_opt migrate_in_opts[] = {
	{ "--from", "URI", "unix:PATH or tcp:HOST:PORT to listen on, or "
	  "file:PATH to restore from (required)" },
	{ "--timeout", "SECONDS", "how long the source may take: to connect, "
	  "and for each record (default 30, at most 86400)" },
	{ NULL, NULL, NULL },
};

static const struct cli_opt live_update_opts[] = {
	{ "--exec", NULL, "hand the device to a copy of this binary it runs, "
	  "the socket inherited" },
	{ "--to", "unix:PATH", "hand it to a live-update --from waiting there" },
	{ "--from", "unix:PATH", "be the new process: wait there, adopt the "
	  "device and continue its traffic" },
	{ "--traffic", NULL, "verified traffic: half before the switch, the "
	  "rest in the new process" },
	{ "--count", "N", "requests with --traffic (default 100000 net, "
	  "10000 blk)" },
	{ "--size", "B", "request size with --traffic, as for traffic" },
	{ "--timeout", "SECONDS", "how long the peer may take (default 30)" },
	{ NULL, NULL, NULL },
};

const struct cli_cmd cli_cmds[] = {
	{ "dev", "show", NULL, cmd_dev_show, "dev show [DEV]",
	  "list /dev/vhost-vdpa-* devices (or DEV) and their class",
	  "A device that cannot be opened is listed with the reason.", NULL },
	{ "dev", "info", NULL, cmd_dev_info, "dev info DEV",
	  "what DEV is and what it can do",
	  "Device id and class, features and backend features by name, "
	  "queues, IOVA range, the decoded config space, the model URI "
	  "migration compatibility compares, PCI identity (libpci), and "
	  "whether DEV can suspend, resume and save its own state.", NULL },
	{ "dev", "add", NULL, cmd_dev_add,
	  "dev add [name] NAME mgmtdev MGMTDEV [mac ADDR] [mtu N] "
	  "[max_vqp N] [device_features HEX]",
	  "create a vdpa device (netlink)", NULL, dev_add_opts },
	{ "dev", "del", NULL, cmd_dev_del, "dev del NAME",
	  "delete a vdpa device (netlink)", NULL, NULL },
	{ "dev", "config", "show", cmd_dev_config_show,
	  "dev config show [NAME]",
	  "the configuration of vdpa devices (netlink)",
	  "MAC, link, queue pairs, MTU and negotiated features, as "
	  "iproute2's vdpa prints them.", NULL },
	{ "dev", "vstats", "show", cmd_dev_vstats_show,
	  "dev vstats show NAME qidx N",
	  "one queue's vendor statistics (netlink)", NULL, vstats_opts },
	{ "mgmtdev", "show", NULL, cmd_mgmtdev_show, "mgmtdev show [MGMTDEV]",
	  "vdpa management devices (netlink)",
	  "The classes, queues and features each offers; the JSON is "
	  "iproute2's.", NULL },
	{ "traffic", NULL, NULL, cmd_traffic,
	  "traffic DEV --count N [--size B] [--queues Q]",
	  "move N verified requests through DEV",
	  "net: sequence-numbered frames looped back by the device, each "
	  "checked to come back once and intact; blk: stamped blocks "
	  "written, read back and verified. The exit status is 1 if a "
	  "request is lost, duplicated or corrupt.", traffic_opts },
	{ "migrate", NULL, NULL, cmd_migrate,
	  "migrate SRC DST [--traffic] [--via pipe|socket|file|direct] "
	  "[--count N] [--size B] [--queues Q] [--iterations K] "
	  "[--precopy [--precopy-threshold BYTES] [--precopy-rounds N]]",
	  "live migration from SRC to DST in one process",
	  "The library's vdpa_migrate(): precheck, SUSPEND, save, transfer, "
	  "load, DRIVER_OK read back, commit or rollback. Prints the median "
	  "and p99 downtime and the median of each step (suspend, save, "
	  "transfer, load, start). --via direct moves the device's own state "
	  "straight from SRC into DST; it needs the state extension on both "
	  "and RESUME on SRC, otherwise the pipe is used (JSON: "
	  "\"direct\": false).", migrate_opts },
	{ "live-update", NULL, NULL, cmd_live_update,
	  "live-update DEV [--traffic] [--count N] [--size B] "
	  "--exec|--to unix:PATH [--timeout SECONDS] | live-update --from "
	  "unix:PATH [--timeout SECONDS]",
	  "hand DEV to another process on this host, traffic continuing",
	  "The library's vdpa_handover_send()/_recv()/_accept(): the open "
	  "device, the driver memory (memfds), the kick and call eventfds "
	  "and a CRC'd record go over a unix socket (SCM_RIGHTS). With "
	  "VHOST_NEW_OWNER (a 2024 proposal; vdpa-sim --new-owner) the fd "
	  "itself moves and the device is never reset; without it (every "
	  "kernel today) the device is suspended, saved, reset and loaded in "
	  "the new process. Prints the path taken and why, and the pause "
	  "(JSON: path, reason, pause_us, and with --traffic lost and "
	  "duplicated).", live_update_opts },
	{ "migrate-out", NULL, NULL, cmd_migrate_out,
	  "migrate-out SRC --to unix:PATH|tcp:HOST:PORT|file:PATH [--traffic] "
	  "[--count N] [--size B] [--queues Q] [--timeout S] [--precopy] "
	  "[--precopy-threshold B] [--precopy-rounds N]",
	  "source half of a migration to another process or host, or a file",
	  "Connects to a migrate-in on the same URI (retrying until it "
	  "listens); the destination prepares while SRC still runs and a "
	  "refusal leaves SRC running. file:PATH saves the migration for a "
	  "later migrate-in. Every record carries a CRC32C. The peer must "
	  "answer within 30 seconds (--timeout); Ctrl-C stops the wait.",
	  migrate_out_opts },
	{ "migrate-in", NULL, NULL, cmd_migrate_in,
	  "migrate-in DST --from unix:PATH|tcp:HOST:PORT|file:PATH "
	  "[--timeout SECONDS]",
	  "destination half: receive a migration (or a file) into DST",
	  "Listens for one migrate-out (30 seconds at most, and as long for "
	  "each of its records: --timeout), describes DST to it and prepares "
	  "DST before "
	  "the source stops, then loads and starts DST. A refusal or a bad "
	  "file fails with one line and leaves DST reset and usable.",
	  migrate_in_opts },
	{ "state", "show", NULL, cmd_state_show, "state show FILE",
	  "decode a saved state (a blob or a migrate-out file)",
	  "Format version, length and CRC, the sections, model, "
	  "configuration, negotiated features, queues, class and device "
	  "state.", NULL },
	{ "state", "check", NULL, cmd_state_check, "state check FILE DEV",
	  "would FILE load into DEV?",
	  "The check the load itself runs; names the first problem in one "
	  "line, e.g. \"mtu: source 1500, destination 9000\".", NULL },
	{ "serve", NULL, NULL, cmd_serve,
	  "serve DEV --socket PATH [--log-level LEVEL] [--ready-fd N] "
	  "[--stats FILE]",
	  "a vhost-user back-end (QEMU -netdev vhost-user, "
	  "vhost-user-blk-pci) in front of a vDPA device",
	  "One front-end at a time; the device is reset when it goes. "
	  "Guest memory is mapped into the device at IOVA = guest physical "
	  "address and the guest's kick and call eventfds go to the device, "
	  "so no frame or block passes through this process. GET_VRING_BASE "
	  "suspends the device; SET_DEVICE_STATE_FD and CHECK_DEVICE_STATE "
	  "move its state; VHOST_F_LOG_ALL switches to relay mode, which logs "
	  "every guest page the device writes (docs/vhost-user.md). Runs "
	  "until SIGINT or SIGTERM.", serve_opts },
	{ "conform", NULL, NULL, cmd_conform, "conform DEV [--peer DEV2] [--latency-limit MS]",
	  "migration conformance checks of DEV (TAP; -j: JSON)",
	  "Drives real traffic through DEV and checks, one by one, what "
	  "live migration needs of it: SUSPEND quiesces the rings (no used "
	  "or buffer write, no call), vring bases match the rings and stay "
	  "put, config space is frozen, RESUME loses and repeats nothing and "
	  "serves kicks sent while suspended, vring setup while suspended, "
	  "reset after SUSPEND, blk requests in flight done whole or not at "
	  "all, SUSPEND/RESUME latency, the device state round trip, and "
	  "with --peer a migration there and back. Each check has a stable "
	  "id, what it expects and where the rule comes from; a missing "
	  "capability is a skip with its reason. Exit status 0 when nothing "
	  "failed, 1 when a check failed, 2 for a usage error or a device "
	  "that cannot be opened (docs/conformance.md).", conform_opts },
	{ "demo", NULL, NULL, cmd_demo, "demo",
	  "simulators on private sockets, traffic, migrations under traffic",
	  "Starts four vdpa-sim processes (found next to vdpa-user, else on "
	  "PATH) and runs dev info, traffic and migrate against them.", NULL },
};

const unsigned int cli_ncmds = sizeof(cli_cmds) / sizeof(cli_cmds[0]);

bool cli_is_object(const char *object)
{
	unsigned int i;

	for (i = 0; i < cli_ncmds; i++)
		if (!strcmp(cli_cmds[i].object, object))
			return true;
	return false;
}

const struct cli_cmd *cli_cmd_find(const char *object, const char *verb)
{
	unsigned int i;

	for (i = 0; i < cli_ncmds; i++) {
		const struct cli_cmd *c = &cli_cmds[i];

		if (strcmp(c->object, object))
			continue;
		if (!c->verb || (verb && !strcmp(c->verb, verb)))
			return c;
	}
	return NULL;
}

const struct cli_opt *cli_cmd_opt(const struct cli_cmd *c, const char *s)
{
	const struct cli_opt *o;

	for (o = c->opts; o && o->name; o++)
		if (!strcmp(o->name, s))
			return o;
	return NULL;
}

const char *cli_object_verbs(const char *object, char *buf, size_t len)
{
	unsigned int i;
	size_t n = 0;

	buf[0] = '\0';
	for (i = 0; i < cli_ncmds; i++) {
		const struct cli_cmd *c = &cli_cmds[i];
		int w;

		if (strcmp(c->object, object) || !c->verb)
			continue;
		w = snprintf(buf + n, len - n, "%s%s%s%s", n ? ", " : "",
			     c->verb, c->verb2 ? " " : "",
			     c->verb2 ? c->verb2 : "");
		if (w < 0 || (size_t)w >= len - n)
			break;
		n += (size_t)w;
	}
	return buf;
}

static const char dev_note[] =
	"DEV is /dev/vhost-vdpa-N, a vdpa device name (vdpa0) or sim:PATH (a "
	"vdpa-sim socket).";

/* Text wrapped to 79 columns, each new line indented by ind. */
static void wrap(FILE *f, const char *s, unsigned int ind, unsigned int col)
{
	const unsigned int width = 79;

	while (*s) {
		size_t w = strcspn(s, " ");

		/* "[--timeout SECONDS]" stays on one line */
		if (*s == '[' && memchr(s, ']', strlen(s)) &&
		    (size_t)(strchr(s, ']') - s) > w)
			w = (size_t)(strchr(s, ']') - s) + 1 +
			    strcspn(strchr(s, ']') + 1, " ");

		if (col > ind && col + 1 + w > width) {
			fprintf(f, "\n%*s", (int)ind, "");
			col = ind;
		} else if (col > ind) {
			fputc(' ', f);
			col++;
		}
		fprintf(f, "%.*s", (int)w, s);
		col += (unsigned int)w;
		s += w;
		while (*s == ' ')
			s++;
	}
	fputc('\n', f);
}

/* "  --count N            requests to move", the help wrapped at 23. */
static void opt_line(FILE *f, const char *name, const char *arg,
		     const char *help)
{
	char head[64];
	int n = snprintf(head, sizeof(head), "  %s%s%s", name, arg ? " " : "",
			 arg ? arg : "");

	if (n > 21)
		fprintf(f, "%s\n%*s", head, 23, "");
	else
		fprintf(f, "%-23s", head);
	wrap(f, help, 23, 23);
}

static void global_opts(FILE *f)
{
	char buf[160];

	fprintf(f, "Options, before or after the command:\n");
	opt_line(f, "-j, --json", NULL, "JSON output");
	opt_line(f, "-p, --pretty", NULL, "indent the JSON of -j");
	opt_line(f, "-v, --verbose", NULL, "more log on stderr; -vv: every "
		 "request with its result and latency");
	snprintf(buf, sizeof(buf), "largest device state accepted, checked "
		 "before anything is allocated (default %u, at most %llu)",
		 VDPA_STATE_DEFAULT_CAP, 1024ull * 1024 * 1024);
	opt_line(f, "--max-state", "BYTES", buf);
	opt_line(f, "-V, --version", NULL, "the CLI's and the library's "
		 "version");
	opt_line(f, "-h, --help", NULL, "this help; COMMAND --help, help "
		 "COMMAND: that command's");
}

static bool has_word(const char *s, const char *w)
{
	size_t n = strlen(w);
	const char *p;

	for (p = strstr(s, w); p; p = strstr(p + 1, w))
		if ((p == s || p[-1] == ' ' || p[-1] == '[') &&
		    (!p[n] || p[n] == ' ' || p[n] == ']'))
			return true;
	return false;
}

/* The usage, what it does and the options of one command. */
static void cmd_body(FILE *f, const struct cli_cmd *c)
{
	const struct cli_opt *o;
	char para[1024];
	size_t n = strlen(c->summary);

	fprintf(f, "Usage: vdpa-user ");
	wrap(f, c->synopsis, 17, 17);
	fprintf(f, "\n");
	snprintf(para, sizeof(para), "%c%s%s%s%s",
		 c->summary[0] >= 'a' && c->summary[0] <= 'z' ?
		 c->summary[0] - 'a' + 'A' : c->summary[0], c->summary + 1,
		 n && c->summary[n - 1] == '?' ? "" : ".",
		 c->details ? " " : "", c->details ? c->details : "");
	wrap(f, para, 0, 0);
	if (c->opts) {
		fprintf(f, "\nOptions:\n");
		for (o = c->opts; o->name; o++)
			opt_line(f, o->name, o->arg, o->help);
	}
}

static void cmd_footer(FILE *f, bool dev)
{
	fprintf(f, "\n");
	if (dev)
		wrap(f, dev_note, 0, 0);
	fprintf(f, "Global options, before or after the command: -j, -p, "
		"-v, --max-state BYTES\n(vdpa-user --help).\n");
}

static bool names_dev(const struct cli_cmd *c)
{
	return has_word(c->synopsis, "DEV") || has_word(c->synopsis, "SRC") ||
	       has_word(c->synopsis, "DST");
}

void cli_usage_cmd(FILE *f, const struct cli_cmd *c)
{
	cmd_body(f, c);
	cmd_footer(f, names_dev(c));
}

void cli_usage_object(FILE *f, const char *object)
{
	unsigned int i;
	bool first = true, dev = false;

	for (i = 0; i < cli_ncmds; i++) {
		if (strcmp(cli_cmds[i].object, object))
			continue;
		if (!first)
			fprintf(f, "\n");
		first = false;
		cmd_body(f, &cli_cmds[i]);
		dev = dev || names_dev(&cli_cmds[i]);
	}
	cmd_footer(f, dev);
}

void cli_usage_all(FILE *f)
{
	unsigned int i;

	fprintf(f, "Usage: vdpa-user [OPTIONS] OBJECT [VERB] [ARGS] "
		"[OPTIONS]\n"
		"       vdpa-user help [COMMAND], vdpa-user COMMAND --help\n\n"
		"Commands:\n");
	for (i = 0; i < cli_ncmds; i++) {
		fprintf(f, "  vdpa-user ");
		wrap(f, cli_cmds[i].synopsis, 14, 12);
		fprintf(f, "%*s", 14, "");
		wrap(f, cli_cmds[i].summary, 14, 14);
	}
	fprintf(f, "\n");
	global_opts(f);
	fprintf(f, "\n");
	wrap(f, dev_note, 0, 0);
	fprintf(f, "Examples: vdpa-user(1).\n");
}
