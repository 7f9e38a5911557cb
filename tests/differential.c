// SPDX-License-Identifier: MIT
/*
 * differential: one fixed script of vhost-vdpa requests, good and bad, run
 * against a device; every answer becomes a line "type.step: ret=R [val=V]".
 * The kernel's answers (Linux vhost-vdpa + vdpa_sim, recorded by
 * `make check-kernel` into tests/differential.expected) are compared with
 * the simulator's, so drift in vdpa-sim shows up in `make check`.
 *
 * Environment:
 *   VDPA_DIFF_DEV       device to run against (/dev/vhost-vdpa-N or sim:PATH);
 *                       unset: vdpa-sim net + blk devices in threads
 *   VDPA_DIFF_BLK_DEV   a second device (the rig passes the blk one)
 *   VDPA_DIFF_RECORD    write the answers to this file ("-" = stdout) and
 *                       do not compare (the rig uses this in the guest)
 *   VDPA_DIFF_EXPECTED  answers to compare with (default
 *                       tests/differential.expected; missing = skip, 77)
 *   VDPA_DIFF_KERNEL    the kernel those answers are from, 6.1 (default) or
 *                       6.12: the simulator runs with that personality
 *                       (vdpa-sim --kernel). With neither this nor
 *                       VDPA_DIFF_EXPECTED set, both kernels are compared,
 *                       6.12 with tests/differential-6.12.expected.
 * Known, explained differences are listed in known_diffs[] below and in
 * docs/differential.md; any other difference fails.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <vdpa-user/uapi-ext.h>
#include <vdpa-user/vdpa-user.h>
#include <vdpa-user/wire.h>

#include "sim.h"
#include "tap.h"

#define MAX_LINES	256
#define LINE_LEN	160

struct answers {
	char line[MAX_LINES][LINE_LEN];
	int n;
	int dropped;		/* answers that did not fit */
};

/* One device under test. */
struct run {
	struct vdpa_dev *dev;
	struct answers *out;
	const char *type;	/* "net", "blk", "dev<id>" */
	uint32_t nvqs;
	uint16_t vq_max;
	uint32_t config_size;
	uint64_t features;
	uint64_t backend;
	int steps;		/* answers emitted (or dropped) */
};

/*
 * Differences between the simulator and Linux 6.1 vhost-vdpa + vdpa_sim
 * that are understood: step ("type.step", or "step" for every type), the
 * simulator's exact answer, and why. Accepted ones pass; todo ones are
 * simulator deviations still to fix and show as TAP "# TODO" (they do not
 * fail the run). A changed simulator answer is not covered and fails.
 * docs/differential.md explains each; keep the two in step.
 */
struct known_diff {
	const char *step;
	const char *sim;
	bool todo;
	const char *why;
	const char *kernel;	/* only for this personality; NULL: any */
};

static const char *kernel = "6.1";	/* the personality compared */

static const struct known_diff known_diffs[] = {
	{ "net.get-features", "ret=0 val=0x338970028", false,
	  "sim also offers STATUS, CTRL_RX, CTRL_RX_EXTRA, INDIRECT_DESC, "
	  "EVENT_IDX", NULL },
	{ "blk.get-features", "ret=0 val=0x330000246", false,
	  "sim offers INDIRECT_DESC, EVENT_IDX; not TOPOLOGY, DISCARD, "
	  "WRITE_ZEROES, ANY_LAYOUT", NULL },
	{ "get-backend-features", "ret=0 val=0x56", false,
	  "sim: one address space (no IOTLB_ASID), offers "
	  "ENABLE_AFTER_DRIVER_OK", "6.1" },
	{ "get-backend-features", "ret=0 val=0x76", false,
	  "sim: one address space (no IOTLB_ASID), no IOTLB_PERSIST (its "
	  "mappings live in the simulator process, not the parent)", "6.12" },
	{ "net.get-group-num", "ret=0 val=1", false,
	  "sim has one vq group; vdpasim_net puts the cvq in group 1", NULL },
	{ "net.get-as-num", "ret=0 val=1", false,
	  "sim has one address space; vdpasim_net has 2 (shadow cvq)", NULL },
	{ "net.get-vring-group-last", "ret=0 val=0", false,
	  "sim has one vq group; vdpasim_net puts the cvq in group 1", NULL },
	{ "set-vring-num-above-max", "ret=-EINVAL", false,
	  "sim refuses a size above GET_VRING_NUM; Linux 6.1 stores it "
	  "unchecked (6.12 refuses it too)", "6.1" },
	{ NULL, NULL, false, NULL, NULL },
};

