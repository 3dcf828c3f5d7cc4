/*
 * zero.c - zero-backed regions and the cheapest way to make a span zero.
 * Owns:  zero_cfg, the region table (sorted, non-overlapping [start, end)
 *        ranges in os_map'd memory), the parked regions (freed large
 *        blocks kept mapped for the next ones), the pagemap descriptor.
 * Locks: table.lock guards the table and the parked list (pagemap_lock
 *        only the descriptor, taken alone); a change that unmaps, moves or
 *        parks region memory first takes reclaim_lock so the scanner never
 *        works on a chunk that is going away (order: reclaim_lock,
 *        table_lock). Parked regions are unmapped with no lock held.
 * Path:  large_alloc -> zero_region_take -> (parked: mremap/munmap to fit,
 *        zero_make_zero) | os_map -> (table) -> reclaim_kick
 *        large_free -> zero_region_park -> (table -> parked list)
 *        shim mmap -> zero_mmap -> os_mmap_raw (+ table when a region)
 *        calloc of recycled pages -> zero_make_zero -> PAGEMAP_SCAN, memset
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "base/log.h"
#include "os/os.h"
#include "os/os_uffd.h"
#include "zero/zero_int.h"
#include "zpmalloc.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

/* Below this a span is simply memset: a PAGEMAP_SCAN costs a few µs. */
#define ZERO_SCAN_MIN	((size_t)256 << 10)

struct zero_config zero_cfg;

/* Pages that may hold data: in memory (not the zero page) or in swap. */
static const struct os_scan_match dirty_match = {
	.any = OS_PAGE_IS_PRESENT | OS_PAGE_IS_SWAPPED,
	.none = OS_PAGE_IS_PFNZERO,
	.report = OS_PAGE_IS_PRESENT | OS_PAGE_IS_HUGE,
};
/* Pages that count in RSS. */
static const struct os_scan_match resident_match = {
	.all = OS_PAGE_IS_PRESENT,
	.none = OS_PAGE_IS_PFNZERO,
	.report = OS_PAGE_IS_PRESENT,
};

struct zero_region {
	uintptr_t start, end;
};

static struct {
	struct zp_lock lock;
	struct zero_region *v;		/* sorted by start */
	size_t nr, cap;			/* entries, capacity */
	size_t bytes;			/* sum of sizes */
} table = { .lock = ZP_LOCK_INIT };

/*
 * Parked regions (freed large blocks kept for reuse), oldest first.
 * Guarded by table.lock: they leave the table and enter here in one step.
 */
#define PARK_MAX	16

struct zero_parked {
	uintptr_t start, end;
	uint64_t since_ns;		/* when it was parked */
};

static struct {
	struct zero_parked v[PARK_MAX];
	unsigned nr;
	size_t bytes;
	uint64_t nr_parked, nr_reused, nr_expired;
} park;

static struct zp_lock pagemap_lock = ZP_LOCK_INIT;
static int pagemap_fd = -1;
static int pagemap_fd_pid;

void
zero_config_default(struct zero_config *cfg)
{
	*cfg = (struct zero_config){
		.uffd_mode = ZERO_UFFD_AUTO,
		.reclaim = true,
		.reclaim_interval_ns = 1000ULL * 1000 * 1000,
		.reclaim_budget_bytes = (size_t)256 << 20,
		.mmap_threshold = (size_t)4 << 20,
		.park_bytes = (size_t)64 << 20,
		.park_delay_ns = 1000ULL * 1000 * 1000,
	};
}

void
zero_boot(const struct zero_config *cfg)
{
	zero_cfg = *cfg;
	if (zero_cfg.mmap_threshold < ZP_PAGE_SIZE)
		zero_cfg.mmap_threshold = ZP_PAGE_SIZE;
}

/* --- the table (caller holds table.lock) ------------------------------- */

