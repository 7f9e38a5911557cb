// SPDX-License-Identifier: MIT
/*
 * vhost-user request handlers. Every request is checked (msg.c: framing,
 * size, fds; here: values) before anything is applied; a request that
 * fails gets REPLY_ACK non-zero when the front-end asked for an ack,
 * otherwise the connection is closed (as DPDK's back-end does), and the
 * device is reset for the next front-end either way.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_blk.h>

#include "serve.h"
#include "relay.h"

int srv_log_level = LOG_NOTICE;

void srv_log(int level, const char *fmt, ...)
{
	static const char *const tag[] = {
		"emerg", "alert", "crit", "error", "warning", "notice",
		"info", "debug",
	};
	char line[512];
	va_list ap;

	if (level > srv_log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "vdpa-user serve: %s: %s\n",
		tag[level & 7], line);
}

/* Result of a handler: 0 done, <0 failed (err says why). */
struct ctx {
	struct srv *s;
	struct srv_msg *m;
	char err[256];
	bool replied;		/* the handler sent its own reply */
};

static int reply(struct ctx *c, const void *p, uint32_t size, int fd)
{
	int r = srv_reply(c->s, c->m->hdr.request, p, size, fd);

	c->replied = true;
	if (r < 0)
		snprintf(c->err, sizeof(c->err), "reply: %s", strerror(-r));
	return r;
}

static int reply_u64(struct ctx *c, uint64_t v)
{
	return reply(c, &v, sizeof(v), -1);
}

static uint64_t pl_u64(const struct srv_msg *m)
{
	uint64_t v;

	memcpy(&v, m->payload, sizeof(v));
	return v;
}

static int fail(struct ctx *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct ctx *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return err;
}

static bool is_pow2(uint32_t n)
{
	return n && !(n & (n - 1));
}

/* A ring index from a payload's first u32, checked against the queues. */
static int vq_index(struct ctx *c, uint32_t idx, struct srv_vq **ret)
{
	if (idx >= c->s->nvqs)
		return fail(c, -EINVAL, "vring index %u, the device has %u",
			    idx, c->s->nvqs);
	*ret = &c->s->vq[idx];
	return 0;
}

static bool running(const struct srv *s)
{
	return s->started && !s->suspended;
}

/*
 * A ring being set up again after the device was stopped (GET_VRING_BASE,
 * or a state saved): the front-end restarts it, so the device is reset
 * now and started afresh when the rings are ready.
 */
static void restart_pending(struct srv *s)
{
	if (s->started && s->suspended) {
		srv_log(LOG_INFO, "rings set up again after a stop: the device "
			"is reset and starts afresh");
		srv_state_free(s);
		srv_dev_reset(s);
	}
}

/*
 * Stop a running (or relaying) device: suspended on the guest's rings,
 * every ring's position read, the kicks let go of; blk: its write-back
 * cache flushed (QEMU's vhost-user-blk moves no device state, and the
 * destination reads the disk next).
 */
static int stop_device(struct ctx *c)
{
	struct srv *s = c->s;
	int r;

	s->st.t_get_vring_base_ns = srv_now_ns();
	s->st.stops++;
	if (s->relay) {
		r = srv_relay_stop_suspended(s, c->err, sizeof(c->err));
		if (r < 0)
			return r;
		s->suspended = true;
		srv_dev_release_kicks(s);
	} else {
		r = srv_dev_stop(s, c->err, sizeof(c->err));
		if (r < 0)
			return r;
	}
	if (s->caps.device_id == VIRTIO_ID_BLOCK)
		return srv_blk_flush(s, c->err, sizeof(c->err));
	return 0;
}

/*
 * A ring set up again while the device runs: the front-end restarts it
 * (QEMU does after a failed migration). The device is stopped as for
 * GET_VRING_BASE, every ring keeping its position, and restarted when the
 * rings are ready again.
 */
static int stop_for_setup(struct ctx *c, const char *what, uint32_t idx)
{
	struct srv *s = c->s;
	int r;

	if (!running(s) && !s->relay)
		return 0;
	srv_log(LOG_NOTICE, "ring %u: %s while the device runs: stopping it, "
		"it restarts when the rings are ready", idx, what);
	r = stop_device(c);
	if (r < 0)
		return r;
	restart_pending(s);
	return 0;
}

static int h_get_features(struct ctx *c)
{
	return reply_u64(c, c->s->offered);
}

