// SPDX-License-Identifier: MIT
/* vq-ring: driver-side split virtqueues (vq.c) and driver memory (mem.c), no device. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/virtio_ring.h>
#include <vdpa-user/vdpa-user.h>
#include <vdpa-user/vq.h>

#include "tap.h"

#define IOVA		0x40000000ull
#define MAX_CHAIN	16

static size_t pg;

/* ---- a minimal device view of a ring, for the test to play the device ---- */

/*
 * Where the rings of a queue created at mem offset start must be: the
 * descriptor table (16 * num, 16-aligned), the avail ring (6 + 2 * num with
 * used_event, 2-aligned) and the used ring (6 + 8 * num with avail_event,
 * 4-aligned), one after the other in the region.
 */
struct view {
	struct vdpa_mem *mem;
	uint8_t *base;
	uint16_t num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	size_t desc_off, avail_off, used_off, end;
	uint16_t last_avail;	/* device: next avail entry to take */
	uint16_t used_idx;	/* device: next used entry to write */
};

struct chain {
	uint16_t head;
	unsigned int n, nout, nin;
	uint64_t addr[MAX_CHAIN];
	uint32_t len[MAX_CHAIN];
	uint16_t id[MAX_CHAIN];
};

static size_t up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static void view_init(struct view *v, struct vdpa_mem *mem, size_t start,
		      uint16_t num)
{
	memset(v, 0, sizeof(*v));
	v->mem = mem;
	v->base = vdpa_mem_base(mem);
	v->num = num;
	v->desc_off = up(start, 16);
	v->avail_off = up(v->desc_off + 16u * num, 2);
	v->used_off = up(v->avail_off + 6u + 2u * num, 4);
	v->end = v->used_off + 6u + 8u * num;
	v->desc = (void *)(v->base + v->desc_off);
	v->avail = (void *)(v->base + v->avail_off);
	v->used = (void *)(v->base + v->used_off);
}

static uint16_t avail_idx(const struct view *v)
{
	return __atomic_load_n(&v->avail->idx, __ATOMIC_ACQUIRE);
}

static uint16_t used_event(const struct view *v)
{
	return __atomic_load_n(&v->avail->ring[v->num], __ATOMIC_ACQUIRE);
}

static void set_avail_event(struct view *v, uint16_t e)
{
	__atomic_store_n((uint16_t *)&v->used->ring[v->num], e,
			 __ATOMIC_RELEASE);
}

/* Device: take the next published chain. 1, 0 when none, -1 malformed. */
static int view_pop(struct view *v, struct chain *c)
{
	unsigned int steps = 0;
	uint16_t d;

	if (avail_idx(v) == v->last_avail)
		return 0;
	d = v->avail->ring[v->last_avail & (v->num - 1)];
	if (d >= v->num)
		return -1;
	memset(c, 0, sizeof(*c));
	c->head = d;
	for (;;) {
		const struct vring_desc *e = &v->desc[d];

		if (++steps > v->num || c->n >= MAX_CHAIN)
			return -1;
		c->id[c->n] = d;
		c->addr[c->n] = e->addr;
		c->len[c->n] = e->len;
		if (e->flags & VRING_DESC_F_WRITE) {
			c->nin++;
		} else {
			if (c->nin)
				return -1;
			c->nout++;
		}
		c->n++;
		if (!(e->flags & VRING_DESC_F_NEXT))
			break;
		d = e->next;
		if (d >= v->num)
			return -1;
	}
	v->last_avail++;
	return 1;
}

/* Device: write a used entry (not visible before view_publish). */
static void view_push(struct view *v, uint32_t id, uint32_t len)
{
	struct vring_used_elem *e = &v->used->ring[v->used_idx & (v->num - 1)];

	e->id = id;
	e->len = len;
	v->used_idx++;
}

static void view_publish(struct view *v)
{
	__atomic_store_n(&v->used->idx, v->used_idx, __ATOMIC_RELEASE);
}

/*
 * Notifications the driver sent since the last call (kick eventfd): 0
 * only when the eventfd says so (EAGAIN), UINT64_MAX when it cannot be
 * read at all, so a broken kick fd never passes for "no notification".
 */
static uint64_t kicks(const struct vdpa_vq *vq)
{
	uint64_t n = 0;

	if (read(vdpa_vq_kick_fd(vq), &n, sizeof(n)) == sizeof(n))
		return n;
	return errno == EAGAIN ? 0 : UINT64_MAX;
}

static bool is_eventfd(int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = 0;
	return strcmp(link, "anon_inode:[eventfd]") == 0;
}

static bool cloexec(int fd)
{
	int f = fcntl(fd, F_GETFD);

	return f >= 0 && (f & FD_CLOEXEC);
}

/*
 * Run fn in a child process and return its result in *ret: a NULL-pointer
 * bug in the library then fails one assertion instead of killing the whole
 * binary. false when the child did not exit normally.
 */
static bool in_child(int (*fn)(void), int *ret, int *sig)
{
	pid_t pid;
	int st = 0, r;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		r = fn();
		_exit(r == 0 ? 0 : r < 0 && r > -126 ? -r : 126);
	}
	if (waitpid(pid, &st, 0) != pid)
		return false;
	*sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
	if (!WIFEXITED(st))
		return false;
	*ret = -WEXITSTATUS(st);
	return true;
}

/* ---- mem.c --------------------------------------------------------------- */

