/*
 * slab.c - the life of one slab: geometry per class, initialisation,
 * handing objects to a bin, collecting remote frees, the remote state
 * word, and the checks that turn heap misuse into one clear line instead
 * of corruption.
 * Owns:  slab_class[], slab_key.
 * Locks: none; callers hold the slab (as owner, or under cache->lock).
 * Path:  tcache_refill -> slab_take | slab_collect | slab_delay;
 *        tcache_free -> slab_bad_free (rare) -> log_fatal.
 */
#include "slab/slab.h"

#include "base/log.h"
#include "slab/cache.h"
#include "slab/tcache.h"

struct slab_class slab_class[SC_NR] zp_bss_large;
uintptr_t slab_key;

/* Bytes a tcache bin may cache of one class, and its bounds in objects:
 * enough objects that a refill or flush is amortised over dozens of
 * calls, few enough bytes that idle bins keep little memory from use. */
#define BIN_BYTES	((size_t)32 << 10)
#define BIN_MAX		128
#define BIN_MIN		2

/*
 * One page when it holds at least 4 objects and wastes at most an eighth
 * of itself (the size classes' own bound): small slabs strand less memory.
 * (Measured: 32 KiB slabs for those classes made random frees 18% faster,
 * fewer head descriptors to miss, but cost churn-1t 5% of its peak RSS
 * and random-free's mallocs 13%.) Otherwise the smallest order whose tail
 * waste is at most 1/16 of the slab and that holds at least 8 objects (or is
 * 32 KiB, the largest order the per-thread page cache keeps); when no
 * order up to SLAB_MAX_ORDER meets the waste bound, the order with the
 * least waste.
 */
static unsigned
slab_pick_order(size_t size)
{
	unsigned best = SLAB_MAX_ORDER;
	size_t best_waste = SIZE_MAX;

	if (ZP_PAGE_SIZE / size >= 4 && (ZP_PAGE_SIZE % size) * 8 <=
					       ZP_PAGE_SIZE)
		return 0;
	for (unsigned o = 0; o <= SLAB_MAX_ORDER; o++) {
		size_t bytes = ZP_PAGE_SIZE << o;
		size_t n = bytes / size;
		size_t waste = bytes - n * size;

		if (n == 0)
			continue;
		if (waste * 16 <= bytes && (n >= 8 || o >= 3))
			return o;
		/* Compare waste as a fraction of the slab. */
		if (best_waste == SIZE_MAX ||
		    waste * (ZP_PAGE_SIZE << best) < best_waste * bytes) {
			best = o;
			best_waste = waste;
		}
	}
	return best;
}

/*
 * A thread's first slab of a class is the smallest block that holds at
 * least two objects (one page for every class up to 2 KiB): a thread that
 * allocates one object of a class must not pay for a slab sized to
 * amortise refills it never makes.
 */
static unsigned
slab_pick_first_order(size_t size, unsigned order)
{
	unsigned o = 0;

	while (o < order && (ZP_PAGE_SIZE << o) < 2 * size)
		o++;
	return o;
}

zp_boot_text zp_cold void
slab_boot(uint64_t key_seed)
{
	/* splitmix64 finaliser: a weak seed still spreads over every bit.
	 * Bit 62 keeps the zero word of a live object from decoding to a
	 * link for most addresses (user space ends below 2^47). */
	uint64_t z = key_seed + 0x9e3779b97f4a7c15ull;
	unsigned nr_slots = 0;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	slab_key = (uintptr_t)((z ^ (z >> 31)) | (1ull << 62));

	for (unsigned sc = 0; sc < SC_NR; sc++) {
		struct slab_class *c = &slab_class[sc];
		size_t size = sizeclass_size(sc);

		c->size = (uint32_t)size;
		c->recip = (uint32_t)(((uint64_t)1 << 32) / size + 1);
		c->order = (uint8_t)slab_pick_order(size);
		c->first_order = (uint8_t)slab_pick_first_order(size,
								 c->order);
		c->nr_objs = (uint16_t)((ZP_PAGE_SIZE << c->order) / size);
		c->bin_cap = (uint16_t)ZP_MAX(BIN_MIN,
					      ZP_MIN(BIN_MAX, BIN_BYTES / size));
		nr_slots += c->bin_cap;
	}
	if (nr_slots > TCACHE_SLOTS)
		log_fatal("slab: bins need %u slots, tcache has %u", nr_slots,
			  TCACHE_SLOTS);
	cache_boot();
}

