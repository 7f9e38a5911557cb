// SPDX-License-Identifier: MIT
/*
 * conform: the driver side. Requests that can be told apart (a sequence
 * number in every frame and block), counted as they come back, and views
 * of the rings in driver memory so the checks read what the device wrote.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_ring.h>
#include <vdpa-user/uapi-ext.h>

#include "cli.h"
#include "conform.h"

#define FRAME_LEN	128
#define ETH_CONFORM	0x88b5		/* IEEE local experimental */
#define BLK_REQ		4096u
#define BLK_MAGIC	0x636f6e666f726d21ull	/* "conform!" */
static const uint8_t src_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0xcf, 0x01 };

/* Offered means acked: the library's drivers ack every one they know. */
bool cf_can_suspend(const struct cf *cf)
{
	return cf->d.caps.suspend;
}

bool cf_can_resume(const struct cf *cf)
{
	return cf->d.caps.resume;
}

double cf_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

void cf_sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void cf_teardown(struct cf *cf)
{
	vdpa_net_close(cf->d.net);
	vdpa_blk_close(cf->d.blk);
	cf->d.net = NULL;
	cf->d.blk = NULL;
	if (cf->d.dev)
		vdpa_dev_reset(cf->d.dev);
}

int cf_setup(struct cf *cf, unsigned int pairs, char *why, size_t len)
{
	const char *name = cf->name;
	int err;

	cf_teardown(cf);
	/* the region stays mapped: its allocator starts over, zeroed */
	memset(vdpa_mem_base(cf->mem), 0, vdpa_mem_used(cf->mem));
	vdpa_mem_set_used(cf->mem, 0);
	cf->next_seq = cf->tx_seq = cf->tx_done = 0;
	memset(cf->done, 0, sizeof(cf->done));
	cf->corrupt = cf->bad_status = cf->bad_completion = 0;
	cf->gen = 1;
	cli_lib_clear();
	if (cf->is_net) {
		struct vdpa_net_opts o = { .queue_pairs = (uint16_t)pairs };

		err = vdpa_net_open(cf->d.dev, cf->mem, &o, &cf->d.net);
		cf->pairs = pairs;
	} else {
		err = vdpa_blk_open(cf->d.dev, cf->mem, NULL, &cf->d.blk);
		cf->pairs = 1;
		/* 1 MiB in: clear of anything a partition table would use */
		cf->blk_base = 2048;
		if (!err && vdpa_blk_capacity(cf->d.blk) <
		    cf->blk_base + CF_MAX_SEQ * (BLK_REQ / 512))
			err = -ENOSPC;
	}
	if (err < 0)
		snprintf(why, len, "starting the %s driver on %s: %s",
			 cf->is_net ? "net" : "blk", name,
			 err == -ENOSPC ? "the disk is smaller than the "
			 "16 MiB the checks write" : cli_lib_why(err, name));
	return err;
}

/* ---- requests ----------------------------------------------------------- */

static void frame(const struct cf *cf, uint8_t *f, uint64_t seq)
{
	unsigned int i;

	vdpa_net_get_mac(cf->d.net, f);
	memcpy(f + 6, src_mac, 6);
	f[12] = ETH_CONFORM >> 8;
	f[13] = ETH_CONFORM & 0xff;
	memcpy(f + 14, &seq, 8);
	for (i = 22; i < FRAME_LEN; i++)
		f[i] = (uint8_t)(seq * 31 + i);
}

/* One 512-byte sector of block seq, stamp generation gen. */
static void sector_fill(uint8_t *p, uint64_t seq, uint32_t gen,
			unsigned int k)
{
	uint64_t magic = BLK_MAGIC ^ gen;
	unsigned int i;

	memcpy(p, &magic, 8);
	memcpy(p + 8, &seq, 8);
	memcpy(p + 16, &k, 4);
	for (i = 20; i < 512; i++)
		p[i] = (uint8_t)(seq + gen * 7 + k + i);
}

static uint64_t sector_of(const struct cf *cf, uint64_t seq)
{
	return cf->blk_base + seq * (BLK_REQ / 512);
}

int cf_submit(struct cf *cf, unsigned int n)
{
	uint8_t buf[BLK_REQ];
	unsigned int i, k;
	int err = 0;

	for (i = 0; i < n && cf->next_seq < CF_MAX_SEQ; i++) {
		uint64_t seq = cf->next_seq;

		if (cf->d.net) {
			if (!vdpa_net_tx_free(cf->d.net, 0))
				vdpa_net_reap_tx(cf->d.net, 0);
			frame(cf, buf, seq);
			err = vdpa_net_send(cf->d.net, 0, buf, FRAME_LEN);
		} else {
			for (k = 0; k < BLK_REQ / 512; k++)
				sector_fill(buf + k * 512, seq, cf->gen, k);
			err = vdpa_blk_write(cf->d.blk, sector_of(cf, seq), buf,
					     BLK_REQ, seq);
		}
		if (err < 0)
			break;
		cf->next_seq++;
	}
	return i ? (int)i : err;
}

