// SPDX-License-Identifier: MIT
/*
 * The migration transaction (include/vdpa-user/migrate.h): a source half,
 * a destination half, and both in one process.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <vdpa-user/migrate.h>
#include <vdpa-user/transfer.h>
#include <vdpa-user/uapi-ext.h>

#include "device.h"
#include "log.h"
#include "netcls.h"
#include "precopy.h"
#include "state-int.h"

#define VERDICT_MAGIC	0x31445256u	/* "VRD1" */
#define VERDICT_HDR	8u
#define VERDICT_MAX	1024u
#define PLAN_CAP	(1u << 20)

static const char *const step_names[VDPA_MIG_NSTEPS] = {
	"precheck", "prepare", "suspend", "save", "transfer", "load", "start",
	"commit", "rollback",
};

const char *vdpa_mig_step_name(enum vdpa_mig_step step)
{
	return (unsigned int)step < VDPA_MIG_NSTEPS ? step_names[step] : "?";
}

static void begin(struct vdpa_mig_times *t, enum vdpa_mig_step s)
{
	t->begin_ns[s] = vdpa_now_ns();
	t->end_ns[s] = 0;
}

static void end(struct vdpa_mig_times *t, enum vdpa_mig_step s)
{
	t->end_ns[s] = vdpa_now_ns();
}

/* Append "; more" to err. */
__attribute__((format(printf, 3, 4)))
static void say_more(char *err, size_t errlen, const char *fmt, ...)
{
	size_t l;
	va_list ap;

	if (!err || !errlen)
		return;
	l = strnlen(err, errlen);
	if (l + 3 >= errlen)
		return;
	if (l) {
		memcpy(err + l, "; ", 3);
		l += 2;
	}
	va_start(ap, fmt);
	vsnprintf(err + l, errlen - l, fmt, ap);
	va_end(ap);
}

/* ---- source ------------------------------------------------------------ */

enum src_phase { SRC_RUNNING, SRC_SUSPENDED, SRC_DONE };

/* What both halves have. */
struct mig_side {
	struct vdpa_dev *dev;
	size_t cap;		/* largest state through the transfer FD */
	struct vdpa_state *desc;	/* this device's own, as provisioned */
	struct vdpa_transfer *xfer;
	int kick[VDPA_STATE_MAX_QUEUES];	/* the caller's eventfds */
	int call[VDPA_STATE_MAX_QUEUES];
	struct vdpa_mig_times t;
};

static int side_init(struct mig_side *s, struct vdpa_dev *dev, size_t cap)
{
	int i;

	s->dev = dev;
	s->cap = cap ? cap : VDPA_STATE_DEFAULT_CAP;
	for (i = 0; i < VDPA_STATE_MAX_QUEUES; i++)
		s->kick[i] = s->call[i] = -1;
	return vdpa_state_describe(dev, &s->desc);
}

static void side_fini(struct mig_side *s)
{
	vdpa_transfer_free(s->xfer);
	vdpa_state_free(s->desc);
}

struct vdpa_mig_src {
	struct mig_side s;
	bool has_net_override;
	struct vdpa_state_net net_override;
	int (*restore_class)(struct vdpa_dev *dev, const struct vdpa_state *s,
			     void *opaque);
	void *opaque;
	struct vdpa_state *saved;
	/*
	 * The blob, split so the device's own state (most of it for a blk
	 * write-back cache) is not copied: head, saved->device, crc.
	 */
	void *head;
	size_t head_len;
	uint8_t crc[4];
	size_t len;		/* the whole blob */
	void *flat;		/* vdpa_mig_src_blob(), made on demand */
	bool direct;		/* the device state goes device to device */
	enum src_phase phase;
	struct mig_pc_src pc;	/* pre-copy rounds taken (precopy.c) */
};

int vdpa_mig_src_new(struct vdpa_dev *dev, const struct vdpa_mig_src_opts *o,
		     struct vdpa_mig_src **ret)
{
	struct vdpa_mig_src *m;
	int err;

	if (!dev || !ret)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	if (o && o->net) {
		m->has_net_override = true;
		m->net_override = *o->net;
	}
	if (o) {
		m->restore_class = o->restore_class;
		m->opaque = o->opaque;
	}
	err = side_init(&m->s, dev, o ? o->cap : 0);
	if (err < 0) {
		free(m);
		return err;
	}
	*ret = m;
	return 0;
}

/*
 * A rollback without RESUME reloads the saved state into the source; the
 * class state then has to be replayed, which the library cannot do on a
 * device without RESUME nor the state extension: refuse up front rather
 * than leave the source suspended for good.
 */
static int rollback_possible(struct vdpa_mig_src *m, char *err, size_t errlen)
{
	uint64_t be = vdpa_dev_backend_features(m->s.dev);
	struct vdpa_state_net cur;

	if (m->restore_class ||
	    (be & ((1ULL << VHOST_BACKEND_F_RESUME) |
		   (1ULL << VHOST_BACKEND_F_DEVICE_STATE))) ||
	    !(vdpa_dev_features(m->s.dev) & (1ULL << VIRTIO_NET_F_CTRL_VQ)))
		return 0;
	if (m->has_net_override)
		cur = m->net_override;
	else if (vdpa_dev_net_class(m->s.dev, &cur) < 0)
		return 0;
	if (netcls_is_default(&cur, m->s.desc->cfg.mac))
		return 0;
	vdpa_say(err, errlen, "%s has neither RESUME nor the device-state "
	    "extension: a rollback could not restore the guest's net class "
	    "state (MAC, queue pairs, RX mode); refusing before anything "
	    "stops", vdpa_dev_name(m->s.dev));
	return -EOPNOTSUPP;
}

