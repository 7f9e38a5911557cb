// SPDX-License-Identifier: MIT
/*
 * Net class state without the device-state extension: what the driver set
 * through the control queue (MAC, MAC table, queue pairs, RX mode) is
 * recorded as it goes by, and replayed on a destination through a control
 * queue the library drives, before the driver's own control queue takes
 * over (the way QEMU's shadow control queue restores it).
 */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <vdpa-user/migrate.h>
#include <vdpa-user/uapi-ext.h>
#include <vdpa-user/vq.h>

#include "device.h"
#include "log.h"
#include "netcls.h"
#include "state-int.h"

#define REPLAY_MEM_SIZE		(64u * 1024)
#define REPLAY_TIMEOUT_MS	2000
#define CMD_MAX			(2 + 2 * (4 + 6 * VDPA_STATE_MAC_TABLE_MAX))

static void prov_mac(struct vdpa_dev *dev, uint8_t mac[6])
{
	uint8_t cfg[6] = { 0 };

	if (dev->device_id == VIRTIO_ID_NET)
		dev_prov_config(dev, cfg, 6);
	memcpy(mac, cfg, 6);
}

void netcls_reset(struct vdpa_dev *dev)
{
	struct vdpa_netcls *c = &dev->netcls;

	memset(c, 0, sizeof(*c));
	c->st.queue_pairs = 1;
	/* the MAC is filled in when asked: reading it costs a request */
}

bool netcls_is_default(const struct vdpa_state_net *st, const uint8_t *mac)
{
	return !memcmp(st->mac, mac, 6) && st->queue_pairs <= 1 &&
	       !st->promisc && !st->allmulti && !st->alluni && !st->nomulti &&
	       !st->nouni && !st->nobcast && !st->n_uc && !st->n_mc;
}

/* A MAC table (struct virtio_net_ctrl_mac: le32 entries, then MACs). */
static int parse_table(const uint8_t *p, size_t len, size_t *off,
		       uint8_t (*dst)[6], uint16_t *ret_n)
{
	uint32_t n;

	if (len - *off < 4)
		return -EINVAL;
	memcpy(&n, p + *off, 4);
	n = le32toh(n);
	*off += 4;
	if (n > VDPA_STATE_MAC_TABLE_MAX)
		return -ENOTSUP;
	if ((len - *off) / 6 < n)
		return -EINVAL;
	memcpy(dst, p + *off, 6 * (size_t)n);
	*off += 6 * (size_t)n;
	*ret_n = (uint16_t)n;
	return 0;
}

int vdpa_dev_net_ctrl_record(struct vdpa_dev *dev, uint8_t cls, uint8_t cmd,
			     const void *data, size_t len)
{
	struct vdpa_netcls *c;
	const uint8_t *p = data;
	int err = -ENOTSUP;

	if (!dev || (len && !data))
		return -EINVAL;
	if (dev->device_id != VIRTIO_ID_NET)
		return -ENOTSUP;
	c = &dev->netcls;
	if (!c->changed)
		prov_mac(dev, c->st.mac);
	switch (cls) {
	case VIRTIO_NET_CTRL_MAC:
		if (cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET) {
			if (len != 6)
				return -EINVAL;
			memcpy(c->st.mac, p, 6);
			err = 0;
		} else if (cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET) {
			struct vdpa_state_net t = c->st;
			size_t off = 0;

			err = parse_table(p, len, &off, t.uc, &t.n_uc);
			if (!err)
				err = parse_table(p, len, &off, t.mc, &t.n_mc);
			if (!err && off != len)
				err = -EINVAL;
			if (!err)
				c->st = t;
		}
		break;
	case VIRTIO_NET_CTRL_MQ:
		if (cmd == VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET) {
			uint16_t v;

			if (len != 2)
				return -EINVAL;
			memcpy(&v, p, 2);
			v = le16toh(v);
			if (!v)
				return -EINVAL;
			c->st.queue_pairs = v;
			err = 0;
		}
		break;
	case VIRTIO_NET_CTRL_ANNOUNCE:
		/* the driver acknowledging an announce: no state */
		if (cmd == VIRTIO_NET_CTRL_ANNOUNCE_ACK)
			return 0;
		break;
	case VIRTIO_NET_CTRL_RX: {
		bool *b = cmd == VIRTIO_NET_CTRL_RX_PROMISC ? &c->st.promisc :
			  cmd == VIRTIO_NET_CTRL_RX_ALLMULTI ? &c->st.allmulti :
			  cmd == VIRTIO_NET_CTRL_RX_ALLUNI ? &c->st.alluni :
			  cmd == VIRTIO_NET_CTRL_RX_NOMULTI ? &c->st.nomulti :
			  cmd == VIRTIO_NET_CTRL_RX_NOUNI ? &c->st.nouni :
			  cmd == VIRTIO_NET_CTRL_RX_NOBCAST ? &c->st.nobcast :
			  NULL;

		if (!b)
			break;
		if (len != 1)
			return -EINVAL;
		*b = p[0] != 0;
		err = 0;
		break;
	}
	}
	if (err == -ENOTSUP && !c->unsupported[0])
		snprintf(c->unsupported, sizeof(c->unsupported),
			 "control-queue command class %u command %u", cls, cmd);
	if (err == -ENOTSUP)
		return err;
	if (!err)
		c->changed = true;
	return err;
}

