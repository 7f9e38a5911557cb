// SPDX-License-Identifier: MIT
/* The device's own state in and out through the state-fd extension. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <vdpa-user/state.h>
#include <vdpa-user/uapi-ext.h>

#include "device.h"
#include "io.h"
#include "log.h"
#include "state-io.h"

#include "prefault.h"

#define STATE_IO_TIMEOUT_MS	10000
#define SMALL		65536u		/* first read buffer */
#define MID		(1u << 20)	/* then this, before the large path */
#define HUGE_SZ		(2u << 20)
#define AHEAD		(8u << 20)	/* populated ahead of the data */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif

void state_io_grow_pipe(int fd)
{
	static int max;
	int cur = fcntl(fd, F_GETPIPE_SZ);

	if (cur < 0)
		return;		/* not a pipe */
	if (!max) {
		int m = 0;
		FILE *f = fopen("/proc/sys/fs/pipe-max-size", "re");

		if (!f || fscanf(f, "%d", &m) != 1 || m <= 0)
			m = 1 << 20;
		if (f)
			fclose(f);
		max = m > 4 << 20 ? 4 << 20 : m;
	}
	if (cur < max)
		fcntl(fd, F_SETPIPE_SZ, max);	/* best effort */
}

/* Fault in [p, p + len) with one call (whole pages inside it only). */
static void populate(uint8_t *p, size_t len)
{
	uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
	uintptr_t e = ((uintptr_t)p + len) & ~(uintptr_t)4095;

	if (e > a)
		madvise((void *)a, e - a, MADV_POPULATE_WRITE);
}

/*
 * Read fd to EOF into a malloc'd buffer, at most cap bytes.
 *
 * Most device states are a few hundred bytes: the first 64 KiB go into a
 * small buffer. A larger one (a blk write-back cache: tens of MB) gets one
 * buffer of cap + 1 bytes, address space only until the data comes: 2 MiB
 * aligned, advised for transparent huge pages and faulted in at most AHEAD
 * of the data by a helper thread (common/prefault.h), instead of realloc
 * copies and a page fault per 4 KiB (most of a 64 MiB save's time before);
 * the unused tail is given back at the end. The fd is read non-blocking,
 * with poll() only when it is empty.
 */
static int read_to_eof(int fd, size_t cap, void **ret_buf, size_t *ret_len)
{
	size_t len = 0, sz = SMALL > cap + 1 ? cap + 1 : SMALL, populated = 0;
	struct prefault *pf = NULL;
	uint8_t *buf = malloc(sz);
	int fl = fcntl(fd, F_GETFL), err;

	if (!buf)
		return -ENOMEM;
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	for (;;) {
		ssize_t n;

		if (len == sz) {
			void *nb;

			/* room for cap + 1: a state of exactly cap bytes is
			 * accepted, one byte more is seen and refused */
			if (sz > cap) {
				err = -EFBIG;
				goto err_free;
			}
			/*
			 * Up to 1 MiB (what a pre-copy leaves for the
			 * downtime) a plain buffer: the large path's
			 * address space and helper thread cost more than
			 * the copy here.
			 */
			if (sz == SMALL && cap + 1 > MID) {
				nb = realloc(buf, MID);
				if (!nb) {
					err = -ENOMEM;
					goto err_free;
				}
				buf = nb;
				sz = MID;
				continue;
			}
			if (posix_memalign(&nb, HUGE_SZ, cap + 1)) {
				err = -ENOMEM;
				goto err_free;
			}
			madvise(nb, (cap + 1) & ~(size_t)(HUGE_SZ - 1),
				MADV_HUGEPAGE);
			memcpy(nb, buf, len);
			free(buf);
			buf = nb;
			sz = cap + 1;
			populated = len;
			state_io_grow_pipe(fd);
			pf = vdpa_prefault_start(buf, sz, AHEAD);
		}
		if (populated && !pf && populated < sz &&
		    populated - len < AHEAD / 2) {
			size_t end = sz - len > AHEAD ? len + AHEAD : sz;

			populate(buf + populated, end - populated);
			populated = end;
		}
		n = read(fd, buf + len, sz - len);
		if (n > 0) {
			len += (size_t)n;
			vdpa_prefault_progress(pf, len);
			continue;
		}
		if (n == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLIN };

			err = poll(&p, 1, STATE_IO_TIMEOUT_MS);
			if (err == 0) {
				err = -ETIMEDOUT;
				goto err_free;
			}
			if (err < 0 && errno != EINTR) {
				err = -errno;
				goto err_free;
			}
			continue;
		}
		err = -errno;
		goto err_free;
	}
	vdpa_prefault_stop(pf);
	pf = NULL;
	if (len > cap) {
		err = -EFBIG;
		goto err_free;
	}
	if (sz > SMALL) {
		/* an mmap'd chunk shrinks in place (mremap) */
		void *nb = realloc(buf, len ? len : 1);

		if (nb)
			buf = nb;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;

err_free:
	vdpa_prefault_stop(pf);
	free(buf);
	return err;
}

