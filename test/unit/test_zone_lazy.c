/*
 * test_zone_lazy.c - zones that map on demand (ulimit -v): only used steps
 * are mapped, purged whole steps are unmapped and their address space
 * comes back, allocation maps them again, failures leave nothing behind,
 * and a mapping of someone else's in a given-back step is not ours.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "os/os.h"
#include "page/zone.h"
#include "page/zone_priv.h"
#include "zpmalloc.h"
#include "smaps.h"
#include "check.h"
#include "zone_fixture.h"

#define MIB ((size_t)1 << 20)
#define NEVER ((uint64_t)1 << 62)

static void
boot_lazy(size_t normal)
{
	struct zone_config cfg = {
		.nr_nodes = 1,
		.normal_reserve = normal,
		.purge_delay_ns = NEVER,
		.pcp_high = 32,
		.pcp_batch = 8,
	};

	cr_assert_eq(zone_boot(&cfg), 0);
}


/* mincore fails with ENOMEM on any page that is not mapped. */
static bool
is_mapped(const void *p)
{
	unsigned char v;

	return mincore((void *)((uintptr_t)p & ~(uintptr_t)4095), 4096,
		       &v) == 0;
}

/* Bytes of address space the process has mapped, from /proc/self/statm. */
static size_t
vm_bytes(void)
{
	char buf[128];
	long n = os_read_file("/proc/self/statm", buf, sizeof(buf));
	size_t pages = 0;

	cr_assert_gt(n, 0);
	for (const char *s = buf; *s >= '0' && *s <= '9'; s++)
		pages = pages * 10 + (size_t)(*s - '0');
	return pages * 4096;
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

Test(zone_lazy, only_what_is_used_is_mapped)
{
	struct zp_zone_info zi;
	size_t vm0, vm1;
	struct page *pg;

	vm0 = vm_bytes();
	boot_lazy(1024 * MIB);
	zi = info(0);
	cr_assert_eq(zi.span_bytes, 1024 * MIB);
	/* A reservation would have taken the whole span. */
	cr_assert_lt(vm_bytes() - vm0, 4 * MIB);
	cr_assert_not(is_mapped((void *)zi.base));
	pg = zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL);
	cr_assert_not_null(pg);
	cr_assert(is_mapped(page_address(pg)));
	vm1 = vm_bytes();
	cr_assert_leq(vm1 - vm0, ZP_COMMIT_STEP + 4 * MIB);
	cr_assert_not(is_mapped((char *)zi.base + ZP_COMMIT_STEP));
	zone_free_pages(NULL, pg);
	cr_assert(zone_check_all());
}

Test(zone_lazy, purged_steps_are_unmapped_and_come_back_zero)
{
	struct page *pgs[4];
	char *p[4];
	bool zero = false;
	size_t vm_full;

	boot_lazy(64 * MIB);
	for (unsigned i = 0; i < 4; i++) {
		pgs[i] = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM,
					  NULL);
		cr_assert_not_null(pgs[i]);
		p[i] = page_address(pgs[i]);
	}
	zone_set_retain(0, 1 << 20, 1 << 20);	/* no auto purge */
	touch_and_free(pgs, 4);
	vm_full = vm_bytes();
	cr_assert_eq(zone_purge(true), 16 * MIB);
	cr_assert_geq(vm_full - vm_bytes(), 16 * MIB, "address space kept");
	cr_assert_eq(info(0).committed_bytes, 0);
	cr_assert_eq(info(0).nr_free_pages, 4 * 1024);
	for (unsigned i = 0; i < 4; i++) {
		cr_assert_not(is_mapped(p[i]));
		cr_assert_null(page_lookup(p[i]), "lookup of a given-back "
			       "step");
	}
	cr_assert(zone_check_all());
	/* Allocating maps the steps again, fresh and zero. */
	pgs[0] = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM, &zero);
	cr_assert_not_null(pgs[0]);
	cr_assert(zero);
	cr_assert_eq(page_lookup(page_address(pgs[0])), pgs[0]);
	cr_assert_eq(((char *)page_address(pgs[0]))[12345], 0);
	memset(page_address(pgs[0]), 1, ZP_MAX_BLOCK);
	/* A small block inside a given-back step maps that step. */
	pgs[1] = zone_alloc_pages(NULL, 0, 0, PAGE_SLAB, &zero);
	cr_assert_not_null(pgs[1]);
	cr_assert(zero);
	*(volatile char *)page_address(pgs[1]) = 1;
	zone_free_pages(NULL, pgs[0]);
	zone_free_pages(NULL, pgs[1]);
	cr_assert(zone_check_all());
}

