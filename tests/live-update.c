// SPDX-License-Identifier: MIT
/*
 * Live update (include/vdpa-user/handover.h): a net device under verified
 * loopback traffic moves between processes over a unix socket, on both
 * paths (a vdpa-sim started with --new-owner: VHOST_NEW_OWNER; without:
 * suspend/save/reset/load), back and forth, with the old process dying
 * in the middle, the new one refusing, and bad records. TAP.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vdpa-user/handover.h>
#include <vdpa-user/net.h>
#include <vdpa-user/uapi-ext.h>
#include <vdpa-user/vq.h>

#include "sim.h"
#include "tap.h"
#include "util/testutil.h"

#define MEM_SIZE	(4u << 20)
#define MEM_IOVA	0x100000ull
#define FRAME		64
#define TIMEOUT_MS	10000

/* Loopback traffic: frames carry a sequence number, come back in order. */
struct traffic {
	uint64_t next_tx, next_rx;
	uint64_t dup, bad;
};

struct side {
	struct vdpa_dev *dev;
	struct vdpa_mem *mem;
	struct vdpa_net *net;
	struct traffic t;
};

static char sock_path[300];
/* >= 0: the new process binds queue 0's kick to this (not an eventfd) */
static int bad_kick = -1;

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;	/* the DIR's own */
}

static void on_frame(const void *frame, size_t len, void *opaque)
{
	struct traffic *t = opaque;
	uint64_t seq;

	if (len < sizeof(seq) + 12) {
		t->bad++;
		return;
	}
	memcpy(&seq, (const uint8_t *)frame + 12, sizeof(seq));
	if (seq < t->next_rx)
		t->dup++;
	else if (seq > t->next_rx)
		t->bad += seq - t->next_rx;	/* skipped: lost */
	if (seq >= t->next_rx)
		t->next_rx = seq + 1;
}

/* Send up to n frames (what fits), reap what came back. */
static int pump(struct side *s, unsigned int n)
{
	uint8_t f[FRAME] = { 0 };
	unsigned int i;
	int r;

	memset(f, 0xff, 6);	/* broadcast: the simulator loops it back */
	for (i = 0; i < n; i++) {
		if (!vdpa_net_tx_free(s->net, 0)) {
			vdpa_net_reap_tx(s->net, 0);
			if (!vdpa_net_tx_free(s->net, 0))
				break;
		}
		memcpy(f + 12, &s->t.next_tx, sizeof(s->t.next_tx));
		r = vdpa_net_send(s->net, 0, f, sizeof(f));
		if (r < 0)
			return r;
		s->t.next_tx++;
	}
	r = vdpa_net_kick_tx(s->net, 0);
	if (r < 0)
		return r;
	vdpa_net_wait_rx(s->net, 2);
	vdpa_net_reap_tx(s->net, 0);
	return vdpa_net_receive(s->net, 0, on_frame, &s->t, 256);
}

/* Everything sent came back? Wait (bounded) for the rest. */
static int drain(struct side *s)
{
	int i;

	for (i = 0; i < 2000 && s->t.next_rx < s->t.next_tx; i++) {
		vdpa_net_kick_tx(s->net, 0);
		vdpa_net_wait_rx(s->net, 5);
		vdpa_net_reap_tx(s->net, 0);
		if (vdpa_net_receive(s->net, 0, on_frame, &s->t, 256) < 0)
			return -EIO;
	}
	return s->t.next_rx == s->t.next_tx && !s->t.dup && !s->t.bad ?
	       0 : -EIO;
}

static int side_open(struct side *s, const char *name)
{
	struct vdpa_net_opts o = { .vq_size = 256 };
	int r;

	memset(s, 0, sizeof(*s));
	r = vdpa_dev_open(name, &s->dev);
	if (r < 0)
		return r;
	r = vdpa_mem_create(MEM_SIZE, MEM_IOVA, &s->mem);
	if (!r)
		r = vdpa_net_open(s->dev, s->mem, &o, &s->net);
	return r;
}

static void side_close(struct side *s)
{
	vdpa_net_close(s->net);
	vdpa_dev_close(s->dev);
	vdpa_mem_destroy(s->mem);
	memset(s, 0, sizeof(*s));
}

