// SPDX-License-Identifier: MIT
/*
 * vdpa-sim virtio-net, after Linux drivers/vdpa/vdpa_sim/vdpa_sim_net.c:
 * every TX buffer (virtio_net_hdr included) is looped back to the RX queue
 * of the same queue pair when the receive filter passes it.
 */
#include <errno.h>
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_net.h>

#include "sim-int.h"

int vsim_net_init(struct vsim *s)
{
	s->dev_features |= (1ULL << VIRTIO_NET_F_MAC) |
			   (1ULL << VIRTIO_NET_F_MTU) |
			   (1ULL << VIRTIO_NET_F_STATUS) |
			   (1ULL << VIRTIO_NET_F_CTRL_VQ) |
			   (1ULL << VIRTIO_NET_F_CTRL_RX) |
			   (1ULL << VIRTIO_NET_F_CTRL_RX_EXTRA) |
			   (1ULL << VIRTIO_NET_F_CTRL_MAC_ADDR) |
			   (1ULL << VIRTIO_F_ANY_LAYOUT);
	if (s->o.queue_pairs > 1)
		s->dev_features |= 1ULL << VIRTIO_NET_F_MQ;
	return 0;
}

void vsim_net_reset(struct vsim *s)
{
	memcpy(s->mac, s->o.mac, 6);
	s->curr_pairs = 1;
	s->promisc = false;
	s->allmulti = false;
	s->alluni = s->nomulti = s->nouni = s->nobcast = false;
	memset(&s->mt, 0, sizeof(s->mt));
}

static unsigned int cvq_index(const struct vsim *s)
{
	if (!vsim_has(s, VIRTIO_NET_F_CTRL_VQ))
		return ~0u;
	return vsim_has(s, VIRTIO_NET_F_MQ) ? 2 * s->o.queue_pairs : 2;
}

static size_t hdr_len(const struct vsim *s)
{
	return vsim_has(s, VIRTIO_F_VERSION_1) ?
	       sizeof(struct virtio_net_hdr_v1) : sizeof(struct virtio_net_hdr);
}

static bool in_table(const struct vsim *s, const uint8_t *dst, bool multi)
{
	unsigned int i = multi ? s->mt.n_uc : 0;
	unsigned int end = multi ? s->mt.n_uc + s->mt.n_mc : s->mt.n_uc;

	for (; i < end; i++)
		if (!memcmp(dst, s->mt.mac[i], 6))
			return true;
	return false;
}

/* The receive filter of virtio-net's control queue, as QEMU applies it. */
static bool rx_filter(const struct vsim *s, const uint8_t *dst)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	if (s->promisc)
		return true;
	if (dst[0] & 1) {
		if (!memcmp(dst, bcast, 6))
			return !s->nobcast;
		if (s->nomulti)
			return false;
		return s->allmulti || in_table(s, dst, true);
	}
	if (s->nouni)
		return false;
	return s->alluni || !memcmp(dst, s->mac, 6) || in_table(s, dst, false);
}

/* struct virtio_net_ctrl_mac: le32 entries, then the MACs. */
static int mac_table(const uint8_t *p, size_t len, size_t *off,
		     uint32_t *ret_n)
{
	uint32_t n;

	if (len - *off < 4)
		return -1;
	memcpy(&n, p + *off, 4);
	n = le32toh(n);
	*off += 4;
	if ((len - *off) / 6 < n)
		return -1;
	*ret_n = n;
	*off += 6 * (size_t)n;
	return 0;
}

/* Copy a TX chain's readable bytes into an RX chain's writable bytes. */
static size_t iov_copy(const struct vsim_chain *tx, const struct vsim_chain *rx)
{
	const struct iovec *src = tx->iov, *dst = rx->iov + rx->nout;
	unsigned int si = 0, di = 0;
	size_t so = 0, dof = 0, done = 0;

	while (si < tx->nout && di < rx->nin) {
		size_t l = src[si].iov_len - so;

		if (l > dst[di].iov_len - dof)
			l = dst[di].iov_len - dof;
		memcpy((uint8_t *)dst[di].iov_base + dof,
		       (uint8_t *)src[si].iov_base + so, l);
		done += l;
		so += l;
		dof += l;
		if (so == src[si].iov_len) {
			si++;
			so = 0;
		}
		if (dof == dst[di].iov_len) {
			di++;
			dof = 0;
		}
	}
	return done;
}

