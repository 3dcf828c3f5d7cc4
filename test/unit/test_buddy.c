/*
 * test_buddy.c - the buddy algorithm through the zone API, against a model:
 * random mixed-order sequences, exact blocks, resize, zero-ness, and the
 * double-free backstop.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "os/os.h"
#include "page/zone.h"
#include "zpmalloc.h"
#include "zone_fixture.h"

#define MIB ((size_t)1 << 20)

static void
boot(size_t normal, size_t low32)
{
	struct zone_config cfg = {
		.nr_nodes = 1,
		.normal_reserve = normal,
		.low32_reserve = low32,
		.purge_delay_ns = (uint64_t)1 << 62,
		.pcp_high = 32,
		.pcp_batch = 8,
	};

	cr_assert_eq(zone_boot(&cfg), 0);
}


/* Everything free again, merged into whole 4 MiB blocks (one 2 MiB block
 * at most, when an odd number of commit steps was taken). */
static void
assert_coalesced(unsigned idx)
{
	struct zp_zone_info zi = info(idx);

	cr_assert(zone_check_all());
	cr_assert_eq(zi.nr_free_pages << ZP_PAGE_SHIFT, zi.grown_bytes,
		     "free %lu pages, grown %lu bytes",
		     (unsigned long)zi.nr_free_pages,
		     (unsigned long)zi.grown_bytes);
	for (unsigned k = 0; k < ZP_MAX_ORDER - 1; k++)
		cr_assert_eq(zi.nr_free_by_order[k], 0, "order %u has %lu", k,
			     (unsigned long)zi.nr_free_by_order[k]);
	cr_assert_leq(zi.nr_free_by_order[ZP_MAX_ORDER - 1], 1);
}

struct live {
	struct page *pg;
	unsigned order;
	uint8_t tag;
};

/* Small orders dominate, as in a heap; every order shows up. */
static unsigned
random_order(void)
{
	unsigned r = (unsigned)rand() % 100;

	if (r < 40)
		return 0;
	if (r < 60)
		return 1;
	if (r < 72)
		return 2;
	if (r < 82)
		return 3;
	return 4 + (unsigned)rand() % (ZP_MAX_ORDER - 3);
}

/* Criterion reports every assertion to its runner, so the per-step checks
 * test plainly and only fail through it. */
#define check(cond, ...)						\
	do {								\
		if (!(cond))						\
			cr_assert_fail(__VA_ARGS__);			\
	} while (0)

static void
free_live(struct pcp_set *pcp, struct live *l, uint8_t *owner, uintptr_t base)
{
	char *p = page_address(l->pg);
	size_t bytes = ZP_PAGE_SIZE << l->order;
	size_t first = ((uintptr_t)p - base) >> ZP_PAGE_SHIFT;

	check((uint8_t)p[0] == l->tag && (uint8_t)p[bytes - 1] == l->tag,
	      "block %p (order %u) was overwritten", p, l->order);
	for (size_t i = 0; i < ((size_t)1 << l->order); i++)
		owner[first + i] = 0;
	zone_free_pages(pcp, l->pg);
	l->pg = NULL;
}

static void
alloc_live(struct pcp_set *pcp, struct live *l, uint8_t *owner,
	   size_t nr_owner, uintptr_t base)
{
	unsigned order = random_order();
	bool zero;
	struct page *pg = zone_alloc_pages(pcp, order, 0, PAGE_MEDIUM, &zero);

	if (!pg)
		return;
	char *p = page_address(pg);
	size_t bytes = ZP_PAGE_SIZE << order;
	size_t first = ((uintptr_t)p - base) >> ZP_PAGE_SHIFT;

	check(((uintptr_t)p & (bytes - 1)) == 0, "order %u block %p "
	      "misaligned", order, p);
	check(first + ((size_t)1 << order) <= nr_owner, "%p beyond zone", p);
	check(pg->kind == PAGE_MEDIUM && pg->order == order,
	      "head kind %u order %u", pg->kind, pg->order);
	for (size_t i = 0; i < ((size_t)1 << order); i++) {
		check(owner[first + i] == 0, "page %zu handed out twice",
		      first + i);
		owner[first + i] = 1;
	}
	check(page_lookup(p) == pg, "lookup of %p", p);
	check(page_head(page_lookup(p + bytes - 1)) == pg, "head from tail");
	check(!zero || p[bytes / 2] == 0, "block %p said zero but is not", p);
	l->pg = pg;
	l->order = order;
	l->tag = (uint8_t)rand();
	p[0] = (char)l->tag;
	p[bytes - 1] = (char)l->tag;
	p[bytes / 2] = 1;
}

