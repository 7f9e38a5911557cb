// SPDX-License-Identifier: MIT
/*
 * relay: serve's relay mode (vdpa-user/serve/relay.c) on vdpa-sim processes,
 * the test playing the guest: guest memory mapped at IOVA == GPA, rings of
 * the library's vq code, net loopback frames and blk stamped writes and
 * read-backs running while the device is switched to relay mode and back
 * several times; nothing lost, repeated or corrupt; the dirty log holds
 * every page the device wrote in relay mode and nothing else but the used
 * rings; bad arguments refused with one line, the device working on.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <vdpa-user/vdpa-user.h>
#include <vdpa-user/vq.h>

#include "relay.h"
#include "tap.h"
#include "testutil.h"

#define BIT(n)		(1ULL << (n))
#define GPA		0x100000ull	/* guest memory: IOVA == GPA */
#define MEM_SIZE	(8u << 20)
#define QSIZE		256
#define NRX		128
#define NTX		64
#define BUFSZ		2048
#define HDR		12		/* virtio_net_hdr_v1 */
#define MAX_SEQ		(1u << 20)
#define NSLOT		32		/* blk requests in flight */
#define NEXT		512		/* blk extents of 4 KiB */
#define MAX_REC		(1u << 20)
#define MAX_EPOCH	16

static const uint8_t mac[6] = { 0x02, 0, 0, 0, 0x52, 0x11 };
static const uint8_t other[6] = { 0x02, 0, 0, 0, 0x99, 0x99 };

static bool foreign(uint64_t seq)
{
	return seq % 7 == 3;
}
static char tmpdir[256];

/* What the guest saw at each used ring position of a queue. */
#define NRANGE		3
struct rec {
	uint64_t gpa[NRANGE];		/* writable buffers, in chain order */
	uint32_t len[NRANGE];
	uint32_t used_len;
};

/*
 * Indirect RX: a 2048-byte buffer in three pieces on three pages. Frames
 * end inside the second piece: the device never writes the third, whose
 * page must then not be in the log.
 */
static const uint32_t piece[NRANGE] = { HDR, 1500, BUFSZ - HDR - 1500 };

struct opts {
	const char *name;
	bool blk;
	const char *kernel;
	unsigned switches;
	bool indirect;			/* net RX through indirect tables */
	bool no_event_idx;
	bool set_log;			/* swap the log in the middle once */
	bool writeback;			/* blk: --cache writeback, FLUSH */
	bool no_state;			/* --no-state */
	int refuse;			/* relay_start must refuse: -errno */
	const char *iova_range;		/* --iova-range */
	bool two_regions;		/* guest memory as two adjacent regions */
	bool reverse;			/* queues handed over TX first */
};

struct epoch {
	uint64_t u0[2], u1[2];		/* used positions [u0, u1) in relay */
	uint8_t *log;			/* the log after relay_stop */
	struct relay_counters c;
};

