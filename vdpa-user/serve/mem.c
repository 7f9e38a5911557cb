// SPDX-License-Identifier: MIT
/*
 * Guest memory from SET_MEM_TABLE: each region's fd mmapped here and
 * mapped into the device's IOTLB at IOVA == guest physical address, so the
 * device works on the guest's rings and buffers directly.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serve.h"

void srv_mem_free(struct srv *s)
{
	unsigned int i;

	for (i = 0; i < s->nregs; i++) {
		if (s->regs[i].mem) {
			vdpa_mem_unmap(s->dev, s->regs[i].mem);
			vdpa_mem_destroy(s->regs[i].mem);
		}
	}
	memset(s->regs, 0, sizeof(s->regs));
	s->nregs = 0;
}

static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Everything about the table that can be checked without mapping it. */
static int check_regions(const struct vu_region *r, unsigned int n,
			 const int *fds, char *err, size_t errlen)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	unsigned int i, j;

	if (!n) {
		snprintf(err, errlen, "SET_MEM_TABLE: no regions");
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		struct stat st;

		if (!r[i].size) {
			snprintf(err, errlen, "SET_MEM_TABLE: region %u is empty",
				 i);
			return -EINVAL;
		}
		if (r[i].gpa + r[i].size < r[i].gpa ||
		    r[i].uaddr + r[i].size < r[i].uaddr ||
		    r[i].mmap_offset + r[i].size < r[i].mmap_offset) {
			snprintf(err, errlen, "SET_MEM_TABLE: region %u "
				 "overflows (gpa 0x%" PRIx64 " size 0x%" PRIx64
				 ")", i, r[i].gpa, r[i].size);
			return -EINVAL;
		}
		if ((r[i].gpa | r[i].size | r[i].mmap_offset) & (page - 1)) {
			snprintf(err, errlen, "SET_MEM_TABLE: region %u not "
				 "page-aligned (gpa 0x%" PRIx64 " size 0x%"
				 PRIx64 " offset 0x%" PRIx64 ")", i, r[i].gpa,
				 r[i].size, r[i].mmap_offset);
			return -EINVAL;
		}
		if (fstat(fds[i], &st) < 0 || !S_ISREG(st.st_mode)) {
			snprintf(err, errlen, "SET_MEM_TABLE: region %u: fd is "
				 "not a memory file", i);
			return -EINVAL;
		}
		/* mmap_offset + size cannot wrap (checked above) */
		if ((uint64_t)st.st_size < r[i].mmap_offset + r[i].size ||
		    r[i].mmap_offset + r[i].size > (uint64_t)INT64_MAX) {
			snprintf(err, errlen, "SET_MEM_TABLE: region %u reaches "
				 "past its fd (0x%" PRIx64 " > file size 0x%"
				 PRIx64 ")", i, r[i].mmap_offset + r[i].size,
				 (uint64_t)st.st_size);
			return -EINVAL;
		}
		for (j = 0; j < i; j++) {
			if (overlap(r[i].gpa, r[i].size, r[j].gpa, r[j].size) ||
			    overlap(r[i].uaddr, r[i].size, r[j].uaddr,
				    r[j].size)) {
				snprintf(err, errlen, "SET_MEM_TABLE: regions %u "
					 "and %u overlap", j, i);
				return -EINVAL;
			}
		}
	}
	return 0;
}

static bool same_table(const struct srv *s, const struct vu_region *r,
		       unsigned int n, const int *fds)
{
	unsigned int i;

	if (n != s->nregs)
		return false;
	for (i = 0; i < n; i++) {
		struct stat a, b;

		if (r[i].gpa != s->regs[i].gpa || r[i].size != s->regs[i].size ||
		    r[i].uaddr != s->regs[i].uaddr ||
		    r[i].mmap_offset != s->regs[i].offset)
			return false;
		if (fstat(fds[i], &a) < 0 ||
		    fstat(vdpa_mem_fd(s->regs[i].mem), &b) < 0 ||
		    a.st_dev != b.st_dev || a.st_ino != b.st_ino)
			return false;
	}
	return true;
}

