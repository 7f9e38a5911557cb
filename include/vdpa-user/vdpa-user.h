/* SPDX-License-Identifier: MIT */
/*
 * libvdpa-user: drive a vDPA device from userspace through the vhost-vdpa
 * character-device ABI (/dev/vhost-vdpa-N) or a vdpa-sim socket (sim:PATH).
 *
 * Conventions: every function that can fail returns 0 (or a count) on
 * success and a negative errno on failure; output parameters come last, are
 * named ret_*, and are left untouched on failure. Destructors accept NULL.
 * The library never prints; it logs through vdpa_set_log(). All fds it
 * creates are O_CLOEXEC. It never raises SIGPIPE.
 */
#ifndef VDPA_USER_H
#define VDPA_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#ifdef __cplusplus
/*
 * <linux/vhost_types.h> includes <linux/virtio_ring.h>, whose legacy
 * vring_init() converts void * implicitly, which C++ refuses: leave the
 * legacy ring layout out of a C++ translation unit (C keeps it).
 */
#ifndef VIRTIO_RING_NO_LEGACY
#define VIRTIO_RING_NO_LEGACY
#define VDPA_USER_UNDEF_NO_LEGACY
#endif
#endif
#include <linux/vhost_types.h>
#ifdef VDPA_USER_UNDEF_NO_LEGACY
#undef VIRTIO_RING_NO_LEGACY
#undef VDPA_USER_UNDEF_NO_LEGACY
#endif

#include <vdpa-user/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VDPA_USER_BUILD)
#define VDPA_EXPORT __attribute__((visibility("default")))
#else
#define VDPA_EXPORT
#endif

/* ---- logging ---------------------------------------------------------- */

/* level is a syslog level (LOG_ERR .. LOG_DEBUG). */
typedef void (*vdpa_log_fn)(int level, const char *msg, void *opaque);

/*
 * Process-wide log sink; messages above max_level are dropped before they are
 * formatted. fn == NULL turns logging off (the default).
 */
VDPA_EXPORT void vdpa_set_log(vdpa_log_fn fn, void *opaque, int max_level);

struct vdpa_dev;

/*
 * Request trace: called after every request vdpa_dev_call() passes to a
 * device (a kernel ioctl or write, or a simulator message) returns, with
 * the request code and argument as given to vdpa_dev_call() (outputs
 * filled in), what the device answered (>= 0 or -errno) and how long it
 * took. Not called for a call refused before it reaches the device (no
 * device, a closed one) or for the simulator's HELLO handshake. Called in
 * the thread that made the request; fn must not call into the library.
 */
typedef void (*vdpa_trace_fn)(struct vdpa_dev *dev, unsigned long request,
			      const void *arg, int result, uint64_t ns,
			      void *opaque);

/* Process-wide, like vdpa_set_log(). fn == NULL turns it off (the default). */
VDPA_EXPORT void vdpa_set_trace(vdpa_trace_fn fn, void *opaque);

/* ---- device ------------------------------------------------------------ */

struct vdpa_dev;

/*
 * Open a device: "/dev/vhost-vdpa-N" (kernel) or "sim:PATH" (vdpa-sim).
 * Does VHOST_SET_OWNER. Errors: -EINVAL malformed name, -ENOENT no such
 * device or socket, -ECONNREFUSED a socket file nobody listens on (left
 * by a simulator that was killed) or a file that is not a socket,
 * -EPROTOTYPE a socket of another kind (not SOCK_SEQPACKET), -EBUSY
 * already open elsewhere, -EACCES, -EPROTO the peer does not speak the
 * vdpa-sim protocol, -ENOMEM.
 */
VDPA_EXPORT int vdpa_dev_open(const char *name, struct vdpa_dev **ret_dev);

/*
 * Open a vdpa-sim device over an already connected SOCK_SEQPACKET socket
 * (for example one end of a socketpair served by vsim in a thread). Takes
 * ownership of sock, also on failure. Errors as vdpa_dev_open().
 */
VDPA_EXPORT int vdpa_dev_open_sim_fd(int sock, const char *name,
				     struct vdpa_dev **ret_dev);

/* Close the device; like closing /dev/vhost-vdpa-N this resets it. */
VDPA_EXPORT void vdpa_dev_close(struct vdpa_dev *dev);

VDPA_EXPORT const char *vdpa_dev_name(const struct vdpa_dev *dev);
/* true for /dev/vhost-vdpa-N, false for sim: devices. */
VDPA_EXPORT bool vdpa_dev_is_kernel(const struct vdpa_dev *dev);

