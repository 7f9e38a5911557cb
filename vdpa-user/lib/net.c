// SPDX-License-Identifier: MIT
/* virtio-net driver: TX/RX queue pairs, control queue. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <vdpa-user/migrate.h>
#include <vdpa-user/net.h>
#include <vdpa-user/uapi-ext.h>

#include "device.h"
#include "log.h"

#define NET_HDR_LEN	sizeof(struct virtio_net_hdr_v1)
#define NET_MAX_VQS	(2 * 16 + 1)
#define CTRL_BUF	256
#define NET_SAVE_MAGIC	0x3174656eu	/* "net1" */

struct net_queue {
	struct vdpa_vq *vq;
	uint8_t *bufs;		/* num buffers of buf_size in mem */
	uint16_t *free;		/* tx: stack of free buffer indexes */
	uint16_t nfree;
};

struct vdpa_net {
	struct vdpa_dev *dev;
	struct vdpa_mem *mem;
	uint64_t features;
	uint16_t vq_size;
	uint32_t buf_size;
	uint16_t pairs;		/* queue pairs set up */
	uint16_t max_pairs;	/* device's max_virtqueue_pairs */
	uint16_t cvq_idx;	/* UINT16_MAX: none */
	uint16_t mtu;
	struct net_queue q[NET_MAX_VQS];
	uint8_t *ctrl;		/* CTRL_BUF bytes in mem */
	struct vdpa_net_class_state cls;
};

static bool has(const struct vdpa_net *net, unsigned int bit)
{
	return net->features & (1ULL << bit);
}

static unsigned int nvqs(const struct vdpa_net *net)
{
	return net->cvq_idx != UINT16_MAX ? net->cvq_idx + 1u :
	       2u * net->pairs;
}

static int queue_init(struct vdpa_net *net, unsigned int idx, uint16_t size,
		      bool with_bufs)
{
	struct net_queue *q = &net->q[idx];
	void *p;
	uint16_t i;
	int err;

	err = vdpa_vq_create(net->mem, size,
			     has(net, VIRTIO_RING_F_EVENT_IDX), &q->vq);
	if (err < 0)
		return err;
	if (!with_bufs)
		return 0;
	err = vdpa_mem_alloc(net->mem, (size_t)size * net->buf_size, 64, &p);
	if (err < 0)
		return err;
	q->bufs = p;
	if (idx & 1) {	/* tx */
		q->free = calloc(size, sizeof(*q->free));
		if (!q->free)
			return -ENOMEM;
		for (i = 0; i < size; i++)
			q->free[i] = (uint16_t)(size - 1 - i);
		q->nfree = size;
	}
	return 0;
}

static int post_rx(struct vdpa_net *net, unsigned int idx, uint16_t buf)
{
	struct net_queue *q = &net->q[idx];
	struct vdpa_sg sg = { q->bufs + (size_t)buf * net->buf_size,
			      net->buf_size };

	return vdpa_vq_add(q->vq, &sg, 0, 1, buf);
}

static int fill_rx(struct vdpa_net *net)
{
	unsigned int p;
	uint16_t b;
	int err;

	for (p = 0; p < net->pairs; p++) {
		struct net_queue *q = &net->q[2 * p];

		for (b = 0; b < vdpa_vq_size(q->vq); b++) {
			err = post_rx(net, 2 * p, b);
			if (err < 0)
				return err;
		}
		err = vdpa_vq_kick(q->vq);
		if (err < 0)
			return err;
	}
	return 0;
}

static int enable_queues(struct vdpa_net *net, bool data)
{
	unsigned int i;
	int err;

	for (i = 0; i < nvqs(net); i++) {
		bool is_cvq = i == net->cvq_idx;

		if (!net->q[i].vq || is_cvq == data)
			continue;
		err = vdpa_dev_set_vring_enable(net->dev, i, true);
		if (err < 0)
			return err;
	}
	return 0;
}

