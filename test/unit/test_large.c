/*
 * test_large.c - blocks beyond the buddy's largest order: the address
 * table (growth, tombstones), resizing by remapping, double frees.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "smaps.h"
#include "malloc/alloc.h"
#include "malloc/large.h"
#include "malloc/init.h"
#include "os/os.h"
#include "page/zone.h"
#include "zero/zero.h"
#include "zero/zero_int.h"

#define MiB ((size_t)1 << 20)
#define BIG (ZP_MAX_BLOCK + ZP_PAGE_SIZE)

static void
boot(void)
{
	cr_assert(init_boot());
}

TestSuite(large, .init = boot);

Test(large, table_grows_and_finds_every_block)
{
	enum { N = 700 };
	static void *p[N];
	struct large_stats st;

	for (int i = 0; i < N; i++) {
		p[i] = large_alloc(BIG, 0, 0, -1, false);
		cr_assert_not_null(p[i], "block %d", i);
		*(int *)p[i] = i;
	}
	large_get_stats(&st);
	cr_assert_eq(st.nr_blocks, N);
	cr_assert_geq(st.table_capacity * 3, (size_t)N * 4);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(large_usable_size(p[i]), BIG);
		cr_assert_eq(*(int *)p[i], i);
	}
	/* Free every other one, then the rest in reverse: tombstones must
	 * not hide the entries behind them. */
	for (int i = 0; i < N; i += 2)
		cr_assert(large_free(p[i]));
	for (int i = N - 1; i > 0; i -= 2)
		cr_assert_eq(large_usable_size(p[i]), BIG, "lost %d", i);
	for (int i = N - 1; i > 0; i -= 2)
		cr_assert(large_free(p[i]));
	large_get_stats(&st);
	cr_assert_eq(st.nr_blocks, 0);
	cr_assert_eq(st.bytes, 0);
	cr_assert_eq(st.peak_bytes, (size_t)N * BIG);
}

Test(large, churn_reuses_the_table_without_growth)
{
	struct large_stats st;
	size_t cap;

	for (int i = 0; i < 50; i++)
		large_free(large_alloc(BIG, 0, 0, -1, false));
	large_get_stats(&st);
	cap = st.table_capacity;
	for (int i = 0; i < 3000; i++) {
		void *p = large_alloc(BIG, 0, 0, -1, false);

		cr_assert_not_null(p);
		cr_assert(large_free(p));
	}
	large_get_stats(&st);
	cr_assert_eq(st.table_capacity, cap);
	cr_assert_eq(st.nr_alloc, 3050);
}

Test(large, unknown_pointers_are_not_ours)
{
	int x;

	cr_assert_not(large_free(&x));
	cr_assert_eq(large_usable_size(&x), 0);
	cr_assert_not(large_free(NULL));
}

Test(large, aligned_blocks)
{
	for (size_t a = ZP_PAGE_SIZE; a <= 64 * MiB; a *= 4) {
		void *p = large_alloc(BIG, a, 0, -1, false);

		cr_assert_not_null(p);
		cr_assert_eq((uintptr_t)p & (a - 1), 0, "align %zu", a);
		cr_assert_eq(large_usable_size(p), BIG);
		memset(p, 1, BIG);
		cr_assert(large_free(p));
	}
}

Test(large, resize_keeps_contents_and_updates_the_table)
{
	unsigned char *p = large_alloc(BIG, 0, 0, -1, false), *q;
	struct large_stats st;

	for (size_t i = 0; i < BIG; i += 4096)
		p[i] = (unsigned char)(i >> 12);
	q = large_resize(p, 100 * MiB);
	cr_assert_not_null(q);
	cr_assert_eq(large_usable_size(q), 100 * MiB);
	if (q != p)
		cr_assert_eq(large_usable_size(p), 0);
	for (size_t i = 0; i < BIG; i += 4096)
		cr_assert_eq(q[i], (unsigned char)(i >> 12));
	q[100 * MiB - 1] = 1;
	p = large_resize(q, 5 * MiB);
	cr_assert_not_null(p);
	cr_assert_eq(large_usable_size(p), 5 * MiB);
	large_get_stats(&st);
	cr_assert_eq(st.nr_blocks, 1);
	cr_assert_eq(st.bytes, 5 * MiB);
	cr_assert(large_free(p));
}

