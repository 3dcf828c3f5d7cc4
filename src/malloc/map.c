/*
 * map.c - the interposed mmap family, and the other calls through which a
 *         program could trip over the zero-page engine: mprotect and mlock
 *         (which change what the reclaim window may do), ioctl (a
 *         program's own userfaultfd), close and dup (the engine's
 *         descriptors), prctl and seccomp (a sandbox), unshare and setns
 *         (which want a single thread), syscall() for all of these, and
 *         fork (daemon, forkpty) and the fork-handler registration, which
 *         put our own fork handlers in place first (init.c).
 * Owns:  the pointers to glibc's own versions of those calls.
 * Locks: none here; the engine locks for itself (signal-safely).
 * Path:  close (shim.c) -> map_close -> zero_fds_closing -> glibc close
 *        unshare (shim.c) -> map_unshare -> zero_ns_begin -> glibc unshare
 *        fork (shim.c) -> map_fork -> init_fork_handlers -> glibc fork
 *
 * Everything passes through to glibc's function (found in libc.so.6 by
 * os_libc_fn, so never ourselves), keeping its exact semantics: errno,
 * cancellation points. The engine only gets a word in before (and after).
 */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "malloc/init.h"
#include "malloc/map.h"
#include "os/os.h"
#include "os/os_proc.h"
#include "os/os_uffd.h"
#if ZP_HAVE_ZERO
#include "zero/zero.h"
#endif

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC	(1U << 2)
#endif
#ifndef SECCOMP_SET_MODE_STRICT
#define SECCOMP_SET_MODE_STRICT	0
#define SECCOMP_SET_MODE_FILTER	1
#endif
#ifndef PR_SET_SECCOMP
#define PR_SET_SECCOMP		22
#endif
/* unshare flags the kernel refuses to a process with a second thread. */
#define NS_SINGLE_THREAD	(CLONE_NEWUSER | CLONE_THREAD | \
				 CLONE_SIGHAND | CLONE_VM)

/* --- glibc's own functions ----------------------------------------------- */

enum libc_fn {
	FN_CLOSE, FN_CLOSE_RANGE, FN_CLOSEFROM, FN_DUP2, FN_DUP3, FN_IOCTL,
	FN_PRCTL, FN_SYSCALL, FN_UNSHARE, FN_SETNS, FN_MPROTECT,
	FN_PKEY_MPROTECT, FN_MLOCK, FN_MLOCK2, FN_MUNLOCK, FN_MLOCKALL,
	FN_MUNLOCKALL, FN_FORK, FN_DAEMON, FN_FORKPTY, FN_REGISTER_ATFORK,
	FN_NR
};

static const char *const fn_names[FN_NR] = {
	"close", "close_range", "closefrom", "dup2", "dup3", "ioctl", "prctl",
	"syscall", "unshare", "setns", "mprotect", "pkey_mprotect", "mlock",
	"mlock2", "munlock", "mlockall", "munlockall", "fork", "daemon",
	"forkpty", "__register_atfork",
};

static void *fns[FN_NR];

static void *
fn(enum libc_fn f)
{
	return os_libc_fn(&fns[f], fn_names[f]);
}

/* A glibc call we could not find: fail as an unknown system call would. */
static long
missing(void)
{
	errno = ENOSYS;
	return -1;
}

zp_boot_text void
map_boot(void)
{
	for (int f = 0; f < FN_NR; f++)
		fn((enum libc_fn)f);
}

/* --- the mmap family --------------------------------------------------- */

void *
map_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off,
	 int *err)
{
#if ZP_HAVE_ZERO
	/* The engine's thresholds are options: a map before the first
	 * malloc boots (a handler's map that interrupted boot passes). */
	if (zp_unlikely(!init_boot()))
		return os_mmap_raw(addr, len, prot, flags, fd, off, err);
	return zero_mmap(addr, len, prot, flags, fd, off, err);
#else
	return os_mmap_raw(addr, len, prot, flags, fd, off, err);
#endif
}

int
map_munmap(void *addr, size_t len)
{
#if ZP_HAVE_ZERO
	return zero_munmap(addr, len);
#else
	return os_munmap_raw(addr, len);
#endif
}

void *
map_mremap(void *old, size_t old_size, size_t new_size, int flags,
	   void *new_addr, int *err)
{
#if ZP_HAVE_ZERO
	if (zp_unlikely(!init_boot()))
		return os_mremap_raw(old, old_size, new_size, flags, new_addr,
				     err);
	return zero_mremap(old, old_size, new_size, flags, new_addr, err);
#else
	return os_mremap_raw(old, old_size, new_size, flags, new_addr, err);
#endif
}

