// SPDX-License-Identifier: MIT
/* state-blob: the state blob codec (vdpa_state_encode/_decode/_compat). */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vdpa-user/net.h>
#include <vdpa-user/state.h>
#include <vdpa-user/vdpa-user.h>

#include "sim.h"
#include "tap.h"

/* The layout of docs/state-format.md, as far as the test edits it. */
#define HDR_LEN		32u
#define SEC_HDR_LEN	8u
#define CRC_LEN		4u
#define OFF_VERSION	8u
#define OFF_HDR_LEN	10u
#define OFF_TOTAL	16u
#define OFF_NSEC	24u
#define MANDATORY	0x8000u
#define SEC_MODEL	(MANDATORY | 1)
#define SEC_CONFIG	(MANDATORY | 2)
#define SEC_FEATURES	(MANDATORY | 3)
#define SEC_QUEUES	(MANDATORY | 4)
#define SEC_NET		(MANDATORY | 5)
#define SEC_DEVICE	(MANDATORY | 6)
#define CFG_VQ_COUNT	3
#define CFG_VQ_MAX_SIZE	4
#define CFG_MTU		7
#define QUEUE_REC	40u
#define Q_SIZE		4u
#define Q_BASE		6u
#define Q_USED_IDX	8u
#define Q_ENABLED	10u
#define MAX_SECS	16

/* ---- an independent CRC-32C and little-endian accessors ------------------ */

