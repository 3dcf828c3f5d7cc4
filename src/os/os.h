/*
 * os.h - every operating-system detail the allocator uses.
 * The rest of zpmalloc reads as allocator logic: it asks for ranges to be
 * reserved, committed, purged or given back, and learns whether fresh
 * memory is known to read as zero. Calls return 0 or a positive errno value
 * (never -1 plus errno) and leave the caller's errno untouched, because the
 * shim must preserve errno on success.
 * (The userfaultfd and pagemap calls of the zero-page engine live beside
 * this file in os_uffd.h.)
 */
#ifndef ZP_OS_OS_H
#define ZP_OS_OS_H

#include <sys/types.h>

#include "base/util.h"

/* Raw system call: returns the kernel's result (negative errno on failure)
 * without touching errno. */
long os_syscall6(long nr, long a, long b, long c, long d, long e, long f);
#define os_syscall(nr, a, b, c, d, e, f) \
	os_syscall6((nr), (long)(a), (long)(b), (long)(c), (long)(d), \
		    (long)(e), (long)(f))

/* --- address space ------------------------------------------------------ */

enum os_reserve_flags {
	OS_RESERVE_LOW32 = 1 << 0, /* whole range below 4 GiB */
};

/*
 * Reserve [*out, *out + size) as PROT_NONE, aligned to align (a power of
 * two, at least a page). Costs no commit charge. Returns ENOMEM when the
 * address space (or RLIMIT_AS) cannot hold it.
 */
int os_reserve(size_t size, size_t align, unsigned flags, void **out);
/*
 * Picks a window [*out, *out + size), aligned to align, in which nothing
 * is mapped now and the kernel is unlikely to place mappings of its own
 * (far from both the heap and the mmap area), but maps none of it: the
 * caller maps pieces with os_map_fixed as it needs them, so the unused
 * part costs no address space. Windows are never handed out twice.
 * OS_RESERVE_LOW32 keeps the window below 4 GiB. ENOMEM when no window is
 * found.
 */
int os_reserve_window(size_t size, size_t align, unsigned flags, void **out);
/* Maps fresh read-write pages at exactly p unless something is mapped
 * there already (EEXIST); ENOMEM when a limit refuses. Fresh pages read as
 * zero; os_unmap gives them back, address space included. */
int os_map_fixed(void *p, size_t size);
/* Fresh read-write pages at exactly p, replacing whatever is mapped there
 * (MAP_FIXED); ENOMEM when a limit refuses. */
int os_map_over(void *p, size_t size);
/* A move of the same size to a fixed address takes a range of several
 * mappings (Linux 6.17+); probed once. */
bool os_remap_moves_several(void);
/* Every page of [p, p + size) is mapped. */
bool os_range_mapped(void *p, size_t size);
/* Make reserved pages readable and writable. Fresh pages read as zero. */
int os_commit(void *p, size_t size);
/* Drop the contents of committed pages (MADV_DONTNEED): RSS goes, the
 * range stays usable and reads as zero afterwards. */
int os_purge(void *p, size_t size);
/* A range to purge, laid out as struct iovec. */
struct os_range {
	void *base;
	size_t len;
};
/*
 * Purges r[0..n) (MADV_DONTNEED each); err[i], when err is not NULL, gets
 * each range's result (0 or an errno). Where the kernel allows it, one
 * system call and one TLB flush for up to 1024 ranges, not one each.
 */
void os_purge_ranges(const struct os_range *r, size_t n, int *err);
/* At boot: whether the kernel takes vectors and no seccomp filter is on. */
void os_purge_ranges_boot(void);
/* A seccomp filter is about to go on: one call a range from now on (a
 * filter might kill the process for the vector call). Waits for calls in
 * flight. */
void os_purge_ranges_forbid(void);
bool os_purge_ranges_batched(void);
/* Unmap the pages of [p, p + size) of our own text from this process
 * (MADV_DONTNEED on a mapping of the library's file): RSS goes, the
 * pages stay in the page cache, and running them again faults them back
 * in. (A debugger's breakpoint written there goes with them.) */
