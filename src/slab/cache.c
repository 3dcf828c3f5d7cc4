/*
 * cache.c - per-class central caches: orphaned slabs waiting to empty,
 * the shared slab, and giving empty slabs back to the zone.
 * Owns:  slab_caches[] and their partial lists.
 * Locks: cache->lock per class, a leaf: zone calls happen after unlocking.
 *        Fork takes every cache lock in class order.
 * Path:  tcache_refill -> cache_take -> slab_collect (adopt);
 *        tcache_fini | bin_flush -> cache_put_list | cache_put_empty ->
 *          zone_free_pages;
 *        tcache_free_remote -> cache_rescue; malloc_trim -> slab_trim.
 */
#include "slab/cache.h"

#include <string.h>

#include "page/zone.h"
#include "slab/tcache.h"

struct slab_cache slab_caches[SC_NR] zp_bss_large;
struct slab_cache_stats slab_cache_stats[SC_NR] zp_bss_large;

/* Classes that ever had a slab (the first one counted marks its class).
 * malloc_trim and every thread's exit visit only these: a visit writes
 * the class's line of slab_caches[] (its lock, its counters), and all of
 * them are two pages a program using a few classes never needed. */
static uint64_t cache_used[(SC_NR + 63) / 64];

/* Orphans a take inspects for remote frees that emptied them; each goes
 * to the back of the list, so every orphan is looked at in turn. */
#define CACHE_SCAN	4

/* Nothing to write at a process's boot: a zero lock is free and the
 * lists start empty, so a class's line of the caches is touched only when
 * the class gives a slab back. A later boot (tests) starts over. */
zp_boot_text void
cache_boot(void)
{
	static bool booted;

	if (booted) {
		memset(slab_caches, 0, sizeof(slab_caches));
		memset(slab_cache_stats, 0, sizeof(slab_cache_stats));
		memset(cache_used, 0, sizeof(cache_used));
	}
	booted = true;
}

bool
cache_is_used(unsigned sc)
{
	return (__atomic_load_n(&cache_used[sc / 64], __ATOMIC_RELAXED) >>
		(sc % 64)) & 1;
}

const struct slab_cache *
cache_peek(unsigned sc)
{
	static const struct slab_cache unused;

	return cache_is_used(sc) ? &slab_caches[sc] : &unused;
}

const struct slab_cache_stats *
cache_stats_peek(unsigned sc)
{
	static const struct slab_cache_stats unused;

	return cache_is_used(sc) ? &slab_cache_stats[sc] : &unused;
}

/* Each atomic add waits for the stores before it: a list of slabs
 * going back is counted with one pair. */
static void
count_slabs(unsigned sc, int64_t slabs, int64_t objs)
{
	struct slab_cache *c = &slab_caches[sc];

	if (!cache_is_used(sc))
		__atomic_fetch_or(&cache_used[sc / 64], (uint64_t)1 << (sc % 64),
				  __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->nr_slabs, (uint64_t)slabs, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->nr_objs, (uint64_t)objs, __ATOMIC_RELAXED);
}

void
cache_count_slab(const struct slab *s, int delta)
{
	count_slabs(s->sc, delta, (int64_t)delta * slab_nr_objs(s));
}

static void
partial_unlink_locked(struct slab_cache *c, struct slab *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		c->partial_head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		c->partial_tail = s->prev;
	s->next = s->prev = NULL;
	s->where = SLAB_NOWHERE;
	c->nr_partial--;
}

static void
partial_append_locked(struct slab_cache *c, struct slab *s)
{
	slab_set_owner(s, SLAB_UNOWNED);
	s->next = NULL;
	s->prev = c->partial_tail;
	if (c->partial_tail)
		c->partial_tail->next = s;
	else
		c->partial_head = s;
	c->partial_tail = s;
	s->where = SLAB_CACHE_PARTIAL;
	c->nr_partial++;
}

