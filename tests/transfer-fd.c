// SPDX-License-Identifier: MIT
/* transfer-fd: the vhost-user-style transfer-FD API (vdpa_transfer_*). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vdpa-user/state.h>
#include <vdpa-user/transfer.h>

#include "tap.h"
#include "testutil.h"

#define SAVE		VDPA_TRANSFER_SAVE
#define LOAD		VDPA_TRANSFER_LOAD
#define STOPPED		VDPA_TRANSFER_PHASE_STOPPED
#define OFF_VERSION	8u

static char tmpdir[256];

/* ---- helpers -------------------------------------------------------------- */

static uint32_t crc32c_ref(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t c = ~0u;
	int k;

	while (len--) {
		c ^= *p++;
		for (k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
	}
	return ~c;
}

static void fix_crc(uint8_t *p, size_t len)
{
	uint32_t c = crc32c_ref(p, len - 4);

	memcpy(p + len - 4, &c, 4);	/* the format is little endian */
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool one_line(const char *msg)
{
	return msg && msg[0] && !strchr(msg, '\n');
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		perror("malloc");
		exit(1);
	}
	return p;
}

/* A net state with a device section of dev_len pseudo-random bytes. */
static struct vdpa_state *make_state(size_t dev_len, uint32_t seed)
{
	struct vdpa_state *s = vdpa_state_new();
	uint8_t *d;
	uint32_t i, x = seed | 1;

	if (!s)
		exit(1);
	snprintf(s->model, sizeof(s->model), "vdpa-sim://net");
	s->cfg = (struct vdpa_state_config){
		.device_id = 1, .features_offered = 0x338c70028ull,
		.vq_count = 5, .vq_max_size = 256, .config_size = 24,
		.mac = { 0, 0x11, 0x22, 0x33, 0x44, 0x55 }, .mtu = 1500,
		.max_vqp = 2,
	};
	s->has_features = true;
	s->features = 0x328c70028ull;
	s->backend_features = 0x3f;
	s->status = 0xf;
	s->nqueues = 5;
	for (i = 0; i < 5; i++)
		s->q[i] = (struct vdpa_state_queue){
			.index = i, .size = 256, .base = (uint16_t)(i * 1000 + 3),
			.used_idx = (uint16_t)(i * 1000), .enabled = true,
			.desc = 0x40000000ull + i * 0x10000,
			.avail = 0x40001000ull + i * 0x10000,
			.used = 0x40002000ull + i * 0x10000,
		};
	vdpa_state_set_net(s, s->cfg.mac, 2, false, true);
	d = xmalloc(dev_len);
	for (i = 0; i < dev_len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		d[i] = (uint8_t)x;
	}
	s->has_device = true;
	s->device = d;
	s->device_len = dev_len;
	return s;
}

/* The description a matching destination would give (no negotiated state). */
static struct vdpa_state *describe_like(const struct vdpa_state *s)
{
	struct vdpa_state *d = vdpa_state_new();

	if (!d)
		exit(1);
	memcpy(d->model, s->model, sizeof(d->model));
	d->cfg = s->cfg;
	return d;
}

struct blob {
	struct vdpa_state *s;
	uint8_t *p;
	size_t len;
};

static void blob_make(struct blob *b, size_t dev_len, uint32_t seed)
{
	void *p;

	b->s = make_state(dev_len, seed);
	if (vdpa_state_encode(b->s, &p, &b->len) < 0) {
		fprintf(stderr, "encode failed\n");
		exit(1);
	}
	b->p = p;
}

static void blob_free(struct blob *b)
{
	vdpa_state_free(b->s);
	free(b->p);
}

static bool same_state(const struct vdpa_state *a, const struct vdpa_state *b)
{
	uint32_t i;

	if (!a || !b || strcmp(a->model, b->model) ||
	    a->cfg.device_id != b->cfg.device_id ||
	    a->cfg.mtu != b->cfg.mtu || a->features != b->features ||
	    a->nqueues != b->nqueues || a->has_net != b->has_net ||
	    a->net.queue_pairs != b->net.queue_pairs ||
	    a->has_device != b->has_device || a->device_len != b->device_len)
		return false;
	for (i = 0; i < a->nqueues; i++)
		if (a->q[i].base != b->q[i].base ||
		    a->q[i].used_idx != b->q[i].used_idx ||
		    a->q[i].desc != b->q[i].desc)
			return false;
	return !a->device_len || !memcmp(a->device, b->device, a->device_len);
}

/* Read fd to EOF (or stop bytes, then stop); malloc'd data. -errno. */
static ssize_t read_all(int fd, uint8_t **ret, size_t stop)
{
	size_t len = 0, cap = 65536;
	uint8_t *p = xmalloc(cap);

	for (;;) {
		ssize_t n;

		if (len == cap) {
			uint8_t *np = realloc(p, cap * 2);

			if (!np) {
				free(p);
				return -ENOMEM;
			}
			p = np;
			cap *= 2;
		}
		n = read(fd, p + len, stop && stop - len < cap - len ?
			 stop - len : cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			n = -errno;
			free(p);
			return n;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (stop && len >= stop)
			break;
	}
	*ret = p;
	return (ssize_t)len;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * The test's peer of a transfer, in its own thread: a writer feeds data and
 * closes its fd (or keeps it open until told), a reader reads to EOF.
 * The writer blocks SIGPIPE for itself only: it is the test's own thread,
 * and a LOAD refused early closes the library's end under it.
 */
struct peer {
	pthread_t th;
	int fd;
	bool writer;
	const uint8_t *data;
	size_t len;
	uint8_t *got;
	ssize_t result;
};

static void *peer_main(void *arg)
{
	struct peer *p = arg;

	if (p->writer) {
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, SIGPIPE);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		p->result = write_all(p->fd, p->data, p->len);
	} else {
		p->result = read_all(p->fd, &p->got, 0);
	}
	close(p->fd);
	return NULL;
}

/* Start a peer on fd (which it closes when done). */
static void peer_start(struct peer *p, int fd, bool writer, const void *data,
		       size_t len)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->writer = writer;
	p->data = data;
	p->len = len;
	if (pthread_create(&p->th, NULL, peer_main, p)) {
		perror("pthread_create");
		exit(1);
	}
}

static ssize_t peer_join(struct peer *p)
{
	pthread_join(p->th, NULL);
	return p->result;
}

/* ---- reply bits -------------------------------------------------------------- */

static void test_reply(void)
{
	tap_is(vdpa_transfer_reply(0, 7), 0,
	       "reply: success with an fd returned: 0");
	tap_is(vdpa_transfer_reply(0, -1), 0x100,
	       "reply: success, no fd: bit 8 only");
	tap_is(vdpa_transfer_reply(-EOPNOTSUPP, -1), 0x100 | EOPNOTSUPP,
	       "reply: EOPNOTSUPP, no fd: errno in bits 0-7, bit 8");
	tap_is(vdpa_transfer_reply(-EINVAL, 5), EINVAL,
	       "reply: EINVAL with an fd: errno only");
	tap_ok((vdpa_transfer_reply(-EFBIG, -1) & ~0x1ffull) == 0,
	       "reply: nothing above bit 8");
}

/* ---- SAVE and LOAD over each channel ------------------------------------------ */

enum chan { CH_PIPE, CH_SOCKET, CH_OWN };

static const char *chan_name(enum chan c)
{
	return c == CH_PIPE ? "pipe" : c == CH_SOCKET ? "socketpair" :
	       "library's own pipe";
}

/* fds[0]: the library's end, fds[1]: ours. CH_OWN: -1 / -1. */
static int channel(enum chan c, uint32_t dir, int fds[2])
{
	int p[2];

	fds[0] = fds[1] = -1;
	if (c == CH_OWN)
		return 0;
	if (c == CH_PIPE ? pipe2(p, O_CLOEXEC) :
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p))
		return -errno;
	/* pipes: p[0] reads, p[1] writes */
	fds[0] = dir == SAVE ? p[1] : p[0];
	fds[1] = dir == SAVE ? p[0] : p[1];
	return 0;
}