int srv_set_mem_table(struct srv *s, struct srv_msg *m, char *err,
		      size_t errlen)
{
	struct vu_region r[VU_MAX_REGIONS];
	struct srv_region nr[VU_MAX_REGIONS];
	struct vu_mem_hdr mh;
	unsigned int i, n;
	int ret;

	memcpy(&mh, m->payload, sizeof(mh));
	n = mh.nregions;
	memcpy(r, m->payload + sizeof(mh), n * sizeof(r[0]));
	ret = check_regions(r, n, m->fds, err, errlen);
	if (ret < 0)
		return ret;
	if (s->nregs && same_table(s, r, n, m->fds)) {
		srv_msg_close_fds(m);
		return 0;
	}
	if ((s->started && !s->suspended) || s->relay) {
		snprintf(err, errlen, "SET_MEM_TABLE: guest memory changed while "
			 "the device runs (not supported)");
		return -EBUSY;
	}
	/* stopped (GET_VRING_BASE): it restarts afresh on the new memory */
	if (s->started) {
		srv_state_free(s);
		srv_dev_reset(s);
	}
	memset(nr, 0, sizeof(nr));
	for (i = 0; i < n; i++) {
		/* vdpa_mem takes the fd over, also on failure */
		int fd = m->fds[i];

		m->fds[i] = -1;
		/* at its offset in the fd, which is never resized */
		ret = vdpa_mem_create_from_fd_at(fd, r[i].mmap_offset,
						 r[i].size, r[i].gpa,
						 &nr[i].mem);
		if (ret < 0) {
			snprintf(err, errlen, "SET_MEM_TABLE: region %u: mmap: "
				 "%s", i, strerror(-ret));
			goto err_free;
		}
		nr[i].gpa = r[i].gpa;
		nr[i].size = r[i].size;
		nr[i].uaddr = r[i].uaddr;
		nr[i].offset = r[i].mmap_offset;
		nr[i].host = vdpa_mem_base(nr[i].mem);
	}
	srv_mem_free(s);
	for (i = 0; i < n; i++) {
		ret = vdpa_mem_map(s->dev, nr[i].mem);
		if (ret < 0) {
			snprintf(err, errlen, "SET_MEM_TABLE: region %u (gpa 0x%"
				 PRIx64 " size 0x%" PRIx64 ") into the device: "
				 "%s", i, nr[i].gpa, nr[i].size,
				 strerror(-ret));
			goto err_unmap;
		}
	}
	memcpy(s->regs, nr, sizeof(nr));
	s->nregs = n;
	m->nfds = 0;
	return 0;

err_unmap:
	while (i--)
		vdpa_mem_unmap(s->dev, nr[i].mem);
	i = n;
err_free:
	while (i--)
		vdpa_mem_destroy(nr[i].mem);
	return ret;
}

bool srv_va_to_gpa(const struct srv *s, uint64_t va, uint64_t len,
		   uint64_t *ret_gpa)
{
	unsigned int i;

	for (i = 0; i < s->nregs; i++) {
		const struct srv_region *r = &s->regs[i];

		if (va >= r->uaddr && len <= r->size &&
		    va - r->uaddr <= r->size - len) {
			*ret_gpa = r->gpa + (va - r->uaddr);
			return true;
		}
	}
	return false;
}

static const struct srv_region *gpa_region(const struct srv *s, uint64_t gpa,
					   uint64_t len)
{
	unsigned int i;

	for (i = 0; i < s->nregs; i++) {
		const struct srv_region *r = &s->regs[i];

		if (gpa >= r->gpa && len <= r->size &&
		    gpa - r->gpa <= r->size - len)
			return r;
	}
	return NULL;
}

bool srv_gpa_valid(const struct srv *s, uint64_t gpa, uint64_t len)
{
	return gpa_region(s, gpa, len) != NULL;
}

void *srv_gpa_host(const struct srv *s, uint64_t gpa, uint64_t len)
{
	const struct srv_region *r = gpa_region(s, gpa, len);

	return r ? r->host + (gpa - r->gpa) : NULL;
}
