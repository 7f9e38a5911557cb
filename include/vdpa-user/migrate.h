/* SPDX-License-Identifier: MIT */
/*
 * Live migration of a vDPA device, as a transaction the library owns
 * (docs/migration.md, docs/library.md): precheck before anything stops,
 * prepare the destination while the source runs, switchover (SUSPEND,
 * vring bases, device state, transfer through the transfer-FD interface,
 * load, DRIVER_OK read back, class state, queues, kick handover), then
 * commit (the source may be reset) or rollback (the source runs again,
 * with its kicks). Every step is timestamped.
 *
 * Two halves, usable in one process (vdpa_migrate() runs both) or in two
 * processes or hosts connected by whatever channel the front-end has: the
 * handshake messages are opaque byte strings the front-end carries.
 *
 *   destination                          source
 *   vdpa_mig_dst_new                     vdpa_mig_src_new
 *   vdpa_mig_dst_describe  --- desc --> vdpa_mig_src_precheck
 *                          <-- plan --- vdpa_mig_src_plan
 *   vdpa_mig_dst_prepare                 vdpa_mig_src_switchover (SUSPEND)
 *   vdpa_mig_dst_set_state_fd <- state - vdpa_mig_src_set_state_fd
 *   vdpa_mig_dst_check_state             vdpa_mig_src_check_state
 *   vdpa_mig_dst_start
 *   vdpa_mig_dst_verdict   - verdict --> vdpa_mig_src_finish (commit or
 *                                        rollback)
 *
 * The rings may belong to the caller: whatever was set through
 * vdpa_dev_set_vring_*() (or vdpa_dev_call()) on the source is what moves.
 * The kick eventfds are handed over: the suspended source lets go of them
 * before the destination takes them, and a rollback binds them again.
 */
#ifndef VDPA_USER_MIGRATE_H
#define VDPA_USER_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vdpa-user/state.h>
#include <vdpa-user/vdpa-user.h>

