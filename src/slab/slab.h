/*
 * slab.h - one slab: a naturally aligned buddy block of 1 << order pages
 * cut into objects of one size class. struct slab is the page descriptor
 * itself, seen by the slab layer (so a slab has no header inside its own
 * memory; objects start at the slab's colour, a multiple of the size's
 * lowest set bit that is 0 for a power of two, so the block's alignment
 * gives memalign its alignment).
 *
 * Every page of a slab carries its kind, class, owner and geometry in its
 * own descriptor, and what free() needs of them - class and owner - in
 * its facts word (page.h, below), so free() reaches all of it with one
 * dependent load of 8 bytes, whichever page the object lies in. The holder's
 * state (the remote list, list links, what was carved) lives in the first
 * page's descriptor only; other pages point back to it (SLAB_TAIL,
 * head_off). What a flush changes - how many objects are out, the first
 * KiB with an avail object, whether the slab is on its holder's full
 * list - is in the first page's facts word instead (its hold word, below),
 * beside the facts word the flush reads anyway: an object given back costs
 * no descriptor's line.
 *
 * A slab is held by one thread (its owner), which moves its objects in
 * batches between the slab and the thread's tcache bins, or by no thread
 * (an orphan of an exited thread, a spare in its class's cache, or parked
 * full). A thread that needs a slab adopts an orphan that has free
 * objects before it carves a new one.
 *
 * Neither malloc, free, a flush nor a refill reads or writes an object:
 * what they know of it is in the bits of its page (page.h), two bits per
 * 16-byte granule, found by arithmetic from its address:
 *   live    set by malloc, tested and cleared by free: a free of anything
 *           but a live object's first byte (a double free, an interior
 *           pointer) is caught at the free itself;
 *   avail   the object is free in its slab (not in a bin, not on the
 *           remote list): set by a flush, taken by a refill, in address
 *           order.
 * The slab's holder writes both without atomics; so that no other thread
 * ever does, a slab leaves a live thread only by that thread's own
 * trim, or by another thread's trim when it is empty (tcache.c), and
 * unowned slabs change hands under their cache's lock. Remote frees
 * clear live with an atomic AND: a holder's plain write may undo that
 * clear, which can let a later double free of the object pass (it is
 * caught when both copies reach the slab) but never reports a live one.
 *
 * Sets of a slab's objects:
 *   avail   the holder's (bits; holder only),
 *   remote  other threads' frees, linked through each object's first word
 *           (encoded as next ^ key ^ bswap(slot address), after Linux's
 *           CONFIG_SLAB_FREELIST_HARDENED: a use-after-free write cannot
 *           name an arbitrary address, and a decoded link that leaves the
 *           slab is caught; the byte swap keeps the small difference
 *           between neighbouring addresses from exposing the key's high
 *           bits; a list ends with a link to the slot itself), pushed with
 *           a CAS and taken whole by the holder, which moves them to
 *           avail; the same word counts them and holds the slab's remote
 *           state (below),
 *   carve   objects [nr_carved, nr_objs) never handed out: bins take them
 *           by address, so untouched memory of a slab is never written
 *           (RSS stays low, zero pages stay zero).
 */
#ifndef ZP_SLAB_SLAB_H
#define ZP_SLAB_SLAB_H

#include "page/page.h"
#include "slab/sizeclass.h"

struct tcache;

/* Largest slab: 128 KiB. Keeps nr_objs in 16 bits and lets object
 * indexes be computed with one 32-bit reciprocal multiply. */
#define SLAB_MAX_ORDER	5
#define SLAB_MAX_BYTES	(ZP_PAGE_SIZE << SLAB_MAX_ORDER)
_Static_assert((uint64_t)SLAB_MAX_BYTES * SC_MAX_SIZE < ((uint64_t)1 << 32),
	       "off * recip >> 32 is exact for every offset and class");

/* Owner of a slab that no thread holds (on a cache list or parked): not
 * NULL and no cache, so that it matches no thread's cache. */
#define SLAB_UNOWNED	((struct tcache *)(uintptr_t)1)

