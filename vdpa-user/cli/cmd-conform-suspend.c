// SPDX-License-Identifier: MIT
/*
 * conform: the checks around SUSPEND itself. blk.inflight-atomic (what a
 * blk device does with writes in flight), resume.no-loss (traffic across
 * SUSPEND/RESUME cycles), and the suspend scenario: requests in flight, a
 * kick while suspended, the driver's memory and call eventfds watched,
 * GET_VRING_BASE and config space read, then RESUME and the pending kick.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_blk.h>

#include "cli.h"
#include "conform.h"
#include "workload.h"

/* ---- blk.inflight-atomic ------------------------------------------------ */

#define B_PRE	32	/* writes kicked just before SUSPEND (at most) */
#define B_SUSP	16	/* writes kicked while suspended (at most) */

/* Batches that fit the queue: pre before SUSPEND, then susp during it. */
static void batches(const struct cf *cf, unsigned int *pre, unsigned int *susp)
{
	unsigned int f = cf_free(cf);

	*pre = (f + 1) / 2 < B_PRE ? (f + 1) / 2 : B_PRE;
	*susp = f - *pre < B_SUSP ? f - *pre : B_SUSP;
}

int cf_check_blk_atomic(struct cf *cf)
{
	struct cf_check *c = cf_get(cf, "blk.inflight-atomic");
	uint8_t done[B_PRE + B_SUSP];
	uint64_t twice = 0, bad_status, bad_completion;
	unsigned int i, n, pre, susp, in_flight, torn = 0, unreported = 0;
	unsigned int lost = 0;
	unsigned int completed = 0, not_started = 0, ok = 0;
	bool flush;
	char why[512];
	double t0, t1;
	int err;

	if (!cf_pending(cf, c))
		return 0;
	if (!cf->is_blk)
		return cf_skip(c, "not a blk device (DEV is %s)",
			       cf->is_net ? "net" : "another class");
	if (!cf_can_suspend(cf))
		return cf_skip(c, CF_NO_SUSPEND);
	if (cf_setup(cf, 1, why, sizeof(why)))
		return cf_fail(c, "setup: %s", why);
	flush = vdpa_dev_features(cf->d.dev) & (1ULL << VIRTIO_BLK_F_FLUSH);
	batches(cf, &pre, &susp);
	n = pre + susp;
	/* generation 1 on every block first: what "not started" leaves */
	err = cf_roundtrip(cf, n, 3000);
	if (err || cf->next_seq != n)
		return cf_fail(c, "writing the first stamps: %s",
			       err ? cf_errname(err) : "queue full");
	cf->next_seq = 0;
	memset(cf->done, 0, sizeof(cf->done));
	cf->gen = 2;
	cf_submit(cf, pre);
	cf_kick(cf);
	in_flight = cf_in_flight(cf);
	t0 = cf_now_us();
	err = vdpa_dev_suspend(cf->d.dev);
	t1 = cf_now_us();
	if (err)
		return cf_fail(c, "SUSPEND: %s", cf_errname(err));
	cf_submit(cf, susp);
	cf_kick(cf);
	cf_kick_all(cf);	/* notified even if the ring says not to */
	cf_sleep_ms(CF_WATCH_MS);
	cf_reap(cf);
	memcpy(done, cf->done, sizeof(done));
	bad_status = cf->bad_status;
	bad_completion = cf->bad_completion;
	for (i = 0; i < n; i++)
		twice += done[i] > 1;
	/* a reset drops what was not started; read what is on the disk */
	if (cf_setup(cf, 1, why, sizeof(why)))
		return cf_fail(c, "setup after the reset: %s", why);
	for (i = 0; i < n; i++) {
		int k = cf_blk_classify(cf, i, 2, 1);

		if (k < 0)
			return cf_fail(c, "reading block %u back: %s", i,
				       cf_errname(k));
		completed += done[i] != 0;
		not_started += !done[i] && k == 1;
		if (k == 0)
			torn++;
		else if (done[i] && k == 1)
			lost++;
		else if (!done[i] && k == 2)
			unreported++;
		else
			ok++;
	}
	cf_u64(c, "in_flight_at_suspend", in_flight);
	cf_u64(c, "kicked_while_suspended", susp);
	cf_dbl(c, "suspend_us", t1 - t0);
	cf_u64(c, "completed", completed);
	cf_u64(c, "not_started", not_started);
	cf_u64(c, "torn", torn);
	cf_u64(c, "done_not_reported", unreported);
	cf_u64(c, "completed_twice", twice);
	cf_u64(c, "bad_completions", bad_completion);
	cf_u64(c, "bad_status", bad_status);
	cf_u64(c, "completed_not_on_disk", lost);
	cf_str(c, "flush", "%s", flush ? "negotiated" : "no");
	if (!in_flight)
		return cf_fail(c, "nothing was in flight at SUSPEND: the check "
			       "would prove nothing");
	if (torn)
		return cf_fail(c, "%u write(s) half done: part new data, part "
			       "old", torn);
	if (unreported)
		return cf_fail(c, "%u write(s) on the disk but never completed "
			       "(done, reported as not started)", unreported);
	if (twice || bad_completion || bad_status)
		return cf_fail(c, "completions twice or for requests not "
			       "outstanding: %llu twice, %llu bad, %llu without "
			       "a status", (unsigned long long)twice,
			       (unsigned long long)bad_completion,
			       (unsigned long long)bad_status);
	if (lost && !flush)
		return cf_fail(c, "%u completed write(s) not on the disk "
			       "(no volatile cache: FLUSH not negotiated)",
			       lost);
	cf_pass(c);
	return 0;
}

