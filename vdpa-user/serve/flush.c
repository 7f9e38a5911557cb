// SPDX-License-Identifier: MIT
/*
 * blk without a state channel (issue 8 section 3): QEMU's vhost-user-blk
 * never sends SET_DEVICE_STATE_FD, so a device with a write-back cache
 * must have written what the guest wrote before GET_VRING_BASE is
 * answered: the destination reads the disk next.
 *
 * The guest's ring cannot carry a request of ours, and a reset drops the
 * cache. So the suspended device is saved with its own state (the cache
 * is part of it, VHOST_BACKEND_F_DEVICE_STATE), loaded back onto a
 * one-request ring in memory of serve's (mapped above guest memory),
 * sent VIRTIO_BLK_T_FLUSH, and reset: the cache is on the disk. The state
 * saved at the stop is kept for a SET_DEVICE_STATE_FD (SAVE) that may
 * follow. A device without the extension cannot be flushed this way; a
 * kernel vdpa_sim_blk has no volatile cache (a RAM disk written in
 * place), which is said once in the log.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ring.h>

#include <vdpa-user/uapi-ext.h>

#include "serve.h"

#define FLUSH_RING	4u
#define FLUSH_MEM	(64u << 10)
#define FLUSH_WAIT_MS	5000

/* The ring's parts inside the private region. */
enum { OFF_DESC = 0, OFF_AVAIL = 256, OFF_USED = 512, OFF_HDR = 1024,
       OFF_STATUS = 1088 };

static uint64_t private_iova(const struct srv *s)
{
	uint64_t end = 0;
	unsigned int i;

	for (i = 0; i < s->nregs; i++)
		if (s->regs[i].gpa + s->regs[i].size > end)
			end = s->regs[i].gpa + s->regs[i].size;
	/* 1 MiB above guest memory */
	return (end + (2ULL << 20) - 1) & ~((1ULL << 20) - 1);
}

static void put_request(uint8_t *b, uint64_t iova)
{
	struct vring_desc *d = (struct vring_desc *)(b + OFF_DESC);
	struct vring_avail *a = (struct vring_avail *)(b + OFF_AVAIL);
	struct virtio_blk_outhdr *h = (struct virtio_blk_outhdr *)(b + OFF_HDR);

	memset(b, 0, OFF_STATUS + 1);
	h->type = VIRTIO_BLK_T_FLUSH;
	b[OFF_STATUS] = 0xff;
	d[0].addr = iova + OFF_HDR;
	d[0].len = sizeof(*h);
	d[0].flags = VRING_DESC_F_NEXT;
	d[0].next = 1;
	d[1].addr = iova + OFF_STATUS;
	d[1].len = 1;
	d[1].flags = VRING_DESC_F_WRITE;
	a->ring[0] = 0;
	__atomic_store_n(&a->idx, 1, __ATOMIC_RELEASE);
}

static int wait_used(uint8_t *b)
{
	const struct vring_used *u = (const struct vring_used *)(b + OFF_USED);
	struct timespec ts = { 0, 1000000 };
	int i;

	for (i = 0; i < FLUSH_WAIT_MS; i++) {
		if (__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE) == 1)
			return 0;
		nanosleep(&ts, NULL);
	}
	return -ETIMEDOUT;
}

