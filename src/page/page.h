/*
 * page.h - the page descriptor: one small struct per 4 KiB page of every
 * zone, in an array beside the zone, committed lazily as the zone grows.
 * It gives free() an O(1) answer to "whose page is this, what order, is it
 * known zero", the way Linux's struct page / mem_map does.
 */
#ifndef ZP_PAGE_PAGE_H
#define ZP_PAGE_PAGE_H

#include "base/util.h"

enum page_kind {
	PAGE_UNUSED = 0,	/* committed but never handed out by a zone */
	PAGE_BUDDY,		/* head of a free block on a free_area list */
	PAGE_PCP,		/* head of a free block in a per-thread cache */
	PAGE_SLAB,		/* head of a slab; owner[] is struct slab */
	PAGE_MEDIUM,		/* head of a malloc block served by pages */
	PAGE_HEAP,		/* head of a chunk of the mid-size heap */
	PAGE_META,		/* allocator metadata (thread state, tables) */
	PAGE_TAIL,		/* non-head page of an allocated block */
};

enum page_flags {
	PG_ZERO = 1 << 0,	/* every byte of the block is known zero */
	PG_DIRTY_FREE = 1 << 1,	/* free and resident: a purge candidate */
	PG_EXACT = 1 << 2,	/* allocated by zone_alloc_exact: npages */
	PG_HOLE = 1 << 3,	/* off the lists, every step unmapped: a hole
				 * once the purge that did it is done */
};

/* Heads the slab and malloc layers hold; anything else given back to the
 * zone is a double or invalid free. */
static inline bool
page_kind_is_allocated(unsigned kind)
{
	return kind - (unsigned)PAGE_SLAB <= (unsigned)(PAGE_META - PAGE_SLAB);
}

#define PAGE_OWNER_BYTES 48

struct page {
	uint8_t kind;		/* enum page_kind */
	uint8_t order;		/* buddy order of the block this heads */
	uint8_t flags;		/* enum page_flags */
	uint8_t zone_id;	/* zone_of(zone_id) */
	uint32_t head_off;	/* PAGE_TAIL: pages back to the head */
	union {
		/* Free blocks: free_area[] or per-thread cache links, plus
		 * the time the block became free (for idle purging). */
		struct {
			struct page *next, *prev;
			uint64_t freed_ns;
			/* Estimated resident pages (purge policy only;
			 * PG_ZERO alone says what is known zero). */
			uint64_t nr_dirty;
		} lru;
		/* Allocated blocks: the owner's own words (slab state,
		 * a medium block's size). */
		uint64_t owner[PAGE_OWNER_BYTES / 8];
	};
	uint64_t npages;	/* PAGE_MEDIUM/PAGE_META exact: pages in use */
};

_Static_assert(sizeof(struct page) == 64, "one descriptor per cache line");

/*
 * The address ranges that zones cover, published for lookups without a
 * lock. A zone is a window of the address space that nothing else was
 * mapped in when it was chosen; the zone maps 2 MiB steps into it as it
 * grows and unmaps whole free steps when it gives them back, so it
 * reserves no address space it does not use (a program may lower
 * RLIMIT_AS later). "committed" bounds the descriptors that exist (it
 * grows only); a step's byte in `steps` has STEP_MAPPED while the step
 * is mapped by us: some other mapping may land in a step we gave back.
 */
#define ZP_MAX_ZONES 16

/*
 * A zone's side table has a byte per 2 MiB step: STEP_MAPPED, STEP_HOLE
 * (zone.c), and in the first step of each 4 MiB region the region's type
 * (buddy.c, STEP_TYPE_MASK). One byte array rather than a bitmap each,
 * so that what a zone of a few regions uses is one page, not three.
 * Written with atomic operations: the bits of one byte have different
 * writers.
 */
#define STEP_TYPE_MASK	3u
#define STEP_MAPPED	4u
#define STEP_HOLE	8u

struct zone_span {
	uintptr_t base;		/* first byte of the zone */
	uintptr_t committed;	/* bytes with descriptors (grows only) */
	struct page *descs;	/* descriptor of the page at base */
	uint8_t *steps;		/* the zone's side table (above) */
};

extern struct zone_span zone_spans[ZP_MAX_ZONES];
extern unsigned nr_zone_spans;

/*
 * Beside its facts word, every arena page has a line of bits for the same
 * owner layer, 0 until that layer writes them: the slab layer's record of
 * which 16-byte granules of the page start a live object and which a free
 * one (slab.h), in pairs of words per KiB, so that a free and the flush
 * after it find both in one line.
 */
struct page_bits {
	uint64_t w[8];
};

_Static_assert(sizeof(struct page_bits) == 64, "one line per page");

