/*
 * uffd.c - the userfaultfd capability ladder and the reclaim window.
 * Owns:  the process's one userfaultfd, the 2 MiB scratch area, the window
 *        (the chunk under reclaim and which of its pages sit in scratch).
 * Locks: probe_lock guards the ladder, the descriptor and the one-time
 *        setup; the window belongs to the holder of reclaim_lock (only
 *        the reclaimer touches it; faults are never handled here).
 * Path:  reclaim_chunk -> uffd_ensure -> probe_locked -> os_uffd_open/api
 *        reclaim_chunk -> uffd_window_open/take/settle/close -> os_uffd_*
 *
 * The protocol never loses a write because a page of the window is always
 * in exactly one place - mapped at home, or in scratch with its bit set in
 * win.out - and only the reclaimer moves it. A program access to a page in
 * scratch faults (the chunk is registered for MISSING faults) and waits:
 * nobody reads the userfaultfd for it. settle wakes it, by mapping the
 * zero page back (the page was zero in scratch, where nobody could write
 * it) or by moving the page itself home when a write slipped in before it
 * was moved out; a fault on a page that was never there waits for the
 * unregister at close, which wakes it to fault natively. So the window
 * needs no thread of its own, and a faulting thread waits for one chunk's
 * work at most. The reclaimer never touches home pages of its open window.
 *
 * When the move home is refused, the page still goes home: with
 * UFFDIO_COPY when the program changed the range's protection or mlock
 * state (EINVAL: MOVE wants identical vma flags), with mremap when our
 * ioctls are refused (a sandbox) or our descriptor was taken.
 */
#include <errno.h>
#include <string.h>

#include "base/log.h"
#include "os/os.h"
#include "os/os_uffd.h"
#include "zero/zero_int.h"
#include "zpmalloc.h"

static struct zp_lock probe_lock = ZP_LOCK_INIT;
static int level = -1;			/* zp_zero_level; -1 unprobed */
static char reason[48] = "not probed yet";
static struct zero_fd uffd = ZERO_FD_INIT;
static bool registered;			/* scratch registered with uffd */
static bool stopped;			/* uffd_stop: never again */
static uintptr_t scratch;		/* 2 MiB aligned */

/* Owned by the holder of reclaim_lock. */
static struct {
	int fd;				/* uffd for this window */
	uintptr_t start, end;		/* the chunk; 0, 0 when closed */
	bool refused;			/* an ioctl got EPERM/ENOSYS */
	uint64_t out[ZERO_CHUNK_PAGES / 64];	/* page i is in scratch */
	uint64_t asked[ZERO_CHUNK_PAGES / 64];	/* a take asked for page i */
} win = { .fd = -1 };

static uint64_t nr_faults, registered_bytes;
static uint64_t nr_rescued;		/* pages moved home: a write or fault
					 * came while they were out */
static uint64_t nr_copied;		/* put home by COPY or mremap */
static uint64_t nr_adopted;		/* found in scratch, not reported */

static bool
is_sandbox_error(int err)
{
	return err == EPERM || err == ENOSYS;
}

/* --- capability ladder -------------------------------------------------- */

static const char *
open_failure(int err)
{
	const char *via;
	int fd;

	if (err == ENOSYS)
		return "no userfaultfd (kernel or seccomp)";
	if (err == EMFILE)
		return "descriptor limit too low to keep one";
	if (err != EPERM && err != EACCES)
		return "userfaultfd refused";
	/* Tell "user-mode-only only" apart from "nothing at all": that mode
	 * is never used for program memory (kernel accesses would EFAULT). */
	if (os_uffd_open(true, /* keep */ false, &fd, &via) == 0) {
		os_close(fd);
		return "only user-mode-only uffd (EPERM)";
	}
	return "userfaultfd: EPERM";
}

/* Open and check a full uffd with MOVE. */
static int
open_uffd(const char **via)
{
	uint64_t have = 0;
	int fd, err;

	err = os_uffd_open(false, /* keep */ true, &fd, via);
	if (err) {
		fmt_buf(reason, sizeof(reason), "%s", open_failure(err));
		return err;
	}
	err = os_uffd_api(fd, OS_UFFD_FEATURE_MOVE, &have);
	if (err || !(have & OS_UFFD_FEATURE_MOVE)) {
		os_close(fd);
		fmt_buf(reason, sizeof(reason), "no UFFD_FEATURE_MOVE");
		return err ? err : ENOTSUP;
	}
	zfd_set(&uffd, fd);
	return 0;
}

