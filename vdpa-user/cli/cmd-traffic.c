// SPDX-License-Identifier: MIT
/* traffic DEV --count N [--size B] [--queues Q] */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "devopen.h"
#include "workload.h"

int cli_parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

int cli_parse_opt(const char *cmd, const char *opt, const char *val,
		  uint64_t min, uint64_t max, uint64_t *ret)
{
	uint64_t v;

	if (!val)
		return cli_fail("%s: %s needs a number, %llu..%llu", cmd, opt,
				(unsigned long long)min,
				(unsigned long long)max);
	if (cli_parse_u64(val, UINT64_MAX, &v) < 0 || v < min || v > max)
		return cli_fail("%s: %s: %llu..%llu, not '%s'", cmd, opt,
				(unsigned long long)min,
				(unsigned long long)max, val);
	*ret = v;
	return 0;
}

double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool result_command;

void cli_result_command(void)
{
	result_command = true;
}

bool cli_is_result_command(void)
{
	return result_command;
}

void cli_print_result(struct json *j, const struct wl_result *r, double secs)
{
	double rate = secs > 0 ? (double)r->completed / secs : 0;

	if (cli.json) {
		json_u64(j, "requests", r->requests);
		json_u64(j, "completed", r->completed);
		json_u64(j, "lost", r->lost);
		json_u64(j, "duplicated", r->duplicated);
		json_u64(j, "corrupt", r->corrupt);
		json_u64(j, "errors", r->errors);
		json_dbl(j, "rate", rate);
		json_dbl(j, "seconds", secs);
	} else {
		printf("requests %llu completed %llu lost %llu duplicated %llu "
		       "corrupt %llu errors %llu, %.3f s, %.0f req/s\n",
		       (unsigned long long)r->requests,
		       (unsigned long long)r->completed,
		       (unsigned long long)r->lost,
		       (unsigned long long)r->duplicated,
		       (unsigned long long)r->corrupt,
		       (unsigned long long)r->errors, secs, rate);
	}
}

bool cli_result_bad(const struct wl_result *r)
{
	return r->lost || r->duplicated || r->corrupt || r->errors;
}

int cli_fail_result(const char *what, const struct wl_result *r)
{
	return cli_fail("%s: %llu lost, %llu duplicated, %llu corrupt, %llu "
			"errors of %llu requests", what,
			(unsigned long long)r->lost,
			(unsigned long long)r->duplicated,
			(unsigned long long)r->corrupt,
			(unsigned long long)r->errors,
			(unsigned long long)r->requests);
}

/*
 * wl_run() with progress on a terminal and Ctrl-C: until every request is
 * accounted for, idle_ms without progress (-ETIMEDOUT) or cli_interrupted
 * (-EINTR; nothing new is submitted then and what is in flight is given
 * a moment to come back, so the summary counts only what was lost).
 */
int cli_run_traffic(struct workload *w, int idle_ms, const char *label)
{
	double last = cli_now(), shown = 0;
	uint64_t progress = UINT64_MAX;
	int r;

	for (;;) {
		uint64_t p;

		if (cli_interrupted) {
			cli_traffic_stop(w);
			cli_progress("%s", "");
			return -EINTR;
		}
		r = wl_step(w);
		if (r != 0) {
			cli_progress("%s", "");
			return r < 0 ? r : 0;
		}
		p = w->next + w->r.completed;
		if (p != progress) {
			progress = p;
			last = cli_now();
		} else if (cli_now() - last > idle_ms / 1000.0) {
			cli_progress("%s", "");
			return -ETIMEDOUT;
		} else {
			wl_wait(w, 1);
		}
		if (label && cli_now() - shown > 0.2) {
			shown = cli_now();
			cli_progress("%s: %llu of %llu requests verified "
				     "(Ctrl-C stops)", label,
				     (unsigned long long)w->r.completed,
				     (unsigned long long)w->count);
		}
	}
}

void cli_traffic_stop(struct workload *w)
{
	double t0 = cli_now();

	w->paused = true;
	/* what was submitted comes back, or is lost after a second */
	while (w->r.completed + w->r.corrupt + w->r.errors +
	       w->r.duplicated < w->next && cli_now() - t0 < 1.0) {
		if (wl_step(w) < 0)
			break;
		wl_wait(w, 1);
	}
}

