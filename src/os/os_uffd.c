/*
 * os_uffd.c - userfaultfd, PAGEMAP_SCAN and self-reads for the zero engine.
 * Owns:  nothing global; callers keep the descriptors.
 * Locks: none. Raw system calls only, so errno survives and nothing here
 *        can re-enter the allocator.
 * Path:  uffd_probe -> os_uffd_open -> os_uffd_api;
 *        reclaim_chunk -> os_uffd_register_missing -> os_uffd_move ...
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>

#include "os/os.h"
#include "os/os_uffd.h"

/* UAPI values newer than Debian's 6.1 headers (include/uapi/linux/
 * userfaultfd.h and fs.h of 6.8+); the layouts are fixed kernel ABI. */
struct os_uffdio_move {
	uint64_t dst;
	uint64_t src;
	uint64_t len;
	uint64_t mode;
	int64_t move;
};
#define OS_UFFDIO_MOVE		_IOWR(UFFDIO, 0x05, struct os_uffdio_move)
#define OS_UFFDIO_MOVE_MODE_DONTWAKE	(1ULL << 0)

struct os_pm_scan_arg {
	uint64_t size;
	uint64_t flags;
	uint64_t start;
	uint64_t end;
	uint64_t walk_end;
	uint64_t vec;
	uint64_t vec_len;
	uint64_t max_pages;
	uint64_t category_inverted;
	uint64_t category_mask;
	uint64_t category_anyof_mask;
	uint64_t return_mask;
};
#define OS_PAGEMAP_SCAN		_IOWR('f', 16, struct os_pm_scan_arg)

_Static_assert(sizeof(struct os_uffdio_move) == 40, "uffdio_move ABI");
_Static_assert(sizeof(struct os_pm_scan_arg) == 96, "pm_scan_arg ABI");
_Static_assert(sizeof(struct os_page_region) == 24, "page_region ABI");

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW	_IO(0xAA, 0x00)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY	1
#endif

static int
sys_ioctl(int fd, unsigned long cmd, void *arg)
{
	long r;

	do
		r = os_syscall(SYS_ioctl, fd, cmd, arg, 0, 0, 0);
	while (r == -EINTR);
	return r < 0 ? (int)-r : 0;
}

int
os_uffd_open(bool user_mode_only, bool keep, int *fd, const char **via)
{
	int flags = O_CLOEXEC | O_NONBLOCK |
		    (user_mode_only ? UFFD_USER_MODE_ONLY : 0);
	long r, dev;

	if (keep && !os_fd_can_keep())
		return EMFILE;
	r = os_syscall(SYS_userfaultfd, flags, 0, 0, 0, 0, 0);
	if (r >= 0) {
		*via = "syscall";
		return os_fd_opened(r, keep, fd);
	}
	/* The sysctl refuses the system call to the unprivileged, but the
	 * device node may be open to them (its mode is the admin's choice). */
	dev = os_syscall(SYS_openat, AT_FDCWD, "/dev/userfaultfd",
			 O_RDWR | O_CLOEXEC, 0, 0, 0);
	if (dev < 0)
		return (int)-r;
	r = os_syscall(SYS_ioctl, dev, USERFAULTFD_IOC_NEW, flags, 0, 0, 0);
	os_close((int)dev);
	if (r < 0)
		return (int)-r;
	*via = "dev";
	return os_fd_opened(r, keep, fd);
}

int
os_uffd_api(int fd, uint64_t features, uint64_t *have)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int err = sys_ioctl(fd, UFFDIO_API, &api);

	if (!err && have)
		*have = api.features;
	return err;
}

int
os_uffd_register_missing(int fd, void *p, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	return sys_ioctl(fd, UFFDIO_REGISTER, &reg);
}