Test(large, low32_blocks_lie_below_4gib)
{
	void *p = large_alloc(BIG, 0, LARGE_LOW32, -1, false);

	cr_assert_not_null(p);
	cr_assert_leq((uintptr_t)p + BIG, (uintptr_t)1 << 32);
	cr_assert(large_free(p));
}

Test(large, lone_block_is_unmapped_not_parked)
{
	struct timespec pause = { 0, 30 * 1000 * 1000 };
	void *p = large_alloc(BIG, 0, 0, -1, false);

	cr_assert(large_free(p));
	p = large_alloc(BIG, 0, 0, -1, false);
	/* No other large block within 20 ms: no churn. */
	nanosleep(&pause, NULL);
	cr_assert(large_free(p));
	cr_assert_eq(zero_park_bytes(), 0);
}

/* A buffer replaced at once is churn however long the program takes to
 * fill each one (page faults at ~10 us make 30 ms of a few MiB). */
Test(large, block_replaced_at_once_is_parked_however_slowly_filled)
{
	struct timespec fill = { 0, 30 * 1000 * 1000 };
	void *p = large_alloc(BIG, 0, 0, -1, false);

	for (int i = 0; i < 2; i++) {
		nanosleep(&fill, NULL);
		cr_assert(large_free(p));
		cr_assert_eq(zero_park_bytes(), 0, "too few blocks yet");
		p = large_alloc(BIG, 0, 0, -1, false);
	}
	nanosleep(&fill, NULL);
	cr_assert(large_free(p));
	cr_assert_eq(zero_park_bytes(), BIG);
}

/* Blocks asked for well after the last one went (sqlite's sort buffers)
 * are not churn: each goes back at its free. */
Test(large, blocks_asked_for_long_after_a_free_are_not_parked)
{
	struct timespec pause = { 0, 30 * 1000 * 1000 };

	for (int i = 0; i < 4; i++) {
		cr_assert(large_free(large_alloc(BIG, 0, 0, -1, false)));
		cr_assert_eq(zero_park_bytes(), 0);
		nanosleep(&pause, NULL);
	}
}

Test(large, churned_region_is_parked_and_serves_the_next_block)
{
	unsigned char *p = NULL, *q;

	/* A stall between the allocations (a busy machine) only costs
	 * another try. */
	for (int tries = 0; tries < 20 && !zero_park_bytes(); tries++) {
		large_free(large_alloc(BIG, 0, 0, -1, false));
		large_free(large_alloc(BIG, 0, 0, -1, false));
		p = large_alloc(BIG, 0, 0, -1, false);
		scribble(p, BIG, 0x5a);
		cr_assert(large_free(p));
	}
	cr_assert_eq(zero_park_bytes(), BIG);
	cr_assert_eq(large_usable_size(p), 0);
	q = large_alloc(BIG, 0, 0, -1, /* zero */ true);
	cr_assert_eq(q, p);
	cr_assert_eq(zero_park_bytes(), 0);
	for (size_t i = 0; i < BIG; i += 256)
		cr_assert_eq(q[i], 0, "byte %zu", i);
	cr_assert(large_free(q));
}

/* Frees followed at once by allocations, until one parks: churn. A
 * stall between them (a busy machine) only costs another try. */
static void
churn_until_parked(size_t size)
{
	for (int tries = 0; tries < 20 && !zero_park_bytes(); tries++)
		for (int i = 0; i < 3; i++)
			large_free(large_alloc(size, 0, 0, -1, false));
	cr_assert_eq(zero_park_bytes(), size);
}

enum { TEARDOWN_NR = 12 };	/* of 8 MiB: past the 64 MiB budget */

/* Every page written: resident, as the park's bounds expect. */
static void *
written(void *p, size_t n)
{
	cr_assert_not_null(p);
	for (size_t off = 0; off < n; off += ZP_PAGE_SIZE)
		((volatile char *)p)[off] = 1;
	return p;
}

/* Builds TEARDOWN_NR blocks of 8 MiB after churn, writes and frees them
 * all. A stall past LARGE_CHURN_NS on a loaded machine leaves the frees
 * no teardown: another try. */
