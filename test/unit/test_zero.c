/*
 * test_zero.c - zero-backed regions read as zero, cost only what is
 * touched, survive fork, mremap and partial munmap with the bookkeeping
 * right, and hand memory to the kernel (read(2), getrandom) at every
 * level; recycled spans are made zero by the cheapest means.
 * The suite runs at whatever level this process gets (full uffd as root,
 * kernel as an ordinary user); ZPMALLOC_UFFD=0 in the environment forces
 * the off level, as the separate CI run does.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "os/os.h"
#include "os/os_uffd.h"
#include "zero/zero.h"
#include "zero/zero_int.h"
#include "zpmalloc.h"

#define PAGE	4096UL
#define MIB	(1UL << 20)

static void
boot(void)
{
	struct zero_config c;
	const char *u = getenv("ZPMALLOC_UFFD");

	zero_config_default(&c);
	if (u && !strcmp(u, "0"))
		c.uffd_mode = ZERO_UFFD_OFF;
	zero_boot(&c);
}

TestSuite(zero, .init = boot);

static bool
all_zero(const char *p, size_t len, size_t step)
{
	for (size_t off = 0; off < len; off += step)
		if (p[off])
			return false;
	return true;
}

Test(zero, region_reads_zero_and_is_owned)
{
	size_t len = 64 * MIB + 3 * PAGE, sz;
	void *start;
	char *p;

	cr_assert_eq(zero_region_map(len, (void **)&p), 0);
	cr_assert(all_zero(p, len, 256));
	cr_assert(zero_region_owns(p + len - 1, &start, &sz));
	cr_expect_eq(start, p);
	cr_expect_eq(sz, len);
	cr_expect_not(zero_region_owns(p + len, NULL, NULL));
	p[len - 1] = 1;
	cr_expect_eq(zero_region_unmap(p, len), 0);
	cr_expect_not(zero_region_owns(p, NULL, NULL));
}

Test(zero, aligned_region_is_aligned)
{
	void *p;

	cr_assert_eq(zero_region_map_aligned(5 * MIB, 4 * MIB, &p), 0);
	cr_expect_eq((uintptr_t)p % (4 * MIB), 0);
	cr_expect_eq(zero_region_map_aligned(MIB, 3 * PAGE, &p), EINVAL);
}

/* RSS of a 1 GiB region with 1% of pages touched stays within 2% of the
 * touched bytes (no THP, no read-around, no bookkeeping in the region);
 * reads of untouched pages add nothing where the kernel maps its zero
 * page for them. */
Test(zero, sparse_region_costs_only_touched_pages)
{
	size_t len = 1024 * MIB, touched = 0, rss0, grew;
	int zero_page = zero_kernel_zero_page();
	char *p;

	cr_assert_eq(zero_region_map(len, (void **)&p), 0);
	rss0 = os_rss_bytes();
	for (size_t off = 0; off < len; off += 100 * PAGE) {
		p[off + 8] = 1;
		touched += PAGE;
	}
	grew = os_rss_bytes() - rss0;
	cr_log_info("touched %zu bytes, RSS grew %zu", touched, grew);
#ifdef __SANITIZE_ADDRESS__
	/* ASan reads a shadow page for each store, a page of its own where
	 * reads commit pages. */
	if (zero_page == 0)
		grew -= ZP_MIN(grew, touched);
#endif
	cr_expect_leq(grew, touched + touched / 50);
	cr_expect_geq(grew + touched / 50, touched);
	cr_expect_eq(zero_resident_bytes((uintptr_t)p, (uintptr_t)p + len),
		     touched);
	for (size_t off = 50 * PAGE; off < len; off += 100 * PAGE)
		if (p[off] != 0)
			cr_assert_fail("byte at %zu", off);
	if (zero_page == 0) {
		cr_log_info("this kernel maps no shared zero page for reads "
			    "(pvm_no_zero_page=1?): untouched reads commit "
			    "pages under any allocator; not checked");
		return;
	}
	cr_expect_eq(zero_resident_bytes((uintptr_t)p, (uintptr_t)p + len),
		     touched, "reads of untouched pages cost no RSS");
}

Test(zero, kernel_writes_into_fresh_region)
{
	char msg[] = "through a pipe into fresh zero-backed memory";
	int fds[2];
	char *p;

	cr_assert_eq(zero_region_map(8 * MIB, (void **)&p), 0);
	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(write(fds[1], msg, sizeof(msg)), (ssize_t)sizeof(msg));
	cr_assert_eq(read(fds[0], p + 3 * MIB + 100, sizeof(msg)),
		     (ssize_t)sizeof(msg));
	cr_expect_str_eq(p + 3 * MIB + 100, msg);
	cr_assert_eq(getrandom(p + 5 * MIB, 2 * PAGE, 0), (ssize_t)(2 * PAGE));
	cr_expect_not(all_zero(p + 5 * MIB, 2 * PAGE, 1));
	close(fds[0]);
	close(fds[1]);
}

