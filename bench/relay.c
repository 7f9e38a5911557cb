// SPDX-License-Identifier: MIT
/*
 * bench/relay: guest traffic through `vdpa-user serve`'s relay mode (the
 * dirty-logging path, vdpa-user/serve/relay.c) against passthrough, in the
 * same run on the same device: passthrough, relay, passthrough again. The
 * bench plays the guest (rings of the library's vq code in memory mapped
 * at IOVA == GPA), as tests/relay does. Prints figures; fails only if
 * something functionally broke (a frame lost, a read wrong).
 * `scripts/bench.sh relay` runs only this one.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <vdpa-user/vdpa-user.h>
#include <vdpa-user/vq.h>

#include "relay.h"
#include "testutil.h"

#define GPA		0x100000ull
#define MEM_SIZE	(8u << 20)
#define QSIZE		256
#define NRX		128
#define BUFSZ		2048
#define HDR		12
#define FRAME		64
#define NSLOT		32
#define PHASE_S		2.0

static char dir[256];
static int broken;

struct guest {
	pid_t pid;
	bool blk;
	struct vdpa_dev *dev;
	struct vdpa_mem *mem;
	struct vdpa_vq *vq[2];
	unsigned nvq;
	uint8_t *host, *rx, *tx, *data;
	struct virtio_blk_outhdr *hdr;
	uint8_t *status;
	uint8_t *log;
	uint64_t log_size;
	uint64_t sent, got, bad;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int guest_open(struct guest *g, bool blk)
{
	const char *args[] = { "--type", blk ? "blk" : "net", "--mac",
			       "02:00:00:00:52:12", NULL };
	uint64_t f = (1ULL << VIRTIO_F_VERSION_1) |
		     (1ULL << VIRTIO_F_ACCESS_PLATFORM) |
		     (1ULL << VIRTIO_RING_F_EVENT_IDX);
	char sock[300], name[310];
	struct vdpa_caps caps;
	unsigned i;
	void *p = NULL;
	int r;

	memset(g, 0, sizeof(*g));
	g->blk = blk;
	g->nvq = blk ? 1 : 2;
	snprintf(sock, sizeof(sock), "%s/%s.sock", dir, blk ? "blk" : "net");
	snprintf(name, sizeof(name), "sim:%s", sock);
	g->pid = tu_spawn_sim(sock, args);
	if (g->pid < 0)
		return (int)g->pid;
	r = vdpa_dev_open(name, &g->dev);
	if (!r)
		r = vdpa_dev_get_caps(g->dev, &caps);
	if (!r)
		r = vdpa_dev_set_backend_features(g->dev, caps.backend_features,
						  NULL);
	if (!blk)
		f |= 1ULL << VIRTIO_NET_F_MAC;
	if (!r)
		r = vdpa_dev_set_features(g->dev, f & caps.features);
	if (!r)
		r = vdpa_mem_create(MEM_SIZE, GPA, &g->mem);
	if (!r)
		r = vdpa_mem_map(g->dev, g->mem);
	if (r < 0)
		return r;
	g->host = vdpa_mem_base(g->mem);
	for (i = 0; i < g->nvq && !r; i++) {
		r = vdpa_vq_create(g->mem, QSIZE, true, &g->vq[i]);
		if (!r)
			r = vdpa_vq_attach(g->vq[i], g->dev, i, 0);
		if (!r)
			r = vdpa_dev_set_vring_enable(g->dev, i, true);
	}
	if (!r)
		r = vdpa_mem_alloc(g->mem, NRX * BUFSZ, 4096, &p);
	g->rx = p;
	if (!r)
		r = vdpa_mem_alloc(g->mem, NRX * BUFSZ, 4096, &p);
	g->tx = p;
	g->data = g->rx;
	g->hdr = (void *)g->tx;
	g->status = g->tx + 4096;
	for (i = 0; !blk && i < NRX && !r; i++) {
		struct vdpa_sg sg = { g->rx + (size_t)i * BUFSZ, BUFSZ };

		r = vdpa_vq_add(g->vq[0], &sg, 0, 1, i);
	}
	if (!r)
		r = vdpa_dev_add_status(g->dev, VIRTIO_CONFIG_S_DRIVER_OK);
	if (!r && !blk)
		r = vdpa_vq_kick(g->vq[0]);
	g->log_size = (GPA + MEM_SIZE - 1) / RELAY_LOG_PAGE / 8 + 1;
	g->log = calloc(1, g->log_size);
	return r < 0 ? r : g->log ? 0 : -ENOMEM;
}

static void guest_close(struct guest *g)
{
	unsigned i;

	for (i = 0; i < 2; i++)
		vdpa_vq_destroy(g->vq[i]);
	vdpa_dev_close(g->dev);
	vdpa_mem_destroy(g->mem);
	free(g->log);
	if (g->pid > 0)
		tu_stop_sim(g->pid, false);
}

/* Sleep on the call eventfds until the device (or the relay) signals. */
static void wait_call(struct guest *g)
{
	struct pollfd p[2];
	unsigned i;
	uint64_t v;

	for (i = 0; i < g->nvq; i++)
		p[i] = (struct pollfd){ .fd = vdpa_vq_call_fd(g->vq[i]),
					.events = POLLIN };
	if (poll(p, g->nvq, 10) > 0)
		for (i = 0; i < g->nvq; i++)
			if ((p[i].revents & POLLIN) &&
			    read(p[i].fd, &v, sizeof(v)) < 0)
				g->bad++;
}

