// SPDX-License-Identifier: MIT
/*
 * migrate-out / migrate-in: a migration between two front-end processes
 * (or hosts) over the stream of docs/migration.md, or save-to-file and
 * restore-later.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <endian.h>
#include <vdpa-user/migrate.h>
#include <vdpa-user/transfer.h>

#include "cli.h"
#include "migrate.h"
#include "stream.h"

#define PEER_TIMEOUT_S	30ull	/* --timeout: silence from the peer */
#define PEER_TIMEOUT_MAX	86400ull
#define DRV_NET		1u
#define DRV_BLK		2u

struct xp_args {
	const char *dev, *uri;
	bool traffic, precopy;
	uint64_t count, size, queues, timeout, pc_threshold, pc_rounds;
	int timeout_ms;
};

/* Pre-copy rounds of this run, for the result (migrate-out --precopy). */
static struct {
	bool asked, ran;
	uint64_t rounds, bytes;
} pc_done;

static int parse(const char *cmd, const char *uri_opt, int argc, char **argv,
		 struct xp_args *a)
{
	int i, rc;

	memset(a, 0, sizeof(*a));
	a->queues = 1;
	a->timeout = PEER_TIMEOUT_S;
	for (i = 0; i < argc; i++) {
		const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		/* the traffic options are the source's: its driver runs it */
		bool src_only = !strcmp(s, "--count") || !strcmp(s, "--size") ||
				!strcmp(s, "--queues") ||
				!strcmp(s, "--traffic") ||
				!strncmp(s, "--precopy", 9);

		if (src_only && strcmp(uri_opt, "--to"))
			return cli_fail("%s: %s is migrate-out's (the traffic "
					"comes with the stream)", cmd, s);
		if (!strcmp(s, "--count")) {
			rc = cli_parse_opt(cmd, s, v, 1, CLI_COUNT_MAX,
					   &a->count);
		} else if (!strcmp(s, "--size")) {
			rc = cli_parse_opt(cmd, s, v, 0, CLI_SIZE_MAX,
					   &a->size);
		} else if (!strcmp(s, "--queues")) {
			rc = cli_parse_opt(cmd, s, v, 1, CLI_MAX_QUEUES,
					   &a->queues);
		} else if (!strcmp(s, "--timeout")) {
			rc = cli_parse_opt(cmd, s, v, 1, PEER_TIMEOUT_MAX,
					   &a->timeout);
		} else if (!strcmp(s, uri_opt)) {
			if (!v)
				return cli_fail("%s: %s needs a URI: "
						"unix:PATH, tcp:HOST:PORT or "
						"file:PATH", cmd, s);
			a->uri = v;
			rc = 0;
		} else if (!strcmp(s, "--traffic")) {
			a->traffic = true;
			continue;
		} else if (!strcmp(s, "--precopy")) {
			a->precopy = true;
			continue;
		} else if (!strcmp(s, "--precopy-threshold")) {
			rc = cli_parse_opt(cmd, s, v, 1, 1ull << 40,
					   &a->pc_threshold);
			a->precopy = true;
		} else if (!strcmp(s, "--precopy-rounds")) {
			rc = cli_parse_opt(cmd, s, v, 1, 1000, &a->pc_rounds);
			a->precopy = true;
		} else if (s[0] == '-') {
			return cli_fail("%s: unknown option '%s'", cmd, s);
		} else if (!a->dev) {
			a->dev = s;
			continue;
		} else {
			return cli_fail("%s: unexpected argument '%s'", cmd, s);
		}
		if (rc)
			return rc;
		i++;
	}
	if (!a->dev || !a->uri)
		return cli_fail("usage: vdpa-user %s DEV %s unix:PATH|"
				"tcp:HOST:PORT|file:PATH%s [--timeout SECONDS]",
				cmd, uri_opt, strcmp(uri_opt, "--to") ? "" :
				" [--traffic] [--count N] [--size B] "
				"[--queues Q] [--precopy [--precopy-threshold "
				"BYTES] [--precopy-rounds N]]");
	if (strncmp(a->uri, "unix:", 5) && strncmp(a->uri, "tcp:", 4) &&
	    strncmp(a->uri, "file:", 5))
		return cli_fail("%s: '%s' is not unix:PATH, tcp:HOST:PORT or "
				"file:PATH", cmd, a->uri);
	a->timeout_ms = (int)(a->timeout * 1000);
	/* a peer that stops reading holds us no longer than one that is
	 * silent */
	stream_set_write_timeout(a->timeout_ms);
	return 0;
}

/*
 * A verdict record (the library's handshake message, "VRD1", i32 0 or
 * -errno, the reason): the destination's on preparing and at the end; the
 * source's when it refuses before anything stopped, so the destination
 * can say why instead of "the stream ended".
 */
static int put_verdict(int fd, int err, const char *msg)
{
	void *b;
	size_t len;
	int r = vdpa_mig_dst_verdict(NULL, err < 0 ? err : 0, msg, &b, &len);

	if (r < 0)
		return r;
	r = stream_put(fd, REC_VERDICT, b, len);
	free(b);
	return r;
}

