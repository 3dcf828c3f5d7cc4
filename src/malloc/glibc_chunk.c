/*
 * glibc_chunk.c - recognising glibc 2.36's malloc chunks (x86-64 layout).
 * Owns:  nothing; reads the two header words before a pointer.
 * Locks: none.
 * Path:  alloc_free_slow -> glibc_chunk_owns -> os_read_mem
 *
 * A chunk header is { prev_size, size | flags } just below the pointer;
 * the flags say where glibc keeps it: mmapped on its own (IS_MMAPPED),
 * in a secondary arena's 64 MiB-aligned heap (NON_MAIN_ARENA), or in the
 * main arena's brk heap. Each has an invariant glibc itself relies on, so
 * a pointer that breaks it is not glibc's either.
 */
#include "malloc/glibc_chunk.h"
#include "os/os.h"

#define CHUNK_PREV_INUSE	1
#define CHUNK_IS_MMAPPED	2
#define CHUNK_NON_MAIN_ARENA	4
#define CHUNK_FLAGS		7
#define CHUNK_MIN_SIZE		32
#define GLIBC_HEAP_MAX		((uintptr_t)64 << 20)

struct chunk_header {
	size_t prev_size;
	size_t size;
};

static bool
mmapped_chunk(uintptr_t chunk, const struct chunk_header *h)
{
	size_t size = h->size & ~(size_t)CHUNK_FLAGS;
	uintptr_t start = chunk - h->prev_size;
	size_t total = h->prev_size + size;
	char probe;

	return ((start | total) & (ZP_PAGE_SIZE - 1)) == 0 && size != 0 &&
	       start <= chunk && os_read_mem((void *)(start + total - 1),
					     &probe, 1);
}

/* A secondary arena's heap starts with a heap_info whose first word is
 * its arena and whose third is the heap's mapped size. */
static bool
arena_chunk(uintptr_t chunk, size_t size)
{
	uintptr_t heap = chunk & ~(GLIBC_HEAP_MAX - 1);
	uintptr_t info[3];

	if (!os_read_mem((void *)heap, info, sizeof(info)) || info[0] == 0)
		return false;
	return chunk + size <= heap + info[2] && info[2] <= GLIBC_HEAP_MAX;
}

static bool
main_chunk(uintptr_t chunk, size_t size)
{
	uintptr_t start, end;

	os_brk_range(&start, &end);
	return chunk >= start && chunk + size <= end;
}

bool
glibc_chunk_owns(const void *p)
{
	uintptr_t chunk = (uintptr_t)p - sizeof(struct chunk_header);
	struct chunk_header h;
	size_t size;

	if (((uintptr_t)p & 15) || !os_read_mem((void *)chunk, &h, sizeof(h)))
		return false;
	if (h.size & CHUNK_IS_MMAPPED)
		return mmapped_chunk(chunk, &h);
	size = h.size & ~(size_t)CHUNK_FLAGS;
	if (size < CHUNK_MIN_SIZE || (size & 15) || chunk + size < chunk)
		return false;
	if (h.size & CHUNK_NON_MAIN_ARENA)
		return arena_chunk(chunk, size);
	return main_chunk(chunk, size);
}
