// SPDX-License-Identifier: MIT
/*
 * The vhost-vdpa / vdpa_sim rules of Linux 6.1 and 6.12 that migration
 * depends on, proven on the running device (docs/kernel-rig.md,
 * "kernel-rules"):
 *
 *   suspend-before-driver-ok  SUSPEND/RESUME without DRIVER_OK: 0, device
 *                             not asked (6.12 vhost_vdpa_suspend/_resume)
 *   vring-while-running       SET_VRING_ADDR/BASE: EINVAL while DRIVER_OK
 *                             and not suspended, after vhost core took
 *                             them; allowed while suspended (6.12)
 *   enable-after-driver-ok    the backend bit comes from the parent
 *   iotlb-persist             maps kept across reset only when negotiated
 *   replay-kick               a kick while suspended is served at RESUME
 *   addr-at-enable            a new ring address takes effect at the next
 *                             enable, not at RESUME
 *   enable-sets-used          enabling a queue sets used idx = avail idx
 *   use-va                    vdpa_sim's use_va default (pinning or not)
 *
 * Each check expects the answer of the kernel it runs on. Targets: the
 * devices in VDPA_TEST_NET_DEV / VDPA_TEST_BLK_DEV (the rig: Linux vdpa_sim,
 * the kernel's release from uname; a vdpa-sim socket: its personality from
 * what it offers) and, always, vdpa-sim in threads with --kernel 6.1 and
 * --kernel 6.12. VDPA_TEST_PCI_DEV (the rig with VDPA_RIG_PCI=1, vp_vdpa)
 * is the second parent for enable-after-driver-ok.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <vdpa-user/uapi-ext.h>
#include <vdpa-user/vdpa-user.h>
#include "sim.h"
#include "tap.h"

#define B(bit)		(1ULL << (bit))
#define FEATURES	(B(VIRTIO_F_VERSION_1) | B(VIRTIO_F_ACCESS_PLATFORM))
#define RING_NUM	64
#define MEM_SIZE	(1u << 20)
#define N_RX		32
#define QUIET_MS	300	/* watch for "nothing happened" this long */
#define WAIT_MS		5000	/* an expected completion, TCG included */

enum kver { K61, K612 };

struct target {
	char label[160];
	enum kver k;
	bool kernel;		/* Linux vhost-vdpa, not vdpa-sim */
	const char *name;	/* device to open, or NULL: vdpa-sim thread */
	struct vsim_opts o;	/* the thread's options */
	uint32_t id;		/* VIRTIO_ID_* */
};

/* An open device: a kernel node or a vdpa-sim thread. */
struct h {
	const struct target *t;
	struct vdpa_dev *dev;
	struct vsim_thread *thr;
	struct vdpa_caps caps;
};

/* A split ring driven by hand, so that every index is ours to choose. */
struct ring {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t desc_iova, avail_iova, used_iova;
	uint16_t next;		/* next avail idx to publish */
};

/* A vdpasim_net set up for traffic: RX (q0) buffers, TX (q1) packets. */
struct net {
	struct h h;
	void *guard;		/* PROT_NONE at VA == IOVA (see iotlb-persist) */
	struct vdpa_mem *mem;
	struct ring rx, tx, tx2;
	int kick[2];
	uint64_t pkt_iova, rxbuf_iova;
};

static const char *errname(int r)
{
	static char buf[32];

	switch (r) {
	case 0: return "0";
	case -EINVAL: return "-EINVAL";
	case -EFAULT: return "-EFAULT";
	case -EOPNOTSUPP: return "-EOPNOTSUPP";
	case -EBUSY: return "-EBUSY";
	case -ENOMEM: return "-ENOMEM";
	}
	snprintf(buf, sizeof(buf), "%d", r);
	return buf;
}

/* ---- devices ----------------------------------------------------------- */

static int h_open(const struct target *t, struct h *h)
{
	int fd = -1, r;

	memset(h, 0, sizeof(*h));
	h->t = t;
	if (t->name) {
		r = vdpa_dev_open(t->name, &h->dev);
	} else {
		r = vsim_thread_start(&t->o, &fd, &h->thr);
		if (r >= 0)
			r = vdpa_dev_open_sim_fd(fd, "sim:kernel-rules", &h->dev);
	}
	if (r >= 0)
		r = vdpa_dev_get_caps(h->dev, &h->caps);
	if (r < 0)
		tap_diag("%s: open: %s", t->label, strerror(-r));
	return r;
}

static void h_close(struct h *h)
{
	vdpa_dev_close(h->dev);
	vsim_thread_stop(h->thr);
	h->dev = NULL;
	h->thr = NULL;
}

static int call(struct h *h, unsigned long req, void *arg)
{
	return vdpa_dev_call(h->dev, req, arg);
}

static int set_status(struct h *h, uint8_t st)
{
	return call(h, VHOST_VDPA_SET_STATUS, &st);
}

