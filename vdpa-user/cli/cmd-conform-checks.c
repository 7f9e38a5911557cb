// SPDX-License-Identifier: MIT
/*
 * conform: the scenarios after SUSPEND itself (cmd-conform-suspend.c):
 * vring setup while suspended, reset, latency, the state round trip, the
 * migration to --peer, and the order they all run in. Each starts a fresh
 * driver on DEV, drives real requests through the library's driver-side
 * rings, and reads what the device did in driver memory and in its ioctl
 * answers. A check that cannot run for a missing capability is skipped
 * with the reason.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/vhost.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <vdpa-user/migrate.h>
#include <vdpa-user/state.h>
#include <vdpa-user/uapi-ext.h>

#include "cli.h"
#include "conform.h"
#include "migrate.h"
#include "workload.h"

static const uint8_t class_mac[6] = { 0x02, 0x00, 0x00, 0xc0, 0xff, 0xee };

/* ---- vring.set-while-suspended ------------------------------------------ */

static int check_vring_set(struct cf *cf)
{
	struct cf_check *c = cf_get(cf, "vring.set-while-suspended");
	struct cf_ring r[CF_MAXR];
	struct vdpa_vring_info info;
	unsigned int nr, q;
	int e_base = 0, e_addr = 0, err;
	uint16_t b = 0, b2 = 0;
	char why[512];

	if (!cf_pending(cf, c))
		return 0;
	if (!cf_can_suspend(cf))
		return cf_skip(c, CF_NO_SUSPEND);
	if (cf_setup(cf, 1, why, sizeof(why)))
		return cf_fail(c, "setup: %s", why);
	if (cf_roundtrip(cf, 16, 3000))
		return cf_fail(c, "traffic before SUSPEND did not complete");
	nr = cf_rings(cf, r, CF_MAXR);
	err = vdpa_dev_suspend(cf->d.dev);
	if (err)
		return cf_fail(c, "SUSPEND: %s", cf_errname(err));
	for (q = 0; q < nr; q++) {
		err = cf_get_base(cf, r[q].idx, &b);
		if (err)
			return cf_fail(c, "queue %u: GET_VRING_BASE: %s",
				       r[q].idx, cf_errname(err));
		e_base = vdpa_dev_set_vring_base(cf->d.dev, r[q].idx, b);
		err = vdpa_dev_get_vring(cf->d.dev, r[q].idx, &info);
		e_addr = err ? err :
			 vdpa_dev_set_vring_addr(cf->d.dev, r[q].idx,
						 info.desc, info.avail,
						 info.used);
		err = cf_get_base(cf, r[q].idx, &b2);
		if (e_base || e_addr || err || b2 != b)
			break;
	}
	cf_u64(c, "queues", nr);
	cf_str(c, "set_vring_base", "%s", cf_errname(e_base));
	cf_str(c, "set_vring_addr", "%s", cf_errname(e_addr));
	if (q < nr) {
		if (e_base)
			return cf_fail(c, "queue %u: SET_VRING_BASE %u while "
				       "suspended: %s", r[q].idx, b,
				       cf_errname(e_base));
		if (e_addr)
			return cf_fail(c, "queue %u: SET_VRING_ADDR (the same "
				       "addresses) while suspended: %s",
				       r[q].idx, cf_errname(e_addr));
		return cf_fail(c, "queue %u: base %u set, %u read back (%s)",
			       r[q].idx, b, b2, cf_errname(err));
	}
	if (!cf_can_resume(cf)) {
		cf_str(c, "traffic_after_resume", "not tried: %s", CF_NO_RESUME);
		return cf_pass(c);
	}
	err = vdpa_dev_resume(cf->d.dev);
	if (err)
		return cf_fail(c, "RESUME: %s", cf_errname(err));
	cf_kick_all(cf);
	if (cf_roundtrip(cf, 16, 2000))
		return cf_fail(c, "traffic did not continue after RESUME");
	cf_str(c, "traffic_after_resume", "ok");
	cf_pass(c);
	return 0;
}

/* ---- reset.clean -------------------------------------------------------- */

