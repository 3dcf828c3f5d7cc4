/*
 * init.c - boot, per-thread state, thread exit and fork.
 * Owns:  the boot state machine, the pthread key whose destructor retires
 *        a thread's state, the fork handlers, the exit-time statistics.
 * Locks: none of its own. Boot is a compare-and-swap on boot_state; other
 *        threads wait for it, the booting thread may re-enter
 *        (pthread_setspecific allocates) once the core layers are up; the
 *        fork handlers' registration is another compare-and-swap.
 *        Fork order: stdio's list lock, large.lock, zero engine, slab
 *        locks, zone locks - glibc's own order, stdio first.
 * Path:  alloc_malloc_slow -> init_tstate -> init_boot -> options_boot,
 *        zone_boot, slab_boot; then tstate_create -> zone_alloc_exact(META)
 */
#include <pthread.h>
#include <string.h>

#include "base/log.h"
#include "base/options.h"
#include "heap/heap.h"
#include "malloc/alloc.h"
#include "malloc/init.h"
#include "malloc/large.h"
#include "malloc/map.h"
#include "malloc/stats.h"
#include "os/os.h"
#include "os/os_proc.h"
#include "page/zone.h"
#if ZP_HAVE_ZERO
#include "zero/zero.h"
#endif

enum boot_state {
	BOOT_NONE = 0,	/* nothing done yet (or a failed attempt) */
	BOOT_RUNNING,	/* one thread is booting the core layers */
	BOOT_CORE,	/* core up; the booting thread finishes (key, maps) */
	BOOT_DONE,
};

static int boot_state;		/* enum boot_state, atomic */
static int boot_owner;		/* tid of the booting thread */
static bool key_ready;		/* tstate_key exists */
static pthread_key_t tstate_key;
static char mode_line[128];
static unsigned nr_nodes;

/* --- fork ----------------------------------------------------------------- */

/*
 * glibc's fork runs the atfork prepare handlers, then takes stdio's list
 * lock, then its malloc locks: getline holds a stream's lock while it
 * reallocs, and fflush(NULL) holds the list lock while it takes each
 * stream's, so malloc locks must come after the list lock. Our handlers
 * run before glibc takes it, so they take it first themselves (it is
 * recursive: glibc's own take nests inside ours). The child's copy is
 * reset, as glibc resets it in a multi-threaded parent.
 *
 * The three entry points are looked up at the first fork, not at boot
 * (os_libc_fn caches them): the lookup reads libc's and our own symbol
 * tables, 50 KiB of pages a process that never forks would keep resident
 * for nothing.
 */
enum { STDIO_LOCK, STDIO_UNLOCK, STDIO_RESET, STDIO_NR };

static const char *const stdio_names[STDIO_NR] = {
	"_IO_list_lock", "_IO_list_unlock", "_IO_list_resetlock",
};
static void *stdio_list[STDIO_NR];

/* One of the three, or NULL unless glibc has all of them. */
static void (*stdio_list_fn(int which))(void)
{
	void *fn[STDIO_NR];

	for (int i = 0; i < STDIO_NR; i++)
		if (!(fn[i] = os_libc_fn(&stdio_list[i], stdio_names[i])))
			return NULL;
	return (void (*)(void))fn[which];
}

static void
prefork_all(void)
{
	large_prefork();
#if ZP_HAVE_ZERO
	zero_prefork();
#endif
	slab_prefork();
	heap_prefork();
	zone_prefork();
}

/* Two walks over the locks: whether this thread interrupted itself inside
 * the allocator decides how the second takes them (base/lock.h). */
static void
fork_prepare(void)
{
	uint8_t outer = zp_fork_mode;	/* a handler may fork mid-prepare */
	void (*lock)(void) = stdio_list_fn(STDIO_LOCK);

	if (lock)
		lock();
	zp_fork_interrupted = false;
	zp_fork_mode = ZP_FORK_PROBE;
	prefork_all();
	zp_fork_mode = zp_fork_interrupted ? ZP_FORK_TRY : ZP_FORK_WAIT;
	prefork_all();
	zp_fork_mode = outer;
}

static void
fork_parent(void)
{
	void (*unlock)(void) = stdio_list_fn(STDIO_UNLOCK);

	zone_postfork_parent();
	heap_postfork_parent();
	slab_postfork_parent();
#if ZP_HAVE_ZERO
	zero_postfork_parent();
#endif
	large_postfork_parent();
	if (unlock)
		unlock();
}

