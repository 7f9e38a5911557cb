// SPDX-License-Identifier: MIT
/*
 * live-update: the device changes process, not host (docs/live-update.md).
 * The old process drives DEV (with --traffic, verified requests), then
 * hands it to a new process with the library's vdpa_handover_send(): a
 * copy of this binary it runs (--exec, the socket inherited) or a
 * `live-update --from unix:PATH` waiting on a socket (--to). The new
 * process adopts the device, the driver memory and the driver, and the
 * traffic continues there; it prints the result.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vdpa-user/handover.h>
#include <vdpa-user/vq.h>

#include "cli.h"
#include "devopen.h"
#include "migrate.h"
#include "workload.h"

#define LU_MAGIC	0x5055564cu	/* "LVUP": the CLI's own record */
#define LU_TIMEOUT_S	30ull

struct lu_args {
	const char *dev, *to, *from;
	bool traffic, exec;
	uint64_t count, size, timeout;
};

/* What the CLI puts in the handover's app record, then the blobs. */
struct lu_app {
	uint32_t magic;
	uint32_t cls;		/* 1 net, 2 blk */
	uint64_t drv_len, wl_len;
	uint8_t traffic;
	uint8_t pad[7];
};

static int parse(int argc, char **argv, struct lu_args *a)
{
	int i, rc;

	memset(a, 0, sizeof(*a));
	a->timeout = LU_TIMEOUT_S;
	for (i = 0; i < argc; i++) {
		const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		rc = 0;
		if (!strcmp(s, "--traffic") || !strcmp(s, "--exec")) {
			*(s[2] == 't' ? &a->traffic : &a->exec) = true;
			continue;
		} else if (!strcmp(s, "--count")) {
			rc = cli_parse_opt("live-update", s, v, 1,
					   CLI_COUNT_MAX, &a->count);
		} else if (!strcmp(s, "--size")) {
			rc = cli_parse_opt("live-update", s, v, 0,
					   CLI_SIZE_MAX, &a->size);
		} else if (!strcmp(s, "--timeout")) {
			rc = cli_parse_opt("live-update", s, v, 1, 86400,
					   &a->timeout);
		} else if (!strcmp(s, "--to") || !strcmp(s, "--from")) {
			/* fd:N is how --exec hands the socket to --from */
			if (!v || !(!strncmp(v, "unix:", 5) ? v[5] :
				    !strcmp(s, "--from") && !strncmp(v, "fd:", 3)
				    ? v[3] : 0))
				return cli_fail("live-update: %s needs unix:PATH",
						s);
			*(s[2] == 't' ? &a->to : &a->from) = v;
		} else if (s[0] == '-') {
			return cli_fail("live-update: unknown option '%s'", s);
		} else if (!a->dev) {
			a->dev = s;
			continue;
		} else {
			return cli_fail("live-update: unexpected argument '%s'",
					s);
		}
		if (rc)
			return rc;
		i++;
	}
	if (a->from ? a->dev || a->to || a->exec || a->traffic :
	    !a->dev || !!a->to == a->exec)
		return cli_fail("usage: vdpa-user live-update DEV [--traffic] "
				"[--count N] [--size B] --exec|--to unix:PATH "
				"[--timeout S], or live-update --from "
				"unix:PATH [--timeout S]");
	return 0;
}

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!*path || strlen(path) >= sizeof(sa->sun_path))
		return -EINVAL;
	strcpy(sa->sun_path, path);
	return 0;
}

static int lu_connect(const char *path, int timeout_ms)
{
	struct sockaddr_un sa;
	int fd, r, waited = 0;

	if (unix_addr(path, &sa) < 0)
		return -EINVAL;
	for (;;) {
		fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		r = -errno;
		close(fd);
		/* the new process may not listen yet */
		if ((r != -ENOENT && r != -ECONNREFUSED) || waited >= timeout_ms)
			return r;
		usleep(10000);
		waited += 10;
	}
}

