// SPDX-License-Identifier: MIT
/* Migration steps shared by migrate, migrate-out, migrate-in and demo. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_ids.h>
#include <vdpa-user/transfer.h>
#include <vdpa-user/uapi-ext.h>

#include "cli.h"
#include "migrate.h"
#include "stream.h"

int mig_parse_via(const char *s, enum mig_via *ret)
{
	if (!strcmp(s, "pipe"))
		*ret = VIA_PIPE;
	else if (!strcmp(s, "socket"))
		*ret = VIA_SOCKET;
	else if (!strcmp(s, "file"))
		*ret = VIA_FILE;
	else
		return -EINVAL;
	return 0;
}

int mig_precheck(struct cli_dev *src, const struct vdpa_state *dst_desc,
		 struct vdpa_state **ret_src_desc, char *err, size_t errlen)
{
	struct vdpa_state *here;
	int r;

	if (!(vdpa_dev_backend_features(src->dev) &
	      (1ULL << VHOST_BACKEND_F_SUSPEND))) {
		snprintf(err, errlen, "%s cannot SUSPEND: without it vring bases "
			 "cannot be trusted; refusing before anything stops",
			 vdpa_dev_name(src->dev));
		return -EOPNOTSUPP;
	}
	r = vdpa_state_describe(src->dev, &here);
	if (r < 0) {
		snprintf(err, errlen, "describing %s: %s",
			 vdpa_dev_name(src->dev), strerror(-r));
		return r;
	}
	r = dst_desc ? vdpa_state_compat(here, dst_desc, err, errlen) : 0;
	if (r < 0 || !ret_src_desc)
		vdpa_state_free(here);
	else
		*ret_src_desc = here;
	return r;
}

static struct vdpa_vq *driver_vq(struct cli_dev *drv, uint32_t idx);

int mig_prepare(struct cli_dev *dst, struct cli_dev *src, struct vdpa_mem *mem,
		char *err, size_t errlen)
{
	uint32_t i, n = src->net ? vdpa_net_num_vqs(src->net) : 1;
	int r = vdpa_state_prepare_device(dst->dev,
					  vdpa_dev_backend_features(src->dev),
					  vdpa_dev_features(src->dev));

	if (!r) {
		r = vdpa_mem_map(dst->dev, mem);
		if (r == -EEXIST)
			r = 0;
	}
	/*
	 * Ring sizes and addresses do not change while the source runs on:
	 * set them now, so only BASE, KICK and CALL fall in the downtime.
	 */
	for (i = 0; !r && i < n; i++) {
		struct vdpa_vq *vq = driver_vq(src, i);

		if (vq)
			r = vdpa_vq_preattach(vq, dst->dev, i);
	}
	if (r < 0)
		snprintf(err, errlen, "preparing %s: %s",
			 vdpa_dev_name(dst->dev), strerror(-r));
	return r;
}

int mig_save(struct cli_dev *src, const struct vdpa_state *src_desc,
	     struct vdpa_state **ret, char *err, size_t errlen)
{
	struct vdpa_state *s;
	int r;

	r = vdpa_dev_suspend(src->dev);
	if (r < 0) {
		snprintf(err, errlen, "suspending %s: %s",
			 vdpa_dev_name(src->dev), strerror(-r));
		return r;
	}
	r = vdpa_state_save_device(src->dev, src_desc, &s);
	if (r < 0) {
		int rr = vdpa_dev_resume(src->dev);

		snprintf(err, errlen, "saving %s: %s%s", vdpa_dev_name(src->dev),
			 strerror(-r), rr == 0 ? " (resumed)" :
			 rr == -ENOTCONN ? " (the source device went away)" :
			 " (left suspended: no RESUME)");
		return r;
	}
	if (src->net) {
		struct vdpa_net_class_state c;

		vdpa_net_class_state(src->net, &c);
		vdpa_state_set_net(s, c.mac, c.queue_pairs, c.promisc,
				   c.allmulti);
	}
	*ret = s;
	return 0;
}

