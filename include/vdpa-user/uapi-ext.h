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

#endif
