/*
 * falseshare.c - cache-line false-sharing check. Two phases per round:
 *  active:  all threads allocate small objects at the same time;
 *  passive: the main thread allocates pairs of neighbouring objects, keeps
 *           one of each pair and hands the other to a worker, which frees
 *           it and allocates new objects of its own.
 * After each phase it counts the 64-byte lines that hold bytes of objects
 * owned by two different threads. Such lines bounce between the cores
 * under writes; an allocator that keeps each thread's objects on its own
 * pages gets 0.
 *
 * Usage: falseshare [threads=2] [objects=20000] [rounds=40]
 * Prints shared_lines_active, shared_lines_passive, shared_lines (sum),
 * ops_per_sec and a checksum of the objects' contents.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define LINE 64

struct obj {
	unsigned char *p;
	size_t n;
};

struct worker {
	pthread_t thread;
	unsigned id;
	struct obj *given;	/* passive phase: blocks to free first */
	struct obj *mine;	/* blocks this thread allocated */
	pthread_barrier_t *start;
	uint64_t checksum;
};

struct mark {
	uintptr_t line;
	unsigned owner;
};

static const size_t sizes[] = { 8, 16, 24, 32, 40, 48, 64, 96 };
static long nr_objects = 20000;

static void
alloc_one(struct obj *o, long i, unsigned owner)
{
	size_t n = sizes[(i + owner) % (sizeof(sizes) / sizeof(sizes[0]))];

	o->p = malloc(n);
	if (!o->p)
		abort();
	memset(o->p, (int)(owner + 1), n);
	o->n = n;
}

static void
alloc_set(struct obj *o, unsigned owner)
{
	for (long i = 0; i < nr_objects; i++)
		alloc_one(&o[i], i, owner);
}

/* Frees a set; returns how many objects still held their owner's bytes. */
static uint64_t
free_set(struct obj *o, unsigned owner)
{
	uint64_t ok = 0;

	for (long i = 0; i < nr_objects; i++) {
		ok += o[i].p[0] == owner + 1 &&
		      o[i].p[o[i].n - 1] == owner + 1;
		free(o[i].p);
	}
	return ok;
}

static void *
work(void *arg)
{
	struct worker *w = arg;

	pthread_barrier_wait(w->start);
	if (w->given)
		w->checksum += free_set(w->given, 0);
	alloc_set(w->mine, w->id);
	return NULL;
}

static int
by_line(const void *a, const void *b)
{
	const struct mark *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return (int)x->owner - (int)y->owner;
}

/* sets[t] belongs to owner t; counts the lines touched by two owners. */
static long
count_shared(struct obj **sets, long nr_sets)
{
	long cap = nr_sets * nr_objects * 4, n = 0, shared = 0;
	struct mark *m = malloc(cap * sizeof(*m));

	if (!m)
		abort();
	for (long t = 0; t < nr_sets; t++) {
		for (long i = 0; i < nr_objects; i++) {
			uintptr_t a = (uintptr_t)sets[t][i].p / LINE;
			uintptr_t b = ((uintptr_t)sets[t][i].p +
				       sets[t][i].n - 1) / LINE;

			for (uintptr_t l = a; l <= b && n < cap; l++)
				m[n++] = (struct mark){ l, (unsigned)t };
		}
	}
	qsort(m, n, sizeof(*m), by_line);
	for (long i = 0, j; i < n; i = j) {
		bool mixed = false;

		for (j = i + 1; j < n && m[j].line == m[i].line; j++)
			mixed |= m[j].owner != m[i].owner;
		shared += mixed;
	}
	free(m);
	return shared;
}

static void
run_threads(struct worker *w, long nr)
{
	for (long t = 0; t < nr; t++)
		if (pthread_create(&w[t].thread, NULL, work, &w[t]))
			abort();
	for (long t = 0; t < nr; t++)
		pthread_join(w[t].thread, NULL);
}

static struct obj *
new_set(void)
{
	struct obj *o = calloc(nr_objects, sizeof(*o));

	if (!o)
		abort();
	return o;
}

/* Active phase: every worker allocates at the same time. */
static long
phase_active(struct worker *w, struct obj **mine, long nr, uint64_t *sum)
{
	pthread_barrier_t start;
	long shared;

	pthread_barrier_init(&start, NULL, (unsigned)nr);
	for (long t = 0; t < nr; t++)
		w[t] = (struct worker){ .id = (unsigned)t + 1,
					.mine = mine[t], .start = &start };
	run_threads(w, nr);
	shared = count_shared(mine, nr);
	for (long t = 0; t < nr; t++)
		*sum += free_set(mine[t], (unsigned)t + 1);
	pthread_barrier_destroy(&start);
	return shared;
}

/* Passive phase: the main thread (owner 0) allocates a kept object next to
 * one for each worker; the workers free theirs and allocate new ones. */
static long
phase_passive(struct worker *w, struct obj **sets, long nr, uint64_t *sum)
{
	pthread_barrier_t start;
	struct obj *kept = sets[0], *given[nr];
	long shared;

	for (long t = 0; t < nr; t++)
		given[t] = new_set();
	for (long i = 0; i < nr_objects; i++) {
		alloc_one(&kept[i], i, 0);
		for (long t = 0; t < nr; t++)
			alloc_one(&given[t][i], i, 0);
	}
	pthread_barrier_init(&start, NULL, (unsigned)nr);
	for (long t = 0; t < nr; t++)
		w[t] = (struct worker){ .id = (unsigned)t + 1,
					.given = given[t],
					.mine = sets[t + 1], .start = &start };
	run_threads(w, nr);
	shared = count_shared(sets, nr + 1);
	*sum += free_set(kept, 0);
	for (long t = 0; t < nr; t++) {
		*sum += w[t].checksum + free_set(sets[t + 1], (unsigned)t + 1);
		free(given[t]);
	}
	pthread_barrier_destroy(&start);
	return shared;
}

int
main(int argc, char **argv)
{
	long nr_threads = argc > 1 ? atol(argv[1]) : 2;
	long nr_rounds = argc > 3 ? atol(argv[3]) : 40;
	long active = 0, passive = 0;
	uint64_t sum = 0;
	struct worker *w;
	struct obj **sets;
	double t0, t1;

	if (argc > 2)
		nr_objects = atol(argv[2]);
	if (nr_threads < 2 || nr_objects < 1 || nr_rounds < 1) {
		fprintf(stderr, "usage: falseshare [threads>=2] [objects] "
			"[rounds]\n");
		return 2;
	}
	w = calloc(nr_threads, sizeof(*w));
	sets = calloc(nr_threads + 1, sizeof(*sets));
	if (!w || !sets)
		return 1;
	for (long t = 0; t <= nr_threads; t++)
		sets[t] = new_set();
	t0 = now_s();
	for (long r = 0; r < nr_rounds; r++) {
		active += phase_active(w, sets, nr_threads, &sum);
		passive += phase_passive(w, sets, nr_threads, &sum);
	}
	t1 = now_s();
	printf("workload falseshare\nthreads %ld\n", nr_threads);
	printf("shared_lines_active %ld\nshared_lines_passive %ld\n", active,
	       passive);
	printf("shared_lines %ld\n", active + passive);
	printf("ops_per_sec %.0f\n",
	       nr_rounds * nr_objects * (4.0 * nr_threads + 1) / (t1 - t0));
	printf("checksum %llu\n", (unsigned long long)sum);
	for (long t = 0; t <= nr_threads; t++)
		free(sets[t]);
	free(sets);
	free(w);
	return 0;
}
