/*
 * zero.h - the zero-page engine: how a range comes to read as zero.
 *
 * A zero-backed region is a private anonymous mapping whose untouched pages
 * map the kernel's shared zero page; the first store copies-on-write
 * natively (the measured facts say no userfaultfd first-touch scheme beats
 * that). The engine keeps a table of live regions so that a background
 * scanner can find pages a program wrote and filled with zeros again and
 * hand them back to the shared zero page with the userfaultfd MOVE
 * protocol, which never loses a write (not even a kernel or device write
 * into a pinned page).
 *
 * Users: malloc/large.c (blocks > 4 MiB, which it takes and parks),
 * malloc/alloc.c (zeroing recycled pages for calloc) and the shim's
 * interposed mmap family, mprotect, mlock, ioctl, close, prctl, unshare
 * and setns. The engine's own tables come from os_map, never from malloc,
 * and nothing here calls the allocator except pthread_create for the one
 * helper thread, started only where there is work (never with an engine
 * lock held, never from an interposed call), which exits when there is
 * none.
 *
 * All functions return 0 or a positive errno value unless stated.
 */
#ifndef ZP_ZERO_ZERO_H
#define ZP_ZERO_ZERO_H

#include <sys/types.h>

#include "base/util.h"

struct outbuf;
struct zp_zero_info;

/* Same values as enum opt_uffd_mode so boot code can pass zp_opt.uffd. */
enum zero_uffd_mode {
	ZERO_UFFD_AUTO = 0,	/* climb the capability ladder lazily */
	ZERO_UFFD_OFF = 1,	/* plain kernel zero page, no reclaim */
};

struct zero_config {
	int uffd_mode;			/* enum zero_uffd_mode */
	bool reclaim;			/* background scanner allowed */
	uint64_t reclaim_interval_ns;	/* pause between scanner passes */
	size_t reclaim_budget_bytes;	/* resident bytes examined a pass */
	size_t mmap_threshold;		/* zero_mmap: smallest region */
	size_t park_bytes;		/* freed large blocks kept mapped */
	size_t park_max;		/* ... up to half the live regions,
					 * at most this (see zero.c) */
	uint64_t park_delay_ns;		/* ... for at most this long */
	/* Test-only: reclaim with plain check-zero + MADV_DONTNEED (no
	 * protection), so the torture test can prove it sees lost writes. */
	bool test_break_protection;
	/* Test-only: the window forgets the last page of each move, as a
	 * move that reported less than it did would have it. */
	bool test_forget_moved;
	/* Test-only: a move that succeeded reports EEXIST and nothing
	 * moved, and wakes nobody, as Linux 6.18's does after a transient
	 * EAGAIN (uffd.c); with test_move_reports, it counts that many
	 * pages first, and with test_move_pages, each take moves at most
	 * that many (0: no limit). */
	bool test_move_says_eexist;
	unsigned test_move_reports, test_move_pages;
};

/* Defaults matching the option table (auto, reclaim on, 1 s, 256 MiB,
 * 4 MiB threshold), and 64 MiB parked for at most 1 s. */
void zero_config_default(struct zero_config *cfg);

/* Once per process, before any other call (later calls replace the
 * configuration; tests use that). Cheap: probes nothing, starts nothing. */
void zero_boot(const struct zero_config *cfg);

/* --- regions (malloc/large.c) ------------------------------------------ */

/*
 * A fresh zero-backed region of size bytes (rounded up to pages), aligned
 * to align (a power of two; 0 or a page for none). Its contents are known
 * zero and cost no RSS until touched. The first region of a process (with
 * reclaim on) starts the scanner thread: pthread_create makes a small
 * calloc, so do not call this holding a lock small allocations need.
 */
int zero_region_map(size_t size, void **out);
int zero_region_map_aligned(size_t size, size_t align, void **out);
/* Unmap a region, or part of one (the table splits); EINVAL if [p, p+size)
 * is not inside one region. A refused unmap (the map-count limit) keeps
 * the range, purged, for later: only EINVAL is ever returned. */
int zero_region_unmap(void *p, size_t size);

