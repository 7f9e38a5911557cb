// SPDX-License-Identifier: MIT
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <vdpa-user/state.h>

#include "crc32c.h"
#include "stream.h"

static int write_timeout_ms = 30000;

void stream_set_write_timeout(int timeout_ms)
{
	write_timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
}

/*
 * A peer that stops reading must not hold us (and a suspended source)
 * forever: a socket that takes nothing for write_timeout_ms is -ETIMEDOUT.
 */
int io_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, p, len);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pf = { .fd = fd, .events = POLLOUT };
			int r;

			do
				r = poll(&pf, 1, write_timeout_ms);
			while (r < 0 && errno == EINTR);
			if (r == 0)
				return -ETIMEDOUT;
			if (r < 0)
				return -errno;
			continue;
		}
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

static const volatile sig_atomic_t *cancel_flag;

void stream_set_cancel(const volatile sig_atomic_t *flag)
{
	cancel_flag = flag;
}

static bool cancelled(void)
{
	return cancel_flag && *cancel_flag;
}

/* Readable within timeout_ms (-ETIMEDOUT), or -EINTR once cancelled. */
static int wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r, left = timeout_ms;

	for (;;) {
		int slice = left < 0 || left > 100 ? 100 : left;

		if (cancelled())
			return -EINTR;
		r = poll(&p, 1, cancel_flag ? slice : left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r > 0)
			return 0;
		if (!cancel_flag || (left >= 0 && (left -= slice) <= 0))
			return -ETIMEDOUT;
	}
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

/*
 * A save goes to PATH.XXXXXX beside PATH and replaces PATH only once it is
 * complete and on disk (stream_file_commit): a failed save never destroys
 * the previous good one.
 */
static char file_tmp[4096], file_final[4096];

int stream_file_commit(int fd)
{
	char dir[4096], *slash;
	int d;

	if (!file_tmp[0])
		return -EINVAL;
	if (fsync(fd) < 0 || rename(file_tmp, file_final) < 0)
		return -errno;
	file_tmp[0] = 0;
	snprintf(dir, sizeof(dir), "%s", file_final);
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = 0;
	d = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d >= 0) {
		fsync(d);	/* the rename itself on disk */
		close(d);
	}
	return 0;
}

void stream_file_abort(void)
{
	if (file_tmp[0])
		unlink(file_tmp);
	file_tmp[0] = 0;
}

int stream_connect(const char *uri, int timeout_ms, int *ret_fd)
{
	long deadline = now_ms() + timeout_ms;
	int fd, err;

	if (!strncmp(uri, "file:", 5)) {
		if (!uri[5] || strlen(uri + 5) + 8 > sizeof(file_tmp))
			return -EINVAL;
		snprintf(file_final, sizeof(file_final), "%s", uri + 5);
		snprintf(file_tmp, sizeof(file_tmp), "%s.XXXXXX", uri + 5);
		fd = mkostemp(file_tmp, O_CLOEXEC);
		if (fd < 0) {
			file_tmp[0] = 0;
			return -errno;
		}
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
			return err == -ENOENT || err == -ECONNREFUSED ?
			       -ETIMEDOUT : err;
		if (cancelled())
			return -EINTR;
		usleep(10000);
	}
}

/*
 * What may be at the path we are about to bind: nothing, or a socket
 * nobody listens on (left by a process that died), which goes. A file,
 * or a socket something listens on, is not ours to remove.
 */
static int stale_socket(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	if (r == 0 || errno != ECONNREFUSED)
		return -EADDRINUSE;
	return unlink(sa->sun_path) < 0 ? -errno : 0;
}