static void save_load(enum chan c, size_t dev_len, const char *size_name)
{
	const char *cn = chan_name(c);
	struct vdpa_transfer *t = NULL;
	struct vdpa_state *got;
	struct blob b;
	int fds[2], rfd = -2, r;
	ssize_t n;
	uint8_t *rx = NULL;

	blob_make(&b, dev_len, 7);
	/* SAVE: the library writes, we read to EOF */
	if (channel(c, SAVE, fds) < 0) {
		tap_ok(0, "%s: channel", cn);
		blob_free(&b);
		return;
	}
	r = vdpa_transfer_set_fd(SAVE, STOPPED, fds[0], b.p, b.len, NULL, &t,
				 &rfd);
	tap_is(r, 0, "%s, %s: SAVE set_fd", cn, size_name);
	if (r < 0) {
		blob_free(&b);
		return;
	}
	if (c == CH_OWN) {
		tap_ok(rfd >= 0 && (fcntl(rfd, F_GETFD) & FD_CLOEXEC),
		       "%s, %s: SAVE returns the read end (%d), CLOEXEC", cn,
		       size_name, rfd);
		tap_is(vdpa_transfer_reply(r, rfd), 0,
		       "%s, %s: SAVE reply 0 (fd returned, bit 8 clear)", cn,
		       size_name);
		fds[1] = rfd;
	} else {
		tap_is(rfd, -1, "%s, %s: SAVE returns no fd", cn, size_name);
		tap_is(vdpa_transfer_reply(r, rfd), 0x100,
		       "%s, %s: SAVE reply 0x100 (no fd: bit 8)", cn, size_name);
	}
	n = fds[1] >= 0 ? read_all(fds[1], &rx, 0) : -EBADF;
	tap_ok(n == (ssize_t)b.len && !memcmp(rx, b.p, b.len),
	       "%s, %s: read %zd bytes to EOF, the blob exactly", cn, size_name,
	       n);
	if (fds[1] >= 0)
		close(fds[1]);
	r = vdpa_transfer_check(t);
	tap_is(r, 0, "%s, %s: SAVE check", cn, size_name);
	tap_is(vdpa_transfer_bytes(t), b.len, "%s, %s: SAVE moved %zu bytes", cn,
	       size_name, b.len);
	tap_ok(vdpa_transfer_take_state(t) == NULL,
	       "%s, %s: SAVE has no state to take", cn, size_name);
	vdpa_transfer_free(t);
	if (n > 0)
		free(rx);

	/* LOAD: we write what we read and close, the library reads to EOF */
	t = NULL;
	rfd = -2;
	if (channel(c, LOAD, fds) < 0) {
		tap_ok(0, "%s: channel for LOAD", cn);
		blob_free(&b);
		return;
	}
	r = vdpa_transfer_set_fd(LOAD, STOPPED, fds[0], NULL, 0, NULL, &t, &rfd);
	tap_is(r, 0, "%s, %s: LOAD set_fd", cn, size_name);
	if (r < 0) {
		if (fds[1] >= 0)
			close(fds[1]);
		blob_free(&b);
		return;
	}
	if (c == CH_OWN) {
		tap_ok(rfd >= 0 && (fcntl(rfd, F_GETFD) & FD_CLOEXEC),
		       "%s, %s: LOAD returns the write end, CLOEXEC", cn,
		       size_name);
		tap_is(vdpa_transfer_reply(r, rfd), 0, "%s, %s: LOAD reply 0",
		       cn, size_name);
		fds[1] = rfd;
	} else {
		tap_is(rfd, -1, "%s, %s: LOAD returns no fd", cn, size_name);
		tap_is(vdpa_transfer_reply(r, rfd), 0x100,
		       "%s, %s: LOAD reply 0x100", cn, size_name);
	}
	/* the library's reader runs in its own thread: write from here */
	r = fds[1] >= 0 ? write_all(fds[1], b.p, b.len) : -EBADF;
	tap_is(r, 0, "%s, %s: wrote the blob", cn, size_name);
	if (fds[1] >= 0)
		close(fds[1]);
	r = vdpa_transfer_check(t);
	tap_ok(r == 0, "%s, %s: LOAD check (\"%s\")", cn, size_name,
	       vdpa_transfer_error(t));
	got = vdpa_transfer_take_state(t);
	tap_ok(same_state(b.s, got), "%s, %s: the loaded state is the saved one",
	       cn, size_name);
	tap_ok(vdpa_transfer_take_state(t) == NULL,
	       "%s, %s: the state is taken once", cn, size_name);
	vdpa_state_free(got);
	vdpa_transfer_free(t);
	blob_free(&b);
}

