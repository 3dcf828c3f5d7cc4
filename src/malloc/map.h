/*
 * map.h - the interposed calls that reach the zero-page engine: the mmap
 * family and madvise (each one hook, so that the engine's routing of
 * large anonymous maps slots in here alone), and the calls through which
 * a program could otherwise trip over it (see map.c). Results of the
 * mmap family are the kernel's (MAP_FAILED or an errno value in *err /
 * the return value); the others return exactly what glibc's function
 * returns, errno included.
 */
#ifndef ZP_MALLOC_MAP_H
#define ZP_MALLOC_MAP_H

#include <sys/types.h>

#include "base/util.h"

void *map_mmap(void *addr, size_t len, int prot, int flags, int fd,
	       off_t off, int *err);
int map_munmap(void *addr, size_t len);
void *map_mremap(void *old, size_t old_size, size_t new_size, int flags,
		 void *new_addr, int *err);

/* Returns 0 or an errno value. */
int map_madvise(void *addr, size_t len, int advice);

/* Finds glibc's functions once, at boot, so that no interposed call (a
 * signal handler may make one) ever has to look one up. */
void map_boot(void);

int map_close(int fd);
int map_close_range(unsigned lo, unsigned hi, int flags);
void map_closefrom(int lo);
int map_dup2(int old, int fd);
int map_dup3(int old, int fd, int flags);
int map_ioctl(int fd, unsigned long req, void *arg);
int map_prctl(int option, unsigned long a2, unsigned long a3,
	      unsigned long a4, unsigned long a5);
int map_unshare(int flags);
int map_setns(int fd, int nstype);
int map_mprotect(void *addr, size_t len, int prot);
int map_pkey_mprotect(void *addr, size_t len, int prot, int pkey);
int map_mlock(const void *addr, size_t len);
int map_mlock2(const void *addr, size_t len, unsigned flags);
int map_munlock(const void *addr, size_t len);
/* mlockall (lock) or munlockall. */
int map_mlockall(int flags, bool lock);
/* syscall(nr, a[0..5]) with the same engine hooks as the calls above. */
long map_syscall(long nr, const long a[6]);

/* fork and the calls that fork with the atfork handlers, and their
 * registration: our own handlers are registered first (map.c). */
pid_t map_fork(void);
int map_daemon(int nochdir, int noclose);
pid_t map_forkpty(int *master, char *name, const void *termp,
		  const void *winp);
int map_register_atfork(void (*prepare)(void), void (*parent)(void),
			void (*child)(void), void *dso);
/* glibc's own __register_atfork, for init.c's handlers. */
int map_libc_register_atfork(void (*prepare)(void), void (*parent)(void),
			     void (*child)(void), void *dso);

#endif /* ZP_MALLOC_MAP_H */
