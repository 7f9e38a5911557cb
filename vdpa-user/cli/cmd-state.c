// SPDX-License-Identifier: MIT
/* state show FILE, state check FILE DEV */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vdpa-user/state.h>

#include "cli.h"
#include "devopen.h"
#include "migrate.h"
#include "names.h"
#include "stream.h"

/*
 * Read a saved state: either a bare blob or a migrate-out file stream
 * (its DEVICE_STATE record, and with ret_mem its MEMORY record: *ret_mem
 * is set as soon as it is read, NULL without one; the caller destroys it,
 * also on failure). Prints the error.
 */
static int read_state_file(const char *path, struct vdpa_state **ret,
			   struct vdpa_mem **ret_mem)
{
	char err[256] = "";
	void *buf = NULL;
	size_t len = 0;
	struct stat st;
	uint64_t magic = 0;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cli_fail_errno(-errno, "%s", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return cli_fail("%s: not a regular file", path);
	}
	if (pread(fd, &magic, sizeof(magic), 0) == sizeof(magic) &&
	    (le64toh(magic) == STREAM_MAGIC || magic == STREAM_MAGIC)) {
		unsigned int version;
		uint32_t type;

		r = stream_get_header(fd, 1000, &version);
		if (r == 0 && version == 1)
			cli_warn("%s is a version-1 stream without integrity "
				 "checks", path);
		while (r == 0) {
			r = stream_get(fd, version, 1000, &type, &buf, &len);
			if (r < 0 || type == REC_DEVICE_STATE || type == REC_END)
				break;
			if (type == REC_MEMORY && ret_mem && !*ret_mem &&
			    (r = mig_memory_record(buf, len, ret_mem)) < 0) {
				free(buf);
				close(fd);
				return cli_fail_errno(r, "%s: driver memory "
						      "record", path);
			}
			free(buf);
			buf = NULL;
		}
		if (r < 0) {
			close(fd);
			return cli_fail("%s: %s", path, stream_error());
		}
		if (!buf) {
			close(fd);
			return cli_fail("%s: migration stream without a device "
					"state", path);
		}
	} else if ((uint64_t)st.st_size > cli.max_state) {
		close(fd);
		return cli_fail("%s: %lld bytes, larger than the %llu-byte cap "
				"(--max-state)", path, (long long)st.st_size,
				(unsigned long long)cli.max_state);
	} else {
		len = (size_t)st.st_size;
		buf = malloc(len ? len : 1);
		r = buf ? io_read_full(fd, buf, len, 1000) : -ENOMEM;
	}
	close(fd);
	if (r < 0) {
		free(buf);
		return cli_fail_errno(r, "%s: reading", path);
	}
	r = vdpa_state_decode(buf, len, cli.max_state, ret, err, sizeof(err));
	free(buf);
	if (r < 0)
		return cli_fail("%s: %s", path, err);
	return 0;
}

int cli_read_state_file(const char *path, struct vdpa_state **ret)
{
	return read_state_file(path, ret, NULL);
}

static const char *section_name(uint16_t type)
{
	static const char *const names[] = {
		NULL, "model", "config", "features", "queues", "net", "device",
		"net-rx",
	};

	/* bit 15: mandatory; the library's known types are mandatory ones */
	return (type & 0x8000) && (type & 0xff) < 8 && !(type & 0x7f00) ?
	       names[type & 0xff] : NULL;
}

static void json_mac(struct json *j, const char *key, const uint8_t *m)
{
	char b[18];

	snprintf(b, sizeof(b), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1],
		 m[2], m[3], m[4], m[5]);
	json_str(j, key, b);
}

/*
 * state show -j: the decoded state with the names every command uses
 * (type, max_vqs, max_vq_size, max_vq_pairs; feature and status bits by
 * name with the value beside), honouring -p.
 */