static int check_reset(struct cf *cf)
{
	struct cf_check *c = cf_get(cf, "reset.clean");
	unsigned int q, nonzero = 0, errors = 0, first = 0;
	uint8_t status = 0xff;
	uint16_t b, bad = 0;
	char why[512];
	int err;

	if (!cf_pending(cf, c))
		return 0;
	if (!cf_can_suspend(cf))
		return cf_skip(c, "the rule is for a reset after SUSPEND; "
			       CF_NO_SUSPEND);
	if (cf_setup(cf, 1, why, sizeof(why)))
		return cf_fail(c, "setup: %s", why);
	if (cf_roundtrip(cf, 16, 3000))
		return cf_fail(c, "traffic before SUSPEND did not complete");
	cf_submit(cf, 16);
	cf_kick(cf);
	err = vdpa_dev_suspend(cf->d.dev);
	if (err)
		return cf_fail(c, "SUSPEND: %s", cf_errname(err));
	vdpa_net_close(cf->d.net);
	vdpa_blk_close(cf->d.blk);
	cf->d.net = NULL;
	cf->d.blk = NULL;
	err = vdpa_dev_reset(cf->d.dev);
	if (err)
		return cf_fail(c, "reset: %s", cf_errname(err));
	err = vdpa_dev_get_status(cf->d.dev, &status);
	for (q = 0; q < cf->d.caps.vq_count && q < CF_MAXR; q++) {
		if (cf_get_base(cf, q, &b)) {
			errors++;
		} else if (b) {
			if (!nonzero++) {
				first = q;
				bad = b;
			}
		}
	}
	cf_u64(c, "status", status);
	cf_u64(c, "queues", q);
	cf_u64(c, "queues_base_not_0", nonzero);
	cf_u64(c, "get_vring_base_errors", errors);
	if (err || status)
		return cf_fail(c, "status after the reset: 0x%02x (%s)", status,
			       cf_errname(err));
	if (nonzero)
		return cf_fail(c, "%u queue(s) kept a base after the reset "
			       "(queue %u: %u)", nonzero, first, bad);
	if (cf_setup(cf, 1, why, sizeof(why)))
		return cf_fail(c, "a new driver after the reset: %s", why);
	if (cf_roundtrip(cf, 32, 2000))
		return cf_fail(c, "a new driver's traffic did not flow after "
			       "the reset (still suspended?)");
	cf_u64(c, "traffic_after_reset", 32);
	cf_pass(c);
	return 0;
}

/* ---- latency.suspend, latency.resume ------------------------------------ */

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, unsigned int n, double p)
{
	unsigned int i;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_dbl);
	i = (unsigned int)ceil(p * n);
	return v[i ? i - 1 : 0];
}

#define L_SAMPLES	25

/* One configuration's samples; -errno when a request failed. */
static int lat_samples(struct cf *cf, unsigned int pairs, double *sus,
		       double *res, unsigned int *ret_n, char *why,
		       size_t len)
{
	bool resume = cf_can_resume(cf);
	unsigned int i, n = resume ? L_SAMPLES : 10, over = 0;
	double t0, t1, t2;
	int err;

	*ret_n = 0;
	for (i = 0; i < n && over < 3 && !cli_interrupted; i++) {
		if ((i == 0 || !resume) && cf_setup(cf, pairs, why, len))
			return -EIO;
		/* requests in flight, as at a real switchover */
		cf_submit(cf, 4);
		cf_kick(cf);
		t0 = cf_now_us();
		err = vdpa_dev_suspend(cf->d.dev);
		t1 = cf_now_us();
		if (err) {
			snprintf(why, len, "SUSPEND: %s", cf_errname(err));
			return err;
		}
		sus[i] = t1 - t0;
		if (resume) {
			err = vdpa_dev_resume(cf->d.dev);
			t2 = cf_now_us();
			if (err) {
				snprintf(why, len, "RESUME: %s", cf_errname(err));
				return err;
			}
			res[i] = t2 - t1;
			cf_reap(cf);
		}
		over += sus[i] > cf->limit_us || (resume && res[i] > cf->limit_us);
		*ret_n = i + 1;
	}
	return 0;
}

static void lat_report(struct cf_check *c, const char *cfg, double *v,
		       unsigned int n, double *worst)
{
	char k[40];
	double p99 = pct(v, n, 0.99);

	snprintf(k, sizeof(k), "%s.p50_us", cfg);
	cf_dbl(c, k, pct(v, n, 0.5));
	snprintf(k, sizeof(k), "%s.p99_us", cfg);
	cf_dbl(c, k, p99);
	snprintf(k, sizeof(k), "%s.samples", cfg);
	cf_u64(c, k, n);
	if (p99 > *worst)
		*worst = p99;
}

