/*
 * test_heap.c - the shared heap over the real zone: blocks of a class's
 * size, neighbours merged across classes, chunks given back, calloc, and
 * misuse (double free, interior pointers, overruns) aborting.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <zpmalloc.h>

#include "heap/heap.h"
#include "os/os.h"
#include "page/zone.h"
#include "slab/sizeclass.h"

#include "check.h"
#include "zone_fixture.h"

#define CHUNK	(16 * ZP_PAGE_SIZE)

static void
setup(void)
{
	boot_small_zone();
	heap_boot(os_random64());
}

TestSuite(heap, .init = setup);

static struct heap_stats
stats(void)
{
	struct heap_stats st;

	heap_get_stats(&st);
	return st;
}

static struct page *
head_of(const void *p)
{
	struct page *pg = page_lookup(p);

	cr_assert_not_null(pg);
	pg = page_head(pg);
	cr_assert_eq(pg->kind, PAGE_HEAP);
	return pg;
}

/* A block of the class of n. */
static void *
take(size_t n, bool zero)
{
	return heap_alloc(sizeclass_of(n), n, zero);
}

static size_t
usable(const void *p)
{
	return sizeclass_size(heap_class(p, head_of(p), "test"));
}

static void
release(void *p)
{
	heap_free(p, head_of(p), "test");
}

static uint64_t
used_pages(void)
{
	struct zp_zone_info zi;
	uint64_t used = 0;

	for (unsigned i = 0; zone_info(i, &zi) == 0; i++)
		used += (zi.grown_bytes >> ZP_PAGE_SHIFT) - zi.nr_free_pages;
	return used;
}

/* Random sizes over the whole range, written, checked, freed in a random
 * order: each block is 16-aligned, of its request's class, overlaps no
 * other, and the heap ends with nothing in use and at most the one empty
 * chunk it keeps. */
Test(heap, blocks_hold_their_requests_and_merge_back)
{
	enum { N = 3000 };
	static void *v[N];
	static size_t len[N];
	uint64_t seed = 12345, pages0 = used_pages();

	for (unsigned i = 0; i < N; i++) {
		seed = seed * 6364136223846793005ull + 1;
		len[i] = (seed >> 33) % (SC_MAX_SIZE + 1);
		v[i] = take(len[i], false);
		cr_assert_not_null(v[i]);
		CHECK(((uintptr_t)v[i] & 15) == 0, "%p", v[i]);
		CHECK_OP(heap_class(v[i], head_of(v[i]), "test"), ==,
			 sizeclass_of(len[i]));
		memset(v[i], (int)(i & 0xff), usable(v[i]));
	}
	for (unsigned i = 0; i < N; i++) {
		const unsigned char *c = v[i];

		for (size_t k = 0; k < usable(v[i]); k += 61)
			CHECK_OP(c[k], ==, (unsigned char)(i & 0xff),
				 "block %u byte %zu overwritten", i, k);
	}
	cr_assert_eq(stats().nr_used, N);
	shuffle(v, N, 99);
	for (unsigned i = 0; i < N; i++)
		release(v[i]);
	cr_assert_eq(stats().nr_used, 0);
	cr_assert_eq(stats().used_bytes, 0);
	cr_assert_leq(stats().nr_chunks, 1, "empty chunks kept");
	cr_assert_eq(heap_trim(), CHUNK);
	cr_assert_eq(stats().nr_chunks, 0);
	cr_assert_eq(used_pages(), pages0, "every chunk went back");
}

/* Blocks freed by one size serve another: three neighbours freed out of
 * order make one block that a request for all three takes whole. */
