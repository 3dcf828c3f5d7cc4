/*
 * measure.c - runs one program and writes what wait4 says of it: exit
 * status, wall time, user and system CPU time, peak RSS, minor faults.
 * bench/run starts every workload through it.
 *
 * Why a helper: a child's ru_maxrss also counts the memory image it had
 * before exec. A child spawned by the Python runner starts as a copy of
 * (or shares) the runner's 20+ MiB, which buries the 1-2 MiB of a tiny
 * program. Forked from this small process, the image before exec holds
 * only a few anonymous pages, so ru_maxrss is the program's own peak.
 *
 * The peak is read exactly once more at the end: the kernel keeps the
 * counters behind ru_maxrss per CPU and folds them in lazily, so
 * ru_maxrss can miss the last pages (/bin/true: 88 KiB of 1128 under
 * glibc, 144 KiB of 1432 under zpmalloc). The helper traces the program
 * (exit events only: no system call is stopped) and reads its VmHWM in
 * /proc when its main thread stops on the way out, with every page still
 * mapped; the reported peak is the larger of the two.
 *
 * The program runs without address-space randomisation: where libraries
 * land decides how many of their pages fault-around maps, which moves
 * the RSS of a small program by up to 200 KiB from run to run. That one
 * fixed layout is not the same for every allocator (a preloaded library
 * moves the ones mapped after it), so BENCH_ASLR=1 keeps randomisation
 * on, for medians over many layouts instead.
 *
 * The allocator to test comes in BENCH_PRELOAD and becomes the child's
 * LD_PRELOAD only, so that it is not loaded into this helper, whose pages
 * the child would inherit.
 *
 * Usage: measure OUTFILE PROGRAM [ARGS...]
 * OUTFILE gets "key value" lines: status (wait status), wall_ns, utime_us,
 * stime_us, maxrss_kib (wait4's), exit_hwm_kib (VmHWM at the exit stop,
 * 0 if the main thread never stopped there), minflt. Exits 0 when the
 * program ran (whatever its status), 127 when it could not be started.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* environ without BENCH_PRELOAD and LD_PRELOAD, plus LD_PRELOAD=preload. */
static char **
child_env(const char *preload)
{
	size_t n = 0, k = 0;
	char **env, *entry;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "BENCH_PRELOAD=", 14) &&
		    strncmp(environ[i], "BENCH_ASLR=", 11) &&
		    strncmp(environ[i], "LD_PRELOAD=", 11))
			env[k++] = environ[i];
	if (preload && *preload) {
		if (asprintf(&entry, "LD_PRELOAD=%s", preload) < 0)
			return NULL;
		env[k++] = entry;
	}
	return env;
}

static long long
ns_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000000000LL +
	       (b->tv_nsec - a->tv_nsec);
}

static long long
tv_us(const struct timeval *tv)
{
	return tv->tv_sec * 1000000LL + tv->tv_usec;
}

/* VmHWM of pid in KiB, 0 if unreadable. */
static long
read_hwm_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmHWM:", 6))
			kib = atol(line + 6);
	fclose(f);
	return kib;
}

static void
run_child(char **argv, char **env, int aslr)
{
	if (!aslr)
		personality(personality(0xffffffff) | ADDR_NO_RANDOMIZE);
	ptrace(PTRACE_TRACEME, 0, NULL, NULL);	/* may fail: see main */
	raise(SIGSTOP);
	execvpe(argv[0], argv, env);
	fprintf(stderr, "measure: %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Resumes the traced child until it is gone; returns its wait status. */
static int
follow(pid_t pid, struct rusage *ru, long *exit_hwm)
{
	int status, sig;

	for (;;) {
		if (wait4(pid, &status, __WALL, ru) < 0) {
			if (errno == EINTR)
				continue;
			perror("measure: wait4");
			exit(127);
		}
		if (!WIFSTOPPED(status))
			return status;
		sig = WSTOPSIG(status);
		if (status >> 8 == (SIGTRAP | PTRACE_EVENT_EXIT << 8)) {
			*exit_hwm = read_hwm_kib(pid);
			sig = 0;
		} else if (status >> 8 == (SIGTRAP | PTRACE_EVENT_EXEC << 8)) {
			sig = 0;
		}
		ptrace(PTRACE_CONT, pid, NULL, (void *)(long)sig);
	}
}

int
main(int argc, char **argv)
{
	struct timespec t0, t1;
	long exit_hwm = 0;
	struct rusage ru;
	const char *aslr = getenv("BENCH_ASLR");
	char **env;
	FILE *out;
	int status;
	pid_t pid;

	if (argc < 3) {
		fprintf(stderr, "usage: measure OUTFILE PROGRAM [ARGS...]\n");
		return 2;
	}
	env = child_env(getenv("BENCH_PRELOAD"));
	out = fopen(argv[1], "w");
	if (!env || !out) {
		perror("measure");
		return 127;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid < 0) {
		perror("measure: fork");
		return 127;
	}
	if (pid == 0)
		run_child(argv + 2, env, aslr && !strcmp(aslr, "1"));
	/* The child's own SIGSTOP: set the options, then let it exec. Where
	 * tracing is not allowed, ru_maxrss alone gives the peak. */
	if (waitpid(pid, &status, WUNTRACED) != pid || !WIFSTOPPED(status)) {
		perror("measure: waitpid");
		return 127;
	}
	if (ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)(long)
		   (PTRACE_O_TRACEEXIT | PTRACE_O_TRACEEXEC |
		    PTRACE_O_EXITKILL)) == 0)
		ptrace(PTRACE_CONT, pid, NULL, NULL);
	else
		kill(pid, SIGCONT);
	status = follow(pid, &ru, &exit_hwm);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(out, "status %d\nwall_ns %lld\nutime_us %lld\nstime_us %lld\n"
		"maxrss_kib %ld\nexit_hwm_kib %ld\nminflt %ld\n", status,
		ns_between(&t0, &t1), tv_us(&ru.ru_utime),
		tv_us(&ru.ru_stime), ru.ru_maxrss, exit_hwm, ru.ru_minflt);
	return fclose(out) ? 127 : 0;
}
