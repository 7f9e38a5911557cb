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
#include "stream.h"

/*
 * The MEMORY record of a migrate-out file (u64 iova, u64 size, u64
 * allocator cursor, then cursor bytes of driver memory), checked as
 * migrate-in checks it, as a vdpa_mem mapped into no device.
 */
static int memory_record(const void *p, size_t len, struct vdpa_mem **ret)
{
	struct vdpa_mem *m;
	uint64_t h[3];
	int r;

	if (len < sizeof(h))
		return -EBADMSG;
	memcpy(h, p, sizeof(h));
	if (!h[1] || h[1] > (1ull << 32) || h[2] > h[1] ||
	    len != sizeof(h) + h[2])
		return -EBADMSG;
	r = vdpa_mem_create(h[1], h[0], &m);
	if (r < 0)
		return r;
	memcpy(vdpa_mem_base(m), (const uint8_t *)p + sizeof(h), h[2]);
	*ret = m;
	return 0;
}

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
		return cli_errno(-errno, "%s", path);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return cli_err("%s: not a regular file", path);
	}
	if (pread(fd, &magic, sizeof(magic), 0) == sizeof(magic) &&
	    (le64toh(magic) == STREAM_MAGIC || magic == STREAM_MAGIC)) {
		unsigned int version;
		uint32_t type;

		r = stream_get_header(fd, 1000, &version);
		if (r == 0 && version == 1)
			cli_err("warning: %s is a version-1 stream without "
				"integrity checks", path);
		while (r == 0) {
			r = stream_get(fd, version, 1000, &type, &buf, &len);
			if (r < 0 || type == REC_DEVICE_STATE || type == REC_END)
				break;
			if (type == REC_MEMORY && ret_mem && !*ret_mem &&
			    (r = memory_record(buf, len, ret_mem)) < 0) {
				free(buf);
				close(fd);
				return cli_errno(r, "%s: driver memory record",
						 path);
			}
			free(buf);
			buf = NULL;
		}
		if (r < 0) {
			close(fd);
			return cli_err("%s: %s", path, stream_error());
		}
		if (!buf) {
			close(fd);
			return cli_err("%s: migration stream without a device "
				       "state", path);
		}
	} else if ((uint64_t)st.st_size > cli.max_state) {
		close(fd);
		return cli_err("%s: %lld bytes, larger than the %llu-byte cap "
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
		return cli_errno(r, "%s: reading", path);
	}
	r = vdpa_state_decode(buf, len, cli.max_state, ret, err, sizeof(err));
	free(buf);
	if (r < 0)
		return cli_err("%s: %s", path, err);
	return 0;
}

int cli_read_state_file(const char *path, struct vdpa_state **ret)
{
	return read_state_file(path, ret, NULL);
}

int cmd_state_show(int argc, char **argv)
{
	struct vdpa_state *s;
	int rc;

	if (argc != 1)
		return cli_err("usage: vdpa-user state show FILE");
	rc = cli_read_state_file(argv[0], &s);
	if (rc)
		return rc;
	rc = vdpa_state_print(s, stdout, cli.json) < 0;
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

	if (argc != 2)
		return cli_err("usage: vdpa-user state check FILE DEV");
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
	printable(argv[0], file, sizeof(file));
	printable(argv[1], dev, sizeof(dev));
	if (cli.json) {
		struct json j;

		json_init(&j, stdout, cli.pretty);
		json_obj_open(&j, NULL);
		json_bool(&j, "compatible", r == 0);
		if (r < 0)
			json_str(&j, "reason", err);
		json_obj_close(&j);
		json_end(&j);
	} else if (r < 0) {
		cli_err("%s does not fit %s: %s", file, dev, err);
	} else {
		printf("%s can be loaded into %s\n", file, dev);
	}
	rc = r < 0;
out:
	vdpa_state_free(s);
	vdpa_mem_destroy(mem);
	return rc;
}
