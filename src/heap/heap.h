/*
 * heap.h - one shared heap of best-fit, coalescing blocks for the size
 * classes the process's first thread uses lightly.
 *
 * Slabs give every size class pages of its own. A class a thread asks
 * for a handful of times (Python's start-up touches ~60 classes above
 * 512 bytes, a few objects each) then holds pages that are mostly empty,
 * and memory freed by one class never serves another: a program's peak
 * becomes the sum of its classes' peaks. Here blocks of every class share
 * 64 KiB chunks of zone pages and merge with free neighbours when freed,
 * as glibc's heap does. A block is of its class's size and records the
 * class, so malloc_usable_size, realloc and sized frees treat it as they
 * treat a slab object of that class. The malloc layer sends the first
 * thread's requests of a class up to HEAP_WIDE_MAX bytes here while few
 * of its blocks are live, and the first HEAP_LIGHT_MAX of a larger one
 * (alloc.c); a class used more than that goes to slabs, whose paths take
 * no lock.
 *
 * Each block has a 16-byte header: the size of the block before it (so
 * that a free finds its left neighbour), its own size with its class and
 * an in-use bit, and a seal - a keyed hash of the header's address and
 * the size word - that free checks before it trusts the rest: a pointer
 * that is not a block's start, or a block freed twice, aborts naming the
 * call.
 */
#ifndef ZP_HEAP_HEAP_H
#define ZP_HEAP_HEAP_H

#include "base/util.h"
#include "page/page.h"

/* Requests of one class the first thread sends here before it takes
 * slabs. A class of up to HEAP_WIDE_MAX bytes stays for up to
 * HEAP_WIDE_REQS requests, or until HEAP_LIGHT_MAX of its blocks are
 * live at once (heap_live); a larger one for HEAP_LIGHT_MAX requests. */
#define HEAP_LIGHT_MAX	16
#define HEAP_WIDE_MAX	4096
#define HEAP_WIDE_REQS	4096

/* The heap takes zone blocks of this size (stats). */
#define HEAP_CHUNK_ORDER	4
#define HEAP_CHUNK_BYTES	((size_t)ZP_PAGE_SIZE << HEAP_CHUNK_ORDER)

void heap_boot(uint64_t key_seed);

/* A block of class sc (sizeclass_size(sc) bytes, 16-aligned; the first
 * n cleared when zero); NULL when the zone has no chunk to give, or when
 * the caller holds one of our locks (a signal handler: the heap's lock
 * may be the one it interrupted). */
void *heap_alloc(unsigned sc, size_t n, bool zero);
/* Frees p, a pointer into the chunk head describes; call names the
 * caller (without "()") in the abort message for a pointer that is not
 * a live block. */
void heap_free(void *p, struct page *head, const char *call);
/* The class p was allocated as (checked as heap_free checks): a block
 * holds, frees and reallocs as a slab object of its class does. */
unsigned heap_class(const void *p, struct page *head, const char *call);
/* Blocks of class sc in use (read without the lock: a hint). */
unsigned heap_live(unsigned sc);
/* Gives the empty chunk kept for reuse back to the zone, and the whole
 * pages inside free blocks back to the system; bytes. */
size_t heap_trim(void);

void heap_prefork(void);
void heap_postfork_parent(void);
void heap_postfork_child(void);

struct heap_stats {
	uint64_t nr_chunks;		/* chunks held */
	uint64_t used_bytes;		/* blocks handed out, headers too */
	uint64_t nr_used;		/* blocks handed out */
	uint64_t nr_alloc, nr_free;
	uint64_t purged_bytes;		/* free pages given back, ever */
};
void heap_get_stats(struct heap_stats *out);

#endif /* ZP_HEAP_HEAP_H */
