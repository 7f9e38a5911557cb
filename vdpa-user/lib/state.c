// SPDX-License-Identifier: MIT
/* The device-state blob: encode, strict decode, compatibility check. */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vdpa-user/state.h>

#include "crc32c.h"
#include "state-int.h"

#define STATE_MAGIC	0x3154535341504456ull	/* "VDPASST1" */
#define HDR_LEN		32u
#define SEC_HDR_LEN	8u
#define CRC_LEN		4u
#define MANDATORY	0x8000u

enum sec_type {
	SEC_MODEL = MANDATORY | 1,
	SEC_CONFIG = MANDATORY | 2,
	SEC_FEATURES = MANDATORY | 3,
	SEC_QUEUES = MANDATORY | 4,
	SEC_NET = MANDATORY | 5,
	SEC_DEVICE = MANDATORY | 6,
	SEC_NET_RX = MANDATORY | 7,	/* only when it differs from reset */
};

enum cfg_key {
	CFG_DEVICE_ID = 1, CFG_FEATURES, CFG_VQ_COUNT, CFG_VQ_MAX_SIZE,
	CFG_CONFIG_SIZE, CFG_MAC, CFG_MTU, CFG_MAX_VQP, CFG_CAPACITY,
	CFG_BLK_SIZE,
};

#define QUEUE_REC	40u
#define FEATURES_LEN	24u
#define NET_LEN		16u
#define NET_RX_HDR	8u

static bool net_rx_default(const struct vdpa_state_net *n)
{
	return !n->alluni && !n->nomulti && !n->nouni && !n->nobcast &&
	       !n->n_uc && !n->n_mc;
}

/* ---- helpers ------------------------------------------------------------ */

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void put(struct wbuf *w, const void *d, size_t n)
{
	if (w->err)
		return;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 256;
		uint8_t *np;

		while (cap < w->len + n)
			cap *= 2;
		np = realloc(w->p, cap);
		if (!np) {
			w->err = -ENOMEM;
			return;
		}
		w->p = np;
		w->cap = cap;
	}
	if (d)
		memcpy(w->p + w->len, d, n);
	else
		memset(w->p + w->len, 0, n);
	w->len += n;
}

/* Little endian on the wire, whatever the host. */
static void put16(struct wbuf *w, uint16_t v) { v = htole16(v); put(w, &v, 2); }
static void put32(struct wbuf *w, uint32_t v) { v = htole32(v); put(w, &v, 4); }
static void put64(struct wbuf *w, uint64_t v) { v = htole64(v); put(w, &v, 8); }

static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }

/* Section header now, length patched by sec_end(). */
static size_t sec_begin(struct wbuf *w, uint16_t type)
{
	size_t at = w->len;

	put16(w, type);
	put16(w, 0);
	put32(w, 0);
	return at;
}

static void sec_end(struct wbuf *w, size_t at, uint32_t *nsec)
{
	uint32_t len = htole32((uint32_t)(w->len - at - SEC_HDR_LEN));

	if (!w->err)
		memcpy(w->p + at + 4, &len, 4);
	(*nsec)++;
}

static void cfg_u64(struct wbuf *w, uint16_t key, uint64_t v)
{
	put16(w, key);
	put16(w, 8);
	put64(w, v);
}

struct vdpa_state *vdpa_state_new(void)
{
	return calloc(1, sizeof(struct vdpa_state));
}

void vdpa_state_free(struct vdpa_state *s)
{
	if (!s)
		return;
	if (!s->backing)
		free(s->device);
	free(s->backing);
	free(s);
}

/* ---- encode ------------------------------------------------------------- */

/*
 * The blob, either in one buffer, or (split) as everything before the
 * device section's payload, which stays where it is, then the CRC.
 */
