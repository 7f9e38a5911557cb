/* SPDX-License-Identifier: MIT */
/* Internal I/O helpers shared by the state and transfer code. */
#ifndef VDPA_LIB_IO_H
#define VDPA_LIB_IO_H

#include <errno.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * write(2) with SIGPIPE blocked in the calling thread: EPIPE instead of the
 * process's death when the reader is gone (the library never raises
 * SIGPIPE). A SIGPIPE this write raised is consumed; one that was already
 * pending is left alone. Returns what write(2) returns, errno preserved.
 */
ssize_t vdpa_write_nosigpipe(int fd, const void *buf, size_t len);
/* The same with writev(2). */
struct iovec;
ssize_t vdpa_writev_nosigpipe(int fd, const struct iovec *iov, int n_iov);

/*
 * A failed write's errno as the library reports it: a reader that went
 * away is EPIPE, also when a socket peer that closed with unread data
 * gave ECONNRESET instead (which one depends on timing).
 */
static inline int vdpa_write_err(int e)
{
	return e == ECONNRESET ? -EPIPE : -e;
}

/* All of buf, retrying EINTR and short writes, never SIGPIPE: 0 or -errno. */
int vdpa_write_all(int fd, const void *buf, size_t len);

#endif
