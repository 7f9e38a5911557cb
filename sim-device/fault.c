// SPDX-License-Identifier: MIT
/*
 * vdpa-sim fault switches: the table `vdpa-sim --fault help` prints and the
 * misbehaviour behind each name. Every fault breaks exactly one rule that
 * `vdpa-user conform` checks (docs/conformance.md); the device code calls
 * these hooks in one line where the rule lives.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_blk.h>

#include "fault.h"
#include "sim-int.h"

const struct vsim_fault_info vsim_faults[VSIM_FAULT_COUNT] = {
	[VSIM_FAULT_USED_AFTER_SUSPEND] = { "used-after-suspend",
		"suspend.quiesce-used", VSIM_FAULT_NET | VSIM_FAULT_BLK,
		"a kick while suspended makes the device write a used-ring "
		"entry (not published)" },
	[VSIM_FAULT_BUFFER_AFTER_SUSPEND] = { "buffer-after-suspend",
		"suspend.quiesce-buffers", VSIM_FAULT_NET | VSIM_FAULT_BLK,
		"a kick while suspended makes the device write into the next "
		"available writable buffer (net: RX buffer; blk: status byte)" },
	[VSIM_FAULT_CALL_AFTER_SUSPEND] = { "call-after-suspend",
		"suspend.no-call", VSIM_FAULT_NET | VSIM_FAULT_BLK,
		"a kick while suspended makes the device signal the queue's "
		"call eventfd" },
	[VSIM_FAULT_BASE_OFF_BY_ONE] = { "base-off-by-one",
		"suspend.base-match", VSIM_FAULT_NET | VSIM_FAULT_BLK,
		"GET_VRING_BASE while suspended answers one past the next "
		"avail entry" },
	[VSIM_FAULT_BASE_UNSTABLE] = { "base-unstable",
		"suspend.base-stable", VSIM_FAULT_NET | VSIM_FAULT_BLK,
		"GET_VRING_BASE while suspended is right the first time per "
		"queue, one more on later reads" },
	[VSIM_FAULT_CONFIG_CHANGES] = { "config-changes",
		"config.suspended", VSIM_FAULT_NET | VSIM_FAULT_BLK,
		"config space reads while suspended return a changed first "
		"byte" },
	[VSIM_FAULT_VRING_SET_REFUSED] = { "vring-set-refused",
		"vring.set-while-suspended", VSIM_FAULT_NET | VSIM_FAULT_BLK,
		"SET_VRING_BASE and SET_VRING_ADDR fail with EBUSY while "
		"suspended" },
	[VSIM_FAULT_RESUME_REPEAT] = { "resume-repeat",
		"resume.no-loss", VSIM_FAULT_NET | VSIM_FAULT_BLK,
		"RESUME steps the data queue back one avail entry: a request "
		"is processed twice" },
	[VSIM_FAULT_RESUME_DROPS_KICK] = { "resume-drops-kick",
		"resume.pending-kick", VSIM_FAULT_NET | VSIM_FAULT_BLK,
		"RESUME does not look at the rings: a kick that came while "
		"suspended is lost until the next one" },
	[VSIM_FAULT_RESET_KEEPS_STATE] = { "reset-keeps-state",
		"reset.clean", VSIM_FAULT_NET | VSIM_FAULT_BLK,
		"a reset keeps the queues' indexes (GET_VRING_BASE after it is "
		"not 0)" },
	[VSIM_FAULT_BLK_HALF_DONE] = { "blk-half-done",
		"blk.inflight-atomic", VSIM_FAULT_BLK,
		"a write kicked while suspended gets its first half written "
		"to the disk, the request not taken" },
	[VSIM_FAULT_BLK_COMPLETE_TWICE] = { "blk-complete-twice",
		"blk.inflight-atomic", VSIM_FAULT_BLK,
		"SUSPEND publishes the last completed request a second time" },
	[VSIM_FAULT_SLOW_SUSPEND] = { "slow-suspend",
		"latency.suspend", VSIM_FAULT_NET | VSIM_FAULT_BLK,
		"SUSPEND takes 600 ms" },
	[VSIM_FAULT_SLOW_RESUME] = { "slow-resume",
		"latency.resume", VSIM_FAULT_NET | VSIM_FAULT_BLK,
		"RESUME takes 600 ms" },
	[VSIM_FAULT_STATE_NO_ROUNDTRIP] = { "state-no-roundtrip",
		"state.roundtrip", VSIM_FAULT_NET | VSIM_FAULT_BLK,
		"the saved device state counts one request more than the "
		"device did: save, load, save differ" },
	[VSIM_FAULT_LOAD_IGNORES_STATE] = { "load-ignores-state",
		"peer.migrate", VSIM_FAULT_NET,
		"a device-state load is accepted and dropped (the MAC set "
		"through the control queue is lost); on the --peer device" },
};

int vsim_fault_parse(const char *list, uint32_t *mask, char *bad,
		     size_t badlen)
{
	const char *p = list;
	uint32_t m = 0;

	for (;;) {
		size_t n = strcspn(p, ",");
		unsigned int i;

		for (i = 0; i < VSIM_FAULT_COUNT; i++)
			if (strlen(vsim_faults[i].name) == n &&
			    !strncmp(vsim_faults[i].name, p, n))
				break;
		if (i == VSIM_FAULT_COUNT) {
			if (bad)
				snprintf(bad, badlen, "%.*s", (int)n, p);
			return -EINVAL;
		}
		m |= 1u << i;
		if (!p[n])
			break;
		p += n + 1;
	}
	*mask |= m;
	return 0;
}

void vsim_fault_print(FILE *f)
{
	unsigned int i;

	for (i = 0; i < VSIM_FAULT_COUNT; i++) {
		const struct vsim_fault_info *x = &vsim_faults[i];

		fprintf(f, "%s %s %s [%s%s%s]\n", x->name, x->check, x->what,
			x->classes & VSIM_FAULT_NET ? "net" : "",
			x->classes == (VSIM_FAULT_NET | VSIM_FAULT_BLK) ?
			" " : "", x->classes & VSIM_FAULT_BLK ? "blk" : "");
	}
}

bool vsim_fault(const struct vsim *s, enum vsim_fault_id id)
{
	return s->o.faults & (1u << id);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The data queues a request fault acts on: net TX queues, blk queue 0. */