static uint32_t crc32c_ref(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t c = ~0u;
	int k;

	while (len--) {
		c ^= *p++;
		for (k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
	}
	return ~c;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
	wr16(p, (uint16_t)v);
	wr16(p + 2, (uint16_t)(v >> 16));
}

static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

/* The CRC covers every byte before it. */
static void fix_crc(uint8_t *p, size_t len)
{
	wr32(p + len - CRC_LEN, crc32c_ref(p, len - CRC_LEN));
}

static uint8_t *dup_blob(const void *p, size_t len)
{
	uint8_t *d = malloc(len ? len : 1);

	if (!d) {
		perror("malloc");
		exit(1);
	}
	memcpy(d, p, len);
	return d;
}

/* Offset of the data of the first section of type, or 0. */
static size_t sec_off(const uint8_t *p, size_t len, uint16_t type)
{
	size_t off = HDR_LEN;

	while (off + SEC_HDR_LEN <= len - CRC_LEN) {
		uint32_t sl = rd32(p + off + 4);

		if (rd16(p + off) == type)
			return off + SEC_HDR_LEN;
		off += SEC_HDR_LEN + sl;
	}
	return 0;
}

/* Offset of the value of config parameter key, or 0. */
static size_t cfg_off(const uint8_t *p, size_t len, uint16_t key)
{
	size_t at = sec_off(p, len, SEC_CONFIG), pos;
	uint32_t sl;

	if (!at)
		return 0;
	sl = rd32(p + at - 4);
	for (pos = 0; pos + 4 <= sl; pos += 4 + rd16(p + at + pos + 2))
		if (rd16(p + at + pos) == key)
			return at + pos + 4;
	return 0;
}

/* A blob as a list of sections, to insert, drop or replace some. */
struct sec {
	uint16_t type, flags;
	uint32_t len;
	const uint8_t *data;
};

struct layout {
	uint8_t hdr[HDR_LEN];
	unsigned int n;
	struct sec s[MAX_SECS];
};

static bool parse(const uint8_t *p, size_t len, struct layout *l)
{
	size_t off = HDR_LEN;

	memset(l, 0, sizeof(*l));
	memcpy(l->hdr, p, HDR_LEN);
	while (off < len - CRC_LEN) {
		struct sec *s;

		if (l->n == MAX_SECS || off + SEC_HDR_LEN > len - CRC_LEN)
			return false;
		s = &l->s[l->n++];
		s->type = rd16(p + off);
		s->flags = rd16(p + off + 2);
		s->len = rd32(p + off + 4);
		s->data = p + off + SEC_HDR_LEN;
		off += SEC_HDR_LEN + s->len;
	}
	return off == len - CRC_LEN && l->n == rd32(p + OFF_NSEC);
}

/* Serialize with a consistent total, section count and crc. */
static uint8_t *build(const struct layout *l, size_t *ret_len)
{
	size_t len = HDR_LEN + CRC_LEN, off = HDR_LEN;
	unsigned int i;
	uint8_t *p;

	for (i = 0; i < l->n; i++)
		len += SEC_HDR_LEN + l->s[i].len;
	p = calloc(1, len);
	if (!p) {
		perror("calloc");
		exit(1);
	}
	memcpy(p, l->hdr, HDR_LEN);
	for (i = 0; i < l->n; i++) {
		wr16(p + off, l->s[i].type);
		wr16(p + off + 2, l->s[i].flags);
		wr32(p + off + 4, l->s[i].len);
		if (l->s[i].len)
			memcpy(p + off + SEC_HDR_LEN, l->s[i].data, l->s[i].len);
		off += SEC_HDR_LEN + l->s[i].len;
	}
	wr64(p + OFF_TOTAL, len);
	wr32(p + OFF_NSEC, l->n);
	fix_crc(p, len);
	*ret_len = len;
	return p;
}

static void insert_sec(struct layout *l, unsigned int at, uint16_t type,
		       const void *data, uint32_t len)
{
	memmove(&l->s[at + 1], &l->s[at], (l->n - at) * sizeof(l->s[0]));
	l->s[at] = (struct sec){ type, 0, len, data };
	l->n++;
}

static int sec_index(const struct layout *l, uint16_t type)
{
	unsigned int i;

	for (i = 0; i < l->n; i++)
		if (l->s[i].type == type)
			return (int)i;
	return -1;
}

/* ---- decode expectations ------------------------------------------------- */

static bool one_line(const char *msg)
{
	return msg[0] && !strchr(msg, '\n');
}

static struct vdpa_state untouched;

/* Decode; r, and the message in msg. Frees a state it should not get. */
static int try_decode(const void *buf, size_t len, size_t cap, char *msg,
		      size_t msglen, bool *ret_untouched)
{
	struct vdpa_state *s = &untouched;
	int r;

	msg[0] = 0;
	r = vdpa_state_decode(buf, len, cap, &s, msg, msglen);
	*ret_untouched = s == &untouched;
	if (r == 0 && s != &untouched)
		vdpa_state_free(s);
	return r;
}

/* One assertion: decode refuses buf with want, names it with needle. */
static void refuse(const void *buf, size_t len, size_t cap, int want,
		   const char *needle, const char *what)
{
	char msg[256];
	bool same;
	int r = try_decode(buf, len, cap, msg, sizeof(msg), &same);

	if (!tap_ok(r == want && same && one_line(msg) &&
		    (!needle || strstr(msg, needle)), "%s: %s (\"%s\")", what,
		    strerror(-want), msg))
		tap_diag("  got %d (%s), state pointer %s, message \"%s\", "
			 "want \"%s\"", r, strerror(-r), same ? "untouched" :
			 "changed", msg, needle ? needle : "(any one line)");
}

/* ---- states --------------------------------------------------------------- */

static struct vsim_thread *sim_thr;
static struct vdpa_dev *sim_dev;

static int sim_open(const struct vsim_opts *o)
{
	int fd, r;

	r = vsim_thread_start(o, &fd, &sim_thr);
	if (r < 0)
		return r;
	r = vdpa_dev_open_sim_fd(fd, "sim:state-blob", &sim_dev);
	if (r < 0) {
		vsim_thread_stop(sim_thr);
		sim_thr = NULL;
	}
	return r;
}

static void sim_close(void)
{
	vdpa_dev_close(sim_dev);
	vsim_thread_stop(sim_thr);
	sim_dev = NULL;
	sim_thr = NULL;
}

/* The description of a thread simulator with opts o. */
static struct vdpa_state *describe(const struct vsim_opts *o)
{
	struct vdpa_state *d = NULL;

	if (sim_open(o) < 0)
		return NULL;
	if (vdpa_state_describe(sim_dev, &d) < 0)
		d = NULL;
	sim_close();
	return d;
}

static void rx_nop(const void *frame, size_t len, void *opaque)
{
}

/*
 * A real saved state: a 4-pair net simulator driven by the library's
 * driver, some traffic, suspended and saved with its device section.
 */
static struct vdpa_state *saved_net_state(struct vdpa_state **ret_desc)
{
	static const uint8_t frame[64] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
					   0x02, 0, 0, 0, 0, 1, 0x88, 0xb5 };
	struct vdpa_net_opts no = { .queue_pairs = 4, .vq_size = 64 };
	struct vdpa_net_class_state c;
	struct vdpa_state *s = NULL, *desc = NULL;
	struct vdpa_net *net = NULL;
	struct vdpa_mem *mem = NULL;
	struct vsim_opts o;
	unsigned int qp, k;

	vsim_opts_init(&o, VSIM_TYPE_NET);
	o.queue_pairs = 4;
	if (sim_open(&o) < 0)
		return NULL;
	if (vdpa_state_describe(sim_dev, &desc) < 0 ||
	    vdpa_mem_create(16u << 20, 0x40000000ull, &mem) < 0 ||
	    vdpa_net_open(sim_dev, mem, &no, &net) < 0)
		goto out;
	for (qp = 0; qp < 4; qp++) {
		for (k = 0; k <= qp * 3; k++)
			vdpa_net_send(net, qp, frame, sizeof(frame));
		vdpa_net_kick_tx(net, qp);
	}
	for (k = 0; k < 20; k++) {
		vdpa_net_wait_rx(net, 10);
		for (qp = 0; qp < 4; qp++) {
			vdpa_net_receive(net, qp, rx_nop, NULL, 64);
			vdpa_net_reap_tx(net, qp);
		}
	}
	vdpa_net_set_rx_mode(net, true, false);
	if (vdpa_dev_suspend(sim_dev) < 0 ||
	    vdpa_state_save_device(sim_dev, desc, &s) < 0) {
		s = NULL;
		goto out;
	}
	vdpa_net_class_state(net, &c);
	vdpa_state_set_net(s, c.mac, c.queue_pairs, c.promisc, c.allmulti);
out:
	vdpa_net_close(net);
	sim_close();
	vdpa_mem_destroy(mem);
	if (s && ret_desc)
		*ret_desc = desc;
	else
		vdpa_state_free(desc);
	return s;
}

/* A hand-made net state, when the simulator is not usable. */
static struct vdpa_state *hand_state(struct vdpa_state **ret_desc)
{
	static uint8_t dev[300];
	struct vdpa_state *s = vdpa_state_new(), *d = vdpa_state_new();
	uint32_t i;