/*
 * The low bits of slab->remote (objects are 16-aligned, so the list
 * pointer never uses them):
 *   NORMAL   a remote free pushes its object on the list;
 *   DELAYED  held by a live owner that has nothing left to allocate from
 *            it: the first remote free posts its object to the owner's
 *            mailbox instead, so the owner learns the slab has room again
 *            without scanning its full slabs;
 *   FREEING  that first freer is posting; the owner may not give the slab
 *            up (or exit) until the freer sets NORMAL again;
 *   PARKED   full and held by nobody, on no list: the first remote free
 *            hands it to its cache (cache_rescue).
 */
#define SLAB_NORMAL	((uintptr_t)0)
#define SLAB_DELAYED	((uintptr_t)1)
#define SLAB_FREEING	((uintptr_t)2)
#define SLAB_PARKED	((uintptr_t)3)
#define SLAB_STATE	((uintptr_t)3)
/* Bits 4..47 hold the list head (user space ends below 2^47; slab_init
 * checks), bits 48..63 how many objects the list holds, so that the
 * holder can take the list without walking it. */
#define SLAB_LIST	((((uintptr_t)1 << 48) - 1) & ~(uintptr_t)15)
#define SLAB_COUNT_ONE	((uintptr_t)1 << 48)
#define SLAB_COUNT_SHIFT 48

enum slab_flags {
	SLAB_ZERO = 1 << 0,	/* objects past nr_carved read as zero */
	SLAB_TAIL = 1 << 1,	/* not the first page: head_off leads there */
};

/* Which list a slab is on; each list has one writer (see cache.h and
 * tcache.h). */
enum slab_where {
	SLAB_NOWHERE = 0,	/* parked, or in transit */
	SLAB_OWN_PARTIAL,	/* owner's: has free, carve or remote objects */
	SLAB_OWN_FULL,		/* owner's: nothing local; DELAYED or posting */
	SLAB_OWN_SPARE,		/* owner's one empty slab of the class */
	SLAB_CACHE_PARTIAL,	/* orphan with live objects (cache->lock) */
	SLAB_CACHE_SHARED,	/* the class's shared slab (cache->lock) */
};

struct slab {
	/* struct page's first four bytes: the zone reads them. */
	uint8_t kind;			/* PAGE_SLAB on every page */
	uint8_t order;			/* buddy order of the whole slab */
	uint8_t pflags;			/* struct page's flags: 0 */
	uint8_t zone_id;
	/* On every page (free() reads their copy in the facts word);
	 * owner changes rewrite all. */
	uint8_t sc;			/* size class */
	uint8_t flags;			/* enum slab_flags */
	uint8_t where;			/* enum slab_where (first page) */
	uint8_t unused;
	struct tcache *owner;		/* relaxed atomic; SLAB_UNOWNED */
	uint32_t mask;			/* slab bytes - 1 */
	uint32_t recip;			/* 2^32 / size + 1: index by multiply */
	uint32_t start_below;		/* see slab_is_start */
	union {
		/* First page: [0, nr_carved) ever carved (holder). */
		uint32_t nr_carved;
		uint32_t head_off;	/* SLAB_TAIL: pages back to the first */
	};
	uint32_t colour;		/* bytes before the first object */
	uint32_t unused32;
	uintptr_t remote;		/* atomic: remote list | state */
	struct slab *next, *prev;	/* the list `where` names */
};

_Static_assert(sizeof(struct slab) == sizeof(struct page),
	       "struct slab is the page descriptor");
_Static_assert(offsetof(struct slab, kind) == offsetof(struct page, kind) &&
	       offsetof(struct slab, order) == offsetof(struct page, order) &&
	       offsetof(struct slab, pflags) == offsetof(struct page, flags) &&
	       offsetof(struct slab, zone_id) ==
		       offsetof(struct page, zone_id),
	       "the zone's fields stay where the zone reads them");

/* Per-class geometry, fixed by slab_boot. */
struct slab_class {
	uint32_t size;			/* object bytes */
	uint32_t recip;			/* 2^32 / size + 1 */
	uint16_t nr_objs;		/* objects per slab of `order` */
	uint16_t bin_cap;		/* tcache bin capacity (>= 2) */
	uint8_t order;			/* buddy order of a slab */
	uint8_t first_order;		/* a thread's first slab of the class */
	uint8_t pad[18];
};

