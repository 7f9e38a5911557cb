/* SPDX-License-Identifier: MIT */
/* vdpa-sim internals shared by the files in sim-device/. */
#ifndef VDPA_SIM_INT_H
#define VDPA_SIM_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <syslog.h>

#include <linux/vhost_types.h>
#include <linux/virtio_ring.h>
#include <vdpa-user/uapi-ext.h>
#include <vdpa-user/wire.h>

#include "fault.h"
#include "sim.h"
#include "wire-cred.h"

#define VSIM_STATUS_NEEDS_RESET	0x40
/* Chains processed per queue before other events get a turn. */
#define VSIM_BUDGET		256
/* Write-back cache capacity in 512-byte sectors (128 MiB). */
#define VSIM_WB_MAX		262144u
#define VSIM_SECTOR		512u
#define VSIM_MAC_TABLE_MAX	64	/* unicast + multicast entries */
#define VSIM_BLK_ID		"vdpa-sim-blk"
#define VSIM_MAX_PENDING	4	/* connections waiting for their EBUSY */

struct vsim_region {
	uint64_t uaddr, size;
	uint8_t *host;		/* host address of uaddr */
	void *map;		/* page-aligned mapping */
	size_t map_len;
};

struct vsim_map {
	uint64_t iova, last;	/* inclusive range */
	uint64_t uaddr;
	uint8_t *host;		/* host address of iova */
	uint8_t perm;		/* VHOST_ACCESS_* */
};

/* One descriptor chain as host iovecs: out (readable) first, then in. */
struct vsim_chain {
	uint16_t head;
	unsigned int nout, nin;
	uint64_t out_len, in_len;
	struct iovec *iov;	/* the queue's scratch array */
};

struct vsim_vq {
	uint32_t num;
	uint64_t desc_addr, avail_addr, used_addr;
	bool ready;
	int kick_fd, call_fd, err_fd;
	uint16_t last_avail;	/* next avail entry to take */
	uint16_t avail_cache;	/* last avail->idx read */
	uint16_t used_idx;	/* next used entry to write */
	uint16_t used_pub;	/* used->idx last published */
	bool resolved;
	/*
	 * Kernel personality: an address set on an enabled queue waits for
	 * the next enable, as vdpasim_queue_ready() reads it only then.
	 */
	bool addr_pending;
	uint64_t next_desc, next_avail, next_used;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	struct iovec *iov;
	unsigned int iov_cap;
	struct vsim_queue_stats st;
};

struct vsim_xfer {
	bool active;		/* between SET_DEVICE_STATE_FD and CHECK */
	bool started;		/* thread created */
	uint32_t dir;
	bool precopy;		/* phase PRECOPY (a round) */
	int fd;			/* the transfer fd (owned by the thread) */
	int cancel_fd;		/* eventfd: wake the thread to give up */
	pthread_t th;
	pthread_mutex_t m;
	pthread_cond_t c;
	bool done;
	int result;		/* 0 or -errno from the thread */
	uint8_t *buf;
	size_t len, cap;
	uint32_t crc;		/* load: CRC32C of buf[0, crc_at) */
	size_t crc_at;
	bool crash;		/* --crash-during this direction */
};

/* Write-back cache: open addressing sector -> slot. */
struct vsim_wb {
	uint64_t *keys;		/* VSIM_WB_MAX * 2 entries, UINT64_MAX empty */
	uint32_t *slot;
	uint64_t *slot_sector;	/* slot -> sector, in insertion order */
	uint8_t *data;		/* VSIM_WB_MAX * 512, lazily touched */
	uint32_t n;
	/*
	 * Slot i's 512 bytes are at base + i * stride: data and 512, or,
	 * after a state load, the received state itself (adopted, its
	 * entries 520 bytes apart) until the cache is next emptied.
	 */
	uint8_t *base;
	size_t stride;
	uint8_t *adopted;	/* mapping to munmap, or NULL */
	size_t adopted_len;
	uint32_t last;		/* slot of the last vsim_wb_insert() */
	uint64_t keyhash;	/* sum of vsim_pc_keyhash() over the sectors */
};

/*
 * Pre-copy (state.c, PROPOSAL VHOST_BACKEND_F_DEVICE_STATE_PRECOPY). Save
 * side: which cache slots went out in a round and which were written
 * since; load side: the rounds applied so far.
 */