Test(zone_lazy, dirty_over_budget_gives_whole_steps_back)
{
	struct page *pgs[6];
	struct zp_zone_info zi;

	boot_lazy(64 * MIB);
	cr_assert_eq(zone_set_retain(0, 1024, 1024), 0);
	for (unsigned i = 0; i < 6; i++)
		pgs[i] = zone_alloc_pages(NULL, ZP_MAX_ORDER - 1, 0,
					  PAGE_MEDIUM, NULL);
	/* Two dirty 2 MiB blocks: within the budget, nothing happens. */
	touch_and_free(pgs, 2);
	zi = info(0);
	cr_assert_eq(zi.nr_purged_pages, 0);
	cr_assert(is_mapped(page_address(pgs[0])));
	touch_and_free(pgs + 2, 4);
	zi = info(0);
	cr_assert_geq(zi.nr_purged_pages, 2048);
	cr_assert_leq(zi.nr_free_pages - zi.nr_free_zero_pages, 1024);
	/* The oldest went first, as whole unmapped steps. */
	cr_assert_not(is_mapped(page_address(pgs[0])));
	cr_assert(zone_check_all());
}

/* realloc growing a block in place may run into a step given back. */
Test(zone_lazy, resize_into_a_given_back_step_maps_it)
{
	struct page *x, *a, *b;
	char *p;

	boot_lazy(16 * MIB);
	x = zone_alloc_pages(NULL, ZP_MAX_ORDER - 1, 0, PAGE_MEDIUM, NULL);
	a = zone_alloc_exact(NULL, 500, 0, PAGE_MEDIUM, NULL);
	b = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM, NULL);
	cr_assert_eq(a, x + 512);
	cr_assert_eq(b, x + 1024);
	zone_free_pages(NULL, b);
	zone_purge(true);
	cr_assert_not(is_mapped(page_address(b)));
	cr_assert(zone_resize_exact_try(a, 600, NULL));
	p = page_address(a);
	cr_assert(is_mapped(p + 599 * ZP_PAGE_SIZE));
	memset(p, 9, 600 * ZP_PAGE_SIZE);
	cr_assert_eq(page_head(page_lookup(p + 599 * ZP_PAGE_SIZE)), a);
	cr_assert(zone_check_all());
	zone_free_exact(NULL, a);
	zone_free_pages(NULL, x);
	cr_assert(zone_check_all());
}

Test(zone_lazy, refused_remap_returns_null_and_recovers)
{
	struct page *pgs[2], *pg;

	boot_lazy(8 * MIB);
	for (unsigned i = 0; i < 2; i++)
		pgs[i] = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM,
					  NULL);
	cr_assert_null(zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL),
		       "an 8 MiB window holds two blocks");
	touch_and_free(pgs, 2);
	zone_purge(true);
	os_fault_inject_all(true);
	cr_assert_null(zone_alloc_pages(NULL, 0, 0, PAGE_SLAB, NULL));
	cr_assert_null(zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM,
					NULL));
	cr_assert(zone_check_all());
	cr_assert_eq(info(0).nr_free_pages, 2 * 1024);
	os_fault_inject_all(false);
	pg = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM, NULL);
	cr_assert_not_null(pg);
	memset(page_address(pg), 3, ZP_MAX_BLOCK);
	zone_free_pages(NULL, pg);
	cr_assert(zone_check_all());
}

