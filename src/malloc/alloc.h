/*
 * alloc.h - size routing: the inline fast paths behind malloc and free.
 *
 * A request goes to one of three places by size: a slab size class
 * through the thread's tcache (<= SC_MAX_SIZE), an exact run of zone pages
 * (<= ZP_MAX_BLOCK, "medium"), or its own mapping (large.c). free() finds
 * the owner from the page descriptor: slab and medium pages are in a zone;
 * a NULL descriptor means a large block or a pointer someone else handed
 * out (glibc, before the preload took effect).
 *
 * The common cases (a small malloc with a live thread state, a free of a
 * slab object) are a few instructions here; everything else tail-calls a
 * cold function in alloc.c.
 */
#ifndef ZP_MALLOC_ALLOC_H
#define ZP_MALLOC_ALLOC_H

#include <stddef.h>

#include "base/util.h"
#include "page/page.h"
#include "page/pcp.h"
#include "slab/sizeclass.h"
#include "slab/tcache.h"

/*
 * Per-thread state. It lives in zone pages of kind PAGE_META so that
 * creating it never recurses into malloc, and it is written only as it is
 * used: a thread that touches three size classes dirties a page or two of
 * it. The tcache comes last because its slot array is most of the state.
 */
struct tstate {
	struct pcp_set pcp;		/* under tc.lock */
	struct page *self;		/* the META block holding this */
	uint64_t nr_medium_alloc;	/* stats: this thread's page-served */
	uint64_t nr_medium_free;
	/* Requests of each class the heap served this thread; a class that
	 * left it for its live blocks reads as out of requests (alloc.c). */
	uint16_t heap_uses[SC_NR_PLAIN];
	struct tcache tc;
};

/* The one TLS word of the allocator: the thread's tcache, tcache_none
 * before its first allocation and after its exit (never NULL, so that the
 * fast paths test nothing for it). */
extern __thread struct tcache *alloc_tls
	__attribute__((tls_model("initial-exec")));

static inline struct tstate *
tstate_of(struct tcache *tc)
{
	return zp_container_of(tc, struct tstate, tc);
}

/* The thread's own cache, or NULL when it has none (slow paths). */
static inline struct tcache *
alloc_cache(void)
{
	struct tcache *tc = alloc_tls;

	return tc == &tcache_none ? NULL : tc;
}

/* Foreign pointers (not in a zone, not a large block) are handed to these.
 * The shim points them at glibc; without the shim (unit tests) a foreign
 * pointer is an invalid one. */
struct alloc_foreign_ops {
	void (*free)(void *p);
	void *(*realloc)(void *p, size_t n);
	size_t (*usable_size)(void *p);
};
void alloc_set_foreign(const struct alloc_foreign_ops *ops);

/* Slow paths (alloc.c). Each preserves errno on success and sets ENOMEM on
 * failure, so the shim never has to. */
void *alloc_malloc_slow(size_t n);
void *alloc_calloc_slow(size_t n);
/* An empty bin of a small size (zeroed for calloc): a refill, or for a
 * thread without a cache (or a zone out of memory), the slow path above.
 * No class: the inline path then keeps nothing live for the call. */
void *alloc_small_slow(size_t n, bool zero);
void alloc_free_slow(void *p);
void alloc_free_sized_slow(void *p, size_t n, const char *call);
void *alloc_oom(void);
/* Frees a signal handler left for later (alloc.c); thread exit. */
void alloc_free_deferred(void);

/* The remaining entry points of the shim (alloc.c). */
void *alloc_realloc(void *p, size_t n);
void *alloc_aligned(size_t align, size_t n);
/* Free of a block alloc_aligned(align, n) returned; a wrong size or
 * alignment (one that is not a power of two too) is fatal, reported as
 * call's. */
void alloc_free_aligned_sized(void *p, size_t align, size_t n,
			      const char *call);
size_t alloc_usable_size(const void *p);
void *alloc_flags(size_t n, unsigned zp_flags);
/* The memory limit's reaction beyond the zones (zone_limit_set_hook). */
void alloc_reclaim_hook(void);
/* The background thread's idle purge (zero_set_idle_hook). */
bool alloc_idle_hook(uint64_t interval_ns);
/* Drain the caller's caches and give free pages back; bytes released. */
size_t alloc_trim(void);

/* The bin pop alone: false (and *p untouched) where anything else would
 * be needed. For callers whose slow path must run code of their own after
 * a failure (operator new), so that their fast path makes no call and
 * saves no register. */
static zp_always_inline bool
alloc_malloc_fast(size_t n, void **p)
{
	size_t scaled;

	if (zp_likely(sizeclass_find_scaled(n, &scaled)) &&
	    zp_likely(tbin_pop(tcache_bin_scaled(alloc_tls, scaled), p))) {
		tcache_unbin(*p);
		return true;
	}
	return false;
}

static inline void *
alloc_malloc(size_t n)
{
	size_t scaled;
	void *p;

	if (zp_likely(sizeclass_find_scaled(n, &scaled))) {
		if (zp_likely(tbin_pop(tcache_bin_scaled(alloc_tls, scaled),
				       &p)))
			return tcache_unbin(p);
		return alloc_small_slow(n, false);
	}
	return alloc_malloc_slow(n);
}

static inline void *
alloc_calloc(size_t nmemb, size_t size)
{
	size_t scaled;
	size_t n;

	if (zp_unlikely(__builtin_mul_overflow(nmemb, size, &n)))
		return alloc_oom();
	/* An object from the bin is cleared for the bytes asked for only;
	 * the slow path takes untouched objects of zero slabs unwritten. */
	if (zp_likely(sizeclass_find_scaled(n, &scaled))) {
		void *p;

		if (zp_likely(tbin_pop(tcache_bin_scaled(alloc_tls, scaled),
				       &p)))
			return memset(tcache_unbin(p), 0, n);
		return alloc_small_slow(n, true);
	}
	return alloc_calloc_slow(n);
}

static inline void
alloc_free(void *p)
{
	uint64_t f = page_facts_fast(p);

	/* Every page of a slab has its facts: no hop to a head page. */
	if (zp_likely(f != 0)) {
		tcache_free(alloc_tls, p, f);
		return;
	}
	alloc_free_slow(p);
}

/*
 * free_sized and sized delete: n is what was asked for. The facts word
 * read anyway for the owner check has the slab's class, so the size saves
 * no lookup; it costs one subtract and compare against the class's range
 * (a branch predicted taken, off the store's path). A size of another
 * class, or a medium or large block of another size (slow path), is
 * fatal rather than a free into the wrong bin. call names the caller in
 * that message.
 */
static inline void
alloc_free_sized(void *p, size_t n, const char *call)
{
	uint64_t f = page_facts_fast(p);

	if (zp_likely(f != 0 &&
		      sizeclass_holds_scaled(slab_facts_sc_scaled(f), n))) {
		tcache_free(alloc_tls, p, f);
		return;
	}
	alloc_free_sized_slow(p, n, call);
}

#endif /* ZP_MALLOC_ALLOC_H */
