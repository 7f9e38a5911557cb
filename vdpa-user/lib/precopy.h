/* SPDX-License-Identifier: MIT */
/*
 * Pre-copy rounds of a migration (PROPOSAL; docs/migration.md "Pre-copy"):
 * the library's framing around a device's round, the order checks, and the
 * requests of VHOST_BACKEND_F_DEVICE_STATE_PRECOPY.
 */
#ifndef VDPA_LIB_PRECOPY_H
#define VDPA_LIB_PRECOPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vdpa_dev;
struct vdpa_mig_precopy_info;

/*
 * A round as the library frames it, little endian:
 *   u32 magic "VPCR", u16 version 1, u16 header length 48,
 *   u32 CRC32C of the whole record with this field 0, u32 round,
 *   u64 pre-copy id, u64 device bytes, u64 pending after the round,
 *   u32 flags 0, u32 reserved 0, then the device's own round.
 */
#define PC_MAGIC	0x52435056u	/* "VPCR" */
#define PC_VERSION	1
#define PC_HDR		48u

struct mig_pc_src {
	uint64_t id;		/* random, chosen at round 0 */
	uint32_t rounds;
	uint64_t sent;		/* bytes of the rounds */
	bool failed;		/* a round failed: no more */
	uint64_t prev;		/* the estimate at the previous done() */
};

struct mig_pc_dst {
	uint64_t id;
	uint32_t next;		/* round expected next */
	bool started;		/* round 0 applied */
};

/* Can dev pre-copy as a source? 0, or -EOPNOTSUPP and why in err. */
int precopy_src_can(struct vdpa_dev *dev, char *err, size_t errlen);
/* Does dev offer pre-copy (as a destination)? */
bool precopy_dst_can(struct vdpa_dev *dev);

int precopy_src_info(struct vdpa_dev *dev, const struct mig_pc_src *pc,
		     struct vdpa_mig_precopy_info *ret, char *err,
		     size_t errlen);
int precopy_src_round(struct vdpa_dev *dev, size_t cap, struct mig_pc_src *pc,
		      void **ret_buf, size_t *ret_len, uint64_t *ret_pending,
		      char *err, size_t errlen);
/* vdpa_mig_src_precopy_done() */
bool precopy_src_done(struct vdpa_dev *dev, struct mig_pc_src *pc,
		      uint64_t threshold, uint32_t max_rounds,
		      uint64_t *ret_pending);
/* The device forgets the pre-copy (a migration that never switched over). */
void precopy_src_end(struct vdpa_dev *dev, struct mig_pc_src *pc);

/*
 * Framing and CRC of a round, nothing else: 0, or -EBADMSG /
 * -EPROTONOSUPPORT with one line in err.
 */
int precopy_record_check(const void *buf, size_t len, char *err,
			 size_t errlen);
/* final_done: the destination has its final state already. */
int precopy_dst_apply(struct vdpa_dev *dev, struct mig_pc_dst *pc,
		      bool final_done, const void *buf, size_t len, char *err,
		      size_t errlen);

#endif