static int lu_listen_accept(const char *path, int timeout_ms)
{
	struct sockaddr_un sa;
	struct timeval tv = { timeout_ms / 1000, 0 };
	struct stat st;
	int l, fd;

	if (unix_addr(path, &sa) < 0)
		return -EINVAL;
	/* a stale socket is replaced, any other file never */
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
		return -EEXIST;
	l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -errno;
	unlink(path);
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(l, 1) < 0) {
		fd = -errno;
		close(l);
		return fd;
	}
	setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		fd = errno == EAGAIN ? -ETIMEDOUT : -errno;
	close(l);
	unlink(path);
	return fd;
}

static int build_app(struct cli_dev *d, struct workload *w, void **ret,
		     size_t *ret_len)
{
	struct lu_app h = { .magic = LU_MAGIC, .cls = d->net ? 1 : 2,
			    .traffic = w != NULL };
	void *drv = NULL, *wl = NULL;
	size_t dl = 0, wll = 0;
	uint8_t *p;
	int r;

	r = d->net ? vdpa_net_save(d->net, &drv, &dl) :
		     vdpa_blk_save(d->blk, &drv, &dl);
	if (!r && w)
		r = wl_save(w, &wl, &wll);
	p = r ? NULL : malloc(sizeof(h) + dl + wll);
	if (!r && !p)
		r = -ENOMEM;
	if (!r) {
		h.drv_len = dl;
		h.wl_len = wll;
		memcpy(p, &h, sizeof(h));
		memcpy(p + sizeof(h), drv, dl);
		if (wll)
			memcpy(p + sizeof(h) + dl, wl, wll);
		*ret = p;
		*ret_len = sizeof(h) + dl + wll;
	}
	free(drv);
	free(wl);
	return r;
}

static void print_handover(const struct vdpa_handover_info *i, bool done,
			   const struct wl_result *res, double secs)
{
	struct json j;

	if (!cli.json) {
		printf("live-update: path %s (%s), pause %.0f us\n",
		       vdpa_handover_path_name(i->path), i->reason,
		       i->pause_ns / 1e3);
		if (res)
			cli_print_result(NULL, res, secs);
		return;
	}
	json_init(&j, stdout, cli.pretty);
	json_obj_open(&j, NULL);
	json_str(&j, "path", vdpa_handover_path_name(i->path));
	json_str(&j, "reason", i->reason);
	json_dbl(&j, "pause_us", i->pause_ns / 1e3);
	json_u64(&j, "record_bytes", i->record_len);
	json_u64(&j, "fds", i->nfds);
	json_bool(&j, "handed_over", done);
	if (res)	/* lost, duplicated, ... */
		cli_print_result(&j, res, secs);
	json_obj_close(&j);
	json_end(&j);
}

