// SPDX-License-Identifier: MIT
/*
 * Would a state load? The one verdict shared by vdpa_state_load_device(),
 * `vdpa-user state check` and the transfer FD's LOAD check: the state must
 * fit the destination (vdpa_state_compat) and be a state a virtio driver
 * and a vhost-vdpa device can really have been in (docs/state-format.md,
 * "What a load refuses").
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/vhost_types.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <vdpa-user/state.h>
#include <vdpa-user/uapi-ext.h>

#include "device.h"
#include "state-int.h"

__attribute__((format(printf, 3, 4)))
static void refuse(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf && errlen) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
}

/* One line naming the problem, and return err from the check. */
#define REFUSE(err, ...) do {						\
		refuse(errbuf, errlen, __VA_ARGS__);			\
		return (err);						\
	} while (0)

static bool has(uint64_t features, unsigned int bit)
{
	return features & (1ULL << bit);
}

/* ---- driver memory ------------------------------------------------------- */

struct regions {
	const struct vdpa_mem *const *m;
	unsigned int n;
};

/* The region holding iova, or NULL. */
static const struct vdpa_mem *region_of(const struct regions *r, uint64_t iova)
{
	unsigned int i;

	for (i = 0; i < r->n; i++) {
		const struct vdpa_mem *m = r->m[i];
		uint64_t first = vdpa_mem_iova(m, vdpa_mem_base(m));

		if (iova >= first && iova - first < vdpa_mem_size(m))
			return m;
	}
	return NULL;
}

/* Every byte of [iova, iova + len) in some region (regions may abut). */
static bool covered(const struct regions *r, uint64_t iova, uint64_t len)
{
	while (len) {
		const struct vdpa_mem *m = region_of(r, iova);
		uint64_t first, in;

		if (!m)
			return false;
		first = vdpa_mem_iova(m, vdpa_mem_base(m));
		in = vdpa_mem_size(m) - (iova - first);
		if (in >= len)
			return true;
		iova += in;
		len -= in;
	}
	return true;
}

/* A little-endian u16 of a ring (avail->idx, used->idx) the driver wrote. */
static uint16_t ring_u16(const struct regions *r, uint64_t iova)
{
	const struct vdpa_mem *m = region_of(r, iova);
	uint64_t first = vdpa_mem_iova(m, vdpa_mem_base(m));
	const uint8_t *p = (const uint8_t *)vdpa_mem_base(m) + (iova - first);
	uint16_t v;

	/* covered() said both bytes are there; the driver may be writing */
	if (iova - first + 2 <= vdpa_mem_size(m) && !((uintptr_t)p & 1)) {
		v = __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
	} else {
		const struct vdpa_mem *m2 = region_of(r, iova + 1);
		uint64_t f2 = vdpa_mem_iova(m2, vdpa_mem_base(m2));
		uint8_t b[2];

		b[0] = *p;
		b[1] = ((const uint8_t *)vdpa_mem_base(m2))[iova + 1 - f2];
		memcpy(&v, b, 2);
	}
	return le16toh(v);
}

/* ---- rings --------------------------------------------------------------- */

enum ring_part { RING_DESC, RING_AVAIL, RING_USED };

static const char *const part_name[] = {
	"descriptor table", "avail ring", "used ring",
};
/* virtio 1.x split virtqueues, "Virtqueue Alignment" */
static const unsigned int part_align[] = { 16, 2, 4 };

struct ring_area {
	uint32_t queue;
	enum ring_part part;
	uint64_t start, len;	/* len > 0 */
};

/*
 * Bytes of each part of a split ring of size entries: the descriptor
 * table, avail (flags, idx, ring[], used_event with EVENT_IDX), used
 * (flags, idx, ring[], avail_event with EVENT_IDX), as vhost maps them.
 */
static void ring_areas(const struct vdpa_state_queue *q, bool event_idx,
		       struct ring_area a[3])
{
	uint64_t ev = event_idx ? 2 : 0;

