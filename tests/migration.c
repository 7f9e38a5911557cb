// SPDX-License-Identifier: MIT
/*
 * Migration end to end, with real processes: vdpa-sim devices and the
 * vdpa-user CLI as the front-end. Under traffic for net and blk, back and
 * forth 200 times, every fallback (no RESUME, no SUSPEND, no state
 * extension), early refusal on a configuration mismatch, a destination that
 * fails or dies after the source was suspended, migrate-out/in as two
 * processes, and bad state files.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vdpa-user/state.h>

#include "crc32c.h"
#include "sim.h"
#include "tap.h"
#include "testutil.h"

static char dir[256];
static char cli[PATH_MAX + 16];

/* Run the CLI; its stdout (up to len) in out, stderr in err. Exit status. */
static int run_cli(char *out, size_t len, char *err, size_t elen,
		   const char *const *args)
{
	const char *argv[32];
	int po[2], pe[2], st, i = 0, n;
	size_t got = 0, egot = 0;
	pid_t pid;

	argv[i++] = cli;
	for (n = 0; args[n] && i < 31; n++)
		argv[i++] = args[n];
	argv[i] = NULL;
	if (pipe(po) || pipe(pe))
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execv(cli, (char *const *)argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	for (;;) {
		struct pollfd p[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
		ssize_t r;

		if (poll(p, 2, 120000) <= 0)
			break;
		if (p[0].revents) {
			r = read(po[0], out + got, len - 1 - got);
			if (r > 0)
				got += (size_t)r;
			else
				p[0].fd = -1;
		}
		if (p[1].revents) {
			r = read(pe[0], err + egot, elen - 1 - egot);
			if (r > 0)
				egot += (size_t)r;
		}
		if (!p[0].revents && !p[1].revents)
			break;
		if (p[0].fd < 0 && !(p[1].revents & POLLIN))
			break;
	}
	out[got] = 0;
	err[egot] = 0;
	close(po[0]);
	close(pe[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static bool has(const char *s, const char *needle)
{
	return strstr(s, needle) != NULL;
}

/*
 * The integer value of "key": in the CLI's JSON (a whole number, ended by
 * ',' or '}'), in *ret; false when there is none. A prefix does not match:
 * "completed":20000 is not "completed":200000.
 */
static bool json_num(const char *json, const char *key, long long *ret)
{
	char k[64];
	const char *p;
	char *end;
	long long v;

	snprintf(k, sizeof(k), "\"%s\":", key);
	p = strstr(json, k);
	if (!p)
		return false;
	p += strlen(k);
	errno = 0;
	v = strtoll(p, &end, 10);
	if (end == p || errno || (*end != ',' && *end != '}'))
		return false;
	*ret = v;
	return true;
}

/* "key": is want in the CLI's JSON. */
static bool jis(const char *json, const char *key, long long want)
{
	long long v;

	return json_num(json, key, &v) && v == want;
}

struct sim {
	pid_t pid;
	char sock[PATH_MAX];
	char name[PATH_MAX + 8];
};

static int sim_start(struct sim *s, const char *tag, const char *const *args)
{
	snprintf(s->sock, sizeof(s->sock), "%s/%s.sock", dir, tag);
	snprintf(s->name, sizeof(s->name), "sim:%s", s->sock);
	s->pid = tu_spawn_sim(s->sock, args);
	return s->pid > 0 ? 0 : (int)s->pid;
}

static void sim_stop(struct sim *s)
{
	if (s->pid > 0)
		tu_stop_sim(s->pid, false);
	s->pid = 0;
}

/*
 * The simulators of a case (b may be NULL): true when all started, else a
 * failing check naming the one that did not, and none is left running.
 * A case whose simulators never started must not pass for a refusal.
 */
static bool sims_start(const char *what, struct sim *a, const char *ta,
		       const char *const *aa, struct sim *b, const char *tb,
		       const char *const *ab)
{
	int ra = sim_start(a, ta, aa), rb = b ? sim_start(b, tb, ab) : 0;

	if (!ra && !rb)
		return true;
	tap_ok(0, "%s: vdpa-sim %s does not start (%s)", what,
	       ra ? ta : tb, strerror(-(ra ? ra : rb)));
	sim_stop(a);
	if (b)
		sim_stop(b);
	return false;
}

static char out[1 << 16], err[1 << 16];

/*
 * The migrate-out/in stream's framing (docs/migration.md), as a peer
 * writes it: version 2 (little endian, CRC32C) or 1 (host order).
 */
#define STREAM_MAGIC	0x3147494d41504456ull
#define REC_END		0
#define REC_DESC	1
#define REC_MEMORY	3
#define REC_DEVICE_STATE 5
#define REC_VERDICT	6
#define REC_PLAN	7

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

/* The 16-byte stream header. */
static void wire_header(uint8_t *h, unsigned int version)
{
	uint64_t v1[2] = { STREAM_MAGIC, 1 };

	if (version == 1) {
		memcpy(h, v1, sizeof(v1));
		return;
	}
	put_le64(h, STREAM_MAGIC);
	put_le32(h + 8, 2);
	put_le32(h + 12, crc32c(0, h, 12));
}

/* A record's header for payload p; returns its size (16 or 24). */
static size_t wire_record(uint8_t *h, unsigned int version, uint32_t type,
			  const void *p, uint64_t len)
{
	uint32_t hcrc;

	if (version == 1) {
		struct { uint32_t type, res; uint64_t len; } r;

		r.type = type;
		r.res = 0;
		r.len = len;
		memcpy(h, &r, sizeof(r));
		return sizeof(r);
	}
	put_le32(h, type);
	put_le32(h + 4, 0);
	put_le64(h + 8, len);
	hcrc = crc32c(0, h, 16);
	put_le32(h + 16, hcrc);
	put_le32(h + 20, crc32c(hcrc, p, len));
	return 24;
}

/* Offset of the payload of a version-2 stream's record of type, or -1. */
static long find_record(const uint8_t *d, size_t size, uint32_t type,
			size_t *ret_len)
{
	size_t at = 16;

	while (at + 24 <= size) {
		uint32_t t = get_le32(d + at);
		uint64_t l = get_le64(d + at + 8);

		if (l > size - at - 24)
			return -1;
		if (t == type) {
			*ret_len = l;
			return (long)(at + 24);
		}
		if (t == REC_END)
			return -1;
		at += 24 + l;
	}
	return -1;
}

/* A version-2 stream re-framed as version 1 (v1: size bytes); its size. */
static size_t to_version1(const uint8_t *d, size_t size, uint8_t *v1)
{
	size_t at = 16, o = 16;

	wire_header(v1, 1);
	while (at + 24 <= size) {
		uint32_t t = get_le32(d + at);
		uint64_t l = get_le64(d + at + 8);

		if (l > size - at - 24)
			return 0;
		o += wire_record(v1 + o, 1, t, NULL, l);
		memcpy(v1 + o, d + at + 24, l);
		o += l;
		at += 24 + l;
		if (t == REC_END)
			return o;
	}
	return 0;
}

#define CLI(...) run_cli(out, sizeof(out), err, sizeof(err), \
			 (const char *const[]){ __VA_ARGS__, NULL })

static void net_migration(const char *via, const char *queues)
{
	const char *args[] = { "--type", "net", "--queue-pairs", "4", NULL };
	struct sim a, b;
	int rc;

	if (!sims_start("net migration", &a, "na", args, &b, "nb", args))
		return;
	rc = CLI("-j", "migrate", a.name, b.name, "--traffic", "--via", via,
		 "--queues", queues, "--count", "200000");
	tap_ok(rc == 0 && has(out, "\"result\":\"ok\"") &&
	       jis(out, "migrations", 1) && jis(out, "lost", 0) &&
	       jis(out, "duplicated", 0) && jis(out, "corrupt", 0) &&
	       jis(out, "completed", 200000),
	       "net, %s queue pair(s), via %s: migrated under traffic, every "
	       "packet exactly once", queues, via);
	if (rc)
		tap_diag("rc %d out %s err %s", rc, out, err);
	sim_stop(&a);
	sim_stop(&b);
}

static void back_and_forth(void)
{
	const char *args[] = { "--type", "net", NULL };
	struct sim a, b;
	int rc;

	if (!sims_start("back and forth", &a, "ra", args, &b, "rb", args))
		return;
	rc = CLI("-j", "migrate", a.name, b.name, "--traffic", "--iterations",
		 "200", "--count", "400000");
	tap_ok(rc == 0 && jis(out, "migrations", 200) && jis(out, "lost", 0) &&
	       jis(out, "duplicated", 0) && jis(out, "completed", 400000),
	       "200 back-to-back migrations A->B->A... with zero loss");
	if (rc)
		tap_diag("rc %d out %s err %s", rc, out, err);
	sim_stop(&a);
	sim_stop(&b);
}

/*
 * blk with a write-back cache over one shared file: written data that was
 * not flushed lives only in the device until it moves with its state.
 */
static void blk_writeback(bool with_state)
{
	char disk[512];
	const char *args[] = { "--type", "blk", "--cache", "writeback",
			       "--backing", disk,
			       with_state ? NULL : "--no-state", NULL };
	struct sim a, b;
	long long corrupt = -1, completed = -1;
	int rc, fd;
	bool ok;

	snprintf(disk, sizeof(disk), "%s/disk-%d.img", dir, with_state);
	fd = open(disk, O_CREAT | O_RDWR | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 64 << 20)) {
		tap_ok(0, "backing file");
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	if (!sims_start(with_state ? "blk write-back" :
			"blk write-back without the state extension", &a,
			with_state ? "ba" : "bna", args, &b,
			with_state ? "bb" : "bnb", args))
		return;
	rc = CLI("-j", "migrate", a.name, b.name, "--traffic", "--count",
		 "8000");
	if (with_state) {
		ok = tap_ok(rc == 0 && has(out, "\"result\":\"ok\"") &&
			    jis(out, "migrations", 1) &&
			    jis(out, "requests", 8000) &&
			    jis(out, "completed", 8000) &&
			    jis(out, "lost", 0) && jis(out, "corrupt", 0) &&
			    jis(out, "errors", 0),
			    "blk write-back on a shared file: device state "
			    "carries the unflushed data, every block reads "
			    "back intact");
	} else {
		/*
		 * The proof that the state matters: the migration itself
		 * went through (migrations 1), all 8000 requests ran and
		 * are accounted for, none lost or failed, and some read
		 * back stale (corrupt > 0): the run fails for that, and
		 * for nothing else.
		 */
		ok = json_num(out, "corrupt", &corrupt) &&
		     json_num(out, "completed", &completed);
		ok = tap_ok(ok && rc > 0 && rc < 128 &&
			    has(out, "\"result\":\"failed\"") &&
			    jis(out, "migrations", 1) &&
			    jis(out, "requests", 8000) && corrupt > 0 &&
			    completed + corrupt == 8000 &&
			    jis(out, "lost", 0) && jis(out, "duplicated", 0) &&
			    jis(out, "errors", 0),
			    "blk write-back without the state extension: the "
			    "migration ran, and %lld of the 8000 blocks "
			    "written before the switch read back stale (the "
			    "test can tell)", corrupt);
	}
	if (!ok)
		tap_diag("rc %d out %s err %s", rc, out, err);
	sim_stop(&a);
	sim_stop(&b);
}

/*
 * --via direct: the device state goes device to device, the library only
 * splicing one pipe into the other. Under traffic, with unflushed blk
 * data; a source without RESUME falls back to the pipe; a destination
 * dying mid-load and a state above the cap leave the source running.
 */
static void direct(void)
{
	char disk[512];
	const char *blk[] = { "--type", "blk", "--cache", "writeback",
			      "--backing", disk, NULL };
	const char *net[] = { "--type", "net", NULL };
	const char *nores[] = { "--type", "net", "--no-resume", NULL };
	const char *dies[] = { "--type", "net", "--crash-during", "state-load",
			       NULL };
	struct sim a, b;
	int rc, fd;

	snprintf(disk, sizeof(disk), "%s/disk-direct.img", dir);
	fd = open(disk, O_CREAT | O_RDWR | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 64 << 20)) {
		tap_ok(0, "direct: backing file");
		return;
	}
	close(fd);
	if (sims_start("direct, blk", &a, "dba", blk, &b, "dbb", blk)) {
		rc = CLI("-j", "migrate", a.name, b.name, "--traffic",
			 "--count", "8000", "--iterations", "3", "--via",
			 "direct");
		if (!tap_ok(rc == 0 && has(out, "\"direct\":true") &&
			    jis(out, "migrations", 3) &&
			    jis(out, "completed", 8000) &&
			    jis(out, "lost", 0) && jis(out, "corrupt", 0) &&
			    jis(out, "errors", 0),
			    "direct: blk write-back, 3 migrations device to "
			    "device, every block reads back intact"))
			tap_diag("rc %d out %s err %s", rc, out, err);
		sim_stop(&a);
		sim_stop(&b);
	}

	/* the blob's own part fits the cap, the cache does not */
	if (sims_start("direct, --max-state", &a, "dca", blk, &b, "dcb",
		       blk)) {
		rc = CLI("-j", "--max-state", "65536", "migrate", a.name,
			 b.name, "--traffic", "--count", "8000", "--via",
			 "direct");
		if (!tap_ok(rc > 0 && rc < 128 &&
			    has(out, "\"source_resumed\":true") &&
			    has(out, "File too large") && jis(out, "lost", 0) &&
			    jis(out, "corrupt", 0) &&
			    jis(out, "completed", 8000),
			    "direct: a device state above --max-state is "
			    "refused while it flows, the source resumes, its "
			    "traffic completes intact"))
			tap_diag("rc %d out %s err %s", rc, out, err);
		sim_stop(&a);
		sim_stop(&b);
	}

	if (sims_start("direct, no RESUME", &a, "dra", nores, &b, "drb",
		       net)) {
		rc = CLI("-j", "migrate", a.name, b.name, "--traffic",
			 "--count", "40000", "--via", "direct");
		if (!tap_ok(rc == 0 && has(out, "\"direct\":false") &&
			    jis(out, "migrations", 1) &&
			    jis(out, "completed", 40000) &&
			    jis(out, "lost", 0),
			    "direct: a source without RESUME falls back to the "
			    "pipe (it could not reload a state the library "
			    "never held)"))
			tap_diag("rc %d out %s err %s", rc, out, err);
		sim_stop(&a);
		sim_stop(&b);
	}

	if (!sims_start("direct, destination dies", &a, "dka", net, &b,
			"dkb", dies))
		return;
	rc = CLI("-j", "migrate", a.name, b.name, "--traffic", "--count",
		 "60000", "--via", "direct");
	if (!tap_ok(rc > 0 && rc < 128 &&
		    has(out, "\"source_resumed\":true") &&
		    jis(out, "lost", 0) && jis(out, "duplicated", 0) &&
		    jis(out, "completed", 60000),
		    "direct: destination killed mid-load, source resumed, all "
		    "of its traffic completed exactly once"))
		tap_diag("rc %d out %s err %s", rc, out, err);
	rc = CLI("traffic", a.name, "--count", "1000");
	tap_is(rc, 0, "direct: the source still works afterwards");
	sim_stop(&a);
	sim_stop(&b);
}

static void fallbacks(void)
{
	const char *nosusp[] = { "--type", "net", "--no-suspend", NULL };
	const char *nores[] = { "--type", "net", "--no-resume", NULL };
	const char *nostate[] = { "--type", "net", "--no-state", NULL };
	const char *plain[] = { "--type", "net", NULL };
	const char *mtu[] = { "--type", "net", "--mtu", "9000", NULL };
	struct sim a, b;
	int rc;

	if (sims_start("no SUSPEND", &a, "fa", nosusp, &b, "fb", plain)) {
		rc = CLI("-j", "migrate", a.name, b.name, "--traffic",
			 "--count", "50000");
		if (!tap_ok(rc > 0 && rc < 128 &&
			    has(out, "\"result\":\"failed\"") &&
			    has(out, "SUSPEND") &&
			    has(out, "refusing before anything stops") &&
			    jis(out, "lost", 0) && jis(out, "completed", 50000),
			    "no SUSPEND: refused up front, the source kept all "
			    "its traffic"))
			tap_diag("rc %d out %s err %s", rc, out, err);
		sim_stop(&a);
		sim_stop(&b);
	}

	if (sims_start("mtu mismatch", &a, "ma", plain, &b, "mb", mtu)) {
		rc = CLI("migrate", a.name, b.name);
		tap_ok(rc > 0 && rc < 128 &&
		       has(err, "mtu: source 1500, destination 9000"),
		       "configuration mismatch named: mtu: source 1500, "
		       "destination 9000");
		rc = CLI("traffic", a.name, "--count", "1000");
		tap_is(rc, 0, "source still works after the refused migration");
		sim_stop(&a);
		sim_stop(&b);
	}

	if (sims_start("no state extension", &a, "sa", nostate, &b, "sb",
		       nostate)) {
		rc = CLI("-j", "migrate", a.name, b.name, "--traffic",
			 "--count", "100000", "--iterations", "3");
		if (!tap_ok(rc == 0 && jis(out, "migrations", 3) &&
			    jis(out, "completed", 100000) &&
			    jis(out, "lost", 0) && jis(out, "duplicated", 0),
			    "no state extension: net migrates with what the "
			    "ABI exposes"))
			tap_diag("rc %d out %s err %s", rc, out, err);
		sim_stop(&a);
		sim_stop(&b);
	}

	if (!sims_start("no RESUME", &a, "xa", nores, &b, "xb", nores))
		return;
	rc = CLI("-j", "migrate", a.name, b.name, "--traffic", "--count",
		 "100000", "--iterations", "4");
	if (!tap_ok(rc == 0 && jis(out, "migrations", 4) &&
		    jis(out, "completed", 100000) && jis(out, "lost", 0) &&
		    jis(out, "duplicated", 0),
		    "no RESUME (Linux 6.1 shape): migrations work"))
		tap_diag("rc %d out %s err %s", rc, out, err);
	sim_stop(&a);
	sim_stop(&b);
}

/*
 * A fake destination front-end: describes a real device, takes the
 * stream, then either answers a failure or dies. The source must resume.
 */
/* Listening socket made before the fake forks, so the CLI cannot race it. */
static int fake_listen(const char *sock_path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int l;

	if (strlen(sock_path) >= sizeof(sa.sun_path))
		return -1;
	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -1;
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
	unlink(sock_path);
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 1)) {
		close(l);
		return -1;
	}
	return l;
}

/*
 * It answers in framing version 1 or 2 (1: an older destination) and
 * exits 3 when the source did not write version 2.
 */
/* How the fake destination ends: a refusal, dying, or saying nothing. */
enum { FAKE_REFUSES, FAKE_DIES, FAKE_SILENT };

static void fake_destination(int l, const void *desc, size_t dlen, int die,
			     unsigned int version)
{
	uint8_t h[24], buf[65536];
	size_t hl;
	int c;

	alarm(60);	/* never outlive a CLI that did not come */
	c = accept(l, NULL, NULL);
	if (c < 0)
		_exit(2);
	if (recv(c, h, 16, MSG_WAITALL) != 16)
		_exit(2);
	if (get_le64(h) != STREAM_MAGIC || get_le32(h + 8) != 2)
		_exit(3);
	wire_header(h, version);
	if (write(c, h, 16) < 0)
		_exit(2);
	hl = wire_record(h, version, REC_DESC, desc, dlen);
	if (write(c, h, hl) < 0 || write(c, desc, dlen) < 0)
		_exit(2);
	/* swallow the source's records until END; answer its plan */
	for (;;) {
		uint64_t left;
		uint32_t type;

		if (recv(c, h, 24, MSG_WAITALL) != 24)
			_exit(2);
		type = get_le32(h);
		if (type == REC_END)
			break;
		for (left = get_le64(h + 8); left;) {
			ssize_t n = read(c, buf, left < sizeof(buf) ?
					 left : sizeof(buf));
			if (n <= 0)
				_exit(2);
			left -= (uint64_t)n;
		}
		if (type == REC_PLAN) {
			/* prepared: the library's verdict, success */
			put_le32(buf, 0x31445256u);
			put_le32(buf + 4, 0);
			hl = wire_record(h, version, REC_VERDICT, buf, 8);
			if (write(c, h, hl) < 0 || write(c, buf, 8) < 0)
				_exit(2);
		}
	}
	if (die == FAKE_SILENT) {
		/* all of the state in, no verdict out: the outcome unknown */
		sleep(4);
		_exit(0);
	}
	if (!die) {
		/* the library's verdict: "VRD1", -EIO, the reason */
		put_le32(buf, 0x31445256u);
		put_le32(buf + 4, (uint32_t)-EIO);
		memcpy(buf + 8, "injected", 8);
		hl = wire_record(h, version, REC_VERDICT, buf, 16);
		if (write(c, h, hl) < 0 || write(c, buf, 16) < 0)
			_exit(2);
	}
	_exit(0);
}

static void destination_failure(int die, const char *const *sim_args,
				const char *what, unsigned int version)
{
	struct vsim_opts o;
	struct vsim_thread *t;
	struct vdpa_dev *dev;
	struct vdpa_state *desc;
	char path[512];
	char uri[600];
	void *blob;
	size_t len;
	struct sim a;
	pid_t fake;
	int fd, rc, st, l;

	/* the description a same-model destination would send */
	vsim_opts_init(&o, VSIM_TYPE_NET);
	if (vsim_thread_start(&o, &fd, &t)) {
		tap_ok(0, "%s: thread sim for the description", what);
		return;
	}
	desc = NULL;
	blob = NULL;
	rc = vdpa_dev_open_sim_fd(fd, "d", &dev);
	if (!rc) {
		rc = vdpa_state_describe(dev, &desc);
		vdpa_dev_close(dev);
	}
	if (!rc)
		rc = vdpa_state_encode(desc, &blob, &len);
	vdpa_state_free(desc);
	vsim_thread_stop(t);
	if (!tap_ok(rc == 0 && blob && len > 0, "%s: the description a "
		    "same-model destination sends (%zu bytes)", what,
		    rc ? 0 : len)) {
		free(blob);
		return;
	}

	snprintf(path, sizeof(path), "%s/fake-%d.sock", dir, die);
	snprintf(uri, sizeof(uri), "unix:%s", path);
	l = fake_listen(path);
	if (!tap_ok(l >= 0, "%s: fake destination listens", what)) {
		free(blob);
		return;
	}
	if (!sims_start(what, &a, die ? "da" : "ea", sim_args, NULL, NULL,
			NULL)) {
		close(l);
		free(blob);
		return;
	}
	fake = fork();
	if (fake == 0)
		fake_destination(l, blob, len, die, version);
	close(l);
	rc = CLI("-j", "migrate-out", a.name, "--to", uri, "--traffic",
		 "--count", "60000", "--timeout",
		 die == FAKE_SILENT ? "1" : "30");
	kill(fake, SIGKILL);	/* done by now, unless the CLI never came */
	waitpid(fake, &st, 0);
	if (die == FAKE_SILENT) {
		/* it may be running there: resuming here would make two */
		tap_ok(rc > 0 && rc < 128 && has(out, "\"result\":\"failed\"") &&
		       has(out, "the outcome is unknown") &&
		       has(out, "left suspended") &&
		       !jis(out, "completed", 60000),
		       "%s: the source does not resume (never two running)",
		       what);
		if (!has(out, "the outcome is unknown"))
			tap_diag("rc %d out %s err %s", rc, out, err);
		rc = CLI("traffic", a.name, "--count", "1000");
		tap_is(rc, 0, "%s: the device works for a new driver once "
		       "the migrate-out process has let go of it", what);
		sim_stop(&a);
		free(blob);
		return;
	}
	tap_ok(rc > 0 && rc < 128 && has(out, "\"result\":\"failed\"") &&
	       has(out, die ? "destination went away" : "injected") &&
	       jis(out, "lost", 0) && jis(out, "duplicated", 0) &&
	       jis(out, "completed", 60000),
	       "%s: source resumed, all of its traffic completed", what);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
	       has(err, "is a version-1 stream without integrity checks") ==
	       (version == 1),
	       "%s: the source wrote version 2 and read the destination's "
	       "version %u%s", what, version, version == 1 ?
	       ", with a warning" : "");
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		tap_diag("fake destination: status 0x%x; err %s", st, err);
	if (!jis(out, "lost", 0) || !jis(out, "completed", 60000))
		tap_diag("out %s err %s", out, err);
	rc = CLI("traffic", a.name, "--count", "1000");
	tap_is(rc, 0, "%s: source device still works afterwards", what);
	sim_stop(&a);
	free(blob);
}

