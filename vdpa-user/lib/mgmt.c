// SPDX-License-Identifier: MIT
/* vdpa generic-netlink management with libmnl. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/vdpa.h>
#include <vdpa-user/mgmt.h>

#include "log.h"

/* MNL_SOCKET_BUFFER_SIZE is a sysconf() call here: a fixed 32 KiB. */
#define NL_BUF 32768

struct vdpa_mgmt {
	struct mnl_socket *nl;
	uint16_t family;
	uint32_t portid;
	uint32_t seq;
};

/* Attribute policy: the type every attribute we read must have. */
static const enum mnl_attr_data_type policy[VDPA_ATTR_MAX] = {
	[VDPA_ATTR_MGMTDEV_BUS_NAME] = MNL_TYPE_NUL_STRING,
	[VDPA_ATTR_MGMTDEV_DEV_NAME] = MNL_TYPE_NUL_STRING,
	[VDPA_ATTR_MGMTDEV_SUPPORTED_CLASSES] = MNL_TYPE_U64,
	[VDPA_ATTR_DEV_NAME] = MNL_TYPE_NUL_STRING,
	[VDPA_ATTR_DEV_ID] = MNL_TYPE_U32,
	[VDPA_ATTR_DEV_VENDOR_ID] = MNL_TYPE_U32,
	[VDPA_ATTR_DEV_MAX_VQS] = MNL_TYPE_U32,
	[VDPA_ATTR_DEV_MAX_VQ_SIZE] = MNL_TYPE_U16,
	[VDPA_ATTR_DEV_MIN_VQ_SIZE] = MNL_TYPE_U16,
	[VDPA_ATTR_DEV_NET_CFG_MACADDR] = MNL_TYPE_BINARY,
	[VDPA_ATTR_DEV_NET_STATUS] = MNL_TYPE_UNSPEC,	/* u8 or u16 */
	[VDPA_ATTR_DEV_NET_CFG_MAX_VQP] = MNL_TYPE_U16,
	[VDPA_ATTR_DEV_NET_CFG_MTU] = MNL_TYPE_U16,
	[VDPA_ATTR_DEV_NEGOTIATED_FEATURES] = MNL_TYPE_U64,
	[VDPA_ATTR_DEV_MGMTDEV_MAX_VQS] = MNL_TYPE_U32,
	[VDPA_ATTR_DEV_SUPPORTED_FEATURES] = MNL_TYPE_U64,
	[VDPA_ATTR_DEV_QUEUE_INDEX] = MNL_TYPE_U32,
	[VDPA_ATTR_DEV_VENDOR_ATTR_NAME] = MNL_TYPE_NUL_STRING,
	[VDPA_ATTR_DEV_VENDOR_ATTR_VALUE] = MNL_TYPE_U64,
	[VDPA_ATTR_DEV_FEATURES] = MNL_TYPE_U64,
};

struct attrs {
	const struct nlattr *tb[VDPA_ATTR_MAX];
	int bad;		/* first ill-typed attribute, or 0 */
};

/* Known attributes are validated against the policy; unknown are ignored. */
static int attr_cb(const struct nlattr *a, void *data)
{
	struct attrs *t = data;
	int type = mnl_attr_get_type(a);

	if (type <= 0 || type >= VDPA_ATTR_MAX)
		return MNL_CB_OK;
	if (type == VDPA_ATTR_DEV_NET_STATUS) {
		uint16_t l = mnl_attr_get_payload_len(a);

		if (l != 1 && l != 2)
			goto bad;
	} else if (type == VDPA_ATTR_DEV_NET_CFG_MACADDR) {
		if (mnl_attr_get_payload_len(a) != 6)
			goto bad;
	} else if (mnl_attr_validate(a, policy[type]) < 0) {
		goto bad;
	}
	/* vendor attribute pairs repeat; the parser walks them itself */
	if (!t->tb[type])
		t->tb[type] = a;
	return MNL_CB_OK;
bad:
	if (!t->bad)
		t->bad = type;
	return MNL_CB_OK;
}

