/*
 * shim.c - every exported name: the libc malloc family with glibc 2.36's
 *          exact semantics, the __libc_* aliases, the mmap family and the
 *          zp_* API. The only translation unit with default visibility.
 * Owns:  argument checking and errno for each libc entry point, the
 *        binding to glibc's own functions for foreign pointers.
 * Locks: none; everything below locks for itself.
 * Path:  malloc -> alloc_malloc (alloc.h) -> tcache_alloc | *_slow
 *
 * Foreign pointers (allocated by glibc before the preload took effect, or
 * in another namespace) are handed to glibc's own functions, found in
 * libc.so.6's symbol table (os_libc_symbol): our exports are unversioned
 * (zpmalloc.map), so any lookup by name would find us again.
 */
/* Meson's _FILE_OFFSET_BITS=64 makes <sys/mman.h> rename mmap to mmap64;
 * we define both names ourselves (off_t is 64 bits on x86-64 anyway). */
#undef _FILE_OFFSET_BITS
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mman.h>

#include "base/log.h"
#include "malloc/alloc.h"
#include "malloc/init.h"
#include "malloc/map.h"
#include "malloc/stats.h"
#include "os/os.h"
#include "page/zone.h"
#include "zpmalloc.h"

#define ZP_EXPORT __attribute__((visibility("default")))

/* glibc's MALLOC_ALIGNMENT and M_MXFAST limit (80 * sizeof(size_t) / 4) on
 * x86-64: the thresholds its memalign and mallopt apply. */
#define SHIM_MIN_ALIGN	16
#define SHIM_MAX_FAST	160

/* --- glibc, for foreign pointers ------------------------------------------ */

typedef void glibc_free_fn(void *);
typedef void *glibc_realloc_fn(void *, size_t);
typedef size_t glibc_usable_fn(void *);

/* Resolved on first use: a foreign pointer is rare, and libc.so.6 may not
 * have been mapped yet when the loader makes its first calls. */
static void *
glibc_fn(void **slot, const char *name)
{
	void *fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (!fn) {
		fn = os_libc_symbol(name);
		if (!fn)
			log_fatal("%s(): invalid pointer (no glibc to own it)",
				  name);
		__atomic_store_n(slot, fn, __ATOMIC_RELEASE);
	}
	return fn;
}

static void *glibc_free_p, *glibc_realloc_p, *glibc_usable_p;

static void
shim_glibc_free(void *p)
{
	((glibc_free_fn *)glibc_fn(&glibc_free_p, "free"))(p);
}

static void *
shim_glibc_realloc(void *p, size_t n)
{
	return ((glibc_realloc_fn *)glibc_fn(&glibc_realloc_p, "realloc"))(p, n);
}

static size_t
shim_glibc_usable_size(void *p)
{
	return ((glibc_usable_fn *)glibc_fn(&glibc_usable_p,
					     "malloc_usable_size"))(p);
}

const struct alloc_foreign_ops shim_glibc_ops = {
	.free = shim_glibc_free,
	.realloc = shim_glibc_realloc,
	.usable_size = shim_glibc_usable_size,
};

/* Prototypes glibc 2.36's headers no longer (or not yet) carry. */
ZP_EXPORT void cfree(void *p);
ZP_EXPORT void free_sized(void *p, size_t size);
ZP_EXPORT void free_aligned_sized(void *p, size_t align, size_t size);
ZP_EXPORT void *__libc_malloc(size_t n);
ZP_EXPORT void __libc_free(void *p);
ZP_EXPORT void *__libc_calloc(size_t nmemb, size_t size);
ZP_EXPORT void *__libc_realloc(void *p, size_t n);
ZP_EXPORT void *__libc_memalign(size_t align, size_t n);
ZP_EXPORT void *__libc_valloc(size_t n);
ZP_EXPORT void *__libc_pvalloc(size_t n);

/* --- the malloc family ---------------------------------------------------- */

ZP_EXPORT void *
malloc(size_t n)
{
	return alloc_malloc(n);
}

ZP_EXPORT void
free(void *p)
{
	alloc_free(p);
}

ZP_EXPORT void *
calloc(size_t nmemb, size_t size)
{
	return alloc_calloc(nmemb, size);
}

ZP_EXPORT void *
realloc(void *p, size_t n)
{
	return alloc_realloc(p, n);
}

ZP_EXPORT void *
reallocarray(void *p, size_t nmemb, size_t size)
{
	size_t n;

	if (__builtin_mul_overflow(nmemb, size, &n))
		return alloc_oom();
	return alloc_realloc(p, n);
}

