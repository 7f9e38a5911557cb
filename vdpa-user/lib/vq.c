// SPDX-License-Identifier: MIT
/* Driver side of split virtqueues. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_ring.h>
#include <vdpa-user/vq.h>

#include "device.h"
#include "log.h"

#define VQ_SAVE_MAGIC	0x31717676u	/* "vvq1" */
#define VQ_F_EVENT_IDX	1u

struct vdpa_vq;

/* Ring-format operations: split now, packed can be a second table. */
struct vq_ring_ops {
	int (*add)(struct vdpa_vq *vq, const struct vdpa_sg *sg,
		   unsigned int n_out, unsigned int n_in, uint64_t token);
	int (*publish)(struct vdpa_vq *vq, bool *ret_notify);
	int (*get_used)(struct vdpa_vq *vq, uint64_t *ret_token,
			uint32_t *ret_len);
};

struct vdpa_vq {
	const struct vq_ring_ops *ops;
	struct vdpa_mem *mem;
	uint16_t num;
	bool event_idx;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t free_head;
	uint16_t num_free;
	uint16_t avail_idx;	/* shadow: next avail->idx to publish */
	uint16_t kicked_idx;	/* avail->idx at the last publish */
	uint16_t last_used;
	int kick_fd;
	int call_fd;
	uint64_t *tokens;	/* per chain head */
	uint8_t *in_use;	/* per chain head */
};

/* The saved driver state, little endian, followed by tokens and in_use. */
struct vq_saved {
	uint32_t magic;
	uint16_t num;
	uint16_t flags;
	uint16_t free_head;
	uint16_t num_free;
	uint16_t avail_idx;
	uint16_t kicked_idx;
	uint16_t last_used;
	uint16_t reserved[3];
	uint64_t desc_iova;
	uint64_t avail_iova;
	uint64_t used_iova;
};

