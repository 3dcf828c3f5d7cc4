/*
 * options.h - runtime options, read once at boot from ZPMALLOC_* variables.
 * Lower layers never read options themselves: the boot code passes the
 * values down as _boot() arguments, so unit tests can set them directly.
 */
#ifndef ZP_BASE_OPTIONS_H
#define ZP_BASE_OPTIONS_H

#include "base/util.h"

enum opt_stats_mode { OPT_STATS_OFF = 0, OPT_STATS_TEXT, OPT_STATS_JSON };
enum opt_uffd_mode { OPT_UFFD_AUTO = 0, OPT_UFFD_OFF };

struct options {
	long verbose;		/* ZPMALLOC_VERBOSE: one line at boot */
	long stats;		/* ZPMALLOC_STATS: 0, 1 (text) or json */
	char stats_file[256];	/* ZPMALLOC_STATS_FILE: %p becomes the pid */
	long fake_numa;		/* ZPMALLOC_FAKE_NUMA: split node 0 into N */
	long zone_reserve_mb;	/* ZPMALLOC_ZONE_RESERVE_MB: NORMAL zone span */
	long low32_reserve_mb;	/* ZPMALLOC_LOW32_RESERVE_MB: LOW32 zone span */
	long purge_delay_ms;	/* ZPMALLOC_PURGE_DELAY_MS: idle free pages */
	long pcp_high;		/* ZPMALLOC_PCP_HIGH: per-thread page cache */
	long pcp_batch;		/* ZPMALLOC_PCP_BATCH */
	long pcp_fraction;	/* ZPMALLOC_PCP_FRACTION */
	long uffd;		/* ZPMALLOC_UFFD: auto or 0 (forced off) */
	long reclaim;		/* ZPMALLOC_RECLAIM: 0 turns the scanner off */
	long reclaim_interval_ms; /* ZPMALLOC_RECLAIM_INTERVAL_MS */
	long reclaim_budget_mb;	/* ZPMALLOC_RECLAIM_BUDGET_MB per interval */
	long mmap_threshold;	/* ZPMALLOC_MMAP_THRESHOLD: interposed mmaps */
	long park_mb;		/* ZPMALLOC_PARK_MB: freed large blocks kept */
	long park_ms;		/* ZPMALLOC_PARK_MS: ... for at most this long */
	long huge_fill;		/* ZPMALLOC_HUGE_FILL: % filled for huge pages */
	long huge_heap_mb;	/* ZPMALLOC_HUGE_HEAP_MB: zone steps past it */
	long abort_on_foreign;	/* ZPMALLOC_ABORT_ON_FOREIGN: no glibc handoff */
	long memory_limit;	/* ZPMALLOC_MEMORY_LIMIT: bytes, 0: find it */
};

extern struct options zp_opt;

/* Reads the environment once. Safe before malloc works: secure_getenv and
 * our own parsing allocate nothing. Setuid programs keep the defaults. */
void options_boot(void);

/* Does the environment ask to hear from us even if the program never
 * allocates (ZPMALLOC_VERBOSE or ZPMALLOC_STATS set, and not to 0)? */
bool options_want_report(void);

/* How option values are read: decimal with an optional k/m/g suffix;
 * false when s is not one or does not fit in a long. */
bool options_parse_long(const char *s, long *out);

/* Prints one "ZPMALLOC_NAME=value" row per option (for stats output). */
struct outbuf;
void options_print(struct outbuf *o);

#endif /* ZP_BASE_OPTIONS_H */
