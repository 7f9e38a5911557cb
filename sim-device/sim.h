/* SPDX-License-Identifier: MIT */
/*
 * vdpa-sim: a userspace vDPA device (virtio-net or virtio-blk) served over
 * the vdpa-sim wire protocol (include/vdpa-user/wire.h). Internal API used
 * by the vdpa-sim CLI (main.c), tests and benchmarks. docs/sim.md.
 *
 * All functions return 0 (or a count) or a negative errno.
 */
#ifndef VDPA_SIM_H
#define VDPA_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vsim_type {
	VSIM_TYPE_NET = 1,	/* VIRTIO_ID_NET */
	VSIM_TYPE_BLK = 2,	/* VIRTIO_ID_BLOCK */
};

#define VSIM_MAX_QUEUE_PAIRS	16
#define VSIM_MAX_VQS		(2 * VSIM_MAX_QUEUE_PAIRS + 1)
#define VSIM_MAX_MEM_REGIONS	64
/* Cap of a device-state blob accepted on load. */
#define VSIM_STATE_MAX		(256u << 20)
/* How long VHOST_VDPA_CHECK_DEVICE_STATE waits for the transfer (ms). */
#define VSIM_STATE_TIMEOUT_MS	10000

/* level: syslog level (LOG_ERR .. LOG_DEBUG). msg has no trailing newline. */
typedef void (*vsim_log_fn)(void *opaque, int level, const char *msg);

struct vsim_opts {
	enum vsim_type type;
	unsigned int queue_pairs;	/* net: 1..VSIM_MAX_QUEUE_PAIRS */
	unsigned int vq_size;		/* max ring size, power of 2, <= 32768 */
	bool no_suspend;		/* do not offer VHOST_BACKEND_F_SUSPEND */
	bool no_resume;			/* do not offer VHOST_BACKEND_F_RESUME */
	bool no_state;			/* do not offer VHOST_BACKEND_F_DEVICE_STATE */
	uint32_t faults;		/* --fault: 1 << enum vsim_fault_id (fault.h) */
	bool no_loopback;		/* net: TX goes nowhere (a NIC on no wire) */
	/* offer the 2024 "vdpa live update" proposal: VHOST_NEW_OWNER and
	 * VHOST_IOTLB_REMAP (backend bits 9, 10); off by default, as no
	 * kernel has it (docs/live-update.md) */
	bool new_owner;
	uint64_t iova_first, iova_last;	/* VHOST_VDPA_GET_IOVA_RANGE */
	uint8_t mac[6];			/* net */
	uint16_t mtu;			/* net */
	uint64_t capacity;		/* blk: 512-byte sectors */
	const char *backing;		/* blk: file shared by simulators, or NULL */
	bool writeback;			/* blk: --cache writeback */
	/*
	 * Fault injection (--crash-during): the process _exit()s half-way
	 * through a state save or load, as a device or its host dying
	 * mid-migration would. For process-mode simulators only.
	 */
	enum { VSIM_CRASH_NONE, VSIM_CRASH_SAVE, VSIM_CRASH_LOAD } crash_during;
	/*
	 * A kernel personality (--kernel): answer as Linux's vdpa_sim of
	 * that release where the simulator has a knob for it
	 * (vsim_opts_kernel(); docs/differential.md).
	 */
	enum { VSIM_KERNEL_NONE, VSIM_KERNEL_6_1, VSIM_KERNEL_6_12 } kernel;
	/*
	 * The vdpa-sim process only (main.c; the device ignores them):
	 * --pidfile, written once the socket listens, removed at exit;
	 * --ready-fd, "ready\n" written to it and closed once the socket
	 * listens (closed without it when the simulator cannot start); -1
	 * for none.
	 */
	const char *pidfile;
	int ready_fd;
	vsim_log_fn log;		/* NULL: no logging */
	void *log_opaque;
	int log_level;			/* messages above this level are dropped */
};

/*
 * Defaults for type: 1 queue pair, vq size 256, every backend feature
 * offered, IOVA range [0, 2^64-1], MAC 00:11:22:33:44:55 (net), MTU 1500,
 * 64 MiB RAM disk (blk), write-through, no log, level LOG_NOTICE, no
 * pidfile, no ready fd.
 */