	if (!s || !d)
		exit(1);
	snprintf(s->model, sizeof(s->model), "vdpa-sim://net");
	s->cfg = (struct vdpa_state_config){
		.device_id = 1, .features_offered = 0x1310f8020ull,
		.vq_count = 9, .vq_max_size = 256, .config_size = 16,
		.mac = { 0, 0x11, 0x22, 0x33, 0x44, 0x55 }, .mtu = 1500,
		.max_vqp = 4,
	};
	*d = *s;
	s->has_features = true;
	s->features = 0x1310f8000ull;
	s->backend_features = 0x3f;
	s->status = 0xf;
	s->nqueues = 9;
	for (i = 0; i < 9; i++)
		s->q[i] = (struct vdpa_state_queue){
			.index = i, .size = 64, .base = (uint16_t)(7 * i),
			.used_idx = (uint16_t)(7 * i - (i & 1)),
			.enabled = true, .desc = 0x40000000ull + i * 0x4000,
			.avail = 0x40000400ull + i * 0x4000,
			.used = 0x40000800ull + i * 0x4000,
		};
	vdpa_state_set_net(s, s->cfg.mac, 4, true, false);
	for (i = 0; i < sizeof(dev); i++)
		dev[i] = (uint8_t)(i * 37 + 1);
	s->has_device = true;
	s->device = malloc(sizeof(dev));
	if (!s->device)
		exit(1);
	memcpy(s->device, dev, sizeof(dev));
	s->device_len = sizeof(dev);
	*ret_desc = d;
	return s;
}

static bool states_equal(const struct vdpa_state *a, const struct vdpa_state *b,
			 char *why, size_t len)
{
	const struct vdpa_state_config *x = &a->cfg, *y = &b->cfg;
	uint32_t i;

#define NE(cond, name) if (cond) { snprintf(why, len, "%s differs", name); \
				   return false; }
	NE(strcmp(a->model, b->model), "model");
	NE(x->device_id != y->device_id, "device_id");
	NE(x->features_offered != y->features_offered, "features_offered");
	NE(x->vq_count != y->vq_count, "vq_count");
	NE(x->vq_max_size != y->vq_max_size, "vq_max_size");
	NE(x->config_size != y->config_size, "config_size");
	NE(memcmp(x->mac, y->mac, 6), "mac");
	NE(x->mtu != y->mtu, "mtu");
	NE(x->max_vqp != y->max_vqp, "max_vqp");
	NE(x->capacity != y->capacity, "capacity");
	NE(x->blk_size != y->blk_size, "blk_size");
	NE(a->has_features != b->has_features, "has_features");
	NE(a->features != b->features, "features");
	NE(a->backend_features != b->backend_features, "backend_features");
	NE(a->status != b->status, "status");
	NE(a->nqueues != b->nqueues, "nqueues");
	for (i = 0; i < a->nqueues; i++) {
		const struct vdpa_state_queue *p = &a->q[i], *q = &b->q[i];

		NE(p->index != q->index || p->size != q->size ||
		   p->base != q->base || p->used_idx != q->used_idx ||
		   p->enabled != q->enabled || p->desc != q->desc ||
		   p->avail != q->avail || p->used != q->used, "a queue");
	}
	NE(a->has_net != b->has_net, "has_net");
	NE(a->has_net && (memcmp(a->net.mac, b->net.mac, 6) ||
			  a->net.queue_pairs != b->net.queue_pairs ||
			  a->net.promisc != b->net.promisc ||
			  a->net.allmulti != b->net.allmulti), "net");
	NE(a->has_device != b->has_device, "has_device");
	NE(a->device_len != b->device_len, "device_len");
	NE(a->device_len && memcmp(a->device, b->device, a->device_len),
	   "device bytes");
#undef NE
	return true;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_crc(const uint8_t *blob, size_t len)
{
	tap_is(crc32c_ref("123456789", 9), 0xe3069283u,
	       "crc: the test's CRC-32C has the standard check value");
	tap_is(rd32(blob + len - CRC_LEN), crc32c_ref(blob, len - CRC_LEN),
	       "crc: the last 4 bytes are CRC-32C of everything before them");
	tap_is(rd32(blob + OFF_TOTAL), len, "header: total length field");
}

static void test_round_trip(const struct vdpa_state *s, const uint8_t *blob,
			    size_t len, const char *what)
{
	struct vdpa_state *d = NULL;
	char msg[256] = "", why[64] = "";
	void *again = NULL;
	size_t alen = 0;
	int r;

	r = vdpa_state_decode(blob, len, 0, &d, msg, sizeof(msg));
	tap_is(r, 0, "round trip (%s): %zu-byte blob decodes", what, len);
	if (r < 0) {
		tap_diag("  %s", msg);
		return;
	}
	if (!tap_ok(states_equal(s, d, why, sizeof(why)),
		    "round trip (%s): decoded state equals the original", what))
		tap_diag("  %s", why);
	r = vdpa_state_encode(d, &again, &alen);
	tap_ok(r == 0 && alen == len && !memcmp(again, blob, len),
	       "round trip (%s): re-encoding gives the same bytes", what);
	free(again);
	vdpa_state_free(d);

	d = NULL;
	tap_is(vdpa_state_decode(blob, len, len, &d, msg, sizeof(msg)), 0,
	       "round trip (%s): cap equal to the length accepted", what);
	vdpa_state_free(d);
}

