/*
 * misuse.c - one heap misuse per run, named by argv[1].
 *
 * check_misuse.sh runs every case in its own process under LD_PRELOAD and
 * expects SIGABRT with one "zpmalloc: free(): ..." or "zpmalloc:
 * realloc(): ..." line on stderr. A case the allocator lets through prints
 * "survived" and exits 0, which the script reports as a miss.
 * `misuse --list` prints "<case> <call>" for each case.
 */
#include <malloc.h>
#include <string.h>
#include <sys/mman.h>

#include "common.h"

/* Kept in globals so the compiler sees every pointer escape and cannot
 * reason about (or warn on) the misuse. */
void *volatile sink;
static char static_buf[256] __attribute__((aligned(64)));

static void *
opaque(void *p)
{
	sink = p;
	return sink;
}

static void
double_free(size_t size)
{
	void *p = malloc(size), *q = malloc(size);

	memset(p, 1, size);
	free(opaque(p));
	free(opaque(q));	/* p is no longer the most recent free */
	free(opaque(p));
}

static void
free_interior(size_t size, size_t off)
{
	char *p = malloc(size);

	memset(p, 1, size);
	free(opaque(p + off));
}

static void
realloc_freed(size_t size)
{
	void *p = malloc(size);

	free(opaque(p));
	sink = realloc(opaque(p), size * 2);
}

static void c_df_small(void) { double_free(32); }
static void c_df_small_immediate(void)
{
	void *p = malloc(48);

	free(opaque(p));
	free(opaque(p));
}
static void c_df_medium(void) { double_free(100 << 10); }
static void c_df_large(void) { double_free(8 << 20); }
static void c_interior_small(void) { free_interior(64, 16); }
static void c_interior_medium(void) { free_interior(100 << 10, 4096); }
static void c_interior_large(void) { free_interior(8 << 20, 4096); }
static void c_free_stack(void)
{
	char buf[128];

	memset(buf, 0, sizeof(buf));
	free(opaque(buf + 32));
}
static void c_free_static(void) { free(opaque(static_buf + 64)); }
static void c_free_mmap(void)
{
	char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail("misuse: mmap failed");
	free(opaque(p + 4096));
}
static void c_realloc_freed_small(void) { realloc_freed(40); }
static void c_realloc_freed_large(void) { realloc_freed(8 << 20); }
static void c_realloc_interior(void)
{
	char *p = malloc(200);

	sink = realloc(opaque(p + 32), 400);
}

static const struct {
	const char *name, *call;
	void (*fn)(void);
} cases[] = {
	{ "double_free_small", "free", c_df_small },
	{ "double_free_small_immediate", "free", c_df_small_immediate },
	{ "double_free_medium", "free", c_df_medium },
	{ "double_free_large", "free", c_df_large },
	{ "free_interior_small", "free", c_interior_small },
	{ "free_interior_medium", "free", c_interior_medium },
	{ "free_interior_large", "free", c_interior_large },
	{ "free_stack", "free", c_free_stack },
	{ "free_static", "free", c_free_static },
	{ "free_mmap", "free", c_free_mmap },
	{ "realloc_freed_small", "realloc", c_realloc_freed_small },
	{ "realloc_freed_large", "realloc", c_realloc_freed_large },
	{ "realloc_interior", "realloc", c_realloc_interior },
};

int
main(int argc, char **argv)
{
	size_t n = sizeof(cases) / sizeof(cases[0]);

	if (argc != 2)
		fail("usage: misuse --list | misuse <case>");
	if (!strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < n; i++)
			printf("%s %s\n", cases[i].name, cases[i].call);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(argv[1], cases[i].name))
			continue;
		cases[i].fn();
		printf("survived\n");
		return 0;
	}
	fail("misuse: unknown case %s", argv[1]);
}
