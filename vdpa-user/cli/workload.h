/* SPDX-License-Identifier: MIT */
/*
 * The CLI's guest: verifiable traffic through a vdpa_net or vdpa_blk driver.
 * net: sequence-stamped frames looped back by the device, each must come
 * back exactly once and intact. blk: request i writes a stamped block, reads
 * it back and verifies it. Survives a migration: only the driver's device
 * pointer changes underneath.
 */
#ifndef VDPA_CLI_WORKLOAD_H
#define VDPA_CLI_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include <vdpa-user/blk.h>
#include <vdpa-user/net.h>

#include "payload.h"

struct wl_result {
	uint64_t requests;	/* asked for */
	uint64_t completed;	/* verified exactly once */
	uint64_t lost;
	uint64_t duplicated;
	uint64_t corrupt;
	uint64_t errors;	/* device error status (blk) */
};

struct workload {
	struct vdpa_net *net;
	struct vdpa_blk *blk;
	uint64_t count;
	uint32_t size;
	unsigned int queues;
	uint64_t next;			/* next sequence to submit */
	uint64_t sent_q[16], recv_q[16];
	struct seqset seen;
	struct wl_result r;
	uint8_t mac[6];
	uint64_t nblocks;		/* blk: blocks of size bytes */
	uint8_t *buf;
	bool paused;			/* stop submitting (migration) */
};

int wl_init_net(struct workload *w, struct vdpa_net *net, uint64_t count,
		uint32_t size, unsigned int queues);
int wl_init_blk(struct workload *w, struct vdpa_blk *blk, uint64_t count,
		uint32_t size);
/* Either driver; size 0 picks 64-byte frames (net) or 4 KiB blocks (blk). */
int wl_init(struct workload *w, struct vdpa_net *net, struct vdpa_blk *blk,
	    uint64_t count, uint32_t size, unsigned int queues);
void wl_free(struct workload *w);
/* Submit and reap once: 1 when every request is accounted for. */
int wl_step(struct workload *w);
/* Wait for device activity (bounded). */
void wl_wait(struct workload *w, int timeout_ms);
/* Run until done or no progress for idle_ms; fills the result. */
int wl_run(struct workload *w, int idle_ms);
/* Final accounting: lost = requests not verified. */
void wl_result(struct workload *w, struct wl_result *ret);
/* Kick every queue (after the rings moved to another device). */
int wl_kick_all(struct workload *w);
/* The same for a driver with no workload on it. */
int wl_kick_driver(struct vdpa_net *net, struct vdpa_blk *blk);

/* Serialize the generator (counters, seen set) for migrate-out/in. */
int wl_save(const struct workload *w, void **ret_buf, size_t *ret_len);
/* Set w up on an adopted driver (net or blk) from a wl_save() image. */
int wl_adopt(struct workload *w, struct vdpa_net *net, struct vdpa_blk *blk,
	     const void *buf, size_t len);

#endif
