/*
 * test_pcp.c - per-thread page caches: hits skip the zone, batches move
 * under one lock, foreign blocks bypass the cache, and many threads with
 * cross-thread frees leave a fully coalesced zone behind.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "page/zone.h"
#include "zpmalloc.h"
#include "zone_fixture.h"

#define MIB ((size_t)1 << 20)

static void
boot(size_t normal, unsigned fake, unsigned high, unsigned batch)
{
	struct zone_config cfg = {
		.nr_nodes = 1,
		.fake_numa = fake,
		.normal_reserve = normal,
		.purge_delay_ns = (uint64_t)1 << 62,
		.pcp_high = high,
		.pcp_batch = batch,
	};

	cr_assert_eq(zone_boot(&cfg), 0);
}


static void
assert_coalesced(unsigned idx)
{
	struct zp_zone_info zi = info(idx);

	cr_assert(zone_check_all());
	cr_assert_eq(zi.nr_free_pages << ZP_PAGE_SHIFT, zi.grown_bytes,
		     "zone %u: %lu free pages of %lu bytes", idx,
		     (unsigned long)zi.nr_free_pages,
		     (unsigned long)zi.grown_bytes);
	for (unsigned k = 0; k < ZP_MAX_ORDER - 1; k++)
		cr_assert_eq(zi.nr_free_by_order[k], 0);
}

Test(pcp, hits_do_not_touch_the_zone)
{
	struct pcp_set pcp;
	struct page *a, *b;
	uint64_t zone_allocs;

	boot(64 * MIB, 0, 32, 8);
	pcp_init(&pcp, 0);
	cr_assert_eq(pcp.lists[0].high, 32);
	cr_assert_eq(pcp.lists[0].batch, 8);
	a = zone_alloc_pages(&pcp, 0, 0, PAGE_SLAB, NULL);
	zone_allocs = info(0).nr_alloc;
	cr_assert_eq(zone_allocs, 8, "one refill takes a whole batch");
	cr_assert_eq(pcp.lists[0].count, 7);
	b = zone_alloc_pages(&pcp, 0, 0, PAGE_SLAB, NULL);
	cr_assert_neq(a, b);
	cr_assert_eq(b->kind, PAGE_SLAB);
	cr_assert_eq(info(0).nr_alloc, zone_allocs);
	zone_free_pages(&pcp, b);
	cr_assert_eq(b->kind, PAGE_PCP);
	cr_assert_eq(pcp.lists[0].count, 7);
	/* LIFO: the block just freed is the next one handed out. */
	cr_assert_eq(zone_alloc_pages(&pcp, 0, 0, PAGE_SLAB, NULL), b);
	if (ZP_IS_STATS)
		cr_assert_eq(pcp.nr_refill, 1);
	cr_assert_eq(info(0).nr_free_calls, 0);
}

Test(pcp, cached_blocks_keep_their_tails)
{
	struct pcp_set pcp;
	struct page *pg;

	boot(64 * MIB, 0, 32, 8);
	pcp_init(&pcp, 0);
	for (unsigned round = 0; round < 3; round++) {
		pg = zone_alloc_pages(&pcp, 3, 0, PAGE_MEDIUM, NULL);
		cr_assert_eq(pg->order, 3);
		for (unsigned i = 1; i < 8; i++)
			cr_assert_eq(page_head(&pg[i]), pg);
		cr_assert_eq(page_lookup((char *)page_address(pg) +
					 7 * ZP_PAGE_SIZE + 5), &pg[7]);
		zone_free_pages(&pcp, pg);
	}
}

Test(pcp, going_over_high_drains_a_batch)
{
	enum { N = 40 };
	struct pcp_set pcp;
	struct page *pgs[N];

	boot(64 * MIB, 0, 32, 8);
	pcp_init(&pcp, 0);
	for (unsigned i = 0; i < N; i++)
		pgs[i] = zone_alloc_pages(&pcp, 0, 0, PAGE_SLAB, NULL);
	for (unsigned i = 0; i < N; i++) {
		zone_free_pages(&pcp, pgs[i]);
		cr_assert_leq(pcp.lists[0].count, pcp.lists[0].high);
	}
	if (ZP_IS_STATS)
		cr_assert_gt(pcp.nr_drain, 0);
	cr_assert_gt(info(0).nr_free_calls, 0);
	cr_assert(zone_check_all());
	pcp_drain(&pcp);
	cr_assert_eq(pcp.lists[0].count, 0);
	assert_coalesced(0);
}

