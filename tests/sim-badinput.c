// SPDX-License-Identifier: MIT
/*
 * sim-badinput: drive vdpa-sim (thread mode) with raw wire messages and
 * hand-built split rings in a memfd; every malformed ring must set
 * NEEDS_RESET without crashing, hanging or leaking, plus happy paths
 * (net loopback, blk I/O, suspend/resume, device-state save/load).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <vdpa-user/uapi-ext.h>
#include <vdpa-user/wire.h>

#include "sim.h"
#include "tap.h"

#define MEM_SIZE	(4u << 20)
#define IOVA_BASE	0x40000000ull
#define NUM		64u
#define RING_AREA	0x4000u		/* per queue */
#define BUF_BASE	0x100000u	/* buffers start at this offset */
#define MAX_Q		5

struct ring {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx, used_seen;
};

struct drv {
	int sock;
	struct vsim_thread *t;
	int memfd;
	uint8_t *mem;
	unsigned int nq;
	int kick[MAX_Q], call[MAX_Q];
	struct ring r[MAX_Q];
	uint64_t features;
};

static uint64_t iova(size_t off)
{
	return IOVA_BASE + off;
}

static int req(struct drv *d, uint32_t request, const void *in, uint32_t len,
	       void *out, uint32_t out_len, int fd)
{
	struct vsim_hdr h = { .request = request, .size = len };
	uint8_t buf[VSIM_MAX_PAYLOAD];
	int rfd = -1, r;

	if (fd >= 0)
		h.flags |= VSIM_F_FD;
	r = vsim_send(d->sock, &h, in, fd);
	if (r < 0)
		return r;
	r = vsim_recv(d->sock, &h, buf, sizeof(buf), &rfd);
	if (r < 0)
		return r;
	if (rfd >= 0)
		close(rfd);
	if (out && h.result >= 0)
		memcpy(out, buf, h.size < out_len ? h.size : out_len);
	return h.result;
}

static int req_u64(struct drv *d, uint32_t request, uint64_t v)
{
	return req(d, request, &v, sizeof(v), NULL, 0, -1);
}

static int set_status(struct drv *d, uint8_t st)
{
	return req(d, VHOST_VDPA_SET_STATUS, &st, 1, NULL, 0, -1);
}

/* The device status, or -1 when the request fails (never a status). */
static int get_status(struct drv *d)
{
	uint8_t st = 0xff;

	if (req(d, VHOST_VDPA_GET_STATUS, NULL, 0, &st, 1, -1))
		return -1;
	return st;
}

static int vring(struct drv *d, uint32_t request, unsigned int i, uint32_t num)
{
	struct vhost_vring_state s = { .index = i, .num = num };

	return req(d, request, &s, sizeof(s), &s, sizeof(s), -1);
}

static int iotlb(struct drv *d, uint8_t type, uint64_t io, uint64_t size,
		 uint64_t uaddr, uint8_t perm)
{
	struct vhost_msg_v2 m = { .type = VHOST_IOTLB_MSG_V2 };

	m.iotlb.type = type;
	m.iotlb.iova = io;
	m.iotlb.size = size;
	m.iotlb.uaddr = uaddr;
	m.iotlb.perm = perm;
	return req(d, VSIM_REQ_IOTLB_MSG, &m, sizeof(m), NULL, 0, -1);
}

/* Phase 1: connect, own, map memory (identity of our own mapping). */
static int drv_open(struct drv *d, const struct vsim_opts *o)
{
	struct vsim_hello hl = { VSIM_WIRE_MAGIC, VSIM_WIRE_VERSION, 0, 0 };
	struct vsim_mem m;
	uint64_t bf;
	unsigned int i;

	memset(d, 0, sizeof(*d));
	for (i = 0; i < MAX_Q; i++)
		d->kick[i] = d->call[i] = -1;
	if (vsim_thread_start(o, &d->sock, &d->t) < 0)
		return -1;
	d->memfd = memfd_create("drv", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (d->memfd < 0 || ftruncate(d->memfd, MEM_SIZE) < 0)
		return -1;
	d->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		      d->memfd, 0);
	if (d->mem == MAP_FAILED)
		return -1;
	if (req(d, VSIM_REQ_HELLO, &hl, sizeof(hl), &hl, sizeof(hl), -1) ||
	    req(d, VHOST_SET_OWNER, NULL, 0, NULL, 0, -1))
		return -1;
	req(d, VHOST_GET_BACKEND_FEATURES, NULL, 0, &bf, sizeof(bf), -1);
	if (req_u64(d, VHOST_SET_BACKEND_FEATURES, bf))
		return -1;
	m.uaddr = (uintptr_t)d->mem;
	m.size = MEM_SIZE;
	m.offset = 0;
	if (req(d, VSIM_REQ_ADD_MEM, &m, sizeof(m), NULL, 0, d->memfd))
		return -1;
	if (iotlb(d, VHOST_IOTLB_UPDATE, IOVA_BASE, MEM_SIZE - 0x10000,
		  (uintptr_t)d->mem, VHOST_ACCESS_RW) != sizeof(struct vhost_msg_v2))
		return -1;
	/* last 64 KiB: a read-only mapping */
	if (iotlb(d, VHOST_IOTLB_UPDATE, IOVA_BASE + MEM_SIZE - 0x10000, 0x10000,
		  (uintptr_t)d->mem + MEM_SIZE - 0x10000, VHOST_ACCESS_RO) !=
	    sizeof(struct vhost_msg_v2))
		return -1;
	return 0;
}

