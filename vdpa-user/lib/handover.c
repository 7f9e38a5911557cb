// SPDX-License-Identifier: MIT
/*
 * Live update (docs/live-update.md): an open device moves to another
 * process over a unix socket. The record (what the library knows about
 * the device) travels with the descriptors in SCM_RIGHTS; the new process
 * checks all of it before it keeps anything.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/kcmp.h>
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <vdpa-user/handover.h>
#include <vdpa-user/state.h>
#include <vdpa-user/uapi-ext.h>

#include "crc32c.h"
#include "device.h"
#include "log.h"

#define HO_MAGIC	0x4f484456u	/* "VDHO" */
#define HO_VERSION	1u
#define HO_CHUNK	(60u << 10)	/* datagram size: fits the default sndbuf */
#define HO_MAX_FDS	(1 + VDPA_HANDOVER_MAX_MEM + 2 * VDPA_HANDOVER_MAX_VQS)
#define HO_MAX_STATE	(256ull << 20)

#define HO_F_DEV_FD	1u	/* the device's fd is attached (new-owner) */

/* Host byte order: a record never leaves the host. */
struct ho_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t hdr_len;
	uint32_t crc;		/* CRC-32C of the record, this field 0 */
	uint32_t path;
	uint64_t total_len;
	uint32_t nfds;
	uint32_t nmem;
	uint32_t nvq;
	uint32_t flags;
	uint64_t t_suspend_ns;	/* CLOCK_MONOTONIC: same host */
	uint64_t state_len;	/* fallback: the vdpa_state blob */
	uint64_t app_len;
};

struct ho_dev {
	char name[256];
	uint32_t device_id;
	uint32_t prov_config_len;
	uint64_t features, backend_features;
	uint8_t status, features_set, backend_set, prov_valid;
	uint8_t driver_ok_seen, net_changed, kernel, pad;
	uint8_t prov_config[VDPA_PROV_CONFIG_MAX];
	/* net class state (struct vdpa_state_net), bools as bytes */
	uint8_t mac[6];
	uint16_t queue_pairs;
	uint8_t rx[6];		/* promisc allmulti alluni nomulti nouni nobcast */
	uint16_t n_uc, n_mc;
	uint8_t uc[VDPA_STATE_MAC_TABLE_MAX][6];
	uint8_t mc[VDPA_STATE_MAC_TABLE_MAX][6];
	char unsupported[96];
	char reason[192];	/* why the old process took this path */
};

struct ho_vq {
	uint32_t index, num;
	uint16_t base, pad;
	uint8_t enabled, num_set, addr_set, base_set, kick, call, pad2[2];
	uint64_t desc, avail, used;
};

struct ho_mem {
	uint64_t iova, size, uaddr, used;
};

/*
 * After the record: the new process says READY (or REFUSED); only then
 * the old one suspends and says GO (with the fallback's saved state
 * after it, len bytes, CRC-32C crc); the new one answers TAKEN or FAILED.
 */
enum { HO_READY = 1, HO_REFUSED, HO_TAKEN, HO_FAILED, HO_GO, HO_ABORT };

struct ho_ctl {
	uint32_t magic;
	uint32_t type;
	int32_t err;
	uint32_t crc;		/* GO: of the state that follows */
	uint64_t t_ns;		/* GO: suspended at; TAKEN: pause */
	uint64_t len;		/* GO: bytes of state that follow */
	char reason[192];
};

struct vdpa_handover_in {
	int sock;
	int timeout_ms;
	struct vdpa_handover_info info;
	struct ho_hdr h;
	struct ho_dev d;
	struct ho_vq vq[VDPA_HANDOVER_MAX_VQS];
	struct ho_mem m[VDPA_HANDOVER_MAX_MEM];
	int dev_fd;
	struct vdpa_mem *mem[VDPA_HANDOVER_MAX_MEM];
	int kick[VDPA_HANDOVER_MAX_VQS], call[VDPA_HANDOVER_MAX_VQS];
	struct vdpa_state *state;
	void *app;
	struct vdpa_dev *dev;
	bool answered;
};

const char *vdpa_handover_path_name(enum vdpa_handover_path p)
{
	switch (p) {
	case VDPA_HANDOVER_NEW_OWNER:
		return "new-owner";
	case VDPA_HANDOVER_FALLBACK:
		return "fallback";
	default:
		return "none";
	}
}

static bool reopenable(const char *name)
{
	return !strncmp(name, "/dev/", 5) || !strncmp(name, "sim:", 4);
}

int vdpa_handover_choose(struct vdpa_dev *dev, struct vdpa_handover_info *ret)
{
	const struct vdpa_caps *caps = NULL;
	struct vdpa_handover_info i = { .path = VDPA_HANDOVER_NONE };
	uint64_t neg;
	int err;

	if (!dev || !ret)
		return -EINVAL;
	err = dev_caps(dev, &caps);
	if (err < 0)
		return err;
	neg = dev->shadow.backend_features;
#define OFFERS(b) (caps->backend_features & (1ULL << (b)))
#define NEG(b) (neg & (1ULL << (b)))
	if (OFFERS(VHOST_BACKEND_F_NEW_OWNER) &&
	    OFFERS(VHOST_BACKEND_F_IOTLB_REMAP) &&
	    NEG(VHOST_BACKEND_F_SUSPEND) && NEG(VHOST_BACKEND_F_RESUME)) {
		i.path = VDPA_HANDOVER_NEW_OWNER;
		snprintf(i.reason, sizeof(i.reason), "the device offers "
			 "NEW_OWNER and IOTLB_REMAP (backend bits 9, 10) and "
			 "SUSPEND/RESUME were negotiated: the open fd moves");
	} else if (!NEG(VHOST_BACKEND_F_SUSPEND)) {
		snprintf(i.reason, sizeof(i.reason), "SUSPEND was not "
			 "negotiated: the device cannot be stopped to move it");
	} else if (!reopenable(dev->name)) {
		snprintf(i.reason, sizeof(i.reason), "%s cannot be opened "
			 "by another process (an inherited socket) and the "
			 "device does not offer NEW_OWNER", dev->name);
	} else {
		i.path = VDPA_HANDOVER_FALLBACK;
		snprintf(i.reason, sizeof(i.reason), "%s", 
			 !OFFERS(VHOST_BACKEND_F_NEW_OWNER) ?
			 "the device does not offer NEW_OWNER (backend bit 9): "
			 "another process gets EPERM for rings and IOTLB, so "
			 "suspend, save, reset, load" :
			 !OFFERS(VHOST_BACKEND_F_IOTLB_REMAP) ?
			 "the device offers NEW_OWNER without IOTLB_REMAP: the "
			 "mappings cannot follow the new addresses" :
			 "RESUME was not negotiated: the device cannot continue "
			 "where it stopped without a reset");
	}
#undef OFFERS
#undef NEG
	*ret = i;
	return i.path == VDPA_HANDOVER_NONE ? -EOPNOTSUPP : 0;
}