static void
tear_down(void)
{
	void *p[TEARDOWN_NR];

	for (int tries = 0; tries < 10; tries++) {
		zero_park_release(true);
		churn_until_parked(8 * MiB);
		for (int i = 0; i < TEARDOWN_NR; i++)
			p[i] = written(large_alloc(8 * MiB, 0, 0, -1, false),
				       8 * MiB);
		for (int i = TEARDOWN_NR - 1; i >= 0; i--)
			cr_assert(large_free(p[i]));
		if (zero_park_bytes() == TEARDOWN_NR * 8 * MiB)
			return;
	}
}

/* A teardown by a program that allocates again at once after its frees
 * parks what was live, past the budget, for the blocks it builds next. */
Test(large, teardown_parks_what_was_live_for_the_blocks_built_next)
{
	void *p[TEARDOWN_NR];

	tear_down();
	cr_assert_eq(zero_park_bytes(), TEARDOWN_NR * 8 * MiB);
	for (int i = 0; i < TEARDOWN_NR; i++)
		p[i] = written(large_alloc(8 * MiB, 0, 0, -1, false), 8 * MiB);
	cr_assert_eq(zero_park_bytes(), 0, "the next blocks took it all");
	for (int i = 0; i < TEARDOWN_NR; i++)
		cr_assert(large_free(p[i]));
}

/* A program's first teardown, before any allocation has followed a free:
 * every block but the first freed parks (that one is the first free
 * after an allocation, which parks only if allocations came within
 * LARGE_CHURN_NS of each other: writing 8 MiB takes longer here). */
Test(large, first_teardown_parks)
{
	void *p[TEARDOWN_NR];

	for (int i = 0; i < TEARDOWN_NR; i++)
		p[i] = written(large_alloc(8 * MiB, 0, 0, -1, false), 8 * MiB);
	for (int i = TEARDOWN_NR - 1; i >= 0; i--)
		cr_assert(large_free(p[i]));
	cr_expect_geq(zero_park_bytes(), (TEARDOWN_NR - 1) * 8 * MiB);
}

/* Parked pages never take the resident set past its peak: a block grown
 * past what its parked pages gave cuts the park back. */
Test(large, parked_pages_never_raise_the_peak)
{
	size_t parked = TEARDOWN_NR * 8 * MiB;
	void *q;

	tear_down();
	cr_assert_eq(zero_park_bytes(), parked);
	q = large_alloc(8 * MiB, 0, 0, -1, false);
	cr_assert_eq(zero_park_bytes(), parked - 8 * MiB, "served from it (%zu)", zero_park_bytes() >> 20);
	q = written(large_resize(q, 64 * MiB), 64 * MiB);
	cr_expect_leq(zero_park_bytes(), parked - 64 * MiB, "%zu MiB parked",
		      zero_park_bytes() / MiB);
	q = written(large_resize(q, parked + 8 * MiB), parked + 8 * MiB);
	cr_expect_eq(zero_park_bytes(), 0, "a new peak keeps nothing");
	cr_assert(large_free(q));
}

/* The same when the zones grow after a teardown (a program dropping its
 * buffers and building a heap of small objects): parked pages go as the
 * zones' pages come. */
Test(large, parked_pages_give_way_to_the_zones)
{
	enum { NR = 128 };		/* of 512 KiB: 64 MiB of zone pages */
	void *p[NR];

	tear_down();
	cr_assert_eq(zero_park_bytes(), TEARDOWN_NR * 8 * MiB);
	for (int i = 0; i < NR; i++)
		p[i] = written(alloc_malloc(512 << 10), 512 << 10);
	cr_expect_leq(zero_park_bytes(), (TEARDOWN_NR * 8 - 64 + 4) * MiB,
		      "%zu MiB still parked", zero_park_bytes() / MiB);
	for (int i = 0; i < NR; i++)
		alloc_free(p[i]);
}

/* --- huge pages for sizes the program fills ------------------------------ */

#define HUGE ((size_t)2 << 20)

/* Where transparent huge pages and PAGEMAP_SCAN (kernel 6.7) are not,
 * nothing is advised or learnt. */
