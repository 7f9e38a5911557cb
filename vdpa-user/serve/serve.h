/* SPDX-License-Identifier: MIT */
/*
 * `vdpa-user serve`: a vhost-user back-end in front of a vDPA device
 * (docs/vhost-user.md). One front-end at a time on a unix socket; the
 * guest's rings, buffers and eventfds go to the device directly.
 */
#ifndef VDPA_SERVE_H
#define VDPA_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vdpa-user/vdpa-user.h>
#include <vdpa-user/state.h>
#include <vdpa-user/transfer.h>

#include "vhost-user.h"

#define SERVE_MAX_VQS	16

/* One region of guest memory, as SET_MEM_TABLE described it. */
struct srv_region {
	uint64_t gpa, size, uaddr, offset;
	struct vdpa_mem *mem;	/* serve's mmap, mapped into the device */
	uint8_t *host;
};

struct srv_vq {
	uint32_t num;
	uint16_t base;			/* next avail index (ours) */
	bool num_set, addr_set, base_set;
	struct vhost_vring_addr addr;	/* as the front-end sent it (VAs) */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	int kick_fd, call_fd, err_fd;	/* owned; -1: none */
	bool enabled;
	bool stopped;			/* GET_VRING_BASE answered */
};

/* A message as received: header, payload, fds (owned until consumed). */
struct srv_msg {
	struct vu_hdr hdr;
	uint8_t payload[VU_MAX_PAYLOAD];
	int fds[VU_MAX_FDS];
	unsigned int nfds;
};

/* `serve --stats FILE` (stats.c): cumulative over the process */
struct srv_stats {
	uint64_t connections, request_errors;
	uint64_t stops;			/* devices stopped by GET_VRING_BASE */
	uint64_t flushes;		/* blk caches flushed at a stop */
	uint64_t state_saves, state_loads;	/* 42, stopped phase, taken */
	uint64_t save_checks_ok, load_checks_ok, check_failures;	/* 43 */
	uint64_t precopy_rounds;
	uint64_t relay_on, relay_off, relay_fd_swaps;
	uint64_t relay_forwarded, relay_completions, relay_pages_logged;
	/* CLOCK_MONOTONIC ns of the last such event */
	uint64_t t_get_vring_base_ns, t_state_fd_ns, t_check_ns;
};

struct relay;
struct vdpa_mig_src;
struct vdpa_mig_dst;

struct srv {
	/* fixed for the process */
	const char *devname;
	struct vdpa_dev *dev;
	struct vdpa_caps caps;
	struct vdpa_state *desc;	/* description before any start */
	uint64_t backend_acked;
	uint64_t offered;		/* features offered to the front-end */
	uint64_t proto_offered;
	uint32_t nvqs;			/* rings the front-end may use */

	/* per front-end connection */
	int conn;
	int conn_pid;
	uint64_t refused;		/* others refused while it is connected */
	uint64_t features;		/* acked by the front-end */
	bool features_set;
	uint64_t proto;
	bool owner;
	struct srv_region regs[VU_MAX_REGIONS];
	unsigned int nregs;
	struct srv_vq vq[SERVE_MAX_VQS];
	bool started;			/* DRIVER_OK set */
	bool suspended;			/* SUSPEND (or reset) for GET_VRING_BASE */
	bool device_reset;		/* stopped by reset: no SUSPEND */

	/* dirty log */
	uint8_t *log;
	uint64_t log_size;
	struct relay *relay;

	/* SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE */
	struct vdpa_transfer *xfer;
	uint32_t xfer_dir;
	void *save_blob;
	struct vdpa_state *loaded;	/* checked, applied at the next start */
	/* blk: the state at the stop, saved before the cache was flushed */
	struct vdpa_state *stop_state;

	/* pre-copy (PROPOSAL, precopy.c): source and destination halves */
	struct vdpa_mig_src *pc_src;
	struct vdpa_mig_dst *pc_dst;
	bool xfer_precopy;		/* the transfer is a pre-copy round */

	/* figures for the log */
	uint64_t nmsgs;
	struct srv_stats st, st_last;
	const char *stats_path;		/* NULL: no --stats */
	bool stats_written;
	unsigned int stats_failed;
};

