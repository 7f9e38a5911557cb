// SPDX-License-Identifier: MIT
/* driver: libvdpa-user on vdpa-sim (and real devices): net, blk, SUSPEND/RESUME, every switch. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <vdpa-user/blk.h>
#include <vdpa-user/net.h>
#include <vdpa-user/uapi-ext.h>
#include <vdpa-user/vdpa-user.h>
#include <vdpa-user/vq.h>
#include <vdpa-user/wire.h>

#include "sim.h"
#include "tap.h"
#include "testutil.h"

#define BIT(n)		(1ULL << (n))
#define MEM_IOVA	0x40000000ull
#define MAX_SEQ		8192
#define MAX_TOK		4096
#define NEXT		12		/* blk extents of 8 sectors at 0, 8, ... */
#define WAIT_MS		10000		/* bound for anything expected to come */
#define QUIET_MS	100		/* how long "nothing happens" is watched */


static char tmpdir[256];
static size_t pg;

/* ---- request accounting -------------------------------------------------- */

/*
 * Requests the library sent, from its request trace (vdpa_set_trace(): the
 * request codes themselves, not the wording of a log line). nums and addrs
 * count the successful ones.
 */
static struct {
	unsigned int requests, suspends, resumes, nums, addrs;
	unsigned long last_request;
	int last_result;
	const struct vdpa_dev *last_dev;
	const void *last_arg;
	uint8_t last_status;		/* *arg of the last GET_STATUS */
} lib;

static void lib_trace(struct vdpa_dev *dev, unsigned long request,
		      const void *arg, int result, uint64_t ns, void *opaque)
{
	(void)ns;
	(void)opaque;
	lib.requests++;
	lib.last_request = request;
	lib.last_result = result;
	lib.last_dev = dev;
	lib.last_arg = arg;
	if (request == VHOST_VDPA_GET_STATUS && arg)
		lib.last_status = *(const uint8_t *)arg;
	if (request == VHOST_VDPA_SUSPEND)
		lib.suspends++;
	if (request == VHOST_VDPA_RESUME)
		lib.resumes++;
	if (request == VHOST_SET_VRING_NUM && result >= 0)
		lib.nums++;
	if (request == VHOST_SET_VRING_ADDR && result >= 0)
		lib.addrs++;
}

/* Requests a thread simulator received (its LOG_DEBUG/INFO line each). */
static unsigned int sim_suspends, sim_resumes;

static void sim_log(void *opaque, int level, const char *msg)
{
	(void)opaque;
	(void)level;
	if (!strncmp(msg, "VDPA_SUSPEND -> ", 16))
		__atomic_add_fetch(&sim_suspends, 1, __ATOMIC_SEQ_CST);
	if (!strncmp(msg, "VDPA_RESUME -> ", 15))
		__atomic_add_fetch(&sim_resumes, 1, __ATOMIC_SEQ_CST);
}

static unsigned int sim_count(const unsigned int *c)
{
	return __atomic_load_n(c, __ATOMIC_SEQ_CST);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- one device under test ----------------------------------------------- */

struct tcase {
	const char *name;
	enum vsim_type type;
	unsigned int queue_pairs;	/* net; 0: 1 */
	unsigned int vq_size;		/* 0: 256 */
	bool no_suspend, no_resume, no_state;
	bool writeback;			/* blk: --cache writeback on a file */
	bool no_event_idx;		/* driver option */
	bool spawn;			/* a vdpa-sim process, not a thread */
	const char *dev;		/* a real device: expect what it offers */
};

struct target {
	const struct tcase *tc;
	const char *name;
	struct vsim_opts o;		/* the simulator's configuration */
	struct vsim_thread *thr;
	pid_t pid;
	char sock[300];
	char devname[310];
	char backing[300];
	struct vdpa_dev *dev;
	struct vdpa_mem *mem;
	struct vdpa_caps caps;
	bool real;			/* expectations from the caps only */
	uint32_t type;			/* VIRTIO_ID_* */
};

static bool sim_status(const struct target *t, struct vsim_status *st)
{
	if (!t->thr)
		return false;
	vsim_get_status(vsim_thread_sim(t->thr), st);
	return true;
}

static int target_start(struct target *t, const struct tcase *tc,
			unsigned int nr)
{
	static const char *const spawn_net[] = {
		"--type", "net", "--iova-range", "0x40000000:0x7fffffff",
		"--mac", "02:00:00:00:10:77", "--mtu", "9000", NULL,
	};
	int fd, r;

	memset(t, 0, sizeof(*t));
	t->tc = tc;
	t->name = tc->name;
	t->real = tc->dev != NULL;
	if (t->real)	/* the type comes from its caps */
		return vdpa_dev_open(tc->dev, &t->dev);
	t->type = tc->type == VSIM_TYPE_NET ? VIRTIO_ID_NET : VIRTIO_ID_BLOCK;
	vsim_opts_init(&t->o, tc->type);
	t->o.queue_pairs = tc->queue_pairs ? tc->queue_pairs : 1;
	t->o.vq_size = tc->vq_size ? tc->vq_size : 256;
	t->o.no_suspend = tc->no_suspend;
	t->o.no_resume = tc->no_resume;
	t->o.no_state = tc->no_state;
	t->o.mac[0] = 0x02;
	t->o.mac[5] = (uint8_t)nr;
	t->o.mtu = (uint16_t)(1400 + nr);
	t->o.capacity = 16384;			/* 8 MiB */
	t->o.log = sim_log;
	t->o.log_level = LOG_DEBUG;
	if (tc->writeback) {
		snprintf(t->backing, sizeof(t->backing), "%s/disk-%u.img",
			 tmpdir, nr);
		fd = open(t->backing, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC,
			  0600);
		if (fd < 0 || ftruncate(fd, 4 << 20) < 0) {
			if (fd >= 0)
				close(fd);
			return -EIO;
		}
		close(fd);
		t->o.backing = t->backing;
		t->o.writeback = true;
		t->o.capacity = 8192;
	}
	if (tc->spawn) {
		static const uint8_t mac[6] = { 2, 0, 0, 0, 0x10, 0x77 };

		/* what spawn_net says, for the expectations */
		t->o.iova_first = 0x40000000;
		t->o.iova_last = 0x7fffffff;
		memcpy(t->o.mac, mac, 6);
		t->o.mtu = 9000;
		snprintf(t->sock, sizeof(t->sock), "%s/sim-%u.sock", tmpdir,
			 nr);
		snprintf(t->devname, sizeof(t->devname), "sim:%s", t->sock);
		t->pid = tu_spawn_sim(t->sock, spawn_net);
		if (t->pid < 0)
			return (int)t->pid;
		return vdpa_dev_open(t->devname, &t->dev);
	}
	r = vsim_thread_start(&t->o, &fd, &t->thr);
	if (r < 0)
		return r;
	snprintf(t->devname, sizeof(t->devname), "thread-%u", nr);
	return vdpa_dev_open_sim_fd(fd, t->devname, &t->dev);
}

static void target_stop(struct target *t)
{
	vdpa_dev_close(t->dev);
	t->dev = NULL;
	vdpa_mem_destroy(t->mem);
	t->mem = NULL;
	vsim_thread_stop(t->thr);
	t->thr = NULL;
	if (t->pid > 0) {
		int st = tu_stop_sim(t->pid, false);

		tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		       "%s: the simulator process exits cleanly on SIGTERM "
		       "(status 0x%x)", t->name, st);
	}
	t->pid = 0;
	if (t->backing[0])
		unlink(t->backing);
}

/* ---- capabilities, negotiation, status, config --------------------------- */

static uint64_t sim_features(const struct target *t)
{
	uint64_t f = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_ACCESS_PLATFORM) |
		     BIT(VIRTIO_RING_F_EVENT_IDX) |
		     BIT(VIRTIO_RING_F_INDIRECT_DESC);

	if (t->o.type == VSIM_TYPE_NET) {
		f |= BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_MTU) |
		     BIT(VIRTIO_NET_F_STATUS) | BIT(VIRTIO_NET_F_CTRL_VQ) |
		     BIT(VIRTIO_NET_F_CTRL_RX) | BIT(VIRTIO_NET_F_CTRL_RX_EXTRA) |
		     BIT(VIRTIO_NET_F_CTRL_MAC_ADDR) | BIT(VIRTIO_F_ANY_LAYOUT);
		if (t->o.queue_pairs > 1)
			f |= BIT(VIRTIO_NET_F_MQ);
	} else {
		f |= BIT(VIRTIO_BLK_F_SIZE_MAX) | BIT(VIRTIO_BLK_F_SEG_MAX) |
		     BIT(VIRTIO_BLK_F_BLK_SIZE) | BIT(VIRTIO_BLK_F_FLUSH);
	}
	return f;
}

static uint64_t sim_backend(const struct target *t)
{
	uint64_t b = BIT(VHOST_BACKEND_F_IOTLB_MSG_V2) |
		     BIT(VHOST_BACKEND_F_IOTLB_BATCH) |
		     BIT(VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK);

	if (!t->o.no_suspend)
		b |= BIT(VHOST_BACKEND_F_SUSPEND);
	if (!t->o.no_resume)
		b |= BIT(VHOST_BACKEND_F_RESUME);
	if (!t->o.no_state)
		b |= BIT(VHOST_BACKEND_F_DEVICE_STATE);
	/* pre-copy (proposal): blk with a write-back cache and the state */
	if (!t->o.no_state && t->o.type == VSIM_TYPE_BLK && t->o.writeback)
		b |= BIT(VHOST_BACKEND_F_DEVICE_STATE_PRECOPY);
	return b;
}

