/*
 * zone_priv.h - struct zone, the helpers zone.c, zone_purge.c and
 * zone_stats.c share, and the bulk operations pcp.c builds on.
 * Private to src/page/: the layers above see only zone.h and pcp.h.
 */
#ifndef ZP_PAGE_ZONE_PRIV_H
#define ZP_PAGE_ZONE_PRIV_H

#include "base/lock.h"
#include "page/buddy.h"
#include "page/zone.h"

/* Why a purge took a block (counted in dirty pages, for zoneinfo). */
enum zone_purge_why {
	PURGE_EXCESS,		/* dirty pages over the retained budget */
	PURGE_IDLE,		/* idle longer than the purge delay */
	PURGE_TRIM,		/* zone_purge(all): malloc_trim, pressure */
	PURGE_NR_WHY
};

struct zone {
	/* Written under lock on every slow-path allocation and free. */
	struct zp_lock lock;
	struct buddy buddy;
	uint64_t nr_alloc, nr_free_calls, nr_fallback_in, nr_failed;
	uint64_t nr_grow_steps, nr_purged_pages, nr_grow_failed;
	uint64_t nr_huge_steps;		/* steps faulted in for a huge page */
	uint64_t next_decay_ns;		/* next look for idle blocks */
	uint64_t purge_delay_ns;	/* idle this long: purged (boot) */
	/* The retained budget (zone_purge.c), pages. */
	uint64_t retain, retain_min, retain_max;
	/* Dirty pages a purge left above what it purges down to, all in
	 * young small blocks: the free path's check adds them to the
	 * budget until small_held_until, when they are young no more
	 * (zone_purge.c). */
	uint64_t small_held, small_held_until;
	uint64_t last_refault_ns, nr_refault_pages;
	uint64_t nr_unmapped_steps;	/* steps given back now (lock) */
	uint64_t nr_unmapped_total;	/* steps ever given back */
	/* Holes: given-back steps of whole blocks, off the free lists and
	 * without a resident descriptor (zone_purge.c); growth fills them
	 * first. Counted in nr_unmapped_steps too. */
	uint64_t nr_hole_steps;		/* lock */
	uint64_t last_hole_ns;		/* when the newest was made (lock) */
	uint64_t nr_purge_taken[PURGE_NR_WHY];	/* dirty pages, by why */

	/* Held by the one thread purging this zone, which drops lock for
	 * the system calls; taken before lock (trylock under it). */
	struct zp_lock purge_lock;

	/* Set at boot, read-only afterwards. */
	uintptr_t base;			/* aligned to ZP_MAX_BLOCK */
	size_t span;			/* bytes of address range */
	struct page *descs;		/* span / 64 bytes of descriptors */
	size_t descs_committed;		/* bytes of descs read-write (lock) */
	uint64_t *facts;		/* span / 512 bytes; NULL: LOW32 */
	size_t facts_committed;		/* bytes of facts read-write (lock) */
	struct page_bits *bits;		/* span / 64 bytes; NULL: LOW32 */
	size_t bits_committed;		/* bytes of bits read-write (lock) */
	uint8_t *steps;			/* a byte per step (page.h) */
	size_t steps_bytes;
	struct page *big;		/* big-block entries (buddy.h) */
	size_t big_committed;		/* bytes of big read-write (lock) */
	bool is_bound;			/* mbind each mapping to node */
	unsigned id;			/* zone_of(id); zone_spans[id] */
	unsigned node;
	enum zone_type type;
	uint64_t wmark_min, wmark_low, wmark_high;	/* pages (lock) */
	uint64_t lowmem_reserve[ZONE_NR_TYPES];		/* pages (lock) */
} zp_cacheline_aligned;

/*
 * Zone 0, the first NORMAL zone, which every process that allocates
 * writes, with the start of its other tables in the rest of its page:
 * the big-block entries of its first region (buddy.h: where a small
 * program's free blocks of 64 pages and more are listed) and the start of
 * its side table (page.h: a byte per 2 MiB step; 448 bytes, its first
 * 896 MiB), where tables of their own were a page or two more in every
 * process. ZONE_FIRST_STEPS covers the default span
 * (ZPMALLOC_ZONE_RESERVE_MB, 64 GiB); a wider zone 0, and the other
 * zones, map their side table (zone.c). Every zone maps its big-block
 * entries past the first region.
 */
#define ZONE_FIRST_STEPS	((size_t)(64ull << 30) / ZP_COMMIT_STEP)
#define ZONE_FIRST_BIG		(((size_t)1 << ZP_MAX_ORDER) >> BUDDY_BIG_ORDER)

struct zone_first {
	struct zone zone;
	struct page big[ZONE_FIRST_BIG];
	uint8_t steps[ZONE_FIRST_STEPS];
};

extern struct zone_first zone_first;
extern struct zone zone_rest[ZP_MAX_ZONES - 1];
extern unsigned nr_zones;

static inline struct zone *
zone_of(unsigned id)
{
	return id ? &zone_rest[id - 1] : &zone_first.zone;
}

/* A commit step is one block of this order; lazy zones map and unmap
 * whole steps. */
#define STEP_PAGES	(ZP_COMMIT_STEP >> ZP_PAGE_SHIFT)
#define STEP_ORDER	9
_Static_assert(STEP_PAGES == (size_t)1 << STEP_ORDER, "a step is a block");

static inline size_t
zone_committed_pages(const struct zone *z)
{
	return z->buddy.nr_pages;
}

/* Pages handed out (blocks in page caches and on a purge's chain count):
 * read without the lock by heuristics that a stale value only skews. */
