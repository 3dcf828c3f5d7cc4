/*
 * buddy.h - the pure binary buddy algorithm over one zone's descriptors.
 * No locks, no addresses, no system calls: a zone hands it a descriptor
 * array whose index 0 is aligned to ZP_MAX_BLOCK, and the buddy of block
 * i at order k is simply i ^ (1 << k). The caller holds the zone lock.
 *
 * Regions: every aligned ZP_MAX_BLOCK (a max-order block) has a type, set
 * by the first request that splits it, after Linux's pageblock migrate
 * types but by size: small blocks (slabs, cached pages) are taken from
 * SMALL regions, medium ones from MEDIUM regions, large ones from LARGE
 * regions, and a region goes back to FREE when all of it is free again.
 * Without this, small long-lived blocks end up spread over every region,
 * no region is ever whole again, and each request for a large block has
 * to grow the zone.
 *
 * Invariants (checked by buddy_check):
 *  - a descriptor has kind PAGE_BUDDY exactly when it heads a block on a
 *    free list; pages absorbed by a merge become PAGE_TAIL;
 *  - every free block is naturally aligned and lies below nr_pages;
 *  - no two free buddies of the same order coexist (merging is eager);
 *  - a block is on the lists of its order and its region's type; a
 *    region whose committed pages are all one free block is FREE;
 *  - each list pair keeps dirty blocks (resident, PG_DIRTY_FREE) apart
 *    from known-zero ones (PG_ZERO), newest at the head, so reuse takes
 *    resident memory first and purging finds the oldest dirty blocks at
 *    the tails without walking past zero ones.
 *  - a free block of BUDDY_BIG_ORDER or more is listed by its big-block
 *    entry (below), never by its head's descriptor, which is PAGE_BUDDY
 *    only as a shadow (order >= BUDDY_BIG_ORDER, see buddy_free) that no
 *    list or merge reads.
 * Zero-ness is exact and conservative (a merge ANDs it, a split inherits
 * it). How much of a dirty block is resident is only estimated, in
 * lru.nr_dirty: a merge adds the halves, a split divides it, so a small
 * dirty block merged into a large clean one does not make the purge policy
 * think the whole large block is resident.
 */
#ifndef ZP_PAGE_BUDDY_H
#define ZP_PAGE_BUDDY_H

#include "page/page.h"

enum region_type {
	REGION_FREE = 0,
	REGION_SMALL,		/* blocks of up to 32 KiB */
	REGION_MEDIUM,		/* up to 512 KiB */
	REGION_LARGE,		/* larger */
	REGION_NR
};

struct free_list {
	struct page *head, *tail;	/* doubly linked through lru */
	uint64_t nr;			/* blocks on the list */
};

struct free_area {
	struct free_list dirty;		/* resident; newest at the head */
	struct free_list zero;		/* known zero */
};

/*
 * Big-block entries. A block of 64 pages or more has descriptor pages of its
 * own (64 descriptors a page), so a free one listed by its head's
 * descriptor kept a page resident for its links alone: the halves a split
 * of a fresh step leaves (pages 64, 128 and 256 of it) cost three
 * descriptor pages before any of those pages was used, and after a trim a
 * region's free blocks held theirs where every other descriptor page was
 * given back. Such a block is listed by an entry of its own instead, one
 * descriptor-sized entry per 64 pages, indexed by its head's page >>
 * BUDDY_BIG_ORDER: a page of entries serves 16 MiB of zone. Zone 0 keeps
 * its first entries (big_near) in the page of its struct zone.
 */
#define BUDDY_BIG_ORDER	6
_Static_assert((sizeof(struct page) << BUDDY_BIG_ORDER) == ZP_PAGE_SIZE,
	       "a block of the big order has its descriptor page to itself");

struct buddy {
	struct free_area free_area[ZP_MAX_ORDER + 1][REGION_NR];
	struct page *descs;		/* descriptor of page 0 */
	/* Big-block entry g: big_near[g] below nr_big_near, else big[g]
	 * (whose first nr_big_near entries are never used). */
	struct page *big, *big_near;
	size_t nr_big, nr_big_near;
	uint8_t *steps;			/* region types, in the zone's
					 * side table (page.h) */
	size_t nr_pages;		/* pages with valid descriptors */
	uint64_t nr_free;		/* pages on the lists */
	uint64_t nr_free_zero;		/* of those, in PG_ZERO blocks */
	uint64_t nr_free_dirty;		/* of those, estimated resident */
};

/*
 * How many orders further up buddy_alloc will go to split a dirty block
 * rather than take a known-zero block of a smaller order: reusing
 * resident memory saves a page fault per page (and RSS), splitting large
 * blocks costs fragmentation, so the reach is short.
 */
#define BUDDY_DIRTY_REACH 2

/* steps: the zone's side table (page.h), zeroed, a byte per step the
 * descriptors can cover; the type of each region is in the low bits of
 * its first step's byte. big: nr_big zeroed big-block entries (see
 * above), the first nr_big_near of them in big_near instead (or none). */
