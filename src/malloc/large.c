/*
 * large.c - blocks with a mapping each: beyond the buddy's largest order,
 *            or grown there by realloc.
 * Owns:  the large-block table (open addressing keyed by address, itself
 *        mapped with os_map and grown under the lock), the ring of recently
 *        freed blocks that catches double frees, large-block statistics.
 * Locks: large.lock guards everything above; it is a leaf (no other
 *        allocator lock is taken under it) and first in fork order.
 *        free never fails: a block the kernel will not unmap (the
 *        map-count limit) is kept, emptied, and unmapped later.
 * Path:  alloc_malloc_slow -> large_alloc -> large_map -> zero_region_take
 *        (a parked region or os_map); large_free -> zero_region_park
 *        (os_map/os_unmap without the zero-page engine)
 *
 * The three large_map/large_unmap/large_remap functions are the only ones
 * that know how a block is backed.
 */
#include <errno.h>
#include <string.h>

#include "base/lock.h"
#include "base/log.h"
#include "malloc/large.h"
#include "os/os.h"
#include "page/zone.h"
#if ZP_HAVE_ZERO
#include "zero/zero.h"
#endif

/* size carries the LARGE_* flags in its low bits: sizes are whole pages;
 * and whether the block was placed for huge pages (large.c's own). */
#define LARGE_HUGE_BIT	((size_t)1 << 2)
#define LARGE_RECYCLED_BIT ((size_t)1 << 3)	/* a parked region served it */
#define LARGE_GROWN_BIT	((size_t)1 << 4)	/* realloc grew it */
#define LARGE_FLAG_MASK	((size_t)(LARGE_LOW32 | LARGE_PLACED) | \
			 LARGE_HUGE_BIT | LARGE_RECYCLED_BIT | LARGE_GROWN_BIT)

struct large_entry {
	uintptr_t addr;
	size_t size;
};

#define LARGE_EMPTY	((uintptr_t)0)
#define LARGE_TOMB	((uintptr_t)1)
#define LARGE_TABLE_MIN	(ZP_PAGE_SIZE / sizeof(struct large_entry))
#define LARGE_RECENT	64
/* Large blocks allocated at least this often are churn (numpy arrays,
 * buffers rebuilt per request): a freed one will soon be asked for again.
 * (bench: 20 ms parks for numpy-zeros and realloc growth, not for sqlite's
 * occasional sort buffers; 50 ms already parks some of those.) */
#define LARGE_CHURN_NS	((uint64_t)20 * 1000 * 1000)
#define LARGE_CHURN_MIN	3	/* blocks allocated before it can be churn */
/* Huge pages for blocks of sizes the program fills (see learn_fill). */
#define LARGE_HUGE_SHIFT	21	/* a huge page: 2 MiB */
#define LARGE_HUGE_CLASSES	24	/* powers of two from 2 MiB up */
#define LARGE_FILL_CALLS	4	/* PAGEMAP_SCAN calls a sample */

static struct {
	struct zp_lock lock;
	struct large_entry *tab;	/* cap entries, os_map'ed */
	size_t cap;			/* a power of two, or 0 */
	size_t nr_live, nr_tomb;
	size_t nr_reserved;		/* slots promised to resizes */
	uintptr_t recent[LARGE_RECENT];	/* freed: double-free check */
	unsigned recent_next;
	uint64_t last_alloc_ns;		/* when the last block was allocated */
	uint64_t gap_ns;		/* smoothed time between allocs */
	uint64_t last_free_ns;		/* when the last block was freed */
	/* Smoothed time from a free to the allocation after it (UINT64_MAX
	 * until an allocation follows a free). */
	uint64_t reuse_ns;
	/* Per power of two of block size: the share of a freed block's
	 * pages that were resident, smoothed, in 1/256, plus one (0: no
	 * block of that size freed yet). */
	uint16_t fill[LARGE_HUGE_CLASSES];
	unsigned huge_fill;		/* share that earns huge pages; 0: off */
	struct large_stats st;
} large = { .lock = ZP_LOCK_INIT, .reuse_ns = UINT64_MAX };

/* --- backing: the only place that knows how a block is mapped ------------ */