_Static_assert(sizeof(struct slab_class) == 32, "one shift to index");

extern struct slab_class slab_class[SC_NR] SC_HIDDEN;
extern uintptr_t slab_key SC_HIDDEN;

static inline struct slab *
slab_of(struct page *pg)
{
	return (struct slab *)(void *)pg;
}

static inline struct page *
slab_page(struct slab *s)
{
	return (struct page *)(void *)s;
}

/* The first page's descriptor, which holds the slab's lists. */
static inline struct slab *
slab_head(struct slab *s)
{
	if (zp_unlikely(s->flags & SLAB_TAIL))
		return s - s->head_off;
	return s;
}

static inline uintptr_t
slab_base(const struct slab *s, uintptr_t a)
{
	return a & ~(uintptr_t)s->mask;
}

static inline unsigned
slab_nr_objs(const struct slab *s)
{
	return (unsigned)(((uint64_t)s->mask + 1) / slab_class[s->sc].size);
}

static inline struct tcache *
slab_owner(const struct slab *s)
{
	return __atomic_load_n(&s->owner, __ATOMIC_RELAXED);
}

/* What slot's first word holds when it links to next. */
static inline uintptr_t
slab_encode(uintptr_t next, uintptr_t slot)
{
	return next ^ slab_key ^ __builtin_bswap64(slot);
}

static inline uintptr_t
slab_decode(uintptr_t slot)
{
	return *(const uintptr_t *)slot ^ slab_key ^ __builtin_bswap64(slot);
}

/*
 * The bits of the KiB holding a, an arena address (slabs come only from
 * the arena's zones): its live word, then its avail word, a bit per 16
 * bytes; a page's four pairs fill its line of bits. bits_bias is
 * zp_arena's (a loop may hold it in a register).
 */
static inline uint64_t *
slab_live_word_at(uintptr_t bits_bias, uintptr_t a)
{
	return (uint64_t *)(bits_bias + ((a >> 6) & ~(uintptr_t)15));
}

static inline uint64_t *
slab_live_word(uintptr_t a)
{
	return slab_live_word_at(zp_arena.bits_bias, a);
}

static inline uint64_t *
slab_avail_word_at(uintptr_t bits_bias, uintptr_t a)
{
	return slab_live_word_at(bits_bias, a) + 1;
}

static inline uint64_t *
slab_avail_word(uintptr_t a)
{
	return slab_avail_word_at(zp_arena.bits_bias, a);
}

static inline uint64_t
slab_bit(uintptr_t a)
{
	return (uint64_t)1 << ((a >> 4) & 63);
}

/* Clears a's bit in *w, a word in a register, and says whether it was
 * set: on x86-64 one btr (the bit index is taken mod 64 by the
 * instruction) where the compiler emits a shifted one, a test and a
 * mask. */
static zp_always_inline bool
slab_bit_take(uint64_t *w, uintptr_t a)
{
#if defined(__x86_64__)
	bool was;

	__asm__("btrq %2, %0" : "+r"(*w), "=@ccc"(was) : "r"(a >> 4));
	return was;
#else
	bool was = *w & slab_bit(a);

	*w &= ~slab_bit(a);
	return was;
#endif
}

/* Is the object at a live, as far as a racy read tells? */
static inline bool
slab_is_live(uintptr_t a)
{
	return __atomic_load_n(slab_live_word(a), __ATOMIC_RELAXED) &
	       slab_bit(a);
}

/* The holder marks the object at a handed out. */
static inline void
slab_set_live(uintptr_t a)
{
	*slab_live_word(a) |= slab_bit(a);
}

/* a's offset from the slab's first object; below it, a value that
 * wraps to at least 2^32 - colour (no object start: see below). */
static inline uint32_t
slab_offset(const struct slab *s, uintptr_t a)
{
	return (uint32_t)(a & s->mask) - s->colour;
}