/* ---- resume.no-loss ----------------------------------------------------- */

int cf_check_no_loss(struct cf *cf)
{
	struct cf_check *c = cf_get(cf, "resume.no-loss");
	uint64_t count = cf->is_net ? 4000 : 1000, next;
	struct wl_result res;
	struct workload w;
	unsigned int cycles = 0;
	double last, worst = 0;
	char why[512];
	int err = 0;

	if (!cf_pending(cf, c))
		return 0;
	if (!cf_can_suspend(cf))
		return cf_skip(c, CF_NO_SUSPEND);
	if (!cf_can_resume(cf))
		return cf_skip(c, CF_NO_RESUME);
	if (!cf->loop)
		return cf_skip(c, CF_NO_LOOP);
	if (cf_setup(cf, 1, why, sizeof(why)))
		return cf_fail(c, "setup: %s", why);
	if (cf->d.blk && cf_free(cf) < CF_WL_MIN_SLOTS)
		return cf_skip(c, "the blk queue takes %u request(s); the "
			       "verified traffic needs %u", cf_free(cf),
			       CF_WL_MIN_SLOTS);
	err = wl_init(&w, cf->d.net, cf->d.blk, count, 0, 1);
	if (err < 0)
		return cf_fail(c, "setting up the traffic: %s", cf_errname(err));
	next = count / 12;
	last = cf_now_us();
	for (;;) {
		uint64_t before = w.next + w.r.completed;
		int r = wl_step(&w);

		if (r < 0) {
			err = r;
			break;
		}
		if (r == 1 || cli_interrupted)
			break;
		if (w.r.completed >= next && cycles < 10) {
			double t = cf_now_us();

			err = vdpa_dev_suspend(cf->d.dev);
			cf_sleep_ms(1);
			if (!err)
				err = vdpa_dev_resume(cf->d.dev);
			if (err)
				break;
			if (cf_now_us() - t > worst)
				worst = cf_now_us() - t;
			/* a pending kick is resume.pending-kick's business */
			cf_kick_all(cf);
			cycles++;
			next += count / 12;
		}
		if (w.next + w.r.completed != before) {
			last = cf_now_us();
		} else if (cf_now_us() - last > 3e6) {
			err = -ETIMEDOUT;
			break;
		} else {
			wl_wait(&w, 1);
		}
	}
	wl_result(&w, &res);
	wl_free(&w);
	cf_u64(c, "cycles", cycles);
	cf_u64(c, "requests", res.requests);
	cf_u64(c, "completed", res.completed);
	cf_u64(c, "lost", res.lost);
	cf_u64(c, "duplicated", res.duplicated);
	cf_u64(c, "corrupt", res.corrupt);
	cf_u64(c, "errors", res.errors);
	cf_dbl(c, "worst_cycle_us", worst);
	if (err && err != -ETIMEDOUT)
		return cf_fail(c, "after %u cycles: %s", cycles, cf_errname(err));
	if (cli_result_bad(&res) || res.completed != count)
		return cf_fail(c, "%llu lost, %llu duplicated, %llu corrupt, "
			       "%llu errors of %llu requests over %u cycles%s",
			       (unsigned long long)res.lost,
			       (unsigned long long)res.duplicated,
			       (unsigned long long)res.corrupt,
			       (unsigned long long)res.errors,
			       (unsigned long long)res.requests, cycles,
			       err == -ETIMEDOUT ? " (traffic stalled 3 s)" :
			       "");
	if (cycles < 5)
		return cf_fail(c, "only %u SUSPEND/RESUME cycles ran", cycles);
	cf_pass(c);
	return 0;
}

