/*
 * tcache.c - per-thread caches: refills and flushes between bins and the
 * thread's slabs, remote frees, the mailbox, thread exit, and giving a
 * live thread's memory back from another thread (malloc_trim).
 * Owns:  struct tcache contents, the registry of live tcaches.
 * Locks: registry_lock (init/fini/stats/trim), then tc->lock (the owner's
 *        slow paths; another thread's trim), then cache->lock inside
 *        cache.c, then the zone's; take_emptied, under its own tc->lock,
 *        only tries the registry's and other threads'. Fast paths: none.
 * Path:  tcache_alloc (inline) -> tcache_alloc_slow -> tcache_fill ->
 *          mail_drain | slab_take | slab_collect | slab_delay |
 *          spare | cache_take (orphan or reserve) | zone;
 *        tcache_free (inline) -> tcache_free_slow -> bin_flush ->
 *          flush_one [-> give_back] -> flush_edges;
 *        tcache_free_remote -> chain [-> push_chain ->
 *          CAS [-> post | cache_rescue]];
 *        malloc_trim -> tcache_trim_others -> trim_other (each thread);
 *        get_slab -> take_emptied -> take_from (other live threads);
 *        get_slab -> give_back_idle_bins -> bin_flush (its idle classes).
 *
 * A thread holds slabs of each class on three lists: partial (a refill
 * can take from them), full (nothing local left) and one spare empty
 * slab. Objects move between bins and slabs in batches. A slab found
 * with nothing to give is marked DELAYED and put on the full list, which
 * nobody scans: the first remote free into it posts its object to this
 * thread's mailbox instead of the slab, and the next refill hands the
 * object back to its slab, which then is partial again. That first freer
 * holds the slab in FREEING while it posts, and a thread's slabs are
 * settled (FREEING waited out) before they are given up, so a post never
 * lands in a cache that is gone.
 *
 * Slabs change hands only under the giving thread's lock: at exit, at
 * trim, and when a thread adopts an orphan - a slab of an exited thread
 * that still has live objects - instead of carving a new slab, so that
 * objects which outlive their threads do not each pin a slab. Before a
 * carve, a thread also takes the slabs that remote frees emptied in
 * other live threads (take_emptied), as another thread's trim does: it
 * takes only slabs with no object out (none live, none in a bin), since
 * a live thread's malloc and free write the bits of its slabs' objects
 * without a lock (slab.h). And before a carve, a class of its own that
 * went idle with a slab's worth of objects in its bin gives them back
 * (give_back_idle_bins), so that the slabs they kept can serve it.
 *
 * Remote frees into the same slab are chained in the freeing thread's
 * class (up to RBATCH_MAX) and pushed with one CAS; a chain goes out when
 * a free of that class lands in another slab, at the thread's next refill,
 * and at exit or trim.
 *
 * Statistics cost the fast paths one counter, on malloc, in the bin's own
 * line: objects enter a bin by refill or local free and leave it by malloc
 * or flush, so the number of local frees is popped + flushed + cached -
 * refilled.
 */
#include "slab/tcache.h"

#include <string.h>

#include "base/lock.h"
#include "base/log.h"
#include "page/zone.h"
#include "slab/cache.h"

static struct zp_lock registry_lock = ZP_LOCK_INIT;
static struct tcache *registry_head;		/* registry_lock */
static unsigned long nr_tcaches;		/* ever created (lock) */
/* Owner ids in use: bit i for id i + 1 (0 is no thread's), under
 * registry_lock. The first 512 among the registry's words, whose page
 * every process that allocates writes anyway; the rest in pages of their
 * own, resident only per 32768 threads alive at once. */
#define ID_WORDS_NEAR	8
static uint64_t id_map_near[ID_WORDS_NEAR];
static uint64_t id_map_far[TCACHE_IDS / 64 - ID_WORDS_NEAR] zp_bss_large;

static uint64_t *
id_word(size_t w)
{
	return w < ID_WORDS_NEAR ? &id_map_near[w] :
				   &id_map_far[w - ID_WORDS_NEAR];
}

/* A thread that is not the process's first takes up to this many
 * objects of a class from the class's shared slab before it holds slabs
 * of its own (cache.h): threads that use a class lightly (a worker's
 * few buffers, a short-lived thread's one object) then share its pages.
 * The first thread does not: it would hold a page of each class twice. */
#define SHARED_MAX	8
static struct tcache_path_stats exited_paths;	/* registry_lock */

/*
 * Before that, such a thread has no cache at all: its first LIGHT_MAX
 * objects come from the shared slabs, and only its next malloc makes
 * one. Most idle and short-lived threads (a pool's workers waiting, a
 * thread that formats one message and leaves) never get that far, and
 * then cost no pages of thread state: a cache is a few pages once used
 * (bins, class state, slots), 17 KiB a thread more than glibc's.
 */
#define LIGHT_MAX	16
static __thread uint8_t light_used
	__attribute__((tls_model("initial-exec")));

/* Bins of NULL pointers: empty and full at once (tcache.h), and an id of
 * 0, which no slab's facts carry (unowned ones carry SLAB_FACTS_NO_OWNER).
 * Never written: every path that would write it is a slow one, which
 * returns first. In .bss, so that reading it maps the zero page, not 45
 * KiB of the file, and commits none of it where the kernel maps the zero
 * page for reads (its id, once set at boot, cost every process a page). */
struct tcache tcache_none zp_bss_large;

/* The lowest free id (registry_lock held). Without one the thread's own
 * slabs carry no owner's id, like an unowned slab's, and its frees into
 * them take the remote path, which is right for any thread, only slower. */
static uint32_t
id_take(void)
{
	for (size_t w = 0; w < TCACHE_IDS / 64; w++) {
		uint64_t *word = id_word(w);

		if (~*word != 0) {
			unsigned b = (unsigned)__builtin_ctzll(~*word);

			*word |= (uint64_t)1 << b;
			return (uint32_t)(w * 64 + b + 1);
		}
	}
	return TCACHE_NO_ID;
}

static void
id_release(uint32_t id)
{
	if (id != TCACHE_NO_ID)
		*id_word((id - 1) / 64) &= ~((uint64_t)1 << ((id - 1) % 64));
}

void
tcache_init(struct tcache *tc, struct pcp_set *pcp)
{
	tc->pcp = pcp;
	zp_lock(&registry_lock);
	tc->id = id_take();
	tc->use_shared = nr_tcaches++ != 0;
	tc->reg_next = registry_head;
	if (registry_head)
		registry_head->reg_prev = tc;
	registry_head = tc;
	zp_unlock(&registry_lock);
}

