/*
 * test_tcache.c - per-thread caches across threads: remote frees,
 * orphaned slabs after thread exit, adoption, cross-thread double frees,
 * cache-line separation between threads, and fork.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zpmalloc.h>

#include "os/os.h"
#include "page/zone.h"
#include "slab/cache.h"
#include "slab/tcache.h"

#include "check.h"
#include "zone_fixture.h"
#include "watchdog.h"

/* What the malloc layer's struct tstate holds for the slab layer. */
struct tstate {
	struct tcache tc;
	struct pcp_set pcp;
};

static void
setup(void)
{
	boot_small_zone();
	slab_boot(os_random64());
}

TestSuite(tcache, .init = setup);

static void
ts_init(struct tstate *ts)
{
	memset(ts, 0, sizeof(*ts));
	pcp_init(&ts->pcp, 0);
	tcache_init(&ts->tc, &ts->pcp);
}

static void
ts_fini(struct tstate *ts)
{
	tcache_fini(&ts->tc);
	pcp_drain(&ts->pcp);
}

static uint64_t
used_pages(void)
{
	struct zp_zone_info zi;
	uint64_t used = 0;

	for (unsigned i = 0; zone_info(i, &zi) == 0; i++)
		used += (zi.grown_bytes >> ZP_PAGE_SHIFT) -
			zi.nr_free_pages;
	return used;
}

/* Frees as free() does, through the page's facts word, which must say
 * what the slab's descriptor says (the owner may change under us). */
#define FACTS_NOT_OWNER	(((uint64_t)1 << SLAB_FACTS_OWNER_SHIFT) - 1)

static void
xfree(struct tcache *tc, void *p)
{
	struct page *pg = page_lookup(p);
	uint64_t f = page_facts_fast(p);

	CHECK((pg) != NULL, "pg is NULL");
	CHECK_OP(f & ~SLAB_HOLD_BITS & FACTS_NOT_OWNER, ==,
		 slab_facts(slab_head(slab_of(pg))) & FACTS_NOT_OWNER);
	tcache_free(tc, p, f);
}

/* --- producer / consumer ---------------------------------------------- */

#define RING 1024

struct ring {
	void *slot[RING];
	unsigned long head, tail;	/* head: next put; tail: next take */
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool done;
};

static void
ring_put(struct ring *r, void *p)
{
	pthread_mutex_lock(&r->m);
	while (r->head - r->tail == RING)
		pthread_cond_wait(&r->cv, &r->m);
	r->slot[r->head++ % RING] = p;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->m);
}

static void *
ring_take(struct ring *r)
{
	void *p = NULL;

	pthread_mutex_lock(&r->m);
	while (r->head == r->tail && !r->done)
		pthread_cond_wait(&r->cv, &r->m);
	if (r->head != r->tail)
		p = r->slot[r->tail++ % RING];
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->m);
	return p;
}

enum { PC_OBJECTS = 200000 };

static struct ring ring = {
	.m = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
};
static unsigned long nr_consumed;

static void *
producer(void *arg)
{
	struct tstate ts;

	(void)arg;
	ts_init(&ts);
	for (unsigned i = 0; i < PC_OBJECTS; i++) {
		unsigned sc = i % 24;
		uint32_t *p = tcache_alloc(&ts.tc, sc);

		CHECK((p) != NULL, "p is NULL");
		p[1] = i;
		p[2] = ~i;
		ring_put(&ring, p);
	}
	ts_fini(&ts);
	return NULL;
}

static void *
consumer(void *arg)
{
	struct tstate ts;
	uint32_t *p;

	(void)arg;
	ts_init(&ts);
	while ((p = ring_take(&ring)) != NULL) {
		CHECK_OP(p[2], ==, ~p[1], "object %p corrupted", (void *)p);
		xfree(&ts.tc, p);
		__atomic_add_fetch(&nr_consumed, 1, __ATOMIC_RELAXED);
	}
	ts_fini(&ts);
	return NULL;
}

Test(tcache, remote_frees_from_consumers_return_everything)
{
	uint64_t before = used_pages();
	pthread_t prod, cons[3];

	pthread_create(&prod, NULL, producer, NULL);
	for (int i = 0; i < 3; i++)
		pthread_create(&cons[i], NULL, consumer, NULL);
	pthread_join(prod, NULL);
	pthread_mutex_lock(&ring.m);
	ring.done = true;
	pthread_cond_broadcast(&ring.cv);
	pthread_mutex_unlock(&ring.m);
	for (int i = 0; i < 3; i++)
		pthread_join(cons[i], NULL);
	CHECK_OP(nr_consumed, ==, PC_OBJECTS);
	if (ZP_IS_STATS) {
		struct zp_slab_info si;
		uint64_t remote = 0, frees = 0;

		for (unsigned sc = 0; sc < 24; sc++) {
			slab_info(sc, &si);
			CHECK_OP(si.active_objects, ==, 0, "class %u", sc);
			remote += si.nr_free_remote;
			frees += si.nr_free_remote + si.nr_free_local;
		}
		/* Consumers free remotely, or locally into parked slabs
		 * they claimed; nothing else frees. */
		CHECK_OP(frees, ==, PC_OBJECTS);
		CHECK_OP(remote, >, 0);
	}
	slab_trim();
	CHECK_OP(used_pages(), ==, before, "pages leaked");
	CHECK(zone_check_all(), "zone_check_all()");
}

/* --- orphans ------------------------------------------------------------ */

enum { ORPHANS = 5000 };
static void *orphan[ORPHANS];

static void *
allocate_and_exit(void *arg)
{
	struct tstate ts;

	(void)arg;
	ts_init(&ts);
	for (unsigned i = 0; i < ORPHANS; i++) {
		orphan[i] = tcache_alloc(&ts.tc, i % 10);
		memset(orphan[i], 0x5a, sizeclass_size(i % 10));
	}
	/* Some freed by their owner: partial slabs on exit. */
	for (unsigned i = 0; i < ORPHANS; i += 3) {
		xfree(&ts.tc, orphan[i]);
		orphan[i] = NULL;
	}
	ts_fini(&ts);
	return NULL;
}

Test(tcache, orphans_survive_exit_and_are_freed_by_others)
{
	uint64_t before = used_pages();
	struct tstate me;
	pthread_t t;

	pthread_create(&t, NULL, allocate_and_exit, NULL);
	pthread_join(t, NULL);
	ts_init(&me);
	for (unsigned i = 0; i < ORPHANS; i++) {
		unsigned char *p = orphan[i];

		if (p == NULL)
			continue;
		for (size_t j = 0; j < sizeclass_size(i % 10); j++)
			CHECK_OP(p[j], ==, 0x5a, "orphan %p byte %zu", p, j);
		/* Half with a tcache, half as a thread without state. */
		xfree(i & 1 ? &me.tc : &tcache_none, p);
	}
	ts_fini(&me);
	slab_trim();
	CHECK_OP(used_pages(), ==, before, "orphaned slabs leaked");
}

