/*
 * init.h - process boot and per-thread state of the malloc layer.
 * Boot is lazy (the first malloc may come from the dynamic loader or a
 * constructor), recursion-safe and allocation-free.
 */
#ifndef ZP_MALLOC_INIT_H
#define ZP_MALLOC_INIT_H

#include "base/util.h"

struct tstate;

/* Boots every layer once; true when the allocator is usable. */
bool init_boot(void);
bool init_is_booted(void);

/* The calling thread's state, booting and creating it on first use (or
 * again after the thread's exit destructor ran). NULL when out of memory. */
struct tstate *init_tstate(void);

/* Registers our fork handlers unless done already (map.c says when). */
void init_fork_handlers(void);
/* Are they registered? */
bool init_fork_handlers_registered(void);

/* A one-line description of the configuration ("mode ..."), for the
 * verbose line and the statistics header. */
const char *init_mode(void);

#endif /* ZP_MALLOC_INIT_H */
