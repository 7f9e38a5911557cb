// SPDX-License-Identifier: MIT
/*
 * `vdpa-user serve` driven by a small vhost-user front-end: vdpa-sim and
 * the back-end run as real processes, guest memory is a memfd shared with
 * them, the rings are this test's own. Setup and verified traffic (net
 * loopback frames, blk stamped blocks), GET_VRING_BASE stopping a ring,
 * blk's cache flushed at the stop, state saved (42/43) and loaded into a
 * second back-end with traffic continuing there, guest memory at a
 * non-zero mmap_offset, dirty logging through the relay (both switches
 * with 100 frames in flight, against a passthrough control, on the
 * default simulator and its 6.12 personality), and every bad input of
 * issue 8 section 4 with the back-end's open-fd count flat and the device
 * usable by the next front-end. The front-end: tests/util/vu-front.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/vhost_types.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "tap.h"
#include "testutil.h"
#include "vu-front.h"

/* ---- the wire -------------------------------------------------------- */

/* Is the connection closed by the back-end (EOF within 2 s)? */
static bool closed_by_peer(int s)
{
	struct pollfd p = { s, POLLIN, 0 };
	char c;

	ssize_t n;

	if (poll(&p, 1, 2000) != 1)
		return false;
	n = recv(s, &c, 1, MSG_DONTWAIT);
	/* unread data on the back-end's side makes its close a reset */
	if (n < 0 && errno != ECONNRESET)
		tap_diag("  recv after the close: %s", strerror(errno));
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* ---- processes ------------------------------------------------------- */

static char tdir[PATH_MAX];

static void backend_stop(struct backend *b)
{
	/* 99: valgrind found an error or a leak (SERVE_VALGRIND) */
	tap_is(backend_end(b), 0, "%s: serve exited cleanly on SIGTERM",
	       b->log);
}

/* ---- guest memory and rings ----------------------------------------- */

/*
 * One chain in slot (avail_idx % QSZ): descriptors 2*slot (out) and
 * 2*slot+1 (in), each may be empty (len 0: not used).
 */
static void ring_add(struct guest *g, struct ring *r, const void *out,
		     uint32_t out_len, uint32_t in_len)
{
	uint16_t slot = r->avail_idx % (QSZ / 2), head = 2 * slot;
	uint8_t *ob = r->bufs + (size_t)head * BUF_SIZE;
	uint8_t *ib = ob + BUF_SIZE;
	struct vring_desc *d = &r->desc[head];

	if (out_len) {
		memcpy(ob, out, out_len);
		d->addr = gpa(g, ob);
		d->len = out_len;
		d->flags = in_len ? VRING_DESC_F_NEXT : 0;
		d->next = head + 1;
		if (in_len) {
			d[1].addr = gpa(g, ib);
			d[1].len = in_len;
			d[1].flags = VRING_DESC_F_WRITE;
		}
	} else {
		memset(ib, 0, in_len);
		d->addr = gpa(g, ib);
		d->len = in_len;
		d->flags = VRING_DESC_F_WRITE;
	}
	r->avail->ring[r->avail_idx % QSZ] = head;
	r->avail_idx++;
	__atomic_store_n(&r->avail->idx, r->avail_idx, __ATOMIC_RELEASE);
}

static uint8_t *in_buf(struct ring *r, uint16_t head)
{
	/* out-only chains have head even; in-only (rx) head even too */
	return r->bufs + (size_t)head * BUF_SIZE + (head % 2 ? 0 : BUF_SIZE);
}

static const uint8_t dev_mac[6] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55 };
#define HDR_LEN		12u	/* virtio_net_hdr_v1 */
#define FRAME_LEN	128u

static void make_frame(uint8_t *b, uint32_t seq)
{
	uint32_t i;

	memset(b, 0, HDR_LEN);
	memcpy(b + HDR_LEN, dev_mac, 6);
	memcpy(b + HDR_LEN + 6, "\x02\x00\x00\x00\x00\x01", 6);
	b[HDR_LEN + 12] = 0x88;
	b[HDR_LEN + 13] = 0xb5;
	memcpy(b + HDR_LEN + 14, &seq, 4);
	for (i = HDR_LEN + 18; i < HDR_LEN + FRAME_LEN; i++)
		b[i] = (uint8_t)(seq * 31 + i);
}

static bool frame_ok(const uint8_t *b, uint32_t len, uint32_t *seq)
{
	uint8_t want[HDR_LEN + FRAME_LEN];

	if (len != HDR_LEN + FRAME_LEN)
		return false;
	memcpy(seq, b + HDR_LEN + 14, 4);
	make_frame(want, *seq);
	return !memcmp(b + HDR_LEN, want + HDR_LEN, FRAME_LEN);
}

struct tally {
	uint32_t sent, got, dup, bad;
	uint8_t seen[1 << 16];
};

/* Keep rx filled: buffers posted up to QSZ/2 outstanding. */
static void rx_fill(struct fe *f)
{
	struct ring *rx = &f->r[0];

	while ((uint16_t)(rx->avail_idx - rx->last_used) < QSZ / 2)
		ring_add(f->g, rx, NULL, 0, HDR_LEN + BUF_SIZE - 64);
	ring_kick(rx);
}

/* Drain what came back; count completions of tx too. */
static void net_reap(struct fe *f, struct tally *t, int ms)
{
	uint16_t head;
	uint32_t len, seq;

	while (ring_used(&f->r[1], 0, &head, &len) == 1)
		;
	while (ring_used(&f->r[0], ms, &head, &len) == 1) {
		if (!frame_ok(in_buf(&f->r[0], head), len, &seq) ||
		    seq >= sizeof(t->seen))
			t->bad++;
		else if (t->seen[seq]++)
			t->dup++;
		else
			t->got++;
		ms = 0;
	}
}

/*
 * Room for n more frames: every frame not back yet needs an rx buffer the
 * front-end posted and has not reaped. Counting tx completions is not
 * enough: Linux's vdpa_sim completes a frame's tx before its rx, so a tx
 * slot can be reaped and refilled while the frame still holds an rx
 * buffer rx_fill() counts as free, and the device drops a frame it finds
 * no rx buffer for (rx overrun): one frame short, now and then, on 6.12.
 */
static bool net_room(const struct fe *f, const struct tally *t, uint32_t n)
{
	uint32_t out = t->sent - t->got - t->bad - t->dup;

	return out + n <= (uint16_t)(f->r[0].avail_idx - f->r[0].last_used);
}

