// SPDX-License-Identifier: MIT
/*
 * make bench: pre-copy against stop-and-copy (PROPOSAL; docs/migration.md
 * "Pre-copy"). Two blk vdpa-sim processes with a write-back cache on one
 * backing file; 64 MiB of distinct, unflushed blocks in the source's
 * cache; a writer thread keeps rewriting 64 KiB blocks at random places at
 * a bounded rate while the state moves. Each migration is vdpa_migrate()
 * itself: with pre-copy (rounds until the pending estimate is at most the
 * threshold, then the writer pauses, as a VMM pauses the vCPUs, and the
 * switchover carries the rest) or without (the writer pauses, everything
 * goes in the downtime). Downtime: SUSPEND to the destination running
 * (vdpa_mig_result.downtime_ns). After every migration all 64 MiB are read
 * back through the destination and compared with the last write of every
 * block. Prints figures; fails only when something functionally broke.
 *
 * Arguments: [--rate MIBPS] [--iterations N] [--threshold KIB]
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <vdpa-user/blk.h>
#include <vdpa-user/migrate.h>

#include "testutil.h"

#define CACHE_BYTES	(64u << 20)
#define NSEC		(CACHE_BYTES / 512)
#define IO		65536u
#define IO_SEC		(IO / 512)

static char dir[256];
static uint16_t gen[NSEC];	/* the last generation written per sector */

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

static void fill(uint8_t *p, uint64_t sector, uint16_t g)
{
	uint64_t w[64];
	unsigned int i;

	for (i = 0; i < 64; i++)
		w[i] = ((sector * 64 + i) * 0x9e3779b97f4a7c15ULL) ^
		       ((uint64_t)g << 48) ^ g;
	memcpy(p, w, sizeof(w));
}

/* Completions until at least want slots are free; bad: failures, wrong data. */
static int drain(struct vdpa_blk *blk, unsigned int want, uint64_t *bad)
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
				fill(exp, c.sector + i, gen[c.sector + i]);
				if (memcmp(exp, (const uint8_t *)c.data +
					   (size_t)i * 512, 512))
					(*bad)++;
			}
		}
		if (r < 0)
			return r;
		if (vdpa_blk_free_slots(blk) >= want)
			return 0;
		if (vdpa_blk_wait(blk, 5000))
			return -ETIMEDOUT;
	}
}

static int put(struct vdpa_blk *blk, uint32_t s, bool write, uint64_t *bad)
{
	static uint8_t buf[IO];
	uint32_t i;

	if (!vdpa_blk_free_slots(blk) && drain(blk, 1, bad) < 0)
		return -EIO;
	if (write) {
		for (i = 0; i < IO_SEC; i++) {
			gen[s + i]++;
			fill(buf + (size_t)i * 512, s + i, gen[s + i]);
		}
		if (vdpa_blk_write(blk, s, buf, IO, s))
			return -EIO;
	} else if (vdpa_blk_read(blk, s, IO, s)) {
		return -EIO;
	}
	return vdpa_blk_kick(blk) < 0 ? -EIO : 0;
}

/* Every block of the cache, written or read back and checked. */
static uint64_t pass(struct vdpa_blk *blk, bool write, unsigned int depth)
{
	uint64_t bad = 0;
	uint32_t s;

	for (s = 0; s < NSEC && !bad; s += IO_SEC)
		if (put(blk, s, write, &bad) < 0)
			bad++;
	if (drain(blk, depth, &bad) < 0)
		bad++;
	return bad;
}

/* ---- the writer: the guest, rewriting while the state moves ----------- */

struct writer {
	struct vdpa_blk *blk;
	unsigned int depth;
	double rate;		/* bytes per second */
	pthread_t th;
	pthread_mutex_t m;
	bool run;		/* false: pause after draining */
	uint64_t bytes, bad;
	uint64_t rnd;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	double t0 = now();
	uint64_t done = 0;

