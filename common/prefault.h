/* SPDX-License-Identifier: MIT */
#ifndef VDPA_COMMON_PREFAULT_H
#define VDPA_COMMON_PREFAULT_H

#include <stddef.h>

/*
 * Fault in a fresh receive buffer from a helper thread, a bounded distance
 * ahead of the reader. Zeroing new memory costs about as much as copying
 * into it (12 ms per 64 MiB on the 2-core VMs here, in 2 MiB pages); done
 * by the reader it comes on top of its copy and CRC, done here it runs
 * beside them, on the core a writer blocked on a full pipe leaves idle.
 * Best effort (MADV_POPULATE_WRITE, Linux 5.14): a page the thread has not
 * reached yet is faulted in by the reader's own access as usual.
 */
struct prefault;

/*
 * Populate [buf, buf + size), never more than ahead bytes past the
 * progress reported, nor (beyond the first 2 MiB) more than has come so
 * far. NULL when no thread could be started: the caller goes on without
 * one.
 */
struct prefault *vdpa_prefault_start(void *buf, size_t size, size_t ahead);
/* The reader has data up to offset len. */
void vdpa_prefault_progress(struct prefault *pf, size_t len);
/* Stop the thread (after its current step of at most 2 MiB) and free pf. */
void vdpa_prefault_stop(struct prefault *pf);

#endif
