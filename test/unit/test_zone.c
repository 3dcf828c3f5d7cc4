/*
 * test_zone.c - zones: LOW32 placement, zonelist fallback and
 * lowmem_reserve, fake NUMA, growth failure, watermarks, purging, stats,
 * fork hooks.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "os/os.h"
#include "page/zone.h"
#include "zpmalloc.h"
#include "zone_fixture.h"

#define MIB ((size_t)1 << 20)
#define NEVER ((uint64_t)1 << 62)

static void
boot_cfg(size_t normal, size_t low32, unsigned fake, uint64_t delay)
{
	struct zone_config cfg = {
		.nr_nodes = 1,
		.fake_numa = fake,
		.normal_reserve = normal,
		.low32_reserve = low32,
		.purge_delay_ns = delay,
		.pcp_high = 32,
		.pcp_batch = 8,
	};

	cr_assert_eq(zone_boot(&cfg), 0);
}


static bool
in_zone(const struct zp_zone_info *zi, const void *p)
{
	uintptr_t a = (uintptr_t)p;

	return a >= zi->base && a < zi->base + zi->span_bytes;
}

static uint64_t
avail_of(const struct zp_zone_info *zi)
{
	return zi->nr_free_pages +
	       ((zi->span_bytes - zi->grown_bytes) >> ZP_PAGE_SHIFT);
}

static uint64_t
avail(unsigned idx)
{
	struct zp_zone_info zi = info(idx);

	return avail_of(&zi);
}

static bool
has_zone(const char *name, int node, unsigned *idx)
{
	struct zp_zone_info zi;

	for (unsigned i = 0; zone_info(i, &zi) == 0; i++) {
		if (strcmp(zi.name, name) == 0 && zi.node == node) {
			*idx = i;
			return true;
		}
	}
	return false;
}

/* LOW32 exists once something asked for it: ask, if need be. */
static unsigned
find_zone(const char *name, int node)
{
	unsigned idx;

	if (!has_zone(name, node, &idx) && strcmp(name, "Low32") == 0) {
		struct page *pg = zone_alloc_pages(NULL, 0, GFP_LOW32,
						   PAGE_MEDIUM, NULL);

		cr_assert_not_null(pg);
		zone_free_pages(NULL, pg);
	}
	cr_assert(has_zone(name, node, &idx), "no %s zone on node %d", name,
		  node);
	return idx;
}

Test(zone, low32_is_placed_by_the_first_low32_request)
{
	unsigned idx;
	struct page *pg;

	boot_cfg(64 * MIB, 32 * MIB, 0, NEVER);
	/* Nothing below 4 GiB is taken from the program before then
	 * (MAP_32BIT users need that window), not even by fallback. */
	pg = zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL);
	cr_assert_not_null(pg);
	zone_free_pages(NULL, pg);
	cr_assert_not(has_zone("Low32", 0, &idx));
	cr_assert_eq(zone_count(), 1);
	pg = zone_alloc_pages(NULL, 0, GFP_LOW32, PAGE_MEDIUM, NULL);
	cr_assert_not_null(pg);
	cr_assert(has_zone("Low32", 0, &idx));
	cr_assert_eq(pg->zone_id, idx);
	cr_assert_lt((uintptr_t)page_address(pg), (uintptr_t)4 << 30);
	zone_free_pages(NULL, pg);
	cr_assert(zone_check_all());
}

Test(zone, low32_pages_lie_below_4g)
{
	unsigned lo, n = 0;
	struct page *pg;

	boot_cfg(64 * MIB, 32 * MIB, 0, NEVER);
	lo = find_zone("Low32", 0);
	cr_assert_leq(info(lo).base + info(lo).span_bytes, (uint64_t)4 << 30);
	while ((pg = zone_alloc_pages(NULL, (unsigned)n % 11, GFP_LOW32,
				      PAGE_MEDIUM, NULL)) != NULL) {
		uintptr_t end = (uintptr_t)page_address(pg) +
				(ZP_PAGE_SIZE << pg->order);

		cr_assert_leq(end, (uintptr_t)4 << 30);
		cr_assert_eq(pg->zone_id, lo);
		*(volatile char *)page_address(pg) = 1;
		n++;
	}
	cr_assert_gt(n, 10);
	/* LOW32 requests may use all of LOW32 (no reserve against them)
	 * and never touch NORMAL. */
	while (zone_alloc_pages(NULL, 0, GFP_LOW32, PAGE_MEDIUM, NULL))
		n++;
	cr_assert_eq(avail(lo), 0);
	cr_assert_eq(info(find_zone("Normal", 0)).committed_bytes, 0);
	cr_assert(zone_check_all());
}