/* --- the classes a thread uses ---------------------------------------- */

/* Before the owner first writes tc->cls[sc]. */
static inline void
cls_mark(struct tcache *tc, unsigned sc)
{
	uint64_t *w = &tc->cls_used[sc / 64];
	uint64_t bit = (uint64_t)1 << (sc % 64);

	if (!(*w & bit))
		__atomic_store_n(w, *w | bit, __ATOMIC_RELAXED);
}

static inline bool
cls_is_used(const struct tcache *tc, unsigned sc)
{
	return __atomic_load_n(&tc->cls_used[sc / 64], __ATOMIC_RELAXED) >>
	       (sc % 64) & 1;
}

/* The first class from sc on that tc ever used, or SC_NR. */
static unsigned
cls_next(const struct tcache *tc, unsigned sc)
{
	while (sc < SC_NR) {
		uint64_t w = __atomic_load_n(&tc->cls_used[sc / 64],
					     __ATOMIC_RELAXED) >> (sc % 64);

		if (w != 0)
			return sc + (unsigned)__builtin_ctzll(w);
		sc = (sc / 64 + 1) * 64;
	}
	return SC_NR;
}

#define for_each_used_class(tc, sc) \
	for (unsigned sc = cls_next((tc), 0); sc < SC_NR; \
	     sc = cls_next((tc), sc + 1))

/* A class's first use by this thread: its bin gets slots. */
static void
bin_attach(struct tcache *tc, unsigned sc)
{
	struct tbin *b = &tc->bins[sc];

	if (zp_likely(b->base != NULL))
		return;
	cls_mark(tc, sc);
	b->base = b->cur = tc->slots + tc->nr_slots_used;
	tc->nr_slots_used += slab_class[sc].bin_cap;
	zp_assert(tc->nr_slots_used <= TCACHE_SLOTS);
	b->end = b->base + slab_class[sc].bin_cap;
}

/* --- the thread's slab lists ------------------------------------------- */

static struct slab **
own_head(struct tcache *tc, struct slab *s)
{
	struct tclass *k = &tc->cls[s->sc];

	return s->where == SLAB_OWN_FULL ? &k->full : &k->partial;
}

static void
own_add(struct tcache *tc, struct slab *s, enum slab_where where)
{
	struct slab **head;

	s->where = (uint8_t)where;
	if (where == SLAB_OWN_FULL)
		slab_set_full(s, true);
	head = own_head(tc, s);
	s->prev = NULL;
	s->next = *head;
	if (*head)
		(*head)->prev = s;
	*head = s;
}

static void
own_del(struct tcache *tc, struct slab *s)
{
	if (s->where == SLAB_OWN_SPARE) {
		tc->cls[s->sc].spare = NULL;
	} else {
		if (s->where == SLAB_OWN_FULL)
			slab_set_full(s, false);
		if (s->prev)
			s->prev->next = s->next;
		else
			*own_head(tc, s) = s->next;
		if (s->next)
			s->next->prev = s->prev;
	}
	s->next = s->prev = NULL;
	s->where = SLAB_NOWHERE;
}

/* A freer is between posting an object of s and clearing s's state:
 * the object may be back already, but s may not leave its holder (the
 * freer's last CAS would clear the state of the slab's next user). */
static bool
slab_is_freeing(const struct slab *s)
{
	return (__atomic_load_n(&s->remote, __ATOMIC_ACQUIRE) & SLAB_STATE) ==
	       SLAB_FREEING;
}

/* A held slab with no object out: kept as the spare or given back (or,
 * while a freer posts into it, kept partial). */
static void
own_emptied(struct tcache *tc, struct slab *s)
{
	struct tclass *k = &tc->cls[s->sc];

	if (tc->is_flushing)
		return;
	own_del(tc, s);
	if (k->spare == NULL) {
		k->spare = s;
		s->where = SLAB_OWN_SPARE;
		return;
	}
	if (slab_is_freeing(s)) {
		own_add(tc, s, SLAB_OWN_PARTIAL);
		return;
	}
	cache_put_empty(s, tc->pcp);
}

static zp_must_check bool push_chain(struct slab *s, uintptr_t head,
				    uintptr_t tail, unsigned n);
static void take_emptied(struct tcache *tc, unsigned sc);

/* A slab of tc's that an object just went back to, if it was full or is
 * empty now. */
static void
gave_back_to(struct tcache *tc, struct slab *s)
{
	if (s->where == SLAB_OWN_FULL) {
		slab_undelay(s);
		own_del(tc, s);
		own_add(tc, s, SLAB_OWN_PARTIAL);
	}
	if (slab_inuse(s) == 0)
		own_emptied(tc, s);
}

/* Object p, out of tc's bin or mailbox, goes back to its slab: avail; a
 * slab that is no longer tc's gets it as a remote free. */
static void
give_back(struct tcache *tc, void *p, struct slab *s)
{
	if (zp_unlikely(slab_owner(s) != tc)) {
		if (push_chain(s, (uintptr_t)p, (uintptr_t)p, 1))
			cache_rescue(s);
		return;
	}
	slab_push(s, p);
	gave_back_to(tc, s);
}

/* The first page of the slab holding object a, or NULL. */
static struct slab *
slab_of_ptr(uintptr_t a)
{
	struct page *pg = page_lookup_fast((void *)a);

	if (pg == NULL || pg->kind != PAGE_SLAB)
		pg = page_lookup((void *)a);	/* LOW32, or not a slab */
	if (pg == NULL || pg->kind != PAGE_SLAB)
		return NULL;
	return slab_head(slab_of(pg));
}

/* --- the mailbox --------------------------------------------------------- */

/* A posted object: first word the self link of every free object, second
 * word the encoded link to the next post. */
static uintptr_t
mail_next(uintptr_t a)
{
	return ((const uintptr_t *)a)[1] ^ slab_key ^ __builtin_bswap64(a);
}

static void
mail_drain(struct tcache *tc)
{
	uintptr_t a = __atomic_exchange_n(&tc->mailbox, 0, __ATOMIC_ACQUIRE);

	while (a != 0) {
		uintptr_t next = mail_next(a);
		struct slab *s = slab_of_ptr(a);

		if (s == NULL || slab_owner(s) != tc ||
		    slab_index_of(s, a) < 0 || (next & 15) != 0)
			log_fatal("free(): corrupted remote free list at %p",
				  (void *)a);
		give_back(tc, (void *)a, s);
		zp_stat_inc(tc->nr_mail);
		a = next;
	}
}

/* Remote free into a DELAYED slab, which this freer moved to FREEING:
 * tell its owner through the mailbox, then let the slab go NORMAL. */
