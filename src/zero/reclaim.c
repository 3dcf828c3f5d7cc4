/*
 * reclaim.c - the zero-page scanner: resident pages of live regions that
 * are all zero again go back to the shared zero page.
 * Owns:  reclaim_lock (one chunk at a time), the scan cursor, the peek
 *        pipe, the candidate buffers it reuses.
 * Locks: reclaim_lock is the outermost engine lock: held for one 2 MiB
 *        chunk (PAGEMAP_SCAN, zero check, the MOVE protocol), and by
 *        zero.c and hooks.c around any unmap, move or change of
 *        protection of region memory. A program thread (zp_trim) holds it
 *        with signals blocked, chunk by chunk.
 * Path:  helper thread -> reclaim_pass -> reclaim_chunk -> PAGEMAP_SCAN
 *        -> peek zero check -> uffd_window_open/take/settle/close
 *
 * Pages are first checked through os_peek (a pipe: the kernel copies them
 * and reports an unreadable page instead of faulting), so the scanner
 * never crashes on memory a program has made unreadable; only
 * pages that looked zero are moved out, and uffd.c checks them again in
 * scratch, where no one else can write them, before the zero page goes
 * back.
 */
#include <errno.h>

#include "base/log.h"
#include "os/os.h"
#include "os/os_uffd.h"
#include "zero/zero_int.h"

#define READ_PAGES	16		/* zero check in 64 KiB copies */
#define SAMPLE_BYTES	64		/* stage 1 reads one cache line */
#define SAMPLE_BATCH	256		/* pages per stage-1 gather */
#define MAKE_WAY_NS	(20 * 1000 * 1000)	/* make_way's longest wait */
#define MAKE_WAY_SLEEP_NS 20000

enum { CHUNK_DONE, CHUNK_NO_UFFD };

static struct zp_lock rlock = ZP_LOCK_INIT;
static uintptr_t cursor;		/* where the next pass starts */

/* Guarded by rlock. */
static struct os_page_region vec[ZERO_CHUNK_PAGES / 2 + 1] zp_bss_large;
static uint64_t cand[ZERO_CHUNK_PAGES / 64];
/* The resident pages of a chunk. */
static uintptr_t page[ZERO_CHUNK_PAGES] zp_bss_large;
static unsigned char copy[READ_PAGES * ZP_PAGE_SIZE]
	__attribute__((aligned(64))) zp_bss_large;

/* Swapped-out pages are left alone: reading them would swap them in.
 * Huge pages too: moving one 4 KiB page out of a THP would split it, and
 * the program chose huge pages for its TLB, not for its RSS. */
static const struct os_scan_match resident_match = {
	.all = OS_PAGE_IS_PRESENT,
	.none = OS_PAGE_IS_PFNZERO | OS_PAGE_IS_HUGE,
	.report = OS_PAGE_IS_PRESENT,
};

static uint64_t nr_reclaimed, nr_scans, scanned_bytes, scanner_ns;
static uint64_t nr_refused;		/* MOVE said EBUSY: pinned, shared */

/*
 * Program threads (unmap, protection, mlock, descriptors) go before the
 * scanner. zp_lock lets the unlocker take the lock straight back, and the
 * scanner unlocks and relocks between chunks, so a waiter woken at the
 * unlock mostly finds the lock taken again: one of a test's threads
 * waited more than 45 s in mprotect behind a scanner with nothing else to
 * do. Waiters say they are there; the scanner makes way for them.
 */
static unsigned nr_waiting;

void
reclaim_lock(void)
{
	if (zp_trylock(&rlock))
		return;
	__atomic_add_fetch(&nr_waiting, 1, __ATOMIC_RELAXED);
	zp_lock(&rlock);
	__atomic_sub_fetch(&nr_waiting, 1, __ATOMIC_RELAXED);
}

/* Before the scanner takes the next chunk: let the waiters have the lock,
 * for as long as it takes a woken thread to be scheduled on a busy
 * machine (a few milliseconds), not forever (they may keep coming).
 * Returns the time it waited. */