/* The old process: drive, hand over, done. */
static int old_side(const struct lu_args *a)
{
	struct vdpa_handover_info info = { 0 };
	struct vdpa_mem *mem = NULL;
	struct cli_dev d = { 0 };
	struct workload w;
	bool have_wl = false;
	char err[512] = "", fdarg[32];
	void *app = NULL;
	size_t alen = 0;
	int rc, r, sv[2] = { -1, -1 }, sock = -1, st;
	pid_t pid = -1;

	rc = cli_dev_open(a->dev, &d);
	if (rc)
		return rc;
	r = vdpa_mem_create(CLI_MEM_SIZE, CLI_MEM_IOVA, &mem);
	if (r < 0) {
		rc = cli_fail_errno(r, "creating driver memory");
		goto out;
	}
	rc = cli_dev_start(&d, mem, 1);
	if (!rc)
		rc = cli_check_size("live-update", &d, a->size);
	if (rc)
		goto out;
	r = vdpa_handover_choose(d.dev, &info);
	if (r < 0) {	/* found out before anything stops */
		rc = cli_fail("live-update: %s: %s", a->dev, info.reason);
		goto out;
	}
	if (a->traffic) {
		uint64_t count = a->count ? a->count : (d.net ? 100000 : 10000);

		r = wl_init(&w, d.net, d.blk, count, (uint32_t)a->size, 1);
		if (r < 0) {
			rc = cli_fail_errno(r, "live-update: traffic");
			goto out;
		}
		have_wl = true;
		/* half here; what is in flight at the switch finishes there */
		while (w.next < count / 2 && !cli_interrupted &&
		       wl_step(&w) == 0)
			wl_wait(&w, 1);
	}
	if (a->exec) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
			       sv) < 0) {
			rc = cli_fail_errno(-errno, "live-update: socketpair");
			goto out;
		}
		fflush(NULL);
		pid = fork();
		if (pid == 0) {
			char *argv[8];
			int n = 0;

			/* the new process: this binary, the socket inherited */
			fcntl(sv[1], F_SETFD, 0);
			snprintf(fdarg, sizeof(fdarg), "fd:%d", sv[1]);
			argv[n++] = "vdpa-user";
			if (cli.json)
				argv[n++] = "-j";
			argv[n++] = "live-update";
			argv[n++] = "--from";
			argv[n++] = fdarg;
			argv[n] = NULL;
			execv("/proc/self/exe", argv);
			_exit(127);
		}
		close(sv[1]);
		sock = sv[0];
		if (pid < 0) {
			rc = cli_fail_errno(-errno, "live-update: fork");
			goto out;
		}
	} else {
		sock = lu_connect(a->to + 5, (int)a->timeout * 1000);
		if (sock < 0) {
			rc = cli_fail_errno(sock, "live-update: connecting to %s",
					    a->to);
			goto out;
		}
	}
	r = build_app(&d, have_wl ? &w : NULL, &app, &alen);
	if (!r)
		r = vdpa_handover_send(&d.dev, sock, &mem, 1, app, alen,
				       (int)a->timeout * 1000, &info, err,
				       sizeof(err));
	if (r < 0) {
		rc = cli_fail("live-update: %s: %s (%s path)", a->dev,
			      *err ? err : strerror(-r),
			      vdpa_handover_path_name(info.path));
		goto out;
	}
	if (!a->exec)
		print_handover(&info, true, NULL, 0);
out:
	if (have_wl)
		wl_free(&w);
	free(app);
	if (sock >= 0)
		close(sock);
	/* handed over: d.dev is NULL, the driver is only freed */
	cli_dev_close(&d);
	vdpa_mem_destroy(mem);
	if (pid > 0) {
		/* --exec: the new process carries on and reports */
		if (waitpid(pid, &st, 0) == pid && !rc)
			rc = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
	}
	return rc;
}

/* The driver's eventfds become the ones the device is bound to. */
static void adopt_fds(struct vdpa_handover_in *in, struct cli_dev *d,
		      int *kick, int *call)
{
	unsigned int i;
	int k, c;

	for (i = 0; i < VDPA_HANDOVER_MAX_VQS; i++) {
		struct vdpa_vq *vq = mig_driver_vq(d, i);

		kick[i] = call[i] = -1;
		if (!vq || vdpa_handover_in_vring_fds(in, i, &k, &c) < 0)
			continue;
		kick[i] = vdpa_vq_kick_fd(vq);
		call[i] = vdpa_vq_call_fd(vq);
		/* a VMM keeps its KVM ioeventfd/irqfd: the same objects */
		if (k >= 0)
			dup3(k, kick[i], O_CLOEXEC);
		if (c >= 0)
			dup3(c, call[i], O_CLOEXEC);
	}
}