int vdpa_mig_src_precheck(struct vdpa_mig_src *m, const void *dst_desc,
			  size_t len, char *err, size_t errlen)
{
	struct vdpa_state *dst = NULL;
	const char *bad;
	uint8_t st;
	uint32_t i, n = 0;
	int r;

	if (!m)
		return -EINVAL;
	begin(&m->s.t, VDPA_MIG_PRECHECK);
	if (m->phase != SRC_RUNNING) {
		vdpa_say(err, errlen, "%s: this migration already switched over",
		    vdpa_dev_name(m->s.dev));
		return -EALREADY;
	}
	if (!(vdpa_dev_backend_features(m->s.dev) &
	      (1ULL << VHOST_BACKEND_F_SUSPEND))) {
		vdpa_say(err, errlen, "%s cannot SUSPEND: without it vring bases "
		    "cannot be trusted; refusing before anything stops",
		    vdpa_dev_name(m->s.dev));
		return -EOPNOTSUPP;
	}
	r = vdpa_dev_get_status(m->s.dev, &st);
	if (r < 0) {
		vdpa_say(err, errlen, "%s: reading its status: %s",
		    vdpa_dev_name(m->s.dev), strerror(-r));
		return r;
	}
	if (!(st & VIRTIO_CONFIG_S_DRIVER_OK) ||
	    (st & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED))) {
		vdpa_say(err, errlen, "%s is not running (status 0x%02x): nothing "
		    "to migrate", vdpa_dev_name(m->s.dev), st);
		return -EINVAL;
	}
	for (i = 0; i < VDPA_MAX_VQS; i++)
		n += m->s.dev->shadow.vq[i].num_set &&
		     m->s.dev->shadow.vq[i].addr_set;
	if (!n) {
		vdpa_say(err, errlen, "%s: no queue was set up through this handle",
		    vdpa_dev_name(m->s.dev));
		return -EINVAL;
	}
	bad = netcls_unsupported(m->s.dev);
	if (bad && !m->has_net_override &&
	    !(vdpa_dev_backend_features(m->s.dev) &
	      (1ULL << VHOST_BACKEND_F_DEVICE_STATE))) {
		vdpa_say(err, errlen, "the driver sent a %s, which the library "
		    "cannot carry without the device-state extension", bad);
		return -EOPNOTSUPP;
	}
	r = rollback_possible(m, err, errlen);
	if (r < 0)
		return r;
	if (dst_desc) {
		r = vdpa_state_decode(dst_desc, len, PLAN_CAP, &dst, err,
				      errlen);
		if (r < 0) {
			say_more(err, errlen, "(the destination's description)");
			return r;
		}
		r = vdpa_state_compat(m->s.desc, dst, err, errlen);
		vdpa_state_free(dst);
		if (r < 0)
			return r;
	}
	end(&m->s.t, VDPA_MIG_PRECHECK);
	return 0;
}

/* Queues and features as the device has them now, bases aside. */
static int src_snapshot(struct vdpa_mig_src *m, struct vdpa_state **ret)
{
	const struct vdpa_dev_shadow *sh = &m->s.dev->shadow;
	struct vdpa_state *s = vdpa_state_new();

	if (!s)
		return -ENOMEM;
	memcpy(s->model, m->s.desc->model, sizeof(s->model));
	s->cfg = m->s.desc->cfg;
	s->has_features = true;
	s->features = sh->features;
	s->backend_features = sh->backend_features;
	s->status = sh->status;
	state_queues_from_shadow(m->s.dev, s);
	if (m->has_net_override) {
		s->has_net = true;
		s->net = m->net_override;
	} else if (vdpa_dev_net_class(m->s.dev, &s->net) == 0 &&
		   (s->features & (1ULL << VIRTIO_NET_F_CTRL_VQ))) {
		s->has_net = true;
	}
	*ret = s;
	return 0;
}

int vdpa_mig_src_plan(struct vdpa_mig_src *m, void **ret_buf, size_t *ret_len)
{
	struct vdpa_state *s;
	int r;

	if (!m || !ret_buf || !ret_len)
		return -EINVAL;
	r = src_snapshot(m, &s);
	if (r < 0)
		return r;
	r = vdpa_state_encode(s, ret_buf, ret_len);
	vdpa_state_free(s);
	return r;
}

/* Let go of the kicks (fd -1), or bind them again. */
static int src_kicks(struct vdpa_mig_src *m, bool bind)
{
	const struct vdpa_state *s = m->saved;
	uint32_t i;
	int r, first = 0;

	for (i = 0; s && i < s->nqueues; i++) {
		uint32_t idx = s->q[i].index;

		if (m->s.kick[idx] < 0)
			continue;
		r = vdpa_dev_set_vring_kick(m->s.dev, idx,
					    bind ? m->s.kick[idx] : -1);
		if (r < 0 && !first)
			first = r;
	}
	return first;
}