	for (;;) {
		double due;
		uint32_t s;

		pthread_mutex_lock(&w->m);
		if (!w->run) {
			pthread_mutex_unlock(&w->m);
			break;
		}
		pthread_mutex_unlock(&w->m);
		/* at most rate bytes per second since it started */
		due = t0 + (double)(done + IO) / w->rate;
		if (now() < due) {
			struct timespec ts = { 0, 200000 };

			nanosleep(&ts, NULL);
			continue;
		}
		w->rnd = w->rnd * 6364136223846793005ULL + 1442695040888963407ULL;
		s = (uint32_t)((w->rnd >> 33) % (NSEC / IO_SEC)) * IO_SEC;
		if (put(w->blk, s, true, &w->bad) < 0) {
			w->bad++;
			break;
		}
		done += IO;
	}
	/* paused: nothing in flight when the device stops */
	if (drain(w->blk, w->depth, &w->bad) < 0)
		w->bad++;
	w->bytes += done;
	return NULL;
}

static int writer_start(struct writer *w)
{
	w->run = true;
	return -pthread_create(&w->th, NULL, writer_main, w);
}

static void writer_pause(struct writer *w)
{
	pthread_mutex_lock(&w->m);
	w->run = false;
	pthread_mutex_unlock(&w->m);
	pthread_join(w->th, NULL);
}

/* ---- one migration ------------------------------------------------------ */

/*
 * PRECOPY_TRACE=1: every request of a pre-copy downtime (from the pause of
 * the writer on) with its latency, to see what bounds it.
 */
static bool tracing;

static void trace(struct vdpa_dev *dev, unsigned long request,
		  const void *arg, int result, uint64_t ns, void *opaque)
{
	(void)dev;
	(void)arg;
	(void)opaque;
	if (tracing)
		fprintf(stderr, "  req 0x%08lx -> %d  %7.1f us\n", request,
			result, (double)ns / 1e3);
}

struct pc_ctx {
	struct writer *w;
	uint64_t threshold;
	uint32_t max_rounds;
	bool paused;
};

/*
 * The front-end's decision after each round: once little is pending (or
 * enough rounds ran), pause the guest's writes and switch over.
 */
static int decide(const struct vdpa_mig_precopy_info *pi, void *opaque)
{
	struct pc_ctx *c = opaque;

	if (pi->initial_bytes + pi->dirty_bytes > c->threshold &&
	    pi->rounds < c->max_rounds)
		return 0;
	writer_pause(c->w);
	c->paused = true;
	tracing = getenv("PRECOPY_TRACE") != NULL;
	if (tracing)
		fprintf(stderr, "precopy downtime requests:\n");
	return 1;
}

struct one {
	double down_ms, save_ms, xfer_ms, load_ms, start_ms, pc_ms;
	uint32_t rounds;
	uint64_t pc_bytes, final_bytes, written;
};

static double span(const struct vdpa_mig_times *a, enum vdpa_mig_step s0,
		   const struct vdpa_mig_times *b, enum vdpa_mig_step s1)
{
	return a->begin_ns[s0] && b->end_ns[s1] > a->begin_ns[s0] ?
	       (double)(b->end_ns[s1] - a->begin_ns[s0]) / 1e6 : 0;
}

