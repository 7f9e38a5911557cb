/* SPDX-License-Identifier: MIT */
/* Helpers shared by the test binaries. */
#ifndef VDPA_TESTUTIL_H
#define VDPA_TESTUTIL_H

#include <stdbool.h>
#include <sys/types.h>

/* Directory holding the built binaries (from $BUILD or the test's path). */
const char *tu_build_dir(void);

/* A fresh private directory under $TMPDIR; removed by tu_rmtree(). */
int tu_mkdtemp(char *buf, size_t len);
void tu_rmtree(const char *dir);

/*
 * Start build/vdpa-sim with args (NULL-terminated, after the program name)
 * on socket path and wait until the socket accepts. Returns the pid or
 * -errno.
 */
pid_t tu_spawn_sim(const char *socket_path, const char *const *args);
/* SIGTERM (or SIGKILL when kill9) and reap; returns the exit status. */
int tu_stop_sim(pid_t pid, bool kill9);

#endif