int vdpa_mig_src_switchover(struct vdpa_mig_src *m, char *err, size_t errlen)
{
	struct vdpa_state *s = NULL;
	uint32_t i;
	int r;

	if (!m)
		return -EINVAL;
	if (m->phase != SRC_RUNNING) {
		vdpa_say(err, errlen, "%s: already switched over",
		    vdpa_dev_name(m->s.dev));
		return -EALREADY;
	}
	/* the caller's fds, before letting go of them changes the shadow */
	for (i = 0; i < VDPA_STATE_MAX_QUEUES && i < VDPA_MAX_VQS; i++) {
		const struct vdpa_vq_shadow *v = &m->s.dev->shadow.vq[i];

		m->s.kick[i] = v->kick_set ? v->kick_fd : -1;
		m->s.call[i] = v->call_set ? v->call_fd : -1;
	}
	begin(&m->s.t, VDPA_MIG_SUSPEND);
	r = vdpa_dev_suspend(m->s.dev);
	end(&m->s.t, VDPA_MIG_SUSPEND);
	if (r < 0) {
		vdpa_say(err, errlen, "suspending %s: %s", vdpa_dev_name(m->s.dev),
		    strerror(-r));
		return r;
	}
	m->phase = SRC_SUSPENDED;
	begin(&m->s.t, VDPA_MIG_SAVE);
	r = state_save(m->s.dev, m->s.desc, !m->direct, m->s.cap, &s);
	if (r < 0) {
		vdpa_say(err, errlen, "saving %s: %s", vdpa_dev_name(m->s.dev),
		    r == -ENOTCONN ? "the source device went away" :
		    strerror(-r));
		goto err_rollback;
	}
	if (m->has_net_override) {
		s->has_net = true;
		s->net = m->net_override;
	}
	m->saved = s;
	r = state_encode_split(s, &m->head, &m->head_len, m->crc);
	m->len = m->head_len + (s->has_device ? s->device_len : 0) + 4;
	if (r < 0) {
		vdpa_say(err, errlen, "encoding the state: %s", strerror(-r));
		goto err_rollback;
	}
	if (m->len > m->s.cap) {
		r = -EFBIG;
		vdpa_say(err, errlen, "the state is %zu bytes, above the %zu-byte "
		    "cap", m->len, m->s.cap);
		goto err_rollback;
	}
	/*
	 * The suspended source must not take the guest's kicks from the
	 * destination: two devices polling one eventfd steal each other's.
	 */
	r = src_kicks(m, false);
	if (r < 0) {
		vdpa_say(err, errlen, "unbinding the kicks of %s: %s",
		    vdpa_dev_name(m->s.dev), strerror(-r));
		goto err_rollback;
	}
	end(&m->s.t, VDPA_MIG_SAVE);
	return 0;

err_rollback:
	if (!m->saved)
		vdpa_state_free(s);
	{
		char rb[256] = "";

		if (vdpa_mig_src_rollback(m, rb, sizeof(rb)) == 0)
			say_more(err, errlen, "%s resumed",
				 vdpa_dev_name(m->s.dev));
		else
			say_more(err, errlen, "rollback failed: %s", rb);
	}
	return r;
}

const struct vdpa_state *vdpa_mig_src_state(const struct vdpa_mig_src *m)
{
	return m ? m->saved : NULL;
}

/* The blob's pieces: head, the device's own state, the CRC. */
static int blob_segs(const struct vdpa_mig_src *m, struct iovec *v)
{
	const struct vdpa_state *s = m->saved;

	v[0].iov_base = m->head;
	v[0].iov_len = m->head_len;
	v[1].iov_base = s->has_device ? s->device : NULL;
	v[1].iov_len = s->has_device ? s->device_len : 0;
	v[2].iov_base = (void *)m->crc;
	v[2].iov_len = 4;
	return 3;
}

int vdpa_mig_src_blob(struct vdpa_mig_src *m, const void **ret_buf,
		      size_t *ret_len)
{
	struct iovec v[3];
	size_t off = 0;
	int i, n;

	if (!m || !ret_buf || !ret_len)
		return -EINVAL;
	if (!m->head)
		return -ENODATA;
	if (!m->flat) {
		m->flat = malloc(m->len);
		if (!m->flat)
			return -ENOMEM;
		n = blob_segs(m, v);
		for (i = 0; i < n; i++) {
			if (v[i].iov_len)
				memcpy((uint8_t *)m->flat + off, v[i].iov_base,
				       v[i].iov_len);
			off += v[i].iov_len;
		}
	}
	*ret_buf = m->flat;
	*ret_len = m->len;
	return 0;
}

int vdpa_mig_src_set_state_fd(struct vdpa_mig_src *m, int fd, int *ret_fd,
			      char *err, size_t errlen)
{
	struct vdpa_transfer_opts o = { .cap = m ? m->s.cap : 0 };
	int r;

	struct iovec v[3];

	if (ret_fd)
		*ret_fd = -1;
	if (!m || !ret_fd || !m->head || m->s.xfer ||
	    m->phase != SRC_SUSPENDED) {
		if (fd >= 0)
			close(fd);
		vdpa_say(err, errlen, "no saved state to send");
		return -EINVAL;
	}
	begin(&m->s.t, VDPA_MIG_TRANSFER);
	r = transfer_set_fd_iov(VDPA_TRANSFER_SAVE,
				VDPA_TRANSFER_PHASE_STOPPED, fd, v,
				blob_segs(m, v), &o, &m->s.xfer, ret_fd);
	if (r < 0)
		vdpa_say(err, errlen, "transfer fd: %s", strerror(-r));
	return r;
}

int vdpa_mig_src_check_state(struct vdpa_mig_src *m, char *err, size_t errlen)
{
	int r;

	if (!m || !m->s.xfer) {
		vdpa_say(err, errlen, "no state transfer under way");
		return -EINVAL;
	}
	r = vdpa_transfer_check(m->s.xfer);
	if (r < 0)
		vdpa_say(err, errlen, "sending the state: %s",
		    vdpa_transfer_error(m->s.xfer)[0] ?
		    vdpa_transfer_error(m->s.xfer) : strerror(-r));
	vdpa_transfer_free(m->s.xfer);
	m->s.xfer = NULL;
	end(&m->s.t, VDPA_MIG_TRANSFER);
	return r;
}