static void
run_model(struct pcp_set *pcp, unsigned steps, unsigned seed)
{
	enum { NLIVE = 256 };
	static struct live live[NLIVE];
	static uint8_t owner[(64 << 20) >> ZP_PAGE_SHIFT];
	struct zp_zone_info zi = info(0);

	srand(seed);
	memset(live, 0, sizeof(live));
	memset(owner, 0, sizeof(owner));
	for (unsigned s = 0; s < steps; s++) {
		struct live *l = &live[(unsigned)rand() % NLIVE];

		if (l->pg)
			free_live(pcp, l, owner, zi.base);
		else
			alloc_live(pcp, l, owner, sizeof(owner), zi.base);
		if (s % 512 == 0)
			check(zone_check_all(), "step %u", s);
	}
	for (unsigned i = 0; i < NLIVE; i++)
		if (live[i].pg)
			free_live(pcp, &live[i], owner, zi.base);
	if (pcp)
		pcp_drain(pcp);
	assert_coalesced(0);
}

Test(buddy, random_sequences_match_the_model)
{
	boot(64 * MIB, 0);
	run_model(NULL, 20000, 1);
}

Test(buddy, random_sequences_through_pcp_match_the_model)
{
	struct pcp_set pcp;

	boot(64 * MIB, 0);
	pcp_init(&pcp, 0);
	run_model(&pcp, 20000, 2);
	if (ZP_IS_STATS) {
		cr_assert_gt(pcp.nr_refill, 0);
		cr_assert_gt(pcp.nr_drain, 0);
	}
}

Test(buddy, blocks_are_naturally_aligned_at_every_order)
{
	boot(64 * MIB, 0);
	for (unsigned k = 0; k <= ZP_MAX_ORDER; k++) {
		struct page *a = zone_alloc_pages(NULL, k, 0, PAGE_META, NULL);
		struct page *b = zone_alloc_pages(NULL, k, 0, PAGE_META, NULL);

		cr_assert(a && b);
		cr_assert_eq((uintptr_t)page_address(a) % (ZP_PAGE_SIZE << k),
			     0);
		cr_assert_eq((uintptr_t)page_address(b) % (ZP_PAGE_SIZE << k),
			     0);
		cr_assert_neq(a, b);
	}
	cr_assert(zone_check_all());
}

Test(buddy, order_beyond_max_is_refused)
{
	boot(64 * MIB, 0);
	cr_assert_null(zone_alloc_pages(NULL, ZP_MAX_ORDER + 1, 0, PAGE_META,
					NULL));
	cr_assert_null(zone_alloc_exact(NULL, ((size_t)1 << ZP_MAX_ORDER) + 1,
					0, PAGE_META, NULL));
}

Test(buddy, fresh_pages_are_zero_and_freed_pages_are_dirty)
{
	bool zero = false;
	struct page *pg;
	char *p;

	boot(64 * MIB, 0);
	pg = zone_alloc_pages(NULL, 2, 0, PAGE_MEDIUM, &zero);
	cr_assert(zero);
	p = page_address(pg);
	p[100] = 7;
	zone_free_pages(NULL, pg);
	/* Dirty blocks are reused first, and report so. */
	pg = zone_alloc_pages(NULL, 2, 0, PAGE_MEDIUM, &zero);
	cr_assert_eq(page_address(pg), p);
	cr_assert_not(zero);
	cr_assert_eq(p[100], 7);
}

Test(buddy, exact_block_holds_only_its_pages)
{
	struct zp_zone_info before, after;
	struct page *pg;
	bool zero;

	boot(64 * MIB, 0);
	pg = zone_alloc_pages(NULL, 0, 0, PAGE_META, NULL);	/* grow once */
	zone_free_pages(NULL, pg);
	before = info(0);
	pg = zone_alloc_exact(NULL, 5, 0, PAGE_MEDIUM, &zero);
	cr_assert_not_null(pg);
	cr_assert_not(zero);	/* its first page was handed out before */
	cr_assert_eq(pg->npages, 5);
	after = info(0);
	cr_assert_eq(before.nr_free_pages - after.nr_free_pages, 5);
	for (unsigned i = 1; i < 5; i++) {
		cr_assert_eq(pg[i].kind, PAGE_TAIL);
		cr_assert_eq(page_head(&pg[i]), pg);
	}
	cr_assert_neq(pg[5].kind, PAGE_TAIL);
	cr_assert(zone_check_all());
	zone_free_exact(NULL, pg);
	assert_coalesced(0);
}