/* A version-1 stream is still read, but nothing checks it: say so, once. */
static void warn_v1(const char *uri, unsigned int version)
{
	if (version == 1)
		cli_warn("%s is a version-1 stream without integrity checks",
			 stream_is_file(uri) ? uri + 5 : uri);
}

/*
 * The result: with -j one object (status "ok", "failed" or "interrupted",
 * the error, the figures, the traffic's counts); in text the success line
 * or, after a failure already reported on stderr, only the traffic's
 * counts (what was done). source_running: -1 not said (destination).
 */
static void print_outcome(const char *status, const char *what,
			  double down_us, size_t state_bytes,
			  const struct wl_result *res, double secs,
			  int source_running)
{
	static const struct wl_result none;
	struct json j;

	json_init(&j, stdout, cli.pretty);
	if (cli.json) {
		json_obj_open(&j, NULL);
		json_str(&j, "result", status);
		if (strcmp(status, "ok"))
			cli_json_error(&j, status);
		if (source_running >= 0)
			json_bool(&j, "source_running", source_running);
		json_dbl(&j, "downtime_us", down_us);
		json_u64(&j, "state_bytes", state_bytes);
		if (pc_done.asked) {
			json_bool(&j, "precopy", pc_done.ran);
			json_u64(&j, "rounds", pc_done.rounds);
			json_u64(&j, "precopy_bytes", pc_done.bytes);
			json_u64(&j, "final_bytes", state_bytes);
		}
		cli_print_result(&j, res ? res : &none, secs);
		json_obj_close(&j);
		json_end(&j);
		return;
	}
	if (!strcmp(status, "ok"))
		printf("%s: ok, downtime %.0f us, state %zu bytes\n", what,
		       down_us, state_bytes);
	if (!strcmp(status, "ok") && pc_done.asked)
		printf("pre-copy: %s%llu round(s), %llu bytes before the "
		       "switchover\n", pc_done.ran ? "" : "not possible: ",
		       (unsigned long long)pc_done.rounds,
		       (unsigned long long)pc_done.bytes);
	if (res)
		cli_print_result(&j, res, secs);
}

/* ---- source -------------------------------------------------------------- */

static int send_driver(int fd, struct cli_dev *d, struct vdpa_mem *mem,
		       struct workload *w)
{
	void *buf = NULL, *img;
	size_t len = 0;
	uint64_t hdr[3];
	uint8_t *rec;
	uint32_t cls;
	int r;

	if (w) {
		r = wl_save(w, &buf, &len);
		if (!r)
			r = stream_put(fd, REC_WORKLOAD, buf, len);
		free(buf);
		if (r < 0)
			return r;
	}
	/* driver memory: iova, size, allocator cursor, then the image */
	hdr[0] = vdpa_mem_iova(mem, vdpa_mem_base(mem));
	hdr[1] = vdpa_mem_size(mem);
	hdr[2] = vdpa_mem_used(mem);
	img = malloc(sizeof(hdr) + hdr[2]);
	if (!img)
		return -ENOMEM;
	memcpy(img, hdr, sizeof(hdr));
	memcpy((uint8_t *)img + sizeof(hdr), vdpa_mem_base(mem), hdr[2]);
	r = stream_put(fd, REC_MEMORY, img, sizeof(hdr) + hdr[2]);
	free(img);
	if (r < 0)
		return r;
	cls = d->net ? DRV_NET : DRV_BLK;
	r = d->net ? vdpa_net_save(d->net, &buf, &len) :
		     vdpa_blk_save(d->blk, &buf, &len);
	if (r < 0)
		return r;
	rec = malloc(4 + len);
	if (!rec) {
		free(buf);
		return -ENOMEM;
	}
	memcpy(rec, &cls, 4);
	memcpy(rec + 4, buf, len);
	r = stream_put(fd, REC_DRIVER_VQS, rec, 4 + len);
	free(rec);
	free(buf);
	return r;
}

/*
 * One record of type want from the destination; a verdict instead of it
 * is the destination refusing (its reason in err).
 */