/* ---- socket ------------------------------------------------------------- */

static int wait_in(int sock, int timeout_ms)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int r;

	do {
		r = poll(&p, 1, timeout_ms < 0 ? -1 : timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r ? 0 : -ETIMEDOUT;
}

static int send_chunk(int sock, const void *buf, size_t len, const int *fds,
		      unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * HO_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec v = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };
	struct cmsghdr *c;
	ssize_t n;

	if (nfds) {
		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	do {
		n = sendmsg(sock, &m, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ECONNRESET ? -EPIPE : -errno;
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

static void close_all(const int *fds, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/*
 * One datagram; fds received are stored in fds (at most max, counted in
 * *nfds; more, or truncated control data, is -EBADMSG with every one of
 * them closed). Returns the byte count, -EPIPE on EOF.
 */
static ssize_t recv_chunk(int sock, void *buf, size_t len, int *fds,
			  unsigned int max, unsigned int *nfds, int timeout_ms)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * (HO_MAX_FDS + 8))];
		struct cmsghdr align;
	} u;
	struct iovec v = { buf, len };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf) };
	unsigned int got = 0, i, k;
	struct cmsghdr *c;
	bool bad = false;
	ssize_t n;
	int err, fd;

	err = wait_in(sock, timeout_ms);
	if (err < 0)
		return err;
	do {
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ECONNRESET ? -EPIPE : -errno;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			bad = true;
			continue;
		}
		k = (unsigned int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (i = 0; i < k; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (got < max)
				fds[got] = fd;
			else {
				close(fd);
				bad = true;
			}
			got++;
		}
	}
	if (bad || (m.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
		close_all(fds, got < max ? got : max);
		return -EBADMSG;
	}
	*nfds = got;
	if (n == 0 && !got)
		return -EPIPE;
	return n;
}

static int send_ctl(int sock, uint32_t type, int err, uint64_t t_ns,
		    const char *reason)
{
	struct ho_ctl c = { .magic = HO_MAGIC, .type = type, .err = err,
			    .t_ns = t_ns };

	if (reason)
		snprintf(c.reason, sizeof(c.reason), "%s", reason);
	return send_chunk(sock, &c, sizeof(c), NULL, 0);
}

/* The next control message; anything else is -EBADMSG. */
static int recv_ctl(int sock, int timeout_ms, struct ho_ctl *c)
{
	unsigned int nfds = 0;
	ssize_t n;

	n = recv_chunk(sock, c, sizeof(*c), NULL, 0, &nfds, timeout_ms);
	if (n < 0)
		return (int)n;
	if ((size_t)n != sizeof(*c) || c->magic != HO_MAGIC || nfds)
		return -EBADMSG;
	c->reason[sizeof(c->reason) - 1] = 0;
	return 0;
}

/* ---- old process -------------------------------------------------------- */

struct ho_out {
	struct ho_hdr h;
	struct ho_dev d;
	struct ho_vq vq[VDPA_HANDOVER_MAX_VQS];
	struct ho_mem m[VDPA_HANDOVER_MAX_MEM];
	int fds[HO_MAX_FDS];
	unsigned int nfds;
	void *state;
	size_t state_len;
};

static void fill_dev(struct ho_dev *d, struct vdpa_dev *dev)
{
	const struct vdpa_dev_shadow *sh = &dev->shadow;
	const struct vdpa_state_net *n = &dev->netcls.st;

	snprintf(d->name, sizeof(d->name), "%s", dev->name);
	d->device_id = dev->device_id;
	d->kernel = dev->ops == &kernel_transport;
	d->features = sh->features;
	d->backend_features = sh->backend_features;
	d->features_set = sh->features_set;
	d->backend_set = sh->backend_set;
	d->status = sh->status;
	d->driver_ok_seen = sh->driver_ok_seen;
	d->prov_valid = dev->prov_valid;
	d->prov_config_len = dev->prov_config_len;
	memcpy(d->prov_config, dev->prov_config, sizeof(d->prov_config));
	memcpy(d->mac, n->mac, 6);
	d->queue_pairs = n->queue_pairs;
	d->rx[0] = n->promisc;
	d->rx[1] = n->allmulti;
	d->rx[2] = n->alluni;
	d->rx[3] = n->nomulti;
	d->rx[4] = n->nouni;
	d->rx[5] = n->nobcast;
	d->n_uc = n->n_uc;
	d->n_mc = n->n_mc;
	memcpy(d->uc, n->uc, sizeof(d->uc));
	memcpy(d->mc, n->mc, sizeof(d->mc));
	d->net_changed = dev->netcls.changed;
	snprintf(d->unsupported, sizeof(d->unsupported), "%s",
		 dev->netcls.unsupported);
}

/*
 * Rings as the library set them (the device keeps its own positions; the
 * fallback's saved state carries them), fds in the record.
 */
static void fill_vqs(struct ho_out *o, struct vdpa_dev *dev)
{
	unsigned int i, n = 0;

	for (i = 0; i < VDPA_MAX_VQS; i++) {
		const struct vdpa_vq_shadow *v = &dev->shadow.vq[i];
		struct ho_vq *q;

		if (!v->num_set && !v->addr_set && !v->kick_set &&
		    !v->call_set && !v->enabled)
			continue;
		q = &o->vq[n++];
		q->index = i;
		q->num = v->num;
		q->base = v->base;
		q->base_set = v->base_set;
		q->enabled = v->enabled;
		q->num_set = v->num_set;
		q->addr_set = v->addr_set;
		q->desc = v->addr.desc_user_addr;
		q->avail = v->addr.avail_user_addr;
		q->used = v->addr.used_user_addr;
		q->kick = v->kick_set && v->kick_fd >= 0;
		q->call = v->call_set && v->call_fd >= 0;
	}
	o->h.nvq = n;
}