static int h_set_features(struct ctx *c)
{
	struct srv *s = c->s;
	uint64_t f = pl_u64(c->m);
	bool log_on = f & (1ULL << VU_F_LOG_ALL);
	int r;

	if (f & ~s->offered)
		return fail(c, -EINVAL, "SET_FEATURES 0x%" PRIx64 ": bits 0x%"
			    PRIx64 " not offered", f, f & ~s->offered);
	if (running(s) && (f ^ s->features) & ~(1ULL << VU_F_LOG_ALL))
		return fail(c, -EBUSY, "SET_FEATURES 0x%" PRIx64 " while the "
			    "device runs with 0x%" PRIx64 " (only LOG_ALL may "
			    "change)", f, s->features);
	if (running(s)) {
		r = srv_log_switch(s, log_on, c->err, sizeof(c->err));
		if (r < 0)
			return r;
	}
	s->features = f;
	s->features_set = true;
	return 0;
}

static int h_get_protocol_features(struct ctx *c)
{
	return reply_u64(c, c->s->proto_offered);
}

static int h_set_protocol_features(struct ctx *c)
{
	uint64_t p = pl_u64(c->m);

	if (p & ~c->s->proto_offered)
		return fail(c, -EINVAL, "SET_PROTOCOL_FEATURES 0x%" PRIx64
			    ": bits 0x%" PRIx64 " not offered", p,
			    p & ~c->s->proto_offered);
	c->s->proto = p;
	return 0;
}

static int h_get_queue_num(struct ctx *c)
{
	/* net: queue pairs (as DPDK), blk: queues */
	return reply_u64(c, c->s->caps.device_id == VIRTIO_ID_NET ?
			 c->s->nvqs / 2 : c->s->nvqs);
}

static void vq_close_fds(struct srv_vq *v)
{
	if (v->kick_fd >= 0)
		close(v->kick_fd);
	if (v->call_fd >= 0)
		close(v->call_fd);
	if (v->err_fd >= 0)
		close(v->err_fd);
	v->kick_fd = v->call_fd = v->err_fd = -1;
}

/* Back to a freshly connected front-end's device (memory kept). */
static void reset_rings(struct srv *s)
{
	char err[256];
	uint32_t i;

	if (s->relay && srv_relay_stop_suspended(s, err, sizeof(err)) < 0)
		srv_log(LOG_WARNING, "stopping the relay: %s", err);
	srv_state_free(s);
	srv_dev_reset(s);
	for (i = 0; i < SERVE_MAX_VQS; i++) {
		vq_close_fds(&s->vq[i]);
		memset(&s->vq[i], 0, sizeof(s->vq[i]));
		s->vq[i].kick_fd = s->vq[i].call_fd = s->vq[i].err_fd = -1;
	}
	s->features = 0;
	s->features_set = false;
}

static int h_set_owner(struct ctx *c)
{
	c->s->owner = true;
	return 0;
}

static int h_reset(struct ctx *c)
{
	srv_log(LOG_INFO, "%s: device reset",
		vu_request_name(c->m->hdr.request));
	reset_rings(c->s);
	return 0;
}

static int h_set_mem_table(struct ctx *c)
{
	return srv_set_mem_table(c->s, c->m, c->err, sizeof(c->err));
}

static int h_set_vring_num(struct ctx *c)
{
	struct vhost_vring_state st;
	struct srv_vq *v = NULL;
	int r;

	memcpy(&st, c->m->payload, sizeof(st));
	r = vq_index(c, st.index, &v);
	if (r < 0)
		return r;
	if (!is_pow2(st.num) || st.num > c->s->caps.vq_max_size)
		return fail(c, -EINVAL, "ring %u: size %u (a power of two, "
			    "1..%u)", st.index, st.num, c->s->caps.vq_max_size);
	if (v->num_set && v->num == st.num && (running(c->s) || c->s->relay))
		return 0;	/* the same again */
	r = stop_for_setup(c, "SET_VRING_NUM", st.index);
	if (r < 0)
		return r;
	restart_pending(c->s);
	v->num = st.num;
	v->num_set = true;
	v->addr_set = false;	/* the addresses are checked for a size */
	return 0;
}