static bool check_caps(struct target *t)
{
	struct vdpa_caps *c = &t->caps, again;
	unsigned int req;
	uint32_t id = 0;
	int r;

	r = vdpa_dev_get_caps(t->dev, c);
	if (!tap_is_ok(r, 0, "%s: get_caps", t->name))
		return false;
	if (t->real)
		t->type = c->device_id;
	r = vdpa_dev_get_device_id(t->dev, &id);
	tap_ok(r == 0 && id == t->type && c->device_id == t->type &&
	       (t->type == VIRTIO_ID_NET || t->type == VIRTIO_ID_BLOCK),
	       "%s: device id %u (caps %u)", t->name, id, c->device_id);
	tap_ok(vdpa_dev_is_kernel(t->dev) ==
	       (t->real && !strncmp(t->tc->dev, "/dev/", 5)) &&
	       !strcmp(vdpa_dev_name(t->dev), t->real ? t->tc->dev :
		       t->devname), "%s: name and transport", t->name);
	if (!t->real) {
		uint32_t nvqs = t->type == VIRTIO_ID_NET ?
				2 * t->o.queue_pairs + 1 : 1;
		size_t cs = t->type == VIRTIO_ID_NET ?
			    sizeof(struct virtio_net_config) :
			    sizeof(struct virtio_blk_config);

		tap_is(c->features, sim_features(t), "%s: device features "
		       "as offered", t->name);
		tap_is(c->backend_features, sim_backend(t), "%s: backend "
		       "features as offered", t->name);
		tap_ok(c->vq_count == nvqs && c->vq_max_size == t->o.vq_size &&
		       c->config_size == cs &&
		       c->iova_range.first == t->o.iova_first &&
		       c->iova_range.last == t->o.iova_last,
		       "%s: %u vqs of up to %u, config %u bytes, IOVA "
		       "0x%llx-0x%llx", t->name, c->vq_count, c->vq_max_size,
		       c->config_size, (unsigned long long)c->iova_range.first,
		       (unsigned long long)c->iova_range.last);
		tap_ok(c->suspend == !t->o.no_suspend &&
		       c->resume == !t->o.no_resume &&
		       c->device_state == !t->o.no_state && c->iotlb_batch &&
		       c->enable_after_driver_ok,
		       "%s: capabilities suspend %d resume %d device_state %d",
		       t->name, c->suspend, c->resume, c->device_state);
	} else {
		uint64_t b = c->backend_features;

		tap_diag("%s: features 0x%llx backend 0x%llx, %u vqs of %u, "
			 "config %u", t->name,
			 (unsigned long long)c->features,
			 (unsigned long long)b, c->vq_count, c->vq_max_size,
			 c->config_size);
		tap_ok((c->features & BIT(VIRTIO_F_VERSION_1)) &&
		       (c->features & BIT(VIRTIO_F_ACCESS_PLATFORM)) &&
		       c->vq_count >= 1 && c->vq_max_size >= 4 &&
		       c->config_size > 0 &&
		       c->iova_range.first <= c->iova_range.last,
		       "%s: plausible caps (VERSION_1, ACCESS_PLATFORM, vqs, "
		       "config, IOVA range)", t->name);
		tap_ok(c->suspend == !!(b & BIT(VHOST_BACKEND_F_SUSPEND)) &&
		       c->resume == !!(b & BIT(VHOST_BACKEND_F_RESUME)) &&
		       c->device_state ==
		       !!(b & BIT(VHOST_BACKEND_F_DEVICE_STATE)) &&
		       c->iotlb_batch == !!(b & BIT(VHOST_BACKEND_F_IOTLB_BATCH)),
		       "%s: capability flags match the backend features",
		       t->name);
	}
	req = lib.requests;
	memset(&again, 0xa5, sizeof(again));
	r = vdpa_dev_get_caps(t->dev, &again);
	tap_ok(r == 0 && lib.requests == req &&
	       !memcmp(&again, c, sizeof(again)) &&
	       vdpa_dev_get_caps(NULL, &again) == -EINVAL &&
	       vdpa_dev_get_caps(t->dev, NULL) == -EINVAL,
	       "%s: get_caps again answers from the cache (no request); "
	       "NULL -> EINVAL", t->name);
	return true;
}

static void check_backend(struct target *t)
{
	uint64_t offered = t->caps.backend_features, acked = 0, want;
	uint64_t v2 = BIT(VHOST_BACKEND_F_IOTLB_MSG_V2);
	struct vsim_status st;
	int r;

	r = vdpa_dev_set_backend_features(t->dev, ~0ULL, &acked);
	tap_ok(r == 0 && acked == offered &&
	       vdpa_dev_backend_features(t->dev) == acked,
	       "%s: backend: wanting every bit acks exactly the offered "
	       "0x%llx (r %d, acked 0x%llx)", t->name,
	       (unsigned long long)offered, r, (unsigned long long)acked);
	if (sim_status(t, &st))
		tap_is(st.backend_features, acked, "%s: the device holds the "
		       "acked set", t->name);
	r = vdpa_dev_set_backend_features(t->dev, 0, &acked);
	tap_ok(r == 0 && acked == v2, "%s: backend: wanting nothing still "
	       "acks IOTLB_MSG_V2 (0x%llx)", t->name,
	       (unsigned long long)acked);
	want = BIT(VHOST_BACKEND_F_SUSPEND) | BIT(VHOST_BACKEND_F_RESUME) |
	       BIT(63);
	r = vdpa_dev_set_backend_features(t->dev, want, &acked);
	tap_ok(r == 0 && acked == (v2 | (want & offered)) &&
	       vdpa_dev_backend_features(t->dev) == acked,
	       "%s: backend: SUSPEND|RESUME|bit 63 -> 0x%llx (only offered "
	       "bits)", t->name, (unsigned long long)acked);
	if (sim_status(t, &st))
		tap_is(st.backend_features, acked, "%s: the device holds it",
		       t->name);
	tap_is(vdpa_dev_set_backend_features(NULL, 0, NULL), -EINVAL,
	       "%s: set_backend_features(NULL) -> EINVAL", t->name);
}

static void check_features_status(struct target *t)
{
	uint64_t base = BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_F_ACCESS_PLATFORM);
	uint8_t ok_bits = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			  VIRTIO_CONFIG_S_FEATURES_OK;
	uint64_t unoffered = 0;
	struct vsim_status st;
	unsigned int req, bit;
	uint8_t s = 0xff, s0 = 0xff;
	int r;

	for (bit = 0; bit < 64 && !unoffered; bit++)
		if (!(t->caps.features & BIT(bit)))
			unoffered = BIT(bit);
	vdpa_dev_get_status(t->dev, &s0);
	req = lib.requests;
	r = vdpa_dev_set_features(t->dev, t->caps.features | unoffered);
	tap_ok(r == -ENOTSUP && lib.requests == req,
	       "%s: features with unoffered bit 0x%llx -> ENOTSUP (%d), no "
	       "request sent", t->name, (unsigned long long)unoffered, r);
	r = vdpa_dev_get_status(t->dev, &s);
	tap_ok(r == 0 && s == s0,
	       "%s: status untouched by the refused features (0x%02x)",
	       t->name, s);
	r = vdpa_dev_set_features(t->dev, base);
	tap_is(r, 0, "%s: set_features(VERSION_1|ACCESS_PLATFORM)", t->name);
	r = vdpa_dev_get_status(t->dev, &s);
	tap_ok(r == 0 && s == ok_bits && vdpa_dev_features(t->dev) == base,
	       "%s: status read back ACKNOWLEDGE|DRIVER|FEATURES_OK (0x%02x)",
	       t->name, s);
	if (sim_status(t, &st))
		tap_ok(st.status == ok_bits && st.features == base,
		       "%s: device status 0x%02x, features 0x%llx", t->name,
		       st.status, (unsigned long long)st.features);
	r = vdpa_dev_add_status(t->dev, VIRTIO_CONFIG_S_DRIVER_OK);
	if (!r)
		r = vdpa_dev_get_status(t->dev, &s);
	tap_ok(r == 0 && s == (ok_bits | VIRTIO_CONFIG_S_DRIVER_OK),
	       "%s: add_status(DRIVER_OK) sticks (0x%02x)", t->name, s);
	r = vdpa_dev_reset(t->dev);
	tap_ok(r == 0 && vdpa_dev_get_status(t->dev, &s) == 0 && s == 0,
	       "%s: reset: status 0", t->name);
	if (sim_status(t, &st))
		tap_ok(st.status == 0 && st.features == 0,
		       "%s: device reset too", t->name);
	tap_is(vdpa_dev_get_status(t->dev, NULL), -EINVAL,
	       "%s: get_status(NULL) -> EINVAL", t->name);
}

static void check_config(struct target *t)
{
	uint32_t cs = t->caps.config_size;
	uint8_t buf[1100];
	uint16_t b;
	int r;

	memset(buf, 0xcc, sizeof(buf));
	if (t->type == VIRTIO_ID_NET) {
		struct virtio_net_config c;
		uint16_t status, pairs, mtu;

		r = vdpa_dev_get_config(t->dev, 0, &c, cs < sizeof(c) ? cs :
					(uint32_t)sizeof(c));
		memcpy(&status, (uint8_t *)&c + 6, 2);
		memcpy(&pairs, (uint8_t *)&c + 8, 2);
		memcpy(&mtu, (uint8_t *)&c + 10, 2);
		if (t->real)
			tap_ok(r == 0, "%s: config read: mac %02x:%02x:%02x:"
			       "%02x:%02x:%02x mtu %u", t->name, c.mac[0],
			       c.mac[1], c.mac[2], c.mac[3], c.mac[4], c.mac[5],
			       mtu);
		else
			tap_ok(r == 0 && !memcmp(c.mac, t->o.mac, 6) &&
			       status == VIRTIO_NET_S_LINK_UP &&
			       pairs == t->o.queue_pairs && mtu == t->o.mtu,
			       "%s: config: mac, link up, %u queue pairs, mtu "
			       "%u", t->name, pairs, mtu);
		r = vdpa_dev_get_config(t->dev, 4, buf, 2);
		tap_ok(r == 0 && !memcmp(buf, c.mac + 4, 2) && buf[2] == 0xcc,
		       "%s: config read at an offset (mac[4..5]), no more "
		       "bytes written", t->name);
	} else {
		struct virtio_blk_config c;

		memset(&c, 0, sizeof(c));
		r = vdpa_dev_get_config(t->dev, 0, &c, cs < sizeof(c) ? cs :
					(uint32_t)sizeof(c));
		if (t->real)
			tap_ok(r == 0 && c.capacity > 64, "%s: config: "
			       "capacity %llu sectors, blk_size %u, size_max "
			       "%u", t->name, (unsigned long long)c.capacity,
			       c.blk_size, c.size_max);
		else
			tap_ok(r == 0 && c.capacity == t->o.capacity &&
			       c.blk_size == 512 && c.size_max == 1u << 20 &&
			       c.seg_max == (t->o.vq_size - 2 < 128 ?
					     t->o.vq_size - 2 : 128),
			       "%s: config: capacity %llu, blk_size %u, "
			       "size_max %u, seg_max %u", t->name,
			       (unsigned long long)c.capacity, c.blk_size,
			       c.size_max, c.seg_max);
	}
	tap_is(vdpa_dev_get_config(t->dev, cs - 1, buf, 2), -EINVAL,
	       "%s: config read past the end (off %u len 2) -> EINVAL",
	       t->name, cs - 1);
	tap_is(vdpa_dev_get_config(t->dev, cs, buf, 1), -EINVAL,
	       "%s: config read at the end -> EINVAL", t->name);
	tap_is(vdpa_dev_get_config(t->dev, 0, buf, 1025), -EINVAL,
	       "%s: config read of 1025 bytes -> EINVAL", t->name);
	tap_is(vdpa_dev_get_config(NULL, 0, buf, 1), -EINVAL,
	       "%s: get_config(NULL dev) -> EINVAL", t->name);
	r = vdpa_dev_get_vring_base(t->dev, t->caps.vq_count, &b);
	tap_ok(r == -ENOBUFS || r == -EINVAL, "%s: get_vring_base(vq %u) "
	       "-> ENOBUFS/EINVAL (%d)", t->name, t->caps.vq_count, r);
	tap_is(vdpa_dev_get_vring_base(t->dev, 0, NULL), -EINVAL,
	       "%s: get_vring_base(NULL) -> EINVAL", t->name);
}

