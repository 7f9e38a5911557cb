// SPDX-License-Identifier: MIT
/*
 * vdpa-sim: who owns the device, and the 2024 "vdpa live update" proposal
 * (VHOST_NEW_OWNER, VHOST_IOTLB_REMAP; docs/uapi-proposal.md).
 *
 * Linux keeps the mm of the process that sent VHOST_SET_OWNER and refuses
 * (vhost_dev_check_owner(): -EPERM) every request routed through
 * vhost_dev_ioctl() and every IOTLB message from any other mm, while the
 * vhost-vdpa requests of vhost_vdpa_unlocked_ioctl()'s own switch are not
 * checked. A connection to the simulator is the open file; the sender of
 * each request is the process in its SCM_CREDENTIALS, so a process that got
 * the connection by fork or SCM_RIGHTS is "another mm" exactly as for the
 * kernel's fd.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/vhost.h>

#include "sim-int.h"

/*
 * Regions of an old owner stay mapped while IOTLB entries use them (the
 * kernel keeps the pinned pages), but no longer under the old owner's
 * addresses: they move above the user address space, where the new owner
 * can never name them, in 64 GiB slots.
 */
#define DETACH_BASE	0xffff800000000000ULL
#define DETACH_SLOT	(1ULL << 36)
#define DETACH_SLOTS	2048u