/* Index of the first region ending after addr. */
static size_t
table_find_locked(uintptr_t addr)
{
	size_t lo = 0, hi = table.nr;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (table.v[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
table_reserve_locked(size_t extra)
{
	struct zero_region *nv;
	size_t cap;
	int err;

	if (table.nr + extra <= table.cap)
		return 0;
	cap = table.cap ? table.cap * 2 : ZP_PAGE_SIZE / sizeof(*nv);
	err = os_map(cap * sizeof(*nv), NULL, (void **)&nv);
	if (err)
		return err;
	if (table.v) {
		memcpy(nv, table.v, table.nr * sizeof(*nv));
		os_unmap(table.v, table.cap * sizeof(*nv));
	}
	table.v = nv;
	table.cap = cap;
	return 0;
}

static bool
table_overlaps_locked(uintptr_t start, uintptr_t end)
{
	size_t i = table_find_locked(start);

	return i < table.nr && table.v[i].start < end;
}

/* Index of the region holding all of [start, end), or -1. */
static long
table_holding_locked(uintptr_t start, uintptr_t end)
{
	size_t i = table_find_locked(start);

	if (i < table.nr && table.v[i].start <= start && end <= table.v[i].end)
		return (long)i;
	return -1;
}

static int
table_insert_locked(uintptr_t start, uintptr_t end)
{
	size_t i;
	int err = table_reserve_locked(1);

	if (err)
		return err;
	i = table_find_locked(start);
	zp_assert(i == table.nr || table.v[i].start >= end);
	memmove(&table.v[i + 1], &table.v[i],
		(table.nr - i) * sizeof(*table.v));
	table.v[i] = (struct zero_region){ start, end };
	table.nr++;
	table.bytes += end - start;
	return 0;
}

static void
table_delete_at_locked(size_t i)
{
	memmove(&table.v[i], &table.v[i + 1],
		(table.nr - i - 1) * sizeof(*table.v));
	table.nr--;
}

/* Forget [start, end): regions are trimmed, split or dropped. A split that
 * finds no room for its tail drops the tail (it is then merely plain
 * memory the scanner does not visit). */
static void
table_remove_locked(uintptr_t start, uintptr_t end)
{
	size_t i = table_find_locked(start);

	while (i < table.nr && table.v[i].start < end) {
		struct zero_region *r = &table.v[i];
		uintptr_t rs = r->start, re = r->end;

		if (rs < start && re > end) {
			table.bytes -= end - start;
			r->end = start;
			if (table_reserve_locked(1) == 0) {
				table.bytes -= re - end;
				table_insert_locked(end, re);
			} else {
				table.bytes -= re - end;
			}
			return;
		}
		if (rs < start) {
			table.bytes -= re - start;
			r->end = start;
			i++;
		} else if (re > end) {
			table.bytes -= end - rs;
			r->start = end;
			return;
		} else {
			table.bytes -= re - rs;
			table_delete_at_locked(i);
		}
	}
}

bool
zero_table_next_chunk(uintptr_t addr, uintptr_t *start, uintptr_t *end)
{
	size_t i;
	bool found = false;

	zp_lock(&table.lock);
	i = table_find_locked(addr);
	if (i < table.nr) {
		uintptr_t s = ZP_MAX(addr, table.v[i].start);

		*start = s;
		*end = ZP_MIN(table.v[i].end, zp_align_down(s, ZERO_CHUNK) +
				ZERO_CHUNK);
		found = true;
	}
	zp_unlock(&table.lock);
	return found;
}

uintptr_t
zero_table_top(void)
{
	uintptr_t top;

	zp_lock(&table.lock);
	top = table.nr ? table.v[table.nr - 1].end : 0;
	zp_unlock(&table.lock);
	return top;
}

/* --- regions ------------------------------------------------------------ */

static int
region_add(uintptr_t start, uintptr_t end)
{
	int err;

	zp_lock(&table.lock);
	table_remove_locked(start, end);	/* stale entries, if any */
	err = table_insert_locked(start, end);
	zp_unlock(&table.lock);
	if (!err)
		reclaim_kick();
	return err;
}

int
zero_region_map_aligned(size_t size, size_t align, void **out)
{
	uintptr_t p, a;
	size_t span;
	void *m;
	int err;

	if (size == 0)
		return EINVAL;
	size = zp_align_up(size, ZP_PAGE_SIZE);
	if (align <= ZP_PAGE_SIZE)
		align = 0;
	else if (!zp_is_pow2(align))
		return EINVAL;
	span = size + align;
	if (span < size)
		return ENOMEM;
	err = os_map(span, NULL, &m);
	if (err)
		return err;
	p = (uintptr_t)m;
	a = align ? zp_align_up(p, align) : p;
	if (a > p)
		os_unmap(m, a - p);
	if (p + span > a + size)
		os_unmap((void *)(a + size), p + span - (a + size));
	err = region_add(a, a + size);
	if (err) {
		os_unmap((void *)a, size);
		return err;
	}
	*out = (void *)a;
	return 0;
}

int
zero_region_map(size_t size, void **out)
{
	return zero_region_map_aligned(size, 0, out);
}

int
zero_region_unmap(void *p, size_t size)
{
	uintptr_t s = (uintptr_t)p, e = s + zp_align_up(size, ZP_PAGE_SIZE);
	int err;

	reclaim_lock();
	zp_lock(&table.lock);
	if (table_holding_locked(s, e) < 0) {
		err = EINVAL;
	} else {
		err = os_unmap(p, e - s);
		if (!err)
			table_remove_locked(s, e);
	}
	zp_unlock(&table.lock);
	reclaim_unlock();
	return err;
}

/* --- parking ------------------------------------------------------------ */

/* Parked regions to unmap once table.lock is dropped: they are in no
 * table and on no list any more, so nobody else can reach them. */
struct park_victims {
	struct zero_parked v[PARK_MAX];
	unsigned nr;
};

static struct zero_parked
park_remove_locked(unsigned i)
{
	struct zero_parked e = park.v[i];

	park.bytes -= e.end - e.start;
	memmove(&park.v[i], &park.v[i + 1],
		(park.nr - i - 1) * sizeof(park.v[0]));
	park.nr--;
	return e;
}

static void
park_drop_locked(unsigned i, struct park_victims *out)
{
	out->v[out->nr++] = park_remove_locked(i);
}

/* Oldest first: everything (all), or what has waited out the delay. */
static void
park_expire_locked(uint64_t now, bool all, struct park_victims *out)
{
	while (park.nr && (all || (park.v[0].since_ns <= now &&
				   now - park.v[0].since_ns >=
					   zero_cfg.park_delay_ns))) {
		park_drop_locked(0, out);
		park.nr_expired++;
	}
}

static size_t
park_unmap(const struct park_victims *vs)
{
	size_t bytes = 0;

	for (unsigned i = 0; i < vs->nr; i++) {
		size_t len = vs->v[i].end - vs->v[i].start;

		/* munmap of a whole mapping we own fails only when the
		 * kernel is out of memory for VMAs; the range then stays
		 * mapped, unused, which is all that can be done. */
		if (os_unmap((void *)vs->v[i].start, len) == 0)
			bytes += len;
	}
	return bytes;
}

static size_t
park_len(long i)
{
	return park.v[i].end - park.v[i].start;
}

/*
 * The parked region to serve size bytes: the smallest that holds it (a
 * big enough rest stays parked), else the largest, to be grown. Aligned
 * requests take only a region that starts aligned and holds them.
 */
static bool
park_pick_locked(size_t size, size_t align, struct zero_parked *got)
{
	long fit = -1, grow = -1;

	for (long i = 0; i < (long)park.nr; i++) {
		if (park.v[i].start & (align - 1))
			continue;
		if (park_len(i) >= size) {
			if (fit < 0 || park_len(i) < park_len(fit))
				fit = i;
		} else if (align == ZP_PAGE_SIZE &&
			   (grow < 0 || park_len(i) > park_len(grow))) {
			grow = i;
		}
	}
	if (fit < 0 && grow < 0)
		return false;
	if (fit >= 0 && park_len(fit) - size >= ZP_MAX_BLOCK) {
		/* Most large blocks are bigger than the zones' largest: a
		 * smaller rest would mostly take a slot, so it goes. */
		*got = park.v[fit];
		got->end = got->start + size;
		park.v[fit].start += size;
		park.bytes -= size;
	} else {
		*got = park_remove_locked((unsigned)(fit >= 0 ? fit : grow));
	}
	park.nr_reused++;
	return true;
}

/* Fit a taken parked region to size bytes; returns its (maybe moved)
 * start and in *dirty how many leading bytes may hold old data. */
static int
park_fit(const struct zero_parked *got, size_t size, size_t *dirty,
	 uintptr_t *start)
{
	size_t have = got->end - got->start;
	void *np;
	int err;

	*start = got->start;
	*dirty = ZP_MIN(have, size);
	if (have > size)
		return os_unmap((void *)(got->start + size), have - size);
	if (have == size)
		return 0;
	err = os_remap((void *)got->start, have, size, NULL,
		       /* may_move */ true, &np);
	if (err)
		return err;
	*start = (uintptr_t)np;
	return 0;
}

int
zero_region_take(size_t size, size_t align, bool zero, void **out)
{
	struct park_victims vs = { .nr = 0 };
	struct zero_parked got;
	uintptr_t s;
	size_t dirty;
	bool found = false;
	int err;

	if (size == 0 || (align > ZP_PAGE_SIZE && !zp_is_pow2(align)))
		return EINVAL;
	size = zp_align_up(size, ZP_PAGE_SIZE);
	align = ZP_MAX(align, ZP_PAGE_SIZE);
	zp_lock(&table.lock);
	park_expire_locked(os_now_ns(), false, &vs);
	if (size <= zero_cfg.park_bytes)
		found = park_pick_locked(size, align, &got);
	zp_unlock(&table.lock);
	park_unmap(&vs);
	/* On ENOMEM the malloc layer gives back what it holds free,
	 * parked regions included, and takes again. */
	if (!found)
		return zero_region_map_aligned(size, align, out);
	err = park_fit(&got, size, &dirty, &s);
	if (err) {
		os_unmap((void *)got.start, got.end - got.start);
		return zero_region_map_aligned(size, align, out);
	}
	if (zero)
		zero_make_zero((void *)s, dirty, /* release */ false);
	err = region_add(s, s + size);
	if (err) {
		os_unmap((void *)s, size);
		return err;
	}
	*out = (void *)s;
	return 0;
}

int
zero_region_park(void *p, size_t size)
{
	uintptr_t s = (uintptr_t)p, e = s + zp_align_up(size, ZP_PAGE_SIZE);
	struct park_victims vs = { .nr = 0 };
	uint64_t now;
	long i;

	/* A program may have changed the protection of its block (a guard
	 * page, a JIT buffer) and freed it so: the next block must not
	 * inherit that. Unchanged protection makes this a cheap call. */
	if (e - s > zero_cfg.park_bytes || e <= s ||
	    os_commit(p, e - s) != 0)
		return zero_region_unmap(p, size);
	reclaim_lock();
	zp_lock(&table.lock);
	i = table_holding_locked(s, e);
	if (i < 0 || table.v[i].start != s || table.v[i].end != e) {
		/* Not one whole region (a program unmapped part of it):
		 * plain unmap semantics. */
		zp_unlock(&table.lock);
		reclaim_unlock();
		return zero_region_unmap(p, size);
	}
	table_remove_locked(s, e);
	now = os_now_ns();
	park_expire_locked(now, false, &vs);
	while (park.nr == PARK_MAX ||
	       park.bytes + (e - s) > zero_cfg.park_bytes)
		park_drop_locked(0, &vs);
	park.v[park.nr++] = (struct zero_parked){ s, e, now };
	park.bytes += e - s;
	park.nr_parked++;
	zp_unlock(&table.lock);
	reclaim_unlock();
	park_unmap(&vs);
	reclaim_kick_park();
	return 0;
}

size_t
zero_park_release(bool all)
{
	struct park_victims vs = { .nr = 0 };

	zp_lock(&table.lock);
	park_expire_locked(os_now_ns(), all, &vs);
	zp_unlock(&table.lock);
	return park_unmap(&vs);
}

size_t
zero_park_bytes(void)
{
	size_t bytes;

	zp_lock(&table.lock);
	bytes = park.bytes;
	zp_unlock(&table.lock);
	return bytes;
}

/* After a successful move or resize of [os, oe) to [ns, ne): the region
 * (if [os, oe) was all region) follows, anything clobbered is forgotten. */
static void
table_follow_locked(uintptr_t os, uintptr_t oe, uintptr_t ns, uintptr_t ne,
		    bool was_region, bool keep_old)
{
	if (!keep_old)
		table_remove_locked(os, oe);
	table_remove_locked(ns, ne);
	if (was_region && ne > ns)
		table_insert_locked(ns, ne);
}

int
zero_region_remap(void *old, size_t old_size, size_t new_size,
		  bool may_move, void **out)
{
	uintptr_t os = (uintptr_t)old;
	uintptr_t oe = os + zp_align_up(old_size, ZP_PAGE_SIZE);
	void *np;
	int err;

	new_size = zp_align_up(new_size, ZP_PAGE_SIZE);
	if (!new_size)
		return EINVAL;
	reclaim_lock();
	zp_lock(&table.lock);
	if (table_holding_locked(os, oe) < 0) {
		err = EINVAL;
	} else if ((err = table_reserve_locked(2)) == 0) {
		err = os_remap(old, oe - os, new_size, NULL, may_move, &np);
		if (!err) {
			table_follow_locked(os, oe, (uintptr_t)np,
					    (uintptr_t)np + new_size, true,
					    false);
			*out = np;
		}
	}
	zp_unlock(&table.lock);
	reclaim_unlock();
	return err;
}

bool
zero_region_owns(const void *p, void **start, size_t *size)
{
	uintptr_t a = (uintptr_t)p;
	long i;

	zp_lock(&table.lock);
	i = table_holding_locked(a, a + 1);
	if (i >= 0) {
		if (start)
			*start = (void *)table.v[i].start;
		if (size)
			*size = table.v[i].end - table.v[i].start;
	}
	zp_unlock(&table.lock);
	return i >= 0;
}

/* --- interposed mmap ---------------------------------------------------- */

static bool
mmap_is_region(size_t len, int prot, int flags, int fd)
{
	const int plain = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

	(void)fd;	/* anonymous mappings ignore it */
	return len >= zero_cfg.mmap_threshold &&
	       prot == (PROT_READ | PROT_WRITE) &&
	       (flags & (MAP_PRIVATE | MAP_ANONYMOUS)) ==
		       (MAP_PRIVATE | MAP_ANONYMOUS) &&
	       (flags & ~plain) == 0;
}

static bool
overlaps_region(uintptr_t start, uintptr_t end)
{
	bool r;

	zp_lock(&table.lock);
	r = table_overlaps_locked(start, end);
	zp_unlock(&table.lock);
	return r;
}

void *
zero_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off,
	  int *err)
{
	uintptr_t s = (uintptr_t)addr;
	uintptr_t e = s + zp_align_up(len, ZP_PAGE_SIZE);
	void *r;

	if (mmap_is_region(len, prot, flags, fd)) {
		r = os_mmap_raw(addr, len, prot, flags, -1, 0, err);
		if (r == MAP_FAILED && *err == ENOMEM &&
		    zero_park_release(/* all */ true))
			r = os_mmap_raw(addr, len, prot, flags, -1, 0, err);
		/* A region the table has no room for is still correct
		 * memory, merely never reclaimed. */
		if (r != MAP_FAILED)
			(void)region_add((uintptr_t)r, (uintptr_t)r +
					 zp_align_up(len, ZP_PAGE_SIZE));
		return r;
	}
	/* MAP_FIXED over a region replaces that part of it. */
	if (!(flags & MAP_FIXED) || (flags & MAP_FIXED_NOREPLACE) ||
	    e <= s || !overlaps_region(s, e)) {
		r = os_mmap_raw(addr, len, prot, flags, fd, off, err);
		if (r == MAP_FAILED && *err == ENOMEM &&
		    zero_park_release(/* all */ true))
			r = os_mmap_raw(addr, len, prot, flags, fd, off, err);
		return r;
	}
	reclaim_lock();
	zp_lock(&table.lock);
	r = os_mmap_raw(addr, len, prot, flags, fd, off, err);
	if (r != MAP_FAILED)
		table_remove_locked(s, e);
	zp_unlock(&table.lock);
	reclaim_unlock();
	return r;
}

int
zero_munmap(void *addr, size_t len)
{
	uintptr_t s = (uintptr_t)addr;
	uintptr_t e = s + zp_align_up(len, ZP_PAGE_SIZE);
	int err;

	if (e <= s || !overlaps_region(s, e))
		return os_munmap_raw(addr, len);
	reclaim_lock();
	zp_lock(&table.lock);
	table_reserve_locked(1);	/* room for a split */
	err = os_munmap_raw(addr, len);
	if (!err)
		table_remove_locked(s, e);
	zp_unlock(&table.lock);
	reclaim_unlock();
	return err;
}

void *
zero_mremap(void *old, size_t old_size, size_t new_size, int flags,
	    void *new_addr, int *err)
{
	uintptr_t os = (uintptr_t)old;
	uintptr_t oe = os + zp_align_up(old_size, ZP_PAGE_SIZE);
	uintptr_t fs = (uintptr_t)new_addr;
	uintptr_t fe = fs + zp_align_up(new_size, ZP_PAGE_SIZE);
	bool fixed = flags & MREMAP_FIXED, was_region;
	void *r;

	if (!overlaps_region(os, oe) && (!fixed || !overlaps_region(fs, fe)))
		return os_mremap_raw(old, old_size, new_size, flags, new_addr,
				     err);
	reclaim_lock();
	zp_lock(&table.lock);
	was_region = old_size && table_holding_locked(os, oe) >= 0;
	table_reserve_locked(3);
	r = os_mremap_raw(old, old_size, new_size, flags, new_addr, err);
	if (r != MAP_FAILED)
		table_follow_locked(os, oe, (uintptr_t)r, (uintptr_t)r +
				    zp_align_up(new_size, ZP_PAGE_SIZE),
				    was_region, flags & MREMAP_DONTUNMAP);
	zp_unlock(&table.lock);
	reclaim_unlock();
	return r;
}

int
zero_madvise(void *addr, size_t len, int advice)
{
	uintptr_t s = (uintptr_t)addr;
	uintptr_t e = s + zp_align_up(len, ZP_PAGE_SIZE);
	int err;

	if ((advice != MADV_DONTNEED && advice != MADV_FREE &&
	     advice != MADV_REMOVE && advice != MADV_DONTNEED_LOCKED) ||
	    e <= s || !overlaps_region(s, e))
		return os_madvise_raw(addr, len, advice);
	reclaim_lock();
	err = os_madvise_raw(addr, len, advice);
	reclaim_unlock();
	return err;
}

/* --- pagemap and zeroing ------------------------------------------------ */

int
zero_pagemap_fd(void)
{
	int pid = os_getpid(), fd;

	/* /proc/self/pagemap opened before a fork describes the parent. */
	if (__atomic_load_n(&pagemap_fd_pid, __ATOMIC_ACQUIRE) == pid)
		return pagemap_fd;
	if (os_pagemap_open(&fd) != 0)
		return -1;
	zp_lock(&pagemap_lock);
	if (pagemap_fd_pid == pid) {
		os_close(fd);
	} else {
		if (pagemap_fd >= 0)
			os_close(pagemap_fd); /* the parent's */
		pagemap_fd = fd;
		__atomic_store_n(&pagemap_fd_pid, pid, __ATOMIC_RELEASE);
	}
	zp_unlock(&pagemap_lock);
	return pagemap_fd;
}

bool
zero_page_is_zero(const void *p)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < ZP_PAGE_SIZE / sizeof(*w); i += 8) {
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] |
		    w[i + 5] | w[i + 6] | w[i + 7])
			return false;
	}
	return true;
}