Test(zero, fork_mid_life)
{
	size_t len = 16 * MIB;
	uint64_t *p;
	pid_t pid;
	int st;

	cr_assert_eq(zero_region_map(len, (void **)&p), 0);
	for (size_t i = 0; i < len / 8; i += 4096)
		p[i] = i + 1;
	zero_prefork();
	pid = fork();
	if (pid == 0) {
		zero_postfork_child();
		for (size_t i = 0; i < len / 8; i += 4096)
			if (p[i] != i + 1)
				_exit(1);
		for (size_t i = 7; i < len / 8; i += 4096)
			p[i] = 42;
		if (!zero_region_owns(p, NULL, NULL) ||
		    zero_region_unmap(p, len) != 0)
			_exit(2);
		_exit(0);
	}
	zero_postfork_parent();
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d",
		  st);
	for (size_t i = 0; i < len / 8; i += 4096)
		if (p[i] != i + 1 || p[i + 7] != 0)
			cr_assert_fail("word %zu changed", i);
}

static bool
is_mapped(const void *p)
{
	unsigned char v;

	return mincore((void *)((uintptr_t)p & ~(PAGE - 1)), PAGE, &v) == 0;
}

Test(zero, remap_keeps_contents_and_bookkeeping)
{
	size_t len = 8 * MIB, sz;
	char *p, *q, *pad;

	cr_assert_eq(zero_region_map(len, (void **)&p), 0);
	/* Something right after it, so growing has to move. */
	pad = mmap(p + len, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
		   MAP_FIXED_NOREPLACE, -1, 0);
	for (size_t off = 0; off < len; off += PAGE)
		p[off] = (char)(off / PAGE + 1);
	cr_assert_eq(zero_region_remap(p, len, 3 * len, true, (void **)&q),
		     0);
	for (size_t off = 0; off < len; off += PAGE)
		if (q[off] != (char)(off / PAGE + 1))
			cr_assert_fail("byte at %zu", off);
	cr_assert(all_zero(q + len, 2 * len, 512));
	cr_assert(zero_region_owns(q + 3 * len - 1, NULL, &sz));
	cr_expect_eq(sz, 3 * len);
	if (pad != MAP_FAILED && q != p)
		cr_expect_not(zero_region_owns(p, NULL, NULL));
	/* Shrink in place. */
	cr_assert_eq(zero_region_remap(q, 3 * len, len, false, (void **)&p),
		     0);
	cr_expect_eq(p, q);
	cr_assert(zero_region_owns(p, NULL, &sz));
	cr_expect_eq(sz, len);
	cr_expect_not(zero_region_owns(p + len, NULL, NULL));
	/* Not all inside one region: refused, nothing changes. */
	cr_expect_eq(zero_region_remap(p + len - PAGE, 2 * PAGE, 4 * PAGE,
				       true, (void **)&q), EINVAL);
	cr_expect(zero_region_owns(p + len - 1, NULL, NULL));
}

/* A region of two mappings (a block filled from parked extents): mremap
 * does not grow it, but a fresh mapping right after it does; with no
 * room after it, it is refused as it was and the caller copies. */
Test(zero, remap_of_two_mappings_grows_in_place)
{
	size_t len = 8 * MIB, sz;
	char *p, *q, *pad;

	/* Room after it (its last third, unmapped), closed by a page. */
	cr_assert_eq(zero_region_map(3 * len, (void **)&p), 0);
	cr_assert_eq(zero_region_unmap(p + 2 * len, len), 0);
	pad = mmap(p + 2 * len, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
		   MAP_FIXED_NOREPLACE, -1, 0);
	if (pad == MAP_FAILED)
		cr_skip_test("something took the room after the region");
	for (size_t off = 0; off < 2 * len; off += PAGE)
		p[off] = (char)(off / PAGE + 1);
	if (madvise(p + len / 2, len, MADV_NOHUGEPAGE) != 0)
		cr_skip_test("no MADV_NOHUGEPAGE to split the mapping with");
	cr_expect_eq(zero_region_remap(p, 2 * len, 3 * len, true,
				       (void **)&q), EFAULT);
	cr_assert(zero_region_owns(p, NULL, &sz));
	cr_expect_eq(sz, 2 * len, "refused: nothing changed");
	munmap(pad, PAGE);
	cr_assert_eq(zero_region_remap(p, 2 * len, 3 * len, true,
				       (void **)&q), 0);
	cr_expect_eq(q, p, "grown in place");
	for (size_t off = 0; off < 2 * len; off += PAGE)
		if (q[off] != (char)(off / PAGE + 1))
			cr_assert_fail("byte at %zu", off);
	cr_assert(all_zero(q + 2 * len, len, 512));
	cr_assert(zero_region_owns(q + 3 * len - 1, NULL, &sz));
	cr_expect_eq(sz, 3 * len);
	cr_expect_eq(zero_region_unmap(q, 3 * len), 0);
}

