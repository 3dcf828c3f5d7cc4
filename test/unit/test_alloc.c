/*
 * test_alloc.c - size routing, realloc paths, aligned allocation, placement
 * flags and bad-pointer detection of the malloc layer, called directly
 * (no interposition: this program's own malloc stays glibc's).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"
#include "heap/heap.h"
#include "malloc/alloc.h"
#include "malloc/init.h"
#include "malloc/large.h"
#include "os/os.h"
#include "page/zone.h"
#include "page/zone_priv.h"
#include "zero/zero.h"
#include "zpmalloc.h"
#include "watchdog.h"

#define MiB ((size_t)1 << 20)

static void
boot(void)
{
	cr_assert(init_boot());
	cr_assert_not_null(init_tstate());
}

TestSuite(alloc, .init = boot);

static void
fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 7 + seed);
}

static bool
check(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(i * 7 + seed))
			return false;
	return true;
}

static enum page_kind
kind_of(void *p)
{
	struct page *pg = page_lookup(p);

	return pg ? (enum page_kind)page_head(pg)->kind : PAGE_UNUSED;
}

/* A thread's first HEAP_LIGHT_MAX requests of a class come from the
 * shared heap, the rest from its slabs; either way the block is of the
 * class's size, and frees, reallocs and sized frees treat both alike. */
Test(alloc, small_sizes_route_to_the_heap_then_to_slabs)
{
	/* No realloc target below is of a class of the list. */
	size_t sizes[] = { 1, 100, 1000, 4096, SC_MAX_SIZE };
	void *v[HEAP_LIGHT_MAX + 1];

	for (size_t i = 0; i < ZP_ARRAY_SIZE(sizes); i++) {
		size_t n = sizes[i], size = sizeclass_size(sizeclass_of(n));

		for (unsigned k = 0; k <= HEAP_LIGHT_MAX; k++) {
			v[k] = alloc_malloc(n);
			cr_assert_not_null(v[k]);
			cr_assert_eq(kind_of(v[k]),
				     k < HEAP_LIGHT_MAX ? PAGE_HEAP : PAGE_SLAB,
				     "size %zu, request %u", n, k);
			cr_assert_eq(alloc_usable_size(v[k]), size);
			fill(v[k], n, k);
		}
		for (unsigned k = 0; k <= HEAP_LIGHT_MAX; k++) {
			cr_assert(check(v[k], n, k));
			/* Within its class a block stays; past it, it moves
			 * with its contents. */
			cr_assert_eq(alloc_realloc(v[k], size), v[k]);
			v[k] = alloc_realloc(v[k], size + 1);
			cr_assert(check(v[k], n, k));
			alloc_free_sized(v[k], size + 1, "free_sized");
		}
	}
}

/* malloc_trim's path gives back the heap's free pages too: blocks of
 * light classes freed between live ones leave whole free pages in the
 * heap's chunks, resident until the trim. */
Test(alloc, trim_gives_back_the_heap_s_free_pages)
{
	enum { CLASSES = 12, EACH = 10 };
	char *v[CLASSES * EACH];
	struct heap_stats st0, st;
	unsigned n = 0;

	for (unsigned k = 0; k < EACH; k++)
		for (unsigned c = 0; c < CLASSES; c++) {
			size_t size = 160 + 256 * c;

			v[n] = alloc_malloc(size);
			cr_assert_eq(kind_of(v[n]), PAGE_HEAP);
			memset(v[n++], 0, size);
		}
	for (unsigned i = 0; i < n; i++)
		if (i % 16)
			alloc_free(v[i]);
	heap_get_stats(&st0);
	cr_assert_gt(alloc_trim(), 0);
	heap_get_stats(&st);
	cr_assert_geq(st.purged_bytes - st0.purged_bytes, 8 * ZP_PAGE_SIZE,
		      "whole free pages inside the chunks went back");
	for (unsigned i = 0; i < n; i += 16)
		alloc_free(v[i]);
}

/* A class of up to HEAP_WIDE_MAX bytes stays in the heap for
 * HEAP_WIDE_REQS requests while few of its blocks are live, and leaves
 * it for good once HEAP_LIGHT_MAX are; a larger class leaves after
 * HEAP_LIGHT_MAX requests, live or not. The smallest classes too: a page
 * of slab for a handful of 32-byte objects was Python's start-up's. */