Test(heap, neighbours_merge_for_any_size)
{
	char *a = take(1024, false), *b = take(3088, false);
	char *c = take(2048, false), *d = take(640, false);
	char *e;

	cr_assert_eq(b, a + 1024 + 16, "cut in address order");
	cr_assert_eq(c, b + 3088 + 16);
	release(a);
	release(c);
	release(b);
	e = take(6160, false);	/* the three: 6208 bytes with headers */
	cr_assert_eq(e, a, "the merged block served a larger class");
	cr_assert_leq((uintptr_t)e + usable(e), (uintptr_t)d - 16);
	release(e);
	release(d);
}

Test(heap, chunks_beyond_the_kept_one_go_back_to_the_zone)
{
	enum { N = 40 };
	void *v[N];
	uint64_t pages0 = used_pages();

	for (unsigned i = 0; i < N; i++)
		v[i] = take(SC_MAX_SIZE, false);
	cr_assert_geq(stats().nr_chunks, N / 3);
	for (unsigned i = 0; i < N; i++)
		release(v[i]);
	cr_assert_eq(stats().nr_chunks, 1);
	cr_assert_eq(used_pages(), pages0 + 16);
}

Test(heap, calloc_clears_the_bytes_asked_for_of_a_dirty_block)
{
	unsigned char *p = take(5000, false), *q;

	memset(p, 0xee, usable(p));
	release(p);
	q = take(4990, true);
	cr_assert_eq(q, p);
	for (size_t i = 0; i < 4990; i++)
		CHECK_OP(q[i], ==, 0, "byte %zu", i);
	release(q);
}

/* A block's class is what it was asked as, not what its bytes would
 * suggest: the malloc layer sizes, reallocs and checks sized frees by it. */
Test(heap, a_block_keeps_its_class_whatever_it_holds)
{
	char *a = take(1040, false), *b;

	take(600, false);
	release(a);
	/* 1024 + 16 of 1040 + 16 bytes: 16 left over, too few for a free
	 * block, stay with it. */
	b = take(1000, false);
	cr_assert_eq(b, a);
	cr_assert_eq(heap_class(b, head_of(b), "test"), sizeclass_of(1000));
	cr_assert_eq(usable(b), 1024);
}

/* The live count of a class follows its blocks, whatever a free merges
 * them with, and counts no other class. */
Test(heap, live_counts_follow_each_class)
{
	unsigned a = sizeclass_of(2000), b = sizeclass_of(3000);
	void *x = take(2000, false), *y = take(2000, false);
	void *z = take(3000, false);

	cr_assert_eq(heap_live(a), 2);
	cr_assert_eq(heap_live(b), 1);
	release(x);
	cr_assert_eq(heap_live(a), 1);
	release(y);			/* merges with x's block */
	cr_assert_eq(heap_live(a), 0);
	cr_assert_eq(heap_live(b), 1);
	x = take(2000, false);		/* carved from the merged block */
	cr_assert_eq(heap_live(a), 1);
	release(z);
	release(x);
	cr_assert_eq(heap_live(a), 0);
	cr_assert_eq(heap_live(b), 0);
}

static bool
resident(const void *p)
{
	unsigned char v = 0;

	cr_assert_eq(mincore((void *)zp_align_down((uintptr_t)p, ZP_PAGE_SIZE),
			     ZP_PAGE_SIZE, &v), 0);
	return v & 1;
}

/* malloc_trim's part: the whole pages inside a free block amid live
 * ones go back to the system, and only those; the live blocks keep
 * their bytes, a second trim finds nothing more, and the space serves
 * requests again. */
