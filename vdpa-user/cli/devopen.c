// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <linux/virtio_ids.h>
#include <vdpa-user/mgmt.h>

#include "cli.h"
#include "devopen.h"

int cli_dev_open_raw(const char *name, struct vdpa_dev **ret)
{
	char path[64];
	int err;

	if (strncmp(name, "sim:", 4) && strncmp(name, "/dev/", 5)) {
		/* a vdpa device name: its vhost-vdpa char device via sysfs */
		err = vdpa_mgmt_chardev(NULL, name, path, sizeof(path));
		if (err < 0)
			return err == -EINVAL ? err : -ENODEV;
		name = path;
	}
	return vdpa_dev_open(name, ret);
}

int cli_dev_open(const char *name, struct cli_dev *ret)
{
	int err;

	memset(ret, 0, sizeof(*ret));
	err = cli_dev_open_raw(name, &ret->dev);
	if (err < 0)
		return cli_errno(err, "%s", name);
	err = vdpa_dev_get_caps(ret->dev, &ret->caps);
	if (err < 0) {
		vdpa_dev_close(ret->dev);
		ret->dev = NULL;
		return cli_errno(err, "%s: reading capabilities", name);
	}
	return 0;
}

int cli_dev_start(struct cli_dev *d, struct vdpa_mem *mem,
		  unsigned int queue_pairs)
{
	int err;

	if (d->caps.device_id == VIRTIO_ID_NET) {
		struct vdpa_net_opts o = { .queue_pairs = (uint16_t)queue_pairs };

		err = vdpa_net_open(d->dev, mem, &o, &d->net);
	} else if (d->caps.device_id == VIRTIO_ID_BLOCK) {
		err = vdpa_blk_open(d->dev, mem, NULL, &d->blk);
	} else {
		return cli_err("%s: device id %u is neither net nor blk",
			       vdpa_dev_name(d->dev), d->caps.device_id);
	}
	if (err < 0)
		return cli_errno(err, "%s: starting the %s driver",
				 vdpa_dev_name(d->dev),
				 d->caps.device_id == VIRTIO_ID_NET ? "net" :
				 "blk");
	return 0;
}

void cli_dev_close(struct cli_dev *d)
{
	vdpa_net_close(d->net);
	vdpa_blk_close(d->blk);
	vdpa_dev_close(d->dev);
	memset(d, 0, sizeof(*d));
}
