/*
 * uffd.c - the userfaultfd capability ladder, the fault handler thread and
 * the reclaim window.
 * Owns:  the process's one userfaultfd, the 2 MiB scratch area, the window
 *        (the chunk under reclaim and which of its pages sit in scratch).
 * Locks: probe_lock guards the ladder and the one-time setup (never held
 *        around anything that may fault on registered memory);
 *        win.lock serialises the handler with the reclaimer per page of
 *        the window and is taken last (after reclaim_lock, table.lock).
 * Path:  reclaim_chunk -> uffd_ensure -> uffd_probe -> os_uffd_open/api
 *        reclaim_chunk -> uffd_window_open/take/settle/close -> os_uffd_*
 *        handler: os_uffd_read -> (page in scratch) move it back
 *                                 (otherwise) UFFDIO_ZEROPAGE
 *
 * The protocol never loses a write because a page of the window is always
 * in exactly one place - mapped at home, or in scratch with its bit set in
 * win.out - and only a holder of win.lock moves it. A program access to a
 * page in scratch faults (the chunk is registered for MISSING faults) and
 * the handler puts the page itself back, so whatever was written before it
 * was moved out is still there; a write after the zero page went back
 * copies-on-write natively. Pages the kernel refuses to move (pinned, or
 * shared after fork) stay where they are.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "base/log.h"
#include "os/os.h"
#include "os/os_uffd.h"
#include "zero/zero_int.h"
#include "zpmalloc.h"

static struct zp_lock probe_lock = ZP_LOCK_INIT;
static int level = -1;			/* zp_zero_level; -1 unprobed */
static char reason[48] = "not probed yet";
static int uffd = -1;
static int uffd_pid;			/* the process uffd belongs to */
static bool ready;			/* uffd, scratch and handler set up */
static bool starting;			/* a handler is being created */
static uintptr_t scratch;		/* 2 MiB aligned, registered */

static struct {
	struct zp_lock lock;
	uintptr_t start, end;		/* the chunk; 0, 0 when closed */
	uint64_t out[ZERO_CHUNK_PAGES / 64];	/* page i is in scratch */
} win = { .lock = ZP_LOCK_INIT };

static uint64_t nr_faults, handler_ns, registered_bytes;
static uint64_t nr_rescued;		/* pages moved home: a write or fault
					 * came while they were out */

/* --- capability ladder -------------------------------------------------- */

static const char *
open_failure(int err)
{
	const char *via;
	int fd;

	if (err == ENOSYS)
		return "no userfaultfd (kernel or seccomp)";
	if (err != EPERM && err != EACCES)
		return "userfaultfd refused";
	/* Tell "user-mode-only only" apart from "nothing at all": that mode
	 * is never used for program memory (kernel accesses would EFAULT). */
	if (os_uffd_open(true, &fd, &via) == 0) {
		os_close(fd);
		return "only user-mode-only uffd (EPERM)";
	}
	return "userfaultfd: EPERM";
}

/* One climb of the ladder; sets uffd when it reaches the top. The caller
 * publishes the level only afterwards, so no one sees a half answer. */
static int
probe_locked(void)
{
	uintptr_t walk, here;
	size_t nr;
	const char *via;
	struct os_page_region r;
	const struct os_scan_match m = { .all = OS_PAGE_IS_PRESENT,
					 .report = OS_PAGE_IS_PRESENT };
	uint64_t have = 0;
	int fd, pm, err;

	if (zero_cfg.uffd_mode == ZERO_UFFD_OFF) {
		fmt_buf(reason, sizeof(reason), "forced off (ZPMALLOC_UFFD=0)");
		return ZP_ZERO_LEVEL_OFF;
	}
	err = os_uffd_open(false, &fd, &via);
	if (err) {
		fmt_buf(reason, sizeof(reason), "%s", open_failure(err));
		return ZP_ZERO_LEVEL_KERNEL;
	}
	err = os_uffd_api(fd, OS_UFFD_FEATURE_MOVE, &have);
	if (err || !(have & OS_UFFD_FEATURE_MOVE)) {
		os_close(fd);
		fmt_buf(reason, sizeof(reason), "no UFFD_FEATURE_MOVE");
		return ZP_ZERO_LEVEL_KERNEL;
	}
	pm = zero_pagemap_fd();
	here = zp_align_down((uintptr_t)&r, ZP_PAGE_SIZE);
	if (pm < 0 || os_pagemap_scan(pm, here, here + ZP_PAGE_SIZE, &m, &r,
				      1, &nr, &walk) != 0) {
		os_close(fd);
		fmt_buf(reason, sizeof(reason), "no PAGEMAP_SCAN");
		return ZP_ZERO_LEVEL_KERNEL;
	}
	uffd = fd;
	uffd_pid = os_getpid();
	fmt_buf(reason, sizeof(reason), "full uffd with MOVE (%s)", via);
	return ZP_ZERO_LEVEL_UFFD;
}