Test(alloc, classes_stay_in_the_heap_until_many_are_live)
{
	size_t wide = 3000, churned = 300, small = 32, big = 8000;
	void *v[HEAP_LIGHT_MAX + 1], *p;

	cr_assert_leq(sizeclass_size(sizeclass_of(wide)), HEAP_WIDE_MAX);
	cr_assert_gt(sizeclass_size(sizeclass_of(big)), HEAP_WIDE_MAX);
	for (unsigned k = 0; k <= HEAP_WIDE_REQS; k++) {
		size_t sizes[] = { churned, small };

		for (unsigned i = 0; i < ZP_ARRAY_SIZE(sizes); i++) {
			p = alloc_malloc(sizes[i]);
			cr_assert_eq(kind_of(p),
				     k < HEAP_WIDE_REQS ? PAGE_HEAP
							: PAGE_SLAB,
				     "%zu bytes, request %u", sizes[i], k);
			alloc_free(p);
		}
	}
	for (unsigned k = 0; k <= HEAP_LIGHT_MAX; k++) {
		p = alloc_malloc(big);
		cr_assert_eq(kind_of(p),
			     k < HEAP_LIGHT_MAX ? PAGE_HEAP : PAGE_SLAB,
			     "%zu bytes, request %u", big, k);
		alloc_free(p);
	}
	for (unsigned k = 0; k <= HEAP_LIGHT_MAX; k++) {
		v[k] = alloc_malloc(wide);
		cr_assert_eq(kind_of(v[k]),
			     k < HEAP_LIGHT_MAX ? PAGE_HEAP : PAGE_SLAB,
			     "live %u", k);
	}
	for (unsigned k = 0; k <= HEAP_LIGHT_MAX; k++)
		alloc_free(v[k]);
	/* Nothing of the class is live now: it stays on its slabs. */
	p = alloc_malloc(wide);
	cr_assert_eq(kind_of(p), PAGE_SLAB);
	alloc_free(p);
}

/* The kind of page another thread's first 700-byte object lies in, once
 * the thread has a cache of its own (its first objects come from shared
 * slabs without one, heap or no heap). */
static void *
other_thread_alloc(void *arg)
{
	void *small[40], *p;
	enum page_kind kind;

	(void)arg;
	for (unsigned i = 0; i < ZP_ARRAY_SIZE(small); i++)
		small[i] = alloc_malloc(32);
	cr_assert_not_null(alloc_cache(), "the thread made a cache");
	p = alloc_malloc(700);
	kind = kind_of(p);
	alloc_free(p);
	for (unsigned i = 0; i < ZP_ARRAY_SIZE(small); i++)
		alloc_free(small[i]);
	return (void *)(uintptr_t)kind;
}

/* Only the process's first thread starts its classes in the heap: the
 * others start them on the classes' shared slabs. */
Test(alloc, other_threads_keep_out_of_the_heap)
{
	pthread_t t;
	void *p = alloc_malloc(700), *kind;

	cr_assert_eq(kind_of(p), PAGE_HEAP);
	cr_assert_eq(pthread_create(&t, NULL, other_thread_alloc, NULL), 0);
	cr_assert_eq(pthread_join(t, &kind), 0);
	cr_assert_neq((enum page_kind)(uintptr_t)kind, PAGE_HEAP);
	alloc_free(p);
}

Test(alloc, calloc_of_a_heap_block_clears_what_a_free_left)
{
	unsigned char *p = alloc_malloc(3000), *q;

	cr_assert_eq(kind_of(p), PAGE_HEAP);
	memset(p, 0xff, 3000);
	alloc_free(p);
	q = alloc_calloc(1, 2990);
	cr_assert_eq(q, p);
	for (size_t i = 0; i < 2990; i++)
		CHECK_OP(q[i], ==, 0, "byte %zu", i);
	alloc_free(q);
}

Test(alloc, medium_sizes_route_to_exact_pages)
{
	size_t sizes[] = { SC_MAX_SIZE + 1, 20000, 5 * ZP_PAGE_SIZE,
			   MiB / 2, MiB - 1 };

	for (size_t i = 0; i < ZP_ARRAY_SIZE(sizes); i++) {
		unsigned char *p = alloc_malloc(sizes[i]);
		struct page *head;

		cr_assert_not_null(p);
		head = page_head(page_lookup(p));
		cr_assert_eq(head->kind, PAGE_MEDIUM, "size %zu", sizes[i]);
		cr_assert_eq((void *)p, page_address(head));
		cr_assert_eq(alloc_usable_size(p),
			     zp_align_up(sizes[i], ZP_PAGE_SIZE));
		p[sizes[i] - 1] = 1;
		alloc_free(p);
	}
}

Test(alloc, large_sizes_get_their_own_mapping)
{
	unsigned char *p = alloc_malloc(MiB);

	cr_assert_not_null(p);
	cr_assert_null(page_lookup(p));
	cr_assert_eq(large_usable_size(p), MiB);
	alloc_free(p);
	p = alloc_malloc(ZP_MAX_BLOCK + 1);
	cr_assert_not_null(p);
	cr_assert_null(page_lookup(p));
	cr_assert_eq(large_usable_size(p),
		     zp_align_up(ZP_MAX_BLOCK + 1, ZP_PAGE_SIZE));
	p[ZP_MAX_BLOCK] = 1;
	alloc_free(p);
	cr_assert_eq(large_usable_size(p), 0);
}

Test(alloc, calloc_zeroes_every_route)
{
	size_t sizes[] = { 24, 3000, SC_MAX_SIZE, 70000, 6 * MiB };

	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < ZP_ARRAY_SIZE(sizes); i++) {
			unsigned char *p = alloc_malloc(sizes[i]);

			memset(p, 0xee, sizes[i]);
			alloc_free(p);
			p = alloc_calloc(1, sizes[i]);
			cr_assert_not_null(p);
			for (size_t b = 0; b < sizes[i]; b++)
				if (p[b])
					cr_assert_fail("size %zu byte %zu",
						       sizes[i], b);
			memset(p, 0xee, sizes[i]);
			alloc_free(p);
		}
	}
}