struct guest {
	const char *name;
	bool blk, indirect, two_regions, reverse;
	pid_t pid;
	struct vdpa_dev *dev;
	struct vdpa_mem *mem;
	struct vdpa_vq *vq[2];
	unsigned nvq;
	bool event_idx;
	uint8_t *host;			/* guest memory base */
	/* net */
	uint8_t *rxbuf, *txbuf;
	uint8_t *pieces;		/* indirect: 3 pages per RX buffer */
	struct vring_desc *tables;	/* indirect: 3 entries per RX buffer */
	struct vring_desc *rxdesc;	/* the RX ring's descriptor table */
	bool tx_busy[NTX];
	uint64_t sent, received;
	uint64_t expected;		/* frames sent to our own MAC */
	uint8_t *seen;
	/* blk */
	struct slot {
		struct virtio_blk_outhdr *hdr;
		uint8_t *data, *status;
		uint32_t ext, gen;
		bool reading, busy;
	} slot[NSLOT];
	uint32_t gen[NEXT];
	uint64_t writes, reads;
	/* both */
	struct rec *rec[2];
	uint64_t pos[2];		/* completions reaped per queue */
	uint64_t lost, dup, corrupt, bad;
	bool stop;
	bool poison;			/* post one malformed RX chain */
	bool abandon;			/* stop without waiting for traffic */
	pthread_t th;
	/* the log */
	uint8_t *log;
	uint64_t log_size;
	struct epoch ep[MAX_EPOCH];
	unsigned nep;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t gpa_of(const struct guest *g, const void *p)
{
	return GPA + (uint64_t)((const uint8_t *)p - g->host);
}

static void record(struct guest *g, unsigned q, const struct rec *r)
{
	if (g->pos[q] < MAX_REC)
		g->rec[q][g->pos[q]] = *r;
	__atomic_store_n(&g->pos[q], g->pos[q] + 1, __ATOMIC_RELAXED);
}

/* ---- net: sequence-numbered frames looped back -------------------------- */

static size_t frame_len(uint64_t seq)
{
	return 60 + (seq * 37) % 1400;
}

static uint8_t fpat(uint64_t seq, size_t i)
{
	return (uint8_t)(seq * 131 + i * 7 + (i >> 8));
}

static int net_send(struct guest *g)
{
	unsigned s;

	for (s = 0; s < NTX && g->tx_busy[s]; s++)
		;
	if (s == NTX)
		return 0;
	{
		uint8_t *b = g->txbuf + (size_t)s * BUFSZ, *f = b + HDR;
		uint64_t seq = g->sent;
		size_t len = frame_len(seq), i;
		struct vdpa_sg sg = { b, (uint32_t)(HDR + len) };
		int r;

		memset(b, 0, HDR);
		/*
		 * Every 7th frame to another MAC: the device completes it on
		 * TX and drops it, so TX and RX stand at different indexes.
		 */
		memcpy(f, foreign(seq) ? other : mac, 6);
		memcpy(f + 6, mac, 6);
		f[12] = 0x88;
		f[13] = 0xb5;
		memcpy(f + 14, &seq, 8);
		for (i = 22; i < len; i++)
			f[i] = fpat(seq, i);
		r = vdpa_vq_add(g->vq[1], &sg, 1, 0, s);
		if (r < 0)
			return r;
		g->tx_busy[s] = true;
		g->sent++;
		g->expected += !foreign(seq);
	}
	return 1;
}

static uint8_t *piece_of(struct guest *g, unsigned i, unsigned k)
{
	return g->pieces + ((size_t)i * NRANGE + k) * 4096;
}

/*
 * The library's vq has no indirect chains: add a one-descriptor chain,
 * then turn that descriptor (before it is published) into an indirect
 * one whose table splits the buffer into three pieces on three pages.
 */
static int rx_post(struct guest *g, unsigned i)
{
	struct vdpa_sg sg = { g->rxbuf + (size_t)i * BUFSZ, BUFSZ };
	uint64_t a = gpa_of(g, sg.addr);
	struct vring_desc *t;
	unsigned d, k;
	int r;

	r = vdpa_vq_add(g->vq[0], &sg, 0, 1, i);
	if (r < 0 || !g->indirect)
		return r;
	for (d = 0; d < QSIZE && g->rxdesc[d].addr != a; d++)
		;
	if (d == QSIZE)
		return -EIO;
	t = g->tables + (size_t)i * NRANGE;
	for (k = 0; k < NRANGE; k++)
		t[k] = (struct vring_desc){
			.addr = gpa_of(g, piece_of(g, i, k)), .len = piece[k],
			.flags = VRING_DESC_F_WRITE |
				 (k + 1 < NRANGE ? VRING_DESC_F_NEXT : 0),
			.next = (uint16_t)(k + 1),
		};
	g->rxdesc[d] = (struct vring_desc){
		.addr = gpa_of(g, t), .len = sizeof(*t) * NRANGE,
		.flags = VRING_DESC_F_INDIRECT,
	};
	return 0;
}

static void on_rx(struct guest *g, unsigned i, uint32_t len)
{
	const uint8_t *f = g->rxbuf + (size_t)i * BUFSZ + HDR;
	uint8_t gather[BUFSZ];
	uint64_t seq;
	size_t k, flen;

	if (g->indirect) {
		memcpy(gather, piece_of(g, i, 0), piece[0]);
		memcpy(gather + piece[0], piece_of(g, i, 1), piece[1]);
		memcpy(gather + piece[0] + piece[1], piece_of(g, i, 2),
		       piece[2]);
		f = gather + HDR;
	}

	memcpy(&seq, f + 14, 8);
	if (len < HDR + 22 || seq >= g->sent || seq >= MAX_SEQ ||
	    foreign(seq)) {
		g->corrupt++;
		return;
	}
	flen = frame_len(seq);
	if (len != HDR + flen) {
		g->corrupt++;
		return;
	}
	for (k = 22; k < flen; k++)
		if (f[k] != fpat(seq, k)) {
			g->corrupt++;
			return;
		}
	if (g->seen[seq]++)
		g->dup++;
	g->received++;
}

static void net_reap(struct guest *g)
{
	uint64_t tok;
	uint32_t len;
	int r;

	while ((r = vdpa_vq_get_used(g->vq[0], &tok, &len)) == 1) {
		struct rec rc = { { gpa_of(g, g->rxbuf + tok * BUFSZ) },
				  { BUFSZ }, len };
		unsigned k;

		for (k = 0; g->indirect && k < NRANGE; k++) {
			rc.gpa[k] = gpa_of(g, piece_of(g, (unsigned)tok, k));
			rc.len[k] = piece[k];
		}

		record(g, 0, &rc);
		on_rx(g, (unsigned)tok, len);
		if (rx_post(g, (unsigned)tok) < 0)
			g->bad++;
	}
	if (r < 0)
		g->bad++;
	vdpa_vq_kick(g->vq[0]);
	while ((r = vdpa_vq_get_used(g->vq[1], &tok, &len)) == 1) {
		struct rec rc = { { 0 }, { 0 }, len };

		record(g, 1, &rc);
		if (tok < NTX && g->tx_busy[tok])
			g->tx_busy[tok] = false;
		else
			g->bad++;
	}
	if (r < 0)
		g->bad++;
}

static bool net_step(struct guest *g)
{
	bool sent = false;

	while (!g->stop && g->pos[0] < MAX_REC - 2 * QSIZE &&
	       g->expected - g->received < NRX - 8 &&
	       g->sent < MAX_SEQ && net_send(g) == 1)
		sent = true;
	if (sent)
		vdpa_vq_kick(g->vq[1]);
	if (__atomic_exchange_n(&g->poison, false, __ATOMIC_ACQ_REL)) {
		/* an RX buffer the device may only read: it must give up */
		struct vdpa_sg sg = { g->txbuf, BUFSZ };

		if (vdpa_vq_add(g->vq[0], &sg, 1, 0, NRX) < 0)
			g->bad++;
	}
	net_reap(g);
	return g->received < g->expected;
}

/* ---- blk: stamped writes, read back ---------------------------------------- */

static uint64_t stamp(uint32_t ext, uint32_t gen, size_t w)
{
	return ((uint64_t)ext << 40) ^ ((uint64_t)gen << 12) ^ w ^
	       0x5a5a000000000000ull;
}

static int blk_submit(struct guest *g, unsigned i)
{
	struct slot *s = &g->slot[i];
	struct vdpa_sg sg[3] = {
		{ s->hdr, sizeof(*s->hdr) }, { s->data, 4096 }, { s->status, 1 },
	};
	size_t w;

	s->hdr->type = s->reading ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
	s->hdr->ioprio = 0;
	s->hdr->sector = (uint64_t)s->ext * 8;
	*s->status = 0xff;
	if (!s->reading)
		for (w = 0; w < 512; w++)
			((uint64_t *)s->data)[w] = stamp(s->ext, s->gen, w);
	else
		memset(s->data, 0xee, 4096);
	s->busy = true;
	return s->reading ? vdpa_vq_add(g->vq[0], sg, 1, 2, i) :
			    vdpa_vq_add(g->vq[0], sg, 2, 1, i);
}

static void blk_done(struct guest *g, unsigned i, uint32_t len)
{
	struct slot *s = &g->slot[i];
	struct rec rc = { { 0, gpa_of(g, s->status) }, { 0, 1 }, len };

	/* a write's data is only read by the device */
	size_t w;

	if (s->reading) {
		rc.gpa[0] = gpa_of(g, s->data);
		rc.len[0] = 4096;
	}
	record(g, 0, &rc);
	s->busy = false;
	if (*s->status != VIRTIO_BLK_S_OK) {
		g->corrupt++;
		return;
	}
	if (!s->reading) {
		g->writes++;
		g->gen[s->ext] = s->gen;
		s->reading = true;
		return;
	}
	for (w = 0; w < 512; w++)
		if (((uint64_t *)s->data)[w] != stamp(s->ext, s->gen, w)) {
			g->corrupt++;
			break;
		}
	g->reads++;
	s->reading = false;
	s->ext = (s->ext + NSLOT) % NEXT;
	s->gen = g->gen[s->ext] + 1;
}

static bool blk_step(struct guest *g)
{
	bool any = false, busy = false;
	uint64_t tok;
	uint32_t len;
	unsigned i;
	int r;

	while ((r = vdpa_vq_get_used(g->vq[0], &tok, &len)) == 1) {
		if (tok < NSLOT && g->slot[tok].busy)
			blk_done(g, (unsigned)tok, len);
		else
			g->bad++;
	}
	if (r < 0)
		g->bad++;
	for (i = 0; i < NSLOT; i++) {
		if (g->slot[i].busy) {
			busy = true;
			continue;
		}
		/* a read-back is always finished, even when stopping */
		if ((g->stop || g->pos[0] >= MAX_REC - 2 * QSIZE) &&
		    !g->slot[i].reading)
			continue;
		if (blk_submit(g, i) < 0)
			g->bad++;
		any = busy = true;
	}
	if (any)
		vdpa_vq_kick(g->vq[0]);
	return busy;
}

/*
 * After the traffic: every extent ever written reads back with its last
 * stamp (a write lost at a switch after it was read back shows here).
 */
static bool blk_verify_all(struct guest *g, uint64_t *ret_bad)
{
	struct slot *s = &g->slot[0];
	uint64_t tok, t;
	uint32_t e, len;
	size_t w;
	int r;

	*ret_bad = 0;
	for (e = 0; e < NEXT; e++) {
		if (!g->gen[e])
			continue;
		s->ext = e;
		s->gen = g->gen[e];
		s->reading = true;
		if (blk_submit(g, 0) < 0 || vdpa_vq_kick(g->vq[0]) < 0)
			return false;
		t = now_ms() + 5000;
		while ((r = vdpa_vq_get_used(g->vq[0], &tok, &len)) == 0 &&
		       now_ms() < t)
			vdpa_vq_wait(g->vq[0], 100);
		if (r != 1)
			return false;
		s->busy = false;
		if (*s->status != VIRTIO_BLK_S_OK)
			(*ret_bad)++;
		else
			for (w = 0; w < 512; w++)
				if (((uint64_t *)s->data)[w] !=
				    stamp(e, g->gen[e], w)) {
					(*ret_bad)++;
					break;
				}
	}
	return true;
}

/* ---- the guest thread ----------------------------------------------------- */

static void *guest_thread(void *arg)
{
	struct guest *g = arg;
	struct pollfd p[2];
	uint64_t deadline = 0;
	unsigned i;

	for (i = 0; i < g->nvq; i++)
		p[i] = (struct pollfd){ .fd = vdpa_vq_call_fd(g->vq[i]),
					.events = POLLIN };
	for (;;) {
		uint64_t before = g->pos[0] + g->pos[1];
		bool pending = g->blk ? blk_step(g) : net_step(g);
		/* as fast as the device goes; sleep only when nothing came */
		int wait = g->pos[0] + g->pos[1] != before ? 0 : 5;

		if (__atomic_load_n(&g->abandon, __ATOMIC_ACQUIRE))
			break;
		if (__atomic_load_n(&g->stop, __ATOMIC_ACQUIRE)) {
			if (!deadline)
				deadline = now_ms() + 5000;
			if (!pending || now_ms() > deadline)
				break;
		}
		if (poll(p, g->nvq, wait) > 0)
			for (i = 0; i < g->nvq; i++) {
				uint64_t v;

				if ((p[i].revents & POLLIN) &&
				    read(p[i].fd, &v, sizeof(v)) < 0)
					g->bad++;
			}
	}
	return NULL;
}

/* ---- setting the guest up ---------------------------------------------------- */

static int guest_open(struct guest *g, const struct opts *o)
{
	const char *name = o->name, *kernel = o->kernel;
	bool blk = o->blk;
	const char *args[16];
	char sock[300], dev[310], backing[300];
	struct vdpa_caps caps;
	uint64_t f, acked;
	unsigned i, n = 0;
	void *p = NULL;
	int r;

	memset(g, 0, sizeof(*g));
	g->name = name;
	g->blk = blk;
	g->indirect = o->indirect;
	g->two_regions = o->two_regions;
	g->reverse = o->reverse && !o->blk;
	g->nvq = blk ? 1 : 2;
	snprintf(sock, sizeof(sock), "%s/%s.sock", tmpdir, name);
	snprintf(dev, sizeof(dev), "sim:%s", sock);
	args[n++] = "--type";
	args[n++] = blk ? "blk" : "net";
	args[n++] = "--mac";
	args[n++] = "02:00:00:00:52:11";
	if (kernel) {
		args[n++] = "--kernel";
		args[n++] = kernel;
	}
	if (o->writeback) {
		FILE *img;

		snprintf(backing, sizeof(backing), "%s/%s.img", tmpdir, name);
		img = fopen(backing, "w");
		if (!img || ftruncate(fileno(img), 8 << 20) < 0) {
			if (img)
				fclose(img);
			return -EIO;
		}
		fclose(img);
		args[n++] = "--backing";
		args[n++] = backing;
		args[n++] = "--cache";
		args[n++] = "writeback";
	}
	if (o->no_state)
		args[n++] = "--no-state";
	if (o->iova_range) {
		args[n++] = "--iova-range";
		args[n++] = o->iova_range;
	}
	args[n] = NULL;
	g->pid = tu_spawn_sim(sock, args);
	if (g->pid < 0)
		return (int)g->pid;
	r = vdpa_dev_open(dev, &g->dev);
	if (!r)
		r = vdpa_dev_get_caps(g->dev, &caps);
	if (r < 0)
		return r;
	r = vdpa_dev_set_backend_features(g->dev, caps.backend_features,
					  &acked);
	if (r < 0)
		return r;
	f = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_ACCESS_PLATFORM);
	if (!o->no_event_idx)
		f |= BIT(VIRTIO_RING_F_EVENT_IDX);
	if (o->indirect)
		f |= BIT(VIRTIO_RING_F_INDIRECT_DESC);
	if (o->writeback)
		f |= BIT(VIRTIO_BLK_F_FLUSH);
	if (!blk)
		f |= BIT(VIRTIO_NET_F_MAC);
	g->event_idx = !o->no_event_idx;
	r = vdpa_dev_set_features(g->dev, f & caps.features);
	if (r < 0)
		return r;
	r = vdpa_mem_create(MEM_SIZE, GPA, &g->mem);
	if (!r)
		r = vdpa_mem_map(g->dev, g->mem);
	if (r < 0)
		return r;
	g->host = vdpa_mem_base(g->mem);
	for (i = 0; i < g->nvq && !r; i++) {
		r = vdpa_vq_create(g->mem, QSIZE, g->event_idx, &g->vq[i]);
		if (!r)
			r = vdpa_vq_attach(g->vq[i], g->dev, i, 0);
		if (!r)
			r = vdpa_dev_set_vring_enable(g->dev, i, true);
		g->rec[i] = calloc(MAX_REC, sizeof(struct rec));
		if (!g->rec[i])
			r = -ENOMEM;
	}
	if (r < 0)
		return r;
	/* buffers page-aligned, apart from the rings */
	if (!blk) {
		r = vdpa_mem_alloc(g->mem, NRX * BUFSZ, 4096, &p);
		g->rxbuf = p;
		if (!r)
			r = vdpa_mem_alloc(g->mem, NTX * BUFSZ, 4096, &p);
		g->txbuf = p;
		if (!r && o->indirect) {
			struct vdpa_vring_info info = { 0 };

			r = vdpa_mem_alloc(g->mem, (size_t)NRX * NRANGE * 4096,
					   4096, &p);
			g->pieces = p;
			if (!r)
				r = vdpa_mem_alloc(g->mem, NRX * NRANGE * 16,
						   4096, &p);
			g->tables = p;
			if (!r)
				r = vdpa_dev_get_vring(g->dev, 0, &info);
			g->rxdesc = (void *)(g->host + (info.desc - GPA));
		}
		g->seen = calloc(MAX_SEQ, 1);
		if (!g->seen)
			r = -ENOMEM;
		for (i = 0; i < NRX && !r; i++)
			r = rx_post(g, i);
	} else {
		uint8_t *hs = NULL, *st = NULL;

		r = vdpa_mem_alloc(g->mem, 4096, 4096, &p);
		hs = p;
		if (!r)
			r = vdpa_mem_alloc(g->mem, 4096, 4096, &p);
		st = p;
		for (i = 0; i < NSLOT && !r; i++) {
			r = vdpa_mem_alloc(g->mem, 4096, 4096, &p);
			g->slot[i].data = p;
			g->slot[i].hdr = (void *)(hs + 64 * i);
			g->slot[i].status = st + 64 * i;
			g->slot[i].ext = i;
			g->slot[i].gen = 1;
		}
	}
	if (r < 0)
		return r;
	r = vdpa_dev_add_status(g->dev, VIRTIO_CONFIG_S_DRIVER_OK);
	if (!r && !blk)
		r = vdpa_vq_kick(g->vq[0]);
	/* the log: exactly enough for guest memory */
	g->log_size = (GPA + MEM_SIZE - 1) / RELAY_LOG_PAGE / 8 + 1;
	g->log = calloc(1, g->log_size);
	if (!g->log)
		r = -ENOMEM;
	return r;
}

