/*
 * compat_rlimit.c - a program that lowers RLIMIT_AS on itself after
 * start-up (sandboxes, test harnesses and servers do) must still be able
 * to create threads and allocate up to its new limit.
 *
 * Start-up allocates in every size range (so the allocator is fully up,
 * its zero-page engine included), then sets RLIMIT_AS to
 * ZP_RLIMIT_MB (default 200) MiB. It must then create a thread, malloc
 * 8 MiB, and allocate 1 MiB blocks (written) until malloc says no; it
 * prints how many it got, so that check_rlimit.sh can compare the figure
 * with glibc's. Exit 1 when the thread or the 8 MiB block fails, or a
 * NULL comes without ENOMEM, or (RLIMIT_EXPECT_REUSE set) when the
 * memory freed cannot be had again in one block.
 */
#include <pthread.h>
#include <sys/resource.h>

#include "common.h"

#define MAX_BLOCKS	4096

static void *
thread_main(void *arg)
{
	void *p = malloc(1000);

	(void)arg;
	memset(p, 1, 1000);
	free(p);
	return NULL;
}

static void
warm_up(void)
{
	static const size_t sizes[] = { 16, 200, 3000, 40000, 300000,
					(size_t)6 << 20, (size_t)40 << 20 };

	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char *p = malloc(sizes[i]);

		if (!p)
			fail("warm-up malloc(%zu) failed", sizes[i]);
		memset(p, 1, sizes[i] < 4096 ? sizes[i] : 4096);
		free(p);
	}
}

int
main(void)
{
	long mb = env_long("ZP_RLIMIT_MB", 200);
	struct rlimit rl = { (rlim_t)mb << 20, (rlim_t)mb << 20 };
	static void *blocks[MAX_BLOCKS];
	pthread_t t;
	unsigned n = 0;
	void *big;
	int err;

	warm_up();
	if (setrlimit(RLIMIT_AS, &rl))
		fail("setrlimit: %s", strerror(errno));
	err = pthread_create(&t, NULL, thread_main, NULL);
	if (err)
		fail("pthread_create under a %ld MiB RLIMIT_AS: %s", mb,
		     strerror(err));
	pthread_join(t, NULL);
	big = malloc((size_t)8 << 20);
	if (!big)
		fail("malloc(8 MiB) under a %ld MiB RLIMIT_AS: %s", mb,
		     strerror(errno));
	memset(big, 1, (size_t)8 << 20);
	free(big);
	while (n < MAX_BLOCKS) {
		errno = 0;
		blocks[n] = malloc((size_t)1 << 20);
		if (!blocks[n]) {
			if (errno != ENOMEM)
				fail("NULL without ENOMEM (errno %d)", errno);
			break;
		}
		memset(blocks[n], 1, (size_t)1 << 20);
		n++;
	}
	for (unsigned i = 0; i < n; i++)
		free(blocks[i]);
	/* Everything is free again: the same must fit once more (asked of
	 * zpmalloc only: glibc keeps its heap when a small block of its
	 * own sits at the top). */
	big = malloc((size_t)(n > 8 ? n - 8 : 1) << 20);
	if (!big && getenv("RLIMIT_EXPECT_REUSE"))
		fail("after freeing %u MiB, malloc(%u MiB) failed", n,
		     n > 8 ? n - 8 : 1);
	free(big);
	printf("blocks %u\n", n);
	return 0;
}
