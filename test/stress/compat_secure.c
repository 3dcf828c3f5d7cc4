/*
 * compat_secure.c - linked directly against libzpmalloc (an absolute
 * RUNPATH, which the loader honours in secure-execution mode where it
 * ignores LD_PRELOAD paths). check_secure.sh runs a setuid copy: the
 * program reports AT_SECURE and the zpmalloc version it runs on, and
 * allocates; ZPMALLOC_VERBOSE=1 must print nothing there.
 */
#include <dlfcn.h>
#include <sys/auxv.h>

#include "common.h"

int
main(void)
{
	const char *(*version)(void) =
		(const char *(*)(void))dlsym(RTLD_DEFAULT, "zp_version");
	void *p[64];

	for (int i = 0; i < 64; i++) {
		p[i] = malloc((size_t)16 << (i % 20));
		if (!p[i])
			fail("compat_secure: malloc failed");
		memset(p[i], i, 16);
	}
	for (int i = 0; i < 64; i++)
		free(p[i]);
	printf("AT_SECURE=%lu zpmalloc=%s\n", getauxval(AT_SECURE),
	       version ? version() : "absent");
	return 0;
}
