/*
 * test_init.c - boot, per-thread state and its retirement at thread exit,
 * allocation after the exit destructor, fork in a multi-threaded process,
 * fork from a signal handler that interrupted the allocator.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/wait.h>
#include <unistd.h>

#include "malloc/alloc.h"
#include "malloc/init.h"
#include "malloc/map.h"
#include "os/os.h"
#include "page/zone.h"
#include "page/zone_priv.h"

#include "watchdog.h"

#define MiB ((size_t)1 << 20)

Test(init, boot_is_idempotent_and_creates_one_state_per_thread)
{
	struct tstate *ts;

	cr_assert(init_boot());
	cr_assert(init_boot());
	cr_assert(init_is_booted());
	ts = init_tstate();
	cr_assert_not_null(ts);
	cr_assert_eq(init_tstate(), ts);
	cr_assert_eq(alloc_tls, &ts->tc);
	cr_assert_eq(page_head(page_lookup(ts))->kind, PAGE_META);
}

Test(init, first_malloc_boots)
{
	void *p = alloc_malloc(10);

	cr_assert_not_null(p);
	cr_assert(init_is_booted());
	cr_assert_neq(alloc_tls, &tcache_none);
	alloc_free(p);
}

struct live {
	unsigned char *p[64];
	size_t n[64];
};

static void *
allocate_and_exit(void *arg)
{
	struct live *l = arg;

	for (int i = 0; i < 64; i++) {
		l->n[i] = (size_t)1 << (i % 24);
		l->p[i] = alloc_malloc(l->n[i]);
		memset(l->p[i], i, l->n[i]);
	}
	return NULL;
}

Test(init, objects_outlive_their_thread)
{
	struct live l;
	pthread_t t;

	cr_assert(init_boot());
	for (int round = 0; round < 4; round++) {
		pthread_create(&t, NULL, allocate_and_exit, &l);
		pthread_join(t, NULL);
		for (int i = 0; i < 64; i++) {
			cr_assert_eq(l.p[i][0], i);
			cr_assert_eq(l.p[i][l.n[i] - 1], i);
			alloc_free(l.p[i]);
		}
	}
	cr_assert(zone_check_all());
}

static pthread_key_t late_key;
static void *late_block[3];

/* Runs after init's own destructor (the key was created after boot), so
 * this thread has no state any more. */
static void
late_destructor(void *arg)
{
	void **kept = arg;

	alloc_free(kept[0]);		/* remote path: no thread cache */
	late_block[0] = alloc_malloc(48);	/* a fresh state */
	late_block[1] = alloc_malloc(50000);
	late_block[2] = alloc_calloc(1, 200);
	memset(late_block[0], 1, 48);
}

static void *
thread_with_late_work(void *arg)
{
	static void *kept[1];

	(void)arg;
	kept[0] = alloc_malloc(32);
	pthread_setspecific(late_key, kept);
	return NULL;
}

Test(init, thread_may_allocate_after_its_state_is_retired)
{
	pthread_t t;

	cr_assert(init_boot());
	cr_assert_eq(pthread_key_create(&late_key, late_destructor), 0);
	pthread_create(&t, NULL, thread_with_late_work, NULL);
	pthread_join(t, NULL);
	for (int i = 0; i < 3; i++) {
		cr_assert_not_null(late_block[i]);
		alloc_free(late_block[i]);
	}
	cr_assert(zone_check_all());
}

static volatile int stop_churn;

static void *
churn(void *arg)
{
	void *keep[32] = { 0 };
	unsigned x = (unsigned)(uintptr_t)arg;

	while (!__atomic_load_n(&stop_churn, __ATOMIC_RELAXED)) {
		x = x * 1103515245 + 12345;
		unsigned slot = (x >> 8) % 32;
		size_t n = (x >> 16) % 3 == 0 ? 20000 + (x % 100000)
					      : 8 + (x % 2000);

		alloc_free(keep[slot]);
		keep[slot] = alloc_malloc(n);
		memset(keep[slot], 1, n < 64 ? n : 64);
	}
	for (int i = 0; i < 32; i++)
		alloc_free(keep[i]);
	return NULL;
}

static int
child_work(void)
{
	void *p[100];

	for (int i = 0; i < 100; i++) {
		p[i] = alloc_malloc((size_t)(i * 997) % 70000 + 1);
		if (!p[i])
			return 1;
	}
	void *big = alloc_malloc(9 * MiB);
	if (!big)
		return 2;
	for (int i = 0; i < 100; i++)
		alloc_free(p[i]);
	alloc_free(big);
	return zone_check_all() ? 0 : 3;
}

