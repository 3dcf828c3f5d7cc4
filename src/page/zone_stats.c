/*
 * zone_stats.c - what the zones report: /proc/buddyinfo and
 * /proc/zoneinfo style text, JSON, struct zp_zone_info, and the full
 * consistency walk for tests and debug builds.
 * Owns:  nothing; reads struct zone.
 * Locks: each zone's lock while reading it; zone_check_all also takes the
 *        zone's purge_lock first, so no blocks are off the lists.
 * Path:  zp_stats_print -> zone_print_* -> zone_info
 */
#include "base/log.h"
#include "os/os.h"
#include "page/zone_priv.h"
#include "zpmalloc.h"

/* --- consistency ---------------------------------------------------------- */

/* The counts of unmapped steps and holes match the maps, every hole is
 * unmapped, and every other unmapped step lies inside a free block. */
static bool
check_steps(const struct zone *z, const char *name)
{
	uint64_t unmapped = 0, holes = 0;

	for (size_t st = 0; st < zone_committed_pages(z) / STEP_PAGES; st++) {
		bool hole = step_flag(z, st, STEP_HOLE);
		bool mapped = zone_step_is_mapped(z, st);
		const struct page *blk;

		if (hole && mapped) {
			log_msg("%s: hole %zu is mapped", name, st);
			return false;
		}
		holes += hole;
		if (mapped)
			continue;
		unmapped++;
		if (hole)
			continue;
		blk = buddy_find_free(&z->buddy, st * STEP_PAGES);
		if (!blk || blk->order < STEP_ORDER) {
			log_msg("%s: step %zu is unmapped but not free", name,
				st);
			return false;
		}
	}
	if (unmapped != z->nr_unmapped_steps || holes != z->nr_hole_steps) {
		log_msg("%s: %lu steps unmapped, %lu holes, counted %lu, %lu",
			name, (unsigned long)unmapped, (unsigned long)holes,
			(unsigned long)z->nr_unmapped_steps,
			(unsigned long)z->nr_hole_steps);
		return false;
	}
	return true;
}

static bool
zone_check(struct zone *z)
{
	char name[32];
	size_t committed = __atomic_load_n(&zone_spans[z->id].committed,
					   __ATOMIC_ACQUIRE);

	fmt_buf(name, sizeof(name), "zone %u (node %u)", z->id, z->node);
	if (committed != zone_committed_pages(z) << ZP_PAGE_SHIFT) {
		log_msg("%s: span says %zu bytes, buddy %zu pages", name,
			committed, zone_committed_pages(z));
		return false;
	}
	for (size_t i = 0; i < zone_committed_pages(z); i++) {
		/* A given-back step's descriptors read zero, but its head's. */
		if (!zone_step_is_mapped(z, i / STEP_PAGES) &&
		    z->descs[i].kind != PAGE_BUDDY)
			continue;
		if (z->descs[i].zone_id != z->id) {
			log_msg("%s: page %zu has zone_id %u", name, i,
				z->descs[i].zone_id);
			return false;
		}
	}
	if (!check_steps(z, name))
		return false;
	return buddy_check(&z->buddy, name);
}

bool
zone_check_all(void)
{
	bool ok = true;

	for (unsigned i = 0; i < nr_zones && ok; i++) {
		struct zone *z = zone_of(i);

		zp_lock(&z->purge_lock);
		zp_lock(&z->lock);
		ok = zone_check(z);
		zp_unlock(&z->lock);
		zp_unlock(&z->purge_lock);
	}
	return ok;
}

/* --- statistics ----------------------------------------------------------- */

unsigned
zone_count(void)
{
	return nr_zones;
}

static const char *
zone_name(const struct zone *z)
{
	return z->type == ZONE_LOW32 ? "Low32" : "Normal";
}

/* Holes are free blocks off the lists: counted as the blocks the lists
 * would hold, buddy pairs of steps at the top order. */