static int migrate_one(struct vdpa_dev *src, struct vdpa_dev *dst,
		       struct writer *w, bool precopy, double run_s,
		       uint64_t threshold, struct one *o)
{
	struct pc_ctx c = { .w = w, .threshold = threshold, .max_rounds = 30 };
	struct vdpa_mig_opts mo = { .via = VDPA_MIG_VIA_PIPE,
				    .cap = 256u << 20 };
	struct vdpa_mig_result res;
	char err[512] = "";
	uint64_t before = w->bytes;
	double t0;
	int r;

	/* the guest writes for a while first, as it would anyway */
	if (writer_start(w))
		return -EAGAIN;
	usleep((useconds_t)(run_s * 1e6));
	if (precopy) {
		mo.precopy = true;
		mo.precopy_threshold = threshold;
		mo.precopy_max_rounds = 30;
		mo.precopy_progress = decide;
		mo.opaque = &c;
	} else {
		writer_pause(w);
		c.paused = true;
	}
	t0 = now();
	r = vdpa_migrate(src, dst, &mo, &res, err, sizeof(err));
	tracing = false;
	if (!c.paused)
		writer_pause(w);
	if (r < 0) {
		fprintf(stderr, "precopy bench: migration failed: %s\n", err);
		return r;
	}
	if (precopy && !res.precopy) {
		fprintf(stderr, "precopy bench: pre-copy did not run\n");
		return -EOPNOTSUPP;
	}
	o->down_ms = (double)res.downtime_ns / 1e6;
	o->pc_ms = (now() - t0) * 1e3 - o->down_ms;
	o->save_ms = span(&res.src, VDPA_MIG_SUSPEND, &res.src, VDPA_MIG_SAVE);
	o->xfer_ms = span(&res.src, VDPA_MIG_TRANSFER, &res.dst,
			  VDPA_MIG_TRANSFER);
	o->load_ms = span(&res.dst, VDPA_MIG_LOAD, &res.dst, VDPA_MIG_LOAD);
	o->start_ms = span(&res.dst, VDPA_MIG_START, &res.dst, VDPA_MIG_START);
	o->rounds = res.precopy_rounds;
	o->pc_bytes = res.precopy_bytes;
	o->final_bytes = res.state_bytes;
	o->written = w->bytes - before;
	return 0;
}

