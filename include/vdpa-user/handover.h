/* SPDX-License-Identifier: MIT */
/*
 * Live update: hand an open device to another process on the same host
 * over a unix socket (SCM_RIGHTS), without a reset when the device offers
 * the 2024 VHOST_NEW_OWNER proposal, by suspend/save/reset/load otherwise.
 * See docs/live-update.md.
 *
 * Old process: vdpa_handover_send(). New process: vdpa_handover_recv()
 * (receives and validates everything, touches no device), then
 * vdpa_handover_accept() or vdpa_handover_refuse().
 */
#ifndef VDPA_USER_HANDOVER_H
#define VDPA_USER_HANDOVER_H

#include <stddef.h>
#include <stdint.h>

#include <vdpa-user/vdpa-user.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VDPA_HANDOVER_MAX_MEM	16
#define VDPA_HANDOVER_MAX_VQS	64
#define VDPA_HANDOVER_MAX_APP	(64u << 20)	/* the caller's own record */

enum vdpa_handover_path {
	VDPA_HANDOVER_NONE = 0,		/* cannot be handed over */
	VDPA_HANDOVER_NEW_OWNER = 1,	/* fd handed over, VHOST_NEW_OWNER */
	VDPA_HANDOVER_FALLBACK = 2,	/* suspend, save, reset, load */
};

struct vdpa_handover_info {
	enum vdpa_handover_path path;
	char reason[192];	/* why this path, one line */
	uint64_t pause_ns;	/* suspended in the old process until the
				 * device runs in the new one */
	uint64_t record_len;	/* bytes of the record */
	unsigned int nfds;	/* descriptors that went with it */
};

/* "new-owner", "fallback", "none". */
VDPA_EXPORT const char *vdpa_handover_path_name(enum vdpa_handover_path p);

/*
 * Which path a handover of dev takes, and why, decided from what the
 * device offers and what was negotiated, before anything stops: 0 with
 * path and reason, or -EOPNOTSUPP with path NONE and the reason.
 */
VDPA_EXPORT int vdpa_handover_choose(struct vdpa_dev *dev,
				     struct vdpa_handover_info *ret_info);

/*
 * Old process: hand *devp, with the driver memory mapped into it (mems,
 * at most VDPA_HANDOVER_MAX_MEM) and app (the caller's own record, at
 * most VDPA_HANDOVER_MAX_APP bytes, opaque to the library), to the
 * process at the other end of sock (a connected AF_UNIX SOCK_SEQPACKET
 * socket). timeout_ms bounds each wait for the peer. On success the
 * device belongs to the new process: *devp is closed, freed and set to
 * NULL (mems stay the caller's). When the new process refuses, fails or
 * goes away before taking the device, the device runs on here (resumed;
 * taken back with VHOST_NEW_OWNER if the peer had taken it), *devp
 * unchanged, and the call returns -ECANCELED (refused), -EPIPE (peer
 * gone) or -ETIMEDOUT. On the fallback path, once the device has been
 * released to the new process, a failure there leaves *devp NULL and
 * returns -EPIPE: the device was reset and is free to be opened again.
 * err: one line. -EOPNOTSUPP: no path (vdpa_handover_choose()).
 */
VDPA_EXPORT int vdpa_handover_send(struct vdpa_dev **devp, int sock,
				   struct vdpa_mem *const *mems,
				   unsigned int nmem, const void *app,
				   size_t app_len, int timeout_ms,
				   struct vdpa_handover_info *ret_info,
				   char *err, size_t errlen);

struct vdpa_handover_in;

/*
 * New process: receive a record and its descriptors from sock and check
 * everything (magic, version, CRC-32C, lengths, counts, descriptor count
 * and kinds, truncated ancillary data) before keeping any of it; the
 * driver memory is mapped, no device is touched. Errors: -EBADMSG
 * malformed or truncated, -EPROTO wrong magic or kind of descriptor,
 * -EPROTONOSUPPORT other version, -EPIPE the old process went away,
 * -ETIMEDOUT, -ENOMEM; err names the problem. Nothing is left open on
 * failure (the old process sees the socket close and runs on).
 */
VDPA_EXPORT int vdpa_handover_recv(int sock, int timeout_ms,
				   struct vdpa_handover_in **ret_in,
				   char *err, size_t errlen);

VDPA_EXPORT const struct vdpa_handover_info *vdpa_handover_in_info(
	const struct vdpa_handover_in *in);
/* The old process's app record (valid until vdpa_handover_in_free()). */
VDPA_EXPORT const void *vdpa_handover_in_app(const struct vdpa_handover_in *in,
					     size_t *ret_len);
VDPA_EXPORT unsigned int vdpa_handover_in_nmem(const struct vdpa_handover_in *in);
/* Region i, mapped at this process's address (NULL past the count). */
VDPA_EXPORT struct vdpa_mem *vdpa_handover_in_mem(
	const struct vdpa_handover_in *in, unsigned int i);

/*
 * Queue idx's kick and call eventfds as received (-1: none), still owned
 * by in (closed by vdpa_handover_in_free(): dup them to keep them).
 */
VDPA_EXPORT int vdpa_handover_in_vring_fds(const struct vdpa_handover_in *in,
					   uint32_t idx, int *ret_kick,
					   int *ret_call);

/*
 * Take the device over: say READY, wait for the old process to stop the
 * device and say GO, then on the new-owner path VHOST_NEW_OWNER, each
 * region registered and remapped (VHOST_IOTLB_REMAP) at this process's
 * address, eventfds rebound where they differ, RESUME; on the fallback
 * path, once the old process closed the device, open it, map the
 * regions, load the saved state. kick_fds/call_fds (by queue index,
 * VDPA_HANDOVER_MAX_VQS entries; -1, or NULL for all: the received one):
 * the eventfds the device is to use and the handle records; an entry
 * that is the same open file as the received one (a dup of it) is not
 * rebound. On failure nothing is adopted, the old process is told (it
 * runs on when it still can) and err says why: -EPIPE the old process
 * went away before GO (it never stopped, or died: the device is reset
 * when its last descriptor closes), -ECANCELED it could not stop the
 * device, or the request that failed.
 */
VDPA_EXPORT int vdpa_handover_accept(struct vdpa_handover_in *in,
				     const int *kick_fds, const int *call_fds,
				     char *err, size_t errlen);
/* Tell the old process no (it runs on); reason: one line, or NULL. */
VDPA_EXPORT int vdpa_handover_refuse(struct vdpa_handover_in *in,
				     const char *reason);

/* After accept: the device and region i become the caller's (NULL when
 * already taken or absent). */
VDPA_EXPORT struct vdpa_dev *vdpa_handover_in_take_dev(
	struct vdpa_handover_in *in);
VDPA_EXPORT struct vdpa_mem *vdpa_handover_in_take_mem(
	struct vdpa_handover_in *in, unsigned int i);
/* Closes and frees whatever was not taken. NULL is fine. */
VDPA_EXPORT void vdpa_handover_in_free(struct vdpa_handover_in *in);

#ifdef __cplusplus
}
#endif

#endif
