/*
 * helper.c - the engine's one background thread, there only while there
 *            is work for it.
 * Owns:  the helper's lifecycle (state, work generation, hold count), its
 *        status descriptor (the seccomp check), its statistics.
 * Locks: none: state moves by compare-and-swap. The helper holds engine
 *        locks only inside reclaim_pass and zero_park_release.
 * Path:  slow path -> helper_kick -> pthread_create -> helper_main ->
 *        (each interval) zero_park_release, reclaim_pass -> exit when idle
 *        unshare/setns/seccomp -> helper_quiesce -> (wait until gone)
 *
 * A single-threaded program must stay single-threaded wherever it can
 * tell: unshare(CLONE_NEWUSER) and setns refuse a process with a second
 * thread, and a program may count its threads. So the thread starts only
 * when there is work (a region with resident pages to watch, a parked
 * region to expire), exits after a few passes that found none, and is
 * stopped - and waited for until the kernel has removed it from the
 * thread group - around the calls that need the process to itself.
 *
 * Creating a thread calls malloc (glibc allocates the new thread's TLS
 * vector), so it happens only on the malloc layer's slow paths, with no
 * engine lock held and never from an interposed call, which a signal
 * handler may make; work such a call brings is noted, and the next slow
 * path starts the helper.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>

#include "base/log.h"
#include "os/os.h"
#include "os/os_proc.h"
#include "os/os_uffd.h"
#include "zero/zero_int.h"
#include "zpmalloc.h"

/* Passes in a row that found nothing to watch before the helper goes. */
#define HELPER_IDLE_PASSES	3
/* The helper's own stack need, on top of glibc's minimum and the
 * program's static TLS (which glibc carves from every thread's stack). */
#define HELPER_STACK		((size_t)64 << 10)
#define HELPER_STACK_MAX	((size_t)64 << 20)
/* A failed pthread_create is not retried sooner than this. */
#define HELPER_RETRY_NS		(1000ULL * 1000 * 1000)
/* How long quiesce waits for a stopped helper to leave the group. */
#define HELPER_GONE_NS		(2000ULL * 1000 * 1000)

enum { HELPER_NONE, HELPER_STARTING, HELPER_RUNNING };

static struct {
	int state;			/* HELPER_*, atomic */
	uint32_t gen;			/* bumped by every kick */
	uint32_t wake;			/* futex: bumped to end a sleep early */
	int tid;			/* the last helper's thread id */
	int hold;			/* quiesced: no start while > 0 */
	bool stop;			/* the running helper should go */
	bool forbidden;			/* a sandbox: never start again */
	bool pending;			/* work noted where none could start */
	uint64_t last_fail_ns;
	int last_err;
	uint64_t nr_starts, nr_exits, nr_failed;
} helper;

static struct zero_fd status_fd = ZERO_FD_INIT;
static bool (*idle_hook)(uint64_t interval_ns);

void
zero_set_idle_hook(bool (*hook)(uint64_t interval_ns))
{
	__atomic_store_n(&idle_hook, hook, __ATOMIC_RELEASE);
}

/* --- the thread ------------------------------------------------------------ */

/* The malloc layer's pass; interval_ns 0 says there will be no next one.
 * Returns whether free pages wait for a later pass. */
static bool
run_idle_hook(uint64_t interval_ns)
{
	bool (*hook)(uint64_t) = __atomic_load_n(&idle_hook, __ATOMIC_ACQUIRE);

	return hook ? hook(interval_ns) : false;
}

/* Sleep up to ns, or until helper_wake. */
static void
helper_sleep(uint64_t ns)
{
	uint32_t w = __atomic_load_n(&helper.wake, __ATOMIC_ACQUIRE);
	uint64_t until = os_now_ns() + ns, now;

	while (!__atomic_load_n(&helper.stop, __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&helper.wake, __ATOMIC_ACQUIRE) == w &&
	       (now = os_now_ns()) < until)
		os_futex_wait_ns(&helper.wake, w, until - now);
}

static void
helper_wake(void)
{
	__atomic_add_fetch(&helper.wake, 1, __ATOMIC_RELEASE);
	os_futex_wake(&helper.wake, 1);
}

/* A seccomp filter applied to this thread behind our back (a raw system
 * call with TSYNC, or one inherited from the thread that started us):
 * stop before the next ioctl. */
static bool
helper_is_sandboxed(void)
{
	int fd = zfd_get(&status_fd), mode;

	if (fd < 0) {
		if (os_status_open(/* keep */ true, &fd) != 0)
			return false;
		zfd_set(&status_fd, fd);
		fd = zfd_get(&status_fd);
		if (fd < 0)
			return false;
	}
	mode = os_seccomp_mode(fd);
	zfd_put(&status_fd);
	return mode > 0;
}