int
os_uffd_unregister(int fd, void *p, size_t len)
{
	struct uffdio_range range = { .start = (uintptr_t)p, .len = len };
	int err = sys_ioctl(fd, UFFDIO_UNREGISTER, &range);

	/* UNREGISTER wakes the range's waiters before it write-locks each
	 * VMA. A fault taken under the per-VMA lock (6.7+) that saw the
	 * registration but had not queued yet sleeps through that wake,
	 * with nothing left to wake it (seen: a test thread asleep for a
	 * minute on a page nobody watched). The lock makes UNREGISTER wait
	 * for such a fault to queue, so one more wake now reaches it. */
	os_uffd_wake(fd, p, len);
	return err;
}

void
os_uffd_wake(int fd, void *p, size_t len)
{
	struct uffdio_range range = { .start = (uintptr_t)p, .len = len };

	(void)sys_ioctl(fd, UFFDIO_WAKE, &range);
}

int
os_uffd_move(int fd, void *dst, void *src, size_t len, bool wake,
	     size_t *moved)
{
	struct os_uffdio_move mv = {
		.dst = (uintptr_t)dst,
		.src = (uintptr_t)src,
		.len = len,
		.mode = wake ? 0 : OS_UFFDIO_MOVE_MODE_DONTWAKE,
	};
	long r = os_syscall(SYS_ioctl, fd, OS_UFFDIO_MOVE, &mv, 0, 0, 0);

	*moved = mv.move > 0 ? (size_t)mv.move : 0;
	if (r == 0)
		return 0;
	return (int)-r;
}

int
os_uffd_zeropage(int fd, void *p, size_t len, bool wake)
{
	struct uffdio_zeropage zp = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = wake ? 0 : UFFDIO_ZEROPAGE_MODE_DONTWAKE,
	};

	return sys_ioctl(fd, UFFDIO_ZEROPAGE, &zp);
}

int
os_uffd_copy(int fd, void *dst, const void *src, size_t len, bool wake)
{
	struct uffdio_copy cp = {
		.dst = (uintptr_t)dst,
		.src = (uintptr_t)src,
		.len = len,
		.mode = wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE,
	};

	return sys_ioctl(fd, UFFDIO_COPY, &cp);
}

int
os_uffd_read(int fd, struct os_uffd_fault *out)
{
	struct uffd_msg msg;
	long r;

	do
		r = os_syscall(SYS_read, fd, &msg, sizeof(msg), 0, 0, 0);
	while (r == -EINTR);
	if (r < 0)
		return (int)-r;
	if (r != (long)sizeof(msg))
		return EIO;
	out->is_fault = msg.event == UFFD_EVENT_PAGEFAULT;
	out->addr = out->is_fault ? msg.arg.pagefault.address : 0;
	out->flags = out->is_fault ? msg.arg.pagefault.flags : 0;
	return 0;
}

int
os_pagemap_open(int *fd)
{
	long r;

	if (!os_fd_can_keep())
		return EMFILE;
	r = os_syscall(SYS_openat, AT_FDCWD, "/proc/self/pagemap",
		       O_RDONLY | O_CLOEXEC, 0, 0, 0);
	if (r < 0)
		return (int)-r;
	return os_fd_keep((int)r, fd);
}

int
os_pagemap_scan(int fd, uintptr_t start, uintptr_t end,
		const struct os_scan_match *m, struct os_page_region *vec,
		size_t n, size_t *nr, uintptr_t *walk_end)
{
	/* A page matches when every bit of category_mask, after inversion,
	 * is set: unwanted categories are inverted so "absent" matches. */
	struct os_pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = start,
		.end = end,
		.vec = (uintptr_t)vec,
		.vec_len = n,
		.category_inverted = m->none,
		.category_mask = m->all | m->none,
		.category_anyof_mask = m->any,
		.return_mask = m->report,
	};
	long r;

	/* The kernel fills vec; cleared first, it also reads as written to
	 * memcheck, which does not know this ioctl (decisions taken on what
	 * it returns would otherwise be reported as depending on garbage). */
	memset(vec, 0, n * sizeof(*vec));
	do
		r = os_syscall(SYS_ioctl, fd, OS_PAGEMAP_SCAN, &arg, 0, 0, 0);
	while (r == -EINTR);
	if (r < 0)
		return (int)-r;
	*nr = (size_t)r;
	*walk_end = (uintptr_t)arg.walk_end;
	return 0;
}

