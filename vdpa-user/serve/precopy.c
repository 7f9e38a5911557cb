// SPDX-License-Identifier: MIT
/*
 * Pre-copy rounds over vhost-user (PROPOSAL, docs/uapi-proposal.md
 * "vhost-user, for vdpa-user serve"; docs/vhost-user.md "Pre-copy"):
 * protocol feature 49, phase 0x80000001 of SET_DEVICE_STATE_FD (42),
 * GET_PRECOPY_INFO and PRECOPY_END. Offered only when the device offers
 * backend bit 49, usable only by a front-end that acked it. The rounds
 * are the library's (vdpa_mig_src_precopy_round, _dst_precopy_apply):
 * framed, CRC'd and checked whole by the library and the device before
 * any of a round is applied.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <vdpa-user/migrate.h>
#include <vdpa-user/uapi-ext.h>

#include "serve.h"

#define PC_FEATURE	(1ULL << VU_PF_DEVICE_STATE_PRECOPY)

bool srv_precopy_offered(const struct srv *s)
{
	return (s->caps.backend_features &
		(1ULL << VHOST_BACKEND_F_DEVICE_STATE_PRECOPY)) &&
	       (s->backend_acked & (1ULL << VHOST_BACKEND_F_DEVICE_STATE));
}

static bool negotiated(const struct srv *s)
{
	return (s->proto & PC_FEATURE) &&
	       (s->proto & (1ULL << VU_PF_DEVICE_STATE));
}

void srv_precopy_free(struct srv *s)
{
	/* a source that never switched over: its device forgets the rounds */
	vdpa_mig_src_free(s->pc_src);
	s->pc_src = NULL;
	vdpa_mig_dst_free(s->pc_dst);
	s->pc_dst = NULL;
}

void srv_precopy_round_lost(struct srv *s)
{
	if (!s->pc_src)
		return;
	/*
	 * The device counted the round as sent; the front-end may not have
	 * it. No more rounds in this pre-copy: the final carries everything.
	 */
	vdpa_mig_src_precopy_abort(s->pc_src);
	srv_log(LOG_WARNING, "pre-copy: a round was not transferred; the "
		"final state will carry everything");
}

static int src_round(struct srv *s, int fd, uint64_t *ret_reply,
		     int *ret_fd, char *err, size_t errlen)
{
	struct vdpa_transfer_opts o = { .cap = 0 };
	uint64_t pending = 0;
	void *buf = NULL;
	size_t len = 0;
	int r;

	if (!s->started || s->suspended) {
		snprintf(err, errlen, "SAVE phase PRECOPY needs the device "
			 "running (after GET_VRING_BASE the rest goes with "
			 "phase 0)");
		r = -EINVAL;
		goto err_close;
	}
	if (!s->pc_src) {
		r = vdpa_mig_src_new(s->dev, NULL, &s->pc_src);
		if (r < 0) {
			snprintf(err, errlen, "pre-copy: %s", strerror(-r));
			goto err_close;
		}
	}
	/* an earlier round never checked is lost: this one is then refused */
	srv_state_free(s);
	r = vdpa_mig_src_precopy_round(s->pc_src, &buf, &len, &pending, err,
				       errlen);
	if (r < 0)
		goto err_close;
	s->save_blob = buf;
	r = vdpa_transfer_set_fd(VDPA_TRANSFER_SAVE,
				 VDPA_TRANSFER_PHASE_PRECOPY, fd, buf, len, &o,
				 &s->xfer, ret_fd);
	if (r < 0) {
		snprintf(err, errlen, "transfer: %s", strerror(-r));
		*ret_reply = vdpa_transfer_reply(-r, -1);
		srv_state_free(s);
		srv_precopy_round_lost(s);
		return r;
	}
	s->xfer_dir = VDPA_TRANSFER_SAVE;
	s->xfer_precopy = true;
	*ret_reply = vdpa_transfer_reply(0, *ret_fd);
	srv_log(LOG_NOTICE, "SET_DEVICE_STATE_FD SAVE PRECOPY: a round of %zu "
		"bytes, %" PRIu64 " bytes pending", len, pending);
	return 0;

err_close:
	*ret_reply = vdpa_transfer_reply(-r, -1);
	if (fd >= 0)
		close(fd);
	return r;
}

