/*
 * badinput.c - the outcome of every malformed request, one line each.
 *
 * Prints what each call returned (NULL, a usable block, or a return code)
 * and errno, never an address, so that the output under glibc and under
 * LD_PRELOAD=libzpmalloc.so can be compared line by line (check_badinput.sh
 * runs both and diffs). A call that "succeeds" with a huge size must give
 * memory that really is usable, so the line says so only after touching
 * both ends of the block.
 */
#include <malloc.h>
#include <stdint.h>

#include "common.h"

/* The absurd sizes below are the point of the program. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
#endif

#define ERRNO_SENTINEL 1234

static const char *
errname(int e)
{
	switch (e) {
	case 0: return "0";
	case ENOMEM: return "ENOMEM";
	case EINVAL: return "EINVAL";
	case ERRNO_SENTINEL: return "unchanged";
	default: return "other";
	}
}

/* Describes a result without its address: NULL, or the alignment it has
 * (capped at the one asked for) and whether usable size covers the size. */
static void
report(const char *call, void *p, size_t size, size_t align)
{
	int e = errno;
	size_t a = 1;

	if (!p) {
		printf("%-44s -> NULL errno=%s\n", call, errname(e));
		return;
	}
	while (a < align && (uintptr_t)p % (a * 2) == 0)
		a *= 2;
	if (size) {
		((volatile char *)p)[0] = 1;
		((volatile char *)p)[size - 1] = 1;
	}
	printf("%-44s -> block aligned>=%zu usable_ok=%d errno=%s\n", call, a,
	       malloc_usable_size(p) >= size, errname(e));
	free(p);
}

#define TRY(call, size, align)						\
	do {								\
		void *p_;						\
		errno = ERRNO_SENTINEL;					\
		p_ = (call);						\
		report(#call, p_, (size), (align));			\
	} while (0)

static void
try_posix(size_t align, size_t size)
{
	void *p = (void *)1;
	int r;
	char call[64];

	snprintf(call, sizeof(call), "posix_memalign(%zu, %zu)", align, size);
	errno = ERRNO_SENTINEL;
	r = posix_memalign(&p, align, size);
	printf("%-44s -> ret=%s out=%s errno=%s\n", call, errname(r),
	       r ? (p == (void *)1 ? "untouched" : "changed") :
		   (align && (uintptr_t)p % align ? "misaligned" : "aligned"),
	       errname(errno));
	if (!r)
		free(p);
}

static void
try_realloc(size_t size)
{
	char *p = malloc(32), *q;
	char call[64];

	memset(p, 'x', 32);
	snprintf(call, sizeof(call), "realloc(p32, %zu)", size);
	errno = ERRNO_SENTINEL;
	q = realloc(p, size);
	if (q) {
		report(call, q, size, 16);
		return;
	}
	printf("%-44s -> NULL errno=%s old_block=%s\n", call, errname(errno),
	       size && p[0] == 'x' && p[31] == 'x' ? "intact" : "freed");
	if (size)
		free(p);
}

int
main(void)
{
	size_t half = SIZE_MAX / 2 + 1;
	size_t pmax = PTRDIFF_MAX;
	void *volatile vp;
	size_t sz = 5;

	setvbuf(stdout, NULL, _IOLBF, 0);
	TRY(malloc(SIZE_MAX), SIZE_MAX, 16);
	TRY(malloc(SIZE_MAX - 4095), 0, 16);
	TRY(malloc(pmax + 1), 0, 16);
	TRY(malloc(pmax), 0, 16);
	TRY(malloc(pmax - 4096), 0, 16);
	TRY(malloc((size_t)1 << 47), 0, 16);
	TRY(malloc(0), 0, 16);
	TRY(malloc(1), 1, 16);
	TRY(calloc(half, 2), 0, 16);
	TRY(calloc(2, half), 0, 16);
	TRY(calloc((size_t)1 << 32, (size_t)1 << 32), 0, 16);
	TRY(calloc(SIZE_MAX, SIZE_MAX), 0, 16);
	TRY(calloc(pmax / 2 + 1, 2), 0, 16);
	TRY(calloc(0, SIZE_MAX), 0, 16);
	TRY(calloc(0, 0), 0, 16);
	TRY(reallocarray(NULL, half, 2), 0, 16);
	TRY(reallocarray(NULL, 16, 16), 256, 16);
	try_realloc(SIZE_MAX);
	try_realloc(pmax + 1);
	try_realloc(pmax);
	try_realloc(0);
	try_realloc(100);
	TRY(realloc(NULL, 0), 0, 16);
	TRY(realloc(NULL, SIZE_MAX), 0, 16);
	TRY(aligned_alloc(0, 16), 16, 16);
	TRY(aligned_alloc(3, 16), 16, 16);
	TRY(aligned_alloc(24, 48), 48, 32);
	TRY(aligned_alloc(64, 100), 100, 64);
	TRY(aligned_alloc(4096, 4096), 4096, 4096);
	TRY(aligned_alloc(half, 16), 0, 1);
	TRY(aligned_alloc(16, SIZE_MAX), 0, 16);
	TRY(aligned_alloc(8, sz), sz, 16);
	TRY(memalign(0, 16), 16, 16);
	TRY(memalign(3, 16), 16, 16);
	TRY(memalign(24, 16), 16, 32);
	TRY(memalign(1, 16), 16, 16);
	TRY(memalign(half, 16), 0, 1);
	TRY(memalign(4096, SIZE_MAX - 8192), 0, 1);
	TRY(valloc(SIZE_MAX), 0, 1);
	TRY(valloc(1), 1, 4096);
	TRY(pvalloc(SIZE_MAX), 0, 1);
	TRY(pvalloc(SIZE_MAX - 4095), 0, 1);
	TRY(pvalloc(1), 1, 4096);
	try_posix(0, 16);
	try_posix(4, 16);
	try_posix(8, 16);
	try_posix(24, 16);
	try_posix(48, 16);
	try_posix(16, 0);
	try_posix(64, SIZE_MAX);
	try_posix(64, pmax + 1);
	try_posix(half, 16);
	try_posix(4096, SIZE_MAX - 4096);

	/* errno is preserved across successful calls and free. */
	errno = ERRNO_SENTINEL;
	vp = malloc(24);
	free(vp);
	free(NULL);
	vp = calloc(3, 8);
	vp = realloc(vp, 4000);
	free(vp);
	printf("%-44s -> errno=%s\n", "malloc/calloc/realloc/free succeed",
	       errname(errno));
	printf("%-44s -> %zu\n", "malloc_usable_size(NULL)",
	       malloc_usable_size(NULL));
	return 0;
}
