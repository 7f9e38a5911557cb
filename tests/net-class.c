// SPDX-License-Identifier: MIT
/*
 * Net class state: the simulator's receive filter (MAC, MAC table, RX
 * modes, selected queue pairs) as the control queue sets it, the library's
 * record of it, and a migration keeping it — carried by the device's own
 * state, or replayed by the library through a control queue of its own
 * when the device has no state extension. Thread-mode simulators.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <vdpa-user/migrate.h>
#include <vdpa-user/net.h>

#include "sim.h"
#include "tap.h"

static const uint8_t prov_mac[6] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55 };
static const uint8_t new_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x42 };
static const uint8_t foreign[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x77 };
static const uint8_t table_uc[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x99 };
static const uint8_t mcast[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 };
static const uint8_t mcast2[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x02 };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

struct side {
	struct vsim_thread *thr;
	struct vdpa_dev *dev;
};

static int side_start(struct side *s, bool no_state, bool no_resume)
{
	struct vsim_opts o;
	int fd, r;

	memset(s, 0, sizeof(*s));
	vsim_opts_init(&o, VSIM_TYPE_NET);
	o.queue_pairs = 2;
	o.no_state = no_state;
	o.no_resume = no_resume;
	r = vsim_thread_start(&o, &fd, &s->thr);
	if (!r)
		r = vdpa_dev_open_sim_fd(fd, no_state ? "no-state" : "state",
					 &s->dev);
	return r;
}

static void side_stop(struct side *s)
{
	vdpa_dev_close(s->dev);
	vsim_thread_stop(s->thr);
}

static void count_rx(const void *frame, size_t len, void *opaque)
{
	(*(unsigned int *)opaque)++;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Frames the device's filter dropped on pair qp so far (thread sims). */
static uint64_t drops(struct vsim_thread *thr, unsigned int qp)
{
	struct vsim_status st;

	vsim_get_status(vsim_thread_sim(thr), &st);
	return st.q[2 * qp].drops;
}

/*
 * n frames to dst on pair qp of the device thr serves; how many came back
 * through the filter, or ~0u unless every frame is accounted for: all n
 * transmitted (TX completions reaped, which the device writes after the
 * RX entry of a frame it delivers) and each either received or counted
 * as dropped by the device. A device that stops, or is merely slow, is
 * a failure, not "dropped".
 */
static unsigned int loop(struct vdpa_net *net, struct vsim_thread *thr,
			 unsigned int qp, const uint8_t *dst, unsigned int n)
{
	uint8_t f[64] = { 0 };
	unsigned int got = 0, i, free0 = vdpa_net_tx_free(net, qp);
	uint64_t end = now_ms() + 10000, d0 = drops(thr, qp);

	memcpy(f, dst, 6);
	memcpy(f + 6, new_mac, 6);
	f[12] = 0x88;
	f[13] = 0xb5;
	for (i = 0; i < n; i++)
		if (vdpa_net_send(net, qp, f, sizeof(f)) < 0)
			return ~0u;
	if (vdpa_net_kick_tx(net, qp) < 0)
		return ~0u;
	while (vdpa_net_tx_free(net, qp) < free0) {
		if (vdpa_net_reap_tx(net, qp) < 0 || now_ms() > end)
			return ~0u;
		if (vdpa_net_tx_free(net, qp) < free0)
			vdpa_vq_wait(vdpa_net_vq(net, 2 * qp + 1), 20);
	}
	if (vdpa_net_receive(net, qp, count_rx, &got, 1024) < 0 ||
	    got + (drops(thr, qp) - d0) != n)
		return ~0u;
	return got;
}

static int rx_cmd(struct vdpa_net *net, uint8_t cmd, bool on)
{
	uint8_t v = on;

	return vdpa_net_ctrl(net, VIRTIO_NET_CTRL_RX, cmd, &v, 1);
}

static int set_table(struct vdpa_net *net, const uint8_t *uc,
		     const uint8_t *mc)
{
	uint8_t b[4 + 6 + 4 + 6];
	size_t l = 0;
	uint32_t n = htole32(uc ? 1 : 0);

	memcpy(b, &n, 4);
	l = 4;
	if (uc) {
		memcpy(b + l, uc, 6);
		l += 6;
	}
	n = htole32(mc ? 1 : 0);
	memcpy(b + l, &n, 4);
	l += 4;
	if (mc) {
		memcpy(b + l, mc, 6);
		l += 6;
	}
	return vdpa_net_ctrl(net, VIRTIO_NET_CTRL_MAC,
			     VIRTIO_NET_CTRL_MAC_TABLE_SET, b, l);
}