Test(zone_lazy, another_mapping_in_a_given_back_step_is_not_ours)
{
	struct page *pgs[2], *pg;
	unsigned n = 0;
	void *q, *p;

	boot_lazy(8 * MIB);
	for (unsigned i = 0; i < 2; i++)
		pgs[i] = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM,
					  NULL);
	p = page_address(pgs[1]);
	touch_and_free(pgs, 2);
	zone_purge(true);
	/* Someone maps into the hole the zone left. */
	q = mmap(p, 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	cr_assert_eq(q, p);
	cr_assert_null(page_lookup(q));
	/* The zone cannot map over it; whatever it hands out is usable. */
	while ((pg = zone_alloc_pages(NULL, 0, 0, PAGE_SLAB, NULL)) != NULL) {
		cr_assert_neq(page_address(pg), q);
		*(volatile char *)page_address(pg) = 1;
		n++;
	}
	cr_assert(zone_check_all());
	cr_assert_null(page_lookup(q));
	/* Once it is gone, the whole window is the zone's again. */
	munmap(q, 4096);
	zone_purge(true);
	while ((pg = zone_alloc_pages(NULL, 0, 0, PAGE_SLAB, NULL)) != NULL) {
		*(volatile char *)page_address(pg) = 1;
		n++;
	}
	cr_assert_eq(n, 2 * 1024, "pages handed out in all");
	cr_assert_eq(info(0).nr_free_pages, 0);
	cr_assert(zone_check_all());
}

Test(zone_lazy, address_space_limit_is_left_to_the_program)
{
	struct zone_config cfg = { .nr_nodes = 1,
				   .normal_reserve = (size_t)64 << 30,
				   .low32_reserve = 512 * MIB,
				   .purge_delay_ns = NEVER };
	struct rlimit rl, old;
	struct page *pgs[64];
	unsigned n = 0;
	size_t half;
	void *big;

	/* 96 MiB beyond what is mapped now: the 64 GiB NORMAL zone maps
	 * only what it uses of its window. (Sanitizer runtimes map some of
	 * it too.) */
	cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
	rl = old;
	rl.rlim_cur = vm_bytes() + 96 * MIB;
	cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
	cr_assert_eq(zone_boot(&cfg), 0);
	/* The default high scales with the span, and so with the limit:
	 * pin it, sanitizers' huge shadow mappings raise the limit too. */
	cr_assert_eq(zone_set_retain(0, 512, 512), 0);
	while (n < 64 && (pgs[n] = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0,
						    PAGE_MEDIUM, NULL)))
		n++;
	cr_assert_geq(n, 8, "only %u MiB in 96", n * 4);
	cr_assert_lt(n, 64);
	/* Full: less than a step is left, so half the zone's blocks do not
	 * fit in a mapping of their own ... */
	half = (size_t)n / 2 * ZP_MAX_BLOCK;
	big = mmap(NULL, half, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_eq(big, MAP_FAILED);
	touch_and_free(pgs, n);
	/* ... until they are freed: over high, the address space went
	 * back. */
	big = mmap(NULL, half, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(big, MAP_FAILED, "freed memory kept the address space");
	munmap(big, half);
	/* And the zone itself works again. */
	for (unsigned i = 0; i < n; i++) {
		pgs[i] = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM,
					  NULL);
		cr_assert_not_null(pgs[i], "block %u of %u", i, n);
	}
	touch_and_free(pgs, n);
	cr_assert(zone_check_all());
	cr_assert_eq(setrlimit(RLIMIT_AS, &old), 0);
}

/* Is the page holding p resident? (The descriptor array is anonymous
 * memory: a purged page is not, until it is touched again.) */
static bool
is_resident(const void *p)
{
	unsigned char v = 0;

	cr_assert_eq(mincore((void *)((uintptr_t)p & ~(uintptr_t)4095), 4096,
			     &v), 0);
	return v & 1;
}