Test(zone, normal_falls_back_to_low32_down_to_its_reserve)
{
	unsigned nz, lz, from_normal = 0, from_low = 0;
	struct page *pg;
	struct zp_zone_info ni, li;

	boot_cfg(16 * MIB, 16 * MIB, 0, NEVER);
	nz = find_zone("Normal", 0);
	lz = find_zone("Low32", 0);
	cr_assert_eq(info(lz).lowmem_reserve[ZONE_NORMAL], 2048);
	while ((pg = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM,
				      NULL)) != NULL) {
		ni = info(nz);
		li = info(lz);
		if (in_zone(&ni, page_address(pg))) {
			/* The preferred zone is used up before any fallback. */
			cr_assert_eq(from_low, 0);
			from_normal++;
		} else {
			cr_assert(in_zone(&li, page_address(pg)));
			from_low++;
		}
	}
	li = info(lz);
	cr_assert_eq(from_normal, 4);
	cr_assert_eq(from_low, 2);
	cr_assert_eq(li.nr_fallback_in, 2);
	cr_assert_geq(avail_of(&li), li.lowmem_reserve[ZONE_NORMAL]);
	cr_assert_gt(info(nz).nr_failed, 0);
	/* Even an order-0 NORMAL request may not dip into the reserve... */
	cr_assert_null(zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL));
	/* ...which LOW32 requests may use. */
	cr_assert_not_null(zone_alloc_pages(NULL, ZP_MAX_ORDER, GFP_LOW32,
					    PAGE_MEDIUM, NULL));
	cr_assert(zone_check_all());
}

Test(zone, lowmem_reserve_is_honoured_to_the_page)
{
	unsigned lz;
	uint64_t got = 0;
	struct page *pg;

	boot_cfg(8 * MIB, 16 * MIB, 0, NEVER);
	lz = find_zone("Low32", 0);
	cr_assert_eq(zone_set_lowmem_reserve(lz, ZONE_NORMAL, 1000), 0);
	while ((pg = zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL)))
		got += pg->zone_id == lz;
	cr_assert_eq(got, 4096 - 1000);
	cr_assert_eq(avail(lz), 1000);
	cr_assert_eq(zone_set_lowmem_reserve(99, ZONE_NORMAL, 1), -1);
}

Test(zone, low32_requests_never_get_normal_pages)
{
	unsigned lz;
	struct page *pg;
	unsigned n = 0;

	boot_cfg(64 * MIB, 8 * MIB, 0, NEVER);
	lz = find_zone("Low32", 0);
	while ((pg = zone_alloc_pages(NULL, 3, GFP_LOW32, PAGE_MEDIUM, NULL))) {
		cr_assert_eq(pg->zone_id, lz);
		n++;
	}
	cr_assert_eq(n, (8 * MIB) / (8 * ZP_PAGE_SIZE));
	/* NORMAL has room, but LOW32 requests must not take it. */
	cr_assert_not_null(zone_alloc_pages(NULL, 3, 0, PAGE_MEDIUM, NULL));
	cr_assert_null(zone_alloc_pages(NULL, 0, GFP_LOW32, PAGE_MEDIUM,
					NULL));
}

Test(zone, no_low32_zone_means_low32_requests_fail)
{
	boot_cfg(16 * MIB, 0, 0, NEVER);
	cr_assert_eq(zone_count(), 1);
	cr_assert_null(zone_alloc_pages(NULL, 0, GFP_LOW32, PAGE_MEDIUM,
					NULL));
	cr_assert_not_null(zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL));
}

Test(zone, fake_numa_makes_one_normal_zone_per_node)
{
	boot_cfg(64 * MIB, 0, 4, NEVER);
	cr_assert_eq(zone_count(), 4);
	for (unsigned n = 0; n < 4; n++) {
		struct zp_zone_info zi = info(n);
		struct page *pg = zone_alloc_pages(NULL, 1, GFP_NODE(n),
						   PAGE_MEDIUM, NULL);

		cr_assert_str_eq(zi.name, "Normal");
		cr_assert_eq(zi.node, (int)n);
		cr_assert_eq(zi.span_bytes, 16 * MIB);
		cr_assert_not_null(pg);
		cr_assert_eq(pg->zone_id, n);
		cr_assert(in_zone(&zi, page_address(pg)));
	}
	cr_assert_lt(zone_local_node(), 4);
	/* The thread id picks the fake node, so it is stable. */
	cr_assert_eq(zone_local_node(), (unsigned)os_gettid() % 4);
}

