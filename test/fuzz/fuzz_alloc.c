/*
 * fuzz_alloc.c - libFuzzer target: allocation sequences against a shadow.
 *
 * The input is decoded into operations over 64 slots: malloc, calloc,
 * realloc, free, memalign/posix_memalign/aligned_alloc, valloc,
 * malloc_usable_size and a re-check. The shadow keeps, for each live slot,
 * the size, the alignment asked for and the tag of the pattern written
 * into it. After every operation the touched block is checked: its
 * contents (or the prefix realloc must keep, or zeros for calloc), its
 * alignment, malloc_usable_size >= size, and no overlap with any other
 * live block. A violation aborts, which libFuzzer reports with the input.
 *
 * Built twice by test/stress/meson.build: fuzz_alloc links libzpmalloc.so
 * (no ASan, which would replace malloc), fuzz_alloc_asan runs the same
 * harness on glibc under ASan+UBSan to keep the harness itself honest.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../stress/common.h"

#define NSLOTS		64
#define MAX_LIVE	(256u << 20)

struct shadow {
	unsigned char *p;
	size_t size;
	size_t align;
	uint64_t tag;
};

static struct shadow slots[NSLOTS];
static size_t live_bytes;
static uint64_t next_tag;

static void __attribute__((noreturn))
violation(const char *what, const struct shadow *s)
{
	fprintf(stderr, "fuzz_alloc: %s: block %p size %zu align %zu\n", what,
		(void *)s->p, s->size, s->align);
	abort();
}

/* Reads n bytes little-endian; missing bytes read as zero. */
static uint64_t
take(const uint8_t **d, size_t *len, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++) {
		if (*len) {
			v |= (uint64_t)**d << (8 * i);
			(*d)++;
			(*len)--;
		}
	}
	return v;
}

/* Mostly small sizes, some medium, now and then up to 12 MiB. */
static size_t
decode_size(const uint8_t **d, size_t *len)
{
	uint64_t v = take(d, len, 3);

	if ((v & 15) < 11)
		return (v >> 4) % 1025;
	if ((v & 15) < 15)
		return (v >> 4) % (256 << 10);
	return (v >> 4) % (12u << 20);
}

static void
check_block(const struct shadow *s)
{
	size_t i;

	if (!s->p)
		return;
	if ((uintptr_t)s->p % s->align)
		violation("misaligned", s);
	if (malloc_usable_size(s->p) < s->size)
		violation("malloc_usable_size below the size", s);
	if (pattern_check(s->p, s->size, s->tag) != (size_t)-1)
		violation("contents changed", s);
	for (i = 0; i < NSLOTS; i++) {
		const struct shadow *o = &slots[i];

		if (o == s || !o->p)
			continue;
		/* Zero-size blocks still get distinct addresses. */
		if (s->p < o->p + (o->size ? o->size : 1) &&
		    o->p < s->p + (s->size ? s->size : 1))
			violation("overlaps another live block", s);
	}
}

static void
release(struct shadow *s)
{
	if (!s->p)
		return;
	check_block(s);
	free(s->p);
	live_bytes -= s->size;
	s->p = NULL;
}

static void
adopt(struct shadow *s, void *p, size_t size, size_t align, bool zero)
{
	s->p = p;
	s->size = size;
	s->align = align;
	if (zero)
		for (size_t i = 0; i < size;
		     i += size > SPARSE_ABOVE ? 4093 : 1)
			if (s->p[i])
				violation("calloc block not zero", s);
	s->tag = ++next_tag;
	pattern_fill(p, size, s->tag);
	live_bytes += size;
	check_block(s);
}

static void
op_realloc(struct shadow *s, size_t size)
{
	unsigned char *p;
	size_t keep = size < s->size ? size : s->size;
	struct shadow old = *s;

	check_block(s);
	p = realloc(s->p, size);
	if (!p) {
		if (size == 0) {	/* freed, as glibc does */
			live_bytes -= s->size;
			s->p = NULL;
			return;
		}
		check_block(s);	/* failure leaves the block alone */
		return;
	}
	if (pattern_check_as(p, old.p, old.size, old.tag, keep) !=
	    (size_t)-1) {
		s->p = p;
		violation("realloc lost contents", s);
	}
	live_bytes -= old.size;
	adopt(s, p, size, 16, false);
}

static void
op_aligned(struct shadow *s, unsigned kind, unsigned shift, size_t size)
{
	size_t align = (size_t)1 << (shift % 21);
	void *p = NULL;

	switch (kind % 4) {
	case 0:
		p = memalign(align, size);
		break;
	case 1:
		align = align < sizeof(void *) ? sizeof(void *) : align;
		if (posix_memalign(&p, align, size))
			p = NULL;
		break;
	case 2:
		size = (size + align - 1) / align * align;
		p = aligned_alloc(align, size);
		break;
	default:
		align = 4096;
		p = valloc(size);
		break;
	}
	if (p)
		adopt(s, p, size, align < 16 ? 16 : align, false);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	while (len) {
		unsigned op = take(&data, &len, 1);
		struct shadow *s = &slots[take(&data, &len, 1) % NSLOTS];
		size_t size = decode_size(&data, &len);
		void *p;

		if (op % 8 != 2 && op % 8 != 5 && op % 8 != 6)
			release(s);
		if (live_bytes + size > MAX_LIVE)
			continue;
		switch (op % 8) {
		case 0:
		case 1:
			p = malloc(size);
			if (p)
				adopt(s, p, size, 16, false);
			break;
		case 2:
			if (s->p)
				op_realloc(s, size);
			break;
		case 3: {
			size_t n = 1 + op / 8;

			p = calloc(n, size / n);
			if (p)
				adopt(s, p, n * (size / n), 16, true);
			break;
		}
		case 4:
			op_aligned(s, op / 8, (unsigned)take(&data, &len, 1),
				   size);
			break;
		case 5:
		case 6:
			check_block(s);
			break;
		default:
			break;	/* the release above was the operation */
		}
	}
	for (unsigned i = 0; i < NSLOTS; i++)
		release(&slots[i]);
	return 0;
}
