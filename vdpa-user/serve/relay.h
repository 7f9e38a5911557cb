/* SPDX-License-Identifier: MIT */
/*
 * Relay mode of `vdpa-user serve`: the vhost-vdpa ABI has no dirty log, so
 * while the vhost-user front-end has LOG_ALL on, the device works on shadow
 * rings the back-end owns and a relay thread forwards descriptors and
 * completions between them and the guest's rings, marking every guest page
 * the device (or the relay) writes in the front-end's log.
 *
 * Changes against the sketch in issue 8 (for H3):
 *  - relay_stop() takes `run`: true leaves the device running on the guest
 *    rings (LOG_ALL turned off), false leaves it suspended with the guest
 *    rings recorded but not started on them (GET_VRING_BASE while
 *    relaying; see relay_stop()). Either way ret_last_avail[] is where the
 *    device stands on each guest ring.
 *  - relay_set_log(): a new log (SET_LOG_BASE while relaying); the old
 *    bitmap is not touched once it returns.
 *  - relay_counters(): more figures than relay_stats(); relay_stop_ex()
 *    hands back the final ones (r is gone after relay_stop()).
 *  - struct relay_vq: last_avail is what the caller expects (its
 *    GET_VRING_BASE); relay_start() refuses when the device says otherwise.
 *  - relay_counters.handed_back: what the switch back left for the device
 *    on the guest rings (the load kicks each queue: the relay thread had
 *    read the guest's kicks for them).
 *
 * Requirements on the caller:
 *  - Guest memory is mapped into the device at IOVA == GPA through the
 *    library's vdpa_mem_map() (so that the library remaps it after a
 *    reset), regs[] describes it, and regs[].host is the caller's mapping.
 *  - The device's backend features include SUSPEND. The rings move through
 *    the library's save / reset / load (vdpa_state_save_device(),
 *    vdpa_state_load_device()): the device's own state (a blk write-back
 *    cache, net class state) survives, and neither RESUME nor a device that
 *    applies a new ring address to a suspended queue is needed (Linux 6.1
 *    has no RESUME; 6.12's vdpa_sim takes a new address only at the next
 *    enable).
 *  - A blk device that negotiated FLUSH (a write cache it may hold) needs
 *    the device-state extension, or the reset would drop unflushed writes:
 *    refused otherwise (-EOPNOTSUPP).
 *  - The shadow rings go right above guest memory (2 MiB aligned, 3 pages
 *    per queue); the device's IOVA range must have room there (-ERANGE).
 *  - Split rings only (VIRTIO_F_RING_PACKED is refused).
 *  - Between relay_start() and relay_stop() the caller does not touch the
 *    device's vrings, and does not close the guest's kick/call fds.
 *
 * What is marked in the log: the device-writable buffers of each completed
 * chain up to the used length (indirect tables followed), and what the
 * relay writes into the guest's used ring: the entries, used->idx,
 * avail_event (EVENT_IDX), used->flags (cleared once at the start without
 * EVENT_IDX). Nothing else: tests/relay checks both directions.
 *
 * Ordering: the guest's avail indexes are read from the highest queue down
 * and forwarded from the lowest up, so a net device never sees a TX frame
 * before the RX buffers the guest published ahead of it (it would drop
 * it; in passthrough it would not). Completions are forwarded in the
 * device's order, with the device's ids and lengths.
 *
 * Functions return 0 or -errno, with one line (no newline) in err on
 * failure. The relay never prints.
 */
#ifndef VDPA_SERVE_RELAY_H
#define VDPA_SERVE_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vdpa_dev;
struct relay;

/* One guest memory region: serve's mmap of it (host) and its GPA. */
struct relay_region {
	uint64_t gpa, size;
	uint8_t *host;
};

/* One guest virtqueue, as the front-end set it up (addresses are GPAs). */
struct relay_vq {
	uint32_t idx, num;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint64_t log_used_gpa;	/* vhost-user log_guest_addr of the used ring */
	uint16_t last_avail;	/* device's next avail index at the switch */
	int kick_fd, call_fd;	/* the guest's eventfds (relay reads kick, writes call) */
};

/*
 * The vhost-user log: 1 bit per 4 KiB page of GPA (bit page % 8 of byte
 * page / 8), set atomically. size in bytes; it must cover all of regs[].
 */
struct relay_log {
	uint8_t *bitmap;
	uint64_t size;
};

#define RELAY_LOG_PAGE		4096u

