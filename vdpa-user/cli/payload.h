/* SPDX-License-Identifier: MIT */
/*
 * Traffic payloads that can be verified end to end: every packet and every
 * block carries its sequence number and a pattern derived from it, so a
 * lost, duplicated or corrupted request is recognised by the receiver.
 */
#ifndef VDPA_CLI_PAYLOAD_H
#define VDPA_CLI_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAYLOAD_ETH_HLEN	14
#define PAYLOAD_MIN_FRAME	(PAYLOAD_ETH_HLEN + 24)
#define PAYLOAD_ETHERTYPE	0x88b5	/* IEEE local experimental */

/* Ethernet frame to dst_mac carrying (queue, seq); len >= PAYLOAD_MIN_FRAME. */
void payload_frame_fill(void *buf, size_t len, const uint8_t dst_mac[6],
			uint16_t queue, uint64_t seq);
/* 0 and the stamp, or -EBADMSG when the frame is not intact. */
int payload_frame_check(const void *buf, size_t len, uint16_t *ret_queue,
			uint64_t *ret_seq);

/* A block stamped with (lba, seq). */
void payload_block_fill(void *buf, size_t len, uint64_t lba, uint64_t seq);
int payload_block_check(const void *buf, size_t len, uint64_t lba,
			uint64_t *ret_seq);

/* A set of sequence numbers seen, to count duplicates and losses. */
struct seqset {
	uint64_t n;
	uint64_t *bits;
};
int seqset_init(struct seqset *s, uint64_t n);
void seqset_free(struct seqset *s);
/* 1 if newly added, 0 if it was already there, -ERANGE if seq >= n. */
int seqset_add(struct seqset *s, uint64_t seq);
uint64_t seqset_count(const struct seqset *s);

#endif