/* free()'s lookup: one compare for zone 0, the zone table for the rest;
 * either way nothing past a zone's committed bytes. */
Test(zone, arena_lookup_finds_each_zones_pages_and_no_more)
{
	boot_cfg(64 * MIB, 0, 4, NEVER);
	for (unsigned n = 0; n < 4; n++) {
		struct page *pg = zone_alloc_pages(NULL, 0, GFP_NODE(n),
						   PAGE_MEDIUM, NULL);
		struct zp_zone_info zi = info(n);
		char *p = page_address(pg);

		cr_assert_eq(page_lookup_fast(p), pg, "zone %u", n);
		cr_assert_eq(page_lookup_fast(p + ZP_PAGE_SIZE - 1), pg);
		cr_assert_lt(zi.committed_bytes, zi.span_bytes);
		cr_assert_null(page_lookup_fast(
			(void *)(zi.base + zi.committed_bytes)), "zone %u", n);
		cr_assert_not_null(page_lookup_fast(
			(void *)(zi.base + zi.committed_bytes - 1)));
	}
	/* The one compare's bound is zone 0's, whichever zone grew last. */
	cr_assert_not_null(zone_alloc_pages(NULL, 9, GFP_NODE(1), PAGE_MEDIUM,
					    NULL));
	cr_assert_gt(info(1).committed_bytes, info(0).committed_bytes);
	cr_assert_eq(zp_arena.committed0, info(0).committed_bytes);
	cr_assert_null(page_lookup_fast((void *)(zp_arena.base - 1)));
	cr_assert_null(page_lookup_fast(
		(void *)(zp_arena.base + ((uintptr_t)4 << zp_arena.zone_shift))));
}

Test(zone, node_exact_stays_on_its_node_and_others_fall_back)
{
	struct page *pg;
	unsigned n2 = 0;

	boot_cfg(32 * MIB, 0, 4, NEVER);	/* four 8 MiB nodes */
	while ((pg = zone_alloc_pages(NULL, 0, GFP_NODE(2) | GFP_NODE_EXACT,
				      PAGE_MEDIUM, NULL))) {
		cr_assert_eq(pg->zone_id, 2);
		n2++;
	}
	cr_assert_eq(n2, 2048);
	for (unsigned n = 0; n < 4; n++)
		if (n != 2)
			cr_assert_eq(info(n).committed_bytes, 0);
	/* Without EXACT the next node serves, but only down to its min. */
	while ((pg = zone_alloc_pages(NULL, 0, GFP_NODE(2), PAGE_MEDIUM,
				      NULL)) && pg->zone_id == 3)
		;
	struct zp_zone_info z3 = info(3);

	cr_assert_not_null(pg);
	cr_assert_eq(pg->zone_id, 0, "after node 3 comes node 0");
	cr_assert_eq(avail_of(&z3), z3.wmark_min);
	cr_assert_gt(z3.nr_fallback_in, 0);
	/* Node 3's own threads can still use its reserve. */
	cr_assert_not_null(zone_alloc_pages(NULL, 0, GFP_NODE(3),
					    PAGE_MEDIUM, NULL));
	cr_assert(zone_check_all());
}

Test(zone, boot_without_a_window_fails_cleanly)
{
	struct zone_config cfg = { .nr_nodes = 1, .normal_reserve = 64 * MIB };

	os_fault_inject_nth(1);	/* the arena's window is refused */
	cr_assert_eq(zone_boot(&cfg), ENOMEM);
	cr_assert_null(page_lookup(&cfg));
	cr_assert_null(page_lookup_fast(&cfg));
	cr_assert_eq(zone_count(), 0);
	boot_cfg(64 * MIB, 0, 0, NEVER);
	cr_assert_eq(zone_count(), 1);
}

/* Which 4 MiB region of zone 0 p lies in. */
static size_t
region_of(const void *p)
{
	return ((uintptr_t)p - info(0).base) / ZP_MAX_BLOCK;
}

/* A zone within its first region serves every size from it, so that a
 * small program pays one split chain of descriptors, not one per size;
 * past it, sizes group in regions of their own again. */
