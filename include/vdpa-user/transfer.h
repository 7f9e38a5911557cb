/* SPDX-License-Identifier: MIT */
/*
 * The transfer-FD interface, with the semantics of vhost-user
 * VHOST_USER_SET_DEVICE_STATE_FD (42) and VHOST_USER_CHECK_DEVICE_STATE (43)
 * (docs/transfer-fd.md). The library is the back-end: on SAVE it writes the
 * state blob into the fd and closes it (the caller reads to EOF); on LOAD it
 * reads the fd to EOF (the caller writes and closes). CHECK says whether the
 * transfer worked; on LOAD it is where decode, integrity and compatibility
 * failures surface. Works over a pipe, a socket or a regular file.
 */
#ifndef VDPA_USER_TRANSFER_H
#define VDPA_USER_TRANSFER_H

#include <stddef.h>
#include <stdint.h>

#include <vdpa-user/state.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VDPA_TRANSFER_SAVE		0	/* back-end -> front-end */
#define VDPA_TRANSFER_LOAD		1	/* front-end -> back-end */
#define VDPA_TRANSFER_PHASE_STOPPED	0
/*
 * PROPOSAL (docs/uapi-proposal.md, "Pre-copy"): the device runs and the
 * blob is one pre-copy round (vdpa_mig_src_precopy_round()), not a state.
 * Same number as VHOST_TRANSFER_STATE_PHASE_PRECOPY.
 */
#define VDPA_TRANSFER_PHASE_PRECOPY	0x80000001u

struct vdpa_transfer;

struct vdpa_transfer_opts {
	size_t cap;		/* LOAD: largest state accepted (0: 256 MiB) */
	int timeout_ms;		/* check(): wait for the transfer (0: 30 s) */
	/* LOAD: the destination's description, checked in check() */
	const struct vdpa_state *compat_with;
};

/*
 * SET_DEVICE_STATE_FD. direction VDPA_TRANSFER_SAVE or _LOAD; phase
 * VDPA_TRANSFER_PHASE_STOPPED, or _PRECOPY for a pre-copy round (LOAD:
 * CHECK verifies the round's framing and CRC, vdpa_transfer_take_round()
 * hands it over); -EOPNOTSUPP otherwise. fd is the channel
 * and the library takes it over, also on failure (as a vhost-user back-end
 * receives it over the socket); fd < 0 asks the library for its own: *ret_fd then is a pipe end for the caller (read end
 * on SAVE, write end on LOAD), else -1, as the vhost-user reply's bit 8.
 * SAVE takes the blob to send; it is not copied and must stay valid until
 * vdpa_transfer_check() returned or vdpa_transfer_free(). Errors: -EINVAL, -EOPNOTSUPP,
 * -ENOMEM, -EMFILE.
 */
VDPA_EXPORT int vdpa_transfer_set_fd(uint32_t direction, uint32_t phase,
				     int fd, const void *blob, size_t len,
				     const struct vdpa_transfer_opts *opts,
				     struct vdpa_transfer **ret_t,
				     int *ret_fd);

/*
 * CHECK_DEVICE_STATE: wait (bounded) for the transfer to end. 0 on success.
 * SAVE: -EPIPE the reader closed early, other write errors. LOAD: -ETIMEDOUT
 * the writer never closed, -EFBIG beyond the cap, and the decode/compat
 * errors of vdpa_state_decode()/vdpa_state_compat(), with the message in
 * vdpa_transfer_error(). After a successful LOAD check the decoded state is
 * taken with vdpa_transfer_take_state().
 */
VDPA_EXPORT int vdpa_transfer_check(struct vdpa_transfer *t);
VDPA_EXPORT const char *vdpa_transfer_error(const struct vdpa_transfer *t);
VDPA_EXPORT struct vdpa_state *vdpa_transfer_take_state(
	struct vdpa_transfer *t);
/*
 * After a successful PRECOPY LOAD check: the round as received (malloc'd,
 * the caller frees it), for vdpa_mig_dst_precopy_apply(). -ENODATA for
 * anything else or the second time.
 */
VDPA_EXPORT int vdpa_transfer_take_round(struct vdpa_transfer *t,
					 void **ret_buf, size_t *ret_len);
/* Bytes moved so far. */
VDPA_EXPORT size_t vdpa_transfer_bytes(const struct vdpa_transfer *t);
/* Ends the transfer (a running one is stopped) and frees it. */
VDPA_EXPORT void vdpa_transfer_free(struct vdpa_transfer *t);

/*
 * The vhost-user reply payload of SET_DEVICE_STATE_FD: error in bits 0-7
 * (0 = success), bit 8 set when no fd is returned.
 */
VDPA_EXPORT uint64_t vdpa_transfer_reply(int err, int returned_fd);

#ifdef __cplusplus
}
#endif

#endif
