// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"

#define FRAME_MAGIC 0x76647061u	/* "vdpa" */
#define BLOCK_MAGIC 0x626c6b31u	/* "blk1" */

struct stamp {
	uint32_t magic;
	uint16_t queue;
	uint16_t reserved;
	uint64_t seq;
	uint32_t len;
	uint32_t sum;		/* over the stamp with sum = 0 and the pattern */
};

static uint8_t pattern_byte(uint64_t seq, size_t i)
{
	uint64_t x = seq * 0x9e3779b97f4a7c15ull + i;

	x ^= x >> 29;
	return (uint8_t)(x * 0xbf58476d1ce4e5b9ull >> 56);
}

#define SUM_INIT 2166136261u

static uint32_t sum32(uint32_t h, const uint8_t *p, size_t len)
{
	while (len--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

static void stamp_fill(uint8_t *p, size_t len, uint16_t queue, uint64_t seq,
		       uint32_t magic)
{
	struct stamp st = { .magic = magic, .queue = queue, .seq = seq,
			    .len = (uint32_t)len };
	size_t i;

	for (i = sizeof(st); i < len; i++)
		p[i] = pattern_byte(seq, i);
	memcpy(p, &st, sizeof(st));
	st.sum = sum32(SUM_INIT, p, len);
	memcpy(p, &st, sizeof(st));
}

static int stamp_check(const uint8_t *p, size_t len, uint32_t magic,
		       uint16_t *ret_queue, uint64_t *ret_seq)
{
	struct stamp st;
	uint8_t tmp[sizeof(st)];
	uint32_t sum;
	size_t i;

	if (len < sizeof(st))
		return -EBADMSG;
	memcpy(&st, p, sizeof(st));
	if (st.magic != magic || st.len != len)
		return -EBADMSG;
	for (i = sizeof(st); i < len; i++)
		if (p[i] != pattern_byte(st.seq, i))
			return -EBADMSG;
	sum = st.sum;
	st.sum = 0;
	memcpy(tmp, &st, sizeof(st));
	if (sum32(sum32(SUM_INIT, tmp, sizeof(tmp)), p + sizeof(st),
		  len - sizeof(st)) != sum)
		return -EBADMSG;
	if (ret_queue)
		*ret_queue = st.queue;
	*ret_seq = st.seq;
	return 0;
}

void payload_frame_fill(void *buf, size_t len, const uint8_t dst_mac[6],
			uint16_t queue, uint64_t seq)
{
	static const uint8_t src[6] = { 0x02, 0x76, 0x64, 0x70, 0x61, 0x01 };
	uint8_t *p = buf;

	memcpy(p, dst_mac, 6);
	memcpy(p + 6, src, 6);
	p[12] = PAYLOAD_ETHERTYPE >> 8;
	p[13] = PAYLOAD_ETHERTYPE & 0xff;
	stamp_fill(p + PAYLOAD_ETH_HLEN, len - PAYLOAD_ETH_HLEN, queue, seq,
		   FRAME_MAGIC);
}

int payload_frame_check(const void *buf, size_t len, uint16_t *ret_queue,
			uint64_t *ret_seq)
{
	const uint8_t *p = buf;

	if (len < PAYLOAD_MIN_FRAME || p[12] != PAYLOAD_ETHERTYPE >> 8 ||
	    p[13] != (PAYLOAD_ETHERTYPE & 0xff))
		return -EBADMSG;
	return stamp_check(p + PAYLOAD_ETH_HLEN, len - PAYLOAD_ETH_HLEN,
			   FRAME_MAGIC, ret_queue, ret_seq);
}

void payload_block_fill(void *buf, size_t len, uint64_t lba, uint64_t seq)
{
	stamp_fill(buf, len, (uint16_t)lba, seq, BLOCK_MAGIC ^ (uint32_t)lba);
}

int payload_block_check(const void *buf, size_t len, uint64_t lba,
			uint64_t *ret_seq)
{
	return stamp_check(buf, len, BLOCK_MAGIC ^ (uint32_t)lba, NULL,
			   ret_seq);
}

int seqset_init(struct seqset *s, uint64_t n)
{
	s->n = n;
	s->bits = calloc((n + 63) / 64 + 1, sizeof(uint64_t));
	return s->bits ? 0 : -ENOMEM;
}

void seqset_free(struct seqset *s)
{
	free(s->bits);
	s->bits = NULL;
}

int seqset_add(struct seqset *s, uint64_t seq)
{
	uint64_t m;

	if (seq >= s->n)
		return -ERANGE;
	m = 1ull << (seq % 64);
	if (s->bits[seq / 64] & m)
		return 0;
	s->bits[seq / 64] |= m;
	return 1;
}

uint64_t seqset_count(const struct seqset *s)
{
	uint64_t i, c = 0;

	for (i = 0; i < (s->n + 63) / 64; i++)
		c += (uint64_t)__builtin_popcountll(s->bits[i]);
	return c;
}