static int dst_round(struct srv *s, int fd, uint64_t *ret_reply,
		     int *ret_fd, char *err, size_t errlen)
{
	struct vdpa_transfer_opts o = { .cap = 0 };
	int r;

	if (s->started) {
		snprintf(err, errlen, "LOAD phase PRECOPY into a started "
			 "device (rounds go in before the rings start)");
		r = -EBUSY;
	} else if (s->loaded) {
		snprintf(err, errlen, "a pre-copy round after the final state");
		r = -EALREADY;
	} else if (!s->features_set) {
		snprintf(err, errlen, "LOAD phase PRECOPY before SET_FEATURES "
			 "(the device is negotiated before the first round)");
		r = -EINVAL;
	} else {
		r = 0;
	}
	if (!r && !s->pc_dst) {
		r = srv_dev_prepare_rounds(s, err, errlen);
		if (!r)
			r = vdpa_mig_dst_new(s->dev, NULL, &s->pc_dst);
		if (r < 0 && !err[0])
			snprintf(err, errlen, "pre-copy: %s", strerror(-r));
	}
	if (r < 0) {
		*ret_reply = vdpa_transfer_reply(-r, -1);
		if (fd >= 0)
			close(fd);
		return r;
	}
	srv_state_free(s);
	r = vdpa_transfer_set_fd(VDPA_TRANSFER_LOAD,
				 VDPA_TRANSFER_PHASE_PRECOPY, fd, NULL, 0, &o,
				 &s->xfer, ret_fd);
	if (r < 0) {
		snprintf(err, errlen, "transfer: %s", strerror(-r));
		*ret_reply = vdpa_transfer_reply(-r, -1);
		return r;
	}
	s->xfer_dir = VDPA_TRANSFER_LOAD;
	s->xfer_precopy = true;
	*ret_reply = vdpa_transfer_reply(0, *ret_fd);
	srv_log(LOG_NOTICE, "SET_DEVICE_STATE_FD LOAD PRECOPY");
	return 0;
}

int srv_precopy_set_fd(struct srv *s, const struct vu_state_fd *p, int fd,
		       uint64_t *ret_reply, int *ret_fd, char *err,
		       size_t errlen)
{
	*ret_fd = -1;
	if (!negotiated(s)) {
		snprintf(err, errlen, "phase 0x%x (PRECOPY): the front-end did "
			 "not negotiate DEVICE_STATE_PRECOPY (protocol feature "
			 "49%s)", p->phase, srv_precopy_offered(s) ? "" :
			 "; this device has no pre-copy");
		*ret_reply = vdpa_transfer_reply(EOPNOTSUPP, -1);
		if (fd >= 0)
			close(fd);
		return -EOPNOTSUPP;
	}
	return p->direction == VDPA_TRANSFER_SAVE ?
	       src_round(s, fd, ret_reply, ret_fd, err, errlen) :
	       dst_round(s, fd, ret_reply, ret_fd, err, errlen);
}

/* CHECK_DEVICE_STATE of a round. */
int srv_precopy_check(struct srv *s, char *err, size_t errlen)
{
	void *buf = NULL;
	size_t len = 0;
	int r = vdpa_transfer_check(s->xfer);

	if (r < 0) {
		const char *why = vdpa_transfer_error(s->xfer);

		snprintf(err, errlen, "pre-copy round %s failed: %s",
			 s->xfer_dir == VDPA_TRANSFER_SAVE ? "SAVE" : "LOAD",
			 why && *why ? why : strerror(-r));
		srv_state_free(s);	/* a SAVE round: the device forgets */
		return r;
	}
	if (s->xfer_dir == VDPA_TRANSFER_SAVE) {
		srv_log(LOG_NOTICE, "CHECK_DEVICE_STATE: pre-copy round SAVE "
			"ok (%zu bytes)", vdpa_transfer_bytes(s->xfer));
		s->xfer_precopy = false;
		srv_state_free(s);
		s->st.precopy_rounds++;
		return 0;
	}
	r = vdpa_transfer_take_round(s->xfer, &buf, &len);
	s->xfer_precopy = false;
	srv_state_free(s);
	if (r < 0) {
		snprintf(err, errlen, "pre-copy round: %s", strerror(-r));
		return r;
	}
	/* checked whole (framing, order, the device's own checks) first */
	r = vdpa_mig_dst_precopy_apply(s->pc_dst, buf, len, err, errlen);
	free(buf);
	if (r < 0)
		return r;
	s->st.precopy_rounds++;
	srv_log(LOG_NOTICE, "CHECK_DEVICE_STATE: pre-copy round LOAD applied "
		"(%zu bytes)", len);
	return 0;
}

