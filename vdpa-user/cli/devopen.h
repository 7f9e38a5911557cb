/* SPDX-License-Identifier: MIT */
/* Opening a device and its driver the way every CLI command does. */
#ifndef VDPA_CLI_DEVOPEN_H
#define VDPA_CLI_DEVOPEN_H

#include <stdbool.h>
#include <stddef.h>
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

/* Queue pairs the CLI's traffic can drive (the workload's limit). */
#define CLI_MAX_QUEUES	16u

/*
 * Resolve DEV (/dev/vhost-vdpa-N, sim:PATH, or a vdpa device name) and open
 * it. Reports the error (cli_fail). Returns 0 or an exit status.
 */
int cli_dev_open(const char *name, struct cli_dev *ret);
/*
 * The same without reporting: -EINVAL for a name that is no device (msg
 * suggests sim:PATH for a unix socket), -ENODEV when a vdpa device name
 * has no vhost-vdpa char device, otherwise vdpa_dev_open()'s errors; msg
 * says what happened in one line, naming DEV ("connection refused (no
 * simulator listening)" for a socket a killed simulator left).
 */
int cli_dev_open_msg(const char *name, struct vdpa_dev **ret, char *msg,
		     size_t len);
int cli_dev_open_raw(const char *name, struct vdpa_dev **ret);
/* Do the two names reach the same device (socket or char device)? */
bool cli_same_device(const char *a, const char *b);
/*
 * Bring up the class driver on mem with queue_pairs (net); a count the
 * device does not have is refused naming --queues and its range.
 */
int cli_dev_start(struct cli_dev *d, struct vdpa_mem *mem,
		  unsigned int queue_pairs);
/* --size for the driver d runs: 0, or reported naming its range. */
int cli_check_size(const char *cmd, struct cli_dev *d, uint64_t size);
/* blk: FLUSH the write cache (what a driver does before it lets go). */
int cli_dev_flush(struct cli_dev *d);
void cli_dev_close(struct cli_dev *d);

#endif
