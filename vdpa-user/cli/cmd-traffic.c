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

double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

int cmd_traffic(int argc, char **argv)
{
	uint64_t count = 0, size = 0, queues = 1;
	struct vdpa_mem *mem = NULL;
	struct workload w;
	struct wl_result r;
	struct cli_dev d;
	struct json j;
	const char *name = NULL;
	double t0, secs;
	int i, err, rc;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		uint64_t *dst = !strcmp(a, "--count") ? &count :
				!strcmp(a, "--size") ? &size :
				!strcmp(a, "--queues") ? &queues : NULL;

		if (dst) {
			if (i + 1 >= argc ||
			    cli_parse_u64(argv[++i], 1ull << 40, dst) < 0)
				return cli_err("traffic: %s needs a number", a);
		} else if (a[0] == '-' || name) {
			return cli_err("traffic: unexpected argument '%s'", a);
		} else {
			name = a;
		}
	}
	if (!name || !count)
		return cli_err("usage: vdpa-user traffic DEV --count N "
			       "[--size B] [--queues Q]");
	rc = cli_dev_open(name, &d);
	if (rc)
		return rc;
	err = vdpa_mem_create(CLI_MEM_SIZE, CLI_MEM_IOVA, &mem);
	if (err < 0) {
		rc = cli_errno(err, "creating driver memory");
		goto out;
	}
	rc = cli_dev_start(&d, mem, (unsigned int)queues);
	if (rc)
		goto out;
	err = wl_init(&w, d.net, d.blk, count, (uint32_t)size,
		      (unsigned int)queues);
	if (err < 0) {
		rc = cli_errno(err, "traffic: bad --size/--queues for %s", name);
		goto out;
	}
	t0 = cli_now();
	err = wl_run(&w, 2000);
	secs = cli_now() - t0;
	wl_result(&w, &r);
	wl_free(&w);
	if (err < 0 && err != -ETIMEDOUT) {
		rc = cli_errno(err, "traffic on %s", name);
		goto out;
	}
	json_init(&j, stdout, cli.pretty);
	if (cli.json)
		json_obj_open(&j, NULL);
	cli_print_result(&j, &r, secs);
	if (cli.json) {
		json_obj_close(&j);
		json_end(&j);
	}
	rc = r.lost || r.duplicated || r.corrupt || r.errors;
	if (rc)
		cli_err("traffic on %s: %llu lost, %llu duplicated, %llu corrupt",
			name, (unsigned long long)r.lost,
			(unsigned long long)r.duplicated,
			(unsigned long long)r.corrupt);
out:
	cli_dev_close(&d);
	vdpa_mem_destroy(mem);
	return rc;
}
