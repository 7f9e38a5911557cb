// SPDX-License-Identifier: MIT
/* migrate SRC DST: the front-end moving a device under traffic, in-process. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "migrate.h"

struct mig_args {
	const char *src, *dst;
	bool traffic;
	enum mig_via via;
	uint64_t count, size, queues, iterations;
	bool precopy;
	uint64_t pc_threshold, pc_rounds;
};

static int parse(int argc, char **argv, struct mig_args *a)
{
	int i, rc;

	memset(a, 0, sizeof(*a));
	a->via = VIA_PIPE;
	a->queues = 1;
	a->iterations = 1;
	for (i = 0; i < argc; i++) {
		const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(s, "--count")) {
			rc = cli_parse_opt("migrate", s, v, 1, CLI_COUNT_MAX,
					   &a->count);
		} else if (!strcmp(s, "--size")) {
			rc = cli_parse_opt("migrate", s, v, 0, CLI_SIZE_MAX,
					   &a->size);
		} else if (!strcmp(s, "--queues")) {
			rc = cli_parse_opt("migrate", s, v, 1, CLI_MAX_QUEUES,
					   &a->queues);
		} else if (!strcmp(s, "--iterations")) {
			rc = cli_parse_opt("migrate", s, v, 1,
					   MIG_ITERATIONS_MAX, &a->iterations);
		} else if (!strcmp(s, "--traffic")) {
			a->traffic = true;
			continue;
		} else if (!strcmp(s, "--precopy")) {
			a->precopy = true;
			continue;
		} else if (!strcmp(s, "--precopy-threshold")) {
			rc = cli_parse_opt("migrate", s, v, 1, 1ull << 40,
					   &a->pc_threshold);
			a->precopy = true;
		} else if (!strcmp(s, "--precopy-rounds")) {
			rc = cli_parse_opt("migrate", s, v, 1, 1000,
					   &a->pc_rounds);
			a->precopy = true;
		} else if (!strcmp(s, "--via")) {
			if (!v || mig_parse_via(v, &a->via))
				return cli_fail("migrate: --via: pipe, socket, "
						"file or direct%s%s%s",
						v ? ", not '" : "", v ? v : "",
						v ? "'" : "");
			rc = 0;
		} else if (s[0] == '-') {
			return cli_fail("migrate: unknown option '%s'", s);
		} else if (!a->src) {
			a->src = s;
			continue;
		} else if (!a->dst) {
			a->dst = s;
			continue;
		} else {
			return cli_fail("migrate: unexpected argument '%s'", s);
		}
		if (rc)
			return rc;
		i++;
	}
	if (!a->src || !a->dst)
		return cli_fail("usage: vdpa-user migrate SRC DST [--traffic] "
				"[--via pipe|socket|file|direct] [--count N] "
				"[--queues Q] [--iterations K] [--precopy "
				"[--precopy-threshold BYTES] "
				"[--precopy-rounds N]]");
	if (cli_same_device(a->src, a->dst))
		return cli_fail("migrate: %s and %s are the same device: a "
				"migration needs two", a->src, a->dst);
	return 0;
}

/* The steps inside the downtime, for the breakdown. */
enum { BD_SUSPEND, BD_SAVE, BD_TRANSFER, BD_LOAD, BD_START, BD_N };
static const char *const bd_names[BD_N] = {
	"suspend", "save", "transfer", "load", "start",
};

static double span_us(uint64_t a, uint64_t b)
{
	return a && b > a ? (double)(b - a) / 1e3 : 0;
}