void vsim_opts_init(struct vsim_opts *o, enum vsim_type type);

/*
 * Apply a kernel personality, "6.1" or "6.12": 6.1 offers neither RESUME
 * nor the device-state extension; 6.12 offers RESUME (not the extension)
 * and a blk config space of 96 bytes (the zoned fields). -EINVAL for
 * another name.
 */
int vsim_opts_kernel(struct vsim_opts *o, const char *name);

/*
 * Parse vdpa-sim command-line options (argv[0] is skipped, getopt_long).
 * Sets *ret_socket to the --socket argument (may be NULL for callers that
 * don't need it; then --socket is still accepted). -v raises log_level.
 * Returns 0, -EINVAL (message logged through o->log if set), 1 for --help
 * or 2 for --fault help.
 * Strings point into argv.
 */
int vsim_opts_parse(struct vsim_opts *o, int argc, char **argv,
		    const char **ret_socket);

/* Check an options struct (ranges, power of 2, ...): 0 or -EINVAL. */
int vsim_opts_check(const struct vsim_opts *o);

struct vsim;

/*
 * Create a device. Errors: -EINVAL bad options, -ENOENT/-EACCES backing
 * file, -ENOMEM.
 */
int vsim_create(const struct vsim_opts *o, struct vsim **ret);
void vsim_destroy(struct vsim *sim);

/*
 * Listen on a unix SOCK_SEQPACKET socket at path (created 0600). A socket
 * file at path that nobody listens on any more (left by a killed
 * simulator) is replaced; one that a simulator still listens on is not:
 * -EADDRINUSE. Any other file at path: -EEXIST. Peers with another uid
 * are refused.
 */
int vsim_listen(struct vsim *sim, const char *path);

/*
 * Serve one already connected socket (takes ownership of sock). Used by the
 * thread mode; when it closes the device is reset and nothing else can
 * connect (unless vsim_listen() was also called).
 */
int vsim_serve_fd(struct vsim *sim, int sock);

/*
 * Serve requests and the data path until vsim_stop(). Returns 0 or -errno.
 */
int vsim_run(struct vsim *sim);

/* Ask vsim_run() to return. Async-signal-safe, callable from any thread. */
void vsim_stop(struct vsim *sim);

struct vsim_queue_stats {
	uint64_t requests;	/* chains completed (net: packets) */
	uint64_t bytes;		/* payload bytes moved */
	uint64_t drops;		/* net rx: filtered packets */
	uint64_t overruns;	/* net rx: packet with no rx buffer */
	uint64_t errors;	/* blk: IOERR/UNSUPP replies; cvq: failed cmds */
};

struct vsim_status {
	uint8_t status;			/* virtio device status */
	bool connected;
	bool owner;
	bool suspended;
	bool needs_reset;
	char reset_reason[128];		/* why NEEDS_RESET was set */
	uint64_t features;		/* negotiated driver features */
	uint64_t backend_features;
	unsigned int nvqs;
	struct vsim_queue_stats q[VSIM_MAX_VQS];
	uint16_t last_avail[VSIM_MAX_VQS];
	bool ready[VSIM_MAX_VQS];
	/* net */
	uint8_t mac[6];
	uint16_t curr_queue_pairs;
	bool promisc, allmulti;
	/* blk */
	uint64_t dirty_sectors;		/* write-back cache entries */
	uint64_t flushes;
	unsigned int mem_regions;
	unsigned int iotlb_entries;
	unsigned int state_transfers;	/* completed SET/CHECK pairs */
};

/* Snapshot of the device, safe from any thread. */
void vsim_get_status(struct vsim *sim, struct vsim_status *ret);

/* ---- thread mode ------------------------------------------------------- */

struct vsim_thread;

/*
 * Create a device from o and serve it in a new thread over a socketpair.
 * *ret_client_fd is the driver's end (CLOEXEC, the caller owns it): speak
 * the wire protocol on it, starting with HELLO.
 */
int vsim_thread_start(const struct vsim_opts *o, int *ret_client_fd,
		      struct vsim_thread **ret);
/* Stop the thread, destroy the device. Accepts NULL. */
void vsim_thread_stop(struct vsim_thread *t);
struct vsim *vsim_thread_sim(struct vsim_thread *t);

#endif
