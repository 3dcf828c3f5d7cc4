/*
 * zone_purge.c - giving free pages back: the retained budget, the idle
 * decay, and giving whole steps back to the system.
 * Owns:  the purge policy; struct zone's purge fields, and the timer's
 *        deadline and the peak-in-use mark shared by the zones (atomics).
 * Locks: zone->purge_lock, held by the one thread purging a zone, ranks
 *        before zone->lock (under zone->lock it is only tried). A purge
 *        takes its blocks off the lists under zone->lock, drops zone->lock
 *        for the system calls, and frees them back as known-zero.
 * Path:  zone free slow paths -> zone_purge_check_locked (inline) ->
 *        zone_purge_run_locked -> take_*_locked
 *        -> purge_chain_locked -> os_purge | os_unmap (whole steps)
 *        malloc_trim -> zone_purge(true); background thread ->
 *        zone_purge_timed; growth, large blocks -> purge_kept_locked
 *
 * A zone keeps at most `retain` dirty free pages; the free that takes it
 * past the budget purges the longest idle blocks, in a batch, as glibc's
 * trim threshold gives the top of its heap back at the free (small blocks
 * freed a moment ago wait a little: see take_excess_locked). The budget
 * starts small (retain_min) and follows what the program shows: taking
 * back, within a purge delay, pages the zone purged (a refault: a program
 * that frees and reallocates the same memory in waves) raises it by what
 * was refaulted, up to retain_max; a purge delay without one halves it.
 * So a program that frees its memory and goes idle has it given back at
 * the free, and one that recycles it keeps it, as jemalloc would, without
 * a page fault per page per wave.
 * Dirty blocks idle longer than the purge delay go too: at a free slow
 * path at most every purge_delay / DECAY_TICKS, and from a background
 * thread when one runs (zone_purge_timed). While that thread runs, the
 * free path keeps the excess for it, as long as keeping it never takes
 * the process past the most memory it has had in use (see below).
 * Purging a block of whole steps unmaps them, so the address space goes
 * back to the program; so do known-zero steps still mapped (fresh from
 * growth, or purged in pieces that merged since).
 */
#include "os/os.h"
#include "page/zone_priv.h"

/* Idle blocks are looked for this many times per purge delay. */
#define DECAY_TICKS	4

static uint64_t
dirty_pages(const struct zone *z)
{
	return z->buddy.nr_free_dirty;
}

static void *
block_address(const struct zone *z, const struct page *pg)
{
	size_t idx = buddy_block_index(&z->buddy, pg);

	return (void *)(z->base + (idx << ZP_PAGE_SHIFT));
}

/* Whether any step of a free block of a step or more is
 * still mapped (so unmapping it would give address space back). */
static bool
block_has_mapped_step(const struct zone *z, const struct page *pg)
{
	size_t first = buddy_block_index(&z->buddy, pg) / STEP_PAGES;
	size_t n = ((size_t)1 << pg->order) / STEP_PAGES;

	for (size_t st = first; st < first + n; st++)
		if (zone_step_is_mapped(z, st))
			return true;
	return false;
}

/*
 * Purging is collect, then act: under zone->lock the chosen blocks come
 * off the lists onto a private chain (no one can allocate or merge them
 * then), the lock is dropped for the madvise/munmap calls, and the blocks
 * are freed back as known-zero. purge_lock keeps it to one purger per
 * zone.
 */
static void
purge_take_locked(struct zone *z, struct page *pg, enum zone_purge_why why,
		  struct page **chain)
{
	if (!(pg->flags & PG_ZERO))
		z->nr_purge_taken[why] += (uint64_t)1 << pg->order;
	buddy_remove(&z->buddy, pg);
	pg->lru.next = *chain;
	*chain = pg;
}

/* Whole steps go back to the system: unmapped, they cost neither
 * memory nor address space. */
static bool
is_unmap_candidate(const struct page *pg)
{
	return pg->order >= STEP_ORDER;
}

/*
 * The ranges of one purge, given to the kernel together (os_purge_ranges:
 * one system call and one TLB flush for them all where it can): the
 * blocks, and the metadata pages they leave unused. frag's purges were
 * 74,000 madvise calls, one a block and more for its descriptors, at
 * ~16 us each on this machine, most of it the TLB flush. On the stack
 * (1.3 KiB): a purge may run in a free() on a signal handler's stack.
 */
