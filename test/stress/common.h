/*
 * common.h - helpers shared by the stress and compatibility programs.
 *
 * These are plain programs over the libc malloc API: they run unchanged
 * against glibc and under LD_PRELOAD=libzpmalloc.so, so the same binary is
 * its own baseline. Every block gets a fill derived from its address, its
 * size and a per-object tag; a block that changes while it is owned, or
 * that is handed out twice (same address and size, different tag), shows
 * up at the next check.
 */
#ifndef ZP_TEST_STRESS_COMMON_H
#define ZP_TEST_STRESS_COMMON_H

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* A failure message goes out in one write so that lines from several
 * threads do not interleave; then the process exits 1 (not abort: a
 * checker failure must be told apart from an allocator abort). */
static inline void __attribute__((noreturn, format(printf, 1, 2)))
fail(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(2, buf, n) < 0)
		_exit(3);
	_exit(1);
}

static inline uint64_t
mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* xorshift64*: each thread owns one, seeded from STRESS_SEED. */
struct rng {
	uint64_t s;
};

static inline uint64_t
rng_next(struct rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 2685821657736338717ULL;
}

/* Uniform in [0, n). */
static inline uint64_t
rng_below(struct rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

static inline void
rng_seed(struct rng *r, uint64_t seed)
{
	r->s = mix64(seed + 0x9e3779b97f4a7c15ULL) | 1;
}

static inline uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline long
env_long(const char *name, long def)
{
	const char *s = getenv(name);

	return s && *s ? strtol(s, NULL, 0) : def;
}

/* Run length: STRESS_SECONDS scales every program (default per program). */
static inline double
stress_seconds(double def)
{
	const char *s = getenv("STRESS_SECONDS");

	return s && *s ? strtod(s, NULL) : def;
}

static inline uint64_t
pattern_seed(const void *p, size_t size, uint64_t tag)
{
	return mix64((uintptr_t)p ^ mix64(size) ^ (tag << 1));
}

/*
 * Fill the whole block. Blocks above 64 KiB get their words at every
 * 512th position plus both ends, which catches overlap and truncation at
 * a fraction of the memory traffic.
 */
#define SPARSE_ABOVE	(64u << 10)
#define SPARSE_STRIDE	512

static inline void
pattern_fill(void *p, size_t size, uint64_t tag)
{
	uint64_t seed = pattern_seed(p, size, tag);
	uint64_t *w = p;
	size_t nw = size / 8, i;
	unsigned char *tail = (unsigned char *)p + nw * 8;

	if (size <= SPARSE_ABOVE) {
		for (i = 0; i < nw; i++)
			w[i] = seed + i * 0x9e3779b97f4a7c15ULL;
	} else {
		for (i = 0; i < nw; i += SPARSE_STRIDE)
			w[i] = seed + i * 0x9e3779b97f4a7c15ULL;
		for (i = nw - 64; i < nw; i++)
			w[i] = seed + i * 0x9e3779b97f4a7c15ULL;
	}
	for (i = 0; i < size % 8; i++)
		tail[i] = (unsigned char)(seed >> (8 * i));
}

/* Returns the offset of the first bad byte, or (size_t)-1 when intact.
 * `upto` limits the check to a prefix (a realloc keeps only that much). */
static inline size_t
pattern_check_as(const void *p, const void *as, size_t size, uint64_t tag,
		 size_t upto)
{
	uint64_t seed = pattern_seed(as, size, tag);
	const uint64_t *w = p;
	size_t nw = size / 8, i;
	const unsigned char *tail = (const unsigned char *)p + nw * 8;
	size_t lim = upto / 8;

	if (lim > nw)
		lim = nw;
	if (size <= SPARSE_ABOVE) {
		for (i = 0; i < lim; i++)
			if (w[i] != seed + i * 0x9e3779b97f4a7c15ULL)
				return i * 8;
	} else {
		for (i = 0; i < lim; i += SPARSE_STRIDE)
			if (w[i] != seed + i * 0x9e3779b97f4a7c15ULL)
				return i * 8;
		for (i = nw - 64; i < lim; i++)
			if (w[i] != seed + i * 0x9e3779b97f4a7c15ULL)
				return i * 8;
	}
	if (upto < size)
		return (size_t)-1;
	for (i = 0; i < size % 8; i++)
		if (tail[i] != (unsigned char)(seed >> (8 * i)))
			return nw * 8 + i;
	return (size_t)-1;
}

static inline size_t
pattern_check(const void *p, size_t size, uint64_t tag)
{
	return pattern_check_as(p, p, size, tag, size);
}

/* Resident set size in bytes (0 when /proc is unreadable). */
static inline size_t
rss_bytes(void)
{
	char buf[128];
	long pages = 0, rss = 0;
	ssize_t n;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	if (sscanf(buf, "%ld %ld", &pages, &rss) != 2)
		return 0;
	return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

/* --- deadlock tests: a watchdog, and a tick that lands anywhere --------- */

static inline const char **
watchdog_name(void)
{
	static const char *name = "stress";

	return &name;
}

/* Async-signal-safe: write(2) and _exit only. */
static inline void
watchdog_fire(int sig)
{
	static const char msg[] = ": deadlock (no progress before the "
				  "watchdog)\n";
	const char *name = *watchdog_name();

	(void)sig;
	if (write(2, name, strlen(name)) < 0 ||
	    write(2, msg, sizeof(msg) - 1) < 0)
		_exit(3);
	_exit(1);
}

/* The tick is one-shot, armed again when on_tick returns: a handler that
 * takes longer than a tick (a kernel that maps no shared zero page for
 * reads makes compat_sigmmap's checks fault in real pages) must still
 * leave the program a tick to run in, not find the next signal pending
 * as it returns. */
static void (*tick_fn)(int);
static long tick_every_us;

static void
tick_trampoline(int sig)
{
	struct itimerval next = { { 0, 0 }, { 0, tick_every_us } };

	tick_fn(sig);
	setitimer(ITIMER_REAL, &next, NULL);
}

/* Stops the ticks (a handler running now may arm one more). */
static inline void
stop_ticks(void)
{
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	struct sigaction sa = { .sa_handler = SIG_IGN };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &off, NULL);
}

/* A program that may hang sends SIGUSR2 to itself after `seconds` (a
 * timer of its own, so that SIGALRM stays free) and dies there naming
 * itself; with on_tick, SIGALRM also runs on_tick tick_us after the
 * previous run ended (with SA_RESTART), so that it lands wherever the
 * program happens to be. */
static inline void
start_watchdog(const char *name, double seconds, void (*on_tick)(int),
	       long tick_us)
{
	struct itimerval tick = { { 0, 0 }, { 0, tick_us } };
	struct sigaction sa = { .sa_handler = tick_trampoline };
	struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL,
			       .sigev_signo = SIGUSR2 };
	struct itimerspec dog = { .it_value = { (time_t)seconds, 0 } };
	timer_t t;

	*watchdog_name() = name;
	signal(SIGUSR2, watchdog_fire);
	if (timer_create(CLOCK_MONOTONIC, &ev, &t) ||
	    timer_settime(t, 0, &dog, NULL))
		fail("timer_create: %s", strerror(errno));
	if (!on_tick)
		return;
	tick_fn = on_tick;
	tick_every_us = tick_us;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	if (setitimer(ITIMER_REAL, &tick, NULL))
		fail("setitimer: %s", strerror(errno));
}

#endif /* ZP_TEST_STRESS_COMMON_H */
