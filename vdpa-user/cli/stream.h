/* SPDX-License-Identifier: MIT */
/*
 * The front-end's migration stream between migrate-out and migrate-in
 * (docs/migration.md, "The migration stream"): typed, length-prefixed
 * records over a unix socket, a TCP connection or a file. Version 2
 * (written) is little endian and checks the header and every record with
 * CRC32C; version 1 (host order, no checks) is still read.
 */
#ifndef VDPA_CLI_STREAM_H
#define VDPA_CLI_STREAM_H

#include <stddef.h>
#include <stdint.h>

#define STREAM_MAGIC	0x3147494d41504456ull	/* "VDPAMIG1" */
#define STREAM_VERSION	2u
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
	/*
	 * source -> destination before SUSPEND: the negotiated features and
	 * ring layout, a state blob without bases
	 */
	REC_PLAN = 7,
	/*
	 * source -> destination while the source runs: one pre-copy round
	 * (vdpa_mig_src_precopy_round), answered by a REC_VERDICT
	 */
	REC_PRECOPY_ROUND = 8,
};

/*
 * uri: unix:PATH, tcp:HOST:PORT, file:PATH. -EINVAL on a malformed uri.
 * file: writes PATH.XXXXXX, which stream_file_commit() (fsync, rename)
 * makes PATH, or stream_file_abort() removes.
 */
int stream_connect(const char *uri, int timeout_ms, int *ret_fd);
int stream_file_commit(int fd);
void stream_file_abort(void);
/* Listen (unix/tcp) and accept one peer, or open the file for reading. */
int stream_accept(const char *uri, int timeout_ms, int *ret_fd);
/* True when the uri is a file: (no peer to talk back). */
int stream_is_file(const char *uri);
/*
 * Waits for a peer (connect, accept, reads) give up with -EINTR once
 * *flag is non-zero (the CLI's Ctrl-C), checked at least every 100 ms.
 */
#include <signal.h>
void stream_set_cancel(const volatile sig_atomic_t *flag);

/* Writes a version STREAM_VERSION header; stream_put() writes its records. */
int stream_put_header(int fd);
/*
 * Reads and checks the header. *ret_version (may be NULL) is the version
 * seen, 1 (no integrity checks: tell the user) or STREAM_VERSION; pass it
 * to every stream_get() on this fd. -EPROTO: not a migration stream,
 * -EBADMSG: the header fails its CRC32C check, -EPROTONOSUPPORT: another
 * version, -EPIPE: empty or truncated.
 */
int stream_get_header(int fd, int timeout_ms, unsigned int *ret_version);
int stream_put(int fd, uint32_t type, const void *buf, size_t len);
/*
 * Largest REC_DEVICE_STATE accepted by stream_get(), checked against the
 * record header before anything is allocated (default
 * VDPA_STATE_DEFAULT_CAP; the CLI's --max-state).
 */
void stream_set_state_cap(uint64_t cap);
/*
 * Reads one record of a stream of the given version; *ret_buf is malloc'd
 * (NULL when len 0). Errors: -EBADMSG when the record (header or payload)
 * fails its CRC32C check, -EPROTO for a record header no writer makes
 * (reserved bits, a length above STREAM_RECORD_MAX), -EFBIG for a device
 * state above the cap, -EPIPE when the stream ends early. Once its header
 * is read, *ret_type is the record's type (as read) even on failure, else
 * UINT32_MAX. Sizes are checked before anything is allocated.
 */
int stream_get(int fd, unsigned int version, int timeout_ms,
	       uint32_t *ret_type, void **ret_buf, size_t *ret_len);
/*
 * One line (no prefix) saying why this thread's last failed
 * stream_get_header() or stream_get() failed, naming the record, e.g.
 * "record 'driver memory' fails its CRC32C check (corrupt)".
 */
const char *stream_error(void);
/* A record type's name for messages ("driver memory"), NULL if unknown. */
const char *stream_rec_name(uint32_t type);

/* Full read/write with a timeout (-ETIMEDOUT); EOF mid-way is -EPIPE. */
int io_write_full(int fd, const void *buf, size_t len);
/* How long io_write_full() waits for a peer that takes nothing (30 s). */
void stream_set_write_timeout(int timeout_ms);
int io_read_full(int fd, void *buf, size_t len, int timeout_ms);

#endif
