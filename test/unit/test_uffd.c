/*
 * test_uffd.c - the capability ladder and the fault handler: the level
 * matches what this process may really do, nothing is opened when forced
 * off, an unprivileged process falls back to the kernel zero page and
 * still works, faults (by threads and by the kernel) on pages under
 * reclaim are resolved without losing data, and neither fork nor exit
 * is troubled by the engine's threads.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <stddef.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "os/os.h"
#include "zero/zero.h"
#include "zero/zero_int.h"
#include "zpmalloc.h"

#include "watchdog.h"

#define PAGE	4096UL
#define MIB	(1UL << 20)

static void
boot(int mode, bool reclaim, uint64_t interval_ns)
{
	struct zero_config c;

	zero_config_default(&c);
	c.uffd_mode = mode;
	c.reclaim = reclaim;
	c.reclaim_interval_ns = interval_ns;
	zero_boot(&c);
}

static void
need_uffd(void)
{
	struct zp_zero_info in;

	if (zero_level() == ZP_ZERO_LEVEL_UFFD)
		return;
	zero_info(&in);
	cr_skip_test("level %d: %s", in.level, in.level_reason);
}

/* Open userfaultfds of this process, from /proc/self/fd; -1 when that
 * cannot be read. No cr_assert here: fork children call it, and a child's
 * message (even a passing one under --full-stats) confuses the runner. */
static int
count_uffds(void)
{
	char path[300], target[64];
	struct dirent *d;
	DIR *dir = opendir("/proc/self/fd");
	int n = 0;
	ssize_t len;

	if (!dir)
		return -1;
	while ((d = readdir(dir)) != NULL) {
		snprintf(path, sizeof(path), "/proc/self/fd/%s", d->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (strstr(target, "userfaultfd"))
			n++;
	}
	closedir(dir);
	return n;
}

/* The oracle: can this process get a full uffd with MOVE by itself? */
static bool
independent_probe(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = 1ULL << 16 };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	bool ok;

	if (fd < 0) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev < 0)
			return false;
		fd = ioctl(dev, _IO(0xAA, 0), O_CLOEXEC);
		close(dev);
		if (fd < 0)
			return false;
	}
	ok = ioctl(fd, UFFDIO_API, &api) == 0 && (api.features & (1ULL << 16));
	close(fd);
	return ok;
}

Test(uffd, ladder_matches_what_the_process_may_do)
{
	struct zp_zero_info in;
	bool full = independent_probe();

	boot(ZERO_UFFD_AUTO, false, 0);
	zero_info(&in);
	cr_log_info("level %d: %s", in.level, in.level_reason);
	cr_expect_eq(in.level, full ? ZP_ZERO_LEVEL_UFFD : ZP_ZERO_LEVEL_KERNEL,
		     "%s", in.level_reason);
	cr_expect_eq(zero_level(), in.level, "probed once, stable");
}

Test(uffd, forced_off_opens_nothing)
{
	struct zp_zero_info in;
	char *p;

	boot(ZERO_UFFD_OFF, true, 1000);
	cr_assert_eq(zero_region_map(8 * MIB, (void **)&p), 0);
	memset(p, 0, 8 * MIB);
	cr_expect_eq(zero_reclaim_now(), 0);
	usleep(20000);
	zero_info(&in);
	cr_expect_eq(in.level, ZP_ZERO_LEVEL_OFF);
	cr_expect(strstr(in.level_reason, "forced off") != NULL);
	cr_expect_eq(in.nr_reclaimed_pages, 0);
	cr_expect_eq(count_uffds(), 0);
}

/* As an ordinary user (sysctl vm.unprivileged_userfaultfd=0 here) only a
 * user-mode-only uffd is on offer, which the engine must refuse: it would
 * make kernel accesses to program memory fail with EFAULT. */
