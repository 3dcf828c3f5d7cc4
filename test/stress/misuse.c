/*
 * misuse.c - one heap misuse per run, named by argv[1].
 *
 * check_misuse.sh runs every case in its own process under LD_PRELOAD and
 * expects SIGABRT with one "zpmalloc: <call>(): ..." line on stderr (free,
 * realloc, or for a wrong size free_sized, free_aligned_sized, operator
 * delete, operator delete[]). A case the allocator lets through prints
 * "survived" and exits 0, which the script reports as a miss.
 * `misuse --list` prints "<case> <call>" for each case.
 *
 * The sized frees are not in glibc 2.36 and the C++ operators are not in
 * a C program: both are found with dlsym, so they are the preloaded
 * allocator's (on glibc alone those cases fail: a miss).
 */
#include <dlfcn.h>
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
/* However many frees lie between: the second free finds the object's
 * live bit clear. */
static void c_df_small_late(void)
{
	void *p = malloc(32), *q[3];

	for (int i = 0; i < 3; i++)
		q[i] = malloc(32);
	free(opaque(p));
	for (int i = 0; i < 3; i++)
		free(opaque(q[i]));
	free(opaque(p));
	for (int i = 0; i < 5; i++)
		sink = malloc(32);
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

/* --- sized frees with the wrong size -------------------------------------- */

typedef void sized_fn(void *, size_t);
typedef void aligned_sized_fn(void *, size_t, size_t);
typedef void *new_fn(size_t);
typedef void *new_aligned_fn(size_t, size_t);
typedef void delete_aligned_sized_fn(void *, size_t, size_t);

static void *
sym(const char *name)
{
	void *fn = dlsym(RTLD_DEFAULT, name);

	if (!fn)
		fail("misuse: %s is not defined here", name);
	return fn;
}

static void
free_sized_wrong(size_t size, size_t wrong)
{
	char *p = malloc(size);

	memset(p, 1, size);
	((sized_fn *)sym("free_sized"))(opaque(p), wrong);
}

static void c_fs_small_class(void) { free_sized_wrong(100, 200); }
static void c_fs_small_as_medium(void) { free_sized_wrong(100, 100 << 10); }
static void c_fs_medium(void) { free_sized_wrong(100 << 10, 60 << 10); }
static void c_fs_medium_as_small(void) { free_sized_wrong(100 << 10, 64); }
static void c_fs_large(void) { free_sized_wrong(8 << 20, 5 << 20); }
static void c_fas_size(void)
{
	char *p = aligned_alloc(64, 100);

	((aligned_sized_fn *)sym("free_aligned_sized"))(opaque(p), 64, 1000);
}
static void c_fas_alignment(void)
{
	char *p = aligned_alloc(64, 100);

	/* Misaligned for 4096 unless the object starts a page; then it is
	 * of another class than (4096, 100) asks for. Either is fatal. */
	((aligned_sized_fn *)sym("free_aligned_sized"))(opaque(p), 4096, 100);
}
static void c_delete_small(void)
{
	char *p = ((new_fn *)sym("_Znwm"))(48);

	((sized_fn *)sym("_ZdlPvm"))(opaque(p), 300);
}
static void c_delete_array_medium(void)
{
	char *p = ((new_fn *)sym("_Znam"))(50000);

	((sized_fn *)sym("_ZdaPvm"))(opaque(p), 20000);
}
static void c_delete_aligned(void)
{
	char *p = ((new_aligned_fn *)sym("_ZnwmSt11align_val_t"))(100, 256);

	((delete_aligned_sized_fn *)sym("_ZdlPvmSt11align_val_t"))(
		opaque(p), 5000, 256);
}

static const struct {
	const char *name, *call;
	void (*fn)(void);
} cases[] = {
	{ "double_free_small", "free", c_df_small },
	{ "double_free_small_immediate", "free", c_df_small_immediate },
	{ "double_free_small_late", "free", c_df_small_late },
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
	{ "free_sized_small_other_class", "free_sized", c_fs_small_class },
	{ "free_sized_small_as_medium", "free_sized", c_fs_small_as_medium },
	{ "free_sized_medium", "free_sized", c_fs_medium },
	{ "free_sized_medium_as_small", "free_sized", c_fs_medium_as_small },
	{ "free_sized_large", "free_sized", c_fs_large },
	{ "free_aligned_sized_size", "free_aligned_sized", c_fas_size },
	{ "free_aligned_sized_alignment", "free_aligned_sized",
	  c_fas_alignment },
	{ "sized_delete_small", "operator delete", c_delete_small },
	{ "sized_delete_array_medium", "operator delete[]",
	  c_delete_array_medium },
	{ "sized_delete_aligned", "operator delete", c_delete_aligned },
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
