/* SPDX-License-Identifier: MIT */
/* Private: the device handle, its transport and its shadow state. */
#ifndef VDPA_LIB_DEVICE_H
#define VDPA_LIB_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/vhost_types.h>
#include <vdpa-user/vdpa-user.h>
#include <vdpa-user/state.h>
#include <vdpa-user/wire.h>

#define VDPA_MAX_VQS		64
#define VDPA_MAX_MAPPED		16

struct vdpa_dev;

/* Argument of VSIM_REQ_ADD_MEM through vdpa_dev_call(). */
struct vdpa_mem_arg {
	struct vsim_mem m;
	int fd;
};

/*
 * A transport: the kernel's /dev/vhost-vdpa-N or a vdpa-sim socket. call()
 * takes the same request/arg pairs as vdpa_dev_call() and returns >= 0 or
 * -errno. On the kernel transport VSIM_REQ_ADD_MEM/DEL_MEM are no-ops (the
 * kernel reads our address space directly).
 */
struct transport_ops {
	const char *name;
	int (*call)(struct vdpa_dev *dev, unsigned long request, void *arg);
	void (*close)(struct vdpa_dev *dev);
};

extern const struct transport_ops kernel_transport;
extern const struct transport_ops sim_transport;

/* What the driver set through this handle: the kernel cannot tell us. */
struct vdpa_vq_shadow {
	uint32_t num;
	struct vhost_vring_addr addr;
	uint16_t base;
	int kick_fd, call_fd;	/* the caller's eventfds (not owned); -1: none */
	bool num_set, addr_set, base_set, kick_set, call_set;
	bool enabled;
};

struct vdpa_dev_shadow {
	uint64_t features;
	uint64_t backend_features;
	bool features_set, backend_set;
	uint8_t status;		/* last status written or read back */
	bool status_known;	/* status was read back after the last write */
	bool remap_pending;	/* a kernel reset dropped the IOTLB */
	struct vdpa_vq_shadow vq[VDPA_MAX_VQS];
	bool driver_ok_seen;	/* DRIVER_OK or SET_CONFIG went through */
};

#define VDPA_PROV_CONFIG_MAX	64

/* Net class state: what the driver set through the control queue. */
struct vdpa_netcls {
	struct vdpa_state_net st;
	bool changed;		/* a command was recorded since the reset */
	char unsupported[96];	/* a command the library cannot carry */
};

struct vdpa_dev {
	char *name;
	const struct transport_ops *ops;
	int fd;			/* /dev/vhost-vdpa-N or the sim socket */
	uint32_t device_id;	/* from HELLO (sim) or GET_DEVICE_ID */
	struct vdpa_dev_shadow shadow;
	const void *mapped[VDPA_MAX_MAPPED];	/* vdpa_mem regions mapped */
	/* what the device offers never changes while it is open: asked once */
	bool caps_valid;
	struct vdpa_caps caps;
	/*
	 * The configuration the device was provisioned with: config space
	 * read before the driver first set DRIVER_OK or wrote the config
	 * through this handle. Migration checks against it, not against
	 * fields the guest changes later (a MAC set through the CVQ).
	 */
	uint8_t prov_config[VDPA_PROV_CONFIG_MAX];
	uint32_t prov_config_len;
	bool prov_valid;
	struct vdpa_netcls netcls;
};

/*
 * SET_VRING_NUM and SET_VRING_ADDR, each only when the device does not
 * have exactly this since its last reset (set ahead while a migration's
 * source still ran, or by an earlier attach).
 */
int dev_place_ring(struct vdpa_dev *dev, uint32_t num,
		   const struct vhost_vring_addr *a);

/*
 * The provisioned config space (bytes [0, len)); taken now if the driver
 * has not started the device yet. Errors of GET_CONFIG.
 */
int dev_prov_config(struct vdpa_dev *dev, void *buf, uint32_t len);

/* Net class state helpers (netcls.c). */
void netcls_reset(struct vdpa_dev *dev);
/* Non-zero when st differs from what a reset device has. */
bool netcls_is_default(const struct vdpa_state_net *st, const uint8_t *prov_mac);

/* The cached capabilities (asked on first use). */
int dev_caps(struct vdpa_dev *dev, const struct vdpa_caps **ret);

const struct vdpa_dev_shadow *vdpa_dev_shadow(const struct vdpa_dev *dev);

/*
 * Re-send the IOTLB mappings of every region mapped into dev (mem.c). Linux
 * before IOTLB_PERSIST (6.1's vdpa_sim) drops the parent's mappings on
 * reset while vhost-vdpa keeps its own, so the kernel transport remaps.
 */
int mem_remap_all(struct vdpa_dev *dev);

/* Where mem starts in its fd (vdpa_mem_create_from_fd_at()), else 0. */
uint64_t mem_fd_offset(const struct vdpa_mem *mem);

#endif
