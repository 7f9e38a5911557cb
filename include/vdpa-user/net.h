/* SPDX-License-Identifier: MIT */
/*
 * virtio-net driver on a vdpa device: queue pairs rx0,tx0,rx1,tx1,..., the
 * control queue last; frames carry a 12-byte virtio_net_hdr_v1 on the ring.
 */
#ifndef VDPA_USER_NET_H
#define VDPA_USER_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vdpa-user/vdpa-user.h>
#include <vdpa-user/vq.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vdpa_net;

struct vdpa_net_opts {
	uint16_t queue_pairs;	/* 0: 1 */
	uint16_t vq_size;	/* 0: the device's maximum (up to 256) */
	uint32_t buf_size;	/* per buffer, header included; 0: 2048 */
	bool no_event_idx;	/* don't negotiate VIRTIO_RING_F_EVENT_IDX */
	bool no_ctrl_vq;	/* don't negotiate VIRTIO_NET_F_CTRL_VQ */
};

/*
 * Negotiate, map mem (if not yet mapped), set up the queues, DRIVER_OK,
 * post RX buffers, select the queue pairs through the control queue.
 * Errors: -ENOTSUP the device is not a net device or lacks something
 * required (VERSION_1, MQ for queue_pairs > 1); -ENOMEM mem too small;
 * others from the requests.
 */
VDPA_EXPORT int vdpa_net_open(struct vdpa_dev *dev, struct vdpa_mem *mem,
			      const struct vdpa_net_opts *opts,
			      struct vdpa_net **ret_net);
/* Frees the driver; does not reset or close the device nor free mem. */
VDPA_EXPORT void vdpa_net_close(struct vdpa_net *net);

VDPA_EXPORT void vdpa_net_get_mac(const struct vdpa_net *net, uint8_t mac[6]);
VDPA_EXPORT unsigned int vdpa_net_queue_pairs(const struct vdpa_net *net);
/* Largest frame vdpa_net_send() takes. */
VDPA_EXPORT size_t vdpa_net_max_frame(const struct vdpa_net *net);

/* Queue a frame on pair qp (not published before vdpa_net_kick_tx). */
VDPA_EXPORT int vdpa_net_send(struct vdpa_net *net, unsigned int qp,
			      const void *frame, size_t len);
VDPA_EXPORT int vdpa_net_kick_tx(struct vdpa_net *net, unsigned int qp);
/* Reap TX completions; returns how many. */
VDPA_EXPORT int vdpa_net_reap_tx(struct vdpa_net *net, unsigned int qp);
/* Free TX buffers on qp. */
VDPA_EXPORT unsigned int vdpa_net_tx_free(const struct vdpa_net *net,
					  unsigned int qp);

typedef void (*vdpa_net_rx_fn)(const void *frame, size_t len, void *opaque);
/*
 * Deliver up to max received frames of pair qp to fn, re-post their
 * buffers; returns how many, or -EIO on a bad completion.
 */
VDPA_EXPORT int vdpa_net_receive(struct vdpa_net *net, unsigned int qp,
				 vdpa_net_rx_fn fn, void *opaque,
				 unsigned int max);
/* Wait for an interrupt on any RX queue. 0 or -ETIMEDOUT. */
VDPA_EXPORT int vdpa_net_wait_rx(struct vdpa_net *net, int timeout_ms);

/*
 * Control queue command; 0 on VIRTIO_NET_OK, -EIO on VIRTIO_NET_ERR,
 * -ENOTSUP without a control queue, -ETIMEDOUT.
 */
VDPA_EXPORT int vdpa_net_ctrl(struct vdpa_net *net, uint8_t cls, uint8_t cmd,
			      const void *data, size_t len);
VDPA_EXPORT int vdpa_net_set_mac(struct vdpa_net *net, const uint8_t mac[6]);
VDPA_EXPORT int vdpa_net_set_queue_pairs(struct vdpa_net *net, uint16_t pairs);
VDPA_EXPORT int vdpa_net_set_rx_mode(struct vdpa_net *net, bool promisc,
				     bool allmulti);

/* Driver's view of the class state, for migration. */
struct vdpa_net_class_state {
	uint8_t mac[6];
	uint16_t queue_pairs;	/* selected with MQ_VQ_PAIRS_SET */
	bool promisc, allmulti;
};
VDPA_EXPORT void vdpa_net_class_state(const struct vdpa_net *net,
				      struct vdpa_net_class_state *ret);
/* Replay class state through the control queue (destination). */
VDPA_EXPORT int vdpa_net_restore_class(struct vdpa_net *net,
				       const struct vdpa_net_class_state *s);

/* Migration plumbing. */
VDPA_EXPORT struct vdpa_dev *vdpa_net_dev(const struct vdpa_net *net);
VDPA_EXPORT unsigned int vdpa_net_num_vqs(const struct vdpa_net *net);
/* Queue index idx (device numbering), or NULL. */
VDPA_EXPORT struct vdpa_vq *vdpa_net_vq(const struct vdpa_net *net,
					unsigned int idx);
/* The driver continues on dev (rings already attached there). */
VDPA_EXPORT void vdpa_net_set_dev(struct vdpa_net *net, struct vdpa_dev *dev);
/* Serialize / adopt the driver (queues, buffers; ring memory is in mem). */
VDPA_EXPORT int vdpa_net_save(const struct vdpa_net *net, void **ret_buf,
			      size_t *ret_len);
VDPA_EXPORT int vdpa_net_restore(struct vdpa_mem *mem, const void *buf,
				 size_t len, struct vdpa_net **ret_net);

#ifdef __cplusplus
}
#endif

#endif