/* Phase 2: features, rings, DRIVER_OK. */
static int drv_start(struct drv *d, uint64_t drop_features)
{
	unsigned int i;
	uint32_t nvqs;
	uint64_t f;

	if (req(d, VHOST_VDPA_GET_VQS_COUNT, NULL, 0, &nvqs, 4, -1))
		return -1;
	d->nq = nvqs < MAX_Q ? nvqs : MAX_Q;
	req(d, VHOST_GET_FEATURES, NULL, 0, &f, sizeof(f), -1);
	f &= ~drop_features;
	d->features = f;
	if (set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER) ||
	    req_u64(d, VHOST_SET_FEATURES, f) ||
	    set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		       VIRTIO_CONFIG_S_FEATURES_OK))
		return -1;
	for (i = 0; i < d->nq; i++) {
		size_t base = i * RING_AREA;
		struct vhost_vring_addr a = {
			.index = i,
			.desc_user_addr = iova(base),
			.avail_user_addr = iova(base + 0x1000),
			.used_user_addr = iova(base + 0x2000),
		};
		struct vhost_vring_file kf = { .index = i }, cf = { .index = i };

		memset(d->mem + base, 0, RING_AREA);
		d->r[i].desc = (void *)(d->mem + base);
		d->r[i].avail = (void *)(d->mem + base + 0x1000);
		d->r[i].used = (void *)(d->mem + base + 0x2000);
		d->r[i].avail_idx = d->r[i].used_seen = 0;
		if (d->kick[i] < 0)
			d->kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (d->call[i] < 0)
			d->call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		kf.fd = d->kick[i];
		cf.fd = d->call[i];
		if (vring(d, VHOST_SET_VRING_NUM, i, NUM) ||
		    req(d, VHOST_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, -1) ||
		    vring(d, VHOST_SET_VRING_BASE, i, 0) ||
		    req(d, VHOST_SET_VRING_KICK, &kf, sizeof(kf), NULL, 0,
			d->kick[i]) ||
		    req(d, VHOST_SET_VRING_CALL, &cf, sizeof(cf), NULL, 0,
			d->call[i]) ||
		    vring(d, VHOST_VDPA_SET_VRING_ENABLE, i, 1))
			return -1;
	}
	return set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE |
			  VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
			  VIRTIO_CONFIG_S_DRIVER_OK);
}

static void drv_close(struct drv *d)
{
	unsigned int i;

	if (d->sock >= 0)
		close(d->sock);
	vsim_thread_stop(d->t);
	if (d->mem && d->mem != MAP_FAILED)
		munmap(d->mem, MEM_SIZE);
	if (d->memfd >= 0)
		close(d->memfd);
	for (i = 0; i < MAX_Q; i++) {
		if (d->kick[i] >= 0)
			close(d->kick[i]);
		if (d->call[i] >= 0)
			close(d->call[i]);
	}
	memset(d, 0, sizeof(*d));
}

struct dsc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	int next;	/* -1: next slot */
};

/* Put a chain at descriptor slot `at` and publish it (with a kick). */
static void post(struct drv *d, unsigned int q, unsigned int at,
		 const struct dsc *ds, unsigned int n)
{
	struct ring *r = &d->r[q];
	unsigned int i;
	uint64_t one = 1;

	for (i = 0; i < n; i++) {
		struct vring_desc *x = &r->desc[(at + i) % NUM];

		x->addr = ds[i].addr;
		x->len = ds[i].len;
		x->flags = ds[i].flags | (i + 1 < n ? VRING_DESC_F_NEXT : 0);
		x->next = (uint16_t)(ds[i].next >= 0 ? ds[i].next :
				     (int)((at + i + 1) % NUM));
	}
	r->avail->ring[r->avail_idx % NUM] = (uint16_t)at;
	__atomic_store_n(&r->avail->idx, ++r->avail_idx, __ATOMIC_RELEASE);
	if (write(d->kick[q], &one, sizeof(one)) < 0)
		tap_diag("kick failed");
}

static void kick(struct drv *d, unsigned int q)
{
	uint64_t one = 1;

	if (write(d->kick[q], &one, sizeof(one)) < 0)
		tap_diag("kick failed");
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait for used->idx to reach want (ms timeout). */
static bool wait_used(struct drv *d, unsigned int q, uint16_t want, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (__atomic_load_n(&d->r[q].used->idx, __ATOMIC_ACQUIRE) != want) {
		if (now_ms() > end)
			return false;
		usleep(200);
	}
	return true;
}

/* NEEDS_RESET read back from a device that still answers. */
static bool wait_broken(struct drv *d, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	int st;

	while ((st = get_status(d)) < 0 || !(st & 0x40)) {
		if (st < 0 || now_ms() > end)
			return false;
		usleep(500);
	}
	return true;
}

/*
 * Wait until the device is done with what it was doing: the thread
 * simulator runs its data path under the lock vsim_get_status() takes,
 * so once a used index is seen, this returns after the same pass wrote
 * (or decided not to write) the call eventfd.
 */
static void device_settled(struct drv *d)
{
	struct vsim_status st;

	vsim_get_status(vsim_thread_sim(d->t), &st);
}

static struct vsim_opts net_opts(void)
{
	struct vsim_opts o;

	vsim_opts_init(&o, VSIM_TYPE_NET);
	o.vq_size = NUM;
	return o;
}

static struct vsim_opts blk_opts(void)
{
	struct vsim_opts o;

	vsim_opts_init(&o, VSIM_TYPE_BLK);
	o.vq_size = NUM;
	o.capacity = 2048;	/* 1 MiB */
	return o;
}

#define HDR	12u	/* virtio_net_hdr_v1 */

/* A TX packet at buffer offset off: header + frame to dst. */
static size_t make_pkt(struct drv *d, size_t off, const uint8_t *dst,
		       size_t frame)
{
	uint8_t *p = d->mem + off;
	size_t i;

	memset(p, 0, HDR);
	memcpy(p + HDR, dst, 6);
	for (i = 6; i < frame; i++)
		p[HDR + i] = (uint8_t)(i * 7);
	return HDR + frame;
}

static const uint8_t dev_mac[6] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55 };

typedef void (*case_fn)(struct drv *d);

