// SPDX-License-Identifier: MIT
/*
 * vdpa-sim core: device lifetime, the connection, the vhost-vdpa control ABI
 * (request order rules and errno values of Linux 6.1 drivers/vhost/vdpa.c)
 * and the epoll loop that also runs the data path.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>

#include "sim-int.h"

enum { EV_STOP = 1, EV_LISTEN, EV_CONN, EV_PENDING, EV_KICK };
#define EV(kind, idx)	(((uint64_t)(kind) << 32) | (uint32_t)(idx))

void vsim_log(struct vsim *s, int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!s->o.log || level > s->o.log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->o.log(s->o.log_opaque, level, buf);
}

static void signal_fd(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
		/* counter overflow: already signalled */
	}
}

void vsim_fail(struct vsim *s, const char *fmt, ...)
{
	va_list ap;

	if (s->broken)
		return;
	va_start(ap, fmt);
	vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
	va_end(ap);
	s->broken = true;
	s->status |= VSIM_STATUS_NEEDS_RESET;
	vsim_log(s, LOG_ERR, "device needs reset: %s", s->reason);
	signal_fd(s->config_call_fd);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---- device -------------------------------------------------------------- */

static void build_config(struct vsim *s)
{
	memset(s->config, 0, sizeof(s->config));
	if (s->o.type == VSIM_TYPE_NET) {
		struct virtio_net_config *c = (void *)s->config;

		memcpy(c->mac, s->mac, 6);
		c->status = VIRTIO_NET_S_LINK_UP;
		c->max_virtqueue_pairs = (uint16_t)s->o.queue_pairs;
		c->mtu = s->o.mtu;
		s->config_size = sizeof(*c);
	} else {
		struct virtio_blk_config *c = (void *)s->config;

		c->capacity = s->o.capacity;
		c->size_max = 1u << 20;
		c->seg_max = s->o.vq_size - 2 < 128 ? s->o.vq_size - 2 : 128;
		c->blk_size = VSIM_SECTOR;
		c->num_queues = 1;
		s->config_size = sizeof(*c);
		/* 6.12's struct virtio_blk_config has the zoned fields too */
		if (s->o.kernel == VSIM_KERNEL_6_12)
			s->config_size = 96;
	}
}

static void device_reset(struct vsim *s)
{
	unsigned int i;

	vsim_state_cancel(s);	/* a reset ends a state transfer under way */
	s->status = 0;
	s->features = 0;
	s->suspended = false;
	s->broken = false;
	s->reason[0] = 0;
	s->work = 0;
	/* vdpasim_do_reset() with CLEAN_MAP: unless IOTLB_PERSIST was acked */
	s->maps_dropped = s->o.kernel != VSIM_KERNEL_NONE &&
		!(s->backend_features & (1ULL << VHOST_BACKEND_F_IOTLB_PERSIST));
	for (i = 0; i < s->nvqs; i++) {
		uint16_t keep = s->vq[i].last_avail;

		vsim_vq_reset(&s->vq[i], s->o.vq_size);
		if (vsim_fault(s, VSIM_FAULT_RESET_KEEPS_STATE))
			s->vq[i].last_avail = s->vq[i].avail_cache = keep;
	}
	if (s->o.type == VSIM_TYPE_NET)
		vsim_net_reset(s);
	else
		vsim_blk_reset(s);
}

static void conn_close(struct vsim *s)
{
	unsigned int i;

	if (s->conn_fd < 0)
		return;
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->conn_fd, NULL);
	close_fd(&s->conn_fd);
	vsim_state_cancel(s);
	device_reset(s);
	for (i = 0; i < s->nvqs; i++) {
		if (s->vq[i].kick_fd >= 0)
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->vq[i].kick_fd, NULL);
		close_fd(&s->vq[i].kick_fd);
		close_fd(&s->vq[i].call_fd);
		close_fd(&s->vq[i].err_fd);
	}
	close_fd(&s->config_call_fd);
	vsim_mem_clear(s);
	s->hello_done = false;
	s->owner = false;
	s->owner_pid = s->sender = s->peer_pid = 0;
	s->backend_features = 0;
	vsim_log(s, LOG_INFO, "driver disconnected, device reset");
}

int vsim_opts_check(const struct vsim_opts *o)
{
	if (o->type != VSIM_TYPE_NET && o->type != VSIM_TYPE_BLK)
		return -EINVAL;
	if (o->vq_size < 2 || o->vq_size > 32768 ||
	    (o->vq_size & (o->vq_size - 1)))
		return -EINVAL;
	if (o->iova_first > o->iova_last)
		return -EINVAL;
	if (o->type == VSIM_TYPE_NET &&
	    (o->queue_pairs < 1 || o->queue_pairs > VSIM_MAX_QUEUE_PAIRS ||
	     o->mtu < 68))
		return -EINVAL;
	if (o->type == VSIM_TYPE_BLK && !o->backing &&
	    (o->capacity == 0 || o->capacity > (1ULL << 31)))
		return -EINVAL;	/* RAM disk up to 1 TiB of address space */
	return 0;
}