Test(pcp, high_zero_turns_the_cache_off)
{
	struct pcp_set pcp;
	struct page *pg;

	boot(64 * MIB, 0, 0, 8);
	pcp_init(&pcp, 0);
	pg = zone_alloc_pages(&pcp, 0, 0, PAGE_SLAB, NULL);
	cr_assert_not_null(pg);
	cr_assert_eq(info(0).nr_alloc, 1);
	zone_free_pages(&pcp, pg);
	cr_assert_eq(pcp.lists[0].count, 0);
	assert_coalesced(0);
}

Test(pcp, other_zones_blocks_bypass_the_cache)
{
	struct pcp_set pcp;
	struct page *pg;

	boot(64 * MIB, 2, 32, 8);
	pcp_init(&pcp, 0);
	cr_assert_eq(pcp.zone_id, 0);
	pg = zone_alloc_pages(&pcp, 0, GFP_NODE(1), PAGE_SLAB, NULL);
	cr_assert_eq(pg->zone_id, 1);
	cr_assert_eq(pcp.lists[0].count, 0, "no refill for node 1");
	zone_free_pages(&pcp, pg);
	cr_assert_eq(pcp.lists[0].count, 0);
	cr_assert_eq(info(1).nr_free_calls, 1);
	assert_coalesced(1);
	/* GFP_NODE naming the thread's own node still uses the cache. */
	pg = zone_alloc_pages(&pcp, 0, GFP_NODE(0), PAGE_SLAB, NULL);
	cr_assert_eq(pg->zone_id, 0);
	cr_assert_eq(pcp.lists[0].count, 7);
}

Test(pcp, exact_tails_are_cached)
{
	struct pcp_set pcp;
	struct page *pg;

	boot(64 * MIB, 0, 32, 8);
	pcp_init(&pcp, 0);
	pg = zone_alloc_exact(&pcp, 5, 0, PAGE_MEDIUM, NULL);
	cr_assert_eq(pg->npages, 5);
	/* Pages 5 (order 0) and 6-7 (order 1) went to the cache. */
	cr_assert_eq(pcp.lists[0].count, 1);
	cr_assert_eq(pcp.lists[1].count, 1);
	cr_assert_eq(pcp.lists[0].head, pg + 5);
	cr_assert_eq(pcp.lists[1].head, pg + 6);
	zone_free_exact(&pcp, pg);
	pcp_drain(&pcp);
	assert_coalesced(0);
}

/* Cached pieces of a large block's tail would keep it from merging back
 * whole once freed: the zone would grow for the next large request. */
Test(pcp, large_exact_tails_bypass_the_cache)
{
	struct pcp_set pcp;
	struct page *pg, *again;
	size_t committed;

	boot(64 * MIB, 0, 32, 8);
	pcp_init(&pcp, 0);
	pg = zone_alloc_exact(&pcp, 769, 0, PAGE_MEDIUM, NULL);
	cr_assert_not_null(pg);
	for (unsigned k = 0; k <= PCP_MAX_ORDER; k++)
		cr_assert_eq(pcp.lists[k].count, 0, "order %u cached", k);
	committed = info(0).grown_bytes;
	zone_free_exact(&pcp, pg);
	again = zone_alloc_pages(&pcp, ZP_MAX_ORDER, 0, PAGE_MEDIUM, NULL);
	cr_assert_eq(again, pg, "the block merged back whole");
	cr_assert_eq(info(0).grown_bytes, committed);
	zone_free_pages(&pcp, again);
	pcp_drain(&pcp);
	assert_coalesced(0);
}

/* --- sizing --------------------------------------------------------------- */

static void
boot_scaled(unsigned high, unsigned batch, unsigned fraction)
{
	struct zone_config cfg = {
		.nr_nodes = 1,
		.normal_reserve = 128 * MIB,
		.purge_delay_ns = (uint64_t)1 << 62,
		.pcp_high = high,
		.pcp_batch = batch,
		.pcp_fraction = fraction,
	};

	cr_assert_eq(zone_boot(&cfg), 0);
}

