// SPDX-License-Identifier: MIT
/*
 * vdpa netlink parsing on messages built the way the kernel builds them
 * (drivers/vdpa/vdpa.c), so it is tested without a kernel; plus the sysfs
 * name -> /dev/vhost-vdpa-N mapping on a fake sysfs tree.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/vdpa.h>
#include <vdpa-user/mgmt.h>

#include "tap.h"
#include "testutil.h"

static char buf[8192];

static struct nlmsghdr *msg(uint8_t cmd)
{
	struct nlmsghdr *nlh;
	struct genlmsghdr *g;

	memset(buf, 0, sizeof(buf));
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = 0x20;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->cmd = cmd;
	g->version = 1;
	return nlh;
}

static void test_mgmtdev(void)
{
	struct nlmsghdr *nlh = msg(VDPA_CMD_MGMTDEV_NEW);
	struct vdpa_mgmtdev_info i;
	int r;

	mnl_attr_put_strz(nlh, VDPA_ATTR_MGMTDEV_DEV_NAME, "vdpasim_net");
	mnl_attr_put_u64(nlh, VDPA_ATTR_MGMTDEV_SUPPORTED_CLASSES, 1ull << 1);
	mnl_attr_put_u32(nlh, VDPA_ATTR_DEV_MGMTDEV_MAX_VQS, 3);
	mnl_attr_put_u64(nlh, VDPA_ATTR_DEV_SUPPORTED_FEATURES, 0x308820028ull);
	mnl_attr_put_u32(nlh, 200, 7);	/* an attribute from the future */
	memset(&i, 0x5a, sizeof(i));
	r = vdpa_mgmt_parse_mgmtdev(nlh, &i);
	tap_is(r, 0, "mgmtdev reply parsed (unknown attribute ignored)");
	tap_ok(r == 0 && !strcmp(i.dev, "vdpasim_net") && !i.bus[0] &&
	       i.classes == 2 && i.has_max_vqs && i.max_vqs == 3 &&
	       i.has_features && i.features == 0x308820028ull,
	       "mgmtdev fields: name, classes, max vqs, features");

	nlh = msg(VDPA_CMD_MGMTDEV_NEW);
	mnl_attr_put_strz(nlh, VDPA_ATTR_MGMTDEV_BUS_NAME, "pci");
	mnl_attr_put_strz(nlh, VDPA_ATTR_MGMTDEV_DEV_NAME, "0000:00:04.0");
	r = vdpa_mgmt_parse_mgmtdev(nlh, &i);
	tap_ok(r == 0 && !strcmp(i.bus, "pci") && !strcmp(i.dev, "0000:00:04.0")
	       && !i.has_max_vqs, "pci mgmtdev: bus + device name");

	nlh = msg(VDPA_CMD_MGMTDEV_NEW);
	mnl_attr_put_u32(nlh, VDPA_ATTR_DEV_MGMTDEV_MAX_VQS, 3);
	tap_is(vdpa_mgmt_parse_mgmtdev(nlh, &i), -EBADMSG,
	       "mgmtdev reply without a device name -> EBADMSG");

	nlh = msg(VDPA_CMD_MGMTDEV_NEW);
	mnl_attr_put_strz(nlh, VDPA_ATTR_MGMTDEV_DEV_NAME, "x");
	mnl_attr_put_u16(nlh, VDPA_ATTR_DEV_MGMTDEV_MAX_VQS, 3);
	tap_is(vdpa_mgmt_parse_mgmtdev(nlh, &i), -EBADMSG,
	       "ill-typed attribute (u16 where u32 is due) -> EBADMSG");
}

