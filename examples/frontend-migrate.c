// SPDX-License-Identifier: MIT
/*
 * frontend-migrate: how a VMM (a vDPA front-end) live-migrates a
 * virtio-net device with libvdpa-user while it keeps the guest's rings and
 * the guest's control queue to itself.
 *
 *   frontend-migrate SRC DST [--fail-destination] [-v|-vv]
 *
 * SRC and DST are vDPA net devices with at least 2 queue pairs, provisioned
 * alike (same MAC): sim:PATH (vdpa-sim --type net --queue-pairs 2 --socket
 * PATH) or /dev/vhost-vdpa-N.
 *
 * What a VMM does, and where this file does it:
 *
 *  - The guest's memory is a memfd the VMM owns (guest_memory()). It is
 *    mapped into the device's IOTLB with vdpa_mem_map().
 *  - The guest's split rings live in that memory and are written by the
 *    guest's driver; here the ring_*() functions play the guest. The device
 *    is told where they are with vdpa_dev_set_vring_num/addr/base/kick/call
 *    and vdpa_dev_set_vring_enable() (start_device()). The library
 *    remembers what was set, and that is what a migration moves.
 *  - The guest's control queue is the VMM's too (ctrl()). Every command
 *    the device acknowledges is handed to vdpa_dev_net_ctrl_record(): on a
 *    destination without the device-state extension the library replays
 *    MAC, MAC table, queue pairs and RX mode through a control queue of
 *    its own, then gives the control queue back to the guest's ring.
 *  - Migration is the library's transaction, driven half by half exactly
 *    as a source VMM and a destination VMM (two processes, maybe two
 *    hosts) drive it; the handshake messages are opaque bytes the VMM
 *    carries over its own migration channel (migrate()).
 *
 * The guest's traffic is sequence-numbered frames, looped back by the
 * device (vdpa-sim loops TX of pair p back to RX of pair p when its RX
 * filter passes the frame): to the guest's new MAC, to the extra unicast
 * entry of its MAC table, and to a multicast group, on both queue pairs.
 * Each passes the RX filter only if the MAC, the MAC table, allmulti and
 * the two queue pairs are in force on the device; frames to the
 * provisioned MAC must be filtered out. Traffic runs before, during (the
 * guest does not stop publishing while the device is suspended) and after
 * the migration; every frame must come back exactly once and intact.
 *
 * --fail-destination corrupts the device state on its way to the
 * destination, after the source was suspended: the destination refuses it,
 * its verdict makes the source roll back (resumed, kicks bound again) and
 * the traffic goes on on the source, nothing lost.
 *
 * Exit status 0 only if nothing was lost, duplicated or corrupted, the
 * traffic never stalled (a kick the device did not see), and the class
 * state survived. Build it against an installed libvdpa-user:
 *
 *   cc -o frontend-migrate frontend-migrate.c \
 *      $(pkg-config --cflags --libs vdpa-user)
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
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
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <vdpa-user/migrate.h>
#include <vdpa-user/uapi-ext.h>
#include <vdpa-user/vdpa-user.h>

#define PAIRS		2		/* queue pairs the guest uses */
#define RING_NUM	256		/* entries per ring (at most) */
#define BUF_SIZE	256		/* one buffer per descriptor */
#define MEM_SIZE	(4u << 20)	/* guest memory */
#define MEM_IOVA	0x40000000ull	/* where the device sees it */
#define VNET_HDR	sizeof(struct virtio_net_hdr_v1)	/* VERSION_1 */
#define FRAME_LEN	(VNET_HDR + 14 + 64)	/* + Ethernet + payload */
#define ETHERTYPE	0x88b5		/* IEEE local experimental */
#define MAGIC		0x474d4546u	/* "FEMG" */
#define BURST		16		/* frames per pair per round */
#define ROUNDS		20		/* before and after switching */
#define WAIT_MS		5000		/* for what must come back */

/* What each frame is sent to (and whether it must come back). */
enum kind { K_MAC, K_TABLE, K_MCAST, K_OLD, K_NKINDS };
static const char *const kind_name[K_NKINDS] = {
	"new MAC", "MAC-table entry", "multicast (allmulti)",
	"provisioned MAC (must be filtered)",
};

/*
 * The class state the guest sets through its control queue: a locally
 * administered MAC (02:00:00:00:00:43 if the device came with :42), a MAC
 * table with one more unicast address, allmulti, both queue pairs.
 */
static uint8_t guest_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x42 };
static const uint8_t table_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x77 };
static const uint8_t mcast_mac[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb };

/*
 * One split virtqueue, owned by the guest (this program): descriptor i
 * always points at buffer i, so a used entry's id names its buffer.
 */
struct ring {
	unsigned int idx;		/* queue index on the device */
	uint16_t num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t desc_iova, avail_iova, used_iova;
	uint8_t *buf;			/* num buffers of BUF_SIZE */
	uint64_t buf_iova;
	uint16_t avail_idx;		/* next avail->idx to publish */
	uint16_t last_used;		/* next used entry to consume */
	uint16_t free[RING_NUM];	/* TX/CVQ: free descriptors */
	unsigned int nfree;
	int kick, call;			/* the guest's eventfds */
};

