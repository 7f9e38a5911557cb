// SPDX-License-Identifier: MIT
/* A helper thread faulting in a receive buffer ahead of its reader. */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "prefault.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif
#define STEP	(2u << 20)	/* one huge page a call */

struct prefault {
	pthread_t th;
	pthread_mutex_t m;
	pthread_cond_t c;
	uint8_t *buf;
	size_t size, ahead;
	size_t done;		/* populated up to here */
	size_t data;		/* the reader's progress */
	bool stop, waiting;
};

static void *vdpa_prefault_main(void *arg)
{
	struct prefault *pf = arg;

	pthread_mutex_lock(&pf->m);
	while (!pf->stop && pf->done < pf->size) {
		/* ahead, or as much as has come (a small state stays small) */
		size_t ahead = pf->data > STEP ? pf->data : STEP;
		size_t limit;
		uintptr_t a, e;

		if (ahead > pf->ahead)
			ahead = pf->ahead;
		limit = pf->size - pf->data > ahead ? pf->data + ahead :
			pf->size;

		if (pf->done >= limit) {
			pf->waiting = true;
			pthread_cond_wait(&pf->c, &pf->m);
			pf->waiting = false;
			continue;
		}
		a = (uintptr_t)pf->buf + pf->done;
		e = limit - pf->done > STEP ? a + STEP :
		    (uintptr_t)pf->buf + limit;
		pf->done = e - (uintptr_t)pf->buf;
		pthread_mutex_unlock(&pf->m);
		/* whole pages inside the range only */
		a = (a + 4095) & ~(uintptr_t)4095;
		e &= ~(uintptr_t)4095;
		if (e > a && madvise((void *)a, e - a, MADV_POPULATE_WRITE)) {
			pthread_mutex_lock(&pf->m);
			break;	/* not supported (or no memory): stop */
		}
		pthread_mutex_lock(&pf->m);
	}
	pthread_mutex_unlock(&pf->m);
	return NULL;
}

struct prefault *vdpa_prefault_start(void *buf, size_t size, size_t ahead)
{
	struct prefault *pf = calloc(1, sizeof(*pf));
	sigset_t all, old;
	int r;

	if (!pf)
		return NULL;
	pf->buf = buf;
	pf->size = size;
	pf->ahead = ahead;
	pthread_mutex_init(&pf->m, NULL);
	pthread_cond_init(&pf->c, NULL);
	/* no signal of the process is ever delivered to this thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&pf->th, NULL, vdpa_prefault_main, pf);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		pthread_mutex_destroy(&pf->m);
		pthread_cond_destroy(&pf->c);
		free(pf);
		return NULL;
	}
	return pf;
}

void vdpa_prefault_progress(struct prefault *pf, size_t len)
{
	if (!pf)
		return;
	pthread_mutex_lock(&pf->m);
	pf->data = len;
	if (pf->waiting)
		pthread_cond_signal(&pf->c);
	pthread_mutex_unlock(&pf->m);
}

void vdpa_prefault_stop(struct prefault *pf)
{
	if (!pf)
		return;
	pthread_mutex_lock(&pf->m);
	pf->stop = true;
	pthread_cond_signal(&pf->c);
	pthread_mutex_unlock(&pf->m);
	pthread_join(pf->th, NULL);
	pthread_mutex_destroy(&pf->m);
	pthread_cond_destroy(&pf->c);
	free(pf);
}