/* count frames sent with sequence numbers from t->sent on; all back? */
static void net_traffic(struct fe *f, struct tally *t, uint32_t count)
{
	uint8_t fr[HDR_LEN + FRAME_LEN];
	uint32_t end = t->sent + count;
	int idle = 0, stuck = 0;

	while (t->sent < end && stuck < 2000) {
		uint32_t burst = 32, before = t->sent + t->got;

		rx_fill(f);
		while (burst-- && t->sent < end && net_room(f, t, 1) &&
		       (uint16_t)(f->r[1].avail_idx - f->r[1].last_used) <
		       QSZ / 2) {
			make_frame(fr, t->sent++);
			ring_add(f->g, &f->r[1], fr, sizeof(fr), 0);
		}
		ring_kick(&f->r[1]);
		net_reap(f, t, 1);
		/* a device that stopped moving: give up after ~2 s */
		stuck = t->sent + t->got == before ? stuck + 1 : 0;
	}
	while (t->got + t->bad + t->dup < t->sent && idle < 500) {
		uint32_t before = t->got;

		rx_fill(f);
		net_reap(f, t, 1);
		idle = t->got == before ? idle + 1 : 0;
	}
}

/*
 * n frames published and not waited for, the first `kicked` of them
 * kicked (the rest are only in the ring: whoever owns it next must find
 * them). A TX slot is free only once its completion is reaped, and TX
 * completions may trail the RX ones that ended the last net_traffic():
 * reap them first, waiting up to ~1 s for room. Returns how many were
 * published, for the caller to check: a burst cut short must not pass
 * for frames lost (nor hide frames lost behind a smaller burst).
 */
static uint32_t send_only(struct fe *f, struct tally *t, uint32_t n,
			  uint32_t kicked)
{
	struct ring *tx = &f->r[1];
	uint8_t fr[HDR_LEN + FRAME_LEN];
	uint32_t len, sent = 0;
	uint16_t head;
	int ms;

	while (ring_used(tx, 0, &head, &len) == 1)
		;
	for (ms = 0; ms < 1000 && (uint16_t)(tx->avail_idx - tx->last_used) +
	     n > QSZ / 2; ms++)
		ring_used(tx, 1, &head, &len);
	rx_fill(f);
	/* as many rx buffers out as frames: none may overrun for want of one */
	if (!net_room(f, t, n))
		return 0;
	while (sent < n && (uint16_t)(tx->avail_idx - tx->last_used) <
	       QSZ / 2) {
		make_frame(fr, t->sent++);
		ring_add(f->g, tx, fr, sizeof(fr), 0);
		if (++sent != kicked)
			continue;
		ring_kick(tx);
		/*
		 * the kicked ones taken, the rest is published unseen: left
		 * in the ring at a switch that follows at once
		 */
		if (kicked < n)
			usleep(5000);
	}
	return sent;
}

/* ---- tests ------------------------------------------------------------ */

static struct guest G;

static int fe_open(struct fe *f, const struct backend *b, uint64_t proto,
		   bool fresh_rings)
{
	unsigned int i;

	memset(f, 0, sizeof(*f));
	f->g = &G;
	f->nrings = 2;
	f->s = fe_connect(b);
	if (f->s < 0)
		return -1;
	if (fresh_rings)
		for (i = 0; i < 2; i++)
			if (ring_init(&G, &f->r[i]) < 0)
				return -1;
	return fe_negotiate(f, proto);
}

static void fe_close(struct fe *f, bool rings)
{
	if (f->s >= 0)
		close(f->s);
	f->s = -1;
	if (rings) {
		ring_fini(&f->r[0]);
		ring_fini(&f->r[1]);
	}
}

#define ALL_PROTO (PF_MQ | PF_REPLY_ACK | PF_CONFIG | PF_DEVICE_STATE | \
		   PF_LOG_SHMFD)

static void test_net_traffic(struct backend *a, struct fe *f)
{
	struct tally *t = calloc(1, sizeof(*t));
	uint64_t qn = 0;

	tap_ok(fe_open(f, a, ALL_PROTO, true) == 0, "net: connect and "
	       "negotiate (REPLY_ACK, DEVICE_STATE, LOG_SHMFD offered)");
	tap_ok(f->proto == ALL_PROTO, "net: protocol features 0x%llx "
	       "all offered", (unsigned long long)f->proto);
	tap_is(get_u64(f->s, GET_QUEUE_NUM, &qn), 0, "net: GET_QUEUE_NUM");
	tap_is(qn, 1, "net: 1 queue pair");
	tap_ok(fe_start(f, NULL) == 0, "net: memory, rings, enable");
	net_traffic(f, t, 2000);
	tap_ok(t->got == 2000 && !t->dup && !t->bad, "net: 2000 frames "
	       "looped back through the device, each once and intact "
	       "(got %u dup %u bad %u)", t->got, t->dup, t->bad);
	free(t);
}

static void test_stop(struct fe *f, uint16_t *bases)
{
	uint8_t fr[HDR_LEN + FRAME_LEN];
	uint16_t head;
	uint32_t len;
	int r0, r1;

	uint16_t used_before;

	/* completions the traffic left unread */
	while (ring_used(&f->r[1], 0, &head, &len) == 1)
		;
	r0 = get_vring_base(f->s, 0, &bases[0]);
	r1 = get_vring_base(f->s, 1, &bases[1]);
	tap_ok(!r0 && !r1, "GET_VRING_BASE answered for both rings");
	tap_is(bases[1], f->r[1].avail_idx, "tx base is every frame sent");
	tap_is(bases[0], f->r[0].last_used, "rx base is every buffer used");
	/* stopped: a new frame is not taken */
	used_before = __atomic_load_n(&f->r[1].used->idx, __ATOMIC_ACQUIRE);
	make_frame(fr, 60000);
	ring_add(f->g, &f->r[1], fr, sizeof(fr), 0);
	ring_kick(&f->r[1]);
	usleep(300000);
	tap_is(__atomic_load_n(&f->r[1].used->idx, __ATOMIC_ACQUIRE),
	       used_before, "after GET_VRING_BASE the device does not touch "
	       "the ring (used index unchanged 300 ms after a kick)");
}

