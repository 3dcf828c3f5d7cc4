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
 *
 * Then again under `ulimit -n 16` (the program runs itself anew with
 * that limit): the engine keeps no descriptor, so the program can open
 * as many files as the limit leaves it, as under glibc.
 */
#include <fcntl.h>
#include <sys/resource.h>

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

/* wait: until the scanner has given pages back (under live reclaim);
 * else a few of its passes (every 1 ms), under a limit that leaves it
 * nothing to do. */
static void
engine_work(bool wait)
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
	if (!wait)
		usleep(100 * 1000);
	while (wait && zp_has_reclaim() && reclaimed() == before &&
	       now_ns() < end)
		usleep(10000);
	for (int i = 0; i < NR; i++)
		free(b[i]);
}

#define LOW_LIMIT 16

static int
limited(void)
{
	int free_fds = 0, opened = 0;
	struct zp_info in;

	for (int i = 0; i < LOW_LIMIT; i++)
		free_fds += fcntl(i, F_GETFD) < 0;
	engine_work(/* wait */ false);
	/* The engine looked and said no (zpmalloc only). */
	if (zp_info_get(&in) && !strstr(in.level_reason, "descriptor limit"))
		fail("under ulimit -n %d the engine says: level %d, %s",
		     LOW_LIMIT, in.level, in.level_reason);
	while (open("/dev/null", O_RDONLY) >= 0)
		opened++;
	if (errno != EMFILE)
		fail("open: %s", strerror(errno));
	if (opened != free_fds)
		fail("under ulimit -n %d: %d opens, %d numbers were free",
		     LOW_LIMIT, opened, free_fds);
	fprintf(stderr, "compat_lowfd: all %d free numbers opened under "
		"ulimit -n %d\n", opened, LOW_LIMIT);
	return 0;
}

static void
run_limited(const char *self)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		die("getrlimit: %s", strerror(errno));
	rl.rlim_cur = LOW_LIMIT;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		die("setrlimit: %s", strerror(errno));
	dup2(saved_err, 2);
	execl("/proc/self/exe", self, "limited", (char *)NULL);
	fail("exec: %s", strerror(errno));
}

int
main(int argc, char **argv)
{
	int fd[3];

	if (argc > 1 && strcmp(argv[1], "limited") == 0)
		return limited();

	saved_err = fcntl(2, F_DUPFD_CLOEXEC, 100);
	if (saved_err < 0)
		fail("fcntl: %s", strerror(errno));
	for (int round = 0; round < 2; round++) {
		close(0);
		close(1);
		close(2);
		engine_work(/* wait */ true);
		for (int i = 0; i < 3; i++)
			fd[i] = open("/dev/null", O_RDWR);
		for (int i = 0; i < 3; i++)
			if (fd[i] != i)
				die("round %d: /dev/null opened as %d %d %d, "
				    "not 0 1 2", round, fd[0], fd[1], fd[2]);
	}
	dprintf(saved_err, "compat_lowfd: 0 1 2 reopened twice, %lu pages "
		"reclaimed\n", (unsigned long)reclaimed());
	run_limited(argv[0]);
	return 1;
}
