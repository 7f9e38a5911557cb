// SPDX-License-Identifier: MIT
/* state show FILE, state check FILE DEV */
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
 * Read a saved state: either a bare blob or a migrate-out file stream
 * (its DEVICE_STATE record). Prints the error.
 */
int cli_read_state_file(const char *path, struct vdpa_state **ret)
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
	    magic == STREAM_MAGIC) {
		uint32_t type;

		r = stream_get_header(fd, 1000);
		while (r == 0) {
			r = stream_get(fd, 1000, &type, &buf, &len);
			if (r < 0 || type == REC_DEVICE_STATE || type == REC_END)
				break;
			free(buf);
			buf = NULL;
		}
		if (r == 0 && !buf) {
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
	if (r == -EFBIG) {
		free(buf);
		return cli_err("%s: device state larger than the %llu-byte cap "
			       "(--max-state)", path,
			       (unsigned long long)cli.max_state);
	}
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

int cmd_state_check(int argc, char **argv)
{
	struct vdpa_state *s, *desc;
	struct cli_dev d;
	char err[256];
	int rc, r;

	if (argc != 2)
		return cli_err("usage: vdpa-user state check FILE DEV");
	rc = cli_read_state_file(argv[0], &s);
	if (rc)
		return rc;
	rc = cli_dev_open(argv[1], &d);
	if (rc)
		goto out;
	r = vdpa_state_describe(d.dev, &desc);
	if (r < 0) {
		rc = cli_errno(r, "%s: describing", argv[1]);
		goto out_close;
	}
	r = vdpa_state_compat(s, desc, err, sizeof(err));
	if (!r && s->has_features &&
	    (s->backend_features & ~d.caps.backend_features)) {
		snprintf(err, sizeof(err), "backend features: source 0x%llx, "
			 "destination offers 0x%llx",
			 (unsigned long long)s->backend_features,
			 (unsigned long long)d.caps.backend_features);
		r = -EPROTO;
	}
	vdpa_state_free(desc);
	if (r < 0) {
		rc = cli_err("%s does not fit %s: %s", argv[0], argv[1], err);
	} else if (cli.json) {
		printf("{\"compatible\":true}\n");
	} else {
		printf("%s can be loaded into %s\n", argv[0], argv[1]);
	}
out_close:
	cli_dev_close(&d);
out:
	vdpa_state_free(s);
	return rc;
}
