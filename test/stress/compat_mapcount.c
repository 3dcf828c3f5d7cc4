/*
 * compat_mapcount.c - free at the map-count limit.
 *
 * Freeing a large block may need an munmap that splits a mapping (its
 * neighbours were merged with it); at vm.max_map_count the kernel refuses
 * that with ENOMEM. glibc's free ignores it and returns normally with
 * errno unchanged; an allocator that aborts there kills a program that
 * merely uses many mappings (JVMs, databases, address sanitizers).
 *
 * Three large blocks are allocated back to back, then the program maps
 * single pages of alternating protection until mmap fails (the limit),
 * frees the middle block and then the others (errno must survive), gives
 * the pages back, and checks that large blocks still work.
 */
#include <sys/mman.h>

#include "common.h"

#define BLOCK	((size_t)8 << 20)
#define MAX_MAPS	(1 << 20)

int
main(void)
{
	static void *maps[MAX_MAPS];
	struct timespec pause = { 0, 50 * 1000 * 1000 };
	char *b[3], *c;
	size_t nr = 0;

	for (int i = 0; i < 3; i++) {
		b[i] = malloc(BLOCK);
		if (!b[i])
			fail("malloc");
		memset(b[i], i + 1, BLOCK);
	}
	/* No churn: the blocks are freed, not kept for reuse. */
	nanosleep(&pause, NULL);
	while (nr < MAX_MAPS) {
		void *p = mmap(NULL, 4096, nr % 2 ? PROT_READ : PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			break;
		maps[nr++] = p;
	}
	if (nr == MAX_MAPS)
		fail("no map-count limit reached");
	nanosleep(&pause, NULL);
	for (int i = 1; i < 4; i++) {
		errno = 12345;
		free(b[i % 3]);
		if (errno != 12345)
			fail("free changed errno to %d", errno);
	}
	for (size_t i = 0; i < nr; i++)
		munmap(maps[i], 4096);
	c = malloc(BLOCK);
	if (!c)
		fail("malloc after the limit");
	memset(c, 9, BLOCK);
	free(c);
	printf("compat_mapcount: limit at %zu extra maps, frees returned\n",
	       nr);
	return 0;
}