static uint64_t wanted_features(const struct vdpa_net_opts *o)
{
	uint64_t f = (1ULL << VIRTIO_F_VERSION_1) |
		     (1ULL << VIRTIO_F_ACCESS_PLATFORM) |
		     (1ULL << VIRTIO_F_ANY_LAYOUT) |
		     (1ULL << VIRTIO_NET_F_MAC) | (1ULL << VIRTIO_NET_F_MTU) |
		     (1ULL << VIRTIO_NET_F_STATUS) |
		     (1ULL << VIRTIO_NET_F_CTRL_RX) |
		     (1ULL << VIRTIO_NET_F_CTRL_RX_EXTRA) |
		     (1ULL << VIRTIO_NET_F_CTRL_MAC_ADDR) |
		     (1ULL << VIRTIO_NET_F_MQ);

	if (!o->no_ctrl_vq)
		f |= 1ULL << VIRTIO_NET_F_CTRL_VQ;
	if (!o->no_event_idx)
		f |= 1ULL << VIRTIO_RING_F_EVENT_IDX;
	return f;
}

void vdpa_net_close(struct vdpa_net *net)
{
	unsigned int i;

	if (!net)
		return;
	for (i = 0; i < NET_MAX_VQS; i++) {
		vdpa_vq_destroy(net->q[i].vq);
		free(net->q[i].free);
	}
	free(net);
}

static int read_config(struct vdpa_net *net)
{
	struct virtio_net_config c;
	int err;

	memset(&c, 0, sizeof(c));
	err = vdpa_dev_get_config(net->dev, 0, &c, offsetof(struct virtio_net_config, mtu) + 2);
	if (err < 0)
		return err;
	if (has(net, VIRTIO_NET_F_MAC))
		memcpy(net->cls.mac, c.mac, 6);
	net->max_pairs = has(net, VIRTIO_NET_F_MQ) ? c.max_virtqueue_pairs : 1;
	if (!net->max_pairs || net->max_pairs > 16)
		return -ENOTSUP;
	net->mtu = has(net, VIRTIO_NET_F_MTU) ? c.mtu : 1500;
	return 0;
}