static void test_file(void)
{
	struct vdpa_transfer *t = NULL;
	struct vdpa_state *got;
	char path[512];
	struct stat st;
	struct blob b;
	int fd, rfd = -2, r;

	blob_make(&b, 3u << 20, 11);
	snprintf(path, sizeof(path), "%s/saved.state", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	r = vdpa_transfer_set_fd(SAVE, STOPPED, fd, b.p, b.len, NULL, &t, &rfd);
	tap_ok(fd >= 0 && r == 0 && rfd == -1 &&
	       vdpa_transfer_reply(r, rfd) == 0x100,
	       "file: SAVE into a regular file, no fd returned, reply 0x100");
	if (r < 0) {
		blob_free(&b);
		return;
	}
	tap_is(vdpa_transfer_check(t), 0, "file: SAVE check");
	vdpa_transfer_free(t);
	tap_ok(stat(path, &st) == 0 && (size_t)st.st_size == b.len,
	       "file: %zu bytes on disk", b.len);

	t = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	r = vdpa_transfer_set_fd(LOAD, STOPPED, fd, NULL, 0, NULL, &t, &rfd);
	tap_ok(fd >= 0 && r == 0 && rfd == -1,
	       "file: LOAD from the file, no fd returned");
	if (r < 0) {
		blob_free(&b);
		return;
	}
	r = vdpa_transfer_check(t);
	tap_ok(r == 0, "file: LOAD check (\"%s\")", vdpa_transfer_error(t));
	got = vdpa_transfer_take_state(t);
	tap_ok(same_state(b.s, got), "file: the state loaded from the file is "
	       "the saved one (3 MiB device section byte-exact)");
	vdpa_state_free(got);
	vdpa_transfer_free(t);
	unlink(path);
	blob_free(&b);
}

/* ---- refusals in set_fd ---------------------------------------------------- */

/* After set_fd refused fd: was it closed (the peer sees EOF / an error)? */
static bool peer_sees_close(int ours, bool ours_reads)
{
	struct pollfd p = { .fd = ours, .events = ours_reads ? POLLIN : POLLOUT };
	char c;

	if (poll(&p, 1, 1000) != 1)
		return false;
	if (ours_reads)
		return read(ours, &c, 1) == 0;
	return (p.revents & POLLERR) != 0;
}

static void refused_case(uint32_t dir, uint32_t phase, bool null_blob,
			 bool null_ret, int want, const char *what)
{
	static const char blob[16] = "not really";
	struct vdpa_transfer *t = (struct vdpa_transfer *)&t, *t0 = t;
	int p[2], lib, ours, rfd = -2, r;
	bool lib_writes = dir != LOAD;

	if (pipe2(p, O_CLOEXEC)) {
		tap_ok(0, "%s: pipe", what);
		return;
	}
	lib = lib_writes ? p[1] : p[0];
	ours = lib_writes ? p[0] : p[1];
	r = vdpa_transfer_set_fd(dir, phase, lib, null_blob ? NULL : blob,
				 sizeof(blob), NULL, null_ret ? NULL : &t, &rfd);
	tap_is(r, want, "%s: %s", what, strerror(-want));
	tap_ok(t == t0, "%s: no transfer returned", what);
	tap_is(vdpa_transfer_reply(r, -1), 0x100 | -want,
	       "%s: reply 0x%x", what, 0x100 | -want);
	tap_ok(peer_sees_close(ours, lib_writes),
	       "%s: the passed fd was closed by the library", what);
	close(ours);
	if (r == 0 && t != t0)
		vdpa_transfer_free(t);
}

static void test_refusals(void)
{
	struct vdpa_transfer *t = NULL;
	int rfd = -2, r;

	refused_case(SAVE, 1, false, false, -EOPNOTSUPP, "SAVE in phase 1");
	refused_case(LOAD, 1, false, false, -EOPNOTSUPP, "LOAD in phase 1");
	refused_case(SAVE, 0xffffffffu, false, false, -EOPNOTSUPP,
		     "SAVE in phase 2^32-1");
	refused_case(2, STOPPED, false, false, -EINVAL, "direction 2");
	refused_case(SAVE, STOPPED, true, false, -EINVAL,
		     "SAVE with a NULL blob of 16 bytes");
	refused_case(SAVE, STOPPED, false, true, -EINVAL, "NULL ret_t");
	r = vdpa_transfer_set_fd(LOAD, 1, -1, NULL, 0, NULL, &t, &rfd);
	tap_ok(r == -EOPNOTSUPP && t == NULL,
	       "LOAD in phase 1 with fd -1: EOPNOTSUPP, no pipe made");
	tap_is(vdpa_transfer_check(NULL), -EINVAL, "check(NULL): EINVAL");
	tap_ok(!strcmp(vdpa_transfer_error(NULL), "") &&
	       vdpa_transfer_take_state(NULL) == NULL &&
	       vdpa_transfer_bytes(NULL) == 0,
	       "NULL transfer: empty error, no state, 0 bytes");
	vdpa_transfer_free(NULL);
}

/* ---- a reader that closes early: EPIPE, and the process lives --------------- */

enum early { EARLY_PIPE_BEFORE, EARLY_PIPE_DURING, EARLY_SOCK_BEFORE,
	     EARLY_SOCK_DURING, EARLY_OWN_DURING, EARLY_OWN_BEFORE };

/* In a child with SIGPIPE at its default (death) and unblocked. */
static int early_child(enum early kind, const struct blob *b)
{
	bool sock = kind == EARLY_SOCK_BEFORE || kind == EARLY_SOCK_DURING;
	bool own = kind == EARLY_OWN_DURING || kind == EARLY_OWN_BEFORE;
	bool before = kind == EARLY_PIPE_BEFORE || kind == EARLY_SOCK_BEFORE ||
		      kind == EARLY_OWN_BEFORE;
	struct vdpa_transfer_opts o = { .timeout_ms = 10000 };
	struct vdpa_transfer *t = NULL;
	int p[2] = { -1, -1 }, rfd = -2, fds = tap_count_fds(), r;
	/* a small state fits the pipe: only a closed reader can refuse it */
	size_t len = before && !own ? 4096 : b->len;
	sigset_t set;
	uint8_t *got;

	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	if (!own && (sock ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) :
		     pipe2(p, O_CLOEXEC)))
		return 200;
	if (before && !own)
		close(p[0]);	/* the reader is gone before the transfer */
	r = vdpa_transfer_set_fd(SAVE, STOPPED, own ? -1 : p[1], b->p, len, &o,
				 &t, &rfd);
	if (r < 0)
		return 201;
	if (own)
		p[0] = rfd;
	if (own && before) {
		close(p[0]);
	} else if (!before) {
		/* read a little, then go away */
		if (read_all(p[0], &got, 8192) > 0)
			free(got);
		close(p[0]);
	}
	r = vdpa_transfer_check(t);
	if (!one_line(vdpa_transfer_error(t)))
		r = -200;
	vdpa_transfer_free(t);
	if (tap_count_fds() != fds)
		return 202;
	return r == -200 ? 203 : -r;
}

