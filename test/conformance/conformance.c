/*
 * conformance.c - the malloc API's observable behaviour, checked the same
 * way against glibc and against zpmalloc (meson runs this program twice,
 * once with LD_PRELOAD=libzpmalloc.so). Every expectation here is what
 * glibc 2.36 does; zpmalloc must not differ.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MiB ((size_t)1 << 20)
#define PAGE ((size_t)4096)

/* Opaque to the optimiser: keeps it from folding impossible requests. */
static volatile size_t huge_max = SIZE_MAX;
static volatile size_t huge_ptrdiff = (size_t)PTRDIFF_MAX;

static bool
is_aligned(const void *p, size_t a)
{
	return ((uintptr_t)p & (a - 1)) == 0;
}

static void
fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 31 + seed);
}

static bool
check(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(i * 31 + seed))
			return false;
	return true;
}

Test(conformance, preload_took_effect)
{
	const char *want = getenv("CONFORMANCE_EXPECT_ZPMALLOC");
	void *sym = dlsym(RTLD_DEFAULT, "zp_version");

	if (want && *want == '1')
		cr_assert_not_null(sym, "zpmalloc is not preloaded");
	else
		cr_assert_null(sym, "zpmalloc is loaded in the glibc run");
}

Test(conformance, every_small_size_is_16_aligned_and_usable)
{
	static void *ptrs[4097];

	for (size_t n = 1; n <= 4096; n++) {
		unsigned char *p = malloc(n);

		cr_assert_not_null(p, "malloc(%zu)", n);
		cr_assert(is_aligned(p, 16), "malloc(%zu) = %p", n, (void *)p);
		cr_assert_geq(malloc_usable_size(p), n, "usable of %zu", n);
		memset(p, (int)n, n);
		ptrs[n] = p;
	}
	for (size_t n = 1; n <= 4096; n++) {
		unsigned char *p = ptrs[n];

		cr_assert(p[0] == (unsigned char)n && p[n - 1] ==
			  (unsigned char)n, "block of %zu overwritten", n);
		free(p);
	}
}

Test(conformance, calloc_and_realloc_results_are_16_aligned)
{
	for (size_t n = 1; n <= 4096; n += 7) {
		unsigned char *p = calloc(1, n), *q;

		cr_assert_not_null(p);
		cr_assert(is_aligned(p, 16), "calloc(%zu)", n);
		cr_assert_geq(malloc_usable_size(p), n);
		q = realloc(p, n * 3 + 1);
		cr_assert_not_null(q);
		cr_assert(is_aligned(q, 16), "realloc to %zu", n * 3 + 1);
		cr_assert_geq(malloc_usable_size(q), n * 3 + 1);
		free(q);
	}
}

Test(conformance, usable_size_covers_request_at_every_scale)
{
	size_t sizes[] = { 0, 1, 24, 4095, 16384, 16385, 65536, 1 * MiB,
			   4 * MiB - 1, 4 * MiB, 4 * MiB + 1, 9 * MiB };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		unsigned char *p = malloc(sizes[i]);

		cr_assert_not_null(p, "malloc(%zu)", sizes[i]);
		cr_assert(is_aligned(p, 16));
		cr_assert_geq(malloc_usable_size(p), sizes[i]);
		if (sizes[i]) {
			p[0] = 1;
			p[sizes[i] - 1] = 2;
		}
		free(p);
	}
	cr_assert_eq(malloc_usable_size(NULL), 0);
}

Test(conformance, impossible_sizes_fail_with_enomem)
{
	errno = 0;
	cr_assert_null(malloc(huge_max));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(malloc(huge_ptrdiff + 1));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(malloc(huge_ptrdiff));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(valloc(huge_max));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(pvalloc(huge_max));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(pvalloc(huge_max - 2 * PAGE));
	cr_assert_eq(errno, ENOMEM);
}

Test(conformance, calloc_overflow_fails_with_enomem)
{
	errno = 0;
	cr_assert_null(calloc(huge_max / 2, 3));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(calloc(3, huge_max / 2));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(calloc(huge_ptrdiff, 1));
	cr_assert_eq(errno, ENOMEM);
}

