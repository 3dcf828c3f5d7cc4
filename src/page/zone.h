/*
 * zone.h - the zoned page allocator: what the slab and malloc layers call.
 *
 * Zones are large PROT_NONE reservations committed in 2 MiB steps as they
 * grow, each with buddy free_area[0..ZP_MAX_ORDER] lists, watermarks and a
 * lowmem_reserve, one set per NUMA node (or per fake node). A request walks
 * its zonelist: the local node's NORMAL zone, other nodes' NORMAL zones,
 * then LOW32 while LOW32 stays above its lowmem_reserve. GFP_LOW32 requests
 * are served by LOW32 alone, so their pages lie below 4 GiB.
 */
#ifndef ZP_PAGE_ZONE_H
#define ZP_PAGE_ZONE_H

#include "page/page.h"
#include "page/pcp.h"

enum zone_type { ZONE_LOW32 = 0, ZONE_NORMAL, ZONE_NR_TYPES };

enum gfp_flags {
	GFP_LOW32 = 1 << 0,	/* every page below 4 GiB */
	GFP_NODE_EXACT = 1 << 1, /* no fallback to other nodes */
	/* Placed among small blocks whatever its order: a thread's state,
	 * so that a small program splits one region, not two (each split
	 * chain dirties a few pages of descriptors). */
	GFP_SMALL = 1 << 2,
	/* Only zones with facts words and bits (the arena's, page.h): a
	 * slab's, whose frees find both by arithmetic. */
	GFP_ARENA = 1 << 3,
	/* The node to prefer is (gfp >> GFP_NODE_SHIFT) - 1; 0 = local. */
	GFP_NODE_SHIFT = 8,
};
#define GFP_NODE(n) ((unsigned)((n) + 1) << GFP_NODE_SHIFT)

struct zone_config {
	unsigned nr_nodes;		/* real nodes (os_numa_node_count) */
	unsigned fake_numa;		/* 0, or split node 0 into N */
	size_t normal_reserve;		/* bytes of VA per NORMAL zone */
	size_t low32_reserve;		/* bytes of VA for LOW32 (0: none) */
	uint64_t purge_delay_ns;	/* give back blocks idle this long */
	unsigned pcp_high, pcp_batch;	/* per-thread cache sizing */
	unsigned pcp_fraction;		/* caches hold 1/fraction of the pages
					 * in use (0: pcp_high each) */
	size_t memory_limit;		/* bytes, 0: the cgroup's or RAM */
	size_t huge_from;		/* bytes a zone has in use before
					 * steps for small blocks take huge
					 * pages; 0: never */
};

/*
 * Creates the zones. Returns 0, or ENOMEM when no window for them could
 * be found. Called once per process (and by each test); a second call
 * unmaps the previous zones first (no allocation may be live). Zero
 * fields take defaults: normal_reserve 64 GiB, nr_nodes from
 * os_numa_node_count(). With fake_numa = N the NORMAL span is split into
 * N zones of normal_reserve / N, nodes 0..N-1, and nothing is bound.
 * Spans are rounded down to powers of two.
 * Zones reserve nothing: each is a window of the address space where
 * nothing was mapped when it was chosen; a zone maps 2 MiB steps into it
 * as it grows and unmaps whole free steps when it purges them, so the
 * address space and commit charge it does not use stay the program's (a
 * program may lower RLIMIT_AS at any time, or run under strict
 * overcommit). The NORMAL zones share one window, the arena (page.h).
 * The LOW32 zone (low32_reserve > 0) is placed below 4 GiB by the first
 * GFP_LOW32 request, so a program that never asks for one keeps the
 * whole MAP_32BIT window.
 */
int zone_boot(const struct zone_config *cfg);

/*
 * The node a thread should call home, for pcp_init and for GFP requests
 * without GFP_NODE: the CPU's node (getcpu) on real NUMA; with fake NUMA
 * the thread id modulo the fake node count, which spreads threads evenly
 * and keeps one thread on one fake node for its whole life.
 */
unsigned zone_local_node(void);

