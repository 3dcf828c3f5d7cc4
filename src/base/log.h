/*
 * log.h - formatting without malloc or stdio.
 * The allocator cannot call printf (it may allocate, and it may be us), so
 * diagnostics and statistics format into a caller-owned buffer and go out
 * with write(2) through the OS layer.
 */
#ifndef ZP_BASE_LOG_H
#define ZP_BASE_LOG_H

#include <stdarg.h>

#include "base/util.h"

/*
 * Supported conversions: %s %c %d %i %u %x %p %% with the length modifiers
 * l, ll, z; a field width (%8u, %-12s) and '0' padding. Anything else is
 * copied through literally. The result is always NUL-terminated and
 * truncated to fit; the return value is the length written.
 */
size_t fmt_vbuf(char *buf, size_t size, const char *fmt, va_list ap);
size_t fmt_buf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A buffered writer over a file descriptor, for multi-line reports. */
struct outbuf {
	int fd;
	size_t len;
	char buf[4096];
};

void out_init(struct outbuf *o, int fd);
void out_printf(struct outbuf *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void out_puts(struct outbuf *o, const char *s);
void out_flush(struct outbuf *o);

/* One line to stderr, prefixed "zpmalloc: ". */
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Heap corruption and broken invariants: one line naming the call, then
 * abort(). Example: log_fatal("free(): invalid pointer %p", p). */
void log_fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn, cold));

#endif /* ZP_BASE_LOG_H */
