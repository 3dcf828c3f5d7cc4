/*
 * lock.c - the contended half of struct zp_lock.
 * Owns:  nothing; the lock words live in their owners' structs.
 * Locks: this is the lock.
 * Path:  zp_lock (lock.h) -> zp_lock_slow -> spin | os_futex_wait;
 *        zp_unlock (lock.h) -> zp_unlock_wake -> os_futex_wake
 *
 * A waiter sets ZP_LOCK_WAITERS before it sleeps and takes a freed lock
 * with the bit already set, since others may still sleep; every unlock
 * that finds the bit wakes one sleeper. The futex compares the low half of
 * the word, which holds the bit, so a waiter cannot sleep through the
 * release it waited for.
 */
#include "base/lock.h"
#include "os/os.h"

/* Critical sections are short (list splices, a bulk take): a brief spin
 * usually beats the two system calls of a sleep and a wake. */
#define LOCK_SPINS	200

__thread unsigned zp_lock_depth __attribute__((tls_model("initial-exec")));
__thread uint8_t zp_fork_mode;
__thread bool zp_fork_interrupted;

static uint32_t *
futex_word(struct zp_lock *l)
{
	return (uint32_t *)(void *)&l->word;
}

static bool
take_free(struct zp_lock *l, uintptr_t as)
{
	uintptr_t free_word = 0;

	return __atomic_compare_exchange_n(&l->word, &free_word, as, false,
					   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

void
zp_lock_slow(struct zp_lock *l)
{
	uintptr_t me = zp_lock_self(), c;

	for (unsigned i = 0; i < LOCK_SPINS; i++) {
		if (__atomic_load_n(&l->word, __ATOMIC_RELAXED) == 0 &&
		    take_free(l, me))
			return;
		zp_cpu_relax();
	}
	for (;;) {
		c = __atomic_load_n(&l->word, __ATOMIC_RELAXED);
		if (c == 0) {
			if (take_free(l, me | ZP_LOCK_WAITERS))
				return;
			continue;
		}
		if (!(c & ZP_LOCK_WAITERS) &&
		    !__atomic_compare_exchange_n(&l->word, &c,
						 c | ZP_LOCK_WAITERS, false,
						 __ATOMIC_RELAXED,
						 __ATOMIC_RELAXED))
			continue;
		os_futex_wait(futex_word(l), (uint32_t)(c | ZP_LOCK_WAITERS));
	}
}

void
zp_unlock_wake(struct zp_lock *l)
{
	os_futex_wake(futex_word(l), 1);
}