/* ---- suspend.*, config.suspended, resume.pending-kick ------------------- */

static const char *const a_ids[] = {
	"suspend.quiesce-used", "suspend.quiesce-buffers", "suspend.no-call",
	"suspend.base-match", "suspend.base-stable", "config.suspended",
	"resume.pending-kick",
};
#define A_N	(sizeof(a_ids) / sizeof(a_ids[0]))

struct snap {
	uint8_t *copy;
	size_t len;
};

/* Bytes that changed: inside the used rings, and anywhere else. */
static void mem_diff(struct cf *cf, const struct snap *s,
		     const struct cf_ring *r, unsigned int nr,
		     uint64_t *ret_used, uint64_t *ret_other,
		     int64_t *ret_first_other)
{
	const uint8_t *now = vdpa_mem_base(cf->mem);
	uint64_t used = 0, other = 0;
	int64_t first = -1;
	size_t off, i;
	unsigned int q;

	for (off = 0; off < s->len; off += 4096) {
		size_t n = s->len - off < 4096 ? s->len - off : 4096;

		if (!memcmp(now + off, s->copy + off, n))
			continue;
		for (i = off; i < off + n; i++) {
			bool in_used = false;

			if (now[i] == s->copy[i])
				continue;
			for (q = 0; q < nr; q++)
				if (now + i >= r[q].used &&
				    now + i < r[q].used + r[q].used_len)
					in_used = true;
			if (in_used) {
				used++;
			} else {
				other++;
				if (first < 0)
					first = (int64_t)i;
			}
		}
	}
	*ret_used = used;
	*ret_other = other;
	*ret_first_other = first;
}

struct a_run {
	struct cf_ring r[CF_MAXR];
	unsigned int nr;
	/* bases at SUSPEND, after the watch, again; used idx; avail idx */
	uint16_t b0[CF_MAXR], b1[CF_MAXR], b2[CF_MAXR];
	uint16_t u0[CF_MAXR], u1[CF_MAXR], av[CF_MAXR];
	int gerr;
	uint8_t cfg[3][256];
	int cfg_len[3];
	unsigned int in_flight, calls, kicks;
	uint64_t used_changed, other_changed;
	uint8_t *used_copy;	/* the used rings as SUSPEND returned */
	int64_t first_other;
	uint64_t pre, mid, end;
	unsigned int dq;	/* the ring the requests go to (net TX 0) */
	uint16_t used_before;
	double suspend_us;
};

/* The used rings, right after SUSPEND returned: 0 or -ENOMEM. */
static int copy_used(struct a_run *a)
{
	size_t len = 0, off = 0;
	unsigned int q;

	for (q = 0; q < a->nr; q++)
		len += a->r[q].used_len;
	a->used_copy = malloc(len ? len : 1);
	if (!a->used_copy)
		return -ENOMEM;
	for (q = 0; q < a->nr; off += a->r[q].used_len, q++)
		memcpy(a->used_copy + off, a->r[q].used, a->r[q].used_len);
	return 0;
}

/*
 * Used-ring bytes that differ from the copy: a write anywhere since
 * SUSPEND returned, also before the driver memory was copied whole.
 */
