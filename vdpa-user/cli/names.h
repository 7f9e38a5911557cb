/* SPDX-License-Identifier: MIT */
/* Names of virtio and vhost-vdpa bits, for dev info and state show. */
#ifndef VDPA_CLI_NAMES_H
#define VDPA_CLI_NAMES_H

#include <stdint.h>

/* Name of feature bit for a device class (net/blk/generic); NULL if none. */
const char *feature_name(uint32_t device_id, unsigned int bit);
const char *backend_feature_name(unsigned int bit);
const char *device_class_name(uint32_t device_id);
const char *status_bit_name(unsigned int bit);
/* iproute2's device type: "network", "block" ("<unknown type>"). */
const char *device_type_name(uint32_t device_id);

/* The three above as one kind of function, for cli_print_bits(). */
const char *feature_name_of(uint32_t device_id, unsigned int bit);
const char *backend_feature_name_of(uint32_t device_id, unsigned int bit);
const char *status_bit_name_of(uint32_t device_id, unsigned int bit);

struct json;
/*
 * A bit mask by name. JSON: key: [names; an unnamed bit as its number, as
 * iproute2 prints it] and key_hex: "0x..." beside. Text: one line,
 * "<indent>key 0x...: NAME NAME bit_N".
 */
void cli_print_bits(struct json *j, const char *key, uint64_t bits,
		    const char *(*name)(uint32_t device_id, unsigned int bit),
		    uint32_t device_id, const char *indent);

#endif