/*
 * Run one malformed-input case on a fresh device: it must end in
 * NEEDS_RESET with a reason containing `why`, the sim must still answer,
 * and no fd may leak.
 */
static void bad_case(const char *name, bool blk, const char *why, case_fn fn)
{
	struct vsim_opts o = blk ? blk_opts() : net_opts();
	struct vsim_status st;
	int fds = tap_count_fds();
	uint32_t nvqs = 0;
	struct drv d;

	if (drv_open(&d, &o) || drv_start(&d, 0)) {
		tap_ok(0, "%s: setup", name);
		drv_close(&d);
		return;
	}
	fn(&d);
	tap_ok(wait_broken(&d, 2000), "%s: NEEDS_RESET set", name);
	vsim_get_status(vsim_thread_sim(d.t), &st);
	if (!tap_ok(strstr(st.reset_reason, why) != NULL,
		    "%s: reason mentions '%s'", name, why))
		tap_diag("  reason: %s", st.reset_reason);
	tap_ok(req(&d, VHOST_VDPA_GET_VQS_COUNT, NULL, 0, &nvqs, 4, -1) == 0 &&
	       nvqs == (blk ? 1 : 3), "%s: sim still answers (%u queues)", name,
	       nvqs);
	tap_is(set_status(&d, 0), 0, "%s: reset accepted", name);
	tap_is(get_status(&d), 0, "%s: status 0 after reset", name);
	drv_close(&d);
	tap_is(tap_count_fds(), fds, "%s: no fd leaked", name);
}

/* ---- malformed rings ------------------------------------------------------ */

static void c_desc_loop(struct drv *d)
{
	struct dsc ds[2] = {
		{ iova(BUF_BASE), 64, 0, 1 },
		{ iova(BUF_BASE), 64, VRING_DESC_F_NEXT, 0 },	/* back to 0 */
	};

	post(d, 1, 0, ds, 2);
}

static void c_chain_too_long(struct drv *d)
{
	unsigned int i;

	/* every descriptor chained in order and the last back to the first */
	for (i = 0; i < NUM; i++) {
		d->r[1].desc[i].addr = iova(BUF_BASE);
		d->r[1].desc[i].len = 1;
		d->r[1].desc[i].flags = VRING_DESC_F_NEXT;
		d->r[1].desc[i].next = (uint16_t)((i + 1) % NUM);
	}
	d->r[1].avail->ring[0] = 0;
	__atomic_store_n(&d->r[1].avail->idx, 1, __ATOMIC_RELEASE);
	kick(d, 1);
}

static void c_avail_jump(struct drv *d)
{
	__atomic_store_n(&d->r[1].avail->idx, NUM + 5, __ATOMIC_RELEASE);
	kick(d, 1);
}

static void c_head_range(struct drv *d)
{
	d->r[1].avail->ring[0] = NUM + 3;
	__atomic_store_n(&d->r[1].avail->idx, 1, __ATOMIC_RELEASE);
	kick(d, 1);
}

static void c_next_range(struct drv *d)
{
	struct dsc ds[2] = {
		{ iova(BUF_BASE), 64, 0, NUM + 10 }, { iova(BUF_BASE), 64, 0, -1 },
	};

	post(d, 1, 0, ds, 2);
}

static void c_outside_iotlb(struct drv *d)
{
	struct dsc ds[1] = { { 0x1000, 64, 0, -1 } };

	post(d, 1, 0, ds, 1);
}

static void c_len_wrap(struct drv *d)
{
	struct dsc ds[1] = { { UINT64_MAX - 0xfff, 0x2000, 0, -1 } };

	post(d, 1, 0, ds, 1);
}

static void c_len_past_map(struct drv *d)
{
	/* starts mapped, runs past the end of the IOTLB */
	struct dsc ds[1] = { { iova(MEM_SIZE - 0x100), 0x1000, 0, -1 } };

	post(d, 1, 0, ds, 1);
}

static void c_short_net_hdr(struct drv *d)
{
	struct dsc ds[1] = { { iova(BUF_BASE), 8, 0, -1 } };

	post(d, 1, 0, ds, 1);
}

static void c_rx_readonly(struct drv *d)
{
	struct dsc rx[1] = { { iova(BUF_BASE + 0x10000), 2048, 0, -1 } };
	struct dsc tx[1] = { { iova(BUF_BASE), 0, 0, -1 } };

	post(d, 0, 0, rx, 1);	/* RX buffer not marked writable */
	tx[0].len = (uint32_t)make_pkt(d, BUF_BASE, dev_mac, 60);
	post(d, 1, 0, tx, 1);
}

static void c_write_ro_iotlb(struct drv *d)
{
	/* writable descriptor in the read-only IOTLB mapping */
	struct dsc rx[1] = {
		{ iova(MEM_SIZE - 0x8000), 2048, VRING_DESC_F_WRITE, -1 },
	};
	struct dsc tx[1] = { { iova(BUF_BASE), 0, 0, -1 } };

	post(d, 0, 0, rx, 1);
	tx[0].len = (uint32_t)make_pkt(d, BUF_BASE, dev_mac, 60);
	post(d, 1, 0, tx, 1);
}

static void c_read_after_write(struct drv *d)
{
	struct dsc ds[2] = {
		{ iova(BUF_BASE), 64, VRING_DESC_F_WRITE, -1 },
		{ iova(BUF_BASE), 64, 0, -1 },
	};

	post(d, 1, 0, ds, 2);
}

static void c_indirect_loop(struct drv *d)
{
	struct vring_desc *t = (void *)(d->mem + BUF_BASE + 0x20000);
	struct dsc ds[1] = {
		{ iova(BUF_BASE + 0x20000), 2 * 16, VRING_DESC_F_INDIRECT, -1 },
	};

	t[0].addr = iova(BUF_BASE);
	t[0].len = 64;
	t[0].flags = VRING_DESC_F_NEXT;
	t[0].next = 1;
	t[1] = t[0];
	t[1].next = 0;
	post(d, 1, 0, ds, 1);
}

