/*
 * tcache.h - the per-thread slab cache: what malloc and free of a small
 * object cost in the common case.
 *
 * Each size class has a bin: a stack of pointers to free objects of slabs
 * the thread holds (jemalloc's cache_bin). malloc pops the stack, free of
 * an object of a slab the thread holds pushes it; both are LIFO, so the
 * object handed out is the one most recently freed, still in cache.
 * Refills take a batch from the thread's own slabs (their free objects in
 * address order, never-used objects, remote frees) and flushes give the
 * newest half back to them; both take only the thread's own lock. A free of any
 * other slab's object is a remote free: chained with the thread's other
 * frees into the same slab and pushed onto that slab's remote list with
 * one CAS (see slab.h and tcache.c).
 *
 * Fast paths (x86-64), no calls and no register saves:
 *   alloc: load the bin's top and bottom, compare, load the pointer,
 *          store the top, count the allocation (in the bin's own line),
 *          set the object's live bit (slab.h).
 *   free:  one facts word (the page's: class, owner), compare the
 *          owner, the live bit (tested and cleared by one btr; the
 *          address 16-aligned), compare the top with the end, store the
 *          pointer and the top. Nothing of the object is read or
 *          written, here or when a flush gives it back: a free in an
 *          order the cache has not seen waits for no object's line, and
 *          the bits of a heap are 1/64 of it. The statistics' counter is
 *          malloc's (in the bin's own line).
 */
#ifndef ZP_SLAB_TCACHE_H
#define ZP_SLAB_TCACHE_H

#include <string.h>

#include "base/lock.h"
#include "page/pcp.h"
#include "slab/sizeclass.h"
#include "slab/slab.h"

/* Owner ids a cache may have (slab.h's facts word): the most threads
 * that run at once with a fast free path each. */
#define TCACHE_IDS	65536
_Static_assert(TCACHE_IDS < SLAB_FACTS_NO_OWNER,
	       "every id fits the facts word and none is the no-owner mark");
#define TCACHE_NO_ID	UINT32_MAX

/* Room for every class's bin_cap (slab_boot checks the sum). */
#define TCACHE_SLOTS	4096

/*
 * A bin's stack. All three pointers are NULL until the thread first uses
 * the class: the fast paths then see an empty (malloc) and a full (free)
 * bin and take the slow path, which gives the bin its slots. Slots are
 * handed out in order of first use, so a thread that uses three classes
 * touches one page of slots, not the whole array.
 */
struct tbin {
	void **cur;			/* top of the stack: next free slot */
	void **base;			/* cur == base: empty */
	void **end;			/* cur == end: full */
	uint64_t nr_alloc;		/* stats: objects malloc popped */
};

/* The thread's slabs of one class and its cold counters (owner, under
 * tc->lock). */
struct tclass {
	struct slab *partial;		/* something to give: refills use */
	struct slab *full;		/* nothing local: DELAYED or posted */
	struct slab *spare;		/* one empty slab kept back */
	/* Remote frees into one other thread's slab, chained here and
	 * pushed with one CAS when the slab changes or the chain is long
	 * (owner only, no lock: the remote free path). */
	struct slab *rslab;
	uintptr_t rhead, rtail;
	unsigned nr_rfree;
	unsigned nr_slabs;		/* slabs ever taken: the first is small */
	unsigned nr_shared;		/* objects from the class's shared slab */
	unsigned busy_at;		/* tc->nr_carves at the last refill or
					 * flush (lock) */
	/* Stats: objects into the bin by refills and out by flushes, so
	 * that allocations need no counter of their own (see tcache.c). */
	uint64_t nr_refilled, nr_flushed, nr_bump;
	uint64_t nr_alloc_slow, nr_free_remote;
};

/*
 * The fast paths touch only id and bins[] (and the objects). Everything
 * else - the slab lists, the page cache, the mailbox drain - happens
 * under `lock`, which the owner takes in its slow paths and another
 * thread takes to give the owner's memory back (malloc_trim) without its
 * help.
 */