/* One climb of the ladder. The caller publishes the level only
 * afterwards, so no one sees a half answer. */
static int
probe_locked(void)
{
	uintptr_t walk, here;
	size_t nr;
	const char *via;
	struct os_page_region r;
	const struct os_scan_match m = { .all = OS_PAGE_IS_PRESENT,
					 .report = OS_PAGE_IS_PRESENT };
	int pm, err;

	if (zero_cfg.uffd_mode == ZERO_UFFD_OFF) {
		fmt_buf(reason, sizeof(reason), "forced off (ZPMALLOC_UFFD=0)");
		return ZP_ZERO_LEVEL_OFF;
	}
	if (!os_fd_can_keep()) {
		fmt_buf(reason, sizeof(reason), "%s", open_failure(EMFILE));
		return ZP_ZERO_LEVEL_KERNEL;
	}
	/* Under a seccomp filter we did not see installed, a userfaultfd
	 * or ioctl call might be the one that kills the process. */
	if (stopped || os_seccomp_mode_self() > 0) {
		stopped = true;
		fmt_buf(reason, sizeof(reason), "sandboxed (seccomp)");
		return ZP_ZERO_LEVEL_KERNEL;
	}
	if (open_uffd(&via) != 0)
		return ZP_ZERO_LEVEL_KERNEL;
	pm = zero_pagemap_get();
	here = zp_align_down((uintptr_t)&r, ZP_PAGE_SIZE);
	err = pm < 0 ? ENOENT : os_pagemap_scan(pm, here, here + ZP_PAGE_SIZE,
						&m, &r, 1, &nr, &walk);
	if (pm >= 0)
		zero_pagemap_put();
	if (err) {
		zfd_close(&uffd);
		fmt_buf(reason, sizeof(reason), "no PAGEMAP_SCAN");
		return ZP_ZERO_LEVEL_KERNEL;
	}
	fmt_buf(reason, sizeof(reason), "full uffd with MOVE (%s)", via);
	return ZP_ZERO_LEVEL_UFFD;
}

int
uffd_level(void)
{
	int l = __atomic_load_n(&level, __ATOMIC_ACQUIRE);
	struct zero_guard g;

	if (zp_likely(l >= 0))
		return l;
	zero_guard_enter(&g);
	zp_lock(&probe_lock);
	l = level;
	if (l < 0) {
		l = probe_locked();
		__atomic_store_n(&level, l, __ATOMIC_RELEASE);
	}
	zp_unlock(&probe_lock);
	zero_guard_leave(&g);
	return l;
}

int
uffd_level_peek(void)
{
	return __atomic_load_n(&level, __ATOMIC_ACQUIRE);
}

const char *
uffd_reason(void)
{
	return reason;
}

bool
uffd_is_stopped(void)
{
	return __atomic_load_n(&stopped, __ATOMIC_ACQUIRE);
}

/* Drop the descriptor (caller holds probe_lock): closing it drops every
 * registration it holds and wakes every waiter; the next chunk opens a
 * new one (uffd_ensure). */
static void
drop_uffd_locked(void)
{
	zfd_close(&uffd);
	registered = false;
}

/*
 * Empties scratch. A program's mlockall locks it (MCL_CURRENT, or
 * MCL_FUTURE before it was made), and MADV_DONTNEED refuses locked pages;
 * unlocked, it empties, and the kernel then refuses a move into it from
 * a locked home (it moves only between areas both locked or both not):
 * locked memory, which its program wants resident, is never reclaimed.
 */
static void
scratch_purge(void)
{
	if (os_purge((void *)scratch, ZERO_CHUNK) == EINVAL &&
	    os_unlock((void *)scratch, ZERO_CHUNK) == 0)
		(void)os_purge((void *)scratch, ZERO_CHUNK);
}