#define PURGE_BATCH	32

struct purge_batch {
	struct zone *z;
	uint64_t pages;			/* dirty pages purged */
	unsigned nr_blocks, nr_meta;
	struct page *block[PURGE_BATCH];
	struct os_range blocks[PURGE_BATCH];
	struct os_range meta[PURGE_BATCH];
};

static void
meta_flush(struct purge_batch *b)
{
	os_purge_ranges(b->meta, b->nr_meta, NULL);
	b->nr_meta = 0;
}

/* Gives back the whole pages of [s, e): 0 bytes that a dropped page
 * reads as it is. With b NULL, at once. */
static void
drop_zeroed(struct purge_batch *b, uintptr_t s, uintptr_t e)
{
	s = zp_align_up(s, ZP_PAGE_SIZE);
	e = zp_align_down(e, ZP_PAGE_SIZE);
	if (s >= e)
		return;
	if (b == NULL) {
		(void)os_purge((void *)s, e - s);
		return;
	}
	if (b->nr_meta == PURGE_BATCH)
		meta_flush(b);
	b->meta[b->nr_meta++] = (struct os_range){ (void *)s, e - s };
}

/* Gives back the facts and bits pages that only pages [lo, lo + n) of a
 * free block use: the block's words are 0 (the slab layer clears them
 * before it frees a block), which is what a dropped page reads. 192 MiB
 * freed and trimmed would otherwise keep 384 KiB of facts and 3 MiB of
 * bits. */
static void
drop_facts_and_bits(struct zone *z, struct purge_batch *b, size_t lo,
		    size_t n)
{
	if (z->facts)
		drop_zeroed(b, (uintptr_t)&z->facts[lo],
			    (uintptr_t)&z->facts[lo + n]);
	if (z->bits)
		drop_zeroed(b, (uintptr_t)&z->bits[lo],
			    (uintptr_t)&z->bits[lo + n]);
}

/* Gives back the descriptor pages of pages [lo, lo + n) of a free block
 * of the big order or more (its big-block entry lists it, buddy.h), and
 * its facts and bits pages. */
static void
drop_descs(struct zone *z, struct purge_batch *b, size_t lo, size_t n)
{
	drop_zeroed(b, (uintptr_t)&z->descs[lo], (uintptr_t)&z->descs[lo + n]);
	drop_facts_and_bits(z, b, lo, n);
}

/*
 * Unmaps the mapped steps of a block that is off the lists; returns how
 * many went, and whether all are gone in *all. No lock needed: nothing
 * else touches the steps of a block no list holds. Each bit is cleared
 * before its step is unmapped, so page_lookup never finds a descriptor
 * for memory that some other mapping may hold. The step's descriptors
 * are tails of the block, which nothing reads until the step is mapped
 * again (map_pages_locked then restores their zone): their pages go too
 * (32 KiB a step, 1/64 of what was given back).
 */
static uint64_t
unmap_block(struct zone *z, const struct page *pg, bool *all)
{
	size_t head = buddy_block_index(&z->buddy, pg);
	size_t first = head / STEP_PAGES;
	size_t n = ((size_t)1 << pg->order) / STEP_PAGES;
	uint64_t gone = 0;

	*all = true;
	for (size_t st = first; st < first + n; st++) {
		if (!zone_step_is_mapped(z, st))
			continue;
		zone_step_set_mapped(z, st, false);
		if (os_unmap((void *)(z->base + st * ZP_COMMIT_STEP),
			     ZP_COMMIT_STEP) == 0) {
			drop_descs(z, NULL, st * STEP_PAGES, STEP_PAGES);
			gone++;
		} else {
			zone_step_set_mapped(z, st, true);
			*all = false;
		}
	}
	return gone;
}

/* Zone pages whose big-block entries fill a page of them (16 MiB). */
#define ENTRY_PAGE_SPAN							\
	((ZP_PAGE_SIZE / sizeof(struct page)) << BUDDY_BIG_ORDER)