static void c_indirect_bad_len(struct drv *d)
{
	struct dsc ds[1] = {
		{ iova(BUF_BASE + 0x20000), 17, VRING_DESC_F_INDIRECT, -1 },
	};

	post(d, 1, 0, ds, 1);
}

static void blk_req(struct drv *d, uint32_t type, uint64_t sector,
		    uint32_t data_len, bool data_write, unsigned int at)
{
	struct virtio_blk_outhdr *h = (void *)(d->mem + BUF_BASE + at * 0x2000);
	struct dsc ds[3];
	unsigned int n = 0;

	h->type = type;
	h->ioprio = 0;
	h->sector = sector;
	ds[n++] = (struct dsc){ iova(BUF_BASE + at * 0x2000), sizeof(*h), 0, -1 };
	if (data_len)
		ds[n++] = (struct dsc){ iova(BUF_BASE + 0x80000 + at * 0x2000),
			data_len, data_write ? VRING_DESC_F_WRITE : 0, -1 };
	d->mem[BUF_BASE + at * 0x2000 + 0x1000] = 0xee;
	ds[n++] = (struct dsc){ iova(BUF_BASE + at * 0x2000 + 0x1000), 1,
		VRING_DESC_F_WRITE, -1 };
	post(d, 0, at * 4, ds, n);
}

static uint8_t blk_status(struct drv *d, unsigned int at)
{
	return d->mem[BUF_BASE + at * 0x2000 + 0x1000];
}

static void c_blk_short_hdr(struct drv *d)
{
	struct dsc ds[2] = {
		{ iova(BUF_BASE), 8, 0, -1 },
		{ iova(BUF_BASE + 0x1000), 1, VRING_DESC_F_WRITE, -1 },
	};

	post(d, 0, 0, ds, 2);
}

static void c_blk_read_into_ro(struct drv *d)
{
	blk_req(d, VIRTIO_BLK_T_IN, 0, 512, false, 0);
}

static void c_blk_no_status(struct drv *d)
{
	struct dsc ds[1] = { { iova(BUF_BASE), 16, 0, -1 } };

	post(d, 0, 0, ds, 1);
}

static void c_cvq_malformed(struct drv *d)
{
	/* one byte out (no command byte), no ack byte */
	struct dsc ds[1] = { { iova(BUF_BASE), 1, 0, -1 } };

	post(d, 2, 0, ds, 1);
}

/* ---- happy paths ------------------------------------------------------------ */

static void test_net_loopback(void)
{
	struct vsim_opts o = net_opts();
	int fds = tap_count_fds();
	struct vsim_status st;
	uint8_t other[6] = { 0x02, 0, 0, 0, 0, 1 };
	struct dsc rx[1] = {
		{ iova(BUF_BASE + 0x10000), 2048, VRING_DESC_F_WRITE, -1 },
	};
	struct dsc tx[2];
	size_t len;
	uint64_t v;
	struct drv d;

	if (!tap_ok(drv_open(&d, &o) == 0 && drv_start(&d, 0) == 0,
		    "net: setup")) {
		drv_close(&d);
		return;
	}
	post(&d, 0, 0, rx, 1);
	len = make_pkt(&d, BUF_BASE, dev_mac, 60);
	/* header and frame in two descriptors */
	tx[0] = (struct dsc){ iova(BUF_BASE), HDR, 0, -1 };
	tx[1] = (struct dsc){ iova(BUF_BASE + HDR), (uint32_t)(len - HDR), 0, -1 };
	post(&d, 1, 0, tx, 2);
	tap_ok(wait_used(&d, 0, 1, 2000), "net: RX used entry");
	tap_ok(wait_used(&d, 1, 1, 2000), "net: TX used entry");
	tap_is(d.r[0].used->ring[0].len, len, "net: RX length = header + frame");
	tap_ok(memcmp(d.mem + BUF_BASE + 0x10000, d.mem + BUF_BASE, len) == 0,
	       "net: RX bytes equal TX bytes");
	tap_ok(read(d.call[0], &v, sizeof(v)) == sizeof(v),
	       "net: RX call eventfd signalled");
	/* filtered: unicast to another MAC */
	len = make_pkt(&d, BUF_BASE + 0x1000, other, 60);
	tx[0] = (struct dsc){ iova(BUF_BASE + 0x1000), (uint32_t)len, 0, -1 };
	post(&d, 1, 2, tx, 1);
	tap_ok(wait_used(&d, 1, 2, 2000), "net: filtered TX completed");
	/* no RX buffer left after one more accepted packet: overrun */
	post(&d, 0, 1, rx, 1);
	len = make_pkt(&d, BUF_BASE + 0x2000, (const uint8_t[6]){ 0xff, 0xff,
		       0xff, 0xff, 0xff, 0xff }, 60);
	tx[0] = (struct dsc){ iova(BUF_BASE + 0x2000), (uint32_t)len, 0, -1 };
	post(&d, 1, 3, tx, 1);
	post(&d, 1, 4, tx, 1);
	tap_ok(wait_used(&d, 1, 4, 2000), "net: broadcast TX completed");
	tap_ok(wait_used(&d, 0, 2, 2000), "net: broadcast received");
	vsim_get_status(vsim_thread_sim(d.t), &st);
	tap_is(st.q[1].requests, 4, "net: tx requests counted");
	tap_is(st.q[0].requests, 2, "net: rx packets counted");
	tap_is(st.q[0].drops, 1, "net: filtered packet counted as drop");
	tap_is(st.q[0].overruns, 1, "net: no RX buffer counted as overrun");
	tap_ok(!st.needs_reset, "net: device healthy");
	drv_close(&d);
	tap_is(tap_count_fds(), fds, "net: no fd leaked");
}