/*
 * Plain blocks are zero-backed regions, which a freed block's region may
 * serve again (parked); a LOW32 block is a reservation below 4 GiB, and a
 * block placed on a node keeps its own mapping (a parked region would
 * carry another block's memory policy).
 */
static int
large_map(size_t size, size_t align, unsigned flags, bool zero, bool huge,
	  size_t *fresh, void **out)
{
	int err;

	*fresh = size;
#if ZP_HAVE_ZERO
	if (!(flags & LARGE_LOW32)) {
		if (flags & LARGE_PLACED)
			return zero_region_map_aligned(size, align, out);
		return zero_region_take_huge(size, align, zero, huge, fresh,
					     out);
	}
#else
	(void)zero;	/* fresh mappings are zero */
	(void)huge;
	if (!(flags & LARGE_LOW32) && align <= ZP_PAGE_SIZE)
		return os_map(size, NULL, out);
#endif
	err = os_reserve(size, ZP_MAX(align, ZP_PAGE_SIZE),
			 flags & LARGE_LOW32 ? OS_RESERVE_LOW32 : 0, out);
	if (err)
		return err;
	err = os_commit(*out, size);
	if (err)
		os_unmap(*out, size);
	return err;
}

/*
 * A freed plain block's region is parked for the next large block only
 * while large blocks churn: allocated often, the last one recently, or
 * each free followed at once by an allocation (a buffer replaced: the
 * first free since the last allocation, when frees have been followed by
 * allocations within LARGE_CHURN_NS). The second covers blocks that take
 * long to fill: a program zero-filling 15 MiB buffers takes 38 ms of page
 * faults per buffer in these VMs (10 us a fault), longer than any
 * allocation gap that sqlite's occasional sort buffers do not also show,
 * and once one is unmapped, the next buffer's faults keep the gap long
 * (big-replace: 7x glibc's time). Only the first free: a teardown of
 * many blocks parked whole would stand beside the blocks built next
 * (realloc's rounds: +31% peak RSS). Parked pages can serve only large
 * blocks, so whatever the zones take fresh meanwhile stacks on top of
 * them: a program that asks for a large block only now and then would
 * mostly pay for a copy it never reuses (sqlite building an index: +20%
 * peak RSS when every one was parked).
 */
static bool
park_is_worth_locked(uint64_t now, bool first_free)
{
	return large.st.nr_alloc >= LARGE_CHURN_MIN &&
	       ((large.gap_ns <= LARGE_CHURN_NS &&
		 now - large.last_alloc_ns <= LARGE_CHURN_NS) ||
		(first_free && large.reuse_ns <= LARGE_CHURN_NS));
}

/*
 * A teardown: frees in a row (not the first since an allocation) by a
 * program whose allocations have followed its frees within
 * LARGE_CHURN_NS, or that has not allocated after a free yet (its first
 * teardown: left unmapped, the round after it faulted in full, where
 * tcmalloc and mimalloc keep what it freed: 1.05x glibc's time against
 * their 0.6x). Its blocks park (up to park_max, for the park delay), so
 * that the blocks it builds next take no page faults (Python dropping a
 * list of 400 MiB of bytearrays and building the next: 2.4x glibc's
 * time, whose heap keeps them); park_within_peak cuts the park back
 * whenever memory comes from elsewhere (a large block mapped or grown,
 * the zones grown) and would take the resident set past its peak with
 * them. Not a block realloc grew: such a buffer is built again from a
 * small block up, by mremap, which parked pages do not serve, and they
 * would only stand beside it until cut back (realloc's rounds: +4 to 7%
 * peak RSS even so, +31% without the cuts).
 */
static bool
is_teardown_locked(bool first_free, size_t size)
{
	return !first_free && !(size & LARGE_GROWN_BIT) &&
	       large.st.nr_alloc >= LARGE_CHURN_MIN &&
	       (large.reuse_ns <= LARGE_CHURN_NS ||
		large.reuse_ns == UINT64_MAX);
}

/*
 * Of parked bytes, how many may stay while coming more become resident:
 * as many as keep the resident set within the most it has been (the
 * kernel's high-water mark). Parked pages are resident (a teardown's
 * blocks were written), so what the process adds beside them raises its
 * peak by as much. Sizes mapped would not do: one untouched 1 GiB block
 * made room for 400 MiB parked beside 400 MiB of new objects (803 MiB
 * peak against glibc's 405). A read of /proc/self/status, made only
 * while pages are parked.
 */
