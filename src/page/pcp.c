/*
 * pcp.c - per-thread page caches: the out-of-line refill and drain.
 * Owns:  the cache sizing set at boot (pcp_high, pcp_batch,
 *        pcp_fraction) and the count of live caches; each struct pcp_set
 *        belongs to one thread and is touched by it alone (or under its
 *        owner's slow-path lock).
 * Locks: none of its own; a refill or drain takes its zone's lock once
 *        for a whole batch.
 * Path:  zone_alloc_pages -> pcp_take (hit) | pcp_alloc_slow ->
 *        zone_bulk_alloc; zone_free_pages -> pcp_put | pcp_free_slow ->
 *        zone_bulk_free
 */
#include "page/zone_priv.h"

/*
 * The caches of all threads together hold at most 1/pcp_fraction of the
 * pages their zone has in use, after Linux's pcp high, which its zone's
 * size and CPU count set: a cache's pages are resident pages that no
 * other thread and no purge can use, and what spares a large heap's
 * threads the zone lock is waste in a small program (python3's start-up
 * held 104 KiB in its cache at its peak, a tenth of its zone). A cache
 * is sized again at each refill and each drain, so it grows with the
 * heap, up to pcp_high.
 */
static unsigned pcp_high = 64, pcp_batch = 16, pcp_fraction = 32;
static unsigned nr_live;	/* caches between pcp_init and pcp_fini
				 * (atomic) */

/* Called by zone_boot. high = 0 turns the caches off; fraction = 0
 * gives every cache pcp_high whatever the zone's size. */
void pcp_boot(unsigned high, unsigned batch, unsigned fraction);

zp_boot_text void
pcp_boot(unsigned high, unsigned batch, unsigned fraction)
{
	pcp_high = high;
	pcp_batch = batch ? batch : 1;
	pcp_fraction = fraction;
	__atomic_store_n(&nr_live, 0, __ATOMIC_RELAXED);
}

/* The fork's child has one thread: the other caches are left behind. */
void
pcp_postfork_child(void)
{
	__atomic_store_n(&nr_live, 1, __ATOMIC_RELAXED);
}

/* Larger blocks are cached in proportionally smaller numbers, so each
 * order holds about the same bytes: a quarter of the cache's share of
 * the zone's pages in use, and no more than pcp_high >> order blocks
 * (or 2, so that a batch leaves room). */
unsigned
pcp_sizes(const struct zone *z, struct pcp_list sizes[PCP_MAX_ORDER + 1])
{
	unsigned live = __atomic_load_n(&nr_live, __ATOMIC_RELAXED);
	uint64_t share = pcp_fraction ? zone_pages_in_use(z) /
					(pcp_fraction * (uint64_t)ZP_MAX(live,
									 1u))
				      : UINT64_MAX;

	for (unsigned k = 0; k <= PCP_MAX_ORDER; k++) {
		struct pcp_list *l = &sizes[k];
		uint64_t most = pcp_high ? ZP_MAX(pcp_high >> k, 2u) : 0;

		l->high = (uint32_t)ZP_MIN(most, (share / (PCP_MAX_ORDER + 1))
						   >> k);
		l->batch = ZP_MAX(ZP_MIN(pcp_batch >> k, l->high / 2), 1u);
	}
	return live;
}

static void
size_lists(struct pcp_set *pcp, const struct zone *z)
{
	struct pcp_list sizes[PCP_MAX_ORDER + 1];

	pcp_sizes(z, sizes);
	for (unsigned k = 0; k <= PCP_MAX_ORDER; k++) {
		pcp->lists[k].high = sizes[k].high;
		pcp->lists[k].batch = sizes[k].batch;
	}
}

void
pcp_init(struct pcp_set *pcp, unsigned node)
{
	struct zone *z = zone_normal_of(node);

	*pcp = (struct pcp_set){ .node = 0, .zone_id = UINT16_MAX };
	if (!z)
		return;
	pcp->node = (uint16_t)z->node;
	pcp->zone_id = (uint16_t)z->id;
	__atomic_fetch_add(&nr_live, 1, __ATOMIC_RELAXED);
	size_lists(pcp, z);
}

void
pcp_fini(struct pcp_set *pcp)
{
	if (pcp->zone_id == UINT16_MAX)
		return;
	pcp_drain(pcp);
	__atomic_fetch_sub(&nr_live, 1, __ATOMIC_RELAXED);
	pcp->zone_id = UINT16_MAX;
}

/* Keeps the hottest keep blocks of list order and gives the rest back. */
static void
drain_to(struct pcp_set *pcp, unsigned order, uint32_t keep)
{
	struct pcp_list *l = &pcp->lists[order];
	struct page *cut = NULL, *pg = l->head;

	if (keep == 0) {
		cut = l->head;
		l->head = NULL;
	} else {
		for (uint32_t i = 1; i < keep && pg; i++)
			pg = pg->lru.next;
		cut = pg ? pg->lru.next : NULL;
		if (pg)
			pg->lru.next = NULL;
	}
	l->count = ZP_MIN(l->count, keep);
	zp_stat_inc(pcp->nr_drain);
	if (cut)
		zone_bulk_free(zone_of(pcp->zone_id), order, cut);
}

/* Sizes the lists again and gives back what each holds beyond its new
 * high: the heap shrank, or more threads share it. */
static void
resize(struct pcp_set *pcp)
{
	size_lists(pcp, zone_of(pcp->zone_id));
	for (unsigned k = 0; k <= PCP_MAX_ORDER; k++)
		if (pcp->lists[k].count > pcp->lists[k].high)
			drain_to(pcp, k, pcp->lists[k].high);
}

struct page *
pcp_alloc_slow(struct pcp_set *pcp, unsigned order)
{
	struct pcp_list *l = &pcp->lists[order];
	struct page *list;

	resize(pcp);
	if (l->high == 0)
		return NULL;
	if (zone_bulk_alloc(zone_of(pcp->zone_id), order, l->batch,
			    &list) == 0)
		return NULL;
	zp_stat_inc(pcp->nr_refill);
	zp_stat_inc(pcp->nr_alloc);
	/* The list was empty: the rest of the batch becomes the list. */
	for (struct page *pg = list->lru.next; pg; pg = pg->lru.next)
		l->count++;
	l->head = list->lru.next;
	return list;
}

/* Keeps the hottest high - batch blocks and gives the rest back. */
static void
drain_cold(struct pcp_set *pcp, unsigned order)
{
	struct pcp_list *l = &pcp->lists[order];

	size_lists(pcp, zone_of(pcp->zone_id));
	drain_to(pcp, order, l->high > l->batch ? l->high - l->batch : 0);
}

void
pcp_free_slow(struct pcp_set *pcp, struct page *head)
{
	struct pcp_list *l = &pcp->lists[head->order];

	head->kind = PAGE_PCP;
	head->lru.next = l->head;
	l->head = head;
	l->count++;
	zp_stat_inc(pcp->nr_free);
	if (l->count > l->high)
		drain_cold(pcp, head->order);
}

void
pcp_drain(struct pcp_set *pcp)
{
	if (pcp->zone_id == UINT16_MAX)
		return;
	for (unsigned k = 0; k <= PCP_MAX_ORDER; k++) {
		struct pcp_list *l = &pcp->lists[k];
		struct page *list = l->head;

		l->head = NULL;
		l->count = 0;
		if (list) {
			zp_stat_inc(pcp->nr_drain);
			zone_bulk_free(zone_of(pcp->zone_id), k, list);
		}
	}
}
