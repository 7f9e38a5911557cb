// SPDX-License-Identifier: MIT
/*
 * qguest: /init of the QEMU migration rig's guest (make check-qemu).
 *
 * Runs continuously, across live migrations, until "stop" arrives on the
 * console (or qg.secs= seconds passed):
 *  - net: sequence-numbered frames (ethertype 0x88b5) sent with AF_PACKET
 *    through the virtio-net NIC; the back-end loops TX back to RX (vdpa-sim
 *    net, testpmd io mode with one port). Every frame must come back exactly
 *    once and intact. At most WINDOW frames are outstanding; when nothing
 *    comes back for a while the window is released (the frames count as
 *    lost unless they still arrive before the end).
 *  - blk: 4 KiB blocks of the virtio-blk disk written with a stamp (block,
 *    generation, checksum of a generation-derived pattern) with O_DIRECT,
 *    read back and verified; each round also re-reads one older block and
 *    checks it still holds the generation last written (catches writes lost
 *    by a migration).
 * Progress, every qg.tick ms: QG-PROGRESS t_ms=... sent=... received=...
 * At the end one line:       QG-RESULT {json}
 * then the guest powers off (QEMU runs with -no-reboot).
 *
 * Kernel command line: qg.net=0|1 qg.blk=0|1 qg.secs=N (0 = until stop)
 * qg.window=N qg.rate=N (frames per second, 0 = as fast as the window
 * allows) qg.tick=MS (progress interval, default 1000).
 *
 * Built statically by scripts/qemu/mkinitramfs.sh; not a host test.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define QG_ETHERTYPE	0x88b5
#define QG_MAGIC	0x51475545u	/* "QGUE" */
#define QG_PROBE	0x51475052u	/* "QGPR": link check before counting */
#define BLK_MAGIC	0x51474231u	/* "QGB1" */
#define BLK_SIZE	4096
#define MAX_FRAME	1514
#define MIN_FRAME	64
#define STALL_MS	300	/* window released after this long without RX */
#define DRAIN_MS	2000	/* wait at the end for frames still in flight */

struct cfg {
	int net, blk;
	unsigned secs, window, rate, tick;
};

struct frame_hdr {		/* after the Ethernet header */
	uint32_t magic;
	uint32_t len;		/* whole frame length */
	uint64_t seq;
	uint32_t sum;		/* FNV-1a of the payload after this header */
	uint32_t pad;
} __attribute__((packed));

struct blk_stamp {
	uint32_t magic;
	uint32_t sum;		/* FNV-1a of the rest of the block */
	uint64_t block;
	uint64_t gen;
};

static struct {
	uint64_t sent, received, dup, corrupt, foreign, released;
	uint64_t bw, bv, bcorrupt, bold;
	uint64_t sock_drops;	/* PACKET_STATISTICS: dropped by the socket */
	uint8_t *seen;		/* per seq: times received (saturating) */
	uint64_t seen_cap;
} st;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(1, buf, n) < 0)
		return;
}

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

