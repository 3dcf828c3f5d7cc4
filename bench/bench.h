/*
 * bench.h - helpers shared by the workloads in bench/ (C and C++): a
 * monotonic clock, a small deterministic random generator, and the
 * process's resident set read without calling the allocator.
 *
 * The RSS readers use open/read on a stack buffer, never stdio: fopen
 * mallocs its FILE and buffer, and a workload that measures what the
 * allocator gives back while the program is idle must not wake the
 * allocator up by measuring.
 */
#ifndef BENCH_H
#define BENCH_H

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* argv[i] as a number, or def when the program got fewer arguments. */
static inline long
arg_long(int argc, char **argv, int i, long def)
{
	return argc > i ? atol(argv[i]) : def;
}

static inline double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64: the same sequence under every allocator, so checksums
 * agree across them. */
static inline uint64_t
rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Reads a /proc file into buf (NUL-terminated); its length or -1. */
static inline long
proc_read(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	ssize_t n;

	if (fd < 0)
		return -1;
	while (len + 1 < size &&
	       (n = read(fd, buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	return (long)len;
}

/* The number after "key" in /proc/self/status, in bytes (kB lines). */
static inline long
proc_status_bytes(const char *key)
{
	char buf[4096];
	const char *p;
	long v = 0;

	if (proc_read("/proc/self/status", buf, sizeof(buf)) < 0)
		return -1;
	p = strstr(buf, key);
	if (!p)
		return -1;
	for (p += strlen(key); *p == ' ' || *p == '\t'; p++)
		;
	while (*p >= '0' && *p <= '9')
		v = v * 10 + (*p++ - '0');
	return v * 1024;
}

/* Resident set now, in bytes. */
static inline long
rss_bytes(void)
{
	return proc_status_bytes("VmRSS:");
}

/* The process's high-water resident set so far, in bytes. */
static inline long
hwm_bytes(void)
{
	return proc_status_bytes("VmHWM:");
}

#endif