struct page *zone_alloc_pages_slow(struct pcp_set *pcp, unsigned order,
				   unsigned gfp, enum page_kind kind,
				   bool *zero);
void zone_free_pages_slow(struct pcp_set *pcp, struct page *head);

/*
 * Allocates a block of 1 << order pages, marks its head `kind` (and its
 * other pages PAGE_TAIL), and reports in *zero whether every byte is known
 * to read as zero (zero may be NULL). Small orders come from pcp when it
 * is non-NULL. Returns NULL with nothing changed when no zone in the
 * zonelist can serve it. kind is PAGE_SLAB, PAGE_MEDIUM, PAGE_HEAP or
 * PAGE_META.
 * head->npages is not set (only exact blocks use it).
 */
static inline struct page *
zone_alloc_pages(struct pcp_set *pcp, unsigned order, unsigned gfp,
		 enum page_kind kind, bool *zero)
{
	struct page *pg;

	/* A page cache holds pages of its node's NORMAL zone: an arena's. */
	if (zp_likely(pcp != NULL && (gfp & ~(unsigned)GFP_ARENA) == 0 &&
		      order <= PCP_MAX_ORDER &&
		      (pg = pcp_take(pcp, order)) != NULL)) {
		if (zero)
			*zero = pg->flags & PG_ZERO;
		pg->flags = 0;
		pg->kind = (uint8_t)kind;
		return pg;
	}
	return zone_alloc_pages_slow(pcp, order, gfp, kind, zero);
}

/*
 * Frees a block returned by zone_alloc_pages (pass its head). Blocks of
 * the thread's own zone go to pcp; others straight to their zone. A head
 * that is not an allocated block (double free, tail, exact block) aborts
 * through log_fatal.
 */
static inline void
zone_free_pages(struct pcp_set *pcp, struct page *head)
{
	if (zp_likely(pcp != NULL && head->zone_id == pcp->zone_id &&
		      head->order <= PCP_MAX_ORDER &&
		      page_kind_is_allocated(head->kind) &&
		      !(head->flags & PG_EXACT) && pcp_put(pcp, head)))
		return;
	zone_free_pages_slow(pcp, head);
}

/*
 * Exactly npages pages (alloc_pages_exact): the power-of-two block is
 * allocated and its unused tail freed at once, so a 20 KiB request holds
 * five pages, not eight. head->npages records the size for the free.
 */
struct page *zone_alloc_exact(struct pcp_set *pcp, size_t npages,
			      unsigned gfp, enum page_kind kind, bool *zero);
void zone_free_exact(struct pcp_set *pcp, struct page *head);
/* Try to grow or shrink an exact block in place (realloc); true on
 * success. Growing needs the following pages to be free in the zone (not
 * in a per-thread cache); *zero (may be NULL) then says whether the added
 * pages read as zero, and is false after a shrink. */
bool zone_resize_exact_try(struct page *head, size_t new_npages, bool *zero);

/* Give back (MADV_DONTNEED, or unmap whole free steps of a
 * zone) every free block that is resident; with all = false only what is
 * above the high watermark or idle too long. Returns the bytes given
 * back. */
size_t zone_purge(bool all);
/*
 * A background thread's pass, every interval_ns while it runs: gives back
 * what has been idle a purge delay, and from then until two intervals
 * have gone by the free path keeps excess over the retained budget (up
 * to its ceiling) for the next pass, instead of giving it back at once: a
 * program that frees a structure and builds it again within the delay
 * takes no page fault for it. Returns whether dirty pages over the budget
 * wait for a later pass. interval_ns 0: there will be none (the thread is
 * leaving): the free path gives excess back at once again, and what it
 * kept goes now where the locks are free (it only tries them then), else
 * at the zone's next purge.
 */
bool zone_purge_timed(uint64_t interval_ns);
/* Before memory outside the zones is mapped (a large block), with the
 * pages the process will have in use outside them, that one's included:
 * what the free path kept for the background pass goes now if it would
 * take the process past the most it has had in use. */
