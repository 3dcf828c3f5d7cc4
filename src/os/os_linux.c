/*
 * os_linux.c - the Linux system calls behind os.h.
 * Owns:  the fault-injection counters and the lowest zone window handed
 *        out (os_reserve_window, called at boot only).
 * Locks: none. Every call is a raw system call so that errno survives and
 *        so that our own interposed mmap/munmap/mremap are never re-entered.
 * Path:  zone_grow -> os_commit -> mprotect (or os_map_fixed -> mmap in a
 *        lazily mapped window); large_alloc -> os_map -> mmap
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/mempolicy.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "os/os.h"
#include "os/os_proc.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef GRND_NONBLOCK
#define GRND_NONBLOCK 1
#endif

long
os_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
#if defined(__x86_64__)
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8),
			   "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;

	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory");
	return x0;
#else
#error "zpmalloc: add the raw system call sequence for this architecture"
#endif
}

static unsigned long fault_countdown;
static bool fault_all, fault_sticky;

void
os_fault_inject_nth(unsigned long n)
{
	__atomic_store_n(&fault_sticky, false, __ATOMIC_RELAXED);
	if (n == 0)
		__atomic_store_n(&fault_all, false, __ATOMIC_RELAXED);
	__atomic_store_n(&fault_countdown, n, __ATOMIC_RELAXED);
}

void
os_fault_inject_from(unsigned long n)
{
	os_fault_inject_nth(n);
	__atomic_store_n(&fault_sticky, n != 0, __ATOMIC_RELAXED);
}

void
os_fault_inject_all(bool on)
{
	__atomic_store_n(&fault_all, on, __ATOMIC_RELAXED);
}

/* True when an injected failure is due; costs one load when disarmed. */
static bool
fault_due(void)
{
	if (zp_likely(!__atomic_load_n(&fault_countdown, __ATOMIC_RELAXED)))
		return __atomic_load_n(&fault_all, __ATOMIC_RELAXED);
	if (__atomic_sub_fetch(&fault_countdown, 1, __ATOMIC_RELAXED) != 0)
		return false;
	if (__atomic_load_n(&fault_sticky, __ATOMIC_RELAXED))
		__atomic_store_n(&fault_all, true, __ATOMIC_RELAXED);
	return true;
}

static long
sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return os_syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static bool
is_err(long r)
{
	return (unsigned long)r > (unsigned long)-4096L;
}

/* Over-reserve, then trim both ends so the range is aligned. */
static int
reserve_aligned(size_t size, size_t align, void *hint, int extra, void **out)
{
	size_t span = size + (align > ZP_PAGE_SIZE ? align : 0);
	long r = sys_mmap(hint, span, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | extra,
			  -1, 0);
	if (is_err(r))
		return (int)-r;

	uintptr_t base = (uintptr_t)r;
	uintptr_t start = zp_align_up(base, align);
	if (start > base)
		os_syscall(SYS_munmap, base, start - base, 0, 0, 0, 0);
	if (base + span > start + size)
		os_syscall(SYS_munmap, start + size, base + span - start - size,
			   0, 0, 0, 0);
	*out = (void *)start;
	return 0;
}

/*
 * Below 4 GiB the kernel offers MAP_32BIT (x86-64, first 2 GiB only), so we
 * probe hint addresses with MAP_FIXED_NOREPLACE from 1 GiB up and accept
 * only a placement that ends below 4 GiB.
 */
static int
reserve_low32(size_t size, size_t align, void **out)
{
	const uintptr_t limit = (uintptr_t)4 << 30;

	for (uintptr_t at = (uintptr_t)1 << 30; at + size <= limit;
	     at += ZP_MAX(align, (size_t)256 << 20)) {
		uintptr_t a = zp_align_up(at, align);
		if (a + size > limit)
			break;
		long r = sys_mmap((void *)a, size, PROT_NONE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
					  MAP_FIXED_NOREPLACE,
				  -1, 0);
		if (is_err(r))
			continue;
		if ((uintptr_t)r != a) {
			/* Old kernels ignore NOREPLACE and treat it as a hint. */
			os_syscall(SYS_munmap, r, size, 0, 0, 0, 0);
			continue;
		}
		*out = (void *)a;
		return 0;
	}
	return ENOMEM;
}

int
os_reserve(size_t size, size_t align, unsigned flags, void **out)
{
	if (fault_due())
		return ENOMEM;
	if (align < ZP_PAGE_SIZE)
		align = ZP_PAGE_SIZE;
	if (flags & OS_RESERVE_LOW32)
		return reserve_low32(size, align, out);
	return reserve_aligned(size, align, NULL, 0, out);
}

