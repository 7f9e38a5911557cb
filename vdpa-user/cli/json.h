/* SPDX-License-Identifier: MIT */
/* A small streaming JSON writer for the CLI's -j output. */
#ifndef VDPA_CLI_JSON_H
#define VDPA_CLI_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct json {
	FILE *f;
	int depth;
	bool need_comma[32];
	bool pretty;
};

void json_init(struct json *j, FILE *f, bool pretty);
void json_obj_open(struct json *j, const char *key);	/* key NULL in arrays */
void json_obj_close(struct json *j);
void json_arr_open(struct json *j, const char *key);
void json_arr_close(struct json *j);
void json_str(struct json *j, const char *key, const char *val);
void json_u64(struct json *j, const char *key, uint64_t val);
void json_i64(struct json *j, const char *key, int64_t val);
void json_dbl(struct json *j, const char *key, double val);
void json_bool(struct json *j, const char *key, bool val);
void json_null(struct json *j, const char *key);
/* Ends the document with a newline; sets json_emitted. */
void json_end(struct json *j);
/* A document went to stdout (the error at exit is then not printed). */
extern bool json_emitted;
/*
 * Helpers for the CLI's naming (docs/man/vdpa-user.1, JSON OUTPUT): a
 * 64-bit mask or address as a "0x..." string (exact in any JSON reader).
 */
void json_hex(struct json *j, const char *key, uint64_t val);

#endif
