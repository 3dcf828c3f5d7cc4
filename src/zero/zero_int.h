/*
 * zero_int.h - what the files of the zero-page engine share.
 * Private to src/zero/: nothing outside includes it.
 *
 * Lock order: reclaim_lock (one chunk under reclaim, or a region being
 * unmapped, remapped or re-protected) -> table lock (the region table) ->
 * probe_lock (the uffd ladder) -> pagemap_lock. Engine locks are leaves
 * against the allocator's: no holder ever waits for a zone, slab or large
 * lock, or calls malloc.
 *
 * Signals: a program thread blocks every signal for as long as it holds
 * an engine lock (struct zero_guard), so a handler that calls munmap or
 * madvise can never find its own thread holding the lock it needs. The
 * helper thread runs with every signal blocked anyway.
 */
#ifndef ZP_ZERO_ZERO_INT_H
#define ZP_ZERO_ZERO_INT_H

#include "base/lock.h"
#include "os/os_proc.h"
#include "zero/zero.h"

#define ZERO_CHUNK	((size_t)2 << 20)	/* reclaim window */
#define ZERO_CHUNK_PAGES (ZERO_CHUNK / ZP_PAGE_SIZE)
#define ZERO_HUGE_SIZE	((size_t)2 << 20)	/* a PMD: one huge page */

/* The configuration zero_boot was given; read-only afterwards. */
extern struct zero_config zero_cfg;

/* Signals blocked in a program thread for one engine critical section. */
struct zero_guard {
	uint64_t mask;
};

static inline void
zero_guard_enter(struct zero_guard *g)
{
	os_sig_block_all(&g->mask);
}

static inline void
zero_guard_leave(struct zero_guard *g)
{
	os_sig_restore(g->mask);
}

/* --- zero.c: the region table ------------------------------------------ */

/* Does [start, end) touch a live region? Lock-free (a seqlock read over
 * table arrays that are never unmapped): async-signal-safe. */
bool zero_table_touches(uintptr_t start, uintptr_t end);
/* Are there regions at all? (Lock-free.) */
bool zero_table_is_empty(void);
/* The next region range at or after addr, clipped to one chunk (2 MiB
 * aligned) and to the region: false when there is none. Caller holds
 * reclaim_lock, so the range stays mapped while it works on it. */
bool zero_table_next_chunk(uintptr_t addr, bool all_ages, uintptr_t *start,
			   uintptr_t *end);
/* Whether a pass since the last call passed over a region too young to
 * reclaim, or one refused a while ago (work for a later pass); clears
 * the note. */
bool zero_table_took_young(void);
/* A pass took pages of the region holding addr back (reclaim_age). */
void zero_table_note_reclaimed(uintptr_t addr);
/* A background pass begins: the age comes down unless a region was freed
 * just after a reclaim since the last one. */
void zero_reclaim_age_decay(void);
/* The age regions must reach now; *wasted: such losses so far. */
uint64_t zero_reclaim_age_ns(uint64_t *wasted);
/* The kernel refused to move the pages of the region holding addr out:
 * passes leave it alone for ZERO_REFUSED_INTERVALS reclaim intervals.
 * Caller holds reclaim_lock. */
#define ZERO_REFUSED_INTERVALS	16
void zero_table_refuse(uintptr_t addr);
/* [start, end) is plain memory from now on (someone else registered it
 * with a userfaultfd, or the kernel refused it): forget it. Caller holds
 * reclaim_lock. */
void zero_table_forget(uintptr_t start, uintptr_t end);
/* Resident (present, not the zero page) bytes of [start, end). */
size_t zero_resident_bytes(uintptr_t start, uintptr_t end);
/* 1 when a read fault of untouched memory maps the kernel's zero page, 0
 * when it commits a page (a guest kernel without one), -1 unknown. */
int zero_kernel_zero_page(void);
/* Is the whole page zero? (Word loop: reads 4 KiB.) */
bool zero_page_is_zero(const void *p);
/* A work generation: bumped whenever regions or parked regions appear. */
bool zero_has_work(void);

/* For hooks.c: every lock a change of region memory by the program needs
 * (reclaim_lock, then the table), and the table under them. */
void zero_hook_lock(void);
void zero_hook_unlock(void);
int zero_hook_add(uintptr_t start, uintptr_t end);
void zero_hook_reserve_locked(size_t extra);
void zero_hook_remove_locked(uintptr_t start, uintptr_t end);
bool zero_hook_holds_locked(uintptr_t start, uintptr_t end);
void zero_hook_follow_locked(uintptr_t os, uintptr_t oe, uintptr_t ns,
			     uintptr_t ne, bool was_region, bool keep_old);

/* --- fds.c: the engine's descriptors ----------------------------------- */

/*
 * A descriptor of ours, recognised before every use by its identity
 * (device and inode, each userfaultfd has its own) and the process that
 * opened it: a program that closes descriptors it did not open and
 * reuses the numbers, or a fork that bypassed our hooks, never gets one of
 * its files acted on.
 */
