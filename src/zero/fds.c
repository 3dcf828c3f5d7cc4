/*
 * fds.c - the engine's descriptors, and /proc/self/pagemap.
 * Owns:  struct zero_fd (a descriptor recognised by identity before each
 *        use), the pagemap descriptor and the lock that opens it.
 * Locks: pagemap_lock only around opening the pagemap (a leaf, with
 *        signals blocked); uses are counted (zero_fd.users), not locked.
 * Path:  zero_make_zero / reclaim -> zero_pagemap_get -> zfd_get -> fstat;
 *        shim close/dup2/closefrom -> zero_fds_closing -> zfd_release
 *
 * A program may close every descriptor it did not open (closefrom(3),
 * close_range) and reuse the numbers for its own files. Through the libc
 * calls we hear of it first (hooks.c) and forget ours; through a raw
 * system call we notice at the next use, because the number then names
 * another file. Either way the engine never acts on (or closes) a file
 * of the program's: it opens a new descriptor of its own instead.
 */
#include <errno.h>

#include "os/os.h"
#include "os/os_uffd.h"
#include "zero/zero_int.h"

/* A close waits this long at most for a use in progress: a use in the
 * thread that closes (a handler) or one frozen by a raw fork never ends. */
#define RELEASE_WAIT_NS	(50ULL * 1000 * 1000)

void
zfd_set(struct zero_fd *f, int fd)
{
	uint64_t id = 0;

	os_fd_ident(fd, &id);
	f->ident = id;
	f->pid = os_getpid();
	__atomic_store_n(&f->fd, fd, __ATOMIC_RELEASE);
}

/* Is fd (in this process) still the file f opened? */
static bool
zfd_is_ours(const struct zero_fd *f, int fd)
{
	uint64_t id;

	return os_fd_ident(fd, &id) == 0 && id == f->ident;
}

/* Drop f's number (if it is still fd): closed when the file is still
 * ours but from another process (a fork that bypassed our hooks). */
static void
zfd_forget(struct zero_fd *f, int fd)
{
	int expect = fd;

	if (!__atomic_compare_exchange_n(&f->fd, &expect, -1, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
		return;
	if (f->pid != os_getpid() && zfd_is_ours(f, fd))
		os_close(fd);
}

int
zfd_get(struct zero_fd *f)
{
	int fd = __atomic_load_n(&f->fd, __ATOMIC_ACQUIRE);

	if (fd < 0)
		return -1;
	__atomic_add_fetch(&f->users, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&f->fd, __ATOMIC_SEQ_CST) == fd &&
	    f->pid == os_getpid() && zfd_is_ours(f, fd))
		return fd;
	__atomic_sub_fetch(&f->users, 1, __ATOMIC_RELEASE);
	zfd_forget(f, fd);
	return -1;
}

void
zfd_put(struct zero_fd *f)
{
	__atomic_sub_fetch(&f->users, 1, __ATOMIC_RELEASE);
}

static void
wait_unused(struct zero_fd *f)
{
	uint64_t t0 = os_now_ns();

	while (__atomic_load_n(&f->users, __ATOMIC_SEQ_CST) != 0 &&
	       os_now_ns() - t0 < RELEASE_WAIT_NS)
		os_yield();
}

void
zfd_close(struct zero_fd *f)
{
	int fd = __atomic_exchange_n(&f->fd, -1, __ATOMIC_SEQ_CST);

	if (fd < 0)
		return;
	wait_unused(f);
	if (zfd_is_ours(f, fd))
		os_close(fd);
}

bool
zfd_in(const struct zero_fd *f, int lo, int hi)
{
	int fd = __atomic_load_n(&f->fd, __ATOMIC_RELAXED);

	return fd >= 0 && fd >= lo && fd <= hi;
}

bool
zfd_release(struct zero_fd *f, int lo, int hi)
{
	int fd = __atomic_load_n(&f->fd, __ATOMIC_ACQUIRE);

	if (fd < 0 || fd < lo || fd > hi)
		return false;
	__atomic_store_n(&f->fd, -1, __ATOMIC_SEQ_CST);
	wait_unused(f);
	return true;
}

/* --- /proc/self/pagemap ------------------------------------------------- */

static struct zero_fd pagemap = ZERO_FD_INIT;
static struct zp_lock pagemap_lock = ZP_LOCK_INIT;
static int pagemap_failed_pid;		/* could not be opened here */

static int
pagemap_open(void)
{
	struct zero_guard g;
	int fd, nfd;

	zero_guard_enter(&g);
	zp_lock(&pagemap_lock);
	fd = zfd_get(&pagemap);
	if (fd < 0 && pagemap_failed_pid != os_getpid()) {
		if (os_pagemap_open(&nfd) == 0) {
			zfd_set(&pagemap, nfd);
			fd = zfd_get(&pagemap);
		} else {
			/* Undumpable, or no /proc: not worth a try a call. */
			pagemap_failed_pid = os_getpid();
		}
	}
	zp_unlock(&pagemap_lock);
	zero_guard_leave(&g);
	return fd;
}

int
zero_pagemap_get(void)
{
	int fd;

	if (uffd_is_stopped())
		return -1;
	fd = zfd_get(&pagemap);
	return fd >= 0 ? fd : pagemap_open();
}

void
zero_pagemap_put(void)
{
	zfd_put(&pagemap);
}

bool
fds_in(int lo, int hi)
{
	return zfd_in(&pagemap, lo, hi);
}

void
fds_closing(int lo, int hi)
{
	zfd_release(&pagemap, lo, hi);
}

void
fds_close_all(void)
{
	zfd_close(&pagemap);
}

void
fds_postfork_child(void)
{
	zp_lock_postfork_child(&pagemap_lock);
	/* The parent's: it describes the parent's memory. */
	pagemap.users = 0;
	zfd_close(&pagemap);
	pagemap_failed_pid = 0;
}
