/* SPDX-License-Identifier: MIT */
#ifndef VDPA_COMMON_WIRE_CRED_H
#define VDPA_COMMON_WIRE_CRED_H

#include <stddef.h>
#include <sys/types.h>

#include <vdpa-user/wire.h>

/*
 * vsim_recv() that also takes the sender's pid from SCM_CREDENTIALS (0 when
 * none came: the socket needs SO_PASSCRED). *ret_pid is set on -EBADMSG
 * too, so that a bad message can still be answered as the sender's. The
 * simulator's receive (it checks who owns the device); not part of the
 * installed header, as the library has no use for it.
 */
int vsim_recv_cred(int sock, struct vsim_hdr *hdr, void *buf, size_t buf_size,
		   int *ret_fd, pid_t *ret_pid);

#endif