	a[0] = (struct ring_area){ q->index, RING_DESC, q->desc,
				   16ull * q->size };
	a[1] = (struct ring_area){ q->index, RING_AVAIL, q->avail,
				   4 + 2ull * q->size + ev };
	a[2] = (struct ring_area){ q->index, RING_USED, q->used,
				   4 + 8ull * q->size + ev };
}

/* Inclusive ends: a ring may end at the last byte of the address space. */
static uint64_t last(const struct ring_area *x)
{
	return x->start + (x->len - 1);
}

static bool overlap(const struct ring_area *x, const struct ring_area *y)
{
	return x->start <= last(y) && y->start <= last(x);
}

/*
 * Size, alignment, and no ring part overlapping another: within a queue
 * none of the three may overlap; across queues only descriptor tables may
 * (the device only reads them), avail and used rings are each one queue's.
 */
static int check_rings(const struct vdpa_state *s, char *errbuf,
		       size_t errlen)
{
	struct ring_area a[3 * VDPA_STATE_MAX_QUEUES];
	bool event_idx = has(s->features, VIRTIO_RING_F_EVENT_IDX);
	uint32_t i, j, n = 0;

	for (i = 0; i < s->nqueues; i++) {
		const struct vdpa_state_queue *q = &s->q[i];

		if (!q->size)
			REFUSE(-EINVAL, "queue %u: ring size 0", q->index);
		if (q->size & (q->size - 1))
			REFUSE(-EINVAL, "queue %u: ring size %u not a power of "
			       "2", q->index, q->size);
		if (q->size > s->cfg.vq_max_size)
			REFUSE(-EINVAL, "queue %u: ring size %u above the "
			       "device's maximum %u", q->index, q->size,
			       s->cfg.vq_max_size);
		ring_areas(q, event_idx, &a[n]);
		for (j = n; j < n + 3; j++) {
			if (a[j].start % part_align[a[j].part])
				REFUSE(-EINVAL, "queue %u: %s at 0x%" PRIx64
				       " not %u-byte aligned", q->index,
				       part_name[a[j].part], a[j].start,
				       part_align[a[j].part]);
			if (a[j].len - 1 > UINT64_MAX - a[j].start)
				REFUSE(-EINVAL, "queue %u: %s at 0x%" PRIx64
				       " runs past the end of the address "
				       "space", q->index, part_name[a[j].part],
				       a[j].start);
		}
		n += 3;
	}
	for (i = 0; i < n; i++) {
		for (j = i + 1; j < n; j++) {
			if (a[i].queue != a[j].queue &&
			    a[i].part == RING_DESC && a[j].part == RING_DESC)
				continue;
			if (overlap(&a[i], &a[j]))
				REFUSE(-EINVAL, "queue %u: %s 0x%" PRIx64
				       "-0x%" PRIx64 " overlaps queue %u's %s "
				       "0x%" PRIx64 "-0x%" PRIx64,
				       a[j].queue, part_name[a[j].part],
				       a[j].start, last(&a[j]), a[i].queue,
				       part_name[a[i].part], a[i].start,
				       last(&a[i]));
		}
	}
	return 0;
}

/*
 * Split ring indexes are free-running u16s: every difference below is
 * taken mod 2^16, so a state saved across the 65535 -> 0 wrap is fine.
 * used_idx <= base <= avail->idx in that order, at most size apart.
 */