/* Pattern byte i of something identified by key: cheap, key-dependent. */
static void fill(uint8_t *p, size_t n, uint64_t key)
{
	uint64_t x = key * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static void power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

static void setup_system(void)
{
	int fd;

	mkdir("/dev", 0755);
	mkdir("/proc", 0755);
	mkdir("/sys", 0755);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	fd = open("/dev/console", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

static unsigned opt_uint(const char *cmdline, const char *key, unsigned def)
{
	const char *p = cmdline;
	size_t kl = strlen(key);

	while ((p = strstr(p, key)) != NULL) {
		if ((p == cmdline || p[-1] == ' ') && p[kl] == '=')
			return (unsigned)strtoul(p + kl + 1, NULL, 0);
		p += kl;
	}
	return def;
}

static void read_cfg(struct cfg *c)
{
	char line[1024] = "";
	int fd = open("/proc/cmdline", O_RDONLY);

	if (fd >= 0) {
		ssize_t n = read(fd, line, sizeof(line) - 1);

		line[n > 0 ? n : 0] = 0;
		close(fd);
	}
	c->net = opt_uint(line, "qg.net", 1);
	c->blk = opt_uint(line, "qg.blk", 1);
	c->secs = opt_uint(line, "qg.secs", 0);
	c->window = opt_uint(line, "qg.window", 32);
	c->rate = opt_uint(line, "qg.rate", 0);
	c->tick = opt_uint(line, "qg.tick", 1000);
	if (c->tick < 50)
		c->tick = 1000;
	if (c->window < 1 || c->window > 256)
		c->window = 32;
}

/* ---- net ---- */

struct net {
	int fd, ifindex;
	uint8_t mac[6];
	uint64_t outstanding_since;	/* first send of the current window */
	uint64_t last_rx;
	uint64_t in_flight;
};

static int net_open(struct net *n, const char *ifname)
{
	struct sockaddr_ll sll = { 0 };
	struct ifreq ifr = { 0 };
	int one = 1;

	n->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       htons(QG_ETHERTYPE));
	if (n->fd < 0) {
		say("QG-ERROR socket(AF_PACKET): %s", strerror(errno));
		return -1;
	}
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	if (ioctl(n->fd, SIOCGIFINDEX, &ifr) < 0) {
		say("QG-ERROR %s: %s", ifname, strerror(errno));
		return -1;
	}
	n->ifindex = ifr.ifr_ifindex;
	if (ioctl(n->fd, SIOCGIFHWADDR, &ifr) < 0) {
		say("QG-ERROR SIOCGIFHWADDR: %s", strerror(errno));
		return -1;
	}
	memcpy(n->mac, ifr.ifr_hwaddr.sa_data, 6);
	if (ioctl(n->fd, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(n->fd, SIOCSIFFLAGS, &ifr) < 0) {
		say("QG-ERROR bringing %s up: %s", ifname, strerror(errno));
		return -1;
	}
	/* a slow (TCG) guest must not drop what the back-end looped back */
	{
		int rcv = 8 << 20;

		if (setsockopt(n->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
			setsockopt(n->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	}
	/* our own transmissions are not what we wait for */
	setsockopt(n->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(QG_ETHERTYPE);
	sll.sll_ifindex = n->ifindex;
	if (bind(n->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		say("QG-ERROR bind: %s", strerror(errno));
		return -1;
	}
	say("QG-NET %s index %d mac %02x:%02x:%02x:%02x:%02x:%02x", ifname,
	    n->ifindex, n->mac[0], n->mac[1], n->mac[2], n->mac[3], n->mac[4],
	    n->mac[5]);
	return 0;
}

static size_t frame_len(uint64_t seq)
{
	return MIN_FRAME + (size_t)(seq * 97 % (MAX_FRAME - MIN_FRAME + 1));
}

static int net_send(struct net *n)
{
	uint8_t buf[MAX_FRAME];
	struct ether_header *eh = (void *)buf;
	struct frame_hdr *h = (void *)(buf + sizeof(*eh));
	size_t len = frame_len(st.sent);
	uint8_t *pl = buf + sizeof(*eh) + sizeof(*h);
	size_t pl_len = len - sizeof(*eh) - sizeof(*h);

	memcpy(eh->ether_dhost, n->mac, 6);
	memcpy(eh->ether_shost, n->mac, 6);
	eh->ether_type = htons(QG_ETHERTYPE);
	h->magic = QG_MAGIC;
	h->len = (uint32_t)len;
	h->seq = st.sent;
	h->pad = 0;
	fill(pl, pl_len, st.sent);
	h->sum = fnv1a(pl, pl_len);
	if (send(n->fd, buf, len, 0) != (ssize_t)len) {
		if (errno == EAGAIN || errno == ENOBUFS)
			return 0;
		say("QG-ERROR send: %s", strerror(errno));
		return -1;
	}
	if (st.sent >= st.seen_cap) {
		uint64_t cap = st.seen_cap ? st.seen_cap * 2 : 1 << 16;
		uint8_t *p = realloc(st.seen, cap);

		if (!p) {
			say("QG-ERROR out of memory");
			return -1;
		}
		memset(p + st.seen_cap, 0, cap - st.seen_cap);
		st.seen = p;
		st.seen_cap = cap;
	}
	if (n->in_flight == 0)
		n->outstanding_since = now_ms();
	st.sent++;
	n->in_flight++;
	return 1;
}

static void net_check(struct net *n, const uint8_t *buf, ssize_t len)
{
	const struct frame_hdr *h = (const void *)(buf + sizeof(struct ether_header));
	size_t hl = sizeof(struct ether_header) + sizeof(*h);
	uint8_t want[MAX_FRAME];

	if (len >= (ssize_t)hl && h->magic == QG_PROBE)
		return;
	if (len < (ssize_t)hl || h->magic != QG_MAGIC) {
		st.foreign++;
		return;
	}
	if (h->seq >= st.sent || h->len != (uint32_t)len ||
	    (size_t)len != frame_len(h->seq)) {
		if (st.corrupt < 20)
			say("QG-CORRUPT seq %" PRIu64 " len %zd (header %u)", h->seq, len, h->len);
		st.corrupt++;
		return;
	}
	fill(want, len - hl, h->seq);
	if (memcmp(want, buf + hl, len - hl) != 0 || fnv1a(want, len - hl) != h->sum) {
		if (st.corrupt < 20)
			say("QG-CORRUPT seq %" PRIu64 " payload", h->seq);
		st.corrupt++;
		return;
	}
	if (st.seen[h->seq]) {
		if (st.dup < 20)
			say("QG-DUP seq %" PRIu64 " (sent %" PRIu64 ", received %" PRIu64 ")",
			    h->seq, st.sent, st.received);
		st.dup++;
		if (st.seen[h->seq] < 255)
			st.seen[h->seq]++;
		return;
	}
	st.seen[h->seq] = 1;
	st.received++;
	n->last_rx = now_ms();
	if (n->in_flight)
		n->in_flight--;
}

static void net_receive(struct net *n, int timeout_ms)
{
	uint8_t buf[2048];
	struct pollfd pfd = { .fd = n->fd, .events = POLLIN };

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return;
	for (;;) {
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		ssize_t len = recvfrom(n->fd, buf, sizeof(buf), 0,
				       (struct sockaddr *)&from, &fl);

		if (len < 0)
			return;
		if (from.sll_pkttype == PACKET_OUTGOING)
			continue;
		net_check(n, buf, len);
	}
}

/*
 * Before counting anything: the link must be up and a probe frame must
 * come back (the back-end may still be setting up its rings).
 */
static int net_warmup(struct net *n, unsigned timeout_s)
{
	uint64_t end = now_ms() + timeout_s * 1000ull;
	uint8_t buf[2048];
	unsigned probes = 0;

	while (now_ms() < end) {
		struct ether_header *eh = (void *)buf;
		struct frame_hdr *h = (void *)(buf + sizeof(*eh));
		struct pollfd pfd = { .fd = n->fd, .events = POLLIN };
		uint64_t until = now_ms() + 100;

		memset(buf, 0, MIN_FRAME);
		memcpy(eh->ether_dhost, n->mac, 6);
		memcpy(eh->ether_shost, n->mac, 6);
		eh->ether_type = htons(QG_ETHERTYPE);
		h->magic = QG_PROBE;
		h->seq = probes++;
		if (send(n->fd, buf, MIN_FRAME, 0) < 0 && errno != EAGAIN &&
		    errno != ENOBUFS && errno != ENETDOWN) {
			say("QG-ERROR probe send: %s", strerror(errno));
			return -1;
		}
		while (now_ms() < until) {
			struct sockaddr_ll from;
			socklen_t fl = sizeof(from);
			ssize_t len;

			if (poll(&pfd, 1, 10) <= 0)
				continue;
			len = recvfrom(n->fd, buf, sizeof(buf), 0,
				       (struct sockaddr *)&from, &fl);
			if (len >= (ssize_t)(sizeof(*eh) + sizeof(*h)) &&
			    from.sll_pkttype != PACKET_OUTGOING && h->magic == QG_PROBE) {
				say("QG-LINK up after %u probes", probes);
				/* late echoes of earlier probes are ignored */
				return 0;
			}
		}
	}
	say("QG-ERROR no probe frame came back in %u s", timeout_s);
	return -1;
}

/* ---- blk ---- */

struct blk {
	int fd;
	uint64_t nblocks, next;
	uint64_t *gen;		/* last generation written per block, 0 = never */
	uint8_t *buf;
};

static int blk_open(struct blk *b, const char *path)
{
	uint64_t bytes = 0;

	b->fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (b->fd < 0) {
		say("QG-ERROR %s: %s", path, strerror(errno));
		return -1;
	}
	if (ioctl(b->fd, BLKGETSIZE64, &bytes) < 0 || bytes < BLK_SIZE) {
		say("QG-ERROR %s: size %" PRIu64, path, bytes);
		return -1;
	}
	b->nblocks = bytes / BLK_SIZE;
	if (b->nblocks > 4096)	/* 16 MiB is plenty to cycle through */
		b->nblocks = 4096;
	b->gen = calloc(b->nblocks, sizeof(*b->gen));
	if (!b->gen || posix_memalign((void **)&b->buf, 4096, BLK_SIZE)) {
		say("QG-ERROR out of memory");
		return -1;
	}
	say("QG-BLK %s %" PRIu64 " bytes, using %" PRIu64 " blocks", path, bytes,
	    b->nblocks);
	return 0;
}

static void blk_make(uint8_t *p, uint64_t block, uint64_t gen)
{
	struct blk_stamp *s = (void *)p;

	fill(p + sizeof(*s), BLK_SIZE - sizeof(*s), block * 1000003 + gen);
	s->magic = BLK_MAGIC;
	s->block = block;
	s->gen = gen;
	s->sum = fnv1a(p + sizeof(*s), BLK_SIZE - sizeof(*s));
}

/* 0 intact, 1 mismatch, -1 I/O error */
static int blk_verify(struct blk *b, uint64_t block)
{
	const struct blk_stamp *s = (void *)b->buf;

	/* what we just wrote from this buffer must not pass for what we read */
	memset(b->buf, 0xa5, BLK_SIZE);
	if (pread(b->fd, b->buf, BLK_SIZE, (off_t)block * BLK_SIZE) != BLK_SIZE) {
		say("QG-ERROR read block %" PRIu64 ": %s", block, strerror(errno));
		return -1;
	}
	if (s->magic != BLK_MAGIC || s->block != block || s->gen != b->gen[block] ||
	    s->sum != fnv1a(b->buf + sizeof(*s), BLK_SIZE - sizeof(*s))) {
		say("QG-BLK-CORRUPT block %" PRIu64 " want gen %" PRIu64 " have magic %08x gen %" PRIu64,
		    block, b->gen[block], s->magic, s->gen);
		return 1;
	}
	/* the pattern itself, not just the stamp's checksum */
	{
		static uint8_t want[BLK_SIZE];

		fill(want, BLK_SIZE - sizeof(*s), block * 1000003 + s->gen);
		if (memcmp(want, b->buf + sizeof(*s), BLK_SIZE - sizeof(*s)))
			return 1;
	}
	return 0;
}

static int blk_round(struct blk *b, uint64_t round)
{
	uint64_t block = b->next;
	int r;

	b->next = (b->next + 1) % b->nblocks;
	blk_make(b->buf, block, round + 1);
	if (pwrite(b->fd, b->buf, BLK_SIZE, (off_t)block * BLK_SIZE) != BLK_SIZE) {
		say("QG-ERROR write block %" PRIu64 ": %s", block, strerror(errno));
		return -1;
	}
	b->gen[block] = round + 1;
	st.bw++;
	r = blk_verify(b, block);
	if (r < 0)
		return -1;
	if (r)
		st.bcorrupt++;
	else
		st.bv++;
	/* an older block: still what we wrote last time? */
	if (round > 0) {
		uint64_t old = (round * 7919) % b->nblocks;

		if (b->gen[old]) {
			r = blk_verify(b, old);
			if (r < 0)
				return -1;
			if (r)
				st.bcorrupt++;
			else
				st.bold++;
		}
	}
	return 0;
}

/* ---- main loop ---- */

static int stop_requested(void)
{
	static char line[64];
	static size_t have;
	struct pollfd pfd = { .fd = 0, .events = POLLIN };
	char c;

	while (poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN)) {
		if (read(0, &c, 1) != 1)
			return 0;
		if (c == '\n' || c == '\r') {
			line[have] = 0;
			have = 0;
			if (strstr(line, "stop"))
				return 1;
		} else if (have < sizeof(line) - 1) {
			line[have++] = c;
		}
	}
	return 0;
}

static void progress(const char *tag, uint64_t t0)
{
	say("%s t_ms=%" PRIu64 " sent=%" PRIu64 " received=%" PRIu64
	    " duplicated=%" PRIu64 " corrupt=%" PRIu64 " released=%" PRIu64
	    " blk_written=%" PRIu64 " blk_verified=%" PRIu64 " blk_old_verified=%" PRIu64
	    " blk_corrupt=%" PRIu64,
	    tag, now_ms() - t0, st.sent, st.received, st.dup, st.corrupt,
	    st.released, st.bw, st.bv, st.bold, st.bcorrupt);
}

int main(void)
{
	struct cfg c;
	struct net n = { .fd = -1 };
	struct blk b = { .fd = -1 };
	uint64_t t0, last_print, round = 0, end_at;
	int err = 0;

	setup_system();
	read_cfg(&c);
	say("QG-START net=%d blk=%d secs=%u window=%u rate=%u", c.net, c.blk,
	    c.secs, c.window, c.rate);
	if (c.net && (net_open(&n, "eth0") < 0 || net_warmup(&n, 30) < 0))
		err = 1;
	if (!err && c.blk && blk_open(&b, "/dev/vda") < 0)
		err = 1;
	t0 = last_print = now_ms();
	end_at = c.secs ? t0 + c.secs * 1000ull : UINT64_MAX;
	if (!err)
		say("QG-READY");
	while (!err && now_ms() < end_at && !stop_requested()) {
		uint64_t t = now_ms();

		if (c.net) {
			uint64_t allowed = c.rate ? (t - t0) * c.rate / 1000 + 1 : UINT64_MAX;

			while (n.in_flight < c.window && st.sent < allowed) {
				int r = net_send(&n);

				if (r < 0)
					err = 1;
				if (r <= 0)
					break;
			}
			net_receive(&n, c.blk ? 0 : 1);
			/* nothing back for a while: release the window */
			if (n.in_flight && t - (n.last_rx > n.outstanding_since ?
						n.last_rx : n.outstanding_since) > STALL_MS) {
				st.released += n.in_flight;
				n.in_flight = 0;
			}
		}
		if (c.blk && !err && blk_round(&b, round++) < 0)
			err = 1;
		if (t - last_print >= c.tick) {
			progress("QG-PROGRESS", t0);
			last_print = t;
		}
	}
	if (c.net) {
		uint64_t until = now_ms() + DRAIN_MS;

		while (st.received < st.sent && now_ms() < until)
			net_receive(&n, 10);
		net_receive(&n, 50);
	}
	if (c.net) {
		struct tpacket_stats ps;
		socklen_t pl = sizeof(ps);

		if (getsockopt(n.fd, SOL_PACKET, PACKET_STATISTICS, &ps, &pl) == 0)
			st.sock_drops += ps.tp_drops;
	}
	progress("QG-PROGRESS", t0);
	say("QG-RESULT {\"error\":%d,\"ms\":%" PRIu64 ",\"sent\":%" PRIu64
	    ",\"received\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"duplicated\":%" PRIu64
	    ",\"corrupt\":%" PRIu64 ",\"foreign\":%" PRIu64
	    ",\"sock_drops\":%" PRIu64
	    ",\"blk_written\":%" PRIu64 ",\"blk_verified\":%" PRIu64
	    ",\"blk_old_verified\":%" PRIu64 ",\"blk_corrupt\":%" PRIu64 "}",
	    err, now_ms() - t0, st.sent, st.received, st.sent - st.received,
	    st.dup, st.corrupt, st.foreign, st.sock_drops, st.bw, st.bv, st.bold, st.bcorrupt);
	power_off();
	return 0;
}
