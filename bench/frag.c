/*
 * frag.c - mixed sizes with a long-lived working set (fragmentation).
 * Each round allocates a batch whose size mix differs from the last
 * (small, medium, wide), keeps a few of the new objects in a long-lived
 * set, replacing random older ones, and frees the rest. The survivors are
 * scattered over memory that held the whole batch, so an allocator that
 * cannot give partly used memory back ends with RSS far above live bytes.
 *
 * Usage: frag [rounds=12] [objects=150000] [keep_permille=40]
 *             [live_max=40000] [settle_ms=1500]
 * Prints live_bytes, rss_base_bytes (before the first round), rss_end_bytes
 * (right after the last round), rss_settled_bytes (after settle_ms idle,
 * for allocators that return memory with a delay), the overhead ratio
 * (rss - base) / live for both, rss_over_live (settled RSS / live) and a
 * checksum.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

struct obj {
	unsigned char *p;
	size_t n;
};

/* Log-uniform size between 2^lo and 2^hi bytes. */
static size_t
pick_size(uint64_t r, unsigned lo, unsigned hi)
{
	unsigned e = lo + (unsigned)(r % (hi - lo));
	size_t base = (size_t)1 << e;

	return base + (r >> 8) % base;
}

static void
fill(struct obj *o, uint64_t tag)
{
	memset(o->p, (int)(tag & 0xff), o->n < 256 ? o->n : 256);
	o->p[o->n - 1] = (unsigned char)(tag >> 8);
}

int
main(int argc, char **argv)
{
	long nr_rounds = argc > 1 ? atol(argv[1]) : 12;
	long nr_objects = argc > 2 ? atol(argv[2]) : 150000;
	long keep = argc > 3 ? atol(argv[3]) : 40;
	long live_max = argc > 4 ? atol(argv[4]) : 40000;
	long settle_ms = argc > 5 ? atol(argv[5]) : 1500;
	static const unsigned mix[3][2] = { { 4, 8 }, { 8, 13 }, { 4, 16 } };
	uint64_t seed = 0x94d049bb133111ebULL, sum = 0;
	long nr_live = 0, base, end, settled;
	size_t live_bytes = 0;
	struct obj *batch, *live;
	double t0, t1;

	if (nr_rounds < 1 || nr_objects < 1 || keep < 0 || keep > 1000 ||
	    live_max < 1 || settle_ms < 0) {
		fprintf(stderr, "usage: frag [rounds] [objects] "
			"[keep_permille] [live_max] [settle_ms]\n");
		return 2;
	}
	batch = calloc(nr_objects, sizeof(*batch));
	live = calloc(live_max, sizeof(*live));
	if (!batch || !live)
		return 1;
	base = rss_bytes();
	t0 = now_s();
	for (long r = 0; r < nr_rounds; r++) {
		const unsigned *m = mix[r % 3];

		for (long i = 0; i < nr_objects; i++) {
			uint64_t x = rng_next(&seed);

			batch[i].n = pick_size(x, m[0], m[1]);
			batch[i].p = malloc(batch[i].n);
			if (!batch[i].p)
				abort();
			fill(&batch[i], x);
		}
		for (long i = 0; i < nr_objects; i++) {
			uint64_t x = rng_next(&seed);
			long k;

			if ((long)(x % 1000) >= keep) {
				sum += batch[i].p[batch[i].n - 1];
				free(batch[i].p);
				continue;
			}
			k = nr_live < live_max ? nr_live++ :
			    (long)((x >> 12) % (uint64_t)live_max);
			if (live[k].p) {
				sum += live[k].p[live[k].n - 1];
				free(live[k].p);
			}
			live[k] = batch[i];
		}
	}
	t1 = now_s();
	end = rss_bytes();
	if (settle_ms)
		usleep((useconds_t)settle_ms * 1000);
	settled = rss_bytes();
	for (long k = 0; k < nr_live; k++)
		live_bytes += live[k].n;
	printf("workload frag\nrounds %ld\nlive_objects %ld\n", nr_rounds,
	       nr_live);
	printf("live_bytes %zu\nrss_base_bytes %ld\nrss_end_bytes %ld\n",
	       live_bytes, base, end);
	printf("rss_settled_bytes %ld\n", settled);
	printf("overhead_end %.3f\noverhead_settled %.3f\n",
	       (double)(end - base) / live_bytes,
	       (double)(settled - base) / live_bytes);
	printf("rss_over_live %.3f\n", (double)settled / live_bytes);
	printf("ops_per_sec %.0f\n", nr_rounds * nr_objects / (t1 - t0));
	for (long k = 0; k < nr_live; k++) {
		sum += live[k].p[live[k].n - 1] + live[k].p[0];
		free(live[k].p);
	}
	printf("checksum %llu\n", (unsigned long long)sum);
	free(batch);
	free(live);
	return 0;
}