Test(init, fork_while_other_threads_allocate)
{
	pthread_t t[3];

	watchdog_arm(60);
	cr_assert(init_boot());
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1));
	for (int round = 0; round < 30; round++) {
		int status;
		pid_t pid = map_fork();

		/* No cr_assert before the child is gone: in the child it
		 * would report to the runner as if it were the test. */
		if (pid == 0) {
			/* Criterion's handlers would report from this
			 * process too; a crash here is the parent's to see. */
			signal(SIGSEGV, SIG_DFL);
			signal(SIGABRT, SIG_DFL);
			signal(SIGBUS, SIG_DFL);
			alarm(20);
			_exit(child_work());
		}
		cr_assert_neq(pid, -1);
		cr_assert_eq(waitpid(pid, &status, 0), pid);
		cr_assert(WIFEXITED(status), "round %d: child died of signal %d",
			  round, WTERMSIG(status));
		cr_assert_eq(WEXITSTATUS(status), 0, "round %d", round);
	}
	__atomic_store_n(&stop_churn, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
}

/* A program's own fork handlers, which allocate through the zone. */
static void
their_prepare(void)
{
	void *p = alloc_malloc(256 << 10);

	if (p)
		alloc_free(p);
}

static void
their_child(void)
{
	alloc_free(alloc_malloc(256 << 10));
}

/*
 * Our fork handlers are registered when a fork could first run them (a
 * fork, or anyone's registration), not at boot, and before anyone
 * else's: glibc runs the prepare handlers last registered first, so a
 * program's handler registered after boot still runs before ours takes
 * our locks, and may allocate (registered at the first fork, ours would
 * run first and its allocation would wait on our zone lock for ever).
 */
Test(init, fork_handlers_go_in_first_and_only_when_needed)
{
	int status;
	pid_t pid;

	watchdog_arm(30);
	cr_assert(init_boot());
	alloc_free(alloc_malloc(100));
	cr_assert(!init_fork_handlers_registered(),
		  "registered at boot: libc's first registration costs every "
		  "process 64 KiB of its constants");
	cr_assert_eq(map_register_atfork(their_prepare, NULL, their_child,
					 NULL), 0);
	cr_assert(init_fork_handlers_registered());
	pid = map_fork();
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		signal(SIGABRT, SIG_DFL);
		alarm(20);
		_exit(zone_check_all() ? 0 : 3);
	}
	cr_assert_neq(pid, -1);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "child status %#x", status);
}

/* The background thread's purge: zone 0's purge_lock, then its lock. */
static void *
purge_all(void *arg)
{
	(void)arg;
	zone_purge(/* all */ true);
	return NULL;
}

/*
 * What compat_forksig met one run in a few dozen: a signal handler forks
 * while the thread it interrupted holds zone 0's lock, and the background
 * thread holds zone 0's purge_lock while it waits for that lock. Taking
 * every lock in fork's prepare step deadlocks here; the child must get
 * the allocator as it is, the parent must go on, the purge must finish.
 */
Test(init, fork_from_a_thread_inside_the_allocator)
{
	struct zone *z = zone_of(0);
	pthread_t t;
	int status;
	pid_t pid;

	watchdog_arm(30);
	cr_assert(init_boot());
	zp_lock(&z->lock);
	pthread_create(&t, NULL, purge_all, NULL);
	/* Wait for the purge to hold purge_lock and sleep on the lock. */
	while (!(__atomic_load_n(&z->lock.word, __ATOMIC_RELAXED) &
		 ZP_LOCK_WAITERS))
		usleep(1000);
	cr_assert(!zp_trylock(&z->purge_lock));
	pid = map_fork();
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		signal(SIGABRT, SIG_DFL);
		alarm(20);
		/* Fork's own locks are off the count again; the
		 * interrupted path's one is not. */
		_exit(zp_lock_depth == 1 ? 0 : 3);
	}
	cr_assert_neq(pid, -1);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "child status %#x", status);
	cr_assert(zp_lock_is_mine(&z->lock));
	cr_assert_eq(zp_lock_depth, 1);
	zp_unlock(&z->lock);
	cr_assert_eq(zp_lock_depth, 0);
	pthread_join(t, NULL);
	zp_lock(&z->purge_lock);	/* released by the purge, not fork */
	zp_unlock(&z->purge_lock);
	cr_assert(zone_check_all());
}

/* Boot finds the vDSO's clock where the process has a vDSO (valgrind
 * gives none; on x86-64 and arm64, whose names for it os_linux.c knows),
 * and os_now_ns reads the same clock as libc's clock_gettime: never
 * behind a reading taken before it, never ahead of one taken after. */
Test(init, the_clock_is_the_vdso_s_and_reads_as_clock_gettime)
{
	struct timespec a, b;
	uint64_t t;

	cr_assert(init_boot());
#if defined(__x86_64__) || defined(__aarch64__)
	cr_assert_eq(os_clock_is_vdso(), getauxval(AT_SYSINFO_EHDR) != 0,
		     "boot found the vDSO's clock_gettime");
#endif
	for (int i = 0; i < 1000; i++) {
		clock_gettime(CLOCK_MONOTONIC, &a);
		t = os_now_ns();
		clock_gettime(CLOCK_MONOTONIC, &b);
		cr_assert_geq(t, (uint64_t)a.tv_sec * 1000000000u + a.tv_nsec);
		cr_assert_leq(t, (uint64_t)b.tv_sec * 1000000000u + b.tv_nsec);
	}
}
