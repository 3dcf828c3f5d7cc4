/*
 * util.h - the few macros every layer uses: branch hints, alignment
 * arithmetic, assertions and build-option constants.
 * Everything here is header-only and includes nothing of ours but the
 * generated zp_config.h, so any layer may include it.
 */
#ifndef ZP_BASE_UTIL_H
#define ZP_BASE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zp_config.h"

#define zp_likely(x)	__builtin_expect(!!(x), 1)
#define zp_unlikely(x)	__builtin_expect(!!(x), 0)
#define zp_noinline	__attribute__((noinline))
#define zp_cold		__attribute__((cold, noinline))
#define zp_always_inline inline __attribute__((always_inline))
#define zp_unused	__attribute__((unused))
#define zp_must_check	__attribute__((warn_unused_result))
#define zp_cacheline_aligned __attribute__((aligned(ZP_CACHELINE)))
/*
 * For a function that runs only while the allocator boots: its text lies
 * in a mapping of its own (src/hot_text.ld) that boot drops from the
 * process once done (init.c), as the kernel frees its __init text. A
 * later call (a second zone) faults it back in from the page cache.
 */
#define zp_boot_text	__attribute__((section(".text.zp_boot")))
/*
 * For a large zeroed array: placed after the rest of .bss, so that the
 * scalars every process touches share two or three pages instead of being
 * strewn between arrays of which a process touches a page or none (on a
 * kernel without a zero page for reads, a read commits a page too). Only
 * for arrays of a page or more. x86-64's GCC makes .lbss sections NOBITS
 * and its ld places them after .bss; elsewhere they would be zeros in the
 * file (other GCC targets) or large-model data (clang 18 on), and a named
 * section loses ASan's redzones: there, plain .bss. Each starts on a
 * page (the padding is NOBITS: it costs address space only), so that an
 * array of exactly a page, such as the class table every process reads,
 * is one page and not the ends of two.
 */
#if defined(__x86_64__) && !defined(__clang__) && \
	!defined(__SANITIZE_ADDRESS__)
#define zp_bss_large	__attribute__((section(".lbss.zp"), aligned(ZP_PAGE_SIZE)))
#else
#define zp_bss_large
#endif

#define ZP_CACHELINE	64
#define ZP_PAGE_SHIFT	12
#define ZP_PAGE_SIZE	((size_t)1 << ZP_PAGE_SHIFT)
/* The largest buddy block: order 10 = 4 MiB, so zones grow in 2 MiB
 * commit steps within 4 MiB-aligned blocks. */
#define ZP_MAX_ORDER	10
#define ZP_MAX_BLOCK	(ZP_PAGE_SIZE << ZP_MAX_ORDER)
#define ZP_COMMIT_STEP	((size_t)2 << 20)

/* A spin-wait's pause: lets the other hyperthread run, saves power. */
static inline void
zp_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

#define ZP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ZP_MIN(a, b)	((a) < (b) ? (a) : (b))
#define ZP_MAX(a, b)	((a) > (b) ? (a) : (b))

#define zp_container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

static inline uintptr_t
zp_align_up(uintptr_t x, uintptr_t a)
{
	return (x + a - 1) & ~(a - 1);
}

static inline uintptr_t
zp_align_down(uintptr_t x, uintptr_t a)
{
	return x & ~(a - 1);
}

static inline bool
zp_is_pow2(uintptr_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

/* Smallest order such that (1 << order) >= n; n >= 1. */
static inline unsigned
zp_order_ceil(uintptr_t n)
{
	return n <= 1 ? 0 : 64 - (unsigned)__builtin_clzl(n - 1);
}

static inline unsigned
zp_log2_floor(uintptr_t n)
{
	return 63 - (unsigned)__builtin_clzl(n);
}

/* Build options are plain constants so disabled code still compiles. */
#define ZP_IS_DEBUG	(ZP_DEBUG != 0)
#define ZP_IS_STATS	(ZP_STATS != 0)

void log_assert_fail(const char *expr, const char *file, int line)
	__attribute__((noreturn, cold));

#define zp_assert(c)							\
	do {								\
		if (ZP_IS_DEBUG && zp_unlikely(!(c)))			\
			log_assert_fail(#c, __FILE__, __LINE__);	\
	} while (0)

/* For full walks (buddy_check() and the like) that only debug builds
 * can afford; tests call the walkers directly. */
#define zp_assert_expensive(c) zp_assert(c)

/* Count a path in stats builds; compiles to nothing otherwise. */
#define zp_stat_inc(field)						\
	do {								\
		if (ZP_IS_STATS)					\
			(field)++;					\
	} while (0)
#define zp_stat_add(field, n)						\
	do {								\
		if (ZP_IS_STATS)					\
			(field) += (n);					\
	} while (0)

#endif /* ZP_BASE_UTIL_H */
