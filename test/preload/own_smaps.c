/*
 * own_smaps.c - writes its own /proc/self/smaps to stdout and allocates
 * nothing: open, read and write only, into a static buffer.
 *
 * A program that never calls the allocator (true, a shell's forked
 * builtin) should pay for no more of a preloaded zpmalloc than the loader
 * maps and the load and exit hooks (text_layout.sh reads what this one
 * has resident). stdio would allocate its buffer.
 */
#include <fcntl.h>
#include <unistd.h>

static char buf[1 << 16];

int
main(void)
{
	int fd = open("/proc/self/smaps", O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return 1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t off = 0, w; off < n; off += w)
			if ((w = write(1, buf + off, (size_t)(n - off))) <= 0)
				return 1;
	return n < 0;
}