Test(zone, a_zone_within_its_first_region_mixes_sizes)
{
	struct page *small, *medium, *large, *later;

	boot_cfg(64 * MIB, 0, 0, NEVER);
	small = zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL);
	medium = zone_alloc_pages(NULL, 5, 0, PAGE_MEDIUM, NULL);
	cr_assert(small && medium);
	cr_assert_eq(info(0).grown_bytes, ZP_COMMIT_STEP, "one step for both");
	cr_assert_eq(region_of(page_address(medium)), 0);
	/* A whole region grows the zone past its first. */
	large = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM, NULL);
	cr_assert_not_null(large);
	cr_assert_eq(region_of(page_address(large)), 1);
	later = zone_alloc_pages(NULL, 5, 0, PAGE_MEDIUM, NULL);
	cr_assert_not_null(later);
	cr_assert_eq(region_of(page_address(later)), 2,
		     "a medium block in a region of its own again");
	zone_free_pages(NULL, later);
	zone_free_pages(NULL, large);
	zone_free_pages(NULL, medium);
	zone_free_pages(NULL, small);
	cr_assert(zone_check_all());
}

Test(zone, zone_that_cannot_grow_returns_null_cleanly)
{
	struct page *pg, *first;

	boot_cfg(64 * MIB, 0, 0, NEVER);
	os_fault_inject_all(true);
	cr_assert_null(zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL));
	cr_assert_eq(info(0).committed_bytes, 0);
	cr_assert_eq(info(0).nr_failed, 1);
	cr_assert(zone_check_all());
	os_fault_inject_all(false);
	first = zone_alloc_pages(NULL, 9, 0, PAGE_MEDIUM, NULL);
	cr_assert_not_null(first);
	/* The descriptor commit succeeds, the data commit fails. */
	os_fault_inject_nth(2);
	cr_assert_null(zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL));
	cr_assert_eq(info(0).grown_bytes, ZP_COMMIT_STEP);
	cr_assert(zone_check_all());
	/* And once memory is there again, it works (the next step completes
	 * the large block's region, which a zone within its first region
	 * shares between sizes: the small page comes from it). */
	pg = zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL);
	cr_assert_not_null(pg);
	memset(page_address(pg), 1, ZP_PAGE_SIZE);
	cr_assert_eq(info(0).grown_bytes, 2 * ZP_COMMIT_STEP);
	zone_free_pages(NULL, pg);
	zone_free_pages(NULL, first);
	cr_assert(zone_check_all());
	cr_assert_eq(info(0).nr_free_by_order[ZP_MAX_ORDER], 1);
}

Test(zone, full_reservation_returns_null)
{
	unsigned n = 0;

	boot_cfg(8 * MIB, 0, 0, NEVER);
	while (zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM, NULL))
		n++;
	cr_assert_eq(n, 2);
	cr_assert_null(zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL));
	cr_assert(zone_check_all());
}

static void
touch_and_free(struct page **pgs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		memset(page_address(pgs[i]), 0x5a,
		       ZP_PAGE_SIZE << pgs[i]->order);
	for (unsigned i = 0; i < n; i++)
		zone_free_pages(NULL, pgs[i]);
}

Test(zone, purge_gives_memory_back_and_marks_it_zero)
{
	struct page *pgs[8];
	size_t rss_full, rss_after, given;
	bool zero = false;

	boot_cfg(64 * MIB, 0, 0, NEVER);
	zone_set_retain(0, 1 << 20, 1 << 20);	/* no auto purge */
	for (unsigned i = 0; i < 8; i++)
		pgs[i] = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM,
					  NULL);
	touch_and_free(pgs, 8);
	rss_full = os_rss_bytes();
	cr_assert_eq(info(0).nr_free_zero_pages, 0);
	given = zone_purge(true);
	rss_after = os_rss_bytes();
	cr_assert_eq(given, 32 * MIB);
	cr_assert_geq(rss_full - rss_after, 24 * MIB, "rss %zu -> %zu",
		      rss_full, rss_after);
	cr_assert_eq(info(0).nr_free_zero_pages, info(0).nr_free_pages);
	cr_assert_eq(info(0).nr_purged_pages, 8192);
	pgs[0] = zone_alloc_pages(NULL, 4, 0, PAGE_MEDIUM, &zero);
	cr_assert(zero);
	cr_assert_eq(((char *)page_address(pgs[0]))[123], 0);
	cr_assert_eq(zone_purge(true), 0, "nothing dirty is left");
	cr_assert(zone_check_all());
}

/*
 * A purge of many ranges, in vectors where the kernel has them and one
 * call a range where not (after a forbid, as before a sandbox): every
 * range reads zero and is no longer resident, but for a locked one in
 * the middle, which keeps its bytes and reports EINVAL, and the ranges
 * after it are purged all the same.
 */
