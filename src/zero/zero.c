/*
 * zero.c - zero-backed regions and the cheapest way to make a span zero.
 * Owns:  zero_cfg, the region table (sorted, non-overlapping [start, end)
 *        ranges in os_map'd arrays that are never unmapped, so that a
 *        lock-free reader can always read them), the parked regions (freed
 *        large blocks kept mapped for the next ones), the kept ranges (an
 *        unmap the kernel refused, retried later).
 * Locks: table.lock guards the table, the parked list and the kept list;
 *        table.seq is odd while a writer changes the table (readers retry).
 *        A change that unmaps, moves or parks region memory first takes
 *        reclaim_lock so the scanner never works on a chunk that is going
 *        away (order: reclaim_lock, table.lock). Every public entry that
 *        takes a lock blocks signals first (struct zero_guard). Parked
 *        regions are unmapped with no lock held.
 * Path:  large_alloc -> zero_region_take -> (parked: mremap/munmap to fit,
 *        zero_make_zero) | os_map -> (table) -> helper_kick
 *        large_free -> zero_region_park -> (table -> parked list)
 *        calloc of recycled pages -> zero_make_zero -> PAGEMAP_SCAN, memset
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>

#include "base/log.h"
#include "os/os.h"
#include "os/os_uffd.h"
#include "zero/zero_int.h"
#include "zpmalloc.h"

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
	uint64_t born_ns;		/* when it entered the table */
	uint64_t refused_ns;		/* passed over until then (locked) */
	uint64_t reclaimed_ns;		/* last pass that took pages of it
					 * back (0: none; locked) */
};

/* One table array; a grown table leaves the old one mapped (retired) for
 * readers that may still be in it. Geometric growth bounds the waste. */
struct table_array {
	size_t cap;
	size_t pad;
	struct zero_region v[];
};

static struct {
	struct zp_lock lock;
	uint32_t seq;			/* odd while a writer is at work */
	struct table_array *a;		/* sorted by start */
	size_t nr;			/* entries */
	size_t bytes;			/* sum of sizes */
	size_t retired_bytes;		/* arrays left mapped for readers */
} table = { .lock = ZP_LOCK_INIT };

/*
 * Parked regions: freed large blocks kept mapped for reuse, as extents in
 * no particular order. Neighbours are merged when a block is parked (the
 * kernel puts consecutive mappings side by side, so freed blocks often
 * are), a block taken from a bigger extent leaves the rest parked, and a
 * block bigger than any extent grows the biggest smaller one (with the
 * pages of the others, moved by mremap, if it is to be written whole):
 * together that is what glibc's heap gives it for free - a freed large
 * block serves the next one of any size without page faults.
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

/*
 * Ranges the kernel refused to unmap (ENOMEM: the unmap would split a
 * mapping and the process is at vm.max_map_count). Purged, so they cost
 * no memory, and linked through their own first page; a later slow path
 * unmaps them. Guarded by table.lock.
 */
struct zero_kept {
	struct zero_kept *next;
	size_t len;
};

static struct zero_kept *kept;
static uint64_t nr_kept, nr_kept_unmapped;

zp_boot_text void
zero_config_default(struct zero_config *cfg)
{
	*cfg = (struct zero_config){
		.uffd_mode = ZERO_UFFD_AUTO,
		.reclaim = true,
		.reclaim_interval_ns = 1000ULL * 1000 * 1000,
		.reclaim_budget_bytes = (size_t)256 << 20,
		.mmap_threshold = (size_t)4 << 20,
		.park_bytes = (size_t)64 << 20,
		.park_max = (size_t)1 << 30,
		.park_delay_ns = 1000ULL * 1000 * 1000,
	};
}

static uint64_t reclaim_age_ns;	/* 0: one interval (atomic) */
static uint64_t nr_wasted;		/* regions gone just after a reclaim */
static uint64_t wasted_seen;		/* nr_wasted at the last decay (the
					 * background pass's) */

zp_boot_text void
zero_boot(const struct zero_config *cfg)
{
	zero_cfg = *cfg;
	__atomic_store_n(&reclaim_age_ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&nr_wasted, 0, __ATOMIC_RELAXED);
	wasted_seen = 0;
	if (zero_cfg.mmap_threshold < ZP_PAGE_SIZE)
		zero_cfg.mmap_threshold = ZP_PAGE_SIZE;
	(void)os_thp_always();
}

/* --- the table ----------------------------------------------------------- */

/* Writers: the lock, then seq odd for as long as the table may be
 * inconsistent. */
