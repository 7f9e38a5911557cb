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
#include <time.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <vdpa-user/migrate.h>
#include <vdpa-user/mgmt.h>
#include <vdpa-user/pci.h>
#include <vdpa-user/state.h>
#include <vdpa-user/uapi-ext.h>

#include "device.h"
#include "io.h"
#include "log.h"
#include "netcls.h"
#include "state-int.h"
#include "state-io.h"

/*
 * The device model: pci://vvvv/dddd/ssss/ssss for a PCI parent (libpci),
 * vdpa://PARENT/CLASS for another kernel parent (vdpa://vdpasim_net/net),
 * vdpa-sim://CLASS for the simulator, with ?disk=ID for blk (what it
 * answers to VSIM_REQ_GET_MODEL: two blk simulators are only compatible
 * when they share a disk).
 */
static void model_uri(struct vdpa_dev *dev, const char *cls, char *buf,
		      size_t len)
{
	char name[64], parent[PATH_MAX], *p;
	struct vdpa_pci_identity id;

	if (!vdpa_dev_is_kernel(dev)) {
		struct vsim_model m;

		/*
		 * The simulator's own URI names its disk too (blk: two
		 * simulators share one exactly when their URIs are equal);
		 * one that predates GET_MODEL answers ENOTTY: the class.
		 */
		memset(&m, 0, sizeof(m));
		if (vdpa_dev_call(dev, VSIM_REQ_GET_MODEL, &m) == 0 &&
		    memchr(m.uri, 0, sizeof(m.uri)) &&
		    !strncmp(m.uri, "vdpa-sim://", 11) &&
		    !strncmp(m.uri + 11, cls, strlen(cls)) &&
		    (!m.uri[11 + strlen(cls)] || m.uri[11 + strlen(cls)] == '?'))
			snprintf(buf, len, "%s", m.uri);
		else
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

		/* as provisioned: the guest may have changed its MAC since */
		memset(&c, 0, sizeof(c));
		err = dev_prov_config(dev, &c, sizeof(c));
		memcpy(s->cfg.mac, c.mac, 6);
		s->cfg.mtu = c.mtu;
		s->cfg.max_vqp = c.max_virtqueue_pairs ? c.max_virtqueue_pairs : 1;
		model_uri(dev, "net", s->model, sizeof(s->model));
	} else if (caps.device_id == VIRTIO_ID_BLOCK) {
		struct virtio_blk_config c;

		memset(&c, 0, sizeof(c));
		err = dev_prov_config(dev, &c, 24 + 4);
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

void state_queues_from_shadow(struct vdpa_dev *dev, struct vdpa_state *s)
{
	const struct vdpa_dev_shadow *sh = &dev->shadow;
	uint32_t i;

	s->nqueues = 0;
	for (i = 0; i < VDPA_MAX_VQS && i < s->cfg.vq_count; i++) {
		const struct vdpa_vq_shadow *v = &sh->vq[i];
		struct vdpa_state_queue *q;

		if (!v->num_set || !v->addr_set)
			continue;
		q = &s->q[s->nqueues++];
		memset(q, 0, sizeof(*q));
		q->index = i;
		q->size = (uint16_t)v->num;
		q->enabled = v->enabled;
		q->desc = v->addr.desc_user_addr;
		q->avail = v->addr.avail_user_addr;
		q->used = v->addr.used_user_addr;
	}
}

int vdpa_state_save_device(struct vdpa_dev *dev, const struct vdpa_state *desc,
			   struct vdpa_state **ret)
{
	return state_save(dev, desc, true, VDPA_STATE_DEFAULT_CAP, ret);
}

int state_save(struct vdpa_dev *dev, const struct vdpa_state *desc,
	       bool with_device, size_t cap, struct vdpa_state **ret)
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
	state_queues_from_shadow(dev, s);
	for (i = 0; i < s->nqueues; i++) {
		struct vdpa_state_queue *q = &s->q[i];

		err = vdpa_dev_get_vring_base(dev, q->index, &q->base);
		if (err < 0)
			goto err_free;
		q->used_idx = used_idx_of(dev, q->used, q->base);
	}
	/* what the driver set through the control queue, as recorded */
	if (s->cfg.device_id == VIRTIO_ID_NET &&
	    (s->features & (1ULL << VIRTIO_NET_F_CTRL_VQ))) {
		err = vdpa_dev_net_class(dev, &s->net);
		if (err < 0)
			goto err_free;
		s->has_net = true;
	}
	if (with_device &&
	    (sh->backend_features & (1ULL << VHOST_BACKEND_F_DEVICE_STATE))) {
		err = state_io_save(dev, cap, &s->device, &s->device_len);
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

uint32_t state_cvq_index(const struct vdpa_state *s)
{
	if (s->cfg.device_id != VIRTIO_ID_NET ||
	    !(s->features & (1ULL << VIRTIO_NET_F_CTRL_VQ)))
		return UINT32_MAX;
	return s->features & (1ULL << VIRTIO_NET_F_MQ) ?
	       2u * s->cfg.max_vqp : 2u;
}

static int fd_of(const int *fds, uint32_t idx)
{
	return fds && idx < VDPA_STATE_MAX_QUEUES ? fds[idx] : -1;
}

/*
 * The saved rings, with the caller's fds: NUM and ADDR only where the
 * device does not have them already (set while the source ran). The
 * control queue is left for the class-state replay when there is one.
 */
static int default_rings(struct vdpa_dev *dev, const struct vdpa_state *s,
			 const struct vdpa_load_hooks *h, uint32_t skip)
{
	uint32_t i;
	int err = 0;

	for (i = 0; i < s->nqueues && !err; i++) {
		const struct vdpa_state_queue *q = &s->q[i];
		int kick = fd_of(h ? h->kick_fds : NULL, q->index);
		int call = fd_of(h ? h->call_fds : NULL, q->index);
		struct vhost_vring_addr a = {
			.index = q->index, .desc_user_addr = q->desc,
			.avail_user_addr = q->avail, .used_user_addr = q->used,
		};

		if (q->index == skip)
			continue;
		err = dev_place_ring(dev, q->size, &a);
		if (!err)
			err = vdpa_dev_set_vring_base(dev, q->index, q->base);
		if (!err && kick >= 0)
			err = vdpa_dev_set_vring_kick(dev, q->index, kick);
		if (!err && call >= 0)
			err = vdpa_dev_set_vring_call(dev, q->index, call);
	}
	return err;
}

void state_kick_fds(const struct vdpa_state *s, const int *fds)
{
	uint64_t one = 1;
	uint32_t i;

	for (i = 0; fds && i < s->nqueues; i++) {
		int fd = fd_of(fds, s->q[i].index);

		if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
			/* a full eventfd counter already wakes the device */
		}
	}
}

static int enable_saved(struct vdpa_dev *dev, const struct vdpa_state *s,
			bool cvq, uint32_t skip)
{
	uint32_t i, c = state_cvq_index(s);
	int err;

	for (i = 0; i < s->nqueues; i++) {
		const struct vdpa_state_queue *q = &s->q[i];

		if (!q->enabled || (q->index == c) != cvq || q->index == skip)
			continue;
		err = vdpa_dev_set_vring_enable(dev, q->index, true);
		if (err < 0)
			return err;
	}
	return 0;
}

/* DRIVER_OK read back: set, and neither NEEDS_RESET nor FAILED. */
static int started(struct vdpa_dev *dev, char *errbuf, size_t errlen)
{
	uint8_t st;
	int err = vdpa_dev_get_status(dev, &st);

	if (err < 0) {
		vdpa_say(errbuf, errlen, "reading the status back: %s",
		    strerror(-err));
		return err;
	}
	if (!(st & VIRTIO_CONFIG_S_DRIVER_OK) ||
	    (st & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED))) {
		vdpa_say(errbuf, errlen, "the device did not start: status 0x%02x "
		    "after DRIVER_OK%s", st,
		    st & VIRTIO_CONFIG_S_NEEDS_RESET ? " (NEEDS_RESET)" :
		    st & VIRTIO_CONFIG_S_FAILED ? " (FAILED)" :
		    " (DRIVER_OK did not stick)");
		return -EIO;
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
	return state_load_ext(dev, s, hooks, NULL, errbuf, errlen);
}

int state_load_ext(struct vdpa_dev *dev, const struct vdpa_state *s,
		   const struct vdpa_load_hooks *hooks, struct load_ext *x,
		   char *errbuf, size_t errlen)
{
	const struct vdpa_dev_shadow *sh;
	bool after_ok, replay;
	uint32_t i, skip;
	int err;

	/*
	 * Everything that can refuse does so before the device is touched,
	 * with the verdict of vdpa_state_check_load() (state-check.c).
	 */
	err = state_check_dev(dev, s, hooks ? hooks->dst_desc : NULL, NULL,
			      errbuf, errlen);
	if (err < 0)
		return err;
	/*
	 * Class state the device's own state does not carry, and no driver
	 * to replay it: the library replays it through a control queue of
	 * its own, which the driver's ring replaces afterwards.
	 */
	replay = !(hooks && hooks->restore_class) &&
		 !(x && x->device_from) && netcls_replay_needed(dev, s);
	if (replay) {
		err = netcls_replay_check(dev, s, errbuf, errlen);
		if (err < 0)
			return err;
	}
	if (!prepared(dev, s)) {
		err = vdpa_state_prepare_device(dev, s->backend_features,
						s->features);
		if (err < 0) {
			vdpa_say(errbuf, errlen, "negotiating features 0x%" PRIx64
			    " backend 0x%" PRIx64 ": %s", s->features,
			    s->backend_features, strerror(-err));
			goto err_reset;
		}
	}
	skip = replay ? state_cvq_index(s) : UINT32_MAX;
	err = hooks && hooks->setup_rings ?
	      hooks->setup_rings(dev, s, hooks->opaque) :
	      default_rings(dev, s, hooks, skip);
	if (err < 0) {
		vdpa_say(errbuf, errlen, "setting up rings: %s", strerror(-err));
		goto err_reset;
	}
	/* the rings must be exactly the saved ones */
	sh = &dev->shadow;
	for (i = 0; i < s->nqueues; i++) {
		const struct vdpa_state_queue *q = &s->q[i];
		const struct vdpa_vq_shadow *v = &sh->vq[q->index];

		if (q->index == skip)
			continue;
		if (v->num != q->size || v->base != q->base ||
		    v->addr.desc_user_addr != q->desc ||
		    v->addr.avail_user_addr != q->avail ||
		    v->addr.used_user_addr != q->used) {
			vdpa_say(errbuf, errlen, "queue %u: rings set up differ from "
			    "the saved ones", q->index);
			err = -EINVAL;
			goto err_reset;
		}
	}
	if (s->has_device || (x && x->device_from)) {
		err = x && x->device_from ?
		      state_io_direct(x->device_from, dev, x->device_cap,
				      &x->device_len) :
		      state_io_load(dev, s->device, s->device_len);
		if (err < 0) {
			if (err == -ENOTCONN || err == -EPIPE)
				vdpa_say(errbuf, errlen, "device went away while "
				    "loading its state: %s", strerror(-err));
			else
				vdpa_say(errbuf, errlen, "device refused its "
				    "state: %s", strerror(-err));
			goto err_reset;
		}
	}
	after_ok = s->backend_features &
		   (1ULL << VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK);
	err = enable_saved(dev, s, true, skip);
	if (!err && !after_ok)
		err = enable_saved(dev, s, false, skip);
	if (x)
		x->start_ns = vdpa_now_ns();
	if (err < 0) {
		vdpa_say(errbuf, errlen, "enabling the queues: %s", strerror(-err));
		goto err_reset;
	}
	err = vdpa_dev_add_status(dev, VIRTIO_CONFIG_S_DRIVER_OK);
	if (err < 0)
		vdpa_say(errbuf, errlen, "setting DRIVER_OK: %s", strerror(-err));
	else
		err = started(dev, errbuf, errlen);
	if (err < 0)
		goto err_reset;
	if (hooks && hooks->restore_class) {
		err = hooks->restore_class(dev, s, hooks->opaque);
		if (err > 0)
			err = 0;
		if (err < 0)
			vdpa_say(errbuf, errlen, "restoring class state: %s",
			    strerror(-err));
	} else if (replay) {
		err = netcls_replay(dev, s, fd_of(hooks ? hooks->kick_fds : NULL,
						  skip),
				    fd_of(hooks ? hooks->call_fds : NULL, skip),
				    errbuf, errlen);
	}
	if (!err && after_ok) {
		err = enable_saved(dev, s, false, UINT32_MAX);
		if (err < 0)
			vdpa_say(errbuf, errlen, "enabling the queues: %s",
			    strerror(-err));
	}
	/* the device may have given up on something it was handed */
	if (!err)
		err = started(dev, errbuf, errlen);
	if (err < 0)
		goto err_reset;
	if (s->has_net)
		netcls_adopt(dev, &s->net);
	state_kick_fds(s, hooks ? hooks->kick_fds : NULL);
	return 0;

err_reset:
	/*
	 * A failed destination lets go of the guest's eventfds: a reset
	 * device may keep polling its kick fds, stealing the kicks of the
	 * source that runs on with them.
	 */
	for (i = 0; hooks && i < s->nqueues; i++) {
		if (fd_of(hooks->kick_fds, s->q[i].index) >= 0)
			vdpa_dev_set_vring_kick(dev, s->q[i].index, -1);
		if (fd_of(hooks->call_fds, s->q[i].index) >= 0)
			vdpa_dev_set_vring_call(dev, s->q[i].index, -1);
	}
	vdpa_dev_reset(dev);
	return err;
}
