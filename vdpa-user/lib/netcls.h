/* SPDX-License-Identifier: MIT */
/* Private: net class state recorded from the control queue, and replayed. */
#ifndef VDPA_LIB_NETCLS_H
#define VDPA_LIB_NETCLS_H

#include <stdbool.h>
#include <stddef.h>

#include <vdpa-user/state.h>

struct vdpa_dev;

/* The first control-queue command the library could not record, or NULL. */
const char *netcls_unsupported(const struct vdpa_dev *dev);
/* The device now has st (a load restored it). */
void netcls_adopt(struct vdpa_dev *dev, const struct vdpa_state_net *st);
/* Non-zero when loading s into a device needs class state replayed. */
int netcls_replay_needed(struct vdpa_dev *dev, const struct vdpa_state *s);
/*
 * Can the replay be done on a device negotiated as s? 0, or -EPROTO /
 * -EOPNOTSUPP with the reason. Sends nothing.
 */
int netcls_replay_check(struct vdpa_dev *dev, const struct vdpa_state *s,
			char *err, size_t errlen);
/*
 * After DRIVER_OK, data queues not yet enabled: replay s->net through a
 * control queue in the library's own memory, then give the control queue
 * to the driver's saved ring with kick_fd/call_fd.
 */
int netcls_replay(struct vdpa_dev *dev, const struct vdpa_state *s,
		  int kick_fd, int call_fd, char *err, size_t errlen);

#endif