static int check_indexes(const struct vdpa_state *s, const struct regions *r,
			 char *errbuf, size_t errlen)
{
	bool event_idx = has(s->features, VIRTIO_RING_F_EVENT_IDX);
	uint32_t i;

	for (i = 0; i < s->nqueues; i++) {
		const struct vdpa_state_queue *q = &s->q[i];
		uint16_t inflight = (uint16_t)(q->base - q->used_idx);
		struct ring_area a[3];
		bool any = false;
		uint16_t used, avail, ahead;
		int k;

		if (inflight > q->size)
			REFUSE(-EINVAL, "queue %u: %u requests in flight (base "
			       "%u, used_idx %u), more than the ring's %u "
			       "entries", q->index, inflight, q->base,
			       q->used_idx, q->size);
		/* driver memory: only rings it holds a part of are checked */
		ring_areas(q, event_idx, a);
		for (k = 0; k < 3; k++)
			any |= region_of(r, a[k].start) != NULL;
		if (!any)
			continue;
		for (k = 0; k < 3; k++)
			if (!covered(r, a[k].start, a[k].len))
				REFUSE(-EINVAL, "queue %u: %s 0x%" PRIx64
				       "-0x%" PRIx64 " not entirely inside the "
				       "driver memory", q->index,
				       part_name[a[k].part], a[k].start,
				       last(&a[k]));
		used = ring_u16(r, q->used + 2);
		avail = ring_u16(r, q->avail + 2);
		if (used != q->used_idx)
			REFUSE(-EINVAL, "queue %u: used->idx in driver memory "
			       "is %u, the state says %u", q->index, used,
			       q->used_idx);
		ahead = (uint16_t)(avail - q->base);
		if (ahead > q->size)
			REFUSE(-EINVAL, "queue %u: avail->idx %u in driver "
			       "memory is %u entries past base %u, more than "
			       "the ring's %u", q->index, avail, ahead,
			       q->base, q->size);
	}
	return 0;
}

/* ---- the queue set ------------------------------------------------------- */

/*
 * virtio-net (5.1.2): receiveqN = 2(N-1), transmitqN = 2(N-1)+1, controlq
 * = 2N with N = max_virtqueue_pairs when MQ or RSS was negotiated, else 1.
 * ret_pairs: the complete rx/tx pairs set up.
 */
static int check_net_queues(const struct vdpa_state *s, uint64_t present,
			    uint32_t *ret_pairs, char *errbuf, size_t errlen)
{
	bool mq = has(s->features, VIRTIO_NET_F_MQ) ||
		  has(s->features, VIRTIO_NET_F_RSS);
	bool cvq = has(s->features, VIRTIO_NET_F_CTRL_VQ);
	uint32_t maxp = mq ? s->cfg.max_vqp : 1, cvq_idx = 2 * maxp, i, pairs;

	for (i = 0; i < s->nqueues; i++) {
		uint32_t idx = s->q[i].index;

		if (idx == cvq_idx && !cvq)
			REFUSE(-EINVAL, "net: queue %u is the control queue "
			       "but CTRL_VQ was not negotiated", idx);
		if (idx == cvq_idx)
			continue;
		if (idx >= 2 && !mq)
			REFUSE(-EINVAL, "net: queue %u belongs to pair %u: "
			       "more than 1 queue pair without MQ", idx,
			       idx / 2);
		if (idx / 2 >= maxp)
			REFUSE(-EINVAL, "net: queue %u is beyond max_vqp %u",
			       idx, maxp);
	}
	if (cvq && (cvq_idx >= 64 || !(present & (1ULL << cvq_idx))))
		REFUSE(-EINVAL, "net: control queue %u missing although "
		       "CTRL_VQ was negotiated", cvq_idx);
	for (pairs = 0; pairs < maxp && pairs < 32 &&
	     ((present >> (2 * pairs)) & 3) == 3; pairs++)
		;
	for (i = 0; i < s->nqueues; i++) {
		uint32_t idx = s->q[i].index;

		if (idx != cvq_idx && idx / 2 >= pairs)
			REFUSE(-EINVAL, "net: rx/tx queues must come in "
			       "complete pairs from pair 0 up: queue %u set "
			       "up, queue %u missing", idx, 2 * pairs +
			       (uint32_t)((present >> (2 * pairs)) & 1));
	}
	if (!pairs)
		REFUSE(-EINVAL, "net: rx/tx queues must come in complete pairs "
		       "from pair 0 up: queue %u missing",
		       (uint32_t)(present & 1));
	*ret_pairs = pairs;
	return 0;
}