struct tcache {
	/* Names the thread in its slabs' facts words (slab.h): unique
	 * among live caches, never 0 (tcache_none's: zero, so never
	 * written); TCACHE_NO_ID when all are taken, which only costs this
	 * thread's frees the fast path. First, in the line before the
	 * bins: the stand-in cache that threads without state free through
	 * (tcache_none, page-aligned where zp_bss_large places it) then has
	 * its id and every bin in one page. */
	uint32_t id;
	struct tbin bins[SC_NR] zp_cacheline_aligned;	/* a bin never
							 * straddles two lines */
	/* Objects remote freers posted to tell this thread that a full
	 * slab of its has room (see slab.h, SLAB_DELAYED). Written by
	 * other threads: a line of its own, in the page the bins end in,
	 * which every thread touches (a page of its own would be one more
	 * for a thread that allocates a few objects). */
	uintptr_t mailbox zp_cacheline_aligned;
	struct pcp_set *pcp zp_cacheline_aligned;	/* the thread's page
							 * cache (lock) */
	struct zp_lock lock;		/* the slow paths; see above */
	unsigned nr_slots_used;		/* slots handed to bins (lock) */
	unsigned nr_carves;		/* slabs carved from the zone (lock) */
	bool is_flushing;		/* tcache_flush is giving slabs up */
	/* The owner is in its remote chains: a signal handler's remote
	 * free must leave them alone (tcache.c). */
	bool chaining;
	bool use_shared;		/* not the process's first thread */
	uint64_t rbatch_mask[(SC_NR + 63) / 64];	/* classes with a
							 * remote chain */
	/* Classes whose cls[] entry this thread ever wrote (its owner
	 * sets bits; others read them): trim, exit and fork walk only
	 * these, so that a thread's untouched entries - 12 KiB for 120
	 * classes - stay pages nobody touched. */
	uint64_t cls_used[(SC_NR + 63) / 64];
	uint64_t nr_refill, nr_flush, nr_new, nr_mail, nr_adopt; /* stats */
	uint64_t nr_taken_emptied;	/* stats: take_emptied's hauls */
	struct tcache *reg_next, *reg_prev;	/* registry_lock */
	struct tclass cls[SC_NR];
	void *slots[TCACHE_SLOTS] zp_cacheline_aligned;
};

_Static_assert(sizeof(struct tbin) == 32 && sizeof(struct tbin) == SC_SCALE &&
	       offsetof(struct tcache, bins) == ZP_CACHELINE &&
	       _Alignof(struct tcache) >= 64,
	       "each bin lies in one cache line");

/* tc's memory must read as zero (fresh pages, or cleared by the
 * caller): nothing in it is written until the thread uses it. A cache
 * that went through tcache_fini may be initialised again as it is. */
void tcache_init(struct tcache *tc, struct pcp_set *pcp);
/* Thread exit: every held slab goes to its cache (orphans keep working
 * for frees from any thread, and the next thread to need a slab of the
 * class adopts them). May free pages into tc->pcp: drain that after. */
void tcache_fini(struct tcache *tc);
/* Gives up every held slab but keeps tc usable (malloc_trim). */
void tcache_flush(struct tcache *tc);
/* malloc_trim from another thread: every live thread but the caller
 * gives up its slabs with no object out and drains its page cache, its
 * bins untouched. */
void tcache_trim_others(struct tcache *self);
/* The owner's slow-path lock, for the malloc layer's page-cache calls. */
static inline void
tcache_lock(struct tcache *tc)
{
	zp_lock(&tc->lock);
}

static inline void
tcache_unlock(struct tcache *tc)
{
	zp_unlock(&tc->lock);
}

/*
 * The cache of a thread that has none (before its first allocation and
 * after its exit): every bin reads empty and full, and its id matches no
 * slab's owner, so the fast paths need no test of their own for it - a
 * malloc finds its bin empty and a free takes the remote path. The slow
 * paths return NULL for it, and the caller makes the thread's cache.
 */
extern struct tcache tcache_none;

void *tcache_alloc_slow(struct tcache *tc, unsigned sc);
/* For a thread with no cache (tcache_none) that is not the process's
 * first: an object of class sc from the class's shared slab (cleared for
 * n bytes when zero), while the thread has taken few; NULL when it is to
 * make a cache of its own now (which also finds out about a zone out of
 * memory). */
void *tcache_alloc_light(unsigned sc, size_t n, bool zero);
/* A local free into a full bin; p's live bit is already clear. */
void tcache_free_slow(struct tcache *tc, void *p, unsigned sc);
/* A free into a slab tc (maybe tcache_none) does not hold: clears p's
 * live bit atomically, aborting when it was not set. */
void tcache_free_remote(void *p, struct tcache *tc);
/* calloc: zeroed object; no memset when it comes untouched from a zero
 * slab. NULL when the zone is out of memory. */
void *tcache_alloc_zero(struct tcache *tc, unsigned sc, size_t n);

/* Takes the newest object of bin b into *p; false when it is empty. */
static zp_always_inline bool
tbin_pop(struct tbin *b, void **p)
{
	void **cur = b->cur;

	if (zp_unlikely(cur == b->base))
		return false;
	b->cur = --cur;
	*p = *cur;
	/* A bin holds objects, never NULL: callers' NULL checks of what
	 * malloc returns then test only what a slow path returned. */
	if (*p == NULL)
		__builtin_unreachable();
	zp_stat_inc(b->nr_alloc);
	return true;
}