static void test_mem_create(void)
{
	size_t asks[] = { 1, pg - 1, pg, pg + 1, 3 * pg, (1u << 20) + 1 };
	struct vdpa_mem *m, *sentinel = (struct vdpa_mem *)&asks;
	int fds0 = tap_count_fds(), fd, r;
	unsigned int i;
	struct stat st;

	for (i = 0; i < sizeof(asks) / sizeof(asks[0]); i++) {
		size_t ask = asks[i], want = up(ask, pg);
		uint8_t *b;

		m = NULL;
		r = vdpa_mem_create(ask, IOVA, &m);
		if (!tap_ok(r == 0 && m, "mem_create(%zu) succeeds", ask))
			continue;
		b = vdpa_mem_base(m);
		tap_is(vdpa_mem_size(m), want, "mem_create(%zu): size rounded up "
		       "to whole pages (%zu)", ask, want);
		fd = vdpa_mem_fd(m);
		tap_ok(b && ((uintptr_t)b % pg) == 0 && fd >= 0 && cloexec(fd) &&
		       fstat(fd, &st) == 0 && (size_t)st.st_size >= want,
		       "mem_create(%zu): page-aligned mapping, CLOEXEC memfd "
		       "of the full size", ask);
		tap_ok(vdpa_mem_used(m) == 0 && b[0] == 0 && b[want - 1] == 0 &&
		       (b[want - 1] = 0x5a, b[want - 1] == 0x5a) &&
		       vdpa_mem_iova(m, b) == IOVA,
		       "mem_create(%zu): empty allocator, zeroed writable "
		       "memory, IOVA of the base", ask);
		vdpa_mem_destroy(m);
	}

	m = sentinel;
	tap_is(vdpa_mem_create(0, IOVA, &m), -EINVAL, "mem_create(0) -> EINVAL");
	tap_ok(m == sentinel, "mem_create failure leaves *ret_mem untouched");
	tap_is(vdpa_mem_create(pg, IOVA, NULL), -EINVAL,
	       "mem_create(ret_mem NULL) -> EINVAL");
	/* the region's IOVA range must not wrap past 2^64 */
	m = sentinel;
	r = vdpa_mem_create(1, UINT64_MAX - 100, &m);
	tap_is(r, -EINVAL, "mem_create: 1 byte (one page) at 2^64-101 would "
	       "wrap the IOVA space -> EINVAL");
	if (r == 0 && m != sentinel) {
		tap_diag("  created; IOVA of base+200 is 0x%llx",
			 (unsigned long long)vdpa_mem_iova(m,
				(uint8_t *)vdpa_mem_base(m) + 200));
		vdpa_mem_destroy(m);
	}
	m = NULL;
	r = vdpa_mem_create(2 * pg, UINT64_MAX - pg + 1, &m);
	tap_is(r, -EINVAL, "mem_create: two pages starting at the last page "
	       "-> EINVAL");
	if (r == 0)
		vdpa_mem_destroy(m);
	m = NULL;
	r = vdpa_mem_create(pg, UINT64_MAX - pg + 1, &m);
	tap_ok(r == 0 && m && vdpa_mem_iova(m, (uint8_t *)vdpa_mem_base(m) +
					    pg - 1) == UINT64_MAX,
	       "mem_create: the last page of the IOVA space (ends at "
	       "2^64-1) is a valid region (r=%d)", r);
	if (r == 0)
		vdpa_mem_destroy(m);

	/* adopting an fd: ownership taken also on failure */
	m = sentinel;
	tap_is(vdpa_mem_create_from_fd(-1, pg, IOVA, &m), -EINVAL,
	       "mem_create_from_fd(-1) -> EINVAL");
	fd = memfd_create("t", MFD_CLOEXEC);
	tap_is(vdpa_mem_create_from_fd(fd, 0, IOVA, &m), -EINVAL,
	       "mem_create_from_fd(size 0) -> EINVAL");
	tap_ok(fcntl(fd, F_GETFD) < 0 && errno == EBADF && m == sentinel,
	       "mem_create_from_fd closed the fd on failure, *ret untouched");
	fd = memfd_create("t", MFD_CLOEXEC);
	m = NULL;
	r = vdpa_mem_create_from_fd(fd, 3 * pg - 7, IOVA, &m);
	tap_ok(r == 0 && vdpa_mem_size(m) == 3 * pg && fstat(fd, &st) == 0 &&
	       (size_t)st.st_size == 3 * pg && vdpa_mem_fd(m) == fd,
	       "mem_create_from_fd: an empty memfd is grown to the rounded "
	       "size and kept");
	if (r == 0) {
		struct vdpa_mem *m2 = NULL;
		uint8_t *a = vdpa_mem_base(m), *b;

		a[5] = 0x11;
		r = vdpa_mem_create_from_fd(dup(fd), 3 * pg, IOVA + 0x100000,
					    &m2);
		b = r == 0 ? vdpa_mem_base(m2) : NULL;
		tap_ok(r == 0 && b != a && b[5] == 0x11 &&
		       (b[pg + 1] = 0x22, a[pg + 1] == 0x22) &&
		       vdpa_mem_iova(m2, b + 5) == IOVA + 0x100005,
		       "two regions on one memfd share the memory, each with "
		       "its own IOVA");
		vdpa_mem_destroy(m2);
		vdpa_mem_destroy(m);
	}
	vdpa_mem_destroy(NULL);
	tap_is(tap_count_fds(), fds0, "mem: no fd leaked");
}

static void test_mem_iova(void)
{
	struct vdpa_mem *m = NULL;
	uint8_t *b;
	int local;

	if (!tap_ok(vdpa_mem_create(2 * pg, IOVA, &m) == 0, "mem for iova"))
		return;
	b = vdpa_mem_base(m);
	tap_is(vdpa_mem_iova(m, b), IOVA, "iova(base) = region IOVA");
	tap_is(vdpa_mem_iova(m, b + 123), IOVA + 123, "iova(base+123)");
	tap_is(vdpa_mem_iova(m, b + 2 * pg - 1), IOVA + 2 * pg - 1,
	       "iova(last byte)");
	tap_is(vdpa_mem_iova(m, b + 2 * pg), UINT64_MAX,
	       "iova(one past the end) = UINT64_MAX");
	tap_is(vdpa_mem_iova(m, b - 1), UINT64_MAX,
	       "iova(one before the base) = UINT64_MAX");
	tap_is(vdpa_mem_iova(m, NULL), UINT64_MAX, "iova(NULL) = UINT64_MAX");
	tap_is(vdpa_mem_iova(m, &local), UINT64_MAX,
	       "iova(a stack address) = UINT64_MAX");
	vdpa_mem_destroy(m);
}

static void test_mem_alloc(void)
{
	static const size_t aligns[] = { 1, 2, 16, 64, 4096 };
	struct vdpa_mem *m = NULL;
	void *p, *sentinel = &p;
	size_t size = 4 * pg, prev_end, used;
	uint8_t *b;
	unsigned int i;

	if (!tap_ok(vdpa_mem_create(size, IOVA, &m) == 0, "mem for alloc"))
		return;
	b = vdpa_mem_base(m);
	tap_ok(vdpa_mem_alloc(m, 10, 1, &p) == 0 && p == b &&
	       vdpa_mem_used(m) == 10, "alloc(10) on an empty region: at the "
	       "base, cursor 10");
	prev_end = 10;
	for (i = 0; i < sizeof(aligns) / sizeof(aligns[0]); i++) {
		size_t a = aligns[i], off;
		int r = vdpa_mem_alloc(m, 3, a, &p);

		off = (size_t)((uint8_t *)p - b);
		tap_ok(r == 0 && ((uintptr_t)p % a) == 0 &&
		       (vdpa_mem_iova(m, p) % a) == 0 && off >= prev_end &&
		       off < prev_end + a && vdpa_mem_used(m) == off + 3,
		       "alloc(3, align %zu): aligned pointer and IOVA, right "
		       "after the previous block", a);
		prev_end = off + 3;
	}
	used = vdpa_mem_used(m);
	p = sentinel;
	tap_is(vdpa_mem_alloc(m, 8, 3, &p), -EINVAL, "alloc(align 3) -> EINVAL");
	tap_is(vdpa_mem_alloc(m, 8, 48, &p), -EINVAL,
	       "alloc(align 48) -> EINVAL");
	tap_is(vdpa_mem_alloc(m, 0, 8, &p), -EINVAL, "alloc(size 0) -> EINVAL");
	tap_is(vdpa_mem_alloc(NULL, 8, 8, &p), -EINVAL, "alloc(NULL mem) -> EINVAL");
	tap_is(vdpa_mem_alloc(m, 8, 8, NULL), -EINVAL,
	       "alloc(NULL ret_ptr) -> EINVAL");
	tap_ok(p == sentinel && vdpa_mem_used(m) == used,
	       "failed allocs leave the cursor and *ret_ptr alone");
	tap_is(vdpa_mem_alloc(m, size - used + 1, 1, &p), -ENOMEM,
	       "alloc one byte more than is left -> ENOMEM");
	tap_is(vdpa_mem_alloc(m, SIZE_MAX, 1, &p), -ENOMEM,
	       "alloc(SIZE_MAX) -> ENOMEM");
	tap_ok(p == sentinel && vdpa_mem_used(m) == used,
	       "ENOMEM leaves the cursor and *ret_ptr alone");
	tap_ok(vdpa_mem_alloc(m, size - used, 1, &p) == 0 &&
	       (uint8_t *)p + (size - used) == b + size &&
	       vdpa_mem_used(m) == size, "alloc exactly what is left: ends at "
	       "the region's end");
	tap_is(vdpa_mem_alloc(m, 1, 1, &p), -ENOMEM, "full region: alloc(1) "
	       "-> ENOMEM");

	tap_is(vdpa_mem_set_used(m, size + 1), -EINVAL,
	       "set_used(size + 1) -> EINVAL");
	tap_is(vdpa_mem_used(m), size, "cursor unchanged by a refused set_used");
	tap_is(vdpa_mem_set_used(NULL, 0), -EINVAL, "set_used(NULL) -> EINVAL");
	tap_is(vdpa_mem_set_used(m, size), 0, "set_used(size) is allowed");
	tap_ok(vdpa_mem_set_used(m, 0) == 0 && vdpa_mem_alloc(m, 8, 8, &p) == 0 &&
	       p == b, "set_used(0): allocation restarts at the base");
	tap_ok(vdpa_mem_set_used(m, 100) == 0 &&
	       vdpa_mem_alloc(m, 1, 64, &p) == 0 && p == b + 128 &&
	       vdpa_mem_used(m) == 129, "set_used(100) then alloc(1, align "
	       "64): continues at 128");
	tap_ok(vdpa_mem_set_used(m, size - 1) == 0 &&
	       vdpa_mem_alloc(m, 1, 64, &p) == -ENOMEM &&
	       vdpa_mem_used(m) == size - 1,
	       "alignment padding past the end -> ENOMEM");
	vdpa_mem_destroy(m);
}

