// SPDX-License-Identifier: MIT
/*
 * make bench: the figures of the foundation and migration issues, each with
 * its target and, where a comparison is asked for, a baseline measured in
 * the same run. Prints figures; fails only if something functionally broke.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_blk.h>
#include <vdpa-user/blk.h>
#include <vdpa-user/migrate.h>
#include <vdpa-user/net.h>
#include <vdpa-user/transfer.h>

#include "testutil.h"

static char dir[256];
static int broken;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return v[n / 2];
}

static pid_t sim(const char *tag, const char *const *args, char *name,
		 size_t len)
{
	char sock[300];
	pid_t pid;

	snprintf(sock, sizeof(sock), "%s/%s.sock", dir, tag);
	snprintf(name, len, "sim:%s", sock);
	pid = tu_spawn_sim(sock, args);
	if (pid < 0) {
		fprintf(stderr, "bench: cannot start vdpa-sim: %s\n",
			strerror((int)-pid));
		exit(1);
	}
	return pid;
}

static void bench_net(void)
{
	const char *args[] = { "--type", "net", NULL };
	struct vdpa_dev *dev;
	struct vdpa_mem *mem;
	struct vdpa_net *net;
	uint8_t frame[64] = { 0 };
	char name[320];
	uint64_t sent = 0, got = 0;
	double t0, t;
	pid_t pid = sim("net", args, name, sizeof(name));
	int i;

	if (vdpa_dev_open(name, &dev) || vdpa_mem_create(16 << 20, 1 << 30, &mem) ||
	    vdpa_net_open(dev, mem, NULL, &net)) {
		broken = 1;
		return;
	}
	vdpa_net_get_mac(net, frame);
	t0 = now();
	do {
		for (i = 0; i < 32 && sent - got < 224; i++, sent++)
			if (vdpa_net_send(net, 0, frame, sizeof(frame)))
				break;
		vdpa_net_kick_tx(net, 0);
		vdpa_net_reap_tx(net, 0);
		got += (uint64_t)vdpa_net_receive(net, 0, NULL, NULL, 256);
		t = now();
	} while (t - t0 < 2.0);
	while (got < sent && now() - t < 1.0)
		got += (uint64_t)vdpa_net_receive(net, 0, NULL, NULL, 256);
	printf("net_loopback_64B_batch32: %.2f Mpps (%llu packets in %.2f s, "
	       "%llu lost; target >= 1 Mpps)\n", (double)got / (t - t0) / 1e6,
	       (unsigned long long)got, t - t0,
	       (unsigned long long)(sent - got));
	if (got != sent)
		broken = 1;
	vdpa_net_close(net);
	vdpa_dev_close(dev);
	vdpa_mem_destroy(mem);
	tu_stop_sim(pid, false);
}

static void bench_blk_one(const char *name, bool write)
{
	struct vdpa_blk_opts o = { .max_io = 4096, .queue_depth = 32 };
	struct vdpa_blk_completion c;
	struct vdpa_dev *dev;
	struct vdpa_mem *mem;
	struct vdpa_blk *blk;
	uint8_t data[4096];
	uint64_t done = 0, next = 0, cap;
	double t0, t;
	int r;

	memset(data, 0x5a, sizeof(data));
	if (vdpa_dev_open(name, &dev) || vdpa_mem_create(16 << 20, 1 << 30, &mem) ||
	    vdpa_blk_open(dev, mem, &o, &blk)) {
		broken = 1;
		return;
	}
	cap = vdpa_blk_capacity(blk) / 8;
	t0 = now();
	do {
		while (vdpa_blk_free_slots(blk)) {
			uint64_t s = (next++ % cap) * 8;

			r = write ? vdpa_blk_write(blk, s, data, 4096, next) :
				    vdpa_blk_read(blk, s, 4096, next);
			if (r)
				break;
		}
		vdpa_blk_kick(blk);
		while ((r = vdpa_blk_poll(blk, &c)) > 0) {
			if (c.status)
				broken = 1;
			done++;
		}
		t = now();
	} while (t - t0 < 2.0);
	printf("blk_4KiB_qd32_%s: %.0f IOPS (target >= 200000)\n",
	       write ? "write" : "read", (double)done / (t - t0));
	vdpa_blk_close(blk);
	vdpa_dev_close(dev);
	vdpa_mem_destroy(mem);
}

static void bench_blk(void)
{
	const char *args[] = { "--type", "blk", NULL };
	char name[320];
	pid_t pid = sim("blk", args, name, sizeof(name));

	bench_blk_one(name, true);
	bench_blk_one(name, false);
	tu_stop_sim(pid, false);
}

static void bench_control(void)
{
	const char *args[] = { "--type", "net", NULL };
	double open_t[200], sus[200], res[200];
	char name[320];
	pid_t pid = sim("ctl", args, name, sizeof(name));
	struct vdpa_dev *dev;
	struct vdpa_mem *mem;
	struct vdpa_net *net;
	int i;

	for (i = 0; i < 200; i++) {
		double t0 = now();

		if (vdpa_dev_open(name, &dev) ||
		    vdpa_mem_create(4 << 20, 1 << 30, &mem) ||
		    vdpa_net_open(dev, mem, NULL, &net)) {
			broken = 1;
			return;
		}
		open_t[i] = (now() - t0) * 1e6;
		if (i < 199) {
			vdpa_net_close(net);
			vdpa_dev_close(dev);
			vdpa_mem_destroy(mem);
		}
	}
	for (i = 0; i < 200; i++) {
		double t0 = now();

		if (vdpa_dev_suspend(dev))
			broken = 1;
		sus[i] = (now() - t0) * 1e6;
		t0 = now();
		if (vdpa_dev_resume(dev))
			broken = 1;
		res[i] = (now() - t0) * 1e6;
	}
	printf("open_to_driver_ok_1qp: median %.0f us (target <= 1000 us)\n",
	       median(open_t, 200));
	printf("suspend: median %.0f us; resume: median %.0f us\n",
	       median(sus, 200), median(res, 200));
	vdpa_net_close(net);
	vdpa_dev_close(dev);
	vdpa_mem_destroy(mem);
	tu_stop_sim(pid, false);
}

static long vm_hwm_kib(pid_t pid)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &v) == 1)
			break;
	fclose(f);
	return v;
}

static void bench_rss(void)
{
	const char *args[] = { "--type", "blk", "--capacity-mb", "64", NULL };
	struct vdpa_blk_completion c;
	struct vdpa_dev *dev;
	struct vdpa_mem *mem;
	struct vdpa_blk *blk;
	static uint8_t data[65536];
	char name[320];
	pid_t pid = sim("rss", args, name, sizeof(name));
	uint64_t s, cap;

	memset(data, 0xa5, sizeof(data));
	if (vdpa_dev_open(name, &dev) || vdpa_mem_create(16 << 20, 1 << 30, &mem) ||
	    vdpa_blk_open(dev, mem, NULL, &blk)) {
		broken = 1;
		return;
	}
	cap = vdpa_blk_capacity(blk);
	for (s = 0; s < cap;) {
		while (s < cap && vdpa_blk_free_slots(blk)) {
			if (vdpa_blk_write(blk, s, data, 65536, s))
				break;
			s += 128;
		}
		vdpa_blk_kick(blk);
		while (vdpa_blk_poll(blk, &c) > 0)
			;
	}
	while (vdpa_blk_free_slots(blk) < 85 && vdpa_blk_wait(blk, 100) == 0)
		while (vdpa_blk_poll(blk, &c) > 0)
			;
	printf("sim_peak_rss_64MiB_ramdisk: %.1f MiB after writing all %llu "
	       "MiB (target <= 96 MiB)\n", (double)vm_hwm_kib(pid) / 1024,
	       (unsigned long long)(cap / 2048));
	vdpa_blk_close(blk);
	vdpa_dev_close(dev);
	vdpa_mem_destroy(mem);
	tu_stop_sim(pid, false);
}

static void bench_downtime(const char *qp)
{
	const char *args[] = { "--type", "net", "--queue-pairs", qp, NULL };
	char a[320], b[320], cmd[1200], out[4096];
	pid_t pa = sim("ma", args, a, sizeof(a));
	pid_t pb = sim("mb", args, b, sizeof(b));
	size_t n;
	FILE *p;
	double med = -1, p99 = -1;
	char *s;

	snprintf(cmd, sizeof(cmd), "%s/vdpa-user -j migrate %s %s --traffic "
		 "--iterations 200 --queues %s --count 400000", tu_build_dir(),
		 a, b, qp);
	p = popen(cmd, "r");
	n = p ? fread(out, 1, sizeof(out) - 1, p) : 0;
	out[n] = 0;
	if (!p || pclose(p) != 0 || !strstr(out, "\"lost\":0,"))
		broken = 1;
	if ((s = strstr(out, "\"downtime_us\":")))
		med = atof(s + 14);
	if ((s = strstr(out, "\"downtime_p99_us\":")))
		p99 = atof(s + 18);
	printf("downtime_net_%sqp_200_migrations: median %.0f us, p99 %.0f us "
	       "(targets for 1 qp: median <= 1000 us, p99 <= 3000 us)\n", qp,
	       med, p99);
	/* the library's per-step times, medians, as the CLI prints them */
	if ((s = strstr(out, "\"downtime_steps_us\":{"))) {
		char *e = strchr(s, '}');

		if (e)
			printf("downtime_net_%sqp by step (median us): %.*s\n",
			       qp, (int)(e - s - 21), s + 21);
	}
	tu_stop_sim(pa, false);
	tu_stop_sim(pb, false);
}