/*
 * Puts an empty slab on *spill for the zone. A class keeps no reserve of
 * empty slabs: the owner's spare and the thread's page cache already
 * absorb a class breathing in and out, and beyond them the zone's
 * retained budget decides what stays resident, learning from refaults.
 * A per-class reserve held up to 64 KiB per class that no budget saw
 * (measured: 0.5 MiB of a 2.8 MiB peak in churn-1t, at no speed gain).
 */
static void
empty_put_locked(struct slab *s, struct slab **spill)
{
	slab_reset(s);
	slab_set_owner(s, SLAB_UNOWNED);
	s->prev = NULL;
	s->where = SLAB_NOWHERE;
	s->next = *spill;
	*spill = s;
}

/* Empty slabs of one class, linked through ->next, back to the zone. */
static size_t
spill_to_zone(struct slab *list, struct pcp_set *pcp)
{
	size_t bytes = 0;
	int64_t slabs = 0, objs = 0;
	unsigned sc = list != NULL ? list->sc : 0;

	while (list) {
		struct slab *next = list->next;

		slabs--;
		objs -= slab_nr_objs(list);
		bytes += ZP_PAGE_SIZE << list->order;
		slab_fini(list);
		zone_free_pages(pcp, slab_page(list));
		list = next;
	}
	if (slabs != 0)
		count_slabs(sc, slabs, objs);
	return bytes;
}

/*
 * Looks at up to CACHE_SCAN orphans, collecting their remote frees: the
 * first with objects to give (or emptied by those frees, then reset) is
 * taken off the list for the caller; full ones go to the back of the
 * list, so that every orphan is looked at in turn.
 */
static struct slab *
scan_partial_locked(struct slab_cache *c)
{
	unsigned n = ZP_MIN(CACHE_SCAN, c->nr_partial);

	for (unsigned i = 0; i < n; i++) {
		struct slab *s = c->partial_head;

		partial_unlink_locked(c, s);
		if (slab_collect_if_empty(s)) {
			slab_reset(s);
			return s;
		}
		slab_collect(s);
		if (slab_has_local(s))
			return s;
		partial_append_locked(c, s);
	}
	return NULL;
}

/*
 * An orphan with free objects, adopted: the objects that outlived their
 * thread stay where they are, and their neighbours are handed out again
 * instead of a new slab being carved (thread churn would otherwise leave
 * a slab per surviving object).
 */
struct slab *
cache_take(unsigned sc, struct tcache *tc)
{
	struct slab_cache *c = &slab_caches[sc];
	struct slab *s;

	zp_lock(&c->lock);
	s = scan_partial_locked(c);
	if (s != NULL)
		slab_set_owner(s, tc);
	zp_unlock(&c->lock);
	return s;
}

void
cache_put_list(unsigned sc, struct slab *orphans, struct slab *empties,
	       struct pcp_set *pcp)
{
	struct slab_cache *c = &slab_caches[sc];
	struct slab *spill = NULL, *next;

	zp_lock(&c->lock);
	for (; orphans != NULL; orphans = next) {
		next = orphans->next;
		partial_append_locked(c, orphans);
		zp_stat_inc(slab_cache_stats[sc].nr_orphan);
	}
	for (; empties != NULL; empties = next) {
		next = empties->next;
		empty_put_locked(empties, &spill);
	}
	zp_unlock(&c->lock);
	spill_to_zone(spill, pcp);
}

void
cache_put_empty(struct slab *s, struct pcp_set *pcp)
{
	struct slab_cache *c = &slab_caches[s->sc];
	struct slab *spill = NULL;

	zp_lock(&c->lock);
	empty_put_locked(s, &spill);
	zp_unlock(&c->lock);
	spill_to_zone(spill, pcp);
}

/* A slab for the shared role: an orphan with free objects (it has no
 * owner already), else a small new one made outside the lock. */
