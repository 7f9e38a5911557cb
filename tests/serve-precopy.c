// SPDX-License-Identifier: MIT
/*
 * `vdpa-user serve` pre-copy (PROPOSAL, docs/vhost-user.md "Pre-copy"):
 * real vdpa-sim (blk, write-back cache) and serve processes, a front-end
 * of the test's own speaking vhost-user over the socket. Rounds under
 * continuing writes, the pending estimate, the final phase-0 state
 * carrying only the rest, loaded into a second serve+sim, every block
 * read back; the feature only where the device has it and only for a
 * front-end that acked it; rounds out of order and repeated refused.
 * The front-end: tests/util/vu-front.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_blk.h>

#include "tap.h"
#include "testutil.h"
#include "vu-front.h"

static char tdir[PATH_MAX];

static void backend_stop(struct backend *b)
{
	/* 99: valgrind found an error or a leak (SERVE_VALGRIND) */
	tap_is(backend_end(b), 0, "%s: serve exited cleanly on SIGTERM",
	       b->log);
}

/* ---- pre-copy ---------------------------------------------------------- */

#define PF_PRECOPY	(1ULL << 49)
#define PHASE_PRECOPY	0x80000001u
#define GET_PRECOPY_INFO	0x80000030u
#define PRECOPY_END		0x80000031u
#define ENTRY		520u	/* vdpa-sim: u64 sector + 512 bytes */
#define ALL_PROTO (PF_MQ | PF_REPLY_ACK | PF_CONFIG | PF_DEVICE_STATE)

struct pc_info {
	uint64_t initial, dirty;
	uint32_t rounds, flags;
};

static struct guest G;

static void fe_close(struct fe *f, bool rings)
{
	if (f->s >= 0)
		close(f->s);
	f->s = -1;
	if (rings)
		ring_fini(&f->r[0]);
}

/* GET_PRECOPY_INFO: 24 (the struct) or 8 (a u64 errno) reply bytes. */
static uint32_t pc_info(int s, struct pc_info *pi, uint64_t *err)
{
	uint8_t buf[64];
	uint32_t size = 0;

	memset(pi, 0, sizeof(*pi));
	*err = ~0ULL;
	if (send_msg(s, GET_PRECOPY_INFO, 0, NULL, 0, NULL, 0) ||
	    recv_reply(s, GET_PRECOPY_INFO, buf, sizeof(buf), &size,
		       NULL) != 1)
		return 0;
	if (size == sizeof(*pi))
		memcpy(pi, buf, sizeof(*pi));
	else if (size == 8)
		memcpy(err, buf, 8);
	return size;
}

static int fe_open1(struct fe *f, const struct backend *b, uint64_t proto,
		    bool rings)
{
	memset(f, 0, sizeof(*f));
	f->g = &G;
	f->nrings = 1;
	f->s = fe_connect(b);
	if (f->s < 0 || (rings && ring_init(&G, &f->r[0]) < 0))
		return -1;
	return fe_negotiate(f, proto);
}

static int write_blocks(struct fe *f, uint64_t first, int n, int gen)
{
	uint8_t buf[512];
	int i, bad = 0;

	for (i = 0; i < n; i++) {
		stamp(buf, first + (uint64_t)i);
		buf[8] = (uint8_t)gen;
		if (blk_io(f, VIRTIO_BLK_T_OUT, first + (uint64_t)i, buf) != 0)
			bad++;
	}
	return bad;
}

/* the generation each sector must read back with (0: never written) */
static uint8_t gen_of[512];