/* Are all steps of pages [lo, hi) holes or past the committed ones? */
static bool
all_holes(const struct zone *z, size_t lo, size_t hi)
{
	hi = ZP_MIN(hi, zone_committed_pages(z));
	for (size_t st = lo / STEP_PAGES; st * STEP_PAGES < hi; st++)
		if (!step_flag(z, st, STEP_HOLE))
			return false;
	return true;
}

/* A page of big-block entries that serves only holes lists nothing (a
 * hole is on no list): it goes back as the holes' descriptors do, and
 * reads zero, PAGE_UNUSED, until a hole is filled. A block still on a
 * purge's chain is not a hole yet, so no entry the chain links through is
 * dropped. Zone 0's first entries are in its page (zone_priv.h). */
_Static_assert(((size_t)1 << ZP_MAX_ORDER) <= ENTRY_PAGE_SPAN,
	       "a hole's entry is in one page of them");

static void
drop_hole_entries(struct zone *z, size_t head)
{
	const struct buddy *b = &z->buddy;
	size_t p = zp_align_down(head, ENTRY_PAGE_SPAN);
	size_t lo = ZP_MAX(p, b->nr_big_near << BUDDY_BIG_ORDER);

	if (lo < p + ENTRY_PAGE_SPAN && all_holes(z, lo, p + ENTRY_PAGE_SPAN))
		(void)os_purge(&b->big[p >> BUDDY_BIG_ORDER], ZP_PAGE_SIZE);
}

/*
 * A top-order block whose steps all went back leaves the free lists as
 * holes: a bit a step, and none of its descriptor pages resident (when
 * the lists held every block given back by its head's descriptor, each
 * kept a page or two: 384 KiB after freeing 192 MiB), nor its big-block
 * entry's page once that page serves holes alone. Growth fills holes
 * before it maps new steps (zone.c). The block's descriptors read zero
 * from here on, its own included.
 */
static void
hole_add_locked(struct zone *z, struct page *pg, uint64_t now)
{
	size_t head = buddy_block_index(&z->buddy, pg);
	size_t n = (size_t)1 << pg->order;

	for (size_t st = head / STEP_PAGES; st < (head + n) / STEP_PAGES; st++)
		step_flag_set(z, st, STEP_HOLE, true);
	z->nr_hole_steps += n / STEP_PAGES;
	z->last_hole_ns = now;
	(void)os_purge(&z->descs[head], n * sizeof(struct page));
	drop_facts_and_bits(z, NULL, head, n);
	drop_hole_entries(z, head);
}

/* A block of whole steps, all unmapped now, back to the zone: a hole if
 * it is (or merges into) a top-order block of such steps, else onto the
 * lists, to be a hole when its buddy goes too. */
static void
free_unmapped_locked(struct zone *z, struct page *pg, uint64_t now)
{
	size_t idx = buddy_block_index(&z->buddy, pg);
	struct page *blk;

	if (pg->order == ZP_MAX_ORDER) {
		hole_add_locked(z, pg, now);
		return;
	}
	buddy_free(&z->buddy, pg, pg->order, /* zero */ true, now);
	blk = buddy_find_free(&z->buddy, idx);
	if (blk && blk->order == ZP_MAX_ORDER &&
	    !block_has_mapped_step(z, blk)) {
		buddy_remove(&z->buddy, blk);
		hole_add_locked(z, blk, now);
	}
}

/*
 * A purged block that stays mapped gives back its descriptor pages too
 * when it has pages of its own (the big order: its big-block entry, not
 * its head's descriptor, lists it): a program that freed a lot and went
 * idle would otherwise keep 1/64 of it resident as descriptors. They read
 * zero until used again, which is a descriptor of nothing in zone 0 (kind
 * PAGE_UNUSED, zone_id 0); other zones keep theirs, since every
 * descriptor there must name its zone.
 */
static void
drop_block_descs(struct purge_batch *b, struct page *pg)
{
	struct zone *z = b->z;
	size_t head = buddy_block_index(&z->buddy, pg);

	if (z->id == 0 && pg->order >= BUDDY_BIG_ORDER)
		drop_descs(z, b, head, (size_t)1 << pg->order);
	else
		drop_facts_and_bits(z, b, head, (size_t)1 << pg->order);
}