/* Maps [a, a + size) PROT_NONE only if nothing is there, and unmaps it
 * again at once: 0 when the range was free, else EEXIST or ENOMEM. */
static int
probe_free(uintptr_t a, size_t size)
{
	long r = sys_mmap((void *)a, size, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
				  MAP_FIXED_NOREPLACE,
			  -1, 0);

	if (is_err(r))
		return (int)-r;
	os_syscall(SYS_munmap, r, size, 0, 0, 0, 0);
	/* Kernels before 4.17 take NOREPLACE as a mere hint. */
	return (uintptr_t)r == a ? 0 : EEXIST;
}

/* The whole range when the address-space limit lets us map it for a
 * moment; otherwise its first and last pages must at least be free. */
static zp_boot_text bool
window_is_free(uintptr_t a, size_t size)
{
	int r = probe_free(a, size);

	/* ENOMEM under an address-space limit; EINVAL from emulators
	 * (valgrind) that refuse a huge NOREPLACE probe. */
	if (r != 0 && r != EEXIST)
		r = probe_free(a, ZP_PAGE_SIZE) ?:
		    probe_free(a + size - ZP_PAGE_SIZE, ZP_PAGE_SIZE);
	return r == 0;
}

/* Lowest window handed out so far: later windows go below it. */
static uintptr_t window_floor;

/*
 * The kernel places mappings top-down from just below the stack, and the
 * heap grows up from the program; under an address-space limit neither
 * strays far. The first window sits half way between them, later ones
 * below it, never in the quarter of the gap nearest the heap.
 */
static int
window_between(uintptr_t heap, uintptr_t top, size_t size, size_t align,
	       void **out)
{
	uintptr_t a;

	if (top <= heap || top - heap < 4 * size)
		return ENOMEM;
	if (!window_floor || window_floor > top)
		window_floor = heap + (top - heap) / 2 + size;
	if (window_floor - heap < size)
		return ENOMEM;
	a = zp_align_down(window_floor - size, align);
	if (a < heap + (top - heap) / 4 || !window_is_free(a, size))
		return ENOMEM;
	window_floor = a;
	*out = (void *)a;
	return 0;
}

/*
 * Where the heap and the mmap area are not where Linux puts them (under
 * valgrind the client's mappings start low and its heap lies above
 * them), fixed places high in the address space, as Go's and the
 * sanitizers' runtimes pick theirs: from 32 TiB down to 1 TiB, each
 * below the last one handed out (a window maps nothing, so the probe
 * alone would find the last one free again).
 */
static uintptr_t fixed_floor;

static int
window_fixed(size_t size, size_t align, void **out)
{
	const uintptr_t low = (uintptr_t)1 << 40;
	uintptr_t top = fixed_floor ? fixed_floor : (uintptr_t)32 << 40;

	for (uintptr_t a = top; a >= low + size; a -= low) {
		uintptr_t b = zp_align_down(a - size, align);

		if (b >= low && window_is_free(b, size)) {
			fixed_floor = b;
			*out = (void *)b;
			return 0;
		}
	}
	return ENOMEM;
}

static int
window_normal(size_t size, size_t align, void **out)
{
	long probe = sys_mmap(NULL, ZP_PAGE_SIZE, PROT_NONE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
			      0);
	uintptr_t heap = (uintptr_t)os_syscall(SYS_brk, 0, 0, 0, 0, 0, 0);

	if (is_err(probe))
		return (int)-probe;
	os_syscall(SYS_munmap, probe, ZP_PAGE_SIZE, 0, 0, 0, 0);
	if (window_between(heap, (uintptr_t)probe, size, align, out) == 0)
		return 0;
	return window_fixed(size, align, out);
}

/* Below 4 GiB, from 2 GiB up first: x86-64's MAP_32BIT hands out 1-2 GiB,
 * and nothing reserves the window against it. Where 2-4 GiB is taken
 * (AddressSanitizer's shadow starts at 2 GiB), from 1 GiB up. */
static int
window_low32_from(uintptr_t from, size_t size, size_t align, void **out)
{
	const uintptr_t limit = (uintptr_t)4 << 30;
	size_t stride = ZP_MAX(align, (size_t)256 << 20);

	for (uintptr_t a = zp_align_up(from, align);
	     a + size <= limit && a + size > a; a += stride) {
		if (window_is_free(a, size)) {
			*out = (void *)a;
			return 0;
		}
	}
	return ENOMEM;
}