Test(zone_lazy, purged_blocks_that_stay_mapped_drop_their_descriptors)
{
	struct page *keep, *pg, *small;
	bool zero = false;
	char *addr;

	boot_lazy(64 * MIB);
	/* The first half of a step stays in use, so the purged second
	 * half (order 8: four descriptor pages) cannot be unmapped. */
	keep = zone_alloc_pages(NULL, 8, 0, PAGE_MEDIUM, NULL);
	pg = zone_alloc_pages(NULL, 8, 0, PAGE_MEDIUM, NULL);
	cr_assert_not_null(keep);
	cr_assert_not_null(pg);
	cr_assert_eq((char *)page_address(pg) - (char *)page_address(keep),
		     (ptrdiff_t)MIB, "both halves of one step");
	zone_set_retain(0, 1 << 20, 1 << 20);	/* no auto purge */
	addr = page_address(pg);
	memset(addr, 0x5a, MIB);
	for (unsigned i = 0; i < 256; i++)	/* every descriptor page */
		cr_assert_eq(pg[i].zone_id, 0);
	zone_free_pages(NULL, pg);
	cr_assert_eq(zone_purge(true), MIB);
	/* The head's too: its big-block entry lists the block. (Before
	 * anything reads a descriptor: page_address does, and on a kernel
	 * without a read zero page a read makes the page resident.) */
	for (unsigned i = 0; i < 256; i += 64)
		cr_assert_not(is_resident(&pg[i]), "descriptor page %u kept",
			      i / 64);
	cr_assert(is_mapped(addr));
	cr_assert(zone_check_all());
	/* Split again from inside: the dropped descriptors serve as fresh
	 * ones, and the pages come back zero. */
	for (unsigned i = 0; i < 200; i++) {
		small = zone_alloc_pages(NULL, 0, 0, PAGE_SLAB, &zero);
		cr_assert_not_null(small);
		cr_assert(zero);
		cr_assert_eq(page_lookup(page_address(small)), small);
		cr_assert_eq(*(char *)page_address(small), 0);
	}
	cr_assert(zone_check_all());
	zone_free_pages(NULL, keep);
}

Test(zone_lazy, whole_blocks_given_back_keep_no_descriptor)
{
	struct page *pgs[4], *head;
	char *p[4];
	bool zero = false;
	struct zp_zone_info zi;

	boot_lazy(64 * MIB);
	for (unsigned i = 0; i < 4; i++) {
		pgs[i] = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM,
					  NULL);
		p[i] = page_address(pgs[i]);
	}
	zone_set_retain(0, 1 << 20, 1 << 20);	/* no auto purge */
	touch_and_free(pgs, 4);
	cr_assert_eq(zone_purge(true), 16 * MIB);
	zi = info(0);
	cr_assert_eq(zi.nr_free_pages, 4 * 1024, "holes are free pages");
	cr_assert_eq(zi.nr_free_by_order[ZP_MAX_ORDER], 4);
	for (unsigned i = 0; i < 4; i++) {
		cr_assert_not(is_mapped(p[i]));
		/* Not even the head's descriptor page stays. */
		cr_assert_not(is_resident(pgs[i]), "block %u's head", i);
		cr_assert_not(is_resident(&pgs[i][512]));
	}
	cr_assert(zone_check_all());
	/* Growth fills the lowest hole first, fresh and zero; taken back
	 * within the purge delay, it counts as a refault. */
	head = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM, &zero);
	cr_assert_not_null(head);
	cr_assert(zero);
	cr_assert_eq(page_address(head), p[0] < p[3] ? p[0] : p[3]);
	cr_assert_eq(((char *)page_address(head))[4096 * 7], 0);
	cr_assert_eq(info(0).committed_bytes, 4 * MIB);
	cr_assert_eq(info(0).nr_grow_steps, 8, "no new step mapped");
	cr_assert_eq(info(0).nr_refault_pages, 1024);
	memset(page_address(head), 1, ZP_MAX_BLOCK);
	zone_free_pages(NULL, head);
	cr_assert(zone_check_all());
}

/* A fresh step split for one page leaves free halves of 256, 128 and 64
 * pages: their big-block entries list them, so their heads' descriptors
 * (on descriptor pages 4, 2 and 1 of the step) are not written; listed by
 * descriptor, they made those pages resident in every small program. */