/* Map the driver memory; -EEXIST the second time. */
static bool check_map(struct target *t, size_t size)
{
	struct vsim_status st;
	int r;

	r = vdpa_mem_create(size, MEM_IOVA, &t->mem);
	if (!tap_is_ok(r, 0, "%s: driver memory, %zu KiB", t->name,
		       size >> 10))
		return false;
	r = vdpa_mem_map(t->dev, t->mem);
	if (!tap_is_ok(r, 0, "%s: mem_map", t->name))
		return false;
	if (sim_status(t, &st))
		tap_ok(st.mem_regions == 1 && st.iotlb_entries == 1,
		       "%s: the device has 1 region and 1 IOTLB entry", t->name);
	tap_is(vdpa_mem_map(t->dev, t->mem), -EEXIST,
	       "%s: mem_map twice -> EEXIST", t->name);
	if (sim_status(t, &st))
		tap_ok(st.mem_regions == 1 && st.iotlb_entries == 1,
		       "%s: still 1 region and 1 IOTLB entry", t->name);
	return true;
}

/* The spawned simulator's IOVA range is 0x40000000-0x7fffffff. */
static void check_range_spawned(struct target *t)
{
	static const struct { uint64_t iova; size_t pages; int want;
			      const char *what; } c[] = {
		{ 0x3ffff000, 1, -ERANGE, "just below the range" },
		{ 0x7ffff000, 2, -ERANGE, "straddling its last byte" },
		{ 0x80000000, 1, -ERANGE, "above the range" },
		{ 0x7ffff000, 1, 0, "the range's last page" },
	};
	unsigned int i;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct vdpa_mem *m = NULL;
		int r = vdpa_mem_create(c[i].pages * pg, c[i].iova, &m);

		if (!r)
			r = vdpa_mem_map(t->dev, m);
		tap_is(r, c[i].want, "%s: mem_map of %zu page(s) at 0x%llx, %s",
		       t->name, c[i].pages, (unsigned long long)c[i].iova,
		       c[i].what);
		if (r == 0)
			tap_is(vdpa_mem_unmap(t->dev, m), 0, "%s: unmap it",
			       t->name);
		vdpa_mem_destroy(m);
	}
}

/* ---- net ----------------------------------------------------------------- */

struct nett {
	struct vdpa_net *net;
	unsigned int pairs;
	uint16_t vq_size;
	uint8_t mac[6];
	uint64_t next_seq;
	uint8_t seen[MAX_SEQ];
	uint64_t sent[16], recvd[16], reaped[16];
	unsigned int bad;
};

static size_t frame_len(uint64_t seq)
{
	return 60 + (size_t)(seq % 9) * 37;
}

static uint8_t fpat(uint64_t seq, size_t i)
{
	return (uint8_t)(seq * 131 + i * 7 + (i >> 8));
}

struct rxctx {
	struct nett *x;
	unsigned int qp;
};

static void on_rx(const void *frame, size_t len, void *opaque)
{
	struct rxctx *c = opaque;
	struct nett *x = c->x;
	const uint8_t *f = frame;
	uint64_t seq;
	size_t i;

	x->recvd[c->qp]++;
	if (len < 24) {
		x->bad++;
		return;
	}
	memcpy(&seq, f + 16, 8);
	if (seq >= x->next_seq || seq >= MAX_SEQ || len != frame_len(seq) ||
	    f[14] != c->qp || memcmp(f, x->mac, 6)) {
		x->bad++;
		return;
	}
	for (i = 24; i < len; i++)
		if (f[i] != fpat(seq, i)) {
			x->bad++;
			return;
		}
	if (x->seen[seq] < 255)
		x->seen[seq]++;
}

/* Queue n sequence-numbered frames on pair qp and kick. */
static int net_send(struct nett *x, unsigned int qp, unsigned int n)
{
	static const uint8_t src[6] = { 2, 0, 0, 0, 0, 0x99 };
	uint8_t f[512];
	unsigned int i;
	size_t j, len;
	int r;

	for (i = 0; i < n; i++) {
		uint64_t seq = x->next_seq;

		if (seq >= MAX_SEQ)
			return -E2BIG;
		len = frame_len(seq);
		memcpy(f, x->mac, 6);
		memcpy(f + 6, src, 6);
		f[12] = 0x88;
		f[13] = 0xb5;
		f[14] = (uint8_t)qp;
		f[15] = 0;
		memcpy(f + 16, &seq, 8);
		for (j = 24; j < len; j++)
			f[j] = fpat(seq, j);
		r = vdpa_net_send(x->net, qp, f, len);
		if (r < 0)
			return r;
		x->next_seq++;
		x->sent[qp]++;
	}
	return vdpa_net_kick_tx(x->net, qp);
}

static uint64_t sum(const uint64_t *v, unsigned int n)
{
	uint64_t s = 0;

	while (n--)
		s += v[n];
	return s;
}

/* Receive and reap until want frames arrived and all TX came back. */
static void net_pump(struct nett *x, uint64_t want, unsigned int ms)
{
	uint64_t end = now_ms() + ms;
	unsigned int qp;
	int r;

	for (;;) {
		for (qp = 0; qp < x->pairs; qp++) {
			struct rxctx c = { x, qp };

			r = vdpa_net_receive(x->net, qp, on_rx, &c, 1024);
			if (r < 0)
				x->bad++;
			r = vdpa_net_reap_tx(x->net, qp);
			if (r < 0)
				x->bad++;
			else
				x->reaped[qp] += (unsigned int)r;
		}
		if (sum(x->recvd, x->pairs) >= want &&
		    sum(x->reaped, x->pairs) >= sum(x->sent, x->pairs))
			return;
		if (now_ms() > end)
			return;
		if (sum(x->recvd, x->pairs) < want) {
			vdpa_net_wait_rx(x->net, 20);
			continue;
		}
		/* all received: only TX completions are missing */
		for (qp = 0; qp < x->pairs; qp++)
			if (x->reaped[qp] < x->sent[qp]) {
				vdpa_vq_wait(vdpa_net_vq(x->net, 2 * qp + 1),
					     20);
				break;
			}
	}
}

/* Every frame sent so far arrived exactly once, intact, on its pair. */
static bool net_all_once(const struct nett *x, char *why, size_t len)
{
	uint64_t s;
	unsigned int qp;

	if (x->bad) {
		snprintf(why, len, "%u bad frames/completions", x->bad);
		return false;
	}
	for (s = 0; s < x->next_seq; s++)
		if (x->seen[s] != 1) {
			snprintf(why, len, "frame %llu seen %u times",
				 (unsigned long long)s, x->seen[s]);
			return false;
		}
	for (qp = 0; qp < x->pairs; qp++)
		if (x->recvd[qp] != x->sent[qp] || x->reaped[qp] != x->sent[qp]) {
			snprintf(why, len, "pair %u: sent %llu received %llu "
				 "tx reaped %llu", qp,
				 (unsigned long long)x->sent[qp],
				 (unsigned long long)x->recvd[qp],
				 (unsigned long long)x->reaped[qp]);
			return false;
		}
	why[0] = 0;
	return true;
}

/* rounds of batch frames on every pair, each waited for. */
static bool net_traffic(struct nett *x, unsigned int rounds,
			unsigned int batch, char *why, size_t len)
{
	unsigned int i, qp;
	int r;

	for (i = 0; i < rounds; i++) {
		for (qp = 0; qp < x->pairs; qp++) {
			r = net_send(x, qp, batch);
			if (r < 0) {
				snprintf(why, len, "send on pair %u: %d", qp, r);
				return false;
			}
		}
		net_pump(x, sum(x->sent, x->pairs), WAIT_MS);
		if (!net_all_once(x, why, len))
			return false;
	}
	return true;
}

static bool read_bases(struct vdpa_dev *dev, unsigned int n, uint16_t *b)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (vdpa_dev_get_vring_base(dev, i, &b[i]) < 0)
			return false;
	return true;
}

/* TX bases = frames the device took, RX bases = buffers it filled. */
static bool net_bases_match(const struct nett *x, const uint16_t *b)
{
	unsigned int qp;

	for (qp = 0; qp < x->pairs; qp++)
		if (b[2 * qp] != (uint16_t)x->recvd[qp] ||
		    b[2 * qp + 1] != (uint16_t)x->sent[qp])
			return false;
	return true;
}

static void sim_requests(const struct target *t, uint64_t *req)
{
	struct vsim_status st;
	unsigned int i;

	memset(req, 0, sizeof(uint64_t) * VSIM_MAX_VQS);
	if (!sim_status(t, &st))
		return;
	for (i = 0; i < st.nvqs && i < VSIM_MAX_VQS; i++)
		req[i] = st.q[i].requests;
}

/*
 * SUSPEND / RESUME through the library, counted on both sides of the
 * wire. true: the device has the capability and the request was checked
 * (sent exactly once; for SUSPEND the device reports it); false: it has
 * not, the call was refused with EOPNOTSUPP and nothing was sent.
 */