static uint64_t used_diff(const struct a_run *a)
{
	uint64_t n = 0;
	size_t off = 0, i;
	unsigned int q;

	for (q = 0; q < a->nr; off += a->r[q].used_len, q++)
		for (i = 0; i < a->r[q].used_len; i++)
			n += a->r[q].used[i] != a->used_copy[off + i];
	return n;
}

static void judge_quiesce(struct cf *cf, struct a_run *a, size_t watched)
{
	struct cf_check *cu = cf_get(cf, "suspend.quiesce-used");
	struct cf_check *cb = cf_get(cf, "suspend.quiesce-buffers");
	struct cf_check *cc = cf_get(cf, "suspend.no-call");
	unsigned int q, moved = 0;

	for (q = 0; q < a->nr; q++)
		moved += a->u1[q] != a->u0[q];
	if (cf_pending(cf, cu)) {
		cf_u64(cu, "in_flight_at_suspend", a->in_flight);
		cf_u64(cu, "kicked_while_suspended", a->end - a->mid);
		cf_u64(cu, "kicks_while_suspended", a->kicks);
		cf_u64(cu, "used_by_return", (uint16_t)(a->u0[a->dq] -
							a->used_before));
		cf_u64(cu, "watch_ms", CF_WATCH_MS);
		cf_u64(cu, "queues", a->nr);
		cf_u64(cu, "used_bytes_changed", a->used_changed);
		cf_u64(cu, "used_idx_moved", moved);
		if (!a->in_flight || !a->kicks)
			cf_fail(cu, "nothing in flight or no kick: the check "
				"would prove nothing");
		else if (a->used_changed || moved)
			cf_fail(cu, "%llu used-ring byte(s) written, %u used "
				"index(es) moved after SUSPEND returned",
				(unsigned long long)a->used_changed, moved);
		else
			cf_pass(cu);
	}
	if (cf_pending(cf, cb)) {
		cf_u64(cb, "in_flight_at_suspend", a->in_flight);
		cf_u64(cb, "kicked_while_suspended", a->end - a->mid);
		cf_u64(cb, "bytes_watched", watched);
		cf_u64(cb, "bytes_changed", a->other_changed);
		if (a->first_other >= 0)
			cf_str(cb, "first_changed", "0x%llx",
			       (unsigned long long)(CLI_MEM_IOVA +
						    (uint64_t)a->first_other));
		if (!a->in_flight || !a->kicks)
			cf_fail(cb, "nothing in flight or no kick: the check "
				"would prove nothing");
		else if (a->other_changed)
			cf_fail(cb, "%llu byte(s) of driver memory written after "
				"SUSPEND returned, the first at IOVA 0x%llx",
				(unsigned long long)a->other_changed,
				(unsigned long long)(CLI_MEM_IOVA +
						     (uint64_t)a->first_other));
		else
			cf_pass(cb);
	}
	if (cf_pending(cf, cc)) {
		cf_u64(cc, "calls", a->calls);
		cf_u64(cc, "kicks_while_suspended", a->kicks);
		cf_u64(cc, "watch_ms", CF_WATCH_MS);
		if (!a->kicks)
			cf_fail(cc, "no kick while suspended: the check would "
				"prove nothing");
		else if (a->calls)
			cf_fail(cc, "%u call(s) signalled after SUSPEND "
				"returned", a->calls);
		else
			cf_pass(cc);
	}
}

