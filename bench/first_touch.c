/*
 * first_touch.c - first-touch throughput: write every byte of a fresh
 * region obtained four ways and report GiB/s for each:
 *   calloc   - a large calloc (zero-backed under zpmalloc);
 *   mmap     - a private anonymous mmap through libc (which zpmalloc may
 *              interpose above its threshold);
 *   native   - the same mmap as a raw system call, never interposed: the
 *              kernel's own first-touch cost, the yardstick;
 * and recycled memory: calloc/free of a medium block written each time,
 * against malloc + memset + free of the same block.
 *
 * Usage: first_touch [region_mib=256] [reps=3] [recycle_kib=1024]
 *                    [recycle_iters=2000]
 * Prints calloc_gibps, mmap_gibps, native_gibps, recycled_calloc_gibps,
 * recycled_memset_gibps and a checksum.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

enum { KIND_CALLOC, KIND_MMAP, KIND_NATIVE, NR_KINDS };

static const char *const kind_name[NR_KINDS] = { "calloc", "mmap",
						 "native" };

/* Not inlined into a known-zero allocation by the compiler. */
static void *(*volatile clear)(void *, int, size_t) = memset;

static void *
get_region(int kind, size_t size)
{
	void *p;

	switch (kind) {
	case KIND_CALLOC:
		return calloc(size, 1);
	case KIND_MMAP:
		p = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	default:
		p = (void *)syscall(SYS_mmap, NULL, size,
				    PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
}

static void
put_region(int kind, void *p, size_t size)
{
	if (kind == KIND_CALLOC)
		free(p);
	else if (kind == KIND_MMAP)
		munmap(p, size);
	else
		syscall(SYS_munmap, p, size);
}

/* Seconds to get a region and write all of it; adds samples to *sum. */
static double
touch_once(int kind, size_t size, uint64_t *sum)
{
	double t0 = now_s(), t;
	unsigned char *p = get_region(kind, size);

	if (!p)
		abort();
	if (p[size / 2] != 0)
		abort();
	clear(p, 0x5a, size);
	t = now_s() - t0;
	*sum += p[0] + p[size - 1];
	put_region(kind, p, size);
	return t;
}

static double
recycle(int use_calloc, size_t size, long iters, uint64_t *sum)
{
	double t0 = now_s();

	for (long i = 0; i < iters; i++) {
		unsigned char *p = use_calloc ? calloc(size, 1) : malloc(size);

		if (!p)
			abort();
		if (!use_calloc)
			clear(p, 0, size);
		*sum += p[i % size];
		clear(p, (int)(i | 1) & 0xff, size / 2);
		*sum += p[size / 2 - 1] != 0;
		free(p);
	}
	return now_s() - t0;
}

int
main(int argc, char **argv)
{
	long region_mib = argc > 1 ? atol(argv[1]) : 256;
	long reps = argc > 2 ? atol(argv[2]) : 3;
	long recycle_kib = argc > 3 ? atol(argv[3]) : 1024;
	long recycle_iters = argc > 4 ? atol(argv[4]) : 2000;
	double best[NR_KINDS] = { 0 }, rc, rm;
	size_t size = (size_t)region_mib << 20;
	size_t rsize = (size_t)recycle_kib << 10;
	uint64_t sum = 0;

	if (region_mib < 1 || reps < 1 || recycle_kib < 1 ||
	    recycle_iters < 1) {
		fprintf(stderr, "usage: first_touch [region_mib] [reps] "
			"[recycle_kib] [recycle_iters]\n");
		return 2;
	}
	/* Interleave the kinds so drift in the machine hits all alike; keep
	 * each kind's best repetition. */
	for (long r = 0; r < reps; r++) {
		for (int k = 0; k < NR_KINDS; k++) {
			int kind = (int)((k + r) % NR_KINDS);
			double gibps = region_mib / 1024.0 /
				       touch_once(kind, size, &sum);

			if (gibps > best[kind])
				best[kind] = gibps;
		}
	}
	rc = rm = 1e30;
	for (int r = 0; r < 2; r++) {
		double c = recycle(1, rsize, recycle_iters, &sum);
		double m = recycle(0, rsize, recycle_iters, &sum);

		rc = c < rc ? c : rc;
		rm = m < rm ? m : rm;
	}
	printf("workload first_touch\n");
	for (int k = 0; k < NR_KINDS; k++)
		printf("%s_gibps %.2f\n", kind_name[k], best[k]);
	printf("recycled_calloc_gibps %.2f\nrecycled_memset_gibps %.2f\n",
	       recycle_iters * (double)rsize / (1 << 30) / rc,
	       recycle_iters * (double)rsize / (1 << 30) / rm);
	printf("checksum %llu\n", (unsigned long long)sum);
	return 0;
}