static void
post(struct slab *s, void *p)
{
	struct tcache *owner = slab_owner(s);
	uintptr_t a = (uintptr_t)p;
	uintptr_t head = __atomic_load_n(&owner->mailbox, __ATOMIC_RELAXED);
	uintptr_t old;

	((uintptr_t *)p)[0] = slab_encode(a, a);
	do {
		((uintptr_t *)p)[1] = slab_encode(head, a);
	} while (!__atomic_compare_exchange_n(&owner->mailbox, &head, a, true,
					      __ATOMIC_RELEASE,
					      __ATOMIC_RELAXED));
	old = __atomic_load_n(&s->remote, __ATOMIC_RELAXED);
	while (!__atomic_compare_exchange_n(&s->remote, &old,
					    old & ~SLAB_STATE, true,
					    __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		;
}

/* --- remote frees --------------------------------------------------------- */

/*
 * A signal handler that allocates while the thread it interrupted holds a
 * lock of ours (its own cache's, a class's, a zone's) may want that very
 * lock: waiting would never end, and would keep a shared lock from every
 * other thread; the state under the lock is mid-change too. So a malloc
 * fails there (ENOMEM, as a malloc may) and a free goes the lock-free
 * remote way, one object at a time (the thread's remote chains may be
 * what the interrupted path is pushing). zp_lock_held_any() tells.
 */

/* Parked slabs a signal handler's remote free woke while its thread held
 * a lock (cache_rescue takes the class's): handed to their caches at the
 * next slow path of any thread (the waking thread may exit first). The
 * waker owns a woken slab alone, so it may link it. */
static struct slab *rescue_list;

static void
rescue_later(struct slab *s)
{
	struct slab *head = __atomic_load_n(&rescue_list, __ATOMIC_RELAXED);

	do
		s->next = head;
	while (!__atomic_compare_exchange_n(&rescue_list, &head, s, true,
					    __ATOMIC_RELEASE,
					    __ATOMIC_RELAXED));
}

static zp_noinline void
rescue_all(void)
{
	struct slab *s = __atomic_exchange_n(&rescue_list, NULL,
					     __ATOMIC_ACQUIRE);

	while (s != NULL) {
		struct slab *next = s->next;

		cache_rescue(s);
		s = next;
	}
}

/* Called with no lock held. */
static inline void
rescue_pending(void)
{
	if (zp_unlikely(__atomic_load_n(&rescue_list, __ATOMIC_RELAXED) !=
			NULL))
		rescue_all();
}

/* Remote frees in one slab's chain before it is pushed: a batch of a
 * producer's messages is one CAS, and an object waits little. */
#define RBATCH_MAX	32

/*
 * Classes in which a remote free may have left a live thread's slab with
 * no object out. Such a slab would stay its holder's until the holder
 * allocated from the class again or trimmed: a thread that built a table
 * and handed it to others, or a worker idle in a pool, stranded what the
 * others freed (larson: the main thread's 2 MiB of first objects, all
 * freed by the workers, beside the workers' own). A thread about to
 * carve a new slab of a class so marked takes them first (take_emptied).
 */
static uint8_t emptied_elsewhere[SC_NR];

/* After a push that left listed objects on s's remote list: is none of
 * s out but those (and one posted to the holder's mailbox)? inuse was
 * read before the push; a hint, which a steal checks under the lock. */
static void
note_emptied(const struct slab *s, unsigned sc, unsigned inuse,
	     uintptr_t listed)
{
	if (listed + 1 >= inuse && slab_owner(s) != SLAB_UNOWNED &&
	    !__atomic_load_n(&emptied_elsewhere[sc], __ATOMIC_RELAXED))
		__atomic_store_n(&emptied_elsewhere[sc], 1, __ATOMIC_RELAXED);
}

/* Pushes the chain head..tail (n objects of s, linked, tail's link not
 * yet set) onto s's remote list, by the rules of its state. True when
 * the caller woke s from PARKED and is to hand it to its cache. */
static zp_must_check bool
push_chain(struct slab *s, uintptr_t head, uintptr_t tail, unsigned n)
{
	uintptr_t old = __atomic_load_n(&s->remote, __ATOMIC_RELAXED);
	unsigned sc = s->sc, inuse = slab_inuse(s);
	uintptr_t list;

	for (;;) {
		switch (old & SLAB_STATE) {
		case SLAB_DELAYED:
			if (__atomic_compare_exchange_n(
				    &s->remote, &old,
				    (old & ~SLAB_STATE) | SLAB_FREEING, true,
				    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
				uintptr_t next = n > 1 ? slab_decode(head) : 0;

				/* One object tells the owner; the rest
				 * follow onto the list. */
				post(s, (void *)head);
				if (--n == 0) {
					note_emptied(s, sc, inuse, 0);
					return false;
				}
				head = next;
				old = __atomic_load_n(&s->remote,
						      __ATOMIC_RELAXED);
			}
			continue;
		case SLAB_PARKED:
			/* Only the freer that clears PARKED may touch s
			 * after its CAS: it hands s to its cache. */
			*(uintptr_t *)tail = slab_encode(tail, tail);
			if (__atomic_compare_exchange_n(
				    &s->remote, &old,
				    head + n * SLAB_COUNT_ONE, true,
				    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
				return true;
			continue;
		default:
			list = old & SLAB_LIST;
			*(uintptr_t *)tail = slab_encode(list ? list : tail,
							 tail);
			if (__atomic_compare_exchange_n(
				    &s->remote, &old,
				    (old & ~SLAB_LIST) + n * SLAB_COUNT_ONE +
					    head,
				    true, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
				note_emptied(s, sc, inuse,
					     (old >> SLAB_COUNT_SHIFT) + n);
				return false;
			}
		}
	}
}

static void
rbatch_flush(struct tcache *tc, unsigned sc)
{
	struct tclass *k = &tc->cls[sc];

	if (push_chain(k->rslab, k->rhead, k->rtail, k->nr_rfree))
		cache_rescue(k->rslab);
	k->rslab = NULL;
	k->nr_rfree = 0;
	tc->rbatch_mask[sc / 64] &= ~((uint64_t)1 << (sc % 64));
}

/* Out of line in every build: the code window (hot_text.ld) names it. */
static zp_noinline void
rbatch_flush_all(struct tcache *tc)
{
	for (unsigned w = 0; w < ZP_ARRAY_SIZE(tc->rbatch_mask); w++)
		while (tc->rbatch_mask[w] != 0)
			rbatch_flush(tc, w * 64 + (unsigned)__builtin_ctzll(
						      tc->rbatch_mask[w]));
}

/* A remote free of p (its live bit already clear) with no chain: by a
 * thread with no cache, or by a signal handler, which leaves a slab it
 * woke to rescue_pending when (later) its thread holds a lock. */
static zp_noinline void
free_alone(void *p, bool later)
{
	uintptr_t a = (uintptr_t)p;
	struct slab *s = slab_of_ptr(a);
	unsigned sc = s->sc;

	if (push_chain(s, a, a, 1)) {
		if (later)
			rescue_later(s);
		else
			cache_rescue(s);
	}
	if (ZP_IS_STATS)
		__atomic_add_fetch(&slab_cache_stats[sc].nr_free_remote, 1,
				   __ATOMIC_RELAXED);
}

/* A remote free whose live bit is already clear, chained in tc's class
 * (tc->chaining set: a handler that interrupts this frees alone). */
static void
remote_free(struct tcache *tc, void *p)
{
	uintptr_t a = (uintptr_t)p;
	struct slab *s = slab_of_ptr(a);
	unsigned sc = s->sc;
	struct tclass *k = &tc->cls[sc];

	zp_stat_inc(k->nr_free_remote);
	if (k->rslab == s) {
		/* A chained object reads as free, like every other. */
		*(uintptr_t *)p = slab_encode(k->rhead, a);
		k->rhead = a;
		if (++k->nr_rfree >= RBATCH_MAX)
			rbatch_flush(tc, sc);
		return;
	}
	if (k->rslab != NULL)
		rbatch_flush(tc, sc);
	/* A chain's first object: the class's first remote free (k->rslab
	 * is set from here on, so later ones need no mark). */
	cls_mark(tc, sc);
	*(uintptr_t *)p = slab_encode(a, a);
	k->rslab = s;
	k->rhead = k->rtail = a;
	k->nr_rfree = 1;
	tc->rbatch_mask[sc / 64] |= (uint64_t)1 << (sc % 64);
}

void
tcache_free_remote(void *p, struct tcache *tc)
{
	uintptr_t a = (uintptr_t)p;
	uint64_t bit = slab_bit(a);

	if (zp_unlikely(!(__atomic_fetch_and(slab_live_word(a), ~bit,
					     __ATOMIC_RELAXED) & bit) ||
			(a & 15) != 0))
		slab_bad_free(p);
	if (zp_lock_held_any()) {
		free_alone(p, true);
		return;
	}
	rescue_pending();
	if (tc == &tcache_none || zp_unlikely(tc->chaining)) {
		free_alone(p, false);
		return;
	}
	tc->chaining = true;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	remote_free(tc, p);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	tc->chaining = false;
}

/* --- refill ------------------------------------------------------------- */

/* A fresh slab from the zone: the class's first one in this thread is
 * small (slab_class.first_order). */
static struct slab *
new_slab(struct tcache *tc, unsigned sc)
{
	const struct slab_class *c = &slab_class[sc];
	unsigned order = tc->cls[sc].nr_slabs ? c->order : c->first_order;
	struct slab *s;
	bool zero = false;
	struct page *head = zone_alloc_pages(tc->pcp, order, GFP_ARENA,
					     PAGE_SLAB, &zero);

	if (head == NULL)
		return NULL;
	zp_stat_inc(tc->nr_new);
	s = slab_init(head, sc, order, tc, zero);
	cache_count_slab(s, 1);
	return s;
}

static void bin_flush(struct tcache *tc, unsigned sc, unsigned n);

/* A class whose bin saw no refill or flush over this many of the
 * thread's carves is idle. */
#define IDLE_CARVES	8

/*
 * Before a carve of class sc: a bin of another class that holds a slab's
 * worth of objects and went idle gives them all back, and its class's
 * spare goes too, so the pages a class stopped using serve the carve.
 * (A program that frees a phase's objects of one size and then grows in
 * others otherwise keeps both: python-churn's peak was 1.1 MiB higher.
 * Idle only: flushing busy bins at every carve cost larson a quarter of
 * its throughput, in refills of what was just given back.)
 */
static void
give_back_idle_bins(struct tcache *tc, unsigned sc)
{
	tc->nr_carves++;
	for_each_used_class(tc, c) {
		struct tclass *k = &tc->cls[c];
		struct tbin *b = &tc->bins[c];
		unsigned n = (unsigned)(b->cur - b->base);
		struct slab *spare;

		if (c == sc || n < slab_class[c].nr_objs ||
		    tc->nr_carves - k->busy_at < IDLE_CARVES)
			continue;
		bin_flush(tc, c, n);
		spare = k->spare;	/* the flush may have emptied one */
		if (spare != NULL && !slab_is_freeing(spare)) {
			own_del(tc, spare);
			cache_put_empty(spare, tc->pcp);
		}
	}
}

/* A slab to hold, put at the head of the partial list: the spare, an
 * orphan with free objects, or a new one. */
static struct slab *
get_slab(struct tcache *tc, unsigned sc)
{
	struct tclass *k = &tc->cls[sc];
	struct slab *s = k->spare;
	bool adopted = false;

	cls_mark(tc, sc);
	if (s != NULL)
		own_del(tc, s);
	else if (k->nr_slabs == 0 && k->nr_shared != 0 &&
		 (s = cache_take_shared(sc, tc)) != NULL)
		adopted = true;
	else if ((s = cache_take(sc, tc)) != NULL)
		adopted = true;
	else {
		take_emptied(tc, sc);
		give_back_idle_bins(tc, sc);
		if ((s = new_slab(tc, sc)) == NULL)
			return NULL;
	}
	if (adopted)
		zp_stat_inc(tc->nr_adopt);
	k->nr_slabs++;
	own_add(tc, s, SLAB_OWN_PARTIAL);
	return s;
}

/*
 * Fills an empty bin with up to half its capacity: posted objects first,
 * then the partial slabs (free objects, never-used objects, remote frees),
 * and another slab only when those gave nothing. Returns how many.
 */
static unsigned
tcache_fill(struct tcache *tc, unsigned sc)
{
	struct tbin *b = &tc->bins[sc];
	struct tclass *k = &tc->cls[sc];
	unsigned want = (unsigned)(b->end - b->base + 1) / 2;
	void **dst = b->cur;
	unsigned got = 0;

	zp_stat_inc(tc->nr_refill);
	k->busy_at = tc->nr_carves;
	/* Now and then is enough for chained remote frees to go home; not
	 * from a signal handler that interrupted this thread's remote free
	 * mid-chain. */
	if (!tc->chaining)
		rbatch_flush_all(tc);
	if (__atomic_load_n(&tc->mailbox, __ATOMIC_RELAXED) != 0)
		mail_drain(tc);
	while (got < want) {
		struct slab *s = k->partial;

		if (s == NULL && (got != 0 || (s = get_slab(tc, sc)) == NULL))
			break;
		got += slab_take(s, dst + got, want - got);
		if (got == want || slab_collect(s) != 0)
			continue;
		/* Nothing local and nothing remote: full until a remote
		 * free posts, or a flush gives an object back. */
		if (slab_delay(s)) {
			own_del(tc, s);
			own_add(tc, s, SLAB_OWN_FULL);
		}
	}
	/* The first object taken on top: a fresh slab hands out its
	 * objects in address order. */
	for (unsigned i = 0, j = got; i + 1 < j; i++, j--) {
		void *t = dst[i];

		dst[i] = dst[j - 1];
		dst[j - 1] = t;
	}
	b->cur = dst + got;
	zp_stat_add(k->nr_refilled, got);
	return got;
}

/* An object from the class's shared slab, while the thread has no bin
 * of its own for the class; NULL when it is not to use one. */
static void *
alloc_shared(struct tcache *tc, unsigned sc)
{
	struct tclass *k = &tc->cls[sc];
	void *p;

	if (!tc->use_shared || k->nr_shared >= SHARED_MAX ||
	    tc->bins[sc].base != NULL)
		return NULL;
	p = cache_alloc_shared(sc);
	if (p != NULL) {
		cls_mark(tc, sc);
		k->nr_shared++;
		zp_stat_inc(k->nr_alloc_slow);
		zp_stat_inc(k->nr_bump);
	}
	return p;
}

/* An object from a shared slab (live already); for calloc, cleared for
 * the bytes asked for. */
static void *
hand_out(void *p, size_t n, bool zero)
{
	return zero ? memset(p, 0, n) : p;
}

void *
tcache_alloc_light(unsigned sc, size_t n, bool zero)
{
	void *p;

	if (light_used >= LIGHT_MAX ||
	    __atomic_load_n(&nr_tcaches, __ATOMIC_RELAXED) == 0)
		return NULL;
	p = cache_alloc_shared(sc);
	if (p == NULL)
		return NULL;
	light_used++;
	if (ZP_IS_STATS)
		__atomic_add_fetch(&slab_cache_stats[sc].nr_alloc_slow, 1,
				   __ATOMIC_RELAXED);
	return hand_out(p, n, zero);
}

void *
tcache_alloc_slow(struct tcache *tc, unsigned sc)
{
	unsigned got;
	void *p;

	if (tc == &tcache_none || zp_lock_held_any())
		return NULL;
	rescue_pending();
	p = alloc_shared(tc, sc);
	if (p != NULL)
		return hand_out(p, 0, false);
	zp_lock(&tc->lock);
	bin_attach(tc, sc);
	got = tcache_fill(tc, sc);
	zp_unlock(&tc->lock);
	zone_limit_run_hook();
	if (got == 0)
		return NULL;
	zp_stat_inc(tc->cls[sc].nr_alloc_slow);
	return tcache_alloc(tc, sc);
}

/* The slab a calloc may take an untouched object from, if any. */
static struct slab *
zero_slab(struct tcache *tc, unsigned sc)
{
	struct slab *s = tc->cls[sc].partial;

	if (s == NULL)
		s = get_slab(tc, sc);
	if (s != NULL && (s->flags & SLAB_ZERO) &&
	    s->nr_carved < slab_nr_objs(s))
		return s;
	return NULL;
}

/* calloc with an empty bin: an untouched object of a zero slab needs no
 * clearing (and its pages stay the zero page until the program writes
 * them); otherwise a refill, and only the bytes asked for are cleared. */
void *
tcache_alloc_zero(struct tcache *tc, unsigned sc, size_t n)
{
	struct tbin *b = &tc->bins[sc];
	struct slab *s = NULL;
	void *p;

	if (tc == &tcache_none || zp_lock_held_any())
		return NULL;
	rescue_pending();
	p = alloc_shared(tc, sc);
	if (p != NULL)
		return hand_out(p, n, true);
	zp_lock(&tc->lock);
	bin_attach(tc, sc);
	if (b->cur == b->base)
		s = zero_slab(tc, sc);
	if (s != NULL) {
		p = slab_bump(s);
		zp_unlock(&tc->lock);
		zp_stat_inc(tc->cls[sc].nr_bump);
		zp_stat_inc(tc->cls[sc].nr_alloc_slow);
		return p;
	}
	zp_unlock(&tc->lock);
	p = tcache_alloc(tc, sc);
	if (p != NULL)
		memset(p, 0, n);
	return p;
}

/* --- flush and local frees ---------------------------------------------- */

/*
 * What a flush reads of the arena for every entry, held in registers:
 * the stores into bits and hold words could otherwise alias the globals
 * they come from, and each entry would load them again.
 */
struct flush_view {
	uintptr_t base;			/* zp_arena.base */
	uintptr_t bytes;		/* the arena zones' span */
	uint64_t *facts;
	uintptr_t bits_bias;
	uint32_t id;
};

/*
 * What a flush changes in a slab's lists, noted while it walks the bin
 * and done after it: an edge is the facts index of the slab's first page,
 * shifted left by 2, with these bits (at least one: an edge is never 0).
 * A slab has at most two in a flush, full first, then empty.
 */
#define EDGE_FULL	((uint64_t)1)	/* it left the full list */
#define EDGE_EMPTY	((uint64_t)2)	/* no object of it is out */
#define EDGE_SHIFT	2
/* Edges noted before they are done (a flush with more does them in
 * turns). */
#define EDGE_BATCH	64

/*
 * Bin entry a goes back to its slab. The facts word of a's page names
 * the holder; for a slab of tc's, the object's avail bit (in the line its
 * free touched a moment ago) and the slab's hold word (in the same line
 * of facts, for a slab of up to 8 pages) are all it writes. A slab that
 * leaves the full list or empties needs its descriptor: its edge is
 * returned, and the full mark cleared, so that the slab's later entries
 * note no second one (0: no edge). An entry within the arena's span is
 * an object of a slab the thread holds (its facts are committed): one
 * compare, not free()'s lookup; a LOW32 one (outside) takes the
 * descriptor's way.
 */
static zp_always_inline uint64_t
flush_one(struct tcache *tc, const struct flush_view *v, uintptr_t a)
{
	uintptr_t off = a - v->base, i = off >> ZP_PAGE_SHIFT;
	uint64_t f = 0, h, *w;
	unsigned order;

	if (zp_likely(off < v->bytes))
		f = __atomic_load_n(&v->facts[i], __ATOMIC_RELAXED);
	/* Ids are never 0: a page without facts fails the compare too. */
	if (zp_unlikely(slab_facts_owner(f) != v->id)) {
		give_back(tc, (void *)a, slab_of_ptr(a));
		return 0;
	}
	order = slab_facts_order(f);
	i = page_block_first(i, order);
	w = slab_avail_word_at(v->bits_bias, a);
	h = slab_hold_give_at(&v->facts[i], w, a,
			      (ZP_PAGE_SIZE << order) - 1);
	if (zp_likely(!(h & SLAB_HOLD_FULL) && (h & SLAB_HOLD_INUSE)))
		return 0;
	if (h & SLAB_HOLD_FULL)
		__atomic_store_n(&v->facts[i], h & ~SLAB_HOLD_FULL,
				 __ATOMIC_RELAXED);
	return (uint64_t)i << EDGE_SHIFT |
	       (h & SLAB_HOLD_FULL ? EDGE_FULL : 0) |
	       (h & SLAB_HOLD_INUSE ? 0 : EDGE_EMPTY);
}

static struct slab *
edge_slab(uint64_t e)
{
	return slab_of(&zp_arena.descs[e >> EDGE_SHIFT]);
}

/*
 * The list changes a flush noted, as gave_back_to would have made them
 * one entry at a time. Done together, their misses overlap: every
 * descriptor is asked for first, then every list neighbour, and the
 * atomic ops (undelay, the cache lock: each waits for the stores before
 * it) come in runs. A slab that left the full list and emptied in one
 * entry goes from full to spare or to the zone directly; with an edge
 * for each, by way of partial. Emptied slabs past the spare go back
 * under one cache lock.
 */
static zp_noinline void
flush_edges(struct tcache *tc, unsigned sc, const uint64_t *e, unsigned n)
{
	struct tclass *k = &tc->cls[sc];
	struct slab *empties = NULL;

	for (unsigned j = 0; j < n; j++)
		__builtin_prefetch(edge_slab(e[j]), 1);
	for (unsigned j = 0; j < n; j++) {
		struct slab *s = edge_slab(e[j]);

		__builtin_prefetch(s->prev, 1);
		__builtin_prefetch(s->next, 1);
	}
	/* The descriptor decides, as in gave_back_to (the hold word's full
	 * bit only mirrors it). */
	for (unsigned j = 0; j < n; j++)
		if (edge_slab(e[j])->where == SLAB_OWN_FULL)
			slab_undelay(edge_slab(e[j]));
	for (unsigned j = 0; j < n; j++) {
		struct slab *s = edge_slab(e[j]);
		bool emptied = (e[j] & EDGE_EMPTY) && !tc->is_flushing;

		if (s->where == SLAB_OWN_FULL) {
			own_del(tc, s);
			if (!emptied)
				own_add(tc, s, SLAB_OWN_PARTIAL);
		} else if (emptied) {
			own_del(tc, s);
		}
		if (!emptied)
			continue;
		if (k->spare == NULL) {
			k->spare = s;
			s->where = SLAB_OWN_SPARE;
			continue;
		}
		if (slab_is_freeing(s)) {
			own_add(tc, s, SLAB_OWN_PARTIAL);
			continue;
		}
		s->next = empties;
		empties = s;
	}
	if (empties != NULL)
		cache_put_list(sc, NULL, empties, tc->pcp);
}

/* Gives the n newest objects of a bin back to their slabs (all of them at
 * trim and exit). A full bin gives half: freed within the last few dozen
 * frees, their lines and their facts are still in the cache, and one
 * lock serves them all. (The oldest would have gone cold long ago: a
 * program freeing a large structure in random order paid every miss
 * twice.) */
static void
bin_flush(struct tcache *tc, unsigned sc, unsigned n)
{
	struct tbin *b = &tc->bins[sc];
	const struct flush_view v = {
		.base = zp_arena.base,
		.bytes = (uintptr_t)zp_arena.nr_zones << zp_arena.zone_shift,
		.facts = zp_arena.facts,
		.bits_bias = zp_arena.bits_bias,
		.id = tc->id,
	};
	uint64_t edges[EDGE_BATCH];
	unsigned nr_edges = 0;
	void **end = b->cur;

	zp_stat_inc(tc->nr_flush);
	for (void **q = end - n; q < end; q++) {
		uint64_t e = flush_one(tc, &v, (uintptr_t)*q);

		if (zp_likely(e == 0))
			continue;
		edges[nr_edges++] = e;
		if (nr_edges == EDGE_BATCH) {
			flush_edges(tc, sc, edges, nr_edges);
			nr_edges = 0;
		}
	}
	if (nr_edges != 0)
		flush_edges(tc, sc, edges, nr_edges);
	b->cur = end - n;
	zp_stat_add(tc->cls[sc].nr_flushed, n);
}

/* A local free into a full bin (or one the thread has not used yet):
 * the bin's newest half goes back to the slabs first. */
void
tcache_free_slow(struct tcache *tc, void *p, unsigned sc)
{
	struct tbin *b = &tc->bins[sc];

	if (zp_lock_held_any()) {
		free_alone(p, true);
		return;
	}
	rescue_pending();
	zp_lock(&tc->lock);
	bin_attach(tc, sc);
	if (b->cur == b->end)
		bin_flush(tc, sc, (unsigned)(b->end - b->base + 1) / 2);
	tc->cls[sc].busy_at = tc->nr_carves;
	zp_unlock(&tc->lock);
	tbin_push(b, p);
}

/* --- giving slabs up ----------------------------------------------------- */

/* Unowned and full: nobody looks at it until a remote free rescues it.
 * False when a remote free arrived first. */
static bool
park(struct tcache *tc, struct slab *s)
{
	uintptr_t expect = SLAB_NORMAL;

	/* Ordered before the CAS by its release: once PARKED is visible a
	 * rescuer may hand s to its cache at once. */
	slab_set_owner(s, SLAB_UNOWNED);
	if (__atomic_compare_exchange_n(&s->remote, &expect, SLAB_PARKED,
					false, __ATOMIC_RELEASE,
					__ATOMIC_RELAXED))
		return true;
	slab_set_owner(s, tc);
	return false;
}

/* Sorts a settled slab for its cache: onto *empties, onto *orphans, or
 * parked (full: no list at all). */
static void
release(struct tcache *tc, struct slab *s, struct slab **orphans,
	struct slab **empties)
{
	own_del(tc, s);
	for (;;) {
		slab_collect(s);
		if (slab_inuse(s) == 0) {
			s->next = *empties;
			*empties = s;
			return;
		}
		if (slab_has_local(s)) {
			s->next = *orphans;
			*orphans = s;
			return;
		}
		if (park(tc, s))
			return;
	}
}

static void
settle_list(struct slab *s)
{
	for (; s != NULL; s = s->next)
		slab_settle(s);
}

/* Before tc's slabs are sorted for giving up: no post in flight and none
 * to come, so the mailbox is final once drained. */
static void
settle_all(struct tcache *tc)
{
	for_each_used_class(tc, sc) {
		settle_list(tc->cls[sc].partial);
		settle_list(tc->cls[sc].full);
	}
	mail_drain(tc);
}

/* Gives up every slab tc holds, its bins emptied first (tc->lock held,
 * by the owner itself: at its exit or trim). */
static void
give_up(struct tcache *tc)
{
	rbatch_flush_all(tc);
	settle_all(tc);
	/* Slabs that empty now stay where they are, for one lock a class. */
	tc->is_flushing = true;
	for_each_used_class(tc, sc) {
		struct tbin *b = &tc->bins[sc];
		struct tclass *k = &tc->cls[sc];
		struct slab *orphans = NULL, *empties = NULL;

		if (b->cur != b->base)
			bin_flush(tc, sc, (unsigned)(b->cur - b->base));
		while (k->partial != NULL)
			release(tc, k->partial, &orphans, &empties);
		while (k->full != NULL)
			release(tc, k->full, &orphans, &empties);
		if (k->spare != NULL)
			release(tc, k->spare, &orphans, &empties);
		if (orphans != NULL || empties != NULL)
			cache_put_list(sc, orphans, empties, tc->pcp);
	}
	tc->is_flushing = false;
}

void
tcache_flush(struct tcache *tc)
{
	zp_lock(&tc->lock);
	give_up(tc);
	zp_unlock(&tc->lock);
}

/* Sorts one of another thread's settled slabs (trim): emptied by the
 * frees collected now (or its spare), onto *empties; else it stays, a
 * full one delayed again or partial if frees came in meanwhile. */
static void
trim_keep_or_take(struct tcache *tc, struct slab *s, struct slab **empties)
{
	slab_collect(s);
	if (slab_inuse(s) == 0) {
		own_del(tc, s);
		s->next = *empties;
		*empties = s;
		return;
	}
	if (s->where == SLAB_OWN_FULL &&
	    (slab_has_local(s) || !slab_delay(s))) {
		own_del(tc, s);
		own_add(tc, s, SLAB_OWN_PARTIAL);
	}
}

/*
 * malloc_trim from another thread (tc->lock held): every slab of tc's
 * that remote frees emptied, and its spare, go back; one with an object
 * out (live, or in tc's bins) stays tc's, whose malloc and free write its
 * bits without a lock.
 */
static void
trim_other(struct tcache *tc)
{
	settle_all(tc);
	for_each_used_class(tc, sc) {
		struct tclass *k = &tc->cls[sc];
		struct slab *empties = NULL, *s, *next;
		struct slab *lists[2] = { k->partial, k->full };

		for (unsigned i = 0; i < 2; i++)
			for (s = lists[i]; s != NULL; s = next) {
				next = s->next;
				trim_keep_or_take(tc, s, &empties);
			}
		if (k->spare != NULL)
			trim_keep_or_take(tc, k->spare, &empties);
		if (empties != NULL)
			cache_put_list(sc, NULL, empties, tc->pcp);
	}
}

/* Slabs of a holder a take looks at: a thread holding thousands of a
 * class is not walked whole at every carve. */
#define TAKE_SCAN	64

/*
 * o's partial slabs of class sc that no object is out of go onto
 * *empties (o->lock held, its mailbox just drained): the drain put the
 * slabs that remote frees reached while full at the head of the list.
 * Nothing here waits: a slab with a post in flight is left for later
 * (false: look again). An emptied slab past the first TAKE_SCAN waits
 * for its holder (refill, trim, exit): looking again would walk the
 * same slabs at every carve.
 */
static bool
take_from(struct tcache *o, unsigned sc, struct slab **empties)
{
	struct slab *s, *next;
	unsigned budget = TAKE_SCAN;
	bool done = true;

	for (s = o->cls[sc].partial; s != NULL && budget != 0; s = next) {
		next = s->next;
		budget--;
		if (slab_is_freeing(s)) {
			done = false;
			continue;
		}
		slab_collect(s);
		if (slab_inuse(s) == 0) {
			own_del(o, s);
			s->next = *empties;
			*empties = s;
		}
	}
	return done;
}

/*
 * Before tc carves a new slab of class sc (tc->lock held): the slabs of
 * the class that remote frees emptied in other live threads go back to
 * the zone through tc's page cache, where the carve finds their pages.
 * The registry's and the holders' locks are tried, never waited for: tc's
 * own is held, and a holder may be waiting for one of ours (or be the
 * thread a signal handler of ours interrupted). A holder passed over
 * leaves the class marked.
 */
static void
take_emptied(struct tcache *tc, unsigned sc)
{
	bool missed = false;

	if (!__atomic_load_n(&emptied_elsewhere[sc], __ATOMIC_RELAXED) ||
	    !zp_trylock(&registry_lock))
		return;
	__atomic_store_n(&emptied_elsewhere[sc], 0, __ATOMIC_RELAXED);
	for (struct tcache *o = registry_head; o != NULL; o = o->reg_next) {
		struct slab *empties = NULL;

		/* Read without its lock: a thread with neither posts nor
		 * partial slabs of the class has nothing to give. */
		if (o == tc || !cls_is_used(o, sc) ||
		    (__atomic_load_n(&o->mailbox, __ATOMIC_RELAXED) == 0 &&
		     __atomic_load_n(&o->cls[sc].partial,
				     __ATOMIC_RELAXED) == NULL))
			continue;
		if (!zp_trylock(&o->lock)) {
			missed = true;
			continue;
		}
		mail_drain(o);
		if (!take_from(o, sc, &empties))
			missed = true;
		zp_unlock(&o->lock);
		if (empties != NULL) {
			zp_stat_inc(tc->nr_taken_emptied);
			cache_put_list(sc, NULL, empties, tc->pcp);
		}
	}
	zp_unlock(&registry_lock);
	if (missed)
		__atomic_store_n(&emptied_elsewhere[sc], 1, __ATOMIC_RELAXED);
}

void
tcache_trim_others(struct tcache *self)
{
	zp_lock(&registry_lock);
	for (struct tcache *tc = registry_head; tc; tc = tc->reg_next) {
		if (tc == self)
			continue;
		zp_lock(&tc->lock);
		trim_other(tc);
		if (tc->pcp)
			pcp_drain(tc->pcp);
		zp_unlock(&tc->lock);
	}
	zp_unlock(&registry_lock);
}

void
tcache_postfork_child(struct tcache *tc)
{
	/* The only thread left: a fork from a signal handler may have
	 * interrupted its own slow path. */
	zp_lock_postfork_child(&tc->lock);
	tc->reg_next = tc->reg_prev = NULL;
	registry_head = tc;
	for_each_used_class(tc, sc) {
		struct slab *lists[2] = { tc->cls[sc].partial,
					  tc->cls[sc].full };

		for (unsigned i = 0; i < 2; i++)
			for (struct slab *s = lists[i]; s; s = s->next) {
				uintptr_t old = __atomic_load_n(
					&s->remote, __ATOMIC_RELAXED);

				if ((old & SLAB_STATE) == SLAB_FREEING)
					__atomic_store_n(&s->remote,
							 old & ~SLAB_STATE,
							 __ATOMIC_RELAXED);
			}
	}
}

/* --- statistics ---------------------------------------------------------- */

static uint64_t
rd(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static uint64_t
sub_floor(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

/* One thread's figures for a class; other threads' are read racily, so
 * the subtraction may briefly come out below zero. */
static void
class_stats_of(struct tcache *tc, unsigned sc, struct tcache_class_stats *o)
{
	const struct tclass *k = &tc->cls[sc];
	const struct tbin *b = &tc->bins[sc];
	void **cur = __atomic_load_n(&b->cur, __ATOMIC_RELAXED);
	uint64_t popped = rd(&b->nr_alloc);
	uint64_t out = popped + rd(&k->nr_flushed) + (uint64_t)(cur - b->base);

	o->nr_alloc_slow = rd(&k->nr_alloc_slow);
	o->nr_alloc_fast = sub_floor(popped + rd(&k->nr_bump),
				     o->nr_alloc_slow);
	o->nr_free_local = sub_floor(out, rd(&k->nr_refilled));
	o->nr_free_remote = rd(&k->nr_free_remote);
}

static void
fold_stats_locked(struct tcache *tc)
{
	for_each_used_class(tc, sc) {
		struct slab_cache_stats *c = &slab_cache_stats[sc];
		struct tcache_class_stats st;

		class_stats_of(tc, sc, &st);
		__atomic_add_fetch(&c->nr_alloc_fast, st.nr_alloc_fast,
				   __ATOMIC_RELAXED);
		__atomic_add_fetch(&c->nr_alloc_slow, st.nr_alloc_slow,
				   __ATOMIC_RELAXED);
		__atomic_add_fetch(&c->nr_free_local, st.nr_free_local,
				   __ATOMIC_RELAXED);
		__atomic_add_fetch(&c->nr_free_remote, st.nr_free_remote,
				   __ATOMIC_RELAXED);
	}
	exited_paths.nr_refill += tc->nr_refill;
	exited_paths.nr_flush += tc->nr_flush;
	exited_paths.nr_new += tc->nr_new;
	exited_paths.nr_mail += tc->nr_mail;
	exited_paths.nr_adopt += tc->nr_adopt;
	exited_paths.nr_taken += tc->nr_taken_emptied;
}

void
tcache_fini(struct tcache *tc)
{
	rescue_pending();
	tcache_flush(tc);
	zp_lock(&registry_lock);
	if (tc->reg_prev)
		tc->reg_prev->reg_next = tc->reg_next;
	else
		registry_head = tc->reg_next;
	if (tc->reg_next)
		tc->reg_next->reg_prev = tc->reg_prev;
	tc->reg_next = tc->reg_prev = NULL;
	fold_stats_locked(tc);
	/* No slab names it any more: tcache_flush gave them all up. */
	id_release(tc->id);
	tc->id = TCACHE_NO_ID;
	zp_unlock(&registry_lock);
}

void
tcache_class_stats(unsigned sc, struct tcache_class_stats *out)
{
	const struct slab_cache_stats *c = &slab_cache_stats[sc];

	if (!cache_is_used(sc)) {	/* no object: no counts */
		*out = (struct tcache_class_stats){ 0 };
		return;
	}
	zp_lock(&registry_lock);
	out->nr_alloc_fast = rd(&c->nr_alloc_fast);
	out->nr_alloc_slow = rd(&c->nr_alloc_slow);
	out->nr_free_local = rd(&c->nr_free_local);
	out->nr_free_remote = rd(&c->nr_free_remote);
	for (struct tcache *tc = registry_head; tc; tc = tc->reg_next) {
		struct tcache_class_stats st;

		if (!cls_is_used(tc, sc))	/* no counts */
			continue;
		class_stats_of(tc, sc, &st);
		out->nr_alloc_fast += st.nr_alloc_fast;
		out->nr_alloc_slow += st.nr_alloc_slow;
		out->nr_free_local += st.nr_free_local;
		out->nr_free_remote += st.nr_free_remote;
	}
	zp_unlock(&registry_lock);
}

void
tcache_path_stats(struct tcache_path_stats *out)
{
	zp_lock(&registry_lock);
	*out = exited_paths;
	out->nr_threads = 0;
	for (struct tcache *tc = registry_head; tc; tc = tc->reg_next) {
		out->nr_threads++;
		out->nr_refill += rd(&tc->nr_refill);
		out->nr_flush += rd(&tc->nr_flush);
		out->nr_new += rd(&tc->nr_new);
		out->nr_mail += rd(&tc->nr_mail);
		out->nr_adopt += rd(&tc->nr_adopt);
		out->nr_taken += rd(&tc->nr_taken_emptied);
	}
	zp_unlock(&registry_lock);
	for (unsigned sc = 0; sc < SC_NR; sc++) {
		const struct slab_cache_stats *c = cache_stats_peek(sc);

		out->nr_orphan += rd(&c->nr_orphan);
		out->nr_rescue += rd(&c->nr_rescue);
	}
}

void
tcache_registry_prefork(void)
{
	zp_lock_prefork(&registry_lock);
}

void
tcache_registry_postfork_parent(void)
{
	zp_lock_postfork_parent(&registry_lock);
}

void
tcache_registry_postfork_child(void)
{
	zp_lock_postfork_child(&registry_lock);
	/* The other threads are gone, their caches with whatever state
	 * their slow paths were in: nothing may lock or walk them again
	 * (their slabs stay with them; the child rarely lives long).
	 * tcache_postfork_child puts the forking thread's back. */
	registry_head = NULL;
}
