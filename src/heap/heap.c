/*
 * heap.c - the shared heap of light classes: chunks of zone pages cut into
 * best-fit blocks that merge with their free neighbours (see heap.h).
 * Owns:  chunks (zone blocks of kind PAGE_HEAP) and every header in them.
 * Locks: heap.lock, then the zone's (a chunk comes and goes under it).
 * Path:  heap_alloc -> fit | chunk_new; heap_free -> block_check ->
 *          merge -> bin_add | chunk_empty; heap_trim -> chunk_free,
 *          purge_block -> os_purge.
 *
 * A chunk is one free block and a fence when it comes from the zone: the
 * fence is a used header at its end that no merge passes. Free blocks
 * sit in 64 bins, 64-byte steps below 1 KiB and eight per doubling above,
 * with a bitmap of the bins that hold any: a request looks at a few
 * blocks of its own bin, then takes the first block of the next bin that
 * has one, which always fits (TLSF's good fit). A block is cut from the
 * front of the one found, so a fresh chunk is used from its start and its
 * untouched tail stays untouched.
 *
 * Memory freed here serves only the heap. malloc_trim gives back the
 * whole pages inside free blocks (heap_trim), as glibc's gives back those
 * of its free chunks; each free block knows from where its whole pages
 * are untouched (clean_off: since its chunk came fresh or since a trim),
 * so a trim drops and counts only pages that may be resident (an
 * estimate: a merge with a left neighbour forgets the neighbour's clean
 * part, and a trim drops those pages again, at no cost). The free
 * path gives nothing back: measured on Python's start-up and a program
 * churning every class, purging past a budget at the free saved 8 KiB or
 * less of the peak and costs a page fault for every page the heap then
 * reuses.
 */
#include "heap/heap.h"

#include <string.h>

#include "base/lock.h"
#include "base/log.h"
#include "os/os.h"
#include "page/zone.h"
#include "slab/sizeclass.h"

#define CHUNK_ORDER	HEAP_CHUNK_ORDER
#define CHUNK_BYTES	((uint32_t)HEAP_CHUNK_BYTES)
#define HDR		16u
#define USED		1u
/* The size word: bytes (a multiple of 16) | the class served << 24 |
 * USED. */
#define BYTES_MASK	0x00fffff0u
#define CLASS_SHIFT	24
/* A remainder smaller than this stays with the block cut from it. */
#define MIN_SPLIT	64u
#define NR_BINS		64
/* Blocks of a request's own bin looked at before a larger bin's. */
#define FIT_TRIES	8

_Static_assert(CHUNK_BYTES < (1u << 31), "sizes fit the header's words");

struct hdr {
	uint32_t prev_size;		/* the block before; 0: the first */
	uint32_t size;			/* see BYTES_MASK */
	uint64_t seal;			/* block_seal(this, size) */
};

struct fblk {
	struct hdr h;
	struct fblk *next, *prev;	/* in bins[bin_of(size)] */
	/* The block's whole pages at or past this offset are untouched
	 * (an estimate of RSS only: never a reason to skip a clear). Not in
	 * a block of fewer bytes (a freed 16-byte object's): see clean_of. */
	uint32_t clean_off;
};

_Static_assert(sizeof(struct fblk) <= MIN_SPLIT, "a split's rest holds one");

static struct {
	struct zp_lock lock;
	uint64_t key;
	uint64_t map;			/* bins holding a block */
	struct fblk *bins[NR_BINS];
	/* The free block of a chunk with nothing in use, kept for the next
	 * request rather than given back at once (NULL: none). */
	struct fblk *empty;
	uint16_t live[SC_NR_PLAIN];	/* blocks in use, by class */
	struct heap_stats st;
} heap = { .lock = ZP_LOCK_INIT };

zp_boot_text void
heap_boot(uint64_t key_seed)
{
	heap.key = key_seed | 1;
}

/* --- headers ------------------------------------------------------------- */