static void test_description_only(const struct vdpa_state *desc)
{
	struct vdpa_state *e = vdpa_state_new(), *d = NULL;
	char why[64] = "";
	void *blob = NULL;
	size_t len = 0;

	*e = *desc;
	e->device = e->backing = NULL;
	e->has_device = true;		/* an empty device section */
	e->device_len = 0;
	tap_is(vdpa_state_encode(e, &blob, &len), 0,
	       "description only, empty device section: encodes");
	tap_is(vdpa_state_decode(blob, len, 0, &d, NULL, 0), 0,
	       "description only, empty device section: decodes (NULL errbuf)");
	if (!tap_ok(d && states_equal(e, d, why, sizeof(why)) &&
		    !d->has_features && !d->nqueues,
		    "description only: nothing negotiated, all equal"))
		tap_diag("  %s", why);
	vdpa_state_free(d);
	free(blob);
	e->nqueues = VDPA_STATE_MAX_QUEUES + 1;
	e->has_features = true;
	blob = NULL;
	tap_is(vdpa_state_encode(e, &blob, &len), -EINVAL,
	       "encode refuses more than %d queues", VDPA_STATE_MAX_QUEUES);
	free(blob);
	e->nqueues = 0;
	memset(e->model, 'm', sizeof(e->model));
	blob = NULL;
	tap_is(vdpa_state_encode(e, &blob, &len), -EINVAL,
	       "encode refuses an unterminated model URI");
	free(blob);
	e->model[0] = '\0';
	blob = NULL;
	tap_is(vdpa_state_encode(e, &blob, &len), -EINVAL,
	       "encode refuses an empty model URI (the decoder would)");
	free(blob);
	free(e);
}

static void test_truncations(const uint8_t *blob, size_t len)
{
	size_t n, bad = 0, first = 0;
	char msg[256], fmsg[256] = "";
	bool same;
	int r, fr = 0;

	r = try_decode(blob, 0, 0, msg, sizeof(msg), &same);
	tap_ok(r == -ENODATA && same && one_line(msg),
	       "empty blob: ENODATA (\"%s\")", msg);
	for (n = 1; n < len; n++) {
		r = try_decode(blob, n, 0, msg, sizeof(msg), &same);
		if (r != -EBADMSG || !same || !one_line(msg)) {
			if (!bad++) {
				first = n;
				fr = r;
				snprintf(fmsg, sizeof(fmsg), "%s", msg);
			}
		}
	}
	if (!tap_ok(bad == 0, "every truncation 1..%zu refused with EBADMSG "
		    "and a one-line message", len - 1))
		tap_diag("  %zu wrong, first at length %zu: %d \"%s\"", bad,
			 first, fr, fmsg);

	/* a short errbuf is truncated, not overrun */
	memset(msg, 'x', sizeof(msg));
	r = vdpa_state_decode(blob, len / 2, 0, (struct vdpa_state *[1]){ 0 },
			      msg, 8);
	tap_ok(r == -EBADMSG && strlen(msg) == 7 && msg[8] == 'x',
	       "an 8-byte errbuf gets 7 characters and a NUL, nothing more");
}

static void test_trailing(const uint8_t *blob, size_t len)
{
	uint8_t *m = malloc(len + 1);

	if (!m)
		exit(1);
	memcpy(m, blob, len);
	m[len] = 0;
	refuse(m, len + 1, 0, -EBADMSG, NULL, "one byte after the end");
	free(m);
}

static void test_bit_flips(const uint8_t *blob, size_t len)
{
	uint8_t *m = dup_blob(blob, len);
	size_t off, bad = 0, fo = 0, tried = 0;
	char msg[256], fmsg[256] = "";
	int bit, r, fr = 0, fb = 0;
	bool same, ok;

	for (off = 0; off < len; off++) {
		for (bit = 0; bit < 8; bit++) {
			m[off] ^= (uint8_t)(1u << bit);
			r = try_decode(m, len, 0, msg, sizeof(msg), &same);
			m[off] ^= (uint8_t)(1u << bit);
			tried++;
			/*
			 * The crc catches everything; a higher version is
			 * named before (a newer format's crc need not be
			 * ours), as is a total length beyond the cap.
			 */
			ok = same && one_line(msg) &&
			     (r == -EBADMSG ||
			      (r == -EPROTONOSUPPORT && off >= OFF_VERSION &&
			       off < OFF_VERSION + 2) ||
			      (r == -EFBIG && off >= OFF_TOTAL &&
			       off < OFF_TOTAL + 8));
			if (!ok && !bad++) {
				fo = off;
				fb = bit;
				fr = r;
				snprintf(fmsg, sizeof(fmsg), "%s", msg);
			}
		}
	}
	if (!tap_ok(bad == 0, "all %zu single-bit flips (every bit of every "
		    "byte) refused", tried))
		tap_diag("  %zu accepted or wrongly refused, first at offset "
			 "%zu bit %d: %d \"%s\"", bad, fo, fb, fr, fmsg);

	/* a flip in the middle of the device section: the crc names it */
	off = sec_off(blob, len, SEC_DEVICE);
	if (!off)
		off = sec_off(blob, len, SEC_QUEUES);
	m[off + 1] ^= 0x10;
	refuse(m, len, 0, -EBADMSG, "crc", "bit flip inside a section");
	free(m);
}