static size_t
park_room(size_t parked, size_t coming)
{
	size_t rss, peak, over;

	if (os_rss_and_peak(&rss, &peak) != 0)
		return 0;
	over = rss + coming > peak ? rss + coming - peak : 0;
	return parked > over ? parked - over : 0;
}

/* Parked pages go before coming bytes from elsewhere raise the peak. */
static void
park_within_peak(size_t coming)
{
#if ZP_HAVE_ZERO
	size_t parked = zero_park_bytes(), room;

	if (parked && (room = park_room(parked, coming)) < parked)
		zero_park_trim(room);
	zone_note_outside_kept(zero_park_bytes() >> ZP_PAGE_SHIFT);
#else
	(void)coming;
#endif
}

/* The zones' peak hook: they grew by a step while pages were parked. */
void
large_park_within_peak(void)
{
	park_within_peak(ZP_COMMIT_STEP);
}

/* A smoothed gap: the first one as it is, then a quarter of each new. */
static void
smooth(uint64_t *avg, uint64_t gap)
{
	*avg = *avg == UINT64_MAX ? gap : (*avg * 3 + gap) / 4;
}

/* Called at each allocation: the gap since the last allocation, and
 * since the last free when one came after it. */
static void
note_alloc_locked(uint64_t now)
{
	if (!large.last_alloc_ns)
		large.gap_ns = UINT64_MAX;
	else
		smooth(&large.gap_ns, now - large.last_alloc_ns);
	if (large.last_free_ns > large.last_alloc_ns)
		smooth(&large.reuse_ns, now - large.last_free_ns);
	large.last_alloc_ns = now;
}

/* Never fails, never touches errno: what the kernel will not unmap now
 * (ENOMEM at vm.max_map_count, when the unmap would split a mapping) is
 * emptied and kept, as glibc's free keeps it. */
static void
large_unmap(void *p, size_t size, unsigned flags, bool park, size_t room)
{
#if ZP_HAVE_ZERO
	int err;

	if (flags & LARGE_LOW32)
		err = EINVAL;
	else if ((flags & LARGE_PLACED) || !park)
		err = zero_region_unmap(p, size);
	else
		err = zero_region_park(p, size, room);
	/* Not (all) a region any more: the program unmapped or remapped
	 * part of its block. Unmap whatever is there. */
	if (err)
		zero_unmap_or_keep(p, size);
#else
	(void)flags;
	(void)park;
	(void)room;
	if (os_unmap(p, size) != 0)
		os_purge(p, size);
#endif
}

static int
large_remap(void *p, size_t old_size, size_t new_size, unsigned flags,
	    void **out)
{
#if ZP_HAVE_ZERO
	if (!(flags & LARGE_LOW32))
		return zero_region_remap(p, old_size, new_size, true, out);
#endif
	/* A LOW32 block may only change size where it stands. */
	return os_remap(p, old_size, new_size, NULL, !(flags & LARGE_LOW32),
			out);
}

/* --- huge pages for blocks that are filled ------------------------------ */

/*
 * A page fault costs ~10 us on the machines this is measured on, and a
 * fault of a 2 MiB transparent huge page ~0.1 ms: a block that the
 * program writes in full (numpy's arrays, a buffer zero-filled by `new
 * char[n]()`, a calloc it then fills) takes a 45th of the time in
 * faults on huge pages. But a huge page is resident whole, however
 * little of it is written, and a block written sparsely (sparse_calloc:
 * 1.5% of 512 MiB) would cost up to 512 times its RSS. So each free of a
 * plain block measures what share of its pages are resident (a few
 * PAGEMAP_SCAN calls; reads count only where the kernel has no zero
 * page, as they then cost a page anyway), smoothed per power of two of
 * block size, and a block of a size whose blocks have been filled (at
 * least huge_fill) is placed for huge pages. One sparse block among
 * filled ones takes a size off at once: (3 * 256 + 0) / 4 is 75%, below
 * the default 90%. The zero-page scanner leaves huge pages alone (it
 * would split them), so a filled block that is zeroed again keeps its
 * memory until freed.
 */