int vsim_create(const struct vsim_opts *o, struct vsim **ret)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct vsim *s;
	unsigned int i;
	int r;

	r = vsim_opts_check(o);
	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->o = *o;
	s->epfd = s->stop_fd = s->listen_fd = s->conn_fd = -1;
	s->config_call_fd = s->backing_fd = -1;
	for (i = 0; i < VSIM_MAX_PENDING; i++)
		s->pending[i] = -1;
	for (i = 0; i < VSIM_MAX_VQS; i++)
		s->vq[i].kick_fd = s->vq[i].call_fd = s->vq[i].err_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->xfer.m, NULL);
	pthread_cond_init(&s->xfer.c, NULL);
	s->xfer.fd = s->xfer.cancel_fd = -1;
	if (o->backing) {
		s->backing = strdup(o->backing);
		if (!s->backing) {
			r = -ENOMEM;
			goto err_free;
		}
		s->o.backing = s->backing;
	}
	s->nvqs = o->type == VSIM_TYPE_NET ? 2 * o->queue_pairs + 1 : 1;
	for (i = 0; i < s->nvqs; i++) {
		r = vsim_vq_alloc(&s->vq[i], o->vq_size);
		if (r < 0)
			goto err_free;
	}
	s->backend_offered = (1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2) |
			     (1ULL << VHOST_BACKEND_F_IOTLB_BATCH) |
			     (1ULL << VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK);
	if (!o->no_suspend)
		s->backend_offered |= 1ULL << VHOST_BACKEND_F_SUSPEND;
	if (!o->no_resume)
		s->backend_offered |= 1ULL << VHOST_BACKEND_F_RESUME;
	if (!o->no_state)
		s->backend_offered |= 1ULL << VHOST_BACKEND_F_DEVICE_STATE;
	if (o->new_owner)	/* the live-update proposal (owner.c) */
		s->backend_offered |= (1ULL << VHOST_BACKEND_F_NEW_OWNER) |
				      (1ULL << VHOST_BACKEND_F_IOTLB_REMAP);
	s->dev_features = (1ULL << VIRTIO_F_VERSION_1) |
			  (1ULL << VIRTIO_F_ACCESS_PLATFORM) |
			  (1ULL << VIRTIO_RING_F_EVENT_IDX) |
			  (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	snprintf(s->model, sizeof(s->model), "vdpa-sim://net");
	r = o->type == VSIM_TYPE_NET ? vsim_net_init(s) : vsim_blk_init(s);
	if (r < 0)
		goto err_free;
	if (vsim_pc_offered(s))	/* pre-copy proposal: a write-back cache */
		s->backend_offered |=
			1ULL << VHOST_BACKEND_F_DEVICE_STATE_PRECOPY;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->xfer.cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->epfd < 0 || s->stop_fd < 0 || s->xfer.cancel_fd < 0) {
		r = -errno;
		goto err_free;
	}
	ev.data.u64 = EV(EV_STOP, 0);
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->stop_fd, &ev) < 0) {
		r = -errno;
		goto err_free;
	}
	device_reset(s);
	*ret = s;
	return 0;

err_free:
	vsim_destroy(s);
	return r;
}

void vsim_destroy(struct vsim *s)
{
	unsigned int i;

	if (!s)
		return;
	conn_close(s);
	vsim_state_cancel(s);
	for (i = 0; i < VSIM_MAX_PENDING; i++)
		close_fd(&s->pending[i]);
	if (s->listen_fd >= 0) {
		struct stat st;

		close_fd(&s->listen_fd);
		/* only the socket we made: another may have its place now */
		if (s->sock_path && lstat(s->sock_path, &st) == 0 &&
		    st.st_dev == s->sock_dev && st.st_ino == s->sock_ino)
			unlink(s->sock_path);
	}
	vsim_blk_fini(s);
	for (i = 0; i < VSIM_MAX_VQS; i++)
		free(s->vq[i].iov);
	free(s->maps);
	close_fd(&s->epfd);
	close_fd(&s->stop_fd);
	close_fd(&s->xfer.cancel_fd);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->xfer.m);
	pthread_cond_destroy(&s->xfer.c);
	free(s->sock_path);
	free(s->backing);
	free(s);
}

/* ---- requests -------------------------------------------------------------- */

struct reply {
	uint8_t buf[VSIM_MAX_PAYLOAD];
	uint32_t len;
	int fd;
};

static bool is_eventfd(int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = 0;
	return strcmp(link, "anon_inode:[eventfd]") == 0;
}

/*
 * An fd-carrying request: fd field -1 = unbind (no fd may be attached),
 * otherwise an eventfd must be attached. On success *slot owns the new fd.
 */
static int take_eventfd(int field, int *fd, int *slot)
{
	if (field == -1) {
		if (*fd >= 0)
			return -EINVAL;
		close_fd(slot);
		return 0;
	}
	if (*fd < 0)
		return -EBADF;
	if (!is_eventfd(*fd))
		return -EINVAL;
	close_fd(slot);
	*slot = *fd;
	*fd = -1;
	return 0;
}

static void schedule_all(struct vsim *s)
{
	unsigned int i;

	for (i = 0; i < s->nvqs; i++)
		if (vsim_vq_can_run(s, &s->vq[i]))
			s->work |= 1ULL << i;
}