/*
 * All of buf into the pipe fd. vmsplice() hands the pages to the pipe
 * instead of copying them into it (the device's read() is then the only
 * copy); they must stay unchanged until the device has read them. It has
 * when CHECK succeeds; when the load fails, vdpa_state_load_device()
 * resets the device, which ends the transfer and closes its end, so no
 * page is left in the pipe either way. Not a pipe: write(). Never SIGPIPE.
 */
/* Wait for fd (events), at most STATE_IO_TIMEOUT_MS: 0 or -ETIMEDOUT. */
static int wait_io(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	do
		n = poll(&p, 1, STATE_IO_TIMEOUT_MS);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n ? 0 : -ETIMEDOUT;
}

/* Block SIGPIPE in this thread; remember whether one was pending. */
static bool sigpipe_block(sigset_t *set, sigset_t *old)
{
	sigset_t pending;

	sigemptyset(set);
	sigaddset(set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, set, old);
	sigpending(&pending);
	return sigismember(&pending, SIGPIPE);
}

/* Consume the SIGPIPE an EPIPE raised (not one already pending), unblock. */
static void sigpipe_restore(int err, bool was_pending, const sigset_t *set,
			    const sigset_t *old)
{
	static const struct timespec zero;

	if (err == -EPIPE && !was_pending)
		while (sigtimedwait(set, NULL, &zero) < 0 && errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

static int splice_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	sigset_t set, old;
	bool was_pending = sigpipe_block(&set, &old);
	int err = 0;

	while (len) {
		struct iovec v = { .iov_base = (void *)p, .iov_len = len };
		ssize_t n = vmsplice(fd, &v, 1, SPLICE_F_NONBLOCK);

		if (n < 0 && errno == EINTR)
			continue;
		/* a device that stops reading without closing: bounded */
		if (n < 0 && errno == EAGAIN) {
			err = wait_io(fd, POLLOUT);
			if (err < 0)
				break;
			continue;
		}
		if (n < 0 && (errno == EBADF || errno == EINVAL) &&
		    p == buf) {
			err = 1;	/* not a pipe */
			break;
		}
		if (n < 0) {
			err = vdpa_write_err(errno);
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	sigpipe_restore(err, was_pending, &set, &old);
	return err > 0 ? vdpa_write_all(fd, buf, len) : err;
}

/* The device's own state through the proposed extension. */
int state_io_save(struct vdpa_dev *dev, size_t cap, void **ret_buf,
		  size_t *ret_len)
{
	return state_io_save_phase(dev, VHOST_TRANSFER_STATE_PHASE_STOPPED, cap,
				   ret_buf, ret_len);
}

int state_io_save_phase(struct vdpa_dev *dev, uint32_t phase, size_t cap,
			void **ret_buf, size_t *ret_len)
{
	struct vhost_vdpa_device_state_fd a = {
		.direction = VHOST_TRANSFER_STATE_DIRECTION_SAVE,
		.phase = phase,
	};
	int pfd[2], rfd, err, err2;
	void *buf = NULL;
	size_t len = 0;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	a.fd = pfd[1];
	err = vdpa_dev_call(dev, VHOST_VDPA_SET_DEVICE_STATE_FD, &a);
	close(pfd[1]);
	if (err < 0) {
		close(pfd[0]);
		return err;
	}
	/* the device may hand back its own fd to read from */
	rfd = a.fd >= 0 ? a.fd : pfd[0];
	if (a.fd >= 0)
		close(pfd[0]);
	err = read_to_eof(rfd, cap ? cap : VDPA_STATE_DEFAULT_CAP, &buf, &len);
	close(rfd);
	err2 = vdpa_dev_call(dev, VHOST_VDPA_CHECK_DEVICE_STATE, NULL);
	if (err < 0 || err2 < 0) {
		/* ret_* stay untouched: the caller frees nothing of ours */
		free(buf);
		vdpa_log(LOG_ERR, "%s: saving device state: %s", dev->name,
			 strerror(-(err < 0 ? err : err2)));
		return err < 0 ? err : err2;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

int state_io_load(struct vdpa_dev *dev, const void *buf, size_t len)
{
	return state_io_load_phase(dev, VHOST_TRANSFER_STATE_PHASE_STOPPED, buf,
				   len);
}

int state_io_load_phase(struct vdpa_dev *dev, uint32_t phase, const void *buf,
			size_t len)
{
	struct vhost_vdpa_device_state_fd a = {
		.direction = VHOST_TRANSFER_STATE_DIRECTION_LOAD,
		.phase = phase,
	};
	int pfd[2], wfd, err, err2;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	if (len >= SMALL)
		state_io_grow_pipe(pfd[1]);
	a.fd = pfd[0];
	err = vdpa_dev_call(dev, VHOST_VDPA_SET_DEVICE_STATE_FD, &a);
	close(pfd[0]);
	if (err < 0) {
		close(pfd[1]);
		return err;
	}
	wfd = a.fd >= 0 ? a.fd : pfd[1];
	if (a.fd >= 0)
		close(pfd[1]);
	/* the device reads concurrently; EPIPE if it stopped reading */
	err = len >= SMALL ? splice_all(wfd, buf, len) :
			     vdpa_write_all(wfd, buf, len);
	close(wfd);
	err2 = vdpa_dev_call(dev, VHOST_VDPA_CHECK_DEVICE_STATE, NULL);
	return err2 < 0 ? err2 : err;
}

/*
 * Move what rfd yields into wfd in the kernel (pipe to pipe: page
 * references move, no byte is copied), counting, at most cap bytes.
 */
static int pump(int rfd, int wfd, size_t cap, size_t *moved)
{
	for (;;) {
		ssize_t n = splice(rfd, NULL, wfd, NULL, 1 << 20,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		struct pollfd w = { .fd = wfd, .events = POLLOUT };
		int err;

		if (n == 0)
			return 0;
		if (n > 0) {
			*moved += (size_t)n;
			if (*moved > cap)
				return -EFBIG;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return vdpa_write_err(errno);
		/*
		 * Nothing to move: the source has not written yet, or the
		 * destination is full. Wait for the side that blocks, at most
		 * STATE_IO_TIMEOUT_MS (a device that neither writes nor
		 * closes, or stops reading, must not hang the migration).
		 */
		if (poll(&w, 1, 0) == 1)
			err = wait_io(rfd, POLLIN);
		else
			err = wait_io(wfd, POLLOUT);
		if (err < 0)
			return err;
	}
}

/* SET_DEVICE_STATE_FD with our pipe end; the device's own fd if it gave one. */
static int hand_fd(struct vdpa_dev *dev, uint32_t dir, int fd, int *ret_fd)
{
	struct vhost_vdpa_device_state_fd a = {
		.direction = dir,
		.phase = VHOST_TRANSFER_STATE_PHASE_STOPPED,
		.fd = fd,
	};
	int err = vdpa_dev_call(dev, VHOST_VDPA_SET_DEVICE_STATE_FD, &a);

	*ret_fd = err < 0 ? -1 : a.fd;
	return err;
}

int state_io_direct(struct vdpa_dev *from, struct vdpa_dev *to, size_t cap,
		    size_t *ret_len)
{
	int in[2], out[2], rfd, wfd, own, err, err2;
	size_t moved = 0;

	if (pipe2(in, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(out, O_CLOEXEC) < 0) {
		err = -errno;
		close(in[0]);
		close(in[1]);
		return err;
	}
	state_io_grow_pipe(in[1]);
	state_io_grow_pipe(out[1]);
	/* the destination reads out[0] (or its own), the source writes in[1] */
	err = hand_fd(to, VHOST_TRANSFER_STATE_DIRECTION_LOAD, out[0], &own);
	close(out[0]);
	wfd = own >= 0 ? own : out[1];
	if (own >= 0)
		close(out[1]);
	if (err < 0) {
		close(wfd);
		close(in[0]);
		close(in[1]);
		return err;
	}
	err = hand_fd(from, VHOST_TRANSFER_STATE_DIRECTION_SAVE, in[1], &own);
	close(in[1]);
	rfd = own >= 0 ? own : in[0];
	if (own >= 0)
		close(in[0]);
	if (!err) {
		sigset_t set, old;
		bool was_pending = sigpipe_block(&set, &old);

		/* EPIPE, never death, when the destination stops reading */
		err = pump(rfd, wfd, cap, &moved);
		sigpipe_restore(err, was_pending, &set, &old);
	}
	close(rfd);
	close(wfd);	/* EOF for the destination */
	err2 = vdpa_dev_call(from, VHOST_VDPA_CHECK_DEVICE_STATE, NULL);
	if (!err)
		err = err2;
	/* the destination saw EOF (or a short state): its verdict */
	err2 = vdpa_dev_call(to, VHOST_VDPA_CHECK_DEVICE_STATE, NULL);
	if (!err && err2 < 0)
		err = err2;
	if (!err)
		*ret_len = moved;
	return err;
}
