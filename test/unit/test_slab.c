/*
 * test_slab.c - slabs over the real zone: lifecycle, reuse, nothing lost,
 * hardening (double free, invalid pointers, corrupted links), calloc's
 * zero knowledge, and a random workload against a shadow model.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zpmalloc.h>

#include "base/log.h"
#include "os/os.h"
#include "page/zone.h"
#include "slab/cache.h"
#include "slab/tcache.h"

#include "check.h"
#include "zone_fixture.h"

static struct pcp_set pcp;
static struct tcache tc;

static void
setup(void)
{
	boot_small_zone();
	slab_boot(os_random64());
	pcp_init(&pcp, 0);
	tcache_init(&tc, &pcp);
}

TestSuite(slab, .init = setup);

/* Pages the zones have handed out and not got back. */
static uint64_t
used_pages(void)
{
	struct zp_zone_info zi;
	uint64_t used = 0;

	for (unsigned i = 0; zone_info(i, &zi) == 0; i++)
		used += (zi.grown_bytes >> ZP_PAGE_SHIFT) -
			zi.nr_free_pages;
	return used;
}

static struct page *
head_of(void *p)
{
	struct page *pg = page_lookup(p);

	CHECK((pg) != NULL, "pg" "%p is in no zone", p);
	pg = page_head(pg);
	CHECK_OP(pg->kind, ==, PAGE_SLAB, "%p is not in a slab", p);
	return pg;
}

/* Frees as free() does, through the page's facts word, which must say
 * what the slab's descriptor says. */
static void
xfree(struct tcache *t, void *p)
{
	struct page *head = head_of(p);
	uint64_t f = page_facts_fast(p);

	CHECK_OP(f & ~SLAB_HOLD_BITS, ==, slab_facts(slab_of(head)));
	tcache_free(t, p, f);
}

/* Everything back: the thread's slabs, its page cache, the reserves. */
static void
give_back_all(void)
{
	tcache_fini(&tc);
	pcp_drain(&pcp);
	slab_trim();
}

static int
cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

Test(slab, fill_free_all_returns_every_page)
{
	uint64_t before = used_pages();

	for (unsigned sc = 0; sc < SC_NR; sc += 7) {
		unsigned n = slab_class[sc].nr_objs * 3 + 5;
		size_t size = sizeclass_size(sc);
		void **v = calloc(n, sizeof(*v));

		for (unsigned i = 0; i < n; i++) {
			v[i] = tcache_alloc(&tc, sc);
			CHECK((v[i]) != NULL, "v[i] is NULL");
			CHECK_OP((uintptr_t)v[i] % 16, ==, 0);
			CHECK_OP(slab_usable_size(head_of(v[i])), ==, size);
			CHECK(slab_is_object_start(head_of(v[i]), v[i]),
			      "%p is no object start", v[i]);
			memset(v[i], (int)i, size);
		}
		qsort(v, n, sizeof(*v), cmp_ptr);
		for (unsigned i = 1; i < n; i++)
			CHECK_OP((uintptr_t)v[i], >=,
				 (uintptr_t)v[i - 1] + size,
				 "objects overlap in class %u", sc);
		CHECK_OP(used_pages(), >, before);
		for (unsigned i = 0; i < n; i++)
			xfree(&tc, v[i]);
		free(v);
	}
	give_back_all();
	CHECK_OP(used_pages(), ==, before, "slab pages leaked");
	CHECK(zone_check_all(), "zone_check_all()");
}

