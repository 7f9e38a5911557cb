// SPDX-License-Identifier: MIT
/*
 * vhost-user framing: a 12-byte header, a payload of header.size bytes,
 * file descriptors as SCM_RIGHTS on the header. Everything is checked
 * before a handler sees it; fds that came with a bad message are closed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/vhost_types.h>

#include "serve.h"

static const char *const names[VU_MAX_REQUEST] = {
	[VU_GET_FEATURES] = "GET_FEATURES",
	[VU_SET_FEATURES] = "SET_FEATURES",
	[VU_SET_OWNER] = "SET_OWNER",
	[VU_RESET_OWNER] = "RESET_OWNER",
	[VU_SET_MEM_TABLE] = "SET_MEM_TABLE",
	[VU_SET_LOG_BASE] = "SET_LOG_BASE",
	[VU_SET_LOG_FD] = "SET_LOG_FD",
	[VU_SET_VRING_NUM] = "SET_VRING_NUM",
	[VU_SET_VRING_ADDR] = "SET_VRING_ADDR",
	[VU_SET_VRING_BASE] = "SET_VRING_BASE",
	[VU_GET_VRING_BASE] = "GET_VRING_BASE",
	[VU_SET_VRING_KICK] = "SET_VRING_KICK",
	[VU_SET_VRING_CALL] = "SET_VRING_CALL",
	[VU_SET_VRING_ERR] = "SET_VRING_ERR",
	[VU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
	[VU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
	[VU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
	[VU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
	[VU_GET_CONFIG] = "GET_CONFIG",
	[VU_SET_CONFIG] = "SET_CONFIG",
	[VU_RESET_DEVICE] = "RESET_DEVICE",
	[VU_SET_DEVICE_STATE_FD] = "SET_DEVICE_STATE_FD",
	[VU_CHECK_DEVICE_STATE] = "CHECK_DEVICE_STATE",
};

const char *vu_request_name(uint32_t req)
{
	return req < VU_MAX_REQUEST && names[req] ? names[req] : NULL;
}

void srv_msg_close_fds(struct srv_msg *m)
{
	unsigned int i;

	for (i = 0; i < m->nfds; i++)
		if (m->fds[i] >= 0)
			close(m->fds[i]);
	m->nfds = 0;
}

/* fds of one control message into m (at most VU_MAX_FDS kept, rest closed) */
static void take_fds(struct msghdr *mh, struct srv_msg *m, bool *extra)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n, i;
		int fd;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (m->nfds < VU_MAX_FDS) {
				m->fds[m->nfds++] = fd;
			} else {
				close(fd);
				*extra = true;
			}
		}
	}
}

/* Read exactly len bytes (fds arriving with them are taken, then refused). */
static int read_full(int fd, void *buf, size_t len, struct srv_msg *m,
		     bool *ctrunc, bool *extra)
{
	union {
		char buf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} cm;
	size_t got = 0;

	while (got < len) {
		struct iovec iov = { (char *)buf + got, len - got };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cm.buf, .msg_controllen = sizeof(cm.buf),
		};
		ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		take_fds(&mh, m, extra);
		if (mh.msg_flags & MSG_CTRUNC)
			*ctrunc = true;
		if (n == 0)
			return got ? -EPIPE : 0;
		got += (size_t)n;
	}
	return 1;
}

int srv_recv(int fd, struct srv_msg *m, char *err, size_t errlen)
{
	bool ctrunc = false, extra = false;
	unsigned int hdr_fds;
	int r;

	m->nfds = 0;
	r = read_full(fd, &m->hdr, sizeof(m->hdr), m, &ctrunc, &extra);
	if (r <= 0) {
		srv_msg_close_fds(m);
		if (r < 0)
			snprintf(err, errlen, "reading a header: %s",
				 strerror(-r));
		return r == 0 ? 0 : r;
	}
	hdr_fds = m->nfds;
	if (ctrunc || extra) {
		snprintf(err, errlen, "request %u: ancillary data truncated "
			 "(more than %u fds)", m->hdr.request, VU_MAX_FDS);
		srv_msg_close_fds(m);
		return -EPROTO;
	}
	if (m->hdr.size > VU_MAX_PAYLOAD) {
		snprintf(err, errlen, "request %u: size %u above the %u-byte "
			 "limit", m->hdr.request, m->hdr.size, VU_MAX_PAYLOAD);
		srv_msg_close_fds(m);
		return -EPROTO;
	}
	if (m->hdr.size) {
		r = read_full(fd, m->payload, m->hdr.size, m, &ctrunc, &extra);
		if (r <= 0) {
			snprintf(err, errlen, "request %u: payload of %u bytes "
				 "cut short", m->hdr.request, m->hdr.size);
			srv_msg_close_fds(m);
			return -EPROTO;
		}
	}
	if (m->nfds != hdr_fds || ctrunc || extra) {
		snprintf(err, errlen, "request %u: file descriptors with the "
			 "payload, not the header", m->hdr.request);
		srv_msg_close_fds(m);
		return -EPROTO;
	}
	if ((m->hdr.flags & VU_VERSION_MASK) != VU_VERSION) {
		snprintf(err, errlen, "request %u: version %u, not %u",
			 m->hdr.request, m->hdr.flags & VU_VERSION_MASK,
			 VU_VERSION);
		srv_msg_close_fds(m);
		return -EPROTO;
	}
	if (m->hdr.flags & VU_FLAG_REPLY) {
		snprintf(err, errlen, "request %u: reply flag set on a request",
			 m->hdr.request);
		srv_msg_close_fds(m);
		return -EPROTO;
	}
	if (m->hdr.flags & ~(VU_VERSION_MASK | VU_FLAG_NEED_REPLY)) {
		snprintf(err, errlen, "request %u: unknown flags 0x%x",
			 m->hdr.request, m->hdr.flags);
		srv_msg_close_fds(m);
		return -EPROTO;
	}
	return 1;
}

