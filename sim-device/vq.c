// SPDX-License-Identifier: MIT
/*
 * vdpa-sim: driver memory regions, the IOTLB (vhost_iotlb semantics) and
 * device-side split-ring walking with full validation.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_config.h>

#include "sim-int.h"

#define VSIM_MAX_MAPS	65536u
#define VSIM_MAX_INDIRECT 4096u	/* descriptors in one indirect table */

/* ---- driver memory ------------------------------------------------------- */

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int vsim_mem_add(struct vsim *s, const struct vsim_mem *m, int fd)
{
	long page = sysconf(_SC_PAGESIZE);
	struct vsim_region *r;
	uint64_t aligned_off;
	struct stat st;
	unsigned int i;
	void *p;

	if (fd < 0)
		return -EBADF;
	if (!m->size || m->uaddr + m->size < m->uaddr ||
	    m->offset + m->size < m->offset || m->size > SIZE_MAX / 2)
		return -EINVAL;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < m->offset + m->size)
		return -EINVAL;
	if (s->nregions >= VSIM_MAX_MEM_REGIONS)
		return -ENOSPC;
	for (i = 0; i < s->nregions; i++)
		if (overlaps(m->uaddr, m->size, s->regions[i].uaddr,
			     s->regions[i].size))
			return -EEXIST;
	/*
	 * The driver could shrink the file under us (SIGBUS here): seal it
	 * when the memfd allows sealing, as pinning pages would in the kernel.
	 */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0 &&
	    !(fcntl(fd, F_GET_SEALS) > 0 &&
	      (fcntl(fd, F_GET_SEALS) & F_SEAL_SHRINK)))
		vsim_log(s, LOG_WARNING,
			 "ADD_MEM: memory fd cannot be sealed against shrinking");
	aligned_off = m->offset & ~(uint64_t)(page - 1);
	r = &s->regions[s->nregions];
	r->map_len = m->size + (m->offset - aligned_off);
	p = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)aligned_off);
	if (p == MAP_FAILED)
		return -errno;
	r->map = p;
	r->host = (uint8_t *)p + (m->offset - aligned_off);
	r->uaddr = m->uaddr;
	r->size = m->size;
	s->nregions++;
	close(fd);
	return 0;
}

int vsim_mem_del(struct vsim *s, const struct vsim_mem *m)
{
	unsigned int i, j;

	for (i = 0; i < s->nregions; i++)
		if (s->regions[i].uaddr == m->uaddr &&
		    s->regions[i].size == m->size)
			break;
	if (i == s->nregions)
		return -ENOENT;
	for (j = 0; j < s->nmaps; j++)
		if (overlaps(s->maps[j].uaddr,
			     s->maps[j].last - s->maps[j].iova + 1,
			     m->uaddr, m->size))
			return -EBUSY;
	munmap(s->regions[i].map, s->regions[i].map_len);
	memmove(&s->regions[i], &s->regions[i + 1],
		(s->nregions - i - 1) * sizeof(s->regions[0]));
	s->nregions--;
	return 0;
}

static void invalidate_rings(struct vsim *s)
{
	unsigned int i;

	for (i = 0; i < s->nvqs; i++)
		s->vq[i].resolved = false;
}

void vsim_mem_clear(struct vsim *s)
{
	unsigned int i;

	for (i = 0; i < s->nregions; i++)
		munmap(s->regions[i].map, s->regions[i].map_len);
	s->nregions = 0;
	s->nmaps = 0;
	s->map_hint = 0;
	s->in_batch = false;
	s->as_exists = false;
	invalidate_rings(s);
}

/* ---- IOTLB ----------------------------------------------------------------- */

