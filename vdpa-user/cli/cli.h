/* SPDX-License-Identifier: MIT */
/* Shared by the CLI's command files: one cmd_<object>_<verb>() per command. */
#ifndef VDPA_CLI_H
#define VDPA_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "json.h"

struct cli_opts {
	bool json;		/* -j */
	bool pretty;		/* -p */
	int verbose;		/* -v, repeatable: library log level */
	uint64_t max_state;	/* --max-state: largest state accepted */
};
extern struct cli_opts cli;

/* Print "vdpa-user: <msg>" as one line on stderr; returns exit status 1. */
int cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, with ": <strerror(-err)>" appended. */
int cli_errno(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Strict unsigned number parse (decimal or 0x hex), <= max: 0 or -EINVAL. */
int cli_parse_u64(const char *s, uint64_t max, uint64_t *ret);
/* Monotonic seconds. */
double cli_now(void);
struct wl_result;
/* Result fields of traffic/migrate (text line or JSON members). */
void cli_print_result(struct json *j, const struct wl_result *r, double secs);

struct vdpa_state;
/* A saved state (bare blob or migrate-out file); prints errors. */
int cli_read_state_file(const char *path, struct vdpa_state **ret);

/* Progress on a terminal only (stderr is a tty and not -j). */
void cli_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Commands. argv[0] is the first argument after the verb; each returns the
 * process exit status.
 */
int cmd_dev_show(int argc, char **argv);
int cmd_dev_info(int argc, char **argv);
int cmd_traffic(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_migrate_out(int argc, char **argv);
int cmd_migrate_in(int argc, char **argv);
int cmd_state_show(int argc, char **argv);
int cmd_state_check(int argc, char **argv);
/* Netlink management (cmd-mgmt.c). */
int cmd_mgmtdev_show(int argc, char **argv);
int cmd_dev_add(int argc, char **argv);
int cmd_dev_del(int argc, char **argv);
int cmd_dev_config_show(int argc, char **argv);
int cmd_dev_vstats_show(int argc, char **argv);

#endif