Test(zero, interposed_mmap_tracks_large_anonymous_only)
{
	size_t len = 16 * MIB, sz;
	int err = 0;
	char *p, *small, *shared;

	p = zero_mmap(NULL, len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &err);
	cr_assert_neq(p, MAP_FAILED);
	cr_expect(zero_region_owns(p, NULL, NULL));
	small = zero_mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &err);
	shared = zero_mmap(NULL, len, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0, &err);
	cr_assert(small != MAP_FAILED && shared != MAP_FAILED);
	cr_expect_not(zero_region_owns(small, NULL, NULL));
	cr_expect_not(zero_region_owns(shared, NULL, NULL));
	cr_expect(zero_mmap(NULL, len, PROT_READ, MAP_PRIVATE, 12345, 0,
			    &err) == MAP_FAILED && err == EBADF);

	/* Punch a hole: the region splits in two. */
	cr_assert_eq(zero_munmap(p + 4 * MIB, 2 * MIB), 0);
	cr_assert(zero_region_owns(p, NULL, &sz));
	cr_expect_eq(sz, 4 * MIB);
	cr_expect_not(zero_region_owns(p + 5 * MIB, NULL, NULL));
	cr_assert(zero_region_owns(p + 6 * MIB, NULL, &sz));
	cr_expect_eq(sz, 10 * MIB);
	/* MAP_FIXED over part of it replaces that part. */
	cr_assert_neq(zero_mmap(p + 6 * MIB, PAGE, PROT_READ,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
				0, &err), MAP_FAILED);
	cr_expect_not(zero_region_owns(p + 6 * MIB, NULL, NULL));
	cr_expect(zero_region_owns(p + 6 * MIB + PAGE, NULL, NULL));
	cr_expect_eq(zero_munmap(small, PAGE), 0);
	cr_expect_eq(zero_munmap(shared, len), 0);
	cr_expect_eq(zero_munmap(p, len), 0);
	cr_expect_not(zero_region_owns(p + 8 * MIB, NULL, NULL));
}

Test(zero, interposed_mremap_follows_region)
{
	size_t len = 8 * MIB, sz;
	int err = 0;
	char *p, *q;

	p = zero_mmap(NULL, len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, &err);
	cr_assert_neq(p, MAP_FAILED);
	memset(p, 0x5a, len);
	q = zero_mremap(p, len, 4 * len, MREMAP_MAYMOVE, NULL, &err);
	cr_assert_neq(q, MAP_FAILED);
	cr_assert(zero_region_owns(q + 4 * len - 1, NULL, &sz));
	cr_expect_eq(sz, 4 * len);
	cr_expect_eq(q[len - 1], 0x5a);
	cr_expect_eq(q[len], 0);
	if (q != p)
		cr_expect_not(zero_region_owns(p, NULL, NULL));
	cr_expect(zero_mremap(p + 1, len, len, 0, NULL, &err) == MAP_FAILED &&
		  err == EINVAL);
	cr_expect_eq(zero_munmap(q, 4 * len), 0);
}

Test(zero, make_zero_clears_dirty_spans)
{
	static const size_t sizes[] = { 24, 5000, 64 << 10, MIB + 123,
					16 * MIB };
	char *p;

	cr_assert_eq(zero_region_map(32 * MIB, (void **)&p), 0);
	for (size_t i = 0; i < ZP_ARRAY_SIZE(sizes); i++) {
		for (int release = 0; release < 2; release++) {
			char *s = p + 77;

			/* Sparse dirt, so the resident-only path matters. */
			for (size_t o = 0; o < sizes[i]; o += 3 * PAGE + 1)
				s[o] = 1;
			s[sizes[i] - 1] = 1;
			s[-1] = 9;
			s[sizes[i]] = 9;
			zero_make_zero(s, sizes[i], release);
			cr_assert(all_zero(s, sizes[i], 1), "size %zu",
				  sizes[i]);
			cr_assert_eq(s[-1], 9);
			cr_assert_eq(s[sizes[i]], 9);
			s[-1] = s[sizes[i]] = 0;
		}
	}
}

