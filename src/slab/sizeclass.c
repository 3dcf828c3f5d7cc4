/*
 * sizeclass.c - the constant tables behind sizeclass.h.
 * Owns:  sizeclass_sizes[], sizeclass_tables (index and spans; read-only,
 *        no locks).
 * Path:  alloc_malloc -> sizeclass_of (inline) -> these tables.
 *
 * The tables are written out by macros from the one formula so that they
 * cannot drift apart; test_sizeclass checks them against each other.
 */
#include "slab/sizeclass.h"

/* Class sc: 16 * (sc + 1) below 8, (5 + (sc - 8) % 4) << ((sc - 8) / 4 +
 * 5) below 16 (160 .. 512), (9 + sc % 8) << 6 below 24 (576 .. 1024); then
 * seventeen per doubling from 2^k, k = 10 .. 13: with j = sc - 24, r = j %
 * 17 and k = 10 + j / 17, the r-th of sixteen steps of 2^k / 16 starting
 * 16 bytes past 2^k, and 2^(k+1) for r = 16.
 * The aligned classes after them: with j = sc - SC_NR_PLAIN, k = 10 +
 * j / 7, 2^k + (j % 7 + 1) 2^(k-3). */
#define SC_K(sc)	(10 + ((sc) - 24) / 17)
#define SC_R(sc)	(((sc) - 24) % 17)
#define SC_AK(sc)	(10 + ((sc) - SC_NR_PLAIN) / 7)
#define SC_AR(sc)	(((sc) - SC_NR_PLAIN) % 7 + 1u)
#define SC_SIZE(sc)							\
	((sc) < 8 ? 16u * ((sc) + 1)					\
	 : (sc) < 16 ? (5u + (((sc) - 8) & 3)) << ((((sc) - 8) >> 2) + 5) \
	 : (sc) < 24 ? (9u + ((sc) & 7)) << 6				\
	 : (sc) >= SC_NR_PLAIN ?					\
		(1u << SC_AK(sc)) + (SC_AR(sc) << (SC_AK(sc) - 3))	\
	 : SC_R(sc) == 16 ? 2u << SC_K(sc)				\
	 : (1u << SC_K(sc)) + 16u + ((unsigned)SC_R(sc) << (SC_K(sc) - 4)))

#define SC_4(b)		SC_SIZE(b), SC_SIZE(b + 1), SC_SIZE(b + 2),	\
			SC_SIZE(b + 3)
#define SC_20(b)	SC_4(b), SC_4(b + 4), SC_4(b + 8), SC_4(b + 12), \
			SC_4(b + 16)

const uint32_t sizeclass_sizes[SC_NR] = {
	SC_20(0), SC_20(20), SC_20(40), SC_20(60), SC_20(80),
	SC_4(100), SC_4(104), SC_4(108), SC_4(112), SC_4(116),
};

_Static_assert(sizeof(struct sizeclass_span) == SC_SCALE,
	       "a scaled class indexes the spans");
_Static_assert(SC_NR_PLAIN == 24 + 4 * 17, "four doublings of 17 above 1 KiB");
_Static_assert(SC_NR == SC_NR_PLAIN + 4 * 7, "seven aligned ones in each");
_Static_assert(SC_SIZE(SC_NR_PLAIN - 1) == SC_MAX_SIZE,
	       "last class is the max");
_Static_assert(SC_SIZE(SC_NR_PLAIN) == 1152 && SC_SIZE(SC_NR - 1) == 15360,
	       "aligned classes from 1152 to 15360");
_Static_assert(SC_SIZE(8) == 160 && SC_SIZE(12) == 320 &&
	       SC_SIZE(16) == 576 && SC_SIZE(23) == 1024 &&
	       SC_SIZE(24) == 1040 &&
	       SC_SIZE(40) == 2048 && SC_SIZE(59) == 4368,
	       "the formula gives the documented classes");

/*
 * Entry i is the class of sizes (16(i-1), 16i], the inverse of SC_SIZE
 * for s = 16i: up to 128 that is i - 1; up to 1024, for s in (2^k,
 * 2^(k+1)], the step of 2^(k-2) (to 512) or 2^(k-3) (above) that s - 1
 * lies in; above, with s in (2^k, 2^(k+1)], the first step of 2^(k-4)
 * from 2^k + 16 that reaches s.
 */
#define SI_K(s)		((s) <= 2048 ? 10 : (s) <= 4096 ? 11 :		\
			 (s) <= 8192 ? 12 : 13)
#define SI_OFF(s)	((int)(s) - (1 << SI_K(s)) - 16)
#define SI_STEP(s)	(1 << (SI_K(s) - 4))
#define SI_R(s)		(SI_OFF(s) <= 0 ? 0 :				\
			 (SI_OFF(s) + SI_STEP(s) - 1) >> (SI_K(s) - 4))
#define SC_INDEX(i)							\
	((i) <= 8 ? ((i) == 0 ? 0 : (i) - 1) :				\
	 (i) <= 16 ? 8 + (((16 * (i) - 1) >> 5) - 4) :			\
	 (i) <= 32 ? 12 + (((16 * (i) - 1) >> 6) - 4) :			\
	 (i) <= 64 ? 16 + (((16 * (i) - 1) >> 6) - 8) :			\
	 24 + 17 * (SI_K(16 * (i)) - 10) + SI_R(16 * (i)))

#define SI(i)		(SC_INDEX(i) << SC_SCALE_SHIFT)
#define SI_8(b)		SI(b), SI(b + 1), SI(b + 2), SI(b + 3),		\
			SI(b + 4), SI(b + 5), SI(b + 6), SI(b + 7)
#define SI_64(b)	SI_8(b), SI_8(b + 8), SI_8(b + 16), SI_8(b + 24), \
			SI_8(b + 32), SI_8(b + 40), SI_8(b + 48),	\
			SI_8(b + 56)
#define SI_256(b)	SI_64(b), SI_64(b + 64), SI_64(b + 128),	\
			SI_64(b + 192)

/* A plain class takes the sizes above the plain class below it (class 0
 * takes 0); an aligned class the sizes above the plain class below it
 * too, which is what free_sized checks a size against. */
#define SC_LO(sc)							\
	((sc) >= SC_NR_PLAIN ? SC_SIZE(SC_INDEX(SC_SIZE(sc) / 16) - 1) + 1 \
	 : (sc) ? SC_SIZE((sc) - 1) + 1 : 0)
#define SPAN(sc)	{ SC_LO(sc), SC_SIZE(sc) - SC_LO(sc), { 0, 0 } }
#define SPAN_4(b)	SPAN(b), SPAN(b + 1), SPAN(b + 2), SPAN(b + 3)
#define SPAN_20(b)	SPAN_4(b), SPAN_4(b + 4), SPAN_4(b + 8),	\
			SPAN_4(b + 12), SPAN_4(b + 16)

const struct sizeclass_tables sizeclass_tables
__attribute__((aligned(ZP_PAGE_SIZE))) = {
	.index = {
		SI_256(0), SI_256(256), SI_256(512), SI_256(768), SI(1024),
	},
	.span = {
		SPAN_20(0), SPAN_20(20), SPAN_20(40), SPAN_20(60),
		SPAN_20(80), SPAN_4(100), SPAN_4(104), SPAN_4(108),
		SPAN_4(112), SPAN_4(116),
	},
};
_Static_assert(offsetof(struct sizeclass_tables, span) +
	       24 * sizeof(struct sizeclass_span) <= ZP_PAGE_SIZE,
	       "the small sizes' index and spans share the first page");
