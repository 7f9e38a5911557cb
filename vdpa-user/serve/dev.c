// SPDX-License-Identifier: MIT
/*
 * The device side of `vdpa-user serve`: opening the vDPA device, starting
 * it when the front-end's rings are ready (vhost-user has no DRIVER_OK
 * message without the STATUS protocol feature), stopping it for
 * GET_VRING_BASE, resetting it between front-ends.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>

#include <vdpa-user/uapi-ext.h>

#include "devopen.h"
#include "serve.h"

/*
 * Net features that need the control queue: in vhost-user the front-end
 * (QEMU) owns the guest's control queue and never hands it to the
 * back-end, so the device is driven without one.
 */
#define NET_CVQ_FEATURES						\
	((1ULL << VIRTIO_NET_F_CTRL_VQ) | (1ULL << VIRTIO_NET_F_CTRL_RX) | \
	 (1ULL << VIRTIO_NET_F_CTRL_VLAN) |				\
	 (1ULL << VIRTIO_NET_F_CTRL_RX_EXTRA) |				\
	 (1ULL << VIRTIO_NET_F_GUEST_ANNOUNCE) | (1ULL << VIRTIO_NET_F_MQ) | \
	 (1ULL << VIRTIO_NET_F_CTRL_MAC_ADDR) |				\
	 (1ULL << VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) |			\
	 (1ULL << VIRTIO_NET_F_NOTF_COAL) | (1ULL << VIRTIO_NET_F_RSS) |	\
	 (1ULL << VIRTIO_NET_F_HASH_REPORT))

int srv_dev_init(struct srv *s, const char *name, char *err, size_t errlen)
{
	uint64_t want;
	int r;

	/* /dev/vhost-vdpa-N, sim:PATH or a vdpa device name, as every command */
	r = cli_dev_open_msg(name, &s->dev, err, errlen);
	if (r < 0)
		return r;
	r = vdpa_dev_get_caps(s->dev, &s->caps);
	if (r < 0) {
		snprintf(err, errlen, "%s: capabilities: %s", name,
			 strerror(-r));
		return r;
	}
	if (s->caps.device_id != VIRTIO_ID_NET &&
	    s->caps.device_id != VIRTIO_ID_BLOCK) {
		snprintf(err, errlen, "%s: device id %u: only net and blk are "
			 "served", name, s->caps.device_id);
		return -EOPNOTSUPP;
	}
	want = (1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2) |
	       (1ULL << VHOST_BACKEND_F_IOTLB_BATCH) |
	       (1ULL << VHOST_BACKEND_F_SUSPEND) |
	       (1ULL << VHOST_BACKEND_F_RESUME) |
	       (1ULL << VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK) |
	       (1ULL << VHOST_BACKEND_F_DEVICE_STATE);
	r = vdpa_dev_set_backend_features(s->dev, want, &s->backend_acked);
	if (r < 0) {
		snprintf(err, errlen, "%s: backend features: %s", name,
			 strerror(-r));
		return r;
	}
	/* the configuration migrations are checked against, before any start */
	r = vdpa_state_describe(s->dev, &s->desc);
	if (r < 0) {
		snprintf(err, errlen, "%s: description: %s", name,
			 strerror(-r));
		return r;
	}
	s->offered = s->caps.features & ~(1ULL << VIRTIO_F_ACCESS_PLATFORM);
	if (s->caps.device_id == VIRTIO_ID_NET) {
		s->offered &= ~NET_CVQ_FEATURES;
		/* one queue pair: more need the control queue's VQ_PAIRS_SET */
		s->nvqs = 2;
	} else {
		s->nvqs = s->caps.vq_count;
	}
	if (s->nvqs > SERVE_MAX_VQS)
		s->nvqs = SERVE_MAX_VQS;
	s->offered |= 1ULL << VU_F_PROTOCOL_FEATURES;
	s->proto_offered = (1ULL << VU_PF_MQ) | (1ULL << VU_PF_REPLY_ACK) |
			   (1ULL << VU_PF_CONFIG) | (1ULL << VU_PF_RESET_DEVICE) |
			   (1ULL << VU_PF_DEVICE_STATE);
	/* PROPOSAL: pre-copy only where the device has it (precopy.c) */
	if (srv_precopy_offered(s))
		s->proto_offered |= 1ULL << VU_PF_DEVICE_STATE_PRECOPY;
	if (srv_relay_possible(s, err, errlen)) {
		s->offered |= 1ULL << VU_F_LOG_ALL;
		s->proto_offered |= 1ULL << VU_PF_LOG_SHMFD;
	} else {
		srv_log(LOG_WARNING, "dirty logging (VHOST_F_LOG_ALL) not "
			"offered: %s; front-ends cannot live-migrate this "
			"device", err);
		err[0] = '\0';
	}
	srv_log(LOG_INFO, "%s: %s device, features 0x%" PRIx64 " offered "
		"0x%" PRIx64 ", backend 0x%" PRIx64 ", %u rings of up to %u",
		name, s->caps.device_id == VIRTIO_ID_NET ? "net" : "blk",
		s->caps.features, s->offered, s->backend_acked, s->nvqs,
		s->caps.vq_max_size);
	return 0;
}

