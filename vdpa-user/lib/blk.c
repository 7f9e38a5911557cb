// SPDX-License-Identifier: MIT
/* virtio-blk driver: one request queue, fixed request slots in mem. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <vdpa-user/blk.h>
#include <vdpa-user/uapi-ext.h>

#include "device.h"
#include "log.h"

#define BLK_SAVE_MAGIC	0x316b6c62u	/* "blk1" */

/* Per slot in mem: header, status byte, data buffer of max_io. */
struct slot_meta {
	uint64_t token;
	uint64_t sector;
	uint32_t type;
	uint32_t len;
};

struct vdpa_blk {
	struct vdpa_dev *dev;
	struct vdpa_mem *mem;
	struct vdpa_vq *vq;
	uint64_t features;
	uint64_t capacity;
	uint32_t blk_size;
	uint32_t max_io;
	uint16_t depth;
	uint8_t *slots;		/* depth * slot_size bytes in mem */
	size_t slot_size;
	struct slot_meta *meta;
	uint16_t *free;
	uint16_t nfree;
};

static struct virtio_blk_outhdr *slot_hdr(struct vdpa_blk *b, uint16_t s)
{
	return (void *)(b->slots + (size_t)s * b->slot_size);
}

static uint8_t *slot_status(struct vdpa_blk *b, uint16_t s)
{
	return b->slots + (size_t)s * b->slot_size + 16;
}

static uint8_t *slot_data(struct vdpa_blk *b, uint16_t s)
{
	return b->slots + (size_t)s * b->slot_size + 64;
}

void vdpa_blk_close(struct vdpa_blk *blk)
{
	if (!blk)
		return;
	vdpa_vq_destroy(blk->vq);
	free(blk->meta);
	free(blk->free);
	free(blk);
}

static int alloc_slots(struct vdpa_blk *b)
{
	uint16_t i;

	b->slot_size = 64 + (size_t)b->max_io;
	b->meta = calloc(b->depth, sizeof(*b->meta));
	b->free = calloc(b->depth, sizeof(*b->free));
	if (!b->meta || !b->free)
		return -ENOMEM;
	for (i = 0; i < b->depth; i++)
		b->free[i] = (uint16_t)(b->depth - 1 - i);
	b->nfree = b->depth;
	return 0;
}

int vdpa_blk_open(struct vdpa_dev *dev, struct vdpa_mem *mem,
		  const struct vdpa_blk_opts *opts, struct vdpa_blk **ret_blk)
{
	static const struct vdpa_blk_opts defaults;
	const struct vdpa_blk_opts *o = opts ? opts : &defaults;
	struct virtio_blk_config c;
	struct vdpa_caps caps;
	struct vdpa_blk *b;
	uint16_t size;
	uint64_t want;
	void *p;
	int err;

	if (!dev || !mem || !ret_blk)
		return -EINVAL;
	err = vdpa_dev_get_caps(dev, &caps);
	if (err < 0)
		return err;
	if (caps.device_id != VIRTIO_ID_BLOCK)
		return -ENOTSUP;
	size = o->vq_size ? o->vq_size :
	       (caps.vq_max_size < 256 ? caps.vq_max_size : 256);
	if (size > caps.vq_max_size || size < 3)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->dev = dev;
	b->mem = mem;
	b->max_io = o->max_io ? o->max_io : 64 * 1024;
	b->depth = o->queue_depth ? o->queue_depth : size / 3;
	err = -EINVAL;
	if (b->depth * 3u > size || (b->max_io % 512))
		goto err_free;
	err = vdpa_dev_set_backend_features(dev,
		(1ULL << VHOST_BACKEND_F_IOTLB_BATCH) |
		(1ULL << VHOST_BACKEND_F_SUSPEND) |
		(1ULL << VHOST_BACKEND_F_RESUME) |
		(1ULL << VHOST_BACKEND_F_DEVICE_STATE), NULL);
	if (err < 0)
		goto err_free;
	want = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_ACCESS_PLATFORM) |
	       (1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
	       (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH);
	if (!o->no_event_idx)
		want |= 1ULL << VIRTIO_RING_F_EVENT_IDX;
	b->features = caps.features & want;
	err = vdpa_dev_set_features(dev, b->features);
	if (err < 0)
		goto err_free;
	memset(&c, 0, sizeof(c));
	err = vdpa_dev_get_config(dev, 0, &c, offsetof(struct virtio_blk_config,
						       blk_size) + 4);
	if (err < 0)
		goto err_free;
	b->capacity = c.capacity;
	b->blk_size = (b->features & (1ULL << VIRTIO_BLK_F_BLK_SIZE)) &&
		      c.blk_size ? c.blk_size : 512;
	if ((b->features & (1ULL << VIRTIO_BLK_F_SIZE_MAX)) && c.size_max &&
	    b->max_io > c.size_max)
		b->max_io = c.size_max & ~511u;
	err = vdpa_mem_map(dev, mem);
	if (err < 0 && err != -EEXIST)
		goto err_free;
	err = alloc_slots(b);
	if (err < 0)
		goto err_free;
	err = vdpa_mem_alloc(mem, (size_t)b->depth * b->slot_size, 64, &p);
	if (err < 0)
		goto err_free;
	b->slots = p;
	err = vdpa_vq_create(mem, size, b->features &
			     (1ULL << VIRTIO_RING_F_EVENT_IDX), &b->vq);
	if (!err)
		err = vdpa_vq_attach(b->vq, dev, 0, 0);
	if (!err)
		err = vdpa_dev_set_vring_enable(dev, 0, true);
	if (!err)
		err = vdpa_dev_add_status(dev, VIRTIO_CONFIG_S_DRIVER_OK);
	if (err < 0)
		goto err_free;
	*ret_blk = b;
	return 0;

err_free:
	vdpa_log(LOG_ERR, "%s: blk setup failed: %s", vdpa_dev_name(dev),
		 strerror(-err));
	vdpa_blk_close(b);
	return err;
}

