// SPDX-License-Identifier: MIT
#include <stddef.h>
#include <stdio.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <vdpa-user/uapi-ext.h>

#include "cli.h"
#include "names.h"

#define B(x) [x] = #x

static const char *const generic_bits[64] = {
	[VIRTIO_RING_F_INDIRECT_DESC] = "RING_INDIRECT_DESC",
	[VIRTIO_RING_F_EVENT_IDX] = "RING_EVENT_IDX",
	[VIRTIO_F_NOTIFY_ON_EMPTY] = "NOTIFY_ON_EMPTY",
	[VIRTIO_F_ANY_LAYOUT] = "ANY_LAYOUT",
	[VIRTIO_F_VERSION_1] = "VERSION_1",
	[VIRTIO_F_ACCESS_PLATFORM] = "ACCESS_PLATFORM",
	[VIRTIO_F_RING_PACKED] = "RING_PACKED",
	[VIRTIO_F_IN_ORDER] = "IN_ORDER",
	[VIRTIO_F_ORDER_PLATFORM] = "ORDER_PLATFORM",
	[VIRTIO_F_SR_IOV] = "SR_IOV",
	[38] = "NOTIFICATION_DATA",
	[VIRTIO_F_RING_RESET] = "RING_RESET",
};

static const char *const net_bits[64] = {
	[VIRTIO_NET_F_CSUM] = "CSUM",
	[VIRTIO_NET_F_GUEST_CSUM] = "GUEST_CSUM",
	[VIRTIO_NET_F_CTRL_GUEST_OFFLOADS] = "CTRL_GUEST_OFFLOADS",
	[VIRTIO_NET_F_MTU] = "MTU",
	[VIRTIO_NET_F_MAC] = "MAC",
	[VIRTIO_NET_F_GUEST_TSO4] = "GUEST_TSO4",
	[VIRTIO_NET_F_GUEST_TSO6] = "GUEST_TSO6",
	[VIRTIO_NET_F_GUEST_ECN] = "GUEST_ECN",
	[VIRTIO_NET_F_GUEST_UFO] = "GUEST_UFO",
	[VIRTIO_NET_F_HOST_TSO4] = "HOST_TSO4",
	[VIRTIO_NET_F_HOST_TSO6] = "HOST_TSO6",
	[VIRTIO_NET_F_HOST_ECN] = "HOST_ECN",
	[VIRTIO_NET_F_HOST_UFO] = "HOST_UFO",
	[VIRTIO_NET_F_MRG_RXBUF] = "MRG_RXBUF",
	[VIRTIO_NET_F_STATUS] = "STATUS",
	[VIRTIO_NET_F_CTRL_VQ] = "CTRL_VQ",
	[VIRTIO_NET_F_CTRL_RX] = "CTRL_RX",
	[VIRTIO_NET_F_CTRL_VLAN] = "CTRL_VLAN",
	[VIRTIO_NET_F_CTRL_RX_EXTRA] = "CTRL_RX_EXTRA",
	[VIRTIO_NET_F_GUEST_ANNOUNCE] = "GUEST_ANNOUNCE",
	[VIRTIO_NET_F_MQ] = "MQ",
	[VIRTIO_NET_F_CTRL_MAC_ADDR] = "CTRL_MAC_ADDR",
	[VIRTIO_NET_F_HASH_REPORT] = "HASH_REPORT",
	[VIRTIO_NET_F_RSS] = "RSS",
	[VIRTIO_NET_F_RSC_EXT] = "RSC_EXT",
	[VIRTIO_NET_F_STANDBY] = "STANDBY",
	[VIRTIO_NET_F_SPEED_DUPLEX] = "SPEED_DUPLEX",
};

static const char *const blk_bits[64] = {
	[VIRTIO_BLK_F_SIZE_MAX] = "SIZE_MAX",
	[VIRTIO_BLK_F_SEG_MAX] = "SEG_MAX",
	[VIRTIO_BLK_F_GEOMETRY] = "GEOMETRY",
	[VIRTIO_BLK_F_RO] = "RO",
	[VIRTIO_BLK_F_BLK_SIZE] = "BLK_SIZE",
	[VIRTIO_BLK_F_FLUSH] = "FLUSH",
	[VIRTIO_BLK_F_TOPOLOGY] = "TOPOLOGY",
	[VIRTIO_BLK_F_CONFIG_WCE] = "CONFIG_WCE",
	[VIRTIO_BLK_F_MQ] = "MQ",
	[VIRTIO_BLK_F_DISCARD] = "DISCARD",
	[VIRTIO_BLK_F_WRITE_ZEROES] = "WRITE_ZEROES",
	[VIRTIO_BLK_F_SECURE_ERASE] = "SECURE_ERASE",
};

