// SPDX-License-Identifier: MIT
/*
 * Dirty logging: SET_LOG_BASE maps the front-end's log; VHOST_F_LOG_ALL
 * switches the device from passthrough to the relay (relay.h) and back.
 * The vhost-vdpa ABI has no dirty log, so relaying is the only way to
 * know which guest pages the device wrote.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <linux/vhost.h>
#include <linux/virtio_config.h>

#include "relay.h"
#include <vdpa-user/uapi-ext.h>

#include "serve.h"

bool srv_relay_possible(const struct srv *s, char *why, size_t whylen)
{
	if (!(s->backend_acked & (1ULL << VHOST_BACKEND_F_SUSPEND))) {
		snprintf(why, whylen, "the device has no SUSPEND, which the "
			 "relay needs to take the rings over");
		return false;
	}
	return true;
}

void srv_log_free(struct srv *s)
{
	if (s->log)
		munmap(s->log, s->log_size);
	s->log = NULL;
	s->log_size = 0;
}

/* Bytes of log the guest memory needs: 1 bit per 4 KiB page. */
static uint64_t log_needed(const struct srv *s)
{
	uint64_t end = 0;
	unsigned int i;

	for (i = 0; i < s->nregs; i++)
		if (s->regs[i].gpa + s->regs[i].size > end)
			end = s->regs[i].gpa + s->regs[i].size;
	return (end / RELAY_LOG_PAGE + 7) / 8;
}

int srv_set_log_base(struct srv *s, const struct vu_log *l, int fd,
		     char *err, size_t errlen)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	struct relay_log rl;
	struct stat st;
	void *p;
	int r;

	if (!(s->proto & (1ULL << VU_PF_LOG_SHMFD))) {
		snprintf(err, errlen, "SET_LOG_BASE without LOG_SHMFD");
		r = -EINVAL;
		goto err_close;
	}
	if (!l->mmap_size || l->mmap_offset + l->mmap_size < l->mmap_offset ||
	    (l->mmap_offset & (page - 1)) || l->mmap_size > (1ULL << 40)) {
		snprintf(err, errlen, "SET_LOG_BASE: size 0x%" PRIx64 " offset "
			 "0x%" PRIx64 " overflows or is not page-aligned",
			 l->mmap_size, l->mmap_offset);
		r = -EINVAL;
		goto err_close;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size < l->mmap_offset + l->mmap_size) {
		snprintf(err, errlen, "SET_LOG_BASE: the log reaches past its "
			 "fd");
		r = -EINVAL;
		goto err_close;
	}
	if (l->mmap_size < log_needed(s)) {
		snprintf(err, errlen, "SET_LOG_BASE: log of %" PRIu64 " bytes, "
			 "guest memory needs %" PRIu64, l->mmap_size,
			 log_needed(s));
		r = -EINVAL;
		goto err_close;
	}
	p = mmap(NULL, l->mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)l->mmap_offset);
	if (p == MAP_FAILED) {
		r = -errno;
		snprintf(err, errlen, "SET_LOG_BASE: mmap: %s", strerror(-r));
		goto err_close;
	}
	close(fd);
	if (s->relay) {
		rl.bitmap = p;
		rl.size = l->mmap_size;
		r = relay_set_log(s->relay, &rl, err, errlen);
		if (r < 0) {
			munmap(p, l->mmap_size);
			return r;
		}
	}
	srv_log_free(s);
	s->log = p;
	s->log_size = l->mmap_size;
	srv_log(LOG_INFO, "log: %" PRIu64 " bytes", s->log_size);
	return 0;

err_close:
	close(fd);
	return r;
}

static int relay_on(struct srv *s, char *err, size_t errlen)
{
	struct relay_region regs[VU_MAX_REGIONS];
	struct relay_vq vqs[SERVE_MAX_VQS];
	struct relay_log log = { s->log, s->log_size };
	unsigned int i, n = 0;
	uint64_t taken = 0;
	uint16_t b;
	int r;

	if (!s->log) {
		snprintf(err, errlen, "LOG_ALL without SET_LOG_BASE");
		return -EINVAL;
	}
	r = vdpa_dev_suspend(s->dev);
	if (r < 0) {
		snprintf(err, errlen, "SUSPEND: %s", strerror(-r));
		return r;
	}
	for (i = 0; i < s->nregs; i++) {
		regs[i].gpa = s->regs[i].gpa;
		regs[i].size = s->regs[i].size;
		regs[i].host = s->regs[i].host;
	}
	for (i = 0; i < s->nvqs; i++) {
		const struct srv_vq *v = &s->vq[i];

		if (!v->num_set || !v->addr_set)
			continue;
		r = vdpa_dev_get_vring_base(s->dev, i, &b);
		if (r < 0) {
			snprintf(err, errlen, "ring %u: GET_VRING_BASE: %s", i,
				 strerror(-r));
			goto err_resume;
		}
		vqs[n].idx = i;
		vqs[n].num = v->num;
		vqs[n].desc_gpa = v->desc_gpa;
		vqs[n].avail_gpa = v->avail_gpa;
		vqs[n].used_gpa = v->used_gpa;
		vqs[n].log_used_gpa =
			v->addr.flags & (1u << VHOST_VRING_F_LOG) ?
			v->addr.log_guest_addr : v->used_gpa;
		vqs[n].last_avail = b;
		taken += b;
		vqs[n].kick_fd = v->kick_fd;
		vqs[n].call_fd = v->call_fd;
		n++;
	}
	r = relay_start(&s->relay, s->dev, regs, s->nregs, vqs, n, &log, err,
			errlen);
	if (r < 0)
		goto err_resume;
	s->st.relay_on++;
	/* the sum of the rings' indexes: the relay's figures start there */
	srv_log(LOG_NOTICE, "LOG_ALL on: relay mode (%u rings, avail index "
		"sum %" PRIu64 ")", n, taken);
	return 0;

err_resume:
	/* relay_start leaves the device suspended on the guest's rings */
	if (vdpa_dev_resume(s->dev) < 0)
		srv_log(LOG_ERR, "LOG_ALL: the device could not be resumed");
	return r;
}