static int check_queue_set(const struct vdpa_state *s, char *errbuf,
			   size_t errlen)
{
	uint64_t present = 0;
	uint32_t i, pairs = 0;
	int err;

	if (!s->nqueues)
		REFUSE(-EINVAL, "no queues: a saved device has at least one "
		       "queue set up");
	if (s->nqueues > VDPA_STATE_MAX_QUEUES)
		REFUSE(-EINVAL, "%u queues, more than %u", s->nqueues,
		       VDPA_STATE_MAX_QUEUES);
	for (i = 0; i < s->nqueues; i++) {
		uint32_t idx = s->q[i].index;

		if (idx >= s->cfg.vq_count || idx >= 64)
			REFUSE(-EINVAL, "queue %u: index beyond the device's "
			       "%u queues", idx, s->cfg.vq_count);
		if (present & (1ULL << idx))
			REFUSE(-EINVAL, "queue %u: listed twice", idx);
		present |= 1ULL << idx;
	}
	if (s->cfg.device_id == VIRTIO_ID_NET) {
		err = check_net_queues(s, present, &pairs, errbuf, errlen);
		if (err < 0)
			return err;
	} else if (s->cfg.device_id == VIRTIO_ID_BLOCK) {
		if (!(present & 1))
			REFUSE(-EINVAL, "blk: queue 0 missing");
		if (s->nqueues > 1 && !has(s->features, VIRTIO_BLK_F_MQ))
			REFUSE(-EINVAL, "blk: %u queues without "
			       "VIRTIO_BLK_F_MQ", s->nqueues);
	}
	if (s->has_net && s->cfg.device_id == VIRTIO_ID_NET) {
		uint16_t qp = s->net.queue_pairs;

		if (!qp)
			REFUSE(-EINVAL, "net class state: 0 queue pairs");
		if (qp > s->cfg.max_vqp)
			REFUSE(-EINVAL, "net class state: %u queue pairs, "
			       "beyond max_vqp %u", qp, s->cfg.max_vqp);
		if (qp > 1 && !has(s->features, VIRTIO_NET_F_MQ))
			REFUSE(-EINVAL, "net class state: %u queue pairs "
			       "without MQ", qp);
		if (qp > pairs)
			REFUSE(-EINVAL, "net class state: %u queue pairs, "
			       "only %u set up", qp, pairs);
	}
	return 0;
}

/* ---- features and status ------------------------------------------------- */

