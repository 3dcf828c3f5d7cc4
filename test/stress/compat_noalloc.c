/*
 * compat_noalloc.c - a program that takes a pthread key before it
 * allocates anything, then maps a large region as its first call into
 * the mmap family.
 *
 * glibc hands out the lowest free key, so in a plain program the first
 * key is 0. An allocator that set itself up at load would hold a key (for
 * its thread-exit destructor) before main: the program would see 1, and
 * would have paid for the allocator's state without allocating. zpmalloc
 * boots at the first call that needs it. The map is then the first such
 * call: it must boot and come back as ordinary zeroed, writable memory,
 * and malloc must work after it.
 */
#include <pthread.h>
#include <sys/mman.h>

#include "common.h"

#define REGION	((size_t)64 << 20)

int
main(void)
{
	pthread_key_t key;
	unsigned char *r, *p;

	if (pthread_key_create(&key, NULL) != 0)
		fail("pthread_key_create failed");
	if (key != 0)
		fail("first key of a program that never allocated is %u, "
		     "not 0: someone took keys before main", (unsigned)key);
	r = mmap(NULL, REGION, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	for (size_t i = 0; i < REGION; i += 4096) {
		if (r[i] != 0)
			fail("fresh region not zero at %zu", i);
		r[i] = (unsigned char)(i >> 12);
	}
	for (size_t i = 0; i < REGION; i += 4096)
		if (r[i] != (unsigned char)(i >> 12))
			fail("region lost a write at %zu", i);
	if (munmap(r, REGION) != 0)
		fail("munmap: %s", strerror(errno));
	p = malloc(100);
	if (!p)
		fail("malloc after the map failed");
	memset(p, 7, 100);
	free(p);
	if (pthread_setspecific(key, &key) != 0 ||
	    pthread_getspecific(key) != &key)
		fail("the program's key does not work");
	printf("compat_noalloc: first key 0, region and malloc ok\n");
	return 0;
}