static bool data_queue(const struct vsim *s, unsigned int idx)
{
	if (s->o.type == VSIM_TYPE_BLK)
		return idx == 0;
	return (idx & 1) && idx < 2 * s->o.queue_pairs;
}

void vsim_fault_suspend(struct vsim *s)
{
	struct vsim_vq *vq = &s->vq[0];

	s->fault_base_read = 0;
	if (vsim_fault(s, VSIM_FAULT_SLOW_SUSPEND))
		sleep_ms(VSIM_FAULT_SLOW_MS);
	if (vsim_fault(s, VSIM_FAULT_BLK_COMPLETE_TWICE) &&
	    s->o.type == VSIM_TYPE_BLK && vq->resolved && vq->used_idx) {
		uint16_t m = (uint16_t)(vq->num - 1);

		vq->used->ring[vq->used_idx & m] =
			vq->used->ring[(uint16_t)(vq->used_idx - 1) & m];
		vq->used_idx++;
		vsim_vq_flush(s, vq);
	}
}

void vsim_fault_resume(struct vsim *s)
{
	unsigned int i;

	if (vsim_fault(s, VSIM_FAULT_SLOW_RESUME))
		sleep_ms(VSIM_FAULT_SLOW_MS);
	if (!vsim_fault(s, VSIM_FAULT_RESUME_REPEAT))
		return;
	for (i = 0; i < s->nvqs; i++) {
		struct vsim_vq *vq = &s->vq[i];

		if (!data_queue(s, i) || !vq->resolved || !vq->st.requests)
			continue;
		vq->last_avail--;
		vq->avail_cache = vq->last_avail;
	}
}

