// SPDX-License-Identifier: MIT
/*
 * Pre-copy rounds (PROPOSAL, include/vdpa-user/uapi-ext.h): the source
 * device's rounds framed with an id and a number, checked on the
 * destination before its device sees them; the device checks its own
 * round records again (a round of another device, out of order, after the
 * final one) and that its cache ends up as the source's.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <vdpa-user/migrate.h>
#include <vdpa-user/uapi-ext.h>

#include "device.h"
#include "log.h"
#include "precopy.h"
#include "state-io.h"

#include "crc32c.h"

#define PC_BIT		(1ULL << VHOST_BACKEND_F_DEVICE_STATE_PRECOPY)

static void put16(uint8_t *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }

static bool offers(struct vdpa_dev *dev)
{
	const struct vdpa_caps *caps = NULL;

	return dev_caps(dev, &caps) == 0 && (caps->backend_features & PC_BIT);
}

int precopy_src_can(struct vdpa_dev *dev, char *err, size_t errlen)
{
	uint64_t be = vdpa_dev_backend_features(dev);

	if (!offers(dev)) {
		vdpa_say(err, errlen, "%s does not offer pre-copy (backend bit "
		    "49)", vdpa_dev_name(dev));
		return -EOPNOTSUPP;
	}
	if (!(be & (1ULL << VHOST_BACKEND_F_DEVICE_STATE))) {
		vdpa_say(err, errlen, "%s: the device-state extension was not "
		    "negotiated", vdpa_dev_name(dev));
		return -EOPNOTSUPP;
	}
	/* a rollback without RESUME reloads the saved state: only the rest */
	if (!(be & (1ULL << VHOST_BACKEND_F_RESUME))) {
		vdpa_say(err, errlen, "%s has no RESUME: a rollback could not "
		    "reload a state that holds only what pre-copy left",
		    vdpa_dev_name(dev));
		return -EOPNOTSUPP;
	}
	return 0;
}

bool precopy_dst_can(struct vdpa_dev *dev)
{
	return offers(dev);
}

static int ask_info(struct vdpa_dev *dev, struct vhost_vdpa_precopy_info *pi)
{
	memset(pi, 0, sizeof(*pi));
	return vdpa_dev_call(dev, VHOST_VDPA_GET_PRECOPY_INFO, pi);
}

int precopy_src_info(struct vdpa_dev *dev, const struct mig_pc_src *pc,
		     struct vdpa_mig_precopy_info *ret, char *err,
		     size_t errlen)
{
	struct vhost_vdpa_precopy_info pi;
	int r = precopy_src_can(dev, err, errlen);

	if (r < 0)
		return r;
	r = ask_info(dev, &pi);
	if (r < 0) {
		vdpa_say(err, errlen, "%s: pre-copy info: %s", vdpa_dev_name(dev),
		    strerror(-r));
		return r;
	}
	ret->initial_bytes = pi.initial_bytes;
	ret->dirty_bytes = pi.dirty_bytes;
	ret->rounds = pc->rounds;
	ret->sent_bytes = pc->sent;
	return 0;
}

static uint64_t new_id(void)
{
	struct timespec ts;
	uint64_t v;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v) && v)
		return v;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^
	       ((uint64_t)getpid() << 40);
}

int precopy_src_round(struct vdpa_dev *dev, size_t cap, struct mig_pc_src *pc,
		      void **ret_buf, size_t *ret_len, uint64_t *ret_pending,
		      char *err, size_t errlen)
{
	struct vhost_vdpa_precopy_info pi;
	void *dbuf = NULL;
	size_t dlen = 0;
	uint8_t *rec;
	uint32_t crc;
	int r = precopy_src_can(dev, err, errlen);

	if (r < 0)
		return r;
	if (pc->failed) {
		vdpa_say(err, errlen, "an earlier pre-copy round failed: no more "
		    "rounds, the switchover carries the whole state");
		return -ESTALE;
	}
	if (!pc->rounds)
		pc->id = new_id();
	r = state_io_save_phase(dev, VHOST_TRANSFER_STATE_PHASE_PRECOPY,
				cap > PC_HDR ? cap - PC_HDR : 0, &dbuf, &dlen);
	if (r < 0) {
		pc->failed = true;
		vdpa_say(err, errlen, "pre-copy round %u of %s: %s", pc->rounds,
		    vdpa_dev_name(dev), r == -ENOTCONN ?
		    "the source device went away" : strerror(-r));
		return r;
	}
	rec = malloc(PC_HDR + dlen);
	if (!rec) {
		free(dbuf);
		/* the device counts the round as sent: make it forget */
		if (!pc->rounds)
			pc->rounds = 1;
		precopy_src_end(dev, pc);
		pc->failed = true;
		vdpa_say(err, errlen, "pre-copy round %u: %s", pc->rounds,
		    strerror(ENOMEM));
		return -ENOMEM;
	}
	r = ask_info(dev, &pi);
	if (r < 0)
		pi.initial_bytes = pi.dirty_bytes = 0;	/* unknown: 0 */
	memset(rec, 0, PC_HDR);
	put32(rec, PC_MAGIC);
	put16(rec + 4, PC_VERSION);
	put16(rec + 6, PC_HDR);
	put32(rec + 12, pc->rounds);
	put64(rec + 16, pc->id);
	put64(rec + 24, dlen);
	put64(rec + 32, pi.initial_bytes + pi.dirty_bytes);
	memcpy(rec + PC_HDR, dbuf, dlen);
	free(dbuf);
	crc = crc32c(0, rec, PC_HDR + dlen);
	put32(rec + 8, crc);
	pc->rounds++;
	pc->sent += PC_HDR + dlen;
	if (ret_pending)
		*ret_pending = pi.initial_bytes + pi.dirty_bytes;
	*ret_buf = rec;
	*ret_len = PC_HDR + dlen;
	return 0;
}

