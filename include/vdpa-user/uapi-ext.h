/* SPDX-License-Identifier: MIT */
/*
 * Definitions newer than the vendored Linux 6.1 uapi headers, and the
 * device-state extension this project proposes (docs/uapi-proposal.md).
 */
#ifndef VDPA_USER_UAPI_EXT_H
#define VDPA_USER_UAPI_EXT_H

#include <linux/types.h>
/* first: it includes <linux/vhost_types.h> the way C++ accepts it */
#include <vdpa-user/vdpa-user.h>
#include <linux/vhost.h>

/* Backend feature bit numbers; mask is 1ULL << n (Linux 6.4+ for 5..8). */
#ifndef VHOST_BACKEND_F_RESUME
#define VHOST_BACKEND_F_RESUME			0x5
#endif
#ifndef VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK
#define VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK	0x6
#endif
#ifndef VHOST_BACKEND_F_DESC_ASID
#define VHOST_BACKEND_F_DESC_ASID		0x7
#endif
#ifndef VHOST_BACKEND_F_IOTLB_PERSIST
#define VHOST_BACKEND_F_IOTLB_PERSIST		0x8
#endif

/* Linux 6.4+. Linux 6.1 answers this request with EFAULT, not ENOTTY. */
#ifndef VHOST_VDPA_RESUME
#define VHOST_VDPA_RESUME			_IO(VHOST_VIRTIO, 0x7E)
#endif

/*
 * PROPOSAL, not upstream: "vdpa live update" (Steve Sistare, LKML, V2 July
 * 2024, not merged). A process that is not the owner of an open vhost-vdpa
 * fd (it received it over SCM_RIGHTS, or across exec) takes it over with
 * VHOST_NEW_OWNER (EINVAL no owner yet, EBUSY the caller already owns it,
 * ENOMEM pinned pages beyond the new owner's RLIMIT_MEMLOCK); then an IOTLB
 * message VHOST_IOTLB_REMAP per mapping gives its new userspace address,
 * IOVA and pinned pages unchanged. See docs/uapi-proposal.md.
 */
#ifndef VHOST_BACKEND_F_NEW_OWNER
#define VHOST_BACKEND_F_NEW_OWNER		0x9
#endif
#ifndef VHOST_BACKEND_F_IOTLB_REMAP
#define VHOST_BACKEND_F_IOTLB_REMAP		0xa
#endif
#ifndef VHOST_NEW_OWNER
#define VHOST_NEW_OWNER				_IO(VHOST_VIRTIO, 0x27)
#endif
#ifndef VHOST_IOTLB_REMAP
#define VHOST_IOTLB_REMAP			7
#endif

/*
 * PROPOSAL, not upstream: device-state transfer for vhost-vdpa, mirroring
 * vhost-user VHOST_USER_SET_DEVICE_STATE_FD (42) and
 * VHOST_USER_CHECK_DEVICE_STATE (43). Bit and request numbers are chosen far
 * above anything upstream Linux uses (backend bits 0..8, requests up to 0x83)
 * so they cannot collide. See docs/uapi-proposal.md.
 */
#define VHOST_BACKEND_F_DEVICE_STATE		0x30	/* bit 48 */

#define VHOST_TRANSFER_STATE_DIRECTION_SAVE	0
#define VHOST_TRANSFER_STATE_DIRECTION_LOAD	1
#define VHOST_TRANSFER_STATE_PHASE_STOPPED	0

struct vhost_vdpa_device_state_fd {
	__u32 direction;	/* VHOST_TRANSFER_STATE_DIRECTION_* */
	__u32 phase;		/* VHOST_TRANSFER_STATE_PHASE_* */
	__s32 fd;		/* in: caller's fd; out: device's own fd or -1 */
	__u32 reserved;		/* must be 0 */
};

/*
 * In: direction, phase, fd. Out: fd is -1 when the device uses the caller's
 * fd (vhost-user reply bit 8 set), or a new fd the caller must use instead.
 * Errors: EINVAL bad direction/reserved/fd, EOPNOTSUPP phase not stopped,
 * EBUSY save while not suspended or a transfer already open.
 */
#define VHOST_VDPA_SET_DEVICE_STATE_FD	\
	_IOWR(VHOST_VIRTIO, 0xF0, struct vhost_vdpa_device_state_fd)
/* Returns 0 when the transfer completed and (load) the state was applied. */
#define VHOST_VDPA_CHECK_DEVICE_STATE	_IO(VHOST_VIRTIO, 0xF1)

/*
 * PROPOSAL, not upstream: iterative pre-copy of the device's own state while
 * the device runs (docs/uapi-proposal.md, "Pre-copy"), after VFIO's
 * PRE_COPY state and VFIO_MIG_GET_PRECOPY_INFO. Offered only beside
 * VHOST_BACKEND_F_DEVICE_STATE. Like SUSPEND in Linux (the parent's
 * capability, not the acked bits, gates it) it is a capability: the
 * requests work when it is offered, and a saved state never requires it.
 * Bit 49: next to this project's own bit 48, far above upstream's 0..10
 * (10: the unmerged 2024 IOTLB_REMAP proposal).
 */
#define VHOST_BACKEND_F_DEVICE_STATE_PRECOPY	0x31	/* bit 49 */
/*
 * Phase of SET_DEVICE_STATE_FD while the device runs: SAVE writes one
 * round (what changed since the previous round; the first: everything),
 * LOAD applies one round before DRIVER_OK. A STOPPED save that follows
 * carries only the rest. vhost-user numbers phases up from 0 (STOPPED, the
 * only one defined); bit 31 keeps this one out of that sequence's way.
 */
#define VHOST_TRANSFER_STATE_PHASE_PRECOPY	0x80000001u

/* VFIO_MIG_GET_PRECOPY_INFO's two figures, plus the round count. */
struct vhost_vdpa_precopy_info {
	__u64 initial_bytes;	/* state never sent in this pre-copy yet */
	__u64 dirty_bytes;	/* sent, then changed: to be sent again */
	__u32 rounds;		/* rounds saved in this pre-copy so far */
	__u32 flags;		/* VHOST_VDPA_PRECOPY_ACTIVE */
};
#define VHOST_VDPA_PRECOPY_ACTIVE	(1u << 0)	/* a round was saved */

/* Errors: ENOTTY/EOPNOTSUPP when the bit is not offered. */
#define VHOST_VDPA_GET_PRECOPY_INFO	\
	_IOR(VHOST_VIRTIO, 0xF2, struct vhost_vdpa_precopy_info)
/*
 * Forget the pre-copy (save side: what was sent; load side: the rounds
 * applied): the next PRECOPY save is round 0 of a new one. A STOPPED
 * save, a reset and closing the device end it too.
 */
#define VHOST_VDPA_PRECOPY_END		_IO(VHOST_VIRTIO, 0xF3)

#endif
