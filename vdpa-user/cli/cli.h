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

/* Strict unsigned number parse (decimal or 0x hex), <= max: 0 or -EINVAL. */
int cli_parse_u64(const char *s, uint64_t max, uint64_t *ret);
/*
 * An option's number, min..max; else reported naming the option and its
 * range ("traffic: --count: 1..1000000000, not 'x'"): 0 or exit status.
 */
int cli_parse_opt(const char *cmd, const char *opt, const char *val,
		  uint64_t min, uint64_t max, uint64_t *ret);
/* Ranges of the traffic options (the workload's seen-set is count bits). */
#define CLI_COUNT_MAX	1000000000ull
#define CLI_SIZE_MAX	65536ull
/* Monotonic seconds. */
double cli_now(void);
struct wl_result;
struct workload;
/* Result fields of traffic/migrate (text line or JSON members). */
void cli_print_result(struct json *j, const struct wl_result *r, double secs);
/* Any lost, duplicated, corrupt or failed request? */
bool cli_result_bad(const struct wl_result *r);
/* "WHAT: N lost, N duplicated, N corrupt, N errors of N requests". */
int cli_fail_result(const char *what, const struct wl_result *r);
/*
 * The traffic, to the end, with progress on a terminal ("LABEL: N of M
 * requests verified") and Ctrl-C: 0, -ETIMEDOUT after idle_ms without
 * progress, -EINTR when interrupted (cli_traffic_stop() done), or a
 * driver error.
 */
int cli_run_traffic(struct workload *w, int idle_ms, const char *label);
/* Submit no more, let what is in flight come back (at most 1 s). */
void cli_traffic_stop(struct workload *w);
/* wl_result(), counting only what was submitted if it was stopped. */
void cli_traffic_result(struct workload *w, struct wl_result *r);
/*
 * The commands with a "result" member (traffic, migrate, migrate-out,
 * migrate-in) say so first: their error object at exit then carries
 * "result":"failed" (or "interrupted") too.
 */
void cli_result_command(void);
bool cli_is_result_command(void);

struct vdpa_state;
/* A saved state (bare blob or migrate-out file); prints errors. */
int cli_read_state_file(const char *path, struct vdpa_state **ret);

/* Progress on a terminal only (stderr is a tty and not -j). */
void cli_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Reporting (report.c). Commands report errors through cli_fail*(): one
 * line on stderr ("vdpa-user: MSG", control bytes escaped), the first of
 * them kept as the command's error; with -j, an {"error":MSG} object is
 * printed at exit unless the command printed its own JSON (which then
 * carries "error" through cli_json_error()). Both return exit status 1.
 */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_fail_errno(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The same with a va_list. */
#include <stdarg.h>
int cli_vfail(const char *fmt, va_list ap)
	__attribute__((format(printf, 1, 0)));
int cli_vfail_errno(int err, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* "vdpa-user: warning: MSG" on stderr; not the command's error. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The first error reported, or NULL. */
const char *cli_error(void);
/* "error": the first error reported, else fallback (if not NULL). */
void cli_json_error(struct json *j, const char *fallback);
/*
 * Once per command, before the library is used: the library's error log
 * is held back (printed with -v) so an error is said once, by the command;
 * cli_lib_why() gives the library's reason for the last failure (without a
 * leading "NAME: "), else strerror(err); cli_lib_clear() before a call.
 */
void cli_begin(void);
void cli_lib_clear(void);
const char *cli_lib_why(int err, const char *name);

/*
 * Ctrl-C (SIGINT) sets cli_interrupted; long loops check it, print what
 * they did and exit CLI_EXIT_INTERRUPTED. cli_catch_sigint() installs the
 * handler (and cli_begin()); cli_hold_sigint(true) defers Ctrl-C over a
 * step that must finish or roll back (a migration's downtime).
 */
#define CLI_EXIT_INTERRUPTED	130
#include <signal.h>
extern volatile sig_atomic_t cli_interrupted;
void cli_catch_sigint(void);
void cli_hold_sigint(bool hold);

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
int cmd_live_update(int argc, char **argv);
int cmd_state_show(int argc, char **argv);
int cmd_state_check(int argc, char **argv);
/* The migration conformance suite (cmd-conform*.c). */
int cmd_conform(int argc, char **argv);
/* vhost-user back-end (vdpa-user/serve/cmd-serve.c). */
int cmd_serve(int argc, char **argv);
/* Netlink management (cmd-mgmt.c). */
int cmd_mgmtdev_show(int argc, char **argv);
int cmd_dev_add(int argc, char **argv);
int cmd_dev_del(int argc, char **argv);
int cmd_dev_config_show(int argc, char **argv);
int cmd_dev_vstats_show(int argc, char **argv);

#endif
