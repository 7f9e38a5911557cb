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
#include <vdpa-user/migrate.h>
#include <vdpa-user/transfer.h>
#include <vdpa-user/uapi-ext.h>

#include "cli.h"
#include "migrate.h"
#include "stream.h"

void mig_explain(char *err, size_t len)
{
	const char *a = strstr(err, "model: source vdpa-sim://blk");
	size_t n = strlen(err);

	if (a && strstr(a, ", destination vdpa-sim://blk") &&
	    !strstr(err, "do not share a disk"))
		snprintf(err + n, len - n, ": the simulators do not share a "
			 "disk (start both with the same --backing FILE)");
}

int mig_parse_via(const char *s, enum mig_via *ret)
{
	if (!strcmp(s, "pipe"))
		*ret = VIA_PIPE;
	else if (!strcmp(s, "socket"))
		*ret = VIA_SOCKET;
	else if (!strcmp(s, "file"))
		*ret = VIA_FILE;
	else if (!strcmp(s, "direct"))
		*ret = VIA_DIRECT;
	else
		return -EINVAL;
	return 0;
}

struct vdpa_vq *mig_driver_vq(struct cli_dev *drv, uint32_t idx)
{
	if (drv->net)
		return vdpa_net_vq(drv->net, idx);
	return drv->blk && idx == 0 ? vdpa_blk_vq(drv->blk) : NULL;
}

void mig_set_driver_dev(struct cli_dev *drv, struct vdpa_dev *dev)
{
	if (drv->net)
		vdpa_net_set_dev(drv->net, dev);
	if (drv->blk)
		vdpa_blk_set_dev(drv->blk, dev);
}

int mig_memory_record(const void *p, size_t len, struct vdpa_mem **ret)
{
	struct vdpa_mem *m;
	uint64_t h[3];
	int r;

	if (len < sizeof(h))
		return -EBADMSG;
	memcpy(h, p, sizeof(h));
	if (!h[1] || h[1] > (1ull << 32) || h[2] > h[1] ||
	    len != sizeof(h) + h[2])
		return -EBADMSG;
	r = vdpa_mem_create(h[1], h[0], &m);
	if (r < 0)
		return r;
	memcpy(vdpa_mem_base(m), (const uint8_t *)p + sizeof(h), h[2]);
	r = vdpa_mem_set_used(m, h[2]);
	if (r < 0) {
		vdpa_mem_destroy(m);
		return r;
	}
	*ret = m;
	return 0;
}

int mig_slurp(int fd, void **ret_buf, size_t *ret_len)
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

/* The driver replays class state through its own control queue on dev. */
int mig_driver_restore_class(struct vdpa_dev *dev, const struct vdpa_state *s,
			     void *opaque)
{
	struct cli_dev *drv = opaque;
	struct vdpa_net_class_state cls;

	if (!drv->net || !s->has_net || s->has_device)
		return 0;
	vdpa_net_set_dev(drv->net, dev);
	memcpy(cls.mac, s->net.mac, 6);
	cls.queue_pairs = s->net.queue_pairs;
	cls.promisc = s->net.promisc;
	cls.allmulti = s->net.allmulti;
	return vdpa_net_restore_class(drv->net, &cls);
}

static const enum vdpa_mig_channel channels[] = {
	[VIA_PIPE] = VDPA_MIG_VIA_PIPE,
	[VIA_SOCKET] = VDPA_MIG_VIA_SOCKET,
	[VIA_FILE] = VDPA_MIG_VIA_FILE,
	[VIA_DIRECT] = VDPA_MIG_VIA_DIRECT,
};

/*
 * The whole transaction is the library's (vdpa_migrate); the CLI is the
 * driver, so it moves its driver objects with the device and replays the
 * class state through its own control queue.
 */
int mig_once(struct cli_dev *src, struct cli_dev *dst, struct vdpa_mem *mem,
	     enum mig_via via, struct mig_stats *st, char *err, size_t errlen)
{
	(void)mem;	/* the library maps what it mapped into src */
	return mig_once_precopy(src, dst, via, NULL, st, err, errlen);
}

/* Both hooks of vdpa_migrate() share its one opaque pointer. */
struct mig_hooks {
	struct cli_dev *src;
	const struct mig_precopy *pc;
};

static int hook_restore_class(struct vdpa_dev *dev, const struct vdpa_state *s,
			      void *opaque)
{
	return mig_driver_restore_class(dev, s,
					((struct mig_hooks *)opaque)->src);
}

static int hook_progress(const struct vdpa_mig_precopy_info *info,
			 void *opaque)
{
	const struct mig_precopy *pc = ((struct mig_hooks *)opaque)->pc;

	return pc->progress(info, pc->opaque);
}

int mig_once_precopy(struct cli_dev *src, struct cli_dev *dst,
		     enum mig_via via, const struct mig_precopy *pc,
		     struct mig_stats *st, char *err, size_t errlen)
{
	struct mig_hooks hk = { .src = src, .pc = pc };
	struct vdpa_mig_opts o = {
		.via = channels[via], .cap = cli.max_state,
		.restore_class = hook_restore_class, .opaque = &hk,
	};
	struct vdpa_mig_result res;
	int r;

	if (pc && pc->on) {
		o.precopy = true;
		o.precopy_threshold = pc->threshold;
		o.precopy_max_rounds = pc->rounds;
		if (pc->progress)
			o.precopy_progress = hook_progress;
	}
	memset(st, 0, sizeof(*st));
	r = vdpa_migrate(src->dev, dst->dev, &o, &res, err, errlen);
	st->downtime_us = (double)res.downtime_ns / 1e3;
	st->state_bytes = res.state_bytes;
	st->rolled_back = res.rolled_back;
	st->times = res;
	if (r < 0) {
		/* the driver stays with its source */
		mig_set_driver_dev(src, src->dev);
		return r;
	}
	dst->net = src->net;
	dst->blk = src->blk;
	src->net = NULL;
	src->blk = NULL;
	mig_set_driver_dev(dst, dst->dev);
	return 0;
}
