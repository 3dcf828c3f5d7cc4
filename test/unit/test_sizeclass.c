/* test_sizeclass.c - the size-class table and its mapping. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "slab/sizeclass.h"
#include "slab/slab.h"

#include "check.h"

Test(sizeclass, table_is_monotonic_and_16_aligned)
{
	CHECK_OP(sizeclass_size(0), ==, 16);
	CHECK_OP(sizeclass_size(SC_NR_PLAIN - 1), ==, SC_MAX_SIZE);
	CHECK_OP(SC_MAX_SIZE, >=, 16384);
	for (unsigned sc = 0; sc < SC_NR; sc++) {
		CHECK_OP(sizeclass_size(sc) % 16, ==, 0, "class %u", sc);
		if (sc > 0 && sc != SC_NR_PLAIN)
			CHECK_OP(sizeclass_size(sc), >, sizeclass_size(sc - 1),
				 "class %u", sc);
	}
	/* The aligned classes: multiples of 128 between 1 and 16 KiB. */
	for (unsigned sc = SC_NR_PLAIN; sc < SC_NR; sc++) {
		CHECK_OP(sizeclass_size(sc) % 128, ==, 0, "class %u", sc);
		CHECK_OP(sizeclass_size(sc), >, 1024, "class %u", sc);
		CHECK_OP(sizeclass_size(sc), <, SC_MAX_SIZE, "class %u", sc);
	}
}

Test(sizeclass, class_of_class_size_is_the_class)
{
	for (unsigned sc = 0; sc < SC_NR_PLAIN; sc++)
		CHECK_OP(sizeclass_of(sizeclass_size(sc)), ==, sc,
			 "class %u size %zu", sc, sizeclass_size(sc));
	for (unsigned sc = SC_NR_PLAIN; sc < SC_NR; sc++)
		CHECK_OP(sizeclass_aligned_of(sizeclass_size(sc)), ==, sc,
			 "class %u size %zu", sc, sizeclass_size(sc));
	/* Powers of two are plain classes to aligned requests too. */
	for (size_t p = 2048; p <= SC_MAX_SIZE; p <<= 1)
		CHECK_OP(sizeclass_aligned_of(p), ==, sizeclass_of(p));
}

Test(sizeclass, every_size_maps_to_the_smallest_class_that_fits)
{
	unsigned sc = 0;

	for (size_t n = 1; n <= SC_MAX_SIZE; n++) {
		/* Reference: linear walk, independent of the formula. */
		while (sizeclass_size(sc) < n)
			sc++;
		CHECK_OP(sizeclass_of(n), ==, sc, "size %zu", n);
	}
	CHECK_OP(sizeclass_of(0), ==, 0, "malloc(0) gets the smallest class");
}

/* Sized free's check: exactly the sizes sizeclass_of maps to the class,
 * and no size past the largest class (nor one that wraps). */
Test(sizeclass, class_range_holds_exactly_the_class_sizes)
{
	static const size_t far[] = {
		SC_MAX_SIZE + 1, SC_MAX_SIZE + 16, (size_t)1 << 20,
		SIZE_MAX / 2, SIZE_MAX - 15, SIZE_MAX,
	};

	for (unsigned sc = 0; sc < SC_NR; sc++) {
		/* An aligned class: the sizes a plain class would round up
		 * to one above the plain class below it. */
		size_t below = sc < SC_NR_PLAIN ? 0 :
			sizeclass_size(sizeclass_of(sizeclass_size(sc)) - 1);

		for (size_t n = 0; n <= SC_MAX_SIZE; n++)
			CHECK_OP(sizeclass_holds(sc, n), ==,
				 sc < SC_NR_PLAIN ? sizeclass_of(n) == sc :
				 n > below && n <= sizeclass_size(sc),
				 "class %u size %zu", sc, n);
		for (size_t i = 0; i < sizeof(far) / sizeof(far[0]); i++)
			CHECK(!sizeclass_holds(sc, far[i]),
			      "class %u size %zu", sc, far[i]);
	}
}