/* What a block of the chain reads when it goes back to the lists. */
static void
block_purged(struct purge_batch *b, struct page *pg, bool ok)
{
	if (ok && !(pg->flags & PG_ZERO))
		b->pages += (uint64_t)1 << pg->order;
	/* Read back when the block is freed. */
	pg->flags = ok ? PG_ZERO : 0;
	if (ok && is_unmap_candidate(pg))
		pg->flags |= PG_HOLE;
}

static void
batch_flush(struct purge_batch *b)
{
	int err[PURGE_BATCH];

	os_purge_ranges(b->blocks, b->nr_blocks, err);
	for (unsigned i = 0; i < b->nr_blocks; i++) {
		if (err[i] == 0)
			drop_block_descs(b, b->block[i]);
		block_purged(b, b->block[i], err[i] == 0);
	}
	b->nr_blocks = 0;
	meta_flush(b);
}

static void
batch_block(struct purge_batch *b, struct page *pg)
{
	if (b->nr_blocks == PURGE_BATCH)
		batch_flush(b);
	b->block[b->nr_blocks] = pg;
	b->blocks[b->nr_blocks++] = (struct os_range){
		block_address(b->z, pg), ZP_PAGE_SIZE << pg->order };
}

/* Gives the chain's blocks back with z->lock dropped, then frees them
 * back into the lists; returns the dirty pages purged. */
static uint64_t
purge_chain_locked(struct zone *z, struct page *chain, uint64_t now)
{
	struct purge_batch b = { .z = z };
	uint64_t unmapped = 0;

	if (!chain)
		return 0;
	zp_unlock(&z->lock);
	for (struct page *pg = chain; pg; pg = pg->lru.next) {
		bool ok;

		if (!is_unmap_candidate(pg)) {
			batch_block(&b, pg);
			continue;
		}
		unmapped += unmap_block(z, pg, &ok);
		block_purged(&b, pg, ok);
	}
	batch_flush(&b);
	zp_lock(&z->lock);
	z->nr_unmapped_steps += unmapped;
	z->nr_unmapped_total += unmapped;
	z->nr_purged_pages += b.pages;
	while (chain) {
		struct page *next = chain->lru.next;

		bool zero = chain->flags & PG_ZERO;

		/* A block purged now is stamped now: taking it back soon is
		 * a refault (zone_note_reuse_locked). */
		if (chain->flags & PG_HOLE)
			free_unmapped_locked(z, chain, now);
		else
			buddy_free(&z->buddy, chain, chain->order, zero,
				   zero && chain->lru.nr_dirty
					   ? now : chain->lru.freed_ns);
		chain = next;
	}
	return b.pages;
}

/*
 * Over the retained budget: the longest idle dirty blocks go, until an
 * eighth of the budget is free again, so that the next frees do not each
 * pay a purge. But a small block (below ZONE_PURGE_SMALL_ORDER) freed within
 * ZONE_MERGE_WINDOW_NS is mostly a slab just emptied among neighbours that are
 * emptying too: a program that tears a large structure down in random
 * order empties its slabs in a burst near the end, and purging each costs
 * a system call for a page or two (random-free: 18,766 madvise calls, 60
 * ns a free), while left alone they merge into large blocks before the
 * teardown is over (712 calls). So once only young blocks are left, large
 * ones go first, and young small ones wait beyond the budget, up to
 * retain_max pages; old ones go in age order as before, so a program
 * whose survivors leave lasting holes (frag) has them given back as
 * before, and its retained budget does not grow from taking back large
 * blocks purged in their place.
 */
static bool
is_young_small(const struct page *pg, uint64_t now)
{
	/* Stamped after now: freed by another thread since now was read. */
	return pg->order < ZONE_PURGE_SMALL_ORDER &&
	       (pg->lru.freed_ns > now ||
		now - pg->lru.freed_ns < ZONE_MERGE_WINDOW_NS);
}

static void
take_excess_locked(struct zone *z, uint64_t now, uint64_t keep,
		   struct page **chain)
{
	struct page *pg;