static bool
overlaps(uintptr_t p, size_t psz, uintptr_t q, size_t qsz)
{
	return p < q + qsz && q < p + psz;
}

/* Objects that outlive their thread must not each pin a slab: the next
 * thread to allocate in those classes takes the orphans' free objects
 * before it carves a new slab, and never hands out a live one. */
Test(tcache, orphans_with_free_objects_are_adopted)
{
	enum { MINE = 40 };
	static void *mine[MINE];
	struct zp_slab_info si;
	uint64_t slabs[10];
	struct tstate me;
	pthread_t t;

	pthread_create(&t, NULL, allocate_and_exit, NULL);
	pthread_join(t, NULL);
	for (unsigned sc = 0; sc < 10; sc++) {
		slab_info(sc, &si);
		slabs[sc] = si.total_slabs;
	}
	ts_init(&me);
	for (unsigned i = 0; i < MINE; i++)
		mine[i] = tcache_alloc(&me.tc, i % 10);
	for (unsigned sc = 0; sc < 10; sc++) {
		slab_info(sc, &si);
		CHECK_OP(si.total_slabs, ==, slabs[sc],
			 "class %u carved a slab with orphans to adopt", sc);
	}
	for (unsigned i = 0; i < MINE; i++) {
		size_t msz = sizeclass_size(i % 10);

		for (unsigned j = 0; j < ORPHANS; j++)
			CHECK(orphan[j] == NULL ||
			      !overlaps((uintptr_t)mine[i], msz,
					(uintptr_t)orphan[j],
					sizeclass_size(j % 10)),
			      "%p overlaps live orphan %p", mine[i],
			      orphan[j]);
	}
}

Test(tcache, emptied_orphans_are_reused_before_the_zone)
{
	struct tstate me;
	struct zp_slab_info si;
	uint64_t slabs[10];
	pthread_t t;

	pthread_create(&t, NULL, allocate_and_exit, NULL);
	pthread_join(t, NULL);
	ts_init(&me);
	/* Remote frees empty the orphans... */
	for (unsigned i = 0; i < ORPHANS; i++)
		if (orphan[i] != NULL)
			xfree(&me.tc, orphan[i]);
	for (unsigned sc = 0; sc < 10; sc++) {
		slab_info(sc, &si);
		slabs[sc] = si.total_slabs;
	}
	/* ...and the refills find them empty instead of growing. */
	for (unsigned i = 0; i < ORPHANS; i++)
		CHECK(tcache_alloc(&me.tc, i % 10) != NULL, "out of memory");
	for (unsigned sc = 0; sc < 10; sc++) {
		slab_info(sc, &si);
		CHECK_OP(si.total_slabs, <=, slabs[sc], "class %u grew", sc);
	}
}

/* --- thread separation ---------------------------------------------- */

enum { SEP = 2000 };
static uintptr_t sep_obj[2][SEP];

static void *
sep_thread(void *arg)
{
	uintptr_t *out = arg;
	struct tstate ts;

	ts_init(&ts);
	for (unsigned i = 0; i < SEP; i++)
		out[i] = (uintptr_t)tcache_alloc(&ts.tc, 0);
	return NULL;	/* no fini: objects stay live for the check */
}

static int
cmp_uptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