int
uffd_level(void)
{
	int l = __atomic_load_n(&level, __ATOMIC_ACQUIRE);

	if (zp_likely(l >= 0))
		return l;
	zp_lock(&probe_lock);
	l = level;
	if (l < 0) {
		l = probe_locked();
		__atomic_store_n(&level, l, __ATOMIC_RELEASE);
	}
	zp_unlock(&probe_lock);
	return l;
}

const char *
uffd_reason(void)
{
	return reason;
}

/* --- the handler -------------------------------------------------------- */

static bool
win_has_locked(uintptr_t p, size_t *idx)
{
	if (p < win.start || p >= win.end)
		return false;
	*idx = (p - win.start) / ZP_PAGE_SIZE;
	return win.out[*idx / 64] & (1ULL << (*idx % 64));
}

static void
win_clear_locked(size_t idx)
{
	win.out[idx / 64] &= ~(1ULL << (idx % 64));
}

/* Put page idx of the window back home. EAGAIN means the kernel raced
 * with something transient. ENOENT/EINVAL mean home is no longer mapped
 * (unmapped behind the engine's back, bypassing zero_munmap): the page
 * has nowhere to go and is dropped with the scratch frames. Anything else
 * (EEXIST: home refilled while the page was out) breaks the protocol's
 * invariant, and silently going on could lose a write. */
static void
move_home_locked(size_t idx)
{
	uintptr_t home = win.start + idx * ZP_PAGE_SIZE;
	unsigned tries = 0;
	size_t moved;
	int err;

	do
		err = os_uffd_move(uffd, (void *)home,
				   (void *)(scratch + idx * ZP_PAGE_SIZE),
				   ZP_PAGE_SIZE, /* wake */ true, &moved);
	while ((err == EAGAIN || err == ENOMEM) && ++tries < 1000);
	if (err && err != ENOENT && err != EINVAL)
		log_fatal("zero: UFFDIO_MOVE back to %p failed (%d)",
			  (void *)home, err);
	win_clear_locked(idx);
	__atomic_add_fetch(&nr_rescued, 1, __ATOMIC_RELAXED);
}

static void
resolve(uintptr_t p)
{
	size_t idx;

	zp_lock(&win.lock);
	if (win_has_locked(p, &idx)) {
		move_home_locked(idx);
	} else if (os_uffd_zeropage(uffd, (void *)p, ZP_PAGE_SIZE,
				    /* wake */ true) != 0) {
		/* Already mapped (the reclaimer settled it first) or no longer
		 * registered: the faulting thread only needs waking. */
		os_uffd_wake(uffd, (void *)p, ZP_PAGE_SIZE);
	}
	zp_unlock(&win.lock);
}

static void *
handler_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct os_uffd_fault f;
	uint64_t t0;

	for (;;) {
		int err = os_uffd_read(fd, &f);

		if (err == EBADF || err == EINVAL)
			return NULL;
		if (err || !f.is_fault)
			continue;
		/* Counted before the wake-up, so a woken thread sees it. */
		__atomic_add_fetch(&nr_faults, 1, __ATOMIC_RELAXED);
		t0 = os_now_ns();
		resolve(zp_align_down(f.addr, ZP_PAGE_SIZE));
		__atomic_add_fetch(&handler_ns, os_now_ns() - t0,
				   __ATOMIC_RELAXED);
	}
}