/* The next available chain of vq without taking it: 1, 0 none, < 0. */
static int peek(struct vsim *s, struct vsim_vq *vq, struct vsim_chain *c)
{
	uint16_t last = vq->last_avail, cache = vq->avail_cache;
	int r;

	if (!vq->ready || !vq->num)
		return 0;
	r = vsim_vq_pop(s, vq, c);
	vq->last_avail = last;
	vq->avail_cache = cache;
	return r;
}

/* A write request's first half onto the disk, as if started and cut. */
static void half_write(struct vsim *s, struct vsim_vq *vq)
{
	struct virtio_blk_outhdr h;
	struct vsim_chain c;
	uint8_t buf[32768];
	uint64_t half;

	if (peek(s, vq, &c) <= 0 || c.out_len < sizeof(h) + 2 * VSIM_SECTOR)
		return;
	vsim_iov_from(c.iov, c.nout, 0, &h, sizeof(h));
	half = (c.out_len - sizeof(h)) / 2 / VSIM_SECTOR * VSIM_SECTOR;
	if (h.type != VIRTIO_BLK_T_OUT || half > sizeof(buf) ||
	    h.sector > s->o.capacity ||
	    half / VSIM_SECTOR > s->o.capacity - h.sector)
		return;
	vsim_iov_from(c.iov, c.nout, sizeof(h), buf, half);
	vsim_disk_write(s, h.sector * VSIM_SECTOR, buf, half);
}

void vsim_fault_kick_suspended(struct vsim *s, unsigned int idx)
{
	struct vsim_vq *vq = &s->vq[idx];
	struct vsim_chain c;

	if (vsim_fault(s, VSIM_FAULT_USED_AFTER_SUSPEND) && vq->resolved)
		/* an add, not a xor: two kicks must not undo it */
		vq->used->ring[vq->used_idx & (vq->num - 1)].len += 0x1001;
	if (vsim_fault(s, VSIM_FAULT_CALL_AFTER_SUSPEND) && vq->call_fd >= 0) {
		uint64_t one = 1;

		if (write(vq->call_fd, &one, sizeof(one)) < 0) {
			/* overflow: already signalled */
		}
	}
	if (vsim_fault(s, VSIM_FAULT_BLK_HALF_DONE) &&
	    s->o.type == VSIM_TYPE_BLK)
		half_write(s, vq);
	if (vsim_fault(s, VSIM_FAULT_BUFFER_AFTER_SUSPEND)) {
		/* net: the RX queue of the kicked TX queue's pair */
		if (s->o.type == VSIM_TYPE_NET && data_queue(s, idx))
			vq = &s->vq[idx - 1];
		if (peek(s, vq, &c) > 0 && c.nin) {
			uint8_t *p = c.iov[c.nout].iov_base;
			size_t i, n = c.iov[c.nout].iov_len < 16 ?
				      c.iov[c.nout].iov_len : 16;

			for (i = 0; i < n; i++)
				p[i]++;
		}
	}
}

uint16_t vsim_fault_base(struct vsim *s, unsigned int idx, uint16_t base)
{
	if (!s->suspended)
		return base;
	if (vsim_fault(s, VSIM_FAULT_BASE_OFF_BY_ONE))
		return (uint16_t)(base + 1);
	if (vsim_fault(s, VSIM_FAULT_BASE_UNSTABLE)) {
		if (s->fault_base_read & (1ULL << idx))
			return (uint16_t)(base + 1);
		s->fault_base_read |= 1ULL << idx;
	}
	return base;
}

void vsim_fault_config(struct vsim *s, uint8_t *buf, uint32_t len)
{
	if (s->suspended && len && vsim_fault(s, VSIM_FAULT_CONFIG_CHANGES))
		buf[0] ^= 0x80;
}
