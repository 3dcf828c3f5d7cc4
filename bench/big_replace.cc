/*
 * big_replace.cc - large buffers replaced at random: a set of live
 * buffers of min_mib..max_mib, one replaced at random each step by a new
 * one that the program zero-fills in full (`new char[n]()`, as a
 * std::vector<char>(n) or an image buffer would). An allocator that maps
 * fresh pages for every block pays a page fault per 4 KiB on top of the
 * memset; one that reuses the freed block dirty pays the memset only.
 *
 * Usage: big_replace [replacements=2000] [buffers=20] [min_mib=5]
 *                    [max_mib=25]
 * Prints seconds (the replacement loop, the headline), gibps (bytes
 * zero-filled per second) and a checksum.
 */
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "bench.h"

struct buffer {
	char *p;
	size_t n;
};

static size_t
pick_size(uint64_t *seed, size_t lo, size_t hi)
{
	return lo + rng_next(seed) % (hi - lo + 1);
}

/* The block's bytes must read as zero; write two of them afterwards so
 * that the next owner's zero-fill has something to undo. */
static uint64_t
fill(buffer *b, uint64_t *seed, size_t lo, size_t hi)
{
	uint64_t at;

	b->n = pick_size(seed, lo, hi);
	b->p = new char[b->n]();
	at = rng_next(seed) % b->n;
	if (b->p[at] || b->p[b->n - 1])
		abort();
	b->p[at] = 1;
	b->p[b->n - 1] = 2;
	return at + b->n;
}

int
main(int argc, char **argv)
{
	long nr_repl = arg_long(argc, argv, 1, 2000);
	long nr_bufs = arg_long(argc, argv, 2, 20);
	long min_mib = arg_long(argc, argv, 3, 5);
	long max_mib = arg_long(argc, argv, 4, 25);
	uint64_t seed = 0x853c49e6748fea9bULL, sum = 0;
	double filled = 0, t0, t1;
	buffer *b;

	if (nr_repl < 1 || nr_bufs < 1 || min_mib < 1 || max_mib < min_mib) {
		fprintf(stderr, "usage: big_replace [replacements] [buffers] "
			"[min_mib] [max_mib]\n");
		return 2;
	}
	size_t lo = (size_t)min_mib << 20, hi = (size_t)max_mib << 20;
	b = new buffer[nr_bufs];
	for (long i = 0; i < nr_bufs; i++)
		sum += fill(&b[i], &seed, lo, hi);
	t0 = now_s();
	for (long i = 0; i < nr_repl; i++) {
		buffer *v = &b[rng_next(&seed) % (uint64_t)nr_bufs];

		delete[] v->p;
		sum += fill(v, &seed, lo, hi);
		filled += (double)v->n;
	}
	t1 = now_s();
	for (long i = 0; i < nr_bufs; i++)
		delete[] b[i].p;
	delete[] b;
	printf("workload big_replace\nreplacements %ld\n", nr_repl);
	printf("seconds %.4f\ngibps %.2f\n", t1 - t0,
	       filled / (t1 - t0) / (1 << 30));
	printf("checksum %llu\n", (unsigned long long)sum);
	return 0;
}