/*
 * Real simulator processes dying half-way through the state transfer
 * (vdpa-sim --crash-during): the CLI must not crash or hang, must say what
 * happened in one line, and the surviving side must keep working.
 */
static void sim_crashes(void)
{
	const char *dies_loading[] = { "--type", "net", "--crash-during",
				       "state-load", NULL };
	const char *dies_saving[] = { "--type", "net", "--crash-during",
				      "state-save", NULL };
	const char *plain[] = { "--type", "net", NULL };
	struct sim a, b;
	int rc;

	if (sims_start("destination dies mid-load", &a, "ka", plain, &b, "kb",
		       dies_loading)) {
		rc = CLI("-j", "migrate", a.name, b.name, "--traffic",
			 "--count", "60000");
		tap_ok(rc > 0 && rc < 128 &&
		       has(out, "\"result\":\"failed\"") &&
		       has(out, "went away") &&
		       has(out, "\"source_resumed\":true") &&
		       jis(out, "lost", 0) && jis(out, "duplicated", 0) &&
		       jis(out, "completed", 60000),
		       "destination simulator killed mid-load: source resumed, "
		       "all of its traffic completed exactly once");
		if (!jis(out, "completed", 60000))
			tap_diag("rc %d out %s err %s", rc, out, err);
		rc = CLI("traffic", a.name, "--count", "1000");
		tap_is(rc, 0, "destination killed mid-load: source still "
		       "works");
		sim_stop(&a);
		sim_stop(&b);
	}

	if (!sims_start("source dies mid-save", &a, "kc", dies_saving, &b,
			"kd", plain))
		return;
	rc = CLI("-j", "migrate", a.name, b.name, "--traffic", "--count",
		 "60000");
	tap_ok(rc > 0 && rc < 128 && has(out, "\"result\":\"failed\"") &&
	       has(out, "saving ") && has(out, "went away") &&
	       jis(out, "duplicated", 0),
	       "source simulator killed mid-save: the CLI fails cleanly and "
	       "says so");
	if (rc <= 0 || rc >= 128)
		tap_diag("rc %d out %s err %s", rc, out, err);
	rc = CLI("traffic", b.name, "--count", "1000");
	tap_is(rc, 0, "source killed mid-save: the destination was left "
	       "usable");
	sim_stop(&a);
	sim_stop(&b);
}