static void net_tx(struct vsim *s, unsigned int pair)
{
	struct vsim_vq *txq = &s->vq[2 * pair + 1], *rxq = &s->vq[2 * pair];
	size_t hlen = hdr_len(s);
	struct vsim_chain tx, rx;
	unsigned int n;
	int r = 0;

	for (n = 0; n < VSIM_BUDGET; n++) {
		uint8_t dst[6];

		r = vsim_vq_pop(s, txq, &tx);
		if (r <= 0)
			break;
		if (tx.nin) {
			vsim_fail(s, "vq %u: TX chain with writable descriptors",
				  2 * pair + 1);
			r = -EIO;
			break;
		}
		if (tx.out_len < hlen) {
			vsim_fail(s, "vq %u: TX buffer of %llu bytes is shorter "
				  "than the %zu-byte virtio-net header",
				  2 * pair + 1,
				  (unsigned long long)tx.out_len, hlen);
			r = -EIO;
			break;
		}
		txq->st.requests++;
		txq->st.bytes += tx.out_len;
		if (s->o.no_loopback) {	/* sent onto a wire: nothing back */
			vsim_vq_push(txq, tx.head, 0);
			continue;
		}
		if (tx.out_len < hlen + 6 || pair >= s->curr_pairs ||
		    vsim_iov_from(tx.iov, tx.nout, hlen, dst, 6) != 6 ||
		    !rx_filter(s, dst)) {
			rxq->st.drops++;
			vsim_vq_push(txq, tx.head, 0);
			continue;
		}
		r = 0;
		if (rxq->ready)
			r = vsim_vq_pop(s, rxq, &rx);
		if (r < 0)
			break;
		if (r == 0) {
			rxq->st.overruns++;
			vsim_vq_push(txq, tx.head, 0);
			continue;
		}
		if (rx.nout) {
			vsim_fail(s, "vq %u: RX chain with read-only descriptors "
				  "(device would write into them)", 2 * pair);
			r = -EIO;
			break;
		}
		if (rx.in_len < hlen) {
			vsim_fail(s, "vq %u: RX buffer shorter than the "
				  "virtio-net header", 2 * pair);
			r = -EIO;
			break;
		}
		{
			size_t done = iov_copy(&tx, &rx);

			rxq->st.requests++;
			rxq->st.bytes += done;
			vsim_vq_push(rxq, rx.head, (uint32_t)done);
			vsim_vq_push(txq, tx.head, 0);
		}
	}
	if (rxq->resolved)
		vsim_vq_flush(s, rxq);
	if (txq->resolved)
		vsim_vq_flush(s, txq);
	if (r < 0 || (n < VSIM_BUDGET && !vsim_vq_rearm(s, txq)))
		s->work &= ~(1ULL << (2 * pair + 1));
}

