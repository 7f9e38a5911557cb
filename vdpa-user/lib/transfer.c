// SPDX-License-Identifier: MIT
/* Transfer-FD: a writer or reader thread on a pipe-like fd. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <vdpa-user/transfer.h>

#include "io.h"
#include "log.h"
#include "precopy.h"
#include "state-int.h"
#include "state-io.h"

#include "crc32c.h"
#include "prefault.h"

struct vdpa_transfer {
	uint32_t direction;
	int fd;			/* the library's end */
	pthread_t thread;
	bool started, joined;
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	bool done;
	int result;		/* thread's result */
	/* SAVE: the caller's blob in up to 3 pieces (not copied) */
	struct iovec seg[TRANSFER_MAX_SEGS];
	int nseg;
	uint8_t *buf;		/* LOAD: bytes read */
	size_t len, cap;
	size_t moved;
	int timeout_ms;
	const struct vdpa_state *compat_with;
	/* LOAD: CRC32C of buf[0, crc_upto), computed as the bytes arrive so
	 * CHECK does not walk 64 MiB again (the last 4 bytes are the CRC) */
	size_t announced;
	size_t crc_upto;
	uint32_t crc;
	struct prefault *pf;	/* LOAD: faulting the buffer in ahead */
	struct vdpa_state *state;
	bool loaded;		/* LOAD decoded and checked */
	bool precopy;		/* phase PRECOPY: the blob is a round */
	char err[256];
};

static void finish(struct vdpa_transfer *t, int result)
{
	pthread_mutex_lock(&t->lock);
	t->result = result;
	t->done = true;
	pthread_cond_signal(&t->done_cond);
	pthread_mutex_unlock(&t->lock);
}

/* The SAVE pieces from byte off on, as an iovec array (at most nseg). */
static int segs_from(const struct vdpa_transfer *t, size_t off,
		     struct iovec *v)
{
	int i, n = 0;

	for (i = 0; i < t->nseg; i++) {
		size_t l = t->seg[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		v[n].iov_base = (uint8_t *)t->seg[i].iov_base + off;
		v[n++].iov_len = l - off;
		off = 0;
	}
	return n;
}

static void *writer(void *arg)
{
	struct vdpa_transfer *t = arg;
	struct iovec v[TRANSFER_MAX_SEGS];
	sigset_t set;
	int err = 0;

	/* EPIPE instead of death when the reader goes away */
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	while (t->moved < t->len) {
		/* SIGPIPE is blocked in this thread: EPIPE instead */
		ssize_t n = writev(t->fd, v, segs_from(t, t->moved, v));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = vdpa_write_err(errno);
			break;
		}
		__atomic_add_fetch(&t->moved, (size_t)n, __ATOMIC_RELAXED);
	}
	/* EOF for the reader */
	close(t->fd);
	t->fd = -1;
	finish(t, err);
	return NULL;
}

/*
 * Fault in a fresh receive buffer with one madvise() instead of a page
 * fault per 4 KiB as the reads land (most of a 64 MiB load's time on
 * these VMs). Best effort: older kernels lack MADV_POPULATE_WRITE.
 */
#define HUGE_SZ (2u << 20)
#define AHEAD	(8u << 20)	/* populated ahead of the data, at most */

static void prefault(void *p, size_t len)
{
	uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
	uintptr_t e = ((uintptr_t)p + len) & ~(uintptr_t)4095;

	if (e > a)
		madvise((void *)a, e - a, 23 /* MADV_POPULATE_WRITE */);
}

/*
 * A receive buffer for an announced length: 2 MiB aligned when large and
 * marked for transparent huge pages. Only address space until the data
 * comes: the reader populates it just ahead of the bytes (AHEAD), so a
 * header announcing a large state commits nothing by itself.
 */
static uint8_t *sized_buffer(const uint8_t *old, size_t have, size_t size)
{
	void *p;

	if (posix_memalign(&p, size >= HUGE_SZ ? HUGE_SZ : 64, size))
		return NULL;
	if (size >= HUGE_SZ)	/* THP "madvise" mode: 2 MiB pages */
		madvise(p, size & ~(size_t)(HUGE_SZ - 1), MADV_HUGEPAGE);
	memcpy(p, old, have);
	return p;
}

