/*
 * reclaim.c - the zero-page scanner: resident pages of live regions that
 * are all zero again go back to the shared zero page.
 * Owns:  reclaim_lock (one chunk at a time), the scan cursor, the scanner
 *        thread, the candidate buffers it reuses.
 * Locks: reclaim_lock is the outermost engine lock: held for one 2 MiB
 *        chunk (PAGEMAP_SCAN, zero check, the MOVE protocol), and by
 *        zero.c around any unmap or move of region memory.
 * Path:  scanner thread -> reclaim_pass -> reclaim_chunk -> PAGEMAP_SCAN
 *        -> process_vm_readv zero check -> uffd_window_open/take/settle;
 *        each interval first zero_park_release (parked regions expire)
 *
 * Pages are first checked through os_peek (a pipe: the kernel copies them
 * and reports an unreadable page instead of faulting), so the scanner
 * never crashes on memory a program has made unreadable; only
 * pages that looked zero are moved out, and uffd.c checks them again in
 * scratch, where no one else can write them, before the zero page goes
 * back.
 */
#include <pthread.h>
#include <signal.h>

#include "base/log.h"
#include "os/os.h"
#include "os/os_uffd.h"
#include "zero/zero_int.h"

#define READ_PAGES	16		/* zero check in 64 KiB copies */
#define SAMPLE_BYTES	64		/* stage 1 reads one cache line */
#define SAMPLE_BATCH	256		/* pages per stage-1 gather */

/* FAILED: no thread could be created; not retried. */
enum { SCANNER_NONE, SCANNER_RUNNING, SCANNER_STOPPED, SCANNER_FAILED };
enum { CHUNK_DONE, CHUNK_NEED_UFFD };

static struct zp_lock rlock = ZP_LOCK_INIT;
static int scanner;			/* SCANNER_*, atomic */
static uintptr_t cursor;		/* where the next pass starts */

/* Guarded by rlock. */
static struct os_page_region vec[ZERO_CHUNK_PAGES / 2 + 1];
static uint64_t cand[ZERO_CHUNK_PAGES / 64];
static uintptr_t page[ZERO_CHUNK_PAGES];	/* resident pages of a chunk */
static unsigned char copy[READ_PAGES * ZP_PAGE_SIZE]
	__attribute__((aligned(64)));

/* Swapped-out pages are left alone: reading them would swap them in. */
static const struct os_scan_match resident_match = {
	.all = OS_PAGE_IS_PRESENT,
	.none = OS_PAGE_IS_PFNZERO,
	.report = OS_PAGE_IS_PRESENT,
};

static uint64_t nr_reclaimed, nr_scans, scanned_bytes, scanner_ns;
static uint64_t nr_refused;		/* MOVE said EBUSY: pinned, shared */

