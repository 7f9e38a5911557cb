// SPDX-License-Identifier: MIT
/*
 * sim-wire: the wire codec (common/wire.c) and the simulator's server side
 * of the protocol: hello, busy second connection, malformed messages with
 * exact errors and no fd leaks, control ABI errno values.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <vdpa-user/uapi-ext.h>
#include <vdpa-user/wire.h>

#include "sim.h"
#include "tap.h"

static int call(int sock, uint32_t request, const void *in, uint32_t len,
		void *out, uint32_t out_len, int fd)
{
	struct vsim_hdr h = { .request = request, .size = len };
	uint8_t buf[VSIM_MAX_PAYLOAD];
	int rfd = -1, r;

	if (fd >= 0)
		h.flags |= VSIM_F_FD;
	r = vsim_send(sock, &h, in, fd);
	if (r < 0)
		return r;
	r = vsim_recv(sock, &h, buf, sizeof(buf), &rfd);
	if (r < 0)
		return r;
	if (rfd >= 0)
		close(rfd);
	if (out && h.result >= 0)
		memcpy(out, buf, h.size < out_len ? h.size : out_len);
	return h.result;
}

static int hello(int sock, uint32_t *ret_id)
{
	struct vsim_hello hl = { VSIM_WIRE_MAGIC, VSIM_WIRE_VERSION, 0, 0 };
	int r = call(sock, VSIM_REQ_HELLO, &hl, sizeof(hl), &hl, sizeof(hl), -1);

	if (r == 0 && ret_id)
		*ret_id = hl.device_id;
	return r;
}

/* Send raw bytes + optional fds, then read the reply header's result. */
static int raw(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * 2)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct vsim_hdr h;
	uint8_t pl[VSIM_MAX_PAYLOAD];
	int rfd = -1, r;

	if (nfds) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		m.msg_control = u.b;
		m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	if (sendmsg(sock, &m, MSG_NOSIGNAL) < 0)
		return -errno;
	r = vsim_recv(sock, &h, pl, sizeof(pl), &rfd);
	if (rfd >= 0)
		close(rfd);
	return r < 0 ? r : h.result;
}

/* ---- codec ------------------------------------------------------------------- */