Test(alloc, calloc_overflow_is_enomem)
{
	errno = 0;
	cr_assert_null(alloc_calloc(SIZE_MAX / 4, 8));
	cr_assert_eq(errno, ENOMEM);
}

Test(alloc, huge_requests_fail_with_enomem_and_errno_survives_success)
{
	void *p;

	errno = 0;
	cr_assert_null(alloc_malloc((size_t)PTRDIFF_MAX + 1));
	cr_assert_eq(errno, ENOMEM);
	errno = 77;
	p = alloc_malloc(100000);
	cr_assert_not_null(p);
	alloc_free(p);
	p = alloc_malloc(10 * MiB);
	alloc_free(p);
	cr_assert_eq(errno, 77);
}

Test(alloc, realloc_within_a_class_stays_in_place)
{
	unsigned char *p = alloc_malloc(100);
	size_t usable = alloc_usable_size(p);

	fill(p, 100, 1);
	cr_assert_eq(alloc_realloc(p, usable), p);
	cr_assert_eq(alloc_realloc(p, usable - 1), p);
	cr_assert(check(p, 100, 1));
	alloc_free(p);
}

Test(alloc, realloc_slab_to_medium_to_large_and_back)
{
	size_t steps[] = { 10, 5000, SC_MAX_SIZE + 1, 300000, ZP_MAX_BLOCK,
			   ZP_MAX_BLOCK + 1, 12 * MiB, 5 * MiB, MiB, 2000, 5 };
	unsigned char *p = NULL;
	size_t have = 0;

	for (size_t i = 0; i < ZP_ARRAY_SIZE(steps); i++) {
		p = alloc_realloc(p, steps[i]);
		cr_assert_not_null(p, "to %zu", steps[i]);
		cr_assert(check(p, ZP_MIN(have, steps[i]), 3), "%zu -> %zu",
			  have, steps[i]);
		fill(p, steps[i], 3);
		have = steps[i];
	}
	alloc_free(p);
}

Test(alloc, realloc_medium_shrinks_in_place)
{
	unsigned char *p = alloc_malloc(40 * ZP_PAGE_SIZE);
	struct page *head = page_head(page_lookup(p));

	fill(p, 40 * ZP_PAGE_SIZE, 9);
	cr_assert_eq(alloc_realloc(p, 21 * ZP_PAGE_SIZE), p);
	cr_assert_eq(head->npages, 21);
	cr_assert(check(p, 21 * ZP_PAGE_SIZE, 9));
	alloc_free(p);
}

Test(alloc, realloc_medium_grows_in_place_when_the_next_pages_are_free)
{
	/* A fresh 64-page block split by hand: free the tail, then grow
	 * back into it. */
	unsigned char *p = alloc_malloc(64 * ZP_PAGE_SIZE);
	unsigned char *q;

	cr_assert_eq(alloc_realloc(p, 8 * ZP_PAGE_SIZE), p);
	fill(p, 8 * ZP_PAGE_SIZE, 4);
	q = alloc_realloc(p, 30 * ZP_PAGE_SIZE);
	cr_assert_eq(q, p, "grew by moving although the tail was free");
	cr_assert(check(q, 8 * ZP_PAGE_SIZE, 4));
	alloc_free(q);
}

Test(alloc, realloc_growth_by_small_steps_copies_once_per_doubling)
{
	/* A neighbour allocated after every step takes whatever the zone
	 * has next to the buffer, as interleaved buffers do in programs:
	 * only the headroom of a moved buffer keeps it from moving again
	 * on nearly every step. Moved past 256 KiB, the buffer becomes a
	 * mapping of its own and grows by mremap, which may move it but
	 * copies nothing. */
	enum { MAX_STEPS = 128 };
	static void *nb[MAX_STEPS];
	unsigned char *p = alloc_malloc(SC_MAX_SIZE), *q;
	size_t len = SC_MAX_SIZE, nr = 0, copies = 0;

	fill(p, len, 6);
	while (len < 8 * MiB && nr < MAX_STEPS) {
		size_t next = len + len / 8 + 100;
		bool was_pages = kind_of(p) != PAGE_UNUSED;

		q = alloc_realloc(p, next);
		cr_assert_not_null(q);
		cr_assert(check(q, len, 6), "contents lost at %zu", next);
		copies += was_pages && q != p;
		for (size_t i = len; i < next; i++)
			q[i] = (unsigned char)(i * 7 + 6);
		nb[nr++] = alloc_malloc(6 * ZP_PAGE_SIZE);
		p = q;
		len = next;
	}
	/* slab -> pages, a move per doubling from 16 to 256 KiB, pages ->
	 * mapping. */
	cr_expect_leq(copies, 1 + 4 + 1, "%zu copies in %zu steps", copies,
		      nr);
	for (size_t i = 0; i < nr; i++)
		alloc_free(nb[i]);
	alloc_free(p);
}