struct vsim_pc_src {
	bool active;		/* round 0 was saved: a pre-copy runs */
	bool broken;		/* a round's transfer failed: END, or a full save */
	bool reset;		/* the cache was emptied since the last round */
	uint64_t id;		/* this pre-copy's identity, in every round */
	uint32_t rounds;	/* rounds saved */
	uint8_t *mark;		/* per slot: PC_NONE/NEW/CLEAN/DIRTY (state.c) */
	uint32_t *list;		/* slots to send next, each once */
	uint32_t nlist;
	uint32_t dirty;		/* of the listed: sent before (resent) */
	uint64_t datahash;	/* sum of vsim_pc_datahash() over the cache */
};
struct vsim_pc_dst {
	bool active;		/* round 0 applied */
	bool final;		/* the final (STOPPED) round applied */
	uint64_t id;
	uint32_t next;		/* round number expected next */
	uint64_t datahash;	/* as the source's, over what was applied */
};

struct vsim {
	struct vsim_opts o;
	char *backing;
	pthread_mutex_t lock;
	int epfd, stop_fd, listen_fd, conn_fd;
	char *sock_path;
	dev_t sock_dev;		/* what sock_path was made: removed at exit */
	ino_t sock_ino;		/* only if it is still ours */
	int pending[VSIM_MAX_PENDING];

	/* per connection */
	bool hello_done, owner;
	/*
	 * Who is "the owner" (owner.c): the process that sent SET_OWNER, as
	 * Linux keeps the owner's mm. Every request's sender comes from its
	 * SCM_CREDENTIALS (SO_PASSCRED), so a process that received the
	 * connection over SCM_RIGHTS or by fork is another sender.
	 */
	pid_t owner_pid, sender, peer_pid;
	unsigned int detached;	/* old owners' regions kept for their maps */
	uint64_t backend_features;
	struct vsim_region regions[VSIM_MAX_MEM_REGIONS];
	unsigned int nregions;
	struct vsim_map *maps;
	unsigned int nmaps, maps_cap, map_hint;
	bool in_batch;
	bool as_exists;	/* address space 0 made by the first UPDATE */
	/*
	 * Kernel personality: reset without IOTLB_PERSIST took the device's
	 * maps (vdpasim_do_reset) until the next IOTLB message rebuilds them.
	 */
	bool maps_dropped;
	int config_call_fd;

	/* device */
	uint64_t dev_features, backend_offered;
	uint64_t features;
	uint8_t status;
	bool suspended, broken;
	uint64_t fault_base_read;	/* fault.c: queues read since SUSPEND */
	char reason[128];
	unsigned int nvqs;
	struct vsim_vq vq[VSIM_MAX_VQS];
	uint64_t work;		/* bitmap of queues with budget left over */
	uint8_t config[128];	/* >= every config_size (96 for 6.12 blk) */
	uint32_t config_size;

	/* net */
	uint8_t mac[6];
	uint16_t curr_pairs;
	bool promisc, allmulti;
	bool alluni, nomulti, nouni, nobcast;
	struct {
		uint16_t n_uc, n_mc;	/* unicast entries first */
		uint8_t mac[VSIM_MAC_TABLE_MAX][6];
	} mt;

	/* blk */
	uint8_t *disk;		/* RAM disk or NULL */
	size_t disk_len;
	int backing_fd;
	struct vsim_wb wb;
	uint64_t flushes;
	/*
	 * The write-back cache went out with a device-state save and nothing
	 * was written since: a reset then drops nothing the state lacks.
	 */
	bool wb_saved;

	/* VSIM_REQ_GET_MODEL: "vdpa-sim://CLASS[?disk=ID]" */
	char model[VSIM_MODEL_MAX];

	struct vsim_xfer xfer;
	struct vsim_pc_src pcs;	/* pre-copy, save side */
	struct vsim_pc_dst pcd;	/* pre-copy, load side */
	unsigned int transfers;
	uint8_t msg[VSIM_MSG_MAX];
};