/*
 * Parking: what glibc gets from reusing its heap, for large blocks. A
 * freed block's region is kept mapped, out of the table (the scanner
 * leaves it alone), for park_delay_ns, within a budget of park_bytes
 * (whether a block is worth parking is the caller's call); the next large
 * block takes it instead of a fresh mapping: the smallest one that holds
 * it (the rest stays parked), else the largest grown with mremap. Reused
 * pages cost no fault; zeroing the resident ones (memset) is several
 * times cheaper than the fault and kernel clear a fresh page costs.
 * Expired regions are unmapped by the scanner thread (with reclaim on,
 * at any level), else by the next take or park; all of them when a
 * mapping fails with ENOMEM (zero_mmap then retries; a failed take is
 * retried by the malloc layer after its trim) and on trim.
 *
 * zero_region_take: a region for a large block, parked or fresh. With
 * zero its contents read as zero; without, parked pages keep old data.
 * align: as zero_region_map_aligned (a parked region serves it only when
 * its start happens to be aligned).
 */
int zero_region_take(size_t size, size_t align, bool zero, void **out);
/* The same, for a block its caller expects the program to fill: with
 * huge, a fresh region is advised to take huge pages and placed half a
 * huge page past a boundary, so that its head and tail take small ones
 * (a parked one is advised only). *fresh: how many of its bytes (size,
 * rounded to pages, unless a parked region served it, whose pages are
 * resident whatever the new block's use) are new pages, which count
 * against the memory limit and the peak as they are written. */
int zero_region_take_huge(size_t size, size_t align, bool zero, bool huge,
			  size_t *fresh, void **out);
/* The resident bytes (not the zero page) that at most max_calls
 * PAGEMAP_SCAN calls find from s on, up to e; *done: where they stopped
 * (s when the kernel or a sandbox allows no scan: then 0). */
size_t zero_resident_sample(uintptr_t s, uintptr_t e, unsigned max_calls,
			    uintptr_t *done);
/* Give back a region that zero_region_map*|take handed out: parked, or
 * unmapped when it is bigger than the budget; the oldest parked regions
 * go to make room. Anything but one whole region is unmapped as by
 * zero_region_unmap (EINVAL unless inside one region). */
/* room: how much the caller allows parked in all when that is more than
 * the budget (a teardown's blocks), park_max at most; 0 for the budget. */
int zero_region_park(void *p, size_t size, size_t room);
/* Unmap parked regions: every one (all), or those parked for longer than
 * park_delay_ns. Returns the bytes unmapped. */
size_t zero_park_release(bool all);
/* Unmap parked pages, the longest parked first, until at most keep bytes
 * stay parked. Returns the bytes unmapped. */
size_t zero_park_trim(size_t keep);
/* Bytes parked now. */
size_t zero_park_bytes(void);
/* Grow or shrink a region in place, or move it when may_move; contents
 * and bookkeeping follow. ENOMEM when it cannot. */
int zero_region_remap(void *old, size_t old_size, size_t new_size,
		      bool may_move, void **out);
/* Is p inside a live region? If so *start and *size describe it (either
 * may be NULL). Lock-free. */
bool zero_region_owns(const void *p, void **start, size_t *size);

/*
 * Make a recycled dirty span read as zero by the cheapest correct means:
 * skip pages that are not resident or already the zero page (PAGEMAP_SCAN
 * where it pays), memset 4 KiB pages (cheaper than a zap and the re-touch
 * it costs), MADV_DONTNEED when release is true (the memory is also to be
 * given back) or for THP-backed spans. p and size need not be aligned.
 */
void zero_make_zero(void *p, size_t size, bool release);

/* --- interposed calls (malloc/map.c, for the shim) ---------------------- */

/*
 * mmap(2) with the engine's bookkeeping: a private anonymous read-write
 * mapping of at least the threshold without MAP_FIXED becomes a region;
 * anything else passes through os_mmap_raw (a MAP_FIXED map over a region
 * drops that part of the region from the table). Returns the kernel's
 * result: MAP_FAILED with *err set on failure.
 *
 * These calls are async-signal-safe: for memory that is not a region they
 * take no lock (a lock-free look at the table), and a program thread
 * holds an engine lock only with every signal blocked. None of them
 * starts a thread.
 */
void *zero_mmap(void *addr, size_t len, int prot, int flags, int fd,
		off_t off, int *err);
/* munmap(2): returns 0 or an errno value; partial unmaps split regions. */
int zero_munmap(void *addr, size_t len);
/* mremap(2): flags as the kernel's (MREMAP_MAYMOVE, MREMAP_FIXED,
 * MREMAP_DONTUNMAP); MAP_FAILED with *err on failure. */
