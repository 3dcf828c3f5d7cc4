/*
 * log.c - a printf subset that never allocates, and the fatal-error path.
 * Owns:  nothing global.
 * Locks: none; each call formats into its own stack buffer and issues one
 *        write(2), so lines from different threads do not interleave.
 * Path:  log_fatal -> fmt_vbuf -> os_write -> abort
 */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "os/os.h"

struct fmt_state {
	char *buf;
	size_t size;
	size_t len;
};

static void
put_char(struct fmt_state *st, char c)
{
	if (st->len + 1 < st->size)
		st->buf[st->len] = c;
	st->len++;
}

static void
put_padded(struct fmt_state *st, const char *s, size_t n, int width,
	   bool left, char pad)
{
	int fill = width > (int)n ? width - (int)n : 0;

	if (!left)
		while (fill-- > 0)
			put_char(st, pad);
	for (size_t i = 0; i < n; i++)
		put_char(st, s[i]);
	if (left)
		while (fill-- > 0)
			put_char(st, ' ');
}

static size_t
utoa(char *out, unsigned long long v, unsigned base)
{
	char tmp[24];
	size_t n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* Reads one integer argument of the given length class. */
static unsigned long long
arg_unsigned(va_list *ap, int lng)
{
	if (lng >= 2)
		return va_arg(*ap, unsigned long long);
	if (lng == 1)
		return va_arg(*ap, unsigned long);
	return va_arg(*ap, unsigned int);
}

static long long
arg_signed(va_list *ap, int lng)
{
	if (lng >= 2)
		return va_arg(*ap, long long);
	if (lng == 1)
		return va_arg(*ap, long);
	return va_arg(*ap, int);
}

static void
fmt_number(struct fmt_state *st, char conv, int lng, va_list *ap, int width,
	   bool left, char pad)
{
	char num[32];
	size_t n = 0;

	if (conv == 'd' || conv == 'i') {
		long long v = arg_signed(ap, lng);
		unsigned long long mag = v < 0 ? 0ULL - (unsigned long long)v
					       : (unsigned long long)v;
		if (v < 0)
			num[n++] = '-';
		n += utoa(num + n, mag, 10);
	} else if (conv == 'p') {
		num[n++] = '0';
		num[n++] = 'x';
		n += utoa(num + n, (uintptr_t)va_arg(*ap, void *), 16);
	} else {
		n = utoa(num, arg_unsigned(ap, lng), conv == 'x' ? 16 : 10);
	}
	put_padded(st, num, n, width, left, pad);
}

size_t
fmt_vbuf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct fmt_state st = { buf, size, 0 };
	va_list aq;

	va_copy(aq, ap);
	for (const char *f = fmt; *f; f++) {
		if (*f != '%') {
			put_char(&st, *f);
			continue;
		}
		const char *start = f++;
		bool left = false;
		char pad = ' ';
		int width = 0, lng = 0;

		if (*f == '-')
			left = true, f++;
		if (*f == '0')
			pad = '0', f++;
		while (*f >= '0' && *f <= '9')
			width = width * 10 + (*f++ - '0');
		for (; *f == 'l' || *f == 'z'; f++)
			lng++;
		switch (*f) {
		case 's': {
			const char *s = va_arg(aq, const char *);
			if (!s)
				s = "(null)";
			put_padded(&st, s, strlen(s), width, left, ' ');
			break;
		}
		case 'c':
			put_char(&st, (char)va_arg(aq, int));
			break;
		case 'd': case 'i': case 'u': case 'x': case 'p':
			fmt_number(&st, *f, lng, &aq, width, left, pad);
			break;
		case '%':
			put_char(&st, '%');
			break;
		default:
			/* Unknown conversion: copy it through so the bug shows. */
			for (; start <= f && *start; start++)
				put_char(&st, *start);
			if (!*f)
				f--;
		}
	}
	va_end(aq);
	if (size)
		buf[st.len < size ? st.len : size - 1] = '\0';
	return st.len < size ? st.len : (size ? size - 1 : 0);
}

size_t
fmt_buf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = fmt_vbuf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

void
out_init(struct outbuf *o, int fd)
{
	o->fd = fd;
	o->len = 0;
}

void
out_flush(struct outbuf *o)
{
	size_t off = 0;

	while (off < o->len) {
		long w = os_write(o->fd, o->buf + off, o->len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	o->len = 0;
}

void
out_puts(struct outbuf *o, const char *s)
{
	for (; *s; s++) {
		if (o->len == sizeof(o->buf))
			out_flush(o);
		o->buf[o->len++] = *s;
	}
}

void
out_printf(struct outbuf *o, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	fmt_vbuf(line, sizeof(line), fmt, ap);
	va_end(ap);
	out_puts(o, line);
}

static void
log_vline(const char *fmt, va_list ap)
{
	char line[512];
	size_t n = fmt_buf(line, sizeof(line) - 1, "zpmalloc: ");

	n += fmt_vbuf(line + n, sizeof(line) - 1 - n, fmt, ap);
	line[n++] = '\n';
	os_write(2, line, n);
}

void
log_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(fmt, ap);
	va_end(ap);
}

void
log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(fmt, ap);
	va_end(ap);
	abort();
}

void
log_assert_fail(const char *expr, const char *file, int line)
{
	log_fatal("assertion failed: %s (%s:%d)", expr, file, line);
}