	while (dirty_pages(z) > keep &&
	       (pg = buddy_oldest_dirty(&z->buddy, 0)) != NULL &&
	       !is_young_small(pg, now))
		purge_take_locked(z, pg, PURGE_EXCESS, chain);
	while (dirty_pages(z) > keep &&
	       (pg = buddy_oldest_dirty(&z->buddy, ZONE_PURGE_SMALL_ORDER)))
		purge_take_locked(z, pg, PURGE_EXCESS, chain);
	while (dirty_pages(z) > keep + z->retain_max &&
	       (pg = buddy_oldest_dirty(&z->buddy, 0)) != NULL)
		purge_take_locked(z, pg, PURGE_EXCESS, chain);
	/* What young small blocks hold above keep is not looked at again
	 * before they age or frees add a quarter of the budget more. */
	z->small_held = dirty_pages(z) > keep ? dirty_pages(z) - keep : 0;
	z->small_held_until = now + ZONE_MERGE_WINDOW_NS;
}

/* Dirty pages over budget go, down to an eighth below it, so that the
 * frees that follow purge in batches. */
static void
take_over_budget_locked(struct zone *z, uint64_t now, uint64_t budget,
			struct page **chain)
{
	if (dirty_pages(z) > budget)
		take_excess_locked(z, now, budget - budget / 8, chain);
}

/* Every dirty block idle for delay or longer. */
static void
take_idle_locked(struct zone *z, uint64_t now, uint64_t delay,
		 enum zone_purge_why why, struct page **chain)
{
	for (unsigned k = 0; k <= ZP_MAX_ORDER; k++) {
		for (unsigned t = 0; t < REGION_NR; t++) {
			struct free_list *l = &z->buddy.free_area[k][t].dirty;
			struct page *pg = l->tail, *prev;

			for (; pg; pg = prev) {
				uint64_t when = pg->lru.freed_ns;

				prev = pg->lru.prev;
				/* Another thread may have stamped a later
				 * now. */
				if (when <= now && now - when >= delay)
					purge_take_locked(z, pg, why, chain);
			}
		}
	}
}

/* Known-zero free steps that are still mapped (fresh from
 * growth, or purged in smaller pieces that merged since) hold address
 * space for nothing. */
static void
take_mapped_zero_locked(struct zone *z, struct page **chain)
{
	for (unsigned k = STEP_ORDER; k <= ZP_MAX_ORDER; k++) {
		for (unsigned t = 0; t < REGION_NR; t++) {
			struct free_list *l = &z->buddy.free_area[k][t].zero;
			struct page *pg = l->head, *next;

			for (; pg; pg = next) {
				next = pg->lru.next;
				/* Known zero: counted as no purged page. */
				if (block_has_mapped_step(z, pg))
					purge_take_locked(z, pg, PURGE_IDLE,
							  chain);
			}
		}
	}
}

/* With no refault for a purge delay, the budget halves: a program that
 * stopped reusing what it frees gets its memory given back at the free
 * again. */
static void
decay_retain_locked(struct zone *z, uint64_t now)
{
	if (now - z->last_refault_ns >= z->purge_delay_ns &&
	    z->retain > z->retain_min)
		z->retain = ZP_MAX(z->retain / 2, z->retain_min);
}

void
zone_note_reuse_locked(struct zone *z, const struct page *pg)
{
	uint64_t now = os_now_ns(), n = (uint64_t)1 << pg->order;

	if (pg->lru.freed_ns > now || now - pg->lru.freed_ns >= z->purge_delay_ns)
		return;
	z->retain = ZP_MIN(z->retain + n, z->retain_max);
	z->last_refault_ns = now;
	z->nr_refault_pages += n;
}

/*
 * Called by zone_purge_check_locked when a purge may be due. A zone
 * another thread is purging is left to that thread.
 */
void
zone_purge_run_locked(struct zone *z, uint64_t now, uint64_t budget)
{
	bool tick = now >= z->next_decay_ns;
	struct page *chain = NULL;

	if (!zp_trylock(&z->purge_lock))
		return;
	if (tick) {
		z->next_decay_ns = now + z->purge_delay_ns / DECAY_TICKS;
		z->small_held = 0;
		decay_retain_locked(z, now);
		take_idle_locked(z, now, z->purge_delay_ns, PURGE_IDLE,
				 &chain);
	}
	take_over_budget_locked(z, now, budget, &chain);
	take_mapped_zero_locked(z, &chain);
	purge_chain_locked(z, chain, now);
	zp_unlock(&z->purge_lock);
}