static bool checked_suspend(struct target *t)
{
	unsigned int s0 = lib.suspends, ss0 = sim_count(&sim_suspends);
	struct vsim_status st;
	int r = vdpa_dev_suspend(t->dev);

	if (!t->caps.suspend) {
		tap_is(r, -EOPNOTSUPP, "%s: suspend without the capability -> "
		       "EOPNOTSUPP", t->name);
		tap_ok(lib.suspends == s0 && sim_count(&sim_suspends) == ss0,
		       "%s: no SUSPEND request was sent", t->name);
		return false;
	}
	tap_is(r, 0, "%s: suspend", t->name);
	tap_ok(lib.suspends == s0 + 1 &&
	       (!t->thr || sim_count(&sim_suspends) == ss0 + 1),
	       "%s: exactly one SUSPEND request reached the device", t->name);
	if (sim_status(t, &st))
		tap_ok(st.suspended, "%s: device reports suspended", t->name);
	return true;
}

static bool checked_resume(struct target *t)
{
	unsigned int s0 = lib.resumes, ss0 = sim_count(&sim_resumes);
	int r = vdpa_dev_resume(t->dev);

	if (!t->caps.resume) {
		tap_is(r, -EOPNOTSUPP, "%s: resume without the capability -> "
		       "EOPNOTSUPP", t->name);
		tap_ok(lib.resumes == s0 && sim_count(&sim_resumes) == ss0,
		       "%s: no RESUME request was sent", t->name);
		return false;
	}
	tap_is(r, 0, "%s: resume", t->name);
	tap_ok(lib.resumes == s0 + 1 &&
	       (!t->thr || sim_count(&sim_resumes) == ss0 + 1),
	       "%s: exactly one RESUME request reached the device", t->name);
	return true;
}

static void net_suspend_resume(struct target *t, struct nett *x)
{
	uint16_t b0[VSIM_MAX_VQS], b1[VSIM_MAX_VQS];
	uint64_t q0[VSIM_MAX_VQS], q1[VSIM_MAX_VQS], before;
	unsigned int nvq = vdpa_net_num_vqs(x->net), qp;
	unsigned int batch = x->vq_size / 2 < 16 ? x->vq_size / 2 : 16;
	struct vsim_status st;
	char why[160];
	bool ok;
	int r;

	if (!checked_suspend(t)) {
		ok = net_traffic(x, 2, batch, why, sizeof(why));
		tap_ok(ok, "%s: the device kept running: traffic flows%s%s",
		       t->name, *why ? ": " : "", why);
		r = vdpa_dev_resume(t->dev);
		tap_is(r, t->caps.resume ? 0 : -EOPNOTSUPP,
		       "%s: resume of a running device", t->name);
		return;
	}
	r = read_bases(t->dev, nvq, b0);
	tap_ok(r && net_bases_match(x, b0), "%s: vring bases after suspend = "
	       "frames taken per queue (tx0 %u rx0 %u)", t->name, b0[1], b0[0]);
	sim_requests(t, q0);
	before = sum(x->recvd, x->pairs);
	for (qp = 0; qp < x->pairs; qp++)
		if (net_send(x, qp, batch) < 0)
			x->bad++;
	net_pump(x, before + 1, QUIET_MS);
	tap_ok(sum(x->recvd, x->pairs) == before &&
	       sum(x->reaped, x->pairs) + batch * x->pairs ==
	       sum(x->sent, x->pairs) && !x->bad,
	       "%s: suspended: %u frames posted and kicked, none transmitted "
	       "or received", t->name, batch * x->pairs);
	r = read_bases(t->dev, nvq, b1);
	tap_ok(r && !memcmp(b0, b1, nvq * sizeof(b0[0])),
	       "%s: GET_VRING_BASE stable while suspended (%u queues)",
	       t->name, nvq);
	sim_requests(t, q1);
	if (t->thr)
		tap_ok(!memcmp(q0, q1, sizeof(q0)), "%s: device counted no "
		       "request while suspended", t->name);

	if (!checked_resume(t)) {
		net_pump(x, before + 1, QUIET_MS);
		tap_ok(sum(x->recvd, x->pairs) == before,
		       "%s: still suspended: nothing moved", t->name);
		if (sim_status(t, &st))
			tap_ok(st.suspended, "%s: device still suspended",
			       t->name);
		return;
	}
	net_pump(x, sum(x->sent, x->pairs), WAIT_MS);
	ok = net_all_once(x, why, sizeof(why));
	tap_ok(ok, "%s: after resume the %u "
	       "frames posted while suspended arrive, each exactly once%s%s",
	       t->name, batch * x->pairs, *why ? ": " : "", why);
	r = read_bases(t->dev, nvq, b1);
	tap_ok(r && net_bases_match(x, b1), "%s: vring bases advanced by "
	       "exactly those frames", t->name);
	ok = net_traffic(x, 2, batch, why, sizeof(why));
	tap_ok(ok, "%s: traffic continues after resume%s%s", t->name,
	       *why ? ": " : "", why);
}

static void net_case(struct target *t)
{
	struct vdpa_net_opts o = { 0 };
	struct vsim_status st;
	struct nett *x;
	unsigned int qp, pairs = t->real ? 1 : t->o.queue_pairs;
	uint16_t want_size;
	uint8_t s = 0;
	char why[160];
	int r;

	x = calloc(1, sizeof(*x));
	if (!x) {
		tap_ok(0, "%s: memory", t->name);
		return;
	}
	if (!check_map(t, (2 + 2 * (size_t)pairs) << 20))
		goto out;
	if (!t->real && t->caps.vq_max_size <= 16384) {
		struct vdpa_net *bad = NULL;

		o.vq_size = (uint16_t)(t->caps.vq_max_size * 2);
		r = vdpa_net_open(t->dev, t->mem, &o, &bad);
		tap_ok(r < 0 && !bad, "%s: net_open with a ring larger than "
		       "the device's maximum is refused (%d)", t->name, r);
		vdpa_net_close(bad);
	}
	memset(&o, 0, sizeof(o));
	o.queue_pairs = (uint16_t)pairs;
	o.no_event_idx = t->tc->no_event_idx;
	r = vdpa_net_open(t->dev, t->mem, &o, &x->net);
	if (!tap_is_ok(r, 0, "%s: net_open (%u queue pairs)", t->name,
		       pairs))
		goto out;
	want_size = t->caps.vq_max_size < 256 ? t->caps.vq_max_size : 256;
	x->pairs = vdpa_net_queue_pairs(x->net);
	x->vq_size = vdpa_vq_size(vdpa_net_vq(x->net, 0));
	vdpa_net_get_mac(x->net, x->mac);
	tap_ok(x->pairs == pairs && x->vq_size == want_size &&
	       vdpa_vq_size(vdpa_net_vq(x->net, 1)) == want_size &&
	       vdpa_net_max_frame(x->net) == 2048 - 12,
	       "%s: %u pairs, rings of %u (device max %u), max frame %zu",
	       t->name, x->pairs, x->vq_size, t->caps.vq_max_size,
	       vdpa_net_max_frame(x->net));
	r = vdpa_dev_get_status(t->dev, &s);
	tap_ok(r == 0 && (s & VIRTIO_CONFIG_S_DRIVER_OK) && !(s & 0x40),
	       "%s: DRIVER_OK, no NEEDS_RESET (0x%02x)", t->name, s);
	tap_is(vdpa_dev_backend_features(t->dev), t->caps.backend_features &
	       (BIT(VHOST_BACKEND_F_IOTLB_MSG_V2) |
		BIT(VHOST_BACKEND_F_IOTLB_BATCH) | BIT(VHOST_BACKEND_F_SUSPEND) |
		BIT(VHOST_BACKEND_F_RESUME) |
		BIT(VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK) |
		BIT(VHOST_BACKEND_F_DEVICE_STATE)),
	       "%s: net_open acked the offered subset of what it wants",
	       t->name);
	if (!t->real)
		tap_ok(!memcmp(x->mac, t->o.mac, 6), "%s: driver MAC from the "
		       "config space", t->name);
	if (sim_status(t, &st))
		tap_ok(st.curr_queue_pairs == pairs &&
		       !!(st.features & BIT(VIRTIO_RING_F_EVENT_IDX)) ==
		       !t->tc->no_event_idx && st.iotlb_entries == 1,
		       "%s: device: %u pairs selected, EVENT_IDX %s, mapping "
		       "kept", t->name, st.curr_queue_pairs,
		       st.features & BIT(VIRTIO_RING_F_EVENT_IDX) ? "on" : "off");

	/* more frames than the ring has entries: indices wrap */
	r = net_traffic(x, (3u * x->vq_size) / 16 + 2, 16 < x->vq_size / 2 ?
			16 : x->vq_size / 2, why, sizeof(why));
	tap_ok(r, "%s: %llu frames looped back on %u pair(s), each once, "
	       "intact, on its own pair%s%s", t->name,
	       (unsigned long long)x->next_seq, x->pairs, *why ? ": " : "",
	       why);
	for (qp = 0; qp < x->pairs; qp++)
		if (!x->recvd[qp])
			break;
	tap_ok(qp == x->pairs, "%s: every pair carried traffic", t->name);
	if (sim_status(t, &st))
		tap_ok(st.q[1].requests == x->sent[0] &&
		       st.q[0].requests == x->recvd[0] && !st.q[0].overruns &&
		       !st.q[0].drops, "%s: device counted tx0 %llu rx0 %llu, "
		       "no drops", t->name, (unsigned long long)st.q[1].requests,
		       (unsigned long long)st.q[0].requests);
	net_suspend_resume(t, x);
	vdpa_net_close(x->net);
out:
	free(x);
}

/* ---- blk ----------------------------------------------------------------- */

struct blkt {
	struct vdpa_blk *blk;
	uint64_t cap;
	struct {
		uint64_t sector;
		uint32_t len, type, gen;
	} req[MAX_TOK];
	uint8_t done[MAX_TOK];
	uint32_t gen[NEXT + 1];		/* generation each extent holds */
	uint64_t next_tok, completed;
	unsigned int bad, bad_data, bad_status;
	char id[VIRTIO_BLK_ID_BYTES + 1];
};

static uint64_t ext_sector(const struct blkt *x, unsigned int e)
{
	return e < NEXT ? 8ull * e : x->cap - 8;	/* the last: at the end */
}