int os_drop_text(const void *p, size_t size);
/* Unlock pages a program's mlockall locked (munlock): MADV_DONTNEED
 * refuses locked ones. */
int os_unlock(void *p, size_t size);
/* Which pages of [p, p + size) are resident (mincore): vec gets one byte
 * per page, bit 0 set for a resident one. */
int os_resident(void *p, size_t size, unsigned char *vec);
/* Hint that a span will be touched densely (THP) or sparsely. */
int os_advise_huge(void *p, size_t size, bool huge);
/* Faults in [p, p + size), fresh pages that read as zero and start at a
 * huge page boundary, on transparent huge pages where the kernel has
 * them (a 4 KiB page each where it has none), and leaves the span
 * advised against them, so that khugepaged never collapses what is later
 * purged in pieces back into whole huge pages. The contents stay zero.
 * Returns 0, or madvise's errno, touching nothing, when the kernel takes
 * no such advice (built without transparent huge pages, or a filter
 * refuses madvise). */
int os_fault_huge(void *p, size_t size);
/* Do faults in memory without advice take transparent huge pages (mode
 * "always")? */
bool os_thp_always(void);
#define OS_HUGE_PAGE_SIZE	((size_t)2 << 20)	/* a PMD's span */

/* A fresh private anonymous read-write mapping; *zero says its contents are
 * known zero (always true for fresh anonymous memory). */
int os_map(size_t size, bool *zero, void **out);
int os_unmap(void *p, size_t size);
/* mremap(2) with MREMAP_MAYMOVE unless fixed is non-NULL. */
int os_remap(void *old, size_t old_size, size_t new_size, void *fixed,
	     bool may_move, void **out);
/* Pass-through mmap for the shim's interposed mmap: returns the kernel's
 * result, with *err set to the errno value on failure. */
void *os_mmap_raw(void *addr, size_t len, int prot, int flags, int fd,
		  off_t off, int *err);
int os_munmap_raw(void *addr, size_t len);
void *os_mremap_raw(void *old, size_t old_size, size_t new_size, int flags,
		    void *new_addr, int *err);

/* Bind a range to a NUMA node (MPOL_PREFERRED); ENOSYS where the kernel
 * has no NUMA support. */
int os_mbind_node(void *p, size_t size, int node);
/* Number of online NUMA nodes (1 when sysfs cannot tell). */
unsigned os_numa_node_count(void);
/* The node of the CPU the caller runs on now (0 when unknown). */
unsigned os_current_node(void);

/* --- the memory the process may use ---------------------------------------- */

enum os_limit_source {
	OS_LIMIT_RAM = 0,	/* no tighter limit: physical memory */
	OS_LIMIT_CGROUP,	/* cgroup v2 memory.high or memory.max */
	OS_LIMIT_GIVEN,		/* set by the caller (ZPMALLOC_MEMORY_LIMIT) */
};

struct os_memory_limit {
	size_t bytes;		/* the limit; 0 when even RAM is unknown */
	int source;		/* enum os_limit_source */
	/* cgroup: the directory whose file set the limit, and which file;
	 * its memory.current is the usage that counts against it. */
	char dir[160];
	const char *file;	/* "memory.high", "memory.max" (v2) or
				 * "memory.limit_in_bytes" (v1) */
	const char *usage;	/* "memory.current" or ...usage_in_bytes */
};

/*
 * The tightest of memory.high and memory.max of this process's cgroup v2
 * and its ancestors (from /proc/self/cgroup, under /sys/fs/cgroup), or of
 * memory.limit_in_bytes where the memory controller is cgroup v1, and of
 * physical memory. Reads a few small files; never allocates.
 */
