// SPDX-License-Identifier: MIT
/*
 * vdpa-sim virtio-blk, after Linux drivers/vdpa/vdpa_sim/vdpa_sim_blk.c:
 * a RAM disk (anonymous mapping, touched lazily) or a backing file shared
 * by several simulators (pread/pwrite), with an optional write-back cache
 * that holds written sectors until FLUSH.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>

#include "sim-int.h"

#define WB_HASH		(VSIM_WB_MAX * 2)

/* 64 random bits naming a RAM disk (getrandom, else time and pid). */
static uint64_t ram_disk_id(void)
{
	struct timespec ts;
	uint64_t v;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
		return v;
	clock_gettime(CLOCK_REALTIME, &ts);
	v = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	return (v ^ ((uint64_t)getpid() << 32)) * 0x9e3779b97f4a7c15ULL;
}

int vsim_blk_init(struct vsim *s)
{
	s->dev_features |= (1ULL << VIRTIO_BLK_F_SIZE_MAX) |
			   (1ULL << VIRTIO_BLK_F_SEG_MAX) |
			   (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
			   (1ULL << VIRTIO_BLK_F_FLUSH);
	if (s->o.backing) {
		struct stat st;

		s->backing_fd = open(s->o.backing, O_RDWR | O_CLOEXEC);
		if (s->backing_fd < 0)
			return -errno;
		if (fstat(s->backing_fd, &st) < 0)
			return -errno;
		if (st.st_size < VSIM_SECTOR)
			return -EINVAL;
		/* the file itself: whoever opens it shares this disk */
		snprintf(s->model, sizeof(s->model),
			 "vdpa-sim://blk?disk=%llu:%llu",
			 (unsigned long long)st.st_dev,
			 (unsigned long long)st.st_ino);
		if (!s->o.capacity || s->o.capacity > (uint64_t)st.st_size /
						       VSIM_SECTOR)
			s->o.capacity = (uint64_t)st.st_size / VSIM_SECTOR;
	} else {
		s->disk_len = s->o.capacity * VSIM_SECTOR;
		s->disk = mmap(NULL, s->disk_len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			       -1, 0);
		if (s->disk == MAP_FAILED) {
			s->disk = NULL;
			return -ENOMEM;
		}
		/* nobody else has this disk: a name no other will have */
		snprintf(s->model, sizeof(s->model),
			 "vdpa-sim://blk?disk=ram-%016llx",
			 (unsigned long long)ram_disk_id());
	}
	if (s->o.writeback) {
		s->wb.keys = malloc(WB_HASH * sizeof(*s->wb.keys));
		s->wb.slot = malloc(WB_HASH * sizeof(*s->wb.slot));
		s->wb.slot_sector = malloc(VSIM_WB_MAX *
					   sizeof(*s->wb.slot_sector));
		s->wb.data = mmap(NULL, (size_t)VSIM_WB_MAX * VSIM_SECTOR,
				  PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				  -1, 0);
		if (s->wb.data == MAP_FAILED)
			s->wb.data = NULL;
		s->wb.base = s->wb.data;
		s->wb.stride = VSIM_SECTOR;
		if (!s->wb.keys || !s->wb.slot || !s->wb.slot_sector ||
		    !s->wb.data)
			return -ENOMEM;
		memset(s->wb.keys, 0xff, WB_HASH * sizeof(*s->wb.keys));
	}
	return 0;
}

void vsim_blk_fini(struct vsim *s)
{
	if (s->disk)
		munmap(s->disk, s->disk_len);
	s->disk = NULL;
	if (s->backing_fd >= 0)
		close(s->backing_fd);
	s->backing_fd = -1;
	free(s->wb.keys);
	free(s->wb.slot);
	free(s->wb.slot_sector);
	vsim_pc_fini(s);
	if (s->wb.data)
		munmap(s->wb.data, (size_t)VSIM_WB_MAX * VSIM_SECTOR);
	if (s->wb.adopted)
		munmap(s->wb.adopted, s->wb.adopted_len);
	memset(&s->wb, 0, sizeof(s->wb));
}

void vsim_blk_reset(struct vsim *s)
{
	/*
	 * A volatile write cache loses unflushed data on reset. Flushing it
	 * here would be wrong after a migration: the destination owns (and
	 * flushes) the dirty sectors it loaded from this device's state.
	 */
	if (s->wb.n && s->wb_saved)
		vsim_log(s, LOG_INFO, "reset: the %u unflushed sectors went "
			 "with the saved device state", s->wb.n);
	else if (s->wb.n)
		vsim_log(s, LOG_NOTICE, "reset drops %u unflushed sectors",
			 s->wb.n);
	vsim_wb_clear(s);
	s->wb_saved = false;
	vsim_pc_end(s);		/* a reset ends a pre-copy, both sides */
}

/* ---- write-back cache ---------------------------------------------------- */

static uint32_t wb_hash(uint64_t sector)
{
	return (uint32_t)((sector * 0x9e3779b97f4a7c15ULL) >> 32) % WB_HASH;
}

uint8_t *vsim_wb_find(struct vsim *s, uint64_t sector)
{
	uint32_t h;

	if (!s->wb.n)
		return NULL;
	for (h = wb_hash(sector); s->wb.keys[h] != UINT64_MAX;
	     h = (h + 1) % WB_HASH)
		if (s->wb.keys[h] == sector)
			return vsim_wb_slot(s, s->wb.slot[h]);
	return NULL;
}

/* Slot for sector (existing or new); NULL when the cache is full. */
uint8_t *vsim_wb_insert(struct vsim *s, uint64_t sector)
{
	uint32_t h;

	for (h = wb_hash(sector); s->wb.keys[h] != UINT64_MAX;
	     h = (h + 1) % WB_HASH)
		if (s->wb.keys[h] == sector) {
			s->wb.last = s->wb.slot[h];
			return vsim_wb_slot(s, s->wb.slot[h]);
		}
	if (s->wb.n == VSIM_WB_MAX)
		return NULL;
	s->wb.keys[h] = sector;
	s->wb.slot[h] = s->wb.n;
	s->wb.slot_sector[s->wb.n] = sector;
	s->wb.keyhash += vsim_pc_keyhash(sector);
	s->wb.last = s->wb.n;
	return vsim_wb_slot(s, s->wb.n++);
}

/*
 * An empty cache takes a loaded state's buffer (the mapping [map, map +
 * map_len)) as its storage: slot i at base + i * stride, room for all
 * VSIM_WB_MAX slots required. A 64 MiB cache then costs no copy and no
 * fresh pages on load. The mapping is the cache's until it is next emptied.
 */
bool vsim_wb_adopt(struct vsim *s, uint8_t *base, size_t stride,
		   uint8_t *map, size_t map_len)
{
	if (s->wb.n || base < map || stride < VSIM_SECTOR ||
	    (size_t)(base - map) > map_len ||
	    (map_len - (size_t)(base - map)) / stride < VSIM_WB_MAX)
		return false;
	s->wb.base = base;
	s->wb.stride = stride;
	s->wb.adopted = map;
	s->wb.adopted_len = map_len;
	return true;
}

void vsim_wb_clear(struct vsim *s)
{
	uint32_t i, h;

	if (!s->wb.n)
		return;
	vsim_pc_cleared(s);	/* a pre-copy's destination drops them too */
	s->wb.keyhash = 0;
	if (s->wb.n < WB_HASH / 16) {
		/* a few entries: empty just their buckets, not 4 MiB */
		for (i = 0; i < s->wb.n; i++) {
			for (h = wb_hash(s->wb.slot_sector[i]);
			     s->wb.keys[h] != s->wb.slot_sector[i];
			     h = (h + 1) % WB_HASH)
				;
			s->wb.keys[h] = UINT64_MAX;
		}
	} else {
		memset(s->wb.keys, 0xff, WB_HASH * sizeof(*s->wb.keys));
	}
	/* give the touched cache pages back */
	if (s->wb.adopted) {
		munmap(s->wb.adopted, s->wb.adopted_len);
		s->wb.adopted = NULL;
		s->wb.base = s->wb.data;
		s->wb.stride = VSIM_SECTOR;
	} else {
		madvise(s->wb.data, (size_t)s->wb.n * VSIM_SECTOR,
			MADV_DONTNEED);
	}
	s->wb.n = 0;
}

/* ---- backend ----------------------------------------------------------------- */

static int disk_read(struct vsim *s, uint64_t off, void *buf, size_t len)
{
	if (s->disk) {
		memcpy(buf, s->disk + off, len);
		return 0;
	}
	while (len) {
		ssize_t n = pread(s->backing_fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {	/* file shrank: reads as zeroes */
			memset(buf, 0, len);
			return 0;
		}
		buf = (uint8_t *)buf + n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int vsim_disk_write(struct vsim *s, uint64_t off, const void *buf, size_t len)
{
	if (s->disk) {
		memcpy(s->disk + off, buf, len);
		return 0;
	}
	while (len) {
		ssize_t n = pwrite(s->backing_fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf = (const uint8_t *)buf + n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int vsim_blk_flush(struct vsim *s)
{
	uint32_t i;
	int r = 0;

	for (i = 0; i < s->wb.n && r == 0; i++)
		r = vsim_disk_write(s, s->wb.slot_sector[i] * VSIM_SECTOR,
				    vsim_wb_slot(s, i), VSIM_SECTOR);
	if (r < 0)
		return r;
	vsim_wb_clear(s);
	if (s->backing_fd >= 0 && fdatasync(s->backing_fd) < 0)
		return -errno;
	s->flushes++;
	return 0;
}

/*
 * Move len bytes between the chain's iovecs (starting skip bytes in) and
 * the disk at byte offset off.
 */
static int blk_io(struct vsim *s, bool write, uint64_t off,
		  const struct iovec *iov, unsigned int n, size_t skip,
		  size_t len)
{
	uint8_t bounce[VSIM_SECTOR];
	unsigned int i;
	int r;

	if (s->wb.keys && (write || s->wb.n)) {
		/* sector by sector through the cache */
		for (; len; len -= VSIM_SECTOR, off += VSIM_SECTOR,
		     skip += VSIM_SECTOR) {
			uint64_t sec = off / VSIM_SECTOR;
			uint8_t *c;

			if (write) {
				s->wb_saved = false;
				c = vsim_wb_insert(s, sec);
				if (!c) {
					r = vsim_blk_flush(s);
					if (r < 0)
						return r;
					c = vsim_wb_insert(s, sec);
				}
				vsim_pc_before_write(s, s->wb.last);
				vsim_iov_from(iov, n, skip, c, VSIM_SECTOR);
				vsim_pc_written(s, s->wb.last);
				continue;
			}
			c = vsim_wb_find(s, sec);
			if (!c) {
				r = disk_read(s, off, bounce, VSIM_SECTOR);
				if (r < 0)
					return r;
				c = bounce;
			}
			vsim_iov_to(iov, n, skip, c, VSIM_SECTOR);
		}
		return 0;
	}
	for (i = 0; i < n && len; i++) {
		size_t l = iov[i].iov_len;
		uint8_t *p = iov[i].iov_base;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		p += skip;
		l -= skip;
		skip = 0;
		if (l > len)
			l = len;
		r = write ? vsim_disk_write(s, off, p, l) :
			    disk_read(s, off, p, l);
		if (r < 0)
			return r;
		off += l;
		len -= l;
	}
	return 0;
}

static bool range_ok(const struct vsim *s, uint64_t sector, uint64_t len)
{
	if (len % VSIM_SECTOR)
		return false;
	return sector <= s->o.capacity &&
	       len / VSIM_SECTOR <= s->o.capacity - sector;
}

void vsim_blk_kick(struct vsim *s, unsigned int idx)
{
	struct vsim_vq *vq = &s->vq[idx];
	struct vsim_chain c;
	unsigned int n;
	int r = 0;

	for (n = 0; n < VSIM_BUDGET; n++) {
		struct virtio_blk_outhdr h;
		uint8_t st = VIRTIO_BLK_S_OK;
		uint64_t dlen;
		uint32_t used = 1;

		r = vsim_vq_pop(s, vq, &c);
		if (r <= 0)
			break;
		if (c.out_len < sizeof(h)) {
			vsim_fail(s, "blk: request header of %llu bytes, "
				  "need %zu", (unsigned long long)c.out_len,
				  sizeof(h));
			r = -EIO;
			break;
		}
		if (c.in_len < 1) {
			vsim_fail(s, "blk: request without a writable status "
				  "byte");
			r = -EIO;
			break;
		}
		vsim_iov_from(c.iov, c.nout, 0, &h, sizeof(h));
		switch (h.type) {
		case VIRTIO_BLK_T_IN:
		case VIRTIO_BLK_T_GET_ID:
			if (c.out_len != sizeof(h)) {
				vsim_fail(s, "blk: read buffer in read-only "
					  "descriptors (device would write "
					  "into them)");
				r = -EIO;
			}
			break;
		}
		if (r < 0)
			break;
		switch (h.type) {
		case VIRTIO_BLK_T_IN:
			dlen = c.in_len - 1;
			if (!range_ok(s, h.sector, dlen)) {
				st = VIRTIO_BLK_S_IOERR;
				break;
			}
			if (blk_io(s, false, h.sector * VSIM_SECTOR,
				   c.iov + c.nout, c.nin, 0, dlen) < 0) {
				st = VIRTIO_BLK_S_IOERR;
				break;
			}
			used += (uint32_t)dlen;
			vq->st.bytes += dlen;
			break;
		case VIRTIO_BLK_T_OUT:
			dlen = c.out_len - sizeof(h);
			if (!range_ok(s, h.sector, dlen) ||
			    blk_io(s, true, h.sector * VSIM_SECTOR, c.iov,
				   c.nout, sizeof(h), dlen) < 0) {
				st = VIRTIO_BLK_S_IOERR;
				break;
			}
			vq->st.bytes += dlen;
			break;
		case VIRTIO_BLK_T_FLUSH:
			if (vsim_blk_flush(s) < 0)
				st = VIRTIO_BLK_S_IOERR;
			break;
		case VIRTIO_BLK_T_GET_ID: {
			char id[VIRTIO_BLK_ID_BYTES] = VSIM_BLK_ID;
			uint64_t l = c.in_len - 1 < sizeof(id) ?
				     c.in_len - 1 : sizeof(id);

			vsim_iov_to(c.iov + c.nout, c.nin, 0, id, l);
			used += (uint32_t)l;
			break;
		}
		default:
			st = VIRTIO_BLK_S_UNSUPP;
			break;
		}
		if (st != VIRTIO_BLK_S_OK)
			vq->st.errors++;
		vsim_iov_to(c.iov + c.nout, c.nin, c.in_len - 1, &st, 1);
		vq->st.requests++;
		vsim_vq_push(vq, c.head, used);
	}
	if (vq->resolved)
		vsim_vq_flush(s, vq);
	if (r < 0 || (n < VSIM_BUDGET && !vsim_vq_rearm(s, vq)))
		s->work &= ~(1ULL << idx);
}