/* migrate-out and migrate-in as two processes over a unix socket. */
static void unix_stream(void)
{
	const char *args[] = { "--type", "net", NULL };
	static char o2[1 << 12], e2[1 << 12];
	char uri[600];
	struct sim a, b;
	pid_t in;
	int rc, st;

	snprintf(uri, sizeof(uri), "unix:%s/xp.sock", dir);
	if (!sims_start("migrate-out | migrate-in", &a, "ua", args, &b, "ub",
			args))
		return;
	in = fork();
	if (in == 0) {
		/* 99: migrate-in succeeded but its traffic did not finish */
		rc = run_cli(o2, sizeof(o2), e2, sizeof(e2),
			     (const char *const[]){ "-j", "migrate-in", b.name,
						    "--from", uri, NULL });
		_exit(rc ? rc : jis(o2, "completed", 20000) &&
		      jis(o2, "lost", 0) && jis(o2, "duplicated", 0) &&
		      jis(o2, "corrupt", 0) ? 0 : 99);
	}
	/* migrate-out retries the connection until migrate-in listens */
	rc = CLI("-j", "migrate-out", a.name, "--to", uri, "--traffic",
		 "--count", "20000");
	waitpid(in, &st, 0);
	tap_ok(rc == 0 && has(out, "\"result\":\"ok\"") && WIFEXITED(st) &&
	       WEXITSTATUS(st) == 0 && !has(err, "version-1"),
	       "migrate-out | migrate-in over unix: description, records and "
	       "verdict in framing version 2, the traffic finishes on the "
	       "destination");
	if (rc || !WIFEXITED(st) || WEXITSTATUS(st))
		tap_diag("rc %d out %s err %s; migrate-in status 0x%x", rc, out,
			 err, st);
	sim_stop(&a);
	sim_stop(&b);
}

