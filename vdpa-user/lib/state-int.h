/* SPDX-License-Identifier: MIT */
/* Private to the state code and the transfer FD. */
#ifndef VDPA_LIB_STATE_INT_H
#define VDPA_LIB_STATE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <vdpa-user/state.h>

#include <stdint.h>

/*
 * vdpa_state_decode() that takes over buf (malloc'd) on success: the
 * device section is not copied but points into it. crc_done: the CRC32C
 * of buf[0, len - 4) if the caller already computed it (as the bytes
 * arrived), else NULL.
 */
int state_decode_owned(void *buf, size_t len, size_t cap,
		       const uint32_t *crc_done, struct vdpa_state **ret,
		       char *errbuf, size_t errlen);

/*
 * The total length a blob's header announces, or 0 when buf (len bytes
 * read so far) does not start with a state header. For sizing a receive
 * buffer once; the decoder checks everything again.
 */
size_t state_blob_announced(const void *buf, size_t len);

struct vdpa_mem;

/*
 * The load check without a device (state-check.c; docs/state-format.md,
 * "What a load refuses"): would s load into a device described by dst_desc
 * (vdpa_state_describe; NULL: not compared) offering dst_backend_offered
 * backend features (0: unknown, the backend-feature rules are skipped),
 * with the rings in mem (NULL: no memory rule)? 0, or a negative errno
 * and one line in errbuf. vdpa_state_check_load() gives the same verdict.
 */
int state_check_target(const struct vdpa_state *s,
		       const struct vdpa_state *dst_desc,
		       uint64_t dst_backend_offered, const struct vdpa_mem *mem,
		       char *errbuf, size_t errlen);

/*
 * vdpa_state_check_load() with the destination's description already
 * taken (dst_desc; NULL: described now). Only reads from dev.
 */
int state_check_dev(struct vdpa_dev *dev, const struct vdpa_state *s,
		    const struct vdpa_state *dst_desc,
		    const struct vdpa_mem *mem, char *errbuf, size_t errlen);

/*
 * Untrusted text (a model URI: s, up to len bytes or a NUL) made safe to
 * print: bytes other than printable ASCII, and the backslash, as escapes.
 * Text: \\ \n \r \t \xNN; json: RFC 8259 (\" \\ \n \r \t \u00XX,
 * bytes >= 0x7f included, so the result is ASCII). out is always
 * NUL-terminated, cut only between escapes. Returns out.
 */
char *state_escape(char *out, size_t outlen, const char *s, size_t len,
		   bool json);
#define STATE_ESCAPED_MAX	(6 * VDPA_STATE_MODEL_MAX)

/*
 * The queues whose size and addresses were set through dev (the shadow),
 * into s->q (bases and used indexes 0); s->cfg.vq_count bounds them.
 */
void state_queues_from_shadow(struct vdpa_dev *dev, struct vdpa_state *s);

/*
 * vdpa_state_encode() without copying the device's own state: *ret_head
 * (malloc'd) is the blob up to the device section's payload, which is
 * s->device itself, and ret_crc the 4 bytes that end the blob. The blob
 * is head, s->device_len bytes of s->device, crc.
 */
int state_encode_split(const struct vdpa_state *s, void **ret_head,
		       size_t *ret_head_len, uint8_t ret_crc[4]);

/*
 * vdpa_transfer_set_fd() with the SAVE blob in up to TRANSFER_MAX_SEGS
 * pieces (a split-encoded state: head, device state, CRC), none copied;
 * niov 0 for LOAD.
 */
#define TRANSFER_MAX_SEGS	3
struct iovec;
struct vdpa_transfer;
struct vdpa_transfer_opts;
int transfer_set_fd_iov(uint32_t direction, uint32_t phase, int fd,
			const struct iovec *iov, int niov,
			const struct vdpa_transfer_opts *opts,
			struct vdpa_transfer **ret_t, int *ret_fd);

/* The control queue of a net state, or UINT32_MAX. */
uint32_t state_cvq_index(const struct vdpa_state *s);

/*
 * Kick every queue of s given an eventfd in fds (by queue index, -1:
 * none): chains published while the device was moved or stopped.
 */
void state_kick_fds(const struct vdpa_state *s, const int *fds);

/* What a migration's load adds to vdpa_state_load_device(). */
struct load_ext {
	/* out: when DRIVER_OK was set (CLOCK_MONOTONIC ns), START begins */
	uint64_t start_ns;
	/*
	 * The device's own state is not in the state: it comes straight
	 * from this suspended device (state_io_direct), and counts as
	 * carried (no class-state replay).
	 */
	struct vdpa_dev *device_from;
	size_t device_cap;	/* at most so many bytes of it */
	size_t device_len;	/* out: how many came */
};

/* vdpa_state_load_device() for a migration (x may be NULL). */
int state_load_ext(struct vdpa_dev *dev, const struct vdpa_state *s,
		   const struct vdpa_load_hooks *hooks, struct load_ext *x,
		   char *errbuf, size_t errlen);

/*
 * vdpa_state_save_device() without the device's own state (with_device
 * false: it will go device to device), or with at most cap bytes of it.
 */
int state_save(struct vdpa_dev *dev, const struct vdpa_state *desc,
	       bool with_device, size_t cap, struct vdpa_state **ret);

#endif
