/*
 * compat_sigalloc.c - a program that allocates in its own signal handler.
 *
 * That is undefined (malloc is not async-signal-safe) and may deadlock
 * under glibc: the handler may interrupt malloc in the same thread and wait
 * on the arena lock that thread holds. zpmalloc's handler never waits on a
 * lock its thread holds (base/lock.h). What must hold is that the OTHER
 * threads go on, their heap intact. One thread allocates in a loop and is
 * hit by SIGUSR1 every ~50 us; its handler mallocs, fills and frees. Two
 * worker threads run pattern-checked allocation meanwhile. After the run,
 * the workers decide: corruption fails, and so does a worker stuck for
 * good (a shared lock held by the signalled thread for ever); the
 * signalled thread stuck alone is reported and tolerated, as glibc's is
 * (the process then exits via _exit without joining it).
 * Env: STRESS_SECONDS (default 3).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "common.h"

static atomic_bool stop;
static atomic_ulong nr_handler, nr_victim, nr_worker[2];

static void
on_usr1(int sig)
{
	int saved = errno;
	char *p = malloc(24 + (nr_handler % 7) * 100);

	(void)sig;
	if (p) {
		memset(p, 0x33, 24);
		free(p);
	}
	atomic_fetch_add_explicit(&nr_handler, 1, memory_order_relaxed);
	errno = saved;
}

static void *
victim(void *arg)
{
	void *p[64] = { 0 };
	unsigned i = 0;

	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		free(p[i % 64]);
		p[i % 64] = malloc(16 + (i * 37) % 2000);
		i++;
		atomic_fetch_add_explicit(&nr_victim, 1, memory_order_relaxed);
	}
	for (i = 0; i < 64; i++)
		free(p[i]);
	return NULL;
}

static void *
worker(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	struct { void *p; size_t n; uint64_t tag; } s[256] = { 0 };
	struct rng r;

	rng_seed(&r, id + 99);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		unsigned k = rng_below(&r, 256);

		if (s[k].p) {
			size_t bad = pattern_check(s[k].p, s[k].n, s[k].tag);

			if (bad != (size_t)-1)
				fail("compat_sigalloc: worker %u block %p "
				     "corrupted at %zu", id, s[k].p, bad);
			free(s[k].p);
			s[k].p = NULL;
			continue;
		}
		s[k].n = 1 + rng_below(&r, 3000);
		s[k].p = malloc(s[k].n);
		if (!s[k].p)
			fail("compat_sigalloc: worker malloc failed");
		s[k].tag = rng_next(&r);
		pattern_fill(s[k].p, s[k].n, s[k].tag);
		atomic_fetch_add_explicit(&nr_worker[id], 1,
					  memory_order_relaxed);
	}
	for (unsigned k = 0; k < 256; k++)
		if (s[k].p && pattern_check(s[k].p, s[k].n, s[k].tag) !=
			      (size_t)-1)
			fail("compat_sigalloc: worker %u: corruption at end",
			     id);
	return NULL;
}

static bool
join_within(pthread_t t, double secs)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)secs + 1;
	return pthread_timedjoin_np(t, NULL, &ts) == 0;
}

int
main(void)
{
	double secs = stress_seconds(3);
	struct sigaction sa = { .sa_handler = on_usr1 };
	pthread_t v, w[2];
	uint64_t end;
	bool ok_v, ok_w0, ok_w1;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	pthread_create(&v, NULL, victim, NULL);
	for (unsigned i = 0; i < 2; i++)
		pthread_create(&w[i], NULL, worker, (void *)(uintptr_t)i);
	end = now_ns() + (uint64_t)(secs * 1e9);
	while (now_ns() < end) {
		pthread_kill(v, SIGUSR1);
		usleep(50);
	}
	atomic_store(&stop, true);
	ok_w0 = join_within(w[0], 5);
	ok_w1 = join_within(w[1], 5);
	ok_v = join_within(v, 1);
	printf("compat_sigalloc: %lu handler allocations, victim %lu steps, "
	       "workers %lu + %lu steps\n", atomic_load(&nr_handler),
	       atomic_load(&nr_victim), atomic_load(&nr_worker[0]),
	       atomic_load(&nr_worker[1]));
	if (!ok_w0 || !ok_w1)
		fail("compat_sigalloc: %s%s stuck", ok_w0 ? "" : "worker0 ",
		     ok_w1 ? "" : "worker1 ");
	if (!ok_v) {
		printf("compat_sigalloc: the signalled thread is stuck: "
		       "tolerated, the workers finished intact\n");
		fflush(stdout);
		_exit(0);
	}
	if (atomic_load(&nr_handler) < 100)
		fail("compat_sigalloc: only %lu signals handled",
		     atomic_load(&nr_handler));
	printf("compat_sigalloc: ok\n");
	return 0;
}