static int judge_bases(struct cf *cf, struct a_run *a)
{
	struct cf_check *cm = cf_get(cf, "suspend.base-match");
	struct cf_check *cs = cf_get(cf, "suspend.base-stable");
	struct cf_check *cg = cf_get(cf, "config.suspended");
	unsigned int q, bad_m = 0, bad_s = 0;
	char k[40];
	int i;

	if (cf_pending(cf, cm)) {
		for (q = 0; q < a->nr; q++) {
			snprintf(k, sizeof(k), "q%u.base", a->r[q].idx);
			cf_u64(cm, k, a->b0[q]);
			snprintf(k, sizeof(k), "q%u.used", a->r[q].idx);
			cf_u64(cm, k, a->u1[q]);
			snprintf(k, sizeof(k), "q%u.avail", a->r[q].idx);
			cf_u64(cm, k, a->av[q]);
			if (a->b0[q] != a->u1[q] ||
			    (uint16_t)(a->av[q] - a->b0[q]) > a->r[q].num)
				bad_m++;
		}
		if (a->gerr)
			cf_fail(cm, "GET_VRING_BASE: %s", cf_errname(a->gerr));
		else if (bad_m)
			cf_fail(cm, "%u queue(s) with a base that is not the "
				"used index the driver sees", bad_m);
		else
			cf_pass(cm);
	}
	if (cf_pending(cf, cs)) {
		for (q = 0; q < a->nr; q++) {
			if (a->b1[q] == a->b0[q] && a->b2[q] == a->b0[q])
				continue;
			bad_s++;
			snprintf(k, sizeof(k), "q%u.bases", a->r[q].idx);
			cf_str(cs, k, "%u,%u,%u", a->b0[q], a->b1[q], a->b2[q]);
		}
		cf_u64(cs, "queues", a->nr);
		cf_u64(cs, "reads_per_queue", 3);
		if (a->gerr)
			cf_fail(cs, "GET_VRING_BASE: %s", cf_errname(a->gerr));
		else if (bad_s)
			cf_fail(cs, "%u queue(s) whose base changed while "
				"suspended", bad_s);
		else
			cf_pass(cs);
	}
	if (cf_pending(cf, cg)) {
		int bad = -1;

		cf_u64(cg, "config_size", cf->d.caps.config_size);
		for (i = 0; i < 3; i++)
			if (a->cfg_len[i] < 0)
				return cf_fail(cg, "reading the config space "
					       "(%s SUSPEND): %s", i ? "after" :
					       "before", cf_errname(a->cfg_len[i]));
		for (i = 0; i < a->cfg_len[0] && bad < 0; i++)
			if (a->cfg[1][i] != a->cfg[0][i] ||
			    a->cfg[2][i] != a->cfg[0][i])
				bad = i;
		if (bad >= 0) {
			cf_u64(cg, "changed_offset", (uint64_t)bad);
			return cf_fail(cg, "config byte %d changed while "
				       "suspended (0x%02x, 0x%02x, 0x%02x)", bad,
				       a->cfg[0][bad], a->cfg[1][bad],
				       a->cfg[2][bad]);
		}
		cf_pass(cg);
	}
	return 0;
}

static int judge_pending_kick(struct cf *cf, struct a_run *a)
{
	struct cf_check *c = cf_get(cf, "resume.pending-kick");
	double t0, t1;
	uint64_t served;
	int err;

	if (!cf_pending(cf, c))
		return 0;
	if (!cf_can_resume(cf))
		return cf_skip(c, CF_NO_RESUME);
	if (a->end == a->mid)
		return cf_skip(c, "the queue takes only %llu request(s), all "
			       "in flight at SUSPEND: none left to kick while "
			       "suspended", (unsigned long long)(a->mid - a->pre));
	t0 = cf_now_us();
	err = vdpa_dev_resume(cf->d.dev);
	if (err)
		return cf_fail(c, "RESUME: %s", cf_errname(err));
	/* no kick from here on: only the one sent while suspended */
	err = cf_wait_done(cf, a->mid, a->end, 1000);
	t1 = cf_now_us();
	served = cf_done_count(cf, a->mid, a->end);
	cf_u64(c, "kicked_while_suspended", a->end - a->mid);
	cf_u64(c, "served_after_resume", served);
	cf_dbl(c, "served_in_us", t1 - t0);
	if (served != a->end - a->mid)
		return cf_fail(c, "%llu of %llu requests kicked while suspended "
			       "served within 1 s of RESUME%s",
			       (unsigned long long)served,
			       (unsigned long long)(a->end - a->mid),
			       err == -ETIMEDOUT ? "" : "");
	cf_pass(c);
	return 0;
}

