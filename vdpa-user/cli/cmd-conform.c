// SPDX-License-Identifier: MIT
/*
 * conform DEV [--peer DEV2]: the migration conformance suite. This file is
 * the table of checks (ids are stable, docs/conformance.md), the verdicts
 * and the report: TAP, or one JSON document with -j. The measuring is in
 * cmd-conform-checks.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_ids.h>
#include <vdpa-user/uapi-ext.h>

#include "cli.h"
#include "conform.h"
#include "devopen.h"

#define SRC_SUSPEND	"include/uapi/linux/vhost.h (VHOST_VDPA_SUSPEND: " \
			"\"does not process virtqueue requests anymore\"); " \
			"drivers/vdpa/vdpa_sim/vdpa_sim.c vdpasim_suspend(); " \
			"vhost-user spec, \"Suspended device state\" (no " \
			"guest memory writes, no notifications)"

static const struct cf_check table[] = {
	{ .id = "blk.inflight-atomic",
	  .what = "blk requests in flight at SUSPEND are done whole or not "
		  "at all, and completed once",
	  .expects = "after SUSPEND returns, each write it was kicked for has "
		     "either completed with all its data on the disk or not "
		     "completed with none of it there; no completion twice",
	  .source = "include/uapi/linux/vhost.h VHOST_VDPA_SUSPEND; "
		    "virtio spec 1.2 2.7.14 (a used element returns a buffer "
		    "once); vhost-user spec \"Suspended device state\"; "
		    "vdpa_sim_blk.c (requests run whole under the lock)" },
	{ .id = "resume.no-loss",
	  .what = "traffic across SUSPEND/RESUME cycles: nothing lost, "
		  "repeated or corrupted",
	  .expects = "every request completes exactly once and intact "
		     "through at least 5 SUSPEND+RESUME cycles",
	  .source = "include/uapi/linux/vhost.h VHOST_VDPA_RESUME (Linux "
		    "6.4+); drivers/vhost/vdpa.c vhost_vdpa_resume()",
	  .needs = { "blk.inflight-atomic" } },
	{ .id = "suspend.quiesce-used",
	  .what = "no used-ring write after SUSPEND returned",
	  .expects = "with requests in flight and a kick sent while "
		     "suspended, the used rings stay byte for byte the same "
		     "for the watch period",
	  .source = SRC_SUSPEND,
	  .needs = { "blk.inflight-atomic" } },
	{ .id = "suspend.quiesce-buffers",
	  .what = "no buffer write after SUSPEND returned",
	  .expects = "driver memory outside the used rings (buffers the "
		     "device may write) stays the same for the watch period",
	  .source = SRC_SUSPEND,
	  .needs = { "blk.inflight-atomic" } },
	{ .id = "suspend.no-call",
	  .what = "no call (interrupt) after SUSPEND returned",
	  .expects = "no call eventfd is signalled during the watch period",
	  .source = SRC_SUSPEND,
	  .needs = { "blk.inflight-atomic" } },
	{ .id = "suspend.base-match",
	  .what = "GET_VRING_BASE after SUSPEND is what the driver sees",
	  .expects = "per queue, the base equals the used index in driver "
		     "memory (everything taken was completed) and is not past "
		     "the avail index",
	  .source = "include/uapi/linux/vhost.h VHOST_VDPA_SUSPEND (\"the "
		    "virtqueue vring base\" preserved); vdpa_sim 6.12 "
		    "vdpasim_queue_ready() (used idx = avail idx at the "
		    "destination); QEMU vhost_vdpa_get_vring_base()",
	  .needs = { "blk.inflight-atomic" } },
	{ .id = "suspend.base-stable",
	  .what = "GET_VRING_BASE stays the same while suspended",
	  .expects = "three reads per queue across the watch period agree",
	  .source = "include/uapi/linux/vhost.h VHOST_VDPA_SUSPEND",
	  .needs = { "blk.inflight-atomic" } },
	{ .id = "config.suspended",
	  .what = "config space readable and unchanged while suspended",
	  .expects = "the whole config space reads the same before SUSPEND, "
		     "right after it and after the watch period",
	  .source = "include/uapi/linux/vhost.h VHOST_VDPA_SUSPEND (\"must "
		    "not change its configuration after that point\")",
	  .needs = { "blk.inflight-atomic" } },
	{ .id = "resume.pending-kick",
	  .what = "a kick sent while suspended is served after RESUME",
	  .expects = "the requests kicked while suspended complete after "
		     "RESUME without another kick",
	  .source = "drivers/vdpa/vdpa_sim/vdpa_sim.c (6.12) vdpasim_resume() "
		    "replays pending_kick; virtio spec 1.2 2.7.13 (a "
		    "notification is not repeated by the driver)",
	  .needs = { "blk.inflight-atomic", "resume.no-loss" } },
	{ .id = "vring.set-while-suspended",
	  .what = "SET_VRING_BASE / SET_VRING_ADDR accepted while suspended",
	  .expects = "both return 0 for every queue, the base reads back, and "
		     "traffic continues after RESUME",
	  .source = "drivers/vhost/vdpa.c (6.12) vhost_vdpa_vring_ioctl(): "
		    "EINVAL while DRIVER_OK unless suspended; 6.1: no check",
	  .needs = { "blk.inflight-atomic", "suspend.base-match",
		     "suspend.base-stable", "resume.no-loss" } },
	{ .id = "reset.clean",
	  .what = "reset after SUSPEND leaves a clean device",
	  .expects = "status reads 0, every queue's base is 0, and a new "
		     "driver's traffic flows without RESUME",
	  .source = "virtio spec 1.2 2.4 (device reset); drivers/vhost/vdpa.c "
		    "(6.12) reset clears the suspended flag; vdpa_sim.c "
		    "vdpasim_do_reset()" },
	{ .id = "latency.suspend",
	  .what = "SUSPEND latency, 1 queue pair and all queue pairs",
	  .expects = "p99 at most 100 ms (a third of QEMU's default 300 ms "
		     "downtime limit); p50 and p99 reported",
	  .source = "QEMU migration parameter downtime-limit (default 300 ms); "
		    "docs/conformance.md" },
	{ .id = "latency.resume",
	  .what = "RESUME latency, 1 queue pair and all queue pairs",
	  .expects = "p99 at most 100 ms (a rollback is downtime too)",
	  .source = "QEMU migration parameter downtime-limit (default 300 ms); "
		    "docs/conformance.md" },
	{ .id = "state.roundtrip",
	  .what = "device state: size, and save -> load -> save round trip",
	  .expects = "the state saved after loading a saved state into the "
		     "reset device is the same (device state byte for byte, "
		     "features, queues, class state)",
	  .source = "docs/state-format.md; docs/uapi-proposal.md "
		    "(VHOST_BACKEND_F_DEVICE_STATE); vhost-user spec "
		    "SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE",
	  .needs = { "blk.inflight-atomic", "suspend.base-match",
		     "suspend.base-stable", "config.suspended" } },
	{ .id = "peer.migrate",
	  .what = "live migration to --peer and back under traffic",
	  .expects = "the library's vdpa_migrate() to the peer and back "
		     "succeeds and the traffic completes with nothing lost, "
		     "repeated or corrupted",
	  .source = "include/vdpa-user/migrate.h; docs/migration.md",
	  .needs_all = true },
};

#define NCHECKS (sizeof(table) / sizeof(table[0]))

struct cf_check *cf_get(struct cf *cf, const char *id)
{
	unsigned int i;

	for (i = 0; i < cf->nchecks; i++)
		if (!strcmp(cf->checks[i].id, id))
			return &cf->checks[i];
	abort();	/* a check id not in the table: a bug here */
}