static uint64_t
make_way(void)
{
	uint64_t t0, now;

	if (!__atomic_load_n(&nr_waiting, __ATOMIC_RELAXED))
		return 0;
	t0 = now = os_now_ns();
	while (__atomic_load_n(&nr_waiting, __ATOMIC_RELAXED) &&
	       now - t0 < MAKE_WAY_NS) {
		os_sleep_ns(MAKE_WAY_SLEEP_NS);
		now = os_now_ns();
	}
	return now - t0;
}

void
reclaim_unlock(void)
{
	zp_unlock(&rlock);
}

static void
set_cand(uintptr_t base, uintptr_t page)
{
	size_t i = (page - base) / ZP_PAGE_SIZE;

	cand[i / 64] |= 1ULL << (i % 64);
}

/* The pipe os_peek reads through; ours only while its identity says so
 * (after a fork, or a program that closed it and reused the numbers, a
 * new one is opened: our copies must never reach the program's file). */
static struct zero_fd peek_rd = ZERO_FD_INIT, peek_wr = ZERO_FD_INIT;
static int peek_fds[2] = { -1, -1 };	/* this chunk's, or -1 */

static void
peek_prepare(void)
{
	int fds[2];

	peek_fds[0] = zfd_get(&peek_rd);
	peek_fds[1] = zfd_get(&peek_wr);
	if (peek_fds[0] >= 0 && peek_fds[1] >= 0)
		return;
	if (peek_fds[0] >= 0)
		zfd_put(&peek_rd);
	if (peek_fds[1] >= 0)
		zfd_put(&peek_wr);
	peek_fds[0] = peek_fds[1] = -1;
	/* Whichever end is still ours goes with the other. */
	zfd_close(&peek_rd);
	zfd_close(&peek_wr);
	if (os_peek_open(fds) != 0)
		return;
	zfd_set(&peek_rd, fds[0]);
	zfd_set(&peek_wr, fds[1]);
	peek_fds[0] = zfd_get(&peek_rd);
	peek_fds[1] = zfd_get(&peek_wr);
	if (peek_fds[0] < 0 || peek_fds[1] < 0)
		peek_fds[0] = peek_fds[1] = -1;
}

static void
peek_finish(void)
{
	if (peek_fds[0] >= 0) {
		zfd_put(&peek_rd);
		zfd_put(&peek_wr);
	}
	peek_fds[0] = peek_fds[1] = -1;
}

bool
reclaim_fds_in(int lo, int hi)
{
	return zfd_in(&peek_rd, lo, hi) || zfd_in(&peek_wr, lo, hi);
}

/* Caller holds reclaim_lock: no chunk is using them. */
void
reclaim_fds_closing(int lo, int hi)
{
	zfd_release(&peek_rd, lo, hi);
	zfd_release(&peek_wr, lo, hi);
}

void
reclaim_fds_close(void)
{
	zfd_close(&peek_rd);
	zfd_close(&peek_wr);
}

/* Fault-safe copies of our own pages: through the pipe, or where there is
 * none (descriptor limit) with the dearer process_vm_readv. */
static size_t
peek(void *dst, const uintptr_t *src, size_t nr, size_t each)
{
	size_t done = 0;

	if (peek_fds[0] >= 0)
		os_peek(peek_fds, dst, src, nr, each, &done);
	else
		os_read_self_gather(dst, src, nr, each, &done);
	return done;
}

static bool
line_is_zero(const unsigned char *p)
{
	const uint64_t *w = (const uint64_t *)p;

	return !(w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]);
}

/* Stage 1: the first cache line of each page, 256 pages a system call;
 * most live pages show data there and cost no more. Keeps the pages that
 * may be zero at the front of page[]. */
static size_t
sample_pages(size_t nr)
{
	size_t kept = 0, done, k;

	for (size_t b = 0; b < nr; b += k) {
		k = ZP_MIN(nr - b, SAMPLE_BATCH);
		done = peek(copy, &page[b], k, SAMPLE_BYTES);
		for (size_t i = 0; i < done / SAMPLE_BYTES; i++)
			if (line_is_zero(copy + i * SAMPLE_BYTES))
				page[kept++] = page[b + i];
	}
	return kept;
}