/*
 * Is a the first byte of an object of slab s? With r = 2^32 / size + 1
 * and e = size * r - 2^32 (1 <= e <= size), an offset index * size + rest
 * multiplies to index * 2^32 + index * e + rest * r. The low half is
 * index * e < nr_objs * e for an object start, and at least r > 2^32 /
 * size >= 2^18 > slab bytes >= nr_objs * e for anything else (no wrap:
 * index * e < 2^17). So one multiply and one compare against start_below
 * = nr_objs * e; test_sizeclass checks every offset of every class's slab.
 * An offset below the colour c (< size) wraps to 2^32 - c, whose low half
 * is 2^32 - c * r > 2^32 / size - size >= 2^17: no start either.
 */
static inline bool
slab_is_start(const struct slab *s, uintptr_t a)
{
	return slab_offset(s, a) * s->recip < s->start_below;
}

/* Index of the object at a, or -1 when a is not an object's first byte. */
static inline long
slab_index_of(const struct slab *s, uintptr_t a)
{
	if (zp_unlikely(!slab_is_start(s, a)))
		return -1;
	return (long)(((uint64_t)slab_offset(s, a) * s->recip) >> 32);
}

/*
 * The facts word of every page of a slab (page.h), what the free fast
 * path reads instead of the descriptor: bits 0-2 the order, bit 3 set,
 * bits 5-11 the class, bits 40-63 the owner's id (struct tcache; all
 * ones, SLAB_FACTS_NO_OWNER, when no thread's cache holds the slab).
 * Written with the descriptors: at init, at each change of owner,
 * cleared at fini. The class sits SC_SCALE_SHIFT up so that one mask
 * gives free its bin's offset in the tcache.
 *
 * The first page's word is also the slab's hold word: bits 12-36 are the
 * holder's (0 on other pages), written by the holder alone (the owner
 * under its lock, or whoever holds an unowned slab's cache lock), with
 * relaxed stores, while other threads' frees read the class and owner:
 *   bits 12-19  avail_from: no avail bit in the KiBs below,
 *   bits 20-35  nr_inuse: objects carved and not avail,
 *   bit 36      on its holder's full list (slab_where SLAB_OWN_FULL).
 */
#define SLAB_FACTS_SLAB		((uint64_t)1 << 3)
#define SLAB_FACTS_SC_SHIFT	SC_SCALE_SHIFT
#define SLAB_FACTS_SC		((uint64_t)0x7f << SLAB_FACTS_SC_SHIFT)
#define SLAB_HOLD_FULL		((uint64_t)1 << 36)
#define SLAB_HOLD_FROM_SHIFT	12
#define SLAB_HOLD_FROM		((uint64_t)0xff << SLAB_HOLD_FROM_SHIFT)
#define SLAB_HOLD_INUSE_SHIFT	20
#define SLAB_HOLD_INUSE		((uint64_t)0xffff << SLAB_HOLD_INUSE_SHIFT)
#define SLAB_HOLD_ONE		((uint64_t)1 << SLAB_HOLD_INUSE_SHIFT)
#define SLAB_HOLD_BITS		(SLAB_HOLD_FULL | SLAB_HOLD_FROM | \
				 SLAB_HOLD_INUSE)
#define SLAB_FACTS_OWNER_SHIFT	40
/* The owner field of a slab no thread's cache owns (or whose owner has no
 * id): all ones, which no cache's id is, so that tcache_none's id can be
 * the 0 .bss gives it. */
#define SLAB_FACTS_NO_OWNER	((1u << (64 - SLAB_FACTS_OWNER_SHIFT)) - 1)
_Static_assert(SC_NR <= 128 && SLAB_MAX_ORDER < 8 &&
	       SLAB_FACTS_SC_SHIFT == 5 &&
	       (SLAB_MAX_BYTES >> 10) < 256 &&
	       SLAB_MAX_BYTES / 16 < 65536,
	       "class, order and hold state fit their bits");

static inline uint64_t
slab_facts_make(unsigned sc, unsigned order, uint32_t owner_id)
{
	return (uint64_t)sc << SLAB_FACTS_SC_SHIFT | SLAB_FACTS_SLAB | order |
	       (uint64_t)owner_id << SLAB_FACTS_OWNER_SHIFT;
}

