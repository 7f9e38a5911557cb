// SPDX-License-Identifier: MIT
/*
 * Live update pause: a vdpa-sim net device under loopback traffic is
 * handed back and forth between two processes (include/vdpa-user/
 * handover.h), ROUNDS times on each path in the same run: with
 * VHOST_NEW_OWNER (vdpa-sim --new-owner) and the fallback (suspend, save,
 * reset, load). The pause is the library's: from SUSPEND in the old
 * process until the device runs in the new one. Every frame must come
 * back exactly once. Goal (docs/live-update.md): new-owner median >= 5x
 * shorter than the fallback's. `make bench`; argument "live-update" (or
 * none) runs it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vdpa-user/handover.h>
#include <vdpa-user/net.h>
#include <vdpa-user/vq.h>

#include "util/testutil.h"

#define ROUNDS		200
#define MEM_SIZE	(4u << 20)
#define TIMEOUT_MS	10000

struct side {
	struct vdpa_dev *dev;
	struct vdpa_mem *mem;
	struct vdpa_net *net;
	uint64_t next_tx, next_rx, bad;
};

static char sock_path[300];

static void on_frame(const void *frame, size_t len, void *opaque)
{
	struct side *s = opaque;
	uint64_t seq;

	if (len < 20) {
		s->bad++;
		return;
	}
	memcpy(&seq, (const uint8_t *)frame + 12, 8);
	if (seq != s->next_rx)
		s->bad++;	/* loopback is in order: lost or duplicated */
	s->next_rx = seq + 1;
}

static int pump(struct side *s, unsigned int n)
{
	uint8_t f[64];
	unsigned int i;

	memset(f, 0xff, sizeof(f));
	for (i = 0; i < n && vdpa_net_tx_free(s->net, 0); i++) {
		memcpy(f + 12, &s->next_tx, 8);
		if (vdpa_net_send(s->net, 0, f, sizeof(f)) < 0)
			return -EIO;
		s->next_tx++;
	}
	vdpa_net_kick_tx(s->net, 0);
	vdpa_net_wait_rx(s->net, 1);
	vdpa_net_reap_tx(s->net, 0);
	return vdpa_net_receive(s->net, 0, on_frame, s, 256);
}

static int give(struct side *s, int sock, uint64_t *pause)
{
	struct vdpa_handover_info info;
	char err[256];
	void *nb = NULL, *app;
	size_t nl = 0;
	int r;

	if (vdpa_net_save(s->net, &nb, &nl) < 0)
		return -EIO;
	app = malloc(nl + 24);
	if (!app) {
		free(nb);
		return -ENOMEM;
	}
	memcpy(app, &s->next_tx, 8);
	memcpy((uint8_t *)app + 8, &s->next_rx, 8);
	memcpy((uint8_t *)app + 16, &s->bad, 8);
	memcpy((uint8_t *)app + 24, nb, nl);
	free(nb);
	r = vdpa_handover_send(&s->dev, sock, &s->mem, 1, app, nl + 24,
			       TIMEOUT_MS, &info, err, sizeof(err));
	free(app);
	if (r < 0) {
		fprintf(stderr, "live-update bench: %s\n", err);
		return r;
	}
	if (pause)
		*pause = info.pause_ns;
	vdpa_net_close(s->net);
	vdpa_mem_destroy(s->mem);
	s->net = NULL;
	s->mem = NULL;
	return 0;
}

static int take(struct side *s, int sock)
{
	int kick[VDPA_HANDOVER_MAX_VQS], call[VDPA_HANDOVER_MAX_VQS];
	struct vdpa_handover_in *in = NULL;
	const uint8_t *app;
	char err[256];
	size_t alen = 0;
	unsigned int i;
	int r, k, c;

	memset(s, 0, sizeof(*s));
	r = vdpa_handover_recv(sock, TIMEOUT_MS, &in, err, sizeof(err));
	if (r < 0)
		return r;
	app = vdpa_handover_in_app(in, &alen);
	r = alen > 24 ? vdpa_net_restore(vdpa_handover_in_mem(in, 0), app + 24,
					 alen - 24, &s->net) : -EBADMSG;
	if (r < 0)
		goto out;
	memcpy(&s->next_tx, app, 8);
	memcpy(&s->next_rx, app + 8, 8);
	memcpy(&s->bad, app + 16, 8);
	for (i = 0; i < VDPA_HANDOVER_MAX_VQS; i++) {
		struct vdpa_vq *vq = i < vdpa_net_num_vqs(s->net) ?
				     vdpa_net_vq(s->net, i) : NULL;

		kick[i] = call[i] = -1;
		if (!vq || vdpa_handover_in_vring_fds(in, i, &k, &c) < 0)
			continue;
		kick[i] = vdpa_vq_kick_fd(vq);
		call[i] = vdpa_vq_call_fd(vq);
		if (k >= 0)
			dup3(k, kick[i], O_CLOEXEC);
		if (c >= 0)
			dup3(c, call[i], O_CLOEXEC);
	}
	r = vdpa_handover_accept(in, kick, call, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "live-update bench: %s\n", err);
		vdpa_net_close(s->net);
		goto out;
	}
	s->dev = vdpa_handover_in_take_dev(in);
	s->mem = vdpa_handover_in_take_mem(in, 0);
	vdpa_net_set_dev(s->net, s->dev);