/* Stage 2: whole pages of those that passed stage 1. */
static size_t
check_pages(uintptr_t base, size_t nr)
{
	size_t n = 0, done, k;

	for (size_t b = 0; b < nr; b += k) {
		k = ZP_MIN(nr - b, READ_PAGES);
		done = peek(copy, &page[b], k, ZP_PAGE_SIZE);
		for (size_t i = 0; i < done / ZP_PAGE_SIZE; i++) {
			if (zero_page_is_zero(copy + i * ZP_PAGE_SIZE)) {
				set_cand(base, page[b + i]);
				n++;
			}
		}
	}
	return n;
}

/* Candidates of [s, e): resident, not the zero page nor part of a huge
 * page, reading as zero. Reads go through os_peek, so a page the program
 * has made unreadable (mprotect) is skipped, never a crash. */
static size_t
find_candidates(uintptr_t s, uintptr_t e, size_t *examined)
{
	uintptr_t walk;
	size_t nr, nr_pages = 0, n;
	int fd = zero_pagemap_get(), err;

	for (size_t i = 0; i < ZP_ARRAY_SIZE(cand); i++)
		cand[i] = 0;
	if (fd < 0)
		return 0;
	err = os_pagemap_scan(fd, s, e, &resident_match, vec,
			      ZP_ARRAY_SIZE(vec), &nr, &walk);
	zero_pagemap_put();
	if (err) {
		if (err == EPERM || err == ENOSYS)
			uffd_stop("sandboxed (pagemap ioctl refused)");
		return 0;
	}
	__atomic_add_fetch(&scanned_bytes, e - s, __ATOMIC_RELAXED);
	for (size_t i = 0; i < nr; i++)
		for (uintptr_t p = vec[i].start; p < vec[i].end;
		     p += ZP_PAGE_SIZE)
			page[nr_pages++] = p;
	*examined += nr_pages * ZP_PAGE_SIZE;
	if (!nr_pages)
		return 0;
	peek_prepare();
	n = check_pages(s, sample_pages(nr_pages));
	peek_finish();
	return n;
}

static bool
is_cand(size_t i)
{
	return cand[i / 64] & (1ULL << (i % 64));
}

/* Test-only: what the facts file shows losing writes - check, then zap
 * with nothing stopping a store in between. */
static size_t
reclaim_unprotected(uintptr_t s, size_t nr_pages)
{
	size_t n = 0;

	for (size_t i = 0; i < nr_pages; i++) {
		if (is_cand(i) &&
		    os_purge((void *)(s + i * ZP_PAGE_SIZE), ZP_PAGE_SIZE) == 0)
			n++;
	}
	return n;
}

/* The MOVE protocol over each run of candidates of the chunk. */
static size_t
reclaim_protected(uintptr_t s, uintptr_t e)
{
	size_t nr_pages = (e - s) / ZP_PAGE_SIZE, n = 0, i = 0, j, moved;
	int err = 0;

	if (uffd_window_open(s, e) != 0)
		return 0;
	while (i < nr_pages) {
		if (!is_cand(i)) {
			i++;
			continue;
		}
		for (j = i; j < nr_pages && is_cand(j); j++)
			;
		while (i < j && err != EINVAL) {
			moved = uffd_window_take(s + i * ZP_PAGE_SIZE, j - i,
						 &err);
			i += moved;
			if (err && i < j) {
				/* Pinned, shared or gone: leave it be. */
				__atomic_add_fetch(&nr_refused, 1,
						   __ATOMIC_RELAXED);
				i++;
			}
		}
		n += uffd_window_settle();
		/* Locked (mlock) or protected apart from scratch: the kernel
		 * would refuse the rest of the page's mapping too, which
		 * is the whole region as a rule; passes try it again after
		 * a while. */
		if (err == EINVAL)
			break;
	}
	uffd_window_close();
	if (err == EINVAL)
		zero_table_refuse(s);
	return n;
}

