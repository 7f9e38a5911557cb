// SPDX-License-Identifier: MIT
/*
 * The CLI as a new user meets it, with real processes (vdpa-sim and
 * vdpa-user): every error exits non-zero with one line on stderr saying
 * what happened (a killed simulator's socket, a socket named without
 * sim:, the same device twice, an option out of range, blk simulators
 * without a shared disk refused before anything stops, the source's
 * reason on the destination); -j errors are strict JSON objects and
 * "result":"ok" never comes with a non-zero exit; Ctrl-C prints what was
 * done and exits 130; --timeout; vdpa-sim never takes over a live socket
 * and says when it is ready (--ready-fd, --pidfile); one naming in the
 * JSON; -p everywhere; the demo loses nothing and says nothing alarming.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vdpa-user/vdpa-user.h>

#include "tap.h"
#include "testutil.h"

static char dir[256];
static char cli_path[PATH_MAX + 16], sim_path[PATH_MAX + 16];
static char out[1 << 16], err[1 << 16];

/* ---- running programs --------------------------------------------------- */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;
	ssize_t n;

	while (fd >= 0 && got + 1 < len &&
	       (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	if (fd >= 0)
		close(fd);
}

/* Start prog with args, stdout and stderr into files named after tag. */
static pid_t start(const char *prog, const char *tag, const char *const *args)
{
	const char *argv[40];
	char op[400], ep[400];
	int i = 0, n;
	pid_t pid;

	argv[i++] = prog;
	for (n = 0; args[n] && i < 39; n++)
		argv[i++] = args[n];
	argv[i] = NULL;
	snprintf(op, sizeof(op), "%s/%s.out", dir, tag);
	snprintf(ep, sizeof(ep), "%s/%s.err", dir, tag);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int fo = open(op, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(ep, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fo < 0 || fe < 0)
			_exit(126);
		dup2(fo, 1);
		dup2(fe, 2);
		execv(prog, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/*
 * Wait for pid (at most timeout_s, then SIGKILL: -1); its stdout and
 * stderr into out and err. The exit status, or 128 + signal.
 */
static int finish(pid_t pid, const char *tag, double timeout_s)
{
	double t0 = now();
	char op[400], ep[400];
	int st = 0;
	pid_t r;

	while ((r = waitpid(pid, &st, WNOHANG)) == 0 &&
	       now() - t0 < timeout_s)
		usleep(5000);
	if (r == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	snprintf(op, sizeof(op), "%s/%s.out", dir, tag);
	snprintf(ep, sizeof(ep), "%s/%s.err", dir, tag);
	slurp(op, out, sizeof(out));
	slurp(ep, err, sizeof(err));
	if (r == 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run(const char *prog, const char *const *args)
{
	return finish(start(prog, "run", args), "run", 120);
}

#define CLI(...) run(cli_path, (const char *const[]){ __VA_ARGS__, NULL })
#define SIM(...) run(sim_path, (const char *const[]){ __VA_ARGS__, NULL })

static bool has(const char *s, const char *needle)
{
	return strstr(s, needle) != NULL;
}

/* Exactly one line, ending in a newline. */
static bool one_line(const char *s)
{
	size_t n = strlen(s);

	return n && s[n - 1] == '\n' && strchr(s, '\n') == s + n - 1;
}

static unsigned int count_lines(const char *s)
{
	unsigned int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* ---- a strict JSON validator (RFC 8259) ---------------------------------- */

struct jp {
	const unsigned char *p;
	int depth;
};

static void ws(struct jp *j)
{
	while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
		j->p++;
}

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

/* One UTF-8 sequence at j->p (first byte >= 0x80), no overlong/surrogate. */
static bool utf8(struct jp *j)
{
	const unsigned char *p = j->p;
	unsigned char lo = 0x80, hi = 0xbf;
	int n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 1;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 2;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 3;
	else
		return false;
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	for (i = 1; i <= n; i++) {
		if (p[i] < (i == 1 ? lo : 0x80) || p[i] > (i == 1 ? hi : 0xbf))
			return false;
	}
	j->p += n + 1;
	return true;
}

static bool jstring(struct jp *j)
{
	if (*j->p != '"')
		return false;
	j->p++;
	for (;;) {
		unsigned char c = *j->p;

		if (c == '"') {
			j->p++;
			return true;
		}
		if (c < 0x20)
			return false;	/* a raw control byte, or the end */
		if (c == '\\') {
			j->p++;
			if (strchr("\"\\/bfnrt", *j->p) && *j->p) {
				j->p++;
			} else if (*j->p == 'u' && is_hex(j->p[1]) &&
				   is_hex(j->p[2]) && is_hex(j->p[3]) &&
				   is_hex(j->p[4])) {
				j->p += 5;
			} else {
				return false;
			}
		} else if (c < 0x80) {
			j->p++;
		} else if (!utf8(j)) {
			return false;
		}
	}
}

static bool digits(struct jp *j)
{
	if (*j->p < '0' || *j->p > '9')
		return false;
	while (*j->p >= '0' && *j->p <= '9')
		j->p++;
	return true;
}

static bool jnumber(struct jp *j)
{
	if (*j->p == '-')
		j->p++;
	if (*j->p == '0')
		j->p++;
	else if (!digits(j))
		return false;
	if (*j->p == '.') {
		j->p++;
		if (!digits(j))
			return false;
	}
	if (*j->p == 'e' || *j->p == 'E') {
		j->p++;
		if (*j->p == '+' || *j->p == '-')
			j->p++;
		if (!digits(j))
			return false;
	}
	return true;
}

static bool jvalue(struct jp *j);

static bool jcontainer(struct jp *j, char close, bool object)
{
	j->p++;
	if (++j->depth > 64)
		return false;
	ws(j);
	if (*j->p == close) {
		j->p++;
		j->depth--;
		return true;
	}
	for (;;) {
		ws(j);
		if (object) {
			if (!jstring(j))
				return false;
			ws(j);
			if (*j->p != ':')
				return false;
			j->p++;
		}
		if (!jvalue(j))
			return false;
		ws(j);
		if (*j->p == close) {
			j->p++;
			j->depth--;
			return true;
		}
		if (*j->p != ',')
			return false;
		j->p++;
	}
}

static bool jvalue(struct jp *j)
{
	ws(j);
	switch (*j->p) {
	case '{':
		return jcontainer(j, '}', true);
	case '[':
		return jcontainer(j, ']', false);
	case '"':
		return jstring(j);
	case 't':
		return !strncmp((const char *)j->p, "true", 4) && (j->p += 4);
	case 'f':
		return !strncmp((const char *)j->p, "false", 5) && (j->p += 5);
	case 'n':
		return !strncmp((const char *)j->p, "null", 4) && (j->p += 4);
	default:
		return jnumber(j);
	}
}

/* One JSON object, nothing but whitespace around it. */
static bool json_valid(const char *s)
{
	struct jp j = { (const unsigned char *)s, 0 };

	ws(&j);
	if (*j.p != '{' || !jvalue(&j))
		return false;
	ws(&j);
	return *j.p == '\0';
}

/*
 * What every -j run must be: one valid JSON object on stdout; an "error"
 * member when the exit status is not 0; "result":"ok" only with 0; and
 * one line per error on stderr.
 */
static void json_run_ok(const char *what, int rc)
{
	bool valid = json_valid(out), ok_result = has(out, "\"result\":\"ok\"");
	bool error = has(out, "\"error\":");

	if (!tap_ok(valid && (rc == 0 || error) && (!ok_result || rc == 0) &&
		    (rc == 0 || count_lines(err) >= 1),
		    "-j %s: a JSON object (exit %d%s%s)", what, rc,
		    error ? ", with \"error\"" : "",
		    ok_result ? ", \"result\":\"ok\"" : ""))
		tap_diag("  out %s  err %s", out, err);
}

/* ---- simulators --------------------------------------------------------- */

struct sim {
	pid_t pid;
	char sock[300];
	char name[310];
};

static bool sim_start(struct sim *s, const char *tag, const char *const *args)
{
	snprintf(s->sock, sizeof(s->sock), "%s/%s.sock", dir, tag);
	snprintf(s->name, sizeof(s->name), "sim:%s", s->sock);
	s->pid = tu_spawn_sim(s->sock, args);
	if (s->pid <= 0)
		tap_diag("  vdpa-sim %s did not start: %s", tag,
			 strerror((int)-s->pid));
	return s->pid > 0;
}

static void sim_stop(struct sim *s)
{
	if (s->pid > 0)
		tu_stop_sim(s->pid, false);
	s->pid = 0;
}

static const char *const net_args[] = { "--type", "net", NULL };

/* A file of size bytes at dir/name; its path in buf. */
static bool make_file(char *buf, size_t len, const char *name, off_t size)
{
	int fd;

	snprintf(buf, len, "%s/%s", dir, name);
	fd = open(buf, O_CREAT | O_RDWR | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, size) < 0) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	close(fd);
	return true;
}

/* ---- section 2: exit codes and errors ----------------------------------- */

static void missing_devices(void)
{
	int rc;

	rc = CLI("dev", "show", "/dev/vhost-vdpa-987654");
	tap_ok(rc == 1 && !out[0] && one_line(err) &&
	       has(err, "vdpa-user: /dev/vhost-vdpa-987654: no such device"),
	       "dev show of a missing /dev/vhost-vdpa-N: exit 1, one line on "
	       "stderr, nothing on stdout");
	if (rc != 1 || out[0])
		tap_diag("  exit %d out '%s' err '%s'", rc, out, err);
	rc = CLI("dev", "show", "vdpa-nosuch-xyz");
	tap_ok(rc == 1 && !out[0] && one_line(err) &&
	       has(err, "vdpa-nosuch-xyz: no such vdpa device"),
	       "dev show of an unknown vdpa name: exit 1, one line saying so");
	rc = CLI("-j", "dev", "show", "/dev/vhost-vdpa-987654");
	json_run_ok("dev show (missing)", rc);
	tap_ok(rc == 1 && has(out, "\"error\":\"/dev/vhost-vdpa-987654: no "
			      "such device\"") && one_line(err),
	       "-j dev show (missing): exit 1, the error in the JSON and one "
	       "line on stderr");
	rc = CLI("-j", "-p", "dev", "info", "/dev/vhost-vdpa-987654");
	json_run_ok("-p dev info (missing)", rc);
	tap_ok(rc == 1 && count_lines(out) >= 3 && has(out, "\"error\": "),
	       "-j -p dev info (missing): the error object is pretty-printed "
	       "too");
}

static void stale_socket(void)
{
	struct sim s;
	struct vdpa_dev *dev = NULL;
	char want[700], path[400];
	int rc, r;

	if (!tap_ok(sim_start(&s, "stale", net_args), "a simulator to kill"))
		return;
	tu_stop_sim(s.pid, true);	/* SIGKILL: the socket stays behind */
	s.pid = 0;
	rc = CLI("dev", "info", s.name);
	snprintf(want, sizeof(want), "vdpa-user: %s: connection refused (no "
		 "simulator listening)\n", s.name);
	if (!tap_ok(access(s.sock, F_OK) == 0 && rc == 1 && !out[0] &&
		    !strcmp(err, want),
		    "dev info of the socket a killed simulator left: "
		    "'connection refused (no simulator listening)', one line, "
		    "exit 1"))
		tap_diag("  exit %d err '%s'", rc, err);
	r = vdpa_dev_open(s.name, &dev);
	tap_is(r, -ECONNREFUSED, "vdpa_dev_open() of that socket: "
	       "-ECONNREFUSED, not -ENOENT");
	if (r == 0)
		vdpa_dev_close(dev);
	snprintf(path, sizeof(path), "sim:%s/nobody-here.sock", dir);
	r = vdpa_dev_open(path, &dev);
	tap_is(r, -ENOENT, "vdpa_dev_open() of no socket at all: -ENOENT");
	rc = CLI("-j", "traffic", s.name, "--count", "10");
	json_run_ok("traffic (stale socket)", rc);
	tap_ok(rc == 1 && has(out, "\"result\":\"failed\"") &&
	       has(out, "connection refused (no simulator listening)"),
	       "-j traffic on it: \"result\":\"failed\" and the reason");

	/* a socket path without sim: */
	rc = CLI("dev", "info", s.sock);
	snprintf(want, sizeof(want), "vdpa-user: %s is a unix socket: did you "
		 "mean sim:%s?\n", s.sock, s.sock);
	if (!tap_ok(rc == 1 && !strcmp(err, want), "dev info PATH of a unix "
		    "socket: 'did you mean sim:PATH?'"))
		tap_diag("  exit %d err '%s'", rc, err);
	rc = CLI("traffic", s.sock, "--count", "10");
	tap_ok(rc == 1 && one_line(err) && has(err, "did you mean sim:"),
	       "traffic PATH of a unix socket: the same suggestion");
	rc = CLI("dev", "info", "/etc/hostname");
	tap_ok(rc == 1 && one_line(err) && has(err, "/etc/hostname: not a "
						"device"),
	       "dev info of a plain file: 'not a device', one line");
	unlink(s.sock);
}

static void busy_and_same(void)
{
	struct vdpa_dev *held = NULL;
	char link[400], other[410];
	struct sim a;
	int rc;

	/* a simulator that did not start fails the checks below too */
	tap_ok(sim_start(&a, "same-a", net_args), "a simulator");
	rc = CLI("migrate", a.name, a.name);
	tap_ok(rc == 1 && !out[0] && one_line(err) &&
	       has(err, "are the same device"),
	       "migrate X X: exit 1, one line: the same device");
	snprintf(link, sizeof(link), "%s/same-link.sock", dir);
	snprintf(other, sizeof(other), "sim:%s", link);
	if (symlink(a.sock, link) == 0) {
		rc = CLI("migrate", a.name, other);
		tap_ok(rc == 1 && one_line(err) &&
		       has(err, "are the same device"),
		       "migrate through two names of one socket: the same "
		       "device too");
		unlink(link);
	}
	rc = CLI("-j", "migrate", a.name, a.name);
	json_run_ok("migrate X X", rc);
	tap_ok(rc == 1 && has(out, "\"result\":\"failed\"") &&
	       has(out, "same device"),
	       "-j migrate X X: \"result\":\"failed\", the reason");
	/* the library's own log is not a second line */
	held = NULL;
	vdpa_dev_open(a.name, &held);
	rc = CLI("dev", "info", a.name);
	if (!tap_ok(held && rc == 1 && one_line(err) &&
		    has(err, "busy: another program has the device open"),
		    "dev info of a device this test holds open: one line "
		    "'busy', no library log line besides"))
		tap_diag("  exit %d err '%s'", rc, err);
	vdpa_dev_close(held);
	rc = CLI("traffic", a.name, "--count", "100", "--queues", "2");
	if (!tap_ok(rc == 1 && !out[0] && one_line(err) &&
		    has(err, "--queues: 1..1"),
		    "--queues beyond the device's queue pairs: one line naming "
		    "--queues and its range 1..1"))
		tap_diag("  exit %d err '%s'", rc, err);
	sim_stop(&a);
}

static void option_ranges(void)
{
	static const struct {
		const char *args[12];
		const char *says;
	} cases[] = {
		{ { "traffic", "sim:/x", "--count", "0" },
		  "traffic: --count: 1..1000000000, not '0'" },
		{ { "traffic", "sim:/x", "--count", "99999999999999999" },
		  "traffic: --count: 1..1000000000, not '99999999999999999'" },
		{ { "traffic", "sim:/x", "--count" },
		  "traffic: --count needs a number, 1..1000000000" },
		{ { "traffic", "sim:/x", "--count", "9", "--queues", "17" },
		  "traffic: --queues: 1..16, not '17'" },
		{ { "traffic", "sim:/x", "--count", "9", "--size", "1048577" },
		  "traffic: --size: 0..65536, not '1048577'" },
		{ { "migrate", "sim:/x", "sim:/y", "--iterations", "0" },
		  "migrate: --iterations: 1..1000000, not '0'" },
		{ { "migrate", "sim:/x", "sim:/y", "--via", "carrier-pigeon" },
		  "migrate: --via: pipe, socket, file or direct, not "
		  "'carrier-pigeon'" },
		{ { "migrate-out", "sim:/x", "--to", "unix:/y", "--timeout",
		    "0" }, "migrate-out: --timeout: 1..86400, not '0'" },
		{ { "migrate-in", "sim:/x", "--from", "unix:/y", "--timeout",
		    "86401" }, "migrate-in: --timeout: 1..86400, not '86401'" },
		{ { "dev", "vstats", "show", "vdpa0", "qidx", "-1" },
		  "dev vstats show: qidx: 0..4294967295, not '-1'" },
		{ { "dev", "add", "name", "x", "mgmtdev", "y", "mtu", "10" },
		  "dev add: mtu: 68..65535, not '10'" },
		{ { "dev", "add", "name", "x", "mgmtdev", "y", "max_vqp", "0" },
		  "dev add: max_vqp: 1..65535, not '0'" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char want[300];
		int rc = run(cli_path, cases[i].args);

		snprintf(want, sizeof(want), "vdpa-user: %s\n", cases[i].says);
		if (!tap_ok(rc == 1 && !out[0] && !strcmp(err, want),
			    "out of range: '%s', exit 1, nothing else",
			    cases[i].says))
			tap_diag("  exit %d out '%s' err '%s'", rc, out, err);
	}
}

/* blk between simulators that do not share a disk: refused up front. */
static void blk_disks(void)
{
	const char *ram[] = { "--type", "blk", NULL };
	char d1[400], d2[400];
	const char *f1[] = { "--type", "blk", "--backing", d1, NULL };
	const char *f2[] = { "--type", "blk", "--backing", d2, NULL };
	struct sim a = { 0 }, b = { 0 };
	int rc;

	if (!make_file(d1, sizeof(d1), "disk1.img", 64 << 20) ||
	    !make_file(d2, sizeof(d2), "disk2.img", 64 << 20)) {
		tap_ok(0, "backing files");
		return;
	}
	/* a simulator that did not start fails the checks of its part */
	tap_ok(sim_start(&a, "ram-a", ram) && sim_start(&b, "ram-b", ram),
	       "two blk simulators, each with its RAM disk");
	rc = CLI("dev", "info", a.name);
	tap_ok(rc == 0 && has(out, "model: vdpa-sim://blk?disk=ram-"),
	       "dev info: a RAM disk's model URI names that disk");
	rc = CLI("-j", "migrate", a.name, b.name, "--traffic", "--count",
		 "2000");
	json_run_ok("migrate (blk, two RAM disks)", rc);
	if (!tap_ok(rc == 1 && has(out, "\"result\":\"failed\"") &&
		    has(out, "\"migrations\":0,") &&
		    has(out, "\"source_resumed\":false") &&
		    has(out, "model: source vdpa-sim://blk?disk=ram-") &&
		    has(out, "the simulators do not share a disk") &&
		    has(out, "\"completed\":2000,") &&
		    has(out, "\"corrupt\":0,") && has(out, "\"lost\":0,") &&
		    one_line(err),
		    "blk between two RAM disks: refused before anything "
		    "stopped, naming both disks and why; the source kept all "
		    "2000 requests intact"))
		tap_diag("  exit %d out %s err %s", rc, out, err);
	rc = CLI("migrate", a.name, b.name);
	tap_ok(rc == 1 && !has(out, "migration(s) ok") && one_line(err) &&
	       has(err, ", destination vdpa-sim://blk?disk=ram-") &&
	       has(err, ": the simulators do not share a disk (start both "
		   "with the same --backing FILE)"),
	       "the same in text: one line, no 'migration(s) ok'");
	rc = CLI("traffic", a.name, "--count", "1000");
	tap_is(rc, 0, "the refused source still works");
	sim_stop(&a);
	sim_stop(&b);

	tap_ok(sim_start(&a, "file-a", f1) && sim_start(&b, "file-b", f2),
	       "two blk simulators on two backing files");
	rc = CLI("migrate", a.name, b.name, "--traffic", "--count", "1000");
	tap_ok(rc == 1 && one_line(err) && has(err, "?disk=") &&
	       has(err, "do not share a disk"),
	       "blk between two different backing files: refused too");
	sim_stop(&a);
	sim_stop(&b);

	tap_ok(sim_start(&a, "shared-a", f1) && sim_start(&b, "shared-b", f1),
	       "two blk simulators on one backing file");
	rc = CLI("-j", "migrate", a.name, b.name, "--traffic", "--count",
		 "2000");
	json_run_ok("migrate (blk, shared disk)", rc);
	if (!tap_ok(rc == 0 && has(out, "\"result\":\"ok\"") &&
		    has(out, "\"migrations\":1,") &&
		    has(out, "\"corrupt\":0,") && has(out, "\"lost\":0,") &&
		    !err[0],
		    "blk on a shared backing file: migrates, every block "
		    "intact, nothing on stderr"))
		tap_diag("  exit %d out %s err %s", rc, out, err);
	sim_stop(&a);
	sim_stop(&b);
}

/* The source refuses (an MTU the destination lacks): migrate-in says why. */
static void source_refuses(void)
{
	const char *jumbo[] = { "--type", "net", "--mtu", "9000", NULL };
	char uri[400];
	static char in_err[sizeof(err)], in_out[sizeof(out)];
	struct sim a, b;
	pid_t in;
	int rc, irc;

	snprintf(uri, sizeof(uri), "unix:%s/refuse.sock", dir);
	if (!tap_ok(sim_start(&a, "ref-a", net_args) &&
		    sim_start(&b, "ref-b", jumbo), "a 1500 and a 9000 MTU "
		    "simulator"))
		goto out;
	in = start(cli_path, "in", (const char *const[]){ "migrate-in",
		   b.name, "--from", uri, NULL });
	rc = CLI("migrate-out", a.name, "--to", uri, "--traffic", "--count",
		 "5000");
	tap_ok(rc == 1 && one_line(err) &&
	       has(err, "migrate-out: mtu: source 1500, destination 9000; "
		   "the source is still running") &&
	       has(out, "requests 5000 completed 5000 lost 0"),
	       "migrate-out refused (MTU): one line with the reason; the "
	       "source finished its traffic");
	irc = finish(in, "in", 30);
	snprintf(in_out, sizeof(in_out), "%s", out);
	snprintf(in_err, sizeof(in_err), "%s", err);
	if (!tap_ok(irc == 1 && one_line(in_err) &&
		    has(in_err, "migrate-in: source refused: mtu: source 1500, "
			"destination 9000") && !has(in_err, "truncated") &&
		    !in_out[0],
		    "migrate-in shows the source's reason, not 'stream ended "
		    "early'"))
		tap_diag("  exit %d out '%s' err '%s'", irc, in_out, in_err);

	in = start(cli_path, "in", (const char *const[]){ "-j", "migrate-in",
		   b.name, "--from", uri, NULL });
	rc = CLI("-j", "migrate-out", a.name, "--to", uri);
	json_run_ok("migrate-out (refused)", rc);
	tap_ok(rc == 1 && has(out, "\"source_running\":true") &&
	       has(out, "mtu: source 1500"),
	       "-j migrate-out refused: \"source_running\":true, the reason");
	irc = finish(in, "in", 30);
	json_run_ok("migrate-in (source refused)", irc);
	tap_ok(irc == 1 && has(out, "\"result\":\"failed\"") &&
	       has(out, "source refused: mtu: source 1500, destination 9000"),
	       "-j migrate-in: the source's reason in \"error\"");
out:
	sim_stop(&a);
	sim_stop(&b);
}

/* ---- section 3: long work ----------------------------------------------- */

static void timeouts(void)
{
	struct sim a;
	char uri[400];
	double t0;
	int rc;

	snprintf(uri, sizeof(uri), "unix:%s/nobody.sock", dir);
	if (!tap_ok(sim_start(&a, "to-a", net_args), "a simulator"))
		return;
	t0 = now();
	rc = CLI("migrate-in", a.name, "--from", uri, "--timeout", "1");
	if (!tap_ok(rc == 1 && now() - t0 < 6 && one_line(err) &&
		    has(err, "no source connected in 1 s (--timeout)"),
		    "migrate-in --timeout 1: gives up after a second (not 30), "
		    "one line saying so (%.1f s)", now() - t0))
		tap_diag("  exit %d err '%s'", rc, err);
	t0 = now();
	rc = CLI("migrate-out", a.name, "--to", uri, "--timeout", "1");
	if (!tap_ok(rc == 1 && now() - t0 < 6 && one_line(err) &&
		    has(err, "no destination listening there in 1 s"),
		    "migrate-out --timeout 1: gives up after a second, one "
		    "line (%.1f s)", now() - t0))
		tap_diag("  exit %d err '%s'", rc, err);
	sim_stop(&a);
}

/*
 * The CLI on a terminal (a pty for its stdout and stderr): everything it
 * wrote, into out. Its exit status.
 */
static int on_terminal(const char *const *args)
{
	const char *argv[20];
	size_t got = 0;
	int i = 0, n, m, st;
	pid_t pid;

	argv[i++] = cli_path;
	for (n = 0; args[n] && i < 19; n++)
		argv[i++] = args[n];
	argv[i] = NULL;
	fflush(stdout);
	pid = forkpty(&m, NULL, NULL, NULL);
	if (pid < 0)
		return -2;	/* no pseudo-terminal here */
	if (pid == 0) {
		execv(cli_path, (char *const *)argv);
		_exit(127);
	}
	for (;;) {
		struct pollfd pf = { .fd = m, .events = POLLIN };
		ssize_t r;

		/* -j prints nothing until the end: 3 million requests can
		 * take minutes in the rig's TCG guest */
		if (poll(&pf, 1, 300000) <= 0)
			break;
		r = read(m, out + got, sizeof(out) - 1 - got);
		if (r <= 0)	/* EIO once the child is gone */
			break;
		got += (size_t)r;
	}
	out[got] = '\0';
	close(m);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void progress(void)
{
	char uri[400], want[500];
	struct sim a;
	int rc;

	snprintf(uri, sizeof(uri), "unix:%s/tty-wait.sock", dir);
	tap_ok(sim_start(&a, "tty", net_args), "a simulator");
	rc = on_terminal((const char *const[]){ "traffic", a.name, "--count",
			 "3000000", NULL });
	if (rc == -2) {
		/* a failure to get a pty is not the CLI's: say so, loudly */
		printf("ok %d - on a terminal # SKIP no pseudo-terminal (%s)\n",
		       ++tap_n, strerror(errno));
		sim_stop(&a);
		return;
	}
	if (!tap_ok(rc == 0 && has(out, "\r") &&
		    has(out, "requests verified (Ctrl-C stops)") &&
		    has(out, "requests 3000000 completed 3000000"),
		    "on a terminal, traffic shows its progress (and the "
		    "result)"))
		tap_diag("  exit %d: %.300s", rc, out);
	rc = on_terminal((const char *const[]){ "-j", "traffic", a.name,
			 "--count", "3000000", NULL });
	tap_ok(rc == 0 && !has(out, "requests verified") && !has(out, "\r\033"),
	       "with -j, no progress even on a terminal");
	rc = on_terminal((const char *const[]){ "migrate-in", a.name,
			 "--from", uri, "--timeout", "1", NULL });
	snprintf(want, sizeof(want), "waiting up to 1 s for the source on %s "
		 "(--timeout", uri);
	tap_ok(rc == 1 && has(out, want) && has(out, "no source connected"),
	       "on a terminal, migrate-in says it waits for its source, and "
	       "how long");
	rc = CLI("traffic", a.name, "--count", "3000000");
	tap_ok(rc == 0 && !err[0], "on a pipe, no progress (stderr empty)");
	sim_stop(&a);
}

/* SIGINT after delay_s to a command started in the background. */
static int interrupt(const char *tag, double delay_s, const char *const *args)
{
	pid_t pid = start(cli_path, tag, args);

	usleep((useconds_t)(delay_s * 1e6));
	kill(pid, SIGINT);
	return finish(pid, tag, 30);
}

static void ctrl_c(void)
{
	struct sim a, b;
	char uri[400];
	double t0;
	int rc;

	if (!tap_ok(sim_start(&a, "int-a", net_args) &&
		    sim_start(&b, "int-b", net_args), "two simulators"))
		goto out;
	rc = interrupt("int1", 0.7, (const char *const[]){ "traffic", a.name,
		       "--count", "900000000", NULL });
	if (!tap_ok(rc == 130 && one_line(out) &&
		    has(out, "requests ") && has(out, " lost 0 ") &&
		    one_line(err) && has(err, "interrupted after"),
		    "Ctrl-C in traffic: exit 130, the summary of what was "
		    "done (nothing lost), one line saying so"))
		tap_diag("  exit %d out '%s' err '%s'", rc, out, err);
	rc = interrupt("int2", 0.7, (const char *const[]){ "-j", "traffic",
		       a.name, "--count", "900000000", NULL });
	json_run_ok("traffic (Ctrl-C)", rc);
	tap_ok(rc == 130 && has(out, "\"result\":\"interrupted\"") &&
	       has(out, "\"lost\":0,"),
	       "-j: \"result\":\"interrupted\", exit 130");
	rc = interrupt("int3", 1.0, (const char *const[]){ "-j", "migrate",
		       a.name, b.name, "--traffic", "--iterations", "100000",
		       "--count", "5000000", NULL });
	json_run_ok("migrate (Ctrl-C)", rc);
	if (!tap_ok(rc == 130 && has(out, "\"result\":\"interrupted\"") &&
		    !has(out, "\"migrations\":0,") &&
		    has(out, "\"lost\":0,") && has(out, "\"duplicated\":0,") &&
		    has(out, "\"corrupt\":0,"),
		    "Ctrl-C among migrations: stops between two, exit 130, the "
		    "migrations done and their traffic intact"))
		tap_diag("  exit %d out %s err %s", rc, out, err);
	rc = CLI("traffic", a.name, "--count", "1000");
	tap_is(rc, 0, "after Ctrl-C: the first device works");
	rc = CLI("traffic", b.name, "--count", "1000");
	tap_is(rc, 0, "after Ctrl-C: the second device works (nothing was "
	       "left half-migrated)");
	snprintf(uri, sizeof(uri), "unix:%s/wait.sock", dir);
	t0 = now();
	rc = interrupt("int4", 0.5, (const char *const[]){ "migrate-in",
		       b.name, "--from", uri, NULL });
	tap_ok(rc == 130 && now() - t0 < 5 && one_line(err) &&
	       has(err, "interrupted while waiting for the source"),
	       "Ctrl-C while migrate-in waits for its source: exit 130 at "
	       "once, one line");
	rc = interrupt("int5", 0.5, (const char *const[]){ "migrate-out",
		       a.name, "--to", uri, "--traffic", "--count", "20000",
		       NULL });
	tap_ok(rc == 130 && one_line(err) &&
	       has(err, "interrupted while waiting for the destination") &&
	       has(err, "the source is still running") &&
	       has(out, "requests "),
	       "Ctrl-C while migrate-out waits: exit 130, the source still "
	       "running, its traffic counted");
out:
	sim_stop(&a);
	sim_stop(&b);
}

/* vdpa-sim: never takes over a live socket; --ready-fd and --pidfile. */
static void sim_socket(void)
{
	char sock[400], name[410], pidfile[400], fdarg[16], want[500];
	char buf[64] = "";
	struct stat st1, st2;
	struct pollfd pf;
	struct sim a;
	pid_t pid;
	int rc, p[2], n, status;
	double t0;

	if (!tap_ok(sim_start(&a, "live", net_args), "a simulator"))
		return;
	stat(a.sock, &st1);
	t0 = now();
	rc = SIM("--type", "net", "--socket", a.sock);
	snprintf(want, sizeof(want), "vdpa-sim: %s: another simulator is "
		 "listening on it; not taking it over\n", a.sock);
	if (!tap_ok(rc == 1 && now() - t0 < 5 && !strcmp(err, want),
		    "a second vdpa-sim on a live socket: refused in one line, "
		    "exit 1"))
		tap_diag("  exit %d err '%s'", rc, err);
	stat(a.sock, &st2);
	rc = CLI("dev", "info", a.name);
	tap_ok(rc == 0 && st1.st_ino == st2.st_ino,
	       "the first simulator is still reachable on its own socket");
	tu_stop_sim(a.pid, true);	/* killed: its socket stays behind */
	a.pid = tu_spawn_sim(a.sock, net_args);
	rc = a.pid > 0 ? CLI("dev", "info", a.name) : -1;
	tap_ok(rc == 0, "a socket nobody listens on any more is taken over");
	sim_stop(&a);
	if (make_file(sock, sizeof(sock), "plain-file", 0)) {
		rc = SIM("--type", "net", "--socket", sock);
		tap_ok(rc == 1 && one_line(err) &&
		       has(err, "exists and is not a socket"),
		       "a file that is not a socket is never replaced");
	}

	/* --ready-fd and --pidfile */
	snprintf(sock, sizeof(sock), "%s/ready.sock", dir);
	snprintf(name, sizeof(name), "sim:%s", sock);
	snprintf(pidfile, sizeof(pidfile), "%s/sim.pid", dir);
	if (pipe(p) < 0) {
		tap_ok(0, "pipe");
		return;
	}
	snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
	pid = start(sim_path, "ready", (const char *const[]){ "--type", "net",
		    "--socket", sock, "--ready-fd", fdarg, "--pidfile",
		    pidfile, NULL });
	close(p[1]);
	pf.fd = p[0];
	pf.events = POLLIN;
	n = poll(&pf, 1, 5000) == 1 ?
	    (int)read(p[0], buf, sizeof(buf) - 1) : -1;
	buf[n > 0 ? n : 0] = '\0';
	close(p[0]);
	tap_ok(n == 6 && !strcmp(buf, "ready\n"), "--ready-fd: 'ready' and a "
	       "newline, then closed");
	rc = CLI("dev", "info", name);
	tap_is(rc, 0, "once ready, the socket answers at once");
	slurp(pidfile, buf, sizeof(buf));
	snprintf(want, sizeof(want), "%d\n", (int)pid);
	tap_ok(!strcmp(buf, want), "--pidfile: the simulator's pid");
	kill(pid, SIGTERM);
	status = finish(pid, "ready", 10);
	tap_ok(status == 0 && access(pidfile, F_OK) && access(sock, F_OK),
	       "SIGTERM: exit 0, the pidfile and the socket removed");

	/* a simulator that cannot start closes the fd without a word */
	if (pipe(p) < 0)
		return;
	snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
	snprintf(sock, sizeof(sock), "%s/plain-file", dir);
	pid = start(sim_path, "ready2", (const char *const[]){ "--type", "net",
		    "--socket", sock, "--ready-fd", fdarg, NULL });
	close(p[1]);
	pf.fd = p[0];
	n = poll(&pf, 1, 5000) == 1 ? (int)read(p[0], buf, sizeof(buf)) : -1;
	close(p[0]);
	status = finish(pid, "ready2", 10);
	tap_ok(n == 0 && status == 1, "--ready-fd of a simulator that cannot "
	       "start: closed without 'ready' (end of file), exit 1");
	rc = SIM("--type", "net", "--socket", sock, "--ready-fd", "987");
	tap_ok(rc == 2 && one_line(err) && has(err, "--ready-fd 987: not an "
						"open file descriptor"),
	       "--ready-fd of a closed fd: refused at startup, exit 2");
}

/*
 * What the migration's endpoints may touch: migrate-in never removes a
 * file or a live socket to listen, a failed save never destroys the
 * previous good one, a FIFO is not a saved state.
 */
static void endpoints(void)
{
	char file[512], uri[600], good[512], fifo[512], b[64] = "";
	struct sim a, b2;
	struct stat st;
	off_t size;
	int rc, fd;

	snprintf(file, sizeof(file), "%s/precious.txt", dir);
	fd = open(file, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	tap_ok(fd >= 0 && write(fd, "precious\n", 9) == 9, "a file");
	if (fd >= 0)
		close(fd);
	tap_ok(sim_start(&a, "epa", net_args) && sim_start(&b2, "epb",
							   net_args),
	       "two simulators");
	snprintf(uri, sizeof(uri), "unix:%s", file);
	rc = CLI("migrate-in", b2.name, "--from", uri, "--timeout", "1");
	slurp(file, b, sizeof(b));
	tap_ok(rc == 1 && !strcmp(b, "precious\n") && one_line(err) &&
	       has(err, "not a socket"),
	       "migrate-in --from unix:FILE refuses, the file is intact (%s)",
	       err);
	snprintf(uri, sizeof(uri), "unix:%s", a.name + 4);
	rc = CLI("migrate-in", b2.name, "--from", uri, "--timeout", "1");
	tap_ok(rc == 1 && one_line(err) && has(err, "listening on it"),
	       "migrate-in --from a live simulator's socket refuses (%s)",
	       err);
	rc = CLI("traffic", a.name, "--count", "1000");
	tap_is(rc, 0, "that simulator is still reachable");

	snprintf(good, sizeof(good), "%s/good.state", dir);
	snprintf(uri, sizeof(uri), "file:%s", good);
	rc = CLI("migrate-out", a.name, "--to", uri);
	size = stat(good, &st) == 0 ? st.st_size : -1;
	tap_ok(rc == 0 && size > 100, "a good save (%lld bytes)",
	       (long long)size);
	rc = CLI("--max-state", "10", "migrate-out", a.name, "--to", uri);
	tap_ok(rc == 1 && stat(good, &st) == 0 && st.st_size == size,
	       "a failed save leaves the previous one as it was");
	rc = CLI("state", "show", good);
	tap_is(rc, 0, "and it still decodes");

	snprintf(fifo, sizeof(fifo), "%s/state.fifo", dir);
	tap_ok(mkfifo(fifo, 0600) == 0, "a FIFO");
	snprintf(uri, sizeof(uri), "file:%s", fifo);
	rc = CLI("migrate-in", b2.name, "--from", uri, "--timeout", "1");
	tap_ok(rc == 1 && one_line(err) && has(err, "not a regular file"),
	       "migrate-in --from file:FIFO refuses at once (%s)", err);
	rc = CLI("migrate-in", b2.name, "--from", uri, "--count", "5");
	tap_ok(rc == 1 && one_line(err) && has(err, "is migrate-out's"),
	       "migrate-in refuses the source's traffic options (%s)", err);
	sim_stop(&a);
	sim_stop(&b2);
}

static void demo(void)
{
	int rc = CLI("demo");

	if (!tap_ok(rc == 0 && has(out, "demo ok") &&
		    !has(out, "reset drops") && !has(err, "reset drops") &&
		    !err[0],
		    "demo: ok, and no 'reset drops N unflushed sectors' (the "
		    "drivers flush; a migrated source's cache went with its "
		    "state)"))
		tap_diag("  exit %d out %s err %s", rc, out, err);
	rc = CLI("-j", "demo");
	json_run_ok("demo", rc);
	tap_ok(rc == 1, "-j demo: refused as an error object (it is a "
	       "narrated walk-through)");
}

/* ---- section 4: JSON ----------------------------------------------------- */

static void naming(void)
{
	const char *qp2[] = { "--type", "net", "--queue-pairs", "2", NULL };
	static const char *const old[] = {
		"\"class\"", "\"vq_count\"", "\"vq_max_size\"",
		"\"max_virtqueue_pairs\"", "\"max_vqp\"", "\"iova_first\"",
	};
	char file[400], uri[410];
	struct sim a;
	bool clean;
	size_t i;
	int rc;

	if (!tap_ok(sim_start(&a, "names", qp2), "a 2-pair simulator"))
		return;
	rc = CLI("-j", "dev", "info", a.name);
	json_run_ok("dev info", rc);
	tap_ok(rc == 0 && has(out, "\"type\":\"network\",\"device_id\":1,") &&
	       has(out, "\"max_vqs\":5,") && has(out, "\"max_vq_size\":256,") &&
	       has(out, "\"features\":[\"MTU\",") &&
	       has(out, "\"features_hex\":\"0x") &&
	       has(out, "\"backend_features\":[\"IOTLB_MSG_V2\"") &&
	       has(out, "\"backend_features_hex\":\"0x") &&
	       has(out, "\"max_vq_pairs\":2,") &&
	       has(out, "\"iova_range\":{\"first\":\"0x0\""),
	       "-j dev info: iproute2's names (type, max_vqs, max_vq_size, "
	       "max_vq_pairs), features by name with the value beside");
	rc = CLI("-j", "dev", "show", a.name);
	json_run_ok("dev show", rc);
	tap_ok(rc == 0 && has(out, "{\"dev\":{") &&
	       has(out, "\"type\":\"network\"") && has(out, "\"max_vqs\":5,") &&
	       has(out, "\"max_vq_size\":256"),
	       "-j dev show: the same names");
	snprintf(file, sizeof(file), "%s/names.state", dir);
	snprintf(uri, sizeof(uri), "file:%s", file);
	rc = CLI("migrate-out", a.name, "--to", uri, "--traffic", "--count",
		 "1000");
	tap_is(rc, 0, "a saved state");
	rc = CLI("-j", "state", "show", file);
	json_run_ok("state show", rc);
	tap_ok(rc == 0 && has(out, "\"type\":\"network\"") &&
	       has(out, "\"max_vqs\":5,") && has(out, "\"max_vq_pairs\":2,") &&
	       has(out, "\"features\":[\"MTU\",") &&
	       has(out, "\"negotiated_features\":[") &&
	       has(out, "\"negotiated_features_hex\":\"0x") &&
	       has(out, "\"status\":[\"ACKNOWLEDGE\",\"DRIVER\",\"DRIVER_OK\","
		   "\"FEATURES_OK\"],\"status_hex\":\"0xf\"") &&
	       has(out, "\"desc\":\"0x"),
	       "-j state show: the same names; negotiated features and "
	       "status by name, addresses as 0x strings");
	rc = CLI("-j", "state", "check", file, a.name);
	json_run_ok("state check", rc);
	tap_ok(rc == 0 && has(out, "{\"compatible\":true}"),
	       "-j state check: compatible");
	clean = true;
	for (i = 0; i < sizeof(old) / sizeof(old[0]); i++) {
		rc = CLI("-j", "dev", "info", a.name);
		clean = clean && !has(out, old[i]);
		rc = CLI("-j", "state", "show", file);
		clean = clean && !has(out, old[i]);
	}
	tap_ok(clean, "no old names left (class, vq_count, vq_max_size, "
	       "max_virtqueue_pairs, max_vqp, iova_first)");

	/* -p on every command */
	rc = CLI("-j", "-p", "dev", "info", a.name);
	json_run_ok("-p dev info", rc);
	tap_ok(count_lines(out) > 10 && has(out, "\"type\": \"network\""),
	       "-j -p dev info: pretty");
	rc = CLI("-j", "-p", "dev", "show", a.name);
	json_run_ok("-p dev show", rc);
	tap_ok(count_lines(out) > 3, "-j -p dev show: pretty");
	rc = CLI("-j", "-p", "state", "show", file);
	json_run_ok("-p state show", rc);
	tap_ok(count_lines(out) > 10 &&
	       has(out, "\"model\": \"vdpa-sim://net\""),
	       "-j -p state show: pretty (it was one line whatever -p said)");
	rc = CLI("-j", "-p", "state", "check", file, a.name);
	json_run_ok("-p state check", rc);
	tap_ok(count_lines(out) > 1, "-j -p state check: pretty");
	rc = CLI("-j", "-p", "traffic", a.name, "--count", "100");
	json_run_ok("-p traffic", rc);
	tap_ok(count_lines(out) > 5 && has(out, "\"result\": \"ok\""),
	       "-j -p traffic: pretty");
	rc = CLI("-j", "-p", "traffic", a.name, "--count", "0");
	json_run_ok("-p traffic (bad option)", rc);
	tap_ok(rc == 1 && count_lines(out) > 2 &&
	       has(out, "\"result\": \"failed\""),
	       "-j -p, an option refused: a pretty error object with "
	       "\"result\":\"failed\"");
	sim_stop(&a);
}

/* Names with control bytes, quotes and bytes >= 0x80: strict JSON, one line. */
static void escaping(void)
{
	static const char name[] = "sim:/nonexistent/\x01\x1b[31m\x7f\xff\xc3"
				   "\xa9\"\\x";
	int rc;

	rc = CLI("-j", "dev", "info", name);
	json_run_ok("dev info (hostile name)", rc);
	tap_ok(rc == 1 && has(out, "\\u0001") && has(out, "\\u001b") &&
	       has(out, "\\u007f") && has(out, "\\u00ff") &&
	       has(out, "\\u00c3\\u00a9") && has(out, "\\\"") &&
	       !strchr(out, 0x01) && !strchr(out, 0x7f) &&
	       !strchr(out, (char)0xff),
	       "-j: control characters, DEL and bytes >= 0x80 escaped "
	       "(\\u00XX), quotes and backslashes too");
	tap_ok(one_line(err) && has(err, "\\x01") && has(err, "\\x1b"),
	       "stderr: the error stays one line (control bytes shown as "
	       "\\xNN)");
	rc = CLI("-j", "dev", "show", name);
	json_run_ok("dev show (hostile name)", rc);
	tap_ok(!json_valid("{\"a\":\"\x01\"}") &&
	       !json_valid("{\"a\":\"\xff\"}") &&
	       !json_valid("{\"a\":1,}") && !json_valid("{\"a\":01}") &&
	       !json_valid("{\"a\":1}x") &&
	       json_valid("{\"a\":[1,-2.5e3,\"\\u00e9\xc3\xa9\",true,null]}"),
	       "the test's JSON validator is strict");
}

int main(void)
{
	snprintf(cli_path, sizeof(cli_path), "%s/vdpa-user", tu_build_dir());
	snprintf(sim_path, sizeof(sim_path), "%s/vdpa-sim", tu_build_dir());
	if (access(cli_path, X_OK) || access(sim_path, X_OK))
		tap_skip_all("vdpa-user or vdpa-sim not built");
	if (tu_mkdtemp(dir, sizeof(dir)) || strlen(dir) > 60)
		tap_skip_all("no temporary directory");
	signal(SIGPIPE, SIG_IGN);
	vdpa_set_log(NULL, NULL, 0);

	missing_devices();
	stale_socket();
	busy_and_same();
	option_ranges();
	blk_disks();
	source_refuses();
	timeouts();
	progress();
	ctrl_c();
	sim_socket();
	endpoints();
	demo();
	naming();
	escaping();
	tu_rmtree(dir);
	return tap_done();
}