/* One zone's pass, both its locks held: every free page (all), or what
 * has idled a purge delay and the excess over the free path's budget.
 * Returns the pages given back. */
static uint64_t
pass_locked(struct zone *z, uint64_t now, bool all)
{
	struct page *chain = NULL;

	if (all) {
		take_idle_locked(z, now, 0, PURGE_TRIM, &chain);
		z->small_held = 0;
	} else {
		decay_retain_locked(z, now);
		take_idle_locked(z, now, z->purge_delay_ns, PURGE_IDLE,
				 &chain);
		take_over_budget_locked(z, now, zone_free_budget(z, now),
					&chain);
	}
	take_mapped_zero_locked(z, &chain);
	return purge_chain_locked(z, chain, now);
}

size_t
zone_purge(bool all)
{
	uint64_t now = os_now_ns(), pages = 0;

	for (unsigned i = 0; i < nr_zones; i++) {
		struct zone *z = zone_of(i);

		zp_lock(&z->purge_lock);
		zp_lock(&z->lock);
		pages += pass_locked(z, now, all);
		zp_unlock(&z->lock);
		zp_unlock(&z->purge_lock);
	}
	return (size_t)pages << ZP_PAGE_SHIFT;
}

/*
 * The background pass (zone_purge_timed). While it runs, the free path
 * keeps dirty pages over the retained budget for it, so that a program
 * that frees a structure and builds it again within the purge delay takes
 * no page fault per page for it. Kept pages must not raise the peak: when
 * memory comes from elsewhere (the zone grows, a large block is mapped)
 * and the pages in use, with the kept ones, would pass the most the
 * process has had in use, the kept ones go first.
 */
uint64_t zone_timer_until_ns;
static uint64_t outside_pages;		/* atomic: in use outside the zones */
uint64_t zone_outside_kept_pages;
static uint64_t peak_use_pages;		/* atomic: the most in use */

zp_boot_text void
zone_purge_reset(void)
{
	__atomic_store_n(&zone_timer_until_ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&outside_pages, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&zone_outside_kept_pages, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&peak_use_pages, 0, __ATOMIC_RELAXED);
}

void
zone_note_outside(uint64_t pages)
{
	__atomic_store_n(&outside_pages, pages, __ATOMIC_RELAXED);
}

void
zone_note_outside_kept(uint64_t pages)
{
	__atomic_store_n(&zone_outside_kept_pages, pages, __ATOMIC_RELAXED);
}

/* Read without the zone's lock, a heuristic's input: three counters read
 * apart may not add up (a growth between two reads), so never below 0. */
static uint64_t
in_use_pages(const struct zone *z)
{
	uint64_t all = __atomic_load_n(&z->buddy.nr_pages, __ATOMIC_RELAXED);
	uint64_t free = __atomic_load_n(&z->buddy.nr_free, __ATOMIC_RELAXED) +
			__atomic_load_n(&z->nr_hole_steps, __ATOMIC_RELAXED) *
				STEP_PAGES;

	return all > free ? all - free : 0;
}

/* How many pages the kept ones take the process past the most it has had
 * in use (0: none), from sums over the zones read without their locks.
 * Raises that mark to what is in use now. */
