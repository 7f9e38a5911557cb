// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include <vdpa-user/vdpa-user.h>

#include "log.h"

static vdpa_log_fn log_fn;
static void *log_opaque;
static int log_max = LOG_WARNING;

void vdpa_set_log(vdpa_log_fn fn, void *opaque, int max_level)
{
	log_fn = fn;
	log_opaque = opaque;
	log_max = max_level;
}

bool vdpa_log_enabled(int level)
{
	return log_fn && level <= log_max;
}

void vdpa_say(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errbuf || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

uint64_t vdpa_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vdpa_log(int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!vdpa_log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_fn(level, buf, log_opaque);
}
