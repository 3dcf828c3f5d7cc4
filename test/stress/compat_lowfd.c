/*
 * compat_lowfd.c - a daemon that closes its standard descriptors and opens
 * /dev/null in their place.
 *
 * open() returns the lowest free number (POSIX), and daemons count on it:
 * after close(0), close(1) and close(2), three opens are 0, 1 and 2. An
 * allocator that opens a descriptor of its own meanwhile (zpmalloc's
 * /proc/self/pagemap and userfaultfd) must not take one of those numbers.
 *
 * Twice: close 0-2, make the engine work (large blocks calloc'd, written,
 * zeroed and freed; under live reclaim, wait until the scanner has given
 * pages back), open /dev/null three times and check the numbers. Messages
 * go to a copy of stderr kept at a high number.
 */
#include <fcntl.h>

#include "common.h"
#include "zpinfo.h"

#define BLOCK	((size_t)8 << 20)
#define NR	8

static int saved_err = -1;

#define die(...) do {				\
	dup2(saved_err, 2);			\
	fail(__VA_ARGS__);			\
} while (0)

static uint64_t
reclaimed(void)
{
	struct zp_info in;

	return zp_info_get(&in) ? in.nr_reclaimed_pages : 0;
}

static void
engine_work(void)
{
	uint64_t before = reclaimed(), end = now_ns() + 5000000000ULL;
	char *b[NR];

	for (int i = 0; i < NR; i++) {
		b[i] = calloc(1, BLOCK);
		if (!b[i])
			die("calloc: %s", strerror(errno));
		memset(b[i], 1, BLOCK);
		memset(b[i], 0, BLOCK);
	}
	while (zp_has_reclaim() && reclaimed() == before && now_ns() < end)
		usleep(10000);
	for (int i = 0; i < NR; i++)
		free(b[i]);
}

int
main(void)
{
	int fd[3];

	saved_err = fcntl(2, F_DUPFD_CLOEXEC, 100);
	if (saved_err < 0)
		fail("fcntl: %s", strerror(errno));
	for (int round = 0; round < 2; round++) {
		close(0);
		close(1);
		close(2);
		engine_work();
		for (int i = 0; i < 3; i++)
			fd[i] = open("/dev/null", O_RDWR);
		for (int i = 0; i < 3; i++)
			if (fd[i] != i)
				die("round %d: /dev/null opened as %d %d %d, "
				    "not 0 1 2", round, fd[0], fd[1], fd[2]);
	}
	dprintf(saved_err, "compat_lowfd: 0 1 2 reopened twice, %lu pages "
		"reclaimed\n", (unsigned long)reclaimed());
	return 0;
}