/* ---- vq.c: layout -------------------------------------------------------- */

static void test_vq_layout(void)
{
	static const uint16_t nums[] = { 1, 2, 8, 64, 256, 1024, 32768 };
	int fds0 = tap_count_fds();
	struct vdpa_mem *m = NULL;
	unsigned int i, pre;

	if (!tap_ok(vdpa_mem_create(2u << 20, IOVA, &m) == 0, "mem for layout"))
		return;
	for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		for (pre = 0; pre < 2; pre++) {
			uint16_t num = nums[i];
			bool ev = (i + pre) & 1;
			struct vdpa_vq *vq = NULL;
			uint8_t *buf;
			struct view v;
			struct chain c;
			uint64_t tok = 0;
			uint32_t len = 0;
			void *p;
			int fds1, r;
			bool zero;

			vdpa_mem_set_used(m, 0);
			if (pre)	/* a misaligned cursor: 1 byte used */
				vdpa_mem_alloc(m, 1, 1, &p);
			view_init(&v, m, vdpa_mem_used(m), num);
			memset(v.base + v.desc_off, 0xee, v.end - v.desc_off);
			fds1 = tap_count_fds();
			r = vdpa_vq_create(m, num, ev, &vq);
			if (!tap_ok(r == 0, "vq_create(num %u, event_idx %d, "
				    "cursor %u)", num, ev, pre))
				continue;
			tap_ok(vdpa_mem_used(m) == v.end &&
			       v.desc_off % 16 == 0 && v.avail_off % 2 == 0 &&
			       v.used_off % 4 == 0,
			       "num %u cursor %u: desc %u B @%zu (16-aligned), "
			       "avail %u B @%zu, used %u B @%zu, region cursor "
			       "%zu (want %zu)", num, pre, 16u * num,
			       v.desc_off, 6u + 2u * num, v.avail_off,
			       6u + 8u * num, v.used_off, vdpa_mem_used(m),
			       v.end);
			zero = v.avail->flags == 0 && v.avail->idx == 0 &&
			       v.used->flags == 0 && v.used->idx == 0 &&
			       used_event(&v) == 0;
			tap_ok(zero && vdpa_vq_size(vq) == num &&
			       vdpa_vq_num_free(vq) == num &&
			       vdpa_vq_in_flight(vq) == 0,
			       "num %u: fresh ring zeroed, %u free, none in "
			       "flight", num, num);
			tap_ok(tap_count_fds() == fds1 + 2 &&
			       is_eventfd(vdpa_vq_kick_fd(vq)) &&
			       is_eventfd(vdpa_vq_call_fd(vq)) &&
			       vdpa_vq_kick_fd(vq) != vdpa_vq_call_fd(vq) &&
			       cloexec(vdpa_vq_kick_fd(vq)) &&
			       cloexec(vdpa_vq_call_fd(vq)),
			       "num %u: kick and call are two CLOEXEC eventfds",
			       num);
			/* one buffer through the ring as the device sees it */
			vdpa_mem_alloc(m, 64, 8, (void **)&buf);
			{
				struct vdpa_sg sg = { buf, 64 };

				r = vdpa_vq_add(vq, &sg, 1, 0, 0xabc0 + num);
			}
			vdpa_vq_kick(vq);
			r = r ? r : view_pop(&v, &c);
			tap_ok(r == 1 && avail_idx(&v) == 1 && c.n == 1 &&
			       c.head < num && v.avail->ring[0] == c.head &&
			       c.addr[0] == vdpa_mem_iova(m, buf) &&
			       c.len[0] == 64,
			       "num %u: the device finds the chain through the "
			       "avail ring at the expected place", num);
			view_push(&v, c.head, 7);
			view_publish(&v);
			r = vdpa_vq_get_used(vq, &tok, &len);
			tap_ok(r == 1 && tok == 0xabc0u + num && len == 7 &&
			       vdpa_vq_num_free(vq) == num,
			       "num %u: a used entry written at the expected "
			       "place is reaped", num);
			vdpa_vq_destroy(vq);
			tap_is(tap_count_fds(), fds1, "num %u: destroy closes both "
			       "eventfds", num);
		}
	}
	vdpa_mem_destroy(m);
	tap_is(tap_count_fds(), fds0, "layout: no fd leaked");
}

/* ---- vq.c: adding, publishing, reaping ----------------------------------- */

struct ring {
	struct vdpa_mem *mem;
	struct vdpa_vq *vq;
	struct view v;
	uint8_t *bufs;		/* 64 buffers of 256 bytes */
};

static bool ring_open(struct ring *r, uint16_t num, bool ev)
{
	size_t start;
	void *p;

	memset(r, 0, sizeof(*r));
	if (vdpa_mem_create(1u << 20, IOVA, &r->mem))
		return false;
	if (vdpa_mem_alloc(r->mem, 64 * 256, 64, &p)) {
		vdpa_mem_destroy(r->mem);
		return false;
	}
	r->bufs = p;
	start = vdpa_mem_used(r->mem);
	if (vdpa_vq_create(r->mem, num, ev, &r->vq)) {
		vdpa_mem_destroy(r->mem);
		return false;
	}
	view_init(&r->v, r->mem, start, num);
	return true;
}

static void ring_close(struct ring *r)
{
	vdpa_vq_destroy(r->vq);
	vdpa_mem_destroy(r->mem);
	memset(r, 0, sizeof(*r));
}

static struct vdpa_sg sgb(struct ring *r, unsigned int i, uint32_t len)
{
	struct vdpa_sg s = { r->bufs + 256 * (i % 64), len };

	return s;
}

static uint64_t biova(struct ring *r, unsigned int i)
{
	return vdpa_mem_iova(r->mem, r->bufs + 256 * (i % 64));
}