static inline uint64_t
zone_pages_in_use(const struct zone *z)
{
	return __atomic_load_n(&z->buddy.nr_pages, __ATOMIC_RELAXED) -
	       __atomic_load_n(&z->buddy.nr_free, __ATOMIC_RELAXED) -
	       __atomic_load_n(&z->nr_hole_steps, __ATOMIC_RELAXED) *
		       STEP_PAGES;
}

/* A step's flags (STEP_MAPPED, STEP_HOLE). Release: page_lookup may read
 * STEP_MAPPED without the lock; it is set only while the step is mapped,
 * and cleared before it is unmapped. */
static inline bool
step_flag(const struct zone *z, size_t step, uint8_t flag)
{
	return __atomic_load_n(&z->steps[step], __ATOMIC_RELAXED) & flag;
}

static inline void
step_flag_set(struct zone *z, size_t step, uint8_t flag, bool on)
{
	if (on)
		__atomic_fetch_or(&z->steps[step], flag, __ATOMIC_RELEASE);
	else
		__atomic_fetch_and(&z->steps[step], (uint8_t)~flag,
				   __ATOMIC_RELEASE);
}

static inline bool
zone_step_is_mapped(const struct zone *z, size_t step)
{
	return step_flag(z, step, STEP_MAPPED);
}

static inline void
zone_step_set_mapped(struct zone *z, size_t step, bool mapped)
{
	step_flag_set(z, step, STEP_MAPPED, mapped);
}

/* Runs the purges due (zone_purge.c), under z->lock, which it may drop and
 * retake: dirty pages over budget go, the longest idle first. */
void zone_purge_run_locked(struct zone *z, uint64_t now, uint64_t budget);

/* A background pass is due before this time (zone_purge_timed): until
 * then the free path leaves excess to it (zone_purge.c). Atomic. */
extern uint64_t zone_timer_until_ns;

static inline bool
zone_timer_alive(uint64_t now)
{
	return now < __atomic_load_n(&zone_timer_until_ns, __ATOMIC_RELAXED);
}

/* Pages kept for reuse outside the zones (zone_note_outside_kept).
 * Atomic. */
extern uint64_t zone_outside_kept_pages;

/* Zones smaller than this give excess back at the free even while the
 * timer runs: refaulting a few MiB costs little, and a small program's
 * other memory (thread stacks, which the zones cannot see) grows beside
 * what would be kept. */
#define ZONE_KEEP_MIN_PAGES	4096

/* The dirty pages the free path lets a zone keep: the retained budget,
 * or its ceiling while a background pass will come for the rest. */
static inline uint64_t
zone_free_budget(const struct zone *z, uint64_t now)
{
	if (z->buddy.nr_pages >= ZONE_KEEP_MIN_PAGES && zone_timer_alive(now))
		return z->retain_max;
	return z->retain;
}

/* The free path's purge check: dirty pages over its budget (an eighth of
 * slack, so that frees purge in batches) and what small blocks hold over
 * it, or an idle scan due. */
static inline void
zone_purge_check_locked(struct zone *z, uint64_t now)
{
	uint64_t budget = zone_free_budget(z, now);
	uint64_t held = now < z->small_held_until ? z->small_held : 0;

	if (zp_unlikely(z->buddy.nr_free_dirty > budget + budget / 8 + held ||
			now >= z->next_decay_ns))
		zone_purge_run_locked(z, now, budget);
}

/* The zone grew (zone.c) while pages are kept, the zones' own (only while
 * the timer runs: without it the free path keeps none) or outside them:
 * those that would now raise the peak go (zone_purge.c), the zones' own
 * at once, the others by the peak hook (zone_limit.c). */
void zone_purge_after_grow_locked(struct zone *z);
void zone_peak_hook_due(void);

/* An allocation took known-zero block pg (under z->lock): if the zone
 * purged it less than a purge delay ago, the budget grows by its pages
 * (zone_purge.c). */
void zone_note_reuse_locked(struct zone *z, const struct page *pg);

/* zone_limit.c: see zone.h and the file's comment. */
void zone_limit_boot(size_t given);
uint64_t zone_limit_pages(void);
uint64_t zone_limit_headroom(void);
uint64_t zone_limit_retain_max(void);
/* No limit, or the headroom under it above the high watermark. */
bool zone_limit_is_roomy(void);
void zone_limit_sample_locked(void);
void zone_limit_react(void);
void zone_limit_prefork(void);
void zone_limit_postfork_parent(void);
void zone_limit_postfork_child(void);

/* The NORMAL zone of node (clamped to the nodes that exist). */
struct zone *zone_normal_of(unsigned node);

/*
 * Takes up to n free blocks of order from z in one lock acquisition
 * (growing z if needed) and links them through lru.next; the blocks are
 * marked PAGE_PCP with their tail pages set. Returns how many it took.
 */
unsigned zone_bulk_alloc(struct zone *z, unsigned order, unsigned n,
			 struct page **list);
/* The high and batch a cache of z's would have now (count unset), for
 * statistics; returns the number of live caches. */
unsigned pcp_sizes(const struct zone *z,
		   struct pcp_list sizes[PCP_MAX_ORDER + 1]);
/* Gives a lru.next-linked list of dirty blocks of order back to z in one
 * lock acquisition. */
void zone_bulk_free(struct zone *z, unsigned order, struct page *list);

/* Writes kind/order on the head and head_off on every other page. */
void zone_mark_block(struct page *head, unsigned order, enum page_kind kind);

#endif /* ZP_PAGE_ZONE_PRIV_H */