Test(buddy, exact_sizes_all_round_trip)
{
	static struct page *pgs[150];

	/* Rounded up to powers of two these need 16299 pages at once: give
	 * them room, packing a full zone is not what this checks. */
	boot(128 * MIB, 0);
	for (size_t n = 1; n < 150; n++) {
		pgs[n] = zone_alloc_exact(NULL, n, 0, PAGE_MEDIUM, NULL);
		cr_assert_not_null(pgs[n]);
		memset(page_address(pgs[n]), (int)n, n * ZP_PAGE_SIZE);
	}
	cr_assert(zone_check_all());
	for (size_t n = 1; n < 150; n++) {
		unsigned char *p = page_address(pgs[n]);

		cr_assert_eq(p[0], (unsigned char)n);
		cr_assert_eq(p[n * ZP_PAGE_SIZE - 1], (unsigned char)n);
		zone_free_exact(NULL, pgs[n]);
	}
	assert_coalesced(0);
}

Test(buddy, exact_resize_grows_into_free_pages_and_shrinks)
{
	struct page *pg, *next;
	bool zero = false;
	uint64_t free0;

	boot(64 * MIB, 0);
	pg = zone_alloc_exact(NULL, 5, 0, PAGE_MEDIUM, NULL);
	free0 = info(0).nr_free_pages;
	cr_assert(zone_resize_exact_try(pg, 8, &zero));
	cr_assert(zero);
	cr_assert_eq(pg->npages, 8);
	cr_assert_eq(info(0).nr_free_pages, free0 - 3);
	/* Past the original power of two, too. */
	cr_assert(zone_resize_exact_try(pg, 37, &zero));
	cr_assert_eq(info(0).nr_free_pages, free0 - 32);
	cr_assert_eq(page_head(&pg[36]), pg);
	cr_assert(zone_check_all());
	cr_assert(zone_resize_exact_try(pg, 3, &zero));
	cr_assert_not(zero);
	cr_assert_eq(info(0).nr_free_pages, free0 + 2);
	cr_assert(zone_check_all());
	/* The buddy allocator reuses the page right after the block first
	 * (smallest free order, list head), which blocks growth. */
	next = zone_alloc_pages(NULL, 0, 0, PAGE_META, NULL);
	cr_assert_eq(next, pg + 3);
	cr_assert_not(zone_resize_exact_try(pg, 4, &zero));
	cr_assert_eq(pg->npages, 3);
	zone_free_pages(NULL, next);
	cr_assert(zone_resize_exact_try(pg, 4, &zero));
	cr_assert_not(zero);	/* that page was handed out before */
	zone_free_exact(NULL, pg);
	assert_coalesced(0);
}

Test(buddy, resize_stops_at_the_committed_end)
{
	struct page *pg;

	boot(64 * MIB, 0);
	pg = zone_alloc_exact(NULL, 1024, 0, PAGE_MEDIUM, NULL);
	cr_assert_not_null(pg);
	cr_assert_not(zone_resize_exact_try(pg, 1025, NULL));
	cr_assert(zone_resize_exact_try(pg, 600, NULL));
	cr_assert(zone_resize_exact_try(pg, 1024, NULL));
	zone_free_exact(NULL, pg);
	assert_coalesced(0);
}

Test(buddy, double_free_aborts, .signal = SIGABRT)
{
	struct page *pg;

	boot(64 * MIB, 0);
	pg = zone_alloc_pages(NULL, 1, 0, PAGE_SLAB, NULL);
	zone_free_pages(NULL, pg);
	zone_free_pages(NULL, pg);
}

/* A block of the big order is listed by its big-block entry once free;
 * its head's descriptor is marked free all the same, so that freeing it
 * again aborts rather than merging a free block twice. */
Test(buddy, double_free_of_a_big_block_aborts, .signal = SIGABRT)
{
	struct page *pg;

	boot(64 * MIB, 0);
	/* No purge: it would drop the descriptor's page, which then reads
	 * as nothing allocated either. */
	cr_assert_eq(zone_set_retain(0, 1 << 20, 1 << 20), 0);
	pg = zone_alloc_pages(NULL, BUDDY_BIG_ORDER + 1, 0, PAGE_MEDIUM,
			      NULL);
	zone_free_pages(NULL, pg);
	zone_free_pages(NULL, pg);
}

Test(buddy, double_free_through_pcp_aborts, .signal = SIGABRT)
{
	struct pcp_set pcp;
	struct page *pg;

	boot(64 * MIB, 0);
	pcp_init(&pcp, 0);
	pg = zone_alloc_pages(&pcp, 0, 0, PAGE_SLAB, NULL);
	zone_free_pages(&pcp, pg);
	zone_free_pages(&pcp, pg);
}