static int h_set_vring_addr(struct ctx *c)
{
	struct srv *s = c->s;
	struct vhost_vring_addr a;
	uint64_t d, av, u, n;
	struct srv_vq *v = NULL;
	int r;

	memcpy(&a, c->m->payload, sizeof(a));
	r = vq_index(c, a.index, &v);
	if (r < 0)
		return r;
	if (a.flags & ~(1u << VHOST_VRING_F_LOG))
		return fail(c, -EINVAL, "ring %u: flags 0x%x", a.index,
			    a.flags);
	if (!v->num_set)
		return fail(c, -EINVAL, "ring %u: SET_VRING_ADDR before "
			    "SET_VRING_NUM", a.index);
	n = v->num;
	if ((a.desc_user_addr & 15) || (a.avail_user_addr & 1) ||
	    (a.used_user_addr & 3))
		return fail(c, -EINVAL, "ring %u: misaligned ring address "
			    "(desc 0x%llx avail 0x%llx used 0x%llx)", a.index,
			    (unsigned long long)a.desc_user_addr,
			    (unsigned long long)a.avail_user_addr,
			    (unsigned long long)a.used_user_addr);
	if (!srv_va_to_gpa(s, a.desc_user_addr, 16 * n, &d) ||
	    !srv_va_to_gpa(s, a.avail_user_addr, 6 + 2 * n, &av) ||
	    !srv_va_to_gpa(s, a.used_user_addr, 6 + 8 * n, &u))
		return fail(c, -EINVAL, "ring %u: ring outside guest memory",
			    a.index);
	if ((a.flags & (1u << VHOST_VRING_F_LOG)) &&
	    ((a.log_guest_addr & 3) ||
	     !srv_gpa_valid(s, a.log_guest_addr, 6 + 8 * n)))
		return fail(c, -EINVAL, "ring %u: log address 0x%llx outside "
			    "guest memory", a.index,
			    (unsigned long long)a.log_guest_addr);
	if ((running(s) || s->relay) && v->addr_set && d == v->desc_gpa &&
	    av == v->avail_gpa && u == v->used_gpa) {
		/* the log flag changes on a running ring (LOG_ALL) */
		v->addr = a;
		return 0;
	}
	r = stop_for_setup(c, "SET_VRING_ADDR", a.index);
	if (r < 0)
		return r;
	restart_pending(s);
	v->addr = a;
	v->desc_gpa = d;
	v->avail_gpa = av;
	v->used_gpa = u;
	v->addr_set = true;
	return 0;
}

static int h_set_vring_base(struct ctx *c)
{
	struct vhost_vring_state st;
	struct srv_vq *v = NULL;
	int r;

	memcpy(&st, c->m->payload, sizeof(st));
	r = vq_index(c, st.index, &v);
	if (r < 0)
		return r;
	if (st.num > 0xffff)
		return fail(c, -EINVAL, "ring %u: base %u", st.index, st.num);
	r = stop_for_setup(c, "SET_VRING_BASE", st.index);
	if (r < 0)
		return r;
	restart_pending(c->s);
	v->base = (uint16_t)st.num;
	v->base_set = true;
	return 0;
}

/* SUSPEND semantics: nothing touches the ring once this is answered. */
static int h_get_vring_base(struct ctx *c)
{
	struct srv *s = c->s;
	struct vhost_vring_state st;
	struct srv_vq *v = NULL;
	int r;

	memcpy(&st, c->m->payload, sizeof(st));
	r = vq_index(c, st.index, &v);
	if (r < 0)
		return r;
	if (s->relay || running(s)) {
		r = stop_device(c);
		if (r < 0)
			return r;
	}
	st.num = v->base;
	v->stopped = true;
	v->enabled = false;
	srv_log(LOG_INFO, "ring %u stopped at %u", st.index, st.num);
	return reply(c, &st, sizeof(st), -1);
}

