/*
 * zone.c - zones, zonelists, watermarks, growth and exact blocks over
 * buddy.c (purging is zone_purge.c, statistics zone_stats.c).
 * Owns:  the zones (zone_of), zone_spans[] and zp_arena (published for page
 *        lookups), the node map, the LOW32 zone's creation.
 * Locks: zone->lock guards its buddy lists, counters and watermarks. Only
 *        one zone lock is held at a time, except zone_prefork, which takes
 *        them all in index order. Callers above (slab cache locks) take
 *        theirs first. zone->purge_lock (zone_purge.c) ranks before
 *        zone->lock, and zone_prefork takes it first: no fork happens
 *        while a purge has blocks off the lists. low32_lock (creating the
 *        LOW32 zone) ranks before every zone lock. A step grown on a huge
 *        page is faulted in under zone->lock (~0.1 ms; longer when the
 *        kernel compacts memory for it), once per 2 MiB of growth.
 * Path:  zone_alloc_pages -> (pcp miss) zone_alloc_pages_slow -> zonelist
 *        walk -> alloc_locked -> buddy_alloc | grow_locked -> os_map_fixed
 *        [-> os_fault_huge]
 *        zone_free_pages -> (pcp full) zone_free_pages_slow -> buddy_free
 *        -> zone_purge_check_locked
 *
 * Watermarks (pages), after Linux's but for a heap that grows on demand:
 * a zone's "available" pages are its free pages plus the part of its span
 * not yet grown into.
 *  - min: another node's request must leave min available here, so a node
 *    keeps its last pages for its own threads;
 *  - high: free dirty (resident) pages beyond high are purged on the next
 *    free, the longest idle first ...
 *  - low: ... down to low, so purging runs in batches, not on every free;
 *  - lowmem_reserve[t]: pages a request whose preferred zone type is t must
 *    leave available here; on LOW32 it keeps NORMAL fallback off the last
 *    32-bit pages.
 *
 * A zone is a window nothing is mapped in: growth maps each 2 MiB step
 * (and its descriptors) with os_map_fixed at the zone's next address,
 * purging unmaps whole free steps (zone_purge.c), and allocating from a
 * block with such steps maps them again. So a zone holds no address space
 * or commit charge it does not use.
 */
#include <errno.h>
#include <string.h>

#include "base/log.h"
#include "os/os.h"
#include "page/zone_priv.h"
#include "zpmalloc.h"

#define ZONE_MIN_SPAN		((size_t)8 << 20)
#define ZONE_DEFAULT_SPAN	((size_t)64 << 30)
#define DESC_BYTES(pages)	((size_t)(pages) * sizeof(struct page))
#define FACT_BYTES(pages)	((size_t)(pages) * sizeof(uint64_t))
#define BITS_BYTES(pages)	((size_t)(pages) * sizeof(struct page_bits))
/* Big-block entries (buddy.h) of so many pages, in whole pages. */
#define BIG_BYTES(pages)						\
	zp_align_up(((size_t)(pages) >> BUDDY_BIG_ORDER) *		\
			    sizeof(struct page), ZP_PAGE_SIZE)
/* The retained budget starts at 128 KiB, glibc's trim threshold
 * (zone_purge.c). */
#define RETAIN_MIN		((uint64_t)32)

_Static_assert(ZP_COMMIT_STEP % ZP_PAGE_SIZE == 0, "step is whole pages");
_Static_assert(DESC_BYTES(STEP_PAGES) % ZP_PAGE_SIZE == 0 &&
	       FACT_BYTES(STEP_PAGES) % ZP_PAGE_SIZE == 0 &&
	       BITS_BYTES(STEP_PAGES) % ZP_PAGE_SIZE == 0,
	       "descriptors, facts and bits of one step are whole pages");
_Static_assert(ZP_MAX_BLOCK % ZP_COMMIT_STEP == 0, "steps tile blocks");

struct zone_first zone_first zp_bss_large;
struct zone zone_rest[ZP_MAX_ZONES - 1] zp_bss_large;
_Static_assert(offsetof(struct zone_first, steps) + 256 <= ZP_PAGE_SIZE,
	       "zone 0's page holds its first region's big-block entries and "
	       "its first 512 MiB of steps");
unsigned nr_zones;
struct zone_span zone_spans[ZP_MAX_ZONES];
unsigned nr_zone_spans;

struct zp_arena zp_arena;

static unsigned nr_nodes = 1;
static bool is_fake_numa;
static struct zone *normal_of_node[ZP_MAX_ZONES];
/* LOW32 is created by the first GFP_LOW32 request, under low32_lock:
 * until then it takes none of the MAP_32BIT window from the program. */
static struct zone *low32_zone;		/* atomic: published when ready */
static size_t low32_span;		/* 0: no LOW32 zone at all */
static uint64_t low32_purge_delay_ns;
static size_t huge_from;		/* zone_config's; read-only */
static struct zp_lock low32_lock = ZP_LOCK_INIT;

void pcp_boot(unsigned high, unsigned batch, unsigned fraction);

/* Free pages, and what the zone may still grow into: its holes and the
 * rest of its span, as far as the memory limit's headroom goes. */
static uint64_t
avail_pages(const struct zone *z)
{
	uint64_t left = (z->span >> ZP_PAGE_SHIFT) - zone_committed_pages(z) +
			z->nr_hole_steps * STEP_PAGES;

	return z->buddy.nr_free + ZP_MIN(left, zone_limit_headroom());
}

/* --- mapping ------------------------------------------------------------- */

/* Maps fresh pages into the zone's window (bound to its node when the
 * zone is). */