int vdpa_mig_src_commit(struct vdpa_mig_src *m)
{
	int r;

	if (!m || m->phase != SRC_SUSPENDED)
		return -EINVAL;
	begin(&m->s.t, VDPA_MIG_COMMIT);
	/* the state is out: only now may the source forget */
	r = vdpa_dev_reset(m->s.dev);
	m->phase = SRC_DONE;
	end(&m->s.t, VDPA_MIG_COMMIT);
	return r;
}

/* Reload the saved state into the source itself (no RESUME). */
static int src_reload(struct vdpa_mig_src *m, char *err, size_t errlen)
{
	struct vdpa_load_hooks h = { .restore_class = m->restore_class,
				     .opaque = m->opaque, .dst_desc = m->s.desc,
				     .kick_fds = m->s.kick, .call_fds = m->s.call };

	return vdpa_state_load_device(m->s.dev, m->saved, &h, err, errlen);
}

int vdpa_mig_src_rollback(struct vdpa_mig_src *m, char *err, size_t errlen)
{
	int r;

	if (!m)
		return -EINVAL;
	if (m->phase != SRC_SUSPENDED) {
		vdpa_say(err, errlen, "%s was not suspended by this migration",
		    vdpa_dev_name(m->s.dev));
		return -EINVAL;
	}
	begin(&m->s.t, VDPA_MIG_ROLLBACK);
	if (m->s.xfer) {
		vdpa_transfer_free(m->s.xfer);
		m->s.xfer = NULL;
	}
	r = src_kicks(m, true);
	if (r < 0) {
		vdpa_say(err, errlen, "binding the kicks of %s again: %s",
		    vdpa_dev_name(m->s.dev), strerror(-r));
		end(&m->s.t, VDPA_MIG_ROLLBACK);
		return r;
	}
	r = vdpa_dev_resume(m->s.dev);
	if (r == -EOPNOTSUPP && m->saved) {
		/* no RESUME (Linux 6.1): reset and reload our own state */
		r = src_reload(m, err, errlen);
	} else if (r == -EOPNOTSUPP) {
		vdpa_say(err, errlen, "%s has no RESUME and nothing was saved to "
		    "reload: left suspended", vdpa_dev_name(m->s.dev));
	} else if (r < 0) {
		vdpa_say(err, errlen, "resuming %s: %s", vdpa_dev_name(m->s.dev),
		    strerror(-r));
	}
	if (!r) {
		m->phase = SRC_DONE;
		/* what the driver published while it was suspended */
		if (m->saved)
			state_kick_fds(m->saved, m->s.kick);
	}
	end(&m->s.t, VDPA_MIG_ROLLBACK);
	return r;
}

int vdpa_mig_verdict_parse(const void *verdict, size_t len, int *ret_result,
			   char *reason, size_t reason_len)
{
	const uint8_t *p = verdict;
	uint32_t magic, v;
	int32_t result;
	size_t k, n;

	if (!p || !ret_result || len < VERDICT_HDR ||
	    len > VERDICT_HDR + VERDICT_MAX)
		return -EPROTO;
	memcpy(&magic, p, 4);
	memcpy(&v, p + 4, 4);
	result = (int32_t)le32toh(v);
	if (le32toh(magic) != VERDICT_MAGIC || result > 0 || result < -4095)
		return -EPROTO;
	/* the peer's text, made printable */
	n = len - VERDICT_HDR;
	for (k = 0; reason && reason_len && k < n && k + 1 < reason_len; k++)
		reason[k] = p[VERDICT_HDR + k] >= 0x20 &&
			    p[VERDICT_HDR + k] < 0x7f ?
			    (char)p[VERDICT_HDR + k] : '?';
	if (reason && reason_len)
		reason[k] = 0;
	*ret_result = result;
	return 0;
}

int vdpa_mig_src_finish(struct vdpa_mig_src *m, const void *verdict,
			size_t len, char *err, size_t errlen)
{
	char why[VERDICT_MAX + 1];
	int result, r;

	if (!m)
		return -EINVAL;
	if (!verdict) {
		result = -EPROTO;
		vdpa_say(err, errlen, "no verdict from the destination");
	} else if (vdpa_mig_verdict_parse(verdict, len, &result, why,
					  sizeof(why)) < 0) {
		result = -EPROTO;
		vdpa_say(err, errlen, "the destination's verdict is malformed");
	} else if (result < 0) {
		vdpa_say(err, errlen, "destination failed: %s",
			 why[0] ? why : strerror(-result));
	}
	if (result == 0) {
		r = vdpa_mig_src_commit(m);
		if (r < 0)
			vdpa_say(err, errlen, "migrated, but resetting %s failed: %s",
			    vdpa_dev_name(m->s.dev), strerror(-r));
		return r;
	}
	{
		char rb[256] = "";

		r = vdpa_mig_src_rollback(m, rb, sizeof(rb));
		if (r == 0)
			say_more(err, errlen, "%s resumed",
				 vdpa_dev_name(m->s.dev));
		else
			say_more(err, errlen, "rollback failed: %s", rb);
	}
	return result;
}

const struct vdpa_mig_times *vdpa_mig_src_times(const struct vdpa_mig_src *m)
{
	return m ? &m->s.t : NULL;
}

bool vdpa_mig_src_suspended(const struct vdpa_mig_src *m)
{
	return m && m->phase == SRC_SUSPENDED;
}