static int set_status(struct vsim *s, uint8_t st)
{
	uint8_t old = s->status;

	/* Userspace must not remove status bits except by a reset to 0. */
	if (st != 0 && (old & ~st) != 0)
		return -EINVAL;
	if (st == 0) {
		device_reset(s);
		return 0;
	}
	s->status = st;
	if ((st & VIRTIO_CONFIG_S_DRIVER_OK) &&
	    !(old & VIRTIO_CONFIG_S_DRIVER_OK)) {
		unsigned int i;

		for (i = 0; i < s->nvqs; i++)
			s->vq[i].resolved = false;
		/* 6.12's vdpa_sim looks at a ring when it is kicked, not at
		 * DRIVER_OK; this simulator otherwise takes what is there */
		if (s->o.kernel != VSIM_KERNEL_6_12)
			schedule_all(s);
	}
	return 0;
}

static int kick_bind(struct vsim *s, unsigned int idx, int field, int *fd)
{
	struct vsim_vq *vq = &s->vq[idx];
	int old = vq->kick_fd, r;

	if (old >= 0)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, old, NULL);
	r = take_eventfd(field, fd, &vq->kick_fd);
	if (vq->kick_fd >= 0) {
		struct epoll_event ev = {
			.events = EPOLLIN, .data.u64 = EV(EV_KICK, idx),
		};

		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, vq->kick_fd, &ev) < 0) {
			r = r ? r : -errno;
			if (old != vq->kick_fd)
				close_fd(&vq->kick_fd);
		}
		/* A kick that happened before binding is not lost. */
		if (vsim_vq_can_run(s, vq))
			s->work |= 1ULL << idx;
	}
	return r;
}

/*
 * 6.12's vhost_vdpa_vring_ioctl(): SET_VRING_ADDR and SET_VRING_BASE are
 * refused while DRIVER_OK is set and the device is not suspended (after
 * vhost core's own checks, which run first).
 */
static bool running_612(const struct vsim *s)
{
	return s->o.kernel == VSIM_KERNEL_6_12 &&
	       (s->status & VIRTIO_CONFIG_S_DRIVER_OK) && !s->suspended;
}

/* vhost_vdpa_vring_ioctl + vhost_vring_ioctl */
static int vring_req(struct vsim *s, uint32_t req, uint8_t *p, int *fd,
		     struct reply *rep)
{
	struct vhost_vring_state st;
	struct vsim_vq *vq;
	uint32_t idx;

	if (!s->owner)
		return -EPERM;
	memcpy(&idx, p, sizeof(idx));
	if (idx >= s->nvqs)
		return -ENOBUFS;
	vq = &s->vq[idx];
	memcpy(&st, p, sizeof(st));	/* every vring request has >= 8 bytes */

	switch (req) {
	case VHOST_SET_VRING_NUM:
		if (!st.num || st.num > 0xffff || (st.num & (st.num - 1)) ||
		    st.num > s->o.vq_size)
			return -EINVAL;
		vq->num = st.num;
		vq->resolved = false;
		return 0;
	case VHOST_SET_VRING_ADDR: {
		struct vhost_vring_addr a;

		memcpy(&a, p, sizeof(a));
		if (s->suspended && vsim_fault(s, VSIM_FAULT_VRING_SET_REFUSED))
			return -EBUSY;
		if (a.flags & ~(1u << VHOST_VRING_F_LOG))
			return -EOPNOTSUPP;
		if ((a.avail_user_addr & (VRING_AVAIL_ALIGN_SIZE - 1)) ||
		    (a.used_user_addr & (VRING_USED_ALIGN_SIZE - 1)) ||
		    (a.log_guest_addr & (VRING_USED_ALIGN_SIZE - 1)) ||
		    (a.desc_user_addr & (VRING_DESC_ALIGN_SIZE - 1)))
			return -EINVAL;
		if (running_612(s))
			return -EINVAL;
		if (s->o.kernel != VSIM_KERNEL_NONE && vq->ready) {
			vq->next_desc = a.desc_user_addr;
			vq->next_avail = a.avail_user_addr;
			vq->next_used = a.used_user_addr;
			vq->addr_pending = true;
			return 0;
		}
		vq->desc_addr = a.desc_user_addr;
		vq->avail_addr = a.avail_user_addr;
		vq->used_addr = a.used_user_addr;
		vq->resolved = false;
		return 0;
	}
	case VHOST_SET_VRING_BASE:
		if (s->suspended && vsim_fault(s, VSIM_FAULT_VRING_SET_REFUSED))
			return -EBUSY;
		if (st.num > 0xffff)
			return -EINVAL;
		if (running_612(s))
			return -EINVAL;
		vq->last_avail = vq->avail_cache = (uint16_t)st.num;
		/* vdpasim_set_vq_state() moves only the avail index */
		if (s->o.kernel == VSIM_KERNEL_NONE || !vq->ready)
			vq->used_idx = vq->used_pub = (uint16_t)st.num;
		return 0;
	case VHOST_GET_VRING_BASE:
		st.num = vsim_fault_base(s, idx, vq->last_avail);
		memcpy(rep->buf, &st, sizeof(st));
		return 0;
	case VHOST_SET_VRING_KICK:
	case VHOST_SET_VRING_CALL:
	case VHOST_SET_VRING_ERR: {
		struct vhost_vring_file f;

		memcpy(&f, p, sizeof(f));
		if (req == VHOST_SET_VRING_KICK)
			return kick_bind(s, idx, f.fd, fd);
		return take_eventfd(f.fd, fd, req == VHOST_SET_VRING_CALL ?
				    &vq->call_fd : &vq->err_fd);
	}
	case VHOST_VDPA_SET_VRING_ENABLE:
		if (st.num && !vq->ready) {
			if (vq->addr_pending) {
				vq->desc_addr = vq->next_desc;
				vq->avail_addr = vq->next_avail;
				vq->used_addr = vq->next_used;
				vq->addr_pending = false;
			}
			vq->used_idx = vq->used_pub = vq->last_avail;
			vq->avail_cache = vq->last_avail;
			vq->resolved = false;
		}
		vq->ready = !!st.num;
		if (vsim_vq_can_run(s, vq))
			s->work |= 1ULL << idx;
		return 0;
	case VHOST_VDPA_GET_VRING_GROUP:
		st.num = 0;
		memcpy(rep->buf, &st, sizeof(st));
		return 0;
	case VHOST_VDPA_SET_GROUP_ASID:
		return st.num ? -EINVAL : 0;
	}
	return -ENOTTY;
}