static void test_early_reader(void)
{
	static const char *const names[] = {
		"pipe, reader closed before set_fd (4 KiB state)",
		"pipe, reader closes after 8 KiB of 1 MiB",
		"socketpair, reader closed before set_fd (4 KiB state)",
		"socketpair, reader closes after 8 KiB of 1 MiB",
		"library's pipe, reader closes after 8 KiB of 1 MiB",
		"library's pipe, reader closes at once (1 MiB)",
	};
	struct blob b;
	int k, st;

	blob_make(&b, 1u << 20, 3);
	for (k = EARLY_PIPE_BEFORE; k <= EARLY_OWN_BEFORE; k++) {
		pid_t pid;

		fflush(stdout);
		pid = fork();
		if (pid == 0)
			_exit(early_child((enum early)k, &b));
		if (pid < 0 || waitpid(pid, &st, 0) != pid) {
			tap_ok(0, "early reader: fork");
			continue;
		}
		if (!tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == EPIPE,
			    "early reader, %s: check EPIPE, one-line error, no "
			    "fd leaked, not killed by SIGPIPE", names[k])) {
			if (WIFSIGNALED(st))
				tap_diag("  the process was killed by signal %d%s",
					 WTERMSIG(st), WTERMSIG(st) == SIGPIPE ?
					 " (SIGPIPE)" : "");
			else
				tap_diag("  exit %d (%s)", WEXITSTATUS(st),
					 WEXITSTATUS(st) >= 200 ? "setup, leak or message" :
					 strerror(WEXITSTATUS(st)));
		}
	}
	blob_free(&b);
}