Test(uffd, unprivileged_process_gets_kernel_level_and_works)
{
	struct zp_zero_info in;
	char sysctl[8] = "";
	char msg[] = "kernel write";
	int fds[2];
	char *p;

	if (geteuid() == 0 &&
	    (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)))
		cr_skip_test("cannot drop privileges");
	/* A credential change makes us undumpable, which locks us out of
	 * our own /proc/self/pagemap; a born-unprivileged process is not. */
	prctl(PR_SET_DUMPABLE, 1);
	os_read_file("/proc/sys/vm/unprivileged_userfaultfd", sysctl,
		     sizeof(sysctl));
	boot(ZERO_UFFD_AUTO, true, 1000 * 1000);
	zero_info(&in);
	cr_log_info("unprivileged: level %d: %s", in.level, in.level_reason);
	if (sysctl[0] == '0' && access("/dev/userfaultfd", R_OK | W_OK) != 0)
		cr_expect_eq(in.level, ZP_ZERO_LEVEL_KERNEL, "%s",
			     in.level_reason);
	cr_expect_eq(in.level == ZP_ZERO_LEVEL_UFFD, independent_probe());

	cr_assert_eq(zero_region_map(16 * MIB, (void **)&p), 0);
	memset(p, 0, 4 * MIB);	/* reclaim work, if there were a way */
	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(write(fds[1], msg, sizeof(msg)), (ssize_t)sizeof(msg));
	cr_assert_eq(read(fds[0], p + 9 * MIB, sizeof(msg)),
		     (ssize_t)sizeof(msg));
	cr_expect_str_eq(p + 9 * MIB, msg);
	cr_assert_eq(getrandom(p + 12 * MIB, PAGE, 0), (ssize_t)PAGE);
	if (in.level != ZP_ZERO_LEVEL_UFFD)
		cr_expect_eq(zero_reclaim_now(), 0);
}

/* --- the window, white-box --------------------------------------------- */

/* A thread that touches the window while the test thread (the reclaimer
 * here) holds it: it waits in the fault until settle or close wakes it;
 * nobody else serves the window. */
struct toucher {
	uint64_t *word;
	uint64_t value;
	char *kernel_dst;		/* read(2) into here instead */
	int fd;
	size_t len;
	ssize_t got;
	uint64_t seen;
	atomic_bool done;
	atomic_int tid;
};

static void *
toucher_main(void *arg)
{
	struct toucher *t = arg;

	atomic_store(&t->tid, (int)syscall(SYS_gettid));
	if (t->kernel_dst)
		t->got = read(t->fd, t->kernel_dst, t->len);
	else if (t->value)
		*t->word = t->value;	/* faults: the page is out */
	else
		t->seen = *t->word;	/* faults: never there */
	atomic_store(&t->done, true);
	return NULL;
}

static uint64_t
faults_handled(void)
{
	struct zp_zero_info in;

	zero_info(&in);
	return in.nr_faults_handled;
}

/* A fresh chunk, its first len bytes written and zero again, open as a
 * window (reclaim_lock held). */
static char *
fresh_window_of(size_t len)
{
	char *p;

	cr_assert_eq(zero_region_map_aligned(ZERO_CHUNK, ZERO_CHUNK,
					     (void **)&p), 0);
	memset(p, 1, len);
	memset(p, 0, len);
	reclaim_lock();
	cr_assert_eq(uffd_ensure(), 0);
	cr_assert_eq(uffd_window_open((uintptr_t)p, (uintptr_t)p +
				      ZERO_CHUNK), 0);
	return p;
}

/* The same, every page written. */
static char *
fresh_window(void)
{
	return fresh_window_of(ZERO_CHUNK);
}

/* Move pages [first, first + nr) of window p out, as the reclaimer does. */
static char *
take_out(char *p, size_t first, size_t nr)
{
	size_t moved;
	int err;

	moved = uffd_window_take((uintptr_t)p + first * PAGE, nr, &err);
	cr_assert_eq(moved, nr, "moved %zu (%d)", moved, err);
	return p;
}

