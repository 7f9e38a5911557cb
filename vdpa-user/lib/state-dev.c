// SPDX-License-Identifier: MIT
/* Saving a suspended device into a vdpa_state, loading one into a device. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <vdpa-user/mgmt.h>
#include <vdpa-user/pci.h>
#include <vdpa-user/state.h>
#include <vdpa-user/uapi-ext.h>

#include "device.h"
#include "io.h"
#include "log.h"

#define STATE_IO_TIMEOUT_MS	10000

/*
 * The device model: pci://vvvv/dddd/ssss/ssss for a PCI parent (libpci),
 * vdpa://PARENT/CLASS for another kernel parent (vdpa://vdpasim_net/net),
 * vdpa-sim://CLASS for the simulator.
 */
static void model_uri(struct vdpa_dev *dev, const char *cls, char *buf,
		      size_t len)
{
	char name[64], parent[PATH_MAX], *p;
	struct vdpa_pci_identity id;

	if (!vdpa_dev_is_kernel(dev)) {
		snprintf(buf, len, "vdpa-sim://%s", cls);
		return;
	}
	if (vdpa_pci_identity(dev, &id) == 0) {
		snprintf(buf, len, "%s", id.model_uri);
		return;
	}
	if (vdpa_mgmt_parent_of(NULL, dev->name, name, sizeof(name), parent,
				sizeof(parent)) == 0 &&
	    (p = strrchr(parent, '/')) && p[1]) {
		char mgmt[96];

		/* a parent-less device (vdpa_sim): its management device */
		if (!strcmp(p + 1, "devices") &&
		    vdpa_mgmt_dev_mgmtdev(name, mgmt, sizeof(mgmt)) == 0)
			snprintf(buf, len, "vdpa://%.64s/%s", mgmt, cls);
		else
			snprintf(buf, len, "vdpa://%.64s/%s", p + 1, cls);
		return;
	}
	snprintf(buf, len, "vhost-vdpa://%s", cls);
}

int vdpa_state_describe(struct vdpa_dev *dev, struct vdpa_state **ret)
{
	struct vdpa_caps caps;
	struct vdpa_state *s;
	int err;

	if (!dev || !ret)
		return -EINVAL;
	err = vdpa_dev_get_caps(dev, &caps);
	if (err < 0)
		return err;
	s = vdpa_state_new();
	if (!s)
		return -ENOMEM;
	s->cfg.device_id = caps.device_id;
	s->cfg.features_offered = caps.features;
	s->cfg.vq_count = caps.vq_count;
	s->cfg.vq_max_size = caps.vq_max_size;
	s->cfg.config_size = caps.config_size;
	if (caps.device_id == VIRTIO_ID_NET) {
		struct virtio_net_config c;

		memset(&c, 0, sizeof(c));
		err = vdpa_dev_get_config(dev, 0, &c,
			caps.config_size < sizeof(c) ? caps.config_size :
			(uint32_t)sizeof(c));
		memcpy(s->cfg.mac, c.mac, 6);
		s->cfg.mtu = c.mtu;
		s->cfg.max_vqp = c.max_virtqueue_pairs ? c.max_virtqueue_pairs : 1;
		model_uri(dev, "net", s->model, sizeof(s->model));
	} else if (caps.device_id == VIRTIO_ID_BLOCK) {
		struct virtio_blk_config c;

		memset(&c, 0, sizeof(c));
		err = vdpa_dev_get_config(dev, 0, &c,
			caps.config_size < 24 + 4 ? caps.config_size : 24 + 4);
		s->cfg.capacity = c.capacity;
		s->cfg.blk_size = c.blk_size;
		model_uri(dev, "blk", s->model, sizeof(s->model));
	} else {
		model_uri(dev, "unknown", s->model, sizeof(s->model));
	}
	if (err < 0) {
		vdpa_state_free(s);
		return err;
	}
	*ret = s;
	return 0;
}

void vdpa_state_set_net(struct vdpa_state *s, const uint8_t mac[6],
			uint16_t queue_pairs, bool promisc, bool allmulti)
{
	s->has_net = true;
	memcpy(s->net.mac, mac, 6);
	s->net.queue_pairs = queue_pairs;
	s->net.promisc = promisc;
	s->net.allmulti = allmulti;
}