/* The app record: the driver and the traffic counters. */
static int give(struct side *s, int sock, struct vdpa_handover_info *info,
		char *err, size_t len)
{
	void *nb = NULL, *app;
	size_t nl = 0;
	int r;

	r = vdpa_net_save(s->net, &nb, &nl);
	if (r < 0)
		return r;
	app = malloc(nl + sizeof(s->t));
	if (!app) {
		free(nb);
		return -ENOMEM;
	}
	memcpy(app, &s->t, sizeof(s->t));
	memcpy((uint8_t *)app + sizeof(s->t), nb, nl);
	free(nb);
	r = vdpa_handover_send(&s->dev, sock, &s->mem, 1, app,
			       nl + sizeof(s->t), TIMEOUT_MS, info, err, len);
	free(app);
	if (r == 0) {	/* gone: the driver and memory are the new one's */
		vdpa_net_close(s->net);
		vdpa_mem_destroy(s->mem);
		s->net = NULL;
		s->mem = NULL;
	}
	return r;
}

/* Receive and adopt (refuse when told to). */
static int take(struct side *s, int sock, bool refuse,
		struct vdpa_handover_info *info, char *err, size_t len)
{
	int kick[VDPA_HANDOVER_MAX_VQS], call[VDPA_HANDOVER_MAX_VQS];
	struct vdpa_handover_in *in = NULL;
	const uint8_t *app;
	size_t alen = 0;
	unsigned int i;
	int r;

	memset(s, 0, sizeof(*s));
	r = vdpa_handover_recv(sock, TIMEOUT_MS, &in, err, len);
	if (r < 0)
		return r;
	if (refuse) {
		r = vdpa_handover_refuse(in, "test: refused");
		vdpa_handover_in_free(in);
		return r < 0 ? r : -ECANCELED;
	}
	app = vdpa_handover_in_app(in, &alen);
	r = -EBADMSG;
	if (alen < sizeof(s->t) || vdpa_handover_in_nmem(in) != 1)
		goto out;
	memcpy(&s->t, app, sizeof(s->t));
	r = vdpa_net_restore(vdpa_handover_in_mem(in, 0), app + sizeof(s->t),
			     alen - sizeof(s->t), &s->net);
	if (r < 0)
		goto out;
	/*
	 * vdpa_net_restore() made new eventfds: the driver takes over the
	 * ones the device is bound to instead, under the same numbers (as a
	 * VMM keeps its KVM ioeventfd/irqfd), so nothing is rebound.
	 */
	for (i = 0; i < vdpa_net_num_vqs(s->net); i++) {
		struct vdpa_vq *vq = vdpa_net_vq(s->net, i);
		int k = -1, c = -1;

		kick[i] = call[i] = -1;
		if (!vq || vdpa_handover_in_vring_fds(in, i, &k, &c) < 0)
			continue;
		kick[i] = vdpa_vq_kick_fd(vq);
		call[i] = vdpa_vq_call_fd(vq);
		if (k >= 0)
			dup3(k, kick[i], O_CLOEXEC);
		if (c >= 0)
			dup3(c, call[i], O_CLOEXEC);
	}
	for (; i < VDPA_HANDOVER_MAX_VQS; i++)
		kick[i] = call[i] = -1;
	if (bad_kick >= 0)
		kick[0] = bad_kick;
	r = vdpa_handover_accept(in, kick, call, err, len);
	if (r < 0) {
		vdpa_net_close(s->net);
		s->net = NULL;
		goto out;
	}
	s->dev = vdpa_handover_in_take_dev(in);
	s->mem = vdpa_handover_in_take_mem(in, 0);
	vdpa_net_set_dev(s->net, s->dev);
	if (info)
		*info = *vdpa_handover_in_info(in);
out:
	vdpa_handover_in_free(in);
	return r;
}

static pid_t start_sim(bool new_owner)
{
	const char *args[] = { "--type", "net", "--vq-size", "256",
			       new_owner ? "--new-owner" : NULL, NULL };

	return tu_spawn_sim(sock_path, args);
}

/*
 * The child's part of a ping-pong: take, pump, give, k times; exit
 * status 0 when every step worked and its traffic was clean.
 */