static int config_req(struct vsim *s, uint32_t req, const uint8_t *p,
		      uint32_t size, struct reply *rep)
{
	struct vhost_vdpa_config c;

	memcpy(&c, p, sizeof(c));
	if (req == VHOST_VDPA_SET_CONFIG && size - sizeof(c) != c.len)
		return -EBADMSG;
	build_config(s);
	if (c.len == 0 || c.off > s->config_size)
		return -EINVAL;
	/* vhost_vdpa_config_validate() says E2BIG, but its caller folds
	 * every failure into EINVAL: so does the simulator. */
	if (c.len > s->config_size - c.off)
		return -EINVAL;
	if (req == VHOST_VDPA_GET_CONFIG) {
		memcpy(rep->buf, &c, sizeof(c));
		memcpy(rep->buf + sizeof(c), s->config + c.off, c.len);
		vsim_fault_config(s, rep->buf + sizeof(c), c.len);
		rep->len = sizeof(c) + c.len;
		return 0;
	}
	/* Only the (legacy-writable) net MAC field takes writes. */
	if (s->o.type == VSIM_TYPE_NET) {
		uint32_t i;

		for (i = 0; i < c.len; i++)
			if (c.off + i < 6)
				s->mac[c.off + i] = p[sizeof(c) + i];
	}
	return 0;
}

/* Expected request payload size for a known request, -1 unknown. */
static long req_size(const struct vsim *s, uint32_t req)
{
	switch (req) {
	case VHOST_GET_FEATURES:
	case VHOST_SET_FEATURES:
	case VHOST_SET_OWNER:
	case VHOST_GET_BACKEND_FEATURES:
	case VHOST_SET_BACKEND_FEATURES:
	case VHOST_SET_VRING_NUM:
	case VHOST_SET_VRING_ADDR:
	case VHOST_SET_VRING_BASE:
	case VHOST_GET_VRING_BASE:
	case VHOST_SET_VRING_KICK:
	case VHOST_SET_VRING_CALL:
	case VHOST_SET_VRING_ERR:
	case VHOST_VDPA_GET_DEVICE_ID:
	case VHOST_VDPA_GET_STATUS:
	case VHOST_VDPA_SET_STATUS:
	case VHOST_VDPA_SET_VRING_ENABLE:
	case VHOST_VDPA_GET_VRING_NUM:
	case VHOST_VDPA_SET_CONFIG_CALL:
	case VHOST_VDPA_GET_IOVA_RANGE:
	case VHOST_VDPA_GET_CONFIG_SIZE:
	case VHOST_VDPA_GET_AS_NUM:
	case VHOST_VDPA_GET_VRING_GROUP:
	case VHOST_VDPA_SET_GROUP_ASID:
	case VHOST_VDPA_GET_VQS_COUNT:
	case VHOST_VDPA_GET_GROUP_NUM:
	case VHOST_VDPA_SUSPEND:
		return _IOC_DIR(req) & _IOC_WRITE ? (long)_IOC_SIZE(req) : 0;
	case VHOST_VDPA_RESUME:
		return s->o.no_resume ? -1 : 0;
	case VHOST_VDPA_SET_DEVICE_STATE_FD:
		return s->o.no_state ? -1 :
		       (long)sizeof(struct vhost_vdpa_device_state_fd);
	case VHOST_VDPA_CHECK_DEVICE_STATE:
		return s->o.no_state ? -1 : 0;
	case VHOST_VDPA_GET_PRECOPY_INFO:	/* pre-copy (state.c) */
	case VHOST_VDPA_PRECOPY_END:
		return vsim_pc_offered(s) ? 0 : -1;
	case VHOST_NEW_OWNER:	/* answered as Linux does without it too */
		return 0;
	case VHOST_VDPA_GET_CONFIG:
	case VHOST_VDPA_SET_CONFIG:
		return sizeof(struct vhost_vdpa_config);
	case VSIM_REQ_HELLO:
		return sizeof(struct vsim_hello);
	case VSIM_REQ_GET_MODEL:
		return 0;
	case VSIM_REQ_IOTLB_MSG:
		return sizeof(struct vhost_msg_v2);
	case VSIM_REQ_ADD_MEM:
	case VSIM_REQ_DEL_MEM:
		return sizeof(struct vsim_mem);
	default:
		return -1;
	}
}

static void put_u64(struct reply *rep, uint64_t v)
{
	memcpy(rep->buf, &v, sizeof(v));
}

static void put_u32(struct reply *rep, uint32_t v)
{
	memcpy(rep->buf, &v, sizeof(v));
}

