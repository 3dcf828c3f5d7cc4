/*
 * map.c - the interposed mmap, munmap and mremap.
 * Owns:  nothing; the zero-page engine owns the regions once it is linked
 *        (large anonymous maps become zero-backed regions), until then the
 *        calls go straight to the kernel.
 * Locks: none here.
 * Path:  mmap (shim.c) -> map_mmap -> zero_mmap | os_mmap_raw
 */
#include "malloc/map.h"
#include "os/os.h"
#include "os/os_uffd.h"
#if ZP_HAVE_ZERO
#include "zero/zero.h"
#endif

void *
map_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off,
	 int *err)
{
#if ZP_HAVE_ZERO
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