struct sent {
	uint8_t kind, pair;
	uint8_t got;			/* times it came back */
};

struct frontend {
	struct vdpa_dev *dev;		/* the device the guest runs on */
	struct vdpa_mem *mem;		/* guest memory */
	uint8_t *base;
	size_t carved;			/* guest memory handed out */
	struct ring rx[PAIRS], tx[PAIRS], cvq;
	uint16_t max_pairs;		/* config max_virtqueue_pairs */
	uint8_t prov_mac[6];		/* the MAC the device came with */
	/* traffic */
	struct sent *frames;
	uint32_t nframes, cap;
	unsigned int inflight;		/* TX chains not completed yet */
	unsigned long corrupt;		/* frames back damaged */
	unsigned int stalls;		/* waits that timed out */
};

static int verbose;

__attribute__((format(printf, 1, 2), noreturn))
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "frontend-migrate: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The library never prints: it logs through vdpa_set_log(). */
static void lib_log(int level, const char *msg, void *opaque)
{
	(void)opaque;
	fprintf(stderr, "libvdpa-user: %s%s\n",
		level <= LOG_ERR ? "error: " : "", msg);
}

static const char *mac_str(const uint8_t *m, char *buf)
{
	sprintf(buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3],
		m[4], m[5]);
	return buf;
}

/* ---- guest memory and rings ------------------------------------------- */

/*
 * The guest's RAM: a memfd this program owns, adopted by the library only
 * to map it (vdpa_mem_create_from_fd() takes the fd and mmaps it).
 */
static void guest_memory(struct frontend *fe)
{
	/* sealable: a device process may seal it against shrinking */
	int fd = memfd_create("guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int r;

	if (fd < 0 || ftruncate(fd, MEM_SIZE) < 0)
		die("guest memory: %s", strerror(errno));
	r = vdpa_mem_create_from_fd(fd, MEM_SIZE, MEM_IOVA, &fe->mem);
	if (r < 0)
		die("guest memory: %s", strerror(-r));
	fe->base = vdpa_mem_base(fe->mem);
}

/* Hand out guest memory: a pointer and its IOVA. */
static void *carve(struct frontend *fe, size_t size, size_t align,
		   uint64_t *iova)
{
	size_t off = (fe->carved + align - 1) & ~(align - 1);

	if (off + size > MEM_SIZE)
		die("guest memory is full");
	fe->carved = off + size;
	*iova = MEM_IOVA + off;
	return fe->base + off;
}

/* Lay a ring out in guest memory (alignment as virtio 1.x requires). */
static void ring_init(struct frontend *fe, struct ring *r, unsigned int idx,
		      uint16_t num)
{
	uint16_t i;

	memset(r, 0, sizeof(*r));
	r->idx = idx;
	r->num = num;
	r->desc = carve(fe, 16u * num, 16, &r->desc_iova);
	r->avail = carve(fe, 6u + 2u * num, 2, &r->avail_iova);
	r->used = carve(fe, 6u + 8u * num, 4, &r->used_iova);
	r->buf = carve(fe, (size_t)BUF_SIZE * num, 64, &r->buf_iova);
	for (i = 0; i < num; i++)
		r->free[r->nfree++] = (uint16_t)(num - 1 - i);
	r->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->kick < 0 || r->call < 0)
		die("eventfd: %s", strerror(errno));
}

/* Put descriptor id (a chain head) into the avail ring (not yet visible). */
static void ring_add(struct ring *r, uint16_t id)
{
	r->avail->ring[r->avail_idx % r->num] = htole16(id);
	r->avail_idx++;
}

/* Make what was added visible to the device, then kick it. */
static void ring_publish_kick(struct ring *r)
{
	uint64_t one = 1;

	__atomic_store_n(&r->avail->idx, htole16(r->avail_idx),
			 __ATOMIC_RELEASE);
	/* a full counter (EAGAIN) wakes the device as well */
	if (write(r->kick, &one, sizeof(one)) < 0 && errno != EAGAIN)
		die("kick: %s", strerror(errno));
}

/* The next used entry, if the device wrote one. */
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

static void set_desc(struct ring *r, uint16_t id, uint64_t iova, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	r->desc[id].addr = htole64(iova);
	r->desc[id].len = htole32(len);
	r->desc[id].flags = htole16(flags);
	r->desc[id].next = htole16(next);
}

/* RX: every buffer goes to the device, device-writable. */
static void rx_post(struct ring *r, uint16_t id)
{
	set_desc(r, id, r->buf_iova + (uint64_t)id * BUF_SIZE, BUF_SIZE,
		 VRING_DESC_F_WRITE, 0);
	ring_add(r, id);
}

/* ---- the device --------------------------------------------------------- */