static unsigned
huge_class(size_t size)
{
	unsigned c = zp_log2_floor(size) - LARGE_HUGE_SHIFT;

	return ZP_MIN(c, (unsigned)LARGE_HUGE_CLASSES - 1);
}

static bool
wants_huge_locked(size_t size, unsigned flags)
{
	unsigned f;

	if (!large.huge_fill || size < ((size_t)1 << LARGE_HUGE_SHIFT) ||
	    (flags & (LARGE_LOW32 | LARGE_PLACED)))
		return false;
	f = large.fill[huge_class(size)];
	return f != 0 && f - 1 >= large.huge_fill;
}

/* Resident bytes among the first of [s, e) that a few scans cover;
 * *covered: how much they did. */
static size_t
sample(uintptr_t s, uintptr_t e, size_t *covered)
{
	uintptr_t done = s;
	size_t bytes = 0;

#if ZP_HAVE_ZERO
	if (s < e)
		bytes = zero_resident_sample(s, e, LARGE_FILL_CALLS, &done);
#endif
	*covered = done - s;
	return bytes;
}

/*
 * Notes how much of a plain block about to go was resident. Of a block
 * on huge pages only its head and tail tell (zero.c places it so that
 * they take small pages): a huge page is resident whole once written at
 * all, so the rest would say "filled" of any use.
 */
static void
learn_fill(void *p, size_t size, bool huge)
{
	uintptr_t s = (uintptr_t)p, e = s + size;
	uintptr_t hs = zp_align_up(s, (size_t)1 << LARGE_HUGE_SHIFT);
	uintptr_t he = zp_align_down(e, (size_t)1 << LARGE_HUGE_SHIFT);
	size_t bytes, covered, tail_covered;
	unsigned share;
	uint16_t *f;

	if (!__atomic_load_n(&large.huge_fill, __ATOMIC_RELAXED) ||
	    size < ((size_t)1 << LARGE_HUGE_SHIFT))
		return;
	if (huge && hs < he) {
		bytes = sample(s, hs, &covered) + sample(he, e, &tail_covered);
		covered += tail_covered;
	} else {
		bytes = sample(s, e, &covered);
	}
	if (covered == 0)
		return;
	share = (unsigned)ZP_MIN((uint64_t)bytes * 256 / covered, 256);
	zp_lock(&large.lock);
	f = &large.fill[huge_class(size)];
	*f = (uint16_t)(*f ? (3 * (*f - 1) + share) / 4 + 1 : share + 1);
	zp_unlock(&large.lock);
}

zp_boot_text void
large_set_huge_fill(unsigned percent)
{
	zp_lock(&large.lock);
	large.huge_fill = ZP_MIN(percent, 100u) * 256 / 100;
	memset(large.fill, 0, sizeof(large.fill));
	zp_unlock(&large.lock);
}

/* --- the table ------------------------------------------------------------ */

static size_t
slot_of(uintptr_t addr, size_t cap)
{
	uint64_t h = (uint64_t)(addr >> ZP_PAGE_SHIFT) * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> 32) & (cap - 1);
}

/* The slot holding addr, or NULL. */
static struct large_entry *
find_locked(uintptr_t addr)
{
	if (!large.cap)
		return NULL;
	size_t mask = large.cap - 1;

	for (size_t i = slot_of(addr, large.cap);; i = (i + 1) & mask) {
		struct large_entry *e = &large.tab[i];

		if (e->addr == addr)
			return e;
		if (e->addr == LARGE_EMPTY)
			return NULL;
	}
}

static void
place_locked(struct large_entry *tab, size_t cap, uintptr_t addr,
	     size_t size)
{
	size_t i = slot_of(addr, cap);

	while (tab[i].addr > LARGE_TOMB)
		i = (i + 1) & (cap - 1);
	tab[i].addr = addr;
	tab[i].size = size;
}

/* Rehash into a table sized for the live entries (tombstones go). */
static int
grow_locked(void)
{
	size_t cap = large.cap ? large.cap : LARGE_TABLE_MIN;
	struct large_entry *tab;
	void *mem;
	int err;

	while ((large.nr_live + large.nr_reserved + 1) * 2 > cap)
		cap *= 2;
	err = os_map(cap * sizeof(*tab), NULL, &mem);
	if (err)
		return err;
	tab = mem;
	for (size_t i = 0; i < large.cap; i++)
		if (large.tab[i].addr > LARGE_TOMB)
			place_locked(tab, cap, large.tab[i].addr,
				     large.tab[i].size);
	if (large.tab)
		os_unmap(large.tab, large.cap * sizeof(*tab));
	large.tab = tab;
	large.cap = cap;
	large.nr_tomb = 0;
	large.st.table_capacity = cap;
	return 0;
}

