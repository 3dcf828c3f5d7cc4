/*
 * test_stats.c - the malloc layer's reports: text tables, JSON, glibc's
 * malloc_stats and malloc_info layouts, usage figures.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "malloc/alloc.h"
#include "malloc/init.h"
#include "malloc/stats.h"
#include "zpmalloc.h"

#define MiB ((size_t)1 << 20)

static void
boot(void)
{
	cr_assert(init_boot());
}

TestSuite(stats, .init = boot);

/* Runs print(fd) into a temporary file and returns its text. */
static char *
capture(void (*print)(int fd))
{
	static char text[1 << 20];
	FILE *f = tmpfile();
	size_t n;

	cr_assert_not_null(f);
	print(fileno(f));
	rewind(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

static void
print_text(int fd)
{
	stats_print(fd, false);
}

static void
print_json(int fd)
{
	stats_print(fd, true);
}

Test(stats, text_report_has_every_table)
{
	void *p = alloc_malloc(100), *q = alloc_malloc(10 * MiB);
	const char *t = capture(print_text);

	cr_assert_not_null(strstr(t, "zpmalloc " ZP_VERSION " statistics"));
	cr_assert_not_null(strstr(t, "--- buddyinfo ---"));
	cr_assert_not_null(strstr(t, "--- zoneinfo ---"));
	cr_assert_not_null(strstr(t, "  pagesets\n    caches: 1\n"
				     "              high: "));
	cr_assert_not_null(strstr(t, "--- slabinfo ---"));
	cr_assert_not_null(strstr(t, "--- large blocks ---\nblocks 1 "));
	cr_assert_not_null(strstr(t, "--- zero-page engine ---"));
	alloc_free(p);
	alloc_free(q);
}

Test(stats, json_report_is_one_balanced_object)
{
	const char *t = capture(print_json);
	int depth = 0;
	bool in_str = false;

	cr_assert_eq(t[0], '{');
	for (const char *s = t; *s; s++) {
		if (*s == '"' && s[-1] != '\\')
			in_str = !in_str;
		else if (!in_str && (*s == '{' || *s == '['))
			depth++;
		else if (!in_str && (*s == '}' || *s == ']'))
			depth--;
		cr_assert_geq(depth, 0, "closes too early at %.40s", s);
		if (depth == 0 && !in_str)
			cr_assert(s[1] == '\n' && s[2] == '\0',
				  "text after the object: %.40s", s + 1);
		if (depth == 0)
			break;
	}
	for (const char *k = "\"zones\":\0\"slabs\":\0\"large\":\0\"zero\":\0";
	     *k; k += strlen(k) + 1)
		cr_assert_not_null(strstr(t, k), "no %s", k);
}

Test(stats, usage_counts_what_is_allocated)
{
	struct stats_usage before, after;
	enum { N = 2000 };
	static void *p[N];
	void *big;

	stats_usage(&before);
	for (int i = 0; i < N; i++)
		p[i] = alloc_malloc(1000);
	big = alloc_malloc(20 * MiB);
	stats_usage(&after);
	cr_assert_geq(after.in_use, before.in_use + N * 1000);
	cr_assert_geq(after.arena, after.in_use);
	cr_assert_eq(after.nr_large, before.nr_large + 1);
	cr_assert_geq(after.large_bytes, 20 * MiB);
	for (int i = 0; i < N; i++)
		alloc_free(p[i]);
	alloc_free(big);
}

static void
collect(void *ctx, const char *line)
{
	strcat(ctx, line);
}

Test(stats, malloc_info_is_glibc_shaped_xml)
{
	static char xml[1 << 18];

	alloc_free(alloc_malloc(50000));
	stats_malloc_info(collect, xml);
	cr_assert(strncmp(xml, "<malloc version=\"1\">\n<heap nr=\"0\">", 34)
		  == 0, "%.60s", xml);
	cr_assert_not_null(strstr(xml, "<total type=\"mmap\" count=\""));
	cr_assert_not_null(strstr(xml, "</malloc>\n"));
}

static void
print_malloc_stats(int fd)
{
	stats_malloc_stats(fd);
}

Test(stats, malloc_stats_leads_with_glibcs_lines)
{
	const char *t = capture(print_malloc_stats);

	cr_assert(strncmp(t, "Arena 0:\nsystem bytes     = ", 28) == 0);
	cr_assert_not_null(strstr(t, "max mmap regions = "));
	cr_assert_not_null(strstr(t, "--- slabinfo ---"));
}

Test(stats, zero_info_names_its_level)
{
	struct zp_zero_info zi;

	cr_assert_eq(stats_zero_info(&zi), 0);
	cr_assert(zi.level >= ZP_ZERO_LEVEL_OFF &&
		  zi.level <= ZP_ZERO_LEVEL_UFFD);
}
