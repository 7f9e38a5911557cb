// SPDX-License-Identifier: MIT
/* vdpa-sim wire codec, shared by the library and the simulator. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/ioctl.h>
#include <linux/vhost.h>
#include <vdpa-user/uapi-ext.h>
#include <vdpa-user/wire.h>

#include "wire-cred.h"

_Static_assert(VSIM_REQ_GET_MODEL ==
	       _IOR(0x53, 0x05, struct vsim_model),
	       "VSIM_REQ_GET_MODEL is _IOR(0x53, 5, struct vsim_model)");

int vsim_sendv(int sock, const struct vsim_hdr *hdr, const struct iovec *iov,
	       int iovcnt, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec v[8];
	struct msghdr m = { 0 };
	size_t total = 0;
	ssize_t n;
	int i;

	if (iovcnt < 0 || iovcnt > 7)
		return -EINVAL;
	v[0].iov_base = (void *)hdr;
	v[0].iov_len = sizeof(*hdr);
	for (i = 0; i < iovcnt; i++) {
		v[i + 1] = iov[i];
		total += iov[i].iov_len;
	}
	if (total > VSIM_MAX_PAYLOAD || total != hdr->size)
		return -EMSGSIZE;
	m.msg_iov = v;
	m.msg_iovlen = (size_t)iovcnt + 1;
	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do {
		n = sendmsg(sock, &m, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != sizeof(*hdr) + total)
		return -EIO;
	return 0;
}

int vsim_send(int sock, const struct vsim_hdr *hdr, const void *payload,
	      int fd)
{
	struct iovec iov = { (void *)payload, hdr->size };

	return vsim_sendv(sock, hdr, &iov, hdr->size ? 1 : 0, fd);
}

static void close_cmsg_fds(struct msghdr *m)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		size_t i, nfd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < nfd; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			close(fd);
		}
	}
}

/*
 * Credentials are taken only for a caller that asks for them (ret_pid): to
 * vsim_recv() a control message other than SCM_RIGHTS is a bad message.
 */
int vsim_recv_cred(int sock, struct vsim_hdr *hdr, void *buf, size_t buf_size,
		   int *ret_fd, pid_t *ret_pid)
{
	union {
		/* room for more fds than allowed, so extras are seen and closed */
		char buf[CMSG_SPACE(sizeof(struct ucred)) +
			 CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} u;
	struct iovec v[2] = {
		{ hdr, sizeof(*hdr) },
		{ buf, buf_size < VSIM_MAX_PAYLOAD ? buf_size : VSIM_MAX_PAYLOAD },
	};
	struct msghdr m = { 0 };
	struct cmsghdr *c;
	struct ucred cr;
	int fd = -1, nfds = 0;
	pid_t pid = 0;
	ssize_t n;

	m.msg_iov = v;
	m.msg_iovlen = 2;
	m.msg_control = u.buf;
	m.msg_controllen = sizeof(u.buf);
	do {
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		goto err_bad;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (ret_pid && c->cmsg_level == SOL_SOCKET &&
		    c->cmsg_type == SCM_CREDENTIALS &&
		    c->cmsg_len == CMSG_LEN(sizeof(cr))) {
			memcpy(&cr, CMSG_DATA(c), sizeof(cr));
			pid = cr.pid;
			continue;
		}
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			goto err_bad;
		nfds += (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		if (nfds == 1)
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	}
	if ((size_t)n < sizeof(*hdr) || (size_t)n - sizeof(*hdr) != hdr->size)
		goto err_bad;
	if (nfds > (int)VSIM_MAX_FDS || (nfds == 1) != !!(hdr->flags & VSIM_F_FD))
		goto err_bad;
	*ret_fd = fd;
	if (ret_pid)
		*ret_pid = pid;
	return 0;

err_bad:
	close_cmsg_fds(&m);
	if (ret_pid)
		*ret_pid = pid;
	return -EBADMSG;
}

int vsim_recv(int sock, struct vsim_hdr *hdr, void *buf, size_t buf_size,
	      int *ret_fd)
{
	return vsim_recv_cred(sock, hdr, buf, buf_size, ret_fd, NULL);
}

int vsim_request_takes_fd(uint32_t request)
{
	switch (request) {
	case VHOST_SET_VRING_KICK:
	case VHOST_SET_VRING_CALL:
	case VHOST_SET_VRING_ERR:
	case VHOST_VDPA_SET_CONFIG_CALL:
	case VHOST_VDPA_SET_DEVICE_STATE_FD:
	case VSIM_REQ_ADD_MEM:
		return 1;
	default:
		return 0;
	}
}

const char *vsim_request_name(uint32_t request)
{
	switch (request) {
#define N(x) case x: return &(#x)[6]
	N(VHOST_GET_FEATURES);
	N(VHOST_SET_FEATURES);
	N(VHOST_SET_OWNER);
	N(VHOST_RESET_OWNER);
	N(VHOST_GET_BACKEND_FEATURES);
	N(VHOST_SET_BACKEND_FEATURES);
	N(VHOST_SET_VRING_NUM);
	N(VHOST_SET_VRING_ADDR);
	N(VHOST_SET_VRING_BASE);
	N(VHOST_GET_VRING_BASE);
	N(VHOST_SET_VRING_KICK);
	N(VHOST_SET_VRING_CALL);
	N(VHOST_SET_VRING_ERR);
	N(VHOST_SET_LOG_BASE);
	N(VHOST_VDPA_GET_DEVICE_ID);
	N(VHOST_VDPA_GET_STATUS);
	N(VHOST_VDPA_SET_STATUS);
	N(VHOST_VDPA_GET_CONFIG);
	N(VHOST_VDPA_SET_CONFIG);
	N(VHOST_VDPA_SET_VRING_ENABLE);
	N(VHOST_VDPA_GET_VRING_NUM);
	N(VHOST_VDPA_SET_CONFIG_CALL);
	N(VHOST_VDPA_GET_IOVA_RANGE);
	N(VHOST_VDPA_GET_CONFIG_SIZE);
	N(VHOST_VDPA_GET_AS_NUM);
	N(VHOST_VDPA_GET_VRING_GROUP);
	N(VHOST_VDPA_SET_GROUP_ASID);
	N(VHOST_VDPA_GET_VQS_COUNT);
	N(VHOST_VDPA_GET_GROUP_NUM);
	N(VHOST_VDPA_SUSPEND);
	N(VHOST_VDPA_RESUME);
	N(VHOST_VDPA_SET_DEVICE_STATE_FD);
	N(VHOST_VDPA_CHECK_DEVICE_STATE);
	N(VHOST_VDPA_GET_PRECOPY_INFO);
	N(VHOST_VDPA_PRECOPY_END);
#undef N
	case VSIM_REQ_HELLO: return "HELLO";
	case VSIM_REQ_IOTLB_MSG: return "IOTLB_MSG";
	case VSIM_REQ_ADD_MEM: return "ADD_MEM";
	case VSIM_REQ_DEL_MEM: return "DEL_MEM";
	case VSIM_REQ_GET_MODEL: return "GET_MODEL";
	default: return "UNKNOWN";
	}
}