static int get_reply(int fd, unsigned int version, int timeout_ms,
		     uint32_t want, void **ret_buf, size_t *ret_len, char *err,
		     size_t el)
{
	uint32_t type;
	void *buf;
	size_t len;
	int r = stream_get(fd, version, timeout_ms, &type, &buf, &len);

	if (r < 0) {
		if (r == -ETIMEDOUT)
			snprintf(err, el, "the destination said nothing for "
				 "%d s (--timeout)", timeout_ms / 1000);
		else if (r == -EINTR)
			snprintf(err, el, "interrupted while waiting for the "
				 "destination");
		else
			snprintf(err, el, "%s: %s", r == -EBADMSG ||
				 r == -EPROTO ?
				 "bad record from the destination" :
				 "destination went away", stream_error());
		return r;
	}
	if (type == REC_VERDICT && want != REC_VERDICT) {
		char why[512] = "";
		int res;

		vdpa_mig_verdict_parse(buf, len, &res, why, sizeof(why));
		snprintf(err, el, "destination refused: %s",
			 why[0] ? why : "no reason given");
		free(buf);
		return -EPROTO;
	}
	if (type != want) {
		snprintf(err, el, "unexpected record %u (%s) from the "
			 "destination", type, stream_rec_name(type) ?
			 stream_rec_name(type) : "unknown");
		free(buf);
		return -EPROTO;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

/*
 * The handshake before anything stops (sockets): the destination's
 * description, our precheck, our plan, its verdict on preparing. A
 * refusal of ours is sent to the destination as a verdict.
 */
static int handshake(int fd, const struct xp_args *a, struct vdpa_mig_src *m,
		     unsigned int *version, char *err, size_t el)
{
	void *buf = NULL;
	size_t len = 0;
	int r = stream_get_header(fd, a->timeout_ms, version);

	if (r < 0) {
		if (r == -ETIMEDOUT)
			snprintf(err, el, "no answer from the destination in "
				 "%d s (--timeout)", a->timeout_ms / 1000);
		else if (r == -EINTR)
			snprintf(err, el, "interrupted while waiting for the "
				 "destination");
		else
			snprintf(err, el, "no answer from the destination: %s",
				 stream_error());
		return r;
	}
	warn_v1(a->uri, *version);
	r = get_reply(fd, *version, a->timeout_ms, REC_DESC, &buf, &len, err,
		      el);
	if (r < 0)
		return r;
	r = vdpa_mig_src_precheck(m, buf, len, err, el);
	free(buf);
	if (r < 0) {
		mig_explain(err, el);
		put_verdict(fd, r, err);	/* the destination says why */
		return r;
	}
	r = vdpa_mig_src_plan(m, &buf, &len);
	if (!r)
		r = stream_put(fd, REC_PLAN, buf, len);
	free(buf);
	if (r < 0) {
		snprintf(err, el, "sending the plan: %s", strerror(-r));
		return r;
	}
	r = get_reply(fd, *version, a->timeout_ms, REC_VERDICT, &buf, &len,
		      err, el);
	if (r < 0)
		return r;
	/* prepared, or the reason it could not */
	{
		char why[512];
		int res;

		if (vdpa_mig_verdict_parse(buf, len, &res, why,
					   sizeof(why)) < 0) {
			snprintf(err, el, "destination sent a malformed "
				 "verdict");
			r = -EPROTO;
		} else if (res < 0) {
			snprintf(err, el, "destination refused: %s",
				 why[0] ? why : strerror(-res));
			r = -EPROTO;
		}
	}
	free(buf);
	return r;
}

/*
 * Pre-copy rounds while the source runs, each applied and acknowledged
 * (a verdict) by the destination before the next; the traffic goes on in
 * between. A refusal fails the migration with nothing stopped. A source
 * that cannot pre-copy goes on with stop-and-copy.
 */
static int precopy_out(int fd, const struct xp_args *a, unsigned int version,
		       struct vdpa_mig_src *m, struct workload *w, char *err,
		       size_t el)
{
	struct vdpa_mig_precopy_info pi;
	uint64_t pending = 0;
	int r;

	pc_done.asked = true;
	if (vdpa_mig_src_precopy_info(m, &pi, err, el) < 0) {
		cli_warn("migrate-out: no pre-copy (%s): stop-and-copy", err);
		err[0] = 0;
		return 0;
	}
	do {
		void *buf = NULL, *vb = NULL;
		size_t len = 0, vl = 0;
		char why[512] = "";
		int res = 0;

		r = vdpa_mig_src_precopy_round(m, &buf, &len, &pending, err,
					       el);
		if (r < 0) {
			put_verdict(fd, r, err);
			return r;
		}
		r = stream_put(fd, REC_PRECOPY_ROUND, buf, len);
		free(buf);
		if (r < 0) {
			snprintf(err, el, "sending pre-copy round %llu: %s",
				 (unsigned long long)pc_done.rounds,
				 strerror(-r));
			return r;
		}
		r = get_reply(fd, version, a->timeout_ms, REC_VERDICT, &vb, &vl,
			      err, el);
		if (r < 0)
			return r;
		if (vdpa_mig_verdict_parse(vb, vl, &res, why, sizeof(why)) < 0)
			res = -EPROTO;
		free(vb);
		if (res == -EOPNOTSUPP && !pc_done.rounds) {
			/* it cannot take rounds: the state goes whole */
			cli_warn("migrate-out: no pre-copy (%s): stop-and-copy",
				 why[0] ? why : strerror(-res));
			return vdpa_mig_src_precopy_abort(m);
		}
		if (res < 0) {
			snprintf(err, el, "the destination refused pre-copy "
				 "round %llu: %s", (unsigned long long)
				 pc_done.rounds, why[0] ? why : strerror(-res));
			return -EPROTO;
		}
		pc_done.ran = true;
		pc_done.rounds++;
		pc_done.bytes += len;
		cli_progress("migrate-out: pre-copy round %llu: %zu bytes, "
			     "%llu pending", (unsigned long long)pc_done.rounds,
			     len, (unsigned long long)pending);
		/* the guest goes on between rounds */
		if (w) {
			int k;

			for (k = 0; k < 64 && w->next < w->count &&
			     wl_step(w) == 0; k++)
				;
		}
		/* when to stop is the library's rule, with the user's bounds */
	} while (!vdpa_mig_src_precopy_done(m, a->pc_threshold,
					    (uint32_t)a->pc_rounds, &pending) &&
		 !cli_interrupted);
	return 0;
}

/* The state through the transfer FD (SAVE), into one stream record. */
static int send_state(int fd, struct vdpa_mig_src *m, size_t *ret_len,
		      char *err, size_t el)
{
	void *buf = NULL;
	size_t len = 0;
	int rfd, r;

	r = vdpa_mig_src_set_state_fd(m, -1, &rfd, err, el);
	if (r < 0)
		return r;
	r = mig_slurp(rfd, &buf, &len);
	close(rfd);
	if (vdpa_mig_src_check_state(m, err, el) < 0 && !r)
		r = -EIO;
	else if (r < 0)
		snprintf(err, el, "reading the state: %s", strerror(-r));
	if (!r) {
		r = stream_put(fd, REC_DEVICE_STATE, buf, len);
		if (r < 0)
			snprintf(err, el, "sending: %s", strerror(-r));
	}
	free(buf);
	*ret_len = len;
	return r;
}

int cmd_migrate_out(int argc, char **argv)
{
	struct vdpa_mig_src_opts so = { 0 };
	struct vdpa_mig_src *m = NULL;
	struct vdpa_mem *mem = NULL;
	struct workload w;
	struct wl_result res = { 0 };
	struct xp_args a;
	struct cli_dev d = { 0 };
	bool file, have_wl = false, stopped = false, held = false;
	double tw = 0, down = 0;
	char err[1024] = "", what[600];
	void *vbuf = NULL;
	size_t len = 0, vlen = 0;
	unsigned int version = STREAM_VERSION;
	int rc, r, fd = -1;

	cli_result_command();
	cli_catch_sigint();
	rc = parse("migrate-out", "--to", argc, argv, &a);
	if (rc)
		return rc;
	file = stream_is_file(a.uri);
	rc = cli_dev_open(a.dev, &d);
	if (rc)
		return rc;
	r = vdpa_mem_create(CLI_MEM_SIZE, CLI_MEM_IOVA, &mem);
	if (r < 0) {
		rc = cli_fail_errno(r, "creating driver memory");
		goto out;
	}
	rc = cli_dev_start(&d, mem, (unsigned int)a.queues);
	if (!rc)
		rc = cli_check_size("migrate-out", &d, a.size);
	if (rc)
		goto out;
	so.cap = cli.max_state;
	so.restore_class = mig_driver_restore_class;
	so.opaque = &d;
	cli_lib_clear();
	r = vdpa_mig_src_new(d.dev, &so, &m);
	if (r < 0) {
		rc = cli_fail("%s: describing it: %s", a.dev,
			      cli_lib_why(r, a.dev));
		goto out;
	}
	snprintf(what, sizeof(what), "traffic on %s", a.dev);
	if (a.traffic) {
		uint64_t count = a.count ? a.count : (d.net ? 100000 : 10000);

		r = wl_init(&w, d.net, d.blk, count, (uint32_t)a.size,
			    (unsigned int)a.queues);
		if (r < 0) {
			rc = cli_fail_errno(r, "migrate-out: setting up the "
					    "traffic");
			goto out;
		}
		have_wl = true;
		tw = cli_now();
		/* half the traffic here, in flight at the switch */
		while (w.next < count / 2 && !cli_interrupted &&
		       wl_step(&w) == 0)
			;
	}
	if (cli_interrupted) {
		snprintf(err, sizeof(err), "interrupted before anything "
			 "stopped");
		goto finish;
	}
	if (!file)
		cli_progress("migrate-out: waiting up to %llu s for the "
			     "destination at %s (--timeout; Ctrl-C stops)",
			     (unsigned long long)a.timeout, a.uri);
	r = stream_connect(a.uri, a.timeout_ms, &fd);
	if (r < 0) {
		cli_progress("%s", "");
		if (r == -ETIMEDOUT)
			snprintf(err, sizeof(err), "%s: no destination "
				 "listening there in %llu s (is migrate-in "
				 "running? --timeout)", a.uri,
				 (unsigned long long)a.timeout);
		else if (r == -EINTR)
			snprintf(err, sizeof(err), "interrupted while waiting "
				 "for the destination at %s", a.uri);
		else
			snprintf(err, sizeof(err), "%s: %s", a.uri,
				 strerror(-r));
		goto finish;
	}
	if (!file)
		cli_progress("migrate-out: connected; the destination checks "
			     "its device and prepares");
	r = stream_put_header(fd);
	if (r < 0)
		snprintf(err, sizeof(err), "%s: %s", a.uri, strerror(-r));
	/* fail early: nothing stopped yet */
	else if (!file)
		r = handshake(fd, &a, m, &version, err, sizeof(err));
	else
		r = vdpa_mig_src_precheck(m, NULL, 0, err, sizeof(err));
	/* a file has no destination to pre-copy to: the state is saved */
	if (!r && a.precopy && file)
		cli_warn("migrate-out: --precopy does nothing with a file: "
			 "the source stops to save its state");
	if (!r && a.precopy && !file)
		r = precopy_out(fd, &a, version, m, have_wl ? &w : NULL, err,
				sizeof(err));
	cli_progress("%s", "");
	if (r < 0)
		goto finish;
	/* from the switchover it commits or rolls back: Ctrl-C waits */
	cli_hold_sigint(true);
	held = true;
	if (cli_interrupted) {
		snprintf(err, sizeof(err), "interrupted before anything "
			 "stopped");
		if (!file)
			put_verdict(fd, -EINTR, "the source was interrupted "
				    "(Ctrl-C) before it stopped");
		goto finish;
	}
	r = vdpa_mig_src_switchover(m, err, sizeof(err));
	if (r < 0) {
		/* the library resumed the source: tell the destination */
		if (!file)
			put_verdict(fd, r, err);
		goto finish;
	}
	stopped = true;
	cli_progress("migrate-out: %s stopped; sending its state", a.dev);
	r = send_driver(fd, &d, mem, have_wl ? &w : NULL);
	if (r < 0)
		snprintf(err, sizeof(err), "sending: %s", strerror(-r));
	if (!r)
		r = send_state(fd, m, &len, err, sizeof(err));
	if (!r) {
		r = stream_put(fd, REC_END, NULL, 0);
		if (r < 0)
			snprintf(err, sizeof(err), "sending: %s",
				 strerror(-r));
	}
	if (r < 0)
		goto rollback;
	if (file) {
		/* the state is in the file, on disk: only now may the source
		 * forget */
		r = stream_file_commit(fd);
		if (r < 0) {
			snprintf(err, sizeof(err), "%s: %s", a.uri,
				 strerror(-r));
			goto rollback;
		}
		vdpa_mig_src_commit(m);
	} else {
		cli_progress("migrate-out: %zu bytes of state sent; waiting "
			     "for the destination's verdict", len);
		r = get_reply(fd, version, a.timeout_ms, REC_VERDICT, &vbuf,
			      &vlen, err, sizeof(err));
		if (r == -ETIMEDOUT) {
			/*
			 * All of the state is out and no verdict came: the
			 * destination may be running the device. Resuming
			 * here too would make two; leave the source
			 * suspended and say so.
			 */
			snprintf(err, sizeof(err), "no verdict from the "
				 "destination in %llu s after all of the state "
				 "was sent: the outcome is unknown (the "
				 "destination may be running), so the source "
				 "does not resume",
				 (unsigned long long)a.timeout);
			vdpa_mig_src_abandon(m);
			stopped = true;
			goto finish;
		}
		if (r < 0)
			goto rollback;
		/* commit on success; rollback (the source resumed) else */
		r = vdpa_mig_src_finish(m, vbuf, vlen, err, sizeof(err));
		if (r < 0) {
			stopped = vdpa_mig_src_suspended(m);
			goto finish;
		}
	}
	cli_hold_sigint(false);
	cli_progress("%s", "");
	{
		const struct vdpa_mig_times *t = vdpa_mig_src_times(m);
		uint64_t end = t->begin_ns[VDPA_MIG_COMMIT];

		down = end > t->begin_ns[VDPA_MIG_SUSPEND] ?
		       (double)(end - t->begin_ns[VDPA_MIG_SUSPEND]) / 1e3 : 0;
	}
	/* the traffic goes on at the destination: nothing to count here */
	print_outcome("ok", file ? "saved" : "migrated", file ? 0 : down, len,
		      NULL, 0, -1);
	rc = 0;
	goto out;

rollback:
	{
		char rb[256] = "";

		if (vdpa_mig_src_rollback(m, rb, sizeof(rb)) == 0) {
			stopped = false;
		} else {
			size_t l = strlen(err);

			snprintf(err + l, sizeof(err) - l, "; rollback failed: %s",
				 rb);
		}
	}
finish:
	cli_progress("%s", "");
	if (held)
		cli_hold_sigint(false);
	/* the migration did not happen: the source carries on */
	if (have_wl && !stopped) {
		if (cli_interrupted)
			cli_traffic_stop(&w);
		else
			cli_run_traffic(&w, 2000, what);
	}
	if (have_wl)
		cli_traffic_result(&w, &res);
	if (!stopped)	/* a suspended device takes no flush */
		cli_dev_flush(&d);
	stream_file_abort();
	rc = cli_fail("migrate-out: %s; %s", err, stopped ?
		      "the source is left suspended" :
		      "the source is still running");
	if (have_wl && !stopped && !cli_interrupted && cli_result_bad(&res))
		cli_fail_result(what, &res);
	print_outcome(cli_interrupted ? "interrupted" : "failed", NULL, 0,
		      len, have_wl ? &res : NULL,
		      have_wl ? cli_now() - tw : 0, !stopped);
	if (cli_interrupted)
		rc = CLI_EXIT_INTERRUPTED;
out:
	if (fd >= 0)
		close(fd);
	if (have_wl)
		wl_free(&w);
	free(vbuf);
	vdpa_mig_src_free(m);
	cli_dev_close(&d);
	vdpa_mem_destroy(mem);
	return rc;
}

/* ---- destination --------------------------------------------------------- */

struct incoming {
	void *workload, *drv, *state, *plan;
	size_t workload_len, drv_len, state_len, plan_len;
	struct vdpa_mem *mem;
	/* pre-copy rounds: into m, each answered on the socket */
	struct vdpa_mig_dst *m;
	bool file, stopped;	/* stopped: a record of the switchover came */
};

/* A pre-copy round while the source runs: apply it, say so. */
static int round_in(int fd, struct incoming *in, const void *buf, size_t len,
		    char *err, size_t el)
{
	int r;

	if (in->file || in->stopped) {
		snprintf(err, el, "stream: a pre-copy round %s",
			 in->file ? "in a file" : "after the source stopped");
		return -EBADMSG;
	}
	r = vdpa_mig_dst_precopy_apply(in->m, buf, len, err, el);
	if (r == -EOPNOTSUPP && !pc_done.rounds) {
		/* no pre-copy here: the source sends the whole state */
		r = put_verdict(fd, r, err);
		err[0] = 0;
		return r;
	}
	if (r < 0)
		return r;	/* the failure verdict tells the source */
	r = put_verdict(fd, 0, NULL);
	if (r < 0) {
		snprintf(err, el, "answering pre-copy round %llu: %s",
			 (unsigned long long)pc_done.rounds, strerror(-r));
		return r;
	}
	pc_done.asked = pc_done.ran = true;
	pc_done.rounds++;
	pc_done.bytes += len;
	cli_progress("migrate-in: pre-copy round %llu applied (%zu bytes)",
		     (unsigned long long)pc_done.rounds, len);
	return 0;
}

/* Why a read from the source failed, in words. */
static void source_error(int r, int timeout_ms, char *err, size_t el)
{
	if (r == -ETIMEDOUT)
		snprintf(err, el, "the source said nothing for %d s "
			 "(--timeout)", timeout_ms / 1000);
	else if (r == -EINTR)
		snprintf(err, el, "interrupted while waiting for the source");
	else
		snprintf(err, el, "stream: %s", stream_error());
}

/* A verdict from the source: it gave up; its reason in err. */
static int source_verdict(const void *buf, size_t len, const char *how,
			  char *err, size_t el)
{
	char why[512] = "";
	int res;

	vdpa_mig_verdict_parse(buf, len, &res, why, sizeof(why));
	snprintf(err, el, "source %s: %s", how, why[0] ? why :
		 "no reason given");
	return -ECANCELED;
}

static int receive(int fd, unsigned int version, int timeout_ms,
		   struct incoming *in, char *err, size_t el)
{
	for (;;) {
		uint32_t type;
		void *buf;
		size_t len;
		int r = stream_get(fd, version, timeout_ms, &type, &buf, &len);

		if (r < 0) {
			source_error(r, timeout_ms, err, el);
			return r;
		}
		if (type == REC_PRECOPY_ROUND) {
			r = round_in(fd, in, buf, len, err, el);
			free(buf);
			if (r < 0)
				return r;
			continue;
		}
		in->stopped = true;
		switch (type) {
		case REC_VERDICT:
			r = source_verdict(buf, len, "gave up", err, el);
			free(buf);
			return r;
		case REC_END:
			free(buf);
			if (!in->mem || !in->drv || !in->state) {
				snprintf(err, el, "stream lacks %s",
					 !in->mem ? "driver memory" :
					 !in->drv ? "driver state" :
					 "device state");
				return -EBADMSG;
			}
			return 0;
		case REC_WORKLOAD:
		case REC_DRIVER_VQS:
		case REC_DEVICE_STATE:
		case REC_PLAN: {
			void **slot = type == REC_WORKLOAD ? &in->workload :
				      type == REC_DRIVER_VQS ? &in->drv :
				      type == REC_PLAN ? &in->plan :
				      &in->state;
			size_t *sl = type == REC_WORKLOAD ? &in->workload_len :
				     type == REC_DRIVER_VQS ? &in->drv_len :
				     type == REC_PLAN ? &in->plan_len :
				     &in->state_len;

			if (*slot) {
				free(buf);
				snprintf(err, el, "stream: record '%s' twice",
					 stream_rec_name(type));
				return -EBADMSG;
			}
			*slot = buf;
			*sl = len;
			break;
		}
		case REC_MEMORY:
			r = in->mem ? -EBADMSG : mig_memory_record(buf, len, &in->mem);
			free(buf);
			if (r < 0) {
				snprintf(err, el, "driver memory record: %s",
					 strerror(-r));
				return r;
			}
			break;
		default:
			free(buf);
			snprintf(err, el, "unknown record type %u", type);
			return -EBADMSG;
		}
	}
}

/* The plan, before the source stops: prepare, and say whether we could. */
static int prepare(int fd, unsigned int version, int timeout_ms,
		   struct vdpa_mig_dst *m, char *err, size_t el)
{
	uint32_t type;
	void *buf;
	size_t len;
	int r = stream_get(fd, version, timeout_ms, &type, &buf, &len);

	if (r == -EPIPE && type == UINT32_MAX) {
		/* a source from before the verdict records */
		snprintf(err, el, "the source closed the connection before "
			 "its plan: it refused (its own output says why)");
		return r;
	}
	if (r < 0) {
		source_error(r, timeout_ms, err, el);
		return r;
	}
	if (type == REC_VERDICT) {
		r = source_verdict(buf, len, "refused", err, el);
		free(buf);
		return r;
	}
	if (type != REC_PLAN) {
		free(buf);
		snprintf(err, el, "stream: expected the source's plan, got "
			 "record %u (%s)", type, stream_rec_name(type) ?
			 stream_rec_name(type) : "unknown");
		return -EPROTO;
	}
	r = vdpa_mig_dst_prepare(m, buf, len, err, el);
	free(buf);
	if (!r)
		r = put_verdict(fd, 0, NULL);
	return r;
}

/* The state through the transfer FD (LOAD), as a back-end takes it. */
static int load_state(struct vdpa_mig_dst *m, const void *blob, size_t len,
		      char *err, size_t el)
{
	int wfd, r;

	r = vdpa_mig_dst_set_state_fd(m, -1, &wfd, err, el);
	if (r < 0)
		return r;
	r = io_write_full(wfd, blob, len);
	close(wfd);
	/* a writer cut short (EPIPE) is explained by the check */
	return vdpa_mig_dst_check_state(m, err, el);
}

int cmd_migrate_in(int argc, char **argv)
{
	struct vdpa_mig_dst_opts dopt = { 0 };
	struct vdpa_mig_dst *m = NULL;
	struct incoming in = { 0 };
	struct workload w;
	struct wl_result res = { 0 };
	struct xp_args a;
	struct cli_dev d = { 0 };
	bool file, have_wl = false, held = false;
	char err[1024] = "", what[600];
	double t0 = 0, tw = 0, down = 0;
	void *dbuf = NULL;
	size_t dlen;
	uint32_t cls, i;
	unsigned int version;
	int rc, r, tr = 0, fd = -1;

	cli_result_command();
	cli_catch_sigint();
	rc = parse("migrate-in", "--from", argc, argv, &a);
	if (rc)
		return rc;
	file = stream_is_file(a.uri);
	rc = cli_dev_open(a.dev, &d);
	if (rc)
		return rc;
	dopt.cap = cli.max_state;
	dopt.restore_class = mig_driver_restore_class;
	dopt.opaque = &d;
	cli_lib_clear();
	r = vdpa_mig_dst_new(d.dev, &dopt, &m);
	if (r < 0) {
		rc = cli_fail("%s: describing it: %s", a.dev,
			      cli_lib_why(r, a.dev));
		goto out;
	}
	if (!file)
		cli_progress("migrate-in: waiting up to %llu s for the source "
			     "on %s (--timeout; Ctrl-C stops)",
			     (unsigned long long)a.timeout, a.uri);
	r = stream_accept(a.uri, a.timeout_ms, &fd);
	cli_progress("%s", "");
	if (r < 0) {
		if (r == -ETIMEDOUT)
			snprintf(err, sizeof(err), "%s: no source connected "
				 "in %llu s (--timeout)", a.uri,
				 (unsigned long long)a.timeout);
		else if (r == -EINTR)
			snprintf(err, sizeof(err), "interrupted while waiting "
				 "for the source on %s", a.uri);
		else if (r == -EEXIST)
			snprintf(err, sizeof(err), "%s: something that is not "
				 "a socket is there; not removing it", a.uri);
		else if (r == -EADDRINUSE)
			snprintf(err, sizeof(err), "%s: another process is "
				 "listening on it; not taking it over", a.uri);
		else if (r == -EINVAL && stream_is_file(a.uri))
			snprintf(err, sizeof(err), "%s: not a regular file",
				 a.uri);
		else
			snprintf(err, sizeof(err), "%s: %s", a.uri,
				 strerror(-r));
		goto fail;
	}
	r = stream_get_header(fd, a.timeout_ms, &version);
	if (r < 0) {
		if (r == -ETIMEDOUT || r == -EINTR)
			source_error(r, a.timeout_ms, err, sizeof(err));
		else
			snprintf(err, sizeof(err), "%s: %s", a.uri,
				 stream_error());
		goto fail;
	}
	warn_v1(a.uri, version);
	if (!file) {
		r = vdpa_mig_dst_describe(m, &dbuf, &dlen);
		if (!r)
			r = stream_put_header(fd);
		if (!r)
			r = stream_put(fd, REC_DESC, dbuf, dlen);
		free(dbuf);
		if (r < 0) {
			snprintf(err, sizeof(err), "sending the description: %s",
				 strerror(-r));
			goto fail;
		}
		/* while the source still runs */
		cli_progress("migrate-in: the source connected; preparing %s",
			     a.dev);
		r = prepare(fd, version, a.timeout_ms, m, err, sizeof(err));
		if (r < 0)
			goto fail;
	}
	/*
	 * The source stops now. Ctrl-C while its records come is a failure
	 * verdict (the source resumes); once they are all here, the load and
	 * the verdict finish first.
	 */
	cli_progress("migrate-in: receiving the state");
	in.m = m;
	in.file = file;
	r = receive(fd, version, a.timeout_ms, &in, err, sizeof(err));
	if (r < 0)
		goto fail;
	cli_progress("migrate-in: loading %zu bytes of state into %s",
		     in.state_len, a.dev);
	cli_hold_sigint(true);
	held = true;
	t0 = cli_now();
	r = -EBADMSG;
	if (in.drv_len >= 4)
		memcpy(&cls, in.drv, 4);
	if (in.drv_len < 4 || (cls != DRV_NET && cls != DRV_BLK) ||
	    (cls == DRV_NET) != (d.caps.device_id == 1)) {
		snprintf(err, sizeof(err), "driver state does not match %s",
			 a.dev);
		goto fail;
	}
	/* the driver's memory first: the load check reads its rings */
	r = vdpa_mem_map(d.dev, in.mem);
	if (r < 0 && r != -EEXIST) {
		snprintf(err, sizeof(err), "mapping the driver memory: %s",
			 strerror(-r));
		goto fail;
	}
	/* decode and check everything before the device is started */
	r = load_state(m, in.state, in.state_len, err, sizeof(err));
	if (r < 0) {
		mig_explain(err, sizeof(err));
		goto fail;
	}
	r = cls == DRV_NET ?
	    vdpa_net_restore(in.mem, (uint8_t *)in.drv + 4, in.drv_len - 4,
			     &d.net) :
	    vdpa_blk_restore(in.mem, (uint8_t *)in.drv + 4, in.drv_len - 4,
			     &d.blk);
	if (r < 0) {
		snprintf(err, sizeof(err), "driver state: %s", strerror(-r));
		goto fail;
	}
	/* the driver's eventfds go with its rings */
	for (i = 0; i < VDPA_STATE_MAX_QUEUES; i++) {
		struct vdpa_vq *vq = mig_driver_vq(&d, i);

		if (vq)
			vdpa_mig_dst_set_vring_fds(m, i, vdpa_vq_kick_fd(vq),
						   vdpa_vq_call_fd(vq));
	}
	if (in.workload) {
		r = wl_adopt(&w, d.net, d.blk, in.workload, in.workload_len);
		if (r < 0) {
			snprintf(err, sizeof(err), "workload record: %s",
				 strerror(-r));
			goto fail;
		}
		have_wl = true;
	}
	r = vdpa_mig_dst_start(m, err, sizeof(err));
	if (r < 0)
		goto fail;
	mig_set_driver_dev(&d, d.dev);
	if (!file) {
		r = put_verdict(fd, 0, NULL);
		if (r < 0) {
			/*
			 * The source did not get the verdict: it resumes (its
			 * peer went away) or stays suspended (it timed out).
			 * Never two running: stop here.
			 */
			snprintf(err, sizeof(err), "the verdict did not reach "
				 "the source (%s): stopped here so that the "
				 "device never runs twice", strerror(-r));
			goto fail;
		}
	}
	close(fd);
	fd = -1;
	cli_hold_sigint(false);
	held = false;
	cli_progress("%s", "");
	down = (cli_now() - t0) * 1e6;
	tw = cli_now();
	snprintf(what, sizeof(what), "traffic on %s", a.dev);
	if (have_wl) {
		tr = cli_run_traffic(&w, 2000, what);
		cli_traffic_result(&w, &res);
	}
	cli_dev_flush(&d);
	rc = 0;
	if (tr == -EINTR)
		rc = cli_fail("migrate-in: migrated; the traffic was "
			      "interrupted after %llu of %llu requests",
			      (unsigned long long)res.requests,
			      (unsigned long long)w.count);
	else if (tr < 0 && tr != -ETIMEDOUT)
		rc = cli_fail_errno(tr, "migrate-in: migrated; %s", what);
	else if (have_wl && cli_result_bad(&res))
		rc = cli_fail_result(what, &res);
	print_outcome(tr == -EINTR ? "interrupted" : rc ? "failed" : "ok",
		      "migrate-in", down, in.state_len, have_wl ? &res : NULL,
		      have_wl ? cli_now() - tw : 0, -1);
	if (tr == -EINTR)
		rc = CLI_EXIT_INTERRUPTED;
	goto out;

fail:
	cli_progress("%s", "");
	if (fd >= 0 && !file)
		put_verdict(fd, r < 0 ? r : -EIO, err);
	/* nothing of it may stay on the device */
	vdpa_dev_reset(d.dev);
	if (held)
		cli_hold_sigint(false);
	rc = cli_fail("migrate-in: %s; %s left reset and unused", err, a.dev);
	print_outcome(cli_interrupted ? "interrupted" : "failed", NULL, 0,
		      in.state_len, NULL, 0, -1);
	if (cli_interrupted)
		rc = CLI_EXIT_INTERRUPTED;
out:
	if (fd >= 0)
		close(fd);
	if (have_wl)
		wl_free(&w);
	vdpa_mig_dst_free(m);
	free(in.workload);
	free(in.drv);
	free(in.state);
	free(in.plan);
	cli_dev_close(&d);
	vdpa_mem_destroy(in.mem);
	return rc;
}