static uint32_t ext_len(unsigned int e)
{
	static const uint32_t l[3] = { 512, 1024, 4096 };

	return e == NEXT ? 4096 : l[e % 3];
}

static uint8_t bpat(uint64_t sector, uint32_t gen, size_t i)
{
	uint64_t s = sector + i / 512;

	return (uint8_t)(s * 37 + gen * 101 + (i % 512) * 3 + 1);
}

static int blk_submit(struct blkt *x, uint32_t type, unsigned int e,
		      uint32_t gen)
{
	uint64_t tok = x->next_tok, sector = ext_sector(x, e);
	uint32_t len = ext_len(e);
	uint8_t buf[4096];
	size_t i;
	int r;

	if (tok >= MAX_TOK)
		return -E2BIG;
	switch (type) {
	case VIRTIO_BLK_T_OUT:
		for (i = 0; i < len; i++)
			buf[i] = bpat(sector, gen, i);
		r = vdpa_blk_write(x->blk, sector, buf, len, tok);
		break;
	case VIRTIO_BLK_T_IN:
		gen = x->gen[e];
		r = vdpa_blk_read(x->blk, sector, len, tok);
		break;
	case VIRTIO_BLK_T_FLUSH:
		r = vdpa_blk_flush(x->blk, tok);
		break;
	default:
		r = vdpa_blk_get_id(x->blk, tok);
		break;
	}
	if (r < 0)
		return r;
	x->req[tok].sector = sector;
	x->req[tok].len = len;
	x->req[tok].type = type;
	x->req[tok].gen = gen;
	x->next_tok++;
	return 0;
}

static void blk_complete(struct blkt *x, const struct vdpa_blk_completion *c)
{
	uint64_t tok = c->token;
	size_t i;

	if (tok >= x->next_tok || c->type != x->req[tok].type) {
		x->bad++;
		return;
	}
	if (x->done[tok] < 255)
		x->done[tok]++;
	x->completed++;
	if (c->status != VIRTIO_BLK_S_OK) {
		x->bad_status++;
		return;
	}
	if (c->type == VIRTIO_BLK_T_IN) {
		const uint8_t *d = c->data;

		if (c->len != x->req[tok].len || c->sector != x->req[tok].sector) {
			x->bad++;
			return;
		}
		/* generation 0: never written here, contents unknown */
		for (i = 0; x->req[tok].gen && i < c->len; i++)
			if (d[i] != bpat(c->sector, x->req[tok].gen, i)) {
				x->bad_data++;
				return;
			}
	} else if (c->type == VIRTIO_BLK_T_GET_ID) {
		memcpy(x->id, c->data, c->len < VIRTIO_BLK_ID_BYTES ? c->len :
		       VIRTIO_BLK_ID_BYTES);
		x->id[VIRTIO_BLK_ID_BYTES] = 0;
	}
}

static void blk_pump(struct blkt *x, uint64_t want, unsigned int ms)
{
	uint64_t end = now_ms() + ms;
	struct vdpa_blk_completion c;
	int r;

	for (;;) {
		while ((r = vdpa_blk_poll(x->blk, &c)) > 0)
			blk_complete(x, &c);
		if (r < 0)
			x->bad++;
		if (x->completed >= want || now_ms() > end)
			return;
		vdpa_blk_wait(x->blk, 20);
	}
}

static bool blk_all_once(const struct blkt *x, char *why, size_t len)
{
	uint64_t t;

	if (x->bad || x->bad_data || x->bad_status) {
		snprintf(why, len, "%u bad completions, %u data mismatches, "
			 "%u error statuses", x->bad, x->bad_data,
			 x->bad_status);
		return false;
	}
	for (t = 0; t < x->next_tok; t++)
		if (x->done[t] != 1) {
			snprintf(why, len, "request %llu completed %u times",
				 (unsigned long long)t, x->done[t]);
			return false;
		}
	why[0] = 0;
	return true;
}

/* Submit one request per extent in [first, last] as slots allow, kick, wait. */
static bool blk_batch(struct blkt *x, uint32_t type, uint32_t gen,
		      char *why, size_t len)
{
	unsigned int e = 0;
	int r;

	while (e <= NEXT) {
		while (e <= NEXT && vdpa_blk_free_slots(x->blk)) {
			r = blk_submit(x, type, e, gen);
			if (r < 0) {
				snprintf(why, len, "submit: %d", r);
				return false;
			}
			if (type == VIRTIO_BLK_T_OUT)
				x->gen[e] = gen;
			e++;
		}
		vdpa_blk_kick(x->blk);
		blk_pump(x, x->next_tok, WAIT_MS);
		if (!blk_all_once(x, why, len))
			return false;
	}
	return true;
}

static bool blk_one(struct blkt *x, uint32_t type, char *why, size_t len)
{
	int r = blk_submit(x, type, 0, 0);

	if (r < 0) {
		snprintf(why, len, "submit: %d", r);
		return false;
	}
	vdpa_blk_kick(x->blk);
	blk_pump(x, x->next_tok, WAIT_MS);
	return blk_all_once(x, why, len);
}

