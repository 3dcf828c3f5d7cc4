/*
 * compat_forksig.c - fork from a signal handler in a single-threaded
 * program while main is inside malloc or free.
 *
 * glibc makes this work (POSIX lists fork as async-signal-safe, and in a
 * single-threaded process glibc's fork takes no malloc lock): the child
 * only _exits, the parent reaps it in the handler and goes on. A
 * preloaded allocator whose fork handlers wait for its own locks hangs
 * the first time the signal lands while main holds one of them.
 *
 * main allocates and frees without pause, small, page-sized and a few
 * larger blocks; a 1 ms interval timer forks from its handler. A
 * second timer (SIGUSR2) is the watchdog. Env: STRESS_SECONDS (3).
 */
#include <signal.h>
#include <stdatomic.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "common.h"

#define SLOTS	512

static volatile sig_atomic_t nr_forks;
static volatile sig_atomic_t fork_failed;
static volatile unsigned long nr_ops;

/* At most one fork per allocation of main's: on a loaded machine a fork
 * can take longer than the timer's period, and main must still get on
 * (and land in malloc when the next tick comes). */
static void
on_tick(int sig)
{
	static unsigned long ops_at_fork = -1UL;
	int saved = errno;
	pid_t pid;

	(void)sig;
	if (nr_ops == ops_at_fork)
		return;
	ops_at_fork = nr_ops;
	pid = fork();
	if (pid == 0)
		_exit(0);
	if (pid < 0 || waitpid(pid, NULL, 0) != pid)
		fork_failed = 1;
	else
		nr_forks++;
	errno = saved;
}

static size_t
pick_size(struct rng *r)
{
	unsigned k = (unsigned)rng_below(r, 1000);

	if (k < 800)
		return 1 + rng_below(r, 1024);
	if (k < 990)
		return 1024 + rng_below(r, 128 << 10);
	return (1 << 20) + rng_below(r, 8 << 20);
}

int
main(void)
{
	double seconds = stress_seconds(3);
	static void *slot[SLOTS];
	struct rng r;
	uint64_t end;

	rng_seed(&r, (uint64_t)env_long("STRESS_SEED", 1));
	start_watchdog("compat_forksig", seconds + 60, on_tick, 1000);
	end = now_ns() + (uint64_t)(seconds * 1e9);
	while (now_ns() < end) {
		unsigned i = (unsigned)rng_below(&r, SLOTS);

		free(slot[i]);
		slot[i] = malloc(pick_size(&r));
		if (!slot[i])
			fail("malloc failed");
		memset(slot[i], 1, 16);
		nr_ops++;
	}
	stop_ticks();
	for (unsigned i = 0; i < SLOTS; i++)
		free(slot[i]);
	printf("compat_forksig: %lu allocations, %d forks from the handler\n",
	       nr_ops, (int)nr_forks);
	if (fork_failed)
		fail("fork or waitpid failed in the handler");
	if (nr_forks < 10)
		fail("too few forks (%d)", (int)nr_forks);
	return 0;
}
