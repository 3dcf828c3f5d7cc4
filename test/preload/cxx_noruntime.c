/*
 * cxx_noruntime.c - zpmalloc's operator new in a process without the C++
 * runtime that should handle its failure: a plain C program that calls the
 * exported operators by their mangled names (dlsym finds the preloaded
 * ones). cxx_noruntime.sh runs one case per process:
 *   nothrow     no runtime: nothrow new of an impossible size is NULL
 *   throw       no runtime: new of an impossible size aborts with one line
 *   llvm        libc++abi loaded: its nothrow new catches its bad_alloc
 *               thrown through our operator new (NULL), and small
 *               requests still take our fast path
 *   llvm-throw  libc++abi loaded: new of an impossible size throws
 *               std::bad_alloc, which nothing catches (terminate)
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *new_fn(size_t);
typedef void *new_nt_fn(size_t, const void *);
typedef void *new_al_nt_fn(size_t, size_t, const void *);
typedef void delete_sized_fn(void *, size_t);

static volatile size_t huge_size = SIZE_MAX / 2;
static const char nothrow_tag;	/* std::nothrow_t is empty */

static void *
op(const char *name)
{
	void *fn = dlsym(RTLD_DEFAULT, name);

	if (!fn) {
		fprintf(stderr, "%s not found: zpmalloc not preloaded?\n",
			name);
		exit(1);
	}
	return fn;
}

static int
nothrow_cases(void)
{
	new_fn *nw = (new_fn *)op("_Znwm");
	new_nt_fn *nw_nt = (new_nt_fn *)op("_ZnwmRKSt9nothrow_t");
	new_nt_fn *na_nt = (new_nt_fn *)op("_ZnamRKSt9nothrow_t");
	new_al_nt_fn *nw_al_nt =
		(new_al_nt_fn *)op("_ZnwmSt11align_val_tRKSt9nothrow_t");
	delete_sized_fn *dl = (delete_sized_fn *)op("_ZdlPvm");
	void *p;

	if (nw_nt(huge_size, &nothrow_tag) || na_nt(huge_size, &nothrow_tag) ||
	    nw_al_nt(huge_size, 64, &nothrow_tag)) {
		fprintf(stderr, "nothrow new of %zu bytes succeeded\n",
			huge_size);
		return 1;
	}
	p = nw(100);
	memset(p, 1, 100);
	dl(p, 100);
	printf("nothrow new: NULL\n");
	return 0;
}

static void
load_libcxxabi(void)
{
	if (!dlopen("libc++abi.so.1", RTLD_NOW | RTLD_GLOBAL)) {
		fprintf(stderr, "skip: %s\n", dlerror());
		exit(77);
	}
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: cxx_noruntime nothrow|throw|llvm|"
			"llvm-throw\n");
		return 2;
	}
	if (!strcmp(argv[1], "nothrow"))
		return nothrow_cases();
	if (!strcmp(argv[1], "throw")) {
		((new_fn *)op("_Znwm"))(huge_size);
		printf("survived\n");
		return 0;
	}
	if (!strcmp(argv[1], "llvm")) {
		load_libcxxabi();
		return nothrow_cases();
	}
	if (!strcmp(argv[1], "llvm-throw")) {
		load_libcxxabi();
		((new_fn *)op("_Znam"))(huge_size);
		printf("survived\n");
		return 0;
	}
	fprintf(stderr, "unknown case %s\n", argv[1]);
	return 2;
}