/* ---- timeouts ------------------------------------------------------------ */

static void test_timeouts(void)
{
	struct vdpa_transfer_opts o = { .timeout_ms = 200 };
	struct vdpa_transfer *t = NULL;
	int p[2], rfd, r;
	double t0, ms;
	struct blob b;

	blob_make(&b, 1u << 20, 5);
	/* LOAD: a writer that sends half and never closes */
	if (pipe2(p, O_CLOEXEC)) {
		tap_ok(0, "pipe");
		blob_free(&b);
		return;
	}
	r = vdpa_transfer_set_fd(LOAD, STOPPED, p[0], NULL, 0, &o, &t, &rfd);
	tap_is(r, 0, "LOAD, writer never closes: set_fd");
	/* half a state really sent: the timeout is not an empty pipe's */
	tap_is(write_all(p[1], b.p, 1000), 0, "LOAD, writer never closes: "
	       "1000 bytes written");
	t0 = now_ms();
	r = vdpa_transfer_check(t);
	ms = now_ms() - t0;
	tap_is(r, -ETIMEDOUT, "LOAD, writer never closes: ETIMEDOUT");
	tap_ok(ms >= 190 && ms < 3000,
	       "LOAD, writer never closes: after %.0f ms (timeout 200 ms)", ms);
	tap_ok(one_line(vdpa_transfer_error(t)) &&
	       strstr(vdpa_transfer_error(t), "200 ms"),
	       "LOAD, writer never closes: \"%s\"", vdpa_transfer_error(t));
	t0 = now_ms();
	r = vdpa_transfer_check(t);
	tap_ok(r == -ETIMEDOUT && now_ms() - t0 < 100,
	       "LOAD: checking again answers the same at once");
	vdpa_transfer_free(t);
	close(p[1]);

	/* SAVE: a reader that never reads 1 MiB */
	t = NULL;
	rfd = -2;
	r = vdpa_transfer_set_fd(SAVE, STOPPED, -1, b.p, b.len, &o, &t, &rfd);
	tap_ok(r == 0 && rfd >= 0, "SAVE, reader never reads: set_fd");
	if (r == 0) {
		t0 = now_ms();
		r = vdpa_transfer_check(t);
		ms = now_ms() - t0;
		tap_ok(r == -ETIMEDOUT && ms >= 190 && ms < 3000,
		       "SAVE, reader never reads: ETIMEDOUT after %.0f ms", ms);
		tap_ok(vdpa_transfer_bytes(t) < b.len,
		       "SAVE, reader never reads: %zu of %zu bytes moved",
		       vdpa_transfer_bytes(t), b.len);
		vdpa_transfer_free(t);
		close(rfd);
	}

	/* free while running, without check: the threads are stopped */
	t = NULL;
	r = vdpa_transfer_set_fd(SAVE, STOPPED, -1, b.p, b.len, NULL, &t, &rfd);
	t0 = now_ms();
	vdpa_transfer_free(r == 0 ? t : NULL);
	tap_ok(r == 0 && now_ms() - t0 < 2000,
	       "SAVE freed while blocked on a full pipe: returns at once");
	if (r == 0)
		close(rfd);
	t = NULL;
	r = vdpa_transfer_set_fd(LOAD, STOPPED, -1, NULL, 0, NULL, &t, &rfd);
	if (r == 0)
		write_all(rfd, b.p, 100);
	t0 = now_ms();
	vdpa_transfer_free(r == 0 ? t : NULL);
	tap_ok(r == 0 && now_ms() - t0 < 2000,
	       "LOAD freed while waiting for an open writer: returns at once");
	if (r == 0)
		close(rfd);
	blob_free(&b);
}

