/*
 * lock.h - the one lock type of the allocator.
 * A futex lock whose word is its holder: the holder's thread pointer, with
 * the low bit set once someone may be waiting. Naming the holder in the
 * same atomic step that takes the lock is what lets fork's prepare step
 * tell "held by the thread that is forking" (a fork from a signal handler
 * that interrupted the allocator) from "held by another thread" with no
 * window in between; a pthread mutex records its owner only after taking
 * it. It spins briefly before sleeping, never allocates, and is reset in a
 * fork child. Fast paths take no lock at all.
 */
#ifndef ZP_BASE_LOCK_H
#define ZP_BASE_LOCK_H

#include "base/util.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "the futex word is the low half of the lock word");

#define ZP_LOCK_WAITERS	((uintptr_t)1)

struct zp_lock {
	uintptr_t word;		/* 0, or holder | ZP_LOCK_WAITERS */
	/* Set by zp_lock_prefork when it took the lock (written by the
	 * holder only): the parent releases it, and the child, which frees
	 * it without an unlock, takes it off the forker's count. */
	bool fork_taken;
};

#define ZP_LOCK_INIT { 0, false }

/* Locks of ours the calling thread holds, or is about to take. */
extern __thread unsigned zp_lock_depth
	__attribute__((tls_model("initial-exec")));

/* Does the calling thread hold (or is it taking) any lock of ours? */
static inline bool
zp_lock_held_any(void)
{
	return zp_unlikely(zp_lock_depth != 0);
}

/* The count and the lock word must change in program order as far as a
 * signal handler of this thread can tell. */
static zp_always_inline void
zp_lock_depth_add(int d)
{
	zp_assert(d > 0 || zp_lock_depth != 0);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	zp_lock_depth += (unsigned)d;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* Out of line (lock.c): spin, then sleep on the futex; wake a sleeper. */
void zp_lock_slow(struct zp_lock *l);
void zp_unlock_wake(struct zp_lock *l);

/* The calling thread's identity: its thread pointer, aligned, so bit 0 is
 * free for ZP_LOCK_WAITERS, and unchanged in a fork child. */
static inline uintptr_t
zp_lock_self(void)
{
	return (uintptr_t)__builtin_thread_pointer();
}

static inline void
zp_lock_init(struct zp_lock *l)
{
	__atomic_store_n(&l->word, 0, __ATOMIC_RELAXED);
	l->fork_taken = false;
}

static inline bool
zp_lock_take_free(struct zp_lock *l)
{
	uintptr_t free_word = 0;

	return __atomic_compare_exchange_n(&l->word, &free_word,
					   zp_lock_self(), false,
					   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static inline bool
zp_trylock(struct zp_lock *l)
{
	zp_lock_depth_add(1);
	if (zp_lock_take_free(l))
		return true;
	zp_lock_depth_add(-1);
	return false;
}

static inline void
zp_lock(struct zp_lock *l)
{
	zp_lock_depth_add(1);
	if (zp_unlikely(!zp_lock_take_free(l)))
		zp_lock_slow(l);
}

static inline void
zp_unlock(struct zp_lock *l)
{
	if (zp_unlikely(__atomic_exchange_n(&l->word, 0, __ATOMIC_RELEASE) &
			ZP_LOCK_WAITERS))
		zp_unlock_wake(l);
	zp_lock_depth_add(-1);
}

/* Does the calling thread hold l? Exact: only the holder can change the
 * word away from naming itself. */
static inline bool
zp_lock_is_mine(struct zp_lock *l)
{
	return (__atomic_load_n(&l->word, __ATOMIC_RELAXED) &
		~ZP_LOCK_WAITERS) == zp_lock_self();
}

/*
 * How fork's prepare step takes the locks; the forking thread's own, so
 * per thread. It walks them twice: PROBE only asks whether this thread
 * holds any (a signal handler forking while the thread it interrupted is
 * inside the allocator), then WAIT takes them all, or TRY only the free
 * ones when it does. glibc supports fork from a signal handler in a
 * single-threaded program and takes no malloc lock then. Our background
 * thread makes that program two threads, and may hold one lock while it
 * waits for one the interrupted thread holds: waiting for it would
 * deadlock, so the child gets the allocator as it finds it, as glibc's
 * child gets an interrupted malloc's arena.
 */
enum zp_fork_mode { ZP_FORK_WAIT, ZP_FORK_PROBE, ZP_FORK_TRY };
extern __thread uint8_t zp_fork_mode;
extern __thread bool zp_fork_interrupted;	/* PROBE found one of ours */

/* Fork's prepare step: take l as zp_fork_mode says, and mark it taken:
 * a lock it does not take (ours already, or busy under TRY) is not the
 * fork's to release. */
static inline void
zp_lock_prefork(struct zp_lock *l)
{
	bool mine = zp_lock_is_mine(l);

	if (zp_fork_mode == ZP_FORK_PROBE) {
		zp_fork_interrupted |= mine;
		return;
	}
	if (mine || (zp_fork_mode == ZP_FORK_TRY && !zp_trylock(l)))
		return;
	if (zp_fork_mode == ZP_FORK_WAIT)
		zp_lock(l);
	l->fork_taken = true;
}

/* Did this thread's prefork take l? (The mark alone could be another
 * forking thread's.) */
static inline bool
zp_lock_fork_took(struct zp_lock *l)
{
	return l->fork_taken && zp_lock_is_mine(l);
}

/* Releases what zp_lock_prefork took, and only that. */
static inline void
zp_lock_postfork_parent(struct zp_lock *l)
{
	if (!zp_lock_fork_took(l))
		return;
	l->fork_taken = false;
	zp_unlock(l);
}

/* After fork the child is single-threaded and owns every lock the parent
 * took in prefork; a fresh lock is the cheapest correct reset. One the
 * forker held before (an interrupted slow path) stays on its count: that
 * path's unlock will take it off. */
static inline void
zp_lock_postfork_child(struct zp_lock *l)
{
	if (zp_lock_fork_took(l))
		zp_lock_depth_add(-1);
	zp_lock_init(l);
}

#endif /* ZP_BASE_LOCK_H */
