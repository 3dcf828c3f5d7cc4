/*
 * zone_limit.c - the memory the process may really use, the watermarks
 * derived from it, and what crossing them does.
 * Owns:  zlimit: the limit and its source (the cgroup's memory.high or
 *        memory.max, ZPMALLOC_MEMORY_LIMIT, or physical memory), the
 *        usage sampled as zones grow, the watermarks, the pressure state
 *        and its counters; the reclaim hook the malloc layer registers.
 * Locks: zlimit.lock guards the sample and the state; a leaf (taken under
 *        zone->lock when a zone grows). Reactions run with no lock held.
 * Path:  zone_boot -> zone_limit_boot -> os_memory_limit;
 *        grow_locked -> zone_limit_sample_locked -> os_memory_usage;
 *        large_alloc, large_resize -> zone_limit_note_map -> the same,
 *        then the react;
 *        zone_alloc_pages_slow -> zone_limit_react -> zone_purge(true);
 *        slow paths above, lock-free -> zone_limit_run_hook -> the hook
 *        (zero-page reclaim, parked regions)
 *
 * Like Linux's, but the free memory they watch is the headroom under the
 * limit (limit - usage), sampled each time a zone grows by a step:
 *  - below low, every free page is given back and a reclaim pass runs at
 *    once (kswapd's job), then not again until the headroom has been above
 *    high (so a program living near its limit is not purged at every
 *    step);
 *  - below min, an allocation that needs new memory reclaims first
 *    (direct reclaim), at most once per step of growth;
 *  - the retained budget's ceiling and the zones' min (against other
 *    nodes' fallback) scale with the limit, and a zone's available pages
 *    count only the headroom, not its whole span.
 */
#include "base/lock.h"
#include "base/log.h"
#include "os/os.h"
#include "page/zone_priv.h"
#include "zpmalloc.h"

/* Watermarks as fractions of the limit: min 1/32, low 1/16, high 1/8
 * (16, 32 and 64 MiB under a 512 MiB container). Linux keeps its own much
 * tighter, but it can reclaim page cache and swap; we can only give back
 * what is free or zero, and must do it before the kernel throttles us
 * (memory.high) or kills us (memory.max). */
#define WMARK_MIN_DIV	32
#define WMARK_LOW_DIV	16
#define WMARK_HIGH_DIV	8
#define MIN_INTERVAL_NS	((uint64_t)50 * 1000 * 1000)

enum { PRESSURE_NONE, PRESSURE_LOW, PRESSURE_MIN };
enum { DUE_LIMIT = 1, DUE_PEAK = 2 };

static struct {
	struct zp_lock lock;
	struct os_memory_limit limit;
	uint64_t limit_pages;		/* 0: no limit known */
	uint64_t wmark_min, wmark_low, wmark_high;	/* pages */
	uint64_t usage_pages;		/* last sample (lock) */
	size_t unsampled;		/* atomic: mapped beside the zones
					 * since the last sample */
	int state;			/* PRESSURE_* (lock) */
	uint64_t last_min_ns;		/* last direct reclaim (lock) */
	bool react_low, react_min;	/* a reaction is due (lock) */
	unsigned hook_due;		/* atomic: DUE_* of the hooks due */
	uint64_t nr_low, nr_min;	/* reactions run */
	void (*hook)(void);		/* more to give back (malloc layer) */
	void (*peak_hook)(void);	/* pages kept outside the zones */
} zlimit = { .lock = ZP_LOCK_INIT };