/* Write len bytes of data to path; 0 or -1. */
static int write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	int r;

	if (!f)
		return -1;
	r = fwrite(data, 1, len, f) == len ? 0 : -1;
	return fclose(f) || r ? -1 : 0;
}

static void bad_files(void)
{
	const char *args[] = { "--type", "net", NULL };
	char good[512], bad[512], uri[600], warn[600];
	struct sim a, b;
	uint8_t *data, *work;
	size_t mlen = 0, dlen = 0, v1len;
	long size, mem, dev;
	FILE *f;
	int rc, i;
	static const struct {
		const char *name;
		int kind;
		const char *says;
	} cases[] = {
		{ "empty file", 0, "empty or truncated" },
		{ "truncated to half", 1, "(truncated)" },
		{ "truncated by one byte", 2, "(truncated)" },
		{ "bit flipped in the state", 3,
		  "record 'device state' fails its CRC32C check" },
		{ "wrong magic", 4, "not a vdpa-user migration stream" },
	};

	snprintf(good, sizeof(good), "%s/good.state", dir);
	snprintf(bad, sizeof(bad), "%s/bad.state", dir);
	if (!sims_start("state files", &a, "fa1", args, &b, "fb1", args))
		return;
	snprintf(uri, sizeof(uri), "file:%s", good);
	rc = CLI("-j", "migrate-out", a.name, "--to", uri, "--traffic",
		 "--count", "20000");
	tap_is(rc, 0, "save to file (migrate-out --to file:)");
	rc = CLI("state", "show", good);
	tap_ok(rc == 0 && has(out, "model vdpa-sim://net") &&
	       has(out, "queue 1:"), "state show decodes the saved file");
	snprintf(uri, sizeof(uri), "file:%s", good);
	rc = CLI("--max-state", "64", "migrate-in", b.name, "--from", uri);
	tap_ok(rc > 0 && rc < 128 && has(err, "larger than the 64-byte cap") &&
	       strchr(err, '\n') == strrchr(err, '\n'),
	       "migrate-in --max-state 64: refused before allocating, one line");
	tap_diag("  %s", err);
	rc = CLI("--max-state", "64", "state", "show", good);
	tap_ok(rc > 0 && rc < 128 && has(err, "64-byte cap"),
	       "state show --max-state 64: refused, names the cap");
	rc = CLI("traffic", b.name, "--count", "1000");
	tap_is(rc, 0, "destination usable after the refused oversize state");

	/* the saved file, read whole; every case starts from a clean copy */
	data = work = NULL;
	size = -1;
	f = fopen(good, "rb");
	if (f && fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 0 &&
	    fseek(f, 0, SEEK_SET) == 0) {
		data = malloc((size_t)size);
		work = malloc((size_t)size);
		if (!data || !work ||
		    fread(data, 1, (size_t)size, f) != (size_t)size)
			size = -1;
	}
	if (f)
		fclose(f);
	dev = size > 0 ? find_record(data, (size_t)size, REC_DEVICE_STATE,
				     &dlen) : -1;
	mem = size > 0 ? find_record(data, (size_t)size, REC_MEMORY, &mlen) :
			 -1;
	if (!tap_ok(size > 0 && dev > 0 && dlen > 0 && mem > 0 && mlen > 24,
		    "the saved file reads back whole (%ld bytes) with a device "
		    "state record (%zu bytes) and a driver-memory record (%zu "
		    "bytes)", size, dlen, mlen)) {
		free(data);
		free(work);
		sim_stop(&a);
		sim_stop(&b);
		return;
	}
	for (i = 0; i < 5; i++) {
		size_t n = cases[i].kind == 0 ? 0 : cases[i].kind == 1 ?
			   (size_t)size / 2 : cases[i].kind == 2 ?
			   (size_t)size - 1 : (size_t)size;

		memcpy(work, data, (size_t)size);
		if (cases[i].kind == 3)
			work[dev + (long)dlen / 2] ^= 0x10;
		if (cases[i].kind == 4)
			work[0] ^= 0xff;
		if (!tap_ok(write_file(bad, work, n) == 0, "bad file (%s) "
			    "written", cases[i].name))
			continue;
		snprintf(uri, sizeof(uri), "file:%s", bad);
		rc = CLI("migrate-in", b.name, "--from", uri);
		tap_ok(rc > 0 && rc < 128 && has(err, "migrate-in: ") &&
		       has(err, cases[i].says) &&
		       strchr(err, '\n') == strrchr(err, '\n'),
		       "migrate-in of a bad file (%s): one-line error saying "
		       "'%s', non-zero exit", cases[i].name, cases[i].says);
		tap_diag("  %s", err);
		rc = CLI("traffic", b.name, "--count", "1000");
		tap_is(rc, 0, "destination usable after the bad file (%s)",
		       cases[i].name);
	}

	/* one bit in the driver memory, which has no check of its own */
	memcpy(work, data, (size_t)size);
	work[mem + (long)mlen / 2] ^= 0x04;
	tap_ok(write_file(bad, work, (size_t)size) == 0, "a file with one bit "
	       "flipped in driver memory written");
	snprintf(uri, sizeof(uri), "file:%s", bad);
	rc = CLI("migrate-in", b.name, "--from", uri);
	tap_ok(rc > 0 && rc < 128 &&
	       has(err, "migrate-in: stream: record 'driver memory' "
		   "fails its CRC32C check (corrupt)") &&
	       strchr(err, '\n') == strrchr(err, '\n'),
	       "migrate-in of a file with one bit flipped in driver memory: "
	       "refused in one line naming the record");
	tap_diag("  %s", err);
	rc = CLI("state", "show", bad);
	tap_ok(rc > 0 && rc < 128 &&
	       has(err, "record 'driver memory' fails its CRC32C"),
	       "state show of that file: refused, names the record");
	rc = CLI("traffic", b.name, "--count", "1000");
	tap_is(rc, 0, "destination usable after the flipped driver memory");

	/* the previous release's framing still loads, with a warning */
	v1len = to_version1(data, (size_t)size, work);
	tap_ok(v1len > 0 && write_file(bad, work, v1len) == 0,
	       "the file re-framed as version 1 (%zu bytes) written", v1len);
	snprintf(warn, sizeof(warn), "warning: %s is a version-1 stream "
		 "without integrity checks", bad);
	rc = CLI("-j", "migrate-in", b.name, "--from", uri);
	tap_ok(v1len && rc == 0 && jis(out, "lost", 0) &&
	       jis(out, "completed", 20000) && has(err, warn) &&
	       strchr(err, '\n') == strrchr(err, '\n'),
	       "migrate-in of a version-1 file: restored, one warning line");
	if (rc || !has(err, warn))
		tap_diag("rc %d out %s err %s", rc, out, err);
	rc = CLI("state", "show", bad);
	tap_ok(rc == 0 && has(out, "model vdpa-sim://net") && has(err, warn),
	       "state show of a version-1 file: decoded, with the warning");
	snprintf(uri, sizeof(uri), "file:%s", good);
	rc = CLI("-j", "migrate-in", b.name, "--from", uri);
	tap_ok(rc == 0 && jis(out, "lost", 0) && jis(out, "completed", 20000),
	       "restore-later from the good file: the traffic finishes on "
	       "the destination, nothing lost");
	free(data);
	free(work);
	sim_stop(&a);
	sim_stop(&b);
}