/* The same, of a fresh chunk; returns the chunk. */
static char *
window_with_pages_out(size_t first, size_t nr)
{
	return take_out(fresh_window(), first, nr);
}

/* Let a started toucher reach its fault. */
static void
let_it_fault(void)
{
	usleep(50 * 1000);
}

/* Is thread tid asleep ('S' in its stat)? */
static bool
is_asleep(int tid)
{
	char path[64], buf[256], *s;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	s = strrchr(buf, ')');
	return s && s[1] == ' ' && s[2] == 'S';
}

/* Until the toucher sleeps in its fault (it does nothing else), 5 s at
 * most: a test that means the fault must not start before it. */
static void
wait_for_fault(struct toucher *t)
{
	for (int i = 0; i < 500; i++) {
		int tid = atomic_load(&t->tid);

		if (tid && is_asleep(tid))
			return;
		usleep(10 * 1000);
	}
	cr_assert_fail("the toucher never reached its fault");
}

Test(uffd, thread_write_during_window_survives)
{
	struct toucher t;
	pthread_t th;
	uint64_t f0;
	size_t got;
	char *p;

	boot(ZERO_UFFD_AUTO, false, 0);
	need_uffd();
	f0 = faults_handled();
	p = window_with_pages_out(10, 4);
	t = (struct toucher){ .word = (uint64_t *)(p + 11 * PAGE + 64),
			      .value = 0xfeedULL };
	cr_assert_eq(pthread_create(&th, NULL, toucher_main, &t), 0);
	let_it_fault();
	got = uffd_window_settle();	/* wakes it */
	cr_assert_eq(pthread_join(th, NULL), 0);
	uffd_window_close();
	reclaim_unlock();
	cr_expect_gt(faults_handled(), f0, "the fault was seen");
	cr_expect_eq(got, 4, "the page was zero in scratch: all four "
		     "reclaimed, and the write went to a fresh copy");
	cr_expect_eq(*t.word, 0xfeedULL);
	cr_expect_eq(zero_resident_bytes((uintptr_t)p + 10 * PAGE,
					 (uintptr_t)p + 14 * PAGE), PAGE);
}

Test(uffd, kernel_write_during_window_survives)
{
	char msg[] = "the kernel faults here and waits for settle";
	struct toucher t;
	pthread_t th;
	int fds[2];
	char *p;

	boot(ZERO_UFFD_AUTO, false, 0);
	need_uffd();
	p = window_with_pages_out(0, 8);
	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(write(fds[1], msg, sizeof(msg)), (ssize_t)sizeof(msg));
	t = (struct toucher){ .kernel_dst = p + 3 * PAGE + 5, .fd = fds[0],
			      .len = sizeof(msg) };
	/* That thread faults inside read(2), in the kernel. */
	cr_assert_eq(pthread_create(&th, NULL, toucher_main, &t), 0);
	let_it_fault();
	cr_expect_eq(uffd_window_settle(), 8);
	cr_assert_eq(pthread_join(th, NULL), 0);
	uffd_window_close();
	reclaim_unlock();
	cr_expect_eq(t.got, (ssize_t)sizeof(msg));
	cr_expect_str_eq(p + 3 * PAGE + 5, msg);
	cr_expect_eq(zero_resident_bytes((uintptr_t)p, (uintptr_t)p +
					 8 * PAGE), PAGE);
	close(fds[0]);
	close(fds[1]);
}

Test(uffd, fault_on_untouched_page_of_window_waits_for_close)
{
	struct toucher t;
	pthread_t th;
	char *p;

	boot(ZERO_UFFD_AUTO, false, 0);
	need_uffd();
	p = window_with_pages_out(0, 1);
	cr_assert_eq(madvise(p + 100 * PAGE, PAGE, MADV_DONTNEED), 0);
	t = (struct toucher){ .word = (uint64_t *)(p + 100 * PAGE + 8),
			      .seen = 1 };
	cr_assert_eq(pthread_create(&th, NULL, toucher_main, &t), 0);
	let_it_fault();
	cr_expect_eq(uffd_window_settle(), 1);
	uffd_window_close();		/* wakes it */
	cr_assert_eq(pthread_join(th, NULL), 0);
	reclaim_unlock();
	cr_expect_eq(t.seen, 0);
}