static uint64_t
kept_over_peak(void)
{
	uint64_t use = __atomic_load_n(&outside_pages, __ATOMIC_RELAXED);
	uint64_t dirty = 0, peak;

	for (unsigned i = 0; i < nr_zones; i++) {
		use += in_use_pages(zone_of(i));
		dirty += __atomic_load_n(&zone_of(i)->buddy.nr_free_dirty,
					 __ATOMIC_RELAXED);
	}
	peak = __atomic_load_n(&peak_use_pages, __ATOMIC_RELAXED);
	while (use > peak &&
	       !__atomic_compare_exchange_n(&peak_use_pages, &peak, use, true,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	peak = ZP_MAX(peak, use);
	return use + dirty > peak ? use + dirty - peak : 0;
}

/* Gives back the longest idle kept pages of z, *over of them at most and
 * none of the retained budget; *over drops by what went. */
static void
purge_kept_locked(struct zone *z, uint64_t now, uint64_t *over)
{
	uint64_t dirty = dirty_pages(z), keep;
	struct page *chain = NULL;

	keep = ZP_MAX(dirty > *over ? dirty - *over : 0, z->retain);
	if (dirty <= keep || !zp_trylock(&z->purge_lock))
		return;
	take_excess_locked(z, now, keep, &chain);
	purge_chain_locked(z, chain, now);
	zp_unlock(&z->purge_lock);
	*over -= ZP_MIN(*over, dirty - ZP_MIN(dirty, dirty_pages(z)));
}

/* Growth is where the pages in use near their peak: sampled at each. */
void
zone_purge_after_grow_locked(struct zone *z)
{
	uint64_t now = os_now_ns(), over;

	if (zone_timer_alive(now) && (over = kept_over_peak()) != 0)
		purge_kept_locked(z, now, &over);
	if (__atomic_load_n(&zone_outside_kept_pages, __ATOMIC_RELAXED))
		zone_peak_hook_due();
}

void
zone_purge_before_map(uint64_t outside)
{
	uint64_t now = os_now_ns(), over;

	zone_note_outside(outside);
	/* Without the timer the free path keeps nothing. */
	if (!zone_timer_alive(now))
		return;
	over = kept_over_peak();
	for (unsigned i = 0; i < nr_zones && over; i++) {
		struct zone *z = zone_of(i);

		zp_lock(&z->lock);
		purge_kept_locked(z, now, &over);
		zp_unlock(&z->lock);
	}
}

/* The thread is leaving: the free path gives excess back at once from
 * now on, and what it kept goes now. Only tried locks: the thread may be
 * leaving for a quiesce that a signal handler asked for while its thread
 * holds a zone's lock; a zone passed over has it given back by its next
 * free slow path. */
static void
timer_stop(uint64_t now)
{
	__atomic_store_n(&zone_timer_until_ns, 0, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < nr_zones; i++) {
		struct zone *z = zone_of(i);
		struct page *chain = NULL;

		if (!zp_trylock(&z->purge_lock))
			continue;
		if (zp_trylock(&z->lock)) {
			if (dirty_pages(z) > z->retain)
				take_excess_locked(z, now, z->retain, &chain);
			purge_chain_locked(z, chain, now);
			zp_unlock(&z->lock);
		}
		zp_unlock(&z->purge_lock);
	}
}

bool
zone_purge_timed(uint64_t interval_ns)
{
	uint64_t now = os_now_ns();
	bool waiting = false;

	if (!interval_ns) {
		timer_stop(now);
		return false;
	}
	__atomic_store_n(&zone_timer_until_ns, now + 2 * interval_ns,
			 __ATOMIC_RELAXED);
	for (unsigned i = 0; i < nr_zones; i++) {
		struct zone *z = zone_of(i);

		zp_lock(&z->purge_lock);
		zp_lock(&z->lock);
		/* A zone too small to keep excess has the retained budget:
		 * whatever its free path has not given back yet goes. */
		(void)pass_locked(z, now, false);
		/* Kept for a later pass, which keeps this thread running. */
		waiting |= zone_free_budget(z, now) > z->retain &&
			   dirty_pages(z) > z->retain;
		zp_unlock(&z->lock);
		zp_unlock(&z->purge_lock);
	}
	return waiting;
}

/* purge_lock held: zone_purge_run_locked only tries it, so the free
 * paths skip their purges until resume. */
void
zone_purge_pause(void)
{
	for (unsigned i = 0; i < nr_zones; i++)
		zp_lock(&zone_of(i)->purge_lock);
}

/* A zone created since the pause (LOW32's first use) was not paused:
 * its purge_lock is someone else's, or nobody's. */
void
zone_purge_resume(void)
{
	for (unsigned i = nr_zones; i-- > 0;)
		if (zp_lock_is_mine(&zone_of(i)->purge_lock))
			zp_unlock(&zone_of(i)->purge_lock);
}