static void
count_holes_locked(const struct zone *z, uint64_t *by_order)
{
	const size_t pair = (size_t)1 << (ZP_MAX_ORDER - STEP_ORDER);
	size_t steps = zone_committed_pages(z) / STEP_PAGES;

	_Static_assert(ZP_MAX_ORDER == STEP_ORDER + 1, "two steps a block");
	for (size_t st = 0; z->nr_hole_steps && st < steps; st += pair) {
		bool lo = step_flag(z, st, STEP_HOLE);
		bool hi = st + 1 < steps && step_flag(z, st + 1, STEP_HOLE);

		if (lo && hi)
			by_order[ZP_MAX_ORDER]++;
		else if (lo || hi)
			by_order[STEP_ORDER]++;
	}
}

int
zone_info(unsigned idx, struct zp_zone_info *out)
{
	if (idx >= nr_zones)
		return -1;
	struct zone *z = zone_of(idx);

	*out = (struct zp_zone_info){ .node = (int)z->node,
				      .base = z->base,
				      .span_bytes = z->span };
	fmt_buf(out->name, sizeof(out->name), "%s", zone_name(z));
	zp_lock(&z->lock);
	/* Given-back steps are free pages but not committed. */
	out->grown_bytes = zone_committed_pages(z) << ZP_PAGE_SHIFT;
	out->committed_bytes = (zone_committed_pages(z) -
				z->nr_unmapped_steps * STEP_PAGES)
			       << ZP_PAGE_SHIFT;
	out->nr_free_pages = z->buddy.nr_free + z->nr_hole_steps * STEP_PAGES;
	out->nr_free_zero_pages = z->buddy.nr_free_zero +
				  z->nr_hole_steps * STEP_PAGES;
	for (unsigned k = 0; k <= ZP_MAX_ORDER; k++)
		out->nr_free_by_order[k] = buddy_nr_blocks(&z->buddy, k);
	count_holes_locked(z, out->nr_free_by_order);
	out->wmark_min = z->wmark_min;
	out->wmark_low = z->wmark_low;
	out->wmark_high = z->wmark_high;
	for (unsigned t = 0; t < ZONE_NR_TYPES; t++)
		out->lowmem_reserve[t] = z->lowmem_reserve[t];
	out->nr_alloc = z->nr_alloc;
	out->nr_free_calls = z->nr_free_calls;
	out->nr_fallback_in = z->nr_fallback_in;
	out->nr_failed = __atomic_load_n(&z->nr_failed, __ATOMIC_RELAXED);
	out->nr_grow_steps = z->nr_grow_steps;
	out->nr_purged_pages = z->nr_purged_pages;
	out->retain_pages = z->retain;
	out->nr_refault_pages = z->nr_refault_pages;
	out->nr_huge_steps = z->nr_huge_steps;
	zp_unlock(&z->lock);
	return 0;
}

_Static_assert(ZP_MAX_ORDER < 16, "zp_zone_info holds 16 orders");
_Static_assert(ZONE_NR_TYPES == 2, "zp_zone_info holds 2 reserves");

void
zone_print_buddyinfo(struct outbuf *o)
{
	struct zp_zone_info zi;

	for (unsigned i = 0; zone_info(i, &zi) == 0; i++) {
		out_printf(o, "Node %d, zone %8s", zi.node, zi.name);
		for (unsigned k = 0; k <= ZP_MAX_ORDER; k++)
			out_printf(o, " %6lu",
				   (unsigned long)zi.nr_free_by_order[k]);
		out_puts(o, "\n");
	}
}

/* Lazily mapped zones: the pages of the steps unmapped now (free, not
 * present) and of all steps ever given back. */
static void
print_lazy(struct outbuf *o, struct zone *z)
{
	uint64_t now, total;

	zp_lock(&z->lock);
	now = z->nr_unmapped_steps;
	total = z->nr_unmapped_total;
	zp_unlock(&z->lock);
	out_printf(o, "        unmapped %lu\n",
		   (unsigned long)(now * STEP_PAGES));
	out_printf(o, "    nr_unmapped    %lu\n",
		   (unsigned long)(total * STEP_PAGES));
}