static int send_record(struct ho_out *o, int sock, const void *app,
		       size_t app_len)
{
	size_t fixed = sizeof(o->h) + sizeof(o->d) +
		       o->h.nvq * sizeof(struct ho_vq) +
		       o->h.nmem * sizeof(struct ho_mem);
	uint8_t *buf, *p;
	size_t total, off;
	unsigned int i;
	int err = 0;

	total = fixed + app_len;
	buf = malloc(total);
	if (!buf)
		return -ENOMEM;
	o->h.magic = HO_MAGIC;
	o->h.version = HO_VERSION;
	o->h.hdr_len = sizeof(o->h);
	o->h.total_len = total;
	o->h.nfds = o->nfds;
	o->h.state_len = 0;	/* the fallback's state follows GO */
	o->h.app_len = app_len;
	o->h.crc = 0;
	p = buf + sizeof(o->h);
	memcpy(p, &o->d, sizeof(o->d));
	p += sizeof(o->d);
	for (i = 0; i < o->h.nvq; i++, p += sizeof(struct ho_vq))
		memcpy(p, &o->vq[i], sizeof(struct ho_vq));
	for (i = 0; i < o->h.nmem; i++, p += sizeof(struct ho_mem))
		memcpy(p, &o->m[i], sizeof(struct ho_mem));
	if (app_len)
		memcpy(p, app, app_len);
	memcpy(buf, &o->h, sizeof(o->h));
	o->h.crc = crc32c(0, buf, total);
	memcpy(buf, &o->h, sizeof(o->h));
	/* the descriptors travel with the first datagram */
	for (off = 0; off < total && !err; off += HO_CHUNK)
		err = send_chunk(sock, buf + off, total - off < HO_CHUNK ?
				 total - off : HO_CHUNK, off ? NULL : o->fds,
				 off ? 0 : o->nfds);
	free(buf);
	return err;
}

static int collect(struct ho_out *o, struct vdpa_dev *dev,
		   struct vdpa_mem *const *mems, unsigned int nmem,
		   bool new_owner, char *err, size_t errlen)
{
	unsigned int i, j;
	int r;

	if (nmem > VDPA_HANDOVER_MAX_MEM) {
		vdpa_say(err, errlen, "%u memory regions, at most %u", nmem,
			 VDPA_HANDOVER_MAX_MEM);
		return -EINVAL;
	}
	for (i = 0; i < nmem; i++) {
		for (j = 0; j < VDPA_MAX_MAPPED; j++)
			if (dev->mapped[j] == mems[i])
				break;
		if (!mems[i] || j == VDPA_MAX_MAPPED) {
			vdpa_say(err, errlen, "memory region %u is not mapped "
				 "into %s", i, dev->name);
			return -EINVAL;
		}
		/* the record carries no offset: the new process would map
		 * the fd from its start */
		if (mem_fd_offset(mems[i])) {
			vdpa_say(err, errlen, "memory region %u starts at "
				 "offset %llu of its fd: a handover carries "
				 "whole fds only", i, (unsigned long long)
				 mem_fd_offset(mems[i]));
			return -EOPNOTSUPP;
		}
	}
	for (j = 0, r = 0; j < VDPA_MAX_MAPPED; j++)
		r += dev->mapped[j] != NULL;
	if ((unsigned int)r != nmem) {
		vdpa_say(err, errlen, "%s has %d regions mapped, %u given", 
			 dev->name, r, nmem);
		return -EINVAL;
	}
	fill_dev(&o->d, dev);
	o->nfds = 0;
	if (new_owner) {
		o->h.flags |= HO_F_DEV_FD;
		o->fds[o->nfds++] = dev->fd;
	}
	o->h.nmem = nmem;
	for (i = 0; i < nmem; i++) {
		o->m[i].iova = vdpa_mem_iova(mems[i], vdpa_mem_base(mems[i]));
		o->m[i].size = vdpa_mem_size(mems[i]);
		o->m[i].uaddr = (uint64_t)(uintptr_t)vdpa_mem_base(mems[i]);
		o->m[i].used = vdpa_mem_used(mems[i]);
		o->fds[o->nfds++] = vdpa_mem_fd(mems[i]);
	}
	return 0;
}

static void add_vq_fds(struct ho_out *o, struct vdpa_dev *dev)
{
	unsigned int i;

	for (i = 0; i < o->h.nvq; i++)
		if (o->vq[i].kick)
			o->fds[o->nfds++] = dev->shadow.vq[o->vq[i].index].kick_fd;
	for (i = 0; i < o->h.nvq; i++)
		if (o->vq[i].call)
			o->fds[o->nfds++] = dev->shadow.vq[o->vq[i].index].call_fd;
}

/* Register mem at this process's address and move its mapping there. */
static int remap_one(struct vdpa_dev *dev, struct vdpa_mem *mem)
{
	struct vdpa_mem_arg add = { .fd = vdpa_mem_fd(mem) };
	struct vhost_msg_v2 msg;
	int r;

	add.m.uaddr = (uint64_t)(uintptr_t)vdpa_mem_base(mem);
	add.m.size = vdpa_mem_size(mem);
	r = vdpa_dev_call(dev, VSIM_REQ_ADD_MEM, &add);
	if (r < 0 && r != -EEXIST)	/* EEXIST: still registered here */
		return r;
	memset(&msg, 0, sizeof(msg));
	msg.type = VHOST_IOTLB_MSG_V2;
	msg.iotlb.type = VHOST_IOTLB_REMAP;
	msg.iotlb.iova = add.m.uaddr - (uintptr_t)vdpa_mem_base(mem) +
			 vdpa_mem_iova(mem, vdpa_mem_base(mem));
	msg.iotlb.size = add.m.size;
	msg.iotlb.uaddr = add.m.uaddr;
	msg.iotlb.perm = VHOST_ACCESS_RW;
	r = vdpa_dev_call(dev, VSIM_REQ_IOTLB_MSG, &msg);
	if (r < 0)
		return r;
	return r == (int)sizeof(msg) ? 0 : -EIO;
}

static void kick_all(struct vdpa_dev *dev)
{
	uint64_t one = 1;
	unsigned int i;

	for (i = 0; i < VDPA_MAX_VQS; i++) {
		const struct vdpa_vq_shadow *v = &dev->shadow.vq[i];

		if (v->kick_set && v->kick_fd >= 0 &&
		    write(v->kick_fd, &one, sizeof(one)) < 0) {
			/* a full counter is a pending kick already */
		}
	}
}

/*
 * The peer did not take the device: run on. On the new-owner path the
 * peer may have taken ownership before failing: take it back (EBUSY: it
 * never left) and remap this process's addresses.
 */