/* Zero one resident run; whole THPs are zapped (a huge re-fault costs less
 * than a 2 MiB memset), the rest is memset. */
static void
zero_run(uintptr_t s, uintptr_t e, bool huge)
{
	uintptr_t hs = zp_align_up(s, ZERO_CHUNK);
	uintptr_t he = zp_align_down(e, ZERO_CHUNK);

	if (huge && hs < he &&
	    zero_madvise((void *)hs, he - hs, MADV_DONTNEED) == 0) {
		memset((void *)s, 0, hs - s);
		memset((void *)he, 0, e - he);
		return;
	}
	memset((void *)s, 0, e - s);
}

/* Zero the pages of [s, e) that are resident and not the zero page. */
static void
zero_resident(uintptr_t s, uintptr_t e)
{
	struct os_page_region vec[32];
	int fd = zero_pagemap_fd();
	uintptr_t at = s, walk;
	size_t nr;

	while (at < e) {
		if (fd < 0 || os_pagemap_scan(fd, at, e, &dirty_match, vec,
					      ZP_ARRAY_SIZE(vec), &nr,
					      &walk) != 0) {
			memset((void *)at, 0, e - at);
			return;
		}
		for (size_t i = 0; i < nr; i++)
			zero_run(vec[i].start, vec[i].end,
				 vec[i].categories & OS_PAGE_IS_HUGE);
		if (nr < ZP_ARRAY_SIZE(vec))
			return;
		at = ZP_MAX(walk, vec[nr - 1].end);
	}
}