Test(sizeclass, internal_waste_is_bounded)
{
	for (size_t n = 1; n <= SC_MAX_SIZE; n++) {
		size_t got = sizeclass_size(sizeclass_of(n));

		CHECK_OP(got, >=, n);
		if (n > 1024)
			CHECK_OP((got - n) * 16, <=, n, "size %zu -> %zu", n,
				 got);
		else if (n > 512)
			CHECK_OP((got - n) * 8, <=, n, "size %zu -> %zu", n,
				 got);
		else if (n > 128)
			CHECK_OP((got - n) * 4, <, n, "size %zu -> %zu", n,
				 got);
		else
			CHECK_OP(got - n, <, 16, "size %zu -> %zu", n, got);
	}
}

/* From 128 to 512 bytes a class is a quarter of a doubling (a thread's
 * rarer classes each hold their own peak: sizeclass.h), then an eighth
 * to 1 KiB. */
Test(sizeclass, quarter_steps_to_512_then_eighths_to_1_KiB)
{
	static const size_t want[][2] = {
		{ 129, 160 }, { 160, 160 }, { 161, 192 }, { 225, 256 },
		{ 257, 320 }, { 321, 384 }, { 449, 512 }, { 513, 576 },
		{ 577, 640 }, { 961, 1024 }, { 1025, 1040 },
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		CHECK_OP(sizeclass_size(sizeclass_of(want[i][0])), ==,
			 want[i][1], "size %zu", want[i][0]);
}

Test(sizeclass, every_power_of_two_is_a_class)
{
	for (size_t p = 16; p <= SC_MAX_SIZE; p <<= 1)
		CHECK_OP(sizeclass_size(sizeclass_of(p)), ==, p, "%zu", p);
}

/* Above 1 KiB programs put a small header on a power of two or on a
 * sixteenth step of one (measured: sqlite's 1032-, 4104- and 4368-byte
 * chunks, git's 4097, python's 8200): such a request must not round up
 * by a whole step. */
Test(sizeclass, a_power_of_two_or_step_plus_a_header_fits_within_16_bytes)
{
	for (size_t p = 1024; p < SC_MAX_SIZE; p <<= 1)
		for (size_t step = 0; step < p; step += p / 16)
			for (size_t hdr = 1; hdr <= 16; hdr++) {
				size_t n = p + step + hdr;

				CHECK_OP(sizeclass_size(sizeclass_of(n)) - n, <,
					 16, "size %zu", n);
			}
	CHECK_OP(sizeclass_size(sizeclass_of(1032)), ==, 1040);
	CHECK_OP(sizeclass_size(sizeclass_of(4368)), ==, 4368);
}

/* Bytes of a class's usual slab that no object takes. */
static size_t
spare_of(const struct slab_class *c)
{
	return (ZP_PAGE_SIZE << c->order) - (size_t)c->nr_objs * c->size;
}

Test(sizeclass, slab_geometry_bounds_tail_waste)
{
	slab_boot(12345);
	for (unsigned sc = 0; sc < SC_NR; sc++) {
		const struct slab_class *c = &slab_class[sc];
		size_t bytes = ZP_PAGE_SIZE << c->order;
		size_t waste = spare_of(c);

		CHECK_OP(c->size, ==, sizeclass_size(sc));
		CHECK_OP(c->nr_objs, >=, 1);
		CHECK_OP(c->order, <=, SLAB_MAX_ORDER);
		CHECK_OP(waste, <, c->size);
		/* 1/16 except where no order up to the cap achieves it;
		 * a single page may waste up to 1/8 of itself. */
		CHECK_OP(waste * (c->order == 0 ? 8 : 10), <=, bytes,
			 "class %u: %zu of %zu", sc, waste, bytes);
		if (c->order == 0)
			CHECK_OP(c->nr_objs, >=, 4, "class %u", sc);
		/* Reciprocal indexing is exact for every offset. */
		for (uint64_t off = 0; off < bytes; off += 16)
			CHECK_OP((uint32_t)((off * c->recip) >> 32), ==,
				 off / c->size, "class %u off %lu", sc,
				 (unsigned long)off);
	}
}

static void
check_starts(unsigned sc, unsigned order, uintptr_t base)
{
	const struct slab_class *c = &slab_class[sc];
	size_t nr = (ZP_PAGE_SIZE << order) / c->size;
	struct slab s = { 0 };

	slab_set_geometry(&s, sc, order, base);
	CHECK_OP((size_t)s.mask + 1, ==, ZP_PAGE_SIZE << order);
	CHECK_OP(s.sc, ==, sc);
	CHECK_OP(s.colour + nr * c->size, <=, (size_t)s.mask + 1);
	for (uintptr_t off = 0; off <= s.mask; off++) {
		bool want = off >= s.colour &&
			    (off - s.colour) % c->size == 0 &&
			    (off - s.colour) / c->size < nr;

		CHECK_OP(slab_is_start(&s, base + off), ==, want,
			 "class %u order %u colour %u offset %lu", sc, order,
			 s.colour, (unsigned long)off);
		if (want)
			CHECK_OP(slab_index_of(&s, base + off), ==,
				 (long)((off - s.colour) / c->size));
	}
}

/* free()'s pointer check: every offset of a slab, against plain modulo,
 * for a class's usual slab and for a thread's small first one, at bases
 * that give it different colours. */
Test(sizeclass, object_start_check_is_exact_at_every_offset)
{
	slab_boot(12345);
	for (unsigned sc = 0; sc < SC_NR; sc++) {
		const struct slab_class *c = &slab_class[sc];
		unsigned orders[2] = { c->order, c->first_order };

		CHECK_OP(c->first_order, <=, c->order);
		CHECK_OP(ZP_PAGE_SIZE << c->first_order, >=, c->size);
		for (unsigned i = 0; i < 2; i++)
			for (uintptr_t k = 0; k < 3; k++)
				check_starts(sc, orders[i],
					     (uintptr_t)0x7f1200000000ull +
					     (k * 7 << (ZP_PAGE_SHIFT +
							orders[i])));
	}
}

/* Colours: whole lines out of the spare tail that keep the alignment of
 * the size's lowest bit, none for a power of two, and neighbouring slabs
 * apart wherever the tail has such a step to spare (below a page: whole
 * pages move no object to another cache set). */
Test(sizeclass, colours_vary_between_neighbours_within_the_spare_tail)
{
	slab_boot(12345);
	for (unsigned sc = 0; sc < SC_NR; sc++) {
		const struct slab_class *c = &slab_class[sc];
		size_t spare = spare_of(c);
		size_t step = ZP_MAX((size_t)ZP_CACHELINE, c->size & -c->size);
		uintptr_t base = (uintptr_t)0x7f1200000000ull;
		struct slab a = { 0 }, b = { 0 };

		slab_set_geometry(&a, sc, c->order, base);
		slab_set_geometry(&b, sc, c->order,
				  base + (ZP_PAGE_SIZE << c->order));
		CHECK_OP(a.colour % ZP_CACHELINE, ==, 0, "class %u", sc);
		CHECK_OP(a.colour % (c->size & -c->size), ==, 0, "class %u",
			 sc);
		CHECK_OP(b.colour % (c->size & -c->size), ==, 0, "class %u",
			 sc);
		CHECK_OP(a.colour, <=, spare, "class %u", sc);
		CHECK_OP(b.colour, <=, spare, "class %u", sc);
		if ((c->size & (c->size - 1)) == 0)
			CHECK_OP(a.colour + b.colour, ==, 0, "class %u", sc);
		if (spare >= step && step < ZP_PAGE_SIZE)
			CHECK_OP(a.colour, !=, b.colour, "class %u", sc);
	}
	/* sqlite's 4104-byte buffers: their slabs' first objects spread. */
	CHECK_OP(slab_class[sizeclass_of(4104)].nr_objs *
		 slab_class[sizeclass_of(4104)].size +
		 16 * ZP_CACHELINE, <=,
		 ZP_PAGE_SIZE << slab_class[sizeclass_of(4104)].order);
}
