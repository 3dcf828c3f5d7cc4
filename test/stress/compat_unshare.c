/*
 * compat_unshare.c - a single-threaded program stays single-threaded.
 *
 * unshare(CLONE_NEWUSER) and setns into a mount namespace refuse a
 * process that has a second thread (EINVAL). Under glibc a program that
 * allocated a few large blocks is still single-threaded; a preloaded
 * allocator that keeps background threads breaks its sandbox set-up
 * (browsers, container runtimes, unshare(1)). Yet zpmalloc's reclaim must
 * stay on for such programs: a zero-filled 1 GiB of live buffers still
 * drops to under a tenth of its RSS within seconds while the program
 * idles.
 *
 * Steps (as root): large blocks live and written (the engine has work),
 * then setns into our own mount namespace, unshare(CLONE_NEWUSER) and
 * the same through syscall() (each new namespace maps us to root in it,
 * so the next may nest); then 1 GiB zero-filled and idle (RSS must fall,
 * under zpmalloc with live reclaim) and another unshare; then everything
 * freed, after which the process must be back to one thread within a few
 * seconds. Exits 77 where the kernel refuses user namespaces to glibc
 * too.
 */
#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>

#include "common.h"
#include "zpinfo.h"

#define BIG	((size_t)256 << 20)
#define NR_BIG	4

static void
wait_for(bool (*cond)(void), double seconds)
{
	uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);

	while (!cond() && now_ns() < end)
		usleep(20 * 1000);
}

static size_t rss_goal;

static bool
rss_dropped(void)
{
	return rss_bytes() < rss_goal;
}

static bool
single_threaded(void)
{
	return thread_count() == 1;
}

static void
write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		fail("write %s: %s", path, strerror(errno));
	close(fd);
}

/* A user namespace of our own, in which we are root again: so that the
 * next unshare(CLONE_NEWUSER) is allowed (the caller's ids must be
 * mapped). */
static int
new_userns(bool raw)
{
	char map[64];
	uid_t uid = geteuid();
	gid_t gid = getegid();

	if ((raw ? syscall(SYS_unshare, CLONE_NEWUSER)
		 : unshare(CLONE_NEWUSER)) != 0)
		return -1;
	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)uid);
	write_file("/proc/self/uid_map", map);
	write_file("/proc/self/setgroups", "deny");
	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)gid);
	write_file("/proc/self/gid_map", map);
	return 0;
}

static void
namespaces(const char *when)
{
	int fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		fail("open /proc/self/ns/mnt: %s", strerror(errno));
	if (setns(fd, CLONE_NEWNS) != 0)
		fail("setns(mnt) %s: %s (threads: %d)", when, strerror(errno),
		     thread_count());
	close(fd);
	if (new_userns(false) != 0) {
		if (errno == EPERM || errno == ENOSPC)
			exit(77);	/* no user namespaces here at all */
		fail("unshare(CLONE_NEWUSER) %s: %s (threads: %d)", when,
		     strerror(errno), thread_count());
	}
	if (new_userns(true) != 0)
		fail("syscall(SYS_unshare) %s: %s (threads: %d)", when,
		     strerror(errno), thread_count());
}

int
main(void)
{
	static char *big[NR_BIG];
	char *live = malloc(16 << 20);
	size_t filled;

	if (!live)
		fail("malloc");
	memset(live, 1, 16 << 20);
	/* Mount namespaces only as root; the user namespace steps after
	 * (they take the capabilities away). */
	if (geteuid() != 0)
		return 77;
	namespaces("with a live 16 MiB block");

	for (int i = 0; i < NR_BIG; i++) {
		big[i] = malloc(BIG);
		if (!big[i])
			fail("malloc(%zu)", BIG);
		memset(big[i], 1, BIG);
		memset(big[i], 0, BIG);
	}
	filled = rss_bytes();
	rss_goal = filled / 10;
	wait_for(rss_dropped, 8);
	printf("compat_unshare: RSS %zu MiB filled, %zu MiB after idling, "
	       "%d threads\n", filled >> 20, rss_bytes() >> 20,
	       thread_count());
	if (zp_has_reclaim() && !rss_dropped())
		fail("zero-filled buffers kept their RSS: %zu of %zu MiB",
		     rss_bytes() >> 20, filled >> 20);
	if (new_userns(true) != 0)
		fail("syscall(SYS_unshare) with live buffers: %s (threads: "
		     "%d)", strerror(errno), thread_count());
	for (int i = 0; i < NR_BIG; i++)
		free(big[i]);
	free(live);
	wait_for(single_threaded, 10);
	if (!single_threaded())
		fail("%d threads after everything was freed", thread_count());
	return 0;
}
