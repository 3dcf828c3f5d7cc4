/*
 * buddy.c - binary buddy splitting and merging by index arithmetic.
 * Owns:  nothing global; operates on a struct buddy its zone embeds.
 * Locks: none taken; every caller holds the owning zone's lock.
 * Path:  zone_alloc_pages_slow -> buddy_alloc (split)
 *        zone_free_pages_slow -> buddy_free (merge)
 */
#include "base/log.h"
#include "page/buddy.h"

#define REGION_PAGES ((size_t)1 << ZP_MAX_ORDER)
#define REGION_STEPS (ZP_MAX_BLOCK / ZP_COMMIT_STEP)

_Static_assert(REGION_NR - 1 <= STEP_TYPE_MASK, "a type fits its bits");

zp_boot_text void
buddy_init(struct buddy *b, struct page *descs, uint8_t *steps,
	   struct page *big, size_t nr_big, struct page *big_near,
	   size_t nr_big_near)
{
	*b = (struct buddy){ .descs = descs, .steps = steps, .big = big,
			     .nr_big = nr_big, .big_near = big_near,
			     .nr_big_near = ZP_MIN(nr_big_near, nr_big) };
}

static enum region_type
region_type_of(const struct buddy *b, size_t idx)
{
	return (enum region_type)(__atomic_load_n(
		&b->steps[idx / REGION_PAGES * REGION_STEPS],
		__ATOMIC_RELAXED) & STEP_TYPE_MASK);
}

/* The zone changes the step flags of the same byte (under its lock, but
 * a lookup reads them without): no plain store. */