static int
window_low32(size_t size, size_t align, void **out)
{
	if (window_low32_from((uintptr_t)2 << 30, size, align, out) == 0)
		return 0;
	return window_low32_from((uintptr_t)1 << 30, size, align, out);
}

zp_boot_text int
os_reserve_window(size_t size, size_t align, unsigned flags, void **out)
{
	if (fault_due())
		return ENOMEM;
	if (align < ZP_PAGE_SIZE)
		align = ZP_PAGE_SIZE;
	size = zp_align_up(size, ZP_PAGE_SIZE);
	if (flags & OS_RESERVE_LOW32)
		return window_low32(size, align, out);
	return window_normal(size, align, out);
}

int
os_map_fixed(void *p, size_t size)
{
	if (fault_due())
		return ENOMEM;
	long r = sys_mmap(p, size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			  -1, 0);
	if (is_err(r))
		return (int)-r;
	if ((void *)r != p) {
		os_syscall(SYS_munmap, r, size, 0, 0, 0, 0);
		return EEXIST;
	}
	return 0;
}

int
os_map_over(void *p, size_t size)
{
	if (fault_due())
		return ENOMEM;
	long r = sys_mmap(p, size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	return is_err(r) ? (int)-r : 0;
}

int
os_commit(void *p, size_t size)
{
	if (fault_due())
		return ENOMEM;
	long r = os_syscall(SYS_mprotect, p, size, PROT_READ | PROT_WRITE, 0,
			    0, 0);
	return r ? (int)-r : 0;
}

int
os_purge(void *p, size_t size)
{
	long r = os_syscall(SYS_madvise, p, size, MADV_DONTNEED, 0, 0, 0);
	return r ? (int)-r : 0;
}

/*
 * Purges of many ranges at once: process_madvise on the calling process
 * (PIDFD_SELF_PROCESS, Linux 6.14; any advice on oneself since 6.13)
 * takes a vector, and since 6.16 flushes the TLB once for all of it. A
 * madvise costs ~16 us here, mostly that flush, against ~1.6 us a range
 * in a vector (20,000 ranges of 16 KiB, 10 rounds). Only where the call
 * works and no seccomp filter could kill the process for it: a filter
 * the program installs later turns it off first (os_purge_ranges_forbid).
 * The zone calls it under its purge_lock, which fork's prepare handler
 * takes: no call is in flight in a fork child's copy of the counter.
 */
#ifndef SYS_process_madvise
#define SYS_process_madvise	440
#endif
#define PIDFD_SELF_PROCESS	(-10001)
#define PURGE_IOV_MAX		1024	/* the kernel's UIO_MAXIOV */

_Static_assert(sizeof(struct os_range) == sizeof(struct iovec) &&
	       offsetof(struct os_range, len) == offsetof(struct iovec, iov_len),
	       "an os_range is an iovec");

static int purge_vec_on;	/* atomic */
static int purge_vec_busy;	/* calls in flight, for the forbid */

void
os_purge_ranges_boot(void)
{
	struct os_range none = { 0 };
	long r;

	if (os_seccomp_mode_self() != 0)
		return;
	r = os_syscall(SYS_process_madvise, PIDFD_SELF_PROCESS, &none, 0,
		       MADV_DONTNEED, 0, 0);
	__atomic_store_n(&purge_vec_on, r == 0, __ATOMIC_SEQ_CST);
}

/* A call another thread is about to make finishes within a few yields;
 * the bound is for a signal handler that installs a filter over this
 * thread's own call, which would otherwise wait for itself. */
#define FORBID_YIELDS	1000

void
os_purge_ranges_forbid(void)
{
	__atomic_store_n(&purge_vec_on, 0, __ATOMIC_SEQ_CST);
	for (unsigned i = 0; i < FORBID_YIELDS &&
	     __atomic_load_n(&purge_vec_busy, __ATOMIC_SEQ_CST) != 0; i++)
		os_syscall(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
}

bool
os_purge_ranges_batched(void)
{
	return __atomic_load_n(&purge_vec_on, __ATOMIC_RELAXED);
}

/* Bytes purged from the front of r[0..n), or a negative errno with none
 * purged; -ENOSYS when vectors are off. */
static long
purge_vec(const struct os_range *r, size_t n)
{
	long done = -ENOSYS;

	__atomic_add_fetch(&purge_vec_busy, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&purge_vec_on, __ATOMIC_SEQ_CST))
		done = os_syscall(SYS_process_madvise, PIDFD_SELF_PROCESS, r,
				  n, MADV_DONTNEED, 0, 0);
	__atomic_sub_fetch(&purge_vec_busy, 1, __ATOMIC_RELEASE);
	/* Errors no range causes: the call itself is refused. */
	if (done == -ENOSYS || done == -EBADF || done == -EPERM ||
	    done == -ESRCH || done == -EFAULT)
		__atomic_store_n(&purge_vec_on, 0, __ATOMIC_RELAXED);
	return done;
}

void
os_purge_ranges(const struct os_range *r, size_t n, int *err)
{
	size_t i = 0;

	while (i < n) {
		size_t end = i + ZP_MIN(n - i, (size_t)PURGE_IOV_MAX);
		long done = end - i > 1 ? purge_vec(&r[i], end - i) : -ENOSYS;

		/* The kernel goes in order and stops at the first range it
		 * refuses: the ranges before it are done. */
		for (; done >= 0 && i < end && (size_t)done >= r[i].len; i++) {
			done -= (long)r[i].len;
			if (err)
				err[i] = 0;
		}
		if (i < end) {
			/* The range that stopped it, or no vector: alone,
			 * for its own result. */
			int e = os_purge(r[i].base, r[i].len);

			if (err)
				err[i] = e;
			i++;
		}
	}
}

/* The same advice as a purge; on a file's pages it only unmaps them. */
int
os_drop_text(const void *p, size_t size)
{
	return os_purge((void *)p, size);
}

int
os_unlock(void *p, size_t size)
{
	long r = os_syscall(SYS_munlock, p, size, 0, 0, 0, 0);
	return r ? (int)-r : 0;
}

int
os_resident(void *p, size_t size, unsigned char *vec)
{
	long r = os_syscall(SYS_mincore, p, size, vec, 0, 0, 0);
	return r ? (int)-r : 0;
}

int
os_advise_huge(void *p, size_t size, bool huge)
{
	long r = os_syscall(SYS_madvise, p, size,
			    huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE, 0, 0, 0);
	return r ? (int)-r : 0;
}

/* The PMD size's own setting, where the kernel has one, else the global
 * one; no such file: no transparent huge pages. Read once (zero_boot, so
 * that a sandbox the program enters later sees no open): the mode is the
 * administrator's, and a change while we run only costs our advice its
 * effect. */
bool
os_thp_always(void)
{
	static int always = -1;
	int a = __atomic_load_n(&always, __ATOMIC_RELAXED);
	char buf[128] = "";

	if (a >= 0)
		return a;
	if (os_read_file("/sys/kernel/mm/transparent_hugepage/"
			 "hugepages-2048kB/enabled", buf, sizeof(buf)) <= 0 ||
	    strstr(buf, "[inherit]") != NULL)
		(void)os_read_file("/sys/kernel/mm/transparent_hugepage/enabled",
				   buf, sizeof(buf));
	a = strstr(buf, "[always]") != NULL;
	__atomic_store_n(&always, a, __ATOMIC_RELAXED);
	return a;
}

/*
 * Whether a move of the same size to a fixed address takes a range of
 * several mappings (Linux 6.17 onwards). Before, it refuses one with
 * EFAULT after unmapping the destination: a hole that another thread's
 * mmap may take and a later fixed move would clobber. Probed once, with
 * a range of two mappings of our own; of what a move leaves, only what
 * is ours for certain is unmapped.
 */
bool
os_remap_moves_several(void)
{
	static int several = -1;
	int s = __atomic_load_n(&several, __ATOMIC_RELAXED);
	size_t pg = ZP_PAGE_SIZE;
	long p, r;

	if (s >= 0)
		return s;
	p = sys_mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (is_err(p))
		return false;		/* ask again later */
	s = 0;
	if (os_syscall(SYS_mprotect, p + pg, pg, PROT_READ, 0, 0, 0) == 0) {
		r = os_syscall(SYS_mremap, p, 2 * pg, 2 * pg,
			       MREMAP_MAYMOVE | MREMAP_FIXED, p + 2 * pg, 0);
		s = r == p + 2 * (long)pg;
	}
	if (s)
		os_syscall(SYS_munmap, p + 2 * pg, 2 * pg, 0, 0, 0, 0);
	else
		os_syscall(SYS_munmap, p, 2 * pg, 0, 0, 0, 0);
	__atomic_store_n(&several, s, __ATOMIC_RELAXED);
	return s;
}

/* msync fails with ENOMEM where part of the range is not mapped; on
 * anonymous memory MS_ASYNC does nothing else. */
bool
os_range_mapped(void *p, size_t size)
{
	return os_syscall(SYS_msync, p, size, MS_ASYNC, 0, 0, 0) == 0;
}

int
os_fault_huge(void *p, size_t size)
{
	int err = os_advise_huge(p, size, true);

	if (err)
		return err;
	/* A write, not a read: a read maps the huge zero page (or, where
	 * the kernel has none, a page of its own), not a huge page. */
	for (size_t off = 0; off < size; off += OS_HUGE_PAGE_SIZE)
		*((volatile char *)p + off) = 0;
	(void)os_advise_huge(p, size, false);
	return 0;
}

int
os_map(size_t size, bool *zero, void **out)
{
	if (fault_due())
		return ENOMEM;
	long r = sys_mmap(NULL, size, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (is_err(r))
		return (int)-r;
	*out = (void *)r;
	if (zero)
		*zero = true;
	return 0;
}

int
os_unmap(void *p, size_t size)
{
	long r = os_syscall(SYS_munmap, p, size, 0, 0, 0, 0);
	return r ? (int)-r : 0;
}

int
os_remap(void *old, size_t old_size, size_t new_size, void *fixed,
	 bool may_move, void **out)
{
	int flags = (may_move || fixed ? MREMAP_MAYMOVE : 0) |
		    (fixed ? MREMAP_FIXED : 0);

	if (new_size > old_size && fault_due())
		return ENOMEM;
	long r = os_syscall(SYS_mremap, old, old_size, new_size, flags, fixed,
			    0);
	if (is_err(r))
		return (int)-r;
	*out = (void *)r;
	return 0;
}

void *
os_mmap_raw(void *addr, size_t len, int prot, int flags, int fd, off_t off,
	    int *err)
{
	long r = sys_mmap(addr, len, prot, flags, fd, off);

	if (is_err(r)) {
		*err = (int)-r;
		return MAP_FAILED;
	}
	return (void *)r;
}

int
os_munmap_raw(void *addr, size_t len)
{
	return (int)-os_syscall(SYS_munmap, addr, len, 0, 0, 0, 0);
}

void *
os_mremap_raw(void *old, size_t old_size, size_t new_size, int flags,
	      void *new_addr, int *err)
{
	long r = os_syscall(SYS_mremap, old, old_size, new_size, flags,
			    new_addr, 0);
	if (is_err(r)) {
		*err = (int)-r;
		return MAP_FAILED;
	}
	return (void *)r;
}

int
os_mbind_node(void *p, size_t size, int node)
{
	unsigned long mask[4] = { 0 };

	if (node < 0 || node >= (int)(sizeof(mask) * 8))
		return EINVAL;
	mask[node / 64] = 1UL << (node % 64);
	return (int)-os_syscall(SYS_mbind, p, size, MPOL_PREFERRED, mask,
				sizeof(mask) * 8, 0);
}

/* Parses sysfs's "0" or "0-3" or "0,2-3" and counts the nodes. */
zp_boot_text unsigned
os_numa_node_count(void)
{
	char buf[256];
	unsigned count = 0;

	if (os_read_file("/sys/devices/system/node/online", buf,
			 sizeof(buf)) <= 0)
		return 1;
	for (const char *s = buf; *s && *s != '\n';) {
		unsigned lo = 0, hi;
		while (*s >= '0' && *s <= '9')
			lo = lo * 10 + (unsigned)(*s++ - '0');
		hi = lo;
		if (*s == '-') {
			hi = 0;
			for (s++; *s >= '0' && *s <= '9'; s++)
				hi = hi * 10 + (unsigned)(*s - '0');
		}
		count += hi >= lo ? hi - lo + 1 : 1;
		if (*s == ',')
			s++;
		else
			break;
	}
	return count ? count : 1;
}

unsigned
os_current_node(void)
{
	unsigned cpu = 0, node = 0;

	if (os_syscall(SYS_getcpu, &cpu, &node, NULL, 0, 0, 0) != 0)
		return 0;
	return node;
}

void
os_futex_wait(uint32_t *word, uint32_t val)
{
	os_syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, 0, 0);
}

void
os_futex_wake(uint32_t *word, int n)
{
	os_syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, 0, 0, 0);
}

