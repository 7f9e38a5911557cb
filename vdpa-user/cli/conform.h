/* SPDX-License-Identifier: MIT */
/*
 * vdpa-user conform: the migration conformance suite (docs/conformance.md).
 * cmd-conform.c holds the check table, the verdicts and the TAP / JSON
 * report; cmd-conform-io.c the driver-side plumbing (setup, requests,
 * driver-memory views); cmd-conform-checks.c the scenarios that measure.
 */
#ifndef VDPA_CLI_CONFORM_H
#define VDPA_CLI_CONFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devopen.h"

enum cf_verdict { CF_PENDING, CF_PASS, CF_FAIL, CF_SKIP };

#define CF_MAX_MEAS	40
#define CF_MAX_NEEDS	8

struct cf_meas {
	char key[40];
	enum { CF_M_U64, CF_M_I64, CF_M_DBL, CF_M_STR } type;
	uint64_t u;
	int64_t i;
	double d;
	char s[96];
};

/* One check: its definition (static) and its outcome. */
struct cf_check {
	const char *id;		/* stable: docs/conformance.md */
	const char *what;	/* one line */
	const char *expects;
	const char *source;	/* where the rule comes from */
	const char *needs[CF_MAX_NEEDS];	/* checks it builds on */
	bool needs_all;		/* judged only when no other check failed */
	enum cf_verdict v;
	char reason[320];
	struct cf_meas m[CF_MAX_MEAS];
	unsigned int nm;
};

/* Sequence numbers a scenario can track. */
#define CF_MAX_SEQ	8192u

struct cf {
	const char *name, *peer_name;
	struct cli_dev d, p;	/* DEV and --peer (p.dev NULL without) */
	struct vdpa_mem *mem;
	bool is_net, is_blk;
	/*
	 * net: TX comes back on RX (vdpa_sim; a NIC port looped to itself):
	 * a request is done when its frame comes back. Without it a request
	 * is done when the device completes it on TX (in order).
	 */
	bool loop;
	uint64_t tx_seq;	/* !loop: the request the next TX completion ends */
	uint64_t tx_done;	/* net: TX completions reaped */
	unsigned int pairs;	/* queue pairs of the running driver */
	unsigned int max_pairs;	/* net: what DEV offers (CLI_MAX_QUEUES cap) */
	/* requests of the running scenario, by sequence number */
	uint64_t next_seq;
	uint8_t done[CF_MAX_SEQ];	/* times completed */
	uint64_t corrupt, bad_status, bad_completion;
	uint64_t blk_base;	/* first sector the blk requests use */
	uint32_t gen;		/* blk: stamp generation of new writes */
	struct cf_check *checks;
	unsigned int nchecks;
	double limit_us;	/* latency.*: p99 limit */
};

/* Rings a driver can have (net: 16 pairs and the control queue). */
#define CF_MAXR		(CLI_MAX_QUEUES * 2 + 1)
#define CF_WATCH_MS	80	/* how long a suspended device is watched */
#define CF_LIMIT_MS	100	/* latency.*: default p99 limit (--latency-limit) */
#define CF_NO_SUSPEND	"no SUSPEND: VHOST_BACKEND_F_SUSPEND (bit 4) not " \
			"offered"
#define CF_NO_RESUME	"no RESUME: VHOST_BACKEND_F_RESUME (bit 5) not " \
			"offered (Linux 6.1 has none)"
/* cli/workload.c's blk traffic (write, then read back) stalls on 1 slot */
#define CF_WL_MIN_SLOTS	2
#define CF_NO_LOOP	"net TX does not come back on RX (vdpa_sim loops it; " \
			"loop a NIC's port to itself): the verified traffic " \
			"this check runs counts frames that come back"

/* ---- cmd-conform.c: verdicts and measurements -------------------------- */

struct cf_check *cf_get(struct cf *cf, const char *id);
/*
 * The first verdict stands: later ones are ignored. They return 0, so a
 * check can end with "return cf_fail(c, ...);".
 */
