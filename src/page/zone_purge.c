/*
 * zone_purge.c - giving free pages back: the high watermark, the idle
 * decay, and giving whole steps back to the system.
 * Owns:  the purge policy; no state beyond struct zone's purge fields.
 * Locks: zone->purge_lock, held by the one thread purging a zone, ranks
 *        before zone->lock (under zone->lock it is only tried). A purge
 *        takes its blocks off the lists under zone->lock, drops zone->lock
 *        for the system calls, and frees them back as known-zero.
 * Path:  zone free slow paths -> zone_purge_check_locked (inline) ->
 *        zone_purge_run_locked -> take_*_locked
 *        -> purge_chain_locked -> os_purge | os_unmap (whole lazy steps)
 *        malloc_trim -> zone_purge
 *
 * A block freed moments ago is likely reused soon, and purging it would
 * only make that reuse fault every page back in, so the free path purges
 * by age, oldest first, in batches:
 *  - crossing high purges the longest idle blocks until low remain, so a
 *    burst of frees costs one batch, not a purge per free;
 *  - above high / ZONE_COLD_SHARE, blocks idle for purge_delay /
 *    COLD_AGE_DIV (16 ms by default) go: what a program recycles stays,
 *    what it left behind (the smaller buffers of arrays it grew) does not
 *    wait for high;
 *  - like jemalloc's decay, and with no background thread, a free slow
 *    path at most every purge_delay / DECAY_TICKS purges the dirty blocks
 *    idle longer than purge_delay.
 * Purging a block of whole
 * steps unmaps them, so the address space goes back to the program; so do
 * known-zero steps still mapped (fresh from growth, or purged in pieces
 * that merged since).
 */
#include "os/os.h"
#include "page/zone_priv.h"

/* Idle blocks are looked for this many times per purge delay. */
#define DECAY_TICKS	4
/* Above high / ZONE_COLD_SHARE dirty pages, blocks idle for purge delay
 * / COLD_AGE_DIV are cold enough to purge. Measured (4-thread stress run
 * against a realloc-growth benchmark): a shorter age purges pools that
 * are being recycled, a longer one keeps the garbage of growing arrays
 * above glibc's peak RSS. */
#define COLD_AGE_DIV	64
/* A cold purge goes down to cold_pages / COLD_HYSTERESIS. */
#define COLD_HYSTERESIS	2

static uint64_t
dirty_pages(const struct zone *z)
{
	return z->buddy.nr_free_dirty;
}

static void *
block_address(const struct zone *z, const struct page *pg)
{
	size_t idx = buddy_index(&z->buddy, pg);

	return (void *)(z->base + (idx << ZP_PAGE_SHIFT));
}

/* Whether any step of a free block of a step or more is
 * still mapped (so unmapping it would give address space back). */