/* --- faults racing the close of a window ------------------------------- */

#define NR_RACERS	3
#define RACE_NS		(3ULL * 1000 * 1000 * 1000)

struct racer {
	char *chunk;
	unsigned id;
	atomic_ulong touches;
	atomic_bool stop;
};

/* Reads its page of the chunk and drops it, round and round: it faults
 * all the time, inside windows and out, and in the instants a window
 * closes. */
static void *
racer_main(void *arg)
{
	struct racer *r = arg;

	char *page = r->chunk + (r->id + 1) * 64 * PAGE;

	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		(void)*(volatile char *)page;
		atomic_fetch_add_explicit(&r->touches, 1,
					  memory_order_relaxed);
		madvise(page, PAGE, MADV_DONTNEED);
	}
	return NULL;
}

static void
wait_for_touch(struct racer *r, unsigned long since, unsigned long windows)
{
	uint64_t t0 = os_now_ns();

	while (atomic_load(&r->touches) == since) {
		if (os_now_ns() - t0 > 10ULL * 1000 * 1000 * 1000)
			cr_assert_fail("after %lu windows, racer %u has waited "
				       "10 s in a fault nobody watches",
				       windows, r->id);
		sched_yield();
	}
}

/*
 * A thread may fault in the instant a window closes: it sees the chunk
 * still registered, and queues after UNREGISTER has woken the waiters.
 * Every such fault must still come back.
 */
Test(uffd, faults_racing_the_close_of_a_window_all_return)
{
	struct racer r[NR_RACERS];
	pthread_t th[NR_RACERS];
	unsigned long windows = 0, seen[NR_RACERS];
	uint64_t t0;
	char *p;

	boot(ZERO_UFFD_AUTO, false, 0);
	need_uffd();
	watchdog_arm(120);
	cr_assert_eq(zero_region_map_aligned(ZERO_CHUNK, ZERO_CHUNK,
					     (void **)&p), 0);
	for (unsigned i = 0; i < NR_RACERS; i++) {
		r[i] = (struct racer){ .chunk = p, .id = i };
		cr_assert_eq(pthread_create(&th[i], NULL, racer_main, &r[i]),
			     0);
	}
	t0 = os_now_ns();
	while (os_now_ns() - t0 < RACE_NS) {
		reclaim_lock();
		cr_assert_eq(uffd_ensure(), 0);
		cr_assert_eq(uffd_window_open((uintptr_t)p, (uintptr_t)p +
					      ZERO_CHUNK), 0);
		uffd_window_close();
		reclaim_unlock();
		/* From here on, a racer that does not move stays put. */
		for (unsigned i = 0; i < NR_RACERS; i++)
			seen[i] = atomic_load(&r[i].touches);
		windows++;
		for (unsigned i = 0; i < NR_RACERS; i++)
			wait_for_touch(&r[i], seen[i], windows);
	}
	for (unsigned i = 0; i < NR_RACERS; i++) {
		atomic_store(&r[i].stop, true);
		pthread_join(th[i], NULL);
	}
	cr_log_info("%lu windows", windows);
	cr_expect_eq(zero_region_unmap(p, ZERO_CHUNK), 0);
}

/* Pages [4, 4 + nr) of a fresh chunk out, page 5 carrying a write the
 * zero check missed: the take counts all, settle reclaims every page but
 * page 5, which goes home with its write; adopted pages found unreported
 * on the way. */
