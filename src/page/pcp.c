/*
 * pcp.c - per-thread page caches: the out-of-line refill and drain.
 * Owns:  the cache sizing set at boot (pcp_high, pcp_batch); each
 *        struct pcp_set belongs to one thread and is touched by it alone.
 * Locks: none of its own; a refill or drain takes its zone's lock once
 *        for a whole batch.
 * Path:  zone_alloc_pages -> pcp_take (hit) | pcp_alloc_slow ->
 *        zone_bulk_alloc; zone_free_pages -> pcp_put | pcp_free_slow ->
 *        zone_bulk_free
 */
#include "page/zone_priv.h"

static unsigned pcp_high = 64, pcp_batch = 16;

/* Called by zone_boot. high = 0 turns the caches off. */
void pcp_boot(unsigned high, unsigned batch);

zp_boot_text void
pcp_boot(unsigned high, unsigned batch)
{
	pcp_high = high;
	pcp_batch = batch ? batch : 1;
}

/* Larger blocks are cached in proportionally smaller numbers, so each
 * order holds about the same bytes. */
void
pcp_init(struct pcp_set *pcp, unsigned node)
{
	struct zone *z = zone_normal_of(node);

	*pcp = (struct pcp_set){ .node = 0, .zone_id = UINT16_MAX };
	if (z) {
		pcp->node = (uint16_t)z->node;
		pcp->zone_id = (uint16_t)z->id;
	}
	for (unsigned k = 0; k <= PCP_MAX_ORDER && z; k++) {
		struct pcp_list *l = &pcp->lists[k];

		l->high = pcp_high ? ZP_MAX(pcp_high >> k, 2u) : 0;
		l->batch = ZP_MAX(ZP_MIN(pcp_batch >> k, l->high / 2), 1u);
	}
}

struct page *
pcp_alloc_slow(struct pcp_set *pcp, unsigned order)
{
	struct pcp_list *l = &pcp->lists[order];
	struct page *list;

	if (l->high == 0)
		return NULL;
	if (zone_bulk_alloc(&zone_table[pcp->zone_id], order, l->batch,
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
	uint32_t keep = l->high > l->batch ? l->high - l->batch : 0;
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
		zone_bulk_free(&zone_table[pcp->zone_id], order, cut);
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
			zone_bulk_free(&zone_table[pcp->zone_id], k, list);
		}
	}
}
