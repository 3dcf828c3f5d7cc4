/*
 * glibc_chunk.h - does glibc's malloc own this pointer?
 * A pointer that is neither in a zone nor a large block is either glibc's
 * (allocated before the preload took effect, or handed over from code that
 * called glibc directly) or a bug: a stack, static, interior or freed
 * pointer. Only the first may go to glibc's free; the rest must abort with
 * our own message rather than glibc's or a crash.
 */
#ifndef ZP_MALLOC_GLIBC_CHUNK_H
#define ZP_MALLOC_GLIBC_CHUNK_H

#include "base/util.h"

/* True when p has the shape of a live glibc chunk where glibc keeps
 * them. Never faults; cheap enough for the rare foreign path only. */
bool glibc_chunk_owns(const void *p);

#endif /* ZP_MALLOC_GLIBC_CHUNK_H */
