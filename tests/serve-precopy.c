// SPDX-License-Identifier: MIT
/*
 * `vdpa-user serve` pre-copy (PROPOSAL, docs/vhost-user.md "Pre-copy"):
 * real vdpa-sim (blk, write-back cache) and serve processes, a front-end
 * of the test's own speaking vhost-user over the socket. Rounds under
 * continuing writes, the pending estimate, the final phase-0 state
 * carrying only the rest, loaded into a second serve+sim, every block
 * read back; the feature only where the device has it and only for a
 * front-end that acked it; rounds out of order and repeated refused.
 */
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
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/vhost_types.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "tap.h"
#include "testutil.h"

/* ---- the wire -------------------------------------------------------- */

enum {
	GET_FEATURES = 1, SET_FEATURES = 2, SET_OWNER = 3, RESET_OWNER = 4,
	SET_MEM_TABLE = 5, SET_LOG_BASE = 6, SET_VRING_NUM = 8,
	SET_VRING_ADDR = 9, SET_VRING_BASE = 10, GET_VRING_BASE = 11,
	SET_VRING_KICK = 12, SET_VRING_CALL = 13, GET_PROTOCOL_FEATURES = 15,
	SET_PROTOCOL_FEATURES = 16, GET_QUEUE_NUM = 17, SET_VRING_ENABLE = 18,
	SEND_RARP = 19, GET_CONFIG = 24, SET_DEVICE_STATE_FD = 42,
	CHECK_DEVICE_STATE = 43,
};
#define F_PROTOCOL	(1ULL << 30)
#define F_LOG_ALL	(1ULL << 26)
#define PF_MQ		(1ULL << 0)
#define PF_LOG_SHMFD	(1ULL << 1)
#define PF_REPLY_ACK	(1ULL << 3)
#define PF_CONFIG	(1ULL << 9)
#define PF_DEVICE_STATE	(1ULL << 19)
#define NEED_REPLY	(1u << 3)

struct hdr {
	uint32_t req, flags, size;
} __attribute__((packed));

struct region {
	uint64_t gpa, size, uaddr, off;
};