static int
map_range(struct zone *z, void *p, size_t size)
{
	int r = os_map_fixed(p, size);

	if (r == 0 && z->is_bound)
		os_mbind_node(p, size, (int)z->node);
	return r;
}

/*
 * A 4 KiB fault costs ~10 us on the machines this is measured on and a
 * 2 MiB one ~0.1 ms, so a program that grows its heap of small objects
 * step after step (sqlite's page cache, a tree of strings) spends a
 * tenth of its time faulting it in page by page. Once a zone has
 * huge_from bytes in use, a step it grows by for small blocks (slabs,
 * buddy.h's SMALL regions; a new step or a hole filled again) is
 * faulted in whole on one huge page, while those regions are dense: free
 * pages in them at most 1/DENSE_DIV of the zone's pages in use (blocks
 * in per-thread page caches and on a purge's chain count as in use), so
 * the new step will be filled as they were. What this costs is the part
 * of the newest step not yet used when the program peaks. Larger blocks
 * keep small pages, as do a fragmented zone and a block taken from a
 * given-back step still on the free lists (which may be a page of it):
 * programs write buffers sparsely (frag writes the ends of each block),
 * and a huge page is resident whole. Every step huge doubled frag's
 * peak; small blocks' steps with an eighth free still cost it 10%, with
 * a 32nd nothing measurable. Purges split the huge page as they would
 * any other (MADV_DONTNEED of part of it), and the step is left advised
 * against huge pages, so that khugepaged does not collapse purged pages
 * back in behind our back. Not near the memory limit: there every page
 * counts. A step not faulted in on a huge page is advised against them
 * too: with transparent huge pages "always" the kernel would give it one
 * at its first touch (2 MiB resident for a small program's first slab),
 * and steps with the same advice merge into one mapping.
 */
#define DENSE_DIV	32
_Static_assert(ZP_COMMIT_STEP % OS_HUGE_PAGE_SIZE == 0 &&
	       ZP_MAX_BLOCK % OS_HUGE_PAGE_SIZE == 0,
	       "a step starts at a huge page boundary (zone bases are aligned "
	       "to ZP_MAX_BLOCK)");

static bool
wants_huge_step_locked(const struct zone *z, enum region_type type)
{
	/* Holes are on no free list; other given-back steps are. */
	uint64_t in_use = zone_pages_in_use(z);

	return huge_from != 0 && type == REGION_SMALL &&
	       in_use << ZP_PAGE_SHIFT >= huge_from &&
	       buddy_nr_free_typed(&z->buddy, type) * DENSE_DIV <= in_use &&
	       zone_limit_is_roomy();
}

/* Maps step st (fresh, or given back before), faulted in on a huge page
 * when huge, advised against them either way (see above): reads as zero.
 * The advice comes first, so that the step joins its neighbours' mapping
 * before anything faults in it: a fault in a mapping of its own would
 * give it an anon_vma of its own, which keeps it apart for good. A kernel
 * without transparent huge pages refuses the advice: no matter. */
static int
map_step_locked(struct zone *z, size_t st, bool huge)
{
	void *p = (void *)(z->base + st * ZP_COMMIT_STEP);
	int err = map_range(z, p, ZP_COMMIT_STEP);

	if (err != 0)
		return err;
	(void)os_advise_huge(p, ZP_COMMIT_STEP, false);
	if (huge && os_fault_huge(p, ZP_COMMIT_STEP) == 0)
		z->nr_huge_steps++;
	return 0;
}

/* The zone of each descriptor of a step: written once at growth, and
 * again when the step comes back (its descriptor pages were dropped and
 * read zero). Zone 0's descriptors need no write. */
static void
init_step_zone(struct zone *z, size_t first)
{
	if (z->id == 0)
		return;
	for (size_t i = first; i < first + STEP_PAGES; i++)
		z->descs[i].zone_id = (uint8_t)z->id;
}

/* Maps the steps of pages [lo, hi), just taken off the lists, that were
 * given back earlier. False when the system refuses. */
static bool
map_pages_locked(struct zone *z, size_t lo, size_t hi)
{
	if (z->nr_unmapped_steps == 0)
		return true;
	for (size_t st = lo / STEP_PAGES; st <= (hi - 1) / STEP_PAGES; st++) {
		if (zone_step_is_mapped(z, st))
			continue;
		if (map_step_locked(z, st, false) != 0)
			return false;
		init_step_zone(z, st * STEP_PAGES);
		zone_step_set_mapped(z, st, true);
		z->nr_unmapped_steps--;
	}
	return true;
}

/* --- boot ----------------------------------------------------------------- */

/*
 * Watermarks from the memory limit (zone_limit.c), shared out between the
 * nodes; the retained budget of dirty free pages starts at RETAIN_MIN and
 * grows with refaults up to a ceiling that scales with the limit
 * (zone_purge.c).
 */
static void
set_default_watermarks(struct zone *z)
{
	uint64_t pages = z->span >> ZP_PAGE_SHIFT;
	uint64_t limit = zone_limit_pages() / nr_nodes;

	z->retain_min = z->retain = RETAIN_MIN;
	z->retain_max = ZP_MAX(zone_limit_retain_max() / nr_nodes,
			       RETAIN_MIN);
	/* A node's share of the limit's watermarks: min keeps its last
	 * pages from other nodes' fallback (and never more than a 32nd of
	 * a small zone). */
	z->wmark_min = ZP_MIN(ZP_MAX(limit / 128, (uint64_t)64),
			      ZP_MAX(pages / 32, (uint64_t)64));
	z->wmark_low = ZP_MAX(limit / 64, z->wmark_min);
	z->wmark_high = ZP_MAX(limit / 32, z->wmark_low);
	for (unsigned t = 0; t < ZONE_NR_TYPES; t++)
		z->lowmem_reserve[t] = 0;
	/* NORMAL requests may take half of LOW32, never the rest. */
	if (z->type == ZONE_LOW32)
		z->lowmem_reserve[ZONE_NORMAL] = pages / 2;
}

