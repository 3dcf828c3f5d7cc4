/*
 * compat_sigthreads.c - signal handlers that allocate while their threads
 * start, allocate, free and exit.
 *
 * Threads are created one after another; each does a few hundred small and
 * medium mallocs and frees and exits, while another thread sends it SIGUSR1
 * every ~20 us. The handler mallocs and frees blocks of sizes the threads
 * never use (5000-5024 B and 70000 B), so that it shares no free list with
 * the code it interrupts, only the allocator's locks: a thread's cache,
 * its size classes' central caches, the zones, the registry of threads.
 * Under zpmalloc a handler never waits for a lock its own thread holds
 * (its malloc may fail with ENOMEM there), so every thread must finish.
 * glibc's handler waits on the arena lock its thread holds and hangs,
 * which the watchdog turns into exit 1 (the negative control).
 * Env: STRESS_SECONDS (default 3).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "common.h"

#define STEPS	400
#define STUCK_S	5	/* no thread finished for this long: stuck */

static atomic_ulong nr_handler, nr_handler_null, nr_threads;
/* The running victim, while it may be signalled: a victim leaves only
 * once no pthread_kill of it is under way (in_kill), so none reaches a
 * thread that is gone. */
static _Atomic pthread_t target;
static atomic_bool have_target, in_kill, stop;

static void
on_usr1(int sig)
{
	int saved = errno;
	unsigned long k = atomic_load_explicit(&nr_handler,
					       memory_order_relaxed);
	size_t n = k % 3 == 0 ? 70000 : 5000 + (k % 4) * 8;
	unsigned char *p = malloc(n);

	(void)sig;
	if (p) {
		p[0] = p[n - 1] = 0x5a;
		free(p);
	} else {
		atomic_fetch_add_explicit(&nr_handler_null, 1,
					  memory_order_relaxed);
	}
	atomic_fetch_add_explicit(&nr_handler, 1, memory_order_relaxed);
	errno = saved;
}

/* Small blocks of many classes below 3 KiB, and medium ones of 40 KiB. */
static void *
victim(void *arg)
{
	struct { unsigned char *p; size_t n; } v[32] = { 0 };

	(void)arg;
	atomic_store(&target, pthread_self());
	atomic_store(&have_target, true);
	for (unsigned i = 0; i < STEPS; i++) {
		unsigned k = i % 32;

		if (v[k].p && (v[k].p[0] != (unsigned char)v[k].n ||
			       v[k].p[v[k].n - 1] != (unsigned char)k))
			fail("compat_sigthreads: block %p changed", v[k].p);
		free(v[k].p);
		v[k].n = i % 5 == 0 ? 40000 + i : 16 + (i * 37) % 3000;
		v[k].p = malloc(v[k].n);
		if (!v[k].p)
			fail("compat_sigthreads: malloc(%zu) failed", v[k].n);
		v[k].p[0] = (unsigned char)v[k].n;
		v[k].p[v[k].n - 1] = (unsigned char)k;
	}
	for (unsigned k = 0; k < 32; k++)
		free(v[k].p);
	atomic_store(&have_target, false);
	while (atomic_load(&in_kill))
		;
	return NULL;
}

static void *
signaller(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		atomic_store(&in_kill, true);
		if (atomic_load(&have_target))
			pthread_kill(atomic_load(&target), SIGUSR1);
		atomic_store(&in_kill, false);
		usleep(20);
	}
	return NULL;
}

static void *
watchdog(void *arg)
{
	unsigned long last = 0;
	uint64_t since = now_ns();

	(void)arg;
	for (;;) {
		unsigned long n = atomic_load(&nr_threads);

		usleep(100 * 1000);
		if (n != last) {
			last = n;
			since = now_ns();
		} else if (now_ns() - since > (uint64_t)STUCK_S * 1000000000) {
			fail("compat_sigthreads: stuck after %lu threads "
			     "(%lu signals handled)", n,
			     atomic_load(&nr_handler));
		}
	}
	return NULL;
}

int
main(void)
{
	double secs = stress_seconds(3);
	struct sigaction sa = { .sa_handler = on_usr1 };
	pthread_t sig, dog, v;
	uint64_t end;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	pthread_create(&dog, NULL, watchdog, NULL);
	pthread_create(&sig, NULL, signaller, NULL);
	end = now_ns() + (uint64_t)(secs * 1e9);
	while (now_ns() < end) {
		if (pthread_create(&v, NULL, victim, NULL) != 0)
			fail("compat_sigthreads: pthread_create failed");
		pthread_join(v, NULL);
		atomic_fetch_add(&nr_threads, 1);
	}
	atomic_store(&stop, true);
	pthread_join(sig, NULL);
	printf("compat_sigthreads: %lu threads, %lu signals handled (%lu "
	       "mallocs failed inside the allocator)\n",
	       atomic_load(&nr_threads), atomic_load(&nr_handler),
	       atomic_load(&nr_handler_null));
	if (atomic_load(&nr_handler) < 100)
		fail("compat_sigthreads: only %lu signals handled",
		     atomic_load(&nr_handler));
	printf("compat_sigthreads: ok\n");
	return 0;
}