Test(slab, freed_slabs_are_reused_not_regrown)
{
	unsigned sc = sizeclass_of(100);
	unsigned n = slab_class[sc].nr_objs * 20;
	void **v = calloc(n, sizeof(*v));
	struct zp_slab_info si;
	uint64_t slabs;

	uint64_t peak;

	for (unsigned i = 0; i < n; i++)
		v[i] = tcache_alloc(&tc, sc);
	CHECK_OP(slab_info(sc, &si), ==, 0);
	slabs = si.total_slabs;
	peak = used_pages();
	CHECK_OP(slabs, >=, 20);
	for (unsigned i = 0; i < n; i++)
		xfree(&tc, v[i]);
	for (int round = 0; round < 5; round++) {
		for (unsigned i = 0; i < n; i++)
			v[i] = tcache_alloc(&tc, sc);
		for (unsigned i = 0; i < n; i++)
			xfree(&tc, v[n - 1 - i]);
	}
	CHECK_OP(used_pages(), <=, peak, "the zone grew");
	slab_info(sc, &si);
	CHECK_OP(si.total_slabs, <=, slabs, "%lu slabs after reuse, %lu "
		 "before", (unsigned long)si.total_slabs,
		 (unsigned long)slabs);
	if (ZP_IS_STATS)
		CHECK_OP(si.active_objects, ==, 0);
	free(v);
}

Test(slab, local_free_then_alloc_is_lifo)
{
	void *a = tcache_alloc(&tc, 3);
	void *b = tcache_alloc(&tc, 3);

	xfree(&tc, a);
	CHECK_OP(tcache_alloc(&tc, 3), ==, a);
	CHECK_OP(a, !=, b);
}

Test(slab, emptied_slabs_go_back_to_the_zone)
{
	unsigned sc = sizeclass_of(2000);
	unsigned n = slab_class[sc].nr_objs * 8;
	void **v = calloc(n, sizeof(*v));
	struct zp_slab_info si;

	for (unsigned i = 0; i < n; i++)
		v[i] = tcache_alloc(&tc, sc);
	for (unsigned i = 0; i < n; i++)
		xfree(&tc, v[i]);
	tcache_flush(&tc);
	/* No class keeps empty slabs: only the zone does. */
	slab_info(sc, &si);
	CHECK_OP(si.total_slabs, ==, 0, "slabs kept");
	CHECK_OP(slab_trim(), ==, 0, "a reserve was left to trim");
	free(v);
}

Test(slab, trim_gives_back_orphans_emptied_by_remote_frees)
{
	unsigned sc = sizeclass_of(2000);
	unsigned n = slab_class[sc].nr_objs * 8;
	void **v = calloc(n, sizeof(*v));

	for (unsigned i = 0; i < n; i++)
		v[i] = tcache_alloc(&tc, sc);
	/* The slabs become orphans with live objects; their frees are then
	 * remote ones, which leave them for trim to find empty. */
	tcache_flush(&tc);
	for (unsigned i = 0; i < n; i++)
		xfree(&tc, v[i]);
	/* All but the slab of the last chain of frees, still pending. */
	CHECK_OP(slab_trim(), >=,
		 ((size_t)ZP_PAGE_SIZE << slab_class[sc].order) * 7,
		 "not every emptied orphan was given back");
	free(v);
}

Test(slab, power_of_two_classes_are_naturally_aligned)
{
	for (size_t sz = 16; sz <= SC_MAX_SIZE; sz <<= 1) {
		unsigned sc = sizeclass_of(sz);

		for (int i = 0; i < 40; i++) {
			void *p = tcache_alloc(&tc, sc);

			CHECK_OP((uintptr_t)p % ZP_MIN(sz, ZP_PAGE_SIZE), ==, 0,
				 "%p size %zu", p, sz);
		}
	}
}

Test(slab, calloc_path_zeroes_dirty_objects)
{
	unsigned sc = sizeclass_of(200);
	size_t size = sizeclass_size(sc);
	void *v[64];

	for (int i = 0; i < 64; i++) {
		v[i] = tcache_alloc(&tc, sc);
		memset(v[i], 0xab, size);
	}
	for (int i = 0; i < 64; i++)
		xfree(&tc, v[i]);
	for (int i = 0; i < 64; i++) {
		unsigned char *p = tcache_alloc_zero(&tc, sc, sizeclass_size(sc));

		for (size_t j = 0; j < size; j++)
			CHECK_OP(p[j], ==, 0, "byte %zu of %p", j, p);
		memset(p, 0xcd, size);
		v[i] = p;
	}
	for (int i = 0; i < 64; i++)
		xfree(&tc, v[i]);
	/* Recycled through the zone: dirty, yet zeroed. */
	give_back_all();
	tcache_init(&tc, &pcp);
	for (int i = 0; i < 200; i++) {
		unsigned char *p = tcache_alloc_zero(&tc, sc, sizeclass_size(sc));

		for (size_t j = 0; j < size; j++)
			CHECK_OP(p[j], ==, 0, "byte %zu of %p", j, p);
	}
}