static int parse(const struct nlmsghdr *nlh, struct attrs *t)
{
	memset(t, 0, sizeof(*t));
	if (nlh->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN)
		return -EBADMSG;
	if (mnl_attr_parse(nlh, GENL_HDRLEN, attr_cb, t) < 0)
		return -EBADMSG;
	if (t->bad) {
		vdpa_log(LOG_ERR, "netlink: attribute %d has the wrong type "
			 "or length", t->bad);
		return -EBADMSG;
	}
	return 0;
}

static void copy_str(char *dst, size_t len, const struct nlattr *a)
{
	snprintf(dst, len, "%s", a ? mnl_attr_get_str(a) : "");
}

int vdpa_mgmt_parse_mgmtdev(const struct nlmsghdr *nlh,
			    struct vdpa_mgmtdev_info *ret)
{
	struct attrs t;
	int err = parse(nlh, &t);

	if (err < 0)
		return err;
	if (!t.tb[VDPA_ATTR_MGMTDEV_DEV_NAME])
		return -EBADMSG;
	memset(ret, 0, sizeof(*ret));
	copy_str(ret->bus, sizeof(ret->bus), t.tb[VDPA_ATTR_MGMTDEV_BUS_NAME]);
	copy_str(ret->dev, sizeof(ret->dev), t.tb[VDPA_ATTR_MGMTDEV_DEV_NAME]);
	if (t.tb[VDPA_ATTR_MGMTDEV_SUPPORTED_CLASSES])
		ret->classes = mnl_attr_get_u64(
			t.tb[VDPA_ATTR_MGMTDEV_SUPPORTED_CLASSES]);
	if (t.tb[VDPA_ATTR_DEV_MGMTDEV_MAX_VQS]) {
		ret->has_max_vqs = true;
		ret->max_vqs = mnl_attr_get_u32(
			t.tb[VDPA_ATTR_DEV_MGMTDEV_MAX_VQS]);
	}
	if (t.tb[VDPA_ATTR_DEV_SUPPORTED_FEATURES]) {
		ret->has_features = true;
		ret->features = mnl_attr_get_u64(
			t.tb[VDPA_ATTR_DEV_SUPPORTED_FEATURES]);
	}
	return 0;
}

int vdpa_mgmt_parse_config(const struct nlmsghdr *nlh,
			   struct vdpa_dev_config_info *ret)
{
	const struct nlattr *a;
	struct attrs t;
	int err = parse(nlh, &t);

	if (err < 0)
		return err;
	if (!t.tb[VDPA_ATTR_DEV_NAME] || !t.tb[VDPA_ATTR_DEV_ID])
		return -EBADMSG;
	memset(ret, 0, sizeof(*ret));
	copy_str(ret->name, sizeof(ret->name), t.tb[VDPA_ATTR_DEV_NAME]);
	ret->device_id = mnl_attr_get_u32(t.tb[VDPA_ATTR_DEV_ID]);
	if ((a = t.tb[VDPA_ATTR_DEV_NET_CFG_MACADDR])) {
		ret->has_mac = true;
		memcpy(ret->mac, mnl_attr_get_payload(a), 6);
	}
	if ((a = t.tb[VDPA_ATTR_DEV_NET_STATUS])) {
		ret->has_status = true;
		ret->status = mnl_attr_get_payload_len(a) == 2 ?
			      mnl_attr_get_u16(a) : mnl_attr_get_u8(a);
	}
	if ((a = t.tb[VDPA_ATTR_DEV_NET_CFG_MAX_VQP])) {
		ret->has_max_vqp = true;
		ret->max_vqp = mnl_attr_get_u16(a);
	}
	if ((a = t.tb[VDPA_ATTR_DEV_NET_CFG_MTU])) {
		ret->has_mtu = true;
		ret->mtu = mnl_attr_get_u16(a);
	}
	if ((a = t.tb[VDPA_ATTR_DEV_NEGOTIATED_FEATURES])) {
		ret->has_features = true;
		ret->negotiated = mnl_attr_get_u64(a);
	}
	return 0;
}