static int encode(const struct vdpa_state *s, bool split, void **ret_buf,
		  size_t *ret_len, uint8_t ret_crc[4])
{
	struct wbuf w = { 0 };
	uint32_t nsec = 0, i, crc;
	uint64_t total;
	size_t at, ml;

	if (!s || !ret_buf || !ret_len || s->nqueues > VDPA_STATE_MAX_QUEUES)
		return -EINVAL;
	ml = strnlen(s->model, sizeof(s->model));
	if (!ml || ml == sizeof(s->model))
		return -EINVAL;	/* the decoder refuses both */
	put64(&w, STATE_MAGIC);
	put16(&w, VDPA_STATE_VERSION);
	put16(&w, HDR_LEN);
	put32(&w, 0);
	put64(&w, 0);		/* total, patched */
	put32(&w, 0);		/* sections, patched */
	put32(&w, 0);

	at = sec_begin(&w, SEC_MODEL);
	put(&w, s->model, ml);
	sec_end(&w, at, &nsec);

	at = sec_begin(&w, SEC_CONFIG);
	cfg_u64(&w, CFG_DEVICE_ID, s->cfg.device_id);
	cfg_u64(&w, CFG_FEATURES, s->cfg.features_offered);
	cfg_u64(&w, CFG_VQ_COUNT, s->cfg.vq_count);
	cfg_u64(&w, CFG_VQ_MAX_SIZE, s->cfg.vq_max_size);
	cfg_u64(&w, CFG_CONFIG_SIZE, s->cfg.config_size);
	put16(&w, CFG_MAC);
	put16(&w, 6);
	put(&w, s->cfg.mac, 6);
	cfg_u64(&w, CFG_MTU, s->cfg.mtu);
	cfg_u64(&w, CFG_MAX_VQP, s->cfg.max_vqp);
	cfg_u64(&w, CFG_CAPACITY, s->cfg.capacity);
	cfg_u64(&w, CFG_BLK_SIZE, s->cfg.blk_size);
	sec_end(&w, at, &nsec);

	if (s->has_features) {
		at = sec_begin(&w, SEC_FEATURES);
		put64(&w, s->features);
		put64(&w, s->backend_features);
		put(&w, &s->status, 1);
		put(&w, NULL, 7);
		sec_end(&w, at, &nsec);

		at = sec_begin(&w, SEC_QUEUES);
		put32(&w, s->nqueues);
		put32(&w, 0);
		for (i = 0; i < s->nqueues; i++) {
			const struct vdpa_state_queue *q = &s->q[i];
			uint8_t en = q->enabled;

			put32(&w, q->index);
			put16(&w, q->size);
			put16(&w, q->base);
			put16(&w, q->used_idx);
			put(&w, &en, 1);
			put(&w, NULL, 5);
			put64(&w, q->desc);
			put64(&w, q->avail);
			put64(&w, q->used);
		}
		sec_end(&w, at, &nsec);
	}
	if (s->has_net) {
		uint8_t b[2] = { s->net.promisc, s->net.allmulti };

		at = sec_begin(&w, SEC_NET);
		put(&w, s->net.mac, 6);
		put16(&w, s->net.queue_pairs);
		put(&w, b, 2);
		put(&w, NULL, 6);
		sec_end(&w, at, &nsec);
	}
	if (s->has_net && !net_rx_default(&s->net)) {
		uint8_t f = (uint8_t)(s->net.alluni | s->net.nomulti << 1 |
				      s->net.nouni << 2 | s->net.nobcast << 3);

		if (s->net.n_uc > VDPA_STATE_MAC_TABLE_MAX ||
		    s->net.n_mc > VDPA_STATE_MAC_TABLE_MAX) {
			free(w.p);
			return -EINVAL;
		}
		at = sec_begin(&w, SEC_NET_RX);
		put(&w, &f, 1);
		put(&w, NULL, 1);
		put16(&w, s->net.n_uc);
		put16(&w, s->net.n_mc);
		put16(&w, 0);
		put(&w, s->net.uc, 6 * (size_t)s->net.n_uc);
		put(&w, s->net.mc, 6 * (size_t)s->net.n_mc);
		sec_end(&w, at, &nsec);
	}
	if (s->has_device) {
		at = sec_begin(&w, SEC_DEVICE);
		if (!split) {
			put(&w, s->device, s->device_len);
			sec_end(&w, at, &nsec);
		} else if (s->device_len > UINT32_MAX) {
			w.err = -EINVAL;
		} else {
			/* the payload follows the head where it is */
			uint32_t l = htole32((uint32_t)s->device_len);

			if (!w.err)
				memcpy(w.p + at + 4, &l, 4);
			nsec++;
		}
	}
	if (!split)
		put32(&w, 0);		/* crc */
	if (w.err) {
		free(w.p);
		return w.err;
	}
	total = htole64(w.len + (split ? (s->has_device ? s->device_len : 0) +
				 CRC_LEN : 0));
	nsec = htole32(nsec);
	memcpy(w.p + 16, &total, 8);
	memcpy(w.p + 24, &nsec, 4);
	if (split) {
		crc = crc32c(0, w.p, w.len);
		if (s->has_device && s->device_len)
			crc = crc32c(crc, s->device, s->device_len);
		crc = htole32(crc);
		memcpy(ret_crc, &crc, 4);
	} else {
		crc = htole32(crc32c(0, w.p, w.len - CRC_LEN));
		memcpy(w.p + w.len - CRC_LEN, &crc, 4);
	}
	*ret_buf = w.p;
	*ret_len = w.len;
	return 0;
}

