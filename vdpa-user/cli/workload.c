// SPDX-License-Identifier: MIT
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/virtio_blk.h>

#include "workload.h"

#define NET_BATCH	32
#define WL_SAVE_MAGIC	0x316c6b77u	/* "wkl1" */

static int common_init(struct workload *w, uint64_t count, uint32_t size)
{
	int err;

	memset(&w->r, 0, sizeof(w->r));
	w->count = count;
	w->size = size;
	w->next = 0;
	w->r.requests = count;
	err = seqset_init(&w->seen, count);
	if (err < 0)
		return err;
	w->buf = malloc(size);
	if (!w->buf) {
		seqset_free(&w->seen);
		return -ENOMEM;
	}
	return 0;
}

int wl_init_net(struct workload *w, struct vdpa_net *net, uint64_t count,
		uint32_t size, unsigned int queues)
{
	memset(w, 0, sizeof(*w));
	if (!queues || queues > vdpa_net_queue_pairs(net) || queues > 16 ||
	    size < PAYLOAD_MIN_FRAME || size > vdpa_net_max_frame(net))
		return -EINVAL;
	w->net = net;
	w->queues = queues;
	vdpa_net_get_mac(net, w->mac);
	return common_init(w, count, size);
}

int wl_init_blk(struct workload *w, struct vdpa_blk *blk, uint64_t count,
		uint32_t size)
{
	memset(w, 0, sizeof(*w));
	if (size < 512 || size % 512)
		return -EINVAL;
	w->blk = blk;
	w->nblocks = vdpa_blk_capacity(blk) / (size / 512);
	if (!w->nblocks)
		return -EINVAL;
	return common_init(w, count, size);
}

int wl_init(struct workload *w, struct vdpa_net *net, struct vdpa_blk *blk,
	    uint64_t count, uint32_t size, unsigned int queues)
{
	if (net)
		return wl_init_net(w, net, count, size ? size : 64, queues);
	return wl_init_blk(w, blk, count, size ? size : 4096);
}

int wl_kick_driver(struct vdpa_net *net, struct vdpa_blk *blk)
{
	struct workload k = { .net = net, .blk = blk };

	return wl_kick_all(&k);
}

void wl_free(struct workload *w)
{
	seqset_free(&w->seen);
	free(w->buf);
	w->buf = NULL;
}

static void account(struct workload *w, uint64_t seq, bool intact)
{
	int r;

	if (!intact) {
		w->r.corrupt++;
		return;
	}
	r = seqset_add(&w->seen, seq);
	if (r == 1)
		w->r.completed++;
	else if (r == 0)
		w->r.duplicated++;
	else
		w->r.corrupt++;
}

struct rx_ctx {
	struct workload *w;
	unsigned int qp;
};

static void on_rx(const void *frame, size_t len, void *opaque)
{
	struct rx_ctx *c = opaque;
	uint16_t q;
	uint64_t seq;
	bool ok = payload_frame_check(frame, len, &q, &seq) == 0 &&
		  q == c->qp && len == c->w->size;

	c->w->recv_q[c->qp]++;
	account(c->w, seq, ok);
}

static int net_step(struct workload *w)
{
	unsigned int qp;
	int err;

	for (qp = 0; qp < w->queues; qp++) {
		struct rx_ctx c = { w, qp };
		unsigned int n = 0, room;
		uint16_t vqsize = vdpa_vq_size(vdpa_net_vq(w->net, 2 * qp));

		err = vdpa_net_receive(w->net, qp, on_rx, &c, 256);
		if (err < 0)
			return err;
		err = vdpa_net_reap_tx(w->net, qp);
		if (err < 0)
			return err;
		/* never more in flight than RX buffers: the device would
		 * drop (vdpa_sim counts that as an rx overrun) */
		room = (unsigned int)(vqsize -
			(w->sent_q[qp] - w->recv_q[qp]));
		while (!w->paused && w->next < w->count && n < NET_BATCH &&
		       n < room && vdpa_net_tx_free(w->net, qp)) {
			payload_frame_fill(w->buf, w->size, w->mac, (uint16_t)qp,
					   w->next);
			err = vdpa_net_send(w->net, qp, w->buf, w->size);
			if (err < 0)
				return err;
			w->next++;
			w->sent_q[qp]++;
			n++;
		}
		if (n) {
			err = vdpa_net_kick_tx(w->net, qp);
			if (err < 0)
				return err;
		}
	}
	return w->r.completed + w->r.corrupt >= w->count;
}