static bool net_turn(struct guest *g)
{
	uint64_t tok;
	uint32_t len;
	bool any = false;
	int n;

	for (n = 0; n < 32 && g->sent - g->got < NRX - 16; n++, g->sent++) {
		uint8_t *b = g->tx + (g->sent % NRX) * BUFSZ;
		struct vdpa_sg sg = { b, HDR + FRAME };

		memset(b, 0, HDR);
		memcpy(b + HDR, "\x02\x00\x00\x00\x52\x12", 6);
		if (vdpa_vq_add(g->vq[1], &sg, 1, 0, 0) < 0)
			break;
	}
	if (n)
		vdpa_vq_kick(g->vq[1]);
	while (vdpa_vq_get_used(g->vq[1], &tok, &len) == 1)
		any = true;
	while (vdpa_vq_get_used(g->vq[0], &tok, &len) == 1) {
		struct vdpa_sg sg = { g->rx + tok * BUFSZ, BUFSZ };

		if (len != HDR + FRAME)
			g->bad++;
		if (vdpa_vq_add(g->vq[0], &sg, 0, 1, tok) < 0)
			g->bad++;
		g->got++;
		any = true;
	}
	vdpa_vq_kick(g->vq[0]);
	return any;
}

/* 4 KiB reads, NSLOT in flight: each slot rereads its own sector. */
static bool blk_turn(struct guest *g)
{
	uint64_t tok;
	uint32_t len;
	bool any = false;

	while (g->sent - g->got < NSLOT) {
		unsigned s = (unsigned)(g->sent % NSLOT);
		struct vdpa_sg sg[3] = {
			{ &g->hdr[s], sizeof(g->hdr[s]) },
			{ g->data + (size_t)s * 4096, 4096 },
			{ g->status + s, 1 },
		};

		g->hdr[s] = (struct virtio_blk_outhdr){
			.type = VIRTIO_BLK_T_IN, .sector = 8ull * s,
		};
		if (vdpa_vq_add(g->vq[0], sg, 1, 2, s) < 0)
			break;
		g->sent++;
	}
	vdpa_vq_kick(g->vq[0]);
	while (vdpa_vq_get_used(g->vq[0], &tok, &len) == 1) {
		if (tok >= NSLOT || g->status[tok] != VIRTIO_BLK_S_OK)
			g->bad++;
		g->got++;
		any = true;
	}
	return any;
}

/* Completions per second over one phase of traffic. */
static double phase(struct guest *g)
{
	uint64_t got0 = g->got;
	double t0 = now(), t;

	do {
		if (!(g->blk ? blk_turn(g) : net_turn(g)))
			wait_call(g);
		t = now();
	} while (t - t0 < PHASE_S);
	return (double)(g->got - got0) / (t - t0);
}

