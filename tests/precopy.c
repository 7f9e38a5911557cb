// SPDX-License-Identifier: MIT
/*
 * Pre-copy (PROPOSAL: VHOST_BACKEND_F_DEVICE_STATE_PRECOPY): vdpa-sim's blk
 * write-back cache moved in rounds while the source runs, then the rest in
 * the switchover. Exact pending estimates, data read back intact on the
 * destination after rounds, rewrites, flushes and the final; rounds out of
 * order, repeated, corrupt, of another migration, after the final one,
 * refused by the library and by the device itself; a destination dying in
 * pre-copy leaves the source running; the transfer FD's PRECOPY phase.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <vdpa-user/blk.h>
#include <vdpa-user/migrate.h>
#include <vdpa-user/transfer.h>
#include <vdpa-user/uapi-ext.h>
#include <vdpa-user/vdpa-user.h>

#include "crc32c.h"
#include "tap.h"
#include "testutil.h"

#define DISK_SECTORS	32768u		/* 16 MiB backing file */
#define ENTRY		520u	/* a cache entry in a round: sector + data */
#define PC_HDR		48u	/* the library's framing of a round */

static char dir[PATH_MAX - 64];
static char disk[PATH_MAX];
static uint8_t gen[DISK_SECTORS];	/* what each sector must hold */

struct sim {
	pid_t pid;
	char sock[PATH_MAX];
	char name[PATH_MAX + 8];
};

/* A running blk driver on a device. */
struct drv {
	struct vdpa_dev *dev;
	struct vdpa_mem *mem;
	struct vdpa_blk *blk;
};

static int sim_start(struct sim *s, const char *tag, const char *const *args)
{
	snprintf(s->sock, sizeof(s->sock), "%s/%s.sock", dir, tag);
	snprintf(s->name, sizeof(s->name), "sim:%s", s->sock);
	s->pid = tu_spawn_sim(s->sock, args);
	return s->pid > 0 ? 0 : (int)s->pid;
}

static void sim_stop(struct sim *s)
{
	if (s->pid > 0)
		tu_stop_sim(s->pid, false);
	s->pid = 0;
}

static const char *const wb_args[] = { "--type", "blk", "--cache", "writeback",
				       "--backing", disk, NULL };

static void fill(uint8_t *p, uint64_t sector, uint8_t g)
{
	uint64_t w[64];
	unsigned int i;

	if (!g) {
		memset(p, 0, 512);	/* never written: the zeroed file */
		return;
	}
	for (i = 0; i < 64; i++)
		w[i] = ((sector * 64 + i) * 0x9e3779b97f4a7c15ULL) ^
		       ((uint64_t)g << 56) ^ g;
	memcpy(p, w, sizeof(w));
}

/* Wait for every request in flight; count failures and wrong data. */
static unsigned int drain(struct vdpa_blk *blk, unsigned int depth)
{
	struct vdpa_blk_completion c;
	unsigned int bad = 0, i;
	uint8_t exp[512];
	int r;

	while (vdpa_blk_free_slots(blk) < depth) {
		while ((r = vdpa_blk_poll(blk, &c)) > 0) {
			if (c.status) {
				bad++;
				continue;
			}
			for (i = 0; c.type == VIRTIO_BLK_T_IN &&
			     i < c.len / 512; i++) {
				fill(exp, c.sector + i, gen[c.sector + i]);
				if (memcmp(exp, (const uint8_t *)c.data +
					   (size_t)i * 512, 512))
					bad++;
			}
		}
		if (r < 0 || (vdpa_blk_free_slots(blk) < depth &&
			      vdpa_blk_wait(blk, 5000)))
			return bad + 1;
	}
	return bad;
}

/* Write n sectors from first with generation g (8 KiB requests). */
static unsigned int wr(struct drv *d, uint32_t first, uint32_t n, uint8_t g)
{
	unsigned int depth = vdpa_blk_free_slots(d->blk), bad = 0;
	uint8_t buf[8192];
	uint32_t s, k, i;

	for (s = first; s < first + n && !bad; s += k) {
		k = first + n - s < 16 ? first + n - s : 16;
		for (i = 0; i < k; i++) {
			gen[s + i] = g;
			fill(buf + i * 512, s + i, g);
		}
		if (!vdpa_blk_free_slots(d->blk))
			bad += drain(d->blk, 1);
		if (vdpa_blk_write(d->blk, s, buf, k * 512, s))
			bad++;
		vdpa_blk_kick(d->blk);
	}
	return bad + drain(d->blk, depth);
}

/* Read n sectors from first back; the number that are not what was written. */
static unsigned int rd(struct drv *d, uint32_t first, uint32_t n)
{
	unsigned int depth = vdpa_blk_free_slots(d->blk), bad = 0;
	uint32_t s, k;

	for (s = first; s < first + n; s += k) {
		k = first + n - s < 16 ? first + n - s : 16;
		if (!vdpa_blk_free_slots(d->blk))
			bad += drain(d->blk, 1);
		if (vdpa_blk_read(d->blk, s, k * 512, s))
			bad++;
		vdpa_blk_kick(d->blk);
	}
	return bad + drain(d->blk, depth);
}

static unsigned int flush(struct drv *d)
{
	unsigned int depth = vdpa_blk_free_slots(d->blk);

	if (vdpa_blk_flush(d->blk, 1))
		return 1;
	vdpa_blk_kick(d->blk);
	return drain(d->blk, depth);
}

static int drv_open(struct drv *d, const char *name)
{
	int r;

	memset(d, 0, sizeof(*d));
	r = vdpa_dev_open(name, &d->dev);
	if (!r)
		r = vdpa_mem_create(16 << 20, 1 << 30, &d->mem);
	if (!r)
		r = vdpa_blk_open(d->dev, d->mem, NULL, &d->blk);
	if (r)
		tap_diag("%s: %s", name, strerror(-r));
	return r;
}

static void drv_close(struct drv *d)
{
	if (d->blk)
		vdpa_blk_close(d->blk);
	vdpa_dev_close(d->dev);
	vdpa_mem_destroy(d->mem);
	memset(d, 0, sizeof(*d));
}

static bool running(struct vdpa_dev *dev)
{
	uint8_t st = 0;

	return vdpa_dev_get_status(dev, &st) == 0 &&
	       (st & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(st & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED));
}

static int info(struct vdpa_dev *dev, struct vhost_vdpa_precopy_info *pi)
{
	memset(pi, 0, sizeof(*pi));
	return vdpa_dev_call(dev, VHOST_VDPA_GET_PRECOPY_INFO, pi);
}

