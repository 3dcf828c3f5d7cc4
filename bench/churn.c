/*
 * churn.c - small-object churn: every thread keeps a table of live objects
 * and replaces a random one at each step, so malloc and free of small
 * blocks (mostly 8..128 bytes, now and then up to max_size) dominate.
 * This is the per-thread fast path of every allocator.
 *
 * Usage: churn [threads=1] [steps_per_thread=50000000] [slots=4096]
 *              [max_size=512]
 * threads=0 runs one worker in the main thread and starts no thread (a
 * small single-threaded program).
 * Prints ops_per_sec (malloc+free pairs per second over all threads) and a
 * checksum that depends on neither the allocator nor the scheduling.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

struct worker {
	pthread_t thread;
	unsigned id;
	uint64_t checksum;
	char pad[64];
};

static long nr_steps = 50000000;
static long nr_slots = 4096;
static long max_size = 512;

static size_t
pick_size(uint64_t r)
{
	if (r & 7)
		return 8 + (r >> 8) % 121;
	return 8 + (r >> 8) % (size_t)max_size;
}

static void *
work(void *arg)
{
	struct worker *w = arg;
	uint64_t seed = 0x9e3779b97f4a7c15ULL * (w->id + 1);
	unsigned char **slot = calloc(nr_slots, sizeof(*slot));
	size_t *len = calloc(nr_slots, sizeof(*len));
	uint64_t sum = 0;

	if (!slot || !len)
		abort();
	for (long i = 0; i < nr_steps; i++) {
		uint64_t r = rng_next(&seed);
		long k = (long)(r % (uint64_t)nr_slots);
		size_t n = pick_size(r >> 16);
		unsigned char *p;

		if (slot[k]) {
			sum += slot[k][0] + slot[k][len[k] - 1];
			free(slot[k]);
		}
		p = malloc(n);
		if (!p)
			abort();
		p[0] = (unsigned char)i;
		p[n - 1] = (unsigned char)(i >> 8);
		slot[k] = p;
		len[k] = n;
	}
	for (long k = 0; k < nr_slots; k++) {
		if (slot[k])
			sum += slot[k][0] + slot[k][len[k] - 1];
		free(slot[k]);
	}
	free(slot);
	free(len);
	w->checksum = sum;
	return NULL;
}

int
main(int argc, char **argv)
{
	long nr_threads = argc > 1 ? atol(argv[1]) : 1;
	long nr_workers = nr_threads ? nr_threads : 1;
	struct worker *w;
	uint64_t sum = 0;
	double t0, t1;

	if (argc > 2)
		nr_steps = atol(argv[2]);
	if (argc > 3)
		nr_slots = atol(argv[3]);
	if (argc > 4)
		max_size = atol(argv[4]);
	if (nr_threads < 0 || nr_steps < 1 || nr_slots < 1 || max_size < 8) {
		fprintf(stderr, "usage: churn [threads] [steps] [slots] "
			"[max_size>=8]\n");
		return 2;
	}
	w = calloc(nr_workers, sizeof(*w));
	if (!w)
		return 1;
	t0 = now_s();
	if (!nr_threads)
		work(&w[0]);
	for (long i = 0; i < nr_threads; i++) {
		w[i].id = (unsigned)i;
		if (pthread_create(&w[i].thread, NULL, work, &w[i]))
			return 1;
	}
	for (long i = 0; i < nr_threads; i++)
		pthread_join(w[i].thread, NULL);
	for (long i = 0; i < nr_workers; i++)
		sum += w[i].checksum;
	t1 = now_s();
	printf("workload churn\nthreads %ld\nops %ld\n", nr_threads,
	       nr_workers * nr_steps);
	printf("ops_per_sec %.0f\n", nr_workers * nr_steps / (t1 - t0));
	printf("checksum %llu\n", (unsigned long long)sum);
	free(w);
	return 0;
}