Test(alloc, realloc_growth_within_headroom_stays_and_shrink_trims)
{
	unsigned char *p = alloc_malloc(8 * ZP_PAGE_SIZE), *q;
	size_t cap;

	fill(p, 8 * ZP_PAGE_SIZE, 2);
	q = alloc_realloc(p, 9 * ZP_PAGE_SIZE);
	cr_assert_not_null(q);
	cap = alloc_usable_size(q);
	cr_assert_eq(cap, 16 * ZP_PAGE_SIZE, "growth left no headroom");
	cr_assert(check(q, 8 * ZP_PAGE_SIZE, 2));
	fill(q, cap, 2);
	cr_assert_eq(alloc_realloc(q, 12 * ZP_PAGE_SIZE), q);
	cr_assert_eq(alloc_realloc(q, cap), q);
	cr_assert_eq(alloc_usable_size(q), cap);
	/* Asking for less than last time is a shrink: the tail goes. */
	cr_assert_eq(alloc_realloc(q, 6 * ZP_PAGE_SIZE), q);
	cr_assert_eq(alloc_usable_size(q), 6 * ZP_PAGE_SIZE);
	cr_assert(check(q, 6 * ZP_PAGE_SIZE, 2));
	alloc_free(q);
}

/*
 * Frees an n-byte large block, written, while large blocks churn (so its
 * region is parked), and returns it. A stall between the allocations (a
 * busy machine) only costs another try.
 */
static void *
free_parked(size_t n)
{
	for (int tries = 0; tries < 20; tries++) {
		void *p;

		alloc_free(alloc_malloc(n));
		alloc_free(alloc_malloc(n));
		p = alloc_malloc(n);
		scribble(p, n, 0xa5);
		alloc_free(p);
		if (zero_park_bytes() >= n)
			return p;
	}
	cr_assert_fail("large blocks in quick succession were not parked");
	return NULL;
}

Test(alloc, freed_large_block_serves_the_next_one_zeroed_for_calloc)
{
	size_t n = 8 * MiB;
	unsigned char *p = free_parked(n), *q;

	q = alloc_calloc(1, n - 5000);
	cr_assert_eq(q, p, "the parked region was not reused");
	for (size_t i = 0; i < n - 5000; i += 512)
		cr_assert_eq(q[i], 0, "byte %zu not zero", i);
	alloc_free(q);
	/* A larger block grows the parked region; its new tail is fresh. */
	q = alloc_calloc(1, 12 * MiB);
	cr_assert_not_null(q);
	for (size_t i = 0; i < 12 * MiB; i += 512)
		cr_assert_eq(q[i], 0, "byte %zu not zero", i);
	alloc_free(q);
}

Test(alloc, realloc_large_moves_pages_not_bytes)
{
	unsigned char *p = alloc_malloc(8 * MiB), *q;

	fill(p, 8 * MiB, 5);
	q = alloc_realloc(p, 64 * MiB);
	cr_assert_not_null(q);
	cr_assert(check(q, 8 * MiB, 5));
	cr_assert_eq(large_usable_size(q), 64 * MiB);
	q = alloc_realloc(q, 6 * MiB);
	cr_assert(check(q, 6 * MiB, 5));
	cr_assert_eq(large_usable_size(q), 6 * MiB);
	alloc_free(q);
}

Test(alloc, realloc_null_mallocs_and_zero_frees)
{
	void *p = alloc_realloc(NULL, 50);

	cr_assert_not_null(p);
	cr_assert_null(alloc_realloc(p, 0));
}

Test(alloc, every_alignment_on_every_route)
{
	for (size_t a = 16; a <= 8 * MiB; a *= 2) {
		size_t sizes[] = { 1, 100, a, SC_MAX_SIZE + 1, MiB,
				   ZP_MAX_BLOCK + 100 };

		for (size_t i = 0; i < ZP_ARRAY_SIZE(sizes); i++) {
			unsigned char *p = alloc_aligned(a, sizes[i]);

			cr_assert_not_null(p, "a %zu n %zu", a, sizes[i]);
			cr_assert(((uintptr_t)p & (a - 1)) == 0,
				  "a %zu n %zu: %p", a, sizes[i], (void *)p);
			cr_assert_geq(alloc_usable_size(p), sizes[i]);
			p[sizes[i] - 1] = 1;
			alloc_free(p);
		}
	}
}

Test(alloc, small_aligned_requests_stay_in_slabs)
{
	/* memalign(64, 32) must not cost a page. */
	void *p = alloc_aligned(64, 32);

	cr_assert_eq(kind_of(p), PAGE_SLAB);
	cr_assert_lt(alloc_usable_size(p), 1024);
	alloc_free(p);
}

/* An aligned request of a slab's size: aligned, from a slab, n usable. */
static char *
aligned_from_slab(size_t a, size_t n)
{
	char *p = alloc_aligned(a, n);

	cr_assert_not_null(p);
	cr_assert(((uintptr_t)p & (a - 1)) == 0, "a %zu n %zu", a, n);
	cr_assert_eq(kind_of(p), PAGE_SLAB, "a %zu n %zu", a, n);
	cr_assert_geq(alloc_usable_size(p), n);
	return p;
}

/* Up to 1 KiB an aligned request takes the smallest class that holds n
 * and is a multiple of align (found here by walking the table, not by
 * the steps aligned_class computes). */
static size_t
first_aligned_class(size_t a, size_t n)
{
	for (unsigned sc = 0; sc < SC_NR_PLAIN; sc++)
		if (sizeclass_size(sc) >= n && sizeclass_size(sc) % a == 0)
			return sizeclass_size(sc);
	return 0;
}

