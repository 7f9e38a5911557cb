// SPDX-License-Identifier: MIT
/*
 * `vdpa-user serve DEV --socket PATH`: the listening socket (0600, peers
 * of another uid refused), one front-end at a time, the device reset
 * between front-ends, a clean exit on SIGINT/SIGTERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "cli.h"
#include "devopen.h"
#include "serve.h"

static volatile sig_atomic_t stop_sig;

static void on_signal(int sig)
{
	stop_sig = sig;
}

static const struct {
	const char *name;
	int level;
} levels[] = {
	{ "error", LOG_ERR }, { "warning", LOG_WARNING },
	{ "notice", LOG_NOTICE }, { "info", LOG_INFO },
	{ "debug", LOG_DEBUG },
};

struct serve_args {
	const char *dev, *path, *stats;
	int level, ready_fd;
};

static int parse(int argc, char **argv, struct serve_args *a)
{
	uint64_t v;
	int i, rc;
	size_t k;

	memset(a, 0, sizeof(*a));
	a->level = LOG_NOTICE;
	a->ready_fd = -1;
	for (i = 0; i < argc; i++) {
		const char *s = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(s, "--socket")) {
			if (!val)
				return cli_fail("serve: --socket needs a path");
			a->path = val;
		} else if (!strcmp(s, "--stats")) {
			if (!val || !*val)
				return cli_fail("serve: --stats needs a file");
			a->stats = val;
		} else if (!strcmp(s, "--log-level")) {
			for (k = 0; val && k < sizeof(levels) / sizeof(levels[0]);
			     k++)
				if (!strcmp(val, levels[k].name))
					break;
			if (!val || k == sizeof(levels) / sizeof(levels[0]))
				return cli_fail("serve: --log-level: error, "
						"warning, notice, info or debug");
			a->level = levels[k].level;
		} else if (!strcmp(s, "--ready-fd")) {
			rc = cli_parse_opt("serve", s, val, 0, 1 << 20, &v);
			if (rc)
				return rc;
			a->ready_fd = (int)v;
		} else if (s[0] == '-') {
			return cli_fail("serve: unknown option '%s'", s);
		} else if (!a->dev) {
			a->dev = s;
			continue;
		} else {
			return cli_fail("serve: unexpected argument '%s'", s);
		}
		i++;
	}
	if (!a->dev || !a->path)
		return cli_fail("usage: vdpa-user serve DEV --socket PATH "
				"[--log-level LEVEL] [--ready-fd N] [--stats FILE]");
	return 0;
}

/* A socket file nobody listens on is replaced; a live one never. */
static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return cli_fail("serve: %s: path too long for a unix socket",
				path);
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -cli_fail("serve: %s exists and is not a socket; "
					 "not replacing it", path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa,
				       sizeof(sa)) == 0) {
			close(fd);
			return -cli_fail("serve: %s: something is listening on "
					 "it; not taking it over", path);
		}
		if (fd >= 0)
			close(fd);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -cli_fail_errno(errno, "serve: socket");
	old = umask(077);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || chmod(path, 0600) < 0 || listen(fd, 4) < 0) {
		r = errno;
		close(fd);
		return -cli_fail_errno(r, "serve: %s", path);
	}
	return fd;
}

static void serve_conn(struct srv *s);

static void take_conn(struct srv *s, int lfd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    cred.uid != getuid()) {
		srv_log(LOG_WARNING, "refused a front-end of uid %d (serving "
			"uid %d only)", (int)cred.uid, (int)getuid());
		close(fd);
		return;
	}
	/* what the connected one still sent, its hang-up included */
	while (s->conn >= 0 && poll(&(struct pollfd){ .fd = s->conn,
				    .events = POLLIN }, 1, 0) == 1)
		serve_conn(s);
	if (s->conn >= 0) {
		/* said once per connected front-end: a peer may retry fast */
		if (!s->refused++)
			srv_log(LOG_WARNING, "refused front-end pid %d: one "
				"front-end at a time (pid %d is connected); "
				"further ones refused silently", (int)cred.pid,
				(int)s->conn_pid);
		close(fd);
		return;
	}
	s->conn_pid = cred.pid;
	s->refused = 0;
	s->conn = fd;
	s->st.connections++;
	srv_log(LOG_NOTICE, "front-end connected (pid %d)", (int)cred.pid);
}

static void serve_conn(struct srv *s)
{
	struct srv_msg *m = malloc(sizeof(*m));
	char err[256];
	int r;

	if (!m) {
		srv_log(LOG_ERR, "out of memory");
		srv_disconnect(s);
		return;
	}
	err[0] = '\0';
	r = srv_recv(s->conn, m, err, sizeof(err));
	if (r < 0)
		srv_log(LOG_ERR, "%s; closing the connection", err);
	if (r <= 0 || srv_handle(s, m) < 0)
		srv_disconnect(s);
	free(m);
}

static int loop(struct srv *s, int lfd)
{
	while (!stop_sig) {
		struct pollfd p[2] = {
			{ .fd = lfd, .events = POLLIN },
			{ .fd = s->conn, .events = POLLIN },
		};
		int n = poll(p, s->conn >= 0 ? 2 : 1, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return cli_fail_errno(errno, "serve: poll");
		/*
		 * The connected front-end first: a front-end that closed and
		 * reconnected at once must find its old connection gone.
		 */
		if (s->conn >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
			serve_conn(s);
		if (p[0].revents & POLLIN)
			take_conn(s, lfd);
		srv_stats_flush(s);
	}
	return 0;
}

int cmd_serve(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct serve_args a;
	struct srv s;
	char err[256] = "";
	int lfd, rc;

	rc = parse(argc, argv, &a);
	if (rc)
		return rc;
	srv_log_level = a.level;
	if (a.ready_fd >= 0 && fcntl(a.ready_fd, F_GETFD) < 0)
		return cli_fail("serve: --ready-fd %d is not open", a.ready_fd);
	memset(&s, 0, sizeof(s));
	s.conn = -1;
	s.devname = a.dev;
	s.stats_path = a.stats;
	for (rc = 0; rc < SERVE_MAX_VQS; rc++)
		s.vq[rc].kick_fd = s.vq[rc].call_fd = s.vq[rc].err_fd = -1;
	cli_begin();
	rc = srv_dev_init(&s, a.dev, err, sizeof(err));
	if (rc < 0) {
		rc = cli_fail("serve: %s", err);
		goto out_dev;
	}
	/* the file exists (all zero) before anyone is told we are ready */
	rc = srv_stats_flush(&s);
	if (rc < 0) {
		rc = cli_fail("serve: --stats %s: %s", a.stats, strerror(-rc));
		goto out_dev;
	}
	lfd = listen_on(a.path);
	if (lfd < 0) {
		rc = 1;
		goto out_dev;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	srv_log(LOG_NOTICE, "serving %s on %s", a.dev, a.path);
	if (a.ready_fd >= 0) {
		if (write(a.ready_fd, "ready\n", 6) != 6)
			srv_log(LOG_WARNING, "--ready-fd: write failed");
		close(a.ready_fd);
		a.ready_fd = -1;
	}
	rc = loop(&s, lfd);
	if (s.conn >= 0)
		srv_disconnect(&s);
	srv_stats_flush(&s);
	close(lfd);
	unlink(a.path);
	if (stop_sig)
		srv_log(LOG_NOTICE, "signal %d: stopped", (int)stop_sig);
out_dev:
	vdpa_state_free(s.desc);
	vdpa_dev_close(s.dev);
	if (a.ready_fd >= 0)
		close(a.ready_fd);
	return rc;
}
