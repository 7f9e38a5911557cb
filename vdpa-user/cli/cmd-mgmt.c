// SPDX-License-Identifier: MIT
/*
 * mgmtdev show, dev add/del, dev config show, dev vstats show: the vdpa
 * netlink commands, printed with iproute2 vdpa's text and JSON shapes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <vdpa-user/mgmt.h>

#include "cli.h"
#include "names.h"

/* iproute2 names only transport bits and net bits; others are bit_N. */
static void print_features(struct json *j, const char *key, uint64_t f,
			   uint32_t device_id)
{
	unsigned int b;

	if (cli.json)
		json_arr_open(j, key);
	else
		printf(" %s", key);
	for (b = 0; b < 64; b++) {
		const char *n = NULL;
		char tmp[16];

		if (!(f & (1ULL << b)))
			continue;
		/* iproute2 knows transport bits 28, 29, 32-38 by name */
		if (b >= 28 && b <= 41)
			n = b == 28 || b == 29 || (b >= 32 && b <= 38) ?
			    feature_name(device_id, b) : NULL;
		else if (device_id == VIRTIO_ID_NET)
			n = feature_name(device_id, b);
		if (!n) {
			/* unnamed bits: a number in JSON, bit_N in text */
			snprintf(tmp, sizeof(tmp), "bit_%u", b);
			if (cli.json)
				json_u64(j, NULL, b);
			else
				printf(" %s", tmp);
			continue;
		}
		if (cli.json)
			json_str(j, NULL, n);
		else
			printf(" %s", n);
	}
	if (cli.json)
		json_arr_close(j);
}

static int open_mgmt(const char *what, struct vdpa_mgmt **m)
{
	char err[256];
	int r = vdpa_mgmt_open(m, err, sizeof(err));

	return r < 0 ? cli_fail("%s: %s", what, err) : 0;
}

static int nl_fail(const char *what, int r, const char *err)
{
	if (err && *err)
		return cli_fail("%s: %s: %s", what, err, strerror(-r));
	return cli_fail_errno(r, "%s", what);
}