static void
huge_setup(void)
{
	boot();
	if (access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) != 0)
		cr_skip_test("no transparent huge pages in this kernel");
	if (zero_kernel_zero_page() < 0)
		cr_skip_test("no PAGEMAP_SCAN in this kernel");
	large_set_huge_fill(90);
}

/* Blocks that a parked region serves teach nothing (their pages were
 * resident before): fresh regions only, but in the test of parking. */
static void
boot_huge(void)
{
	setenv("ZPMALLOC_PARK_MB", "0", 1);
	huge_setup();
}

/* A block of len written one page in stride (1: in full), freed. */
static void
use_and_free(size_t len, size_t stride)
{
	unsigned char *p = large_alloc(len, 0, 0, -1, false);

	cr_assert_not_null(p);
	for (size_t i = 0; i < len; i += stride * ZP_PAGE_SIZE)
		p[i] = 1;
	cr_assert(large_free(p));
}

/* The next block of len: placed for huge pages? (Freed again.) */
static bool
next_is_huge(size_t len)
{
	struct large_stats before, after;
	void *p;
	bool hg;

	large_get_stats(&before);
	p = large_alloc(len, 0, 0, -1, false);
	cr_assert_not_null(p);
	large_get_stats(&after);
	hg = vma_has_flag(p, "hg");
	cr_assert_eq(hg, after.nr_huge == before.nr_huge + 1,
		     "the statistics count what was advised");
	/* A fresh region not placed for huge pages has no advice to take
	 * back: none (malloc'd blocks keep what the kernel gives). */
	if (hg)
		cr_assert_eq((uintptr_t)p % HUGE, HUGE / 2,
			     "half a huge page past a boundary");
	else
		cr_assert_not(vma_has_flag(p, "nh"));
	memset(p, 0, len);
	cr_assert(large_free(p));
	return hg;
}

TestSuite(large_huge, .init = boot_huge);

Test(large_huge, sizes_the_program_fills_get_huge_pages)
{
	cr_assert_not(next_is_huge(8 * MiB), "nothing learnt yet");
	use_and_free(8 * MiB, 1);
	cr_assert(next_is_huge(8 * MiB));
	/* The same power of two, not another. */
	cr_assert(next_is_huge(12 * MiB));
	cr_assert_not(next_is_huge(32 * MiB));
}

/* sparse_calloc's pattern: huge pages would make it resident whole. */
Test(large_huge, sparsely_written_sizes_do_not)
{
	for (int i = 0; i < 4; i++)
		use_and_free(64 * MiB, 64);
	cr_assert_not(next_is_huge(64 * MiB));
}

Test(large_huge, one_sparse_block_takes_its_size_off_at_once)
{
	for (int i = 0; i < 4; i++)
		use_and_free(8 * MiB, 1);
	cr_assert(next_is_huge(8 * MiB));
	use_and_free(8 * MiB, 64);
	cr_assert_not(next_is_huge(8 * MiB));
	for (int i = 0; i < 4; i++)
		use_and_free(8 * MiB, 1);
	cr_assert(next_is_huge(8 * MiB), "filled again, learnt again");
}

/* A calloc'd block that no size teaches to expect filled: with
 * transparent huge pages "always" it is advised against them (the kernel
 * would make it resident 2 MiB for each byte written); otherwise it gets
 * no advice (a system call for nothing), and neither does a malloc'd
 * one, which keeps what the kernel gives. */
Test(large_huge, zeroed_blocks_are_advised_small_where_thp_is_always)
{
	unsigned char *p = large_alloc(64 * MiB, 0, 0, -1, true);
	unsigned char *q = large_alloc(64 * MiB, 0, 0, -1, false);

	cr_assert_not_null(p);
	cr_assert_not_null(q);
	cr_assert_eq(vma_has_flag(p, "nh"), os_thp_always());
	cr_assert_not(vma_has_flag(p, "hg"));
	cr_assert_not(vma_has_flag(q, "nh"));
	p[32 * MiB] = 1;
	if (os_thp_always())
		cr_assert_eq(vma_field_kb(p, "AnonHugePages"), 0);
	cr_assert(large_free(p));
	cr_assert(large_free(q));
}