Test(alloc, small_aligned_requests_take_the_first_aligned_class)
{
	for (size_t a = 32; a <= 1024; a *= 2)
		for (size_t n = 129; n <= 1024; n += 7) {
			size_t want = first_aligned_class(a, n);
			char *p = aligned_from_slab(a, n);

			cr_assert_eq(alloc_usable_size(p), want,
				     "a %zu n %zu: %zu", a, n,
				     alloc_usable_size(p));
			alloc_free(p);
		}
}

/* Between 1 and 16 KiB the plain classes are 16 past their steps, so
 * an aligned request takes an aligned class (a multiple of 128) or a
 * power of two: at most n rounded up to align or to an eighth of the
 * doubling, never the next power of two for a size just above one. */
Test(alloc, mid_size_aligned_requests_waste_at_most_an_eighth)
{
	for (size_t a = 32; a <= ZP_PAGE_SIZE; a *= 2)
		for (size_t n = 1025; n <= SC_MAX_SIZE; n += 37) {
			size_t k = zp_log2_floor(n - 1);
			size_t step = ZP_MAX(a, (size_t)1 << (k - 3));
			size_t bound = zp_align_up(n, step);
			char *p = aligned_from_slab(a, n);

			cr_assert_leq(alloc_usable_size(p), bound,
				      "a %zu n %zu: %zu", a, n,
				      alloc_usable_size(p));
			p[n - 1] = 1;
			alloc_free_aligned_sized(p, a, n, "test");
		}
}

Test(alloc, zero_flag_zeroes_and_low32_stays_low)
{
	unsigned char *p = alloc_flags(20000, ZP_ZERO | ZP_LOW32);

	cr_assert_not_null(p);
	cr_assert_lt((uintptr_t)p + 20000, (uintptr_t)1 << 32);
	for (size_t i = 0; i < 20000; i++)
		cr_assert_eq(p[i], 0);
	alloc_free(p);
	p = alloc_flags(64, ZP_LOW32);
	cr_assert_lt((uintptr_t)p, (uintptr_t)1 << 32);
	alloc_free(p);
	p = alloc_flags(6 * MiB, ZP_LOW32 | ZP_ZERO);
	cr_assert_not_null(p);
	cr_assert_lt((uintptr_t)p + 6 * MiB, (uintptr_t)1 << 32);
	cr_assert_eq(p[6 * MiB - 1], 0);
	alloc_free(p);
}

Test(alloc, node_flag_allocates_on_an_existing_node)
{
	void *p = alloc_flags(100, ZP_NODE(0));

	cr_assert_not_null(p);
	cr_assert_eq(kind_of(p), PAGE_MEDIUM);
	alloc_free(p);
	p = alloc_flags(100, 0);
	cr_assert_eq(kind_of(p), PAGE_HEAP, "as malloc routes it");
	alloc_free(p);
}

Test(alloc, out_of_memory_is_enomem_and_recovers)
{
	void *p;

	os_fault_inject_all(true);
	errno = 0;
	p = alloc_malloc(64 * MiB);
	cr_assert_null(p);
	cr_assert_eq(errno, ENOMEM);
	os_fault_inject_all(false);
	p = alloc_malloc(64 * MiB);
	cr_assert_not_null(p);
	alloc_free(p);
}

/* A refused map first makes zpmalloc give back what it holds free, then
 * try again: here a freed medium block's pages, purged by the trim. */
Test(alloc, refused_map_is_retried_after_giving_back_free_memory)
{
	void *p = alloc_malloc(MiB / 2);

	cr_assert_not_null(p);
	/* Kept dirty at the free, so that only the trim gives it back. */
	cr_assert_eq(zone_set_retain(0, 1 << 20, 1 << 20), 0);
	memset(p, 1, MiB / 2);
	alloc_trim();
	alloc_free(p);
	os_fault_inject_nth(1);
	errno = 0;
	p = alloc_malloc(64 * MiB);
	os_fault_inject_nth(0);
	cr_assert_not_null(p, "the map after the trim should succeed");
	cr_assert_eq(errno, 0, "errno is kept on success");
	alloc_free(p);
}

static int nr_foreign_frees;
static void *last_foreign;

static void
test_foreign_free(void *p)
{
	nr_foreign_frees++;
	last_foreign = p;
}

static void *
test_foreign_realloc(void *p, size_t n)
{
	(void)p;
	(void)n;
	return NULL;
}

static size_t
test_foreign_usable(void *p)
{
	(void)p;
	return 4242;
}

/* Under AddressSanitizer malloc is ASan's, not glibc's, so there is no
 * glibc chunk to recognise: the handoff rightly refuses it. */
#ifdef __SANITIZE_ADDRESS__
#define NEEDS_GLIBC_MALLOC .disabled = true
#else
#define NEEDS_GLIBC_MALLOC .disabled = false
#endif