int cf_pass(struct cf_check *c);
int cf_fail(struct cf_check *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int cf_skip(struct cf_check *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * Still to be judged? Skips c (naming the check) when a check it needs
 * failed or was skipped for a reason that makes c meaningless.
 */
bool cf_pending(struct cf *cf, struct cf_check *c);
void cf_u64(struct cf_check *c, const char *key, uint64_t v);
void cf_i64(struct cf_check *c, const char *key, int64_t v);
void cf_dbl(struct cf_check *c, const char *key, double v);
void cf_str(struct cf_check *c, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Every check in ids still to judge gets the same verdict. */
int cf_fail_all(struct cf *cf, const char *const *ids, unsigned int n,
		const char *why);
int cf_skip_all(struct cf *cf, const char *const *ids, unsigned int n,
		const char *why);
/* "0" or strerror(-err). */
const char *cf_errname(int err);

/* ---- cmd-conform-io.c: the driver side --------------------------------- */

/* "VHOST_BACKEND_F_RESUME not offered" ... */
bool cf_can_suspend(const struct cf *cf);
bool cf_can_resume(const struct cf *cf);
/*
 * A fresh driver on DEV with pairs queue pairs (net) after a reset, the
 * request tracking emptied. 0 or -errno with why.
 */
int cf_setup(struct cf *cf, unsigned int pairs, char *why, size_t len);
/* Driver gone, DEV reset (it stays open). */
void cf_teardown(struct cf *cf);
/*
 * Requests: net, a frame on pair 0 looped back by the device (done when
 * it comes back intact on RX); blk, a stamped 4 KiB write of block seq
 * (done when it completes with VIRTIO_BLK_S_OK). Queued, not kicked.
 * Returns how many were queued, or -errno.
 */
int cf_submit(struct cf *cf, unsigned int n);
int cf_kick(struct cf *cf);
/* net: does TX come back on RX? Sets cf->loop (a fresh driver). */
void cf_probe_loopback(struct cf *cf);
/* Reap what completed: 0, or -errno from the driver. */
int cf_reap(struct cf *cf);
/* Requests 0..next_seq-1 completed at least once. */
uint64_t cf_done_count(const struct cf *cf, uint64_t from, uint64_t to);
/* Submit n, kick, reap until all done or timeout_ms: 0, -ETIMEDOUT. */
int cf_roundtrip(struct cf *cf, unsigned int n, int timeout_ms);
/* Reap until [from, to) are done or timeout_ms: 0, -ETIMEDOUT. */
int cf_wait_done(struct cf *cf, uint64_t from, uint64_t to, int timeout_ms);
/* Requests that can be queued now (net: TX pair 0, blk: free slots). */
unsigned int cf_free(const struct cf *cf);
/* Chains the driver has outstanding on its data queues. */
unsigned int cf_in_flight(const struct cf *cf);
/*
 * Kick every queue of the driver (eventfd write, as a guest would), even
 * where the ring says the device does not want one: how many.
 */
unsigned int cf_kick_all(struct cf *cf);

/* Driver memory views of queue idx (NULL if it is not set up). */
struct cf_ring {
	uint32_t idx;
	uint16_t num;
	volatile uint16_t *used_idx, *avail_idx;
	uint8_t *used;		/* used ring start */
	size_t used_len;	/* flags, idx, ring, avail_event */
	int call_fd;
};
/* The queues the driver set up and enabled, at most max. */
unsigned int cf_rings(struct cf *cf, struct cf_ring *r, unsigned int max);
/* The whole config space into buf (len >= config size): size or -errno. */
int cf_read_config(struct cf *cf, uint8_t *buf, size_t len);
/* Calls pending on the rings' call eventfds (read, so counted once). */
unsigned int cf_drain_calls(const struct cf_ring *r, unsigned int n,
			    int timeout_ms);
/*
 * blk: what block seq holds now: 2 all of stamp generation gen, 1 all of
 * generation old, 0 anything else (torn); -errno when it cannot be read.
 */
int cf_blk_classify(struct cf *cf, uint64_t seq, uint32_t gen, uint32_t old);
double cf_now_us(void);
void cf_sleep_ms(unsigned int ms);

/* GET_VRING_BASE of queue idx. */
int cf_get_base(struct cf *cf, uint32_t idx, uint16_t *ret);

/* ---- cmd-conform-suspend.c, cmd-conform-checks.c: the scenarios --------- */

/* Each judges its checks; 0. */
int cf_check_blk_atomic(struct cf *cf);
int cf_check_no_loss(struct cf *cf);
int cf_check_suspend(struct cf *cf);
/* Every check, in the order of the table. */
void cf_run_all(struct cf *cf);

#endif