/* File bytes of extent e equal generation gen's pattern (0: zeroes). */
static bool file_has(const struct target *t, const struct blkt *x,
		     unsigned int e, uint32_t gen)
{
	uint8_t buf[4096];
	uint32_t len = ext_len(e), i;
	int fd = open(t->backing, O_RDONLY | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return false;
	ok = pread(fd, buf, len, (off_t)(ext_sector(x, e) * 512)) == len;
	close(fd);
	for (i = 0; ok && i < len; i++)
		ok = buf[i] == (gen ? bpat(ext_sector(x, e), gen, i) : 0);
	return ok;
}

static void blk_badinput(struct target *t, struct blkt *x)
{
	unsigned int slots = vdpa_blk_free_slots(x->blk), n = 0;
	uint8_t buf[512] = { 0 };
	char why[160];
	uint64_t tok = x->next_tok;
	bool ok;

	tap_is(vdpa_blk_write(x->blk, 0, buf, 0, tok), -EINVAL,
	       "%s: write of 0 bytes -> EINVAL", t->name);
	tap_is(vdpa_blk_write(x->blk, 0, buf, 100, tok), -EINVAL,
	       "%s: write of 100 bytes (not a sector multiple) -> EINVAL",
	       t->name);
	tap_is(vdpa_blk_read(x->blk, 0, 32768, tok), -EINVAL,
	       "%s: read of 32 KiB (> max_io) -> EINVAL", t->name);
	tap_is(vdpa_blk_write(x->blk, 0, NULL, 512, tok), -EINVAL,
	       "%s: write of a NULL buffer -> EINVAL", t->name);
	tap_is(vdpa_blk_write(x->blk, x->cap, buf, 512, tok), -ERANGE,
	       "%s: write at the capacity -> ERANGE", t->name);
	tap_is(vdpa_blk_read(x->blk, x->cap - 1, 1024, tok), -ERANGE,
	       "%s: read of 2 sectors from the last one -> ERANGE", t->name);
	tap_is(vdpa_blk_read(x->blk, UINT64_MAX, 512, tok), -ERANGE,
	       "%s: read at sector 2^64-1 -> ERANGE", t->name);
	tap_is(vdpa_blk_free_slots(x->blk), slots, "%s: refused requests "
	       "took no slot", t->name);
	/* fill every slot: the next one -> ENOSPC */
	while (vdpa_blk_free_slots(x->blk) &&
	       blk_submit(x, VIRTIO_BLK_T_IN, n % (NEXT + 1), 0) == 0)
		n++;
	tap_ok(n == slots && vdpa_blk_read(x->blk, 0, 512, x->next_tok) ==
	       -ENOSPC, "%s: %u requests fill the queue, one more -> ENOSPC",
	       t->name, n);
	vdpa_blk_kick(x->blk);
	blk_pump(x, x->next_tok, WAIT_MS);
	ok = blk_all_once(x, why, sizeof(why));
	tap_ok(ok && vdpa_blk_free_slots(x->blk) == slots,
	       "%s: they all complete, slots free again%s%s", t->name,
	       *why ? ": " : "", why);
}

static void blk_suspend_resume(struct target *t, struct blkt *x)
{
	uint64_t q0[VSIM_MAX_VQS], q1[VSIM_MAX_VQS], before;
	unsigned int e, n = 0;
	struct vsim_status st;
	uint16_t b0 = 0, b1 = 1;
	char why[160];
	bool ok;
	int r;

	if (!checked_suspend(t)) {
		ok = blk_batch(x, VIRTIO_BLK_T_OUT, 7, why, sizeof(why)) &&
		     blk_batch(x, VIRTIO_BLK_T_IN, 0, why, sizeof(why));
		tap_ok(ok, "%s: the device kept running: writes and reads%s%s",
		       t->name, *why ? ": " : "", why);
		r = vdpa_dev_resume(t->dev);
		tap_is(r, t->caps.resume ? 0 : -EOPNOTSUPP,
		       "%s: resume of a running device", t->name);
		return;
	}
	r = vdpa_dev_get_vring_base(t->dev, 0, &b0);
	tap_ok(r == 0 && b0 == (uint16_t)x->next_tok, "%s: vring base after "
	       "suspend = requests taken (%u)", t->name, b0);
	sim_requests(t, q0);
	before = x->completed;
	for (e = 0; e <= NEXT && vdpa_blk_free_slots(x->blk); e++)
		if (blk_submit(x, VIRTIO_BLK_T_OUT, e, 9) == 0) {
			x->gen[e] = 9;
			n++;
		}
	vdpa_blk_kick(x->blk);
	blk_pump(x, before + 1, QUIET_MS);
	tap_ok(n > 0 && x->completed == before, "%s: suspended: %u writes "
	       "posted and kicked, none completed", t->name, n);
	r = vdpa_dev_get_vring_base(t->dev, 0, &b1);
	tap_ok(r == 0 && b1 == b0, "%s: GET_VRING_BASE stable while suspended "
	       "(%u)", t->name, b1);
	sim_requests(t, q1);
	if (t->thr)
		tap_ok(!memcmp(q0, q1, sizeof(q0)), "%s: device counted no "
		       "request while suspended", t->name);

	if (!checked_resume(t)) {
		blk_pump(x, before + 1, QUIET_MS);
		tap_ok(x->completed == before, "%s: still suspended: nothing "
		       "completed", t->name);
		if (sim_status(t, &st))
			tap_ok(st.suspended, "%s: device still suspended",
			       t->name);
		return;
	}
	blk_pump(x, x->next_tok, WAIT_MS);
	ok = blk_all_once(x, why, sizeof(why));
	tap_ok(ok && x->completed == before + n,
	       "%s: after resume the %u writes complete, each exactly once%s%s",
	       t->name, n, *why ? ": " : "", why);
	r = vdpa_dev_get_vring_base(t->dev, 0, &b1);
	tap_ok(r == 0 && b1 == (uint16_t)x->next_tok, "%s: vring base advanced "
	       "by exactly those (%u)", t->name, b1);
	ok = blk_batch(x, VIRTIO_BLK_T_IN, 0, why, sizeof(why));
	tap_ok(ok, "%s: reads after resume return the data written while "
	       "suspended%s%s", t->name, *why ? ": " : "", why);
}

static void blk_case(struct target *t)
{
	struct vdpa_blk_opts o = { 0 };
	struct vsim_status st;
	uint64_t flushes = 0;
	struct blkt *x;
	uint16_t size;
	uint8_t s = 0;
	char why[160];
	unsigned int e;
	bool ok;
	int r;

	x = calloc(1, sizeof(*x));
	if (!x) {
		tap_ok(0, "%s: memory", t->name);
		return;
	}
	if (!check_map(t, 4u << 20))
		goto out;
	o.max_io = 16384;
	o.no_event_idx = t->tc->no_event_idx;
	r = vdpa_blk_open(t->dev, t->mem, &o, &x->blk);
	if (!tap_is_ok(r, 0, "%s: blk_open", t->name))
		goto out;
	x->cap = vdpa_blk_capacity(x->blk);
	size = t->caps.vq_max_size < 256 ? t->caps.vq_max_size : 256;
	tap_ok(vdpa_blk_block_size(x->blk) == 512 &&
	       vdpa_blk_free_slots(x->blk) == size / 3u &&
	       vdpa_vq_size(vdpa_blk_vq(x->blk)) == size &&
	       (t->real || x->cap == t->o.capacity),
	       "%s: capacity %llu sectors, block size %u, %u slots on a ring "
	       "of %u", t->name, (unsigned long long)x->cap,
	       vdpa_blk_block_size(x->blk), vdpa_blk_free_slots(x->blk),
	       vdpa_vq_size(vdpa_blk_vq(x->blk)));
	r = vdpa_dev_get_status(t->dev, &s);
	tap_ok(r == 0 && (s & VIRTIO_CONFIG_S_DRIVER_OK) && !(s & 0x40),
	       "%s: DRIVER_OK, no NEEDS_RESET (0x%02x)", t->name, s);
	if (sim_status(t, &st)) {
		flushes = st.flushes;
		tap_ok(!!(st.features & BIT(VIRTIO_RING_F_EVENT_IDX)) ==
		       !t->tc->no_event_idx, "%s: EVENT_IDX %s as asked",
		       t->name, t->tc->no_event_idx ? "off" : "on");
	}
	blk_badinput(t, x);

	/* write every extent, read it back; the ring wraps several times */
	ok = blk_batch(x, VIRTIO_BLK_T_OUT, 1, why, sizeof(why));
	tap_ok(ok, "%s: %u writes of 512..4096 bytes (incl. the last sectors) "
	       "complete once each%s%s", t->name, NEXT + 1, *why ? ": " : "",
	       why);
	if (t->tc->writeback && sim_status(t, &st)) {
		for (e = 0; e <= NEXT && file_has(t, x, e, 0); e++)
			;
		tap_ok(e == NEXT + 1 && st.dirty_sectors > 0,
		       "%s: write-back: written data is not on the disk yet "
		       "(%llu dirty sectors in the device)", t->name,
		       (unsigned long long)st.dirty_sectors);
	} else if (sim_status(t, &st)) {
		tap_ok(st.dirty_sectors == 0, "%s: write-through: nothing "
		       "held back in the device", t->name);
	}
	ok = blk_batch(x, VIRTIO_BLK_T_IN, 0, why, sizeof(why));
	tap_ok(ok, "%s: reading every extent back: data verified%s%s",
	       t->name, *why ? ": " : "", why);
	ok = blk_batch(x, VIRTIO_BLK_T_OUT, 2, why, sizeof(why)) &&
	     blk_batch(x, VIRTIO_BLK_T_IN, 0, why, sizeof(why));
	tap_ok(ok, "%s: overwritten and read back again%s%s", t->name,
	       *why ? ": " : "", why);
	ok = blk_one(x, VIRTIO_BLK_T_FLUSH, why, sizeof(why));
	tap_ok(ok, "%s: flush completes OK%s%s", t->name, *why ? ": " : "",
	       why);
	if (sim_status(t, &st)) {
		tap_ok(st.flushes == flushes + 1 && st.dirty_sectors == 0,
		       "%s: the device flushed once, nothing dirty", t->name);
		if (t->tc->writeback) {
			for (e = 0; e <= NEXT && file_has(t, x, e, 2); e++)
				;
			tap_ok(e == NEXT + 1, "%s: write-back: after FLUSH the "
			       "disk file holds the data", t->name);
		}
	}
	ok = blk_one(x, VIRTIO_BLK_T_GET_ID, why, sizeof(why));
	if (t->real) {
		size_t i, l = strlen(x->id);

		for (i = 0; i < l && x->id[i] >= 0x20 && x->id[i] < 0x7f; i++)
			;
		tap_ok(ok && l > 0 && i == l, "%s: get-id: \"%s\"", t->name,
		       x->id);
	} else {
		tap_ok(ok && !strcmp(x->id, "vdpa-sim-blk"), "%s: get-id: "
		       "\"%s\"%s%s", t->name, x->id, *why ? ": " : "", why);
	}
	blk_suspend_resume(t, x);
	vdpa_blk_close(x->blk);
out:
	free(x);
}

/* ---- one configuration, start to end ------------------------------------- */

static void run_case(const struct tcase *tc, unsigned int nr)
{
	int fds0 = tap_count_fds(), r;
	struct target t;

	r = target_start(&t, tc, nr);
	if (!tap_is_ok(r, 0, "%s: open", tc->name)) {
		target_stop(&t);
		return;
	}
	if (check_caps(&t)) {
		check_backend(&t);
		check_features_status(&t);
		check_config(&t);
		if (tc->spawn)
			check_range_spawned(&t);
		if (t.type == VIRTIO_ID_NET)
			net_case(&t);
		else
			blk_case(&t);
	}
	target_stop(&t);
	tap_is(tap_count_fds(), fds0, "%s: every fd closed after the device",
	       tc->name);
}

/* ---- IOTLB range (thread simulator, device-side view) -------------------- */

/*
 * The device sets NEEDS_RESET behind the library's back: the next
 * vdpa_dev_add_status() must not trust the status it read back before
 * (writing it would clear NEEDS_RESET, which the device refuses) but read
 * it again and still succeed, NEEDS_RESET kept.
 */
static void test_status_behind_back(void)
{
	int fds0 = tap_count_fds(), fd, r;
	struct vsim_thread *thr = NULL;
	struct vdpa_dev *dev = NULL;
	struct vdpa_mem *mem = NULL;
	struct vdpa_net *net = NULL;
	struct vsim_status st;
	struct vsim_opts o;
	struct vdpa_sg sg;
	void *buf = NULL;
	uint8_t s = 0;
	unsigned int i;

	vsim_opts_init(&o, VSIM_TYPE_NET);
	r = vsim_thread_start(&o, &fd, &thr);
	if (!r)
		r = vdpa_dev_open_sim_fd(fd, "behind", &dev);
	if (!r)
		r = vdpa_mem_create(4u << 20, 1u << 30, &mem);
	if (!r)
		r = vdpa_net_open(dev, mem, NULL, &net);
	if (!r)
		r = vdpa_mem_alloc(mem, 256, 64, &buf);
	if (!tap_is_ok(r, 0, "status behind the back: net device running"))
		goto out;
	/* a writable descriptor on TX: the device must give up on it */
	sg.addr = buf;
	sg.len = 256;
	r = vdpa_vq_add(vdpa_net_vq(net, 1), &sg, 0, 1, 7);
	if (!r)
		r = vdpa_vq_kick(vdpa_net_vq(net, 1));
	tap_is(r, 0, "status behind the back: bad TX chain posted");
	for (i = 0; i < 200; i++) {
		vsim_get_status(vsim_thread_sim(thr), &st);
		if (st.status & VIRTIO_CONFIG_S_NEEDS_RESET)
			break;
		usleep(10000);
	}
	tap_ok(st.status & VIRTIO_CONFIG_S_NEEDS_RESET,
	       "status behind the back: device set NEEDS_RESET (%s)",
	       st.reset_reason);
	tap_is(vdpa_dev_add_status(dev, VIRTIO_CONFIG_S_DRIVER_OK), 0,
	       "status behind the back: add_status reads again and succeeds");
	r = vdpa_dev_get_status(dev, &s);
	tap_ok(r == 0 && (s & VIRTIO_CONFIG_S_NEEDS_RESET) &&
	       (s & VIRTIO_CONFIG_S_DRIVER_OK),
	       "status behind the back: NEEDS_RESET kept (0x%02x)", s);
out:
	vdpa_net_close(net);
	vdpa_dev_close(dev);
	vdpa_mem_destroy(mem);
	vsim_thread_stop(thr);
	tap_is(tap_count_fds(), fds0, "status behind the back: no fd leaked");
}

/*
 * vdpa_vq_preattach() sets size and addresses ahead (a migration
 * destination before the source stops); the attach then sends only BASE,
 * KICK and CALL, unless a reset came in between.
 */
static void test_preattach(void)
{
	int fds0 = tap_count_fds(), fd, r;
	struct vsim_thread *thr = NULL;
	struct vdpa_dev *dev = NULL;
	struct vdpa_mem *mem = NULL;
	struct vdpa_vq *vq = NULL;
	struct vsim_opts o;
	unsigned int req0, num0, addr0;
	struct vdpa_caps caps;
	uint64_t feat = (1ULL << VIRTIO_F_VERSION_1) |
			(1ULL << VIRTIO_F_ACCESS_PLATFORM);
	uint16_t base = 0;

	vsim_opts_init(&o, VSIM_TYPE_NET);
	r = vsim_thread_start(&o, &fd, &thr);
	if (!r)
		r = vdpa_dev_open_sim_fd(fd, "pre", &dev);
	if (!r)
		r = vdpa_dev_set_backend_features(dev, 0, NULL);
	if (!r)
		r = vdpa_dev_get_caps(dev, &caps);
	if (!r)
		r = vdpa_dev_set_features(dev, feat & caps.features);
	if (!r)
		r = vdpa_mem_create(1u << 20, 1u << 30, &mem);
	if (!r)
		r = vdpa_mem_map(dev, mem);
	if (!r)
		r = vdpa_vq_create(mem, 64, false, &vq);
	if (!tap_is_ok(r, 0, "preattach: device at FEATURES_OK, a ring"))
		goto out;
	tap_is(vdpa_vq_preattach(NULL, dev, 0), -EINVAL,
	       "preattach: NULL ring -> EINVAL");
	num0 = lib.nums;
	addr0 = lib.addrs;
	tap_is(vdpa_vq_preattach(vq, dev, 0), 0, "preattach: NUM and ADDR");
	tap_ok(lib.nums == num0 + 1 && lib.addrs == addr0 + 1,
	       "preattach: one SET_VRING_NUM and one SET_VRING_ADDR sent");
	req0 = lib.requests;
	tap_is(vdpa_vq_attach(vq, dev, 0, 7), 0, "preattach: attach");
	tap_ok(lib.requests == req0 + 3 && lib.nums == num0 + 1 &&
	       lib.addrs == addr0 + 1,
	       "preattach: attach sent only BASE, KICK, CALL (%u requests)",
	       lib.requests - req0);
	r = vdpa_dev_get_vring_base(dev, 0, &base);
	tap_ok(r == 0 && base == 7, "preattach: the device has the base (%u)",
	       base);
	/* after a reset nothing is assumed: the attach sends all five */
	r = vdpa_dev_reset(dev);
	if (!r)
		r = vdpa_dev_set_features(dev, feat & caps.features);
	req0 = lib.requests;
	tap_ok(r == 0 && vdpa_vq_attach(vq, dev, 0, 0) == 0 &&
	       lib.requests == req0 + 5 && lib.nums == num0 + 2,
	       "preattach: after a reset, attach sends NUM and ADDR again");
out:
	vdpa_vq_destroy(vq);
	vdpa_dev_close(dev);
	vdpa_mem_destroy(mem);
	vsim_thread_stop(thr);
	tap_is(tap_count_fds(), fds0, "preattach: no fd leaked");
}

static void test_iotlb_range(void)
{
	static const struct { uint64_t iova; size_t len; const char *what; }
	c[] = {
		{ 0xff000, 0x1000, "below the range" },
		{ 0x101000, 0x100000, "running past its end" },
		{ 0x200000, 0x1000, "above the range" },
	};
	int fds0 = tap_count_fds(), fd, r;
	struct vdpa_mem *m = NULL, *many[17] = { NULL };
	struct vsim_thread *thr = NULL;
	struct vdpa_dev *dev = NULL;
	struct vsim_status st;
	struct vsim_opts o;
	unsigned int i;

	vsim_opts_init(&o, VSIM_TYPE_NET);
	o.iova_first = 0x100000;
	o.iova_last = 0x1fffff;
	r = vsim_thread_start(&o, &fd, &thr);
	if (!r)
		r = vdpa_dev_open_sim_fd(fd, "range", &dev);
	if (!r)
		r = vdpa_dev_set_backend_features(dev, 0, NULL);
	if (!tap_is_ok(r, 0, "iotlb range: device with IOVA range "
		       "0x100000-0x1fffff"))
		goto out;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		r = vdpa_mem_create(c[i].len, c[i].iova, &m);
		if (!r)
			r = vdpa_mem_map(dev, m);
		tap_is(r, -ERANGE, "iotlb range: region at 0x%llx+0x%zx (%s) "
		       "-> ERANGE", (unsigned long long)c[i].iova, c[i].len,
		       c[i].what);
		vdpa_mem_destroy(m);
		m = NULL;
	}
	vsim_get_status(vsim_thread_sim(thr), &st);
	tap_ok(st.mem_regions == 0 && st.iotlb_entries == 0,
	       "iotlb range: nothing of the refused regions reached the device");
	r = vdpa_mem_create(0x100000, 0x100000, &m);
	if (!r)
		r = vdpa_mem_map(dev, m);
	vsim_get_status(vsim_thread_sim(thr), &st);
	tap_ok(r == 0 && st.mem_regions == 1 && st.iotlb_entries == 1,
	       "iotlb range: a region filling the range exactly is mapped");
	tap_is(vdpa_mem_map(dev, m), -EEXIST, "iotlb range: mapped twice -> "
	       "EEXIST");
	r = vdpa_mem_unmap(dev, m);
	vsim_get_status(vsim_thread_sim(thr), &st);
	tap_ok(r == 0 && st.mem_regions == 0 && st.iotlb_entries == 0,
	       "iotlb range: unmap removes region and IOTLB entry");
	tap_is(vdpa_mem_map(dev, m), 0, "iotlb range: mapped again after unmap");
	vdpa_mem_unmap(dev, m);
	/* 16 regions per device; the 17th -> ENOSPC */
	for (i = 0, r = 0; i < 17; i++) {
		r = vdpa_mem_create(pg, 0x100000 + i * pg, &many[i]);
		if (!r)
			r = vdpa_mem_map(dev, many[i]);
		if (r)
			break;
	}
	vsim_get_status(vsim_thread_sim(thr), &st);
	tap_ok(i == 16 && r == -ENOSPC && st.mem_regions == 16 &&
	       st.iotlb_entries == 16, "iotlb range: 16 regions mapped, the "
	       "17th -> ENOSPC (stopped at %u: %d)", i, r);
	for (i = 0; i < 17; i++) {
		if (many[i])
			vdpa_mem_unmap(dev, many[i]);
		vdpa_mem_destroy(many[i]);
	}
	vsim_get_status(vsim_thread_sim(thr), &st);
	tap_ok(st.mem_regions == 0 && st.iotlb_entries == 0,
	       "iotlb range: all unmapped again");
out:
	vdpa_dev_close(dev);
	vdpa_mem_destroy(m);
	vsim_thread_stop(thr);
	tap_is(tap_count_fds(), fds0, "iotlb range: no fd leaked");
}