void
zero_make_zero(void *p, size_t size, bool release)
{
	uintptr_t s = (uintptr_t)p, e = s + size;
	uintptr_t ps = zp_align_up(s, ZP_PAGE_SIZE);
	uintptr_t pe = zp_align_down(e, ZP_PAGE_SIZE);

	if (pe <= ps || (!release && pe - ps < ZERO_SCAN_MIN)) {
		memset(p, 0, size);
		return;
	}
	memset(p, 0, ps - s);
	memset((void *)pe, 0, e - pe);
	/* Through zero_madvise: on region memory the zap must not race
	 * with a chunk under reclaim. */
	if (release && zero_madvise((void *)ps, pe - ps, MADV_DONTNEED) == 0)
		return;
	zero_resident(ps, pe);
}

size_t
zero_resident_bytes(uintptr_t s, uintptr_t e)
{
	struct os_page_region vec[64];
	int fd = zero_pagemap_fd();
	uintptr_t at = s, walk;
	size_t nr, bytes = 0;

	while (fd >= 0 && at < e) {
		if (os_pagemap_scan(fd, at, e, &resident_match, vec,
				    ZP_ARRAY_SIZE(vec), &nr, &walk) != 0)
			break;
		for (size_t i = 0; i < nr; i++)
			bytes += vec[i].end - vec[i].start;
		if (nr < ZP_ARRAY_SIZE(vec))
			break;
		at = ZP_MAX(walk, vec[nr - 1].end);
	}
	return bytes;
}

