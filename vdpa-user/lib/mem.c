// SPDX-License-Identifier: MIT
/* Driver memory: memfd-backed regions with a fixed IOVA, IOTLB v2 mapping. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/vhost.h>

#include "device.h"
#include "log.h"

struct vdpa_mem {
	int fd;
	void *base;
	size_t size;
	uint64_t iova;
	uint64_t offset;	/* of the region in fd */
	size_t used;		/* bump allocator cursor */
};

static size_t page_round(size_t size)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (size + pg - 1) & ~(pg - 1);
}

/*
 * grow: a file shorter than offset + size is grown to it (a memfd this
 * process just made); otherwise it must be that long already: the
 * region belongs to someone else's file, which is never resized.
 */
static int mem_adopt(int fd, uint64_t offset, size_t size, uint64_t iova,
		     bool grow, struct vdpa_mem **ret_mem)
{
	struct vdpa_mem *m;
	struct stat st;
	int err;

	if (fd < 0 || !size || !ret_mem) {
		err = -EINVAL;
		goto err_close_fd;
	}
	size = page_round(size);
	/* the rounded region must not wrap past 2^64 (it may end at 2^64-1) */
	if (!size || size - 1 > UINT64_MAX - iova ||
	    offset & ((uint64_t)sysconf(_SC_PAGESIZE) - 1) ||
	    offset > (uint64_t)INT64_MAX - size) {
		err = -EINVAL;
		goto err_close_fd;
	}
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto err_close_fd;
	}
	if ((uint64_t)st.st_size < offset + size) {
		if (!grow) {
			err = -EINVAL;
			goto err_close_fd;
		}
		if (ftruncate(fd, (off_t)(offset + size)) < 0) {
			err = -errno;
			goto err_close_fd;
		}
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		err = -ENOMEM;
		goto err_close_fd;
	}
	m->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		       (off_t)offset);
	if (m->base == MAP_FAILED) {
		err = -errno;
		free(m);
		goto err_close_fd;
	}
	m->fd = fd;
	m->size = size;
	m->iova = iova;
	m->offset = offset;
	*ret_mem = m;
	return 0;

err_close_fd:
	if (fd >= 0)
		close(fd);
	return err;
}

int vdpa_mem_create_from_fd(int fd, size_t size, uint64_t iova,
			    struct vdpa_mem **ret_mem)
{
	return mem_adopt(fd, 0, size, iova, true, ret_mem);
}

uint64_t mem_fd_offset(const struct vdpa_mem *mem)
{
	return mem->offset;
}

int vdpa_mem_create_from_fd_at(int fd, uint64_t offset, size_t size,
			       uint64_t iova, struct vdpa_mem **ret_mem)
{
	return mem_adopt(fd, offset, size, iova, false, ret_mem);
}