static void
check_purge_ranges(bool vectors)
{
	enum { NR = 8, PAGES = 4, LOCKED = 3 };
	size_t len = PAGES * ZP_PAGE_SIZE;
	char *m = mmap(NULL, NR * 2 * len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct os_range r[NR];
	unsigned char vec[PAGES];
	int err[NR];

	cr_assert_neq(m, MAP_FAILED);
	memset(m, 0x5a, NR * 2 * len);
	for (unsigned i = 0; i < NR; i++)
		r[i] = (struct os_range){ m + i * 2 * len, len };
	/* The system call itself: ASan's mlock does nothing. */
	if (syscall(SYS_mlock, r[LOCKED].base, len) != 0)
		cr_skip_test("mlock: %s", strerror(errno));
	os_purge_ranges_boot();
	if (!vectors)
		os_purge_ranges_forbid();
	else if (!os_purge_ranges_batched())
		cr_log_warn("no process_madvise on ourselves here: one call "
			    "a range");
	os_purge_ranges(r, NR, err);
	for (unsigned i = 0; i < NR; i++) {
		char *p = r[i].base;
		bool locked = i == LOCKED;

		cr_assert_eq(err[i], locked ? EINVAL : 0, "range %u: %d", i,
			     err[i]);
		cr_assert_eq(mincore(p, len, vec), 0);
		for (unsigned k = 0; k < PAGES; k++)
			cr_assert_eq(vec[k] & 1, locked, "range %u page %u", i,
				     k);
		cr_assert_eq(p[0], locked ? 0x5a : 0);
		cr_assert_eq(p[len - 1], locked ? 0x5a : 0);
		/* The gap after each range is untouched. */
		cr_assert_eq(p[len], 0x5a);
	}
	munlock(r[LOCKED].base, len);
	munmap(m, NR * 2 * len);
}

Test(zone, purge_ranges_go_in_vectors_and_report_each_range)
{
	check_purge_ranges(true);
}

Test(zone, purge_ranges_go_one_a_call_after_a_forbid)
{
	check_purge_ranges(false);
}

Test(zone, dirty_pages_above_the_budget_are_purged_in_a_batch)
{
	struct page *pgs[10];
	struct zp_zone_info zi;

	boot_cfg(64 * MIB, 0, 0, NEVER);
	cr_assert_eq(zone_set_retain(0, 1024, 1024), 0);
	for (unsigned i = 0; i < 10; i++)
		pgs[i] = zone_alloc_pages(NULL, 8, 0, PAGE_MEDIUM, NULL);
	/* Four dirty 1 MiB blocks (no two of them buddies) = 1024 pages:
	 * within the budget. */
	for (unsigned i = 0; i < 8; i += 2)
		touch_and_free(&pgs[i], 1);
	zi = info(0);
	cr_assert_eq(zi.nr_purged_pages, 0);
	/* 1280 > 1024 + an eighth: down to 7/8 of it, oldest first. */
	touch_and_free(&pgs[8], 1);
	zi = info(0);
	cr_assert_eq(zi.nr_purged_pages, 512);
	cr_assert_eq(zi.nr_free_pages - zi.nr_free_zero_pages, 768);
	cr_assert(free_block(pgs[0])->flags & PG_ZERO);
	cr_assert(free_block(pgs[2])->flags & PG_ZERO);
	cr_assert_not(free_block(pgs[4])->flags & PG_ZERO);
	cr_assert_not(free_block(pgs[8])->flags & PG_ZERO);
	cr_assert(zone_check_all());
}

/* Crossing the budget purges the blocks idle longest, whatever their
 * size, not the ones just freed (the likeliest to be reused), and only
 * down to 7/8 of it. */
Test(zone, purging_over_budget_takes_the_longest_idle_first)
{
	struct page *pgs[6];
	char *p[6];
	struct zp_zone_info zi;

	boot_cfg(64 * MIB, 0, 0, NEVER);
	cr_assert_eq(zone_set_retain(0, 2048, 2048), 0);
	for (unsigned i = 0; i < 6; i++) {
		pgs[i] = zone_alloc_pages(NULL, ZP_MAX_ORDER - 1, 0,
					  PAGE_MEDIUM, NULL);
		p[i] = page_address(pgs[i]);
	}
	/* Two blocks per 4 MiB region: 0+1, 2+3, 4+5. */
	touch_and_free(&pgs[3], 1);	/* idle longest, and small */
	touch_and_free(&pgs[0], 1);
	touch_and_free(&pgs[1], 1);	/* merges with 0 */
	touch_and_free(&pgs[5], 1);	/* 2048 dirty pages */
	zi = info(0);
	cr_assert_eq(zi.nr_purged_pages, 0, "not over the budget yet");
	touch_and_free(&pgs[4], 1);	/* merges with 5: 2560 > 2304 */
	zi = info(0);
	cr_assert_eq(zi.nr_purged_pages, 512 + 1024);
	cr_assert_eq(zi.nr_free_pages - zi.nr_free_zero_pages, 1024);
	/* Purged blocks are known zero (whole steps are even unmapped, so
	 * their descriptors tell, not their memory); a whole 4 MiB block
	 * given back is a hole, whose descriptors went with it. */
	cr_assert(free_block(pgs[3])->flags & PG_ZERO,
		  "the longest idle block went first");
	cr_assert_null(page_lookup(p[0]), "then the next longest, whole");
	cr_assert_null(page_lookup(p[1]));
	cr_assert_not(free_block(pgs[4])->flags & PG_ZERO,
		      "the newest stays");
	cr_assert_eq(p[4][100], 0x5a);
	cr_assert_eq(p[5][100], 0x5a);
	cr_assert(zone_check_all());
}

/* Single pages just freed among live neighbours (slabs emptied in a
 * teardown) wait to merge while a large block can be purged instead;
 * once older than the merge window they go oldest first again; and
 * young ones beyond the budget's ceiling go too. */
Test(zone, young_small_blocks_wait_to_merge_and_old_ones_go)
{
	struct timespec ts = { 0, (long)ZONE_MERGE_WINDOW_NS + 50000000 };
	struct page *one[256], *big[2];
	struct zp_zone_info zi;
	uint64_t t0;

	boot_cfg(64 * MIB, 0, 0, NEVER);
	cr_assert_eq(zone_set_retain(0, 64, 64), 0);
	for (unsigned i = 0; i < 256; i++)
		one[i] = zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL);
	big[0] = zone_alloc_pages(NULL, 6, 0, PAGE_MEDIUM, NULL);
	big[1] = zone_alloc_pages(NULL, 5, 0, PAGE_MEDIUM, NULL);
	/* 40 single pages, no two of them buddies: within the budget. */
	t0 = os_now_ns();
	for (unsigned i = 1; i < 80; i += 2)
		touch_and_free(&one[i], 1);
	/* + 64 = 104 > 64 + 8: the young singles stay, the large block
	 * goes. */
	touch_and_free(&big[0], 1);
	if (os_now_ns() - t0 >= ZONE_MERGE_WINDOW_NS)
		cr_skip_test("the machine took longer than the merge window");
	zi = info(0);
	cr_assert_eq(zi.nr_purged_pages, 64);
	for (unsigned i = 1; i < 80; i += 2)
		cr_assert_not(free_block(one[i])->flags & PG_ZERO,
			      "page %u purged", i);
	/* Older than the window: 40 + 32 + 1 = 73 goes down to 56 by the
	 * oldest, the singles. */
	nanosleep(&ts, NULL);
	touch_and_free(&big[1], 1);
	touch_and_free(&one[81], 1);
	zi = info(0);
	cr_assert_eq(zi.nr_purged_pages, 64 + 17);
	cr_assert_not(free_block(big[1])->flags & PG_ZERO,
		      "the newest stay");
	cr_assert_not(free_block(one[81])->flags & PG_ZERO,
		      "the newest stay");
	/* Young singles past the budget plus its ceiling go too: at most
	 * 64 + 8 + 64 dirty before a purge takes them to 56 + 64. */
	for (unsigned i = 83; i < 256; i += 2)
		touch_and_free(&one[i], 1);
	zi = info(0);
	cr_assert_leq(zi.nr_free_pages - zi.nr_free_zero_pages, 136);
	cr_assert_gt(zi.nr_purged_pages, 64 + 17);
	cr_assert(zone_check_all());
}