int srv_send(int fd, uint32_t request, const void *payload, uint32_t size,
	     int send_fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	struct vu_hdr h = {
		.request = request,
		.flags = VU_VERSION | VU_FLAG_REPLY,
		.size = size,
	};
	struct iovec iov[2] = {
		{ &h, sizeof(h) }, { (void *)payload, size },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
	ssize_t n;

	if (send_fd >= 0) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &send_fd, sizeof(int));
	}
	do {
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* a stream socket may take part of it: a reply is small, retry */
	if ((size_t)n != sizeof(h) + size)
		return -EIO;
	return 0;
}

/* Fixed payload size of a request, or -1 for a variable one. */
static int fixed_size(uint32_t req)
{
	switch (req) {
	case VU_GET_FEATURES:
	case VU_SET_OWNER:
	case VU_RESET_OWNER:
	case VU_GET_PROTOCOL_FEATURES:
	case VU_GET_QUEUE_NUM:
	case VU_RESET_DEVICE:
	case VU_CHECK_DEVICE_STATE:
	case VU_SET_LOG_FD:
		return 0;
	case VU_SET_FEATURES:
	case VU_SET_PROTOCOL_FEATURES:
	case VU_SET_VRING_KICK:
	case VU_SET_VRING_CALL:
	case VU_SET_VRING_ERR:
		return 8;
	case VU_SET_VRING_NUM:
	case VU_SET_VRING_BASE:
	case VU_GET_VRING_BASE:
	case VU_SET_VRING_ENABLE:
		return (int)sizeof(struct vhost_vring_state);
	case VU_SET_VRING_ADDR:
		return (int)sizeof(struct vhost_vring_addr);
	case VU_SET_LOG_BASE:
		return (int)sizeof(struct vu_log);
	case VU_SET_DEVICE_STATE_FD:
		return (int)sizeof(struct vu_state_fd);
	default:
		return -1;
	}
}

/* fds a request must carry */
static unsigned int want_fds(const struct srv_msg *m)
{
	uint64_t u;

	switch (m->hdr.request) {
	case VU_SET_MEM_TABLE: {
		struct vu_mem_hdr mh;

		memcpy(&mh, m->payload, sizeof(mh));
		return mh.nregions;
	}
	case VU_SET_LOG_BASE:
	case VU_SET_LOG_FD:
	case VU_SET_DEVICE_STATE_FD:
		return 1;
	case VU_SET_VRING_KICK:
	case VU_SET_VRING_CALL:
	case VU_SET_VRING_ERR:
		memcpy(&u, m->payload, sizeof(u));
		return u & VU_VRING_NOFD ? 0 : 1;
	default:
		return 0;
	}
}

int srv_check_shape(const struct srv_msg *m, char *err, size_t errlen)
{
	const char *name = vu_request_name(m->hdr.request);
	int want = fixed_size(m->hdr.request);
	unsigned int nfds;

	if (!name)
		return 0;	/* unknown: the handler answers it */
	if (want >= 0 && m->hdr.size != (uint32_t)want) {
		snprintf(err, errlen, "%s: payload of %u bytes, expected %d",
			 name, m->hdr.size, want);
		return -EPROTO;
	}
	if (m->hdr.request == VU_SET_MEM_TABLE) {
		struct vu_mem_hdr mh;

		if (m->hdr.size < sizeof(mh)) {
			snprintf(err, errlen, "SET_MEM_TABLE: payload of %u "
				 "bytes, shorter than its header",
				 m->hdr.size);
			return -EPROTO;
		}
		memcpy(&mh, m->payload, sizeof(mh));
		if (mh.nregions > VU_MAX_REGIONS ||
		    m->hdr.size != sizeof(mh) +
		    mh.nregions * sizeof(struct vu_region)) {
			snprintf(err, errlen, "SET_MEM_TABLE: %u regions do not "
				 "fit a payload of %u bytes (at most %u "
				 "regions)", mh.nregions, m->hdr.size,
				 VU_MAX_REGIONS);
			return -EPROTO;
		}
	}
	if (m->hdr.request == VU_GET_CONFIG ||
	    m->hdr.request == VU_SET_CONFIG) {
		struct vu_config_hdr ch;

		if (m->hdr.size < sizeof(ch)) {
			snprintf(err, errlen, "%s: payload of %u bytes, shorter "
				 "than its header", name, m->hdr.size);
			return -EPROTO;
		}
		memcpy(&ch, m->payload, sizeof(ch));
		if (ch.size > VU_MAX_CONFIG ||
		    m->hdr.size != sizeof(ch) + ch.size) {
			snprintf(err, errlen, "%s: config size %u does not match "
				 "a payload of %u bytes (at most %u)", name,
				 ch.size, m->hdr.size, VU_MAX_CONFIG);
			return -EPROTO;
		}
	}
	nfds = want_fds(m);
	if (m->nfds != nfds) {
		snprintf(err, errlen, "%s: %u file descriptors, expected %u",
			 name, m->nfds, nfds);
		return -EPROTO;
	}
	return 0;
}
