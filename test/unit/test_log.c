/* test_log.c - the no-allocation formatter behaves like printf's subset. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"

static void
check(const char *expect, const char *fmt, ...)
{
	char buf[128];
	va_list ap;

	va_start(ap, fmt);
	fmt_vbuf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	cr_assert_str_eq(buf, expect, "format \"%s\"", fmt);
}

Test(log, formats_like_printf)
{
	check("a 42 -7 ff 0x10", "a %d %d %x %p", 42, -7, 255u, (void *)16);
	check("18446744073709551615", "%lu", (unsigned long)-1);
	check("x=  12|ab   |0007", "x=%4u|%-5s|%04d", 12u, "ab", 7);
	check("100%", "100%%");
	check("9223372036854775807", "%lld", 9223372036854775807LL);
	check("(null)", "%s", (char *)NULL);
	check("123", "%zu", (size_t)123);
}

Test(log, truncates_and_terminates)
{
	char buf[8];
	size_t n = fmt_buf(buf, sizeof(buf), "%s", "abcdefghijkl");

	cr_assert_eq(n, 7);
	cr_assert_str_eq(buf, "abcdefg");
}

Test(log, fatal_aborts_with_one_line, .signal = SIGABRT)
{
	log_fatal("free(): invalid pointer %p", (void *)0x1234);
}
