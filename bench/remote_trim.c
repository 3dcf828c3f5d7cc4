/*
 * remote_trim.c - memory freed into another thread's heap: a worker
 * thread allocates a large number of small objects and then stays alive
 * and idle; the main thread frees them all and calls malloc_trim(0). An
 * allocator that only reclaims what the calling thread owns keeps the
 * memory stranded in the idle thread. Then main allocates the same again:
 * the peak shows whether the freed memory was reused.
 *
 * Usage: remote_trim [total_mib=192] [size=64]
 * Prints rss_trim_bytes (after the frees and malloc_trim, the headline),
 * rss_full_bytes (the worker's objects live), peak_rss_bytes (the
 * high-water mark, reached when main has allocated the same again) and a
 * checksum.
 */
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* Objects are chained through their first word: no array to allocate. */
struct obj {
	struct obj *next;
	uint64_t tag;
};

static long nr_objs;
static size_t obj_size = 64;
static struct obj *worker_list;
static sem_t made, done;

static struct obj *
make_list(uint64_t salt)
{
	struct obj *head = NULL;

	for (long i = 0; i < nr_objs; i++) {
		struct obj *o = malloc(obj_size);

		if (!o)
			abort();
		o->next = head;
		o->tag = (uint64_t)i * salt;
		((unsigned char *)o)[obj_size - 1] = (unsigned char)i;
		head = o;
	}
	return head;
}

static uint64_t
free_list(struct obj *o)
{
	uint64_t sum = 0;

	while (o) {
		struct obj *next = o->next;

		sum += o->tag + ((unsigned char *)o)[obj_size - 1];
		free(o);
		o = next;
	}
	return sum;
}

static void *
worker(void *arg)
{
	(void)arg;
	worker_list = make_list(3);
	sem_post(&made);
	/* Idle until the end: no allocator call from here on. */
	sem_wait(&done);
	return NULL;
}

int
main(int argc, char **argv)
{
	long total_mib = arg_long(argc, argv, 1, 192);
	long full, trimmed, peak;
	uint64_t sum;
	pthread_t t;

	obj_size = (size_t)arg_long(argc, argv, 2, (long)obj_size);
	if (total_mib < 1 || obj_size < sizeof(struct obj)) {
		fprintf(stderr, "usage: remote_trim [total_mib] [size>=16]\n");
		return 2;
	}
	nr_objs = (long)(((size_t)total_mib << 20) / obj_size);
	if (sem_init(&made, 0, 0) || sem_init(&done, 0, 0) ||
	    pthread_create(&t, NULL, worker, NULL))
		return 1;
	sem_wait(&made);
	full = rss_bytes();
	sum = free_list(worker_list);
	malloc_trim(0);
	trimmed = rss_bytes();
	sum += free_list(make_list(5)) * 7;
	peak = hwm_bytes();
	sem_post(&done);
	pthread_join(t, NULL);
	printf("workload remote_trim\nobjects %ld\n", nr_objs);
	printf("rss_trim_bytes %ld\nrss_full_bytes %ld\n", trimmed, full);
	printf("peak_rss_bytes %ld\nchecksum %llu\n", peak,
	       (unsigned long long)sum);
	return 0;
}
