/* test_options.c - option values: what parses, and what is refused
 * without overflowing on the way. */
#include <criterion/criterion.h>
#include <limits.h>

#include "base/options.h"

static long
parsed(const char *s)
{
	long v = -1;

	cr_assert(options_parse_long(s, &v), "\"%s\" refused", s);
	return v;
}

static void
refused(const char *s)
{
	long v = -1;

	cr_assert_not(options_parse_long(s, &v), "\"%s\" accepted", s);
	cr_assert_eq(v, -1, "\"%s\" wrote a value", s);
}

Test(options, decimals_and_suffixes)
{
	cr_assert_eq(parsed("0"), 0);
	cr_assert_eq(parsed("1000"), 1000);
	cr_assert_eq(parsed("4k"), 4096);
	cr_assert_eq(parsed("3M"), 3L << 20);
	cr_assert_eq(parsed("2g"), 2L << 30);
	cr_assert_eq(parsed("9223372036854775807"), LONG_MAX);
	cr_assert_eq(parsed("8589934591g"), 8589934591L << 30);
}

Test(options, garbage_and_overflow_are_refused)
{
	refused("");
	refused("-1");
	refused("12x");
	refused("1kk");
	refused("9223372036854775808");
	refused("99999999999999999999");
	refused("99999999999999999999g");
	refused("8589934592g");
	refused("9007199254740992k");
}