/* Would one more entry (besides the reserved ones) take the load
 * (tombstones included) past 3/4? */
static bool
is_full_locked(size_t extra)
{
	return (large.nr_live + large.nr_tomb + large.nr_reserved + extra) *
		       4 > large.cap * 3;
}

static int
insert_locked(uintptr_t addr, size_t size)
{
	if (is_full_locked(1)) {
		int err = grow_locked();

		if (err)
			return err;
	}
	place_locked(large.tab, large.cap, addr, size);
	large.nr_live++;
	return 0;
}

static void
remove_locked(struct large_entry *e)
{
	e->addr = LARGE_TOMB;
	e->size = 0;
	large.nr_live--;
	large.nr_tomb++;
}

static void
forget_recent_locked(uintptr_t addr)
{
	for (unsigned i = 0; i < LARGE_RECENT; i++)
		if (large.recent[i] == addr)
			large.recent[i] = 0;
}

static bool
is_recent_locked(uintptr_t addr)
{
	for (unsigned i = 0; i < LARGE_RECENT; i++)
		if (large.recent[i] == addr)
			return true;
	return false;
}

static void
account_locked(size_t bytes, bool add)
{
	if (add) {
		large.st.nr_blocks++;
		large.st.bytes += bytes;
		if (large.st.bytes > large.st.peak_bytes)
			large.st.peak_bytes = large.st.bytes;
	} else {
		large.st.nr_blocks--;
		large.st.bytes -= bytes;
	}
}

/* --- the block interface ------------------------------------------------- */

void *
large_alloc(size_t n, size_t align, unsigned flags, int node, bool zero)
{
	size_t size = zp_align_up(n, ZP_PAGE_SIZE), fresh;
	bool huge, recycled;
	void *p;
	int err;

	if (size < n)
		return NULL;
	if (node >= 0)
		flags |= LARGE_PLACED;
#if ZP_HAVE_ZERO
	zero_kick_pending();
#endif
	/* The block's pages will not come from the zones' free ones. */
	zone_purge_before_map((__atomic_load_n(&large.st.bytes,
					       __ATOMIC_RELAXED) + size) >>
			      ZP_PAGE_SHIFT);
	zp_lock(&large.lock);
	huge = wants_huge_locked(size, flags);
	zp_unlock(&large.lock);
	err = large_map(size, align, flags, zero, huge, &fresh, &p);
	if (err) {
		__atomic_fetch_add(&large.st.nr_failed, 1, __ATOMIC_RELAXED);
		return NULL;
	}
	/* A parked extent is never empty, so one that served the block
	 * left fewer new bytes than its size; a fresh mapping, all. */
	recycled = fresh < size;
	if (node >= 0)
		os_mbind_node(p, size, node); /* a preference: may fail */
	/* Parked pages were counted when first mapped (a teardown's 400
	 * MiB rebuilt read /proc/meminfo 600 times more); what a parked
	 * region was grown by was not. */
	zone_limit_note_map(fresh);

	zp_lock(&large.lock);
	err = insert_locked((uintptr_t)p, size | (flags & LARGE_FLAG_MASK) |
					  (huge ? LARGE_HUGE_BIT : 0) |
					  (recycled ? LARGE_RECYCLED_BIT : 0));
	if (!err) {
		forget_recent_locked((uintptr_t)p);
		account_locked(size, true);
		large.st.nr_alloc++;
		large.st.nr_huge += huge;
		note_alloc_locked(os_now_ns());
	}
	zp_unlock(&large.lock);
	if (err) {
		large_unmap(p, size, flags, /* park */ false, 0);
		return NULL;
	}
	park_within_peak(fresh);
	return p;
}