int vdpa_mem_create(size_t size, uint64_t iova, struct vdpa_mem **ret_mem)
{
	int fd;

	if (!size || !ret_mem)
		return -EINVAL;
	fd = memfd_create("vdpa-user-mem", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	return vdpa_mem_create_from_fd(fd, size, iova, ret_mem);
}

void vdpa_mem_destroy(struct vdpa_mem *mem)
{
	if (!mem)
		return;
	munmap(mem->base, mem->size);
	close(mem->fd);
	free(mem);
}

void *vdpa_mem_base(const struct vdpa_mem *mem) { return mem->base; }
size_t vdpa_mem_size(const struct vdpa_mem *mem) { return mem->size; }
int vdpa_mem_fd(const struct vdpa_mem *mem) { return mem->fd; }
size_t vdpa_mem_used(const struct vdpa_mem *mem) { return mem->used; }

uint64_t vdpa_mem_iova(const struct vdpa_mem *mem, const void *p)
{
	uintptr_t off = (uintptr_t)p - (uintptr_t)mem->base;

	if ((uintptr_t)p < (uintptr_t)mem->base || off >= mem->size)
		return UINT64_MAX;
	return mem->iova + off;
}

int vdpa_mem_set_used(struct vdpa_mem *mem, size_t used)
{
	if (!mem || used > mem->size)
		return -EINVAL;
	mem->used = used;
	return 0;
}

int vdpa_mem_alloc(struct vdpa_mem *mem, size_t size, size_t align,
		   void **ret_ptr)
{
	size_t off;

	if (!mem || !ret_ptr || !size || (align & (align - 1)))
		return -EINVAL;
	if (!align)
		align = 8;
	off = (mem->used + align - 1) & ~(align - 1);
	if (off > mem->size || size > mem->size - off)
		return -ENOMEM;
	mem->used = off + size;
	*ret_ptr = (char *)mem->base + off;
	return 0;
}

static int iotlb_msg(struct vdpa_dev *dev, uint8_t type, uint64_t iova,
		     uint64_t size, uint64_t uaddr, uint8_t perm)
{
	struct vhost_msg_v2 msg;
	int r;

	memset(&msg, 0, sizeof(msg));
	msg.type = VHOST_IOTLB_MSG_V2;
	msg.iotlb.type = type;
	msg.iotlb.iova = iova;
	msg.iotlb.size = size;
	msg.iotlb.uaddr = uaddr;
	msg.iotlb.perm = perm;
	r = vdpa_dev_call(dev, VSIM_REQ_IOTLB_MSG, &msg);
	if (r < 0)
		return r;
	return r == (int)sizeof(msg) ? 0 : -EIO;
}

static int mapped_slot(struct vdpa_dev *dev, const struct vdpa_mem *mem)
{
	int i;

	for (i = 0; i < VDPA_MAX_MAPPED; i++)
		if (dev->mapped[i] == mem)
			return i;
	return -1;
}

/*
 * One UPDATE or INVALIDATE. A single message is not bracketed by a batch:
 * BATCH_BEGIN/END would be two more round trips for nothing to group.
 * Several at once (mem_remap_all) are, when IOTLB_BATCH was negotiated.
 */
static int iotlb_one(struct vdpa_dev *dev, struct vdpa_mem *mem, uint8_t type)
{
	return iotlb_msg(dev, type, mem->iova, mem->size,
			 (uint64_t)(uintptr_t)mem->base, VHOST_ACCESS_RW);
}

static bool can_batch(struct vdpa_dev *dev)
{
	return vdpa_dev_backend_features(dev) &
	       (1ULL << VHOST_BACKEND_F_IOTLB_BATCH);
}

int vdpa_mem_map(struct vdpa_dev *dev, struct vdpa_mem *mem)
{
	const struct vdpa_caps *caps = NULL;
	struct vdpa_mem_arg add;
	struct vsim_mem del;
	int slot, err;

	if (!dev || !mem)
		return -EINVAL;
	if (mapped_slot(dev, mem) >= 0)
		return -EEXIST;
	slot = mapped_slot(dev, NULL);
	if (slot < 0)
		return -ENOSPC;
	err = dev_caps(dev, &caps);
	if (err < 0)
		return err;
	if (mem->iova < caps->iova_range.first ||
	    mem->iova + mem->size - 1 > caps->iova_range.last) {
		vdpa_log(LOG_ERR, "%s: iova 0x%llx+0x%zx outside the device's "
			 "range 0x%llx-0x%llx", dev->name,
			 (unsigned long long)mem->iova, mem->size,
			 (unsigned long long)caps->iova_range.first,
			 (unsigned long long)caps->iova_range.last);
		return -ERANGE;
	}
	add.m.uaddr = (uint64_t)(uintptr_t)mem->base;
	add.m.size = mem->size;
	add.m.offset = mem->offset;
	add.fd = mem->fd;
	err = vdpa_dev_call(dev, VSIM_REQ_ADD_MEM, &add);
	if (err < 0)
		return err;
	err = iotlb_one(dev, mem, VHOST_IOTLB_UPDATE);
	if (err < 0) {
		if (err == -EFAULT && vdpa_dev_is_kernel(dev))
			vdpa_log(LOG_ERR, "%s: IOTLB update of %zu bytes failed "
				 "(Linux reports every IOTLB error as EFAULT; "
				 "the usual cause is RLIMIT_MEMLOCK below the "
				 "pinned size)", dev->name, mem->size);
		del = add.m;
		vdpa_dev_call(dev, VSIM_REQ_DEL_MEM, &del);
		return err;
	}
	dev->mapped[slot] = mem;
	return 0;
}

int vdpa_mem_unmap(struct vdpa_dev *dev, struct vdpa_mem *mem)
{
	struct vsim_mem del;
	int slot, err;

	if (!dev || !mem)
		return -EINVAL;
	slot = mapped_slot(dev, mem);
	if (slot < 0)
		return -ENOENT;
	err = iotlb_one(dev, mem, VHOST_IOTLB_INVALIDATE);
	if (err < 0)
		return err;
	del.uaddr = (uint64_t)(uintptr_t)mem->base;
	del.size = mem->size;
	del.offset = mem->offset;
	err = vdpa_dev_call(dev, VSIM_REQ_DEL_MEM, &del);
	dev->mapped[slot] = NULL;
	return err;
}

int mem_remap_all(struct vdpa_dev *dev)
{
	bool batch = false;
	int i, err = 0, err2;

	for (i = 0; i < VDPA_MAX_MAPPED && !err; i++) {
		struct vdpa_mem *m = (struct vdpa_mem *)dev->mapped[i];

		if (!m)
			continue;
		if (!batch && can_batch(dev)) {
			err = iotlb_msg(dev, VHOST_IOTLB_BATCH_BEGIN, 0, 0, 0, 0);
			if (err < 0)
				return err;
			batch = true;
		}
		err = iotlb_one(dev, m, VHOST_IOTLB_INVALIDATE);
		if (!err)
			err = iotlb_one(dev, m, VHOST_IOTLB_UPDATE);
	}
	if (batch) {
		err2 = iotlb_msg(dev, VHOST_IOTLB_BATCH_END, 0, 0, 0, 0);
		if (!err)
			err = err2;
	}
	return err < 0 ? err : 0;
}