static void test_vq_add(void)
{
	struct vdpa_sg sg[5];
	struct chain c;
	struct ring r;
	uint64_t tok;
	uint32_t len;
	unsigned int i;
	bool ok;

	if (!tap_ok(ring_open(&r, 16, false), "ring num 16"))
		return;
	sg[0] = sgb(&r, 0, 100);
	tap_is(vdpa_vq_add(r.vq, sg, 1, 0, 0x1111), 0, "add one readable buffer");
	tap_ok(vdpa_vq_num_free(r.vq) == 15 && vdpa_vq_in_flight(r.vq) == 1,
	       "one descriptor used, one chain in flight");
	tap_ok(avail_idx(&r.v) == 0 && view_pop(&r.v, &c) == 0,
	       "not visible to the device before kick");
	sg[0] = sgb(&r, 1, 200);
	tap_is(vdpa_vq_add(r.vq, sg, 0, 1, 0x2222), 0, "add one writable buffer");
	for (i = 0; i < 5; i++)
		sg[i] = sgb(&r, 2 + i, 10 + i);
	tap_is(vdpa_vq_add(r.vq, sg, 2, 3, 0x3333), 0,
	       "add a chain of 2 readable + 3 writable buffers");
	tap_ok(vdpa_vq_num_free(r.vq) == 16 - 7 && vdpa_vq_in_flight(r.vq) == 3,
	       "7 descriptors used by 3 chains");
	tap_is(vdpa_vq_kick(r.vq), 0, "kick");
	tap_is(kicks(r.vq), 1, "one notification for the kick (device did not "
	       "suppress)");
	tap_is(avail_idx(&r.v), 3, "avail idx 3 after the kick");

	ok = view_pop(&r.v, &c) == 1 && c.n == 1 && c.nout == 1 &&
	     c.addr[0] == biova(&r, 0) && c.len[0] == 100 &&
	     r.v.desc[c.head].flags == 0 && r.v.avail->ring[0] == c.head;
	tap_ok(ok, "device: chain 1 = 1 readable descriptor, address and "
	       "length as given");
	ok = view_pop(&r.v, &c) == 1 && c.n == 1 && c.nin == 1 &&
	     c.addr[0] == biova(&r, 1) && c.len[0] == 200 &&
	     r.v.desc[c.head].flags == VRING_DESC_F_WRITE &&
	     r.v.avail->ring[1] == c.head;
	tap_ok(ok, "device: chain 2 = 1 writable descriptor");
	ok = view_pop(&r.v, &c) == 1 && c.n == 5 && c.nout == 2 && c.nin == 3 &&
	     r.v.avail->ring[2] == c.head;
	for (i = 0; ok && i < 5; i++)
		ok = c.addr[i] == biova(&r, 2 + i) && c.len[i] == 10 + i &&
		     r.v.desc[c.id[i]].flags ==
		     ((i >= 2 ? VRING_DESC_F_WRITE : 0) |
		      (i < 4 ? VRING_DESC_F_NEXT : 0));
	tap_ok(ok, "device: chain 3 = 5 linked descriptors, NEXT on all but "
	       "the last, WRITE on the last 3, in order");
	tap_ok(view_pop(&r.v, &c) == 0, "device: nothing more published");

	/* in-order completion */
	view_push(&r.v, r.v.avail->ring[0], 0);
	view_push(&r.v, r.v.avail->ring[1], 123);
	view_publish(&r.v);
	tok = 0;
	len = 99;
	tap_ok(vdpa_vq_get_used(r.vq, &tok, &len) == 1 && tok == 0x1111 &&
	       len == 0, "reap 1: token 0x1111, len 0");
	tap_ok(vdpa_vq_get_used(r.vq, &tok, &len) == 1 && tok == 0x2222 &&
	       len == 123, "reap 2: token 0x2222, len 123");
	tok = 77;
	tap_ok(vdpa_vq_get_used(r.vq, &tok, &len) == 0 && tok == 77,
	       "nothing more used: 0, token untouched");
	view_push(&r.v, r.v.avail->ring[2], 33);
	view_publish(&r.v);
	tap_ok(vdpa_vq_get_used(r.vq, &tok, NULL) == 1 && tok == 0x3333,
	       "reap 3 with ret_len NULL");
	tap_ok(vdpa_vq_num_free(r.vq) == 16 && vdpa_vq_in_flight(r.vq) == 0,
	       "all 16 descriptors free again, none in flight");
	tap_is(vdpa_vq_kick(r.vq), 0, "kick with nothing new");
	tap_is(kicks(r.vq), 0, "no notification when nothing was published");
	ring_close(&r);
}

static void test_vq_out_of_order(void)
{
	static const unsigned int ndesc[4] = { 1, 2, 1, 3 };
	static const unsigned int order[4] = { 2, 0, 3, 1 };
	uint16_t heads[4], seen = 0;
	struct vdpa_sg sg[3];
	struct chain c;
	struct ring r;
	unsigned int i, j;
	uint64_t tok;
	uint32_t len;
	bool ok = true;

	if (!tap_ok(ring_open(&r, 8, false), "ring num 8"))
		return;
	for (i = 0; i < 4; i++) {
		for (j = 0; j < ndesc[i]; j++)
			sg[j] = sgb(&r, 4 * i + j, 32);
		ok &= vdpa_vq_add(r.vq, sg, 1, ndesc[i] - 1, 100 + i) == 0;
	}
	vdpa_vq_kick(r.vq);
	for (i = 0; i < 4; i++)
		ok &= view_pop(&r.v, &c) == 1 && c.n == ndesc[i] &&
		      (heads[i] = c.head, true);
	tap_ok(ok && vdpa_vq_num_free(r.vq) == 1,
	       "4 chains of 1+2+1+3 descriptors added and taken; 1 free");
	view_push(&r.v, heads[order[0]], 1000 + order[0]);
	view_push(&r.v, heads[order[1]], 1000 + order[1]);
	view_publish(&r.v);
	ok = vdpa_vq_get_used(r.vq, &tok, &len) == 1 && tok == 102 &&
	     len == 1002;
	ok &= vdpa_vq_get_used(r.vq, &tok, &len) == 1 && tok == 100 &&
	      len == 1000;
	ok &= vdpa_vq_get_used(r.vq, &tok, &len) == 0;
	tap_ok(ok, "completed out of order (3rd, 1st): reaped in used-ring "
	       "order with their own tokens and lengths");
	tap_ok(vdpa_vq_num_free(r.vq) == 3 && vdpa_vq_in_flight(r.vq) == 2,
	       "free count back to 3 (1 + the two 1-descriptor chains)");
	view_push(&r.v, heads[order[2]], 1000 + order[2]);
	view_push(&r.v, heads[order[3]], 1000 + order[3]);
	view_publish(&r.v);
	ok = vdpa_vq_get_used(r.vq, &tok, &len) == 1 && tok == 103 &&
	     len == 1003;
	ok &= vdpa_vq_get_used(r.vq, &tok, &len) == 1 && tok == 101 &&
	      len == 1001;
	tap_ok(ok && vdpa_vq_num_free(r.vq) == 8 && vdpa_vq_in_flight(r.vq) == 0,
	       "the 4th and 2nd complete: all 8 descriptors free");
	/* every freed descriptor is handed out exactly once */
	ok = true;
	for (i = 0; i < 8; i++) {
		sg[0] = sgb(&r, 20 + i, 8);
		ok &= vdpa_vq_add(r.vq, sg, 1, 0, 200 + i) == 0;
	}
	sg[0] = sgb(&r, 30, 8);
	tap_ok(ok && vdpa_vq_add(r.vq, sg, 1, 0, 300) == -ENOSPC,
	       "8 single buffers fit again, a 9th -> ENOSPC");
	vdpa_vq_kick(r.vq);
	for (i = 0; i < 8; i++) {
		ok &= view_pop(&r.v, &c) == 1 && c.n == 1 &&
		      c.addr[0] == biova(&r, 20 + i) && !(seen & (1u << c.head));
		seen |= (uint16_t)(1u << c.head);
	}
	tap_ok(ok && seen == 0xff, "the 8 chains use 8 distinct descriptors "
	       "(none lost, none handed out twice)");
	ring_close(&r);
}