static int child_pingpong(int sock, unsigned int rounds, bool refuse)
{
	struct vdpa_handover_info info;
	struct side s;
	char err[256];
	unsigned int k;

	for (k = 0; k < rounds; k++) {
		if (take(&s, sock, refuse, &info, err, sizeof(err)) < 0)
			return refuse ? 0 : 10;
		if (pump(&s, 32) < 0 || s.t.dup || s.t.bad)
			return 11;
		if (give(&s, sock, &info, err, sizeof(err)) < 0)
			return 12;
	}
	return 0;
}

/*
 * The parent keeps the device under traffic, hands it to a forked child,
 * takes it back, rounds times; then drains and checks every frame came
 * back exactly once. Returns the number of clean round trips, -1 when the
 * setup failed.
 */
static int pingpong_on(const char *kdev, bool new_owner, unsigned int rounds,
		       enum vdpa_handover_path *ret_path,
		       uint64_t *ret_pause_ns)
{
	char name[320], err[256] = "";
	struct vdpa_handover_info info = { 0 };
	unsigned int k, good = 0;
	int sv[2], st = -1, r;
	struct side s;
	pid_t sim, pid;

	sim = kdev ? 0 : start_sim(new_owner);
	if (sim < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				  sv) < 0)
		return -1;
	/* forked before the device is open: it must not inherit its fd */
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		_exit(child_pingpong(sv[1], rounds, false));
	}
	close(sv[1]);
	snprintf(name, sizeof(name), "%s%s", kdev ? "" : "sim:",
		 kdev ? kdev : sock_path);
	r = side_open(&s, name);
	if (r < 0) {
		tap_diag("setup: %s", strerror(-r));
		close(sv[0]);
		waitpid(pid, &st, 0);
		if (sim > 0)
			tu_stop_sim(sim, true);
		return -1;
	}
	*ret_pause_ns = 0;
	for (k = 0; k < rounds; k++) {
		if (pump(&s, 48) < 0)	/* frames in flight at the switch */
			break;
		r = give(&s, sv[0], &info, err, sizeof(err));
		if (r < 0) {
			tap_diag("round %u: give: %s", k, err);
			break;
		}
		*ret_path = info.path;
		*ret_pause_ns += info.pause_ns;
		r = take(&s, sv[0], false, &info, err, sizeof(err));
		if (r < 0) {
			tap_diag("round %u: take: %s", k, err);
			break;
		}
		good++;
	}
	if (good == rounds && drain(&s) < 0) {
		tap_diag("traffic: sent %llu, back %llu, dup %llu, lost %llu",
			 (unsigned long long)s.t.next_tx,
			 (unsigned long long)s.t.next_rx,
			 (unsigned long long)s.t.dup,
			 (unsigned long long)s.t.bad);
		good = 0;
	}
	close(sv[0]);
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		tap_diag("child exit status 0x%x", st);
		good = 0;
	}
	side_close(&s);
	if (sim > 0)
		tu_stop_sim(sim, false);
	return (int)good;
}

static int pingpong(bool new_owner, unsigned int rounds,
		    enum vdpa_handover_path *ret_path, uint64_t *ret_pause_ns)
{
	return pingpong_on(NULL, new_owner, rounds, ret_path, ret_pause_ns);
}

/*
 * Linux vhost-vdpa (the rig exports VDPA_TEST_NET_DEV): no NEW_OWNER, so
 * the fallback, chosen before anything stops, and real handovers on it.
 */
static void test_kernel(void)
{
	const char *kdev = getenv("VDPA_TEST_NET_DEV");
	enum vdpa_handover_path path = VDPA_HANDOVER_NONE;
	struct vdpa_handover_info info;
	uint64_t pause = 0;
	struct side s;
	int r, good;

	if (!kdev || !*kdev) {
		tap_ok(1, "# SKIP Linux vhost-vdpa: VDPA_TEST_NET_DEV not set "
		       "(make check-kernel sets it)");
		return;
	}
	r = side_open(&s, kdev);
	if (!r)
		r = vdpa_handover_choose(s.dev, &info);
	tap_ok(r == 0 && info.path == VDPA_HANDOVER_FALLBACK &&
	       strstr(info.reason, "NEW_OWNER"),
	       "%s: Linux offers no NEW_OWNER -> fallback, known before "
	       "anything stops (%s)", kdev, r ? strerror(-r) : info.reason);
	side_close(&s);
	good = pingpong_on(kdev, false, 5, &path, &pause);
	tap_ok(good == 5 && path == VDPA_HANDOVER_FALLBACK,
	       "%s: 5 fallback handovers back and forth under traffic, every "
	       "frame back exactly once (%d clean, mean pause %llu us)", kdev,
	       good, good > 0 ? (unsigned long long)(pause / 1000 / 5) : 0ULL);
}