static void test_net(void)
{
	static const char *const args[] = { "--type", "net", NULL };
	struct backend n;
	struct fe f;
	uint64_t v = 0, err;
	struct pc_info pi;
	void *blob = NULL;
	size_t len = 0;
	bool ok;

	if (backend_start(&n, "net", args) < 0) {
		tap_ok(0, "net: sim and serve started");
		return;
	}
	tap_ok(fe_open1(&f, &n, ALL_PROTO | PF_PRECOPY, true) == 0,
	       "net: front-end negotiated");
	tap_ok(!(f.proto & PF_PRECOPY), "net: DEVICE_STATE_PRECOPY not "
	       "offered by a net device (proto 0x%llx)",
	       (unsigned long long)f.proto);
	tap_is(set_u64(f.s, SET_PROTOCOL_FEATURES, f.proto | PF_PRECOPY) != 0,
	       1, "net: acking bit 49 anyway is refused");
	ok = save_state_phase(f.s, PHASE_PRECOPY, &blob, &len, &v) == 0 &&
	     (v & 0xff) == EOPNOTSUPP && len == 0;
	tap_ok(ok, "net: 42 PRECOPY answered EOPNOTSUPP (reply 0x%llx), "
	       "nothing written", (unsigned long long)v);
	free(blob);
	tap_is(pc_info(f.s, &pi, &err), 8, "net: GET_PRECOPY_INFO answered "
	       "with a u64 error");
	tap_is((long long)err, EOPNOTSUPP, "net: ... EOPNOTSUPP");
	tap_ok(log_has(&n, "did not negotiate DEVICE_STATE_PRECOPY"),
	       "net: the log says why");
	fe_close(&f, true);
	backend_stop(&n);
}

/* 42 SAVE PRECOPY + read to EOF + 43; the CHECK answer (0 ok). */
static long long round_save(int s, void **blob, size_t *len)
{
	uint64_t v = ~0ULL;

	if (save_state_phase(s, PHASE_PRECOPY, blob, len, &v) < 0 ||
	    (v & 0xff))
		return -1;
	return check_state(s);
}

static long long round_load(int s, const void *blob, size_t len)
{
	uint64_t v = ~0ULL;
	long long r;

	r = load_state_phase(s, PHASE_PRECOPY, blob, len, &v);
	return (v & 0xff) ? (long long)(v & 0xff) : r;
}