Test(slab, fresh_zero_slab_serves_calloc_without_writes)
{
	/* A class nothing else used: its first slab is fresh zone memory,
	 * so calloc objects come from the uncarved part untouched. */
	unsigned sc = sizeclass_of(5000);
	size_t size = sizeclass_size(sc);
	unsigned char *p = tcache_alloc_zero(&tc, sc, sizeclass_size(sc));
	struct slab *s = slab_of(head_of(p));

	for (size_t j = 0; j < size; j++)
		CHECK_OP(p[j], ==, 0);
	if (s->flags & SLAB_ZERO)
		CHECK_OP(slab_inuse(s), ==, s->nr_carved,
			 "calloc took a free object of a zero slab");
}

Test(slab, double_free_aborts, .signal = SIGABRT)
{
	void *p = tcache_alloc(&tc, 2);
	void *q = tcache_alloc(&tc, 2);

	xfree(&tc, p);
	xfree(&tc, q);
	xfree(&tc, p);
}

Test(slab, double_free_of_list_head_aborts, .signal = SIGABRT)
{
	void *p = tcache_alloc(&tc, 5);

	xfree(&tc, p);
	xfree(&tc, p);
}

/* Frees an object of class sc twice, with three other frees between:
 * the second free finds the live bit already clear. */
static void
free_twice_apart(unsigned sc)
{
	void *p = tcache_alloc(&tc, sc);
	void *v[3];

	for (int i = 0; i < 3; i++)
		v[i] = tcache_alloc(&tc, sc);
	xfree(&tc, p);
	for (int i = 0; i < 3; i++)
		xfree(&tc, v[i]);
	xfree(&tc, p);
}

/* Caught at the second free: malloc never gets to hand it out twice. */
Test(slab, double_free_found_by_malloc, .signal = SIGABRT)
{
	free_twice_apart(3);
	for (int i = 0; i < 5; i++)
		tcache_alloc(&tc, 3);
}

/* The same before a flush could give two copies back (malloc_trim). */
Test(slab, double_free_found_by_flush, .signal = SIGABRT)
{
	free_twice_apart(3);
	tcache_flush(&tc);
}

/* Freed again after the bin gave it back to its slab: avail, not live. */
Test(slab, double_free_of_flushed_object_aborts, .signal = SIGABRT)
{
	unsigned sc = 3, n = slab_class[sc].bin_cap;
	void **v = calloc(n, sizeof(*v));
	void *p = tcache_alloc(&tc, sc);

	for (unsigned i = 0; i < n; i++)
		v[i] = tcache_alloc(&tc, sc);
	unsigned i = 0;
	struct tbin *b = &tc.bins[sc];

	/* p fills the bin last; the next free finds it full, and the
	 * newest half goes back to the slabs: p with them. */
	while (b->cur + 1 < b->end)
		xfree(&tc, v[i++]);
	xfree(&tc, p);
	xfree(&tc, v[i]);
	CHECK(!slab_is_live((uintptr_t)p) &&
	      (*slab_avail_word((uintptr_t)p) & slab_bit((uintptr_t)p)),
	      "p is not free in its slab");
	xfree(&tc, p);
	tcache_alloc(&tc, sc);
}

Test(slab, double_free_without_tcache_aborts, .signal = SIGABRT)
{
	void *p = tcache_alloc(&tc, 4);

	xfree(&tcache_none, p);
	xfree(&tcache_none, p);
}

Test(slab, interior_pointer_aborts, .signal = SIGABRT)
{
	char *p = tcache_alloc(&tc, sizeclass_of(64));

	xfree(&tc, p + 16);
}

Test(slab, misaligned_pointer_aborts, .signal = SIGABRT)
{
	char *p = tcache_alloc(&tc, sizeclass_of(48));

	xfree(&tc, p + 1);
}