void os_memory_limit(struct os_memory_limit *out);
/* Bytes in use against l: the cgroup's memory.current; for RAM, what
 * is not MemAvailable; for a given limit, this process's RSS. 0 when
 * unreadable. */
size_t os_memory_usage(const struct os_memory_limit *l);

/* --- test-only fault injection ----------------------------------------- */

/* Make the nth os_reserve/os_reserve_window/os_commit/os_map/os_map_fixed
 * call from now fail with ENOMEM (n = 1: the next one); 0 disarms. Lets
 * tests drive every out-of-memory path without exhausting the machine. */
void os_fault_inject_nth(unsigned long n);
/* The same, but from the nth call on every one fails until disarmed
 * (os_fault_inject_nth(0)): the retries after a failure fail too. */
void os_fault_inject_from(unsigned long n);
/* Fail every map/commit/reserve while armed (a zone that cannot grow). */
void os_fault_inject_all(bool on);

/* --- misc --------------------------------------------------------------- */

/* Process-private futex: sleep while *word == val (a wake, a signal or a
 * changed value ends it); wake up to n sleepers. */
void os_futex_wait(uint32_t *word, uint32_t val);
void os_futex_wake(uint32_t *word, int n);

long os_write(int fd, const void *buf, size_t len);
/* Read a small file (sysfs, procfs) into buf, NUL-terminated. Returns the
 * length or a negative errno. */
long os_read_file(const char *path, char *buf, size_t size);
int os_open_write(const char *path, int *fd);
void os_close(int fd);
/* A descriptor to keep: *out is fd or a copy of it at a high number (fd
 * then closed), as a descriptor we keep must not take a number the
 * program counts on getting. EMFILE (fd closed) under a descriptor limit
 * too low to spare one. */
int os_fd_keep(int fd, int *out);
/* An open's result r (a descriptor) into *out: kept (os_fd_keep) when
 * keep, else as it is (a probe's, closed at once by its caller). */
int os_fd_opened(long r, bool keep, int *out);
/* Whether the limit allows one: asked before opening, so that even a
 * descriptor closed at once never takes one of the program's few. */
bool os_fd_can_keep(void);
/* CLOCK_MONOTONIC in ns. Through the vDSO once os_clock_boot found it. */
uint64_t os_now_ns(void);
/* Finds the vDSO's clock_gettime (os_vdso_symbol); before, or where there
 * is none (valgrind, another architecture), os_now_ns calls libc's. */
void os_clock_boot(void);
bool os_clock_is_vdso(void);
int os_gettid(void);
int os_getpid(void);
/* Cryptographic randomness for freelist keys; falls back to a clock mix. */
uint64_t os_random64(void);
/* Resident set size of this process in bytes, from /proc/self/statm. */
size_t os_rss_bytes(void);
/* The resident set now and the most it has been (the kernel's high-water
 * mark), in bytes, from /proc/self/status. */
int os_rss_and_peak(size_t *rss, size_t *peak);

/* Copies len bytes from addr if every one is readable; false otherwise
 * (never faults). For judging pointers the program hands us. */
bool os_read_mem(const void *addr, void *buf, size_t len);
/* The program break's range [start, end): glibc's main heap. */
void os_brk_range(uintptr_t *start, uintptr_t *end);

/* Address of a function libc.so.6 itself defines (its default version),
 * found without symbol interposition and without allocating; NULL if libc
 * is not loaded or lacks it. */
void *os_libc_symbol(const char *name);
/* The same for the first loaded library whose file name (without its
 * directory) is dso, e.g. "libstdc++.so.6": never an interposed definition
 * of name, so never ours. */
void *os_dso_symbol(const char *dso, const char *name);
/* A function the vDSO defines, read from the image the kernel maps
 * (AT_SYSINFO_EHDR), taking no lock: NULL when there is no vDSO or it
 * has no sysv hash table to count its symbols by. */
void *os_vdso_symbol(const char *name);

#endif /* ZP_OS_OS_H */