/*
 * The uffd and the scratch area, registered. Caller holds reclaim_lock.
 * A descriptor the program took (closed, or replaced through dup2) is
 * given up and a new one opened: its registrations went with it.
 */
int
uffd_ensure(void)
{
	const char *via;
	void *p;
	int fd, err = 0;

	if (uffd_level() != ZP_ZERO_LEVEL_UFFD || uffd_is_stopped())
		return ENOTSUP;
	fd = zfd_get(&uffd);
	if (fd >= 0 && registered) {
		zfd_put(&uffd);
		return 0;
	}
	zp_lock(&probe_lock);
	if (fd < 0) {
		registered = false;
		err = open_uffd(&via);
		if (err)
			goto out;
		fd = zfd_get(&uffd);
		if (fd < 0) {
			err = EBADF;
			goto out;
		}
	}
	if (!scratch) {
		err = os_reserve(ZERO_CHUNK, ZERO_CHUNK, 0, &p);
		if (!err && (err = os_commit(p, ZERO_CHUNK)) != 0)
			os_unmap(p, ZERO_CHUNK);
		if (err)
			goto put;
		scratch = (uintptr_t)p;
		scratch_purge();	/* made under mlockall(MCL_FUTURE) */
	}
	err = os_uffd_register_missing(fd, (void *)scratch, ZERO_CHUNK);
	registered = err == 0;
put:
	zfd_put(&uffd);
out:
	zp_unlock(&probe_lock);
	if (is_sandbox_error(err))
		uffd_stop("sandboxed (userfaultfd refused)");
	return err;
}

void
uffd_stop(const char *why)
{
	/* Every caller has seen a sandbox: a filter that refused one call
	 * may kill the process for another. */
	os_purge_ranges_forbid();
	zp_lock(&probe_lock);
	if (!stopped) {
		fmt_buf(reason, sizeof(reason), "%s", why);
		__atomic_store_n(&stopped, true, __ATOMIC_RELEASE);
		__atomic_store_n(&level, ZP_ZERO_LEVEL_KERNEL,
				 __ATOMIC_RELEASE);
	}
	drop_uffd_locked();
	zp_unlock(&probe_lock);
	fds_close_all();
	reclaim_fds_close();
	helper_forbid();
}

bool
uffd_fds_in(int lo, int hi)
{
	return zfd_in(&uffd, lo, hi);
}

void
uffd_fds_closing(int lo, int hi)
{
	if (zfd_release(&uffd, lo, hi))
		registered = false;
}

/* --- the window (caller holds reclaim_lock) ----------------------------- */

static bool
win_is_out(size_t idx)
{
	return win.out[idx / 64] & (1ULL << (idx % 64));
}

static void
win_set(size_t idx)
{
	win.out[idx / 64] |= 1ULL << (idx % 64);
}

static void
win_clear(size_t idx)
{
	win.out[idx / 64] &= ~(1ULL << (idx % 64));
}

static void
note_error(int err)
{
	if (is_sandbox_error(err) || err == EBADF)
		win.refused = true;
}

/*
 * Scratch is registered only from uffd_ensure to the close of the window
 * that follows: a registered range that holds no page and whose faults
 * nobody reads hangs whatever populates it, and mlockall(MCL_CURRENT)
 * populates every mapping of the process (seen: a program's mlockall
 * after the engine's first reclaim pass never returned). A program's
 * mlockall waits for reclaim_lock, so it never meets an open window.
 */
static void
scratch_unregister(int fd)
{
	zp_lock(&probe_lock);
	if (registered)
		(void)os_uffd_unregister(fd, (void *)scratch, ZERO_CHUNK);
	registered = false;
	zp_unlock(&probe_lock);
}

int
uffd_window_open(uintptr_t start, uintptr_t end)
{
	int fd = zfd_get(&uffd), err;

	if (fd < 0)
		return EBADF;
	err = os_uffd_register_missing(fd, (void *)start, end - start);
	if (err) {
		scratch_unregister(fd);
		zfd_put(&uffd);
		if (err == EBUSY || err == EINVAL) {
			/* Registered with someone else's userfaultfd, or no
			 * longer plain anonymous memory: not a region. */
			zero_table_forget(start, end);
		} else if (is_sandbox_error(err)) {
			uffd_stop("sandboxed (userfaultfd ioctl refused)");
		}
		return err;
	}
	win.fd = fd;
	win.start = start;
	win.end = end;
	win.refused = false;
	memset(win.out, 0, sizeof(win.out));
	memset(win.asked, 0, sizeof(win.asked));
	__atomic_add_fetch(&registered_bytes, end - start, __ATOMIC_RELAXED);
	return 0;
}