static void test_choose(void)
{
	struct vdpa_handover_info info;
	char name[320];
	struct side s;
	pid_t sim;
	int r;

	for (int no = 0; no < 2; no++) {
		sim = start_sim(no);
		snprintf(name, sizeof(name), "sim:%s", sock_path);
		r = sim < 0 ? (int)sim : side_open(&s, name);
		if (r < 0) {
			tap_ok(0, "choose: setup: %s", strerror(-r));
			tu_stop_sim(sim, true);
			continue;
		}
		r = vdpa_handover_choose(s.dev, &info);
		tap_ok(r == 0 && info.path == (no ? VDPA_HANDOVER_NEW_OWNER :
					       VDPA_HANDOVER_FALLBACK),
		       "choose: simulator %s --new-owner -> %s (%s)",
		       no ? "with" : "without",
		       vdpa_handover_path_name(info.path), info.reason);
		if (!no)
			tap_ok(strstr(info.reason, "NEW_OWNER") != NULL,
			       "choose: the fallback names the missing bit");
		side_close(&s);
		tu_stop_sim(sim, false);
	}
}

/*
 * A region that starts inside its fd (vdpa_mem_create_from_fd_at(), as
 * serve maps guest RAM) cannot be handed over: the record carries whole
 * fds. Refused before anything stops; the device keeps its owner.
 */
static void test_offset_region(void)
{
	struct vdpa_handover_info info;
	struct vdpa_mem *m = NULL;
	struct vdpa_dev *dev = NULL;
	struct vdpa_net *net = NULL;
	char name[320], err[256] = "";
	int sv[2] = { -1, -1 }, fd, r;
	pid_t sim;

	sim = start_sim(true);
	snprintf(name, sizeof(name), "sim:%s", sock_path);
	r = sim < 0 ? (int)sim : vdpa_dev_open(name, &dev);
	fd = memfd_create("lu-offset", MFD_CLOEXEC);
	if (!r && (fd < 0 || ftruncate(fd, 2 * MEM_SIZE) < 0))
		r = -errno;
	if (!r)
		r = vdpa_mem_create_from_fd_at(fd, MEM_SIZE, MEM_SIZE,
						MEM_IOVA, &m);
	else if (fd >= 0)
		close(fd);
	if (!r)
		r = vdpa_net_open(dev, m, &(struct vdpa_net_opts){
					  .vq_size = 256 }, &net);
	if (!r && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		r = -errno;
	if (r < 0) {
		tap_ok(0, "offset region: setup: %s", strerror(-r));
	} else {
		r = vdpa_handover_send(&dev, sv[0], &m, 1, NULL, 0, TIMEOUT_MS,
				       &info, err, sizeof(err));
		tap_ok(r == -EOPNOTSUPP && dev && strstr(err, "offset"),
		       "a region at an offset of its fd is refused before "
		       "anything stops (%s: %s), the device stays here",
		       strerror(-r), err);
		tap_ok(dev && vdpa_dev_get_status(dev, &(uint8_t){ 0 }) == 0,
		       "offset region: the old process still drives the "
		       "device");
	}
	if (sv[0] >= 0) {
		close(sv[0]);
		close(sv[1]);
	}
	vdpa_net_close(net);
	vdpa_dev_close(dev);
	vdpa_mem_destroy(m);
	tu_stop_sim(sim, false);
}

/* Handover under traffic, then 100 back and forth, on each path. */
static void test_pingpong(bool no, unsigned int rounds)
{
	enum vdpa_handover_path path = VDPA_HANDOVER_NONE;
	uint64_t pause = 0;
	int good;

	good = pingpong(no, rounds, &path, &pause);
	tap_ok(good == (int)rounds && path == (no ? VDPA_HANDOVER_NEW_OWNER :
					       VDPA_HANDOVER_FALLBACK),
	       "%s: %u handovers back and forth under traffic, every frame "
	       "back exactly once (%d clean, mean pause %llu us)",
	       no ? "new-owner" : "fallback", rounds, good,
	       good > 0 ? (unsigned long long)(pause / 1000 / (unsigned)good) : 0ULL);
}

/* The new process refuses: the old one runs on, traffic intact. */
static void test_refuse(bool no)
{
	struct vdpa_handover_info info;
	char name[320], err[256] = "";
	int sv[2], st = -1, r, r2;
	struct side s;
	pid_t sim, pid;

	sim = start_sim(no);
	snprintf(name, sizeof(name), "sim:%s", sock_path);
	if (sim < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				  sv) < 0) {
		tap_ok(0, "refuse: setup");
		tu_stop_sim(sim, true);
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		_exit(child_pingpong(sv[1], 1, true));
	}
	close(sv[1]);
	r = side_open(&s, name);
	if (r < 0) {
		tap_ok(0, "refuse: setup: %s", strerror(-r));
		close(sv[0]);
		waitpid(pid, &st, 0);
		tu_stop_sim(sim, true);
		return;
	}
	pump(&s, 48);
	r = give(&s, sv[0], &info, err, sizeof(err));
	tap_ok(r == -ECANCELED && s.dev && strstr(err, "refused"),
	       "%s: the new process refuses -> -ECANCELED, the device stays "
	       "(%s)", no ? "new-owner" : "fallback", err);
	r2 = pump(&s, 64) >= 0 ? drain(&s) : -EIO;
	tap_ok(r2 == 0, "%s: after the refusal the old process runs on: "
	       "%llu frames, all back once", no ? "new-owner" : "fallback",
	       (unsigned long long)s.t.next_rx);
	close(sv[0]);
	waitpid(pid, &st, 0);
	side_close(&s);
	tu_stop_sim(sim, false);
}