static void test_blk(void)
{
	char backing[PATH_MAX + 16];
	const char *args[] = { "--type", "blk", "--cache", "writeback",
			       "--backing", backing, "--verbose", NULL };
	struct backend a, b;
	struct fe f, d;
	struct ring keep;
	struct pc_info pi;
	uint64_t err, v;
	void *r0 = NULL, *r1 = NULL, *r2 = NULL, *fin = NULL, *tmp = NULL;
	size_t l0 = 0, l1 = 0, l2 = 0, lf = 0, lt = 0;
	uint16_t base = 0;
	int fd, i, bad, fds0, fds1, n, ondisk;
	bool up;
	uint32_t sz;
	long long c;
	uint8_t buf[512], want[512];

	snprintf(backing, sizeof(backing), "%s/disk.img", tdir);
	fd = open(backing, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 16 << 20) < 0) {
		tap_ok(0, "blk: backing file");
		return;
	}
	close(fd);
	if (backend_start(&a, "src", args) < 0 ||
	    backend_start(&b, "dst", args) < 0) {
		tap_ok(0, "blk: two write-back sims and serves started");
		return;
	}
	/* a front-end that does not ack the feature */
	tap_ok(fe_open1(&f, &a, ALL_PROTO, true) == 0 && fe_start(&f, NULL) ==
	       0, "blk: a front-end without DEVICE_STATE_PRECOPY started");
	tap_is(write_blocks(&f, 0, 8, 1), 0, "blk: 8 blocks written");
	tap_ok(round_save(f.s, &tmp, &lt) != 0 && lt == 0, "blk: 42 PRECOPY "
	       "without the ack refused, nothing written");
	free(tmp);
	tmp = NULL;
	tap_is(pc_info(f.s, &pi, &err), 8, "blk: GET_PRECOPY_INFO without the "
	       "ack: an 8-byte error reply");
	tap_is((long long)err, EOPNOTSUPP, "blk: ... EOPNOTSUPP");
	keep = f.r[0];
	fe_close(&f, false);

	/* the source: feature acked, rounds under continuing writes */
	tap_ok(fe_open1(&f, &a, ALL_PROTO | PF_PRECOPY, false) == 0,
	       "blk: front-end connected again");
	f.r[0] = keep;
	tap_ok(!!(f.proto & PF_PRECOPY), "blk: DEVICE_STATE_PRECOPY offered "
	       "and acked (proto 0x%llx)", (unsigned long long)f.proto);
	memset(f.r[0].avail, 0, 6 + 2 * QSZ);
	memset(f.r[0].used, 0, 6 + 8 * QSZ);
	f.r[0].avail_idx = f.r[0].last_used = 0;
	tap_ok(fe_start(&f, NULL) == 0, "blk: source started");
	tap_is(write_blocks(&f, 100, 64, 1), 0, "blk: 64 blocks written");
	for (i = 0; i < 64; i++)
		gen_of[100 + i] = 1;
	fds0 = count_fds(a.serve);
	tap_is(pc_info(f.s, &pi, &err), 24, "blk: GET_PRECOPY_INFO: 24 bytes");
	tap_ok(pi.initial == 64 * ENTRY && pi.dirty == 0 && pi.rounds == 0,
	       "blk: before round 0 all 64 entries pending (%llu + %llu)",
	       (unsigned long long)pi.initial, (unsigned long long)pi.dirty);
	tap_is(round_save(f.s, &r0, &l0), 0, "blk: round 0 saved and checked "
	       "(%zu bytes)", l0);
	tap_ok(l0 > 64 * ENTRY, "blk: round 0 carries all 64 entries");
	tap_ok(pc_info(f.s, &pi, &err) == 24 && pi.initial == 0 &&
	       pi.dirty == 0 && pi.rounds == 1 && pi.flags == 1,
	       "blk: after round 0 nothing pending, 1 round");
	/* the guest keeps writing: 8 rewritten, 8 new */
	tap_is(write_blocks(&f, 156, 16, 2), 0, "blk: 16 more writes");
	for (i = 0; i < 16; i++)
		gen_of[156 + i] = 2;
	sz = pc_info(f.s, &pi, &err);
	tap_ok(sz == 24 && pi.initial == 8 * ENTRY &&
	       pi.dirty == 8 * ENTRY, "blk: pending exactly 8 new + 8 "
	       "rewritten entries (%llu + %llu)",
	       (unsigned long long)pi.initial, (unsigned long long)pi.dirty);
	tap_is(round_save(f.s, &r1, &l1), 0, "blk: round 1 (%zu bytes)", l1);
	tap_ok(l1 < l0 && l1 > 16 * ENTRY, "blk: round 1 carries the 16, "
	       "not the 64");
	tap_is(write_blocks(&f, 170, 4, 3), 0, "blk: 4 more writes");
	for (i = 0; i < 4; i++)
		gen_of[170 + i] = 3;
	sz = pc_info(f.s, &pi, &err);
	tap_ok(sz == 24 && pi.initial + pi.dirty == 4 * ENTRY,
	       "blk: the estimate shrank to the 4 (%llu)",
	       (unsigned long long)(pi.initial + pi.dirty));
	tap_is(round_save(f.s, &r2, &l2), 0, "blk: round 2 (%zu bytes)", l2);
	tap_is(write_blocks(&f, 300, 2, 4), 0, "blk: 2 writes after the last "
	       "round");
	gen_of[300] = gen_of[301] = 4;
	fds1 = count_fds(a.serve);
	tap_is(fds1, fds0, "blk: source serve's fd count flat over 3 rounds "
	       "(%d)", fds1);
	tap_is(get_vring_base(f.s, 0, &base), 0, "blk: GET_VRING_BASE");
	tap_ok(log_has(&a, "write-back cache flushed"), "blk: with rounds "
	       "out the cache is still flushed at the stop");
	sz = save_state(f.s, &fin, &lf, &v) == 0 && !(v & 0xff) &&
	     check_state(f.s) == 0;
	tap_ok(sz, "blk: final phase-0 SAVE (%zu bytes)", lf);
	tap_ok(lf < 8 * ENTRY, "blk: the final carries only the rest (2 "
	       "entries: %zu bytes < %u)", lf, 8 * ENTRY);

	/* the destination: rounds before its rings start */
	tap_ok(fe_open1(&d, &b, ALL_PROTO | PF_PRECOPY, false) == 0 &&
	       !!(d.proto & PF_PRECOPY),
	       "blk: destination negotiated pre-copy");
	d.r[0] = f.r[0];
	tap_ok(set_u64(d.s, SET_FEATURES, f.features) == 0 &&
	       fe_mem_table(&d) == 0, "blk: destination features and memory");
	fds0 = count_fds(b.serve);
	c = round_load(d.s, r1, l1);
	tap_is(c, EILSEQ, "blk: round 1 before round 0 refused (out of "
	       "order): CHECK answers EILSEQ");
	tap_is(round_load(d.s, r0, l0), 0, "blk: round 0 applied");
	c = round_load(d.s, r0, l0);
	tap_is(c, EILSEQ, "blk: round 0 again refused (repeated)");
	tap_is(round_load(d.s, r1, l1), 0, "blk: round 1 applied");
	c = round_load(d.s, r1, l1);
	tap_is(c, EILSEQ, "blk: round 1 again refused");
	c = round_load(d.s, r2, l2 - 1);
	tap_is(c, EBADMSG, "blk: round 2 cut short refused (EBADMSG)");
	tap_is(round_load(d.s, r2, l2), 0, "blk: round 2 applied after the "
	       "refusals (nothing applied half-way)");
	tap_ok(log_has(&b, "out of order") && log_has(&b, "repeated"),
	       "blk: the destination's log says why");
	tap_ok(load_state(d.s, fin, lf, &v) == 0 && !(v & 0xff),
	       "blk: final state loaded and checked");
	c = round_load(d.s, r2, l2);
	tap_is(c, EALREADY, "blk: a round after the final refused "
	       "(EALREADY)");
	fds1 = count_fds(b.serve);
	tap_is(fds1, fds0, "blk: destination serve's fd count flat over 8 "
	       "rounds, refused or applied (%d)", fds1);
	/*
	 * The source flushed at the stop: every block is on the shared
	 * disk. Zeroed there, the destination can have them only from the
	 * rounds and the final (its cache answers reads).
	 */
	ondisk = 0;
	fd = open(backing, O_RDWR | O_CLOEXEC);
	memset(buf, 0, sizeof(buf));
	for (i = 0; i < 512; i++) {
		stamp(want, (uint64_t)i);
		want[8] = gen_of[i];
		if (gen_of[i] && pread(fd, buf, 512, (off_t)i * 512) == 512 &&
		    !memcmp(buf, want, 512))
			ondisk++;
		memset(buf, 0, sizeof(buf));
		if (gen_of[i] && pwrite(fd, buf, 512, (off_t)i * 512) != 512)
			ondisk = -1000;
	}
	close(fd);
	tap_is(ondisk, 76, "blk: the source's flush put all 76 blocks on the "
	       "shared disk; zeroed there now");
	tap_ok(log_has(&b, "after the final"), "blk: ... and logged");
	{
		uint16_t bases[1] = { base };

		up = fe_start(&d, bases) == 0;
		tap_ok(up, "blk: destination started at base %u", base);
	}
	tap_ok(log_has(&b, "applied: 2 entries, cache 76"), "blk: the "
	       "destination's device: the final's 2 entries make a cache of "
	       "all 76");
	d.r[0].avail_idx = base;
	d.r[0].last_used = base;
	bad = n = 0;
	/* not started: no 2 s timeout per block */
	for (i = 0; up && i < 512; i++) {
		stamp(want, (uint64_t)i);
		if (gen_of[i]) {
			want[8] = gen_of[i];
		} else {
			continue;
		}
		n++;
		if (blk_io(&d, VIRTIO_BLK_T_IN, (uint64_t)i, buf) != 0 ||
		    memcmp(buf, want, 512))
			bad++;
	}
	tap_ok(n == 76 && bad == 0, "blk: every written block read back "
	       "intact on the destination (%d of %d bad)", bad, n);
	fe_close(&d, false);
	fe_close(&f, true);
	backend_stop(&b);
	backend_stop(&a);
	free(r0);
	free(r1);
	free(r2);
	free(fin);
}

