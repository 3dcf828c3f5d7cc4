/*
 * compat_sigmmap.c - mmap, munmap, madvise, mremap and mprotect from a
 * signal handler while the program is inside malloc and free.
 *
 * POSIX lists none of them as async-signal-safe by name, but they are
 * plain system calls under glibc, and crash reporters, garbage collectors
 * and sigaltstack teardown call them from handlers. A preloaded allocator
 * that takes a lock of its own in them deadlocks the first time the signal
 * lands while the interrupted code holds that lock (here: main is taking
 * and freeing blocks of several MiB, which go through the zero-page
 * engine's tables).
 *
 * main allocates, fills and frees without pause, small blocks and large
 * ones; a 500 us interval timer runs the handler, which maps, writes,
 * advises, remaps, protects and unmaps small mappings every time and a
 * mapping large enough to be a zero-page region every fourth time, and
 * checks what it wrote. A second timer (SIGUSR2) is the watchdog.
 * Env: STRESS_SECONDS (3).
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/time.h>

#include "common.h"

#define SLOTS	64
#define SMALL	(64u << 10)
#define REGION	(8u << 20)

static volatile sig_atomic_t nr_ticks, nr_regions, bad;

static void
check(void *p, size_t len, unsigned char v, int what)
{
	const unsigned char *c = p;

	for (size_t off = 0; off < len; off += 4096)
		if (c[off] != v)
			bad = what;
}

static void
small_ops(void)
{
	char *p = mmap(NULL, SMALL, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *q;

	if (p == MAP_FAILED) {
		bad = 1;
		return;
	}
	memset(p, 7, SMALL);
	if (madvise(p, SMALL / 2, MADV_DONTNEED) != 0)
		bad = 2;
	check(p, SMALL / 2, 0, 3);
	check(p + SMALL / 2, SMALL / 2, 7, 4);
	if (mprotect(p, 4096, PROT_READ) != 0 ||
	    mprotect(p, 4096, PROT_READ | PROT_WRITE) != 0)
		bad = 5;
	q = mremap(p, SMALL, 2 * SMALL, MREMAP_MAYMOVE);
	if (q == MAP_FAILED) {
		bad = 6;
		munmap(p, SMALL);
		return;
	}
	check(q + SMALL / 2, SMALL / 2, 7, 7);
	if (munmap(q, 2 * SMALL) != 0)
		bad = 8;
}

static void
region_ops(void)
{
	char *p = mmap(NULL, REGION, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *q;

	if (p == MAP_FAILED) {
		bad = 11;
		return;
	}
	for (size_t off = 0; off < REGION; off += 4096)
		p[off] = 9;
	if (madvise(p + REGION / 2, REGION / 4, MADV_DONTNEED) != 0)
		bad = 12;
	check(p + REGION / 2, REGION / 4, 0, 13);
	check(p, REGION / 2, 9, 14);
	q = mremap(p, REGION, 2 * REGION, MREMAP_MAYMOVE);
	if (q == MAP_FAILED) {
		bad = 15;
		munmap(p, REGION);
		return;
	}
	check(q, REGION / 2, 9, 16);
	if (munmap(q + REGION, 4096) != 0 || munmap(q, 2 * REGION) != 0)
		bad = 17;
	nr_regions++;
}

static void
on_tick(int sig)
{
	int saved = errno;

	(void)sig;
	small_ops();
	if (nr_ticks % 4 == 0)
		region_ops();
	nr_ticks++;
	errno = saved;
}

/* Mostly large blocks: their malloc and free are the engine's slow
 * paths, where the locks are. */
static size_t
pick_size(struct rng *r)
{
	unsigned k = (unsigned)rng_below(r, 100);

	if (k < 30)
		return 1 + rng_below(r, 4096);
	if (k < 40)
		return 4096 + rng_below(r, 1 << 20);
	return (4u << 20) + rng_below(r, 12u << 20);
}

int
main(void)
{
	double seconds = stress_seconds(3);
	static void *slot[SLOTS];
	struct rng r;
	uint64_t end, nr_ops = 0;

	rng_seed(&r, (uint64_t)env_long("STRESS_SEED", 1));
	start_watchdog("compat_sigmmap", seconds + 30, on_tick, 500);
	end = now_ns() + (uint64_t)(seconds * 1e9);
	while (now_ns() < end) {
		unsigned i = (unsigned)rng_below(&r, SLOTS);
		size_t n = pick_size(&r);

		free(slot[i]);
		slot[i] = rng_below(&r, 2) ? malloc(n) : calloc(1, n);
		if (!slot[i])
			fail("malloc failed");
		memset(slot[i], 1, n < 64 ? n : 64);
		nr_ops++;
	}
	stop_ticks();
	for (unsigned i = 0; i < SLOTS; i++)
		free(slot[i]);
	printf("compat_sigmmap: %lu allocations, %d handler runs, %d region "
	       "maps in the handler\n", (unsigned long)nr_ops, (int)nr_ticks,
	       (int)nr_regions);
	if (bad)
		fail("a call in the handler failed or lost data (case %d)",
		     (int)bad);
	if (nr_ticks < 100)
		fail("too few handler runs (%d)", (int)nr_ticks);
	return 0;
}