int cf_pass(struct cf_check *c)
{
	if (c->v == CF_PENDING)
		c->v = CF_PASS;
	return 0;
}

static void verdict(struct cf_check *c, enum cf_verdict v, const char *fmt,
		    va_list ap) __attribute__((format(printf, 3, 0)));
static void verdict(struct cf_check *c, enum cf_verdict v, const char *fmt,
		    va_list ap)
{
	if (c->v != CF_PENDING)
		return;
	c->v = v;
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
}

int cf_fail(struct cf_check *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verdict(c, CF_FAIL, fmt, ap);
	va_end(ap);
	return 0;
}

int cf_skip(struct cf_check *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verdict(c, CF_SKIP, fmt, ap);
	va_end(ap);
	return 0;
}

bool cf_pending(struct cf *cf, struct cf_check *c)
{
	unsigned int i;

	if (c->v != CF_PENDING)
		return false;
	for (i = 0; i < CF_MAX_NEEDS && c->needs[i]; i++) {
		struct cf_check *n = cf_get(cf, c->needs[i]);

		if (n->v == CF_FAIL) {
			cf_skip(c, "needs %s, which failed", n->id);
			return false;
		}
	}
	if (c->needs_all) {
		for (i = 0; i < cf->nchecks; i++)
			if (cf->checks[i].v == CF_FAIL) {
				cf_skip(c, "needs every other check; %s "
					"failed", cf->checks[i].id);
				return false;
			}
	}
	return true;
}