static bool new_disk(void)
{
	int fd = open(disk, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && ftruncate(fd, DISK_SECTORS * 512ull) == 0;

	if (fd >= 0)
		close(fd);
	memset(gen, 0, sizeof(gen));
	return ok;
}

/*
 * A device's own round (or state) straight into a device, phase given,
 * bypassing the library's checks: the device's verdict.
 */
static int dev_load(struct vdpa_dev *dev, uint32_t phase, const void *buf,
		    size_t len)
{
	struct vhost_vdpa_device_state_fd a = {
		.direction = VHOST_TRANSFER_STATE_DIRECTION_LOAD,
		.phase = phase,
	};
	const uint8_t *p = buf;
	int pfd[2], r, r2 = 0;

	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	fcntl(pfd[1], F_SETPIPE_SZ, 1 << 20);
	a.fd = pfd[0];
	r = vdpa_dev_call(dev, VHOST_VDPA_SET_DEVICE_STATE_FD, &a);
	close(pfd[0]);
	while (!r && len) {
		ssize_t n = write(pfd[1], p, len);

		if (n < 0) {
			r2 = -errno;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	close(pfd[1]);
	if (r < 0)
		return r;
	r = vdpa_dev_call(dev, VHOST_VDPA_CHECK_DEVICE_STATE, NULL);
	return r < 0 ? r : r2;
}

/* A device's own state (phase given) read out of it directly. */
static int dev_save(struct vdpa_dev *dev, uint32_t phase, uint8_t **ret,
		    size_t *ret_len)
{
	struct vhost_vdpa_device_state_fd a = {
		.direction = VHOST_TRANSFER_STATE_DIRECTION_SAVE,
		.phase = phase,
	};
	size_t len = 0, cap = 1 << 20;
	uint8_t *buf = malloc(cap);
	int pfd[2], r;
	ssize_t n;

	if (!buf || pipe2(pfd, O_CLOEXEC)) {
		free(buf);
		return -ENOMEM;
	}
	a.fd = pfd[1];
	r = vdpa_dev_call(dev, VHOST_VDPA_SET_DEVICE_STATE_FD, &a);
	close(pfd[1]);
	while (!r && (n = read(pfd[0], buf + len, cap - len)) > 0) {
		len += (size_t)n;
		if (len == cap)
			r = -EFBIG;
	}
	close(pfd[0]);
	if (!r)
		r = vdpa_dev_call(dev, VHOST_VDPA_CHECK_DEVICE_STATE, NULL);
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* ---- the sequence, with exact estimates and every block checked ------- */

struct seq {
	struct drv *src;
	int calls;
	int fail;		/* checks inside the callback that failed */
	struct vhost_vdpa_precopy_info after[4];
	struct vdpa_mig_precopy_info seen[4];
};

#define CHECK_IN_CB(q, cond) do { if (!(cond)) { (q)->fail++; \
	tap_diag("callback %d: %s", (q)->calls, #cond); } } while (0)

/*
 * After round 0: rewrite 100 sent sectors, write 50 new ones. After
 * round 1: flush, rewrite 0..9, flush again (the disk has them, the
 * destination's round-1 copies are stale), write 20 new. After round 2:
 * rewrite 5 of those, stop: they go in the final.
 */
static int progress(const struct vdpa_mig_precopy_info *pi, void *opaque)
{
	struct seq *q = opaque;
	struct drv *d = q->src;
	int k = q->calls++;

	if (k < 4)
		q->seen[k] = *pi;
	switch (k) {
	case 0:
		CHECK_IN_CB(q, wr(d, 0, 100, 2) == 0);
		CHECK_IN_CB(q, wr(d, 4000, 50, 1) == 0);
		break;
	case 1:
		CHECK_IN_CB(q, flush(d) == 0);
		CHECK_IN_CB(q, wr(d, 0, 10, 4) == 0);
		CHECK_IN_CB(q, flush(d) == 0);
		CHECK_IN_CB(q, wr(d, 5000, 20, 3) == 0);
		break;
	case 2:
		CHECK_IN_CB(q, wr(d, 5000, 5, 5) == 0);
		break;
	}
	if (k < 4)
		CHECK_IN_CB(q, info(d->dev, &q->after[k]) == 0);
	return k >= 2;
}

static void sequence(void)
{
	struct vdpa_mig_opts o = { .precopy = true, .precopy_threshold = 1,
				   .precopy_max_rounds = 10 };
	struct vhost_vdpa_precopy_info pi;
	struct vdpa_mig_result res, back;
	struct sim a = { 0 }, b = { 0 };
	struct seq q = { 0 };
	struct drv d;
	char err[512] = "";
	struct vdpa_dev *bdev = NULL;
	int r;

	if (!new_disk() || sim_start(&a, "sa", wb_args) ||
	    sim_start(&b, "sb", wb_args) || drv_open(&d, a.name) ||
	    vdpa_dev_open(b.name, &bdev)) {
		tap_ok(0, "sequence: simulators and driver");
		goto out;
	}
	tap_ok(wr(&d, 0, 2048, 1) == 0, "1 MiB written into the source's "
	       "write-back cache, unflushed");
	r = info(d.dev, &pi);
	tap_ok(r == 0 && pi.initial_bytes == 2048ull * ENTRY &&
	       pi.dirty_bytes == 0 && pi.flags == 0,
	       "estimate before round 0: initial_bytes %llu = 2048 entries "
	       "exactly, dirty 0 (r %d)", (unsigned long long)pi.initial_bytes,
	       r);
	q.src = &d;
	o.precopy_progress = progress;
	o.opaque = &q;
	r = vdpa_migrate(d.dev, bdev, &o, &res, err, sizeof(err));
	if (!tap_ok(r == 0 && res.precopy && res.precopy_rounds == 3 &&
		    q.calls == 3 && !q.fail,
		    "vdpa_migrate with pre-copy: 3 rounds, the front-end "
		    "stopped them (r %d rounds %u calls %d: %s)", r,
		    res.precopy_rounds, q.calls, err))
		goto out;
	tap_ok(q.seen[0].rounds == 1 && q.seen[0].initial_bytes == 0 &&
	       q.seen[0].dirty_bytes == 0 && q.seen[0].sent_bytes > 2048ull *
	       ENTRY, "after round 0 nothing is pending; %llu bytes sent",
	       (unsigned long long)q.seen[0].sent_bytes);
	tap_ok(q.after[0].initial_bytes == 50ull * ENTRY &&
	       q.after[0].dirty_bytes == 100ull * ENTRY &&
	       q.after[0].rounds == 1 &&
	       (q.after[0].flags & VHOST_VDPA_PRECOPY_ACTIVE),
	       "estimate is exact: 50 new entries initial, 100 rewritten "
	       "entries dirty (got %llu / %llu)",
	       (unsigned long long)q.after[0].initial_bytes,
	       (unsigned long long)q.after[0].dirty_bytes);
	tap_ok(q.after[1].initial_bytes == 20ull * ENTRY &&
	       q.after[1].dirty_bytes == 0,
	       "after two flushes only the 20 entries written since are "
	       "pending (got %llu / %llu)",
	       (unsigned long long)q.after[1].initial_bytes,
	       (unsigned long long)q.after[1].dirty_bytes);
	tap_ok(q.after[2].initial_bytes == 0 &&
	       q.after[2].dirty_bytes == 5ull * ENTRY,
	       "5 rewrites after the last round are pending for the final "
	       "(got %llu / %llu)",
	       (unsigned long long)q.after[2].initial_bytes,
	       (unsigned long long)q.after[2].dirty_bytes);
	tap_ok(res.precopy_pending == 5ull * ENTRY,
	       "the result reports the pending estimate when rounds stopped "
	       "(%llu)", (unsigned long long)res.precopy_pending);
	/* the final carried the rest: 5 entries, not the 20-entry cache */
	tap_ok(res.state_bytes > 5ull * ENTRY &&
	       res.state_bytes < 20ull * ENTRY,
	       "the final state carries only what changed since the last "
	       "round (%zu bytes)", res.state_bytes);
	vdpa_blk_set_dev(d.blk, bdev);
	r = (int)rd(&d, 0, 6000);
	tap_ok(r == 0, "every block reads back intact on the destination "
	       "(6000 sectors: cached, flushed, rewritten; %d bad)", r);
	/* a round after the final one: the device itself refuses it */
	{
		static const uint8_t junk[64];

		r = dev_load(bdev, VHOST_TRANSFER_STATE_PHASE_PRECOPY, junk,
			     sizeof(junk));
		tap_is(r, -EALREADY, "the destination device refuses a round "
		       "after the final one (EALREADY), before reading it");
	}
	/* and back, stop-and-copy: the whole cache (20 entries) goes */
	memset(&o, 0, sizeof(o));
	r = vdpa_migrate(bdev, d.dev, &o, &back, err, sizeof(err));
	tap_ok(r == 0 && !back.precopy && back.state_bytes >= 20ull * ENTRY,
	       "stop-and-copy back carries the whole cache (%zu bytes; %s)",
	       back.state_bytes, err);
	vdpa_blk_set_dev(d.blk, d.dev);
	r = (int)rd(&d, 0, 6000);
	tap_ok(r == 0, "every block intact back on the first device (%d bad)",
	       r);
out:
	drv_close(&d);
	vdpa_dev_close(bdev);
	sim_stop(&a);
	sim_stop(&b);
}

/* ---- bad rounds ----------------------------------------------------------- */

struct rounds {
	void *buf[3];
	size_t len[3];
};

static void free_rounds(struct rounds *x)
{
	int i;

	for (i = 0; i < 3; i++)
		free(x->buf[i]);
}

/* Is the text in err? */
static bool says(const char *err, const char *what)
{
	return strstr(err, what) != NULL;
}

/* Sections of a vdpa-sim state: offset of section id's payload, or 0. */
static size_t section(const uint8_t *b, size_t len, uint16_t id,
		      uint32_t *ret_len)
{
	uint32_t n, i, l;
	size_t off = 32;

	memcpy(&n, b + 12, 4);
	for (i = 0; i < n && off + 8 <= len; i++) {
		uint16_t sid;

		memcpy(&sid, b + off, 2);
		memcpy(&l, b + off + 4, 4);
		if (sid == id) {
			*ret_len = l;
			return off + 8;
		}
		off += 8 + l;
	}
	return 0;
}

/*
 * A device's round (or final) with a field of its ROUND section changed
 * (width 2, 4 or 8 bytes at off), its CRC made right again.
 */
static uint8_t *patch_round(const uint8_t *src, size_t dlen, size_t off,
			    unsigned int width, uint64_t val, size_t *ret_len)
{
	uint8_t *d = malloc(dlen);
	uint32_t crc, zero = 0, sl;
	size_t o;

	if (!d)
		return NULL;
	memcpy(d, src, dlen);
	o = section(d, dlen, 6, &sl);
	if (!o) {
		free(d);
		return NULL;
	}
	if (width == 2)
		memcpy(d + o + off, &(uint16_t){ (uint16_t)val }, 2);
	else if (width == 4)
		memcpy(d + o + off, &(uint32_t){ (uint32_t)val }, 4);
	else
		memcpy(d + o + off, &val, 8);
	memcpy(d + 8, &zero, 4);
	crc = crc32c(0, d, dlen);
	memcpy(d + 8, &crc, 4);
	*ret_len = dlen;
	return d;
}

/*
 * A round as the library frames it, one byte of its first cache entry's
 * data changed, the device round's CRC made right again: the framing, the
 * order, the entry count and the sector set all still hold.
 */
static uint8_t *data_changed(const void *rec, size_t len, size_t *ret_len)
{
	size_t dlen = len - PC_HDR, o;
	uint8_t *d = malloc(dlen);
	uint32_t crc, zero = 0, sl;

	if (!d)
		return NULL;
	memcpy(d, (const uint8_t *)rec + PC_HDR, dlen);
	o = section(d, dlen, 4, &sl);
	if (!o || sl < 16 + ENTRY) {
		free(d);
		return NULL;
	}
	d[o + 16 + 8 + 100] ^= 0x01;	/* entry 0: u64 sector, then data */
	memcpy(d + 8, &zero, 4);
	crc = crc32c(0, d, dlen);
	memcpy(d + 8, &crc, 4);
	*ret_len = dlen;
	return d;
}

/* The same for a round as the library frames it. */
static uint8_t *doctored(const void *rec, size_t len, size_t off_in_round,
			 uint64_t val, size_t *ret_len)
{
	return patch_round((const uint8_t *)rec + PC_HDR, len - PC_HDR,
			   off_in_round, off_in_round ? 8 : 2, val, ret_len);
}

static void bad_rounds(void)
{
	struct sim a = { 0 }, b = { 0 }, c = { 0 };
	struct vdpa_mig_src *ms = NULL, *mc = NULL;
	struct vdpa_mig_dst *md = NULL;
	struct rounds x, y;
	struct drv d = { 0 }, e = { 0 };
	struct vdpa_dev *bdev = NULL;
	void *desc = NULL, *plan = NULL;
	size_t dlen = 0, plen = 0, l;
	char err[512] = "";
	uint8_t *bad;
	int r, i, fds;

	memset(&x, 0, sizeof(x));
	memset(&y, 0, sizeof(y));
	fds = tap_count_fds();
	if (!new_disk() || sim_start(&a, "ba", wb_args) ||
	    sim_start(&b, "bb", wb_args) || sim_start(&c, "bc", wb_args) ||
	    drv_open(&d, a.name) || drv_open(&e, c.name) ||
	    vdpa_dev_open(b.name, &bdev)) {
		tap_ok(0, "bad rounds: simulators and drivers");
		goto out;
	}
	r = wr(&d, 0, 256, 1) + wr(&e, 8000, 16, 1);
	r += vdpa_mig_src_new(d.dev, NULL, &ms) != 0;
	r += vdpa_mig_src_new(e.dev, NULL, &mc) != 0;
	r += vdpa_mig_dst_new(bdev, NULL, &md) != 0;
	r += vdpa_mig_dst_describe(md, &desc, &dlen) != 0;
	r += vdpa_mig_src_precheck(ms, desc, dlen, err, sizeof(err)) != 0;
	r += vdpa_mig_src_precheck(mc, desc, dlen, err, sizeof(err)) != 0;
	r += vdpa_mig_src_plan(ms, &plan, &plen) != 0;
	r += vdpa_mig_dst_prepare(md, plan, plen, err, sizeof(err)) != 0;
	for (i = 0; i < 3 && !r; i++) {
		r += vdpa_mig_src_precopy_round(ms, &x.buf[i], &x.len[i], NULL,
						err, sizeof(err)) != 0;
		r += wr(&d, (uint32_t)i * 10, 10, (uint8_t)(2 + i));
	}
	r += vdpa_mig_src_precopy_round(mc, &y.buf[0], &y.len[0], NULL, err,
					sizeof(err)) != 0;
	if (!tap_ok(r == 0, "three rounds of one source, one of another (%s)",
		    err))
		goto out;

	r = vdpa_mig_dst_precopy_apply(md, x.buf[1], x.len[1], err,
				       sizeof(err));
	tap_ok(r == -EILSEQ && says(err, "round 1 out of order: expected "
				    "round 0"), "round 1 first: %s", err);
	r = vdpa_mig_dst_precopy_apply(md, x.buf[0], x.len[0], err,
				       sizeof(err));
	tap_is(r, 0, "round 0 applies");
	r = vdpa_mig_dst_precopy_apply(md, x.buf[0], x.len[0], err,
				       sizeof(err));
	tap_ok(r == -EILSEQ && says(err, "round 0 repeated"),
	       "round 0 again: %s", err);
	r = vdpa_mig_dst_precopy_apply(md, x.buf[2], x.len[2], err,
				       sizeof(err));
	tap_ok(r == -EILSEQ && says(err, "expected round 1"),
	       "round 2 before round 1: %s", err);
	r = vdpa_mig_dst_precopy_apply(md, y.buf[0], y.len[0], err,
				       sizeof(err));
	tap_ok(r == -EXDEV && says(err, "another migration"),
	       "round 0 of another source's pre-copy: %s", err);
	bad = malloc(x.len[1]);
	if (bad) {
		memcpy(bad, x.buf[1], x.len[1]);
		bad[x.len[1] - 1] ^= 0x40;
		r = vdpa_mig_dst_precopy_apply(md, bad, x.len[1], err,
					       sizeof(err));
		tap_ok(r == -EBADMSG && says(err, "CRC32C"),
		       "a flipped bit in round 1: %s", err);
		r = vdpa_mig_dst_precopy_apply(md, bad, x.len[1] - 1, err,
					       sizeof(err));
		tap_ok(r == -EBADMSG, "round 1 cut short: %s", err);
		free(bad);
	}
	/* the device's own checks, the library's bypassed */
	r = dev_load(bdev, VHOST_TRANSFER_STATE_PHASE_PRECOPY,
		     (uint8_t *)x.buf[0] + PC_HDR, x.len[0] - PC_HDR);
	tap_is(r, -EILSEQ, "the device refuses round 0 again itself (EILSEQ)");
	r = dev_load(bdev, VHOST_TRANSFER_STATE_PHASE_PRECOPY,
		     (uint8_t *)x.buf[2] + PC_HDR, x.len[2] - PC_HDR);
	tap_is(r, -EILSEQ, "the device refuses round 2 before round 1 "
	       "(EILSEQ)");
	r = dev_load(bdev, VHOST_TRANSFER_STATE_PHASE_PRECOPY,
		     (uint8_t *)y.buf[0] + PC_HDR, y.len[0] - PC_HDR);
	tap_is(r, -EXDEV, "the device refuses another device's round "
	       "(EXDEV)");
	/* round 1 with a cache size that is not the source's */
	bad = doctored(x.buf[1], x.len[1], 16, 9999, &l);
	r = bad ? dev_load(bdev, VHOST_TRANSFER_STATE_PHASE_PRECOPY, bad, l) :
		  -ENOMEM;
	tap_is(r, -EBADE, "the device refuses a round after which its cache "
	       "would not be the source's (EBADE)");
	free(bad);
	bad = data_changed(x.buf[1], x.len[1], &l);
	r = bad ? dev_load(bdev, VHOST_TRANSFER_STATE_PHASE_PRECOPY, bad, l) :
		  -ENOMEM;
	tap_is(r, -EBADE, "the device refuses a round with one bit of one "
	       "entry's data changed (its cache's bytes would not be the "
	       "source's: EBADE)");
	free(bad);
	bad = doctored(x.buf[1], x.len[1], 0, 2, &l);
	r = bad ? dev_load(bdev, VHOST_TRANSFER_STATE_PHASE_PRECOPY, bad, l) :
		  -ENOMEM;
	tap_is(r, -EPROTO, "the device refuses round record version 2 "
	       "(EPROTO)");
	free(bad);
	r = dev_load(bdev, VHOST_TRANSFER_STATE_PHASE_STOPPED,
		     (uint8_t *)x.buf[1] + PC_HDR, x.len[1] - PC_HDR);
	tap_is(r, -EINVAL, "a round is not a final state (STOPPED load of a "
	       "round: EINVAL)");
	/* none of that applied anything: rounds 1 and 2 still follow */
	err[0] = 0;
	r = vdpa_mig_dst_precopy_apply(md, x.buf[1], x.len[1], err,
				       sizeof(err));
	r += vdpa_mig_dst_precopy_apply(md, x.buf[2], x.len[2], err,
					sizeof(err));
	tap_ok(r == 0, "rounds 1 and 2 apply after every refusal (%s)", err);
	tap_ok(running(d.dev) && wr(&d, 100, 32, 7) == 0 && rd(&d, 0, 300) == 0,
	       "the source never stopped: it still serves writes and reads");

	/* the final state, then a round after it */
	{
		int rfd = -1, ignore = -1;

		r = vdpa_mig_src_switchover(ms, err, sizeof(err));
		if (!r)
			r = vdpa_mig_src_set_state_fd(ms, -1, &rfd, err,
						      sizeof(err));
		if (!r)
			r = vdpa_mig_dst_set_state_fd(md, rfd, &ignore, err,
						      sizeof(err));
		if (!r)
			r = vdpa_mig_src_check_state(ms, err, sizeof(err));
		if (!r)
			r = vdpa_mig_dst_check_state(md, err, sizeof(err));
		tap_ok(r == 0, "the final state moved (%s)", err);
		r = vdpa_mig_dst_precopy_apply(md, x.buf[2], x.len[2], err,
					       sizeof(err));
		tap_ok(r == -EALREADY && says(err, "after the final state"),
		       "a round after the final state: %s", err);
		r = vdpa_mig_src_precopy_round(ms, &y.buf[1], &y.len[1], NULL,
					       err, sizeof(err));
		tap_ok(r == -EALREADY, "no round after the switchover: %s",
		       err);
	}
	/* freeing the source half rolls it back: it runs on */
	vdpa_mig_dst_free(md);
	md = NULL;
	vdpa_dev_reset(bdev);
	vdpa_mig_src_free(ms);
	ms = NULL;
	tap_ok(running(d.dev) && wr(&d, 200, 16, 9) == 0 &&
	       rd(&d, 0, 300) == 0, "rolled back, the source serves on with "
	       "every block intact");
out:
	vdpa_mig_src_free(ms);
	vdpa_mig_src_free(mc);
	vdpa_mig_dst_free(md);
	free(desc);
	free(plan);
	free_rounds(&x);
	free_rounds(&y);
	drv_close(&d);
	drv_close(&e);
	vdpa_dev_close(bdev);
	sim_stop(&a);
	sim_stop(&b);
	sim_stop(&c);
	tap_is(tap_count_fds(), fds, "bad rounds: no fd leaked");
}

/*
 * The device alone: a final (the STOPPED save after a round) is refused by
 * a device that did not apply the round, taken after it, and a round after
 * the final is refused.
 */
static void device_final(void)
{
	struct sim a = { 0 }, b = { 0 };
	struct vdpa_dev *bdev = NULL;
	uint8_t *r0 = NULL, *fin = NULL;
	size_t l0 = 0, lf = 0;
	struct drv d = { 0 };
	int r;

	if (!new_disk() || sim_start(&a, "fa", wb_args) ||
	    sim_start(&b, "fb", wb_args) || drv_open(&d, a.name) ||
	    vdpa_dev_open(b.name, &bdev)) {
		tap_ok(0, "device final: simulators");
		goto out;
	}
	r = (int)wr(&d, 0, 64, 1);
	r += dev_save(d.dev, VHOST_TRANSFER_STATE_PHASE_PRECOPY, &r0, &l0) != 0;
	r += (int)wr(&d, 0, 8, 2);
	r += vdpa_dev_suspend(d.dev) != 0;
	r += dev_save(d.dev, VHOST_TRANSFER_STATE_PHASE_STOPPED, &fin, &lf) != 0;
	r += vdpa_dev_resume(d.dev) != 0;
	if (!tap_ok(r == 0 && l0 > 64u * ENTRY && lf > 8u * ENTRY &&
		    lf < 16u * ENTRY, "round 0 (%zu bytes) and the final with "
		    "the 8 rewritten entries (%zu bytes), read from the device "
		    "directly", l0, lf))
		goto out;
	r = dev_load(bdev, VHOST_TRANSFER_STATE_PHASE_STOPPED, fin, lf);
	tap_is(r, -EILSEQ, "a final into a device that applied no round: "
	       "EILSEQ");
	{
		size_t l;
		uint8_t *f0 = patch_round(fin, lf, 4, 4, 0, &l);

		r = f0 ? dev_load(bdev, VHOST_TRANSFER_STATE_PHASE_STOPPED, f0,
				  l) : -ENOMEM;
		tap_is(r, -EILSEQ, "a final numbered round 0 (no round "
		       "before it): EILSEQ");
		free(f0);
	}
	r = dev_load(bdev, VHOST_TRANSFER_STATE_PHASE_PRECOPY, r0, l0);
	r += dev_load(bdev, VHOST_TRANSFER_STATE_PHASE_STOPPED, fin, lf);
	tap_is(r, 0, "round 0, then the final: taken");
	r = dev_load(bdev, VHOST_TRANSFER_STATE_PHASE_PRECOPY, r0, l0);
	tap_is(r, -EALREADY, "round 0 after the final: EALREADY");
	tap_ok(running(d.dev) && wr(&d, 100, 16, 3) == 0 && rd(&d, 0, 200) == 0,
	       "the source, resumed, serves on");
	/* most of the cache rewritten after round 0: the final is whole */
	free(r0);
	free(fin);
	r0 = fin = NULL;
	r = dev_save(d.dev, VHOST_TRANSFER_STATE_PHASE_PRECOPY, &r0, &l0);
	r += (int)wr(&d, 0, 50, 5);
	r += vdpa_dev_suspend(d.dev) != 0;
	r += dev_save(d.dev, VHOST_TRANSFER_STATE_PHASE_STOPPED, &fin, &lf) != 0;
	r += vdpa_dev_resume(d.dev) != 0;
	{
		uint32_t sl = 0;

		tap_ok(r == 0 && lf > 80u * ENTRY && fin &&
		       !section(fin, lf, 6, &sl),
		       "50 of the 80 entries rewritten after round 0: the "
		       "final is the whole state, no ROUND (%zu bytes)", lf);
	}
	r = fin ? dev_load(bdev, VHOST_TRANSFER_STATE_PHASE_STOPPED, fin, lf) :
		  -ENOMEM;
	tap_is(r, 0, "a whole state loads over the rounds and final before "
	       "(it replaces them)");
out:
	free(r0);
	free(fin);
	drv_close(&d);
	vdpa_dev_close(bdev);
	sim_stop(&a);
	sim_stop(&b);
}

/* ---- a destination that dies during pre-copy ---------------------------- */

static void dst_dies(void)
{
	const char *dies[] = { "--type", "blk", "--cache", "writeback",
			       "--backing", disk, "--crash-during",
			       "state-load", NULL };
	const char *wt[] = { "--type", "blk", "--backing", disk, NULL };
	struct vdpa_mig_opts o = { .precopy = true };
	struct sim a = { 0 }, b = { 0 }, c = { 0 }, w = { 0 };
	struct vdpa_dev *bdev = NULL, *cdev = NULL, *wdev = NULL;
	struct vdpa_mig_result res;
	char err[512] = "";
	struct drv d = { 0 };
	int r, fds;

	fds = tap_count_fds();
	if (!new_disk() || sim_start(&a, "da", wb_args) ||
	    sim_start(&b, "db", dies) || sim_start(&c, "dc", wb_args) ||
	    sim_start(&w, "dw", wt) || drv_open(&d, a.name) ||
	    vdpa_dev_open(b.name, &bdev) || vdpa_dev_open(c.name, &cdev) ||
	    vdpa_dev_open(w.name, &wdev)) {
		tap_ok(0, "destination dies: simulators and driver");
		goto out;
	}
	r = wr(&d, 0, 1024, 1);
	r += (int)vdpa_migrate(d.dev, bdev, &o, &res, err, sizeof(err)) == 0;
	tap_ok(r == 0 && !res.rolled_back && res.precopy &&
	       res.precopy_rounds == 0 && says(err, "never stopped") &&
	       !res.src.begin_ns[VDPA_MIG_SUSPEND],
	       "destination died in round 0: the migration fails, the source "
	       "was never suspended: %s", err);
	tap_ok(running(d.dev) && wr(&d, 2000, 64, 2) == 0 &&
	       rd(&d, 0, 2100) == 0,
	       "the source serves on: writes and reads, every block intact");
	/* a write-through destination offers no pre-copy: stop-and-copy */
	r = vdpa_migrate(d.dev, wdev, &o, &res, err, sizeof(err));
	tap_ok(r == 0 && !res.precopy && res.state_bytes > 1088ull * ENTRY,
	       "to a destination without pre-copy: stop-and-copy, the whole "
	       "cache in the state (%zu bytes; %s)", res.state_bytes, err);
	vdpa_blk_set_dev(d.blk, wdev);
	tap_is(rd(&d, 0, 2100), 0, "every block intact on the write-through "
	       "destination");
	/* and on with pre-copy to a healthy one (round 0 of a new one) */
	r = vdpa_migrate(wdev, cdev, &o, &res, err, sizeof(err));
	tap_ok(r == 0 && !res.precopy, "write-through source: no pre-copy "
	       "(%s)", err);
	vdpa_blk_set_dev(d.blk, cdev);
	r = wr(&d, 3000, 512, 3);
	r += vdpa_migrate(cdev, d.dev, &o, &res, err, sizeof(err)) != 0;
	tap_ok(r == 0 && res.precopy && res.precopy_rounds >= 1,
	       "then pre-copy to a healthy destination (%u rounds; %s)",
	       res.precopy_rounds, err);
	vdpa_blk_set_dev(d.blk, d.dev);
	tap_is(rd(&d, 0, 3600), 0, "every block intact after it");
out:
	drv_close(&d);
	vdpa_dev_close(bdev);
	vdpa_dev_close(cdev);
	vdpa_dev_close(wdev);
	sim_stop(&a);
	sim_stop(&b);
	sim_stop(&c);
	sim_stop(&w);
	tap_is(tap_count_fds(), fds, "destination dies: no fd leaked");
}

/* ---- capability and the transfer FD's PRECOPY phase --------------------- */

static void transfer_phase(void)
{
	const char *net[] = { "--type", "net", NULL };
	struct sim a = { 0 }, n = { 0 };
	struct vdpa_mig_precopy_info pi;
	struct vdpa_mig_src *ms = NULL;
	struct vdpa_transfer *ts = NULL, *tl = NULL;
	struct vdpa_dev *ndev = NULL;
	void *rec = NULL, *got = NULL;
	size_t len = 0, glen = 0;
	char err[512] = "";
	struct drv d = { 0 };
	int r, wfd = -1, ign = -1;
	uint64_t caps_be = 0;

	if (!new_disk() || sim_start(&a, "ta", wb_args) ||
	    sim_start(&n, "tn", net) || drv_open(&d, a.name) ||
	    vdpa_dev_open(n.name, &ndev)) {
		tap_ok(0, "transfer phase: simulators");
		goto out;
	}
	vdpa_dev_call(ndev, VHOST_GET_BACKEND_FEATURES, &caps_be);
	r = info(ndev, &(struct vhost_vdpa_precopy_info){ 0 });
	tap_ok(!(caps_be & (1ULL << VHOST_BACKEND_F_DEVICE_STATE_PRECOPY)) &&
	       r == -ENOTTY, "a net device does not offer pre-copy (its "
	       "state is small: the final phase), GET_PRECOPY_INFO ENOTTY");
	r = wr(&d, 0, 64, 1);
	r += vdpa_mig_src_new(d.dev, NULL, &ms) != 0;
	r += vdpa_mig_src_precopy_info(ms, &pi, err, sizeof(err)) != 0;
	tap_ok(r == 0 && pi.initial_bytes == 64ull * ENTRY && pi.rounds == 0,
	       "vdpa_mig_src_precopy_info before round 0: %llu bytes",
	       (unsigned long long)pi.initial_bytes);
	r = vdpa_mig_src_precopy_round(ms, &rec, &len, NULL, err, sizeof(err));
	if (!tap_ok(r == 0, "a round (%s)", err))
		goto out;
	{
		uint64_t p1 = 1, p2 = 1, p3 = 1;
		bool d1, d2, d3, d4;
		void *b2 = NULL;
		size_t l2;

		/* nothing written since round 0: enough */
		d1 = vdpa_mig_src_precopy_done(ms, 1, 0, &p1);
		r = (int)wr(&d, 100, 10, 2);
		d2 = vdpa_mig_src_precopy_done(ms, 1, 0, &p2);
		/* the same, at most 1 round: that one was taken */
		d4 = vdpa_mig_src_precopy_done(ms, 1, 1, NULL);
		r += vdpa_mig_src_precopy_round(ms, &b2, &l2, NULL, err,
						sizeof(err));
		free(b2);
		/* as much again after round 1: the rounds do not gain */
		r += (int)wr(&d, 200, 10, 2);
		d3 = vdpa_mig_src_precopy_done(ms, 1, 0, &p3);
		tap_ok(r == 0 && d1 && p1 == 0 && !d2 && p2 == 10ull * ENTRY &&
		       d4 && d3 && p3 == 10ull * ENTRY,
		       "vdpa_mig_src_precopy_done: nothing pending: yes; 10 "
		       "entries over a 1-byte threshold after round 0: no, but "
		       "yes with at most 1 round; not shrinking after round 1: "
		       "yes");
	}
	/* through the transfer FDs: SAVE into a pipe, LOAD from it */
	r = vdpa_transfer_set_fd(VDPA_TRANSFER_LOAD,
				 VDPA_TRANSFER_PHASE_PRECOPY, -1, NULL, 0,
				 NULL, &tl, &wfd);
	if (!r)
		r = vdpa_transfer_set_fd(VDPA_TRANSFER_SAVE,
					 VDPA_TRANSFER_PHASE_PRECOPY, wfd, rec,
					 len, NULL, &ts, &ign);
	if (!r)
		r = vdpa_transfer_check(ts);
	if (!r)
		r = vdpa_transfer_check(tl);
	if (!r)
		r = vdpa_transfer_take_round(tl, &got, &glen);
	tap_ok(r == 0 && glen == len && !memcmp(got, rec, len) &&
	       !vdpa_transfer_take_state(tl),
	       "a round through the transfer FD's PRECOPY phase arrives "
	       "whole (%zu bytes, r %d)", glen, r);
	tap_is(vdpa_transfer_take_round(tl, &got, &glen), -ENODATA,
	       "the round is handed over once");
	vdpa_transfer_free(ts);
	vdpa_transfer_free(tl);
	ts = tl = NULL;
	((uint8_t *)rec)[len / 2] ^= 1;
	r = vdpa_transfer_set_fd(VDPA_TRANSFER_LOAD,
				 VDPA_TRANSFER_PHASE_PRECOPY, -1, NULL, 0,
				 NULL, &tl, &wfd);
	if (!r)
		r = vdpa_transfer_set_fd(VDPA_TRANSFER_SAVE,
					 VDPA_TRANSFER_PHASE_PRECOPY, wfd, rec,
					 len, NULL, &ts, &ign);
	if (!r)
		r = vdpa_transfer_check(ts);
	if (!r)
		r = vdpa_transfer_check(tl);
	tap_ok(r == -EBADMSG && says(vdpa_transfer_error(tl), "CRC32C"),
	       "a corrupt round fails the LOAD's CHECK: %s",
	       vdpa_transfer_error(tl));
	r = vdpa_transfer_set_fd(VDPA_TRANSFER_LOAD, 2, -1, NULL, 0, NULL,
				 &tl, &wfd);
	tap_is(r, -EOPNOTSUPP, "an unknown phase is refused");
out:
	free(rec);
	free(got);
	vdpa_transfer_free(ts);
	vdpa_transfer_free(tl);
	vdpa_mig_src_free(ms);
	drv_close(&d);
	vdpa_dev_close(ndev);
	sim_stop(&a);
	sim_stop(&n);
}

/* ---- the CLI: migrate --precopy ----------------------------------------- */

static char out[65536], errtxt[4096];

/* Start build/vdpa-user with args, its stdout and stderr into dir/TAG.* */
static pid_t cli_start(const char *tag, const char *const *args)
{
	char path[PATH_MAX], fo[PATH_MAX], fe[PATH_MAX];
	const char *argv[32];
	pid_t pid;
	int i;

	snprintf(path, sizeof(path), "%s/vdpa-user", tu_build_dir());
	snprintf(fo, sizeof(fo), "%s/%s.out", dir, tag);
	snprintf(fe, sizeof(fe), "%s/%s.err", dir, tag);
	argv[0] = path;
	for (i = 0; args[i] && i < 30; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	pid = fork();
	if (pid == 0) {
		int o = open(fo, O_CREAT | O_TRUNC | O_WRONLY, 0600);
		int e = open(fe, O_CREAT | O_TRUNC | O_WRONLY, 0600);

		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(126);
		execv(path, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static void slurp(const char *tag, const char *ext, char *buf, size_t len)
{
	char f[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(f, sizeof(f), "%s/%s.%s", dir, tag, ext);
	fd = open(f, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, buf, len - 1) : -1;
	buf[n > 0 ? n : 0] = 0;
	if (fd >= 0)
		close(fd);
}

/* Wait for it: its exit status; stdout in out, stderr in errtxt. */
static int cli_wait(const char *tag, pid_t pid)
{
	int st;

	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	slurp(tag, "out", out, sizeof(out));
	slurp(tag, "err", errtxt, sizeof(errtxt));
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int cli(const char *const *args)
{
	return cli_wait("cli", cli_start("cli", args));
}

/* "key":value in the CLI's JSON, as text up to , or } */
static bool json_is(const char *key, const char *val)
{
	char k[96];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\":%s", key, val);
	p = strstr(out, k);
	return p && (p[strlen(k)] == ',' || p[strlen(k)] == '}');
}

static long long json_int(const char *key)
{
	char k[96];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\":", key);
	p = strstr(out, k);
	return p ? strtoll(p + strlen(k), NULL, 10) : -1;
}

/* errtxt without its newline, for a check's description. */
static const char *line(void)
{
	static char l[sizeof(errtxt)];
	size_t n = strlen(errtxt);

	memcpy(l, errtxt, n + 1);
	if (n && l[n - 1] == '\n')
		l[n - 1] = 0;
	return l;
}

/* One line on stderr, nothing else. */
static bool one_line(void)
{
	size_t n = strlen(errtxt);

	return n > 1 && errtxt[n - 1] == '\n' && !memchr(errtxt, '\n', n - 1);
}

static void cli_precopy(void)
{
	const char *net[] = { "--type", "net", NULL };
	struct sim a = { 0 }, b = { 0 }, n1 = { 0 }, n2 = { 0 };
	char cpath[PATH_MAX];
	int r;

	snprintf(cpath, sizeof(cpath), "%s/vdpa-user", tu_build_dir());
	if (access(cpath, X_OK)) {
		tap_ok(1, "# SKIP the CLI is not built (%s)", cpath);
		return;
	}
	if (!new_disk() || sim_start(&a, "ca", wb_args) ||
	    sim_start(&b, "cb", wb_args) || sim_start(&n1, "cn1", net) ||
	    sim_start(&n2, "cn2", net)) {
		tap_ok(0, "cli: simulators");
		goto out;
	}
	{
		const char *args[] = { "-j", "migrate", a.name, b.name,
				       "--traffic", "--count", "6000",
				       "--precopy", "--iterations", "2",
				       NULL };

		r = cli(args);
		tap_ok(r == 0 && json_is("result", "\"ok\"") &&
		       json_is("precopy", "true") && json_int("rounds") >= 1 &&
		       json_int("precopy_bytes") > json_int("final_bytes") &&
		       json_int("final_bytes") > 0 &&
		       json_is("migrations", "2") &&
		       json_is("completed", "6000") && json_is("lost", "0") &&
		       json_is("corrupt", "0") && json_is("duplicated", "0"),
		       "migrate --precopy --traffic, blk write-back, twice: "
		       "rounds ran, more before than in the downtime, every "
		       "request verified (rc %d)", r);
		if (r)
			tap_diag("%s %s", out, errtxt);
	}
	{
		const char *args[] = { "-j", "migrate", n1.name, n2.name,
				       "--traffic", "--count", "20000",
				       "--precopy", NULL };

		r = cli(args);
		tap_ok(r == 0 && json_is("precopy", "false") &&
		       json_is("rounds", "0") && json_is("lost", "0"),
		       "migrate --precopy between net devices: stop-and-copy, "
		       "\"precopy\": false (rc %d)", r);
	}
	{
		const char *args[] = { "migrate", a.name, b.name,
				       "--precopy-rounds", "0", NULL };

		r = cli(args);
		tap_ok(r == 1 && one_line() && strstr(errtxt, "--precopy-rounds"),
		       "--precopy-rounds 0 is refused in one line: %s", line());
	}
	{
		const char *args[] = { "migrate", a.name, b.name,
				       "--precopy-threshold", "lots", NULL };

		r = cli(args);
		tap_ok(r == 1 && one_line() &&
		       strstr(errtxt, "--precopy-threshold"),
		       "--precopy-threshold lots is refused in one line: %s",
		       line());
	}
out:
	sim_stop(&a);
	sim_stop(&b);
	sim_stop(&n1);
	sim_stop(&n2);
}

/*
 * migrate-out --precopy to a migrate-in over a unix socket: rounds in the
 * stream; a destination without pre-copy (stop-and-copy); one that dies
 * on a round (the source never stopped, its traffic all verified).
 */
static void stream_precopy(void)
{
	const char *wt[] = { "--type", "blk", "--backing", disk, NULL };
	const char *dies[] = { "--type", "blk", "--cache", "writeback",
			       "--backing", disk, "--crash-during",
			       "state-load", NULL };
	struct sim a = { 0 }, b = { 0 }, w = { 0 }, x = { 0 };
	char uri[PATH_MAX + 8], inout[sizeof(out)];
	int k, r, rin;

	if (access(tu_build_dir(), X_OK) || !new_disk() ||
	    sim_start(&a, "sa2", wb_args) || sim_start(&b, "sb2", wb_args) ||
	    sim_start(&w, "sw2", wt) || sim_start(&x, "sx2", dies)) {
		tap_ok(0, "stream: simulators");
		goto out;
	}
	for (k = 0; k < 3; k++) {
		const char *dst = k == 0 ? b.name : k == 1 ? w.name : x.name;
		const char *in[] = { "-j", "migrate-in", dst, "--from", uri,
				     "--timeout", "20", NULL };
		const char *outa[] = { "-j", "migrate-out", a.name, "--to", uri,
				       "--traffic", "--count", "4000",
				       "--precopy", "--timeout", "20", NULL };
		pid_t pin;
		int ok;

		snprintf(uri, sizeof(uri), "unix:%s/m%d.sock", dir, k);
		pin = cli_start("in", in);
		r = cli(outa);
		memcpy(inout, out, sizeof(out));
		rin = cli_wait("in", pin);
		if (k == 0) {
			/* out holds migrate-in's JSON now, inout migrate-out's */
			ok = tap_ok(r == 0 && rin == 0 &&
				    json_is("precopy", "true") &&
			       json_int("rounds") >= 1 &&
			       json_is("completed", "4000") &&
			       json_is("lost", "0") && json_is("corrupt", "0") &&
			       strstr(inout, "\"precopy\":true"),
			       "migrate-out --precopy to migrate-in: rounds in "
			       "the stream, all 4000 requests verified on the "
			       "destination (rc %d/%d)", r, rin);
		} else if (k == 1) {
			ok = tap_ok(r == 0 && rin == 0 &&
			       strstr(inout, "\"precopy\":false") &&
			       json_is("completed", "4000") &&
			       json_is("lost", "0"),
			       "to a destination without pre-copy: it says so, "
			       "stop-and-copy, all verified (rc %d/%d)", r, rin);
		} else {
			memcpy(out, inout, sizeof(out));
			slurp("cli", "err", errtxt, sizeof(errtxt));
			ok = tap_ok(r == 1 && rin == 1 && one_line() &&
			       strstr(errtxt, "refused pre-copy round 0") &&
			       strstr(errtxt, "the source is still running") &&
			       json_is("source_running", "true") &&
			       json_is("completed", "4000") &&
			       json_is("lost", "0") && json_is("corrupt", "0"),
			       "a destination dying on round 0: migrate-out "
			       "fails in one line, the source never stopped and "
			       "served all 4000 requests (rc %d/%d): %s", r, rin,
			       line());
		}
		if (!ok)
			tap_diag("k %d: out %s / %s", k, inout, errtxt);
	}
out:
	sim_stop(&a);
	sim_stop(&b);
	sim_stop(&w);
	sim_stop(&x);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	tap_need_fd_count();
	if (tu_mkdtemp(dir, sizeof(dir)))
		tap_skip_all("no temporary directory");
	snprintf(disk, sizeof(disk), "%s/disk.img", dir);
	sequence();
	bad_rounds();
	device_final();
	dst_dies();
	transfer_phase();
	cli_precopy();
	stream_precopy();
	tu_rmtree(dir);
	return tap_done();
}