static bool
block_has_mapped_step(const struct zone *z, const struct page *pg)
{
	size_t first = buddy_index(&z->buddy, pg) / STEP_PAGES;
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
 * Unmaps the mapped steps of a block that is off the lists; returns how
 * many went, and whether all are gone in *all. No lock needed: nothing
 * else touches the steps of a block no list holds. Each bit is cleared
 * before its step is unmapped, so page_lookup never finds a descriptor
 * for memory that some other mapping may hold.
 */
static uint64_t
unmap_block(struct zone *z, const struct page *pg, bool *all)
{
	size_t first = buddy_index(&z->buddy, pg) / STEP_PAGES;
	size_t n = ((size_t)1 << pg->order) / STEP_PAGES;
	uint64_t gone = 0;

	*all = true;
	for (size_t st = first; st < first + n; st++) {
		if (!zone_step_is_mapped(z, st))
			continue;
		zone_step_set_mapped(z, st, false);
		if (os_unmap((void *)(z->base + st * ZP_COMMIT_STEP),
			     ZP_COMMIT_STEP) == 0) {
			gone++;
		} else {
			zone_step_set_mapped(z, st, true);
			*all = false;
		}
	}
	return gone;
}

/* Gives the chain's blocks back with z->lock dropped, then frees them
 * back into the lists; returns the dirty pages purged. */
static uint64_t
purge_chain_locked(struct zone *z, struct page *chain)
{
	uint64_t pages = 0, unmapped = 0;

	if (!chain)
		return 0;
	zp_unlock(&z->lock);
	for (struct page *pg = chain; pg; pg = pg->lru.next) {
		size_t bytes = ZP_PAGE_SIZE << pg->order;
		bool ok;

		if (is_unmap_candidate(pg))
			unmapped += unmap_block(z, pg, &ok);
		else
			ok = os_purge(block_address(z, pg), bytes) == 0;
		if (ok && !(pg->flags & PG_ZERO))
			pages += (uint64_t)1 << pg->order;
		/* Read back when the block is freed below. */
		pg->flags = ok ? PG_ZERO : 0;
	}
	zp_lock(&z->lock);
	z->nr_unmapped_steps += unmapped;
	z->nr_unmapped_total += unmapped;
	z->nr_purged_pages += pages;
	while (chain) {
		struct page *next = chain->lru.next;

		buddy_free(&z->buddy, chain, chain->order,
			   chain->flags & PG_ZERO, chain->lru.freed_ns);
		chain = next;
	}
	return pages;
}

/* Over high: the longest idle dirty blocks go, until only low remain. */
static void
take_excess_locked(struct zone *z, struct page **chain)
{
	struct page *pg;

	while (dirty_pages(z) > z->wmark_low &&
	       (pg = buddy_oldest_dirty(&z->buddy)) != NULL)
		purge_take_locked(z, pg, PURGE_HIGH, chain);
}

static uint64_t
cold_pages(const struct zone *z)
{
	return z->wmark_high / ZONE_COLD_SHARE;
}

/*
 * Over high / ZONE_COLD_SHARE: blocks nobody took back within the cold
 * age go too, longest idle first. A pool that is being recycled stays (up
 * to high); one that only grows, such as the smaller buffers a program
 * left behind while growing its arrays, does not wait for high.
 */
static void
take_cold_locked(struct zone *z, uint64_t now, struct page **chain)
{
	uint64_t age = z->purge_delay_ns / COLD_AGE_DIV;
	struct page *pg;

	/* Below the threshold, not just to it: otherwise a program freeing
	 * a cold heap block by block (malloc_trim spilling slabs) pays an
	 * madvise per free instead of one batch per cold_pages / 2. */
	while (dirty_pages(z) > cold_pages(z) / COLD_HYSTERESIS &&
	       (pg = buddy_oldest_dirty(&z->buddy)) != NULL) {
		if (pg->lru.freed_ns > now || now - pg->lru.freed_ns < age) {
			/* Nothing is cold before the oldest block is. */
			z->next_cold_ns = pg->lru.freed_ns + age;
			return;
		}
		purge_take_locked(z, pg, PURGE_COLD, chain);
	}
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

/*
 * Called by zone_purge_check_locked when a purge may be due. A zone
 * another thread is purging is left to that thread.
 */
void
zone_purge_run_locked(struct zone *z, uint64_t now)
{
	bool excess = dirty_pages(z) > z->wmark_high;
	bool cold = dirty_pages(z) > cold_pages(z) && now >= z->next_cold_ns;
	bool tick = now >= z->next_decay_ns;
	struct page *chain = NULL;

	if (!zp_trylock(&z->purge_lock))
		return;
	if (tick) {
		z->next_decay_ns = now + z->purge_delay_ns / DECAY_TICKS;
		take_idle_locked(z, now, z->purge_delay_ns, PURGE_IDLE,
				 &chain);
	}
	if (excess)
		take_excess_locked(z, &chain);
	else if (cold)
		take_cold_locked(z, now, &chain);
	take_mapped_zero_locked(z, &chain);
	purge_chain_locked(z, chain);
	zp_unlock(&z->purge_lock);
}

size_t
zone_purge(bool all)
{
	uint64_t now = os_now_ns(), pages = 0;

	for (unsigned i = 0; i < nr_zones; i++) {
		struct zone *z = &zone_table[i];
		struct page *chain = NULL;

		zp_lock(&z->purge_lock);
		zp_lock(&z->lock);
		if (all) {
			take_idle_locked(z, now, 0, PURGE_TRIM, &chain);
		} else {
			take_idle_locked(z, now, z->purge_delay_ns,
					 PURGE_IDLE, &chain);
			if (dirty_pages(z) > z->wmark_high)
				take_excess_locked(z, &chain);
		}
		take_mapped_zero_locked(z, &chain);
		pages += purge_chain_locked(z, chain);
		zp_unlock(&z->lock);
		zp_unlock(&z->purge_lock);
	}
	return (size_t)pages << ZP_PAGE_SHIFT;
}

/* purge_lock held: zone_purge_run_locked only tries it, so the free
 * paths skip their purges until resume. */
void
zone_purge_pause(void)
{
	for (unsigned i = 0; i < nr_zones; i++)
		zp_lock(&zone_table[i].purge_lock);
}

void
zone_purge_resume(void)
{
	for (unsigned i = nr_zones; i-- > 0;)
		zp_unlock(&zone_table[i].purge_lock);
}