Test(conformance, reallocarray_overflow_keeps_the_block)
{
	unsigned char *p = malloc(64), *q;

	fill(p, 64, 5);
	errno = 0;
	cr_assert_null(reallocarray(p, huge_max / 2, 3));
	cr_assert_eq(errno, ENOMEM);
	cr_assert(check(p, 64, 5));
	errno = 0;
	cr_assert_null(reallocarray(NULL, huge_max / 2, 3));
	cr_assert_eq(errno, ENOMEM);
	q = reallocarray(p, 100, 10);
	cr_assert_not_null(q);
	cr_assert(check(q, 64, 5));
	free(q);
}

Test(conformance, realloc_failure_keeps_the_block)
{
	unsigned char *p = malloc(100);

	fill(p, 100, 9);
	errno = 0;
	cr_assert_null(realloc(p, huge_max));
	cr_assert_eq(errno, ENOMEM);
	errno = 0;
	cr_assert_null(realloc(p, huge_ptrdiff + 1));
	cr_assert_eq(errno, ENOMEM);
	cr_assert(check(p, 100, 9));
	free(p);
}

Test(conformance, posix_memalign_rejects_bad_alignment_without_errno)
{
	size_t bad[] = { 0, 1, 2, 4, 12, 24, 40, 48, 96, 4097, 3 * PAGE,
			 SIZE_MAX };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		void *p = (void *)&bad;

		errno = 1234;
		cr_assert_eq(posix_memalign(&p, bad[i], 16), EINVAL,
			     "alignment %zu", bad[i]);
		cr_assert_eq(errno, 1234, "errno changed for %zu", bad[i]);
		cr_assert_eq(p, (void *)&bad, "out written for %zu", bad[i]);
	}
}

Test(conformance, posix_memalign_out_of_memory)
{
	void *p = (void *)&huge_max;

	cr_assert_eq(posix_memalign(&p, 64, huge_max), ENOMEM);
	cr_assert_eq(p, (void *)&huge_max);
	cr_assert_eq(posix_memalign(&p, SIZE_MAX / 2 + 1, 16), ENOMEM);
	cr_assert_eq(p, (void *)&huge_max);
	cr_assert_eq(posix_memalign(&p, 8, 0), 0);
	cr_assert_not_null(p);
	free(p);
}

typedef void *(*memalign_fn)(size_t, size_t);

static void
check_memalign_edges(memalign_fn fn, const char *name)
{
	/* glibc 2.36: small alignments are malloc, non-powers of two are
	 * rounded up, only those beyond SIZE_MAX / 2 + 1 are EINVAL. */
	struct {
		size_t align, expect;
	} ok[] = { { 0, 16 }, { 1, 16 }, { 3, 16 }, { 8, 16 }, { 24, 32 },
		   { 48, 64 }, { 100, 128 }, { 3000, 4096 },
		   { 5000, 8192 } };

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		void *p;

		errno = 1234;
		p = fn(ok[i].align, 40);
		cr_assert_not_null(p, "%s(%zu)", name, ok[i].align);
		cr_assert(is_aligned(p, ok[i].expect), "%s(%zu) = %p", name,
			  ok[i].align, p);
		cr_assert_eq(errno, 1234, "%s(%zu) errno", name, ok[i].align);
		free(p);
	}
	errno = 0;
	cr_assert_null(fn(SIZE_MAX / 2 + 1, 16));
	cr_assert_eq(errno, ENOMEM, "%s(SIZE_MAX/2+1)", name);
	errno = 0;
	cr_assert_null(fn(SIZE_MAX / 2 + 2, 16));
	cr_assert_eq(errno, EINVAL, "%s(SIZE_MAX/2+2)", name);
	errno = 0;
	cr_assert_null(fn(SIZE_MAX, 16));
	cr_assert_eq(errno, EINVAL, "%s(SIZE_MAX)", name);
	errno = 0;
	cr_assert_null(fn(64, huge_ptrdiff));
	cr_assert_eq(errno, ENOMEM, "%s(64, PTRDIFF_MAX)", name);
	errno = 0;
	cr_assert_null(fn(MiB, huge_max));
	cr_assert_eq(errno, ENOMEM, "%s(1 MiB, SIZE_MAX)", name);
}

Test(conformance, aligned_alloc_edges_match_glibc)
{
	check_memalign_edges(aligned_alloc, "aligned_alloc");
}

Test(conformance, memalign_edges_match_glibc)
{
	check_memalign_edges(memalign, "memalign");
}

