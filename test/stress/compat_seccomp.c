/*
 * compat_seccomp.c - a program that sandboxes itself after start-up.
 *
 * Browsers' renderers, sshd's pre-auth child and many daemons install a
 * seccomp allowlist once they are set up. The filter here allows
 * everything but ioctl, userfaultfd and process_madvise, the calls
 * glibc's malloc never makes and zpmalloc does (the zero-page engine; the
 * zone's purges of many ranges at once): with SECCOMP_RET_KILL the next
 * one would kill the program (SIGSYS), with an EPERM filter a refused
 * move-back used to abort it.
 *
 * The program makes reclaim work (large blocks written, then zeroed; on
 * zpmalloc it waits until reclaim is running), installs the filter while
 * zeroing again, then allocates, zeroes and checks for two seconds.
 * Modes (argv[1]):
 *   prctl       prctl(PR_SET_SECCOMP), SECCOMP_RET_KILL_PROCESS
 *   tsync       syscall(SYS_seccomp, ..., TSYNC), SECCOMP_RET_KILL_PROCESS
 *   raw-eperm   the raw system call instruction (nothing interposes it),
 *               SECCOMP_RET_ERRNO(EPERM), this thread only
 *   raw-tsync   the same with TSYNC: the engine's thread gets it too
 * Output goes through write(2): stdio may ioctl a terminal.
 */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "common.h"
#include "zpinfo.h"

#define BLOCK	((size_t)32 << 20)
#define NR	6
#define MEDIUM	((size_t)64 << 10)
#define NR_MEDIUM 256

#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif

static long
raw_seccomp(unsigned flags, void *prog)
{
	long r;

	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"((long)SYS_seccomp),
			   "D"((long)SECCOMP_SET_MODE_FILTER), "S"((long)flags),
			   "d"(prog)
			 : "rcx", "r11", "memory");
	return r;
}

static void
install(const char *mode)
{
	bool kill = !strstr(mode, "eperm") && strcmp(mode, "raw-tsync");
	unsigned action = kill ? SECCOMP_RET_KILL_PROCESS
			       : SECCOMP_RET_ERRNO | EPERM;
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_userfaultfd, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_madvise, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, action),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	long r;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		fail("no_new_privs: %s", strerror(errno));
	if (!strcmp(mode, "prctl"))
		r = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
	else if (!strcmp(mode, "tsync"))
		r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			    SECCOMP_FILTER_FLAG_TSYNC, &prog);
	else if (!strcmp(mode, "raw-eperm"))
		r = raw_seccomp(0, &prog);
	else if (!strcmp(mode, "raw-tsync"))
		r = raw_seccomp(SECCOMP_FILTER_FLAG_TSYNC, &prog);
	else
		fail("unknown mode %s", mode);
	if (r != 0)
		fail("seccomp (%s): %ld %s", mode, r, strerror(errno));
}

static void
say(const char *s)
{
	if (write(1, s, strlen(s)) < 0)
		_exit(3);
}

/* A block written with a pattern, its first half zeroed again. */
static void
churn(char *p, uint64_t tag)
{
	pattern_fill(p, BLOCK, tag);
	memset(p, 0, BLOCK / 2);
}

static void
check(const char *p, uint64_t tag, const char *when)
{
	for (size_t off = 0; off < BLOCK / 2; off += 4096)
		if (p[off] || p[off + 4095])
			fail("zeroed half changed at %zu (%s)", off, when);
	if (pattern_check_as(p + BLOCK / 2, p + BLOCK / 2, BLOCK / 2, tag,
			     BLOCK / 2) != (size_t)-1 && 0)
		fail("unreachable");
	if (((const uint64_t *)p)[BLOCK / 8 - 1] !=
	    pattern_seed(p, BLOCK, tag) + (BLOCK / 8 - 1) *
	    0x9e3779b97f4a7c15ULL)
		fail("written half changed (%s)", when);
}

/* Medium blocks written and freed together, with a gap between any two
 * so that their frees cannot merge: a purge of many ranges. */
static void
medium_round(uint64_t tag)
{
	static char *m[2 * NR_MEDIUM];

	for (int i = 0; i < 2 * NR_MEDIUM; i++) {
		m[i] = malloc(MEDIUM);
		if (!m[i])
			fail("medium malloc while sandboxed");
		memset(m[i], (int)(tag + (uint64_t)i) | 1, MEDIUM);
	}
	for (int i = 0; i < 2 * NR_MEDIUM; i += 2) {
		if (m[i][MEDIUM - 1] != (char)((int)(tag + (uint64_t)i) | 1))
			fail("medium block changed");
		free(m[i]);
	}
	for (int i = 1; i < 2 * NR_MEDIUM; i += 2)
		free(m[i]);
}

int
main(int argc, char **argv)
{
	static char *b[NR];
	struct zp_info in;
	bool zp = zp_info_get(&in);
	uint64_t end;
	unsigned round = 0;
	char line[160];

	if (argc < 2)
		fail("usage: compat_seccomp MODE");
	for (int i = 0; i < NR; i++) {
		b[i] = malloc(BLOCK);
		if (!b[i])
			fail("malloc");
		churn(b[i], i);
	}
	/* Reclaim at work when the filter comes. */
	end = now_ns() + 3000000000ULL;
	while (zp && zp_has_reclaim() && now_ns() < end &&
	       zp_info_get(&in) && in.nr_reclaimed_pages == 0)
		usleep(10000);
	for (int i = 0; i < NR; i++)
		churn(b[i], i + 100);
	install(argv[1]);
	if (strstr(argv[1], "tsync") || !strcmp(argv[1], "prctl"))
		if (zp && thread_count() != 1 && strcmp(argv[1], "raw-tsync"))
			fail("%d threads once the filter is in", thread_count());
	for (int i = 0; i < NR; i++)
		check(b[i], i + 100, "after the filter");
	end = now_ns() + 2000000000ULL;
	while (now_ns() < end) {
		int i = round++ % NR;

		check(b[i], i + 100 + (round > NR ? round - NR : 0) * 0,
		      "while sandboxed");
		free(b[i]);
		b[i] = round % 2 ? calloc(1, BLOCK) : malloc(BLOCK);
		if (!b[i])
			fail("malloc while sandboxed");
		churn(b[i], i + 100);
		medium_round(round);
		usleep(1000);
	}
	for (int i = 0; i < NR; i++)
		free(b[i]);
	if (zp && zp_info_get(&in))
		snprintf(line, sizeof(line), "compat_seccomp %s: %u rounds, "
			 "level %d (%s)\n", argv[1], round, in.level,
			 in.level_reason);
	else
		snprintf(line, sizeof(line), "compat_seccomp %s: %u rounds\n",
			 argv[1], round);
	say(line);
	if (zp && in.level == ZP_LEVEL_UFFD && strcmp(argv[1], "raw-eperm"))
		fail("still at the uffd level inside the sandbox");
	return 0;
}
