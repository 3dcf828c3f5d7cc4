/*
 * libdeep.c - a library opened with RTLD_DEEPBIND by compat_deepbind.
 * Deep binding makes its own references resolve in its own dependencies
 * first, so its malloc/free are glibc's even when zpmalloc is preloaded.
 */
#include <stdlib.h>
#include <string.h>

void *deep_make(size_t n, int c);
int deep_churn(unsigned rounds);

/* A block from glibc, handed to the caller, who frees it with the
 * preloaded free: zpmalloc must pass it back to glibc. */
void *
deep_make(size_t n, int c)
{
	void *p = malloc(n);

	if (p)
		memset(p, c, n);
	return p;
}

/* Allocation that stays inside the library. */
int
deep_churn(unsigned rounds)
{
	void *p[64] = { 0 };

	for (unsigned i = 0; i < rounds; i++) {
		unsigned k = i % 64;

		free(p[k]);
		p[k] = malloc(16 + (i * 37) % 5000);
		if (!p[k])
			return -1;
		memset(p[k], k, 16);
		p[k] = realloc(p[k], 16 + (i * 53) % 9000);
		if (!p[k])
			return -1;
	}
	for (unsigned k = 0; k < 64; k++)
		free(p[k]);
	return 0;
}