Test(tcache, threads_never_share_a_cache_line)
{
	pthread_t t[2];
	uintptr_t *lines;

	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, sep_thread, sep_obj[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	lines = calloc(SEP, sizeof(*lines));
	for (unsigned i = 0; i < SEP; i++)
		lines[i] = sep_obj[0][i] / ZP_CACHELINE;
	qsort(lines, SEP, sizeof(*lines), cmp_uptr);
	for (unsigned i = 0; i < SEP; i++) {
		uintptr_t l = sep_obj[1][i] / ZP_CACHELINE;

		CHECK((bsearch(&l, lines, SEP, sizeof(*lines),
				       cmp_uptr)) == NULL,
		      "line %#lx used by both threads",
		      (unsigned long)l);
	}
	free(lines);
}

/* --- facts words and owner ids ---------------------------------------- */

Test(tcache, facts_words_follow_their_slab)
{
	struct tstate a, b;
	unsigned sc = sizeclass_of(3000);	/* a slab of several pages */
	unsigned n = 2u * slab_class[sc].nr_objs;
	void **v = calloc(n, sizeof(*v));
	char *p;
	struct slab *s;
	size_t bytes;

	ts_init(&a);
	ts_init(&b);
	CHECK_OP(a.tc.id, !=, 0);
	CHECK_OP(b.tc.id, !=, 0);
	CHECK_OP(a.tc.id, !=, b.tc.id);
	/* Past the first (small) slab: one of slab_class's own order. */
	for (unsigned i = 0; i < n; i++)
		v[i] = tcache_alloc(&a.tc, sc);
	p = v[n - 1];
	s = slab_head(slab_of(page_lookup(p)));
	bytes = ZP_PAGE_SIZE << s->order;
	CHECK_OP(s->order, >, 0);
	for (size_t off = 0; off < bytes; off += ZP_PAGE_SIZE) {
		uint64_t f = page_facts_fast(
			(char *)page_address(slab_page(s)) + off);

		CHECK_OP(slab_facts_sc(f), ==, sc);
		CHECK_OP(slab_facts_order(f), ==, s->order);
		CHECK_OP(slab_facts_owner(f), ==, a.tc.id);
		/* The holder's count (nothing freed yet: all it carved)
		 * is the first page's alone. */
		CHECK_OP(slab_hold_inuse(f), ==, off ? 0 : s->nr_carved);
	}
	/* Given up (as at exit): no thread's id any more. */
	tcache_flush(&a.tc);
	CHECK_OP(slab_facts_owner(page_facts_fast(p)), ==,
		 SLAB_FACTS_NO_OWNER);
	for (unsigned i = 0; i < n; i++)
		xfree(&b.tc, v[i]);
	free(v);
	ts_fini(&a);
	ts_fini(&b);
	slab_trim();
	/* Back in the zone: no slab's facts. */
	CHECK_OP(page_facts_fast(p), ==, 0);
}

/* Is any whole page of [s, e) resident? */
static bool
range_resident(uintptr_t s, uintptr_t e)
{
	unsigned char vec[512];

	s = zp_align_up(s, ZP_PAGE_SIZE);
	e = zp_align_down(e, ZP_PAGE_SIZE);
	CHECK_OP(e - s, <=, sizeof(vec) * ZP_PAGE_SIZE);
	CHECK_OP(mincore((void *)s, e - s, vec), ==, 0);
	for (size_t i = 0; i < (e - s) / ZP_PAGE_SIZE; i++)
		if (vec[i] & 1)
			return true;
	return false;
}

/* Is any of the facts pages of [lo, hi) resident? */
static bool
facts_resident(uintptr_t lo, uintptr_t hi)
{
	return range_resident(
		(uintptr_t)&zp_arena.facts[(lo - zp_arena.base) >>
					   ZP_PAGE_SHIFT],
		(uintptr_t)&zp_arena.facts[(hi - zp_arena.base) >>
					   ZP_PAGE_SHIFT]);
}

/* Is any of the pages of bits of [lo, hi) resident? */
static bool
bits_resident(uintptr_t lo, uintptr_t hi)
{
	return range_resident((uintptr_t)slab_live_word(lo),
			      (uintptr_t)slab_live_word(hi));
}

/* Memory given back takes its facts pages and its pages of bits with it
 * (they would be 1/512 and 1/64 of it, resident for nothing). */
Test(tcache, purged_memory_takes_its_facts_pages)
{
	enum { N = (24 << 20) / 64 };
	struct tstate ts;
	unsigned sc = sizeclass_of(64);
	void **v = calloc(N, sizeof(*v));
	uintptr_t lo = UINTPTR_MAX, hi = 0;

	ts_init(&ts);
	for (unsigned i = 0; i < N; i++) {
		v[i] = tcache_alloc(&ts.tc, sc);
		lo = ZP_MIN(lo, (uintptr_t)v[i]);
		hi = ZP_MAX(hi, (uintptr_t)v[i]);
	}
	CHECK(facts_resident(lo, hi), "no facts page was written");
	CHECK(bits_resident(lo, hi), "no page of bits was written");
	for (unsigned i = 0; i < N; i++)
		xfree(&ts.tc, v[i]);
	ts_fini(&ts);
	slab_trim();
	zone_purge(true);
	CHECK(!facts_resident(lo, hi), "facts pages stay resident");
	CHECK(!bits_resident(lo, hi), "pages of bits stay resident");
	free(v);
}

/* Ids are the lowest free, past the first 512 too (the words of the id map
 * after the first eight live apart), and come back when a cache goes. */
Test(tcache, ids_are_unique_lowest_free_and_reused_past_the_first_512)
{
	enum { N = 600 };
	struct tstate *ts = calloc(N + 2, sizeof(*ts));
	uint32_t ids[N];

	CHECK((ts) != NULL, "calloc failed");
	for (unsigned i = 0; i < N; i++) {
		ts_init(&ts[i]);
		ids[i] = ts[i].tc.id;
		CHECK_OP(ids[i], ==, ids[0] + i);
	}
	CHECK_OP(ids[N - 1], >, 512);
	ts_fini(&ts[5]);
	ts_fini(&ts[550]);
	ts_init(&ts[N]);
	ts_init(&ts[N + 1]);
	CHECK_OP(ts[N].tc.id, ==, ids[5]);
	CHECK_OP(ts[N + 1].tc.id, ==, ids[550]);
	for (unsigned i = 0; i < N + 2; i++)
		if (i != 5 && i != 550)
			ts_fini(&ts[i]);
	free(ts);
}

/* A cache without an id (every one taken) frees into its own slabs by
 * the remote path: slower, just as right. */
Test(tcache, cache_without_id_still_frees)
{
	struct tstate ts;
	unsigned sc = sizeclass_of(64);
	uint64_t before = used_pages();
	void *v[3000];

	ts_init(&ts);
	tcache_lock(&ts.tc);
	ts.tc.id = TCACHE_NO_ID;
	tcache_unlock(&ts.tc);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 3000; i++) {
			v[i] = tcache_alloc(&ts.tc, sc);
			memset(v[i], round, 64);
			CHECK_OP(slab_facts_owner(page_facts_fast(v[i])), ==,
				 SLAB_FACTS_NO_OWNER);
		}
		for (int i = 0; i < 3000; i++)
			xfree(&ts.tc, v[i]);
	}
	/* The frees came back for reuse: three rounds took one round's
	 * pages. */
	CHECK_OP(used_pages() - before, <=,
		 (uint64_t)(3000 * 64 / ZP_PAGE_SIZE + 16));
	ts_fini(&ts);
}

/* --- double free across threads ---------------------------------------- */

static void *victim;

static void *
free_it(void *arg)
{
	struct tstate ts;

	(void)arg;
	ts_init(&ts);
	xfree(&ts.tc, victim);
	return NULL;
}

Test(tcache, remote_double_free_aborts, .signal = SIGABRT)
{
	struct tstate me;
	pthread_t t;

	ts_init(&me);
	victim = tcache_alloc(&me.tc, 6);
	tcache_alloc(&me.tc, 6);
	pthread_create(&t, NULL, free_it, NULL);
	pthread_join(t, NULL);
	pthread_create(&t, NULL, free_it, NULL);
	pthread_join(t, NULL);
}

Test(tcache, local_then_remote_double_free_aborts, .signal = SIGABRT)
{
	struct tstate me;
	pthread_t t;

	ts_init(&me);
	victim = tcache_alloc(&me.tc, 6);
	tcache_alloc(&me.tc, 6);
	xfree(&me.tc, victim);
	pthread_create(&t, NULL, free_it, NULL);
	pthread_join(t, NULL);
}

/* --- parked slabs, flush, fork ---------------------------------------- */

Test(tcache, full_slabs_come_back_through_remote_frees)
{
	struct tstate me;
	unsigned sc = 9;
	unsigned n = slab_class[sc].nr_objs * 6;
	void **v = calloc(n, sizeof(*v));
	uint64_t before = used_pages();
	struct tcache_path_stats ps;

	ts_init(&me);
	for (unsigned i = 0; i < n; i++)
		v[i] = tcache_alloc(&me.tc, sc);
	for (unsigned i = 0; i < n; i++)
		xfree(&me.tc, v[i]);
	for (unsigned i = 0; i < n; i++)
		v[i] = tcache_alloc(&me.tc, sc);
	CHECK((me.tc.cls[sc].full) != NULL, "no slab is full");
	/* Frees by another thread into the full (DELAYED) slabs post their
	 * first object to the owner's mailbox; a refill takes them back. */
	for (unsigned i = 0; i < n; i++)
		xfree(&tcache_none, v[i]);
	CHECK(__atomic_load_n(&me.tc.mailbox, __ATOMIC_RELAXED) != 0,
	      "nothing was posted");
	for (unsigned i = 0; i < n; i++)
		v[i] = tcache_alloc(&me.tc, sc);
	if (ZP_IS_STATS) {
		tcache_path_stats(&ps);
		CHECK_OP(ps.nr_mail, >, 0);
	}
	for (unsigned i = 0; i < n; i++)
		xfree(&tcache_none, v[i]);
	ts_fini(&me);
	slab_trim();
	CHECK_OP(used_pages(), ==, before);
	free(v);
}