void vsim_pass_cred(int sock)
{
	int one = 1;

	setsockopt(sock, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
}

bool vsim_is_owner(const struct vsim *s)
{
	return s->owner && s->sender == s->owner_pid;
}

/*
 * What Linux answers a process that is not the owner, request by request
 * (drivers/vhost/vdpa.c vhost_vdpa_unlocked_ioctl(), 6.1 and 6.12): the
 * requests of its own switch go through, everything else reaches
 * vhost_dev_ioctl() and its vhost_dev_check_owner(). IOTLB messages are
 * refused in their handler (EFAULT on the wire, sim.c).
 */
int vsim_owner_gate(const struct vsim *s, uint32_t req)
{
	if (!s->owner || s->sender == s->owner_pid)
		return 0;
	switch (req) {
	case VSIM_REQ_HELLO:
	case VSIM_REQ_GET_MODEL:
	case VSIM_REQ_IOTLB_MSG:
	case VHOST_SET_OWNER:		/* vhost_dev_set_owner(): EBUSY */
	case VHOST_SET_BACKEND_FEATURES:
	case VHOST_GET_BACKEND_FEATURES:
	case VHOST_VDPA_GET_DEVICE_ID:
	case VHOST_VDPA_GET_STATUS:
	case VHOST_VDPA_SET_STATUS:
	case VHOST_VDPA_GET_CONFIG:
	case VHOST_VDPA_SET_CONFIG:
	case VHOST_GET_FEATURES:
	case VHOST_SET_FEATURES:
	case VHOST_VDPA_GET_VRING_NUM:
	case VHOST_VDPA_GET_GROUP_NUM:
	case VHOST_VDPA_GET_AS_NUM:
	case VHOST_VDPA_SET_CONFIG_CALL:
	case VHOST_VDPA_GET_IOVA_RANGE:
	case VHOST_VDPA_GET_CONFIG_SIZE:
	case VHOST_VDPA_GET_VQS_COUNT:
	case VHOST_VDPA_SUSPEND:
		return 0;
	case VHOST_VDPA_RESUME:		/* in the switch from 6.4 on */
		return s->o.no_resume ? -EPERM : 0;
	case VHOST_NEW_OWNER:		/* the point of the proposal */
		return s->o.new_owner ? 0 : -EPERM;
	default:
		/*
		 * vring requests, SET_LOG_*, the device-state proposal (a
		 * state fd is the owner's business), memory registration
		 * (the owner's address space) and unknown requests.
		 */
		return -EPERM;
	}
}

/* A free slot: no region there, none of the first n chosen ones. */
static int detach_slot(const struct vsim *s, uint64_t size,
		       const uint64_t *chosen, unsigned int n, uint64_t *ret)
{
	unsigned int k, i;
	bool used;

	if (size > DETACH_SLOT)
		return -ENOMEM;
	for (k = 0; k < DETACH_SLOTS; k++) {
		uint64_t a = DETACH_BASE + k * DETACH_SLOT;

		used = false;
		for (i = 0; i < s->nregions && !used; i++)
			used = s->regions[i].uaddr == a;
		for (i = 0; i < n && !used; i++)
			used = chosen[i] == a;
		if (!used) {
			*ret = a;
			return 0;
		}
	}
	return -ENOMEM;
}

static bool detached(uint64_t uaddr)
{
	return uaddr >= DETACH_BASE;
}

/*
 * VHOST_NEW_OWNER: the sender becomes the owner; the device keeps running
 * on the memory it has (the old owner's regions, now detached) until each
 * mapping is remapped at the new owner's addresses.
 */
int vsim_new_owner(struct vsim *s)
{
	uint64_t to[VSIM_MAX_MEM_REGIONS];
	unsigned int i, j;
	int r;

	if (!s->o.new_owner)
		return -EFAULT;	/* the owner's vring path: get_user(NULL) */
	if (!s->owner)
		return -EINVAL;
	if (s->sender == s->owner_pid)
		return -EBUSY;
	/* every slot chosen before anything moves: all or nothing */
	for (i = 0; i < s->nregions; i++) {
		to[i] = s->regions[i].uaddr;
		if (detached(to[i]))
			continue;
		r = detach_slot(s, s->regions[i].size, to, i, &to[i]);
		if (r < 0)
			return r;
	}
	for (i = 0; i < s->nregions; i++) {
		struct vsim_region *g = &s->regions[i];

		if (to[i] == g->uaddr)
			continue;
		for (j = 0; j < s->nmaps; j++) {
			struct vsim_map *m = &s->maps[j];

			if (m->uaddr >= g->uaddr && m->uaddr - g->uaddr < g->size)
				m->uaddr = to[i] + (m->uaddr - g->uaddr);
		}
		g->uaddr = to[i];
	}
	s->owner_pid = s->sender;
	s->detached++;
	vsim_log(s, LOG_INFO, "new owner: pid %d", (int)s->sender);
	return 0;
}

static struct vsim_region *region_of(struct vsim *s, uint64_t uaddr,
				     uint64_t size)
{
	unsigned int k;

	for (k = 0; k < s->nregions; k++) {
		struct vsim_region *g = &s->regions[k];

		if (uaddr >= g->uaddr && uaddr - g->uaddr < g->size &&
		    size <= g->size - (uaddr - g->uaddr))
			return g;
	}
	return NULL;
}

/*
 * VHOST_IOTLB_REMAP: the mapping [iova, iova+size) exactly as it was
 * made, now at uaddr of the (new) owner, in one of its regions. IOVA,
 * permissions and the device's view stay; like vdpa_sim with use_va, the
 * device reads the memory at the new address from then on. A detached
 * region nothing maps any more is released.
 */
int vsim_iotlb_remap(struct vsim *s, const struct vhost_iotlb_msg *m)
{
	struct vsim_region *g, *old;
	struct vsim_map *map = NULL;
	struct vsim_mem del;
	uint64_t last;
	unsigned int i;

	if (!(s->backend_offered & (1ULL << VHOST_BACKEND_F_IOTLB_REMAP)))
		return -EINVAL;	/* an unknown IOTLB type, as today */
	if (!m->size || m->iova + m->size - 1 < m->iova)
		return -EINVAL;
	last = m->iova + m->size - 1;
	for (i = 0; i < s->nmaps; i++)
		if (s->maps[i].iova <= last && s->maps[i].last >= m->iova) {
			map = &s->maps[i];
			break;
		}
	if (!map)
		return -ENOENT;
	if (map->iova != m->iova || map->last != last)
		return -EINVAL;	/* not one whole mapping */
	if (m->perm && m->perm != map->perm)
		return -EINVAL;
	if (detached(m->uaddr))
		return -EFAULT;
	g = region_of(s, m->uaddr, m->size);
	if (!g)
		return -EFAULT;
	old = region_of(s, map->uaddr, m->size);
	map->uaddr = m->uaddr;
	map->host = g->host + (m->uaddr - g->uaddr);
	s->map_hint = 0;
	for (i = 0; i < s->nvqs; i++)
		s->vq[i].resolved = false;	/* rings resolve anew */
	if (old && old != g && detached(old->uaddr)) {
		del.uaddr = old->uaddr;
		del.size = old->size;
		del.offset = 0;
		vsim_mem_del(s, &del);	/* -EBUSY while others still use it */
	}
	return 0;
}
