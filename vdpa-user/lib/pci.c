// SPDX-License-Identifier: MIT
/* PCI identity with libpci: ids from the device, names from pci.ids. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pci/pci.h>
#include <vdpa-user/mgmt.h>
#include <vdpa-user/pci.h>

#include "log.h"

/* The PCI function above /dev/vhost-vdpa-N's vdpa device, if any. */
static int parent_bdf(const char *root, const char *chardev, char *bdf,
		      size_t len)
{
	char name[64], parent[4096], *p;
	unsigned int d, b, s, f;
	int err;

	err = vdpa_mgmt_parent_of(root, chardev, name, sizeof(name), parent,
				  sizeof(parent));
	if (err < 0)
		return err;
	p = strrchr(parent, '/');
	if (!p || sscanf(p + 1, "%x:%x:%x.%x", &d, &b, &s, &f) != 4 ||
	    strlen(p + 1) >= len)
		return -ENODEV;
	strcpy(bdf, p + 1);
	return 0;
}

int vdpa_pci_identity_of(const char *sysfs_root, const char *chardev,
			 struct vdpa_pci_identity *ret)
{
	struct vdpa_pci_identity id;
	struct pci_access *acc;
	struct pci_dev *pd;
	unsigned int d, b, s, f;
	char path[PATH_MAX];
	int err;

	if (!chardev || !ret)
		return -EINVAL;
	memset(&id, 0, sizeof(id));
	err = parent_bdf(sysfs_root, chardev, id.bdf, sizeof(id.bdf));
	if (err < 0)
		return err;
	sscanf(id.bdf, "%x:%x:%x.%x", &d, &b, &s, &f);
	acc = pci_alloc();
	if (!acc)
		return -ENOMEM;
	if (sysfs_root && *sysfs_root) {
		snprintf(path, sizeof(path), "%s/sys/bus/pci", sysfs_root);
		pci_set_param(acc, "sysfs.path", path);
	}
	acc->method = PCI_ACCESS_SYS_BUS_PCI;
	pci_init(acc);
	pd = pci_get_dev(acc, (int)d, (int)b, (int)s, (int)f);
	if (!pd) {
		pci_cleanup(acc);
		return -ENOENT;
	}
	pci_fill_info(pd, PCI_FILL_IDENT | PCI_FILL_SUBSYS);
	id.vendor = pd->vendor_id;
	id.device = pd->device_id;
	id.subvendor = pd->subsys_vendor_id;
	id.subdevice = pd->subsys_id;
	pci_lookup_name(acc, id.vendor_name, sizeof(id.vendor_name),
			PCI_LOOKUP_VENDOR | PCI_LOOKUP_NO_NUMBERS, id.vendor);
	pci_lookup_name(acc, id.device_name, sizeof(id.device_name),
			PCI_LOOKUP_DEVICE | PCI_LOOKUP_NO_NUMBERS, id.vendor,
			id.device);
	pci_free_dev(pd);
	pci_cleanup(acc);
	snprintf(id.model_uri, sizeof(id.model_uri),
		 "pci://%04x/%04x/%04x/%04x", id.vendor, id.device,
		 id.subvendor, id.subdevice);
	*ret = id;
	return 0;
}

int vdpa_pci_identity(struct vdpa_dev *dev, struct vdpa_pci_identity *ret)
{
	if (!dev || !ret)
		return -EINVAL;
	if (!vdpa_dev_is_kernel(dev))
		return -ENODEV;
	return vdpa_pci_identity_of(NULL, vdpa_dev_name(dev), ret);
}
