/*
 * thread_cost.c - what a thread costs: threads that each allocate a few
 * objects of a few size classes and then wait, all alive at once. The
 * resident set with one such thread and with all of them gives the
 * memory each extra thread costs, allocator state and stack together
 * (the stack is the same under every allocator).
 *
 * Usage: thread_cost [threads=64] [per_class=4] [sizes=24,96,320]
 * Prints per_thread_bytes ((RSS with all - RSS with one) / (threads - 1),
 * the headline), rss_one_bytes, rss_all_bytes, peak_rss_bytes and a
 * checksum.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MAX_SIZES 16

static size_t sizes[MAX_SIZES];
static long nr_sizes, per_class = 4;
static sem_t ready, go;

struct worker {
	pthread_t thread;
	long id;
	uint64_t checksum;
};

static void *
hold(void *arg)
{
	struct worker *w = arg;
	unsigned char *obj[MAX_SIZES * 64];
	long n = 0;

	for (long c = 0; c < nr_sizes; c++)
		for (long i = 0; i < per_class; i++, n++) {
			obj[n] = malloc(sizes[c]);
			if (!obj[n])
				abort();
			memset(obj[n], (int)(w->id + i), sizes[c]);
		}
	sem_post(&ready);
	sem_wait(&go);
	n = 0;
	for (long c = 0; c < nr_sizes; c++)
		for (long i = 0; i < per_class; i++, n++) {
			w->checksum += obj[n][sizes[c] - 1];
			free(obj[n]);
		}
	return NULL;
}

static int
parse_sizes(char *s)
{
	for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
		if (nr_sizes == MAX_SIZES || atol(tok) < 1)
			return -1;
		sizes[nr_sizes++] = (size_t)atol(tok);
	}
	return nr_sizes ? 0 : -1;
}

static int
start(struct worker *w, long id)
{
	w->id = id;
	if (pthread_create(&w->thread, NULL, hold, w))
		return -1;
	sem_wait(&ready);
	return 0;
}

int
main(int argc, char **argv)
{
	long nr_threads = arg_long(argc, argv, 1, 64);
	char def_sizes[] = "24,96,320";
	long one, all;
	struct worker *w;
	uint64_t sum = 0;

	per_class = arg_long(argc, argv, 2, per_class);
	if (nr_threads < 2 || per_class < 1 || per_class > 64 ||
	    parse_sizes(argc > 3 ? argv[3] : def_sizes)) {
		fprintf(stderr, "usage: thread_cost [threads>=2] "
			"[per_class 1..64] [size,size,...]\n");
		return 2;
	}
	w = calloc(nr_threads, sizeof(*w));
	if (!w || sem_init(&ready, 0, 0) || sem_init(&go, 0, 0))
		return 1;
	if (start(&w[0], 0))
		return 1;
	one = rss_bytes();
	for (long i = 1; i < nr_threads; i++)
		if (start(&w[i], i))
			return 1;
	all = rss_bytes();
	for (long i = 0; i < nr_threads; i++)
		sem_post(&go);
	for (long i = 0; i < nr_threads; i++) {
		pthread_join(w[i].thread, NULL);
		sum += w[i].checksum;
	}
	free(w);
	printf("workload thread_cost\nthreads %ld\n", nr_threads);
	printf("per_thread_bytes %ld\nrss_one_bytes %ld\nrss_all_bytes %ld\n",
	       (all - one) / (nr_threads - 1), one, all);
	printf("peak_rss_bytes %ld\nchecksum %llu\n", hwm_bytes(),
	       (unsigned long long)sum);
	return 0;
}
