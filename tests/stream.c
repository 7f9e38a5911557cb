// SPDX-License-Identifier: MIT
/*
 * The migrate-out/migrate-in stream (vdpa-user/cli/stream.c, framing
 * version 2 of docs/migration.md): every record type round-trips byte
 * exact, the bytes are the documented layout, every single-bit flip
 * anywhere is refused at the record it hit, a cut at every byte is an
 * error and never a hang, version-1 streams still read, and the size caps
 * hold before anything is read or allocated.
 */
#include <endian.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crc32c.h"
#include "stream.h"
#include "tap.h"

#define HDR_LEN		16	/* stream header */
#define REC_HDR_LEN	24	/* version-2 record header */
#define TIMEOUT_MS	1000

struct rec {
	uint32_t type;
	size_t len;
	uint8_t *data;
};

/* One record of every type, END last; sizes differ so offsets do too. */
#define NREC 8
static struct rec recs[NREC] = {
	{ REC_DESC, 97, NULL }, { REC_WORKLOAD, 61, NULL },
	{ REC_MEMORY, 24 + 1000, NULL }, { REC_DRIVER_VQS, 133, NULL },
	{ REC_DEVICE_STATE, 517, NULL }, { REC_VERDICT, 4 + 10, NULL },
	{ REC_PLAN, 203, NULL }, { REC_END, 0, NULL },
};

/* The encoded stream; unit 0 is its header, unit k + 1 is record k. */
static uint8_t *enc;
static size_t enc_len;
static size_t unit_off[NREC + 2];

static int unit_of(size_t byte)
{
	int u = 0;

	while (u < NREC && byte >= unit_off[u + 1])
		u++;
	return u;
}