/* What young small blocks held back over the budget stops counting once
 * they age, even when they were taken again meanwhile: a large block
 * freed later that takes the zone over the budget is purged. */
Test(zone, held_back_small_blocks_stop_counting_once_they_age)
{
	struct timespec ts = { 0, (long)ZONE_MERGE_WINDOW_NS + 50000000 };
	struct page *one[200], *again[60], *big;
	uint64_t t0, purged;

	boot_cfg(64 * MIB, 0, 0, NEVER);
	cr_assert_eq(zone_set_retain(0, 64, 64), 0);
	for (unsigned i = 0; i < 200; i++)
		one[i] = zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL);
	big = zone_alloc_pages(NULL, 6, 0, PAGE_MEDIUM, NULL);
	/* 100 young singles: the purges at 73 and 90 dirty pages purge
	 * nothing and hold back 17, then 34 pages (down to 56). */
	t0 = os_now_ns();
	for (unsigned i = 1; i < 200; i += 2)
		touch_and_free(&one[i], 1);
	if (os_now_ns() - t0 >= ZONE_MERGE_WINDOW_NS)
		cr_skip_test("the machine took longer than the merge window");
	cr_assert_eq(info(0).nr_purged_pages, 0);
	/* 60 of them taken again (dirty first): 40 left. */
	for (unsigned i = 0; i < 60; i++) {
		again[i] = zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL);
		cr_assert_not_null(again[i]);
		cr_assert_not(again[i]->flags & PG_ZERO);
	}
	purged = info(0).nr_purged_pages;
	nanosleep(&ts, NULL);
	/* 40 + 64 = 104: over 72, though not over 72 + 34. */
	touch_and_free(&big, 1);
	cr_assert_geq(info(0).nr_purged_pages, purged + 40);
	cr_assert(zone_check_all());
}