/* The new process: adopt, continue, report. */
static int new_side(const struct lu_args *a)
{
	int kick[VDPA_HANDOVER_MAX_VQS], call[VDPA_HANDOVER_MAX_VQS];
	struct vdpa_handover_in *in = NULL;
	struct vdpa_handover_info info;
	struct wl_result res = { 0 };
	struct cli_dev d = { 0 };
	struct vdpa_mem *mem;
	struct workload w;
	struct lu_app h;
	const uint8_t *app;
	bool have_wl = false;
	char err[512] = "";
	size_t alen = 0;
	double t0;
	int sock, rc = 0, r;
	uint64_t v;

	if (!strncmp(a->from, "fd:", 3)) {
		if (cli_parse_u64(a->from + 3, 1u << 20, &v) ||
		    fcntl((int)v, F_GETFD) < 0)
			return cli_fail("live-update: %s is not an open "
					"descriptor", a->from);
		sock = (int)v;
		fcntl(sock, F_SETFD, FD_CLOEXEC);
	} else {
		sock = lu_listen_accept(a->from + 5, (int)a->timeout * 1000);
		if (sock < 0)
			return cli_fail_errno(sock, "live-update: waiting on %s",
					      a->from);
	}
	r = vdpa_handover_recv(sock, (int)a->timeout * 1000, &in, err,
			       sizeof(err));
	if (r < 0) {
		rc = cli_fail("live-update: receiving: %s", err);
		goto out;
	}
	app = vdpa_handover_in_app(in, &alen);
	if (alen < sizeof(h) || vdpa_handover_in_nmem(in) != 1) {
		vdpa_handover_refuse(in, "not a vdpa-user live-update record");
		rc = cli_fail("live-update: not a vdpa-user live-update record");
		goto out;
	}
	memcpy(&h, app, sizeof(h));
	mem = vdpa_handover_in_mem(in, 0);
	r = h.magic != LU_MAGIC || (h.cls != 1 && h.cls != 2) ||
	    h.drv_len > alen - sizeof(h) ||
	    h.wl_len != alen - sizeof(h) - h.drv_len ? -EBADMSG :
	    h.cls == 1 ? vdpa_net_restore(mem, app + sizeof(h), h.drv_len,
					  &d.net) :
	    vdpa_blk_restore(mem, app + sizeof(h), h.drv_len, &d.blk);
	if (!r && h.traffic) {
		r = wl_adopt(&w, d.net, d.blk, app + sizeof(h) + h.drv_len,
			     h.wl_len);
		have_wl = !r;
	}
	if (r < 0) {
		snprintf(err, sizeof(err), "the driver record: %s",
			 strerror(-r));
		vdpa_handover_refuse(in, err);
		rc = cli_fail("live-update: refused: %s", err);
		goto out;
	}
	adopt_fds(in, &d, kick, call);
	r = vdpa_handover_accept(in, kick, call, err, sizeof(err));
	if (r < 0) {
		rc = cli_fail("live-update: taking the device over: %s", err);
		goto out;
	}
	info = *vdpa_handover_in_info(in);
	d.dev = vdpa_handover_in_take_dev(in);
	mig_set_driver_dev(&d, d.dev);
	mem = vdpa_handover_in_take_mem(in, 0);
	t0 = cli_now();
	if (have_wl) {
		wl_kick_all(&w);
		r = cli_run_traffic(&w, 5000, "live-update");
		cli_traffic_result(&w, &res);
	}
	print_handover(&info, true, have_wl ? &res : NULL, cli_now() - t0);
	if (have_wl && (r < 0 || cli_result_bad(&res)))
		rc = cli_fail_result("live-update", &res);
	if (have_wl)
		wl_free(&w);
	cli_dev_close(&d);
	vdpa_mem_destroy(mem);
out:
	if (rc && have_wl && !d.dev)
		wl_free(&w);
	if (rc && !d.dev) {
		vdpa_net_close(d.net);
		vdpa_blk_close(d.blk);
	}
	vdpa_handover_in_free(in);
	close(sock);
	return rc;
}

int cmd_live_update(int argc, char **argv)
{
	struct lu_args a;
	int rc;

	cli_result_command();
	cli_catch_sigint();
	rc = parse(argc, argv, &a);
	if (rc)
		return rc;
	return a.from ? new_side(&a) : old_side(&a);
}
