/*
 * prodcons.c - producer/consumer with cross-thread frees: a producer
 * mallocs messages and passes them through a lock-free single-producer
 * single-consumer ring; the consumer reads and frees them. Every free is
 * of a block another thread allocated (the remote-free path).
 *
 * Usage: prodcons [pairs=1] [messages_per_pair=5000000] [max_size=256]
 * Prints ops_per_sec (messages per second over all pairs) and a checksum
 * of the message contents.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench.h"

#define RING_SIZE 4096

struct ring {
	_Alignas(64) atomic_ulong head;	/* written by the producer */
	_Alignas(64) atomic_ulong tail;	/* written by the consumer */
	_Alignas(64) uint64_t *slot[RING_SIZE];
	pthread_t producer, consumer;
	unsigned id;
	uint64_t checksum;
};

static long nr_messages = 5000000;
static long max_size = 256;

/* Spin briefly, then yield so an oversubscribed machine still progresses. */
static void
backoff(unsigned *spins)
{
	if (++*spins < 200)
		__builtin_ia32_pause();
	else
		sched_yield();
}

static void *
produce(void *arg)
{
	struct ring *r = arg;
	uint64_t seed = 0x2545f4914f6cdd1dULL * (r->id + 1);
	unsigned long head = 0, tail_seen = 0;

	for (long i = 0; i < nr_messages; i++) {
		size_t n = 17 + rng_next(&seed) % (size_t)(max_size - 16);
		uint64_t *m = malloc(n);
		unsigned spins = 0;

		if (!m)
			abort();
		m[0] = (uint64_t)i;
		m[1] = n;
		((unsigned char *)m)[n - 1] = (unsigned char)i;
		while (head - tail_seen >= RING_SIZE) {
			tail_seen = atomic_load_explicit(&r->tail,
							 memory_order_acquire);
			if (head - tail_seen >= RING_SIZE)
				backoff(&spins);
		}
		r->slot[head % RING_SIZE] = m;
		atomic_store_explicit(&r->head, ++head, memory_order_release);
	}
	return NULL;
}

static void *
consume(void *arg)
{
	struct ring *r = arg;
	unsigned long tail = 0, head_seen = 0;
	uint64_t sum = 0;

	for (long i = 0; i < nr_messages; i++) {
		unsigned spins = 0;
		uint64_t *m;

		while (tail == head_seen) {
			head_seen = atomic_load_explicit(&r->head,
							 memory_order_acquire);
			if (tail == head_seen)
				backoff(&spins);
		}
		m = r->slot[tail % RING_SIZE];
		sum += m[0] + m[1] + ((unsigned char *)m)[m[1] - 1];
		free(m);
		atomic_store_explicit(&r->tail, ++tail, memory_order_release);
	}
	r->checksum = sum;
	return NULL;
}

int
main(int argc, char **argv)
{
	long nr_pairs = argc > 1 ? atol(argv[1]) : 1;
	struct ring *rings;
	uint64_t sum = 0;
	double t0, t1;

	if (argc > 2)
		nr_messages = atol(argv[2]);
	if (argc > 3)
		max_size = atol(argv[3]);
	if (nr_pairs < 1 || nr_messages < 1 || max_size < 17) {
		fprintf(stderr, "usage: prodcons [pairs] [messages] "
			"[max_size>=17]\n");
		return 2;
	}
	rings = aligned_alloc(64, sizeof(*rings) * nr_pairs);
	if (!rings)
		return 1;
	t0 = now_s();
	for (long i = 0; i < nr_pairs; i++) {
		struct ring *r = &rings[i];

		atomic_init(&r->head, 0);
		atomic_init(&r->tail, 0);
		r->id = (unsigned)i;
		if (pthread_create(&r->consumer, NULL, consume, r) ||
		    pthread_create(&r->producer, NULL, produce, r))
			return 1;
	}
	for (long i = 0; i < nr_pairs; i++) {
		pthread_join(rings[i].producer, NULL);
		pthread_join(rings[i].consumer, NULL);
		sum += rings[i].checksum;
	}
	t1 = now_s();
	printf("workload prodcons\nthreads %ld\nops %ld\n", 2 * nr_pairs,
	       nr_pairs * nr_messages);
	printf("ops_per_sec %.0f\n", nr_pairs * nr_messages / (t1 - t0));
	printf("checksum %llu\n", (unsigned long long)sum);
	free(rings);
	return 0;
}
