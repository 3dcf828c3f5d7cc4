/*
 * zpinfo.h - what a plain test program may ask of the allocator it runs
 * on: whether zpmalloc is preloaded, its zero-page engine level and
 * counters. Looked up with dlsym, so the same binary runs on glibc, where
 * zp_info_get returns false and the zpmalloc-only checks are skipped.
 */
#ifndef ZP_TEST_STRESS_ZPINFO_H
#define ZP_TEST_STRESS_ZPINFO_H

#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The layout of include/zpmalloc.h's struct zp_zero_info. */
struct zp_info {
	int level;		/* 0 off, 1 kernel, 2 uffd */
	char level_reason[48];
	uint64_t nr_regions, region_bytes, resident_bytes;
	uint64_t registered_bytes;
	uint64_t nr_reclaimed_pages;
	uint64_t nr_faults_handled;
	uint64_t nr_scans, scanned_bytes;
	uint64_t handler_ns, scanner_ns;
};

#define ZP_LEVEL_UFFD	2

static inline bool
zp_info_get(struct zp_info *out)
{
	int (*fn)(struct zp_info *) =
		(int (*)(struct zp_info *))dlsym(RTLD_DEFAULT, "zp_zero_info");

	memset(out, 0, sizeof(*out));
	return fn && fn(out) == 0;
}

/* zpmalloc with live reclaim (full userfaultfd): the RSS checks apply. */
static inline bool
zp_has_reclaim(void)
{
	struct zp_info in;

	return zp_info_get(&in) && in.level == ZP_LEVEL_UFFD;
}

/* The "Threads:" line of /proc/self/status (0 when unreadable). */
static inline int
thread_count(void)
{
	char line[256];
	int n = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

#endif /* ZP_TEST_STRESS_ZPINFO_H */