void zone_purge_before_map(uint64_t outside_pages);
/* The pages in use outside the zones changed (a large block went). */
void zone_note_outside(uint64_t outside_pages);
/* Pages kept for reuse outside the zones now (parked large blocks). */
void zone_note_outside_kept(uint64_t pages);
/* Boot: no timer, no peak yet. */
void zone_purge_reset(void);
/*
 * Hold off the free path's purges while a caller frees many blocks that
 * zone_purge(true) gives back right after (malloc_trim spilling slabs):
 * purged one by one, before their buddies come back to merge, they would
 * cost an madvise per slab instead of one per merged block.
 */
void zone_purge_pause(void);
void zone_purge_resume(void);

/* Free blocks below this order freed within the window wait beyond the
 * retained budget, up to its ceiling, for their buddies (zone_purge.c). */
#define ZONE_PURGE_SMALL_ORDER	4
#define ZONE_MERGE_WINDOW_NS	((uint64_t)100 * 1000 * 1000)

/* The retained budget of zone idx (zone_purge.c), in pages: it starts at
 * min and may grow with refaults up to max. 0, or -1 for a bad index. */
int zone_set_retain(unsigned idx, uint64_t min, uint64_t max);
/* The pages of zone idx that requests whose preferred zone type is `type`
 * must leave alone. 0, or -1 for a bad index. Boot sets the defaults. */
int zone_set_lowmem_reserve(unsigned idx, enum zone_type type,
			    uint64_t pages);

/*
 * The memory the process may really use (zone_limit.c): the tightest of
 * the cgroup's memory.high/memory.max (v2) or memory.limit_in_bytes (v1),
 * cfg->memory_limit, and physical memory; the watermarks on the headroom
 * under it, and what crossing them did.
 */
struct zone_limit_info {
	size_t limit_bytes, usage_bytes;	/* usage: last sample */
	uint64_t wmark_min, wmark_low, wmark_high;	/* pages */
	uint64_t nr_low, nr_min;		/* reactions run */
	int state;				/* 0 none, 1 low, 2 min */
	char source[200];
};
void zone_limit_info(struct zone_limit_info *out);
/* The limit alone, 0 if none is known (without zone_limit_info's text). */
size_t zone_limit_bytes(void);
/* The limit and the reactions, as a text line or one JSON object. */
struct outbuf;
void zone_print_limit(struct outbuf *o, bool json);
/* What else to give back when the headroom falls below low or min (the
 * zero-page engine's reclaim, parked regions). The zones purge at once;
 * the hook runs when a slow path above, holding no lock, calls
 * zone_limit_run_hook (one load when nothing is due). */
void zone_limit_set_hook(void (*hook)(void));
void zone_limit_run_hook(void);
/* What gives back pages kept outside the zones (parked large blocks) if
 * they would take the resident set past its peak: due when a zone grows
 * while some are kept, run as the hook above is. */
void zone_set_peak_hook(void (*hook)(void));
/* bytes were mapped outside the zones (no lock held): sampled and reacted
 * to once per zone step's worth. */
void zone_limit_note_map(size_t bytes);

/* Fork: take every zone lock in prefork, release or reset after. */
void zone_prefork(void);
void zone_postfork_parent(void);
void zone_postfork_child(void);

/* Statistics, /proc/buddyinfo and /proc/zoneinfo style. zone_print_json
 * prints one JSON array (one object per zone), to be the value of a key.
 * Counters are zone-level: a per-thread cache hit does not count. */
struct outbuf;
void zone_print_buddyinfo(struct outbuf *o);
void zone_print_zoneinfo(struct outbuf *o);
void zone_print_json(struct outbuf *o);
unsigned zone_count(void);
struct zp_zone_info;
int zone_info(unsigned idx, struct zp_zone_info *out);

/* Full consistency walk for tests and debug builds: every free_area list
 * well formed, nr_free equal to the pages on the lists, no free block
 * overlapping another, every block aligned to its order. Returns true when
 * consistent; logs the first problem otherwise. */
bool zone_check_all(void);

#endif /* ZP_PAGE_ZONE_H */