out:
	vdpa_handover_in_free(in);
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* ROUNDS round trips; pauses of the parent's handovers. 0 when clean. */
static int run(bool new_owner, uint64_t *pause, uint64_t *frames)
{
	const char *args[] = { "--type", "net", new_owner ? "--new-owner" :
			       NULL, NULL };
	struct vdpa_net_opts o = { .vq_size = 256 };
	char name[320];
	struct side s;
	int sv[2], st = -1, k, r = -EIO, i;
	pid_t sim, pid;

	sim = tu_spawn_sim(sock_path, args);
	if (sim < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				  sv) < 0)
		return -EIO;
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		for (k = 0; k < ROUNDS; k++)
			if (take(&s, sv[1]) < 0 || pump(&s, 32) < 0 ||
			    give(&s, sv[1], NULL) < 0)
				_exit(1);
		_exit(0);
	}
	close(sv[1]);
	snprintf(name, sizeof(name), "sim:%s", sock_path);
	memset(&s, 0, sizeof(s));
	if (vdpa_dev_open(name, &s.dev) < 0 ||
	    vdpa_mem_create(MEM_SIZE, 0x100000, &s.mem) < 0 ||
	    vdpa_net_open(s.dev, s.mem, &o, &s.net) < 0)
		goto out;
	for (k = 0; k < ROUNDS; k++)
		if (pump(&s, 48) < 0 || give(&s, sv[0], &pause[k]) < 0 ||
		    take(&s, sv[0]) < 0)
			goto out;
	for (i = 0; i < 2000 && s.next_rx < s.next_tx; i++)
		pump(&s, 0);
	*frames = s.next_rx;
	r = s.next_rx == s.next_tx && !s.bad ? 0 : -EIO;
	if (r)
		fprintf(stderr, "live-update bench: sent %llu, back %llu, "
			"out of order %llu\n", (unsigned long long)s.next_tx,
			(unsigned long long)s.next_rx,
			(unsigned long long)s.bad);
out:
	close(sv[0]);
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		r = -EIO;
	vdpa_net_close(s.net);
	vdpa_dev_close(s.dev);
	vdpa_mem_destroy(s.mem);
	tu_stop_sim(sim, false);
	return r;
}

int main(int argc, char **argv)
{
	static uint64_t p_no[ROUNDS], p_fb[ROUNDS];
	uint64_t f_no = 0, f_fb = 0;
	char dir[200];
	double med_no, med_fb;
	int r1, r2, i;
	bool want = argc < 2;

	for (i = 1; i < argc; i++)
		want |= !strcmp(argv[i], "live-update");
	if (!want)
		return 0;
	signal(SIGPIPE, SIG_IGN);
	if (tu_mkdtemp(dir, sizeof(dir)))
		return 1;
	snprintf(sock_path, sizeof(sock_path), "%s/sim.sock", dir);
	r1 = run(true, p_no, &f_no);
	r2 = run(false, p_fb, &f_fb);
	tu_rmtree(dir);
	if (r1 || r2) {
		printf("live-update: FAILED (new-owner %s, fallback %s)\n",
		       r1 ? "failed" : "ok", r2 ? "failed" : "ok");
		return 1;
	}
	qsort(p_no, ROUNDS, sizeof(p_no[0]), cmp_u64);
	qsort(p_fb, ROUNDS, sizeof(p_fb[0]), cmp_u64);
	med_no = p_no[ROUNDS / 2] / 1e3;
	med_fb = p_fb[ROUNDS / 2] / 1e3;
	printf("live-update pause, %d handovers each way under net traffic "
	       "(vdpa-sim):\n", ROUNDS);
	printf("  new-owner: median %.0f us, p99 %.0f us; %llu frames, none "
	       "lost or duplicated\n", med_no,
	       p_no[ROUNDS * 99 / 100] / 1e3, (unsigned long long)f_no);
	printf("  fallback:  median %.0f us, p99 %.0f us; %llu frames, none "
	       "lost or duplicated\n", med_fb,
	       p_fb[ROUNDS * 99 / 100] / 1e3, (unsigned long long)f_fb);
	printf("  new-owner pause %.1fx shorter (goal >= 5x): %s\n",
	       med_fb / med_no, med_fb >= 5 * med_no ? "met" : "NOT met");
	return 0;
}