static uint16_t load16(const uint16_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static int split_add(struct vdpa_vq *vq, const struct vdpa_sg *sg,
		     unsigned int n_out, unsigned int n_in, uint64_t token)
{
	unsigned int n, i;
	uint16_t head, d;

	if (n_out > vq->num || n_in > vq->num - n_out)
		return -EINVAL;
	n = n_out + n_in;
	if (!n)
		return -EINVAL;
	if (n > vq->num_free)
		return -ENOSPC;
	for (i = 0; i < n; i++)
		if (vdpa_mem_iova(vq->mem, sg[i].addr) == UINT64_MAX ||
		    vdpa_mem_iova(vq->mem, (char *)sg[i].addr +
				  (sg[i].len ? sg[i].len - 1 : 0)) == UINT64_MAX)
			return -EINVAL;
	head = d = vq->free_head;
	for (i = 0; i < n; i++) {
		struct vring_desc *desc = &vq->desc[d];

		desc->addr = vdpa_mem_iova(vq->mem, sg[i].addr);
		desc->len = sg[i].len;
		desc->flags = (uint16_t)((i >= n_out ? VRING_DESC_F_WRITE : 0) |
					 (i + 1 < n ? VRING_DESC_F_NEXT : 0));
		d = desc->next;
	}
	vq->free_head = d;
	vq->num_free = (uint16_t)(vq->num_free - n);
	vq->tokens[head] = token;
	vq->in_use[head] = 1;
	vq->avail->ring[vq->avail_idx & (vq->num - 1)] = head;
	vq->avail_idx++;
	return 0;
}

static int split_publish(struct vdpa_vq *vq, bool *ret_notify)
{
	uint16_t old = vq->kicked_idx, new = vq->avail_idx;

	/* descriptors and ring entries before the index */
	__atomic_store_n(&vq->avail->idx, new, __ATOMIC_RELEASE);
	/* the index before reading the device's suppression state */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	vq->kicked_idx = new;
	if (old == new) {
		*ret_notify = false;
	} else if (vq->event_idx) {
		/* avail_event lives right after the used ring entries */
		uint16_t ev = load16((const uint16_t *)&vq->used->ring[vq->num]);

		*ret_notify = vring_need_event(ev, new, old);
	} else {
		*ret_notify = !(load16(&vq->used->flags) &
				VRING_USED_F_NO_NOTIFY);
	}
	return 0;
}

static void free_chain(struct vdpa_vq *vq, uint16_t head)
{
	uint16_t d = head, n = 1;

	while ((vq->desc[d].flags & VRING_DESC_F_NEXT) && n < vq->num) {
		d = vq->desc[d].next;
		n++;
	}
	vq->desc[d].next = vq->free_head;
	vq->free_head = head;
	vq->num_free = (uint16_t)(vq->num_free + n);
	vq->in_use[head] = 0;
}

static int split_get_used(struct vdpa_vq *vq, uint64_t *ret_token,
			  uint32_t *ret_len)
{
	struct vring_used_elem e;

	if (vq->last_used == load16(&vq->used->idx))
		return 0;
	e = vq->used->ring[vq->last_used & (vq->num - 1)];
	if (e.id >= vq->num || !vq->in_use[e.id]) {
		vdpa_log(LOG_ERR, "vq: device returned id %u, not an "
			 "outstanding chain", e.id);
		return -EIO;
	}
	*ret_token = vq->tokens[e.id];
	if (ret_len)
		*ret_len = e.len;
	free_chain(vq, (uint16_t)e.id);
	vq->last_used++;
	if (vq->event_idx)
		__atomic_store_n(&vq->avail->ring[vq->num], vq->last_used,
				 __ATOMIC_RELEASE);
	return 1;
}

static const struct vq_ring_ops split_ops = {
	.add = split_add,
	.publish = split_publish,
	.get_used = split_get_used,
};

static int vq_alloc(struct vdpa_mem *mem, uint16_t num, bool event_idx,
		    struct vdpa_vq **ret_vq)
{
	struct vdpa_vq *vq;

	if (!mem || !num || num > 32768 || (num & (num - 1)))
		return -EINVAL;
	vq = calloc(1, sizeof(*vq));
	if (!vq)
		return -ENOMEM;
	vq->ops = &split_ops;
	vq->mem = mem;
	vq->num = num;
	vq->event_idx = event_idx;
	vq->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vq->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vq->tokens = calloc(num, sizeof(*vq->tokens));
	vq->in_use = calloc(num, 1);
	if (vq->kick_fd < 0 || vq->call_fd < 0 || !vq->tokens ||
	    !vq->in_use) {
		int err = vq->kick_fd < 0 || vq->call_fd < 0 ? -errno : -ENOMEM;

		vdpa_vq_destroy(vq);
		return err;
	}
	*ret_vq = vq;
	return 0;
}

int vdpa_vq_create(struct vdpa_mem *mem, uint16_t num, bool event_idx,
		   struct vdpa_vq **ret_vq)
{
	struct vdpa_vq *vq;
	void *d, *a, *u;
	size_t used_start;
	uint16_t i;
	int err;

	if (!ret_vq)
		return -EINVAL;
	err = vq_alloc(mem, num, event_idx, &vq);
	if (err < 0)
		return err;
	used_start = vdpa_mem_used(mem);
	err = vdpa_mem_alloc(mem, 16u * num, 16, &d);
	if (!err)
		err = vdpa_mem_alloc(mem, 6u + 2u * num, 2, &a);
	if (!err)
		err = vdpa_mem_alloc(mem, 6u + 8u * num, 4, &u);
	if (err < 0) {
		vdpa_mem_set_used(mem, used_start);
		vdpa_vq_destroy(vq);
		return err;
	}
	vq->desc = d;
	vq->avail = a;
	vq->used = u;
	memset(d, 0, 16u * num);
	memset(a, 0, 6u + 2u * num);
	memset(u, 0, 6u + 8u * num);
	for (i = 0; i < num; i++)
		vq->desc[i].next = (uint16_t)(i + 1 < num ? i + 1 : 0);
	vq->num_free = num;
	*ret_vq = vq;
	return 0;
}

void vdpa_vq_destroy(struct vdpa_vq *vq)
{
	if (!vq)
		return;
	if (vq->kick_fd >= 0)
		close(vq->kick_fd);
	if (vq->call_fd >= 0)
		close(vq->call_fd);
	free(vq->tokens);
	free(vq->in_use);
	free(vq);
}

static struct vhost_vring_addr ring_addr(const struct vdpa_vq *vq,
					 uint32_t idx)
{
	struct vhost_vring_addr a = {
		.index = idx,
		.desc_user_addr = vdpa_mem_iova(vq->mem, vq->desc),
		.avail_user_addr = vdpa_mem_iova(vq->mem, vq->avail),
		.used_user_addr = vdpa_mem_iova(vq->mem, vq->used),
	};

	return a;
}

/*
 * Size and addresses: skipped when the device already has exactly these
 * since its last reset (vdpa_vq_preattach() ahead of a migration; a
 * reset forgets the shadow). 0 or -errno.
 */
static int set_num_addr(struct vdpa_vq *vq, struct vdpa_dev *dev,
			uint32_t idx)
{
	struct vhost_vring_addr addr = ring_addr(vq, idx);

	return dev_place_ring(dev, vq->num, &addr);
}

static int vq_attach(struct vdpa_vq *vq, struct vdpa_dev *dev, uint32_t idx,
		     uint16_t base)
{
	struct vhost_vring_state b = { .index = idx, .num = base };
	struct vhost_vring_file kick = { .index = idx, .fd = vq->kick_fd };
	struct vhost_vring_file call = { .index = idx, .fd = vq->call_fd };
	int err;

	err = set_num_addr(vq, dev, idx);
	if (!err)
		err = vdpa_dev_call(dev, VHOST_SET_VRING_BASE, &b);
	if (!err)
		err = vdpa_dev_call(dev, VHOST_SET_VRING_KICK, &kick);
	if (!err)
		err = vdpa_dev_call(dev, VHOST_SET_VRING_CALL, &call);
	if (err < 0)
		vdpa_log(LOG_ERR, "%s: attaching vq %u: %s", vdpa_dev_name(dev),
			 idx, strerror(-err));
	return err;
}

int vdpa_vq_preattach(struct vdpa_vq *vq, struct vdpa_dev *dev,
		      uint32_t idx)
{
	int err;

	if (!vq || !dev)
		return -EINVAL;
	err = set_num_addr(vq, dev, idx);
	if (err < 0)
		vdpa_log(LOG_ERR, "%s: preparing vq %u: %s", vdpa_dev_name(dev),
			 idx, strerror(-err));
	return err;
}

int vdpa_vq_attach(struct vdpa_vq *vq, struct vdpa_dev *dev, uint32_t idx,
		   uint16_t base)
{
	if (!vq || !dev)
		return -EINVAL;
	return vq_attach(vq, dev, idx, base);
}

int vdpa_vq_add(struct vdpa_vq *vq, const struct vdpa_sg *sg,
		unsigned int n_out, unsigned int n_in, uint64_t token)
{
	if (!vq || !sg)
		return -EINVAL;
	return vq->ops->add(vq, sg, n_out, n_in, token);
}

int vdpa_vq_kick(struct vdpa_vq *vq)
{
	uint64_t one = 1;
	bool notify;
	int err;

	err = vq->ops->publish(vq, &notify);
	if (err < 0 || !notify)
		return err;
	if (write(vq->kick_fd, &one, sizeof(one)) != sizeof(one))
		return -errno;
	return 0;
}

int vdpa_vq_get_used(struct vdpa_vq *vq, uint64_t *ret_token,
		     uint32_t *ret_len)
{
	if (!vq || !ret_token)
		return -EINVAL;
	return vq->ops->get_used(vq, ret_token, ret_len);
}

int vdpa_vq_wait(struct vdpa_vq *vq, int timeout_ms)
{
	struct pollfd p = { .fd = vq->call_fd, .events = POLLIN };
	uint64_t v;
	int r;

	do {
		r = poll(&p, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	if (read(vq->call_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

unsigned int vdpa_vq_num_free(const struct vdpa_vq *vq) { return vq->num_free; }
uint16_t vdpa_vq_size(const struct vdpa_vq *vq) { return vq->num; }
int vdpa_vq_call_fd(const struct vdpa_vq *vq) { return vq->call_fd; }
int vdpa_vq_kick_fd(const struct vdpa_vq *vq) { return vq->kick_fd; }

unsigned int vdpa_vq_in_flight(const struct vdpa_vq *vq)
{
	unsigned int i, n = 0;

	for (i = 0; i < vq->num; i++)
		n += vq->in_use[i];
	return n;
}

static int vq_save(const struct vdpa_vq *vq, void *buf, size_t len)
{
	size_t need = sizeof(struct vq_saved) + 9u * vq->num;
	struct vq_saved s = {
		.magic = VQ_SAVE_MAGIC,
		.num = vq->num,
		.flags = vq->event_idx ? VQ_F_EVENT_IDX : 0,
		.free_head = vq->free_head,
		.num_free = vq->num_free,
		.avail_idx = vq->avail_idx,
		.kicked_idx = vq->kicked_idx,
		.last_used = vq->last_used,
		.desc_iova = vdpa_mem_iova(vq->mem, vq->desc),
		.avail_iova = vdpa_mem_iova(vq->mem, vq->avail),
		.used_iova = vdpa_mem_iova(vq->mem, vq->used),
	};
	uint8_t *p = buf;

	if (buf && len >= need) {
		memcpy(p, &s, sizeof(s));
		memcpy(p + sizeof(s), vq->tokens, 8u * vq->num);
		memcpy(p + sizeof(s) + 8u * vq->num, vq->in_use, vq->num);
	}
	return (int)need;
}

int vdpa_vq_save(const struct vdpa_vq *vq, void *buf, size_t len)
{
	return vq ? vq_save(vq, buf, len) : -EINVAL;
}

/* Pointer for [iova, iova+len) inside mem, or NULL. */
static void *iova_ptr(struct vdpa_mem *mem, uint64_t iova, size_t len)
{
	uint64_t first = vdpa_mem_iova(mem, vdpa_mem_base(mem));
	uint64_t off = iova - first;

	if (iova < first || off > vdpa_mem_size(mem) ||
	    len > vdpa_mem_size(mem) - off)
		return NULL;
	return (char *)vdpa_mem_base(mem) + off;
}

int vdpa_vq_restore(struct vdpa_mem *mem, const void *buf, size_t len,
		    struct vdpa_vq **ret_vq)
{
	const uint8_t *p = buf;
	struct vq_saved s;
	struct vdpa_vq *vq;
	unsigned int i;
	bool bad = false;
	int err;

	if (!mem || !buf || !ret_vq || len < sizeof(s))
		return -EINVAL;
	memcpy(&s, p, sizeof(s));
	if (s.magic != VQ_SAVE_MAGIC || !s.num || s.num > 32768 ||
	    (s.num & (s.num - 1)) || len != sizeof(s) + 9u * s.num ||
	    s.num_free > s.num || s.free_head >= s.num ||
	    (s.flags & ~VQ_F_EVENT_IDX))
		return -EBADMSG;
	err = vq_alloc(mem, s.num, s.flags & VQ_F_EVENT_IDX, &vq);
	if (err < 0)
		return err;
	vq->desc = iova_ptr(mem, s.desc_iova, 16u * s.num);
	vq->avail = iova_ptr(mem, s.avail_iova, 6u + 2u * s.num);
	vq->used = iova_ptr(mem, s.used_iova, 6u + 8u * s.num);
	memcpy(vq->tokens, p + sizeof(s), 8u * s.num);
	memcpy(vq->in_use, p + sizeof(s) + 8u * s.num, s.num);
	for (i = 0; i < s.num; i++)
		bad |= vq->in_use[i] > 1;
	if (!vq->desc || !vq->avail || !vq->used || bad) {
		vdpa_vq_destroy(vq);
		return -EBADMSG;
	}
	vq->free_head = s.free_head;
	vq->num_free = s.num_free;
	vq->avail_idx = s.avail_idx;
	vq->kicked_idx = s.kicked_idx;
	vq->last_used = s.last_used;
	*ret_vq = vq;
	return 0;
}