/* Forward one datagram with its descriptors (optionally dropping one). */
static int relay_one(int from, int to, bool drop_fd, bool flip)
{
	static uint8_t buf[64 << 10];
	union {
		char b[CMSG_SPACE(sizeof(int) * 256)];
		struct cmsghdr a;
	} u;
	int fds[256], n = 0, i;
	struct iovec v = { buf, sizeof(buf) };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1,
			    .msg_control = u.b, .msg_controllen = sizeof(u.b) };
	struct cmsghdr *c;
	ssize_t len;

	len = recvmsg(from, &m, MSG_CMSG_CLOEXEC);
	if (len <= 0)
		return -1;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		for (i = 0; i < (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		     i++)
			memcpy(&fds[n++], CMSG_DATA(c) + i * sizeof(int),
			       sizeof(int));
	if (drop_fd && n) {
		close(fds[n - 1]);
		n--;
	}
	if (flip)
		buf[len - 1] ^= 0x40;
	v.iov_len = (size_t)len;
	m.msg_controllen = 0;
	m.msg_control = NULL;
	if (n) {
		m.msg_control = u.b;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	}
	len = sendmsg(to, &m, MSG_NOSIGNAL);
	for (i = 0; i < n; i++)
		close(fds[i]);
	return len < 0 ? -1 : (int)len;
}

/*
 * A sender child with a record of two datagrams (a 100 KiB app record);
 * the test sits in the middle. mode 0: forward the first datagram, kill
 * the sender, close (the old process dies mid-handover); 1: flip a byte
 * (bad CRC); 2: drop a descriptor (wrong count); then refuse.
 */
