// SPDX-License-Identifier: MIT
/*
 * vdpa-sim device-state extension (include/vdpa-user/uapi-ext.h, PROPOSAL):
 * VHOST_VDPA_SET_DEVICE_STATE_FD / VHOST_VDPA_CHECK_DEVICE_STATE, and the
 * simulator's own versioned, CRC32C-protected state blob.
 *
 * Blob (little endian, whatever the host):
 *   header  u32 magic "VSST", u16 version 1, u16 header length 32,
 *           u32 crc32c of the whole blob with this field 0, u32 sections,
 *           u64 total length, u64 reserved 0
 *   section u16 id, u16 flags 0, u32 length, length bytes
 *     1 CONFIG  u32 type, u32 nvqs, u32 queue pairs, u32 0, u64 capacity
 *     2 STATS   u32 nvqs, u32 0, nvqs x {requests, bytes, drops, overruns,
 *               errors} u64
 *     3 NET     u8 mac[6], u16 curr_pairs, u8 promisc, u8 allmulti,
 *               u8 rx flags (1 alluni, 2 nomulti, 4 nouni, 8 nobcast), u8 0[5]
 *     4 BLK     u64 dirty count, u64 flushes, count x {u64 sector, 512 B}
 *     5 MACTBL  u16 unicast n, u16 multicast n, u32 0, (n + n) x u8 mac[6]
 *               (net, only when the driver set a MAC table)
 *     6 ROUND   u16 version 1, u16 flags (1 final, 2 reset), u32 round,
 *               u64 pre-copy id, u64 entries after applying, u64 key hash
 *               and u64 data hash after applying (pre-copy: then BLK holds
 *               only what changed since the previous round;
 *               docs/uapi-proposal.md)
 * Errors on load: -EINVAL truncated/malformed, -EPROTO bad magic, version,
 * unknown section or a device of another type/configuration, -EBADMSG CRC.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_config.h>

#include "sim-int.h"

#include "crc32c.h"
#include "prefault.h"

#define ST_MAGIC	0x54535356u	/* "VSST" */
#define ST_VERSION	1
#define ST_HDR		32u
#define ST_SEC_HDR	8u
#define ST_CRC_OFF	8u

enum { SEC_CONFIG = 1, SEC_STATS, SEC_NET, SEC_BLK, SEC_MACTBL, SEC_ROUND,
       SEC_MAX };

/* Pre-copy round record (SEC_ROUND). */
#define ROUND_LEN	40u
#define ROUND_VERSION	1
#define ROUND_F_FINAL	1u	/* the STOPPED save's rest: no round after it */
#define ROUND_F_RESET	2u	/* drop every entry of earlier rounds first */

/* Per cache slot on the save side of a pre-copy. */
enum { PC_NONE, PC_NEW, PC_CLEAN, PC_DIRTY };

#define STATS_WORDS	5
#define BLK_ENTRY	(8u + VSIM_SECTOR)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif
#define HUGE_SZ		(2u << 20)
#define BIG_MIN		(1u << 20)	/* from here on: mmap'd, huge pages */
#define AHEAD		(8u << 20)	/* receive buffer populated ahead */

/*
 * Buffers of a large state (a blk write-back cache: up to 136 MB) are
 * mmap'd on a 2 MiB boundary and advised for transparent huge pages, and
 * faulted in with one madvise(MADV_POPULATE_WRITE) per range instead of a
 * page fault per 4 KiB (most of a 64 MiB save's or load's time before).
 * They are munmap'd at the end, so pages a pipe still references (the
 * writer vmsplice()s them) never change. Small buffers are malloc'd.
 */
static size_t big_size(size_t len)
{
	return (len + HUGE_SZ - 1) & ~(size_t)(HUGE_SZ - 1);
}

static void buf_populate(uint8_t *p, size_t len)
{
	size_t l = (len + 4095) & ~(size_t)4095;	/* within big_size() */

	if (l)
		madvise(p, l, MADV_POPULATE_WRITE);	/* best effort */
}