static struct vdpa_vq *driver_vq(struct cli_dev *drv, uint32_t idx)
{
	if (drv->net)
		return vdpa_net_vq(drv->net, idx);
	return drv->blk && idx == 0 ? vdpa_blk_vq(drv->blk) : NULL;
}

struct load_ctx {
	struct cli_dev *drv;	/* holds the driver objects */
	struct vdpa_mem *mem;
};

static int setup_rings(struct vdpa_dev *dev, const struct vdpa_state *s,
		       void *opaque)
{
	struct load_ctx *c = opaque;
	uint32_t i;
	int r;

	r = vdpa_mem_map(dev, c->mem);
	if (r < 0 && r != -EEXIST)
		return r;
	for (i = 0; i < s->nqueues; i++) {
		struct vdpa_vq *vq = driver_vq(c->drv, s->q[i].index);

		if (!vq)
			return -ENOENT;
		r = vdpa_vq_attach(vq, dev, s->q[i].index, s->q[i].base);
		if (r < 0)
			return r;
	}
	return 0;
}

static int restore_class(struct vdpa_dev *dev, const struct vdpa_state *s,
			 void *opaque)
{
	struct load_ctx *c = opaque;
	struct vdpa_net_class_state cls;

	if (!c->drv->net || !s->has_net)
		return 0;
	/* the device's own state already carried its control-queue state */
	if (s->has_device)
		return 0;
	vdpa_net_set_dev(c->drv->net, dev);
	memcpy(cls.mac, s->net.mac, 6);
	cls.queue_pairs = s->net.queue_pairs;
	cls.promisc = s->net.promisc;
	cls.allmulti = s->net.allmulti;
	return vdpa_net_restore_class(c->drv->net, &cls);
}



/*
 * Bind the driver's kick eventfds to dev, or unbind them (fd -1). The
 * suspended source must let go before the destination gets them: two
 * devices polling one kick eventfd steal each other's kicks. (Call
 * eventfds can stay: a suspended device does not signal.)
 */
static int bind_kicks(struct vdpa_dev *dev, struct cli_dev *drv,
		      const struct vdpa_state *s, bool bind)
{
	uint32_t i;
	int r;

	for (i = 0; i < s->nqueues; i++) {
		struct vdpa_vq *vq = driver_vq(drv, s->q[i].index);
		struct vhost_vring_file k = { s->q[i].index, -1 };

		if (bind && vq)
			k.fd = vdpa_vq_kick_fd(vq);
		r = vdpa_dev_call(dev, VHOST_SET_VRING_KICK, &k);
		if (r < 0 && bind)
			return r;
	}
	return 0;
}

static void kick_all(struct cli_dev *d)
{
	wl_kick_driver(d->net, d->blk);
}

static void set_driver_dev(struct cli_dev *drv, struct vdpa_dev *dev)
{
	if (drv->net)
		vdpa_net_set_dev(drv->net, dev);
	if (drv->blk)
		vdpa_blk_set_dev(drv->blk, dev);
}

int mig_load(struct cli_dev *dst, struct cli_dev *src_driver,
	     struct vdpa_mem *mem, const struct vdpa_state *s,
	     const struct vdpa_state *dst_desc, char *err, size_t errlen)
{
	struct load_ctx c = { src_driver, mem };
	struct vdpa_load_hooks hooks = { setup_rings, restore_class, &c,
					 dst_desc };
	int r;

	r = vdpa_state_load_device(dst->dev, s, &hooks, err, errlen);
	if (r < 0) {
		/* the driver stays with its source */
		if (src_driver->dev)
			set_driver_dev(src_driver, src_driver->dev);
		return r;
	}
	if (dst != src_driver) {
		dst->net = src_driver->net;
		dst->blk = src_driver->blk;
		src_driver->net = NULL;
		src_driver->blk = NULL;
	}
	set_driver_dev(dst, dst->dev);
	return 0;
}