/* Open the device and read what the guest's rings depend on. */
static void open_device(struct frontend *fe, const char *name)
{
	struct vdpa_caps caps;
	uint8_t cfg[10];
	int r;

	r = vdpa_dev_open(name, &fe->dev);
	if (r < 0)
		die("%s: %s", name, strerror(-r));
	r = vdpa_dev_get_caps(fe->dev, &caps);
	if (r < 0)
		die("%s: capabilities: %s", name, strerror(-r));
	if (caps.device_id != VIRTIO_ID_NET)
		die("%s is not a net device", name);
	if (!(caps.features & (1ULL << VIRTIO_NET_F_MQ)))
		die("%s has a single queue pair; this guest uses %d "
		    "(vdpa-sim --queue-pairs %d)", name, PAIRS, PAIRS);
	/* struct virtio_net_config: mac[6], status, max_virtqueue_pairs */
	r = vdpa_dev_get_config(fe->dev, 0, cfg, sizeof(cfg));
	if (r < 0)
		die("%s: config: %s", name, strerror(-r));
	memcpy(fe->prov_mac, cfg, 6);
	fe->max_pairs = (uint16_t)(cfg[8] | cfg[9] << 8);
	if (fe->max_pairs < PAIRS)
		die("%s has %u queue pairs, this guest uses %d", name,
		    fe->max_pairs, PAIRS);
	if (!memcmp(fe->prov_mac, guest_mac, 6))
		guest_mac[5] = 0x43;	/* must not be the provisioned */
}

/*
 * Negotiate, place the rings, DRIVER_OK: what a VMM does when the guest's
 * driver starts the device (the requests QEMU's vhost-vdpa back-end makes).
 */
static void start_device(struct frontend *fe)
{
	const uint64_t want_backend =
		(1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2) |
		(1ULL << VHOST_BACKEND_F_IOTLB_BATCH) |
		(1ULL << VHOST_BACKEND_F_SUSPEND) |	/* to migrate */
		(1ULL << VHOST_BACKEND_F_RESUME) |	/* rollback, replay */
		(1ULL << VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK) |
		(1ULL << VHOST_BACKEND_F_DEVICE_STATE);	/* extension */
	const uint64_t need = (1ULL << VIRTIO_F_VERSION_1) |
			      (1ULL << VIRTIO_F_ACCESS_PLATFORM) |
			      (1ULL << VIRTIO_NET_F_CTRL_VQ) |
			      (1ULL << VIRTIO_NET_F_CTRL_RX) |
			      (1ULL << VIRTIO_NET_F_CTRL_MAC_ADDR) |
			      (1ULL << VIRTIO_NET_F_MQ);
	const uint64_t nice = (1ULL << VIRTIO_NET_F_MAC) |
			      (1ULL << VIRTIO_NET_F_STATUS) |
			      (1ULL << VIRTIO_NET_F_MTU);
	struct ring *all[2 * PAIRS + 1];
	const char *name = vdpa_dev_name(fe->dev);
	struct vdpa_caps caps;
	uint64_t acked;
	unsigned int i, n = 0;
	int r;

	r = vdpa_dev_get_caps(fe->dev, &caps);
	if (r < 0)
		die("%s: capabilities: %s", name, strerror(-r));
	if ((caps.features & need) != need)
		die("%s lacks features 0x%" PRIx64, name,
		    need & ~caps.features);
	/* the library acks want & offered (IOTLB_MSG_V2 is required) */
	r = vdpa_dev_set_backend_features(fe->dev, want_backend, &acked);
	if (r < 0)
		die("%s: backend features: %s", name, strerror(-r));
	if (!(acked & (1ULL << VHOST_BACKEND_F_SUSPEND)))
		fprintf(stderr, "frontend-migrate: %s cannot SUSPEND: the "
			"migration will be refused\n", name);
	/* reset, ACKNOWLEDGE|DRIVER, features, FEATURES_OK read back */
	r = vdpa_dev_set_features(fe->dev, need | (nice & caps.features));
	if (r < 0)
		die("%s: features: %s", name, strerror(-r));
	r = vdpa_mem_map(fe->dev, fe->mem);
	if (r < 0 && r != -EEXIST)
		die("%s: mapping guest memory: %s", name, strerror(-r));
	for (i = 0; i < PAIRS; i++) {
		all[n++] = &fe->rx[i];
		all[n++] = &fe->tx[i];
	}
	all[n++] = &fe->cvq;
	for (i = 0; i < n; i++) {
		struct ring *q = all[i];

		r = vdpa_dev_set_vring_num(fe->dev, q->idx, q->num);
		if (!r)
			r = vdpa_dev_set_vring_addr(fe->dev, q->idx,
						    q->desc_iova, q->avail_iova,
						    q->used_iova);
		/* the device has consumed nothing of it yet */
		if (!r)
			r = vdpa_dev_set_vring_base(fe->dev, q->idx,
						    q->last_used);
		if (!r)
			r = vdpa_dev_set_vring_kick(fe->dev, q->idx, q->kick);
		if (!r)
			r = vdpa_dev_set_vring_call(fe->dev, q->idx, q->call);
		if (!r)
			r = vdpa_dev_set_vring_enable(fe->dev, q->idx, true);
		if (r < 0)
			die("%s: queue %u: %s", name, q->idx, strerror(-r));
	}
	/*
	 * The first DRIVER_OK: the library keeps the config space as it was
	 * before it (the provisioned MAC), which is what a migration checks
	 * the destination against.
	 */
	r = vdpa_dev_add_status(fe->dev, VIRTIO_CONFIG_S_DRIVER_OK);
	if (r < 0)
		die("%s: DRIVER_OK: %s", name, strerror(-r));
}

