// SPDX-License-Identifier: MIT
#include <assert.h>
#include <math.h>
#include <stdio.h>

#include "json.h"

void json_init(struct json *j, FILE *f, bool pretty)
{
	j->f = f;
	j->depth = 0;
	j->need_comma[0] = false;
	j->pretty = pretty;
}

static void put_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\t': fputs("\\t", f); break;
		case '\r': fputs("\\r", f); break;
		default:
			/*
			 * RFC 8259: control characters must be escaped; the
			 * output stays ASCII, so no byte >= 0x7f is left to
			 * be taken for (invalid) UTF-8: each is \u00XX, as
			 * the library's state print escapes them.
			 */
			if (c < 0x20 || c >= 0x7f)
				fprintf(f, "\\u%04x", c);
			else
				fputc(c, f);
		}
	}
	fputc('"', f);
}

static void indent(struct json *j)
{
	int i;

	if (!j->pretty)
		return;
	fputc('\n', j->f);
	for (i = 0; i < j->depth; i++)
		fputs("  ", j->f);
}

static void key(struct json *j, const char *k)
{
	if (j->need_comma[j->depth])
		fputc(',', j->f);
	j->need_comma[j->depth] = true;
	if (j->depth)
		indent(j);
	if (k) {
		put_string(j->f, k);
		fputs(j->pretty ? ": " : ":", j->f);
	}
}

static void open_(struct json *j, const char *k, char c)
{
	key(j, k);
	fputc(c, j->f);
	assert(j->depth < 31);
	j->need_comma[++j->depth] = false;
}

static void close_(struct json *j, char c)
{
	bool had = j->need_comma[j->depth];

	assert(j->depth > 0);
	j->depth--;
	if (had)
		indent(j);
	fputc(c, j->f);
}

void json_obj_open(struct json *j, const char *k) { open_(j, k, '{'); }
void json_obj_close(struct json *j) { close_(j, '}'); }
void json_arr_open(struct json *j, const char *k) { open_(j, k, '['); }
void json_arr_close(struct json *j) { close_(j, ']'); }

void json_str(struct json *j, const char *k, const char *val)
{
	key(j, k);
	put_string(j->f, val ? val : "");
}

void json_u64(struct json *j, const char *k, uint64_t val)
{
	key(j, k);
	fprintf(j->f, "%llu", (unsigned long long)val);
}

void json_i64(struct json *j, const char *k, int64_t val)
{
	key(j, k);
	fprintf(j->f, "%lld", (long long)val);
}

void json_dbl(struct json *j, const char *k, double val)
{
	key(j, k);
	if (isfinite(val))
		fprintf(j->f, "%.6g", val);
	else
		fputs("null", j->f);
}

void json_bool(struct json *j, const char *k, bool val)
{
	key(j, k);
	fputs(val ? "true" : "false", j->f);
}

void json_null(struct json *j, const char *k)
{
	key(j, k);
	fputs("null", j->f);
}

bool json_emitted;

void json_end(struct json *j)
{
	fputc('\n', j->f);
	fflush(j->f);
	if (j->f == stdout)
		json_emitted = true;
}

void json_hex(struct json *j, const char *k, uint64_t val)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)val);
	json_str(j, k, buf);
}