/* A detached thread with every signal blocked: it must never run a
 * program's handler, and process exit never waits for it. */
static int
start_handler(void)
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
	err = pthread_create(&t, &attr, handler_main, (void *)(intptr_t)uffd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return err;
}

/* A fork that bypassed our hooks (a raw clone, say) left this process
 * with the parent's descriptor, which acts on the parent's memory: never
 * use it here. */
static void
forget_foreign_uffd_locked(void)
{
	if (uffd < 0 || uffd_pid == os_getpid())
		return;
	os_close(uffd);
	uffd = -1;
	uffd_pid = 0;
	__atomic_store_n(&ready, false, __ATOMIC_RELEASE);
	__atomic_store_n(&level, -1, __ATOMIC_RELEASE);
}

int
uffd_ensure(void)
{
	void *p;
	int err = 0;

	if (__atomic_load_n(&ready, __ATOMIC_ACQUIRE) &&
	    zp_likely(uffd_pid == os_getpid()))
		return 0;
	zp_lock(&probe_lock);
	forget_foreign_uffd_locked();
	zp_unlock(&probe_lock);
	if (uffd_level() != ZP_ZERO_LEVEL_UFFD)
		return ENOTSUP;
	zp_lock(&probe_lock);
	if (ready || starting) {
		err = ready ? 0 : EAGAIN;
		goto out;
	}
	if (!scratch) {
		err = os_reserve(ZERO_CHUNK, ZERO_CHUNK, 0, &p);
		if (!err && (err = os_commit(p, ZERO_CHUNK)) != 0)
			os_unmap(p, ZERO_CHUNK);
		if (err)
			goto out;
		scratch = (uintptr_t)p;
	}
	err = os_uffd_register_missing(uffd, (void *)scratch, ZERO_CHUNK);
	if (err)
		goto out;
	starting = true;
	zp_unlock(&probe_lock);

	/* No engine lock across pthread_create: it may call malloc, and a
	 * fork may be waiting for our locks while holding malloc's. */
	err = start_handler();

	zp_lock(&probe_lock);
	starting = false;
	if (err)
		os_uffd_unregister(uffd, (void *)scratch, ZERO_CHUNK);
	else
		__atomic_store_n(&ready, true, __ATOMIC_RELEASE);
out:
	zp_unlock(&probe_lock);
	return err;
}

bool
uffd_is_ready(void)
{
	return __atomic_load_n(&ready, __ATOMIC_ACQUIRE);
}

/* --- the window (caller holds reclaim_lock) ----------------------------- */

int
uffd_window_open(uintptr_t start, uintptr_t end)
{
	int err = os_uffd_register_missing(uffd, (void *)start, end - start);

	if (err)
		return err;
	zp_lock(&win.lock);
	win.start = start;
	win.end = end;
	memset(win.out, 0, sizeof(win.out));
	zp_unlock(&win.lock);
	__atomic_add_fetch(&registered_bytes, end - start, __ATOMIC_RELAXED);
	return 0;
}

size_t
uffd_window_take(uintptr_t p, size_t nr, int *err)
{
	size_t idx = (p - win.start) / ZP_PAGE_SIZE, moved = 0, done;
	unsigned retries = 0;

	*err = 0;
	zp_lock(&win.lock);
	while (moved < nr) {
		*err = os_uffd_move(uffd, (void *)(scratch + (idx + moved) *
						    ZP_PAGE_SIZE),
				    (void *)(p + moved * ZP_PAGE_SIZE),
				    (nr - moved) * ZP_PAGE_SIZE,
				    /* wake */ false, &done);
		for (size_t i = 0; i < done / ZP_PAGE_SIZE; i++, moved++)
			win.out[(idx + moved) / 64] |= 1ULL << ((idx + moved) %
								 64);
		if (*err && (*err != EAGAIN || ++retries > 16))
			break;
		*err = 0;
	}
	zp_unlock(&win.lock);
	return moved;
}

