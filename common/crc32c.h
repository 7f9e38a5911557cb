/* SPDX-License-Identifier: MIT */
#ifndef VDPA_COMMON_CRC32C_H
#define VDPA_COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * CRC-32C (Castagnoli), reflected, init and final xor ~0 handled inside:
 * crc32c(0, "123456789", 9) == 0xE3069283. Chain by passing the previous
 * result as crc.
 */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