static void test_codec(void)
{
	int sv[2], fds0 = tap_count_fds(), fd, efd;
	struct vsim_hdr h = { .request = 42, .size = 5 }, g;
	uint8_t buf[VSIM_MAX_PAYLOAD], big[VSIM_MAX_PAYLOAD + 1];
	int fdpair[2];

	socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
	tap_is(vsim_send(sv[0], &h, "hello", -1), 0, "codec: send");
	tap_is(vsim_recv(sv[1], &g, buf, sizeof(buf), &fd), 0, "codec: recv");
	tap_ok(g.request == 42 && g.size == 5 && fd == -1 &&
	       memcmp(buf, "hello", 5) == 0, "codec: round trip");
	efd = eventfd(0, EFD_CLOEXEC);
	h.flags = VSIM_F_FD;
	vsim_send(sv[0], &h, "hello", efd);
	tap_is(vsim_recv(sv[1], &g, buf, sizeof(buf), &fd), 0, "codec: fd recv");
	tap_ok(fd >= 0 && fd != efd && (fcntl(fd, F_GETFD) & FD_CLOEXEC),
	       "codec: fd arrives CLOEXEC");
	if (fd >= 0)
		close(fd);
	h.flags = 0;
	h.size = sizeof(big);
	tap_is(vsim_send(sv[0], &h, big, -1), -EMSGSIZE, "codec: oversize EMSGSIZE");
	h.size = 3;
	tap_is(vsim_send(sv[0], &h, "abcd", -1) == 0 ? 0 : -1, 0,
	       "codec: send with size field");
	vsim_recv(sv[1], &g, buf, sizeof(buf), &fd);
	/* short header */
	tap_is(send(sv[0], "abc", 3, 0), 3, "codec: raw short");
	tap_is(vsim_recv(sv[1], &g, buf, sizeof(buf), &fd), -EBADMSG,
	       "codec: short header -> EBADMSG");
	/* size field mismatch */
	h.size = 10;
	send(sv[0], &h, sizeof(h), 0);
	tap_is(vsim_recv(sv[1], &g, buf, sizeof(buf), &fd), -EBADMSG,
	       "codec: size mismatch -> EBADMSG");
	/* fd without the flag, and two fds: closed by the codec */
	{
		int two[2] = { efd, efd };
		struct msghdr m = { 0 };
		union {
			char b[CMSG_SPACE(sizeof(int) * 2)];
			struct cmsghdr a;
		} u;
		struct iovec iov;
		struct cmsghdr *c;
		int before;

		h.size = 0;
		h.flags = 0;
		iov.iov_base = &h;
		iov.iov_len = sizeof(h);
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = u.b;
		m.msg_controllen = sizeof(u.b);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(two));
		memcpy(CMSG_DATA(c), two, sizeof(two));
		before = tap_count_fds();
		sendmsg(sv[0], &m, 0);
		tap_is(vsim_recv(sv[1], &g, buf, sizeof(buf), &fd), -EBADMSG,
		       "codec: two fds -> EBADMSG");
		tap_is(tap_count_fds(), before, "codec: both fds closed");
		m.msg_controllen = CMSG_SPACE(sizeof(int));
		c->cmsg_len = CMSG_LEN(sizeof(int));
		sendmsg(sv[0], &m, 0);
		tap_is(vsim_recv(sv[1], &g, buf, sizeof(buf), &fd), -EBADMSG,
		       "codec: fd without VSIM_F_FD -> EBADMSG");
		tap_is(tap_count_fds(), before, "codec: fd closed");
	}
	h.flags = VSIM_F_FD;
	send(sv[0], &h, sizeof(h), 0);
	tap_is(vsim_recv(sv[1], &g, buf, sizeof(buf), &fd), -EBADMSG,
	       "codec: VSIM_F_FD without fd -> EBADMSG");
	tap_ok(vsim_request_takes_fd(VHOST_SET_VRING_KICK) &&
	       vsim_request_takes_fd(VSIM_REQ_ADD_MEM) &&
	       !vsim_request_takes_fd(VHOST_GET_FEATURES),
	       "codec: request_takes_fd");
	tap_ok(strcmp(vsim_request_name(VHOST_SET_VRING_BASE),
		      "SET_VRING_BASE") == 0 &&
	       strcmp(vsim_request_name(VSIM_REQ_HELLO), "HELLO") == 0,
	       "codec: request names");
	close(sv[0]);
	tap_is(vsim_recv(sv[1], &g, buf, sizeof(buf), &fd), -ECONNRESET,
	       "codec: peer closed -> ECONNRESET");
	close(sv[1]);
	close(efd);
	(void)fdpair;
	tap_is(tap_count_fds(), fds0, "codec: no fd leaked");
}

/* ---- server: listening socket --------------------------------------------- */

static void *run_thread(void *arg)
{
	vsim_run(arg);
	return NULL;
}