Test(slab, corrupted_remote_link_aborts, .signal = SIGABRT)
{
	unsigned sc = 1, n = slab_class[sc].bin_cap * 2u;
	void **v = calloc(n, sizeof(*v));

	for (unsigned i = 0; i < n; i++)
		v[i] = tcache_alloc(&tc, sc);
	/* Freed by a thread without a cache: onto their slabs' remote
	 * lists, linked through the objects' encoded first words. */
	for (unsigned i = 0; i < n; i++)
		tcache_free_remote(v[i], &tcache_none);
	/* A use-after-free write over a link; the refill that collects the
	 * list must not follow it. */
	*(uintptr_t *)v[n / 2] = (uintptr_t)&tc;
	for (unsigned i = 0; i < 2 * n; i++)
		tcache_alloc(&tc, sc);
}

/* Neither free nor a flush writes an object, and a slab hands its free
 * objects out in address order whatever order they were freed in. */
Test(slab, frees_leave_objects_untouched_and_refills_go_in_address_order)
{
	unsigned sc = 2, n = 3u * slab_class[sc].bin_cap;
	uintptr_t **v = calloc(n, sizeof(*v));
	void *dst[64];
	struct slab *s;
	unsigned got;

	for (unsigned i = 0; i < n; i++) {
		v[i] = tcache_alloc(&tc, sc);
		v[i][0] = v[i][1] = ~(uintptr_t)v[i];
	}
	shuffle((void **)v, n, 12345);
	/* The bin fills up and gives its newest half back, again and
	 * again: most objects go back to their slabs in random order. */
	for (unsigned i = 0; i < n; i++)
		xfree(&tc, v[i]);
	for (unsigned i = 0; i < n; i++)
		CHECK(v[i][0] == ~(uintptr_t)v[i] &&
		      v[i][1] == ~(uintptr_t)v[i], "object %u was written", i);
	s = slab_of(head_of(v[0]));
	tcache_lock(&tc);
	got = slab_take(s, dst, 64);
	CHECK_OP(got, >, 1u);
	for (unsigned i = 1; i < got; i++)
		CHECK_OP((uintptr_t)dst[i], >, (uintptr_t)dst[i - 1],
			 "entry %u", i);
	for (unsigned i = 0; i < got; i++)
		slab_push(s, dst[i]);
	tcache_unlock(&tc);
	free(v);
}

Test(slab, bins_hand_out_the_last_freed_first)
{
	void *v[16];

	for (int i = 0; i < 16; i++)
		v[i] = tcache_alloc(&tc, 2);
	for (int i = 0; i < 16; i++)
		xfree(&tc, v[i]);
	for (int i = 15; i >= 0; i--)
		CHECK_OP(tcache_alloc(&tc, 2), ==, v[i]);
}

Test(slab, no_abort_on_valid_frees_with_plausible_garbage)
{
	/* An object's own words mean nothing to the allocator: one whose
	 * first word is a valid encoded link of its own slab (copied from a
	 * freed neighbour) is freed and handed out like any other. */
	uintptr_t *a = tcache_alloc(&tc, 1);
	uintptr_t *b = tcache_alloc(&tc, 1);
	uintptr_t *c = tcache_alloc(&tc, 1);

	xfree(&tc, c);
	*a = slab_encode((uintptr_t)b, (uintptr_t)a);
	xfree(&tc, a);
	xfree(&tc, b);
	/* a leaves the bin with its link-like word untouched. */
	CHECK_OP((void *)tcache_alloc(&tc, 1), ==, (void *)b);
	CHECK_OP((void *)tcache_alloc(&tc, 1), ==, (void *)a);
	CHECK_OP(*a, ==, slab_encode((uintptr_t)b, (uintptr_t)a));
}

/* A random mix of classes checked against a shadow copy of every live
 * object: no overlap, no lost writes. */