static int precopy_info(struct srv *s, struct vu_precopy_info *pi)
{
	struct vdpa_mig_precopy_info mi;
	char err[256] = "";
	int r;

	if (!s->pc_src) {
		r = vdpa_mig_src_new(s->dev, NULL, &s->pc_src);
		if (r < 0)
			return r;
	}
	r = vdpa_mig_src_precopy_info(s->pc_src, &mi, err, sizeof(err));
	if (r < 0) {
		srv_log(LOG_WARNING, "GET_PRECOPY_INFO: %s", err);
		return r;
	}
	memset(pi, 0, sizeof(*pi));
	pi->initial_bytes = mi.initial_bytes;
	pi->dirty_bytes = mi.dirty_bytes;
	pi->rounds = mi.rounds;
	pi->flags = mi.rounds ? 1 : 0;
	return 0;
}

static int precopy_end(struct srv *s)
{
	int r = 0;

	if (s->pc_src)
		srv_log(LOG_NOTICE, "PRECOPY_END: the source forgets its "
			"rounds");
	vdpa_mig_src_free(s->pc_src);
	s->pc_src = NULL;
	if (s->pc_dst) {
		/* the destination's device drops its record of the rounds */
		r = vdpa_dev_call(s->dev, VHOST_VDPA_PRECOPY_END, NULL);
		vdpa_mig_dst_free(s->pc_dst);
		s->pc_dst = NULL;
		srv_log(LOG_NOTICE, "PRECOPY_END: the destination forgets its "
			"rounds");
	}
	return r;
}

int srv_precopy_request(struct srv *s, struct srv_msg *m)
{
	const char *name = m->hdr.request == VU_GET_PRECOPY_INFO ?
			   "GET_PRECOPY_INFO" : "PRECOPY_END";
	struct vu_precopy_info pi;
	uint64_t e;
	int r;

	if (m->hdr.size || m->nfds) {
		srv_log(LOG_ERR, "%s: payload of %u bytes and %u fds, expected "
			"none; closing the connection", name, m->hdr.size,
			m->nfds);
		srv_msg_close_fds(m);
		return -1;
	}
	if (!negotiated(s)) {
		srv_log(LOG_WARNING, "%s: the front-end did not negotiate "
			"DEVICE_STATE_PRECOPY (protocol feature 49)", name);
		r = -EOPNOTSUPP;
	} else if (m->hdr.request == VU_GET_PRECOPY_INFO) {
		r = precopy_info(s, &pi);
		if (!r)
			return srv_reply(s, m->hdr.request, &pi,
					sizeof(pi), -1) < 0 ? -1 : 0;
	} else {
		r = precopy_end(s);
		if (r < 0)
			srv_log(LOG_WARNING, "PRECOPY_END: %s", strerror(-r));
	}
	e = r < 0 ? (uint64_t)-r : 0;
	return srv_reply(s, m->hdr.request, &e, sizeof(e), -1) < 0 ? -1 :
	       0;
}

bool srv_precopy_active(struct srv *s)
{
	struct vdpa_mig_precopy_info mi;

	return s->pc_src &&
	       vdpa_mig_src_precopy_info(s->pc_src, &mi, NULL, 0) == 0 &&
	       mi.rounds;
}
