// SPDX-License-Identifier: MIT
/*
 * state-blob: the state blob codec (vdpa_state_encode/_decode/_compat), the
 * load check on a corpus of hostile but well-formed states
 * (vdpa_state_check_load, the load, `vdpa-user state check`), and the
 * escaping of untrusted text on output.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/vhost_types.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <vdpa-user/blk.h>
#include <vdpa-user/net.h>
#include <vdpa-user/state.h>
#include <vdpa-user/transfer.h>
#include <vdpa-user/uapi-ext.h>
#include <vdpa-user/vdpa-user.h>
#include <vdpa-user/wire.h>

#include "sim.h"
#include "state-int.h"
#include "tap.h"
#include "testutil.h"

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
 * ret_mem (may be NULL): the driver memory holding its rings, at
 * 0x40000000.
 */
static struct vdpa_state *saved_net_state(struct vdpa_state **ret_desc,
					  struct vdpa_mem **ret_mem)
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
	if (s && ret_mem)
		*ret_mem = mem;
	else
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
		.device_id = 1, .features_offered = 0x1314f8020ull,
		.vq_count = 9, .vq_max_size = 256, .config_size = 16,
		.mac = { 0, 0x11, 0x22, 0x33, 0x44, 0x55 }, .mtu = 1500,
		.max_vqp = 4,
	};
	*d = *s;
	s->has_features = true;
	s->features = 0x1314f8000ull;	/* MQ: 4 pairs */
	s->backend_features = 0x3f | 1ull << 48;	/* DEVICE_STATE */
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
	NE(a->has_net && (a->net.alluni != b->net.alluni ||
			  a->net.nomulti != b->net.nomulti ||
			  a->net.nouni != b->net.nouni ||
			  a->net.nobcast != b->net.nobcast ||
			  a->net.n_uc != b->net.n_uc ||
			  a->net.n_mc != b->net.n_mc ||
			  memcmp(a->net.uc, b->net.uc, 6u * a->net.n_uc) ||
			  memcmp(a->net.mc, b->net.mc, 6u * a->net.n_mc)),
	   "net RX mode or MAC table");
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

/*
 * The rest of the receive filter (NET-RX, 0x8007): written only when it
 * differs from a reset device's, round trips, and is refused when
 * malformed or before NET.
 */