/* A program that takes back soon what was purged (a refault) makes the
 * zone keep that much more dirty: the next wave costs no faults. A purge
 * delay without refaults halves the budget again, and idle blocks go. */
Test(zone, refaults_raise_the_budget_and_quiet_lowers_it)
{
	struct page *pgs[4];
	struct timespec ts = { 0, 300 * 1000 * 1000 };
	struct zp_zone_info zi;

	boot_cfg(64 * MIB, 0, 0, 200 * 1000 * 1000);
	cr_assert_eq(zone_set_retain(0, 256, 8192), 0);
	for (unsigned i = 0; i < 4; i++)
		pgs[i] = zone_alloc_pages(NULL, 9, 0, PAGE_MEDIUM, NULL);
	touch_and_free(pgs, 4);		/* 2048 dirty, budget 256 */
	zi = info(0);
	cr_assert_geq(zi.nr_purged_pages, 2048 - 224);
	cr_assert_eq(zi.nr_refault_pages, 0);
	/* The same again, at once: the purged blocks come back. */
	for (unsigned i = 0; i < 4; i++)
		pgs[i] = zone_alloc_pages(NULL, 9, 0, PAGE_MEDIUM, NULL);
	zi = info(0);
	cr_assert_geq(zi.nr_refault_pages, 1536);
	cr_assert_geq(zi.retain_pages, 256 + 1536);
	touch_and_free(pgs, 4);
	cr_assert_eq(info(0).nr_purged_pages, zi.nr_purged_pages,
		     "the second wave is kept");
	/* Quiet for longer than the delay: the next free's purge check
	 * halves the budget and takes the idle blocks. */
	nanosleep(&ts, NULL);
	pgs[0] = zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL);
	zone_free_pages(NULL, pgs[0]);
	zi = info(0);
	cr_assert_lt(zi.retain_pages, 256 + 1536);
	cr_assert_geq(zi.nr_purged_pages, 2 * 2048 - 224);
	cr_assert(zone_check_all());
}

/* malloc_trim's spill: while paused, frees far above high purge nothing,
 * so the blocks merge first and one purge afterwards takes them whole. */
Test(zone, paused_purges_wait_for_the_blocks_to_merge)
{
	struct page *pgs[8];
	struct zp_zone_info zi;

	boot_cfg(64 * MIB, 0, 0, NEVER);
	cr_assert_eq(zone_set_retain(0, 128, 128), 0);
	for (unsigned i = 0; i < 8; i++)
		pgs[i] = zone_alloc_pages(NULL, ZP_MAX_ORDER - 3, 0,
					  PAGE_MEDIUM, NULL);
	zone_purge_pause();
	touch_and_free(pgs, 8);		/* 1024 dirty pages, high 128 */
	zone_purge_resume();
	zi = info(0);
	cr_assert_eq(zi.nr_purged_pages, 0, "nothing purged while paused");
	/* The eight eighths of one region, merged back into one block. */
	cr_assert_eq((uintptr_t)page_address(pgs[0]) % (4 * MIB), 0);
	cr_assert_eq(free_block(pgs[0])->kind, PAGE_BUDDY);
	cr_assert_eq(free_block(pgs[0])->order, ZP_MAX_ORDER);
	cr_assert_eq(zone_purge(true), 4 * MIB);
	cr_assert_eq(info(0).nr_free_zero_pages, info(0).nr_free_pages);
	cr_assert(zone_check_all());
}