/*
 * A signal handler's free, while the thread it interrupted holds the
 * class's lock, wakes a parked slab (a full slab of an exited thread):
 * handing it to the class would wait on that lock for ever. It must not
 * wait, and the slab must still reach its cache by the thread's next
 * slow path, so that every page comes back.
 */
/* Objects of class sc of a thread that exited, whose full slabs are
 * parked; every page must come back once they are all freed. */
struct parked {
	unsigned sc, n;
	uint64_t before;	/* pages in use before */
	void **v;
};

static struct parked
parked_objects(unsigned sc)
{
	struct parked pk = { .sc = sc, .n = slab_class[sc].nr_objs * 6,
			     .before = used_pages() };
	struct tstate gone;

	pk.v = calloc(pk.n, sizeof(*pk.v));
	ts_init(&gone);
	for (unsigned i = 0; i < pk.n; i++)
		pk.v[i] = tcache_alloc(&gone.tc, sc);
	ts_fini(&gone);
	return pk;
}

static void
parked_all_back(struct parked *pk)
{
	slab_trim();
	CHECK_OP(used_pages(), ==, pk->before, "a woken slab was lost");
	free(pk->v);
}

Test(tcache, parked_slab_woken_under_a_held_lock_is_rescued_later)
{
	struct parked pk = parked_objects(9);
	struct tcache_path_stats ps0, ps1;

	watchdog_arm(60);
	tcache_path_stats(&ps0);
	zp_lock(&slab_caches[pk.sc].lock);
	for (unsigned i = 0; i < pk.n; i += 2)
		xfree(&tcache_none, pk.v[i]);
	zp_unlock(&slab_caches[pk.sc].lock);
	tcache_path_stats(&ps1);
	if (ZP_IS_STATS)
		CHECK_OP(ps1.nr_rescue, ==, ps0.nr_rescue,
			 "a slab was handed over under the held lock");
	for (unsigned i = 1; i < pk.n; i += 2)
		xfree(&tcache_none, pk.v[i]);
	if (ZP_IS_STATS) {
		tcache_path_stats(&ps1);
		CHECK_OP(ps1.nr_rescue, >, ps0.nr_rescue, "nothing was parked");
	}
	parked_all_back(&pk);
}

/* The same by a thread with no cache that exits right after: another
 * thread's next slow path hands the slab over. */
struct woken {
	void *p;
	unsigned sc;
};

static void *
wake_under_a_lock_and_exit(void *arg)
{
	struct woken *w = arg;

	zp_lock(&slab_caches[w->sc].lock);
	xfree(&tcache_none, w->p);
	zp_unlock(&slab_caches[w->sc].lock);
	return NULL;
}

Test(tcache, slab_woken_by_an_exiting_thread_is_rescued_later)
{
	struct parked pk = parked_objects(9);
	struct woken w = { .sc = pk.sc, .p = pk.v[0] };
	pthread_t t;

	watchdog_arm(60);
	pthread_create(&t, NULL, wake_under_a_lock_and_exit, &w);
	pthread_join(t, NULL);
	for (unsigned i = 1; i < pk.n; i++)
		xfree(&tcache_none, pk.v[i]);
	parked_all_back(&pk);
}

/* A signal handler's remote free that interrupted its thread inside a
 * remote chain goes alone, leaving the chain as the thread left it. */
Test(tcache, remote_free_inside_a_chain_leaves_the_chain_alone)
{
	struct tstate owner, me;
	unsigned sc = 5;
	void *v[4];
	uint64_t before = used_pages();

	ts_init(&owner);
	ts_init(&me);
	for (unsigned i = 0; i < 4; i++)
		v[i] = tcache_alloc(&owner.tc, sc);
	xfree(&me.tc, v[0]);
	CHECK_OP(me.tc.cls[sc].nr_rfree, ==, 1);
	me.tc.chaining = true;
	xfree(&me.tc, v[1]);
	me.tc.chaining = false;
	CHECK_OP(me.tc.cls[sc].nr_rfree, ==, 1, "the chain was touched");
	CHECK_OP(me.tc.cls[sc].rhead, ==, (uintptr_t)v[0]);
	xfree(&me.tc, v[2]);
	xfree(&me.tc, v[3]);
	CHECK_OP(me.tc.cls[sc].nr_rfree, ==, 3);
	ts_fini(&me);
	ts_fini(&owner);
	slab_trim();
	CHECK_OP(used_pages(), ==, before, "an object stayed out");
}

Test(tcache, reallocation_after_remote_frees_does_not_grow)
{
	struct tstate me;
	unsigned sc = 4;
	unsigned n = slab_class[sc].nr_objs * 8;
	void **v = calloc(n, sizeof(*v));
	uint64_t peak;

	ts_init(&me);
	for (unsigned i = 0; i < n; i++)
		v[i] = tcache_alloc(&me.tc, sc);
	peak = used_pages();
	for (int round = 0; round < 4; round++) {
		for (unsigned i = 0; i < n; i++)
			xfree(&tcache_none, v[i]);
		for (unsigned i = 0; i < n; i++)
			v[i] = tcache_alloc(&me.tc, sc);
	}
	CHECK_OP(used_pages(), <=, peak, "remote frees were not reused");
	ts_fini(&me);
	free(v);
}

/*
 * A flush gives a bin back in batches (tcache.c, bin_flush). Objects of
 * many slabs in shuffled order, more than a batch of them: every one must
 * reach its slab, so that every slab empties.
 */