/* Where a zone lies: its pages, its descriptors (both in a window no one
 * maps for us), and its tables. */
struct zone_place {
	uintptr_t base;
	size_t span;
	struct page *descs;
	uint64_t *facts;		/* NULL: none (LOW32) */
	struct page_bits *bits;		/* NULL: none (LOW32) */
	void *steps;			/* the side table (page.h) */
	size_t steps_bytes;
	struct page *big;		/* big-block entries (buddy.h) */
	bool first;			/* zone 0's first tables in its page */
};

static size_t
nr_big(size_t span)
{
	return span >> (ZP_PAGE_SHIFT + BUDDY_BIG_ORDER);
}

/* The side table, a byte per step: a fresh mapping reads as zero
 * (REGION_FREE, unmapped, no hole) and only the part a zone uses becomes
 * resident, a page for the first 8 GiB. The big-block entries: a window
 * the zone maps as it grows, as it does its descriptors (a page of
 * entries per 16 MiB). Zone 0's first ones of both are in its page
 * (zone_priv.h). Inlined: at boot it runs in boot's text, which leaves
 * the process after (a call out of it would fault in the text that
 * programs never run). */
static zp_always_inline int
map_tables(struct zone_place *pl, bool first)
{
	size_t nsteps = pl->span / ZP_COMMIT_STEP;
	int err;

	pl->steps_bytes = zp_align_up(nsteps, ZP_PAGE_SIZE);
	pl->first = first && nsteps <= ZONE_FIRST_STEPS;
	err = os_reserve_window(BIG_BYTES(pl->span >> ZP_PAGE_SHIFT),
				ZP_PAGE_SIZE, 0, (void **)&pl->big);
	if (err)
		return err;
	if (pl->first) {
		pl->steps = zone_first.steps;
		return 0;
	}
	return os_map(pl->steps_bytes, NULL, &pl->steps);
}

/* A later boot (tests) finds zone 0's tables as zero as at the first: no
 * byte past the zone's committed steps was written. */
static void
unmap_tables(struct zone *z)
{
	if (z->big_committed)
		os_unmap(z->big, z->big_committed);
	if (z->steps != zone_first.steps) {
		os_unmap(z->steps, z->steps_bytes);
		return;
	}
	memset(zone_first.big, 0, sizeof(zone_first.big));
	memset(zone_first.steps, 0,
	       zp_align_up(zone_committed_pages(z), STEP_PAGES) / STEP_PAGES);
}

static size_t
descs_bytes(size_t span)
{
	return DESC_BYTES(span >> ZP_PAGE_SHIFT);
}

static zp_boot_text struct zone *
zone_create(const struct zone_place *pl, enum zone_type type, unsigned node,
	    bool bind)
{
	struct zone *z = zone_of(nr_zones);

	*z = (struct zone){ .base = pl->base, .span = pl->span,
			    .descs = pl->descs, .facts = pl->facts,
			    .bits = pl->bits,
			    .steps = pl->steps,
			    .steps_bytes = pl->steps_bytes,
			    .big = pl->big,
			    .is_bound = bind, .id = nr_zones, .node = node,
			    .type = type };
	zp_lock_init(&z->lock);
	zp_lock_init(&z->purge_lock);
	buddy_init(&z->buddy, pl->descs, pl->steps, pl->big,
		   nr_big(pl->span),
		   pl->first ? zone_first.big : NULL,
		   pl->first ? ZONE_FIRST_BIG : 0);
	set_default_watermarks(z);
	zone_spans[nr_zones] = (struct zone_span){ .base = pl->base,
						   .descs = pl->descs,
						   .steps = z->steps };
	__atomic_store_n(&nr_zones, nr_zones + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&nr_zone_spans, nr_zones, __ATOMIC_RELEASE);
	return z;
}

/* Unmaps what the zones mapped (tests boot again): only mapped steps,
 * since another mapping may have landed in a step given back. */
static void
zones_teardown(void)
{
	__atomic_store_n(&nr_zone_spans, 0, __ATOMIC_RELEASE);
	zp_arena.nr_zones = 0;
	__atomic_store_n(&zp_arena.committed0, 0, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < nr_zones; i++) {
		struct zone *z = zone_of(i);
		size_t steps = zone_committed_pages(z) / STEP_PAGES;

		for (size_t st = 0; st < steps; st++)
			if (zone_step_is_mapped(z, st))
				os_unmap((void *)(z->base +
						  st * ZP_COMMIT_STEP),
					 ZP_COMMIT_STEP);
		if (z->descs_committed)
			os_unmap(z->descs, z->descs_committed);
		if (z->facts_committed)
			os_unmap(z->facts, z->facts_committed);
		if (z->bits_committed)
			os_unmap(z->bits, z->bits_committed);
		unmap_tables(z);
	}
	zp_arena = (struct zp_arena){ 0 };
	nr_zones = 0;
	low32_zone = NULL;
}

/*
 * The arena's window: facts words, descriptors and bits of every zone
 * first (a zone's pages, their descriptors, facts and bits stay in the
 * same order, so one subtraction and one shift find any of them), then
 * the zones, each span bytes and aligned to the largest buddy block.
 */