/*
 * glibc 2.36's memalign, which aligned_alloc also is: alignments up to 16
 * are plain malloc, others are rounded up to a power of two, and only
 * those beyond SIZE_MAX / 2 + 1 (which cannot be rounded) are EINVAL.
 */
ZP_EXPORT void *
memalign(size_t align, size_t n)
{
	if (align <= SHIM_MIN_ALIGN)
		return alloc_malloc(n);
	if (align > SIZE_MAX / 2 + 1) {
		errno = EINVAL;
		return NULL;
	}
	if (!zp_is_pow2(align))
		align = (size_t)1 << zp_order_ceil(align);
	return alloc_aligned(align, n);
}

ZP_EXPORT void *
aligned_alloc(size_t align, size_t n)
{
	return memalign(align, n);
}

/* Errors are returned, never left in errno (as glibc: EINVAL leaves errno
 * alone; its ENOMEM comes from the allocation and is in errno too). */
ZP_EXPORT int
posix_memalign(void **out, size_t align, size_t n)
{
	void *p;

	if (align % sizeof(void *) != 0 || !zp_is_pow2(align))
		return EINVAL;
	p = alloc_aligned(align, n);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

ZP_EXPORT void *
valloc(size_t n)
{
	return alloc_aligned(ZP_PAGE_SIZE, n);
}

ZP_EXPORT void *
pvalloc(size_t n)
{
	if (n > SIZE_MAX - 2 * ZP_PAGE_SIZE)
		return alloc_oom();
	return alloc_aligned(ZP_PAGE_SIZE,
			     zp_align_up(ZP_MAX(n, 1), ZP_PAGE_SIZE));
}

ZP_EXPORT size_t
malloc_usable_size(void *p)
{
	return alloc_usable_size(p);
}

/* C23: size is what malloc, calloc or realloc was asked for. */
ZP_EXPORT void
free_sized(void *p, size_t size)
{
	alloc_free_sized(p, size, "free_sized");
}

/* C23: align and size are what aligned_alloc was given; the alignment is
 * taken the way memalign took it. */
ZP_EXPORT void
free_aligned_sized(void *p, size_t align, size_t size)
{
	if (!p)
		return;
	if (align > SIZE_MAX / 2 + 1)
		log_fatal("free_aligned_sized(): invalid alignment %zu for %p",
			  align, p);
	if (align > SHIM_MIN_ALIGN && !zp_is_pow2(align))
		align = (size_t)1 << zp_order_ceil(align);
	alloc_free_aligned_sized(p, align, size, "free_aligned_sized");
}

ZP_EXPORT void
cfree(void *p)
{
	alloc_free(p);
}

/* The __libc_* names some programs (and debuggers' hooks) call directly. */
ZP_EXPORT void *
__libc_malloc(size_t n)
{
	return alloc_malloc(n);
}

ZP_EXPORT void
__libc_free(void *p)
{
	alloc_free(p);
}

ZP_EXPORT void *
__libc_calloc(size_t nmemb, size_t size)
{
	return alloc_calloc(nmemb, size);
}

ZP_EXPORT void *
__libc_realloc(void *p, size_t n)
{
	return alloc_realloc(p, n);
}

ZP_EXPORT void *
__libc_memalign(size_t align, size_t n)
{
	return memalign(align, n);
}

ZP_EXPORT void *
__libc_valloc(size_t n)
{
	return valloc(n);
}

ZP_EXPORT void *
__libc_pvalloc(size_t n)
{
	return pvalloc(n);
}

/* --- control and statistics -------------------------------------------- */

/* 1 when memory went back to the system, as glibc's. */
ZP_EXPORT int
malloc_trim(size_t pad)
{
	int saved = errno;
	size_t released;

	(void)pad;
	released = alloc_trim();
	errno = saved;
	return released != 0;
}

static size_t
clamp_int(size_t v)
{
	return ZP_MIN(v, (size_t)INT32_MAX);
}

ZP_EXPORT struct mallinfo2
mallinfo2(void)
{
	struct mallinfo2 mi = { 0 };
	struct stats_usage u;
	int saved = errno;

	if (!init_boot()) {
		errno = saved;
		return mi;
	}
	stats_usage(&u);
	mi.arena = u.arena;
	mi.ordblks = u.nr_free_blocks;
	mi.smblks = u.nr_slab_free;
	mi.hblks = u.nr_large;
	mi.hblkhd = u.large_bytes;
	mi.usmblks = 0;			/* unused since glibc 2.24 */
	mi.fsmblks = u.slab_free;
	mi.uordblks = u.in_use;
	mi.fordblks = u.arena - u.in_use;
	mi.keepcost = 0;		/* nothing is kept at a heap top */
	errno = saved;
	return mi;
}

ZP_EXPORT struct mallinfo
mallinfo(void)
{
	struct mallinfo2 m2 = mallinfo2();
	struct mallinfo mi = {
		.arena = (int)clamp_int(m2.arena),
		.ordblks = (int)clamp_int(m2.ordblks),
		.smblks = (int)clamp_int(m2.smblks),
		.hblks = (int)clamp_int(m2.hblks),
		.hblkhd = (int)clamp_int(m2.hblkhd),
		.usmblks = (int)clamp_int(m2.usmblks),
		.fsmblks = (int)clamp_int(m2.fsmblks),
		.uordblks = (int)clamp_int(m2.uordblks),
		.fordblks = (int)clamp_int(m2.fordblks),
		.keepcost = (int)clamp_int(m2.keepcost),
	};

	return mi;
}

ZP_EXPORT void
malloc_stats(void)
{
	int saved = errno;

	stats_malloc_stats(2);
	errno = saved;
}

struct info_sink {
	FILE *fp;
	struct outbuf *o;
};

static void
info_line(void *ctx, const char *line)
{
	struct info_sink *s = ctx;

	/* fputs only for a FILE without a descriptor (open_memstream):
	 * we hold no lock here, so its allocations are ordinary ones. */
	if (s->o)
		out_puts(s->o, line);
	else
		fputs(line, s->fp);
}

/* The XML goes out through the FILE's descriptor with our own formatter,
 * after flushing what the FILE buffered, so nothing here allocates. */
ZP_EXPORT int
malloc_info(int options, FILE *fp)
{
	struct info_sink sink = { .fp = fp };
	struct outbuf o;
	int saved = errno;
	int fd;

	if (options != 0)
		return EINVAL;
	fflush(fp);
	fd = fileno(fp);
	if (fd >= 0) {
		out_init(&o, fd);
		sink.o = &o;
	}
	stats_malloc_info(info_line, &sink);
	if (sink.o)
		out_flush(&o);
	errno = saved;
	return 0;
}

/* glibc accepts every parameter (unknown ones too) and returns 1, except
 * an M_MXFAST beyond its fastbin limit. Nothing here needs tuning. */
ZP_EXPORT int
mallopt(int param, int value)
{
	if (param == M_MXFAST)
		return (size_t)value <= SHIM_MAX_FAST;
	return 1;
}

/* --- the mmap family: pass-throughs until the zero-page engine routes -- */

ZP_EXPORT void *
mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	int err = 0;
	void *p = map_mmap(addr, len, prot, flags, fd, off, &err);

	if (p == MAP_FAILED)
		errno = err;
	return p;
}