zp_boot_text void
zone_limit_boot(size_t given)
{
	os_memory_limit(&zlimit.limit);
	if (given && (!zlimit.limit.bytes || given < zlimit.limit.bytes))
		zlimit.limit = (struct os_memory_limit){
			.bytes = given, .source = OS_LIMIT_GIVEN };
	zlimit.limit_pages = zlimit.limit.bytes >> ZP_PAGE_SHIFT;
	zlimit.wmark_min = zlimit.limit_pages / WMARK_MIN_DIV;
	zlimit.wmark_low = zlimit.limit_pages / WMARK_LOW_DIV;
	zlimit.wmark_high = zlimit.limit_pages / WMARK_HIGH_DIV;
	zlimit.usage_pages = 0;
	zlimit.unsampled = 0;
	zlimit.state = PRESSURE_NONE;
	zlimit.react_low = zlimit.react_min = false;
	zlimit.nr_low = zlimit.nr_min = 0;
	zlimit.last_min_ns = 0;
}

uint64_t
zone_limit_pages(void)
{
	return zlimit.limit_pages;
}

void
zone_limit_set_hook(void (*hook)(void))
{
	__atomic_store_n(&zlimit.hook, hook, __ATOMIC_RELEASE);
}

void
zone_set_peak_hook(void (*hook)(void))
{
	__atomic_store_n(&zlimit.peak_hook, hook, __ATOMIC_RELEASE);
}

void
zone_peak_hook_due(void)
{
	__atomic_or_fetch(&zlimit.hook_due, DUE_PEAK, __ATOMIC_RELEASE);
}

/* Pages still to be had under the limit (UINT64_MAX without one). */
uint64_t
zone_limit_headroom(void)
{
	uint64_t used = __atomic_load_n(&zlimit.usage_pages, __ATOMIC_RELAXED);

	if (!zlimit.limit_pages)
		return UINT64_MAX;
	return used < zlimit.limit_pages ? zlimit.limit_pages - used : 0;
}

bool
zone_limit_is_roomy(void)
{
	return zone_limit_headroom() > zlimit.wmark_high;
}

/*
 * A zone grew (its lock held): the usage is sampled again and the state
 * moves. Entering low (or min) asks for a reaction; low is left only
 * above high.
 */
void
zone_limit_sample_locked(void)
{
	size_t usage;
	uint64_t head;

	if (!zlimit.limit_pages)
		return;
	usage = os_memory_usage(&zlimit.limit);
	zp_lock(&zlimit.lock);
	__atomic_store_n(&zlimit.usage_pages, usage >> ZP_PAGE_SHIFT,
			 __ATOMIC_RELAXED);
	head = zone_limit_headroom();
	if (head < zlimit.wmark_min) {
		uint64_t now = os_now_ns();

		/* A program that lives below min grows step after step:
		 * reclaim at most every MIN_INTERVAL_NS, not at each. */
		if (now - zlimit.last_min_ns >= MIN_INTERVAL_NS) {
			zlimit.react_min = true;
			zlimit.last_min_ns = now;
		}
		if (zlimit.state == PRESSURE_NONE)
			zlimit.react_low = true;
		zlimit.state = PRESSURE_MIN;
	} else if (head < zlimit.wmark_low) {
		if (zlimit.state == PRESSURE_NONE)
			zlimit.react_low = true;
		zlimit.state = ZP_MAX(zlimit.state, PRESSURE_LOW);
	} else if (head > zlimit.wmark_high) {
		zlimit.state = PRESSURE_NONE;
	} else if (zlimit.state == PRESSURE_MIN) {
		zlimit.state = PRESSURE_LOW;
	}
	zp_unlock(&zlimit.lock);
}

/*
 * Memory mapped beside the zones (large blocks) counts against the limit
 * too: a program whose growth is all large blocks never grows a zone.
 * It is sampled once per step's worth mapped, as the zones are, and
 * reacts at once; the caller holds no lock.
 */
void
zone_limit_note_map(size_t bytes)
{
	if (!zlimit.limit_pages ||
	    __atomic_add_fetch(&zlimit.unsampled, bytes, __ATOMIC_RELAXED) <
		    ZP_COMMIT_STEP)
		return;
	__atomic_store_n(&zlimit.unsampled, 0, __ATOMIC_RELAXED);
	zone_limit_sample_locked();
	zone_limit_react();
}

