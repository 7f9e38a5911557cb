// SPDX-License-Identifier: MIT
/*
 * Relay mode: the device runs on shadow split rings in memory the relay
 * owns; a thread forwards guest avail entries to the shadow avail ring and
 * shadow used entries to the guest's used ring, and marks every guest page
 * the device wrote (writable buffers up to the used length) and the relay
 * wrote (used ring entries, used->idx, avail_event) in the vhost-user log.
 *
 * Indexes map 1:1: the shadow avail ring holds the guest's chain heads at
 * the same positions, the shadow descriptor table holds copies of the
 * guest's descriptors at the same indexes (indirect tables are left in
 * guest memory, which the device reads at IOVA == GPA), and the shadow used
 * index equals the guest's at every forward. So the switch back is only a
 * matter of giving the device the guest's ring addresses at the same base.
 *
 * The rings move with the library's save / reset / load (see relay.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <vdpa-user/state.h>
#include <vdpa-user/vdpa-user.h>

#include "relay.h"

#define RELAY_MAX_VQS		VDPA_STATE_MAX_QUEUES
#define RELAY_MAX_REGIONS	64
#define RELAY_IOVA_ALIGN	(2ull << 20)
#define RELAY_POLL_MS		100	/* re-scan even without a notification */

struct rvq {
	struct relay_vq g;
	struct vring_desc *gdesc;	/* guest rings, serve's mapping */
	struct vring_avail *gavail;
	struct vring_used *gused;
	struct vring_desc *sdesc;	/* shadow rings, relay's memory */
	struct vring_avail *savail;
	struct vring_used *sused;
	uint64_t sdesc_iova, savail_iova, sused_iova;
	int skick, scall;		/* relay -> device, device -> relay */
	uint16_t next_avail;		/* next guest avail entry to forward */
	uint16_t last_used;		/* next shadow used entry to forward */
	uint16_t signalled;		/* guest used idx at the last call check */
	bool broken;			/* the guest's avail idx ran away */
};

struct relay {
	struct vdpa_dev *dev;
	struct vdpa_mem *mem;		/* the shadow rings */
	struct relay_region regs[RELAY_MAX_REGIONS];
	unsigned nregs;
	struct rvq vq[RELAY_MAX_VQS];
	unsigned nvqs;
	unsigned order[RELAY_MAX_VQS];	/* vq[] by ascending queue index */
	bool event_idx;
	/* fds of the queues the relay leaves alone, by device queue index */
	int other_kick[RELAY_MAX_VQS], other_call[RELAY_MAX_VQS];
	pthread_mutex_t lock;		/* the log, and one forwarding pass */
	struct relay_log log;
	pthread_t thread;
	bool running;
	int stop_fd;
	bool stop;
	struct relay_counters c;
};

