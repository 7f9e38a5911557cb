/* SPDX-License-Identifier: MIT */
/* PCI identity of a vDPA device's parent (libpci), and its model URI. */
#ifndef VDPA_USER_PCI_H
#define VDPA_USER_PCI_H

#include <stddef.h>
#include <stdint.h>

#include <vdpa-user/vdpa-user.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vdpa_pci_identity {
	char bdf[16];			/* "0000:00:04.0" */
	uint16_t vendor, device;
	uint16_t subvendor, subdevice;
	char vendor_name[128];		/* from pci.ids, or "" */
	char device_name[128];
	char model_uri[80];		/* pci://vvvv/dddd/ssss/ssss */
};

/*
 * The PCI function under a /dev/vhost-vdpa-N device. sysfs_root: "" or
 * NULL for the real /sys (a fake tree for tests). Errors: -ENODEV the
 * parent is not a PCI device (vdpa_sim) or dev is a sim: device; -ENOENT.
 */
VDPA_EXPORT int vdpa_pci_identity(struct vdpa_dev *dev,
				  struct vdpa_pci_identity *ret);
VDPA_EXPORT int vdpa_pci_identity_of(const char *sysfs_root,
				     const char *chardev,
				     struct vdpa_pci_identity *ret);

#ifdef __cplusplus
}
#endif

#endif