static void test_broken(bool no, int mode)
{
	static const char *what[] = {
		"the old process dies in the middle of its record",
		"a record with a flipped byte (CRC)",
		"a record with one descriptor missing",
	};
	char name[320], err[256] = "";
	struct vdpa_handover_in *in = NULL;
	int a[2], b[2], st = -1, r, fds0, i;
	struct vdpa_dev *dev = NULL;
	pid_t sim, pid;
	uint8_t st8 = 0xff;

	sim = start_sim(no);
	snprintf(name, sizeof(name), "sim:%s", sock_path);
	if (sim < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				  a) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, b) < 0) {
		tap_ok(0, "broken record: setup");
		tu_stop_sim(sim, true);
		return;
	}
	pid = fork();
	if (pid == 0) {
		struct vdpa_handover_info info;
		static uint8_t app[100 << 10];
		struct side s;

		close(a[0]);
		close(b[0]);
		close(b[1]);
		if (side_open(&s, name) < 0 || pump(&s, 32) < 0)
			_exit(20);
		r = vdpa_handover_send(&s.dev, a[1], &s.mem, 1, app,
				       sizeof(app), TIMEOUT_MS, &info, err,
				       sizeof(err));
		/* refused: the device runs on here */
		_exit(r == -ECANCELED && s.dev && pump(&s, 32) >= 0 &&
		      drain(&s) == 0 ? 0 : 21);
	}
	close(a[1]);
	fds0 = count_fds();
	r = relay_one(a[0], b[0], mode == 2, mode == 1);
	if (mode == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		close(a[0]);
		a[0] = -1;
		shutdown(b[0], SHUT_WR);
	} else {
		while (r > 0 && relay_one(a[0], b[0], false, false) == 60 << 10)
			;
	}
	r = vdpa_handover_recv(b[1], 2000, &in, err, sizeof(err));
	static const char *why[] = { "truncated", "CRC", "descriptors" };

	tap_ok(r < 0 && !in && strstr(err, why[mode]) && !strchr(err, '\n'),
	       "%s: %s -> %s, one line: %s", no ? "new-owner" : "fallback",
	       what[mode], strerror(-r), err);
	if (mode == 0)
		fds0--;		/* the dead sender's socket, closed above */
	tap_ok(count_fds() == fds0, "%s: nothing kept of it (fds %d -> %d)",
	       what[mode], fds0, count_fds());
	if (mode == 0) {
		/* the device recovers: released, reset, free to open again */
		for (i = 0, r = -EBUSY; i < 200 && r == -EBUSY; i++) {
			r = vdpa_dev_open(name, &dev);
			if (r == -EBUSY)
				usleep(10000);
		}
		if (!r)
			r = vdpa_dev_get_status(dev, &st8);
		tap_ok(r == 0 && st8 == 0, "after the old process died the "
		       "device was reset and opens again (status 0x%02x): %s",
		       st8, strerror(-r));
		vdpa_dev_close(dev);
	} else {
		/* the refusal goes back: the sender runs on (exit 0) */
		struct { uint32_t magic, type; int32_t err; uint32_t crc;
			 uint64_t t, len; char reason[192]; } c = {
			0x4f484456u, 2, -ECANCELED, 0, 0, 0,
			"test: bad record" };

		r = (int)send(a[0], &c, sizeof(c), MSG_NOSIGNAL);
		waitpid(pid, &st, 0);
		tap_ok(r == (int)sizeof(c) && WIFEXITED(st) &&
		       !WEXITSTATUS(st), "%s: told no, the old process runs "
		       "on with clean traffic (exit 0x%x)", what[mode], st);
	}
	if (a[0] >= 0)
		close(a[0]);
	close(b[0]);
	close(b[1]);
	tu_stop_sim(sim, false);
}

/* Records made up from nothing. */
static void test_garbage(void)
{
	uint8_t junk[100];
	struct vdpa_handover_in *in = NULL;
	char err[256] = "";
	int sv[2], r, fds0, many[200], i;

	fds0 = count_fds();
	tap_ok(fds0 > 0, "/proc/self/fd is readable (%d open)", fds0);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	memset(junk, 0x5a, sizeof(junk));
	send(sv[0], junk, sizeof(junk), 0);
	r = vdpa_handover_recv(sv[1], 1000, &in, err, sizeof(err));
	tap_ok(r == -EPROTO && !in, "garbage -> %s: %s", strerror(-r), err);
	/* 200 descriptors: more than a record may carry (MSG_CTRUNC) */
	{
		union { char b[CMSG_SPACE(sizeof(int) * 200)];
			struct cmsghdr a; } u;
		struct iovec v = { junk, sizeof(junk) };
		struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1,
				    .msg_control = u.b,
				    .msg_controllen = sizeof(u.b) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);

		for (i = 0; i < 200; i++)
			many[i] = sv[0];
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(many));
		memcpy(CMSG_DATA(c), many, sizeof(many));
		sendmsg(sv[0], &m, 0);
	}
	r = vdpa_handover_recv(sv[1], 1000, &in, err, sizeof(err));
	tap_ok(r == -EBADMSG && !in, "200 descriptors -> %s: %s",
	       strerror(-r), err);
	close(sv[0]);
	r = vdpa_handover_recv(sv[1], 1000, &in, err, sizeof(err));
	tap_ok(r == -EPIPE && !in, "nothing, then EOF -> %s: %s", strerror(-r),
	       err);
	close(sv[1]);
	tap_ok(count_fds() == fds0, "no descriptor leaked (%d -> %d)", fds0,
	       count_fds());
}