static void say(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void count(uint64_t *c, uint64_t n)
{
	__atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

static uint16_t ld16(const uint16_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void st16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* ---- guest memory and the log ---------------------------------------------- */

/* serve's mapping of [gpa, gpa + len) when one region holds all of it. */
static void *gpa_host(const struct relay *r, uint64_t gpa, uint64_t len)
{
	unsigned i;

	for (i = 0; i < r->nregs; i++) {
		const struct relay_region *g = &r->regs[i];

		if (gpa >= g->gpa && gpa - g->gpa <= g->size &&
		    len <= g->size - (gpa - g->gpa))
			return g->host + (gpa - g->gpa);
	}
	return NULL;
}

/*
 * Mark [gpa, gpa + len) dirty. Pages past the log are counted, never
 * written: the log's size bounds what may be touched. A range is not
 * required to lie in one region (a buffer may span two adjacent ones;
 * the device wrote it whole). len < 2^32 (a descriptor's).
 */
static void log_write(struct relay *r, uint64_t gpa, uint64_t len)
{
	uint64_t page, last;

	if (!len)
		return;
	count(&r->c.log_writes, 1);
	if (len - 1 > UINT64_MAX - gpa) {
		count(&r->c.log_overflow, 1);
		return;
	}
	last = (gpa + len - 1) / RELAY_LOG_PAGE;
	for (page = gpa / RELAY_LOG_PAGE; page <= last; page++) {
		uint8_t bit = (uint8_t)(1u << (page % 8)), old;

		if (page / 8 >= r->log.size) {
			count(&r->c.log_overflow, 1);
			return;
		}
		old = __atomic_fetch_or(&r->log.bitmap[page / 8], bit,
					__ATOMIC_RELAXED);
		if (!(old & bit))
			count(&r->c.logged_pages, 1);
	}
}

/* The guest used ring's GPA for the log (log_guest_addr when given). */
static uint64_t used_log_gpa(const struct rvq *q, uint64_t off)
{
	return (q->g.log_used_gpa ? q->g.log_used_gpa : q->g.used_gpa) + off;
}

/* Writable buffers of a descriptor table, up to *left bytes. */
static void log_table(struct relay *r, const struct vring_desc *t,
		      uint32_t n, uint16_t i, uint32_t *left, bool indirect_ok)
{
	uint32_t steps;

	for (steps = 0; steps < n && *left; steps++) {
		const struct vring_desc *d = &t[i];
		uint16_t flags = d->flags;

		if (flags & VRING_DESC_F_INDIRECT) {
			const struct vring_desc *it;
			uint32_t in = d->len / sizeof(*it);

			it = indirect_ok && in ?
			     gpa_host(r, d->addr, (uint64_t)in * sizeof(*it)) :
			     NULL;
			if (!it) {
				count(&r->c.bad_chains, 1);
				return;
			}
			log_table(r, it, in, 0, left, false);
			return;
		}
		if (flags & VRING_DESC_F_WRITE) {
			uint32_t w = d->len < *left ? d->len : *left;

			log_write(r, d->addr, w);
			*left -= w;
		}
		if (!(flags & VRING_DESC_F_NEXT))
			return;
		i = d->next;
		if (i >= n) {
			count(&r->c.bad_chains, 1);
			return;
		}
	}
}

/* ---- forwarding ------------------------------------------------------------ */

/* Copy a chain's descriptors to the shadow table at the same indexes. */
static void copy_chain(struct relay *r, struct rvq *q, uint16_t head)
{
	uint32_t steps;
	uint16_t i = head;

	for (steps = 0; steps < q->g.num; steps++) {
		if (i >= q->g.num) {
			count(&r->c.bad_chains, 1);
			return;
		}
		q->sdesc[i] = q->gdesc[i];
		if (!(q->sdesc[i].flags & VRING_DESC_F_NEXT))
			return;
		i = q->sdesc[i].next;
	}
	count(&r->c.bad_chains, 1);	/* a loop: the device will say so */
}

static uint16_t *used_event(struct vring_avail *a, uint32_t num)
{
	return &a->ring[num];
}

static uint16_t *avail_event(struct vring_used *u, uint32_t num)
{
	return (uint16_t *)&u->ring[num];
}

static void kick_device(struct rvq *q, uint16_t old, uint16_t new, bool ev)
{
	uint64_t one = 1;
	bool need;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	need = ev ? vring_need_event(ld16(avail_event(q->sused, q->g.num)),
				     new, old) :
	       !(ld16(&q->sused->flags) & VRING_USED_F_NO_NOTIFY);
	if (need && write(q->skick, &one, sizeof(one)) < 0) {
		/* a full counter already wakes the device */
	}
}

/*
 * Guest avail -> shadow avail, up to idx (read by pass()). Returns whether
 * anything moved. With EVENT_IDX the guest is told where to kick next;
 * pass() looks again after that, so a publish that raced with it is seen.
 */
static bool forward_avail(struct relay *r, struct rvq *q, uint16_t idx)
{
	uint16_t start = q->next_avail;

	if ((uint16_t)(idx - q->next_avail) > q->g.num) {
		/* a guest that publishes more than its ring holds */
		count(&r->c.bad_chains, 1);
		q->broken = true;
		return false;
	}
	if (idx == q->next_avail)
		return false;
	while (q->next_avail != idx) {
		uint16_t slot = q->next_avail % q->g.num;
		uint16_t head = q->gavail->ring[slot];

		copy_chain(r, q, head);
		q->savail->ring[slot] = head;
		q->next_avail++;
		count(&r->c.avail_fwd, 1);
	}
	st16(&q->savail->idx, q->next_avail);
	if (r->event_idx) {
		st16(avail_event(q->gused, q->g.num), q->next_avail);
		log_write(r, used_log_gpa(q, 4 + 8ull * q->g.num), 2);
	}
	kick_device(q, start, q->next_avail, r->event_idx);
	return true;
}

static void call_guest(struct relay *r, struct rvq *q)
{
	uint16_t new = q->last_used, old = q->signalled;
	uint64_t one = 1;
	bool need;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	need = r->event_idx ?
	       vring_need_event(ld16(used_event(q->gavail, q->g.num)), new,
				old) :
	       !(ld16(&q->gavail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	q->signalled = new;
	if (need) {
		count(&r->c.calls, 1);
		if (write(q->g.call_fd, &one, sizeof(one)) < 0) {
			/* a full counter already wakes the guest */
		}
	}
}

/* Shadow used -> guest used, logging what the device wrote. */
static bool forward_used(struct relay *r, struct rvq *q)
{
	bool moved = false;
	uint16_t idx;

	for (;;) {
		idx = ld16(&q->sused->idx);
		if (idx == q->last_used)
			break;
		while (q->last_used != idx) {
			uint16_t slot = q->last_used % q->g.num;
			struct vring_used_elem e = q->sused->ring[slot];
			uint32_t left = e.len;

			if (e.id < q->g.num)
				log_table(r, q->sdesc, q->g.num,
					  (uint16_t)e.id, &left, true);
			else
				count(&r->c.bad_chains, 1);
			q->gused->ring[slot] = e;
			log_write(r, used_log_gpa(q, 4 + 8ull * slot), 8);
			q->last_used++;
			count(&r->c.used_fwd, 1);
		}
		st16(&q->gused->idx, q->last_used);
		log_write(r, used_log_gpa(q, 2), 2);
		moved = true;
		if (r->event_idx) {
			/* every completion wakes us */
			st16(used_event(q->savail, q->g.num), q->last_used);
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
		}
	}
	if (moved)
		call_guest(r, q);
	return moved;
}

static void drain_fd(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing pending */
	}
}

/*
 * One forwarding pass, repeated until nothing moves. The guest's avail
 * indexes are read from the highest queue down and forwarded from the
 * lowest up: a net guest refills RX (queue 2k) before it sends on TX
 * (2k+1), and the device must not see a TX frame before the RX buffers
 * published ahead of it (it would drop the frame; passthrough would not).
 */
static void pass(struct relay *r, bool avail)
{
	uint16_t idx[RELAY_MAX_VQS];
	unsigned i;
	bool moved;

	pthread_mutex_lock(&r->lock);
	do {
		moved = false;
		for (i = r->nvqs; avail && i-- > 0;) {
			struct rvq *q = &r->vq[r->order[i]];

			idx[r->order[i]] = ld16(&q->gavail->idx);
		}
		for (i = 0; i < r->nvqs; i++) {
			struct rvq *q = &r->vq[r->order[i]];

			if (avail && !q->broken)
				moved |= forward_avail(r, q, idx[r->order[i]]);
			moved |= forward_used(r, q);
		}
	} while (moved);
	pthread_mutex_unlock(&r->lock);
}

/* The poll set: stop_fd (also the wake-up of an fd swap), kicks, calls. */
static unsigned poll_set(struct relay *r, struct pollfd *p)
{
	unsigned i, n = 0;

	pthread_mutex_lock(&r->lock);
	p[n++] = (struct pollfd){ .fd = r->stop_fd, .events = POLLIN };
	for (i = 0; i < r->nvqs; i++) {
		p[n++] = (struct pollfd){ .fd = r->vq[i].g.kick_fd,
					  .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = r->vq[i].scall,
					  .events = POLLIN };
	}
	pthread_mutex_unlock(&r->lock);
	return n;
}

static struct rvq *relayed(struct relay *r, uint32_t idx);

static void *relay_thread(void *arg)
{
	struct relay *r = arg;
	struct pollfd p[2 * RELAY_MAX_VQS + 1];
	unsigned i, n;

	/* what the guest published before the switch, already kicked */
	pass(r, true);
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		/*
		 * Rebuilt every round: relay_set_guest_fd() may have swapped
		 * a kick fd (it wakes us through stop_fd); an fd closed
		 * under poll() shows as POLLNVAL and is simply polled anew.
		 */
		n = poll_set(r, p);
		if (poll(p, n, RELAY_POLL_MS) < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&r->lock);
		for (i = 0; i < n; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			/*
			 * A kick fd swapped (and closed by serve) since the
			 * poll may be another file by now: read only the
			 * one still in place (the next round polls it).
			 */
			if (i % 2 && p[i].fd != r->vq[i / 2].g.kick_fd)
				continue;
			drain_fd(p[i].fd);
			if (i % 2)
				count(&r->c.kicks, 1);
		}
		pthread_mutex_unlock(&r->lock);
		if (__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
			break;
		pass(r, true);
	}
	return NULL;
}

int relay_set_guest_fd(struct relay *r, uint32_t idx, bool kick, int fd)
{
	struct rvq *q;
	uint64_t one = 1;
	int old;

	if (!r || idx >= RELAY_MAX_VQS)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	q = relayed(r, idx);
	if (!q) {
		/* the device has it; what the move back gives it again */
		if (kick)
			r->other_kick[idx] = fd;
		else
			r->other_call[idx] = fd;
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	if (fd < 0) {
		pthread_mutex_unlock(&r->lock);
		return -EINVAL;
	}
	old = kick ? q->g.kick_fd : q->g.call_fd;
	if (kick)
		q->g.kick_fd = fd;
	else
		q->g.call_fd = fd;
	pthread_mutex_unlock(&r->lock);
	if (kick && old != fd && write(r->stop_fd, &one, sizeof(one)) < 0) {
		/* the thread polls anew within RELAY_POLL_MS anyway */
	}
	return 1;
}

/* ---- checking what the caller hands over ------------------------------------ */

static int check_regions(const struct relay_region *regs, unsigned nregs,
			 char *err, size_t errlen)
{
	unsigned i, j;

	if (!regs || !nregs || nregs > RELAY_MAX_REGIONS) {
		say(err, errlen, "relay: %u memory regions (1 to %u)", nregs,
		    RELAY_MAX_REGIONS);
		return -EINVAL;
	}
	for (i = 0; i < nregs; i++) {
		const struct relay_region *a = &regs[i];

		if (!a->size || !a->host || a->size - 1 > UINT64_MAX - a->gpa) {
			say(err, errlen, "relay: memory region %u (gpa 0x%" PRIx64
			    ", size 0x%" PRIx64 ") is empty or overflows", i,
			    a->gpa, a->size);
			return -EINVAL;
		}
		for (j = 0; j < i; j++) {
			const struct relay_region *b = &regs[j];

			if (a->gpa <= b->gpa + (b->size - 1) &&
			    b->gpa <= a->gpa + (a->size - 1)) {
				say(err, errlen, "relay: memory regions %u and %u "
				    "overlap", j, i);
				return -EINVAL;
			}
		}
	}
	return 0;
}

static uint64_t guest_end(const struct relay *r)
{
	uint64_t end = 0;
	unsigned i;

	for (i = 0; i < r->nregs; i++)
		if (r->regs[i].gpa + r->regs[i].size > end)
			end = r->regs[i].gpa + r->regs[i].size;
	return end;
}

static int check_log(const struct relay *r, const struct relay_log *log,
		     char *err, size_t errlen)
{
	uint64_t end = guest_end(r), need;

	if (!log || !log->bitmap || !log->size) {
		say(err, errlen, "relay: no dirty log");
		return -EINVAL;
	}
	/* end may be 2^64 rounded to 0 only for a region ending there */
	need = end ? (end - 1) / RELAY_LOG_PAGE / 8 + 1 : UINT64_MAX;
	if (log->size < need) {
		say(err, errlen, "relay: dirty log of %" PRIu64 " bytes covers "
		    "guest memory up to 0x%" PRIx64 ", guest memory reaches 0x%"
		    PRIx64 " (needs %" PRIu64 " bytes)", log->size,
		    log->size * 8 * RELAY_LOG_PAGE, end, need);
		return -EINVAL;
	}
	return 0;
}

static const struct vdpa_state_queue *saved_queue(const struct vdpa_state *s,
						  uint32_t idx)
{
	uint32_t i;

	for (i = 0; i < s->nqueues; i++)
		if (s->q[i].index == idx)
			return &s->q[i];
	return NULL;
}

static int check_vq(struct relay *r, const struct relay_vq *v, unsigned k,
		    const struct vdpa_state *s, char *err, size_t errlen)
{
	const struct vdpa_state_queue *q = saved_queue(s, v->idx);
	uint64_t ev = r->event_idx ? 2 : 0;
	unsigned j;

	for (j = 0; j < k; j++)
		if (r->vq[j].g.idx == v->idx) {
			say(err, errlen, "relay: queue %u given twice", v->idx);
			return -EINVAL;
		}
	if (!q) {
		say(err, errlen, "relay: queue %u is not set up on the device",
		    v->idx);
		return -EINVAL;
	}
	if (!v->num || v->num > 32768 || (v->num & (v->num - 1)) ||
	    v->num != q->size) {
		say(err, errlen, "relay: queue %u: size %u (the device has %u)",
		    v->idx, v->num, q->size);
		return -EINVAL;
	}
	if (v->kick_fd < 0 || v->call_fd < 0) {
		say(err, errlen, "relay: queue %u: no kick or call eventfd",
		    v->idx);
		return -EINVAL;
	}
	if (v->desc_gpa % 16 || v->avail_gpa % 2 || v->used_gpa % 4 ||
	    !gpa_host(r, v->desc_gpa, 16ull * v->num) ||
	    !gpa_host(r, v->avail_gpa, 4 + 2ull * v->num + ev) ||
	    !gpa_host(r, v->used_gpa, 4 + 8ull * v->num + ev)) {
		say(err, errlen, "relay: queue %u: rings 0x%" PRIx64 "/0x%" PRIx64
		    "/0x%" PRIx64 " misaligned or outside guest memory", v->idx,
		    v->desc_gpa, v->avail_gpa, v->used_gpa);
		return -EINVAL;
	}
	if (v->last_avail != q->base) {
		say(err, errlen, "relay: queue %u: the device stands at %u, "
		    "the caller says %u", v->idx, q->base, v->last_avail);
		return -EINVAL;
	}
	return 0;
}

/* ---- the shadow rings -------------------------------------------------------- */

static size_t page_up(size_t n)
{
	return (n + 4095) & ~(size_t)4095;
}

static size_t shadow_size(const struct relay_vq *vqs, unsigned nvqs)
{
	size_t total = 0;
	unsigned i;

	for (i = 0; i < nvqs; i++)
		total += page_up(16ull * vqs[i].num) +
			 page_up(6 + 2ull * vqs[i].num) +
			 page_up(6 + 8ull * vqs[i].num);
	return total;
}

/* Shadow memory right above guest memory, inside the device's IOVA range. */
static int shadow_create(struct relay *r, size_t size, char *err,
			 size_t errlen)
{
	struct vdpa_caps caps;
	uint64_t iova;
	int e;

	e = vdpa_dev_get_caps(r->dev, &caps);
	if (e < 0) {
		say(err, errlen, "relay: device capabilities: %s", strerror(-e));
		return e;
	}
	iova = guest_end(r);
	if (iova < caps.iova_range.first)
		iova = caps.iova_range.first;
	iova = (iova + RELAY_IOVA_ALIGN - 1) & ~(RELAY_IOVA_ALIGN - 1);
	if (!iova || iova > caps.iova_range.last ||
	    caps.iova_range.last - iova < size - 1) {
		say(err, errlen, "relay: no room for %zu bytes of shadow rings "
		    "above guest memory in the device's IOVA range 0x%llx-0x%llx",
		    size, (unsigned long long)caps.iova_range.first,
		    (unsigned long long)caps.iova_range.last);
		return -ERANGE;
	}
	e = vdpa_mem_create(size, iova, &r->mem);
	if (!e)
		e = vdpa_mem_map(r->dev, r->mem);
	if (e < 0)
		say(err, errlen, "relay: shadow rings at IOVA 0x%" PRIx64 ": %s",
		    iova, strerror(-e));
	return e;
}

static int shadow_alloc(struct relay *r, struct rvq *q, size_t len,
			void **ret, uint64_t *ret_iova)
{
	int e = vdpa_mem_alloc(r->mem, page_up(len), 4096, ret);

	if (e < 0)
		return e;
	*ret_iova = vdpa_mem_iova(r->mem, *ret);
	(void)q;
	return 0;
}

/*
 * One queue's shadow: empty descriptors, avail idx at the device's base,
 * used idx at the guest's (equal: nothing in flight).
 */
static int rvq_init(struct relay *r, struct rvq *q, const struct relay_vq *v,
		    uint16_t used_idx)
{
	void *p;
	int e;

	q->g = *v;
	q->skick = q->scall = -1;
	q->gdesc = gpa_host(r, v->desc_gpa, 16ull * v->num);
	q->gavail = gpa_host(r, v->avail_gpa, 4 + 2ull * v->num);
	q->gused = gpa_host(r, v->used_gpa, 4 + 8ull * v->num);
	e = shadow_alloc(r, q, 16ull * v->num, &p, &q->sdesc_iova);
	q->sdesc = p;
	if (!e)
		e = shadow_alloc(r, q, 6 + 2ull * v->num, &p, &q->savail_iova);
	q->savail = p;
	if (!e)
		e = shadow_alloc(r, q, 6 + 8ull * v->num, &p, &q->sused_iova);
	q->sused = p;
	if (e < 0)
		return e;
	/*
	 * A device may have left NO_NOTIFY in the guest's used ring: the
	 * relay wants every kick it has no avail_event for.
	 */
	if (!r->event_idx && ld16(&q->gused->flags)) {
		st16(&q->gused->flags, 0);
		log_write(r, used_log_gpa(q, 0), 2);
	}
	q->next_avail = v->last_avail;
	q->last_used = used_idx;
	q->signalled = used_idx;
	q->savail->idx = v->last_avail;
	*used_event(q->savail, v->num) = used_idx;
	q->sused->idx = used_idx;
	q->skick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->scall = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->skick < 0 || q->scall < 0)
		return -errno;
	return 0;
}

/* ---- moving the device's rings ----------------------------------------------- */

static struct rvq *relayed(struct relay *r, uint32_t idx)
{
	unsigned i;

	for (i = 0; i < r->nvqs; i++)
		if (r->vq[i].g.idx == idx)
			return &r->vq[i];
	return NULL;
}

/*
 * Load s with the relayed queues on the shadow rings (shadow) or the
 * guest's; the other queues keep their rings and eventfds.
 */
static int load_rings(struct relay *r, struct vdpa_state *s, bool shadow,
		      char *err, size_t errlen)
{
	int kick[RELAY_MAX_VQS], call[RELAY_MAX_VQS];
	struct vdpa_load_hooks h;
	uint32_t i;

	memcpy(kick, r->other_kick, sizeof(kick));
	memcpy(call, r->other_call, sizeof(call));
	for (i = 0; i < s->nqueues; i++) {
		struct vdpa_state_queue *sq = &s->q[i];
		struct rvq *q = relayed(r, sq->index);

		if (!q)
			continue;
		sq->desc = shadow ? q->sdesc_iova : q->g.desc_gpa;
		sq->avail = shadow ? q->savail_iova : q->g.avail_gpa;
		sq->used = shadow ? q->sused_iova : q->g.used_gpa;
		sq->used_idx = q->last_used;
		kick[sq->index] = shadow ? q->skick : q->g.kick_fd;
		call[sq->index] = shadow ? q->scall : q->g.call_fd;
	}
	memset(&h, 0, sizeof(h));
	h.kick_fds = kick;
	h.call_fds = call;
	return vdpa_state_load_device(r->dev, s, &h, err, errlen);
}

static int save(struct relay *r, struct vdpa_state **ret, char *err,
		size_t errlen)
{
	int e = vdpa_state_save_device(r->dev, NULL, ret);

	if (e < 0)
		say(err, errlen, "relay: saving the suspended device: %s",
		    strerror(-e));
	return e;
}

static void relay_free(struct relay *r)
{
	unsigned i;

	if (!r)
		return;
	for (i = 0; i < r->nvqs; i++) {
		if (r->vq[i].skick >= 0)
			close(r->vq[i].skick);
		if (r->vq[i].scall >= 0)
			close(r->vq[i].scall);
	}
	if (r->mem) {
		vdpa_mem_unmap(r->dev, r->mem);
		vdpa_mem_destroy(r->mem);
	}
	if (r->stop_fd >= 0)
		close(r->stop_fd);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static int remember_others(struct relay *r, const struct vdpa_state *s)
{
	uint32_t i;
	int e;

	for (i = 0; i < RELAY_MAX_VQS; i++)
		r->other_kick[i] = r->other_call[i] = -1;
	for (i = 0; i < s->nqueues; i++) {
		struct vdpa_vring_info info;
		uint32_t idx = s->q[i].index;

		if (idx >= RELAY_MAX_VQS)
			return -EINVAL;
		e = vdpa_dev_get_vring(r->dev, idx, &info);
		if (e < 0)
			return e;
		r->other_kick[idx] = info.kick_fd;
		r->other_call[idx] = info.call_fd;
	}
	return 0;
}

static int setup(struct relay *r, const struct relay_vq *vqs, unsigned nvqs,
		 const struct relay_log *log, const struct vdpa_state *s,
		 char *err, size_t errlen)
{
	unsigned i;
	int e;

	if (s->features & (1ULL << VIRTIO_F_RING_PACKED)) {
		say(err, errlen, "relay: packed rings are not supported");
		return -EOPNOTSUPP;
	}
	/*
	 * The reset of the switch drops a volatile write cache unless the
	 * device's own state carried it.
	 */
	if (s->cfg.device_id == VIRTIO_ID_BLOCK &&
	    (s->features & (1ULL << VIRTIO_BLK_F_FLUSH)) && !s->has_device) {
		say(err, errlen, "relay: a blk device with a write cache (FLUSH "
		    "negotiated) and without the device-state extension would "
		    "lose unflushed writes at the switch");
		return -EOPNOTSUPP;
	}
	r->event_idx = s->features & (1ULL << VIRTIO_RING_F_EVENT_IDX);
	e = check_log(r, log, err, errlen);
	if (e < 0)
		return e;
	r->log = *log;
	for (i = 0; i < nvqs; i++) {
		e = check_vq(r, &vqs[i], i, s, err, errlen);
		if (e < 0)
			return e;
		r->vq[i].g = vqs[i];
	}
	for (i = 0; i < nvqs; i++) {
		unsigned j = i;

		/* insertion sort: a handful of queues */
		for (; j > 0 && vqs[r->order[j - 1]].idx > vqs[i].idx; j--)
			r->order[j] = r->order[j - 1];
		r->order[j] = i;
	}
	e = remember_others(r, s);
	if (e < 0) {
		say(err, errlen, "relay: device queues: %s", strerror(-e));
		return e;
	}
	e = shadow_create(r, shadow_size(vqs, nvqs), err, errlen);
	if (e < 0)
		return e;
	for (i = 0; i < nvqs; i++) {
		const struct vring_used *gu = gpa_host(r, vqs[i].used_gpa, 4);
		uint16_t used = ld16(&gu->idx);

		r->nvqs = i + 1;
		e = rvq_init(r, &r->vq[i], &vqs[i], used);
		if (e < 0) {
			say(err, errlen, "relay: queue %u shadow: %s",
			    vqs[i].idx, strerror(-e));
			return e;
		}
		if (used != vqs[i].last_avail) {
			say(err, errlen, "relay: queue %u: %u requests in flight "
			    "in the suspended device (avail %u, used %u)",
			    vqs[i].idx, (uint16_t)(vqs[i].last_avail - used),
			    vqs[i].last_avail, used);
			return -EBUSY;
		}
	}
	return 0;
}

int relay_start(struct relay **ret, struct vdpa_dev *dev,
		const struct relay_region *regs, unsigned nregs,
		const struct relay_vq *vqs, unsigned nvqs,
		const struct relay_log *log, char *err, size_t errlen)
{
	struct vdpa_state *s = NULL;
	struct relay *r;
	char why[256];
	int e;

	if (!ret || !dev || !vqs || !nvqs || nvqs > RELAY_MAX_VQS) {
		say(err, errlen, "relay: %u queues (1 to %u) or no device", nvqs,
		    RELAY_MAX_VQS);
		return -EINVAL;
	}
	e = check_regions(regs, nregs, err, errlen);
	if (e < 0)
		return e;
	r = calloc(1, sizeof(*r));
	if (!r) {
		say(err, errlen, "relay: out of memory");
		return -ENOMEM;
	}
	r->dev = dev;
	r->stop_fd = -1;
	pthread_mutex_init(&r->lock, NULL);
	memcpy(r->regs, regs, nregs * sizeof(*regs));
	r->nregs = nregs;
	e = save(r, &s, err, errlen);
	if (e < 0)
		goto err_free;
	e = setup(r, vqs, nvqs, log, s, err, errlen);
	if (e < 0)
		goto err_free;
	r->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->stop_fd < 0) {
		e = -errno;
		say(err, errlen, "relay: eventfd: %s", strerror(-e));
		goto err_free;
	}
	/* from here the device is reset: on failure it goes back */
	e = load_rings(r, s, true, why, sizeof(why));
	if (e < 0) {
		say(err, errlen, "relay: moving queues to the shadow rings: %s",
		    why);
		goto err_back;
	}
	e = pthread_create(&r->thread, NULL, relay_thread, r);
	if (e) {
		e = -e;
		say(err, errlen, "relay: thread: %s", strerror(-e));
		goto err_suspend;
	}
	r->running = true;
	vdpa_state_free(s);
	*ret = r;
	return 0;

err_suspend:
	vdpa_dev_suspend(dev);
err_back:
	/* the guest rings as they were, suspended */
	if ((load_rings(r, s, false, why, sizeof(why)) < 0 ||
	     vdpa_dev_suspend(dev) < 0) && err && errlen > strlen(err))
		say(err + strlen(err), errlen - strlen(err), "; back on the "
		    "guest rings failed too: %s", why);
err_free:
	vdpa_state_free(s);
	relay_free(r);
	return e;
}

/*
 * The device stands at base on q's guest ring: what the guest published
 * past it is the device's now (counted, to show the switch had requests
 * in flight). The relay thread read the guest's kicks for them; the load
 * (vdpa_state_load_device()) kicks every queue through the eventfds it
 * is handed, the guest's here, which makes up for them.
 */
static void hand_back(struct relay *r, struct rvq *q, uint16_t base)
{
	uint16_t pending = (uint16_t)(ld16(&q->gavail->idx) - base);

	if (pending <= q->g.num)	/* else a runaway guest index */
		count(&r->c.handed_back, pending);
}

/* Save, reset, load with the guest rings: the device runs on them. */
static int move_back(struct relay *r, uint16_t *ret_last_avail, char *err,
		     size_t errlen)
{
	struct vdpa_state *s = NULL;
	char why[256];
	unsigned i;
	int e;

	e = save(r, &s, err, errlen);
	if (e < 0)
		return e;
	/* counted before the device runs on (and the guest adds to) them */
	for (i = 0; i < r->nvqs; i++)
		hand_back(r, &r->vq[i], saved_queue(s, r->vq[i].g.idx)->base);
	e = load_rings(r, s, false, why, sizeof(why));
	if (e < 0)
		say(err, errlen, "relay: moving queues back to the guest rings: "
		    "%s", why);
	for (i = 0; !e && ret_last_avail && i < r->nvqs; i++)
		ret_last_avail[i] = saved_queue(s, r->vq[i].g.idx)->base;
	vdpa_state_free(s);
	return e;
}

/*
 * Leave the device suspended, with the guest rings, base and eventfds set
 * on each relayed queue: what a later save records, and what a reset and
 * setup or a load starts it on. Not started here: anything it did on the
 * guest rings now would escape the log.
 */
static int park(struct relay *r, uint16_t *ret_last_avail, char *err,
		size_t errlen)
{
	unsigned i;
	int e = 0;

	for (i = 0; !e && i < r->nvqs; i++) {
		const struct relay_vq *g = &r->vq[i].g;
		uint16_t base;

		e = vdpa_dev_get_vring_base(r->dev, g->idx, &base);
		if (!e)
			e = vdpa_dev_set_vring_addr(r->dev, g->idx, g->desc_gpa,
						    g->avail_gpa, g->used_gpa);
		if (!e)
			e = vdpa_dev_set_vring_base(r->dev, g->idx, base);
		if (!e)
			e = vdpa_dev_set_vring_kick(r->dev, g->idx, g->kick_fd);
		if (!e)
			e = vdpa_dev_set_vring_call(r->dev, g->idx, g->call_fd);
		if (e < 0)
			say(err, errlen, "relay: queue %u: setting the guest ring "
			    "on the suspended device: %s", g->idx, strerror(-e));
		else
			hand_back(r, &r->vq[i], base);
		if (!e && ret_last_avail)
			ret_last_avail[i] = base;
	}
	return e;
}

int relay_stop(struct relay *r, bool run, uint16_t *ret_last_avail,
	       char *err, size_t errlen)
{
	return relay_stop_ex(r, run, ret_last_avail, NULL, err, errlen);
}

int relay_stop_ex(struct relay *r, bool run, uint16_t *ret_last_avail,
		  struct relay_counters *ret_counters, char *err, size_t errlen)
{
	uint64_t before;
	uint8_t st = 0;
	int e;

	if (!r) {
		say(err, errlen, "relay: not running");
		return -EINVAL;
	}
	__atomic_store_n(&r->stop, true, __ATOMIC_RELEASE);
	if (r->running) {
		uint64_t one = 1;

		if (write(r->stop_fd, &one, sizeof(one)) < 0) {
			/* the flag alone ends the thread at its next poll */
		}
		pthread_join(r->thread, NULL);
	}
	e = vdpa_dev_suspend(r->dev);
	if (e < 0) {
		say(err, errlen, "relay: suspending the device: %s",
		    strerror(-e));
		goto out;
	}
	/*
	 * A device that gave up on the shadow rings: the reset below would
	 * hide it, and what it dropped is not coming back.
	 */
	e = vdpa_dev_get_status(r->dev, &st);
	if (!e && (st & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)))
		e = -EIO;
	if (e < 0) {
		say(err, errlen, "relay: the device failed on the shadow rings "
		    "(status 0x%02x%s)", st, e != -EIO ? ", unreadable" :
		    st & VIRTIO_CONFIG_S_NEEDS_RESET ? ": NEEDS_RESET" :
		    ": FAILED");
		goto out;
	}
	/* what the device completed before it stopped */
	before = r->c.used_fwd;
	pass(r, false);
	count(&r->c.used_at_stop, r->c.used_fwd - before);
	e = run ? move_back(r, ret_last_avail, err, errlen) :
		  park(r, ret_last_avail, err, errlen);
out:
	if (ret_counters)
		relay_counters(r, ret_counters);
	relay_free(r);
	return e;
}

int relay_set_log(struct relay *r, const struct relay_log *log, char *err,
		  size_t errlen)
{
	int e;

	if (!r) {
		say(err, errlen, "relay: not running");
		return -EINVAL;
	}
	e = check_log(r, log, err, errlen);
	if (e < 0)
		return e;
	pthread_mutex_lock(&r->lock);
	r->log = *log;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

void relay_counters(const struct relay *r, struct relay_counters *ret)
{
	const uint64_t *src = (const uint64_t *)&r->c;
	uint64_t *dst = (uint64_t *)ret;
	size_t i;

	for (i = 0; i < sizeof(*ret) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

void relay_stats(const struct relay *r, uint64_t *fwd, uint64_t *logged_pages)
{
	struct relay_counters c;

	relay_counters(r, &c);
	if (fwd)
		*fwd = c.avail_fwd;
	if (logged_pages)
		*logged_pages = c.logged_pages;
}
