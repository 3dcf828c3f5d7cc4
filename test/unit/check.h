/*
 * check.h - assertion macros for the unit tests' inner loops.
 */
#ifndef ZP_TEST_CHECK_H
#define ZP_TEST_CHECK_H

#include <criterion/criterion.h>
#include <criterion/logging.h>

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

#endif /* ZP_TEST_CHECK_H */