int vdpa_dev_net_class(struct vdpa_dev *dev, struct vdpa_state_net *ret)
{
	if (!dev || !ret)
		return -EINVAL;
	if (dev->device_id != VIRTIO_ID_NET)
		return -ENOTSUP;
	if (!dev->netcls.changed)
		prov_mac(dev, dev->netcls.st.mac);
	*ret = dev->netcls.st;
	return 0;
}

const char *netcls_unsupported(const struct vdpa_dev *dev)
{
	return dev->netcls.unsupported[0] ? dev->netcls.unsupported : NULL;
}

void netcls_adopt(struct vdpa_dev *dev, const struct vdpa_state_net *st)
{
	dev->netcls.st = *st;
	dev->netcls.changed = true;
	dev->netcls.unsupported[0] = 0;
}

/* ---- replay ------------------------------------------------------------ */

struct cmd {
	uint8_t buf[CMD_MAX];
	size_t len;
	uint64_t need;		/* feature bit the command needs */
	const char *what;
};

static void put_table(struct cmd *c, uint8_t (*t)[6], uint16_t n)
{
	uint32_t le = htole32(n);

	memcpy(c->buf + c->len, &le, 4);
	memcpy(c->buf + c->len + 4, t, 6 * (size_t)n);
	c->len += 4 + 6 * (size_t)n;
}

/* The commands that bring a reset device to st; returns how many. */
static unsigned int build(const struct vdpa_state_net *st,
			  const uint8_t *mac, struct cmd *c)
{
	static const struct {
		uint8_t cmd;
		size_t off;
		const char *what;
	} rx[] = {
		{ VIRTIO_NET_CTRL_RX_PROMISC,
		  offsetof(struct vdpa_state_net, promisc), "promisc" },
		{ VIRTIO_NET_CTRL_RX_ALLMULTI,
		  offsetof(struct vdpa_state_net, allmulti), "allmulti" },
		{ VIRTIO_NET_CTRL_RX_ALLUNI,
		  offsetof(struct vdpa_state_net, alluni), "alluni" },
		{ VIRTIO_NET_CTRL_RX_NOMULTI,
		  offsetof(struct vdpa_state_net, nomulti), "nomulti" },
		{ VIRTIO_NET_CTRL_RX_NOUNI,
		  offsetof(struct vdpa_state_net, nouni), "nouni" },
		{ VIRTIO_NET_CTRL_RX_NOBCAST,
		  offsetof(struct vdpa_state_net, nobcast), "nobcast" },
	};
	unsigned int n = 0, i;

	if (memcmp(st->mac, mac, 6)) {
		c[n].buf[0] = VIRTIO_NET_CTRL_MAC;
		c[n].buf[1] = VIRTIO_NET_CTRL_MAC_ADDR_SET;
		memcpy(c[n].buf + 2, st->mac, 6);
		c[n].len = 8;
		c[n].need = VIRTIO_NET_F_CTRL_MAC_ADDR;
		c[n++].what = "MAC address";
	}
	if (st->n_uc || st->n_mc) {
		c[n].buf[0] = VIRTIO_NET_CTRL_MAC;
		c[n].buf[1] = VIRTIO_NET_CTRL_MAC_TABLE_SET;
		c[n].len = 2;
		put_table(&c[n], (uint8_t (*)[6])st->uc, st->n_uc);
		put_table(&c[n], (uint8_t (*)[6])st->mc, st->n_mc);
		c[n].need = VIRTIO_NET_F_CTRL_RX;
		c[n++].what = "MAC table";
	}
	if (st->queue_pairs > 1) {
		uint16_t le = htole16(st->queue_pairs);

		c[n].buf[0] = VIRTIO_NET_CTRL_MQ;
		c[n].buf[1] = VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET;
		memcpy(c[n].buf + 2, &le, 2);
		c[n].len = 4;
		c[n].need = VIRTIO_NET_F_MQ;
		c[n++].what = "queue pairs";
	}
	for (i = 0; i < sizeof(rx) / sizeof(rx[0]); i++) {
		if (!*(const bool *)((const uint8_t *)st + rx[i].off))
			continue;
		c[n].buf[0] = VIRTIO_NET_CTRL_RX;
		c[n].buf[1] = rx[i].cmd;
		c[n].buf[2] = 1;
		c[n].len = 3;
		c[n].need = i < 2 ? VIRTIO_NET_F_CTRL_RX :
			    VIRTIO_NET_F_CTRL_RX_EXTRA;
		c[n++].what = rx[i].what;
	}
	return n;
}

