/*
 * os_proc.c - signal masks, seccomp state, thread exit and glibc's own
 *             entry points for the zero-page engine and the shim.
 * Owns:  nothing global; callers keep descriptors and cached pointers.
 * Locks: none. Raw system calls only (errno survives).
 * Path:  zero entry points -> os_sig_block_all / os_sig_restore;
 *        helper pass -> os_seccomp_mode; unshare -> os_thread_is_gone
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "os/os.h"
#include "os/os_proc.h"

/* The kernel's sigset_t is 64 bits on every Linux architecture we build
 * for; glibc's is 1024 bits, of which rt_sigprocmask reads the first. */
#define KERNEL_SIGSET_BYTES	8

void
os_sig_block_all(uint64_t *old)
{
	uint64_t all = ~0ULL;

	*old = 0;
	if (os_syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, old,
		       KERNEL_SIGSET_BYTES, 0, 0) != 0)
		*old = ~0ULL;	/* nothing changed: restore nothing */
}

void
os_sig_restore(uint64_t old)
{
	if (old == ~0ULL)
		return;
	os_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL,
		   KERNEL_SIGSET_BYTES, 0, 0);
}

bool
os_thread_is_gone(int tid)
{
	/* Signal 0 checks only that the thread exists in our group. */
	return os_syscall(SYS_tgkill, os_getpid(), tid, 0, 0, 0, 0) == -ESRCH;
}

int
os_status_open(bool keep, int *fd)
{
	long r;

	if (!os_fd_can_keep())
		return EMFILE;
	r = os_syscall(SYS_openat, AT_FDCWD, "/proc/thread-self/status",
		       O_RDONLY | O_CLOEXEC, 0, 0, 0);
	if (r < 0)
		return (int)-r;
	return os_fd_opened(r, keep, fd);
}

static int
parse_seccomp(const char *buf)
{
	const char *s = strstr(buf, "\nSeccomp:");

	if (!s)
		return -ENOENT;
	s += 9;
	while (*s == ' ' || *s == '\t')
		s++;
	return *s >= '0' && *s <= '9' ? *s - '0' : -ENOENT;
}

int
os_seccomp_mode(int fd)
{
	char buf[2048];
	long n;

	do
		n = os_syscall(SYS_pread64, fd, buf, sizeof(buf) - 1, 0, 0, 0);
	while (n == -EINTR);
	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	return parse_seccomp(buf);
}

int
os_seccomp_mode_self(void)
{
	int fd = -1, mode;
	int err = os_status_open(/* keep */ false, &fd);

	if (err)
		return -err;
	mode = os_seccomp_mode(fd);
	os_close(fd);
	return mode;
}

void *
os_libc_fn(void **slot, const char *name)
{
	void *fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (!fn) {
		fn = os_libc_symbol(name);
		__atomic_store_n(slot, fn, __ATOMIC_RELEASE);
	}
	return fn;
}

size_t
os_thread_min_stack(void)
{
	static void *slot;
	size_t (*fn)(const pthread_attr_t *) =
		(size_t (*)(const pthread_attr_t *))os_libc_fn(
			&slot, "__pthread_get_minstack");
	pthread_attr_t attr;
	size_t n;

	if (!fn || pthread_attr_init(&attr) != 0)
		return 0;
	n = fn(&attr);
	pthread_attr_destroy(&attr);
	return n;
}

void
os_futex_wait_ns(uint32_t *word, uint32_t val, uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000ULL),
		.tv_nsec = (long)(ns % 1000000000ULL),
	};

	os_syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, &ts, 0, 0);
}