/* Index of the first map with last >= iova (nmaps if none). */
static unsigned int map_lower(const struct vsim *s, uint64_t iova)
{
	unsigned int lo = 0, hi = s->nmaps;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (s->maps[mid].last < iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static const struct vsim_map *map_find(struct vsim *s, uint64_t iova)
{
	const struct vsim_map *m;
	unsigned int i;

	if (s->map_hint < s->nmaps) {
		m = &s->maps[s->map_hint];
		if (m->iova <= iova && iova <= m->last)
			return m;
	}
	i = map_lower(s, iova);
	if (i == s->nmaps || s->maps[i].iova > iova)
		return NULL;
	s->map_hint = i;
	return &s->maps[i];
}

static int iotlb_update(struct vsim *s, const struct vhost_iotlb_msg *u)
{
	const struct vsim_region *r = NULL;
	struct vsim_map *m;
	unsigned int i;
	uint64_t last;

	if (u->iova < s->o.iova_first || !u->size ||
	    u->iova > UINT64_MAX - u->size + 1 ||
	    u->iova + u->size - 1 > s->o.iova_last)
		return -EINVAL;
	if (u->perm < VHOST_ACCESS_RO || u->perm > VHOST_ACCESS_RW)
		return -EINVAL;
	last = u->iova + u->size - 1;
	i = map_lower(s, u->iova);
	if (i < s->nmaps && s->maps[i].iova <= last)
		return -EEXIST;
	if (u->uaddr > UINT64_MAX - u->size + 1)
		return -EFAULT;
	for (unsigned int k = 0; k < s->nregions; k++)
		if (u->uaddr >= s->regions[k].uaddr &&
		    u->uaddr - s->regions[k].uaddr <= s->regions[k].size &&
		    u->size <= s->regions[k].size -
			       (u->uaddr - s->regions[k].uaddr)) {
			r = &s->regions[k];
			break;
		}
	if (!r)
		return -EFAULT;	/* as pinning unmapped user memory */
	if (s->nmaps == s->maps_cap) {
		unsigned int cap = s->maps_cap ? s->maps_cap * 2 : 64;

		if (s->nmaps >= VSIM_MAX_MAPS)
			return -ENOSPC;
		m = realloc(s->maps, cap * sizeof(*m));
		if (!m)
			return -ENOMEM;
		s->maps = m;
		s->maps_cap = cap;
	}
	memmove(&s->maps[i + 1], &s->maps[i],
		(s->nmaps - i) * sizeof(s->maps[0]));
	m = &s->maps[i];
	m->iova = u->iova;
	m->last = last;
	m->uaddr = u->uaddr;
	m->host = r->host + (u->uaddr - r->uaddr);
	m->perm = u->perm;
	s->nmaps++;
	return 0;
}

static void iotlb_invalidate(struct vsim *s, uint64_t iova, uint64_t size)
{
	uint64_t last;
	unsigned int i, j;

	if (!size)
		return;
	last = iova + size - 1 < iova ? UINT64_MAX : iova + size - 1;
	i = map_lower(s, iova);
	for (j = i; j < s->nmaps && s->maps[j].iova <= last; j++)
		;
	if (j == i)
		return;
	memmove(&s->maps[i], &s->maps[j], (s->nmaps - j) * sizeof(s->maps[0]));
	s->nmaps -= j - i;
	s->map_hint = 0;
	invalidate_rings(s);
}

int vsim_iotlb_msg(struct vsim *s, const struct vhost_msg_v2 *msg)
{
	if (msg->type != VHOST_IOTLB_MSG_V2 || msg->asid != 0)
		return -EINVAL;
	/*
	 * As vhost_vdpa_process_iotlb_msg(): the address space is allocated
	 * by the first UPDATE or BATCH_BEGIN; any other message before it
	 * finds none.
	 */
	if (msg->iotlb.type == VHOST_IOTLB_UPDATE ||
	    msg->iotlb.type == VHOST_IOTLB_BATCH_BEGIN)
		s->as_exists = true;
	else if (!s->as_exists)
		return -EINVAL;
	switch (msg->iotlb.type) {
	case VHOST_IOTLB_UPDATE: {
		int r = iotlb_update(s, &msg->iotlb);

		/* vhost_vdpa_map(): set_map() sends the whole table again */
		if (!r && !s->in_batch)
			s->maps_dropped = false;
		return r;
	}
	case VHOST_IOTLB_INVALIDATE:
		iotlb_invalidate(s, msg->iotlb.iova, msg->iotlb.size);
		if (!s->in_batch)
			s->maps_dropped = false;
		return 0;
	case VHOST_IOTLB_BATCH_BEGIN:
		s->in_batch = true;
		return 0;
	case VHOST_IOTLB_BATCH_END:
		s->in_batch = false;
		s->maps_dropped = false;
		return 0;
	default:
		return -EINVAL;
	}
}

int vsim_xlate(struct vsim *s, uint64_t iova, uint64_t len, uint8_t perm,
	       struct iovec *iov, unsigned int max, unsigned int *n)
{
	unsigned int start = *n;

	while (len) {
		const struct vsim_map *m = map_find(s, iova);
		uint64_t chunk;

		if (!m)
			return -EFAULT;
		if ((m->perm & perm) != perm)
			return -EPERM;
		chunk = m->last - iova;	/* bytes left - 1, cannot overflow */
		if (chunk >= len - 1)
			chunk = len;
		else
			chunk++;
		if (*n > start && (uint8_t *)iov[*n - 1].iov_base +
			  iov[*n - 1].iov_len == m->host + (iova - m->iova)) {
			iov[*n - 1].iov_len += chunk;	/* host-contiguous */
		} else {
			if (*n >= max)
				return -ENOBUFS;
			iov[*n].iov_base = m->host + (iova - m->iova);
			iov[*n].iov_len = chunk;
			(*n)++;
		}
		iova += chunk;
		len -= chunk;
	}
	return 0;
}

/* ---- rings ----------------------------------------------------------------- */

int vsim_vq_alloc(struct vsim_vq *vq, unsigned int max_num)
{
	vq->iov_cap = max_num * 2 + 64;
	vq->iov = calloc(vq->iov_cap, sizeof(*vq->iov));
	return vq->iov ? 0 : -ENOMEM;
}

void vsim_vq_reset(struct vsim_vq *vq, uint32_t num)
{
	vq->num = num;
	vq->desc_addr = vq->avail_addr = vq->used_addr = 0;
	vq->ready = false;
	vq->last_avail = vq->avail_cache = 0;
	vq->used_idx = vq->used_pub = 0;
	vq->resolved = false;
	vq->addr_pending = false;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	memset(&vq->st, 0, sizeof(vq->st));
}

static void *ring_ptr(struct vsim *s, uint64_t iova, uint64_t len,
		      uint8_t perm, size_t align, const char *what)
{
	struct iovec iov[1];
	unsigned int n = 0;
	int r;

	r = vsim_xlate(s, iova, len, perm, iov, 1, &n);
	if (r < 0) {
		vsim_fail(s, "%s ring at 0x%llx+%llu: %s", what,
			  (unsigned long long)iova, (unsigned long long)len,
			  r == -EPERM ? "wrong IOTLB permission" :
			  r == -ENOBUFS ? "not contiguous" : "not mapped");
		return NULL;
	}
	if ((uintptr_t)iov[0].iov_base & (align - 1)) {
		vsim_fail(s, "%s ring at 0x%llx misaligned", what,
			  (unsigned long long)iova);
		return NULL;
	}
	return iov[0].iov_base;
}

static int vq_resolve(struct vsim *s, struct vsim_vq *vq)
{
	uint64_t num = vq->num;

	vq->desc = ring_ptr(s, vq->desc_addr, 16 * num, VHOST_ACCESS_RO, 8,
			    "descriptor");
	if (!vq->desc)
		return -EFAULT;
	vq->avail = ring_ptr(s, vq->avail_addr, 6 + 2 * num, VHOST_ACCESS_RO,
			     2, "avail");
	if (!vq->avail)
		return -EFAULT;
	vq->used = ring_ptr(s, vq->used_addr, 6 + 8 * num, VHOST_ACCESS_WO, 4,
			    "used");
	if (!vq->used)
		return -EFAULT;
	vq->resolved = true;
	return 0;
}

bool vsim_vq_can_run(const struct vsim *s, const struct vsim_vq *vq)
{
	return vq->ready && (s->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !s->broken && !s->suspended;
}

static int chain_fail(struct vsim *s, struct vsim_vq *vq, const char *why,
		      unsigned int desc)
{
	vsim_fail(s, "vq %u: %s (head %u, desc %u)", (unsigned int)(vq - s->vq),
		  why, vq->last_avail, desc);
	return -EIO;
}

static int add_desc(struct vsim *s, struct vsim_vq *vq, struct vsim_chain *c,
		    uint64_t addr, uint32_t len, uint16_t flags,
		    unsigned int i)
{
	bool wr = flags & VRING_DESC_F_WRITE;
	unsigned int n = c->nout + c->nin;
	int r;

	if (!wr && c->nin)
		return chain_fail(s, vq, "readable descriptor after writable", i);
	if (len && addr > UINT64_MAX - len + 1)
		return chain_fail(s, vq, "descriptor address + length wraps", i);
	r = vsim_xlate(s, addr, len, wr ? VHOST_ACCESS_WO : VHOST_ACCESS_RO,
		       c->iov, vq->iov_cap, &n);
	if (r == -EPERM)
		return chain_fail(s, vq, wr ?
				  "writable descriptor maps read-only IOVA" :
				  "readable descriptor maps write-only IOVA", i);
	if (r == -ENOBUFS)
		return chain_fail(s, vq, "chain too fragmented", i);
	if (r < 0)
		return chain_fail(s, vq, "descriptor outside the IOTLB", i);
	if (wr) {
		c->nin = n - c->nout;
		c->in_len += len;
	} else {
		c->nout = n;
		c->out_len += len;
	}
	return 0;
}

static int walk_indirect(struct vsim *s, struct vsim_vq *vq,
			 struct vsim_chain *c, uint64_t addr, uint32_t len,
			 unsigned int di)
{
	const struct vring_desc *tbl;
	unsigned int cnt, i = 0, steps = 0;
	struct iovec iov[1];
	unsigned int n = 0;
	int r;

	if (!vsim_has(s, VIRTIO_RING_F_INDIRECT_DESC))
		return chain_fail(s, vq, "indirect descriptor not negotiated",
				  di);
	if (!len || len % sizeof(struct vring_desc) ||
	    len / sizeof(struct vring_desc) > VSIM_MAX_INDIRECT)
		return chain_fail(s, vq, "bad indirect table length", di);
	r = vsim_xlate(s, addr, len, VHOST_ACCESS_RO, iov, 1, &n);
	if (r < 0 || ((uintptr_t)iov[0].iov_base & 7))
		return chain_fail(s, vq, "indirect table not mapped", di);
	tbl = iov[0].iov_base;
	cnt = len / sizeof(struct vring_desc);
	for (;;) {
		struct vring_desc d;

		if (++steps > cnt)
			return chain_fail(s, vq, "indirect descriptor loop", di);
		memcpy(&d, (const void *)&tbl[i], sizeof(d));
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		if (d.flags & VRING_DESC_F_INDIRECT)
			return chain_fail(s, vq, "nested indirect descriptor",
					  di);
		r = add_desc(s, vq, c, d.addr, d.len, d.flags, di);
		if (r < 0)
			return r;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		i = d.next;
		if (i >= cnt)
			return chain_fail(s, vq,
					  "indirect next index out of range", di);
	}
}

int vsim_vq_pop(struct vsim *s, struct vsim_vq *vq, struct vsim_chain *c)
{
	uint16_t mask = (uint16_t)(vq->num - 1);
	unsigned int i, steps = 0;
	uint16_t head;
	int r;

	/* vdpa_sim after a map-cleaning reset: its reads fail, quietly */
	if (s->maps_dropped)
		return 0;
	if (!vq->resolved && vq_resolve(s, vq) < 0)
		return -EIO;
	if (vq->avail_cache == vq->last_avail) {
		vq->avail_cache = __atomic_load_n(&vq->avail->idx,
						  __ATOMIC_ACQUIRE);
		if (vq->avail_cache == vq->last_avail)
			return 0;
	}
	/* checked on every pop: vsim_vq_rearm() refreshes the cache too */
	if ((uint16_t)(vq->avail_cache - vq->last_avail) > vq->num) {
		vsim_fail(s, "vq %u: avail idx %u jumped more than %u past %u",
			  (unsigned int)(vq - s->vq), vq->avail_cache, vq->num,
			  vq->last_avail);
		return -EIO;
	}
	head = __atomic_load_n(&vq->avail->ring[vq->last_avail & mask],
			       __ATOMIC_RELAXED);
	if (head >= vq->num)
		return chain_fail(s, vq, "head index out of range", head);
	c->head = head;
	c->nout = c->nin = 0;
	c->out_len = c->in_len = 0;
	c->iov = vq->iov;
	i = head;
	for (;;) {
		struct vring_desc d;

		if (++steps > vq->num)
			return chain_fail(s, vq,
					  "descriptor chain longer than the queue (loop)",
					  i);
		memcpy(&d, &vq->desc[i], sizeof(d));
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (d.flags & VRING_DESC_F_NEXT)
				return chain_fail(s, vq,
						  "indirect descriptor with NEXT",
						  i);
			r = walk_indirect(s, vq, c, d.addr, d.len, i);
		} else {
			r = add_desc(s, vq, c, d.addr, d.len, d.flags, i);
		}
		if (r < 0)
			return r;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		i = d.next;
		if (i >= vq->num)
			return chain_fail(s, vq, "next index out of range", i);
	}
	vq->last_avail++;
	return 1;
}

void vsim_vq_push(struct vsim_vq *vq, uint16_t head, uint32_t len)
{
	struct vring_used_elem *e = &vq->used->ring[vq->used_idx &
						    (vq->num - 1)];

	e->id = head;
	e->len = len;
	vq->used_idx++;
}

static inline bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

void vsim_vq_flush(struct vsim *s, struct vsim_vq *vq)
{
	uint16_t old = vq->used_pub, nw = vq->used_idx;
	bool notify;

	if (old == nw)
		return;
	__atomic_store_n(&vq->used->idx, nw, __ATOMIC_RELEASE);
	vq->used_pub = nw;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (vsim_has(s, VIRTIO_RING_F_EVENT_IDX)) {
		uint16_t ev = __atomic_load_n(&vq->avail->ring[vq->num],
					      __ATOMIC_RELAXED);

		notify = need_event(ev, nw, old);
	} else {
		notify = !(__atomic_load_n(&vq->avail->flags,
					   __ATOMIC_RELAXED) &
			   VRING_AVAIL_F_NO_INTERRUPT);
	}
	if (notify && vq->call_fd >= 0) {
		uint64_t one = 1;

		if (write(vq->call_fd, &one, sizeof(one)) < 0) {
			/* eventfd overflow is harmless: it is signalled */
		}
	}
}

bool vsim_vq_rearm(struct vsim *s, struct vsim_vq *vq)
{
	if (!vq->resolved)
		return false;
	if (vsim_has(s, VIRTIO_RING_F_EVENT_IDX)) {
		uint16_t *ae = (uint16_t *)&vq->used->ring[vq->num];

		__atomic_store_n(ae, vq->last_avail, __ATOMIC_RELAXED);
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	vq->avail_cache = __atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE);
	return vq->avail_cache != vq->last_avail;
}

size_t vsim_iov_from(const struct iovec *iov, unsigned int n, size_t skip,
		     void *dst, size_t len)
{
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len - done)
			l = len - done;
		memcpy((uint8_t *)dst + done, (uint8_t *)iov[i].iov_base + skip,
		       l);
		done += l;
		skip = 0;
	}
	return done;
}

size_t vsim_iov_to(const struct iovec *iov, unsigned int n, size_t skip,
		   const void *src, size_t len)
{
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len - done)
			l = len - done;
		memcpy((uint8_t *)iov[i].iov_base + skip,
		       (const uint8_t *)src + done, l);
		done += l;
		skip = 0;
	}
	return done;
}
