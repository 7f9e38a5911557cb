// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <vdpa-user/mgmt.h>

#include "cli.h"
#include "devopen.h"

/* What a failed vdpa_dev_open() of dev (name as given) means, in words. */
static void open_error(const char *name, const char *dev, int err, char *msg,
		       size_t len)
{
	char who[600];
	struct stat st;

	if (strcmp(name, dev))
		snprintf(who, sizeof(who), "%s (%s)", name, dev);
	else
		snprintf(who, sizeof(who), "%s", name);
	if (!strncmp(dev, "sim:", 4)) {
		const char *path = dev + 4;

		switch (err) {
		case -ENOENT:
			snprintf(msg, len, "%s: no such socket (no simulator "
				 "there)", who);
			return;
		case -ECONNREFUSED:
			if (stat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
				snprintf(msg, len, "%s: not a socket", who);
			else
				snprintf(msg, len, "%s: connection refused (no "
					 "simulator listening)", who);
			return;
		case -EPROTOTYPE:
			snprintf(msg, len, "%s: a socket of another kind, not "
				 "a vdpa-sim socket", who);
			return;
		case -EBUSY:
			snprintf(msg, len, "%s: busy: another program has the "
				 "device open", who);
			return;
		case -EPROTO:
			snprintf(msg, len, "%s: not a vdpa-sim socket (the "
				 "peer does not speak its protocol)", who);
			return;
		case -EPROTONOSUPPORT:
			snprintf(msg, len, "%s: the simulator speaks another "
				 "version of the wire protocol", who);
			return;
		case -ENOTCONN:
		case -ECONNRESET:
			snprintf(msg, len, "%s: the simulator closed the "
				 "connection (does another user own it?)", who);
			return;
		}
	} else {
		switch (err) {
		case -ENOENT:
			snprintf(msg, len, "%s: no such device", who);
			return;
		case -EBUSY:
			snprintf(msg, len, "%s: busy: another program has the "
				 "device open", who);
			return;
		case -524:	/* kernel-internal ENOTSUPP */
			snprintf(msg, len, "%s: the kernel refused to open it "
				 "(ENOTSUPP: vhost-vdpa needs an IOMMU domain "
				 "for this parent)", who);
			return;
		}
	}
	if (err == -EACCES || err == -EPERM)
		snprintf(msg, len, "%s: permission denied", who);
	else
		snprintf(msg, len, "%s: %s", who, cli_lib_why(err, dev));
}

int cli_dev_open_msg(const char *name, struct vdpa_dev **ret, char *msg,
		     size_t len)
{
	char path[64], sys[600];
	const char *dev = name;
	struct stat st;
	int err;

	msg[0] = '\0';
	cli_begin();
	if (strncmp(name, "sim:", 4) && strncmp(name, "/dev/", 5)) {
		if (stat(name, &st) == 0 && S_ISSOCK(st.st_mode)) {
			snprintf(msg, len, "%s is a unix socket: did you mean "
				 "sim:%s?", name, name);
			return -EINVAL;
		}
		if (!*name || strchr(name, '/') || strstr(name, "..")) {
			snprintf(msg, len, "%s: not a device (DEV is "
				 "/dev/vhost-vdpa-N, a vdpa device name or "
				 "sim:PATH)", name);
			return -EINVAL;
		}
		/* a vdpa device name: its vhost-vdpa char device via sysfs */
		err = vdpa_mgmt_chardev(NULL, name, path, sizeof(path));
		if (err < 0) {
			snprintf(sys, sizeof(sys), "/sys/bus/vdpa/devices/%s",
				 name);
			if (access(sys, F_OK) == 0)
				snprintf(msg, len, "%s: not bound to "
					 "vhost_vdpa (it has no "
					 "/dev/vhost-vdpa-N)", name);
			else
				snprintf(msg, len, "%s: no such vdpa device "
					 "(nor a /dev path or sim:PATH)", name);
			return -ENODEV;
		}
		dev = path;
	}
	cli_lib_clear();
	err = vdpa_dev_open(dev, ret);
	if (err < 0)
		open_error(name, dev, err, msg, len);
	return err;
}

int cli_dev_open_raw(const char *name, struct vdpa_dev **ret)
{
	char msg[8];

	return cli_dev_open_msg(name, ret, msg, sizeof(msg));
}

int cli_dev_open(const char *name, struct cli_dev *ret)
{
	char msg[1024];
	int err;

	memset(ret, 0, sizeof(*ret));
	err = cli_dev_open_msg(name, &ret->dev, msg, sizeof(msg));
	if (err < 0)
		return cli_fail("%s", msg);
	cli_lib_clear();
	err = vdpa_dev_get_caps(ret->dev, &ret->caps);
	if (err < 0) {
		vdpa_dev_close(ret->dev);
		ret->dev = NULL;
		return cli_fail("%s: reading its capabilities: %s", name,
				cli_lib_why(err, name));
	}
	return 0;
}

/* What identifies the device behind a name: 0, or -1 if unknown. */
static int dev_key(const char *name, struct stat *ret)
{
	char path[64];

	if (!strncmp(name, "sim:", 4))
		return stat(name + 4, ret) ? -1 : 0;
	if (strncmp(name, "/dev/", 5)) {
		if (vdpa_mgmt_chardev(NULL, name, path, sizeof(path)) < 0)
			return -1;
		name = path;
	}
	if (stat(name, ret) || !S_ISCHR(ret->st_mode))
		return -1;
	return 0;
}

bool cli_same_device(const char *a, const char *b)
{
	struct stat x, y;

	if (!strcmp(a, b))
		return true;
	if (dev_key(a, &x) || dev_key(b, &y))
		return false;
	if (S_ISCHR(x.st_mode) || S_ISCHR(y.st_mode))
		return S_ISCHR(x.st_mode) && S_ISCHR(y.st_mode) &&
		       x.st_rdev == y.st_rdev;
	return x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

/* Queue pairs a net device offers (config max_virtqueue_pairs with MQ). */
static unsigned int net_max_pairs(struct cli_dev *d)
{
	uint16_t n = 1;

	if (!(d->caps.features & (1ULL << VIRTIO_NET_F_MQ)))
		return 1;
	if (vdpa_dev_get_config(d->dev, offsetof(struct virtio_net_config,
						 max_virtqueue_pairs),
				&n, sizeof(n)) < 0 || !n)
		return 1;
	return n;
}

int cli_dev_start(struct cli_dev *d, struct vdpa_mem *mem,
		  unsigned int queue_pairs)
{
	const char *name = vdpa_dev_name(d->dev);
	int err;

	cli_lib_clear();
	if (d->caps.device_id == VIRTIO_ID_NET) {
		struct vdpa_net_opts o = { .queue_pairs = (uint16_t)queue_pairs };
		unsigned int max = net_max_pairs(d);

		if (max > CLI_MAX_QUEUES)
			max = CLI_MAX_QUEUES;
		if (queue_pairs > max)
			return cli_fail("--queues: 1..%u for %s (%u given)",
					max, name, queue_pairs);
		err = vdpa_net_open(d->dev, mem, &o, &d->net);
	} else if (d->caps.device_id == VIRTIO_ID_BLOCK) {
		if (queue_pairs > 1)
			return cli_fail("--queues: 1..1 for %s (a blk device "
					"has one queue; %u given)", name,
					queue_pairs);
		err = vdpa_blk_open(d->dev, mem, NULL, &d->blk);
	} else {
		return cli_fail("%s: device id %u is neither net nor blk",
				name, d->caps.device_id);
	}
	if (err < 0)
		return cli_fail("%s: starting the %s driver: %s", name,
				d->caps.device_id == VIRTIO_ID_NET ? "net" :
				"blk", cli_lib_why(err, name));
	return 0;
}

int cli_dev_flush(struct cli_dev *d)
{
	struct vdpa_blk_completion c;
	int r, waited = 0;

	if (!d->blk)
		return 0;
	r = vdpa_blk_flush(d->blk, UINT64_MAX);
	if (r == 0)
		r = vdpa_blk_kick(d->blk);
	while (r == 0 && waited < 5000) {
		while ((r = vdpa_blk_poll(d->blk, &c)) > 0)
			if (c.token == UINT64_MAX)
				return c.status == 0 ? 0 : -EIO;
		if (r < 0)
			break;
		vdpa_blk_wait(d->blk, 10);
		waited += 10;
	}
	return r < 0 ? r : -ETIMEDOUT;
}

void cli_dev_close(struct cli_dev *d)
{
	vdpa_net_close(d->net);
	vdpa_blk_close(d->blk);
	vdpa_dev_close(d->dev);
	memset(d, 0, sizeof(*d));
}