static void test_header(const uint8_t *blob, size_t len)
{
	uint8_t *m = dup_blob(blob, len);

	m[0] ^= 0xff;
	refuse(m, len, 0, -EBADMSG, "magic", "wrong magic");
	fix_crc(m, len);
	refuse(m, len, 0, -EBADMSG, "magic", "wrong magic, crc recomputed");
	memcpy(m, blob, len);

	wr16(m + OFF_VERSION, 2);
	fix_crc(m, len);
	refuse(m, len, 0, -EPROTONOSUPPORT, "version 2",
	       "format version 2 (crc recomputed)");
	wr16(m + OFF_VERSION, 0xffff);
	fix_crc(m, len);
	refuse(m, len, 0, -EPROTONOSUPPORT, NULL, "format version 65535");
	wr16(m + OFF_VERSION, 0);
	fix_crc(m, len);
	refuse(m, len, 0, -EBADMSG, NULL, "format version 0");
	memcpy(m, blob, len);

	wr16(m + OFF_HDR_LEN, HDR_LEN + 8);
	fix_crc(m, len);
	refuse(m, len, 0, -EBADMSG, NULL, "header length 40");
	memcpy(m, blob, len);
	m[12] = 1;	/* reserved */
	fix_crc(m, len);
	refuse(m, len, 0, -EBADMSG, NULL, "reserved header word not 0");
	free(m);
}

static void test_lengths(const uint8_t *blob, size_t len)
{
	uint8_t *m = dup_blob(blob, len);
	struct vdpa_state *s;
	size_t at;
	int r;

	wr64(m + OFF_TOTAL, len + 1);
	fix_crc(m, len);
	refuse(m, len, 0, -EBADMSG, "truncated", "total length one beyond the data");
	wr64(m + OFF_TOTAL, len - 1);
	fix_crc(m, len);
	refuse(m, len, 0, -EBADMSG, NULL, "total length one short of the data");
	wr64(m + OFF_TOTAL, 8);
	fix_crc(m, len);
	refuse(m, len, 0, -EBADMSG, NULL, "total length 8 (shorter than a header)");
	memcpy(m, blob, len);

	wr32(m + OFF_NSEC, rd32(blob + OFF_NSEC) + 1);
	fix_crc(m, len);
	refuse(m, len, 0, -EBADMSG, NULL, "section count one more than present");
	wr32(m + OFF_NSEC, rd32(blob + OFF_NSEC) - 1);
	fix_crc(m, len);
	refuse(m, len, 0, -EBADMSG, "after the last section",
	       "section count one less than present");
	wr32(m + OFF_NSEC, 0xffffffffu);
	fix_crc(m, len);
	refuse(m, len, 0, -EBADMSG, NULL, "section count 2^32-1");
	memcpy(m, blob, len);

	at = sec_off(m, len, SEC_MODEL);
	wr32(m + at - 4, (uint32_t)len);
	fix_crc(m, len);
	refuse(m, len, 0, -EBADMSG, "beyond end of data",
	       "model section length beyond the data");
	wr32(m + at - 4, 0xffffffffu);
	fix_crc(m, len);
	refuse(m, len, 0, -EBADMSG, "beyond end of data",
	       "model section length 2^32-1");
	memcpy(m, blob, len);
	at = sec_off(m, len, SEC_DEVICE);
	if (at) {
		wr32(m + at - 4, rd32(m + at - 4) + 1);
		fix_crc(m, len);
		refuse(m, len, 0, -EBADMSG, "beyond end of data",
		       "device section length one beyond the data");
		memcpy(m, blob, len);
	}
	at = cfg_off(m, len, CFG_MTU);
	wr16(m + at - 2, 0xffff);
	fix_crc(m, len);
	refuse(m, len, 0, -EBADMSG, "beyond its section",
	       "config parameter length beyond its section");
	wr16(m + at - 2, 4);
	fix_crc(m, len);
	refuse(m, len, 0, -EBADMSG, NULL, "config parameter of the wrong length");
	memcpy(m, blob, len);
	at = sec_off(m, len, SEC_MODEL);
	m[at + 2] = 0;
	fix_crc(m, len);
	refuse(m, len, 0, -EBADMSG, "model", "NUL inside the model URI");
	memcpy(m, blob, len);
	m[sec_off(m, len, SEC_MODEL) - 6] = 1;	/* section flags */
	fix_crc(m, len);
	refuse(m, len, 0, -EBADMSG, "flags", "unknown section flags");

	/* the cap: beyond it is EFBIG, before reading or allocating */
	refuse(blob, len, len - 1, -EFBIG, "cap", "blob one byte beyond the cap");
	memcpy(m, blob, len);
	wr64(m + OFF_TOTAL, 4ull << 30);
	fix_crc(m, len);
	refuse(m, len, 4096, -EFBIG, "4294967296", "header claims 4 GiB, cap 4 KiB");
	refuse(m, len, 0, -EFBIG, "4294967296",
	       "header claims 4 GiB, default cap (256 MiB)");
	refuse(m, len, 8ull << 30, -EBADMSG, "truncated",
	       "header claims 4 GiB within an 8 GiB cap, fewer bytes given");
	/*
	 * A length beyond the cap is refused before a byte is read: a 64-byte
	 * buffer said to be 1 TiB long (ASan/valgrind would see a read).
	 */
	s = &untouched;
	r = vdpa_state_decode(m, 1ull << 40, 1u << 20, &s, NULL, 0);
	tap_ok(r == -EFBIG && s == &untouched,
	       "a 1 TiB length with a 1 MiB cap: EFBIG before reading the data");
	free(m);
}