int vdpa_net_open(struct vdpa_dev *dev, struct vdpa_mem *mem,
		  const struct vdpa_net_opts *opts, struct vdpa_net **ret_net)
{
	static const struct vdpa_net_opts defaults;
	const struct vdpa_net_opts *o = opts ? opts : &defaults;
	struct vdpa_caps caps;
	struct vdpa_net *net;
	unsigned int i;
	void *ctrl;
	int err;

	if (!dev || !mem || !ret_net)
		return -EINVAL;
	err = vdpa_dev_get_caps(dev, &caps);
	if (err < 0)
		return err;
	if (caps.device_id != VIRTIO_ID_NET)
		return -ENOTSUP;
	net = calloc(1, sizeof(*net));
	if (!net)
		return -ENOMEM;
	net->dev = dev;
	net->mem = mem;
	net->cvq_idx = UINT16_MAX;
	net->pairs = o->queue_pairs ? o->queue_pairs : 1;
	net->buf_size = o->buf_size ? o->buf_size : 2048;
	net->vq_size = o->vq_size ? o->vq_size :
		       (caps.vq_max_size < 256 ? caps.vq_max_size : 256);
	err = -EINVAL;
	if (net->buf_size < NET_HDR_LEN + 64 || net->vq_size > caps.vq_max_size)
		goto err_free;
	err = vdpa_dev_set_backend_features(dev,
		(1ULL << VHOST_BACKEND_F_IOTLB_BATCH) |
		(1ULL << VHOST_BACKEND_F_SUSPEND) |
		(1ULL << VHOST_BACKEND_F_RESUME) |
		(1ULL << VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK) |
		(1ULL << VHOST_BACKEND_F_DEVICE_STATE), NULL);
	if (err < 0)
		goto err_free;
	net->features = caps.features & wanted_features(o);
	if (net->pairs > 1 && !(has(net, VIRTIO_NET_F_MQ) &&
				has(net, VIRTIO_NET_F_CTRL_VQ))) {
		vdpa_log(LOG_ERR, "%s: %u queue pairs need MQ and CTRL_VQ",
			 vdpa_dev_name(dev), net->pairs);
		err = -ENOTSUP;
		goto err_free;
	}
	if (!has(net, VIRTIO_F_VERSION_1)) {
		err = -ENOTSUP;
		goto err_free;
	}
	err = vdpa_dev_set_features(dev, net->features);
	if (err < 0)
		goto err_free;
	err = read_config(net);
	if (err < 0)
		goto err_free;
	if (net->pairs > net->max_pairs) {
		vdpa_log(LOG_ERR, "%s: %u queue pairs asked, device has %u",
			 vdpa_dev_name(dev), net->pairs, net->max_pairs);
		err = -ENOTSUP;
		goto err_free;
	}
	if (has(net, VIRTIO_NET_F_CTRL_VQ))
		net->cvq_idx = (uint16_t)(2 * net->max_pairs);
	net->cls.queue_pairs = 1;
	err = vdpa_mem_map(dev, mem);
	if (err < 0 && err != -EEXIST)
		goto err_free;
	for (i = 0; i < 2u * net->pairs; i++) {
		err = queue_init(net, i, net->vq_size, true);
		if (err < 0)
			goto err_free;
	}
	if (net->cvq_idx != UINT16_MAX) {
		err = queue_init(net, net->cvq_idx,
				 net->vq_size < 64 ? net->vq_size : 64, false);
		if (!err)
			err = vdpa_mem_alloc(mem, CTRL_BUF, 64, &ctrl);
		if (err < 0)
			goto err_free;
		net->ctrl = ctrl;
	}
	for (i = 0; i < nvqs(net); i++) {
		if (!net->q[i].vq)
			continue;
		err = vdpa_vq_attach(net->q[i].vq, dev, i, 0);
		if (err < 0)
			goto err_free;
	}
	err = fill_rx(net);
	if (err < 0)
		goto err_free;
	if (vdpa_dev_backend_features(dev) &
	    (1ULL << VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK)) {
		/* control queue first; data queues once the MQ state is set */
		err = enable_queues(net, false);
		if (!err)
			err = vdpa_dev_add_status(dev, VIRTIO_CONFIG_S_DRIVER_OK);
		if (!err && net->pairs > 1)
			err = vdpa_net_set_queue_pairs(net, net->pairs);
		if (!err)
			err = enable_queues(net, true);
	} else {
		err = enable_queues(net, false);
		if (!err)
			err = enable_queues(net, true);
		if (!err)
			err = vdpa_dev_add_status(dev, VIRTIO_CONFIG_S_DRIVER_OK);
		if (!err && net->pairs > 1)
			err = vdpa_net_set_queue_pairs(net, net->pairs);
	}
	if (err < 0)
		goto err_free;
	*ret_net = net;
	return 0;

err_free:
	vdpa_log(LOG_ERR, "%s: net setup failed: %s", vdpa_dev_name(dev),
		 strerror(-err));
	vdpa_net_close(net);
	return err;
}

void vdpa_net_get_mac(const struct vdpa_net *net, uint8_t mac[6])
{
	memcpy(mac, net->cls.mac, 6);
}

unsigned int vdpa_net_queue_pairs(const struct vdpa_net *net)
{
	return net->pairs;
}

size_t vdpa_net_max_frame(const struct vdpa_net *net)
{
	return net->buf_size - NET_HDR_LEN;
}

static struct net_queue *data_queue(struct vdpa_net *net, unsigned int qp,
				    bool tx)
{
	if (qp >= net->pairs)
		return NULL;
	return &net->q[2 * qp + tx];
}

int vdpa_net_send(struct vdpa_net *net, unsigned int qp, const void *frame,
		  size_t len)
{
	struct net_queue *q = data_queue(net, qp, true);
	struct vdpa_sg sg;
	uint16_t b;
	uint8_t *p;
	int err;

	if (!q || !frame || !len || len > vdpa_net_max_frame(net))
		return -EINVAL;
	if (!q->nfree)
		return -ENOSPC;
	b = q->free[q->nfree - 1];
	p = q->bufs + (size_t)b * net->buf_size;
	memset(p, 0, NET_HDR_LEN);
	memcpy(p + NET_HDR_LEN, frame, len);
	sg.addr = p;
	sg.len = (uint32_t)(NET_HDR_LEN + len);
	err = vdpa_vq_add(q->vq, &sg, 1, 0, b);
	if (err < 0)
		return err;
	q->nfree--;
	return 0;
}

int vdpa_net_kick_tx(struct vdpa_net *net, unsigned int qp)
{
	struct net_queue *q = data_queue(net, qp, true);

	return q ? vdpa_vq_kick(q->vq) : -EINVAL;
}