/*
 * One interval's work: expire parked regions, then a reclaim pass (paced:
 * a pass that spent its budget and found plenty comes again after a
 * quarter interval, never sooner than twice the pass took). Returns the
 * pause before the next; *busy says whether anything is left to watch.
 */
static uint64_t
helper_pass(bool *live, bool *busy)
{
	uint64_t t0 = os_now_ns(), took;
	size_t pages = 0, examined = 0;
	bool waiting;

	zero_park_release(/* all */ false);
	waiting = run_idle_hook(zero_cfg.reclaim_interval_ns);
	/* Each pass finds out again: a uffd that could not be set up a
	 * moment ago (the program closed ours and the kernel had not yet
	 * released it) may be there now. */
	*live = !uffd_is_stopped();
	if (*live && zero_cfg.reclaim)
		pages = reclaim_pass(zero_cfg.reclaim_budget_bytes, live,
				     &examined);
	*busy = waiting || zero_park_bytes() != 0 ||
		(*live && (examined != 0 || zero_table_took_young()));
	took = os_now_ns() - t0;
	if (!*live || pages * ZP_PAGE_SIZE < zero_cfg.reclaim_budget_bytes / 4)
		return zero_cfg.reclaim_interval_ns;
	return ZP_MIN(zero_cfg.reclaim_interval_ns,
		      ZP_MAX(zero_cfg.reclaim_interval_ns / 4, 2 * took));
}

/* Going idle: leave unless a kick came since gen was read (then it saw
 * RUNNING and started nobody, so the work is ours). */
static bool
helper_may_exit(uint32_t gen)
{
	int expect = HELPER_NONE;

	__atomic_store_n(&helper.state, HELPER_NONE, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&helper.gen, __ATOMIC_SEQ_CST) == gen ||
	    __atomic_load_n(&helper.stop, __ATOMIC_SEQ_CST) ||
	    __atomic_load_n(&helper.forbidden, __ATOMIC_SEQ_CST))
		return true;
	return !__atomic_compare_exchange_n(&helper.state, &expect,
					    HELPER_RUNNING, false,
					    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
}

static void *
helper_main(void *arg)
{
	bool live = true, busy;
	unsigned idle = 0;
	uint64_t sleep_ns = zero_cfg.reclaim_interval_ns;
	uint32_t gen;

	(void)arg;
	__atomic_store_n(&helper.tid, os_gettid(), __ATOMIC_RELEASE);
	__atomic_store_n(&helper.state, HELPER_RUNNING, __ATOMIC_SEQ_CST);
	/* From now on the free path may leave work to our passes. */
	(void)run_idle_hook(zero_cfg.reclaim_interval_ns);
	for (;;) {
		gen = __atomic_load_n(&helper.gen, __ATOMIC_SEQ_CST);
		helper_sleep(sleep_ns);
		if (__atomic_load_n(&helper.stop, __ATOMIC_ACQUIRE) ||
		    __atomic_load_n(&helper.forbidden, __ATOMIC_ACQUIRE))
			break;
		if (helper_is_sandboxed()) {
			reclaim_lock();
			uffd_stop("sandboxed (seccomp)");
			reclaim_unlock();
			break;
		}
		sleep_ns = helper_pass(&live, &busy);
		idle = busy ? 0 : idle + 1;
		if (idle >= HELPER_IDLE_PASSES && helper_may_exit(gen))
			goto out;
	}
	__atomic_store_n(&helper.state, HELPER_NONE, __ATOMIC_SEQ_CST);
out:
	/* No more passes: the free path must give back at once again, and
	 * what it kept goes (the hook only tries locks then). */
	(void)run_idle_hook(0);
	zfd_close(&status_fd);
	__atomic_add_fetch(&helper.nr_exits, 1, __ATOMIC_RELAXED);
	return NULL;
}

/* A detached thread with every signal blocked (it must never run a
 * program's handler), with room for the program's static TLS. */