/* ---- the guest's control queue ----------------------------------------- */

/*
 * One command through the guest's control queue, and, once the device
 * acknowledged it, into the library's record of the class state.
 */
static void ctrl(struct frontend *fe, uint8_t cls, uint8_t cmd,
		 const void *data, size_t len)
{
	struct ring *q = &fe->cvq;
	uint8_t *out = q->buf, *ack = q->buf + BUF_SIZE;
	uint64_t deadline = now_ns() + WAIT_MS * 1000000ull;
	uint32_t ulen;
	uint16_t id;
	int r;

	/* descriptor 0: class, command, data; descriptor 1: the ack */
	out[0] = cls;
	out[1] = cmd;
	memcpy(out + 2, data, len);
	*ack = 0xff;
	set_desc(q, 0, q->buf_iova, (uint32_t)(2 + len), VRING_DESC_F_NEXT, 1);
	set_desc(q, 1, q->buf_iova + BUF_SIZE, 1, VRING_DESC_F_WRITE, 0);
	ring_add(q, 0);
	ring_publish_kick(q);
	while (!ring_used(q, &id, &ulen)) {
		struct pollfd p = { q->call, POLLIN, 0 };
		uint64_t v;

		if (now_ns() > deadline)
			die("control command %u/%u: no answer", cls, cmd);
		poll(&p, 1, 10);
		if (read(q->call, &v, sizeof(v)) < 0 && errno != EAGAIN)
			die("call: %s", strerror(errno));
	}
	if (*ack != VIRTIO_NET_OK)
		die("the device refused control command class %u command %u",
		    cls, cmd);
	/*
	 * Only what the device acknowledged is recorded. -ENOTSUP: the
	 * library could not carry it to a destination without the
	 * device-state extension; it will refuse such a migration up front.
	 */
	r = vdpa_dev_net_ctrl_record(fe->dev, cls, cmd, data, len);
	if (r < 0)
		die("recording control command %u/%u: %s", cls, cmd,
		    strerror(-r));
}

/* What the guest's driver sets once it is up. */
static void configure_guest(struct frontend *fe)
{
	uint16_t pairs = htole16(PAIRS);
	uint8_t on = 1, table[4 + 6 + 4];
	uint32_t n;

	ctrl(fe, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET,
	     guest_mac, 6);
	ctrl(fe, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
	     &pairs, 2);
	ctrl(fe, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, &on, 1);
	/* struct virtio_net_ctrl_mac twice: 1 unicast entry, 0 multicast */
	n = htole32(1);
	memcpy(table, &n, 4);
	memcpy(table + 4, table_mac, 6);
	n = htole32(0);
	memcpy(table + 10, &n, 4);
	ctrl(fe, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table,
	     sizeof(table));
}

/* ---- the guest's traffic --------------------------------------------- */

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

static const uint8_t *kind_dst(const struct frontend *fe, enum kind k)
{
	return k == K_MAC ? guest_mac : k == K_TABLE ? table_mac :
	       k == K_MCAST ? mcast_mac : fe->prov_mac;
}

/*
 * Frame seq: virtio-net header, Ethernet header, then magic, seq, kind,
 * pair, a pattern, and an FNV-1a sum of everything after the header.
 */
static void build_frame(const struct frontend *fe, uint8_t *f, uint32_t seq,
			enum kind k, unsigned int pair)
{
	uint8_t *e = f + VNET_HDR, *pl = e + 14;
	uint32_t v, i;

	memset(f, 0, VNET_HDR);
	memcpy(e, kind_dst(fe, k), 6);
	memcpy(e + 6, guest_mac, 6);
	e[12] = ETHERTYPE >> 8;
	e[13] = ETHERTYPE & 0xff;
	v = htole32(MAGIC);
	memcpy(pl, &v, 4);
	v = htole32(seq);
	memcpy(pl + 4, &v, 4);
	pl[8] = (uint8_t)k;
	pl[9] = (uint8_t)pair;
	for (i = 10; i < 60; i++)
		pl[i] = (uint8_t)(seq * 31 + i);
	v = htole32(fnv1a(e, 14 + 60));
	memcpy(pl + 60, &v, 4);
}