int vdpa_state_encode(const struct vdpa_state *s, void **ret_buf,
		      size_t *ret_len)
{
	return encode(s, false, ret_buf, ret_len, NULL);
}

int state_encode_split(const struct vdpa_state *s, void **ret_head,
		       size_t *ret_head_len, uint8_t ret_crc[4])
{
	return encode(s, true, ret_head, ret_head_len, ret_crc);
}

/* ---- decode ------------------------------------------------------------- */

__attribute__((format(printf, 3, 4)))
static int fail(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf && errlen) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return 0;
}

#define FAIL(err, ...) do { fail(errbuf, errlen, __VA_ARGS__); r = (err); goto out; } while (0)

static bool pow2(uint32_t v) { return v && !(v & (v - 1)); }

static int decode_config(struct vdpa_state *s, const uint8_t *p, uint32_t len,
			 size_t off, char *errbuf, size_t errlen)
{
	uint32_t pos = 0, seen = 0;
	int r = 0;

	while (pos < len) {
		uint16_t key, vl;
		uint64_t v = 0;

		if (len - pos < 4)
			FAIL(-EBADMSG, "truncated at offset %zu (config parameter header)",
			     off + pos);
		key = get16(p + pos);
		vl = get16(p + pos + 2);
		pos += 4;
		if (vl > len - pos)
			FAIL(-EBADMSG, "config parameter %u length %u beyond "
			     "its section", key, vl);
		if (key == 0 || key > CFG_BLK_SIZE)
			FAIL(-EBADMSG, "unknown config parameter %u", key);
		if (seen & (1u << key))
			FAIL(-EBADMSG, "duplicate config parameter %u", key);
		seen |= 1u << key;
		if (vl != (key == CFG_MAC ? 6 : 8))
			FAIL(-EBADMSG, "config parameter %u has length %u", key, vl);
		if (key != CFG_MAC)
			v = get64(p + pos);
		switch (key) {
		case CFG_DEVICE_ID: s->cfg.device_id = (uint32_t)v; break;
		case CFG_FEATURES: s->cfg.features_offered = v; break;
		case CFG_VQ_COUNT: s->cfg.vq_count = (uint32_t)v; break;
		case CFG_VQ_MAX_SIZE: s->cfg.vq_max_size = (uint16_t)v; break;
		case CFG_CONFIG_SIZE: s->cfg.config_size = (uint32_t)v; break;
		case CFG_MAC: memcpy(s->cfg.mac, p + pos, 6); break;
		case CFG_MTU: s->cfg.mtu = (uint16_t)v; break;
		case CFG_MAX_VQP: s->cfg.max_vqp = (uint16_t)v; break;
		case CFG_CAPACITY: s->cfg.capacity = v; break;
		case CFG_BLK_SIZE: s->cfg.blk_size = (uint32_t)v; break;
		}
		if ((key == CFG_VQ_COUNT && v > VDPA_STATE_MAX_QUEUES) ||
		    (key == CFG_VQ_MAX_SIZE && v > 32768) ||
		    ((key == CFG_MTU || key == CFG_MAX_VQP) && v > 65535) ||
		    ((key == CFG_DEVICE_ID || key == CFG_CONFIG_SIZE ||
		      key == CFG_BLK_SIZE) && v > UINT32_MAX))
			FAIL(-EINVAL, "config parameter %u: impossible value %" PRIu64,
			     key, v);
		pos += vl;
	}
	if (seen != 0x7feu)
		FAIL(-EBADMSG, "config section lacks parameters (mask 0x%x)", seen);
out:
	return r;
}