void vdpa_mig_src_abandon(struct vdpa_mig_src *m)
{
	if (m && m->phase == SRC_SUSPENDED)
		m->phase = SRC_DONE;
}

void vdpa_mig_src_free(struct vdpa_mig_src *m)
{
	if (!m)
		return;
	if (m->phase == SRC_SUSPENDED) {
		char rb[256] = "";

		if (vdpa_mig_src_rollback(m, rb, sizeof(rb)) < 0)
			vdpa_log(LOG_ERR, "%s: rollback on free: %s",
				 vdpa_dev_name(m->s.dev), rb);
	}
	/* never switched over: the device stops tracking what it sent */
	if (m->phase == SRC_RUNNING)
		precopy_src_end(m->s.dev, &m->pc);
	side_fini(&m->s);
	vdpa_state_free(m->saved);
	free(m->head);
	free(m->flat);
	free(m);
}

/* ---- destination ------------------------------------------------------- */

struct vdpa_mig_dst {
	struct mig_side s;
	struct vdpa_mig_dst_opts o;
	struct vdpa_state *state;
	struct vdpa_dev *device_from;	/* the direct source, in one process */
	size_t device_len;		/* bytes it sent */
	bool started;
	struct mig_pc_dst pc;		/* pre-copy rounds applied */
};

int vdpa_mig_dst_new(struct vdpa_dev *dev, const struct vdpa_mig_dst_opts *o,
		     struct vdpa_mig_dst **ret)
{
	struct vdpa_mig_dst *m;
	int err;

	if (!dev || !ret)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	if (o)
		m->o = *o;
	err = side_init(&m->s, dev, o ? o->cap : 0);
	if (err < 0) {
		free(m);
		return err;
	}
	*ret = m;
	return 0;
}

int vdpa_mig_dst_describe(struct vdpa_mig_dst *m, void **ret_buf,
			  size_t *ret_len)
{
	if (!m)
		return -EINVAL;
	return vdpa_state_encode(m->s.desc, ret_buf, ret_len);
}

/* The check a destination applies to the plan, before it prepares. */
static int plan_check(struct vdpa_mig_dst *m, const struct vdpa_state *p,
		      char *err, size_t errlen)
{
	if (!p->has_features) {
		vdpa_say(err, errlen, "the plan holds no negotiated features");
		return -EINVAL;
	}
	const struct vdpa_caps *caps = NULL;
	int r = dev_caps(m->s.dev, &caps);

	if (r < 0) {
		vdpa_say(err, errlen, "%s: %s", vdpa_dev_name(m->s.dev), strerror(-r));
		return r;
	}
	/*
	 * The plan is a state without bases: the same load check, without
	 * the rules on ring indexes in memory (there are none yet).
	 */
	r = state_check_target(p, m->s.desc, caps->backend_features, NULL, err,
			       errlen);
	if (!r && !m->o.restore_class && netcls_replay_needed(m->s.dev, p))
		r = netcls_replay_check(m->s.dev, p, err, errlen);
	return r;
}

int vdpa_mig_dst_prepare(struct vdpa_mig_dst *m, const void *plan, size_t len,
			 char *err, size_t errlen)
{
	struct vdpa_state *p = NULL;
	uint32_t i;
	int r;

	if (!m || !plan) {
		vdpa_say(err, errlen, "no plan to prepare from");
		return -EINVAL;
	}
	begin(&m->s.t, VDPA_MIG_PREPARE);
	r = vdpa_state_decode(plan, len, PLAN_CAP, &p, err, errlen);
	if (r < 0) {
		say_more(err, errlen, "(the source's plan)");
		return r;
	}
	r = plan_check(m, p, err, errlen);
	if (r < 0)
		goto out;
	r = vdpa_state_prepare_device(m->s.dev, p->backend_features,
				      p->features);
	if (r < 0) {
		vdpa_say(err, errlen, "negotiating the source's features on %s: %s",
		    vdpa_dev_name(m->s.dev), strerror(-r));
		goto out;
	}
	/*
	 * Ring sizes and addresses do not change while the source runs on:
	 * set now, they are not sent again in the downtime.
	 */
	for (i = 0; i < p->nqueues && !r; i++) {
		const struct vdpa_state_queue *q = &p->q[i];
		struct vhost_vring_addr a = {
			.index = q->index, .desc_user_addr = q->desc,
			.avail_user_addr = q->avail, .used_user_addr = q->used,
		};

		r = dev_place_ring(m->s.dev, q->size, &a);
	}
	if (r < 0) {
		vdpa_say(err, errlen, "placing the rings on %s: %s",
		    vdpa_dev_name(m->s.dev), strerror(-r));
		vdpa_dev_reset(m->s.dev);
	}
out:
	vdpa_state_free(p);
	if (!r)
		end(&m->s.t, VDPA_MIG_PREPARE);
	return r;
}

int vdpa_mig_dst_set_vring_fds(struct vdpa_mig_dst *m, uint32_t idx,
			       int kick_fd, int call_fd)
{
	if (!m || idx >= VDPA_STATE_MAX_QUEUES)
		return -EINVAL;
	m->s.kick[idx] = kick_fd;
	m->s.call[idx] = call_fd;
	return 0;
}

