/*
 * large.h - blocks with a mapping of their own, found again through a
 * hash table keyed by address: those beyond the buddy's largest order
 * (> ZP_MAX_BLOCK), and buffers realloc grew out of zone pages (alloc.c's
 * ALLOC_REMAP_MIN and up), which then grow by mremap.
 */
#ifndef ZP_MALLOC_LARGE_H
#define ZP_MALLOC_LARGE_H

#include <stddef.h>

#include "base/util.h"

enum large_flags {
	LARGE_LOW32 = 1 << 0,	/* every byte below 4 GiB */
	LARGE_PLACED = 1 << 1,	/* bound to a node: its own mapping */
};

struct large_stats {
	size_t nr_blocks;	/* live blocks */
	size_t bytes;		/* their mapped bytes */
	size_t peak_bytes;
	uint64_t nr_alloc, nr_free, nr_remap, nr_failed;
	uint64_t nr_huge;	/* placed for huge pages (large.c) */
	size_t table_capacity;
};

/*
 * A block of at least n bytes (rounded up to pages) aligned to align (0 or
 * any power of two); its contents read as zero when zero is true, and may
 * be a freed block's when it is false (a parked region, reused without a
 * fault). node >= 0 prefers that NUMA node. NULL when the mapping or the
 * table growth fails; nothing is left behind.
 */
void *large_alloc(size_t n, size_t align, unsigned flags, int node,
		  bool zero);
/* Frees p when it is a live large block and returns true; false when it is
 * not ours. A recently freed block freed again is fatal. The region may
 * stay mapped for a while, parked for the next large block. */
bool large_free(void *p);
/* Parked pages go where, with a zone step more resident, they would take
 * the resident set past its peak (the zones' peak hook). */
void large_park_within_peak(void);
/* The usable size of a live large block, 0 when p is not one. */
size_t large_usable_size(const void *p);
/*
 * Resize a live large block to hold n bytes, in place or by moving its
 * pages (never by copying). Returns the block's new address,
 * or NULL when the mapping cannot be resized (the old block stays valid).
 */
void *large_resize(void *p, size_t n);

void large_get_stats(struct large_stats *out);
/* Blocks of a size the program has filled to at least percent of their
 * pages are placed for transparent huge pages; 0 never (large.c). */
void large_set_huge_fill(unsigned percent);

void large_prefork(void);
void large_postfork_parent(void);
void large_postfork_child(void);

#endif /* ZP_MALLOC_LARGE_H */