static void test_filter(void)
{
	struct vdpa_net_opts no = { .queue_pairs = 2 };
	struct vdpa_state_net rec;
	struct vdpa_mem *mem = NULL;
	struct vdpa_net *net = NULL;
	struct side s;
	int r;

	r = side_start(&s, false, false);
	if (!r)
		r = vdpa_mem_create(8u << 20, 1u << 30, &mem);
	if (!r)
		r = vdpa_net_open(s.dev, mem, &no, &net);
	if (!tap_is_ok(r, 0, "filter: net device with 2 pairs running")) {
		side_stop(&s);
		return;
	}
	tap_is(loop(net, s.thr, 0, prov_mac, 8), 8, "filter: own MAC passes");
	tap_is(loop(net, s.thr, 0, foreign, 8), 0,
	       "filter: other unicast dropped");
	tap_is(loop(net, s.thr, 0, mcast, 8), 0, "filter: multicast dropped by "
	       "default");
	tap_is(loop(net, s.thr, 0, bcast, 8), 8, "filter: broadcast passes");
	tap_is(loop(net, s.thr, 1, prov_mac, 8), 8,
	       "filter: pair 1 passes with 2 pairs selected");
	tap_is(vdpa_net_set_queue_pairs(net, 1), 0, "filter: 1 pair selected");
	tap_is(loop(net, s.thr, 1, prov_mac, 8), 0,
	       "filter: pair 1 dropped with 1 pair selected");
	tap_is(vdpa_net_set_queue_pairs(net, 2), 0, "filter: 2 pairs again");
	tap_is(vdpa_net_set_mac(net, new_mac), 0, "filter: MAC set");
	tap_is(loop(net, s.thr, 0, new_mac, 8), 8, "filter: new MAC passes");
	tap_is(loop(net, s.thr, 0, prov_mac, 8), 0, "filter: old MAC dropped");
	tap_is(rx_cmd(net, VIRTIO_NET_CTRL_RX_ALLMULTI, true), 0,
	       "filter: allmulti on");
	tap_is(loop(net, s.thr, 0, mcast, 8), 8,
	       "filter: multicast passes with allmulti");
	tap_is(rx_cmd(net, VIRTIO_NET_CTRL_RX_NOMULTI, true), 0,
	       "filter: nomulti on");
	tap_is(loop(net, s.thr, 0, mcast, 8), 0,
	       "filter: nomulti beats allmulti");
	tap_is(rx_cmd(net, VIRTIO_NET_CTRL_RX_NOMULTI, false) |
	       rx_cmd(net, VIRTIO_NET_CTRL_RX_ALLMULTI, false), 0,
	       "filter: nomulti and allmulti off");
	tap_is(rx_cmd(net, VIRTIO_NET_CTRL_RX_NOBCAST, true), 0,
	       "filter: nobcast on");
	tap_is(loop(net, s.thr, 0, bcast, 8), 0,
	       "filter: broadcast dropped with nobcast");
	tap_is(rx_cmd(net, VIRTIO_NET_CTRL_RX_NOBCAST, false), 0,
	       "filter: nobcast off");
	tap_is(set_table(net, table_uc, mcast2), 0, "filter: MAC table set");
	tap_is(loop(net, s.thr, 0, table_uc, 8), 8,
	       "filter: unicast table entry passes");
	tap_is(loop(net, s.thr, 0, mcast2, 8), 8,
	       "filter: multicast table entry passes");
	tap_is(loop(net, s.thr, 0, mcast, 8), 0,
	       "filter: other multicast dropped");
	tap_is(rx_cmd(net, VIRTIO_NET_CTRL_RX_ALLUNI, true), 0,
	       "filter: alluni on");
	tap_is(loop(net, s.thr, 0, foreign, 8), 8,
	       "filter: alluni passes other unicast");
	tap_is(rx_cmd(net, VIRTIO_NET_CTRL_RX_NOUNI, true), 0,
	       "filter: nouni on");
	tap_is(loop(net, s.thr, 0, new_mac, 8), 0,
	       "filter: nouni drops even the own MAC");
	tap_is(rx_cmd(net, VIRTIO_NET_CTRL_RX_NOUNI, false) |
	       rx_cmd(net, VIRTIO_NET_CTRL_RX_ALLUNI, false), 0,
	       "filter: nouni and alluni off");
	r = vdpa_dev_net_class(s.dev, &rec);
	tap_ok(r == 0 && !memcmp(rec.mac, new_mac, 6) &&
	       rec.queue_pairs == 2 && !rec.allmulti && !rec.nomulti &&
	       !rec.alluni && !rec.nouni && !rec.nobcast && rec.n_uc == 1 &&
	       rec.n_mc == 1 && !memcmp(rec.uc[0], table_uc, 6) &&
	       !memcmp(rec.mc[0], mcast2, 6),
	       "filter: the library recorded every acknowledged command");
	/* a reset forgets the class state, in the device and the record */
	vdpa_net_close(net);
	net = NULL;
	r = vdpa_dev_reset(s.dev);
	if (!r)
		r = vdpa_dev_net_class(s.dev, &rec);
	tap_ok(r == 0 && !memcmp(rec.mac, prov_mac, 6) &&
	       rec.queue_pairs == 1 && !rec.n_uc && !rec.n_mc,
	       "filter: after a reset the record is the provisioned MAC, "
	       "1 pair, no table");
	vdpa_mem_destroy(mem);
	side_stop(&s);
}