static int handle(struct vsim *s, const struct vsim_hdr *h, uint8_t *p,
		  int *fd, struct reply *rep)
{
	uint32_t req = h->request;
	long want = req_size(s, req);
	uint64_t u64;
	uint32_t u32;

	if (h->flags & VSIM_F_REPLY)
		return -EBADMSG;
	if (*fd >= 0 && !vsim_request_takes_fd(req))
		return -EBADMSG;
	if (!s->hello_done && req != VSIM_REQ_HELLO)
		return -EPROTO;
	if (vsim_owner_gate(s, req))	/* another process: as Linux */
		return -EPERM;
	if (want < 0) {
		/* Linux 6.1 has no RESUME: the vring path faults on argp. */
		if (req == VHOST_VDPA_RESUME)
			return -EFAULT;
		return -ENOTTY;
	}
	if (req == VHOST_VDPA_SET_CONFIG ? h->size < (uint32_t)want :
	    h->size != (uint32_t)want)
		return -EBADMSG;
	if (_IOC_TYPE(req) == VHOST_VIRTIO && (_IOC_DIR(req) & _IOC_READ) &&
	    req != VHOST_VDPA_GET_CONFIG) {
		rep->len = _IOC_SIZE(req);
		if (_IOC_DIR(req) & _IOC_WRITE)
			memcpy(rep->buf, p, rep->len);
	}

	switch (req) {
	case VSIM_REQ_HELLO: {
		struct vsim_hello hl;

		memcpy(&hl, p, sizeof(hl));
		if (s->hello_done || hl.magic != VSIM_WIRE_MAGIC)
			return -EPROTO;
		if (hl.version != VSIM_WIRE_VERSION)
			return -EPROTONOSUPPORT;
		hl.device_id = s->o.type == VSIM_TYPE_NET ? VIRTIO_ID_NET :
							     VIRTIO_ID_BLOCK;
		hl.reserved = 0;
		memcpy(rep->buf, &hl, sizeof(hl));
		rep->len = sizeof(hl);
		s->hello_done = true;
		return 0;
	}
	case VSIM_REQ_GET_MODEL:
		memset(rep->buf, 0, sizeof(struct vsim_model));
		memcpy(rep->buf, s->model, strlen(s->model));
		rep->len = sizeof(struct vsim_model);
		return 0;
	case VHOST_SET_BACKEND_FEATURES:
		memcpy(&u64, p, sizeof(u64));
		if (u64 & ~s->backend_offered)
			return -EOPNOTSUPP;
		s->backend_features = u64;
		return 0;
	case VHOST_GET_BACKEND_FEATURES:
		put_u64(rep, s->backend_offered);
		return 0;
	case VHOST_SET_OWNER:
		if (s->owner)
			return -EBUSY;
		s->owner = true;
		s->owner_pid = s->sender;
		return 0;
	case VHOST_NEW_OWNER:
		return vsim_new_owner(s);
	case VHOST_VDPA_GET_DEVICE_ID:
		put_u32(rep, s->o.type == VSIM_TYPE_NET ? VIRTIO_ID_NET :
							 VIRTIO_ID_BLOCK);
		return 0;
	case VHOST_VDPA_GET_STATUS:
		rep->buf[0] = s->status;
		return 0;
	case VHOST_VDPA_SET_STATUS:
		return set_status(s, p[0]);
	case VHOST_VDPA_GET_CONFIG:
	case VHOST_VDPA_SET_CONFIG:
		return config_req(s, req, p, h->size, rep);
	case VHOST_VDPA_GET_CONFIG_SIZE:
		build_config(s);
		put_u32(rep, s->config_size);
		return 0;
	case VHOST_GET_FEATURES:
		put_u64(rep, s->dev_features);
		return 0;
	case VHOST_SET_FEATURES:
		if (s->status & VIRTIO_CONFIG_S_FEATURES_OK)
			return -EBUSY;
		memcpy(&u64, p, sizeof(u64));
		/* vdpa_sim: DMA mapping must be done by the driver */
		if (!(u64 & (1ULL << VIRTIO_F_ACCESS_PLATFORM)))
			return -EINVAL;
		s->features = u64 & s->dev_features;
		return 0;
	case VHOST_VDPA_GET_VRING_NUM: {
		uint16_t n = (uint16_t)s->o.vq_size;

		memcpy(rep->buf, &n, sizeof(n));
		return 0;
	}
	case VHOST_VDPA_GET_VQS_COUNT:
		put_u32(rep, s->nvqs);
		return 0;
	case VHOST_VDPA_GET_GROUP_NUM:
	case VHOST_VDPA_GET_AS_NUM:
		put_u32(rep, 1);
		return 0;
	case VHOST_VDPA_GET_IOVA_RANGE: {
		struct vhost_vdpa_iova_range r = {
			.first = s->o.iova_first, .last = s->o.iova_last,
		};

		memcpy(rep->buf, &r, sizeof(r));
		return 0;
	}
	case VHOST_VDPA_SET_CONFIG_CALL: {
		int field;

		memcpy(&field, p, sizeof(field));
		return take_eventfd(field, fd, &s->config_call_fd);
	}
	case VHOST_VDPA_SUSPEND:
		if (s->o.no_suspend)
			return -EOPNOTSUPP;
		/* 6.12's vhost-vdpa: not DRIVER_OK, the device is not asked */
		if (s->o.kernel == VSIM_KERNEL_6_12 &&
		    !(s->status & VIRTIO_CONFIG_S_DRIVER_OK))
			return 0;
		/* Rings are only touched by this thread: nothing in flight. */
		vsim_fault_suspend(s);
		s->suspended = true;
		return 0;
	case VHOST_VDPA_RESUME:
		if (s->o.kernel == VSIM_KERNEL_6_12 &&
		    !(s->status & VIRTIO_CONFIG_S_DRIVER_OK))
			return 0;
		vsim_fault_resume(s);
		s->suspended = false;
		s->wb_saved = false;	/* a rolled-back save: ours again */
		if (!vsim_fault(s, VSIM_FAULT_RESUME_DROPS_KICK))
			schedule_all(s);
		return 0;
	case VHOST_VDPA_SET_DEVICE_STATE_FD: {
		struct vhost_vdpa_device_state_fd a;
		int r;

		memcpy(&a, p, sizeof(a));
		r = vsim_state_set_fd(s, &a, fd);
		memcpy(rep->buf, &a, sizeof(a));
		return r;
	}
	case VHOST_VDPA_CHECK_DEVICE_STATE:
		return vsim_state_check(s);
	case VHOST_VDPA_GET_PRECOPY_INFO: {
		struct vhost_vdpa_precopy_info pi;
		int r = vsim_pc_info(s, &pi);

		memcpy(rep->buf, &pi, sizeof(pi));
		return r;
	}
	case VHOST_VDPA_PRECOPY_END:
		vsim_pc_end(s);
		return 0;
	case VSIM_REQ_IOTLB_MSG: {
		struct vhost_msg_v2 m;
		int r;

		if (!s->owner)
			return -EPERM;
		memcpy(&m, p, sizeof(m));
		/* vhost_chr_write_iter() refuses these before any handler */
		if ((m.iotlb.type == VHOST_IOTLB_UPDATE ||
		     m.iotlb.type == VHOST_IOTLB_INVALIDATE) && !m.iotlb.size)
			return -EINVAL;
		if (!vsim_is_owner(s))	/* the handler's check_owner */
			return -EFAULT;
		if (m.type == VHOST_IOTLB_MSG_V2 && !m.asid &&
		    m.iotlb.type == VHOST_IOTLB_REMAP)
			r = vsim_iotlb_remap(s, &m.iotlb);
		else
			r = vsim_iotlb_msg(s, &m);
		if (r < 0) {
			/* Linux's vhost_chr_write_iter() reports every IOTLB
			 * handler error as EFAULT; the log keeps the reason. */
			vsim_log(s, LOG_NOTICE, "IOTLB message type %u iova 0x%llx size 0x%llx refused: %s",
				 m.iotlb.type, (unsigned long long)m.iotlb.iova,
				 (unsigned long long)m.iotlb.size, strerror(-r));
			return -EFAULT;
		}
		return (int)sizeof(m);
	}
	case VSIM_REQ_ADD_MEM:
	case VSIM_REQ_DEL_MEM: {
		struct vsim_mem m;
		int r;

		if (!s->owner)
			return -EPERM;
		memcpy(&m, p, sizeof(m));
		if (req == VSIM_REQ_DEL_MEM)
			return vsim_mem_del(s, &m);
		r = vsim_mem_add(s, &m, *fd);
		if (r == 0)
			*fd = -1;	/* consumed */
		return r;
	}
	default:
		(void)u32;
		return vring_req(s, req, p, fd, rep);
	}
}