void *zero_mremap(void *old, size_t old_size, size_t new_size, int flags,
		  void *new_addr, int *err);

/*
 * madvise(2) with the engine's bookkeeping: MADV_DONTNEED, MADV_FREE and
 * MADV_REMOVE on region memory wait for a chunk under reclaim to settle,
 * so that a page the scanner holds in scratch can never reappear after
 * the program dropped it. Anything else passes straight through.
 * Returns 0 or an errno value.
 */
int zero_madvise(void *addr, size_t len, int advice);

/*
 * Around a call that changes what the kernel lets the reclaim window do
 * with [addr, addr + len) (mprotect, pkey_mprotect, mlock, mlock2,
 * munlock; len SIZE_MAX: the whole address space, for mlockall): when it
 * touches a region, wait for a chunk under reclaim there and keep the
 * scanner off until zero_range_release. Free for other memory.
 */
struct zero_hold {
	uint64_t mask;
	bool held;
};
void zero_range_hold(void *addr, size_t len, struct zero_hold *h);
void zero_range_release(struct zero_hold *h);

/* The program registers [addr, addr + len) with a userfaultfd of its
 * own: region memory there becomes plain memory (after any chunk under
 * reclaim there settled), so the registration never finds ours. */
void zero_uffd_claimed(void *addr, size_t len);

/* The program is about to close (or dup onto) descriptors [lo, hi]:
 * the engine stops using any of its own there, after a use in progress.
 * Cheap when none is ours. */
void zero_fds_closing(int lo, int hi);

/*
 * The program is about to install a seccomp filter (prctl or seccomp):
 * finish the chunk under reclaim, stop the helper thread, close the
 * userfaultfd (every registration goes) and the pagemap, and stay at the
 * "kernel" level from now on, issuing no ioctl and starting no thread.
 */
void zero_sandbox(void);

/*
 * Around unshare and setns, which the kernel refuses (EINVAL) to a
 * process with more than one thread for user and mount namespaces: stop
 * the helper thread and wait until it has left the thread group; after
 * the call, work starts it again. zero_ns_retry says whether an EINVAL
 * is worth another try (a thread just stopped may linger a moment).
 */
void zero_ns_begin(void);
bool zero_ns_retry(int err, unsigned tries);
void zero_ns_end(void);

/* A malloc-layer slow path, where creating a thread is safe: start the
 * helper if an interposed call noted work it could not start it for. */
void zero_kick_pending(void);

/* Called by the helper thread each pass (every interval_ns at most),
 * while it runs: the malloc layer gives back its idle free pages on that
 * timer (a program that goes idle holding some then has them given back
 * without another call). It returns whether free pages wait for a later
 * pass, which keeps the helper running. */
void zero_set_idle_hook(bool (*hook)(uint64_t interval_ns));

/* Unmap [p, p + size) (any mapping of ours), or when the kernel refuses
 * (ENOMEM at the map-count limit: the unmap would split a mapping) drop
 * its contents and keep it, to be unmapped by a later slow path. Never
 * fails, never touches errno. */
void zero_unmap_or_keep(void *p, size_t size);

/* --- reclaim, fork, stats ---------------------------------------------- */

/*
 * One synchronous reclaim pass over every region in the calling thread
 * (zp_trim, tests). Returns the pages given back to the zero page; 0 when
 * the level has no live reclaim.
 */
size_t zero_reclaim_now(void);

/* The capability level (enum zp_zero_level), probing the ladder once if
 * it has not been probed yet. */
int zero_level(void);

/* prefork takes every engine lock, waiting for a chunk under reclaim to
 * finish (a fork must never copy a chunk whose pages sit in scratch). No
 * engine thread holds an engine lock while it allocates, so any order
 * against the other layers' prefork is safe. Child: no helper thread, the
 * inherited uffd closed, both re-created lazily. */
void zero_prefork(void);
void zero_postfork_parent(void);
void zero_postfork_child(void);

int zero_info(struct zp_zero_info *out);
void zero_print(struct outbuf *o);
/* One JSON object, no trailing newline: {"level":"uffd",...}. */
void zero_print_json(struct outbuf *o);

#endif /* ZP_ZERO_ZERO_H */