/* Queue one frame on TX of pair (published with the next flush). */
static void send_frame(struct frontend *fe, unsigned int pair, enum kind k)
{
	struct ring *q = &fe->tx[pair];
	uint16_t id;

	if (!q->nfree)
		die("TX ring of pair %u is full", pair);
	if (fe->nframes == fe->cap) {
		fe->cap = fe->cap ? 2 * fe->cap : 1024;
		fe->frames = realloc(fe->frames, fe->cap * sizeof(*fe->frames));
		if (!fe->frames)
			die("out of memory");
	}
	id = q->free[--q->nfree];
	build_frame(fe, q->buf + (size_t)id * BUF_SIZE, fe->nframes, k, pair);
	set_desc(q, id, q->buf_iova + (uint64_t)id * BUF_SIZE, FRAME_LEN, 0, 0);
	ring_add(q, id);
	fe->frames[fe->nframes].kind = (uint8_t)k;
	fe->frames[fe->nframes].pair = (uint8_t)pair;
	fe->frames[fe->nframes].got = 0;
	fe->nframes++;
	fe->inflight++;
}

/* A received frame: intact, one we sent, on the right queue pair? */
static void check_frame(struct frontend *fe, unsigned int pair,
			const uint8_t *f, uint32_t len)
{
	const uint8_t *e = f + VNET_HDR, *pl = e + 14;
	uint32_t magic, seq, sum;
	struct sent *s;

	if (len != FRAME_LEN) {
		fe->corrupt++;
		return;
	}
	memcpy(&magic, pl, 4);
	memcpy(&seq, pl + 4, 4);
	memcpy(&sum, pl + 60, 4);
	seq = le32toh(seq);
	if (le32toh(magic) != MAGIC || seq >= fe->nframes ||
	    le32toh(sum) != fnv1a(e, 14 + 60)) {
		fe->corrupt++;
		return;
	}
	s = &fe->frames[seq];
	if (pl[8] != s->kind || pl[9] != s->pair || s->pair != pair ||
	    memcmp(e, kind_dst(fe, (enum kind)s->kind), 6)) {
		fe->corrupt++;
		return;
	}
	if (s->got < 255)
		s->got++;
}

/*
 * Take what the device completed. TX first: the device writes a frame's
 * RX entry before its TX entry, so once a TX completion is seen, the frame
 * either is in RX already or was filtered.
 */
static void reap(struct frontend *fe)
{
	unsigned int p;
	uint32_t len;
	uint16_t id;

	for (p = 0; p < PAIRS; p++) {
		struct ring *tx = &fe->tx[p], *rx = &fe->rx[p];
		bool refilled = false;

		while (ring_used(tx, &id, &len)) {
			tx->free[tx->nfree++] = id;
			fe->inflight--;
		}
		while (ring_used(rx, &id, &len)) {
			check_frame(fe, p, rx->buf + (size_t)id * BUF_SIZE,
				    len);
			rx_post(rx, id);
			refilled = true;
		}
		if (refilled)
			ring_publish_kick(rx);
	}
}

/* Reap until every frame sent was completed; -ETIMEDOUT after ms. */
static int pump(struct frontend *fe, int ms)
{
	uint64_t deadline = now_ns() + (uint64_t)ms * 1000000ull;
	struct pollfd p[2 * PAIRS];
	unsigned int i;
	uint64_t v;

	for (;;) {
		reap(fe);
		if (!fe->inflight)
			return 0;
		if (now_ns() > deadline) {
			fe->stalls++;	/* a kick the device never saw? */
			return -ETIMEDOUT;
		}
		for (i = 0; i < PAIRS; i++) {
			p[2 * i] = (struct pollfd){ fe->rx[i].call, POLLIN, 0 };
			p[2 * i + 1] = (struct pollfd){ fe->tx[i].call, POLLIN,
							0 };
		}
		poll(p, 2 * PAIRS, 10);
		for (i = 0; i < 2 * PAIRS; i++)
			if (p[i].revents && read(p[i].fd, &v, sizeof(v)) < 0 &&
			    errno != EAGAIN)
				die("call: %s", strerror(errno));
	}
}

/*
 * One round of the guest's traffic: BURST frames on each pair, kinds in
 * turn, one frame to the provisioned MAC among them; published and kicked.
 */
static void send_round(struct frontend *fe)
{
	unsigned int p, i;

	for (p = 0; p < PAIRS; p++) {
		for (i = 0; i < BURST; i++)
			send_frame(fe, p, i == BURST - 1 ? K_OLD :
				   (enum kind)(i % K_OLD));
		ring_publish_kick(&fe->tx[p]);
	}
}

/* Rounds of traffic, each waited for; false on a stall (frames stuck). */
static bool traffic(struct frontend *fe, unsigned int rounds, const char *when)
{
	unsigned int i;

	for (i = 0; i < rounds; i++) {
		send_round(fe);
		if (pump(fe, WAIT_MS) < 0) {
			fprintf(stderr, "frontend-migrate: traffic %s: %u "
				"frames stuck on %s\n", when, fe->inflight,
				vdpa_dev_name(fe->dev));
			return false;
		}
	}
	return true;
}

/* ---- migration ------------------------------------------------------- */

struct outcome {
	bool tried;			/* migrate() ran */
	unsigned int kicks_held;	/* by the source after SUSPEND */
	bool migrated;			/* the guest runs on DST now */
	char why[512];			/* the destination's failure */
	uint64_t downtime_ns;
	size_t state_bytes;
};

