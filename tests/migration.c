// SPDX-License-Identifier: MIT
/*
 * Migration end to end, with real processes: vdpa-sim devices and the
 * vdpa-user CLI as the front-end. Under traffic for net and blk, back and
 * forth 200 times, every fallback (no RESUME, no SUSPEND, no state
 * extension), early refusal on a configuration mismatch, a destination that
 * fails or dies after the source was suspended, and bad state files.
 */
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

static char out[1 << 16], err[1 << 16];

#define CLI(...) run_cli(out, sizeof(out), err, sizeof(err), \
			 (const char *const[]){ __VA_ARGS__, NULL })

static void net_migration(const char *via, const char *queues)
{
	const char *args[] = { "--type", "net", "--queue-pairs", "4", NULL };
	struct sim a, b;
	int rc;

	if (sim_start(&a, "na", args) || sim_start(&b, "nb", args)) {
		tap_ok(0, "start simulators");
		return;
	}
	rc = CLI("-j", "migrate", a.name, b.name, "--traffic", "--via", via,
		 "--queues", queues, "--count", "200000");
	tap_ok(rc == 0 && has(out, "\"result\":\"ok\"") &&
	       has(out, "\"lost\":0,") && has(out, "\"duplicated\":0,") &&
	       has(out, "\"corrupt\":0,") && has(out, "\"completed\":200000"),
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

	sim_start(&a, "ra", args);
	sim_start(&b, "rb", args);
	rc = CLI("-j", "migrate", a.name, b.name, "--traffic", "--iterations",
		 "200", "--count", "400000");
	tap_ok(rc == 0 && has(out, "\"migrations\":200,") &&
	       has(out, "\"lost\":0,") && has(out, "\"duplicated\":0,"),
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
	int rc, fd;

	snprintf(disk, sizeof(disk), "%s/disk-%d.img", dir, with_state);
	fd = open(disk, O_CREAT | O_RDWR | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 64 << 20)) {
		tap_ok(0, "backing file");
		return;
	}
	close(fd);
	sim_start(&a, with_state ? "ba" : "bna", args);
	sim_start(&b, with_state ? "bb" : "bnb", args);
	rc = CLI("-j", "migrate", a.name, b.name, "--traffic", "--count",
		 "8000");
	if (with_state) {
		tap_ok(rc == 0 && has(out, "\"lost\":0,") &&
		       has(out, "\"corrupt\":0,") && has(out, "\"errors\":0,"),
		       "blk write-back on a shared file: device state carries "
		       "the unflushed data, every block reads back intact");
	} else {
		/* the proof that the state matters: without it data is lost */
		tap_ok(rc != 0 && !has(out, "\"corrupt\":0,"),
		       "blk write-back without the state extension: blocks "
		       "written before the switch read back stale (the test "
		       "can tell)");
	}
	if (with_state && rc)
		tap_diag("rc %d out %s err %s", rc, out, err);
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

	sim_start(&a, "fa", nosusp);
	sim_start(&b, "fb", plain);
	rc = CLI("-j", "migrate", a.name, b.name, "--traffic", "--count",
		 "50000");
	tap_ok(rc != 0 && has(out, "\"result\":\"failed\"") &&
	       has(out, "SUSPEND") && has(out, "refusing before anything stops")
	       && has(out, "\"lost\":0,") && has(out, "\"completed\":50000"),
	       "no SUSPEND: refused up front, the source kept all its traffic");
	sim_stop(&a);
	sim_stop(&b);

	sim_start(&a, "ma", plain);
	sim_start(&b, "mb", mtu);
	rc = CLI("migrate", a.name, b.name);
	tap_ok(rc != 0 && has(err, "mtu: source 1500, destination 9000"),
	       "configuration mismatch named: mtu: source 1500, destination "
	       "9000");
	rc = CLI("traffic", a.name, "--count", "1000");
	tap_is(rc, 0, "source still works after the refused migration");
	sim_stop(&a);
	sim_stop(&b);

	sim_start(&a, "sa", nostate);
	sim_start(&b, "sb", nostate);
	rc = CLI("-j", "migrate", a.name, b.name, "--traffic", "--count",
		 "100000", "--iterations", "3");
	tap_ok(rc == 0 && has(out, "\"lost\":0,"),
	       "no state extension: net migrates with what the ABI exposes");
	sim_stop(&a);
	sim_stop(&b);

	sim_start(&a, "xa", nores);
	sim_start(&b, "xb", nores);
	rc = CLI("-j", "migrate", a.name, b.name, "--traffic", "--count",
		 "100000", "--iterations", "4");
	tap_ok(rc == 0 && has(out, "\"lost\":0,"),
	       "no RESUME (Linux 6.1 shape): migrations work");
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

static void fake_destination(int l, const void *desc, size_t dlen, bool die)
{
	uint64_t hdr[2] = { 0x3147494d41504456ull, 1 };
	int c;

	alarm(60);	/* never outlive a CLI that did not come */
	c = accept(l, NULL, NULL);
	if (c < 0)
		_exit(2);
	{
		struct { uint32_t type, res; uint64_t len; } rh = { 1, 0, dlen };
		char buf[65536];
		uint64_t h[2];

		if (read(c, h, sizeof(h)) != sizeof(h))
			_exit(2);
		if (write(c, hdr, sizeof(hdr)) < 0 ||
		    write(c, &rh, sizeof(rh)) < 0 || write(c, desc, dlen) < 0)
			_exit(2);
		/* swallow records until the END record's header (type 0) */
		for (;;) {
			struct { uint32_t type, res; uint64_t len; } r;
			uint64_t left;

			if (read(c, &r, sizeof(r)) != sizeof(r))
				_exit(2);
			if (r.type == 0)
				break;
			for (left = r.len; left;) {
				ssize_t n = read(c, buf, left < sizeof(buf) ?
						 left : sizeof(buf));
				if (n <= 0)
					_exit(2);
				left -= (uint64_t)n;
			}
		}
		if (!die) {
			struct { uint32_t type, res; uint64_t len; int32_t e;
				 char m[8]; } __attribute__((packed)) v =
				{ 6, 0, 12, -EIO, "injected" };

			if (write(c, &v, sizeof(v)) < 0)
				_exit(2);
		}
	}
	_exit(0);
}

static void destination_failure(bool die, const char *const *sim_args,
				const char *what)
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
	if (vsim_thread_start(&o, &fd, &t) || vdpa_dev_open_sim_fd(fd, "d", &dev)) {
		tap_ok(0, "thread sim for the description");
		return;
	}
	vdpa_state_describe(dev, &desc);
	vdpa_state_encode(desc, &blob, &len);
	vdpa_state_free(desc);
	vdpa_dev_close(dev);
	vsim_thread_stop(t);

	snprintf(path, sizeof(path), "%s/fake-%d.sock", dir, die);
	snprintf(uri, sizeof(uri), "unix:%s", path);
	l = fake_listen(path);
	if (!tap_ok(l >= 0, "%s: fake destination listens", what)) {
		free(blob);
		return;
	}
	sim_start(&a, die ? "da" : "ea", sim_args);
	fake = fork();
	if (fake == 0)
		fake_destination(l, blob, len, die);
	close(l);
	rc = CLI("-j", "migrate-out", a.name, "--to", uri, "--traffic",
		 "--count", "60000");
	kill(fake, SIGKILL);	/* done by now, unless the CLI never came */
	waitpid(fake, &st, 0);
	tap_ok(rc != 0 && has(out, "\"result\":\"failed\"") &&
	       has(out, die ? "destination went away" : "injected") &&
	       has(out, "\"lost\":0,") && has(out, "\"duplicated\":0,") &&
	       has(out, "\"completed\":60000"),
	       "%s: source resumed, all of its traffic completed", what);
	if (!has(out, "\"lost\":0,"))
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

	sim_start(&a, "ka", plain);
	sim_start(&b, "kb", dies_loading);
	rc = CLI("-j", "migrate", a.name, b.name, "--traffic", "--count",
		 "60000");
	tap_ok(rc != 0 && has(out, "\"result\":\"failed\"") &&
	       has(out, "went away") && has(out, "\"source_resumed\":true") &&
	       has(out, "\"lost\":0,") && has(out, "\"duplicated\":0,") &&
	       has(out, "\"completed\":60000"),
	       "destination simulator killed mid-load: source resumed, all of "
	       "its traffic completed exactly once");
	if (!has(out, "\"completed\":60000"))
		tap_diag("rc %d out %s err %s", rc, out, err);
	rc = CLI("traffic", a.name, "--count", "1000");
	tap_is(rc, 0, "destination killed mid-load: source still works");
	sim_stop(&a);
	sim_stop(&b);

	sim_start(&a, "kc", dies_saving);
	sim_start(&b, "kd", plain);
	rc = CLI("-j", "migrate", a.name, b.name, "--traffic", "--count",
		 "60000");
	tap_ok(rc != 0 && rc < 128 && has(out, "\"result\":\"failed\"") &&
	       has(out, "saving ") && has(out, "went away") &&
	       has(out, "\"duplicated\":0,"),
	       "source simulator killed mid-save: the CLI fails cleanly and "
	       "says so");
	if (rc == 0 || rc >= 128)
		tap_diag("rc %d out %s err %s", rc, out, err);
	rc = CLI("traffic", b.name, "--count", "1000");
	tap_is(rc, 0, "source killed mid-save: the destination was left "
	       "usable");
	sim_stop(&a);
	sim_stop(&b);
}

static void bad_files(void)
{
	const char *args[] = { "--type", "net", NULL };
	char good[512], bad[512], uri[600];
	struct sim a, b;
	uint8_t *data;
	long size;
	FILE *f;
	int rc, i;
	static const struct { const char *name; int kind; } cases[] = {
		{ "empty file", 0 }, { "truncated to half", 1 },
		{ "truncated by one byte", 2 }, { "bit flipped in the state", 3 },
		{ "wrong magic", 4 },
	};

	snprintf(good, sizeof(good), "%s/good.state", dir);
	snprintf(bad, sizeof(bad), "%s/bad.state", dir);
	sim_start(&a, "fa1", args);
	sim_start(&b, "fb1", args);
	snprintf(uri, sizeof(uri), "file:%s", good);
	rc = CLI("-j", "migrate-out", a.name, "--to", uri, "--traffic",
		 "--count", "20000");
	tap_is(rc, 0, "save to file (migrate-out --to file:)");
	rc = CLI("state", "show", good);
	tap_ok(rc == 0 && has(out, "model vdpa-sim://net") &&
	       has(out, "queue 1:"), "state show decodes the saved file");
	f = fopen(good, "rb");
	if (!f) {
		tap_ok(0, "saved file readable (skipping the bad-file cases)");
		sim_stop(&a);
		sim_stop(&b);
		return;
	}
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	data = malloc((size_t)size);
	if (fread(data, 1, (size_t)size, f) != (size_t)size)
		size = 0;
	fclose(f);
	for (i = 0; i < 5; i++) {
		size_t n = cases[i].kind == 0 ? 0 : cases[i].kind == 1 ?
			   (size_t)size / 2 : cases[i].kind == 2 ?
			   (size_t)size - 1 : (size_t)size;

		if (cases[i].kind == 3)
			data[size - 100] ^= 0x10;
		if (cases[i].kind == 4) {
			data[size - 100] ^= 0x10;
			data[0] ^= 0xff;
	snprintf(uri, sizeof(uri), "file:%s", good);
	rc = CLI("--max-state", "64", "migrate-in", b.name, "--from", uri);
	tap_ok(rc != 0 && has(err, "larger than the 64-byte cap") &&
	       strchr(err, '\n') == strrchr(err, '\n'),
	       "migrate-in --max-state 64: refused before allocating, one line");
	tap_diag("  %s", err);
	rc = CLI("--max-state", "64", "state", "show", good);
	tap_ok(rc != 0 && has(err, "64-byte cap"),
	       "state show --max-state 64: refused, names the cap");
	rc = CLI("traffic", b.name, "--count", "1000");
	tap_is(rc, 0, "destination usable after the refused oversize state");
		}
		f = fopen(bad, "wb");
		fwrite(data, 1, n, f);
		fclose(f);
		snprintf(uri, sizeof(uri), "file:%s", bad);
		rc = CLI("migrate-in", b.name, "--from", uri);
		tap_ok(rc != 0 && has(err, "migrate-in: ") &&
		       strchr(err, '\n') == strrchr(err, '\n'),
		       "migrate-in of a bad file (%s): one-line error, non-zero "
		       "exit", cases[i].name);
		tap_diag("  %s", err);
		rc = CLI("traffic", b.name, "--count", "1000");
		tap_is(rc, 0, "destination usable after the bad file (%s)",
		       cases[i].name);
	}
	data[0] ^= 0xff;
	snprintf(uri, sizeof(uri), "file:%s", good);
	rc = CLI("-j", "migrate-in", b.name, "--from", uri);
	tap_ok(rc == 0 && has(out, "\"lost\":0,") &&
	       has(out, "\"completed\":20000"),
	       "restore-later from the good file: the traffic finishes on "
	       "the destination, nothing lost");
	free(data);
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
		tap_ok(rc == 0 && has(out, "\"lost\":0,") &&
		       has(out, "\"duplicated\":0,") &&
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
		tap_ok(rc == 0 && has(out, "\"lost\":0,") &&
		       has(out, "\"corrupt\":0,"),
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
	fallbacks();
	destination_failure(false, plain, "destination refuses after suspend");
	destination_failure(true, plain, "destination dies mid-load");
	destination_failure(false, nores, "destination refuses, source has "
			    "no RESUME (reset + reload)");
	sim_crashes();
	bad_files();
	kernel_devices();
	tu_rmtree(dir);
	return tap_done();
}