/* Pages in use that no cache sees: blocks of the largest order. */
static void
use_pages(struct page **out, unsigned nr_blocks)
{
	for (unsigned i = 0; i < nr_blocks; i++) {
		out[i] = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM,
					  NULL);
		cr_assert_not_null(out[i]);
	}
}

static void
assert_highs(const struct pcp_set *pcp, const uint32_t want[PCP_MAX_ORDER + 1])
{
	for (unsigned k = 0; k <= PCP_MAX_ORDER; k++)
		cr_assert_eq(pcp->lists[k].high, want[k],
			     "order %u: high %u, want %u", k,
			     pcp->lists[k].high, want[k]);
}

/* Linux's pcp high follows its zone's size and CPUs; ours, the zone's
 * pages in use and the live caches: together they hold at most a 32nd
 * of those pages, a quarter of each cache's share an order, so a small
 * program's cache holds nothing and a large heap's its full high. */
Test(pcp, a_cache_holds_its_share_of_the_pages_in_use)
{
	enum { BLOCK_PAGES = 1 << ZP_MAX_ORDER };
	static const uint32_t none[] = { 0, 0, 0, 0 }, share[] = { 32, 16, 8, 4 },
			      halved[] = { 16, 8, 4, 2 }, full[] = { 64, 32, 16, 8 };
	struct pcp_set a, b;
	struct page *big[16], *pg;

	boot_scaled(64, 16, 32);
	pcp_init(&a, 0);
	assert_highs(&a, none);
	pg = zone_alloc_pages(&a, 0, 0, PAGE_SLAB, NULL);
	zone_free_pages(&a, pg);
	cr_assert_eq(a.lists[0].count, 0, "nothing in use: nothing cached");
	/* 4096 pages in use (and the batch): a share of 128, 32 an order. */
	use_pages(big, 4096 / BLOCK_PAGES);
	pg = zone_alloc_pages(&a, 0, 0, PAGE_SLAB, NULL);
	assert_highs(&a, share);
	cr_assert_eq(a.lists[0].count, a.lists[0].batch - 1);
	zone_free_pages(&a, pg);
	/* A second live cache halves each one's share, at the next refill. */
	pcp_init(&b, 0);
	assert_highs(&b, halved);
	pg = zone_alloc_pages(&a, 1, 0, PAGE_SLAB, NULL);
	assert_highs(&a, halved);
	zone_free_pages(&a, pg);
	pcp_fini(&b);
	pg = zone_alloc_pages(&a, 2, 0, PAGE_SLAB, NULL);
	assert_highs(&a, share);
	zone_free_pages(&a, pg);
	/* 16384 pages in use: a share of 512, capped by pcp_high. */
	use_pages(big + 4, 12);
	pg = zone_alloc_pages(&a, 3, 0, PAGE_SLAB, NULL);
	assert_highs(&a, full);
	zone_free_pages(&a, pg);
	for (unsigned i = 0; i < 16; i++)
		zone_free_pages(NULL, big[i]);
	pcp_fini(&a);
	assert_coalesced(0);
}

/* A cache over its high after the zone shrank (or more threads came)
 * gives its excess back at its next refill. */
Test(pcp, a_shrunk_share_drains_the_excess)
{
	enum { N = 40 };
	struct page *big[8], *pgs[N];
	struct pcp_set pcp;

	boot_scaled(64, 16, 32);
	pcp_init(&pcp, 0);
	use_pages(big, 8);
	for (unsigned i = 0; i < N; i++)
		pgs[i] = zone_alloc_pages(&pcp, 0, 0, PAGE_SLAB, NULL);
	for (unsigned i = 0; i < N; i++)
		zone_free_pages(&pcp, pgs[i]);
	cr_assert_eq(pcp.lists[0].high, 64);
	cr_assert_gt(pcp.lists[0].count, 32);
	for (unsigned i = 0; i < 8; i++)
		zone_free_pages(NULL, big[i]);
	/* Nothing in use but the cache's own pages: its share is 0. An
	 * order-1 miss sizes the lists again. */
	pgs[0] = zone_alloc_pages(&pcp, 1, 0, PAGE_SLAB, NULL);
	cr_assert_eq(pcp.lists[0].high, 0);
	zone_free_pages(&pcp, pgs[0]);
	cr_assert_eq(pcp.lists[0].count, 0, "%u blocks left in the cache",
		     pcp.lists[0].count);
	pcp_fini(&pcp);
	assert_coalesced(0);
}

