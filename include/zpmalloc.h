/*
 * zpmalloc.h - the installable contract of libzpmalloc: version, the zp_*
 * extensions beyond the libc malloc family, and statistics.
 *
 * The libc names (malloc, free, calloc, ...) need no header of ours: link
 * with -lzpmalloc or LD_PRELOAD libzpmalloc.so and they are replaced.
 */
#ifndef ZPMALLOC_H
#define ZPMALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ZPMALLOC_VERSION_MAJOR 0
#define ZPMALLOC_VERSION_MINOR 1
#define ZPMALLOC_VERSION_PATCH 0

/* "0.1.0": the version of the library actually loaded. */
const char *zp_version(void);

/* Flags for zp_malloc_flags. */
#define ZP_LOW32	(1u << 0)	/* every byte below 4 GiB (DMA32-like) */
#define ZP_ZERO		(1u << 1)	/* zero-filled, as calloc */
#define ZP_NODE_EXACT	(1u << 2)	/* only the node ZP_NODE names */
#define ZP_NODE(n)	((unsigned)((n) + 1) << 8) /* prefer NUMA node n */

/* malloc with placement flags; free the result with free() or zp_free(). */
void *zp_malloc_flags(size_t size, unsigned flags);
void zp_free(void *p);
size_t zp_usable_size(const void *p);

/* Give back every free page and drain the calling thread's caches.
 * Returns the bytes given back to the kernel. */
size_t zp_trim(void);

/* Print every statistics table (slabinfo, buddyinfo, zoneinfo, zero-page
 * engine) to fd, as text or (json != 0) as one JSON object. */
void zp_stats_print(int fd, int json);

/* One zone, /proc/zoneinfo style. Returns 0, or -1 past the last zone. */
struct zp_zone_info {
	char name[16];			/* "Normal", "Low32" */
	int node;			/* NUMA node (fake or real) */
	uint64_t base, span_bytes;	/* the zone's window */
	uint64_t grown_bytes;		/* the part with page descriptors */
	uint64_t committed_bytes;	/* of that, mapped now */
	uint64_t nr_free_pages;		/* pages on free_area lists */
	uint64_t nr_free_zero_pages;	/* of those, known zero (purged) */
	uint64_t nr_free_by_order[16];	/* /proc/buddyinfo row */
	uint64_t wmark_min, wmark_low, wmark_high; /* pages */
	uint64_t lowmem_reserve[2];	/* pages, per requesting zone type */
	uint64_t nr_alloc, nr_free_calls, nr_fallback_in, nr_failed;
	uint64_t nr_grow_steps, nr_purged_pages;
	uint64_t retain_pages;		/* dirty free pages kept at frees */
	uint64_t nr_refault_pages;	/* purged pages taken back soon */
	uint64_t nr_huge_steps;		/* 2 MiB steps advised and faulted
					 * in for a huge page (the kernel may
					 * still give small pages) */
};
int zp_zone_info(unsigned idx, struct zp_zone_info *out);

/* One slab size class, /proc/slabinfo style. Returns 0, or -1 past the
 * last class. */
struct zp_slab_info {
	uint32_t object_size;		/* the class size */
	uint32_t objects_per_slab;
	uint32_t pages_per_slab;
	uint64_t active_objects;	/* handed out and not freed (built
					 * with -Dstats=false: every object
					 * of the class's slabs) */
	uint64_t total_objects;		/* capacity of all slabs */
	uint64_t active_slabs, total_slabs;
	uint64_t nr_alloc_fast, nr_alloc_slow, nr_free_local, nr_free_remote;
};
int zp_slab_info(unsigned size_class, struct zp_slab_info *out);

/* The zero-page engine. */
enum zp_zero_level {
	ZP_ZERO_LEVEL_OFF = 0,		/* forced off: plain kernel zero page */
	ZP_ZERO_LEVEL_KERNEL = 1,	/* kernel zero page, no live reclaim */
	ZP_ZERO_LEVEL_UFFD = 2,		/* full uffd with MOVE: live reclaim */
};
struct zp_zero_info {
	int level;			/* enum zp_zero_level */
	char level_reason[48];		/* why not a higher level */
	uint64_t nr_regions, region_bytes, resident_bytes;
	uint64_t registered_bytes;	/* under uffd registration now */
	uint64_t nr_reclaimed_pages;	/* given back to the zero page */
	uint64_t nr_faults_handled;
	uint64_t nr_scans, scanned_bytes;
	uint64_t handler_ns, scanner_ns;
};
int zp_zero_info(struct zp_zero_info *out);

#ifdef __cplusplus
}
#endif

#endif /* ZPMALLOC_H */
