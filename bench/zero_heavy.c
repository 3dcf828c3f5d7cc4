/*
 * zero_heavy.c - memory that a program filled with zeros and then left
 * mostly unused: large blocks are malloc'd and cleared with memset (so
 * every page is resident), a few pages of each then get real data, and
 * the blocks stay live while the program idles. An allocator that finds
 * all-zero pages and hands them back to the kernel's shared zero page ends
 * with RSS near the bytes actually used; the others keep it all.
 *
 * Usage: zero_heavy [blocks=4] [block_mib=128] [used_permille=10]
 *                   [sleep_ms=2000]
 * Prints rss_filled_bytes (after the memsets), rss_t<ms>_bytes every
 * 500 ms while idle, rss_end_bytes, used_bytes and a checksum; the data
 * written is read back at the end and must be intact.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* Called through a volatile pointer so the compiler cannot turn malloc +
 * memset(0) into calloc: the point is memory the program zeroed itself. */
static void *(*volatile clear)(void *, int, size_t) = memset;

static unsigned char
pattern(long b, size_t pg)
{
	return (unsigned char)(b * 7 + pg * 13 + 1) | 1;
}

int
main(int argc, char **argv)
{
	long nr_blocks = argc > 1 ? atol(argv[1]) : 4;
	long block_mib = argc > 2 ? atol(argv[2]) : 128;
	long permille = argc > 3 ? atol(argv[3]) : 10;
	long sleep_ms = argc > 4 ? atol(argv[4]) : 2000;
	long page = sysconf(_SC_PAGESIZE), used = 0;
	unsigned char **blk;
	uint64_t sum = 0;
	size_t size, stride;

	if (nr_blocks < 1 || block_mib < 1 || permille < 1 ||
	    permille > 1000 || sleep_ms < 0) {
		fprintf(stderr, "usage: zero_heavy [blocks] [block_mib] "
			"[used_permille] [sleep_ms]\n");
		return 2;
	}
	size = (size_t)block_mib << 20;
	stride = 1000 / permille;
	blk = calloc(nr_blocks, sizeof(*blk));
	if (!blk)
		return 1;
	for (long b = 0; b < nr_blocks; b++) {
		blk[b] = malloc(size);
		if (!blk[b])
			abort();
		clear(blk[b], 0, size);
	}
	printf("workload zero_heavy\nrss_filled_bytes %ld\n", rss_bytes());
	for (long b = 0; b < nr_blocks; b++) {
		for (size_t pg = b % stride; pg < size / page; pg += stride) {
			memset(blk[b] + pg * page, pattern(b, pg), 64);
			used += page;
		}
	}
	for (long t = 500; t <= sleep_ms; t += 500) {
		usleep(500 * 1000);
		printf("rss_t%ld_bytes %ld\n", t, rss_bytes());
	}
	if (sleep_ms % 500)
		usleep((useconds_t)(sleep_ms % 500) * 1000);
	printf("rss_end_bytes %ld\nused_bytes %ld\n", rss_bytes(), used);
	/* Every written byte must have survived, and the rest be zero. */
	for (long b = 0; b < nr_blocks; b++) {
		for (size_t pg = 0; pg < size / page; pg++) {
			unsigned char *p = blk[b] + pg * page;
			int written = pg % stride == (size_t)(b % stride);

			if (p[0] != (written ? pattern(b, pg) : 0) ||
			    p[page - 1] != 0)
				abort();
			sum += p[63];
		}
		free(blk[b]);
	}
	printf("checksum %llu\n", (unsigned long long)sum);
	free(blk);
	return 0;
}
