/*
 * compat_atfork.c - a program's own fork handlers that allocate, in a
 * threaded program, registered after its first allocation.
 *
 * glibc runs the prepare handlers last registered first, so the
 * allocator's handler, which takes its locks, must be registered before
 * the program's: their allocations then come before it. An allocator
 * that registers its handlers late (at the first fork, say, to keep libc's
 * registration out of processes that never fork) runs its prepare first,
 * and the program's allocation waits on a lock held by its own thread.
 * A worker thread allocates all along; the main thread forks (each child
 * allocates, checks and exits), then does the same through forkpty and
 * daemon, glibc's other callers of fork with the handlers.
 *
 * Passes when every child reported success; a hang is caught by the
 * watchdog. Env: STRESS_SECONDS (default 2).
 */
#include <pthread.h>
#include <pty.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "common.h"

#define BIG	(300 << 10)

static atomic_bool stop;
static atomic_ulong nr_prepares, nr_children;

/* The program's handlers: a block large enough to come from pages, not
 * from a thread's cache, in the prepare and the child handler. */
static void
prepare(void)
{
	char *p = malloc(BIG);

	if (!p)
		fail("malloc in the prepare handler");
	pattern_fill(p, BIG, 1);
	free(p);
	atomic_fetch_add(&nr_prepares, 1);
}

static void
child(void)
{
	char *p = malloc(BIG);

	if (!p)
		_exit(4);
	pattern_fill(p, BIG, 2);
	if (pattern_check(p, BIG, 2) != (size_t)-1)
		_exit(5);
	free(p);
}

static void *
worker(void *arg)
{
	struct rng r;

	rng_seed(&r, (uintptr_t)arg);
	while (!atomic_load(&stop)) {
		size_t n = 16 + rng_below(&r, 512 << 10);
		char *p = malloc(n);

		if (!p)
			fail("malloc(%zu)", n);
		pattern_fill(p, n, n);
		if (pattern_check(p, n, n) != (size_t)-1)
			fail("pattern");
		free(p);
	}
	return NULL;
}

/* What a child does, whichever call made it: 0 when its allocations
 * hold. */
static int
child_work(void)
{
	char *v[64];

	for (int i = 0; i < 64; i++) {
		v[i] = malloc((size_t)(i + 1) * 4096);
		if (!v[i])
			return 6;
		pattern_fill(v[i], (size_t)(i + 1) * 4096, (uint64_t)i);
	}
	for (int i = 0; i < 64; i++) {
		if (pattern_check(v[i], (size_t)(i + 1) * 4096, (uint64_t)i) !=
		    (size_t)-1)
			return 7;
		free(v[i]);
	}
	return 0;
}

static void
reap(pid_t pid, const char *how)
{
	int st;

	if (pid < 0)
		fail("%s: %s", how, strerror(errno));
	if (waitpid(pid, &st, 0) != pid)
		fail("waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail("%s: child status %#x", how, st);
	atomic_fetch_add(&nr_children, 1);
}

/* daemon's child goes on as the daemon: it reports through a pipe. */
static void
via_daemon(void)
{
	int fds[2];
	char r = 1;
	pid_t pid;

	if (pipe(fds))
		fail("pipe: %s", strerror(errno));
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		if (daemon(1, 1) != 0)
			_exit(8);
		r = (char)child_work();
		if (write(fds[1], &r, 1) != 1)
			_exit(9);
		_exit(0);
	}
	close(fds[1]);
	reap(pid, "fork before daemon");
	if (read(fds[0], &r, 1) != 1 || r != 0)
		fail("daemon's child: %d", r);
	close(fds[0]);
}

int
main(void)
{
	double secs = stress_seconds(2);
	uint64_t end;
	pthread_t t;
	int master;
	pid_t pid;

	start_watchdog("compat_atfork", secs + 10, NULL, 0);
	free(malloc(100));
	if (pthread_atfork(prepare, NULL, child))
		fail("pthread_atfork");
	if (pthread_create(&t, NULL, worker, (void *)1))
		fail("pthread_create");
	end = now_ns() + (uint64_t)(secs * 1e9);
	do {
		pid = fork();
		if (pid == 0)
			_exit(child_work());
		reap(pid, "fork");
	} while (now_ns() < end);
	pid = forkpty(&master, NULL, NULL, NULL);
	if (pid == 0)
		_exit(child_work());
	reap(pid, "forkpty");
	close(master);
	via_daemon();
	atomic_store(&stop, true);
	pthread_join(t, NULL);
	if (atomic_load(&nr_prepares) < atomic_load(&nr_children))
		fail("%lu prepares for %lu children", atomic_load(&nr_prepares),
		     atomic_load(&nr_children));
	printf("compat_atfork: %lu children, each with the program's handlers\n",
	       atomic_load(&nr_children));
	return 0;
}