/*
 * Colouring, as in Bonwick's slab allocator: a slab's spare tail goes in
 * front of its first object, in whole cache lines, a different number of
 * them for neighbouring slabs. Slabs are aligned buddy blocks, so without
 * it the i-th object of every slab of a class sits at the same offset in
 * its page, and the first lines of objects of a power of two plus a
 * header (4112 bytes: sqlite's 4104-byte buffers) crowd a few of the
 * cache's sets. Measured (cachegrind, sqlite3): 14% more L1 misses than
 * glibc's heap, where a fully associative cache showed none more. A
 * power-of-two class has no spare tail: its objects stay aligned to
 * their size (memalign), and every class keeps the alignment its size
 * gives its objects.
 */
static uint32_t
slab_colour(size_t size, unsigned order, uintptr_t base)
{
	size_t bytes = ZP_PAGE_SIZE << order;
	size_t spare = bytes - bytes / size * size;
	/* A step that keeps the alignment of size's lowest bit, which
	 * memalign's search by class counts on (384: 128-aligned). */
	size_t step = ZP_MAX((size_t)ZP_CACHELINE, size & -size);
	size_t nr;

	/* Steps of a page or more move no object to another cache set. */
	if (step >= ZP_PAGE_SIZE)
		return 0;
	nr = ZP_MIN(spare, ZP_PAGE_SIZE - step) / step + 1;

	return (uint32_t)((base >> (ZP_PAGE_SHIFT + order)) % nr * step);
}

void
slab_set_geometry(struct slab *s, unsigned sc, unsigned order,
		  uintptr_t base)
{
	const struct slab_class *c = &slab_class[sc];
	uint32_t bytes = (uint32_t)(ZP_PAGE_SIZE << order);

	s->sc = (uint8_t)sc;
	s->mask = bytes - 1;
	s->colour = slab_colour(c->size, order, base);
	s->recip = c->recip;
	s->start_below = (uint32_t)((bytes / c->size) *
		((uint64_t)c->size * c->recip - ((uint64_t)1 << 32)));
}

static uint32_t
owner_id(const struct tcache *owner)
{
	if (owner == NULL || owner == SLAB_UNOWNED ||
	    owner->id == TCACHE_NO_ID)
		return SLAB_FACTS_NO_OWNER;
	return owner->id;
}

uint64_t
slab_facts(const struct slab *s)
{
	return slab_facts_make(s->sc, s->order, owner_id(slab_owner(s)));
}

/* Every page's facts word says what its descriptor says (relaxed: a free
 * reads the owner racily either way, see tcache_free); the first keeps
 * its hold bits, hold. */
static void
slab_publish(struct slab *s, uint64_t hold)
{
	size_t n = (size_t)1 << s->order;
	uint64_t *f = slab_hold_word(s);
	uint64_t w = slab_facts(s);

	__atomic_store_n(&f[0], w | hold, __ATOMIC_RELAXED);
	for (size_t i = 1; i < n; i++)
		__atomic_store_n(&f[i], w, __ATOMIC_RELAXED);
}

struct slab *
slab_init(struct page *head, unsigned sc, unsigned order,
	  struct tcache *owner, bool zero)
{
	struct slab *s = slab_of(head);
	uintptr_t base = (uintptr_t)page_address(head);
	size_t n = (size_t)1 << order;

	/* Object alignment and the mask in slab_base rest on this, and
	 * the remote word on every object address fitting SLAB_LIST. */
	if (zp_unlikely((base & ((ZP_PAGE_SIZE << order) - 1)) ||
			base + (ZP_PAGE_SIZE << order) > SLAB_LIST ||
			order > SLAB_MAX_ORDER || page_facts(head) == NULL))
		log_fatal("slab: zone block %p is not aligned to order %u, "
			  "ends above 2^48 or lies outside the arena",
			  (void *)base, order);
	for (size_t i = 0; i < n; i++) {
		struct slab *t = s + i;
		uint8_t zone_id = t->zone_id;

		*t = (struct slab){
			.kind = PAGE_SLAB,
			.order = (uint8_t)order,
			.zone_id = zone_id,
			.flags = i ? SLAB_TAIL : (zero ? SLAB_ZERO : 0),
			.owner = owner,
		};
		slab_set_geometry(t, sc, order, base);
		if (i)
			t->head_off = (uint32_t)i;
	}
	slab_publish(s, 0);
	return s;
}

