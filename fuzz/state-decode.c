// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for vdpa_state_decode(), the parser of untrusted state
 * blobs. Each input is decoded as it is (framing: magic, version, lengths,
 * CRC) and once more with magic, total length and CRC32C patched to fit,
 * so the mutations reach the section parser behind the checksum. Whatever
 * decodes must encode and decode again; every error message is one line.
 */
#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <vdpa-user/state.h>

#include "crc32c.h"

#define HDR_LEN 32u

static void one(const uint8_t *p, size_t len)
{
	struct vdpa_state *s = NULL, *s2 = NULL;
	char err[256] = "";
	void *blob;
	size_t blen;
	int r;

	r = vdpa_state_decode(p, len, 1u << 20, &s, err, sizeof(err));
	if (r < 0) {
		if (!err[0] || strchr(err, '\n') || s)
			abort();	/* one line, nothing returned */
		return;
	}
	if (vdpa_state_encode(s, &blob, &blen) == 0) {
		if (vdpa_state_decode(blob, blen, 0, &s2, err, sizeof(err)))
			abort();	/* what decoded must round-trip */
		vdpa_state_free(s2);
		free(blob);
	}
	vdpa_state_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t magic = htole64(0x3154535341504456ull);	/* VDPASST1 */
	uint64_t total = htole64(size);
	uint32_t crc;
	uint8_t *p;

	if (size > (1u << 20))
		return 0;
	one(data, size);
	if (size < HDR_LEN + 4)
		return 0;
	p = malloc(size);
	if (!p)
		return 0;
	memcpy(p, data, size);
	memcpy(p, &magic, 8);
	memcpy(p + 16, &total, 8);
	crc = htole32(crc32c(0, p, size - 4));
	memcpy(p + size - 4, &crc, 4);
	one(p, size);
	free(p);
	return 0;
}