bool
large_free(void *p)
{
	uintptr_t addr = (uintptr_t)p;
	struct large_entry *e;
	size_t size;
	bool park, first, teardown;

	zp_lock(&large.lock);
	e = find_locked(addr);
	if (!e) {
		bool twice = addr && is_recent_locked(addr);

		zp_unlock(&large.lock);
		if (twice)
			log_fatal("free(): double free detected %p", p);
		return false;
	}
	size = e->size;
	remove_locked(e);
	large.recent[large.recent_next++ % LARGE_RECENT] = addr;
	account_locked(size & ~LARGE_FLAG_MASK, false);
	large.st.nr_free++;
	first = large.last_free_ns <= large.last_alloc_ns;
	large.last_free_ns = os_now_ns();
	park = park_is_worth_locked(large.last_free_ns, first);
	teardown = is_teardown_locked(first, size);
	zp_unlock(&large.lock);

	/* A parked region's pages were resident before the block was. */
	if (!(size & (LARGE_LOW32 | LARGE_PLACED | LARGE_RECYCLED_BIT)))
		learn_fill(p, size & ~LARGE_FLAG_MASK, size & LARGE_HUGE_BIT);
	large_unmap(p, size & ~LARGE_FLAG_MASK, size & LARGE_FLAG_MASK,
		    park || teardown, teardown ? SIZE_MAX : 0);
#if ZP_HAVE_ZERO
	zone_note_outside_kept(zero_park_bytes() >> ZP_PAGE_SHIFT);
#endif
	zone_note_outside(__atomic_load_n(&large.st.bytes, __ATOMIC_RELAXED) >>
			  ZP_PAGE_SHIFT);
	return true;
}

size_t
large_usable_size(const void *p)
{
	struct large_entry *e;
	size_t size = 0;

	zp_lock(&large.lock);
	e = find_locked((uintptr_t)p);
	if (e)
		size = e->size & ~LARGE_FLAG_MASK;
	zp_unlock(&large.lock);
	return size;
}

void *
large_resize(void *p, size_t n)
{
	size_t new_size = zp_align_up(n, ZP_PAGE_SIZE);
	struct large_entry *e;
	size_t old;
	unsigned flags;
	void *q;
	int err;

	zp_lock(&large.lock);
	e = find_locked((uintptr_t)p);
	old = e ? e->size : 0;
	/* A slot for the moved entry, reserved now so that no insert by
	 * another thread while the lock is dropped can take it: the update
	 * below cannot fail after the pages have moved. */
	err = 0;
	if (e && is_full_locked(1))
		err = grow_locked();
	if (e && !err)
		large.nr_reserved++;
	zp_unlock(&large.lock);
	if (!old)
		log_fatal("realloc(): invalid pointer %p", p);
	if (err)
		return NULL;
	flags = old & LARGE_FLAG_MASK;
	old &= ~LARGE_FLAG_MASK;

	/* The caller owns the block, so nobody else can move or free it
	 * while the lock is dropped around the remap. */
	err = new_size == old ? 0 : large_remap(p, old, new_size, flags, &q);
	zp_lock(&large.lock);
	large.nr_reserved--;
	if (err || new_size == old) {
		zp_unlock(&large.lock);
		return err ? NULL : p;
	}
	e = find_locked((uintptr_t)p);
	if (new_size > old)
		flags |= LARGE_GROWN_BIT;
	if (q == p) {
		e->size = new_size | flags;
	} else {
		remove_locked(e);
		/* Cannot fail: the reserved slot is there. */
		insert_locked((uintptr_t)q, new_size | flags);
		forget_recent_locked((uintptr_t)q);
	}
	account_locked(old, false);
	account_locked(new_size, true);
	large.st.nr_remap++;
	zp_unlock(&large.lock);
	if (new_size > old) {
		/* A program that grows one buffer maps no new block: its
		 * growth must reach the watermarks all the same. */
		zone_limit_note_map(new_size - old);
		park_within_peak(new_size - old);
	}
	return q;
}

void
large_get_stats(struct large_stats *out)
{
	zp_lock(&large.lock);
	*out = large.st;
	zp_unlock(&large.lock);
}

void
large_prefork(void)
{
	zp_lock_prefork(&large.lock);
}

void
large_postfork_parent(void)
{
	zp_lock_postfork_parent(&large.lock);
}

void
large_postfork_child(void)
{
	zp_lock_postfork_child(&large.lock);
}