int
map_madvise(void *addr, size_t len, int advice)
{
#if ZP_HAVE_ZERO
	return zero_madvise(addr, len, advice);
#else
	return os_madvise_raw(addr, len, advice);
#endif
}

/* --- the engine's word before a call ------------------------------------ */

#if ZP_HAVE_ZERO
typedef struct zero_hold map_hold;
#define hold_range(a, l, h)	zero_range_hold((a), (l), (h))
#define hold_release(h)		zero_range_release(h)
#define fds_closing(lo, hi)	zero_fds_closing((lo), (hi))
#else
typedef int map_hold;
#define hold_range(a, l, h)	((void)(a), (void)(l), (void)(h))
#define hold_release(h)		((void)(h))
#define fds_closing(lo, hi)	((void)(lo), (void)(hi))
#endif

static int
fd_max(unsigned v)
{
	return v > (unsigned)__INT_MAX__ ? __INT_MAX__ : (int)v;
}

/* A program's UFFDIO_REGISTER: the range stops being a region first. The
 * argument is read as the kernel would, without faulting on a bad one. */
static void
uffd_register_prepare(unsigned long req, void *arg)
{
#if ZP_HAVE_ZERO
	struct uffdio_register reg;

	if (req == UFFDIO_REGISTER && os_read_mem(arg, &reg, sizeof(reg)))
		zero_uffd_claimed((void *)(uintptr_t)reg.range.start,
				  (size_t)reg.range.len);
#else
	(void)req;
	(void)arg;
#endif
}

static void
sandbox_prepare(void)
{
	os_purge_ranges_forbid();
#if ZP_HAVE_ZERO
	zero_sandbox();
#endif
}

static void
ns_begin(bool single)
{
#if ZP_HAVE_ZERO
	if (single)
		zero_ns_begin();
#else
	(void)single;
#endif
}

static bool
ns_retry(bool single, long r, unsigned tries)
{
#if ZP_HAVE_ZERO
	return single && r == -1 && zero_ns_retry(errno, tries);
#else
	(void)single;
	(void)r;
	(void)tries;
	return false;
#endif
}

static void
ns_end(bool single)
{
#if ZP_HAVE_ZERO
	if (single)
		zero_ns_end();
#else
	(void)single;
#endif
}

/* --- descriptors ---------------------------------------------------------- */

int
map_close(int fd)
{
	int (*f)(int) = (int (*)(int))fn(FN_CLOSE);

	fds_closing(fd, fd);
	return f ? f(fd) : (int)missing();
}

int
map_close_range(unsigned lo, unsigned hi, int flags)
{
	int (*f)(unsigned, unsigned, int) =
		(int (*)(unsigned, unsigned, int))fn(FN_CLOSE_RANGE);

	/* CLOEXEC only marks them; ours are close-on-exec already. */
	if (!(flags & CLOSE_RANGE_CLOEXEC) && lo <= hi)
		fds_closing(fd_max(lo), fd_max(hi));
	return f ? f(lo, hi, flags) : (int)missing();
}

void
map_closefrom(int lo)
{
	void (*f)(int) = (void (*)(int))fn(FN_CLOSEFROM);

	fds_closing(lo < 0 ? 0 : lo, __INT_MAX__);
	if (f)
		f(lo);
}

int
map_dup2(int old, int fd)
{
	int (*f)(int, int) = (int (*)(int, int))fn(FN_DUP2);

	if (old != fd)
		fds_closing(fd, fd);
	return f ? f(old, fd) : (int)missing();
}

int
map_dup3(int old, int fd, int flags)
{
	int (*f)(int, int, int) = (int (*)(int, int, int))fn(FN_DUP3);

	if (old != fd)
		fds_closing(fd, fd);
	return f ? f(old, fd, flags) : (int)missing();
}

int
map_ioctl(int fd, unsigned long req, void *arg)
{
	int (*f)(int, unsigned long, ...) =
		(int (*)(int, unsigned long, ...))fn(FN_IOCTL);

	uffd_register_prepare(req, arg);
	return f ? f(fd, req, arg) : (int)missing();
}

/* --- sandboxes and namespaces -------------------------------------------- */

int
map_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
	  unsigned long a5)
{
	int (*f)(int, ...) = (int (*)(int, ...))fn(FN_PRCTL);

	if (option == PR_SET_SECCOMP)
		sandbox_prepare();
	return f ? f(option, a2, a3, a4, a5) : (int)missing();
}