int
os_read_self_gather(void *dst, const uintptr_t *src, size_t nr, size_t each,
		    size_t *done)
{
	struct iovec local = { .iov_base = dst, .iov_len = nr * each };
	struct iovec remote[256];
	long r;

	if (nr > ZP_ARRAY_SIZE(remote))
		return EINVAL;
	for (size_t i = 0; i < nr; i++)
		remote[i] = (struct iovec){ (void *)src[i], each };
	r = os_syscall(SYS_process_vm_readv, os_getpid(), &local, 1, remote,
		       nr, 0);
	if (r < 0) {
		*done = 0;
		return (int)-r;
	}
	*done = (size_t)r;
	return (size_t)r == nr * each ? 0 : EFAULT;
}

#define PEEK_PIPE_BYTES	((size_t)256 << 10)

int
os_peek_open(int fds[2])
{
	long r;

	if (!os_fd_can_keep())
		return EMFILE;
	r = os_syscall(SYS_pipe2, fds, O_CLOEXEC | O_NONBLOCK, 0, 0, 0, 0);
	if (r < 0)
		return (int)-r;
	if (os_fd_keep(fds[0], &fds[0]) != 0) {
		os_close(fds[1]);
		return EMFILE;
	}
	if (os_fd_keep(fds[1], &fds[1]) != 0) {
		os_close(fds[0]);
		return EMFILE;
	}
	r = os_syscall(SYS_fcntl, fds[1], F_SETPIPE_SZ, PEEK_PIPE_BYTES, 0, 0,
		       0);
	if (r < (long)PEEK_PIPE_BYTES) {
		os_close(fds[0]);
		os_close(fds[1]);
		return r < 0 ? (int)-r : ENOSPC;
	}
	return 0;
}

int
os_peek(const int fds[2], void *dst, const uintptr_t *src, size_t nr,
	size_t each, size_t *done)
{
	struct iovec iov[512];
	long w, r;
	size_t got = 0;

	*done = 0;
	if (nr > ZP_ARRAY_SIZE(iov) || nr * each > PEEK_PIPE_BYTES)
		return EINVAL;
	for (size_t i = 0; i < nr; i++)
		iov[i] = (struct iovec){ (void *)src[i], each };
	w = os_syscall(SYS_writev, fds[1], iov, nr, 0, 0, 0);
	if (w <= 0)
		return w ? (int)-w : EFAULT;
	while (got < (size_t)w) {
		r = os_syscall(SYS_read, fds[0], (char *)dst + got,
			       (size_t)w - got, 0, 0, 0);
		if (r == -EINTR)
			continue;
		if (r <= 0)
			return EIO;	/* cannot happen: we just wrote it */
		got += (size_t)r;
	}
	*done = got;
	return got == nr * each ? 0 : EFAULT;
}

int
os_fd_ident(int fd, uint64_t *ident)
{
	struct stat st;
	long r = os_syscall(SYS_fstat, fd, &st, 0, 0, 0, 0);

	if (r < 0)
		return (int)-r;
	*ident = ((uint64_t)st.st_dev << 40) ^ (uint64_t)st.st_ino ^
		 ((uint64_t)(st.st_mode & S_IFMT) << 20);
	return 0;
}

void
os_yield(void)
{
	os_syscall(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
}

void
os_sleep_ns(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000ULL),
		.tv_nsec = (long)(ns % 1000000000ULL),
	};

	if (ns == 0) {
		os_yield();
		return;
	}
	while (os_syscall(SYS_nanosleep, &ts, &ts, 0, 0, 0, 0) == -EINTR)
		;
}

int
os_madvise_raw(void *p, size_t len, int advice)
{
	return (int)-os_syscall(SYS_madvise, p, len, advice, 0, 0, 0);
}
