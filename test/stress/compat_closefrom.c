/*
 * compat_closefrom.c - a program that closes every descriptor it did not
 * open and opens its own files.
 *
 * Daemons and spawners call closefrom(3) or close_range(3, ~0U, 0), then
 * open their own files, which get the lowest free numbers: those of the
 * allocator's descriptors, if it had any. zpmalloc must notice, never
 * read, write, ioctl or close one of the program's files, and open new
 * descriptors of its own, so that reclaim goes on.
 *
 * Twice (closefrom, then close_range): make reclaim work, close
 * everything from 3 up, fill the low numbers with a pipe holding a known
 * message, a memfd holding a known page and /dev/null; make reclaim work
 * again and, under zpmalloc with live reclaim, wait until pages are
 * reclaimed again; then check the program's files: the pipe holds
 * exactly the message, the memfd page and offset are unchanged, and every
 * one is still open in a forked child.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "common.h"
#include "zpinfo.h"

#define BLOCK	((size_t)64 << 20)

static const char msg[] = "the program's own pipe";

static uint64_t
reclaimed(void)
{
	struct zp_info in;

	return zp_info_get(&in) ? in.nr_reclaimed_pages : 0;
}

/* Written, then zeroed: pages for the scanner. Returns once some were
 * reclaimed (zpmalloc with live reclaim) or after a grace period. */
static void
reclaim_work(char *p, const char *when)
{
	uint64_t before = reclaimed(), end = now_ns() + 8000000000ULL;

	memset(p, 1, BLOCK);
	memset(p, 0, BLOCK);
	if (!zp_has_reclaim())
		return;
	while (reclaimed() < before + BLOCK / 4096 / 2 && now_ns() < end)
		usleep(20000);
	if (reclaimed() < before + BLOCK / 4096 / 2)
		fail("reclaim stopped %s (%lu pages, was %lu)", when,
		     (unsigned long)reclaimed(), (unsigned long)before);
}

struct files {
	int pipe[2], memfd, null;
	char page[4096];
};

static void
open_files(struct files *f)
{
	if (pipe(f->pipe) != 0)
		fail("pipe: %s", strerror(errno));
	f->memfd = memfd_create("compat_closefrom", 0);
	f->null = open("/dev/null", O_RDWR);
	if (f->memfd < 0 || f->null < 0)
		fail("open: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(f->page); i++)
		f->page[i] = (char)(i * 13 + 7);
	if (write(f->memfd, f->page, sizeof(f->page)) !=
	    (ssize_t)sizeof(f->page) ||
	    write(f->pipe[1], msg, sizeof(msg)) != (ssize_t)sizeof(msg))
		fail("write: %s", strerror(errno));
	printf("  files at %d %d %d %d\n", f->pipe[0], f->pipe[1], f->memfd,
	       f->null);
}

static void
check_files(struct files *f, const char *when)
{
	char buf[8192], page[4096];
	ssize_t n;
	pid_t pid;
	int st;

	if (lseek(f->memfd, 0, SEEK_CUR) != (off_t)sizeof(f->page))
		fail("memfd offset moved %s", when);
	if (pread(f->memfd, page, sizeof(page), 0) != (ssize_t)sizeof(page) ||
	    memcmp(page, f->page, sizeof(page)))
		fail("memfd contents changed %s", when);
	pid = fork();
	if (pid == 0) {
		int fds[] = { f->pipe[0], f->pipe[1], f->memfd, f->null };

		for (int i = 0; i < 4; i++)
			if (fcntl(fds[i], F_GETFD) < 0)
				_exit(1);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st))
		fail("a forked child lost a descriptor %s", when);
	fcntl(f->pipe[0], F_SETFL, O_NONBLOCK);
	n = read(f->pipe[0], buf, sizeof(buf));
	if (n != (ssize_t)sizeof(msg) || memcmp(buf, msg, sizeof(msg)))
		fail("the pipe holds %zd bytes, not the message %s", n, when);
	close(f->pipe[0]);
	close(f->pipe[1]);
	close(f->memfd);
	close(f->null);
}

int
main(void)
{
	char *p = malloc(BLOCK);
	struct files f;

	if (!p)
		fail("malloc");
	setvbuf(stdout, NULL, _IONBF, 0);
	reclaim_work(p, "before closefrom");
	closefrom(3);
	open_files(&f);
	reclaim_work(p, "after closefrom");
	check_files(&f, "after closefrom");

	reclaim_work(p, "before close_range");
	if (close_range(3, ~0U, 0) != 0)
		fail("close_range: %s", strerror(errno));
	open_files(&f);
	reclaim_work(p, "after close_range");
	check_files(&f, "after close_range");
	free(p);
	printf("compat_closefrom: %lu pages reclaimed\n",
	       (unsigned long)reclaimed());
	return 0;
}