static uint8_t cvq_cmd(struct vsim *s, uint8_t cls, uint8_t cmd,
		       const uint8_t *data, size_t len)
{
	switch (cls) {
	case VIRTIO_NET_CTRL_MAC:
		if (cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET && len == 6 &&
		    vsim_has(s, VIRTIO_NET_F_CTRL_MAC_ADDR)) {
			memcpy(s->mac, data, 6);
			return VIRTIO_NET_OK;
		}
		if (cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET &&
		    vsim_has(s, VIRTIO_NET_F_CTRL_RX)) {
			size_t off = 0;
			uint32_t nu, nm;

			if (mac_table(data, len, &off, &nu) ||
			    mac_table(data, len, &off, &nm) || off != len ||
			    nu + nm > VSIM_MAC_TABLE_MAX)
				break;
			s->mt.n_uc = (uint16_t)nu;
			s->mt.n_mc = (uint16_t)nm;
			memcpy(s->mt.mac, data + 4, 6 * (size_t)nu);
			memcpy(s->mt.mac[nu], data + 8 + 6 * (size_t)nu,
			       6 * (size_t)nm);
			return VIRTIO_NET_OK;
		}
		break;
	case VIRTIO_NET_CTRL_MQ:
		if (cmd == VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET && len == 2 &&
		    vsim_has(s, VIRTIO_NET_F_MQ)) {
			uint16_t p = (uint16_t)(data[0] | data[1] << 8);

			if (p < 1 || p > s->o.queue_pairs)
				break;
			s->curr_pairs = p;
			return VIRTIO_NET_OK;
		}
		break;
	case VIRTIO_NET_CTRL_RX:
		if (len != 1 || !vsim_has(s, VIRTIO_NET_F_CTRL_RX))
			break;
		if (cmd == VIRTIO_NET_CTRL_RX_PROMISC) {
			s->promisc = data[0];
			return VIRTIO_NET_OK;
		}
		if (cmd == VIRTIO_NET_CTRL_RX_ALLMULTI) {
			s->allmulti = data[0];
			return VIRTIO_NET_OK;
		}
		if (!vsim_has(s, VIRTIO_NET_F_CTRL_RX_EXTRA))
			break;
		if (cmd == VIRTIO_NET_CTRL_RX_ALLUNI)
			s->alluni = data[0];
		else if (cmd == VIRTIO_NET_CTRL_RX_NOMULTI)
			s->nomulti = data[0];
		else if (cmd == VIRTIO_NET_CTRL_RX_NOUNI)
			s->nouni = data[0];
		else if (cmd == VIRTIO_NET_CTRL_RX_NOBCAST)
			s->nobcast = data[0];
		else
			break;
		return VIRTIO_NET_OK;
	}
	vsim_log(s, LOG_INFO, "cvq: unsupported command class %u cmd %u "
		 "len %zu", cls, cmd, len);
	return VIRTIO_NET_ERR;
}

static void net_cvq(struct vsim *s, unsigned int idx)
{
	struct vsim_vq *vq = &s->vq[idx];
	struct vsim_chain c;
	unsigned int n;
	int r = 0;

	for (n = 0; n < VSIM_BUDGET; n++) {
		uint8_t buf[64], ack;
		size_t len;

		r = vsim_vq_pop(s, vq, &c);
		if (r <= 0)
			break;
		if (c.out_len < 2 || c.in_len < 1 || c.out_len > sizeof(buf)) {
			vsim_fail(s, "cvq: malformed command (%llu bytes out, "
				  "%llu bytes in)", (unsigned long long)c.out_len,
				  (unsigned long long)c.in_len);
			r = -EIO;
			break;
		}
		len = vsim_iov_from(c.iov, c.nout, 0, buf, c.out_len);
		ack = cvq_cmd(s, buf[0], buf[1], buf + 2, len - 2);
		vsim_iov_to(c.iov + c.nout, c.nin, 0, &ack, 1);
		vq->st.requests++;
		if (ack != VIRTIO_NET_OK)
			vq->st.errors++;
		vsim_vq_push(vq, c.head, 1);
	}
	if (vq->resolved)
		vsim_vq_flush(s, vq);
	if (r < 0 || (n < VSIM_BUDGET && !vsim_vq_rearm(s, vq)))
		s->work &= ~(1ULL << idx);
}

void vsim_net_kick(struct vsim *s, unsigned int idx)
{
	if (idx == cvq_index(s))
		net_cvq(s, idx);
	else if ((idx & 1) && idx < 2 * s->o.queue_pairs)
		net_tx(s, idx / 2);
	else
		s->work &= ~(1ULL << idx);	/* RX buffers wait for TX */
}