int mig_rollback(struct cli_dev *src, struct vdpa_mem *mem,
		 const struct vdpa_state *s, char *err, size_t errlen)
{
	int r = bind_kicks(src->dev, src, s, true);

	if (!r)
		r = vdpa_dev_resume(src->dev);
	if (r == -EOPNOTSUPP) {
		/* no RESUME (Linux 6.1): reset and reload our own state */
		r = mig_load(src, src, mem, s, NULL, err, errlen);
	} else if (r < 0) {
		snprintf(err, errlen, "resuming %s: %s",
			 vdpa_dev_name(src->dev), strerror(-r));
	}
	if (r == 0)
		set_driver_dev(src, src->dev);
	return r;
}

/* Read fd to EOF (the front-end side of a SAVE transfer). */
static int slurp(int fd, void **ret_buf, size_t *ret_len)
{
	size_t len = 0, cap = 1 << 16;
	uint8_t *buf = malloc(cap);
	int r;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (len == cap) {
			uint8_t *nb;

			if (cap >= cli.max_state) {
				r = -EFBIG;
				goto err_free;
			}
			nb = realloc(buf, cap * 2);
			if (!nb) {
				r = -ENOMEM;
				goto err_free;
			}
			buf = nb;
			cap *= 2;
		}
		r = io_read_full(fd, buf + len, 1, 10000);
		if (r == -EPIPE)
			break;
		if (r < 0)
			goto err_free;
		len++;
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			r = -errno;
			goto err_free;
		}
		if (n > 0)
			len += (size_t)n;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;

err_free:
	free(buf);
	return r;
}

static int channel(enum mig_via via, int fds[2])
{
	if (via == VIA_PIPE)
		return pipe2(fds, O_CLOEXEC) < 0 ? -errno : 0;
	return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0 ?
	       -errno : 0;
}

/*
 * Move blob through the transfer-FD interface twice, as the two back-ends
 * would: SAVE on the source side (the front-end reads it to EOF), LOAD on
 * the destination side (the front-end writes it, the library checks it).
 */
int mig_transfer(const void *blob, size_t len, enum mig_via via,
		 const struct vdpa_state *dst_desc, struct vdpa_state **ret,
		 size_t *ret_bytes, char *err, size_t errlen);
int mig_transfer(const void *blob, size_t len, enum mig_via via,
		 const struct vdpa_state *dst_desc, struct vdpa_state **ret,
		 size_t *ret_bytes, char *err, size_t errlen)
{
	struct vdpa_transfer_opts o = { .compat_with = dst_desc,
					.cap = cli.max_state };
	struct vdpa_transfer *t = NULL;
	char path[] = "/tmp/vdpa-user-state.XXXXXX";
	void *got = NULL;
	size_t got_len = 0;
	int fds[2], rfd = -1, wfd = -1, r;

	/* source side: SAVE */
	if (via == VIA_FILE) {
		wfd = mkostemp(path, O_CLOEXEC);
		if (wfd < 0)
			return -errno;
		r = vdpa_transfer_set_fd(VDPA_TRANSFER_SAVE,
					 VDPA_TRANSFER_PHASE_STOPPED, wfd, blob,
					 len, &o, &t, &rfd);
		if (!r)
			r = vdpa_transfer_check(t);
		got_len = len;
	} else {
		r = channel(via, fds);
		if (r < 0)
			return r;
		r = vdpa_transfer_set_fd(VDPA_TRANSFER_SAVE,
					 VDPA_TRANSFER_PHASE_STOPPED, fds[1],
					 blob, len, &o, &t, &rfd);
		if (!r)
			r = slurp(fds[0], &got, &got_len);
		close(fds[0]);
		if (!r)
			r = vdpa_transfer_check(t);
	}
	if (r < 0) {
		snprintf(err, errlen, "saving through the transfer fd: %s",
			 t ? vdpa_transfer_error(t) : strerror(-r));
		goto out;
	}
	vdpa_transfer_free(t);
	t = NULL;
	/* destination side: LOAD */
	if (via == VIA_FILE) {
		rfd = open(path, O_RDONLY | O_CLOEXEC);
		if (rfd < 0) {
			r = -errno;
			goto out;
		}
		r = vdpa_transfer_set_fd(VDPA_TRANSFER_LOAD,
					 VDPA_TRANSFER_PHASE_STOPPED, rfd, NULL,
					 0, &o, &t, &wfd);
	} else {
		/* let the library hand us its own fd this time */
		r = vdpa_transfer_set_fd(VDPA_TRANSFER_LOAD,
					 VDPA_TRANSFER_PHASE_STOPPED, -1, NULL,
					 0, &o, &t, &wfd);
		if (!r) {
			r = io_write_full(wfd, got, got_len);
			close(wfd);
		}
	}
	if (!r)
		r = vdpa_transfer_check(t);
	if (r < 0) {
		snprintf(err, errlen, "destination refused the state: %s",
			 t ? vdpa_transfer_error(t) : strerror(-r));
		goto out;
	}
	*ret = vdpa_transfer_take_state(t);
	*ret_bytes = got_len;
out:
	vdpa_transfer_free(t);
	free(got);
	if (via == VIA_FILE)
		unlink(path);
	return r;
}

