// SPDX-License-Identifier: MIT
/* dev show, dev info: what a device is and what it can do. */
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <vdpa-user/mgmt.h>
#include <vdpa-user/pci.h>
#include <vdpa-user/state.h>
#include <vdpa-user/uapi-ext.h>
#include <vdpa-user/vdpa-user.h>

#include "cli.h"
#include "devopen.h"
#include "names.h"

static void print_net_config(struct json *j, struct vdpa_dev *dev,
			     uint64_t features)
{
	struct virtio_net_config c;
	char mac[18];

	memset(&c, 0, sizeof(c));
	if (vdpa_dev_get_config(dev, 0, &c, sizeof(c)) < 0 &&
	    vdpa_dev_get_config(dev, 0, &c, 12) < 0)
		return;
	snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x",
		 c.mac[0], c.mac[1], c.mac[2], c.mac[3], c.mac[4], c.mac[5]);
	if (cli.json) {
		json_obj_open(j, "config");
		json_str(j, "mac", mac);
		json_str(j, "link", c.status & VIRTIO_NET_S_LINK_UP ?
			 "up" : "down");
		json_u64(j, "max_vq_pairs", c.max_virtqueue_pairs);
		json_u64(j, "mtu", c.mtu);
		json_obj_close(j);
	} else {
		printf("  config: mac %s link %s max_vq_pairs %u mtu %u\n",
		       mac, c.status & VIRTIO_NET_S_LINK_UP ? "up" : "down",
		       c.max_virtqueue_pairs, c.mtu);
	}
}

static void print_blk_config(struct json *j, struct vdpa_dev *dev)
{
	struct virtio_blk_config c;

	memset(&c, 0, sizeof(c));
	if (vdpa_dev_get_config(dev, 0, &c, 24) < 0)
		return;
	vdpa_dev_get_config(dev, offsetof(struct virtio_blk_config, blk_size),
			    &c.blk_size, sizeof(c.blk_size));
	if (cli.json) {
		json_obj_open(j, "config");
		json_u64(j, "capacity", c.capacity);
		json_u64(j, "size_max", c.size_max);
		json_u64(j, "seg_max", c.seg_max);
		json_u64(j, "blk_size", c.blk_size);
		json_obj_close(j);
	} else {
		printf("  config: capacity %llu sectors size_max %u seg_max %u "
		       "blk_size %u\n", (unsigned long long)c.capacity,
		       c.size_max, c.seg_max, c.blk_size);
	}
}

/* Model URI (what migration compatibility compares) and PCI identity. */
static void print_identity(struct json *j, struct vdpa_dev *dev)
{
	struct vdpa_pci_identity id;
	struct vdpa_state *desc;
	bool pci = vdpa_pci_identity(dev, &id) == 0;

	if (vdpa_state_describe(dev, &desc) == 0) {
		if (cli.json)
			json_str(j, "model", desc->model);
		else
			printf("  model: %s\n", desc->model);
		vdpa_state_free(desc);
	}
	if (!pci)
		return;
	if (cli.json) {
		json_obj_open(j, "pci");
		json_str(j, "slot", id.bdf);
		json_u64(j, "vendor", id.vendor);
		json_u64(j, "device", id.device);
		json_u64(j, "subsystem_vendor", id.subvendor);
		json_u64(j, "subsystem_device", id.subdevice);
		json_str(j, "vendor_name", id.vendor_name);
		json_str(j, "device_name", id.device_name);
		json_obj_close(j);
	} else {
		printf("  pci: %s %04x:%04x (subsystem %04x:%04x) %s %s\n",
		       id.bdf, id.vendor, id.device, id.subvendor,
		       id.subdevice, id.vendor_name, id.device_name);
	}
}

/* What can be known of a device that did not open: its PCI identity. */
static bool identity_unopened(const char *name, struct vdpa_pci_identity *id)
{
	char path[64];
	const char *cdev = name;

	if (!strncmp(cdev, "sim:", 4))
		return false;
	if (strncmp(cdev, "/dev/", 5) &&
	    vdpa_mgmt_chardev(NULL, cdev, path, sizeof(path)) == 0)
		cdev = path;
	return vdpa_pci_identity_of(NULL, cdev, id) == 0;
}