int vdpa_net_reap_tx(struct vdpa_net *net, unsigned int qp)
{
	struct net_queue *q = data_queue(net, qp, true);
	uint64_t tok;
	int n = 0, r;

	if (!q)
		return -EINVAL;
	while ((r = vdpa_vq_get_used(q->vq, &tok, NULL)) > 0) {
		if (tok >= vdpa_vq_size(q->vq) || q->nfree >= vdpa_vq_size(q->vq))
			return -EIO;
		q->free[q->nfree++] = (uint16_t)tok;
		n++;
	}
	return r < 0 ? r : n;
}

unsigned int vdpa_net_tx_free(const struct vdpa_net *net, unsigned int qp)
{
	return qp < net->pairs ? net->q[2 * qp + 1].nfree : 0;
}

int vdpa_net_receive(struct vdpa_net *net, unsigned int qp, vdpa_net_rx_fn fn,
		     void *opaque, unsigned int max)
{
	struct net_queue *q = data_queue(net, qp, false);
	unsigned int n = 0;
	uint64_t tok;
	uint32_t len;
	int r = 0, err;

	if (!q)
		return -EINVAL;
	while (n < max && (r = vdpa_vq_get_used(q->vq, &tok, &len)) > 0) {
		if (tok >= vdpa_vq_size(q->vq) || len > net->buf_size) {
			vdpa_log(LOG_ERR, "net: bad rx completion (buffer %llu, "
				 "len %u)", (unsigned long long)tok, len);
			return -EIO;
		}
		if (len >= NET_HDR_LEN && fn)
			fn(q->bufs + tok * net->buf_size + NET_HDR_LEN,
			   len - NET_HDR_LEN, opaque);
		err = post_rx(net, 2 * qp, (uint16_t)tok);
		if (err < 0)
			return err;
		n++;
	}
	if (r < 0)
		return r;
	if (n) {
		err = vdpa_vq_kick(q->vq);
		if (err < 0)
			return err;
	}
	return (int)n;
}