static void test_event_idx(void)
{
	struct vsim_opts o = net_opts();
	struct dsc tx[1];
	uint16_t *used_event, *avail_event;
	uint64_t v;
	struct drv d;

	if (!tap_ok(drv_open(&d, &o) == 0 && drv_start(&d, 0) == 0 &&
		    (d.features & (1ULL << VIRTIO_RING_F_EVENT_IDX)),
		    "event_idx: setup with EVENT_IDX")) {
		drv_close(&d);
		return;
	}
	used_event = &d.r[1].avail->ring[NUM];
	avail_event = (uint16_t *)&d.r[1].used->ring[NUM];
	*used_event = 5;	/* do not interrupt before used idx passes 5 */
	tx[0] = (struct dsc){ iova(BUF_BASE), (uint32_t)make_pkt(&d, BUF_BASE,
			      (const uint8_t[6]){ 2, 0, 0, 0, 0, 9 }, 60), 0, -1 };
	post(&d, 1, 0, tx, 1);
	tap_ok(wait_used(&d, 1, 1, 2000), "event_idx: TX done");
	device_settled(&d);
	tap_ok(read(d.call[1], &v, sizeof(v)) < 0 && errno == EAGAIN,
	       "event_idx: call suppressed before used_event");
	tap_is(__atomic_load_n(avail_event, __ATOMIC_ACQUIRE), 1,
	       "event_idx: device wrote avail_event");
	*used_event = 1;
	post(&d, 1, 1, tx, 1);
	tap_ok(wait_used(&d, 1, 2, 2000), "event_idx: second TX done");
	device_settled(&d);
	tap_ok(read(d.call[1], &v, sizeof(v)) == sizeof(v),
	       "event_idx: call signalled when used idx passes used_event");
	drv_close(&d);
}

static void test_cvq(void)
{
	struct vsim_opts o = net_opts();
	uint8_t *cmd;
	struct dsc ds[2];
	struct vsim_status st;
	struct drv d;
	uint8_t cfg[8 + 6];
	struct vhost_vdpa_config *c = (void *)cfg;

	if (!tap_ok(drv_open(&d, &o) == 0 && drv_start(&d, 0) == 0,
		    "cvq: setup")) {
		drv_close(&d);
		return;
	}
	cmd = d.mem + BUF_BASE;
	cmd[0] = VIRTIO_NET_CTRL_MAC;
	cmd[1] = VIRTIO_NET_CTRL_MAC_ADDR_SET;
	memcpy(cmd + 2, (const uint8_t[6]){ 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee },
	       6);
	cmd[0x100] = 0xff;
	ds[0] = (struct dsc){ iova(BUF_BASE), 8, 0, -1 };
	ds[1] = (struct dsc){ iova(BUF_BASE + 0x100), 1, VRING_DESC_F_WRITE, -1 };
	post(&d, 2, 0, ds, 2);
	tap_ok(wait_used(&d, 2, 1, 2000), "cvq: MAC_ADDR_SET completed");
	tap_is(cmd[0x100], VIRTIO_NET_OK, "cvq: MAC_ADDR_SET acked OK");
	c->off = 0;
	c->len = 6;
	tap_ok(req(&d, VHOST_VDPA_GET_CONFIG, c, 8, cfg, sizeof(cfg),
		   -1) == 0 && memcmp(cfg + 8, cmd + 2, 6) == 0,
	       "cvq: config shows new MAC");
	/* unknown class: ERR, not a reset */
	cmd[0x200] = 77;
	cmd[0x201] = 0;
	cmd[0x300] = 0xff;
	ds[0] = (struct dsc){ iova(BUF_BASE + 0x200), 2, 0, -1 };
	ds[1] = (struct dsc){ iova(BUF_BASE + 0x300), 1, VRING_DESC_F_WRITE, -1 };
	post(&d, 2, 2, ds, 2);
	tap_ok(wait_used(&d, 2, 2, 2000), "cvq: unknown class completed");
	tap_is(cmd[0x300], VIRTIO_NET_ERR, "cvq: unknown class acked ERR");
	/* RX promisc */
	cmd[0x400] = VIRTIO_NET_CTRL_RX;
	cmd[0x401] = VIRTIO_NET_CTRL_RX_PROMISC;
	cmd[0x402] = 1;
	ds[0] = (struct dsc){ iova(BUF_BASE + 0x400), 3, 0, -1 };
	post(&d, 2, 4, ds, 2);
	tap_ok(wait_used(&d, 2, 3, 2000), "cvq: RX_PROMISC completed");
	vsim_get_status(vsim_thread_sim(d.t), &st);
	tap_ok(st.promisc && !st.needs_reset, "cvq: promisc on, healthy");
	tap_is(st.q[2].errors, 1, "cvq: one failed command counted");
	drv_close(&d);
}