static int
arena_place(size_t span, unsigned nodes)
{
	size_t total = span * nodes;
	size_t fbytes = zp_align_up(FACT_BYTES(total >> ZP_PAGE_SHIFT),
				    ZP_MAX_BLOCK);
	size_t dbytes = zp_align_up(descs_bytes(total), ZP_MAX_BLOCK);
	size_t bbytes = zp_align_up(BITS_BYTES(total >> ZP_PAGE_SHIFT),
				    ZP_MAX_BLOCK);
	void *w;
	int r = os_reserve_window(fbytes + dbytes + bbytes + total,
				  ZP_MAX_BLOCK, 0, &w);

	if (r != 0)
		return r;
	zp_arena.facts = w;
	zp_arena.descs = (struct page *)((char *)w + fbytes);
	zp_arena.bits = (struct page_bits *)((char *)w + fbytes + dbytes);
	zp_arena.base = (uintptr_t)w + fbytes + dbytes + bbytes;
	zp_arena.bits_bias = (uintptr_t)zp_arena.bits - zp_arena.base / 64;
	zp_arena.zone_shift = zp_log2_floor(span);
	return 0;
}

static size_t
span_of(size_t want)
{
	size_t span = ZP_MAX(want, ZONE_MIN_SPAN);

	/* A power of two, so that a zone is found by a shift. */
	return (size_t)1 << zp_log2_floor(span);
}

zp_boot_text zp_cold int
zone_boot(const struct zone_config *cfg)
{
	size_t normal = cfg->normal_reserve ? cfg->normal_reserve
					    : ZONE_DEFAULT_SPAN;
	unsigned nodes;

	zones_teardown();
	zone_purge_reset();
	zone_limit_boot(cfg->memory_limit);
	is_fake_numa = cfg->fake_numa > 1;
	nodes = cfg->fake_numa ? cfg->fake_numa
	      : cfg->nr_nodes ? cfg->nr_nodes : os_numa_node_count();
	nodes = ZP_MIN(ZP_MAX(nodes, 1u), (unsigned)ZP_MAX_ZONES - 1);
	if (is_fake_numa)
		normal /= nodes;
	normal = span_of(normal);
	nr_nodes = nodes;
	if (arena_place(normal, nodes) != 0)
		return ENOMEM;
	for (unsigned n = 0; n < nodes; n++) {
		struct zone_place pl = {
			.base = zp_arena.base + n * normal,
			.span = normal,
			.descs = zp_arena.descs + ((n * normal) >>
						   ZP_PAGE_SHIFT),
			.facts = zp_arena.facts + ((n * normal) >>
						   ZP_PAGE_SHIFT),
			.bits = zp_arena.bits + ((n * normal) >>
						 ZP_PAGE_SHIFT),
		};

		/* A node whose tables cannot be had borrows node 0's zone;
		 * its part of the window stays unused. */
		if (map_tables(&pl, n == 0) != 0) {
			if (n == 0)
				return ENOMEM;
			normal_of_node[n] = normal_of_node[0];
			continue;
		}
		normal_of_node[n] = zone_create(&pl, ZONE_NORMAL, n,
						!is_fake_numa && nodes > 1);
		normal_of_node[n]->purge_delay_ns = cfg->purge_delay_ns;
	}
	/* Arena zones have ids 0 .. nodes - 1 only if none borrowed. */
	zp_arena.nr_zones = nr_zones;
	low32_span = cfg->low32_reserve ? span_of(cfg->low32_reserve) : 0;
	low32_purge_delay_ns = cfg->purge_delay_ns;
	huge_from = cfg->huge_from;
	pcp_boot(cfg->pcp_high, cfg->pcp_batch, cfg->pcp_fraction);
	return 0;
}

/* The LOW32 zone, created on first use; NULL when there is none or its
 * window cannot be found below 4 GiB. */
static struct zone *
low32_get(bool create)
{
	struct zone *z = __atomic_load_n(&low32_zone, __ATOMIC_ACQUIRE);
	struct zone_place pl = { .span = low32_span };
	size_t dbytes = zp_align_up(descs_bytes(pl.span), ZP_MAX_BLOCK);
	void *w;

	if (z || !create || !low32_span)
		return z;
	zp_lock(&low32_lock);
	z = low32_zone;
	if (!z && nr_zones < ZP_MAX_ZONES &&
	    os_reserve_window(dbytes + pl.span, ZP_MAX_BLOCK,
			      OS_RESERVE_LOW32, &w) == 0) {
		pl.descs = w;
		pl.base = (uintptr_t)w + dbytes;
		if (map_tables(&pl, false) == 0) {
			z = zone_create(&pl, ZONE_LOW32, 0, false);
			z->purge_delay_ns = low32_purge_delay_ns;
			__atomic_store_n(&low32_zone, z, __ATOMIC_RELEASE);
		}
	}
	if (!z)
		low32_span = 0;	/* no window: don't look again */
	zp_unlock(&low32_lock);
	return z;
}

unsigned
zone_local_node(void)
{
	/* getcpu is a real system call here (raw, not the vDSO): skip it
	 * when there is only one node to choose from. */
	if (nr_nodes == 1)
		return 0;
	if (is_fake_numa)
		return (unsigned)os_gettid() % nr_nodes;
	return os_current_node() % nr_nodes;
}

struct zone *
zone_normal_of(unsigned node)
{
	return nr_zones ? normal_of_node[node % nr_nodes] : NULL;
}

struct page *
page_lookup(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	unsigned n = __atomic_load_n(&nr_zone_spans, __ATOMIC_ACQUIRE);

	for (unsigned i = 0; i < n; i++) {
		const struct zone_span *s = &zone_spans[i];
		uintptr_t off = a - s->base;

		if (off < __atomic_load_n(&s->committed, __ATOMIC_ACQUIRE))
			return span_step_is_mapped(s, off)
				       ? &s->descs[off >> ZP_PAGE_SHIFT]
				       : NULL;
	}
	return NULL;
}

