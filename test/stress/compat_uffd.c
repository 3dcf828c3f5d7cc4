/*
 * compat_uffd.c - a program with a userfaultfd of its own.
 *
 * QEMU's post-copy migration, CRIU's lazy pages and some garbage
 * collectors register memory they mapped with their own userfaultfd. A
 * range registered with one userfaultfd cannot be registered with another
 * (EBUSY): an allocator that registers the program's memory for its own
 * purposes (zpmalloc's reclaim windows) must never make the program's
 * registration fail.
 *
 * A 32 MiB anonymous mapping (large enough to be a zero-page region) is
 * written and zeroed chunk by chunk, so that the scanner (run every
 * millisecond by the test's ZPMALLOC_RECLAIM_INTERVAL_MS) opens windows
 * in it, while the program registers and unregisters each chunk right
 * after zeroing it with its own userfaultfd. Every registration must
 * succeed.
 * Exits 77 where the program may not have a userfaultfd.
 */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "common.h"

#define LEN	((size_t)32 << 20)
#define CHUNK	((size_t)2 << 20)

int
main(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	double seconds = stress_seconds(3);
	unsigned long nr = 0;
	uint64_t end;
	char *p;
	int fd;

	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return 77;
	if (ioctl(fd, UFFDIO_API, &api) != 0)
		fail("UFFDIO_API: %s", strerror(errno));
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	memset(p, 1, LEN);
	memset(p, 0, LEN);
	end = now_ns() + (uint64_t)(seconds * 1e9);
	while (now_ns() < end) {
		size_t c = (nr * 7) % (LEN / CHUNK);
		struct uffdio_register reg = {
			.range = { (uintptr_t)p + c * CHUNK, CHUNK },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};
		struct uffdio_range range = reg.range;
		char *q = p + c * CHUNK;

		/* Work for the scanner in the very chunk. */
		for (size_t off = 0; off < CHUNK; off += 4096 * 8)
			q[off] = 1;
		memset(q, 0, CHUNK);
		usleep((unsigned)(nr % 3) * 500);
		if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0)
			fail("registration %lu of our own memory failed: %s",
			     nr, strerror(errno));
		if (ioctl(fd, UFFDIO_UNREGISTER, &range) != 0)
			fail("UFFDIO_UNREGISTER: %s", strerror(errno));
		nr++;
	}
	for (size_t off = 0; off < LEN; off += 4096)
		if (p[off])
			fail("byte at %zu", off);
	printf("compat_uffd: %lu registrations\n", nr);
	return 0;
}
