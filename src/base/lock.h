/*
 * lock.h - the one lock type of the allocator.
 * An adaptive pthread mutex: it spins briefly before sleeping on a futex,
 * never allocates, and can be re-initialised in a fork child, which is all
 * the slow paths need. Fast paths take no lock at all.
 */
#ifndef ZP_BASE_LOCK_H
#define ZP_BASE_LOCK_H

#include <pthread.h>

#include "base/util.h"

struct zp_lock {
	pthread_mutex_t m;
};

#define ZP_LOCK_INIT { PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP }

static inline void
zp_lock_init(struct zp_lock *l)
{
	pthread_mutex_t m = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;

	l->m = m;
}

static inline void
zp_lock(struct zp_lock *l)
{
	pthread_mutex_lock(&l->m);
}

static inline void
zp_unlock(struct zp_lock *l)
{
	pthread_mutex_unlock(&l->m);
}

static inline bool
zp_trylock(struct zp_lock *l)
{
	return pthread_mutex_trylock(&l->m) == 0;
}

/* After fork the child is single-threaded and owns every lock the parent
 * took in prefork; a fresh lock is the cheapest correct reset. */
static inline void
zp_lock_postfork_child(struct zp_lock *l)
{
	zp_lock_init(l);
}

#endif /* ZP_BASE_LOCK_H */
