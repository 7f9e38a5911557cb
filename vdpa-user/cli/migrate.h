/* SPDX-License-Identifier: MIT */
/* The front-end's side of a migration (docs/migration.md). */
#ifndef VDPA_CLI_MIGRATE_H
#define VDPA_CLI_MIGRATE_H

#include <stddef.h>
#include <stdint.h>

#include <vdpa-user/migrate.h>
#include <vdpa-user/state.h>

#include "devopen.h"
#include "workload.h"

struct mig_stats {
	double downtime_us;	/* SRC suspended -> DST running again */
	size_t state_bytes;
	bool rolled_back;	/* failed after suspend; SRC resumed */
	struct vdpa_mig_result times;	/* the library's per-step times */
};

enum mig_via { VIA_PIPE, VIA_SOCKET, VIA_FILE, VIA_DIRECT };

/* The CLI's driver queue idx (net or blk), or NULL. */
struct vdpa_vq *mig_driver_vq(struct cli_dev *drv, uint32_t idx);
/* The driver carries on with dev. */
void mig_set_driver_dev(struct cli_dev *drv, struct vdpa_dev *dev);
/*
 * The restore_class hook of the migration API: the CLI is the driver and
 * replays the net class state through its own control queue. opaque is
 * the struct cli_dev holding the driver.
 */
int mig_driver_restore_class(struct vdpa_dev *dev, const struct vdpa_state *s,
			     void *opaque);
/*
 * The driver-memory record of the migration stream (u64 IOVA, size and
 * allocator cursor, then cursor bytes), checked, as a vdpa_mem mapped into
 * no device. -EBADMSG malformed; vdpa_mem_create()'s errors.
 */
int mig_memory_record(const void *p, size_t len, struct vdpa_mem **ret);
/* Read fd to EOF (the front-end's side of a SAVE), at most cli.max_state. */
int mig_slurp(int fd, void **ret_buf, size_t *ret_len);

/* One in-process migration src -> dst, the blob moved through via. */
int mig_once(struct cli_dev *src, struct cli_dev *dst, struct vdpa_mem *mem,
	     enum mig_via via, struct mig_stats *st, char *err, size_t errlen);

/*
 * migrate --precopy: the library's pre-copy rounds first (PROPOSAL), with
 * the user's bounds; progress, when set, runs between rounds (the CLI's
 * traffic keeps going while the state moves).
 */
struct mig_precopy {
	bool on;
	uint64_t threshold;	/* bytes; 0: the library's 1 MiB */
	uint32_t rounds;	/* 0: the library's 16 */
	int (*progress)(const struct vdpa_mig_precopy_info *info,
			void *opaque);
	void *opaque;
};
int mig_once_precopy(struct cli_dev *src, struct cli_dev *dst,
		     enum mig_via via, const struct mig_precopy *pc,
		     struct mig_stats *st, char *err, size_t errlen);

int mig_parse_via(const char *s, enum mig_via *ret);

/* --iterations: 1..MIG_ITERATIONS_MAX */
#define MIG_ITERATIONS_MAX	1000000ull

/*
 * A refusal's reason, completed where the library's words leave the user
 * guessing: two blk simulators whose model URIs name different disks
 * ("...: the simulators do not share a disk (...)").
 */
void mig_explain(char *err, size_t len);

#endif