int vdpa_mig_dst_set_state_fd(struct vdpa_mig_dst *m, int fd, int *ret_fd,
			      char *err, size_t errlen)
{
	struct vdpa_transfer_opts o = { 0 };
	int r;

	if (ret_fd)
		*ret_fd = -1;
	if (!m || !ret_fd || m->s.xfer || m->state) {
		if (fd >= 0)
			close(fd);
		vdpa_say(err, errlen, "a state was already received");
		return -EINVAL;
	}
	o.cap = m->s.cap;
	o.compat_with = m->s.desc;
	begin(&m->s.t, VDPA_MIG_TRANSFER);
	r = vdpa_transfer_set_fd(VDPA_TRANSFER_LOAD,
				 VDPA_TRANSFER_PHASE_STOPPED, fd, NULL, 0, &o,
				 &m->s.xfer, ret_fd);
	if (r < 0)
		vdpa_say(err, errlen, "transfer fd: %s", strerror(-r));
	return r;
}

int vdpa_mig_dst_check_state(struct vdpa_mig_dst *m, char *err, size_t errlen)
{
	struct vdpa_state *s;
	int r;

	if (!m || !m->s.xfer) {
		vdpa_say(err, errlen, "no state transfer under way");
		return -EINVAL;
	}
	r = vdpa_transfer_check(m->s.xfer);
	if (r < 0) {
		const char *why = vdpa_transfer_error(m->s.xfer);

		vdpa_say(err, errlen, "%s", why[0] ? why : strerror(-r));
		goto out;
	}
	end(&m->s.t, VDPA_MIG_TRANSFER);
	s = vdpa_transfer_take_state(m->s.xfer);
	r = state_check_dev(m->s.dev, s, m->s.desc, NULL, err, errlen);
	if (!r && !m->o.restore_class && netcls_replay_needed(m->s.dev, s))
		r = netcls_replay_check(m->s.dev, s, err, errlen);
	if (r < 0)
		vdpa_state_free(s);
	else
		m->state = s;
out:
	vdpa_transfer_free(m->s.xfer);
	m->s.xfer = NULL;
	return r;
}

const struct vdpa_state *vdpa_mig_dst_state(const struct vdpa_mig_dst *m)
{
	return m ? m->state : NULL;
}

int vdpa_mig_dst_start(struct vdpa_mig_dst *m, char *err, size_t errlen)
{
	struct vdpa_load_hooks h = { 0 };
	struct load_ext x = { .device_from = m ? m->device_from : NULL,
			      .device_cap = m ? m->s.cap : 0 };
	int r;

	if (!m || !m->state || m->started) {
		vdpa_say(err, errlen, "no checked state to start from");
		return -EINVAL;
	}
	h.restore_class = m->o.restore_class;
	h.opaque = m->o.opaque;
	h.dst_desc = m->s.desc;
	h.kick_fds = m->s.kick;
	h.call_fds = m->s.call;
	begin(&m->s.t, VDPA_MIG_LOAD);
	/* the one load path; START is its part from DRIVER_OK on */
	r = state_load_ext(m->s.dev, m->state, &h, &x, err, errlen);
	m->device_len = x.device_len;
	m->s.t.begin_ns[VDPA_MIG_START] = x.start_ns;
	if (m->s.t.begin_ns[VDPA_MIG_START])
		m->s.t.end_ns[VDPA_MIG_LOAD] = m->s.t.begin_ns[VDPA_MIG_START];
	else
		end(&m->s.t, VDPA_MIG_LOAD);
	if (r < 0)
		return r;
	m->started = true;
	end(&m->s.t, VDPA_MIG_START);
	return 0;
}

int vdpa_mig_dst_verdict(struct vdpa_mig_dst *m, int result,
			 const char *reason, void **ret_buf, size_t *ret_len)
{
	size_t n = reason ? strnlen(reason, VERDICT_MAX) : 0;
	uint32_t v;
	uint8_t *b;

	if (!ret_buf || !ret_len || result > 0)
		return -EINVAL;
	if (!result)
		n = 0;
	b = malloc(VERDICT_HDR + n);
	if (!b)
		return -ENOMEM;
	v = htole32(VERDICT_MAGIC);
	memcpy(b, &v, 4);
	v = htole32((uint32_t)result);
	memcpy(b + 4, &v, 4);
	if (n)
		memcpy(b + VERDICT_HDR, reason, n);
	*ret_buf = b;
	*ret_len = VERDICT_HDR + n;
	(void)m;
	return 0;
}

const struct vdpa_mig_times *vdpa_mig_dst_times(const struct vdpa_mig_dst *m)
{
	return m ? &m->s.t : NULL;
}

void vdpa_mig_dst_free(struct vdpa_mig_dst *m)
{
	if (!m)
		return;
	side_fini(&m->s);
	vdpa_state_free(m->state);
	free(m);
}

/* ---- pre-copy ------------------------------------------------------------- */

int vdpa_mig_src_precopy_info(struct vdpa_mig_src *m,
			      struct vdpa_mig_precopy_info *ret, char *err,
			      size_t errlen)
{
	if (!m || !ret) {
		vdpa_say(err, errlen, "no migration");
		return -EINVAL;
	}
	return precopy_src_info(m->s.dev, &m->pc, ret, err, errlen);
}

int vdpa_mig_src_precopy_round(struct vdpa_mig_src *m, void **ret_buf,
			       size_t *ret_len, uint64_t *ret_pending,
			       char *err, size_t errlen)
{
	if (!m || !ret_buf || !ret_len) {
		vdpa_say(err, errlen, "no migration");
		return -EINVAL;
	}
	if (m->phase != SRC_RUNNING) {
		vdpa_say(err, errlen, "%s: pre-copy rounds come before the "
		    "switchover", vdpa_dev_name(m->s.dev));
		return -EALREADY;
	}
	return precopy_src_round(m->s.dev, m->s.cap, &m->pc, ret_buf, ret_len,
				 ret_pending, err, errlen);
}