/* A parked region serves a block of a filled size advised, and one of a
 * sparse size with its advice taken back. */
Test(large_huge_parking, parked_regions_take_the_advice_of_their_new_block,
     .init = huge_setup)
{
	unsigned char *p = NULL;

	/* Filled blocks, replaced at once: churn, parked. */
	for (int tries = 0; tries < 20 && !zero_park_bytes(); tries++) {
		p = large_alloc(8 * MiB, 0, 0, -1, false);
		memset(p, 1, 8 * MiB);
		cr_assert(large_free(p));
	}
	cr_assert_eq(zero_park_bytes(), 8 * MiB);
	cr_assert(vma_has_flag(p, "hg"), "parked as it was");
	large_set_huge_fill(0);
	p = large_alloc(8 * MiB, 0, 0, -1, true);
	cr_assert_eq(zero_park_bytes(), 0, "the parked region served it");
	cr_assert_not(vma_has_flag(p, "hg"));
	cr_assert(vma_has_flag(p, "nh"));
	cr_assert_eq(p[4096], 0);
	cr_assert(large_free(p));
}

Test(large_huge, a_fill_threshold_of_zero_turns_them_off)
{
	large_set_huge_fill(0);
	for (int i = 0; i < 4; i++)
		use_and_free(8 * MiB, 1);
	cr_assert_not(next_is_huge(8 * MiB));
}

static void
boot_without_parking(void)
{
	setenv("ZPMALLOC_PARK_MB", "0", 1);
	boot();
}

/* ZPMALLOC_PARK_MB=0: churn that parks by default (above) unmaps every
 * freed block instead. */
Test(large_options, park_budget_of_zero_parks_nothing,
     .init = boot_without_parking)
{
	for (int i = 0; i < 20; i++) {
		large_free(large_alloc(BIG, 0, 0, -1, false));
		cr_assert_eq(zero_park_bytes(), 0, "round %d", i);
	}
}

Test(large, placed_and_low32_blocks_are_not_parked)
{
	void *p = large_alloc(BIG, 0, 0, /* node */ 0, false);

	cr_assert_not_null(p);
	cr_assert(large_free(p));
	p = large_alloc(BIG, 0, LARGE_LOW32, -1, false);
	cr_assert_not_null(p);
	cr_assert(large_free(p));
	cr_assert_eq(zero_park_bytes(), 0);
}

Test(large, double_free_of_a_reused_region_aborts, .signal = SIGABRT)
{
	void *q;

	/* Churn, so that q is likely a parked region handed out again:
	 * its address left the recent-free ring when it was reused. */
	large_free(large_alloc(BIG, 0, 0, -1, false));
	large_free(large_alloc(BIG, 0, 0, -1, false));
	q = large_alloc(BIG, 0, 0, -1, false);
	large_free(q);
	large_free(q);
}

Test(large, double_free_aborts, .signal = SIGABRT)
{
	void *p = large_alloc(BIG, 0, 0, -1, false);

	large_free(p);
	large_free(p);
}

Test(large, resize_of_unknown_block_aborts, .signal = SIGABRT)
{
	static char buf[64];

	large_resize(buf, 10 * MiB);
}

/* --- large blocks against the memory limit ------------------------------- */

/* A limit of 1 GiB given: the usage the watermarks follow is then the
 * process's own resident set, sampled once per step's worth mapped. A
 * tighter cgroup limit wins, and its usage is the whole cgroup's, which
 * other processes move: skipped there. */
static void
boot_with_limit(void)
{
	struct zone_limit_info li;

	setenv("ZPMALLOC_MEMORY_LIMIT", "1073741824", 1);
	boot();
	zone_limit_info(&li);
	if (li.limit_bytes != (size_t)1 << 30)
		cr_skip_test("a tighter limit than the one given: %s",
			     li.source);
}

static size_t
sampled_usage(void)
{
	struct zone_limit_info li;

	zone_limit_info(&li);
	return li.usage_bytes;
}

/* n bytes resident that the allocator does not know of. */
static void *
unseen_rss(size_t n)
{
	int err;
	void *p = os_mmap_raw(NULL, n, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &err);

	cr_assert_neq(p, MAP_FAILED, "errno %d", err);
	return written(p, n);
}