/* 42 SAVE PRECOPY into a pipe whose read end is already closed; 43. */
static long long round_save_broken(int s, uint64_t *reply)
{
	struct { uint32_t dir, phase; } p = { 0, PHASE_PRECOPY };
	int pfd[2], rfd;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	close(pfd[0]);
	if (send_msg(s, SET_DEVICE_STATE_FD, 0, &p, sizeof(p), &pfd[1], 1) ||
	    recv_reply(s, SET_DEVICE_STATE_FD, reply, 8, NULL, &rfd) != 1) {
		close(pfd[1]);
		return -1;
	}
	close(pfd[1]);
	if (rfd >= 0)
		close(rfd);
	return check_state(s);
}

/* The source's failure paths: it never stops, and keeps working. */
static void test_src_failures(void)
{
	char backing[PATH_MAX + 16];
	const char *args[] = { "--type", "blk", "--cache", "writeback",
			       "--backing", backing, NULL };
	struct backend a;
	struct fe f;
	struct pc_info pi;
	uint64_t err, v = 0;
	void *blob = NULL;
	size_t len = 0;
	uint8_t buf[512], want[512];
	long long c;
	uint32_t sz;
	uint16_t base;
	int fd, fds0, i, bad = 0;

	snprintf(backing, sizeof(backing), "%s/disk2.img", tdir);
	fd = open(backing, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 16 << 20) < 0 ||
	    backend_start(&a, "src2", args) < 0) {
		tap_ok(0, "fail: sim and serve started");
		return;
	}
	close(fd);
	tap_ok(fe_open1(&f, &a, ALL_PROTO | PF_PRECOPY, true) == 0 &&
	       fe_start(&f, NULL) == 0, "fail: source started");
	tap_is(write_blocks(&f, 10, 32, 1), 0, "fail: 32 blocks written");
	fds0 = count_fds(a.serve);
	tap_is(round_save(f.s, &blob, &len), 0, "fail: round 0");
	free(blob);
	blob = NULL;
	c = req_u64(f.s, PRECOPY_END);
	tap_is(c, 0, "fail: PRECOPY_END answered 0");
	sz = pc_info(f.s, &pi, &err);
	tap_ok(sz == 24 && pi.rounds == 0 && pi.initial == 32 * ENTRY,
	       "fail: after PRECOPY_END everything is pending again "
	       "(%llu, %u rounds)", (unsigned long long)pi.initial,
	       pi.rounds);
	/* a round read but never checked, then another round */
	tap_ok(save_state_phase(f.s, PHASE_PRECOPY, &blob, &len, &v) == 0 &&
	       !(v & 0xff) && len > 32 * ENTRY,
	       "fail: a round taken, 43 never sent");
	free(blob);
	blob = NULL;
	tap_ok(save_state_phase(f.s, PHASE_PRECOPY, &blob, &len, &v) == 0 &&
	       (v & 0xff) == ESTALE && len == 0, "fail: the next round "
	       "refused (ESTALE): the unchecked one may be lost");
	free(blob);
	blob = NULL;
	tap_is(req_u64(f.s, PRECOPY_END), 0, "fail: PRECOPY_END: a new pre-copy may begin");
	c = round_save_broken(f.s, &v);
	tap_ok(c > 0, "fail: a round whose reader went away: CHECK answers "
	       "%lld", c);
	tap_ok(log_has(&a, "the final state will carry everything"),
	       "fail: the log says the final carries everything");
	c = round_save(f.s, &blob, &len);
	tap_ok(c != 0 && len == 0, "fail: the next round refused (ESTALE): "
	       "nothing written");
	free(blob);
	blob = NULL;
	tap_ok(log_has(&a, "earlier pre-copy round failed"), "fail: ... and "
	       "logged");
	tap_is(write_blocks(&f, 10, 32, 2), 0, "fail: the source still "
	       "writes");
	for (i = 0; i < 32; i++) {
		stamp(want, 10 + (uint64_t)i);
		want[8] = 2;
		if (blk_io(&f, VIRTIO_BLK_T_IN, 10 + (uint64_t)i, buf) != 0 ||
		    memcmp(buf, want, 512))
			bad++;
	}
	tap_is(bad, 0, "fail: ... and reads back what it wrote");
	tap_is(count_fds(a.serve), fds0, "fail: serve's fd count flat");
	tap_is(get_vring_base(f.s, 0, &base), 0, "fail: GET_VRING_BASE");
	tap_ok(save_state_phase(f.s, PHASE_PRECOPY, &blob, &len, &v) == 0 &&
	       (v & 0xff) == EINVAL && len == 0,
	       "fail: a round of a stopped device refused (EINVAL)");
	free(blob);
	tap_ok(log_has(&a, "needs the device running"), "fail: ... and "
	       "logged");
	fe_close(&f, true);
	backend_stop(&a);
}

int main(void)
{
	const char *why;

	tap_need_fd_count();
	signal(SIGPIPE, SIG_IGN);
	why = vu_setup(tdir, sizeof(tdir), &G);
	if (why)
		tap_skip_all(why);
	test_net();
	test_blk();
	test_src_failures();
	guest_fini(&G);
	if (tap_failed)
		tap_diag("logs of the back-ends kept in %s", tdir);
	else
		tu_rmtree(tdir);
	return tap_done();
}