static void test_blk_io(void)
{
	struct vsim_opts o = blk_opts();
	int fds = tap_count_fds();
	struct vsim_status st;
	uint8_t *data;
	struct drv d;
	int i;

	if (!tap_ok(drv_open(&d, &o) == 0 && drv_start(&d, 0) == 0,
		    "blk: setup")) {
		drv_close(&d);
		return;
	}
	data = d.mem + BUF_BASE + 0x80000;
	for (i = 0; i < 4096; i++)
		data[i] = (uint8_t)(i * 13 + 1);
	blk_req(&d, VIRTIO_BLK_T_OUT, 8, 4096, false, 0);
	tap_ok(wait_used(&d, 0, 1, 2000), "blk: write completed");
	tap_is(blk_status(&d, 0), VIRTIO_BLK_S_OK, "blk: write OK");
	memset(d.mem + BUF_BASE + 0x80000 + 0x2000, 0, 4096);
	blk_req(&d, VIRTIO_BLK_T_IN, 8, 4096, true, 1);
	tap_ok(wait_used(&d, 0, 2, 2000), "blk: read completed");
	tap_is(blk_status(&d, 1), VIRTIO_BLK_S_OK, "blk: read OK");
	tap_is(d.r[0].used->ring[1].len, 4097, "blk: read used len");
	tap_ok(memcmp(data, data + 0x2000, 4096) == 0, "blk: read = written");
	blk_req(&d, VIRTIO_BLK_T_GET_ID, 0, 20, true, 2);
	tap_ok(wait_used(&d, 0, 3, 2000), "blk: GET_ID completed");
	tap_ok(memcmp(data + 0x4000, "vdpa-sim-blk", 12) == 0, "blk: id");
	blk_req(&d, VIRTIO_BLK_T_FLUSH, 0, 0, false, 3);
	tap_ok(wait_used(&d, 0, 4, 2000) && blk_status(&d, 3) == 0,
	       "blk: FLUSH OK");
	blk_req(&d, 99, 0, 0, false, 4);
	tap_ok(wait_used(&d, 0, 5, 2000) &&
	       blk_status(&d, 4) == VIRTIO_BLK_S_UNSUPP, "blk: unknown type UNSUPP");
	/* sector past the end: IOERR like vdpa_sim_blk (not a reset) */
	blk_req(&d, VIRTIO_BLK_T_IN, 2047, 1024, true, 5);
	tap_ok(wait_used(&d, 0, 6, 2000), "blk_sector_past_end: completed");
	tap_is(blk_status(&d, 5), VIRTIO_BLK_S_IOERR,
	       "blk_sector_past_end: IOERR");
	blk_req(&d, VIRTIO_BLK_T_OUT, UINT64_MAX - 1, 512, false, 6);
	tap_ok(wait_used(&d, 0, 7, 2000) &&
	       blk_status(&d, 6) == VIRTIO_BLK_S_IOERR,
	       "blk_sector_overflow: IOERR");
	vsim_get_status(vsim_thread_sim(d.t), &st);
	tap_is(st.q[0].errors, 3, "blk: errors counted");
	tap_ok(!st.needs_reset, "blk: healthy");
	drv_close(&d);
	tap_is(tap_count_fds(), fds, "blk: no fd leaked");
}

static void test_suspend_resume(void)
{
	struct vsim_opts o = net_opts();
	struct vhost_vring_state s = { .index = 1 };
	struct dsc tx[1];
	struct drv d;

	if (!tap_ok(drv_open(&d, &o) == 0 && drv_start(&d, 0) == 0,
		    "suspend: setup")) {
		drv_close(&d);
		return;
	}
	tap_is(req(&d, VHOST_VDPA_SUSPEND, NULL, 0, NULL, 0, -1), 0,
	       "suspend: SUSPEND ok");
	tx[0] = (struct dsc){ iova(BUF_BASE), (uint32_t)make_pkt(&d, BUF_BASE,
			      dev_mac, 60), 0, -1 };
	post(&d, 1, 0, tx, 1);
	tap_ok(!wait_used(&d, 1, 1, 100), "suspend: ring not touched");
	s.num = 0xdead;
	tap_ok(req(&d, VHOST_GET_VRING_BASE, &s, sizeof(s), &s, sizeof(s),
		   -1) == 0 && s.num == 0, "suspend: GET_VRING_BASE = 0 (%u)",
	       s.num);
	tap_is(req(&d, VHOST_VDPA_RESUME, NULL, 0, NULL, 0, -1), 0,
	       "suspend: RESUME ok");
	tap_ok(wait_used(&d, 1, 1, 2000), "suspend: processed after RESUME");
	s.num = 0xdead;
	tap_ok(req(&d, VHOST_GET_VRING_BASE, &s, sizeof(s), &s, sizeof(s),
		   -1) == 0 && s.num == 1, "suspend: GET_VRING_BASE = 1 (%u)",
	       s.num);
	drv_close(&d);
}

/* ---- device state ------------------------------------------------------------ */

static int state_fd(struct drv *d, uint32_t dir, uint32_t phase, int fd,
		    uint32_t reserved)
{
	struct vhost_vdpa_device_state_fd a = {
		.direction = dir, .phase = phase, .fd = fd, .reserved = reserved,
	};

	return req(d, VHOST_VDPA_SET_DEVICE_STATE_FD, &a, sizeof(a), &a,
		   sizeof(a), fd);
}

/* Save: returns the blob length read from the pipe, or -1. */
static ssize_t save_state(struct drv *d, uint8_t *buf, size_t cap)
{
	int p[2];
	ssize_t n, len = 0;
	int r;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	r = state_fd(d, VHOST_TRANSFER_STATE_DIRECTION_SAVE,
		     VHOST_TRANSFER_STATE_PHASE_STOPPED, p[1], 0);
	close(p[1]);
	if (r) {
		close(p[0]);
		tap_diag("save SET_DEVICE_STATE_FD: %d", r);
		return -1;
	}
	while ((n = read(p[0], buf + len, cap - (size_t)len)) > 0)
		len += n;
	close(p[0]);
	r = req(d, VHOST_VDPA_CHECK_DEVICE_STATE, NULL, 0, NULL, 0, -1);
	return r ? -1 : len;
}

static int load_state(struct drv *d, const uint8_t *buf, size_t len)
{
	int p[2], r;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	r = state_fd(d, VHOST_TRANSFER_STATE_DIRECTION_LOAD,
		     VHOST_TRANSFER_STATE_PHASE_STOPPED, p[0], 0);
	close(p[0]);
	if (r) {
		close(p[1]);
		return r;
	}
	if (write(p[1], buf, len) != (ssize_t)len)
		r = -EIO;
	close(p[1]);
	return r ? r : req(d, VHOST_VDPA_CHECK_DEVICE_STATE, NULL, 0, NULL, 0, -1);
}

static uint8_t blob[1 << 20];

