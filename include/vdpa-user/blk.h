/* SPDX-License-Identifier: MIT */
/* virtio-blk driver on a vdpa device: read, write, flush, get-id. */
#ifndef VDPA_USER_BLK_H
#define VDPA_USER_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vdpa-user/vdpa-user.h>
#include <vdpa-user/vq.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vdpa_blk;

struct vdpa_blk_opts {
	uint16_t vq_size;	/* 0: the device's maximum (up to 256) */
	uint32_t max_io;	/* bytes per request; 0: 64 KiB */
	uint16_t queue_depth;	/* 0: vq_size / 3 (3 descriptors a request) */
	bool no_event_idx;
};

/* Errors: -ENOTSUP not a blk device; -ENOMEM mem too small; requests'. */
VDPA_EXPORT int vdpa_blk_open(struct vdpa_dev *dev, struct vdpa_mem *mem,
			      const struct vdpa_blk_opts *opts,
			      struct vdpa_blk **ret_blk);
VDPA_EXPORT void vdpa_blk_close(struct vdpa_blk *blk);

/* Capacity in 512-byte sectors, and the device's block size. */
VDPA_EXPORT uint64_t vdpa_blk_capacity(const struct vdpa_blk *blk);
VDPA_EXPORT uint32_t vdpa_blk_block_size(const struct vdpa_blk *blk);
VDPA_EXPORT unsigned int vdpa_blk_free_slots(const struct vdpa_blk *blk);

/*
 * Queue requests (published by vdpa_blk_kick). Errors: -ENOSPC queue full,
 * -EINVAL len 0, > max_io or not a multiple of 512, -ERANGE past capacity.
 */
VDPA_EXPORT int vdpa_blk_write(struct vdpa_blk *blk, uint64_t sector,
			       const void *buf, uint32_t len, uint64_t token);
VDPA_EXPORT int vdpa_blk_read(struct vdpa_blk *blk, uint64_t sector,
			      uint32_t len, uint64_t token);
VDPA_EXPORT int vdpa_blk_flush(struct vdpa_blk *blk, uint64_t token);
VDPA_EXPORT int vdpa_blk_get_id(struct vdpa_blk *blk, uint64_t token);
VDPA_EXPORT int vdpa_blk_kick(struct vdpa_blk *blk);

struct vdpa_blk_completion {
	uint64_t token;
	uint32_t type;		/* VIRTIO_BLK_T_* */
	uint8_t status;		/* VIRTIO_BLK_S_* */
	uint64_t sector;
	const void *data;	/* read/get-id data, valid until the next poll */
	uint32_t len;
};

/* 1 and a completion, 0 when none, -EIO on a bad completion. */
VDPA_EXPORT int vdpa_blk_poll(struct vdpa_blk *blk,
			      struct vdpa_blk_completion *ret);
VDPA_EXPORT int vdpa_blk_wait(struct vdpa_blk *blk, int timeout_ms);

/* Migration plumbing, as for net. */
VDPA_EXPORT struct vdpa_dev *vdpa_blk_dev(const struct vdpa_blk *blk);
VDPA_EXPORT struct vdpa_vq *vdpa_blk_vq(const struct vdpa_blk *blk);
VDPA_EXPORT void vdpa_blk_set_dev(struct vdpa_blk *blk, struct vdpa_dev *dev);
VDPA_EXPORT int vdpa_blk_save(const struct vdpa_blk *blk, void **ret_buf,
			      size_t *ret_len);
VDPA_EXPORT int vdpa_blk_restore(struct vdpa_mem *mem, const void *buf,
				 size_t len, struct vdpa_blk **ret_blk);

#ifdef __cplusplus
}
#endif

#endif