static void
table_lock(void)
{
	zp_lock(&table.lock);
	__atomic_store_n(&table.seq, table.seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void
table_unlock(void)
{
	__atomic_store_n(&table.seq, table.seq + 1, __ATOMIC_RELEASE);
	zp_unlock(&table.lock);
}

static struct zero_region *
tv(void)
{
	return table.a->v;
}

/* Index of the first region ending after addr (caller holds the lock). */
static size_t
table_find_locked(uintptr_t addr)
{
	size_t lo = 0, hi = table.nr;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (tv()[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
table_reserve_locked(size_t extra)
{
	struct table_array *na;
	size_t cap, old_cap = table.a ? table.a->cap : 0;
	int err;

	if (table.nr + extra <= old_cap)
		return 0;
	cap = old_cap ? old_cap * 2 : (ZP_PAGE_SIZE - sizeof(*na)) /
					      sizeof(na->v[0]);
	while (cap < table.nr + extra)
		cap *= 2;
	err = os_map(sizeof(*na) + cap * sizeof(na->v[0]), NULL,
		     (void **)&na);
	if (err)
		return err;
	na->cap = cap;
	if (table.a) {
		memcpy(na->v, table.a->v, table.nr * sizeof(na->v[0]));
		table.retired_bytes += sizeof(*na) +
				       old_cap * sizeof(na->v[0]);
	}
	__atomic_store_n(&table.a, na, __ATOMIC_RELEASE);
	return 0;
}

/* Index of the region holding all of [start, end), or -1. */
static long
table_holding_locked(uintptr_t start, uintptr_t end)
{
	size_t i = table_find_locked(start);

	if (i < table.nr && tv()[i].start <= start && end <= tv()[i].end)
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
	zp_assert(i == table.nr || tv()[i].start >= end);
	memmove(&tv()[i + 1], &tv()[i], (table.nr - i) * sizeof(tv()[0]));
	tv()[i] = (struct zero_region){ .start = start, .end = end,
					.born_ns = os_now_ns() };
	__atomic_store_n(&table.nr, table.nr + 1, __ATOMIC_RELAXED);
	table.bytes += end - start;
	return 0;
}

static void
table_delete_at_locked(size_t i)
{
	memmove(&tv()[i], &tv()[i + 1], (table.nr - i - 1) * sizeof(tv()[0]));
	__atomic_store_n(&table.nr, table.nr - 1, __ATOMIC_RELAXED);
}

/*
 * The age a region must reach before a pass takes its zero pages back.
 * One interval at first; a region freed within an interval of a pass
 * that reclaimed pages of it doubles it (up to ZERO_AGE_MAX intervals),
 * and each pass that follows no such loss takes a quarter off. A program
 * that zero-fills buffers living a second or two (Python's bytearray(n),
 * 40 KiB to 3 MiB, replaced at random) had a pass take their pages back,
 * only for the next buffer in the parked pages to fault each one in
 * again: 12.9 s against 5.1 under glibc, 6.2 without the scanner.
 */
#define ZERO_AGE_MAX	32

static uint64_t
reclaim_age(void)
{
	return ZP_MAX(__atomic_load_n(&reclaim_age_ns, __ATOMIC_RELAXED),
		      zero_cfg.reclaim_interval_ns);
}

/* Table lock held: r leaves the table whole (freed, parked, moved). */
static void
note_gone_locked(const struct zero_region *r)
{
	uint64_t now, most = ZERO_AGE_MAX * zero_cfg.reclaim_interval_ns;

	if (!r->reclaimed_ns)
		return;
	now = os_now_ns();
	if (now - r->reclaimed_ns >= zero_cfg.reclaim_interval_ns)
		return;
	__atomic_store_n(&reclaim_age_ns, ZP_MIN(2 * reclaim_age(), most),
			 __ATOMIC_RELAXED);
	__atomic_add_fetch(&nr_wasted, 1, __ATOMIC_RELAXED);
}

void
zero_reclaim_age_decay(void)
{
	uint64_t age = reclaim_age();
	uint64_t wasted = __atomic_load_n(&nr_wasted, __ATOMIC_RELAXED);

	if (wasted == wasted_seen)
		__atomic_store_n(&reclaim_age_ns, age - age / 4,
				 __ATOMIC_RELAXED);
	wasted_seen = wasted;
}

uint64_t
zero_reclaim_age_ns(uint64_t *wasted)
{
	*wasted = __atomic_load_n(&nr_wasted, __ATOMIC_RELAXED);
	return reclaim_age();
}

void
zero_table_note_reclaimed(uintptr_t addr)
{
	size_t i;

	table_lock();
	i = table_find_locked(addr);
	if (i < table.nr && tv()[i].start <= addr)
		tv()[i].reclaimed_ns = os_now_ns();
	table_unlock();
}

/* Forget [start, end): regions are trimmed, split or dropped. A split that
 * finds no room for its tail drops the tail (it is then merely plain
 * memory the scanner does not visit). */
static void
table_remove_locked(uintptr_t start, uintptr_t end)
{
	size_t i = table_find_locked(start);

	while (i < table.nr && tv()[i].start < end) {
		struct zero_region *r = &tv()[i];
		uintptr_t rs = r->start, re = r->end;

		if (rs < start && re > end) {
			table.bytes -= end - start;
			r->end = start;
			table.bytes -= re - end;
			if (table_reserve_locked(1) == 0)
				table_insert_locked(end, re);
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
			note_gone_locked(r);
			table_delete_at_locked(i);
		}
	}
}

/*
 * The seqlock read: the region holding addr, or the first one ending
 * after it, copied out consistently. Takes no lock, so a signal handler
 * may call it; a writer in another thread is only waited for (writers in
 * program threads run with signals blocked, so never in this one).
 */
static bool
table_read(uintptr_t addr, struct zero_region *out)
{
	for (unsigned spins = 0;; spins++) {
		uint32_t seq = __atomic_load_n(&table.seq, __ATOMIC_ACQUIRE);
		struct table_array *a;
		size_t nr, lo = 0, hi;
		bool found = false;

		if (seq & 1) {
			if (spins > 100)
				os_yield();
			zp_cpu_relax();
			continue;
		}
		a = __atomic_load_n(&table.a, __ATOMIC_ACQUIRE);
		nr = __atomic_load_n(&table.nr, __ATOMIC_RELAXED);
		if (a) {
			hi = ZP_MIN(nr, a->cap);
			while (lo < hi) {
				size_t mid = (lo + hi) / 2;

				if (__atomic_load_n(&a->v[mid].end,
						    __ATOMIC_RELAXED) <= addr)
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo < ZP_MIN(nr, a->cap)) {
				out->start = __atomic_load_n(&a->v[lo].start,
							     __ATOMIC_RELAXED);
				out->end = __atomic_load_n(&a->v[lo].end,
							   __ATOMIC_RELAXED);
				out->born_ns = __atomic_load_n(
					&a->v[lo].born_ns, __ATOMIC_RELAXED);
				out->refused_ns = __atomic_load_n(
					&a->v[lo].refused_ns,
					__ATOMIC_RELAXED);
				found = true;
			}
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&table.seq, __ATOMIC_RELAXED) == seq)
			return found;
	}
}

bool
zero_table_touches(uintptr_t start, uintptr_t end)
{
	struct zero_region r;

	return end > start && table_read(start, &r) && r.start < end;
}

bool
zero_table_is_empty(void)
{
	return __atomic_load_n(&table.nr, __ATOMIC_RELAXED) == 0;
}

/*
 * Regions younger than the reclaim age (one interval at first, see
 * reclaim_age) are passed over: a buffer a program zero-fills and
 * replaces within moments (new char[n]() in a loop) would be reclaimed
 * only for the next user of its parked pages to fault every one of them
 * in again. Memory that stays is old soon enough: a zero-filled heap left
 * idle still goes back within two intervals.
 */
static bool young_seen;		/* a pass passed a region over */

/* Not refused a while ago, and old enough (or all ages wanted). */
static bool
region_is_due(const struct zero_region *r, uint64_t now, bool all_ages)
{
	if (zero_cfg.test_break_protection)
		return true;
	if (r->refused_ns > now)
		return false;
	return all_ages || r->born_ns > now ||
	       now - r->born_ns >= reclaim_age();
}

bool
zero_table_next_chunk(uintptr_t addr, bool all_ages, uintptr_t *start,
		      uintptr_t *end)
{
	uint64_t now = os_now_ns();
	struct zero_region r;
	uintptr_t s;

	for (;;) {
		if (!table_read(addr, &r))
			return false;
		if (region_is_due(&r, now, all_ages))
			break;
		__atomic_store_n(&young_seen, true, __ATOMIC_RELAXED);
		addr = r.end;
	}
	s = ZP_MAX(addr, r.start);
	*start = s;
	*end = ZP_MIN(r.end, zp_align_down(s, ZERO_CHUNK) + ZERO_CHUNK);
	return true;
}

/*
 * The kernel refused to move pages of the region holding addr out (it is
 * locked: mlock, mlockall): passes leave the whole region alone for a
 * while, rather than checking its pages each interval only to be refused
 * again (311 ms of scanner time per 5 s for 128 MiB under mlockall). A
 * region entered anew (a new block, a split's tail) is unmarked.
 */
void
zero_table_refuse(uintptr_t addr)
{
	uint64_t until = os_now_ns() +
			 ZERO_REFUSED_INTERVALS * zero_cfg.reclaim_interval_ns;
	size_t i;

	table_lock();
	i = table_find_locked(addr);
	if (i < table.nr && tv()[i].start <= addr)
		__atomic_store_n(&tv()[i].refused_ns, until, __ATOMIC_RELAXED);
	table_unlock();
}

bool
zero_table_took_young(void)
{
	return __atomic_exchange_n(&young_seen, false, __ATOMIC_RELAXED);
}

void
zero_table_forget(uintptr_t start, uintptr_t end)
{
	table_lock();
	table_reserve_locked(1);
	table_remove_locked(start, end);
	table_unlock();
}

bool
zero_has_work(void)
{
	return !zero_table_is_empty() ||
	       __atomic_load_n(&park.nr, __ATOMIC_RELAXED) != 0;
}

/* --- kept ranges: unmaps the kernel refused ------------------------------ */

static void
kept_add_locked(uintptr_t s, size_t len)
{
	struct zero_kept *k = (struct zero_kept *)s;

	/* Purging changes no mapping, so it needs no new one either. */
	os_purge((void *)s, len);
	k->next = kept;
	k->len = len;
	kept = k;
	nr_kept++;
}

/* Try the kept ranges again; those still refused stay. */
static void
kept_retry(void)
{
	struct zero_kept *list, *k, *next;

	if (!__atomic_load_n(&kept, __ATOMIC_RELAXED))
		return;
	table_lock();
	list = kept;
	kept = NULL;
	table_unlock();
	for (k = list; k; k = next) {
		size_t len = k->len;

		next = k->next;
		if (os_unmap(k, len) == 0) {
			__atomic_add_fetch(&nr_kept_unmapped, 1,
					   __ATOMIC_RELAXED);
			continue;
		}
		table_lock();
		k->next = kept;
		kept = k;
		table_unlock();
	}
}

static void
unmap_or_keep(uintptr_t s, size_t len)
{
	if (os_unmap((void *)s, len) == 0)
		return;
	table_lock();
	kept_add_locked(s, len);
	table_unlock();
}

static void
unmap_or_keep_locked(uintptr_t s, size_t len)
{
	if (os_unmap((void *)s, len) != 0)
		kept_add_locked(s, len);
}

void
zero_unmap_or_keep(void *p, size_t size)
{
	struct zero_guard g;

	zero_guard_enter(&g);
	unmap_or_keep((uintptr_t)p, zp_align_up(size, ZP_PAGE_SIZE));
	zero_guard_leave(&g);
}

/* --- regions ------------------------------------------------------------ */

/* A region for the table; may_start says whether this path may create
 * the helper thread (not an interposed call: see helper_kick). */
static int
region_add(uintptr_t start, uintptr_t end, bool may_start)
{
	int err;

	table_lock();
	table_remove_locked(start, end);	/* stale entries, if any */
	err = table_insert_locked(start, end);
	table_unlock();
	if (!err)
		helper_kick(may_start);
	return err;
}

/* Fresh pages for size bytes at offset past a multiple of align (a power
 * of two, or 0 for any page); not a region yet. */
static int
map_at(size_t size, size_t align, size_t offset, uintptr_t *out)
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
	/* The first address from p on that lies offset past a multiple. */
	a = align ? p + ((offset - p) & (align - 1)) : p;
	if (a > p)
		unmap_or_keep(p, a - p);
	if (p + span > a + size)
		unmap_or_keep(a + size, p + span - (a + size));
	*out = a;
	return 0;
}

/* A fresh region of size whose start lies offset bytes past a multiple
 * of align (a power of two, or 0 for none; offset < align). */
static int
region_map_at(size_t size, size_t align, size_t offset, void **out)
{
	uintptr_t a;
	int err;

	err = map_at(size, align, offset, &a);
	if (err)
		return err;
	size = zp_align_up(size, ZP_PAGE_SIZE);
	err = region_add(a, a + size, /* may_start */ false);
	if (err) {
		unmap_or_keep(a, size);
		return err;
	}
	*out = (void *)a;
	return 0;
}

int
zero_region_map_aligned(size_t size, size_t align, void **out)
{
	struct zero_guard g;
	int err;

	zero_guard_enter(&g);
	err = region_map_at(size, align, 0, out);
	zero_guard_leave(&g);
	/* Outside every lock and with the signal mask as it was: a malloc
	 * slow path, where creating a thread is safe. */
	if (!err)
		helper_kick(/* may_start */ true);
	return err;
}

int
zero_region_map(size_t size, void **out)
{
	return zero_region_map_aligned(size, 0, out);
}

static int
region_unmap(uintptr_t s, uintptr_t e)
{
	int err = 0;

	reclaim_lock();
	table_lock();
	if (table_holding_locked(s, e) < 0) {
		err = EINVAL;
	} else {
		table_reserve_locked(1);	/* room for a split */
		table_remove_locked(s, e);
		if (os_unmap((void *)s, e - s) != 0)
			kept_add_locked(s, e - s);
	}
	table_unlock();
	reclaim_unlock();
	return err;
}

int
zero_region_unmap(void *p, size_t size)
{
	uintptr_t s = (uintptr_t)p, e = s + zp_align_up(size, ZP_PAGE_SIZE);
	struct zero_guard g;
	int err;

	zero_guard_enter(&g);
	err = region_unmap(s, e);
	zero_guard_leave(&g);
	return err;
}

/* --- parking ------------------------------------------------------------ */

/* Parked regions to unmap once table.lock is dropped: they are in no
 * table and on no list any more, so nobody else can reach them. */
struct park_victims {
	struct zero_parked v[PARK_MAX + 1];
	unsigned nr;
};

/* Written under table.lock, read without it (zero_park_bytes). */
static void
park_bytes_set(size_t bytes)
{
	__atomic_store_n(&park.bytes, bytes, __ATOMIC_RELAXED);
}

static struct zero_parked
park_remove_locked(unsigned i)
{
	struct zero_parked e = park.v[i];

	park_bytes_set(park.bytes - (e.end - e.start));
	memmove(&park.v[i], &park.v[i + 1],
		(park.nr - i - 1) * sizeof(park.v[0]));
	__atomic_store_n(&park.nr, park.nr - 1, __ATOMIC_RELAXED);
	return e;
}

static size_t
park_len(long i)
{
	return park.v[i].end - park.v[i].start;
}

static void
park_drop_locked(unsigned i, struct park_victims *out)
{
	out->v[out->nr++] = park_remove_locked(i);
}

/*
 * How much may be parked: the configured budget, or half of what live
 * regions hold when that is more (a program that replaces big buffers
 * over and over reuses more of them the more it keeps; glibc's heap keeps
 * all of its free space), but never more than a quarter of the memory
 * limit's share the configuration gives (park_max). 0 parks nothing.
 */
static size_t
park_budget_locked(void)
{
	size_t b = zero_cfg.park_bytes;

	if (b == 0)
		return 0;
	return ZP_MAX(b, ZP_MIN(table.bytes / 2, zero_cfg.park_max));
}

/* Everything (all), or what has waited out the delay. */
static void
park_expire_locked(uint64_t now, bool all, struct park_victims *out)
{
	for (unsigned i = 0; i < park.nr;) {
		if (all || (park.v[i].since_ns <= now &&
			    now - park.v[i].since_ns >=
				    zero_cfg.park_delay_ns)) {
			park_drop_locked(i, out);
			park.nr_expired++;
		} else {
			i++;
		}
	}
}

/* The extent parked longest, to make room. */
static unsigned
park_oldest_locked(void)
{
	unsigned o = 0;

	for (unsigned i = 1; i < park.nr; i++)
		if (park.v[i].since_ns < park.v[o].since_ns)
			o = i;
	return o;
}

/* The smallest extent, to make a slot: the leftovers of cut extents
 * fill the slots, and the oldest may be the one extent that can serve
 * the next large block. */
static unsigned
park_smallest_locked(void)
{
	unsigned o = 0;

	for (unsigned i = 1; i < park.nr; i++)
		if (park.v[i].end - park.v[i].start <
		    park.v[o].end - park.v[o].start)
			o = i;
	return o;
}

/* Cuts parked pages, the longest parked first and each extent from its
 * end (its start serves the next block), until at most keep bytes stay:
 * drops of whole extents, then at most one cut, fit in out. */
static void
park_trim_locked(size_t keep, struct park_victims *out)
{
	while (park.bytes > keep) {
		unsigned i = park_oldest_locked();
		size_t cut = park.bytes - keep;

		if (cut >= park_len(i)) {
			park_drop_locked(i, out);
			continue;
		}
		park.v[i].end -= cut;
		park_bytes_set(park.bytes - cut);
		out->v[out->nr++] = (struct zero_parked){
			park.v[i].end, park.v[i].end + cut, 0 };
	}
}

/* Grows [*s, *e) by the parked extents that touch it, taking them off
 * the list (one mapping of the kernel's already). */
static void
park_merge_locked(uintptr_t *s, uintptr_t *e)
{
	for (unsigned i = 0; i < park.nr;) {
		if (park.v[i].end == *s || park.v[i].start == *e) {
			struct zero_parked n = park_remove_locked(i);

			*s = ZP_MIN(*s, n.start);
			*e = ZP_MAX(*e, n.end);
			i = 0;
		} else {
			i++;
		}
	}
}

/* A refused unmap (the map-count limit) keeps the range for later. */
static size_t
park_unmap(const struct park_victims *vs)
{
	size_t bytes = 0;

	for (unsigned i = 0; i < vs->nr; i++) {
		size_t len = vs->v[i].end - vs->v[i].start;

		unmap_or_keep(vs->v[i].start, len);
		bytes += len;
	}
	return bytes;
}

/*
 * The parked extent to serve size bytes: the smallest that holds it, cut
 * to size (the rest stays parked), else the largest, to be grown.
 * Aligned requests take only an extent that starts aligned.
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
	if (fit >= 0 && park_len(fit) > size) {
		*got = park.v[fit];
		got->end = got->start + size;
		park.v[fit].start += size;
		park_bytes_set(park.bytes - size);
	} else {
		*got = park_remove_locked((unsigned)(fit >= 0 ? fit : grow));
	}
	park.nr_reused++;
	return true;
}

/* [s, e) to size bytes where it stands: by mremap, which takes one mapping
 * only (and keeps its advice and lock), else by a fresh mapping right
 * after it, which serves a range of several mappings too. */
static bool
resize_in_place(uintptr_t s, uintptr_t e, size_t size)
{
	void *np;

	return os_remap((void *)s, e - s, size, NULL, false, &np) == 0 ||
	       (size > e - s && os_map_fixed((void *)e, size - (e - s)) == 0);
}

/*
 * Moves [a, b), parked pages whose contents do not matter, over dst, our
 * own fresh pages; only where one move takes several mappings
 * (os_remap_moves_several), as an extent may be several. Where the kernel
 * refuses (the map-count limit), dst gets fresh pages again, and [a, b)
 * is unmapped if it is still whole; if the kernel moved part of it, the
 * rest stays as it is: its holes may be another thread's mappings by now.
 * ENOMEM: dst could not be mapped again. Caller holds table.lock.
 */
static int
move_over_locked(uintptr_t a, uintptr_t b, uintptr_t dst)
{
	void *np;

	if (os_remap((void *)a, b - a, b - a, (void *)dst, true, &np) == 0)
		return 0;
	if (os_range_mapped((void *)a, b - a))
		unmap_or_keep_locked(a, b - a);
	return os_map_over((void *)dst, b - a);
}

/*
 * Fills [s, e), the fresh part of a block being grown, with the pages of
 * other parked extents, smallest first (leftovers of cuts), each cut from
 * its end: moved, not faulted anew, and the park holds that much less.
 * *left: the bytes no extent filled (fresh pages still). ENOMEM if part
 * of [s, e) could not be mapped again.
 */
static int
park_fill(uintptr_t s, uintptr_t e, size_t *left)
{
	int err = 0;

	*left = e - s;
	if (!os_remap_moves_several())
		return 0;
	table_lock();
	while (s < e && park.nr && !err) {
		unsigned i = park_smallest_locked();
		size_t len = ZP_MIN(park_len(i), e - s);
		uintptr_t from = park.v[i].end - len;

		park.v[i].end = from;
		park_bytes_set(park.bytes - len);
		if (park.v[i].end == park.v[i].start)
			park_remove_locked(i);
		err = move_over_locked(from, from + len, s);
		s += len;
	}
	table_unlock();
	*left = e - s;
	return err;
}

/*
 * Fit a taken parked extent to size bytes (it is size or smaller): grown
 * in place by mremap, or by a fresh mapping right after it (an extent of
 * several mappings, which mremap does not grow: a block parked next to a
 * parked neighbour, blocks advised apart), or, for a block to be written
 * whole (filled: huge, or zeroed for calloc), by one right before it;
 * else moved by mremap; else, being several mappings, moved whole into
 * fresh pages of the new size at its offset within a huge page (its huge
 * pages move whole). Then, for a filled block, other parked extents fill
 * what it lacks. Not for other blocks: a block grown downwards, or made of
 * pieces (several mappings, which realloc can then only copy), cost
 * realloc 3.5 to 7% of its peak; a move costs big-replace more than a
 * block grown where it is. Before, an extent of several mappings was
 * unmapped and its block mapped fresh, and what an extent lacked always
 * faulted anew (big-replace: 16 of 200 blocks fresh, 320 MiB of page
 * faults). Returns the block's start; any of its bytes may hold old
 * data; *fresh: how many are new pages, which no parked page backs. On an
 * error the extent is as it was, unless *gone says that it was moved (it
 * is the caller's no more).
 */
static int
park_fit(const struct zero_parked *got, size_t size, bool filled,
	 uintptr_t *start, size_t *fresh, bool *gone)
{
	size_t have = got->end - got->start, more = size - have;
	uintptr_t r = got->start, fill;	/* the fresh part: [fill, + more) */
	void *np;
	int err;

	*gone = false;
	*start = got->start;
	*fresh = 0;
	if (have >= size)
		return 0;
	if (resize_in_place(got->start, got->end, size)) {
		fill = got->end;
	} else if (filled && got->start > more &&
		   os_map_fixed((void *)(got->start - more), more) == 0) {
		r = fill = got->start - more;
	} else if (os_remap((void *)got->start, have, size, NULL,
			    /* may_move */ true, &np) == 0) {
		r = (uintptr_t)np;
		fill = r + have;
	} else if (os_remap_moves_several()) {
		err = map_at(size, ZERO_HUGE_SIZE,
			     got->start & (ZERO_HUGE_SIZE - 1), &r);
		if (err)
			return err;
		*gone = true;
		table_lock();
		err = move_over_locked(got->start, got->end, r);
		if (err)
			unmap_or_keep_locked(r, size);
		table_unlock();
		if (err)
			return err;
		fill = r + have;
	} else {
		return EFAULT;
	}
	*start = r;
	*fresh = more;
	err = filled ? park_fill(fill, fill + more, fresh) : 0;
	if (err) {
		*gone = true;
		unmap_or_keep(r, size);
	}
	return err;
}

/*
 * Huge pages for a block its caller expects to be filled: a fresh region
 * is advised so, and starts half a huge page past a boundary (unless the
 * caller's alignment forbids it). Its head and tail, short of whole huge
 * pages, then take small pages, which tell at the free how much of the
 * block was written: a huge page is resident whole once any byte of it
 * is. Once any region was advised, a parked one taken for a block that
 * is not gets its advice taken back, or it would keep the old. And with
 * transparent huge pages "always", a block that is to read as zero
 * (calloc) and is not expected to be filled is advised against them: the
 * kernel would make it resident 2 MiB for every byte written (sparse
 * calloc: 807 MiB against 18). Other blocks keep what the kernel gives
 * (a program fills what it mallocs, as a rule; a parked region keeps the
 * advice of its last block, there being none to undo advice with); the
 * advice would cost each block a system call for nothing (realloc: 1.2x
 * the time).
 */
static bool huge_advised;

/* fresh: a new region, which has no advice to take back. */
static void
advise_taken(uintptr_t s, size_t size, bool zero, bool huge, bool fresh)
{
	if (size < ZERO_HUGE_SIZE)
		return;
	if (huge)
		__atomic_store_n(&huge_advised, true, __ATOMIC_RELAXED);
	else if ((fresh || !__atomic_load_n(&huge_advised, __ATOMIC_RELAXED)) &&
		 !(zero && os_thp_always()))
		return;
	(void)os_advise_huge((void *)s, size, huge);
}

static int
region_map_huge(size_t size, size_t align, bool zero, bool huge, void **out)
{
	size_t offset = 0;
	int err;

	if (huge && size >= ZERO_HUGE_SIZE) {
		if (align <= ZERO_HUGE_SIZE / 2)
			offset = ZERO_HUGE_SIZE / 2;
		align = ZP_MAX(align, ZERO_HUGE_SIZE);
	}
	err = region_map_at(size, align, offset, out);
	if (!err)
		advise_taken((uintptr_t)*out, size, zero, huge, true);
	return err;
}

static int
region_take(size_t size, size_t align, bool zero, bool huge, size_t *fresh,
	    void **out)
{
	struct park_victims vs = { .nr = 0 };
	struct zero_parked got = { 0 };
	uintptr_t s;
	bool found = false, gone;
	int err;

	if (size == 0 || (align > ZP_PAGE_SIZE && !zp_is_pow2(align)))
		return EINVAL;
	size = zp_align_up(size, ZP_PAGE_SIZE);
	align = ZP_MAX(align, ZP_PAGE_SIZE);
	*fresh = size;
	kept_retry();
	table_lock();
	park_expire_locked(os_now_ns(), false, &vs);
	if (size <= park_budget_locked())
		found = park_pick_locked(size, align, &got);
	table_unlock();
	park_unmap(&vs);
	/* On ENOMEM the malloc layer gives back what it holds free,
	 * parked regions included, and takes again. */
	if (!found)
		return region_map_huge(size, align, zero, huge, out);
	err = park_fit(&got, size, zero || huge, &s, fresh, &gone);
	if (err) {
		*fresh = size;
		if (!gone)
			unmap_or_keep(got.start, got.end - got.start);
		return region_map_huge(size, align, zero, huge, out);
	}
	advise_taken(s, size, zero, huge, false);
	if (zero)
		zero_make_zero((void *)s, size, /* release */ false);
	err = region_add(s, s + size, /* may_start */ false);
	if (err) {
		unmap_or_keep(s, size);
		return err;
	}
	*out = (void *)s;
	return 0;
}

int
zero_region_take(size_t size, size_t align, bool zero, void **out)
{
	size_t fresh;

	return zero_region_take_huge(size, align, zero, false, &fresh, out);
}

int
zero_region_take_huge(size_t size, size_t align, bool zero, bool huge,
		      size_t *fresh, void **out)
{
	struct zero_guard g;
	int err;

	*fresh = size;
	zero_guard_enter(&g);
	err = region_take(size, align, zero, huge, fresh, out);
	zero_guard_leave(&g);
	if (!err)
		helper_kick(/* may_start */ true);
	return err;
}

/* Park [s, e) if it is one whole region; EINVAL (nothing done) if not.
 * room: what the caller allows parked in all, if more than the budget. */
static int
region_park(uintptr_t s, uintptr_t e, size_t room)
{
	struct park_victims vs = { .nr = 0 };
	size_t budget;
	uint64_t now;
	long i;

	reclaim_lock();
	table_lock();
	i = table_holding_locked(s, e);
	if (i < 0 || tv()[i].start != s || tv()[i].end != e) {
		table_unlock();
		reclaim_unlock();
		return EINVAL;
	}
	table_remove_locked(s, e);
	now = os_now_ns();
	park_expire_locked(now, false, &vs);
	park_merge_locked(&s, &e);
	budget = ZP_MAX(park_budget_locked(),
			ZP_MIN(room, zero_cfg.park_max));
	while (park.nr && (park.nr == PARK_MAX ||
			   park.bytes + (e - s) > budget))
		park_drop_locked(park.nr == PARK_MAX ? park_smallest_locked()
						     : park_oldest_locked(),
				 &vs);
	if (e - s > budget) {
		/* Merged past the budget: the extent goes as a whole. */
		vs.v[vs.nr++] = (struct zero_parked){ s, e, now };
		table_unlock();
		reclaim_unlock();
		park_unmap(&vs);
		return 0;
	}
	park.v[park.nr] = (struct zero_parked){ s, e, now };
	__atomic_store_n(&park.nr, park.nr + 1, __ATOMIC_RELAXED);
	park_bytes_set(park.bytes + (e - s));
	park.nr_parked++;
	table_unlock();
	reclaim_unlock();
	park_unmap(&vs);
	return 0;
}

int
zero_region_park(void *p, size_t size, size_t room)
{
	uintptr_t s = (uintptr_t)p, e = s + zp_align_up(size, ZP_PAGE_SIZE);
	struct zero_guard g;
	int err;

	zero_guard_enter(&g);
	kept_retry();
	/* A program may have changed the protection of its block (a guard
	 * page, a JIT buffer) and freed it so: the next block must not
	 * inherit that. Unchanged protection makes this a cheap call. Not
	 * one whole region (a program unmapped part of it): plain unmap
	 * semantics. */
	if (zero_cfg.park_bytes == 0 || e <= s ||
	    os_commit(p, e - s) != 0 || region_park(s, e, room) != 0) {
		err = region_unmap(s, e);
		zero_guard_leave(&g);
		return err;
	}
	zero_guard_leave(&g);
	/* With reclaim off there is no live reclaim to keep a helper, and
	 * expired regions go at the next take or park instead. */
	if (zero_cfg.reclaim)
		helper_kick(/* may_start */ true);
	return 0;
}

size_t
zero_park_release(bool all)
{
	struct park_victims vs = { .nr = 0 };
	struct zero_guard g;
	size_t bytes;

	zero_guard_enter(&g);
	kept_retry();
	table_lock();
	park_expire_locked(os_now_ns(), all, &vs);
	table_unlock();
	bytes = park_unmap(&vs);
	zero_guard_leave(&g);
	return bytes;
}

size_t
zero_park_trim(size_t keep)
{
	struct park_victims vs = { .nr = 0 };
	struct zero_guard g;
	size_t bytes;

	if (__atomic_load_n(&park.bytes, __ATOMIC_RELAXED) <= keep)
		return 0;
	zero_guard_enter(&g);
	table_lock();
	park_trim_locked(zp_align_down(keep, ZP_PAGE_SIZE), &vs);
	table_unlock();
	bytes = park_unmap(&vs);
	zero_guard_leave(&g);
	return bytes;
}

size_t
zero_park_bytes(void)
{
	return __atomic_load_n(&park.bytes, __ATOMIC_RELAXED);
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

/*
 * [os, oe) to size bytes in place, else moved when may_move. mremap grows
 * one mapping only (keeping its advice and lock); a region of several (a
 * block filled from parked extents) grows in place by a fresh mapping
 * after it, and where there is no room the caller copies it. Caller holds
 * table.lock.
 */
static int
resize_locked(uintptr_t os, uintptr_t oe, size_t size, bool may_move,
	      uintptr_t *ns)
{
	void *np;
	int err;

	*ns = os;
	if (resize_in_place(os, oe, size))
		return 0;
	if (!may_move)
		return ENOMEM;
	err = os_remap((void *)os, oe - os, size, NULL, true, &np);
	if (!err)
		*ns = (uintptr_t)np;
	return err;
}

int
zero_region_remap(void *old, size_t old_size, size_t new_size,
		  bool may_move, void **out)
{
	uintptr_t os = (uintptr_t)old;
	uintptr_t oe = os + zp_align_up(old_size, ZP_PAGE_SIZE), ns;
	struct zero_guard g;
	int err;

	new_size = zp_align_up(new_size, ZP_PAGE_SIZE);
	if (!new_size)
		return EINVAL;
	zero_guard_enter(&g);
	reclaim_lock();
	table_lock();
	if (table_holding_locked(os, oe) < 0) {
		err = EINVAL;
	} else if ((err = table_reserve_locked(2)) == 0) {
		err = resize_locked(os, oe, new_size, may_move, &ns);
		if (!err) {
			table_follow_locked(os, oe, ns, ns + new_size, true,
					    false);
			*out = (void *)ns;
		}
	}
	table_unlock();
	reclaim_unlock();
	zero_guard_leave(&g);
	return err;
}

bool
zero_region_owns(const void *p, void **start, size_t *size)
{
	uintptr_t a = (uintptr_t)p;
	struct zero_region r;

	if (!table_read(a, &r) || r.start > a)
		return false;
	if (start)
		*start = (void *)r.start;
	if (size)
		*size = r.end - r.start;
	return true;
}

/* --- for the interposed calls (hooks.c) ---------------------------------- */

/* Every lock a change of region memory by the program needs, in order. */
void
zero_hook_lock(void)
{
	reclaim_lock();
	table_lock();
}

void
zero_hook_unlock(void)
{
	table_unlock();
	reclaim_unlock();
}

int
zero_hook_add(uintptr_t start, uintptr_t end)
{
	return region_add(start, end, /* may_start */ false);
}

void
zero_hook_reserve_locked(size_t extra)
{
	table_reserve_locked(extra);
}

void
zero_hook_remove_locked(uintptr_t start, uintptr_t end)
{
	table_remove_locked(start, end);
}

bool
zero_hook_holds_locked(uintptr_t start, uintptr_t end)
{
	return table_holding_locked(start, end) >= 0;
}

void
zero_hook_follow_locked(uintptr_t os, uintptr_t oe, uintptr_t ns,
			uintptr_t ne, bool was_region, bool keep_old)
{
	table_follow_locked(os, oe, ns, ne, was_region, keep_old);
}

/* --- zeroing ------------------------------------------------------------ */

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

/* After a PAGEMAP_SCAN failed (and the descriptor was put back): a
 * refusal by a sandbox (EPERM, ENOSYS) stops the engine's ioctls for
 * good. */
static void
scan_failed(int err)
{
	struct zero_guard g;

	if (err != EPERM && err != ENOSYS)
		return;
	zero_guard_enter(&g);
	reclaim_lock();
	uffd_stop("sandboxed (pagemap ioctl refused)");
	reclaim_unlock();
	zero_guard_leave(&g);
}

/* Zero the pages of [s, e) that are resident and not the zero page. */
static void
zero_resident(uintptr_t s, uintptr_t e)
{
	struct os_page_region vec[32];
	int fd = zero_pagemap_get();
	uintptr_t at = s, walk;
	size_t nr;
	int err = fd < 0 ? EBADF : 0;

	while (!err && at < e) {
		err = os_pagemap_scan(fd, at, e, &dirty_match, vec,
				      ZP_ARRAY_SIZE(vec), &nr, &walk);
		if (err)
			break;
		for (size_t i = 0; i < nr; i++)
			zero_run(vec[i].start, vec[i].end,
				 vec[i].categories & OS_PAGE_IS_HUGE);
		if (nr < ZP_ARRAY_SIZE(vec)) {
			at = e;
			break;
		}
		at = ZP_MAX(walk, vec[nr - 1].end);
	}
	if (fd >= 0)
		zero_pagemap_put();
	scan_failed(err);
	if (at < e)
		memset((void *)at, 0, e - at);
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
zero_resident_sample(uintptr_t s, uintptr_t e, unsigned max_calls,
		     uintptr_t *done)
{
	struct os_page_region vec[64];
	int fd = zero_pagemap_get();
	uintptr_t at = s, walk;
	size_t nr, bytes = 0;
	int err = 0;

	*done = s;
	if (fd < 0)
		return 0;
	while (at < e && max_calls-- > 0) {
		err = os_pagemap_scan(fd, at, e, &resident_match, vec,
				      ZP_ARRAY_SIZE(vec), &nr, &walk);
		if (err)
			break;
		for (size_t i = 0; i < nr; i++)
			bytes += vec[i].end - vec[i].start;
		at = nr < ZP_ARRAY_SIZE(vec) ? e
					     : ZP_MAX(walk, vec[nr - 1].end);
	}
	zero_pagemap_put();
	scan_failed(err);
	if (!err)
		*done = at;
	return err ? 0 : bytes;
}

size_t
zero_resident_bytes(uintptr_t s, uintptr_t e)
{
	uintptr_t done;

	return zero_resident_sample(s, e, UINT_MAX, &done);
}

/*
 * Does a read of untouched anonymous memory map the kernel's shared zero
 * page? Some hypervisors' guest kernels turn it off (this project's CI
 * VMs boot with pvm_no_zero_page=1): there a read fault commits a page
 * of its own, under glibc as under us, and untouched-but-read memory
 * costs RSS whoever allocated it. The stats say which kernel this is,
 * so that a reader does not take it for a leak. Probed once, on a page
 * of our own; -1 when pagemap cannot tell (no PAGEMAP_SCAN).
 */
int
zero_kernel_zero_page(void)
{
	static int known = -2;
	int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
	volatile char *p;
	void *m;

	if (k != -2)
		return k;
	/* Held across the probe, so that the scan below finds it open. */
	if (zero_pagemap_get() < 0)
		return -1;
	if (os_map(ZP_PAGE_SIZE, NULL, &m) == 0) {
		p = m;
		(void)p[0];
		k = zero_resident_bytes((uintptr_t)m,
					(uintptr_t)m + ZP_PAGE_SIZE) == 0;
		os_unmap(m, ZP_PAGE_SIZE);
		__atomic_store_n(&known, k, __ATOMIC_RELAXED);
	} else {
		k = -1;
	}
	zero_pagemap_put();
	return k;
}

static const char *
kernel_zero_page_name(void)
{
	int k = zero_kernel_zero_page();

	return k > 0 ? "yes" : k == 0 ? "no (reads commit pages)" : "unknown";
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
	size_t examined = 0;

	return reclaim_pass(SIZE_MAX, NULL, &examined);
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
	table.seq &= ~1U;
	uffd_postfork_child();
	reclaim_postfork_child();
	helper_postfork_child();
}

/* Region count, bytes and resident bytes, read without holding the table
 * lock across the pagemap calls: region by region, lock-free. */
static void
regions_info(struct zp_zero_info *out)
{
	struct zero_region r;
	uintptr_t at = 0;

	while (table_read(at, &r)) {
		out->nr_regions++;
		out->region_bytes += r.end - r.start;
		out->resident_bytes += zero_resident_bytes(r.start, r.end);
		at = r.end;
	}
}

int
zero_info(struct zp_zero_info *out)
{
	const char *reason;
	uint64_t reg;

	memset(out, 0, sizeof(*out));
	out->level = uffd_level();
	reason = uffd_reason();
	fmt_buf(out->level_reason, sizeof(out->level_reason), "%s", reason);
	regions_info(out);
	uffd_stats(&out->nr_faults_handled, &reg);
	out->registered_bytes = reg;
	reclaim_stats(&out->nr_reclaimed_pages, &out->nr_scans,
		      &out->scanned_bytes, &out->scanner_ns);
	return 0;
}

/* Parked regions: a text line, or JSON members after a comma. */
static void
park_print(struct outbuf *o, bool json)
{
	unsigned long nr, bytes, parked, reused, expired, kept_nr, kept_gone;
	struct zero_guard g;

	zero_guard_enter(&g);
	table_lock();
	nr = park.nr;
	bytes = park.bytes;
	parked = park.nr_parked;
	reused = park.nr_reused;
	expired = park.nr_expired;
	kept_nr = nr_kept;
	kept_gone = nr_kept_unmapped;
	table_unlock();
	zero_guard_leave(&g);
	if (json)
		out_printf(o, ",\"parked\":%lu,\"parked_bytes\":%lu,"
			   "\"nr_parked\":%lu,\"nr_park_reused\":%lu,"
			   "\"nr_park_expired\":%lu,\"nr_unmap_refused\":%lu,"
			   "\"nr_unmap_retried\":%lu", nr, bytes, parked,
			   reused, expired, kept_nr, kept_gone);
	else
		out_printf(o, "  parked %lu (%lu bytes)  parks %lu  reused %lu"
			   "  expired %lu  unmaps refused %lu (done later %lu)"
			   "\n", nr, bytes, parked, reused, expired, kept_nr,
			   kept_gone);
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
	uint64_t age, wasted;

	zero_info(&in);
	out_printf(o, "zero-page engine: level %s (%s)\n",
		   level_name(in.level), in.level_reason);
	out_printf(o, "  kernel zero page for reads: %s\n",
		   kernel_zero_page_name());
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
	out_printf(o, "  scanner %lu ns  pages rescued %lu  put back by copy "
		   "%lu  adopted unreported %lu\n",
		   (unsigned long)in.scanner_ns,
		   (unsigned long)uffd_nr_rescued(),
		   (unsigned long)uffd_nr_copied(),
		   (unsigned long)uffd_nr_adopted());
	age = zero_reclaim_age_ns(&wasted);
	out_printf(o, "  reclaim age %lu ms  freed just after a reclaim %lu\n",
		   (unsigned long)(age / 1000000), (unsigned long)wasted);
	park_print(o, false);
	helper_print(o, false);
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
	out_printf(o, ",\"pages_rescued\":%lu,\"pages_copied_back\":%lu,"
		   "\"pages_adopted\":%lu",
		   (unsigned long)uffd_nr_rescued(),
		   (unsigned long)uffd_nr_copied(),
		   (unsigned long)uffd_nr_adopted());
	out_printf(o, ",\"kernel_zero_page\":%d", zero_kernel_zero_page());
	park_print(o, true);
	helper_print(o, true);
	out_printf(o, "}");
}
