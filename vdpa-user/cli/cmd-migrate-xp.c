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

#define PEER_TIMEOUT_MS	30000
#define DRV_NET		1u
#define DRV_BLK		2u

struct xp_args {
	const char *dev, *uri;
	bool traffic;
	uint64_t count, size, queues;
};

static int parse(const char *cmd, const char *uri_opt, int argc, char **argv,
		 struct xp_args *a)
{
	int i;

	memset(a, 0, sizeof(*a));
	a->queues = 1;
	for (i = 0; i < argc; i++) {
		const char *s = argv[i];
		uint64_t *num = !strcmp(s, "--count") ? &a->count :
				!strcmp(s, "--size") ? &a->size :
				!strcmp(s, "--queues") ? &a->queues : NULL;

		if (num) {
			if (i + 1 >= argc ||
			    cli_parse_u64(argv[++i], 1ull << 40, num) < 0)
				return cli_err("%s: %s needs a number", cmd, s);
		} else if (!strcmp(s, uri_opt)) {
			if (i + 1 >= argc)
				return cli_err("%s: %s needs a URI", cmd, s);
			a->uri = argv[++i];
		} else if (!strcmp(s, "--traffic")) {
			a->traffic = true;
		} else if (s[0] == '-') {
			return cli_err("%s: unknown option '%s'", cmd, s);
		} else if (!a->dev) {
			a->dev = s;
		} else {
			return cli_err("%s: unexpected argument '%s'", cmd, s);
		}
	}
	if (!a->dev || !a->uri || !a->queues)
		return cli_err("usage: vdpa-user %s DEV %s unix:PATH|"
			       "tcp:HOST:PORT|file:PATH", cmd, uri_opt);
	if (strncmp(a->uri, "unix:", 5) && strncmp(a->uri, "tcp:", 4) &&
	    strncmp(a->uri, "file:", 5))
		return cli_err("%s: '%s' is not unix:PATH, tcp:HOST:PORT or "
			       "file:PATH", cmd, a->uri);
	return 0;
}

/* The destination's verdict (the library's handshake message). */
static int put_verdict(int fd, struct vdpa_mig_dst *m, int err,
		       const char *msg)
{
	void *b;
	size_t len;
	int r = vdpa_mig_dst_verdict(m, err < 0 ? err : 0, msg, &b, &len);

	if (r < 0)
		return r;
	r = stream_put(fd, REC_VERDICT, b, len);
	free(b);
	return r;
}