/* mincore's answer for scratch (the window holder's): scratch is empty
 * when a window opens and after each settle, so a page resident there
 * is one that a move put there. */
static unsigned char scratch_vec[ZERO_CHUNK_PAGES];

static bool
scratch_resident(size_t first, size_t nr)
{
	return os_resident((void *)(scratch + first * ZP_PAGE_SIZE),
			   nr * ZP_PAGE_SIZE, scratch_vec + first) == 0;
}

static unsigned char home_vec[ZERO_CHUNK_PAGES];

static bool
is_adoptable(size_t i)
{
	return (win.asked[i / 64] & (1ULL << (i % 64))) &&
	       (scratch_vec[i] & 1) && !(home_vec[i] & 1) && !win_is_out(i);
}

/*
 * Pages [idx, idx + nr) that a take asked for, scratch holds, home lacks
 * and no report counted are out: scratch can hold page i of the window
 * only because a move put it there - unless something filled scratch (a
 * program's mlockall(MCL_CURRENT) populates it), and then home still
 * holds its page, or never had one (a page no take asked for). Up to the
 * first page that is not (prefix: what one move left), or all of them.
 * How many were taken.
 */
static size_t
adopt_resident(size_t idx, size_t nr, bool prefix)
{
	uintptr_t home = win.start + idx * ZP_PAGE_SIZE;
	size_t n = 0, i;

	memset(home_vec + idx, 0, nr);
	if (!scratch_resident(idx, nr))
		return 0;
	for (i = idx; i < idx + nr && !is_adoptable(i); i++)
		if (prefix)
			return 0;
	if (i == idx + nr || os_resident((void *)home, nr * ZP_PAGE_SIZE,
					 home_vec + idx) != 0)
		return 0;
	for (i = idx; i < idx + nr; i++) {
		if (!is_adoptable(i)) {
			if (prefix)
				break;
			continue;
		}
		win_set(i);
		n++;
	}
	__atomic_add_fetch(&nr_adopted, n, __ATOMIC_RELAXED);
	return n;
}

/* Pages [idx, idx + nr) were reported moved: they are out. */
static size_t
note_moved(size_t idx, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		if (!(zero_cfg.test_forget_moved && i + 1 == nr))
			win_set(idx + i);
	return nr;
}

size_t
uffd_window_take(uintptr_t p, size_t nr, int *err)
{
	size_t idx = (p - win.start) / ZP_PAGE_SIZE, moved = 0, done;
	unsigned retries = 0;

	*err = 0;
	for (size_t i = idx; i < idx + nr; i++)
		win.asked[i / 64] |= 1ULL << (i % 64);
	while (moved < nr && !win.refused) {
		size_t len = nr - moved;

		if (zero_cfg.test_move_pages)
			len = ZP_MIN(len, zero_cfg.test_move_pages);
		*err = os_uffd_move(win.fd, (void *)(scratch + (idx + moved) *
						      ZP_PAGE_SIZE),
				    (void *)(p + moved * ZP_PAGE_SIZE),
				    len * ZP_PAGE_SIZE, /* wake */ false, &done);
		if (zero_cfg.test_move_says_eexist && !*err) {
			*err = EEXIST;
			done = ZP_MIN(done, (size_t)zero_cfg.test_move_reports *
						    ZP_PAGE_SIZE);
		}
		moved += note_moved(idx + moved, done / ZP_PAGE_SIZE);
		/* A move that failed with EEXIST may have moved pages all
		 * the same: Linux 6.18's move loop keeps a transient EAGAIN
		 * into its next step, so it moves a batch without counting
		 * it, steps on the page it just moved and says EEXIST (seen
		 * under load: up to five pages, a few times in a few hundred
		 * torture runs). */
		if (*err == EEXIST) {
			done = adopt_resident(idx + moved, nr - moved,
					      /* prefix */ true);
			moved += done;
			if (done) {
				*err = 0;
				continue;
			}
		}
		note_error(*err);
		if (*err && (*err != EAGAIN || ++retries > 16))
			break;
		*err = 0;
	}
	if (win.refused && !*err)
		*err = EPERM;
	return moved;
}