int vdpa_mgmt_parse_vstats(const struct nlmsghdr *nlh, struct vdpa_vstats *ret)
{
	const struct nlattr *a;
	struct attrs t;
	int err = parse(nlh, &t), pending = 0;

	if (err < 0)
		return err;
	if (!t.tb[VDPA_ATTR_DEV_NAME] || !t.tb[VDPA_ATTR_DEV_QUEUE_INDEX])
		return -EBADMSG;
	memset(ret, 0, sizeof(*ret));
	copy_str(ret->name, sizeof(ret->name), t.tb[VDPA_ATTR_DEV_NAME]);
	if (t.tb[VDPA_ATTR_DEV_ID])
		ret->device_id = mnl_attr_get_u32(t.tb[VDPA_ATTR_DEV_ID]);
	ret->queue_index = mnl_attr_get_u32(t.tb[VDPA_ATTR_DEV_QUEUE_INDEX]);
	if (t.tb[VDPA_ATTR_DEV_NEGOTIATED_FEATURES])
		ret->negotiated = mnl_attr_get_u64(
			t.tb[VDPA_ATTR_DEV_NEGOTIATED_FEATURES]);
	/* name/value pairs, in order */
	mnl_attr_for_each(a, nlh, GENL_HDRLEN) {
		int type = mnl_attr_get_type(a);

		if (type == VDPA_ATTR_DEV_VENDOR_ATTR_NAME) {
			if (pending || ret->n >= VDPA_MGMT_MAX_VSTATS)
				return -EBADMSG;
			copy_str(ret->attr[ret->n].name,
				 sizeof(ret->attr[0].name), a);
			pending = 1;
		} else if (type == VDPA_ATTR_DEV_VENDOR_ATTR_VALUE) {
			if (!pending)
				return -EBADMSG;
			ret->attr[ret->n++].value = mnl_attr_get_u64(a);
			pending = 0;
		}
	}
	return pending ? -EBADMSG : 0;
}

int vdpa_mgmt_parse_error(const struct nlmsghdr *nlh, char *msg, size_t msglen)
{
	const struct nlmsgerr *e;
	const struct nlattr *a;
	size_t off;

	if (msg && msglen)
		msg[0] = 0;
	if (nlh->nlmsg_type != NLMSG_ERROR ||
	    nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(*e))
		return -EBADMSG;
	e = mnl_nlmsg_get_payload(nlh);
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS) || !msg)
		return e->error;
	/* the TLVs follow the echoed request (or its header if capped) */
	off = sizeof(*e);
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += e->msg.nlmsg_len - NLMSG_HDRLEN;
	if (NLMSG_HDRLEN + off > nlh->nlmsg_len)
		return e->error;
	mnl_attr_for_each(a, nlh, off) {
		if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
		    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
			snprintf(msg, msglen, "%s", mnl_attr_get_str(a));
	}
	return e->error;
}

/* ---- socket I/O ---------------------------------------------------------- */

typedef int (*msg_fn)(const struct nlmsghdr *nlh, void *data);

static struct nlmsghdr *prepare(struct vdpa_mgmt *m, char *buf, uint16_t type,
				uint8_t cmd, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct genlmsghdr *g;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = ++m->seq;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->cmd = cmd;
	g->version = VDPA_GENL_VERSION;
	return nlh;
}

/* Send nlh, feed every answer to fn until the ACK/DONE. */
static int transact(struct vdpa_mgmt *m, struct nlmsghdr *nlh, msg_fn fn,
		    void *data, char *err, size_t errlen)
{
	char buf[NL_BUF];
	uint32_t seq = nlh->nlmsg_seq;

	if (err && errlen)
		err[0] = 0;
	if (mnl_socket_sendto(m->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(m->nl, buf, sizeof(buf));
		const struct nlmsghdr *h;
		int len;

		if (n < 0)
			return -errno;
		len = (int)n;
		for (h = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(h, len);
		     h = mnl_nlmsg_next(h, &len)) {
			int r;

			if (h->nlmsg_seq != seq || h->nlmsg_pid != m->portid)
				continue;
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR) {
				r = vdpa_mgmt_parse_error(h, err, errlen);
				return r > 0 ? -EBADMSG : r;
			}
			if (fn) {
				r = fn(h, data);
				if (r < 0)
					return r;
			}
		}
	}
}