void
slab_set_owner(struct slab *s, struct tcache *owner)
{
	size_t n = (size_t)1 << s->order;

	for (size_t i = 0; i < n; i++)
		__atomic_store_n(&s[i].owner, owner, __ATOMIC_RELAXED);
	slab_publish(s, *slab_hold_word(s) & SLAB_HOLD_BITS);
}

/* Forgets every live and avail bit of s: what its pages read as once
 * given back, and what a slab made of them must start from. A slab that
 * never carved an object since its reset wrote none. */
static void
slab_clear_bits(struct slab *s)
{
	slab_set_avail_from(s, 0);
	if (s->nr_carved == 0)
		return;
	/* A page's line starts with the live word of its first KiB. */
	memset(slab_live_word((uintptr_t)page_address(slab_page(s))), 0,
	       sizeof(struct page_bits) << s->order);
}

void
slab_fini(struct slab *s)
{
	size_t n = (size_t)1 << s->order;
	struct page *head = slab_page(s);
	uint64_t *f = slab_hold_word(s);

	slab_clear_bits(s);
	for (size_t i = 0; i < n; i++)
		__atomic_store_n(&f[i], 0, __ATOMIC_RELAXED);
	for (size_t i = 1; i < n; i++) {
		head[i].kind = PAGE_TAIL;
		head[i].head_off = (uint32_t)i;
	}
}

void
slab_reset(struct slab *s)
{
	zp_assert(slab_inuse(s) == 0);
	zp_assert((__atomic_load_n(&s->remote, __ATOMIC_RELAXED) &
		   SLAB_LIST) == 0);
	slab_clear_bits(s);
	s->nr_carved = 0;
	s->flags &= (uint8_t)~SLAB_ZERO;
}

void
slab_corrupt_fatal(struct slab *s, void *slot, uintptr_t next)
{
	log_fatal("malloc(): corrupted remote free list: object %p of size %u "
		  "links to %p", slot, slab_class[s->sc].size, (void *)next);
}

void
slab_invalid_free(void *p)
{
	log_fatal("free(): invalid pointer %p", p);
}

void
slab_double_free(void *p)
{
	log_fatal("free(): double free detected %p", p);
}

void
slab_bad_free(void *p)
{
	struct page *pg = page_lookup(p);
	struct slab *s;

	if (pg == NULL || pg->kind != PAGE_SLAB)
		slab_invalid_free(p);
	s = slab_head(slab_of(pg));
	/* Never handed out is no double free. */
	if ((unsigned long)slab_index_of(s, (uintptr_t)p) >= s->nr_carved)
		slab_invalid_free(p);
	slab_double_free(p);
}

/* Checks a decoded link of slot: an object start of the same slab (the
 * slot itself ends a list). */
static void
slab_check_link(struct slab *s, uintptr_t slot, uintptr_t next)
{
	if (slab_base(s, next) != slab_base(s, slot) ||
	    slab_index_of(s, next) < 0)
		slab_corrupt_fatal(s, (void *)slot, next);
}

/* Takes up to want avail objects of the slab at base into dst, lowest
 * address first. */
static unsigned
take_avail(struct slab *s, uintptr_t base, void **dst, unsigned want)
{
	unsigned nr_words = (s->mask + 1) >> 10;
	unsigned i = slab_avail_from(s), n = 0;

	for (; i < nr_words; i++) {
		uintptr_t at = base + ((uintptr_t)i << 10);
		uint64_t *w = slab_avail_word(at);
		uint64_t x = *w;

		for (; x != 0 && n < want; x &= x - 1)
			dst[n++] = (void *)(at + ((uintptr_t)
					__builtin_ctzll(x) << 4));
		*w = x;
		if (n == want)
			break;
	}
	slab_set_avail_from(s, i);
	return n;
}

unsigned
slab_take(struct slab *s, void **dst, unsigned want)
{
	const struct slab_class *c = &slab_class[s->sc];
	unsigned nr_objs = slab_nr_objs(s);
	uintptr_t base = (uintptr_t)page_address(slab_page(s));
	unsigned n = 0;

	if (slab_inuse(s) < s->nr_carved)
		n = take_avail(s, base, dst, want);
	if (n < want && s->nr_carved < nr_objs) {
		unsigned k = ZP_MIN(want - n, nr_objs - s->nr_carved);
		uintptr_t p = base + s->colour +
			      (uintptr_t)s->nr_carved * c->size;

		for (unsigned i = 0; i < k; i++, p += c->size)
			dst[n++] = (void *)p;
		s->nr_carved += k;
	}
	slab_inuse_add(s, n);
	return n;
}