/* The management device of a kernel vdpa device (iproute2's mgmtdev). */
static bool mgmtdev_of(struct vdpa_dev *dev, char *buf, size_t len)
{
	char name[64], parent[512];

	if (!vdpa_dev_is_kernel(dev) ||
	    vdpa_mgmt_parent_of(NULL, vdpa_dev_name(dev), name, sizeof(name),
				parent, sizeof(parent)) < 0)
		return false;
	return vdpa_mgmt_dev_mgmtdev(name, buf, len) == 0;
}

int cmd_dev_info(int argc, char **argv)
{
	struct vdpa_dev *dev;
	struct vdpa_caps caps;
	struct json j;
	char msg[1024], mgmt[96];
	int err;

	cli_begin();
	if (argc != 1)
		return cli_fail("usage: vdpa-user dev info DEV");
	err = cli_dev_open_msg(argv[0], &dev, msg, sizeof(msg));
	if (err < 0) {
		struct vdpa_pci_identity id;
		bool pci = identity_unopened(argv[0], &id);

		cli_fail("%s", msg);
		if (!pci)
			return 1;
		/* what can be known without opening it, and the error */
		json_init(&j, stdout, cli.pretty);
		if (cli.json) {
			json_obj_open(&j, NULL);
			json_obj_open(&j, "dev");
			json_obj_open(&j, argv[0]);
			json_str(&j, "model", id.model_uri);
			json_obj_open(&j, "pci");
			json_str(&j, "slot", id.bdf);
			json_u64(&j, "vendor", id.vendor);
			json_u64(&j, "device", id.device);
			json_u64(&j, "subsystem_vendor", id.subvendor);
			json_u64(&j, "subsystem_device", id.subdevice);
			json_obj_close(&j);
			json_obj_close(&j);
			json_obj_close(&j);
			cli_json_error(&j, NULL);
			json_obj_close(&j);
			json_end(&j);
		} else {
			printf("%s: pci %s %04x:%04x (subsystem %04x:%04x) "
			       "model %s\n", argv[0], id.bdf, id.vendor,
			       id.device, id.subvendor, id.subdevice,
			       id.model_uri);
		}
		return 1;
	}
	cli_lib_clear();
	err = vdpa_dev_get_caps(dev, &caps);
	if (err < 0) {
		vdpa_dev_close(dev);
		return cli_fail("%s: reading its capabilities: %s", argv[0],
				cli_lib_why(err, argv[0]));
	}
	json_init(&j, stdout, cli.pretty);
	if (cli.json) {
		json_obj_open(&j, NULL);
		json_obj_open(&j, "dev");
		json_obj_open(&j, argv[0]);
		json_str(&j, "type", device_type_name(caps.device_id));
		json_u64(&j, "device_id", caps.device_id);
		if (mgmtdev_of(dev, mgmt, sizeof(mgmt)))
			json_str(&j, "mgmtdev", mgmt);
		json_u64(&j, "max_vqs", caps.vq_count);
		json_u64(&j, "max_vq_size", caps.vq_max_size);
		json_u64(&j, "config_size", caps.config_size);
		json_obj_open(&j, "iova_range");
		json_hex(&j, "first", caps.iova_range.first);
		json_hex(&j, "last", caps.iova_range.last);
		json_obj_close(&j);
	} else {
		printf("%s: type %s (device id %u)", argv[0],
		       device_type_name(caps.device_id), caps.device_id);
		if (mgmtdev_of(dev, mgmt, sizeof(mgmt)))
			printf(" mgmtdev %s", mgmt);
		printf("\n  max_vqs %u max_vq_size %u config_size %u\n",
		       caps.vq_count, caps.vq_max_size, caps.config_size);
		printf("  iova range: 0x%llx-0x%llx\n",
		       (unsigned long long)caps.iova_range.first,
		       (unsigned long long)caps.iova_range.last);
	}
	cli_print_bits(&j, "features", caps.features, feature_name_of,
		       caps.device_id, "  ");
	cli_print_bits(&j, "backend_features", caps.backend_features,
		       backend_feature_name_of, caps.device_id, "  ");
	if (caps.device_id == VIRTIO_ID_NET)
		print_net_config(&j, dev, caps.features);
	else if (caps.device_id == VIRTIO_ID_BLOCK)
		print_blk_config(&j, dev);
	print_identity(&j, dev);
	if (cli.json) {
		json_obj_open(&j, "migration");
		json_bool(&j, "suspend", caps.suspend);
		json_bool(&j, "resume", caps.resume);
		json_bool(&j, "device_state", caps.device_state);
		json_bool(&j, "precopy", !!(caps.backend_features &
			  (1ULL << VHOST_BACKEND_F_DEVICE_STATE_PRECOPY)));
		json_obj_close(&j);
		json_obj_close(&j);
		json_obj_close(&j);
		json_obj_close(&j);
		json_end(&j);
	} else {
		printf("  migration: suspend %s, resume %s, device state %s\n",
		       caps.suspend ? "yes" : "no", caps.resume ? "yes" : "no",
		       !caps.device_state ?
		       "no (vring bases and class state only)" :
		       caps.backend_features &
		       (1ULL << VHOST_BACKEND_F_DEVICE_STATE_PRECOPY) ?
		       "yes (extension, with pre-copy)" : "yes (extension)");
	}
	vdpa_dev_close(dev);
	return 0;
}

