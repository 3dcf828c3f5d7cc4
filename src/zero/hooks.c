/*
 * hooks.c - the engine's side of the calls the shim interposes: the mmap
 *           family, madvise, mprotect and mlock, a program's own
 *           userfaultfd, close, seccomp, unshare and setns.
 * Owns:  nothing: the table is zero.c's, the window uffd.c's.
 * Locks: a call on memory that touches no region takes none (a lock-free
 *        look at the table), which is what makes these calls
 *        async-signal-safe; one on region memory takes reclaim_lock (and
 *        the table lock) with every signal blocked, so a chunk under
 *        reclaim settles first. No call here starts a thread.
 * Path:  shim munmap -> map_munmap -> zero_munmap -> zero_table_touches
 *        -> (no) os_munmap_raw | (yes) lock, os_munmap_raw, table update
 */
#include <errno.h>
#include <sys/mman.h>

#include "os/os.h"
#include "os/os_uffd.h"
#include "zero/zero_int.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

/* Retry an unshare or setns refused for a second thread this often at
 * most (the stopped helper may linger in the thread group a moment). */
#define NS_RETRIES	200
#define NS_RETRY_NS	(100ULL * 1000)

static uintptr_t
end_of(void *addr, size_t len)
{
	uintptr_t s = (uintptr_t)addr;
	uintptr_t e = s + zp_align_up(len, ZP_PAGE_SIZE);

	return e < s ? UINTPTR_MAX : e;
}

/* --- the mmap family -------------------------------------------------- */

static bool
mmap_is_region(size_t len, int prot, int flags)
{
	const int plain = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

	return len >= zero_cfg.mmap_threshold &&
	       prot == (PROT_READ | PROT_WRITE) &&
	       (flags & (MAP_PRIVATE | MAP_ANONYMOUS)) ==
		       (MAP_PRIVATE | MAP_ANONYMOUS) &&
	       (flags & ~plain) == 0;
}

/* A map refused for lack of memory is retried once after the parked
 * regions went back. */
static void *
mmap_retry(void *addr, size_t len, int prot, int flags, int fd, off_t off,
	   int *err)
{
	void *r = os_mmap_raw(addr, len, prot, flags, fd, off, err);

	if (r == MAP_FAILED && *err == ENOMEM &&
	    zero_park_release(/* all */ true))
		r = os_mmap_raw(addr, len, prot, flags, fd, off, err);
	return r;
}

void *
zero_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off,
	  int *err)
{
	uintptr_t s = (uintptr_t)addr, e = end_of(addr, len);
	struct zero_guard g;
	void *r;

	if (mmap_is_region(len, prot, flags)) {
		r = mmap_retry(addr, len, prot, flags, -1, 0, err);
		/* A region the table has no room for is still correct
		 * memory, merely never reclaimed. */
		if (r != MAP_FAILED) {
			zero_guard_enter(&g);
			(void)zero_hook_add((uintptr_t)r, end_of(r, len));
			zero_guard_leave(&g);
		}
		return r;
	}
	/* MAP_FIXED over a region replaces that part of it. */
	if (!(flags & MAP_FIXED) || (flags & MAP_FIXED_NOREPLACE) ||
	    !zero_table_touches(s, e))
		return mmap_retry(addr, len, prot, flags, fd, off, err);
	zero_guard_enter(&g);
	zero_hook_lock();
	zero_hook_reserve_locked(1);
	r = os_mmap_raw(addr, len, prot, flags, fd, off, err);
	if (r != MAP_FAILED)
		zero_hook_remove_locked(s, e);
	zero_hook_unlock();
	zero_guard_leave(&g);
	return r;
}

int
zero_munmap(void *addr, size_t len)
{
	uintptr_t s = (uintptr_t)addr, e = end_of(addr, len);
	struct zero_guard g;
	int err;

	if (!zero_table_touches(s, e))
		return os_munmap_raw(addr, len);
	zero_guard_enter(&g);
	zero_hook_lock();
	zero_hook_reserve_locked(1);	/* room for a split */
	err = os_munmap_raw(addr, len);
	if (!err)
		zero_hook_remove_locked(s, e);
	zero_hook_unlock();
	zero_guard_leave(&g);
	return err;
}

