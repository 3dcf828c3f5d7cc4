/*
 * test_oom.c - out-of-memory paths of the whole core, by fault injection.
 *
 * The malloc layer is called directly (alloc_*), linked against every layer
 * below it. os_fault_inject_from(n) makes the nth reserve/commit/map from
 * now fail, and every one after it (a single failure would only be retried
 * after a trim, and succeed); for n = 1..NTH_MAX a fixed mix of requests
 * (every size range, calloc, realloc growth, aligned, large) runs with the
 * failures armed.
 * Each request must give either a usable block or NULL with ENOMEM; then,
 * disarmed, zone_check_all() must hold, every block handed out must still
 * carry its pattern, and the same mix must now succeed in full.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "malloc/alloc.h"
#include "malloc/init.h"
#include "os/os.h"
#include "page/zone.h"

#include "test/unit/watchdog.h"

#define NTH_MAX		48
#define NREQ		24
#define MiB		((size_t)1 << 20)

struct req {
	void *p;
	size_t n;
};

static void
boot(void)
{
	watchdog_arm(60);
	cr_assert(init_boot());
	cr_assert_not_null(init_tstate());
}

TestSuite(oom, .init = boot);

static unsigned char
byte_of(const struct req *r, size_t i)
{
	return (unsigned char)(((uintptr_t)r->p >> 4) + r->n + i * 13);
}

static void
fill(struct req *r)
{
	unsigned char *s = r->p;

	for (size_t i = 0; i < r->n; i += (r->n > 65536 ? 4093 : 1))
		s[i] = byte_of(r, i);
}

static void
check(const struct req *r)
{
	const unsigned char *s = r->p;

	/* One assertion per block, not per byte: --full-stats records each. */
	for (size_t i = 0; i < r->n; i += (r->n > 65536 ? 4093 : 1))
		if (s[i] != byte_of(r, i))
			cr_assert_fail("block %p size %zu changed at %zu",
				       r->p, r->n, i);
}

/* Request k of the mix; returns NULL with errno set on failure. */
static void *
request(unsigned k, size_t *n, void *grow)
{
	static const size_t sizes[] = {
		16, 24, 100, 512, 1000, 3000, 8000, 16384,
		20000, 70000, 300000, MiB, 3 * MiB, 4 * MiB,
		5 * MiB, 9 * MiB, 33 * MiB,
	};
	size_t ns = ZP_ARRAY_SIZE(sizes);

	switch (k % 4) {
	case 0:
		*n = sizes[k % ns];
		return alloc_malloc(*n);
	case 1:
		*n = sizes[(k * 7) % ns];
		return alloc_calloc(1, *n);
	case 2:
		*n = sizes[(k * 3) % ns];
		return alloc_aligned((size_t)64 << (k % 7), *n);
	default:
		*n = sizes[(k * 5) % ns] * 2;
		return alloc_realloc(grow, *n);
	}
}

/* Runs the mix; failures must be NULL + ENOMEM. Returns the NULL count. */
static unsigned
run_mix(struct req *rs)
{
	unsigned nr_null = 0;

	for (unsigned k = 0; k < NREQ; k++) {
		void *grow = NULL;
		size_t n;
		void *p;

		if (k % 4 == 3 && rs[k - 1].p) {
			/* realloc the previous block */
			grow = rs[k - 1].p;
			check(&rs[k - 1]);
		}
		errno = 0;
		if (getenv("TEST_OOM_TRACE"))
			fprintf(stderr, "request %u\n", k);
		p = request(k, &n, grow);
		if (getenv("TEST_OOM_TRACE"))
			fprintf(stderr, " -> %p errno %d\n", p, errno);
		if (!p) {
			cr_assert_eq(errno, ENOMEM, "request %u (%zu bytes): "
				     "NULL with errno %d", k, n, errno);
			nr_null++;
			if (grow)	/* a failed realloc keeps the block */
				check(&rs[k - 1]);
			rs[k].p = NULL;
			continue;
		}
		if (grow) {
			/* The block moved to rs[k]; its kept prefix is the
			 * old pattern, which check() cannot know: refill. */
			rs[k - 1].p = NULL;
		}
		rs[k].p = p;
		rs[k].n = n;
		fill(&rs[k]);
	}
	return nr_null;
}

static void
free_mix(struct req *rs)
{
	for (unsigned k = 0; k < NREQ; k++) {
		if (!rs[k].p)
			continue;
		check(&rs[k]);
		alloc_free(rs[k].p);
		rs[k].p = NULL;
	}
}

Test(oom, every_nth_map_failure_gives_enomem_and_recovers)
{
	struct req rs[NREQ];
	unsigned nr_null_total = 0, nr_null;
	/* TEST_OOM_NTH=n replays one injection point (a reproducer). */
	const char *only = getenv("TEST_OOM_NTH");
	unsigned long first = only ? strtoul(only, NULL, 0) : 1;
	unsigned long last = only ? first : NTH_MAX;

	for (unsigned long nth = first; nth <= last; nth++) {
		memset(rs, 0, sizeof(rs));
		os_fault_inject_from(nth);
		if (getenv("TEST_OOM_TRACE"))
			fprintf(stderr, "nth %lu\n", nth);
		nr_null = run_mix(rs);
		os_fault_inject_nth(0);
		nr_null_total += nr_null;
		cr_assert(zone_check_all(), "zones inconsistent after a "
			  "failure injected at map %lu", nth);
		free_mix(rs);
		alloc_trim();	/* give pages back, so later maps happen */
		cr_assert(zone_check_all());

		/* Disarmed, the whole mix succeeds. */
		memset(rs, 0, sizeof(rs));
		cr_assert_eq(run_mix(rs), 0, "allocation did not recover "
			     "after a failure at map %lu", nth);
		free_mix(rs);
		alloc_trim();
		cr_assert(zone_check_all());
	}
	/* The injection really reached the allocator. */
	cr_assert_gt(nr_null_total, 0, "no injected failure was ever seen");
}

Test(oom, no_memory_at_all_then_recovery)
{
	struct req rs[NREQ];
	void **held = NULL;
	size_t nr_held = 0, cap = 1 << 16;

	/* Everything the zones can give without growing, then NULL. */
	held = malloc(cap * sizeof(*held));	/* glibc: not under test */
	cr_assert_not_null(held);
	os_fault_inject_all(true);
	for (;;) {
		void *p;

		errno = 0;
		p = alloc_malloc(nr_held % 2 ? 64 : 40000);
		if (!p) {
			cr_assert_eq(errno, ENOMEM);
			break;
		}
		cr_assert_lt(nr_held, cap, "allocation never failed");
		memset(p, 0x11, 40);
		held[nr_held++] = p;
	}
	memset(rs, 0, sizeof(rs));
	run_mix(rs);	/* every NULL must carry ENOMEM */
	free_mix(rs);
	os_fault_inject_all(false);
	cr_assert(zone_check_all());
	for (size_t i = 0; i < nr_held; i++)
		alloc_free(held[i]);
	free(held);
	cr_assert(zone_check_all());
	memset(rs, 0, sizeof(rs));
	cr_assert_eq(run_mix(rs), 0, "no recovery after the maps came back");
	free_mix(rs);
	cr_assert(zone_check_all());
}