static void
region_type_set(struct buddy *b, size_t idx, enum region_type t)
{
	uint8_t *p = &b->steps[idx / REGION_PAGES * REGION_STEPS];
	uint8_t old = __atomic_load_n(p, __ATOMIC_RELAXED);

	while (!__atomic_compare_exchange_n(
		p, &old, (uint8_t)((old & ~STEP_TYPE_MASK) | t), true,
		__ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* A block that holds every committed page of its region. */
static bool
is_whole_region(const struct buddy *b, size_t idx, unsigned order)
{
	size_t start = zp_align_down(idx, REGION_PAGES);

	return idx == start &&
	       idx + ((size_t)1 << order) >=
		       ZP_MIN(start + REGION_PAGES, b->nr_pages);
}

static void
list_add_head(struct free_list *l, struct page *pg)
{
	pg->lru.prev = NULL;
	pg->lru.next = l->head;
	if (l->head)
		l->head->lru.prev = pg;
	else
		l->tail = pg;
	l->head = pg;
	l->nr++;
}

static void
list_del(struct free_list *l, struct page *pg)
{
	if (pg->lru.prev)
		pg->lru.prev->lru.next = pg->lru.next;
	else
		l->head = pg->lru.next;
	if (pg->lru.next)
		pg->lru.next->lru.prev = pg->lru.prev;
	else
		l->tail = pg->lru.prev;
	l->nr--;
}

/* The list a free block of a region of type t belongs on. Callers pass
 * t: it is the same for every block of a merge or a split, so it is
 * looked up once. */
static struct free_list *
list_of(struct buddy *b, const struct page *pg, enum region_type t)
{
	struct free_area *a = &b->free_area[pg->order][t];

	return pg->flags & PG_ZERO ? &a->zero : &a->dirty;
}

/* Both lists are LIFO: reuse takes the most recently freed (warmest)
 * block, and the tail of the dirty list is the coldest. */
static void
insert_block(struct buddy *b, size_t idx, unsigned order, bool zero,
	     uint64_t now, uint64_t dirty, enum region_type t)
{
	struct page *pg = buddy_head(b, idx, order);

	pg->kind = PAGE_BUDDY;
	pg->order = (uint8_t)order;
	pg->head_off = 0;
	pg->npages = order >= BUDDY_BIG_ORDER ? idx : 0;
	pg->lru.freed_ns = now;
	pg->lru.nr_dirty = zero ? 0 : ZP_MIN(dirty, (uint64_t)1 << order);
	pg->flags = zero ? PG_ZERO : PG_DIRTY_FREE;
	b->nr_free += (uint64_t)1 << order;
	b->nr_free_dirty += pg->lru.nr_dirty;
	if (zero)
		b->nr_free_zero += (uint64_t)1 << order;
	list_add_head(list_of(b, pg, t), pg);
}

static void
remove_block(struct buddy *b, struct page *pg, enum region_type t)
{
	uint64_t n = (uint64_t)1 << pg->order;

	zp_assert(pg->kind == PAGE_BUDDY);
	list_del(list_of(b, pg, t), pg);
	b->nr_free -= n;
	b->nr_free_dirty -= pg->lru.nr_dirty;
	if (pg->flags & PG_ZERO)
		b->nr_free_zero -= n;
	pg->kind = PAGE_UNUSED;
}

void
buddy_remove(struct buddy *b, struct page *pg)
{
	remove_block(b, pg, region_type_of(b, buddy_block_index(b, pg)));
}

/* The block to split for order among regions of type t, or NULL: the
 * smallest dirty one unless a known-zero one is more than
 * BUDDY_DIRTY_REACH orders smaller. Not inlined: its unrolled scans,
 * copied into each of the caller's four tries, made buddy_alloc_typed
 * 5.5 KiB of the code window every process maps (bench/hot_text). */
static zp_noinline struct page *
pick_block(const struct buddy *b, unsigned order, enum region_type t)
{
	unsigned kd = order;

	while (kd <= ZP_MAX_ORDER && !b->free_area[kd][t].dirty.head)
		kd++;
	for (unsigned kz = order; kz <= ZP_MAX_ORDER &&
	     (kd > ZP_MAX_ORDER || kz + BUDDY_DIRTY_REACH < kd); kz++)
		if (b->free_area[kz][t].zero.head)
			return b->free_area[kz][t].zero.head;
	return kd <= ZP_MAX_ORDER ? b->free_area[kd][t].dirty.head : NULL;
}

/* Another type's regions, nearest size first (fallback i = 0, 1). */
static enum region_type
fallback_type(enum region_type type, unsigned i)
{
	static const uint8_t order[REGION_NR][2] = {
		[REGION_SMALL] = { REGION_MEDIUM, REGION_LARGE },
		[REGION_MEDIUM] = { REGION_SMALL, REGION_LARGE },
		[REGION_LARGE] = { REGION_MEDIUM, REGION_SMALL },
	};

	return (enum region_type)order[type][i];
}

struct page *
buddy_alloc(struct buddy *b, unsigned order, bool fallback)
{
	return buddy_alloc_typed(b, order, buddy_region_type(order), fallback);
}

struct page *
buddy_alloc_typed(struct buddy *b, unsigned order, enum region_type type,
		  bool fallback)
{
	struct page *pg = pick_block(b, order, type);

	enum region_type t = type;

	if (!pg)
		pg = pick_block(b, order, t = REGION_FREE);
	for (unsigned i = 0; !pg && fallback && i < 2; i++)
		pg = pick_block(b, order, t = fallback_type(type, i));
	if (!pg)
		return NULL;

	size_t idx = buddy_block_index(b, pg);
	unsigned k = pg->order;
	bool zero = pg->flags & PG_ZERO;
	uint64_t when = pg->lru.freed_ns, dirty = pg->lru.nr_dirty;

	remove_block(b, pg, t);
	/* A whole free region becomes the requester's. */
	if (t == REGION_FREE) {
		zp_assert(is_whole_region(b, idx, k));
		region_type_set(b, idx, type);
		t = type;
	}
	/* Keep the low half, give the high halves back. */
	while (k > order) {
		k--;
		insert_block(b, idx + ((size_t)1 << k), k, zero, when,
			     dirty / 2, t);
		dirty -= dirty / 2;
	}
	/* The caller gets the head's descriptor, as remove_block leaves a
	 * listed one (a big block's was not its list entry). */
	pg = &b->descs[idx];
	pg->kind = PAGE_UNUSED;
	pg->head_off = 0;
	pg->npages = 0;
	pg->lru.next = pg->lru.prev = NULL;
	pg->lru.freed_ns = when;
	pg->lru.nr_dirty = dirty;
	pg->order = (uint8_t)order;
	pg->flags = zero ? PG_ZERO : 0;
	return pg;
}

/*
 * A block of the big order or more, freed, keeps its list entry apart
 * from its head's descriptor; that descriptor, when the caller held it,
 * still names what the caller held. It becomes a shadow: PAGE_BUDDY with
 * the order, so that a second free of the block aborts as a double free,
 * as it does for a block listed by its descriptor. Nothing else reads it
 * (a merge and buddy_find_free look at big-block entries from that
 * order on), and a later split or merge may leave it stale.
 */
static void
shadow_head(struct page *pg, unsigned order)
{
	pg->kind = PAGE_BUDDY;
	pg->order = (uint8_t)order;
}

void
buddy_free(struct buddy *b, struct page *pg, unsigned order, bool zero,
	   uint64_t now)
{
	/* The caller's descriptor, not the entry a purge took off a list. */
	uintptr_t off = (uintptr_t)pg - (uintptr_t)b->descs;
	bool own = off < b->nr_pages * sizeof(struct page);
	size_t idx = own ? off / sizeof(struct page) : (size_t)pg->npages;
	size_t orig = idx;
	enum region_type t = region_type_of(b, idx);
	bool dirty_seen = !zero;
	/* A dirty block's time is when it became free; a zero block's, when
	 * it was purged (0: fresh, never used). A merge keeps the latest of
	 * the kind it ends up as. */
	uint64_t dirty_when = zero ? 0 : now, zero_when = zero ? now : 0;
	uint64_t dirty = zero ? 0 : (uint64_t)1 << order;

	zp_assert((idx & (((size_t)1 << order) - 1)) == 0);
	zp_assert(idx + ((size_t)1 << order) <= b->nr_pages);
	while (order < ZP_MAX_ORDER) {
		size_t bidx = idx ^ ((size_t)1 << order);
		struct page *bud;

		if (bidx + ((size_t)1 << order) > b->nr_pages)
			break;
		bud = buddy_head(b, bidx, order);
		if (bud->kind != PAGE_BUDDY || bud->order != order)
			break;
		bool bud_zero = bud->flags & PG_ZERO;
		uint64_t *when = bud_zero ? &zero_when : &dirty_when;

		if (bud->lru.freed_ns > *when)
			*when = bud->lru.freed_ns;
		dirty_seen |= !bud_zero;
		dirty += bud->lru.nr_dirty;
		remove_block(b, bud, t);
		size_t lo = ZP_MIN(idx, bidx), hi = ZP_MAX(idx, bidx);

		if (order < BUDDY_BIG_ORDER) {
			b->descs[hi].kind = PAGE_TAIL;
			b->descs[hi].head_off = (uint32_t)(hi - lo);
		} else if (own && hi == orig) {
			shadow_head(&b->descs[hi], order);
		}
		idx = lo;
		order++;
	}
	if (own && idx == orig && order >= BUDDY_BIG_ORDER)
		shadow_head(&b->descs[idx], order);
	/* A FREE region holds one whole block and nothing else, so that
	 * typing it when that block is split cannot strand other blocks on
	 * the FREE lists. A part of a region coming back while the rest is
	 * elsewhere (taken by a resize, off the lists for purging) types
	 * the region by that part. */
	if (is_whole_region(b, idx, order))
		t = REGION_FREE;
	else if (t == REGION_FREE)
		t = buddy_region_type(order);
	region_type_set(b, idx, t);
	insert_block(b, idx, order, !dirty_seen,
		     dirty_seen ? dirty_when : zero_when, dirty, t);
}

/* A block of the big order goes by its entry unless its descriptor is
 * the caller's head: buddy_free then leaves the descriptor alone. */
void
buddy_free_range(struct buddy *b, size_t lo, size_t hi, bool zero,
		 uint64_t now, bool head)
{
	while (lo < hi) {
		unsigned k = lo ? (unsigned)__builtin_ctzl(lo) : ZP_MAX_ORDER;

		k = ZP_MIN(k, ZP_MAX_ORDER);
		k = ZP_MIN(k, zp_log2_floor(hi - lo));
		struct page *pg = head ? &b->descs[lo] : buddy_head(b, lo, k);

		if (pg != &b->descs[lo])
			pg->npages = lo;	/* the page it stands for */
		buddy_free(b, pg, k, zero, now);
		head = false;
		lo += (size_t)1 << k;
	}
}

struct page *
buddy_find_free(const struct buddy *b, size_t idx)
{
	if (idx >= b->nr_pages)
		return NULL;
	for (unsigned k = 0; k <= ZP_MAX_ORDER; k++) {
		struct page *pg =
			buddy_head(b, idx & ~(((size_t)1 << k) - 1), k);

		if (pg->kind == PAGE_BUDDY && pg->order == k)
			return pg;
	}
	return NULL;
}

struct page *
buddy_oldest_dirty(const struct buddy *b, unsigned min_order)
{
	struct page *best = NULL;

	for (unsigned k = min_order; k <= ZP_MAX_ORDER; k++) {
		for (unsigned t = 0; t < REGION_NR; t++) {
			struct page *pg = b->free_area[k][t].dirty.tail;

			if (pg && (!best ||
				   pg->lru.freed_ns < best->lru.freed_ns))
				best = pg;
		}
	}
	return best;
}

struct list_sums {
	uint64_t blocks, pages, zero, dirty;
};

/* One list: links, order, alignment, and that every block has the
 * list's kind of contents. */
static bool
check_list(const struct buddy *b, const char *name, unsigned k,
	   enum region_type t, const struct free_list *l, bool zero,
	   struct list_sums *sum)
{
	const struct page *prev = NULL;
	uint64_t n = 0;

	for (const struct page *pg = l->head; pg; pg = pg->lru.next) {
		size_t idx = buddy_block_index(b, pg);
		bool z = pg->flags & PG_ZERO;

		if (pg->kind != PAGE_BUDDY || pg->order != k ||
		    pg->lru.prev != prev ||
		    buddy_is_big(b, pg) != (k >= BUDDY_BIG_ORDER)) {
			log_msg("%s: order %u list: bad block %zu (kind %u "
				"order %u%s)", name, k, idx, pg->kind,
				pg->order,
				buddy_is_big(b, pg) ? ", big entry" : "");
			return false;
		}
		if ((idx & (((size_t)1 << k) - 1)) != 0 ||
		    idx + ((size_t)1 << k) > b->nr_pages) {
			log_msg("%s: block %zu order %u misaligned or beyond "
				"%zu pages", name, idx, k, b->nr_pages);
			return false;
		}
		if (region_type_of(b, idx) != t ||
		    (t == REGION_FREE) != is_whole_region(b, idx, k)) {
			log_msg("%s: block %zu order %u on type %u lists, "
				"region type %u", name, idx, k, t,
				region_type_of(b, idx));
			return false;
		}
		if (z != zero || z == !!(pg->flags & PG_DIRTY_FREE) ||
		    (z && pg->lru.nr_dirty) ||
		    pg->lru.nr_dirty > ((uint64_t)1 << k)) {
			log_msg("%s: block %zu on the %s list has flags %u",
				name, idx, zero ? "zero" : "dirty",
				pg->flags);
			return false;
		}
		sum->pages += (uint64_t)1 << k;
		sum->zero += z ? (uint64_t)1 << k : 0;
		sum->dirty += pg->lru.nr_dirty;
		prev = pg;
		n++;
	}
	if (prev != l->tail || n != l->nr) {
		log_msg("%s: order %u %s list holds %lu blocks, counted %lu",
			name, k, zero ? "zero" : "dirty", (unsigned long)n,
			(unsigned long)l->nr);
		return false;
	}
	sum->blocks += n;
	return true;
}

static bool
check_lists(const struct buddy *b, const char *name, uint64_t *nr_blocks)
{
	struct list_sums sum = { 0 };

	for (unsigned k = 0; k <= ZP_MAX_ORDER; k++) {
		for (unsigned t = 0; t < REGION_NR; t++) {
			const struct free_area *a = &b->free_area[k][t];

			if (!check_list(b, name, k, t, &a->dirty, false,
					&sum) ||
			    !check_list(b, name, k, t, &a->zero, true, &sum))
				return false;
		}
	}
	if (sum.dirty != b->nr_free_dirty) {
		log_msg("%s: nr_free_dirty %lu but blocks sum to %lu", name,
			(unsigned long)b->nr_free_dirty,
			(unsigned long)sum.dirty);
		return false;
	}
	if (sum.pages != b->nr_free || sum.zero != b->nr_free_zero) {
		log_msg("%s: nr_free %lu (zero %lu) but lists hold %lu (%lu)",
			name, (unsigned long)b->nr_free,
			(unsigned long)b->nr_free_zero,
			(unsigned long)sum.pages, (unsigned long)sum.zero);
		return false;
	}
	*nr_blocks = sum.blocks;
	return true;
}

/* The free block headed at page i, if any: its big-block entry (on a
 * page of the big order's alignment) or its descriptor; a descriptor's
 * shadow (buddy_free) heads nothing. */
static const struct page *
free_head_at(const struct buddy *b, size_t i)
{
	const struct page *pg;

	if ((i & (((size_t)1 << BUDDY_BIG_ORDER) - 1)) == 0) {
		pg = buddy_big(b, i >> BUDDY_BIG_ORDER);
		if (pg->kind == PAGE_BUDDY)
			return pg;
	}
	pg = &b->descs[i];
	return pg->kind == PAGE_BUDDY && pg->order < BUDDY_BIG_ORDER ? pg
								    : NULL;
}

/* Every free head (a PAGE_BUDDY descriptor below the big order, a
 * PAGE_BUDDY big-block entry) must be a listed one, free blocks must not
 * overlap, and no two free buddies may be left unmerged. */
static bool
check_descs(const struct buddy *b, const char *name, uint64_t nr_blocks)
{
	uint64_t heads = 0;
	size_t covered = 0;

	for (size_t i = 0; i < b->nr_pages; i++) {
		const struct page *pg = free_head_at(b, i);

		if (pg == NULL)
			continue;
		size_t n = (size_t)1 << pg->order;

		if (i < covered) {
			log_msg("%s: free block %zu inside another", name, i);
			return false;
		}
		covered = i + n;
		heads++;
		if (pg->order == ZP_MAX_ORDER)
			continue;
		size_t bidx = i ^ n;
		const struct page *bud = buddy_head(b, bidx, pg->order);

		if (bidx + n <= b->nr_pages && bud->kind == PAGE_BUDDY &&
		    bud->order == pg->order) {
			log_msg("%s: free buddies %zu and %zu not merged",
				name, i, bidx);
			return false;
		}
	}
	if (heads != nr_blocks) {
		log_msg("%s: %lu free heads but %lu listed blocks", name,
			(unsigned long)heads, (unsigned long)nr_blocks);
		return false;
	}
	return true;
}

bool
buddy_check(const struct buddy *b, const char *name)
{
	uint64_t nr_blocks;

	return check_lists(b, name, &nr_blocks) &&
	       check_descs(b, name, nr_blocks);
}