/* Map the zero page over pages [first, last) of the window, all in
 * scratch and zero. If the kernel says no, page by page: EEXIST there
 * means our own batch call already mapped it; anything else moves the
 * page home, so nothing is ever left out. */
static size_t
settle_zero_locked(size_t first, size_t last)
{
	size_t n = 0;
	int err;

	if (os_uffd_zeropage(uffd, (void *)(win.start + first * ZP_PAGE_SIZE),
			     (last - first) * ZP_PAGE_SIZE,
			     /* wake */ true) == 0) {
		for (size_t i = first; i < last; i++)
			win_clear_locked(i);
		return last - first;
	}
	for (size_t i = first; i < last; i++) {
		err = os_uffd_zeropage(uffd, (void *)(win.start + i *
						       ZP_PAGE_SIZE),
				       ZP_PAGE_SIZE, /* wake */ true);
		if (err == 0 || err == EEXIST) {
			win_clear_locked(i);
			n++;
		} else {
			move_home_locked(i);
		}
	}
	return n;
}

size_t
uffd_window_settle(void)
{
	size_t nr_pages = (win.end - win.start) / ZP_PAGE_SIZE;
	size_t reclaimed = 0, run = 0, idx;
	bool in_run = false;

	zp_lock(&win.lock);
	for (size_t i = 0; i <= nr_pages; i++) {
		bool out = i < nr_pages &&
			   win_has_locked(win.start + i * ZP_PAGE_SIZE, &idx);
		/* Only a page still in scratch is read, under win.lock: it is
		 * present there, so the read cannot fault. */
		bool zero = out && zero_page_is_zero((void *)(scratch + i *
							      ZP_PAGE_SIZE));

		if (zero && !in_run) {
			run = i;
			in_run = true;
		} else if (!zero && in_run) {
			reclaimed += settle_zero_locked(run, i);
			in_run = false;
		}
		if (out && !zero)
			move_home_locked(i);	/* a write slipped in */
	}
	/* What is left in scratch are the zero frames: free them. */
	os_purge((void *)scratch, ZERO_CHUNK);
	zp_unlock(&win.lock);
	return reclaimed;
}

void
uffd_window_close(void)
{
	uintptr_t s = win.start, e = win.end;

	zp_lock(&win.lock);
	win.start = win.end = 0;
	zp_unlock(&win.lock);
	/* Unregistering wakes any thread still waiting on the chunk; it
	 * retries and takes a native fault. */
	os_uffd_unregister(uffd, (void *)s, e - s);
	__atomic_sub_fetch(&registered_bytes, e - s, __ATOMIC_RELAXED);
}

uint64_t
uffd_nr_rescued(void)
{
	return __atomic_load_n(&nr_rescued, __ATOMIC_RELAXED);
}

void
uffd_stats(uint64_t *faults, uint64_t *ns, uint64_t *registered)
{
	*faults = __atomic_load_n(&nr_faults, __ATOMIC_RELAXED);
	*ns = __atomic_load_n(&handler_ns, __ATOMIC_RELAXED);
	*registered = __atomic_load_n(&registered_bytes, __ATOMIC_RELAXED) +
		      (ready ? ZERO_CHUNK : 0);
}

void
uffd_prefork(void)
{
	zp_lock_prefork(&probe_lock);
	zp_lock_prefork(&win.lock);
}

void
uffd_postfork_parent(void)
{
	zp_lock_postfork_parent(&win.lock);
	zp_lock_postfork_parent(&probe_lock);
}

/* The inherited descriptor still acts on the parent's memory, and the
 * parent's threads did not come along: start over, lazily. The scratch
 * mapping was copied (empty, unregistered) and is reused. */
void
uffd_postfork_child(void)
{
	zp_lock_postfork_child(&probe_lock);
	zp_lock_postfork_child(&win.lock);
	if (uffd >= 0)
		os_close(uffd);
	uffd = -1;
	uffd_pid = 0;
	ready = false;
	starting = false;
	level = -1;
	fmt_buf(reason, sizeof(reason), "not probed yet");
	win.start = win.end = 0;
	registered_bytes = 0;
}