/* The child has one thread, this one; the others' states stay allocated
 * (their objects may still be referenced) but nobody will free them. */
static void
fork_child(void)
{
	void (*reset)(void) = stdio_list_fn(STDIO_RESET);

	zone_postfork_child();
	heap_postfork_child();
	slab_postfork_child();
	if (alloc_cache())
		tcache_postfork_child(alloc_tls);
#if ZP_HAVE_ZERO
	zero_postfork_child();
#endif
	large_postfork_child();
	if (reset)
		reset();
}

/* crtbeginS.o's, as pthread_atfork passes it: the handlers of a library
 * that is unloaded go with it (ours is never unloaded). */
extern void *__dso_handle __attribute__((weak, visibility("hidden")));

/* 0, the tid of the thread registering our handlers, or -1 once done. */
static int fork_handlers_state;

/*
 * Registers the handlers above, once, when map.c says a fork could first
 * run them. Another thread waits for the first one's registration; a
 * signal handler that forks on the registering thread goes on without
 * (its child gets the allocator as it finds it, as after a fork that
 * interrupted an allocation).
 */
void
init_fork_handlers(void)
{
	int tid, st, expect = 0;

	if (zp_likely(__atomic_load_n(&fork_handlers_state,
				      __ATOMIC_ACQUIRE) == -1))
		return;
	tid = os_gettid();
	if (__atomic_compare_exchange_n(&fork_handlers_state, &expect, tid,
					false, __ATOMIC_ACQUIRE,
					__ATOMIC_ACQUIRE)) {
		(void)map_libc_register_atfork(fork_prepare, fork_parent,
					       fork_child, __dso_handle);
		__atomic_store_n(&fork_handlers_state, -1, __ATOMIC_RELEASE);
		return;
	}
	while ((st = __atomic_load_n(&fork_handlers_state,
				     __ATOMIC_ACQUIRE)) != -1 && st != tid)
		zp_cpu_relax();
}

bool
init_fork_handlers_registered(void)
{
	return __atomic_load_n(&fork_handlers_state, __ATOMIC_ACQUIRE) == -1;
}

/* --- thread state ------------------------------------------------------ */

static size_t
tstate_pages(void)
{
	return (sizeof(struct tstate) + ZP_PAGE_SIZE - 1) >> ZP_PAGE_SHIFT;
}

/*
 * Thread exit. The thread may still allocate after this (other keys'
 * destructors run later): alloc_tls is tcache_none again, so a free takes
 * the slab layer's remote path and a malloc creates a fresh state, which
 * pthread_setspecific registers for another destructor round.
 */
static void
tstate_destroy(void *arg)
{
	struct tstate *ts = arg;
	struct page *self = ts->self;

	alloc_free_deferred();
	if (alloc_tls == &ts->tc)
		alloc_tls = &tcache_none;
	tcache_fini(&ts->tc);
	pcp_fini(&ts->pcp);
	zone_free_exact(NULL, self);
}