Test(zone_lazy, a_split_s_large_halves_leave_their_descriptors_alone)
{
	struct zone *z;
	struct page *pg;

	boot_lazy(64 * MIB);
	z = zone_of(0);
	pg = zone_alloc_pages(NULL, 0, 0, PAGE_SLAB, NULL);
	cr_assert_not_null(pg);
	cr_assert_eq(buddy_index(&z->buddy, pg), 0, "the step's first page");
	for (unsigned k = BUDDY_BIG_ORDER; k < STEP_ORDER; k++) {
		size_t idx = (size_t)1 << k;
		const struct page *f = buddy_find_free(&z->buddy, idx);

		cr_assert_not_null(f);
		cr_assert_eq(f->order, k);
		cr_assert_eq(buddy_block_index(&z->buddy, f), idx);
		cr_assert(buddy_is_big(&z->buddy, f), "half %zu", idx);
		cr_assert_eq(z->descs[idx].kind, PAGE_UNUSED,
			     "half %zu's descriptor written", idx);
	}
	cr_assert(zone_check_all());
	zone_free_pages(NULL, pg);
	cr_assert(zone_check_all());
}

/* A page of big-block entries (16 MiB of zone) whose regions are all
 * holes lists nothing and goes back with them; growth writes it again. */
Test(zone_lazy, entries_of_holes_alone_are_given_back)
{
	struct page *pgs[8];
	struct zone *z;
	char *p0;

	boot_lazy(64 * MIB);
	z = zone_of(0);
	for (unsigned i = 0; i < 8; i++)
		pgs[i] = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM,
					  NULL);
	p0 = page_address(pgs[0]);
	zone_set_retain(0, 1 << 20, 1 << 20);	/* no auto purge */
	touch_and_free(pgs, 8);
	cr_assert(is_resident(&z->big[4096 >> BUDDY_BIG_ORDER]),
		  "the second page of entries lists the blocks");
	cr_assert_eq(zone_purge(true), 32 * MIB);
	cr_assert_eq(info(0).nr_free_by_order[ZP_MAX_ORDER], 8);
	/* The first page's entries from region 1 on, the whole second. */
	cr_assert_not(is_resident(&z->big[1024 >> BUDDY_BIG_ORDER]));
	cr_assert_not(is_resident(&z->big[4096 >> BUDDY_BIG_ORDER]));
	cr_assert(zone_check_all());
	pgs[0] = zone_alloc_pages(NULL, ZP_MAX_ORDER - 1, 0, PAGE_MEDIUM,
				  NULL);
	cr_assert_eq(page_address(pgs[0]), p0, "the lowest hole, filled");
	cr_assert(zone_check_all());
	zone_free_pages(NULL, pgs[0]);
	cr_assert(zone_check_all());
}

Test(zone_lazy, halves_given_back_one_by_one_become_a_hole)
{
	struct page *lo, *hi;

	boot_lazy(64 * MIB);
	lo = zone_alloc_pages(NULL, ZP_MAX_ORDER - 1, 0, PAGE_MEDIUM, NULL);
	hi = zone_alloc_pages(NULL, ZP_MAX_ORDER - 1, 0, PAGE_MEDIUM, NULL);
	cr_assert_eq(hi, lo + 512, "the two halves of one block");
	zone_set_retain(0, 1 << 20, 1 << 20);	/* no auto purge */
	touch_and_free(&lo, 1);
	cr_assert_eq(zone_purge(true), 2 * MIB);
	/* Its buddy is in use: on the lists, its head's descriptor kept. */
	cr_assert(is_resident(lo));
	cr_assert_eq(info(0).nr_free_by_order[ZP_MAX_ORDER - 1], 1);
	/* It merges with its given-back buddy, and the block goes whole. */
	touch_and_free(&hi, 1);
	cr_assert_geq(zone_purge(true), 2 * MIB);
	cr_assert_eq(info(0).nr_free_by_order[ZP_MAX_ORDER], 1);
	cr_assert_eq(info(0).nr_free_by_order[ZP_MAX_ORDER - 1], 0);
	cr_assert_not(is_resident(lo), "a hole's head descriptor stays");
	cr_assert_not(is_resident(hi));
	cr_assert(zone_check_all());
}

/* A timer interval no slow test machine outlasts. */
#define HOUR_NS		(3600ULL * 1000 * 1000 * 1000)

static uint64_t
dirty_free_pages(void)
{
	struct zp_zone_info zi = info(0);

	return zi.nr_free_pages - zi.nr_free_zero_pages;
}

/* 16 MiB in use, untouched: a zone big enough to keep excess for the
 * timer (ZONE_KEEP_MIN_PAGES). */