/*
 * Device suspended (the caller guarantees it). Moves the device onto
 * shadow rings the relay owns (memory mapped into the device above guest
 * memory), starts forwarding; the device runs again. The shadow rings
 * start at each queue's last_avail and the guest's used index, so
 * requests the guest published but the device had not taken are
 * forwarded, and completions map 1:1. Errors: -EINVAL bad arguments
 * (ring outside guest memory, log too small for guest memory, ...),
 * -EOPNOTSUPP (no SUSPEND, packed ring, blk write cache without device
 * state), -ERANGE (no IOVA room for the shadow rings), -EBUSY (requests in
 * flight in the device), those of the device. On failure the device is
 * back on the guest rings, suspended (a refusal touches nothing; a failed
 * load is undone by loading the saved state again, err says if that failed
 * too).
 */
int relay_start(struct relay **ret, struct vdpa_dev *dev,
		const struct relay_region *regs, unsigned nregs,
		const struct relay_vq *vqs, unsigned nvqs,
		const struct relay_log *log, char *err, size_t errlen);

/*
 * Stops forwarding with nothing lost or repeated: suspends the device,
 * forwards what it completed, then
 *  run true (LOG_ALL off): moves it back onto the guest's rings at the
 *    right indexes (save / reset / load) and lets it run there;
 *  run false (GET_VRING_BASE while relaying): leaves it suspended, never
 *    started on the guest rings (that would escape the log), with the
 *    guest's ring addresses, base and eventfds set on each relayed queue
 *    (what a later vdpa_state_save_device() records). To run again it
 *    needs a reset and setup or a load (vdpa_state_load_device()); RESUME
 *    alone is enough only on a device that applies ring addresses set
 *    while suspended (vdpa-sim; not Linux 6.12's vdpa_sim).
 * Frees r (also on failure). ret_last_avail[i] for vqs[i] of relay_start
 * (may be NULL). -EIO: the device failed on the shadow rings
 * (NEEDS_RESET), which the move back would otherwise hide; it is left as
 * it is (suspended, failed) for the caller to reset.
 */
int relay_stop(struct relay *r, bool run, uint16_t *ret_last_avail,
	       char *err, size_t errlen);

/* Swap the log while relaying (SET_LOG_BASE); the old one is let go. */
int relay_set_log(struct relay *r, const struct relay_log *log, char *err,
		  size_t errlen);

/*
 * The front-end's new kick (kick true) or call eventfd for queue idx while
 * relaying (SET_VRING_KICK / SET_VRING_CALL, as QEMU sends when the guest
 * masks or unmasks an MSI-X vector). A relayed queue: swapped under the
 * relay's lock, the device never leaves the shadow rings, so logging has
 * no gap; returns 1 and the caller must not give fd to the device. A queue
 * the relay leaves alone: recorded for the move back; returns 0 and the
 * caller gives fd to the device itself. The caller keeps owning fd, and
 * may close the old one once this returns. -EINVAL: bad index, or no fd
 * for a relayed queue.
 */
int relay_set_guest_fd(struct relay *r, uint32_t idx, bool kick, int fd);

/* Chains forwarded (guest avail -> device) and log pages newly marked. */
void relay_stats(const struct relay *r, uint64_t *fwd, uint64_t *logged_pages);

struct relay_counters {
	uint64_t avail_fwd;	/* chains forwarded to the device */
	uint64_t used_fwd;	/* completions forwarded to the guest */
	uint64_t log_writes;	/* bytes ranges logged (buffers + ring) */
	uint64_t logged_pages;	/* bits that went from 0 to 1 */
	uint64_t log_overflow;	/* writes reaching past the log (not marked) */
	uint64_t bad_chains;	/* malformed chains (loops, bad indexes) */
	uint64_t kicks, calls;	/* guest kicks read, guest calls sent */
	/*
	 * At relay_stop(): requests the guest had published that the
	 * device had not taken (forwarded or not); it takes them on the
	 * guest's rings. Shows a switch happened with requests in flight.
	 */
	uint64_t handed_back;
	uint64_t used_at_stop;	/* completions the stop's last forward moved */
};
void relay_counters(const struct relay *r, struct relay_counters *ret);

/* relay_stop(), and the counters after the last forward (ret may be NULL). */
int relay_stop_ex(struct relay *r, bool run, uint16_t *ret_last_avail,
		  struct relay_counters *ret_counters, char *err, size_t errlen);

#endif
