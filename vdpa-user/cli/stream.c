// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <vdpa-user/state.h>

#include "stream.h"

struct rec_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t len;
};

int io_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	do {
		r = poll(&p, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

int io_read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	char *p = buf;

	while (len) {
		ssize_t n;
		int err = wait_readable(fd, timeout_ms);

		if (err < 0)
			return err;
		n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int stream_is_file(const char *uri)
{
	return !strncmp(uri, "file:", 5);
}

static int parse_tcp(const char *hp, struct addrinfo **ret)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	char host[256];
	const char *colon = strrchr(hp, ':');
	size_t hl;

	if (!colon || colon == hp || !colon[1])
		return -EINVAL;
	hl = (size_t)(colon - hp);
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, hp, hl);
	host[hl] = 0;
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = 0;
	}
	if (getaddrinfo(host, colon + 1, &hints, ret))
		return -EINVAL;
	return 0;
}

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!*path || strlen(path) >= sizeof(sa->sun_path))
		return -EINVAL;
	strcpy(sa->sun_path, path);
	return 0;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int stream_connect(const char *uri, int timeout_ms, int *ret_fd)
{
	long deadline = now_ms() + timeout_ms;
	int fd, err;

	if (!strncmp(uri, "file:", 5)) {
		if (!uri[5])
			return -EINVAL;
		fd = open(uri + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			  0600);
		if (fd < 0)
			return -errno;
		*ret_fd = fd;
		return 0;
	}
	for (;;) {
		if (!strncmp(uri, "unix:", 5)) {
			struct sockaddr_un sa;

			err = unix_addr(uri + 5, &sa);
			if (err < 0)
				return err;
			fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (fd < 0)
				return -errno;
			err = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		} else if (!strncmp(uri, "tcp:", 4)) {
			struct addrinfo *ai;

			err = parse_tcp(uri + 4, &ai);
			if (err < 0)
				return err;
			fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC,
				    0);
			if (fd < 0) {
				err = -errno;
				freeaddrinfo(ai);
				return err;
			}
			err = connect(fd, ai->ai_addr, ai->ai_addrlen);
			freeaddrinfo(ai);
		} else {
			return -EINVAL;
		}
		if (err == 0) {
			*ret_fd = fd;
			return 0;
		}
		err = -errno;
		close(fd);
		/* the listener may not be up yet: retry until the deadline */
		if ((err != -ENOENT && err != -ECONNREFUSED) ||
		    now_ms() >= deadline)
			return err;
		usleep(10000);
	}
}

int stream_accept(const char *uri, int timeout_ms, int *ret_fd)
{
	int lfd, fd, err, one = 1;

	if (!strncmp(uri, "file:", 5)) {
		if (!uri[5])
			return -EINVAL;
		fd = open(uri + 5, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		*ret_fd = fd;
		return 0;
	}
	if (!strncmp(uri, "unix:", 5)) {
		struct sockaddr_un sa;
		mode_t old;

		err = unix_addr(uri + 5, &sa);
		if (err < 0)
			return err;
		lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lfd < 0)
			return -errno;
		unlink(sa.sun_path);
		old = umask(0077);
		err = bind(lfd, (struct sockaddr *)&sa, sizeof(sa));
		umask(old);
	} else if (!strncmp(uri, "tcp:", 4)) {
		struct addrinfo *ai;

		err = parse_tcp(uri + 4, &ai);
		if (err < 0)
			return err;
		lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lfd < 0) {
			err = -errno;
			freeaddrinfo(ai);
			return err;
		}
		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		err = bind(lfd, ai->ai_addr, ai->ai_addrlen);
		freeaddrinfo(ai);
	} else {
		return -EINVAL;
	}
	if (err < 0 || listen(lfd, 1) < 0)
		goto err_close;
	err = wait_readable(lfd, timeout_ms);
	if (err < 0) {
		close(lfd);
		goto out_unlink;
	}
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		goto err_close;
	close(lfd);
	*ret_fd = fd;
	err = 0;
	goto out_unlink;

err_close:
	err = -errno;
	close(lfd);
out_unlink:
	if (!strncmp(uri, "unix:", 5))
		unlink(uri + 5);
	return err;
}

int stream_put_header(int fd)
{
	uint64_t h[2] = { STREAM_MAGIC, STREAM_VERSION };

	return io_write_full(fd, h, sizeof(h));
}

int stream_get_header(int fd, int timeout_ms)
{
	uint64_t h[2];
	int err = io_read_full(fd, h, sizeof(h), timeout_ms);

	if (err < 0)
		return err;
	if (h[0] != STREAM_MAGIC)
		return -EBADMSG;
	if (h[1] != STREAM_VERSION)
		return -EPROTONOSUPPORT;
	return 0;
}

int stream_put(int fd, uint32_t type, const void *buf, size_t len)
{
	struct rec_hdr h = { .type = type, .len = len };
	int err = io_write_full(fd, &h, sizeof(h));

	if (err < 0 || !len)
		return err;
	return io_write_full(fd, buf, len);
}

static uint64_t state_cap = VDPA_STATE_DEFAULT_CAP;

void stream_set_state_cap(uint64_t cap)
{
	state_cap = cap;
}

int stream_get(int fd, int timeout_ms, uint32_t *ret_type, void **ret_buf,
	       size_t *ret_len)
{
	struct rec_hdr h;
	void *buf = NULL;
	int err = io_read_full(fd, &h, sizeof(h), timeout_ms);

	if (err < 0)
		return err;
	if (h.reserved || h.len > STREAM_RECORD_MAX)
		return -EBADMSG;
	if (h.type == REC_DEVICE_STATE && h.len > state_cap)
		return -EFBIG;
	if (h.len) {
		buf = malloc(h.len);
		if (!buf)
			return -ENOMEM;
		err = io_read_full(fd, buf, h.len, timeout_ms);
		if (err < 0) {
			free(buf);
			return err;
		}
	}
	*ret_type = h.type;
	*ret_buf = buf;
	*ret_len = h.len;
	return 0;
}