#ifdef __cplusplus
extern "C" {
#endif

enum vdpa_mig_step {
	VDPA_MIG_PRECHECK,	/* capability and compatibility, nothing stops */
	VDPA_MIG_PREPARE,	/* destination negotiated, rings placed */
	VDPA_MIG_SUSPEND,	/* source SUSPEND */
	VDPA_MIG_SAVE,		/* vring bases, device state, class state */
	VDPA_MIG_TRANSFER,	/* the blob through the transfer FD */
	VDPA_MIG_LOAD,		/* rings, device state into the destination */
	VDPA_MIG_START,		/* DRIVER_OK read back, class state, queues */
	VDPA_MIG_COMMIT,	/* the source reset */
	VDPA_MIG_ROLLBACK,	/* the source running again */
	VDPA_MIG_NSTEPS
};

/* CLOCK_MONOTONIC nanoseconds; 0: the step did not run. */
struct vdpa_mig_times {
	uint64_t begin_ns[VDPA_MIG_NSTEPS];
	uint64_t end_ns[VDPA_MIG_NSTEPS];
};

/* "precheck", "prepare", ... */
VDPA_EXPORT const char *vdpa_mig_step_name(enum vdpa_mig_step step);

/* ---- net class state the front-end forwards ---------------------------- */

/*
 * A front-end that owns the guest's control queue hands the library each
 * command it forwarded and the device acknowledged (VIRTIO_NET_OK): class,
 * command and the data after them. The library keeps MAC, MAC table, queue
 * pairs and RX mode, and restores them on a destination without the
 * device-state extension. Errors: -EINVAL malformed; -ENOTSUP a command
 * the library cannot carry (a later migration is refused, naming it); the
 * library's own net driver (vdpa_net) records its commands itself.
 */
VDPA_EXPORT int vdpa_dev_net_ctrl_record(struct vdpa_dev *dev, uint8_t cls,
					 uint8_t cmd, const void *data,
					 size_t len);
/* The class state recorded since the last reset (a net device only). */
VDPA_EXPORT int vdpa_dev_net_class(struct vdpa_dev *dev,
				   struct vdpa_state_net *ret);

/* ---- source half ------------------------------------------------------- */

struct vdpa_mig_src;

struct vdpa_mig_src_opts {
	/* Largest state accepted through the transfer FD (0: 256 MiB). */
	size_t cap;
	/*
	 * When the library is not the one driving the control queue of a
	 * net device (the caller is the driver and keeps its own record of
	 * the class state), the class state to save instead of the recorded
	 * one. NULL: the recorded one.
	 */
	const struct vdpa_state_net *net;
	/*
	 * A rollback on a source without RESUME reloads the saved state
	 * into it: the class-state replay then, as vdpa_mig_dst_opts.
	 */
	int (*restore_class)(struct vdpa_dev *dev, const struct vdpa_state *s,
			     void *opaque);
	void *opaque;
};

/*
 * A migration of dev, which must be running (DRIVER_OK). The description
 * the migration is checked against is the one captured before the driver
 * first started the device. Errors: -EINVAL, -ENOMEM.
 */
VDPA_EXPORT int vdpa_mig_src_new(struct vdpa_dev *dev,
				 const struct vdpa_mig_src_opts *opts,
				 struct vdpa_mig_src **ret);
/*
 * Before anything stops: SUSPEND negotiated, every queue set up, no class
 * state the library cannot carry, a rollback possible (a source without
 * RESUME nor the extension must have no class state to restore), and
 * (dst_desc from vdpa_mig_dst_describe,
 * or NULL when saving to a file) the destination compatible. 0, or -errno
 * with one line in err.
 */
VDPA_EXPORT int vdpa_mig_src_precheck(struct vdpa_mig_src *m,
				      const void *dst_desc, size_t len,
				      char *err, size_t errlen);
/*
 * The plan for the destination, sent before the switchover: negotiated
 * features and the rings' sizes and addresses (a state blob without
 * bases). *ret_buf is malloc'd.
 */
VDPA_EXPORT int vdpa_mig_src_plan(struct vdpa_mig_src *m, void **ret_buf,
				  size_t *ret_len);
/*
 * SUSPEND (downtime starts), vring bases, the device's own state, class
 * state; the kicks are let go of. On failure the source has been resumed
 * (err says so) and the migration is over.
 */
VDPA_EXPORT int vdpa_mig_src_switchover(struct vdpa_mig_src *m, char *err,
					size_t errlen);
/* The saved state and its blob (after a switchover). */
VDPA_EXPORT const struct vdpa_state *vdpa_mig_src_state(
	const struct vdpa_mig_src *m);
/*
 * The blob in one piece (made on the first call: the transfer FD sends it
 * in pieces without copying the device's own state). Owned by m.
 */
VDPA_EXPORT int vdpa_mig_src_blob(struct vdpa_mig_src *m,
				  const void **ret_buf, size_t *ret_len);
/*
 * SET_DEVICE_STATE_FD (SAVE) of the saved blob: the library writes it
 * into fd and closes it (fd < 0: *ret_fd is a pipe read end for the
 * caller, else -1); vdpa_mig_src_check_state() waits for the end, as
 * CHECK_DEVICE_STATE. Read the fd to EOF in between.
 */
VDPA_EXPORT int vdpa_mig_src_set_state_fd(struct vdpa_mig_src *m, int fd,
					  int *ret_fd, char *err,
					  size_t errlen);
VDPA_EXPORT int vdpa_mig_src_check_state(struct vdpa_mig_src *m, char *err,
					 size_t errlen);
/*
 * The destination's verdict (vdpa_mig_dst_verdict): success commits (the
 * source is reset; returns 0), failure rolls back (returns the
 * destination's error, err says why and whether the source runs again).
 * A verdict that cannot be decoded is a failure.
 */
VDPA_EXPORT int vdpa_mig_src_finish(struct vdpa_mig_src *m,
				    const void *verdict, size_t len,
				    char *err, size_t errlen);
/*
 * A verdict (vdpa_mig_dst_verdict) as the other side reads it: 0 and
 * *ret_result 0 or -errno, the reason made printable into reason (may be
 * NULL); -EPROTO for something that is not a verdict.
 */
VDPA_EXPORT int vdpa_mig_verdict_parse(const void *verdict, size_t len,
				       int *ret_result, char *reason,
				       size_t reason_len);
/* The state is safe elsewhere (a file): reset the source. */
VDPA_EXPORT int vdpa_mig_src_commit(struct vdpa_mig_src *m);
/*
 * After a failure past the switchover: bind the kicks again and RESUME,
 * or, without RESUME, reset and load the saved state back into the
 * source. 0 when the source runs again.
 */
VDPA_EXPORT int vdpa_mig_src_rollback(struct vdpa_mig_src *m, char *err,
				      size_t errlen);
VDPA_EXPORT const struct vdpa_mig_times *vdpa_mig_src_times(
	const struct vdpa_mig_src *m);
/*
 * True while this migration holds the source suspended: switched over,
 * neither committed nor rolled back (or a rollback that failed).
 */
VDPA_EXPORT bool vdpa_mig_src_suspended(const struct vdpa_mig_src *m);
/*
 * The outcome is unknown (all of the state went out, no verdict came
 * back): the destination may be running the device, so the source must
 * not resume. The migration forgets the source, which stays suspended;
 * vdpa_mig_src_free() then does not roll it back.
 */
VDPA_EXPORT void vdpa_mig_src_abandon(struct vdpa_mig_src *m);
/* Frees m; a source still suspended and not committed is rolled back. */
VDPA_EXPORT void vdpa_mig_src_free(struct vdpa_mig_src *m);

/* ---- pre-copy (PROPOSAL, docs/migration.md "Pre-copy") ------------------- */

/*
 * While the source runs, its device's own state goes out in rounds: the
 * first carries all of it, each later one what changed since the one
 * before; the switchover's state then carries only the rest. Needs the
 * device-state extension with VHOST_BACKEND_F_DEVICE_STATE_PRECOPY on
 * both devices and RESUME on the source (its rollback cannot reload a
 * state that holds only the rest). The front-end decides when to stop,
 * from the pending estimate (as VFIO_MIG_GET_PRECOPY_INFO).
 */
struct vdpa_mig_precopy_info {
	uint64_t initial_bytes;	/* never sent yet (before round 0: all) */
	uint64_t dirty_bytes;	/* sent, then changed: to be sent again */
	uint32_t rounds;	/* rounds taken by this migration */
	uint64_t sent_bytes;	/* bytes of those rounds */
};

/*
 * The source device's pending estimate, asked now. -EOPNOTSUPP (err says
 * why) when the source cannot pre-copy.
 */
VDPA_EXPORT int vdpa_mig_src_precopy_info(struct vdpa_mig_src *m,
					  struct vdpa_mig_precopy_info *ret,
					  char *err, size_t errlen);
/*
 * One round, while the source runs (before vdpa_mig_src_switchover):
 * *ret_buf (malloc'd, the caller frees it) is the round for
 * vdpa_mig_dst_precopy_apply(), framed and CRC'd; *ret_pending (may be
 * NULL) the bytes changed since it was taken. A failure leaves the source
 * running; later rounds of this migration are then refused (-ESTALE), the
 * switchover carries the whole state.
 */
VDPA_EXPORT int vdpa_mig_src_precopy_round(struct vdpa_mig_src *m,
					   void **ret_buf, size_t *ret_len,
					   uint64_t *ret_pending, char *err,
					   size_t errlen);
/*
 * Enough rounds? Asks the source device's estimate now (*ret_pending, may
 * be NULL) and answers true when it is at most threshold bytes (0: 1 MiB),
 * when max_rounds were taken (0: 16), or when it did not shrink since the
 * previous call after the second round (writes outpace the rounds: more
 * would not shorten the downtime). True too when the estimate cannot be
 * had: the switchover then says why. The rule vdpa_migrate() uses.
 */
VDPA_EXPORT bool vdpa_mig_src_precopy_done(struct vdpa_mig_src *m,
					   uint64_t threshold,
					   uint32_t max_rounds,
					   uint64_t *ret_pending);
/*
 * The rounds did not reach the destination's device (it cannot take
 * them, or refused one and stays): the source's device forgets them and
 * the switchover carries the whole state, which replaces whatever the
 * destination had. No more rounds in this migration.
 */
VDPA_EXPORT int vdpa_mig_src_precopy_abort(struct vdpa_mig_src *m);

/* ---- destination half -------------------------------------------------- */

struct vdpa_mig_dst;

struct vdpa_mig_dst_opts {
	size_t cap;		/* largest state accepted (0: 256 MiB) */
	/*
	 * The driver restores the net class state itself through its own
	 * control queue (the library's vdpa_net does); NULL: the library
	 * replays it through a control queue it drives, then hands the
	 * control queue to the driver's ring.
	 */
	int (*restore_class)(struct vdpa_dev *dev, const struct vdpa_state *s,
			     void *opaque);
	void *opaque;
};

/* dev must be open and not in use (it is reset). Errors: -EINVAL, -ENOMEM. */
VDPA_EXPORT int vdpa_mig_dst_new(struct vdpa_dev *dev,
				 const struct vdpa_mig_dst_opts *opts,
				 struct vdpa_mig_dst **ret);
/* Handshake: the destination's description (malloc'd) for the source. */
VDPA_EXPORT int vdpa_mig_dst_describe(struct vdpa_mig_dst *m, void **ret_buf,
				      size_t *ret_len);
/*
 * While the source still runs: negotiate the plan's features and set the
 * rings' sizes and addresses (only bases, fds and state remain for the
 * downtime). A failure here stops nothing: err says why.
 */
VDPA_EXPORT int vdpa_mig_dst_prepare(struct vdpa_mig_dst *m, const void *plan,
				     size_t len, char *err, size_t errlen);
/*
 * The caller's kick and call eventfds for queue idx (not owned). In one
 * process vdpa_migrate() passes the source's own.
 */
VDPA_EXPORT int vdpa_mig_dst_set_vring_fds(struct vdpa_mig_dst *m,
					   uint32_t idx, int kick_fd,
					   int call_fd);
/*
 * SET_DEVICE_STATE_FD (LOAD): the library reads fd to EOF (fd < 0:
 * *ret_fd is a pipe write end for the caller to fill and close).
 * vdpa_mig_dst_check_state() is CHECK_DEVICE_STATE: integrity, decode and
 * the load check (vdpa_state_check_load) against this device; nothing has
 * been sent to the device yet.
 */
VDPA_EXPORT int vdpa_mig_dst_set_state_fd(struct vdpa_mig_dst *m, int fd,
					  int *ret_fd, char *err,
					  size_t errlen);
VDPA_EXPORT int vdpa_mig_dst_check_state(struct vdpa_mig_dst *m, char *err,
					 size_t errlen);
/* The state checked, for the caller (bases for its own ring bookkeeping). */
VDPA_EXPORT const struct vdpa_state *vdpa_mig_dst_state(
	const struct vdpa_mig_dst *m);
/*
 * Into the device: features, rings with the caller's fds, device state,
 * DRIVER_OK and its read-back, class state, queues enabled, a kick on
 * every queue for what was published during the switch. On failure the
 * device is reset and err says why.
 */
VDPA_EXPORT int vdpa_mig_dst_start(struct vdpa_mig_dst *m, char *err,
				   size_t errlen);
/* Handshake: the verdict for the source (0 or -errno, and a reason). */
VDPA_EXPORT int vdpa_mig_dst_verdict(struct vdpa_mig_dst *m, int result,
				     const char *reason, void **ret_buf,
				     size_t *ret_len);
VDPA_EXPORT const struct vdpa_mig_times *vdpa_mig_dst_times(
	const struct vdpa_mig_dst *m);
/*
 * A pre-copy round (vdpa_mig_src_precopy_round) into the prepared
 * destination, before its state: checked whole (framing, CRC, the next
 * round of the same migration, then the device's own checks) before any
 * of it is applied. -EBADMSG corrupt, -EXDEV another migration's round,
 * -EILSEQ out of order or repeated, -EALREADY after the final state,
 * -EOPNOTSUPP no pre-copy on this device; err says which.
 */
VDPA_EXPORT int vdpa_mig_dst_precopy_apply(struct vdpa_mig_dst *m,
					   const void *buf, size_t len,
					   char *err, size_t errlen);
VDPA_EXPORT void vdpa_mig_dst_free(struct vdpa_mig_dst *m);

/* ---- both in one process ------------------------------------------------ */

enum vdpa_mig_channel {
	VDPA_MIG_VIA_PIPE,	/* the transfer FDs over a pipe */
	VDPA_MIG_VIA_SOCKET,	/* a unix socketpair */
	VDPA_MIG_VIA_FILE,	/* a temporary file, written then read */
	/*
	 * The device's own state straight from one device into the other
	 * over one pipe (the library does not copy it; each device checks
	 * it), the rest of the blob through the transfer FDs over a pipe.
	 * Needs the device-state extension on both and RESUME on the source
	 * (a rollback cannot reload a state the library never held);
	 * otherwise VDPA_MIG_VIA_PIPE is used and res->direct says so.
	 */
	VDPA_MIG_VIA_DIRECT,
};

struct vdpa_mig_opts {
	enum vdpa_mig_channel via;
	size_t cap;
	const struct vdpa_state_net *net;	/* as vdpa_mig_src_opts */
	int (*restore_class)(struct vdpa_dev *dev, const struct vdpa_state *s,
			     void *opaque);	/* as vdpa_mig_dst_opts */
	void *opaque;
	/*
	 * Pre-copy rounds before the switchover when both devices can
	 * (else none: res->precopy false). Rounds stop as
	 * vdpa_mig_src_precopy_done() says with precopy_threshold and
	 * precopy_max_rounds, or after precopy_max_ms (0: 30 s).
	 */
	bool precopy;
	uint64_t precopy_threshold;
	uint32_t precopy_max_rounds;
	uint32_t precopy_max_ms;
	/*
	 * Called after each round was applied, with the estimate then (may
	 * be NULL). Non-zero: no more rounds, switch over now.
	 */
	int (*precopy_progress)(const struct vdpa_mig_precopy_info *info,
				void *opaque);
};

struct vdpa_mig_result {
	struct vdpa_mig_times src, dst;
	uint64_t downtime_ns;	/* SUSPEND began -> destination started */
	size_t state_bytes;
	bool rolled_back;	/* failed after SUSPEND; the source runs */
	bool direct;		/* the device state went device to device */
	bool precopy;		/* both could: pre-copy rounds were run */
	uint32_t precopy_rounds;
	uint64_t precopy_bytes;	/* bytes of the rounds */
	uint64_t precopy_pending;	/* the estimate when they stopped */
};

/*
 * Move src's running device to dst (both open in this process): the
 * whole transaction. 0: dst runs, src is reset. Failure: err says why;
 * the source runs again when res->rolled_back or when nothing had
 * stopped, dst is reset.
 */
VDPA_EXPORT int vdpa_migrate(struct vdpa_dev *src, struct vdpa_dev *dst,
			     const struct vdpa_mig_opts *opts,
			     struct vdpa_mig_result *res, char *err,
			     size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
