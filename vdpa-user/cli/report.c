// SPDX-License-Identifier: MIT
/*
 * How a command reports: one line per error on stderr, the same error in
 * the JSON a command prints with -j (an {"error":...} object at exit when
 * it printed none), the library's own error log held back so an error is
 * not said twice, and Ctrl-C as a flag the long-running loops check.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <vdpa-user/vdpa-user.h>

#include "cli.h"
#include "stream.h"

volatile sig_atomic_t cli_interrupted;

static char first_error[1024];
static bool have_error, exit_hook;
static char lib_error[512];

/* The line as printed: control bytes escaped, so it stays one line. */
static void one_line(char *out, size_t len, const char *in)
{
	size_t o = 0;

	for (; *in && o + 5 < len; in++) {
		unsigned char c = (unsigned char)*in;

		if (c < 0x20 || c == 0x7f)
			o += (size_t)snprintf(out + o, len - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
}

/* With -j: the error as a JSON object, if the command printed nothing. */
static void json_error_at_exit(void)
{
	struct json j;

	if (!have_error || json_emitted)
		return;
	json_init(&j, stdout, cli.pretty);
	json_obj_open(&j, NULL);
	if (cli_is_result_command())
		json_str(&j, "result", cli_interrupted ? "interrupted" :
			 "failed");
	json_str(&j, "error", first_error);
	json_obj_close(&j);
	json_end(&j);
}

static int report(const char *msg)
{
	char line[sizeof(first_error)];

	one_line(line, sizeof(line), msg);
	fprintf(stderr, "vdpa-user: %s\n", line);
	if (!have_error) {
		/* as said, JSON escapes it its own way */
		snprintf(first_error, sizeof(first_error), "%s", msg);
		have_error = true;
	}
	if (cli.json && !exit_hook) {
		atexit(json_error_at_exit);
		exit_hook = true;
	}
	return 1;
}

int cli_vfail(const char *fmt, va_list ap)
{
	char msg[sizeof(first_error)];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	return report(msg);
}

int cli_vfail_errno(int err, const char *fmt, va_list ap)
{
	char msg[sizeof(first_error)];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	snprintf(msg + n, sizeof(msg) - n, ": %s",
		 strerror(err < 0 ? -err : err));
	return report(msg);
}

int cli_fail(const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = cli_vfail(fmt, ap);
	va_end(ap);
	return r;
}

int cli_fail_errno(int err, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = cli_vfail_errno(err, fmt, ap);
	va_end(ap);
	return r;
}

void cli_warn(const char *fmt, ...)
{
	char msg[sizeof(first_error)], line[sizeof(first_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	one_line(line, sizeof(line), msg);
	fprintf(stderr, "vdpa-user: warning: %s\n", line);
}

const char *cli_error(void)
{
	return have_error ? first_error : NULL;
}

void cli_json_error(struct json *j, const char *fallback)
{
	if (have_error)
		json_str(j, "error", first_error);
	else if (fallback)
		json_str(j, "error", fallback);
}

/* ---- the library's log -------------------------------------------------- */

/*
 * Errors the library logs are the command's own errors said once more,
 * often less precisely: they are kept (the first since cli_lib_clear())
 * for the command to use, and printed only with -v. Warnings and, with
 * -v/-vv, info and debug are printed as before.
 */
static void lib_log(int level, const char *msg, void *opaque)
{
	static const char *const names[] = {
		"emerg", "alert", "crit", "error", "warning", "notice", "info",
		"debug",
	};

	(void)opaque;
	if (level <= LOG_ERR && !lib_error[0])
		snprintf(lib_error, sizeof(lib_error), "%s", msg);
	if (level <= LOG_ERR && !cli.verbose)
		return;
	fprintf(stderr, "vdpa-user: %s: %s\n", names[level & 7], msg);
}

void cli_lib_clear(void)
{
	lib_error[0] = '\0';
}

const char *cli_lib_why(int err, const char *name)
{
	static char why[512];
	size_t n = name ? strlen(name) : 0;
	const char *m = lib_error;

	if (!*m)
		return strerror(err < 0 ? -err : err);
	/* "NAME: what" said about the device the caller names already */
	if (n && !strncmp(m, name, n) && !strncmp(m + n, ": ", 2))
		m += n + 2;
	snprintf(why, sizeof(why), "%s", m);
	lib_error[0] = '\0';
	return why;
}

/* ---- Ctrl-C ------------------------------------------------------------- */

static void on_sigint(int sig)
{
	(void)sig;
	cli_interrupted = 1;
}

void cli_begin(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	vdpa_set_log(lib_log, NULL, cli.verbose >= 2 ? LOG_DEBUG :
		     cli.verbose == 1 ? LOG_INFO : LOG_WARNING);
}

void cli_catch_sigint(void)
{
	static bool done;
	struct sigaction sa;

	cli_begin();
	if (done)
		return;
	done = true;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	stream_set_cancel(&cli_interrupted);
}

void cli_hold_sigint(bool hold)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGINT);
	sigprocmask(hold ? SIG_BLOCK : SIG_UNBLOCK, &s, NULL);
}