/*
 * Inside the kernel rig: Linux 6.1 vhost-vdpa + vdpa_sim (SUSPEND, no
 * RESUME, no state extension). net between two vdpasim_net devices under
 * traffic; blk saved to a file and reloaded in place.
 */
/* After a failure on a kernel device: its request trace, for the log. */
static void trace_tail(const char *dev)
{
	const char *p, *start;
	int lines = 0;

	CLI("-vv", "traffic", dev, "--count", "10");
	for (p = err + strlen(err); p > err && lines < 25; p--)
		if (*p == '\n')
			lines++;
	start = p;
	tap_diag("request trace of 'vdpa-user -vv traffic %s' (tail):\n%s",
		 dev, start);
}

static void kernel_devices(void)
{
	const char *net = getenv("VDPA_TEST_NET_DEV");
	const char *net2 = getenv("VDPA_TEST_NET_DEV2");
	const char *blk = getenv("VDPA_TEST_BLK_DEV");
	char uri[600];
	int rc;

	if (net && *net && net2 && *net2) {
		tap_diag("kernel devices: %s -> %s", net, net2);
		rc = CLI("-j", "migrate", net, net2, "--traffic", "--count",
			 "20000", "--iterations", "4");
		tap_ok(rc == 0 && jis(out, "lost", 0) &&
		       jis(out, "duplicated", 0) && jis(out, "migrations", 4) &&
		       jis(out, "completed", 20000) &&
		       has(out, "\"result\":\"ok\""),
		       "kernel vdpa_sim net: migrated back and forth under "
		       "traffic, nothing lost");
		tap_diag("%s", out);
		if (rc) {
			tap_diag("rc %d out %s err %s", rc, out, err);
			trace_tail(net);
		}
	}
	if (blk && *blk) {
		snprintf(uri, sizeof(uri), "file:%s/kblk.state", dir);
		rc = CLI("-j", "migrate-out", blk, "--to", uri, "--traffic",
			 "--count", "2000");
		tap_ok(rc == 0, "kernel vdpa_sim blk: saved to a file under "
		       "traffic");
		if (rc)
			tap_diag("rc %d out %s err %s", rc, out, err);
		rc = CLI("-j", "migrate-in", blk, "--from", uri);
		tap_ok(rc == 0 && jis(out, "lost", 0) &&
		       jis(out, "corrupt", 0) && jis(out, "completed", 2000),
		       "kernel vdpa_sim blk: reloaded in place, the traffic "
		       "finishes intact");
		if (rc)
			tap_diag("rc %d out %s err %s", rc, out, err);
	}
}