static void *
via_posix_memalign(size_t align, size_t n)
{
	void *p = NULL;

	cr_assert_eq(posix_memalign(&p, align, n), 0, "align %zu n %zu",
		     align, n);
	return p;
}

Test(conformance, every_power_of_two_alignment_up_to_1mib)
{
	memalign_fn fns[] = { via_posix_memalign, aligned_alloc, memalign };

	for (size_t f = 0; f < 3; f++) {
		for (size_t a = sizeof(void *); a <= MiB; a *= 2) {
			size_t sizes[] = { 1, 7, 100, a - 1, a, a + 1,
					   3 * a + 5, 70000 };

			for (size_t i = 0; i < 8; i++) {
				size_t n = sizes[i] ? sizes[i] : 1;
				unsigned char *p = fns[f](a, n);

				cr_assert_not_null(p, "fn %zu a %zu n %zu", f,
						   a, n);
				cr_assert(is_aligned(p, a),
					  "fn %zu a %zu n %zu: %p", f, a, n,
					  (void *)p);
				cr_assert_geq(malloc_usable_size(p), n);
				p[0] = 1;
				p[n - 1] = 2;
				free(p);
			}
		}
	}
}

/* Size 0 with any alignment is a unique, aligned pointer, as glibc gives
 * (alignments past the page allocator's largest block included). */
Test(conformance, size_zero_with_large_alignments)
{
	memalign_fn fns[] = { via_posix_memalign, aligned_alloc, memalign };

	for (size_t f = 0; f < 3; f++) {
		for (size_t a = MiB; a <= 256 * MiB; a *= 4) {
			void *p = fns[f](a, 0), *q = fns[f](a, 0);

			cr_assert_not_null(p, "fn %zu align %zu", f, a);
			cr_assert_not_null(q, "fn %zu align %zu", f, a);
			cr_assert_neq(p, q);
			cr_assert(is_aligned(p, a) && is_aligned(q, a),
				  "fn %zu align %zu: %p %p", f, a, p, q);
			free(p);
			free(q);
		}
	}
}

Test(conformance, realloc_preserves_contents_across_every_boundary)
{
	size_t steps[] = { 1, 8, 100, 1000, 16384, 16385, 20000, 100000,
			   4 * MiB - 100, 4 * MiB, 4 * MiB + 1, 8 * MiB,
			   20 * MiB, 6 * MiB, 4 * MiB, 1 * MiB, 16385, 16384,
			   5000, 64, 3 };
	unsigned char *p = NULL;
	size_t have = 0;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		size_t n = steps[i];
		size_t keep = have < n ? have : n;
		unsigned char *q = realloc(p, n);

		cr_assert_not_null(q, "realloc to %zu", n);
		cr_assert(is_aligned(q, 16));
		cr_assert_geq(malloc_usable_size(q), n);
		cr_assert(check(q, keep, 77), "contents lost at %zu -> %zu",
			  have, n);
		fill(q, n, 77);
		p = q;
		have = n;
	}
	free(p);
}

Test(conformance, realloc_null_and_zero)
{
	unsigned char *p;

	errno = 1234;
	p = realloc(NULL, 100);
	cr_assert_not_null(p);
	cr_assert_geq(malloc_usable_size(p), 100);
	cr_assert_eq(errno, 1234);
	/* glibc 2.36: a non-NULL block resized to 0 is freed, NULL back. */
	errno = 1234;
	cr_assert_null(realloc(p, 0));
	cr_assert_eq(errno, 1234);
	p = realloc(NULL, 0);
	cr_assert_not_null(p);
	free(p);
	p = malloc(0);
	cr_assert_not_null(p);
	free(p);
}

Test(conformance, calloc_zeroes_reused_dirty_memory)
{
	size_t sizes[] = { 8, 48, 500, 4000, 16000, 40000, 300000, 5 * MiB };

	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			unsigned char *p[8];

			for (int k = 0; k < 8; k++) {
				p[k] = malloc(sizes[i]);
				memset(p[k], 0xa5, sizes[i]);
			}
			for (int k = 0; k < 8; k++)
				free(p[k]);
			for (int k = 0; k < 8; k++) {
				p[k] = calloc(1, sizes[i]);
				cr_assert_not_null(p[k]);
				for (size_t b = 0; b < sizes[i]; b++)
					if (p[k][b])
						cr_assert_fail("calloc(%zu) "
							"byte %zu is %d",
							sizes[i], b, p[k][b]);
				memset(p[k], 0x5a, sizes[i]);
			}
			for (int k = 0; k < 8; k++)
				free(p[k]);
		}
	}
}