static void
take_with_write_on_page_5(size_t nr, uint64_t adopted)
{
	size_t moved;
	char *p;
	int err;

	p = fresh_window();
	p[5 * PAGE + 8] = 42;
	moved = uffd_window_take((uintptr_t)p + 4 * PAGE, nr, &err);
	cr_expect_eq(moved, nr, "moved %zu (%d)", moved, err);
	cr_expect_eq(err, 0);
	cr_expect_eq(uffd_window_settle(), nr - 1);
	uffd_window_close();
	reclaim_unlock();
	cr_expect_eq(uffd_nr_adopted(), adopted);
	cr_expect_eq(p[5 * PAGE + 8], 42, "page 5 lost its write");
	cr_expect_eq(zero_region_unmap(p, ZERO_CHUNK), 0);
}

/* A page a move left in scratch without counting it still goes home at
 * settle, with the write it carries. */
Test(uffd, page_moved_without_report_goes_home)
{
	boot(ZERO_UFFD_AUTO, false, 0);
	need_uffd();
	zero_cfg.test_forget_moved = true;
	take_with_write_on_page_5(2, 1);
}

/* Linux 6.18 moves a batch after a transient EAGAIN without counting it
 * and then says EEXIST: the take counts what scratch holds. */
Test(uffd, move_that_says_eexist_counts_what_it_moved)
{
	boot(ZERO_UFFD_AUTO, false, 0);
	need_uffd();
	zero_cfg.test_move_says_eexist = true;
	take_with_write_on_page_5(3, 3);
}

/* The same after a counted prefix: the claim starts where the count
 * stopped. */
Test(uffd, move_that_counts_a_prefix_then_says_eexist_counts_the_rest)
{
	boot(ZERO_UFFD_AUTO, false, 0);
	need_uffd();
	zero_cfg.test_move_says_eexist = true;
	zero_cfg.test_move_reports = 1;
	take_with_write_on_page_5(4, 3);
}

/* A move that stopped short, then said EEXIST: the claim stops where
 * scratch lacks a page, and the take moves the rest. */
Test(uffd, move_that_stops_short_then_says_eexist_moves_the_rest)
{
	boot(ZERO_UFFD_AUTO, false, 0);
	need_uffd();
	zero_cfg.test_move_says_eexist = true;
	zero_cfg.test_move_pages = 2;
	take_with_write_on_page_5(5, 5);
}

/* The same bug on the way home: the move puts the page home, says EEXIST
 * and wakes nobody. The thread that faulted on the page returns before
 * the window closes, and the write the page carries is home. */
Test(uffd, move_home_that_says_eexist_wakes_the_fault)
{
	struct toucher t;
	uint64_t faults;
	pthread_t th;
	char *p;

	boot(ZERO_UFFD_AUTO, false, 0);
	need_uffd();
	p = fresh_window();
	p[11 * PAGE + 8] = 42;		/* a write the zero check missed */
	take_out(p, 10, 4);
	zero_cfg.test_move_says_eexist = true;	/* on the way home only */
	t = (struct toucher){ .word = (uint64_t *)(p + 11 * PAGE + 64) };
	faults = faults_handled();
	cr_assert_eq(pthread_create(&th, NULL, toucher_main, &t), 0);
	wait_for_fault(&t);
	cr_expect_eq(uffd_window_settle(), 3, "pages 10, 12 and 13");
	cr_assert_gt(faults_handled(), faults, "the touch never faulted");
	for (int i = 0; i < 200 && !atomic_load(&t.done); i++)
		usleep(10 * 1000);
	cr_expect(atomic_load(&t.done), "the fault slept on: nobody woke it");
	uffd_window_close();
	reclaim_unlock();
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_expect_eq(p[11 * PAGE + 8], 42, "page 11 lost its write");
	cr_expect_eq(zero_region_unmap(p, ZERO_CHUNK), 0);
}

/* ASan's shadow is a mapping of terabytes that mlockall would populate. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#ifndef UNDER_ASAN
static atomic_int mlockall_result;	/* 0 while mlockall runs */

