// SPDX-License-Identifier: MIT
/* vdpa-sim options: defaults and the command-line parser shared by main.c. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "fault.h"
#include "sim.h"

void vsim_opts_init(struct vsim_opts *o, enum vsim_type type)
{
	static const uint8_t mac[6] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55 };

	memset(o, 0, sizeof(*o));
	o->type = type;
	o->queue_pairs = 1;
	o->vq_size = 256;
	o->iova_first = 0;
	o->iova_last = UINT64_MAX;
	memcpy(o->mac, mac, 6);
	o->mtu = 1500;
	o->capacity = (64ULL << 20) / 512;
	o->log_level = LOG_NOTICE;
	o->ready_fd = -1;
}

int vsim_opts_kernel(struct vsim_opts *o, const char *name)
{
	if (!strcmp(name, "6.1")) {
		o->kernel = VSIM_KERNEL_6_1;
		o->no_resume = true;
	} else if (!strcmp(name, "6.12")) {
		o->kernel = VSIM_KERNEL_6_12;
		o->no_resume = false;
	} else {
		return -EINVAL;
	}
	o->no_state = true;	/* the extension is a proposal */
	return 0;
}

static int fail(const struct vsim_opts *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(const struct vsim_opts *o, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (o->log) {
		va_start(ap, fmt);
		vsnprintf(buf, sizeof(buf), fmt, ap);
		va_end(ap);
		o->log(o->log_opaque, LOG_ERR, buf);
	}
	return -EINVAL;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno || *end ? -EINVAL : 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int b[6];
	char tail;
	int i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3],
		   &b[4], &b[5], &tail) != 6)
		return -EINVAL;
	for (i = 0; i < 6; i++) {
		if (b[i] > 0xff)
			return -EINVAL;
		mac[i] = (uint8_t)b[i];
	}
	return 0;
}

enum {
	OPT_NO_SUSPEND = 256, OPT_NO_RESUME, OPT_NO_STATE, OPT_IOVA,
	OPT_MTU, OPT_CAP, OPT_BACKING, OPT_CACHE, OPT_QP, OPT_VQ, OPT_CRASH,
	OPT_PIDFILE, OPT_READY_FD, OPT_KERNEL, OPT_FAULT, OPT_NO_LOOPBACK, OPT_NEW_OWNER,
};