static int h_set_vring_fd(struct ctx *c)
{
	struct srv *s = c->s;
	uint64_t u = pl_u64(c->m);
	uint32_t idx = (uint32_t)(u & VU_VRING_IDX_MASK);
	uint32_t req = c->m->hdr.request;
	int fd = c->m->nfds ? c->m->fds[0] : -1;
	struct srv_vq *v = NULL;
	int *slot, r;

	if (u & ~(VU_VRING_IDX_MASK | VU_VRING_NOFD))
		return fail(c, -EINVAL, "%s: payload 0x%" PRIx64 ": unknown "
			    "bits", vu_request_name(req), u);
	r = vq_index(c, idx, &v);
	if (r < 0)
		return r;
	slot = req == VU_SET_VRING_KICK ? &v->kick_fd :
	       req == VU_SET_VRING_CALL ? &v->call_fd : &v->err_fd;
	if (req == VU_SET_VRING_KICK && fd < 0)
		return fail(c, -EINVAL, "ring %u: polling mode (no kick fd) "
			    "is not supported", idx);
	if (req == VU_SET_VRING_KICK && !running(s))
		restart_pending(s);
	if (req != VU_SET_VRING_ERR && running(s)) {
		/*
		 * Relaying: the relay takes the guest's fd under its lock and
		 * the device stays on the shadow rings, so nothing it writes
		 * escapes the log (QEMU sends SET_VRING_CALL mid-migration
		 * whenever the guest masks or unmasks an MSI-X vector).
		 */
		bool kick = req == VU_SET_VRING_KICK;
		int swapped = s->relay ?
			      relay_set_guest_fd(s->relay, idx, kick, fd) : 0;

		r = swapped;
		if (swapped == 0) {
			r = kick ? vdpa_dev_set_vring_kick(s->dev, idx, fd) :
				   vdpa_dev_set_vring_call(s->dev, idx, fd);
			/* the relay keeps the fd the device still has */
			if (r < 0 && s->relay)
				relay_set_guest_fd(s->relay, idx, kick, *slot);
		}
		if (r < 0)
			return fail(c, r, "ring %u: %s: %s", idx,
				    vu_request_name(req), strerror(-r));
		if (swapped > 0)
			s->st.relay_fd_swaps++;
		if (*slot >= 0)
			close(*slot);
		*slot = fd;
		c->m->nfds = 0;
		return 0;
	}
	if (*slot >= 0)
		close(*slot);
	*slot = fd;
	c->m->nfds = 0;
	/* without F_PROTOCOL_FEATURES a ring is enabled by its kick */
	if (req == VU_SET_VRING_KICK &&
	    !(s->features & (1ULL << VU_F_PROTOCOL_FEATURES))) {
		v->enabled = true;
		v->stopped = false;
	}
	return 0;
}

static int h_set_vring_enable(struct ctx *c)
{
	struct srv *s = c->s;
	struct vhost_vring_state st;
	struct srv_vq *v = NULL;
	int r;

	memcpy(&st, c->m->payload, sizeof(st));
	r = vq_index(c, st.index, &v);
	if (r < 0)
		return r;
	if (st.num > 1)
		return fail(c, -EINVAL, "ring %u: enable %u", st.index, st.num);
	/*
	 * QEMU disables the rings before it sends SET_FEATURES: the offer
	 * of F_PROTOCOL_FEATURES is what makes this request valid.
	 */
	if (running(s) && !s->relay && st.num != v->enabled) {
		r = vdpa_dev_set_vring_enable(s->dev, st.index, st.num);
		if (r < 0)
			srv_log(LOG_NOTICE, "ring %u: the device refused %s "
				"while running: %s", st.index,
				st.num ? "enable" : "disable", strerror(-r));
	}
	v->enabled = st.num;
	if (st.num)
		v->stopped = false;
	return 0;
}

static int h_get_config(struct ctx *c)
{
	struct srv *s = c->s;
	struct {
		struct vu_config_hdr h;
		uint8_t data[VU_MAX_CONFIG];
	} p;
	int r;

	memcpy(&p.h, c->m->payload, sizeof(p.h));
	if (!(s->proto & (1ULL << VU_PF_CONFIG)))
		r = fail(c, -EINVAL, "GET_CONFIG without the CONFIG feature");
	else if (!p.h.size || p.h.offset > s->caps.config_size ||
		 p.h.size > s->caps.config_size - p.h.offset)
		r = fail(c, -EINVAL, "GET_CONFIG: offset %u size %u beyond the "
			 "%u bytes of config space", p.h.offset, p.h.size,
			 s->caps.config_size);
	else
		r = vdpa_dev_get_config(s->dev, p.h.offset, p.data, p.h.size);
	if (r < 0) {
		if (!c->err[0])
			fail(c, r, "GET_CONFIG: %s", strerror(-r));
		srv_log(LOG_WARNING, "%s", c->err);
		c->err[0] = '\0';
		/* the spec's answer to a failed GET_CONFIG: an empty config */
		p.h.size = 0;
		return reply(c, &p, sizeof(p.h), -1);
	}
	return reply(c, &p, (uint32_t)sizeof(p.h) + p.h.size, -1);
}