static void breakdown(const struct vdpa_mig_result *r, double *out)
{
	const struct vdpa_mig_times *s = &r->src, *d = &r->dst;
	uint64_t xfer_end = d->end_ns[VDPA_MIG_TRANSFER] >
			    s->end_ns[VDPA_MIG_TRANSFER] ?
			    d->end_ns[VDPA_MIG_TRANSFER] :
			    s->end_ns[VDPA_MIG_TRANSFER];

	out[BD_SUSPEND] = span_us(s->begin_ns[VDPA_MIG_SUSPEND],
				  s->end_ns[VDPA_MIG_SUSPEND]);
	out[BD_SAVE] = span_us(s->begin_ns[VDPA_MIG_SAVE],
			       s->end_ns[VDPA_MIG_SAVE]);
	out[BD_TRANSFER] = span_us(s->begin_ns[VDPA_MIG_TRANSFER], xfer_end);
	out[BD_LOAD] = span_us(d->begin_ns[VDPA_MIG_LOAD],
			       d->end_ns[VDPA_MIG_LOAD]);
	out[BD_START] = span_us(d->begin_ns[VDPA_MIG_START],
				d->end_ns[VDPA_MIG_START]);
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(const double *sorted, uint64_t n, double p)
{
	uint64_t i = (uint64_t)ceil(p * (double)n) - 1;

	return n ? sorted[i < n ? i : n - 1] : 0;
}

static int run_until(struct workload *w, uint64_t target);

/* Between pre-copy rounds the guest goes on: some more traffic. */
struct pc_traffic {
	struct workload *w;
	uint64_t limit;		/* this migration's share of the requests */
};

static int pc_progress(const struct vdpa_mig_precopy_info *info, void *opaque)
{
	struct pc_traffic *t = opaque;

	(void)info;
	if (t->w && t->w->next < t->limit)
		run_until(t->w, t->w->next + 64 < t->limit ?
			  t->w->next + 64 : t->limit);
	return 0;
}

/* Run the workload until `target` requests were submitted (or it ends). */
static int run_until(struct workload *w, uint64_t target)
{
	int r = 0, idle = 0;

	while (w->next < target && idle < 2000 && !cli_interrupted) {
		uint64_t before = w->next + w->r.completed;

		r = wl_step(w);
		if (r != 0)
			return r < 0 ? r : 0;
		if (w->next + w->r.completed == before) {
			wl_wait(w, 1);
			idle++;
		} else {
			idle = 0;
		}
	}
	return 0;
}

int cmd_migrate(int argc, char **argv)
{
	struct cli_dev dev[2] = { 0 };
	struct vdpa_mem *mem = NULL;
	struct mig_args a;
	struct workload w;
	struct wl_result res = { 0 };
	struct json j;
	double *downs = NULL, *steps = NULL, t0 = 0, secs = 0;
	double med[BD_N] = { 0 };
	size_t state_bytes = 0;
	uint64_t done = 0, k, pc_bytes = 0, pc_rounds = 0;
	struct pc_traffic pct_ = { NULL, 0 };
	struct mig_precopy pc = { 0 };
	bool pc_ran = false;
	char err[512] = "", what[600];
	int rc, r = 0, cur = 0, tr = 0;
	bool have_wl = false, rolled = false, direct = false;

	cli_result_command();
	cli_catch_sigint();
	rc = parse(argc, argv, &a);
	if (rc)
		return rc;
	rc = cli_dev_open(a.src, &dev[0]);
	if (rc)
		return rc;
	rc = cli_dev_open(a.dst, &dev[1]);
	if (rc)
		goto out;
	r = vdpa_mem_create(CLI_MEM_SIZE, CLI_MEM_IOVA, &mem);
	if (r < 0) {
		rc = cli_fail_errno(r, "creating driver memory");
		goto out;
	}
	rc = cli_dev_start(&dev[0], mem, (unsigned int)a.queues);
	if (!rc)
		rc = cli_check_size("migrate", &dev[0], a.size);
	if (rc)
		goto out;
	downs = calloc(a.iterations, sizeof(*downs));
	steps = calloc(a.iterations * BD_N, sizeof(*steps));
	if (!downs || !steps) {
		rc = cli_fail_errno(-ENOMEM, "migrate");
		goto out;
	}
	if (a.traffic) {
		uint64_t count = a.count ? a.count :
				 (dev[0].net ? 200000 : 20000) +
				 1000 * a.iterations;

		r = wl_init(&w, dev[0].net, dev[0].blk, count,
			    (uint32_t)a.size, (unsigned int)a.queues);
		if (r < 0) {
			rc = cli_fail_errno(r, "migrate: setting up the "
					    "traffic");
			goto out;
		}
		have_wl = true;
		t0 = cli_now();
	}
	pc.on = a.precopy;
	pc.threshold = a.pc_threshold;
	pc.rounds = (uint32_t)a.pc_rounds;
	pc.progress = pc_progress;
	pc.opaque = &pct_;
	if (have_wl)
		pct_.w = &w;
	for (k = 0; k < a.iterations && !cli_interrupted; k++) {
		struct mig_stats st;

		if (have_wl) {
			r = run_until(&w, w.count * (k + 1) /
				      (a.iterations + 1));
			if (r < 0) {
				snprintf(err, sizeof(err), "traffic: %s",
					 strerror(-r));
				break;
			}
			if (cli_interrupted)
				break;
		}
		cli_progress("migration %llu of %llu (Ctrl-C stops after it)",
			     (unsigned long long)k + 1,
			     (unsigned long long)a.iterations);
		/* started, it commits or rolls back: Ctrl-C waits for it */
		cli_hold_sigint(true);
		if (have_wl)
			pct_.limit = w.count * (k + 2) / (a.iterations + 1);
		r = mig_once_precopy(&dev[cur], &dev[!cur], a.via, &pc, &st,
				     err, sizeof(err));
		cli_hold_sigint(false);
		if (r < 0) {
			rolled = st.rolled_back;
			mig_explain(err, sizeof(err));
			break;
		}
		breakdown(&st.times, steps + done * BD_N);
		direct = st.times.direct;
		pc_ran = st.times.precopy;
		pc_rounds = st.times.precopy_rounds;
		pc_bytes = st.times.precopy_bytes;
		downs[done++] = st.downtime_us;
		state_bytes = st.state_bytes;
		cur = !cur;
		if (have_wl)
			w.net = dev[cur].net, w.blk = dev[cur].blk;
	}
	cli_progress("%s", "");
	if (have_wl) {
		/* finish on whichever device has the driver now */
		snprintf(what, sizeof(what), "traffic on %s",
			 cur ? a.dst : a.src);
		if (cli_interrupted)
			cli_traffic_stop(&w);
		else
			tr = cli_run_traffic(&w, 2000, what);
		secs = cli_now() - t0;
		cli_traffic_result(&w, &res);
	}
	cli_dev_flush(&dev[cur]);
	qsort(downs, done, sizeof(*downs), cmp_dbl);
	for (k = 0; k < BD_N && done; k++) {
		double *col = calloc(done, sizeof(*col));
		uint64_t i;

		for (i = 0; col && i < done; i++)
			col[i] = steps[i * BD_N + k];
		if (col) {
			qsort(col, done, sizeof(*col), cmp_dbl);
			med[k] = pct(col, done, 0.5);
		}
		free(col);
	}
	/* one line for what went wrong, the figures for what was done */
	rc = 0;
	if (r < 0)	/* the library's reason says whether it resumed */
		rc = cli_fail("migrate: %s", err);
	else if (cli_interrupted)
		rc = cli_fail("migrate: interrupted after %llu of %llu "
			      "migration(s)", (unsigned long long)done,
			      (unsigned long long)a.iterations);
	if (have_wl && tr < 0 && tr != -ETIMEDOUT && tr != -EINTR)
		rc = cli_fail_errno(tr, "migrate: %s", what);
	else if (have_wl && cli_result_bad(&res))
		rc = cli_fail_result(what, &res);
	json_init(&j, stdout, cli.pretty);
	if (cli.json) {
		json_obj_open(&j, NULL);
		json_str(&j, "result", cli_interrupted ? "interrupted" :
			 rc ? "failed" : "ok");
		if (rc)
			cli_json_error(&j, NULL);
		if (r < 0)
			json_bool(&j, "source_resumed", rolled);
		json_u64(&j, "migrations", done);
		json_dbl(&j, "downtime_us", pct(downs, done, 0.5));
		json_dbl(&j, "downtime_p99_us", pct(downs, done, 0.99));
		json_dbl(&j, "downtime_max_us", done ? downs[done - 1] : 0);
		json_u64(&j, "state_bytes", state_bytes);
		if (a.via == VIA_DIRECT)
			json_bool(&j, "direct", direct);
		if (a.precopy) {
			/* the last migration's: rounds before, rest in it */
			json_bool(&j, "precopy", pc_ran);
			json_u64(&j, "rounds", pc_rounds);
			json_u64(&j, "precopy_bytes", pc_bytes);
			json_u64(&j, "final_bytes", state_bytes);
		}
		json_obj_open(&j, "downtime_steps_us");
		for (k = 0; k < BD_N; k++)
			json_dbl(&j, bd_names[k], med[k]);
		json_obj_close(&j);
		cli_print_result(&j, &res, secs);
		json_obj_close(&j);
		json_end(&j);
	} else {
		if (done)
			printf("%s -> %s: %llu migration(s) ok, downtime "
			       "median %.0f us p99 %.0f us, state %zu bytes "
			       "via %s\n",
			       a.src, a.dst, (unsigned long long)done,
			       pct(downs, done, 0.5), pct(downs, done, 0.99),
			       state_bytes, a.via == VIA_PIPE ? "pipe" :
			       a.via == VIA_SOCKET ? "socket" :
			       a.via == VIA_FILE ? "file" :
			       direct ? "direct" : "pipe (direct impossible)");
		if (done && a.precopy)
			printf("pre-copy: %s%llu round(s), %llu bytes while "
			       "%s ran, %zu bytes in the downtime\n",
			       pc_ran ? "" : "not possible (a device does not "
			       "offer it, or the source lacks RESUME): ",
			       (unsigned long long)pc_rounds,
			       (unsigned long long)pc_bytes,
			       cur ? a.src : a.dst, state_bytes);
		if (done) {
			printf("downtime by step (median us):");
			for (k = 0; k < BD_N; k++)
				printf(" %s %.0f", bd_names[k], med[k]);
			printf("\n");
		}
		if (have_wl)
			cli_print_result(&j, &res, secs);
	}
	if (cli_interrupted)
		rc = CLI_EXIT_INTERRUPTED;
out:
	if (have_wl)
		wl_free(&w);
	free(downs);
	free(steps);
	cli_dev_close(&dev[0]);
	cli_dev_close(&dev[1]);
	vdpa_mem_destroy(mem);
	return rc;
}
