// SPDX-License-Identifier: MIT
/*
 * A small vhost-user front-end of the tests' own (see vu-front.h): the
 * wire, the vdpa-sim + `vdpa-user serve` processes behind it, guest memory
 * and split rings. No TAP here: tap.h keeps its counters per test binary.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/vhost_types.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ring.h>

#include "testutil.h"
#include "vu-front.h"

const char *vu_dir;

/* ---- the wire -------------------------------------------------------- */

int send_msg(int s, uint32_t req, uint32_t flags, const void *p,
	     uint32_t size, const int *fds, int nfds)
{
	struct hdr h = { req, 1u | flags, size };
	union {
		char buf[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr a;
	} cm;
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)p, size } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
	ssize_t n;

	if (nfds) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	n = sendmsg(s, &mh, MSG_NOSIGNAL);
	return n == (ssize_t)(sizeof(h) + size) ? 0 : -EIO;
}

/*
 * A reply: 1 and its payload (up to len), 0 the back-end closed, -ETIMEDOUT.
 * *ret_fd gets an fd that came with it (or -1).
 */
int recv_reply(int s, uint32_t req, void *buf, uint32_t len,
	       uint32_t *ret_size, int *ret_fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr a;
	} cm;
	struct hdr h;
	struct iovec iov = { &h, sizeof(h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cm.buf,
			     .msg_controllen = sizeof(cm.buf) };
	struct pollfd p = { s, POLLIN, 0 };
	struct cmsghdr *c;
	uint8_t junk[4096];
	ssize_t n;

	if (ret_fd)
		*ret_fd = -1;
	if (poll(&p, 1, 5000) != 1)
		return -ETIMEDOUT;
	n = recvmsg(s, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC);
	if (n <= 0)
		return 0;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		int fd;

		memcpy(&fd, CMSG_DATA(c), sizeof(fd));
		if (ret_fd)
			*ret_fd = fd;
		else
			close(fd);
	}
	if (n != sizeof(h) || h.req != req || !(h.flags & 4) ||
	    h.size > sizeof(junk))
		return -EPROTO;
	if (h.size && recv(s, junk, h.size, MSG_WAITALL) != (ssize_t)h.size)
		return 0;
	memcpy(buf, junk, h.size < len ? h.size : len);
	if (ret_size)
		*ret_size = h.size;
	return 1;
}

/* A request with REPLY_ACK: the ack (0 ok), or -1 when the back-end closed. */
long long ack_call(int s, uint32_t req, const void *p, uint32_t size,
		   const int *fds, int nfds)
{
	uint64_t v = ~0ULL;

	if (send_msg(s, req, NEED_REPLY, p, size, fds, nfds) < 0)
		return -1;
	if (recv_reply(s, req, &v, sizeof(v), NULL, NULL) != 1)
		return -1;
	return (long long)v;
}

int get_u64(int s, uint32_t req, uint64_t *v)
{
	if (send_msg(s, req, 0, NULL, 0, NULL, 0) < 0)
		return -EIO;
	return recv_reply(s, req, v, sizeof(*v), NULL, NULL) == 1 ? 0 : -EIO;
}

long long set_u64(int s, uint32_t req, uint64_t v)
{
	return ack_call(s, req, &v, sizeof(v), NULL, 0);
}

long long vring_state(int s, uint32_t req, uint32_t idx, uint32_t num)
{
	struct vhost_vring_state st = { idx, num };

	return ack_call(s, req, &st, sizeof(st), NULL, 0);
}

/* A request answered by a u64 (no REPLY_ACK): it, or -1. */
long long req_u64(int s, uint32_t req)
{
	uint64_t v = ~0ULL;

	return get_u64(s, req, &v) < 0 ? -1 : (long long)v;
}

/* ---- processes ------------------------------------------------------- */