/* The last way home, when our ioctls are refused: move the page itself
 * with mremap. The hole it leaves in scratch is filled again. */
static void
remap_home(uintptr_t home, uintptr_t src)
{
	void *np;

	if (os_remap((void *)src, ZP_PAGE_SIZE, ZP_PAGE_SIZE, (void *)home,
		     true, &np) == 0) {
		os_map_fixed((void *)src, ZP_PAGE_SIZE);
		__atomic_add_fetch(&nr_copied, 1, __ATOMIC_RELAXED);
	}
}

/*
 * Put page idx of the window back home. EAGAIN means the kernel raced
 * with something transient. ENOENT: home is no longer mapped (unmapped
 * behind the engine's back, bypassing zero_munmap): the page has nowhere
 * to go. EINVAL: home's protection or mlock state changed (MOVE wants the
 * same flags on both sides): copy it in. Anything else: the ioctls are
 * refused or the descriptor is gone: remap it home.
 */
static void
move_home(size_t idx)
{
	uintptr_t home = win.start + idx * ZP_PAGE_SIZE;
	uintptr_t src = scratch + idx * ZP_PAGE_SIZE;
	unsigned tries = 0;
	size_t moved;
	int err = EPERM;

	if (!win.refused) {
		bool wake = !zero_cfg.test_move_says_eexist;

		do
			err = os_uffd_move(win.fd, (void *)home, (void *)src,
					   ZP_PAGE_SIZE, wake, &moved);
		while ((err == EAGAIN || err == ENOMEM) && ++tries < 1000);
		if (!wake && !err)
			err = EEXIST;
		note_error(err);
	}
	if (err == EINVAL && !win.refused) {
		err = os_uffd_copy(win.fd, (void *)home, (void *)src,
				   ZP_PAGE_SIZE, /* wake */ true);
		note_error(err);
		if (err == 0)
			__atomic_add_fetch(&nr_copied, 1, __ATOMIC_RELAXED);
	}
	if (err && err != ENOENT && err != EEXIST)
		remap_home(home, src);
	/* The kernel wakes a page's waiters only for a move it reports;
	 * 6.18's can put the page home and say EEXIST (uffd_window_take),
	 * and a thread that faulted on it would sleep until the window
	 * closes. */
	if (err == EEXIST)
		os_uffd_wake(win.fd, (void *)home, ZP_PAGE_SIZE);
	win_clear(idx);
	__atomic_add_fetch(&nr_rescued, 1, __ATOMIC_RELAXED);
}

/* Map the zero page over pages [first, last) of the window, all in
 * scratch and zero. If the kernel says no, page by page: EEXIST there
 * means our own batch call already mapped it; ENOENT that home is gone;
 * anything else moves the page home, so nothing is ever left out. With
 * our ioctls refused a zero page simply stays out: once the descriptor
 * is closed, home reads as zero natively. */
static size_t
settle_zero(size_t first, size_t last)
{
	size_t n = 0;
	int err;

	if (win.refused) {
		for (size_t i = first; i < last; i++)
			win_clear(i);
		return last - first;
	}
	if (os_uffd_zeropage(win.fd, (void *)(win.start + first *
					       ZP_PAGE_SIZE),
			     (last - first) * ZP_PAGE_SIZE,
			     /* wake */ true) == 0) {
		for (size_t i = first; i < last; i++)
			win_clear(i);
		return last - first;
	}
	for (size_t i = first; i < last; i++) {
		err = os_uffd_zeropage(win.fd, (void *)(win.start + i *
							 ZP_PAGE_SIZE),
				       ZP_PAGE_SIZE, /* wake */ true);
		note_error(err);
		if (err == 0 || err == EEXIST || err == ENOENT) {
			win_clear(i);
			n++;
		} else {
			move_home(i);
		}
	}
	return n;
}

