/*
 * sizeclass.c - the constant tables behind sizeclass.h.
 * Owns:  sizeclass_sizes[], sizeclass_small[], sizeclass_span (read-only,
 *        no locks).
 * Path:  alloc_malloc -> sizeclass_of (inline) -> these tables.
 *
 * Both tables are written out by macros from the one formula so that they
 * cannot drift apart; test_sizeclass checks them against each other.
 */
#include "slab/sizeclass.h"

/* Class sc: 16 * (sc + 1) below 8, (9 + sc % 8) << (sc / 8 + 3) below
 * 32, then with j = sc - 32, (17 + j % 16) << (j / 16 + 6). */
#define SC_SIZE(sc)							\
	((sc) < 8 ? 16u * ((sc) + 1)					\
	 : (sc) < 32 ? (9u + ((sc) & 7)) << (((sc) >> 3) + 3)		\
	 : (17u + (((sc) - 32) & 15)) << ((((sc) - 32) >> 4) + 6))

#define SC_8(b)								\
	SC_SIZE(b), SC_SIZE(b + 1), SC_SIZE(b + 2), SC_SIZE(b + 3),	\
	SC_SIZE(b + 4), SC_SIZE(b + 5), SC_SIZE(b + 6), SC_SIZE(b + 7)

const uint32_t sizeclass_sizes[SC_NR] = {
	SC_8(0), SC_8(8), SC_8(16), SC_8(24),
	SC_8(32), SC_8(40), SC_8(48), SC_8(56),
	SC_8(64), SC_8(72), SC_8(80), SC_8(88),
};

/* Class sc takes the sizes above the class below it; class 0 takes 0. */
#define SC_LO(sc)	((sc) ? SC_SIZE((sc) - 1) + 1 : 0)
#define SPAN(sc)	{ SC_LO(sc), SC_SIZE(sc) - SC_LO(sc), { 0, 0 } }
#define SPAN_8(b)							\
	SPAN(b), SPAN(b + 1), SPAN(b + 2), SPAN(b + 3),			\
	SPAN(b + 4), SPAN(b + 5), SPAN(b + 6), SPAN(b + 7)

const struct sizeclass_span sizeclass_span[SC_NR] = {
	SPAN_8(0), SPAN_8(8), SPAN_8(16), SPAN_8(24),
	SPAN_8(32), SPAN_8(40), SPAN_8(48), SPAN_8(56),
	SPAN_8(64), SPAN_8(72), SPAN_8(80), SPAN_8(88),
};
_Static_assert(sizeof(struct sizeclass_span) == SC_SCALE,
	       "a scaled class indexes the spans");

_Static_assert(SC_SIZE(SC_NR - 1) == SC_MAX_SIZE, "last class is the max");
_Static_assert(SC_SIZE(31) == SC_SMALL_MAX, "byte table ends at a class");

/*
 * Entry i is the class of sizes (16(i-1), 16i]: up to 128 that is i - 1,
 * then for a size s in (2^k, 2^(k+1)] the formula of sizeclass_of with
 * n - 1 = 16i - 1.
 */
#define SC_SMALL(i)							\
	((i) <= 8 ? ((i) == 0 ? 0 : (i) - 1) :				\
	 ((i) <= 16 ? 8 + (((16 * (i) - 1) >> 4) - 8) :		\
	  ((i) <= 32 ? 16 + (((16 * (i) - 1) >> 5) - 8) :		\
	   ((i) <= 64 ? 24 + (((16 * (i) - 1) >> 6) - 8) : 0))))

#define SM(i)	(SC_SMALL(i) << SC_SCALE_SHIFT)
#define SM_8(b)								\
	SM(b), SM(b + 1), SM(b + 2), SM(b + 3),				\
	SM(b + 4), SM(b + 5), SM(b + 6), SM(b + 7)

const uint16_t sizeclass_small[SC_SMALL_MAX / 16 + 1] = {
	SM_8(0), SM_8(8), SM_8(16), SM_8(24),
	SM_8(32), SM_8(40), SM_8(48), SM_8(56), SM(64),
};
