/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user wire format (QEMU docs/interop/vhost-user.rst), the parts
 * `vdpa-user serve` speaks. Numbers as in the spec; payload structs are
 * the kernel's vhost_types.h ones where the spec reuses them.
 */
#ifndef VDPA_SERVE_VHOST_USER_H
#define VDPA_SERVE_VHOST_USER_H

#include <stdint.h>

enum vu_request {
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_LOG_BASE = 6,
	VU_SET_LOG_FD = 7,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
	VU_GET_CONFIG = 24,
	VU_SET_CONFIG = 25,
	VU_RESET_DEVICE = 34,
	VU_SET_DEVICE_STATE_FD = 42,
	VU_CHECK_DEVICE_STATE = 43,
	VU_MAX_REQUEST = 44,
};

/* header flags */
#define VU_VERSION_MASK		0x3u
#define VU_VERSION		0x1u
#define VU_FLAG_REPLY		(1u << 2)
#define VU_FLAG_NEED_REPLY	(1u << 3)

/* feature bits beyond the device's */
#define VU_F_PROTOCOL_FEATURES	30
#define VU_F_LOG_ALL		26	/* VHOST_F_LOG_ALL */

/* protocol feature bits */
#define VU_PF_MQ		0
#define VU_PF_LOG_SHMFD		1
#define VU_PF_REPLY_ACK		3
#define VU_PF_CONFIG		9
#define VU_PF_RESET_DEVICE	13
#define VU_PF_DEVICE_STATE	19
/*
 * PROPOSAL (docs/uapi-proposal.md, "vhost-user, for vdpa-user serve"):
 * pre-copy rounds of the device's state. Bit 31 keeps the requests out of
 * upstream's sequence.
 */
#define VU_PF_DEVICE_STATE_PRECOPY	49
#define VU_GET_PRECOPY_INFO		0x80000030u
#define VU_PRECOPY_END			0x80000031u

/* u64 payload of SET_VRING_KICK/CALL/ERR */
#define VU_VRING_IDX_MASK	0xffull
#define VU_VRING_NOFD		(1ull << 8)

/* the largest payload accepted (issue 8 section 4; the spec's are smaller) */
#define VU_MAX_PAYLOAD		4096u
/* VHOST_MEMORY_BASELINE_NREGIONS: fds one message may carry */
#define VU_MAX_REGIONS		8u
#define VU_MAX_FDS		VU_MAX_REGIONS
#define VU_MAX_CONFIG		256u

struct vu_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
} __attribute__((packed));

struct vu_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uaddr;		/* the front-end's virtual address */
	uint64_t mmap_offset;
};

struct vu_mem_hdr {
	uint32_t nregions;
	uint32_t padding;
};

struct vu_log {
	uint64_t mmap_size;
	uint64_t mmap_offset;
};

struct vu_config_hdr {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
};

struct vu_state_fd {
	uint32_t direction;	/* 0 save, 1 load */
	uint32_t phase;		/* 0 stopped */
};

/* GET_PRECOPY_INFO's reply (an 8-byte u64 errno instead on failure) */
struct vu_precopy_info {
	uint64_t initial_bytes;	/* never sent in this pre-copy yet */
	uint64_t dirty_bytes;	/* sent, then changed: to be sent again */
	uint32_t rounds;	/* rounds saved in this pre-copy so far */
	uint32_t flags;		/* 1: a pre-copy is active */
};

const char *vu_request_name(uint32_t req);

#endif