static uint8_t *buf_alloc(size_t len, size_t populate)
{
	size_t sz = big_size(len);
	uint8_t *p, *a;

	if (len < BIG_MIN)
		return malloc(len ? len : 1);
	p = mmap(NULL, sz + HUGE_SZ, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	a = (uint8_t *)(((uintptr_t)p + HUGE_SZ - 1) &
			~(uintptr_t)(HUGE_SZ - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	munmap(a + sz, (size_t)(p + HUGE_SZ - a));
	madvise(a, sz, MADV_HUGEPAGE);
	buf_populate(a, populate);
	return a;
}

static void buf_free(uint8_t *p, size_t len)
{
	if (len < BIG_MIN)
		free(p);
	else if (p)
		munmap(p, big_size(len));
}

/*
 * A pipe as large as an unprivileged process may make it: a 64 KiB pipe
 * between two processes costs a wakeup of each per 64 KiB.
 */
static void grow_pipe(int fd)
{
	static int max;
	int cur = fcntl(fd, F_GETPIPE_SZ);

	if (cur < 0)
		return;		/* not a pipe */
	if (!max) {
		FILE *f = fopen("/proc/sys/fs/pipe-max-size", "re");

		if (!f || fscanf(f, "%d", &max) != 1 || max <= 0)
			max = 1 << 20;
		if (f)
			fclose(f);
		if (max > 4 << 20)
			max = 4 << 20;
	}
	if (cur < max)
		fcntl(fd, F_SETPIPE_SZ, max);	/* best effort */
}

struct wbuf {
	uint8_t *p;
	size_t len;
};

static void put(struct wbuf *w, const void *v, size_t n)
{
	memcpy(w->p + w->len, v, n);
	w->len += n;
}

/* Little endian on the wire, whatever the host. */
static void put16(struct wbuf *w, uint16_t v) { v = htole16(v); put(w, &v, 2); }
static void put32(struct wbuf *w, uint32_t v) { v = htole32(v); put(w, &v, 4); }
static void put64(struct wbuf *w, uint64_t v) { v = htole64(v); put(w, &v, 8); }

static void sec(struct wbuf *w, uint16_t id, uint32_t len)
{
	put16(w, id);
	put16(w, 0);
	put32(w, len);
}

/* The state's header: magic, version, its length, nsec sections, total. */
static void put_header(struct wbuf *w, uint32_t nsec, uint64_t total)
{
	put32(w, ST_MAGIC);
	put16(w, ST_VERSION);
	put16(w, ST_HDR);
	put32(w, 0);
	put32(w, nsec);
	put64(w, total);
	put64(w, 0);
}

static int pc_save(struct vsim *s, bool final, uint8_t **ret_buf,
		   size_t *ret_len);
static void vsim_pc_end_src(struct vsim *s);
static int state_save_full(struct vsim *s, uint8_t **ret_buf,
			   size_t *ret_len);

int vsim_state_save(struct vsim *s, uint8_t **ret_buf, size_t *ret_len)
{
	/*
	 * After pre-copy rounds the final save carries only the rest,
	 * unless the rest is most of the cache (writes outpaced the rounds):
	 * then everything, which a destination takes whole (its cache adopts
	 * the buffer) faster than it applies entry after entry.
	 */
	if (s->pcs.active && !s->pcs.broken &&
	    (uint64_t)s->pcs.nlist * 2 <= s->wb.n)
		return pc_save(s, true, ret_buf, ret_len);
	vsim_pc_end_src(s);	/* a failed pre-copy: everything, as usual */
	return state_save_full(s, ret_buf, ret_len);
}

static int state_save_full(struct vsim *s, uint8_t **ret_buf, size_t *ret_len)
{
	size_t stats_len = 8 + (size_t)s->nvqs * STATS_WORDS * 8;
	size_t blk_len = 16 + (size_t)s->wb.n * BLK_ENTRY;
	size_t total = ST_HDR + ST_SEC_HDR + 24 + ST_SEC_HDR + stats_len;
	size_t crc_at = 0;
	struct prefault *pf = NULL;
	uint32_t nsec = 3, crc = 0, i;
	struct wbuf w;

	size_t mt_len = 8 + 6 * (size_t)(s->mt.n_uc + s->mt.n_mc);
	bool mt = s->o.type == VSIM_TYPE_NET && (s->mt.n_uc || s->mt.n_mc);

	total += ST_SEC_HDR + (s->o.type == VSIM_TYPE_NET ? 16 : blk_len);
	if (mt) {
		total += ST_SEC_HDR + mt_len;
		nsec++;
	}
	w.p = buf_alloc(total, 0);
	if (!w.p)
		return -ENOMEM;
	/* large: zeroed by a helper just ahead of the copy below */
	if (total >= BIG_MIN) {
		pf = vdpa_prefault_start(w.p, total, AHEAD);
		if (!pf)
			buf_populate(w.p, total);
	}
	w.len = 0;
	put_header(&w, nsec, total);

	sec(&w, SEC_CONFIG, 24);
	put32(&w, s->o.type);
	put32(&w, s->nvqs);
	put32(&w, s->o.type == VSIM_TYPE_NET ? s->o.queue_pairs : 0);
	put32(&w, 0);
	put64(&w, s->o.type == VSIM_TYPE_BLK ? s->o.capacity : 0);

	sec(&w, SEC_STATS, (uint32_t)stats_len);
	put32(&w, s->nvqs);
	put32(&w, 0);
	for (i = 0; i < s->nvqs; i++) {
		const struct vsim_queue_stats *q = &s->vq[i].st;

		put64(&w, q->requests +
		      vsim_fault(s, VSIM_FAULT_STATE_NO_ROUNDTRIP));
		put64(&w, q->bytes);
		put64(&w, q->drops);
		put64(&w, q->overruns);
		put64(&w, q->errors);
	}
	if (s->o.type == VSIM_TYPE_NET) {
		uint8_t z[6] = { 0 };

		sec(&w, SEC_NET, 16);
		put(&w, s->mac, 6);
		put16(&w, s->curr_pairs);
		put(&w, &(uint8_t){ s->promisc }, 1);
		put(&w, &(uint8_t){ s->allmulti }, 1);
		put(&w, &(uint8_t){ (uint8_t)(s->alluni | s->nomulti << 1 |
					     s->nouni << 2 | s->nobcast << 3) },
		    1);
		put(&w, z, 5);
		if (mt) {
			sec(&w, SEC_MACTBL, (uint32_t)mt_len);
			put16(&w, s->mt.n_uc);
			put16(&w, s->mt.n_mc);
			put32(&w, 0);
			put(&w, s->mt.mac, 6 * (size_t)(s->mt.n_uc + s->mt.n_mc));
		}
	} else {
		sec(&w, SEC_BLK, (uint32_t)blk_len);
		put64(&w, s->wb.n);
		put64(&w, s->flushes);
		for (i = 0; i < s->wb.n; i++) {
			put64(&w, s->wb.slot_sector[i]);
			put(&w, vsim_wb_slot(s, i), VSIM_SECTOR);
			/* CRC each 520 KiB while it is still in the cache */
			if ((i & 1023) == 1023) {
				crc = crc32c(crc, w.p + crc_at, w.len - crc_at);
				crc_at = w.len;
				vdpa_prefault_progress(pf, w.len);
			}
		}
	}
	vdpa_prefault_stop(pf);
	crc = htole32(crc32c(crc, w.p + crc_at, w.len - crc_at));
	memcpy(w.p + ST_CRC_OFF, &crc, 4);
	*ret_buf = w.p;
	*ret_len = w.len;
	return 0;
}

static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }

/*
 * crc_done: the CRC32C of buf (CRC field as 0), computed as it arrived.
 * own: buf's mapping, own_len long, which a write-back cache may keep as
 * its storage (s->wb.adopted == own afterwards); NULL: buf is not ours.
 */
static int pc_load(struct vsim *s, const uint8_t *const *sp,
		   const uint32_t *sl, bool precopy);

static int state_load(struct vsim *s, const uint8_t *buf, size_t len,
		      const uint32_t *crc_done, uint8_t *own, size_t own_len,
		      bool precopy)
{
	const uint8_t *sp[SEC_MAX] = { NULL };
	uint32_t sl[SEC_MAX] = { 0 };
	uint32_t nsec, crc, i;
	size_t off;
	uint64_t cnt = 0;

	if (len < ST_HDR)
		return -EINVAL;
	if (get32(buf) != ST_MAGIC || get16(buf + 4) != ST_VERSION)
		return -EPROTO;
	if (get16(buf + 6) != ST_HDR || get64(buf + 16) != len ||
	    get64(buf + 24) != 0)
		return -EINVAL;
	if (crc_done) {
		crc = *crc_done;
	} else {
		crc = crc32c(0, buf, ST_CRC_OFF);
		crc = crc32c(crc, &(uint32_t){ 0 }, 4);
		crc = crc32c(crc, buf + ST_CRC_OFF + 4, len - ST_CRC_OFF - 4);
	}
	if (crc != get32(buf + ST_CRC_OFF))
		return -EBADMSG;
	nsec = get32(buf + 12);
	off = ST_HDR;
	for (i = 0; i < nsec; i++) {
		uint16_t id;
		uint32_t l;

		if (len - off < ST_SEC_HDR)
			return -EINVAL;
		id = get16(buf + off);
		l = get32(buf + off + 4);
		if (get16(buf + off + 2) != 0 || l > len - off - ST_SEC_HDR)
			return -EINVAL;
		if (id == 0 || id >= SEC_MAX)
			return -EPROTO;
		if (sp[id])
			return -EINVAL;
		sp[id] = buf + off + ST_SEC_HDR;
		sl[id] = l;
		off += ST_SEC_HDR + l;
	}
	/* a pre-copy round carries no counters: they go in the final one */
	if (off != len || !sp[SEC_CONFIG] || (!precopy && !sp[SEC_STATS]))
		return -EINVAL;

	/* same device model and configuration */
	if (sl[SEC_CONFIG] != 24)
		return -EINVAL;
	if (get32(sp[SEC_CONFIG]) != s->o.type ||
	    get32(sp[SEC_CONFIG] + 4) != s->nvqs ||
	    get32(sp[SEC_CONFIG] + 8) !=
		(s->o.type == VSIM_TYPE_NET ? s->o.queue_pairs : 0) ||
	    get64(sp[SEC_CONFIG] + 16) !=
		(s->o.type == VSIM_TYPE_BLK ? s->o.capacity : 0))
		return -EPROTO;
	if (sp[SEC_STATS] && (sl[SEC_STATS] != 8 + s->nvqs * STATS_WORDS * 8 ||
			      get32(sp[SEC_STATS]) != s->nvqs))
		return -EINVAL;
	if (s->o.type == VSIM_TYPE_NET) {
		uint16_t pairs;

		if (sp[SEC_BLK] || sp[SEC_ROUND])
			return -EPROTO;
		if (!sp[SEC_NET] || sl[SEC_NET] != 16)
			return -EINVAL;
		pairs = get16(sp[SEC_NET] + 6);
		if (pairs < 1 || pairs > s->o.queue_pairs ||
		    sp[SEC_NET][8] > 1 || sp[SEC_NET][9] > 1 ||
		    (sp[SEC_NET][10] & ~0xfu))
			return -EINVAL;
		if (sp[SEC_MACTBL]) {
			uint32_t nu, nm;

			if (sl[SEC_MACTBL] < 8)
				return -EINVAL;
			nu = get16(sp[SEC_MACTBL]);
			nm = get16(sp[SEC_MACTBL] + 2);
			if (nu + nm > VSIM_MAC_TABLE_MAX ||
			    get32(sp[SEC_MACTBL] + 4) ||
			    sl[SEC_MACTBL] != 8 + 6 * (nu + nm))
				return -EINVAL;
		}
	} else {
		if (sp[SEC_NET] || sp[SEC_MACTBL])
			return -EPROTO;
		if (!sp[SEC_BLK] || sl[SEC_BLK] < 16)
			return -EINVAL;
		cnt = get64(sp[SEC_BLK]);
		if (cnt > VSIM_WB_MAX || sl[SEC_BLK] != 16 + cnt * BLK_ENTRY)
			return -EINVAL;
		for (i = 0; i < cnt; i++)
			if (get64(sp[SEC_BLK] + 16 + (size_t)i * BLK_ENTRY) >=
			    s->o.capacity)
				return -EINVAL;
		/* a round, or the rest after rounds: onto what came before */
		if (precopy || sp[SEC_ROUND])
			return pc_load(s, sp, sl, precopy);
	}

	/* everything checked: apply */
	if (vsim_fault(s, VSIM_FAULT_LOAD_IGNORES_STATE))
		return 0;
	for (i = 0; i < s->nvqs; i++) {
		const uint8_t *q = sp[SEC_STATS] + 8 + i * STATS_WORDS * 8;

		s->vq[i].st.requests = get64(q);
		s->vq[i].st.bytes = get64(q + 8);
		s->vq[i].st.drops = get64(q + 16);
		s->vq[i].st.overruns = get64(q + 24);
		s->vq[i].st.errors = get64(q + 32);
	}
	if (s->o.type == VSIM_TYPE_NET) {
		memcpy(s->mac, sp[SEC_NET], 6);
		s->curr_pairs = get16(sp[SEC_NET] + 6);
		s->promisc = sp[SEC_NET][8];
		s->allmulti = sp[SEC_NET][9];
		s->alluni = sp[SEC_NET][10] & 1;
		s->nomulti = !!(sp[SEC_NET][10] & 2);
		s->nouni = !!(sp[SEC_NET][10] & 4);
		s->nobcast = !!(sp[SEC_NET][10] & 8);
		memset(&s->mt, 0, sizeof(s->mt));
		if (sp[SEC_MACTBL]) {
			s->mt.n_uc = get16(sp[SEC_MACTBL]);
			s->mt.n_mc = get16(sp[SEC_MACTBL] + 2);
			memcpy(s->mt.mac, sp[SEC_MACTBL] + 8,
			       6 * (size_t)(s->mt.n_uc + s->mt.n_mc));
		}
		return 0;
	}
	s->flushes = get64(sp[SEC_BLK] + 8);
	/* a whole state replaces rounds, and any pre-copy of this device */
	vsim_pc_end(s);
	if (s->wb.keys) {
		vsim_wb_clear(s);
		/* the received entries become the cache's slots as they
		 * are: entry i's data is slot i (no copy, no fresh pages) */
		if (own && cnt)
			vsim_wb_adopt(s, own + (sp[SEC_BLK] - buf) + 16 + 8,
				      BLK_ENTRY, own, own_len);
	}
	for (i = 0; i < cnt; i++) {
		const uint8_t *e = sp[SEC_BLK] + 16 + (size_t)i * BLK_ENTRY;
		uint8_t *c = s->wb.keys ? vsim_wb_insert(s, get64(e)) : NULL;
		int r;

		/*
		 * Adopted, slot i is entry i's data already, unless a sector
		 * came twice: then the slot is an earlier one (never a later
		 * entry's), which takes the data, as without adoption.
		 */
		if (c) {
			if (c != e + 8)
				memmove(c, e + 8, VSIM_SECTOR);
			continue;
		}
		/* write-through device: the dirty data goes to the disk */
		r = vsim_disk_write(s, get64(e) * VSIM_SECTOR, e + 8,
				    VSIM_SECTOR);
		if (r < 0)
			return r;
	}
	return 0;
}

int vsim_state_load(struct vsim *s, const uint8_t *buf, size_t len)
{
	return state_load(s, buf, len, NULL, NULL, 0, false);
}

/* ---- transfer -------------------------------------------------------------- */

static void xfer_finish(struct vsim_xfer *x, int result)
{
	close(x->fd);
	x->fd = -1;
	pthread_mutex_lock(&x->m);
	x->result = result;
	x->done = true;
	pthread_cond_broadcast(&x->c);
	pthread_mutex_unlock(&x->m);
}

/* Wait until fd is ready for ev; -ECANCELED when cancelled. */
static int wait_fd(struct vsim_xfer *x, short ev)
{
	struct pollfd p[2] = {
		{ .fd = x->fd, .events = ev },
		{ .fd = x->cancel_fd, .events = POLLIN },
	};

	for (;;) {
		int n = poll(p, 2, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (p[1].revents)
			return -ECANCELED;
		if (p[0].revents & POLLNVAL)
			return -EBADF;
		return 0;
	}
}

static void *writer_main(void *arg)
{
	struct vsim_xfer *x = arg;
	sigset_t pipe_set;
	size_t off = 0;
	int r = 0;

	/*
	 * A large snapshot is mmap'd and only munmap'd after the transfer:
	 * its pages can go into a pipe as they are (vmsplice), one copy less
	 * than write(). Anything else (a socket, a file): write().
	 */
	bool splice = x->len >= BIG_MIN && !x->crash;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
	if (splice)
		grow_pipe(x->fd);
	while (off < x->len) {
		size_t chunk = x->len - off < 4096 ? x->len - off : 4096;
		ssize_t n;

		if (x->crash && off) {
			fprintf(stderr, "vdpa-sim: --crash-during state-save: "
				"dying after %zu of %zu bytes\n", off, x->len);
			_exit(70);
		}
		if (x->crash && chunk > x->len / 2)
			chunk = x->len / 2 ? x->len / 2 : 1;

		r = wait_fd(x, POLLOUT);
		if (r < 0)
			break;
		if (splice) {
			struct iovec v = {
				.iov_base = x->buf + off,
				.iov_len = x->len - off < (4u << 20) ?
					   x->len - off : (4u << 20),
			};

			/* non-blocking: a cancel must not wait for a reader */
			n = vmsplice(x->fd, &v, 1, SPLICE_F_NONBLOCK);
			if (n < 0 && (errno == EBADF || errno == EINVAL)) {
				splice = false;	/* not a pipe */
				continue;
			}
		} else {
			n = write(x->fd, x->buf + off, chunk);
		}
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			r = -errno;
			if (r == -EPIPE) {
				struct timespec zero = { 0, 0 };

				/* eat the SIGPIPE raised at this thread */
				sigtimedwait(&pipe_set, NULL, &zero);
			}
			break;
		}
		off += (size_t)n;
	}
	xfer_finish(x, r);
	return NULL;
}

static void *reader_main(void *arg)
{
	struct vsim_xfer *x = arg;
	struct prefault *pf = NULL;
	size_t populated = 0;
	int r;

	for (;;) {
		ssize_t n;

		if (x->len == x->cap) {
			/*
			 * 64 KiB first; past that, address space for one byte
			 * more than the maximum (a state of exactly
			 * VSIM_STATE_MAX is read to its EOF), faulted in just
			 * ahead of the data: no realloc copies.
			 */
			size_t cap = x->cap ? VSIM_STATE_MAX + 1u : 65536;
			uint8_t *p;

			/*
			 * A state its header says is small (the rest after
			 * pre-copy rounds): that much, malloc'd, not the
			 * large path's address space and helper thread.
			 * Larger: the large path (a cache adopts it whole).
			 */
			if (x->cap && get32(x->buf) == ST_MAGIC &&
			    get64(x->buf + 16) >= x->len &&
			    get64(x->buf + 16) + 1 < BIG_MIN)
				cap = (size_t)get64(x->buf + 16) + 1;

			if (x->cap > VSIM_STATE_MAX) {
				r = -EFBIG;
				break;
			}
			p = buf_alloc(cap, 0);
			if (!p) {
				r = -ENOMEM;
				break;
			}
			if (x->len)
				memcpy(p, x->buf, x->len);
			buf_free(x->buf, x->cap);
			x->buf = p;
			x->cap = cap;
			if (cap >= BIG_MIN) {
				/* zeroed beside the reads, as far as the
				 * header says the state goes */
				size_t want = cap;

				if (get32(p) == ST_MAGIC &&
				    get64(p + 16) > x->len && get64(p + 16) < cap)
					want = get64(p + 16) + 1;
				grow_pipe(x->fd);
				populated = x->len;
				pf = vdpa_prefault_start(p, want, AHEAD);
			}
		}
		if (x->cap >= BIG_MIN && !pf && populated < x->cap &&
		    populated - x->len < AHEAD / 2) {
			size_t end = x->cap - x->len > AHEAD ?
				     x->len + AHEAD : x->cap;

			buf_populate(x->buf + populated, end - populated);
			populated = end;
		}
		r = wait_fd(x, POLLIN);
		if (r < 0)
			break;
		n = read(x->fd, x->buf + x->len, x->cap - x->len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0) {
			r = x->len > VSIM_STATE_MAX ? -EFBIG : 0;
			break;
		}
		x->len += (size_t)n;
		vdpa_prefault_progress(pf, x->len);
		/* the CRC as the bytes arrive (its own field counts as 0),
		 * so CHECK does not walk the state again */
		if (x->crc_at < ST_CRC_OFF + 4 && x->len >= ST_CRC_OFF + 4) {
			x->crc = crc32c(0, x->buf, ST_CRC_OFF);
			x->crc = crc32c(x->crc, &(uint32_t){ 0 }, 4);
			x->crc_at = ST_CRC_OFF + 4;
		}
		if (x->crc_at >= ST_CRC_OFF + 4 && x->len > x->crc_at) {
			x->crc = crc32c(x->crc, x->buf + x->crc_at,
					x->len - x->crc_at);
			x->crc_at = x->len;
		}
		if (x->crash) {
			fprintf(stderr, "vdpa-sim: --crash-during state-load: "
				"dying after %zu bytes\n", x->len);
			_exit(70);
		}
	}
	vdpa_prefault_stop(pf);
	xfer_finish(x, r);
	return NULL;
}

int vsim_state_set_fd(struct vsim *s, struct vhost_vdpa_device_state_fd *a,
		      int *fd)
{
	struct vsim_xfer *x = &s->xfer;
	int r;

	bool pc = a->phase == VHOST_TRANSFER_STATE_PHASE_PRECOPY;

	if (a->reserved || a->direction > VHOST_TRANSFER_STATE_DIRECTION_LOAD)
		return -EINVAL;
	if (a->phase != VHOST_TRANSFER_STATE_PHASE_STOPPED &&
	    !(pc && vsim_pc_offered(s)))
		return -EOPNOTSUPP;
	if (*fd < 0)
		return -EINVAL;	/* this device always uses the caller's fd */
	if (x->active)
		return -EBUSY;
	if (a->direction == VHOST_TRANSFER_STATE_DIRECTION_SAVE) {
		/* a round is read while the device runs */
		if (pc && s->pcs.broken)
			return -ESTALE;
		if (!pc && !s->suspended)
			return -EBUSY;
	} else if (pc && s->pcd.final) {
		return -EALREADY;	/* a round after the final one */
	} else if (pc && (s->status & VIRTIO_CONFIG_S_DRIVER_OK)) {
		return -EBUSY;		/* rounds go into a device not started */
	} else if ((s->status & VIRTIO_CONFIG_S_DRIVER_OK) && !s->suspended) {
		return -EBUSY;
	}
	x->buf = NULL;
	x->len = x->cap = 0;
	x->crc_at = 0;
	if (a->direction == VHOST_TRANSFER_STATE_DIRECTION_SAVE) {
		r = pc ? pc_save(s, false, &x->buf, &x->len) :
			 vsim_state_save(s, &x->buf, &x->len);
		if (r < 0)
			return r;
		x->cap = x->len;	/* buf_free() needs the size */
	}
	x->dir = a->direction;
	x->precopy = pc;
	x->crash = (a->direction == VHOST_TRANSFER_STATE_DIRECTION_SAVE &&
		    s->o.crash_during == VSIM_CRASH_SAVE) ||
		   (a->direction == VHOST_TRANSFER_STATE_DIRECTION_LOAD &&
		    s->o.crash_during == VSIM_CRASH_LOAD);
	x->fd = *fd;
	x->done = false;
	x->result = 0;
	r = -pthread_create(&x->th, NULL,
			    a->direction == VHOST_TRANSFER_STATE_DIRECTION_SAVE ?
			    writer_main : reader_main, x);
	if (r < 0) {
		x->fd = -1;
		buf_free(x->buf, x->cap);
		x->buf = NULL;
		return r;
	}
	*fd = -1;	/* the thread owns and closes it */
	x->active = true;
	x->started = true;
	a->fd = -1;	/* the device uses the caller's fd */
	vsim_log(s, LOG_INFO, "state %s started (%zu bytes)",
		 x->dir ? "load" : "save", x->len);
	return 0;
}

static void xfer_end(struct vsim_xfer *x)
{
	uint64_t v;

	if (x->started)
		pthread_join(x->th, NULL);
	x->started = false;
	x->active = false;
	buf_free(x->buf, x->cap);
	x->buf = NULL;
	x->len = x->cap = 0;
	if (read(x->cancel_fd, &v, sizeof(v)) < 0) {
		/* not cancelled */
	}
}

int vsim_state_check(struct vsim *s)
{
	struct vsim_xfer *x = &s->xfer;
	struct timespec dl;
	int r = 0;

	if (!x->active)
		return -EINVAL;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += VSIM_STATE_TIMEOUT_MS / 1000;
	pthread_mutex_lock(&x->m);
	while (!x->done && r == 0)
		r = pthread_cond_timedwait(&x->c, &x->m, &dl);
	pthread_mutex_unlock(&x->m);
	if (!x->done)
		return -ETIMEDOUT;	/* still open: CHECK again later */
	pthread_join(x->th, NULL);
	x->started = false;
	r = x->result;
	if (r == 0 && x->dir == VHOST_TRANSFER_STATE_DIRECTION_LOAD) {
		r = state_load(s, x->buf, x->len,
			       x->crc_at == x->len ? &x->crc : NULL,
			       x->cap >= BIG_MIN ? x->buf : NULL,
			       big_size(x->cap), x->precopy);
		if (x->buf && x->buf == s->wb.adopted)
			x->buf = NULL;	/* the cache's storage now */
	}
	vsim_log(s, r < 0 ? LOG_WARNING : LOG_INFO, "state %s %s: %d",
		 x->dir ? "load" : "save", r < 0 ? "failed" : "done", r);
	if (r == 0)
		s->transfers++;
	/* a round that did not arrive: what it marked sent was not */
	if (r < 0 && x->precopy &&
	    x->dir == VHOST_TRANSFER_STATE_DIRECTION_SAVE)
		s->pcs.broken = true;
	/* saved: the cache's content is in the state now; loaded: ours */
	s->wb_saved = r == 0 && x->dir == VHOST_TRANSFER_STATE_DIRECTION_SAVE &&
		      !x->precopy;
	xfer_end(x);
	return r;
}

void vsim_state_cancel(struct vsim *s)
{
	struct vsim_xfer *x = &s->xfer;
	uint64_t one = 1;

	if (!x->active)
		return;
	if (x->precopy && x->dir == VHOST_TRANSFER_STATE_DIRECTION_SAVE)
		s->pcs.broken = true;
	if (write(x->cancel_fd, &one, sizeof(one)) < 0) {
		/* already signalled */
	}
	xfer_end(x);
}

/* ---- pre-copy (PROPOSAL: VHOST_BACKEND_F_DEVICE_STATE_PRECOPY) ------------ */

/*
 * A write-back cache is the state that is large and changes while the
 * device runs; everything else (counters, net state) is small and goes in
 * the final, STOPPED save. A round lists the cache entries written since
 * the previous round (the first: all of them). Entries never leave the
 * cache one by one: a flush (or the cache filling up) empties it whole,
 * and the next round then says so (RESET), so the destination drops what
 * it has too. Every round names the entry count and a hash of the sector
 * set the destination must have after applying it: a destination whose
 * cache would differ from the source's refuses the round before applying
 * any of it.
 */
bool vsim_pc_offered(const struct vsim *s)
{
	return s->o.type == VSIM_TYPE_BLK && s->wb.keys && !s->o.no_state;
}

/* splitmix64's finalizer: the set hash is a sum, so order does not count */
uint64_t vsim_pc_keyhash(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* An entry's contribution to the data hash: its sector and its bytes. */
static uint64_t vsim_pc_datahash(uint64_t sector, const uint8_t *data)
{
	return vsim_pc_keyhash(sector ^
			       vsim_pc_keyhash(crc32c(0, data, VSIM_SECTOR)));
}

/* Slot's data is about to change: out of the hash if it is in it. */
void vsim_pc_before_write(struct vsim *s, uint32_t slot)
{
	struct vsim_pc_src *p = &s->pcs;

	/* PC_NONE: inserted since round 0 or the last emptying, not hashed */
	if (p->active && p->mark[slot] != PC_NONE)
		p->datahash -= vsim_pc_datahash(s->wb.slot_sector[slot],
						vsim_wb_slot(s, slot));
}

void vsim_pc_written(struct vsim *s, uint32_t slot)
{
	struct vsim_pc_src *p = &s->pcs;

	if (!p->active)
		return;
	p->datahash += vsim_pc_datahash(s->wb.slot_sector[slot],
					vsim_wb_slot(s, slot));
	if (p->mark[slot] == PC_CLEAN) {
		p->mark[slot] = PC_DIRTY;
		p->dirty++;
	} else if (p->mark[slot] == PC_NONE) {
		p->mark[slot] = PC_NEW;
	} else {
		return;		/* listed already */
	}
	p->list[p->nlist++] = slot;
}

void vsim_pc_cleared(struct vsim *s)
{
	struct vsim_pc_src *p = &s->pcs;

	if (!p->active)
		return;
	memset(p->mark, PC_NONE, s->wb.n);
	p->nlist = p->dirty = 0;
	p->datahash = 0;
	p->reset = true;
}

static void vsim_pc_end_src(struct vsim *s)
{
	struct vsim_pc_src *p = &s->pcs;

	p->active = p->broken = p->reset = false;
	p->rounds = p->nlist = p->dirty = 0;
}

void vsim_pc_end(struct vsim *s)
{
	vsim_pc_end_src(s);
	memset(&s->pcd, 0, sizeof(s->pcd));
}

void vsim_pc_fini(struct vsim *s)
{
	free(s->pcs.mark);
	free(s->pcs.list);
	s->pcs.mark = NULL;
	s->pcs.list = NULL;
	vsim_pc_end(s);
}

int vsim_pc_info(struct vsim *s, struct vhost_vdpa_precopy_info *ret)
{
	const struct vsim_pc_src *p = &s->pcs;

	memset(ret, 0, sizeof(*ret));
	if (!vsim_pc_offered(s))
		return -EOPNOTSUPP;
	if (!p->active) {
		ret->initial_bytes = (uint64_t)s->wb.n * BLK_ENTRY;
		return 0;
	}
	ret->initial_bytes = (uint64_t)(p->nlist - p->dirty) * BLK_ENTRY;
	ret->dirty_bytes = (uint64_t)p->dirty * BLK_ENTRY;
	ret->rounds = p->rounds;
	ret->flags = VHOST_VDPA_PRECOPY_ACTIVE;
	return 0;
}

static uint64_t pc_new_id(void)
{
	struct timespec ts;
	uint64_t v;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v) && v)
		return v;
	clock_gettime(CLOCK_REALTIME, &ts);
	return vsim_pc_keyhash((uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32);
}

/* Round 0: every slot goes out, none is listed for later yet. */
static int pc_begin(struct vsim *s)
{
	struct vsim_pc_src *p = &s->pcs;

	if (!p->mark) {
		p->mark = calloc(VSIM_WB_MAX, 1);
		p->list = malloc(VSIM_WB_MAX * sizeof(*p->list));
		if (!p->mark || !p->list) {
			free(p->mark);
			free(p->list);
			p->mark = NULL;
			p->list = NULL;
			return -ENOMEM;
		}
	}
	memset(p->mark, PC_NONE, VSIM_WB_MAX);
	p->datahash = 0;	/* pc_save() adds every entry as it sends it */
	p->id = pc_new_id();
	p->rounds = p->nlist = p->dirty = 0;
	p->reset = true;	/* the destination starts from nothing */
	return 0;
}

/*
 * One round (final: the STOPPED save's rest, with the counters, which
 * ends the pre-copy). Taken at SET time in the device's thread: writes
 * after it are listed for the next round.
 */
static int pc_save(struct vsim *s, bool final, uint8_t **ret_buf,
		   size_t *ret_len)
{
	struct vsim_pc_src *p = &s->pcs;
	size_t stats_len = 8 + (size_t)s->nvqs * STATS_WORDS * 8;
	bool first = !p->active;
	uint32_t k, i, nsec = final ? 4 : 3, crc;
	size_t blk_len, total;
	struct wbuf w;
	int r;

	if (first && (r = pc_begin(s)) < 0)
		return r;
	k = first ? s->wb.n : p->nlist;
	blk_len = 16 + (size_t)k * BLK_ENTRY;
	total = ST_HDR + ST_SEC_HDR + 24 + ST_SEC_HDR + ROUND_LEN +
		ST_SEC_HDR + blk_len + (final ? ST_SEC_HDR + stats_len : 0);
	w.p = buf_alloc(total, total);
	if (!w.p)
		return -ENOMEM;
	w.len = 0;
	put_header(&w, nsec, total);
	sec(&w, SEC_CONFIG, 24);
	put32(&w, s->o.type);
	put32(&w, s->nvqs);
	put32(&w, 0);
	put32(&w, 0);
	put64(&w, s->o.capacity);
	if (final) {
		sec(&w, SEC_STATS, (uint32_t)stats_len);
		put32(&w, s->nvqs);
		put32(&w, 0);
		for (i = 0; i < s->nvqs; i++) {
			const struct vsim_queue_stats *q = &s->vq[i].st;

			put64(&w, q->requests);
			put64(&w, q->bytes);
			put64(&w, q->drops);
			put64(&w, q->overruns);
			put64(&w, q->errors);
		}
	}
	sec(&w, SEC_ROUND, ROUND_LEN);
	put16(&w, ROUND_VERSION);
	put16(&w, (uint16_t)((final ? ROUND_F_FINAL : 0) |
			     (p->reset ? ROUND_F_RESET : 0)));
	put32(&w, p->rounds);
	put64(&w, p->id);
	put64(&w, s->wb.n);
	put64(&w, s->wb.keyhash);
	/* round 0: the hash of everything, made as it is copied below */
	if (first)
		for (i = 0; i < k; i++)
			p->datahash += vsim_pc_datahash(s->wb.slot_sector[i],
							vsim_wb_slot(s, i));
	put64(&w, p->datahash);
	sec(&w, SEC_BLK, (uint32_t)blk_len);
	put64(&w, k);
	put64(&w, s->flushes);
	for (i = 0; i < k; i++) {
		uint32_t slot = first ? i : p->list[i];

		put64(&w, s->wb.slot_sector[slot]);
		put(&w, vsim_wb_slot(s, slot), VSIM_SECTOR);
		p->mark[slot] = PC_CLEAN;
	}
	crc = htole32(crc32c(0, w.p, w.len));
	memcpy(w.p + ST_CRC_OFF, &crc, 4);
	vsim_log(s, LOG_INFO, "pre-copy %s %u: %u entries", final ? "final" :
		 "round", p->rounds, k);
	p->nlist = p->dirty = 0;
	p->reset = false;
	p->rounds++;
	p->active = true;
	if (final)
		vsim_pc_end_src(s);
	*ret_buf = w.p;
	*ret_len = w.len;
	return 0;
}

/*
 * Is round rnd of pre-copy id the one this destination expects? -EALREADY
 * after the final one, -EXDEV another device's (another pre-copy's),
 * -EILSEQ out of order or repeated.
 */
static int pc_order(const struct vsim *s, uint64_t id, uint32_t rnd,
		    bool final)
{
	const struct vsim_pc_dst *d = &s->pcd;

	if (d->final)
		return -EALREADY;
	/* round 0 starts a pre-copy; a final needs one started */
	if (!d->active)
		return rnd == 0 && !final ? 0 : -EILSEQ;
	if (id != d->id)
		return -EXDEV;
	return rnd == d->next ? 0 : -EILSEQ;
}

/* Validated sections of a round (or of the final rest): check, apply. */
static int pc_load(struct vsim *s, const uint8_t *const *sp,
		   const uint32_t *sl, bool precopy)
{
	const uint8_t *rd = sp[SEC_ROUND], *blk = sp[SEC_BLK];
	uint64_t id, want_n, want_h, want_d, n, h, dh, cnt, i;
	uint16_t flags;
	uint32_t rnd;
	int r;

	if (!rd)
		return -EINVAL;		/* a PRECOPY load that is not a round */
	if (sl[SEC_ROUND] != ROUND_LEN)
		return -EINVAL;
	if (get16(rd) != ROUND_VERSION)
		return -EPROTO;
	flags = get16(rd + 2);
	rnd = get32(rd + 4);
	id = get64(rd + 8);
	want_n = get64(rd + 16);
	want_h = get64(rd + 24);
	want_d = get64(rd + 32);
	/* rounds while running, the final one with the STOPPED phase */
	if ((flags & ~(ROUND_F_FINAL | ROUND_F_RESET)) ||
	    !!(flags & ROUND_F_FINAL) == precopy || want_n > VSIM_WB_MAX)
		return -EINVAL;
	if (!s->wb.keys)
		return -EOPNOTSUPP;	/* no cache to hold rounds */
	r = pc_order(s, id, rnd, flags & ROUND_F_FINAL);
	if (r < 0)
		return r;
	/*
	 * The cache this round makes must be the source's: its entry count,
	 * its sector set and the bytes of every entry.
	 */
	cnt = get64(blk);
	n = flags & ROUND_F_RESET ? 0 : s->wb.n;
	h = flags & ROUND_F_RESET ? 0 : s->wb.keyhash;
	dh = flags & ROUND_F_RESET ? 0 : s->pcd.datahash;
	for (i = 0; i < cnt; i++) {
		const uint8_t *e = blk + 16 + i * BLK_ENTRY;
		uint64_t sector = get64(e);
		const uint8_t *old = flags & ROUND_F_RESET ? NULL :
				     vsim_wb_find(s, sector);

		if (!old) {
			n++;
			h += vsim_pc_keyhash(sector);
		} else {
			dh -= vsim_pc_datahash(sector, old);
		}
		dh += vsim_pc_datahash(sector, e + 8);
	}
	if (n != want_n || h != want_h || dh != want_d)
		return -EBADE;
	/* checked: apply */
	if (flags & ROUND_F_RESET)
		vsim_wb_clear(s);
	for (i = 0; i < cnt; i++) {
		const uint8_t *e = blk + 16 + i * BLK_ENTRY;
		uint8_t *c = vsim_wb_insert(s, get64(e));

		if (!c)
			return -ENOSPC;	/* cannot be: n <= VSIM_WB_MAX */
		memcpy(c, e + 8, VSIM_SECTOR);
	}
	s->pcd.active = true;
	s->pcd.id = id;
	s->pcd.next = rnd + 1;
	s->pcd.datahash = dh;
	if (flags & ROUND_F_FINAL) {
		for (i = 0; i < s->nvqs; i++) {
			const uint8_t *q = sp[SEC_STATS] + 8 +
					   i * STATS_WORDS * 8;

			s->vq[i].st.requests = get64(q);
			s->vq[i].st.bytes = get64(q + 8);
			s->vq[i].st.drops = get64(q + 16);
			s->vq[i].st.overruns = get64(q + 24);
			s->vq[i].st.errors = get64(q + 32);
		}
		s->flushes = get64(blk + 8);
		s->pcd.active = false;
		s->pcd.final = true;
	}
	vsim_log(s, LOG_INFO, "pre-copy %s %u applied: %llu entries, cache %u",
		 flags & ROUND_F_FINAL ? "final" : "round", rnd,
		 (unsigned long long)cnt, s->wb.n);
	return 0;
}