static void test_migrate(struct backend *a, struct fe *f)
{
	static const char *const sim_args[] = { "--type", "net", NULL };
	static const char *const mtu_args[] = { "--type", "net", "--mtu",
						"9000", NULL };
	struct tally *t = calloc(1, sizeof(*t));
	struct backend b, c;
	struct fe fb, fc;
	uint16_t bases[2];
	void *blob = NULL;
	size_t len = 0;
	uint64_t reply = 0;
	uint8_t *bad;

	test_stop(f, bases);
	tap_is(save_state(f->s, &blob, &len, &reply), 0, "42 SAVE sent, "
	       "pipe read to EOF");
	tap_is(reply, 0x100, "42 SAVE: reply 0x100 (ok, no fd returned)");
	tap_ok(len > 16, "42 SAVE: %zu bytes of state", len);
	tap_is(check_state(f->s), 0, "43 after SAVE: 0");
	tap_ok(log_has(a, "CHECK_DEVICE_STATE: SAVE ok"), "source log says "
	       "SAVE + CHECK");
	tap_ok(stats_get(a, "state_saves") == 1 &&
	       stats_get(a, "save_checks_ok") == 1 &&
	       stats_get(a, "check_failures") == 0 &&
	       stats_get(a, "stops") == 1 &&
	       stats_get(a, "t_get_vring_base_ns") > 0 &&
	       stats_get(a, "t_state_fd_ns") >=
	       stats_get(a, "t_get_vring_base_ns") &&
	       stats_get(a, "t_check_ns") >= stats_get(a, "t_state_fd_ns"),
	       "source --stats: 1 stop, 1 SAVE, its CHECK ok, in that order");

	/* a destination with another MTU refuses the state at CHECK */
	tap_ok(backend_start(&c, "mtu", mtu_args) == 0, "destination with "
	       "MTU 9000 started");
	tap_ok(fe_open(&fc, &c, ALL_PROTO, false) == 0, "connected to it");
	tap_ok(load_state(fc.s, blob, len, &reply) > 0 && reply == 0x100,
	       "43 on an MTU-9000 destination: non-zero (incompatible)");
	tap_ok(log_has(&c, "mtu"), "its log names the mtu");
	tap_ok(stats_get(&c, "state_loads") == 1 &&
	       stats_get(&c, "load_checks_ok") == 0 &&
	       stats_get(&c, "check_failures") == 1, "its --stats: 1 LOAD, "
	       "its CHECK failed");
	fe_close(&fc, false);
	backend_stop(&c);

	/* a corrupted blob is refused at CHECK too */
	tap_ok(backend_start(&b, "dst", sim_args) == 0, "destination "
	       "back-end started");
	tap_ok(fe_open(&fb, &b, ALL_PROTO, false) == 0, "connected to it");
	bad = malloc(len);
	memcpy(bad, blob, len);
	bad[len / 2] ^= 0x40;
	tap_ok(load_state(fb.s, bad, len, &reply) > 0, "43 with a corrupted "
	       "blob: non-zero");
	free(bad);
	tap_ok(load_state(fb.s, blob, len, &reply) == 0 && reply == 0x100,
	       "42 LOAD + 43 of the saved state: 0");
	/* the same rings continue on the destination */
	fb.r[0] = f->r[0];
	fb.r[1] = f->r[1];
	fb.features = f->features;
	tap_ok(fe_start(&fb, bases) == 0, "destination rings started at the "
	       "source's bases");
	tap_ok(log_has(&b, "device started from the loaded state"),
	       "destination started the device from the loaded state");
	tap_ok(stats_get(&b, "state_loads") == 2 &&
	       stats_get(&b, "load_checks_ok") == 1 &&
	       stats_get(&b, "check_failures") == 1 &&
	       stats_get(&b, "t_check_ns") > stats_get(a, "t_check_ns"),
	       "destination --stats: 2 LOADs, 1 CHECK ok and 1 refused, "
	       "checked after the source's CHECK (%lld ns later)",
	       stats_get(&b, "t_check_ns") - stats_get(a, "t_check_ns"));
	/* the frame queued while stopped goes now */
	net_traffic(&fb, t, 1000);
	tap_ok(t->seen[60000] == 1, "the frame queued while the source was "
	       "stopped arrived once, from the destination");
	tap_ok(t->got == 1001 && !t->dup && !t->bad, "traffic continues on "
	       "the destination: 1000 frames more, each once and intact (got "
	       "%u dup %u bad %u)", t->got, t->dup, t->bad);
	fe_close(&fb, false);
	fe_close(f, true);
	backend_stop(&b);
	free(blob);
	free(t);
}

/* ---- blk --------------------------------------------------------------- */

struct blkreq {
	struct virtio_blk_outhdr h;
	uint8_t data[512];
};

static void test_blk(void)
{
	char backing[PATH_MAX + 16];
	const char *args[] = { "--type", "blk", "--cache", "writeback",
			       "--backing", backing, NULL };
	struct backend b;
	struct fe f;
	uint8_t buf[512], want[512], disk[512];
	uint16_t base = 0;
	int i, fd, wrong = 0, bad_read = 0, ondisk = 0;

	snprintf(backing, sizeof(backing), "%s/disk.img", tdir);
	fd = open(backing, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 16 << 20) < 0) {
		tap_ok(0, "blk: backing file");
		return;
	}
	tap_ok(backend_start(&b, "blk", args) == 0, "blk: write-back sim and "
	       "serve started");
	memset(&f, 0, sizeof(f));
	f.g = &G;
	f.nrings = 1;
	f.s = fe_connect(&b);
	tap_ok(f.s >= 0 && ring_init(&G, &f.r[0]) == 0 &&
	       fe_negotiate(&f, ALL_PROTO) == 0 && fe_start(&f, NULL) == 0,
	       "blk: setup");
	for (i = 0; i < 64; i++) {
		/* the second half through the relay (LOG_ALL, as migrating) */
		if (i == 32) {
			struct { uint64_t size, off; } l = { 4096, 0 };
			int lfd = memfd_create("log", MFD_CLOEXEC);
			uint64_t v = ~0ULL;

			tap_ok(lfd >= 0 && ftruncate(lfd, 4096) == 0 &&
			       send_msg(f.s, SET_LOG_BASE, 0, &l, sizeof(l),
					&lfd, 1) == 0 &&
			       recv_reply(f.s, SET_LOG_BASE, &v, 8, NULL,
					  NULL) == 1 && v == 0 &&
			       set_u64(f.s, SET_FEATURES,
				       f.features | F_LOG_ALL) == 0,
			       "blk: LOG_ALL on after 32 writes (relay)");
			close(lfd);
		}
		stamp(buf, 100 + i);
		if (blk_io(&f, VIRTIO_BLK_T_OUT, 100 + i, buf) != 0)
			wrong++;
	}
	tap_is(wrong, 0, "blk: 64 stamped blocks written");
	for (i = 0; i < 64; i++) {
		stamp(want, 100 + i);
		if (blk_io(&f, VIRTIO_BLK_T_IN, 100 + i, buf) != 0 ||
		    memcmp(buf, want, 512))
			bad_read++;
	}
	tap_is(bad_read, 0, "blk: 64 blocks read back and verified");
	for (i = 0; i < 64; i++) {
		stamp(want, 100 + i);
		if (pread(fd, disk, 512, (100 + i) * 512) == 512 &&
		    !memcmp(disk, want, 512))
			ondisk++;
	}
	tap_is(ondisk, 0, "blk: before the stop the blocks sit in the "
	       "device's write-back cache, not on the disk");
	tap_is(get_vring_base(f.s, 0, &base), 0, "blk: GET_VRING_BASE while "
	       "relaying");
	tap_is(base, f.r[0].avail_idx, "blk: stopped after every request");
	ondisk = 0;
	for (i = 0; i < 64; i++) {
		stamp(want, 100 + i);
		if (pread(fd, disk, 512, (100 + i) * 512) == 512 &&
		    !memcmp(disk, want, 512))
			ondisk++;
	}
	tap_is(ondisk, 64, "blk: once GET_VRING_BASE is answered, all 64 "
	       "blocks are on the disk (cache flushed)");
	tap_ok(log_has(&b, "write-back cache flushed"), "blk: the log says "
	       "so");
	fe_close(&f, true);
	backend_stop(&b);
	close(fd);
}