Test(tcache, flush_gives_back_every_object_of_a_full_bin)
{
	struct tstate me;
	unsigned sc = 0;
	unsigned n = slab_class[sc].nr_objs * 8;
	void **v = calloc(n, sizeof(*v));
	uint64_t before = used_pages();

	ts_init(&me);
	for (unsigned i = 0; i < n; i++)
		v[i] = tcache_alloc(&me.tc, sc);
	shuffle(v, n, 12345);
	/* Fills the bin (a flush each time it is full), then gives the
	 * whole bin back at once. */
	for (unsigned i = 0; i < n; i++)
		xfree(&me.tc, v[i]);
	CHECK_OP((unsigned)(me.tc.bins[sc].cur - me.tc.bins[sc].base), >,
		 slab_class[sc].bin_cap / 2);
	tcache_flush(&me.tc);
	CHECK_OP(me.tc.bins[sc].cur, ==, me.tc.bins[sc].base);
	ts_fini(&me);
	slab_trim();
	CHECK_OP(used_pages(), ==, before, "an object stayed out");
	free(v);
}

/*
 * A class whose objects all went back to its bin and then sat there (the
 * program moved on to other sizes) gives its slabs up to the carves of
 * the other classes, once it has been idle for a few of them; a class in
 * use keeps its bin.
 */
enum { IDLE_A_SLABS = 6, IDLE_B_SLABS = 24 };

static void
idle_bin_case(bool keep_busy)
{
	unsigned a = sizeclass_of(640), b = sizeclass_of(960);
	unsigned na = IDLE_A_SLABS * slab_class[a].nr_objs;
	unsigned nb = IDLE_B_SLABS * slab_class[b].nr_objs;
	void **va = calloc(slab_class[a].bin_cap + 1, sizeof(*va));
	void **vb = calloc(nb, sizeof(*vb));
	uint64_t before, a_pages, grown;
	struct tstate me;

	CHECK(slab_class[a].order == 0 && slab_class[b].order == 0 &&
	      na + 1 < slab_class[a].bin_cap, "the classes changed: pick "
	      "others");
	ts_init(&me);
	before = used_pages();
	for (unsigned i = 0; i < na; i++)
		va[i] = tcache_alloc(&me.tc, a);
	a_pages = used_pages() - before;
	for (unsigned i = 0; i < na; i++)
		xfree(&me.tc, va[i]);	/* all into the bin */
	CHECK_OP(used_pages() - before, ==, a_pages);
	for (unsigned i = 0; i < nb; i++) {
		vb[i] = tcache_alloc(&me.tc, b);
		/* A refill of a's at each carve of b's: busy. */
		if (keep_busy && i % slab_class[b].nr_objs == 0) {
			unsigned n = (unsigned)(me.tc.bins[a].cur -
						me.tc.bins[a].base) + 1;

			/* b just carved: a's bin still holds objects. */
			CHECK_OP(n, >, 1, "a busy class's bin was given back "
				 "at carve %u", i / slab_class[b].nr_objs);
			for (unsigned j = 0; j < n; j++)
				va[j] = tcache_alloc(&me.tc, a);
			for (unsigned j = 0; j < n; j++)
				xfree(&me.tc, va[j]);
		}
	}
	grown = used_pages() - before;
	if (!keep_busy) {
		CHECK_OP(me.tc.bins[a].cur, ==, me.tc.bins[a].base,
			 "the idle bin kept its objects");
		CHECK_OP(grown, <=, IDLE_B_SLABS + 1, "the idle class's "
			 "%llu pages served no carve",
			 (unsigned long long)a_pages);
	}
	for (unsigned i = 0; i < nb; i++)
		xfree(&me.tc, vb[i]);
	ts_fini(&me);
	slab_trim();
	CHECK(zone_check_all(), "zone_check_all()");
	free(va);
	free(vb);
}

Test(tcache, an_idle_bin_gives_its_slabs_to_the_next_carves)
{
	idle_bin_case(false);
}

Test(tcache, a_busy_bin_keeps_its_objects_through_carves)
{
	idle_bin_case(true);
}

/* An object freed twice with a hundred frees between: its live bit is
 * clear by then, so the second free aborts. */
Test(tcache, double_free_after_many_frees_aborts, .signal = SIGABRT)
{
	struct tstate me;
	unsigned sc = 0;
	void *v[100];

	ts_init(&me);
	for (unsigned i = 0; i < 100; i++)
		v[i] = tcache_alloc(&me.tc, sc);
	for (unsigned i = 0; i < 100; i++)
		xfree(&me.tc, v[i]);
	xfree(&me.tc, v[10]);
	tcache_flush(&me.tc);
}

/* --- malloc_trim from another thread -------------------------------------- */

enum { TRIM_OBJS = 2000, TRIM_SC = 3 };
static void *trim_obj[TRIM_OBJS];
static struct tstate trim_ts;
static pthread_barrier_t trim_bar;

/* Allocates, waits while main frees and trims, then frees its last
 * object and allocates again: its slab kept its bits for it. */
static void *
trim_owner(void *arg)
{
	(void)arg;
	ts_init(&trim_ts);
	for (unsigned i = 0; i < TRIM_OBJS; i++)
		trim_obj[i] = tcache_alloc(&trim_ts.tc, TRIM_SC);
	pthread_barrier_wait(&trim_bar);	/* main frees, trims */
	pthread_barrier_wait(&trim_bar);
	xfree(&trim_ts.tc, trim_obj[TRIM_OBJS - 1]);
	for (unsigned i = 0; i < TRIM_OBJS; i++)
		trim_obj[i] = tcache_alloc(&trim_ts.tc, TRIM_SC);
	for (unsigned i = 0; i < TRIM_OBJS; i++)
		xfree(&trim_ts.tc, trim_obj[i]);
	ts_fini(&trim_ts);
	return NULL;
}

/* Another thread's trim gives back the slabs that remote frees emptied
 * and leaves the one with an object out to its owner, whose frees and
 * mallocs go on without a lock (and without a false double free). */
Test(tcache, trim_from_another_thread_takes_only_emptied_slabs)
{
	uint64_t before = used_pages(), held;
	struct slab *last;
	struct tstate self;
	pthread_t t;

	pthread_barrier_init(&trim_bar, NULL, 2);
	pthread_create(&t, NULL, trim_owner, NULL);
	pthread_barrier_wait(&trim_bar);
	last = slab_of(page_head(page_lookup(trim_obj[TRIM_OBJS - 1])));
	for (unsigned i = 0; i + 1 < TRIM_OBJS; i++)
		tcache_free_remote(trim_obj[i], &tcache_none);
	held = used_pages() - before;
	ts_init(&self);
	tcache_trim_others(&self.tc);
	CHECK_OP(slab_owner(last), ==, &trim_ts.tc,
		 "the slab of a live object changed hands");
	CHECK_OP(used_pages() - before, <, held / 2,
		 "emptied slabs were not given back (%llu of %llu pages)",
		 (unsigned long long)(used_pages() - before),
		 (unsigned long long)held);
	pthread_barrier_wait(&trim_bar);
	pthread_join(t, NULL);
	ts_fini(&self);
	slab_trim();
	CHECK_OP(used_pages(), ==, before, "pages leaked");
	CHECK(zone_check_all(), "zone_check_all()");
	pthread_barrier_destroy(&trim_bar);
}