static int fill_vqs(struct guest *g, struct relay_vq *v)
{
	unsigned i;
	int r = 0;

	for (i = 0; i < g->nvq && !r; i++) {
		struct vdpa_vring_info info;

		r = vdpa_dev_get_vring(g->dev, i, &info);
		if (r < 0)
			break;
		v[i] = (struct relay_vq){
			.idx = i, .num = info.num, .desc_gpa = info.desc,
			.avail_gpa = info.avail, .used_gpa = info.used,
			.kick_fd = vdpa_vq_kick_fd(g->vq[i]),
			.call_fd = vdpa_vq_call_fd(g->vq[i]),
		};
		r = vdpa_dev_get_vring_base(g->dev, i, &v[i].last_avail);
	}
	return r;
}

static void bench_one(bool blk)
{
	const char *what = blk ? "blk_read_4k_qd32" : "net_loopback_64B";
	const char *unit = blk ? "kIOPS" : "kpps";
	struct relay_region reg;
	struct relay_log log;
	struct relay_counters c;
	struct relay_vq v[2];
	struct relay *rl = NULL;
	struct guest g;
	double pass1, relay, pass2, t0, t_start, t_stop;
	char err[256] = "";
	int r;

	r = guest_open(&g, blk);
	if (r < 0) {
		fprintf(stderr, "bench relay: %s guest: %s\n", what,
			strerror(-r));
		broken = 1;
		guest_close(&g);
		return;
	}
	reg = (struct relay_region){ GPA, MEM_SIZE, g.host };
	log = (struct relay_log){ g.log, g.log_size };
	pass1 = phase(&g);
	t0 = now();
	r = vdpa_dev_suspend(g.dev);
	if (!r)
		r = fill_vqs(&g, v);
	if (!r)
		r = relay_start(&rl, g.dev, &reg, 1, v, g.nvq, &log, err,
				sizeof(err));
	t_start = now() - t0;
	if (r < 0) {
		fprintf(stderr, "bench relay: %s: relay_start: %s\n", what, err);
		broken = 1;
		guest_close(&g);
		return;
	}
	relay = phase(&g);
	t0 = now();
	r = relay_stop_ex(rl, true, NULL, &c, err, sizeof(err));
	t_stop = now() - t0;
	if (r < 0) {
		fprintf(stderr, "bench relay: %s: relay_stop: %s\n", what, err);
		broken = 1;
	}
	pass2 = phase(&g);
	/* what is still on its way back */
	t0 = now();
	while (!blk && g.got < g.sent && now() - t0 < 1.0)
		if (!net_turn(&g))
			wait_call(&g);
	if (!blk && g.got != g.sent)
		broken = 1;
	if (g.bad)
		broken = 1;
	printf("relay_%s: passthrough %.1f %s, relay %.1f %s (%.2fx of "
	       "passthrough), passthrough again %.1f %s\n", what,
	       pass1 / 1e3, unit, relay / 1e3, unit,
	       pass1 > 0 ? relay / pass1 : 0.0, pass2 / 1e3, unit);
	printf("relay_%s_switch: relay_start %.2f ms (suspend, save, reset, "
	       "load), relay_stop %.2f ms; in relay: %llu forwarded, %.3f "
	       "guest calls and %.3f guest kicks per completion, %llu log "
	       "pages; %llu %s, %llu bad\n", what, t_start * 1e3,
	       t_stop * 1e3, (unsigned long long)c.used_fwd,
	       c.used_fwd ? (double)c.calls / (double)c.used_fwd : 0.0,
	       c.used_fwd ? (double)c.kicks / (double)c.used_fwd : 0.0,
	       (unsigned long long)c.logged_pages,
	       (unsigned long long)(g.sent - g.got),
	       blk ? "outstanding" : "lost", (unsigned long long)g.bad);
	guest_close(&g);
}

static bool want(int argc, char **argv, const char *name)
{
	int i;

	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], name))
			return true;
	return argc < 2;
}

int main(int argc, char **argv)
{
	if (!want(argc, argv, "relay"))
		return 0;
	signal(SIGPIPE, SIG_IGN);
	if (tu_mkdtemp(dir, sizeof(dir)))
		return 1;
	printf("# load average at start: ");
	fflush(stdout);
	if (system("cut -d' ' -f1-3 /proc/loadavg") != 0)
		printf("?\n");
	bench_one(false);
	bench_one(true);
	tu_rmtree(dir);
	if (broken)
		printf("bench relay: something functionally failed (see above)\n");
	return broken;
}