Test(alloc, foreign_pointers_go_to_the_foreign_handler, NEEDS_GLIBC_MALLOC)
{
	static const struct alloc_foreign_ops ops = {
		.free = test_foreign_free,
		.realloc = test_foreign_realloc,
		.usable_size = test_foreign_usable,
	};
	void *g = malloc(100);	/* glibc's: nothing is preloaded here */

	alloc_set_foreign(&ops);
	alloc_free(g);
	cr_assert_eq(nr_foreign_frees, 1);
	cr_assert_eq(last_foreign, g);
	cr_assert_eq(alloc_usable_size(g), 4242);
	alloc_free(NULL);
	cr_assert_eq(nr_foreign_frees, 1);
	alloc_set_foreign(NULL);
	free(g);
}

Test(alloc, foreign_pointer_without_a_handler_aborts, .signal = SIGABRT)
{
	void *g = malloc(100);

	alloc_free(g);
}

Test(alloc, misaligned_foreign_pointer_aborts, .signal = SIGABRT)
{
	char *g = malloc(100);

	alloc_free(g + 8);
}

Test(alloc, interior_pointer_of_medium_block_aborts, .signal = SIGABRT)
{
	char *p = alloc_malloc(100000);

	alloc_free(p + ZP_PAGE_SIZE);
}

Test(alloc, double_free_of_medium_block_aborts, .signal = SIGABRT)
{
	void *p = alloc_malloc(100000);

	alloc_free(p);
	alloc_free(p);
}

Test(alloc, double_free_of_a_heap_block_aborts, .signal = SIGABRT)
{
	void *p = alloc_malloc(700);

	cr_assert_eq(kind_of(p), PAGE_HEAP);
	alloc_malloc(700);
	alloc_free(p);
	alloc_free(p);
}

Test(alloc, sized_free_of_a_heap_block_of_another_class_aborts,
     .signal = SIGABRT)
{
	void *p = alloc_malloc(700);

	cr_assert_eq(kind_of(p), PAGE_HEAP);
	alloc_free_sized(p, 2000, "free_sized");
}

Test(alloc, double_free_of_slab_object_aborts, .signal = SIGABRT)
{
	void *p = alloc_malloc(64);

	alloc_free(p);
	alloc_free(p);
}

Test(alloc, realloc_of_interior_pointer_aborts, .signal = SIGABRT)
{
	char *p = alloc_malloc(64);

	alloc_realloc(p + 16, 200);
}

/* --- a signal handler inside the allocator -------------------------------- */

static struct {
	void *medium, *large;	/* freed by the handler */
	void *got;		/* what its malloc returned */
	int err;
} in_handler;

static void
handler_allocates(int sig)
{
	(void)sig;
	errno = 0;
	in_handler.got = alloc_malloc(MiB);
	in_handler.err = errno;
	alloc_free(in_handler.medium);
	alloc_free(in_handler.large);
}

static void
lock_zones(bool take)
{
	for (unsigned i = 0; i < ZP_MAX_ZONES; i++) {
		if (take)
			zp_lock(&zone_of(i)->lock);
		else
			zp_unlock(&zone_of(i)->lock);
	}
}

/*
 * A handler that interrupted the thread while it held a zone's lock (a
 * shared one: waiting on it would stop every thread) mallocs and frees
 * blocks whose paths take that lock. The malloc fails with ENOMEM, the
 * frees wait for the thread's next slow path; nothing waits.
 */
Test(alloc, handler_inside_a_zone_lock_fails_and_defers)
{
	struct sigaction sa = { .sa_handler = handler_allocates }, old;
	void *p;

	watchdog_arm(60);
	in_handler.medium = alloc_malloc(64 * 1024);
	in_handler.large = alloc_malloc(64 * MiB);
	cr_assert_eq(kind_of(in_handler.medium), PAGE_MEDIUM);
	cr_assert_neq(large_usable_size(in_handler.large), 0);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, &old);
	lock_zones(true);
	raise(SIGUSR1);
	lock_zones(false);
	sigaction(SIGUSR1, &old, NULL);
	cr_assert_eq(zp_lock_depth, 0);
	cr_assert_null(in_handler.got);
	cr_assert_eq(in_handler.err, ENOMEM);
	cr_assert_eq(kind_of(in_handler.medium), PAGE_MEDIUM,
		     "freed under the lock");
	cr_assert_neq(large_usable_size(in_handler.large), 0);
	p = alloc_malloc(MiB);	/* the next slow path does the frees */
	cr_assert_not_null(p);
	cr_assert_neq(kind_of(in_handler.medium), PAGE_MEDIUM);
	cr_assert_eq(large_usable_size(in_handler.large), 0);
	alloc_free(p);
	cr_assert(zone_check_all());
}

/* What a handler frees under its thread's lock waits for any thread's
 * next slow path, even when its thread (one with no cache) exits first;
 * nothing is written into a block before its free: a large block the
 * program made read-only is freed all the same. */
static void *
free_under_a_lock_and_exit(void *arg)
{
	void **blocks = arg;

	cr_assert_eq(alloc_tls, &tcache_none);
	lock_zones(true);
	alloc_free(blocks[0]);
	alloc_free(blocks[1]);
	lock_zones(false);
	return NULL;
}