static int take_back(struct vdpa_dev *dev, struct vdpa_mem *const *mems,
		     unsigned int nmem, const struct vdpa_state *saved,
		     bool new_owner)
{
	unsigned int i;
	int r;

	if (new_owner) {
		r = vdpa_dev_call(dev, VHOST_NEW_OWNER, NULL);
		if (r == 0) {
			for (i = 0; i < nmem && !r; i++)
				r = remap_one(dev, mems[i]);
			for (i = 0; i < VDPA_MAX_VQS && !r; i++) {
				const struct vdpa_vq_shadow *v =
					&dev->shadow.vq[i];

				if (v->kick_set && v->kick_fd >= 0)
					r = vdpa_dev_set_vring_kick(dev, i,
								    v->kick_fd);
				if (!r && v->call_set && v->call_fd >= 0)
					r = vdpa_dev_set_vring_call(dev, i,
								    v->call_fd);
			}
			vdpa_log(LOG_NOTICE, "%s: took the device back from "
				 "the new process: %s", dev->name,
				 r ? strerror(-r) : "ok");
		} else if (r == -EBUSY) {
			r = 0;	/* it never left this process */
		}
		if (r < 0)
			return r;
	}
	r = vdpa_dev_resume(dev);
	if (r == -EOPNOTSUPP && saved) {
		/* no RESUME: load what was saved into the device itself */
		int kick[VDPA_STATE_MAX_QUEUES], call[VDPA_STATE_MAX_QUEUES];
		struct vdpa_load_hooks h = { .kick_fds = kick, .call_fds = call };

		for (i = 0; i < VDPA_STATE_MAX_QUEUES; i++) {
			const struct vdpa_vq_shadow *v = &dev->shadow.vq[i];

			kick[i] = v->kick_set ? v->kick_fd : -1;
			call[i] = v->call_set ? v->call_fd : -1;
		}
		r = vdpa_state_load_device(dev, saved, &h, NULL, 0);
	}
	if (!r)
		kick_all(dev);
	return r;
}

static int send_fail(struct vdpa_dev *dev, struct vdpa_mem *const *mems,
		     unsigned int nmem, struct vdpa_state *saved,
		     bool new_owner, int r, char *err, size_t errlen)
{
	int r2 = take_back(dev, mems, nmem, saved, new_owner);

	if (r2 < 0) {
		vdpa_say(err, errlen, "%s; and the device could not be "
			 "resumed here: %s", err && *err ? err : strerror(-r),
			 strerror(-r2));
		vdpa_log(LOG_ERR, "%s: handover failed and the device is not "
			 "running: %s", dev->name, strerror(-r2));
	}
	return r;
}

/* GO, and the fallback's state after it in datagrams. */
static int send_go(int sock, uint64_t t0, const void *state, size_t len)
{
	struct ho_ctl c = { .magic = HO_MAGIC, .type = HO_GO, .t_ns = t0,
			    .len = len };
	size_t off;
	int err;

	c.crc = len ? crc32c(0, state, len) : 0;
	err = send_chunk(sock, &c, sizeof(c), NULL, 0);
	for (off = 0; off < len && !err; off += HO_CHUNK)
		err = send_chunk(sock, (const uint8_t *)state + off,
				 len - off < HO_CHUNK ? len - off : HO_CHUNK,
				 NULL, 0);
	return err;
}

int vdpa_handover_send(struct vdpa_dev **devp, int sock,
		       struct vdpa_mem *const *mems, unsigned int nmem,
		       const void *app, size_t app_len, int timeout_ms,
		       struct vdpa_handover_info *ret_info, char *err,
		       size_t errlen)
{
	struct vdpa_handover_info info;
	struct vdpa_state *saved = NULL;
	struct vdpa_dev *dev;
	struct ho_out *o;
	struct ho_ctl c;
	uint64_t t0;
	bool no;
	int r;

	if (err && errlen)
		err[0] = 0;
	if (!devp || !*devp || sock < 0 || (nmem && !mems) ||
	    (app_len && !app) || app_len > VDPA_HANDOVER_MAX_APP)
		return -EINVAL;
	dev = *devp;
	r = vdpa_handover_choose(dev, &info);
	if (r < 0) {
		vdpa_say(err, errlen, "%s", info.reason);
		return r;
	}
	no = info.path == VDPA_HANDOVER_NEW_OWNER;
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->h.path = info.path;
	r = collect(o, dev, mems, nmem, no, err, errlen);
	if (r < 0)
		goto out;
	snprintf(o->d.reason, sizeof(o->d.reason), "%s", info.reason);
	fill_vqs(o, dev);
	add_vq_fds(o, dev);
	/* the device runs on while the new process checks and prepares */
	r = send_record(o, sock, app, app_len);
	if (!r)
		r = recv_ctl(sock, timeout_ms, &c);
	if (r < 0 || c.type != HO_READY) {
		if (r < 0)
			vdpa_say(err, errlen, "the new process went away or sent "
				 "something else: %s", strerror(-r));
		else
			vdpa_say(err, errlen, "the new process %s: %s",
				 c.type == HO_REFUSED ? "refused" : "failed",
				 c.reason);
		r = r == -ETIMEDOUT ? r : r < 0 ? -EPIPE : -ECANCELED;
		goto out;	/* nothing stopped: nothing to undo */
	}
	/* the pause starts: nothing is processed until the new one resumes */
	t0 = vdpa_now_ns();
	r = vdpa_dev_suspend(dev);
	if (!r && !no) {
		r = vdpa_state_save_device(dev, NULL, &saved);
		if (!r)
			r = vdpa_state_encode(saved, &o->state, &o->state_len);
	}
	if (r < 0) {
		vdpa_say(err, errlen, "stopping %s for the switch: %s",
			 dev->name, strerror(-r));
		send_ctl(sock, HO_ABORT, r, 0, err);
		r = send_fail(dev, mems, nmem, saved, false, r, err, errlen);
		goto out;
	}
	r = send_go(sock, t0, o->state, o->state_len);
	if (r < 0) {	/* GO never left: the device is still ours */
		vdpa_say(err, errlen, "the new process went away before the "
			 "switch: %s", strerror(-r));
		r = send_fail(dev, mems, nmem, saved, no, -EPIPE, err, errlen);
		goto out;
	}
	if (!no) {
		/* the point of no return: the device is reset here */
		vdpa_dev_close(dev);
		*devp = NULL;
	}
	r = recv_ctl(sock, timeout_ms, &c);
	if (!r && c.type == HO_TAKEN) {
		if (no) {
			vdpa_dev_close(dev);	/* not a reset: it lives on */
			*devp = NULL;
		}
		info.pause_ns = c.t_ns;
		info.record_len = o->h.total_len + o->state_len;
		info.nfds = o->nfds;
		if (ret_info)
			*ret_info = info;
		goto out;
	}
	if (r < 0)
		vdpa_say(err, errlen, "the new process went away during the "
			 "switch: %s", strerror(-r));
	else
		vdpa_say(err, errlen, "the new process failed: %s", c.reason);
	if (!no) {
		vdpa_say(err, errlen, "%s (the device was released and reset)",
			 r < 0 ? "the new process went away during the switch" :
			 c.reason);
		r = -EPIPE;
		goto out;
	}
	r = send_fail(dev, mems, nmem, NULL, true, r < 0 && r != -ETIMEDOUT ?
		      -EPIPE : r < 0 ? r : -ECANCELED, err, errlen);
out:
	vdpa_state_free(saved);
	free(o->state);
	free(o);
	return r;
}