static pid_t spawn(const char *const *argv, const char *log)
{
	int pfd[2];
	pid_t pid;
	char c;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			       0600);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pfd[1], 3);
		if (lfd >= 0)
			dup2(lfd, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	if (read(pfd[0], &c, 1) != 1) {
		close(pfd[0]);
		waitpid(pid, NULL, 0);
		return -ECHILD;
	}
	/* to EOF: the child has closed its end too (fd counts settle) */
	while (read(pfd[0], &c, 1) > 0)
		;
	close(pfd[0]);
	return pid;
}

/* SIGTERM and reap: the exit status (-1 killed by a signal). */
static int stop(pid_t pid)
{
	int st = 0;

	if (pid <= 0)
		return -1;
	kill(pid, SIGTERM);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

const char *vu_setup(char *dir, size_t len, struct guest *g)
{
	char prog[PATH_MAX + 16];

	snprintf(prog, sizeof(prog), "%s/vdpa-user", tu_build_dir());
	if (access(prog, X_OK))
		return "vdpa-user not built";
	snprintf(prog, sizeof(prog), "%s/vdpa-sim", tu_build_dir());
	if (access(prog, X_OK))
		return "vdpa-sim not built";
	if (tu_mkdtemp(dir, len) < 0 || guest_init(g) < 0)
		return "no temporary directory or memfd";
	vu_dir = dir;
	return NULL;
}

int backend_start_on(struct backend *b, const char *name,
		     const char *const *sim_args, const char *kdev)
{
	char prog[PATH_MAX + 16], user[PATH_MAX + 16], dev[PATH_MAX + 32];
	const char *argv[24];
	int i = 0, n;

	memset(b, 0, sizeof(*b));
	if (!vu_dir)
		return -EINVAL;
	snprintf(b->sim_sock, sizeof(b->sim_sock), "%s/%s.sim", vu_dir, name);
	snprintf(b->vu_sock, sizeof(b->vu_sock), "%s/%s.vu", vu_dir, name);
	snprintf(b->log, sizeof(b->log), "%s/%s.log", vu_dir, name);
	snprintf(b->stats, sizeof(b->stats), "%s/%s.stats", vu_dir, name);
	snprintf(prog, sizeof(prog), "%s/vdpa-sim", tu_build_dir());
	snprintf(user, sizeof(user), "%s/vdpa-user", tu_build_dir());
	argv[i++] = prog;
	argv[i++] = "--socket";
	argv[i++] = b->sim_sock;
	argv[i++] = "--ready-fd";
	argv[i++] = "3";
	for (n = 0; sim_args && sim_args[n]; n++)
		argv[i++] = sim_args[n];
	argv[i] = NULL;
	if (kdev) {
		snprintf(dev, sizeof(dev), "%s", kdev);
	} else {
		b->sim = spawn(argv, b->log);
		if (b->sim < 0)
			return (int)b->sim;
		snprintf(dev, sizeof(dev), "sim:%s", b->sim_sock);
	}
	i = 0;
	/* SERVE_VALGRIND=1: the back-end under valgrind's leak checker */
	if (getenv("SERVE_VALGRIND")) {
		argv[i++] = "/usr/bin/valgrind";
		argv[i++] = "-q";
		argv[i++] = "--leak-check=full";
		argv[i++] = "--errors-for-leak-kinds=definite,indirect";
		argv[i++] = "--error-exitcode=99";
	}
	argv[i++] = user;
	argv[i++] = "serve";
	argv[i++] = dev;
	argv[i++] = "--socket";
	argv[i++] = b->vu_sock;
	argv[i++] = "--ready-fd";
	argv[i++] = "3";
	argv[i++] = "--log-level";
	argv[i++] = "info";
	argv[i++] = "--stats";
	argv[i++] = b->stats;
	argv[i] = NULL;
	b->serve = spawn(argv, b->log);
	if (b->serve < 0) {
		stop(b->sim);
		return (int)b->serve;
	}
	return 0;
}

int backend_start(struct backend *b, const char *name,
		  const char *const *sim_args)
{
	return backend_start_on(b, name, sim_args, NULL);
}

int backend_end(struct backend *b)
{
	int st = stop(b->serve);

	stop(b->sim);
	b->serve = b->sim = 0;
	return st;
}

long long stats_get(const struct backend *b, const char *key)
{
	char buf[4096], pat[128], *p, *end;
	long long v;
	ssize_t n;
	int fd = open(b->stats, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	p = strstr(buf, pat);
	if (!p)
		return -1;
	v = strtoll(p + strlen(pat), &end, 10);
	return end == p + strlen(pat) ? -1 : v;
}

int fe_connect(const struct backend *b)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (strlen(b->vu_sock) >= sizeof(sa.sun_path)) {
		if (s >= 0)
			close(s);
		return -1;
	}
	memcpy(sa.sun_path, b->vu_sock, strlen(b->vu_sock) + 1);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (s >= 0)
			close(s);
		return -1;
	}
	return s;
}