Test(alloc, frees_deferred_by_an_exiting_thread_are_done_later)
{
	void *blocks[2] = { alloc_malloc(64 * 1024), alloc_malloc(64 * MiB) };
	pthread_t t;
	void *p;

	watchdog_arm(60);
	cr_assert_eq(mprotect(blocks[1], 64 * MiB, PROT_READ), 0);
	pthread_create(&t, NULL, free_under_a_lock_and_exit, blocks);
	pthread_join(t, NULL);
	cr_assert_eq(kind_of(blocks[0]), PAGE_MEDIUM, "freed under the lock");
	p = alloc_malloc(MiB);
	cr_assert_not_null(p);
	cr_assert_neq(kind_of(blocks[0]), PAGE_MEDIUM, "lost with its thread");
	cr_assert_eq(large_usable_size(blocks[1]), 0);
	alloc_free(p);
	cr_assert_eq(zp_lock_depth, 0);
}

/* A zone made while purges are paused (LOW32, at its first use) was not
 * paused: resume must leave its lock, and this thread's count, alone. */
static void *
first_low32_block(void *arg)
{
	(void)arg;
	return alloc_flags(20000, ZP_LOW32);
}

Test(alloc, purge_resume_leaves_a_zone_made_meanwhile_alone)
{
	unsigned before = nr_zones;
	pthread_t t;
	void *p;

	zone_purge_pause();
	cr_assert_eq(zp_lock_depth, before);
	pthread_create(&t, NULL, first_low32_block, NULL);
	pthread_join(t, &p);
	cr_assert_not_null(p);
	cr_assert_gt(nr_zones, before, "LOW32 existed already");
	zone_purge_resume();
	cr_assert_eq(zp_lock_depth, 0);
	for (unsigned i = 0; i < nr_zones; i++)
		cr_assert_eq(zone_of(i)->purge_lock.word, 0);
	alloc_free(p);
}

Test(alloc, trim_gives_memory_back)
{
	enum { N = 64 };
	unsigned char *p[N];

	for (int i = 0; i < N; i++) {
		p[i] = alloc_malloc(200000);
		memset(p[i], 1, 200000);
	}
	for (int i = 0; i < N; i++)
		alloc_free(p[i]);
	/* A freed large block parked for reuse goes too. */
	free_parked(8 * MiB);
	cr_assert_geq(alloc_trim(), 8 * MiB);
	cr_assert_eq(zero_park_bytes(), 0);
	p[0] = alloc_malloc(100);
	cr_assert_not_null(p[0]);
	alloc_free(p[0]);
}

/* --- sized frees (free_sized, sized operator delete) --------------------- */

Test(alloc, sized_free_of_the_requested_size_frees_on_every_route)
{
	size_t sizes[] = { 0, 1, 16, 17, 1000, 1024, 1025, SC_MAX_SIZE,
			   SC_MAX_SIZE + 1, 100000, ZP_MAX_BLOCK,
			   ZP_MAX_BLOCK + 1, 9 * MiB };

	for (size_t i = 0; i < ZP_ARRAY_SIZE(sizes); i++) {
		void *p = alloc_malloc(sizes[i]), *q;

		cr_assert_not_null(p);
		alloc_free_sized(p, sizes[i], "free_sized");
		/* A slab object went back to the thread's bin. */
		q = alloc_malloc(sizes[i]);
		if (sizes[i] <= SC_MAX_SIZE)
			cr_assert_eq(q, p, "size %zu", sizes[i]);
		alloc_free_sized(q, sizes[i], "free_sized");
	}
	alloc_free_sized(NULL, 0, "free_sized");
	alloc_free_sized(NULL, 12345, "free_sized");
}

Test(alloc, sized_free_takes_any_size_of_the_object_class)
{
	for (size_t n = 0; n <= SC_MAX_SIZE; n += 7) {
		size_t size = sizeclass_size(sizeclass_of(n));
		void *p = alloc_malloc(n);

		alloc_free_sized(p, size, "free_sized");
		p = alloc_malloc(size);
		alloc_free_sized(p, n, "free_sized");
	}
}

/* Realloc leaves page-served blocks more pages than the size needs (the
 * headroom of growth, a shrink that could not give its tail back): the
 * size last asked for is what a sized free brings. */
Test(alloc, sized_free_after_realloc_takes_the_last_size)
{
	size_t steps[] = { 100, 20000, 9 * ZP_PAGE_SIZE, 37 * ZP_PAGE_SIZE,
			   21 * ZP_PAGE_SIZE, 300000, 6 * MiB, 200000, 64 };

	for (size_t last = 0; last < ZP_ARRAY_SIZE(steps); last++) {
		void *p = alloc_malloc(steps[0]);

		for (size_t i = 1; i <= last; i++)
			p = alloc_realloc(p, steps[i]);
		alloc_free_sized(p, steps[last], "free_sized");
	}
}

Test(alloc, calloc_and_flagged_blocks_take_their_size)
{
	void *p = alloc_calloc(3, 50000);

	alloc_free_sized(p, 150000, "free_sized");
	p = alloc_flags(100, ZP_LOW32);
	alloc_free_sized(p, 100, "free_sized");
}