static void *
mlockall_main(void *arg)
{
	(void)arg;
	atomic_store(&mlockall_result, mlockall(MCL_CURRENT) == 0 ? 1 : 2);
	return NULL;
}

/* In a thread of its own: if it never returns, the test still ends. */
static void
expect_mlockall_returns(void)
{
	pthread_t th;

	cr_assert_eq(pthread_create(&th, NULL, mlockall_main, NULL), 0);
	for (int i = 0; i < 300 && !atomic_load(&mlockall_result); i++)
		usleep(10 * 1000);
	cr_assert(atomic_load(&mlockall_result), "mlockall never returned");
	cr_assert_eq(pthread_join(th, NULL), 0);
	munlockall();
}
#else
static void
expect_mlockall_returns(void)
{
}
#endif

/* mlockall(MCL_CURRENT) populates every mapping of the process: after a
 * window has closed, no mapping of the engine may be registered with
 * nobody to serve its faults (scratch was, and mlockall slept for ever). */
Test(uffd, mlockall_after_a_window_returns)
{
	char *p;

	boot(ZERO_UFFD_AUTO, false, 0);
	need_uffd();
	p = window_with_pages_out(0, 4);
	cr_expect_eq(uffd_window_settle(), 4);
	uffd_window_close();
	reclaim_unlock();
	cr_expect_eq(watchdog_registered(stderr), 0,
		     "still registered after the window closed");
	expect_mlockall_returns();
	cr_expect_eq(zero_region_unmap(p, ZERO_CHUNK), 0);
}

#ifndef UNDER_ASAN
/* A take of 4 pages of a fresh window (8 pages written, the rest never
 * touched) that scratch refuses: err, and no page counted out. */
static void
expect_take_refused(int want)
{
	char *p = fresh_window_of(8 * PAGE);
	int err;

	cr_expect_eq(uffd_window_take((uintptr_t)p, 4, &err), 0);
	cr_expect_eq(err, want, "err %d", err);
	cr_expect_eq(uffd_nr_adopted(), 0, "pages scratch held were adopted");
	cr_expect_eq(uffd_window_settle(), 0);
	uffd_window_close();
	reclaim_unlock();
	cr_expect_eq(zero_region_unmap(p, ZERO_CHUNK), 0);
}

/* Four pages of a fresh window out and back as zero pages. */
static void
expect_reclaim_works(void)
{
	char *p = window_with_pages_out(0, 4);

	cr_expect_eq(uffd_window_settle(), 4);
	uffd_window_close();
	reclaim_unlock();
	cr_expect_eq(zero_region_unmap(p, ZERO_CHUNK), 0);
}

/* A program's mlockall(MCL_CURRENT) fills scratch between windows, and
 * locks it: no page it holds may count as moved out (home still has its
 * page), and the settle after empties scratch for the windows after it,
 * unlocked, as MADV_DONTNEED refuses locked pages. */
Test(uffd, scratch_filled_by_mlockall_counts_nothing)
{
	boot(ZERO_UFFD_AUTO, false, 0);
	need_uffd();
	expect_reclaim_works();
	/* Filled, then unlocked: the move says EEXIST. */
	cr_assert_eq(mlockall(MCL_CURRENT), 0);
	munlockall();
	expect_take_refused(EEXIST);
	expect_reclaim_works();
	/* Filled and locked: the kernel refuses a move between a locked
	 * area and one that is not. */
	cr_assert_eq(mlockall(MCL_CURRENT), 0);
	expect_take_refused(EINVAL);
	expect_reclaim_works();
	munlockall();
}
#endif

/*
 * A program maps a file into a chunk under reclaim behind the engine's
 * back: UNREGISTER then refuses the whole range (EINVAL), and the rest of
 * the chunk would stay registered with nobody to serve its faults. The
 * engine lets go of its descriptor instead, and opens a new one.
 */