static void test_config(void)
{
	static const uint8_t mac[6] = { 0, 0x11, 0x22, 0x33, 0x44, 0x55 };
	struct vdpa_dev_config_info c;
	struct nlmsghdr *nlh = msg(VDPA_CMD_DEV_CONFIG_GET);
	int r;

	mnl_attr_put_strz(nlh, VDPA_ATTR_DEV_NAME, "vdpa0");
	mnl_attr_put_u32(nlh, VDPA_ATTR_DEV_ID, 1);
	mnl_attr_put(nlh, VDPA_ATTR_DEV_NET_CFG_MACADDR, 6, mac);
	mnl_attr_put_u16(nlh, VDPA_ATTR_DEV_NET_STATUS, 1);
	mnl_attr_put_u16(nlh, VDPA_ATTR_DEV_NET_CFG_MTU, 1500);
	mnl_attr_put_u64(nlh, VDPA_ATTR_DEV_NEGOTIATED_FEATURES, 0x300000000ull);
	memset(&c, 0x5a, sizeof(c));
	r = vdpa_mgmt_parse_config(nlh, &c);
	tap_is(r, 0, "dev config reply parsed");
	tap_ok(r == 0 && !strcmp(c.name, "vdpa0") && c.device_id == 1 &&
	       c.has_mac &&
	       !memcmp(c.mac, mac, 6) && c.has_status && c.status == 1 &&
	       c.has_mtu && c.mtu == 1500 && !c.has_max_vqp &&
	       c.has_features && c.negotiated == 0x300000000ull,
	       "config fields: mac, link status, mtu, negotiated features");

	nlh = msg(VDPA_CMD_DEV_CONFIG_GET);
	mnl_attr_put_strz(nlh, VDPA_ATTR_DEV_NAME, "vdpa0");
	mnl_attr_put_u32(nlh, VDPA_ATTR_DEV_ID, 1);
	mnl_attr_put(nlh, VDPA_ATTR_DEV_NET_CFG_MACADDR, 4, mac);
	tap_is(vdpa_mgmt_parse_config(nlh, &c), -EBADMSG,
	       "a 4-byte MAC attribute -> EBADMSG");

	nlh = msg(VDPA_CMD_DEV_CONFIG_GET);
	mnl_attr_put_strz(nlh, VDPA_ATTR_DEV_NAME, "vdpa0");
	tap_is(vdpa_mgmt_parse_config(nlh, &c), -EBADMSG,
	       "config reply without a device id -> EBADMSG");

	nlh = msg(VDPA_CMD_DEV_CONFIG_GET);
	nlh->nlmsg_len = NLMSG_HDRLEN + 2;	/* truncated genl header */
	tap_is(vdpa_mgmt_parse_config(nlh, &c), -EBADMSG,
	       "truncated message -> EBADMSG");
}

static void test_vstats(void)
{
	struct nlmsghdr *nlh = msg(VDPA_CMD_DEV_VSTATS_GET);
	struct vdpa_vstats v;
	int r;

	mnl_attr_put_strz(nlh, VDPA_ATTR_DEV_NAME, "vdpa0");
	mnl_attr_put_u32(nlh, VDPA_ATTR_DEV_ID, 1);
	mnl_attr_put_u32(nlh, VDPA_ATTR_DEV_QUEUE_INDEX, 1);
	mnl_attr_put_strz(nlh, VDPA_ATTR_DEV_VENDOR_ATTR_NAME, "received_desc");
	mnl_attr_put_u64(nlh, VDPA_ATTR_DEV_VENDOR_ATTR_VALUE, 42);
	mnl_attr_put_strz(nlh, VDPA_ATTR_DEV_VENDOR_ATTR_NAME, "completed_desc");
	mnl_attr_put_u64(nlh, VDPA_ATTR_DEV_VENDOR_ATTR_VALUE, 41);
	memset(&v, 0x5a, sizeof(v));
	r = vdpa_mgmt_parse_vstats(nlh, &v);
	tap_is(r, 0, "vstats reply parsed");
	tap_ok(r == 0 && v.queue_index == 1 && v.n == 2 &&
	       !strcmp(v.attr[0].name, "received_desc") && v.attr[0].value == 42 &&
	       !strcmp(v.attr[1].name, "completed_desc") && v.attr[1].value == 41,
	       "vstats name/value pairs in order");

	nlh = msg(VDPA_CMD_DEV_VSTATS_GET);
	mnl_attr_put_strz(nlh, VDPA_ATTR_DEV_NAME, "vdpa0");
	mnl_attr_put_u32(nlh, VDPA_ATTR_DEV_QUEUE_INDEX, 1);
	mnl_attr_put_strz(nlh, VDPA_ATTR_DEV_VENDOR_ATTR_NAME, "orphan");
	tap_is(vdpa_mgmt_parse_vstats(nlh, &v), -EBADMSG,
	       "a vstats name without its value -> EBADMSG");
}

