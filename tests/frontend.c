// SPDX-License-Identifier: MIT
/*
 * frontend: a front-end that owns its rings and its control queue (what a
 * VMM is) migrating a net device through the library, between vdpa-sim
 * processes. One test per trap such front-ends fell into:
 *  1. kicks: the suspended source kept consuming the guest's kick
 *     eventfds, so the destination stalled; a rollback must bind them
 *     again or the source stalls;
 *  2. MAC: after the guest changed its MAC through the control queue, the
 *     compatibility check compared live config and refused the migration;
 *  3. class state: MAC, MAC table, queue pairs and RX mode set through the
 *     front-end's control queue were lost on a destination without the
 *     device-state extension;
 * and vdpa_dev_net_ctrl_record()'s refusals. The traffic proves the class
 * state: with the simulator's receive filter (QEMU's), a frame comes back
 * only if the MAC, the MAC table, allmulti and the queue pairs are in force.
 */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <vdpa-user/migrate.h>
#include <vdpa-user/state.h>
#include <vdpa-user/uapi-ext.h>
#include <vdpa-user/vdpa-user.h>

#include "tap.h"
#include "testutil.h"

#define PAIRS		2
#define NQ		(2 * PAIRS + 1)	/* data queues, then the CVQ */
#define CVQ		(2 * PAIRS)	/* vdpa-sim --queue-pairs 2 */
#define NUM		64
#define CVQ_NUM		8
#define BUF		256
#define MEM_SIZE	(1u << 20)
#define MEM_IOVA	0x40000000ull
#define VNET_HDR	sizeof(struct virtio_net_hdr_v1)
#define FRAME_LEN	(VNET_HDR + 14 + 32)
#define MAGIC		0x54534546u	/* "FEST" */
#define BURST		8		/* frames per pair per round */
#define ROUNDS		5
#define STALL_MS	1000		/* what must come back, by then */
#define RUNS		3
#define POISON		0xdeadu		/* a used entry not written */

static char dir[256];

static const uint8_t prov_mac[6] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55 };
static const uint8_t guest_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x42 };
static const uint8_t table_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x77 };
static const uint8_t mcast_mac[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb };

/* what a frame is sent to; K_OLD (the provisioned MAC) must be filtered */
enum kind { K_MAC, K_TABLE, K_MCAST, K_OLD, K_NKINDS };

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void lib_log(int level, const char *msg, void *opaque)
{
	(void)opaque;
	tap_diag("libvdpa-user%s: %s", level <= LOG_ERR ? " error" : "", msg);
}

/* ---- simulators ---------------------------------------------------------- */

struct sim {
	pid_t pid;
	char sock[PATH_MAX];
	char name[PATH_MAX + 8];
};

/* args: NULL-terminated vdpa-sim options after --type net --queue-pairs 2 */
static int sim_start(struct sim *s, const char *tag, const char *const *args)
{
	const char *argv[16] = { "--type", "net", "--queue-pairs", "2" };
	int i = 4;

	while (args && *args && i < 15)
		argv[i++] = *args++;
	argv[i] = NULL;
	snprintf(s->sock, sizeof(s->sock), "%s/%s.sock", dir, tag);
	snprintf(s->name, sizeof(s->name), "sim:%s", s->sock);
	s->pid = tu_spawn_sim(s->sock, argv);
	if (s->pid < 0)
		tap_diag("vdpa-sim %s: %s", tag, strerror((int)-s->pid));
	return s->pid > 0 ? 0 : -1;
}

static void sim_stop(struct sim *s)
{
	if (s->pid > 0)
		tu_stop_sim(s->pid, false);
	s->pid = 0;
}

static struct vdpa_dev *sim_open(const struct sim *s)
{
	struct vdpa_dev *d = NULL;
	int r = vdpa_dev_open(s->name, &d);

	if (r < 0)
		tap_diag("open %s: %s", s->name, strerror(-r));
	return r < 0 ? NULL : d;
}

/* ---- a front-end: its memory, its rings, its control queue -------------- */

struct ring {
	unsigned int idx;
	uint16_t num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t desc_iova, avail_iova, used_iova, buf_iova;
	uint8_t *buf;
	uint16_t avail_idx, last_used;
	uint16_t free[NUM];
	unsigned int nfree;
	int kick, call;
};

struct frame {
	uint8_t kind, pair, got;
};

struct fe {
	struct vdpa_dev *dev;
	struct vdpa_mem *mem;
	uint8_t *base;
	size_t carved;
	struct ring q[NQ];		/* rx0, tx0, rx1, tx1, cvq */
	struct frame *f;
	uint32_t n, cap;
	unsigned int inflight;
	unsigned long corrupt;
};

static struct ring *rxq(struct fe *fe, unsigned int p)
{
	return &fe->q[2 * p];
}

static struct ring *txq(struct fe *fe, unsigned int p)
{
	return &fe->q[2 * p + 1];
}

static void *carve(struct fe *fe, size_t size, size_t align, uint64_t *iova)
{
	size_t off = (fe->carved + align - 1) & ~(align - 1);

	if (off + size > MEM_SIZE)
		abort();
	fe->carved = off + size;
	*iova = MEM_IOVA + off;
	return fe->base + off;
}

static void set_desc(struct ring *r, uint16_t id, uint64_t iova, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	r->desc[id].addr = htole64(iova);
	r->desc[id].len = htole32(len);
	r->desc[id].flags = htole16(flags);
	r->desc[id].next = htole16(next);
}

static void ring_add(struct ring *r, uint16_t id)
{
	r->avail->ring[r->avail_idx % r->num] = htole16(id);
	r->avail_idx++;
}

static void ring_publish(struct ring *r)
{
	__atomic_store_n(&r->avail->idx, htole16(r->avail_idx),
			 __ATOMIC_RELEASE);
}

static void ring_kick(struct ring *r)
{
	uint64_t one = 1;

	if (write(r->kick, &one, sizeof(one)) < 0) {
		/* a full counter wakes the device as well */
	}
}

static bool ring_used(struct ring *r, uint16_t *id, uint32_t *len)
{
	uint16_t idx = le16toh(__atomic_load_n(&r->used->idx,
					       __ATOMIC_ACQUIRE));
	struct vring_used_elem *e;

	if (idx == r->last_used)
		return false;
	e = &r->used->ring[r->last_used % r->num];
	*id = (uint16_t)le32toh(e->id);
	*len = le32toh(e->len);
	r->last_used++;
	return true;
}