static uint64_t
block_seal(const struct hdr *h, uint32_t size)
{
	uint64_t x = ((uintptr_t)h ^ heap.key) + size;

	x *= 0x9e3779b97f4a7c15ull;
	return x ^ (x >> 29);
}

static void
hdr_set(struct hdr *h, uint32_t size)
{
	h->size = size;
	h->seal = block_seal(h, size);
}

static uint32_t
hdr_bytes(const struct hdr *h)
{
	return h->size & BYTES_MASK;
}

static struct hdr *
hdr_next(struct hdr *h)
{
	return (struct hdr *)((char *)h + hdr_bytes(h));
}

/* A free block too small for clean_off (32 bytes: a 16-byte object's)
 * has no whole page to drop; its words end where clean_off would be. */
static uint32_t
clean_of(const struct fblk *b)
{
	uint32_t size = hdr_bytes(&b->h);

	return size >= sizeof(*b) ? b->clean_off : size;
}

static void
set_clean(struct fblk *b, uint32_t off)
{
	if (hdr_bytes(&b->h) >= sizeof(*b))
		b->clean_off = off;
}

/* --- bins ---------------------------------------------------------------- */

static unsigned
bin_of(size_t s)
{
	unsigned k;

	if (s < 1024)
		return (unsigned)(s >> 6);
	k = zp_log2_floor(s);
	return 16 + (k - 10) * 8 + (unsigned)((s >> (k - 3)) & 7);
}

static void
bin_add(struct fblk *b)
{
	unsigned i = bin_of(hdr_bytes(&b->h));

	b->prev = NULL;
	b->next = heap.bins[i];
	if (b->next)
		b->next->prev = b;
	heap.bins[i] = b;
	heap.map |= (uint64_t)1 << i;
}

static void
bin_del(struct fblk *b)
{
	unsigned i = bin_of(hdr_bytes(&b->h));

	if (b->prev)
		b->prev->next = b->next;
	else if ((heap.bins[i] = b->next) == NULL)
		heap.map &= ~((uint64_t)1 << i);
	if (b->next)
		b->next->prev = b->prev;
	if (b == heap.empty)
		heap.empty = NULL;
}

/* A free block of at least need bytes, still in its bin; NULL: none. */
static struct fblk *
fit(uint32_t need)
{
	unsigned i = bin_of(need);
	struct fblk *b = heap.bins[i];
	uint64_t above;

	for (unsigned t = 0; b != NULL && t < FIT_TRIES; t++, b = b->next)
		if (hdr_bytes(&b->h) >= need)
			return b;
	/* Every block of a higher bin is at least that bin's floor, above
	 * any size of bin i. */
	above = i + 1 < NR_BINS ? heap.map >> (i + 1) << (i + 1) : 0;
	if (above == 0)
		return NULL;
	return heap.bins[__builtin_ctzll(above)];
}

/* --- chunks -------------------------------------------------------------- */

/* Among the small blocks (GFP_SMALL), beside the slabs and thread
 * state: a chunk that outlives its neighbours (stdio's buffers live in
 * one) then pins no zone step of its own, which a program under
 * RLIMIT_AS would miss (check_rlimit). */
static struct fblk *
chunk_new(void)
{
	bool zero;
	struct page *head = zone_alloc_pages(NULL, CHUNK_ORDER,
					     GFP_ARENA | GFP_SMALL,
					     PAGE_HEAP, &zero);
	struct fblk *first;
	struct hdr *fence;

	if (head == NULL)
		return NULL;
	first = page_address(head);
	fence = (struct hdr *)((char *)first + CHUNK_BYTES - HDR);
	first->h.prev_size = 0;
	hdr_set(&first->h, CHUNK_BYTES - HDR);
	set_clean(first, zero ? sizeof(*first) : CHUNK_BYTES - HDR);
	fence->prev_size = CHUNK_BYTES - HDR;
	hdr_set(fence, HDR | USED);
	heap.st.nr_chunks++;
	bin_add(first);
	return first;
}