bool vdpa_mig_src_precopy_done(struct vdpa_mig_src *m, uint64_t threshold,
			       uint32_t max_rounds, uint64_t *ret_pending)
{
	if (!m || m->phase != SRC_RUNNING) {
		if (ret_pending)
			*ret_pending = 0;
		return true;
	}
	return precopy_src_done(m->s.dev, &m->pc, threshold, max_rounds,
				ret_pending);
}

int vdpa_mig_src_precopy_abort(struct vdpa_mig_src *m)
{
	if (!m || m->phase != SRC_RUNNING)
		return -EINVAL;
	precopy_src_end(m->s.dev, &m->pc);
	m->pc.failed = true;
	return 0;
}

int vdpa_mig_dst_precopy_apply(struct vdpa_mig_dst *m, const void *buf,
			       size_t len, char *err, size_t errlen)
{
	if (!m) {
		vdpa_say(err, errlen, "no migration");
		return -EINVAL;
	}
	return precopy_dst_apply(m->s.dev, &m->pc, m->state || m->started, buf,
				 len, err, errlen);
}

/*
 * Rounds source to destination while the source runs, until the pending
 * estimate, the round count or the time says stop. A failure stops
 * nothing: the source never stopped.
 */
static int precopy_rounds(struct vdpa_mig_src *s, struct vdpa_mig_dst *d,
			  const struct vdpa_mig_opts *o,
			  struct vdpa_mig_result *rr, char *err, size_t errlen)
{
	uint64_t ms = o->precopy_max_ms ? o->precopy_max_ms : 30000;
	uint64_t t0 = vdpa_now_ns(), pending = 0;
	bool stop = false;
	int r;

	rr->precopy = true;
	do {
		void *buf = NULL;
		size_t len = 0;

		r = vdpa_mig_src_precopy_round(s, &buf, &len, &pending, err,
					       errlen);
		if (!r)
			r = vdpa_mig_dst_precopy_apply(d, buf, len, err, errlen);
		free(buf);
		if (r < 0)
			return r;
		rr->precopy_rounds++;
		rr->precopy_bytes += len;
		if (o->precopy_progress) {
			struct vdpa_mig_precopy_info pi;

			r = vdpa_mig_src_precopy_info(s, &pi, err, errlen);
			if (r < 0)
				return r;
			if (o->precopy_progress(&pi, o->opaque))
				stop = true;
		}
		/* what the front-end did in between counts too */
		if (vdpa_mig_src_precopy_done(s, o->precopy_threshold,
					      o->precopy_max_rounds, &pending))
			stop = true;
		rr->precopy_pending = pending;
	} while (!stop && vdpa_now_ns() - t0 < ms * 1000000u);
	return 0;
}

/* ---- in one process ------------------------------------------------------ */

/* Driver memory the library mapped into src, mapped into dst too. */
static int map_like(struct vdpa_dev *src, struct vdpa_dev *dst)
{
	int i, r;

	for (i = 0; i < VDPA_MAX_MAPPED; i++) {
		struct vdpa_mem *mem = (struct vdpa_mem *)src->mapped[i];

		if (!mem)
			continue;
		r = vdpa_mem_map(dst, mem);
		if (r < 0 && r != -EEXIST)
			return r;
	}
	return 0;
}

/*
 * Device to device is possible: both offer the device-state extension,
 * the source negotiated it and RESUME (its rollback).
 */
static bool can_direct(struct vdpa_dev *src, struct vdpa_dev *dst)
{
	const struct vdpa_caps *caps = NULL;
	uint64_t need = (1ULL << VHOST_BACKEND_F_DEVICE_STATE) |
			(1ULL << VHOST_BACKEND_F_RESUME);

	return (vdpa_dev_backend_features(src) & need) == need &&
	       dev_caps(dst, &caps) == 0 && caps->device_state;
}

/* Both transfer FDs, over a pipe, a socketpair or a file. */
static int move_state(struct vdpa_mig_src *s, struct vdpa_mig_dst *d,
		      enum vdpa_mig_channel via, char *err, size_t errlen)
{
	char path[] = "/tmp/vdpa-user-state.XXXXXX";
	int fds[2], rfd, ignore, r, r2;

	if (via == VDPA_MIG_VIA_FILE) {
		int wfd = mkostemp(path, O_CLOEXEC);


		if (wfd < 0) {
			r = -errno;
			vdpa_say(err, errlen, "temporary file: %s", strerror(-r));
			return r;
		}
		rfd = open(path, O_RDONLY | O_CLOEXEC);
		unlink(path);
		if (rfd < 0) {
			r = -errno;
			close(wfd);
			vdpa_say(err, errlen, "temporary file: %s", strerror(-r));
			return r;
		}
		r = vdpa_mig_src_set_state_fd(s, wfd, &ignore, err, errlen);
		if (!r)
			r = vdpa_mig_src_check_state(s, err, errlen);
		if (r < 0) {
			close(rfd);
			return r;
		}
		r = vdpa_mig_dst_set_state_fd(d, rfd, &ignore, err, errlen);
		return r ? r : vdpa_mig_dst_check_state(d, err, errlen);
	}
	r = via != VDPA_MIG_VIA_SOCKET ? pipe2(fds, O_CLOEXEC) :
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
	if (r < 0) {
		r = -errno;
		vdpa_say(err, errlen, "channel: %s", strerror(-r));
		return r;
	}
	/* the destination reads while the source writes: two threads */
	r = vdpa_mig_dst_set_state_fd(d, fds[0], &ignore, err, errlen);
	if (r < 0) {
		close(fds[1]);
		return r;
	}
	r = vdpa_mig_src_set_state_fd(s, fds[1], &ignore, err, errlen);
	if (!r)
		r = vdpa_mig_src_check_state(s, err, errlen);
	/* the destination's verdict on what it got says the most */
	r2 = vdpa_mig_dst_check_state(d, err, errlen);
	return r2 < 0 ? r2 : r;
}