static void test_impossible(const uint8_t *blob, size_t len,
			    const struct vdpa_state *s)
{
	uint8_t *m = dup_blob(blob, len);
	size_t q0 = sec_off(blob, len, SEC_QUEUES) + 8, at;
	uint16_t size = rd16(blob + q0 + Q_SIZE);
	uint16_t used = rd16(blob + q0 + Q_USED_IDX);
	uint32_t vqs = s->cfg.vq_count;
	struct layout l;
	uint8_t *big, *qs, *b2;
	size_t blen, i;
	int qi;

	if (!tap_ok(s->nqueues >= 2 && q0 > 8,
		    "the state has queues to edit (%u)", s->nqueues)) {
		free(m);
		return;
	}
	/* vring base: next avail entry; base - used_idx must be <= size */
	wr16(m + q0 + Q_BASE, (uint16_t)(used + size + 1));
	fix_crc(m, len);
	refuse(m, len, 0, -EINVAL, "avail-used",
	       "vring base beyond the queue (avail-used = size + 1)");
	wr16(m + q0 + Q_BASE, (uint16_t)(used + size));
	fix_crc(m, len);
	{
		struct vdpa_state *d = NULL;

		tap_is(vdpa_state_decode(m, len, 0, &d, NULL, 0), 0,
		       "avail-used equal to the queue size is accepted");
		vdpa_state_free(d);
	}
	wr16(m + q0 + Q_BASE, (uint16_t)(used - 1));
	fix_crc(m, len);
	refuse(m, len, 0, -EINVAL, "avail-used",
	       "vring base behind used_idx (avail-used = 65535)");
	memcpy(m, blob, len);
	wr16(m + q0 + Q_USED_IDX, (uint16_t)(rd16(blob + q0 + Q_BASE) + 0x8000));
	fix_crc(m, len);
	refuse(m, len, 0, -EINVAL, "avail-used", "used_idx 32768 ahead of the base");
	memcpy(m, blob, len);

	wr16(m + q0 + Q_SIZE, (uint16_t)(size - 1));
	wr16(m + q0 + Q_BASE, used);
	fix_crc(m, len);
	refuse(m, len, 0, -EINVAL, "power of 2", "queue size not a power of 2");
	wr16(m + q0 + Q_SIZE, 0);
	fix_crc(m, len);
	refuse(m, len, 0, -EINVAL, "power of 2", "queue size 0");
	wr16(m + q0 + Q_SIZE, (uint16_t)(s->cfg.vq_max_size * 2));
	fix_crc(m, len);
	refuse(m, len, 0, -EINVAL, NULL, "queue size beyond the device's maximum");
	memcpy(m, blob, len);

	wr32(m + q0, vqs);
	fix_crc(m, len);
	refuse(m, len, 0, -EINVAL, "index beyond", "queue index beyond the queue count");
	wr32(m + q0, rd32(blob + q0 + QUEUE_REC));
	fix_crc(m, len);
	refuse(m, len, 0, -EINVAL, "twice", "queue listed twice");
	memcpy(m, blob, len);
	m[q0 + Q_ENABLED] = 2;
	fix_crc(m, len);
	refuse(m, len, 0, -EINVAL, "enabled", "enabled flag 2");
	memcpy(m, blob, len);

	at = cfg_off(m, len, CFG_VQ_COUNT);
	wr64(m + at, VDPA_STATE_MAX_QUEUES + 1);
	fix_crc(m, len);
	refuse(m, len, 0, -EINVAL, "impossible value",
	       "device queue count above the maximum (config)");
	memcpy(m, blob, len);
	at = cfg_off(m, len, CFG_VQ_MAX_SIZE);
	wr64(m + at, 65536);
	fix_crc(m, len);
	refuse(m, len, 0, -EINVAL, "impossible value", "max queue size 65536");
	memcpy(m, blob, len);
	at = cfg_off(m, len, CFG_MTU);
	wr64(m + at, 65536);
	fix_crc(m, len);
	refuse(m, len, 0, -EINVAL, "impossible value", "mtu 65536");
	memcpy(m, blob, len);

	/* negotiated features the device never offered */
	at = sec_off(m, len, SEC_FEATURES);
	wr64(m + at, s->features | (~s->cfg.features_offered &
				    -~s->cfg.features_offered));
	fix_crc(m, len);
	refuse(m, len, 0, -EINVAL, "not offered", "negotiated feature not offered");
	memcpy(m, blob, len);

	if (s->has_net) {
		at = sec_off(m, len, SEC_NET);
		wr16(m + at + 6, (uint16_t)(s->cfg.max_vqp + 1));
		fix_crc(m, len);
		refuse(m, len, 0, -EINVAL, "queue pairs",
		       "net: queue pairs beyond max_vqp");
		memcpy(m, blob, len);
	}

	/*
	 * A queues section listing 65 queues, its length consistent with the
	 * count: an impossible value, not a malformed one.
	 */
	if (!tap_ok(parse(blob, len, &l), "the blob parses into sections")) {
		free(m);
		return;
	}
	qi = sec_index(&l, SEC_QUEUES);
	qs = calloc(1, 8 + (VDPA_STATE_MAX_QUEUES + 1) * QUEUE_REC);
	if (!qs)
		exit(1);
	wr32(qs, VDPA_STATE_MAX_QUEUES + 1);
	for (i = 0; i <= VDPA_STATE_MAX_QUEUES; i++) {
		memcpy(qs + 8 + i * QUEUE_REC, blob + q0, QUEUE_REC);
		wr32(qs + 8 + i * QUEUE_REC, (uint32_t)i);
	}
	l.s[qi].data = qs;
	l.s[qi].len = 8 + (VDPA_STATE_MAX_QUEUES + 1) * QUEUE_REC;
	big = build(&l, &blen);
	refuse(big, blen, 0, -EINVAL, NULL,
	       "queues section with 65 queues (> VDPA_STATE_MAX_QUEUES)");
	free(big);
	/* and a count that does not match the section's length: malformed */
	wr32(qs, 3);
	l.s[qi].len = 8 + 2 * QUEUE_REC;
	b2 = build(&l, &blen);
	refuse(b2, blen, 0, -EBADMSG, "do not fit",
	       "queues section count not matching its length");
	free(b2);
	free(qs);
	free(m);
}