static const char *const backend_bits[64] = {
	[VHOST_BACKEND_F_IOTLB_MSG_V2] = "IOTLB_MSG_V2",
	[VHOST_BACKEND_F_IOTLB_BATCH] = "IOTLB_BATCH",
	[VHOST_BACKEND_F_IOTLB_ASID] = "IOTLB_ASID",
	[VHOST_BACKEND_F_SUSPEND] = "SUSPEND",
	[VHOST_BACKEND_F_RESUME] = "RESUME",
	[VHOST_BACKEND_F_ENABLE_AFTER_DRIVER_OK] = "ENABLE_AFTER_DRIVER_OK",
	[VHOST_BACKEND_F_DESC_ASID] = "DESC_ASID",
	[VHOST_BACKEND_F_IOTLB_PERSIST] = "IOTLB_PERSIST",
	[VHOST_BACKEND_F_DEVICE_STATE] = "DEVICE_STATE",
	[VHOST_BACKEND_F_DEVICE_STATE_PRECOPY] = "DEVICE_STATE_PRECOPY",
};

const char *feature_name(uint32_t device_id, unsigned int bit)
{
	if (bit >= 64)
		return NULL;
	if (generic_bits[bit])
		return generic_bits[bit];
	if (device_id == VIRTIO_ID_NET)
		return net_bits[bit];
	if (device_id == VIRTIO_ID_BLOCK)
		return blk_bits[bit];
	return NULL;
}

const char *backend_feature_name(unsigned int bit)
{
	return bit < 64 ? backend_bits[bit] : NULL;
}

const char *device_class_name(uint32_t device_id)
{
	switch (device_id) {
	case VIRTIO_ID_NET: return "net";
	case VIRTIO_ID_BLOCK: return "blk";
	default: return "unknown";
	}
}

const char *status_bit_name(unsigned int bit)
{
	static const char *const names[8] = {
		"ACKNOWLEDGE", "DRIVER", "DRIVER_OK", "FEATURES_OK",
		NULL, NULL, "NEEDS_RESET", "FAILED",
	};

	return bit < 8 ? names[bit] : NULL;
}

void cli_print_bits(struct json *j, const char *key, uint64_t bits,
		    const char *(*name)(uint32_t device_id, unsigned int bit),
		    uint32_t device_id, const char *indent)
{
	char hex[48];
	unsigned int b;

	snprintf(hex, sizeof(hex), "%s_hex", key);
	if (cli.json)
		json_arr_open(j, key);
	else
		printf("%s%s 0x%llx:", indent, key, (unsigned long long)bits);
	for (b = 0; b < 64; b++) {
		const char *n;

		if (!(bits & (1ULL << b)))
			continue;
		n = name(device_id, b);
		/* unnamed: a number in JSON, bit_N in text (as iproute2) */
		if (cli.json && n)
			json_str(j, NULL, n);
		else if (cli.json)
			json_u64(j, NULL, b);
		else if (n)
			printf(" %s", n);
		else
			printf(" bit_%u", b);
	}
	if (cli.json) {
		json_arr_close(j);
		json_hex(j, hex, bits);
	} else {
		printf("\n");
	}
}

const char *feature_name_of(uint32_t device_id, unsigned int bit)
{
	return feature_name(device_id, bit);
}

const char *backend_feature_name_of(uint32_t device_id, unsigned int bit)
{
	(void)device_id;
	return backend_feature_name(bit);
}

const char *status_bit_name_of(uint32_t device_id, unsigned int bit)
{
	(void)device_id;
	return status_bit_name(bit);
}

const char *device_type_name(uint32_t device_id)
{
	switch (device_id) {
	case VIRTIO_ID_NET: return "network";
	case VIRTIO_ID_BLOCK: return "block";
	default: return "<unknown type>";
	}
}