static int decode_queues(struct vdpa_state *s, const uint8_t *p, uint32_t len,
			 char *errbuf, size_t errlen)
{
	uint64_t seen = 0;
	uint32_t n, i;
	int r = 0;

	if (len < 8)
		FAIL(-EBADMSG, "queues section too short");
	n = get32(p);
	if ((uint64_t)n * QUEUE_REC != len - 8)
		FAIL(-EBADMSG, "queues section: %u queues do not fit its "
		     "length %u", n, len);
	if (n > VDPA_STATE_MAX_QUEUES)
		FAIL(-EINVAL, "queues section: %u queues, more than %u", n,
		     VDPA_STATE_MAX_QUEUES);
	s->nqueues = n;
	for (i = 0; i < n; i++) {
		const uint8_t *q = p + 8 + (size_t)i * QUEUE_REC;
		struct vdpa_state_queue *d = &s->q[i];
		uint16_t inflight;

		d->index = get32(q);
		d->size = get16(q + 4);
		d->base = get16(q + 6);
		d->used_idx = get16(q + 8);
		d->enabled = q[10];
		d->desc = get64(q + 16);
		d->avail = get64(q + 24);
		d->used = get64(q + 32);
		if (q[10] > 1)
			FAIL(-EINVAL, "queue %u: enabled flag %u", d->index, q[10]);
		if (d->index >= s->cfg.vq_count)
			FAIL(-EINVAL, "queue %u: index beyond the device's %u "
			     "queues", d->index, s->cfg.vq_count);
		if (seen & (1ull << d->index))
			FAIL(-EINVAL, "queue %u: listed twice", d->index);
		seen |= 1ull << d->index;
		if (!pow2(d->size) || d->size > s->cfg.vq_max_size)
			FAIL(-EINVAL, "queue %u: size %u not a power of 2 up to "
			     "%u", d->index, d->size, s->cfg.vq_max_size);
		inflight = (uint16_t)(d->base - d->used_idx);
		if (inflight > d->size)
			FAIL(-EINVAL, "queue %u: avail-used %u larger than queue "
			     "size %u", d->index, inflight, d->size);
	}
out:
	return r;
}

static int decode(const void *buf, size_t len, size_t cap, bool own,
		  const uint32_t *crc_done, struct vdpa_state **ret,
		  char *errbuf, size_t errlen);

int vdpa_state_decode(const void *buf, size_t len, size_t cap,
		      struct vdpa_state **ret, char *errbuf, size_t errlen)
{
	return decode(buf, len, cap, false, NULL, ret, errbuf, errlen);
}

size_t state_blob_announced(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t total;

	if (len < 24 || get64(p) != STATE_MAGIC)
		return 0;
	total = get64(p + 16);
	return total > SIZE_MAX - 1 ? 0 : (size_t)total;
}

int state_decode_owned(void *buf, size_t len, size_t cap,
		       const uint32_t *crc_done, struct vdpa_state **ret,
		       char *errbuf, size_t errlen)
{
	int r = decode(buf, len, cap, true, crc_done, ret, errbuf, errlen);

	if (!r)
		(*ret)->backing = buf;
	return r;
}

/* own: the device section is left in buf (which the caller then hands to
 * the state) instead of being copied: 64 MiB states are not copied twice */