Test(zone, idle_dirty_pages_are_purged_after_the_delay)
{
	struct page *pgs[2], *spacer;
	/* Generous times: a loaded machine must not make "not idle yet"
	 * false. */
	struct timespec ts = { 0, 300 * 1000 * 1000 };

	boot_cfg(64 * MIB, 0, 0, 200 * 1000 * 1000);	/* 200 ms */
	zone_set_retain(0, 1 << 20, 1 << 20);
	/* A merge dates a block by its newest dirty part, so keep the idle
	 * block and the later one apart. */
	pgs[0] = zone_alloc_pages(NULL, 4, 0, PAGE_MEDIUM, NULL);
	spacer = zone_alloc_pages(NULL, 4, 0, PAGE_MEDIUM, NULL);
	pgs[1] = zone_alloc_pages(NULL, 4, 0, PAGE_MEDIUM, NULL);
	cr_assert_not_null(spacer);
	touch_and_free(pgs, 1);
	cr_assert_eq(info(0).nr_purged_pages, 0, "not idle yet");
	cr_assert_eq(zone_purge(false), 0);
	nanosleep(&ts, NULL);
	/* The next free, a slow path, notices the idle block. */
	touch_and_free(pgs + 1, 1);
	cr_assert_geq(info(0).nr_purged_pages, 16);
	nanosleep(&ts, NULL);
	cr_assert_gt(zone_purge(false), 0);
	cr_assert_eq(info(0).nr_free_zero_pages, info(0).nr_free_pages);
	cr_assert(zone_check_all());
}

static char *
capture(void (*print)(struct outbuf *))
{
	static char text[65536];
	struct outbuf o;
	int fds[2];
	ssize_t n;

	cr_assert_eq(pipe(fds), 0);
	out_init(&o, fds[1]);
	print(&o);
	out_flush(&o);
	close(fds[1]);
	n = read(fds[0], text, sizeof(text) - 1);
	close(fds[0]);
	cr_assert_gt(n, 0);
	text[n] = '\0';
	return text;
}

Test(zone, stats_print_like_proc)
{
	char *s, expect[256];
	struct zp_zone_info zi;

	boot_cfg(16 * MIB, 16 * MIB, 0, NEVER);
	find_zone("Low32", 0);
	zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL);
	zi = info(0);
	/* One order-0 block taken from a 2 MiB step leaves one free block
	 * at each of orders 0..8. */
	for (unsigned k = 0; k < ZP_MAX_ORDER - 1; k++)
		cr_assert_eq(zi.nr_free_by_order[k], 1);
	s = capture(zone_print_buddyinfo);
	cr_assert(strstr(s, "Node 0, zone   Normal      1      1      1"
			    "      1      1      1      1      1      1"
			    "      0      0\n"), "%s", s);
	cr_assert(strstr(s, "Node 0, zone    Low32      0"), "%s", s);
	s = capture(zone_print_zoneinfo);
	fmt_buf(expect, sizeof(expect), "  pages free     %lu\n",
		(unsigned long)zi.nr_free_pages);
	cr_assert(strstr(s, expect), "%s", s);
	cr_assert(strstr(s, "protection: (0, 2048)"), "%s", s);
	s = capture(zone_print_json);
	cr_assert_eq(s[0], '[');
	cr_assert_eq(s[strlen(s) - 1], ']');
	cr_assert(strstr(s, "\"name\":\"Normal\",\"node\":0"), "%s", s);
	cr_assert(strstr(s, "\"free_by_order\":[1,1,1,1,1,1,1,1,1,0,0]"),
		  "%s", s);
	cr_assert_eq(zone_info(zone_count(), &zi), -1);
}

Test(zone, fork_child_can_allocate)
{
	struct page *pg;
	pid_t pid;
	int status;

	boot_cfg(16 * MIB, 0, 0, NEVER);
	pg = zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL);
	zone_prefork();
	pid = fork();
	if (pid == 0) {
		zone_postfork_child();
		struct page *c = zone_alloc_pages(NULL, 3, 0, PAGE_MEDIUM,
						  NULL);
		zone_free_pages(NULL, pg);
		_exit(c && zone_check_all() ? 0 : 1);
	}
	zone_postfork_parent();
	cr_assert_gt(pid, 0);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	zone_free_pages(NULL, pg);
	cr_assert(zone_check_all());
}