/* --- fork, level, stats ------------------------------------------------- */

int
zero_level(void)
{
	return uffd_level();
}

size_t
zero_reclaim_now(void)
{
	return reclaim_pass(SIZE_MAX, NULL);
}

void
zero_prefork(void)
{
	reclaim_prefork();		/* takes reclaim_lock first */
	zp_lock_prefork(&table.lock);
	uffd_prefork();
}

void
zero_postfork_parent(void)
{
	uffd_postfork_parent();
	zp_lock_postfork_parent(&table.lock);
	reclaim_postfork_parent();
}

void
zero_postfork_child(void)
{
	zp_lock_postfork_child(&table.lock);
	zp_lock_postfork_child(&pagemap_lock);
	uffd_postfork_child();
	reclaim_postfork_child();
}

int
zero_info(struct zp_zero_info *out)
{
	const char *reason;
	size_t resident = 0;
	uint64_t reg;

	memset(out, 0, sizeof(*out));
	out->level = uffd_level();
	reason = uffd_reason();
	fmt_buf(out->level_reason, sizeof(out->level_reason), "%s", reason);
	zp_lock(&table.lock);
	out->nr_regions = table.nr;
	out->region_bytes = table.bytes;
	for (size_t i = 0; i < table.nr; i++)
		resident += zero_resident_bytes(table.v[i].start,
						table.v[i].end);
	zp_unlock(&table.lock);
	out->resident_bytes = resident;
	uffd_stats(&out->nr_faults_handled, &out->handler_ns, &reg);
	out->registered_bytes = reg;
	reclaim_stats(&out->nr_reclaimed_pages, &out->nr_scans,
		      &out->scanned_bytes, &out->scanner_ns);
	return 0;
}

