/*
 * idle_timer.c - memory freed while the engine's background thread runs
 * goes back on its timer, with no further allocator call.
 *
 * A live 2 MiB block (a large block: with userfaultfd it starts the
 * background thread, seen as the process's second thread), then 32 MiB
 * of 64 KiB blocks written and freed. While the thread runs, the free
 * path keeps what is over the retained budget for the thread's next pass
 * (checked: RSS at the free within a half of the growth), else it gives
 * it back at the free; the program then sleeps, making no call, and RSS
 * must come back to within a quarter of the growth before the deadline
 * (purge delay 1 s, passes every second: 10 s is ample). Run under
 * LD_PRELOAD=libzpmalloc.so only (glibc keeps such memory in its heap);
 * exits 77 when zpmalloc is not there.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NR_BLOCKS	512
#define BLOCK		(64u << 10)

static int
nr_threads(void)
{
	char line[256];
	int n = 0;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

static void
sleep_ms(long ms)
{
	nanosleep(&(struct timespec){ .tv_sec = ms / 1000,
				      .tv_nsec = ms % 1000 * 1000000 },
		  NULL);
}

static size_t
rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f || fscanf(f, "%ld %ld", &pages, &rss) != 2) {
		fprintf(stderr, "idle_timer: cannot read /proc/self/statm\n");
		exit(1);
	}
	fclose(f);
	return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

int
main(void)
{
	static char *blk[NR_BLOCKS];
	size_t base, full, freed, now = 0;
	char *big;
	int waited;
	bool helper;

	if (!dlsym(RTLD_DEFAULT, "zp_trim")) {
		printf("idle_timer: zpmalloc is not preloaded\n");
		return 77;
	}
	big = malloc(2u << 20);
	if (!big)
		return 1;
	memset(big, 1, 2u << 20);
	base = rss_bytes();
	for (int i = 0; i < NR_BLOCKS; i++) {
		blk[i] = malloc(BLOCK);
		if (!blk[i])
			return 1;
		memset(blk[i], 2, BLOCK);
	}
	full = rss_bytes();
	/* The thread starts from a slow path of the allocations above, and
	 * announces its timer as it starts. */
	for (waited = 0; waited < 20 && nr_threads() < 2; waited++)
		sleep_ms(100);
	helper = nr_threads() >= 2;
	if (helper)
		sleep_ms(200);
	for (int i = 0; i < NR_BLOCKS; i++)
		free(blk[i]);
	freed = rss_bytes();
	for (waited = 0; waited < 100; waited++) {
		now = rss_bytes();
		if (now <= base + (full - base) / 4)
			break;
		sleep_ms(100);
	}
	printf("idle_timer: background thread %s; RSS base %zu KiB, written "
	       "%zu KiB, at the free %zu KiB, after %d.%d s %zu KiB\n",
	       helper ? "running" : "not running", base >> 10, full >> 10,
	       freed >> 10, waited / 10, waited % 10, now >> 10);
	if (helper && freed < base + (full - base) / 2) {
		printf("idle_timer: FAIL: given back at the free while the "
		       "background thread runs\n");
		return 1;
	}
	if (full < base + (NR_BLOCKS * BLOCK) / 2) {
		printf("idle_timer: FAIL: writing the blocks did not grow RSS\n");
		return 1;
	}
	if (now > base + (full - base) / 4) {
		printf("idle_timer: FAIL: freed memory still resident after "
		       "10 s idle\n");
		return 1;
	}
	free(big);
	printf("idle_timer: ok\n");
	return 0;
}