/* Also when the reader is cancelled: stop the helper before the buffer goes. */
static void reader_cleanup(void *arg)
{
	struct vdpa_transfer *t = arg;

	vdpa_prefault_stop(t->pf);
	t->pf = NULL;
}

/* Read to EOF, an error, or more than the cap: 0 or -errno. */
static int read_all(struct vdpa_transfer *t)
{
	size_t sz = 0, populated = 0;
	bool sized = false;
	int err = 0;

	for (;;) {
		ssize_t n;

		/*
		 * Once the header is in, size the buffer for the announced
		 * length (+1 to see a longer stream) if it is within the cap;
		 * otherwise keep doubling up to cap + 1.
		 */
		if (!sized && t->len >= 24) {
			size_t want = state_blob_announced(t->buf, t->len);

			sized = true;
			t->announced = want >= 4 ? want : 0;
			if (want > sz && want <= t->cap) {
				uint8_t *nb = sized_buffer(t->buf, t->len,
							   want + 1);

				if (nb) {
					free(t->buf);
					t->buf = nb;
					sz = want + 1;
					populated = t->len;
					/* large: zeroed beside the reads,
					 * fewer wakeups per MiB */
					if (sz >= AHEAD) {
						t->pf = vdpa_prefault_start(
							nb, sz, AHEAD);
						state_io_grow_pipe(t->fd);
					}
				}
			}
		}
		if (t->len == sz) {
			size_t nsz = sz ? sz * 2 : 65536;
			uint8_t *nb;

			if (sz >= t->cap + 1) {
				err = -EFBIG;
				break;
			}
			if (nsz > t->cap + 1)
				nsz = t->cap + 1;	/* +1: see a too-long one */
			nb = realloc(t->buf, nsz);
			if (!nb) {
				err = -ENOMEM;
				break;
			}
			t->buf = nb;
			sz = nsz;
		}
		/* keep up to AHEAD populated in front of the data */
		if (populated && !t->pf && populated < sz &&
		    populated - t->len < AHEAD / 2) {
			size_t end = sz - t->len > AHEAD ? t->len + AHEAD : sz;

			prefault(t->buf + populated, end - populated);
			populated = end;
		}
		n = read(t->fd, t->buf + t->len, sz - t->len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		t->len += (size_t)n;
		__atomic_store_n(&t->moved, t->len, __ATOMIC_RELAXED);
		vdpa_prefault_progress(t->pf, t->len);
		if (t->announced) {
			size_t end = t->len < t->announced - 4 ? t->len :
				     t->announced - 4;

			if (end > t->crc_upto) {
				t->crc = crc32c(t->crc, t->buf + t->crc_upto,
						end - t->crc_upto);
				t->crc_upto = end;
			}
		}
		if (t->len > t->cap) {
			err = -EFBIG;
			break;
		}
	}
	return err;
}

static void *reader(void *arg)
{
	struct vdpa_transfer *t = arg;
	int err;

	pthread_cleanup_push(reader_cleanup, t);
	err = read_all(t);
	pthread_cleanup_pop(1);
	if (err < 0) {
		/* the writer gets EPIPE instead of blocking on a full channel */
		close(t->fd);
		t->fd = -1;
	}
	finish(t, err);
	return NULL;
}

/*
 * Small states usually fit in the channel (a pipe holds 64 KiB): write
 * without blocking and skip the thread. True when everything was written.
 */
static bool save_now(struct vdpa_transfer *t)
{
	int fl = fcntl(t->fd, F_GETFL);
	ssize_t n;

	if (fl < 0 || fcntl(t->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return false;
	do {
		struct msghdr mh = { .msg_iov = t->seg,
				     .msg_iovlen = (size_t)t->nseg };

		n = sendmsg(t->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == ENOTSOCK)
			n = vdpa_writev_nosigpipe(t->fd, t->seg, t->nseg);
	} while (n < 0 && errno == EINTR);
	fcntl(t->fd, F_SETFL, fl);
	if (n > 0)
		t->moved = (size_t)n;
	if (t->moved < t->len)
		return false;	/* the writer thread does the rest */
	close(t->fd);
	t->fd = -1;
	t->done = true;
	t->joined = true;	/* no thread to join */
	return true;
}

uint64_t vdpa_transfer_reply(int err, int returned_fd)
{
	uint64_t v = (uint64_t)(err < 0 ? -err : err) & 0xff;

	if (returned_fd < 0)
		v |= 1ull << 8;
	return v;
}

int vdpa_transfer_set_fd(uint32_t direction, uint32_t phase, int fd,
			 const void *blob, size_t len,
			 const struct vdpa_transfer_opts *opts,
			 struct vdpa_transfer **ret_t, int *ret_fd)
{
	struct iovec v = { (void *)blob, len };

	if (direction == VDPA_TRANSFER_SAVE && !blob && len) {
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	return transfer_set_fd_iov(direction, phase, fd, &v,
				   direction == VDPA_TRANSFER_SAVE ? 1 : 0,
				   opts, ret_t, ret_fd);
}

int transfer_set_fd_iov(uint32_t direction, uint32_t phase, int fd,
			const struct iovec *iov, int niov,
			const struct vdpa_transfer_opts *opts,
			struct vdpa_transfer **ret_t, int *ret_fd)
{
	struct vdpa_transfer *t;
	int pfd[2] = { -1, -1 }, fd_taken = -1, err, i;

	if (!ret_t || !ret_fd ||
	    (direction != VDPA_TRANSFER_SAVE && direction != VDPA_TRANSFER_LOAD) ||
	    niov < 0 || niov > TRANSFER_MAX_SEGS || (niov && !iov)) {
		err = -EINVAL;
		goto err_close_fd;
	}
	for (i = 0; i < niov; i++) {
		if (!iov[i].iov_base && iov[i].iov_len) {
			err = -EINVAL;
			goto err_close_fd;
		}
	}
	if (phase != VDPA_TRANSFER_PHASE_STOPPED &&
	    phase != VDPA_TRANSFER_PHASE_PRECOPY) {
		err = -EOPNOTSUPP;
		goto err_close_fd;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		err = -ENOMEM;
		goto err_close_fd;
	}
	t->direction = direction;
	t->precopy = phase == VDPA_TRANSFER_PHASE_PRECOPY;
	t->fd = -1;
	t->cap = opts && opts->cap ? opts->cap : VDPA_STATE_DEFAULT_CAP;
	if (t->cap > SIZE_MAX - 1)
		t->cap = SIZE_MAX - 1;	/* the reader needs room for cap + 1 */
	t->timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : 30000;
	t->compat_with = opts ? opts->compat_with : NULL;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->done_cond, NULL);
	if (direction == VDPA_TRANSFER_SAVE) {
		for (i = 0; i < niov; i++) {
			if (!iov[i].iov_len)
				continue;
			t->seg[t->nseg++] = iov[i];
			t->len += iov[i].iov_len;
		}
	}
	if (fd >= 0) {
		t->fd = fd;
		fd_taken = fd;
		fd = -1;
	} else {
		if (pipe2(pfd, O_CLOEXEC) < 0) {
			err = -errno;
			goto err_free;
		}
		/* SAVE: we write pfd[1], they read pfd[0]; LOAD: reverse */
		t->fd = direction == VDPA_TRANSFER_SAVE ? pfd[1] : pfd[0];
	}
	if (direction == VDPA_TRANSFER_SAVE && save_now(t)) {
		/* all of it fit in the channel: no thread needed */
		*ret_fd = fd_taken >= 0 ? -1 : pfd[0];
		*ret_t = t;
		return 0;
	}
	err = -pthread_create(&t->thread, NULL,
			      direction == VDPA_TRANSFER_SAVE ? writer : reader,
			      t);
	if (err < 0)
		goto err_close;
	t->started = true;
	*ret_fd = fd_taken >= 0 ? -1 :
		  direction == VDPA_TRANSFER_SAVE ? pfd[0] : pfd[1];
	*ret_t = t;
	return 0;

err_close:
	if (pfd[0] >= 0) {
		close(pfd[0]);
		close(pfd[1]);
		t->fd = -1;
	}
err_free:
	if (t->fd >= 0)
		close(t->fd);
	free(t->buf);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->done_cond);
	free(t);
err_close_fd:
	if (fd >= 0)
		close(fd);
	return err;
}

/* Wait for the thread; on timeout stop it. 0 or -ETIMEDOUT. */
static int wait_done(struct vdpa_transfer *t, int timeout_ms)
{
	struct timespec ts;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&t->lock);
	while (!t->done && r == 0)
		r = pthread_cond_timedwait(&t->done_cond, &t->lock, &ts);
	pthread_mutex_unlock(&t->lock);
	if (!t->done) {
		/* blocked in read/write (cancellation points): stop it */
		pthread_cancel(t->thread);
		pthread_join(t->thread, NULL);
		t->joined = true;
		return -ETIMEDOUT;
	}
	pthread_join(t->thread, NULL);
	t->joined = true;
	return 0;
}

int vdpa_transfer_check(struct vdpa_transfer *t)
{
	int err;

	if (!t)
		return -EINVAL;
	if (!t->joined) {
		err = wait_done(t, t->timeout_ms);
		if (err < 0) {
			snprintf(t->err, sizeof(t->err), "%s did not finish "
				 "within %d ms", t->direction ==
				 VDPA_TRANSFER_SAVE ? "reader" : "writer",
				 t->timeout_ms);
			t->result = err;
			return err;
		}
	}
	if (t->result < 0) {
		if (!t->err[0])
			snprintf(t->err, sizeof(t->err), "transfer failed: %s",
				 t->result == -EFBIG ? "state exceeds the cap" :
				 strerror(-t->result));
		return t->result;
	}
	if (t->direction == VDPA_TRANSFER_LOAD && !t->loaded && t->precopy) {
		/* a round: its framing here, its content at apply */
		err = precopy_record_check(t->buf, t->len, t->err,
					   sizeof(t->err));
		if (err < 0) {
			t->result = err;
			return err;
		}
		t->loaded = true;
	}
	if (t->direction == VDPA_TRANSFER_LOAD && !t->loaded) {
		bool crc_ok = t->announced && t->len == t->announced &&
			      t->crc_upto == t->len - 4;

		err = state_decode_owned(t->buf, t->len, t->cap,
					 crc_ok ? &t->crc : NULL, &t->state,
					 t->err, sizeof(t->err));
		if (!err)
			t->buf = NULL;	/* the state owns it now */
		/* the load check, without the device: backend features and
		 * driver memory are checked by the load itself */
		if (!err && t->compat_with)
			err = state_check_target(t->state, t->compat_with, 0,
						 NULL, t->err, sizeof(t->err));
		if (err < 0) {
			vdpa_state_free(t->state);
			t->state = NULL;
			t->result = err;
			return err;
		}
		t->loaded = true;	/* a later CHECK answers 0 again */
	}
	return 0;
}

const char *vdpa_transfer_error(const struct vdpa_transfer *t)
{
	return t && t->err[0] ? t->err : "";
}

struct vdpa_state *vdpa_transfer_take_state(struct vdpa_transfer *t)
{
	struct vdpa_state *s = t ? t->state : NULL;

	if (t)
		t->state = NULL;
	return s;
}

int vdpa_transfer_take_round(struct vdpa_transfer *t, void **ret_buf,
			     size_t *ret_len)
{
	if (!t || !ret_buf || !ret_len || !t->precopy || !t->loaded ||
	    !t->buf)
		return -ENODATA;
	*ret_buf = t->buf;
	*ret_len = t->len;
	t->buf = NULL;
	return 0;
}

size_t vdpa_transfer_bytes(const struct vdpa_transfer *t)
{
	return t ? __atomic_load_n(&t->moved, __ATOMIC_RELAXED) : 0;
}

void vdpa_transfer_free(struct vdpa_transfer *t)
{
	if (!t)
		return;
	if (t->started && !t->joined) {
		pthread_cancel(t->thread);
		pthread_join(t->thread, NULL);
	}
	if (t->fd >= 0)
		close(t->fd);
	vdpa_state_free(t->state);
	free(t->buf);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->done_cond);
	free(t);
}
