/* SPDX-License-Identifier: MIT */
/* Moving a suspended device's own state through the state-fd extension. */
#ifndef VDPA_LIB_STATE_IO_H
#define VDPA_LIB_STATE_IO_H

#include <stddef.h>
#include <stdint.h>

struct vdpa_dev;

/*
 * Read the device's own state (VHOST_VDPA_SET_DEVICE_STATE_FD, SAVE, then
 * VHOST_VDPA_CHECK_DEVICE_STATE) into a malloc'd buffer of at most
 * cap bytes (0: VDPA_STATE_DEFAULT_CAP). 0 with *ret_buf and *ret_len set, or -errno
 * with both untouched.
 */
int state_io_save(struct vdpa_dev *dev, size_t cap, void **ret_buf,
		  size_t *ret_len);

/* Write len bytes of device state into the device (LOAD, then CHECK). */
int state_io_load(struct vdpa_dev *dev, const void *buf, size_t len);

/* Both with another phase (VHOST_TRANSFER_STATE_PHASE_PRECOPY: a round). */
int state_io_save_phase(struct vdpa_dev *dev, uint32_t phase, size_t cap,
			void **ret_buf, size_t *ret_len);
int state_io_load_phase(struct vdpa_dev *dev, uint32_t phase, const void *buf,
			size_t len);

/*
 * The device state of one suspended device straight into another: SAVE
 * on from, LOAD on to, the library splicing one pipe into the other (page
 * references move, no byte is copied or read), at most cap bytes, then
 * CHECK on both. 0 and the length, or the first failure.
 */
int state_io_direct(struct vdpa_dev *from, struct vdpa_dev *to, size_t cap,
		    size_t *ret_len);

/*
 * Make the pipe fd as large as an unprivileged process may
 * (/proc/sys/fs/pipe-max-size, at most 4 MiB): a 64 KiB pipe costs a
 * wakeup of each side per 64 KiB. Best effort; not a pipe: nothing.
 */
void state_io_grow_pipe(int fd);

#endif