/*
 * A source with every kind of class state set, migrated with the library
 * doing the class state (no restore_class hook): the destination filters
 * exactly as the source did.
 */
static void test_migrate(bool no_state)
{
	const char *what = no_state ? "replayed (no state extension)" :
				      "device state";
	struct vdpa_net_opts no = { .queue_pairs = 2 };
	struct vdpa_mig_opts mo = { .via = VDPA_MIG_VIA_PIPE };
	struct vdpa_mig_result res;
	struct vdpa_state_net rec;
	struct vdpa_mem *mem = NULL;
	struct vdpa_net *net = NULL;
	struct side a, b;
	char err[256] = "";
	int r, fds0 = tap_count_fds();

	r = side_start(&a, no_state, false);
	if (!r)
		r = side_start(&b, no_state, false);
	if (!r)
		r = vdpa_mem_create(8u << 20, 1u << 30, &mem);
	if (!r)
		r = vdpa_net_open(a.dev, mem, &no, &net);
	if (!r)
		r = vdpa_net_set_mac(net, new_mac);
	if (!r)
		r = rx_cmd(net, VIRTIO_NET_CTRL_RX_ALLMULTI, true);
	if (!r)
		r = rx_cmd(net, VIRTIO_NET_CTRL_RX_NOBCAST, true);
	if (!r)
		r = set_table(net, table_uc, NULL);
	if (!tap_is_ok(r, 0, "%s: source set MAC, allmulti, nobcast, table",
		    what))
		goto out;
	tap_is(loop(net, a.thr, 1, new_mac, 4), 4,
	       "%s: source traffic on pair 1",
	       what);
	r = vdpa_migrate(a.dev, b.dev, &mo, &res, err, sizeof(err));
	if (!tap_is_ok(r, 0, "%s: migrated", what)) {
		tap_diag("  %s", err);
		goto out;
	}
	vdpa_net_set_dev(net, b.dev);
	tap_is(loop(net, b.thr, 0, new_mac, 8), 8,
	       "%s: the new MAC passes on the destination", what);
	tap_is(loop(net, b.thr, 1, new_mac, 8), 8,
	       "%s: both pairs still selected",
	       what);
	tap_is(loop(net, b.thr, 0, table_uc, 8), 8,
	       "%s: the MAC table came along",
	       what);
	tap_is(loop(net, b.thr, 0, mcast, 8), 8,
	       "%s: allmulti came along", what);
	tap_is(loop(net, b.thr, 0, bcast, 8), 0,
	       "%s: nobcast came along", what);
	tap_is(loop(net, b.thr, 0, prov_mac, 8), 0,
	       "%s: the provisioned MAC no longer passes", what);
	r = vdpa_dev_net_class(b.dev, &rec);
	tap_ok(r == 0 && !memcmp(rec.mac, new_mac, 6) && rec.allmulti &&
	       rec.nobcast && rec.n_uc == 1 && rec.queue_pairs == 2,
	       "%s: the destination's record holds it for the next "
	       "migration", what);
	/* and back, from the record alone */
	r = vdpa_migrate(b.dev, a.dev, &mo, &res, err, sizeof(err));
	if (!tap_is_ok(r, 0, "%s: migrated back", what))
		tap_diag("  %s", err);
	vdpa_net_set_dev(net, a.dev);
	tap_is(loop(net, a.thr, 0, table_uc, 8) +
	       loop(net, a.thr, 1, new_mac, 8), 16,
	       "%s: back on the source, filter and pairs intact", what);
out:
	vdpa_net_close(net);
	side_stop(&a);
	side_stop(&b);
	vdpa_mem_destroy(mem);
	tap_is(tap_count_fds(), fds0, "%s: no fd leaked", what);
}

