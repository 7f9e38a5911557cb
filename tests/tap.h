/* SPDX-License-Identifier: MIT */
/* Minimal TAP producer for the test binaries. Exit 77 = skip the binary. */
#ifndef VDPA_TESTS_TAP_H
#define VDPA_TESTS_TAP_H

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

static inline int tap_ok(int cond, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline int tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		tap_failed++;
	return cond;
}

static inline void tap_diag(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* Compare two integers and show both on failure. */
#define tap_is(got, want, ...) do {					\
	long long g_ = (long long)(got), w_ = (long long)(want);	\
	if (!tap_ok(g_ == w_, __VA_ARGS__))				\
		tap_diag("  got %lld, want %lld", g_, w_);		\
} while (0)

/* tap_is() as an expression: true when it passed. */
#ifndef tap_is_ok
#define tap_is_ok(got, want, ...) ({					\
	long long g__ = (long long)(got), w__ = (long long)(want);	\
	int ok__ = tap_ok(g__ == w__, __VA_ARGS__);			\
									\
	if (!ok__)							\
		tap_diag("  got %lld, want %lld", g__, w__);		\
	ok__;								\
})
#endif

static inline void tap_skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	exit(77);
}

/* Number of open fds of this process (for leak checks). */
static inline int tap_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the DIR's own fd */
}

static inline int tap_done(void)
{
	if (tap_n == 0) {
		printf("not ok 1 - no test ran\n1..1\n");
		return 1;
	}
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