static void
hold_16_mib(void)
{
	for (unsigned i = 0; i < 4; i++)
		cr_assert_not_null(zone_alloc_pages(NULL, ZP_MAX_ORDER, 0,
						    PAGE_MEDIUM, NULL));
}

/* 8 MiB in four blocks written and freed, with the retained budget set to
 * retain pages first (taking purged pages back raises it). */
static void
write_and_free_8_mib(struct page **pgs, uint64_t retain)
{
	for (unsigned i = 0; i < 4; i++)
		pgs[i] = zone_alloc_pages(NULL, ZP_MAX_ORDER - 1, 0,
					  PAGE_MEDIUM, NULL);
	cr_assert_eq(zone_set_retain(0, retain, 4096), 0);
	touch_and_free(pgs, 4);
}

/* While a background pass runs, frees past the budget are kept for it;
 * when it stops (interval 0), the kept excess goes and the free path gives
 * back at once again. A small zone gives it back at once all the same. */
Test(zone_lazy, excess_waits_for_the_timer_until_it_stops)
{
	struct page *pgs[4];
	uint64_t purged;

	boot_lazy(64 * MIB);
	zone_purge_timed(HOUR_NS);
	write_and_free_8_mib(pgs, 256);
	purged = info(0).nr_purged_pages;
	cr_assert_geq(purged, 2048 - 256, "small zone");
	hold_16_mib();
	cr_assert_not(zone_purge_timed(HOUR_NS));
	write_and_free_8_mib(pgs, 256);
	cr_assert_eq(info(0).nr_purged_pages, purged, "kept for the pass");
	cr_assert_eq(dirty_free_pages(), 2048);
	cr_assert(is_mapped(page_address(pgs[0])));
	/* A pass keeps them (they have not idled a purge delay) and says
	 * that pages wait for a later one. */
	cr_assert(zone_purge_timed(HOUR_NS));
	cr_assert_eq(dirty_free_pages(), 2048);
	cr_assert_not(zone_purge_timed(0));
	cr_assert_leq(dirty_free_pages(), 256);
	cr_assert_geq(info(0).nr_purged_pages, purged + 2048 - 256);
	/* The free path gives excess back at once again. */
	write_and_free_8_mib(pgs, 256);
	cr_assert_leq(dirty_free_pages(), 256 + 32);
	cr_assert(zone_check_all());
}

/* Kept pages never raise the peak: memory mapped outside the zones makes
 * them go as far as the pages in use with them would pass the most the
 * process has had in use, and no further. */
Test(zone_lazy, kept_pages_go_before_a_map_would_pass_the_peak)
{
	struct page *pgs[4];
	uint64_t after_first;

	boot_lazy(64 * MIB);
	zone_purge_timed(HOUR_NS);
	hold_16_mib();
	write_and_free_8_mib(pgs, 64);
	cr_assert_eq(dirty_free_pages(), 2048);
	/* 256 pages outside: in use and kept, 6400, pass the peak (6144,
	 * the held 4096 and the four blocks) by 256: the oldest free block
	 * goes (the four merged into two of 1024 pages), the other stays. */
	zone_purge_before_map(256);
	after_first = dirty_free_pages();
	cr_assert_eq(after_first, 1024, "%lu", (unsigned long)after_first);
	/* Under the peak: nothing goes. */
	zone_purge_before_map(512);
	cr_assert_eq(dirty_free_pages(), after_first);
	/* A new peak outside: every kept page goes but the budget. */
	zone_purge_before_map(8192);
	cr_assert_leq(dirty_free_pages(), 64);
	cr_assert(zone_check_all());
}

/* --- steps faulted in on huge pages ---------------------------------------- */

/* A memory limit of 1 GiB (or less): within it, the usage the
 * watermarks follow is the process's own RSS, not the machine's or the
 * container's, so that huge steps are due whatever else runs. Where the
 * kernel has no transparent huge pages, madvise refuses the advice and
 * nothing is counted: skipped. */