void *
slab_bump(struct slab *s)
{
	const struct slab_class *c = &slab_class[s->sc];
	uintptr_t base = (uintptr_t)page_address(slab_page(s));
	void *p = (void *)(base + s->colour +
			   (uintptr_t)s->nr_carved * c->size);

	zp_assert(s->nr_carved < slab_nr_objs(s));
	s->nr_carved++;
	slab_inuse_add(s, 1);
	slab_set_live((uintptr_t)p);
	return p;
}

unsigned
slab_collect(struct slab *s)
{
	uintptr_t old = __atomic_load_n(&s->remote, __ATOMIC_RELAXED);
	uintptr_t head, a, next;
	unsigned n, left;
	uint64_t h;

	do {
		if ((old & SLAB_LIST) == 0)
			return 0;
	} while (!__atomic_compare_exchange_n(&s->remote, &old,
					      old & SLAB_STATE, true,
					      __ATOMIC_ACQUIRE,
					      __ATOMIC_RELAXED));
	head = old & SLAB_LIST;
	n = (unsigned)(old >> SLAB_COUNT_SHIFT);
	h = *slab_hold_word(s);
	/* More objects back than are out: one was freed twice. */
	if (n == 0 || n > slab_hold_inuse(h))
		slab_double_free((void *)head);
	h -= n * SLAB_HOLD_ONE;
	/* Exactly n objects, the last linked to itself: anything else is
	 * a list that a write after free broke. */
	left = n;
	for (a = head;; a = next) {
		next = slab_decode(a);
		slab_check_link(s, a, next);
		h = slab_hold_put(h, a, s->mask);
		if (--left == 0 || next == a)
			break;
	}
	if (next != a || left != 0)
		slab_corrupt_fatal(s, (void *)a, next);
	slab_hold_store(s, h);
	return n;
}

bool
slab_collect_if_empty(struct slab *s)
{
	uintptr_t old = __atomic_load_n(&s->remote, __ATOMIC_RELAXED);

	for (;;) {
		unsigned n = (unsigned)(old >> SLAB_COUNT_SHIFT);

		if (n > slab_inuse(s))
			slab_double_free((void *)(old & SLAB_LIST));
		if (n != slab_inuse(s))
			return false;
		if (n == 0 || __atomic_compare_exchange_n(
				      &s->remote, &old, old & SLAB_STATE, true,
				      __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			break;
	}
	slab_hold_store(s, *slab_hold_word(s) & ~SLAB_HOLD_INUSE);
	return true;
}

bool
slab_delay(struct slab *s)
{
	uintptr_t old = SLAB_NORMAL;

	if (__atomic_compare_exchange_n(&s->remote, &old, SLAB_DELAYED, false,
					__ATOMIC_RELEASE, __ATOMIC_RELAXED))
		return true;
	/* Exactly a state with an empty list: already delayed, or a freer
	 * is posting the object that will bring the slab back. */
	return old == SLAB_DELAYED || old == SLAB_FREEING;
}

void
slab_undelay(struct slab *s)
{
	uintptr_t old = SLAB_DELAYED;

	__atomic_compare_exchange_n(&s->remote, &old, SLAB_NORMAL, false,
				    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

void
slab_settle(struct slab *s)
{
	for (;;) {
		uintptr_t old = __atomic_load_n(&s->remote, __ATOMIC_ACQUIRE);

		if ((old & SLAB_STATE) == SLAB_FREEING) {
			/* Two CASes away from done: the freer's object
			 * is in the mailbox once it clears the state. */
			zp_cpu_relax();
			continue;
		}
		if ((old & SLAB_STATE) != SLAB_DELAYED ||
		    __atomic_compare_exchange_n(&s->remote, &old,
						old & ~SLAB_STATE, false,
						__ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return;
	}
}

void
slab_realloc_check(const struct page *pg, void *p)
{
	(void)pg;
	if (!slab_is_live((uintptr_t)p))
		log_fatal("realloc(): invalid pointer %p (already freed)", p);
}

size_t
slab_usable_size(const struct page *pg)
{
	const struct slab *s = (const struct slab *)(const void *)pg;

	return slab_class[s->sc].size;
}

bool
slab_is_object_start(const struct page *pg, const void *p)
{
	const struct slab *s = (const struct slab *)(const void *)pg;

	return slab_index_of(s, (uintptr_t)p) >= 0;
}