static int decode(const void *buf, size_t len, size_t cap, bool own,
		  const uint32_t *crc_done, struct vdpa_state **ret,
		  char *errbuf, size_t errlen)
{
	const uint8_t *p = buf;
	struct vdpa_state *s = NULL;
	uint64_t total;
	uint32_t nsec, i, done = 0;
	uint16_t version;
	size_t off;
	int r = 0;

	if (!ret || (!buf && len))
		return -EINVAL;
	if (!cap)
		cap = VDPA_STATE_DEFAULT_CAP;
	if (!len)
		FAIL(-ENODATA, "empty state");
	if (len > cap)
		FAIL(-EFBIG, "blob length %zu exceeds cap %zu", len, cap);
	if (len < HDR_LEN)
		FAIL(-EBADMSG, "truncated at offset %zu (header)", len);
	if (get64(p) != STATE_MAGIC)
		FAIL(-EBADMSG, "bad magic (not a vdpa-user state)");
	version = get16(p + 8);
	if (version > VDPA_STATE_VERSION)
		FAIL(-EPROTONOSUPPORT, "format version %u is newer than "
		     "supported %u", version, VDPA_STATE_VERSION);
	if (version == 0 || get16(p + 10) != HDR_LEN || get32(p + 12) ||
	    get32(p + 28))
		FAIL(-EBADMSG, "malformed header (version %u, header length %u)",
		     version, get16(p + 10));
	total = get64(p + 16);
	if (total > cap)
		FAIL(-EFBIG, "blob length %" PRIu64 " exceeds cap %zu", total, cap);
	if (total > len)
		FAIL(-EBADMSG, "truncated: header says %" PRIu64 " bytes, have %zu",
		     total, len);
	if (total < len)
		FAIL(-EBADMSG, "%zu bytes after the end of the state",
		     len - (size_t)total);
	if (total < HDR_LEN + CRC_LEN)
		FAIL(-EBADMSG, "length %" PRIu64 " too short", total);
	if ((crc_done ? *crc_done : crc32c(0, p, len - CRC_LEN)) !=
	    get32(p + len - CRC_LEN))
		FAIL(-EBADMSG, "crc mismatch (corrupted state)");
	nsec = get32(p + 24);
	s = vdpa_state_new();
	if (!s)
		FAIL(-ENOMEM, "out of memory");
	s->blob_version = version;
	s->blob_len = total;
	off = HDR_LEN;
	for (i = 0; i < nsec; i++) {
		uint16_t type, flags;
		uint32_t sl;
		const uint8_t *d;

		if (len - CRC_LEN - off < SEC_HDR_LEN)
			FAIL(-EBADMSG, "truncated at offset %zu (section %u "
			     "header)", off, i);
		type = get16(p + off);
		flags = get16(p + off + 2);
		sl = get32(p + off + 4);
		off += SEC_HDR_LEN;
		if (sl > len - CRC_LEN - off)
			FAIL(-EBADMSG, "section %u length %u beyond end of data",
			     i, sl);
		if (flags)
			FAIL(-EBADMSG, "section %u: unknown flags 0x%x", i, flags);
		d = p + off;
		off += sl;
		if (s->nsections < VDPA_STATE_MAX_SECTIONS) {
			struct vdpa_state_section *e =
				&s->sections[s->nsections++];

			e->type = type;
			e->len = sl;
		}
		if (!(type & MANDATORY) && type > 0)
			continue;	/* unknown optional section: skipped */
		if (type < SEC_MODEL || type > SEC_NET_RX)
			FAIL(-EBADMSG, "unknown mandatory section type 0x%04x",
			     type);
		if (done & (1u << (type & 0xff)))
			FAIL(-EBADMSG, "duplicate section type 0x%04x", type);
		done |= 1u << (type & 0xff);
		switch (type) {
		case SEC_MODEL:
			if (!sl || sl >= sizeof(s->model) || memchr(d, 0, sl))
				FAIL(-EBADMSG, "model URI of length %u", sl);
			memcpy(s->model, d, sl);
			break;
		case SEC_CONFIG:
			if (!(done & (1u << (SEC_MODEL & 0xff))))
				FAIL(-EBADMSG, "config section before model");
			r = decode_config(s, d, sl, (size_t)(d - p), errbuf,
					  errlen);
			if (r < 0)
				goto out;
			break;
		case SEC_FEATURES:
			if (!(done & (1u << (SEC_CONFIG & 0xff))))
				FAIL(-EBADMSG, "features section before config");
			if (sl != FEATURES_LEN)
				FAIL(-EBADMSG, "features section length %u", sl);
			s->has_features = true;
			s->features = get64(d);
			s->backend_features = get64(d + 8);
			s->status = d[16];
			if (s->features & ~s->cfg.features_offered)
				FAIL(-EINVAL, "negotiated features 0x%" PRIx64
				     " not offered", s->features &
				     ~s->cfg.features_offered);
			break;
		case SEC_QUEUES:
			if (!(done & (1u << (SEC_CONFIG & 0xff))))
				FAIL(-EBADMSG, "queues section before config");
			r = decode_queues(s, d, sl, errbuf, errlen);
			if (r < 0)
				goto out;
			break;
		case SEC_NET:
			if (sl != NET_LEN || d[8] > 1 || d[9] > 1)
				FAIL(-EBADMSG, "net section malformed");
			s->has_net = true;
			memcpy(s->net.mac, d, 6);
			s->net.queue_pairs = get16(d + 6);
			s->net.promisc = d[8];
			s->net.allmulti = d[9];
			break;
		case SEC_NET_RX: {
			uint16_t nu, nm;

			if (!s->has_net)
				FAIL(-EBADMSG, "net RX section before net");
			if (sl < NET_RX_HDR || (d[0] & ~0xfu) || d[1] ||
			    get16(d + 6))
				FAIL(-EBADMSG, "net RX section malformed");
			nu = get16(d + 2);
			nm = get16(d + 4);
			if (nu > VDPA_STATE_MAC_TABLE_MAX ||
			    nm > VDPA_STATE_MAC_TABLE_MAX)
				FAIL(-EINVAL, "net: MAC table of %u unicast and "
				     "%u multicast entries, at most %u each",
				     nu, nm, VDPA_STATE_MAC_TABLE_MAX);
			if (sl != NET_RX_HDR + 6u * (nu + nm))
				FAIL(-EBADMSG, "net RX section of %u bytes for "
				     "%u+%u MAC entries", sl, nu, nm);
			s->net.alluni = d[0] & 1;
			s->net.nomulti = !!(d[0] & 2);
			s->net.nouni = !!(d[0] & 4);
			s->net.nobcast = !!(d[0] & 8);
			s->net.n_uc = nu;
			s->net.n_mc = nm;
			memcpy(s->net.uc, d + NET_RX_HDR, 6u * nu);
			memcpy(s->net.mc, d + NET_RX_HDR + 6u * nu, 6u * nm);
			break;
		}
		case SEC_DEVICE:
			s->has_device = true;
			s->device_len = sl;
			if (sl && own) {
				s->device = (void *)d;
			} else if (sl) {
				s->device = malloc(sl);
				if (!s->device)
					FAIL(-ENOMEM, "out of memory");
				memcpy(s->device, d, sl);
			}
			break;
		}
	}
	if (off != len - CRC_LEN)
		FAIL(-EBADMSG, "%zu bytes after the last section",
		     len - CRC_LEN - off);
	if ((done & 0x6) != 0x6)
		FAIL(-EBADMSG, "missing %s section",
		     done & 2 ? "config" : "model");
	if (!!(done & (1u << (SEC_FEATURES & 0xff))) !=
	    !!(done & (1u << (SEC_QUEUES & 0xff))))
		FAIL(-EBADMSG, "features and queues sections must come together");
	if (s->has_net && s->net.queue_pairs > s->cfg.max_vqp)
		FAIL(-EINVAL, "net: %u queue pairs beyond max %u",
		     s->net.queue_pairs, s->cfg.max_vqp);
	*ret = s;
	return 0;
out:
	if (own && s)
		s->device = NULL;	/* still the caller's buffer */
	vdpa_state_free(s);
	return r;
}