void cli_traffic_result(struct workload *w, struct wl_result *r)
{
	uint64_t done;

	wl_result(w, r);
	if (!w->paused)
		return;
	/* stopped early: what was asked of the device is what was sent */
	done = r->completed + r->corrupt + r->errors;
	r->requests = w->next;
	r->lost = w->next > done ? w->next - done : 0;
}

int cmd_traffic(int argc, char **argv)
{
	uint64_t count = 0, size = 0, queues = 1;
	struct vdpa_mem *mem = NULL;
	struct workload w;
	struct wl_result r = { 0 };
	struct cli_dev d = { 0 };
	struct json j;
	const char *name = NULL;
	char what[600];
	double t0 = 0, secs = 0;
	bool have_wl = false;
	int i, err = 0, rc;

	cli_result_command();
	cli_catch_sigint();
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--count")) {
			rc = cli_parse_opt("traffic", a, v, 1, CLI_COUNT_MAX,
					   &count);
		} else if (!strcmp(a, "--size")) {
			rc = cli_parse_opt("traffic", a, v, 0, CLI_SIZE_MAX,
					   &size);
		} else if (!strcmp(a, "--queues")) {
			rc = cli_parse_opt("traffic", a, v, 1, CLI_MAX_QUEUES,
					   &queues);
		} else if (a[0] == '-' || name) {
			return cli_fail("traffic: unexpected argument '%s'", a);
		} else {
			name = a;
			continue;
		}
		if (rc)
			return rc;
		i++;
	}
	if (!name || !count)
		return cli_fail("usage: vdpa-user traffic DEV --count N "
				"[--size B] [--queues Q]");
	snprintf(what, sizeof(what), "traffic on %s", name);
	rc = cli_dev_open(name, &d);
	if (rc)
		return rc;
	err = vdpa_mem_create(CLI_MEM_SIZE, CLI_MEM_IOVA, &mem);
	if (err < 0) {
		rc = cli_fail_errno(err, "creating driver memory");
		goto out;
	}
	rc = cli_dev_start(&d, mem, (unsigned int)queues);
	if (rc)
		goto out;
	rc = cli_check_size("traffic", &d, size);
	if (rc)
		goto out;
	err = wl_init(&w, d.net, d.blk, count, (uint32_t)size,
		      (unsigned int)queues);
	if (err < 0) {
		rc = cli_fail_errno(err, "traffic on %s: setting up", name);
		goto out;
	}
	have_wl = true;
	t0 = cli_now();
	err = cli_run_traffic(&w, 2000, what);
	secs = cli_now() - t0;
	cli_traffic_result(&w, &r);
	if (err < 0 && err != -ETIMEDOUT && err != -EINTR) {
		rc = cli_fail_errno(err, "traffic on %s", name);
		goto print;
	}
	cli_dev_flush(&d);
	if (err == -EINTR)
		rc = cli_fail("traffic on %s: interrupted after %llu of %llu "
			      "requests", name,
			      (unsigned long long)r.requests,
			      (unsigned long long)count);
	else if (cli_result_bad(&r))
		rc = cli_fail_result(what, &r);
print:
	json_init(&j, stdout, cli.pretty);
	if (cli.json) {
		json_obj_open(&j, NULL);
		json_str(&j, "result", err == -EINTR ? "interrupted" :
			 rc ? "failed" : "ok");
		if (rc)
			cli_json_error(&j, NULL);
	}
	cli_print_result(&j, &r, secs);
	if (cli.json) {
		json_obj_close(&j);
		json_end(&j);
	}
	if (err == -EINTR)
		rc = CLI_EXIT_INTERRUPTED;
out:
	if (have_wl)
		wl_free(&w);
	cli_dev_close(&d);
	vdpa_mem_destroy(mem);
	return rc;
}

int cli_check_size(const char *cmd, struct cli_dev *d, uint64_t size)
{
	if (!size)
		return 0;
	if (d->net && (size < PAYLOAD_MIN_FRAME ||
		       size > vdpa_net_max_frame(d->net)))
		return cli_fail("%s: --size: %u..%zu bytes for %s (a frame), "
				"not %llu", cmd, PAYLOAD_MIN_FRAME,
				vdpa_net_max_frame(d->net),
				vdpa_dev_name(d->dev),
				(unsigned long long)size);
	if (d->blk && (size < 512 || size > 65536 || size % 512))
		return cli_fail("%s: --size: 512..65536 bytes, a multiple of "
				"512, for %s (a block), not %llu", cmd,
				vdpa_dev_name(d->dev),
				(unsigned long long)size);
	return 0;
}
