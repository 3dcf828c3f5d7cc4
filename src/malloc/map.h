/*
 * map.h - the interposed mmap family and madvise. Each call is one hook, so that the
 * zero-page engine's routing of large anonymous maps slots in here alone.
 * Results are the kernel's: MAP_FAILED or -1 with *err set on failure.
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

#endif /* ZP_MALLOC_MAP_H */