int
map_unshare(int flags)
{
	int (*f)(int) = (int (*)(int))fn(FN_UNSHARE);
	bool single = flags & NS_SINGLE_THREAD;
	unsigned tries = 0;
	int r;

	if (!f)
		return (int)missing();
	ns_begin(single);
	do
		r = f(flags);
	while (ns_retry(single, r, tries++));
	ns_end(single);
	return r;
}

int
map_setns(int fd, int nstype)
{
	int (*f)(int, int) = (int (*)(int, int))fn(FN_SETNS);
	unsigned tries = 0;
	int r;

	if (!f)
		return (int)missing();
	/* User and mount namespaces (and a pidfd naming either) want the
	 * process to itself; which one fd is, only the kernel knows. */
	ns_begin(true);
	do
		r = f(fd, nstype);
	while (ns_retry(true, r, tries++));
	ns_end(true);
	return r;
}

/* --- protection and mlock -------------------------------------------------- */

int
map_mprotect(void *addr, size_t len, int prot)
{
	int (*f)(void *, size_t, int) =
		(int (*)(void *, size_t, int))fn(FN_MPROTECT);
	map_hold h;
	int r;

	hold_range(addr, len, &h);
	r = f ? f(addr, len, prot) : (int)missing();
	hold_release(&h);
	return r;
}

int
map_pkey_mprotect(void *addr, size_t len, int prot, int pkey)
{
	int (*f)(void *, size_t, int, int) =
		(int (*)(void *, size_t, int, int))fn(FN_PKEY_MPROTECT);
	map_hold h;
	int r;

	hold_range(addr, len, &h);
	r = f ? f(addr, len, prot, pkey) : (int)missing();
	hold_release(&h);
	return r;
}

/* mlock, mlock2 and munlock: glibc's own, with the range held. */
static int
lock_range(enum libc_fn which, const void *addr, size_t len, unsigned flags)
{
	void *f = fn(which);
	map_hold h;
	int r;

	hold_range((void *)addr, len, &h);
	if (!f)
		r = (int)missing();
	else if (which == FN_MLOCK2)
		r = ((int (*)(const void *, size_t, unsigned))f)(addr, len,
								 flags);
	else
		r = ((int (*)(const void *, size_t))f)(addr, len);
	hold_release(&h);
	return r;
}

int
map_mlock(const void *addr, size_t len)
{
	return lock_range(FN_MLOCK, addr, len, 0);
}

int
map_mlock2(const void *addr, size_t len, unsigned flags)
{
	return lock_range(FN_MLOCK2, addr, len, flags);
}

int
map_munlock(const void *addr, size_t len)
{
	return lock_range(FN_MUNLOCK, addr, len, 0);
}

int
map_mlockall(int flags, bool lock)
{
	map_hold h;
	int r;

	hold_range(NULL, SIZE_MAX, &h);
	if (lock) {
		int (*f)(int) = (int (*)(int))fn(FN_MLOCKALL);

		r = f ? f(flags) : (int)missing();
	} else {
		int (*f)(void) = (int (*)(void))fn(FN_MUNLOCKALL);

		r = f ? f() : (int)missing();
	}
	hold_release(&h);
	return r;
}

/* --- syscall() ------------------------------------------------------------ */

static long
sys_through(long nr, const long a[6])
{
	long (*f)(long, ...) = (long (*)(long, ...))fn(FN_SYSCALL);

	return f ? f(nr, a[0], a[1], a[2], a[3], a[4], a[5]) : missing();
}

/* Our own result of a call syscall() was asked for, as syscall() returns
 * it: -1 with errno on failure. */
static long
sys_result(int err, long ok)
{
	if (err) {
		errno = err;
		return -1;
	}
	return ok;
}

static long
sys_mem(long nr, const long a[6])
{
	void *p = (void *)a[0], *r;
	int err = 0;

	switch (nr) {
	case SYS_mmap:
		r = map_mmap(p, (size_t)a[1], (int)a[2], (int)a[3], (int)a[4],
			     (off_t)a[5], &err);
		return sys_result(r == MAP_FAILED ? err : 0, (long)r);
	case SYS_munmap:
		return sys_result(map_munmap(p, (size_t)a[1]), 0);
	case SYS_madvise:
		return sys_result(map_madvise(p, (size_t)a[1], (int)a[2]), 0);
	default: /* SYS_mremap */
		r = map_mremap(p, (size_t)a[1], (size_t)a[2], (int)a[3],
			       (void *)a[4], &err);
		return sys_result(r == MAP_FAILED ? err : 0, (long)r);
	}
}