static int connect_to(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	strcpy(a.sun_path, path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

static void test_listen(void)
{
	char path[64];
	struct vsim_opts o;
	struct vsim *sim;
	pthread_t th;
	struct stat st;
	uint32_t id = 0;
	uint8_t status = 0xff;
	int fds0 = tap_count_fds(), a, b;
	struct vsim_hdr h;
	uint8_t buf[VSIM_MAX_PAYLOAD];
	int fd;

	snprintf(path, sizeof(path), "/tmp/vsim-wire-%d.sock", (int)getpid());
	vsim_opts_init(&o, VSIM_TYPE_BLK);
	if (!tap_ok(vsim_create(&o, &sim) == 0 && vsim_listen(sim, path) == 0,
		    "listen: create + listen"))
		return;
	tap_ok(stat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	       (st.st_mode & 0777) == 0600, "listen: socket mode 0600");
	pthread_create(&th, NULL, run_thread, sim);
	a = connect_to(path);
	tap_is(hello(a, &id), 0, "listen: HELLO");
	tap_is(id, VIRTIO_ID_BLOCK, "listen: device id blk");
	b = connect_to(path);
	tap_is(hello(b, NULL), -EBUSY, "listen: second connection -> EBUSY");
	tap_is(vsim_recv(b, &h, buf, sizeof(buf), &fd), -ECONNRESET,
	       "listen: second connection closed");
	close(b);
	call(a, VHOST_SET_OWNER, NULL, 0, NULL, 0, -1);
	status = VIRTIO_CONFIG_S_ACKNOWLEDGE;
	tap_is(call(a, VHOST_VDPA_SET_STATUS, &status, 1, NULL, 0, -1), 0,
	       "listen: set status");
	close(a);	/* close == reset */
	a = connect_to(path);
	tap_is(hello(a, NULL), 0, "listen: reconnect after close");
	status = 0xff;
	tap_ok(call(a, VHOST_VDPA_GET_STATUS, NULL, 0, &status, 1, -1) == 0 &&
	       status == 0, "listen: close reset the device (status 0x%02x)",
	       status);
	tap_is(call(a, VHOST_SET_OWNER, NULL, 0, NULL, 0, -1), 0,
	       "listen: owner released on close");
	close(a);
	vsim_stop(sim);
	pthread_join(th, NULL);
	vsim_destroy(sim);
	tap_ok(stat(path, &st) < 0, "listen: socket unlinked on destroy");
	tap_is(tap_count_fds(), fds0, "listen: no fd leaked");
}

/* ---- server: thread mode, malformed messages, control ABI ------------------ */

static int start(struct vsim_opts *o, struct vsim_thread **t)
{
	int sock;

	if (vsim_thread_start(o, &sock, t) < 0)
		return -1;
	return sock;
}

static void test_malformed(void)
{
	struct vsim_opts o;
	struct vsim_thread *t;
	int fds0 = tap_count_fds(), s, efd, before;
	uint8_t big[VSIM_MAX_PAYLOAD + 64];
	struct vsim_hdr h = { 0 };
	uint64_t f;

	vsim_opts_init(&o, VSIM_TYPE_NET);
	s = start(&o, &t);
	if (!tap_ok(s >= 0, "malformed: thread mode start"))
		return;
	tap_is(call(s, VHOST_GET_FEATURES, NULL, 0, &f, 8, -1), -EPROTO,
	       "request before HELLO -> EPROTO");
	{
		struct vsim_hello hl = { 0x1234, 1, 0, 0 };

		tap_is(call(s, VSIM_REQ_HELLO, &hl, sizeof(hl), NULL, 0, -1),
		       -EPROTO, "HELLO bad magic -> EPROTO");
		hl.magic = VSIM_WIRE_MAGIC;
		hl.version = 99;
		tap_is(call(s, VSIM_REQ_HELLO, &hl, sizeof(hl), NULL, 0, -1),
		       -EPROTONOSUPPORT, "HELLO bad version -> EPROTONOSUPPORT");
	}
	tap_is(hello(s, NULL), 0, "HELLO");
	tap_is(hello(s, NULL), -EPROTO, "second HELLO -> EPROTO");
	tap_is(raw(s, "abcdefgh", 8, NULL, 0), -EBADMSG,
	       "short header -> EBADMSG");
	h.request = VHOST_GET_FEATURES;
	h.size = 8;
	tap_is(raw(s, &h, sizeof(h), NULL, 0), -EBADMSG,
	       "size field mismatch -> EBADMSG");
	memset(big, 0, sizeof(big));
	h.size = VSIM_MAX_PAYLOAD + 64 - sizeof(h);
	memcpy(big, &h, sizeof(h));
	tap_is(raw(s, big, sizeof(big), NULL, 0), -EBADMSG,
	       "oversize datagram -> EBADMSG");
	h.request = 0xAF99;
	h.size = 0;
	tap_is(raw(s, &h, sizeof(h), NULL, 0), -ENOTTY,
	       "unknown request -> ENOTTY");
	h.request = VHOST_GET_FEATURES;
	h.size = 4;
	memcpy(big, &h, sizeof(h));
	tap_is(raw(s, big, sizeof(h) + 4, NULL, 0), -EBADMSG,
	       "payload size wrong for request -> EBADMSG");
	efd = eventfd(0, EFD_CLOEXEC);
	before = tap_count_fds();
	h.size = 0;
	h.flags = VSIM_F_FD;
	tap_is(raw(s, &h, sizeof(h), &efd, 1), -EBADMSG,
	       "fd on a request that takes none -> EBADMSG");
	{
		int two[2] = { efd, efd };

		tap_is(raw(s, &h, sizeof(h), two, 2), -EBADMSG,
		       "two fds -> EBADMSG");
	}
	tap_is(tap_count_fds(), before, "sim closed the fds it received");
	h.flags = 0;
	tap_is(call(s, VHOST_GET_FEATURES, NULL, 0, &f, 8, -1), 0,
	       "connection survives malformed messages");
	if (!tap_ok(!!(f & (1ULL << VIRTIO_F_ACCESS_PLATFORM)), "features offered"))
		tap_diag("features 0x%llx", (unsigned long long)f);
	/* owner rules */
	{
		struct vhost_vring_state vs = { 0, 64 };
		struct vhost_vring_file vf = { 0, 5 };
		struct vsim_mem m = { 0x10000, 4096, 0 };

		tap_is(call(s, VHOST_SET_VRING_NUM, &vs, sizeof(vs), NULL, 0, -1),
		       -EPERM, "vring request without owner -> EPERM");
		tap_is(call(s, VHOST_SET_OWNER, NULL, 0, NULL, 0, -1), 0,
		       "SET_OWNER");
		tap_is(call(s, VHOST_SET_OWNER, NULL, 0, NULL, 0, -1), -EBUSY,
		       "SET_OWNER twice -> EBUSY");
		vs.index = 3;
		tap_is(call(s, VHOST_SET_VRING_NUM, &vs, sizeof(vs), NULL, 0, -1),
		       -ENOBUFS, "vring index past queue count -> ENOBUFS");
		vs.index = 0;
		vs.num = 3;
		tap_is(call(s, VHOST_SET_VRING_NUM, &vs, sizeof(vs), NULL, 0, -1),
		       -EINVAL, "SET_VRING_NUM not power of 2 -> EINVAL");
		vs.num = 0x10000;
		tap_is(call(s, VHOST_SET_VRING_BASE, &vs, sizeof(vs), NULL, 0, -1),
		       -EINVAL, "SET_VRING_BASE > 0xffff -> EINVAL");
		tap_is(call(s, VHOST_SET_VRING_KICK, &vf, sizeof(vf), NULL, 0, -1),
		       -EBADF, "SET_VRING_KICK fd field without fd -> EBADF");
		{
			int p[2];

			pipe2(p, O_CLOEXEC);
			tap_is(call(s, VHOST_SET_VRING_CALL, &vf, sizeof(vf), NULL,
				    0, p[0]), -EINVAL,
			       "SET_VRING_CALL with a non-eventfd -> EINVAL");
			close(p[0]);
			close(p[1]);
		}
		vf.fd = -1;
		tap_is(call(s, VHOST_SET_VRING_KICK, &vf, sizeof(vf), NULL, 0, -1),
		       0, "SET_VRING_KICK unbind");
		tap_is(call(s, VSIM_REQ_ADD_MEM, &m, sizeof(m), NULL, 0, -1),
		       -EBADF, "ADD_MEM without fd -> EBADF");
		tap_is(tap_count_fds(), before, "no fd kept by failed requests");
	}
	close(efd);
	close(s);
	vsim_thread_stop(t);
	tap_is(tap_count_fds(), fds0, "malformed: no fd leaked");
}

static int iotlb(int s, uint8_t type, uint64_t iova, uint64_t size,
		 uint64_t uaddr, uint8_t perm)
{
	struct vhost_msg_v2 m = { .type = VHOST_IOTLB_MSG_V2 };

	m.iotlb.type = type;
	m.iotlb.iova = iova;
	m.iotlb.size = size;
	m.iotlb.uaddr = uaddr;
	m.iotlb.perm = perm;
	return call(s, VSIM_REQ_IOTLB_MSG, &m, sizeof(m), NULL, 0, -1);
}

static void test_mem_iotlb(void)
{
	struct vsim_opts o;
	struct vsim_thread *t;
	int fds0 = tap_count_fds(), s, mfd, i, r = 0;
	struct vsim_mem m;
	struct vsim_status st;
	const int msz = sizeof(struct vhost_msg_v2);

	vsim_opts_init(&o, VSIM_TYPE_NET);
	o.iova_first = 0x1000;
	o.iova_last = 0xffffffff;
	s = start(&o, &t);
	if (!tap_ok(s >= 0 && hello(s, NULL) == 0 &&
		    call(s, VHOST_SET_OWNER, NULL, 0, NULL, 0, -1) == 0,
		    "mem: setup"))
		return;
	mfd = memfd_create("m", MFD_CLOEXEC);
	ftruncate(mfd, 1 << 20);
	m = (struct vsim_mem){ 0x100000, 0, 0 };
	tap_is(call(s, VSIM_REQ_ADD_MEM, &m, sizeof(m), NULL, 0, mfd), -EINVAL,
	       "ADD_MEM size 0 -> EINVAL");
	m.size = 2 << 20;
	tap_is(call(s, VSIM_REQ_ADD_MEM, &m, sizeof(m), NULL, 0, mfd), -EINVAL,
	       "ADD_MEM past the end of the file -> EINVAL");
	m.size = 64 << 10;
	m.uaddr = UINT64_MAX - 4095;
	tap_is(call(s, VSIM_REQ_ADD_MEM, &m, sizeof(m), NULL, 0, mfd), -EINVAL,
	       "ADD_MEM address wraps -> EINVAL");
	m.uaddr = 0x100000;
	tap_is(call(s, VSIM_REQ_ADD_MEM, &m, sizeof(m), NULL, 0, mfd), 0,
	       "ADD_MEM");
	m.uaddr = 0x108000;
	tap_is(call(s, VSIM_REQ_ADD_MEM, &m, sizeof(m), NULL, 0, mfd), -EEXIST,
	       "ADD_MEM overlapping -> EEXIST");
	for (i = 1; i < 64 && r == 0; i++) {
		m.uaddr = 0x100000 + (uint64_t)i * 0x10000;
		r = call(s, VSIM_REQ_ADD_MEM, &m, sizeof(m), NULL, 0, mfd);
	}
	tap_is(r, 0, "64 regions");
	m.uaddr = 0x10000000;
	tap_is(call(s, VSIM_REQ_ADD_MEM, &m, sizeof(m), NULL, 0, mfd), -ENOSPC,
	       "65th region -> ENOSPC");
	tap_is(iotlb(s, VHOST_IOTLB_INVALIDATE, 0x2000, 0x1000, 0, 0), -EFAULT,
	       "INVALIDATE before any UPDATE: no address space -> EFAULT");
	tap_is(iotlb(s, VHOST_IOTLB_UPDATE, 0x2000, 0x1000, 0x100000, 3), msz,
	       "IOTLB UPDATE returns sizeof(msg)");
	tap_is(iotlb(s, VHOST_IOTLB_UPDATE, 0x2800, 0x1000, 0x100000, 3), -EFAULT,
	       "IOTLB overlapping UPDATE -> EFAULT (as Linux write())");
	tap_is(iotlb(s, VHOST_IOTLB_UPDATE, 0x0, 0x1000, 0x100000, 3), -EFAULT,
	       "IOTLB below the IOVA range -> EFAULT");
	tap_is(iotlb(s, VHOST_IOTLB_UPDATE, 0xfffff000, 0x2000, 0x100000, 3),
	       -EFAULT, "IOTLB past the IOVA range -> EFAULT");
	tap_is(iotlb(s, VHOST_IOTLB_UPDATE, 0x8000, 0, 0x100000, 3), -EINVAL,
	       "IOTLB size 0 -> EINVAL (refused before the handler, as Linux)");
	tap_is(iotlb(s, VHOST_IOTLB_UPDATE, 0x8000, 0x1000, 0x100000, 0), -EFAULT,
	       "IOTLB perm 0 -> EFAULT");
	tap_is(iotlb(s, VHOST_IOTLB_UPDATE, 0x8000, 0x1000, 0x20000000, 3),
	       -EFAULT, "IOTLB uaddr outside any region -> EFAULT");
	tap_is(iotlb(s, 77, 0x8000, 0x1000, 0x100000, 3), -EFAULT,
	       "IOTLB unknown type -> EFAULT");
	vsim_get_status(vsim_thread_sim(t), &st);
	tap_is(st.iotlb_entries, 1, "refused UPDATEs added no mapping");
	tap_is(iotlb(s, VHOST_IOTLB_BATCH_BEGIN, 0, 0, 0, 0), msz, "BATCH_BEGIN");
	tap_is(iotlb(s, VHOST_IOTLB_UPDATE, 0x3000, 0x1000, 0x101000, 1), msz,
	       "UPDATE in batch");
	tap_is(iotlb(s, VHOST_IOTLB_BATCH_END, 0, 0, 0, 0), msz, "BATCH_END");
	m = (struct vsim_mem){ 0x100000, 64 << 10, 0 };
	tap_is(call(s, VSIM_REQ_DEL_MEM, &m, sizeof(m), NULL, 0, -1), -EBUSY,
	       "DEL_MEM of a mapped region -> EBUSY");
	tap_is(iotlb(s, VHOST_IOTLB_INVALIDATE, 0x2000, 0x2000, 0, 0), msz,
	       "INVALIDATE");
	vsim_get_status(vsim_thread_sim(t), &st);
	tap_is(st.iotlb_entries, 0, "INVALIDATE removed both mappings");
	tap_is(call(s, VSIM_REQ_DEL_MEM, &m, sizeof(m), NULL, 0, -1), 0,
	       "DEL_MEM");
	tap_is(call(s, VSIM_REQ_DEL_MEM, &m, sizeof(m), NULL, 0, -1), -ENOENT,
	       "DEL_MEM unknown -> ENOENT");
	close(mfd);
	close(s);
	vsim_thread_stop(t);
	tap_is(tap_count_fds(), fds0, "mem: regions unmapped, no fd leaked");
}

static void test_control(void)
{
	struct vsim_opts o;
	struct vsim_thread *t;
	int s;
	uint64_t f = 0, bf = 0;
	uint8_t st, cfg[64];
	struct vhost_vdpa_config *c = (void *)cfg;
	uint32_t u32;
	uint16_t u16;
	struct vhost_vdpa_iova_range range;

	vsim_opts_init(&o, VSIM_TYPE_NET);
	o.no_resume = true;
	o.no_state = true;
	o.no_suspend = true;
	s = start(&o, &t);
	if (!tap_ok(s >= 0 && hello(s, NULL) == 0 &&
		    call(s, VHOST_SET_OWNER, NULL, 0, NULL, 0, -1) == 0,
		    "control: setup"))
		return;
	tap_ok(call(s, VHOST_GET_BACKEND_FEATURES, NULL, 0, &bf, 8, -1) == 0 &&
	       bf == ((1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2) |
		      (1ULL << VHOST_BACKEND_F_IOTLB_BATCH) |
		      (1ULL << VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK)),
	       "backend features minus switched-off ones (0x%llx)",
	       (unsigned long long)bf);
	bf |= 1ULL << VHOST_BACKEND_F_SUSPEND;
	tap_is(call(s, VHOST_SET_BACKEND_FEATURES, &bf, 8, NULL, 0, -1),
	       -EOPNOTSUPP, "unoffered backend bit -> EOPNOTSUPP");
	tap_is(call(s, VHOST_VDPA_SUSPEND, NULL, 0, NULL, 0, -1), -EOPNOTSUPP,
	       "SUSPEND not offered -> EOPNOTSUPP");
	tap_is(call(s, VHOST_VDPA_RESUME, NULL, 0, NULL, 0, -1), -EFAULT,
	       "RESUME not offered -> EFAULT (as Linux 6.1)");
	tap_is(call(s, VHOST_VDPA_CHECK_DEVICE_STATE, NULL, 0, NULL, 0, -1),
	       -ENOTTY, "state extension off -> ENOTTY");
	tap_is(call(s, VHOST_SET_LOG_BASE, &f, 8, NULL, 0, -1), -ENOTTY,
	       "SET_LOG_BASE -> ENOTTY");
	/* each value read back, from a request that succeeded */
	u32 = 0;
	tap_ok(call(s, VHOST_VDPA_GET_DEVICE_ID, NULL, 0, &u32, 4, -1) == 0 &&
	       u32 == VIRTIO_ID_NET, "GET_DEVICE_ID (%u)", u32);
	u32 = 0;
	tap_ok(call(s, VHOST_VDPA_GET_VQS_COUNT, NULL, 0, &u32, 4, -1) == 0 &&
	       u32 == 3, "GET_VQS_COUNT (%u)", u32);
	u16 = 0;
	tap_ok(call(s, VHOST_VDPA_GET_VRING_NUM, NULL, 0, &u16, 2, -1) == 0 &&
	       u16 == 256, "GET_VRING_NUM (%u)", u16);
	u32 = 0;
	tap_ok(call(s, VHOST_VDPA_GET_CONFIG_SIZE, NULL, 0, &u32, 4, -1) == 0 &&
	       u32 == sizeof(struct virtio_net_config),
	       "GET_CONFIG_SIZE (%u)", u32);
	range.first = range.last = 42;
	tap_ok(call(s, VHOST_VDPA_GET_IOVA_RANGE, NULL, 0, &range,
		    sizeof(range), -1) == 0 &&
	       range.first == 0 && range.last == UINT64_MAX, "GET_IOVA_RANGE");
	c->off = 0;
	c->len = 10;
	tap_is(call(s, VHOST_VDPA_GET_CONFIG, c, 8, cfg, sizeof(cfg), -1), 0,
	       "GET_CONFIG");
	tap_ok(memcmp(cfg + 8, "\x00\x11\x22\x33\x44\x55", 6) == 0 &&
	       cfg[14] == VIRTIO_NET_S_LINK_UP && cfg[16] == 1,
	       "config: mac, LINK_UP, max_virtqueue_pairs");
	c->len = 0;
	tap_is(call(s, VHOST_VDPA_GET_CONFIG, c, 8, NULL, 0, -1), -EINVAL,
	       "GET_CONFIG len 0 -> EINVAL");
	c->off = 200;
	c->len = 1;
	tap_is(call(s, VHOST_VDPA_GET_CONFIG, c, 8, NULL, 0, -1), -EINVAL,
	       "GET_CONFIG off past size -> EINVAL");
	c->off = 4;
	c->len = 100;
	tap_is(call(s, VHOST_VDPA_GET_CONFIG, c, 8, NULL, 0, -1), -EINVAL,
	       "GET_CONFIG len past size -> EINVAL (as Linux)");
	f = 0;
	tap_ok(call(s, VHOST_GET_FEATURES, NULL, 0, &f, 8, -1) == 0 &&
	       !!(f & (1ULL << VIRTIO_NET_F_MAC)) &&
	       (f & (1ULL << VIRTIO_F_VERSION_1)) &&
	       (f & (1ULL << VIRTIO_RING_F_EVENT_IDX)) &&
	       !(f & (1ULL << VIRTIO_NET_F_MQ)), "net features (no MQ with 1 pair)");
	{
		uint64_t nf = f & ~(1ULL << VIRTIO_F_ACCESS_PLATFORM);

		tap_is(call(s, VHOST_SET_FEATURES, &nf, 8, NULL, 0, -1), -EINVAL,
		       "SET_FEATURES without ACCESS_PLATFORM -> EINVAL");
	}
	tap_is(call(s, VHOST_SET_FEATURES, &f, 8, NULL, 0, -1), 0, "SET_FEATURES");
	st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
	     VIRTIO_CONFIG_S_FEATURES_OK;
	tap_is(call(s, VHOST_VDPA_SET_STATUS, &st, 1, NULL, 0, -1), 0,
	       "SET_STATUS FEATURES_OK");
	tap_is(call(s, VHOST_SET_FEATURES, &f, 8, NULL, 0, -1), -EBUSY,
	       "SET_FEATURES after FEATURES_OK -> EBUSY");
	st = VIRTIO_CONFIG_S_ACKNOWLEDGE;
	tap_is(call(s, VHOST_VDPA_SET_STATUS, &st, 1, NULL, 0, -1), -EINVAL,
	       "SET_STATUS clearing bits -> EINVAL");
	st = 0;
	tap_is(call(s, VHOST_VDPA_SET_STATUS, &st, 1, NULL, 0, -1), 0,
	       "SET_STATUS 0 resets");
	{
		struct vhost_vring_addr a = { .index = 0, .avail_user_addr = 1 };

		tap_is(call(s, VHOST_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, -1),
		       -EINVAL, "SET_VRING_ADDR misaligned avail -> EINVAL");
		a.avail_user_addr = 0;
		a.flags = 2;
		tap_is(call(s, VHOST_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, -1),
		       -EOPNOTSUPP, "SET_VRING_ADDR unknown flag -> EOPNOTSUPP");
	}
	close(s);
	vsim_thread_stop(t);
}

int main(void)
{
	tap_need_fd_count();
	test_codec();
	test_listen();
	test_malformed();
	test_mem_iotlb();
	test_control();
	return tap_done();
}