static uint64_t device_features(const struct srv *s)
{
	uint64_t f = s->features & ~((1ULL << VU_F_PROTOCOL_FEATURES) |
				     (1ULL << VU_F_LOG_ALL));

	/* guest memory is in the IOTLB at IOVA == GPA */
	if (s->caps.features & (1ULL << VIRTIO_F_ACCESS_PLATFORM))
		f |= 1ULL << VIRTIO_F_ACCESS_PLATFORM;
	return f;
}

static bool vq_configured(const struct srv_vq *v)
{
	return v->num_set && v->addr_set;
}

/* used->idx as the guest's memory has it now */
static uint16_t used_idx(const struct srv *s, const struct srv_vq *v)
{
	const uint16_t *p = srv_gpa_host(s, v->used_gpa + 2, 2);

	return p ? __atomic_load_n(p, __ATOMIC_ACQUIRE) : v->base;
}

static int start_fresh(struct srv *s, char *err, size_t errlen)
{
	uint64_t f = device_features(s);
	uint32_t i;
	int r;

	r = vdpa_dev_set_features(s->dev, f);
	if (r < 0) {
		snprintf(err, errlen, "features 0x%" PRIx64 ": %s", f,
			 strerror(-r));
		return r;
	}
	for (i = 0; i < s->nvqs; i++) {
		struct srv_vq *v = &s->vq[i];

		if (!vq_configured(v))
			continue;
		r = vdpa_dev_set_vring_num(s->dev, i, (uint16_t)v->num);
		if (!r)
			r = vdpa_dev_set_vring_addr(s->dev, i, v->desc_gpa,
						    v->avail_gpa, v->used_gpa);
		if (!r)
			r = vdpa_dev_set_vring_base(s->dev, i, v->base);
		if (!r && v->kick_fd >= 0)
			r = vdpa_dev_set_vring_kick(s->dev, i, v->kick_fd);
		if (!r && v->call_fd >= 0)
			r = vdpa_dev_set_vring_call(s->dev, i, v->call_fd);
		if (!r && v->enabled)
			r = vdpa_dev_set_vring_enable(s->dev, i, true);
		if (r < 0) {
			snprintf(err, errlen, "ring %u: %s", i, strerror(-r));
			return r;
		}
	}
	r = vdpa_dev_add_status(s->dev, VIRTIO_CONFIG_S_DRIVER_OK);
	if (r < 0)
		snprintf(err, errlen, "DRIVER_OK: %s", strerror(-r));
	return r;
}

/* A state from SET_DEVICE_STATE_FD (LOAD), with the front-end's rings. */
static int start_loaded(struct srv *s, char *err, size_t errlen)
{
	struct vdpa_state *st = s->loaded;
	int kick[VDPA_STATE_MAX_QUEUES], call[VDPA_STATE_MAX_QUEUES];
	struct vdpa_load_hooks h = {
		.dst_desc = s->desc, .kick_fds = kick, .call_fds = call,
	};
	uint32_t i;
	int r;

	if (st->features != device_features(s))
		srv_log(LOG_NOTICE, "loaded state: source features 0x%" PRIx64
			", this front-end's 0x%" PRIx64 ": the front-end's are "
			"used", st->features, device_features(s));
	st->features = device_features(s);
	/* negotiated before the rounds: loading must not reset them away */
	if (s->pc_dst)
		st->backend_features = s->backend_acked;
	st->nqueues = 0;
	for (i = 0; i < VDPA_STATE_MAX_QUEUES; i++)
		kick[i] = call[i] = -1;
	for (i = 0; i < s->nvqs; i++) {
		const struct srv_vq *v = &s->vq[i];
		struct vdpa_state_queue *q;

		if (!vq_configured(v))
			continue;
		q = &st->q[st->nqueues++];
		memset(q, 0, sizeof(*q));
		q->index = i;
		q->size = (uint16_t)v->num;
		q->base = v->base;
		q->used_idx = used_idx(s, v);
		q->enabled = v->enabled;
		q->desc = v->desc_gpa;
		q->avail = v->avail_gpa;
		q->used = v->used_gpa;
		kick[i] = v->kick_fd;
		call[i] = v->call_fd;
	}
	r = vdpa_state_load_device(s->dev, st, &h, err, errlen);
	if (!r)
		srv_log(LOG_NOTICE, "device started from the loaded state "
			"(%u rings%s)", st->nqueues,
			st->has_device ? ", the device's own state" : "");
	return r;
}

