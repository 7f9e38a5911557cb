/* SPDX-License-Identifier: MIT */
/* Internal logging: messages go to the callback set with vdpa_set_log(). */
#ifndef VDPA_LIB_LOG_H
#define VDPA_LIB_LOG_H

#include <stdbool.h>
#include <syslog.h>

void vdpa_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Cheap check before formatting something expensive. */
bool vdpa_log_enabled(int level);

#endif
