/*
 * alloc.c - the slow and uncommon paths of size routing.
 * Owns:  medium blocks (exact zone page runs, head kind PAGE_MEDIUM),
 *        aligned allocation, realloc, usable size, the foreign-pointer
 *        handoff, placement flags (zp_malloc_flags), the size checks of
 *        sized frees.
 * Locks: none of its own; zone, slab, heap and large.c lock inside.
 * Path:  malloc -> alloc_malloc (alloc.h) -> alloc_malloc_slow
 *        -> init_tstate_slow | medium_alloc -> zone_alloc_exact
 *        | large_alloc; an empty bin -> alloc_small_slow -> heap_light
 *        -> heap_alloc (a class the thread uses lightly) | tcache
 *        realloc -> alloc_realloc -> (same class | zone_resize_exact_try
 *        | medium_move with headroom | medium_to_large | large_resize)
 *
 * Realloc growth: a page-served block grows in place when the zone has
 * the next pages free; otherwise it moves to a whole power-of-two run
 * (headroom for the next steps, no tail fragment); past ALLOC_REMAP_MIN it
 * moves instead into a mapping of its own, which mremap grows from then
 * on without copying.
 *
 * Every entry point here preserves errno on success and sets ENOMEM on
 * failure, the way glibc does.
 */
#include <errno.h>
#include <string.h>

#include "base/log.h"
#include "base/options.h"
#include "heap/heap.h"
#include "malloc/alloc.h"
#include "malloc/glibc_chunk.h"
#include "malloc/init.h"
#include "malloc/large.h"
#include "page/zone.h"
#include "zpmalloc.h"
#if ZP_HAVE_ZERO
#include "zero/zero.h"
#endif

/* glibc refuses anything larger than PTRDIFF_MAX, so do we. */
#define ALLOC_MAX_REQUEST ((size_t)PTRDIFF_MAX)
/* Blocks from this size up get a mapping of their own (large.c), as
 * glibc's from its mmap threshold: they cost their size in address space
 * and nothing more (zone pages carry 1/64 of descriptors, which a
 * program living under a tight RLIMIT_AS notices), a freed one is given
 * back at once or parked for the next, and parked extents serve blocks
 * of any size without page faults. Below it, zone pages: no system call
 * and no lock for the common sizes. */
#define ALLOC_MEDIUM_MAX ((size_t)1 << 20)
/* Where realloc growth turns a page-served block into a mapping of its
 * own (measured on bench/realloc: 64 KiB to 1 MiB all do better than
 * copying on, 256 KiB best in time and peak RSS). */
#define ALLOC_REMAP_MIN ((size_t)256 << 10)

static void
no_foreign_free(void *p)
{
	log_fatal("free(): invalid pointer %p", p);
}

static void *
no_foreign_realloc(void *p, size_t n)
{
	(void)n;
	log_fatal("realloc(): invalid pointer %p", p);
}

static size_t
no_foreign_usable_size(void *p)
{
	log_fatal("malloc_usable_size(): invalid pointer %p", p);
}

static const struct alloc_foreign_ops no_foreign = {
	.free = no_foreign_free,
	.realloc = no_foreign_realloc,
	.usable_size = no_foreign_usable_size,
};

/* Defined by shim.c in the shared library only: a weak reference, so the
 * handoff exists from the very first free, before any constructor runs. */
extern const struct alloc_foreign_ops shim_glibc_ops __attribute__((weak));

static const struct alloc_foreign_ops *foreign;

static const struct alloc_foreign_ops *
foreign_ops(void)
{
	if (foreign)
		return foreign;
	return &shim_glibc_ops ? &shim_glibc_ops : &no_foreign;
}

/* The one TLS word of the allocator; init.c sets and clears it. */
__thread struct tcache *alloc_tls = &tcache_none;

void
alloc_set_foreign(const struct alloc_foreign_ops *ops)
{
	foreign = ops;
}

/* A pointer that no zone holds and that is not a large block goes to
 * glibc only when glibc could have handed it out. */
static bool
is_plausibly_foreign(const void *p)
{
	return !zp_opt.abort_on_foreign && glibc_chunk_owns(p);
}

