// SPDX-License-Identifier: MIT
/* The device handle: open, the one request entry point, control ABI. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <vdpa-user/uapi-ext.h>

#include "device.h"
#include "log.h"

/* What a reset makes the library forget: the driver's rings and features. */
static void shadow_forget(struct vdpa_dev_shadow *s)
{
	memset(s->vq, 0, sizeof(s->vq));
	s->features = 0;
	s->features_set = false;
}

/* A reset forgets the rings and the class state, not the kick/call fds'
 * meaning: those are re-sent by whoever sets the rings up again. */
static void dev_forget(struct vdpa_dev *dev)
{
	shadow_forget(&dev->shadow);
	netcls_reset(dev);
}

int dev_prov_config(struct vdpa_dev *dev, void *buf, uint32_t len)
{
	if (len > VDPA_PROV_CONFIG_MAX)
		return -EINVAL;
	if (!dev->prov_valid) {
		const struct vdpa_caps *caps = NULL;
		uint32_t n;
		int err;

		err = dev_caps(dev, &caps);
		if (err < 0)
			return err;
		n = caps->config_size < VDPA_PROV_CONFIG_MAX ?
		    caps->config_size : VDPA_PROV_CONFIG_MAX;
		memset(dev->prov_config, 0, sizeof(dev->prov_config));
		err = n ? vdpa_dev_get_config(dev, 0, dev->prov_config, n) : 0;
		if (err < 0)
			return err;
		dev->prov_config_len = n;
		/*
		 * Before the driver started the device, this is how it was
		 * provisioned; after (the snapshot failed then), the best
		 * there is, and asked again next time.
		 */
		dev->prov_valid = !dev->shadow.driver_ok_seen;
	}
	memcpy(buf, dev->prov_config, len);
	return 0;
}

/*
 * Before the driver first starts the device or writes its config, keep
 * the config space as provisioned.
 */
static void snapshot_provisioned(struct vdpa_dev *dev, unsigned long request,
				 const void *arg)
{
	uint8_t tmp[VDPA_PROV_CONFIG_MAX];

	if (dev->prov_valid || dev->shadow.driver_ok_seen)
		return;
	if (request == VHOST_VDPA_SET_STATUS &&
	    !(*(const uint8_t *)arg & VIRTIO_CONFIG_S_DRIVER_OK))
		return;
	if (request != VHOST_VDPA_SET_STATUS &&
	    request != VHOST_VDPA_SET_CONFIG)
		return;
	dev_prov_config(dev, tmp, 0);
	dev->shadow.driver_ok_seen = true;
}

/* Record what was set, so migration knows ring addresses and sizes. */
static void shadow_update(struct vdpa_dev *dev, unsigned long request,
			  const void *arg)
{
	struct vdpa_dev_shadow *s = &dev->shadow;
	const struct vhost_vring_state *st = arg;

	switch (request) {
	case VHOST_SET_FEATURES:
		s->features = *(const uint64_t *)arg;
		s->features_set = true;
		break;
	case VHOST_SET_BACKEND_FEATURES:
		s->backend_features = *(const uint64_t *)arg;
		s->backend_set = true;
		break;
	case VHOST_VDPA_SET_STATUS:
		s->status = *(const uint8_t *)arg;
		s->status_known = false;	/* until it is read back */
		/*
		 * A reset drops the IOTLB unless it persists: Linux's, and
		 * vdpa-sim's kernel personalities (a remap of a simulator
		 * that kept its maps costs two messages per region).
		 */
		if (s->status == 0 &&
		    !(s->backend_features &
		      (1ULL << VHOST_BACKEND_F_IOTLB_PERSIST)))
			s->remap_pending = true;
		if (s->status == 0)
			dev_forget(dev);
		break;
	case VHOST_SET_VRING_NUM:
		if (st->index < VDPA_MAX_VQS) {
			s->vq[st->index].num = st->num;
			s->vq[st->index].num_set = true;
		}
		break;
	case VHOST_SET_VRING_BASE:
		if (st->index < VDPA_MAX_VQS) {
			s->vq[st->index].base = (uint16_t)st->num;
			s->vq[st->index].base_set = true;
		}
		break;
	case VHOST_SET_VRING_ADDR: {
		const struct vhost_vring_addr *a = arg;

		if (a->index < VDPA_MAX_VQS) {
			s->vq[a->index].addr = *a;
			s->vq[a->index].addr_set = true;
		}
		break;
	}
	case VHOST_VDPA_SET_VRING_ENABLE:
		if (st->index < VDPA_MAX_VQS)
			s->vq[st->index].enabled = st->num != 0;
		break;
	case VHOST_SET_VRING_KICK:
	case VHOST_SET_VRING_CALL: {
		const struct vhost_vring_file *f = arg;

		if (f->index >= VDPA_MAX_VQS)
			break;
		if (request == VHOST_SET_VRING_KICK) {
			s->vq[f->index].kick_fd = f->fd;
			s->vq[f->index].kick_set = true;
		} else {
			s->vq[f->index].call_fd = f->fd;
			s->vq[f->index].call_set = true;
		}
		break;
	}
	default:
		break;
	}
}

