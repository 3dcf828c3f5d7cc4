/*
 * sizes.c - libsizes.so, preloaded into a program under glibc's malloc:
 * what zpmalloc's size classes would waste on that program's requests,
 * against glibc's chunks. It counts every malloc, calloc and realloc
 * request by size (operator new reaches malloc through libstdc++) and at
 * exit writes, to $SIZES_OUT (else stderr):
 *
 *   requests N            requested_bytes B
 *   zpmalloc_bytes Z      zpmalloc_waste_pct (Z - B) / Z
 *   glibc_bytes G         glibc_waste_pct (G - B) / G
 *   top S COUNT WASTE     the sizes whose class wastes most, bytes
 *   size S COUNT          with SIZES_HIST=1: every size up to 16 KiB asked
 *                         for, to weigh another class list against
 *
 * zpmalloc's slot is its class's size up to 16 KiB (the classes come from
 * src/slab/sizeclass.c itself, compiled in), whole pages above. glibc's
 * chunk is the request plus its 8-byte header rounded up to 16, at least
 * 32; at or above its initial mmap threshold (128 KiB) a mapping of whole
 * pages. Bytes are summed over requests, not over what is live at once.
 *
 * Usage: LD_PRELOAD=build/bench/libsizes.so SIZES_OUT=out.txt program ...
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slab/sizeclass.h"

#define PAGE		4096ULL
#define GLIBC_MMAP_MIN	(128ULL << 10)
#define NR_TOP		8

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t nmemb, size_t size);
void *__libc_realloc(void *p, size_t n);

static uint64_t nr_of_size[SC_MAX_SIZE + 1];
static uint64_t nr_big, big_bytes, big_zp_bytes, big_glibc_bytes;

static uint64_t
round_up(uint64_t n, uint64_t to)
{
	return (n + to - 1) / to * to;
}

static uint64_t
zp_slot(size_t n)
{
	return n <= SC_MAX_SIZE ? sizeclass_size(sizeclass_of(n))
				: round_up(n, PAGE);
}

static uint64_t
glibc_chunk(size_t n)
{
	uint64_t c = round_up((uint64_t)n + 8, 16);

	if (n >= GLIBC_MMAP_MIN)
		return round_up((uint64_t)n + 16, PAGE);
	return c < 32 ? 32 : c;
}

static void
note(size_t n)
{
	if (n <= SC_MAX_SIZE) {
		__atomic_add_fetch(&nr_of_size[n], 1, __ATOMIC_RELAXED);
		return;
	}
	__atomic_add_fetch(&nr_big, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&big_bytes, n, __ATOMIC_RELAXED);
	__atomic_add_fetch(&big_zp_bytes, zp_slot(n), __ATOMIC_RELAXED);
	__atomic_add_fetch(&big_glibc_bytes, glibc_chunk(n),
			   __ATOMIC_RELAXED);
}

void *
malloc(size_t n)
{
	note(n);
	return __libc_malloc(n);
}

void *
calloc(size_t nmemb, size_t size)
{
	if (size == 0 || nmemb <= SIZE_MAX / size)
		note(nmemb * size);
	return __libc_calloc(nmemb, size);
}

void *
realloc(void *p, size_t n)
{
	note(n);
	return __libc_realloc(p, n);
}

/* The sizes whose rounding wastes most, largest first. */
static void
top_wasters(size_t top[NR_TOP])
{
	for (int i = 0; i < NR_TOP; i++)
		top[i] = 0;
	for (size_t n = 1; n <= SC_MAX_SIZE; n++) {
		uint64_t w = nr_of_size[n] * (zp_slot(n) - n);

		for (int i = 0; i < NR_TOP; i++) {
			size_t t = top[i];

			if (t == 0 || w > nr_of_size[t] * (zp_slot(t) - t)) {
				memmove(&top[i + 1], &top[i],
					(NR_TOP - 1 - i) * sizeof(top[0]));
				top[i] = n;
				break;
			}
		}
	}
}

static double
pct(uint64_t slot, uint64_t asked)
{
	return slot ? 100.0 * (double)(slot - asked) / (double)slot : 0.0;
}

__attribute__((destructor)) static void
report(void)
{
	uint64_t nr = nr_big, asked = big_bytes, zp = big_zp_bytes;
	uint64_t gl = big_glibc_bytes;
	const char *path = getenv("SIZES_OUT");
	FILE *f = path ? fopen(path, "w") : stderr;
	size_t top[NR_TOP];

	if (!f)
		return;
	for (size_t n = 0; n <= SC_MAX_SIZE; n++) {
		nr += nr_of_size[n];
		asked += nr_of_size[n] * n;
		zp += nr_of_size[n] * zp_slot(n);
		gl += nr_of_size[n] * glibc_chunk(n);
	}
	fprintf(f, "requests %llu\nrequested_bytes %llu\n",
		(unsigned long long)nr, (unsigned long long)asked);
	fprintf(f, "zpmalloc_bytes %llu\nzpmalloc_waste_pct %.2f\n",
		(unsigned long long)zp, pct(zp, asked));
	fprintf(f, "glibc_bytes %llu\nglibc_waste_pct %.2f\n",
		(unsigned long long)gl, pct(gl, asked));
	top_wasters(top);
	for (int i = 0; i < NR_TOP && top[i]; i++)
		fprintf(f, "top %zu %llu %llu\n", top[i],
			(unsigned long long)nr_of_size[top[i]],
			(unsigned long long)(nr_of_size[top[i]] *
					     (zp_slot(top[i]) - top[i])));
	if (getenv("SIZES_HIST"))
		for (size_t n = 0; n <= SC_MAX_SIZE; n++)
			if (nr_of_size[n])
				fprintf(f, "size %zu %llu\n", n,
					(unsigned long long)nr_of_size[n]);
	if (f != stderr)
		fclose(f);
}