zp_cold void *
alloc_oom(void)
{
	errno = ENOMEM;
	return NULL;
}

/* How a freshly handed out span comes to read as zero, when it is not
 * known to already. */
static void
zero_fill(void *p, size_t n)
{
#if ZP_HAVE_ZERO
	zero_make_zero(p, n, /* release */ false);
#else
	memset(p, 0, n);
#endif
}

static size_t
pages_of(size_t n)
{
	return (ZP_MAX(n, 1) + ZP_PAGE_SIZE - 1) >> ZP_PAGE_SHIFT;
}

/* --- medium: exact runs of zone pages ------------------------------------ */

/*
 * The bytes last asked for, in the head descriptor's owner words (the
 * zone leaves them to the block's owner), so that realloc can tell a
 * growing buffer from a shrinking one when both stay within its pages.
 */
static void
medium_set_request(struct page *head, size_t n)
{
	head->owner[0] = n;
}

static size_t
medium_request(const struct page *head)
{
	return (size_t)head->owner[0];
}

static struct page *
medium_pages(struct tstate *ts, size_t n, size_t npages, unsigned gfp,
	     bool want_zero)
{
	bool zero;
	struct page *head;

	tcache_lock(&ts->tc);
	head = zone_alloc_exact(&ts->pcp, npages, gfp, PAGE_MEDIUM, &zero);
	tcache_unlock(&ts->tc);
	if (!head)
		return NULL;
	medium_set_request(head, n);
	if (want_zero && !zero)
		zero_fill(page_address(head), n);
	zp_stat_inc(ts->nr_medium_alloc);
	return head;
}

static void *
medium_alloc(struct tstate *ts, size_t n, unsigned gfp, bool want_zero)
{
	struct page *head = medium_pages(ts, n, pages_of(n), gfp, want_zero);

	return head ? page_address(head) : NULL;
}

/* The thread's page cache is under its tcache lock (another thread's
 * malloc_trim drains it). */
static void
medium_free(void *p, struct page *head)
{
	struct tcache *tc = alloc_cache();
	struct tstate *ts;

	if (zp_unlikely(p != page_address(head)))
		log_fatal("free(): invalid pointer %p", p);
	if (!tc) {
		zone_free_exact(NULL, head);
		return;
	}
	ts = tstate_of(tc);
	zp_stat_inc(ts->nr_medium_free);
	tcache_lock(tc);
	zone_free_exact(&ts->pcp, head);
	tcache_unlock(tc);
}

static zp_cold zp_noinline void
bad_zone_pointer(const char *call, void *p, struct page *head)
{
	/* A block already back with the zone, freed again by its address. */
	if ((head->kind == PAGE_BUDDY || head->kind == PAGE_PCP) &&
	    p == page_address(head))
		log_fatal("%s: double free detected %p", call, p);
	log_fatal("%s: invalid pointer %p", call, p);
}

/* --- a signal handler inside the allocator ------------------------------- */

/*
 * A signal handler that calls into the allocator while the code it
 * interrupted holds one of our locks must not wait for a lock (it may be
 * the one its own thread holds: base/lock.h). Its allocations that need
 * more than a bin fail with ENOMEM; its frees of anything but a slab
 * object, which all take locks, wait here for the next slow path of any
 * thread (the freeing thread may exit first, without one). They wait in
 * slots, so that nothing is written into a block before its free checks
 * it (a block the program made read-only, a wild pointer); only when
 * every slot is taken are further ones linked through their first word.
 */
#define DEFER_SLOTS	32

static struct {
	uintptr_t slot[DEFER_SLOTS];	/* 0: empty */
	uintptr_t overflow;		/* linked through the blocks */
	int nr;				/* about how many wait: 0 is none */
} deferred;

