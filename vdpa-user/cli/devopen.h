/* SPDX-License-Identifier: MIT */
/* Opening a device and its driver the way every CLI command does. */
#ifndef VDPA_CLI_DEVOPEN_H
#define VDPA_CLI_DEVOPEN_H

#include <stdint.h>

#include <vdpa-user/blk.h>
#include <vdpa-user/net.h>
#include <vdpa-user/vdpa-user.h>

/* Driver memory size and its IOVA, the same on every device we use. */
#define CLI_MEM_SIZE	(32u << 20)
#define CLI_MEM_IOVA	0x40000000ull

struct cli_dev {
	struct vdpa_dev *dev;
	struct vdpa_caps caps;
	struct vdpa_net *net;
	struct vdpa_blk *blk;
};

/*
 * Resolve DEV (/dev/vhost-vdpa-N, sim:PATH, or a vdpa device name) and open
 * it. Prints the error. Returns 0 or an exit status.
 */
int cli_dev_open(const char *name, struct cli_dev *ret);
/*
 * The same without printing: -ENODEV when a vdpa device name has no
 * vhost-vdpa char device, otherwise vdpa_dev_open()'s errors.
 */
int cli_dev_open_raw(const char *name, struct vdpa_dev **ret);
/* Bring up the class driver on mem with queue_pairs (net). */
int cli_dev_start(struct cli_dev *d, struct vdpa_mem *mem,
		  unsigned int queue_pairs);
void cli_dev_close(struct cli_dev *d);

#endif