/* stats.c: rewrite the --stats file if a counter changed; 0 or -errno */
int srv_stats_flush(struct srv *s);
/* A reply to the front-end, the --stats file brought up to date first. */
int srv_reply(struct srv *s, uint32_t request, const void *payload,
	      uint32_t size, int send_fd);
uint64_t srv_now_ns(void);

/* log.c-like helpers (serve.c) */
void srv_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
extern int srv_log_level;

/* msg.c: framing. 1 a message, 0 end of stream, -errno framing error. */
int srv_recv(int fd, struct srv_msg *m, char *err, size_t errlen);
int srv_send(int fd, uint32_t request, const void *payload, uint32_t size,
	     int send_fd);
void srv_msg_close_fds(struct srv_msg *m);
/*
 * Size and fd count of a request checked against the spec: 0, or -EPROTO
 * with err naming the problem (the connection is then closed).
 */
int srv_check_shape(const struct srv_msg *m, char *err, size_t errlen);

/* mem.c */
int srv_set_mem_table(struct srv *s, struct srv_msg *m, char *err,
		      size_t errlen);
void srv_mem_free(struct srv *s);
/* Front-end VA range -> GPA; false when no one region holds all of it. */
bool srv_va_to_gpa(const struct srv *s, uint64_t va, uint64_t len,
		   uint64_t *ret_gpa);
bool srv_gpa_valid(const struct srv *s, uint64_t gpa, uint64_t len);
void *srv_gpa_host(const struct srv *s, uint64_t gpa, uint64_t len);

/* dev.c: the device side */
int srv_dev_init(struct srv *s, const char *name, char *err, size_t errlen);
int srv_dev_start(struct srv *s, char *err, size_t errlen);
int srv_dev_stop(struct srv *s, char *err, size_t errlen);
void srv_dev_reset(struct srv *s);
void srv_dev_release_kicks(struct srv *s);
int srv_blk_flush(struct srv *s, char *err, size_t errlen);

/* state.c: 42 / 43 */
int srv_state_set_fd(struct srv *s, const struct vu_state_fd *p, int fd,
		     uint64_t *ret_reply, int *ret_fd, char *err,
		     size_t errlen);
int srv_state_check(struct srv *s, char *err, size_t errlen);
void srv_state_free(struct srv *s);

/* precopy.c: pre-copy rounds (PROPOSAL), only when negotiated */
bool srv_precopy_offered(const struct srv *s);
/* GET_PRECOPY_INFO / PRECOPY_END: 0, or -1 close the connection */
int srv_precopy_request(struct srv *s, struct srv_msg *m);
int srv_precopy_set_fd(struct srv *s, const struct vu_state_fd *p, int fd,
		       uint64_t *ret_reply, int *ret_fd, char *err,
		       size_t errlen);
int srv_precopy_check(struct srv *s, char *err, size_t errlen);
/* a round saved whose transfer was not checked: the device forgets it */
void srv_precopy_round_lost(struct srv *s);
void srv_precopy_free(struct srv *s);
/* the source took rounds: its cache goes by state, not by a flush */
bool srv_precopy_active(struct srv *s);
/* dev.c: the destination negotiated before the first round */
int srv_dev_prepare_rounds(struct srv *s, char *err, size_t errlen);

/* logsw.c: LOG_ALL on and off (the relay) */
bool srv_relay_possible(const struct srv *s, char *why, size_t whylen);
int srv_log_switch(struct srv *s, bool on, char *err, size_t errlen);
int srv_set_log_base(struct srv *s, const struct vu_log *l, int fd,
		     char *err, size_t errlen);
void srv_log_free(struct srv *s);
/* GET_VRING_BASE while relaying: back on the guest's rings, suspended. */
int srv_relay_stop_suspended(struct srv *s, char *err, size_t errlen);

/* handlers (serve.c) */
/*
 * Handle one message. Returns 0 (handled, reply sent as needed), or -1:
 * close the connection.
 */
int srv_handle(struct srv *s, struct srv_msg *m);
void srv_disconnect(struct srv *s);

#endif