int netcls_replay_needed(struct vdpa_dev *dev, const struct vdpa_state *s)
{
	uint8_t mac[6];

	/* the device's own state carries it (in the blob, or device to
	 * device): nothing to replay */
	if (s->cfg.device_id != VIRTIO_ID_NET || !s->has_net ||
	    s->has_device ||
	    (s->backend_features & (1ULL << VHOST_BACKEND_F_DEVICE_STATE)))
		return 0;
	memcpy(mac, s->cfg.mac, 6);
	return !netcls_is_default(&s->net, mac);
}

int netcls_replay_check(struct vdpa_dev *dev, const struct vdpa_state *s,
			char *err, size_t errlen)
{
	struct cmd c[10];
	unsigned int n, i;
	uint64_t be = s->backend_features;

	if (!netcls_replay_needed(dev, s))
		return 0;
	if (state_cvq_index(s) == UINT32_MAX) {
		snprintf(err, errlen, "net class state without a control queue "
			 "to restore it through");
		return -EPROTO;
	}
	n = build(&s->net, s->cfg.mac, c);
	for (i = 0; i < n; i++) {
		if (!(s->features & (1ULL << c[i].need))) {
			snprintf(err, errlen, "net class state: %s set without "
				 "the feature (bit %llu) that carries it",
				 c[i].what, (unsigned long long)c[i].need);
			return -EPROTO;
		}
	}
	if (!(be & (1ULL << VHOST_BACKEND_F_SUSPEND)) ||
	    !(be & (1ULL << VHOST_BACKEND_F_RESUME)) ||
	    !(be & (1ULL << VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK))) {
		snprintf(err, errlen, "net class state (MAC, queue pairs, RX "
			 "mode) cannot be restored: no device-state extension, "
			 "and restoring it through a library-driven control "
			 "queue needs SUSPEND, RESUME and ENABLE_AFTER_DRIVER_OK "
			 "negotiated on both devices");
		return -EOPNOTSUPP;
	}
	return 0;
}

/* An IOVA window for the replay ring that no mapped region uses. */
static int replay_iova(struct vdpa_dev *dev, uint64_t *ret)
{
	const struct vdpa_caps *caps = NULL;
	uint64_t top, iova;
	int err, tries, i;

	err = dev_caps(dev, &caps);
	if (err < 0)
		return err;
	top = caps->iova_range.last;
	if (top - caps->iova_range.first < 2 * (uint64_t)REPLAY_MEM_SIZE)
		return -ERANGE;
	iova = ((top - REPLAY_MEM_SIZE + 1) / REPLAY_MEM_SIZE) *
	       REPLAY_MEM_SIZE;
	for (tries = 0; tries < 4096; tries++, iova -= 1ull << 30) {
		bool clash = false;

		if (iova < caps->iova_range.first ||
		    (tries && iova > top))	/* wrapped below 0 */
			break;
		for (i = 0; i < VDPA_MAX_MAPPED && !clash; i++) {
			const struct vdpa_mem *m = dev->mapped[i];
			uint64_t a;

			if (!m)
				continue;
			a = vdpa_mem_iova(m, vdpa_mem_base(m));
			clash = iova < a + vdpa_mem_size(m) &&
				a < iova + REPLAY_MEM_SIZE;
		}
		if (!clash) {
			*ret = iova;
			return 0;
		}
	}
	return -ENOSPC;
}