static int family_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *a;

	mnl_attr_for_each(a, nlh, GENL_HDRLEN) {
		if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID &&
		    mnl_attr_validate(a, MNL_TYPE_U16) == 0)
			*(uint16_t *)data = mnl_attr_get_u16(a);
	}
	return 0;
}

int vdpa_mgmt_open(struct vdpa_mgmt **ret, char *err, size_t errlen)
{
	char buf[NL_BUF];
	struct nlmsghdr *nlh;
	struct vdpa_mgmt *m;
	int one = 1, r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->nl = mnl_socket_open2(NETLINK_GENERIC, SOCK_CLOEXEC);
	if (!m->nl || mnl_socket_bind(m->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		snprintf(err, errlen, "generic netlink socket: %s",
			 strerror(-r));
		goto err_close;
	}
	mnl_socket_setsockopt(m->nl, NETLINK_EXT_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(m->nl, NETLINK_CAP_ACK, &one, sizeof(one));
	m->portid = mnl_socket_get_portid(m->nl);
	m->seq = (uint32_t)time(NULL);
	nlh = prepare(m, buf, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0);
	((struct genlmsghdr *)mnl_nlmsg_get_payload(nlh))->version = 1;
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, VDPA_GENL_NAME);
	r = transact(m, nlh, family_cb, &m->family, err, errlen);
	if (r == -ENOENT || (!r && !m->family)) {
		r = -EPROTONOSUPPORT;
		snprintf(err, errlen, "vdpa netlink family not found (is the "
			 "vdpa module loaded?)");
	}
	if (r < 0)
		goto err_close;
	*ret = m;
	return 0;

err_close:
	if (m->nl)
		mnl_socket_close(m->nl);
	free(m);
	return r;
}

void vdpa_mgmt_close(struct vdpa_mgmt *m)
{
	if (!m)
		return;
	mnl_socket_close(m->nl);
	free(m);
}

/* "pci/0000:00:04.0" -> bus + dev; "vdpasim_net" -> dev only. */
static void put_mgmtdev(struct nlmsghdr *nlh, const char *mgmtdev)
{
	const char *slash = strchr(mgmtdev, '/');
	char bus[32];

	if (slash && (size_t)(slash - mgmtdev) < sizeof(bus)) {
		memcpy(bus, mgmtdev, (size_t)(slash - mgmtdev));
		bus[slash - mgmtdev] = 0;
		mnl_attr_put_strz(nlh, VDPA_ATTR_MGMTDEV_BUS_NAME, bus);
		mgmtdev = slash + 1;
	}
	mnl_attr_put_strz(nlh, VDPA_ATTR_MGMTDEV_DEV_NAME, mgmtdev);
}

struct list {
	void *items;
	size_t n, size;
	int (*parse)(const struct nlmsghdr *, void *);
};

static int list_cb(const struct nlmsghdr *nlh, void *data)
{
	struct list *l = data;
	uint8_t *p = realloc(l->items, (l->n + 1) * l->size);
	int r;

	if (!p)
		return -ENOMEM;
	l->items = p;
	r = l->parse(nlh, p + l->n * l->size);
	if (r < 0)
		return r;
	l->n++;
	return 0;
}

static int list_run(struct vdpa_mgmt *m, struct nlmsghdr *nlh, struct list *l,
		    void **ret, size_t *ret_n, char *err, size_t errlen)
{
	int r = transact(m, nlh, list_cb, l, err, errlen);

	if (r < 0) {
		free(l->items);
		if (r == -EBADMSG && err && !err[0])
			snprintf(err, errlen, "unexpected attributes in the "
				 "kernel's answer");
		return r;
	}
	*ret = l->items;
	*ret_n = l->n;
	return 0;
}

int vdpa_mgmt_list(struct vdpa_mgmt *m, const char *mgmtdev,
		   struct vdpa_mgmtdev_info **ret, size_t *ret_n, char *err,
		   size_t errlen)
{
	char buf[NL_BUF];
	struct list l = { NULL, 0, sizeof(**ret),
			  (int (*)(const struct nlmsghdr *, void *))
			  vdpa_mgmt_parse_mgmtdev };
	struct nlmsghdr *nlh = prepare(m, buf, m->family, VDPA_CMD_MGMTDEV_GET,
				       mgmtdev ? 0 : NLM_F_DUMP);

	if (mgmtdev)
		put_mgmtdev(nlh, mgmtdev);
	return list_run(m, nlh, &l, (void **)ret, ret_n, err, errlen);
}

int vdpa_mgmt_dev_config(struct vdpa_mgmt *m, const char *name,
			 struct vdpa_dev_config_info **ret, size_t *ret_n,
			 char *err, size_t errlen)
{
	char buf[NL_BUF];
	struct list l = { NULL, 0, sizeof(**ret),
			  (int (*)(const struct nlmsghdr *, void *))
			  vdpa_mgmt_parse_config };
	struct nlmsghdr *nlh = prepare(m, buf, m->family,
				       VDPA_CMD_DEV_CONFIG_GET,
				       name ? 0 : NLM_F_DUMP);

	if (name)
		mnl_attr_put_strz(nlh, VDPA_ATTR_DEV_NAME, name);
	return list_run(m, nlh, &l, (void **)ret, ret_n, err, errlen);
}

static int vstats_cb(const struct nlmsghdr *nlh, void *data)
{
	return vdpa_mgmt_parse_vstats(nlh, data);
}

int vdpa_mgmt_vstats(struct vdpa_mgmt *m, const char *name, uint32_t qidx,
		     struct vdpa_vstats *ret, char *err, size_t errlen)
{
	char buf[NL_BUF];
	struct nlmsghdr *nlh = prepare(m, buf, m->family,
				       VDPA_CMD_DEV_VSTATS_GET, 0);

	if (!name)
		return -EINVAL;
	mnl_attr_put_strz(nlh, VDPA_ATTR_DEV_NAME, name);
	mnl_attr_put_u32(nlh, VDPA_ATTR_DEV_QUEUE_INDEX, qidx);
	return transact(m, nlh, vstats_cb, ret, err, errlen);
}

int vdpa_mgmt_dev_add(struct vdpa_mgmt *m, const struct vdpa_dev_add_opts *o,
		      char *err, size_t errlen)
{
	char buf[NL_BUF];
	struct nlmsghdr *nlh;

	if (!o || !o->name || !*o->name || !o->mgmtdev || !*o->mgmtdev)
		return -EINVAL;
	nlh = prepare(m, buf, m->family, VDPA_CMD_DEV_NEW, 0);
	mnl_attr_put_strz(nlh, VDPA_ATTR_DEV_NAME, o->name);
	put_mgmtdev(nlh, o->mgmtdev);
	if (o->has_mac)
		mnl_attr_put(nlh, VDPA_ATTR_DEV_NET_CFG_MACADDR, 6, o->mac);
	if (o->has_mtu)
		mnl_attr_put_u16(nlh, VDPA_ATTR_DEV_NET_CFG_MTU, o->mtu);
	if (o->has_max_vqp)
		mnl_attr_put_u16(nlh, VDPA_ATTR_DEV_NET_CFG_MAX_VQP, o->max_vqp);
	if (o->has_features)
		mnl_attr_put_u64(nlh, VDPA_ATTR_DEV_FEATURES, o->features);
	return transact(m, nlh, NULL, NULL, err, errlen);
}

int vdpa_mgmt_dev_del(struct vdpa_mgmt *m, const char *name, char *err,
		      size_t errlen)
{
	char buf[NL_BUF];
	struct nlmsghdr *nlh;

	if (!name || !*name)
		return -EINVAL;
	nlh = prepare(m, buf, m->family, VDPA_CMD_DEV_DEL, 0);
	mnl_attr_put_strz(nlh, VDPA_ATTR_DEV_NAME, name);
	return transact(m, nlh, NULL, NULL, err, errlen);
}

int vdpa_mgmt_chardev(const char *sysfs_root, const char *name, char *buf,
		      size_t len)
{
	char dir[512];
	struct dirent *e;
	DIR *d;
	int err = -ENOENT;

	if (!name || !*name || strchr(name, '/') || strstr(name, ".."))
		return -EINVAL;
	snprintf(dir, sizeof(dir), "%s/sys/bus/vdpa/devices/%s",
		 sysfs_root ? sysfs_root : "", name);
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "vhost-vdpa-", 11)) {
			err = snprintf(buf, len, "/dev/%.32s", e->d_name) <
			      (int)len ? 0 : -ENAMETOOLONG;
			break;
		}
	closedir(d);
	return err;
}