/*
 * Two simulators alike, a 2-pair net driver on the first, its MAC changed
 * through the control queue. 0 or the first error.
 */
static int pair_with_new_mac(struct side *a, struct side *b, bool no_state,
			     bool no_resume, struct vdpa_mem **mem,
			     struct vdpa_net **net)
{
	struct vdpa_net_opts no = { .queue_pairs = 2 };
	int r;

	r = side_start(a, no_state, no_resume);
	if (!r)
		r = side_start(b, no_state, no_resume);
	if (!r)
		r = vdpa_mem_create(8u << 20, 1u << 30, mem);
	if (!r)
		r = vdpa_net_open(a->dev, *mem, &no, net);
	if (!r)
		r = vdpa_net_set_mac(*net, new_mac);
	return r;
}

/*
 * Devices that can neither carry the class state in their own state nor
 * replay it (no RESUME to hand the control queue back) are refused before
 * the source stops.
 */
static void test_cannot_replay(void)
{
	struct vdpa_mig_opts mo = { .via = VDPA_MIG_VIA_PIPE };
	struct vdpa_mig_result res;
	struct vdpa_mem *mem = NULL;
	struct vdpa_net *net = NULL;
	struct side a, b;
	char err[256] = "";
	uint8_t st = 0;
	int r;

	r = pair_with_new_mac(&a, &b, true, true, &mem, &net);
	if (!tap_is_ok(r, 0, "no replay: source with a changed MAC"))
		goto out;
	r = vdpa_migrate(a.dev, b.dev, &mo, &res, err, sizeof(err));
	tap_ok(r < 0 && strstr(err, "a rollback could not restore") &&
	       !strchr(err, '\n'),
	       "no replay: refused in one line (%s)", err);
	tap_ok(!res.rolled_back && !res.src.begin_ns[VDPA_MIG_SUSPEND],
	       "no replay: refused before the source was suspended");
	r = vdpa_dev_get_status(a.dev, &st);
	tap_ok(r == 0 && (st & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(st & VIRTIO_CONFIG_S_NEEDS_RESET),
	       "no replay: source still running (status 0x%02x)", st);
	tap_is(loop(net, a.thr, 1, new_mac, 8), 8,
	       "no replay: source traffic flows");
out:
	vdpa_net_close(net);
	side_stop(&a);
	side_stop(&b);
	vdpa_mem_destroy(mem);
}

/*
 * The blob goes out in pieces (the device's own state is not copied into
 * it); the whole of it, from vdpa_mig_src_blob(), is byte for byte what
 * the transfer FD sent, and decodes.
 */
static void test_split_blob(void)
{
	struct vdpa_net_opts no = { .queue_pairs = 2 };
	struct vdpa_mig_src *m = NULL;
	struct vdpa_state *d = NULL;
	struct vdpa_mem *mem = NULL;
	struct vdpa_net *net = NULL;
	const void *flat = NULL;
	uint8_t *got = NULL;
	size_t flen = 0, glen = 0;
	char err[256] = "";
	struct side a;
	int r, rfd = -1;

	r = side_start(&a, false, false);
	if (!r)
		r = vdpa_mem_create(8u << 20, 1u << 30, &mem);
	if (!r)
		r = vdpa_net_open(a.dev, mem, &no, &net);
	if (!r)
		r = vdpa_mig_src_new(a.dev, NULL, &m);
	if (!r)
		r = vdpa_mig_src_switchover(m, err, sizeof(err));
	if (!r)
		r = vdpa_mig_src_set_state_fd(m, -1, &rfd, err, sizeof(err));
	if (!tap_is_ok(r, 0, "split blob: switched over, state fd open")) {
		tap_diag("  %s", err);
		goto out;
	}
	got = malloc(1 << 20);
	while (got) {
		ssize_t n = read(rfd, got + glen, (1 << 20) - glen);

		if (n <= 0)
			break;
		glen += (size_t)n;
	}
	close(rfd);
	tap_is(vdpa_mig_src_check_state(m, err, sizeof(err)), 0,
	       "split blob: the transfer FD's SAVE checked");
	r = vdpa_mig_src_blob(m, &flat, &flen);
	tap_ok(r == 0 && flen == glen && got && !memcmp(flat, got, glen),
	       "split blob: the whole blob (%zu bytes) is what was sent (%zu)",
	       flen, glen);
	r = vdpa_state_decode(flat, flen, 0, &d, err, sizeof(err));
	tap_ok(r == 0 && d->has_device && d->device_len > 0 &&
	       d->nqueues == vdpa_mig_src_state(m)->nqueues,
	       "split blob: it decodes, device section and queues included");
	tap_is(vdpa_mig_src_rollback(m, err, sizeof(err)), 0,
	       "split blob: the source resumes");
	tap_is(loop(net, a.thr, 0, prov_mac, 4), 4,
	       "split blob: source traffic flows");
out:
	free(got);
	vdpa_state_free(d);
	vdpa_mig_src_free(m);
	vdpa_net_close(net);
	side_stop(&a);
	vdpa_mem_destroy(mem);
}

/*
 * Devices with the state extension but without RESUME: the device's own
 * state carries the class state, nothing is replayed, nothing needs
 * RESUME. A changed MAC migrates.
 */
static void test_state_without_resume(void)
{
	struct vdpa_mig_opts mo = { .via = VDPA_MIG_VIA_PIPE };
	struct vdpa_mig_result res;
	struct vdpa_mem *mem = NULL;
	struct vdpa_net *net = NULL;
	struct side a, b;
	char err[256] = "";
	int r;

	r = pair_with_new_mac(&a, &b, false, true, &mem, &net);
	if (!tap_is_ok(r, 0, "extension, no RESUME: source with a new MAC"))
		goto out;
	r = vdpa_migrate(a.dev, b.dev, &mo, &res, err, sizeof(err));
	if (!tap_is_ok(r, 0, "extension, no RESUME: migrated (the device's "
		       "state carries the MAC)"))
		tap_diag("  %s", err);
	vdpa_net_set_dev(net, b.dev);
	tap_is(loop(net, b.thr, 0, new_mac, 8), 8, "extension, no RESUME: the new "
	       "MAC passes on the destination");
out:
	vdpa_net_close(net);
	side_stop(&a);
	side_stop(&b);
	vdpa_mem_destroy(mem);
}

/* The handshake's verdict, as the other side parses it (untrusted). */
static void test_verdict(void)
{
	char why[64] = "x";
	void *b = NULL;
	size_t len = 0;
	uint8_t *p;
	int res = 1;

	tap_ok(vdpa_mig_dst_verdict(NULL, 0, "ignored", &b, &len) == 0 &&
	       vdpa_mig_verdict_parse(b, len, &res, why, sizeof(why)) == 0 &&
	       res == 0 && !why[0], "verdict: success round trips, no reason");
	free(b);
	tap_ok(vdpa_mig_dst_verdict(NULL, -EIO, "mtu\n\x1b[31m", &b, &len) ==
	       0 && vdpa_mig_verdict_parse(b, len, &res, why, sizeof(why)) ==
	       0 && res == -EIO && !strcmp(why, "mtu??[31m"),
	       "verdict: a failure round trips, its reason made printable "
	       "(%s)", why);
	p = b;
	tap_is(vdpa_mig_verdict_parse(b, 7, &res, NULL, 0), -EPROTO,
	       "verdict: shorter than its header refused");
	p[0] ^= 1;
	tap_is(vdpa_mig_verdict_parse(b, len, &res, NULL, 0), -EPROTO,
	       "verdict: bad magic refused");
	p[0] ^= 1;
	p[4] = 5;
	p[5] = p[6] = p[7] = 0;
	tap_is(vdpa_mig_verdict_parse(b, len, &res, NULL, 0), -EPROTO,
	       "verdict: a positive result refused");
	tap_is(vdpa_mig_verdict_parse(b, 8 + 1025, &res, NULL, 0), -EPROTO,
	       "verdict: longer than 1024 bytes of reason refused");
	free(b);
}

int main(void)
{
	tap_need_fd_count();
	test_filter();
	test_migrate(false);
	test_migrate(true);
	test_cannot_replay();
	test_split_blob();
	test_state_without_resume();
	test_verdict();
	return tap_done();
}
