/*
 * realloc.c - realloc growth: buffers grow the way string builders and
 * vectors do, interleaved so no buffer sits alone at the end of the heap.
 * Three kinds per round: builders growing by small steps to 64 KiB,
 * vectors growing by an eighth to max_kib, and a few growing to 8 x
 * max_kib (large blocks: in-place growth or mremap pays off there).
 * Every grown tail is written, and the contents are checked at the end.
 *
 * Usage: realloc [rounds=12] [buffers=96] [max_kib=1024]
 * Prints ops_per_sec (reallocs per second) and a checksum of the contents.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

struct buf {
	unsigned char *p;
	size_t len, target;
	unsigned kind;
};

static size_t
next_len(const struct buf *b, uint64_t r)
{
	size_t n;

	if (b->kind == 0)
		n = b->len + 8 + r % 120;
	else
		n = b->len + b->len / 8 + 16 + r % 64;
	return n < b->target ? n : b->target;
}

/* The byte at offset i of a buffer; checkable without a copy. */
static unsigned char
pattern(size_t i, unsigned k)
{
	return (unsigned char)(i * 31 + k);
}

int
main(int argc, char **argv)
{
	long nr_rounds = argc > 1 ? atol(argv[1]) : 12;
	long nr_bufs = argc > 2 ? atol(argv[2]) : 96;
	long max_kib = argc > 3 ? atol(argv[3]) : 1024;
	uint64_t seed = 0xda942042e4dd58b5ULL, sum = 0;
	long nr_ops = 0;
	struct buf *b;
	double t0, t1;

	if (nr_rounds < 1 || nr_bufs < 1 || max_kib < 64) {
		fprintf(stderr, "usage: realloc [rounds] [buffers] "
			"[max_kib>=64]\n");
		return 2;
	}
	b = calloc(nr_bufs, sizeof(*b));
	if (!b)
		return 1;
	t0 = now_s();
	for (long r = 0; r < nr_rounds; r++) {
		long active = nr_bufs;

		for (long i = 0; i < nr_bufs; i++) {
			b[i].kind = i % 16 == 15 ? 2 : (unsigned)(i % 2);
			b[i].target = b[i].kind == 0 ? 64 << 10 :
				      b[i].kind == 1 ? (size_t)max_kib << 10 :
				      (size_t)max_kib << 13;
			b[i].target -= rng_next(&seed) % 4096;
			b[i].len = 0;
			b[i].p = NULL;
		}
		while (active) {
			active = 0;
			for (long i = 0; i < nr_bufs; i++) {
				size_t n;

				if (b[i].len == b[i].target)
					continue;
				n = next_len(&b[i], rng_next(&seed));
				b[i].p = realloc(b[i].p, n);
				if (!b[i].p)
					abort();
				for (size_t k = b[i].len; k < n; k++)
					b[i].p[k] = pattern(k, (unsigned)i);
				b[i].len = n;
				nr_ops++;
				active++;
			}
		}
		for (long i = 0; i < nr_bufs; i++) {
			for (size_t k = 0; k < b[i].len; k += 4093)
				if (b[i].p[k] != pattern(k, (unsigned)i))
					abort();
			sum += b[i].len + b[i].p[b[i].len - 1];
			free(b[i].p);
		}
	}
	t1 = now_s();
	printf("workload realloc\nops %ld\n", nr_ops);
	printf("ops_per_sec %.0f\n", nr_ops / (t1 - t0));
	printf("checksum %llu\n", (unsigned long long)sum);
	free(b);
	return 0;
}