long
os_write(int fd, const void *buf, size_t len)
{
	long r;

	do
		r = os_syscall(SYS_write, fd, buf, len, 0, 0, 0);
	while (r == -EINTR);
	return r;
}

long
os_read_file(const char *path, char *buf, size_t size)
{
	long fd = os_syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC,
			     0, 0, 0);
	long n = 0, r;

	if (fd < 0)
		return fd;
	while (n + 1 < (long)size) {
		r = os_syscall(SYS_read, fd, buf + n, size - 1 - (size_t)n, 0,
			       0, 0);
		if (r == -EINTR)
			continue;
		if (r <= 0)
			break;
		n += r;
	}
	buf[n] = '\0';
	os_syscall(SYS_close, fd, 0, 0, 0, 0, 0);
	return n;
}

int
os_open_write(const char *path, int *fd)
{
	long r = os_syscall(SYS_openat, AT_FDCWD, path,
			    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644, 0,
			    0);
	if (r < 0)
		return (int)-r;
	*fd = (int)r;
	return 0;
}

void
os_close(int fd)
{
	os_syscall(SYS_close, fd, 0, 0, 0, 0, 0);
}

/* Numbers for our descriptors: just under the soft limit, and no higher
 * than this: the kernel's table then grows to 1024 slots at most (once a
 * process, waiting for an RCU grace period when threads share it). */