static void test_sections(const uint8_t *blob, size_t len,
			  const struct vdpa_state *s)
{
	static const uint8_t junk[100] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct vdpa_state *d = NULL;
	struct layout l, k;
	char msg[256] = "", why[64] = "";
	uint8_t *b;
	size_t blen;
	int r, i;

	if (!tap_ok(parse(blob, len, &l), "the blob parses into sections"))
		return;

	/* unknown optional sections (bit 15 clear): skipped anywhere */
	k = l;
	insert_sec(&k, 0, 0x0042, junk, sizeof(junk));
	insert_sec(&k, k.n, 0x7fff, junk, 3);
	insert_sec(&k, 3, 0x0001, NULL, 0);
	b = build(&k, &blen);
	r = vdpa_state_decode(b, blen, 0, &d, msg, sizeof(msg));
	tap_is(r, 0, "unknown optional sections (0x0042, 0x7fff, empty 0x0001) "
	       "are skipped");
	if (r < 0)
		tap_diag("  %s", msg);
	if (!tap_ok(d && states_equal(s, d, why, sizeof(why)),
		    "unknown optional sections: the rest decodes unchanged"))
		tap_diag("  %s", why);
	vdpa_state_free(d);
	free(b);

	/* unknown mandatory sections (bit 15 set): refused */
	k = l;
	insert_sec(&k, k.n, 0x8042, junk, sizeof(junk));
	b = build(&k, &blen);
	refuse(b, blen, 0, -EBADMSG, "unknown mandatory section",
	       "unknown mandatory section 0x8042");
	free(b);
	k = l;
	insert_sec(&k, 0, 0xffff, NULL, 0);
	b = build(&k, &blen);
	refuse(b, blen, 0, -EBADMSG, "0xffff", "unknown mandatory section 0xffff");
	free(b);

	/* duplicates, missing and misordered mandatory sections */
	k = l;
	insert_sec(&k, 2, l.s[1].type, l.s[1].data, l.s[1].len);
	b = build(&k, &blen);
	refuse(b, blen, 0, -EBADMSG, "duplicate", "config section twice");
	free(b);
	k = l;
	k.n = 0;
	k.s[k.n++] = l.s[sec_index(&l, SEC_MODEL)];
	b = build(&k, &blen);
	refuse(b, blen, 0, -EBADMSG, "missing config", "no config section");
	free(b);
	/* negotiated features are checked against the offered ones */
	k = l;
	i = sec_index(&k, SEC_FEATURES);
	if (i >= 0) {
		struct sec f = k.s[i];
		int c = sec_index(&k, SEC_CONFIG);

		memmove(&k.s[c + 1], &k.s[c], (size_t)(i - c) * sizeof(k.s[0]));
		k.s[c] = f;
		b = build(&k, &blen);
		refuse(b, blen, 0, -EBADMSG, "before config",
		       "features section before config");
		free(b);
	}
	k = l;
	k.s[0] = l.s[1];
	k.s[1] = l.s[0];
	b = build(&k, &blen);
	refuse(b, blen, 0, -EBADMSG, "before model", "config before model");
	free(b);
	k = l;
	i = sec_index(&k, SEC_QUEUES);
	if (i >= 0) {
		memmove(&k.s[i], &k.s[i + 1],
			(k.n - (unsigned int)i - 1) * sizeof(k.s[0]));
		k.n--;
		b = build(&k, &blen);
		refuse(b, blen, 0, -EBADMSG, "together",
		       "features without queues");
		free(b);
	}
}

/* ---- compat ------------------------------------------------------------ */

static void compat_case(const struct vdpa_state *src,
			const struct vdpa_state *dst, const char *want,
			const char *what)
{
	char msg[256] = "";
	int r = vdpa_state_compat(src, dst, msg, sizeof(msg));

	if (!tap_ok(r == -EPROTO && !strcmp(msg, want), "compat: %s: \"%s\"",
		    what, want))
		tap_diag("  got %d \"%s\"", r, msg);
}