static struct cf_meas *meas(struct cf_check *c, const char *key)
{
	struct cf_meas *m;

	if (c->nm == CF_MAX_MEAS)
		return NULL;
	m = &c->m[c->nm++];
	memset(m, 0, sizeof(*m));
	snprintf(m->key, sizeof(m->key), "%s", key);
	return m;
}

void cf_u64(struct cf_check *c, const char *key, uint64_t v)
{
	struct cf_meas *m = meas(c, key);

	if (m) {
		m->type = CF_M_U64;
		m->u = v;
	}
}

void cf_i64(struct cf_check *c, const char *key, int64_t v)
{
	struct cf_meas *m = meas(c, key);

	if (m) {
		m->type = CF_M_I64;
		m->i = v;
	}
}

void cf_dbl(struct cf_check *c, const char *key, double v)
{
	struct cf_meas *m = meas(c, key);

	if (m) {
		m->type = CF_M_DBL;
		m->d = v;
	}
}

void cf_str(struct cf_check *c, const char *key, const char *fmt, ...)
{
	struct cf_meas *m = meas(c, key);
	va_list ap;

	if (!m)
		return;
	m->type = CF_M_STR;
	va_start(ap, fmt);
	vsnprintf(m->s, sizeof(m->s), fmt, ap);
	va_end(ap);
}

const char *cf_errname(int err)
{
	return err ? strerror(-err) : "0";
}

int cf_fail_all(struct cf *cf, const char *const *ids, unsigned int n,
		const char *why)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct cf_check *c = cf_get(cf, ids[i]);

		if (cf_pending(cf, c))
			cf_fail(c, "%s", why);
	}
	return 0;
}

int cf_skip_all(struct cf *cf, const char *const *ids, unsigned int n,
		const char *why)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct cf_check *c = cf_get(cf, ids[i]);

		if (cf_pending(cf, c))
			cf_skip(c, "%s", why);
	}
	return 0;
}

/* ---- report ------------------------------------------------------------- */

static const char *const vnames[] = {
	[CF_PENDING] = "skip", [CF_PASS] = "pass", [CF_FAIL] = "fail",
	[CF_SKIP] = "skip",
};

static void print_meas_text(const struct cf_check *c)
{
	unsigned int i;
	int col = 0;

	if (!c->nm)
		return;
	col = printf("#   measured:");
	for (i = 0; i < c->nm; i++) {
		const struct cf_meas *m = &c->m[i];
		char v[128];
		int w;

		switch (m->type) {
		case CF_M_U64:
			snprintf(v, sizeof(v), "%llu", (unsigned long long)m->u);
			break;
		case CF_M_I64:
			snprintf(v, sizeof(v), "%lld", (long long)m->i);
			break;
		case CF_M_DBL:
			snprintf(v, sizeof(v), "%.1f", m->d);
			break;
		default:
			snprintf(v, sizeof(v), "%s", m->s);
			break;
		}
		w = (int)(strlen(m->key) + strlen(v) + 2);
		if (col + w > 79)
			col = printf("\n#            ");
		col += printf(" %s=%s", m->key, v);
	}
	printf("\n");
}