/*
 * The arena: every NORMAL zone side by side in one window, zone i at
 * base + (i << zone_shift), and before them their descriptors, laid out
 * the same way. So the descriptor of a pointer into any NORMAL zone is
 * found by arithmetic and one bounds check, with no table to search: the
 * free path's only dependent load is the descriptor itself. (LOW32 is a
 * zone of its own below 4 GiB, reached through zone_spans.)
 */
struct zp_arena {
	uintptr_t base;		/* zone 0's first byte; 0 before boot */
	struct page *descs;	/* descriptor of the page at base */
	uint64_t *facts;	/* facts word of the page at base */
	struct page_bits *bits;	/* bits of the page at base */
	/* bits - base / 64: the bits of the KiB at a are at bits_bias +
	 * a / 64 (16-byte aligned), one shift and one add. */
	uintptr_t bits_bias;
	unsigned zone_shift;	/* log2 of each zone's span */
	unsigned nr_zones;	/* zone ids 0 .. nr_zones - 1 */
	/* Zone 0's committed bytes (zone_spans[0].committed, kept beside
	 * base): a pointer into it, the common case, needs one compare. */
	uintptr_t committed0;
};

extern struct zp_arena zp_arena;

static inline bool
span_step_is_mapped(const struct zone_span *s, uintptr_t off)
{
	return __atomic_load_n(&s->steps[off / ZP_COMMIT_STEP],
			       __ATOMIC_ACQUIRE) & STEP_MAPPED;
}

/* Is p in the part of an arena zone that has descriptors and facts
 * words? Then *idx is its page's index into both. */
static inline bool
page_arena_index(const void *p, uintptr_t *idx)
{
	uintptr_t off = (uintptr_t)p - zp_arena.base;
	uintptr_t z, in;

	*idx = off >> ZP_PAGE_SHIFT;
	if (zp_likely(off < __atomic_load_n(&zp_arena.committed0,
					    __ATOMIC_ACQUIRE)))
		return true;
	z = off >> zp_arena.zone_shift;
	in = off & (((uintptr_t)1 << zp_arena.zone_shift) - 1);
	return z < zp_arena.nr_zones &&
	       in < __atomic_load_n(&zone_spans[z].committed,
				    __ATOMIC_ACQUIRE);
}

/*
 * The descriptor of p when p lies in the part of an arena zone that has
 * descriptors, else NULL. The step p lies in may have been given back
 * (its free block's descriptors stay): only a descriptor of an allocated
 * kind proves p is ours, which is all the fast paths act on; everything
 * else goes through page_lookup.
 */
static inline struct page *
page_lookup_fast(const void *p)
{
	uintptr_t i;

	if (zp_likely(page_arena_index(p, &i)))
		return &zp_arena.descs[i];
	return NULL;
}

/*
 * The free path's lookup. Beside the descriptors, every arena page has
 * one facts word, 0 until its owner layer writes one (the slab layer:
 * what free() needs, in 8 bytes where the descriptor takes a line of 64).
 * A heap of 100 MiB keeps all its facts in 200 KiB, within a core's L2,
 * where its descriptors (1.6 MiB) are not: a program that frees in an
 * order the cache has not seen finds them there.
 */
static inline uint64_t
page_facts_fast(const void *p)
{
	uintptr_t i;

	if (zp_likely(page_arena_index(p, &i)))
		return __atomic_load_n(&zp_arena.facts[i], __ATOMIC_RELAXED);
	return 0;
}

/* Index (into descriptors and facts alike) of the first page of the
 * 1 << order pages block, aligned to its size, that holds page i. */
static inline uintptr_t
page_block_first(uintptr_t i, unsigned order)
{
	return i & ~(((uintptr_t)1 << order) - 1);
}

/* The facts word of the page pg describes; NULL outside the arena (the
 * LOW32 zone has none: its frees take the descriptor's way). */
static inline uint64_t *
page_facts(const struct page *pg)
{
	uintptr_t i = (uintptr_t)(pg - zp_arena.descs);

	if (i < ((uintptr_t)zp_arena.nr_zones
		 << (zp_arena.zone_shift - ZP_PAGE_SHIFT)))
		return &zp_arena.facts[i];
	return NULL;
}

/* Descriptor of the page holding p, or NULL when no zone holds p (or p
 * lies in a step the zone gave back). Slow paths only. */
struct page *page_lookup(const void *p);

static inline struct page *
page_head(struct page *pg)
{
	return pg->kind == PAGE_TAIL ? pg - pg->head_off : pg;
}

static inline void *
page_address(const struct page *pg)
{
	const struct zone_span *s = &zone_spans[pg->zone_id];

	return (void *)(s->base +
			((uintptr_t)(pg - s->descs) << ZP_PAGE_SHIFT));
}

#endif /* ZP_PAGE_PAGE_H */