/* A call that changes what the window may do with a range, or all. */
static long
sys_held(long nr, const long a[6])
{
	bool all = nr == SYS_mlockall || nr == SYS_munlockall;
	map_hold h;
	long r;

	hold_range(all ? NULL : (void *)a[0], all ? SIZE_MAX : (size_t)a[1],
		   &h);
	r = sys_through(nr, a);
	hold_release(&h);
	return r;
}

static long
sys_ns(long nr, const long a[6])
{
	bool single = nr == SYS_setns || (a[0] & NS_SINGLE_THREAD);
	unsigned tries = 0;
	long r;

	ns_begin(single);
	do
		r = sys_through(nr, a);
	while (ns_retry(single, r, tries++));
	ns_end(single);
	return r;
}

long
map_syscall(long nr, const long a[6])
{
	switch (nr) {
	case SYS_mmap: case SYS_munmap: case SYS_madvise: case SYS_mremap:
		return sys_mem(nr, a);
	case SYS_mprotect: case SYS_pkey_mprotect: case SYS_mlock:
	case SYS_mlock2: case SYS_munlock: case SYS_mlockall:
	case SYS_munlockall:
		return sys_held(nr, a);
	case SYS_close:
		fds_closing((int)a[0], (int)a[0]);
		break;
	case SYS_close_range:
		if (!((unsigned)a[2] & CLOSE_RANGE_CLOEXEC) &&
		    (unsigned)a[0] <= (unsigned)a[1])
			fds_closing(fd_max((unsigned)a[0]),
				    fd_max((unsigned)a[1]));
		break;
	case SYS_dup2: case SYS_dup3:
		if (a[0] != a[1])
			fds_closing((int)a[1], (int)a[1]);
		break;
	case SYS_ioctl:
		uffd_register_prepare((unsigned long)a[1], (void *)a[2]);
		break;
	case SYS_seccomp:
		if (a[0] == SECCOMP_SET_MODE_STRICT ||
		    a[0] == SECCOMP_SET_MODE_FILTER)
			sandbox_prepare();
		break;
	case SYS_prctl:
		if (a[0] == PR_SET_SECCOMP)
			sandbox_prepare();
		break;
	case SYS_unshare: case SYS_setns:
		return sys_ns(nr, a);
	}
	return sys_through(nr, a);
}

/* --- fork ----------------------------------------------------------------- */

/*
 * Our fork handlers go in when a fork could first run them: the first
 * fork, daemon or forkpty (glibc's only functions that fork with the
 * handlers; its other children are spawned or vforked, which run none),
 * or the first registration of anyone else's, before theirs, so that ours
 * stay the first registered: glibc runs prepare handlers last registered
 * first, so ours take our locks after every other prepare handler ran,
 * which may allocate. (A process that never forks keeps libc's constants
 * the first registration reads out of its resident set: 64 KiB.)
 */
int
map_libc_register_atfork(void (*prepare)(void), void (*parent)(void),
			 void (*child)(void), void *dso)
{
	int (*f)(void (*)(void), void (*)(void), void (*)(void), void *) =
		(int (*)(void (*)(void), void (*)(void), void (*)(void),
			 void *))fn(FN_REGISTER_ATFORK);

	return f ? f(prepare, parent, child, dso) : ENOSYS;
}

int
map_register_atfork(void (*prepare)(void), void (*parent)(void),
		    void (*child)(void), void *dso)
{
	init_fork_handlers();
	return map_libc_register_atfork(prepare, parent, child, dso);
}

pid_t
map_fork(void)
{
	pid_t (*f)(void) = (pid_t (*)(void))fn(FN_FORK);

	init_fork_handlers();
	return f ? f() : (pid_t)missing();
}

int
map_daemon(int nochdir, int noclose)
{
	int (*f)(int, int) = (int (*)(int, int))fn(FN_DAEMON);

	init_fork_handlers();
	return f ? f(nochdir, noclose) : (int)missing();
}

pid_t
map_forkpty(int *master, char *name, const void *termp, const void *winp)
{
	pid_t (*f)(int *, char *, const void *, const void *) =
		(pid_t (*)(int *, char *, const void *, const void *))fn(
			FN_FORKPTY);

	init_fork_handlers();
	return f ? f(master, name, termp, winp) : (pid_t)missing();
}