int stream_accept(const char *uri, int timeout_ms, int *ret_fd)
{
	int lfd, fd, err, one = 1;

	if (!strncmp(uri, "file:", 5)) {
		struct stat st;

		if (!uri[5])
			return -EINVAL;
		/* not blocking in open() on a FIFO nobody writes */
		fd = open(uri + 5, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			return -errno;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			return -EINVAL;	/* a saved state is a regular file */
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		*ret_fd = fd;
		return 0;
	}
	if (!strncmp(uri, "unix:", 5)) {
		struct sockaddr_un sa;
		mode_t old;

		err = unix_addr(uri + 5, &sa);
		if (err < 0)
			return err;
		err = stale_socket(&sa);
		if (err < 0)
			return err;
		lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lfd < 0)
			return -errno;
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

/*
 * Framing (docs/migration.md, "The migration stream"). Version 2, little
 * endian:
 *   header: le64 magic, le32 version, le32 CRC32C of the 12 bytes before
 *   record: le32 type, le32 reserved (0), le64 length,
 *	     le32 header CRC32C (of the 16 bytes before),
 *	     le32 record CRC32C (of the 16 header bytes, then the payload),
 *	     payload
 * The header CRC lets a damaged length be refused before anything is
 * read or allocated for it. Version 1 (read only): host-order u64 magic,
 * u64 version; records u32 type, u32 reserved, u64 length, payload.
 */
#define HDR_LEN		16
#define REC_HDR_LEN	24
#define REC_HDR_V1_LEN	16

static __thread char last_error[192];

static int fail(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}

const char *stream_error(void)
{
	return last_error[0] ? last_error : "no error";
}

const char *stream_rec_name(uint32_t type)
{
	static const char *const names[] = {
		[REC_END] = "end",
		[REC_DESC] = "description",
		[REC_WORKLOAD] = "workload",
		[REC_MEMORY] = "driver memory",
		[REC_DRIVER_VQS] = "driver queues",
		[REC_DEVICE_STATE] = "device state",
		[REC_VERDICT] = "verdict",
		[REC_PLAN] = "plan",
		[REC_PRECOPY_ROUND] = "pre-copy round",
	};

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : NULL;
}

/* "record 'driver memory'" or "record type 9", for messages */
static const char *rec_what(uint32_t type, char *buf, size_t len)
{
	const char *name = stream_rec_name(type);

	if (name)
		snprintf(buf, len, "record '%s'", name);
	else
		snprintf(buf, len, "record type %u", type);
	return buf;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

int stream_put_header(int fd)
{
	uint8_t h[HDR_LEN];

	put_le64(h, STREAM_MAGIC);
	put_le32(h + 8, STREAM_VERSION);
	put_le32(h + 12, crc32c(0, h, 12));
	return io_write_full(fd, h, sizeof(h));
}

int stream_get_header(int fd, int timeout_ms, unsigned int *ret_version)
{
	uint8_t h[HDR_LEN];
	uint64_t magic_v1, version_v1;
	uint32_t version;
	int err = io_read_full(fd, h, sizeof(h), timeout_ms);

	if (err < 0)
		return fail(err, "%s", err == -EPIPE ?
			    "empty or truncated stream" : strerror(-err));
	/* version 1: host order, no check */
	memcpy(&magic_v1, h, 8);
	memcpy(&version_v1, h + 8, 8);
	if (magic_v1 == STREAM_MAGIC && version_v1 == 1) {
		if (ret_version)
			*ret_version = 1;
		return 0;
	}
	if (get_le64(h) != STREAM_MAGIC)
		return fail(-EPROTO, "not a vdpa-user migration stream");
	/* the check first: a damaged version is corruption, not a version */
	if (get_le32(h + 12) != crc32c(0, h, 12))
		return fail(-EBADMSG, "the stream header fails its CRC32C "
			    "check (corrupt)");
	version = get_le32(h + 8);
	if (version != STREAM_VERSION)
		return fail(-EPROTONOSUPPORT, "stream version %u is not "
			    "supported (this build reads 1 and %u)", version,
			    STREAM_VERSION);
	if (ret_version)
		*ret_version = version;
	return 0;
}

int stream_put(int fd, uint32_t type, const void *buf, size_t len)
{
	uint8_t h[REC_HDR_LEN];
	uint32_t hcrc;
	int err;

	put_le32(h, type);
	put_le32(h + 4, 0);
	put_le64(h + 8, len);
	hcrc = crc32c(0, h, 16);
	put_le32(h + 16, hcrc);
	put_le32(h + 20, crc32c(hcrc, buf, len));
	err = io_write_full(fd, h, sizeof(h));
	if (err < 0 || !len)
		return err;
	return io_write_full(fd, buf, len);
}

static uint64_t state_cap = VDPA_STATE_DEFAULT_CAP;

void stream_set_state_cap(uint64_t cap)
{
	state_cap = cap;
}

int stream_get(int fd, unsigned int version, int timeout_ms,
	       uint32_t *ret_type, void **ret_buf, size_t *ret_len)
{
	uint8_t h[REC_HDR_LEN];
	uint32_t type, reserved, hcrc = 0;
	uint64_t len;
	void *buf = NULL;
	char what[48];
	int err;

	*ret_type = UINT32_MAX;
	if (version != 1 && version != STREAM_VERSION)
		return fail(-EINVAL, "no stream version %u", version);
	err = io_read_full(fd, h, version == 1 ? REC_HDR_V1_LEN : REC_HDR_LEN,
			   timeout_ms);
	if (err < 0)
		return fail(err, "%s", err == -EPIPE ?
			    "ended early (truncated)" : strerror(-err));
	if (version == 1) {
		memcpy(&type, h, 4);
		memcpy(&reserved, h + 4, 4);
		memcpy(&len, h + 8, 8);
	} else {
		type = get_le32(h);
		reserved = get_le32(h + 4);
		len = get_le64(h + 8);
		hcrc = get_le32(h + 16);
	}
	*ret_type = type;
	rec_what(type, what, sizeof(what));
	if (version != 1 && hcrc != crc32c(0, h, 16))
		return fail(-EBADMSG, "the header of %s fails its CRC32C check "
			    "(corrupt)", what);
	if (reserved)
		return fail(-EPROTO, "%s has reserved bits set", what);
	if (len > STREAM_RECORD_MAX)
		return fail(-EPROTO, "%s of %llu bytes, over the %llu-byte "
			    "limit", what, (unsigned long long)len,
			    STREAM_RECORD_MAX);
	if ((type == REC_DEVICE_STATE || type == REC_PRECOPY_ROUND) &&
	    len > state_cap)
		return fail(-EFBIG, "%s larger than the %llu-byte cap "
			    "(--max-state)", type == REC_DEVICE_STATE ?
			    "device state" : "pre-copy round",
			    (unsigned long long)state_cap);
	if (len) {
		buf = malloc(len);
		if (!buf)
			return fail(-ENOMEM, "%s of %llu bytes: %s", what,
				    (unsigned long long)len, strerror(ENOMEM));
		err = io_read_full(fd, buf, len, timeout_ms);
		if (err < 0) {
			free(buf);
			return fail(err, "%s %s", what, err == -EPIPE ?
				    "ends early (truncated)" : strerror(-err));
		}
	}
	if (version != 1 && get_le32(h + 20) != crc32c(hcrc, buf, len)) {
		free(buf);
		return fail(-EBADMSG, "%s fails its CRC32C check (corrupt)",
			    what);
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}