/* The purged pages split by the rule that chose them. */
static void
print_purge_why(struct outbuf *o, struct zone *z)
{
	static const char *const name[PURGE_NR_WHY] = {
		[PURGE_EXCESS] = "excess", [PURGE_IDLE] = "idle",
		[PURGE_TRIM] = "trim",
	};
	uint64_t n[PURGE_NR_WHY];

	zp_lock(&z->lock);
	for (unsigned w = 0; w < PURGE_NR_WHY; w++)
		n[w] = z->nr_purge_taken[w];
	zp_unlock(&z->lock);
	for (unsigned w = 0; w < PURGE_NR_WHY; w++)
		out_printf(o, "    nr_purged_%s %lu\n", name[w],
			   (unsigned long)n[w]);
}

static const char *const pressure_name[] = { "none", "low", "min" };

/* The memory limit the watermarks come from, and what they did. */
void
zone_print_limit(struct outbuf *o, bool json)
{
	struct zone_limit_info li;

	zone_limit_info(&li);
	if (json) {
		out_printf(o, "{\"source\":\"%s\",\"limit_bytes\":%zu,"
			   "\"usage_bytes\":%zu,\"wmark_min\":%lu,"
			   "\"wmark_low\":%lu,\"wmark_high\":%lu,"
			   "\"state\":\"%s\",\"nr_low\":%lu,\"nr_min\":%lu}",
			   li.source, li.limit_bytes, li.usage_bytes,
			   (unsigned long)li.wmark_min,
			   (unsigned long)li.wmark_low,
			   (unsigned long)li.wmark_high,
			   pressure_name[li.state], (unsigned long)li.nr_low,
			   (unsigned long)li.nr_min);
		return;
	}
	out_printf(o, "memory limit %zu bytes (%s), usage %zu at the last "
		   "growth\n", li.limit_bytes, li.source, li.usage_bytes);
	out_printf(o, "  headroom watermarks (pages): min %lu low %lu high "
		   "%lu  state %s  reactions: low %lu min %lu\n",
		   (unsigned long)li.wmark_min, (unsigned long)li.wmark_low,
		   (unsigned long)li.wmark_high, pressure_name[li.state],
		   (unsigned long)li.nr_low, (unsigned long)li.nr_min);
	out_printf(o, "  purges: %s\n", os_purge_ranges_batched()
		   ? "many ranges a system call (process_madvise)"
		   : "one madvise a range");
}

/* Linux's per-CPU pagesets, as the threads' caches of a NORMAL zone are
 * sized now: each order's high and batch (pcp.c). */
static void
print_pagesets(struct outbuf *o, const struct zone *z)
{
	struct pcp_list sizes[PCP_MAX_ORDER + 1];
	unsigned live;

	if (z->type != ZONE_NORMAL)
		return;
	live = pcp_sizes(z, sizes);
	out_printf(o, "  pagesets\n    caches: %u\n              high: ", live);
	for (unsigned k = 0; k <= PCP_MAX_ORDER; k++)
		out_printf(o, " %u", sizes[k].high);
	out_puts(o, "\n              batch:");
	for (unsigned k = 0; k <= PCP_MAX_ORDER; k++)
		out_printf(o, " %u", sizes[k].batch);
	out_puts(o, "\n");
}

