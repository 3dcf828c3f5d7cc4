/*
 * pcp.h - per-thread page caches in front of the zone lock, after Linux's
 * per-CPU pagesets: a thread keeps up to `high` free blocks of each small
 * order and moves them to and from its zone `batch` at a time, so most
 * page allocations and frees take no lock. `high` follows the zone's
 * pages in use and the number of threads (pcp.c), as Linux's follows its
 * zone's size and CPUs.
 * The struct is embedded in the thread state the malloc layer owns; this
 * layer only ever sees a pointer to it.
 */
#ifndef ZP_PAGE_PCP_H
#define ZP_PAGE_PCP_H

#include "page/page.h"

#define PCP_MAX_ORDER 3		/* orders 0..3 (4-32 KiB) are cached */

struct pcp_list {
	struct page *head;	/* singly linked through lru.next */
	uint32_t count;
	uint32_t high;
	uint32_t batch;
};

struct pcp_set {
	struct pcp_list lists[PCP_MAX_ORDER + 1];
	uint16_t node;		/* the thread's home NUMA node */
	uint16_t zone_id;	/* the zone these blocks belong to */
	uint64_t nr_alloc, nr_free, nr_refill, nr_drain; /* stats */
};

/*
 * Sets up an empty cache for a thread that runs on node (pass
 * zone_local_node(); it is clamped to the nodes that exist). Call after
 * zone_boot: the cache feeds from that node's NORMAL zone.
 */
void pcp_init(struct pcp_set *pcp, unsigned node);
/* Returns every cached block to its zone (malloc_trim). */
void pcp_drain(struct pcp_set *pcp);
/* The thread is leaving: drains the cache, which no longer counts
 * among the threads' caches that share a zone's allowance. */
void pcp_fini(struct pcp_set *pcp);
/* In the child of fork: one thread, so one cache. */
void pcp_postfork_child(void);

/* Out of line: refill list order from the zone (one lock, `batch`
 * blocks) and return one of them, or NULL when the zone has none. */
struct page *pcp_alloc_slow(struct pcp_set *pcp, unsigned order);
/* Out of line: cache head anyway, then give the coldest `batch` blocks
 * back to the zone when the list is over `high`. */
void pcp_free_slow(struct pcp_set *pcp, struct page *head);

/* The hit path: a cached block of order, or NULL. order <= PCP_MAX_ORDER.
 * Cached blocks keep their tail pages marked, so a hit writes nothing
 * but the head. */
static inline struct page *
pcp_take(struct pcp_set *pcp, unsigned order)
{
	struct pcp_list *l = &pcp->lists[order];
	struct page *pg = l->head;

	if (zp_likely(pg != NULL)) {
		l->head = pg->lru.next;
		l->count--;
		zp_stat_inc(pcp->nr_alloc);
	}
	return pg;
}

/* Caches a block of this thread's zone when there is room; false sends
 * the caller to the slow path. */
static inline bool
pcp_put(struct pcp_set *pcp, struct page *head)
{
	struct pcp_list *l = &pcp->lists[head->order];

	if (zp_unlikely(l->count >= l->high))
		return false;
	head->kind = PAGE_PCP;
	head->lru.next = l->head;
	l->head = head;
	l->count++;
	zp_stat_inc(pcp->nr_free);
	return true;
}

#endif /* ZP_PAGE_PCP_H */