/* ---- a device without IOTLB_MSG_V2 (a fake peer on the wire) ------------- */

struct fake {
	int sock;
	uint64_t offered;		/* backend features */
	unsigned int requests;		/* after HELLO */
	unsigned int set_backend;
	uint64_t set_backend_val;
	pthread_t th;
	bool started;
};

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	uint8_t buf[VSIM_MAX_PAYLOAD], rep[64];
	struct vsim_hdr h, out;
	uint64_t u64;
	uint32_t u32;
	uint16_t u16;
	int fd;

	while (vsim_recv(f->sock, &h, buf, sizeof(buf), &fd) == 0) {
		if (fd >= 0)
			close(fd);
		memset(&out, 0, sizeof(out));
		memset(rep, 0, sizeof(rep));
		out.request = h.request;
		out.flags = VSIM_F_REPLY;
		if (h.request != VSIM_REQ_HELLO)
			__atomic_add_fetch(&f->requests, 1, __ATOMIC_SEQ_CST);
		if (_IOC_TYPE(h.request) == VHOST_VIRTIO &&
		    (_IOC_DIR(h.request) & _IOC_READ))
			out.size = _IOC_SIZE(h.request);
		switch (h.request) {
		case VSIM_REQ_HELLO: {
			struct vsim_hello hl = { VSIM_WIRE_MAGIC,
						 VSIM_WIRE_VERSION,
						 VIRTIO_ID_NET, 0 };

			memcpy(rep, &hl, sizeof(hl));
			out.size = sizeof(hl);
			break;
		}
		case VHOST_SET_OWNER:
			break;
		case VHOST_GET_FEATURES:
			u64 = BIT(VIRTIO_F_VERSION_1) |
			      BIT(VIRTIO_F_ACCESS_PLATFORM);
			memcpy(rep, &u64, 8);
			break;
		case VHOST_GET_BACKEND_FEATURES:
			memcpy(rep, &f->offered, 8);
			break;
		case VHOST_SET_BACKEND_FEATURES:
			memcpy(&u64, buf, 8);
			__atomic_store_n(&f->set_backend_val, u64,
					 __ATOMIC_SEQ_CST);
			__atomic_add_fetch(&f->set_backend, 1, __ATOMIC_SEQ_CST);
			break;
		case VHOST_VDPA_GET_VQS_COUNT:
			u32 = 3;
			memcpy(rep, &u32, 4);
			break;
		case VHOST_VDPA_GET_VRING_NUM:
			u16 = 256;
			memcpy(rep, &u16, 2);
			break;
		case VHOST_VDPA_GET_CONFIG_SIZE:
			u32 = 24;
			memcpy(rep, &u32, 4);
			break;
		case VHOST_VDPA_GET_IOVA_RANGE: {
			struct vhost_vdpa_iova_range ir = { 0, UINT64_MAX };

			memcpy(rep, &ir, sizeof(ir));
			break;
		}
		default:
			out.result = -ENOTTY;
			out.size = 0;
			break;
		}
		if (vsim_send(f->sock, &out, rep, -1) < 0)
			break;
	}
	close(f->sock);
	return NULL;
}