Test(slab, random_mix_matches_shadow_model)
{
	enum { N = 3000, OPS = 200000 };
	struct obj { unsigned char *p; unsigned sc; uint32_t seed; };
	struct obj *live = calloc(N, sizeof(*live));
	uint64_t before = used_pages();
	uint64_t x = 88172645463325252ull;

	for (int op = 0; op < OPS; op++) {
		unsigned i;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		i = (unsigned)(x % N);
		if (live[i].p) {
			struct obj *o = &live[i];
			size_t size = sizeclass_size(o->sc);

			for (size_t j = 0; j < size; j += 7)
				CHECK_OP(o->p[j], ==,
					 (unsigned char)(o->seed + j),
					 "object %p byte %zu", o->p, j);
			xfree(&tc, o->p);
			o->p = NULL;
		} else {
			unsigned sc = (unsigned)((x >> 20) % 40);
			struct obj *o = &live[i];
			size_t size = sizeclass_size(sc);

			o->sc = sc;
			o->seed = (uint32_t)(x >> 40);
			o->p = (x >> 33) & 1 ? tcache_alloc_zero(&tc, sc, sizeclass_size(sc))
					     : tcache_alloc(&tc, sc);
			CHECK((o->p) != NULL, "o->p is NULL");
			for (size_t j = 0; j < size; j += 7)
				o->p[j] = (unsigned char)(o->seed + j);
		}
	}
	/* No two live objects overlap. */
	{
		uintptr_t (*iv)[2] = calloc(N, sizeof(*iv));
		unsigned n = 0;

		for (unsigned i = 0; i < N; i++)
			if (live[i].p) {
				iv[n][0] = (uintptr_t)live[i].p;
				iv[n][1] = iv[n][0] +
					   sizeclass_size(live[i].sc);
				n++;
			}
		qsort(iv, n, sizeof(*iv), cmp_ptr);
		for (unsigned i = 1; i < n; i++)
			CHECK_OP(iv[i][0], >=, iv[i - 1][1], "overlap");
		free(iv);
	}
	for (unsigned i = 0; i < N; i++)
		if (live[i].p)
			xfree(&tc, live[i].p);
	give_back_all();
	for (unsigned sc = 0; sc < SC_NR; sc++) {
		struct zp_slab_info si;

		slab_info(sc, &si);
		CHECK_OP(si.total_slabs, ==, 0, "class %u keeps %lu slabs "
			 "(%lu live objects)", sc,
			 (unsigned long)si.total_slabs,
			 (unsigned long)si.active_objects);
	}
	CHECK_OP(used_pages(), ==, before);
	free(live);
}

Test(slab, stats_report_classes)
{
	struct zp_slab_info si;
	struct outbuf o;
	void *p = tcache_alloc(&tc, 7);
	FILE *f = tmpfile();
	static char text[64 << 10];
	char last[64];
	size_t len;

	CHECK_OP(slab_info(SC_NR, &si), ==, -1);
	CHECK_OP(slab_info(7, &si), ==, 0);
	CHECK_OP(si.object_size, ==, 128);
	CHECK_OP(si.total_slabs, ==, 1);
	CHECK_OP(si.total_objects, ==, si.objects_per_slab);
	if (ZP_IS_STATS)
		CHECK_OP(si.active_objects, ==, 1);
	xfree(&tc, p);
	out_init(&o, fileno(f));
	slab_print_slabinfo(&o);
	slab_print_json(&o);
	out_flush(&o);
	rewind(f);
	len = fread(text, 1, sizeof(text) - 1, f);
	text[len] = 0;
	fclose(f);
	CHECK(strstr(text, "slabinfo - version"), "no slabinfo header");
	CHECK(strstr(text, "\nsize-128 "), "no size-128 row");
	CHECK(strstr(text, "\naligned-1152 "), "no aligned-1152 row");
	CHECK(strstr(text, "{\"classes\":[{\"class\":0,"), "no JSON");
	CHECK(strstr(text, "\"objsize\":16384,\"aligned_only\":false"),
	      "no last plain class");
	snprintf(last, sizeof(last), "{\"class\":%d,\"objsize\":15360,"
		 "\"aligned_only\":true", SC_NR - 1);
	CHECK(strstr(text, last), "no last aligned class");
	CHECK_OP(text[len - 1], ==, '}');
}