/*
 * The state goes from the source's transfer fd to the destination's,
 * carried by the VMM as it would carry it over its migration channel.
 * With corrupt, one byte flips on the way, as on a faulty link: the
 * destination's CHECK_DEVICE_STATE finds the blob's CRC32C wrong and
 * refuses it before anything reaches the destination device. A channel
 * error just ends the relay: the destination's check then fails (a short
 * state), and its verdict rolls the source back.
 */
static void relay(int from, int to, size_t flip_at, bool corrupt)
{
	uint8_t buf[65536];
	size_t at = 0;
	ssize_t n, w = 0, off;

	while ((n = read(from, buf, sizeof(buf))) > 0 && w >= 0) {
		if (corrupt && flip_at >= at && flip_at < at + (size_t)n)
			buf[flip_at - at] ^= 0x5a;
		for (off = 0; off < n && w >= 0; off += w)
			w = write(to, buf + off, (size_t)(n - off));
		at += (size_t)n;
	}
	if (n < 0 || w < 0)
		fprintf(stderr, "frontend-migrate: relaying the state: %s\n",
			strerror(errno));
	close(from);
	close(to);
}

static void print_times(const struct vdpa_mig_times *src,
			const struct vdpa_mig_times *dst)
{
	static const enum vdpa_mig_step order[] = {
		VDPA_MIG_PRECHECK, VDPA_MIG_PREPARE, VDPA_MIG_SUSPEND,
		VDPA_MIG_SAVE, VDPA_MIG_TRANSFER, VDPA_MIG_LOAD,
		VDPA_MIG_START, VDPA_MIG_COMMIT, VDPA_MIG_ROLLBACK,
	};
	uint64_t t0 = src->begin_ns[VDPA_MIG_SUSPEND];
	unsigned int i, side;

	printf("steps (us, from the source's SUSPEND; downtime between "
	       "suspend and start):\n");
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		for (side = 0; side < 2; side++) {
			const struct vdpa_mig_times *t = side ? dst : src;
			enum vdpa_mig_step s = order[i];

			/* both halves ran on this host: one clock */
			if (!t->begin_ns[s])
				continue;
			printf("  %-11s %-9s %+10.1f %9.1f%s\n",
			       side ? "destination" : "source",
			       vdpa_mig_step_name(s),
			       ((double)t->begin_ns[s] - (double)t0) / 1e3,
			       t->end_ns[s] ? (double)(t->end_ns[s] -
						       t->begin_ns[s]) / 1e3 :
					      0.0,
			       t->end_ns[s] ? "" : "  (did not finish)");
		}
	}
}

/*
 * The migration, as two VMMs run it. Everything marked "source" runs in
 * the source VMM with the source device, everything marked "destination"
 * in the destination VMM with the destination device; the descriptions,
 * the plan, the state and the verdict are bytes they send each other.
 */
static void migrate(struct frontend *fe, const char *dst_name, bool fail,
		    struct outcome *out)
{
	struct vdpa_mig_src *ms = NULL;
	struct vdpa_mig_dst *md = NULL;
	struct vdpa_dev *src = fe->dev, *dst = NULL;
	struct ring *all[2 * PAIRS + 1];
	void *desc = NULL, *plan = NULL, *verdict = NULL;
	size_t desc_len, plan_len, verdict_len, blob_len;
	const void *blob;
	char err[512] = "";
	int r, rfd = -1, wfd = -1, dr;
	unsigned int i, n = 0;

	for (i = 0; i < PAIRS; i++) {
		all[n++] = &fe->rx[i];
		all[n++] = &fe->tx[i];
	}
	all[n++] = &fe->cvq;

	/* destination: a fresh device, described for the source */
	r = vdpa_dev_open(dst_name, &dst);
	if (r < 0)
		die("%s: %s", dst_name, strerror(-r));
	r = vdpa_mig_dst_new(dst, NULL, &md);	/* NULL: library replays */
	if (!r)
		r = vdpa_mig_dst_describe(md, &desc, &desc_len);
	if (r < 0)
		die("%s: describing it: %s", dst_name, strerror(-r));

	/*
	 * source: before anything stops, is the destination compatible?
	 * It is checked against the device as provisioned, not against the
	 * MAC the guest set since.
	 */
	r = vdpa_mig_src_new(src, NULL, &ms);
	if (r < 0)
		die("%s: %s", vdpa_dev_name(src), strerror(-r));
	r = vdpa_mig_src_precheck(ms, desc, desc_len, err, sizeof(err));
	if (r < 0)	/* nothing stopped: a VMM keeps the guest on SRC */
		die("precheck: %s", err);
	r = vdpa_mig_src_plan(ms, &plan, &plan_len);
	if (r < 0)
		die("plan: %s", strerror(-r));