static void handle_msg(struct vsim *s)
{
	struct reply rep;
	struct vsim_hdr h, out;
	int fd = -1, r;
	unsigned int n;

	for (n = 0; n < 64 && s->conn_fd >= 0; n++) {
		memset(&h, 0, sizeof(h));
		r = vsim_recv_cred(s->conn_fd, &h, s->msg, sizeof(s->msg),
				   &fd, &s->sender);
		if (r == -EAGAIN)
			return;
		if (!s->sender)
			s->sender = s->peer_pid;
		if (r < 0 && r != -EBADMSG) {
			conn_close(s);
			return;
		}
		rep.len = 0;
		rep.fd = -1;
		if (r == 0) {
			r = handle(s, &h, s->msg, &fd, &rep);
			close_fd(&fd);
		}
		if (r < 0)
			rep.len = 0;
		vsim_log(s, r < 0 ? LOG_INFO : LOG_DEBUG, "%s -> %d",
			 vsim_request_name(h.request), r);
		out.request = h.request;
		out.flags = VSIM_F_REPLY | (rep.fd >= 0 ? VSIM_F_FD : 0);
		out.size = rep.len;
		out.result = r;
		r = vsim_send(s->conn_fd, &out, rep.buf, rep.fd);
		close_fd(&rep.fd);
		if (r < 0) {
			conn_close(s);
			return;
		}
	}
}

/* ---- loop ------------------------------------------------------------------ */

static void run_work(struct vsim *s)
{
	uint64_t w = s->work;

	while (w) {
		unsigned int i = (unsigned int)__builtin_ctzll(w);

		w &= w - 1;
		if (!vsim_vq_can_run(s, &s->vq[i])) {
			s->work &= ~(1ULL << i);
			continue;
		}
		if (s->o.type == VSIM_TYPE_NET)
			vsim_net_kick(s, i);
		else
			vsim_blk_kick(s, i);
	}
}