void buddy_init(struct buddy *b, struct page *descs, uint8_t *steps,
		struct page *big, size_t nr_big, struct page *big_near,
		size_t nr_big_near);

/* The region type for blocks of order. */
static inline enum region_type
buddy_region_type(unsigned order)
{
	return order <= 3 ? REGION_SMALL
	     : order <= 7 ? REGION_MEDIUM : REGION_LARGE;
}

/*
 * A free block of exactly 1 << order pages (split from a larger one if
 * need be), taken off the lists; its flags keep PG_ZERO. Looks in regions
 * of the order's type, then in FREE regions, which then take that type;
 * with fallback, last in regions of the other types, nearest size first.
 * Dirty blocks are preferred (see BUDDY_DIRTY_REACH). NULL if none.
 */
struct page *buddy_alloc(struct buddy *b, unsigned order, bool fallback);
/* The same, for a block placed with blocks of another order's type. */
struct page *buddy_alloc_typed(struct buddy *b, unsigned order,
			       enum region_type type, bool fallback);

/* Puts a block back, merging with free buddies. pg: its head's
 * descriptor, which the caller holds (written, and marked free here), or
 * the big-block entry a purge took it off the lists by. zero: every byte reads
 * as zero. now: for a dirty block, when it became free (idle purging);
 * for a zero block, when it was purged, or 0 for memory never used
 * (refault detection). Free blocks keep it in lru.freed_ns, split halves
 * too. */
void buddy_free(struct buddy *b, struct page *pg, unsigned order, bool zero,
		uint64_t now);

/* Frees pages [lo, hi) as the largest naturally aligned blocks. head: the
 * descriptor of page lo is the caller's, the head of a block it held (as
 * buddy_free's pg); else no descriptor of the range heads anything (fresh
 * pages, tails), and a block of the big order or more leaves its
 * descriptor pages untouched. */
void buddy_free_range(struct buddy *b, size_t lo, size_t hi, bool zero,
		      uint64_t now, bool head);

/* The free block that contains page idx (its descriptor, or its
 * big-block entry), or NULL when idx is not free. */
struct page *buddy_find_free(const struct buddy *b, size_t idx);

/* Takes one particular free block off its list (no split); its kind
 * becomes PAGE_UNUSED, so no neighbour merges with it until it is freed
 * again. */
void buddy_remove(struct buddy *b, struct page *pg);

/* The dirty block of min_order or more that became free longest ago,
 * judged by the tail of each dirty list (NULL when there is none). */
struct page *buddy_oldest_dirty(const struct buddy *b, unsigned min_order);

/* Full walk; logs the first inconsistency under name and returns false. */
bool buddy_check(const struct buddy *b, const char *name);

/* Big-block entry g. */
static zp_always_inline struct page *
buddy_big(const struct buddy *b, size_t g)
{
	return g < b->nr_big_near ? &b->big_near[g] : &b->big[g];
}

static zp_always_inline bool
buddy_is_big(const struct buddy *b, const struct page *pg)
{
	return (uintptr_t)pg - (uintptr_t)b->big <
		       b->nr_big * sizeof(struct page) ||
	       (uintptr_t)pg - (uintptr_t)b->big_near <
		       b->nr_big_near * sizeof(struct page);
}

/* The page a descriptor describes. */
static inline size_t
buddy_index(const struct buddy *b, const struct page *pg)
{
	return (size_t)(pg - b->descs);
}

/* The page a free block's list entry stands for: its head's descriptor,
 * or its big-block entry, which holds the page in npages (what the lists,
 * buddy_find_free and a purge's chain hold: their order is the block's). */
static zp_always_inline size_t
buddy_block_index(const struct buddy *b, const struct page *pg)
{
	return pg->order >= BUDDY_BIG_ORDER ? (size_t)pg->npages
					    : buddy_index(b, pg);
}

/* What lists a free block of order at page idx: its big-block entry or
 * its head's descriptor. */
static zp_always_inline struct page *
buddy_head(const struct buddy *b, size_t idx, unsigned order)
{
	return order >= BUDDY_BIG_ORDER
		       ? buddy_big(b, idx >> BUDDY_BIG_ORDER)
		       : &b->descs[idx];
}

static inline uint64_t
buddy_nr_blocks(const struct buddy *b, unsigned order)
{
	uint64_t n = 0;

	for (unsigned t = 0; t < REGION_NR; t++)
		n += b->free_area[order][t].dirty.nr +
		     b->free_area[order][t].zero.nr;
	return n;
}

/* Free pages in regions of one type. */
static inline uint64_t
buddy_nr_free_typed(const struct buddy *b, enum region_type type)
{
	uint64_t n = 0;

	for (unsigned k = 0; k <= ZP_MAX_ORDER; k++)
		n += (b->free_area[k][type].dirty.nr +
		      b->free_area[k][type].zero.nr) << k;
	return n;
}

#endif /* ZP_PAGE_BUDDY_H */