/* The request trace (vdpa_set_trace()): process-wide, like the log. */
static vdpa_trace_fn trace_fn;
static void *trace_opaque;

void vdpa_set_trace(vdpa_trace_fn fn, void *opaque)
{
	trace_fn = fn;
	trace_opaque = opaque;
}

int vdpa_dev_call(struct vdpa_dev *dev, unsigned long request, void *arg)
{
	vdpa_trace_fn trace = trace_fn;
	void *topaque = trace_opaque;
	bool log = vdpa_log_enabled(LOG_DEBUG);
	uint64_t t0 = 0, ns = 0;
	int r;

	if (!dev || dev->fd < 0)
		return -EBADF;
	if (arg)
		snapshot_provisioned(dev, request, arg);
	if (log || trace)
		t0 = vdpa_now_ns();
	r = dev->ops->call(dev, request, arg);
	if (r >= 0)
		shadow_update(dev, request, arg);
	if (log || trace)
		ns = vdpa_now_ns() - t0;
	if (log)
		vdpa_log(LOG_DEBUG, "%s: %s -> %d (%llu ns)", dev->name,
			 vsim_request_name((uint32_t)request), r,
			 (unsigned long long)ns);
	if (trace)
		trace(dev, request, arg, r, ns, topaque);
	return r;
}

const struct vdpa_dev_shadow *vdpa_dev_shadow(const struct vdpa_dev *dev)
{
	return &dev->shadow;
}

static int sim_connect(const char *path, int *ret_fd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, err;

	if (!*path || strlen(path) >= sizeof(sa.sun_path))
		return -EINVAL;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		/* ECONNREFUSED: a socket file nobody listens on (a killed sim) */
		err = -errno;
		close(fd);
		return err;
	}
	*ret_fd = fd;
	return 0;
}

static int sim_hello(struct vdpa_dev *dev)
{
	struct vsim_hello hello = { VSIM_WIRE_MAGIC, VSIM_WIRE_VERSION, 0, 0 };
	struct vsim_hdr h = { .request = VSIM_REQ_HELLO,
			      .size = sizeof(hello) };
	uint8_t buf[VSIM_MAX_PAYLOAD];
	int err, fd = -1;

	err = vsim_send(dev->fd, &h, &hello, -1);
	if (err < 0)
		return err;
	err = vsim_recv(dev->fd, &h, buf, sizeof(buf), &fd);
	if (err < 0)
		return err == -EBADMSG ? -EPROTO : err;
	if (fd >= 0) {
		close(fd);
		return -EPROTO;
	}
	if (h.request != VSIM_REQ_HELLO || !(h.flags & VSIM_F_REPLY))
		return -EPROTO;
	if (h.result < 0)
		return h.result;
	if (h.size != sizeof(hello))
		return -EPROTO;
	memcpy(&hello, buf, sizeof(hello));
	if (hello.magic != VSIM_WIRE_MAGIC || hello.version != VSIM_WIRE_VERSION)
		return -EPROTO;
	dev->device_id = hello.device_id;
	return 0;
}

static int dev_setup(struct vdpa_dev *dev, const char *name,
		     struct vdpa_dev **ret_dev)
{
	int err;