#define FD_HIGH_TOP	1024
#define FD_HIGH_SPAN	64
/* Below this soft limit, every number is the program's: with `ulimit -n
 * 8` the engine's five would leave Python three. What needs one goes
 * without (reclaim; the pagemap's scans, for memset). */
#define FD_KEEP_MIN	64

/*
 * open() gives the lowest free number (POSIX), and programs count on it:
 * a daemon closes 0, 1 and 2 and opens /dev/null three times. A
 * descriptor we keep (userfaultfd, pagemap, the peek pipe) lives near
 * the top of the first 1024 numbers instead, where nobody expects one.
 */
static uint64_t
fd_soft_limit(void)
{
	struct { uint64_t cur, max; } lim;

	if (os_syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, (long)&lim, 0,
		       0) != 0)
		return UINT64_MAX;
	return lim.cur;
}

bool
os_fd_can_keep(void)
{
	return fd_soft_limit() >= FD_KEEP_MIN;
}

int
os_fd_keep(int fd, int *out)
{
	uint64_t cur = fd_soft_limit();
	long top, want, nfd;

	*out = fd;
	if (cur < FD_KEEP_MIN) {
		os_close(fd);
		*out = -1;
		return EMFILE;
	}
	top = cur < FD_HIGH_TOP ? (long)cur : FD_HIGH_TOP;
	want = top - (top / 2 < FD_HIGH_SPAN ? top / 2 : FD_HIGH_SPAN);
	if (want <= fd)
		return 0;
	nfd = os_syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, want, 0, 0, 0);
	if (nfd < 0)
		return 0;
	os_close(fd);
	*out = (int)nfd;
	return 0;
}