int cf_check_suspend(struct cf *cf)
{
	struct a_run *a = calloc(1, sizeof(*a));
	struct snap s = { 0 };
	unsigned int q, i, pre, susp;
	char why[512];
	double t0;
	int err;

	if (!a)
		return cf_fail_all(cf, a_ids, A_N, "out of memory");
	if (!cf_can_suspend(cf)) {
		cf_skip_all(cf, a_ids, A_N, CF_NO_SUSPEND);
		goto out;
	}
	if (cf_setup(cf, 1, why, sizeof(why))) {
		char m[600];

		snprintf(m, sizeof(m), "setup: %s", why);
		cf_fail_all(cf, a_ids, A_N, m);
		goto out;
	}
	err = cf_roundtrip(cf, 32, 3000);
	if (err) {
		cf_fail_all(cf, a_ids, A_N, "traffic before SUSPEND did not "
			 "complete");
		goto out;
	}
	a->cfg_len[0] = cf_read_config(cf, a->cfg[0], sizeof(a->cfg[0]));
	a->nr = cf_rings(cf, a->r, CF_MAXR);
	batches(cf, &pre, &susp);
	a->pre = cf->next_seq;
	cf_submit(cf, pre);
	cf_kick(cf);
	a->in_flight = cf_in_flight(cf);
	for (q = 0; q < a->nr; q++)
		if (a->r[q].idx == (cf->is_net ? 1u : 0u))
			a->dq = q;
	a->used_before = a->nr ? *a->r[a->dq].used_idx : 0;
	t0 = cf_now_us();
	err = vdpa_dev_suspend(cf->d.dev);
	a->suspend_us = cf_now_us() - t0;
	if (err) {
		snprintf(why, sizeof(why), "SUSPEND: %s", cf_errname(err));
		cf_fail_all(cf, a_ids, A_N, why);
		goto out;
	}
	for (q = 0; q < a->nr; q++)
		a->u0[q] = *a->r[q].used_idx;
	if (copy_used(a)) {
		cf_fail_all(cf, a_ids, A_N, "out of memory");
		goto out;
	}
	cf_drain_calls(a->r, a->nr, 0);	/* before it returned: allowed */
	a->cfg_len[1] = cf_read_config(cf, a->cfg[1], sizeof(a->cfg[1]));
	for (q = 0; q < a->nr && !a->gerr; q++)
		a->gerr = cf_get_base(cf, a->r[q].idx, &a->b0[q]);
	/* a kick while suspended: nothing may happen until RESUME */
	a->mid = cf->next_seq;
	cf_submit(cf, susp);
	cf_kick(cf);
	a->end = cf->next_seq;
	/* what the driver wrote is in; from here on only the device writes */
	s.len = vdpa_mem_used(cf->mem);
	s.copy = malloc(s.len ? s.len : 1);
	if (!s.copy) {
		cf_fail_all(cf, a_ids, A_N, "out of memory");
		goto out;
	}
	memcpy(s.copy, vdpa_mem_base(cf->mem), s.len);
	/*
	 * Notified even if the ring says not to (with EVENT_IDX a device
	 * that stopped before taking the last batch has not asked for one).
	 */
	a->kicks = cf_kick_all(cf);
	t0 = cf_now_us();
	while (cf_now_us() - t0 < CF_WATCH_MS * 1000.0)
		a->calls += cf_drain_calls(a->r, a->nr, 5);
	a->cfg_len[2] = cf_read_config(cf, a->cfg[2], sizeof(a->cfg[2]));
	for (q = 0; q < a->nr && !a->gerr; q++)
		a->gerr = cf_get_base(cf, a->r[q].idx, &a->b1[q]);
	for (q = 0; q < a->nr && !a->gerr; q++)
		a->gerr = cf_get_base(cf, a->r[q].idx, &a->b2[q]);
	mem_diff(cf, &s, a->r, a->nr, &a->used_changed, &a->other_changed,
		 &a->first_other);
	if (used_diff(a) > a->used_changed)
		a->used_changed = used_diff(a);
	for (q = 0; q < a->nr; q++) {
		a->u1[q] = *a->r[q].used_idx;
		a->av[q] = *a->r[q].avail_idx;
	}
	judge_quiesce(cf, a, s.len);
	judge_bases(cf, a);
	judge_pending_kick(cf, a);
	for (i = 0; i < A_N; i++) {
		struct cf_check *c = cf_get(cf, a_ids[i]);

		if (!strncmp(a_ids[i], "suspend.", 8))
			cf_dbl(c, "suspend_us", a->suspend_us);
	}
out:
	free(s.copy);
	free(a->used_copy);
	free(a);
	return 0;
}
