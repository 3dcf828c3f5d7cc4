/*
 * zero_int.h - what zero.c, uffd.c and reclaim.c share inside the engine.
 * Private to src/zero/: nothing outside includes it.
 *
 * Lock order: reclaim_lock (one chunk under reclaim, or a region being
 * unmapped/remapped) -> table_lock (the region table) -> win_lock (which
 * pages of the chunk under reclaim sit in scratch).
 */
#ifndef ZP_ZERO_ZERO_INT_H
#define ZP_ZERO_ZERO_INT_H

#include "base/lock.h"
#include "zero/zero.h"

#define ZERO_CHUNK	((size_t)2 << 20)	/* reclaim window */
#define ZERO_CHUNK_PAGES (ZERO_CHUNK / ZP_PAGE_SIZE)

/* The configuration zero_boot was given; read-only afterwards. */
extern struct zero_config zero_cfg;

/* zero.c: the region table. */
/* The next region range at or after addr, clipped to one chunk (2 MiB
 * aligned) and to the region: false when there is none. Caller holds
 * reclaim_lock, so the range stays mapped while it works on it. */
bool zero_table_next_chunk(uintptr_t addr, uintptr_t *start,
			   uintptr_t *end);
/* The first address past the last region (0 when there is none). */
uintptr_t zero_table_top(void);
/* /proc/self/pagemap, opened lazily (-1 when unavailable). */
int zero_pagemap_fd(void);
/* Resident (present, not the zero page) bytes of [start, end). */
size_t zero_resident_bytes(uintptr_t start, uintptr_t end);
/* Is the whole page zero? (Word loop: reads 4 KiB.) */
bool zero_page_is_zero(const void *p);

/* uffd.c: capability ladder, handler thread, reclaim window. */
int uffd_level(void);			/* probes once */
const char *uffd_reason(void);
int uffd_ensure(void);			/* uffd, scratch, handler */
bool uffd_is_ready(void);		/* uffd_ensure has succeeded */
int uffd_window_open(uintptr_t start, uintptr_t end);
/* Move up to nr pages from p out to scratch; returns pages moved and sets
 * *err for the page that stopped it (EBUSY: pinned or shared). */
size_t uffd_window_take(uintptr_t p, size_t nr, int *err);
/* Settle every page in scratch: zero page back where it is still zero,
 * the page itself where a write slipped in. Returns pages reclaimed. */
size_t uffd_window_settle(void);
void uffd_window_close(void);
void uffd_stats(uint64_t *faults, uint64_t *handler_ns,
		uint64_t *registered);
/* Pages moved home instead of reclaimed (a store or a fault raced). */
uint64_t uffd_nr_rescued(void);
void uffd_prefork(void);
void uffd_postfork_parent(void);
void uffd_postfork_child(void);

/* reclaim.c: the scanner. */
void reclaim_lock(void);
void reclaim_unlock(void);
/* A region appeared: start the scanner thread once, if configured. */
void reclaim_kick(void);
/* A region was parked: make sure a thread will expire it, even where
 * there is no live reclaim (with reclaim off altogether, parked regions
 * go only when a later take or zp_trim finds them expired). */
void reclaim_kick_park(void);
size_t reclaim_pass(size_t budget, bool *has_work);
void reclaim_stats(uint64_t *reclaimed, uint64_t *scans,
		   uint64_t *scanned, uint64_t *scanner_ns);
void reclaim_prefork(void);
void reclaim_postfork_parent(void);
void reclaim_postfork_child(void);

#endif /* ZP_ZERO_ZERO_INT_H */