Test(conformance, valloc_and_pvalloc_are_page_aligned)
{
	size_t sizes[] = { 1, 100, PAGE - 1, PAGE, PAGE + 1, 70000, 5 * MiB };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		size_t rounded = (n + PAGE - 1) & ~(PAGE - 1);
		void *v = valloc(n), *pv = pvalloc(n);

		cr_assert_not_null(v);
		cr_assert_not_null(pv);
		cr_assert(is_aligned(v, PAGE), "valloc(%zu)", n);
		cr_assert(is_aligned(pv, PAGE), "pvalloc(%zu)", n);
		cr_assert_geq(malloc_usable_size(v), n);
		cr_assert_geq(malloc_usable_size(pv), rounded);
		memset(pv, 1, rounded);
		free(v);
		free(pv);
	}
	void *z = pvalloc(0);

	cr_assert_not_null(z);
	cr_assert(is_aligned(z, PAGE));
	free(z);
}

Test(conformance, errno_is_preserved_on_success)
{
	void *p, *q, *r, *s, *t;

	errno = 1234;
	p = malloc(10);
	q = calloc(10, 10);
	r = malloc(100000);
	p = realloc(p, 5000);
	cr_assert_eq(posix_memalign(&s, 256, 1000), 0);
	t = aligned_alloc(64, 64);
	(void)malloc_usable_size(p);
	free(p);
	free(q);
	free(r);
	free(s);
	free(t);
	free(NULL);
	t = valloc(10);
	free(t);
	t = malloc(9 * MiB);
	t = realloc(t, 12 * MiB);
	free(t);
	cr_assert_eq(errno, 1234, "errno became %d", errno);
	(void)malloc_trim(0);
	cr_assert_eq(errno, 1234, "malloc_trim changed errno to %d", errno);
}

Test(conformance, malloc_trim_returns_0_or_1)
{
	void *p[256];
	int r;

	for (int i = 0; i < 256; i++)
		p[i] = malloc(20000 + i);
	for (int i = 0; i < 256; i++)
		free(p[i]);
	r = malloc_trim(0);
	cr_assert(r == 0 || r == 1, "malloc_trim returned %d", r);
	r = malloc_trim(1 << 20);
	cr_assert(r == 0 || r == 1, "malloc_trim returned %d", r);
	p[0] = malloc(100);
	cr_assert_not_null(p[0]);
	free(p[0]);
}

Test(conformance, mallinfo2_reports_what_is_allocated)
{
	struct mallinfo2 before = mallinfo2(), mid, after;
	enum { N = 4000, SZ = 1000 };
	static void *p[N];
	void *big;

	for (int i = 0; i < N; i++)
		p[i] = malloc(SZ);
	big = malloc(16 * MiB);
	mid = mallinfo2();
	cr_assert_geq(mid.uordblks, before.uordblks + (size_t)N * SZ * 9 / 10,
		      "in use grew %zu -> %zu", before.uordblks,
		      mid.uordblks);
	cr_assert_geq(mid.arena, mid.uordblks);
	cr_assert_leq(mid.fordblks, mid.arena);
	cr_assert_geq(mid.hblks, 1);
	cr_assert_geq(mid.hblkhd, 16 * MiB);
	free(big);
	for (int i = 0; i < N; i++)
		free(p[i]);
	after = mallinfo2();
	cr_assert_lt(after.hblkhd, mid.hblkhd);
	cr_assert_lt(after.uordblks, mid.uordblks);

	struct mallinfo old = mallinfo();

	cr_assert_geq(old.arena, 0);
	cr_assert_geq(old.uordblks, 0);
}