/* The chunk whose one free block b is (in no bin) goes back to the
 * zone. */
static void
chunk_free(struct fblk *b)
{
	heap.st.nr_chunks--;
	zone_free_pages(NULL, page_head(page_lookup(b)));
}

/* b is the free block of a chunk with nothing in use: one such chunk is
 * kept, the next goes back to the zone. */
static void
chunk_empty(struct fblk *b)
{
	if (heap.empty == NULL) {
		bin_add(b);
		heap.empty = b;
		return;
	}
	chunk_free(b);
}

/* --- alloc and free ------------------------------------------------------ */

/* Cuts a block of need bytes from the front of free block b (in no bin);
 * the rest, if worth a block, goes back to a bin. */
static void
carve(struct fblk *b, uint32_t need, unsigned sc)
{
	uint32_t size = hdr_bytes(&b->h);
	struct hdr *h = &b->h;

	if (size - need >= MIN_SPLIT) {
		struct fblk *rest = (struct fblk *)((char *)h + need);
		uint32_t clean = ZP_MAX(clean_of(b),
					need + (uint32_t)sizeof(*rest));

		rest->h.prev_size = need;
		hdr_set(&rest->h, size - need);
		set_clean(rest, clean - need);
		hdr_next(&rest->h)->prev_size = size - need;
		bin_add(rest);
		size = need;
	}
	hdr_set(h, size | sc << CLASS_SHIFT | USED);
	heap.live[sc]++;
	heap.st.used_bytes += size;
	heap.st.nr_used++;
}

void *
heap_alloc(unsigned sc, size_t n, bool zero)
{
	uint32_t need = sizeclass_size(sc) + HDR;
	struct fblk *b;

	if (zp_lock_held_any())
		return NULL;
	zp_lock(&heap.lock);
	b = fit(need);
	if (b == NULL)
		b = chunk_new();
	if (b == NULL) {
		zp_unlock(&heap.lock);
		return NULL;
	}
	bin_del(b);
	carve(b, need, sc);
	heap.st.nr_alloc++;
	zp_unlock(&heap.lock);
	/* As a slab object's: the bytes asked for. */
	return zero ? memset((char *)b + HDR, 0, n) : (char *)b + HDR;
}

static zp_cold zp_noinline void
bad_block(const char *call, const void *p, bool twice)
{
	if (twice)
		log_fatal("%s(): double free detected %p", call, p);
	log_fatal("%s(): invalid pointer %p", call, p);
}

/*
 * The header of p when p is the start of a used block of the chunk at
 * head: in the chunk past its first header, and sealed. A block freed
 * before reads as free: twice. The neighbours' words are checked too, so
 * that a merge never follows a corrupted size. Safe without heap.lock
 * for the block's owner: only its own free writes its size,
 * seal and its right neighbour's prev_size.
 */
static struct hdr *
block_check(const void *p, struct page *head, const char *call)
{
	uintptr_t a = (uintptr_t)p, base = (uintptr_t)page_address(head);
	struct hdr *h = (struct hdr *)(a - HDR);
	uint32_t size;

	if ((a & 15) || a - base < HDR || a - base >= CHUNK_BYTES ||
	    h->seal != block_seal(h, h->size))
		bad_block(call, p, false);
	if (!(h->size & USED))
		bad_block(call, p, true);
	size = hdr_bytes(h);
	if (size < 2 * HDR || size > base + CHUNK_BYTES - HDR - (a - HDR) ||
	    hdr_next(h)->prev_size != size ||
	    h->prev_size > a - HDR - base)
		bad_block(call, p, false);
	return h;
}

/* Frees used block h: merged with free neighbours, binned or, when its
 * chunk is empty, handed to chunk_empty. */