/* --- growth --------------------------------------------------------------- */

/*
 * The descriptors of a step about to be committed lie in memory that no
 * one has written (the zone only grows), so they read as zero, and a zone
 * 0 descriptor starts as all zero. Writing them anyway would make every
 * descriptor page resident (64 bytes per 4 KiB page, 96 KiB for a small
 * program's first 6 MiB) before any of those pages is used.
 */
static void
init_step_descs(struct zone *z, size_t first)
{
	for (size_t i = first; i < first + STEP_PAGES && ZP_IS_DEBUG; i++)
		zp_assert(z->descs[i].kind == PAGE_UNUSED &&
			  z->descs[i].zone_id == 0);
	init_step_zone(z, first);
}

/* Maps hole step st again and frees it into the lists, known zero.
 * False when the system refuses the map. */
static bool
hole_fill_locked(struct zone *z, size_t st, bool huge)
{
	size_t first = st * STEP_PAGES;

	zp_assert(step_flag(z, st, STEP_HOLE) && !zone_step_is_mapped(z, st));
	if (map_step_locked(z, st, huge) != 0) {
		z->nr_grow_failed++;
		return false;
	}
	/* Its descriptors were dropped: they read zero, as at growth. */
	init_step_zone(z, first);
	step_flag_set(z, st, STEP_HOLE, false);
	zone_step_set_mapped(z, st, true);
	z->nr_hole_steps--;
	z->nr_unmapped_steps--;
	/* Stamped with the hole's making, so that taking it back within a
	 * purge delay counts as a refault (zone_note_reuse_locked). */
	buddy_free_range(&z->buddy, first, first + STEP_PAGES, /* zero */ true,
			 z->last_hole_ns, /* head */ false);
	return true;
}

/* The lowest hole, if any: growth reuses given-back address space before
 * it maps new. */
static bool
fill_a_hole_locked(struct zone *z, bool huge)
{
	size_t steps = zone_committed_pages(z) / STEP_PAGES;

	if (z->nr_hole_steps == 0)
		return false;
	for (size_t st = 0; st < steps; st++)
		if (step_flag(z, st, STEP_HOLE))
			return hole_fill_locked(z, st, huge);
	return false;
}

/* Holes in the steps of pages [lo, hi) become free blocks again (an
 * exact block growing in place into them). */
static bool
fill_holes_in_locked(struct zone *z, size_t lo, size_t hi)
{
	if (z->nr_hole_steps == 0 || lo >= hi)
		return true;
	for (size_t st = lo / STEP_PAGES; st <= (hi - 1) / STEP_PAGES; st++)
		if (step_flag(z, st, STEP_HOLE) &&
		    !hole_fill_locked(z, st, false))
			return false;
	return true;
}

/* Makes the first need bytes of a per-page table read-write (none for a
 * NULL table: LOW32 has no facts or bits). */
static int
commit_table(struct zone *z, void *table, size_t *committed, size_t need)
{
	if (table == NULL || need <= *committed)
		return 0;
	if (map_range(z, (char *)table + *committed, need - *committed) != 0)
		return -1;
	*committed = need;
	return 0;
}

/* Commits one more step (descriptors first), publishes it and frees it
 * into the buddy lists as known-zero; a hole, if there is one, instead.
 * Nothing changes on failure. For blocks of regions of type. */
static bool
grow_locked(struct zone *z, enum region_type type)
{
	size_t pages = zone_committed_pages(z);
	size_t bytes = pages << ZP_PAGE_SHIFT;
	size_t need = DESC_BYTES(pages + STEP_PAGES);
	bool huge = wants_huge_step_locked(z, type);

	if (fill_a_hole_locked(z, huge))
		return true;
	if (bytes + ZP_COMMIT_STEP > z->span)
		return false;
	if (commit_table(z, z->descs, &z->descs_committed, need) != 0 ||
	    commit_table(z, z->facts, &z->facts_committed,
			 FACT_BYTES(pages + STEP_PAGES)) != 0 ||
	    commit_table(z, z->bits, &z->bits_committed,
			 BITS_BYTES(pages + STEP_PAGES)) != 0 ||
	    commit_table(z, z->big, &z->big_committed,
			 BIG_BYTES(pages + STEP_PAGES)) != 0)
		goto fail;
	if (map_step_locked(z, pages / STEP_PAGES, huge) != 0)
		goto fail;
	zone_step_set_mapped(z, pages / STEP_PAGES, true);
	init_step_descs(z, pages);
	z->buddy.nr_pages = pages + STEP_PAGES;
	__atomic_store_n(&zone_spans[z->id].committed, bytes + ZP_COMMIT_STEP,
			 __ATOMIC_RELEASE);
	if (z->base == zp_arena.base)
		__atomic_store_n(&zp_arena.committed0, bytes + ZP_COMMIT_STEP,
				 __ATOMIC_RELEASE);
	buddy_free_range(&z->buddy, pages, pages + STEP_PAGES,
			 /* zero */ true, 0, /* head */ false);
	z->nr_grow_steps++;
	zone_limit_sample_locked();
	return true;
fail:
	z->nr_grow_failed++;
	return false;
}

/*
 * Blocks group by size in typed regions (see buddy.h); only a zone that
 * cannot grow mixes them, and a zone that has not outgrown its first
 * region. There, grouping has nothing to keep whole (a program this small
 * has no large block waiting for a free region), and a region per type
 * costs a small program the split chain of each: blocks of 512, 256, 128
 * and 64 pages whose heads lie on four pages of descriptors (python3's
 * start-up touched 11 pages of them, 44 KiB, for 172 pages in use: a
 * second region held its heap chunks and one 128 KiB block).
 */