static void report_tap(const struct cf *cf, const unsigned int *count)
{
	unsigned int i;

	printf("TAP version 13\n1..%u\n", cf->nchecks);
	if (cf->is_net)
		printf("# net: TX %s: a request is done when %s\n", cf->loop ?
		       "comes back on RX" : "does not come back on RX",
		       cf->loop ? "its frame comes back intact" :
		       "the device completes it on TX");
	for (i = 0; i < cf->nchecks; i++) {
		const struct cf_check *c = &cf->checks[i];

		printf("%s %u - %s: %s", c->v == CF_FAIL ? "not ok" : "ok",
		       i + 1, c->id, c->what);
		if (c->v == CF_SKIP || c->v == CF_PENDING)
			printf(" # SKIP %s", c->reason[0] ? c->reason :
			       "not run");
		printf("\n#   expects: %s\n#   source: %s\n", c->expects,
		       c->source);
		if (c->v == CF_FAIL)
			printf("#   failed: %s\n", c->reason);
		print_meas_text(c);
	}
	printf("# conform %s%s%s: %u passed, %u failed, %u skipped\n",
	       cf->name, cf->peer_name ? " --peer " : "",
	       cf->peer_name ? cf->peer_name : "", count[CF_PASS],
	       count[CF_FAIL], count[CF_SKIP]);
}

static void report_json(const struct cf *cf, const unsigned int *count)
{
	const struct vdpa_caps *k = &cf->d.caps;
	struct json j;
	unsigned int i, n;

	json_init(&j, stdout, cli.pretty);
	json_obj_open(&j, NULL);
	json_str(&j, "device", cf->name);
	if (cf->peer_name)
		json_str(&j, "peer", cf->peer_name);
	else
		json_null(&j, "peer");
	json_str(&j, "class", cf->is_net ? "net" : cf->is_blk ? "blk" :
		 "other");
	json_u64(&j, "device_id", k->device_id);
	json_bool(&j, "kernel", vdpa_dev_is_kernel(cf->d.dev));
	json_hex(&j, "backend_features", k->backend_features);
	json_bool(&j, "suspend", k->suspend);
	json_bool(&j, "resume", k->resume);
	json_bool(&j, "device_state", k->device_state);
	if (cf->is_net)
		json_bool(&j, "loopback", cf->loop);
	else
		json_null(&j, "loopback");
	json_str(&j, "result", count[CF_FAIL] ? "fail" : "pass");
	json_obj_open(&j, "summary");
	json_u64(&j, "pass", count[CF_PASS]);
	json_u64(&j, "fail", count[CF_FAIL]);
	json_u64(&j, "skip", count[CF_SKIP]);
	json_obj_close(&j);
	json_arr_open(&j, "checks");
	for (i = 0; i < cf->nchecks; i++) {
		const struct cf_check *c = &cf->checks[i];

		json_obj_open(&j, NULL);
		json_str(&j, "id", c->id);
		json_str(&j, "what", c->what);
		json_str(&j, "expects", c->expects);
		json_str(&j, "source", c->source);
		json_str(&j, "result", vnames[c->v]);
		if (c->v == CF_PASS)
			json_null(&j, "reason");
		else
			json_str(&j, "reason", c->reason[0] ? c->reason :
				 "not run");
		json_arr_open(&j, "needs");
		for (n = 0; n < CF_MAX_NEEDS && c->needs[n]; n++)
			json_str(&j, NULL, c->needs[n]);
		json_arr_close(&j);
		json_obj_open(&j, "measured");
		for (n = 0; n < c->nm; n++) {
			const struct cf_meas *m = &c->m[n];

			if (m->type == CF_M_U64)
				json_u64(&j, m->key, m->u);
			else if (m->type == CF_M_I64)
				json_i64(&j, m->key, m->i);
			else if (m->type == CF_M_DBL)
				json_dbl(&j, m->key, m->d);
			else
				json_str(&j, m->key, m->s);
		}
		json_obj_close(&j);
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_obj_close(&j);
	json_end(&j);
}

/* ---- the command -------------------------------------------------------- */

#define CF_USAGE "usage: vdpa-user conform DEV [--peer DEV2] [--latency-limit MS]"

static int open_dev(const char *name, const char *what, struct cli_dev *d)
{
	char msg[1024];
	int err;

	memset(d, 0, sizeof(*d));
	err = cli_dev_open_msg(name, &d->dev, msg, sizeof(msg));
	if (err < 0) {
		cli_fail("conform: %s%s", what, msg);
		return 2;
	}
	cli_lib_clear();
	err = vdpa_dev_get_caps(d->dev, &d->caps);
	if (err < 0) {
		cli_fail("conform: %s%s: reading its capabilities: %s", what,
			 name, cli_lib_why(err, name));
		vdpa_dev_close(d->dev);
		d->dev = NULL;
		return 2;
	}
	return 0;
}

static int parse_args(struct cf *cf, int argc, char **argv)
{
	int i;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--peer")) {
			if (i + 1 >= argc || !argv[i + 1][0]) {
				cli_fail("conform: --peer needs a device "
					 "(DEV2)");
				return 2;
			}
			if (cf->peer_name) {
				cli_fail("conform: --peer given twice");
				return 2;
			}
			cf->peer_name = argv[++i];
		} else if (!strcmp(a, "--latency-limit")) {
			uint64_t ms;

			if (i + 1 >= argc ||
			    cli_parse_u64(argv[i + 1], 60000, &ms) || !ms) {
				cli_fail("conform: --latency-limit needs "
					 "milliseconds, 1..60000");
				return 2;
			}
			cf->limit_us = (double)ms * 1000;
			i++;
		} else if (a[0] == '-' || cf->name) {
			cli_fail("conform: unexpected argument '%s' (%s)", a,
				 CF_USAGE);
			return 2;
		} else {
			cf->name = a;
		}
	}
	if (!cf->name) {
		cli_fail("conform: no device given (%s)", CF_USAGE);
		return 2;
	}
	if (cf->peer_name && cli_same_device(cf->name, cf->peer_name)) {
		cli_fail("conform: --peer %s is DEV itself: the peer must be "
			 "another device", cf->peer_name);
		return 2;
	}
	return 0;
}