int
os_fd_opened(long r, bool keep, int *out)
{
	*out = (int)r;
	return keep ? os_fd_keep((int)r, out) : 0;
}

/*
 * The vDSO's own clock_gettime, called directly: libc's wrapper is all it
 * adds, and it lies in a 64 KiB window of libc's text that a program that
 * reads no clock itself never maps, which fault-around then maps whole
 * (64 to 128 KiB more resident in a small C program, by where libc lands).
 */
static int (*vdso_clock)(clockid_t, struct timespec *);

#if defined(__x86_64__)
#define VDSO_CLOCK	"__vdso_clock_gettime"
#elif defined(__aarch64__)
#define VDSO_CLOCK	"__kernel_clock_gettime"
#endif

zp_boot_text void
os_clock_boot(void)
{
#ifdef VDSO_CLOCK
	void *fn = os_vdso_symbol(VDSO_CLOCK);
#else
	void *fn = NULL;
#endif

	__atomic_store_n(&vdso_clock, (int (*)(clockid_t, struct timespec *))fn,
			 __ATOMIC_RELAXED);
}

bool
os_clock_is_vdso(void)
{
	return __atomic_load_n(&vdso_clock, __ATOMIC_RELAXED) != NULL;
}

uint64_t
os_now_ns(void)
{
	int (*fn)(clockid_t, struct timespec *) =
		__atomic_load_n(&vdso_clock, __ATOMIC_RELAXED);
	struct timespec ts;

	if (zp_unlikely(fn == NULL) || fn(CLOCK_MONOTONIC, &ts) != 0)
		clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int
os_gettid(void)
{
	return (int)os_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0);
}

int
os_getpid(void)
{
	return (int)os_syscall(SYS_getpid, 0, 0, 0, 0, 0, 0);
}

uint64_t
os_random64(void)
{
	uint64_t v = 0;

	if (os_syscall(SYS_getrandom, &v, sizeof(v), GRND_NONBLOCK, 0, 0, 0) ==
	    (long)sizeof(v))
		return v;
	/* No entropy yet (early boot): a clock and address mix is still
	 * unpredictable enough to keep freelist pointers from being forged
	 * by accident. */
	v = os_now_ns() ^ ((uint64_t)(uintptr_t)&v << 17);
	v ^= v >> 33;
	v *= 0xff51afd7ed558ccdULL;
	return v ^ (v >> 29);
}

