/* SPDX-License-Identifier: MIT */
/*
 * A small vhost-user front-end of the tests' own (tests/serve,
 * tests/serve-precopy): the wire spelt out here rather than taken from
 * vdpa-user/serve, so that a misreading of the protocol there is not
 * shared by the tests; vdpa-sim and `vdpa-user serve` as real processes
 * behind it; guest memory as a memfd and split rings in it.
 *
 * The names are short and unprefixed on purpose: the tests read as
 * protocol scripts (send_msg(), ack_call(), fe_start()). Nothing here
 * prints a TAP line (tap.h counts per binary): callers check the results.
 */
#ifndef VDPA_TESTS_VU_FRONT_H
#define VDPA_TESTS_VU_FRONT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/virtio_ring.h>

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

/* One message, version 1 | flags, with nfds (<= 16) fds: 0 or -EIO. */
int send_msg(int s, uint32_t req, uint32_t flags, const void *p,
	     uint32_t size, const int *fds, int nfds);
/*
 * A reply: 1 and its payload (up to len), 0 the back-end closed, -ETIMEDOUT
 * (5 s), -EPROTO not the reply to req. *ret_fd gets an fd that came with
 * it (or -1); without ret_fd it is closed.
 */
int recv_reply(int s, uint32_t req, void *buf, uint32_t len,
	       uint32_t *ret_size, int *ret_fd);
/* A request with REPLY_ACK: the ack (0 ok), or -1 when the back-end closed. */
long long ack_call(int s, uint32_t req, const void *p, uint32_t size,
		   const int *fds, int nfds);
/* A request without payload answered by a u64: 0 and *v, or -EIO. */
int get_u64(int s, uint32_t req, uint64_t *v);
/* The same as one number: the u64, or -1. */
long long req_u64(int s, uint32_t req);
/* A u64 payload with REPLY_ACK: the ack. */
long long set_u64(int s, uint32_t req, uint64_t v);
/* A vhost_vring_state with REPLY_ACK: the ack. */
long long vring_state(int s, uint32_t req, uint32_t idx, uint32_t num);

/* ---- processes ------------------------------------------------------- */

struct guest;

/* The directory for the back-ends' sockets and logs (vu_setup() sets it). */
extern const char *vu_dir;

/*
 * What a test needs first: vdpa-user and vdpa-sim built, a private
 * directory in dir (made vu_dir; tu_rmtree() it at the end), g's memory.
 * NULL, or why not (for tap_skip_all()).
 */
const char *vu_setup(char *dir, size_t len, struct guest *g);

struct backend {
	pid_t sim, serve;
	char sim_sock[PATH_MAX + 16], vu_sock[PATH_MAX + 16];
	char log[PATH_MAX + 16];
	char stats[PATH_MAX + 16];	/* serve --stats FILE */
};

/*
 * `vdpa-user serve` in front of kdev (a kernel device), or of a vdpa-sim
 * of sim_args (NULL-terminated) when kdev is NULL; both ready when this
 * returns 0, their stderr in b->log. SERVE_VALGRIND=1 in the environment:
 * serve runs under valgrind's leak checker (exit 99 on an error or leak).
 */
int backend_start_on(struct backend *b, const char *name,
		     const char *const *sim_args, const char *kdev);
int backend_start(struct backend *b, const char *name,
		  const char *const *sim_args);
/* SIGTERM both and reap: serve's exit status (-1 killed by a signal). */
int backend_end(struct backend *b);

/* A connection to the back-end's socket, or -1. */
int fe_connect(const struct backend *b);

/* Open fds of a process, from /proc (-1 without it). */
int count_fds(pid_t pid);
/* The fd count once it has settled at want (2 s at most). */
int settled_fds(pid_t pid, int want);

/*
 * A counter of serve's --stats file: its value, or -1 when the file or
 * the key is missing (a number is required, the key quoted exactly).
 */
long long stats_get(const struct backend *b, const char *key);

/* The back-end's log (its first 4 MiB) as a string to free; NULL on error. */
char *log_text(const struct backend *b);
bool log_has(const struct backend *b, const char *what);

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

int guest_init(struct guest *g);
void guest_fini(struct guest *g);
/* Carve size bytes at align from guest memory (never given back). */
void *galloc(struct guest *g, size_t size, size_t align);
/* The guest physical address of p in g, and p as the front-end's VA. */
uint64_t gpa(const struct guest *g, const void *p);
uint64_t va(const void *p);

struct ring {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint8_t *bufs;		/* QSZ buffers of BUF_SIZE */
	uint16_t avail_idx, last_used;
	int kick, call;
};

/* A ring of QSZ in g, its buffers, its kick and call eventfds. */
int ring_init(struct guest *g, struct ring *r);
void ring_fini(struct ring *r);
void ring_kick(struct ring *r);
/* Next completion: 1 with head and len, 0 none within ms. */
int ring_used(struct ring *r, int ms, uint16_t *head, uint32_t *len);

/* ---- front-end ------------------------------------------------------- */

struct fe {
	int s;
	struct guest *g;
	struct ring r[2];
	unsigned int nrings;
	uint64_t features, proto;
	uint64_t split;		/* memory as two regions of one fd, split here */
};

/*
 * GET_FEATURES, GET/SET_PROTOCOL_FEATURES (what is offered of want_proto),
 * SET_OWNER; f->features = all offered but the log.
 */
int fe_negotiate(struct fe *f, uint64_t want_proto);
/* SET_MEM_TABLE of f->g (two regions when f->split): the ack. */
long long fe_mem_table(struct fe *f);
/* SET_VRING_KICK/CALL (req) of ring idx with fd: the ack. */
long long vring_fd(int s, uint32_t req, uint32_t idx, int fd);
long long vring_addr(int s, uint32_t idx, struct ring *r);
/* Features, memory, rings at their bases (NULL: 0), enabled: 0 or -EPROTO. */
int fe_start(struct fe *f, const uint16_t *bases);
/* GET_VRING_BASE: 0 and *base, or -EIO. */
int get_vring_base(int s, uint32_t idx, uint16_t *base);

/* ---- device state (42 SET_DEVICE_STATE_FD, 43 CHECK_DEVICE_STATE) ---- */

/*
 * 42 SAVE of phase into a pipe, read to EOF: 0, the blob in *ret (to free)
 * and the 42 reply in *reply; -errno when 42 was not answered.
 */
int save_state_phase(int s, uint32_t phase, void **ret, size_t *ret_len,
		     uint64_t *reply);
int save_state(int s, void **ret, size_t *ret_len, uint64_t *reply);
/* 43: the answer (0 ok), or -1. */
long long check_state(int s);
/* 42 LOAD of phase, blob written into the pipe, closed, 43: its answer. */
long long load_state_phase(int s, uint32_t phase, const void *blob,
			   size_t len, uint64_t *reply);
long long load_state(int s, const void *blob, size_t len, uint64_t *reply);

/* ---- blk ------------------------------------------------------------- */

/* Sector's 512 bytes of test data (the sector number first). */
void stamp(uint8_t *b, uint64_t sector);
/* One request through f's ring 0 and its completion: the status byte. */
int blk_io(struct fe *f, uint32_t type, uint64_t sector, uint8_t *data);

#endif
