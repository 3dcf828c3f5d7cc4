/*
 * cache.h - the central cache of one size class (kmem_cache-like): the
 * slabs no thread holds. Private to src/slab/.
 *
 * Slabs not held by a thread are in one of three places (an empty one
 * goes straight back to the zone: no class keeps a reserve, see cache.c):
 *   partial  orphans: slabs of exited (or trimmed) threads that still
 *            have live objects, and full slabs rescued by their first
 *            remote free. A thread that needs a slab adopts one with free
 *            objects; remote frees empty the others, and refills find them
 *            empty on their scan.
 *   parked   full and on no list (see tcache.c); not the cache's concern
 *            until a remote free rescues it onto partial.
 *   shared   one slab a class hands out single objects from, under its
 *            lock: a thread that is not the process's first takes its
 *            first few objects from it, before it has a cache at all and
 *            while it has no bin for the class (tcache.c), so that
 *            many threads using a class lightly share its pages, as
 *            glibc's arenas share a heap, instead of each holding a slab.
 *            Frees of its objects are remote frees (it has no owner).
 */
#ifndef ZP_SLAB_CACHE_H
#define ZP_SLAB_CACHE_H

#include "base/lock.h"
#include "page/pcp.h"
#include "slab/slab.h"

struct slab_cache {
	struct zp_lock lock;		/* leaf: nothing is taken inside */
	uint32_t nr_partial;				/* lock */
	struct slab *partial_head, *partial_tail;	/* lock */
	struct slab *shared;				/* lock */
	uint64_t nr_slabs;		/* atomic: slabs of this class alive */
	uint64_t nr_objs;		/* atomic: their objects (orders vary) */
} zp_cacheline_aligned;

/* A line a class: the 120 of them are two pages, of which a program that
 * uses a handful of classes touches what those share. */
_Static_assert(sizeof(struct slab_cache) == ZP_CACHELINE, "one line");

extern struct slab_cache slab_caches[SC_NR];

/*
 * Counts that only statistics read: those of exited threads and of remote
 * frees without a tcache (atomic adds), and the cache's own paths (its
 * lock). Apart from slab_caches[] so that its lines stay one each, and so
 * that a program with one thread, which never adds to them, leaves these
 * pages untouched.
 */
struct slab_cache_stats {
	uint64_t nr_alloc_fast, nr_alloc_slow, nr_free_local, nr_free_remote;
	uint64_t nr_rescue, nr_orphan, nr_shared;	/* cache lock */
} zp_cacheline_aligned;

extern struct slab_cache_stats slab_cache_stats[SC_NR];

void cache_boot(void);

/* An orphan with free objects for tc to own (tc->lock held); NULL when
 * the cache has none. */
struct slab *cache_take(unsigned sc, struct tcache *tc);
/* Gives up held slabs of class sc, linked through ->next: orphans that
 * still have live objects, and empty ones (slab_inuse 0). One lock. */
void cache_put_list(unsigned sc, struct slab *orphans, struct slab *empties,
		    struct pcp_set *pcp);
/* Gives up a held slab with slab_inuse 0: to the zone. */
void cache_put_empty(struct slab *s, struct pcp_set *pcp);
/* One object of class sc from the shared slab (see above); NULL when the
 * zone has no memory. Takes the cache lock, and the zone's. */
void *cache_alloc_shared(unsigned sc);
/* The shared slab itself, for tc to hold (tc->lock held): a thread that
 * outgrows its shared objects adopts it as its first slab, so a lone
 * worker does not hold the shared page and a slab of its own. NULL when
 * there is none. */
struct slab *cache_take_shared(unsigned sc, struct tcache *tc);
/* A parked slab's first remote free hands it back to its cache. */
void cache_rescue(struct slab *s);
/* A slab leaves the zone for its class (+1) / goes back to it (-1). */
void cache_count_slab(const struct slab *s, int delta);
/* Has class sc ever had a slab? If not, its slab_caches[] entry is all
 * zero and need not be read (or written). */
bool cache_is_used(unsigned sc);
/* Class sc's entry for reading (statistics): an all-zero one for a class
 * never used, so that reading does not touch its page. */
const struct slab_cache *cache_peek(unsigned sc);
/* The same for its statistics. */
const struct slab_cache_stats *cache_stats_peek(unsigned sc);

#endif /* ZP_SLAB_CACHE_H */