static int
reclaim_chunk(uintptr_t s, uintptr_t e, size_t *examined, size_t *reclaimed)
{
	size_t n;

	if (!find_candidates(s, e, examined))
		return CHUNK_DONE;
	if (zero_cfg.test_break_protection) {
		n = reclaim_unprotected(s, (e - s) / ZP_PAGE_SIZE);
	} else {
		if (uffd_ensure() != 0)
			return CHUNK_NO_UFFD;
		n = reclaim_protected(s, e);
	}
	*reclaimed += n;
	__atomic_add_fetch(&nr_reclaimed, n, __ATOMIC_RELAXED);
	if (n)
		zero_table_note_reclaimed(s);
	return CHUNK_DONE;
}

/* Live reclaim is configured (whether this level allows it is found
 * out by the first pass). */
static bool
reclaim_is_configured(void)
{
	return (zero_cfg.uffd_mode != ZERO_UFFD_OFF &&
		!uffd_is_stopped()) || zero_cfg.test_break_protection;
}

/*
 * Visit regions chunk by chunk from the cursor (wrapping once) until
 * budget resident bytes were examined. live == NULL means a full sweep
 * from the bottom in a program thread (zero_reclaim_now), which blocks
 * signals chunk by chunk; otherwise *live says afterwards whether live
 * reclaim is possible at all at this level. *examined gets the resident
 * bytes seen: 0 means nothing left to watch.
 */
size_t
reclaim_pass(size_t budget, bool *live, size_t *examined)
{
	bool full = live == NULL, wrapped = full, found, no_uffd = false;
	uintptr_t at = full ? 0 : cursor, first = at, s = 0, e = 0;
	size_t reclaimed = 0;
	uint64_t t0 = os_now_ns(), waited = 0;
	struct zero_guard g;

	*examined = 0;
	if (!full)
		zero_reclaim_age_decay();
	if (!reclaim_is_configured())
		no_uffd = true;
	while (!no_uffd) {
		/* Only the background scanner makes way: a full pass runs
		 * in a program thread (trim, pressure) that should not sleep
		 * for another's sake. */
		if (!full)
			waited += make_way();
		if (full)
			zero_guard_enter(&g);
		zp_lock(&rlock);
		/* A full pass (trim, pressure, tests) takes young regions
		 * too. */
		found = zero_table_next_chunk(at, full, &s, &e);
		if (found && wrapped && !full && s >= first)
			found = false;
		if (found)
			no_uffd = reclaim_chunk(s, e, examined, &reclaimed) ==
				  CHUNK_NO_UFFD;
		zp_unlock(&rlock);
		if (full)
			zero_guard_leave(&g);
		if (!found) {
			if (wrapped)
				break;
			wrapped = true;
			at = 0;
			continue;
		}
		at = e;
		if (*examined >= budget)
			break;
	}
	if (no_uffd && live)
		*live = false;
	if (!full)
		cursor = at;
	__atomic_add_fetch(&nr_scans, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&scanner_ns, os_now_ns() - t0 - waited,
			   __ATOMIC_RELAXED);
	return reclaimed;
}

void
reclaim_stats(uint64_t *reclaimed, uint64_t *scans, uint64_t *scanned,
	      uint64_t *ns)
{
	*reclaimed = __atomic_load_n(&nr_reclaimed, __ATOMIC_RELAXED);
	*scans = __atomic_load_n(&nr_scans, __ATOMIC_RELAXED);
	*scanned = __atomic_load_n(&scanned_bytes, __ATOMIC_RELAXED);
	*ns = __atomic_load_n(&scanner_ns, __ATOMIC_RELAXED);
}

/* The parent's scanner may be mid-chunk with pages in scratch: a fork
 * then would copy the chunk without them. Holding reclaim_lock across
 * fork makes the chunk finish first. */
void
reclaim_prefork(void)
{
	zp_lock_prefork(&rlock);
}

void
reclaim_postfork_parent(void)
{
	zp_lock_postfork_parent(&rlock);
}

void
reclaim_postfork_child(void)
{
	zp_lock_postfork_child(&rlock);
	nr_waiting = 0;			/* the waiters stayed in the parent */
	peek_rd.users = peek_wr.users = 0;
}