/* st: the stopped device; onto the private ring, FLUSH, reset. */
static int flush_on(struct srv *s, struct vdpa_state *st, char *err,
		    size_t errlen)
{
	int kick[VDPA_STATE_MAX_QUEUES];
	struct vdpa_load_hooks h = { .dst_desc = s->desc, .kick_fds = kick };
	struct vdpa_state_queue *q = &st->q[0];
	struct vdpa_mem *pm = NULL;
	uint64_t iova = private_iova(s), one = 1;
	uint8_t *b;
	int efd, r, i;

	for (i = 0; i < VDPA_STATE_MAX_QUEUES; i++)
		kick[i] = -1;
	efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0)
		return -errno;
	r = vdpa_mem_create(FLUSH_MEM, iova, &pm);
	if (!r)
		r = vdpa_mem_map(s->dev, pm);
	if (r < 0) {
		snprintf(err, errlen, "flush: ring memory at 0x%" PRIx64 ": %s",
			 iova, strerror(-r));
		goto out;
	}
	b = vdpa_mem_base(pm);
	memset(b, 0, OFF_STATUS + 1);
	st->nqueues = 1;
	memset(q, 0, sizeof(*q));
	q->size = FLUSH_RING;
	q->enabled = true;
	q->desc = iova + OFF_DESC;
	q->avail = iova + OFF_AVAIL;
	q->used = iova + OFF_USED;
	kick[0] = efd;
	r = vdpa_state_load_device(s->dev, st, &h, err, errlen);
	if (r < 0)
		goto out;
	put_request(b, iova);
	if (write(efd, &one, sizeof(one)) != sizeof(one))
		r = -errno;
	else
		r = wait_used(b);
	if (r < 0)
		snprintf(err, errlen, "flush: the device did not complete "
			 "FLUSH: %s", strerror(-r));
	else if (b[OFF_STATUS] != VIRTIO_BLK_S_OK) {
		snprintf(err, errlen, "flush: FLUSH status %u", b[OFF_STATUS]);
		r = -EIO;
	}
	vdpa_dev_set_vring_kick(s->dev, 0, -1);
	vdpa_dev_reset(s->dev);
out:
	if (pm) {
		vdpa_mem_unmap(s->dev, pm);
		vdpa_mem_destroy(pm);
	}
	close(efd);
	return r;
}

int srv_blk_flush(struct srv *s, char *err, size_t errlen)
{
	static bool said;
	struct vdpa_state *st = NULL, *keep = NULL;
	void *blob;
	size_t len;
	int r;

	if (!(s->features & (1ULL << VIRTIO_BLK_F_FLUSH)) || s->device_reset)
		return 0;
	if (!(s->backend_acked & (1ULL << VHOST_BACKEND_F_DEVICE_STATE))) {
		if (!said)
			srv_log(LOG_NOTICE, "blk: the device has no state "
				"extension, its cache (if any) cannot be "
				"flushed at GET_VRING_BASE");
		said = true;
		return 0;
	}
	r = vdpa_state_save_device(s->dev, s->desc, &st);
	if (r < 0) {
		snprintf(err, errlen, "flush: saving the device: %s",
			 strerror(-r));
		return r;
	}
	/* a copy for a SAVE that may follow: decode(encode(st)) */
	r = vdpa_state_encode(st, &blob, &len);
	if (!r) {
		r = vdpa_state_decode(blob, len, 0, &keep, err, errlen);
		free(blob);
	}
	if (r < 0) {
		vdpa_state_free(st);
		return r;
	}
	/*
	 * After pre-copy rounds what was saved is only the rest (kept for
	 * the SAVE); the pre-copy is over, so the whole cache is saved again
	 * to be flushed: the disk has it before the stop is answered, as
	 * without rounds.
	 */
	if (srv_precopy_active(s)) {
		vdpa_state_free(st);
		st = NULL;
		srv_precopy_free(s);
		r = vdpa_state_save_device(s->dev, s->desc, &st);
		if (r < 0) {
			snprintf(err, errlen, "flush: saving the whole device "
				 "after pre-copy: %s", strerror(-r));
			vdpa_state_free(keep);
			return r;
		}
	}
	r = flush_on(s, st, err, errlen);
	vdpa_state_free(st);
	if (r < 0) {
		vdpa_state_free(keep);
		/* the device was reset: what it held is gone */
		s->device_reset = true;
		return r;
	}
	vdpa_state_free(s->stop_state);
	s->stop_state = keep;
	s->device_reset = true;
	s->st.flushes++;
	srv_log(LOG_INFO, "blk: write-back cache flushed before "
		"GET_VRING_BASE");
	return 0;
}