/* ---- escaping ------------------------------------------------------------ */

char *state_escape(char *out, size_t outlen, const char *s, size_t len,
		   bool json)
{
	size_t o = 0, i;

	if (!outlen)
		return out;
	for (i = 0; i < len && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[8];
		int n;

		if (c == '\\' || (json && c == '"'))
			n = snprintf(e, sizeof(e), "\\%c", c);
		else if (c == '\n')
			n = snprintf(e, sizeof(e), "\\n");
		else if (c == '\r')
			n = snprintf(e, sizeof(e), "\\r");
		else if (c == '\t')
			n = snprintf(e, sizeof(e), "\\t");
		else if (c < 0x20 || c >= 0x7f)
			n = snprintf(e, sizeof(e), json ? "\\u%04x" : "\\x%02x",
				     c);
		else
			n = snprintf(e, sizeof(e), "%c", c);
		if (o + (size_t)n >= outlen)
			break;
		memcpy(out + o, e, (size_t)n);
		o += (size_t)n;
	}
	out[o] = '\0';
	return out;
}

/* ---- compatibility ------------------------------------------------------ */

int vdpa_state_compat(const struct vdpa_state *src,
		      const struct vdpa_state *dst, char *errbuf,
		      size_t errlen)
{
	const struct vdpa_state_config *a = &src->cfg, *b = &dst->cfg;
	int r = 0;

#define CMP(field, name, fmt)						\
	if (a->field != b->field)					\
		FAIL(-EPROTO, name ": source " fmt ", destination " fmt,	\
		     a->field, b->field)

	if (strcmp(src->model, dst->model)) {
		char x[STATE_ESCAPED_MAX], y[STATE_ESCAPED_MAX];

		/* one line, whatever bytes a hostile blob's model holds */
		FAIL(-EPROTO, "model: source %s, destination %s",
		     state_escape(x, sizeof(x), src->model,
				  sizeof(src->model), false),
		     state_escape(y, sizeof(y), dst->model,
				  sizeof(dst->model), false));
	}
	CMP(device_id, "device id", "%u");
	CMP(features_offered, "device features", "0x%" PRIx64);
	CMP(vq_count, "queue count", "%u");
	CMP(vq_max_size, "max queue size", "%u");
	CMP(config_size, "config size", "%u");
	if (memcmp(a->mac, b->mac, 6))
		FAIL(-EPROTO, "mac: source %02x:%02x:%02x:%02x:%02x:%02x, "
		     "destination %02x:%02x:%02x:%02x:%02x:%02x",
		     a->mac[0], a->mac[1], a->mac[2], a->mac[3], a->mac[4],
		     a->mac[5], b->mac[0], b->mac[1], b->mac[2], b->mac[3],
		     b->mac[4], b->mac[5]);
	CMP(mtu, "mtu", "%u");
	CMP(max_vqp, "max_vqp", "%u");
	CMP(capacity, "capacity", "%" PRIu64);
	CMP(blk_size, "blk_size", "%u");
#undef CMP
out:
	return r;
}

