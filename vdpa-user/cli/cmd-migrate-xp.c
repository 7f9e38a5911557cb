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

static int put_verdict(int fd, int err, const char *msg)
{
	size_t ml = strlen(msg);
	uint8_t *b = malloc(4 + ml);
	int32_t e = err;
	int r;

	if (!b)
		return -ENOMEM;
	memcpy(b, &e, 4);
	memcpy(b + 4, msg, ml);
	r = stream_put(fd, REC_VERDICT, b, 4 + ml);
	free(b);
	return r;
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

/* The destination's description (sockets) or NULL for a file. */
static int get_desc(int fd, struct vdpa_state **ret, char *err, size_t el)
{
	uint32_t type;
	void *buf;
	size_t len;
	int r = stream_get_header(fd, PEER_TIMEOUT_MS);

	if (!r)
		r = stream_get(fd, PEER_TIMEOUT_MS, &type, &buf, &len);
	if (r < 0) {
		snprintf(err, el, "no description from the destination: %s",
			 strerror(-r));
		return r;
	}
	if (type == REC_VERDICT && len >= 4) {
		snprintf(err, el, "destination refused: %.*s", (int)(len - 4),
			 (char *)buf + 4);
		free(buf);
		return -EPROTO;
	}
	r = type == REC_DESC ? vdpa_state_decode(buf, len, 0, ret, err, el) :
	    -EBADMSG;
	if (type != REC_DESC)
		snprintf(err, el, "unexpected record %u from the destination",
			 type);
	free(buf);
	return r;
}

static int get_verdict(int fd, char *err, size_t el)
{
	uint32_t type;
	void *buf;
	size_t len;
	int32_t v;
	int r = stream_get(fd, PEER_TIMEOUT_MS, &type, &buf, &len);

	if (r < 0) {
		snprintf(err, el, "destination went away: %s", strerror(-r));
		return r;
	}
	if (type != REC_VERDICT || len < 4) {
		free(buf);
		snprintf(err, el, "no verdict from the destination");
		return -EPROTO;
	}
	memcpy(&v, buf, 4);
	if (v < 0)
		snprintf(err, el, "destination failed: %.*s", (int)(len - 4),
			 (char *)buf + 4);
	free(buf);
	return v < 0 ? v : 0;
}

int cmd_migrate_out(int argc, char **argv)
{
	struct vdpa_state *desc = NULL, *src_desc = NULL, *saved = NULL;
	struct vdpa_mem *mem = NULL;
	struct workload w;
	struct wl_result res;
	struct xp_args a;
	struct cli_dev d;
	bool file, have_wl = false, stopped = false;
	double t0 = 0, tw = 0, down = 0;
	char err[512] = "";
	void *blob = NULL;
	size_t len = 0;
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
	if (!r && !file)
		r = get_desc(fd, &desc, err, sizeof(err));
	if (r < 0) {
		if (!err[0])
			snprintf(err, sizeof(err), "%s", strerror(-r));
		goto finish;
	}
	/* fail early: nothing stopped yet */
	r = mig_precheck(&d, desc, &src_desc, err, sizeof(err));
	if (r < 0)
		goto finish;
	t0 = cli_now();
	r = mig_save(&d, src_desc, &saved, err, sizeof(err));
	if (r < 0)
		goto finish;
	stopped = true;
	r = vdpa_state_encode(saved, &blob, &len);
	if (!r)
		r = send_driver(fd, &d, mem, have_wl ? &w : NULL);
	if (!r)
		r = stream_put(fd, REC_DEVICE_STATE, blob, len);
	if (!r)
		r = stream_put(fd, REC_END, NULL, 0);
	if (r < 0) {
		snprintf(err, sizeof(err), "sending: %s", strerror(-r));
		goto rollback;
	}
	if (!file) {
		r = get_verdict(fd, err, sizeof(err));
		if (r < 0)
			goto rollback;
	}
	down = (cli_now() - t0) * 1e6;
	/* the state is out: only now may the source forget */
	vdpa_dev_reset(d.dev);
	print_outcome(file ? "saved" : "migrated", 0, "", file ? 0 : down, len,
		      NULL, 0);
	rc = 0;
	goto out;

rollback:
	{
		char rb[256];

		if (mig_rollback(&d, mem, saved, rb, sizeof(rb)) == 0) {
			wl_kick_driver(d.net, d.blk);
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
	free(blob);
	vdpa_state_free(desc);
	vdpa_state_free(src_desc);
	vdpa_state_free(saved);
	cli_dev_close(&d);
	vdpa_mem_destroy(mem);
	return rc;
}

/* ---- destination --------------------------------------------------------- */

struct incoming {
	void *workload, *drv, *state;
	size_t workload_len, drv_len, state_len;
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

static int receive(int fd, struct incoming *in, char *err, size_t el)
{
	for (;;) {
		uint32_t type;
		void *buf;
		size_t len;
		int r = stream_get(fd, PEER_TIMEOUT_MS, &type, &buf, &len);

		if (r == -EFBIG) {
			snprintf(err, el, "stream: device state larger than "
				 "the %llu-byte cap (--max-state)",
				 (unsigned long long)cli.max_state);
			return r;
		}
		if (r < 0) {
			snprintf(err, el, "stream: %s", r == -EPIPE ?
				 "ended early (truncated)" : strerror(-r));
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
		case REC_DEVICE_STATE: {
			void **slot = type == REC_WORKLOAD ? &in->workload :
				      type == REC_DRIVER_VQS ? &in->drv :
				      &in->state;
			size_t *sl = type == REC_WORKLOAD ? &in->workload_len :
				     type == REC_DRIVER_VQS ? &in->drv_len :
				     &in->state_len;

			if (*slot) {
				free(buf);
				snprintf(err, el, "record %u twice", type);
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

/* The device state through the transfer-FD interface, as a back-end would. */
static int load_blob(const void *blob, size_t len, const struct vdpa_state *desc,
		     struct vdpa_state **ret, char *err, size_t el)
{
	struct vdpa_transfer_opts o = { .compat_with = desc,
					.cap = cli.max_state };
	struct vdpa_transfer *t;
	int wfd, r;

	r = vdpa_transfer_set_fd(VDPA_TRANSFER_LOAD,
				 VDPA_TRANSFER_PHASE_STOPPED, -1, NULL, 0, &o,
				 &t, &wfd);
	if (r < 0) {
		snprintf(err, el, "transfer fd: %s", strerror(-r));
		return r;
	}
	r = io_write_full(wfd, blob, len);
	close(wfd);
	if (!r || r == -EPIPE)
		r = vdpa_transfer_check(t);
	if (r < 0)
		snprintf(err, el, "%s", vdpa_transfer_error(t)[0] ?
			 vdpa_transfer_error(t) : strerror(-r));
	else
		*ret = vdpa_transfer_take_state(t);
	vdpa_transfer_free(t);
	return r;
}

int cmd_migrate_in(int argc, char **argv)
{
	struct vdpa_state *desc = NULL, *state = NULL;
	struct incoming in = { 0 };
	struct workload w;
	struct wl_result res;
	struct xp_args a;
	struct cli_dev d;
	bool file, have_wl = false;
	char err[512] = "";
	double t0, tw;
	void *dbuf = NULL;
	size_t dlen;
	uint32_t cls;
	int rc, r, fd = -1;

	rc = parse("migrate-in", "--from", argc, argv, &a);
	if (rc)
		return rc;
	file = stream_is_file(a.uri);
	rc = cli_dev_open(a.dev, &d);
	if (rc)
		return rc;
	r = vdpa_state_describe(d.dev, &desc);
	if (r < 0) {
		rc = cli_errno(r, "%s: describing", a.dev);
		goto out;
	}
	r = stream_accept(a.uri, PEER_TIMEOUT_MS, &fd);
	if (r < 0) {
		snprintf(err, sizeof(err), "%s: %s", a.uri, strerror(-r));
		goto fail;
	}
	r = stream_get_header(fd, PEER_TIMEOUT_MS);
	if (r < 0) {
		snprintf(err, sizeof(err), "%s: %s", a.uri, r == -EBADMSG ?
			 "not a vdpa-user migration stream" : r == -EPIPE ?
			 "empty or truncated stream" : strerror(-r));
		goto fail;
	}
	if (!file) {
		r = vdpa_state_encode(desc, &dbuf, &dlen);
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
	}
	r = receive(fd, &in, err, sizeof(err));
	if (r < 0)
		goto fail;
	t0 = cli_now();
	/* decode and check everything before the device is touched */
	r = load_blob(in.state, in.state_len, desc, &state, err, sizeof(err));
	if (r < 0)
		goto fail;
	r = -EBADMSG;
	if (in.drv_len >= 4)
		memcpy(&cls, in.drv, 4);
	if (in.drv_len < 4 || (cls != DRV_NET && cls != DRV_BLK) ||
	    (cls == DRV_NET) != (d.caps.device_id == 1)) {
		snprintf(err, sizeof(err), "driver state does not match %s",
			 a.dev);
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
	if (in.workload) {
		r = wl_adopt(&w, d.net, d.blk, in.workload, in.workload_len);
		if (r < 0) {
			snprintf(err, sizeof(err), "workload record: %s",
				 strerror(-r));
			goto fail;
		}
		have_wl = true;
	}
	r = mig_load(&d, &d, in.mem, state, desc, err, sizeof(err));
	if (r < 0)
		goto fail;
	wl_kick_driver(d.net, d.blk);
	if (!file)
		put_verdict(fd, 0, "ok");
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
		put_verdict(fd, r < 0 ? r : -EIO, err);
	print_outcome("migrate-in", -1, err, 0, in.state_len, NULL, 0);
	if (!cli.json)
		cli_err("migrate-in: %s; %s left reset and unused", err, a.dev);
	rc = 1;
out:
	if (fd >= 0)
		close(fd);
	if (have_wl)
		wl_free(&w);
	vdpa_state_free(desc);
	vdpa_state_free(state);
	free(in.workload);
	free(in.drv);
	free(in.state);
	cli_dev_close(&d);
	vdpa_mem_destroy(in.mem);
	return rc;
}