Test(zero, make_zero_release_gives_memory_back)
{
	size_t len = 64 * MIB, rss0;
	char *p;

	cr_assert_eq(zero_region_map(len, (void **)&p), 0);
	memset(p, 1, len);
	rss0 = os_rss_bytes();
	zero_make_zero(p, len, /* release */ true);
	cr_expect_lt(os_rss_bytes() + len * 9 / 10, rss0);
	cr_assert(all_zero(p, len, 128));
}

Test(zero, info_and_print_describe_the_engine)
{
	struct zp_zero_info in;
	struct outbuf o;
	char *p;

	cr_assert_eq(zero_region_map(8 * MIB, (void **)&p), 0);
	memset(p, 1, 3 * PAGE);
	cr_assert_eq(zero_info(&in), 0);
	cr_expect_eq(in.nr_regions, 1);
	cr_expect_eq(in.region_bytes, 8 * MIB);
	cr_expect_eq(in.resident_bytes, 3 * PAGE);
	cr_expect(in.level >= ZP_ZERO_LEVEL_OFF &&
		  in.level <= ZP_ZERO_LEVEL_UFFD);
	cr_expect_neq(in.level_reason[0], '\0');
	out_init(&o, -1);
	zero_print(&o);
	o.buf[o.len] = '\0';
	cr_expect(strstr(o.buf, "zero-page engine: level ") != NULL,
		  "%s", o.buf);
	o.len = 0;
	zero_print_json(&o);
	o.buf[o.len] = '\0';
	cr_expect(o.buf[0] == '{' && o.buf[o.len - 1] == '}', "%s", o.buf);
	cr_expect(strstr(o.buf, "\"regions\":1,") != NULL, "%s", o.buf);
}

Test(zero, madvise_dontneed_on_region_drops_contents)
{
	size_t len = 8 * MIB;
	char *p;

	cr_assert_eq(zero_region_map(len, (void **)&p), 0);
	memset(p, 3, len);
	cr_assert_eq(zero_madvise(p + MIB, 2 * MIB, MADV_DONTNEED), 0);
	cr_expect(all_zero(p + MIB, 2 * MIB, 64));
	cr_expect_eq(p[MIB - 1], 3);
	cr_expect_eq(p[3 * MIB], 3);
	cr_expect_eq(zero_madvise(p, len, MADV_NORMAL), 0);
	cr_expect_eq(zero_madvise(p + 1, PAGE, MADV_DONTNEED), EINVAL);
	cr_expect(zero_region_owns(p + 2 * MIB, NULL, NULL));
}

Test(zero, make_zero_on_huge_pages)
{
	size_t len = 8 * MIB, before;
	char *p;

	cr_assert_eq(zero_region_map_aligned(len, 2 * MIB, (void **)&p), 0);
	os_advise_huge(p, len, true);
	memset(p, 7, len);
	before = zero_resident_bytes((uintptr_t)p, (uintptr_t)p + len);
	zero_make_zero(p + 100, len - 200, /* release */ false);
	cr_assert(all_zero(p + 100, len - 200, 64));
	cr_assert_eq(p[99], 7);
	cr_assert_eq(p[len - 100], 7);
	cr_log_info("huge span: resident %zu -> %zu", before,
		    zero_resident_bytes((uintptr_t)p, (uintptr_t)p + len));
}

/* --- parking: freed large blocks' regions serve the next ones ----------- */

Test(zero, parked_region_leaves_the_table_and_is_taken_back_zeroed)
{
	size_t len = 8 * MIB;
	char *p, *q;

	cr_assert_eq(zero_region_take(len, 0, true, (void **)&p), 0);
	memset(p, 9, len);
	cr_assert_eq(zero_region_park(p, len, 0), 0);
	cr_expect_not(zero_region_owns(p, NULL, NULL));
	cr_expect(is_mapped(p));
	cr_expect_eq(zero_park_bytes(), len);
	cr_assert_eq(zero_region_take(len, 0, /* zero */ true, (void **)&q),
		     0);
	cr_assert_eq(q, p);
	cr_expect_eq(zero_park_bytes(), 0);
	cr_expect(zero_region_owns(q + len - 1, NULL, NULL));
	cr_assert(all_zero(q, len, 64));
	/* Without zero a parked region keeps what it held. */
	memset(q, 4, len);
	cr_assert_eq(zero_region_park(q, len, 0), 0);
	cr_assert_eq(zero_region_take(len, 0, false, (void **)&p), 0);
	cr_assert_eq(p, q);
	cr_expect_eq(p[len / 2], 4);
}

