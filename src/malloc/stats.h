/*
 * stats.h - the malloc layer's statistics: every layer's tables put
 * together (text or JSON), glibc's mallinfo/malloc_stats/malloc_info
 * figures, and the ZPMALLOC_STATS report at exit.
 */
#ifndef ZP_MALLOC_STATS_H
#define ZP_MALLOC_STATS_H

#include <stddef.h>

#include "base/util.h"

struct zp_zero_info;

/* Whole-process figures, in bytes unless named nr_. */
struct stats_usage {
	size_t arena;		/* committed zone memory */
	size_t in_use;		/* arena minus the free parts below */
	size_t free_pages;	/* free pages on the zones' free lists */
	size_t nr_free_blocks;	/* free buddy blocks */
	size_t slab_free;	/* free objects inside slabs */
	size_t nr_slab_free;
	size_t heap_free;	/* free bytes in the mid-size heap's chunks */
	size_t nr_large, large_bytes, large_peak;
	size_t reserved;	/* address space reserved by the zones */
};

void stats_usage(struct stats_usage *u);
/* Every table, as text or as one JSON object. */
void stats_print(int fd, bool json);
/* glibc's malloc_stats layout, then ours. */
void stats_malloc_stats(int fd);
/* malloc_info's XML, handed out a line at a time. */
void stats_malloc_info(void (*sink)(void *ctx, const char *line),
		       void *ctx);
int stats_zero_info(struct zp_zero_info *out);
/* ZPMALLOC_STATS / ZPMALLOC_STATS_FILE at process exit. */
void stats_at_exit(void);

#endif /* ZP_MALLOC_STATS_H */
