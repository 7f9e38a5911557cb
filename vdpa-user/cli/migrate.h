/* SPDX-License-Identifier: MIT */
/* The front-end's side of a migration (docs/migration.md). */
#ifndef VDPA_CLI_MIGRATE_H
#define VDPA_CLI_MIGRATE_H

#include <stddef.h>
#include <stdint.h>

#include <vdpa-user/state.h>

#include "devopen.h"
#include "workload.h"

struct mig_stats {
	double downtime_us;	/* SRC suspended -> DST running again */
	size_t state_bytes;
	bool rolled_back;	/* failed after suspend; SRC resumed */
};

enum mig_via { VIA_PIPE, VIA_SOCKET, VIA_FILE };

/*
 * Refuse early (nothing stopped): no SUSPEND on src, or (dst_desc given) src and dst
 * configurations differ. 0 or -errno with the reason in err.
 */
int mig_precheck(struct cli_dev *src, const struct vdpa_state *dst_desc,
		 struct vdpa_state **ret_src_desc, char *err, size_t errlen);

/*
 * Ahead of the switch, while the source runs: negotiate the source's
 * features on dst and map the driver memory there.
 */
int mig_prepare(struct cli_dev *dst, struct cli_dev *src, struct vdpa_mem *mem,
		char *err, size_t errlen);

/* Suspend src and save its state (with the driver's class state). */
int mig_save(struct cli_dev *src, const struct vdpa_state *src_desc,
	     struct vdpa_state **ret, char *err, size_t errlen);

/*
 * Load s into dst; the driver (src->net / src->blk, rings in mem) continues
 * there. On success dst takes over the driver: dst->net/blk are set and
 * src's are cleared.
 */
int mig_load(struct cli_dev *dst, struct cli_dev *src_driver,
	     struct vdpa_mem *mem, const struct vdpa_state *s,
	     const struct vdpa_state *dst_desc, char *err, size_t errlen);

/* After a failure past suspend: RESUME, or reset and reload s into src. */
int mig_rollback(struct cli_dev *src, struct vdpa_mem *mem,
		 const struct vdpa_state *s, char *err, size_t errlen);

/* One in-process migration src -> dst, the blob moved through via. */
int mig_once(struct cli_dev *src, struct cli_dev *dst, struct vdpa_mem *mem,
	     enum mig_via via, struct mig_stats *st, char *err, size_t errlen);

int mig_parse_via(const char *s, enum mig_via *ret);

#endif