int cf_kick(struct cf *cf)
{
	return cf->d.net ? vdpa_net_kick_tx(cf->d.net, 0) :
			   vdpa_blk_kick(cf->d.blk);
}

static void on_rx(const void *f, size_t len, void *opaque)
{
	const uint8_t *p = f;
	struct cf *cf = opaque;
	uint64_t seq;
	unsigned int i;

	if (len != FRAME_LEN || p[12] != ETH_CONFORM >> 8 ||
	    p[13] != (ETH_CONFORM & 0xff)) {
		cf->corrupt++;
		return;
	}
	memcpy(&seq, p + 14, 8);
	if (seq >= cf->next_seq) {
		cf->corrupt++;
		return;
	}
	for (i = 22; i < FRAME_LEN; i++)
		if (p[i] != (uint8_t)(seq * 31 + i)) {
			cf->corrupt++;
			return;
		}
	if (cf->loop && cf->done[seq] < 255)
		cf->done[seq]++;
}

int cf_reap(struct cf *cf)
{
	struct vdpa_blk_completion c;
	int r;

	if (cf->d.net) {
		r = vdpa_net_reap_tx(cf->d.net, 0);
		if (r < 0)
			return r;
		cf->tx_done += (unsigned int)r;
		for (; !cf->loop && r > 0 && cf->tx_seq < cf->next_seq; r--)
			if (cf->done[cf->tx_seq++] < 255)
				cf->done[cf->tx_seq - 1]++;
		do {
			r = vdpa_net_receive(cf->d.net, 0, on_rx, cf, 256);
		} while (r > 0);
		return r;
	}
	while ((r = vdpa_blk_poll(cf->d.blk, &c)) > 0) {
		if (c.token >= cf->next_seq) {
			cf->bad_completion++;
			continue;
		}
		if (c.status != VIRTIO_BLK_S_OK)
			cf->bad_status++;
		else if (cf->done[c.token] < 255)
			cf->done[c.token]++;
	}
	if (r < 0)
		cf->bad_completion++;
	return r;
}

uint64_t cf_done_count(const struct cf *cf, uint64_t from, uint64_t to)
{
	uint64_t n = 0, i;

	for (i = from; i < to && i < CF_MAX_SEQ; i++)
		n += cf->done[i] != 0;
	return n;
}

int cf_wait_done(struct cf *cf, uint64_t from, uint64_t to, int timeout_ms)
{
	double end = cf_now_us() + timeout_ms * 1e3;
	int r;

	for (;;) {
		r = cf_reap(cf);
		if (r < 0)
			return r;
		if (cf_done_count(cf, from, to) == to - from)
			return 0;
		if (cf_now_us() > end || cli_interrupted)
			return -ETIMEDOUT;
		if (cf->d.net)
			vdpa_net_wait_rx(cf->d.net, 2);
		else
			vdpa_blk_wait(cf->d.blk, 2);
	}
}

int cf_roundtrip(struct cf *cf, unsigned int n, int timeout_ms)
{
	uint64_t from = cf->next_seq;
	int r;

	r = cf_submit(cf, n);
	if (r < 0)
		return r;
	r = cf_kick(cf);
	if (r < 0)
		return r;
	return cf_wait_done(cf, from, cf->next_seq, timeout_ms);
}

void cf_probe_loopback(struct cf *cf)
{
	char why[256];

	cf->loop = true;
	if (!cf->is_net || cf_setup(cf, 1, why, sizeof(why)))
		return;
	/*
	 * 8 frames: all back on RX, or all completed on TX and none back.
	 * Anything else (not even TX completes) leaves loop set: the checks
	 * then fail saying the traffic did not complete.
	 */
	if (cf_roundtrip(cf, 8, 1000) == 0)
		return;
	if (cf->tx_done == 8 && !cf_done_count(cf, 0, 8))
		cf->loop = false;
}

unsigned int cf_free(const struct cf *cf)
{
	if (cf->d.blk)
		return vdpa_blk_free_slots(cf->d.blk);
	return cf->d.net ? vdpa_net_tx_free(cf->d.net, 0) : 0;
}

unsigned int cf_in_flight(const struct cf *cf)
{
	unsigned int i, n = 0;

	if (cf->d.blk)
		return vdpa_vq_in_flight(vdpa_blk_vq(cf->d.blk));
	if (!cf->d.net)
		return 0;
	for (i = 0; i < 2 * cf->pairs; i++)
		n += vdpa_vq_in_flight(vdpa_net_vq(cf->d.net, i));
	return n;
}