static int h_set_config(struct ctx *c)
{
	struct srv *s = c->s;
	struct vu_config_hdr h;
	int r;

	memcpy(&h, c->m->payload, sizeof(h));
	if (!(s->proto & (1ULL << VU_PF_CONFIG)))
		return fail(c, -EINVAL, "SET_CONFIG without the CONFIG feature");
	if (!h.size || h.offset > s->caps.config_size ||
	    h.size > s->caps.config_size - h.offset)
		return fail(c, -EINVAL, "SET_CONFIG: offset %u size %u beyond "
			    "the %u bytes of config space", h.offset, h.size,
			    s->caps.config_size);
	r = vdpa_dev_set_config(s->dev, h.offset, c->m->payload + sizeof(h),
				h.size);
	if (r < 0)
		return fail(c, r, "SET_CONFIG: %s", strerror(-r));
	return 0;
}

static int h_set_log_base(struct ctx *c)
{
	struct vu_log l;
	int fd = c->m->fds[0], r;

	memcpy(&l, c->m->payload, sizeof(l));
	c->m->nfds = 0;
	r = srv_set_log_base(c->s, &l, fd, c->err, sizeof(c->err));
	if (r < 0)
		srv_log(LOG_WARNING, "%s", c->err);
	c->err[0] = '\0';
	/* the front-end waits for this reply (LOG_SHMFD): u64, 0 ok */
	return reply_u64(c, r < 0 ? (uint64_t)-r : 0);
}

static int h_set_log_fd(struct ctx *c)
{
	/* the log is only read after the device stopped: no kick needed */
	srv_msg_close_fds(c->m);
	return 0;
}

static int h_set_state_fd(struct ctx *c)
{
	struct vu_state_fd p;
	uint64_t v;
	int fd = c->m->fds[0], rfd, r;

	memcpy(&p, c->m->payload, sizeof(p));
	c->m->nfds = 0;
	r = srv_state_set_fd(c->s, &p, fd, &v, &rfd, c->err, sizeof(c->err));
	if (r < 0) {
		srv_log(LOG_WARNING, "SET_DEVICE_STATE_FD: %s", c->err);
		c->err[0] = '\0';
	}
	r = reply(c, &v, sizeof(v), rfd);
	if (rfd >= 0)
		close(rfd);
	return r;
}

static int h_check_state(struct ctx *c)
{
	int r = srv_state_check(c->s, c->err, sizeof(c->err));

	if (r < 0) {
		srv_log(LOG_WARNING, "CHECK_DEVICE_STATE: %s", c->err);
		c->err[0] = '\0';
	}
	return reply_u64(c, r < 0 ? (uint64_t)(-r ? -r : EIO) : 0);
}

typedef int (*handler_fn)(struct ctx *c);

static const handler_fn handlers[VU_MAX_REQUEST] = {
	[VU_GET_FEATURES] = h_get_features,
	[VU_SET_FEATURES] = h_set_features,
	[VU_SET_OWNER] = h_set_owner,
	[VU_RESET_OWNER] = h_reset,
	[VU_SET_MEM_TABLE] = h_set_mem_table,
	[VU_SET_LOG_BASE] = h_set_log_base,
	[VU_SET_LOG_FD] = h_set_log_fd,
	[VU_SET_VRING_NUM] = h_set_vring_num,
	[VU_SET_VRING_ADDR] = h_set_vring_addr,
	[VU_SET_VRING_BASE] = h_set_vring_base,
	[VU_GET_VRING_BASE] = h_get_vring_base,
	[VU_SET_VRING_KICK] = h_set_vring_fd,
	[VU_SET_VRING_CALL] = h_set_vring_fd,
	[VU_SET_VRING_ERR] = h_set_vring_fd,
	[VU_GET_PROTOCOL_FEATURES] = h_get_protocol_features,
	[VU_SET_PROTOCOL_FEATURES] = h_set_protocol_features,
	[VU_GET_QUEUE_NUM] = h_get_queue_num,
	[VU_SET_VRING_ENABLE] = h_set_vring_enable,
	[VU_GET_CONFIG] = h_get_config,
	[VU_SET_CONFIG] = h_set_config,
	[VU_RESET_DEVICE] = h_reset,
	[VU_SET_DEVICE_STATE_FD] = h_set_state_fd,
	[VU_CHECK_DEVICE_STATE] = h_check_state,
};

/*
 * The device starts (DRIVER_OK) as DPDK's back-end decides a device is
 * ready: memory and features set, every ring the front-end sized has its
 * addresses and kick fd, and the first ring (net: the first pair) is
 * enabled. QEMU enables rings last, after all of them are set up.
 */