void
reclaim_lock(void)
{
	zp_lock(&rlock);
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

/* The pipe os_peek reads through; tagged with its owner because after a
 * fork (with or without our hooks) the child shares the parent's. */
static int peek_fds[2] = { -1, -1 };
static int peek_pid;
static uint64_t peek_ident;

/* Both ends still ours? A program that closes descriptors it did not open
 * and reuses the numbers must never receive our copies. */
static bool
peek_is_ours(void)
{
	uint64_t r, w;

	return os_fd_ident(peek_fds[0], &r) == 0 &&
	       os_fd_ident(peek_fds[1], &w) == 0 && r == peek_ident &&
	       w == peek_ident;
}

static void
peek_prepare(void)
{
	int pid = os_getpid();

	if (zp_likely(peek_pid == pid) &&
	    (peek_fds[0] < 0 || peek_is_ours()))
		return;
	/* Inherited across fork (shared with the parent), or taken from
	 * us: not ours to close if taken, so just forget it then. */
	if (peek_fds[0] >= 0 && peek_pid != pid) {
		os_close(peek_fds[0]);
		os_close(peek_fds[1]);
	}
	if (os_peek_open(peek_fds) != 0 ||
	    os_fd_ident(peek_fds[0], &peek_ident) != 0)
		peek_fds[0] = peek_fds[1] = -1;
	peek_pid = pid;
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

/* Candidates of [s, e): resident, not the zero page, reading as zero.
 * Reads go through os_peek, so a page the program has made
 * unreadable (mprotect) is skipped, never a crash. */
static size_t
find_candidates(uintptr_t s, uintptr_t e, size_t *examined)
{
	uintptr_t walk;
	size_t nr, nr_pages = 0;
	int fd = zero_pagemap_fd();

	for (size_t i = 0; i < ZP_ARRAY_SIZE(cand); i++)
		cand[i] = 0;
	if (fd < 0 || os_pagemap_scan(fd, s, e, &resident_match, vec,
				      ZP_ARRAY_SIZE(vec), &nr, &walk) != 0)
		return 0;
	__atomic_add_fetch(&scanned_bytes, e - s, __ATOMIC_RELAXED);
	for (size_t i = 0; i < nr; i++)
		for (uintptr_t p = vec[i].start; p < vec[i].end;
		     p += ZP_PAGE_SIZE)
			page[nr_pages++] = p;
	*examined += nr_pages * ZP_PAGE_SIZE;
	peek_prepare();
	return check_pages(s, sample_pages(nr_pages));
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
	int err;

	if (uffd_window_open(s, e) != 0)
		return 0;
	while (i < nr_pages) {
		if (!is_cand(i)) {
			i++;
			continue;
		}
		for (j = i; j < nr_pages && is_cand(j); j++)
			;
		while (i < j) {
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
	}
	uffd_window_close();
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
		if (!uffd_is_ready())
			return CHUNK_NEED_UFFD;
		n = reclaim_protected(s, e);
	}
	*reclaimed += n;
	__atomic_add_fetch(&nr_reclaimed, n, __ATOMIC_RELAXED);
	return CHUNK_DONE;
}

/*
 * Visit regions chunk by chunk from the cursor (wrapping once) until
 * budget resident bytes were examined. live == NULL means a full sweep
 * from the bottom (zero_reclaim_now); otherwise *live says afterwards
 * whether live reclaim is possible at all at this level.
 */
size_t
reclaim_pass(size_t budget, bool *live)
{
	bool full = live == NULL, wrapped = full, found;
	uintptr_t at = full ? 0 : cursor, first = at, s = 0, e = 0;
	size_t examined = 0, reclaimed = 0;
	uint64_t t0 = os_now_ns();

	for (;;) {
		zp_lock(&rlock);
		found = zero_table_next_chunk(at, &s, &e);
		if (found && wrapped && !full && s >= first)
			found = false;
		if (!found) {
			zp_unlock(&rlock);
			if (wrapped)
				break;
			wrapped = true;
			at = 0;
			continue;
		}
		if (reclaim_chunk(s, e, &examined, &reclaimed) ==
		    CHUNK_NEED_UFFD) {
			zp_unlock(&rlock);
			/* Outside every engine lock: this may start the
			 * handler thread, and pthread_create may malloc. */
			if (uffd_ensure() != 0) {
				if (live)
					*live = false;
				break;
			}
			continue;
		}
		zp_unlock(&rlock);
		at = e;
		if (examined >= budget)
			break;
	}
	if (!full)
		cursor = at;
	__atomic_add_fetch(&nr_scans, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&scanner_ns, os_now_ns() - t0, __ATOMIC_RELAXED);
	return reclaimed;
}

/* Live reclaim is configured (whether this level allows it is found
 * out by the first pass). */
static bool
reclaim_is_configured(void)
{
	return zero_cfg.uffd_mode != ZERO_UFFD_OFF ||
	       zero_cfg.test_break_protection;
}

/*
 * One scanner pass (*live as for reclaim_pass); returns how long to sleep before the next. A pass
 * that spent its budget and found plenty to give back comes again after
 * a quarter interval, so a big zeroed heap is returned in about one
 * interval instead of one interval per budget, but never sooner than
 * twice the pass took: the scanner keeps to a third of a core at most.
 */
static uint64_t
reclaim_pass_paced(bool *live)
{
	uint64_t t0 = os_now_ns(), took;
	size_t pages = reclaim_pass(zero_cfg.reclaim_budget_bytes, live);

	took = os_now_ns() - t0;
	if (!*live || pages * ZP_PAGE_SIZE < zero_cfg.reclaim_budget_bytes / 4)
		return zero_cfg.reclaim_interval_ns;
	return ZP_MIN(zero_cfg.reclaim_interval_ns,
		      ZP_MAX(zero_cfg.reclaim_interval_ns / 4, 2 * took));
}

/*
 * Each interval: parked regions that waited out their delay go, then a
 * reclaim pass. Without live reclaim the thread stays only while regions
 * are parked, so that a program that frees a large block and goes idle
 * still gets its memory back; a later park restarts it.
 */
static void *
scanner_main(void *arg)
{
	bool live = reclaim_is_configured();
	int expect;

	uint64_t sleep_ns = zero_cfg.reclaim_interval_ns;

	(void)arg;
	for (;;) {
		os_sleep_ns(sleep_ns);
		zero_park_release(/* all */ false);
		if (live) {
			sleep_ns = reclaim_pass_paced(&live);
			continue;
		}
		if (zero_park_bytes() != 0)
			continue;
		__atomic_store_n(&scanner, SCANNER_STOPPED, __ATOMIC_RELEASE);
		/* A park between the check and the store saw RUNNING and
		 * started nobody: take it on. */
		expect = SCANNER_STOPPED;
		if (zero_park_bytes() == 0 ||
		    !__atomic_compare_exchange_n(&scanner, &expect,
						 SCANNER_RUNNING, false,
						 __ATOMIC_ACQ_REL,
						 __ATOMIC_RELAXED))
			return NULL;
	}
}

static int
start_scanner(void)
{
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t t;
	int err;

	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, (size_t)64 << 10);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&t, &attr, scanner_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return err;
}

/* Move the scanner from state `from` to running and start its thread. */
static void
scanner_start_from(int from)
{
	int expect = from;

	if (!__atomic_compare_exchange_n(&scanner, &expect, SCANNER_RUNNING,
					 false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return;
	if (start_scanner() != 0) {
		log_msg("zero-page reclaim: no scanner thread");
		__atomic_store_n(&scanner, SCANNER_FAILED, __ATOMIC_RELEASE);
	}
}

void
reclaim_kick(void)
{
	if (!zero_cfg.reclaim || !reclaim_is_configured())
		return;
	if (zp_likely(__atomic_load_n(&scanner, __ATOMIC_RELAXED) !=
		      SCANNER_NONE))
		return;
	scanner_start_from(SCANNER_NONE);
}

void
reclaim_kick_park(void)
{
	int state = __atomic_load_n(&scanner, __ATOMIC_RELAXED);

	if (!zero_cfg.reclaim ||
	    zp_likely(state == SCANNER_RUNNING || state == SCANNER_FAILED))
		return;
	scanner_start_from(state);
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
	scanner = SCANNER_NONE;		/* threads do not survive fork */
}