Test(conformance, mallopt_return_values)
{
	cr_assert_eq(mallopt(M_MXFAST, 0), 1);
	cr_assert_eq(mallopt(M_MXFAST, 160), 1);
	cr_assert_eq(mallopt(M_MXFAST, 161), 0);
	cr_assert_eq(mallopt(M_MXFAST, -1), 0);
	cr_assert_eq(mallopt(M_TRIM_THRESHOLD, 128 * 1024), 1);
	cr_assert_eq(mallopt(M_TOP_PAD, 0), 1);
	cr_assert_eq(mallopt(M_MMAP_THRESHOLD, 256 * 1024), 1);
	cr_assert_eq(mallopt(M_MMAP_MAX, 65536), 1);
	cr_assert_eq(mallopt(M_ARENA_MAX, 2), 1);
	cr_assert_eq(mallopt(M_ARENA_TEST, 2), 1);
	cr_assert_eq(mallopt(M_PERTURB, 0), 1);
	cr_assert_eq(mallopt(M_CHECK_ACTION, 3), 1);
	cr_assert_eq(mallopt(12345, 1), 1);
	cr_assert_eq(mallopt(-42, 1), 1);
}

Test(conformance, malloc_info_writes_xml)
{
	FILE *f = tmpfile();
	char buf[64] = { 0 };

	cr_assert_not_null(f);
	fputs("prefix\n", f);
	cr_assert_eq(malloc_info(1, f), EINVAL);
	cr_assert_eq(malloc_info(0, f), 0);
	fflush(f);
	rewind(f);
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	cr_assert_str_eq(buf, "prefix\n");
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	cr_assert(strncmp(buf, "<malloc version=\"1\">", 20) == 0,
		  "got %s", buf);
	fclose(f);
}

Test(conformance, malloc_info_to_a_memory_stream)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	cr_assert_not_null(f);
	cr_assert_eq(malloc_info(0, f), 0);
	fclose(f);
	cr_assert_not_null(text);
	cr_assert(strncmp(text, "<malloc version=\"1\">", 20) == 0);
	cr_assert_not_null(strstr(text, "</malloc>"));
	free(text);
}

/*
 * Blocks that glibc's own allocator handed out (before a preload took
 * effect, or to another namespace) must stay usable: free, realloc and
 * malloc_usable_size route them back to glibc.
 */
Test(conformance, blocks_from_glibcs_own_malloc_stay_usable)
{
	void *(*glibc_malloc)(size_t) =
		(void *(*)(size_t))dlvsym(RTLD_NEXT, "__libc_malloc",
					  "GLIBC_2.2.5");
	unsigned char *p, *q;

	cr_assert_not_null(glibc_malloc);
	for (size_t n = 16; n <= 1 << 20; n *= 4) {
		p = glibc_malloc(n);
		cr_assert_not_null(p);
		fill(p, n, 11);
		cr_assert_geq(malloc_usable_size(p), n);
		q = realloc(p, n * 2);
		cr_assert_not_null(q);
		cr_assert(check(q, n, 11), "realloc lost contents at %zu", n);
		free(q);
		free(glibc_malloc(n));
	}
}

/* C23's free_sized and free_aligned_sized are newer than glibc 2.36; where
 * the loaded allocator has them they must free what they are given: the
 * size malloc, calloc or realloc was last asked for, the alignment and
 * size aligned_alloc was given (glibc 2.36's aligned_alloc, which rounds
 * an alignment up to a power of two). */
Test(conformance, sized_frees_where_available)
{
	void (*fs)(void *, size_t) =
		(void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
	void (*fas)(void *, size_t, size_t) =
		(void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT,
							"free_aligned_sized");
	size_t aligns[] = { 1, 8, 16, 24, 32, 48, 64, 100, 4096, 65536,
			    MiB };

	if (!fs || !fas)
		cr_skip_test("free_sized not provided by this allocator");
	for (int i = 0; i < 1000; i++) {
		size_t n = (size_t)(i * 131) % 100000 + 1;
		unsigned char *p, *q;

		fs(malloc(n), n);
		fs(calloc(i % 7 + 1, n), (i % 7 + 1) * n);
		p = malloc(n);
		fill(p, n, 3);
		q = realloc(p, n * 3 / 2 + 1);
		cr_assert(check(q, n, 3));
		q = realloc(q, n / 2 + 1);
		fs(q, n / 2 + 1);
		for (size_t a = 0; a < sizeof(aligns) / sizeof(aligns[0]); a++)
			fas(aligned_alloc(aligns[a], n), aligns[a], n);
	}
	fs(malloc(9 * MiB), 9 * MiB);
	fas(aligned_alloc(64, 9 * MiB), 64, 9 * MiB);
	fs(NULL, 0);
	fs(NULL, 100);
	fas(NULL, 64, 100);
}