static void test_compat(const struct vdpa_state *s, const struct vdpa_state *desc)
{
	struct vdpa_state d;
	char want[256], msg[256] = "";
	int r;

	r = vdpa_state_compat(s, desc, msg, sizeof(msg));
	if (!tap_ok(r == 0, "compat: the saved state and its device's "
		    "description"))
		tap_diag("  got %d \"%s\"", r, msg);
	tap_is(vdpa_state_compat(desc, desc, msg, sizeof(msg)), 0,
	       "compat: equal descriptions");

#define CASE(stmt, fmt, ...) do {					\
		d = *desc;						\
		d.device = d.backing = NULL;				\
		stmt;							\
		snprintf(want, sizeof(want), fmt, __VA_ARGS__);	\
		compat_case(s, &d, want, #stmt);			\
	} while (0)
	CASE(snprintf(d.model, sizeof(d.model), "vdpa-sim://blk"),
	     "model: source %s, destination vdpa-sim://blk", s->model);
	CASE(d.cfg.device_id = 2, "device id: source %u, destination 2",
	     s->cfg.device_id);
	CASE(d.cfg.features_offered ^= 1ull << 35,
	     "device features: source 0x%" PRIx64 ", destination 0x%" PRIx64,
	     s->cfg.features_offered,
	     s->cfg.features_offered ^ (uint64_t)1 << 35);
	CASE(d.cfg.vq_count = 3, "queue count: source %u, destination 3",
	     s->cfg.vq_count);
	CASE(d.cfg.vq_max_size = 1024, "max queue size: source %u, destination 1024",
	     s->cfg.vq_max_size);
	CASE(d.cfg.config_size += 4, "config size: source %u, destination %u",
	     s->cfg.config_size, s->cfg.config_size + 4);
	CASE(d.cfg.mac[5] ^= 1, "mac: source 00:11:22:33:44:%02x, destination "
	     "00:11:22:33:44:%02x", s->cfg.mac[5], s->cfg.mac[5] ^ 1);
	CASE(d.cfg.mtu = 9000, "mtu: source %u, destination 9000", s->cfg.mtu);
	CASE(d.cfg.max_vqp = 8, "max_vqp: source %u, destination 8",
	     s->cfg.max_vqp);
	CASE(d.cfg.capacity = 131072, "capacity: source %" PRIu64
	     ", destination 131072", s->cfg.capacity);
	CASE(d.cfg.blk_size = 4096, "blk_size: source %u, destination 4096",
	     s->cfg.blk_size);
	/* two differences: the first in the documented order is named */
	CASE((d.cfg.mtu = 9000, d.cfg.vq_count = 3),
	     "queue count: source %u, destination 3", s->cfg.vq_count);
#undef CASE
	/* negotiated state and device section play no part */
	d = *desc;
	d.device = d.backing = NULL;
	d.has_features = true;
	d.features = ~0ull;
	d.has_device = false;
	tap_is(vdpa_state_compat(s, &d, msg, sizeof(msg)), 0,
	       "compat: negotiated state of the destination is not compared");
}

/* The same through real descriptions of differently configured simulators. */
static void test_compat_sims(const struct vdpa_state *s)
{
	struct vsim_opts o;
	struct vdpa_state *d;
	char msg[256];
	int r;

	vsim_opts_init(&o, VSIM_TYPE_NET);
	o.queue_pairs = 4;
	o.mtu = 9000;
	d = describe(&o);
	if (!tap_ok(d != NULL, "describe a net simulator with mtu 9000"))
		return;
	msg[0] = 0;
	r = vdpa_state_compat(s, d, msg, sizeof(msg));
	tap_ok(r == -EPROTO && !strcmp(msg, "mtu: source 1500, destination 9000"),
	       "compat with a real mtu-9000 device: \"%s\"", msg);
	vdpa_state_free(d);

	vsim_opts_init(&o, VSIM_TYPE_NET);
	o.queue_pairs = 2;
	d = describe(&o);
	if (d) {
		msg[0] = 0;
		r = vdpa_state_compat(s, d, msg, sizeof(msg));
		tap_ok(r == -EPROTO && !strcmp(msg, "queue count: source 9, "
					       "destination 5"),
		       "compat with a real 2-pair device: \"%s\"", msg);
		vdpa_state_free(d);
	}

	vsim_opts_init(&o, VSIM_TYPE_BLK);
	d = describe(&o);
	if (d) {
		msg[0] = 0;
		r = vdpa_state_compat(s, d, msg, sizeof(msg));
		tap_ok(r == -EPROTO && !strcmp(msg, "model: source "
			"vdpa-sim://net, destination vdpa-sim://blk"),
		       "compat with a real blk device: \"%s\"", msg);
		vdpa_state_free(d);
	}
}

int main(void)
{
	struct vdpa_state *s, *desc = NULL;
	int fds0 = tap_count_fds();
	void *blob = NULL;
	size_t len = 0;
	bool real;

	s = saved_net_state(&desc);
	real = tap_ok(s && s->has_features && s->nqueues == 9 &&
		      s->has_device && s->device_len > 0 && s->has_net,
		      "a 4-pair net simulator saved under traffic: 9 queues, "
		      "net class state, device section (%zu bytes)",
		      s ? s->device_len : 0);
	if (!real) {
		tap_diag("  using a hand-made state instead");
		vdpa_state_free(s);
		vdpa_state_free(desc);
		s = hand_state(&desc);
	}
	if (vdpa_state_encode(s, &blob, &len) < 0) {
		tap_ok(0, "encode");
		return tap_done();
	}
	tap_ok(len > HDR_LEN + CRC_LEN, "encoded: %zu bytes", len);

	test_crc(blob, len);
	test_round_trip(s, blob, len, real ? "saved simulator" : "hand-made");
	{
		struct vdpa_state *h, *hd;
		void *hb = NULL;
		size_t hl = 0;

		h = hand_state(&hd);
		if (!vdpa_state_encode(h, &hb, &hl))
			test_round_trip(h, hb, hl, "hand-made");
		free(hb);
		vdpa_state_free(h);
		vdpa_state_free(hd);
	}
	test_description_only(desc);
	test_truncations(blob, len);
	test_trailing(blob, len);
	test_bit_flips(blob, len);
	test_header(blob, len);
	test_lengths(blob, len);
	test_impossible(blob, len, s);
	test_sections(blob, len, s);
	test_compat(s, desc);
	if (real)
		test_compat_sims(s);

	free(blob);
	vdpa_state_free(s);
	vdpa_state_free(desc);
	tap_is(tap_count_fds(), fds0, "no fd leaked");
	return tap_done();
}
