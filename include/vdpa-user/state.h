/* SPDX-License-Identifier: MIT */
/*
 * Device state: a decoded struct vdpa_state, its versioned blob
 * (docs/state-format.md), and saving/loading it from/to a device.
 */
#ifndef VDPA_USER_STATE_H
#define VDPA_USER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <vdpa-user/vdpa-user.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VDPA_STATE_VERSION	1
#define VDPA_STATE_MAX_QUEUES	64
#define VDPA_STATE_DEFAULT_CAP	(256u << 20)
#define VDPA_STATE_MODEL_MAX	128
#define VDPA_STATE_MAX_SECTIONS	16

/* Configuration that must be equal on source and destination. */
struct vdpa_state_config {
	uint32_t device_id;
	uint64_t features_offered;
	uint32_t vq_count;
	uint16_t vq_max_size;
	uint32_t config_size;
	/* net */
	uint8_t mac[6];
	uint16_t mtu;
	uint16_t max_vqp;
	/* blk */
	uint64_t capacity;
	uint32_t blk_size;
};

struct vdpa_state_queue {
	uint32_t index;
	uint16_t size;
	uint16_t base;		/* GET_VRING_BASE: next avail entry */
	uint16_t used_idx;	/* used->idx in driver memory at save */
	bool enabled;
	uint64_t desc, avail, used;	/* IOVAs */
};

#define VDPA_STATE_MAC_TABLE_MAX	64

/*
 * Net class state: what the driver set through the control queue. The
 * fields after allmulti travel in their own section (docs/state-format.md),
 * written only when one of them differs from a reset device's.
 */
struct vdpa_state_net {
	uint8_t mac[6];
	uint16_t queue_pairs;
	bool promisc, allmulti;
	bool alluni, nomulti, nouni, nobcast;	/* VIRTIO_NET_CTRL_RX_* */
	/* VIRTIO_NET_CTRL_MAC_TABLE_SET: unicast, then multicast entries */
	uint16_t n_uc, n_mc;
	uint8_t uc[VDPA_STATE_MAC_TABLE_MAX][6];
	uint8_t mc[VDPA_STATE_MAC_TABLE_MAX][6];
};

struct vdpa_state {
	char model[VDPA_STATE_MODEL_MAX];	/* device model URI */
	struct vdpa_state_config cfg;
	/* negotiated */
	bool has_features;
	uint64_t features;
	uint64_t backend_features;
	uint8_t status;
	uint32_t nqueues;
	struct vdpa_state_queue q[VDPA_STATE_MAX_QUEUES];
	bool has_net;
	struct vdpa_state_net net;
	/* the device's own state (VHOST_BACKEND_F_DEVICE_STATE) */
	bool has_device;
	void *device;
	size_t device_len;
	/* private: a decoded buffer the state owns (device may point into it) */
	void *backing;
	/*
	 * What vdpa_state_decode() read (zero for a state built otherwise):
	 * the blob's format version and length, and its sections in order,
	 * unknown optional ones (bit 15 of type clear: skipped by the
	 * decoder) included (the first VDPA_STATE_MAX_SECTIONS).
	 */
	uint16_t blob_version;
	uint64_t blob_len;
	uint32_t nsections;
	struct vdpa_state_section {
		uint16_t type;		/* bit 15: mandatory */
		uint32_t len;
	} sections[VDPA_STATE_MAX_SECTIONS];
};

VDPA_EXPORT struct vdpa_state *vdpa_state_new(void);
VDPA_EXPORT void vdpa_state_free(struct vdpa_state *s);

/*
 * Blob of s (malloc'd). -ENOMEM; -EINVAL for more than
 * VDPA_STATE_MAX_QUEUES queues or an empty or unterminated model.
 */
VDPA_EXPORT int vdpa_state_encode(const struct vdpa_state *s, void **ret_buf,
				  size_t *ret_len);
/*
 * Decode and validate a blob; nothing is allocated before the lengths are
 * checked against len and cap (0: VDPA_STATE_DEFAULT_CAP). errbuf gets one
 * line naming the problem. Errors: -ENODATA empty, -EBADMSG malformed
 * (magic, truncation, lengths, crc), -EPROTONOSUPPORT newer version,
 * -EFBIG beyond the cap, -EINVAL impossible values, -ENOMEM.
 */
VDPA_EXPORT int vdpa_state_decode(const void *buf, size_t len, size_t cap,
				  struct vdpa_state **ret, char *errbuf,
				  size_t errlen);

/*
 * Would src load into a device described by dst (vdpa_state_describe)?
 * 0, or -EPROTO with errbuf naming the first mismatch, for example
 * "mtu: source 1500, destination 9000".
 */