Test(alloc, aligned_sized_free_of_every_alignment_and_route)
{
	size_t sizes[] = { 0, 1, 48, 100, 4096, 5000, SC_MAX_SIZE,
			   SC_MAX_SIZE + 1, 300000, 5 * MiB };

	for (size_t a = 1; a <= ZP_MAX_BLOCK; a <<= 1)
		for (size_t i = 0; i < ZP_ARRAY_SIZE(sizes); i++) {
			void *p = alloc_aligned(a, sizes[i]);

			cr_assert_not_null(p, "align %zu size %zu", a,
					   sizes[i]);
			alloc_free_aligned_sized(p, a, sizes[i], "test");
		}
	alloc_free_aligned_sized(NULL, 64, 10, "test");
}

Test(alloc, sized_free_of_another_class_aborts, .signal = SIGABRT)
{
	alloc_free_sized(alloc_malloc(100), 200, "free_sized");
}

Test(alloc, sized_free_of_a_slab_object_as_pages_aborts, .signal = SIGABRT)
{
	alloc_free_sized(alloc_malloc(100), 100000, "free_sized");
}

Test(alloc, sized_free_of_a_medium_block_aborts, .signal = SIGABRT)
{
	alloc_free_sized(alloc_malloc(100000), 100001, "free_sized");
}

Test(alloc, sized_free_of_a_large_block_aborts, .signal = SIGABRT)
{
	alloc_free_sized(alloc_malloc(9 * MiB), 5 * MiB, "free_sized");
}

Test(alloc, aligned_sized_free_of_another_class_aborts, .signal = SIGABRT)
{
	/* 48 bytes aligned to 32 come from the 64-byte class. */
	void *p = alloc_aligned(32, 48);

	alloc_free_sized(p, 48, "free_sized");
}

Test(alloc, aligned_sized_free_with_a_wrong_alignment_aborts,
     .signal = SIGABRT)
{
	char *p = alloc_aligned(64, 200);

	alloc_free_aligned_sized(p + 64, 128, 200, "test");
}

Test(alloc, aligned_sized_free_of_a_wrong_size_aborts, .signal = SIGABRT)
{
	alloc_free_aligned_sized(alloc_aligned(64, 200), 64, 2000, "test");
}

/* --- threads without a cache ------------------------------------------- */

struct light_run {
	void *p[40];
	bool tls_after_few, tls_after_many;
	bool zeroed;
};

static void *
light_thread(void *arg)
{
	struct light_run *r = arg;
	unsigned char *c;

	/* A few objects of a few classes: shared slabs, no cache. */
	for (int i = 0; i < 12; i++)
		r->p[i] = alloc_malloc(24 + 72 * (size_t)(i % 3));
	c = alloc_calloc(1, 200);
	r->zeroed = c != NULL;
	for (size_t i = 0; c && i < 200; i++)
		r->zeroed &= c[i] == 0;
	r->p[12] = c;
	r->tls_after_few = alloc_tls != &tcache_none;
	/* Frees without a cache go the remote way. */
	for (int i = 0; i < 13; i++)
		alloc_free(r->p[i]);
	for (int i = 0; i < 40; i++)
		r->p[i] = alloc_malloc(40);
	r->tls_after_many = alloc_tls != &tcache_none;
	return NULL;
}

Test(alloc, a_thread_that_allocates_little_makes_no_cache)
{
	struct light_run r = { 0 };
	pthread_t t;

	/* The test's own thread has a cache (boot): it is the first. */
	cr_assert_neq(alloc_tls, &tcache_none);
	cr_assert_eq(pthread_create(&t, NULL, light_thread, &r), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_not(r.tls_after_few, "a cache for 13 objects");
	cr_assert(r.zeroed, "calloc without a cache is not zero");
	cr_assert(r.tls_after_many, "no cache after 53 objects");
	for (int i = 0; i < 40; i++) {
		cr_assert_not_null(r.p[i]);
		for (int j = 0; j < i; j++)
			cr_assert_neq(r.p[i], r.p[j]);
		memset(r.p[i], i, 40);
	}
	for (int i = 0; i < 40; i++)
		alloc_free(r.p[i]);
}

static void *
free_without_a_cache(void *arg)
{
	void **v = arg;

	for (int i = 0; i < 64; i++)
		alloc_free(v[i]);
	return NULL;
}

/* The stand-in cache of threads without one is shared by all of them and
 * must never be written: its bins stay NULL (empty and full at once), its
 * id matches no slab (not even an unowned one's 0), and neither a light
 * thread's mallocs and frees, nor frees from a thread without a cache
 * into another thread's slabs, nor a thread's exit change a byte of it. */
Test(alloc, the_no_cache_stand_in_is_never_written)
{
	static struct tcache zero;
	struct light_run r = { 0 };
	void *v[64];
	pthread_t t;

	cr_assert_eq(pthread_create(&t, NULL, light_thread, &r), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	for (int i = 0; i < 40; i++)
		alloc_free(r.p[i]);
	for (int i = 0; i < 64; i++)
		cr_assert_not_null(v[i] = alloc_malloc(16 + 48 * (size_t)(i % 8)));
	cr_assert_eq(pthread_create(&t, NULL, free_without_a_cache, v), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	for (unsigned sc = 0; sc < SC_NR; sc++)
		cr_assert_null(tcache_none.bins[sc].cur, "class %u", sc);
	/* Not even its id: .bss's 0 matches no slab's owner (slab.h). */
	cr_assert(memcmp(&tcache_none, &zero, sizeof(zero)) == 0,
		  "tcache_none was written");
}