/* A refusal's reason from a verdict payload, made printable. */
static void verdict_reason(const uint8_t *p, size_t len, char *out,
			   size_t outlen)
{
	size_t i, n = 0;

	for (i = 8; i < len && n + 1 < outlen; i++)
		out[n++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
	out[n] = 0;
}

/* A version-1 stream is still read, but nothing checks it: say so, once. */
static void warn_v1(const char *uri, unsigned int version)
{
	if (version == 1)
		cli_err("warning: %s is a version-1 stream without integrity "
			"checks", stream_is_file(uri) ? uri + 5 : uri);
}

static void print_outcome(const char *what, int r, const char *err,
			  double down_us, size_t state_bytes,
			  const struct wl_result *res, double secs)
{
	struct json j;

	json_init(&j, stdout, cli.pretty);
	if (cli.json) {
		json_obj_open(&j, NULL);
		json_str(&j, "result", r < 0 ? "failed" : "ok");
		if (r < 0)
			json_str(&j, "error", err);
		json_dbl(&j, "downtime_us", down_us);
		json_u64(&j, "state_bytes", state_bytes);
		if (res) {
			cli_print_result(&j, res, secs);
		} else {
			json_u64(&j, "requests", 0);
			json_u64(&j, "lost", 0);
			json_u64(&j, "duplicated", 0);
		}
		json_obj_close(&j);
		json_end(&j);
	} else {
		printf("%s: %s", what, r < 0 ? "failed" : "ok");
		if (r < 0)
			printf(" (%s)", err);
		printf(", downtime %.0f us, state %zu bytes\n", down_us,
		       state_bytes);
		if (res)
			cli_print_result(&j, res, secs);
	}
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
static int get_reply(int fd, unsigned int version, uint32_t want,
		     void **ret_buf, size_t *ret_len, char *err, size_t el)
{
	uint32_t type;
	void *buf;
	size_t len;
	int r = stream_get(fd, version, PEER_TIMEOUT_MS, &type, &buf, &len);

	if (r < 0) {
		snprintf(err, el, "%s: %s", r == -EBADMSG || r == -EPROTO ?
			 "bad record from the destination" :
			 "destination went away", stream_error());
		return r;
	}
	if (type == REC_VERDICT && want != REC_VERDICT) {
		char why[256];

		verdict_reason(buf, len, why, sizeof(why));
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
 * description, our precheck, our plan, its verdict on preparing.
 */
static int handshake(int fd, const char *uri, struct vdpa_mig_src *m,
		     unsigned int *version, char *err, size_t el)
{
	void *buf = NULL;
	size_t len = 0;
	int r = stream_get_header(fd, PEER_TIMEOUT_MS, version);

	if (r < 0) {
		snprintf(err, el, "no answer from the destination: %s",
			 stream_error());
		return r;
	}
	warn_v1(uri, *version);
	r = get_reply(fd, *version, REC_DESC, &buf, &len, err, el);
	if (r < 0)
		return r;
	r = vdpa_mig_src_precheck(m, buf, len, err, el);
	free(buf);
	if (r < 0)
		return r;
	r = vdpa_mig_src_plan(m, &buf, &len);
	if (!r)
		r = stream_put(fd, REC_PLAN, buf, len);
	free(buf);
	if (r < 0) {
		snprintf(err, el, "sending the plan: %s", strerror(-r));
		return r;
	}
	r = get_reply(fd, *version, REC_VERDICT, &buf, &len, err, el);
	if (r < 0)
		return r;
	/* prepared, or the reason it could not */
	if (len >= 8 && ((int32_t)le32toh(*(uint32_t *)((uint8_t *)buf + 4))) < 0) {
		char why[256];

		verdict_reason(buf, len, why, sizeof(why));
		snprintf(err, el, "destination refused: %s", why);
		r = -EPROTO;
	} else if (len < 8) {
		snprintf(err, el, "destination sent a malformed verdict");
		r = -EPROTO;
	}
	free(buf);
	return r;
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
	struct wl_result res;
	struct xp_args a;
	struct cli_dev d;
	bool file, have_wl = false, stopped = false;
	double tw = 0, down = 0;
	char err[512] = "";
	void *vbuf = NULL;
	size_t len = 0, vlen = 0;
	unsigned int version = STREAM_VERSION;
	int rc, r, fd = -1;

	rc = parse("migrate-out", "--to", argc, argv, &a);
	if (rc)
		return rc;
	file = stream_is_file(a.uri);
	rc = cli_dev_open(a.dev, &d);
	if (rc)
		return rc;
	r = vdpa_mem_create(CLI_MEM_SIZE, CLI_MEM_IOVA, &mem);
	if (r < 0) {
		rc = cli_errno(r, "creating driver memory");
		goto out;
	}
	rc = cli_dev_start(&d, mem, (unsigned int)a.queues);
	if (rc)
		goto out;
	so.cap = cli.max_state;
	so.restore_class = mig_driver_restore_class;
	so.opaque = &d;
	r = vdpa_mig_src_new(d.dev, &so, &m);
	if (r < 0) {
		rc = cli_errno(r, "%s: describing", a.dev);
		goto out;
	}
	if (a.traffic) {
		uint64_t count = a.count ? a.count : (d.net ? 100000 : 10000);

		r = wl_init(&w, d.net, d.blk, count, (uint32_t)a.size,
			    (unsigned int)a.queues);
		if (r < 0) {
			rc = cli_errno(r, "migrate-out: bad traffic parameters");
			goto out;
		}
		have_wl = true;
		tw = cli_now();
		/* half the traffic here, in flight at the switch */
		while (w.next < count / 2 && wl_step(&w) == 0)
			;
	}
	r = stream_connect(a.uri, PEER_TIMEOUT_MS, &fd);
	if (r < 0) {
		snprintf(err, sizeof(err), "%s: %s", a.uri, strerror(-r));
		goto finish;
	}
	r = stream_put_header(fd);
	if (r < 0)
		snprintf(err, sizeof(err), "%s: %s", a.uri, strerror(-r));
	/* fail early: nothing stopped yet */
	else if (!file)
		r = handshake(fd, a.uri, m, &version, err, sizeof(err));
	else
		r = vdpa_mig_src_precheck(m, NULL, 0, err, sizeof(err));
	if (r < 0)
		goto finish;
	r = vdpa_mig_src_switchover(m, err, sizeof(err));
	if (r < 0)
		goto finish;	/* the library resumed the source */
	stopped = true;
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
		/* the state is in the file: only now may the source forget */
		vdpa_mig_src_commit(m);
	} else {
		r = get_reply(fd, version, REC_VERDICT, &vbuf, &vlen, err,
			      sizeof(err));
		if (r < 0)
			goto rollback;
		/* commit on success; rollback (the source resumed) else */
		r = vdpa_mig_src_finish(m, vbuf, vlen, err, sizeof(err));
		if (r < 0) {
			stopped = vdpa_mig_src_suspended(m);
			goto finish;
		}
	}
	{
		const struct vdpa_mig_times *t = vdpa_mig_src_times(m);
		uint64_t end = t->begin_ns[VDPA_MIG_COMMIT];

		down = end > t->begin_ns[VDPA_MIG_SUSPEND] ?
		       (double)(end - t->begin_ns[VDPA_MIG_SUSPEND]) / 1e3 : 0;
	}
	print_outcome(file ? "saved" : "migrated", 0, "", file ? 0 : down, len,
		      NULL, 0);
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
	/* the migration did not happen: the source carries on */
	if (have_wl && !stopped)
		wl_run(&w, 2000);
	if (have_wl)
		wl_result(&w, &res);
	print_outcome("migrate-out", -1, err, 0, len, have_wl ? &res : NULL,
		      have_wl ? cli_now() - tw : 0);
	if (!cli.json)
		cli_err("migrate-out: %s%s", err, stopped ? "" :
			"; source still running");
	rc = 1;
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
};

static int adopt_memory(const uint8_t *p, size_t len, struct vdpa_mem **ret)
{
	uint64_t h[3];
	int r;

	if (len < sizeof(h))
		return -EBADMSG;
	memcpy(h, p, sizeof(h));
	if (!h[1] || h[1] > (1ull << 32) || h[2] > h[1] ||
	    len != sizeof(h) + h[2])
		return -EBADMSG;
	r = vdpa_mem_create(h[1], h[0], ret);
	if (r < 0)
		return r;
	memcpy(vdpa_mem_base(*ret), p + sizeof(h), h[2]);
	return vdpa_mem_set_used(*ret, h[2]);
}

static int receive(int fd, unsigned int version, struct incoming *in,
		   char *err, size_t el)
{
	for (;;) {
		uint32_t type;
		void *buf;
		size_t len;
		int r = stream_get(fd, version, PEER_TIMEOUT_MS, &type, &buf,
				   &len);

		if (r < 0) {
			snprintf(err, el, "stream: %s", stream_error());
			return r;
		}
		switch (type) {
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
			r = in->mem ? -EBADMSG : adopt_memory(buf, len, &in->mem);
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
static int prepare(int fd, unsigned int version, struct vdpa_mig_dst *m,
		   char *err, size_t el)
{
	uint32_t type;
	void *buf;
	size_t len;
	int r = stream_get(fd, version, PEER_TIMEOUT_MS, &type, &buf, &len);

	if (r < 0) {
		snprintf(err, el, "stream: %s", stream_error());
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
		r = put_verdict(fd, m, 0, NULL);
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
	struct wl_result res;
	struct xp_args a;
	struct cli_dev d;
	bool file, have_wl = false;
	char err[512] = "";
	double t0 = 0, tw;
	void *dbuf = NULL;
	size_t dlen;
	uint32_t cls, i;
	unsigned int version;
	int rc, r, fd = -1;

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
	r = vdpa_mig_dst_new(d.dev, &dopt, &m);
	if (r < 0) {
		rc = cli_errno(r, "%s: describing", a.dev);
		goto out;
	}
	r = stream_accept(a.uri, PEER_TIMEOUT_MS, &fd);
	if (r < 0) {
		snprintf(err, sizeof(err), "%s: %s", a.uri, strerror(-r));
		goto fail;
	}
	r = stream_get_header(fd, PEER_TIMEOUT_MS, &version);
	if (r < 0) {
		snprintf(err, sizeof(err), "%s: %s", a.uri, stream_error());
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
		r = prepare(fd, version, m, err, sizeof(err));
		if (r < 0)
			goto fail;
	}
	r = receive(fd, version, &in, err, sizeof(err));
	if (r < 0)
		goto fail;
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
	if (r < 0)
		goto fail;
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
	if (!file)
		put_verdict(fd, m, 0, NULL);
	close(fd);
	fd = -1;
	tw = cli_now();
	if (have_wl)
		wl_run(&w, 2000);
	if (have_wl)
		wl_result(&w, &res);
	print_outcome("migrate-in", 0, "", (tw - t0) * 1e6, in.state_len,
		      have_wl ? &res : NULL, have_wl ? cli_now() - tw : 0);
	rc = have_wl && (res.lost || res.duplicated || res.corrupt ||
			 res.errors);
	goto out;

fail:
	if (fd >= 0 && !file)
		put_verdict(fd, m, r < 0 ? r : -EIO, err);
	/* nothing of it may stay on the device */
	vdpa_dev_reset(d.dev);
	print_outcome("migrate-in", -1, err, 0, in.state_len, NULL, 0);
	if (!cli.json)
		cli_err("migrate-in: %s; %s left reset and unused", err, a.dev);
	rc = 1;
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