/*
 * dev show [DEV]: every /dev/vhost-vdpa-N (or DEV), iproute2's keys. A
 * device that does not open is an error (stderr, exit 1); the others are
 * still listed.
 */
int cmd_dev_show(int argc, char **argv)
{
	struct json j;
	glob_t g;
	size_t i, n;
	char **names;
	int rc = 0;

	cli_begin();
	if (argc > 1)
		return cli_fail("usage: vdpa-user dev show [DEV]");
	if (argc == 1) {
		n = 1;
		names = argv;
		memset(&g, 0, sizeof(g));
	} else {
		if (glob("/dev/vhost-vdpa-*", 0, NULL, &g) != 0)
			g.gl_pathc = 0;
		n = g.gl_pathc;
		names = g.gl_pathv;
	}
	json_init(&j, stdout, cli.pretty);
	if (cli.json) {
		json_obj_open(&j, NULL);
		json_obj_open(&j, "dev");
	}
	for (i = 0; i < n; i++) {
		struct vdpa_dev *dev;
		struct vdpa_caps caps;
		char msg[1024], mgmt[96];
		bool have_mgmt = false;
		int err = cli_dev_open_msg(names[i], &dev, msg, sizeof(msg));

		if (err == 0) {
			cli_lib_clear();
			err = vdpa_dev_get_caps(dev, &caps);
			if (err < 0)
				snprintf(msg, sizeof(msg), "%s: reading its "
					 "capabilities: %s", names[i],
					 cli_lib_why(err, names[i]));
			else
				have_mgmt = mgmtdev_of(dev, mgmt, sizeof(mgmt));
			vdpa_dev_close(dev);
		}
		if (err < 0) {
			rc = cli_fail("%s", msg);
			if (cli.json) {
				json_obj_open(&j, names[i]);
				json_str(&j, "error", msg);
				json_obj_close(&j);
			}
			continue;
		}
		if (cli.json) {
			json_obj_open(&j, names[i]);
			json_str(&j, "type", device_type_name(caps.device_id));
			json_u64(&j, "device_id", caps.device_id);
			if (have_mgmt)
				json_str(&j, "mgmtdev", mgmt);
			json_u64(&j, "max_vqs", caps.vq_count);
			json_u64(&j, "max_vq_size", caps.vq_max_size);
			json_obj_close(&j);
		} else {
			printf("%s: type %s device_id %u", names[i],
			       device_type_name(caps.device_id),
			       caps.device_id);
			if (have_mgmt)
				printf(" mgmtdev %s", mgmt);
			printf(" max_vqs %u max_vq_size %u\n", caps.vq_count,
			       caps.vq_max_size);
		}
	}
	if (cli.json) {
		json_obj_close(&j);
		if (rc)
			cli_json_error(&j, NULL);
		json_obj_close(&j);
		json_end(&j);
	}
	if (argc == 0)
		globfree(&g);
	return rc;
}