uint64_t vdpa_blk_capacity(const struct vdpa_blk *blk) { return blk->capacity; }
uint32_t vdpa_blk_block_size(const struct vdpa_blk *blk) { return blk->blk_size; }
unsigned int vdpa_blk_free_slots(const struct vdpa_blk *blk) { return blk->nfree; }

static int submit(struct vdpa_blk *b, uint32_t type, uint64_t sector,
		  const void *buf, uint32_t len, uint64_t token)
{
	struct vdpa_sg sg[3];
	unsigned int n_out = 1, n_in = 1, n = 0;
	struct virtio_blk_outhdr *h;
	uint16_t s;
	int err;

	if (!b->nfree)
		return -ENOSPC;
	s = b->free[b->nfree - 1];
	h = slot_hdr(b, s);
	h->type = type;
	h->ioprio = 0;
	h->sector = sector;
	*slot_status(b, s) = 0xff;
	sg[n].addr = h;
	sg[n++].len = sizeof(*h);
	if (len) {
		if (type == VIRTIO_BLK_T_OUT) {
			memcpy(slot_data(b, s), buf, len);
			n_out++;
		} else {
			n_in++;
		}
		sg[n].addr = slot_data(b, s);
		sg[n++].len = len;
	}
	sg[n].addr = slot_status(b, s);
	sg[n++].len = 1;
	err = vdpa_vq_add(b->vq, sg, n_out, n_in, s);
	if (err < 0)
		return err;
	b->meta[s] = (struct slot_meta){ token, sector, type, len };
	b->nfree--;
	return 0;
}

static int check_io(const struct vdpa_blk *b, uint64_t sector, uint32_t len)
{
	if (!len || len > b->max_io || len % 512)
		return -EINVAL;
	if (sector > b->capacity || len / 512 > b->capacity - sector)
		return -ERANGE;
	return 0;
}

int vdpa_blk_write(struct vdpa_blk *blk, uint64_t sector, const void *buf,
		   uint32_t len, uint64_t token)
{
	int err = check_io(blk, sector, len);

	if (!err && !buf)
		err = -EINVAL;
	return err ? err : submit(blk, VIRTIO_BLK_T_OUT, sector, buf, len,
				  token);
}

int vdpa_blk_read(struct vdpa_blk *blk, uint64_t sector, uint32_t len,
		  uint64_t token)
{
	int err = check_io(blk, sector, len);

	return err ? err : submit(blk, VIRTIO_BLK_T_IN, sector, NULL, len,
				  token);
}

int vdpa_blk_flush(struct vdpa_blk *blk, uint64_t token)
{
	return submit(blk, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, token);
}

int vdpa_blk_get_id(struct vdpa_blk *blk, uint64_t token)
{
	return submit(blk, VIRTIO_BLK_T_GET_ID, 0, NULL, VIRTIO_BLK_ID_BYTES,
		      token);
}

int vdpa_blk_kick(struct vdpa_blk *blk)
{
	return vdpa_vq_kick(blk->vq);
}