static int add_conn(struct vsim *s, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV(EV_CONN, 0) };

	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	s->conn_fd = fd;
	return 0;
}

int vsim_serve_fd(struct vsim *s, int sock)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fl;

	if (!s || sock < 0)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	if (s->conn_fd >= 0) {
		pthread_mutex_unlock(&s->lock);
		close(sock);
		return -EBUSY;
	}
	fl = fcntl(sock, F_GETFL);
	fcntl(sock, F_SETFL, fl | O_NONBLOCK);
	vsim_pass_cred(sock);
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		s->peer_pid = cred.pid;
	fl = add_conn(s, sock);
	pthread_mutex_unlock(&s->lock);
	return fl;
}

static void do_accept(struct vsim *s)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	unsigned int i;
	int fd;

	fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    cred.uid != geteuid()) {
		vsim_log(s, LOG_WARNING, "refusing peer of uid %u",
			 (unsigned int)cred.uid);
		close(fd);
		return;
	}
	vsim_pass_cred(fd);
	if (s->conn_fd < 0) {
		s->peer_pid = cred.pid;
		if (add_conn(s, fd) == 0)
			vsim_log(s, LOG_INFO, "driver connected (pid %d)",
				 (int)cred.pid);
		return;
	}
	/* Already open: answer its first message with -EBUSY, then close. */
	for (i = 0; i < VSIM_MAX_PENDING; i++)
		if (s->pending[i] < 0)
			break;
	ev.data.u64 = EV(EV_PENDING, i);
	if (i == VSIM_MAX_PENDING ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close(fd);
		return;
	}
	s->pending[i] = fd;
}

static void refuse_pending(struct vsim *s, unsigned int i)
{
	struct vsim_hdr h = { 0 }, out = { 0 };
	int fd = -1, r;

	pid_t pid;

	r = vsim_recv_cred(s->pending[i], &h, s->msg, sizeof(s->msg), &fd,
			   &pid);
	if (r == -EAGAIN)
		return;
	if (fd >= 0)
		close(fd);
	if (r == 0 || r == -EBADMSG) {
		out.request = h.request;
		out.flags = VSIM_F_REPLY;
		out.result = -EBUSY;
		vsim_send(s->pending[i], &out, NULL, -1);
	}
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->pending[i], NULL);
	close_fd(&s->pending[i]);
}

/*
 * Is something listening on the unix socket at path? 1 yes (a simulator,
 * or a socket of another kind), 0 no (no such file, or a socket nobody
 * listens on any more: left by a killed simulator), or -errno.
 */
static int probe_listener(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd, r;

	strcpy(a.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		r = 1;
	else if (errno == EAGAIN || errno == EPROTOTYPE)
		r = 1;		/* a full backlog, a stream socket: in use */
	else if (errno == ECONNREFUSED || errno == ENOENT)
		r = 0;
	else
		r = -errno;
	close(fd);
	return r;
}

static int listen_locked(struct vsim *s, const char *path);

/*
 * Simulators starting on one path at once: the probe, the removal of a
 * stale socket and the link are one step under an flock of the directory
 * (no lock files left behind).
 */
int vsim_listen(struct vsim *s, const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path) + 2], *slash;
	struct stat st;
	int lk, r;

	if (!s || !path || strlen(path) >= sizeof(dir) - 2)
		return -EINVAL;
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else
		*(slash == dir ? slash + 1 : slash) = 0;
	lk = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lk >= 0)
		flock(lk, LOCK_EX);
	r = listen_locked(s, path);
	if (!r && lstat(path, &st) == 0) {
		s->sock_dev = st.st_dev;
		s->sock_ino = st.st_ino;
	}
	if (lk >= 0)
		close(lk);	/* releases the lock */
	return r;
}

static int listen_locked(struct vsim *s, const char *path)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV(EV_LISTEN, 0) };
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old_mask;
	bool direct;
	int fd, r, tries;

	/*
	 * Bound under a temporary name, made 0600 by the umask before it
	 * exists, listening, and only then linked into place: whoever sees
	 * PATH can connect at once, and no other uid ever could (peers of
	 * another uid are refused via SO_PEERCRED as well). A socket some
	 * simulator still listens on is never taken over (-EADDRINUSE): it
	 * is probed with connect() first, and link() does not replace a file
	 * that appeared since. One nobody listens on any more is replaced.
	 * A path too long for the temporary suffix is bound directly
	 * (connects may then be refused until listen()).
	 */
	if (!s || !path || strlen(path) >= sizeof(a.sun_path))
		return -EINVAL;
	if (s->listen_fd >= 0)
		return -EBUSY;
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
		return -EEXIST;	/* never replace a file that is not a socket */
	r = probe_listener(path);
	if (r != 0)
		return r > 0 ? -EADDRINUSE : r;
	direct = snprintf(a.sun_path, sizeof(a.sun_path), "%s.%d", path,
			  (int)getpid()) >= (int)sizeof(a.sun_path);
	if (direct)
		strcpy(a.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink(a.sun_path);	/* ours (PID suffix), or the stale PATH */
	old_mask = umask(0177);
	r = bind(fd, (struct sockaddr *)&a, sizeof(a));
	umask(old_mask);
	if (r < 0) {
		r = -errno;
		goto err_close;
	}
	vsim_pass_cred(fd);	/* accepted connections inherit it */
	if (listen(fd, 8) < 0) {
		r = -errno;
		goto err_unlink;
	}
	s->sock_path = strdup(path);
	if (!s->sock_path) {
		r = -ENOMEM;
		goto err_unlink;
	}
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		r = -errno;
		goto err_free;
	}
	for (tries = 0; !direct; tries++) {
		if (link(a.sun_path, path) == 0) {
			unlink(a.sun_path);
			break;
		}
		r = -errno;
		if (r == -EEXIST && lstat(path, &st) == 0 &&
		    !S_ISSOCK(st.st_mode)) {
			r = -EEXIST;
		} else if (r == -EEXIST) {
			r = probe_listener(path);
			if (r == 0 && tries < 3) {
				unlink(path);	/* stale: replace it */
				continue;
			}
			/* someone was quicker, or kept replacing it */
			r = r < 0 ? r : -EADDRINUSE;
		} else if (rename(a.sun_path, path) == 0) {
			break;	/* no hard links here: the probe must do */
		} else {
			r = -errno;
		}
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
		goto err_free;
	}
	s->listen_fd = fd;
	return 0;