int cmd_mgmtdev_show(int argc, char **argv)
{
	struct vdpa_mgmtdev_info *l;
	struct vdpa_mgmt *m;
	struct json j;
	char err[256];
	size_t n, i;
	int r;

	cli_begin();

	if (argc > 1)
		return cli_fail("usage: vdpa-user mgmtdev show [MGMTDEV]");
	if (open_mgmt("mgmtdev show", &m))
		return 1;
	r = vdpa_mgmt_list(m, argc ? argv[0] : NULL, &l, &n, err, sizeof(err));
	vdpa_mgmt_close(m);
	if (r < 0)
		return nl_fail("mgmtdev show", r, err);
	json_init(&j, stdout, cli.pretty);
	if (cli.json) {
		json_obj_open(&j, NULL);
		json_obj_open(&j, "mgmtdev");
	}
	for (i = 0; i < n; i++) {
		char name[100];
		unsigned int c;

		snprintf(name, sizeof(name), "%s%s%s", l[i].bus,
			 l[i].bus[0] ? "/" : "", l[i].dev);
		if (cli.json) {
			json_obj_open(&j, name);
			json_arr_open(&j, "supported_classes");
		} else {
			printf("%s: \n  supported_classes", name);
		}
		for (c = 1; c < 64; c++) {
			const char *cn;

			if (!(l[i].classes & (1ULL << c)))
				continue;
			cn = c == VIRTIO_ID_NET ? "net" : c == VIRTIO_ID_BLOCK ?
			     "block" : "< unknown class >";
			if (cli.json)
				json_str(&j, NULL, cn);
			else
				printf(" %s", cn);
		}
		if (cli.json)
			json_arr_close(&j);
		if (l[i].has_max_vqs) {
			if (cli.json)
				json_u64(&j, "max_supported_vqs", l[i].max_vqs);
			else
				printf("\n  max_supported_vqs %u", l[i].max_vqs);
		}
		if (l[i].has_features) {
			uint32_t id = l[i].classes & (1ULL << VIRTIO_ID_NET) ?
				      VIRTIO_ID_NET : 0;

			if (!cli.json)
				printf("\n ");
			print_features(&j, "dev_features", l[i].features, id);
		}
		if (cli.json)
			json_obj_close(&j);
		else
			printf("\n");
	}
	if (cli.json) {
		json_obj_close(&j);
		json_obj_close(&j);
		json_end(&j);
	}
	free(l);
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int v[6], i;
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &tail) != 6 || strlen(s) != 17)
		return -EINVAL;
	for (i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

int cmd_dev_add(int argc, char **argv)
{
	struct vdpa_dev_add_opts o = { 0 };
	struct vdpa_mgmt *m;
	char err[256];
	uint64_t v;
	int i, r;

	cli_begin();

	for (i = 0; i < argc; i++) {
		const char *k = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(k, "name") && val) {
			o.name = val;
		} else if (!strcmp(k, "mgmtdev") && val) {
			o.mgmtdev = val;
		} else if (!strcmp(k, "mac") && val) {
			if (parse_mac(val, o.mac))
				return cli_fail("dev add: mac '%s' is not "
						"xx:xx:xx:xx:xx:xx", val);
			o.has_mac = true;
		} else if (!strcmp(k, "mtu") && val) {
			if (cli_parse_u64(val, 65535, &v) || v < 68)
				return cli_fail("dev add: mtu: 68..65535, not "
						"'%s'", val);
			o.has_mtu = true;
			o.mtu = (uint16_t)v;
		} else if (!strcmp(k, "max_vqp") && val) {
			if (cli_parse_u64(val, 65535, &v) || !v)
				return cli_fail("dev add: max_vqp: 1..65535, "
						"not '%s'", val);
			o.has_max_vqp = true;
			o.max_vqp = (uint16_t)v;
		} else if (!strcmp(k, "device_features") && val) {
			if (cli_parse_u64(val, UINT64_MAX, &v))
				return cli_fail("dev add: device_features '%s' "
						"is not a number", val);
			o.has_features = true;
			o.features = v;
		} else if (i == 0 && strcmp(k, "name")) {
			o.name = k;	/* "dev add NAME mgmtdev M" */
			continue;
		} else {
			return cli_fail("dev add: unexpected '%s'", k);
		}
		i++;
	}
	if (!o.name || !o.mgmtdev)
		return cli_fail("usage: vdpa-user dev add [name] NAME mgmtdev "
				"M [mac ADDR] [mtu N] [max_vqp N] "
				"[device_features HEX]");
	if (open_mgmt("dev add", &m))
		return 1;
	r = vdpa_mgmt_dev_add(m, &o, err, sizeof(err));
	vdpa_mgmt_close(m);
	return r < 0 ? nl_fail("dev add", r, err) : 0;
}

int cmd_dev_del(int argc, char **argv)
{
	struct vdpa_mgmt *m;
	char err[256];
	int r;

	cli_begin();

	if (argc != 1)
		return cli_fail("usage: vdpa-user dev del NAME");
	if (open_mgmt("dev del", &m))
		return 1;
	r = vdpa_mgmt_dev_del(m, argv[0], err, sizeof(err));
	vdpa_mgmt_close(m);
	return r < 0 ? nl_fail("dev del", r, err) : 0;
}