	dev->name = strdup(name);
	if (!dev->name) {
		err = -ENOMEM;
		goto err_close;
	}
	if (dev->ops == &sim_transport) {
		err = sim_hello(dev);
		if (err < 0) {
			vdpa_log(LOG_ERR, "%s: handshake failed: %s", name,
				 strerror(-err));
			goto err_close;
		}
	}
	err = vdpa_dev_call(dev, VHOST_SET_OWNER, NULL);
	if (err < 0) {
		vdpa_log(LOG_ERR, "%s: SET_OWNER: %s", name, strerror(-err));
		goto err_close;
	}
	if (dev->ops == &kernel_transport) {
		err = vdpa_dev_call(dev, VHOST_VDPA_GET_DEVICE_ID,
				    &dev->device_id);
		if (err < 0)
			goto err_close;
	}
	/*
	 * Opening resets the device (vhost_vdpa_open() resets it; a simulator
	 * resets when its previous driver disconnects): its status is 0, and
	 * the first vdpa_dev_reset() need not ask for it.
	 */
	dev->shadow.status = 0;
	dev->shadow.status_known = true;
	*ret_dev = dev;
	return 0;

err_close:
	dev->ops->close(dev);
	free(dev->name);
	free(dev);
	return err;
}

int vdpa_dev_open(const char *name, struct vdpa_dev **ret_dev)
{
	struct vdpa_dev *dev;
	int err, fd = -1;

	if (!name || !ret_dev)
		return -EINVAL;
	if (!strncmp(name, "sim:", 4)) {
		err = sim_connect(name + 4, &fd);
		if (err < 0)
			return err;
	} else if (!strncmp(name, "/dev/", 5)) {
		fd = open(name, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return -errno;
	} else {
		return -EINVAL;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		close(fd);
		return -ENOMEM;
	}
	dev->fd = fd;
	dev->ops = name[0] == 's' ? &sim_transport : &kernel_transport;
	return dev_setup(dev, name, ret_dev);
}

int vdpa_dev_open_sim_fd(int sock, const char *name, struct vdpa_dev **ret_dev)
{
	struct vdpa_dev *dev;

	if (sock < 0 || !ret_dev) {
		if (sock >= 0)
			close(sock);
		return -EINVAL;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		close(sock);
		return -ENOMEM;
	}
	dev->fd = sock;
	dev->ops = &sim_transport;
	return dev_setup(dev, name ? name : "sim-fd", ret_dev);
}

void vdpa_dev_close(struct vdpa_dev *dev)
{
	if (!dev)
		return;
	dev->ops->close(dev);
	free(dev->name);
	free(dev);
}

const char *vdpa_dev_name(const struct vdpa_dev *dev)
{
	return dev->name;
}

bool vdpa_dev_is_kernel(const struct vdpa_dev *dev)
{
	return dev->ops == &kernel_transport;
}

int vdpa_dev_get_device_id(struct vdpa_dev *dev, uint32_t *ret_id)
{
	if (!dev || !ret_id)
		return -EINVAL;
	*ret_id = dev->device_id;
	return 0;
}

int dev_caps(struct vdpa_dev *dev, const struct vdpa_caps **ret)
{
	int err = 0;

	if (!dev->caps_valid)
		err = vdpa_dev_get_caps(dev, &dev->caps);
	if (!err)
		*ret = &dev->caps;
	return err;
}

int vdpa_dev_get_caps(struct vdpa_dev *dev, struct vdpa_caps *ret_caps)
{
	struct vdpa_caps c = { 0 };
	uint16_t num = 0;
	int err;

	if (!dev || !ret_caps)
		return -EINVAL;
	if (dev->caps_valid) {
		*ret_caps = dev->caps;
		return 0;
	}
	c.device_id = dev->device_id;
	err = vdpa_dev_call(dev, VHOST_GET_FEATURES, &c.features);
	if (err >= 0)
		err = vdpa_dev_call(dev, VHOST_GET_BACKEND_FEATURES,
				    &c.backend_features);
	if (err >= 0)
		err = vdpa_dev_call(dev, VHOST_VDPA_GET_VQS_COUNT, &c.vq_count);
	if (err >= 0)
		err = vdpa_dev_call(dev, VHOST_VDPA_GET_VRING_NUM, &num);
	if (err >= 0)
		err = vdpa_dev_call(dev, VHOST_VDPA_GET_CONFIG_SIZE,
				    &c.config_size);
	if (err >= 0)
		err = vdpa_dev_call(dev, VHOST_VDPA_GET_IOVA_RANGE,
				    &c.iova_range);
	if (err < 0)
		return err;
	c.vq_max_size = num;
#define HAS(b) (!!(c.backend_features & (1ULL << (b))))
	c.suspend = HAS(VHOST_BACKEND_F_SUSPEND);
	c.resume = HAS(VHOST_BACKEND_F_RESUME);
	c.device_state = HAS(VHOST_BACKEND_F_DEVICE_STATE);
	c.iotlb_batch = HAS(VHOST_BACKEND_F_IOTLB_BATCH);
	c.enable_after_driver_ok = HAS(VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK);
#undef HAS
	dev->caps = c;
	dev->caps_valid = true;
	*ret_caps = c;
	return 0;
}

int vdpa_dev_set_backend_features(struct vdpa_dev *dev, uint64_t want,
				  uint64_t *ret_acked)
{
	const struct vdpa_caps *caps = NULL;
	uint64_t offered, acked;
	int err;

	if (!dev)
		return -EINVAL;
	err = dev_caps(dev, &caps);
	if (err < 0)
		return err;
	offered = caps->backend_features;
	if (!(offered & (1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2))) {
		vdpa_log(LOG_ERR, "%s: device lacks IOTLB_MSG_V2", dev->name);
		return -ENOTSUP;
	}
	/* request only what is offered: 6.1 rejects anything else */
	acked = (want | (1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2)) & offered;
	err = vdpa_dev_call(dev, VHOST_SET_BACKEND_FEATURES, &acked);
	if (err < 0)
		return err;
	if (ret_acked)
		*ret_acked = acked;
	return 0;
}

uint64_t vdpa_dev_backend_features(const struct vdpa_dev *dev)
{
	return dev->shadow.backend_features;
}

uint64_t vdpa_dev_features(const struct vdpa_dev *dev)
{
	return dev->shadow.features;
}

int vdpa_dev_get_status(struct vdpa_dev *dev, uint8_t *ret_status)
{
	uint8_t s;
	int err;

	if (!dev || !ret_status)
		return -EINVAL;
	err = vdpa_dev_call(dev, VHOST_VDPA_GET_STATUS, &s);
	if (err < 0)
		return err;
	dev->shadow.status = s;
	dev->shadow.status_known = true;
	*ret_status = s;
	return 0;
}

int vdpa_dev_add_status(struct vdpa_dev *dev, uint8_t bits)
{
	uint8_t s, back;
	bool known;
	int err = 0;

	if (!dev)
		return -EINVAL;
	/*
	 * The status read back after the previous change saves asking for
	 * it again. Only the device can have changed it since (setting
	 * NEEDS_RESET): then the write clears a bit, which the device
	 * refuses with EINVAL, and it is read and tried once more.
	 */
	known = dev->shadow.status_known;
	if (known) {
		s = dev->shadow.status | bits;
		err = vdpa_dev_call(dev, VHOST_VDPA_SET_STATUS, &s);
	}
	if (!known || err == -EINVAL) {
		err = vdpa_dev_get_status(dev, &s);
		if (err < 0)
			return err;
		s |= bits;
		err = vdpa_dev_call(dev, VHOST_VDPA_SET_STATUS, &s);
	}
	if (err < 0)
		return err;
	err = vdpa_dev_get_status(dev, &back);
	if (err < 0)
		return err;
	if ((back & bits) != bits) {
		vdpa_log(LOG_ERR, "%s: status 0x%02x did not stick (read 0x%02x)",
			 dev->name, s, back);
		return -EIO;
	}
	return 0;
}

int vdpa_dev_reset(struct vdpa_dev *dev)
{
	uint8_t s = 0;
	int err, i;

	if (!dev)
		return -EINVAL;
	if (dev->shadow.status_known && dev->shadow.status == 0 &&
	    !dev->shadow.remap_pending) {
		/*
		 * Already reset and nothing written since (any SET_STATUS
		 * forgets the known status), the IOTLB as the library left
		 * it: no request, but forget what a reset forgets.
		 */
		dev_forget(dev);
		return 0;
	}
	err = vdpa_dev_call(dev, VHOST_VDPA_SET_STATUS, &s);
	if (err < 0)
		return err;
	for (i = 0; i < 1000; i++) {
		err = vdpa_dev_get_status(dev, &s);
		if (err < 0)
			return err;
		if (s == 0) {
			if (!dev->shadow.remap_pending)
				return 0;
			err = mem_remap_all(dev);
			if (!err)
				dev->shadow.remap_pending = false;
			return err;
		}
		usleep(100);
	}
	vdpa_log(LOG_ERR, "%s: reset did not complete (status 0x%02x)",
		 dev->name, s);
	return -EIO;
}

int vdpa_dev_set_features(struct vdpa_dev *dev, uint64_t features)
{
	const struct vdpa_caps *caps = NULL;
	uint64_t offered;
	int err;

	if (!dev)
		return -EINVAL;
	err = dev_caps(dev, &caps);
	if (err < 0)
		return err;
	offered = caps->features;
	if (features & ~offered) {
		vdpa_log(LOG_ERR, "%s: features 0x%llx not offered (offered 0x%llx)",
			 dev->name, (unsigned long long)(features & ~offered),
			 (unsigned long long)offered);
		return -ENOTSUP;
	}
	err = vdpa_dev_reset(dev);
	if (err < 0)
		return err;
	err = vdpa_dev_add_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE |
				  VIRTIO_CONFIG_S_DRIVER);
	if (err < 0)
		return err;
	err = vdpa_dev_call(dev, VHOST_SET_FEATURES, &features);
	if (err < 0)
		return err;
	return vdpa_dev_add_status(dev, VIRTIO_CONFIG_S_FEATURES_OK);
}