int main(void)
{
	const char *nores[] = { "--type", "net", "--no-resume", NULL };
	const char *plain[] = { "--type", "net", NULL };

	snprintf(cli, sizeof(cli), "%s/vdpa-user", tu_build_dir());
	if (access(cli, X_OK))
		tap_skip_all("build/vdpa-user not built");
	if (tu_mkdtemp(dir, sizeof(dir)) || strlen(dir) > 60)
		tap_skip_all("no temporary directory");
	signal(SIGPIPE, SIG_IGN);

	net_migration("pipe", "1");
	net_migration("socket", "4");
	net_migration("file", "2");
	back_and_forth();
	blk_writeback(true);
	blk_writeback(false);
	direct();
	fallbacks();
	destination_failure(FAKE_REFUSES, plain,
			    "destination refuses after suspend",
			    2);
	destination_failure(FAKE_DIES, plain, "destination dies mid-load", 2);
	destination_failure(FAKE_SILENT, plain, "destination silent after the "
			    "whole state (--timeout 1)", 2);
	destination_failure(FAKE_REFUSES, nores, "older destination refuses, source "
			    "has no RESUME (reset + reload)", 1);
	unix_stream();
	sim_crashes();
	bad_files();
	kernel_devices();
	tu_rmtree(dir);
	return tap_done();
}
