/* SPDX-License-Identifier: MIT */
/*
 * vdpa management over generic netlink (the "vdpa" family), with libmnl:
 * what iproute2's vdpa tool does, as a library. Parsing is separate from
 * socket I/O so recorded kernel messages can be decoded in tests.
 */
#ifndef VDPA_USER_MGMT_H
#define VDPA_USER_MGMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vdpa-user/vdpa-user.h>

#ifdef __cplusplus
extern "C" {
#endif

struct nlmsghdr;
struct vdpa_mgmt;

struct vdpa_mgmtdev_info {
	char bus[32];		/* "" for a bus-less parent (vdpasim_net) */
	char dev[64];
	uint64_t classes;	/* bit n = virtio device id n */
	bool has_max_vqs, has_features;
	uint32_t max_vqs;
	uint64_t features;
};

struct vdpa_dev_config_info {
	char name[64];
	uint32_t device_id;
	bool has_mac, has_status, has_max_vqp, has_mtu, has_features;
	uint8_t mac[6];
	uint16_t status;
	uint16_t max_vqp;
	uint16_t mtu;
	uint64_t negotiated;
};

#define VDPA_MGMT_MAX_VSTATS 32
struct vdpa_vstats {
	char name[64];
	uint32_t device_id;
	uint32_t queue_index;
	uint64_t negotiated;
	unsigned int n;
	struct {
		char name[48];
		uint64_t value;
	} attr[VDPA_MGMT_MAX_VSTATS];
};

struct vdpa_dev_add_opts {
	const char *name;
	const char *mgmtdev;	/* "vdpasim_net" or "pci/0000:00:04.0" */
	bool has_mac, has_mtu, has_max_vqp, has_features;
	uint8_t mac[6];
	uint16_t mtu;
	uint16_t max_vqp;
	uint64_t features;
};

/*
 * Connect and resolve the family. Errors: -EPROTONOSUPPORT no vdpa family
 * (module not loaded), socket errors. err gets one line.
 */
VDPA_EXPORT int vdpa_mgmt_open(struct vdpa_mgmt **ret, char *err,
			       size_t errlen);
VDPA_EXPORT void vdpa_mgmt_close(struct vdpa_mgmt *m);

/* Lists are malloc'd arrays the caller frees. err: one line (extack). */
VDPA_EXPORT int vdpa_mgmt_list(struct vdpa_mgmt *m, const char *mgmtdev,
			       struct vdpa_mgmtdev_info **ret, size_t *ret_n,
			       char *err, size_t errlen);
VDPA_EXPORT int vdpa_mgmt_dev_add(struct vdpa_mgmt *m,
				  const struct vdpa_dev_add_opts *o, char *err,
				  size_t errlen);
VDPA_EXPORT int vdpa_mgmt_dev_del(struct vdpa_mgmt *m, const char *name,
				  char *err, size_t errlen);
VDPA_EXPORT int vdpa_mgmt_dev_config(struct vdpa_mgmt *m, const char *name,
				     struct vdpa_dev_config_info **ret,
				     size_t *ret_n, char *err, size_t errlen);
VDPA_EXPORT int vdpa_mgmt_vstats(struct vdpa_mgmt *m, const char *name,
				 uint32_t qidx, struct vdpa_vstats *ret,
				 char *err, size_t errlen);

/* Parsers of single kernel messages (-EBADMSG on ill-typed attributes). */
VDPA_EXPORT int vdpa_mgmt_parse_mgmtdev(const struct nlmsghdr *nlh,
					struct vdpa_mgmtdev_info *ret);
VDPA_EXPORT int vdpa_mgmt_parse_config(const struct nlmsghdr *nlh,
				       struct vdpa_dev_config_info *ret);
VDPA_EXPORT int vdpa_mgmt_parse_vstats(const struct nlmsghdr *nlh,
				       struct vdpa_vstats *ret);
/* NLMSG_ERROR: the negative errno (0 for an ACK) and the extack text. */
VDPA_EXPORT int vdpa_mgmt_parse_error(const struct nlmsghdr *nlh, char *msg,
				      size_t msglen);

/* vdpa device name -> /dev/vhost-vdpa-N through sysfs (root "" = "/"). */
VDPA_EXPORT int vdpa_mgmt_chardev(const char *sysfs_root, const char *name,
				  char *buf, size_t len);

/*
 * The vdpa device behind /dev/vhost-vdpa-N and the sysfs path of its parent
 * (a PCI function, or a management device such as vdpasim_net).
 */
VDPA_EXPORT int vdpa_mgmt_parent_of(const char *sysfs_root,
				    const char *chardev, char *name,
				    size_t name_len, char *parent,
				    size_t parent_len);

/* The management device ("vdpasim_net", "pci/0000:00:04.0") of a vdpa
 * device, asked over netlink (VDPA_CMD_DEV_GET). */
VDPA_EXPORT int vdpa_mgmt_dev_mgmtdev(const char *name, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
