/* SPDX-License-Identifier: MIT */
/* Internal logging: messages go to the callback set with vdpa_set_log(). */
#ifndef VDPA_LIB_LOG_H
#define VDPA_LIB_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

void vdpa_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Cheap check before formatting something expensive. */
bool vdpa_log_enabled(int level);

/* One line of reason into a caller's error buffer (NULL/0: nothing). */
void vdpa_say(char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t vdpa_now_ns(void);

#endif