/* What an allocation does about a due reaction: the zones' part (every
 * free page goes) at once, under whatever locks the caller holds above
 * the zones; the hook's part at the caller's next point with no lock
 * held (zone_limit_run_hook), since it may start a thread. */
void
zone_limit_react(void)
{
	bool low, min;

	if (zp_likely(!__atomic_load_n(&zlimit.react_low, __ATOMIC_RELAXED) &&
		      !__atomic_load_n(&zlimit.react_min, __ATOMIC_RELAXED)))
		return;
	zp_lock(&zlimit.lock);
	low = zlimit.react_low;
	min = zlimit.react_min;
	zlimit.react_low = zlimit.react_min = false;
	zlimit.nr_low += low;
	zlimit.nr_min += min;
	zp_unlock(&zlimit.lock);
	if (!low && !min)
		return;
	zone_purge(/* all */ true);
	__atomic_or_fetch(&zlimit.hook_due, DUE_LIMIT, __ATOMIC_RELEASE);
}

void
zone_limit_run_hook(void)
{
	void (*hook)(void), (*peak_hook)(void);
	unsigned due;

	if (zp_likely(!__atomic_load_n(&zlimit.hook_due, __ATOMIC_RELAXED)))
		return;
	due = __atomic_exchange_n(&zlimit.hook_due, 0, __ATOMIC_ACQUIRE);
	hook = __atomic_load_n(&zlimit.hook, __ATOMIC_ACQUIRE);
	peak_hook = __atomic_load_n(&zlimit.peak_hook, __ATOMIC_ACQUIRE);
	if ((due & DUE_LIMIT) && hook)
		hook();
	if ((due & DUE_PEAK) && peak_hook)
		peak_hook();
}

/* The retained budget's ceiling: 1/64 of the limit, from 1 MiB to
 * 512 MiB (32 MiB when nothing is known). */
uint64_t
zone_limit_retain_max(void)
{
	uint64_t cap = zlimit.limit_pages / 64;

	if (!zlimit.limit_pages)
		return 8192;
	return ZP_MIN(ZP_MAX(cap, (uint64_t)256), (uint64_t)131072);
}

size_t
zone_limit_bytes(void)
{
	return __atomic_load_n(&zlimit.limit.bytes, __ATOMIC_RELAXED);
}

void
zone_limit_info(struct zone_limit_info *out)
{
	zp_lock(&zlimit.lock);
	*out = (struct zone_limit_info){
		.limit_bytes = zlimit.limit.bytes,
		.usage_bytes = zlimit.usage_pages << ZP_PAGE_SHIFT,
		.wmark_min = zlimit.wmark_min,
		.wmark_low = zlimit.wmark_low,
		.wmark_high = zlimit.wmark_high,
		.nr_low = zlimit.nr_low,
		.nr_min = zlimit.nr_min,
		.state = zlimit.state,
	};
	zp_unlock(&zlimit.lock);
	switch (zlimit.limit.source) {
	case OS_LIMIT_CGROUP:
		fmt_buf(out->source, sizeof(out->source), "cgroup %s/%s",
			zlimit.limit.dir, zlimit.limit.file);
		break;
	case OS_LIMIT_GIVEN:
		fmt_buf(out->source, sizeof(out->source),
			"ZPMALLOC_MEMORY_LIMIT");
		break;
	default:
		fmt_buf(out->source, sizeof(out->source), "%s",
			zlimit.limit.bytes ? "physical memory" : "unknown");
	}
}

void
zone_limit_prefork(void)
{
	zp_lock_prefork(&zlimit.lock);
}

void
zone_limit_postfork_parent(void)
{
	zp_lock_postfork_parent(&zlimit.lock);
}

void
zone_limit_postfork_child(void)
{
	zp_lock_postfork_child(&zlimit.lock);
}