/* SC_SCALE times the class (sizeclass_find_scaled's form). */
static inline size_t
slab_facts_sc_scaled(uint64_t f)
{
	return (size_t)(f & SLAB_FACTS_SC);
}

static inline unsigned
slab_facts_sc(uint64_t f)
{
	return (unsigned)(slab_facts_sc_scaled(f) >> SLAB_FACTS_SC_SHIFT);
}

static inline unsigned
slab_facts_order(uint64_t f)
{
	return (unsigned)f & 7;
}

static inline uint32_t
slab_facts_owner(uint64_t f)
{
	return (uint32_t)(f >> SLAB_FACTS_OWNER_SHIFT);
}

/* The slab's hold word (see above): its first page's facts word. */
static inline uint64_t *
slab_hold_word(const struct slab *s)
{
	return &zp_arena.facts[(const struct page *)(const void *)s -
			       zp_arena.descs];
}

static inline unsigned
slab_hold_inuse(uint64_t h)
{
	return (unsigned)((h & SLAB_HOLD_INUSE) >> SLAB_HOLD_INUSE_SHIFT);
}

static inline unsigned
slab_inuse(const struct slab *s)
{
	return slab_hold_inuse(*slab_hold_word(s));
}

static inline void
slab_hold_store(struct slab *s, uint64_t h)
{
	__atomic_store_n(slab_hold_word(s), h, __ATOMIC_RELAXED);
}

static inline void
slab_inuse_add(struct slab *s, unsigned n)
{
	slab_hold_store(s, *slab_hold_word(s) + n * SLAB_HOLD_ONE);
}

static inline unsigned
slab_hold_from(uint64_t h)
{
	return (unsigned)((h & SLAB_HOLD_FROM) >> SLAB_HOLD_FROM_SHIFT);
}

static inline unsigned
slab_avail_from(const struct slab *s)
{
	return slab_hold_from(*slab_hold_word(s));
}

static inline void
slab_set_avail_from(struct slab *s, unsigned i)
{
	slab_hold_store(s, (*slab_hold_word(s) & ~SLAB_HOLD_FROM) |
			(uint64_t)i << SLAB_HOLD_FROM_SHIFT);
}

/* Mirrors where == SLAB_OWN_FULL, for a flush that reads no descriptor. */
static inline void
slab_set_full(struct slab *s, bool full)
{
	uint64_t h = *slab_hold_word(s) & ~SLAB_HOLD_FULL;

	slab_hold_store(s, full ? h | SLAB_HOLD_FULL : h);
}

/* --- slab.c ------------------------------------------------------------ */

/* The facts word of s's pages, from its descriptor (for slabs of a zone
 * without facts words, and callers that hold a descriptor anyway). */
uint64_t slab_facts(const struct slab *s);

/* Turns a fresh zone block of 1 << order pages into an empty slab of
 * class sc held by owner (every page's descriptor). */
struct slab *slab_init(struct page *head, unsigned sc, unsigned order,
		       struct tcache *owner, bool zero);
/* The geometry of a slab of class sc and 1 << order pages at base: sc,
 * mask, colour, recip, start_below. */
void slab_set_geometry(struct slab *s, unsigned sc, unsigned order,
		       uintptr_t base);
/* Hands s (every page of it) to a new holder. */
void slab_set_owner(struct slab *s, struct tcache *owner);
/* Before an empty slab goes back to the zone: its other pages become
 * plain tails again, so no stale pointer into them looks like an object
 * of a slab. */
void slab_fini(struct slab *s);
/* Forgets the objects of a slab with none out (dirty from now on). */
void slab_reset(struct slab *s);
/* Moves up to want objects (avail ones in address order, then never-used
 * ones) to dst, a bin; returns how many. Nothing of them is written. */
unsigned slab_take(struct slab *s, void **dst, unsigned want);
/* Takes one never-used object, live (calloc from a zero slab: no
 * write). */
void *slab_bump(struct slab *s);
/* Makes the objects of the remote list avail; returns how many. The
 * caller holds the slab (owner, or cache->lock for an unowned one). The
 * state bits stay as they are. */