int vdpa_net_wait_rx(struct vdpa_net *net, int timeout_ms)
{
	struct pollfd p[16];
	unsigned int i;
	int r;

	for (i = 0; i < net->pairs; i++) {
		p[i].fd = vdpa_vq_call_fd(net->q[2 * i].vq);
		p[i].events = POLLIN;
	}
	do {
		r = poll(p, net->pairs, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	for (i = 0; i < net->pairs; i++) {
		uint64_t v;

		if ((p[i].revents & POLLIN) &&
		    read(p[i].fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			return -errno;
	}
	return 0;
}

int vdpa_net_ctrl(struct vdpa_net *net, uint8_t cls, uint8_t cmd,
		  const void *data, size_t len)
{
	struct net_queue *q;
	struct vdpa_sg sg[2];
	struct timespec t0, t;
	uint64_t tok;
	int r, err;

	if (!net || len > CTRL_BUF - 3)
		return -EINVAL;
	if (net->cvq_idx == UINT16_MAX)
		return -ENOTSUP;
	q = &net->q[net->cvq_idx];
	net->ctrl[0] = cls;
	net->ctrl[1] = cmd;
	if (len)
		memcpy(net->ctrl + 2, data, len);
	net->ctrl[CTRL_BUF - 1] = 0xff;
	sg[0].addr = net->ctrl;
	sg[0].len = (uint32_t)(2 + len);
	sg[1].addr = net->ctrl + CTRL_BUF - 1;
	sg[1].len = 1;
	err = vdpa_vq_add(q->vq, sg, 1, 1, 0);
	if (!err)
		err = vdpa_vq_kick(q->vq);
	if (err < 0)
		return err;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		r = vdpa_vq_get_used(q->vq, &tok, NULL);
		if (r != 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 5)
			return -ETIMEDOUT;
		vdpa_vq_wait(q->vq, 10);
	}
	if (r < 0)
		return r;
	if (net->ctrl[CTRL_BUF - 1] != VIRTIO_NET_OK)
		return -EIO;
	/* what a migration must carry when the device's state does not */
	vdpa_dev_net_ctrl_record(net->dev, cls, cmd, data, len);
	return 0;
}

int vdpa_net_set_mac(struct vdpa_net *net, const uint8_t mac[6])
{
	int err = vdpa_net_ctrl(net, VIRTIO_NET_CTRL_MAC,
				VIRTIO_NET_CTRL_MAC_ADDR_SET, mac, 6);

	if (!err)
		memcpy(net->cls.mac, mac, 6);
	return err;
}

int vdpa_net_set_queue_pairs(struct vdpa_net *net, uint16_t pairs)
{
	struct virtio_net_ctrl_mq mq = { .virtqueue_pairs = pairs };
	int err;

	if (!pairs || pairs > net->pairs)
		return -EINVAL;
	err = vdpa_net_ctrl(net, VIRTIO_NET_CTRL_MQ,
			    VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, &mq, sizeof(mq));
	if (!err)
		net->cls.queue_pairs = pairs;
	return err;
}

int vdpa_net_set_rx_mode(struct vdpa_net *net, bool promisc, bool allmulti)
{
	uint8_t on = promisc;
	int err;

	err = vdpa_net_ctrl(net, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC,
			    &on, 1);
	if (err < 0)
		return err;
	net->cls.promisc = promisc;
	on = allmulti;
	err = vdpa_net_ctrl(net, VIRTIO_NET_CTRL_RX,
			    VIRTIO_NET_CTRL_RX_ALLMULTI, &on, 1);
	if (!err)
		net->cls.allmulti = allmulti;
	return err;
}

void vdpa_net_class_state(const struct vdpa_net *net,
			  struct vdpa_net_class_state *ret)
{
	*ret = net->cls;
}

int vdpa_net_restore_class(struct vdpa_net *net,
			   const struct vdpa_net_class_state *s)
{
	int err = 0;

	if (net->cvq_idx == UINT16_MAX)
		return 0;
	if (has(net, VIRTIO_NET_F_CTRL_MAC_ADDR))
		err = vdpa_net_set_mac(net, s->mac);
	if (!err && has(net, VIRTIO_NET_F_MQ) && s->queue_pairs > 1)
		err = vdpa_net_set_queue_pairs(net, s->queue_pairs);
	if (!err && has(net, VIRTIO_NET_F_CTRL_RX) &&
	    (s->promisc || s->allmulti))
		err = vdpa_net_set_rx_mode(net, s->promisc, s->allmulti);
	return err;
}

struct vdpa_dev *vdpa_net_dev(const struct vdpa_net *net) { return net->dev; }
unsigned int vdpa_net_num_vqs(const struct vdpa_net *net) { return nvqs(net); }
void vdpa_net_set_dev(struct vdpa_net *net, struct vdpa_dev *dev) { net->dev = dev; }

struct vdpa_vq *vdpa_net_vq(const struct vdpa_net *net, unsigned int idx)
{
	return idx < NET_MAX_VQS ? net->q[idx].vq : NULL;
}

/* Saved driver: header, then per queue: u64 bufs iova, u32 len, vq bytes,
 * u16 nfree, free stack. */
struct net_saved {
	uint32_t magic;
	uint16_t pairs, max_pairs, cvq_idx, vq_size, mtu, reserved;
	uint32_t buf_size;
	uint64_t features;
	uint64_t ctrl_iova;
	struct vdpa_net_class_state cls;
};

int vdpa_net_save(const struct vdpa_net *net, void **ret_buf, size_t *ret_len)
{
	struct net_saved h = {
		.magic = NET_SAVE_MAGIC, .pairs = net->pairs,
		.max_pairs = net->max_pairs, .cvq_idx = net->cvq_idx,
		.vq_size = net->vq_size, .mtu = net->mtu,
		.buf_size = net->buf_size, .features = net->features,
		.ctrl_iova = net->ctrl ? vdpa_mem_iova(net->mem, net->ctrl) : 0,
		.cls = net->cls,
	};
	size_t len = sizeof(h), off;
	unsigned int i;
	uint8_t *buf;

	for (i = 0; i < nvqs(net); i++)
		if (net->q[i].vq)
			len += 14 + (size_t)vdpa_vq_save(net->q[i].vq, NULL, 0) +
			       2u * net->q[i].nfree;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, &h, sizeof(h));
	off = sizeof(h);
	for (i = 0; i < nvqs(net); i++) {
		const struct net_queue *q = &net->q[i];
		uint64_t iova = q->bufs ? vdpa_mem_iova(net->mem, q->bufs) : 0;
		uint32_t vl;

		if (!q->vq)
			continue;
		vl = (uint32_t)vdpa_vq_save(q->vq, NULL, 0);
		memcpy(buf + off, &iova, 8);
		memcpy(buf + off + 8, &vl, 4);
		vdpa_vq_save(q->vq, buf + off + 12, vl);
		off += 12 + vl;
		memcpy(buf + off, &q->nfree, 2);
		if (q->nfree)
			memcpy(buf + off + 2, q->free, 2u * q->nfree);
		off += 2 + 2u * q->nfree;
	}
	*ret_buf = buf;
	*ret_len = off;
	return 0;
}

static void *iova_to_ptr(struct vdpa_mem *mem, uint64_t iova, size_t len)
{
	uint64_t first = vdpa_mem_iova(mem, vdpa_mem_base(mem));

	if (iova < first || iova - first > vdpa_mem_size(mem) ||
	    len > vdpa_mem_size(mem) - (iova - first))
		return NULL;
	return (uint8_t *)vdpa_mem_base(mem) + (iova - first);
}

int vdpa_net_restore(struct vdpa_mem *mem, const void *buf, size_t len,
		     struct vdpa_net **ret_net)
{
	const uint8_t *p = buf;
	struct net_saved h;
	struct vdpa_net *net;
	size_t off;
	unsigned int i;
	int err = -EBADMSG;

	if (!mem || !buf || !ret_net || len < sizeof(h))
		return -EINVAL;
	memcpy(&h, p, sizeof(h));
	if (h.magic != NET_SAVE_MAGIC || !h.pairs || h.pairs > 16 ||
	    h.max_pairs < h.pairs || h.max_pairs > 16 ||
	    (h.cvq_idx != UINT16_MAX && h.cvq_idx != 2 * h.max_pairs) ||
	    h.buf_size < NET_HDR_LEN + 64)
		return -EBADMSG;
	net = calloc(1, sizeof(*net));
	if (!net)
		return -ENOMEM;
	net->mem = mem;
	net->pairs = h.pairs;
	net->max_pairs = h.max_pairs;
	net->cvq_idx = h.cvq_idx;
	net->vq_size = h.vq_size;
	net->mtu = h.mtu;
	net->buf_size = h.buf_size;
	net->features = h.features;
	net->cls = h.cls;
	if (h.cvq_idx != UINT16_MAX) {
		net->ctrl = iova_to_ptr(mem, h.ctrl_iova, CTRL_BUF);
		if (!net->ctrl)
			goto err_free;
	}
	off = sizeof(h);
	for (i = 0; i < nvqs(net); i++) {
		struct net_queue *q = &net->q[i];
		uint64_t iova;
		uint32_t vl;
		uint16_t nfree;

		if (i >= 2u * net->pairs && i != net->cvq_idx)
			continue;
		if (len - off < 12)
			goto err_free;
		memcpy(&iova, p + off, 8);
		memcpy(&vl, p + off + 8, 4);
		off += 12;
		if (len - off < (size_t)vl + 2)
			goto err_free;
		err = vdpa_vq_restore(mem, p + off, vl, &q->vq);
		if (err < 0)
			goto err_free;
		err = -EBADMSG;
		off += vl;
		memcpy(&nfree, p + off, 2);
		off += 2;
		if (nfree > vdpa_vq_size(q->vq) || len - off < 2u * nfree)
			goto err_free;
		if (i < 2u * net->pairs) {
			q->bufs = iova_to_ptr(mem, iova, (size_t)vdpa_vq_size(q->vq) *
					      net->buf_size);
			if (!q->bufs)
				goto err_free;
		}
		if (i & 1 && i < 2u * net->pairs) {
			q->free = calloc(vdpa_vq_size(q->vq), 2);
			if (!q->free) {
				err = -ENOMEM;
				goto err_free;
			}
			memcpy(q->free, p + off, 2u * nfree);
			q->nfree = nfree;
		}
		off += 2u * nfree;
	}
	if (off != len)
		goto err_free;
	*ret_net = net;
	return 0;

err_free:
	vdpa_net_close(net);
	return err;
}