static void test_net_rx(const struct vdpa_state *base)
{
	struct vdpa_state *s = vdpa_state_new(), *d = NULL;
	char msg[256] = "";
	void *blob = NULL, *plain = NULL;
	size_t len = 0, plen = 0, at;
	uint8_t *b;
	int r;

	if (!tap_ok(s && base->has_net, "net RX: a net state to start from")) {
		vdpa_state_free(s);
		return;
	}
	*s = *base;
	s->backing = NULL;
	s->has_device = false;
	s->device = NULL;
	s->device_len = 0;
	r = vdpa_state_encode(s, &plain, &plen);
	s->net.nobcast = true;
	s->net.alluni = true;
	s->net.n_uc = 2;
	s->net.n_mc = 1;
	memcpy(s->net.uc[0], (uint8_t[6]){ 2, 0, 0, 0, 0, 1 }, 6);
	memcpy(s->net.uc[1], (uint8_t[6]){ 2, 0, 0, 0, 0, 2 }, 6);
	memcpy(s->net.mc[0], (uint8_t[6]){ 1, 0, 0x5e, 0, 0, 9 }, 6);
	if (!r)
		r = vdpa_state_encode(s, &blob, &len);
	if (!tap_is_ok(r, 0, "net RX: encoded with and without the section"))
		goto out;
	tap_is(len - plen, 8 + 8 + 6 * 3, "net RX: the section is written only "
	       "when the filter differs from a reset device's");
	test_round_trip(s, blob, len, "net RX");
	/* its header is the last section before the CRC */
	at = len - 4 - (8 + 6 * 3) - 8;
	b = blob;
	tap_ok(b[at] == 7 && b[at + 1] == 0x80,
	       "net RX: type 0x8007 (mandatory) where expected");
	{
		/* a flag beyond bit 3: malformed (CRC recomputed) */
		uint8_t *m = malloc(len);

		memcpy(m, blob, len);
		m[at + 8] |= 0x10;
		fix_crc(m, len);
		r = vdpa_state_decode(m, len, 0, &d, msg, sizeof(msg));
		tap_ok(r == -EBADMSG && strstr(msg, "net RX section malformed"),
		       "net RX: an unknown flag is refused (%s)", msg);
		vdpa_state_free(d);
		d = NULL;
		/* more entries than the section holds */
		memcpy(m, blob, len);
		m[at + 8 + 2] = 3;
		fix_crc(m, len);
		r = vdpa_state_decode(m, len, 0, &d, msg, sizeof(msg));
		tap_ok(r == -EBADMSG && strstr(msg, "MAC entries"),
		       "net RX: a table longer than the section is refused "
		       "(%s)", msg);
		vdpa_state_free(d);
		d = NULL;
		/* above 64 entries */
		memcpy(m, blob, len);
		m[at + 8 + 2] = 65;
		fix_crc(m, len);
		r = vdpa_state_decode(m, len, 0, &d, msg, sizeof(msg));
		tap_ok(r == -EINVAL && strstr(msg, "at most 64"),
		       "net RX: more than 64 entries refused (%s)", msg);
		vdpa_state_free(d);
		free(m);
	}
	s->net.n_uc = VDPA_STATE_MAC_TABLE_MAX + 1;
	free(blob);
	blob = NULL;
	tap_is(vdpa_state_encode(s, &blob, &len), -EINVAL,
	       "net RX: encode refuses a table above 64 entries");
out:
	free(blob);
	free(plain);
	vdpa_state_free(s);
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
	if (tap_ok(i > 0 && sec_index(&k, SEC_CONFIG) >= 0 &&
		   sec_index(&k, SEC_CONFIG) < i,
		   "the blob has a features section after config")) {
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
	if (tap_ok(i >= 0, "the blob has a queues section")) {
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
	if (tap_ok(d != NULL, "describe a 2-pair net simulator")) {
		msg[0] = 0;
		r = vdpa_state_compat(s, d, msg, sizeof(msg));
		tap_ok(r == -EPROTO && !strcmp(msg, "queue count: source 9, "
					       "destination 5"),
		       "compat with a real 2-pair device: \"%s\"", msg);
		vdpa_state_free(d);
	}

	vsim_opts_init(&o, VSIM_TYPE_BLK);
	d = describe(&o);
	if (tap_ok(d != NULL, "describe a blk simulator")) {
		msg[0] = 0;
		r = vdpa_state_compat(s, d, msg, sizeof(msg));
		tap_ok(r == -EPROTO && strstr(msg, "model: source "
			"vdpa-sim://net, destination vdpa-sim://blk?disk=") ==
		       msg,
		       "compat with a real blk device: \"%s\"", msg);
		vdpa_state_free(d);
	}
}

/* ---- the load check: a hostile-state corpus ----------------------------- */

/*
 * Every request the library sends to the device reqlog.dev, from its
 * request trace (vdpa_set_trace(): request codes, not log text). Only
 * the requests listed in reads() leave a device as it was; anything
 * else, a request unknown to this list included, counts as changing it.
 */
static struct {
	const struct vdpa_dev *dev;
	unsigned int total, changing;
	char first[48];
} reqlog;

static bool reads(unsigned long request)
{
	switch (request) {
	case VHOST_GET_FEATURES:
	case VHOST_GET_BACKEND_FEATURES:
	case VHOST_GET_VRING_BASE:
	case VHOST_VDPA_GET_DEVICE_ID:
	case VHOST_VDPA_GET_STATUS:
	case VHOST_VDPA_GET_CONFIG:
	case VHOST_VDPA_GET_VRING_NUM:
	case VHOST_VDPA_GET_IOVA_RANGE:
	case VHOST_VDPA_GET_CONFIG_SIZE:
	case VHOST_VDPA_GET_AS_NUM:
	case VHOST_VDPA_GET_VRING_GROUP:
	case VHOST_VDPA_GET_VQS_COUNT:
	case VHOST_VDPA_GET_GROUP_NUM:
#ifdef VSIM_REQ_GET_MODEL
	case VSIM_REQ_GET_MODEL:	/* the simulator's model URI */
#endif
		return true;
	default:
		return false;
	}
}

static void count_requests(struct vdpa_dev *dev, unsigned long request,
			   const void *arg, int result, uint64_t ns,
			   void *opaque)
{
	if (!reqlog.dev || dev != reqlog.dev)
		return;
	reqlog.total++;
	if (!reads(request) && !reqlog.changing++)
		snprintf(reqlog.first, sizeof(reqlog.first), "%s (0x%lx) -> %d",
			 vsim_request_name((uint32_t)request), request, result);
}

static void watch(const struct vdpa_dev *dev)
{
	memset(&reqlog, 0, sizeof(reqlog));
	reqlog.dev = dev;
	vdpa_set_trace(count_requests, NULL);
}

static void unwatch(void)
{
	vdpa_set_trace(NULL, NULL);
	reqlog.dev = NULL;
}

/*
 * The counting the corpus relies on: a read is counted and is not a
 * change, a change is counted as one and named, other devices' requests
 * are not counted.
 */
static void test_request_count(void)
{
	struct vsim_thread *t1 = NULL, *t2 = NULL;
	struct vdpa_dev *d1 = NULL, *d2 = NULL;
	struct vsim_opts o;
	uint8_t st = 0;
	int fd, r;

	vsim_opts_init(&o, VSIM_TYPE_NET);
	r = vsim_thread_start(&o, &fd, &t1);
	if (!r)
		r = vdpa_dev_open_sim_fd(fd, "sim:count-1", &d1);
	if (!r)
		r = vsim_thread_start(&o, &fd, &t2);
	if (!r)
		r = vdpa_dev_open_sim_fd(fd, "sim:count-2", &d2);
	if (!tap_is_ok(r, 0, "request count: two devices"))
		goto out;
	watch(d1);
	r = vdpa_dev_call(d1, VHOST_VDPA_GET_STATUS, &st);
	tap_ok(r == 0 && reqlog.total == 1 && reqlog.changing == 0,
	       "request count: a GET_STATUS is counted, as a read");
	r = vdpa_dev_call(d2, VHOST_VDPA_SET_STATUS, &st);
	tap_ok(r == 0 && reqlog.total == 1 && reqlog.changing == 0,
	       "request count: another device's SET_STATUS is not counted");
	r = vdpa_dev_call(d1, VHOST_VDPA_SET_STATUS, &st);
	tap_ok(r == 0 && reqlog.total == 2 && reqlog.changing == 1 &&
	       strstr(reqlog.first, "SET_STATUS"),
	       "request count: a SET_STATUS is counted as a change (%s)",
	       reqlog.first);
	unwatch();
	r = vdpa_dev_call(d1, VHOST_VDPA_SET_STATUS, &st);
	tap_ok(r == 0 && reqlog.total == 2, "request count: none after "
	       "unwatch");
out:
	vdpa_dev_close(d1);
	vdpa_dev_close(d2);
	vsim_thread_stop(t1);
	vsim_thread_stop(t2);
}

/* A strict RFC 8259 validator: one JSON value, ASCII or valid UTF-8. */
static const char *js_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *js_value(const char *p, int depth);

static const char *js_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	for (;;) {
		unsigned char c = (unsigned char)*p;
		int i, more;

		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;	/* NUL (the end) and raw controls */
		if (c == '\\') {
			p++;
			if (*p == 'u') {
				for (i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF",
						    p[i]) || !p[i])
						return NULL;
				p += 5;
			} else if (*p && strchr("\"\\/bfnrt", *p)) {
				p++;
			} else {
				return NULL;
			}
			continue;
		}
		more = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 && c >= 0xc2 ? 1 :
		       (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 &&
		       c <= 0xf4 ? 3 : -1;
		if (more < 0)
			return NULL;
		for (i = 1; i <= more; i++)
			if (((unsigned char)p[i] & 0xc0) != 0x80)
				return NULL;
		p += 1 + more;
	}
}

static const char *js_number(const char *p)
{
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return NULL;
	if (*p == '.') {
		if (*++p < '0' || *p > '9')
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		if (*++p == '+' || *p == '-')
			p++;
		if (*p < '0' || *p > '9')
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return p;
}

static const char *js_value(const char *p, int depth)
{
	char close;

	p = js_ws(p);
	if (depth > 32)
		return NULL;
	if (*p == '"')
		return js_string(p);
	if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4))
		return p + 4;
	if (!strncmp(p, "false", 5))
		return p + 5;
	if (*p != '{' && *p != '[')
		return js_number(p);
	close = *p == '{' ? '}' : ']';
	p = js_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (close == '}') {
			p = js_string(js_ws(p));
			if (!p)
				return NULL;
			p = js_ws(p);
			if (*p++ != ':')
				return NULL;
		}
		p = js_value(p, depth + 1);
		if (!p)
			return NULL;
		p = js_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static bool json_valid(const char *doc)
{
	const char *end = js_value(doc, 0);

	return end && !*js_ws(end);
}

/* The bases: real saved states, and the devices they are checked against. */
struct base {
	const char *name;
	struct vsim_opts o;
	const char *const *args;	/* the same simulator as a process */
	struct vdpa_state *s, *desc;
	struct vdpa_mem *mem;		/* the driver memory of s */
	uint8_t *snap;		/* mem as saved, restored per case */
	size_t snap_len;
	/* targets: one with mem mapped, one with no memory */
	struct vsim_thread *thr_mem, *thr_bare;
	struct vdpa_dev *dev_mem, *dev_bare;
	char name_mem[32], name_bare[32];
	/* the CLI's: a vdpa-sim process */
	pid_t pid;
	char sock[300], cli_dev[310];
};

static int open_target(const struct vsim_opts *o, const char *name,
		       struct vsim_thread **ret_thr, struct vdpa_dev **ret_dev)
{
	int fd, r = vsim_thread_start(o, &fd, ret_thr);

	if (r < 0)
		return r;
	r = vdpa_dev_open_sim_fd(fd, name, ret_dev);
	if (r < 0) {
		vsim_thread_stop(*ret_thr);
		*ret_thr = NULL;
	}
	return r;
}

/*
 * Every blk simulator here shares one backing file: a blk state loads only
 * where its disk is (the model URI names it, vdpa-sim://blk?disk=...).
 */
static char blk_disk[PATH_MAX];

static void blk_disk_remove(void)
{
	unlink(blk_disk);
}

static void blk_opts(struct vsim_opts *o)
{
	vsim_opts_init(o, VSIM_TYPE_BLK);
	if (!blk_disk[0]) {
		const char *t = getenv("TMPDIR");
		int fd;

		snprintf(blk_disk, sizeof(blk_disk), "%s/vdpa-blk.XXXXXX",
			 t ? t : "/tmp");
		fd = mkstemp(blk_disk);
		if (fd >= 0 && ftruncate(fd, 64 << 20) == 0)
			atexit(blk_disk_remove);
		if (fd >= 0)
			close(fd);
	}
	o->backing = blk_disk;
}

/* A blk simulator driven by the library's driver, saved after some I/O. */
static struct vdpa_state *saved_blk_state(struct vdpa_state **ret_desc,
					  struct vdpa_mem **ret_mem)
{
	static uint8_t block[4096];
	struct vdpa_state *s = NULL, *desc = NULL;
	struct vdpa_blk *blk = NULL;
	struct vdpa_mem *mem = NULL;
	struct vdpa_blk_completion c;
	struct vsim_opts o;
	unsigned int k, done = 0;

	blk_opts(&o);
	if (sim_open(&o) < 0)
		return NULL;
	if (vdpa_state_describe(sim_dev, &desc) < 0 ||
	    vdpa_mem_create(16u << 20, 0x40000000ull, &mem) < 0 ||
	    vdpa_blk_open(sim_dev, mem, NULL, &blk) < 0)
		goto out;
	for (k = 0; k < 77; k++) {
		memset(block, (int)k, sizeof(block));
		if (vdpa_blk_write(blk, 8ull * k, block, sizeof(block), k) < 0)
			break;
		if (k % 8 == 7) {
			vdpa_blk_kick(blk);
			while (vdpa_blk_wait(blk, 100) >= 0 &&
			       vdpa_blk_poll(blk, &c) == 1)
				done++;
		}
	}
	vdpa_blk_kick(blk);
	while (done < k && vdpa_blk_wait(blk, 100) >= 0 &&
	       vdpa_blk_poll(blk, &c) == 1)
		done++;
	if (vdpa_dev_suspend(sim_dev) < 0 ||
	    vdpa_state_save_device(sim_dev, desc, &s) < 0)
		s = NULL;
out:
	vdpa_blk_close(blk);
	sim_close();
	if (s) {
		*ret_mem = mem;
		*ret_desc = desc;
	} else {
		vdpa_mem_destroy(mem);
		vdpa_state_free(desc);
	}
	return s;
}

static bool base_setup(struct base *b, int which, const char *dir)
{
	static const char *const net_args[] = { "--type", "net",
						"--queue-pairs", "4", NULL };
	static const char *const blk_args[] = { "--type", "blk", "--backing",
						blk_disk, NULL };
	int r;

	memset(b, 0, sizeof(*b));
	b->name = which ? "blk" : "net";
	vsim_opts_init(&b->o, which ? VSIM_TYPE_BLK : VSIM_TYPE_NET);
	if (which)
		blk_opts(&b->o);
	if (!which)
		b->o.queue_pairs = 4;
	b->args = which ? blk_args : net_args;
	b->s = which ? saved_blk_state(&b->desc, &b->mem) :
		       saved_net_state(&b->desc, &b->mem);
	if (!tap_ok(b->s != NULL, "%s: a saved state and its driver memory",
		    b->name))
		return false;
	b->snap_len = vdpa_mem_used(b->mem);
	b->snap = dup_blob(vdpa_mem_base(b->mem), b->snap_len);
	snprintf(b->name_mem, sizeof(b->name_mem), "sim:%s-mem", b->name);
	snprintf(b->name_bare, sizeof(b->name_bare), "sim:%s-bare", b->name);
	r = open_target(&b->o, b->name_mem, &b->thr_mem, &b->dev_mem);
	if (!r)
		r = vdpa_mem_map(b->dev_mem, b->mem);
	if (!r)
		r = open_target(&b->o, b->name_bare, &b->thr_bare,
				&b->dev_bare);
	if (!tap_ok(r == 0, "%s: two target simulators, the memory mapped "
		    "into one (%s)", b->name, strerror(-r)))
		return false;
	snprintf(b->sock, sizeof(b->sock), "%s/%s.sock", dir, b->name);
	snprintf(b->cli_dev, sizeof(b->cli_dev), "sim:%s", b->sock);
	b->pid = tu_spawn_sim(b->sock, b->args);
	/* the CLI's cases need it: not starting is a failure, not a skip */
	tap_ok(b->pid > 0, "%s: a vdpa-sim process for `vdpa-user state "
	       "check` (%s)", b->name, b->pid > 0 ? "started" :
	       strerror((int)-b->pid));
	return true;
}

static void base_teardown(struct base *b)
{
	if (b->pid > 0)
		tu_stop_sim(b->pid, false);
	vdpa_dev_close(b->dev_mem);
	vdpa_dev_close(b->dev_bare);
	vsim_thread_stop(b->thr_mem);
	vsim_thread_stop(b->thr_bare);
	vdpa_state_free(b->s);
	vdpa_state_free(b->desc);
	vdpa_mem_destroy(b->mem);
	free(b->snap);
}

static struct vdpa_state_queue *qidx(struct vdpa_state *s, uint32_t index)
{
	uint32_t i;

	for (i = 0; i < s->nqueues; i++)
		if (s->q[i].index == index)
			return &s->q[i];
	return NULL;
}

static void drop_queue(struct vdpa_state *s, uint32_t index)
{
	struct vdpa_state_queue *q = qidx(s, index);

	if (!q)
		return;
	memmove(q, q + 1, (size_t)(&s->q[s->nqueues] - (q + 1)) * sizeof(*q));
	s->nqueues--;
}

/* A u16 of driver memory (little endian, as the rings). */
static uint8_t *mem_at(struct base *b, uint64_t iova)
{
	return (uint8_t *)vdpa_mem_base(b->mem) + (iova - 0x40000000ull);
}

static uint16_t mem16(struct base *b, uint64_t iova)
{
	return rd16(mem_at(b, iova));
}

static void set_mem16(struct base *b, uint64_t iova, uint16_t v)
{
	wr16(mem_at(b, iova), v);
}

/* The driver memory as saved (beyond the allocator cursor: zeros). */
static void restore_mem(struct base *b)
{
	uint8_t *p = vdpa_mem_base(b->mem);

	memcpy(p, b->snap, b->snap_len);
	memset(p + b->snap_len, 0, vdpa_mem_size(b->mem) - b->snap_len);
}

/* A copy of s the test may change. */
static struct vdpa_state *copy_state(const struct vdpa_state *s)
{
	struct vdpa_state *c = vdpa_state_new();

	if (!c)
		exit(1);
	*c = *s;
	c->backing = NULL;
	if (s->has_device && s->device_len) {
		c->device = dup_blob(s->device, s->device_len);
	} else {
		c->device = NULL;
	}
	return c;
}

/* Only pair 0 and the control queue, 1 queue pair selected. */
static void one_pair(struct vdpa_state *s)
{
	uint32_t i;

	for (i = 2; i < 8; i++)
		drop_queue(s, i);
	s->net.queue_pairs = 1;
	free(s->device);
	s->device = NULL;
	s->has_device = false;	/* the device's own state says 4 pairs */
	s->device_len = 0;
}

/* Move every index of every ring close to 65535, by multiples of size. */
static bool shift_to_wrap(struct vdpa_state *s, struct base *b)
{
	bool wrapped = false;
	uint32_t i;

	for (i = 0; i < s->nqueues; i++) {
		struct vdpa_state_queue *q = &s->q[i];
		uint16_t d = (uint16_t)(0x10000 - q->size -
					(q->base & ~(q->size - 1)));
		uint16_t avail = (uint16_t)(mem16(b, q->avail + 2) + d);

		q->base = (uint16_t)(q->base + d);
		q->used_idx = (uint16_t)(q->used_idx + d);
		set_mem16(b, q->used + 2,
			  (uint16_t)(mem16(b, q->used + 2) + d));
		set_mem16(b, q->avail + 2, avail);
		wrapped |= avail < q->base || q->base < q->used_idx;
	}
	return wrapped;
}

/*
 * Driver memory matching a state saved without it: used->idx = used_idx,
 * avail->idx as far past base as when saved. So a valid variant checked
 * without memory can be loaded into a device that runs its rings.
 */
static void fit_memory(struct base *b, const struct vdpa_state *s)
{
	uint32_t i;

	for (i = 0; i < s->nqueues; i++) {
		const struct vdpa_state_queue *q = &s->q[i];
		struct vdpa_state_queue *o = qidx(b->s, q->index);
		uint16_t posted;

		if (!o || o->avail != q->avail || o->used != q->used)
			continue;
		posted = (uint16_t)(mem16(b, o->avail + 2) - o->base);
		set_mem16(b, q->used + 2, q->used_idx);
		set_mem16(b, q->avail + 2, (uint16_t)(q->base + posted));
	}
}

enum where { BARE, MEM, CORE };

enum case_id {
	C_SAVED, C_WRAP_MEM, C_WRAP_BASE, C_INFLIGHT_SIZE, C_ONE_PAIR,
	C_NO_MQ_ONE_PAIR, C_TWO_OF_FOUR, C_NO_DRIVER_OK, C_SHARED_DESC,
	C_OUTSIDE_MEM, C_BACKEND_UNKNOWN, C_NO_EVENT_IDX_FITS,
	C_COMPAT_MTU, C_COMPAT_MODEL, C_ONLY_CVQ, C_TOO_MANY, C_EVENT_IDX_TAIL,
	C_DESC_ONLY, C_NO_VERSION_1, C_NOT_OFFERED, C_NO_ACK, C_NO_DRIVER,
	C_NO_FEATURES_OK, C_FAILED, C_NEEDS_RESET, C_BE_NOT_OFFERED,
	C_BE_NO_V2, C_BE_NO_SUSPEND, C_BE_NO_DEVICE_STATE, C_ZERO_QUEUES,
	C_DUPLICATE, C_INDEX_BEYOND, C_HOLE, C_NO_PAIR0, C_HALF_PAIR,
	C_NO_CVQ, C_CVQ_NOT_NEGOTIATED, C_PAIRS_NO_MQ, C_CVQ_WRONG_INDEX,
	C_BEYOND_MAX_VQP, C_QP_ZERO, C_QP_BEYOND_MAX, C_QP_BEYOND_SETUP,
	C_QP_NO_MQ, C_BLK_NO_Q0, C_BLK_NO_MQ, C_SIZE_0, C_SIZE_63,
	C_SIZE_BIG, C_DESC_ALIGN, C_AVAIL_ALIGN, C_USED_ALIGN,
	C_USED_ON_AVAIL, C_DESC_ON_AVAIL, C_AVAIL_ON_OTHER_USED,
	C_USED_ON_OTHER_DESC, C_ADDRESS_WRAP, C_INFLIGHT, C_INFLIGHT_WRAP,
	C_BASE_BEHIND, C_USED_IDX_STATE, C_USED_IDX_MEM, C_AVAIL_FAR,
	C_AVAIL_BEHIND, C_USED_PARTLY_OUT, C_DESC_OUT,
};

struct ccase {
	enum case_id id;
	int base;		/* 0 net, 1 blk */
	enum where where;	/* memory with the state, or the core only */
	int err;		/* 0: a valid variant that loads */
	const char *keyword;
	const char *what;
};

static const struct ccase cases[] = {
	/* valid variants: accepted by the check and loaded */
	{ C_SAVED, 0, MEM, 0, NULL, "net as saved, with its memory" },
	{ C_SAVED, 0, BARE, 0, NULL, "net as saved, no memory" },
	{ C_SAVED, 1, MEM, 0, NULL, "blk as saved, with its memory" },
	{ C_SAVED, 1, BARE, 0, NULL, "blk as saved, no memory" },
	{ C_WRAP_MEM, 0, MEM, 0, NULL, "net: every index near 65535, "
	  "avail->idx wrapping to 0 (state and memory)" },
	{ C_WRAP_MEM, 1, MEM, 0, NULL, "blk: every index near 65535 (state "
	  "and memory)" },
	{ C_WRAP_BASE, 0, BARE, 0, NULL, "net: used_idx 65534, base 3 "
	  "(5 in flight across the wrap)" },
	{ C_INFLIGHT_SIZE, 0, BARE, 0, NULL, "net: exactly size requests "
	  "in flight" },
	{ C_ONE_PAIR, 0, MEM, 0, NULL, "net: 1 pair and the control queue at "
	  "8 (MQ)" },
	{ C_NO_MQ_ONE_PAIR, 0, MEM, 0, NULL, "net: no MQ, 1 pair, the control "
	  "queue at 2" },
	{ C_TWO_OF_FOUR, 0, MEM, 0, NULL, "net: 2 of the 4 pairs selected" },
	{ C_NO_DRIVER_OK, 0, BARE, 0, NULL, "net: status without DRIVER_OK" },
	{ C_SHARED_DESC, 0, CORE, 0, NULL, "net: two queues share a "
	  "descriptor table (only the device reads it)" },
	{ C_OUTSIDE_MEM, 0, CORE, 0, NULL, "net: a ring outside the memory "
	  "given: its memory rules are skipped" },
	{ C_BACKEND_UNKNOWN, 0, CORE, 0, NULL, "net: backend features not "
	  "offered, destination's unknown (transfer FD): not judged" },
	{ C_NO_EVENT_IDX_FITS, 0, CORE, 0, NULL, "net: no EVENT_IDX, a used "
	  "ring ending at the last byte of the memory" },
	/* refusals */
	{ C_COMPAT_MTU, 0, BARE, -EPROTO, "mtu: source 9000, destination 1500",
	  "net: saved from a device with another mtu" },
	{ C_COMPAT_MODEL, 1, BARE, -EPROTO, "model: source vdpa-sim://net, "
	  "destination vdpa-sim://blk", "blk: saved from another model" },
	{ C_DESC_ONLY, 0, BARE, -EINVAL, "only a device description",
	  "net: description only" },
	{ C_DESC_ONLY, 1, BARE, -EINVAL, "only a device description",
	  "blk: description only" },
	{ C_NO_VERSION_1, 0, BARE, -EINVAL, "VERSION_1", "net: VERSION_1 not "
	  "negotiated" },
	{ C_NO_VERSION_1, 1, BARE, -EINVAL, "VERSION_1", "blk: VERSION_1 not "
	  "negotiated" },
	{ C_NOT_OFFERED, 0, BARE, -EINVAL, "negotiated features not offered",
	  "net: a negotiated feature the device does not offer" },
	{ C_NO_ACK, 0, BARE, -EINVAL, "lacks ACKNOWLEDGE", "status without "
	  "ACKNOWLEDGE" },
	{ C_NO_DRIVER, 0, BARE, -EINVAL, "lacks DRIVER", "status without "
	  "DRIVER" },
	{ C_NO_FEATURES_OK, 0, BARE, -EINVAL, "lacks FEATURES_OK", "status "
	  "without FEATURES_OK" },
	{ C_NO_FEATURES_OK, 1, BARE, -EINVAL, "lacks FEATURES_OK", "blk: "
	  "status without FEATURES_OK" },
	{ C_FAILED, 0, BARE, -EINVAL, "has FAILED", "status with FAILED" },
	{ C_NEEDS_RESET, 0, BARE, -EINVAL, "has NEEDS_RESET", "status with "
	  "NEEDS_RESET" },
	{ C_BE_NOT_OFFERED, 0, BARE, -EPROTO, "destination offers",
	  "backend feature 40, which the destination does not offer" },
	{ C_BE_NO_V2, 0, BARE, -EINVAL, "IOTLB_MSG_V2", "backend features "
	  "without IOTLB_MSG_V2" },
	{ C_BE_NO_SUSPEND, 0, BARE, -EINVAL, "lack SUSPEND", "backend features "
	  "without SUSPEND" },
	{ C_BE_NO_DEVICE_STATE, 0, BARE, -EINVAL, "DEVICE_STATE", "net: "
	  "device section without DEVICE_STATE" },
	{ C_BE_NO_DEVICE_STATE, 1, BARE, -EINVAL, "DEVICE_STATE", "blk: "
	  "device section without DEVICE_STATE" },
	{ C_ZERO_QUEUES, 0, BARE, -EINVAL, "no queues", "net: zero queues" },
	{ C_ZERO_QUEUES, 1, BARE, -EINVAL, "no queues", "blk: zero queues" },
	{ C_DUPLICATE, 0, BARE, -EINVAL, "listed twice", "queue index twice" },
	{ C_INDEX_BEYOND, 0, BARE, -EINVAL, "index beyond", "net: queue index "
	  "= queue count" },
	{ C_INDEX_BEYOND, 1, BARE, -EINVAL, "index beyond", "blk: queue 1 of "
	  "a 1-queue device" },
	{ C_HOLE, 0, BARE, -EINVAL, "complete pairs", "net: tx of pair 1 "
	  "missing" },
	{ C_NO_PAIR0, 0, BARE, -EINVAL, "complete pairs", "net: pair 0 "
	  "missing" },
	{ C_HALF_PAIR, 0, BARE, -EINVAL, "complete pairs", "net: rx of the "
	  "last pair missing" },
	{ C_ONLY_CVQ, 0, BARE, -EINVAL, "up: queue 0 missing", "net: the "
	  "control queue alone" },
	{ C_TOO_MANY, 0, CORE, -EINVAL, "65 queues, more than 64", "65 queues "
	  "(a state not from the decoder)" },
	{ C_NO_CVQ, 0, BARE, -EINVAL, "control queue 8 missing", "net: "
	  "control queue missing although CTRL_VQ was negotiated" },
	{ C_CVQ_NOT_NEGOTIATED, 0, BARE, -EINVAL, "CTRL_VQ was not "
	  "negotiated", "net: control queue without CTRL_VQ" },
	{ C_PAIRS_NO_MQ, 0, BARE, -EINVAL, "more than 1 queue pair without MQ",
	  "net: 4 pairs set up without MQ" },
	{ C_CVQ_WRONG_INDEX, 0, BARE, -EINVAL, "control queue 8 missing",
	  "net: control queue at 2 with MQ (belongs at 2 max_vqp)" },
	{ C_BEYOND_MAX_VQP, 0, CORE, -EINVAL, "beyond max_vqp", "net: a "
	  "queue pair beyond max_vqp (device with more queues)" },
	{ C_QP_ZERO, 0, BARE, -EINVAL, "0 queue pairs", "net class state: 0 "
	  "queue pairs" },
	{ C_QP_BEYOND_MAX, 0, BARE, -EINVAL, "beyond max_vqp", "net class "
	  "state: queue pairs above max_vqp" },
	{ C_QP_BEYOND_SETUP, 0, BARE, -EINVAL, "only 1 set up", "net class "
	  "state: 2 queue pairs, 1 set up" },
	{ C_QP_NO_MQ, 0, BARE, -EINVAL, "queue pairs without MQ", "net class "
	  "state: 2 queue pairs without MQ" },
	{ C_BLK_NO_Q0, 1, CORE, -EINVAL, "queue 0 missing", "blk: queue 0 "
	  "missing (4-queue device)" },
	{ C_BLK_NO_MQ, 1, CORE, -EINVAL, "VIRTIO_BLK_F_MQ", "blk: 2 queues "
	  "without VIRTIO_BLK_F_MQ" },
	{ C_SIZE_0, 0, BARE, -EINVAL, "ring size 0", "ring size 0" },
	{ C_SIZE_63, 0, BARE, -EINVAL, "not a power of 2", "ring size 63" },
	{ C_SIZE_BIG, 0, BARE, -EINVAL, "above the device's maximum",
	  "net: ring size above the device's maximum" },
	{ C_SIZE_BIG, 1, BARE, -EINVAL, "above the device's maximum",
	  "blk: ring size above the device's maximum" },
	{ C_DESC_ALIGN, 0, BARE, -EINVAL, "16-byte aligned", "descriptor "
	  "table 8 bytes off" },
	{ C_AVAIL_ALIGN, 0, BARE, -EINVAL, "2-byte aligned", "avail ring at "
	  "an odd address" },
	{ C_USED_ALIGN, 1, BARE, -EINVAL, "4-byte aligned", "blk: used ring "
	  "2 bytes off" },
	{ C_USED_ON_AVAIL, 0, BARE, -EINVAL, "overlaps", "used ring on its "
	  "own avail ring" },
	{ C_DESC_ON_AVAIL, 1, BARE, -EINVAL, "overlaps", "blk: descriptor "
	  "table running into its avail ring" },
	{ C_AVAIL_ON_OTHER_USED, 0, BARE, -EINVAL, "overlaps", "avail ring "
	  "on another queue's used ring" },
	{ C_USED_ON_OTHER_DESC, 0, BARE, -EINVAL, "overlaps", "used ring "
	  "on another queue's descriptor table" },
	{ C_ADDRESS_WRAP, 0, BARE, -EINVAL, "address space", "descriptor "
	  "table running past 2^64" },
	{ C_INFLIGHT, 0, BARE, -EINVAL, "in flight", "size + 1 in flight" },
	{ C_INFLIGHT_WRAP, 0, BARE, -EINVAL, "in flight", "size + 1 in flight "
	  "across the wrap" },
	{ C_BASE_BEHIND, 1, BARE, -EINVAL, "in flight", "blk: base one "
	  "behind used_idx" },
	{ C_USED_IDX_STATE, 0, MEM, -EINVAL, "used->idx", "net: state's "
	  "used_idx one behind the memory's" },
	{ C_USED_IDX_MEM, 1, MEM, -EINVAL, "used->idx", "blk: memory's "
	  "used->idx one ahead of the state's" },
	{ C_AVAIL_FAR, 0, MEM, -EINVAL, "avail->idx", "net: avail->idx "
	  "size + 1 past base" },
	{ C_AVAIL_FAR, 1, MEM, -EINVAL, "avail->idx", "blk: avail->idx "
	  "size + 1 past base" },
	{ C_AVAIL_BEHIND, 0, MEM, -EINVAL, "avail->idx", "net: avail->idx "
	  "one behind base" },
	{ C_USED_PARTLY_OUT, 0, MEM, -EINVAL, "not entirely inside", "net: "
	  "used ring running past the end of the memory" },
	{ C_DESC_OUT, 1, MEM, -EINVAL, "not entirely inside", "blk: "
	  "descriptor table outside the memory, avail and used inside" },
	{ C_EVENT_IDX_TAIL, 0, MEM, -EINVAL, "not entirely inside", "net: "
	  "used ring whose avail_event (EVENT_IDX) is past the memory" },
};

/*
 * Apply case c to s (a copy of the base's state) and to the base's
 * memory. For CORE cases *dst may be replaced by another description and
 * *offered by the destination's backend features.
 */
static bool mutate(const struct ccase *c, struct vdpa_state *s,
		   struct base *b, struct vdpa_state *dst, uint64_t *offered)
{
	struct vdpa_state_queue *q0 = &s->q[0], *q1 = &s->q[1];
	uint64_t mem_end = 0x40000000ull + vdpa_mem_size(b->mem);
	uint32_t i;

	switch (c->id) {
	case C_SAVED:
		break;
	case C_WRAP_MEM:
		if (!shift_to_wrap(s, b) && !c->base)
			return false;
		break;
	case C_WRAP_BASE:
		q0->used_idx = 65534;
		q0->base = 3;
		break;
	case C_INFLIGHT_SIZE:
		q0->base = (uint16_t)(q0->used_idx + q0->size);
		break;
	case C_ONE_PAIR:
		one_pair(s);
		break;
	case C_NO_MQ_ONE_PAIR:
		one_pair(s);
		qidx(s, 8)->index = 2;
		s->features &= ~(1ull << VIRTIO_NET_F_MQ);
		break;
	case C_TWO_OF_FOUR:
		s->net.queue_pairs = 2;
		break;
	case C_NO_DRIVER_OK:
		s->status &= (uint8_t)~VIRTIO_CONFIG_S_DRIVER_OK;
		break;
	case C_SHARED_DESC:
		q1->desc = q0->desc;
		break;
	case C_OUTSIDE_MEM:
		q1->desc = mem_end + 0x10000;
		q1->avail = mem_end + 0x20000;
		q1->used = mem_end + 0x30000;
		break;
	case C_BACKEND_UNKNOWN:
		s->backend_features |= 1ull << 40;
		*offered = 0;
		break;
	case C_NO_EVENT_IDX_FITS:
		s->features &= ~(1ull << VIRTIO_RING_F_EVENT_IDX);
		q0->used = mem_end - (4 + 8ull * q0->size);
		set_mem16(b, q0->used + 2, q0->used_idx);
		break;
	case C_COMPAT_MTU:
		s->cfg.mtu = 9000;
		break;
	case C_COMPAT_MODEL:
		snprintf(s->model, sizeof(s->model), "vdpa-sim://net");
		break;
	case C_ONLY_CVQ:
		for (i = 0; i < 8; i++)
			drop_queue(s, i);
		s->net.queue_pairs = 1;
		break;
	case C_TOO_MANY:
		s->nqueues = VDPA_STATE_MAX_QUEUES + 1;
		break;
	case C_EVENT_IDX_TAIL:
		q0->used = mem_end - (4 + 8ull * q0->size);
		break;
	case C_DESC_ONLY:
		s->has_features = false;
		s->nqueues = 0;
		s->features = s->backend_features = 0;
		s->status = 0;
		break;
	case C_NO_VERSION_1:
		s->features &= ~(1ull << VIRTIO_F_VERSION_1);
		break;
	case C_NOT_OFFERED:
		s->features |= ~s->cfg.features_offered &
			       -~s->cfg.features_offered;
		break;
	case C_NO_ACK:
		s->status &= (uint8_t)~VIRTIO_CONFIG_S_ACKNOWLEDGE;
		break;
	case C_NO_DRIVER:
		s->status &= (uint8_t)~VIRTIO_CONFIG_S_DRIVER;
		break;
	case C_NO_FEATURES_OK:
		s->status &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
		break;
	case C_FAILED:
		s->status |= VIRTIO_CONFIG_S_FAILED;
		break;
	case C_NEEDS_RESET:
		s->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
		break;
	case C_BE_NOT_OFFERED:
		s->backend_features |= 1ull << 40;
		break;
	case C_BE_NO_V2:
		s->backend_features &= ~(1ull << VHOST_BACKEND_F_IOTLB_MSG_V2);
		break;
	case C_BE_NO_SUSPEND:
		s->backend_features &= ~(1ull << VHOST_BACKEND_F_SUSPEND);
		break;
	case C_BE_NO_DEVICE_STATE:
		s->backend_features &= ~(1ull << VHOST_BACKEND_F_DEVICE_STATE);
		if (!s->has_device)
			return false;
		break;
	case C_ZERO_QUEUES:
		s->nqueues = 0;
		break;
	case C_DUPLICATE:
		q1->index = q0->index;
		break;
	case C_INDEX_BEYOND:
		s->q[s->nqueues - 1].index = s->cfg.vq_count;
		break;
	case C_HOLE:
		drop_queue(s, 3);
		break;
	case C_NO_PAIR0:
		drop_queue(s, 0);
		drop_queue(s, 1);
		break;
	case C_HALF_PAIR:
		drop_queue(s, 6);
		break;
	case C_NO_CVQ:
		drop_queue(s, 8);
		break;
	case C_CVQ_NOT_NEGOTIATED:
		s->features &= ~(1ull << VIRTIO_NET_F_CTRL_VQ);
		break;
	case C_PAIRS_NO_MQ:
		s->features &= ~(1ull << VIRTIO_NET_F_MQ);
		break;
	case C_CVQ_WRONG_INDEX:
		one_pair(s);
		qidx(s, 8)->index = 2;
		break;
	case C_BEYOND_MAX_VQP:
		/* a device with 12 queues but max_vqp 4 */
		s->cfg.vq_count = dst->cfg.vq_count = 12;
		q1->index = 10;
		break;
	case C_QP_ZERO:
		s->net.queue_pairs = 0;
		break;
	case C_QP_BEYOND_MAX:
		s->net.queue_pairs = (uint16_t)(s->cfg.max_vqp + 1);
		break;
	case C_QP_BEYOND_SETUP:
		one_pair(s);
		s->net.queue_pairs = 2;
		break;
	case C_QP_NO_MQ:
		one_pair(s);
		qidx(s, 8)->index = 2;
		s->features &= ~(1ull << VIRTIO_NET_F_MQ);
		s->net.queue_pairs = 2;
		break;
	case C_BLK_NO_Q0:
		s->cfg.vq_count = dst->cfg.vq_count = 4;
		q0->index = 1;
		break;
	case C_BLK_NO_MQ:
		s->cfg.vq_count = dst->cfg.vq_count = 4;
		s->q[1] = *q0;
		s->q[1].index = 1;
		s->q[1].desc += 0x100000;
		s->q[1].avail += 0x100000;
		s->q[1].used += 0x100000;
		s->nqueues = 2;
		break;
	case C_SIZE_0:
		q0->size = 0;
		break;
	case C_SIZE_63:
		q0->size = 63;
		break;
	case C_SIZE_BIG:
		q0->size = (uint16_t)(s->cfg.vq_max_size * 2);
		break;
	case C_DESC_ALIGN:
		q0->desc += 8;
		break;
	case C_AVAIL_ALIGN:
		q0->avail += 1;
		break;
	case C_USED_ALIGN:
		q0->used += 2;
		break;
	case C_USED_ON_AVAIL:
		q0->used = q0->avail & ~3ull;
		break;
	case C_DESC_ON_AVAIL:
		q0->desc = (q0->avail - 16ull * q0->size + 16) & ~15ull;
		break;
	case C_AVAIL_ON_OTHER_USED:
		q1->avail = q0->used;
		break;
	case C_USED_ON_OTHER_DESC:
		q1->used = q0->desc + 64;
		break;
	case C_ADDRESS_WRAP:
		q0->desc = 0xfffffffffffffff0ull;
		break;
	case C_INFLIGHT:
		q0->base = (uint16_t)(q0->used_idx + q0->size + 1);
		break;
	case C_INFLIGHT_WRAP:
		q0->used_idx = 65530;
		q0->base = (uint16_t)(65530 + q0->size + 1);
		break;
	case C_BASE_BEHIND:
		q0->base = (uint16_t)(q0->used_idx - 1);
		break;
	case C_USED_IDX_STATE:
		q0->used_idx--;	/* one more in flight: still <= size */
		break;
	case C_USED_IDX_MEM:
		set_mem16(b, q0->used + 2,
			  (uint16_t)(mem16(b, q0->used + 2) + 1));
		break;
	case C_AVAIL_FAR:
		set_mem16(b, q0->avail + 2,
			  (uint16_t)(q0->base + q0->size + 1));
		break;
	case C_AVAIL_BEHIND:
		set_mem16(b, q0->avail + 2, (uint16_t)(q0->base - 1));
		break;
	case C_USED_PARTLY_OUT:
		q0->used = mem_end - 8;
		break;
	case C_DESC_OUT:
		q0->desc = mem_end + 0x1000;
		break;
	}
	return true;
}

static char tmpdir[256], cli_path[PATH_MAX];

static void slurp_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(buf, 1, len - 1, f) : 0;

	buf[n] = '\0';
	if (f)
		fclose(f);
}