static void print_state_json(const struct vdpa_state *s)
{
	const struct vdpa_state_config *c = &s->cfg;
	struct json j;
	uint32_t i;

	json_init(&j, stdout, cli.pretty);
	json_obj_open(&j, NULL);
	json_u64(&j, "format_version", s->blob_len ? s->blob_version :
		 VDPA_STATE_VERSION);
	json_u64(&j, "blob_bytes", s->blob_len);
	json_arr_open(&j, "sections");
	for (i = 0; i < s->nsections; i++) {
		const struct vdpa_state_section *e = &s->sections[i];
		const char *n = section_name(e->type);

		json_obj_open(&j, NULL);
		json_u64(&j, "type", e->type);
		json_str(&j, "name", n ? n : "unknown");
		json_u64(&j, "bytes", e->len);
		json_bool(&j, "mandatory", e->type & 0x8000);
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_str(&j, "model", s->model);
	json_obj_open(&j, "config");
	json_str(&j, "type", device_type_name(c->device_id));
	json_u64(&j, "device_id", c->device_id);
	cli_print_bits(&j, "features", c->features_offered, feature_name_of,
		       c->device_id, "");
	json_u64(&j, "max_vqs", c->vq_count);
	json_u64(&j, "max_vq_size", c->vq_max_size);
	json_u64(&j, "config_size", c->config_size);
	json_mac(&j, "mac", c->mac);
	json_u64(&j, "mtu", c->mtu);
	json_u64(&j, "max_vq_pairs", c->max_vqp);
	json_u64(&j, "capacity", c->capacity);
	json_u64(&j, "blk_size", c->blk_size);
	json_obj_close(&j);
	if (s->has_features) {
		cli_print_bits(&j, "negotiated_features", s->features,
			       feature_name_of, c->device_id, "");
		cli_print_bits(&j, "backend_features", s->backend_features,
			       backend_feature_name_of, c->device_id, "");
		cli_print_bits(&j, "status", s->status, status_bit_name_of,
			       c->device_id, "");
		json_arr_open(&j, "queues");
		for (i = 0; i < s->nqueues; i++) {
			const struct vdpa_state_queue *q = &s->q[i];

			json_obj_open(&j, NULL);
			json_u64(&j, "index", q->index);
			json_u64(&j, "size", q->size);
			json_u64(&j, "base", q->base);
			json_u64(&j, "used_idx", q->used_idx);
			json_bool(&j, "enabled", q->enabled);
			json_hex(&j, "desc", q->desc);
			json_hex(&j, "avail", q->avail);
			json_hex(&j, "used", q->used);
			json_obj_close(&j);
		}
		json_arr_close(&j);
	}
	if (s->has_net) {
		json_obj_open(&j, "net");
		json_mac(&j, "mac", s->net.mac);
		json_u64(&j, "queue_pairs", s->net.queue_pairs);
		json_bool(&j, "promisc", s->net.promisc);
		json_bool(&j, "allmulti", s->net.allmulti);
		json_obj_close(&j);
	}
	if (s->has_device) {
		json_obj_open(&j, "device_state");
		json_u64(&j, "bytes", s->device_len);
		json_obj_close(&j);
	} else {
		json_null(&j, "device_state");
	}
	json_obj_close(&j);
	json_end(&j);
}

int cmd_state_show(int argc, char **argv)
{
	struct vdpa_state *s;
	int rc;

	cli_begin();
	if (argc != 1)
		return cli_fail("usage: vdpa-user state show FILE");
	rc = cli_read_state_file(argv[0], &s);
	if (rc)
		return rc;
	if (cli.json)
		print_state_json(s);
	else if (vdpa_state_print(s, stdout, false) < 0)
		rc = cli_fail("state show: writing the output failed");
	vdpa_state_free(s);
	return rc;
}

/* A name from the command line, printable on one line. */
static const char *printable(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	for (; *s && o + 5 <= len; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\\')
			o += (size_t)snprintf(buf + o, len - o, "\\\\");
		else if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o] = '\0';
	return buf;
}

/*
 * Would FILE load into DEV? vdpa_state_check_load(): the verdict the load
 * itself reaches first, with the driver memory of a migrate-out file.
 */
int cmd_state_check(int argc, char **argv)
{
	char err[512], file[1024], dev[1024];
	struct vdpa_state *s = NULL;
	struct vdpa_mem *mem = NULL;
	struct cli_dev d;
	int rc, r;

	cli_begin();
	if (argc != 2)
		return cli_fail("usage: vdpa-user state check FILE DEV");
	rc = read_state_file(argv[0], &s, &mem);
	if (rc)
		goto out;
	rc = cli_dev_open(argv[1], &d);
	if (rc)
		goto out;
	err[0] = '\0';
	r = vdpa_state_check_load(d.dev, s, mem, err, sizeof(err));
	cli_dev_close(&d);
	if (r < 0 && !err[0])
		snprintf(err, sizeof(err), "%s", strerror(-r));
	if (r < 0)
		mig_explain(err, sizeof(err));
	printable(argv[0], file, sizeof(file));
	printable(argv[1], dev, sizeof(dev));
	/* "no" is the answer, and an error: stderr, exit 1, and in JSON */
	if (r < 0)
		cli_fail("%s does not fit %s: %s", file, dev, err);
	if (cli.json) {
		struct json j;

		json_init(&j, stdout, cli.pretty);
		json_obj_open(&j, NULL);
		json_bool(&j, "compatible", r == 0);
		if (r < 0) {
			json_str(&j, "reason", err);
			cli_json_error(&j, NULL);
		}
		json_obj_close(&j);
		json_end(&j);
	} else if (r == 0) {
		printf("%s can be loaded into %s\n", file, dev);
	}
	rc = r < 0;
out:
	vdpa_state_free(s);
	vdpa_mem_destroy(mem);
	return rc;
}