static int run_cmd(struct vdpa_vq *vq, struct vdpa_mem *mem,
		   const struct cmd *c)
{
	uint8_t *buf = (uint8_t *)vdpa_mem_base(mem) + 4096;
	uint8_t *ack = buf + CMD_MAX;
	struct vdpa_sg sg[2] = { { buf, (uint32_t)c->len }, { ack, 1 } };
	uint64_t tok;
	int r, waited = 0;

	memcpy(buf, c->buf, c->len);
	*ack = 0xff;
	r = vdpa_vq_add(vq, sg, 1, 1, 1);
	if (!r)
		r = vdpa_vq_kick(vq);
	while (!r) {
		r = vdpa_vq_get_used(vq, &tok, NULL);
		if (r)
			break;
		if (waited >= REPLAY_TIMEOUT_MS)
			return -ETIMEDOUT;
		vdpa_vq_wait(vq, 10);
		waited += 10;
	}
	if (r < 0)
		return r;
	return *ack == VIRTIO_NET_OK ? 0 : -EIO;
}

int netcls_replay(struct vdpa_dev *dev, const struct vdpa_state *s,
		  int kick_fd, int call_fd, char *err, size_t errlen)
{
	const struct vdpa_state_queue *q = NULL;
	uint32_t idx = state_cvq_index(s), i;
	struct vdpa_mem *mem = NULL;
	struct vdpa_vq *vq = NULL;
	struct cmd c[10];
	unsigned int n;
	uint64_t iova;
	int r;

	for (i = 0; i < s->nqueues; i++)
		if (s->q[i].index == idx)
			q = &s->q[i];
	if (!q) {
		snprintf(err, errlen, "net class state: control queue %u was "
			 "not set up by the driver", idx);
		return -EPROTO;
	}
	n = build(&s->net, s->cfg.mac, c);
	r = replay_iova(dev, &iova);
	if (!r)
		r = vdpa_mem_create(REPLAY_MEM_SIZE, iova, &mem);
	if (!r)
		r = vdpa_mem_map(dev, mem);
	if (!r)
		r = vdpa_vq_create(mem, 8, false, &vq);
	if (!r)
		r = vdpa_vq_attach(vq, dev, idx, 0);
	if (!r)
		r = vdpa_dev_set_vring_enable(dev, idx, true);
	if (r < 0) {
		snprintf(err, errlen, "net class state: setting up the "
			 "library's control queue: %s", strerror(-r));
		goto out;
	}
	for (i = 0; i < n; i++) {
		r = run_cmd(vq, mem, &c[i]);
		if (r < 0) {
			snprintf(err, errlen, "net class state: the destination "
				 "%s the %s command", r == -EIO ? "refused" :
				 "did not answer", c[i].what);
			goto out;
		}
	}
	/*
	 * Hand the control queue to the driver's ring: suspended, disabled,
	 * the driver's size, addresses, base and fds, enabled again (a new
	 * ring address takes effect at enable), resumed.
	 */
	r = vdpa_dev_suspend(dev);
	if (!r)
		r = vdpa_dev_set_vring_enable(dev, idx, false);
	if (!r)
		r = vdpa_dev_set_vring_num(dev, idx, q->size);
	if (!r)
		r = vdpa_dev_set_vring_addr(dev, idx, q->desc, q->avail,
					    q->used);
	if (!r)
		r = vdpa_dev_set_vring_base(dev, idx, q->base);
	if (!r)
		r = vdpa_dev_set_vring_kick(dev, idx, kick_fd);
	if (!r)
		r = vdpa_dev_set_vring_call(dev, idx, call_fd);
	if (!r && q->enabled)
		r = vdpa_dev_set_vring_enable(dev, idx, true);
	if (!r)
		r = vdpa_dev_resume(dev);
	if (r < 0)
		snprintf(err, errlen, "net class state: handing the control "
			 "queue to the driver: %s", strerror(-r));
	else
		netcls_adopt(dev, &s->net);
out:
	if (mem)
		vdpa_mem_unmap(dev, mem);
	vdpa_vq_destroy(vq);
	vdpa_mem_destroy(mem);
	return r;
}
