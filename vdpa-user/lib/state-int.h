/* SPDX-License-Identifier: MIT */
/* Private to the state code and the transfer FD. */
#ifndef VDPA_LIB_STATE_INT_H
#define VDPA_LIB_STATE_INT_H

#include <stddef.h>

#include <vdpa-user/state.h>

/*
 * vdpa_state_decode() that takes over buf (malloc'd) on success: the
 * device section is not copied but points into it.
 */
int state_decode_owned(void *buf, size_t len, size_t cap,
		       struct vdpa_state **ret, char *errbuf, size_t errlen);

#endif
