/*
 * os_uffd.h - userfaultfd and /proc/self/pagemap for the zero-page engine.
 * Debian's kernel headers are 6.1; UFFDIO_MOVE and PAGEMAP_SCAN arrived in
 * 6.7/6.8, so os_uffd.c defines what it needs from the kernel's UAPI values
 * and the engine probes at run time whether the kernel has them.
 * Like os.h: calls return 0 or a positive errno value and leave errno
 * alone. Nothing here creates threads or allocates.
 */
#ifndef ZP_OS_OS_UFFD_H
#define ZP_OS_OS_UFFD_H

#include "base/util.h"

/* userfaultfd feature bits the engine asks about (kernel UAPI values). */
#define OS_UFFD_FEATURE_SIGBUS	(1ULL << 7)
#define OS_UFFD_FEATURE_MOVE	(1ULL << 16)

/* PAGEMAP_SCAN page categories (linux/fs.h, 6.7+). */
#define OS_PAGE_IS_PRESENT	(1ULL << 3)
#define OS_PAGE_IS_SWAPPED	(1ULL << 4)
#define OS_PAGE_IS_PFNZERO	(1ULL << 5)
#define OS_PAGE_IS_HUGE		(1ULL << 6)

/*
 * A new userfaultfd (O_CLOEXEC, non-blocking reads): the userfaultfd(2) system
 * call, and where that is refused, /dev/userfaultfd with USERFAULTFD_IOC_NEW.
 * user_mode_only asks for UFFD_USER_MODE_ONLY (a probe only: program memory
 * must never be registered with it, kernel accesses would EFAULT).
 * *via says which way worked ("syscall" or "dev"). keep: one the engine
 * keeps (os_fd_keep places it, or refuses it: EMFILE); a probe's is not.
 */
int os_uffd_open(bool user_mode_only, bool keep, int *fd,
		 const char **via);
/* UFFDIO_API handshake asking for features; *have gets the kernel's whole
 * feature mask when it accepts. EINVAL when a feature is unknown. */
int os_uffd_api(int fd, uint64_t features, uint64_t *have);
/* Register / unregister [p, p + len) for MISSING faults. */
int os_uffd_register_missing(int fd, void *p, size_t len);
int os_uffd_unregister(int fd, void *p, size_t len);
/* Wake the threads waiting on faults in [p, p + len). */
void os_uffd_wake(int fd, void *p, size_t len);
/*
 * UFFDIO_MOVE len bytes from src to dst (dst must be unmapped and inside a
 * range registered with fd). *moved gets the bytes moved even on failure.
 * EBUSY: a page is pinned or shared (fork, KSM); ENOENT: src not present;
 * EEXIST: dst present; EAGAIN: raced, retry.
 */
int os_uffd_move(int fd, void *dst, void *src, size_t len, bool wake,
		 size_t *moved);
/* Map the shared zero page over [p, p + len) (missing ptes only); EEXIST
 * when something is already mapped there. */
int os_uffd_zeropage(int fd, void *p, size_t len, bool wake);
/* UFFDIO_COPY: install a copy of src's len bytes at dst (missing ptes of
 * a registered range), whatever dst's protection or mlock state. EEXIST
 * when something is mapped there already, ENOENT when dst is gone. */
int os_uffd_copy(int fd, void *dst, const void *src, size_t len, bool wake);

/* One userfaultfd message, decoded. */
struct os_uffd_fault {
	uint64_t addr;		/* faulting address */
	uint64_t flags;		/* UFFD_PAGEFAULT_FLAG_* */
	bool is_fault;		/* false: an event we did not ask for */
};
/* The next message; EAGAIN when none is waiting (EINTR is retried). */
int os_uffd_read(int fd, struct os_uffd_fault *out);

/* /proc/self/pagemap, O_CLOEXEC. */
int os_pagemap_open(int *fd);

struct os_page_region {
	uint64_t start, end;	/* [start, end) */
	uint64_t categories;	/* OS_PAGE_IS_* */
};

/* Which pages a PAGEMAP_SCAN reports. */
struct os_scan_match {
	uint64_t all;		/* categories a page must have */
	uint64_t any;		/* at least one of these (0: any) */
	uint64_t none;		/* categories a page must not have */
	uint64_t report;	/* categories to report (nonzero) */
};

/*
 * PAGEMAP_SCAN over [start, end) (page-aligned): pages matching m,
 * reported with the categories in m->report. Fills up to
 * n regions, sets *nr and *walk_end (where the kernel stopped; when *nr < n
 * the walk is complete even if *walk_end is stale - the 6.18 quirk).
 * ENOTTY/EINVAL when the kernel has no PAGEMAP_SCAN.
 */
int os_pagemap_scan(int fd, uintptr_t start, uintptr_t end,
		    const struct os_scan_match *m, struct os_page_region *vec,
		    size_t n, size_t *nr, uintptr_t *walk_end);

/* madvise(2) for the shim's interposed madvise: the kernel's result. */
int os_madvise_raw(void *p, size_t len, int advice);

/* Copy of our own memory with process_vm_readv (the fallback when no
 * peek pipe can be had): each bytes from every src[i] (nr <= 256) into
 * dst + i * each. A range that has become unreadable (munmap, PROT_NONE)
 * stops the copy there with EFAULT instead of raising a signal; *done
 * gets the bytes copied. */

int os_read_self_gather(void *dst, const uintptr_t *src, size_t nr,
			size_t each, size_t *done);

/*
 * Fault-safe reads of our own memory through a pipe: writev copies from
 * the source with copy_from_user (no page pinning, unlike
 * process_vm_readv, and about 3x cheaper here), read brings the bytes
 * back. An unreadable source shortens the copy instead of raising a
 * signal. The pipe is private to one process: re-open it after fork.
 */
int os_peek_open(int fds[2]);
/* each bytes from every src[i] (nr <= 512, nr * each <= 256 KiB) into
 * dst + i * each; *done gets the bytes copied. */
int os_peek(const int fds[2], void *dst, const uintptr_t *src, size_t nr,
	    size_t each, size_t *done);

/* Identity of an open file (device and inode), so a descriptor the
 * program closed and reused under us is noticed before we write to it. */
int os_fd_ident(int fd, uint64_t *ident);

/* sched_yield, for spin-waits on the engine's slow paths. */
void os_yield(void);
/* Sleep for ns nanoseconds (a background thread's pause). */
void os_sleep_ns(uint64_t ns);

#endif /* ZP_OS_OS_UFFD_H */
