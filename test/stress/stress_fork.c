/*
 * stress_fork.c - fork from a multi-threaded process while others allocate.
 *
 * Worker threads allocate, check and free without pause; the main thread
 * (and now and then a worker) forks over and over. Each child allocates
 * (small, medium, large, realloc, a thread of its own), checks what it
 * wrote, frees and exits 0 (by exit() or _exit()). A child that has not
 * exited within STRESS_FORK_TIMEOUT seconds (default 10) is taken to have
 * deadlocked on a lock some parent thread held at the fork: it is killed
 * and the run fails. Objects that were live in the parent at the fork are
 * checked in the child too.
 *
 * Env: STRESS_SECONDS (default 5), STRESS_THREADS (3), STRESS_FORKS (max,
 * default 400), STRESS_MIN_FORKS (3: a loaded 2-core machine forks slowly), STRESS_SEED.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "common.h"

#define SLOTS 256

struct slot {
	void *p;
	size_t size;
	uint64_t tag;
};

struct worker {
	pthread_t tid;
	struct rng rng;
	struct slot slots[SLOTS];
	bool forker;
};

static atomic_bool stop;
static atomic_ulong nr_forks, nr_ops;
static double timeout_s;

static size_t
pick_size(struct rng *r)
{
	unsigned k = rng_below(r, 1000);

	if (k < 900)
		return 1 + rng_below(r, 512);
	if (k < 995)
		return 512 + rng_below(r, 64 << 10);
	return (1 << 20) + rng_below(r, 5 << 20);
}

static void
slot_check(struct slot *s, const char *who)
{
	size_t bad = pattern_check(s->p, s->size, s->tag);

	if (bad != (size_t)-1)
		fail("stress_fork: %s: block %p size %zu corrupted at %zu",
		     who, s->p, s->size, bad);
}

static void
slot_step(struct slot *slots, unsigned n, struct rng *r, const char *who)
{
	struct slot *s = &slots[rng_below(r, n)];
	void *p;

	if (!s->p) {
		s->size = pick_size(r);
		s->p = malloc(s->size);
		if (!s->p)
			fail("stress_fork: %s: malloc(%zu) failed", who,
			     s->size);
		s->tag = rng_next(r);
		pattern_fill(s->p, s->size, s->tag);
		return;
	}
	slot_check(s, who);
	if (rng_below(r, 4) == 0) {
		size_t size = pick_size(r);

		p = realloc(s->p, size);
		if (!p)
			fail("stress_fork: %s: realloc failed", who);
		s->p = p;
		s->size = size;
		pattern_fill(p, size, s->tag);
		return;
	}
	free(s->p);
	s->p = NULL;
}

static void *
child_thread(void *arg)
{
	struct slot slots[32] = { 0 };
	struct rng r;

	rng_seed(&r, (uintptr_t)arg);
	for (int i = 0; i < 2000; i++)
		slot_step(slots, 32, &r, "child thread");
	for (int i = 0; i < 32; i++)
		free(slots[i].p);
	return NULL;
}

/* The child: when a worker forked, that worker's live objects were
 * consistent at the fork, so the child checks and frees its copies; then it
 * allocates on its own. */
static void __attribute__((noreturn))
child_main(struct worker *self, uint64_t seed)
{
	struct slot slots[64] = { 0 };
	struct rng r;
	pthread_t t;
	void *big;

	rng_seed(&r, seed);
	for (int i = 0; self && i < SLOTS; i++) {
		if (self->slots[i].p)
			slot_check(&self->slots[i], "child (inherited)");
		free(self->slots[i].p);
	}
	for (int i = 0; i < 3000; i++)
		slot_step(slots, 64, &r, "child");
	big = calloc(1, 9 << 20);
	if (!big)
		fail("stress_fork: child: calloc(9 MiB) failed");
	free(big);
	if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)seed) ||
	    pthread_join(t, NULL))
		fail("stress_fork: child: thread create/join failed");
	for (int i = 0; i < 64; i++)
		free(slots[i].p);
	if (seed & 1)
		exit(0);
	_exit(0);
}

/* Waits for a child with a deadline; a hang is a failure. */
static void
reap(pid_t pid)
{
	uint64_t deadline = now_ns() + (uint64_t)(timeout_s * 1e9);
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			break;
		if (r < 0)
			fail("stress_fork: waitpid: %s", strerror(errno));
		if (now_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fail("stress_fork: child %d did not exit within %.0f s "
			     "(deadlock after fork?)", pid, timeout_s);
		}
		usleep(500);
	}
	if (WIFSIGNALED(st))
		fail("stress_fork: child %d killed by signal %d", pid,
		     WTERMSIG(st));
	if (WEXITSTATUS(st))
		fail("stress_fork: child %d exited %d", pid, WEXITSTATUS(st));
	atomic_fetch_add(&nr_forks, 1);
}

static struct worker *workers;
static unsigned nr_workers;

static void
fork_once(struct worker *self, uint64_t seed)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid < 0)
		fail("stress_fork: fork: %s", strerror(errno));
	if (pid == 0) {
		/* A child left deadlocked when the parent gives up must not
		 * outlive it (it would hold the test's output pipe open). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		child_main(self, seed);
	}
	reap(pid);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned long n = 0;

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		slot_step(w->slots, SLOTS, &w->rng, "parent worker");
		if (++n % 50000 == 0 && w->forker)
			fork_once(w, rng_next(&w->rng));
	}
	for (int i = 0; i < SLOTS; i++) {
		if (w->slots[i].p)
			slot_check(&w->slots[i], "parent final");
		free(w->slots[i].p);
	}
	atomic_fetch_add(&nr_ops, n);
	return NULL;
}

int
main(void)
{
	double secs = stress_seconds(5);
	unsigned long seed = env_long("STRESS_SEED", (long)now_ns());
	unsigned long max_forks = env_long("STRESS_FORKS", 400), i;
	uint64_t end;

	timeout_s = env_long("STRESS_FORK_TIMEOUT", 10);
	nr_workers = env_long("STRESS_THREADS", 3);
	printf("stress_fork: %u workers, %.1f s, seed %lu\n", nr_workers,
	       secs, seed);
	fflush(stdout);
	workers = calloc(nr_workers, sizeof(*workers));
	if (!workers)
		fail("stress_fork: calloc failed");
	for (unsigned w = 0; w < nr_workers; w++) {
		rng_seed(&workers[w].rng, seed + w);
		workers[w].forker = w == 0;
		if (pthread_create(&workers[w].tid, NULL, worker_main,
				   &workers[w]))
			fail("stress_fork: pthread_create failed");
	}
	end = now_ns() + (uint64_t)(secs * 1e9);
	for (i = 0; i < max_forks && now_ns() < end; i++) {
		fork_once(NULL, seed ^ mix64(i));
		usleep(1000);
	}
	atomic_store(&stop, true);
	for (unsigned w = 0; w < nr_workers; w++)
		pthread_join(workers[w].tid, NULL);
	free(workers);
	printf("stress_fork: %lu children exited 0, %lu parent ops\n",
	       atomic_load(&nr_forks), atomic_load(&nr_ops));
	if (atomic_load(&nr_forks) < (unsigned long)env_long("STRESS_MIN_FORKS",
							    3))
		fail("stress_fork: only %lu forks in the run",
		     atomic_load(&nr_forks));
	printf("stress_fork: ok\n");
	return 0;
}