size_t
os_rss_bytes(void)
{
	char buf[128];
	size_t field = 0, rss = 0;
	const char *s = buf;

	if (os_read_file("/proc/self/statm", buf, sizeof(buf)) <= 0)
		return 0;
	/* statm: size resident shared ... in pages; we want the second. */
	for (; *s && field < 2; s++) {
		if (*s == ' ') {
			field++;
			continue;
		}
		if (field == 1)
			rss = rss * 10 + (size_t)(*s - '0');
	}
	return rss * ZP_PAGE_SIZE;
}

/* --- the memory the process may use ---------------------------------------- */

/* A decimal at s (after blanks), or 0 for "max" and anything else. */
static size_t
parse_size(const char *s)
{
	size_t v = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	for (; *s >= '0' && *s <= '9'; s++)
		v = v * 10 + (size_t)(*s - '0');
	return v;
}

/* A "Key:   N kB" line of /proc/meminfo, in bytes; 0 if absent. */
static size_t
meminfo_field(const char *buf, const char *key)
{
	const char *s = strstr(buf, key);

	return s ? parse_size(s + strlen(key)) << 10 : 0;
}

/* One read of status: the kernel computes both from the same counters
 * (statm and getrusage, read apart, differ by up to a MiB). */
int
os_rss_and_peak(size_t *rss, size_t *peak)
{
	char buf[2048];

	if (os_read_file("/proc/self/status", buf, sizeof(buf)) <= 0)
		return EIO;
	*rss = meminfo_field(buf, "VmRSS:");
	*peak = meminfo_field(buf, "VmHWM:");
	return *peak ? 0 : EIO;
}

static size_t
read_size_file(const char *dir, const char *file)
{
	char path[192], buf[32];
	size_t n = strlen(dir);

	if (n + 1 + strlen(file) >= sizeof(path))
		return 0;
	memcpy(path, dir, n);
	path[n] = '/';
	strcpy(path + n + 1, file);
	if (os_read_file(path, buf, sizeof(buf)) <= 0)
		return 0;
	return parse_size(buf);
}

/*
 * The two layouts: cgroup v2 ("0::/a/b" in /proc/self/cgroup, mounted at
 * /sys/fs/cgroup, or at /sys/fs/cgroup/unified beside v1 controllers)
 * and v1's memory controller ("N:...memory...:/a/b", mounted at
 * /sys/fs/cgroup/memory). v1 reports "no limit" as a huge number.
 */
struct cgroup_kind {
	const char *roots[2];
	const char *files[2];		/* limits, tightest wins */
	const char *usage;
};

static const struct cgroup_kind cgroup_v2 = {
	{ "/sys/fs/cgroup", "/sys/fs/cgroup/unified" },
	{ "memory.high", "memory.max" }, "memory.current",
};
static const struct cgroup_kind cgroup_v1 = {
	{ "/sys/fs/cgroup/memory", NULL },
	{ "memory.limit_in_bytes", NULL }, "memory.usage_in_bytes",
};

#define CGROUP_NO_LIMIT	((size_t)1 << 60)

static const char *
next_line(const char *s)
{
	const char *e = strchr(s, '\n');

	return e ? e + 1 : NULL;
}

/* The path of this process's cgroup of the given kind, or NULL. */
static zp_boot_text const char *
cgroup_path(const char *buf, bool v1, size_t *len)
{
	for (const char *s = buf; s && *s; s = next_line(s)) {
		const char *c1 = strchr(s, ':'), *c2, *e;

		if (!c1 || !(c2 = strchr(c1 + 1, ':')))
			return NULL;
		e = strchr(c2, '\n');
		if (v1 ? (memmem(c1 + 1, (size_t)(c2 - c1 - 1), "memory", 6) !=
			  NULL)
		       : (c2 == c1 + 1 && s[0] == '0')) {
			*len = e ? (size_t)(e - c2 - 1) : strlen(c2 + 1);
			return c2 + 1;
		}
	}
	return NULL;
}