int cmd_conform(int argc, char **argv)
{
	static struct cf cf;
	struct cf_check checks[NCHECKS];
	unsigned int count[4] = { 0 }, i;
	int rc;

	memset(&cf, 0, sizeof(cf));
	cf.limit_us = CF_LIMIT_MS * 1000.0;
	rc = parse_args(&cf, argc, argv);
	if (rc)
		return rc;
	cli_catch_sigint();
	rc = open_dev(cf.name, "", &cf.d);
	if (rc)
		return rc;
	if (cf.peer_name) {
		char what[300];

		snprintf(what, sizeof(what), "--peer ");
		rc = open_dev(cf.peer_name, what, &cf.p);
		if (rc) {
			cli_dev_close(&cf.d);
			return rc;
		}
	}
	rc = vdpa_mem_create(CLI_MEM_SIZE, CLI_MEM_IOVA, &cf.mem);
	if (rc < 0) {
		cli_fail_errno(rc, "conform: creating driver memory");
		cli_dev_close(&cf.p);
		cli_dev_close(&cf.d);
		return 2;
	}
	memcpy(checks, table, sizeof(table));
	cf.checks = checks;
	cf.nchecks = NCHECKS;
	cf.is_net = cf.d.caps.device_id == VIRTIO_ID_NET;
	cf.is_blk = cf.d.caps.device_id == VIRTIO_ID_BLOCK;

	cf_run_all(&cf);

	for (i = 0; i < cf.nchecks; i++) {
		if (checks[i].v == CF_PENDING)
			cf_skip(&checks[i], "not run");
		count[checks[i].v]++;
	}
	if (cli.json)
		report_json(&cf, count);
	else
		report_tap(&cf, count);
	fflush(stdout);
	cf_teardown(&cf);
	cli_dev_close(&cf.p);
	cli_dev_close(&cf.d);
	vdpa_mem_destroy(cf.mem);
	if (cli_interrupted)
		return CLI_EXIT_INTERRUPTED;
	return count[CF_FAIL] ? 1 : 0;
}
