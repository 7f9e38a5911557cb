/* SPDX-License-Identifier: MIT */
/* Minimal TAP producer for the test binaries. Exit 77 = skip the binary. */
#ifndef VDPA_TESTS_TAP_H
#define VDPA_TESTS_TAP_H

#include <dirent.h>
#include <errno.h>
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

/*
 * Number of open fds of this process (for leak checks). It never returns
 * an error a caller could compare with another error: when /proc/self/fd
 * cannot be read, a binary that has not run a test yet is skipped (77,
 * with the reason), one that has bails out (exit 1). A binary with leak
 * checks calls tap_need_fd_count() first, so it skips before any test.
 */
static inline int tap_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char why[160];
	int n = 0, err;

	if (d) {
		errno = 0;
		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				n++;
		err = errno;
		closedir(d);
		if (!err && n >= 1)
			return n - 1;	/* the DIR's own fd */
		errno = err ? err : EIO;
	}
	snprintf(why, sizeof(why), "cannot count open fds (/proc/self/fd: "
		 "%s): the leak checks could not fail", strerror(errno));
	if (tap_n == 0)
		tap_skip_all(why);
	printf("Bail out! %s\n", why);
	fflush(stdout);
	exit(1);
}

/* At the start of main: skip the binary now if fds cannot be counted. */
static inline void tap_need_fd_count(void)
{
	(void)tap_count_fds();
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