unsigned slab_collect(struct slab *s);
/* Holder side: are all objects out back on the remote list? Then takes
 * the list without walking it and leaves none out (the caller resets
 * or frees the slab). */
bool slab_collect_if_empty(struct slab *s);
/* Does s have anything the holder could hand out without a collect? */
static inline bool
slab_has_local(const struct slab *s)
{
	return slab_inuse(s) < s->nr_carved || s->nr_carved < slab_nr_objs(s);
}

/* Sets DELAYED on a held slab with nothing local. False when remote frees
 * are waiting (collect them); true also when a freer is already posting,
 * whose mailbox object will bring the slab back. */
bool slab_delay(struct slab *s);
/* Owner side: leaves DELAYED for NORMAL (the slab has room again); a
 * freer that is posting sets NORMAL itself. */
void slab_undelay(struct slab *s);
/* Owner side, before giving s up: no DELAYED left, no freer posting. */
void slab_settle(struct slab *s);

/* realloc of an object that was freed: aborts naming realloc(). */
void slab_realloc_check(const struct page *slab_page, void *p);
void slab_invalid_free(void *p) zp_cold __attribute__((noreturn));
void slab_double_free(void *p) zp_cold __attribute__((noreturn));
/* A free of p, an address in a slab, that is no live object's first
 * byte: aborts, naming a double free or an invalid pointer. Not declared
 * noreturn, so that the fast path reaches it with a jump and keeps no
 * frame of its own. */
void slab_bad_free(void *p) zp_cold;
void slab_corrupt_fatal(struct slab *s, void *slot, uintptr_t next)
	zp_cold __attribute__((noreturn));

/* Usable bytes of an object in this slab (its class size); any page. */
size_t slab_usable_size(const struct page *slab_page);
/* Is p the first byte of an object of this slab? Any page. */
bool slab_is_object_start(const struct page *slab_page, const void *p);

/* The object at a, of a slab of mask + 1 bytes whose hold word is h,
 * is avail again; returns the new hold word, for the caller to store. A
 * bit already set is an object freed twice whose live bit a remote
 * free's lost clear kept (see above). */
static zp_always_inline uint64_t
slab_hold_put_at(uint64_t h, uint64_t *w, uintptr_t a, uintptr_t mask)
{
	uint64_t i = (a & mask) >> 10;

	if (zp_unlikely(*w & slab_bit(a)))
		slab_double_free((void *)a);
	*w |= slab_bit(a);
	if (i < slab_hold_from(h))
		h = (h & ~SLAB_HOLD_FROM) | i << SLAB_HOLD_FROM_SHIFT;
	return h;
}

static zp_always_inline uint64_t
slab_hold_put(uint64_t h, uintptr_t a, uintptr_t mask)
{
	return slab_hold_put_at(h, slab_avail_word(a), a, mask);
}

/* Gives the object at a, out of a bin, back to the slab of mask + 1
 * bytes whose hold word is *hw (w: a's avail word): avail, one fewer
 * out. Returns the hold word stored. None out already is a double free
 * that got past the bits (see above), and a count taken below 0 would
 * borrow from the owner's id. */
static zp_always_inline uint64_t
slab_hold_give_at(uint64_t *hw, uint64_t *w, uintptr_t a, uintptr_t mask)
{
	uint64_t h = slab_hold_put_at(*hw, w, a, mask);

	if (zp_unlikely(!(h & SLAB_HOLD_INUSE)))
		slab_double_free((void *)a);
	h -= SLAB_HOLD_ONE;
	__atomic_store_n(hw, h, __ATOMIC_RELAXED);
	return h;
}

/* Gives p, out of a bin, back to its slab. */
static inline void
slab_push(struct slab *s, void *p)
{
	(void)slab_hold_give_at(slab_hold_word(s), slab_avail_word((uintptr_t)p),
				(uintptr_t)p, s->mask);
}

/* Per-process setup: class geometry, central caches, freelist key. */
void slab_boot(uint64_t key_seed);

#endif /* ZP_SLAB_SLAB_H */