Test(zero, parked_region_splits_for_a_smaller_block)
{
	size_t len = 32 * MIB, sz;
	char *p, *q;

	cr_assert_eq(zero_region_take(len, 0, true, (void **)&p), 0);
	memset(p, 1, len);
	cr_assert_eq(zero_region_park(p, len, 0), 0);
	cr_assert_eq(zero_region_take(10 * MIB, 0, true, (void **)&q), 0);
	cr_assert_eq(q, p);
	cr_assert(zero_region_owns(q, NULL, &sz));
	cr_expect_eq(sz, 10 * MIB);
	cr_expect_eq(zero_park_bytes(), len - 10 * MIB);
	cr_assert(all_zero(q, 10 * MIB, 64));
	/* The rest serves the next one, from where the first ended. */
	cr_assert_eq(zero_region_take(len - 10 * MIB - PAGE, 0, true,
				      (void **)&p), 0);
	cr_assert_eq(p, q + 10 * MIB);
	cr_assert(all_zero(p, len - 10 * MIB - PAGE, 64));
	/* The rest stays parked, however small: with its neighbours it may
	 * serve a larger block yet. */
	cr_expect_eq(zero_park_bytes(), PAGE);
	cr_expect(is_mapped(p + len - 10 * MIB - PAGE));
}

/* A block parked next to a parked one becomes one extent with it: the
 * kernel already keeps them as one mapping. */
Test(zero, parked_neighbours_merge_and_serve_a_larger_block)
{
	size_t len = 8 * MIB;
	char *p, *q;

	cr_assert_eq(zero_region_take(2 * len, 0, true, (void **)&p), 0);
	memset(p, 3, 2 * len);
	/* Two blocks side by side, as a program's two frees may leave. */
	cr_assert_eq(zero_region_unmap(p + len, len), 0);
	cr_assert_eq(zero_region_take(len, 0, true, (void **)&q), 0);
	if (q != p + len) {
		zero_region_unmap(q, len);
		zero_region_unmap(p, len);
		cr_skip_test("the kernel did not place the blocks together");
	}
	cr_assert_eq(zero_region_park(p, len, 0), 0);
	cr_assert_eq(zero_region_park(q, len, 0), 0);
	cr_expect_eq(zero_park_bytes(), 2 * len);
	cr_assert_eq(zero_region_take(2 * len, 0, false, (void **)&q), 0);
	cr_expect_eq(q, p, "the merged extent served it whole");
	cr_expect_eq(zero_park_bytes(), 0);
	cr_expect_eq(zero_resident_bytes((uintptr_t)q, (uintptr_t)q + 2 * len),
		     len, "no page faulted in again");
}

Test(zero, parked_region_grows_for_a_larger_block)
{
	size_t len = 8 * MIB;
	char *p, *q;

	cr_assert_eq(zero_region_take(len, 0, true, (void **)&p), 0);
	memset(p, 2, len);
	cr_assert_eq(zero_region_park(p, len, 0), 0);
	cr_assert_eq(zero_region_take(3 * len, 0, true, (void **)&q), 0);
	cr_expect_eq(zero_park_bytes(), 0);
	cr_assert(zero_region_owns(q + 3 * len - 1, NULL, NULL));
	cr_expect_eq(zero_resident_bytes((uintptr_t)q, (uintptr_t)q + 3 * len),
		     len, "only the reused part is resident");
	cr_assert(all_zero(q, 3 * len, 64));
}

/* An extent of two mappings (a block parked next to a parked neighbour,
 * or advised apart from the rest): mremap refuses to grow it, which
 * once sent the block to fresh pages and unmapped the extent. */
Test(zero, parked_extent_of_two_mappings_grows_keeping_its_pages)
{
	size_t len = 8 * MIB;
	char *p, *q;
	size_t fresh;

	/* Room below the extent: its first third, unmapped. */
	cr_assert_eq(zero_region_take(3 * len, 0, false, (void **)&p), 0);
	cr_assert_eq(zero_region_unmap(p, len), 0);
	p += len;
	memset(p, 5, 2 * len);
	if (madvise(p, len, MADV_NOHUGEPAGE) != 0)
		cr_skip_test("no MADV_NOHUGEPAGE to split the mapping with");
	cr_assert_eq(zero_region_park(p, 2 * len, 0), 0);
	/* A block to be written whole (huge) grows downwards too. */
	cr_assert_eq(zero_region_take_huge(3 * len, 0, false, true, &fresh,
					   (void **)&q), 0);
	cr_expect_eq(fresh, len, "the third the extent lacked is new pages");
	if (!(q <= p && q + 3 * len >= p + 2 * len)) {
		/* Something took the room: moved whole, where the kernel
		 * moves several mappings at once. */
		if (!os_remap_moves_several())
			cr_skip_test("the room went, and no move of several");
		cr_log_info("moved: something took the room");
		p = q;
	}
	cr_expect_eq(zero_park_bytes(), 0);
	cr_expect_eq(zero_resident_bytes((uintptr_t)q, (uintptr_t)q + 3 * len),
		     2 * len, "no page of the extent faulted anew");
	cr_expect_eq(p[0], 5);
	cr_expect_eq(p[2 * len - 1], 5);
}