static void
release(struct hdr *h)
{
	uint32_t size = hdr_bytes(h);
	struct hdr *next = hdr_next(h);
	uint32_t clean;

	heap.st.used_bytes -= size;
	heap.st.nr_used--;
	heap.live[h->size >> CLASS_SHIFT]--;
	/* Free before any merge: freed again after its left neighbour
	 * took it, it still reads as freed (twice), not as a stray. The
	 * class goes with the USED bit: a free block serves any. */
	hdr_set(h, size);
	clean = size;
	if (!(next->size & USED)) {
		bin_del((struct fblk *)next);
		clean += clean_of((struct fblk *)next);
		size += hdr_bytes(next);
	}
	if (h->prev_size != 0) {
		struct hdr *prev = (struct hdr *)((char *)h - h->prev_size);

		if (!(prev->size & USED)) {
			bin_del((struct fblk *)prev);
			clean += hdr_bytes(prev);
			size += hdr_bytes(prev);
			h = prev;
		}
	}
	hdr_set(h, size);
	set_clean((struct fblk *)h, clean);
	hdr_next(h)->prev_size = size;
	if (h->prev_size == 0 && size == CHUNK_BYTES - HDR)
		chunk_empty((struct fblk *)h);
	else
		bin_add((struct fblk *)h);
}

void
heap_free(void *p, struct page *head, const char *call)
{
	zp_lock(&heap.lock);
	release(block_check(p, head, call));
	heap.st.nr_free++;
	zp_unlock(&heap.lock);
}

/* No lock: a signal handler may ask while its thread is in the heap. */
unsigned
heap_class(const void *p, struct page *head, const char *call)
{
	return block_check(p, head, call)->size >> CLASS_SHIFT;
}

unsigned
heap_live(unsigned sc)
{
	return __atomic_load_n(&heap.live[sc], __ATOMIC_RELAXED);
}

/* --- trim, fork, stats --------------------------------------------------- */

/* Gives back the whole pages of free block b that may be resident: past
 * its own words, before its clean part and the next block's header. b
 * stays binned: those pages hold none of the words the bins use. */
static uint64_t
purge_block(struct fblk *b)
{
	uintptr_t a = (uintptr_t)b;
	uintptr_t s = zp_align_up(a + sizeof(*b), ZP_PAGE_SIZE);
	uintptr_t e = ZP_MIN(zp_align_up(a + clean_of(b), ZP_PAGE_SIZE),
			     zp_align_down(a + hdr_bytes(&b->h), ZP_PAGE_SIZE));

	/* Refused (mlock, a seccomp filter), the pages stay counted as
	 * resident, for the next trim. */
	if (e <= s || os_purge((void *)s, e - s) != 0)
		return 0;
	set_clean(b, sizeof(*b));
	return e - s;
}

size_t
heap_trim(void)
{
	struct fblk *empty;
	size_t done = 0;

	if (zp_lock_held_any())
		return 0;
	zp_lock(&heap.lock);
	empty = heap.empty;
	if (empty != NULL) {
		bin_del(empty);
		chunk_free(empty);
		done = CHUNK_BYTES;
	}
	for (uint64_t m = heap.map; m != 0; m &= m - 1)
		for (struct fblk *b = heap.bins[__builtin_ctzll(m)]; b;
		     b = b->next) {
			size_t purged = purge_block(b);

			heap.st.purged_bytes += purged;
			done += purged;
		}
	zp_unlock(&heap.lock);
	return done;
}

void
heap_prefork(void)
{
	zp_lock_prefork(&heap.lock);
}

void
heap_postfork_parent(void)
{
	zp_lock_postfork_parent(&heap.lock);
}

void
heap_postfork_child(void)
{
	zp_lock_postfork_child(&heap.lock);
}

/* From a signal handler (mallinfo2) that may have interrupted the heap,
 * a snapshot without the lock, which only statistics may be. */
void
heap_get_stats(struct heap_stats *out)
{
	if (zp_lock_held_any()) {
		*out = heap.st;
		return;
	}
	zp_lock(&heap.lock);
	*out = heap.st;
	zp_unlock(&heap.lock);
}