/*
 * The new process fails after GO (it is handed a kick fd the device
 * refuses): new-owner, the old one takes the device back and runs on;
 * fallback, the device was released: reset, free to open again.
 */
static void test_fail_after_go(bool no)
{
	struct vdpa_handover_info info;
	char name[320], err[256] = "";
	int sv[2], st = -1, r, i, p[2];
	struct vdpa_dev *dev = NULL;
	uint8_t st8 = 0xff;
	struct side s;
	pid_t sim, pid;

	sim = start_sim(no);
	snprintf(name, sizeof(name), "sim:%s", sock_path);
	if (sim < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				  sv) < 0 || pipe(p) < 0) {
		tap_ok(0, "fail after GO: setup");
		tu_stop_sim(sim, true);
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		bad_kick = p[0];
		r = take(&s, sv[1], false, &info, err, sizeof(err));
		_exit(r < 0 ? 0 : 1);
	}
	close(sv[1]);
	close(p[0]);
	close(p[1]);
	r = side_open(&s, name);
	if (!r)
		r = pump(&s, 48) < 0 ? -EIO : 0;
	if (r < 0) {
		tap_ok(0, "fail after GO: setup: %s", strerror(-r));
		goto out;
	}
	r = give(&s, sv[0], &info, err, sizeof(err));
	waitpid(pid, &st, 0);
	pid = -1;
	if (no) {
		tap_ok(r == -ECANCELED && s.dev && strstr(err, "failed"),
		       "new-owner: the new process fails after taking the "
		       "device -> the old one takes it back (%s)", err);
		r = s.dev && pump(&s, 64) >= 0 ? drain(&s) : -EIO;
		tap_ok(r == 0, "new-owner: taken back, traffic runs on: %llu "
		       "frames, all back once",
		       (unsigned long long)s.t.next_rx);
		/* its memory is registered at its own address again */
		r = s.dev ? vdpa_mem_unmap(s.dev, s.mem) : -ENODEV;
		tap_ok(r == 0, "new-owner: taken back, its mapping is its own "
		       "again (unmap: %s)", strerror(-r));
	} else {
		tap_ok(r == -EPIPE && !s.dev && strstr(err, "reset"),
		       "fallback: the new process fails after the release -> "
		       "-EPIPE, the device is gone from here (%s)", err);
		for (i = 0, r = -EBUSY; i < 200 && r == -EBUSY; i++) {
			r = vdpa_dev_open(name, &dev);
			if (r == -EBUSY)
				usleep(10000);
		}
		if (!r)
			r = vdpa_dev_get_status(dev, &st8);
		tap_ok(r == 0 && st8 == 0, "fallback: the device was reset "
		       "and opens again (status 0x%02x)", st8);
		vdpa_dev_close(dev);
	}
out:
	if (pid > 0)
		waitpid(pid, &st, 0);
	close(sv[0]);
	side_close(&s);
	tu_stop_sim(sim, false);
}

/* The CLI end to end: --exec, traffic continuing in the new process. */
static void test_cli(bool no)
{
	char cmd[1200], out[2048] = "";
	size_t n;
	FILE *f;
	pid_t sim;
	int rc;

	sim = start_sim(no);
	snprintf(cmd, sizeof(cmd), "%s/vdpa-user -j live-update sim:%s "
		 "--traffic --count 20000 --exec", tu_build_dir(), sock_path);
	f = sim < 0 ? NULL : popen(cmd, "r");
	n = f ? fread(out, 1, sizeof(out) - 1, f) : 0;
	out[n] = 0;
	out[strcspn(out, "\n")] = 0;	/* one TAP line */
	rc = f ? pclose(f) : -1;
	tap_ok(rc == 0 && strstr(out, no ? "\"path\":\"new-owner\"" :
				 "\"path\":\"fallback\"") &&
	       strstr(out, "\"completed\":20000") &&
	       strstr(out, "\"lost\":0") && strstr(out, "\"duplicated\":0"),
	       "vdpa-user live-update --exec (%s): %s",
	       no ? "new-owner" : "fallback", out);
	tu_stop_sim(sim, false);
}

