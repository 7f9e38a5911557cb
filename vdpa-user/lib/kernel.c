// SPDX-License-Identifier: MIT
/* Transport: the kernel's vhost-vdpa character device. */
#include <errno.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "device.h"

static int kernel_call(struct vdpa_dev *dev, unsigned long request, void *arg)
{
	ssize_t n;
	int r;

	switch (request) {
	case VSIM_REQ_IOTLB_MSG:
		do {
			n = write(dev->fd, arg, sizeof(struct vhost_msg_v2));
		} while (n < 0 && errno == EINTR);
		return n < 0 ? -errno : (int)n;
	case VSIM_REQ_ADD_MEM:
	case VSIM_REQ_DEL_MEM:
		/* the kernel pins our own pages from the IOTLB uaddr */
		return 0;
	default:
		do {
			r = ioctl(dev->fd, request, arg);
		} while (r < 0 && errno == EINTR);
		return r < 0 ? -errno : r;
	}
}

static void kernel_close(struct vdpa_dev *dev)
{
	if (dev->fd >= 0)
		close(dev->fd);
	dev->fd = -1;
}

const struct transport_ops kernel_transport = {
	.name = "kernel",
	.call = kernel_call,
	.close = kernel_close,
};