static struct slab *
shared_refill(struct slab_cache *c, unsigned sc)
{
	const struct slab_class *k = &slab_class[sc];
	struct page *head;
	struct slab *s = scan_partial_locked(c);
	bool zero;

	if (s != NULL)
		return s;
	zp_unlock(&c->lock);
	head = zone_alloc_pages(NULL, k->first_order, GFP_ARENA, PAGE_SLAB,
				&zero);
	if (head != NULL) {
		s = slab_init(head, sc, k->first_order, SLAB_UNOWNED, zero);
		cache_count_slab(s, 1);
	}
	zp_lock(&c->lock);
	return s;
}

void *
cache_alloc_shared(unsigned sc)
{
	struct slab_cache *c = &slab_caches[sc];
	struct slab *s, *spill = NULL;
	void *p = NULL;

	zp_lock(&c->lock);
	while (p == NULL) {
		s = c->shared;
		if (s != NULL) {
			if (slab_take(s, &p, 1) != 0 || slab_collect(s) != 0)
				continue;
			/* Full: an orphan now, emptied by the frees to come
			 * and adopted or reused like any other. */
			c->shared = NULL;
			partial_append_locked(c, s);
		}
		s = shared_refill(c, sc);
		if (s == NULL)
			break;
		if (c->shared != NULL) {
			/* Another thread installed one while we were out:
			 * ours came fresh from the zone. */
			empty_put_locked(s, &spill);
			continue;
		}
		s->next = s->prev = NULL;
		s->where = SLAB_CACHE_SHARED;
		slab_set_owner(s, SLAB_UNOWNED);
		c->shared = s;
	}
	if (p != NULL) {
		/* Handed out at once, by the slab's holder (this lock). */
		slab_set_live((uintptr_t)p);
		zp_stat_inc(slab_cache_stats[sc].nr_shared);
	}
	zp_unlock(&c->lock);
	spill_to_zone(spill, NULL);
	return p;
}

struct slab *
cache_take_shared(unsigned sc, struct tcache *tc)
{
	struct slab_cache *c = &slab_caches[sc];
	struct slab *s;

	zp_lock(&c->lock);
	s = c->shared;
	if (s != NULL) {
		c->shared = NULL;
		s->where = SLAB_NOWHERE;
		slab_set_owner(s, tc);
	}
	zp_unlock(&c->lock);
	return s;
}

void
cache_rescue(struct slab *s)
{
	struct slab_cache *c = &slab_caches[s->sc];

	zp_lock(&c->lock);
	partial_append_locked(c, s);
	zp_stat_inc(slab_cache_stats[s->sc].nr_rescue);
	zp_unlock(&c->lock);
}

size_t
slab_trim(void)
{
	size_t bytes = 0;

	for (unsigned sc = 0; sc < SC_NR; sc++) {
		struct slab_cache *c = &slab_caches[sc];
		struct slab *spill = NULL, *s, *next;

		if (!cache_is_used(sc))
			continue;
		zp_lock(&c->lock);
		for (s = c->partial_head; s != NULL; s = next) {
			next = s->next;
			if (slab_collect_if_empty(s)) {
				partial_unlink_locked(c, s);
				slab_reset(s);
				s->next = spill;
				spill = s;
			}
		}
		if ((s = c->shared) != NULL && slab_collect_if_empty(s)) {
			c->shared = NULL;
			slab_reset(s);
			s->where = SLAB_NOWHERE;
			s->next = spill;
			spill = s;
		}
		zp_unlock(&c->lock);
		bytes += spill_to_zone(spill, NULL);
	}
	return bytes;
}

void
slab_prefork(void)
{
	tcache_registry_prefork();
	for (unsigned sc = 0; sc < SC_NR; sc++)
		zp_lock_prefork(&slab_caches[sc].lock);
}

void
slab_postfork_parent(void)
{
	for (unsigned sc = SC_NR; sc-- > 0;)
		zp_lock_postfork_parent(&slab_caches[sc].lock);
	tcache_registry_postfork_parent();
}

void
slab_postfork_child(void)
{
	for (unsigned sc = 0; sc < SC_NR; sc++)
		zp_lock_postfork_child(&slab_caches[sc].lock);
	tcache_registry_postfork_child();
}