/* ---- LOAD failures surface in check ---------------------------------------- */

/*
 * LOAD data through the library's own pipe, written by a peer thread;
 * returns check()'s result, the error copied to err, any state in *ret.
 */
static int load_bytes(const void *data, size_t len,
		      const struct vdpa_transfer_opts *o, char *err,
		      size_t errlen, struct vdpa_state **ret, size_t *ret_moved)
{
	struct vdpa_transfer *t = NULL;
	struct peer w;
	int rfd = -1, r;

	r = vdpa_transfer_set_fd(LOAD, STOPPED, -1, NULL, 0, o, &t, &rfd);
	if (r < 0) {
		snprintf(err, errlen, "set_fd: %s", strerror(-r));
		return -10000;
	}
	peer_start(&w, rfd, true, data, len);
	r = vdpa_transfer_check(t);
	snprintf(err, errlen, "%s", vdpa_transfer_error(t));
	*ret = vdpa_transfer_take_state(t);
	if (ret_moved)
		*ret_moved = vdpa_transfer_bytes(t);
	vdpa_transfer_free(t);	/* closes the library's end: the peer ends */
	peer_join(&w);
	return r;
}

static void load_refused(const void *data, size_t len,
			 const struct vdpa_transfer_opts *o, int want,
			 const char *needle, const char *what)
{
	struct vdpa_state *s = NULL;
	char err[300];
	int r = load_bytes(data, len, o, err, sizeof(err), &s, NULL);

	if (!tap_ok(r == want && !s && one_line(err) &&
		    (!needle || strstr(err, needle)),
		    "LOAD %s: check %s, \"%s\"", what, strerror(-want), err))
		tap_diag("  got %d, state %p, want message with \"%s\"", r,
			 (void *)s, needle ? needle : "");
	vdpa_state_free(s);
}

static void test_load_failures(void)
{
	struct vdpa_transfer_opts o = { .timeout_ms = 10000 };
	struct vdpa_state *s = NULL, *dst;
	uint8_t *m, garbage[3000];
	size_t i, moved = 0;
	char err[300];
	struct blob b;
	int r;

	blob_make(&b, 20000, 9);
	m = xmalloc(b.len);
	for (i = 0; i < sizeof(garbage); i++)
		garbage[i] = (uint8_t)(i * 131 + 7);
	load_refused(garbage, sizeof(garbage), &o, -EBADMSG, "magic", "garbage");
	load_refused(b.p, 0, &o, -ENODATA, "empty", "nothing (writer closes at once)");
	load_refused(b.p, b.len / 2, &o, -EBADMSG, "truncated", "truncated to half");
	load_refused(b.p, b.len - 1, &o, -EBADMSG, NULL, "one byte short");
	memcpy(m, b.p, b.len);
	m[b.len / 2] ^= 0x04;
	load_refused(m, b.len, &o, -EBADMSG, "crc", "one bit flipped");
	memcpy(m, b.p, b.len);
	m[OFF_VERSION] = 2;
	fix_crc(m, b.len);
	load_refused(m, b.len, &o, -EPROTONOSUPPORT, "version", "format version 2");

	/* the cap: at it passes, one below is EFBIG, far below stops reading */
	o.cap = b.len;
	r = load_bytes(b.p, b.len, &o, err, sizeof(err), &s, NULL);
	tap_ok(r == 0 && same_state(b.s, s), "LOAD with cap equal to the "
	       "length: loads (\"%s\")", err);
	vdpa_state_free(s);
	o.cap = b.len - 1;
	load_refused(b.p, b.len, &o, -EFBIG, NULL, "one byte beyond the cap");
	o.cap = 4096;
	s = NULL;
	r = load_bytes(b.p, b.len, &o, err, sizeof(err), &s, &moved);
	tap_ok(r == -EFBIG && !s && one_line(err) && moved <= 4097,
	       "LOAD of %zu bytes with a 4 KiB cap: EFBIG after reading %zu "
	       "bytes (\"%s\")", b.len, moved, err);
	vdpa_state_free(s);
	o.cap = 0;

	/* compatibility with the destination's description */
	dst = describe_like(b.s);
	o.compat_with = dst;
	s = NULL;
	r = load_bytes(b.p, b.len, &o, err, sizeof(err), &s, NULL);
	tap_ok(r == 0 && same_state(b.s, s),
	       "LOAD with compat_with a matching description: loads");
	vdpa_state_free(s);
	dst->cfg.mtu = 9000;
	load_refused(b.p, b.len, &o, -EPROTO, "mtu: source 1500, destination 9000",
		     "compat_with mtu 9000");
	dst->cfg.mtu = 1500;
	dst->cfg.mac[0] = 2;
	load_refused(b.p, b.len, &o, -EPROTO,
		     "mac: source 00:11:22:33:44:55, destination 02:11:22:33:44:55",
		     "compat_with another mac");
	vdpa_state_free(dst);
	free(m);
	blob_free(&b);
}