static void rx_post(struct ring *r, uint16_t id)
{
	set_desc(r, id, r->buf_iova + (uint64_t)id * BUF, BUF,
		 VRING_DESC_F_WRITE, 0);
	ring_add(r, id);
}

/* Guest memory (a memfd) and its rings, RX buffers posted. */
static struct fe *fe_new(void)
{
	struct fe *fe = calloc(1, sizeof(*fe));
	unsigned int i;
	uint16_t id;
	int fd;

	if (!fe)
		return NULL;
	fd = memfd_create("frontend-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || ftruncate(fd, MEM_SIZE) < 0 ||
	    vdpa_mem_create_from_fd(fd, MEM_SIZE, MEM_IOVA, &fe->mem) < 0) {
		free(fe);
		return NULL;
	}
	fe->base = vdpa_mem_base(fe->mem);
	for (i = 0; i < NQ; i++) {
		struct ring *r = &fe->q[i];

		r->idx = i;
		r->num = i == CVQ ? CVQ_NUM : NUM;
		r->desc = carve(fe, 16u * r->num, 16, &r->desc_iova);
		r->avail = carve(fe, 6u + 2u * r->num, 2, &r->avail_iova);
		r->used = carve(fe, 6u + 8u * r->num, 4, &r->used_iova);
		r->buf = carve(fe, (size_t)BUF * r->num, 64, &r->buf_iova);
		for (id = 0; id < r->num; id++)
			r->free[r->nfree++] = (uint16_t)(r->num - 1 - id);
		for (id = 0; id < r->num; id++)
			r->used->ring[id].id = htole32(POISON);
		r->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		r->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (i != CVQ && !(i & 1)) {
			for (id = 0; id < r->num; id++)
				rx_post(r, id);
			ring_publish(r);
		}
	}
	return fe;
}

static void fe_free(struct fe *fe)
{
	unsigned int i;

	if (!fe)
		return;
	for (i = 0; i < NQ; i++) {
		close(fe->q[i].kick);
		close(fe->q[i].call);
	}
	vdpa_mem_destroy(fe->mem);
	free(fe->f);
	free(fe);
}

/* Negotiate, place the rings with the front-end's eventfds, DRIVER_OK. */
static int fe_start(struct fe *fe, struct vdpa_dev *dev)
{
	const uint64_t backend =
		(1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2) |
		(1ULL << VHOST_BACKEND_F_SUSPEND) |
		(1ULL << VHOST_BACKEND_F_RESUME) |
		(1ULL << VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK) |
		(1ULL << VHOST_BACKEND_F_DEVICE_STATE);
	const uint64_t features = (1ULL << VIRTIO_F_VERSION_1) |
				  (1ULL << VIRTIO_F_ACCESS_PLATFORM) |
				  (1ULL << VIRTIO_NET_F_MAC) |
				  (1ULL << VIRTIO_NET_F_CTRL_VQ) |
				  (1ULL << VIRTIO_NET_F_CTRL_RX) |
				  (1ULL << VIRTIO_NET_F_CTRL_MAC_ADDR) |
				  (1ULL << VIRTIO_NET_F_MQ);
	uint64_t acked;
	unsigned int i;
	int r;

	fe->dev = dev;
	r = vdpa_dev_set_backend_features(dev, backend, &acked);
	if (!r)
		r = vdpa_dev_set_features(dev, features);
	if (!r) {
		r = vdpa_mem_map(dev, fe->mem);
		r = r == -EEXIST ? 0 : r;
	}
	for (i = 0; i < NQ && !r; i++) {
		struct ring *q = &fe->q[i];

		r = vdpa_dev_set_vring_num(dev, i, q->num);
		if (!r)
			r = vdpa_dev_set_vring_addr(dev, i, q->desc_iova,
						    q->avail_iova,
						    q->used_iova);
		if (!r)
			r = vdpa_dev_set_vring_base(dev, i, q->last_used);
		if (!r)
			r = vdpa_dev_set_vring_kick(dev, i, q->kick);
		if (!r)
			r = vdpa_dev_set_vring_call(dev, i, q->call);
		if (!r)
			r = vdpa_dev_set_vring_enable(dev, i, true);
	}
	if (!r)
		r = vdpa_dev_add_status(dev, VIRTIO_CONFIG_S_DRIVER_OK);
	if (r < 0)
		tap_diag("starting %s: %s", vdpa_dev_name(dev), strerror(-r));
	return r;
}

/*
 * One command through the front-end's control queue: the ack (0 OK, 1
 * ERR) or -ETIMEDOUT. Acknowledged commands are recorded when record.
 */