/* ---- bad input -------------------------------------------------------- */

/* A connected front-end with REPLY_ACK (and memory, rings sized). */
static int bad_open(struct fe *f, const struct backend *b, bool mem)
{
	memset(f, 0, sizeof(*f));
	f->g = &G;
	f->s = fe_connect(b);
	if (f->s < 0 || fe_negotiate(f, ALL_PROTO) < 0)
		return -1;
	if (set_u64(f->s, SET_FEATURES, f->features) != 0)
		return -1;
	if (mem && fe_mem_table(f) != 0)
		return -1;
	return 0;
}

enum outcome { NACK, CLOSED };

struct bad {
	const char *name;
	enum outcome want;
	/* sends the bad message; returns the ack or -1 if closed */
	long long (*fn)(struct fe *f);
};

static int efd(void)
{
	return eventfd(0, EFD_CLOEXEC);
}

/* send a raw message, expect the connection closed: returns -1 then */
static long long raw(struct fe *f, uint32_t req, uint32_t flags,
		     const void *p, uint32_t size, int nfds)
{
	int fds[16] = { -1 }, i;
	long long r;

	for (i = 0; i < nfds; i++)
		fds[i] = efd();
	r = send_msg(f->s, req, flags, p, size, fds, nfds);
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	if (r < 0)
		return -1;
	return closed_by_peer(f->s) ? -1 : 0;
}

static long long b_big_size(struct fe *f)
{
	struct hdr h = { SET_FEATURES, 1, 8192 };

	if (send(f->s, &h, sizeof(h), MSG_NOSIGNAL) != sizeof(h))
		return -1;
	return closed_by_peer(f->s) ? -1 : 0;
}

static long long b_short_payload(struct fe *f)
{
	uint64_t v = 0;
	struct hdr h = { SET_FEATURES, 1, 64 };

	/* size says 64, 8 come and the sender shuts down */
	if (send(f->s, &h, sizeof(h), MSG_NOSIGNAL) != sizeof(h) ||
	    send(f->s, &v, sizeof(v), MSG_NOSIGNAL) != sizeof(v))
		return -1;
	shutdown(f->s, SHUT_WR);
	return closed_by_peer(f->s) ? -1 : 0;
}

static long long b_version(struct fe *f)
{
	uint64_t v = 0;
	struct hdr h = { SET_FEATURES, 2, 8 };
	char b[20];

	memcpy(b, &h, 12);
	memcpy(b + 12, &v, 8);
	if (send(f->s, b, 20, MSG_NOSIGNAL) != 20)
		return -1;
	return closed_by_peer(f->s) ? -1 : 0;
}

static long long b_reply_bit(struct fe *f)
{
	uint64_t v = f->features;

	return raw(f, SET_FEATURES, 4, &v, 8, 0);
}

static long long b_flags(struct fe *f)
{
	uint64_t v = f->features;

	return raw(f, SET_FEATURES, 0x100, &v, 8, 0);
}

static long long b_unknown(struct fe *f)
{
	return ack_call(f->s, 77, NULL, 0, NULL, 0);
}

static long long b_unknown_fds(struct fe *f)
{
	int fds[2] = { efd(), efd() };
	long long r = ack_call(f->s, SEND_RARP, "\1\2\3\4\5\6\0\0", 8, fds, 2);

	close(fds[0]);
	close(fds[1]);
	return r;
}

static long long b_fd_on_none(struct fe *f)
{
	uint64_t v = f->features;

	return raw(f, SET_FEATURES, NEED_REPLY, &v, 8, 1);
}

static long long b_fds_wrong_count(struct fe *f)
{
	struct {
		uint32_t n, pad;
		struct region r;
	} m = { 1, 0, { MEM_GPA, MEM_SIZE, va(f->g->base), 0 } };

	return raw(f, SET_MEM_TABLE, NEED_REPLY, &m, sizeof(m), 3);
}

static long long b_ctrunc(struct fe *f)
{
	uint64_t v = f->features;

	/* 12 fds: more than the 8 one message may carry */
	return raw(f, SET_FEATURES, NEED_REPLY, &v, 8, 12);
}

static long long mem_table(struct fe *f, struct region *r, unsigned int n,
			   int fd)
{
	struct {
		uint32_t n, pad;
		struct region r[2];
	} m = { n, 0, { r[0], n > 1 ? r[1] : r[0] } };
	int fds[2] = { fd, fd };

	return ack_call(f->s, SET_MEM_TABLE, &m,
			8 + n * (uint32_t)sizeof(struct region), fds, (int)n);
}

static long long b_mem_empty(struct fe *f)
{
	struct region r = { MEM_GPA, 0, va(f->g->base), 0 };

	return mem_table(f, &r, 1, f->g->memfd);
}

static long long b_mem_overlap(struct fe *f)
{
	struct region r[2] = {
		{ MEM_GPA, MEM_SIZE / 2, va(f->g->base), 0 },
		{ MEM_GPA + 4096, MEM_SIZE / 2, va(f->g->base) + MEM_SIZE / 2,
		  0 },
	};

	return mem_table(f, r, 2, f->g->memfd);
}

static long long b_mem_overflow(struct fe *f)
{
	struct region r = { ~0ULL - 4095, 8192, va(f->g->base), 0 };

	return mem_table(f, &r, 1, f->g->memfd);
}

static long long b_mem_past_fd(struct fe *f)
{
	struct region r = { MEM_GPA, 2 * (uint64_t)MEM_SIZE, va(f->g->base),
			    0 };

	return mem_table(f, &r, 1, f->g->memfd);
}