static const char *errname(int e)
{
	static const struct { int e; const char *n; } t[] = {
		{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EIO, "EIO" },
		{ E2BIG, "E2BIG" }, { EBADF, "EBADF" }, { EAGAIN, "EAGAIN" },
		{ ENOMEM, "ENOMEM" }, { EFAULT, "EFAULT" }, { EBUSY, "EBUSY" },
		{ EEXIST, "EEXIST" }, { ENODEV, "ENODEV" }, { EINVAL, "EINVAL" },
		{ ENOSPC, "ENOSPC" }, { ERANGE, "ERANGE" }, { ENOTTY, "ENOTTY" },
		{ ENOSYS, "ENOSYS" }, { ENOBUFS, "ENOBUFS" },
		{ EOPNOTSUPP, "EOPNOTSUPP" }, { ENOTCONN, "ENOTCONN" },
		{ EPROTO, "EPROTO" }, { EMSGSIZE, "EMSGSIZE" },
	};
	static char buf[16];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].e == e)
			return t[i].n;
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

static void emit(struct run *r, const char *step, int ret, const char *fmt,
		 ...) __attribute__((format(printf, 4, 5)));
static void emit(struct run *r, const char *step, int ret, const char *fmt,
		 ...)
{
	char val[LINE_LEN] = "";
	char *l;
	va_list ap;

	r->steps++;
	if (r->out->n >= MAX_LINES) {
		r->out->dropped++;
		return;
	}
	if (ret >= 0 && fmt) {
		va_start(ap, fmt);
		vsnprintf(val, sizeof(val), fmt, ap);
		va_end(ap);
	}
	l = r->out->line[r->out->n++];
	if (ret < 0)
		snprintf(l, LINE_LEN, "%s.%s: ret=-%s", r->type, step,
			 errname(-ret));
	else
		snprintf(l, LINE_LEN, "%s.%s: ret=%d%s%s", r->type, step, ret,
			 val[0] ? " " : "", val);
}

static int call(struct run *r, unsigned long req, void *arg)
{
	return vdpa_dev_call(r->dev, req, arg);
}

static void step_u64(struct run *r, const char *step, unsigned long req,
		     uint64_t *ret_v)
{
	uint64_t v = 0;
	int ret = call(r, req, &v);

	emit(r, step, ret, "val=0x%" PRIx64, v);
	if (ret >= 0 && ret_v)
		*ret_v = v;
}

static void step_u32(struct run *r, const char *step, unsigned long req,
		     uint32_t *ret_v)
{
	uint32_t v = 0;
	int ret = call(r, req, &v);

	emit(r, step, ret, "val=%" PRIu32, v);
	if (ret >= 0 && ret_v)
		*ret_v = v;
}

static void step_set_u64(struct run *r, const char *step, unsigned long req,
			 uint64_t v)
{
	emit(r, step, call(r, req, &v), NULL);
}

static void step_status(struct run *r, const char *step, uint8_t s)
{
	emit(r, step, call(r, VHOST_VDPA_SET_STATUS, &s), NULL);
}

static void step_get_status(struct run *r, const char *step)
{
	uint8_t s = 0xff;
	int ret = call(r, VHOST_VDPA_GET_STATUS, &s);

	emit(r, step, ret, "val=0x%02x", s);
}

static void step_vring(struct run *r, const char *step, unsigned long req,
		       uint32_t idx, uint32_t num, bool show)
{
	struct vhost_vring_state s = { .index = idx, .num = num };
	int ret = call(r, req, &s);

	if (show)
		emit(r, step, ret, "val=%u", s.num);
	else
		emit(r, step, ret, NULL);
}