static void
boot_huge_from(size_t from, size_t limit)
{
	if (access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) != 0)
		cr_skip_test("no transparent huge pages in this kernel");
	struct zone_config cfg = {
		.nr_nodes = 1,
		.normal_reserve = 64 * MIB,
		.purge_delay_ns = NEVER,
		.pcp_high = 32,
		.pcp_batch = 8,
		.memory_limit = limit ? limit : (size_t)1 << 30,
		.huge_from = from,
	};

	cr_assert_eq(zone_boot(&cfg), 0);
}

/* Is "[never]" not what the sysfs file at path says? */
static bool
thp_file_allows(const char *path)
{
	char buf[128];
	long n = os_read_file(path, buf, sizeof(buf) - 1);

	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, "[never]") == NULL;
}

/* Does a fault in an advised range take a huge page when one can be had
 * (compacting for it if need be)? */
static bool
thp_is_on(void)
{
	return thp_file_allows("/sys/kernel/mm/transparent_hugepage/enabled") &&
	       thp_file_allows("/sys/kernel/mm/transparent_hugepage/defrag");
}

/* Grows the zone by n steps, a step's block at a time, among small
 * blocks (gfp GFP_SMALL) or large; each reads zero. */
static void
grow_steps(struct page **pgs, unsigned n, unsigned gfp)
{
	for (unsigned i = 0; i < n; i++) {
		bool zero = false;
		const char *p;

		pgs[i] = zone_alloc_pages(NULL, STEP_ORDER, gfp,
					  PAGE_MEDIUM, &zero);
		cr_assert_not_null(pgs[i]);
		cr_assert(zero);
		p = page_address(pgs[i]);
		for (size_t off = 0; off < ZP_COMMIT_STEP; off += 4096 * 37)
			cr_assert_eq(p[off], 0, "step %u byte %zu", i, off);
	}
	cr_assert_eq(info(0).nr_grow_steps, n, "a step per block");
}

static void
free_all(struct page **pgs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		zone_free_pages(NULL, pgs[i]);
	cr_assert(zone_check_all());
}

/* Once the zone has huge_from bytes in use, each step it grows by for small
 * blocks is faulted in on a huge page and left advised against them (so
 * khugepaged never puts purged pages back); the steps below take small
 * pages, advised against huge ones from the start (transparent huge pages
 * "always" would give them one at their first touch). With the same
 * advice, the four steps are one mapping. */
Test(zone_lazy, steps_past_huge_from_take_huge_pages)
{
	struct page *pgs[4];
	uintptr_t lo, hi;

	boot_huge_from(4 * MIB, 0);
	grow_steps(pgs, 4, GFP_SMALL);
	cr_assert_eq(info(0).nr_huge_steps, 2);
	for (unsigned i = 0; i < 4; i++) {
		void *p = page_address(pgs[i]);

		cr_assert(vma_has_flag(p, "nh"), "step %u", i);
		cr_assert_not(vma_has_flag(p, "hg"), "step %u", i);
	}
	cr_assert(vma_bounds(page_address(pgs[0]), &lo, &hi));
	cr_assert_leq(lo, (uintptr_t)page_address(pgs[0]));
	cr_assert_geq(hi, (uintptr_t)page_address(pgs[3]) + ZP_COMMIT_STEP,
		      "the steps are one mapping");
	if (thp_is_on()) {
		long kb = vma_field_kb(page_address(pgs[3]), "AnonHugePages");

		cr_assert_geq(kb, 2048);
		cr_assert_leq(kb, 2 * 2048, "a step of small pages took one");
	}
	/* Given back as any step is (the free purges what is over the
	 * retained budget). */
	memset(page_address(pgs[2]), 7, ZP_COMMIT_STEP);
	free_all(pgs, 4);
	zone_purge(true);
	cr_assert_not(is_mapped(page_address(pgs[2])));
}

/* Larger blocks may be used sparsely (a buffer written at its ends):
 * their steps keep small pages. So does a zone whose small blocks are
 * mostly free (fragmented: the new step would stay mostly unused). */
