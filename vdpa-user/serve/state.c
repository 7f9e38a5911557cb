// SPDX-License-Identifier: MIT
/*
 * SET_DEVICE_STATE_FD (42) and CHECK_DEVICE_STATE (43) through the
 * library's transfer-FD interface. SAVE: the device stopped by
 * GET_VRING_BASE is saved (library state blob: ring positions and the
 * device's own state where it has the extension) and written into the
 * front-end's fd. LOAD: read, decoded and checked against this device at
 * CHECK; applied when the front-end starts the rings.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "serve.h"

void srv_state_free(struct srv *s)
{
	if (s->xfer_precopy && s->xfer_dir == VDPA_TRANSFER_SAVE)
		srv_precopy_round_lost(s);	/* never checked */
	s->xfer_precopy = false;
	vdpa_transfer_free(s->xfer);
	s->xfer = NULL;
	free(s->save_blob);
	s->save_blob = NULL;
	vdpa_state_free(s->loaded);
	s->loaded = NULL;
}

/* The blob of the stopped device (or of its description if never started). */
static int save_blob(struct srv *s, void **ret, size_t *ret_len, char *err,
		     size_t errlen)
{
	struct vdpa_state *st = NULL;
	int r;

	if (s->started && s->stop_state) {
		/* blk flushed at the stop: the state saved then */
		r = vdpa_state_encode(s->stop_state, ret, ret_len);
		if (r < 0)
			snprintf(err, errlen, "encoding the state: %s",
				 strerror(-r));
		return r;
	}
	if (s->started) {
		if (s->device_reset) {
			snprintf(err, errlen, "the device has no SUSPEND and "
				 "was reset at GET_VRING_BASE: its state is "
				 "gone");
			return -EOPNOTSUPP;
		}
		r = vdpa_state_save_device(s->dev, s->desc, &st);
		if (r < 0) {
			snprintf(err, errlen, "saving the device: %s",
				 strerror(-r));
			return r;
		}
	} else {
		/* never started: nothing but what it is */
		st = vdpa_state_new();
		if (!st)
			return -ENOMEM;
		memcpy(st->model, s->desc->model, sizeof(st->model));
		st->cfg = s->desc->cfg;
	}
	r = vdpa_state_encode(st, ret, ret_len);
	if (r < 0)
		snprintf(err, errlen, "encoding the state: %s", strerror(-r));
	else
		srv_log(LOG_INFO, "SAVE: %zu bytes (%u rings%s)", *ret_len,
			st->nqueues,
			st->has_device ? ", the device's own state" : "");
	vdpa_state_free(st);
	return r;
}

