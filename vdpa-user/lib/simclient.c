// SPDX-License-Identifier: MIT
/* Transport: a vdpa-sim socket (include/vdpa-user/wire.h). */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <vdpa-user/uapi-ext.h>

#include "device.h"
#include "log.h"

/* Where the fd sits in an fd-carrying request's argument. */
static int *fd_field(unsigned long request, void *arg)
{
	switch (request) {
	case VHOST_SET_VRING_KICK:
	case VHOST_SET_VRING_CALL:
	case VHOST_SET_VRING_ERR:
		return &((struct vhost_vring_file *)arg)->fd;
	case VHOST_VDPA_SET_CONFIG_CALL:
		return (int *)arg;
	case VHOST_VDPA_SET_DEVICE_STATE_FD:
		return &((struct vhost_vdpa_device_state_fd *)arg)->fd;
	case VSIM_REQ_ADD_MEM:
		return &((struct vdpa_mem_arg *)arg)->fd;
	default:
		return NULL;
	}
}

/*
 * A simulator answers a control request in a few microseconds, less than
 * the cost of sleeping in recvmsg() and being woken on this VM: look for
 * the reply without blocking for a bounded while first (SPIN_NS), then
 * block. Bounded, so a slow answer costs at most that much CPU.
 */
#define SPIN_NS 50000

static void spin_for_reply(int fd)
{
	struct timespec t0, t;
	char c;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) >= 0 ||
		    errno != EAGAIN)
			return;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000000000L +
		    (t.tv_nsec - t0.tv_nsec) > SPIN_NS)
			return;
	}
}

static int sim_call(struct vdpa_dev *dev, unsigned long request, void *arg)
{
	uint8_t reply[VSIM_MAX_PAYLOAD];
	struct vsim_hdr h = { .request = (uint32_t)request };
	const void *out = NULL;
	size_t in_len = 0;
	int *fdp = fd_field(request, arg);
	int fd = -1, rfd = -1, err;
	uint8_t tmp[sizeof(struct vhost_vdpa_device_state_fd)];

	switch (request) {
	case VSIM_REQ_IOTLB_MSG:
		out = arg;
		h.size = sizeof(struct vhost_msg_v2);
		break;
	case VSIM_REQ_ADD_MEM:
		out = &((struct vdpa_mem_arg *)arg)->m;
		h.size = sizeof(struct vsim_mem);
		break;
	case VSIM_REQ_DEL_MEM:
		out = arg;
		h.size = sizeof(struct vsim_mem);
		break;
	case VHOST_VDPA_GET_CONFIG: {
		const struct vhost_vdpa_config *c = arg;

		out = arg;
		h.size = sizeof(*c);
		in_len = sizeof(*c) + c->len;
		break;
	}
	case VHOST_VDPA_SET_CONFIG: {
		const struct vhost_vdpa_config *c = arg;

		out = arg;
		h.size = (uint32_t)(sizeof(*c) + c->len);
		break;
	}
	default:
		if (_IOC_DIR(request) & _IOC_WRITE) {
			out = arg;
			h.size = _IOC_SIZE(request);
		}
		if (_IOC_DIR(request) & _IOC_READ)
			in_len = _IOC_SIZE(request);
		break;
	}
	if (h.size > VSIM_MAX_PAYLOAD || in_len > VSIM_MAX_PAYLOAD)
		return -EINVAL;
	if (fdp && *fdp >= 0) {
		/* the fd travels in SCM_RIGHTS; the field only says "bound" */
		fd = *fdp;
		h.flags |= VSIM_F_FD;
		if (request == VHOST_VDPA_SET_DEVICE_STATE_FD) {
			memcpy(tmp, arg, sizeof(tmp));
			((struct vhost_vdpa_device_state_fd *)tmp)->fd = 0;
			out = tmp;
		}
	}
	err = vsim_send(dev->fd, &h, out, fd);
	if (err < 0)
		return err == -EPIPE || err == -ECONNRESET ? -ENOTCONN : err;
	spin_for_reply(dev->fd);
	err = vsim_recv(dev->fd, &h, reply, sizeof(reply), &rfd);
	if (err < 0)
		return err == -ECONNRESET ? -ENOTCONN : err;
	if (!(h.flags & VSIM_F_REPLY) || h.request != (uint32_t)request) {
		vdpa_log(LOG_ERR, "%s: reply to %s does not match the request",
			 dev->name, vsim_request_name((uint32_t)request));
		err = -EPROTO;
		goto err_close_rfd;
	}
	if (h.result < 0) {
		err = h.result;
		goto err_close_rfd;
	}
	if (in_len) {
		/* a successful reply carries the whole out struct */
		if (h.size != in_len) {
			err = -EPROTO;
			goto err_close_rfd;
		}
		memcpy(arg, reply, in_len);
	}
	if (request == VHOST_VDPA_SET_DEVICE_STATE_FD) {
		((struct vhost_vdpa_device_state_fd *)arg)->fd = rfd;
		rfd = -1;
	}
	if (rfd >= 0)
		close(rfd);
	return h.result;

err_close_rfd:
	if (rfd >= 0)
		close(rfd);
	return err;
}

static void sim_close(struct vdpa_dev *dev)
{
	if (dev->fd >= 0)
		close(dev->fd);
	dev->fd = -1;
}

const struct transport_ops sim_transport = {
	.name = "sim",
	.call = sim_call,
	.close = sim_close,
};
