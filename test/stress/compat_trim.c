/*
 * compat_trim.c - malloc_trim really gives memory back.
 *
 * Two threads allocate ~192 MiB in small and medium blocks, the main
 * thread frees them all (remote frees), then calls malloc_trim(0) while a
 * third thread keeps allocating. RSS after the trim must have dropped to
 * within a quarter of the peak growth, and allocation must still work.
 * When zpmalloc is preloaded, zp_trim() is called too and must not lose
 * anything. Negative control: LD_PRELOAD=libbadmalloc.so BADMALLOC=leak
 * (free keeps everything) fails the RSS check.
 */
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>

#include "common.h"

#define PER_THREAD	(96u << 20)

struct batch {
	void **p;
	size_t n;
	unsigned seed;
};

static atomic_bool stop;

static void *
fill(void *arg)
{
	struct batch *b = arg;
	size_t bytes = 0, cap = 1 << 20;

	b->p = malloc(cap * sizeof(void *));
	if (!b->p)
		fail("compat_trim: malloc of the table failed");
	while (bytes < PER_THREAD && b->n < cap) {
		size_t n = 16 + (b->n * 2654435761u + b->seed) %
			(b->n % 64 ? 400 : 60000);

		b->p[b->n] = malloc(n);
		if (!b->p[b->n])
			fail("compat_trim: malloc(%zu) failed", n);
		memset(b->p[b->n++], 0x5a, n);
		bytes += n;
	}
	return NULL;
}

static void *
background(void *arg)
{
	void *p[256] = { 0 };
	unsigned i = 0;

	(void)arg;
	while (!atomic_load(&stop)) {
		free(p[i % 256]);
		p[i % 256] = malloc(16 + i % 3000);
		if (!p[i % 256])
			fail("compat_trim: background malloc failed");
		memset(p[i % 256], 1, 16);
		i++;
	}
	for (i = 0; i < 256; i++)
		free(p[i]);
	return NULL;
}

int
main(void)
{
	struct batch b[2] = { { .seed = 1 }, { .seed = 7 } };
	pthread_t t[2], bg;
	size_t base, peak, freed, trimmed;
	size_t (*zp_trim_fn)(void) =
		(size_t (*)(void))dlsym(RTLD_DEFAULT, "zp_trim");
	int r;
	void *p;

	base = rss_bytes();
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, fill, &b[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	peak = rss_bytes();
	for (int i = 0; i < 2; i++) {
		for (size_t k = 0; k < b[i].n; k++)
			free(b[i].p[k]);
		free(b[i].p);
	}
	freed = rss_bytes();
	pthread_create(&bg, NULL, background, NULL);
	r = malloc_trim(0);
	trimmed = rss_bytes();
	if (zp_trim_fn)
		printf("compat_trim: zp_trim gave back %zu KiB\n",
		       zp_trim_fn() >> 10);
	atomic_store(&stop, true);
	pthread_join(bg, NULL);
	printf("compat_trim: RSS base %zu MiB, peak %zu MiB, after free %zu "
	       "MiB, after malloc_trim %zu MiB (returned %d)\n", base >> 20,
	       peak >> 20, freed >> 20, trimmed >> 20, r);
	if (peak < base + (PER_THREAD >> 1))
		fail("compat_trim: the allocation phase did not grow RSS");
	/* TRIM_CHECK_RSS=0 under valgrind, whose shadow memory is RSS too. */
	if (env_long("TRIM_CHECK_RSS", 1) && trimmed > base + (peak - base) / 4)
		fail("compat_trim: malloc_trim left %zu MiB of %zu MiB",
		     (trimmed - base) >> 20, (peak - base) >> 20);
	p = malloc(50 << 20);
	if (!p)
		fail("compat_trim: malloc after trim failed");
	memset(p, 3, 50 << 20);
	free(p);
	printf("compat_trim: ok\n");
	return 0;
}