VDPA_EXPORT int vdpa_state_compat(const struct vdpa_state *src,
				  const struct vdpa_state *dst, char *errbuf,
				  size_t errlen);

/* Model URI and configuration of a device (no negotiated state). */
VDPA_EXPORT int vdpa_state_describe(struct vdpa_dev *dev,
				    struct vdpa_state **ret);

/*
 * Save a suspended device: description, negotiated features, every queue
 * the driver set up (GET_VRING_BASE; ring addresses from the library's
 * shadow), and the device's own state when VHOST_BACKEND_F_DEVICE_STATE was
 * negotiated. The device is left suspended and is not reset. Errors:
 * -EOPNOTSUPP SUSPEND not negotiated; -EFBIG the device's state is larger
 * than VDPA_STATE_DEFAULT_CAP; -ETIMEDOUT the device did not finish
 * writing it; what the device's CHECK_DEVICE_STATE returned; request
 * errors (-ENOTCONN: a simulator that went away). desc: the device's vdpa_state_describe() result
 * taken before it was suspended (saves requests while it is down), or NULL.
 */
VDPA_EXPORT int vdpa_state_save_device(struct vdpa_dev *dev,
				       const struct vdpa_state *desc,
				       struct vdpa_state **ret);
/* Net class state to record with the queues (from the driver). */
VDPA_EXPORT void vdpa_state_set_net(struct vdpa_state *s, const uint8_t mac[6],
				    uint16_t queue_pairs, bool promisc,
				    bool allmulti);

struct vdpa_load_hooks {
	/*
	 * After FEATURES_OK: map driver memory and attach the rings with the
	 * saved sizes, addresses and bases (plus kick/call fds). NULL: the
	 * library sets NUM/BASE/ADDR from the state, without fds.
	 */
	int (*setup_rings)(struct vdpa_dev *dev, const struct vdpa_state *s,
			   void *opaque);
	/*
	 * After DRIVER_OK, control queue enabled: replay class state. NULL:
	 * net class state the device's own state does not carry is replayed
	 * by the library through a control queue of its own, before the
	 * driver's control-queue ring takes over (needs SUSPEND, RESUME and
	 * ENABLE_AFTER_DRIVER_OK; refused up front otherwise).
	 */
	int (*restore_class)(struct vdpa_dev *dev, const struct vdpa_state *s,
			     void *opaque);
	void *opaque;
	/* The destination's description, if already taken (or NULL). */
	const struct vdpa_state *dst_desc;
	/*
	 * For the library's ring setup (setup_rings NULL): the caller's kick
	 * and call eventfds by queue index (VDPA_STATE_MAX_QUEUES entries,
	 * -1: none), or NULL. Each queue given a kick fd is kicked once the
	 * device runs, for what was published while it moved.
	 */
	const int *kick_fds, *call_fds;
};

/*
 * Negotiate backend features and features ahead of a load, while the
 * source still runs; vdpa_state_load_device() then skips the reset and
 * negotiation if they match. Errors as vdpa_dev_set_features().
 */
VDPA_EXPORT int vdpa_state_prepare_device(struct vdpa_dev *dev,
					  uint64_t backend_features,
					  uint64_t features);

/*
 * Would s load into dev? The check vdpa_state_load_device() makes before
 * it sends anything, and `vdpa-user state check`: s must hold a saved
 * device, fit dev (vdpa_state_compat) and be a state a virtio driver and a
 * vhost-vdpa device can have been in (docs/state-format.md, "What a load
 * refuses"). Only reads from dev (its description and capabilities). mem:
 * the driver memory saved with s (not mapped into dev), or NULL for the
 * regions mapped into dev; rings no memory holds skip the memory rules.
 * 0, or -EPROTO (does not fit dev) / -EINVAL (impossible state) / request
 * errors, with one line in errbuf naming the problem.
 */
VDPA_EXPORT int vdpa_state_check_load(struct vdpa_dev *dev,
				      const struct vdpa_state *s,
				      const struct vdpa_mem *mem, char *errbuf,
				      size_t errlen);

/*
 * Load s into dev: compatibility check first (nothing sent before it
 * passes), backend features, features, rings, the device's own state
 * (checked before DRIVER_OK), DRIVER_OK, class state, data queues. On
 * failure the device is reset. errbuf gets a one-line reason.
 */
VDPA_EXPORT int vdpa_state_load_device(struct vdpa_dev *dev,
				       const struct vdpa_state *s,
				       const struct vdpa_load_hooks *hooks,
				       char *errbuf, size_t errlen);

/* Human (json=false) or JSON description of s. */
VDPA_EXPORT int vdpa_state_print(const struct vdpa_state *s, FILE *f,
				 bool json);

#ifdef __cplusplus
}
#endif

#endif