struct zero_fd {
	int fd;			/* -1: none */
	int pid;		/* the process that opened it */
	uint64_t ident;
	uint32_t users;		/* program threads using it now */
};

#define ZERO_FD_INIT	{ -1, 0, 0, 0 }

/* Adopt a freshly opened fd. */
void zfd_set(struct zero_fd *f, int fd);
/* The descriptor if it is still ours (counted as in use until zfd_put),
 * else -1 (and forgotten, never closed: the number is the program's). */
int zfd_get(struct zero_fd *f);
void zfd_put(struct zero_fd *f);
/* Close it if it is still ours; forget it either way. */
void zfd_close(struct zero_fd *f);
/* The program is about to close or replace [lo, hi]: forget ours in the
 * range, waiting for a use in progress. True if one was ours. */
bool zfd_release(struct zero_fd *f, int lo, int hi);
/* Does [lo, hi] hold f's number? (Lock-free, cheap.) */
bool zfd_in(const struct zero_fd *f, int lo, int hi);

/* /proc/self/pagemap, opened lazily; -1 when unavailable or when the
 * engine may no longer issue ioctls (a sandbox). Pair with pagemap_put. */
int zero_pagemap_get(void);
void zero_pagemap_put(void);
/* The pagemap descriptor against a program's close of [lo, hi]. */
bool fds_in(int lo, int hi);
void fds_closing(int lo, int hi);
void fds_close_all(void);
void fds_postfork_child(void);

/* --- uffd.c: capability ladder and reclaim window ---------------------- */

int uffd_level(void);			/* probes once */
int uffd_level_peek(void);		/* -1 until probed; never probes */
const char *uffd_reason(void);
int uffd_ensure(void);			/* uffd and scratch (reclaim_lock) */
int uffd_window_open(uintptr_t start, uintptr_t end);
/* Move up to nr pages from p out to scratch; returns pages moved and sets
 * *err for the page that stopped it (EBUSY: pinned or shared). */
size_t uffd_window_take(uintptr_t p, size_t nr, int *err);
/* Settle every page in scratch: zero page back where it is still zero,
 * the page itself where a write slipped in. Returns pages reclaimed. */
size_t uffd_window_settle(void);
void uffd_window_close(void);
void uffd_stats(uint64_t *faults, uint64_t *registered);
/* Pages moved home instead of reclaimed (a store or a fault raced). */
uint64_t uffd_nr_rescued(void);
/* Pages put back with UFFDIO_COPY or mremap because the move home was
 * refused (protection or lock state changed, a sandbox). */
uint64_t uffd_nr_copied(void);
/* Pages found in scratch that no move reported (adopt_resident). */
uint64_t uffd_nr_adopted(void);
/*
 * Stop using userfaultfd and the pagemap ioctls for good: a sandbox, or
 * EPERM/ENOSYS from one of our calls. Level "kernel" with why as the
 * reason; the zone's purges go one madvise a range from then on too.
 * Caller holds reclaim_lock (no chunk under reclaim).
 */
void uffd_stop(const char *why);
/* True once uffd_stop ran: no more ioctls of ours in this process. */
bool uffd_is_stopped(void);
/* The program is closing [lo, hi]: release ours in it (reclaim_lock
 * held). */
void uffd_fds_closing(int lo, int hi);
bool uffd_fds_in(int lo, int hi);
void uffd_prefork(void);
void uffd_postfork_parent(void);
void uffd_postfork_child(void);

/* --- reclaim.c: the scanner --------------------------------------------- */

void reclaim_lock(void);
void reclaim_unlock(void);
/* One pass from the cursor (NULL live: a full sweep in the calling
 * program thread). *examined gets the resident bytes seen. */
size_t reclaim_pass(size_t budget, bool *live, size_t *examined);
void reclaim_stats(uint64_t *reclaimed, uint64_t *scans,
		   uint64_t *scanned, uint64_t *scanner_ns);
void reclaim_fds_closing(int lo, int hi);
bool reclaim_fds_in(int lo, int hi);
void reclaim_fds_close(void);
void reclaim_prefork(void);
void reclaim_postfork_parent(void);
void reclaim_postfork_child(void);

/* --- helper.c: the one background thread -------------------------------- */

/*
 * Work appeared (a region, a parked region). Starts the helper thread if
 * none runs and may_start (false on paths a signal handler may take, such
 * as an interposed mmap: creating a thread there is not signal-safe; the
 * next slow path starts it). Cheap when the helper runs.
 */
void helper_kick(bool may_start);
/* Start the helper if work was noted where it could not start. */
void helper_kick_pending(void);
/* Stop the helper and wait until the kernel has removed it from the
 * thread group; no helper starts until helper_resume. Nests. */
void helper_quiesce(void);
void helper_resume(void);
/* Never start a helper again (a sandbox). */
void helper_forbid(void);
bool helper_is_running(void);
void helper_print(struct outbuf *o, bool json);
void helper_postfork_child(void);

#endif /* ZP_ZERO_ZERO_INT_H */