static int send_msg(int s, uint32_t req, uint32_t flags, const void *p,
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
static int recv_reply(int s, uint32_t req, void *buf, uint32_t len,
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
static long long ack_call(int s, uint32_t req, const void *p, uint32_t size,
			  const int *fds, int nfds)
{
	uint64_t v = ~0ULL;

	if (send_msg(s, req, NEED_REPLY, p, size, fds, nfds) < 0)
		return -1;
	if (recv_reply(s, req, &v, sizeof(v), NULL, NULL) != 1)
		return -1;
	return (long long)v;
}

static int get_u64(int s, uint32_t req, uint64_t *v)
{
	if (send_msg(s, req, 0, NULL, 0, NULL, 0) < 0)
		return -EIO;
	return recv_reply(s, req, v, sizeof(*v), NULL, NULL) == 1 ? 0 : -EIO;
}

static long long set_u64(int s, uint32_t req, uint64_t v)
{
	return ack_call(s, req, &v, sizeof(v), NULL, 0);
}

static long long vring_state(int s, uint32_t req, uint32_t idx, uint32_t num)
{
	struct vhost_vring_state st = { idx, num };

	return ack_call(s, req, &st, sizeof(st), NULL, 0);
}


/* ---- processes ------------------------------------------------------- */

static char tdir[PATH_MAX];
/* the phase of the next 42 (0 stopped, PHASE_PRECOPY a round) */
static uint32_t cur_phase;

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

struct backend {
	pid_t sim, serve;
	char sim_sock[PATH_MAX + 16], vu_sock[PATH_MAX + 16];
	char log[PATH_MAX + 16];
};

/* serve in front of kdev (a kernel device), or of a vdpa-sim of sim_args */
static int backend_start_on(struct backend *b, const char *name,
			    const char *const *sim_args, const char *kdev)
{
	char prog[PATH_MAX + 16], user[PATH_MAX + 16], dev[PATH_MAX + 32];
	const char *argv[24];
	int i = 0, n;

	memset(b, 0, sizeof(*b));
	snprintf(b->sim_sock, sizeof(b->sim_sock), "%s/%s.sim", tdir, name);
	snprintf(b->vu_sock, sizeof(b->vu_sock), "%s/%s.vu", tdir, name);
	snprintf(b->log, sizeof(b->log), "%s/%s.log", tdir, name);
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
	argv[i] = NULL;
	b->serve = spawn(argv, b->log);
	if (b->serve < 0) {
		stop(b->sim);
		return (int)b->serve;
	}
	return 0;
}

static int backend_start(struct backend *b, const char *name,
			 const char *const *sim_args)
{
	return backend_start_on(b, name, sim_args, NULL);
}

static void backend_stop(struct backend *b)
{
	int st = stop(b->serve);

	/* 99: valgrind found an error or a leak (SERVE_VALGRIND) */
	tap_is(st, 0, "%s: serve exited cleanly on SIGTERM", b->log);
	stop(b->sim);
	b->serve = b->sim = 0;
}

static int fe_connect(const struct backend *b)
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
static int count_fds(pid_t pid)
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


static bool log_has(const struct backend *b, const char *what)
{
	size_t cap = 4u << 20, len = 0;
	char *buf = malloc(cap + 1);
	ssize_t n = 1;
	bool r;
	int fd = open(b->log, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || !buf) {
		if (fd >= 0)
			close(fd);
		free(buf);
		return false;
	}
	while (len < cap && (n = read(fd, buf + len, cap - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	r = strstr(buf, what) != NULL;
	free(buf);
	return r;
}

/* ---- guest memory and rings ----------------------------------------- */

#define MEM_SIZE	(32u << 20)
#define MEM_GPA		0x100000ULL	/* guest physical base */
#define QSZ		256u
#define BUF_SIZE	2048u

struct guest {
	int memfd;
	uint8_t *base;		/* this process's mapping: the "VA" sent */
	size_t used;
};

static int guest_init(struct guest *g)
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

static void guest_fini(struct guest *g)
{
	munmap(g->base, MEM_SIZE);
	close(g->memfd);
}

static void *galloc(struct guest *g, size_t size, size_t align)
{
	size_t off = (g->used + align - 1) & ~(align - 1);

	g->used = off + size;
	return g->base + off;
}

static uint64_t gpa(const struct guest *g, const void *p)
{
	return MEM_GPA + (uint64_t)((const uint8_t *)p - g->base);
}

static uint64_t va(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

struct ring {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint8_t *bufs;		/* QSZ buffers of BUF_SIZE */
	uint16_t avail_idx, last_used;
	int kick, call;
};

static int ring_init(struct guest *g, struct ring *r)
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



static void ring_fini(struct ring *r)
{
	close(r->kick);
	close(r->call);
}


static void ring_kick(struct ring *r)
{
	uint64_t one = 1;

	if (write(r->kick, &one, sizeof(one)) != sizeof(one))
		abort();
}

/* Next completion: 1 with head and len, 0 none within ms. */
static int ring_used(struct ring *r, int ms, uint16_t *head, uint32_t *len)
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

struct fe {
	int s;
	struct guest *g;
	struct ring r[2];
	unsigned int nrings;
	uint64_t features, proto;
};

static int fe_negotiate(struct fe *f, uint64_t want_proto)
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

static long long fe_mem_table(struct fe *f)
{
	struct {
		uint32_t n, pad;
		struct region r;
	} m = { 1, 0, { MEM_GPA, MEM_SIZE, va(f->g->base), 0 } };

	return ack_call(f->s, SET_MEM_TABLE, &m, sizeof(m), &f->g->memfd, 1);
}

static long long vring_fd(int s, uint32_t req, uint32_t idx, int fd)
{
	uint64_t v = idx;

	return ack_call(s, req, &v, 8, &fd, 1);
}

static long long vring_addr(int s, uint32_t idx, struct ring *r)
{
	struct vhost_vring_addr a = {
		.index = idx, .desc_user_addr = va(r->desc),
		.used_user_addr = va(r->used), .avail_user_addr = va(r->avail),
	};

	return ack_call(s, SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

/* Features, memory, rings at their bases, enabled: the device starts. */
static int fe_start(struct fe *f, const uint16_t *bases)
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

static int get_vring_base(int s, uint32_t idx, uint16_t *base)
{
	struct vhost_vring_state st = { idx, 0 };

	if (send_msg(s, GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0) ||
	    recv_reply(s, GET_VRING_BASE, &st, sizeof(st), NULL, NULL) != 1 ||
	    st.index != idx)
		return -EIO;
	*base = (uint16_t)st.num;
	return 0;
}

/* ---- net traffic ------------------------------------------------------ */

static int save_state(int s, void **ret, size_t *ret_len, uint64_t *reply)
{
	struct { uint32_t dir, phase; } p = { 0, cur_phase };
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

static long long check_state(int s)
{
	uint64_t v = ~0ULL;

	if (send_msg(s, CHECK_DEVICE_STATE, 0, NULL, 0, NULL, 0) ||
	    recv_reply(s, CHECK_DEVICE_STATE, &v, 8, NULL, NULL) != 1)
		return -1;
	return (long long)v;
}

/* 42 LOAD: write blob into the pipe, close, 43. The CHECK answer. */
static long long load_state(int s, const void *blob, size_t len,
			    uint64_t *reply)
{
	struct { uint32_t dir, phase; } p = { 1, cur_phase };
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
static void stamp(uint8_t *b, uint64_t sector)
{
	unsigned int i;

	for (i = 0; i < 512; i++)
		b[i] = (uint8_t)(sector * 7 + i);
	memcpy(b, &sector, 8);
}

/* One request through ring 0 and its completion: the status byte. */
static int blk_io(struct fe *f, uint32_t type, uint64_t sector,
		  uint8_t *data)
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

/* ---- pre-copy ---------------------------------------------------------- */

#define PF_PRECOPY	(1ULL << 49)
#define PHASE_PRECOPY	0x80000001u
#define GET_PRECOPY_INFO	0x80000030u
#define PRECOPY_END		0x80000031u
#define ENTRY		520u	/* vdpa-sim: u64 sector + 512 bytes */
#define ALL_PROTO (PF_MQ | PF_REPLY_ACK | PF_CONFIG | PF_DEVICE_STATE)

struct pc_info {
	uint64_t initial, dirty;
	uint32_t rounds, flags;
};

static struct guest G;

static void fe_close(struct fe *f, bool rings)
{
	if (f->s >= 0)
		close(f->s);
	f->s = -1;
	if (rings)
		ring_fini(&f->r[0]);
}

/* GET_PRECOPY_INFO: 24 (the struct) or 8 (a u64 errno) reply bytes. */
static uint32_t pc_info(int s, struct pc_info *pi, uint64_t *err)
{
	uint8_t buf[64];
	uint32_t size = 0;

	memset(pi, 0, sizeof(*pi));
	*err = ~0ULL;
	if (send_msg(s, GET_PRECOPY_INFO, 0, NULL, 0, NULL, 0) ||
	    recv_reply(s, GET_PRECOPY_INFO, buf, sizeof(buf), &size,
		       NULL) != 1)
		return 0;
	if (size == sizeof(*pi))
		memcpy(pi, buf, sizeof(*pi));
	else if (size == 8)
		memcpy(err, buf, 8);
	return size;
}

static int fe_open1(struct fe *f, const struct backend *b, uint64_t proto,
		    bool rings)
{
	memset(f, 0, sizeof(*f));
	f->g = &G;
	f->nrings = 1;
	f->s = fe_connect(b);
	if (f->s < 0 || (rings && ring_init(&G, &f->r[0]) < 0))
		return -1;
	return fe_negotiate(f, proto);
}

static int write_blocks(struct fe *f, uint64_t first, int n, int gen)
{
	uint8_t buf[512];
	int i, bad = 0;

	for (i = 0; i < n; i++) {
		stamp(buf, first + (uint64_t)i);
		buf[8] = (uint8_t)gen;
		if (blk_io(f, VIRTIO_BLK_T_OUT, first + (uint64_t)i, buf) != 0)
			bad++;
	}
	return bad;
}

/* the generation each sector must read back with (0: never written) */
static uint8_t gen_of[512];

static void test_net(void)
{
	static const char *const args[] = { "--type", "net", NULL };
	struct backend n;
	struct fe f;
	uint64_t v = 0, err;
	struct pc_info pi;
	void *blob = NULL;
	size_t len = 0;
	bool ok;

	if (backend_start(&n, "net", args) < 0) {
		tap_ok(0, "net: sim and serve started");
		return;
	}
	tap_ok(fe_open1(&f, &n, ALL_PROTO | PF_PRECOPY, true) == 0,
	       "net: front-end negotiated");
	tap_ok(!(f.proto & PF_PRECOPY), "net: DEVICE_STATE_PRECOPY not "
	       "offered by a net device (proto 0x%llx)",
	       (unsigned long long)f.proto);
	tap_is(set_u64(f.s, SET_PROTOCOL_FEATURES, f.proto | PF_PRECOPY) != 0,
	       1, "net: acking bit 49 anyway is refused");
	cur_phase = PHASE_PRECOPY;
	ok = save_state(f.s, &blob, &len, &v) == 0 &&
	     (v & 0xff) == EOPNOTSUPP && len == 0;
	tap_ok(ok, "net: 42 PRECOPY answered EOPNOTSUPP (reply 0x%llx), "
	       "nothing written", (unsigned long long)v);
	cur_phase = 0;
	free(blob);
	tap_is(pc_info(f.s, &pi, &err), 8, "net: GET_PRECOPY_INFO answered "
	       "with a u64 error");
	tap_is((long long)err, EOPNOTSUPP, "net: ... EOPNOTSUPP");
	tap_ok(log_has(&n, "did not negotiate DEVICE_STATE_PRECOPY"),
	       "net: the log says why");
	fe_close(&f, true);
	backend_stop(&n);
}

/* 42 SAVE PRECOPY + read to EOF + 43; the CHECK answer (0 ok). */
static long long round_save(int s, void **blob, size_t *len)
{
	uint64_t v = ~0ULL;

	cur_phase = PHASE_PRECOPY;
	if (save_state(s, blob, len, &v) < 0 || (v & 0xff)) {
		cur_phase = 0;
		return -1;
	}
	cur_phase = 0;
	return check_state(s);
}

static long long round_load(int s, const void *blob, size_t len)
{
	uint64_t v = ~0ULL;
	long long r;

	cur_phase = PHASE_PRECOPY;
	r = load_state(s, blob, len, &v);
	cur_phase = 0;
	return (v & 0xff) ? (long long)(v & 0xff) : r;
}

static void test_blk(void)
{
	char backing[PATH_MAX + 16];
	const char *args[] = { "--type", "blk", "--cache", "writeback",
			       "--backing", backing, "--verbose", NULL };
	struct backend a, b;
	struct fe f, d;
	struct ring keep;
	struct pc_info pi;
	uint64_t err, v;
	void *r0 = NULL, *r1 = NULL, *r2 = NULL, *fin = NULL, *tmp = NULL;
	size_t l0 = 0, l1 = 0, l2 = 0, lf = 0, lt = 0;
	uint16_t base = 0;
	int fd, i, bad, fds0, fds1, n, ondisk;
	bool up;
	uint32_t sz;
	long long c;
	uint8_t buf[512], want[512];

	snprintf(backing, sizeof(backing), "%s/disk.img", tdir);
	fd = open(backing, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 16 << 20) < 0) {
		tap_ok(0, "blk: backing file");
		return;
	}
	close(fd);
	if (backend_start(&a, "src", args) < 0 ||
	    backend_start(&b, "dst", args) < 0) {
		tap_ok(0, "blk: two write-back sims and serves started");
		return;
	}
	/* a front-end that does not ack the feature */
	tap_ok(fe_open1(&f, &a, ALL_PROTO, true) == 0 && fe_start(&f, NULL) ==
	       0, "blk: a front-end without DEVICE_STATE_PRECOPY started");
	tap_is(write_blocks(&f, 0, 8, 1), 0, "blk: 8 blocks written");
	tap_ok(round_save(f.s, &tmp, &lt) != 0 && lt == 0, "blk: 42 PRECOPY "
	       "without the ack refused, nothing written");
	free(tmp);
	tmp = NULL;
	tap_is(pc_info(f.s, &pi, &err), 8, "blk: GET_PRECOPY_INFO without the "
	       "ack: an 8-byte error reply");
	tap_is((long long)err, EOPNOTSUPP, "blk: ... EOPNOTSUPP");
	keep = f.r[0];
	fe_close(&f, false);

	/* the source: feature acked, rounds under continuing writes */
	tap_ok(fe_open1(&f, &a, ALL_PROTO | PF_PRECOPY, false) == 0,
	       "blk: front-end connected again");
	f.r[0] = keep;
	tap_ok(!!(f.proto & PF_PRECOPY), "blk: DEVICE_STATE_PRECOPY offered "
	       "and acked (proto 0x%llx)", (unsigned long long)f.proto);
	memset(f.r[0].avail, 0, 6 + 2 * QSZ);
	memset(f.r[0].used, 0, 6 + 8 * QSZ);
	f.r[0].avail_idx = f.r[0].last_used = 0;
	tap_ok(fe_start(&f, NULL) == 0, "blk: source started");
	tap_is(write_blocks(&f, 100, 64, 1), 0, "blk: 64 blocks written");
	for (i = 0; i < 64; i++)
		gen_of[100 + i] = 1;
	fds0 = count_fds(a.serve);
	tap_is(pc_info(f.s, &pi, &err), 24, "blk: GET_PRECOPY_INFO: 24 bytes");
	tap_ok(pi.initial == 64 * ENTRY && pi.dirty == 0 && pi.rounds == 0,
	       "blk: before round 0 all 64 entries pending (%llu + %llu)",
	       (unsigned long long)pi.initial, (unsigned long long)pi.dirty);
	tap_is(round_save(f.s, &r0, &l0), 0, "blk: round 0 saved and checked "
	       "(%zu bytes)", l0);
	tap_ok(l0 > 64 * ENTRY, "blk: round 0 carries all 64 entries");
	tap_ok(pc_info(f.s, &pi, &err) == 24 && pi.initial == 0 &&
	       pi.dirty == 0 && pi.rounds == 1 && pi.flags == 1,
	       "blk: after round 0 nothing pending, 1 round");
	/* the guest keeps writing: 8 rewritten, 8 new */
	tap_is(write_blocks(&f, 156, 16, 2), 0, "blk: 16 more writes");
	for (i = 0; i < 16; i++)
		gen_of[156 + i] = 2;
	sz = pc_info(f.s, &pi, &err);
	tap_ok(sz == 24 && pi.initial == 8 * ENTRY &&
	       pi.dirty == 8 * ENTRY, "blk: pending exactly 8 new + 8 "
	       "rewritten entries (%llu + %llu)",
	       (unsigned long long)pi.initial, (unsigned long long)pi.dirty);
	tap_is(round_save(f.s, &r1, &l1), 0, "blk: round 1 (%zu bytes)", l1);
	tap_ok(l1 < l0 && l1 > 16 * ENTRY, "blk: round 1 carries the 16, "
	       "not the 64");
	tap_is(write_blocks(&f, 170, 4, 3), 0, "blk: 4 more writes");
	for (i = 0; i < 4; i++)
		gen_of[170 + i] = 3;
	sz = pc_info(f.s, &pi, &err);
	tap_ok(sz == 24 && pi.initial + pi.dirty == 4 * ENTRY,
	       "blk: the estimate shrank to the 4 (%llu)",
	       (unsigned long long)(pi.initial + pi.dirty));
	tap_is(round_save(f.s, &r2, &l2), 0, "blk: round 2 (%zu bytes)", l2);
	tap_is(write_blocks(&f, 300, 2, 4), 0, "blk: 2 writes after the last "
	       "round");
	gen_of[300] = gen_of[301] = 4;
	fds1 = count_fds(a.serve);
	tap_is(fds1, fds0, "blk: source serve's fd count flat over 3 rounds "
	       "(%d)", fds1);
	tap_is(get_vring_base(f.s, 0, &base), 0, "blk: GET_VRING_BASE");
	tap_ok(log_has(&a, "write-back cache flushed"), "blk: with rounds "
	       "out the cache is still flushed at the stop");
	sz = save_state(f.s, &fin, &lf, &v) == 0 && !(v & 0xff) &&
	     check_state(f.s) == 0;
	tap_ok(sz, "blk: final phase-0 SAVE (%zu bytes)", lf);
	tap_ok(lf < 8 * ENTRY, "blk: the final carries only the rest (2 "
	       "entries: %zu bytes < %u)", lf, 8 * ENTRY);

	/* the destination: rounds before its rings start */
	tap_ok(fe_open1(&d, &b, ALL_PROTO | PF_PRECOPY, false) == 0 &&
	       !!(d.proto & PF_PRECOPY),
	       "blk: destination negotiated pre-copy");
	d.r[0] = f.r[0];
	tap_ok(set_u64(d.s, SET_FEATURES, f.features) == 0 &&
	       fe_mem_table(&d) == 0, "blk: destination features and memory");
	fds0 = count_fds(b.serve);
	c = round_load(d.s, r1, l1);
	tap_is(c, EILSEQ, "blk: round 1 before round 0 refused (out of "
	       "order): CHECK answers EILSEQ");
	tap_is(round_load(d.s, r0, l0), 0, "blk: round 0 applied");
	c = round_load(d.s, r0, l0);
	tap_is(c, EILSEQ, "blk: round 0 again refused (repeated)");
	tap_is(round_load(d.s, r1, l1), 0, "blk: round 1 applied");
	c = round_load(d.s, r1, l1);
	tap_is(c, EILSEQ, "blk: round 1 again refused");
	c = round_load(d.s, r2, l2 - 1);
	tap_is(c, EBADMSG, "blk: round 2 cut short refused (EBADMSG)");
	tap_is(round_load(d.s, r2, l2), 0, "blk: round 2 applied after the "
	       "refusals (nothing applied half-way)");
	tap_ok(log_has(&b, "out of order") && log_has(&b, "repeated"),
	       "blk: the destination's log says why");
	tap_ok(load_state(d.s, fin, lf, &v) == 0 && !(v & 0xff),
	       "blk: final state loaded and checked");
	c = round_load(d.s, r2, l2);
	tap_is(c, EALREADY, "blk: a round after the final refused "
	       "(EALREADY)");
	fds1 = count_fds(b.serve);
	tap_is(fds1, fds0, "blk: destination serve's fd count flat over 8 "
	       "rounds, refused or applied (%d)", fds1);
	/*
	 * The source flushed at the stop: every block is on the shared
	 * disk. Zeroed there, the destination can have them only from the
	 * rounds and the final (its cache answers reads).
	 */
	ondisk = 0;
	fd = open(backing, O_RDWR | O_CLOEXEC);
	memset(buf, 0, sizeof(buf));
	for (i = 0; i < 512; i++) {
		stamp(want, (uint64_t)i);
		want[8] = gen_of[i];
		if (gen_of[i] && pread(fd, buf, 512, (off_t)i * 512) == 512 &&
		    !memcmp(buf, want, 512))
			ondisk++;
		memset(buf, 0, sizeof(buf));
		if (gen_of[i] && pwrite(fd, buf, 512, (off_t)i * 512) != 512)
			ondisk = -1000;
	}
	close(fd);
	tap_is(ondisk, 76, "blk: the source's flush put all 76 blocks on the "
	       "shared disk; zeroed there now");
	tap_ok(log_has(&b, "after the final"), "blk: ... and logged");
	{
		uint16_t bases[1] = { base };

		up = fe_start(&d, bases) == 0;
		tap_ok(up, "blk: destination started at base %u", base);
	}
	tap_ok(log_has(&b, "applied: 2 entries, cache 76"), "blk: the "
	       "destination's device: the final's 2 entries make a cache of "
	       "all 76");
	d.r[0].avail_idx = base;
	d.r[0].last_used = base;
	bad = n = 0;
	/* not started: no 2 s timeout per block */
	for (i = 0; up && i < 512; i++) {
		stamp(want, (uint64_t)i);
		if (gen_of[i]) {
			want[8] = gen_of[i];
		} else {
			continue;
		}
		n++;
		if (blk_io(&d, VIRTIO_BLK_T_IN, (uint64_t)i, buf) != 0 ||
		    memcmp(buf, want, 512))
			bad++;
	}
	tap_ok(n == 76 && bad == 0, "blk: every written block read back "
	       "intact on the destination (%d of %d bad)", bad, n);
	fe_close(&d, false);
	fe_close(&f, true);
	backend_stop(&b);
	backend_stop(&a);
	free(r0);
	free(r1);
	free(r2);
	free(fin);
}

static long long ask_end(int s)
{
	uint64_t v = ~0ULL;

	if (send_msg(s, PRECOPY_END, 0, NULL, 0, NULL, 0) ||
	    recv_reply(s, PRECOPY_END, &v, 8, NULL, NULL) != 1)
		return -1;
	return (long long)v;
}
/* 42 SAVE PRECOPY into a pipe whose read end is already closed; 43. */
static long long round_save_broken(int s, uint64_t *reply)
{
	struct { uint32_t dir, phase; } p = { 0, PHASE_PRECOPY };
	int pfd[2], rfd;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	close(pfd[0]);
	if (send_msg(s, SET_DEVICE_STATE_FD, 0, &p, sizeof(p), &pfd[1], 1) ||
	    recv_reply(s, SET_DEVICE_STATE_FD, reply, 8, NULL, &rfd) != 1) {
		close(pfd[1]);
		return -1;
	}
	close(pfd[1]);
	if (rfd >= 0)
		close(rfd);
	return check_state(s);
}

/* The source's failure paths: it never stops, and keeps working. */
static void test_src_failures(void)
{
	char backing[PATH_MAX + 16];
	const char *args[] = { "--type", "blk", "--cache", "writeback",
			       "--backing", backing, NULL };
	struct backend a;
	struct fe f;
	struct pc_info pi;
	uint64_t err, v = 0;
	void *blob = NULL;
	size_t len = 0;
	uint8_t buf[512], want[512];
	long long c;
	uint32_t sz;
	uint16_t base;
	int fd, fds0, i, bad = 0;

	snprintf(backing, sizeof(backing), "%s/disk2.img", tdir);
	fd = open(backing, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 16 << 20) < 0 ||
	    backend_start(&a, "src2", args) < 0) {
		tap_ok(0, "fail: sim and serve started");
		return;
	}
	close(fd);
	tap_ok(fe_open1(&f, &a, ALL_PROTO | PF_PRECOPY, true) == 0 &&
	       fe_start(&f, NULL) == 0, "fail: source started");
	tap_is(write_blocks(&f, 10, 32, 1), 0, "fail: 32 blocks written");
	fds0 = count_fds(a.serve);
	tap_is(round_save(f.s, &blob, &len), 0, "fail: round 0");
	free(blob);
	blob = NULL;
	c = ask_end(f.s);
	tap_is(c, 0, "fail: PRECOPY_END answered 0");
	sz = pc_info(f.s, &pi, &err);
	tap_ok(sz == 24 && pi.rounds == 0 && pi.initial == 32 * ENTRY,
	       "fail: after PRECOPY_END everything is pending again "
	       "(%llu, %u rounds)", (unsigned long long)pi.initial,
	       pi.rounds);
	/* a round read but never checked, then another round */
	cur_phase = PHASE_PRECOPY;
	tap_ok(save_state(f.s, &blob, &len, &v) == 0 && !(v & 0xff) &&
	       len > 32 * ENTRY, "fail: a round taken, 43 never sent");
	free(blob);
	blob = NULL;
	tap_ok(save_state(f.s, &blob, &len, &v) == 0 &&
	       (v & 0xff) == ESTALE && len == 0, "fail: the next round "
	       "refused (ESTALE): the unchecked one may be lost");
	cur_phase = 0;
	free(blob);
	blob = NULL;
	tap_is(ask_end(f.s), 0, "fail: PRECOPY_END: a new pre-copy may begin");
	c = round_save_broken(f.s, &v);
	tap_ok(c > 0, "fail: a round whose reader went away: CHECK answers "
	       "%lld", c);
	tap_ok(log_has(&a, "the final state will carry everything"),
	       "fail: the log says the final carries everything");
	c = round_save(f.s, &blob, &len);
	tap_ok(c != 0 && len == 0, "fail: the next round refused (ESTALE): "
	       "nothing written");
	free(blob);
	blob = NULL;
	tap_ok(log_has(&a, "earlier pre-copy round failed"), "fail: ... and "
	       "logged");
	tap_is(write_blocks(&f, 10, 32, 2), 0, "fail: the source still "
	       "writes");
	for (i = 0; i < 32; i++) {
		stamp(want, 10 + (uint64_t)i);
		want[8] = 2;
		if (blk_io(&f, VIRTIO_BLK_T_IN, 10 + (uint64_t)i, buf) != 0 ||
		    memcmp(buf, want, 512))
			bad++;
	}
	tap_is(bad, 0, "fail: ... and reads back what it wrote");
	tap_is(count_fds(a.serve), fds0, "fail: serve's fd count flat");
	tap_is(get_vring_base(f.s, 0, &base), 0, "fail: GET_VRING_BASE");
	cur_phase = PHASE_PRECOPY;
	tap_ok(save_state(f.s, &blob, &len, &v) == 0 && (v & 0xff) == EINVAL &&
	       len == 0, "fail: a round of a stopped device refused (EINVAL)");
	cur_phase = 0;
	free(blob);
	tap_ok(log_has(&a, "needs the device running"), "fail: ... and "
	       "logged");
	fe_close(&f, true);
	backend_stop(&a);
}

int main(void)
{
	char prog[PATH_MAX + 16];

	tap_need_fd_count();
	signal(SIGPIPE, SIG_IGN);
	snprintf(prog, sizeof(prog), "%s/vdpa-user", tu_build_dir());
	if (access(prog, X_OK))
		tap_skip_all("vdpa-user not built");
	snprintf(prog, sizeof(prog), "%s/vdpa-sim", tu_build_dir());
	if (access(prog, X_OK))
		tap_skip_all("vdpa-sim not built");
	if (tu_mkdtemp(tdir, sizeof(tdir)) < 0 || guest_init(&G) < 0)
		tap_skip_all("no temporary directory or memfd");
	test_net();
	test_blk();
	test_src_failures();
	guest_fini(&G);
	if (tap_failed)
		tap_diag("logs of the back-ends kept in %s", tdir);
	else
		tu_rmtree(tdir);
	return tap_done();
}