static void test_state_blk(void)
{
	char path[] = "/tmp/vsim-backing-XXXXXX";
	struct vsim_opts o = blk_opts();
	int fds = tap_count_fds();
	struct vsim_status st;
	uint8_t disk[4096], bad[1 << 16];
	struct drv a, b;
	ssize_t len;
	uint8_t *data;
	int bfd, i, p[2];

	bfd = mkstemp(path);
	if (bfd < 0 || ftruncate(bfd, 1 << 20) < 0) {
		tap_ok(0, "state: backing file");
		return;
	}
	o.backing = path;
	o.writeback = true;
	o.capacity = 0;
	if (!tap_ok(drv_open(&a, &o) == 0 && drv_start(&a, 0) == 0,
		    "state: device A")) {
		drv_close(&a);
		goto out;
	}
	data = a.mem + BUF_BASE + 0x80000;
	for (i = 0; i < 4096; i++)
		data[i] = (uint8_t)(i ^ 0x5a);
	blk_req(&a, VIRTIO_BLK_T_OUT, 16, 4096, false, 0);
	tap_ok(wait_used(&a, 0, 1, 2000) && blk_status(&a, 0) == 0,
	       "state: write on A");
	tap_ok(pread(bfd, disk, 4096, 16 * 512) == 4096 &&
	       memcmp(disk, data, 4096) != 0,
	       "state: write-back data not in the file yet");
	tap_is(state_fd(&a, 0, 0, a.memfd, 0), -EBUSY,
	       "state: save while running -> EBUSY");
	tap_is(req(&a, VHOST_VDPA_SUSPEND, NULL, 0, NULL, 0, -1), 0,
	       "state: suspend A");
	tap_is(state_fd(&a, 0, 1, a.memfd, 0), -EOPNOTSUPP,
	       "state: phase != STOPPED -> EOPNOTSUPP");
	tap_is(state_fd(&a, 2, 0, a.memfd, 0), -EINVAL,
	       "state: bad direction -> EINVAL");
	tap_is(state_fd(&a, 0, 0, a.memfd, 1), -EINVAL,
	       "state: reserved != 0 -> EINVAL");
	tap_is(req(&a, VHOST_VDPA_CHECK_DEVICE_STATE, NULL, 0, NULL, 0, -1),
	       -EINVAL, "state: CHECK without transfer -> EINVAL");
	/* reader gone: EPIPE, and no SIGPIPE kills us */
	if (pipe2(p, O_CLOEXEC) == 0) {
		close(p[0]);
		tap_is(state_fd(&a, 0, 0, p[1], 0), 0, "state: save to closed pipe");
		close(p[1]);
		tap_is(req(&a, VHOST_VDPA_CHECK_DEVICE_STATE, NULL, 0, NULL, 0, -1),
		       -EPIPE, "state: CHECK -> EPIPE when the reader closed");
	}
	/* one transfer at a time */
	if (pipe2(p, O_CLOEXEC) == 0) {
		tap_is(state_fd(&a, 0, 0, p[1], 0), 0, "state: first transfer");
		tap_is(state_fd(&a, 0, 0, p[1], 0), -EBUSY,
		       "state: second transfer -> EBUSY");
		close(p[1]);
		tap_is(req(&a, VHOST_VDPA_CHECK_DEVICE_STATE, NULL, 0, NULL, 0, -1),
		       0, "state: first transfer checked");
		close(p[0]);
	}
	len = save_state(&a, blob, sizeof(blob));
	tap_ok(len > 4096, "state: saved %zd bytes", len);
	drv_close(&a);	/* reset drops A's unflushed cache */

	if (!tap_ok(drv_open(&b, &o) == 0, "state: device B")) {
		drv_close(&b);
		goto out;
	}
	if (len > 64) {
		size_t blen = (size_t)len < sizeof(bad) ? (size_t)len : sizeof(bad);

		memcpy(bad, blob, blen);
		tap_is(load_state(&b, bad, blen - 10), -EINVAL,
		       "state_truncated: CHECK -> EINVAL");
		bad[blen / 2] ^= 0x10;
		tap_is(load_state(&b, bad, blen), -EBADMSG,
		       "state_bitflip: CHECK -> EBADMSG");
		bad[blen / 2] ^= 0x10;
		bad[4] = 9;
		tap_is(load_state(&b, bad, blen), -EPROTO,
		       "state_bad_version: CHECK -> EPROTO");
		tap_is(load_state(&b, bad, 0), -EINVAL,
		       "state_empty: CHECK -> EINVAL");
		vsim_get_status(vsim_thread_sim(b.t), &st);
		tap_is(st.dirty_sectors, 0, "state: nothing applied on errors");
	}
	/* a reset ends a LOAD under way: nothing of it is applied */
	if (len > 0 && (size_t)len < 65536 && pipe2(p, O_CLOEXEC) == 0) {
		tap_is(state_fd(&b, VHOST_TRANSFER_STATE_DIRECTION_LOAD,
				VHOST_TRANSFER_STATE_PHASE_STOPPED, p[0], 0), 0,
		       "state_reset_mid_load: LOAD started");
		close(p[0]);
		tap_ok(write(p[1], blob, (size_t)len) == len,
		       "state_reset_mid_load: whole state written");
		tap_is(set_status(&b, 0), 0, "state_reset_mid_load: reset");
		close(p[1]);
		tap_is(req(&b, VHOST_VDPA_CHECK_DEVICE_STATE, NULL, 0, NULL, 0,
			   -1), -EINVAL,
		       "state_reset_mid_load: CHECK -> EINVAL (no transfer)");
		vsim_get_status(vsim_thread_sim(b.t), &st);
		tap_is(st.dirty_sectors, 0,
		       "state_reset_mid_load: nothing applied");
	}
	tap_is(load_state(&b, blob, (size_t)len), 0, "state: load on B");
	vsim_get_status(vsim_thread_sim(b.t), &st);
	tap_is(st.dirty_sectors, 8, "state: B holds the 8 dirty sectors");
	tap_is(st.q[0].requests, 1, "state: B has A's queue stats");
	if (!tap_ok(drv_start(&b, 0) == 0, "state: B started")) {
		drv_close(&b);
		goto out;
	}
	tap_is(load_state(&b, blob, (size_t)len), -EBUSY,
	       "state: load while DRIVER_OK -> EBUSY");
	data = b.mem + BUF_BASE + 0x80000;
	memset(data + 0x2000, 0, 4096);
	blk_req(&b, VIRTIO_BLK_T_IN, 16, 4096, true, 1);
	tap_ok(wait_used(&b, 0, 1, 2000) && blk_status(&b, 1) == 0,
	       "state: read on B");
	for (i = 0; i < 4096 && data[0x2000 + i] == (uint8_t)(i ^ 0x5a); i++)
		;
	tap_is(i, 4096, "state: B reads A's unflushed data");
	blk_req(&b, VIRTIO_BLK_T_FLUSH, 0, 0, false, 2);
	tap_ok(wait_used(&b, 0, 2, 2000) && blk_status(&b, 2) == 0,
	       "state: flush on B");
	tap_ok(pread(bfd, disk, 4096, 16 * 512) == 4096 &&
	       memcmp(disk, data + 0x2000, 4096) == 0,
	       "state: B flushed A's data to the shared file");
	drv_close(&b);
out:
	close(bfd);
	unlink(path);
	tap_is(tap_count_fds(), fds, "state: no fd leaked");
}