static void step_config(struct run *r, const char *step, uint32_t off,
			uint32_t len, bool set)
{
	union {
		struct vhost_vdpa_config c;
		uint8_t raw[sizeof(struct vhost_vdpa_config) + 512];
	} a = { .raw = { 0 } };
	char hex[2 * 16 + 1] = "";
	uint32_t i;
	int ret;

	if (len > sizeof(a.raw) - sizeof(a.c)) {
		/* never let the device write past our buffer */
		len = sizeof(a.raw) - sizeof(a.c);
	}
	a.c.off = off;
	a.c.len = len;
	ret = call(r, set ? VHOST_VDPA_SET_CONFIG : VHOST_VDPA_GET_CONFIG, &a);
	for (i = 0; !set && i < len && i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", a.c.buf[i]);
	emit(r, step, ret, hex[0] ? "val=%s" : NULL, hex);
}

static void step_iotlb(struct run *r, const char *step, uint8_t type,
		       uint64_t iova, uint64_t size, uint64_t uaddr)
{
	struct vhost_msg_v2 m = {
		.type = VHOST_IOTLB_MSG_V2,
		.iotlb = {
			.iova = iova, .size = size, .uaddr = uaddr,
			.perm = VHOST_ACCESS_RW, .type = type,
		},
	};

	emit(r, step, call(r, VSIM_REQ_IOTLB_MSG, &m), NULL);
}

/* Requests the library sent to run_dev's device (vdpa_set_trace()). */
static struct {
	const struct vdpa_dev *dev;
	int requests;
} traced;

/*
 * What vhost-vdpa answers a process that is not the owner (live update,
 * docs/live-update.md): a child forked after SET_OWNER sends each request
 * on the same fd (Linux compares current->mm with the owner's; the
 * simulator the sender's SCM_CREDENTIALS pid) and reports the answers
 * through a pipe. The device is reset and has mem mapped at 1 MiB.
 */
#define NOT_OWNER_STEPS 22
static const char *const not_owner_step[NOT_OWNER_STEPS] = {
	"not-owner.set-owner", "not-owner.get-device-id",
	"not-owner.get-status", "not-owner.set-status-0",
	"not-owner.get-features", "not-owner.get-backend-features",
	"not-owner.set-backend-features", "not-owner.get-config",
	"not-owner.get-vqs-count", "not-owner.get-iova-range",
	"not-owner.suspend", "not-owner.resume-raw", "not-owner.new-owner",
	"not-owner.set-vring-num", "not-owner.get-vring-base",
	"not-owner.set-vring-enable", "not-owner.get-vring-group",
	"not-owner.set-vring-kick-unbind", "not-owner.set-config-call-unbind",
	"not-owner.iotlb-update", "not-owner.iotlb-invalidate",
	"not-owner.iotlb-update-size-0",
};

static void not_owner_child(struct run *r, uint64_t uaddr, int *res)
{
	union {
		struct vhost_vdpa_config c;
		uint8_t raw[sizeof(struct vhost_vdpa_config) + 8];
	} cfg = { .raw = { 0 } };
	struct vhost_vdpa_iova_range range;
	struct vhost_vring_state st = { .index = 0, .num = r->vq_max };
	struct vhost_vring_file f = { .index = 0, .fd = -1 };
	struct vhost_msg_v2 m = { .type = VHOST_IOTLB_MSG_V2 };
	uint64_t u64 = 1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2 |
		       1ULL << VHOST_BACKEND_F_IOTLB_BATCH |
		       1ULL << VHOST_BACKEND_F_SUSPEND;
	uint32_t u32;
	uint8_t u8 = 0;
	int k = 0, minus1 = -1;

	res[k++] = call(r, VHOST_SET_OWNER, NULL);
	res[k++] = call(r, VHOST_VDPA_GET_DEVICE_ID, &u32);
	res[k++] = call(r, VHOST_VDPA_GET_STATUS, &u8);
	u8 = 0;
	res[k++] = call(r, VHOST_VDPA_SET_STATUS, &u8);
	res[k++] = call(r, VHOST_GET_FEATURES, &u64);
	res[k++] = call(r, VHOST_GET_BACKEND_FEATURES, &u64);
	u64 = 1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2 |
	      1ULL << VHOST_BACKEND_F_IOTLB_BATCH |
	      1ULL << VHOST_BACKEND_F_SUSPEND;
	res[k++] = call(r, VHOST_SET_BACKEND_FEATURES, &u64);
	cfg.c.len = r->config_size < 8 ? r->config_size : 8;
	res[k++] = call(r, VHOST_VDPA_GET_CONFIG, &cfg);
	res[k++] = call(r, VHOST_VDPA_GET_VQS_COUNT, &u32);
	res[k++] = call(r, VHOST_VDPA_GET_IOVA_RANGE, &range);
	res[k++] = call(r, VHOST_VDPA_SUSPEND, NULL);
	res[k++] = call(r, VHOST_VDPA_RESUME, NULL);
	res[k++] = call(r, VHOST_NEW_OWNER, NULL);
	res[k++] = call(r, VHOST_SET_VRING_NUM, &st);
	res[k++] = call(r, VHOST_GET_VRING_BASE, &st);
	st.num = 0;
	res[k++] = call(r, VHOST_VDPA_SET_VRING_ENABLE, &st);
	res[k++] = call(r, VHOST_VDPA_GET_VRING_GROUP, &st);
	res[k++] = call(r, VHOST_SET_VRING_KICK, &f);
	res[k++] = call(r, VHOST_VDPA_SET_CONFIG_CALL, &minus1);
	m.iotlb.type = VHOST_IOTLB_UPDATE;
	m.iotlb.iova = 0x40000000;
	m.iotlb.size = 0x1000;
	m.iotlb.uaddr = uaddr;
	m.iotlb.perm = VHOST_ACCESS_RW;
	res[k++] = call(r, VSIM_REQ_IOTLB_MSG, &m);
	m.iotlb.type = VHOST_IOTLB_INVALIDATE;
	m.iotlb.iova = 0x100000;
	res[k++] = call(r, VSIM_REQ_IOTLB_MSG, &m);
	m.iotlb.type = VHOST_IOTLB_UPDATE;
	m.iotlb.size = 0;
	res[k++] = call(r, VSIM_REQ_IOTLB_MSG, &m);
}

static void run_not_owner(struct run *r, uint64_t uaddr)
{
	int res[NOT_OWNER_STEPS + 1], p[2], st = -1, i;
	ssize_t n = -1;
	pid_t pid = -1;

	for (i = 0; i <= NOT_OWNER_STEPS; i++)
		res[i] = -EIO;
	if (pipe(p) == 0) {
		fflush(NULL);
		pid = fork();
		if (pid == 0) {
			close(p[0]);
			res[NOT_OWNER_STEPS] = traced.requests;
			not_owner_child(r, uaddr, res);
			/* the child's requests, for the parent's count */
			res[NOT_OWNER_STEPS] = traced.requests -
					       res[NOT_OWNER_STEPS];
			_exit(write(p[1], res, sizeof(res)) == sizeof(res) ?
			      0 : 1);
		}
		close(p[1]);
		if (pid > 0) {
			do {
				n = read(p[0], res, sizeof(res));
			} while (n < 0 && errno == EINTR);
			waitpid(pid, &st, 0);
		}
		close(p[0]);
	}
	if (n != (ssize_t)sizeof(res))
		for (i = 0; i < NOT_OWNER_STEPS; i++)
			res[i] = -EIO;	/* the child never answered */
	else
		traced.requests += res[NOT_OWNER_STEPS];
	for (i = 0; i < NOT_OWNER_STEPS; i++)
		emit(r, not_owner_step[i], res[i], NULL);
	/* the owner itself: NEW_OWNER is not a request it knows */
	emit(r, "owner.new-owner-not-offered", call(r, VHOST_NEW_OWNER, NULL),
	     NULL);
}

/* The script. Every device type runs the same steps. */
static void run_script(struct run *r)
{
	const uint64_t v2 = 1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2;
	struct vhost_vdpa_iova_range range = { 0, 0 };
	uint64_t acked = 0, unoffered = 0;
	struct vdpa_mem *mem = NULL;
	uint32_t id = 0;
	int ret, bit;

	step_u32(r, "get-device-id", VHOST_VDPA_GET_DEVICE_ID, &id);
	step_u64(r, "get-features", VHOST_GET_FEATURES, &r->features);
	step_u64(r, "get-backend-features", VHOST_GET_BACKEND_FEATURES,
		 &r->backend);
	step_set_u64(r, "set-backend-features-unoffered-resume",
		     VHOST_SET_BACKEND_FEATURES,
		     v2 | 1ULL << VHOST_BACKEND_F_RESUME);
	step_set_u64(r, "set-backend-features-bit63",
		     VHOST_SET_BACKEND_FEATURES, v2 | 1ULL << 63);
	ret = vdpa_dev_set_backend_features(r->dev,
		v2 | 1ULL << VHOST_BACKEND_F_IOTLB_BATCH |
		1ULL << VHOST_BACKEND_F_SUSPEND, &acked);
	emit(r, "set-backend-features-v2-batch-suspend", ret, NULL);

	step_u32(r, "get-vqs-count", VHOST_VDPA_GET_VQS_COUNT, &r->nvqs);
	{
		uint16_t n = 0;

		ret = call(r, VHOST_VDPA_GET_VRING_NUM, &n);
		emit(r, "get-vring-num", ret, "val=%u", n);
		if (ret >= 0)
			r->vq_max = n;
	}
	step_u32(r, "get-config-size", VHOST_VDPA_GET_CONFIG_SIZE,
		 &r->config_size);
	ret = call(r, VHOST_VDPA_GET_IOVA_RANGE, &range);
	emit(r, "get-iova-range", ret, "val=0x%llx-0x%llx",
	     (unsigned long long)range.first, (unsigned long long)range.last);
	step_u32(r, "get-group-num", VHOST_VDPA_GET_GROUP_NUM, NULL);
	step_u32(r, "get-as-num", VHOST_VDPA_GET_AS_NUM, NULL);

	step_config(r, "get-config-head", 0,
		    r->config_size < 8 ? r->config_size : 8, false);
	step_config(r, "get-config-len-0", 0, 0, false);
	step_config(r, "get-config-at-end", r->config_size, 1, false);
	step_config(r, "get-config-too-long", 0, r->config_size + 1, false);
	step_config(r, "get-config-off-huge", 0xffffff00u, 1, false);
	step_config(r, "set-config-at-end", r->config_size, 1, true);
	step_get_status(r, "get-status-initial");

	step_vring(r, "set-vring-num-0", VHOST_SET_VRING_NUM, 0, 0, false);
	step_vring(r, "set-vring-num-not-pow2", VHOST_SET_VRING_NUM, 0, 100,
		   false);
	step_vring(r, "set-vring-num-above-max", VHOST_SET_VRING_NUM, 0,
		   2u * r->vq_max, false);
	step_vring(r, "set-vring-num-65536", VHOST_SET_VRING_NUM, 0, 65536,
		   false);
	step_vring(r, "set-vring-num-bad-index", VHOST_SET_VRING_NUM,
		   r->nvqs, r->vq_max, false);
	step_vring(r, "set-vring-num-max", VHOST_SET_VRING_NUM, 0, r->vq_max,
		   false);
	step_vring(r, "get-vring-base-bad-index", VHOST_GET_VRING_BASE,
		   r->nvqs, 0, true);
	step_vring(r, "get-vring-base-huge-index", VHOST_GET_VRING_BASE,
		   0x80000000u, 0, true);
	step_vring(r, "get-vring-base-initial", VHOST_GET_VRING_BASE, 0, 0,
		   true);
	step_vring(r, "set-vring-base-5", VHOST_SET_VRING_BASE, 0, 5, false);
	step_vring(r, "get-vring-base-after-set", VHOST_GET_VRING_BASE, 0, 0,
		   true);
	step_vring(r, "set-vring-base-bad-index", VHOST_SET_VRING_BASE,
		   r->nvqs, 0, false);
	step_vring(r, "set-vring-enable-bad-index",
		   VHOST_VDPA_SET_VRING_ENABLE, r->nvqs, 1, false);
	step_vring(r, "get-vring-group-0", VHOST_VDPA_GET_VRING_GROUP, 0, 0,
		   true);
	step_vring(r, "get-vring-group-last", VHOST_VDPA_GET_VRING_GROUP,
		   r->nvqs ? r->nvqs - 1 : 0, 0, true);
	step_vring(r, "get-vring-group-bad-index", VHOST_VDPA_GET_VRING_GROUP,
		   r->nvqs, 0, true);

	emit(r, "suspend-before-driver-ok", call(r, VHOST_VDPA_SUSPEND, NULL),
	     NULL);
	/* Linux 6.1 has no RESUME: the generic vhost path answers EFAULT. */
	emit(r, "resume-raw-not-offered", call(r, VHOST_VDPA_RESUME, NULL),
	     NULL);
	emit(r, "resume-library-not-negotiated", vdpa_dev_resume(r->dev),
	     NULL);

	step_status(r, "set-status-ack", VIRTIO_CONFIG_S_ACKNOWLEDGE);
	step_status(r, "set-status-ack-driver",
		    VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	step_get_status(r, "get-status-after-driver");
	step_status(r, "set-status-clear-driver", VIRTIO_CONFIG_S_ACKNOWLEDGE);

	step_set_u64(r, "set-features-without-access-platform",
		     VHOST_SET_FEATURES,
		     r->features & ~(1ULL << VIRTIO_F_ACCESS_PLATFORM));
	for (bit = 0; bit < 24; bit++)
		if (!(r->features & (1ULL << bit))) {
			unoffered = 1ULL << bit;
			break;
		}
	step_set_u64(r, "set-features-plus-unoffered", VHOST_SET_FEATURES,
		     r->features | unoffered);
	step_set_u64(r, "set-features-offered", VHOST_SET_FEATURES,
		     r->features);
	step_status(r, "set-status-features-ok", VIRTIO_CONFIG_S_ACKNOWLEDGE |
		    VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	step_get_status(r, "get-status-after-features-ok");
	step_set_u64(r, "set-features-after-features-ok", VHOST_SET_FEATURES,
		     r->features);

	step_iotlb(r, "iotlb-update-size-0", VHOST_IOTLB_UPDATE, 0x10000, 0,
		   0x10000);
	step_iotlb(r, "iotlb-invalidate-before-any-map",
		   VHOST_IOTLB_INVALIDATE, 0x10000, 0x1000, 0);
	step_iotlb(r, "iotlb-update-wraps", VHOST_IOTLB_UPDATE,
		   UINT64_MAX - 0xfff, 0x2000, 0x10000);
	ret = vdpa_mem_create(1 << 20, 0x100000, &mem);
	if (ret >= 0)
		ret = vdpa_mem_map(r->dev, mem);
	emit(r, "mem-map-1m-at-1m", ret, NULL);
	step_iotlb(r, "iotlb-update-overlap", VHOST_IOTLB_UPDATE, 0x100000,
		   0x1000, mem ? (uint64_t)(uintptr_t)vdpa_mem_base(mem) : 0);
	step_iotlb(r, "iotlb-invalidate-unmapped", VHOST_IOTLB_INVALIDATE,
		   0x40000000, 0x1000, 0);
	step_iotlb(r, "iotlb-bad-type", 42, 0x100000, 0x1000, 0);
	step_iotlb(r, "iotlb-batch-begin", VHOST_IOTLB_BATCH_BEGIN, 0, 0, 0);
	step_iotlb(r, "iotlb-batch-end", VHOST_IOTLB_BATCH_END, 0, 0, 0);

	step_vring(r, "set-vring-enable-0", VHOST_VDPA_SET_VRING_ENABLE, 0, 1,
		   false);
	step_status(r, "set-status-driver-ok", VIRTIO_CONFIG_S_ACKNOWLEDGE |
		    VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
		    VIRTIO_CONFIG_S_DRIVER_OK);
	step_get_status(r, "get-status-after-driver-ok");
	emit(r, "suspend-after-driver-ok", call(r, VHOST_VDPA_SUSPEND, NULL),
	     NULL);
	step_vring(r, "get-vring-base-suspended", VHOST_GET_VRING_BASE, 0, 0,
		   true);
	emit(r, "resume-raw-still-not-offered",
	     call(r, VHOST_VDPA_RESUME, NULL), NULL);
	step_status(r, "set-status-reset", 0);
	step_get_status(r, "get-status-after-reset");
	step_vring(r, "get-vring-base-after-reset", VHOST_GET_VRING_BASE, 0,
		   0, true);
	run_not_owner(r, mem ? (uint64_t)(uintptr_t)vdpa_mem_base(mem) : 0);
	if (mem)
		emit(r, "mem-unmap", vdpa_mem_unmap(r->dev, mem), NULL);
	vdpa_mem_destroy(mem);
}

/* The answer of step in out's lines from first on, or NULL. */
static const char *answer(const struct answers *out, int first,
			  const char *type, const char *step)
{
	size_t tl = strlen(type), sl = strlen(step);
	int i;

	for (i = first; i < out->n; i++)
		if (!strncmp(out->line[i], type, tl) &&
		    out->line[i][tl] == '.' &&
		    !strncmp(out->line[i] + tl + 1, step, sl) &&
		    !strncmp(out->line[i] + tl + 1 + sl, ": ", 2))
			return out->line[i] + tl + 1 + sl + 2;
	return NULL;
}


static void trace_requests(struct vdpa_dev *dev, unsigned long request,
			   const void *arg, int result, uint64_t ns,
			   void *opaque)
{
	if (dev == traced.dev)
		traced.requests++;
}

/*
 * Run the script on dev. 0 only on positive evidence that it ran: every
 * step answered and kept, the script reached its last step, the device
 * was driven to DRIVER_OK and read back as running (the kernel's answers
 * have all of these), and at least one request per answer reached it.
 * Else -EIO, why in why.
 */
static int run_dev(struct vdpa_dev *dev, struct answers *out, char *why,
		   size_t wlen)
{
	struct run r = { .dev = dev, .out = out };
	static char type[16];
	const char *a;
	uint32_t id = 0;
	int first = out->n, n;

	if (vdpa_dev_get_device_id(dev, &id) < 0) {
		snprintf(why, wlen, "no device id");
		return -EIO;
	}
	if (id == 1)
		r.type = "net";
	else if (id == 2)
		r.type = "blk";
	else {
		snprintf(type, sizeof(type), "dev%u", id);
		r.type = type;
	}
	traced.dev = dev;
	traced.requests = 0;
	vdpa_set_trace(trace_requests, NULL);
	run_script(&r);
	vdpa_set_trace(NULL, NULL);
	traced.dev = NULL;
	n = out->n - first;
	if (out->dropped || n != r.steps) {
		snprintf(why, wlen, "%d of %d answers kept", n, r.steps);
		return -EIO;
	}
	if (!answer(out, first, r.type, "mem-unmap")) {
		snprintf(why, wlen, "the script stopped before its last step "
			 "(%d answers)", n);
		return -EIO;
	}
	a = answer(out, first, r.type, "set-status-driver-ok");
	if (!a || strcmp(a, "ret=0")) {
		snprintf(why, wlen, "DRIVER_OK: %s", a ? a : "no answer");
		return -EIO;
	}
	a = answer(out, first, r.type, "get-status-after-driver-ok");
	if (!a || strcmp(a, "ret=0 val=0x0f")) {
		snprintf(why, wlen, "status after DRIVER_OK: %s",
			 a ? a : "no answer");
		return -EIO;
	}
	if (traced.requests < n) {
		snprintf(why, wlen, "%d requests reached the device for %d "
			 "answers", traced.requests, n);
		return -EIO;
	}
	snprintf(why, wlen, "%d answers, %d requests", n, traced.requests);
	return 0;
}

/*
 * Answers of the simulator, configured like Linux 6.1's vdpasim_net and
 * vdpasim_blk as far as it has knobs for it.
 */
static int run_sim(enum vsim_type type, struct answers *out, char *why,
		   size_t wlen)
{
	struct vsim_thread *thr = NULL;
	struct vdpa_dev *dev = NULL;
	struct vsim_opts o;
	int fd = -1, r;

	vsim_opts_init(&o, type);
	o.vq_size = 256;
	/* RESUME (6.12 only), no device-state extension, blk config size */
	if (vsim_opts_kernel(&o, kernel) < 0) {
		snprintf(why, wlen, "no personality for kernel %s", kernel);
		return -EINVAL;
	}
	if (type == VSIM_TYPE_BLK)
		o.capacity = 0x40000;	/* VDPASIM_BLK_CAPACITY */
	snprintf(why, wlen, "no simulator");
	r = vsim_thread_start(&o, &fd, &thr);
	if (r < 0)
		return r;
	r = vdpa_dev_open_sim_fd(fd, type == VSIM_TYPE_NET ? "sim:diff-net" :
				 "sim:diff-blk", &dev);
	if (r >= 0) {
		r = run_dev(dev, out, why, wlen);
		vdpa_dev_close(dev);
	}
	vsim_thread_stop(thr);
	return r;
}

static int run_named(const char *name, struct answers *out, char *why,
		     size_t wlen)
{
	struct vdpa_dev *dev = NULL;
	int r = vdpa_dev_open(name, &dev);

	if (r < 0) {
		snprintf(why, wlen, "open: %s", strerror(-r));
		return r;
	}
	r = run_dev(dev, out, why, wlen);
	vdpa_dev_close(dev);
	return r;
}

static int load(const char *path, struct answers *a)
{
	char buf[LINE_LEN];
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	while (fgets(buf, sizeof(buf), f) && a->n < MAX_LINES) {
		buf[strcspn(buf, "\n")] = 0;
		if (!buf[0] || buf[0] == '#')
			continue;
		snprintf(a->line[a->n++], LINE_LEN, "%s", buf);
	}
	fclose(f);
	return 0;
}

/* "net.step: ret=..." -> length of "net.step" */
static size_t key_len(const char *l)
{
	const char *c = strstr(l, ": ");

	return c ? (size_t)(c - l) : strlen(l);
}

static const char *find_line(const struct answers *a, const char *l)
{
	size_t k = key_len(l);
	int i;

	for (i = 0; i < a->n; i++)
		if (key_len(a->line[i]) == k && !strncmp(a->line[i], l, k))
			return a->line[i];
	return NULL;
}

/*
 * The known difference listed for the step of line l: the one whose
 * simulator answer is l's if there is one (*ret_listed true), else any
 * entry for that step (*ret_listed false), else NULL.
 */
static const struct known_diff *find_known(const char *l, bool *ret_listed)
{
	size_t k = key_len(l), t = strcspn(l, ".");
	const struct known_diff *d, *step = NULL;
	size_t n;

	*ret_listed = false;
	for (d = known_diffs; d->step; d++) {
		if (d->kernel && strcmp(d->kernel, kernel))
			continue;
		n = strlen(d->step);
		if (strchr(d->step, '.') ?
		    n == k && !strncmp(d->step, l, k) :
		    t < k && n == k - t - 1 &&
		    !strncmp(d->step, l + t + 1, n)) {
			if (!strcmp(d->sim, l + k + 2)) {
				*ret_listed = true;
				return d;
			}
			step = step ? step : d;
		}
	}
	return step;
}

static void compare(const struct answers *got, const struct answers *want,
		    const char *what)
{
	const struct known_diff *d;
	const char *w, *ga, *wa;
	bool same, listed;
	int i;

	for (i = 0; i < got->n; i++) {
		const char *g = got->line[i];

		w = find_line(want, g);
		if (!w) {
			tap_ok(0, "%s: no recorded kernel answer (%s)", g,
			       what);
			continue;
		}
		ga = g + key_len(g) + 2;
		wa = w + key_len(w) + 2;
		same = !strcmp(g, w);
		d = find_known(g, &listed);
		if (same && listed)
			tap_diag("%s: listed as a known difference but now "
				 "equal; drop it from known_diffs", g);
		if (!same && listed && d->todo) {
			/* TAP TODO: reported, not counted as a failure */
			printf("not ok %d - %s # TODO sim should answer as the kernel (%s): %s\n",
			       ++tap_n, g, wa, d->why);
			continue;
		}
		if (same || !d)
			tap_ok(same, "%.*s: sim %s, kernel %s",
			       (int)key_len(g), g, ga, wa);
		else	/* passes only with the exact answer listed */
			tap_ok(listed, "%s # known difference (listed: sim "
			       "%s), kernel %s: %s", g, d->sim, wa, d->why);
	}
	/* Steps the kernel answered that this run did not produce. */
	for (i = 0; i < want->n; i++) {
		const char *l = want->line[i];
		size_t k = key_len(l);

		if (find_line(got, l))
			continue;
		/* only for device types this run covered */
		if (got->n && !strncmp(got->line[0], l, strcspn(l, ".")) &&
		    got->line[0][strcspn(l, ".")] == '.')
			tap_ok(0, "%.*s: answered by the kernel, not by %s",
			       (int)k, l, what);
	}
}

static const char *uts_release(void)
{
	static struct utsname u;

	return uname(&u) ? "?" : u.release;
}

/* The simulator with a kernel's personality against that kernel's answers. */
static void compare_kernel(const char *k, const char *expected)
{
	static struct answers got, want;
	char msg[160];
	int fds, r;

	kernel = k;
	memset(&got, 0, sizeof(got));
	memset(&want, 0, sizeof(want));
	r = load(expected, &want);
	if (!tap_ok(r >= 0, "kernel %s: its recorded answers (%s)", k,
		    expected))
		return;
	fds = tap_count_fds();
	r = run_sim(VSIM_TYPE_NET, &got, msg, sizeof(msg));
	tap_ok(r >= 0, "kernel %s: script ran on a vdpa-sim net device (%s)",
	       k, msg);
	r = run_sim(VSIM_TYPE_BLK, &got, msg, sizeof(msg));
	tap_ok(r >= 0, "kernel %s: script ran on a vdpa-sim blk device (%s)",
	       k, msg);
	tap_is(tap_count_fds(), fds, "kernel %s: no fd leaked by the script",
	       k);
	compare(&got, &want, k);
}

int main(void)
{
	const char *dev = getenv("VDPA_DIFF_DEV");
	const char *blk = getenv("VDPA_DIFF_BLK_DEV");
	const char *record = getenv("VDPA_DIFF_RECORD");
	const char *expected = getenv("VDPA_DIFF_EXPECTED");
	const char *k = getenv("VDPA_DIFF_KERNEL");
	static struct answers got, want;
	char msg[160];
	int fds, r;

	/* no kernel named: each personality against its own kernel */
	if (!dev && !blk && !record && !expected && !k) {
		setvbuf(stdout, NULL, _IOLBF, 0);
		tap_need_fd_count();
		compare_kernel("6.1", "tests/differential.expected");
		compare_kernel("6.12", "tests/differential-6.12.expected");
		return tap_done();
	}
	if (k && *k)
		kernel = k;
	if (!expected && strcmp(kernel, "6.1")) {
		static char path[64];

		snprintf(path, sizeof(path), "tests/differential-%s.expected",
			 kernel);
		expected = path;
	}

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (dev && !*dev)
		dev = NULL;
	if (blk && !*blk)
		blk = NULL;
	if (!record) {
		if (!expected)
			expected = "tests/differential.expected";
		r = load(expected, &want);
		if (r < 0) {
			char why[300];

			snprintf(why, sizeof(why),
				 "no kernel answers at %s (%s); make check-kernel records them",
				 expected, strerror(-r));
			tap_skip_all(why);
		}
	}

	tap_need_fd_count();
	fds = tap_count_fds();
	if (dev || blk) {
		if (dev) {
			r = run_named(dev, &got, msg, sizeof(msg));
			tap_ok(r >= 0, "script ran on %s (%s)", dev, msg);
		}
		if (blk) {
			r = run_named(blk, &got, msg, sizeof(msg));
			tap_ok(r >= 0, "script ran on %s (%s)", blk, msg);
		}
	} else {
		r = run_sim(VSIM_TYPE_NET, &got, msg, sizeof(msg));
		tap_ok(r >= 0, "script ran on a vdpa-sim net device (%s)",
		       msg);
		r = run_sim(VSIM_TYPE_BLK, &got, msg, sizeof(msg));
		tap_ok(r >= 0, "script ran on a vdpa-sim blk device (%s)",
		       msg);
	}
	tap_is(tap_count_fds(), fds, "no fd leaked by the script");

	if (record) {
		FILE *f = strcmp(record, "-") ? fopen(record, "we") : stdout;
		int i;

		if (!tap_ok(f != NULL, "open %s", record))
			return tap_done();
		fprintf(f, "# vdpa-user tests/differential.c answers of %s\n",
			dev || blk ? "Linux vhost-vdpa" : "vdpa-sim");
		fprintf(f, "# devices: %s %s; kernel %s\n", dev ? dev : "sim",
			blk ? blk : "", uts_release());
		for (i = 0; i < got.n; i++)
			fprintf(f, "%s\n", got.line[i]);
		tap_ok(fflush(f) == 0, "recorded %d answers to %s", got.n,
		       record);
		if (f != stdout)
			fclose(f);
		return tap_done();
	}
	compare(&got, &want, dev || blk ? "this device" : "the simulator");
	return tap_done();
}
