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
 * Per-thread state, reached through one initial-exec TLS pointer. It lives
 * in zone pages of kind PAGE_META so that creating it never recurses into
 * malloc. The tcache comes first: &ts->tc is NULL exactly when ts is, so
 * free() passes "no thread cache" to the slab layer without a branch.
 */
struct tstate {
	struct tcache tc;
	struct pcp_set pcp;
	struct page *self;		/* the META block holding this */
	uint64_t nr_medium_alloc;	/* stats: this thread's page-served */
	uint64_t nr_medium_free;
};

_Static_assert(offsetof(struct tstate, tc) == 0,
	       "free() relies on &ts->tc == ts");

extern __thread struct tstate *alloc_tls
	__attribute__((tls_model("initial-exec")));

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
void alloc_free_slow(void *p, struct page *pg);
void alloc_free_sized_slow(void *p, size_t n, const char *call);
void *alloc_oom(void);

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
/* Drain the caller's caches and give free pages back; bytes released. */
size_t alloc_trim(void);

static inline void *
alloc_malloc(size_t n)
{
	struct tstate *ts = alloc_tls;

	if (zp_likely(ts != NULL && n <= SC_MAX_SIZE)) {
		void *p = tcache_alloc(&ts->tc, sizeclass_of(n));

		if (zp_likely(p != NULL))
			return p;
		return alloc_oom();
	}
	return alloc_malloc_slow(n);
}

static inline void *
alloc_calloc(size_t nmemb, size_t size)
{
	struct tstate *ts = alloc_tls;
	size_t n;

	if (zp_unlikely(__builtin_mul_overflow(nmemb, size, &n)))
		return alloc_oom();
	if (zp_likely(ts != NULL && n <= SC_MAX_SIZE)) {
		void *p = tcache_alloc_zero(&ts->tc, sizeclass_of(n));

		if (zp_likely(p != NULL))
			return p;
		return alloc_oom();
	}
	return alloc_calloc_slow(n);
}

static inline void
alloc_free(void *p)
{
	struct page *pg = page_lookup(p);

	if (zp_likely(pg != NULL)) {
		struct page *head = pg;

		/* Most frees land on a slab's head page: the tail hop of a
		 * multi-page slab waits behind one compare. */
		if (zp_unlikely(pg->kind != PAGE_SLAB))
			head = page_head(pg);
		if (zp_likely(head->kind == PAGE_SLAB)) {
			/* A pointer to a struct is one to its first
			 * member, and NULL stays NULL. */
			tcache_free((struct tcache *)alloc_tls, p, head);
			return;
		}
	}
	alloc_free_slow(p, pg);
}

/*
 * free_sized and sized delete: n is what was asked for. The descriptor
 * read anyway for the owner check has the slab's class, so the size saves
 * no lookup; it costs a class compare off the critical path (the class of
 * n does not wait for the descriptor), and a size of another class, or a
 * medium or large block of another size (slow path), is fatal rather than
 * a free into the wrong bin. call names the caller in that message.
 */
static inline void
alloc_free_sized(void *p, size_t n, const char *call)
{
	/* The common sizes cost one compare before the class table. */
	if (zp_likely(n <= SC_SMALL_MAX) || n <= SC_MAX_SIZE) {
		unsigned sc = sizeclass_of(n);
		struct page *pg = page_lookup(p);

		if (zp_likely(pg != NULL)) {
			struct page *head = pg;

			if (zp_unlikely(pg->kind != PAGE_SLAB))
				head = page_head(pg);
			if (zp_likely(head->kind == PAGE_SLAB &&
				      slab_of(head)->sc == sc)) {
				tcache_free((struct tcache *)alloc_tls, p,
					    head);
				return;
			}
		}
	}
	alloc_free_sized_slow(p, n, call);
}

#endif /* ZP_MALLOC_ALLOC_H */
