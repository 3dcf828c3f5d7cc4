/*
 * cache.c - per-class central caches: orphaned slabs waiting to empty, the
 * small reserve of empty slabs, and giving empty slabs back to the zone.
 * Owns:  slab_caches[] and their partial/empty lists.
 * Locks: cache->lock per class, a leaf: zone calls happen after unlocking.
 *        Fork takes every cache lock in class order.
 * Path:  tcache_refill -> cache_take -> slab_collect (adopt | reserve);
 *        tcache_fini -> cache_put_list | cache_put_empty -> zone_free_pages;
 *        tcache_free_remote -> cache_rescue; malloc_trim -> slab_trim.
 */
#include "slab/cache.h"

#include "page/zone.h"
#include "slab/tcache.h"

struct slab_cache slab_caches[SC_NR];

/* Empty slabs a class keeps from the zone: one, or as many as fit in
 * 64 KiB, so a class that breathes in and out does not churn the zone. */
#define CACHE_EMPTY_BYTES ((size_t)64 << 10)
/* Orphans a take inspects for remote frees that emptied them; each goes
 * to the back of the list, so every orphan is looked at in turn. */
#define CACHE_SCAN	4

void
cache_boot(void)
{
	for (unsigned sc = 0; sc < SC_NR; sc++) {
		struct slab_cache *c = &slab_caches[sc];
		size_t bytes = ZP_PAGE_SIZE << slab_class[sc].order;

		*c = (struct slab_cache){ 0 };
		zp_lock_init(&c->lock);
		c->nr_empty_max =
			(uint32_t)ZP_MAX(1, CACHE_EMPTY_BYTES / bytes);
	}
}

void
cache_count_slab(const struct slab *s, int delta)
{
	struct slab_cache *c = &slab_caches[s->sc];

	__atomic_add_fetch(&c->nr_slabs, (uint64_t)(int64_t)delta,
			   __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->nr_objs, (uint64_t)(int64_t)delta *
					slab_nr_objs(s), __ATOMIC_RELAXED);
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

/* Puts an empty slab on the reserve, or on *spill for the zone. */
static void
empty_put_locked(struct slab_cache *c, struct slab *s, struct slab **spill)
{
	slab_reset(s);
	slab_set_owner(s, SLAB_UNOWNED);
	s->prev = NULL;
	if (c->nr_empty < c->nr_empty_max) {
		s->next = c->empty_head;
		c->empty_head = s;
		s->where = SLAB_CACHE_EMPTY;
		c->nr_empty++;
		return;
	}
	s->where = SLAB_NOWHERE;
	s->next = *spill;
	*spill = s;
}

static size_t
spill_to_zone(struct slab *list, struct pcp_set *pcp)
{
	size_t bytes = 0;

	while (list) {
		struct slab *next = list->next;

		bytes += ZP_PAGE_SIZE << list->order;
		cache_count_slab(list, -1);
		slab_fini(list);
		zone_free_pages(pcp, slab_page(list));
		list = next;
	}
	return bytes;
}

/*
 * Looks at up to CACHE_SCAN orphans, collecting their remote frees: the
 * first with objects to give is taken off the list for adoption; empty
 * ones go to the reserve (or the spill); full ones to the back of the
 * list, so that every orphan is looked at in turn.
 */
static struct slab *
scan_partial_locked(struct slab_cache *c, struct slab **spill)
{
	unsigned n = ZP_MIN(CACHE_SCAN, c->nr_partial);

	for (unsigned i = 0; i < n; i++) {
		struct slab *s = c->partial_head;

		partial_unlink_locked(c, s);
		if (slab_collect_if_empty(s)) {
			empty_put_locked(c, s, spill);
			continue;
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
 * a slab per surviving object). Else an empty slab from the reserve.
 */
struct slab *
cache_take(unsigned sc, struct tcache *tc, bool *adopted)
{
	struct slab_cache *c = &slab_caches[sc];
	struct slab *spill = NULL, *s;

	zp_lock(&c->lock);
	s = scan_partial_locked(c, &spill);
	*adopted = s != NULL;
	if (s == NULL && (s = c->empty_head) != NULL) {
		c->empty_head = s->next;
		s->next = NULL;
		s->where = SLAB_NOWHERE;
		c->nr_empty--;
		zp_stat_inc(c->nr_reuse);
	}
	if (s != NULL)
		slab_set_owner(s, tc);
	zp_unlock(&c->lock);
	spill_to_zone(spill, tc->pcp);
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
		zp_stat_inc(c->nr_orphan);
	}
	for (; empties != NULL; empties = next) {
		next = empties->next;
		empty_put_locked(c, empties, &spill);
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
	empty_put_locked(c, s, &spill);
	zp_unlock(&c->lock);
	spill_to_zone(spill, pcp);
}

void
cache_rescue(struct slab *s)
{
	struct slab_cache *c = &slab_caches[s->sc];

	zp_lock(&c->lock);
	partial_append_locked(c, s);
	zp_stat_inc(c->nr_rescue);
	zp_unlock(&c->lock);
}

size_t
slab_trim(void)
{
	size_t bytes = 0;

	for (unsigned sc = 0; sc < SC_NR; sc++) {
		struct slab_cache *c = &slab_caches[sc];
		struct slab *spill = NULL, *s, *next;

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
		while ((s = c->empty_head) != NULL) {
			c->empty_head = s->next;
			s->where = SLAB_NOWHERE;
			s->next = spill;
			spill = s;
		}
		c->nr_empty = 0;
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