static long long b_mem_off_past_fd(struct fe *f)
{
	struct region r = { MEM_GPA, MEM_SIZE, va(f->g->base), 4096 };

	return mem_table(f, &r, 1, f->g->memfd);
}

static long long b_vring_index(struct fe *f)
{
	return vring_state(f->s, SET_VRING_NUM, 2, QSZ);
}

static long long b_vring_num0(struct fe *f)
{
	return vring_state(f->s, SET_VRING_NUM, 0, 0);
}

static long long b_vring_num_pow2(struct fe *f)
{
	return vring_state(f->s, SET_VRING_NUM, 0, 100);
}

static long long b_vring_num_max(struct fe *f)
{
	return vring_state(f->s, SET_VRING_NUM, 0, 32768);
}

static long long b_vring_misaligned(struct fe *f)
{
	struct vhost_vring_addr a = {
		.index = 0, .desc_user_addr = va(f->g->base) + 8,
		.used_user_addr = va(f->g->base) + 65536,
		.avail_user_addr = va(f->g->base) + 32768,
	};

	if (vring_state(f->s, SET_VRING_NUM, 0, QSZ) != 0)
		return -2;
	return ack_call(f->s, SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

static long long b_vring_outside(struct fe *f)
{
	struct vhost_vring_addr a = {
		.index = 0, .desc_user_addr = va(f->g->base) + MEM_SIZE - 1024,
		.used_user_addr = va(f->g->base) + 65536,
		.avail_user_addr = va(f->g->base) + 32768,
	};

	if (vring_state(f->s, SET_VRING_NUM, 0, QSZ) != 0)
		return -2;
	return ack_call(f->s, SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

static long long b_log_overflow(struct fe *f)
{
	struct { uint64_t size, off; } l = { 4096, ~0ULL - 100 };
	int fd = memfd_create("log", MFD_CLOEXEC);
	uint64_t v = ~0ULL;
	long long r = -1;

	if (ftruncate(fd, 4096) == 0 &&
	    send_msg(f->s, SET_LOG_BASE, 0, &l, sizeof(l), &fd, 1) == 0 &&
	    recv_reply(f->s, SET_LOG_BASE, &v, 8, NULL, NULL) == 1)
		r = (long long)v;
	close(fd);
	return r;
}

static long long state_fd(struct fe *f, uint32_t dir, uint32_t phase,
			  int nfds)
{
	struct { uint32_t dir, phase; } p = { dir, phase };
	int pfd[2], rfd, fds[2];
	uint64_t v = ~0ULL;
	long long r = -1;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	fds[0] = pfd[0];
	fds[1] = pfd[1];
	if (send_msg(f->s, SET_DEVICE_STATE_FD, 0, &p, sizeof(p), fds,
		     nfds) == 0) {
		int got = recv_reply(f->s, SET_DEVICE_STATE_FD, &v, 8, NULL,
				     &rfd);

		if (got == 1) {
			r = (long long)v;
			if (rfd >= 0)
				close(rfd);
		} else if (got == 0) {
			r = -1;
		}
	}
	close(pfd[0]);
	close(pfd[1]);
	return r;
}

static long long b_state_dir(struct fe *f)
{
	return state_fd(f, 7, 0, 1);
}

static long long b_state_phase(struct fe *f)
{
	return state_fd(f, 0, 3, 1);
}

static long long b_state_nofd(struct fe *f)
{
	return state_fd(f, 0, 0, 0);
}

static long long b_state_twofd(struct fe *f)
{
	return state_fd(f, 0, 0, 2);
}

static long long b_state_running(struct fe *f)
{
	unsigned int i;

	f->nrings = 2;
	for (i = 0; i < 2; i++)
		if (ring_init(f->g, &f->r[i]) < 0)
			return -2;
	f->features &= ~0ULL;
	if (fe_start(f, NULL) != 0)
		return -2;
	i = (unsigned int)state_fd(f, 0, 0, 1);
	ring_fini(&f->r[0]);
	ring_fini(&f->r[1]);
	return i;
}

static long long b_check_without(struct fe *f)
{
	return check_state(f->s);
}

static long long b_get_config(struct fe *f)
{
	/* past the config space: an empty config back (size 0) */
	struct { uint32_t off, size, flags; uint8_t d[8]; } c = { 4096, 8, 0,
								  { 0 } };
	uint32_t size = ~0u;

	if (send_msg(f->s, GET_CONFIG, 0, &c, sizeof(c), NULL, 0) ||
	    recv_reply(f->s, GET_CONFIG, &c, sizeof(c), &size, NULL) != 1)
		return -1;
	return size == 12 && c.size == 0 ? 1 : 0;
}

static const struct bad bads[] = {
	{ "size above 4 KiB", CLOSED, b_big_size },
	{ "payload shorter than its size", CLOSED, b_short_payload },
	{ "bad version", CLOSED, b_version },
	{ "reply bit on a request", CLOSED, b_reply_bit },
	{ "unknown flags", CLOSED, b_flags },
	{ "unknown request", NACK, b_unknown },
	{ "unsupported request with fds (all closed)", NACK, b_unknown_fds },
	{ "an fd on a request that takes none", CLOSED, b_fd_on_none },
	{ "SET_MEM_TABLE with 3 fds for 1 region", CLOSED, b_fds_wrong_count },
	{ "truncated ancillary data (12 fds)", CLOSED, b_ctrunc },
	{ "memory region empty", NACK, b_mem_empty },
	{ "memory regions overlapping", NACK, b_mem_overlap },
	{ "memory region overflowing", NACK, b_mem_overflow },
	{ "memory region past its fd", NACK, b_mem_past_fd },
	{ "memory region at an offset reaching past its fd", NACK,
	  b_mem_off_past_fd },
	{ "vring index >= queue count", NACK, b_vring_index },
	{ "ring size 0", NACK, b_vring_num0 },
	{ "ring size not a power of two", NACK, b_vring_num_pow2 },
	{ "ring size above the maximum", NACK, b_vring_num_max },
	{ "ring address misaligned", NACK, b_vring_misaligned },
	{ "ring address outside guest memory", NACK, b_vring_outside },
	{ "log region overflowing", NACK, b_log_overflow },
	{ "42 with a bad direction", NACK, b_state_dir },
	{ "42 with a bad phase", NACK, b_state_phase },
	{ "42 without an fd", CLOSED, b_state_nofd },
	{ "42 with two fds", CLOSED, b_state_twofd },
	{ "42 while the device runs", NACK, b_state_running },
	{ "43 without a 42", NACK, b_check_without },
	{ "GET_CONFIG past the config space", NACK, b_get_config },
};

static void test_bad_input(void)
{
	static const char *const args[] = { "--type", "net", NULL };
	struct backend b;
	struct fe f, ok;
	struct tally *t = calloc(1, sizeof(*t));
	int base_fds, n;
	unsigned int i;

	tap_ok(backend_start(&b, "bad", args) == 0, "bad input: back-end "
	       "started");
	base_fds = count_fds(b.serve);
	tap_ok(base_fds > 0, "bad input: /proc/%d/fd readable (%d fds)",
	       (int)b.serve, base_fds);
	if (base_fds <= 0)
		return;
	for (i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *x = &bads[i];
		long long r;

		if (bad_open(&f, &b, true) < 0) {
			tap_ok(0, "bad input: %s: setup", x->name);
			fe_close(&f, false);
			continue;
		}
		r = x->fn(&f);
		if (x->want == CLOSED)
			tap_ok(r == -1, "%s: connection closed (got %lld)",
			       x->name, r);
		else
			tap_ok(r > 0, "%s: REPLY_ACK non-zero (got %lld)",
			       x->name, r);
		fe_close(&f, false);
		n = settled_fds(b.serve, base_fds);
		tap_ok(n == base_fds, "%s: back-end fds flat (%d, was %d)",
		       x->name, n, base_fds);
	}
	/* still serving, and the device works for the next front-end */
	tap_ok(fe_open(&ok, &b, ALL_PROTO, true) == 0 && fe_start(&ok, NULL) ==
	       0, "after every bad input a fresh front-end sets up");
	net_traffic(&ok, t, 500);
	tap_ok(t->got == 500 && !t->dup && !t->bad, "and its 500 frames come "
	       "back intact (got %u dup %u bad %u)", t->got, t->dup, t->bad);
	fe_close(&ok, true);
	tap_is(settled_fds(b.serve, base_fds), base_fds, "back-end fds flat "
	       "after the good front-end left");
	backend_stop(&b);
	free(t);
}

/*
 * Guest memory as two regions of one memfd, the rings and buffers in the
 * second, at a non-zero mmap_offset (QEMU's RAM above 4 GiB): the device
 * must see the file from that offset. The guest's file is never resized.
 */
static void test_mem_offset(struct backend *a)
{
	struct tally *t = calloc(1, sizeof(*t));
	uint64_t split = G.used & ~4095ULL;
	struct stat st0, st1;
	struct fe f;

	fstat(G.memfd, &st0);
	tap_ok(split > 0 && fe_open(&f, a, ALL_PROTO, true) == 0 &&
	       G.used + 4096 < MEM_SIZE, "offset: front-end connected, rings "
	       "above 0x%llx", (unsigned long long)split);
	f.split = split;
	tap_is(fe_start(&f, NULL), 0, "offset: two regions, the second at "
	       "mmap_offset 0x%llx, set up", (unsigned long long)split);
	tap_ok(gpa(f.g, f.r[0].desc) >= MEM_GPA + split &&
	       gpa(f.g, f.r[1].bufs) >= MEM_GPA + split, "offset: rings and "
	       "buffers in the second region");
	net_traffic(&f, t, 500);
	tap_ok(t->got == 500 && t->got == t->sent && !t->dup && !t->bad,
	       "offset: 500 frames through memory at a file offset (got %u "
	       "of %u, dup %u bad %u)", t->got, t->sent, t->dup, t->bad);
	fstat(G.memfd, &st1);
	tap_ok(st1.st_size == st0.st_size && st0.st_size == MEM_SIZE,
	       "offset: the guest's memfd keeps its size (%lld)",
	       (long long)st1.st_size);
	fe_close(&f, true);
	free(t);
}

/* a peer that disconnects mid-run: the device is reset, the next one works */
static void test_reconnect(struct backend *a)
{
	struct tally *t = calloc(1, sizeof(*t));
	struct fe f;

	tap_ok(fe_open(&f, a, ALL_PROTO, true) == 0 && fe_start(&f, NULL) == 0,
	       "reconnect: a new front-end after the first one left");
	net_traffic(&f, t, 500);
	tap_ok(t->got == 500 && !t->dup && !t->bad, "reconnect: 500 frames "
	       "(got %u dup %u bad %u)", t->got, t->dup, t->bad);
	fe_close(&f, true);
	free(t);
}

/* ---- dirty logging -------------------------------------------------- */

static bool logged(const uint8_t *log, uint64_t g)
{
	uint64_t page = g / 4096;

	return log[page / 8] & (1u << (page % 8));
}

/*
 * Frames published and not waited for across each relay switch (the
 * first half kicked), as many rx buffers out: the 16 of 100 once "lost"
 * at LOG_ALL off were never sent (send_only() stopped at TX completions
 * not reaped yet, the count was not checked).
 */
#define SWITCH_INFLIGHT	100u
_Static_assert(SWITCH_INFLIGHT <= QSZ / 2, "in flight: at most QSZ / 2");

/* popcount of the log: pages marked */
static uint64_t log_pages(const uint8_t *log, uint64_t size)
{
	uint64_t i, n = 0;

	for (i = 0; i < size; i++)
		n += (uint64_t)__builtin_popcount(log[i]);
	return n;
}

/* the figures of serve's "relay stopped: ..." line; 0 when found */
static int relay_figures(const struct backend *b, unsigned long long *fig)
{
	char *text = log_text(b), *p;
	int r = -1;

	p = text ? strstr(text, "relay stopped: ") : NULL;
	if (p && sscanf(p, "relay stopped: %llu chains forwarded, %llu "
			"completions (%llu at the stop), %llu pages logged, "
			"%llu requests left", &fig[0], &fig[1], &fig[4],
			&fig[2], &fig[3]) == 5)
		r = 0;
	free(text);
	return r;
}

/* reap until every frame sent is back, without kicking anything */
static void net_wait(struct fe *f, struct tally *t)
{
	int idle = 0;

	while (t->got + t->bad + t->dup < t->sent && idle < 500) {
		uint32_t before = t->got;

		net_reap(f, t, 1);
		idle = t->got == before ? idle + 1 : 0;
	}
}

/*
 * kernel: NULL, or the simulator's --kernel personality ("6.12": like
 * Linux's vdpa_sim it looks at a ring only when kicked, not at DRIVER_OK)
 */
/* the number after the first `what` in the back-end's log; -1 none */
static long long log_number(const struct backend *b, const char *what)
{
	char *text = log_text(b), *p = text ? strstr(text, what) : NULL;
	long long r = p ? strtoll(p + strlen(what), NULL, 10) : -1;

	free(text);
	return r;
}

static void test_logging(const char *kdev, const char *kernel)
{
	const char *args[] = { "--type", "net", kernel ? "--kernel" : NULL,
			       kernel, NULL };
	struct tally *t = calloc(1, sizeof(*t));
	struct backend b;
	struct fe f;
	uint64_t logsize = ((MEM_GPA + MEM_SIZE) / 4096 + 7) / 8;
	struct { uint64_t size, off; } l = { 4096, 0 };
	unsigned long long fig[5] = { 0 };
	uint8_t *log;
	uint64_t v = ~0ULL, pages;
	unsigned int i, unmarked = 0, checked = 0;
	uint32_t half = SWITCH_INFLIGHT / 2;
	uint32_t off_kicked = kernel ? half : SWITCH_INFLIGHT;
	int lfd;

	if (logsize > l.size)
		l.size = (logsize + 4095) & ~4095ULL;
	tap_ok(backend_start_on(&b, kernel ? "log-k" : "log", args, kdev) == 0,
	       "log: back-end started (%s%s%s)", kdev ? kdev : "vdpa-sim",
	       kernel ? " --kernel " : "", kernel ? kernel : "");
	tap_ok(fe_open(&f, &b, ALL_PROTO, true) == 0 && fe_start(&f, NULL) ==
	       0, "log: front-end set up");
	net_traffic(&f, t, 300);
	/* the control: the same burst in passthrough, no switch */
	tap_is(send_only(&f, t, SWITCH_INFLIGHT, half), SWITCH_INFLIGHT,
	       "log: passthrough control: %u frames published (%u kicked)",
	       SWITCH_INFLIGHT, half);
	net_traffic(&f, t, 100);
	tap_ok(t->got == 400 + SWITCH_INFLIGHT && t->got == t->sent &&
	       !t->dup && !t->bad, "log: passthrough control: all back "
	       "(got %u of %u, dup %u bad %u)", t->got, t->sent, t->dup,
	       t->bad);
	lfd = memfd_create("log", MFD_CLOEXEC);
	if (lfd < 0 || ftruncate(lfd, (off_t)l.size) < 0)
		return;
	log = mmap(NULL, l.size, PROT_READ | PROT_WRITE, MAP_SHARED, lfd, 0);
	tap_ok(send_msg(f.s, SET_LOG_BASE, 0, &l, sizeof(l), &lfd, 1) == 0 &&
	       recv_reply(f.s, SET_LOG_BASE, &v, 8, NULL, NULL) == 1 && v == 0,
	       "log: SET_LOG_BASE answered 0");
	memset(log, 0, l.size);
	/* frames in flight across the switch: none lost, none twice */
	tap_is(send_only(&f, t, SWITCH_INFLIGHT, half), SWITCH_INFLIGHT,
	       "log: %u frames published (%u kicked) before LOG_ALL on",
	       SWITCH_INFLIGHT, half);
	tap_is(set_u64(f.s, SET_FEATURES, f.features | F_LOG_ALL), 0,
	       "log: LOG_ALL on with %u frames in flight (relay)",
	       SWITCH_INFLIGHT);
	tap_ok(log_has(&b, "relay mode"), "log: back-end switched to relay");
	{
		uint16_t first_rx = f.r[0].last_used;
		int nc = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		int nk = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		uint64_t cnt = 0;

		/*
		 * New call and kick fds while relaying, as QEMU sends when
		 * the guest masks or unmasks an MSI-X vector, with frames
		 * kicked and in flight: the device must stay on the shadow
		 * rings (a switch back and forth would let it write buffers
		 * nothing logs, caught by the marks checked below).
		 */
		net_wait(&f, t);	/* the switch's frames, for rx room */
		tap_is(send_only(&f, t, SWITCH_INFLIGHT, SWITCH_INFLIGHT),
		       SWITCH_INFLIGHT, "log: %u frames published and kicked "
		       "before the fds change", SWITCH_INFLIGHT);
		tap_is(vring_fd(f.s, SET_VRING_CALL, 0, nc), 0, "log: "
		       "SET_VRING_CALL (rx) while relaying: 0");
		tap_is(vring_fd(f.s, SET_VRING_KICK, 1, nk), 0, "log: "
		       "SET_VRING_KICK (tx) while relaying: 0");
		tap_ok(stats_get(&b, "relay_fd_swaps") == 2 &&
		       stats_get(&b, "relay_on") == 1 &&
		       stats_get(&b, "relay_off") == 0, "log: both fds taken "
		       "inside the relay, which never stopped (--stats: %lld "
		       "swaps, relay on %lld, off %lld)",
		       stats_get(&b, "relay_fd_swaps"),
		       stats_get(&b, "relay_on"), stats_get(&b, "relay_off"));
		close(f.r[0].call);
		f.r[0].call = nc;
		close(f.r[1].kick);
		f.r[1].kick = nk;
		/*
		 * EVENT_IDX: ask for a call at the next rx completion, once
		 * the frames in flight are back (the device idle)
		 */
		net_wait(&f, t);
		__atomic_store_n(&f.r[0].avail->ring[QSZ],
				 __atomic_load_n(&f.r[0].used->idx,
						 __ATOMIC_ACQUIRE),
				 __ATOMIC_RELEASE);
		net_traffic(&f, t, 1000);
		tap_ok(read(nc, &cnt, sizeof(cnt)) == sizeof(cnt) && cnt > 0,
		       "log: the relay signals the new rx call fd (%llu)",
		       (unsigned long long)cnt);
		/* every rx buffer the device filled is marked */
		for (i = first_rx; i != f.r[0].last_used; i++) {
			uint16_t head = f.r[0].used->ring[i % QSZ].id;
			uint64_t g = gpa(f.g, in_buf(&f.r[0], head));

			checked++;
			if (!logged(log, g))
				unmarked++;
		}
		if (!logged(log, gpa(f.g, f.r[0].used)))
			unmarked++;
	}
	tap_ok(t->got == 1400 + 3 * SWITCH_INFLIGHT && t->got == t->sent &&
	       !t->dup && !t->bad, "log: traffic through the relay intact "
	       "(got %u of %u, dup %u bad %u)", t->got, t->sent, t->dup,
	       t->bad);
	tap_ok(checked > 0 && unmarked == 0, "log: every rx buffer written "
	       "(%u) and the used ring are marked in the log (%u unmarked)",
	       checked, unmarked);
	/*
	 * All kicked just before the switch: the device completes some on
	 * the shadow rings as the relay stops (its last forward must get
	 * them). Half kicked: the rest waits in the guest's ring, the device
	 * must find it there (what the 6.12 run does).
	 */
	tap_is(send_only(&f, t, SWITCH_INFLIGHT, off_kicked), SWITCH_INFLIGHT,
	       "log: %u frames published (%u kicked) before LOG_ALL off",
	       SWITCH_INFLIGHT, off_kicked);
	tap_is(set_u64(f.s, SET_FEATURES, f.features), 0, "log: LOG_ALL off "
	       "with %u frames in flight", SWITCH_INFLIGHT);
	tap_ok(log_has(&b, "relay stopped"), "log: back in passthrough");
	/*
	 * Every completion the device made on the shadow rings reached the
	 * guest: the relay forwarded exactly the device's progress from the
	 * switch on (index sum logged then) to where it stopped (what the
	 * guest had published, less what it left to the device).
	 */
	{
		long long on = log_number(&b, "avail index sum ");
		long long stop = (long long)f.r[0].avail_idx +
				 f.r[1].avail_idx;

		i = relay_figures(&b, fig) == 0;
		tap_ok(i && on >= 0 && (long long)fig[1] == stop -
		       (long long)fig[3] - on, "log: the relay forwarded every "
		       "completion the device made (%llu, %llu at the stop; "
		       "device from %lld to %lld)", fig[1], fig[4], on,
		       stop - (long long)fig[3]);
	}
	/* nothing marks the log once the relay stopped */
	pages = log_pages(log, l.size);
	i = relay_figures(&b, fig) == 0;
	tap_ok(i && fig[2] == pages, "log: the "
	       "back-end's final count of pages logged (%llu) is the log's "
	       "(%llu)", fig[2], (unsigned long long)pages);
	tap_ok(stats_get(&b, "relay_on") == 1 &&
	       stats_get(&b, "relay_off") == 1 &&
	       stats_get(&b, "relay_pages_logged") == (long long)pages &&
	       stats_get(&b, "relay_forwarded") == (long long)fig[0],
	       "log: --stats counts one relay on and off, its pages logged "
	       "(%lld) and chains forwarded (%lld)",
	       stats_get(&b, "relay_pages_logged"),
	       stats_get(&b, "relay_forwarded"));
	tap_diag("log: at the switch back the relay's last forward moved %llu "
		 "completions, the device had %llu requests left on the guest "
		 "rings", fig[4], fig[3]);
	/* the guest's kicks went to the relay: the switch must make up */
	net_wait(&f, t);
	tap_ok(t->got == 1400 + 4 * SWITCH_INFLIGHT && t->got == t->sent &&
	       !t->dup && !t->bad, "log: the frames in flight at LOG_ALL off "
	       "come back with no further kick (got %u of %u, dup %u bad %u)",
	       t->got, t->sent, t->dup, t->bad);
	net_traffic(&f, t, 500);
	tap_ok(t->got == 1900 + 4 * SWITCH_INFLIGHT && t->got == t->sent &&
	       !t->dup && !t->bad, "log: traffic after logging stopped "
	       "(got %u of %u, dup %u bad %u)", t->got, t->sent, t->dup,
	       t->bad);
	fe_close(&f, true);
	munmap(log, l.size);
	close(lfd);
	backend_stop(&b);
	free(t);
}

/*
 * In the kernel rig (VDPA_TEST_NET_DEV, VDPA_TEST_NET_DEV2: Linux
 * vhost-vdpa + vdpa_sim_net): serve in front of the kernel's device,
 * traffic, the stop, the state saved and loaded into the second device
 * with traffic continuing there, and logging through the relay.
 */
static void test_kernel(const char *net, const char *net2)
{
	struct tally *t = calloc(1, sizeof(*t));
	struct backend k, k2;
	struct fe f, f2;
	uint16_t bases[2];
	void *blob = NULL;
	size_t len = 0;
	uint64_t reply = 0;

	tap_diag("kernel device %s%s%s", net, net2 ? ", destination " : "",
		 net2 ? net2 : "");
	if (backend_start_on(&k, "knet", NULL, net) < 0) {
		tap_ok(0, "kernel: serve %s started", net);
		free(t);
		return;
	}
	test_net_traffic(&k, &f);
	test_stop(&f, bases);
	tap_is(save_state(f.s, &blob, &len, &reply), 0, "kernel: 42 SAVE");
	tap_is(reply, 0x100, "kernel: 42 SAVE reply 0x100");
	tap_is(check_state(f.s), 0, "kernel: 43 after SAVE: 0 (%zu bytes)",
	       len);
	if (net2 && backend_start_on(&k2, "knet2", NULL, net2) == 0) {
		tap_ok(fe_open(&f2, &k2, ALL_PROTO, false) == 0, "kernel: "
		       "connected to the destination");
		tap_is(load_state(f2.s, blob, len, &reply), 0, "kernel: 42 LOAD "
		       "+ 43 into %s: 0", net2);
		f2.r[0] = f.r[0];
		f2.r[1] = f.r[1];
		f2.features = f.features;
		/* the source lets go of the device (and the eventfds) */
		fe_close(&f, false);
		tap_ok(fe_start(&f2, bases) == 0, "kernel: destination rings "
		       "started at the source's bases");
		net_traffic(&f2, t, 1000);
		tap_ok(t->seen[60000] == 1 && t->got == 1001 && !t->dup &&
		       !t->bad, "kernel: traffic continues on %s, the frame "
		       "queued at the stop included (got %u dup %u bad %u)",
		       net2, t->got, t->dup, t->bad);
		fe_close(&f2, true);
		backend_stop(&k2);
	} else {
		fe_close(&f, true);
	}
	backend_stop(&k);
	free(blob);
	free(t);
	test_logging(net, NULL);
}

int main(void)
{
	static const char *const args[] = { "--type", "net", NULL };
	struct backend a;
	struct fe f;
	const char *why;

	tap_need_fd_count();
	signal(SIGPIPE, SIG_IGN);
	why = vu_setup(tdir, sizeof(tdir), &G);
	if (why)
		tap_skip_all(why);
	if (getenv("VDPA_TEST_NET_DEV") && *getenv("VDPA_TEST_NET_DEV")) {
		const char *n2 = getenv("VDPA_TEST_NET_DEV2");

		test_kernel(getenv("VDPA_TEST_NET_DEV"), n2 && *n2 ? n2 : NULL);
	}
	if (backend_start(&a, "src", args) < 0) {
		tap_ok(0, "source vdpa-sim and serve started");
		return tap_done();
	}
	test_net_traffic(&a, &f);
	test_migrate(&a, &f);
	test_reconnect(&a);
	test_mem_offset(&a);
	backend_stop(&a);
	test_blk();
	test_bad_input();
	test_logging(NULL, NULL);
	test_logging(NULL, "6.12");
	guest_fini(&G);
	if (tap_failed)
		tap_diag("logs of the back-ends kept in %s", tdir);
	else
		tu_rmtree(tdir);
	return tap_done();
}