static void test_vq_full(void)
{
	struct vdpa_sg sg[5];
	struct chain c;
	struct ring r;
	unsigned int i;
	uint64_t tok;
	int e;
	bool ok = true;

	if (!tap_ok(ring_open(&r, 4, false), "ring num 4"))
		return;
	for (i = 0; i < 5; i++)
		sg[i] = sgb(&r, i, 16);
	e = vdpa_vq_add(r.vq, sg, 3, 2, 1);
	tap_ok((e == -ENOSPC || e == -EINVAL) && vdpa_vq_num_free(r.vq) == 4,
	       "a chain of 5 on an empty ring of 4 is refused (%d), nothing "
	       "used", e);
	for (i = 0; i < 4; i++)
		ok &= vdpa_vq_add(r.vq, &sg[i], 1, 0, 10 + i) == 0;
	tap_ok(ok && vdpa_vq_num_free(r.vq) == 0 && vdpa_vq_in_flight(r.vq) == 4,
	       "4 single buffers fill the ring");
	tap_is(vdpa_vq_add(r.vq, sg, 1, 0, 99), -ENOSPC, "full ring: add -> ENOSPC");
	tap_ok(vdpa_vq_num_free(r.vq) == 0 && vdpa_vq_in_flight(r.vq) == 4,
	       "ENOSPC changes nothing");
	vdpa_vq_kick(r.vq);
	tap_is(avail_idx(&r.v), 4, "avail idx counts only the accepted chains");
	for (i = 0; i < 4; i++)
		view_pop(&r.v, &c);
	view_push(&r.v, r.v.avail->ring[1], 0);
	view_publish(&r.v);
	tap_ok(vdpa_vq_get_used(r.vq, &tok, NULL) == 1 && tok == 11 &&
	       vdpa_vq_num_free(r.vq) == 1, "one completion frees one "
	       "descriptor");
	tap_is(vdpa_vq_add(r.vq, sg, 1, 1, 98), -ENOSPC,
	       "a chain of 2 with 1 free -> ENOSPC");
	tap_is(vdpa_vq_add(r.vq, sg, 0, 1, 97), 0, "a single buffer fits again");
	tap_is(vdpa_vq_num_free(r.vq), 0, "full again");
	ring_close(&r);
}

static int child_attach_null(void)
{
	return vdpa_vq_attach(NULL, NULL, 0, 0);
}

static int child_save_null(void)
{
	return vdpa_vq_save(NULL, NULL, 0);
}

static void test_vq_badinput(void)
{
	static const uint16_t bad_nums[] = { 0, 3, 12, 40000, 65535 };
	struct vdpa_vq *vq, *sentinel = (struct vdpa_vq *)&vq;
	struct vdpa_mem *small = NULL;
	int fds0 = tap_count_fds(), r, sig = 0;
	struct vdpa_sg sg[2];
	uint8_t stack[64];
	struct chain c;
	struct ring ri;
	unsigned int i, nf;
	uint64_t tok;
	size_t cur;
	bool ok;

	vq = sentinel;
	if (tap_ok(vdpa_mem_create(1u << 20, IOVA, &small) == 0, "mem for "
		   "bad sizes")) {
		for (i = 0; i < sizeof(bad_nums) / sizeof(bad_nums[0]); i++)
			tap_is(vdpa_vq_create(small, bad_nums[i], false, &vq),
			       -EINVAL, "vq_create(num %u) -> EINVAL",
			       bad_nums[i]);
		tap_is(vdpa_mem_used(small), 0, "refused sizes allocate nothing");
		r = vdpa_vq_create(small, 32768, false, &vq);
		tap_ok(r == 0 && vq != sentinel, "vq_create(num 32768), the "
		       "largest, is accepted");
		if (r == 0)
			vdpa_vq_destroy(vq);
		vdpa_mem_destroy(small);
		small = NULL;
	}
	vq = sentinel;
	tap_is(vdpa_vq_create(NULL, 8, false, &vq), -EINVAL,
	       "vq_create(NULL mem) -> EINVAL");
	tap_ok(vq == sentinel, "failed creates leave *ret_vq untouched");
	if (!tap_ok(vdpa_mem_create(pg, IOVA, &small) == 0, "one-page mem"))
		return;
	tap_is(vdpa_vq_create(small, 8, false, NULL), -EINVAL,
	       "vq_create(ret_vq NULL) -> EINVAL");
	/* 256 entries: the descriptor table alone fills a 4 KiB page */
	vdpa_mem_set_used(small, 100);
	r = vdpa_vq_create(small, (uint16_t)(pg / 16), false, &vq);
	tap_ok(r == -ENOMEM && vdpa_mem_used(small) == 100 && vq == sentinel,
	       "vq_create on a region too small -> ENOMEM, region cursor "
	       "restored (%d, cursor %zu)", r, vdpa_mem_used(small));
	vdpa_mem_set_used(small, 0);
	r = vdpa_vq_create(small, (uint16_t)(pg / 32), false, &vq);
	cur = vdpa_mem_used(small);
	tap_ok(r == 0 && cur > pg / 2, "a ring of %zu fits the page", pg / 32);
	if (r == 0)
		vdpa_vq_destroy(vq);
	vq = sentinel;
	tap_ok(vdpa_vq_create(small, (uint16_t)(pg / 32), false, &vq) ==
	       -ENOMEM && vdpa_mem_used(small) == cur,
	       "a second one does not -> ENOMEM, cursor unchanged");
	vdpa_mem_destroy(small);
	vdpa_vq_destroy(NULL);

	if (!tap_ok(ring_open(&ri, 8, false), "ring num 8"))
		return;
	sg[0] = sgb(&ri, 0, 16);
	sg[1] = sgb(&ri, 1, 16);
	tap_is(vdpa_vq_add(NULL, sg, 1, 0, 1), -EINVAL, "add(NULL vq) -> EINVAL");
	tap_is(vdpa_vq_add(ri.vq, NULL, 1, 0, 1), -EINVAL, "add(NULL sg) -> EINVAL");
	tap_is(vdpa_vq_add(ri.vq, sg, 0, 0, 1), -EINVAL, "add(n == 0) -> EINVAL");
	sg[1].addr = stack;
	tap_is(vdpa_vq_add(ri.vq, sg, 1, 1, 1), -EINVAL,
	       "add: 2nd buffer on the stack (outside the region) -> EINVAL");
	sg[1].addr = (uint8_t *)vdpa_mem_base(ri.mem) - 16;
	tap_is(vdpa_vq_add(ri.vq, &sg[1], 1, 0, 1), -EINVAL,
	       "add: buffer just before the region -> EINVAL");
	sg[1].addr = (uint8_t *)vdpa_mem_base(ri.mem) + vdpa_mem_size(ri.mem) - 8;
	sg[1].len = 16;
	tap_is(vdpa_vq_add(ri.vq, &sg[1], 0, 1, 1), -EINVAL,
	       "add: buffer straddling the region's end -> EINVAL");
	sg[1].addr = NULL;
	tap_is(vdpa_vq_add(ri.vq, &sg[1], 1, 0, 1), -EINVAL,
	       "add: NULL buffer -> EINVAL");
	tap_ok(vdpa_vq_num_free(ri.vq) == 8 && vdpa_vq_in_flight(ri.vq) == 0,
	       "refused adds used no descriptor");
	sg[1].addr = (uint8_t *)vdpa_mem_base(ri.mem) + vdpa_mem_size(ri.mem) - 8;
	sg[1].len = 8;
	tap_is(vdpa_vq_add(ri.vq, &sg[1], 0, 1, 0x77), 0,
	       "add: buffer ending exactly at the region's end is fine");
	vdpa_vq_kick(ri.vq);
	tap_is(avail_idx(&ri.v), 1, "avail idx counts only accepted chains");
	view_pop(&ri.v, &c);

	tap_is(vdpa_vq_get_used(NULL, &tok, NULL), -EINVAL,
	       "get_used(NULL vq) -> EINVAL");
	tap_is(vdpa_vq_get_used(ri.vq, NULL, NULL), -EINVAL,
	       "get_used(NULL ret_token) -> EINVAL");
	nf = vdpa_vq_num_free(ri.vq);
	view_push(&ri.v, 8, 0);		/* id >= num */
	view_publish(&ri.v);
	tap_is(vdpa_vq_get_used(ri.vq, &tok, NULL), -EIO,
	       "device returns id 8 on a ring of 8 -> EIO");
	ri.v.used->ring[0].id = (c.head + 1) % 8;	/* a free descriptor */
	tap_is(vdpa_vq_get_used(ri.vq, &tok, NULL), -EIO,
	       "device returns a free descriptor's id -> EIO");
	tap_ok(vdpa_vq_num_free(ri.vq) == nf && vdpa_vq_in_flight(ri.vq) == 1,
	       "a bad completion frees nothing");
	ri.v.used->ring[0].id = c.head;
	tap_ok(vdpa_vq_get_used(ri.vq, &tok, NULL) == 1 && tok == 0x77,
	       "the entry corrected: reaped");
	tap_ok(vdpa_vq_get_used(ri.vq, &tok, NULL) == 0,
	       "and only once");

	tap_is(vdpa_vq_wait(ri.vq, 0), -ETIMEDOUT, "wait without a call -> "
	       "ETIMEDOUT");
	{
		uint64_t one = 1;

		r = write(vdpa_vq_call_fd(ri.vq), &one, sizeof(one)) ==
		    sizeof(one);
	}
	tap_ok(r && vdpa_vq_wait(ri.vq, 0) == 0, "wait after a call -> 0");
	tap_is(vdpa_vq_wait(ri.vq, 0), -ETIMEDOUT, "the call was consumed");
	tap_is(vdpa_vq_attach(ri.vq, NULL, 0, 0), -EINVAL,
	       "attach(NULL dev) -> EINVAL");
	ring_close(&ri);

	/* n_out + n_in wrapping around must not pass for a short chain */
	if (tap_ok(ring_open(&ri, 8, false), "ring num 8")) {
		sg[0] = sgb(&ri, 0, 16);
		sg[1] = sgb(&ri, 1, 16);
		r = vdpa_vq_add(ri.vq, sg, UINT_MAX, 2, 1);
		tap_ok(r == -EINVAL || r == -ENOSPC, "add: n_out + n_in "
		       "overflows unsigned int (UINT_MAX + 2) -> refused (%d)",
		       r);
		tap_ok(vdpa_vq_num_free(ri.vq) == 8 &&
		       vdpa_vq_in_flight(ri.vq) == 0,
		       "and uses no descriptor (%u free)",
		       vdpa_vq_num_free(ri.vq));
		ring_close(&ri);
	}

	r = 0;
	ok = in_child(child_attach_null, &r, &sig);
	tap_ok(ok && r == -EINVAL, "attach(NULL vq, NULL dev) -> EINVAL "
	       "(child: %s %d)", ok ? "returned" : "killed by signal",
	       ok ? r : sig);
	r = 0;
	ok = in_child(child_save_null, &r, &sig);
	tap_ok(ok && r == -EINVAL, "save(NULL vq) -> EINVAL (child: %s %d)",
	       ok ? "returned" : "killed by signal", ok ? r : sig);
	tap_is(tap_count_fds(), fds0, "bad input: no fd leaked");
}