/* used->idx of a ring, read from driver memory mapped into dev. */
static uint16_t used_idx_of(struct vdpa_dev *dev, uint64_t used_iova,
			    uint16_t fallback)
{
	int i;

	for (i = 0; i < VDPA_MAX_MAPPED; i++) {
		const struct vdpa_mem *m = dev->mapped[i];
		uint64_t first;

		if (!m)
			continue;
		first = vdpa_mem_iova(m, vdpa_mem_base(m));
		if (used_iova >= first && used_iova - first + 4 <=
		    vdpa_mem_size(m)) {
			const uint16_t *p = (const uint16_t *)
				((const uint8_t *)vdpa_mem_base(m) +
				 (used_iova - first) + 2);

			return __atomic_load_n(p, __ATOMIC_ACQUIRE);
		}
	}
	return fallback;
}

/* Read fd to EOF into a malloc'd buffer, at most cap bytes. */
static int read_to_eof(int fd, size_t cap, void **ret_buf, size_t *ret_len)
{
	size_t len = 0, sz = 65536;
	uint8_t *buf = malloc(sz);
	int err;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (len == sz) {
			uint8_t *nb;

			/* room for cap + 1: a state of exactly cap bytes is
			 * accepted, one byte more is seen and refused */
			if (sz > cap) {
				err = -EFBIG;
				goto err_free;
			}
			sz = sz * 2 > cap + 1 ? cap + 1 : sz * 2;
			nb = realloc(buf, sz);
			if (!nb) {
				err = -ENOMEM;
				goto err_free;
			}
			buf = nb;
		}
		err = poll(&p, 1, STATE_IO_TIMEOUT_MS);
		if (err == 0) {
			err = -ETIMEDOUT;
			goto err_free;
		}
		if (err < 0 && errno != EINTR) {
			err = -errno;
			goto err_free;
		}
		n = read(fd, buf + len, sz - len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			err = -errno;
			goto err_free;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > cap) {
		err = -EFBIG;
		goto err_free;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;

err_free:
	free(buf);
	return err;
}

/* The device's own state through the proposed extension. */
static int device_state_save(struct vdpa_dev *dev, void **ret_buf,
			     size_t *ret_len)
{
	struct vhost_vdpa_device_state_fd a = {
		.direction = VHOST_TRANSFER_STATE_DIRECTION_SAVE,
		.phase = VHOST_TRANSFER_STATE_PHASE_STOPPED,
	};
	int pfd[2], rfd, err, err2;
	void *buf = NULL;
	size_t len = 0;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	a.fd = pfd[1];
	err = vdpa_dev_call(dev, VHOST_VDPA_SET_DEVICE_STATE_FD, &a);
	close(pfd[1]);
	if (err < 0) {
		close(pfd[0]);
		return err;
	}
	/* the device may hand back its own fd to read from */
	rfd = a.fd >= 0 ? a.fd : pfd[0];
	if (a.fd >= 0)
		close(pfd[0]);
	err = read_to_eof(rfd, VDPA_STATE_DEFAULT_CAP, &buf, &len);
	close(rfd);
	err2 = vdpa_dev_call(dev, VHOST_VDPA_CHECK_DEVICE_STATE, NULL);
	if (err < 0 || err2 < 0) {
		/* ret_* stay untouched: the caller frees nothing of ours */
		free(buf);
		vdpa_log(LOG_ERR, "%s: saving device state: %s", dev->name,
			 strerror(-(err < 0 ? err : err2)));
		return err < 0 ? err : err2;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

static int device_state_load(struct vdpa_dev *dev, const void *buf,
			     size_t len)
{
	struct vhost_vdpa_device_state_fd a = {
		.direction = VHOST_TRANSFER_STATE_DIRECTION_LOAD,
		.phase = VHOST_TRANSFER_STATE_PHASE_STOPPED,
	};
	int pfd[2], wfd, err, err2;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	a.fd = pfd[0];
	err = vdpa_dev_call(dev, VHOST_VDPA_SET_DEVICE_STATE_FD, &a);
	close(pfd[0]);
	if (err < 0) {
		close(pfd[1]);
		return err;
	}
	wfd = a.fd >= 0 ? a.fd : pfd[1];
	if (a.fd >= 0)
		close(pfd[1]);
	/* the device reads concurrently; EPIPE if it stopped reading */
	err = vdpa_write_all(wfd, buf, len);
	close(wfd);
	err2 = vdpa_dev_call(dev, VHOST_VDPA_CHECK_DEVICE_STATE, NULL);
	return err2 < 0 ? err2 : err;
}

int vdpa_state_save_device(struct vdpa_dev *dev, const struct vdpa_state *desc,
			   struct vdpa_state **ret)
{
	const struct vdpa_dev_shadow *sh;
	struct vdpa_state *s;
	uint32_t i;
	int err;

	if (!dev || !ret)
		return -EINVAL;
	sh = &dev->shadow;
	if (!(sh->backend_features & (1ULL << VHOST_BACKEND_F_SUSPEND)))
		return -EOPNOTSUPP;
	if (desc) {
		s = vdpa_state_new();
		if (!s)
			return -ENOMEM;
		memcpy(s->model, desc->model, sizeof(s->model));
		s->cfg = desc->cfg;
	} else {
		err = vdpa_state_describe(dev, &s);
		if (err < 0)
			return err;
	}
	s->has_features = true;
	s->features = sh->features;
	s->backend_features = sh->backend_features;
	err = vdpa_dev_get_status(dev, &s->status);
	if (err < 0)
		goto err_free;
	for (i = 0; i < VDPA_MAX_VQS && i < s->cfg.vq_count; i++) {
		const struct vdpa_vq_shadow *v = &sh->vq[i];
		struct vdpa_state_queue *q;

		if (!v->num_set || !v->addr_set)
			continue;
		q = &s->q[s->nqueues++];
		q->index = i;
		q->size = (uint16_t)v->num;
		q->enabled = v->enabled;
		q->desc = v->addr.desc_user_addr;
		q->avail = v->addr.avail_user_addr;
		q->used = v->addr.used_user_addr;
		err = vdpa_dev_get_vring_base(dev, i, &q->base);
		if (err < 0)
			goto err_free;
		q->used_idx = used_idx_of(dev, q->used, q->base);
	}
	if (sh->backend_features & (1ULL << VHOST_BACKEND_F_DEVICE_STATE)) {
		err = device_state_save(dev, &s->device, &s->device_len);
		if (err < 0)
			goto err_free;
		s->has_device = true;
	}
	*ret = s;
	return 0;

err_free:
	vdpa_state_free(s);
	return err;
}

__attribute__((format(printf, 3, 4)))
static void say(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errbuf || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

static int default_rings(struct vdpa_dev *dev, const struct vdpa_state *s,
			 void *opaque)
{
	uint32_t i;
	int err = 0;

	for (i = 0; i < s->nqueues && !err; i++) {
		const struct vdpa_state_queue *q = &s->q[i];
		struct vhost_vring_state num = { q->index, q->size };
		struct vhost_vring_state base = { q->index, q->base };
		struct vhost_vring_addr addr = {
			.index = q->index, .desc_user_addr = q->desc,
			.avail_user_addr = q->avail, .used_user_addr = q->used,
		};

		err = vdpa_dev_call(dev, VHOST_SET_VRING_NUM, &num);
		if (!err)
			err = vdpa_dev_call(dev, VHOST_SET_VRING_BASE, &base);
		if (!err)
			err = vdpa_dev_call(dev, VHOST_SET_VRING_ADDR, &addr);
	}
	return err;
}

/* The control queue of a net device, or UINT32_MAX. */
static uint32_t cvq_index(const struct vdpa_state *s)
{
	if (s->cfg.device_id != VIRTIO_ID_NET ||
	    !(s->features & (1ULL << VIRTIO_NET_F_CTRL_VQ)))
		return UINT32_MAX;
	return s->features & (1ULL << VIRTIO_NET_F_MQ) ?
	       2u * s->cfg.max_vqp : 2u;
}

static int enable_saved(struct vdpa_dev *dev, const struct vdpa_state *s,
			bool cvq)
{
	uint32_t i, c = cvq_index(s);
	int err;

	for (i = 0; i < s->nqueues; i++) {
		const struct vdpa_state_queue *q = &s->q[i];

		if (!q->enabled || (q->index == c) != cvq)
			continue;
		err = vdpa_dev_set_vring_enable(dev, q->index, true);
		if (err < 0)
			return err;
	}
	return 0;
}

int vdpa_state_prepare_device(struct vdpa_dev *dev, uint64_t backend_features,
			      uint64_t features)
{
	uint64_t acked;
	int err;

	if (!dev)
		return -EINVAL;
	err = vdpa_dev_set_backend_features(dev, backend_features, &acked);
	if (!err && acked != (backend_features |
			      (1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2)))
		err = -EPROTO;
	if (!err)
		err = vdpa_dev_set_features(dev, features);
	return err;
}

/* Negotiated exactly as s, FEATURES_OK and not yet DRIVER_OK? */
static bool prepared(struct vdpa_dev *dev, const struct vdpa_state *s)
{
	const struct vdpa_dev_shadow *sh = &dev->shadow;
	uint8_t st;

	if (!sh->features_set || !sh->backend_set ||
	    sh->features != s->features ||
	    sh->backend_features != (s->backend_features |
				     (1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2)))
		return false;
	if (vdpa_dev_get_status(dev, &st) < 0)
		return false;
	return (st & (VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK |
		      VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)) ==
	       VIRTIO_CONFIG_S_FEATURES_OK;
}

int vdpa_state_load_device(struct vdpa_dev *dev, const struct vdpa_state *s,
			   const struct vdpa_load_hooks *hooks, char *errbuf,
			   size_t errlen)
{
	const struct vdpa_dev_shadow *sh;
	struct vdpa_state *here = NULL;
	uint64_t offered;
	bool after_ok;
	uint32_t i;
	int err;

	if (!dev || !s || !s->has_features)
		return -EINVAL;
	/* everything that can refuse does so before the device is touched */
	if (hooks && hooks->dst_desc) {
		err = vdpa_state_compat(s, hooks->dst_desc, errbuf, errlen);
	} else {
		err = vdpa_state_describe(dev, &here);
		if (err < 0) {
			say(errbuf, errlen, "describing the destination: %s",
			    strerror(-err));
			return err;
		}
		err = vdpa_state_compat(s, here, errbuf, errlen);
		vdpa_state_free(here);
	}
	if (err < 0)
		return err;
	{
		const struct vdpa_caps *caps = NULL;

		err = dev_caps(dev, &caps);
		if (err < 0)
			return err;
		offered = caps->backend_features;
	}
	if (s->backend_features & ~offered) {
		say(errbuf, errlen, "backend features: source negotiated "
		    "0x%" PRIx64 ", destination offers 0x%" PRIx64,
		    s->backend_features, offered);
		return -EPROTO;
	}
	if (s->has_device &&
	    !(s->backend_features & (1ULL << VHOST_BACKEND_F_DEVICE_STATE))) {
		say(errbuf, errlen, "state carries device state but the "
		    "extension was not negotiated");
		return -EPROTO;
	}
	if (!prepared(dev, s)) {
		err = vdpa_state_prepare_device(dev, s->backend_features,
						s->features);
		if (err < 0) {
			say(errbuf, errlen, "negotiating features 0x%" PRIx64
			    " backend 0x%" PRIx64 ": %s", s->features,
			    s->backend_features, strerror(-err));
			goto err_reset;
		}
	}
	err = (hooks && hooks->setup_rings ? hooks->setup_rings :
	       default_rings)(dev, s, hooks ? hooks->opaque : NULL);
	if (err < 0) {
		say(errbuf, errlen, "setting up rings: %s", strerror(-err));
		goto err_reset;
	}
	/* the rings must be exactly the saved ones */
	sh = &dev->shadow;
	for (i = 0; i < s->nqueues; i++) {
		const struct vdpa_state_queue *q = &s->q[i];
		const struct vdpa_vq_shadow *v = &sh->vq[q->index];

		if (v->num != q->size || v->base != q->base ||
		    v->addr.desc_user_addr != q->desc ||
		    v->addr.avail_user_addr != q->avail ||
		    v->addr.used_user_addr != q->used) {
			say(errbuf, errlen, "queue %u: rings set up differ from "
			    "the saved ones", q->index);
			err = -EINVAL;
			goto err_reset;
		}
	}
	if (s->has_device) {
		err = device_state_load(dev, s->device, s->device_len);
		if (err < 0) {
			if (err == -ENOTCONN || err == -EPIPE)
				say(errbuf, errlen, "device went away while "
				    "loading its state: %s", strerror(-err));
			else
				say(errbuf, errlen, "device refused its "
				    "state: %s", strerror(-err));
			goto err_reset;
		}
	}
	after_ok = s->backend_features &
		   (1ULL << VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK);
	err = enable_saved(dev, s, true);
	if (!err && !after_ok)
		err = enable_saved(dev, s, false);
	if (!err)
		err = vdpa_dev_add_status(dev, VIRTIO_CONFIG_S_DRIVER_OK);
	if (!err && hooks && hooks->restore_class)
		err = hooks->restore_class(dev, s, hooks->opaque);
	if (!err && after_ok)
		err = enable_saved(dev, s, false);
	if (err < 0) {
		say(errbuf, errlen, "starting the device: %s", strerror(-err));
		goto err_reset;
	}
	return 0;

err_reset:
	vdpa_dev_reset(dev);
	return err;
}
