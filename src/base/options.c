/*
 * options.c - the one table of runtime options.
 * Owns:  zp_opt.
 * Locks: none; options_boot runs once, before any other thread can be in
 *        the allocator, and zp_opt is read-only afterwards.
 * Path:  malloc_boot -> options_boot -> secure_getenv
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/options.h"

struct options zp_opt = {
	.verbose = 0,
	.stats = OPT_STATS_OFF,
	.fake_numa = 0,
	.zone_reserve_mb = 64 * 1024,
	.low32_reserve_mb = 512,
	.purge_delay_ms = 1000,
	.pcp_high = 64,
	.pcp_batch = 16,
	.pcp_fraction = 32,
	.uffd = OPT_UFFD_AUTO,
	.reclaim = 1,
	.reclaim_interval_ms = 1000,
	.reclaim_budget_mb = 256,
	.mmap_threshold = 4 << 20,
	.park_mb = 64,
	.park_ms = 1000,
	.huge_fill = 90,
	.huge_heap_mb = 16,
	.abort_on_foreign = 0,
	.memory_limit = 0,
};

/* Whole names, so that boot looks them up without the formatter (which
 * would otherwise sit in the code window every process maps). */
struct opt_row {
	const char *name;
	long *value;
	long min, max;
};

static const struct opt_row rows[] = {
	{ "ZPMALLOC_VERBOSE", &zp_opt.verbose, 0, 1 },
	{ "ZPMALLOC_FAKE_NUMA", &zp_opt.fake_numa, 0, 64 },
	{ "ZPMALLOC_ZONE_RESERVE_MB", &zp_opt.zone_reserve_mb, 16, 1L << 27 },
	{ "ZPMALLOC_LOW32_RESERVE_MB", &zp_opt.low32_reserve_mb, 0, 2048 },
	{ "ZPMALLOC_PURGE_DELAY_MS", &zp_opt.purge_delay_ms, 0, 1L << 30 },
	{ "ZPMALLOC_PCP_HIGH", &zp_opt.pcp_high, 0, 4096 },
	{ "ZPMALLOC_PCP_BATCH", &zp_opt.pcp_batch, 1, 1024 },
	{ "ZPMALLOC_PCP_FRACTION", &zp_opt.pcp_fraction, 0, 1L << 20 },
	{ "ZPMALLOC_RECLAIM", &zp_opt.reclaim, 0, 1 },
	{ "ZPMALLOC_RECLAIM_INTERVAL_MS", &zp_opt.reclaim_interval_ms, 1,
	  1L << 30 },
	{ "ZPMALLOC_RECLAIM_BUDGET_MB", &zp_opt.reclaim_budget_mb, 1,
	  1L << 30 },
	{ "ZPMALLOC_MMAP_THRESHOLD", &zp_opt.mmap_threshold, 4096, 1L << 40 },
	{ "ZPMALLOC_PARK_MB", &zp_opt.park_mb, 0, 1L << 20 },
	{ "ZPMALLOC_PARK_MS", &zp_opt.park_ms, 0, 1L << 30 },
	{ "ZPMALLOC_HUGE_FILL", &zp_opt.huge_fill, 0, 100 },
	{ "ZPMALLOC_HUGE_HEAP_MB", &zp_opt.huge_heap_mb, 0, 1L << 30 },
	{ "ZPMALLOC_ABORT_ON_FOREIGN", &zp_opt.abort_on_foreign, 0, 1 },
	{ "ZPMALLOC_MEMORY_LIMIT", &zp_opt.memory_limit, 0, 1L << 50 },
};

/* Decimal with an optional k/m/g suffix; false on anything else, and on
 * a value that does not fit (checked before each step, so that no step
 * can overflow). */
static bool
parse_long(const char *s, long *out)
{
	long v = 0;
	unsigned shift = 0;

	if (!*s)
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (LONG_MAX - (*s - '0')) / 10)
			return false;
		v = v * 10 + (*s - '0');
	}
	switch (*s) {
	case 'k': case 'K': shift = 10, s++; break;
	case 'm': case 'M': shift = 20, s++; break;
	case 'g': case 'G': shift = 30, s++; break;
	}
	if (*s || v > (LONG_MAX >> shift))
		return false;
	*out = v << shift;
	return true;
}

static void
read_row(const struct opt_row *r)
{
	const char *name = r->name, *s;
	long v;

	s = secure_getenv(name);
	if (!s)
		return;
	if (!parse_long(s, &v) || v < r->min || v > r->max) {
		log_msg("%s=%s ignored (expected %ld..%ld)", name, s, r->min,
			r->max);
		return;
	}
	*r->value = v;
}

static void
read_special(void)
{
	const char *s;

	s = secure_getenv("ZPMALLOC_STATS");
	if (s && (!strcmp(s, "1") || !strcmp(s, "text")))
		zp_opt.stats = OPT_STATS_TEXT;
	else if (s && !strcmp(s, "json"))
		zp_opt.stats = OPT_STATS_JSON;
	else if (s && strcmp(s, "0"))
		log_msg("ZPMALLOC_STATS=%s ignored (expected 0, 1 or json)", s);

	s = secure_getenv("ZPMALLOC_STATS_FILE");
	if (s && strlen(s) < sizeof(zp_opt.stats_file))
		strcpy(zp_opt.stats_file, s);

	s = secure_getenv("ZPMALLOC_UFFD");
	if (s && (!strcmp(s, "0") || !strcmp(s, "off")))
		zp_opt.uffd = OPT_UFFD_OFF;
	else if (s && strcmp(s, "auto") && strcmp(s, "1"))
		log_msg("ZPMALLOC_UFFD=%s ignored (expected auto or 0)", s);
}

/* Runs at load for every program: it reads environ itself, so that a
 * program that never allocates faults in none of our read-only data
 * (the names are in .data) and none of libc's text. A setuid program is
 * not told apart here: it boots at load, then ignores the options. */
static char report_vars[][18] = { "ZPMALLOC_VERBOSE=", "ZPMALLOC_STATS=" };

static const char *
env_value(char **env, const char *name)
{
	for (; *env; env++) {
		const char *e = *env, *n = name;

		while (*n && *e == *n)
			e++, n++;
		if (!*n)
			return e;
	}
	return NULL;
}

zp_cold bool
options_want_report(void)
{
	extern char **environ;

	if (!environ)
		return false;
	for (size_t i = 0; i < ZP_ARRAY_SIZE(report_vars); i++) {
		const char *v = env_value(environ, report_vars[i]);

		if (v && !(v[0] == '0' && v[1] == '\0'))
			return true;
	}
	return false;
}

/* Test hook: the parser alone. */
bool
options_parse_long(const char *s, long *out)
{
	return parse_long(s, out);
}

/* Our prefix, in .data like report_vars: a program whose environment
 * names no option reads none of the option names (in the rarely mapped
 * constants, see src/rodata_first.ld). */
static char prefix[] = "ZPMALLOC_";

zp_boot_text void
options_boot(void)
{
	extern char **environ;

	if (!environ || !env_value(environ, prefix))
		return;
	for (size_t i = 0; i < ZP_ARRAY_SIZE(rows); i++)
		read_row(&rows[i]);
	read_special();
}

void
options_print(struct outbuf *o)
{
	for (size_t i = 0; i < ZP_ARRAY_SIZE(rows); i++)
		out_printf(o, "%s=%ld\n", rows[i].name,
			   *rows[i].value);
	out_printf(o, "ZPMALLOC_STATS=%ld\nZPMALLOC_UFFD=%s\n", zp_opt.stats,
		   zp_opt.uffd == OPT_UFFD_OFF ? "0" : "auto");
}