/* ---- 64 MiB through the transfer FD vs a raw pipe ---------------------- */

#define BIG (64u << 20)

struct raw_writer {
	int fd;
	const uint8_t *buf;
	size_t len;
};

static void *raw_write(void *arg)
{
	struct raw_writer *w = arg;
	size_t off = 0;

	while (off < w->len) {
		ssize_t n = write(w->fd, w->buf + off, w->len - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(w->fd);
	return NULL;
}

static size_t drain(int fd, uint8_t *sink)
{
	size_t total = 0;
	ssize_t n;

	while ((n = read(fd, sink, 1 << 20)) > 0)
		total += (size_t)n;
	return total;
}

static void bench_transfer(void)
{
	struct vdpa_transfer_opts o = { .cap = BIG + (1u << 20) };
	uint8_t *blob, *sink = malloc(1 << 20);
	struct vdpa_transfer *t;
	struct vdpa_state *s = vdpa_state_new();
	struct raw_writer w;
	pthread_t th;
	enum { ROUNDS = 5 };
	double t0, raw, save, load, raw_v[ROUNDS], save_v[ROUNDS], load_v[ROUNDS];
	size_t len, got;
	void *enc;
	int fds[2], rfd, r;

	/* a real blob: 64 MiB of device state */
	s->cfg.vq_count = 1;
	s->cfg.vq_max_size = 256;
	strcpy(s->model, "vdpa-sim://blk");
	s->has_device = true;
	s->device_len = BIG - 512;
	s->device = malloc(s->device_len);
	memset(s->device, 0x3c, s->device_len);
	vdpa_state_encode(s, &enc, &len);
	blob = enc;

	/* five rounds, interleaved, medians: one 64 MiB copy is at the
	 * mercy of this VM's neighbours */
	for (r = 0; r < ROUNDS; r++) {
		if (pipe2(fds, O_CLOEXEC))
			return;
		w.fd = fds[1];
		w.buf = blob;
		w.len = BIG;
		t0 = now();
		pthread_create(&th, NULL, raw_write, &w);
		got = drain(fds[0], sink);
		pthread_join(th, NULL);
		raw_v[r] = now() - t0;
		close(fds[0]);

		t0 = now();
		vdpa_transfer_set_fd(VDPA_TRANSFER_SAVE,
				     VDPA_TRANSFER_PHASE_STOPPED, -1, blob, len,
				     &o, &t, &rfd);
		got = drain(rfd, sink);
		if (vdpa_transfer_check(t) || got != len)
			broken = 1;
		save_v[r] = now() - t0;
		vdpa_transfer_free(t);
		close(rfd);

		t0 = now();
		vdpa_transfer_set_fd(VDPA_TRANSFER_LOAD,
				     VDPA_TRANSFER_PHASE_STOPPED, -1, NULL, 0,
				     &o, &t, &rfd);
		if (write(rfd, blob, len) != (ssize_t)len)
			broken = 1;
		close(rfd);
		if (vdpa_transfer_check(t))
			broken = 1;
		load_v[r] = now() - t0;
		vdpa_transfer_free(t);
	}
	raw = median(raw_v, ROUNDS);
	save = median(save_v, ROUNDS);
	load = median(load_v, ROUNDS);

	printf("transfer_64MiB (median of %d): raw pipe %.0f MB/s; "
	       "transfer-FD save %.0f MB/s "
	       "(%.2fx raw; target >= 0.8x); load incl. decode+CRC %.0f MB/s "
	       "(%.2fx raw)\n", ROUNDS, BIG / raw / 1e6, len / save / 1e6, raw / save,
	       len / load / 1e6, raw / load);
	free(enc);
	free(sink);
	vdpa_state_free(s);
}

/* ---- blk write-back cache: device state moved device to device ---------- */

#define WB_BYTES	(64u << 20)	/* dirty cache to move */
#define WB_IO		65536u		/* bytes per request */

/* Sector contents of a round: every 512-byte block distinct. */
static void wb_fill(uint8_t *p, uint64_t sector, unsigned int round)
{
	uint64_t w[64];
	unsigned int i;

	for (i = 0; i < 64; i++)
		w[i] = ((sector * 64 + i) * 0x9e3779b97f4a7c15ULL) ^
		       ((uint64_t)round << 56);
	memcpy(p, w, sizeof(w));
}

static void wb_drain(struct vdpa_blk *blk, unsigned int want_free,
		     unsigned int round, uint64_t *bad)
{
	struct vdpa_blk_completion c;
	uint8_t exp[512];
	uint32_t i;
	int r;

	for (;;) {
		while ((r = vdpa_blk_poll(blk, &c)) > 0) {
			if (c.status) {
				(*bad)++;
				continue;
			}
			for (i = 0; c.type == VIRTIO_BLK_T_IN &&
			     i < c.len / 512; i++) {
				wb_fill(exp, c.sector + i, round);
				if (memcmp(exp, (const uint8_t *)c.data +
					   (size_t)i * 512, 512))
					(*bad)++;
			}
		}
		if (r < 0) {
			(*bad)++;
			return;
		}
		if (vdpa_blk_free_slots(blk) >= want_free)
			return;
		if (vdpa_blk_wait(blk, 5000)) {
			(*bad)++;
			return;
		}
	}
}

/* Write (or read back and check) the first WB_BYTES of the disk. */
static uint64_t wb_pass(struct vdpa_blk *blk, bool write, unsigned int round,
			unsigned int depth)
{
	static uint8_t buf[WB_IO];
	uint64_t s, bad = 0;
	uint32_t i;

	for (s = 0; s < WB_BYTES / 512 && !bad; s += WB_IO / 512) {
		if (!vdpa_blk_free_slots(blk))
			wb_drain(blk, 1, round, &bad);
		if (write) {
			for (i = 0; i < WB_IO / 512; i++)
				wb_fill(buf + (size_t)i * 512, s + i, round);
			if (vdpa_blk_write(blk, s, buf, WB_IO, s))
				bad++;
		} else if (vdpa_blk_read(blk, s, WB_IO, s)) {
			bad++;
		}
		vdpa_blk_kick(blk);
	}
	wb_drain(blk, depth, round, &bad);
	return bad;
}

struct wb_ctx {
	struct vdpa_blk *blk;
	struct vdpa_mem *mem;
};

/*
 * Profiling the downtime alone: with PERF_CTL and PERF_ACK naming the
 * fifos of `perf record --control fifo:CTL,ACK -D -1`, perf samples only
 * between SUSPEND and the destination running (docs/benchmarks.md).
 */
static void perf_ctl(const char *cmd)
{
	static int fd = -2, ack = -1;
	char b[16];

	if (fd == -2) {
		const char *c = getenv("PERF_CTL"), *a = getenv("PERF_ACK");

		fd = c ? open(c, O_WRONLY | O_CLOEXEC) : -1;
		ack = a && fd >= 0 ? open(a, O_RDONLY | O_CLOEXEC) : -1;
	}
	if (fd < 0 || write(fd, cmd, strlen(cmd)) < 0 || write(fd, "\n", 1) < 0)
		return;
	if (ack >= 0 && read(ack, b, sizeof(b)) < 0)
		return;
}

struct wb_times {
	double save, transfer, load, start, total;
	size_t device_len;
};

static double span(const struct vdpa_mig_times *a, enum vdpa_mig_step s0,
		   const struct vdpa_mig_times *b, enum vdpa_mig_step s1)
{
	return a->begin_ns[s0] && b->end_ns[s1] > a->begin_ns[s0] ?
	       (double)(b->end_ns[s1] - a->begin_ns[s0]) / 1e9 : 0;
}

/*
 * One stop-and-copy, device to device, through the library's transaction
 * (vdpa_migrate: suspend, save, the transfer FD's SAVE and LOAD over a
 * pipe, load, start), the driver's ring handed over with its kick.
 */
static int wb_migrate(struct vdpa_dev *src, struct vdpa_dev *dst,
		      enum vdpa_mig_channel via, struct wb_ctx *c,
		      struct wb_times *tm)
{
	struct vdpa_mig_opts o = { .via = via, .cap = 256u << 20 };
	struct vdpa_mig_result res;
	char err[256] = "";
	int r;

	perf_ctl("enable");
	r = vdpa_migrate(src, dst, &o, &res, err, sizeof(err));
	perf_ctl("disable");
	if (r < 0) {
		fprintf(stderr, "blk-state: migration failed: %s\n", err);
		return r;
	}
	vdpa_blk_set_dev(c->blk, dst);
	tm->save = span(&res.src, VDPA_MIG_SUSPEND, &res.src, VDPA_MIG_SAVE);
	tm->transfer = span(&res.src, VDPA_MIG_TRANSFER, &res.dst,
			    VDPA_MIG_TRANSFER);
	tm->load = span(&res.dst, VDPA_MIG_LOAD, &res.dst, VDPA_MIG_LOAD);
	tm->start = span(&res.dst, VDPA_MIG_START, &res.dst, VDPA_MIG_START);
	tm->total = (double)res.downtime_ns / 1e9;
	tm->device_len = res.state_bytes;
	if (via == VDPA_MIG_VIA_DIRECT && !res.direct) {
		fprintf(stderr, "blk-state: direct was not possible\n");
		return -EOPNOTSUPP;
	}
	return 0;
}

/* A raw pipe copy of len bytes, as bench_transfer's baseline. */
static double raw_pipe(const uint8_t *buf, size_t len, uint8_t *sink)
{
	struct raw_writer w;
	pthread_t th;
	int fds[2];
	double t0;
	size_t got;

	if (pipe2(fds, O_CLOEXEC))
		return -1;
	w.fd = fds[1];
	w.buf = buf;
	w.len = len;
	t0 = now();
	pthread_create(&th, NULL, raw_write, &w);
	got = drain(fds[0], sink);
	pthread_join(th, NULL);
	t0 = now() - t0;
	close(fds[0]);
	return got == len ? t0 : -1;
}

static void bench_blk_state(enum vdpa_mig_channel via)
{
	const char *how = via == VDPA_MIG_VIA_DIRECT ? "direct" : "pipe";
	enum { ROUNDS = 5 };
	struct vdpa_blk_opts bo = { .max_io = WB_IO };
	char disk[300], na[320], nb[320];
	const char *args[] = { "--type", "blk", "--cache", "writeback",
			       "--backing", disk, NULL };
	double down_v[ROUNDS], rate_v[ROUNDS], raw_v[ROUNDS], ratio_v[ROUNDS];
	double save_v[ROUNDS], xfer_v[ROUNDS], load_v[ROUNDS], start_v[ROUNDS];
	struct vdpa_dev *dev[2] = { NULL, NULL };
	uint8_t *raw_buf = NULL, *sink = malloc(1 << 20);
	struct wb_ctx c = { NULL, NULL };
	struct wb_times tm = { 0 };
	size_t raw_len = 0;
	double raw_t;
	pid_t pa, pb;
	uint64_t bad = 0;
	int i, r, fd, cur = 0;

	snprintf(disk, sizeof(disk), "%s/wb-disk.img", dir);
	fd = open(disk, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 2 * (off_t)WB_BYTES)) {
		broken = 1;
		return;
	}
	close(fd);
	pa = sim("wba", args, na, sizeof(na));
	pb = sim("wbb", args, nb, sizeof(nb));
	if (vdpa_dev_open(na, &dev[0]) || vdpa_dev_open(nb, &dev[1]) ||
	    vdpa_mem_create(16 << 20, 1 << 30, &c.mem) ||
	    vdpa_blk_open(dev[0], c.mem, &bo, &c.blk)) {
		printf("blk-state (%s): FAIL (cannot open the devices)\n", how);
		broken = 1;
		goto out;
	}
	r = 0;
	for (i = 0; i < ROUNDS && !r && !bad; i++) {
		unsigned int depth = vdpa_blk_free_slots(c.blk);

		/* 64 MiB of distinct blocks, unflushed: all in the cache */
		bad = wb_pass(c.blk, true, (unsigned int)i, depth);
		if (bad)
			break;
		r = wb_migrate(dev[cur], dev[!cur], via, &c, &tm);
		if (r < 0)
			break;
		cur = !cur;
		/* every block must read back intact through the destination */
		bad = wb_pass(c.blk, false, (unsigned int)i, depth);
		if (!raw_buf) {
			raw_len = tm.device_len;
			raw_buf = malloc(raw_len);
			if (raw_buf)
				memset(raw_buf, 0x5a, raw_len);
		}
		/* the same bytes through a bare pipe, right after */
		raw_t = raw_buf ? raw_pipe(raw_buf, raw_len, sink) : -1;
		if (raw_t <= 0) {
			bad++;
			break;
		}
		down_v[i] = tm.total * 1e3;
		rate_v[i] = (double)tm.device_len / tm.total / 1e6;
		raw_v[i] = (double)raw_len / raw_t / 1e6;
		ratio_v[i] = rate_v[i] / raw_v[i];
		save_v[i] = tm.save * 1e3;
		xfer_v[i] = tm.transfer * 1e3;
		load_v[i] = tm.load * 1e3;
		start_v[i] = tm.start * 1e3;
	}
	if (r < 0 || bad) {
		printf("blk-state (%s): FAIL (%s; %llu bad blocks or "
		       "requests)\n", how, r < 0 ? strerror(-r) : "data",
		       (unsigned long long)bad);
		broken = 1;
		goto out;
	}
	printf("blk-state (%s): 64 MiB dirty cache, vdpa_migrate downtime "
	       "%.1f ms, device state %.0f MB/s, raw pipe %.0f MB/s (same "
	       "run), ratio %.2f (median of %d; %zu bytes of state; target "
	       ">= 1000 MB/s)\n", how, median(down_v, ROUNDS),
	       median(rate_v, ROUNDS),
	       median(raw_v, ROUNDS), median(ratio_v, ROUNDS), ROUNDS,
	       raw_len);
	printf("blk-state (%s): downtime by step (medians): suspend+save "
	       "%.1f ms, transfer SAVE+LOAD %.1f ms, load %.1f ms, start "
	       "%.1f ms\n", how, median(save_v, ROUNDS), median(xfer_v, ROUNDS),
	       median(load_v, ROUNDS), median(start_v, ROUNDS));
out:
	if (c.blk)
		vdpa_blk_close(c.blk);
	vdpa_dev_close(dev[0]);
	vdpa_dev_close(dev[1]);
	vdpa_mem_destroy(c.mem);
	free(raw_buf);
	free(sink);
	tu_stop_sim(pa, false);
	tu_stop_sim(pb, false);
}

/* With arguments, only the benchmarks named (net blk control rss transfer
 * blk-state downtime); without, all of them. */
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
	signal(SIGPIPE, SIG_IGN);
	if (tu_mkdtemp(dir, sizeof(dir)))
		return 1;
	printf("# load average at start: ");
	fflush(stdout);
	if (system("cut -d' ' -f1-3 /proc/loadavg") != 0)
		printf("?\n");
	if (want(argc, argv, "net"))
		bench_net();
	if (want(argc, argv, "blk"))
		bench_blk();
	if (want(argc, argv, "control"))
		bench_control();
	if (want(argc, argv, "rss"))
		bench_rss();
	if (want(argc, argv, "transfer"))
		bench_transfer();
	if (want(argc, argv, "blk-state")) {
		/* the blob through the transfer FDs, then device to device */
		bench_blk_state(VDPA_MIG_VIA_PIPE);
		bench_blk_state(VDPA_MIG_VIA_DIRECT);
	}
	if (want(argc, argv, "downtime")) {
		bench_downtime("1");
		bench_downtime("4");
		bench_downtime("16");
	}
	tu_rmtree(dir);
	if (broken)
		printf("bench: something functionally failed (see above)\n");
	return broken;
}