Test(heap, trim_gives_back_whole_free_pages_between_live_blocks)
{
	enum { N = 14 };
	unsigned char *v[N];
	uintptr_t lo, hi;
	size_t got;

	/* The blocks to be freed hold zeros, so that a free block whose
	 * clean_off were left as the bytes it held would look untouched. */
	for (unsigned i = 0; i < N; i++) {
		v[i] = take(4096, false);
		memset(v[i], i < 2 || i >= N - 2 ? 0x5a : 0, 4096);
	}
	for (unsigned i = 2; i < N - 2; i++)
		release(v[i]);
	/* The free block runs from v[2]'s header to v[N - 2]'s. */
	lo = zp_align_up((uintptr_t)v[2] - 16 + 64, ZP_PAGE_SIZE);
	hi = zp_align_down((uintptr_t)v[N - 2] - 16, ZP_PAGE_SIZE);
	cr_assert_geq(hi - lo, 8 * ZP_PAGE_SIZE);
	for (uintptr_t a = lo; a < hi; a += ZP_PAGE_SIZE)
		cr_assert(resident((void *)a), "written before the trim");
	got = heap_trim();
	cr_assert_geq(got, hi - lo);
	cr_assert_leq(got, hi - lo + ZP_PAGE_SIZE);
	for (uintptr_t a = lo; a < hi; a += ZP_PAGE_SIZE)
		CHECK(!resident((void *)a), "page %#lx kept",
		      (unsigned long)a);
	for (unsigned i = 0; i < N; i += (i == 1 ? N - 3 : 1))
		for (size_t k = 0; k < 4096; k += 97)
			CHECK_OP(v[i][k], ==, 0x5a, "block %u byte %zu", i, k);
	cr_assert_eq(heap_trim(), 0, "nothing resident is left to drop");
	cr_assert_eq(stats().purged_bytes, got);
	v[2] = take(4096 * 4, true);
	for (size_t k = 0; k < 4096 * 4; k += 97)
		CHECK_OP(v[2][k], ==, 0, "byte %zu", k);
	release(v[2]);
	for (unsigned i = 0; i < N; i += (i == 1 ? N - 3 : 1))
		release(v[i]);
}

/* What a trim reports is the kept empty chunk and the pages dropped from
 * the other chunks' free blocks, both. */
Test(heap, trim_counts_the_kept_chunk_and_the_dropped_pages)
{
	enum { N = 2 * (CHUNK / (4096 + 16)) };
	unsigned char *v[N];
	struct page *a, *b;
	unsigned first_b = 0, last_b = 0;
	uint64_t purged0;
	size_t got;

	for (unsigned i = 0; i < N; i++) {
		v[i] = take(4096, false);
		memset(v[i], 0x5a, 4096);
	}
	a = head_of(v[0]);
	b = head_of(v[N - 1]);
	cr_assert_neq(a, b, "two chunks");
	for (unsigned i = 0; i < N; i++)
		if (head_of(v[i]) == b && !first_b)
			first_b = i;
	last_b = N - 1;
	cr_assert_geq(last_b - first_b, 4);
	/* Chunk a empties (kept), b keeps its ends and frees between. */
	for (unsigned i = 0; i < N; i++)
		if (head_of(v[i]) == a || (i > first_b && i < last_b))
			release(v[i]);
	purged0 = stats().purged_bytes;
	got = heap_trim();
	cr_assert_gt(stats().purged_bytes, purged0);
	cr_assert_eq(got, CHUNK + (stats().purged_bytes - purged0));
	release(v[first_b]);
	release(v[last_b]);
}

Test(heap, double_free_aborts, .signal = SIGABRT)
{
	void *p = take(2000, false);

	take(2000, false);
	release(p);
	release(p);
}

Test(heap, double_free_of_a_merged_block_aborts, .signal = SIGABRT)
{
	char *a = take(2000, false), *b = take(2000, false);

	take(2000, false);
	release(a);
	release(b);		/* merged into a's block */
	release(b);
}

Test(heap, interior_pointer_aborts, .signal = SIGABRT)
{
	char *p = take(2000, false);

	release(p + 32);
}

Test(heap, overrun_header_aborts, .signal = SIGABRT)
{
	char *a = take(1000, false), *b = take(1000, false);

	memset(a, 0x41, usable(a) + 8);	/* into b's header */
	release(b);
}

Test(heap, chunk_start_aborts, .signal = SIGABRT)
{
	char *p = take(1000, false);

	release(p - 16);
}