err_free:
	free(s->sock_path);
	s->sock_path = NULL;
err_unlink:
	unlink(a.sun_path);
err_close:
	close(fd);
	return r;
}

void vsim_stop(struct vsim *s)
{
	signal_fd(s->stop_fd);
}

int vsim_run(struct vsim *s)
{
	struct epoll_event evs[16];
	bool stop = false;
	int n, i;

	while (!stop) {
		n = epoll_wait(s->epfd, evs, 16, s->work ? 0 : -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		pthread_mutex_lock(&s->lock);
		for (i = 0; i < n; i++) {
			uint32_t kind = (uint32_t)(evs[i].data.u64 >> 32);
			uint32_t idx = (uint32_t)evs[i].data.u64;
			uint64_t v;

			switch (kind) {
			case EV_STOP:
				stop = true;
				break;
			case EV_LISTEN:
				do_accept(s);
				break;
			case EV_CONN:
				handle_msg(s);
				break;
			case EV_PENDING:
				refuse_pending(s, idx);
				break;
			case EV_KICK:
				if (idx < s->nvqs && s->vq[idx].kick_fd >= 0 &&
				    read(s->vq[idx].kick_fd, &v, sizeof(v)) > 0 &&
				    vsim_vq_can_run(s, &s->vq[idx]))
					s->work |= 1ULL << idx;
				else if (idx < s->nvqs && s->suspended)
					vsim_fault_kick_suspended(s, idx);
				break;
			}
		}
		if (s->work)
			run_work(s);
		pthread_mutex_unlock(&s->lock);
	}
	return 0;
}

void vsim_get_status(struct vsim *s, struct vsim_status *ret)
{
	unsigned int i;

	memset(ret, 0, sizeof(*ret));
	pthread_mutex_lock(&s->lock);
	ret->status = s->status;
	ret->connected = s->conn_fd >= 0;
	ret->owner = s->owner;
	ret->suspended = s->suspended;
	ret->needs_reset = s->broken;
	memcpy(ret->reset_reason, s->reason, sizeof(ret->reset_reason));
	ret->features = s->features;
	ret->backend_features = s->backend_features;
	ret->nvqs = s->nvqs;
	for (i = 0; i < s->nvqs; i++) {
		ret->q[i] = s->vq[i].st;
		ret->last_avail[i] = s->vq[i].last_avail;
		ret->ready[i] = s->vq[i].ready;
	}
	memcpy(ret->mac, s->mac, 6);
	ret->curr_queue_pairs = s->curr_pairs;
	ret->promisc = s->promisc;
	ret->allmulti = s->allmulti;
	ret->dirty_sectors = s->wb.n;
	ret->flushes = s->flushes;
	ret->mem_regions = s->nregions;
	ret->iotlb_entries = s->nmaps;
	ret->state_transfers = s->transfers;
	pthread_mutex_unlock(&s->lock);
}

/* ---- thread mode ----------------------------------------------------------- */

struct vsim_thread {
	struct vsim *sim;
	pthread_t th;
};

static void *thread_main(void *arg)
{
	struct vsim_thread *t = arg;

	vsim_run(t->sim);
	return NULL;
}

int vsim_thread_start(const struct vsim_opts *o, int *ret_client_fd,
		      struct vsim_thread **ret)
{
	struct vsim_thread *t;
	int sv[2], r;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	r = vsim_create(o, &t->sim);
	if (r < 0)
		goto err_free;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		goto err_destroy;
	}
	r = vsim_serve_fd(t->sim, sv[1]);
	if (r < 0) {
		close(sv[0]);
		goto err_destroy;
	}
	r = -pthread_create(&t->th, NULL, thread_main, t);
	if (r < 0) {
		close(sv[0]);
		goto err_destroy;
	}
	*ret_client_fd = sv[0];
	*ret = t;
	return 0;

err_destroy:
	vsim_destroy(t->sim);
err_free:
	free(t);
	return r;
}

void vsim_thread_stop(struct vsim_thread *t)
{
	if (!t)
		return;
	vsim_stop(t->sim);
	pthread_join(t->th, NULL);
	vsim_destroy(t->sim);
	free(t);
}

struct vsim *vsim_thread_sim(struct vsim_thread *t)
{
	return t->sim;
}