int cmd_dev_config_show(int argc, char **argv)
{
	struct vdpa_dev_config_info *l;
	struct vdpa_mgmt *m;
	struct json j;
	char err[256];
	size_t n, i;
	int r;

	cli_begin();

	if (argc > 1)
		return cli_fail("usage: vdpa-user dev config show [NAME]");
	if (open_mgmt("dev config show", &m))
		return 1;
	r = vdpa_mgmt_dev_config(m, argc ? argv[0] : NULL, &l, &n, err,
				 sizeof(err));
	vdpa_mgmt_close(m);
	if (r < 0)
		return nl_fail("dev config show", r, err);
	json_init(&j, stdout, cli.pretty);
	if (cli.json) {
		json_obj_open(&j, NULL);
		json_obj_open(&j, "config");
	}
	for (i = 0; i < n; i++) {
		const struct vdpa_dev_config_info *c = &l[i];
		char mac[18];

		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x",
			 c->mac[0], c->mac[1], c->mac[2], c->mac[3], c->mac[4],
			 c->mac[5]);
		if (cli.json)
			json_obj_open(&j, c->name);
		else
			printf("%s: ", c->name);
		if (c->device_id != VIRTIO_ID_NET)
			goto next;
		if (c->has_mac) {
			if (cli.json)
				json_str(&j, "mac", mac);
			else
				printf("mac %s ", mac);
		}
		if (c->has_status) {
			bool up = c->status & VIRTIO_NET_S_LINK_UP;
			bool ann = c->status & VIRTIO_NET_S_ANNOUNCE;

			/* iproute2's keys carry a trailing space */
			if (cli.json) {
				json_str(&j, "link ", up ? "up" : "down");
				json_bool(&j, "link_announce ", ann);
			} else {
				printf("link %s link_announce %s ",
				       up ? "up" : "down",
				       ann ? "true" : "false");
			}
		}
		if (c->has_max_vqp) {
			if (cli.json)
				json_u64(&j, "max_vq_pairs", c->max_vqp);
			else
				printf("max_vq_pairs %u ", c->max_vqp);
		}
		if (c->has_mtu) {
			if (cli.json)
				json_u64(&j, "mtu", c->mtu);
			else
				printf("mtu %u ", c->mtu);
		}
		if (c->has_features) {
			if (!cli.json)
				printf("\n ");
			print_features(&j, "negotiated_features", c->negotiated,
				       c->device_id);
		}
next:
		if (cli.json)
			json_obj_close(&j);
		else
			printf("\n");
	}
	if (cli.json) {
		json_obj_close(&j);
		json_obj_close(&j);
		json_end(&j);
	}
	free(l);
	return 0;
}

int cmd_dev_vstats_show(int argc, char **argv)
{
	struct vdpa_vstats v;
	struct vdpa_mgmt *m;
	struct json j;
	char err[256];
	uint64_t q;
	unsigned int i;
	int r;

	cli_begin();

	if (argc != 3 || strcmp(argv[1], "qidx"))
		return cli_fail("usage: vdpa-user dev vstats show NAME qidx N");
	if (cli_parse_u64(argv[2], UINT32_MAX, &q))
		return cli_fail("dev vstats show: qidx: 0..%u, not '%s'",
				UINT32_MAX, argv[2]);
	if (open_mgmt("dev vstats show", &m))
		return 1;
	r = vdpa_mgmt_vstats(m, argv[0], (uint32_t)q, &v, err, sizeof(err));
	vdpa_mgmt_close(m);
	if (r < 0)
		return nl_fail("dev vstats show", r, err);
	json_init(&j, stdout, cli.pretty);
	if (cli.json) {
		json_obj_open(&j, NULL);
		json_obj_open(&j, "vstats");
		json_obj_open(&j, v.name);
		json_u64(&j, "queue_index", v.queue_index);
	} else {
		printf("%s: queue_index %u", v.name, v.queue_index);
	}
	for (i = 0; i < v.n; i++) {
		if (cli.json) {
			json_str(&j, "name", v.attr[i].name);
			json_u64(&j, "value", v.attr[i].value);
		} else {
			printf(" %s %llu", v.attr[i].name,
			       (unsigned long long)v.attr[i].value);
		}
	}
	if (cli.json) {
		json_obj_close(&j);
		json_obj_close(&j);
		json_obj_close(&j);
		json_end(&j);
	} else {
		printf("\n");
	}
	return 0;
}