unsigned int cf_kick_all(struct cf *cf)
{
	struct cf_ring r[CF_MAXR];
	struct vdpa_vring_info info;
	unsigned int i, k = 0, n = cf_rings(cf, r, CF_MAXR);
	uint64_t one = 1;

	for (i = 0; i < n; i++) {
		if (vdpa_dev_get_vring(cf->d.dev, r[i].idx, &info) < 0 ||
		    info.kick_fd < 0)
			continue;
		/* a full eventfd counter (EAGAIN) is signalled all the same */
		if (write(info.kick_fd, &one, sizeof(one)) == sizeof(one) ||
		    errno == EAGAIN)
			k++;
	}
	return k;
}

int cf_get_base(struct cf *cf, uint32_t idx, uint16_t *ret)
{
	return vdpa_dev_get_vring_base(cf->d.dev, idx, ret);
}

/* ---- driver memory ------------------------------------------------------ */

static uint8_t *mem_ptr(const struct cf *cf, uint64_t iova, size_t len)
{
	uint64_t base = CLI_MEM_IOVA;
	size_t size = vdpa_mem_size(cf->mem);

	if (iova < base || iova - base > size || len > size - (iova - base))
		return NULL;
	return (uint8_t *)vdpa_mem_base(cf->mem) + (iova - base);
}

unsigned int cf_rings(struct cf *cf, struct cf_ring *r, unsigned int max)
{
	struct vdpa_vring_info info;
	unsigned int i, n = 0;

	for (i = 0; i < cf->d.caps.vq_count && n < max; i++) {
		uint8_t *used, *avail;
		size_t ulen;

		if (vdpa_dev_get_vring(cf->d.dev, i, &info) < 0 ||
		    !info.configured || !info.enabled)
			continue;
		/* flags, idx, ring, and avail_event (EVENT_IDX) */
		ulen = 4 + 8 * (size_t)info.num + 2;
		used = mem_ptr(cf, info.used, ulen);
		avail = mem_ptr(cf, info.avail, 4 + 2 * (size_t)info.num + 2);
		if (!used || !avail)
			continue;
		r[n].idx = i;
		r[n].num = info.num;
		r[n].used = used;
		r[n].used_len = ulen;
		r[n].used_idx = (volatile uint16_t *)(void *)(used + 2);
		r[n].avail_idx = (volatile uint16_t *)(void *)(avail + 2);
		r[n].call_fd = info.call_fd;
		n++;
	}
	return n;
}

int cf_read_config(struct cf *cf, uint8_t *buf, size_t len)
{
	uint32_t size = cf->d.caps.config_size;
	int err;

	if (size > len)
		size = (uint32_t)len;
	err = vdpa_dev_get_config(cf->d.dev, 0, buf, size);
	return err < 0 ? err : (int)size;
}

unsigned int cf_drain_calls(const struct cf_ring *r, unsigned int n,
			    int timeout_ms)
{
	struct pollfd p[CLI_MAX_QUEUES * 2 + 1];
	unsigned int i, m = 0, calls = 0;
	uint64_t v;

	for (i = 0; i < n && m < CLI_MAX_QUEUES * 2 + 1; i++)
		if (r[i].call_fd >= 0)
			p[m++] = (struct pollfd){ .fd = r[i].call_fd,
						  .events = POLLIN };
	if (!m || poll(p, m, timeout_ms) <= 0)
		return 0;
	for (i = 0; i < m; i++)
		if ((p[i].revents & POLLIN) &&
		    read(p[i].fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
			calls += (unsigned int)v;
	return calls;
}

/* ---- blk read-back (blk.inflight-atomic) -------------------------------- */

int cf_blk_classify(struct cf *cf, uint64_t seq, uint32_t gen, uint32_t old)
{
	struct vdpa_blk_completion c;
	uint8_t want[512];
	unsigned int k, n_new = 0, n_old = 0;
	double end = cf_now_us() + 2e6;
	int r;

	r = vdpa_blk_read(cf->d.blk, sector_of(cf, seq), BLK_REQ, seq);
	if (r == 0)
		r = vdpa_blk_kick(cf->d.blk);
	if (r < 0)
		return r;
	for (;;) {
		r = vdpa_blk_poll(cf->d.blk, &c);
		if (r < 0)
			return r;
		if (r > 0)
			break;
		if (cf_now_us() > end)
			return -ETIMEDOUT;
		vdpa_blk_wait(cf->d.blk, 2);
	}
	if (c.token != seq || c.status != VIRTIO_BLK_S_OK || !c.data)
		return -EIO;
	for (k = 0; k < BLK_REQ / 512; k++) {
		const uint8_t *p = (const uint8_t *)c.data + k * 512;

		sector_fill(want, seq, gen, k);
		if (!memcmp(p, want, 512)) {
			n_new++;
			continue;
		}
		sector_fill(want, seq, old, k);
		if (!memcmp(p, want, 512))
			n_old++;
	}
	if (n_new == BLK_REQ / 512)
		return 2;
	if (n_old == BLK_REQ / 512)
		return 1;
	return 0;
}
