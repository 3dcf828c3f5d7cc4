/*
 * check.h - assertion macros for the unit tests' inner loops.
 */
#ifndef ZP_TEST_CHECK_H
#define ZP_TEST_CHECK_H

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stddef.h>
#include <stdint.h>

/* Plain checks: with --full-stats Criterion reports every passing
 * cr_assert to its runner, which millions of loop checks cannot afford. */
#define CHECK(c, ...)							\
	do {								\
		if (!(c))						\
			cr_assert_fail(__VA_ARGS__);			\
	} while (0)
#define CHECK_OP(a, op, b, ...)						\
	do {								\
		if (!((a) op (b))) {					\
			cr_log_error("%s", #a " " #op " " #b);		\
			cr_assert_fail(" " __VA_ARGS__);		\
		}							\
	} while (0)

/* Puts v[0..n) in a random order fixed by seed (Fisher-Yates with an
 * LCG): frees in an order the allocator's caches have not seen. */
static inline void
shuffle(void **v, unsigned n, uint64_t seed)
{
	for (unsigned i = n; i > 1; i--) {
		unsigned j;
		void *t;

		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		j = (unsigned)((seed >> 33) % i);
		t = v[i - 1];
		v[i - 1] = v[j];
		v[j] = t;
	}
}

/* Writes v into one byte of every eighth page of p[0..n) and its last
 * byte: a written block for tests that time frees (large blocks churn
 * only while allocations come within 20 ms), at an eighth of a memset's
 * page faults - a fault costs about 10 us in the CI's VMs, so a memset
 * of 8 MiB alone takes those 20 ms. */
static inline void
scribble(unsigned char *p, size_t n, unsigned char v)
{
	for (size_t off = 0; off < n; off += 8 * 4096)
		p[off] = v;
	p[n - 1] = v;
}

/* Tests of which pages of the library's .bss a path touches rest on
 * where its objects lie; AddressSanitizer puts redzones around globals
 * and does not keep them page-aligned. */
#ifdef __SANITIZE_ADDRESS__
#define NEEDS_BSS_LAYOUT .disabled = true
#else
#define NEEDS_BSS_LAYOUT .disabled = false
#endif

#endif /* ZP_TEST_CHECK_H */