/* ---- notification suppression -------------------------------------------- */

static void add_one(struct ring *r, unsigned int i, uint64_t tok)
{
	struct vdpa_sg s = sgb(r, i, 32);

	if (vdpa_vq_add(r->vq, &s, 1, 0, tok))
		tap_diag("add_one failed");
}

static void test_vq_event_idx(void)
{
	struct chain c;
	struct ring r;
	uint64_t tok;
	unsigned int i;

	if (!tap_ok(ring_open(&r, 8, true), "ring num 8 with EVENT_IDX"))
		return;
	add_one(&r, 0, 1);
	vdpa_vq_kick(r.vq);
	tap_is(kicks(r.vq), 1, "event idx: avail_event 0, idx 0->1: notify");
	vdpa_vq_kick(r.vq);
	tap_is(kicks(r.vq), 0, "event idx: kick without new chains: no notify");
	set_avail_event(&r.v, 3);
	add_one(&r, 1, 2);
	vdpa_vq_kick(r.vq);
	tap_is(kicks(r.vq), 0, "avail_event 3, idx 1->2: suppressed");
	add_one(&r, 2, 3);
	vdpa_vq_kick(r.vq);
	tap_is(kicks(r.vq), 0, "avail_event 3, idx 2->3: suppressed");
	add_one(&r, 3, 4);
	vdpa_vq_kick(r.vq);
	tap_is(kicks(r.vq), 1, "avail_event 3, idx 3->4: notify");
	for (i = 0; i < 4; i++)
		view_pop(&r.v, &c);
	for (i = 0; i < 4; i++)
		view_push(&r.v, r.v.avail->ring[i], 0);
	view_publish(&r.v);
	vdpa_vq_get_used(r.vq, &tok, NULL);
	vdpa_vq_get_used(r.vq, &tok, NULL);
	tap_is(used_event(&r.v), 2, "driver publishes used_event = its used "
	       "index (2 reaped)");
	vdpa_vq_get_used(r.vq, &tok, NULL);
	vdpa_vq_get_used(r.vq, &tok, NULL);
	tap_is(used_event(&r.v), 4, "used_event follows (4 reaped)");
	set_avail_event(&r.v, 5);
	for (i = 0; i < 3; i++)
		add_one(&r, 4 + i, 5 + i);
	vdpa_vq_kick(r.vq);
	tap_is(kicks(r.vq), 1, "avail_event 5, idx 4->7 in one kick: notify");
	set_avail_event(&r.v, 0);
	add_one(&r, 7, 8);
	vdpa_vq_kick(r.vq);
	tap_is(kicks(r.vq), 0, "stale avail_event 0, idx 7->8: suppressed");
	set_avail_event(&r.v, 8);
	r.v.used->flags = VRING_USED_F_NO_NOTIFY;
	add_one(&r, 8, 9);
	vdpa_vq_kick(r.vq);
	tap_is(kicks(r.vq), 1, "with EVENT_IDX the used flags are ignored: "
	       "avail_event 8, idx 8->9: notify");
	ring_close(&r);

	if (!tap_ok(ring_open(&r, 8, false), "ring num 8 without EVENT_IDX"))
		return;
	set_avail_event(&r.v, 100);	/* must be ignored */
	add_one(&r, 0, 1);
	vdpa_vq_kick(r.vq);
	tap_is(kicks(r.vq), 1, "no event idx, flags 0: notify");
	r.v.used->flags = VRING_USED_F_NO_NOTIFY;
	add_one(&r, 1, 2);
	vdpa_vq_kick(r.vq);
	tap_is(kicks(r.vq), 0, "VRING_USED_F_NO_NOTIFY: suppressed");
	r.v.used->flags = 0;
	add_one(&r, 2, 3);
	vdpa_vq_kick(r.vq);
	tap_is(kicks(r.vq), 1, "flag cleared: notify again");
	view_pop(&r.v, &c);
	view_push(&r.v, c.head, 0);
	view_publish(&r.v);
	vdpa_vq_get_used(r.vq, &tok, NULL);
	tap_is(used_event(&r.v), 0, "no event idx: used_event not written");
	ring_close(&r);
}