/*
 * The one entry point every request goes through: a vhost / vhost-vdpa ioctl
 * request code with its argument, exactly as ioctl(2) takes them, or
 * VSIM_REQ_IOTLB_MSG with a struct vhost_msg_v2 * (a write(2) of that message
 * on the kernel transport). Returns the ioctl's value (>= 0) or -errno.
 * For VHOST_VDPA_GET_CONFIG/SET_CONFIG arg is a struct vhost_vdpa_config
 * followed by len bytes.
 */
VDPA_EXPORT int vdpa_dev_call(struct vdpa_dev *dev, unsigned long request,
			      void *arg);

/* Device id (VIRTIO_ID_NET = 1, VIRTIO_ID_BLOCK = 2). */
VDPA_EXPORT int vdpa_dev_get_device_id(struct vdpa_dev *dev,
				       uint32_t *ret_id);

/* What the device offers, and what it can do for migration. */
struct vdpa_caps {
	uint32_t device_id;
	uint64_t features;		/* device features offered */
	uint64_t backend_features;	/* backend features offered */
	uint32_t vq_count;
	uint16_t vq_max_size;
	uint32_t config_size;
	struct vhost_vdpa_iova_range iova_range;
	bool suspend;			/* VHOST_BACKEND_F_SUSPEND offered */
	bool resume;			/* VHOST_BACKEND_F_RESUME offered */
	bool device_state;		/* VHOST_BACKEND_F_DEVICE_STATE offered */
	bool iotlb_batch;
	bool enable_after_driver_ok;
};

/* Errors: those of the underlying requests (-EIO, -ENOTCONN, ...). */
VDPA_EXPORT int vdpa_dev_get_caps(struct vdpa_dev *dev,
				  struct vdpa_caps *ret_caps);

/*
 * Negotiate backend features: acks want & offered (IOTLB_MSG_V2 is always
 * required). Returns -ENOTSUP if the device lacks IOTLB_MSG_V2; the acked
 * set is available from vdpa_dev_backend_features() afterwards.
 */
VDPA_EXPORT int vdpa_dev_set_backend_features(struct vdpa_dev *dev,
					      uint64_t want,
					      uint64_t *ret_acked);
VDPA_EXPORT uint64_t vdpa_dev_backend_features(const struct vdpa_dev *dev);

/*
 * Reset, ACKNOWLEDGE|DRIVER, set features (must be a subset of the offered
 * set: -ENOTSUP otherwise), FEATURES_OK with read-back (-EIO if it did not
 * stick). Requires backend features to have been negotiated first.
 */
VDPA_EXPORT int vdpa_dev_set_features(struct vdpa_dev *dev, uint64_t features);
VDPA_EXPORT uint64_t vdpa_dev_features(const struct vdpa_dev *dev);

VDPA_EXPORT int vdpa_dev_get_status(struct vdpa_dev *dev, uint8_t *ret_status);
/* Set status |= bits and read it back: -EIO if a bit did not stick. */
VDPA_EXPORT int vdpa_dev_add_status(struct vdpa_dev *dev, uint8_t bits);
/* Write status 0 and wait for the read-back to be 0. */
VDPA_EXPORT int vdpa_dev_reset(struct vdpa_dev *dev);

/* Config space access. -EINVAL if off+len exceeds the config size. */
VDPA_EXPORT int vdpa_dev_get_config(struct vdpa_dev *dev, uint32_t off,
				    void *buf, uint32_t len);
VDPA_EXPORT int vdpa_dev_set_config(struct vdpa_dev *dev, uint32_t off,
				    const void *buf, uint32_t len);

/* Per-queue control. */
VDPA_EXPORT int vdpa_dev_set_vring_enable(struct vdpa_dev *dev, uint32_t idx,
					  bool enable);
/*
 * Rings the caller owns (a VMM whose guest is the driver): every vring
 * request at device level, addresses as the caller's IOVAs. The library
 * remembers what was set through the handle (vdpa_dev_get_vring), which is
 * what a migration saves and hands over; fds stay the caller's (not
 * duplicated, not closed), fd -1 unbinds. Errors: those of the request
 * (-EINVAL, -ENOBUFS bad index, -EBUSY).
 */
VDPA_EXPORT int vdpa_dev_set_vring_num(struct vdpa_dev *dev, uint32_t idx,
				       uint16_t num);
VDPA_EXPORT int vdpa_dev_set_vring_addr(struct vdpa_dev *dev, uint32_t idx,
					uint64_t desc, uint64_t avail,
					uint64_t used);