int vdpa_blk_poll(struct vdpa_blk *blk, struct vdpa_blk_completion *ret)
{
	uint64_t tok;
	uint32_t len;
	uint16_t s;
	int r;

	if (!blk || !ret)
		return -EINVAL;
	r = vdpa_vq_get_used(blk->vq, &tok, &len);
	if (r <= 0)
		return r;
	if (tok >= blk->depth || blk->nfree >= blk->depth)
		return -EIO;
	s = (uint16_t)tok;
	ret->token = blk->meta[s].token;
	ret->type = blk->meta[s].type;
	ret->sector = blk->meta[s].sector;
	ret->status = *slot_status(blk, s);
	ret->data = slot_data(blk, s);
	ret->len = blk->meta[s].type == VIRTIO_BLK_T_OUT ? 0 : blk->meta[s].len;
	blk->free[blk->nfree++] = s;
	return 1;
}

int vdpa_blk_wait(struct vdpa_blk *blk, int timeout_ms)
{
	return vdpa_vq_wait(blk->vq, timeout_ms);
}

struct vdpa_dev *vdpa_blk_dev(const struct vdpa_blk *blk) { return blk->dev; }
struct vdpa_vq *vdpa_blk_vq(const struct vdpa_blk *blk) { return blk->vq; }
void vdpa_blk_set_dev(struct vdpa_blk *blk, struct vdpa_dev *dev) { blk->dev = dev; }

struct blk_saved {
	uint32_t magic;
	uint32_t max_io;
	uint64_t features;
	uint64_t capacity;
	uint32_t blk_size;
	uint16_t depth;
	uint16_t nfree;
	uint64_t slots_iova;
	uint32_t vq_len;
	uint32_t reserved;
};

int vdpa_blk_save(const struct vdpa_blk *blk, void **ret_buf, size_t *ret_len)
{
	struct blk_saved h = {
		.magic = BLK_SAVE_MAGIC, .max_io = blk->max_io,
		.features = blk->features, .capacity = blk->capacity,
		.blk_size = blk->blk_size, .depth = blk->depth,
		.nfree = blk->nfree,
		.slots_iova = vdpa_mem_iova(blk->mem, blk->slots),
		.vq_len = (uint32_t)vdpa_vq_save(blk->vq, NULL, 0),
	};
	size_t len = sizeof(h) + h.vq_len + blk->depth *
		     (sizeof(struct slot_meta) + 2);
	uint8_t *p = malloc(len);

	if (!p)
		return -ENOMEM;
	memcpy(p, &h, sizeof(h));
	vdpa_vq_save(blk->vq, p + sizeof(h), h.vq_len);
	memcpy(p + sizeof(h) + h.vq_len, blk->meta,
	       blk->depth * sizeof(struct slot_meta));
	memcpy(p + sizeof(h) + h.vq_len + blk->depth * sizeof(struct slot_meta),
	       blk->free, blk->depth * 2u);
	*ret_buf = p;
	*ret_len = len;
	return 0;
}

int vdpa_blk_restore(struct vdpa_mem *mem, const void *buf, size_t len,
		     struct vdpa_blk **ret_blk)
{
	const uint8_t *p = buf;
	struct blk_saved h;
	struct vdpa_blk *b;
	uint64_t first;
	unsigned int i;
	int err;

	if (!mem || !buf || !ret_blk || len < sizeof(h))
		return -EINVAL;
	memcpy(&h, p, sizeof(h));
	if (h.magic != BLK_SAVE_MAGIC || !h.depth || h.nfree > h.depth ||
	    !h.max_io || h.max_io % 512 ||
	    len != sizeof(h) + h.vq_len + h.depth *
		   (sizeof(struct slot_meta) + 2))
		return -EBADMSG;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->mem = mem;
	b->max_io = h.max_io;
	b->features = h.features;
	b->capacity = h.capacity;
	b->blk_size = h.blk_size;
	b->depth = h.depth;
	err = alloc_slots(b);
	if (err < 0)
		goto err_free;
	err = -EBADMSG;
	first = vdpa_mem_iova(mem, vdpa_mem_base(mem));
	if (h.slots_iova < first || h.slots_iova - first > vdpa_mem_size(mem) ||
	    (size_t)h.depth * b->slot_size >
	    vdpa_mem_size(mem) - (h.slots_iova - first))
		goto err_free;
	b->slots = (uint8_t *)vdpa_mem_base(mem) + (h.slots_iova - first);
	err = vdpa_vq_restore(mem, p + sizeof(h), h.vq_len, &b->vq);
	if (err < 0)
		goto err_free;
	err = -EBADMSG;
	memcpy(b->meta, p + sizeof(h) + h.vq_len,
	       h.depth * sizeof(struct slot_meta));
	memcpy(b->free, p + sizeof(h) + h.vq_len +
	       h.depth * sizeof(struct slot_meta), h.depth * 2u);
	for (i = 0; i < h.nfree; i++)
		if (b->free[i] >= h.depth)
			goto err_free;
	b->nfree = h.nfree;
	*ret_blk = b;
	return 0;

err_free:
	vdpa_blk_close(b);
	return err;
}