/* --- the classes a thread used ------------------------------------------ */

enum { QUIET_SC = 80 };
static struct tstate *quiet_ts;

/* Allocates from one class, waits while main trims, frees and exits. */
static void *
one_class_owner(void *arg)
{
	(void)arg;
	pcp_init(&quiet_ts->pcp, 0);
	tcache_init(&quiet_ts->tc, &quiet_ts->pcp);
	for (unsigned i = 0; i < 100; i++)
		trim_obj[i] = tcache_alloc(&quiet_ts->tc, TRIM_SC);
	pthread_barrier_wait(&trim_bar);	/* main trims */
	pthread_barrier_wait(&trim_bar);
	for (unsigned i = 0; i < 100; i++)
		xfree(&quiet_ts->tc, trim_obj[i]);
	ts_fini(quiet_ts);
	return NULL;
}

static uintptr_t
page_of(const void *p)
{
	return (uintptr_t)p & ~(uintptr_t)(ZP_PAGE_SIZE - 1);
}

static bool
resident(const void *p)
{
	unsigned char v = 0;

	CHECK_OP(os_resident((void *)page_of(p), ZP_PAGE_SIZE, &v), ==, 0);
	return v & 1;
}

/* Another thread's trim of a thread, and the thread's exit, walk only
 * the classes it used, not all of them: the entries of the others, 12
 * KiB of its state, stay pages nobody touched (three of the five pages a
 * thread of remote_trim held; on a kernel without a zero page for reads
 * a read commits a page too). */