/*
 * A simulator served in this process over a socketpair (no name to open
 * again): without NEW_OWNER nothing can move it (known before anything
 * stops); with it, the inherited socket itself moves to a child and back.
 */
static void test_sim_fd(bool no)
{
	struct vdpa_net_opts no_opts = { .vq_size = 256 };
	struct vdpa_handover_info info;
	struct vsim_thread *t = NULL;
	struct vsim_opts o;
	char err[256] = "";
	int fd = -1, sv[2], st = -1, r;
	struct side s;
	pid_t pid;

	vsim_opts_init(&o, VSIM_TYPE_NET);
	o.new_owner = no;
	memset(&s, 0, sizeof(s));
	r = vsim_thread_start(&o, &fd, &t);
	if (!r)
		r = vdpa_dev_open_sim_fd(fd, "sim-fd", &s.dev);
	if (!r)
		r = vdpa_mem_create(MEM_SIZE, MEM_IOVA, &s.mem);
	if (!r)
		r = vdpa_net_open(s.dev, s.mem, &no_opts, &s.net);
	if (r < 0) {
		tap_ok(0, "sim-fd: setup: %s", strerror(-r));
		side_close(&s);
		vsim_thread_stop(t);
		return;
	}
	r = vdpa_handover_choose(s.dev, &info);
	if (!no) {
		tap_ok(r == -EOPNOTSUPP && info.path == VDPA_HANDOVER_NONE &&
		       strstr(info.reason, "cannot be opened"),
		       "socketpair simulator without NEW_OWNER: no path, "
		       "known before anything stops (%s)", info.reason);
		side_close(&s);
		vsim_thread_stop(t);
		return;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		tap_ok(0, "sim-fd: socketpair");
		side_close(&s);
		vsim_thread_stop(t);
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		_exit(child_pingpong(sv[1], 1, false));
	}
	close(sv[1]);
	r = pump(&s, 48) < 0 ? -EIO : give(&s, sv[0], &info, err, sizeof(err));
	if (!r)
		r = take(&s, sv[0], false, &info, err, sizeof(err));
	if (!r)
		r = drain(&s);
	close(sv[0]);
	waitpid(pid, &st, 0);
	tap_ok(r == 0 && WIFEXITED(st) && !WEXITSTATUS(st),
	       "socketpair simulator with NEW_OWNER: its socket moves to "
	       "another process and back under traffic (%s)",
	       r ? (*err ? err : strerror(-r)) : "all frames back once");
	side_close(&s);
	vsim_thread_stop(t);
}

int main(void)
{
	char dir[200];
	int fds0;

	signal(SIGPIPE, SIG_IGN);
	if (access("/proc/self/fd", R_OK) != 0) {
		printf("1..0 # SKIP /proc/self/fd is not readable\n");
		return 77;
	}
	if (tu_mkdtemp(dir, sizeof(dir)) < 0) {
		printf("1..0 # SKIP no temporary directory\n");
		return 77;
	}
	snprintf(sock_path, sizeof(sock_path), "%s/sim.sock", dir);
	fds0 = count_fds();
	test_garbage();
	test_choose();
	test_offset_region();
	test_pingpong(true, 1);
	test_pingpong(false, 1);
	test_pingpong(true, 100);
	test_pingpong(false, 100);
	test_refuse(true);
	test_refuse(false);
	for (int mode = 0; mode < 3; mode++) {
		test_broken(true, mode);
		test_broken(false, mode);
	}
	test_sim_fd(false);
	test_sim_fd(true);
	test_kernel();
	test_fail_after_go(true);
	test_fail_after_go(false);
	test_cli(true);
	test_cli(false);
	tap_ok(count_fds() == fds0, "the whole run leaked no descriptor "
	       "(%d -> %d)", fds0, count_fds());
	tu_rmtree(dir);
	return tap_done();
}