int mig_once(struct cli_dev *src, struct cli_dev *dst, struct vdpa_mem *mem,
	     enum mig_via via, struct mig_stats *st, char *err, size_t errlen)
{
	struct vdpa_state *desc = NULL, *src_desc = NULL, *saved = NULL;
	struct vdpa_state *loaded = NULL;
	void *blob = NULL;
	size_t len = 0;
	double t0;
	int r;

	memset(st, 0, sizeof(*st));
	r = vdpa_state_describe(dst->dev, &desc);
	if (r < 0) {
		snprintf(err, errlen, "describing %s: %s",
			 vdpa_dev_name(dst->dev), strerror(-r));
		return r;
	}
	r = mig_precheck(src, desc, &src_desc, err, errlen);
	if (!r)
		r = mig_prepare(dst, src, mem, err, errlen);
	if (r < 0)
		goto out;
	t0 = cli_now();
	r = mig_save(src, src_desc, &saved, err, errlen);
	if (r < 0)
		goto err_rollback;
	bind_kicks(src->dev, src, saved, false);
	r = vdpa_state_encode(saved, &blob, &len);
	if (r < 0) {
		snprintf(err, errlen, "encoding the state: %s", strerror(-r));
		goto err_rollback;
	}
	r = mig_transfer(blob, len, via, desc, &loaded, &st->state_bytes, err,
			 errlen);
	if (r < 0)
		goto err_rollback;
	r = mig_load(dst, src, mem, loaded, desc, err, errlen);
	if (r < 0)
		goto err_rollback;
	/* chains made available before the switch: tell the new device */
	kick_all(dst);
	st->downtime_us = (cli_now() - t0) * 1e6;
	/* only now may the source forget */
	vdpa_dev_reset(src->dev);
	r = 0;
	goto out;

err_rollback:
	/* the destination never ran: leave it reset, not half prepared */
	vdpa_dev_reset(dst->dev);
	if (saved) {
		char rb[256];
		size_t l = strlen(err);

		if (mig_rollback(src, mem, saved, rb, sizeof(rb)) == 0) {
			st->rolled_back = true;
			kick_all(src);
		} else if (l < errlen) {
			snprintf(err + l, errlen - l, "; rollback failed: %s",
				 rb);
		}
	}
out:
	vdpa_state_free(desc);
	vdpa_state_free(src_desc);
	vdpa_state_free(saved);
	vdpa_state_free(loaded);
	free(blob);
	return r;
}