/* blk tokens: request << 1 | read */
static int blk_step(struct workload *w)
{
	struct vdpa_blk_completion c;
	uint32_t sectors = w->size / 512;
	unsigned int n = 0;
	int r, err;

	while ((r = vdpa_blk_poll(w->blk, &c)) > 0) {
		uint64_t i = c.token >> 1, seq;
		uint64_t lba = (i % w->nblocks) * sectors;

		if (c.status != VIRTIO_BLK_S_OK) {
			w->r.errors++;
			continue;
		}
		if (!(c.token & 1)) {
			/* write done: read it back */
			err = vdpa_blk_read(w->blk, lba, w->size, c.token | 1);
			if (err < 0)
				return err;
			n++;
			continue;
		}
		account(w, i, payload_block_check(c.data, c.len, lba, &seq) ==
			0 && seq == i);
	}
	if (r < 0)
		return r;
	/* keep a slot per outstanding write free for its read-back */
	while (!w->paused && w->next < w->count &&
	       vdpa_blk_free_slots(w->blk) > 1 + n &&
	       w->next - w->r.completed < w->nblocks / 2) {
		uint64_t lba = (w->next % w->nblocks) * sectors;

		payload_block_fill(w->buf, w->size, lba, w->next);
		err = vdpa_blk_write(w->blk, lba, w->buf, w->size,
				     w->next << 1);
		if (err < 0)
			return err;
		w->next++;
		n++;
	}
	if (n) {
		err = vdpa_blk_kick(w->blk);
		if (err < 0)
			return err;
	}
	return w->r.completed + w->r.corrupt + w->r.errors >= w->count;
}

int wl_step(struct workload *w)
{
	return w->net ? net_step(w) : blk_step(w);
}

void wl_wait(struct workload *w, int timeout_ms)
{
	if (w->net)
		vdpa_net_wait_rx(w->net, timeout_ms);
	else
		vdpa_blk_wait(w->blk, timeout_ms);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int wl_run(struct workload *w, int idle_ms)
{
	uint64_t last = now_ms(), progress = 0;
	int r;

	for (;;) {
		uint64_t p;

		r = wl_step(w);
		if (r != 0)
			return r < 0 ? r : 0;
		p = w->next + w->r.completed;
		if (p != progress) {
			progress = p;
			last = now_ms();
		} else if (now_ms() - last > (uint64_t)idle_ms) {
			return -ETIMEDOUT;
		} else {
			wl_wait(w, 1);
		}
	}
}

void wl_result(struct workload *w, struct wl_result *ret)
{
	uint64_t accounted = w->r.completed + w->r.corrupt + w->r.errors;

	*ret = w->r;
	ret->lost = accounted >= w->count ? 0 : w->count - accounted;
}

int wl_kick_all(struct workload *w)
{
	unsigned int i, n;
	int err;

	if (w->blk)
		return vdpa_blk_kick(w->blk);
	n = vdpa_net_num_vqs(w->net);
	for (i = 0; i < n; i++) {
		struct vdpa_vq *vq = vdpa_net_vq(w->net, i);

		if (vq && (err = vdpa_vq_kick(vq)) < 0)
			return err;
	}
	return 0;
}

struct wl_saved {
	uint32_t magic;
	uint32_t size;
	uint64_t count;
	uint64_t next;
	uint32_t queues;
	uint32_t is_net;
	uint64_t sent_q[16], recv_q[16];
	struct wl_result r;
};

int wl_save(const struct workload *w, void **ret_buf, size_t *ret_len)
{
	struct wl_saved s = {
		.magic = WL_SAVE_MAGIC, .size = w->size, .count = w->count,
		.next = w->next, .queues = w->queues, .is_net = !!w->net,
		.r = w->r,
	};
	size_t bits = ((w->count + 63) / 64) * 8, len = sizeof(s) + bits;
	uint8_t *p = malloc(len);

	if (!p)
		return -ENOMEM;
	memcpy(s.sent_q, w->sent_q, sizeof(s.sent_q));
	memcpy(s.recv_q, w->recv_q, sizeof(s.recv_q));
	memcpy(p, &s, sizeof(s));
	memcpy(p + sizeof(s), w->seen.bits, bits);
	*ret_buf = p;
	*ret_len = len;
	return 0;
}

/* Set w up on an adopted driver from a wl_save() image. */
int wl_adopt(struct workload *w, struct vdpa_net *net, struct vdpa_blk *blk,
	     const void *buf, size_t len)
{
	struct wl_saved s;
	int err;

	if (len < sizeof(s))
		return -EBADMSG;
	memcpy(&s, buf, sizeof(s));
	if (s.magic != WL_SAVE_MAGIC || s.is_net != !!net || !(net || blk) ||
	    s.next > s.count || len != sizeof(s) + ((s.count + 63) / 64) * 8)
		return -EBADMSG;
	err = net ? wl_init_net(w, net, s.count, s.size, s.queues) :
		    wl_init_blk(w, blk, s.count, s.size);
	if (err < 0)
		return err;
	w->next = s.next;
	w->r = s.r;
	memcpy(w->sent_q, s.sent_q, sizeof(s.sent_q));
	memcpy(w->recv_q, s.recv_q, sizeof(s.recv_q));
	memcpy(w->seen.bits, (const uint8_t *)buf + sizeof(s), len - sizeof(s));
	return 0;
}