Test(zone_lazy, no_huge_steps_for_large_blocks_or_a_sparse_zone)
{
	struct page *pgs[4], *small[8];

	boot_huge_from(2 * MIB, 0);
	grow_steps(pgs, 4, 0);
	cr_assert_eq(info(0).nr_huge_steps, 0);
	/* Two steps of small blocks, both huge (none of their type free
	 * when they were mapped); then every other block freed (the buddy
	 * cannot merge them): a step's worth free among five in use, more
	 * than a 32nd. */
	for (unsigned i = 0; i < 8; i++) {
		small[i] = zone_alloc_pages(NULL, 7, GFP_SMALL, PAGE_MEDIUM,
					    NULL);
		cr_assert_not_null(small[i]);
	}
	for (unsigned i = 0; i < 8; i += 2)
		zone_free_pages(NULL, small[i]);
	cr_assert_eq(info(0).nr_grow_steps, 6);
	cr_assert_eq(info(0).nr_huge_steps, 2, "dense");
	small[0] = zone_alloc_pages(NULL, STEP_ORDER, GFP_SMALL,
				    PAGE_MEDIUM, NULL);
	cr_assert_not_null(small[0]);
	cr_assert_eq(info(0).nr_grow_steps, 7);
	cr_assert_eq(info(0).nr_huge_steps, 2, "sparse: small pages");
	zone_free_pages(NULL, small[0]);
	for (unsigned i = 1; i < 8; i += 2)
		zone_free_pages(NULL, small[i]);
	free_all(pgs, 4);
}

Test(zone_lazy, no_huge_steps_when_off_or_near_the_limit)
{
	struct page *pgs[4];

	boot_huge_from(0, 0);
	grow_steps(pgs, 4, GFP_SMALL);
	cr_assert_eq(info(0).nr_huge_steps, 0);
	cr_assert(vma_has_flag(page_address(pgs[3]), "nh"));
	cr_assert_eq(vma_field_kb(page_address(pgs[3]), "AnonHugePages"), 0);
	free_all(pgs, 4);
	/* A limit a twelfth above what the process uses: the headroom is
	 * below the high watermark (an eighth of the limit) and above low
	 * (a sixteenth) from the first sample on, taken at the first step,
	 * before any step is due. */
	boot_huge_from(2 * MIB, os_rss_bytes() + os_rss_bytes() / 11);
	grow_steps(pgs, 4, GFP_SMALL);
	cr_assert_eq(info(0).nr_huge_steps, 0);
	free_all(pgs, 4);
}

/* A zone's side table (a byte per 2 MiB step: mapped, hole, the region's
 * type) is one page for a zone under 8 GiB: a small program touches one
 * page of it, not a page of each of three tables; zone 0's first page of
 * it is the zone's own (zone_priv.h), one wider than the default maps
 * its table. */
static void
check_side_table(size_t span, bool in_zone_page)
{
	unsigned char vec[8];
	struct page *small, *large;
	const struct zone *z;
	uintptr_t lo;
	size_t n;

	boot_lazy(span);
	z = zone_of(0);
	small = zone_alloc_pages(NULL, 0, 0, PAGE_MEDIUM, NULL);
	large = zone_alloc_pages(NULL, ZP_MAX_ORDER, 0, PAGE_MEDIUM, NULL);
	cr_assert(small != NULL && large != NULL);
	touch_and_free(&small, 1);
	touch_and_free(&large, 1);
	cr_assert(zone_check_all());
	lo = zp_align_down((uintptr_t)z->steps, ZP_PAGE_SIZE);
	cr_assert_eq(lo == zp_align_down((uintptr_t)z, ZP_PAGE_SIZE),
		     in_zone_page, "the table %s the zone's page",
		     in_zone_page ? "starts in" : "is apart from");
	n = ZP_MIN(z->steps_bytes / ZP_PAGE_SIZE, sizeof(vec));
	cr_assert_gt(n, 1, "a 64 GiB zone's table is more than a page");
	cr_assert_eq(mincore((void *)lo, n * ZP_PAGE_SIZE, vec), 0);
	cr_assert(vec[0] & 1);
	for (size_t i = 1; i < n; i++)
		cr_assert_not(vec[i] & 1, "page %zu of the side table", i);
}

Test(zone_lazy, a_small_zone_s_side_table_is_one_page, NEEDS_BSS_LAYOUT)
{
	check_side_table((size_t)64 << 30, true);
}

Test(zone_lazy, a_wide_zone_maps_its_side_table)
{
	check_side_table((size_t)128 << 30, false);
}