static int relay_off(struct srv *s, bool run, char *err, size_t errlen)
{
	uint16_t last[SERVE_MAX_VQS];
	struct relay_counters c;
	unsigned int i, n = 0;
	int r;

	memset(&c, 0, sizeof(c));
	/* the final figures: the stop forwards the last completions */
	r = relay_stop_ex(s->relay, run, last, &c, err, errlen);
	s->relay = NULL;
	s->st.relay_off++;
	s->st.relay_forwarded += c.avail_fwd;
	s->st.relay_completions += c.used_fwd;
	s->st.relay_pages_logged += c.logged_pages;
	for (i = 0; i < s->nvqs; i++) {
		struct srv_vq *v = &s->vq[i];

		if (!v->num_set || !v->addr_set)
			continue;
		if (!r)
			v->base = last[n];
		n++;
	}
	srv_log(LOG_NOTICE, "relay stopped%s: %" PRIu64 " chains forwarded, "
		"%" PRIu64 " completions (%" PRIu64 " at the stop), %" PRIu64
		" pages logged, %" PRIu64 " requests left to the device on the "
		"guest rings", run ? "" : " (device suspended)", c.avail_fwd,
		c.used_fwd, c.used_at_stop, c.logged_pages, c.handed_back);
	return r;
}

int srv_log_switch(struct srv *s, bool on, char *err, size_t errlen)
{
	if (on == (s->relay != NULL))
		return 0;
	if (!on)
		return relay_off(s, true, err, errlen);
	if (!srv_relay_possible(s, err, errlen))
		return -EOPNOTSUPP;
	if (s->features & (1ULL << VIRTIO_F_RING_PACKED)) {
		snprintf(err, errlen, "LOG_ALL with packed rings: the relay "
			 "does split rings only");
		return -EOPNOTSUPP;
	}
	return relay_on(s, err, errlen);
}

/* Set the bits of pages [first, end) of the log; returns how many were 0. */
static uint64_t mark_pages(struct srv *s, uint64_t first, uint64_t end)
{
	uint64_t p, n = 0;
	uint8_t old, bits;

	if (end > s->log_size * 8)
		end = s->log_size * 8;
	for (p = first; p < end; p = (p | 7) + 1) {
		/* the bits of p's byte up to end, a whole byte when it can */
		bits = (uint8_t)(0xff << (p % 8));
		if (end - (p & ~7ULL) < 8)
			bits &= (uint8_t)(0xff >> (8 - (end - (p & ~7ULL))));
		old = __atomic_fetch_or(&s->log[p / 8], bits, __ATOMIC_RELAXED);
		n += (uint64_t)__builtin_popcount(bits & ~old);
	}
	return n;
}

/*
 * The front-end stops the device for good while logging (GET_VRING_BASE:
 * the end of a migration) and reads the log once more: every page of
 * guest memory is marked, so that its last copy goes whole. With two
 * back-ends of one QEMU 10.0 sharing its log (serve net + serve blk),
 * guest pages written shortly before the stop were found stale on the
 * destination in most runs of 20 migrations (the guest's own counters one
 * step behind, the last frame received seen again); with this, in none.
 * Which page went missing, and where, is not known: the relay logs what
 * the device wrote (tests/relay). The cost: the final pass resends all
 * guest memory (zero pages as headers), a longer downtime.
 */
static void log_all(struct srv *s)
{
	uint64_t n = 0;
	unsigned int i;

	if (!s->log)
		return;
	for (i = 0; i < s->nregs; i++)
		n += mark_pages(s, s->regs[i].gpa / RELAY_LOG_PAGE,
				(s->regs[i].gpa + s->regs[i].size +
				 RELAY_LOG_PAGE - 1) / RELAY_LOG_PAGE);
	srv_log(LOG_INFO, "log: all guest memory marked at the stop (%" PRIu64
		" pages newly)", n);
}

/* GET_VRING_BASE while relaying: the device stops on the guest's rings. */
int srv_relay_stop_suspended(struct srv *s, char *err, size_t errlen)
{
	int r;

	if (!s->relay)
		return 0;
	r = relay_off(s, false, err, errlen);
	log_all(s);
	return r;
}
