/*
 * thread_survivors.c - short-lived threads that leave objects behind:
 * every round starts a batch of threads; each allocates one small object
 * (48..144 B), swaps it into a shared table and frees the object it took
 * out, then exits. The objects outlive the threads that made them, so an
 * allocator that gives each new thread fresh slabs instead of reusing
 * what exited threads left pins a page per survivor.
 *
 * Usage: thread_survivors [rounds=500] [threads=10] [slots=1000]
 *                         [min_size=48] [max_size=144]
 * Prints peak_rss_bytes (the process's high-water RSS, the headline),
 * rss_end_bytes (with the table still full) and a checksum.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

struct job {
	pthread_t thread;
	uint64_t tag;		/* round * threads + index: which slot, what data */
	uint64_t taken;		/* what the swapped-out object held */
};

static _Atomic(uint64_t *) *table;
static long nr_slots = 1000;
static long min_size = 48, max_size = 144;

static void *
survive(void *arg)
{
	struct job *j = arg;
	uint64_t seed = 0x9e3779b97f4a7c15ULL ^ (j->tag * 0x2545f4914f6cdd1dULL);
	size_t n = min_size + rng_next(&seed) %
		   (uint64_t)(max_size - min_size + 1);
	/* 7919 is prime to slots of 1000: the slots of one round differ. */
	long k = (long)((j->tag * 7919) % (uint64_t)nr_slots);
	uint64_t *p = malloc(n), *old;

	if (!p)
		abort();
	memset(p, 0x5a, n);
	p[0] = j->tag;
	p[1] = n;
	old = atomic_exchange(&table[k], p);
	if (old) {
		j->taken = old[0] * 31 + old[1];
		free(old);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	long nr_rounds = arg_long(argc, argv, 1, 500);
	long nr_threads = arg_long(argc, argv, 2, 10);
	struct job *jobs;
	uint64_t sum = 0;
	long end;

	nr_slots = arg_long(argc, argv, 3, nr_slots);
	min_size = arg_long(argc, argv, 4, min_size);
	max_size = arg_long(argc, argv, 5, max_size);
	if (nr_rounds < 1 || nr_threads < 1 || nr_slots < nr_threads ||
	    nr_slots % 7919 == 0 || min_size < 16 || max_size < min_size) {
		fprintf(stderr, "usage: thread_survivors [rounds] [threads] "
			"[slots>=threads] [min_size>=16] [max_size]\n");
		return 2;
	}
	table = calloc(nr_slots, sizeof(*table));
	jobs = calloc(nr_threads, sizeof(*jobs));
	if (!table || !jobs)
		return 1;
	for (long r = 0; r < nr_rounds; r++) {
		for (long i = 0; i < nr_threads; i++) {
			jobs[i].tag = (uint64_t)(r * nr_threads + i);
			jobs[i].taken = 0;
			if (pthread_create(&jobs[i].thread, NULL, survive,
					   &jobs[i]))
				return 1;
		}
		for (long i = 0; i < nr_threads; i++) {
			pthread_join(jobs[i].thread, NULL);
			sum += jobs[i].taken;
		}
	}
	end = rss_bytes();
	for (long k = 0; k < nr_slots; k++) {
		uint64_t *p = atomic_load(&table[k]);

		if (p)
			sum += p[0] + p[1];
		free(p);
	}
	free(table);
	free(jobs);
	printf("workload thread_survivors\nrounds %ld\nthreads %ld\n",
	       nr_rounds, nr_threads);
	printf("peak_rss_bytes %ld\nrss_end_bytes %ld\n", hwm_bytes(), end);
	printf("checksum %llu\n", (unsigned long long)sum);
	return 0;
}