static void guest_close(struct guest *g)
{
	unsigned i;

	for (i = 0; i < 2; i++) {
		vdpa_vq_destroy(g->vq[i]);
		free(g->rec[i]);
	}
	for (i = 0; i < g->nep; i++)
		free(g->ep[i].log);
	vdpa_dev_close(g->dev);
	vdpa_mem_destroy(g->mem);
	free(g->seen);
	free(g->log);
	if (g->pid > 0)
		tu_stop_sim(g->pid, false);
}

static int fill_vqs(struct guest *g, struct relay_vq *v)
{
	unsigned i;
	int r;

	for (i = 0; i < g->nvq; i++) {
		struct vdpa_vring_info info;

		r = vdpa_dev_get_vring(g->dev, i, &info);
		if (r < 0)
			return r;
		memset(&v[i], 0, sizeof(v[i]));
		v[i].idx = i;
		v[i].num = info.num;
		v[i].desc_gpa = info.desc;
		v[i].avail_gpa = info.avail;
		v[i].used_gpa = info.used;
		v[i].kick_fd = vdpa_vq_kick_fd(g->vq[i]);
		v[i].call_fd = vdpa_vq_call_fd(g->vq[i]);
		r = vdpa_dev_get_vring_base(g->dev, i, &v[i].last_avail);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- switching ----------------------------------------------------------------- */

/* Unwrap a 16-bit ring index next to a 64-bit count known to be near it. */
static uint64_t unwrap(uint64_t near, uint16_t v)
{
	return near + (uint16_t)(v - (uint16_t)near) -
	       ((uint16_t)(v - (uint16_t)near) >= 0x8000 ? 0x10000 : 0);
}

static uint64_t progress(struct guest *g)
{
	return __atomic_load_n(&g->pos[0], __ATOMIC_RELAXED);
}

/* The guest's traffic moves within a second. */
static bool moving(struct guest *g)
{
	uint64_t p0 = progress(g), t = now_ms() + 1000;

	while (now_ms() < t)
		if (progress(g) > p0 + 10)
			return true;
		else
			usleep(1000);
	return false;
}

/*
 * Relay for at least ms and until the relay has forwarded min more
 * completions (a loaded machine may starve a short window), at most 5 s.
 */
static void relay_for(struct relay *rl, unsigned ms, uint64_t min)
{
	uint64_t t0 = now_ms(), base;
	struct relay_counters c;

	relay_counters(rl, &c);
	base = c.used_fwd;
	do {
		usleep(2000);
		relay_counters(rl, &c);
	} while ((now_ms() - t0 < ms || c.used_fwd - base < min) &&
		 now_ms() - t0 < 5000);
}

/*
 * One passthrough -> relay -> passthrough round. set_log: a second log
 * takes over half-way (the first must not change after that). run false:
 * the device is left suspended on the guest rings, then resumed here.
 */
static bool one_switch(struct guest *g, unsigned ms_relay, bool run,
		       bool set_log)
{
	struct relay_region reg[2] = { { GPA, MEM_SIZE, g->host } };
	struct relay_log log = { g->log, g->log_size }, log2;
	struct relay_vq v[2];
	struct epoch *e = &g->ep[g->nep];
	uint8_t *second = NULL, *snap = NULL;
	uint16_t last[2];
	struct relay *rl = NULL;
	char err[256] = "";
	bool ok = false;
	unsigned i;
	uint64_t k;
	int r;

	r = vdpa_dev_suspend(g->dev);
	if (!r)
		r = fill_vqs(g, v);
	if (r < 0) {
		tap_diag("%s: suspend: %s", g->name, strerror(-r));
		return false;
	}
	memset(g->log, 0, g->log_size);
	for (i = 0; i < g->nvq; i++)
		e->u0[i] = unwrap(__atomic_load_n(&g->pos[i], __ATOMIC_RELAXED),
				  v[i].last_avail);
	if (g->two_regions) {
		/*
		 * The boundary one byte into a piece of RX buffer 10, whose
		 * page nothing else shares: every write to it spans both.
		 */
		uint64_t cut = gpa_of(g, piece_of(g, 10, 1)) + 1 - GPA;

		reg[0].size = cut;
		reg[1] = (struct relay_region){ GPA + cut, MEM_SIZE - cut,
						g->host + cut };
	}
	if (g->reverse) {
		struct relay_vq t = v[0];

		v[0] = v[1];
		v[1] = t;
	}
	r = relay_start(&rl, g->dev, reg, g->two_regions ? 2 : 1, v, g->nvq,
			&log, err, sizeof(err));
	if (g->reverse) {
		struct relay_vq t = v[0];

		v[0] = v[1];
		v[1] = t;
	}
	if (r < 0) {
		tap_diag("%s: relay_start: %s", g->name, err);
		return false;
	}
	if (set_log) {
		second = calloc(1, g->log_size);
		snap = malloc(g->log_size);
		if (!second || !snap)
			goto out_stop;
		relay_for(rl, ms_relay / 2, 100);
		log2 = (struct relay_log){ second, g->log_size };
		r = relay_set_log(rl, &log2, err, sizeof(err));
		tap_is(r, 0, "%s: relay_set_log to a second log", g->name);
		memcpy(snap, g->log, g->log_size);
		relay_for(rl, ms_relay / 2, 100);
	} else {
		relay_for(rl, ms_relay, 100);
	}
	ok = true;
out_stop:
	r = relay_stop_ex(rl, run, last, &e->c, err, sizeof(err));
	if (r < 0) {
		tap_diag("%s: relay_stop: %s", g->name, err);
		ok = false;
	}
	if (g->reverse) {
		/* ret_last_avail follows the order relay_start was given */
		uint16_t t = last[0];

		last[0] = last[1];
		last[1] = t;
	}
	if (!ok)
		goto out;
	if (set_log) {
		for (k = 0; k < g->log_size && !second[k]; k++)
			;
		tap_ok(!memcmp(snap, g->log, g->log_size) &&
		       k < g->log_size,
		       "%s: after relay_set_log the first log is left alone, "
		       "the second one is written", g->name);
		for (k = 0; k < g->log_size; k++)
			g->log[k] |= second[k];
	}
	if (!run) {
		const struct vring_used *u = (const void *)(g->host +
							     (v[0].used_gpa - GPA));
		uint16_t b[2], u0 = __atomic_load_n(&u->idx, __ATOMIC_ACQUIRE);

		usleep(50000);
		for (i = 0, r = 0; i < g->nvq && !r; i++)
			r = vdpa_dev_get_vring_base(g->dev, i, &b[i]);
		tap_ok(!r && u0 == __atomic_load_n(&u->idx, __ATOMIC_ACQUIRE) &&
		       u0 == last[0] && b[0] == last[0] &&
		       (g->nvq < 2 || b[1] == last[1]),
		       "%s: relay_stop(run=false) leaves the device suspended "
		       "at the bases it returned (%u), the guest's used ring "
		       "still", g->name, last[0]);
		r = vdpa_dev_resume(g->dev);
		tap_ok(!r && moving(g), "%s: resumed, traffic goes on",
		       g->name);
	}
	/* the guest has reaped all but at most a ring's worth of them */
	for (i = 0; i < g->nvq; i++)
		e->u1[i] = unwrap(__atomic_load_n(&g->pos[i], __ATOMIC_RELAXED),
				  last[i]);
	e->log = malloc(g->log_size);
	if (!e->log) {
		ok = false;
		goto out;
	}
	memcpy(e->log, g->log, g->log_size);
	g->nep++;
out:
	free(second);
	free(snap);
	return ok;
}

/* ---- bad arguments ---------------------------------------------------------------- */

static bool one_line(const char *err)
{
	return err[0] && !strchr(err, '\n');
}

enum bad {
	BAD_LOG_SMALL, BAD_LOG_NONE, BAD_RING_OUTSIDE, BAD_DESC_ALIGN,
	BAD_LAST_AVAIL, BAD_OVERLAP, BAD_NOT_SET_UP, BAD_TWICE, BAD_SIZE,
	BAD_NO_KICK, BAD_NO_QUEUES, BAD_MAX
};

static const char *const bad_name[BAD_MAX] = {
	"a log one byte too small for guest memory", "no log",
	"a used ring past guest memory", "a misaligned descriptor table",
	"a last_avail the device does not stand at", "overlapping regions",
	"a queue the device has not set up", "a queue given twice",
	"a ring size the device does not have", "no kick eventfd",
	"no queues",
};

static void bad_inputs(struct guest *g)
{
	struct relay_region reg[2] = { { GPA, MEM_SIZE, g->host },
				       { GPA + 4096, 4096, g->host } };
	int fds = tap_count_fds();
	unsigned b;

	for (b = 0; b < BAD_MAX; b++) {
		struct relay_log log = { g->log, g->log_size };
		struct relay_vq v[2];
		struct relay *rl = NULL;
		unsigned nreg = 1, nvq = g->nvq;
		char err[256] = "";
		int r;

		r = vdpa_dev_suspend(g->dev);
		if (!r)
			r = fill_vqs(g, v);
		if (r < 0)
			break;
		switch (b) {
		case BAD_LOG_SMALL: log.size--; break;
		case BAD_LOG_NONE: log.bitmap = NULL; break;
		case BAD_RING_OUTSIDE: v[0].used_gpa = GPA + MEM_SIZE - 64; break;
		case BAD_DESC_ALIGN: v[0].desc_gpa += 8; break;
		case BAD_LAST_AVAIL: v[0].last_avail++; break;
		case BAD_OVERLAP: nreg = 2; break;
		case BAD_NOT_SET_UP: v[1].idx = 2; break;
		case BAD_TWICE: v[1] = v[0]; break;
		case BAD_SIZE: v[0].num /= 2; break;
		case BAD_NO_KICK: v[0].kick_fd = -1; break;
		case BAD_NO_QUEUES: nvq = 0; break;
		}
		r = relay_start(&rl, g->dev, reg, nreg, v, nvq, &log, err,
				sizeof(err));
		tap_ok(r == -EINVAL && !rl && one_line(err),
		       "%s: %s: refused (%d) with one line: %s", g->name,
		       bad_name[b], r, err);
		r = vdpa_dev_resume(g->dev);
		tap_ok(!r && moving(g), "%s: after %s the device runs on, "
		       "traffic moves", g->name, bad_name[b]);
	}
	tap_is(tap_count_fds(), fds, "%s: no fd leaked by the refusals",
	       g->name);
}

/* A device without SUSPEND cannot be moved: refused before anything. */
static void no_suspend(void)
{
	const char *args[] = { "--type", "net", "--no-suspend", NULL };
	struct relay_vq v = { .num = QSIZE, .kick_fd = 0, .call_fd = 0 };
	char sock[300], name[310], err[256] = "";
	uint8_t log[64], host[4096];
	struct relay_region reg = { 0, 4096, host };
	struct relay_log l = { log, sizeof(log) };
	struct vdpa_dev *dev = NULL;
	struct relay *rl = NULL;
	pid_t pid;
	int r;

	snprintf(sock, sizeof(sock), "%s/nosusp.sock", tmpdir);
	snprintf(name, sizeof(name), "sim:%s", sock);
	pid = tu_spawn_sim(sock, args);
	r = pid < 0 ? (int)pid : vdpa_dev_open(name, &dev);
	if (!r)
		r = vdpa_dev_set_backend_features(dev, ~0ULL, NULL);
	if (!r)
		r = relay_start(&rl, dev, &reg, 1, &v, 1, &l, err,
				sizeof(err));
	tap_ok(r == -EOPNOTSUPP && !rl && one_line(err), "a device without "
	       "SUSPEND: relay_start refused (%d) with one line: %s", r, err);
	vdpa_dev_close(dev);
	if (pid > 0)
		tu_stop_sim(pid, false);
}

/* ---- checking the log ------------------------------------------------------------ */

static bool bit(const uint8_t *log, uint64_t page)
{
	return log[page / 8] & (1u << (page % 8));
}

static void mark(uint8_t *set, uint64_t gpa, uint64_t len)
{
	uint64_t p;

	for (p = gpa / RELAY_LOG_PAGE; len && p <= (gpa + len - 1) /
	     RELAY_LOG_PAGE; p++)
		set[p / 8] |= (uint8_t)(1u << (p % 8));
}

/*
 * Every page the device wrote in an epoch (buffers up to the used length,
 * used ring entries, used->idx) is in the log; nothing else is, but the
 * used rings' pages (the documented set: avail_event and idx are there).
 */
static void check_epochs(struct guest *g, const struct relay_vq *v,
			 uint64_t *ret_missing, uint64_t *ret_extra,
			 uint64_t *ret_used_fwd, uint64_t *ret_pos_fwd)
{
	uint8_t *want = malloc(g->log_size), *allow = malloc(g->log_size);
	unsigned k, q, j;
	uint64_t missing = 0, extra = 0, p, n, used_fwd = 0, pos_fwd = 0;

	if (!want || !allow)
		goto out;
	for (k = 0; k < g->nep; k++) {
		struct epoch *e = &g->ep[k];

		memset(want, 0, g->log_size);
		memset(allow, 0, g->log_size);
		used_fwd += e->c.used_fwd;
		for (q = 0; q < g->nvq; q++) {
			pos_fwd += e->u1[q] - e->u0[q];
			mark(allow, v[q].used_gpa, 6 + 8ull * v[q].num);
			if (e->u1[q] > e->u0[q])
				mark(want, v[q].used_gpa + 2, 2);
			for (n = e->u0[q]; n < e->u1[q] && n < MAX_REC; n++) {
				const struct rec *rc = &g->rec[q][n];
				uint32_t left = rc->used_len;

				mark(want, v[q].used_gpa + 4 +
				     8 * (n % v[q].num), 8);
				for (j = 0; j < NRANGE; j++) {
					uint32_t w = rc->len[j] < left ?
						     rc->len[j] : left;

					mark(want, rc->gpa[j], w);
					left -= w;
				}
			}
		}
		for (p = 0; p < g->log_size * 8; p++) {
			if (bit(want, p) && !bit(e->log, p))
				missing++;
			if (bit(e->log, p) && !bit(want, p) && !bit(allow, p))
				extra++;
		}
	}
out:
	free(want);
	free(allow);
	*ret_missing = missing;
	*ret_extra = extra;
	*ret_used_fwd = used_fwd;
	*ret_pos_fwd = pos_fwd;
}

/*
 * A device that gives up on the shadow rings (NEEDS_RESET): relay_stop
 * says so instead of hiding it under the reset of the move back.
 */
static void poisoned(void)
{
	static const struct opts o = { .name = "net-needs-reset" };
	struct guest *g = calloc(1, sizeof(*g));
	struct relay_region reg;
	struct relay_log log;
	struct relay_vq v[2];
	struct relay *rl = NULL;
	char err[256] = "";
	int r;

	if (!g)
		return;
	r = guest_open(g, &o);
	if (!tap_is_ok(r, 0, "%s: guest set up", o.name))
		goto out;
	reg = (struct relay_region){ GPA, MEM_SIZE, g->host };
	log = (struct relay_log){ g->log, g->log_size };
	pthread_create(&g->th, NULL, guest_thread, g);
	usleep(20000);
	r = vdpa_dev_suspend(g->dev);
	if (!r)
		r = fill_vqs(g, v);
	if (!r)
		r = relay_start(&rl, g->dev, &reg, 1, v, g->nvq, &log, err,
				sizeof(err));
	if (tap_is_ok(r, 0, "%s: relay_start", o.name)) {
		__atomic_store_n(&g->poison, true, __ATOMIC_RELEASE);
		usleep(100000);
		r = relay_stop(rl, true, NULL, err, sizeof(err));
		tap_ok(r == -EIO && one_line(err) && strstr(err, "NEEDS_RESET"),
		       "%s: relay_stop reports the device's failure (%d): %s",
		       o.name, r, err);
	}
	__atomic_store_n(&g->abandon, true, __ATOMIC_RELEASE);
	pthread_join(g->th, NULL);
out:
	guest_close(g);
	free(g);
}

static void scenario(const struct opts *o, bool bad)
{
	struct guest *g = calloc(1, sizeof(*g));
	const char *name = o->name;
	struct relay_vq v[2];
	uint64_t missing, extra, ufwd, pfwd, logged = 0, idle = 0, odd = 0;
	unsigned i, ok = 0;
	int r;

	if (!g)
		return;
	r = guest_open(g, o);
	if (!tap_is_ok(r, 0, "%s: guest set up on vdpa-sim%s%s", name,
		       o->kernel ? " --kernel " : "",
		       o->kernel ? o->kernel : ""))
		goto out;
	fill_vqs(g, v);
	pthread_create(&g->th, NULL, guest_thread, g);
	usleep(50000);
	if (bad)
		bad_inputs(g);
	if (o->refuse) {
		struct relay_region reg = { GPA, MEM_SIZE, g->host };
		struct relay_log log = { g->log, g->log_size };
		struct relay *rl = NULL;
		char err[256] = "";

		r = vdpa_dev_suspend(g->dev);
		if (!r)
			r = fill_vqs(g, v);
		if (!r)
			r = relay_start(&rl, g->dev, &reg, 1, v, g->nvq, &log,
					err, sizeof(err));
		tap_ok(r == o->refuse && !rl && one_line(err), "%s: relay_start "
		       "refused (%d) with one line: %s", name, r, err);
		r = vdpa_dev_resume(g->dev);
		tap_ok(!r && moving(g), "%s: the device runs on", name);
	}
	for (i = 0; i < o->switches; i++) {
		const struct relay_counters *c;
		/* the last round ends suspended where RESUME exists */
		bool run = o->kernel || i + 1 < o->switches;

		if (!one_switch(g, 60, run, o->set_log && i == 1))
			break;
		ok++;
		c = &g->ep[g->nep - 1].c;
		logged += c->logged_pages;
		odd += c->log_overflow + c->bad_chains;
		if (!c->used_fwd)
			idle++;
		tap_diag("%s: relay round %u: avail %llu used %llu kicks %llu "
			 "calls %llu pages %llu overflow %llu bad %llu", name,
			 i, (unsigned long long)c->avail_fwd,
			 (unsigned long long)c->used_fwd,
			 (unsigned long long)c->kicks,
			 (unsigned long long)c->calls,
			 (unsigned long long)c->logged_pages,
			 (unsigned long long)c->log_overflow,
			 (unsigned long long)c->bad_chains);
		usleep(40000);
	}
	__atomic_store_n(&g->stop, true, __ATOMIC_RELEASE);
	pthread_join(g->th, NULL);
	tap_is(ok, o->switches, "%s: %u switches passthrough -> relay -> "
	       "passthrough under traffic", name, o->switches);
	if (o->blk) {
		uint64_t lost = 0;
		bool done;

		/* the thread left no request outstanding */
		for (i = 0; i < NSLOT && !g->slot[i].busy; i++)
			;
		done = i == NSLOT && blk_verify_all(g, &lost);
		tap_ok(done && !lost, "%s: every extent written reads back "
		       "with its last stamp at the end (%llu wrong%s)", name,
		       (unsigned long long)lost, done ? "" : ", not done");
	}
	if (o->blk)
		tap_ok(g->reads > 100 && g->writes >= g->reads &&
		       !g->corrupt && !g->bad, "%s: %llu stamped writes, %llu "
		       "read back intact (corrupt %llu, bad %llu)", name,
		       (unsigned long long)g->writes,
		       (unsigned long long)g->reads,
		       (unsigned long long)g->corrupt,
		       (unsigned long long)g->bad);
	else
		tap_ok(g->sent > 100 && g->received == g->expected &&
		       g->pos[0] == g->received && !g->dup && !g->corrupt &&
		       !g->bad, "%s: %llu frames sent, the %llu to our MAC "
		       "received once each: %llu (dup %llu, corrupt %llu, "
		       "bad %llu)", name, (unsigned long long)g->sent,
		       (unsigned long long)g->expected,
		       (unsigned long long)g->received,
		       (unsigned long long)g->dup,
		       (unsigned long long)g->corrupt,
		       (unsigned long long)g->bad);
	if (o->refuse)
		goto out;
	check_epochs(g, v, &missing, &extra, &ufwd, &pfwd);
	tap_ok(pfwd > 0 && ufwd == pfwd && !idle, "%s: the relay forwarded "
	       "%llu completions, the guest's used ring moved %llu in relay "
	       "mode (%llu rounds without traffic)", name,
	       (unsigned long long)ufwd, (unsigned long long)pfwd,
	       (unsigned long long)idle);
	tap_is(odd, 0, "%s: no write past the log, no malformed chain counted",
	       name);
	tap_ok(missing == 0 && logged > 0, "%s: every page the device wrote "
	       "in relay mode is in the log (%llu missing, %llu pages logged)",
	       name, (unsigned long long)missing, (unsigned long long)logged);
	tap_is(extra, 0, "%s: no page outside the written buffers and the "
	       "used rings is in the log", name);
out:
	guest_close(g);
	free(g);
}

/* `tests/relay NAME...` runs only those scenarios (for debugging). */
static int only_argc;
static char **only_argv;

static bool selected(const char *name)
{
	int i;

	for (i = 1; i < only_argc; i++)
		if (!strcmp(only_argv[i], name))
			return true;
	return only_argc < 2;
}

int main(int argc, char **argv)
{
	static const struct opts net = {
		.name = "net", .switches = 6, .set_log = true,
	}, blk = {
		.name = "blk", .blk = true, .switches = 6,
	}, net_ind = {
		.name = "net-indirect", .switches = 4, .indirect = true,
	}, net_noev = {
		.name = "net-no-event-idx", .switches = 4, .no_event_idx = true,
	}, blk_noev = {
		.name = "blk-no-event-idx", .blk = true, .switches = 3,
		.no_event_idx = true,
	}, net612 = {
		.name = "net-6.12", .kernel = "6.12", .switches = 3,
	}, blk612 = {
		.name = "blk-6.12", .blk = true, .kernel = "6.12",
		.switches = 3,
	}, net61 = {
		.name = "net-6.1", .kernel = "6.1", .switches = 3,
	}, blk61 = {
		.name = "blk-6.1", .blk = true, .kernel = "6.1", .switches = 3,
	}, net_split = {
		.name = "net-two-regions", .switches = 3, .two_regions = true,
		.indirect = true,
	}, net_rev = {
		.name = "net-queues-reversed", .switches = 3, .reverse = true,
	}, net_tight = {
		/* the shadow rings just fit above guest memory (0x900000) */
		.name = "net-iova-tight", .switches = 2,
		.iova_range = "0x100000:0xa05fff",
	}, net_full = {
		.name = "net-iova-full", .refuse = -ERANGE,
		.iova_range = "0x100000:0xa04fff",
	}, blk_wb = {
		.name = "blk-writeback", .blk = true, .switches = 4,
		.writeback = true,
	}, blk_wb_nostate = {
		.name = "blk-writeback-no-state", .blk = true, .switches = 0,
		.writeback = true, .no_state = true, .refuse = -EOPNOTSUPP,
	};
	int fds;

	signal(SIGPIPE, SIG_IGN);
	tap_need_fd_count();
	if (tu_mkdtemp(tmpdir, sizeof(tmpdir)) < 0)
		tap_skip_all("no temporary directory");
	fds = tap_count_fds();
	only_argc = argc;
	only_argv = argv;
	if (selected(net_split.name))
		scenario(&net_split, false);
	if (selected(net_rev.name))
		scenario(&net_rev, false);
	if (selected(net_tight.name))
		scenario(&net_tight, false);
	if (selected(net_full.name))
		scenario(&net_full, false);
	if (selected(blk_wb.name))
		scenario(&blk_wb, false);
	if (selected(blk_wb_nostate.name))
		scenario(&blk_wb_nostate, false);
	if (selected(net.name))
		scenario(&net, true);
	if (selected(blk.name))
		scenario(&blk, false);
	if (selected(net_ind.name))
		scenario(&net_ind, false);
	if (selected(net_noev.name))
		scenario(&net_noev, false);
	if (selected(blk_noev.name))
		scenario(&blk_noev, false);
	if (selected(net612.name))
		scenario(&net612, false);
	if (selected(blk612.name))
		scenario(&blk612, false);
	if (selected(net61.name))
		scenario(&net61, false);
	if (selected(blk61.name))
		scenario(&blk61, false);
	if (selected("no-suspend"))
		no_suspend();
	if (selected("net-needs-reset"))
		poisoned();
	tap_is(tap_count_fds(), fds, "no fd leaked over all scenarios");
	tu_rmtree(tmpdir);
	return tap_done();
}