static int config_io(struct vdpa_dev *dev, unsigned long request,
		     uint32_t off, void *buf, uint32_t len)
{
	/* struct vhost_vdpa_config followed by up to 1 KiB of data */
	uint64_t raw[(sizeof(struct vhost_vdpa_config) + 1024) / 8];
	struct vhost_vdpa_config *c = (struct vhost_vdpa_config *)raw;
	int err;

	if (!dev || (!buf && len) || len > 1024)
		return -EINVAL;
	c->off = off;
	c->len = len;
	if (request == VHOST_VDPA_SET_CONFIG && len)
		memcpy(c->buf, buf, len);
	err = vdpa_dev_call(dev, request, c);
	if (err < 0)
		return err;
	if (request == VHOST_VDPA_GET_CONFIG && len)
		memcpy(buf, c->buf, len);
	return 0;
}

int vdpa_dev_get_config(struct vdpa_dev *dev, uint32_t off, void *buf,
			uint32_t len)
{
	return config_io(dev, VHOST_VDPA_GET_CONFIG, off, buf, len);
}

int vdpa_dev_set_config(struct vdpa_dev *dev, uint32_t off, const void *buf,
			uint32_t len)
{
	return config_io(dev, VHOST_VDPA_SET_CONFIG, off, (void *)buf, len);
}