Test(uffd, refused_unregister_leaves_no_chunk_registered)
{
	struct toucher t;
	struct timespec deadline;
	pthread_t th;
	char *p;
	int fd;

	boot(ZERO_UFFD_AUTO, false, 0);
	need_uffd();
	p = window_with_pages_out(0, 4);
	cr_assert_eq(uffd_window_settle(), 4);
	fd = open("/proc/self/exe", O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_neq(syscall(SYS_mmap, p + 200 * PAGE, PAGE, PROT_READ,
			      MAP_PRIVATE | MAP_FIXED, fd, 0), (long)MAP_FAILED);
	close(fd);
	uffd_window_close();
	reclaim_unlock();
	cr_expect_eq(watchdog_registered(NULL), 0, "a registration outlived its "
		     "window");
	t = (struct toucher){ .word = (uint64_t *)(p + 300 * PAGE), .seen = 1 };
	cr_assert_eq(madvise(p + 300 * PAGE, PAGE, MADV_DONTNEED), 0);
	cr_assert_eq(pthread_create(&th, NULL, toucher_main, &t), 0);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	cr_assert_eq(pthread_timedjoin_np(th, NULL, &deadline), 0,
		     "a touch of the chunk waited 10 s on nobody");
	cr_expect_eq(t.seen, 0);
	reclaim_lock();
	cr_expect_eq(uffd_ensure(), 0, "a new descriptor for the next chunk");
	reclaim_unlock();
	cr_expect_eq(zero_level(), ZP_ZERO_LEVEL_UFFD);
}

static void *
mlock_main(void *arg)
{
	/* Populating faults on the pages that are out: waits for settle. */
	return (void *)(intptr_t)syscall(SYS_mlock, arg, 4 * PAGE);
}

/* A write that slipped in before its page was moved out must go home even
 * when the program changed the range's protection or mlock state behind
 * the engine's back meanwhile (the move home then fails with EINVAL). */
Test(uffd, page_out_survives_protection_and_mlock_changes)
{
	pthread_t th;
	char *p;

	boot(ZERO_UFFD_AUTO, false, 0);
	need_uffd();
	for (int lock = 0; lock < 2; lock++) {
		p = fresh_window();
		p[2 * PAGE + 100] = 42;
		take_out(p, 0, 4);
		if (lock) {
			cr_assert_eq(pthread_create(&th, NULL, mlock_main, p),
				     0);
			let_it_fault();
		} else {
			cr_assert_eq(syscall(SYS_mprotect, p, 4 * PAGE,
					     PROT_READ | PROT_WRITE |
					     PROT_EXEC), 0);
		}
		cr_expect_eq(uffd_window_settle(), 3);
		uffd_window_close();
		reclaim_unlock();
		if (lock)
			cr_assert_eq(pthread_join(th, NULL), 0);
		cr_assert_eq(p[2 * PAGE + 100], 42, "the page was lost (%s)",
			     lock ? "mlock" : "mprotect");
		cr_expect_eq(p[PAGE], 0);
		cr_expect_gt(uffd_nr_copied(), (uint64_t)lock);
	}
}

/* ioctl refused with EPERM for the calling thread from now on, as a
 * sandbox installed behind the engine's back does it. */
static bool
refuse_ioctl(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { ZP_ARRAY_SIZE(f), f };

	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
	       syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0;
}

/* The child of sandboxed_window_settles: 0 when all went well. */
static int
sandboxed_window(void)
{
	struct toucher t;
	pthread_t th;
	char *p;

	zero_postfork_child();
	os_purge_ranges_boot();		/* purges in vectors, where they work */
	p = window_with_pages_out(0, 8);
	t = (struct toucher){ .word = (uint64_t *)(p + 3 * PAGE), .seen = 1 };
	if (pthread_create(&th, NULL, toucher_main, &t) != 0)
		return 1;
	let_it_fault();
	if (!refuse_ioctl())
		return 2;
	uffd_window_settle();	/* every ioctl refused from here on */
	uffd_window_close();	/* closing the uffd wakes the toucher */
	reclaim_unlock();
	if (pthread_join(th, NULL) != 0 || t.seen != 0)
		return 3;
	if (zero_level() != ZP_ZERO_LEVEL_KERNEL)
		return 4;
	/* A filter that refused one call may kill for another. */
	if (os_purge_ranges_batched())
		return 7;
	for (size_t off = 0; off < ZERO_CHUNK; off += PAGE)
		if (p[off])
			return 5;
	return zero_reclaim_now() == 0 ? 0 : 6;
}

/* A seccomp filter that refuses ioctl (EPERM) arrives while pages are
 * out: no abort, no lost data, a waiting thread is woken, the engine
 * drops to the kernel level, and the zone's purges to one madvise a
 * range. */
Test(uffd, sandboxed_window_settles)
{
	pid_t pid;
	int st;

	boot(ZERO_UFFD_AUTO, false, 0);
	need_uffd();
	pid = fork();
	if (pid == 0)
		_exit(sandboxed_window());
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %x",
		  st);
}

