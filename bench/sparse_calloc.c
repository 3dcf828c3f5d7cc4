/*
 * sparse_calloc.c - sparse calloc: allocate a large zeroed block (1 GiB by
 * default, the size varying from one iteration to the next), write one
 * byte on a small share of its pages, read a few untouched pages back as
 * zero, and free it. Memory that is never written should cost no RSS and
 * calloc should not clear what is already zero.
 *
 * Usage: sparse_calloc [iterations=100] [size_mib=1024] [touch_permille=10]
 * Prints rss_touched_max_bytes (highest RSS seen with a block live),
 * touched_bytes (pages written, as bytes), ops_per_sec (blocks per second)
 * and a checksum.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

int
main(int argc, char **argv)
{
	long nr_iter = argc > 1 ? atol(argv[1]) : 100;
	long size_mib = argc > 2 ? atol(argv[2]) : 1024;
	long permille = argc > 3 ? atol(argv[3]) : 10;
	/* sizes vary around size_mib so blocks are not simply recycled */
	static const long eighths[] = { 8, 6, 10, 4, 12, 7, 9, 5 };
	long page = sysconf(_SC_PAGESIZE), rss_max = 0, touched_max = 0;
	uint64_t sum = 0;
	double t0, t1;

	if (nr_iter < 1 || size_mib < 1 || permille < 1 || permille > 1000) {
		fprintf(stderr, "usage: sparse_calloc [iterations] [size_mib] "
			"[touch_permille 1..1000]\n");
		return 2;
	}
	t0 = now_s();
	for (long it = 0; it < nr_iter; it++) {
		size_t size = (size_t)size_mib * eighths[it % 8] << 17;
		size_t nr_pages = size / page, stride = 1000 / permille;
		long touched = 0, rss;
		unsigned char *p = calloc(size, 1);

		if (!p)
			abort();
		/* Offset by the iteration so each block writes other pages. */
		for (size_t pg = it % stride; pg < nr_pages; pg += stride) {
			p[pg * page + (pg & 63)] = (unsigned char)(pg | 1);
			touched++;
		}
		/* No byte past offset 63 is ever written: all must read 0. */
		for (size_t pg = 0; pg < nr_pages; pg += 97)
			sum += p[pg * page + page - 1];
		for (size_t pg = it % stride; pg < nr_pages; pg += stride)
			sum += p[pg * page + (pg & 63)];
		rss = rss_bytes();
		if (rss > rss_max)
			rss_max = rss;
		if (touched * page > touched_max)
			touched_max = touched * page;
		free(p);
	}
	t1 = now_s();
	printf("workload sparse_calloc\niterations %ld\n", nr_iter);
	printf("rss_touched_max_bytes %ld\ntouched_max_bytes %ld\n", rss_max,
	       touched_max);
	printf("ops_per_sec %.1f\n", nr_iter / (t1 - t0));
	printf("checksum %llu\n", (unsigned long long)sum);
	return 0;
}