void vsim_log(struct vsim *s, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Set NEEDS_RESET, raise the config interrupt, stop the data path. */
void vsim_fail(struct vsim *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static inline bool vsim_has(const struct vsim *s, unsigned int bit)
{
	return s->features & (1ULL << bit);
}

/* vq.c: memory, IOTLB, rings */
int vsim_mem_add(struct vsim *s, const struct vsim_mem *m, int fd);
int vsim_mem_del(struct vsim *s, const struct vsim_mem *m);
int vsim_iotlb_msg(struct vsim *s, const struct vhost_msg_v2 *msg);
void vsim_mem_clear(struct vsim *s);
/* Host iovecs for [iova, iova+len) with perm; -EFAULT/-EPERM/-ENOBUFS. */
int vsim_xlate(struct vsim *s, uint64_t iova, uint64_t len, uint8_t perm,
	       struct iovec *iov, unsigned int max, unsigned int *n);
int vsim_vq_alloc(struct vsim_vq *vq, unsigned int max_num);
void vsim_vq_reset(struct vsim_vq *vq, uint32_t num);
/* 1 chain taken, 0 ring empty, < 0 device failed (NEEDS_RESET set). */
int vsim_vq_pop(struct vsim *s, struct vsim_vq *vq, struct vsim_chain *c);
void vsim_vq_push(struct vsim_vq *vq, uint16_t head, uint32_t len);
/* Publish used entries, signal the call fd if the driver wants it. */
void vsim_vq_flush(struct vsim *s, struct vsim_vq *vq);
/* After draining: re-arm notifications, true if more work appeared. */
bool vsim_vq_rearm(struct vsim *s, struct vsim_vq *vq);
bool vsim_vq_can_run(const struct vsim *s, const struct vsim_vq *vq);
size_t vsim_iov_from(const struct iovec *iov, unsigned int n, size_t skip,
		     void *dst, size_t len);
size_t vsim_iov_to(const struct iovec *iov, unsigned int n, size_t skip,
		   const void *src, size_t len);

/* net.c / blk.c */
int vsim_net_init(struct vsim *s);
void vsim_net_reset(struct vsim *s);
void vsim_net_kick(struct vsim *s, unsigned int idx);
int vsim_blk_init(struct vsim *s);
void vsim_blk_fini(struct vsim *s);
void vsim_blk_reset(struct vsim *s);
void vsim_blk_kick(struct vsim *s, unsigned int idx);
int vsim_blk_flush(struct vsim *s);
/* write-back cache */
static inline uint8_t *vsim_wb_slot(const struct vsim *s, uint32_t i)
{
	return s->wb.base + (size_t)i * s->wb.stride;
}
uint8_t *vsim_wb_find(struct vsim *s, uint64_t sector);
uint8_t *vsim_wb_insert(struct vsim *s, uint64_t sector);
bool vsim_wb_adopt(struct vsim *s, uint8_t *base, size_t stride,
		   uint8_t *map, size_t map_len);
void vsim_wb_clear(struct vsim *s);
int vsim_disk_write(struct vsim *s, uint64_t off, const void *buf, size_t len);

/* owner.c: ownership, VHOST_NEW_OWNER and VHOST_IOTLB_REMAP (proposal) */
/* (vsim_recv_cred(), the receive with the sender's pid: common/wire.c) */
void vsim_pass_cred(int sock);
/* 0, or what Linux answers a process that is not the owner (-EPERM). */
int vsim_owner_gate(const struct vsim *s, uint32_t req);
bool vsim_is_owner(const struct vsim *s);
int vsim_new_owner(struct vsim *s);
int vsim_iotlb_remap(struct vsim *s, const struct vhost_iotlb_msg *m);

/* state.c */
int vsim_state_set_fd(struct vsim *s, struct vhost_vdpa_device_state_fd *a,
		      int *fd);
int vsim_state_check(struct vsim *s);
void vsim_state_cancel(struct vsim *s);
int vsim_state_save(struct vsim *s, uint8_t **ret_buf, size_t *ret_len);
int vsim_state_load(struct vsim *s, const uint8_t *buf, size_t len);
/* pre-copy: offered (blk with a write-back cache and the state extension) */
bool vsim_pc_offered(const struct vsim *s);
/* hooks of the write-back cache: slot written; cache emptied */
void vsim_pc_before_write(struct vsim *s, uint32_t slot);
void vsim_pc_written(struct vsim *s, uint32_t slot);
void vsim_pc_cleared(struct vsim *s);
uint64_t vsim_pc_keyhash(uint64_t sector);
/* VHOST_VDPA_GET_PRECOPY_INFO, VHOST_VDPA_PRECOPY_END (also on reset) */
int vsim_pc_info(struct vsim *s, struct vhost_vdpa_precopy_info *ret);
void vsim_pc_end(struct vsim *s);
void vsim_pc_fini(struct vsim *s);

#endif