Test(tcache, trim_and_exit_walk_only_the_classes_used)
{
	const void *quiet;
	struct tstate self;
	pthread_t t;

	quiet_ts = mmap(NULL, sizeof(*quiet_ts), PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(quiet_ts != MAP_FAILED, "mmap");
	quiet = &quiet_ts->tc.cls[QUIET_SC];
	CHECK(page_of(quiet) != page_of(&quiet_ts->tc.cls[TRIM_SC]) &&
	      page_of(quiet) != page_of(&quiet_ts->tc.bins[SC_NR - 1]) &&
	      page_of(quiet) != page_of(&quiet_ts->tc.slots[0]) &&
	      page_of(quiet) != page_of(&quiet_ts->tc.reg_next) &&
	      page_of(quiet) != page_of(&quiet_ts->pcp),
	      "class %u's entry shares a page with what the thread uses",
	      QUIET_SC);
	pthread_barrier_init(&trim_bar, NULL, 2);
	pthread_create(&t, NULL, one_class_owner, NULL);
	pthread_barrier_wait(&trim_bar);
	ts_init(&self);
	tcache_trim_others(&self.tc);
	CHECK(!resident(quiet), "the trim read entries of classes the "
	      "thread never used");
	pthread_barrier_wait(&trim_bar);
	pthread_join(t, NULL);
	CHECK(!resident(quiet), "the exit read entries of classes the "
	      "thread never used");
	ts_fini(&self);
	munmap(quiet_ts, sizeof(*quiet_ts));
	CHECK(zone_check_all(), "zone_check_all()");
}

/* --- slabs emptied in a live thread, taken before a carve ---------------
 * (each test runs in a process of its own: the trim test's statics serve
 * these too) */

/* Allocates, then idles (alive) while main frees everything and
 * allocates again. */
static void *
taken_owner(void *arg)
{
	(void)arg;
	ts_init(&trim_ts);
	for (unsigned i = 0; i < TRIM_OBJS; i++)
		trim_obj[i] = tcache_alloc(&trim_ts.tc, TRIM_SC);
	pthread_barrier_wait(&trim_bar);	/* main frees, reallocates */
	pthread_barrier_wait(&trim_bar);
	ts_fini(&trim_ts);
	return NULL;
}

static uint64_t
nr_taken(void)
{
	struct tcache_path_stats ps;

	tcache_path_stats(&ps);
	return ps.nr_taken;
}

/* Objects freed by another thread into the slabs of a live thread that
 * no longer allocates serve the freer's next allocations of the class:
 * it takes the emptied slabs before it carves new ones, without the
 * holder's help, and the holder's slabs with an object out stay its. */
Test(tcache, slabs_emptied_in_an_idle_thread_serve_the_next_carve)
{
	uint64_t before = used_pages(), held, taken = nr_taken();
	struct tstate self;
	pthread_t t;

	pthread_barrier_init(&trim_bar, NULL, 2);
	pthread_create(&t, NULL, taken_owner, NULL);
	pthread_barrier_wait(&trim_bar);
	held = used_pages() - before;
	ts_init(&self);
	for (unsigned i = 0; i < TRIM_OBJS; i++)
		tcache_free_remote(trim_obj[i], &self.tc);
	tcache_flush(&self.tc);		/* the chains go out */
	for (unsigned i = 0; i < TRIM_OBJS; i++)
		trim_obj[i] = tcache_alloc(&self.tc, TRIM_SC);
	CHECK_OP(used_pages() - before, <, held + held / 4,
		 "the freed slabs served nothing (%llu pages, %llu held)",
		 (unsigned long long)(used_pages() - before),
		 (unsigned long long)held);
	if (ZP_IS_STATS)
		CHECK_OP(nr_taken(), >, taken, "no take was counted");
	for (unsigned i = 0; i < TRIM_OBJS; i++)
		xfree(&self.tc, trim_obj[i]);
	pthread_barrier_wait(&trim_bar);
	pthread_join(t, NULL);
	ts_fini(&self);
	slab_trim();
	CHECK_OP(used_pages(), ==, before, "pages leaked");
	CHECK(zone_check_all(), "zone_check_all()");
	pthread_barrier_destroy(&trim_bar);
}

/* A take must not change how a holder's full slabs come back to it: a
 * slab on its full list that another thread then frees whole still
 * posts to the holder, whose next refills take it up again (a take
 * that set every full slab NORMAL and delayed only some again left the
 * rest where no one looks). */
enum { FULL_SLABS = 100 };
static void **full_obj;
static unsigned full_n;
static struct slab *full_old;
static uint64_t full_remote_after;

static void *
full_owner(void *arg)
{
	(void)arg;
	ts_init(&trim_ts);
	for (unsigned i = 0; i < full_n; i++)
		full_obj[i] = tcache_alloc(&trim_ts.tc, TRIM_SC);
	pthread_barrier_wait(&trim_bar);	/* main: a take, then frees */
	pthread_barrier_wait(&trim_bar);
	for (unsigned i = 0; i < 4 * slab_class[TRIM_SC].nr_objs; i++)
		(void)tcache_alloc(&trim_ts.tc, TRIM_SC);
	full_remote_after = __atomic_load_n(&full_old->remote,
					    __ATOMIC_RELAXED);
	pthread_barrier_wait(&trim_bar);
	ts_fini(&trim_ts);
	return NULL;
}

static struct slab *
slab_at(void *p)
{
	return slab_of(page_head(page_lookup(p)));
}

static void
free_slab_remotely(struct slab *s, struct tcache *tc)
{
	for (unsigned i = 0; i < full_n; i++)
		if (full_obj[i] && slab_at(full_obj[i]) == s) {
			tcache_free_remote(full_obj[i], tc);
			full_obj[i] = NULL;
		}
	tcache_flush(tc);
}

Test(tcache, full_slabs_come_back_to_their_holder_after_a_take)
{
	unsigned per = slab_class[TRIM_SC].nr_objs, nv;
	struct tstate self;
	pthread_t t;
	void *v[4096];

	full_n = FULL_SLABS * per;
	full_obj = calloc(full_n, sizeof(void *));
	cr_assert_not_null(full_obj);
	pthread_barrier_init(&trim_bar, NULL, 2);
	pthread_create(&t, NULL, full_owner, NULL);
	pthread_barrier_wait(&trim_bar);
	full_old = slab_at(full_obj[100]);
	ts_init(&self);
	/* A recent slab emptied marks the class; main's carve takes. */
	free_slab_remotely(slab_at(full_obj[full_n - 2 * per]), &self.tc);
	for (nv = 0; nv < 3 * per && nv < ZP_ARRAY_SIZE(v); nv++)
		v[nv] = tcache_alloc(&self.tc, TRIM_SC);
	free_slab_remotely(full_old, &self.tc);
	pthread_barrier_wait(&trim_bar);
	pthread_barrier_wait(&trim_bar);
	CHECK_OP(full_remote_after >> SLAB_COUNT_SHIFT, ==, 0,
		 "a full slab freed whole was never taken up by its holder");
	pthread_join(t, NULL);
	for (unsigned i = 0; i < nv; i++)
		xfree(&self.tc, v[i]);
	ts_fini(&self);
	for (unsigned i = 0; i < full_n; i++)
		if (full_obj[i])
			tcache_free_remote(full_obj[i], &tcache_none);
	free(full_obj);
	pthread_barrier_destroy(&trim_bar);
	slab_trim();
	CHECK(zone_check_all(), "zone_check_all()");
}

/* Objects of slab s in v[0, n) and in the bins of me. */
static unsigned
count_in(const struct slab *s, void **v, unsigned n, struct tstate *me,
	 unsigned sc)
{
	uintptr_t base = (uintptr_t)page_address(slab_page(
		(struct slab *)s));
	unsigned c = 0;

	for (unsigned i = 0; i < n; i++)
		c += v[i] && slab_base(s, (uintptr_t)v[i]) == base;
	for (void **q = me->tc.bins[sc].base; q < me->tc.bins[sc].cur; q++)
		c += slab_base(s, (uintptr_t)*q) == base;
	return c;
}

static void
check_hold_words(struct slab *list, void **v, unsigned n, struct tstate *me,
		 unsigned sc)
{
	for (struct slab *s = list; s != NULL; s = s->next) {
		uint64_t *f = slab_hold_word(s);

		CHECK_OP(slab_inuse(s), ==, count_in(s, v, n, me, sc));
		CHECK_OP(!!(f[0] & SLAB_HOLD_FULL), ==,
			 s->where == SLAB_OWN_FULL);
		for (size_t i = 1; i < ((size_t)1 << s->order); i++)
			CHECK_OP(f[i] & SLAB_HOLD_BITS, ==, 0);
	}
}

/* What a flush changes lives in each slab's hold word (the first page's
 * facts word), not its descriptor: after rounds of mallocs and frees in
 * random order (flushes among them) each held slab's count is what it
 * has out (live or in the bin), and its full bit says whether it is on
 * the full list. */
Test(tcache, hold_words_count_what_is_out)
{
	unsigned classes[2] = { 0, sizeclass_of(3000) };

	for (unsigned c = 0; c < 2; c++) {
		unsigned sc = classes[c], n = 4 * slab_class[sc].nr_objs;
		void **v = calloc(n, sizeof(*v));
		struct tstate me;

		ts_init(&me);
		for (unsigned round = 0; round < 4; round++) {
			for (unsigned i = 0; i < n; i++)
				if (v[i] == NULL)
					v[i] = tcache_alloc(&me.tc, sc);
			shuffle(v, n, round + 1);
			for (unsigned i = 0; i < n / 2 + round; i++) {
				xfree(&me.tc, v[i]);
				v[i] = NULL;
			}
			check_hold_words(me.tc.cls[sc].partial, v, n, &me, sc);
			check_hold_words(me.tc.cls[sc].full, v, n, &me, sc);
		}
		/* Full slabs happen: the allocations refill past them. */
		for (unsigned i = 0; i < n; i++)
			if (v[i] == NULL)
				v[i] = tcache_alloc(&me.tc, sc);
		CHECK_OP(me.tc.cls[sc].full, !=, NULL);
		check_hold_words(me.tc.cls[sc].full, v, n, &me, sc);
		for (unsigned i = 0; i < n; i++)
			xfree(&me.tc, v[i]);
		ts_fini(&me);
		free(v);
	}
}

static unsigned
list_len(const struct slab *s)
{
	unsigned n = 0;

	for (; s != NULL; s = s->next)
		n++;
	return n;
}

/*
 * A flush notes the slabs it moves and moves them after its walk
 * (tcache.c, flush_edges): full slabs that get objects back and slabs
 * that empty, often both within one flush (a class of a few objects a
 * slab). After every object of many full slabs is freed in random
 * order, only slabs with objects in the bin are still held, each on the
 * list its hold word says; one emptied slab is the spare, the rest are
 * back in the zone, and the class's slab count (taken off in one add for
 * a list) is the slabs still held.
 */
Test(tcache, flushes_move_full_and_emptied_slabs)
{
	unsigned classes[2] = { 0, sizeclass_of(3000) };

	for (unsigned c = 0; c < 2; c++) {
		unsigned sc = classes[c], n = 64 * slab_class[sc].nr_objs;
		void **v = calloc(n, sizeof(*v));
		uint64_t before = used_pages();
		unsigned held, in_bin;
		struct tclass *k;
		struct tstate me;

		ts_init(&me);
		k = &me.tc.cls[sc];
		for (unsigned i = 0; i < n; i++)
			v[i] = tcache_alloc(&me.tc, sc);
		CHECK_OP(list_len(k->full), >=, 32);
		shuffle(v, n, 99 + c);
		for (unsigned i = 0; i < n; i++)
			xfree(&me.tc, v[i]);
		memset(v, 0, n * sizeof(*v));
		check_hold_words(k->partial, v, n, &me, sc);
		check_hold_words(k->full, v, n, &me, sc);
		held = list_len(k->partial) + list_len(k->full);
		in_bin = (unsigned)(me.tc.bins[sc].cur - me.tc.bins[sc].base);
		CHECK_OP(held, <=, in_bin);
		CHECK((k->spare) != NULL, "no spare kept");
		CHECK_OP(slab_inuse(k->spare), ==, 0);
		/* Besides: the class's shared slab and the ones it filled
		 * (cache.c), which a thread's first objects come from. */
		CHECK_OP(slab_caches[sc].nr_slabs, ==,
			 held + 1 + slab_caches[sc].nr_partial +
				 (slab_caches[sc].shared != NULL));
		ts_fini(&me);
		slab_trim();
		CHECK_OP(slab_caches[sc].nr_slabs, ==, 0);
		CHECK_OP(used_pages(), ==, before, "an object stayed out");
		CHECK(zone_check_all(), "zone_check_all()");
		free(v);
	}
}

Test(tcache, flush_keeps_the_cache_usable)
{
	struct tstate me;
	void *p, *q;

	ts_init(&me);
	p = tcache_alloc(&me.tc, 3);
	tcache_flush(&me.tc);
	CHECK_OP(me.tc.bins[3].cur, ==, me.tc.bins[3].base);
	CHECK((me.tc.cls[3].partial) == NULL, "a slab is still held");
	q = tcache_alloc(&me.tc, 3);
	CHECK((q) != NULL, "q is NULL");
	CHECK_OP(p, !=, q);
	xfree(&me.tc, p);
	xfree(&me.tc, q);
}

static void *
churn(void *arg)
{
	struct tstate ts;
	volatile bool *stop = arg;

	ts_init(&ts);
	while (!*stop) {
		void *p = tcache_alloc(&ts.tc, 2);

		xfree(&ts.tc, p);
		tcache_flush(&ts.tc);
	}
	ts_fini(&ts);
	return NULL;
}

Test(tcache, fork_with_threads_leaves_child_working)
{
	volatile bool stop = false;
	pthread_t t;
	int status;
	pid_t pid;

	pthread_create(&t, NULL, churn, (void *)&stop);
	usleep(20000);
	slab_prefork();
	zone_prefork();
	pid = fork();
	if (pid == 0) {
		struct tstate ts;

		zone_postfork_child();
		slab_postfork_child();
		ts_init(&ts);
		for (int i = 0; i < 10000; i++) {
			void *p = tcache_alloc(&ts.tc, i % 30);

			if (p == NULL)
				_exit(2);
			tcache_flush(&ts.tc);
			xfree(&ts.tc, p);
		}
		ts_fini(&ts);
		slab_trim();
		_exit(0);
	}
	zone_postfork_parent();
	slab_postfork_parent();
	stop = true;
	pthread_join(t, NULL);
	CHECK_OP(waitpid(pid, &status, 0), ==, pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "child status %#x", status);
}

/* --- a signal handler that allocates in the thread it interrupted -------- */

/*
 * The handler finds the thread's own slow-path lock held (here: held by
 * the test, as the interrupted slow path would hold it). A malloc there
 * fails instead of waiting on itself, a free goes the remote way, and the
 * cache works as before once the lock is released.
 */
Test(tcache, reentry_from_a_handler_fails_fast_and_frees_remotely)
{
	struct tstate ts;
	unsigned sc = sizeclass_of(100);
	void *p, *q;
	struct slab *s;

	watchdog_arm(20);
	ts_init(&ts);
	p = tcache_alloc(&ts.tc, sc);
	cr_assert_not_null(p);
	s = slab_head(slab_of(page_lookup(p)));
	tcache_lock(&ts.tc);
	cr_assert_null(tcache_alloc_slow(&ts.tc, sc));
	cr_assert_null(tcache_alloc_zero(&ts.tc, sc, 100));
	tcache_free_slow(&ts.tc, p, sc);
	/* Remote-freed: onto the slab's list, or (the refill emptied the
	 * slab into the bin) posted to this thread's mailbox. */
	cr_assert(__atomic_load_n(&s->remote, __ATOMIC_RELAXED) >>
			  SLAB_COUNT_SHIFT == 1 ||
		  __atomic_load_n(&ts.tc.mailbox, __ATOMIC_RELAXED) ==
			  (uintptr_t)p,
		  "the free went the remote way");
	tcache_unlock(&ts.tc);
	q = tcache_alloc_slow(&ts.tc, sc);
	cr_assert_not_null(q);
	xfree(&ts.tc, q);
	ts_fini(&ts);
	cr_assert(zone_check_all());
}

/* A thread's exit and malloc_trim visit only the classes that ever had a
 * slab: the lines of the others in slab_caches[] and slab_cache_stats[]
 * stay untouched, where a program that uses a few classes never needed
 * them. */
Test(tcache, exit_and_trim_leave_unused_classes_untouched,
     NEEDS_BSS_LAYOUT)
{
	/* The last page of each array: its own (they are page-aligned). */
	uintptr_t lo = zp_align_down((uintptr_t)&slab_caches[SC_NR - 1],
				     ZP_PAGE_SIZE);
	uintptr_t hi = lo + ZP_PAGE_SIZE;
	uintptr_t slo = zp_align_down((uintptr_t)&slab_cache_stats[SC_NR - 1],
				      ZP_PAGE_SIZE);
	uintptr_t shi = slo + ZP_PAGE_SIZE;
	struct tstate ts;

	CHECK(!range_resident(lo, hi), "resident before the test");
	CHECK(!range_resident(slo, shi), "stats resident before the test");
	ts_init(&ts);
	xfree(&ts.tc, tcache_alloc(&ts.tc, 0));
	ts_fini(&ts);
	slab_trim();
	CHECK(cache_is_used(0) && !cache_is_used(SC_NR - 1));
	CHECK(!range_resident(lo, hi),
	      "exit or trim wrote the last classes' lines");
	CHECK(!range_resident(slo, shi),
	      "exit or trim wrote the last classes' statistics");
}