/* A vring request carrying a number, or an fd. */
static int vring_num_req(struct vdpa_dev *dev, unsigned long req,
			 uint32_t idx, unsigned int num)
{
	struct vhost_vring_state s = { .index = idx, .num = num };

	return vdpa_dev_call(dev, req, &s);
}

static int vring_fd_req(struct vdpa_dev *dev, unsigned long req, uint32_t idx,
			int fd)
{
	struct vhost_vring_file f = { .index = idx, .fd = fd };

	return vdpa_dev_call(dev, req, &f);
}

int vdpa_dev_set_vring_enable(struct vdpa_dev *dev, uint32_t idx, bool enable)
{
	return vring_num_req(dev, VHOST_VDPA_SET_VRING_ENABLE, idx, enable);
}

int vdpa_dev_set_vring_num(struct vdpa_dev *dev, uint32_t idx, uint16_t num)
{
	return vring_num_req(dev, VHOST_SET_VRING_NUM, idx, num);
}

int vdpa_dev_set_vring_addr(struct vdpa_dev *dev, uint32_t idx, uint64_t desc,
			    uint64_t avail, uint64_t used)
{
	struct vhost_vring_addr a = { .index = idx, .desc_user_addr = desc,
				      .avail_user_addr = avail,
				      .used_user_addr = used };

	return vdpa_dev_call(dev, VHOST_SET_VRING_ADDR, &a);
}

