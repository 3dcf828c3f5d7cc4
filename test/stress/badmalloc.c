/*
 * badmalloc.c - a deliberately broken malloc for the negative controls.
 *
 * LD_PRELOADed in place of libzpmalloc.so, it forwards to glibc through the
 * exported __libc_* entry points and seeds ONE bug chosen by BADMALLOC, so
 * each suite can show that it fails when the allocator misbehaves:
 *   uaf      every 64th free of a block of 48..4095 bytes is written to two
 *            calls later (an allocator touching memory it gave away)
 *   realloc  every 16th realloc keeps only half of the old contents
 *   leak     free() does nothing (memory never comes back)
 *   forklock one global lock around every call and no fork handlers
 *            (a child forked while another thread allocates deadlocks)
 *   forklate that lock, with fork handlers that take it registered at the
 *            first fork, after the program's (whose prepare handler then
 *            waits on it when it allocates)
 *   errno    failures return NULL with errno 0, and posix_memalign accepts
 *            alignments that are not a multiple of sizeof(void *)
 * Without BADMALLOC (or an unknown value) it is a plain pass-through.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

enum bad_mode { BAD_NONE, BAD_UAF, BAD_REALLOC, BAD_LEAK, BAD_FORKLOCK,
		BAD_ERRNO, BAD_FORKLATE };

static enum bad_mode mode = -1;
static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread void *stale;
static __thread unsigned stale_countdown;
static __thread unsigned long nr_frees, nr_reallocs;

/* glibc's usable size read from its chunk header (size field before the
 * block; bit 1 marks an mmapped chunk), so that no symbol lookup can land
 * in another preloaded allocator. */
static size_t
chunk_usable(void *p)
{
	size_t h = ((size_t *)p)[-1];

	return (h & ~(size_t)7) - (h & 2 ? 16 : 8);
}

static enum bad_mode
get_mode(void)
{
	static const char *names[] = { "", "uaf", "realloc", "leak",
				       "forklock", "errno", "forklate" };
	const char *s;

	if (__builtin_expect((int)mode >= 0, 1))
		return mode;
	/* Calls from preinit_array functions (libFuzzer, UBSan) come before
	 * libc has set environ: stay a pass-through without deciding. */
	if (!environ)
		return BAD_NONE;
	s = getenv("BADMALLOC");
	mode = BAD_NONE;
	for (int i = 1; s && i < (int)(sizeof(names) / sizeof(*names)); i++)
		if (!strcmp(s, names[i]))
			mode = i;
	return mode;
}

/* Runs at every entry: the seeded use-after-free write, and the global
 * lock with a little work inside it so that other threads often hold it. */
static void
enter(void)
{
	enum bad_mode m = get_mode();

	if (m == BAD_UAF && stale && --stale_countdown == 0) {
		((volatile unsigned char *)stale)[40] ^= 0x55;
		stale = NULL;
	}
	if (m == BAD_FORKLOCK || m == BAD_FORKLATE) {
		pthread_mutex_lock(&big_lock);
		for (volatile int i = 0; i < 200; i++)
			;
	}
}

static void
leave(void)
{
	if (mode == BAD_FORKLOCK || mode == BAD_FORKLATE)
		pthread_mutex_unlock(&big_lock);
}

static void
fork_lock(void)
{
	pthread_mutex_lock(&big_lock);
}

static void
fork_unlock(void)
{
	pthread_mutex_unlock(&big_lock);
}

/* forklate's handlers go in at the first fork. */
pid_t
fork(void)
{
	static pid_t (*real)(void);
	static int registered;

	if (get_mode() == BAD_FORKLATE && !registered) {
		registered = 1;
		pthread_atfork(fork_lock, fork_unlock, fork_unlock);
	}
	if (!real)
		real = (pid_t (*)(void))dlsym(RTLD_NEXT, "fork");
	return real();
}

static void *
result(void *p)
{
	if (!p && mode == BAD_ERRNO)
		errno = 0;
	leave();
	return p;
}

void *
malloc(size_t n)
{
	enter();
	return result(__libc_malloc(n));
}

void *
calloc(size_t a, size_t b)
{
	enter();
	return result(__libc_calloc(a, b));
}

void
free(void *p)
{
	size_t usable;

	enter();
	if (mode == BAD_LEAK || !p) {
		leave();
		return;
	}
	usable = chunk_usable(p);
	__libc_free(p);
	if (mode == BAD_UAF && usable >= 48 && usable < 4096 &&
	    ++nr_frees % 64 == 0) {
		stale = p;
		stale_countdown = 2;
	}
	leave();
}

void *
realloc(void *p, size_t n)
{
	void *q;
	size_t old;

	enter();
	if (mode != BAD_REALLOC || !p || !n || ++nr_reallocs % 16)
		return result(__libc_realloc(p, n));
	old = chunk_usable(p);
	q = __libc_malloc(n);
	if (q) {
		memcpy(q, p, (old < n ? old : n) / 2);
		__libc_free(p);
	}
	return result(q);
}

int
posix_memalign(void **out, size_t align, size_t n)
{
	void *p;

	enter();
	if (mode == BAD_ERRNO && align && !(align & (align - 1)))
		align = align < 16 ? 16 : align;
	if (align % sizeof(void *) || !align || (align & (align - 1))) {
		if (mode != BAD_ERRNO) {
			leave();
			return EINVAL;
		}
		align = 16;
	}
	p = __libc_memalign(align, n);
	leave();
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

void *
memalign(size_t align, size_t n)
{
	enter();
	return result(__libc_memalign(align, n));
}

void *
aligned_alloc(size_t align, size_t n)
{
	enter();
	return result(__libc_memalign(align, n));
}

size_t malloc_usable_size(void *p);

size_t
malloc_usable_size(void *p)
{
	return p ? chunk_usable(p) : 0;
}

void *
valloc(size_t n)
{
	enter();
	return result(__libc_valloc(n));
}

void *
pvalloc(size_t n)
{
	enter();
	return result(__libc_pvalloc(n));
}

void *
reallocarray(void *p, size_t a, size_t b)
{
	size_t n;

	if (__builtin_mul_overflow(a, b, &n)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, n);
}