	/*
	 * destination, while the source still runs: negotiate the source's
	 * features, place the rings, map the guest's memory (a VMM maps its
	 * guest RAM into the destination device here, outside the
	 * downtime), and name the guest's eventfds for every queue.
	 */
	r = vdpa_mig_dst_prepare(md, plan, plan_len, err, sizeof(err));
	if (r < 0)
		die("destination refused the plan: %s", err);
	r = vdpa_mem_map(dst, fe->mem);
	if (r < 0 && r != -EEXIST)
		die("%s: mapping guest memory: %s", dst_name, strerror(-r));
	for (i = 0; i < n; i++)
		vdpa_mig_dst_set_vring_fds(md, all[i]->idx, all[i]->kick,
					   all[i]->call);

	/*
	 * source: SUSPEND (the downtime starts), save, and let go of the
	 * guest's kick eventfds, so the suspended source does not swallow
	 * the kicks the destination must see.
	 */
	r = vdpa_mig_src_switchover(ms, err, sizeof(err));
	if (r < 0)	/* the source was resumed: a VMM goes on there */
		die("switchover: %s", err);
	for (i = 0; i < n; i++) {
		struct vdpa_vring_info vi;

		/* the library remembers what the source holds now */
		if (vdpa_dev_get_vring(src, all[i]->idx, &vi) == 0 &&
		    vi.kick_fd != -1) {
			fprintf(stderr, "frontend-migrate: the suspended "
				"source still holds queue %u's kick\n",
				all[i]->idx);
			out->kicks_held++;
		}
	}
	vdpa_mig_src_blob(ms, &blob, &blob_len);
	out->state_bytes = blob_len;

	/* the guest does not stop: it publishes and kicks meanwhile */
	send_round(fe);

	/*
	 * The state over the transfer fds, as vhost-user's, via the VMM.
	 * From here on nothing may just exit: the source is suspended, and
	 * only the verdict (commit or rollback) gets the guest running again.
	 */
	r = vdpa_mig_src_set_state_fd(ms, -1, &rfd, err, sizeof(err));
	dr = vdpa_mig_dst_set_state_fd(md, -1, &wfd, out->why,
				       sizeof(out->why));
	if (!r && !dr)
		relay(rfd, wfd, blob_len / 2, fail);
	else if (rfd >= 0 || wfd >= 0)
		close(rfd >= 0 ? rfd : wfd);
	if (!r)
		r = vdpa_mig_src_check_state(ms, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "frontend-migrate: sending the state: %s\n",
			err);

	/* destination: check what came, then start */
	if (!dr)
		dr = vdpa_mig_dst_check_state(md, out->why, sizeof(out->why));
	if (!dr)
		dr = vdpa_mig_dst_start(md, out->why, sizeof(out->why));
	if (dr < 0)
		vdpa_dev_reset(dst);	/* it never ran: leave it clean */
	/* (a verdict that cannot be built or is lost: the source rolls back) */
	vdpa_mig_dst_verdict(md, dr, out->why, &verdict, &verdict_len);

	/*
	 * While the verdict travels, the guest goes on: on the destination
	 * if it started, else the frames wait in the rings for the source.
	 * The source is still suspended here: if it still held the guest's
	 * kick eventfds, it would swallow some of the kicks meant for the
	 * destination, and a round would stall (counted in the summary).
	 */
	if (dr < 0)
		send_round(fe);
	for (i = 0; !dr && i < 4; i++) {
		send_round(fe);
		if (pump(fe, WAIT_MS) < 0) {
			fprintf(stderr, "frontend-migrate: the destination "
				"does not take the guest's traffic (%u frames "
				"stuck)\n", fe->inflight);
			break;
		}
	}

	/* source: commit (reset), or roll back (kicks bound again, resumed) */
	r = vdpa_mig_src_finish(ms, verdict, verdict_len, err, sizeof(err));
	if (!dr && r < 0)	/* the guest runs on dst regardless */
		fprintf(stderr, "frontend-migrate: resetting the source: %s\n",
			err);
	if (dr < 0 && r == 0)
		die("the source committed after a failed destination");
	if (dr < 0) {
		struct vdpa_vring_info vi;
		uint8_t st = 0;

		if (vdpa_dev_get_status(src, &st) < 0 ||
		    !(st & VIRTIO_CONFIG_S_DRIVER_OK))
			die("rollback: the source is not running: %s", err);
		for (i = 0; i < n; i++)
			if (vdpa_dev_get_vring(src, all[i]->idx, &vi) < 0 ||
			    vi.kick_fd != all[i]->kick)
				die("rollback: queue %u's kick was not given "
				    "back", all[i]->idx);
		if (verbose)
			fprintf(stderr, "frontend-migrate: %s\n", err);
	}
	print_times(vdpa_mig_src_times(ms), vdpa_mig_dst_times(md));
	if (!dr)
		out->downtime_ns =
			vdpa_mig_dst_times(md)->end_ns[VDPA_MIG_START] -
			vdpa_mig_src_times(ms)->begin_ns[VDPA_MIG_SUSPEND];
	vdpa_mig_src_free(ms);
	vdpa_mig_dst_free(md);
	free(desc);
	free(plan);
	free(verdict);
	out->tried = true;
	out->migrated = !dr;
	if (out->migrated) {
		/* the guest now runs on dst; the source was reset */
		fe->dev = dst;
		vdpa_dev_close(src);
	} else {
		vdpa_dev_close(dst);
	}
}

