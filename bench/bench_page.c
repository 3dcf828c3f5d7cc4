/*
 * bench_page.c - the page allocator alone: alloc/free of mixed orders
 * (0..4, weighted to small as a heap's slab and medium requests are) over
 * a working set, with and without the per-thread caches, on one and two
 * threads. Prints "key value" lines, value in ns per operation.
 *
 *   bench_page [ops_per_thread]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "os/os.h"
#include "page/zone.h"

enum { SLOTS = 4096 };

struct run {
	pthread_t tid;
	bool use_pcp;
	unsigned long ops;
	uint64_t seed, ns;
	uint64_t refills;
};


/* Order 0 half the time, 1 a quarter, 2 an eighth, 3 and 4 the rest. */
static unsigned
pick_order(uint64_t r)
{
	return (unsigned)__builtin_ctzll(r | (1ULL << 4));
}

static void
churn(struct run *r, struct pcp_set *pcp, struct page **slots,
      unsigned long ops)
{
	for (unsigned long i = 0; i < ops; i++) {
		uint64_t x = rng_next(&r->seed);
		struct page **s = &slots[(x >> 8) % SLOTS];

		if (*s) {
			zone_free_pages(pcp, *s);
			*s = NULL;
		} else {
			*s = zone_alloc_pages(pcp, pick_order(x), 0,
					      PAGE_MEDIUM, NULL);
			if (!*s) {
				fprintf(stderr, "bench_page: out of memory\n");
				exit(1);
			}
			*(volatile char *)page_address(*s) = 1;
		}
	}
}

static void *
run_main(void *arg)
{
	struct run *r = arg;
	static __thread struct page *slots[SLOTS];
	struct pcp_set pcp_storage, *pcp = NULL;
	uint64_t t0;

	if (r->use_pcp) {
		pcp = &pcp_storage;
		pcp_init(pcp, zone_local_node());
	}
	churn(r, pcp, slots, r->ops / 4);	/* warm: working set resident */
	t0 = os_now_ns();
	churn(r, pcp, slots, r->ops);
	r->ns = os_now_ns() - t0;
	for (unsigned i = 0; i < SLOTS; i++)
		if (slots[i]) {
			zone_free_pages(pcp, slots[i]);
			slots[i] = NULL;
		}
	if (pcp) {
		r->refills = pcp->nr_refill;
		pcp_drain(pcp);
	}
	return NULL;
}

static void
bench(const char *name, unsigned nthreads, bool use_pcp, unsigned long ops)
{
	struct run runs[2];
	uint64_t ns = 0, refills = 0;
	unsigned long total = 0;

	for (unsigned i = 0; i < nthreads; i++) {
		runs[i] = (struct run){ .use_pcp = use_pcp, .ops = ops };
		runs[i].seed = 0x9e3779b97f4a7c15ULL * (i + 1);
		pthread_create(&runs[i].tid, NULL, run_main, &runs[i]);
	}
	for (unsigned i = 0; i < nthreads; i++) {
		pthread_join(runs[i].tid, NULL);
		ns += runs[i].ns;
		total += runs[i].ops;
		refills += runs[i].refills;
	}
	/* Per-thread time per op: what one caller waits. */
	printf("%s_ns_per_op %.1f\n", name, (double)ns / (double)total);
	if (use_pcp)
		printf("%s_pcp_refills_per_kop %.2f\n", name,
		       1000.0 * (double)refills / (double)total);
}

int
main(int argc, char **argv)
{
	unsigned long ops = argc > 1 ? strtoul(argv[1], NULL, 0) : 4000000;
	struct zone_config cfg = {
		.nr_nodes = 1,
		.normal_reserve = (size_t)4 << 30,
		.purge_delay_ns = 1000ULL * 1000 * 1000,
		.pcp_high = 64,
		.pcp_batch = 16,
	};

	if (zone_boot(&cfg) != 0) {
		fprintf(stderr, "bench_page: zone_boot failed\n");
		return 1;
	}
	printf("ops_per_thread %lu\n", ops);
	bench("page_pcp_1t", 1, true, ops);
	bench("page_pcp_2t", 2, true, ops);
	bench("page_zone_1t", 1, false, ops);
	bench("page_zone_2t", 2, false, ops);
	if (!zone_check_all())
		return 1;
	return 0;
}