static const char *unit_name(int u)
{
	return u ? stream_rec_name(recs[u - 1].type) : "stream header";
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

/* The documented layout, written independently of stream.c. */
static void doc_header(uint8_t h[HDR_LEN], uint32_t version)
{
	put_le64(h, STREAM_MAGIC);
	put_le32(h + 8, version);
	put_le32(h + 12, crc32c(0, h, 12));
}

static void doc_rec_header(uint8_t h[REC_HDR_LEN], uint32_t type,
			   uint64_t len, const void *payload)
{
	uint32_t hcrc;

	put_le32(h, type);
	put_le32(h + 4, 0);
	put_le64(h + 8, len);
	hcrc = crc32c(0, h, 16);
	put_le32(h + 16, hcrc);
	put_le32(h + 20, crc32c(hcrc, payload, payload ? len : 0));
}

static int memfd_with(const void *buf, size_t len)
{
	int fd = memfd_create("stream", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (len && pwrite(fd, buf, len, 0) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Rewind fd and make it hold exactly buf. */
static int refill(int fd, const void *buf, size_t len)
{
	if (ftruncate(fd, 0) ||
	    (len && pwrite(fd, buf, len, 0) != (ssize_t)len) ||
	    lseek(fd, 0, SEEK_SET) != 0)
		return -1;
	return 0;
}

struct outcome {
	int err;		/* first error; 0: every record read */
	int done;		/* units read good: the header, then records */
	bool differs;		/* a unit read as good is not as written */
	uint32_t type;		/* stream_get()'s type at the failure */
	unsigned int version;
};

/* Read a header and n records, comparing each with want[]. */
static void read_stream(int fd, int timeout_ms, const struct rec *want,
			int n, struct outcome *o)
{
	int i;

	memset(o, 0, sizeof(*o));
	o->type = UINT32_MAX;
	o->err = stream_get_header(fd, timeout_ms, &o->version);
	if (o->err < 0)
		return;
	o->done = 1;
	for (i = 0; i < n; i++) {
		uint32_t type;
		void *buf = NULL;
		size_t len = 0;

		o->err = stream_get(fd, o->version, timeout_ms, &type, &buf,
				    &len);
		if (o->err < 0) {
			o->type = type;
			return;
		}
		if (type != want[i].type || len != want[i].len ||
		    (len && memcmp(buf, want[i].data, len)))
			o->differs = true;
		free(buf);
		if (o->differs)
			return;
		o->done++;
	}
}

static int encode(void)
{
	int fd = memfd_with(NULL, 0), i, r;
	uint32_t seed = 0x12345678;
	off_t end;
	size_t j;

	if (fd < 0)
		return -1;
	for (i = 0; i < NREC; i++) {
		recs[i].data = recs[i].len ? malloc(recs[i].len) : NULL;
		for (j = 0; j < recs[i].len; j++) {
			seed = seed * 1103515245u + 12345u;
			recs[i].data[j] = (uint8_t)(seed >> 16);
		}
	}
	r = stream_put_header(fd);
	unit_off[0] = 0;
	unit_off[1] = HDR_LEN;
	for (i = 0; i < NREC && !r; i++) {
		r = stream_put(fd, recs[i].type, recs[i].data, recs[i].len);
		unit_off[i + 2] = unit_off[i + 1] + REC_HDR_LEN + recs[i].len;
	}
	end = lseek(fd, 0, SEEK_END);
	if (r || end <= 0) {
		close(fd);
		return -1;
	}
	enc_len = (size_t)end;
	enc = malloc(enc_len);
	if (pread(fd, enc, enc_len, 0) != (ssize_t)enc_len) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void layout(void)
{
	uint8_t h[REC_HDR_LEN];
	bool same = true;
	int i;

	tap_is(enc_len, unit_off[NREC + 1], "the stream is 16 + 8 x 24 bytes "
	       "of headers + the payloads (%zu bytes)", enc_len);
	doc_header(h, 2);
	tap_ok(!memcmp(enc, h, HDR_LEN) && STREAM_VERSION == 2,
	       "stream header: le64 magic, le32 version 2, le32 CRC32C of "
	       "the 12 bytes before");
	for (i = 0; i < NREC; i++) {
		const uint8_t *p = enc + unit_off[i + 1];

		doc_rec_header(h, recs[i].type, recs[i].len, recs[i].data);
		if (memcmp(p, h, REC_HDR_LEN) ||
		    (recs[i].len && memcmp(p + REC_HDR_LEN, recs[i].data,
					    recs[i].len))) {
			same = false;
			tap_diag("record %d (%s) differs from the documented "
				 "layout", i, stream_rec_name(recs[i].type));
		}
	}
	tap_ok(same, "every record: le32 type, le32 0, le64 length, le32 "
	       "header CRC32C, le32 CRC32C of header and payload, payload");
	/* the record CRC is the header CRC chained over the payload */
	tap_ok(get_le32(enc + unit_off[3] + 20) !=
	       get_le32(enc + unit_off[3] + 16) &&
	       get_le32(enc + unit_off[NREC] + 20) ==
	       get_le32(enc + unit_off[NREC] + 16) &&
	       get_le64(enc + unit_off[3] + 8) == recs[2].len,
	       "driver memory's record CRC covers its payload; END's equals "
	       "its header CRC");
	tap_ok(!strcmp(stream_rec_name(REC_PLAN), "plan") &&
	       !strcmp(stream_rec_name(REC_MEMORY), "driver memory") &&
	       REC_PLAN == 7 && REC_PRECOPY_ROUND == 8 &&
	       !strcmp(stream_rec_name(8), "pre-copy round") &&
	       !stream_rec_name(9),
	       "record names: 7 is 'plan', 3 'driver memory', 8 'pre-copy "
	       "round', 9 unknown");
}

static void round_trip(void)
{
	struct outcome o;
	int sv[2], fd, i, r = 0;

	fd = memfd_with(enc, enc_len);
	read_stream(fd, TIMEOUT_MS, recs, NREC, &o);
	tap_ok(o.err == 0 && o.done == NREC + 1 && !o.differs &&
	       o.version == 2, "file: all %d record types read back byte "
	       "exact, version 2", NREC);
	close(fd);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		tap_ok(0, "socketpair");
		return;
	}
	r = stream_put_header(sv[0]);
	for (i = 0; i < NREC && !r; i++)
		r = stream_put(sv[0], recs[i].type, recs[i].data, recs[i].len);
	read_stream(sv[1], TIMEOUT_MS, recs, NREC, &o);
	tap_ok(r == 0 && o.err == 0 && o.done == NREC + 1 && !o.differs,
	       "socket: all %d record types read back byte exact", NREC);
	close(sv[0]);
	close(sv[1]);
}

/* Every bit of the encoded stream, one at a time. */
static void bit_flips(void)
{
	int fails[NREC + 1] = { 0 }, fd, u;
	long first[NREC + 1];
	struct outcome o;
	size_t bit;

	fd = memfd_with(enc, enc_len);
	if (fd < 0) {
		tap_ok(0, "memfd");
		return;
	}
	for (u = 0; u <= NREC; u++)
		first[u] = -1;
	for (bit = 0; bit < enc_len * 8; bit++) {
		size_t byte = bit / 8, in;
		uint8_t c = enc[byte] ^ (uint8_t)(1u << (bit % 8));
		int want;
		bool ok;

		u = unit_of(byte);
		in = byte - unit_off[u];
		if (pwrite(fd, &c, 1, (off_t)byte) != 1 ||
		    lseek(fd, 0, SEEK_SET) != 0)
			break;
		read_stream(fd, TIMEOUT_MS, recs, NREC, &o);
		if (pwrite(fd, &enc[byte], 1, (off_t)byte) != 1)
			break;
		/* a damaged magic: not a stream; anything else: corrupt */
		want = byte < 8 ? -EPROTO : -EBADMSG;
		ok = o.err == want && o.done == u && !o.differs;
		if (ok && u == 0 && in >= 8)
			ok = strstr(stream_error(), "stream header fails its "
				    "CRC32C check") != NULL;
		/* past the type field the failure names the record */
		if (ok && u > 0 && in >= 4)
			ok = o.type == recs[u - 1].type &&
			     strstr(stream_error(), unit_name(u)) &&
			     strstr(stream_error(), "fails its CRC32C check");
		if (!ok && !fails[u]++)
			first[u] = (long)bit;
	}
	if (bit != enc_len * 8)
		tap_ok(0, "flipping bits in the memfd");
	for (u = 0; u <= NREC; u++) {
		size_t len = unit_off[u + 1] - unit_off[u];

		if (!tap_ok(!fails[u], "%s (%zu bytes): all %zu single-bit "
			    "flips refused right there (%s)%s", unit_name(u),
			    len, len * 8, u ? "-EBADMSG, the message names "
			    "the record" : "-EPROTO in the magic, -EBADMSG "
			    "after", u > 1 ? ", the records before it read "
			    "intact" : ""))
			tap_diag("  %d flips not refused as expected, first "
				 "bit %ld", fails[u], first[u]);
	}
	close(fd);
}

/* A cut at every byte: the whole stream's prefixes, as a file (EOF). */
static void truncations(void)
{
	int fd = memfd_with(NULL, 0), fails = 0, u;
	long first = -1;
	struct outcome o;
	size_t p, in;

	if (fd < 0) {
		tap_ok(0, "memfd");
		return;
	}
	for (p = 0; p < enc_len; p++) {
		bool ok;

		u = unit_of(p);
		in = p - unit_off[u];
		if (refill(fd, enc, p))
			break;
		read_stream(fd, TIMEOUT_MS, recs, NREC, &o);
		ok = o.err == -EPIPE && o.done == u && !o.differs;
		/* cut in a record header: no type; in its payload: named */
		if (ok && u > 0)
			ok = in < REC_HDR_LEN ? o.type == UINT32_MAX :
			     o.type == recs[u - 1].type &&
			     strstr(stream_error(), unit_name(u)) &&
			     strstr(stream_error(), "ends early");
		if (!ok && !fails++)
			first = (long)p;
	}
	if (!tap_ok(p == enc_len && !fails, "a file cut at each of its %zu "
		    "bytes: -EPIPE at the record cut, never a good record",
		    enc_len))
		tap_diag("  %d cuts wrong, first at byte %ld", fails, first);
	close(fd);
}

/*
 * A peer that stops mid-header and keeps the connection open: the reader
 * gives up after its timeout.
 */
static void stalls(void)
{
	int fails = 0, n = 0, u;
	long first = -1;
	struct outcome o;
	size_t p, in;

	for (p = 0; p < enc_len; p++) {
		int sv[2];
		bool ok;

		u = unit_of(p);
		in = p - unit_off[u];
		/* every byte of every header, a few payload cuts */
		if (in >= (u ? REC_HDR_LEN : HDR_LEN) && in % 97 != 1)
			continue;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
			break;
		if (p && write(sv[0], enc, p) != (ssize_t)p) {
			close(sv[0]);
			close(sv[1]);
			break;
		}
		read_stream(sv[1], 10, recs, NREC, &o);
		ok = o.err == -ETIMEDOUT && o.done == u && !o.differs;
		if (!ok && !fails++)
			first = (long)p;
		n++;
		close(sv[0]);
		close(sv[1]);
	}
	if (!tap_ok(p == enc_len && !fails && n > 8 * REC_HDR_LEN,
		    "a socket stalled at %d cuts (every header byte): "
		    "-ETIMEDOUT after 10 ms, no hang", n))
		tap_diag("  %d cuts wrong, first at byte %ld", fails, first);
}

/* Version 1, as the previous release wrote it: host order, no checks. */
static void version1(void)
{
	uint64_t h[2] = { STREAM_MAGIC, 1 };
	struct { uint32_t type, reserved; uint64_t len; } rh;
	size_t len = sizeof(h), at;
	struct outcome o;
	uint8_t *v1;
	int fd, i;

	for (i = 0; i < NREC; i++)
		len += sizeof(rh) + recs[i].len;
	v1 = malloc(len);
	memcpy(v1, h, sizeof(h));
	at = sizeof(h);
	for (i = 0; i < NREC; i++) {
		rh.type = recs[i].type;
		rh.reserved = 0;
		rh.len = recs[i].len;
		memcpy(v1 + at, &rh, sizeof(rh));
		if (recs[i].len)
			memcpy(v1 + at + sizeof(rh), recs[i].data,
			       recs[i].len);
		at += sizeof(rh) + recs[i].len;
	}
	fd = memfd_with(v1, len);
	read_stream(fd, TIMEOUT_MS, recs, NREC, &o);
	tap_is(o.version, 1, "version-1 stream: stream_get_header reports "
	       "version 1");
	tap_ok(o.err == 0 && o.done == NREC + 1 && !o.differs,
	       "version-1 stream: all %d record types read back byte exact",
	       NREC);

	/* what version 2 is for: version 1 passes a flipped bit on */
	at = sizeof(h) + sizeof(rh) + recs[0].len + sizeof(rh) +
	     recs[1].len + sizeof(rh) + 500;
	v1[at] ^= 0x08;
	refill(fd, v1, len);
	read_stream(fd, TIMEOUT_MS, recs, NREC, &o);
	tap_ok(o.err == 0 && o.differs && o.done == 3,
	       "version-1 stream: a flipped bit in driver memory goes "
	       "unnoticed (this harness sees it)");
	v1[at] ^= 0x08;

	/* reserved bits set: no writer makes that */
	at = sizeof(h) + 4;
	v1[at] = 1;
	refill(fd, v1, len);
	read_stream(fd, TIMEOUT_MS, recs, NREC, &o);
	tap_ok(o.err == -EPROTO && o.done == 1 && o.type == REC_DESC,
	       "version-1 record with reserved bits set: -EPROTO");
	close(fd);
	free(v1);
}

/* Headers only, nothing behind them: a cap must answer before any read. */
static int read_one(const void *buf, size_t len, uint32_t *type)
{
	unsigned int version;
	void *out = NULL;
	size_t olen;
	int fd = memfd_with(buf, len), r;

	if (fd < 0)
		return -EIO;
	r = stream_get_header(fd, TIMEOUT_MS, &version);
	if (!r)
		r = stream_get(fd, version, TIMEOUT_MS, type, &out, &olen);
	free(out);
	close(fd);
	return r;
}

static void caps_and_headers(void)
{
	uint8_t b[HDR_LEN + REC_HDR_LEN + 100];
	uint32_t type;
	int r;

	memset(b, 0, sizeof(b));
	doc_header(b, 2);
	stream_set_state_cap(100);
	doc_rec_header(b + HDR_LEN, REC_DEVICE_STATE, 101, NULL);
	r = read_one(b, HDR_LEN + REC_HDR_LEN, &type);
	tap_ok(r == -EFBIG && type == REC_DEVICE_STATE &&
	       strstr(stream_error(), "larger than the 100-byte cap"),
	       "device state of 101 bytes, cap 100: -EFBIG before reading "
	       "(%s)", stream_error());
	doc_rec_header(b + HDR_LEN, REC_DEVICE_STATE, 100, b + 40);
	r = read_one(b, sizeof(b), &type);
	tap_ok(r == 0 && type == REC_DEVICE_STATE,
	       "device state of exactly the 100-byte cap: read");
	stream_set_state_cap(256ull << 20);

	doc_rec_header(b + HDR_LEN, REC_MEMORY, STREAM_RECORD_MAX + 1, NULL);
	r = read_one(b, HDR_LEN + REC_HDR_LEN, &type);
	tap_ok(r == -EPROTO && type == REC_MEMORY,
	       "record of 1 GiB + 1 with a good header CRC: -EPROTO before "
	       "anything is allocated or read (%s)", stream_error());
	doc_rec_header(b + HDR_LEN, REC_MEMORY, 1ull << 62, NULL);
	r = read_one(b, HDR_LEN + REC_HDR_LEN, &type);
	tap_ok(r == -EPROTO, "record of 2^62 bytes: -EPROTO, not -ENOMEM");

	doc_rec_header(b + HDR_LEN, REC_WORKLOAD, 4, "abcd");
	put_le32(b + HDR_LEN + 4, 1);
	put_le32(b + HDR_LEN + 16, crc32c(0, b + HDR_LEN, 16));
	memcpy(b + HDR_LEN + REC_HDR_LEN, "abcd", 4);
	r = read_one(b, HDR_LEN + REC_HDR_LEN + 4, &type);
	tap_ok(r == -EPROTO && strstr(stream_error(), "reserved"),
	       "version-2 record with reserved bits (and a good header "
	       "CRC): -EPROTO");

	doc_header(b, 3);
	r = read_one(b, HDR_LEN, &type);
	tap_ok(r == -EPROTONOSUPPORT && strstr(stream_error(), "version 3"),
	       "a good header of version 3: -EPROTONOSUPPORT (%s)",
	       stream_error());
	memcpy(b, "this is no vdpa stream", HDR_LEN);
	r = read_one(b, HDR_LEN, &type);
	tap_ok(r == -EPROTO && strstr(stream_error(), "not a vdpa-user "
				      "migration stream"),
	       "something else: -EPROTO, not a vdpa-user migration stream");
	r = read_one(b, 0, &type);
	tap_ok(r == -EPIPE && strstr(stream_error(), "empty"),
	       "an empty file: -EPIPE, empty or truncated");
}

int main(void)
{
	int i;

	alarm(300);	/* a hang fails the test instead of stalling it */
	signal(SIGPIPE, SIG_IGN);
	if (encode()) {
		tap_ok(0, "encode a stream with stream_put");
		return tap_done();
	}
	layout();
	round_trip();
	bit_flips();
	truncations();
	stalls();
	version1();
	caps_and_headers();
	for (i = 0; i < NREC; i++)
		free(recs[i].data);
	free(enc);
	return tap_done();
}