/* A destination's pre-copy rounds go into a negotiated device. */
int srv_dev_prepare_rounds(struct srv *s, char *err, size_t errlen)
{
	int r = vdpa_state_prepare_device(s->dev, s->backend_acked,
					  device_features(s));

	if (r < 0)
		snprintf(err, errlen, "negotiating features 0x%" PRIx64
			 " before the rounds: %s", device_features(s),
			 strerror(-r));
	return r;
}

int srv_dev_start(struct srv *s, char *err, size_t errlen)
{
	int r;

	if (s->loaded && s->loaded->has_features)
		r = start_loaded(s, err, errlen);
	else
		r = start_fresh(s, err, errlen);
	if (s->loaded) {
		vdpa_state_free(s->loaded);
		s->loaded = NULL;
	}
	if (r < 0) {
		vdpa_dev_reset(s->dev);
		return r;
	}
	s->started = true;
	s->suspended = false;
	s->device_reset = false;
	srv_log(LOG_INFO, "device started (DRIVER_OK)");
	return 0;
}

/*
 * Stop for GET_VRING_BASE: SUSPEND, or a reset where the device has none
 * (its ring indexes are then read first, while it may still move). The
 * bases of every ring are read here, once.
 */
int srv_dev_stop(struct srv *s, char *err, size_t errlen)
{
	bool can = s->backend_acked & (1ULL << VHOST_BACKEND_F_SUSPEND);
	uint32_t i;
	int r = 0;

	if (can) {
		r = vdpa_dev_suspend(s->dev);
		if (r < 0) {
			snprintf(err, errlen, "SUSPEND: %s", strerror(-r));
			return r;
		}
	} else {
		srv_log(LOG_WARNING, "device without SUSPEND: reading the ring "
			"indexes of a running device, then resetting it");
	}
	for (i = 0; i < s->nvqs; i++) {
		struct srv_vq *v = &s->vq[i];
		uint16_t b;

		if (!vq_configured(v))
			continue;
		r = vdpa_dev_get_vring_base(s->dev, i, &b);
		if (r < 0) {
			snprintf(err, errlen, "ring %u: GET_VRING_BASE: %s", i,
				 strerror(-r));
			break;
		}
		v->base = b;
	}
	if (!can) {
		vdpa_dev_reset(s->dev);
		s->device_reset = true;
	}
	if (!s->device_reset)
		srv_dev_release_kicks(s);
	s->suspended = true;
	return r;
}

/*
 * A suspended device does not need the kicks, and one that polls them
 * would take them from whoever runs the ring next (a migration
 * destination handed the same eventfds).
 */
void srv_dev_release_kicks(struct srv *s)
{
	uint32_t i;

	for (i = 0; i < s->nvqs; i++)
		if (vq_configured(&s->vq[i]) && s->vq[i].kick_fd >= 0)
			vdpa_dev_set_vring_kick(s->dev, i, -1);
}

void srv_dev_reset(struct srv *s)
{
	uint32_t i;

	for (i = 0; i < s->nvqs; i++) {
		const struct srv_vq *v = &s->vq[i];

		if (v->kick_fd >= 0)
			vdpa_dev_set_vring_kick(s->dev, i, -1);
		if (v->call_fd >= 0)
			vdpa_dev_set_vring_call(s->dev, i, -1);
	}
	srv_precopy_free(s);	/* a reset ends a pre-copy, both sides */
	vdpa_dev_reset(s->dev);
	vdpa_state_free(s->stop_state);
	s->stop_state = NULL;
	s->started = false;
	s->suspended = false;
	s->device_reset = false;
}