static bool ready(const struct srv *s)
{
	uint32_t i, need = s->caps.device_id == VIRTIO_ID_NET ? 2 : 1;

	if (s->started || !s->features_set || !s->nregs)
		return false;
	for (i = 0; i < s->nvqs; i++) {
		const struct srv_vq *v = &s->vq[i];

		if (v->num_set && (!v->addr_set || v->kick_fd < 0))
			return false;
		if (i < need && (!v->num_set || !v->enabled))
			return false;
	}
	return true;
}

static int maybe_start(struct ctx *c)
{
	struct srv *s = c->s;
	int r;

	if (!ready(s))
		return 0;
	r = srv_dev_start(s, c->err, sizeof(c->err));
	if (r < 0)
		return r;
	if (s->features & (1ULL << VU_F_LOG_ALL)) {
		r = srv_log_switch(s, true, c->err, sizeof(c->err));
		if (r < 0)
			return r;
	}
	return 0;
}

static bool has_own_reply(uint32_t req)
{
	switch (req) {
	case VU_GET_FEATURES:
	case VU_GET_PROTOCOL_FEATURES:
	case VU_GET_QUEUE_NUM:
	case VU_GET_VRING_BASE:
	case VU_GET_CONFIG:
	case VU_SET_LOG_BASE:
	case VU_SET_DEVICE_STATE_FD:
	case VU_CHECK_DEVICE_STATE:
		return true;
	default:
		return false;
	}
}

int srv_handle(struct srv *s, struct srv_msg *m)
{
	struct ctx c = { .s = s, .m = m };
	uint32_t req = m->hdr.request;
	const char *name = vu_request_name(req);
	bool ack = (m->hdr.flags & VU_FLAG_NEED_REPLY) &&
		   (s->proto & (1ULL << VU_PF_REPLY_ACK));
	int r;

	s->nmsgs++;
	r = srv_check_shape(m, c.err, sizeof(c.err));
	if (r < 0) {
		srv_log(LOG_ERR, "%s; closing the connection", c.err);
		srv_msg_close_fds(m);
		s->st.request_errors++;
		return -1;
	}
	if (req == VU_GET_PRECOPY_INFO || req == VU_PRECOPY_END)
		return srv_precopy_request(s, m);	/* precopy.c */
	if (!name || !handlers[req]) {
		srv_msg_close_fds(m);
		snprintf(c.err, sizeof(c.err), "unknown request %u", req);
		r = -EOPNOTSUPP;
		name = "request";
	} else {
		if (srv_log_level >= LOG_DEBUG)
			srv_log(LOG_DEBUG, "%s (%u bytes, %u fds)", name,
				m->hdr.size, m->nfds);
		r = handlers[req](&c);
		srv_msg_close_fds(m);
		if (!r && !has_own_reply(req))
			r = maybe_start(&c);
	}
	if (r < 0)
		s->st.request_errors++;
	/* a request with its own reply that could not give it */
	if (r < 0 && has_own_reply(req)) {
		srv_log(LOG_ERR, "%s: %s; closing the connection", name, c.err);
		return -1;
	}
	if (r < 0) {
		if (!ack) {
			srv_log(LOG_ERR, "%s: %s; closing the connection (no "
				"REPLY_ACK asked)", name, c.err);
			return -1;
		}
		srv_log(LOG_ERR, "%s: %s", name, c.err);
		return srv_reply(s, req, &(uint64_t){ 1 }, 8, -1) < 0 ?
		       -1 : 0;
	}
	if (ack && !has_own_reply(req))
		return srv_reply(s, req, &(uint64_t){ 0 }, 8, -1) < 0 ?
		       -1 : 0;
	return 0;
}

void srv_disconnect(struct srv *s)
{
	reset_rings(s);
	srv_mem_free(s);
	srv_log_free(s);
	if (s->conn >= 0)
		close(s->conn);
	s->conn = -1;
	s->proto = 0;
	s->owner = false;
	srv_log(LOG_NOTICE, "front-end gone after %" PRIu64 " requests; device "
		"reset, ready for the next one", s->nmsgs);
	s->nmsgs = 0;
}

/*
 * blk: the write-back cache flushed before GET_VRING_BASE is answered
 * (QEMU's vhost-user-blk never moves device state: what the guest wrote
 * must be on the disk before the destination reads it). See flush.c.
 */