int vdpa_dev_set_vring_base(struct vdpa_dev *dev, uint32_t idx, uint16_t base)
{
	return vring_num_req(dev, VHOST_SET_VRING_BASE, idx, base);
}

int vdpa_dev_set_vring_kick(struct vdpa_dev *dev, uint32_t idx, int fd)
{
	return vring_fd_req(dev, VHOST_SET_VRING_KICK, idx, fd);
}

int vdpa_dev_set_vring_call(struct vdpa_dev *dev, uint32_t idx, int fd)
{
	return vring_fd_req(dev, VHOST_SET_VRING_CALL, idx, fd);
}

int dev_place_ring(struct vdpa_dev *dev, uint32_t num,
		   const struct vhost_vring_addr *a)
{
	const struct vdpa_vq_shadow *v = a->index < VDPA_MAX_VQS ?
					 &dev->shadow.vq[a->index] : NULL;
	int err = 0;

	if (!v || !v->num_set || v->num != num)
		err = vring_num_req(dev, VHOST_SET_VRING_NUM, a->index, num);
	if (!err && (!v || !v->addr_set || memcmp(&v->addr, a, sizeof(*a))))
		err = vdpa_dev_call(dev, VHOST_SET_VRING_ADDR, (void *)a);
	return err;
}

int vdpa_dev_get_vring(struct vdpa_dev *dev, uint32_t idx,
		       struct vdpa_vring_info *ret)
{
	const struct vdpa_vq_shadow *v;

	if (!dev || !ret)
		return -EINVAL;
	if (idx >= VDPA_MAX_VQS)
		return -ENOBUFS;
	v = &dev->shadow.vq[idx];
	memset(ret, 0, sizeof(*ret));
	ret->num = v->num_set ? (uint16_t)v->num : 0;
	if (v->addr_set) {
		ret->desc = v->addr.desc_user_addr;
		ret->avail = v->addr.avail_user_addr;
		ret->used = v->addr.used_user_addr;
	}
	ret->base = v->base;
	ret->kick_fd = v->kick_set ? v->kick_fd : -1;
	ret->call_fd = v->call_set ? v->call_fd : -1;
	ret->enabled = v->enabled;
	ret->configured = v->num_set && v->addr_set;
	return 0;
}

int vdpa_dev_get_vring_base(struct vdpa_dev *dev, uint32_t idx,
			    uint16_t *ret_base)
{
	struct vhost_vring_state s = { .index = idx };
	int err;

	if (!ret_base)
		return -EINVAL;
	err = vdpa_dev_call(dev, VHOST_GET_VRING_BASE, &s);
	if (err < 0)
		return err;
	*ret_base = (uint16_t)s.num;
	return 0;
}

static int negotiated(struct vdpa_dev *dev, unsigned int bit)
{
	return dev && (dev->shadow.backend_features & (1ULL << bit));
}

int vdpa_dev_suspend(struct vdpa_dev *dev)
{
	if (!dev)
		return -EINVAL;
	if (!negotiated(dev, VHOST_BACKEND_F_SUSPEND))
		return -EOPNOTSUPP;
	return vdpa_dev_call(dev, VHOST_VDPA_SUSPEND, NULL);
}

int vdpa_dev_resume(struct vdpa_dev *dev)
{
	if (!dev)
		return -EINVAL;
	/* Linux 6.1 answers an unknown RESUME with EFAULT: never send it */
	if (!negotiated(dev, VHOST_BACKEND_F_RESUME))
		return -EOPNOTSUPP;
	return vdpa_dev_call(dev, VHOST_VDPA_RESUME, NULL);
}