Test(buddy, freeing_a_tail_page_aborts, .signal = SIGABRT)
{
	struct page *pg;

	boot(64 * MIB, 0);
	pg = zone_alloc_pages(NULL, 2, 0, PAGE_SLAB, NULL);
	zone_free_pages(NULL, pg + 1);
}

Test(buddy, exact_block_freed_as_plain_block_aborts, .signal = SIGABRT)
{
	struct page *pg;

	boot(64 * MIB, 0);
	pg = zone_alloc_exact(NULL, 3, 0, PAGE_MEDIUM, NULL);
	zone_free_pages(NULL, pg);
}

Test(buddy, double_exact_free_aborts, .signal = SIGABRT)
{
	struct page *pg;

	boot(64 * MIB, 0);
	pg = zone_alloc_exact(NULL, 300, 0, PAGE_MEDIUM, NULL);
	zone_free_exact(NULL, pg);
	zone_free_exact(NULL, pg);
}

Test(buddy, lookup_rejects_foreign_pointers)
{
	int local;
	struct page *pg;

	boot(64 * MIB, 0);
	cr_assert_null(page_lookup(&local));
	pg = zone_alloc_pages(NULL, 0, 0, PAGE_META, NULL);
	cr_assert_eq(page_lookup((char *)page_address(pg) + 4095), pg);
	/* Reserved but not yet committed: not ours. */
	cr_assert_null(page_lookup((char *)info(0).base + 60 * MIB));
}

/* Small blocks placed in the holes large ones leave would keep those
 * regions from ever being whole again. */
Test(buddy, small_blocks_keep_out_of_large_regions)
{
	enum { N = 8 };
	struct page *large[2 * N], *small[64];
	size_t committed;

	boot(128 * MIB, 0);
	for (unsigned i = 0; i < 2 * N; i++)
		large[i] = zone_alloc_pages(NULL, ZP_MAX_ORDER - 1, 0,
					    PAGE_MEDIUM, NULL);
	/* Holes of 2 MiB in every 4 MiB region. */
	for (unsigned i = 0; i < 2 * N; i += 2)
		zone_free_pages(NULL, large[i]);
	for (unsigned i = 0; i < 64; i++)
		small[i] = zone_alloc_pages(NULL, (unsigned)i % 4, 0,
					    PAGE_SLAB, NULL);
	for (unsigned i = 1; i < 2 * N; i += 2)
		zone_free_pages(NULL, large[i]);
	committed = info(0).grown_bytes;
	/* Every region the large blocks used is whole again. */
	for (unsigned i = 0; i < N; i++) {
		large[i] = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0,
					    PAGE_MEDIUM, NULL);
		cr_assert_not_null(large[i]);
	}
	cr_assert_eq(info(0).grown_bytes, committed, "the zone grew");
	cr_assert(zone_check_all());
	for (unsigned i = 0; i < N; i++)
		zone_free_pages(NULL, large[i]);
	for (unsigned i = 0; i < 64; i++)
		zone_free_pages(NULL, small[i]);
	assert_coalesced(0);
}

/* Growing an exact block into a whole free region splits that region
 * outside buddy_alloc: the rest of it must not stay on the lists of free
 * regions, or the next split there would file blocks under the wrong
 * lists and hand pages out twice. */
Test(buddy, resize_into_a_free_region_keeps_the_lists_right)
{
	struct page *x, *a, *b, *pgs[40];
	unsigned n = 0;

	boot(64 * MIB, 0);
	x = zone_alloc_pages(NULL, ZP_MAX_ORDER - 1, 0, PAGE_MEDIUM, NULL);
	a = zone_alloc_exact(NULL, 500, 0, PAGE_MEDIUM, NULL);
	cr_assert_eq(a, x + 512, "the second half of the first region");
	b = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM, NULL);
	cr_assert_eq(b, x + 1024, "the next region");
	zone_free_pages(NULL, b);
	cr_assert(zone_resize_exact_try(a, 600, NULL));
	cr_assert(zone_check_all());
	/* Split what is left of that region every which way. */
	while (n < 40 && (pgs[n] = zone_alloc_pages(NULL, n % 8, 0,
						    PAGE_MEDIUM, NULL)))
		n++;
	cr_assert(zone_check_all());
	for (unsigned i = 0; i < n; i++)
		zone_free_pages(NULL, pgs[i]);
	zone_free_exact(NULL, a);
	zone_free_pages(NULL, x);
	assert_coalesced(0);
}
