/* SPDX-License-Identifier: MIT */
/*
 * Driver side of split virtqueues living in a struct vdpa_mem region.
 * Tokens are uint64_t so the driver state can be serialized and adopted by
 * another process (vdpa_vq_save / vdpa_vq_restore). Ring-format specific
 * code sits behind a small ops table so packed rings can be added.
 */
#ifndef VDPA_USER_VQ_H
#define VDPA_USER_VQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vdpa-user/vdpa-user.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vdpa_vq;

struct vdpa_sg {
	void *addr;		/* inside the vq's vdpa_mem */
	uint32_t len;
};

/*
 * Allocate a ring of num entries (power of 2, <= 32768) in mem, with kick
 * and call eventfds. event_idx: use VIRTIO_RING_F_EVENT_IDX (only if it was
 * negotiated). Errors: -EINVAL, -ENOMEM (region full), -EMFILE.
 */
VDPA_EXPORT int vdpa_vq_create(struct vdpa_mem *mem, uint16_t num,
			       bool event_idx, struct vdpa_vq **ret_vq);
VDPA_EXPORT void vdpa_vq_destroy(struct vdpa_vq *vq);

/*
 * Hand the ring to queue idx of dev: SET_VRING_NUM, SET_VRING_BASE (base),
 * SET_VRING_ADDR, SET_VRING_KICK, SET_VRING_CALL. A fresh ring uses base 0;
 * a ring continuing on another device uses the source's GET_VRING_BASE.
 * NUM and ADDR are not sent again when the device already has exactly
 * these since its last reset (vdpa_vq_preattach()).
 * Errors: those of the requests (-EINVAL, -ENOBUFS bad index, -EBUSY ...).
 */
VDPA_EXPORT int vdpa_vq_attach(struct vdpa_vq *vq, struct vdpa_dev *dev,
			       uint32_t idx, uint16_t base);

/*
 * The part of vdpa_vq_attach() that does not depend on where the ring
 * stands: SET_VRING_NUM and SET_VRING_ADDR, after FEATURES_OK. For a
 * migration destination while the source still runs, so that only BASE,
 * KICK and CALL fall inside the downtime. Errors: -EINVAL NULL; those of
 * the requests.
 */
VDPA_EXPORT int vdpa_vq_preattach(struct vdpa_vq *vq, struct vdpa_dev *dev,
				  uint32_t idx);

/*
 * Queue a chain: n_out device-readable buffers then n_in device-writable
 * ones. Not visible to the device before vdpa_vq_kick(). Errors: -ENOSPC
 * not enough free descriptors, -EINVAL buffer outside the region or n == 0.
 */
VDPA_EXPORT int vdpa_vq_add(struct vdpa_vq *vq, const struct vdpa_sg *sg,
			    unsigned int n_out, unsigned int n_in,
			    uint64_t token);
/* Publish queued chains; notify the device unless it asked not to. */
VDPA_EXPORT int vdpa_vq_kick(struct vdpa_vq *vq);
/*
 * Reap one completion: 1 and the token/length, 0 when none, -EIO when the
 * device returned an id that is not an outstanding chain head.
 */
VDPA_EXPORT int vdpa_vq_get_used(struct vdpa_vq *vq, uint64_t *ret_token,
				 uint32_t *ret_len);
/* Wait for a call (completion interrupt): 0, -ETIMEDOUT. */
VDPA_EXPORT int vdpa_vq_wait(struct vdpa_vq *vq, int timeout_ms);

VDPA_EXPORT unsigned int vdpa_vq_num_free(const struct vdpa_vq *vq);
VDPA_EXPORT uint16_t vdpa_vq_size(const struct vdpa_vq *vq);
VDPA_EXPORT int vdpa_vq_call_fd(const struct vdpa_vq *vq);
VDPA_EXPORT int vdpa_vq_kick_fd(const struct vdpa_vq *vq);
/* Chains added and not yet completed. */
VDPA_EXPORT unsigned int vdpa_vq_in_flight(const struct vdpa_vq *vq);

/*
 * Serialize the driver-side bookkeeping (not the ring memory, which lives
 * in the vdpa_mem region): returns the size needed, and writes it when
 * len is large enough. restore() adopts a ring in mem (for example a
 * region created from a migrated memfd). Errors: -EINVAL, -EBADMSG.
 */
VDPA_EXPORT int vdpa_vq_save(const struct vdpa_vq *vq, void *buf, size_t len);
VDPA_EXPORT int vdpa_vq_restore(struct vdpa_mem *mem, const void *buf,
				size_t len, struct vdpa_vq **ret_vq);

#ifdef __cplusplus
}
#endif

#endif