/* ---- big states ------------------------------------------------------------ */

static void test_16m(void)
{
	struct vdpa_transfer_opts o = { .timeout_ms = 60000 };
	struct vdpa_transfer *t = NULL;
	struct vdpa_state *got = NULL;
	struct peer w;
	uint8_t *rx = NULL;
	struct blob b;
	int rfd = -1, r;
	ssize_t n;

	blob_make(&b, 16u << 20, 16);
	r = vdpa_transfer_set_fd(SAVE, STOPPED, -1, b.p, b.len, &o, &t, &rfd);
	tap_ok(r == 0 && rfd >= 0, "16 MiB: SAVE set_fd, library's pipe");
	if (r < 0) {
		blob_free(&b);
		return;
	}
	n = read_all(rfd, &rx, 0);
	close(rfd);
	tap_ok(n == (ssize_t)b.len && !memcmp(rx, b.p, b.len),
	       "16 MiB: %zd bytes read, the blob exactly", n);
	tap_is(vdpa_transfer_check(t), 0, "16 MiB: SAVE check");
	vdpa_transfer_free(t);

	t = NULL;
	r = vdpa_transfer_set_fd(LOAD, STOPPED, -1, NULL, 0, &o, &t, &rfd);
	tap_ok(r == 0 && rfd >= 0, "16 MiB: LOAD set_fd");
	if (r < 0) {
		free(rx);
		blob_free(&b);
		return;
	}
	peer_start(&w, rfd, true, rx, n > 0 ? (size_t)n : 0);
	r = vdpa_transfer_check(t);
	tap_ok(r == 0, "16 MiB: LOAD check (\"%s\")", vdpa_transfer_error(t));
	tap_is(peer_join(&w), 0, "16 MiB: the writer wrote it all");
	got = vdpa_transfer_take_state(t);
	tap_ok(got && got->device_len == b.s->device_len &&
	       !memcmp(got->device, b.s->device, b.s->device_len),
	       "16 MiB: the device section arrives byte-exact");
	tap_ok(same_state(b.s, got), "16 MiB: the whole state is equal");
	vdpa_state_free(got);
	vdpa_transfer_free(t);
	free(rx);
	blob_free(&b);
}

static void test_8m_no_deadlock(void)
{
	struct vdpa_transfer_opts o = { .timeout_ms = 60000 };
	struct vdpa_transfer *ts = NULL, *tl = NULL;
	struct vdpa_state *got;
	int p[2], rfd = -2, lfd = -2, r;
	struct peer rd;
	double t0, ms;
	struct blob b;

	blob_make(&b, 8u << 20, 8);
	if (pipe2(p, O_CLOEXEC)) {
		tap_ok(0, "pipe");
		blob_free(&b);
		return;
	}
	/* nobody reads yet: set_fd must not block on the full pipe */
	t0 = now_ms();
	r = vdpa_transfer_set_fd(SAVE, STOPPED, p[1], b.p, b.len, &o, &ts, &rfd);
	ms = now_ms() - t0;
	tap_ok(r == 0 && ms < 1000, "8 MiB: SAVE set_fd returns before anyone "
	       "reads (%.0f ms)", ms);
	if (r < 0) {
		close(p[0]);
		blob_free(&b);
		return;
	}
	peer_start(&rd, p[0], false, NULL, 0);
	r = vdpa_transfer_check(ts);
	tap_is(r, 0, "8 MiB: SAVE check while a thread reads");
	tap_ok(peer_join(&rd) == (ssize_t)b.len && !memcmp(rd.got, b.p, b.len),
	       "8 MiB: the reader thread got the blob exactly");
	free(rd.got);
	vdpa_transfer_free(ts);

	/* the library on both ends: SAVE's read end handed to LOAD */
	ts = NULL;
	r = vdpa_transfer_set_fd(SAVE, STOPPED, -1, b.p, b.len, &o, &ts, &rfd);
	tap_ok(r == 0 && rfd >= 0, "8 MiB, SAVE to LOAD: SAVE set_fd");
	if (r < 0) {
		blob_free(&b);
		return;
	}
	r = vdpa_transfer_set_fd(LOAD, STOPPED, rfd, NULL, 0, &o, &tl, &lfd);
	tap_ok(r == 0 && lfd == -1, "8 MiB, SAVE to LOAD: LOAD set_fd on it");
	t0 = now_ms();
	r = r == 0 ? vdpa_transfer_check(tl) : r;
	tap_ok(r == 0, "8 MiB, SAVE to LOAD: LOAD check (\"%s\")",
	       vdpa_transfer_error(tl));
	tap_is(vdpa_transfer_check(ts), 0, "8 MiB, SAVE to LOAD: SAVE check");
	ms = now_ms() - t0;
	got = vdpa_transfer_take_state(tl);
	tap_ok(same_state(b.s, got), "8 MiB, SAVE to LOAD: equal state, %.0f ms",
	       ms);
	vdpa_state_free(got);
	vdpa_transfer_free(tl);
	vdpa_transfer_free(ts);
	blob_free(&b);
}