static int check_latency(struct cf *cf)
{
	struct cf_check *cs = cf_get(cf, "latency.suspend");
	struct cf_check *cr = cf_get(cf, "latency.resume");
	double sus[L_SAMPLES], res[L_SAMPLES], ws = 0, wr = 0;
	unsigned int pairs[2] = { 1, cf->is_net ? cf->max_pairs : 1 };
	const char *names[2] = { "one", "all" };
	bool ps = cf_pending(cf, cs), pr = cf_pending(cf, cr);
	unsigned int k, n;
	char why[512];

	if (!ps && !pr)
		return 0;
	if (!cf_can_suspend(cf)) {
		cf_skip(cs, CF_NO_SUSPEND);
		cf_skip(cr, CF_NO_SUSPEND);
		return 0;
	}
	if (pr && !cf_can_resume(cf)) {
		cf_skip(cr, CF_NO_RESUME);
		pr = false;
	}
	for (k = 0; k < 2; k++) {
		if (lat_samples(cf, pairs[k], sus, res, &n, why, sizeof(why))) {
			if (ps)
				cf_fail(cs, "%s queue pair(s): %s", names[k], why);
			if (pr)
				cf_fail(cr, "%s queue pair(s): %s", names[k], why);
			return 0;
		}
		if (ps)
			lat_report(cs, names[k], sus, n, &ws);
		if (pr)
			lat_report(cr, names[k], res, n, &wr);
	}
	if (ps) {
		cf_u64(cs, "all.queue_pairs", pairs[1]);
		cf_u64(cs, "limit_us", (uint64_t)cf->limit_us);
		if (ws > cf->limit_us)
			cf_fail(cs, "SUSPEND p99 %.1f ms, above the %.0f ms "
				"limit", ws / 1000, cf->limit_us / 1000);
		else
			cf_pass(cs);
	}
	if (pr) {
		cf_u64(cr, "all.queue_pairs", pairs[1]);
		cf_u64(cr, "limit_us", (uint64_t)cf->limit_us);
		if (wr > cf->limit_us)
			cf_fail(cr, "RESUME p99 %.1f ms, above the %.0f ms "
				"limit", wr / 1000, cf->limit_us / 1000);
		else
			cf_pass(cr);
	}
	return 0;
}

/* ---- state.roundtrip ---------------------------------------------------- */

/* The first difference between two saves of the same device, or NULL. */
static const char *state_diff(const struct cf *cf, const struct vdpa_state *a,
			      const struct vdpa_state *b, bool replayed,
			      char *buf, size_t len)
{
	uint32_t i;
	size_t k;

	if (a->has_device != b->has_device || a->device_len != b->device_len) {
		snprintf(buf, len, "device state of %zu bytes, then %zu",
			 a->device_len, b->device_len);
		return buf;
	}
	for (k = 0; a->has_device && k < a->device_len; k++)
		if (((const uint8_t *)a->device)[k] !=
		    ((const uint8_t *)b->device)[k]) {
			snprintf(buf, len, "device state differs at byte %zu "
				 "of %zu", k, a->device_len);
			return buf;
		}
	if (a->features != b->features || a->status != b->status)
		return "negotiated features or status differ";
	if (a->nqueues != b->nqueues)
		return "a different number of queues";
	for (i = 0; i < a->nqueues; i++) {
		const struct vdpa_state_queue *x = &a->q[i], *y = &b->q[i];

		/* the class-state replay moved the control queue on */
		if (replayed && cf->is_net && x->index >= 2 * cf->pairs)
			continue;
		if (x->base != y->base || x->used_idx != y->used_idx ||
		    x->size != y->size || x->enabled != y->enabled ||
		    x->desc != y->desc || x->avail != y->avail ||
		    x->used != y->used) {
			snprintf(buf, len, "queue %u: base %u used %u, then "
				 "base %u used %u", x->index, x->base,
				 x->used_idx, y->base, y->used_idx);
			return buf;
		}
	}
	if (a->has_net != b->has_net ||
	    (a->has_net && (memcmp(a->net.mac, b->net.mac, 6) ||
			    a->net.queue_pairs != b->net.queue_pairs ||
			    a->net.promisc != b->net.promisc ||
			    a->net.allmulti != b->net.allmulti)))
		return "net class state (MAC, queue pairs, RX mode) differs";
	return NULL;
}