/* --- fork and exit ------------------------------------------------------ */

Test(uffd, fork_child_drops_inherited_uffd_and_recreates_it)
{
	size_t len = 8 * MIB;
	char *p;
	pid_t pid;
	int st;

	boot(ZERO_UFFD_AUTO, false, 0);
	need_uffd();
	cr_assert_eq(zero_region_map(len, (void **)&p), 0);
	memset(p, 1, len);
	memset(p, 0, len / 2);
	cr_assert_eq(zero_reclaim_now(), len / 2 / PAGE);
	cr_assert_eq(count_uffds(), 1);
	zero_prefork();
	pid = fork();
	if (pid == 0) {
		zero_postfork_child();
		if (count_uffds() != 0)
			_exit(1);
		for (size_t off = 0; off < len; off += PAGE)
			if (p[off] != (off < len / 2 ? 0 : 1))
				_exit(2);
		memset(p + len / 2, 0, len / 4);
		/* Its own uffd, acting on its own memory. */
		if (zero_reclaim_now() != len / 4 / PAGE || count_uffds() != 1)
			_exit(3);
		for (size_t off = 0; off < len; off += PAGE)
			if (p[off] != (off < len * 3 / 4 ? 0 : 1))
				_exit(4);
		_exit(0);
	}
	zero_postfork_parent();
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %x",
		  st);
	/* The child's reclaim did not touch the parent's pages. */
	for (size_t off = len / 2; off < len; off += PAGE)
		if (p[off] != 1)
			cr_assert_fail("byte at %zu", off);
}

static char *exit_region;

/* Runs during exit, with the engine's threads still alive and possibly a
 * chunk of this very region under reclaim. */
static void
touch_at_exit(void)
{
	for (size_t off = 0; off < 16 * MIB; off += PAGE)
		exit_region[off] = 1;
}

Test(uffd, engine_threads_never_block_exit)
{
	pid_t pid;
	int st = 0;
	uint64_t t0;

	boot(ZERO_UFFD_AUTO, true, 0);
	need_uffd();
	pid = fork();
	if (pid == 0) {
		zero_postfork_child();
		if (zero_region_map(16 * MIB, (void **)&exit_region) != 0)
			_exit(1);
		memset(exit_region, 0, 16 * MIB);
		zero_reclaim_now();	/* handler thread running now */
		memset(exit_region, 0, 16 * MIB);
		usleep(20000);		/* the scanner is at it again */
		/* The exit path with handlers but without the test runner's
		 * own atexit hooks, which must not run in this child. */
		at_quick_exit(touch_at_exit);
		quick_exit(0);
	}
	t0 = os_now_ns();
	while (waitpid(pid, &st, WNOHANG) == 0 &&
	       os_now_ns() - t0 < 5ULL * 1000 * 1000 * 1000)
		usleep(1000);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %x", st);
	cr_expect_lt(os_now_ns() - t0, 2ULL * 1000 * 1000 * 1000);
}