int vsim_opts_parse(struct vsim_opts *o, int argc, char **argv,
		    const char **ret_socket)
{
	static const struct option lo[] = {
		{ "type", required_argument, NULL, 't' },
		{ "socket", required_argument, NULL, 's' },
		{ "queue-pairs", required_argument, NULL, OPT_QP },
		{ "vq-size", required_argument, NULL, OPT_VQ },
		{ "no-suspend", no_argument, NULL, OPT_NO_SUSPEND },
		{ "no-resume", no_argument, NULL, OPT_NO_RESUME },
		{ "no-state", no_argument, NULL, OPT_NO_STATE },
		{ "iova-range", required_argument, NULL, OPT_IOVA },
		{ "mac", required_argument, NULL, 'm' },
		{ "mtu", required_argument, NULL, OPT_MTU },
		{ "capacity-mb", required_argument, NULL, OPT_CAP },
		{ "backing", required_argument, NULL, OPT_BACKING },
		{ "cache", required_argument, NULL, OPT_CACHE },
		{ "crash-during", required_argument, NULL, OPT_CRASH },
		{ "pidfile", required_argument, NULL, OPT_PIDFILE },
		{ "ready-fd", required_argument, NULL, OPT_READY_FD },
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "fault", required_argument, NULL, OPT_FAULT },
		{ "no-loopback", no_argument, NULL, OPT_NO_LOOPBACK },
		{ "new-owner", no_argument, NULL, OPT_NEW_OWNER },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL;
	bool have_type = false, have_cap = false;
	uint64_t v;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "t:s:m:vh", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			if (!strcmp(optarg, "net"))
				o->type = VSIM_TYPE_NET;
			else if (!strcmp(optarg, "blk"))
				o->type = VSIM_TYPE_BLK;
			else
				return fail(o, "--type: net or blk, not '%s'",
					    optarg);
			have_type = true;
			break;
		case 's':
			sock = optarg;
			break;
		case OPT_QP:
			if (parse_u64(optarg, &v) || v < 1 ||
			    v > VSIM_MAX_QUEUE_PAIRS)
				return fail(o, "--queue-pairs: 1..%d",
					    VSIM_MAX_QUEUE_PAIRS);
			o->queue_pairs = (unsigned int)v;
			break;
		case OPT_VQ:
			if (parse_u64(optarg, &v) || v < 2 || v > 32768 ||
			    (v & (v - 1)))
				return fail(o, "--vq-size: a power of 2, "
					    "2..32768");
			o->vq_size = (unsigned int)v;
			break;
		case OPT_NO_SUSPEND:
			o->no_suspend = true;
			break;
		case OPT_NO_RESUME:
			o->no_resume = true;
			break;
		case OPT_KERNEL:
			if (vsim_opts_kernel(o, optarg))
				return fail(o, "--kernel: 6.1 or 6.12, not '%s'",
					    optarg);
			break;
		case OPT_NO_STATE:
			o->no_state = true;
			break;
		case OPT_NO_LOOPBACK:
			o->no_loopback = true;
			break;
		case OPT_FAULT: {
			char bad[64];

			if (!strcmp(optarg, "help"))
				return 2;	/* the caller lists them */
			if (vsim_fault_parse(optarg, &o->faults, bad,
					     sizeof(bad)))
				return fail(o, "--fault: no fault '%s' (vdpa-sim "
					    "--fault help lists them)", bad);
			break;
		}
		case OPT_NEW_OWNER:
			o->new_owner = true;
			break;
		case OPT_IOVA: {
			char buf[64], *colon;
			uint64_t first, last;

			snprintf(buf, sizeof(buf), "%s", optarg);
			colon = strchr(buf, ':');
			if (!colon)
				return fail(o, "--iova-range: FIRST:LAST");
			*colon = 0;
			if (parse_u64(buf, &first) ||
			    parse_u64(colon + 1, &last) || first > last)
				return fail(o, "--iova-range: FIRST:LAST with "
					    "FIRST <= LAST");
			o->iova_first = first;
			o->iova_last = last;
			break;
		}
		case 'm':
			if (parse_mac(optarg, o->mac))
				return fail(o, "--mac: xx:xx:xx:xx:xx:xx");
			break;
		case OPT_MTU:
			if (parse_u64(optarg, &v) || v < 68 || v > 65535)
				return fail(o, "--mtu: 68..65535");
			o->mtu = (uint16_t)v;
			break;
		case OPT_CAP:
			if (parse_u64(optarg, &v) || v < 1 || v > (1u << 20))
				return fail(o, "--capacity-mb: 1..1048576");
			o->capacity = v * 2048;
			have_cap = true;
			break;
		case OPT_BACKING:
			o->backing = optarg;
			break;
		case OPT_CACHE:
			if (!strcmp(optarg, "writeback"))
				o->writeback = true;
			else if (!strcmp(optarg, "writethrough"))
				o->writeback = false;
			else
				return fail(o, "--cache: writeback or "
					    "writethrough");
			break;
		case OPT_CRASH:
			if (!strcmp(optarg, "state-save"))
				o->crash_during = VSIM_CRASH_SAVE;
			else if (!strcmp(optarg, "state-load"))
				o->crash_during = VSIM_CRASH_LOAD;
			else
				return fail(o, "--crash-during: state-save or "
					    "state-load");
			break;
		case OPT_PIDFILE:
			if (!*optarg)
				return fail(o, "--pidfile: a file name");
			o->pidfile = optarg;
			break;
		case OPT_READY_FD:
			if (parse_u64(optarg, &v) || v > INT_MAX)
				return fail(o, "--ready-fd: a file descriptor "
					    "number, 0..%d", INT_MAX);
			if (fcntl((int)v, F_GETFD) < 0)
				return fail(o, "--ready-fd %d: not an open "
					    "file descriptor", (int)v);
			o->ready_fd = (int)v;
			break;
		case 'v':
			if (o->log_level < LOG_DEBUG)
				o->log_level++;
			break;
		case 'h':
			return 1;
		default:
			return fail(o, "unknown option or missing argument: %s",
				    argv[optind - 1]);
		}
	}
	if (optind < argc)
		return fail(o, "unexpected argument: %s", argv[optind]);
	if (!have_type)
		return fail(o, "--type net|blk is required");
	if (o->backing && !have_cap)
		o->capacity = 0;	/* the file's size */
	if (ret_socket)
		*ret_socket = sock;
	return 0;
}
