/* SPDX-License-Identifier: MIT */
/*
 * The front-end's migration stream between migrate-out and migrate-in
 * (docs/migration.md, "The migration stream"): typed, length-prefixed records over a unix
 * socket, a TCP connection or a file.
 */
#ifndef VDPA_CLI_STREAM_H
#define VDPA_CLI_STREAM_H

#include <stddef.h>
#include <stdint.h>

#define STREAM_MAGIC	0x3147494d41504456ull	/* "VDPAMIG1" */
#define STREAM_VERSION	1u
/* Largest record accepted by stream_get(); the device state has its own cap. */
#define STREAM_RECORD_MAX (1024ull * 1024 * 1024)

enum stream_rec {
	REC_END = 0,		/* empty, last record */
	REC_DESC = 1,		/* destination -> source: device description */
	REC_WORKLOAD = 2,	/* traffic generator state */
	REC_MEMORY = 3,		/* driver memory image */
	REC_DRIVER_VQS = 4,	/* driver-side virtqueue bookkeeping */
	REC_DEVICE_STATE = 5,	/* the vdpa state blob (docs/state-format.md) */
	REC_VERDICT = 6,	/* destination -> source: i32 0 or -errno + text */
};

/* uri: unix:PATH, tcp:HOST:PORT, file:PATH. -EINVAL on a malformed uri. */
int stream_connect(const char *uri, int timeout_ms, int *ret_fd);
/* Listen (unix/tcp) and accept one peer, or open the file for reading. */
int stream_accept(const char *uri, int timeout_ms, int *ret_fd);
/* True when the uri is a file: (no peer to talk back). */
int stream_is_file(const char *uri);

int stream_put_header(int fd);
int stream_get_header(int fd, int timeout_ms);
int stream_put(int fd, uint32_t type, const void *buf, size_t len);
/*
 * Largest REC_DEVICE_STATE accepted by stream_get(), checked against the
 * record header before anything is allocated (default
 * VDPA_STATE_DEFAULT_CAP; the CLI's --max-state).
 */
void stream_set_state_cap(uint64_t cap);
/*
 * Reads one record; *ret_buf is malloc'd (NULL when len 0). -EFBIG for a
 * device state above the cap, -EBADMSG for a malformed header.
 */
int stream_get(int fd, int timeout_ms, uint32_t *ret_type, void **ret_buf,
	       size_t *ret_len);

/* Full read/write with a timeout (-ETIMEDOUT); EOF mid-way is -EPIPE. */
int io_write_full(int fd, const void *buf, size_t len);
int io_read_full(int fd, void *buf, size_t len, int timeout_ms);

#endif