/* A program that grows one buffer by realloc maps no new block: the
 * growth itself must be sampled, or the watermarks never see it. */
Test(large_options, growth_by_realloc_is_sampled_against_the_limit,
     .init = boot_with_limit)
{
	void *p = written(large_alloc(BIG, 0, 0, -1, false), BIG), *other;
	size_t before = sampled_usage();

	other = unseen_rss(64 * MiB);
	p = large_resize(p, BIG + 8 * MiB);
	cr_assert_not_null(p);
	cr_expect_geq(sampled_usage(), before + 60 * MiB,
		      "sampled %zu MiB, %zu before", sampled_usage() / MiB,
		      before / MiB);
	cr_assert(large_free(p));
	munmap(other, 64 * MiB);
}

/* A parked region that serves a bigger block is grown by new pages,
 * which count as a fresh block's do. */
Test(large_options, parked_region_grown_by_new_pages_is_sampled,
     .init = boot_with_limit)
{
	size_t before;
	void *q, *other;

	churn_until_parked(8 * MiB);
	before = sampled_usage();
	other = unseen_rss(64 * MiB);
	q = large_alloc(24 * MiB, 0, 0, -1, false);
	cr_assert_not_null(q);
	cr_assert_eq(zero_park_bytes(), 0, "the parked region served it");
	cr_expect_geq(sampled_usage(), before + 60 * MiB,
		      "sampled %zu MiB, %zu before", sampled_usage() / MiB,
		      before / MiB);
	cr_assert(large_free(q));
	munmap(other, 64 * MiB);
}

struct resize_job {
	void *p, *q;
	size_t n;
};

static void *
resize_main(void *arg)
{
	struct resize_job *j = arg;

	j->q = large_resize(j->p, j->n);
	return NULL;
}

/*
 * A resize that moves the block drops the table lock around the remap;
 * allocations by other threads meanwhile must not take the slot its new
 * address needs. Here the remap waits (the test holds the engine's
 * reclaim lock), the table fills up to its growth point behind it, and
 * the next map after the remap's own fails (a table growth then): the
 * moved block must still be in the table.
 */
static void
boot_without_reclaim(void)
{
	setenv("ZPMALLOC_RECLAIM", "0", 1);	/* no helper thread */
	boot();
}

Test(large_options, resize_keeps_its_slot_while_others_fill_the_table,
     .init = boot_without_reclaim)
{
	static void *fill[1024];
	struct resize_job j = { .n = 3 * BIG };
	struct large_stats st;
	unsigned nr = 0;
	pthread_t t;
	void *guard;

	j.p = large_alloc(BIG, 0, 0, -1, false);
	cr_assert_not_null(j.p);
	/* Something right after it (this, or what was there already), so
	 * growing has to move it. */
	guard = mmap((char *)j.p + BIG, ZP_PAGE_SIZE, PROT_READ,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	reclaim_lock();
	cr_assert_eq(pthread_create(&t, NULL, resize_main, &j), 0);
	usleep(100 * 1000);	/* it now waits for the remap */
	do {
		fill[nr] = large_alloc(BIG, 0, 0, -1, false);
		cr_assert_not_null(fill[nr]);
		large_get_stats(&st);
		nr++;
	} while ((st.nr_blocks + 1) * 4 <= st.table_capacity * 3 &&
		 nr < ZP_ARRAY_SIZE(fill));
	/* The remap tries in place, by a fresh mapping after it, then
	 * moves: the table's growth is the fourth. */
	os_fault_inject_nth(4);
	reclaim_unlock();
	pthread_join(t, NULL);
	os_fault_inject_nth(0);
	cr_assert_not_null(j.q, "the resize itself failed");
	cr_assert_neq(j.q, j.p);
	cr_assert_eq(large_usable_size(j.q), 3 * BIG,
		     "the moved block fell out of the table");
	cr_assert(large_free(j.q));
	for (unsigned i = 0; i < nr; i++)
		cr_assert(large_free(fill[i]));
	if (guard != MAP_FAILED)
		munmap(guard, ZP_PAGE_SIZE);
}