static int
helper_create(void)
{
	size_t stack = os_thread_min_stack() + HELPER_STACK;
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t t;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	do {
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		err = pthread_attr_setstacksize(&attr, stack);
		if (!err)
			err = pthread_create(&t, &attr, helper_main, NULL);
		pthread_attr_destroy(&attr);
		stack *= 4;
	} while (err == EINVAL && stack <= HELPER_STACK_MAX);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

static void
helper_start(void)
{
	int expect = HELPER_NONE, err;
	uint64_t now;

	if (__atomic_load_n(&helper.hold, __ATOMIC_SEQ_CST) ||
	    __atomic_load_n(&helper.forbidden, __ATOMIC_ACQUIRE) ||
	    !__atomic_compare_exchange_n(&helper.state, &expect,
					 HELPER_STARTING, false,
					 __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
		return;
	now = os_now_ns();
	/* A quiesce that began meanwhile saw NONE and goes ahead: leave the
	 * process to it. */
	if (__atomic_load_n(&helper.hold, __ATOMIC_SEQ_CST) ||
	    (helper.last_fail_ns && now - helper.last_fail_ns <
	     HELPER_RETRY_NS)) {
		__atomic_store_n(&helper.pending, true, __ATOMIC_RELEASE);
		__atomic_store_n(&helper.state, HELPER_NONE, __ATOMIC_SEQ_CST);
		return;
	}
	err = helper_create();
	if (err) {
		/* Reported in the statistics, never on the program's
		 * stderr; reclaim waits for the next try. */
		helper.last_err = err;
		helper.last_fail_ns = now;
		__atomic_add_fetch(&helper.nr_failed, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&helper.pending, true, __ATOMIC_RELEASE);
		__atomic_store_n(&helper.state, HELPER_NONE, __ATOMIC_SEQ_CST);
		return;
	}
	__atomic_add_fetch(&helper.nr_starts, 1, __ATOMIC_RELAXED);
}

/* --- the interface ----------------------------------------------------- */

/* Is there live reclaim, or may there be (the level is probed by the
 * helper's first pass)? Without it the helper only expires parked
 * regions. */
static bool
helper_has_reclaim(void)
{
	int l = uffd_level_peek();

	if (zero_cfg.test_break_protection)
		return true;
	return zero_cfg.uffd_mode != ZERO_UFFD_OFF && !uffd_is_stopped() &&
	       (l < 0 || l == ZP_ZERO_LEVEL_UFFD);
}

void
helper_kick(bool may_start)
{
	if (!zero_cfg.reclaim || (!helper_has_reclaim() &&
				  zero_park_bytes() == 0))
		return;
	__atomic_add_fetch(&helper.gen, 1, __ATOMIC_SEQ_CST);
	if (zp_likely(__atomic_load_n(&helper.state, __ATOMIC_SEQ_CST) !=
		      HELPER_NONE))
		return;
	if (!may_start) {
		__atomic_store_n(&helper.pending, true, __ATOMIC_RELEASE);
		return;
	}
	__atomic_store_n(&helper.pending, false, __ATOMIC_RELEASE);
	helper_start();
}

void
helper_kick_pending(void)
{
	if (zp_likely(!__atomic_load_n(&helper.pending, __ATOMIC_ACQUIRE)))
		return;
	if (zero_has_work())
		helper_kick(/* may_start */ true);
	else
		__atomic_store_n(&helper.pending, false, __ATOMIC_RELEASE);
}

void
helper_quiesce(void)
{
	uint64_t t0 = os_now_ns();
	int tid;

	__atomic_add_fetch(&helper.hold, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&helper.stop, true, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&helper.state, __ATOMIC_SEQ_CST) !=
	       HELPER_NONE) {
		helper_wake();
		os_sleep_ns(50 * 1000);
	}
	/* The thread has left its loop; wait until the kernel has taken
	 * it out of the thread group too. */
	tid = __atomic_load_n(&helper.tid, __ATOMIC_ACQUIRE);
	while (tid && !os_thread_is_gone(tid) &&
	       os_now_ns() - t0 < HELPER_GONE_NS)
		os_sleep_ns(20 * 1000);
	__atomic_store_n(&helper.tid, 0, __ATOMIC_RELEASE);
}

void
helper_resume(void)
{
	if (__atomic_sub_fetch(&helper.hold, 1, __ATOMIC_SEQ_CST) != 0)
		return;
	__atomic_store_n(&helper.stop, false, __ATOMIC_SEQ_CST);
	if (zero_has_work())
		__atomic_store_n(&helper.pending, true, __ATOMIC_RELEASE);
}

void
helper_forbid(void)
{
	__atomic_store_n(&helper.forbidden, true, __ATOMIC_SEQ_CST);
	helper_wake();
}

bool
helper_is_running(void)
{
	return __atomic_load_n(&helper.state, __ATOMIC_ACQUIRE) !=
	       HELPER_NONE;
}

void
helper_print(struct outbuf *o, bool json)
{
	unsigned long starts = helper.nr_starts, exits = helper.nr_exits;
	unsigned long failed = helper.nr_failed;

	if (json)
		out_printf(o, ",\"helper_running\":%d,\"helper_starts\":%lu,"
			   "\"helper_exits\":%lu,\"helper_start_failures\":%lu,"
			   "\"helper_last_error\":%d", helper_is_running(),
			   starts, exits, failed, helper.last_err);
	else
		out_printf(o, "  helper thread %s  starts %lu  exits %lu  "
			   "start failures %lu (last error %d)\n",
			   helper_is_running() ? "running" : "stopped", starts,
			   exits, failed, helper.last_err);
}

/* Threads do not survive fork; a sandbox does. */
void
helper_postfork_child(void)
{
	helper.state = HELPER_NONE;
	helper.tid = 0;
	helper.hold = 0;
	helper.stop = false;
	helper.pending = zero_has_work();
	status_fd.users = 0;
	zfd_close(&status_fd);
}