/* ---- printing ------------------------------------------------------------ */

static void json_mac(FILE *f, const char *key, const uint8_t *m, bool comma)
{
	fprintf(f, "\"%s\":\"%02x:%02x:%02x:%02x:%02x:%02x\"%s", key, m[0],
		m[1], m[2], m[3], m[4], m[5], comma ? "," : "");
}

static const char *section_name(uint16_t type)
{
	static const char *const names[] = {
		NULL, "model", "config", "features", "queues", "net", "device",
		"net-rx",
	};

	return (type & MANDATORY) && (type & 0xff) < 8 && !(type & 0x7f00) ?
	       names[type & 0xff] : NULL;
}

static void print_json(const struct vdpa_state *s, FILE *f)
{
	const struct vdpa_state_config *c = &s->cfg;
	char model[STATE_ESCAPED_MAX];
	uint32_t i;

	fprintf(f, "{\"format_version\":%u,\"blob_bytes\":%" PRIu64
		",\"sections\":[", s->blob_len ? s->blob_version :
		VDPA_STATE_VERSION, s->blob_len);
	for (i = 0; i < s->nsections; i++) {
		const struct vdpa_state_section *e = &s->sections[i];
		const char *n = section_name(e->type);

		fprintf(f, "%s{\"type\":%u,\"name\":\"%s\",\"bytes\":%u,"
			"\"mandatory\":%s}", i ? "," : "", e->type,
			n ? n : "unknown", e->len,
			e->type & MANDATORY ? "true" : "false");
	}
	fprintf(f, "],\"model\":\"%s\",\"config\":",
		state_escape(model, sizeof(model), s->model,
			     sizeof(s->model), true));
	fprintf(f, "{\"device_id\":%u,\"features\":%" PRIu64
		",\"vq_count\":%u,\"vq_max_size\":%u,\"config_size\":%u,",
		c->device_id, c->features_offered, c->vq_count, c->vq_max_size,
		c->config_size);
	json_mac(f, "mac", c->mac, true);
	fprintf(f, "\"mtu\":%u,\"max_vqp\":%u,\"capacity\":%" PRIu64
		",\"blk_size\":%u}", c->mtu, c->max_vqp, c->capacity,
		c->blk_size);
	if (s->has_features) {
		fprintf(f, ",\"features\":%" PRIu64 ",\"backend_features\":%"
			PRIu64 ",\"status\":%u,\"queues\":[", s->features,
			s->backend_features, s->status);
		for (i = 0; i < s->nqueues; i++) {
			const struct vdpa_state_queue *q = &s->q[i];

			fprintf(f, "%s{\"index\":%u,\"size\":%u,\"base\":%u,"
				"\"used_idx\":%u,\"enabled\":%s,\"desc\":%" PRIu64
				",\"avail\":%" PRIu64 ",\"used\":%" PRIu64 "}",
				i ? "," : "", q->index, q->size, q->base,
				q->used_idx, q->enabled ? "true" : "false",
				q->desc, q->avail, q->used);
		}
		fprintf(f, "]");
	}
	if (s->has_net) {
		fprintf(f, ",\"net\":{");
		json_mac(f, "mac", s->net.mac, true);
		fprintf(f, "\"queue_pairs\":%u,\"promisc\":%s,\"allmulti\":%s}",
			s->net.queue_pairs, s->net.promisc ? "true" : "false",
			s->net.allmulti ? "true" : "false");
	}
	fprintf(f, ",\"device_state\":");
	if (s->has_device)
		fprintf(f, "{\"bytes\":%zu}", s->device_len);
	else
		fprintf(f, "null");
	fprintf(f, "}\n");
}