static void
defer_free(void *p)
{
	uintptr_t head;

	__atomic_add_fetch(&deferred.nr, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < DEFER_SLOTS; i++) {
		uintptr_t empty = 0;

		if (__atomic_compare_exchange_n(&deferred.slot[i], &empty,
						(uintptr_t)p, false,
						__ATOMIC_RELEASE,
						__ATOMIC_RELAXED))
			return;
	}
	head = __atomic_load_n(&deferred.overflow, __ATOMIC_RELAXED);
	do
		*(uintptr_t *)p = head;
	while (!__atomic_compare_exchange_n(&deferred.overflow, &head,
					    (uintptr_t)p, true,
					    __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

static zp_noinline void
free_deferred_all(void)
{
	uintptr_t p;

	for (unsigned i = 0; i < DEFER_SLOTS; i++) {
		p = __atomic_exchange_n(&deferred.slot[i], 0, __ATOMIC_ACQUIRE);
		if (p != 0) {
			__atomic_sub_fetch(&deferred.nr, 1, __ATOMIC_RELAXED);
			alloc_free((void *)p);
		}
	}
	p = __atomic_exchange_n(&deferred.overflow, 0, __ATOMIC_ACQUIRE);
	while (p != 0) {
		uintptr_t next = *(uintptr_t *)p;

		__atomic_sub_fetch(&deferred.nr, 1, __ATOMIC_RELAXED);
		alloc_free((void *)p);
		p = next;
	}
}

/* Called with no lock held. */
static inline void
free_deferred(void)
{
	if (zp_unlikely(__atomic_load_n(&deferred.nr, __ATOMIC_RELAXED) != 0))
		free_deferred_all();
}

void
alloc_free_deferred(void)
{
	free_deferred();
}

/* --- malloc, calloc, free ------------------------------------------------ */

/*
 * When the system says no (an address-space or commit limit), what we hold
 * free is the memory to give up: parked large blocks, the caller's cached
 * objects and pages, empty slabs, and whole free steps of a lazily mapped
 * zone, which unmapping returns to the system. True if anything went, and
 * the failed request is worth another try.
 */
static bool
release_held(void)
{
	return alloc_trim() != 0;
}

/*
 * A small request from the heap of light classes, or NULL: the
 * process's first thread takes its first HEAP_LIGHT_MAX objects of each
 * class from the shared heap, where lightly used classes share pages and
 * reuse each other's frees; after that the class has earned slabs of the
 * thread's own, whose paths take no lock. (Python's start-up asks for
 * ~60 classes above 512 bytes, a few objects each: their slabs' sum of
 * per-class peaks made it 570 KiB heavier than on glibc.)
 *
 * A class of up to HEAP_WIDE_MAX bytes stays longer: until
 * HEAP_LIGHT_MAX of its blocks are live at once, or for HEAP_WIDE_REQS
 * requests. With a few live, each would hold a page or more of a slab
 * to itself (small programs with a few live blocks in each of many such
 * classes: 1.44x glibc's peak when 16 requests decided; from the first
 * class above 128 bytes, not 1 KiB, the small-classes benchmark's zone
 * holds 152 KiB at its end, not 264; from the first class, not the
 * first above 128 bytes, Python's start-up holds 16 KiB less of slab
 * pages at its peak: its few live objects of six classes to 112 bytes
 * had a page each); the heap's lock and best fit cost ~35 ns a malloc
 * and free more than a slab's, so the requests bound what a class spends
 * on saving its pages (0.15 ms), and a class churned by the million, few
 * live (a buffer per message), gets its slabs after that. Larger blocks
 * would leave a 64 KiB chunk a quarter unused.
 *
 * Other threads start a class on its shared slab instead (tcache.c),
 * which keeps the heap's lock off the paths of a program that starts
 * threads by the thousand (larson: 15% more RSS when each new thread
 * began in the heap, its early objects outliving it).
 */
static void *
heap_light(struct tstate *ts, unsigned sc, size_t n, bool zero)
{
	unsigned size = sizeclass_size(sc);
	bool wide = size <= HEAP_WIDE_MAX;
	unsigned limit = wide ? HEAP_WIDE_REQS : HEAP_LIGHT_MAX;
	void *p;

	if (ts->tc.use_shared || ts->heap_uses[sc] >= limit)
		return NULL;
	if (wide && heap_live(sc) >= HEAP_LIGHT_MAX) {
		ts->heap_uses[sc] = limit;	/* for good */
		return NULL;
	}
	p = heap_alloc(sc, n, zero);
	if (p)
		ts->heap_uses[sc]++;
	return p;
}

static void *
route_alloc(struct tstate *ts, size_t n, bool zero)
{
	if (n <= SC_MAX_SIZE) {
		unsigned sc = sizeclass_of(n);
		void *p = heap_light(ts, sc, n, zero);

		if (p)
			return p;
		return zero ? tcache_alloc_zero(&ts->tc, sc, n)
			    : tcache_alloc(&ts->tc, sc);
	}
	if (n < ALLOC_MEDIUM_MAX)
		return medium_alloc(ts, n, 0, zero);
	return large_alloc(n, 0, 0, -1, zero);
}

/*
 * When the headroom under the memory limit falls below low or min, the
 * zones give back their free pages themselves; this gives back what the
 * zero-page engine holds: parked regions, and zero pages of live ones.
 */
void
alloc_reclaim_hook(void)
{
#if ZP_HAVE_ZERO
	zero_park_release(/* all */ true);
	zero_reclaim_now();
#endif
}

/* The helper thread's timer, while it runs: free pages idle longer than
 * the purge delay go, and the free path leaves its excess to this timer
 * (zone_purge_timed). */
bool
alloc_idle_hook(uint64_t interval_ns)
{
	return zone_purge_timed(interval_ns);
}

/* A small request of a thread with no cache yet: from the shared slabs
 * while it has taken few (tcache_alloc_light); NULL when it is to get a
 * cache of its own. */
static void *
alloc_light(size_t n, bool zero)
{
	if (alloc_cache() || !init_boot() || n > SC_MAX_SIZE)
		return NULL;
	return tcache_alloc_light(sizeclass_of(n), n, zero);
}

static void *
alloc_slow(size_t n, bool zero)
{
	int saved = errno;
	struct tstate *ts;
	void *p;

	if (n > ALLOC_MAX_REQUEST || zp_lock_held_any())
		return alloc_oom();
	free_deferred();
	p = alloc_light(n, zero);
	if (!p) {
		ts = init_tstate();
		if (!ts)
			return alloc_oom();
		p = route_alloc(ts, n, zero);
		if (!p && release_held())
			p = route_alloc(ts, n, zero);
	}
	zone_limit_run_hook();
#if ZP_HAVE_ZERO
	/* Work an interposed call noted (it may not start a thread). */
	zero_kick_pending();
#endif
	if (!p)
		return alloc_oom();
	errno = saved;
	return p;
}

zp_noinline void *
alloc_malloc_slow(size_t n)
{
	return alloc_slow(n, false);
}

zp_noinline void *
alloc_calloc_slow(size_t n)
{
	return alloc_slow(n, true);
}

/* The bin is empty: the refill, not another pop. */
zp_noinline void *
alloc_small_slow(size_t n, bool zero)
{
	struct tcache *tc = alloc_cache();
	unsigned sc = sizeclass_of(n);
	void *p = tc ? heap_light(tstate_of(tc), sc, n, zero) : NULL;

	if (!p)
		p = zero ? tcache_alloc_zero(alloc_tls, sc, n)
			 : tcache_alloc_slow(alloc_tls, sc);
	return p ? p : alloc_slow(n, zero);
}

/*
 * Everything but a slab object (slabs are all in the arena's zones):
 * medium blocks, large blocks, foreign pointers, misuse. The fast path's
 * descriptor is not trusted here: it may describe a step the zone gave
 * back, where some other mapping may now live.
 */
zp_noinline void
alloc_free_slow(void *p)
{
	struct page *pg;

	if (zp_lock_held_any()) {
		if (p)
			defer_free(p);
		return;
	}
	free_deferred();
	pg = page_lookup(p);
	if (pg) {
		struct page *head = page_head(pg);

		if (zp_likely(head->kind == PAGE_MEDIUM)) {
			medium_free(p, head);
			return;
		}
		if (head->kind == PAGE_SLAB) {
			tcache_free_page(alloc_tls, p, pg);
			return;
		}
		if (head->kind == PAGE_HEAP) {
			heap_free(p, head, "free");
			return;
		}
		bad_zone_pointer("free()", p, head);
	}
	if (!p || large_free(p))
		return;
	if (!is_plausibly_foreign(p))
		log_fatal("free(): invalid pointer %p", p);
	foreign_ops()->free(p);
}

/* --- sized free ---------------------------------------------------------- */

static zp_cold zp_noinline void
bad_size(const char *call, size_t n, void *p)
{
	log_fatal("%s(): invalid size %zu for %p", call, n, p);
}

/*
 * What the fast path left: a slab of another class (or a size no slab
 * serves), a medium block, whose head keeps the bytes last asked for
 * (realloc may have left it more pages than the size needs), a large
 * block, mapped to whole pages, and pointers that are not ours. A size
 * that passes goes the way free() goes.
 */
zp_noinline void
alloc_free_sized_slow(void *p, size_t n, const char *call)
{
	struct page *pg = page_lookup(p);
	size_t have;

	if (pg) {
		struct page *head = page_head(pg);

		if ((head->kind == PAGE_SLAB &&
		     (n > SC_MAX_SIZE ||
		      slab_of(pg)->sc != sizeclass_of(n))) ||
		    (head->kind == PAGE_MEDIUM && p == page_address(head) &&
		     medium_request(head) != n) ||
		    (head->kind == PAGE_HEAP &&
		     (n > SC_MAX_SIZE ||
		      heap_class(p, head, call) != sizeclass_of(n))))
			bad_size(call, n, p);
		alloc_free_slow(p);
		return;
	}
	if (!p)
		return;
	if (zp_lock_held_any()) {
		/* Deferred, unchecked: the size check takes the large
		 * blocks' lock. */
		alloc_free_slow(p);
		return;
	}
	have = large_usable_size(p);
	if (have && have != zp_align_up(n, ZP_PAGE_SIZE))
		bad_size(call, n, p);
	alloc_free_slow(p);
}

/* --- usable size --------------------------------------------------------- */

size_t
alloc_usable_size(const void *cp)
{
	void *p = (void *)cp;
	struct page *pg;
	size_t n;

	if (!p)
		return 0;
	pg = page_lookup(p);
	if (pg) {
		struct page *head = page_head(pg);

		if (head->kind == PAGE_SLAB)
			return slab_usable_size(head);
		if (head->kind == PAGE_MEDIUM && p == page_address(head))
			return head->npages << ZP_PAGE_SHIFT;
		if (head->kind == PAGE_HEAP)
			return sizeclass_size(heap_class(p, head,
							 "malloc_usable_size"));
		bad_zone_pointer("malloc_usable_size()", p, head);
	}
	n = large_usable_size(p);
	if (n)
		return n;
	if (!is_plausibly_foreign(p))
		log_fatal("malloc_usable_size(): invalid pointer %p", p);
	return foreign_ops()->usable_size(p);
}

/* --- realloc ------------------------------------------------------------- */

/* The general case: a new block, the contents, the old block freed. */
static void *
realloc_move(void *p, size_t old, size_t n)
{
	void *q = alloc_malloc(n);

	if (!q)
		return NULL;
	memcpy(q, p, ZP_MIN(old, n));
	alloc_free(p);
	return q;
}

static void *
realloc_slab(void *p, struct page *head, size_t n)
{
	size_t old;

	if (zp_unlikely(!slab_is_object_start(head, p)))
		log_fatal("realloc(): invalid pointer %p", p);
	slab_realloc_check(head, p);
	old = slab_usable_size(head);
	/* Staying in the same class costs nothing and wastes nothing (an
	 * aligned class holds the sizes its plain neighbour below does
	 * not). */
	if (sizeclass_holds(slab_of(head)->sc, n))
		return p;
	return realloc_move(p, old, n);
}

/* A heap block stays while n is of its class, as a slab object does. */
static void *
realloc_heap(void *p, struct page *head, size_t n)
{
	unsigned sc = heap_class(p, head, "realloc");

	if (sizeclass_holds(sc, n))
		return p;
	return realloc_move(p, sizeclass_size(sc), n);
}

/*
 * Pages for a medium block that realloc grows beyond its pages: the next
 * power of two. A buffer grown once is usually grown again, and a whole
 * buddy block leaves no tail fragment behind, so the next growth steps
 * cost nothing and the one after may take the block's free buddy in
 * place. Pages the program never touches stay the zero page or purged.
 */
static size_t
medium_grow_pages(size_t n)
{
	size_t need = pages_of(n);
	size_t cap = (size_t)1 << zp_order_ceil(need);

	return ZP_MIN(cap, (size_t)1 << ZP_MAX_ORDER);
}

static void *
medium_move(struct tstate *ts, void *p, struct page *head, size_t n)
{
	size_t have = head->npages << ZP_PAGE_SHIFT;
	struct page *nh;
	void *q;

	nh = medium_pages(ts, n, medium_grow_pages(n), 0, false);
	if (!nh)	/* without the headroom, then */
		nh = medium_pages(ts, n, pages_of(n), 0, false);
	if (!nh && release_held())
		nh = medium_pages(ts, n, pages_of(n), 0, false);
	if (!nh)
		return alloc_oom();
	q = page_address(nh);
	/* The whole usable size, as glibc and jemalloc copy it: programs
	 * that size buffers by malloc_usable_size fill it all. */
	memcpy(q, p, ZP_MIN(have, n));
	medium_free(p, head);
	return q;
}

/*
 * A buffer that realloc keeps growing past ALLOC_REMAP_MIN moves once into
 * a mapping of its own, a large block: from then on it grows by mremap,
 * which moves page tables instead of copying bytes and faulting in fresh
 * pages, and once freed its region is parked for the next large block.
 */
static void *
medium_to_large(void *p, struct page *head, size_t n)
{
	void *q = large_alloc(n, 0, 0, -1, /* zero */ false);

	if (!q && release_held())
		q = large_alloc(n, 0, 0, -1, /* zero */ false);
	if (!q)
		return alloc_oom();
	memcpy(q, p, head->npages << ZP_PAGE_SHIFT);
	medium_free(p, head);
	return q;
}

static void *
realloc_medium(void *p, struct page *head, size_t n)
{
	size_t have = head->npages, need = pages_of(n);
	struct tstate *ts;

	if (zp_unlikely(p != page_address(head)))
		log_fatal("realloc(): invalid pointer %p", p);
	if (n <= SC_MAX_SIZE || n >= ALLOC_MEDIUM_MAX)
		return realloc_move(p, have << ZP_PAGE_SHIFT, n);
	if (need <= have) {
		/* Shrinking gives the tail back; growing into pages the
		 * block already has is free. */
		if (need < have && n < medium_request(head))
			zone_resize_exact_try(head, need, NULL);
		medium_set_request(head, n);
		return p;
	}
	if (zone_resize_exact_try(head, medium_grow_pages(n), NULL) ||
	    zone_resize_exact_try(head, need, NULL)) {
		medium_set_request(head, n);
		return p;
	}
	if (n >= ALLOC_REMAP_MIN)
		return medium_to_large(p, head, n);
	ts = init_tstate();
	if (!ts)
		return alloc_oom();
	return medium_move(ts, p, head, n);
}

/* A large block stays one (resized by mremap) down to half the size that
 * made a growing buffer one; below that, pages serve it better. */
static void *
realloc_large(void *p, size_t old, size_t n)
{
	void *q = NULL;
	int saved = errno;

	if (n > ZP_MAX_BLOCK || n >= ALLOC_REMAP_MIN / 2)
		q = large_resize(p, n);
	if (!q)
		return realloc_move(p, old, n);
	/* Growth may have crossed a watermark: what the zones cannot give
	 * back themselves (parked regions, zero-page reclaim) goes now, not
	 * at some later malloc (no lock is held: alloc_realloc checked). */
	zone_limit_run_hook();
	errno = saved;
	return q;
}

void *
alloc_realloc(void *p, size_t n)
{
	struct page *pg;
	size_t old;

	if (!p)
		return alloc_malloc(n);
	if (n == 0) {
		/* glibc 2.36 frees and returns NULL, errno untouched. */
		alloc_free(p);
		return NULL;
	}
	if (zp_unlikely(n > ALLOC_MAX_REQUEST || zp_lock_held_any()))
		return alloc_oom();
	pg = page_lookup(p);
	if (zp_likely(pg != NULL)) {
		struct page *head = page_head(pg);

		if (zp_likely(head->kind == PAGE_SLAB))
			return realloc_slab(p, head, n);
		if (head->kind == PAGE_MEDIUM)
			return realloc_medium(p, head, n);
		if (head->kind == PAGE_HEAP)
			return realloc_heap(p, head, n);
		bad_zone_pointer("realloc()", p, head);
	}
	old = large_usable_size(p);
	if (old)
		return realloc_large(p, old, n);
	if (!is_plausibly_foreign(p))
		log_fatal("realloc(): invalid pointer %p", p);
	return foreign_ops()->realloc(p, n);
}

/* --- aligned allocation -------------------------------------------------- */

/*
 * Slab objects lie at multiples of their class size from a page-aligned
 * slab start plus a colour that is a multiple of the size's lowest bit
 * (slab.c), so a class whose size is a multiple of align hands out
 * aligned objects. The result is checked all the same: the slab layer
 * does not promise the layout, and a misplaced object just sends the
 * request on to pages.
 */
static unsigned
aligned_class(size_t align, size_t n)
{
	/* The classes of n's doubling are steps of 16 bytes up to 128, of
	 * 2^(k-2) up to 512 and of 2^(k-3) above (the aligned classes among
	 * them above 1 KiB; sizeclass.h), so the first one aligned to align
	 * is n rounded up to the coarser of the two; a power of two when
	 * align passes the doubling. */
	size_t step = n <= 128 ? 16 : (size_t)1 << (zp_log2_floor(n - 1) -
						    (n > 512 ? 3 : 2));
	size_t s = zp_align_up(ZP_MAX(n, (size_t)1), ZP_MAX(align, step));

	return s > 1024 ? sizeclass_aligned_of(s) : sizeclass_of(s);
}

static void *
aligned_slab(struct tstate *ts, size_t align, size_t n)
{
	unsigned sc = aligned_class(align, n);
	void *p;

	p = tcache_alloc(&ts->tc, sc);
	if (p && ((uintptr_t)p & (align - 1))) {
		alloc_free(p);
		p = NULL;
	}
	return p;
}

/*
 * A buddy block is aligned to its own size, and an exact run starts a
 * block of the next power of two pages, so asking for at least align
 * bytes gives an aligned start; the tail beyond n is then given back.
 */
static void *
aligned_pages(struct tstate *ts, size_t align, size_t n, unsigned gfp)
{
	size_t npages = pages_of(n);
	size_t want = ZP_MAX(npages, align >> ZP_PAGE_SHIFT);
	struct page *head;
	bool zero;
	void *p;

	tcache_lock(&ts->tc);
	head = zone_alloc_exact(&ts->pcp, want, gfp, PAGE_MEDIUM, &zero);
	p = head ? page_address(head) : NULL;
	if (p && ((uintptr_t)p & (align - 1))) {
		zone_free_exact(&ts->pcp, head);
		p = NULL;
	}
	tcache_unlock(&ts->tc);
	if (!p)
		return NULL;
	/* Keeping the whole run is correct too, just larger. */
	if (want != npages)
		zone_resize_exact_try(head, npages, &zero);
	medium_set_request(head, n);
	zp_stat_inc(ts->nr_medium_alloc);
	return p;
}

static void *
aligned_route(struct tstate *ts, size_t align, size_t n)
{
	void *p = NULL;

	if (n <= SC_MAX_SIZE && align <= ZP_PAGE_SIZE)
		p = aligned_slab(ts, align, n);
	if (!p && n < ALLOC_MEDIUM_MAX && align <= ZP_MAX_BLOCK)
		p = aligned_pages(ts, align, n, 0);
	/* A mapping of its own even for size 0: glibc returns a unique
	 * pointer for memalign(align, 0) however large align is. */
	if (!p)
		p = large_alloc(ZP_MAX(n, 1), align, 0, -1, /* zero */ false);
	return p;
}

/* align is a power of two; callers check and round it (shim.c). */
void *
alloc_aligned(size_t align, size_t n)
{
	int saved = errno;
	struct tstate *ts;
	void *p;

	if (align <= 16)
		return alloc_malloc(n);
	if (align > ALLOC_MAX_REQUEST || n > ALLOC_MAX_REQUEST - align ||
	    zp_lock_held_any())
		return alloc_oom();
	ts = init_tstate();
	if (!ts)
		return alloc_oom();
	p = aligned_route(ts, align, n);
	if (!p && release_held())
		p = aligned_route(ts, align, n);
	if (!p)
		return alloc_oom();
	errno = saved;
	return p;
}

/* A slab object of (align, n) is of the class aligned_slab picks; pages
 * and large blocks are checked as free_sized checks them. */
void
alloc_free_aligned_sized(void *p, size_t align, size_t n, const char *call)
{
	struct page *pg, *head;

	if (align <= 16) {
		alloc_free_sized(p, n, call);
		return;
	}
	if (!zp_is_pow2(align) || ((uintptr_t)p & (align - 1)))
		log_fatal("%s(): invalid alignment %zu for %p", call, align, p);
	pg = page_lookup(p);
	head = pg ? page_head(pg) : NULL;
	if (!head || head->kind != PAGE_SLAB) {
		alloc_free_sized_slow(p, n, call);
		return;
	}
	if (n > SC_MAX_SIZE || align > ZP_PAGE_SIZE ||
	    slab_of(pg)->sc != aligned_class(align, n))
		bad_size(call, n, p);
	tcache_free_page(alloc_tls, p, pg);
}

/* --- placement flags (zp_malloc_flags) ----------------------------------- */

static unsigned
gfp_of(unsigned zp_flags)
{
	unsigned gfp = zp_flags & ~0xffu;	/* ZP_NODE(n) == GFP_NODE(n) */

	if (zp_flags & ZP_LOW32)
		gfp |= GFP_LOW32;
	if (zp_flags & ZP_NODE_EXACT)
		gfp |= GFP_NODE_EXACT;
	return gfp;
}

_Static_assert(ZP_NODE(3) == GFP_NODE(3), "node encodings agree");

static void *
placed_route(struct tstate *ts, size_t n, unsigned gfp, bool zero)
{
	int node = (int)(gfp >> GFP_NODE_SHIFT) - 1;

	if (n <= ZP_MAX_BLOCK)
		return medium_alloc(ts, n, gfp, zero);
	return large_alloc(n, 0, gfp & GFP_LOW32 ? LARGE_LOW32 : 0, node,
			   zero);
}

/*
 * Placement (LOW32, a node) is a property of zone pages, which slab
 * objects share with other requests, so placed requests take whole pages:
 * the price of the guarantee, as with numa_alloc_onnode.
 */
void *
alloc_flags(size_t n, unsigned zp_flags)
{
	bool zero = zp_flags & ZP_ZERO;
	unsigned gfp = gfp_of(zp_flags);
	int saved = errno;
	struct tstate *ts;
	void *p;

	if (!gfp)
		return zero ? alloc_calloc(1, n) : alloc_malloc(n);
	if (n > ALLOC_MAX_REQUEST || zp_lock_held_any())
		return alloc_oom();
	ts = init_tstate();
	if (!ts)
		return alloc_oom();
	p = placed_route(ts, n, gfp, zero);
	if (!p && release_held())
		p = placed_route(ts, n, gfp, zero);
	if (!p)
		return alloc_oom();
	errno = saved;
	return p;
}

/* --- trim ---------------------------------------------------------------- */

size_t
alloc_trim(void)
{
	struct tcache *tc = alloc_cache();
	size_t released;

	if (!init_is_booted() || zp_lock_held_any())
		return 0;
	free_deferred();
	if (tc) {
		/* Held slabs go back to their caches, so that empty ones
		 * can go back to the zone, and cached pages with them. */
		tcache_flush(tc);
		tcache_lock(tc);
		pcp_drain(&tstate_of(tc)->pcp);
		tcache_unlock(tc);
	}
	/* And every other thread's, without its help: objects freed into
	 * an idle thread's slabs are free memory too. */
	tcache_trim_others(tc);
	/* Before the pause: the heap gives nothing back while this thread
	 * holds any of our locks (a signal handler may have interrupted
	 * it), and the pause holds the zones' purge locks. */
	released = heap_trim();
	zone_purge_pause();
	released += slab_trim();
	zone_purge_resume();
	released += zone_purge(/* all */ true);
#if ZP_HAVE_ZERO
	released += zero_park_release(/* all */ true);
#endif
	zone_limit_run_hook();
	return released;
}