/* --- many threads ------------------------------------------------------- */

enum { NTHREADS = 4, SLOTS = 128, STEPS = 40000 };

static struct page *volatile mailbox[64];	/* cross-thread handoff */

struct worker {
	pthread_t tid;
	unsigned seed;
	unsigned long errors;
};

static void
fill(struct page *pg)
{
	uint64_t *p = page_address(pg);

	p[0] = (uintptr_t)pg;
	p[((ZP_PAGE_SIZE << pg->order) / 8) - 1] = ~(uintptr_t)pg;
}

static bool
intact(struct page *pg)
{
	uint64_t *p = page_address(pg);

	return p[0] == (uintptr_t)pg &&
	       p[((ZP_PAGE_SIZE << pg->order) / 8) - 1] == ~(uintptr_t)pg;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct page *slots[SLOTS] = { 0 };
	struct pcp_set pcp;
	static const unsigned orders[8] = { 0, 0, 0, 0, 1, 1, 2, 4 };

	pcp_init(&pcp, zone_local_node());
	for (unsigned s = 0; s < STEPS; s++) {
		unsigned r = (unsigned)rand_r(&w->seed);
		struct page **slot = &slots[r % SLOTS];

		if (*slot) {
			w->errors += !intact(*slot);
			/* Now and then hand the block to another thread. */
			if (r % 7 == 0)
				*slot = __atomic_exchange_n(
					&mailbox[(r >> 8) % 64], *slot,
					__ATOMIC_ACQ_REL);
			if (*slot) {
				w->errors += !intact(*slot);
				zone_free_pages(&pcp, *slot);
			}
			*slot = NULL;
		} else {
			*slot = zone_alloc_pages(&pcp, orders[(r >> 4) % 8],
						 0, PAGE_SLAB, NULL);
			if (*slot)
				fill(*slot);
			else
				w->errors++;
		}
	}
	for (unsigned i = 0; i < SLOTS; i++)
		if (slots[i])
			zone_free_pages(&pcp, slots[i]);
	pcp_drain(&pcp);
	return NULL;
}

Test(pcp, threads_leave_no_leak_behind)
{
	struct worker w[NTHREADS];
	struct pcp_set pcp;

	boot(256 * MIB, 0, 32, 8);
	for (unsigned i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .seed = i + 1 };
		pthread_create(&w[i].tid, NULL, worker_main, &w[i]);
	}
	for (unsigned i = 0; i < NTHREADS; i++) {
		pthread_join(w[i].tid, NULL);
		cr_assert_eq(w[i].errors, 0, "thread %u saw %lu errors", i,
			     w[i].errors);
	}
	pcp_init(&pcp, 0);
	for (unsigned i = 0; i < 64; i++)
		if (mailbox[i]) {
			cr_assert(intact(mailbox[i]));
			zone_free_pages(&pcp, mailbox[i]);
		}
	pcp_drain(&pcp);
	cr_assert_gt(info(0).nr_free_calls, 0);
	assert_coalesced(0);
}

Test(pcp, threads_on_fake_nodes_leave_no_leak_behind)
{
	struct worker w[NTHREADS];
	struct pcp_set pcp;

	boot(256 * MIB, 2, 32, 8);
	for (unsigned i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .seed = 100 + i };
		pthread_create(&w[i].tid, NULL, worker_main, &w[i]);
	}
	for (unsigned i = 0; i < NTHREADS; i++) {
		pthread_join(w[i].tid, NULL);
		cr_assert_eq(w[i].errors, 0);
	}
	pcp_init(&pcp, 0);
	for (unsigned i = 0; i < 64; i++)
		if (mailbox[i])
			zone_free_pages(&pcp, mailbox[i]);
	pcp_drain(&pcp);
	assert_coalesced(0);
	assert_coalesced(1);
}