static void test_state_net(void)
{
	static const uint8_t new_mac[6] = { 0x02, 1, 2, 3, 4, 5 };
	struct vsim_opts o = net_opts();
	struct vsim_status st;
	struct dsc ds[2];
	uint8_t *cmd;
	struct drv a, b;
	ssize_t len;

	if (!tap_ok(drv_open(&a, &o) == 0 && drv_start(&a, 0) == 0,
		    "state_net: A")) {
		drv_close(&a);
		return;
	}
	cmd = a.mem + BUF_BASE;
	cmd[0] = VIRTIO_NET_CTRL_MAC;
	cmd[1] = VIRTIO_NET_CTRL_MAC_ADDR_SET;
	memcpy(cmd + 2, new_mac, 6);
	ds[0] = (struct dsc){ iova(BUF_BASE), 8, 0, -1 };
	ds[1] = (struct dsc){ iova(BUF_BASE + 0x100), 1, VRING_DESC_F_WRITE, -1 };
	post(&a, 2, 0, ds, 2);
	tap_ok(wait_used(&a, 2, 1, 2000), "state_net: MAC set on A");
	tap_is(req(&a, VHOST_VDPA_SUSPEND, NULL, 0, NULL, 0, -1), 0,
	       "state_net: A suspended");
	len = save_state(&a, blob, sizeof(blob));
	drv_close(&a);
	if (!tap_ok(len > 0, "state_net: saved (%zd bytes)", len))
		return;
	o.no_resume = true;
	if (!tap_ok(drv_open(&b, &o) == 0, "state_net: B")) {
		drv_close(&b);
		return;
	}
	tap_is(load_state(&b, blob, (size_t)len), 0, "state_net: loaded");
	vsim_get_status(vsim_thread_sim(b.t), &st);
	tap_ok(memcmp(st.mac, new_mac, 6) == 0, "state_net: MAC carried over");
	tap_is(st.q[2].requests, 1, "state_net: cvq stats carried over");
	drv_close(&b);
	/* a blk blob into a net device: refused */
	o = blk_opts();
	if (!tap_ok(drv_open(&a, &o) == 0 &&
		    req(&a, VHOST_VDPA_SUSPEND, NULL, 0, NULL, 0, -1) == 0 &&
		    (len = save_state(&a, blob, sizeof(blob))) > 0,
		    "state_wrong_device: a blk device's state saved")) {
		drv_close(&a);
		return;
	}
	drv_close(&a);
	o = net_opts();
	if (tap_ok(drv_open(&b, &o) == 0, "state_wrong_device: a net device"))
		tap_is(load_state(&b, blob, (size_t)len), -EPROTO,
		       "state_wrong_device: CHECK -> EPROTO");
	drv_close(&b);
}

int main(void)
{
	signal(SIGPIPE, SIG_DFL);	/* the sim must never raise it */
	tap_need_fd_count();

	bad_case("desc_loop", false, "loop", c_desc_loop);
	bad_case("chain_too_long", false, "longer than the queue",
		 c_chain_too_long);
	bad_case("avail_idx_jump", false, "jumped", c_avail_jump);
	bad_case("head_out_of_range", false, "head index", c_head_range);
	bad_case("next_out_of_range", false, "next index", c_next_range);
	bad_case("addr_outside_iotlb", false, "outside the IOTLB",
		 c_outside_iotlb);
	bad_case("len_wrap", false, "wraps", c_len_wrap);
	bad_case("len_past_mapping", false, "outside the IOTLB",
		 c_len_past_map);
	bad_case("short_net_header", false, "shorter than", c_short_net_hdr);
	bad_case("write_to_readonly_desc", false, "read-only descriptors",
		 c_rx_readonly);
	bad_case("write_to_readonly_iotlb", false, "read-only IOVA",
		 c_write_ro_iotlb);
	bad_case("readable_after_writable", false, "after writable",
		 c_read_after_write);
	bad_case("indirect_loop", false, "indirect descriptor loop",
		 c_indirect_loop);
	bad_case("indirect_bad_len", false, "indirect table length",
		 c_indirect_bad_len);
	bad_case("short_blk_header", true, "request header", c_blk_short_hdr);
	bad_case("blk_read_into_readonly", true, "read-only", c_blk_read_into_ro);
	bad_case("blk_no_status", true, "status", c_blk_no_status);
	bad_case("bad_cvq_command", false, "cvq: malformed", c_cvq_malformed);

	test_net_loopback();
	test_event_idx();
	test_cvq();
	test_blk_io();
	test_suspend_resume();
	test_state_blk();
	test_state_net();
	return tap_done();
}
