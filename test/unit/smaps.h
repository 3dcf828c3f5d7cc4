/*
 * smaps.h - what the unit tests read of a mapping in /proc/self/smaps:
 * its VmFlags and its counters.
 */
#ifndef ZP_TEST_SMAPS_H
#define ZP_TEST_SMAPS_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies into line the first line starting with key and a colon of the
 * mapping holding p; false when the mapping has none. */
static inline bool
smaps_line(const void *p, const char *key, char *line, size_t size)
{
	bool in = false, found = false;
	size_t n = strlen(key);
	FILE *f = fopen("/proc/self/smaps", "r");

	cr_assert_not_null(f);
	while (!found && fgets(line, (int)size, f)) {
		unsigned long lo, hi;

		/* Only a mapping's first line has both ends. */
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
		else
			found = in && strncmp(line, key, n) == 0 &&
				line[n] == ':';
	}
	fclose(f);
	return found;
}

/* The ends of the mapping holding p; false when none holds it. */
static inline bool
vma_bounds(const void *p, uintptr_t *lo, uintptr_t *hi)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/smaps", "r");

	cr_assert_not_null(f);
	while (!found && fgets(line, (int)sizeof(line), f)) {
		unsigned long a, b;

		if (sscanf(line, "%lx-%lx ", &a, &b) == 2 &&
		    (uintptr_t)p >= a && (uintptr_t)p < b) {
			*lo = a;
			*hi = b;
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* Does the mapping holding p carry VmFlag flag ("hg": MADV_HUGEPAGE,
 * "nh": MADV_NOHUGEPAGE)? */
static inline bool
vma_has_flag(const void *p, const char *flag)
{
	char line[512], want[8];

	snprintf(want, sizeof(want), " %s", flag);
	return smaps_line(p, "VmFlags", line, sizeof(line)) &&
	       strstr(line, want) != NULL;
}

/* A counter of the mapping holding p ("AnonHugePages"), in KiB; -1 when
 * the mapping has none. */
static inline long
vma_field_kb(const void *p, const char *name)
{
	char line[512];

	if (!smaps_line(p, name, line, sizeof(line)))
		return -1;
	return strtol(line + strlen(name) + 1, NULL, 10);
}

#endif /* ZP_TEST_SMAPS_H */