/*
 * A LOAD over the cap while the caller writes from the same thread: the
 * library closes its end when it gives up, so the write ends in EPIPE
 * instead of blocking on a full pipe forever (alarm: a hang fails).
 */
static void test_cap_same_thread(void)
{
	struct vdpa_transfer_opts o = { .cap = 1u << 20 };
	struct vdpa_transfer *t = NULL;
	sigset_t set, old;
	struct blob b;
	int wfd = -1, r, w;

	blob_make(&b, 4u << 20, 11);
	r = vdpa_transfer_set_fd(LOAD, STOPPED, -1, NULL, 0, &o, &t, &wfd);
	if (!tap_ok(r == 0 && wfd >= 0, "cap, same thread: set_fd")) {
		blob_free(&b);
		return;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	alarm(20);
	w = write_all(wfd, b.p, b.len);
	alarm(0);
	close(wfd);
	{
		struct timespec zero = { 0, 0 };

		sigtimedwait(&set, NULL, &zero);	/* the EPIPE's signal */
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	tap_is(w, -EPIPE, "cap, same thread: the writer gets EPIPE, no hang");
	tap_is(vdpa_transfer_check(t), -EFBIG, "cap, same thread: CHECK EFBIG");
	vdpa_transfer_free(t);
	blob_free(&b);
}

/* CHECK after the state was taken still reports the transfer's result. */
static void test_check_twice(void)
{
	struct vdpa_transfer *t = NULL;
	struct vdpa_state *s;
	struct blob b;
	int wfd = -1, r;

	blob_make(&b, 1000, 12);
	r = vdpa_transfer_set_fd(LOAD, STOPPED, -1, NULL, 0, NULL, &t, &wfd);
	if (!tap_ok(r == 0, "check twice: set_fd")) {
		blob_free(&b);
		return;
	}
	write_all(wfd, b.p, b.len);
	close(wfd);
	tap_is(vdpa_transfer_check(t), 0, "check twice: first CHECK");
	s = vdpa_transfer_take_state(t);
	tap_ok(s != NULL, "check twice: state taken");
	tap_is(vdpa_transfer_check(t), 0, "check twice: CHECK again is still 0");
	tap_ok(vdpa_transfer_take_state(t) == NULL, "check twice: taken once");
	vdpa_state_free(s);
	vdpa_transfer_free(t);
	blob_free(&b);
}

#define CASE(fn, ...) do {						\
		int fds_ = tap_count_fds();				\
		fn(__VA_ARGS__);					\
		tap_is(tap_count_fds(), fds_, "%s: no fd leaked", #fn	\
		       "(" #__VA_ARGS__ ")");				\
	} while (0)

int main(void)
{
	int fds0, r;

	tap_need_fd_count();
	fds0 = tap_count_fds();
	r = tu_mkdtemp(tmpdir, sizeof(tmpdir));
	if (r < 0) {
		printf("# mkdtemp: %s\n", strerror(-r));
		tap_skip_all("no temporary directory");
	}
	CASE(test_reply);
	CASE(save_load, CH_PIPE, 3000, "small");
	CASE(save_load, CH_PIPE, 1u << 20, "1 MiB");
	CASE(save_load, CH_SOCKET, 3000, "small");
	CASE(save_load, CH_SOCKET, 1u << 20, "1 MiB");
	CASE(save_load, CH_OWN, 3000, "small");
	CASE(save_load, CH_OWN, 1u << 20, "1 MiB");
	CASE(test_file);
	CASE(test_refusals);
	CASE(test_early_reader);
	CASE(test_timeouts);
	CASE(test_load_failures);
	CASE(test_16m);
	CASE(test_8m_no_deadlock);
	CASE(test_cap_same_thread);
	CASE(test_check_twice);
	tu_rmtree(tmpdir);
	tap_is(tap_count_fds(), fds0, "no fd leaked overall");
	return tap_done();
}