static int fe_ctrl(struct fe *fe, uint8_t cls, uint8_t cmd, const void *data,
		   size_t len, bool record)
{
	struct ring *q = &fe->q[CVQ];
	uint8_t *ack = q->buf + BUF;
	uint64_t end = now_ms() + STALL_MS;
	unsigned int i, n;
	uint32_t ulen;
	uint16_t id;
	int r;

	q->buf[0] = cls;
	q->buf[1] = cmd;
	memcpy(q->buf + 2, data, len);
	*ack = 0xff;
	set_desc(q, 0, q->buf_iova, (uint32_t)(2 + len), VRING_DESC_F_NEXT, 1);
	set_desc(q, 1, q->buf_iova + BUF, 1, VRING_DESC_F_WRITE, 0);
	ring_add(q, 0);
	ring_publish(q);
	ring_kick(q);
	while (!ring_used(q, &id, &ulen)) {
		struct pollfd p = { q->call, POLLIN, 0 };
		uint64_t v;

		if (now_ms() > end)
			return -ETIMEDOUT;
		poll(&p, 1, 5);
		if (read(q->call, &v, sizeof(v)) < 0) {
			/* nothing signalled yet */
		}
	}
	/*
	 * Exactly the one command published was consumed: a device (a
	 * destination) started at a wrong base runs stale ones again. Used
	 * entries stay poisoned once consumed, so any rewrite shows.
	 */
	for (i = 0, n = 0; i < q->num; i++) {
		n += q->used->ring[i].id != htole32(POISON);
		q->used->ring[i].id = htole32(POISON);
	}
	if (n != 1 || q->last_used != q->avail_idx) {
		tap_diag("  control queue: %u used entries written for one "
			 "command (%u published in all)", n, q->avail_idx);
		return -EPROTO;
	}
	if (*ack != VIRTIO_NET_OK)
		return 1;
	if (record) {
		r = vdpa_dev_net_ctrl_record(fe->dev, cls, cmd, data, len);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The guest's configuration: MAC, 2 pairs, allmulti, one table entry. */
static int fe_configure(struct fe *fe)
{
	uint16_t pairs = htole16(PAIRS);
	uint8_t on = 1, t[14];
	uint32_t n = htole32(1);
	int r;

	memcpy(t, &n, 4);
	memcpy(t + 4, table_mac, 6);
	n = 0;
	memcpy(t + 10, &n, 4);
	r = fe_ctrl(fe, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET,
		    guest_mac, 6, true);
	if (!r)
		r = fe_ctrl(fe, VIRTIO_NET_CTRL_MQ,
			    VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &pairs, 2, true);
	if (!r)
		r = fe_ctrl(fe, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI,
			    &on, 1, true);
	if (!r)
		r = fe_ctrl(fe, VIRTIO_NET_CTRL_MAC,
			    VIRTIO_NET_CTRL_MAC_TABLE_SET, t, sizeof(t), true);
	if (r)
		tap_diag("configuring the guest: %s",
			 r > 0 ? "the device refused a command" : strerror(-r));
	return r;
}

/* ---- traffic ------------------------------------------------------------- */

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

static const uint8_t *kind_dst(enum kind k)
{
	return k == K_MAC ? guest_mac : k == K_TABLE ? table_mac :
	       k == K_MCAST ? mcast_mac : prov_mac;
}

static void fe_send(struct fe *fe, unsigned int pair, enum kind k)
{
	struct ring *q = txq(fe, pair);
	uint8_t *f, *pl;
	uint32_t v, i;
	uint16_t id;

	if (fe->n == fe->cap) {
		fe->cap = fe->cap ? 2 * fe->cap : 1024;
		fe->f = realloc(fe->f, fe->cap * sizeof(*fe->f));
		if (!fe->f)
			abort();
	}
	if (!q->nfree) {
		/* a stalled device filled the ring: the frame counts as lost */
		fe->f[fe->n++] = (struct frame){ (uint8_t)k, (uint8_t)pair, 0 };
		return;
	}
	id = q->free[--q->nfree];
	f = q->buf + (size_t)id * BUF;
	memset(f, 0, VNET_HDR);
	memcpy(f + VNET_HDR, kind_dst(k), 6);
	memcpy(f + VNET_HDR + 6, guest_mac, 6);
	f[VNET_HDR + 12] = 0x88;
	f[VNET_HDR + 13] = 0xb5;
	pl = f + VNET_HDR + 14;
	v = htole32(MAGIC);
	memcpy(pl, &v, 4);
	v = htole32(fe->n);
	memcpy(pl + 4, &v, 4);
	pl[8] = (uint8_t)k;
	pl[9] = (uint8_t)pair;
	for (i = 10; i < 28; i++)
		pl[i] = (uint8_t)(fe->n * 7 + i);
	v = htole32(fnv1a(f + VNET_HDR, 14 + 28));
	memcpy(pl + 28, &v, 4);
	set_desc(q, id, q->buf_iova + (uint64_t)id * BUF, FRAME_LEN, 0, 0);
	ring_add(q, id);
	fe->f[fe->n++] = (struct frame){ (uint8_t)k, (uint8_t)pair, 0 };
	fe->inflight++;
}

static void fe_check(struct fe *fe, unsigned int pair, const uint8_t *f,
		     uint32_t len)
{
	const uint8_t *pl = f + VNET_HDR + 14;
	uint32_t magic, seq, sum;
	struct frame *s;

	memcpy(&magic, pl, 4);
	memcpy(&seq, pl + 4, 4);
	memcpy(&sum, pl + 28, 4);
	seq = le32toh(seq);
	if (len != FRAME_LEN || le32toh(magic) != MAGIC || seq >= fe->n ||
	    le32toh(sum) != fnv1a(f + VNET_HDR, 14 + 28)) {
		fe->corrupt++;
		return;
	}
	s = &fe->f[seq];
	if (pl[8] != s->kind || s->pair != pair || pl[9] != pair ||
	    memcmp(f + VNET_HDR, kind_dst((enum kind)s->kind), 6)) {
		fe->corrupt++;
		return;
	}
	if (s->got < 255)
		s->got++;
}

/* TX first: the device writes a frame's RX entry before its TX entry. */
static void fe_reap(struct fe *fe)
{
	unsigned int p;
	uint32_t len;
	uint16_t id;

	for (p = 0; p < PAIRS; p++) {
		struct ring *tx = txq(fe, p), *rx = rxq(fe, p);
		bool refill = false;

		while (ring_used(tx, &id, &len)) {
			tx->free[tx->nfree++] = id;
			fe->inflight--;
		}
		while (ring_used(rx, &id, &len)) {
			fe_check(fe, p, rx->buf + (size_t)id * BUF, len);
			rx_post(rx, id);
			refill = true;
		}
		if (refill) {
			ring_publish(rx);
			ring_kick(rx);
		}
	}
}

/* Everything sent completed within ms? No kick is repeated. */
static int fe_pump(struct fe *fe, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	struct pollfd p[2 * PAIRS];
	unsigned int i;
	uint64_t v;

	for (;;) {
		fe_reap(fe);
		if (!fe->inflight)
			return 0;
		if (now_ms() > end)
			return -ETIMEDOUT;
		for (i = 0; i < 2 * PAIRS; i++)
			p[i] = (struct pollfd){ fe->q[i].call, POLLIN, 0 };
		poll(p, 2 * PAIRS, 5);
		for (i = 0; i < 2 * PAIRS; i++)
			if (p[i].revents && read(p[i].fd, &v, sizeof(v)) < 0) {
				/* drained by an earlier read */
			}
	}
}

/* BURST frames per pair, every kind, published; kicked when kick. */
static void fe_burst(struct fe *fe, bool kick)
{
	unsigned int p, i;

	for (p = 0; p < PAIRS; p++) {
		for (i = 0; i < BURST; i++)
			fe_send(fe, p, (enum kind)(i % K_NKINDS));
		ring_publish(txq(fe, p));
		if (kick)
			ring_kick(txq(fe, p));
	}
}

struct tally {
	unsigned long sent[K_NKINDS], got[K_NKINDS], pair_sent[PAIRS],
		      pair_got[PAIRS], dup, lost;
};

/* The frames from seq on: what came back (K_OLD must not). */
static void fe_tally(const struct fe *fe, uint32_t from, struct tally *t)
{
	uint32_t i;

	memset(t, 0, sizeof(*t));
	for (i = from; i < fe->n; i++) {
		const struct frame *s = &fe->f[i];

		t->sent[s->kind]++;
		t->got[s->kind] += s->got ? 1 : 0;
		t->dup += s->got > 1 ? s->got - 1u : 0;
		if (s->kind == K_OLD)
			continue;
		t->lost += !s->got;
		t->pair_sent[s->pair]++;
		t->pair_got[s->pair] += s->got ? 1 : 0;
	}
}

/* Frames from seq on all came back once, intact; K_OLD filtered. */
static bool tally_clean(const struct fe *fe, uint32_t from,
			unsigned long corrupt0)
{
	struct tally t;

	fe_tally(fe, from, &t);
	if (!t.lost && !t.dup && !t.got[K_OLD] && fe->corrupt == corrupt0)
		return true;
	tap_diag("  frames %u..%u: lost %lu, duplicated %lu, corrupt %lu, "
		 "to the provisioned MAC let through %lu, in flight %u",
		 from, fe->n, t.lost, t.dup, fe->corrupt - corrupt0,
		 t.got[K_OLD], fe->inflight);
	return false;
}

/* ROUNDS bursts, each kicked once and given STALL_MS to come back. */
static bool fe_rounds(struct fe *fe, uint32_t *from)
{
	unsigned long c0 = fe->corrupt;
	bool stalled = false;
	unsigned int i;

	*from = fe->n;
	for (i = 0; i < ROUNDS && !stalled; i++) {
		fe_burst(fe, true);
		stalled = fe_pump(fe, STALL_MS) < 0;
	}
	if (stalled)
		tap_diag("  a burst did not complete within %d ms (%u frames "
			 "in flight)", STALL_MS, fe->inflight);
	return tally_clean(fe, *from, c0) && !stalled;
}

static bool traffic_ok(struct fe *fe, const char *what)
{
	uint32_t from;

	return tap_ok(fe_rounds(fe, &from), "%s", what);
}

/* Is dev running: DRIVER_OK and neither NEEDS_RESET nor FAILED? */
static bool running(struct vdpa_dev *dev)
{
	uint8_t st = 0;

	return vdpa_dev_get_status(dev, &st) == 0 &&
	       (st & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(st & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED));
}

/* ---- the migration, half by half ----------------------------------------- */

enum fault { F_NONE, F_CORRUPT, F_KILL_DST };

struct mig {
	enum fault fault;
	struct sim *dst_sim;		/* F_KILL_DST */
	/* results; 1: the step did not run */
	int precheck, prepare, switchover, dst, finish;
	int unbound, rebound;		/* queues (of NQ) */
	bool downtime_ok;		/* frames published while suspended */
	bool window_ok;			/* ... and before the commit */
	char err[512], why[512];
	struct vdpa_state *plan;	/* decoded, for checks */
};

/* The state, from the source's transfer fd to the destination's. */
static void relay(int from, int to, size_t flip_at, bool corrupt)
{
	uint8_t buf[16384];
	size_t at = 0;
	ssize_t n;

	while ((n = read(from, buf, sizeof(buf))) > 0) {
		if (corrupt && flip_at >= at && flip_at < at + (size_t)n)
			buf[flip_at - at] ^= 0x5a;
		if (write(to, buf, (size_t)n) != n)
			break;
		at += (size_t)n;
	}
	close(from);
	close(to);
}

/*
 * fe's device to dst, step by step as two processes would. The guest
 * publishes (and kicks) while the source is suspended and again between
 * the destination's start and the source's commit.
 */
static void migrate_halves(struct fe *fe, struct vdpa_dev *dst, struct mig *g)
{
	struct vdpa_dev *src = fe->dev;
	struct vdpa_mig_src *ms = NULL;
	struct vdpa_mig_dst *md = NULL;
	void *desc = NULL, *plan = NULL, *verdict = NULL;
	size_t dlen = 0, plen = 0, vlen = 0, blen = 0;
	struct vdpa_vring_info vi;
	unsigned long c0 = fe->corrupt;
	uint32_t from = 0;
	const void *blob;
	int rfd = -1, wfd = -1, r;
	unsigned int i;

	g->precheck = g->prepare = g->switchover = g->dst = g->finish = 1;
	r = vdpa_mig_dst_new(dst, NULL, &md);
	if (!r)
		r = vdpa_mig_dst_describe(md, &desc, &dlen);
	if (!r)
		r = vdpa_mig_src_new(src, NULL, &ms);
	if (r < 0) {
		snprintf(g->err, sizeof(g->err), "setting up: %s",
			 strerror(-r));
		goto out;
	}
	g->precheck = vdpa_mig_src_precheck(ms, desc, dlen, g->err,
					    sizeof(g->err));
	if (g->precheck)
		goto out;
	r = vdpa_mig_src_plan(ms, &plan, &plen);
	if (!r && vdpa_state_decode(plan, plen, 0, &g->plan, g->why,
				    sizeof(g->why)) < 0)
		tap_diag("  the plan does not decode: %s", g->why);
	g->prepare = r ? r : vdpa_mig_dst_prepare(md, plan, plen, g->err,
						  sizeof(g->err));
	if (g->prepare)
		goto out;
	r = vdpa_mem_map(dst, fe->mem);
	if (r < 0 && r != -EEXIST) {
		g->prepare = r;
		goto out;
	}
	for (i = 0; i < NQ; i++)
		vdpa_mig_dst_set_vring_fds(md, i, fe->q[i].kick, fe->q[i].call);

	g->switchover = vdpa_mig_src_switchover(ms, g->err, sizeof(g->err));
	if (g->switchover)
		goto out;
	for (i = 0; i < NQ; i++)
		g->unbound += vdpa_dev_get_vring(src, i, &vi) == 0 &&
			      vi.kick_fd == -1;
	/* the guest goes on while the device is suspended */
	from = fe->n;
	fe_burst(fe, true);

	vdpa_mig_src_blob(ms, &blob, &blen);
	r = vdpa_mig_src_set_state_fd(ms, -1, &rfd, g->err, sizeof(g->err));
	if (!r)
		r = vdpa_mig_dst_set_state_fd(md, -1, &wfd, g->why,
					      sizeof(g->why));
	if (r < 0) {
		if (rfd >= 0)
			close(rfd);
		g->dst = r;
		goto verdict;
	}
	relay(rfd, wfd, blen / 2, g->fault == F_CORRUPT);
	vdpa_mig_src_check_state(ms, g->err, sizeof(g->err));
	g->dst = vdpa_mig_dst_check_state(md, g->why, sizeof(g->why));
	if (!g->dst && g->fault == F_KILL_DST)
		sim_stop(g->dst_sim);	/* the destination device dies */
	if (!g->dst)
		g->dst = vdpa_mig_dst_start(md, g->why, sizeof(g->why));
verdict:
	if (g->dst)
		vdpa_dev_reset(dst);
	vdpa_mig_dst_verdict(md, g->dst, g->why, &verdict, &vlen);
	if (!g->dst) {
		/* the verdict is on its way; the source is still suspended */
		fe_burst(fe, true);
		g->window_ok = fe_pump(fe, STALL_MS) == 0 &&
			       tally_clean(fe, from, c0);
	}
	g->finish = vdpa_mig_src_finish(ms, verdict, vlen, g->err,
					sizeof(g->err));
	if (g->dst) {
		for (i = 0; i < NQ; i++)
			g->rebound += vdpa_dev_get_vring(src, i, &vi) == 0 &&
				      vi.kick_fd == fe->q[i].kick;
		g->downtime_ok = fe_pump(fe, STALL_MS) == 0 &&
				 tally_clean(fe, from, c0);
	} else {
		g->downtime_ok = g->window_ok;
		if (!g->finish)
			fe->dev = dst;
	}
out:
	vdpa_mig_src_free(ms);
	vdpa_mig_dst_free(md);
	free(desc);
	free(plan);
	free(verdict);
}

static void mig_done(struct mig *g)
{
	vdpa_state_free(g->plan);
	g->plan = NULL;
}

/* ---- trap 1: kick handover ----------------------------------------------- */

static void test_kicks(void)
{
	static const char *const none[] = { NULL };
	struct sim s[3] = { 0 };
	struct vdpa_dev *d[2] = { NULL, NULL }, *x = NULL;
	struct fe *fe = NULL;
	struct mig g;
	int run, cur = 0, flowed = 0, r;
	unsigned long c0;
	uint32_t from;
	char err[512] = "";

	tap_diag("trap 1: the guest's kick eventfds move with the device");
	if (sim_start(&s[0], "k0", none) || sim_start(&s[1], "k1", none) ||
	    !(d[0] = sim_open(&s[0])) || !(d[1] = sim_open(&s[1])) ||
	    !(fe = fe_new()) || fe_start(fe, d[0]) || fe_configure(fe)) {
		tap_ok(0, "kicks: set up");
		goto out;
	}
	traffic_ok(fe, "kicks: traffic flows on the first device");
	for (run = 1; run <= RUNS; run++) {
		bool ok;

		memset(&g, 0, sizeof(g));
		migrate_halves(fe, d[!cur], &g);
		tap_ok(!g.switchover && g.unbound == NQ, "run %d: after the "
		       "switchover the suspended source holds none of the "
		       "kicks (kick_fd -1 on %d of %d queues)", run, g.unbound,
		       NQ);
		ok = tap_ok(!g.dst && !g.finish, "run %d: migrated %s -> %s",
			    run, vdpa_dev_name(d[cur]), vdpa_dev_name(d[!cur]));
		if (!ok)
			tap_diag("  %s%s%s", g.err, g.why[0] ? "; " : "",
				 g.why);
		ok &= tap_ok(g.window_ok, "run %d: what the guest published "
			     "and kicked during the downtime and before the "
			     "commit comes back from the destination", run);
		ok &= tap_ok(fe_rounds(fe, &from), "run %d: traffic flows on "
			     "the destination after the commit", run);
		flowed += ok;
		mig_done(&g);
		if (!g.finish)
			cur = !cur;
		else
			break;
	}
	tap_is(flowed, RUNS, "traffic on the destination flowed in %d of %d "
	       "runs", flowed, RUNS);

	/*
	 * vdpa_migrate(): frames published but whose kick the device never
	 * saw (published as it suspended) come back: the library kicks the
	 * destination, and the source must not take that kick.
	 */
	from = fe->n;
	c0 = fe->corrupt;
	fe_burst(fe, false);
	r = vdpa_migrate(d[cur], d[!cur], NULL, NULL, err, sizeof(err));
	if (!tap_ok(r == 0, "vdpa_migrate %s -> %s", vdpa_dev_name(d[cur]),
		    vdpa_dev_name(d[!cur])))
		tap_diag("  %s", err);
	else
		cur = !cur;
	fe->dev = d[cur];
	tap_ok(fe_pump(fe, STALL_MS) == 0 && tally_clean(fe, from, c0),
	       "vdpa_migrate: frames published before it, never kicked by "
	       "the guest, come back from the destination");
	traffic_ok(fe, "vdpa_migrate: traffic flows on the destination");

	/* a rollback: the destination refuses a corrupted state */
	memset(&g, 0, sizeof(g));
	g.fault = F_CORRUPT;
	migrate_halves(fe, d[!cur], &g);
	tap_ok(!g.switchover && g.unbound == NQ, "rollback (corrupted state): "
	       "the suspended source let go of the kicks (%d of %d)",
	       g.unbound, NQ);
	if (!tap_ok(g.dst < 0 && g.finish == g.dst && strstr(g.err, "resumed"),
		    "rollback (corrupted state): the destination refused it, "
		    "the source resumed"))
		tap_diag("  dst %d finish %d: %s", g.dst, g.finish, g.err);
	else
		tap_diag("  %s", g.err);
	tap_ok(g.rebound == NQ, "rollback: every queue's kick is the "
	       "front-end's eventfd again (%d of %d)", g.rebound, NQ);
	tap_ok(g.downtime_ok, "rollback: what the guest published while "
	       "the source was suspended comes back from the source");
	traffic_ok(fe, "rollback: traffic flows on the source");
	mig_done(&g);

	/* a rollback: the destination device dies before it starts */
	if (sim_start(&s[2], "k2", none) || !(x = sim_open(&s[2]))) {
		tap_ok(0, "rollback (destination gone): set up");
		goto out;
	}
	memset(&g, 0, sizeof(g));
	g.fault = F_KILL_DST;
	g.dst_sim = &s[2];
	migrate_halves(fe, x, &g);
	if (!tap_ok(g.dst < 0 && g.finish < 0 && strstr(g.err, "resumed") &&
		    g.unbound == NQ && g.rebound == NQ, "rollback (destination "
		    "gone before start): kicks let go of, then given back"))
		tap_diag("  dst %d finish %d unbound %d rebound %d: %s", g.dst,
			 g.finish, g.unbound, g.rebound, g.err);
	tap_ok(g.downtime_ok, "rollback (destination gone): nothing published "
	       "during the downtime was lost");
	traffic_ok(fe, "rollback (destination gone): traffic flows on the "
		   "source");
	mig_done(&g);
out:
	vdpa_dev_close(x);
	vdpa_dev_close(d[0]);
	vdpa_dev_close(d[1]);
	fe_free(fe);
	sim_stop(&s[0]);
	sim_stop(&s[1]);
	sim_stop(&s[2]);
}

/* ---- trap 2: the provisioned MAC, not the live one ----------------------- */

static void test_mac(void)
{
	static const char *const none[] = { NULL };
	static const char *const other[] = { "--mac", "02:00:00:00:00:99",
					     NULL };
	struct sim s[3] = { 0 };
	struct vdpa_dev *a = NULL, *b = NULL, *c = NULL;
	struct vdpa_mig_src *ms = NULL;
	struct vdpa_mig_dst *md = NULL;
	struct vdpa_state *dd = NULL;
	struct fe *fe = NULL;
	uint8_t live[6] = { 0 };
	void *desc = NULL;
	size_t dlen = 0;
	char err[512] = "";
	struct mig g;
	int r;

	tap_diag("trap 2: a MAC changed through the control queue");
	if (sim_start(&s[0], "m0", none) || sim_start(&s[1], "m1", none) ||
	    sim_start(&s[2], "m2", other) || !(a = sim_open(&s[0])) ||
	    !(b = sim_open(&s[1])) || !(c = sim_open(&s[2])) ||
	    !(fe = fe_new()) || fe_start(fe, a) || fe_configure(fe)) {
		tap_ok(0, "mac: set up");
		goto out;
	}
	r = vdpa_dev_get_config(a, 0, live, 6);
	tap_ok(r == 0 && !memcmp(live, guest_mac, 6), "mac: the source's live "
	       "config has the guest's MAC 02:00:00:00:00:42");

	r = vdpa_mig_dst_new(b, NULL, &md);
	if (!r)
		r = vdpa_mig_dst_describe(md, &desc, &dlen);
	if (!r)
		r = vdpa_state_decode(desc, dlen, 0, &dd, err, sizeof(err));
	tap_ok(!r && !memcmp(dd->cfg.mac, prov_mac, 6), "mac: the "
	       "destination's description has the provisioned MAC");
	r = vdpa_mig_src_new(a, NULL, &ms);
	if (!r)
		r = vdpa_mig_src_precheck(ms, desc, dlen, err, sizeof(err));
	if (!tap_ok(r == 0, "mac: precheck against a destination provisioned "
		    "alike passes"))
		tap_diag("  %s", err);
	vdpa_mig_src_free(ms);
	vdpa_mig_dst_free(md);
	vdpa_state_free(dd);
	free(desc);
	ms = NULL;
	md = NULL;
	desc = NULL;

	/* a destination provisioned with another MAC */
	err[0] = 0;
	r = vdpa_mig_dst_new(c, NULL, &md);
	if (!r)
		r = vdpa_mig_dst_describe(md, &desc, &dlen);
	if (!r)
		r = vdpa_mig_src_new(a, NULL, &ms);
	if (!r)
		r = vdpa_mig_src_precheck(ms, desc, dlen, err, sizeof(err));
	tap_ok(r == -EPROTO && strstr(err, "mac: source 00:11:22:33:44:55, "
				      "destination 02:00:00:00:00:99"),
	       "mac: a destination provisioned with another MAC is refused: %s",
	       err);
	vdpa_mig_src_free(ms);
	vdpa_mig_dst_free(md);
	free(desc);
	tap_ok(running(a), "mac: the source still runs");

	/* and the migration goes through, the guest's MAC with it */
	memset(&g, 0, sizeof(g));
	migrate_halves(fe, b, &g);
	tap_ok(g.plan && !memcmp(g.plan->cfg.mac, prov_mac, 6) &&
	       g.plan->has_net && !memcmp(g.plan->net.mac, guest_mac, 6),
	       "mac: the plan checks the provisioned MAC and carries the "
	       "guest's as class state");
	if (!tap_ok(!g.precheck && !g.dst && !g.finish, "mac: migrated"))
		tap_diag("  %s %s", g.err, g.why);
	traffic_ok(fe, "mac: frames to the guest's MAC arrive on the "
		   "destination");
	mig_done(&g);
out:
	vdpa_dev_close(a);
	vdpa_dev_close(b);
	vdpa_dev_close(c);
	fe_free(fe);
	sim_stop(&s[0]);
	sim_stop(&s[1]);
	sim_stop(&s[2]);
}

/* ---- trap 3: class state without the device-state extension -------------- */

/* Per kind: which part of the class state lets a frame through. */
static void class_checks(struct fe *fe, const char *where)
{
	struct tally t;
	uint32_t from;
	bool clean = fe_rounds(fe, &from);

	fe_tally(fe, from, &t);
	tap_ok(t.sent[K_MAC] && t.got[K_MAC] == t.sent[K_MAC], "%s: frames to "
	       "the guest's MAC arrive (%lu of %lu)", where, t.got[K_MAC],
	       t.sent[K_MAC]);
	tap_ok(t.sent[K_TABLE] && t.got[K_TABLE] == t.sent[K_TABLE], "%s: "
	       "frames to the MAC table's unicast entry arrive (%lu of %lu)",
	       where, t.got[K_TABLE], t.sent[K_TABLE]);
	tap_ok(t.sent[K_MCAST] && t.got[K_MCAST] == t.sent[K_MCAST], "%s: "
	       "multicast frames arrive: allmulti (%lu of %lu)", where,
	       t.got[K_MCAST], t.sent[K_MCAST]);
	tap_ok(t.pair_sent[1] && t.pair_got[1] == t.pair_sent[1], "%s: frames "
	       "on queue pair 1 arrive: 2 pairs (%lu of %lu)", where,
	       t.pair_got[1], t.pair_sent[1]);
	tap_ok(t.sent[K_OLD] && !t.got[K_OLD], "%s: frames to the provisioned "
	       "MAC are filtered (%lu of %lu let through)", where,
	       t.got[K_OLD], t.sent[K_OLD]);
	tap_ok(clean, "%s: nothing lost, duplicated or corrupted", where);
}

/* Refused before the source suspends; the source keeps running. */
static void refused_early(const char *what, const char *const *src_args,
			  const char *const *dst_args, const char *needle,
			  bool at_precheck)
{
	struct sim s[2] = { 0 };
	struct vdpa_dev *a = NULL, *b = NULL;
	struct fe *fe = NULL;
	uint32_t from;
	struct mig g;

	if (sim_start(&s[0], "e0", src_args) ||
	    sim_start(&s[1], "e1", dst_args) || !(a = sim_open(&s[0])) ||
	    !(b = sim_open(&s[1])) || !(fe = fe_new()) || fe_start(fe, a) ||
	    fe_configure(fe)) {
		tap_ok(0, "%s: set up", what);
		goto out;
	}
	memset(&g, 0, sizeof(g));
	migrate_halves(fe, b, &g);
	tap_ok((at_precheck ? g.precheck < 0 && g.prepare == 1 :
			      !g.precheck && g.prepare < 0) && g.err[0] &&
	       !strchr(g.err, '\n') && (!needle || strstr(g.err, needle)),
	       "%s: %s refuses it with one line: %s", what, at_precheck ?
	       "vdpa_mig_src_precheck" : "vdpa_mig_dst_prepare", g.err);
	tap_ok(running(a), "%s: the source's status is DRIVER_OK", what);
	tap_ok(fe_rounds(fe, &from), "%s: the source's traffic keeps flowing",
	       what);
	mig_done(&g);
out:
	vdpa_dev_close(a);
	vdpa_dev_close(b);
	fe_free(fe);
	sim_stop(&s[0]);
	sim_stop(&s[1]);
}

static void test_class_state(void)
{
	static const char *const nostate[] = { "--no-state", NULL };
	static const char *const noresume[] = { "--no-state", "--no-resume",
						NULL };
	struct sim s[2] = { 0 };
	struct vdpa_dev *a = NULL, *b = NULL;
	struct vdpa_state_net st;
	struct vdpa_mig_result res;
	struct fe *fe = NULL;
	char err[512] = "";
	uint8_t off = 0;
	struct mig g;
	int r;

	tap_diag("trap 3: class state on devices without the state extension");
	if (sim_start(&s[0], "c0", nostate) ||
	    sim_start(&s[1], "c1", nostate) ||
	    !(a = sim_open(&s[0])) || !(b = sim_open(&s[1])) ||
	    !(fe = fe_new()) || fe_start(fe, a) || fe_configure(fe)) {
		tap_ok(0, "class state: set up");
		goto refusals;
	}
	class_checks(fe, "on the source");
	r = vdpa_migrate(a, b, NULL, &res, err, sizeof(err));
	if (!tap_ok(r == 0 && res.state_bytes > 0, "class state: "
		    "vdpa_migrate to a --no-state destination"))
		tap_diag("  %s", err);
	if (!r)
		fe->dev = b;
	class_checks(fe, "on the destination");
	memset(&st, 0, sizeof(st));
	r = vdpa_dev_net_class(b, &st);
	tap_ok(!r && !memcmp(st.mac, guest_mac, 6) && st.queue_pairs == PAIRS &&
	       st.allmulti && st.n_uc == 1 && !memcmp(st.uc[0], table_mac, 6) &&
	       !st.n_mc, "class state: the destination's handle holds it");
	tap_is(fe_ctrl(fe, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off,
		       1, true), 0, "class state: the guest's control queue "
	       "answers on the destination after the library's replay");

	/* and back, half by half, the destination's record moving on */
	memset(&g, 0, sizeof(g));
	migrate_halves(fe, a, &g);
	if (!tap_ok(!g.precheck && !g.prepare && !g.dst && !g.finish,
		    "class state: migrated back, half by half"))
		tap_diag("  %s %s", g.err, g.why);
	tap_ok(g.window_ok, "class state: what was published in the "
	       "downtime came back from the destination");
	class_checks(fe, "back on the source");
	mig_done(&g);

refusals:
	vdpa_dev_close(a);
	vdpa_dev_close(b);
	fe_free(fe);
	sim_stop(&s[0]);
	sim_stop(&s[1]);

	/*
	 * A destination that cannot take the replay is refused while the
	 * source still runs: one without RESUME cannot be negotiated as the
	 * source was; and with neither having RESUME, the replay itself is
	 * impossible.
	 */
	refused_early("a --no-resume destination", nostate, noresume, NULL,
		      false);
	/* and a source that could not take its class state back either */
	refused_early("no RESUME on either side", noresume, noresume,
		      "a rollback could not restore", true);
}

/* ---- vdpa_dev_net_ctrl_record -------------------------------------------- */

static void test_record(void)
{
	static const char *const nostate[] = { "--no-state", NULL };
	static const struct {
		uint8_t cls, cmd;
		uint8_t data[24];
		size_t len;
		const char *what;
	} bad[] = {
		{ VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, { 2 }, 5,
		  "MAC_ADDR_SET of 5 bytes" },
		{ VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, { 2 }, 7,
		  "MAC_ADDR_SET of 7 bytes" },
		{ VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, { 2 }, 1,
		  "VQ_PAIRS_SET of 1 byte" },
		{ VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, { 0, 0 },
		  2, "VQ_PAIRS_SET 0" },
		{ VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, { 1, 1 }, 2,
		  "RX_PROMISC of 2 bytes" },
		{ VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, { 0 }, 0,
		  "RX_ALLMULTI of 0 bytes" },
		{ VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET,
		  { 2, 0, 0, 0, 2, 0, 0, 0, 0, 1 }, 10,
		  "MAC_TABLE_SET of 2 entries holding 1" },
		{ VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET,
		  { 0, 0, 0, 0, 0, 0, 0, 0, 9 }, 9,
		  "MAC_TABLE_SET with a trailing byte" },
		{ VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET,
		  { 0, 0, 0, 0 }, 4,
		  "MAC_TABLE_SET without its multicast part" },
	}, unknown[] = {
		{ VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, { 5, 0 }, 2,
		  "VLAN_ADD" },
		{ VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_RSS_CONFIG, { 0 }, 1,
		  "MQ_RSS_CONFIG" },
		{ VIRTIO_NET_CTRL_GUEST_OFFLOADS,
		  VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, { 0 }, 8,
		  "GUEST_OFFLOADS_SET" },
		{ VIRTIO_NET_CTRL_RX, 42, { 1 }, 1, "RX command 42" },
		{ 200, 0, { 0 }, 0, "class 200" },
	};
	struct sim s[2] = { 0 };
	struct vdpa_dev *a = NULL, *b = NULL;
	struct vdpa_state_net before, after;
	struct vdpa_mig_src *ms = NULL;
	struct vdpa_mig_dst *md = NULL;
	struct fe *fe = NULL;
	void *desc = NULL;
	size_t dlen = 0, i;
	char err[512] = "";
	bool all = true;
	int r;

	tap_diag("vdpa_dev_net_ctrl_record");
	if (sim_start(&s[0], "r0", nostate) ||
	    sim_start(&s[1], "r1", nostate) ||
	    !(a = sim_open(&s[0])) || !(b = sim_open(&s[1])) ||
	    !(fe = fe_new()) || fe_start(fe, a) || fe_configure(fe)) {
		tap_ok(0, "record: set up");
		goto out;
	}
	r = vdpa_dev_net_class(a, &before);
	tap_ok(r == 0 && !memcmp(before.mac, guest_mac, 6),
	       "record: the class state before them holds the guest's MAC");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = vdpa_dev_net_ctrl_record(a, bad[i].cls, bad[i].cmd,
					     bad[i].data, bad[i].len);
		if (r != -EINVAL) {
			tap_diag("  %s: %d", bad[i].what, r);
			all = false;
		}
	}
	r = vdpa_dev_net_ctrl_record(a, VIRTIO_NET_CTRL_RX,
				     VIRTIO_NET_CTRL_RX_PROMISC, NULL, 1);
	tap_ok(all && r == -EINVAL, "record: %zu malformed commands (and data "
	       "NULL) are refused with -EINVAL",
	       sizeof(bad) / sizeof(bad[0]));
	memset(&after, 0xa5, sizeof(after));
	r = vdpa_dev_net_class(a, &after);
	tap_ok(r == 0 && !memcmp(&before, &after, sizeof(before)), "record: "
	       "the class state is as before them");

	/* a migration is fine until a command the library cannot carry */
	r = vdpa_mig_dst_new(b, NULL, &md);
	if (!r)
		r = vdpa_mig_dst_describe(md, &desc, &dlen);
	if (!r)
		r = vdpa_mig_src_new(a, NULL, &ms);
	if (!r)
		r = vdpa_mig_src_precheck(ms, desc, dlen, err, sizeof(err));
	if (!tap_ok(r == 0, "record: before them, the precheck passes"))
		tap_diag("  %s", err);
	vdpa_mig_src_free(ms);
	ms = NULL;

	all = true;
	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		r = vdpa_dev_net_ctrl_record(a, unknown[i].cls, unknown[i].cmd,
					     unknown[i].data, unknown[i].len);
		if (r != -ENOTSUP) {
			tap_diag("  %s: %d", unknown[i].what, r);
			all = false;
		}
	}
	tap_ok(all, "record: %zu commands the library cannot carry are "
	       "refused with -ENOTSUP", sizeof(unknown) / sizeof(unknown[0]));
	{
		/* an announce acknowledged carries no state: taken, no-op */
		struct vdpa_state_net b0, b1;

		r = vdpa_dev_net_class(a, &b0);
		if (!r)
			r = vdpa_dev_net_ctrl_record(a, VIRTIO_NET_CTRL_ANNOUNCE,
						     VIRTIO_NET_CTRL_ANNOUNCE_ACK,
						     NULL, 0);
		if (!r)
			r = vdpa_dev_net_class(a, &b1);
		tap_ok(!r && !memcmp(&b0, &b1, sizeof(b0)), "record: "
		       "ANNOUNCE_ACK is taken and changes nothing");
	}
	err[0] = 0;
	r = vdpa_mig_src_new(a, NULL, &ms);
	if (!r)
		r = vdpa_mig_src_precheck(ms, desc, dlen, err, sizeof(err));
	tap_ok(r == -EOPNOTSUPP && strstr(err, "class 2 command 0"), "record: "
	       "a migration to a --no-state destination is then refused at "
	       "precheck, naming the first (VLAN_ADD): %s", err);
	tap_ok(vdpa_mig_src_state(ms) == NULL && running(a), "record: the "
	       "source was not suspended");
	traffic_ok(fe, "record: the source's traffic keeps flowing");
out:
	vdpa_mig_src_free(ms);
	vdpa_mig_dst_free(md);
	free(desc);
	vdpa_dev_close(a);
	vdpa_dev_close(b);
	fe_free(fe);
	sim_stop(&s[0]);
	sim_stop(&s[1]);
}

int main(void)
{
	char sim[PATH_MAX];

	signal(SIGPIPE, SIG_IGN);
	snprintf(sim, sizeof(sim), "%s/vdpa-sim", tu_build_dir());
	if (access(sim, X_OK))
		tap_skip_all("vdpa-sim is not built");
	if (tu_mkdtemp(dir, sizeof(dir)) || strlen(dir) > 80)
		tap_skip_all("no private temporary directory");
	vdpa_set_log(lib_log, NULL, getenv("FRONTEND_DEBUG") ? LOG_DEBUG :
		     LOG_WARNING);
	test_kicks();
	test_mac();
	test_class_state();
	test_record();
	tu_rmtree(dir);
	return tap_done();
}
