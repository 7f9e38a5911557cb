/* SPDX-License-Identifier: MIT */
/*
 * vdpa-sim wire protocol: how a vhost-vdpa device is driven over a unix
 * SOCK_SEQPACKET socket. One connection is one open of /dev/vhost-vdpa-N.
 * Full description: docs/wire-protocol.md.
 *
 * Every message is one datagram: struct vsim_hdr followed by hdr.size payload
 * bytes, with at most VSIM_MAX_FDS file descriptors in SCM_RIGHTS ancillary
 * data (and VSIM_F_FD set exactly when an fd is attached). Requests are
 * strictly synchronous: the driver sends one request and waits for its reply.
 *
 * request is either a vhost / vhost-vdpa ioctl request code (same numbers,
 * same structs, same errno values as Linux drivers/vhost/vdpa.c) or one of the
 * VSIM_REQ_* pseudo requests below (type byte 0x53, never a vhost ioctl).
 *
 * Payloads of ioctl requests:
 *   _IOC_WRITE (incl. _IOWR): the request carries _IOC_SIZE(request) bytes.
 *   _IOC_READ  (incl. _IOWR): a successful reply carries _IOC_SIZE(request).
 *   VHOST_VDPA_GET_CONFIG: request {off,len}; reply {off,len,buf[len]}.
 *   VHOST_VDPA_SET_CONFIG: request {off,len,buf[len]}; reply empty.
 *   Requests whose struct holds an fd (VHOST_SET_VRING_KICK/CALL,
 *   VHOST_VDPA_SET_CONFIG_CALL, VHOST_VDPA_SET_DEVICE_STATE_FD): the fd
 *   travels in SCM_RIGHTS; the struct's fd field is -1 for "unbind" (no fd
 *   attached) and otherwise ignored. A SET_DEVICE_STATE_FD reply may attach
 *   the device's own fd (then the reply's fd field is 0, else -1).
 * Replies: flags has VSIM_F_REPLY, request echoes the request, result is the
 * ioctl's return value (>= 0) or -errno.
 */
#ifndef VDPA_USER_WIRE_H
#define VDPA_USER_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VSIM_WIRE_MAGIC		0x41504456u	/* "VDPA" little endian */
#define VSIM_WIRE_VERSION	1u
#define VSIM_MAX_PAYLOAD	4096u
#define VSIM_MAX_FDS		1u
#define VSIM_MSG_MAX		(sizeof(struct vsim_hdr) + VSIM_MAX_PAYLOAD)

#define VSIM_F_REPLY		(1u << 0)
#define VSIM_F_FD		(1u << 1)

/* Pseudo requests (not ioctls). */
#define VSIM_REQ_HELLO		0x00005301u	/* struct vsim_hello both ways */
#define VSIM_REQ_IOTLB_MSG	0x00005302u	/* struct vhost_msg_v2, as write() */
#define VSIM_REQ_ADD_MEM	0x00005303u	/* struct vsim_mem + memfd */
#define VSIM_REQ_DEL_MEM	0x00005304u	/* struct vsim_mem, no fd */
/*
 * The device's model URI (struct vsim_model in the reply, no request
 * payload): _IOR(0x53, 0x05, struct vsim_model), so a client sizes the
 * reply as for any _IOC_READ request. Added after version 1 without a
 * version bump: a simulator that predates it answers -ENOTTY (unknown
 * request), and a client then knows nothing more than the class.
 */
#define VSIM_REQ_GET_MODEL	0x80805305u

struct vsim_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;		/* payload bytes following the header */
	int32_t result;		/* replies: >= 0 or -errno; requests: 0 */
};

/*
 * First message on a connection. Request: magic, version, 0, 0.
 * Reply: magic, version, device id (VIRTIO_ID_NET/BLOCK), 0.
 * A device that is already open answers -EBUSY (like the kernel's open()).
 */
struct vsim_hello {
	uint32_t magic;
	uint32_t version;
	uint32_t device_id;
	uint32_t reserved;
};

/*
 * Reply of VSIM_REQ_GET_MODEL: a NUL-terminated URI naming what a migration
 * must find identical on both sides: "vdpa-sim://net", or for blk
 * "vdpa-sim://blk?disk=ID" where ID names the disk's storage
 * ("DEV:INO" of the --backing file, "ram-<16 hex digits>" for a RAM disk,
 * unique to that simulator). Two simulators share a disk exactly when
 * their URIs are equal.
 */
#define VSIM_MODEL_MAX		128u
struct vsim_model {
	char uri[VSIM_MODEL_MAX];
};

/*
 * Driver memory: [uaddr, uaddr+size) of the driver's address space is backed
 * by the attached fd at offset. IOTLB v2 UPDATE messages name uaddr values
 * inside registered regions, exactly as the kernel path names the driver's
 * virtual addresses. Regions must not overlap; at most 64 are registered.
 */
struct vsim_mem {
	uint64_t uaddr;
	uint64_t size;
	uint64_t offset;
};

/* Codec, shared by the library and the simulator (common/wire.c). */

/*
 * Send one message. fd < 0 means none. Returns 0 or -errno (EMSGSIZE when the
 * payload is larger than VSIM_MAX_PAYLOAD). Never raises SIGPIPE.
 */
int vsim_send(int sock, const struct vsim_hdr *hdr, const void *payload,
	      int fd);
int vsim_sendv(int sock, const struct vsim_hdr *hdr, const struct iovec *iov,
	       int iovcnt, int fd);

/*
 * Receive one message into hdr and buf (buf_size >= VSIM_MAX_PAYLOAD).
 * Fds arrive CLOEXEC. On success *ret_fd is the attached fd or -1.
 * Errors (no fd left open on any error):
 *   -ECONNRESET  peer closed
 *   -EBADMSG     short header, size field not matching the datagram,
 *                truncated datagram or control data, VSIM_F_FD not matching
 *                the attached fds, more than VSIM_MAX_FDS fds
 *   other        recvmsg errno
 */
int vsim_recv(int sock, struct vsim_hdr *hdr, void *buf, size_t buf_size,
	      int *ret_fd);

/* True when request is one whose payload struct carries an fd. */
int vsim_request_takes_fd(uint32_t request);

/* Human-readable name of a request code, for logs ("SET_VRING_BASE"). */
const char *vsim_request_name(uint32_t request);

#ifdef __cplusplus
}
#endif

#endif