int vdpa_state_print(const struct vdpa_state *s, FILE *f, bool json)
{
	const struct vdpa_state_config *c = &s->cfg;
	char model[STATE_ESCAPED_MAX];
	uint32_t i;

	if (!s || !f)
		return -EINVAL;
	if (json) {
		print_json(s, f);
		return ferror(f) ? -EIO : 0;
	}
	if (s->blob_len) {
		fprintf(f, "format version %u, %" PRIu64 " bytes, crc32c ok\n"
			"sections:", s->blob_version, s->blob_len);
		for (i = 0; i < s->nsections; i++) {
			const struct vdpa_state_section *e = &s->sections[i];
			const char *n = section_name(e->type);

			if (n)
				fprintf(f, " %s (%u)", n, e->len);
			else
				fprintf(f, " 0x%04x (%u, unknown optional: "
					"skipped)", e->type, e->len);
		}
		fputc('\n', f);
	} else {
		fprintf(f, "format version %u (not decoded from a blob)\n",
			VDPA_STATE_VERSION);
	}
	fprintf(f, "model %s\n", state_escape(model, sizeof(model), s->model,
					     sizeof(s->model), false));
	fprintf(f, "config: device id %u, features 0x%" PRIx64 ", %u queues "
		"(max size %u), config size %u\n", c->device_id,
		c->features_offered, c->vq_count, c->vq_max_size,
		c->config_size);
	fprintf(f, "  mac %02x:%02x:%02x:%02x:%02x:%02x mtu %u max_vqp %u "
		"capacity %" PRIu64 " blk_size %u\n", c->mac[0], c->mac[1],
		c->mac[2], c->mac[3], c->mac[4], c->mac[5], c->mtu, c->max_vqp,
		c->capacity, c->blk_size);
	if (s->has_features) {
		fprintf(f, "negotiated: features 0x%" PRIx64 ", backend 0x%"
			PRIx64 ", status 0x%02x\n", s->features,
			s->backend_features, s->status);
		for (i = 0; i < s->nqueues; i++) {
			const struct vdpa_state_queue *q = &s->q[i];

			fprintf(f, "  queue %u: size %u base %u used %u %s desc "
				"0x%" PRIx64 " avail 0x%" PRIx64 " used 0x%" PRIx64
				"\n", q->index, q->size, q->base, q->used_idx,
				q->enabled ? "enabled" : "disabled", q->desc,
				q->avail, q->used);
		}
	}
	if (s->has_net)
		fprintf(f, "net: mac %02x:%02x:%02x:%02x:%02x:%02x queue pairs "
			"%u promisc %d allmulti %d\n", s->net.mac[0],
			s->net.mac[1], s->net.mac[2], s->net.mac[3],
			s->net.mac[4], s->net.mac[5], s->net.queue_pairs,
			s->net.promisc, s->net.allmulti);
	if (s->has_device)
		fprintf(f, "device state: %zu bytes (opaque)\n", s->device_len);
	else
		fprintf(f, "device state: none (the device has no state "
			"extension)\n");
	return ferror(f) ? -EIO : 0;
}