static struct tstate *
tstate_create(void)
{
	struct tcache *theirs = &tcache_none;
	struct page *head;
	struct tstate *ts;
	bool zero;

	head = zone_alloc_exact(NULL, tstate_pages(), GFP_SMALL, PAGE_META,
				&zero);
	if (!head)
		return NULL;
	ts = page_address(head);
	/* Everything must read zero (the tcache writes nothing until a
	 * class is used); the pointer slots never need clearing: only
	 * [base, cur) of a bin is ever read. So fresh pages stay
	 * untouched until the thread uses them. */
	if (!zero)
		memset(ts, 0, offsetof(struct tstate, tc.slots));
	ts->self = head;
	pcp_init(&ts->pcp, zone_local_node());
	tcache_init(&ts->tc, &ts->pcp);
	/* Published before pthread_setspecific, which may calloc its
	 * second-level key block: that calloc then finds this state. A
	 * signal handler that interrupted this may have made the thread's
	 * state meanwhile (and registered it): that one stays. */
	if (!__atomic_compare_exchange_n(&alloc_tls, &theirs, &ts->tc, false,
					 __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
		tcache_fini(&ts->tc);
		pcp_fini(&ts->pcp);
		zone_free_exact(NULL, head);
		return tstate_of(theirs);
	}
	if (key_ready)
		pthread_setspecific(tstate_key, ts);
	return ts;
}

struct tstate *
init_tstate(void)
{
	struct tcache *tc = alloc_cache();

	if (tc)
		return tstate_of(tc);
	if (!init_boot())
		return NULL;
	/* Boot itself may have allocated on this thread. */
	tc = alloc_cache();
	return tc ? tstate_of(tc) : tstate_create();
}

/* --- boot -------------------------------------------------------------- */

static void
build_mode_line(unsigned nr_nodes)
{
	const char *large;

#if ZP_HAVE_ZERO
	large = zp_opt.uffd == OPT_UFFD_OFF ? "zero-page engine, uffd off"
					    : "zero-page engine, uffd auto";
#else
	large = "plain mappings, zero-page engine not linked";
#endif
	fmt_buf(mode_line, sizeof(mode_line),
		"large blocks: %s; %u node%s%s; stats %s%s", large, nr_nodes,
		nr_nodes == 1 ? "" : "s",
		zp_opt.fake_numa ? " (fake)" : "",
		ZP_IS_STATS ? "counted" : "off",
		ZP_IS_DEBUG ? "; debug asserts" : "");
}

static zp_boot_text int
boot_core(void)
{
	struct zone_config cfg = {
		.nr_nodes = os_numa_node_count(),
		.fake_numa = (unsigned)zp_opt.fake_numa,
		.normal_reserve = (size_t)zp_opt.zone_reserve_mb << 20,
		.low32_reserve = (size_t)zp_opt.low32_reserve_mb << 20,
		.purge_delay_ns = (uint64_t)zp_opt.purge_delay_ms * 1000000,
		.pcp_high = (unsigned)zp_opt.pcp_high,
		.pcp_batch = (unsigned)zp_opt.pcp_batch,
		.pcp_fraction = (unsigned)zp_opt.pcp_fraction,
		.memory_limit = (size_t)zp_opt.memory_limit,
		.huge_from = (size_t)zp_opt.huge_heap_mb << 20,
	};
	size_t limit;
	int err;

	os_clock_boot();
	os_purge_ranges_boot();
	err = zone_boot(&cfg);
	if (err)
		return err;
	slab_boot(os_random64());
	heap_boot(os_random64());
#if ZP_HAVE_ZERO
	struct zero_config zc;

	zero_config_default(&zc);
	zc.uffd_mode = zp_opt.uffd == OPT_UFFD_OFF ? ZERO_UFFD_OFF
						   : ZERO_UFFD_AUTO;
	zc.reclaim = zp_opt.reclaim != 0;
	zc.reclaim_interval_ns = (uint64_t)zp_opt.reclaim_interval_ms *
				 1000000;
	zc.reclaim_budget_bytes = (size_t)zp_opt.reclaim_budget_mb << 20;
	zc.mmap_threshold = (size_t)zp_opt.mmap_threshold;
	/* Parked blocks are resident memory kept for reuse: a sixteenth
	 * of the memory limit at most for the floor, and up to half the
	 * live large blocks within an eighth of it (zero.c). */
	limit = zone_limit_bytes();
	zc.park_bytes = (size_t)zp_opt.park_mb << 20;
	if (limit) {
		zc.park_bytes = ZP_MIN(zc.park_bytes, limit / 16);
		zc.park_max = limit / 8;
	}
	zc.park_delay_ns = (uint64_t)zp_opt.park_ms * 1000000;
	zero_boot(&zc);
	large_set_huge_fill((unsigned)zp_opt.huge_fill);
	zone_limit_set_hook(alloc_reclaim_hook);
	zone_set_peak_hook(large_park_within_peak);
	zero_set_idle_hook(alloc_idle_hook);
#else
	(void)limit;
#endif
	nr_nodes = zp_opt.fake_numa ? (unsigned)zp_opt.fake_numa
				    : cfg.nr_nodes;
	return 0;
}

/* The parts that may allocate: run with the core already usable. */
static zp_boot_text void
boot_finish(void)
{
	if (pthread_key_create(&tstate_key, tstate_destroy) == 0)
		key_ready = true;
	/* A thread state created during boot (none usually) still needs
	 * its destructor. */
	if (key_ready && alloc_cache())
		pthread_setspecific(tstate_key, tstate_of(alloc_tls));
	map_boot();
	if (zp_opt.verbose)
		log_msg("active (version %s, %s)", ZP_VERSION, init_mode());
}

static zp_boot_text zp_cold bool
boot_slow(void)
{
	int tid = os_gettid();
	int expect;

	for (;;) {
		int st = __atomic_load_n(&boot_state, __ATOMIC_ACQUIRE);

		if (st == BOOT_DONE)
			return true;
		if (st != BOOT_NONE &&
		    __atomic_load_n(&boot_owner, __ATOMIC_RELAXED) == tid)
			return st == BOOT_CORE; /* re-entered */
		expect = BOOT_NONE;
		if (st == BOOT_NONE &&
		    __atomic_compare_exchange_n(&boot_state, &expect,
						BOOT_RUNNING, false,
						__ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			break;
		zp_cpu_relax();
	}
	__atomic_store_n(&boot_owner, tid, __ATOMIC_RELAXED);
	options_boot();
	if (boot_core()) {
		__atomic_store_n(&boot_owner, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&boot_state, BOOT_NONE, __ATOMIC_RELEASE);
		return false;
	}
	__atomic_store_n(&boot_state, BOOT_CORE, __ATOMIC_RELEASE);
	boot_finish();
	__atomic_store_n(&boot_state, BOOT_DONE, __ATOMIC_RELEASE);
	return true;
}

/* The text of the functions marked zp_boot_text (src/hot_text.ld; weak:
 * a unit test's executable links no script). */
extern const char zp_boot_text_start[]
	__attribute__((weak, visibility("hidden")));
extern const char zp_boot_text_end[]
	__attribute__((weak, visibility("hidden")));

/*
 * Boot's own text, once boot is done, leaves the process: 8 KiB (option
 * parsing, cgroup files, zone and window setup) that every process that
 * allocates otherwise kept resident in the code it runs. Out of line
 * from the boot text, which must not be running when its pages go: a
 * call from boot's own inner allocations (state BOOT_CORE) leaves it for
 * the outer one.
 */
static zp_cold void
boot_text_drop(void)
{
	static bool dropped;
	uintptr_t lo = (uintptr_t)zp_boot_text_start;
	uintptr_t hi = (uintptr_t)zp_boot_text_end;

	if (!lo || hi <= lo ||
	    __atomic_load_n(&boot_state, __ATOMIC_ACQUIRE) != BOOT_DONE ||
	    __atomic_exchange_n(&dropped, true, __ATOMIC_ACQ_REL))
		return;
	lo &= ~(uintptr_t)(ZP_PAGE_SIZE - 1);
	hi = zp_align_up(hi, ZP_PAGE_SIZE);
	(void)os_drop_text((const void *)lo, hi - lo);
}

bool
init_boot(void)
{
	if (zp_likely(__atomic_load_n(&boot_state, __ATOMIC_ACQUIRE) ==
		      BOOT_DONE))
		return true;
	if (!boot_slow())
		return false;
	boot_text_drop();
	return true;
}

bool
init_is_booted(void)
{
	return __atomic_load_n(&boot_state, __ATOMIC_ACQUIRE) >= BOOT_CORE;
}

/* Built when first asked for (the verbose line, the statistics), so that
 * boot runs no formatter; two threads asking at once write the same
 * bytes. */
const char *
init_mode(void)
{
	if (!mode_line[0])
		build_mode_line(nr_nodes);
	return mode_line;
}

/*
 * Load and exit. Boot waits for the first call that needs it, so a
 * program that never allocates (true, a shell's forked builtin) pays for
 * none of our state, nor for the text and tables boot touches; asked to
 * report (ZPMALLOC_VERBOSE, ZPMALLOC_STATS), we boot at load, so that even
 * such a program hears from us. What runs here for a program that never
 * allocates stays in the startup and exit text at the front of the
 * library, one fault-around window with the loader's own entry points.
 */
__attribute__((constructor)) static void
init_load(void)
{
	if (options_want_report())
		init_boot();
}

/* ZPMALLOC_STATS at exit. A destructor rather than atexit(), which may
 * allocate; it runs after the program's own exit handlers. */
__attribute__((destructor)) static void
init_exit(void)
{
	if (__atomic_load_n(&boot_state, __ATOMIC_ACQUIRE) >= BOOT_CORE &&
	    zp_opt.stats != OPT_STATS_OFF)
		stats_at_exit();
}