/* Run the CLI: exit status, its stdout in out and stderr in err. */
static int run_cli(const char *const *args, char *out, size_t olen, char *err,
		   size_t elen)
{
	const char *argv[16];
	char op[300], ep[300];
	int n = 0, st;
	pid_t pid;

	argv[n++] = cli_path;
	while (*args && n < 15)
		argv[n++] = *args++;
	argv[n] = NULL;
	snprintf(op, sizeof(op), "%s/cli.out", tmpdir);
	snprintf(ep, sizeof(ep), "%s/cli.err", tmpdir);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fo = open(op, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(ep, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fo < 0 || fe < 0)
			_exit(126);
		dup2(fo, 1);
		dup2(fe, 2);
		execv(cli_path, (char *const *)argv);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	slurp_file(op, out, olen);
	slurp_file(ep, err, elen);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Lines of the CLI's output, not counting version-1 stream warnings. */
static unsigned int verdict_lines(const char *out, const char *err)
{
	const char *texts[2] = { out, err };
	unsigned int n = 0, k;

	for (k = 0; k < 2; k++) {
		const char *p = texts[k];

		while (*p) {
			const char *nl = strchr(p, '\n');
			size_t l = nl ? (size_t)(nl - p) : strlen(p);

			if (!memmem(p, l, "warning:", 8))
				n++;
			p += l + (nl ? 1 : 0);
		}
	}
	return n;
}

static void put_u64(FILE *f, uint64_t v)
{
	fwrite(&v, 8, 1, f);
}

/* A record of a version-1 migrate-out stream (host order). */
static void put_record(FILE *f, uint32_t type, const void *a, size_t alen,
		       const void *b, size_t blen)
{
	uint32_t h[2] = { type, 0 };

	fwrite(h, 4, 2, f);
	put_u64(f, alen + blen);
	if (alen)
		fwrite(a, 1, alen, f);
	if (blen)
		fwrite(b, 1, blen, f);
}

/*
 * The state as a file: a bare blob, or with mem a migrate-out stream with
 * its MEMORY and DEVICE_STATE records.
 */
static bool write_state_file(const char *path, const void *blob, size_t len,
			     struct vdpa_mem *mem)
{
	FILE *f = fopen(path, "wb");
	bool ok;

	if (!f)
		return false;
	if (mem) {
		uint64_t h[3] = { 0x40000000ull, vdpa_mem_size(mem),
				  vdpa_mem_used(mem) };

		put_u64(f, 0x3147494d41504456ull);	/* VDPAMIG1 */
		put_u64(f, 1);
		put_record(f, 3, h, sizeof(h), vdpa_mem_base(mem), h[2]);
		put_record(f, 5, blob, len, NULL, 0);
		put_record(f, 0, NULL, 0, NULL, 0);
	} else {
		fwrite(blob, 1, len, f);
	}
	ok = !ferror(f);
	return fclose(f) == 0 && ok;
}

struct tally {
	unsigned int cases, refusals, accepted, cli_agree, cli_cases;
};

/* One snapshot of what a load would change on a device. */
static bool sim_same(const struct vsim_status *a, const struct vsim_status *b)
{
	return a->status == b->status && a->features == b->features &&
	       a->backend_features == b->backend_features &&
	       a->iotlb_entries == b->iotlb_entries &&
	       a->mem_regions == b->mem_regions &&
	       a->state_transfers == b->state_transfers &&
	       !memcmp(a->ready, b->ready, sizeof(a->ready)) &&
	       !memcmp(a->last_avail, b->last_avail, sizeof(a->last_avail));
}

static void run_case(const struct ccase *c, struct base *b, struct tally *t)
{
	struct vdpa_dev *dev = c->where == MEM ? b->dev_mem : b->dev_bare;
	struct vsim_thread *thr = c->where == MEM ? b->thr_mem : b->thr_bare;
	char m1[512] = "", m2[512] = "", m3[512] = "", why[128] = "";
	struct vdpa_state *s, *d = NULL, *use, dst;
	struct vsim_status before, after;
	struct vdpa_caps cp;
	uint64_t offered = 0;
	void *blob = NULL;
	size_t len = 0;
	bool decodes, same_req;
	uint8_t st = 0xff;
	int r1, r2, r3;

	restore_mem(b);
	s = copy_state(b->s);
	dst = *b->desc;
	dst.device = dst.backing = NULL;
	if (vdpa_dev_get_caps(dev, &cp) == 0)
		offered = cp.backend_features;
	if (!tap_ok(mutate(c, s, b, &dst, &offered), "%s: the case applies",
		    c->what)) {
		vdpa_state_free(s);
		return;
	}
	t->cases++;
	if (c->err)
		t->refusals++;
	else
		t->accepted++;
	/* through the blob: encoded with a valid CRC, decoded */
	if (vdpa_state_encode(s, &blob, &len) < 0) {
		if (!tap_ok(c->where == CORE, "%s: encodes", c->what)) {
			vdpa_state_free(s);
			return;
		}
		decodes = false;
	} else {
		decodes = vdpa_state_decode(blob, len, 0, &d, m1,
					    sizeof(m1)) == 0;
	}
	use = decodes ? d : s;
	if (!decodes)
		tap_ok(c->err == -EINVAL, "%s: the decoder (or the encoder) "
		       "already refuses it (\"%s\")", c->what, m1);

	if (c->where == CORE) {
		r1 = state_check_target(use, &dst, offered, b->mem, m1,
					sizeof(m1));
		if (!tap_ok(r1 == c->err && (c->err ? one_line(m1) &&
					     strstr(m1, c->keyword) : !m1[0]),
			    "%s: state_check_target %s", c->what,
			    c->err ? "refuses" : "accepts"))
			tap_diag("  got %d \"%s\", want %d \"%s\"", r1, m1,
				 c->err, c->keyword ? c->keyword : "");
		goto out;
	}

	/* (a) the check, only reading from the device */
	vsim_get_status(vsim_thread_sim(thr), &before);
	watch(dev);
	r1 = vdpa_state_check_load(dev, use, NULL, m1, sizeof(m1));
	unwatch();
	same_req = reqlog.changing == 0;
	if (!tap_ok(r1 == c->err && same_req &&
		    (c->err ? one_line(m1) && strstr(m1, c->keyword) != NULL :
		     !m1[0]), "%s: vdpa_state_check_load %s%s%s (%u requests, "
		    "none changing)", c->what, c->err ? "refuses: \"" :
		    "accepts", c->err ? m1 : "", c->err ? "\"" : "",
		    reqlog.total))
		tap_diag("  got %d \"%s\", want %d \"%s\"; first changing "
			 "request %s", r1, m1, c->err, c->keyword ?
			 c->keyword : "", reqlog.first);
	/* the memory passed explicitly gives the same verdict */
	if (c->where == MEM) {
		r3 = vdpa_state_check_load(b->dev_bare, use, b->mem, m3,
					   sizeof(m3));
		if (!tap_ok(r3 == r1 && !strcmp(m3, m1), "%s: the same with "
			    "the memory passed (device without it)", c->what))
			tap_diag("  got %d \"%s\"", r3, m3);
	}

	/*
	 * (b) the load itself: the same verdict, nothing sent before it. A
	 * valid variant is loaded where its rings can run: into the device
	 * with the driver memory (written to match a state without it).
	 */
	if (!c->err && c->where == BARE) {
		fit_memory(b, use);
		dev = b->dev_mem;
		thr = b->thr_mem;
		vsim_get_status(vsim_thread_sim(thr), &before);
	}
	watch(dev);
	r2 = vdpa_state_load_device(dev, use, NULL, m2, sizeof(m2));
	unwatch();
	vsim_get_status(vsim_thread_sim(thr), &after);
	if (c->err) {
		if (!tap_ok(r2 == r1 && !strcmp(m2, m1), "%s: the load refuses "
			    "with the same errno and message", c->what))
			tap_diag("  load %d \"%s\", check %d \"%s\"", r2, m2,
				 r1, m1);
		/* (c) and the device is as it was */
		vdpa_dev_get_status(dev, &st);
		if (!tap_ok(reqlog.changing == 0 && st == 0 &&
			    sim_same(&before, &after), "%s: the device got no "
			    "request that changes it (%u reads), status 0",
			    c->what, reqlog.total))
			tap_diag("  first changing request %s, status 0x%02x, "
				 "simulator %s", reqlog.first, st,
				 sim_same(&before, &after) ? "unchanged" :
				 "changed");
	} else {
		if (!tap_ok(r2 == 0, "%s: loads (\"%s\")", c->what, m2))
			tap_diag("  load %d", r2);
		vdpa_dev_get_status(dev, &st);
		tap_ok(r2 == 0 && (st & VIRTIO_CONFIG_S_DRIVER_OK) &&
		       !(st & VIRTIO_CONFIG_S_NEEDS_RESET),
		       "%s: the loaded device runs (status 0x%02x)", c->what,
		       st);
		vdpa_dev_reset(dev);
	}

	/* `vdpa-user state check FILE DEV` agrees */
	if (b->pid > 0 && cli_path[0]) {
		char path[300], out[4096], err[4096];
		int rc;

		snprintf(path, sizeof(path), "%s/case.state", tmpdir);
		if (!write_state_file(path, blob, len, c->where == MEM ?
				      b->mem : NULL)) {
			tap_ok(0, "%s: state file written", c->what);
			goto out;
		}
		rc = run_cli((const char *const[]){ "state", "check", path,
						     b->cli_dev, NULL },
			     out, sizeof(out), err, sizeof(err));
		t->cli_cases++;
		snprintf(why, sizeof(why), "%s", rc == 0 ? "can be loaded" :
			 "refused");
		if (tap_ok((rc == 0) == (r1 == 0) && rc < 2 &&
			   verdict_lines(out, err) == 1 &&
			   (!decodes || !c->err || strstr(err, m1)),
			   "%s: `vdpa-user state check` agrees (%s)", c->what,
			   why))
			t->cli_agree++;
		else
			tap_diag("  exit %d, out \"%s\", err \"%s\"", rc, out,
				 err);
		unlink(path);
	}
out:
	free(blob);
	vdpa_state_free(d);
	vdpa_state_free(s);
	restore_mem(b);
}

/* The check's own errors: one line each, nothing loaded. */
static void test_check_errors(struct base *b)
{
	struct vsim_thread *thr = NULL;
	struct vdpa_dev *dev = NULL;
	struct vdpa_caps caps;
	char msg[256] = "";
	int r;

	r = vdpa_state_check_load(NULL, b->s, NULL, msg, sizeof(msg));
	tap_ok(r == -EINVAL && !strcmp(msg, "no device"),
	       "check without a device: EINVAL \"%s\"", msg);
	r = vdpa_state_check_load(b->dev_bare, NULL, NULL, msg, sizeof(msg));
	tap_ok(r == -EINVAL && !strcmp(msg, "no state"),
	       "check without a state: EINVAL \"%s\"", msg);
	r = vdpa_state_load_device(b->dev_bare, NULL, NULL, msg, sizeof(msg));
	tap_ok(r == -EINVAL && !strcmp(msg, "no state"),
	       "load without a state: EINVAL \"%s\"", msg);
	r = state_check_target(NULL, b->desc, 0, NULL, msg, sizeof(msg));
	tap_ok(r == -EINVAL && !strcmp(msg, "no state"),
	       "state_check_target without a state: EINVAL \"%s\"", msg);
	/* destinations that went away before (and after) their capabilities */
	if (!tap_ok(open_target(&b->o, "sim:gone", &thr, &dev) == 0,
		    "a destination to lose before its capabilities")) {
		/* nothing to check on */
	} else {
		vsim_thread_stop(thr);
		msg[0] = '\0';
		r = vdpa_state_check_load(dev, b->s, NULL, msg, sizeof(msg));
		tap_ok(r < 0 && one_line(msg) && strstr(msg, "capabilities"),
		       "a destination gone before its capabilities: %d \"%s\"",
		       r, msg);
		vdpa_dev_close(dev);
	}
	if (!tap_ok(open_target(&b->o, "sim:gone2", &thr, &dev) == 0,
		    "a destination to lose before its description")) {
		/* nothing to check on */
	} else {
		r = vdpa_dev_get_caps(dev, &caps);
		tap_is(r, 0, "that destination answers its capabilities");
		vsim_thread_stop(thr);
		msg[0] = '\0';
		r = vdpa_state_check_load(dev, b->s, NULL, msg, sizeof(msg));
		tap_ok(r < 0 && one_line(msg) &&
		       strstr(msg, "describing the destination"),
		       "a destination gone before its description: %d \"%s\"",
		       r, msg);
		vdpa_dev_close(dev);
	}
}

/* The transfer FD's LOAD check with compat_with: the same verdict. */
static void test_transfer_check(struct base *b)
{
	static const enum case_id ids[] = { C_SAVED, C_DESC_ONLY,
		C_NO_VERSION_1, C_HOLE, C_USED_ON_AVAIL, C_BE_NO_DEVICE_STATE };
	struct vdpa_transfer_opts o = { .compat_with = b->desc };
	size_t i, k;

	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		const struct ccase *c = NULL;
		struct vdpa_state *s, *got = NULL, dst = *b->desc;
		struct vdpa_transfer *t = NULL;
		char m1[512] = "";
		void *blob = NULL;
		size_t len = 0;
		uint64_t offered = 0;
		int wfd = -1, r, r1;

		for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
			if (cases[k].id == ids[i] && cases[k].base == 0)
				c = &cases[k];
		s = copy_state(b->s);
		mutate(c, s, b, &dst, &offered);
		vdpa_state_encode(s, &blob, &len);
		r1 = state_check_target(s, b->desc, 0, NULL, m1, sizeof(m1));
		r = vdpa_transfer_set_fd(VDPA_TRANSFER_LOAD,
					 VDPA_TRANSFER_PHASE_STOPPED, -1, NULL,
					 0, &o, &t, &wfd);
		if (!r) {
			r = write(wfd, blob, len) == (ssize_t)len ? 0 : -EIO;
			close(wfd);
		}
		if (!r)
			r = vdpa_transfer_check(t);
		if (!r)
			got = vdpa_transfer_take_state(t);
		if (!tap_ok(r == r1 &&
			    (r ? !strcmp(vdpa_transfer_error(t), m1) : !!got),
			    "transfer FD LOAD with compat_with, %s: %s "
			    "(\"%s\")", c->what,
			    r ? "refused as the check does" : "accepted",
			    t ? vdpa_transfer_error(t) : ""))
			tap_diag("  transfer %d, check %d \"%s\"", r, r1, m1);
		vdpa_transfer_free(t);
		vdpa_state_free(got);
		vdpa_state_free(s);
		free(blob);
	}
}

static void test_load_check(void)
{
	struct base bases[2];
	struct tally t = { 0 };
	bool ok[2];
	size_t i;

	if (tu_mkdtemp(tmpdir, sizeof(tmpdir)) < 0) {
		tap_ok(0, "a private directory");
		return;
	}
	snprintf(cli_path, sizeof(cli_path), "%s/vdpa-user", tu_build_dir());
	if (!tap_ok(access(cli_path, X_OK) == 0, "the CLI is built (%s)",
		    cli_path))
		cli_path[0] = '\0';
	for (i = 0; i < 2; i++)
		ok[i] = base_setup(&bases[i], (int)i, tmpdir);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (ok[cases[i].base])
			run_case(&cases[i], &bases[cases[i].base], &t);
	tap_ok(t.refusals >= 40 && t.accepted >= 10,
	       "hostile-state corpus: %u cases, %u refused, %u valid",
	       t.cases, t.refusals, t.accepted);
	tap_ok(t.cli_agree == t.cli_cases && t.cli_cases > 0,
	       "`vdpa-user state check` and the load agree on all %u files",
	       t.cli_cases);
	if (ok[0]) {
		test_transfer_check(&bases[0]);
		test_check_errors(&bases[0]);
	}
	for (i = 0; i < 2; i++)
		if (ok[i] || bases[i].s)
			base_teardown(&bases[i]);
	tu_rmtree(tmpdir);
}

/* ---- untrusted text: escaped on every output --------------------------- */

static void test_escaping(void)
{
	static const char evil[] = "vdpa-sim://net\n\x1b[31mred\"q\\b"
				   "\xc3\xa9\xff\x7f\t";
	static const char text_line[] = "model vdpa-sim://net\\n\\x1b[31mred"
		"\"q\\\\b\\xc3\\xa9\\xff\\x7f\\t\n";
	static const char json_member[] = "\"model\":\"vdpa-sim://net\\n"
		"\\u001b[31mred\\\"q\\\\b\\u00c3\\u00a9\\u00ff\\u007f\\t\"";
	struct vdpa_state *h, *hd, *d = NULL;
	char *buf = NULL, msg[512] = "", path[300], out[8192], err[4096];
	size_t blen = 0, len = 0, i;
	void *blob = NULL;
	bool clean = true;
	FILE *f;
	int r;

	h = hand_state(&hd);
	memcpy(h->model, evil, sizeof(evil));
	if (!tap_ok(vdpa_state_encode(h, &blob, &blen) == 0 &&
		    vdpa_state_decode(blob, blen, 0, &d, NULL, 0) == 0 &&
		    !strcmp(d->model, evil), "a model with a newline, ESC, a "
		    "quote, a backslash and bytes >= 0x7f decodes"))
		goto out;

	f = open_memstream(&buf, &len);
	vdpa_state_print(d, f, false);
	fclose(f);
	for (i = 0; i < len; i++)
		if ((buf[i] < 0x20 && buf[i] != '\n') ||
		    (unsigned char)buf[i] >= 0x7f)
			clean = false;
	tap_ok(clean && strstr(buf, text_line) != NULL, "state print: the "
	       "model escaped on one line, no control byte or byte >= 0x7f");
	free(buf);
	buf = NULL;
	f = open_memstream(&buf, &len);
	vdpa_state_print(d, f, true);
	fclose(f);
	if (!tap_ok(json_valid(buf) && strstr(buf, json_member) != NULL &&
		    len && buf[len - 1] == '\n' && !strchr(buf, '\n')[1],
		    "state print -j: valid JSON (RFC 8259), the model escaped"))
		tap_diag("  %s", buf);
	free(buf);
	buf = NULL;
	tap_ok(!json_valid("{\"a\":\"\n\"}") &&
	       !json_valid("{\"a\":\"\xff\"}") && !json_valid("{\"a\":1,}") &&
	       json_valid("{\"a\":[1,-2.5e3,\"\\u00e9\",true,null]}"),
	       "the test's JSON validator is strict");

	r = vdpa_state_compat(d, hd, msg, sizeof(msg));
	tap_ok(r == -EPROTO && one_line(msg) && strstr(msg, "\\x1b[31m"),
	       "compat: the model named escaped, on one line (\"%s\")", msg);

	/* the CLI: state show (text and -j), state check */
	if (!tap_ok(cli_path[0] && tu_mkdtemp(tmpdir, sizeof(tmpdir)) == 0,
		    "the CLI (%s) and a private directory for its part",
		    cli_path[0] ? cli_path : "not found"))
		goto out;
	snprintf(path, sizeof(path), "%s/evil.state", tmpdir);
	if (tap_ok(write_state_file(path, blob, blen, NULL),
		   "the state file with the evil model written")) {
		r = run_cli((const char *const[]){ "-j", "state", "show", path,
						     NULL }, out, sizeof(out),
			    err, sizeof(err));
		if (!tap_ok(r == 0 && json_valid(out) &&
			    strstr(out, json_member),
			    "vdpa-user -j state show: valid JSON"))
			tap_diag("  exit %d out %s err %s", r, out, err);
		r = run_cli((const char *const[]){ "state", "show", path,
						     NULL }, out, sizeof(out),
			    err, sizeof(err));
		clean = r == 0 && strstr(out, text_line) != NULL;
		for (i = 0; out[i]; i++)
			if ((out[i] < 0x20 && out[i] != '\n') ||
			    (unsigned char)out[i] >= 0x7f)
				clean = false;
		tap_ok(clean, "vdpa-user state show: the model escaped");
		{
			const char *args[] = { "--type", "net", NULL };
			char sock[320], dev[330];
			pid_t pid;

			snprintf(sock, sizeof(sock), "%s/evil.sock", tmpdir);
			snprintf(dev, sizeof(dev), "sim:%s", sock);
			pid = tu_spawn_sim(sock, args);
			if (tap_ok(pid > 0, "a vdpa-sim process for `state "
				   "check` (%s)", pid > 0 ? "started" :
				   strerror((int)-pid))) {
				r = run_cli((const char *const[]){ "state",
					"check", path, dev, NULL }, out,
					sizeof(out), err, sizeof(err));
				tap_ok(r == 1 && verdict_lines(out, err) == 1 &&
				       strstr(err, "model: source vdpa-sim://"
					      "net\\n\\x1b[31m"),
				       "vdpa-user state check: the model "
				       "escaped, one line");
				r = run_cli((const char *const[]){ "-j",
					"state", "check", path, dev, NULL },
					out, sizeof(out), err, sizeof(err));
				if (!tap_ok(r == 1 && json_valid(out) &&
					    strstr(out, "\"compatible\":"
						   "false,\"reason\":"),
					    "vdpa-user -j state check: valid "
					    "JSON with the reason"))
					tap_diag("  exit %d out %s", r, out);
				tu_stop_sim(pid, false);
			}
		}
	}
	tu_rmtree(tmpdir);
out:
	free(blob);
	vdpa_state_free(d);
	vdpa_state_free(h);
	vdpa_state_free(hd);
}

/*
 * A state that passes every check, but whose ring holds a chain the
 * destination cannot follow (a buffer outside its IOTLB): the device sets
 * NEEDS_RESET once it runs. The load reads the status back and fails,
 * leaving the device reset, instead of reporting success.
 */
static void test_needs_reset_at_start(void)
{
	struct vdpa_state *s, *desc = NULL;
	struct vdpa_mem *mem = NULL;
	struct vsim_thread *thr = NULL;
	struct vdpa_dev *dev = NULL;
	struct vsim_opts o;
	struct vring_desc *d;
	struct vring_avail *av;
	char msg[256] = "";
	uint8_t st = 0xff;
	uint16_t i, n;
	int r;

	s = saved_blk_state(&desc, &mem);
	if (!tap_ok(s && s->nqueues == 1, "needs reset: a saved blk state")) {
		vdpa_state_free(desc);
		vdpa_mem_destroy(mem);
		vdpa_state_free(s);
		return;
	}
	n = s->q[0].size;
	d = (void *)((uint8_t *)vdpa_mem_base(mem) +
		     (s->q[0].desc - 0x40000000ull));
	av = (void *)((uint8_t *)vdpa_mem_base(mem) +
		      (s->q[0].avail - 0x40000000ull));
	for (i = 0; i < n; i++) {
		d[i].addr = 0xdead00000000ull;	/* in no IOTLB mapping */
		d[i].len = 512;
		d[i].flags = 0;
	}
	av->ring[s->q[0].base % n] = 0;
	__atomic_store_n(&av->idx, (uint16_t)(s->q[0].base + 1),
			 __ATOMIC_RELEASE);
	blk_opts(&o);
	r = open_target(&o, "needs-reset", &thr, &dev);
	if (!r)
		r = vdpa_mem_map(dev, mem);
	if (!r)
		r = vdpa_state_check_load(dev, s, NULL, msg, sizeof(msg));
	if (!tap_is_ok(r, 0, "needs reset: the state passes the load check")) {
		tap_diag("  %s", msg);
		goto out;
	}
	r = vdpa_state_load_device(dev, s, NULL, msg, sizeof(msg));
	tap_ok(r < 0 && strstr(msg, "NEEDS_RESET") && !strchr(msg, '\n'),
	       "needs reset: the load fails, saying so (%s)", msg);
	r = vdpa_dev_get_status(dev, &st);
	tap_ok(r == 0 && st == 0, "needs reset: the device is left reset "
	       "(status 0x%02x)", st);
out:
	vdpa_dev_close(dev);
	vsim_thread_stop(thr);
	vdpa_state_free(s);
	vdpa_state_free(desc);
	vdpa_mem_destroy(mem);
}

int main(void)
{
	struct vdpa_state *s, *desc = NULL;
	int fds0;
	void *blob = NULL;
	size_t len = 0;
	bool real;

	tap_need_fd_count();
	fds0 = tap_count_fds();
	s = saved_net_state(&desc, NULL);
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
	test_net_rx(s);
	test_needs_reset_at_start();
	test_truncations(blob, len);
	test_trailing(blob, len);
	test_bit_flips(blob, len);
	test_header(blob, len);
	test_lengths(blob, len);
	test_impossible(blob, len, s);
	test_sections(blob, len, s);
	test_compat(s, desc);
	test_request_count();
	if (real)
		test_compat_sims(s);
	if (real)
		test_load_check();
	test_escaping();

	free(blob);
	vdpa_state_free(s);
	vdpa_state_free(desc);
	tap_is(tap_count_fds(), fds0, "no fd leaked");
	return tap_done();
}
