/*
 * random_free.c - free in random order: a million small blocks (16..128 B)
 * are allocated, then freed in a shuffled order, the way real programs
 * drop dict tables, B-tree pages and syntax trees. Each free then reaches
 * metadata the cache has not seen lately, so the cost of the free path's
 * dependent loads shows, which a LIFO malloc/free pair hides.
 *
 * Usage: random_free [blocks=1000000] [rounds=3] [min_size=16]
 *                    [max_size=128]
 * Prints free_ns (ns per free in the shuffled phase, the headline),
 * alloc_ns (ns per malloc) and a checksum of the block contents.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

int
main(int argc, char **argv)
{
	long nr_blocks = arg_long(argc, argv, 1, 1000000);
	long nr_rounds = arg_long(argc, argv, 2, 3);
	long min_size = arg_long(argc, argv, 3, 16);
	long max_size = arg_long(argc, argv, 4, 128);
	uint64_t seed = 0x9e3779b97f4a7c15ULL, sum = 0;
	double t_alloc = 0, t_free = 0, t0;
	unsigned char **blk;

	if (nr_blocks < 1 || nr_rounds < 1 || min_size < 2 ||
	    max_size < min_size) {
		fprintf(stderr, "usage: random_free [blocks] [rounds] "
			"[min_size>=2] [max_size]\n");
		return 2;
	}
	blk = malloc(nr_blocks * sizeof(*blk));
	if (!blk)
		return 1;
	for (long r = 0; r < nr_rounds; r++) {
		t0 = now_s();
		for (long i = 0; i < nr_blocks; i++) {
			size_t n = min_size + rng_next(&seed) %
				   (uint64_t)(max_size - min_size + 1);
			unsigned char *p = malloc(n);

			if (!p)
				abort();
			p[0] = (unsigned char)i;
			p[n - 1] = (unsigned char)n;
			blk[i] = p;
		}
		t_alloc += now_s() - t0;
		/* Untimed: read back in allocation order, then shuffle. */
		for (long i = 0; i < nr_blocks; i++)
			sum += (uint64_t)blk[i][0] * 3 + (i & 0xff);
		for (long i = nr_blocks - 1; i > 0; i--) {
			long k = (long)(rng_next(&seed) % (uint64_t)(i + 1));
			unsigned char *tmp = blk[i];

			blk[i] = blk[k];
			blk[k] = tmp;
		}
		t0 = now_s();
		for (long i = 0; i < nr_blocks; i++)
			free(blk[i]);
		t_free += now_s() - t0;
	}
	free(blk);
	printf("workload random_free\nblocks %ld\nrounds %ld\n", nr_blocks,
	       nr_rounds);
	printf("alloc_ns %.2f\n", t_alloc * 1e9 / (nr_blocks * nr_rounds));
	printf("free_ns %.2f\n", t_free * 1e9 / (nr_blocks * nr_rounds));
	printf("checksum %llu\n", (unsigned long long)sum);
	return 0;
}