ZP_EXPORT void *
mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

ZP_EXPORT int
munmap(void *addr, size_t len)
{
	int err = map_munmap(addr, len);

	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

/* glibc reads new_address only with MREMAP_FIXED. */
ZP_EXPORT void *
mremap(void *old, size_t old_size, size_t new_size, int flags, ...)
{
	void *new_addr = NULL;
	int err = 0;
	void *p;

	if (flags & MREMAP_FIXED) {
		va_list ap;

		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	p = map_mremap(old, old_size, new_size, flags, new_addr, &err);
	if (p == MAP_FAILED)
		errno = err;
	return p;
}

ZP_EXPORT int
madvise(void *addr, size_t len, int advice)
{
	int err = map_madvise(addr, len, advice);

	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

/* --- the zp_* API ------------------------------------------------------ */

ZP_EXPORT const char *
zp_version(void)
{
	return ZP_VERSION;
}

ZP_EXPORT void *
zp_malloc_flags(size_t size, unsigned flags)
{
	return alloc_flags(size, flags);
}

ZP_EXPORT void
zp_free(void *p)
{
	alloc_free(p);
}

ZP_EXPORT size_t
zp_usable_size(const void *p)
{
	return alloc_usable_size(p);
}

ZP_EXPORT size_t
zp_trim(void)
{
	int saved = errno;
	size_t released = alloc_trim();

	errno = saved;
	return released;
}

ZP_EXPORT void
zp_stats_print(int fd, int json)
{
	int saved = errno;

	stats_print(fd, json != 0);
	errno = saved;
}

ZP_EXPORT int
zp_zone_info(unsigned idx, struct zp_zone_info *out)
{
	if (!init_boot())
		return -1;
	return zone_info(idx, out) == 0 ? 0 : -1;
}

ZP_EXPORT int
zp_slab_info(unsigned size_class, struct zp_slab_info *out)
{
	if (!init_boot() || size_class >= SC_NR)
		return -1;
	return slab_info(size_class, out) == 0 ? 0 : -1;
}

ZP_EXPORT int
zp_zero_info(struct zp_zero_info *out)
{
	if (!init_boot())
		return -1;
	return stats_zero_info(out);
}

/* --- calls a program could trip over the zero-page engine with ---------- */
/*
 * The engine gets a word in before glibc's own function runs (map.c): a
 * close or dup onto one of its descriptors, a seccomp filter, an unshare
 * or setns that wants the process to itself, mprotect or mlock of memory
 * under reclaim, a userfaultfd registration of the program's own.
 */
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <unistd.h>

ZP_EXPORT int
close(int fd)
{
	return map_close(fd);
}

ZP_EXPORT int
close_range(unsigned lo, unsigned hi, int flags)
{
	return map_close_range(lo, hi, flags);
}

ZP_EXPORT void
closefrom(int lo)
{
	map_closefrom(lo);
}

ZP_EXPORT int
dup2(int old, int fd)
{
	return map_dup2(old, fd);
}

ZP_EXPORT int
dup3(int old, int fd, int flags)
{
	return map_dup3(old, fd, flags);
}

/* glibc reads one pointer-sized argument. */
ZP_EXPORT int
ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	return map_ioctl(fd, req, arg);
}

/* glibc reads four more arguments, whatever the option. */
ZP_EXPORT int
prctl(int option, ...)
{
	unsigned long a[4];
	va_list ap;

	va_start(ap, option);
	for (int i = 0; i < 4; i++)
		a[i] = va_arg(ap, unsigned long);
	va_end(ap);
	return map_prctl(option, a[0], a[1], a[2], a[3]);
}

/* glibc reads six arguments, whatever the call. */
ZP_EXPORT long
syscall(long nr, ...)
{
	long a[6];
	va_list ap;

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	return map_syscall(nr, a);
}

ZP_EXPORT int
unshare(int flags)
{
	return map_unshare(flags);
}

ZP_EXPORT int
setns(int fd, int nstype)
{
	return map_setns(fd, nstype);
}

ZP_EXPORT int
mprotect(void *addr, size_t len, int prot)
{
	return map_mprotect(addr, len, prot);
}

ZP_EXPORT int
pkey_mprotect(void *addr, size_t len, int prot, int pkey)
{
	return map_pkey_mprotect(addr, len, prot, pkey);
}

ZP_EXPORT int
mlock(const void *addr, size_t len)
{
	return map_mlock(addr, len);
}

ZP_EXPORT int
mlock2(const void *addr, size_t len, unsigned flags)
{
	return map_mlock2(addr, len, flags);
}

ZP_EXPORT int
munlock(const void *addr, size_t len)
{
	return map_munlock(addr, len);
}

ZP_EXPORT int
mlockall(int flags)
{
	return map_mlockall(flags, /* lock */ true);
}

ZP_EXPORT int
munlockall(void)
{
	return map_mlockall(0, /* lock */ false);
}

/* --- fork ----------------------------------------------------------------- */
/*
 * Our fork handlers are registered when a fork could first run them, and
 * before anyone else's (map.c). pthread_atfork is libc_nonshared.a's,
 * linked into each program and library, and calls __register_atfork; the
 * pthread_atfork glibc exports is for binaries older than that, and calls
 * its own directly.
 */
#include <pty.h>

int __register_atfork(void (*prepare)(void), void (*parent)(void),
		      void (*child)(void), void *dso);

ZP_EXPORT pid_t
fork(void)
{
	return map_fork();
}

ZP_EXPORT int
daemon(int nochdir, int noclose)
{
	return map_daemon(nochdir, noclose);
}

ZP_EXPORT pid_t
forkpty(int *master, char *name, const struct termios *termp,
	const struct winsize *winp)
{
	return map_forkpty(master, name, termp, winp);
}

ZP_EXPORT int
__register_atfork(void (*prepare)(void), void (*parent)(void),
		  void (*child)(void), void *dso)
{
	return map_register_atfork(prepare, parent, child, dso);
}

ZP_EXPORT int
pthread_atfork(void (*prepare)(void), void (*parent)(void),
	       void (*child)(void))
{
	return map_register_atfork(prepare, parent, child, NULL);
}
