/*
 * compat_deepbind.c - a library opened with RTLD_DEEPBIND allocates.
 *
 * libdeep.so binds malloc/free to glibc (deep binding looks in the
 * library's own dependencies first). What must work under the preload:
 * the library's internal malloc/realloc/free, and blocks it hands out
 * being read, resized (realloc), measured (malloc_usable_size) and freed by
 * the main program, whose calls go to zpmalloc, which must recognise them
 * as foreign and pass them to glibc. The reverse direction (the library
 * freeing a block the main program allocated) reaches glibc's free with a
 * zpmalloc block and is not supported by any preloaded allocator; it is
 * not exercised.
 * argv[1]: path of libdeep.so.
 */
#include <dlfcn.h>
#include <malloc.h>

#include "common.h"

int
main(int argc, char **argv)
{
	void *h;
	void *(*make)(size_t, int);
	int (*churn)(unsigned);

	if (argc != 2)
		fail("usage: compat_deepbind <path of libdeep.so>");
	h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	if (!h)
		fail("compat_deepbind: dlopen: %s", dlerror());
	make = (void *(*)(size_t, int))dlsym(h, "deep_make");
	churn = (int (*)(unsigned))dlsym(h, "deep_churn");
	if (!make || !churn)
		fail("compat_deepbind: dlsym: %s", dlerror());
	for (unsigned i = 0; i < 2000; i++) {
		size_t n = 1 + (i * 131) % (i % 50 ? 4000 : 300000);
		unsigned char *p = make(n, i & 0xff), *q;

		if (!p)
			fail("compat_deepbind: deep_make(%zu) failed", n);
		if (malloc_usable_size(p) < n)
			fail("compat_deepbind: usable size of a foreign block "
			     "%zu < %zu", malloc_usable_size(p), n);
		if (i % 3 == 0) {
			q = realloc(p, n * 2 + 10);
			if (!q)
				fail("compat_deepbind: realloc failed");
			for (size_t k = 0; k < n; k += 97)
				if (q[k] != (i & 0xff))
					fail("compat_deepbind: realloc of a "
					     "foreign block lost contents");
			p = q;
		} else if (p[n - 1] != (i & 0xff)) {
			fail("compat_deepbind: foreign block contents");
		}
		free(p);
		if (i % 100 == 0 && churn(5000))
			fail("compat_deepbind: allocation inside the "
			     "library failed");
	}
	dlclose(h);
	printf("compat_deepbind: ok\n");
	return 0;
}