static void test_error(void)
{
	struct nlmsghdr *nlh;
	struct nlmsgerr *e;
	char text[128];

	memset(buf, 0, sizeof(buf));
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = NLMSG_ERROR;
	nlh->nlmsg_flags = NLM_F_CAPPED | NLM_F_ACK_TLVS;
	e = mnl_nlmsg_put_extra_header(nlh, sizeof(*e));
	e->error = -EOPNOTSUPP;
	e->msg.nlmsg_len = 40;
	mnl_attr_put_strz(nlh, NLMSGERR_ATTR_MSG,
			  "All provided attributes are not supported");
	text[0] = 0;
	tap_is(vdpa_mgmt_parse_error(nlh, text, sizeof(text)), -EOPNOTSUPP,
	       "NLMSG_ERROR with extack: errno");
	tap_ok(!strcmp(text, "All provided attributes are not supported"),
	       "extack message extracted: '%s'", text);

	memset(buf, 0, sizeof(buf));
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = NLMSG_ERROR;
	e = mnl_nlmsg_put_extra_header(nlh, sizeof(*e));
	e->error = 0;
	tap_is(vdpa_mgmt_parse_error(nlh, text, sizeof(text)), 0,
	       "an ACK is error 0, no message");
	tap_ok(text[0] == 0, "no extack text for an ACK");
}

static void test_sysfs(void)
{
	char root[256], path[600], dev[64];

	if (tu_mkdtemp(root, sizeof(root))) {
		tap_ok(0, "temp dir");
		return;
	}
	snprintf(path, sizeof(path), "%s/sys/bus/vdpa/devices/vdpa0/vhost-vdpa-3",
		 root);
	{
		char cmd[700];

		snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", path);
		tap_is(system(cmd), 0, "fake sysfs tree");
	}
	dev[0] = 0;
	tap_is(vdpa_mgmt_chardev(root, "vdpa0", dev, sizeof(dev)), 0,
	       "vdpa0 maps through sysfs");
	tap_ok(!strcmp(dev, "/dev/vhost-vdpa-3"), "vdpa0 -> %s", dev);
	tap_is(vdpa_mgmt_chardev(root, "nosuch", dev, sizeof(dev)), -ENOENT,
	       "unknown device name -> ENOENT");
	tap_is(vdpa_mgmt_chardev(root, "../x", dev, sizeof(dev)), -EINVAL,
	       "a name with a path in it -> EINVAL");
	tu_rmtree(root);
}

static void test_live(void)
{
	struct vdpa_mgmt *m;
	char err[256];
	int r = vdpa_mgmt_open(&m, err, sizeof(err));

	if (r == -EPROTONOSUPPORT) {
		tap_ok(strstr(err, "vdpa netlink family not found") != NULL,
		       "no vdpa family here: clear message '%s'", err);
		return;
	}
	tap_is(r, 0, "vdpa family resolved on this kernel");
	vdpa_mgmt_close(m);
}

int main(void)
{
	int fds;

	tap_need_fd_count();
	fds = tap_count_fds();

	test_mgmtdev();
	test_config();
	test_vstats();
	test_error();
	test_sysfs();
	test_live();
	tap_is(tap_count_fds(), fds, "no fd leaked");
	return tap_done();
}