void
zone_print_zoneinfo(struct outbuf *o)
{
	struct zp_zone_info zi;

	for (unsigned i = 0; zone_info(i, &zi) == 0; i++) {
		out_printf(o, "Node %d, zone %8s\n", zi.node, zi.name);
		out_printf(o, "  pages free     %lu\n",
			   (unsigned long)zi.nr_free_pages);
		out_printf(o, "        free zero %lu\n",
			   (unsigned long)zi.nr_free_zero_pages);
		out_printf(o, "        min      %lu\n",
			   (unsigned long)zi.wmark_min);
		out_printf(o, "        low      %lu\n",
			   (unsigned long)zi.wmark_low);
		out_printf(o, "        high     %lu\n",
			   (unsigned long)zi.wmark_high);
		out_printf(o, "        spanned  %lu\n",
			   (unsigned long)(zi.span_bytes >> ZP_PAGE_SHIFT));
		out_printf(o, "        present  %lu\n",
			   (unsigned long)(zi.committed_bytes >>
					   ZP_PAGE_SHIFT));
		print_lazy(o, zone_of(i));
		out_printf(o, "        protection: (%lu, %lu)\n",
			   (unsigned long)zi.lowmem_reserve[0],
			   (unsigned long)zi.lowmem_reserve[1]);
		out_printf(o, "    nr_alloc       %lu\n",
			   (unsigned long)zi.nr_alloc);
		out_printf(o, "    nr_free        %lu\n",
			   (unsigned long)zi.nr_free_calls);
		out_printf(o, "    nr_fallback_in %lu\n",
			   (unsigned long)zi.nr_fallback_in);
		out_printf(o, "    nr_failed      %lu\n",
			   (unsigned long)zi.nr_failed);
		out_printf(o, "    nr_grow_steps  %lu\n",
			   (unsigned long)zi.nr_grow_steps);
		out_printf(o, "    nr_huge_steps  %lu\n",
			   (unsigned long)zi.nr_huge_steps);
		out_printf(o, "    nr_purged      %lu\n",
			   (unsigned long)zi.nr_purged_pages);
		print_purge_why(o, zone_of(i));
		out_printf(o, "    retain         %lu\n",
			   (unsigned long)zi.retain_pages);
		out_printf(o, "    nr_refault     %lu\n",
			   (unsigned long)zi.nr_refault_pages);
		print_pagesets(o, zone_of(i));
		out_printf(o, "  start_addr     %p\n", (void *)zi.base);
	}
}

void
zone_print_json(struct outbuf *o)
{
	struct zp_zone_info zi;

	out_puts(o, "[");
	for (unsigned i = 0; zone_info(i, &zi) == 0; i++) {
		out_printf(o, "%s{\"name\":\"%s\",\"node\":%d,"
			   "\"base\":%lu,\"span_bytes\":%lu,"
			   "\"committed_bytes\":%lu,", i ? "," : "", zi.name,
			   zi.node, (unsigned long)zi.base,
			   (unsigned long)zi.span_bytes,
			   (unsigned long)zi.committed_bytes);
		out_printf(o, "\"nr_free_pages\":%lu,"
			   "\"nr_free_zero_pages\":%lu,\"free_by_order\":[",
			   (unsigned long)zi.nr_free_pages,
			   (unsigned long)zi.nr_free_zero_pages);
		for (unsigned k = 0; k <= ZP_MAX_ORDER; k++)
			out_printf(o, "%s%lu", k ? "," : "",
				   (unsigned long)zi.nr_free_by_order[k]);
		out_printf(o, "],\"wmark_min\":%lu,\"wmark_low\":%lu,"
			   "\"wmark_high\":%lu,\"lowmem_reserve\":[%lu,%lu],",
			   (unsigned long)zi.wmark_min,
			   (unsigned long)zi.wmark_low,
			   (unsigned long)zi.wmark_high,
			   (unsigned long)zi.lowmem_reserve[0],
			   (unsigned long)zi.lowmem_reserve[1]);
		out_printf(o, "\"nr_alloc\":%lu,\"nr_free\":%lu,"
			   "\"nr_fallback_in\":%lu,\"nr_failed\":%lu,"
			   "\"nr_grow_steps\":%lu,\"nr_huge_steps\":%lu,"
			   "\"nr_purged_pages\":%lu}",
			   (unsigned long)zi.nr_alloc,
			   (unsigned long)zi.nr_free_calls,
			   (unsigned long)zi.nr_fallback_in,
			   (unsigned long)zi.nr_failed,
			   (unsigned long)zi.nr_grow_steps,
			   (unsigned long)zi.nr_huge_steps,
			   (unsigned long)zi.nr_purged_pages);
	}
	out_puts(o, "]");
}