/* Feature negotiation by hand: no library reset (which would remap). */
static int raw_features(struct h *h)
{
	uint64_t f = FEATURES;
	int r;

	r = set_status(h, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	if (!r)
		r = call(h, VHOST_SET_FEATURES, &f);
	if (!r)
		r = set_status(h, VIRTIO_CONFIG_S_ACKNOWLEDGE |
			       VIRTIO_CONFIG_S_DRIVER |
			       VIRTIO_CONFIG_S_FEATURES_OK);
	return r;
}

static int vring_base(struct h *h, uint32_t idx, uint32_t num)
{
	struct vhost_vring_state s = { .index = idx, .num = num };

	return call(h, VHOST_SET_VRING_BASE, &s);
}

static int get_base(struct h *h, uint32_t idx)
{
	struct vhost_vring_state s = { .index = idx };
	int r = call(h, VHOST_GET_VRING_BASE, &s);

	return r < 0 ? r : (int)s.num;
}

static int enable(struct h *h, uint32_t idx, bool on)
{
	struct vhost_vring_state s = { .index = idx, .num = on };

	return call(h, VHOST_VDPA_SET_VRING_ENABLE, &s);
}

static int ring_addr(struct h *h, uint32_t idx, const struct ring *r,
		     uint32_t flags)
{
	struct vhost_vring_addr a = {
		.index = idx, .flags = flags,
		.desc_user_addr = r->desc_iova,
		.avail_user_addr = r->avail_iova,
		.used_user_addr = r->used_iova,
	};

	return call(h, VHOST_SET_VRING_ADDR, &a);
}

/* ---- rings --------------------------------------------------------------- */

static int ring_alloc(struct vdpa_mem *mem, struct ring *r)
{
	void *d, *a, *u;
	int e;

	e = vdpa_mem_alloc(mem, 16u * RING_NUM, 16, &d);
	if (!e)
		e = vdpa_mem_alloc(mem, 6u + 2u * RING_NUM, 2, &a);
	if (!e)
		e = vdpa_mem_alloc(mem, 6u + 8u * RING_NUM, 4, &u);
	if (e)
		return e;
	r->desc = d;
	r->avail = a;
	r->used = u;
	r->desc_iova = vdpa_mem_iova(mem, d);
	r->avail_iova = vdpa_mem_iova(mem, a);
	r->used_iova = vdpa_mem_iova(mem, u);
	return 0;
}

/* Empty ring whose next avail (and used) entry is at idx `at`. */
static void ring_clear(struct ring *r, uint16_t at)
{
	memset(r->desc, 0, 16u * RING_NUM);
	memset(r->avail, 0, 6u + 2u * RING_NUM);
	memset(r->used, 0, 6u + 8u * RING_NUM);
	r->avail->idx = at;
	r->next = at;
}

/* Publish one single-descriptor chain; returns its head. */
static uint16_t ring_post(struct ring *r, uint64_t iova, uint32_t len,
			  bool write)
{
	uint16_t head = r->next % RING_NUM;

	r->desc[head].addr = iova;
	r->desc[head].len = len;
	r->desc[head].flags = write ? VRING_DESC_F_WRITE : 0;
	r->desc[head].next = 0;
	r->avail->ring[head] = head;
	r->next++;
	__atomic_store_n(&r->avail->idx, r->next, __ATOMIC_RELEASE);
	return head;
}

static uint16_t used_idx(const struct ring *r)
{
	return __atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Wait until used->idx == want or ms pass; returns the last value seen. */
static uint16_t wait_used(const struct ring *r, uint16_t want, int ms)
{
	uint16_t v = used_idx(r);

	for (; v != want && ms > 0; ms--) {
		sleep_ms(1);
		v = used_idx(r);
	}
	return v;
}

/* ---- net setup ------------------------------------------------------------ */

static void kick(struct net *n, int q)
{
	uint64_t one = 1;

	if (write(n->kick[q], &one, sizeof(one)) != sizeof(one))
		tap_diag("kick q%d: %s", q, strerror(errno));
}

static void send_pkt(struct net *n, struct ring *tx)
{
	ring_post(tx, n->pkt_iova, 12 + 60, false);
	kick(n, 1);
}

/* num, addresses, base and kick of queue q (not enabled). */
static int place(struct net *n, int q, const struct ring *r, uint16_t base)
{
	struct vhost_vring_state num = { .index = q, .num = RING_NUM };
	struct vhost_vring_file kf = { .index = q, .fd = n->kick[q] };
	int e;

	e = call(&n->h, VHOST_SET_VRING_NUM, &num);
	if (!e)
		e = ring_addr(&n->h, q, r, 0);
	if (!e)
		e = vring_base(&n->h, q, base);
	if (!e)
		e = call(&n->h, VHOST_SET_VRING_KICK, &kf);
	return e;
}

static void post_rx(struct net *n)
{
	int i;

	for (i = 0; i < N_RX; i++)
		ring_post(&n->rx, n->rxbuf_iova + 2048u * i, 2048, true);
}

/*
 * Rings (after features): RX with buffers, TX empty, both at base 0; TX
 * enabled only when tx_on; DRIVER_OK when driver_ok.
 */
static int net_rings(struct net *n, bool tx_on, bool driver_ok)
{
	int e;

	ring_clear(&n->rx, 0);
	ring_clear(&n->tx, 0);
	post_rx(n);
	e = place(n, 0, &n->rx, 0);
	if (!e)
		e = place(n, 1, &n->tx, 0);
	if (!e)
		e = enable(&n->h, 0, true);
	if (!e && tx_on)
		e = enable(&n->h, 1, true);
	if (!e && driver_ok)
		e = vdpa_dev_add_status(n->h.dev, VIRTIO_CONFIG_S_DRIVER_OK);
	return e;
}

static void net_close(struct net *n)
{
	int i;

	h_close(&n->h);
	vdpa_mem_destroy(n->mem);
	for (i = 0; i < 2; i++)
		if (n->kick[i] >= 0)
			close(n->kick[i]);
	if (n->guard)
		munmap(n->guard, MEM_SIZE);
	memset(n, 0, sizeof(*n));
}

/*
 * The IOVA of driver memory, with its VA range reserved PROT_NONE: after
 * a reset without IOTLB_PERSIST, 6.12's vdpa_sim maps IOVA to the same VA
 * (vdpasim_do_reset with CLEAN_MAP, use_va), which must then fault rather
 * than hit whatever this process has there.
 */
static uint64_t guarded_iova(struct net *n)
{
	static const uint64_t cand[] = {
		0x40000000ULL, 0x7e0000000ULL, 0x2000000000ULL,
	};
	size_t i;

	for (i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
		void *p = mmap((void *)(uintptr_t)cand[i], MEM_SIZE, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS |
			       MAP_FIXED_NOREPLACE, -1, 0);

		if (p == (void *)(uintptr_t)cand[i]) {
			n->guard = p;
			return cand[i];
		}
		if (p != MAP_FAILED)
			munmap(p, MEM_SIZE);
	}
	return 0x40000000ULL;
}

/* Open, backend features want & offered, driver features, memory, rings. */
static int net_open(const struct target *t, struct net *n, uint64_t want,
		    bool tx_on, bool driver_ok)
{
	uint64_t acked;
	void *pkt, *rxb;
	int e;

	memset(n, 0, sizeof(*n));
	n->kick[0] = n->kick[1] = -1;
	e = h_open(t, &n->h);
	if (e < 0)
		return e;
	n->kick[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	n->kick[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (n->kick[0] < 0 || n->kick[1] < 0)
		return -errno;
	e = vdpa_dev_set_backend_features(n->h.dev, want, &acked);
	if (!e)
		e = vdpa_dev_set_features(n->h.dev, FEATURES);
	if (!e)
		e = vdpa_mem_create(MEM_SIZE, guarded_iova(n), &n->mem);
	if (!e)
		e = vdpa_mem_map(n->h.dev, n->mem);
	if (!e)
		e = ring_alloc(n->mem, &n->rx);
	if (!e)
		e = ring_alloc(n->mem, &n->tx);
	if (!e)
		e = ring_alloc(n->mem, &n->tx2);
	if (!e)
		e = vdpa_mem_alloc(n->mem, 128, 64, &pkt);
	if (!e)
		e = vdpa_mem_alloc(n->mem, 2048u * N_RX, 64, &rxb);
	if (e)
		goto out;
	/* broadcast: vdpasim_net's receive_filter() passes it */
	memset(pkt, 0, 128);
	memset((uint8_t *)pkt + 12, 0xff, 6);
	memcpy((uint8_t *)pkt + 18, "\x02\x00\x00\x00\x00\x01\x88\xb5", 8);
	n->pkt_iova = vdpa_mem_iova(n->mem, pkt);
	n->rxbuf_iova = vdpa_mem_iova(n->mem, rxb);
	e = net_rings(n, tx_on, driver_ok);
out:
	if (e)
		tap_diag("%s: net setup: %s", t->label, strerror(-e));
	return e;
}

/* ---- the rules ------------------------------------------------------------ */

/* cond first: the message shows what the waits in it found */
#define CHECK(t, cond, ...) do {					\
	int c_ = !!(cond);						\
	char m_[320];							\
	snprintf(m_, sizeof(m_), __VA_ARGS__);				\
	tap_ok(c_, "[%s] %s", (t)->label, m_);				\
} while (0)

static void skip(const struct target *t, const char *rule, const char *why)
{
	printf("ok %d - [%s] %s # SKIP %s\n", ++tap_n, t->label, rule, why);
	fflush(stdout);
}

/*
 * 6.12 vhost_vdpa_suspend()/_resume(): "if (!(get_status & DRIVER_OK))
 * return 0" before ops->suspend, so the `suspended` flag stays clear:
 * after DRIVER_OK, SET_VRING_BASE is refused as on a running device.
 * 6.1 passes SUSPEND to the parent (0) and has no RESUME ioctl (EFAULT).
 */
static void rule_suspend_before_driver_ok(const struct target *t)
{
	struct h h;
	uint64_t acked;
	int r, s, want_resume;

	if (h_open(t, &h) < 0) {
		tap_ok(0, "[%s] suspend-before-driver-ok: open", t->label);
		return;
	}
	r = vdpa_dev_set_backend_features(h.dev, B(VHOST_BACKEND_F_SUSPEND) |
					  B(VHOST_BACKEND_F_RESUME), &acked);
	if (!r)
		r = vdpa_dev_set_features(h.dev, FEATURES);
	s = call(&h, VHOST_VDPA_SUSPEND, NULL);
	r = r ? r : call(&h, VHOST_VDPA_RESUME, NULL);
	want_resume = t->k == K612 ? 0 : -EFAULT;
	CHECK(t, s == 0 && r == want_resume,
	      "suspend-before-driver-ok: SUSPEND %s, RESUME %s without DRIVER_OK "
	      "(want 0, %s)", errname(s), errname(r), errname(want_resume));
	r = vdpa_dev_add_status(h.dev, VIRTIO_CONFIG_S_DRIVER_OK);
	s = r ? r : vring_base(&h, 0, 3);
	if (t->k == K612)
		CHECK(t, s == -EINVAL,
		      "suspend-before-driver-ok: that SUSPEND left the device "
		      "not suspended: SET_VRING_BASE after DRIVER_OK %s (want "
		      "-EINVAL)", errname(s));
	else
		CHECK(t, s == 0, "suspend-before-driver-ok: 6.1 has no "
		      "suspended state: SET_VRING_BASE after DRIVER_OK %s",
		      errname(s));
	h_close(&h);
}

/*
 * 6.12 vhost_vdpa_vring_ioctl(): vhost_vring_ioctl() stores the new
 * address / base first, then "if (DRIVER_OK && !v->suspended) return
 * -EINVAL" before ops->set_vq_address/set_vq_state. 6.1 passes both on.
 */
static void rule_vring_while_running(const struct target *t)
{
	struct net n;
	uint16_t u;
	int r, b;

	if (net_open(t, &n, B(VHOST_BACKEND_F_SUSPEND) |
		     B(VHOST_BACKEND_F_RESUME), true, true) < 0) {
		tap_ok(0, "[%s] vring-while-running: setup", t->label);
		net_close(&n);
		return;
	}
	send_pkt(&n, &n.tx);
	send_pkt(&n, &n.tx);
	u = wait_used(&n.tx, 2, WAIT_MS);
	b = get_base(&n.h, 1);
	CHECK(t, u == 2 && b == 2, "vring-while-running: 2 packets served, "
	      "used %u, base %d", u, b);
	ring_clear(&n.tx2, 2);
	r = vring_base(&n.h, 1, 40);
	b = get_base(&n.h, 1);
	if (t->k == K612) {
		CHECK(t, r == -EINVAL && b == 2, "vring-while-running: "
		      "SET_VRING_BASE 40 while running %s, device base still %d "
		      "(want -EINVAL, 2)", errname(r), b);
		r = ring_addr(&n.h, 1, &n.tx2, 0);
		send_pkt(&n, &n.tx);
		u = wait_used(&n.tx, 3, WAIT_MS);
		CHECK(t, r == -EINVAL && u == 3 && used_idx(&n.tx2) == 0,
		      "vring-while-running: SET_VRING_ADDR while running %s; "
		      "the old ring still served (used %u, new ring used %u)",
		      errname(r), u, used_idx(&n.tx2));
		/* vhost core validates (and stores) before the DRIVER_OK test */
		r = ring_addr(&n.h, 1, &n.tx2, 0x80);
		CHECK(t, r == -EOPNOTSUPP, "vring-while-running: bad flags "
		      "while running: %s from vhost core's check, which runs "
		      "first (want -EOPNOTSUPP)", errname(r));
		r = call(&n.h, VHOST_VDPA_SUSPEND, NULL);
		b = r ? r : vring_base(&n.h, 1, 3);
		CHECK(t, r == 0 && b == 0 && get_base(&n.h, 1) == 3,
		      "vring-while-running: while suspended SET_VRING_BASE 3 "
		      "%s and the device has it (GET_VRING_BASE %d)",
		      errname(b), get_base(&n.h, 1));
		r = ring_addr(&n.h, 1, &n.tx2, 0);
		CHECK(t, r == 0, "vring-while-running: while suspended "
		      "SET_VRING_ADDR %s (want 0)", errname(r));
	} else {
		CHECK(t, r == 0 && b == 40, "vring-while-running: 6.1 passes "
		      "SET_VRING_BASE 40 to the running device: %s, base now "
		      "%d", errname(r), b);
		r = ring_addr(&n.h, 1, &n.tx2, 0);
		CHECK(t, r == 0, "vring-while-running: 6.1 SET_VRING_ADDR "
		      "while running %s (want 0)", errname(r));
	}
	net_close(&n);
}

/*
 * 6.12: vhost-vdpa's own VHOST_VDPA_BACKEND_FEATURES are IOTLB_MSG_V2 and
 * IOTLB_BATCH; ENABLE_AFTER_DRIVER_OK is or'ed in from the parent's
 * get_backend_features() (vdpa_sim: vdpasim_get_backend_features; vp_vdpa
 * has none). 6.1 predates the bit.
 */
static void rule_enable_after_driver_ok(const struct target *t,
					const char *pci)
{
	uint64_t bit = B(VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK);
	uint64_t f = B(VHOST_BACKEND_F_IOTLB_MSG_V2) | bit;
	bool want = t->k == K612 || !t->kernel;
	struct net n;
	struct h h;
	uint16_t u;
	int r;

	if (h_open(t, &h) < 0) {
		tap_ok(0, "[%s] enable-after-driver-ok: open", t->label);
		return;
	}
	r = call(&h, VHOST_SET_BACKEND_FEATURES, &f);
	CHECK(t, !!(h.caps.backend_features & bit) == want &&
	      r == (want ? 0 : -EOPNOTSUPP),
	      "enable-after-driver-ok: offered %s, SET_BACKEND_FEATURES "
	      "with it %s%s", h.caps.backend_features & bit ? "yes" : "no",
	      errname(r), !t->kernel && t->k == K61 ? " (vdpa-sim offers it "
	      "in both personalities: docs/differential.md)" : "");
	h_close(&h);
	if (t->kernel && pci && *pci && t->k == K612) {
		struct target p = *t;

		snprintf(p.label, sizeof(p.label), "%.40s vp_vdpa", t->label);
		p.name = pci;
		r = h_open(&p, &h);
		if (r == -524) {	/* ENOTSUPP, kernel-internal */
			skip(t, "enable-after-driver-ok: a parent without the "
			     "bit", "vhost-vdpa will not open vp_vdpa without "
			     "an IOMMU domain (no vIOMMU in this guest)");
		} else if (r == 0) {
			CHECK(t, !(h.caps.backend_features & bit) &&
			      (h.caps.backend_features &
			       B(VHOST_BACKEND_F_IOTLB_MSG_V2)),
			      "enable-after-driver-ok: the same vhost-vdpa over "
			      "vp_vdpa (%s) offers 0x%" PRIx64 ", without it: "
			      "the bit is the parent's", pci,
			      (uint64_t)h.caps.backend_features);
			h_close(&h);
		} else {
			tap_ok(0, "[%s] enable-after-driver-ok: open %s",
			       t->label, pci);
		}
	} else if (t->kernel && t->k == K612 && t->id == VIRTIO_ID_NET) {
		skip(t, "enable-after-driver-ok: a parent without the bit",
		     "no vp_vdpa device (VDPA_TEST_PCI_DEV; VDPA_RIG_PCI=1)");
	}
	if (t->id != VIRTIO_ID_NET)
		return;
	if (!want) {
		skip(t, "enable-after-driver-ok: enabling after DRIVER_OK",
		     "not announced by Linux 6.1");
		return;
	}
	/* TX left disabled at DRIVER_OK, enabled afterwards: it runs */
	if (net_open(t, &n, bit, false, true) < 0) {
		tap_ok(0, "[%s] enable-after-driver-ok: setup", t->label);
		net_close(&n);
		return;
	}
	send_pkt(&n, &n.tx);
	u = wait_used(&n.tx, 1, QUIET_MS);
	r = enable(&n.h, 1, true);
	kick(&n, 1);
	CHECK(t, u == 0 && r == 0 && wait_used(&n.tx, 1, WAIT_MS) == 1,
	      "enable-after-driver-ok: disabled TX not served (used %u); "
	      "enabled after DRIVER_OK (%s) and kicked: served (used %u)",
	      u, errname(r), used_idx(&n.tx));
	net_close(&n);
}

/* Reset by hand, features, rings: no IOTLB message in between. */
static int reset_and_rings(struct net *n)
{
	int e = set_status(&n->h, 0);

	if (!e)
		e = raw_features(&n->h);
	if (!e)
		e = net_rings(n, true, true);
	return e;
}

/*
 * 6.12 _compat_vdpa_reset(): VDPA_RESET_F_CLEAN_MAP unless IOTLB_PERSIST
 * was acked; vdpasim_do_reset() then replaces the maps with an identity
 * map (here: faulting, see guarded_iova()). 6.1 vdpasim_do_reset() empties
 * the IOTLB on every reset and has no IOTLB_PERSIST.
 */
static void iotlb_persist_case(const struct target *t, bool persist)
{
	uint64_t want = persist ? B(VHOST_BACKEND_F_IOTLB_PERSIST) : 0;
	const char *what = persist ? "negotiated" : "not negotiated";
	struct net n;
	uint16_t u, u2 = 0;
	int e;

	if (net_open(t, &n, want, true, true) < 0) {
		tap_ok(0, "[%s] iotlb-persist %s: setup", t->label, what);
		net_close(&n);
		return;
	}
	send_pkt(&n, &n.tx);
	u = wait_used(&n.tx, 1, WAIT_MS);
	e = reset_and_rings(&n);
	if (e || u != 1) {
		tap_ok(0, "[%s] iotlb-persist %s: before reset used %u, reset "
		       "and rings: %s", t->label, what, u, errname(e));
		net_close(&n);
		return;
	}
	send_pkt(&n, &n.tx);
	u = wait_used(&n.tx, 1, persist ? WAIT_MS : QUIET_MS);
	if (!persist) {
		/* maps sent again: the same rings are served */
		e = vdpa_mem_unmap(n.h.dev, n.mem);
		if (!e)
			e = vdpa_mem_map(n.h.dev, n.mem);
		kick(&n, 1);
		u2 = wait_used(&n.tx, 1, WAIT_MS);
	}
	if (persist)
		CHECK(t, u == 1, "iotlb-persist negotiated: after a reset the "
		      "rings are served with no map sent again (used %u)", u);
	else
		CHECK(t, u == 0 && !e && u2 == 1, "iotlb-persist not "
		      "negotiated: after a reset nothing served (used %u) "
		      "until the map is sent again (%s, then used %u)", u,
		      errname(e), u2);
	net_close(&n);
}

static void rule_iotlb_persist(const struct target *t)
{
	uint64_t bit = B(VHOST_BACKEND_F_IOTLB_PERSIST);
	bool want = t->kernel && t->k == K612;
	struct h h;

	if (h_open(t, &h) < 0) {
		tap_ok(0, "[%s] iotlb-persist: open", t->label);
		return;
	}
	CHECK(t, !!(h.caps.backend_features & bit) == want,
	      "iotlb-persist: offered %s%s", h.caps.backend_features & bit ?
	      "yes" : "no", t->kernel ? "" : " (vdpa-sim offers it in no "
	      "personality: docs/differential.md)");
	h_close(&h);
	if (t->id != VIRTIO_ID_NET)
		return;
	iotlb_persist_case(t, false);
	if (want)
		iotlb_persist_case(t, true);
	else
		skip(t, "iotlb-persist negotiated", "not offered here");
}

/*
 * 6.12 vdpasim_kick_vq(): "!running && DRIVER_OK -> pending_kick";
 * vdpasim_resume() kicks every queue when pending_kick is set.
 */
static void rule_replay_kick(const struct target *t)
{
	struct net n;
	uint16_t u, q;
	int r, b;

	if (t->k != K612 || t->id != VIRTIO_ID_NET) {
		skip(t, "replay-kick", t->k != K612 ? "no RESUME on Linux 6.1" :
		     "a net device rule");
		return;
	}
	if (net_open(t, &n, B(VHOST_BACKEND_F_SUSPEND) |
		     B(VHOST_BACKEND_F_RESUME), true, true) < 0) {
		tap_ok(0, "[%s] replay-kick: setup", t->label);
		net_close(&n);
		return;
	}
	send_pkt(&n, &n.tx);
	u = wait_used(&n.tx, 1, WAIT_MS);
	r = call(&n.h, VHOST_VDPA_SUSPEND, NULL);
	send_pkt(&n, &n.tx);
	q = wait_used(&n.tx, 2, QUIET_MS);
	b = get_base(&n.h, 1);
	CHECK(t, u == 1 && r == 0 && q == 1 && b == 1,
	      "replay-kick: SUSPEND %s; a packet kicked while suspended is "
	      "not served (used %u, base %d)", errname(r), q, b);
	r = call(&n.h, VHOST_VDPA_RESUME, NULL);
	u = wait_used(&n.tx, 2, WAIT_MS);
	CHECK(t, r == 0 && u == 2, "replay-kick: RESUME %s serves it with no "
	      "new kick (used %u)", errname(r), u);
	net_close(&n);
}

/*
 * vdpasim_set_vq_address() only stores the addresses; vdpasim_queue_ready()
 * reads them when a queue goes from disabled to enabled, and sets
 * last_used_idx = last_avail_idx. RESUME does neither (6.12).
 */
static void rule_addr_at_enable(const struct target *t)
{
	struct net n;
	uint16_t u, u2;
	int r, r2 = 0;

	if (t->id != VIRTIO_ID_NET) {
		skip(t, "addr-at-enable", "a net device rule");
		return;
	}
	if (net_open(t, &n, B(VHOST_BACKEND_F_SUSPEND) |
		     B(VHOST_BACKEND_F_RESUME), true, true) < 0) {
		tap_ok(0, "[%s] addr-at-enable: setup", t->label);
		net_close(&n);
		return;
	}
	send_pkt(&n, &n.tx);
	u = wait_used(&n.tx, 1, WAIT_MS);
	ring_clear(&n.tx2, 1);
	if (t->k == K612) {
		r = call(&n.h, VHOST_VDPA_SUSPEND, NULL);
		r = r ? r : ring_addr(&n.h, 1, &n.tx2, 0);
		r2 = call(&n.h, VHOST_VDPA_RESUME, NULL);
	} else {
		r = ring_addr(&n.h, 1, &n.tx2, 0);	/* 6.1: allowed */
	}
	/* the old ring is still the one served */
	send_pkt(&n, &n.tx);
	u2 = wait_used(&n.tx, 2, WAIT_MS);
	CHECK(t, u == 1 && r == 0 && r2 == 0 && u2 == 2 &&
	      used_idx(&n.tx2) == 0, "addr-at-enable: new address set%s "
	      "(%s): the old ring still served (used %u), the new one not",
	      t->k == K612 ? " while suspended, then RESUME" : " while running",
	      errname(r ? r : r2), u2);
	/* at the next enable the device takes the new ring at base 2 */
	send_pkt(&n, &n.tx2);	/* tx2 avail idx 1 -> 2: slot 1, ignored */
	send_pkt(&n, &n.tx2);	/* slot 2 */
	r = enable(&n.h, 1, false);
	r = r ? r : enable(&n.h, 1, true);
	kick(&n, 1);
	u = wait_used(&n.tx2, 3, WAIT_MS);
	CHECK(t, r == 0 && u == 3 && n.tx2.used->ring[2].id == 2 &&
	      used_idx(&n.tx) == 2, "addr-at-enable: after disable + enable "
	      "the new ring is served from base 2 (used idx %u, want 3; entry "
	      "2 id %u), the old one left alone", u, n.tx2.used->ring[2].id);
	net_close(&n);
}

/*
 * vdpasim_queue_ready(): last_used_idx = last_avail_idx at enable;
 * vdpasim_set_vq_state() afterwards moves only last_avail_idx.
 */
static void rule_enable_sets_used(const struct target *t)
{
	struct net n;
	uint16_t u;
	int r;

	if (t->id != VIRTIO_ID_NET) {
		skip(t, "enable-sets-used", "a net device rule");
		return;
	}
	if (net_open(t, &n, 0, false, false) < 0) {
		tap_ok(0, "[%s] enable-sets-used: setup", t->label);
		net_close(&n);
		return;
	}
	/* base 5 before enable: used starts at 5 */
	ring_clear(&n.tx, 5);
	r = vring_base(&n.h, 1, 5);
	r = r ? r : enable(&n.h, 1, true);
	r = r ? r : vdpa_dev_add_status(n.h.dev, VIRTIO_CONFIG_S_DRIVER_OK);
	send_pkt(&n, &n.tx);
	u = wait_used(&n.tx, 6, WAIT_MS);
	CHECK(t, r == 0 && u == 6 && n.tx.used->ring[5].id == 5,
	      "enable-sets-used: base 5 then enable: the first completion "
	      "makes used idx %u (want 6: used started at avail 5)", u);
	net_close(&n);

	if (net_open(t, &n, 0, false, false) < 0) {
		tap_ok(0, "[%s] enable-sets-used: setup", t->label);
		net_close(&n);
		return;
	}
	/* enable at base 0, then base 7: avail moves, used stays at 0 */
	ring_clear(&n.tx, 7);
	r = enable(&n.h, 1, true);
	r = r ? r : vring_base(&n.h, 1, 7);
	r = r ? r : vdpa_dev_add_status(n.h.dev, VIRTIO_CONFIG_S_DRIVER_OK);
	send_pkt(&n, &n.tx);
	u = wait_used(&n.tx, 1, WAIT_MS);
	CHECK(t, r == 0 && u == 1 && n.tx.used->ring[0].id == 7 &&
	      get_base(&n.h, 1) == 8,
	      "enable-sets-used: enable then base 7: avail entry 7 completes "
	      "into used entry 0 (used idx %u, want 1; base now %d)", u,
	      get_base(&n.h, 1));
	net_close(&n);
}

/*
 * 6.12 vdpa_sim: module_param use_va, default true: vhost-vdpa maps the
 * owner's VA without pinning (vhost_vdpa_va_map), so RLIMIT_MEMLOCK is not
 * charged. 6.1 vdpa_sim has no use_va: vhost_vdpa_pa_map() pins and
 * refuses beyond RLIMIT_MEMLOCK (the IOTLB write then fails, EFAULT).
 */
static void rule_use_va(const struct target *t)
{
	const char *param = "/sys/module/vdpa_sim/parameters/use_va";
	struct rlimit old, zero;
	struct vdpa_mem *mem = NULL;
	bool pins = t->kernel && t->k == K61;
	char v[8] = "";
	struct h h;
	int r, r2 = -1;
	FILE *f;

	if (t->id != VIRTIO_ID_NET)
		return;
	if (t->kernel) {
		f = fopen(param, "re");
		if (f) {
			if (!fgets(v, sizeof(v), f))
				v[0] = 0;
			fclose(f);
		}
		v[strcspn(v, "\n")] = 0;
		if (t->k == K612)
			CHECK(t, !strcmp(v, "Y"), "use-va: %s = '%s' (want Y)",
			      param, v);
		else
			CHECK(t, !f, "use-va: 6.1 has no %s (%s)", param,
			      f ? "present" : "absent");
	}
	if (getrlimit(RLIMIT_MEMLOCK, &old) < 0 || h_open(t, &h) < 0) {
		tap_ok(0, "[%s] use-va: setup", t->label);
		return;
	}
	r = vdpa_dev_set_backend_features(h.dev, 0, NULL);
	r = r ? r : vdpa_mem_create(MEM_SIZE, 0x100000, &mem);
	if (!r) {
		zero = old;
		zero.rlim_cur = 0;
		r = setrlimit(RLIMIT_MEMLOCK, &zero) < 0 ? -errno : 0;
		r2 = r ? r : vdpa_mem_map(h.dev, mem);
		setrlimit(RLIMIT_MEMLOCK, &old);
	}
	if (pins) {
		r = r ? r : vdpa_mem_map(h.dev, mem);
		CHECK(t, r2 == -EFAULT && r == 0, "use-va: pages pinned: a "
		      "1 MiB map under RLIMIT_MEMLOCK 0 %s (want -EFAULT), with "
		      "the limit back %s", errname(r2), errname(r));
	} else {
		CHECK(t, !r && r2 == 0, "use-va: nothing pinned: a 1 MiB map "
		      "under RLIMIT_MEMLOCK 0 %s%s", errname(r ? r : r2),
		      t->kernel ? "" : " (vdpa-sim maps the memfd in both "
		      "personalities; Linux 6.1 pins: an accepted difference)");
	}
	h_close(&h);
	vdpa_mem_destroy(mem);
}

/* ---- targets --------------------------------------------------------------- */

static void run_rules(const struct target *t, const char *pci)
{
	tap_diag("==== %s (%s rules)", t->label, t->k == K612 ? "6.12" : "6.1");
	rule_suspend_before_driver_ok(t);
	if (t->id == VIRTIO_ID_NET)
		rule_vring_while_running(t);
	rule_enable_after_driver_ok(t, pci);
	rule_iotlb_persist(t);
	rule_replay_kick(t);
	rule_addr_at_enable(t);
	rule_enable_sets_used(t);
	rule_use_va(t);
}

/* The release of the running kernel: 6.1, >= 6.12, or -1 (no rules). */
static int running_kernel(char *rel, size_t len)
{
	struct utsname u;
	int maj = 0, min = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &maj, &min) != 2)
		return -1;
	snprintf(rel, len, "%s", u.release);
	if (maj == 6 && min == 1)
		return K61;
	if (maj > 6 || (maj == 6 && min >= 12))
		return K612;
	return -1;
}

/*
 * A device named in the environment. Kernel: the rules of uname's release,
 * cross-checked with RESUME (vdpa_sim offers it from 6.3 on). vdpa-sim:
 * its personality from what it offers (DEVICE_STATE: none; RESUME: 6.12).
 */
static bool env_target(struct target *t, const char *name, const char *kind)
{
	char rel[80] = "";
	struct h h;
	bool resume;
	int k;

	memset(t, 0, sizeof(*t));
	t->name = name;
	t->kernel = strncmp(name, "sim:", 4) != 0;
	snprintf(t->label, sizeof(t->label), "%s %.100s", kind, name);
	if (h_open(t, &h) < 0) {
		tap_ok(0, "[%s] open", t->label);
		return false;
	}
	resume = h.caps.resume;
	t->id = h.caps.device_id;
	if (t->kernel) {
		k = running_kernel(rel, sizeof(rel));
		h_close(&h);
		if (k < 0) {
			skip(t, "all rules", "written for Linux 6.1 and 6.12");
			return false;
		}
		t->k = k;
		CHECK(t, resume == (k == K612), "kernel %s: RESUME %soffered, "
		      "as vdpa_sim of that release", rel, resume ? "" : "not ");
		snprintf(t->label, sizeof(t->label), "Linux %s %s",
			 k == K612 ? "6.12" : "6.1", kind);
		return true;
	}
	if (h.caps.device_state) {
		h_close(&h);
		skip(t, "all rules", "vdpa-sim without --kernel: no personality");
		return false;
	}
	h_close(&h);
	t->k = resume ? K612 : K61;
	return true;
}

static void sim_target(enum vsim_type type, const char *k)
{
	struct target t;
	struct h h;

	memset(&t, 0, sizeof(t));
	vsim_opts_init(&t.o, type);
	if (vsim_opts_kernel(&t.o, k) < 0) {
		tap_ok(0, "vsim_opts_kernel(%s)", k);
		return;
	}
	t.k = !strcmp(k, "6.12") ? K612 : K61;
	t.id = type == VSIM_TYPE_NET ? VIRTIO_ID_NET : VIRTIO_ID_BLOCK;
	snprintf(t.label, sizeof(t.label), "vdpa-sim --kernel %s %s", k,
		 type == VSIM_TYPE_NET ? "net" : "blk");
	/* what a driver sees tells the personality apart */
	if (h_open(&t, &h) < 0) {
		tap_ok(0, "[%s] open", t.label);
		return;
	}
	CHECK(&t, !h.caps.device_state && h.caps.resume == (t.k == K612),
	      "personality visible through the ABI: RESUME %s, DEVICE_STATE "
	      "%s", h.caps.resume ? "offered" : "not offered",
	      h.caps.device_state ? "offered" : "not offered");
	h_close(&h);
	run_rules(&t, NULL);
}

int main(void)
{
	const char *net = getenv("VDPA_TEST_NET_DEV");
	const char *blk = getenv("VDPA_TEST_BLK_DEV");
	const char *pci = getenv("VDPA_TEST_PCI_DEV");
	struct target t;
	int fds;

	setvbuf(stdout, NULL, _IOLBF, 0);
	tap_need_fd_count();
	fds = tap_count_fds();
	if (net && *net && env_target(&t, net, "net"))
		run_rules(&t, pci);
	if (blk && *blk && env_target(&t, blk, "blk"))
		run_rules(&t, NULL);
	sim_target(VSIM_TYPE_NET, "6.1");
	sim_target(VSIM_TYPE_NET, "6.12");
	sim_target(VSIM_TYPE_BLK, "6.1");
	sim_target(VSIM_TYPE_BLK, "6.12");
	tap_is(tap_count_fds(), fds, "no fd leaked");
	return tap_done();
}