static bool
mixes_types(const struct zone *z)
{
	return zone_committed_pages(z) <= ((size_t)1 << ZP_MAX_ORDER);
}

static struct page *
alloc_locked(struct zone *z, unsigned order, unsigned gfp)
{
	enum region_type type = gfp & GFP_SMALL ? REGION_SMALL
						: buddy_region_type(order);
	struct page *pg;
	bool grew = false;
	size_t idx;

	while (!(pg = buddy_alloc_typed(&z->buddy, order, type,
					mixes_types(z)))) {
		if (!grow_locked(z, type))
			break;
		grew = true;
	}
	if (!pg && !(pg = buddy_alloc_typed(&z->buddy, order, type, true)))
		return NULL;
	if ((pg->flags & PG_ZERO) && pg->lru.freed_ns)
		zone_note_reuse_locked(z, pg);
	idx = buddy_index(&z->buddy, pg);
	if (!map_pages_locked(z, idx, idx + ((size_t)1 << order))) {
		/* Out of address space: the block goes back untouched. */
		buddy_free(&z->buddy, pg, order, pg->flags & PG_ZERO,
			   pg->lru.freed_ns);
		z->nr_grow_failed++;
		return NULL;
	}
	z->nr_alloc++;
	/* New pages came in while free ones may be kept for the background
	 * pass (pg, and any block the caller took before, is off the lists,
	 * so the purge may drop the lock). */
	if (zp_unlikely(grew) &&
	    (zone_timer_alive(os_now_ns()) ||
	     __atomic_load_n(&zone_outside_kept_pages, __ATOMIC_RELAXED)))
		zone_purge_after_grow_locked(z);
	return pg;
}

/* Our own accounting refuses only what a reserve keeps back: whether
 * there is memory at all, the system says when the zone grows. */
static bool
watermark_ok(const struct zone *z, unsigned order, enum zone_type type,
	     bool foreign)
{
	uint64_t reserve = z->lowmem_reserve[type] +
			   (foreign ? z->wmark_min : 0);

	return reserve == 0 ||
	       avail_pages(z) >= reserve + ((uint64_t)1 << order);
}

/* --- allocation ----------------------------------------------------------- */

void
zone_mark_block(struct page *head, unsigned order, enum page_kind kind)
{
	size_t n = (size_t)1 << order;

	head->kind = (uint8_t)kind;
	head->order = (uint8_t)order;
	head->head_off = 0;
	for (size_t i = 1; i < n; i++) {
		head[i].kind = PAGE_TAIL;
		head[i].head_off = (uint32_t)i;
	}
}

static unsigned
gfp_node(unsigned gfp, const struct pcp_set *pcp)
{
	unsigned n = gfp >> GFP_NODE_SHIFT;

	if (n)
		return (n - 1) % nr_nodes;
	return pcp ? pcp->node % nr_nodes : zone_local_node();
}

/* The zones a request may use, best first. */
static unsigned
zonelist_build(unsigned node, unsigned gfp, struct zone **out)
{
	unsigned n = 0;

	if (gfp & GFP_LOW32) {
		struct zone *low = low32_get(/* create */ true);

		if (low)
			out[n++] = low;
		return n;
	}
	out[n++] = normal_of_node[node];
	for (unsigned j = 1; j < nr_nodes && !(gfp & GFP_NODE_EXACT); j++) {
		struct zone *z = normal_of_node[(node + j) % nr_nodes];
		bool dup = false;

		for (unsigned i = 0; i < n; i++)
			dup |= out[i] == z;
		if (!dup)
			out[n++] = z;
	}
	struct zone *low = gfp & GFP_ARENA ? NULL
					   : low32_get(/* create */ false);

	if (low && (!(gfp & GFP_NODE_EXACT) || low->node == node))
		out[n++] = low;
	return n;
}

static struct page *
finish_alloc(struct page *pg, unsigned order, enum page_kind kind, bool *zero)
{
	if (zero)
		*zero = pg->flags & PG_ZERO;
	pg->flags = 0;
	zone_mark_block(pg, order, kind);
	return pg;
}

static bool
pcp_serves(const struct pcp_set *pcp, unsigned order, unsigned gfp,
	   unsigned node)
{
	return pcp && order <= PCP_MAX_ORDER && !(gfp & GFP_LOW32) &&
	       nr_zones && pcp->zone_id == normal_of_node[node]->id;
}

struct page *
zone_alloc_pages_slow(struct pcp_set *pcp, unsigned order, unsigned gfp,
		      enum page_kind kind, bool *zero)
{
	struct zone *list[ZP_MAX_ZONES];
	enum zone_type type = gfp & GFP_LOW32 ? ZONE_LOW32 : ZONE_NORMAL;
	unsigned node, n;
	struct page *pg;

	zp_assert(page_kind_is_allocated(kind));
	if (order > ZP_MAX_ORDER || nr_zones == 0)
		return NULL;
	node = gfp_node(gfp, pcp);
	if (pcp_serves(pcp, order, gfp, node)) {
		pg = pcp_take(pcp, order);
		if (!pg)
			pg = pcp_alloc_slow(pcp, order);
		if (pg)
			return finish_alloc(pg, order, kind, zero);
	}
	n = zonelist_build(node, gfp, list);
	for (unsigned i = 0; i < n; i++) {
		struct zone *z = list[i];

		zp_lock(&z->lock);
		pg = NULL;
		if (watermark_ok(z, order, type, z->node != node))
			pg = alloc_locked(z, order, gfp);
		if (pg && i > 0)
			z->nr_fallback_in++;
		zp_unlock(&z->lock);
		if (pg) {
			zone_limit_react();
			return finish_alloc(pg, order, kind, zero);
		}
	}
	if (n)
		__atomic_fetch_add(&list[0]->nr_failed, 1, __ATOMIC_RELAXED);
	zone_limit_react();
	return NULL;
}