int vdpa_mgmt_parent_of(const char *sysfs_root, const char *chardev,
			char *name, size_t name_len, char *parent,
			size_t parent_len)
{
	const char *base = chardev ? strrchr(chardev, '/') : NULL;
	char dir[512], p[1024], real[4096];
	struct dirent *e;
	int err = -ENOENT;
	DIR *d;

	if (!chardev)
		return -EINVAL;
	base = base ? base + 1 : chardev;
	snprintf(dir, sizeof(dir), "%s/sys/bus/vdpa/devices",
		 sysfs_root ? sysfs_root : "");
	d = opendir(dir);
	if (!d)
		return -ENODEV;
	while ((e = readdir(d))) {
		char *slash;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s/%s", dir, e->d_name, base);
		if (access(p, F_OK))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (!realpath(p, real))
			break;
		slash = strrchr(real, '/');	/* .../PARENT/vdpaX */
		if (!slash)
			break;
		*slash = 0;
		snprintf(name, name_len, "%s", e->d_name);
		snprintf(parent, parent_len, "%s", real);
		err = 0;
		break;
	}
	closedir(d);
	return err;
}

static int mgmtdev_name_cb(const struct nlmsghdr *nlh, void *data)
{
	struct attrs t;
	char *buf = data;
	int err = parse(nlh, &t);

	if (err < 0)
		return err;
	if (!t.tb[VDPA_ATTR_MGMTDEV_DEV_NAME])
		return -EBADMSG;
	snprintf(buf, 96, "%s%s%s",
		 t.tb[VDPA_ATTR_MGMTDEV_BUS_NAME] ?
		 mnl_attr_get_str(t.tb[VDPA_ATTR_MGMTDEV_BUS_NAME]) : "",
		 t.tb[VDPA_ATTR_MGMTDEV_BUS_NAME] ? "/" : "",
		 mnl_attr_get_str(t.tb[VDPA_ATTR_MGMTDEV_DEV_NAME]));
	return 0;
}

int vdpa_mgmt_dev_mgmtdev(const char *name, char *buf, size_t len)
{
	char msg[NL_BUF], out[96] = "", err[128];
	struct vdpa_mgmt *m;
	struct nlmsghdr *nlh;
	int r;

	if (!name || !buf)
		return -EINVAL;
	r = vdpa_mgmt_open(&m, err, sizeof(err));
	if (r < 0)
		return r;
	nlh = prepare(m, msg, m->family, VDPA_CMD_DEV_GET, 0);
	mnl_attr_put_strz(nlh, VDPA_ATTR_DEV_NAME, name);
	r = transact(m, nlh, mgmtdev_name_cb, out, err, sizeof(err));
	vdpa_mgmt_close(m);
	if (!r && !out[0])
		r = -ENOENT;
	if (!r)
		snprintf(buf, len, "%s", out);
	return r;
}