/* ---- wrap-around --------------------------------------------------------- */

struct cyc {
	uint64_t next_tok;	/* next token to add */
	uint64_t next_reap;	/* reap checks */
	unsigned int errors;
	unsigned int notifies;
	char first[160];
};

static void cyc_err(struct cyc *y, const char *what, uint64_t round)
{
	if (!y->errors++)
		snprintf(y->first, sizeof(y->first), "%s (round %llu)", what,
			 (unsigned long long)round);
}

/*
 * rounds of: 3 chains (1, 2, 1 descriptors) added and kicked, the device
 * takes them (and asks to be notified on the next one), completes them in
 * reverse order, the driver reaps them. Tokens are sequence numbers.
 */
static void cycle(struct ring *r, struct cyc *y, uint64_t rounds)
{
	uint64_t k;

	for (k = 0; k < rounds; k++) {
		struct chain c[3];
		uint64_t base = y->next_tok, tok;
		uint32_t len;
		unsigned int i;

		for (i = 0; i < 3; i++) {
			struct vdpa_sg s[2] = { sgb(r, (unsigned int)(base + i), 40),
						sgb(r, (unsigned int)(base + i + 1), 8) };

			if (vdpa_vq_add(r->vq, s, 1, i == 1, base + i))
				cyc_err(y, "add", k);
		}
		y->next_tok += 3;
		set_avail_event(&r->v, r->v.last_avail);
		vdpa_vq_kick(r->vq);
		y->notifies += (unsigned int)kicks(r->vq);
		if (avail_idx(&r->v) != (uint16_t)y->next_tok)
			cyc_err(y, "avail idx", k);
		for (i = 0; i < 3; i++)
			if (view_pop(&r->v, &c[i]) != 1 ||
			    c[i].n != 1u + (i == 1) ||
			    c[i].addr[0] != biova(r, (unsigned int)(base + i)))
				cyc_err(y, "device view of a chain", k);
		for (i = 3; i-- > 0;)
			view_push(&r->v, c[i].head, (uint32_t)(base + i));
		view_publish(&r->v);
		for (i = 3; i-- > 0;)
			if (vdpa_vq_get_used(r->vq, &tok, &len) != 1 ||
			    tok != base + i || len != (uint32_t)(base + i))
				cyc_err(y, "reap order/token", k);
		if (vdpa_vq_get_used(r->vq, &tok, &len) != 0)
			cyc_err(y, "extra completion", k);
		if (vdpa_vq_num_free(r->vq) != r->v.num ||
		    used_event(&r->v) != (uint16_t)y->next_tok)
			cyc_err(y, "free count / used_event", k);
	}
}

static void test_vq_wrap(void)
{
	struct cyc y = { 0 };
	struct ring r;

	if (!tap_ok(ring_open(&r, 8, true), "ring num 8, EVENT_IDX, for wrap"))
		return;
	cycle(&r, &y, 21840);	/* avail/used idx 65520 */
	tap_ok(y.errors == 0 && avail_idx(&r.v) == 65520 &&
	       r.v.used->idx == 65520 && y.notifies == 21840,
	       "21840 rounds of 3 chains up to idx 65520: every chain "
	       "intact, every kick notified%s%s", y.errors ? ": " : "",
	       y.first);
	cycle(&r, &y, 12);	/* crosses 65535 -> 0 */
	tap_ok(y.errors == 0 && avail_idx(&r.v) == 20 && r.v.used->idx == 20 &&
	       y.next_tok == 65556, "across the 16-bit wrap (65520 -> 20): "
	       "avail idx, used idx, tokens, lengths and used_event still "
	       "right%s%s", y.errors ? ": " : "", y.first);
	cycle(&r, &y, 100);
	tap_ok(y.errors == 0 && vdpa_vq_num_free(r.vq) == 8 &&
	       vdpa_vq_in_flight(r.vq) == 0 && y.notifies == 21952,
	       "and 100 rounds more: nothing lost, all 8 free");
	ring_close(&r);
}

/* ---- save / restore ------------------------------------------------------ */