/* ---- main ---------------------------------------------------------- */

int main(int argc, char **argv)
{
	const char *src_name = NULL, *dst_name = NULL;
	unsigned long lost = 0, dup = 0, leaked = 0, nold = 0;
	unsigned long byk[K_NKINDS] = { 0 };
	struct frontend fe;
	struct outcome out;
	bool fail = false, ok;
	char m1[18], m2[18];
	uint32_t i;
	int a;

	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--fail-destination"))
			fail = true;
		else if (!strcmp(argv[a], "-v"))
			verbose = 1;
		else if (!strcmp(argv[a], "-vv"))
			verbose = 2;
		else if (argv[a][0] == '-' || (src_name && dst_name))
			goto usage;
		else if (!src_name)
			src_name = argv[a];
		else
			dst_name = argv[a];
	}
	if (!src_name || !dst_name)
		goto usage;
	/* the relay writes into pipes: an early close must not kill us */
	signal(SIGPIPE, SIG_IGN);
	if (verbose)
		vdpa_set_log(lib_log, NULL, verbose > 1 ? LOG_DEBUG : LOG_INFO);
	memset(&fe, 0, sizeof(fe));
	memset(&out, 0, sizeof(out));

	/* the guest: memory, its rings, the device started, its config */
	guest_memory(&fe);
	open_device(&fe, src_name);
	for (i = 0; i < PAIRS; i++) {
		ring_init(&fe, &fe.rx[i], 2 * i, RING_NUM);
		ring_init(&fe, &fe.tx[i], 2 * i + 1, RING_NUM);
	}
	/* the control queue comes after every queue pair of the device */
	ring_init(&fe, &fe.cvq, 2u * fe.max_pairs, 8);
	for (i = 0; i < PAIRS; i++) {
		uint16_t id;

		for (id = 0; id < RING_NUM; id++)
			rx_post(&fe.rx[i], id);
		__atomic_store_n(&fe.rx[i].avail->idx,
				 htole16(fe.rx[i].avail_idx), __ATOMIC_RELEASE);
	}
	start_device(&fe);
	configure_guest(&fe);

	if (!traffic(&fe, ROUNDS, "before the migration"))
		goto summary;
	migrate(&fe, dst_name, fail, &out);
	/*
	 * The guest's control queue is its own again wherever it runs now
	 * (after a replay the library handed it back to the guest's ring):
	 * the guest uses it (promisc off, as it already was).
	 */
	{
		uint8_t off = 0;

		ctrl(&fe, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, &off,
		     1);
	}
	traffic(&fe, ROUNDS, "after the migration");
	pump(&fe, WAIT_MS);	/* whatever did not come back is lost */

summary:
	for (i = 0; i < fe.nframes; i++) {
		const struct sent *s = &fe.frames[i];

		if (s->kind == K_OLD) {
			/* must have been filtered out */
			nold++;
			leaked += s->got;
			continue;
		}
		lost += !s->got;
		dup += s->got > 1 ? s->got - 1u : 0;
		byk[s->kind] += s->got == 1;
	}
	if (verbose)
		for (i = 0; i < K_NKINDS; i++)
			fprintf(stderr, "frontend-migrate: %s: %lu came back\n",
				kind_name[i], i == K_OLD ? leaked : byk[i]);
	ok = !lost && !dup && !fe.corrupt && !leaked && !fe.stalls &&
	     !out.kicks_held && out.tried && out.migrated != fail;
	/* the summary: one line */
	printf("frontend-migrate: %s: ", ok ? "OK" : "FAILED");
	if (!out.tried)
		printf("no migration: the traffic stalled on %s", src_name);
	else if (out.migrated)
		printf("migrated %s -> %s (downtime %.1f us, state %zu bytes)",
		       src_name, dst_name, (double)out.downtime_ns / 1e3,
		       out.state_bytes);
	else
		printf("the destination failed (%s), rolled back to %s",
		       out.why, src_name);
	if (out.kicks_held)
		printf(" (the suspended source held %u kicks)", out.kicks_held);
	printf("; %u frames: lost %lu, duplicated %lu, corrupt %lu, stalls "
	       "%u; %lu "
	       "passed the RX filter only through MAC %s, the MAC table, "
	       "allmulti and %d queue pairs; %lu to the provisioned MAC %s, "
	       "%lu of them let through\n", fe.nframes, lost, dup, fe.corrupt,
	       fe.stalls,
	       byk[K_MAC] + byk[K_TABLE] + byk[K_MCAST], mac_str(guest_mac, m1),
	       PAIRS, nold, mac_str(fe.prov_mac, m2), leaked);
	vdpa_dev_close(fe.dev);		/* resets the device */
	vdpa_mem_destroy(fe.mem);
	free(fe.frames);
	return ok ? 0 : 1;

usage:
	fprintf(stderr, "usage: frontend-migrate SRC DST [--fail-destination] "
		"[-v|-vv]\n  SRC, DST: sim:PATH or /dev/vhost-vdpa-N\n");
	return 2;
}
