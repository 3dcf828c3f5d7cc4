/*
 * teardown.c - large blocks built, read and torn down, round after round:
 * each round allocates blocks of 64 KiB to 4 MiB, zero-fills them with
 * memset (as Python's bytearray(n) does), writes two bytes of each, reads
 * every byte back, keeps a small record of the round, and frees the
 * blocks, last made first (as a Python list drops its items). An
 * allocator that unmaps a torn-down block pays every page's fault again
 * in the next round; glibc's heap, its mmap threshold risen past the
 * sizes after the first frees, serves the next round from the last (the
 * record above them keeps it from trimming).
 *
 * Usage: teardown [rounds=6] [blocks=200] [max_kib=4096]
 * Prints seconds (all rounds, the headline), mibps (bytes zero-filled per
 * second) and a checksum.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MAX_BLOCKS 4096

static unsigned char *blk[MAX_BLOCKS];
static size_t len[MAX_BLOCKS];

/* 64 KiB steps, spread over the range as Python's (i * 37) % 64 does. */
static size_t
block_size(long i, long max_kib)
{
	long steps = max_kib / 64;

	return (size_t)((i * 37) % steps + 1) << 16;
}

static uint64_t
build(long nr, long max_kib, long round)
{
	uint64_t bytes = 0;

	for (long i = 0; i < nr; i++) {
		len[i] = block_size(i, max_kib);
		blk[i] = malloc(len[i]);
		if (!blk[i])
			abort();
		memset(blk[i], 0, len[i]);
		blk[i][0] = (unsigned char)(i + round);
		blk[i][len[i] - 1] = (unsigned char)(255 - i);
		bytes += len[i];
	}
	return bytes;
}

/* Every byte, as a count of zeros would; the two written ones checked. */
static uint64_t
read_back(long nr, long round)
{
	uint64_t sum = 0;

	for (long i = 0; i < nr; i++) {
		const uint64_t *w = (const uint64_t *)blk[i];
		uint64_t acc = 0;

		for (size_t k = 0; k < len[i] / 8; k++)
			acc += w[k];
		if (blk[i][0] != (unsigned char)(i + round) ||
		    blk[i][len[i] - 1] != (unsigned char)(255 - i))
			abort();
		sum += acc;
	}
	return sum;
}

int
main(int argc, char **argv)
{
	long rounds = arg_long(argc, argv, 1, 6);
	long nr = arg_long(argc, argv, 2, 200);
	long max_kib = arg_long(argc, argv, 3, 4096);
	uint64_t sum = 0, bytes = 0;
	char *note[64] = { 0 };
	double t0, t;

	if (rounds < 1 || nr < 1 || nr > MAX_BLOCKS || max_kib < 64) {
		fprintf(stderr, "usage: teardown [rounds] [blocks] [max_kib]\n");
		return 2;
	}
	t0 = now_s();
	for (long r = 0; r < rounds; r++) {
		bytes += build(nr, max_kib, r);
		sum += read_back(nr, r);
		/* A record of the round that outlives it, as a program's
		 * output buffer or log does: it sits above the blocks. */
		note[r % 64] = realloc(note[r % 64], 256);
		if (!note[r % 64])
			abort();
		snprintf(note[r % 64], 256, "round %ld: %llu", r,
			 (unsigned long long)sum);
		for (long i = nr - 1; i >= 0; i--)
			free(blk[i]);
	}
	t = now_s() - t0;
	for (int i = 0; i < 64; i++)
		free(note[i]);
	printf("workload teardown\nrounds %ld\nblocks %ld\n", rounds, nr);
	printf("seconds %.6f\nmibps %.1f\n", t, (double)bytes / t / (1 << 20));
	printf("checksum %llu\n", (unsigned long long)sum);
	return 0;
}