bool precopy_src_done(struct vdpa_dev *dev, struct mig_pc_src *pc,
		      uint64_t threshold, uint32_t max_rounds,
		      uint64_t *ret_pending)
{
	struct vhost_vdpa_precopy_info pi;
	uint64_t cur, prev = pc->prev;

	/* never a request the device did not offer (a kernel: EFAULT) */
	if (!offers(dev) || ask_info(dev, &pi) < 0) {
		if (ret_pending)
			*ret_pending = 0;
		return true;
	}
	cur = pi.initial_bytes + pi.dirty_bytes;
	pc->prev = cur;
	if (ret_pending)
		*ret_pending = cur;
	return pc->failed || cur <= (threshold ? threshold : 1u << 20) ||
	       pc->rounds >= (max_rounds ? max_rounds : 16) ||
	       (pc->rounds >= 2 && cur >= prev);
}

void precopy_src_end(struct vdpa_dev *dev, struct mig_pc_src *pc)
{
	if (pc->rounds && offers(dev))
		vdpa_dev_call(dev, VHOST_VDPA_PRECOPY_END, NULL);
	pc->rounds = 0;
}

int precopy_record_check(const void *buf, size_t len, char *err,
			 size_t errlen)
{
	const uint8_t *p = buf;
	uint32_t crc;

	if (!p || len < PC_HDR || get32(p) != PC_MAGIC) {
		vdpa_say(err, errlen, "not a pre-copy round");
		return -EBADMSG;
	}
	if (get16(p + 4) != PC_VERSION) {
		vdpa_say(err, errlen, "pre-copy round version %u is not "
		    "supported (1)", get16(p + 4));
		return -EPROTONOSUPPORT;
	}
	if (get16(p + 6) != PC_HDR || get64(p + 24) != len - PC_HDR ||
	    get32(p + 40) || get32(p + 44)) {
		vdpa_say(err, errlen, "pre-copy round %u: malformed framing",
		    get32(p + 12));
		return -EBADMSG;
	}
	crc = crc32c(0, p, 8);
	crc = crc32c(crc, &(uint32_t){ 0 }, 4);
	crc = crc32c(crc, p + 12, len - 12);
	if (crc != get32(p + 8)) {
		vdpa_say(err, errlen, "pre-copy round %u fails its CRC32C check "
		    "(corrupt)", get32(p + 12));
		return -EBADMSG;
	}
	return 0;
}

/* The destination device's verdict on a round, in words. */
static void device_said(char *err, size_t errlen, struct vdpa_dev *dev,
			uint32_t rnd, int r)
{
	const char *why;

	switch (r) {
	case -EILSEQ:
		why = "out of order or repeated";
		break;
	case -EXDEV:
		why = "of another device's pre-copy";
		break;
	case -EALREADY:
		why = "after the final state";
		break;
	case -EBADE:
		why = "would leave a cache that is not the source's";
		break;
	default:
		why = NULL;
	}
	if (why)
		vdpa_say(err, errlen, "%s refused pre-copy round %u: %s",
		    vdpa_dev_name(dev), rnd, why);
	else
		vdpa_say(err, errlen, "%s refused pre-copy round %u: %s",
		    vdpa_dev_name(dev), rnd, r == -ENOTCONN || r == -EPIPE ?
		    "the destination device went away" : strerror(-r));
}

int precopy_dst_apply(struct vdpa_dev *dev, struct mig_pc_dst *pc,
		      bool final_done, const void *buf, size_t len, char *err,
		      size_t errlen)
{
	const uint8_t *p = buf;
	uint32_t rnd;
	uint64_t id;
	int r;

	if (final_done) {
		vdpa_say(err, errlen, "a pre-copy round after the final state");
		return -EALREADY;
	}
	r = precopy_record_check(buf, len, err, errlen);
	if (r < 0)
		return r;
	rnd = get32(p + 12);
	id = get64(p + 16);
	if (pc->started && id != pc->id) {
		vdpa_say(err, errlen, "pre-copy round %u belongs to another "
		    "migration (id %016llx, expected %016llx)", rnd,
		    (unsigned long long)id, (unsigned long long)pc->id);
		return -EXDEV;
	}
	if (rnd != pc->next) {
		vdpa_say(err, errlen, "pre-copy round %u %s: expected round %u",
		    rnd, rnd < pc->next ? "repeated" : "out of order",
		    pc->next);
		return -EILSEQ;
	}
	if (!offers(dev)) {
		vdpa_say(err, errlen, "%s does not offer pre-copy (backend bit "
		    "49)", vdpa_dev_name(dev));
		return -EOPNOTSUPP;
	}
	r = state_io_load_phase(dev, VHOST_TRANSFER_STATE_PHASE_PRECOPY,
				p + PC_HDR, len - PC_HDR);
	if (r < 0) {
		device_said(err, errlen, dev, rnd, r);
		return r;
	}
	pc->started = true;
	pc->id = id;
	pc->next = rnd + 1;
	return 0;
}