/* The bin of class sc given as SC_SCALE * sc (sizeclass_find_scaled):
 * no shift to index. */
static zp_always_inline struct tbin *
tcache_bin_scaled(struct tcache *tc, size_t scaled)
{
	return (struct tbin *)((char *)tc->bins + scaled);
}

static zp_always_inline bool
tcache_pop(struct tcache *tc, unsigned sc, void **p)
{
	return tbin_pop(&tc->bins[sc], p);
}

/* The object of a bin entry, handed out: live. Every object in a bin is
 * of a slab this thread holds, so the bit is this thread's to write. */
static zp_always_inline void *
tcache_unbin(void *p)
{
	slab_set_live((uintptr_t)p);
	return p;
}

static zp_always_inline void *
tcache_alloc(struct tcache *tc, unsigned sc)
{
	void *p;

	if (zp_likely(tcache_pop(tc, sc, &p)))
		return tcache_unbin(p);
	return tcache_alloc_slow(tc, sc);
}

/* Pushes freed object p onto a bin with room. */
static zp_always_inline void
tbin_push(struct tbin *b, void *p)
{
	void **cur = b->cur;

	*cur = p;
	b->cur = cur + 1;
}

/*
 * Free of a slab object, given the facts word of the page p lies in (any
 * page of the slab: each carries the same); tc may be tcache_none (no
 * thread state): remote path. The owner is read racily, but a slab with an
 * object out changes hands only at its owner's own exit or trim (slab.h),
 * so a free that sees its own thread as the owner is right: the object's
 * bits are this thread's, and so is the bin it goes to.
 */
static zp_always_inline void
tcache_free(struct tcache *tc, void *p, uint64_t f)
{
	uintptr_t a = (uintptr_t)p;

	/* Tail calls, so the fast path saves no registers. The live word is
	 * read and written back with nothing between but the bit's test: a
	 * remote free may clear another bit of it atomically meanwhile. The
	 * remote path makes both checks itself. */
	if (zp_likely(slab_facts_owner(f) == tc->id)) {
		uint64_t *live = slab_live_word(a);
		uint64_t w = *live;
		struct tbin *b;

		/* Two branches: the first tests btr's carry flag itself. */
		if (zp_unlikely(!slab_bit_take(&w, a)))
			return slab_bad_free(p);
		if (zp_unlikely((a & 15) != 0))
			return slab_bad_free(p);
		*live = w;
		b = tcache_bin_scaled(tc, slab_facts_sc_scaled(f));
		if (zp_unlikely(b->cur == b->end))
			return tcache_free_slow(tc, p, slab_facts_sc(f));
		tbin_push(b, p);
		return;
	}
	tcache_free_remote(p, tc);
}

/* The same for a caller that holds the page's descriptor (slow paths). */
static inline void
tcache_free_page(struct tcache *tc, void *p, struct page *pg)
{
	tcache_free(tc, p, slab_facts(slab_of(pg)));
}

/* Per-class statistics summed over live threads and exited ones. */
struct tcache_class_stats {
	uint64_t nr_alloc_fast, nr_alloc_slow, nr_free_local, nr_free_remote;
};
void tcache_class_stats(unsigned sc, struct tcache_class_stats *out);
struct tcache_path_stats {
	uint64_t nr_threads, nr_refill, nr_flush, nr_new, nr_mail, nr_adopt;
	uint64_t nr_orphan, nr_rescue;
	/* Emptied slabs taken from other live threads (batches). */
	uint64_t nr_taken;
};
void tcache_path_stats(struct tcache_path_stats *out);

/* Fork: the registry lock (taken before the cache locks). */
void tcache_registry_prefork(void);
void tcache_registry_postfork_parent(void);
void tcache_registry_postfork_child(void);
/* Fork child, for the forking thread's cache: it is the registry's only
 * one now, and a freer that was posting to it in another thread is gone
 * and will never finish. */
void tcache_postfork_child(struct tcache *tc);

/* --- the rest of the slab layer's public API --------------------------- */

/* Gives empty slabs in the central caches back to the zone; bytes. */
size_t slab_trim(void);
void slab_prefork(void);
void slab_postfork_parent(void);
void slab_postfork_child(void);

struct outbuf;
/* /proc/slabinfo-style table plus path counters. */
void slab_print_slabinfo(struct outbuf *o);
/* One JSON object: {"classes":[...],"paths":{...}}. */
void slab_print_json(struct outbuf *o);
struct zp_slab_info;
/* Returns 0, or -1 when sc >= SC_NR. */
int slab_info(unsigned sc, struct zp_slab_info *out);

#endif /* ZP_SLAB_TCACHE_H */
