/* SPDX-License-Identifier: MIT */
/*
 * vdpa-sim fault switches (--fault NAME[,NAME...]): each makes the device
 * break one rule of `vdpa-user conform`, so that the conformance suite can
 * be shown to catch it (tests/conform.sh, docs/conformance.md). The table
 * in fault.c names, for every fault, the conform check it must trip; the
 * hooks are one-line calls from the device code.
 */
#ifndef VDPA_SIM_FAULT_H
#define VDPA_SIM_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum vsim_fault_id {
	VSIM_FAULT_USED_AFTER_SUSPEND,
	VSIM_FAULT_BUFFER_AFTER_SUSPEND,
	VSIM_FAULT_CALL_AFTER_SUSPEND,
	VSIM_FAULT_BASE_OFF_BY_ONE,
	VSIM_FAULT_BASE_UNSTABLE,
	VSIM_FAULT_CONFIG_CHANGES,
	VSIM_FAULT_VRING_SET_REFUSED,
	VSIM_FAULT_RESUME_REPEAT,
	VSIM_FAULT_RESUME_DROPS_KICK,
	VSIM_FAULT_RESET_KEEPS_STATE,
	VSIM_FAULT_BLK_HALF_DONE,
	VSIM_FAULT_BLK_COMPLETE_TWICE,
	VSIM_FAULT_SLOW_SUSPEND,
	VSIM_FAULT_SLOW_RESUME,
	VSIM_FAULT_STATE_NO_ROUNDTRIP,
	VSIM_FAULT_LOAD_IGNORES_STATE,
	VSIM_FAULT_COUNT
};

/* slow-suspend, slow-resume: far above any scheduling delay, so a test can
 * set conform's --latency-limit between the two (tests/conform.sh: 400). */
#define VSIM_FAULT_SLOW_MS	600u

/* Which device classes a fault can show on (bit 1 net, bit 2 blk). */
#define VSIM_FAULT_NET	(1u << 1)
#define VSIM_FAULT_BLK	(1u << 2)

struct vsim_fault_info {
	const char *name;	/* --fault NAME */
	const char *check;	/* the `vdpa-user conform` check it trips */
	unsigned int classes;	/* VSIM_FAULT_NET | VSIM_FAULT_BLK */
	const char *what;	/* one line */
};

extern const struct vsim_fault_info vsim_faults[VSIM_FAULT_COUNT];

/*
 * "NAME[,NAME...]" into a mask (OR-ed into *mask). -EINVAL naming the
 * first unknown name in bad (may be NULL).
 */
int vsim_fault_parse(const char *list, uint32_t *mask, char *bad,
		     size_t badlen);
/* `vdpa-sim --fault help`: "NAME CHECK-ID CLASSES description" lines. */
void vsim_fault_print(FILE *f);

/* ---- hooks in the device code (fault.c) -------------------------------- */

struct vsim;

/* Is fault id switched on for this device? */
bool vsim_fault(const struct vsim *s, enum vsim_fault_id id);
/* SUSPEND, before the device stops: slow-suspend, blk-complete-twice. */
void vsim_fault_suspend(struct vsim *s);
/* RESUME, before the rings are looked at: slow-resume, resume-repeat. */
void vsim_fault_resume(struct vsim *s);
/* A kick on queue idx while suspended: *-after-suspend, blk-half-done. */
void vsim_fault_kick_suspended(struct vsim *s, unsigned int idx);
/* GET_VRING_BASE's answer for queue idx: base-off-by-one, base-unstable. */
uint16_t vsim_fault_base(struct vsim *s, unsigned int idx, uint16_t base);
/* GET_CONFIG's bytes while suspended: config-changes. */
void vsim_fault_config(struct vsim *s, uint8_t *buf, uint32_t len);

#endif