unsigned
zone_bulk_alloc(struct zone *z, unsigned order, unsigned n,
		struct page **list)
{
	struct page *head = NULL, *pg;
	unsigned got = 0;

	zp_lock(&z->lock);
	while (got < n && watermark_ok(z, order, ZONE_NORMAL, false) &&
	       (pg = alloc_locked(z, order, 0)) != NULL) {
		pg->lru.next = head;
		head = pg;
		got++;
	}
	zp_unlock(&z->lock);
	/* Our blocks now: no neighbour's merge looks at their tails. */
	for (pg = head; pg; pg = pg->lru.next)
		zone_mark_block(pg, order, PAGE_PCP);
	*list = head;
	zone_limit_react();
	return got;
}

/* --- freeing -------------------------------------------------------------- */

void
zone_bulk_free(struct zone *z, unsigned order, struct page *list)
{
	uint64_t now = os_now_ns();

	zp_lock(&z->lock);
	while (list) {
		struct page *next = list->lru.next;

		bool zero = list->flags & PG_ZERO;

		/* A known-zero block in a page cache was never used. */
		buddy_free(&z->buddy, list, order, zero, zero ? 0 : now);
		z->nr_free_calls++;
		list = next;
	}
	zone_purge_check_locked(z, now);
	zp_unlock(&z->lock);
}

static zp_cold void
bad_free(const char *who, struct page *head)
{
	unsigned k = head->kind;

	log_fatal("%s(): %p is not an allocated block (kind %u%s)", who,
		  page_address(head), k,
		  k == PAGE_BUDDY || k == PAGE_PCP ? ", double free"
		  : k == PAGE_TAIL		   ? ", interior page"
						   : "");
}

/* Frees pages [lo, hi) of z, as aligned blocks, in one lock hold. head:
 * lo is the head of the block the caller held (buddy_free_range). */
static void
free_range(struct zone *z, size_t lo, size_t hi, bool zero, bool head)
{
	uint64_t now = os_now_ns();

	zp_lock(&z->lock);
	/* Known zero here means never used (the tail of a fresh block). */
	buddy_free_range(&z->buddy, lo, hi, zero, zero ? 0 : now, head);
	z->nr_free_calls++;
	zone_purge_check_locked(z, now);
	zp_unlock(&z->lock);
}

static bool
pcp_owns(const struct pcp_set *pcp, const struct page *head, unsigned order)
{
	return pcp && head->zone_id == pcp->zone_id &&
	       order <= PCP_MAX_ORDER && pcp->lists[order].high > 0;
}

void
zone_free_pages_slow(struct pcp_set *pcp, struct page *head)
{
	struct zone *z = zone_of(head->zone_id);
	size_t idx;

	if (!page_kind_is_allocated(head->kind))
		bad_free("zone_free_pages", head);
	if (head->flags & PG_EXACT)
		log_fatal("zone_free_pages(): %p is an exact block, free it "
			  "with zone_free_exact", page_address(head));
	if (pcp_owns(pcp, head, head->order)) {
		pcp_free_slow(pcp, head);
		return;
	}
	idx = buddy_index(&z->buddy, head);
	free_range(z, idx, idx + ((size_t)1 << head->order), false, true);
}

/* --- exact blocks --------------------------------------------------------- */

/*
 * Gives back [lo, hi) of an exact block of the given order: small pieces
 * of the thread's own zone to its cache, the rest to the zone in one lock
 * hold. Pieces of a block larger than the cache's orders always go to the
 * zone: cached, they would keep the large block from merging back whole,
 * and a thread's cache holds pieces of dozens of such blocks, so the zone
 * would have to grow for every large request.
 */
static void
free_exact_range(struct pcp_set *pcp, struct zone *z, unsigned order,
		 size_t lo, size_t hi, bool zero, bool head)
{
	size_t zlo = hi;

	if (order > PCP_MAX_ORDER)
		pcp = NULL;

	for (size_t i = lo; i < hi;) {
		size_t align = i | ((size_t)1 << ZP_MAX_ORDER);
		unsigned k = ZP_MIN((unsigned)__builtin_ctzl(align),
				    zp_log2_floor(hi - i));
		struct page *pg = &z->descs[i];

		if (zlo == hi && pcp_owns(pcp, pg, k)) {
			zone_mark_block(pg, k, PAGE_PCP);
			pg->flags = zero ? PG_ZERO : 0;
			pcp_free_slow(pcp, pg);
		} else if (zlo == hi) {
			zlo = i;
		}
		i += (size_t)1 << k;
	}
	if (zlo < hi)
		free_range(z, zlo, hi, zero, head && zlo == lo);
}

struct page *
zone_alloc_exact(struct pcp_set *pcp, size_t npages, unsigned gfp,
		 enum page_kind kind, bool *zero)
{
	unsigned order;
	struct page *pg;
	bool z;

	if (npages == 0 || npages > ((size_t)1 << ZP_MAX_ORDER))
		return NULL;
	order = zp_order_ceil(npages);
	pg = zone_alloc_pages(pcp, order, gfp, kind, &z);
	if (!pg)
		return NULL;
	pg->npages = npages;
	if (zero)
		*zero = z;
	if (npages == ((size_t)1 << order))
		return pg;
	pg->flags = PG_EXACT;
	size_t idx = buddy_index(&zone_of(pg->zone_id)->buddy, pg);

