// SPDX-License-Identifier: MIT
/*
 * CRC-32C: SSE4.2's crc32 instruction on three interleaved streams where
 * there is one, slicing-by-8 tables otherwise; tables built once.
 */
#include <pthread.h>
#include <string.h>

#include "crc32c.h"

#define POLY	0x82f63b78u	/* reflected Castagnoli */

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
	uint32_t i, j, c;

	for (i = 0; i < 256; i++) {
		c = i;
		for (j = 0; j < 8; j++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[0][i] = c;
	}
	for (i = 0; i < 256; i++)
		for (j = 1; j < 8; j++)
			table[j][i] = (table[j - 1][i] >> 8) ^
				      table[0][table[j - 1][i] & 0xff];
}

#if defined(__x86_64__)
/*
 * The crc32 instruction has a latency of three cycles and a throughput of
 * one a cycle: one dependent chain runs at a third of what the core can
 * do. So a block of 3 x LONG bytes is computed as three independent CRCs
 * of LONG bytes each, joined by "appending LONG zero bytes" to the first
 * ones (a linear operator on the 32-bit CRC register, applied through four
 * 256-entry tables) and xoring. SHORT blocks do the same for the tail.
 */
#define LONG	8192u
#define SHORT	256u

static uint32_t zeros_long[4][256], zeros_short[4][256];
static pthread_once_t hw_once = PTHREAD_ONCE_INIT;

/* The product of a 32x32 GF(2) matrix (one column a word) and a vector. */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
	uint32_t sum = 0;

	for (; vec; vec >>= 1, mat++)
		if (vec & 1)
			sum ^= *mat;
	return sum;
}

static void gf2_square(uint32_t *sq, const uint32_t *mat)
{
	unsigned int n;

	for (n = 0; n < 32; n++)
		sq[n] = gf2_times(mat, mat[n]);
}

/* Tables applying len zero bytes (a power of 2) to a CRC register. */
static void zeros_init(uint32_t zeros[4][256], uint32_t len)
{
	uint32_t op[32], tmp[32];
	unsigned int n;

	/* one zero bit */
	op[0] = POLY;
	for (n = 1; n < 32; n++)
		op[n] = 1u << (n - 1);
	/* square three times: one zero byte; then once per doubling */
	for (n = 0; n < 3; n++) {
		gf2_square(tmp, op);
		memcpy(op, tmp, sizeof(op));
	}
	for (; len > 1; len >>= 1) {
		gf2_square(tmp, op);
		memcpy(op, tmp, sizeof(op));
	}
	for (n = 0; n < 256; n++) {
		zeros[0][n] = gf2_times(op, n);
		zeros[1][n] = gf2_times(op, n << 8);
		zeros[2][n] = gf2_times(op, n << 16);
		zeros[3][n] = gf2_times(op, n << 24);
	}
}

static void hw_init(void)
{
	zeros_init(zeros_long, LONG);
	zeros_init(zeros_short, SHORT);
}

static uint32_t shift(uint32_t zeros[4][256], uint32_t crc)
{
	return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^
	       zeros[2][(crc >> 16) & 0xff] ^ zeros[3][crc >> 24];
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* Three interleaved CRCs over n-byte thirds of each 3n-byte block. */
#define CRC_BLOCKS(n, zeros)						\
	while (len >= 3 * (n)) {					\
		uint64_t c1 = 0, c2 = 0;				\
		const uint8_t *end = p + (n);				\
									\
		do {							\
			c0 = __builtin_ia32_crc32di(c0, load64(p));	\
			c1 = __builtin_ia32_crc32di(c1, load64(p + (n)));	\
			c2 = __builtin_ia32_crc32di(c2,			\
						    load64(p + 2 * (n)));	\
			p += 8;						\
		} while (p < end);					\
		c0 = shift(zeros, (uint32_t)c0) ^ (uint32_t)c1;		\
		c0 = shift(zeros, (uint32_t)c0) ^ (uint32_t)c2;		\
		p += 2 * (n);						\
		len -= 3 * (n);						\
	}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c0 = ~crc;

	while (len && ((uintptr_t)p & 7)) {
		c0 = __builtin_ia32_crc32qi((uint32_t)c0, *p++);
		len--;
	}
	if (len >= 3 * SHORT) {
		pthread_once(&hw_once, hw_init);
		CRC_BLOCKS(LONG, zeros_long);
		CRC_BLOCKS(SHORT, zeros_short);
	}
	while (len >= 8) {
		c0 = __builtin_ia32_crc32di(c0, load64(p));
		p += 8;
		len -= 8;
	}
	while (len--)
		c0 = __builtin_ia32_crc32qi((uint32_t)c0, *p++);
	return ~(uint32_t)c0;
}
#endif

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		return crc32c_hw(crc, p, len);
#endif
	pthread_once(&table_once, table_init);
	crc = ~crc;
	while (len && ((uintptr_t)p & 7)) {
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		v ^= crc;
		crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^
		      table[5][(v >> 16) & 0xff] ^ table[4][(v >> 24) & 0xff] ^
		      table[3][(v >> 32) & 0xff] ^ table[2][(v >> 40) & 0xff] ^
		      table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}