static int check_state(struct cf *cf)
{
	struct cf_check *c = cf_get(cf, "state.roundtrip");
	struct vdpa_state *s1 = NULL, *s2 = NULL;
	int kick[VDPA_STATE_MAX_QUEUES], call[VDPA_STATE_MAX_QUEUES];
	struct vdpa_load_hooks h = {
		.restore_class = mig_driver_restore_class, .opaque = &cf->d,
		.kick_fds = kick, .call_fds = call,
	};
	struct vdpa_vring_info info;
	void *blob = NULL;
	size_t blen = 0;
	const char *d;
	char why[512], err_buf[512];
	double t0, t_save, t_load;
	unsigned int q;
	int err;

	if (!cf_pending(cf, c))
		return 0;
	if (!cf_can_suspend(cf))
		return cf_skip(c, CF_NO_SUSPEND);
	if (cf_setup(cf, 1, why, sizeof(why)))
		return cf_fail(c, "setup: %s", why);
	/* class state a load must bring back */
	if (cf->d.net && vdpa_net_set_mac(cf->d.net, class_mac) < 0)
		cf_str(c, "class_mac", "not set (the device refused it)");
	if (cf_roundtrip(cf, 32, 3000))
		return cf_fail(c, "traffic before SUSPEND did not complete");
	for (q = 0; q < VDPA_STATE_MAX_QUEUES; q++) {
		kick[q] = call[q] = -1;
		if (q < cf->d.caps.vq_count &&
		    vdpa_dev_get_vring(cf->d.dev, q, &info) == 0) {
			kick[q] = info.kick_fd;
			call[q] = info.call_fd;
		}
	}
	err = vdpa_dev_suspend(cf->d.dev);
	if (err)
		return cf_fail(c, "SUSPEND: %s", cf_errname(err));
	t0 = cf_now_us();
	err = vdpa_state_save_device(cf->d.dev, NULL, &s1);
	t_save = cf_now_us() - t0;
	if (err)
		return cf_fail(c, "saving: %s", cf_errname(err));
	err = vdpa_state_encode(s1, &blob, &blen);
	free(blob);
	cf_u64(c, "state_bytes", err ? 0 : blen);
	cf_u64(c, "device_bytes", s1->has_device ? s1->device_len : 0);
	cf_str(c, "device_state", "%s", s1->has_device ? "yes" :
	       "no (VHOST_BACKEND_F_DEVICE_STATE not offered)");
	cf_dbl(c, "save_us", t_save);
	t0 = cf_now_us();
	err = vdpa_state_load_device(cf->d.dev, s1, &h, err_buf,
				     sizeof(err_buf));
	t_load = cf_now_us() - t0;
	cf_dbl(c, "load_us", t_load);
	if (err) {
		vdpa_state_free(s1);
		return cf_fail(c, "loading the saved state back: %s", err_buf);
	}
	err = vdpa_dev_suspend(cf->d.dev);
	if (!err)
		err = vdpa_state_save_device(cf->d.dev, NULL, &s2);
	if (err) {
		vdpa_state_free(s1);
		return cf_fail(c, "saving again: %s", cf_errname(err));
	}
	d = state_diff(cf, s1, s2, !s1->has_device, why, sizeof(why));
	vdpa_state_free(s1);
	vdpa_state_free(s2);
	if (d)
		return cf_fail(c, "save, load, save: %s", d);
	cf_pass(c);
	return 0;
}

/* ---- peer.migrate ------------------------------------------------------- */

static int run_until(struct workload *w, uint64_t target)
{
	double last = cf_now_us();

	while (w->r.completed < target && !cli_interrupted) {
		uint64_t before = w->next + w->r.completed;
		int r = wl_step(w);

		if (r != 0)
			return r < 0 ? r : 0;
		if (w->next + w->r.completed != before)
			last = cf_now_us();
		else if (cf_now_us() - last > 3e6)
			return -ETIMEDOUT;
		else
			wl_wait(w, 1);
	}
	return 0;
}