VDPA_EXPORT int vdpa_dev_set_vring_base(struct vdpa_dev *dev, uint32_t idx,
					uint16_t base);
VDPA_EXPORT int vdpa_dev_set_vring_kick(struct vdpa_dev *dev, uint32_t idx,
					int fd);
VDPA_EXPORT int vdpa_dev_set_vring_call(struct vdpa_dev *dev, uint32_t idx,
					int fd);

/* What was set on queue idx through this handle since the last reset. */
struct vdpa_vring_info {
	uint16_t num;			/* 0: not set */
	uint16_t base;			/* last SET_VRING_BASE */
	uint64_t desc, avail, used;	/* IOVAs */
	int kick_fd, call_fd;		/* -1: none */
	bool enabled;
	bool configured;		/* num and addresses set */
};
VDPA_EXPORT int vdpa_dev_get_vring(struct vdpa_dev *dev, uint32_t idx,
				   struct vdpa_vring_info *ret);

/* -EINVAL/-ENOBUFS for a bad index, as the kernel. */
VDPA_EXPORT int vdpa_dev_get_vring_base(struct vdpa_dev *dev, uint32_t idx,
					uint16_t *ret_base);

/*
 * Suspend: returns when the device no longer touches rings or buffers; after
 * it, vring bases are trusted. Resume continues where it stopped.
 * -EOPNOTSUPP when the capability was not negotiated (the request is then
 * never sent: Linux 6.1 answers an unknown RESUME with EFAULT).
 */
VDPA_EXPORT int vdpa_dev_suspend(struct vdpa_dev *dev);
VDPA_EXPORT int vdpa_dev_resume(struct vdpa_dev *dev);

/* ---- driver memory ----------------------------------------------------- */

/*
 * Driver memory: a memfd-backed mapping with a fixed IOVA, which can be
 * mapped into one or more devices (source and destination of a migration
 * share it) and handed to other processes by fd.
 */
struct vdpa_mem;

/* size is rounded up to the page size. Errors: -EINVAL, -ENOMEM, -EMFILE. */
VDPA_EXPORT int vdpa_mem_create(size_t size, uint64_t iova,
				struct vdpa_mem **ret_mem);
/*
 * Adopt an existing memfd (takes ownership of fd, also on failure). A
 * file shorter than size is grown to it, a longer one left as it is.
 */
VDPA_EXPORT int vdpa_mem_create_from_fd(int fd, size_t size, uint64_t iova,
					struct vdpa_mem **ret_mem);
/*
 * The same for the part of fd from offset (page-aligned) on: a guest RAM
 * region that does not start its file (vhost-user mmap_offset). The file
 * must reach offset + size; it is never resized (-EINVAL).
 */
VDPA_EXPORT int vdpa_mem_create_from_fd_at(int fd, uint64_t offset,
					   size_t size, uint64_t iova,
					   struct vdpa_mem **ret_mem);
VDPA_EXPORT void vdpa_mem_destroy(struct vdpa_mem *mem);
VDPA_EXPORT void *vdpa_mem_base(const struct vdpa_mem *mem);
VDPA_EXPORT size_t vdpa_mem_size(const struct vdpa_mem *mem);
VDPA_EXPORT int vdpa_mem_fd(const struct vdpa_mem *mem);
/* IOVA of a pointer inside the region; UINT64_MAX if outside. */
VDPA_EXPORT uint64_t vdpa_mem_iova(const struct vdpa_mem *mem, const void *p);
/* Bump allocator inside the region. -ENOMEM when it is full. */
VDPA_EXPORT int vdpa_mem_alloc(struct vdpa_mem *mem, size_t size, size_t align,
			       void **ret_ptr);
/* Allocator cursor, so a restored region can continue allocating. */
VDPA_EXPORT size_t vdpa_mem_used(const struct vdpa_mem *mem);
VDPA_EXPORT int vdpa_mem_set_used(struct vdpa_mem *mem, size_t used);

/*
 * Map the region into the device's IOTLB (one IOTLB v2 UPDATE; the remap of
 * every region after a reset is one batch when IOTLB_BATCH was negotiated).
 * -ERANGE if it does not fit the device's IOVA range; -EEXIST if already
 * mapped into this device.
 */
VDPA_EXPORT int vdpa_mem_map(struct vdpa_dev *dev, struct vdpa_mem *mem);
VDPA_EXPORT int vdpa_mem_unmap(struct vdpa_dev *dev, struct vdpa_mem *mem);

#ifdef __cplusplus
}
#endif

#endif
