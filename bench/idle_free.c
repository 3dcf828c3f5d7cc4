/*
 * idle_free.c - memory given back while the program is idle: allocate
 * and write a heap of medium blocks, free them all, then sleep without
 * calling the allocator. What the resident set is after the sleep is
 * what an idle program keeps of memory it no longer uses; glibc trims the
 * top of its heap at the free itself.
 *
 * Usage: idle_free [total_mib=28] [block_kib=64] [sleep_ms=2000]
 * Prints rss_idle_bytes (after the sleep, the headline), rss_freed_bytes
 * (at once after the frees), rss_full_bytes (with the blocks live),
 * rss_base_bytes (before) and a checksum.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MAX_BLOCKS 65536

static unsigned char *blk[MAX_BLOCKS];

int
main(int argc, char **argv)
{
	long total_mib = arg_long(argc, argv, 1, 28);
	long block_kib = arg_long(argc, argv, 2, 64);
	long sleep_ms = arg_long(argc, argv, 3, 2000);
	long nr_blocks = total_mib * 1024 / (block_kib ? block_kib : 1);
	size_t size = (size_t)block_kib << 10;
	struct timespec nap = { sleep_ms / 1000, sleep_ms % 1000 * 1000000 };
	long base, full, freed, idle;
	uint64_t sum = 0;

	if (total_mib < 1 || block_kib < 1 || nr_blocks < 1 ||
	    nr_blocks > MAX_BLOCKS || sleep_ms < 0) {
		fprintf(stderr, "usage: idle_free [total_mib] [block_kib] "
			"[sleep_ms]\n");
		return 2;
	}
	base = rss_bytes();
	for (long i = 0; i < nr_blocks; i++) {
		blk[i] = malloc(size);
		if (!blk[i])
			abort();
		memset(blk[i], (int)(i | 1), size);
	}
	full = rss_bytes();
	for (long i = 0; i < nr_blocks; i++) {
		sum += blk[i][i % (long)size];
		free(blk[i]);
	}
	freed = rss_bytes();
	while (nanosleep(&nap, &nap))
		;
	idle = rss_bytes();
	printf("workload idle_free\nblocks %ld\n", nr_blocks);
	printf("rss_idle_bytes %ld\nrss_freed_bytes %ld\n", idle, freed);
	printf("rss_full_bytes %ld\nrss_base_bytes %ld\n", full, base);
	printf("checksum %llu\n", (unsigned long long)sum);
	return 0;
}