/* Faults waiting on the window (for the statistics): nobody reads them
 * otherwise, and reading one does not wake its thread. */
static void
count_faults(void)
{
	struct os_uffd_fault f;

	for (unsigned i = 0; i < 64; i++) {
		if (os_uffd_read(win.fd, &f) != 0)
			return;
		if (f.is_fault)
			__atomic_add_fetch(&nr_faults, 1, __ATOMIC_RELAXED);
	}
}

size_t
uffd_window_settle(void)
{
	size_t nr_pages = (win.end - win.start) / ZP_PAGE_SIZE;
	size_t reclaimed = 0, run = 0;
	bool in_run = false;

	/* Any report that fell short: the purge of scratch would lose the
	 * page's write. */
	(void)adopt_resident(0, nr_pages, /* prefix */ false);
	if (!win.refused)
		count_faults();
	for (size_t i = 0; i <= nr_pages; i++) {
		bool out = i < nr_pages && win_is_out(i);
		/* Only a page in scratch is read: it is present there, so the
		 * read cannot fault. */
		bool zero = out && zero_page_is_zero((void *)(scratch + i *
							      ZP_PAGE_SIZE));

		if (zero && !in_run) {
			run = i;
			in_run = true;
		} else if (!zero && in_run) {
			reclaimed += settle_zero(run, i);
			in_run = false;
		}
		if (out && !zero)
			move_home(i);	/* a write slipped in */
	}
	/* What is left in scratch are the zero frames: free them. */
	scratch_purge();
	return reclaimed;
}

void
uffd_window_close(void)
{
	uintptr_t s = win.start, e = win.end;
	bool refused = win.refused, stuck = false;

	/* Unregistering wakes any thread still waiting on the chunk; it
	 * retries and takes a native fault. If the kernel refuses (a file
	 * mapped into the chunk behind our back: EINVAL; a split that found
	 * no memory), the chunk would stay registered with nobody to serve
	 * its faults. */
	if (!refused) {
		stuck = os_uffd_unregister(win.fd, (void *)s, e - s) != 0;
		scratch_unregister(win.fd);
	}
	win.start = win.end = 0;
	win.fd = -1;
	zfd_put(&uffd);
	__atomic_sub_fetch(&registered_bytes, e - s, __ATOMIC_RELAXED);
	if (refused)
		uffd_stop("sandboxed (userfaultfd ioctl refused)");
	else if (stuck) {
		zp_lock(&probe_lock);
		drop_uffd_locked();
		zp_unlock(&probe_lock);
	}
}

uint64_t
uffd_nr_rescued(void)
{
	return __atomic_load_n(&nr_rescued, __ATOMIC_RELAXED);
}

uint64_t
uffd_nr_copied(void)
{
	return __atomic_load_n(&nr_copied, __ATOMIC_RELAXED);
}

uint64_t
uffd_nr_adopted(void)
{
	return __atomic_load_n(&nr_adopted, __ATOMIC_RELAXED);
}

void
uffd_stats(uint64_t *faults, uint64_t *registered_now)
{
	*faults = __atomic_load_n(&nr_faults, __ATOMIC_RELAXED);
	*registered_now = __atomic_load_n(&registered_bytes,
					  __ATOMIC_RELAXED) +
			  (registered ? ZERO_CHUNK : 0);
}

void
uffd_prefork(void)
{
	zp_lock_prefork(&probe_lock);
}

void
uffd_postfork_parent(void)
{
	zp_lock_postfork_parent(&probe_lock);
}

/* The inherited descriptor still acts on the parent's memory: close it
 * (if it is still ours) and start over, lazily. The scratch mapping was
 * copied (empty, unregistered) and is reused. A sandbox stays. */
void
uffd_postfork_child(void)
{
	zp_lock_postfork_child(&probe_lock);
	uffd.users = 0;
	drop_uffd_locked();
	if (!stopped) {
		level = -1;
		fmt_buf(reason, sizeof(reason), "not probed yet");
	}
	win.start = win.end = 0;
	win.fd = -1;
	registered_bytes = 0;
	fds_postfork_child();
}