/* Parked regions: a text line, or JSON members after a comma. */
static void
park_print(struct outbuf *o, bool json)
{
	unsigned long nr, bytes, parked, reused, expired;

	zp_lock(&table.lock);
	nr = park.nr;
	bytes = park.bytes;
	parked = park.nr_parked;
	reused = park.nr_reused;
	expired = park.nr_expired;
	zp_unlock(&table.lock);
	if (json)
		out_printf(o, ",\"parked\":%lu,\"parked_bytes\":%lu,"
			   "\"nr_parked\":%lu,\"nr_park_reused\":%lu,"
			   "\"nr_park_expired\":%lu", nr, bytes, parked, reused,
			   expired);
	else
		out_printf(o, "  parked %lu (%lu bytes)  parks %lu  reused %lu"
			   "  expired %lu\n", nr, bytes, parked, reused,
			   expired);
}

static const char *
level_name(int level)
{
	switch (level) {
	case ZP_ZERO_LEVEL_UFFD: return "uffd";
	case ZP_ZERO_LEVEL_KERNEL: return "kernel";
	default: return "off";
	}
}

void
zero_print(struct outbuf *o)
{
	struct zp_zero_info in;

	zero_info(&in);
	out_printf(o, "zero-page engine: level %s (%s)\n",
		   level_name(in.level), in.level_reason);
	out_printf(o, "  regions %lu  bytes %lu  resident %lu  "
		   "registered %lu\n",
		   (unsigned long)in.nr_regions,
		   (unsigned long)in.region_bytes,
		   (unsigned long)in.resident_bytes,
		   (unsigned long)in.registered_bytes);
	out_printf(o, "  reclaimed pages %lu  faults %lu  scans %lu  scanned "
		   "%lu\n", (unsigned long)in.nr_reclaimed_pages,
		   (unsigned long)in.nr_faults_handled,
		   (unsigned long)in.nr_scans,
		   (unsigned long)in.scanned_bytes);
	out_printf(o, "  handler %lu ns  scanner %lu ns\n",
		   (unsigned long)in.handler_ns,
		   (unsigned long)in.scanner_ns);
	park_print(o, false);
}

void
zero_print_json(struct outbuf *o)
{
	struct zp_zero_info in;

	zero_info(&in);
	out_printf(o, "{\"level\":\"%s\",\"level_reason\":\"%s\","
		   "\"regions\":%lu,\"region_bytes\":%lu,"
		   "\"resident_bytes\":%lu,\"registered_bytes\":%lu,",
		   level_name(in.level), in.level_reason,
		   (unsigned long)in.nr_regions,
		   (unsigned long)in.region_bytes,
		   (unsigned long)in.resident_bytes,
		   (unsigned long)in.registered_bytes);
	out_printf(o, "\"reclaimed_pages\":%lu,\"faults_handled\":%lu,"
		   "\"scans\":%lu,\"scanned_bytes\":%lu,\"handler_ns\":%lu,"
		   "\"scanner_ns\":%lu",
		   (unsigned long)in.nr_reclaimed_pages,
		   (unsigned long)in.nr_faults_handled,
		   (unsigned long)in.nr_scans,
		   (unsigned long)in.scanned_bytes,
		   (unsigned long)in.handler_ns,
		   (unsigned long)in.scanner_ns);
	park_print(o, true);
	out_printf(o, "}");
}