void *
zero_mremap(void *old, size_t old_size, size_t new_size, int flags,
	    void *new_addr, int *err)
{
	uintptr_t os = (uintptr_t)old, oe = end_of(old, old_size);
	uintptr_t fs = (uintptr_t)new_addr, fe = end_of(new_addr, new_size);
	bool fixed = flags & MREMAP_FIXED, was_region;
	struct zero_guard g;
	void *r;

	if (!zero_table_touches(os, oe) &&
	    (!fixed || !zero_table_touches(fs, fe)))
		return os_mremap_raw(old, old_size, new_size, flags, new_addr,
				     err);
	zero_guard_enter(&g);
	zero_hook_lock();
	was_region = old_size && zero_hook_holds_locked(os, oe);
	zero_hook_reserve_locked(3);
	r = os_mremap_raw(old, old_size, new_size, flags, new_addr, err);
	if (r != MAP_FAILED)
		zero_hook_follow_locked(os, oe, (uintptr_t)r,
					end_of(r, new_size), was_region,
					flags & MREMAP_DONTUNMAP);
	zero_hook_unlock();
	zero_guard_leave(&g);
	return r;
}

int
zero_madvise(void *addr, size_t len, int advice)
{
	struct zero_hold h;
	int err;

	if (advice != MADV_DONTNEED && advice != MADV_FREE &&
	    advice != MADV_REMOVE && advice != MADV_DONTNEED_LOCKED)
		return os_madvise_raw(addr, len, advice);
	zero_range_hold(addr, len, &h);
	err = os_madvise_raw(addr, len, advice);
	zero_range_release(&h);
	return err;
}

/* --- protection, mlock, a program's userfaultfd ------------------------- */

void
zero_range_hold(void *addr, size_t len, struct zero_hold *h)
{
	uintptr_t s = (uintptr_t)addr;
	uintptr_t e = len == SIZE_MAX ? UINTPTR_MAX : end_of(addr, len);

	h->held = len == SIZE_MAX ? !zero_table_is_empty()
				  : zero_table_touches(s, e);
	if (!h->held)
		return;
	os_sig_block_all(&h->mask);
	reclaim_lock();
}

void
zero_range_release(struct zero_hold *h)
{
	if (!h->held)
		return;
	reclaim_unlock();
	os_sig_restore(h->mask);
}

void
zero_uffd_claimed(void *addr, size_t len)
{
	uintptr_t s = (uintptr_t)addr, e = end_of(addr, len);
	struct zero_guard g;

	if (!zero_table_touches(s, e))
		return;
	zero_guard_enter(&g);
	reclaim_lock();
	zero_table_forget(s, e);
	reclaim_unlock();
	zero_guard_leave(&g);
}

/* --- descriptors, sandboxes, namespaces --------------------------------- */

void
zero_fds_closing(int lo, int hi)
{
	struct zero_guard g;

	if (zp_likely(!uffd_fds_in(lo, hi) && !reclaim_fds_in(lo, hi) &&
		      !fds_in(lo, hi)))
		return;
	zero_guard_enter(&g);
	/* No chunk under reclaim uses them while they go. */
	reclaim_lock();
	uffd_fds_closing(lo, hi);
	reclaim_fds_closing(lo, hi);
	fds_closing(lo, hi);
	reclaim_unlock();
	zero_guard_leave(&g);
}

void
zero_sandbox(void)
{
	struct zero_guard g;

	helper_forbid();
	helper_quiesce();
	zero_guard_enter(&g);
	reclaim_lock();
	uffd_stop("sandboxed (seccomp)");
	reclaim_unlock();
	zero_guard_leave(&g);
}

void
zero_ns_begin(void)
{
	helper_quiesce();
}

bool
zero_ns_retry(int err, unsigned tries)
{
	if (err != EINVAL || tries >= NS_RETRIES)
		return false;
	os_sleep_ns(NS_RETRY_NS);
	return true;
}

void
zero_ns_end(void)
{
	helper_resume();
	helper_kick_pending();
}

void
zero_kick_pending(void)
{
	helper_kick_pending();
}
