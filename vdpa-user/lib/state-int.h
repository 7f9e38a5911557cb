/* SPDX-License-Identifier: MIT */
/* Private to the state code and the transfer FD. */
#ifndef VDPA_LIB_STATE_INT_H
#define VDPA_LIB_STATE_INT_H

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

#endif