/* Open fds of a process, from /proc (the test is skipped without it). */
int count_fds(pid_t pid)
{
	char p[64];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
	d = opendir(p);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The back-end's fd count once it has settled at want (2 s at most). */
int settled_fds(pid_t pid, int want)
{
	int i, n = -1;

	for (i = 0; i < 200; i++) {
		n = count_fds(pid);
		if (n == want)
			return n;
		usleep(10000);
	}
	return n;
}

/* The back-end's log, up to 4 MiB, as a string to free; NULL on error. */
char *log_text(const struct backend *b)
{
	size_t cap = 4u << 20, len = 0;
	char *buf = malloc(cap + 1);
	ssize_t n = 1;
	int fd = open(b->log, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || !buf) {
		if (fd >= 0)
			close(fd);
		free(buf);
		return NULL;
	}
	while (len < cap && (n = read(fd, buf + len, cap - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	return buf;
}

bool log_has(const struct backend *b, const char *what)
{
	char *text = log_text(b);
	bool r = text && strstr(text, what);

	free(text);
	return r;
}

/* ---- guest memory and rings ----------------------------------------- */

int guest_init(struct guest *g)
{
	g->memfd = memfd_create("guest", MFD_CLOEXEC);
	if (g->memfd < 0 || ftruncate(g->memfd, MEM_SIZE) < 0)
		return -errno;
	g->base = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		       g->memfd, 0);
	if (g->base == MAP_FAILED)
		return -errno;
	g->used = 0;
	return 0;
}

void guest_fini(struct guest *g)
{
	munmap(g->base, MEM_SIZE);
	close(g->memfd);
}

void *galloc(struct guest *g, size_t size, size_t align)
{
	size_t off = (g->used + align - 1) & ~(align - 1);

	g->used = off + size;
	return g->base + off;
}

uint64_t gpa(const struct guest *g, const void *p)
{
	return MEM_GPA + (uint64_t)((const uint8_t *)p - g->base);
}

uint64_t va(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

int ring_init(struct guest *g, struct ring *r)
{
	memset(r, 0, sizeof(*r));
	r->desc = galloc(g, 16 * QSZ, 4096);
	r->avail = galloc(g, 6 + 2 * QSZ, 4096);
	r->used = galloc(g, 6 + 8 * QSZ, 4096);
	r->bufs = galloc(g, (size_t)QSZ * BUF_SIZE * 2, 4096);
	r->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return r->kick < 0 || r->call < 0 ? -errno : 0;
}

void ring_fini(struct ring *r)
{
	close(r->kick);
	close(r->call);
}

void ring_kick(struct ring *r)
{
	uint64_t one = 1;

	if (write(r->kick, &one, sizeof(one)) != sizeof(one))
		abort();
}

/* Next completion: 1 with head and len, 0 none within ms. */
int ring_used(struct ring *r, int ms, uint16_t *head, uint32_t *len)
{
	int i;

	for (i = 0; i <= ms; i++) {
		if (__atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE) !=
		    r->last_used) {
			struct vring_used_elem *e =
				&r->used->ring[r->last_used % QSZ];

			*head = (uint16_t)e->id;
			*len = e->len;
			r->last_used++;
			return 1;
		}
		if (ms)
			usleep(1000);
	}
	return 0;
}

/* ---- front-end ------------------------------------------------------- */

int fe_negotiate(struct fe *f, uint64_t want_proto)
{
	uint64_t feat, proto;

	if (get_u64(f->s, GET_FEATURES, &feat) < 0 ||
	    !(feat & F_PROTOCOL))
		return -EPROTO;
	if (get_u64(f->s, GET_PROTOCOL_FEATURES, &proto) < 0)
		return -EPROTO;
	f->proto = proto & want_proto;
	if (send_msg(f->s, SET_PROTOCOL_FEATURES, 0, &f->proto, 8, NULL, 0))
		return -EIO;
	if (ack_call(f->s, SET_OWNER, NULL, 0, NULL, 0) != 0)
		return -EPROTO;
	/* everything offered but the log */
	f->features = feat & ~F_LOG_ALL;
	return 0;
}

long long fe_mem_table(struct fe *f)
{
	struct {
		uint32_t n, pad;
		struct region r[2];
	} m = { 1, 0, { { MEM_GPA, MEM_SIZE, va(f->g->base), 0 } } };
	int fds[2] = { f->g->memfd, f->g->memfd };

	/* the second region starts at mmap_offset split of the same fd */
	if (f->split) {
		m.n = 2;
		m.r[0].size = f->split;
		m.r[1] = (struct region){ MEM_GPA + f->split,
					  MEM_SIZE - f->split,
					  va(f->g->base + f->split), f->split };
	}
	return ack_call(f->s, SET_MEM_TABLE, &m,
			8 + m.n * (uint32_t)sizeof(struct region), fds,
			(int)m.n);
}

long long vring_fd(int s, uint32_t req, uint32_t idx, int fd)
{
	uint64_t v = idx;

	return ack_call(s, req, &v, 8, &fd, 1);
}

long long vring_addr(int s, uint32_t idx, struct ring *r)
{
	struct vhost_vring_addr a = {
		.index = idx, .desc_user_addr = va(r->desc),
		.used_user_addr = va(r->used), .avail_user_addr = va(r->avail),
	};

	return ack_call(s, SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

/* Features, memory, rings at their bases, enabled: the device starts. */
int fe_start(struct fe *f, const uint16_t *bases)
{
	unsigned int i;

	if (set_u64(f->s, SET_FEATURES, f->features) != 0 ||
	    fe_mem_table(f) != 0)
		return -EPROTO;
	for (i = 0; i < f->nrings; i++) {
		struct ring *r = &f->r[i];

		if (vring_state(f->s, SET_VRING_NUM, i, QSZ) != 0 ||
		    vring_state(f->s, SET_VRING_BASE, i,
				bases ? bases[i] : 0) != 0 ||
		    vring_addr(f->s, i, r) != 0 ||
		    vring_fd(f->s, SET_VRING_KICK, i, r->kick) != 0 ||
		    vring_fd(f->s, SET_VRING_CALL, i, r->call) != 0)
			return -EPROTO;
	}
	for (i = 0; i < f->nrings; i++)
		if (vring_state(f->s, SET_VRING_ENABLE, i, 1) != 0)
			return -EPROTO;
	return 0;
}

int get_vring_base(int s, uint32_t idx, uint16_t *base)
{
	struct vhost_vring_state st = { idx, 0 };

	if (send_msg(s, GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0) ||
	    recv_reply(s, GET_VRING_BASE, &st, sizeof(st), NULL, NULL) != 1 ||
	    st.index != idx)
		return -EIO;
	*base = (uint16_t)st.num;
	return 0;
}

/* ---- device state (42/43) ------------------------------------------- */

/* 42 SAVE of phase into a pipe, read to EOF. The blob in *ret. */
int save_state_phase(int s, uint32_t phase, void **ret, size_t *ret_len,
		     uint64_t *reply)
{
	struct { uint32_t dir, phase; } p = { 0, phase };
	uint8_t *buf = NULL;
	size_t len = 0;
	int pfd[2], rfd;
	uint64_t v = ~0ULL;
	ssize_t n;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	if (send_msg(s, SET_DEVICE_STATE_FD, 0, &p, sizeof(p), &pfd[1], 1) ||
	    recv_reply(s, SET_DEVICE_STATE_FD, &v, 8, NULL, &rfd) != 1) {
		close(pfd[0]);
		close(pfd[1]);
		return -EIO;
	}
	close(pfd[1]);
	*reply = v;
	if (rfd >= 0)
		close(rfd);
	for (;;) {
		buf = realloc(buf, len + 65536);
		n = read(pfd[0], buf + len, 65536);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(pfd[0]);
	*ret = buf;
	*ret_len = len;
	return 0;
}

int save_state(int s, void **ret, size_t *ret_len, uint64_t *reply)
{
	return save_state_phase(s, 0, ret, ret_len, reply);
}

long long check_state(int s)
{
	return req_u64(s, CHECK_DEVICE_STATE);
}

/* 42 LOAD of phase: write blob into the pipe, close, 43. The CHECK answer. */
long long load_state_phase(int s, uint32_t phase, const void *blob,
			   size_t len, uint64_t *reply)
{
	struct { uint32_t dir, phase; } p = { 1, phase };
	int pfd[2], rfd;
	uint64_t v = ~0ULL;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	fcntl(pfd[1], F_SETPIPE_SZ, 1 << 20);
	if (send_msg(s, SET_DEVICE_STATE_FD, 0, &p, sizeof(p), &pfd[0], 1) ||
	    recv_reply(s, SET_DEVICE_STATE_FD, &v, 8, NULL, &rfd) != 1) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	close(pfd[0]);
	if (rfd >= 0)
		close(rfd);
	*reply = v;
	if (write(pfd[1], blob, len) != (ssize_t)len) {
		close(pfd[1]);
		return -1;
	}
	close(pfd[1]);
	return check_state(s);
}

long long load_state(int s, const void *blob, size_t len, uint64_t *reply)
{
	return load_state_phase(s, 0, blob, len, reply);
}

/* ---- blk ------------------------------------------------------------- */

void stamp(uint8_t *b, uint64_t sector)
{
	unsigned int i;

	for (i = 0; i < 512; i++)
		b[i] = (uint8_t)(sector * 7 + i);
	memcpy(b, &sector, 8);
}

/* One request through ring 0 and its completion: the status byte. */
int blk_io(struct fe *f, uint32_t type, uint64_t sector, uint8_t *data)
{
	struct ring *r = &f->r[0];
	uint16_t slot = r->avail_idx % QSZ, head;
	struct vring_desc *d = &r->desc[(slot % 64) * 3];
	uint8_t *b = r->bufs + (size_t)(slot % (QSZ / 2)) * BUF_SIZE * 2;
	struct virtio_blk_outhdr *h = (void *)b;
	uint8_t *payload = b + 64, *status = b + 1024;
	uint16_t di = (uint16_t)((slot % 64) * 3);
	uint32_t len;

	h->type = type;
	h->ioprio = 0;
	h->sector = sector;
	*status = 0xff;
	if (type == VIRTIO_BLK_T_OUT)
		memcpy(payload, data, 512);
	d[0] = (struct vring_desc){ gpa(f->g, h), sizeof(*h),
				    VRING_DESC_F_NEXT, (uint16_t)(di + 1) };
	d[1] = (struct vring_desc){ gpa(f->g, payload), 512,
				    VRING_DESC_F_NEXT |
				    (type == VIRTIO_BLK_T_IN ?
				     VRING_DESC_F_WRITE : 0),
				    (uint16_t)(di + 2) };
	d[2] = (struct vring_desc){ gpa(f->g, status), 1,
				    VRING_DESC_F_WRITE, 0 };
	r->avail->ring[r->avail_idx % QSZ] = di;
	r->avail_idx++;
	__atomic_store_n(&r->avail->idx, r->avail_idx, __ATOMIC_RELEASE);
	ring_kick(r);
	if (ring_used(r, 2000, &head, &len) != 1 || head != di)
		return -1;
	if (type == VIRTIO_BLK_T_IN)
		memcpy(data, payload, 512);
	return *status;
}