static int check_negotiated(const struct vdpa_state *s, char *errbuf,
			    size_t errlen)
{
	static const struct { uint8_t bit; const char *name; } need[] = {
		{ VIRTIO_CONFIG_S_ACKNOWLEDGE, "ACKNOWLEDGE" },
		{ VIRTIO_CONFIG_S_DRIVER, "DRIVER" },
		{ VIRTIO_CONFIG_S_FEATURES_OK, "FEATURES_OK" },
	}, never[] = {
		{ VIRTIO_CONFIG_S_FAILED, "FAILED" },
		{ VIRTIO_CONFIG_S_NEEDS_RESET, "NEEDS_RESET" },
	};
	size_t i;

	if (s->features & ~s->cfg.features_offered)
		REFUSE(-EINVAL, "negotiated features not offered: 0x%" PRIx64
		       " (the device offers 0x%" PRIx64 ")",
		       s->features & ~s->cfg.features_offered,
		       s->cfg.features_offered);
	if (!has(s->features, VIRTIO_F_VERSION_1))
		REFUSE(-EINVAL, "VERSION_1 (feature bit 32) not negotiated "
		       "(features 0x%" PRIx64 "): vhost-vdpa devices are "
		       "virtio 1.x", s->features);
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (!(s->status & need[i].bit))
			REFUSE(-EINVAL, "device status 0x%02x lacks %s",
			       s->status, need[i].name);
	for (i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		if (s->status & never[i].bit)
			REFUSE(-EINVAL, "device status 0x%02x has %s set",
			       s->status, never[i].name);
	return 0;
}

static int check_backend(const struct vdpa_state *s, uint64_t offered,
			 char *errbuf, size_t errlen)
{
	uint64_t be = s->backend_features;

	if (be & ~offered)
		REFUSE(-EPROTO, "backend features: source negotiated 0x%" PRIx64
		       ", destination offers 0x%" PRIx64, be, offered);
	if (!has(be, VHOST_BACKEND_F_IOTLB_MSG_V2))
		REFUSE(-EINVAL, "backend features 0x%" PRIx64 " lack "
		       "IOTLB_MSG_V2, which every load negotiates", be);
	if (!has(be, VHOST_BACKEND_F_SUSPEND))
		REFUSE(-EINVAL, "backend features 0x%" PRIx64 " lack SUSPEND: "
		       "the vring bases were not taken from a suspended "
		       "device", be);
	if (s->has_device && !has(be, VHOST_BACKEND_F_DEVICE_STATE))
		REFUSE(-EINVAL, "state carries device state but the "
		       "DEVICE_STATE extension (backend bit 48) was not "
		       "negotiated");
	return 0;
}

/* ---- the verdict --------------------------------------------------------- */

/*
 * The one verdict. backend_known: offered is the destination's backend
 * feature set (0 included). r: the driver memory to check rings against.
 */
static int check(const struct vdpa_state *s, const struct vdpa_state *dst_desc,
		 bool backend_known, uint64_t offered, const struct regions *r,
		 char *errbuf, size_t errlen)
{
	int err;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (!s)
		REFUSE(-EINVAL, "no state");
	if (!s->has_features)
		REFUSE(-EINVAL, "state holds only a device description, no "
		       "saved device (no features section)");
	if (dst_desc) {
		err = vdpa_state_compat(s, dst_desc, errbuf, errlen);
		if (err < 0)
			return err;
	}
	err = check_negotiated(s, errbuf, errlen);
	if (!err && backend_known)
		err = check_backend(s, offered, errbuf, errlen);
	if (!err)
		err = check_queue_set(s, errbuf, errlen);
	if (!err)
		err = check_rings(s, errbuf, errlen);
	if (!err)
		err = check_indexes(s, r, errbuf, errlen);
	return err;
}

int state_check_target(const struct vdpa_state *s,
		       const struct vdpa_state *dst_desc,
		       uint64_t dst_backend_offered, const struct vdpa_mem *mem,
		       char *errbuf, size_t errlen)
{
	struct regions r = { &mem, mem ? 1 : 0 };

	return check(s, dst_desc, dst_backend_offered != 0,
		     dst_backend_offered, &r, errbuf, errlen);
}

int state_check_dev(struct vdpa_dev *dev, const struct vdpa_state *s,
		    const struct vdpa_state *dst_desc,
		    const struct vdpa_mem *mem, char *errbuf, size_t errlen)
{
	const struct vdpa_mem *mems[VDPA_MAX_MAPPED];
	const struct vdpa_caps *caps = NULL;
	struct vdpa_state *here = NULL;
	struct regions r = { mems, 0 };
	unsigned int i;
	int err;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (!dev || !s)
		REFUSE(-EINVAL, "no %s", dev ? "state" : "device");
	err = dev_caps(dev, &caps);
	if (err < 0)
		REFUSE(err, "asking the destination's capabilities: %s",
		       strerror(-err));
	if (!dst_desc) {
		err = vdpa_state_describe(dev, &here);
		if (err < 0)
			REFUSE(err, "describing the destination: %s",
			       strerror(-err));
		dst_desc = here;
	}
	if (mem) {
		mems[r.n++] = mem;
	} else {
		for (i = 0; i < VDPA_MAX_MAPPED; i++)
			if (dev->mapped[i])
				mems[r.n++] = dev->mapped[i];
	}
	err = check(s, dst_desc, true, caps->backend_features, &r, errbuf,
		    errlen);
	vdpa_state_free(here);
	return err;
}

int vdpa_state_check_load(struct vdpa_dev *dev, const struct vdpa_state *s,
			  const struct vdpa_mem *mem, char *errbuf,
			  size_t errlen)
{
	return state_check_dev(dev, s, NULL, mem, errbuf, errlen);
}
