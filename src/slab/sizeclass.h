/*
 * sizeclass.h - the small-object size classes.
 *
 * 16-byte steps up to 128 bytes, four classes per doubling up to 512
 * (160, 192, 224, 256, 320, 384, 448, 512), eight up to 1 KiB (576, 640,
 * ... 1024), then from each power of two 2^k up to SC_MAX_SIZE sixteen
 * steps of 2^k / 16 that start 16 bytes past it, and the next power of two
 * (1040, 1104, ... 2000, 2048, 2064, 2192, ... 4096, 4112, 4368, ...
 * 16384). Every class is a multiple of 16, so every object is 16-aligned
 * as glibc's are; internal waste stays under 25% from 128 to 512 bytes,
 * 12.5% to 1 KiB and 6.25% above. Between 128 and 512 bytes a class is a
 * quarter of a doubling, not an eighth (measured, bench/RESULTS.md stop
 * 39): a thread's slabs of a class hold that class's own peak of live
 * objects, and where a program has few objects of each of these sizes the
 * peaks of twice as many classes cost more than what a coarser step
 * rounds up (churn: 5% of its peak). Above 512 bytes the finer step
 * stays: a quarter step there cost a program of many such objects 6 to
 * 11% of its throughput in cache misses (larson). The 16-byte offset is
 * measured (bench/sizes.c): above 1 KiB programs ask for a power of two
 * or a step of one plus a small header (sqlite's 1032-, 4104- and
 * 4368-byte chunks, git's 4097), which a class at the step itself would
 * round up by a whole step. Each power of two is a class, and slabs are
 * naturally aligned buddy blocks with objects packed from the start (a
 * power of two leaves no spare tail for a colour), so an object of a
 * power-of-two class up to a page is aligned to its size (memalign relies
 * on this).
 *
 * The mapping is one load from a 2 KiB table indexed by 16-byte steps;
 * sizes up to 1 KiB use its first 130 bytes.
 *
 * Above 1 KiB only the powers of two among those classes are multiples
 * of 32, so classes SC_NR_PLAIN .. SC_NR - 1 serve aligned requests
 * alone: 2^k + j 2^(k-3), 1 <= j <= 7, multiples of 128 that no size
 * maps to (memalign(64, 9000) takes 9216 bytes, not 16384).
 */
#ifndef ZP_SLAB_SIZECLASS_H
#define ZP_SLAB_SIZECLASS_H

#include "base/util.h"

#define SC_MAX_SIZE	16384
#define SC_NR_PLAIN	92	/* the classes malloc maps sizes to */
#define SC_NR		120	/* and the aligned ones (see below) */

/* Visible to the malloc layer's inline paths, hidden from the .so's ABI. */
#define SC_HIDDEN	__attribute__((visibility("hidden")))

#define SC_SCALE_SHIFT	5
#define SC_SCALE	(1u << SC_SCALE_SHIFT)
extern const uint32_t sizeclass_sizes[SC_NR] SC_HIDDEN;

/* The sizes of class sc are lo .. lo + width of span[sc]: one subtract
 * and one compare tell whether n is of the class, for any n. Entries are
 * SC_SCALE bytes, so that the class as free holds it (scaled) indexes
 * them with no shift. */
struct sizeclass_span {
	uint64_t lo, width;
	uint64_t pad[2];
};

/*
 * index[(n + 15) >> 4] is the class of n for n <= SC_MAX_SIZE, times
 * SC_SCALE: scaled for arrays of 32-byte entries (the tcache's bins), so
 * that malloc's fast path indexes them with no shift.
 *
 * Both tables are one page-aligned object, so that the parts a program
 * of small objects reads (the index's first 130 bytes, the spans of the
 * classes up to 1 KiB from byte 2080 on) lie in one page: C++'s new reads
 * the index and sized delete the spans, and a second hot page would be
 * one more TLB entry on the paths of every C++ program (cxx-map is bound
 * by the TLB: bench/RESULTS.md, stop 25).
 */
struct sizeclass_tables {
	uint16_t index[SC_MAX_SIZE / 16 + 1];
	struct sizeclass_span span[SC_NR] __attribute__((aligned(32)));
};
extern const struct sizeclass_tables sizeclass_tables SC_HIDDEN;

/* Class of an n-byte request, 0 <= n <= SC_MAX_SIZE (0 maps to class 0). */
static inline unsigned
sizeclass_of(size_t n)
{
	return sizeclass_tables.index[(n + 15) >> 4] >> SC_SCALE_SHIFT;
}

/* SC_SCALE times the class of n into *scaled, false when n is past
 * SC_MAX_SIZE: the fast paths' form. */
static zp_always_inline bool
sizeclass_find_scaled(size_t n, size_t *scaled)
{
	if (zp_unlikely(n > SC_MAX_SIZE))
		return false;
	*scaled = sizeclass_tables.index[(n + 15) >> 4];
	return true;
}

/* The class of size s, a multiple of 2^(k-3) in (2^k, 2^(k+1)], 1 KiB <=
 * 2^k < SC_MAX_SIZE: a power of two's own, else an aligned class. */
static inline unsigned
sizeclass_aligned_of(size_t s)
{
	unsigned k = zp_log2_floor(s - 1);

	if (s == (size_t)2 << k)
		return sizeclass_of(s);
	return SC_NR_PLAIN + 7 * (k - 10) +
	       (unsigned)((s - ((size_t)1 << k)) >> (k - 3)) - 1;
}

static inline size_t
sizeclass_size(unsigned sc)
{
	return sizeclass_sizes[sc];
}

/* For a plain class, sizeclass_of(n) == scaled / SC_SCALE; for an
 * aligned one, n lies above the plain class below it and within its size.
 * For any n (sizes past SC_MAX_SIZE too). */
static inline bool
sizeclass_holds_scaled(size_t scaled, size_t n)
{
	const struct sizeclass_span *e = (const struct sizeclass_span *)
		((const char *)sizeclass_tables.span + scaled);

	return n - e->lo <= e->width;
}

static inline bool
sizeclass_holds(unsigned sc, size_t n)
{
	return sizeclass_holds_scaled((size_t)sc << SC_SCALE_SHIFT, n);
}

#endif /* ZP_SLAB_SIZECLASS_H */