static int fake_start(struct fake *f, uint64_t offered, struct vdpa_dev **dev)
{
	int sv[2], r;

	memset(f, 0, sizeof(*f));
	f->offered = offered;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	f->sock = sv[1];
	r = -pthread_create(&f->th, NULL, fake_main, f);
	if (r) {
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	f->started = true;
	return vdpa_dev_open_sim_fd(sv[0], "fake", dev);
}

static void test_fake_backend(void)
{
	uint64_t v2 = BIT(VHOST_BACKEND_F_IOTLB_MSG_V2), acked = 0x5a5a;
	int fds0 = tap_count_fds(), r;
	struct vdpa_net *net = NULL;
	struct vdpa_mem *m = NULL;
	struct vdpa_dev *dev = NULL;
	unsigned int req;
	struct fake f;

	r = fake_start(&f, BIT(VHOST_BACKEND_F_IOTLB_BATCH) |
		       BIT(VHOST_BACKEND_F_SUSPEND), &dev);
	if (tap_is_ok(r, 0, "fake device without IOTLB_MSG_V2: open")) {
		r = vdpa_dev_set_backend_features(dev, ~0ULL, &acked);
		tap_ok(r == -ENOTSUP && acked == 0x5a5a &&
		       __atomic_load_n(&f.set_backend, __ATOMIC_SEQ_CST) == 0,
		       "no IOTLB_MSG_V2: set_backend_features -> ENOTSUP (%d), "
		       "nothing sent, *ret_acked untouched", r);
		vdpa_mem_create(1u << 20, MEM_IOVA, &m);
		r = vdpa_net_open(dev, m, NULL, &net);
		tap_ok(r == -ENOTSUP && !net, "no IOTLB_MSG_V2: net_open -> "
		       "ENOTSUP (%d)", r);
		vdpa_net_close(net);
		vdpa_mem_destroy(m);
		m = NULL;
	}
	vdpa_dev_close(dev);
	dev = NULL;
	if (f.started)
		pthread_join(f.th, NULL);

	r = fake_start(&f, v2 | BIT(VHOST_BACKEND_F_IOTLB_BATCH), &dev);
	if (tap_is_ok(r, 0, "fake device offering V2|BATCH: open")) {
		r = vdpa_dev_set_backend_features(dev,
			BIT(VHOST_BACKEND_F_SUSPEND) | BIT(VHOST_BACKEND_F_RESUME) |
			BIT(VHOST_BACKEND_F_IOTLB_BATCH) | BIT(63), &acked);
		tap_ok(r == 0 && acked == (v2 | BIT(VHOST_BACKEND_F_IOTLB_BATCH)) &&
		       __atomic_load_n(&f.set_backend, __ATOMIC_SEQ_CST) == 1 &&
		       __atomic_load_n(&f.set_backend_val, __ATOMIC_SEQ_CST) ==
		       acked, "only offered bits go on the wire: "
		       "SET_BACKEND_FEATURES(0x%llx)", (unsigned long long)
		       __atomic_load_n(&f.set_backend_val, __ATOMIC_SEQ_CST));
		req = __atomic_load_n(&f.requests, __ATOMIC_SEQ_CST);
		tap_ok(vdpa_dev_suspend(dev) == -EOPNOTSUPP &&
		       vdpa_dev_resume(dev) == -EOPNOTSUPP &&
		       __atomic_load_n(&f.requests, __ATOMIC_SEQ_CST) == req,
		       "suspend/resume not negotiated: EOPNOTSUPP and not a "
		       "single request on the wire");
	}
	vdpa_dev_close(dev);
	if (f.started)
		pthread_join(f.th, NULL);
	tap_is(tap_count_fds(), fds0, "fake devices: no fd leaked");
}

/* ---- the request trace the counts above rely on ------------------------- */

/*
 * vdpa_set_trace(): one call per request that reaches the device, with
 * its code, argument (outputs filled in), result and device; none for a
 * call refused before it is sent; none once turned off. The "no request
 * was sent" checks of this file are only as good as this.
 */
static void test_trace(void)
{
	struct vsim_thread *thr = NULL;
	struct vdpa_dev *dev = NULL;
	struct vsim_opts o;
	unsigned int req, nums;
	uint8_t s = 0xff;
	int fd, r;

	vsim_opts_init(&o, VSIM_TYPE_NET);
	r = vsim_thread_start(&o, &fd, &thr);
	if (!r)
		r = vdpa_dev_open_sim_fd(fd, "trace", &dev);
	if (!tap_is_ok(r, 0, "trace: a device"))
		goto out;
	r = vdpa_dev_add_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	req = lib.requests;
	lib.last_status = 0xee;
	if (!r)
		r = vdpa_dev_call(dev, VHOST_VDPA_GET_STATUS, &s);
	tap_ok(r == 0 && s == VIRTIO_CONFIG_S_ACKNOWLEDGE &&
	       lib.requests == req + 1 &&
	       lib.last_request == VHOST_VDPA_GET_STATUS &&
	       lib.last_result == 0 && lib.last_dev == dev &&
	       lib.last_arg == &s && lib.last_status == s,
	       "trace: one GET_STATUS, traced once with its device, argument "
	       "(status 0x%02x read back) and result", s);
	req = lib.requests;
	nums = lib.nums;
	r = vdpa_dev_call(dev, VHOST_SET_VRING_NUM,
			  &(struct vhost_vring_state){ .index = 999,
						       .num = 8 });
	tap_ok(r < 0 && lib.requests == req + 1 && lib.nums == nums &&
	       lib.last_request == VHOST_SET_VRING_NUM && lib.last_result == r,
	       "trace: a request the device refuses is traced with its "
	       "error (%d)", r);
	req = lib.requests;
	tap_ok(vdpa_dev_call(NULL, VHOST_VDPA_GET_STATUS, &s) == -EBADF &&
	       vdpa_dev_suspend(dev) == -EOPNOTSUPP && lib.requests == req,
	       "trace: calls refused before they are sent are not traced");
	vdpa_set_trace(NULL, NULL);
	r = vdpa_dev_call(dev, VHOST_VDPA_GET_STATUS, &s);
	vdpa_set_trace(lib_trace, NULL);
	tap_ok(r == 0 && lib.requests == req, "trace: turned off, nothing is "
	       "traced");
out:
	vdpa_dev_close(dev);
	vsim_thread_stop(thr);
}

/* ---- opening ------------------------------------------------------------- */

static void test_open_errors(void)
{
	struct vdpa_dev *dev = NULL, *sentinel = (struct vdpa_dev *)&dev;
	const char *args[] = { "--type", "blk", NULL };
	int fds0 = tap_count_fds(), r;
	char sock[300], name[310];
	pid_t pid;

	dev = sentinel;
	tap_is(vdpa_dev_open("nonsense", &dev), -EINVAL, "open(\"nonsense\") "
	       "-> EINVAL");
	tap_is(vdpa_dev_open(NULL, &dev), -EINVAL, "open(NULL) -> EINVAL");
	snprintf(name, sizeof(name), "sim:%s/nobody-here.sock", tmpdir);
	tap_is(vdpa_dev_open(name, &dev), -ENOENT, "open(sim: no socket) -> "
	       "ENOENT");
	tap_ok(dev == sentinel, "failed opens leave *ret_dev untouched");
	snprintf(sock, sizeof(sock), "%s/busy.sock", tmpdir);
	snprintf(name, sizeof(name), "sim:%s", sock);
	pid = tu_spawn_sim(sock, args);
	/* the suite builds vdpa-sim: not finding it is a failure, not a skip */
	if (!tap_ok(pid > 0, "vdpa-sim process for the busy test (%s)",
		    pid > 0 ? "started" : strerror((int)-pid)))
		return;
	r = vdpa_dev_open(name, &dev);
	if (tap_is_ok(r, 0, "open a vdpa-sim process by sim:PATH")) {
		struct vdpa_dev *d2 = sentinel;

		tap_is(vdpa_dev_open(name, &d2), -EBUSY, "a second open of the "
		       "same device -> EBUSY");
		tap_ok(d2 == sentinel, "and *ret_dev untouched");
		vdpa_dev_close(dev);
		d2 = NULL;
		r = vdpa_dev_open(name, &d2);
		tap_is(r, 0, "after close the device opens again");
		vdpa_dev_close(d2);
	}
	tu_stop_sim(pid, false);
	tap_is(tap_count_fds(), fds0, "open errors: no fd leaked");
}

static const struct tcase cases[] = {
	{ .name = "net default", .type = VSIM_TYPE_NET },
	{ .name = "net --no-suspend", .type = VSIM_TYPE_NET, .no_suspend = true },
	{ .name = "net --no-resume", .type = VSIM_TYPE_NET, .no_resume = true },
	{ .name = "net --no-state", .type = VSIM_TYPE_NET, .no_state = true,
	  .no_event_idx = true },
	{ .name = "net --vq-size 64", .type = VSIM_TYPE_NET, .vq_size = 64 },
	{ .name = "net --queue-pairs 4", .type = VSIM_TYPE_NET,
	  .queue_pairs = 4 },
	{ .name = "net process (sim:PATH)", .type = VSIM_TYPE_NET, .spawn = true },
	{ .name = "blk default", .type = VSIM_TYPE_BLK },
	{ .name = "blk --no-suspend", .type = VSIM_TYPE_BLK, .no_suspend = true },
	{ .name = "blk --no-resume", .type = VSIM_TYPE_BLK, .no_resume = true },
	{ .name = "blk --no-state", .type = VSIM_TYPE_BLK, .no_state = true,
	  .no_event_idx = true },
	{ .name = "blk --vq-size 16", .type = VSIM_TYPE_BLK, .vq_size = 16 },
	{ .name = "blk --cache writeback", .type = VSIM_TYPE_BLK,
	  .writeback = true },
};

/* vhost-vdpa pins driver memory against RLIMIT_MEMLOCK: raise it. */
static void raise_memlock(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_MEMLOCK, &rl);
	}
}

static void real_devices(void)
{
	const char *net = getenv("VDPA_TEST_NET_DEV");
	const char *blk = getenv("VDPA_TEST_BLK_DEV");
	static struct tcase rn = { .name = "device net" };
	static struct tcase rb = { .name = "device blk" };

	if ((net && *net) || (blk && *blk))
		raise_memlock();
	if (net && *net) {
		rn.dev = net;
		tap_diag("real net device %s", net);
		run_case(&rn, 100);
	}
	if (blk && *blk) {
		rb.dev = blk;
		tap_diag("real blk device %s", blk);
		run_case(&rb, 101);
	}
}

int main(void)
{
	unsigned int i;

	tap_need_fd_count();
	pg = (size_t)sysconf(_SC_PAGESIZE);
	signal(SIGPIPE, SIG_IGN);
	if (tu_mkdtemp(tmpdir, sizeof(tmpdir)) || strlen(tmpdir) > 60)
		tap_skip_all("no temporary directory");
	vdpa_set_trace(lib_trace, NULL);

	test_trace();
	test_open_errors();
	test_fake_backend();
	test_iotlb_range();
	test_status_behind_back();
	test_preattach();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i], i + 1);
	real_devices();
	vdpa_set_trace(NULL, NULL);
	tu_rmtree(tmpdir);
	return tap_done();
}