static double arg_num(int argc, char **argv, const char *name, double def)
{
	int i;

	for (i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return atof(argv[i + 1]);
	return def;
}

int main(int argc, char **argv)
{
	double rate = arg_num(argc, argv, "--rate", 32);
	int iters = (int)arg_num(argc, argv, "--iterations", 5);
	uint64_t thr = (uint64_t)arg_num(argc, argv, "--threshold", 256) << 10;
	struct vdpa_blk_opts bo = { .max_io = IO };
	char disk[300], sa[300], sb[300], na[320], nb[320];
	const char *args[] = { "--type", "blk", "--cache", "writeback",
			       "--backing", disk, NULL };
	struct vdpa_dev *dev[2] = { NULL, NULL };
	struct vdpa_mem *mem = NULL;
	struct writer w;
	double pd[32], sd[32], ps[32], px[32], pl[32], pst[32], pcm[32];
	double rounds[32], pcb[32], fb[32], sfb[32], wr[32];
	uint64_t bad = 0;
	pid_t pa = -1, pb = -1;
	int i, r = 0, cur = 0, fd, broken = 0;

	signal(SIGPIPE, SIG_IGN);
	if (iters < 1 || iters > 32 || rate <= 0)
		return 2;
	/* scripts/bench.sh passes figure names: run when none or "precopy" */
	for (i = 1, fd = 0; i < argc; i++) {
		if (argv[i][0] == '-' || (i > 1 && argv[i - 1][0] == '-'))
			continue;
		fd |= strcmp(argv[i], "precopy") ? 1 : 2;
	}
	if (fd == 1)
		return 0;
	memset(&w, 0, sizeof(w));
	pthread_mutex_init(&w.m, NULL);
	w.rnd = 0x1234567;
	w.rate = rate * 1048576.0;
	if (tu_mkdtemp(dir, sizeof(dir)))
		return 1;
	snprintf(disk, sizeof(disk), "%s/disk.img", dir);
	snprintf(sa, sizeof(sa), "%s/a.sock", dir);
	snprintf(sb, sizeof(sb), "%s/b.sock", dir);
	snprintf(na, sizeof(na), "sim:%s", sa);
	snprintf(nb, sizeof(nb), "sim:%s", sb);
	fd = open(disk, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, CACHE_BYTES)) {
		broken = 1;
		goto out;
	}
	close(fd);
	pa = tu_spawn_sim(sa, args);
	pb = tu_spawn_sim(sb, args);
	if (pa < 0 || pb < 0 || vdpa_dev_open(na, &dev[0]) ||
	    vdpa_dev_open(nb, &dev[1]) ||
	    vdpa_mem_create(16 << 20, 1 << 30, &mem) ||
	    vdpa_blk_open(dev[0], mem, &bo, &w.blk)) {
		printf("precopy: FAIL (cannot start the devices)\n");
		broken = 1;
		goto out;
	}
	w.depth = vdpa_blk_free_slots(w.blk);
	vdpa_set_trace(trace, NULL);
	printf("# load average at start: ");
	fflush(stdout);
	if (system("cut -d' ' -f1-3 /proc/loadavg") != 0)
		printf("?\n");
	/* 64 MiB of distinct blocks, never flushed: all in the cache */
	bad = pass(w.blk, true, w.depth);
	/* pre-copy and stop-and-copy alternate, back and forth */
	for (i = 0; i < 2 * iters && !r && !bad; i++) {
		bool pc = !(i & 1);
		struct one o = { 0 };

		r = migrate_one(dev[cur], dev[!cur], &w, pc, 0.3, thr, &o);
		if (r < 0)
			break;
		cur = !cur;
		vdpa_blk_set_dev(w.blk, dev[cur]);
		/* every block, read back through the destination */
		bad = pass(w.blk, false, w.depth) + w.bad;
		if (pc) {
			pd[i / 2] = o.down_ms;
			ps[i / 2] = o.save_ms;
			px[i / 2] = o.xfer_ms;
			pl[i / 2] = o.load_ms;
			pst[i / 2] = o.start_ms;
			pcm[i / 2] = o.pc_ms;
			rounds[i / 2] = o.rounds;
			pcb[i / 2] = (double)o.pc_bytes;
			fb[i / 2] = (double)o.final_bytes;
			wr[i / 2] = (double)o.written;
		} else {
			sd[i / 2] = o.down_ms;
			sfb[i / 2] = (double)o.final_bytes;
		}
	}
	if (r < 0 || bad) {
		printf("precopy: FAIL (%s; %llu bad blocks or requests)\n",
		       r < 0 ? strerror(-r) : "data", (unsigned long long)bad);
		broken = 1;
		goto out;
	}
	{
		double p = median(pd, iters), s = median(sd, iters);

		printf("precopy: 64 MiB dirty write-back cache, writer "
		       "rewriting %.0f MiB/s at random: downtime pre-copy %.2f ms "
		       "(%.0f rounds, %.1f MB in rounds, %.0f bytes final, "
		       "pre-copy phase %.0f ms), stop-and-copy %.2f ms (%.1f MB "
		       "final), %.1fx lower (median of %d each, same run; every "
		       "block verified; goal <= 5 ms and >= 10x: %s)\n",
		       rate, p, median(rounds, iters), median(pcb, iters) / 1e6,
		       median(fb, iters), median(pcm, iters), s,
		       median(sfb, iters) / 1e6, s / p, iters,
		       p <= 5 && s / p >= 10 ? "met" : "MISSED");
		printf("precopy: pre-copy downtime by step (medians): "
		       "suspend+save %.2f ms, transfer %.2f ms, load %.2f ms, "
		       "start %.2f ms; writer wrote %.1f MB per migration\n",
		       median(ps, iters), median(px, iters), median(pl, iters),
		       median(pst, iters), median(wr, iters) / 1e6);
	}
out:
	if (w.blk)
		vdpa_blk_close(w.blk);
	vdpa_dev_close(dev[0]);
	vdpa_dev_close(dev[1]);
	vdpa_mem_destroy(mem);
	if (pa > 0)
		tu_stop_sim(pa, false);
	if (pb > 0)
		tu_stop_sim(pb, false);
	tu_rmtree(dir);
	if (broken)
		printf("bench: something functionally failed (see above)\n");
	return broken;
}
