// SPDX-License-Identifier: MIT
/*
 * `serve --stats FILE`: the back-end's own counters as one JSON object,
 * rewritten whole (a temporary file renamed over FILE) whenever a counter
 * changed, so a reader never sees half a file. Times are CLOCK_MONOTONIC
 * nanoseconds of the last such event, 0 before the first one; a test on
 * the same host subtracts them across processes (the back-end's share of
 * a migration: the source's t_get_vring_base_ns to the destination's
 * t_check_ns). docs/vhost-user.md lists the keys.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

uint64_t srv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int srv_reply(struct srv *s, uint32_t request, const void *payload,
	      uint32_t size, int send_fd)
{
	/* whoever got the answer finds the counters that led to it */
	srv_stats_flush(s);
	return srv_send(s->conn, request, payload, size, send_fd);
}

#define KEYS(X) \
	X(connections) X(request_errors) X(stops) X(flushes) \
	X(state_saves) X(state_loads) X(save_checks_ok) X(load_checks_ok) \
	X(check_failures) X(precopy_rounds) \
	X(relay_on) X(relay_off) X(relay_fd_swaps) X(relay_forwarded) \
	X(relay_completions) X(relay_pages_logged) \
	X(t_get_vring_base_ns) X(t_state_fd_ns) X(t_check_ns)

int srv_stats_flush(struct srv *s)
{
	char tmp[4096 + 8], buf[2048];
	size_t len = 0;
	int fd, n;

	if (!s->stats_path ||
	    (s->stats_written && !memcmp(&s->st, &s->st_last, sizeof(s->st))))
		return 0;
#define PUT(k) \
	n = snprintf(buf + len, sizeof(buf) - len, "%s\"" #k "\": %" PRIu64, \
		     len > 1 ? ", " : "", s->st.k); \
	if (n > 0) \
		len += (size_t)n;
	len = (size_t)snprintf(buf, sizeof(buf), "{");
	KEYS(PUT)
#undef PUT
	n = snprintf(buf + len, sizeof(buf) - len, ", \"pid\": %d}\n",
		     (int)getpid());
	if (n < 0 || len + (size_t)n >= sizeof(buf))
		return -EOVERFLOW;
	len += (size_t)n;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", s->stats_path) >=
	    sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto err;
	if (write(fd, buf, len) != (ssize_t)len) {
		close(fd);
		unlink(tmp);
		goto err;
	}
	close(fd);
	if (rename(tmp, s->stats_path) < 0) {
		unlink(tmp);
		goto err;
	}
	s->st_last = s->st;
	s->stats_written = true;
	return 0;
err:
	n = -errno;
	/* said once: a full disk must not flood the log */
	if (!s->stats_failed++)
		srv_log(LOG_WARNING, "--stats %s: %s (said once)",
			s->stats_path, strerror(-n));
	return n;
}
