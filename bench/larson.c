/*
 * larson.c - server churn in the style of Larson and Krishnan's benchmark:
 * each thread replaces random blocks of a table of live objects, then
 * exits and hands the table to a new thread of the next round, so most
 * blocks are freed by a thread other than the one that allocated them,
 * and every round exercises thread start and exit.
 *
 * The same source built as C++ (larson_cxx.cc) takes its blocks from
 * operator new and gives them back through sized operator delete, as C++
 * servers do; the C build uses malloc and free.
 *
 * Usage: larson [threads=2] [rounds=40] [ops_per_round=1000000]
 *               [slots=2000] [min_size=16] [max_size=1024]
 * Prints ops_per_sec and a checksum independent of allocator and timing
 * (the same for both builds).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench.h"

#ifdef __cplusplus
#include <new>
#define WORKLOAD "larson_cxx"
#define obj_alloc(n) static_cast<unsigned char *>(::operator new(n))
#define obj_free(p, n) ::operator delete(p, n)
#define cast(type, v) static_cast<type>(v)
#else
#define WORKLOAD "larson"
#define obj_alloc(n) malloc(n)
#define obj_free(p, n) free(p)
#define cast(type, v) (v)
#endif

struct table {
	unsigned char **obj;
	size_t *len;
	uint64_t seed;
	uint64_t checksum;
	pthread_t thread;
	char pad[64];
};

static long nr_ops = 1000000;
static long nr_slots = 2000;
static long min_size = 16, max_size = 1024;

static unsigned char *
make(struct table *t, long k)
{
	size_t n = min_size + rng_next(&t->seed) %
		   (uint64_t)(max_size - min_size + 1);
	unsigned char *p = obj_alloc(n);

	if (!p)
		abort();
	p[0] = (unsigned char)t->seed;
	p[n - 1] = (unsigned char)(t->seed >> 8);
	t->len[k] = n;
	return p;
}

static void *
round_work(void *arg)
{
	struct table *t = cast(struct table *, arg);

	for (long i = 0; i < nr_ops; i++) {
		long k = (long)(rng_next(&t->seed) % (uint64_t)nr_slots);
		unsigned char *p = t->obj[k];

		t->checksum += p[0] + p[t->len[k] - 1];
		obj_free(p, t->len[k]);
		t->obj[k] = make(t, k);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	long nr_threads = argc > 1 ? atol(argv[1]) : 2;
	long nr_rounds = argc > 2 ? atol(argv[2]) : 40;
	struct table *tab;
	uint64_t sum = 0;
	double t0, t1;

	if (argc > 3)
		nr_ops = atol(argv[3]);
	if (argc > 4)
		nr_slots = atol(argv[4]);
	if (argc > 5)
		min_size = atol(argv[5]);
	if (argc > 6)
		max_size = atol(argv[6]);
	if (nr_threads < 1 || nr_rounds < 1 || nr_ops < 1 || nr_slots < 1 ||
	    min_size < 2 || max_size < min_size) {
		fprintf(stderr, "usage: larson [threads] [rounds] [ops] "
			"[slots] [min_size>=2] [max_size]\n");
		return 2;
	}
	tab = cast(struct table *, calloc(nr_threads, sizeof(*tab)));
	if (!tab)
		return 1;
	t0 = now_s();
	for (long i = 0; i < nr_threads; i++) {
		tab[i].seed = 0x853c49e6748fea9bULL * (i + 1);
		tab[i].obj = cast(unsigned char **,
				  malloc(nr_slots * sizeof(*tab[i].obj)));
		tab[i].len = cast(size_t *,
				  malloc(nr_slots * sizeof(*tab[i].len)));
		if (!tab[i].obj || !tab[i].len)
			return 1;
		for (long k = 0; k < nr_slots; k++)
			tab[i].obj[k] = make(&tab[i], k);
	}
	/* A table moves to a new thread every round: its blocks are freed by
	 * a thread that did not allocate them, and the old thread is gone. */
	for (long r = 0; r < nr_rounds; r++) {
		for (long i = 0; i < nr_threads; i++)
			if (pthread_create(&tab[i].thread, NULL, round_work,
					   &tab[i]))
				return 1;
		for (long i = 0; i < nr_threads; i++)
			pthread_join(tab[i].thread, NULL);
	}
	for (long i = 0; i < nr_threads; i++) {
		for (long k = 0; k < nr_slots; k++)
			obj_free(tab[i].obj[k], tab[i].len[k]);
		free(tab[i].obj);
		free(tab[i].len);
		sum += tab[i].checksum;
	}
	t1 = now_s();
	printf("workload " WORKLOAD "\nthreads %ld\nops %ld\n", nr_threads,
	       nr_threads * nr_rounds * nr_ops);
	printf("ops_per_sec %.0f\n",
	       nr_threads * nr_rounds * nr_ops / (t1 - t0));
	printf("checksum %llu\n", (unsigned long long)sum);
	free(tab);
	return 0;
}