/* Walks from the process's cgroup up to root: the smallest limit. */
static zp_boot_text void
cgroup_walk(const struct cgroup_kind *k, const char *root, const char *path,
	    size_t len, struct os_memory_limit *out)
{
	char dir[sizeof(out->dir)];
	size_t rlen = strlen(root);

	if (rlen + len + 1 > sizeof(dir))
		return;
	memcpy(dir, root, rlen);
	memcpy(dir + rlen, path, len);
	dir[rlen + len] = '\0';
	while (strlen(dir) > rlen && dir[strlen(dir) - 1] == '/')
		dir[strlen(dir) - 1] = '\0';
	for (;;) {
		for (unsigned i = 0; i < 2 && k->files[i]; i++) {
			size_t v = read_size_file(dir, k->files[i]);

			if (v && v < CGROUP_NO_LIMIT &&
			    (!out->bytes || v < out->bytes)) {
				out->bytes = v;
				out->source = OS_LIMIT_CGROUP;
				out->usage = k->usage;
				strcpy(out->dir, dir);
				out->file = k->files[i];
			}
		}
		char *slash = strrchr(dir, '/');

		if (!slash || (size_t)(slash - dir) < rlen)
			break;
		*slash = '\0';
	}
}

static void
cgroup_limit(struct os_memory_limit *out)
{
	char buf[1024];
	const char *path;
	size_t len;

	if (os_read_file("/proc/self/cgroup", buf, sizeof(buf)) <= 0)
		return;
	if ((path = cgroup_path(buf, false, &len)) != NULL)
		for (unsigned i = 0; i < 2; i++)
			cgroup_walk(&cgroup_v2, cgroup_v2.roots[i], path, len,
				    out);
	if ((path = cgroup_path(buf, true, &len)) != NULL)
		cgroup_walk(&cgroup_v1, cgroup_v1.roots[0], path, len, out);
}

zp_boot_text void
os_memory_limit(struct os_memory_limit *out)
{
	char buf[2048];

	*out = (struct os_memory_limit){ .source = OS_LIMIT_RAM };
	cgroup_limit(out);
	if (os_read_file("/proc/meminfo", buf, sizeof(buf)) > 0) {
		size_t ram = meminfo_field(buf, "MemTotal:");

		if (ram && (!out->bytes || ram < out->bytes)) {
			out->bytes = ram;
			out->source = OS_LIMIT_RAM;
		}
	}
}

size_t
os_memory_usage(const struct os_memory_limit *l)
{
	char buf[2048];

	switch (l->source) {
	case OS_LIMIT_CGROUP:
		return read_size_file(l->dir, l->usage);
	case OS_LIMIT_GIVEN:
		return os_rss_bytes();
	default:
		if (os_read_file("/proc/meminfo", buf, sizeof(buf)) <= 0)
			return 0;
		return meminfo_field(buf, "MemTotal:") -
		       ZP_MIN(meminfo_field(buf, "MemTotal:"),
			      meminfo_field(buf, "MemAvailable:"));
	}
}

/* --- probing memory we do not own ------------------------------------------ */

/*
 * Copies len bytes from addr, or fails cleanly when any of them is not
 * readable: process_vm_readv on ourselves reports EFAULT where a load
 * would fault. Where seccomp forbids it, mincore tells mapped from not
 * (a PROT_NONE page still passes, which only such filters leave open).
 */
bool
os_read_mem(const void *addr, void *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)addr, len };
	uintptr_t s = (uintptr_t)addr & ~(uintptr_t)(ZP_PAGE_SIZE - 1);
	unsigned char vec[2];
	long r = os_syscall(SYS_process_vm_readv, os_getpid(), &local, 1,
			    &remote, 1, 0);

	if (r == (long)len)
		return true;
	if (r != -ENOSYS && r != -EPERM)
		return false;
	if (len == 0 || (uintptr_t)addr + len - s > sizeof(vec) * ZP_PAGE_SIZE)
		return false;
	if (os_syscall(SYS_mincore, s, (uintptr_t)addr + len - s, vec, 0, 0,
		       0) != 0)
		return false;
	memcpy(buf, addr, len);
	return true;
}

/* Field 47 of /proc/self/stat, counted after the command name, which may
 * itself hold spaces and parentheses. */
static uintptr_t
start_brk(void)
{
	char buf[1024];
	const char *s;
	uintptr_t v = 0;
	int field = 2;

	if (os_read_file("/proc/self/stat", buf, sizeof(buf)) <= 0)
		return 0;
	s = strrchr(buf, ')');
	if (!s)
		return 0;
	for (; *s && field < 47; s++)
		if (*s == ' ')
			field++;
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (uintptr_t)(*s++ - '0');
	return v;
}

void
os_brk_range(uintptr_t *start, uintptr_t *end)
{
	*start = start_brk();
	*end = (uintptr_t)os_syscall(SYS_brk, 0, 0, 0, 0, 0, 0);
	if (*start == 0 || *end < *start)
		*start = *end;
}