static void test_vq_save_restore(void)
{
	struct vdpa_mem *mem2 = NULL, *other = NULL, *tiny = NULL;
	struct vdpa_vq *vq2 = NULL, *sentinel = (struct vdpa_vq *)&vq2;
	uint8_t *blob = NULL, *bad = NULL, small[16];
	int fds0 = tap_count_fds(), need, r;
	struct cyc y = { 0 };
	uint64_t tok, seen = 0;
	struct chain c[5];
	struct ring ri;
	unsigned int i, nf, infl;
	size_t cur;
	uint32_t len;
	bool ok;

	if (!tap_ok(ring_open(&ri, 8, true), "ring num 8, EVENT_IDX, for save"))
		return;
	/* just below the wrap, with chains in every state */
	cycle(&ri, &y, 21844);		/* idx 65532 */
	add_one(&ri, 0, 1000);		/* 65532: taken, completed, not reaped */
	add_one(&ri, 1, 1001);		/* 65533: taken, not completed */
	{
		struct vdpa_sg s[3] = { sgb(&ri, 2, 8), sgb(&ri, 3, 8),
					sgb(&ri, 4, 8) };

		vdpa_vq_add(ri.vq, s, 1, 2, 1002);	/* 65534: 3 descs */
	}
	add_one(&ri, 5, 1003);		/* 65535: published, not taken */
	vdpa_vq_kick(ri.vq);
	kicks(ri.vq);
	add_one(&ri, 6, 1004);		/* 0: added, not kicked */
	ok = view_pop(&ri.v, &c[0]) == 1 && view_pop(&ri.v, &c[1]) == 1 &&
	     view_pop(&ri.v, &c[2]) == 1;
	view_push(&ri.v, c[0].head, 10);
	view_publish(&ri.v);
	nf = vdpa_vq_num_free(ri.vq);
	infl = vdpa_vq_in_flight(ri.vq);
	tap_ok(ok && y.errors == 0 && nf == 1 && infl == 5 &&
	       avail_idx(&ri.v) == 0, "ring at idx 65532..0: 5 chains in "
	       "flight in every state, 1 descriptor free");

	need = vdpa_vq_save(ri.vq, NULL, 0);
	tap_ok(need > 0, "save(NULL, 0) returns the size needed (%d)", need);
	memset(small, 0xa5, sizeof(small));
	r = vdpa_vq_save(ri.vq, small, sizeof(small));
	tap_ok(r == need && small[0] == 0xa5 && small[15] == 0xa5,
	       "save into a too small buffer: size returned, nothing written");
	blob = malloc((size_t)need + 1);
	bad = malloc((size_t)need + 1);
	if (!blob || !bad || need <= 0) {
		tap_ok(0, "save buffers");
		goto out;
	}
	tap_is(vdpa_vq_save(ri.vq, blob, (size_t)need), need, "save");
	cur = vdpa_mem_used(ri.mem);

	/* the original goes away: a region on the same memfd adopts the ring */
	r = vdpa_mem_create_from_fd(dup(vdpa_mem_fd(ri.mem)), vdpa_mem_size(ri.mem),
				    IOVA, &mem2);
	tap_ok(r == 0, "second region on the ring's memfd");
	if (r)
		goto out;
	vdpa_vq_destroy(ri.vq);
	ri.vq = NULL;
	{
		uint8_t *b1 = ri.v.base;
		size_t doff = (size_t)((uint8_t *)ri.v.desc - b1);

		vdpa_mem_destroy(ri.mem);
		ri.mem = mem2;
		mem2 = NULL;
		ri.bufs = (uint8_t *)vdpa_mem_base(ri.mem) +
			  (ri.bufs - b1);
		{
			uint16_t la = ri.v.last_avail, ui = ri.v.used_idx;

			view_init(&ri.v, ri.mem, doff, 8);
			ri.v.last_avail = la;
			ri.v.used_idx = ui;
		}
	}

	/* bad input first, with the good blob at hand */
	vq2 = sentinel;
	tap_is(vdpa_vq_restore(NULL, blob, (size_t)need, &vq2), -EINVAL,
	       "restore(NULL mem) -> EINVAL");
	tap_is(vdpa_vq_restore(ri.mem, NULL, (size_t)need, &vq2), -EINVAL,
	       "restore(NULL buf) -> EINVAL");
	tap_is(vdpa_vq_restore(ri.mem, blob, (size_t)need, NULL), -EINVAL,
	       "restore(NULL ret_vq) -> EINVAL");
	tap_is(vdpa_vq_restore(ri.mem, blob, 4, &vq2), -EINVAL,
	       "restore(4 bytes) -> EINVAL");
	tap_is(vdpa_vq_restore(ri.mem, blob, (size_t)need - 1, &vq2), -EBADMSG,
	       "restore(one byte short) -> EBADMSG");
	memcpy(bad, blob, (size_t)need);
	bad[need] = 0;
	tap_is(vdpa_vq_restore(ri.mem, bad, (size_t)need + 1, &vq2), -EBADMSG,
	       "restore(one byte too many) -> EBADMSG");
	bad[0] ^= 0xff;
	bad[1] ^= 0xff;
	tap_is(vdpa_vq_restore(ri.mem, bad, (size_t)need, &vq2), -EBADMSG,
	       "restore(magic damaged) -> EBADMSG");
	r = vdpa_mem_create(1u << 20, IOVA + (64u << 20), &other);
	tap_ok(r == 0 && vdpa_vq_restore(other, blob, (size_t)need, &vq2) ==
	       -EBADMSG, "restore into a region at another IOVA (rings not "
	       "inside) -> EBADMSG");
	r = vdpa_mem_create(pg, IOVA, &tiny);
	tap_ok(r == 0 && vdpa_vq_restore(tiny, blob, (size_t)need, &vq2) ==
	       -EBADMSG, "restore into a region too small for the rings -> "
	       "EBADMSG");
	vdpa_mem_destroy(other);
	vdpa_mem_destroy(tiny);
	tap_ok(vq2 == sentinel, "failed restores leave *ret_vq untouched");

	vq2 = NULL;
	r = vdpa_vq_restore(ri.mem, blob, (size_t)need, &vq2);
	tap_ok(r == 0 && vq2, "restore onto the adopted region");
	if (r)
		goto out;
	ri.vq = vq2;
	tap_ok(vdpa_vq_size(vq2) == 8 && vdpa_vq_num_free(vq2) == nf &&
	       vdpa_vq_in_flight(vq2) == infl, "restored: size 8, %u free, "
	       "%u in flight", nf, infl);
	tap_ok(is_eventfd(vdpa_vq_kick_fd(vq2)) &&
	       is_eventfd(vdpa_vq_call_fd(vq2)), "restored ring has its own "
	       "kick/call eventfds");
	tap_ok(vdpa_mem_set_used(ri.mem, cur) == 0, "allocator cursor carried "
	       "over");
	/* the added-but-not-kicked chain is published by the next kick */
	set_avail_event(&ri.v, avail_idx(&ri.v));
	vdpa_vq_kick(vq2);
	tap_ok(avail_idx(&ri.v) == 1 && kicks(vq2) == 1,
	       "kick after restore publishes the pending chain (idx 65536 = "
	       "0 -> 1) and notifies (event idx kept)");
	ok = view_pop(&ri.v, &c[3]) == 1 && c[3].n == 1 &&
	     c[3].addr[0] == biova(&ri, 5);
	ok &= view_pop(&ri.v, &c[4]) == 1 && c[4].n == 1 &&
	      c[4].addr[0] == biova(&ri, 6);
	ok &= view_pop(&ri.v, &c[0]) == 0;
	tap_ok(ok && c[2].n == 3, "device takes the two remaining chains");
	view_push(&ri.v, c[4].head, 14);
	view_push(&ri.v, c[1].head, 11);
	view_push(&ri.v, c[3].head, 13);
	view_push(&ri.v, c[2].head, 12);
	view_publish(&ri.v);
	ok = true;
	for (i = 0; i < 5; i++) {
		r = vdpa_vq_get_used(vq2, &tok, &len);
		ok &= r == 1 && tok >= 1000 && tok <= 1004 &&
		      len == 10 + (tok - 1000) && !(seen & (1ull << (tok - 1000)));
		if (r == 1 && tok >= 1000 && tok <= 1004)
			seen |= 1ull << (tok - 1000);
	}
	ok &= vdpa_vq_get_used(vq2, &tok, &len) == 0;
	tap_ok(ok && seen == 0x1f, "all 5 chains reaped once each with their "
	       "tokens, across the wrap");
	tap_ok(vdpa_vq_num_free(vq2) == 8 && vdpa_vq_in_flight(vq2) == 0,
	       "no descriptor lost: all 8 free");
	y.next_tok = 65537;	/* idx 1 + 65536 */
	y.errors = 0;
	cycle(&ri, &y, 50);
	tap_ok(y.errors == 0, "50 rounds more on the restored ring%s%s",
	       y.errors ? ": " : "", y.first);
	{
		uint16_t heads = 0;

		ok = true;
		for (i = 0; i < 8; i++)
			add_one(&ri, i, 2000 + i);
		vdpa_vq_kick(vq2);
		for (i = 0; i < 8; i++) {
			ok &= view_pop(&ri.v, &c[0]) == 1 &&
			      !(heads & (1u << c[0].head));
			heads |= (uint16_t)(1u << c[0].head);
		}
		tap_ok(ok && heads == 0xff && vdpa_vq_num_free(vq2) == 0,
		       "the free list is whole: 8 distinct descriptors");
	}
out:
	free(blob);
	free(bad);
	vdpa_mem_destroy(mem2);
	ring_close(&ri);
	tap_is(tap_count_fds(), fds0, "save/restore: no fd leaked");
}

int main(void)
{
	tap_need_fd_count();
	pg = (size_t)sysconf(_SC_PAGESIZE);
	test_mem_create();
	test_mem_iova();
	test_mem_alloc();
	test_vq_layout();
	test_vq_add();
	test_vq_out_of_order();
	test_vq_full();
	test_vq_badinput();
	test_vq_event_idx();
	test_vq_wrap();
	test_vq_save_restore();
	return tap_done();
}