int srv_state_set_fd(struct srv *s, const struct vu_state_fd *p, int fd,
		     uint64_t *ret_reply, int *ret_fd, char *err,
		     size_t errlen)
{
	struct vdpa_transfer_opts o = { .compat_with = s->desc };
	void *blob = NULL;
	size_t len = 0;
	int r;

	*ret_fd = -1;
	*ret_reply = vdpa_transfer_reply(EINVAL, -1);
	if (!(s->proto & (1ULL << VU_PF_DEVICE_STATE))) {
		snprintf(err, errlen, "DEVICE_STATE was not negotiated");
		goto err_close;
	}
	if (p->direction != VDPA_TRANSFER_SAVE &&
	    p->direction != VDPA_TRANSFER_LOAD) {
		snprintf(err, errlen, "direction %u (0 save, 1 load)",
			 p->direction);
		goto err_close;
	}
	if (p->phase == VDPA_TRANSFER_PHASE_PRECOPY)
		return srv_precopy_set_fd(s, p, fd, ret_reply, ret_fd, err,
					  errlen);
	if (p->phase != VDPA_TRANSFER_PHASE_STOPPED) {
		snprintf(err, errlen, "phase %u (only 0, stopped)", p->phase);
		goto err_close;
	}
	if ((s->started && !s->suspended) || s->relay) {
		snprintf(err, errlen, "the device is running (GET_VRING_BASE "
			 "first)");
		goto err_close;
	}
	if (p->direction == VDPA_TRANSFER_LOAD && s->started) {
		snprintf(err, errlen, "LOAD into a device that was started "
			 "(a destination loads before its rings start)");
		goto err_close;
	}
	srv_state_free(s);
	if (p->direction == VDPA_TRANSFER_SAVE) {
		r = save_blob(s, &blob, &len, err, errlen);
		if (r < 0) {
			*ret_reply = vdpa_transfer_reply(-r, -1);
			goto err_close;
		}
	}
	s->save_blob = blob;
	r = vdpa_transfer_set_fd(p->direction, p->phase, fd, blob, len, &o,
				 &s->xfer, ret_fd);
	fd = -1;	/* the library took it */
	if (r < 0) {
		snprintf(err, errlen, "transfer: %s", strerror(-r));
		*ret_reply = vdpa_transfer_reply(-r, -1);
		free(s->save_blob);
		s->save_blob = NULL;
		return r;
	}
	s->xfer_dir = p->direction;
	*ret_reply = vdpa_transfer_reply(0, *ret_fd);
	s->st.t_state_fd_ns = srv_now_ns();
	if (p->direction == VDPA_TRANSFER_SAVE)
		s->st.state_saves++;
	else
		s->st.state_loads++;
	srv_log(LOG_NOTICE, "SET_DEVICE_STATE_FD %s%s",
		p->direction == VDPA_TRANSFER_SAVE ? "SAVE" : "LOAD",
		*ret_fd >= 0 ? " (back-end's own pipe returned)" : "");
	return 0;

err_close:
	if (fd >= 0)
		close(fd);
	return -EINVAL;
}

int srv_state_check(struct srv *s, char *err, size_t errlen)
{
	struct vdpa_state *st;
	int r;

	if (!s->xfer) {
		snprintf(err, errlen, "no SET_DEVICE_STATE_FD before it");
		return -EINVAL;
	}
	if (s->xfer_precopy)
		return srv_precopy_check(s, err, errlen);
	s->st.check_failures++;		/* taken back below on success */
	r = vdpa_transfer_check(s->xfer);
	if (r < 0) {
		const char *why = vdpa_transfer_error(s->xfer);

		snprintf(err, errlen, "%s failed: %s",
			 s->xfer_dir == VDPA_TRANSFER_SAVE ? "SAVE" : "LOAD",
			 why && *why ? why : strerror(-r));
		srv_state_free(s);
		return r;
	}
	if (s->xfer_dir == VDPA_TRANSFER_LOAD) {
		st = vdpa_transfer_take_state(s->xfer);
		if (!st) {
			snprintf(err, errlen, "LOAD: no state");
			srv_state_free(s);
			return -EIO;
		}
		if (st->has_features) {
			r = vdpa_state_check_load(s->dev, st, NULL, err,
						  errlen);
			if (r < 0) {
				vdpa_state_free(st);
				srv_state_free(s);
				return r;
			}
		}
		srv_state_free(s);
		s->loaded = st;
		s->st.check_failures--;
		s->st.load_checks_ok++;
		s->st.t_check_ns = srv_now_ns();
		srv_log(LOG_NOTICE, "CHECK_DEVICE_STATE: LOAD ok (%u rings%s), "
			"applied when the rings start", st->nqueues,
			st->has_device ? ", the device's own state" : "");
	} else {
		srv_log(LOG_NOTICE, "CHECK_DEVICE_STATE: SAVE ok (%zu bytes)",
			vdpa_transfer_bytes(s->xfer));
		s->st.check_failures--;
		s->st.save_checks_ok++;
		s->st.t_check_ns = srv_now_ns();
		srv_state_free(s);
		/* the final state went out: the rounds are done with */
		srv_precopy_free(s);
	}
	return 0;
}