static int check_peer(struct cf *cf)
{
	struct cf_check *c = cf_get(cf, "peer.migrate");
	uint64_t count = cf->is_net ? 3000 : 600;
	struct cli_dev *dev[2] = { &cf->d, &cf->p };
	struct mig_stats st = { 0 };
	struct wl_result res;
	struct workload w;
	char why[512], err_buf[512] = "";
	unsigned int k;
	int err = 0, mig_err = 0;

	if (!cf->p.dev)
		return cf_skip(c, "no --peer given");
	if (!cf_pending(cf, c))
		return 0;
	if (cf->p.caps.device_id != cf->d.caps.device_id)
		return cf_skip(c, "the peer is device id %u, DEV %u: not the "
			       "same class", cf->p.caps.device_id,
			       cf->d.caps.device_id);
	if (!cf_can_suspend(cf))
		return cf_skip(c, CF_NO_SUSPEND);
	if (!cf->p.caps.suspend)
		return cf_skip(c, "the peer has no SUSPEND (needed for the way "
			       "back)");
	if (!cf->loop)
		return cf_skip(c, CF_NO_LOOP);
	if (cf_setup(cf, 1, why, sizeof(why)))
		return cf_fail(c, "setup: %s", why);
	if (cf->d.net && vdpa_net_set_mac(cf->d.net, class_mac) < 0)
		return cf_fail(c, "setting the MAC through the control queue "
			       "failed");
	if (cf->d.blk && cf_free(cf) < CF_WL_MIN_SLOTS)
		return cf_skip(c, "the blk queue takes %u request(s); the "
			       "verified traffic needs %u", cf_free(cf),
			       CF_WL_MIN_SLOTS);
	err = wl_init(&w, cf->d.net, cf->d.blk, count, 0, 1);
	if (err < 0)
		return cf_fail(c, "setting up the traffic: %s", cf_errname(err));
	for (k = 0; k < 2 && !err; k++) {
		err = run_until(&w, count * (k + 1) / 3);
		if (err)
			break;
		cli_hold_sigint(true);
		err = mig_once(dev[k], dev[!k], cf->mem, VIA_PIPE, &st,
			       err_buf, sizeof(err_buf));
		cli_hold_sigint(false);
		if (err) {
			mig_err = err;
			mig_explain(err_buf, sizeof(err_buf));
			break;
		}
		w.net = dev[!k]->net;
		w.blk = dev[!k]->blk;
		cf_dbl(c, k ? "downtime_back_us" : "downtime_us",
		       st.downtime_us);
		if (!k)
			cf_u64(c, "state_bytes", st.state_bytes);
	}
	if (!err)
		err = run_until(&w, count);
	wl_result(&w, &res);
	wl_free(&w);
	cf_u64(c, "migrations", k);
	cf_u64(c, "requests", res.requests);
	cf_u64(c, "completed", res.completed);
	cf_u64(c, "lost", res.lost);
	cf_u64(c, "duplicated", res.duplicated);
	cf_u64(c, "corrupt", res.corrupt);
	if (mig_err && !st.rolled_back &&
	    !st.times.src.begin_ns[VDPA_MIG_SUSPEND])
		return cf_skip(c, "the migration %s was refused before "
			       "anything stopped: %s", k ? "back" : "there",
			       err_buf);
	if (mig_err)
		return cf_fail(c, "the migration %s failed: %s", k ? "back" :
			       "there", err_buf);
	if (err || cli_result_bad(&res) || res.completed != count)
		return cf_fail(c, "traffic across the migrations: %llu lost, "
			       "%llu duplicated, %llu corrupt, %llu errors of "
			       "%llu%s", (unsigned long long)res.lost,
			       (unsigned long long)res.duplicated,
			       (unsigned long long)res.corrupt,
			       (unsigned long long)res.errors,
			       (unsigned long long)count,
			       err == -ETIMEDOUT ? (k ? " (stalled 3 s after "
			       "the migration there)" : " (stalled 3 s)") : "");
	cf_pass(c);
	return 0;
}

/* ---- all of them -------------------------------------------------------- */

static unsigned int net_max_pairs(struct cf *cf)
{
	uint16_t n = 1;

	if (!(cf->d.caps.features & (1ULL << 22)))	/* VIRTIO_NET_F_MQ */
		return 1;
	if (vdpa_dev_get_config(cf->d.dev, 8, &n, sizeof(n)) < 0 || !n)
		return 1;
	return n > CLI_MAX_QUEUES ? CLI_MAX_QUEUES : n;
}

void cf_run_all(struct cf *cf)
{
	static int (*const run[])(struct cf *) = {
		cf_check_blk_atomic, cf_check_no_loss, cf_check_suspend,
		check_vring_set, check_reset, check_latency, check_state,
		check_peer,
	};
	unsigned int i;

	if (!cf->is_net && !cf->is_blk) {
		for (i = 0; i < cf->nchecks; i++)
			cf_skip(&cf->checks[i], "device id %u: conform drives "
				"net (1) and blk (2) devices",
				cf->d.caps.device_id);
		return;
	}
	if (cf->is_blk && cf->d.caps.vq_max_size < 4) {
		for (i = 0; i < cf->nchecks; i++)
			cf_skip(&cf->checks[i], "rings of at most %u entries: "
				"the blk driver's requests take 3 descriptors "
				"and rings of 4 or more",
				cf->d.caps.vq_max_size);
		return;
	}
	cf->max_pairs = cf->is_net ? net_max_pairs(cf) : 1;
	cf_probe_loopback(cf);
	for (i = 0; i < sizeof(run) / sizeof(run[0]); i++) {
		if (cli_interrupted)
			break;
		run[i](cf);
	}
	for (i = 0; i < cf->nchecks; i++)
		if (cli_interrupted && cf->checks[i].v == CF_PENDING)
			cf_skip(&cf->checks[i], "interrupted (Ctrl-C)");
}
