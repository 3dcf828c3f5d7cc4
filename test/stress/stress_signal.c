/*
 * stress_signal.c - signals interrupting allocation.
 *
 * Worker threads allocate, check and free while a 50 us SIGALRM interval
 * timer and a thread sending SIGUSR1 to each worker in turn interrupt them
 * anywhere, including inside malloc and free (handlers installed without
 * SA_RESTART, so every interruptible wait sees EINTR). The handlers do not
 * allocate. Allocation must keep working: no NULL, no corruption, no hang
 * (the run is bounded and the workers report progress).
 *
 * Env: STRESS_SECONDS (default 5), STRESS_THREADS (3), STRESS_SEED,
 * STRESS_MIN_STEPS (progress each worker must make, default 1000),
 * STRESS_MIN_SIGNALS (signals that must have interrupted the workers,
 * default 1000; far fewer arrive under valgrind).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/time.h>

#include "common.h"

#define SLOTS 512

struct worker {
	pthread_t tid;
	struct rng rng;
	unsigned long nr_ops;
};

static atomic_bool stop;
static atomic_ulong nr_signals;

static void
on_signal(int sig)
{
	int saved = errno;

	(void)sig;
	atomic_fetch_add_explicit(&nr_signals, 1, memory_order_relaxed);
	errno = saved;
}

static size_t
pick_size(struct rng *r)
{
	unsigned k = rng_below(r, 1000);

	if (k < 900)
		return 1 + rng_below(r, 1024);
	if (k < 995)
		return 1024 + rng_below(r, 128 << 10);
	return (1 << 20) + rng_below(r, 7 << 20);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct { void *p; size_t size; uint64_t tag; } s[SLOTS] = { 0 };

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		unsigned i = rng_below(&w->rng, SLOTS);
		size_t bad;

		w->nr_ops++;
		if (!s[i].p) {
			s[i].size = pick_size(&w->rng);
			s[i].p = rng_below(&w->rng, 4) ?
				malloc(s[i].size) : calloc(1, s[i].size);
			if (!s[i].p)
				fail("stress_signal: allocation of %zu "
				     "returned NULL (errno %d)", s[i].size,
				     errno);
			s[i].tag = rng_next(&w->rng);
			pattern_fill(s[i].p, s[i].size, s[i].tag);
			continue;
		}
		bad = pattern_check(s[i].p, s[i].size, s[i].tag);
		if (bad != (size_t)-1)
			fail("stress_signal: block %p size %zu corrupted at "
			     "%zu", s[i].p, s[i].size, bad);
		free(s[i].p);
		s[i].p = NULL;
	}
	for (unsigned i = 0; i < SLOTS; i++)
		free(s[i].p);
	return NULL;
}

int
main(void)
{
	double secs = stress_seconds(5);
	unsigned long seed = env_long("STRESS_SEED", (long)now_ns());
	unsigned nw = env_long("STRESS_THREADS", 3);
	struct itimerval it = { { 0, 50 }, { 0, 50 } }, off = { 0 };
	struct sigaction sa = { 0 };
	struct worker *ws = calloc(nw, sizeof(*ws));
	uint64_t end;
	unsigned long total = 0, n = 0;

	printf("stress_signal: %u workers, %.1f s, seed %lu\n", nw, secs,
	       seed);
	fflush(stdout);
	if (!ws)
		fail("stress_signal: calloc failed");
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: interrupted waits fail */
	if (sigaction(SIGALRM, &sa, NULL) || sigaction(SIGUSR1, &sa, NULL))
		fail("stress_signal: sigaction failed");
	for (unsigned i = 0; i < nw; i++) {
		rng_seed(&ws[i].rng, seed + i);
		if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]))
			fail("stress_signal: pthread_create failed");
	}
	if (setitimer(ITIMER_REAL, &it, NULL))
		fail("stress_signal: setitimer failed");
	end = now_ns() + (uint64_t)(secs * 1e9);
	while (now_ns() < end) {
		pthread_kill(ws[n++ % nw].tid, SIGUSR1);
		usleep(20);
	}
	setitimer(ITIMER_REAL, &off, NULL);
	atomic_store(&stop, true);
	for (unsigned i = 0; i < nw; i++) {
		pthread_join(ws[i].tid, NULL);
		if (ws[i].nr_ops < (unsigned long)env_long("STRESS_MIN_STEPS",
							   1000))
			fail("stress_signal: worker %u made only %lu steps", i,
			     ws[i].nr_ops);
		total += ws[i].nr_ops;
	}
	free(ws);
	printf("stress_signal: %lu steps, %lu signals handled\n", total,
	       atomic_load(&nr_signals));
	if (atomic_load(&nr_signals) <
	    (unsigned long)env_long("STRESS_MIN_SIGNALS", 1000))
		fail("stress_signal: only %lu signals arrived",
		     atomic_load(&nr_signals));
	printf("stress_signal: ok\n");
	return 0;
}