int vdpa_migrate(struct vdpa_dev *src, struct vdpa_dev *dst,
		 const struct vdpa_mig_opts *o, struct vdpa_mig_result *res,
		 char *err, size_t errlen)
{
	struct vdpa_mig_src_opts so = { 0 };
	struct vdpa_mig_dst_opts dopt = { 0 };
	struct vdpa_mig_src *s = NULL;
	struct vdpa_mig_dst *d = NULL;
	struct vdpa_mig_result rr;
	void *buf = NULL;
	size_t len = 0;
	uint32_t i;
	int r;

	if (err && errlen)
		err[0] = 0;
	if (res)
		memset(res, 0, sizeof(*res));
	if (!src || !dst) {
		vdpa_say(err, errlen, "a migration needs a source and a destination");
		return -EINVAL;
	}
	if (src == dst) {
		vdpa_say(err, errlen, "source and destination are the same device");
		return -EINVAL;
	}
	memset(&rr, 0, sizeof(rr));
	if (o) {
		so.cap = dopt.cap = o->cap;
		so.net = o->net;
		so.restore_class = dopt.restore_class = o->restore_class;
		so.opaque = o->opaque;
		dopt.opaque = o->opaque;
	}
	r = vdpa_mig_src_new(src, &so, &s);
	if (!r)
		r = vdpa_mig_dst_new(dst, &dopt, &d);
	if (r < 0) {
		vdpa_say(err, errlen, "describing the devices: %s", strerror(-r));
		goto out;
	}
	if (o && o->via == VDPA_MIG_VIA_DIRECT && can_direct(src, dst)) {
		s->direct = true;
		d->device_from = src;
		rr.direct = true;
	}
	r = vdpa_mig_dst_describe(d, &buf, &len);
	if (r < 0)
		vdpa_say(err, errlen, "describing %s: %s", vdpa_dev_name(dst),
		    strerror(-r));
	else
		r = vdpa_mig_src_precheck(s, buf, len, err, errlen);
	free(buf);
	buf = NULL;
	if (r < 0)
		goto out;
	r = vdpa_mig_src_plan(s, &buf, &len);
	if (r < 0)
		vdpa_say(err, errlen, "the plan of %s: %s", vdpa_dev_name(src),
		    strerror(-r));
	else
		r = vdpa_mig_dst_prepare(d, buf, len, err, errlen);
	free(buf);
	if (!r) {
		r = map_like(src, dst);
		if (r < 0)
			vdpa_say(err, errlen, "mapping the driver memory into %s: %s",
			    vdpa_dev_name(dst), strerror(-r));
	}
	if (r < 0)
		goto err_reset_dst;
	/* while the source runs on: its state in rounds, if both can */
	if (o && o->precopy && precopy_src_can(src, NULL, 0) == 0 &&
	    precopy_dst_can(dst)) {
		r = precopy_rounds(s, d, o, &rr, err, errlen);
		if (r < 0) {
			say_more(err, errlen, "%s never stopped",
				 vdpa_dev_name(src));
			goto err_reset_dst;
		}
	}
	/* the guest's eventfds move with the rings */
	for (i = 0; i < VDPA_STATE_MAX_QUEUES && i < VDPA_MAX_VQS; i++) {
		const struct vdpa_vq_shadow *v = &src->shadow.vq[i];

		vdpa_mig_dst_set_vring_fds(d, i, v->kick_set ? v->kick_fd : -1,
					   v->call_set ? v->call_fd : -1);
	}
	r = vdpa_mig_src_switchover(s, err, errlen);
	if (r < 0) {
		/* it rolled back itself when it had suspended */
		rr.rolled_back = s->phase == SRC_DONE;
		goto err_reset_dst;
	}
	r = move_state(s, d, o ? o->via : VDPA_MIG_VIA_PIPE, err, errlen);
	if (!r)
		r = vdpa_mig_dst_start(d, err, errlen);
	if (r < 0) {
		char rb[256] = "";

		if (vdpa_mig_src_rollback(s, rb, sizeof(rb)) == 0) {
			rr.rolled_back = true;
			say_more(err, errlen, "%s resumed", vdpa_dev_name(src));
		} else {
			say_more(err, errlen, "rollback failed: %s", rb);
		}
		goto err_reset_dst;
	}
	rr.state_bytes = s->len + d->device_len;
	r = vdpa_mig_src_commit(s);
	if (r < 0)
		vdpa_log(LOG_WARNING, "%s: reset after migration: %s",
			 vdpa_dev_name(src), strerror(-r));
	r = 0;
	goto out;

err_reset_dst:
	/* the destination never ran: leave it reset, not half prepared */
	vdpa_dev_reset(dst);
out:
	if (s) {
		rr.src = s->s.t;
		rr.state_bytes = rr.state_bytes ? rr.state_bytes : s->len;
	}
	if (d)
		rr.dst = d->s.t;
	if (rr.dst.end_ns[VDPA_MIG_START] && rr.src.begin_ns[VDPA_MIG_SUSPEND])
		rr.downtime_ns = rr.dst.end_ns[VDPA_MIG_START] -
				 rr.src.begin_ns[VDPA_MIG_SUSPEND];
	if (res)
		*res = rr;
	vdpa_mig_src_free(s);
	vdpa_mig_dst_free(d);
	return r;
}
