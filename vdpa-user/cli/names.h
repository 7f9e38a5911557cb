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

#endif