/* Hemmed in on both sides, such an extent cannot grow in place, and
 * mremap does not grow several mappings: it moves whole into the block, at
 * its offset within a huge page, where the kernel moves several at once. */
Test(zero, parked_extent_hemmed_in_moves_into_the_block)
{
	size_t len = 8 * MIB;
	char *p, *q;
	void *lo, *hi;

	if (!os_remap_moves_several())
		cr_skip_test("this kernel does not move several mappings");
	cr_assert_eq(zero_region_take(2 * len, 0, false, (void **)&p), 0);
	memset(p, 6, 2 * len);
	p[len - 1] = 7;
	if (madvise(p, len, MADV_NOHUGEPAGE) != 0)
		cr_skip_test("no MADV_NOHUGEPAGE to split the mapping with");
	cr_assert_eq(zero_region_park(p, 2 * len, 0), 0);
	/* Fails where something is there already, which does as well. */
	lo = mmap(p - PAGE, PAGE, PROT_NONE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	hi = mmap(p + 2 * len, PAGE, PROT_NONE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	cr_assert_eq(zero_region_take(3 * len, 0, false, (void **)&q), 0);
	cr_expect_eq(zero_park_bytes(), 0);
	cr_expect_eq(((uintptr_t)q ^ (uintptr_t)p) & (2 * MIB - 1), 0,
		     "huge pages move whole");
	cr_expect_eq(zero_resident_bytes((uintptr_t)q, (uintptr_t)q + 3 * len),
		     2 * len, "the extent's pages, none faulted anew");
	cr_expect_eq(q[0], 6);
	cr_expect_eq(q[len - 1], 7);
	cr_expect_eq(q[2 * len - 1], 6);
	cr_expect_eq(q[3 * len - 1], 0);
	cr_expect_not(is_mapped(p), "moved, not copied");
	cr_expect_eq(zero_region_unmap(q, 3 * len), 0);
	if (lo == p - PAGE)
		munmap(lo, PAGE);
	if (hi == p + 2 * len)
		munmap(hi, PAGE);
}

/* What a grown extent lacks comes from the other parked extents, moved
 * rather than faulted anew, and the park holds that much less: grown in
 * place (room after or before it), or moved by mremap when hemmed in. */
static void
grow_with_other_extent(bool hem)
{
	size_t len = 8 * MIB;
	char *a, *b, *gap, *q;
	void *lo = MAP_FAILED, *hi = MAP_FAILED;
	size_t fresh;

	if (!os_remap_moves_several())
		cr_skip_test("this kernel does not move several mappings");
	/* A gap between the two, so that parking does not merge them. */
	cr_assert_eq(zero_region_take(len, 0, false, (void **)&a), 0);
	cr_assert_eq(zero_region_take(len / 2, 0, false, (void **)&gap), 0);
	cr_assert_eq(zero_region_take(len / 2, 0, false, (void **)&b), 0);
	cr_assert_eq(zero_region_unmap(gap, len / 2), 0);
	for (int i = 0; i < 8 && (b + len / 2 == a || a + len == b); i++) {
		gap = b;
		cr_assert_eq(zero_region_take(len / 2, 0, false, (void **)&b),
			     0);
		cr_assert_eq(zero_region_unmap(gap, len / 2), 0);
	}
	if (b + len / 2 == a || a + len == b)
		cr_skip_test("the kernel placed the blocks together");
	memset(a, 1, len);
	memset(b, 2, len / 2);
	cr_assert_eq(zero_region_park(a, len, 0), 0);
	cr_assert_eq(zero_region_park(b, len / 2, 0), 0);
	if (hem) {
		/* Fails where something is there already, as well. */
		lo = mmap(a - PAGE, PAGE, PROT_NONE, MAP_PRIVATE |
			  MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		hi = mmap(a + len, PAGE, PROT_NONE, MAP_PRIVATE |
			  MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	}
	/* A block to be written whole (huge): the others fill it. */
	cr_assert_eq(zero_region_take_huge(len + len / 2, 0, false, true,
					   &fresh, (void **)&q), 0);
	cr_expect_eq(zero_park_bytes(), 0, "both extents went into it");
	cr_expect_eq(fresh, 0, "no byte of it is a new page");
	cr_expect_eq(zero_resident_bytes((uintptr_t)q,
					 (uintptr_t)q + len + len / 2),
		     len + len / 2, "no page faulted anew");
	if (q + len / 2 != a) {
		/* Grown upwards or moved: a's pages first, b's after them. */
		cr_expect_eq(q[0], 1);
		cr_expect_eq(q[len - 1], 1);
		cr_expect_eq(q[len], 2);
		cr_expect_eq(q[len + len / 2 - 1], 2);
	} else {
		/* Grown downwards: b's pages before a's. */
		cr_expect(!hem, "no room below a hemmed extent");
		cr_expect_eq(q[0], 2);
		cr_expect_eq(q[len / 2], 1);
		cr_expect_eq(q[len + len / 2 - 1], 1);
	}
	if (q + len + len / 2 <= b || q >= b + len / 2)
		cr_expect_not(is_mapped(b), "moved, not copied");
	cr_expect_eq(zero_region_unmap(q, len + len / 2), 0);
	if (lo == a - PAGE)
		munmap(lo, PAGE);
	if (hi == a + len)
		munmap(hi, PAGE);
}

Test(zero, grown_block_takes_the_pages_of_other_parked_extents)
{
	grow_with_other_extent(false);
}

Test(zero, moved_block_takes_the_pages_of_other_parked_extents)
{
	grow_with_other_extent(true);
}

Test(zero, parking_keeps_to_its_budget_and_delay)
{
	struct zero_config c;
	char *p[8];
	size_t left;

	zero_config_default(&c);
	c.park_bytes = 16 * MIB;
	c.park_max = 0;			/* the budget is park_bytes alone */
	/* Long enough that taking, writing and parking 64 MiB on a loaded
	 * machine (the CI's other suites beside it) stays inside it. */
	c.park_delay_ns = 500ULL * 1000 * 1000;
	c.reclaim = false;
	zero_boot(&c);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(zero_region_take(8 * MIB, 0, false,
					      (void **)&p[i]), 0);
		memset(p[i], 1, 8 * MIB);
	}
	/* Every other one, so that no two parked blocks are neighbours. */
	for (int i = 0; i < 8; i += 2)
		cr_assert_eq(zero_region_park(p[i], 8 * MIB, 0), 0);
	/* The oldest went to make room. */
	cr_expect_eq(zero_park_bytes(), 16 * MIB);
	cr_expect_not(is_mapped(p[0]));
	cr_expect_not(is_mapped(p[2]));
	cr_expect(is_mapped(p[4]));
	cr_expect(is_mapped(p[6]));
	cr_expect_eq(zero_park_release(false), 0);
	os_sleep_ns(c.park_delay_ns + 10 * 1000 * 1000);
	cr_expect_eq(zero_park_release(false), 16 * MIB);
	cr_expect_eq(zero_park_bytes(), 0);
	cr_expect_not(is_mapped(p[6]));
	/* Bigger than the budget: unmapped at once. */
	cr_assert_eq(zero_region_take(32 * MIB, 0, false, (void **)&p[0]), 0);
	cr_assert_eq(zero_region_park(p[0], 32 * MIB, 0), 0);
	cr_expect_not(is_mapped(p[0]));
	left = zero_park_bytes();
	cr_expect_eq(left, 0);
	for (int i = 1; i < 8; i += 2)
		cr_assert_eq(zero_region_unmap(p[i], 8 * MIB), 0);
}

/* Room past the budget (a teardown's blocks, large.c), and a trim that
 * takes the longest parked first, cut from its end. */
Test(zero, parking_takes_the_room_given_and_trims_the_oldest_first)
{
	struct zero_config c;
	char *p[4];

	zero_config_default(&c);
	c.park_bytes = 8 * MIB;
	c.park_max = 64 * MIB;
	c.park_delay_ns = 60ULL * 1000 * 1000 * 1000;	/* none expires */
	c.reclaim = false;
	zero_boot(&c);
	/* 8 MiB at 16 MiB boundaries: no two touch, so none merge. */
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(zero_region_take(8 * MIB, 16 * MIB, false,
					      (void **)&p[i]), 0);
		p[i][0] = (char)(i + 1);
	}
	cr_assert_eq(zero_region_park(p[0], 8 * MIB, 16 * MIB), 0);
	cr_assert_eq(zero_region_park(p[2], 8 * MIB, 16 * MIB), 0);
	cr_expect_eq(zero_park_bytes(), 16 * MIB, "twice the budget");
	/* Room beyond park_max counts as park_max. */
	cr_assert_eq(zero_region_park(p[1], 8 * MIB, 1ULL << 40), 0);
	cr_assert_eq(zero_region_park(p[3], 8 * MIB, 1ULL << 40), 0);
	cr_expect_eq(zero_park_bytes(), 32 * MIB);
	cr_expect_eq(zero_park_trim(32 * MIB), 0, "nothing over");
	/* 12 MiB: p[0], the oldest, whole; then 4 MiB off p[2]'s end. */
	cr_expect_eq(zero_park_trim(20 * MIB), 12 * MIB);
	cr_expect_eq(zero_park_bytes(), 20 * MIB);
	cr_expect_not(is_mapped(p[0]));
	cr_expect(is_mapped(p[2]));
	cr_expect_eq(p[2][0], 3);
	cr_expect_not(is_mapped(p[2] + 6 * MIB));
	cr_expect(is_mapped(p[1]) && is_mapped(p[3]));
	cr_expect_eq(zero_park_trim(0), 20 * MIB);
	cr_expect_eq(zero_park_bytes(), 0);
	for (int i = 0; i < 4; i++)
		cr_expect_not(is_mapped(p[i]), "block %d", i);
}

/* Out of slots, the smallest extent goes: the oldest may be the one big
 * enough for the next block, the small ones are leftovers of cuts. */
Test(zero, parking_out_of_slots_drops_the_smallest)
{
	enum { NR = 32 };	/* every other one parked: 16, the slots */
	struct zero_config c;
	char *p[NR], *big;

	zero_config_default(&c);
	c.park_delay_ns = 60ULL * 1000 * 1000 * 1000;	/* none expires */
	c.reclaim = false;
	zero_boot(&c);
	cr_assert_eq(zero_region_take(16 * MIB, 0, false, (void **)&big), 0);
	memset(big, 1, 16 * MIB);
	/* Each at its own MiB: blocks the kernel placed in holes must not
	 * touch, or parking merges them. */
	for (int i = 0; i < NR; i++)
		cr_assert_eq(zero_region_take((size_t)(NR - i) * PAGE, MIB,
					      false, (void **)&p[i]), 0);
	cr_assert_eq(zero_region_park(big, 16 * MIB, 0), 0);
	/* Every other one; the last, one page, finds the slots full. */
	for (int i = 1; i < NR; i += 2)
		cr_assert_eq(zero_region_park(p[i], (size_t)(NR - i) * PAGE, 0),
			     0);
	cr_expect(is_mapped(big), "the oldest and biggest stayed");
	cr_expect_not(is_mapped(p[NR - 3]), "the smallest went");
	cr_expect(is_mapped(p[NR - 5]));
	cr_expect(is_mapped(p[NR - 1]));
	for (int i = 0; i < NR; i += 2)
		cr_assert_eq(zero_region_unmap(p[i], (size_t)(NR - i) * PAGE),
			     0);
	cr_assert_eq(zero_region_take(16 * MIB, 0, false, (void **)&p[0]), 0);
	cr_expect_eq(p[0], big);
	cr_expect_eq(p[0][0], 1);
	zero_park_release(true);
}

Test(zero, parked_regions_expire_in_the_background)
{
	struct zero_config c;
	char *p;

	zero_config_default(&c);
	c.reclaim_interval_ns = 20ULL * 1000 * 1000;
	c.park_delay_ns = 20ULL * 1000 * 1000;
	if (getenv("ZPMALLOC_UFFD") && !strcmp(getenv("ZPMALLOC_UFFD"), "0"))
		c.uffd_mode = ZERO_UFFD_OFF;
	zero_boot(&c);
	cr_assert_eq(zero_region_take(8 * MIB, 0, false, (void **)&p), 0);
	memset(p, 1, 8 * MIB);
	cr_assert_eq(zero_region_park(p, 8 * MIB, 0), 0);
	for (int i = 0; i < 200 && zero_park_bytes(); i++)
		os_sleep_ns(10 * 1000 * 1000);
	cr_expect_eq(zero_park_bytes(), 0, "still parked after 2 s");
	cr_expect_not(is_mapped(p));
}

Test(zero, park_of_part_of_a_region_just_unmaps_it)
{
	size_t len = 16 * MIB;
	char *p;

	cr_assert_eq(zero_region_map(len, (void **)&p), 0);
	cr_assert_eq(zero_region_park(p, 8 * MIB, 0), 0);
	cr_expect_eq(zero_park_bytes(), 0);
	cr_expect_not(is_mapped(p));
	cr_expect(zero_region_owns(p + 8 * MIB, NULL, NULL));
	cr_expect_eq(zero_region_park(p, 8 * MIB, 0), EINVAL);
}

Test(zero, parked_region_drops_a_changed_protection)
{
	size_t len = 8 * MIB;
	char *p, *q;

	cr_assert_eq(zero_region_take(len, 0, false, (void **)&p), 0);
	cr_assert_eq(mprotect(p + MIB, PAGE, PROT_NONE), 0);
	cr_assert_eq(zero_region_park(p, len, 0), 0);
	cr_assert_eq(zero_region_take(len, 0, /* zero */ true, (void **)&q),
		     0);
	cr_assert_eq(q, p);
	q[MIB] = 1;	/* would fault if the guard page had survived */
	cr_assert(all_zero(q, MIB, 64));
}