/* ---- new process -------------------------------------------------------- */

static bool fd_is(int fd, const char *link)
{
	char path[64], buf[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return false;
	buf[n] = 0;
	return !strcmp(buf, link);
}

static void in_close_fds(struct vdpa_handover_in *in)
{
	unsigned int i;

	if (in->dev_fd >= 0)
		close(in->dev_fd);
	in->dev_fd = -1;
	for (i = 0; i < VDPA_HANDOVER_MAX_VQS; i++) {
		if (in->kick[i] >= 0)
			close(in->kick[i]);
		if (in->call[i] >= 0)
			close(in->call[i]);
		in->kick[i] = in->call[i] = -1;
	}
}

void vdpa_handover_in_free(struct vdpa_handover_in *in)
{
	unsigned int i;

	if (!in)
		return;
	if (!in->answered && in->sock >= 0)
		send_ctl(in->sock, HO_REFUSED, -ECANCELED, 0,
			 "the new process gave up");
	in_close_fds(in);
	for (i = 0; i < VDPA_HANDOVER_MAX_MEM; i++)
		vdpa_mem_destroy(in->mem[i]);
	vdpa_dev_close(in->dev);
	vdpa_state_free(in->state);
	free(in->app);
	free(in);
}

static int bad(char *err, size_t errlen, int r, const char *what)
{
	vdpa_say(err, errlen, "bad handover record: %s", what);
	return r;
}

/* Every field of the record, before anything is kept. */
static int check_record(struct vdpa_handover_in *in, const uint8_t *buf,
			size_t len, unsigned int nfds, char *err, size_t errlen)
{
	const struct ho_hdr *h = &in->h;
	const struct ho_dev *d = &in->d;
	uint64_t want, seen = 0;
	unsigned int i, nk = 0, nc = 0;
	uint32_t crc;
	uint8_t zero[4] = { 0 };

	if (len < sizeof(*h))
		return bad(err, errlen, -EBADMSG, "shorter than its header");
	memcpy(&in->h, buf, sizeof(in->h));
	if (h->magic != HO_MAGIC)
		return bad(err, errlen, -EPROTO, "wrong magic");
	if (h->version != HO_VERSION) {
		vdpa_say(err, errlen, "handover record version %u, this "
			 "library reads %u", h->version, HO_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (h->hdr_len != sizeof(*h) || h->total_len != len)
		return bad(err, errlen, -EBADMSG, "length fields do not match "
			   "what arrived (truncated?)");
	crc = crc32c(0, buf, offsetof(struct ho_hdr, crc));
	crc = crc32c(crc, zero, 4);
	crc = crc32c(crc, buf + offsetof(struct ho_hdr, crc) + 4,
		     len - offsetof(struct ho_hdr, crc) - 4);
	if (crc != h->crc)
		return bad(err, errlen, -EBADMSG, "CRC mismatch");
	if ((h->path != VDPA_HANDOVER_NEW_OWNER &&
	     h->path != VDPA_HANDOVER_FALLBACK) ||
	    h->nmem > VDPA_HANDOVER_MAX_MEM || h->nvq > VDPA_HANDOVER_MAX_VQS ||
	    h->app_len > VDPA_HANDOVER_MAX_APP || h->state_len > HO_MAX_STATE ||
	    (h->flags & ~HO_F_DEV_FD) ||
	    !!(h->flags & HO_F_DEV_FD) != (h->path == VDPA_HANDOVER_NEW_OWNER) ||
	    h->state_len)
		return bad(err, errlen, -EBADMSG, "impossible path, flags or "
			   "counts");
	want = sizeof(*h) + sizeof(*d) + h->nvq * sizeof(struct ho_vq) +
	       h->nmem * sizeof(struct ho_mem) + h->state_len + h->app_len;
	if (want != len)
		return bad(err, errlen, -EBADMSG, "section lengths do not add "
			   "up");
	memcpy(&in->d, buf + sizeof(*h), sizeof(in->d));
	memcpy(in->vq, buf + sizeof(*h) + sizeof(*d),
	       h->nvq * sizeof(struct ho_vq));
	memcpy(in->m, buf + sizeof(*h) + sizeof(*d) +
	       h->nvq * sizeof(struct ho_vq), h->nmem * sizeof(struct ho_mem));
	if (!memchr(d->name, 0, sizeof(d->name)) || d->kernel > 1 ||
	    (h->path == VDPA_HANDOVER_FALLBACK && !reopenable(d->name)) ||
	    !memchr(d->unsupported, 0, sizeof(d->unsupported)) ||
	    !memchr(d->reason, 0, sizeof(d->reason)) ||
	    d->prov_config_len > VDPA_PROV_CONFIG_MAX ||
	    d->n_uc > VDPA_STATE_MAC_TABLE_MAX ||
	    d->n_mc > VDPA_STATE_MAC_TABLE_MAX ||
	    d->features_set > 1 || d->backend_set > 1 || d->prov_valid > 1 ||
	    d->driver_ok_seen > 1 || d->net_changed > 1)
		return bad(err, errlen, -EBADMSG, "device fields");
	for (i = 0; i < 6; i++)
		if (d->rx[i] > 1)
			return bad(err, errlen, -EBADMSG, "net class fields");
	for (i = 0; i < h->nvq; i++) {
		const struct ho_vq *q = &in->vq[i];

		if (q->index >= VDPA_HANDOVER_MAX_VQS ||
		    (seen & (1ULL << q->index)) || q->num > 32768 ||
		    (q->num & (q->num - 1)) || q->enabled > 1 ||
		    q->num_set > 1 || q->addr_set > 1 || q->base_set > 1 ||
		    q->kick > 1 || q->call > 1)
			return bad(err, errlen, -EBADMSG, "queue fields");
		seen |= 1ULL << q->index;
		nk += q->kick;
		nc += q->call;
	}
	for (i = 0; i < h->nmem; i++) {
		const struct ho_mem *m = &in->m[i];

		if (!m->size || (m->size & 4095) || m->used > m->size ||
		    m->size - 1 > UINT64_MAX - m->iova)
			return bad(err, errlen, -EBADMSG, "memory fields");
	}
	if (h->nfds != nfds ||
	    nfds != !!(h->flags & HO_F_DEV_FD) + h->nmem + nk + nc) {
		vdpa_say(err, errlen, "bad handover record: %u descriptors "
			 "arrived, the record names %u", nfds,
			 !!(h->flags & HO_F_DEV_FD) + h->nmem + nk + nc);
		return -EBADMSG;
	}
	return 0;
}

/* Sort the descriptors into their places, checking each one's kind. */
static int keep_fds(struct vdpa_handover_in *in, int *fds, char *err,
		    size_t errlen)
{
	const struct ho_hdr *h = &in->h;
	unsigned int i, k = 0;
	struct stat st;
	int r;

	if (h->flags & HO_F_DEV_FD) {
		bool kern = in->d.kernel;

		if (fstat(fds[0], &st) < 0 ||
		    (kern ? !S_ISCHR(st.st_mode) : !S_ISSOCK(st.st_mode)))
			return bad(err, errlen, -EPROTO, "the device descriptor "
				   "is not a character device or socket");
		k = 1;
	}
	for (i = 0; i < h->nmem; i++, k++)
		if (fstat(fds[k], &st) < 0 || !S_ISREG(st.st_mode) ||
		    (uint64_t)st.st_size < in->m[i].size)
			return bad(err, errlen, -EPROTO, "a memory descriptor is "
				   "not a file of the region's size");
	for (i = k; i < h->nfds; i++)
		if (!fd_is(fds[i], "anon_inode:[eventfd]"))
			return bad(err, errlen, -EPROTO, "a queue descriptor is "
				   "not an eventfd");
	/* all checked: keep them */
	k = 0;
	if (h->flags & HO_F_DEV_FD)
		in->dev_fd = fds[k++];
	for (i = 0; i < h->nmem; i++) {
		r = vdpa_mem_create_from_fd(fds[k], in->m[i].size, in->m[i].iova,
					    &in->mem[i]);
		fds[k++] = -1;	/* owned by vdpa_mem_create_from_fd now */
		if (!r)
			r = vdpa_mem_set_used(in->mem[i], in->m[i].used);
		if (r < 0) {
			vdpa_say(err, errlen, "mapping memory region %u: %s", i,
				 strerror(-r));
			return r;
		}
	}
	for (i = 0; i < h->nvq; i++)
		if (in->vq[i].kick)
			in->kick[in->vq[i].index] = fds[k++];
	for (i = 0; i < h->nvq; i++)
		if (in->vq[i].call)
			in->call[in->vq[i].index] = fds[k++];
	return 0;
}

int vdpa_handover_recv(int sock, int timeout_ms,
		       struct vdpa_handover_in **ret_in, char *err,
		       size_t errlen)
{
	int fds[HO_MAX_FDS];
	struct vdpa_handover_in *in;
	unsigned int nfds = 0, n2, i;
	uint8_t *buf = NULL, *p;
	struct ho_hdr h0;
	size_t cap = HO_CHUNK, got;
	ssize_t n;
	int r;

	if (err && errlen)
		err[0] = 0;
	if (sock < 0 || !ret_in)
		return -EINVAL;
	in = calloc(1, sizeof(*in));
	buf = malloc(cap);
	if (!in || !buf) {
		free(in);
		free(buf);
		return -ENOMEM;
	}
	in->sock = sock;
	in->timeout_ms = timeout_ms;
	in->dev_fd = -1;
	in->answered = true;	/* nothing to answer until it is whole */
	for (i = 0; i < VDPA_HANDOVER_MAX_VQS; i++)
		in->kick[i] = in->call[i] = -1;
	n = recv_chunk(sock, buf, HO_CHUNK, fds, HO_MAX_FDS, &nfds, timeout_ms);
	if (n < 0) {
		r = (int)n;
		vdpa_say(err, errlen, "%s", r == -EBADMSG ? "bad handover "
			 "record: too many descriptors or truncated control "
			 "data" : r == -EPIPE ? "the old process went away "
			 "before sending its record" : strerror(-r));
		goto err_free;
	}
	got = (size_t)n;
	if (got < sizeof(h0)) {
		r = bad(err, errlen, -EBADMSG, "shorter than its header");
		goto err_fds;
	}
	memcpy(&h0, buf, sizeof(h0));
	if (h0.magic == HO_MAGIC && h0.total_len > got &&
	    h0.total_len <= sizeof(h0) + sizeof(struct ho_dev) +
	    VDPA_HANDOVER_MAX_VQS * sizeof(struct ho_vq) +
	    VDPA_HANDOVER_MAX_MEM * sizeof(struct ho_mem) + HO_MAX_STATE +
	    VDPA_HANDOVER_MAX_APP) {
		cap = h0.total_len;
		p = realloc(buf, cap);
		if (!p) {
			r = -ENOMEM;
			goto err_fds;
		}
		buf = p;
		while (got < h0.total_len) {
			n = recv_chunk(sock, buf + got, cap - got, NULL, 0, &n2,
				       timeout_ms);
			if (n == 0 || n == -EPIPE) {
				r = bad(err, errlen, -EBADMSG, "truncated: the "
					"old process went away in the middle");
				goto err_fds;
			}
			if (n < 0) {
				r = (int)n;
				vdpa_say(err, errlen, "receiving the record: %s",
					 strerror(-r));
				goto err_fds;
			}
			got += (size_t)n;
		}
	}
	r = check_record(in, buf, got, nfds, err, errlen);
	if (r < 0)
		goto err_fds;
	r = keep_fds(in, fds, err, errlen);
	if (r < 0)
		goto err_fds;
	nfds = 0;	/* all kept */
	p = buf + sizeof(in->h) + sizeof(in->d) +
	    in->h.nvq * sizeof(struct ho_vq) + in->h.nmem * sizeof(struct ho_mem);
	if (in->h.state_len) {
		r = vdpa_state_decode(p, in->h.state_len, 0, &in->state, err,
				      errlen);
		if (r < 0)
			goto err_fds;
	}
	if (in->h.app_len) {
		in->app = malloc(in->h.app_len);
		if (!in->app) {
			r = -ENOMEM;
			goto err_fds;
		}
		memcpy(in->app, p + in->h.state_len, in->h.app_len);
	}
	free(buf);
	in->info.path = in->h.path;
	snprintf(in->info.reason, sizeof(in->info.reason), "%s", in->d.reason);
	in->info.record_len = in->h.total_len;
	in->info.nfds = in->h.nfds;
	in->answered = false;
	*ret_in = in;
	return 0;

err_fds:
	close_all(fds, nfds);
err_free:
	free(buf);
	in->answered = true;
	in->sock = -1;
	vdpa_handover_in_free(in);
	return r;
}

const struct vdpa_handover_info *vdpa_handover_in_info(
	const struct vdpa_handover_in *in)
{
	return in ? &in->info : NULL;
}

const void *vdpa_handover_in_app(const struct vdpa_handover_in *in,
				 size_t *ret_len)
{
	if (!in)
		return NULL;
	if (ret_len)
		*ret_len = in->h.app_len;
	return in->app;
}

unsigned int vdpa_handover_in_nmem(const struct vdpa_handover_in *in)
{
	return in ? in->h.nmem : 0;
}

struct vdpa_mem *vdpa_handover_in_mem(const struct vdpa_handover_in *in,
				      unsigned int i)
{
	return in && i < in->h.nmem ? in->mem[i] : NULL;
}

int vdpa_handover_refuse(struct vdpa_handover_in *in, const char *reason)
{
	int r;

	if (!in || in->answered)
		return -EINVAL;
	in->answered = true;
	r = send_ctl(in->sock, HO_REFUSED, -ECANCELED, 0,
		     reason ? reason : "refused");
	return r;
}

/* The adopted handle, from the record (new-owner path). */
static int build_dev(struct vdpa_handover_in *in, const int *kick,
		     const int *call)
{
	const struct ho_dev *d = &in->d;
	struct vdpa_state_net *n;
	struct vdpa_dev *dev;
	unsigned int i;

	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->name = strdup(d->name);
	if (!dev->name) {
		free(dev);
		return -ENOMEM;
	}
	dev->ops = d->kernel ? &kernel_transport : &sim_transport;
	dev->fd = in->dev_fd;
	in->dev_fd = -1;
	dev->device_id = d->device_id;
	dev->shadow.features = d->features;
	dev->shadow.backend_features = d->backend_features;
	dev->shadow.features_set = d->features_set;
	dev->shadow.backend_set = d->backend_set;
	dev->shadow.status = d->status;
	dev->shadow.driver_ok_seen = d->driver_ok_seen;
	dev->prov_valid = d->prov_valid;
	dev->prov_config_len = d->prov_config_len;
	memcpy(dev->prov_config, d->prov_config, sizeof(dev->prov_config));
	n = &dev->netcls.st;
	memcpy(n->mac, d->mac, 6);
	n->queue_pairs = d->queue_pairs;
	n->promisc = d->rx[0];
	n->allmulti = d->rx[1];
	n->alluni = d->rx[2];
	n->nomulti = d->rx[3];
	n->nouni = d->rx[4];
	n->nobcast = d->rx[5];
	n->n_uc = d->n_uc;
	n->n_mc = d->n_mc;
	memcpy(n->uc, d->uc, sizeof(n->uc));
	memcpy(n->mc, d->mc, sizeof(n->mc));
	dev->netcls.changed = d->net_changed;
	snprintf(dev->netcls.unsupported, sizeof(dev->netcls.unsupported),
		 "%s", d->unsupported);
	for (i = 0; i < in->h.nvq; i++) {
		const struct ho_vq *q = &in->vq[i];
		struct vdpa_vq_shadow *v = &dev->shadow.vq[q->index];

		v->num = q->num;
		v->num_set = q->num_set;
		v->base = q->base;
		v->base_set = q->base_set;
		v->addr.index = q->index;
		v->addr.desc_user_addr = q->desc;
		v->addr.avail_user_addr = q->avail;
		v->addr.used_user_addr = q->used;
		v->addr_set = q->addr_set;
		v->enabled = q->enabled;
		v->kick_fd = kick[q->index];
		v->kick_set = kick[q->index] >= 0;
		v->call_fd = call[q->index];
		v->call_set = call[q->index] >= 0;
	}
	for (i = 0; i < in->h.nmem; i++)
		dev->mapped[i] = in->mem[i];
	in->dev = dev;
	return 0;
}

/* The eventfds to bind: the caller's where given, else the received. */
static void pick_fds(struct vdpa_handover_in *in, const int *kick_fds,
		     const int *call_fds, int *kick, int *call)
{
	unsigned int i;

	for (i = 0; i < VDPA_HANDOVER_MAX_VQS; i++) {
		kick[i] = kick_fds && kick_fds[i] >= 0 ? kick_fds[i] : in->kick[i];
		call[i] = call_fds && call_fds[i] >= 0 ? call_fds[i] : in->call[i];
	}
}

/* The same open file? (kcmp; unknown counts as different) */
static bool same_file(int a, int b)
{
	pid_t me = getpid();

	if (a < 0 || b < 0)
		return false;
	return a == b || syscall(SYS_kcmp, me, me, KCMP_FILE, a, b) == 0;
}

static int accept_new_owner(struct vdpa_handover_in *in, const int *kick,
			    const int *call, char *err, size_t errlen)
{
	struct vdpa_dev *dev;
	unsigned int i;
	int r;

	r = build_dev(in, kick, call);
	if (r < 0)
		return r;
	dev = in->dev;
	r = vdpa_dev_call(dev, VHOST_NEW_OWNER, NULL);
	if (r < 0) {
		vdpa_say(err, errlen, "VHOST_NEW_OWNER: %s", strerror(-r));
		return r;
	}
	for (i = 0; i < in->h.nmem && !r; i++) {
		r = remap_one(dev, in->mem[i]);
		if (r < 0)
			vdpa_say(err, errlen, "remapping region %u (IOVA 0x%"
				 PRIx64 "): %s", i, in->m[i].iova, strerror(-r));
	}
	for (i = 0; i < in->h.nvq && !r; i++) {
		uint32_t idx = in->vq[i].index;

		/* the device keeps its eventfds: rebind only other ones */
		if (kick[idx] >= 0 && !same_file(kick[idx], in->kick[idx]))
			r = vdpa_dev_set_vring_kick(dev, idx, kick[idx]);
		if (!r && call[idx] >= 0 && !same_file(call[idx], in->call[idx]))
			r = vdpa_dev_set_vring_call(dev, idx, call[idx]);
		if (r < 0)
			vdpa_say(err, errlen, "binding the eventfds of queue "
				 "%u: %s", idx, strerror(-r));
	}
	if (!r) {
		r = vdpa_dev_resume(dev);
		if (r < 0)
			vdpa_say(err, errlen, "RESUME: %s", strerror(-r));
	}
	if (!r)
		kick_all(dev);
	return r;
}

static int accept_fallback(struct vdpa_handover_in *in, const int *kick,
			   const int *call, char *err, size_t errlen)
{
	struct vdpa_dev *dev = NULL;
	struct vdpa_load_hooks h = { .kick_fds = kick, .call_fds = call };
	uint64_t deadline;
	unsigned int i;
	int r;

	/* the old one closes it after GO: its release may take a moment */
	deadline = vdpa_now_ns() + (uint64_t)(in->timeout_ms < 0 ? 30000 :
					      in->timeout_ms) * 1000000u;
	do {
		r = vdpa_dev_open(in->d.name, &dev);
		if (r == -EBUSY)
			usleep(200);
	} while (r == -EBUSY && vdpa_now_ns() < deadline);
	if (r < 0) {
		vdpa_say(err, errlen, "opening %s: %s", in->d.name,
			 strerror(-r));
		return r;
	}
	in->dev = dev;
	r = vdpa_state_prepare_device(dev, in->state->backend_features,
				      in->state->features);
	for (i = 0; i < in->h.nmem && !r; i++)
		r = vdpa_mem_map(dev, in->mem[i]);
	if (r < 0) {
		vdpa_say(err, errlen, "preparing %s: %s", in->d.name,
			 strerror(-r));
		return r;
	}
	return vdpa_state_load_device(dev, in->state, &h, err, errlen);
}

/* GO from the old process, and the fallback's state after it. */
static int recv_go(struct vdpa_handover_in *in, uint64_t *ret_t0, char *err,
		   size_t errlen)
{
	struct ho_ctl c;
	unsigned int nfds;
	uint8_t *buf = NULL;
	size_t got = 0;
	ssize_t n;
	int r;

	r = recv_ctl(in->sock, in->timeout_ms, &c);
	if (r < 0 || c.type != HO_GO) {
		vdpa_say(err, errlen, "the old process %s before the switch; "
			 "nothing adopted", r < 0 ? "went away" : c.type ==
			 HO_ABORT ? "could not stop the device" : "said "
			 "something else");
		return r < 0 ? -EPIPE : c.type == HO_ABORT ? -ECANCELED :
		       -EBADMSG;
	}
	*ret_t0 = c.t_ns;
	if (in->h.path == VDPA_HANDOVER_NEW_OWNER)
		return c.len ? bad(err, errlen, -EBADMSG, "state with GO on "
				   "the new-owner path") : 0;
	if (!c.len || c.len > HO_MAX_STATE)
		return bad(err, errlen, -EBADMSG, "saved state length");
	buf = malloc(c.len);
	if (!buf)
		return -ENOMEM;
	while (got < c.len) {
		n = recv_chunk(in->sock, buf + got, c.len - got, NULL, 0,
			       &nfds, in->timeout_ms);
		if (n <= 0) {
			free(buf);
			return bad(err, errlen, n == -ETIMEDOUT ? -ETIMEDOUT :
				   -EBADMSG, "the saved state is truncated");
		}
		got += (size_t)n;
	}
	if (crc32c(0, buf, got) != c.crc) {
		free(buf);
		return bad(err, errlen, -EBADMSG, "CRC mismatch in the saved "
			   "state");
	}
	r = vdpa_state_decode(buf, got, 0, &in->state, err, errlen);
	free(buf);
	return r;
}

int vdpa_handover_accept(struct vdpa_handover_in *in, const int *kick_fds,
			 const int *call_fds, char *err, size_t errlen)
{
	int kick[VDPA_HANDOVER_MAX_VQS], call[VDPA_HANDOVER_MAX_VQS];
	uint64_t t0 = 0, pause;
	int r;

	if (err && errlen)
		err[0] = 0;
	if (!in || in->answered)
		return -EINVAL;
	pick_fds(in, kick_fds, call_fds, kick, call);
	in->answered = true;
	r = send_ctl(in->sock, HO_READY, 0, 0, NULL);
	if (r < 0) {
		vdpa_say(err, errlen, "the old process went away: %s",
			 strerror(-r));
		return -EPIPE;
	}
	r = recv_go(in, &t0, err, errlen);
	if (r < 0)
		return r;	/* the old process runs on, or is gone */
	r = in->h.path == VDPA_HANDOVER_NEW_OWNER ?
	    accept_new_owner(in, kick, call, err, errlen) :
	    accept_fallback(in, kick, call, err, errlen);
	if (r < 0) {
		/* nothing adopted; the old one takes it back if it can */
		send_ctl(in->sock, HO_FAILED, r, 0, err && *err ? err :
			 strerror(-r));
		if (in->dev) {
			/* only our copy: the old process may still hold it */
			vdpa_dev_close(in->dev);
			in->dev = NULL;
		}
		return r;
	}
	pause = vdpa_now_ns() - t0;
	in->info.pause_ns = pause;
	/* the old process may be gone by now: the device is ours anyway */
	send_ctl(in->sock, HO_TAKEN, 0, pause, NULL);
	return 0;
}

struct vdpa_dev *vdpa_handover_in_take_dev(struct vdpa_handover_in *in)
{
	struct vdpa_dev *dev;

	if (!in)
		return NULL;
	dev = in->dev;
	in->dev = NULL;
	return dev;
}

struct vdpa_mem *vdpa_handover_in_take_mem(struct vdpa_handover_in *in,
					   unsigned int i)
{
	struct vdpa_mem *m;

	if (!in || i >= in->h.nmem)
		return NULL;
	m = in->mem[i];
	in->mem[i] = NULL;
	return m;
}

int vdpa_handover_in_vring_fds(const struct vdpa_handover_in *in,
			       uint32_t idx, int *ret_kick, int *ret_call)
{
	if (!in || idx >= VDPA_HANDOVER_MAX_VQS || !ret_kick || !ret_call)
		return -EINVAL;
	*ret_kick = in->kick[idx];
	*ret_call = in->call[idx];
	return 0;
}