	free_exact_range(pcp, zone_of(pg->zone_id), order, idx + npages,
			 idx + ((size_t)1 << order), z, false);
	return pg;
}

static size_t
exact_npages(const struct page *head)
{
	return head->flags & PG_EXACT ? head->npages
				      : (size_t)1 << head->order;
}

void
zone_free_exact(struct pcp_set *pcp, struct page *head)
{
	struct zone *z = zone_of(head->zone_id);
	size_t idx = buddy_index(&z->buddy, head);

	size_t n = exact_npages(head);

	if (!page_kind_is_allocated(head->kind))
		bad_free("zone_free_exact", head);
	head->flags = 0;
	free_exact_range(pcp, z, zp_order_ceil(n), idx, idx + n, false, true);
}

/* Takes pages [lo, hi) out of the free lists for the exact block at head;
 * the caller checked they are all free. Returns whether all were zero. */
static bool
take_range_locked(struct zone *z, struct page *head, size_t lo, size_t hi)
{
	struct buddy *b = &z->buddy;
	size_t hidx = buddy_index(b, head);
	bool zero = true;

	while (lo < hi) {
		struct page *blk = buddy_find_free(b, lo);
		size_t bidx = buddy_block_index(b, blk);
		size_t end = bidx + ((size_t)1 << blk->order);
		bool bz = blk->flags & PG_ZERO;
		uint64_t when = blk->lru.freed_ns;

		zp_assert(bidx == lo);
		zero &= bz;
		buddy_remove(b, blk);
		for (size_t i = lo; i < ZP_MIN(end, hi); i++) {
			b->descs[i].kind = PAGE_TAIL;
			b->descs[i].head_off = (uint32_t)(i - hidx);
		}
		if (end > hi)
			buddy_free_range(b, hi, end, bz, when, false);
		lo = end;
	}
	return zero;
}

static bool
range_is_free_locked(const struct zone *z, size_t lo, size_t hi)
{
	while (lo < hi) {
		const struct page *blk = buddy_find_free(&z->buddy, lo);

		if (!blk || buddy_block_index(&z->buddy, blk) != lo)
			return false;
		lo += (size_t)1 << blk->order;
	}
	return true;
}

bool
zone_resize_exact_try(struct page *head, size_t new_npages, bool *zero)
{
	struct zone *z = zone_of(head->zone_id);
	size_t idx = buddy_index(&z->buddy, head);
	size_t cur = exact_npages(head);
	bool grown_zero = false, ok = true;

	if (!page_kind_is_allocated(head->kind))
		bad_free("zone_resize_exact_try", head);
	if (new_npages == 0 || new_npages > ((size_t)1 << ZP_MAX_ORDER))
		return false;
	if (new_npages < cur) {
		free_range(z, idx + new_npages, idx + cur, false, false);
	} else if (new_npages > cur) {
		zp_lock(&z->lock);
		ok = idx + new_npages <= zone_committed_pages(z) &&
		     fill_holes_in_locked(z, idx + cur, idx + new_npages) &&
		     range_is_free_locked(z, idx + cur, idx + new_npages) &&
		     map_pages_locked(z, idx + cur, idx + new_npages);
		if (ok)
			grown_zero = take_range_locked(z, head, idx + cur,
						       idx + new_npages);
		zp_unlock(&z->lock);
	}
	if (!ok)
		return false;
	head->npages = new_npages;
	head->order = (uint8_t)zp_order_ceil(new_npages);
	head->flags = PG_EXACT;
	if (zero)
		*zero = grown_zero;
	return true;
}

/* --- tuning --------------------------------------------------------------- */

int
zone_set_retain(unsigned idx, uint64_t min, uint64_t max)
{
	if (idx >= nr_zones || min > max)
		return -1;
	struct zone *z = zone_of(idx);

	zp_lock(&z->lock);
	z->retain_min = z->retain = min;
	z->retain_max = max;
	z->small_held = 0;
	zp_unlock(&z->lock);
	return 0;
}

int
zone_set_lowmem_reserve(unsigned idx, enum zone_type type, uint64_t pages)
{
	if (idx >= nr_zones || (unsigned)type >= ZONE_NR_TYPES)
		return -1;
	struct zone *z = zone_of(idx);

	zp_lock(&z->lock);
	z->lowmem_reserve[type] = pages;
	zp_unlock(&z->lock);
	return 0;
}

/* --- fork ----------------------------------------------------------------- */

/* A purge drops zone->lock mid-way, so purge_lock is taken first: the
 * child never inherits blocks that are off the lists. */
void
zone_prefork(void)
{
	zp_lock_prefork(&low32_lock);
	for (unsigned i = 0; i < nr_zones; i++) {
		zp_lock_prefork(&zone_of(i)->purge_lock);
		zp_lock_prefork(&zone_of(i)->lock);
	}
	zone_limit_prefork();	/* taken under a zone's lock: after them */
}

void
zone_postfork_parent(void)
{
	zone_limit_postfork_parent();
	for (unsigned i = nr_zones; i-- > 0;) {
		zp_lock_postfork_parent(&zone_of(i)->lock);
		zp_lock_postfork_parent(&zone_of(i)->purge_lock);
	}
	zp_lock_postfork_parent(&low32_lock);
}

void
zone_postfork_child(void)
{
	for (unsigned i = 0; i < nr_zones; i++) {
		zp_lock_postfork_child(&zone_of(i)->lock);
		zp_lock_postfork_child(&zone_of(i)->purge_lock);
	}
	zp_lock_postfork_child(&low32_lock);
	zone_limit_postfork_child();
	pcp_postfork_child();
	/* The background thread is the parent's. */
	__atomic_store_n(&zone_timer_until_ns, 0, __ATOMIC_RELAXED);
}

