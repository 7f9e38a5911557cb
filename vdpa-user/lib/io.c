// SPDX-License-Identifier: MIT
/* Internal I/O helpers: writes that never raise SIGPIPE. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "io.h"

ssize_t vdpa_write_nosigpipe(int fd, const void *buf, size_t len)
{
	struct iovec v = { (void *)buf, len };

	return vdpa_writev_nosigpipe(fd, &v, 1);
}

ssize_t vdpa_writev_nosigpipe(int fd, const struct iovec *iov, int n_iov)
{
	static const struct timespec zero;
	sigset_t set, old, pending;
	bool was_pending;
	ssize_t n;
	int e;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	n = writev(fd, iov, n_iov);
	e = errno;
	if (n < 0 && e == EPIPE && !was_pending)
		while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return n;
}

int vdpa_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = vdpa_write_nosigpipe(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return vdpa_write_err(errno);
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
