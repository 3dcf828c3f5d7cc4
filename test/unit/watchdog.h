/*
 * watchdog.h - a time limit for a test that may hang, in place of
 * Criterion's .timeout.
 *
 * Criterion 2.4.1 (Debian 12's) deadlocks its runner when a .timeout
 * fires while other workers come and go (fixed upstream in 2.4.2): a test
 * file whose timeouts fire hangs 7 runs in 10 under --jobs 2, so one slow
 * test became a 300 s meson timeout with no word of which test or where.
 * The watchdog instead says where every thread of the test is (kernel
 * stack where readable, else wait channel and system call), then kills
 * the test, which Criterion reports as a crash of that test.
 */
#ifndef ZP_TEST_WATCHDOG_H
#define ZP_TEST_WATCHDOG_H

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Copies /proc/self/task/<tid>/<what> to stderr, each line indented. */
static inline void
watchdog_show(const char *tid, const char *what)
{
	char path[96], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%s/%s", tid, what);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		fprintf(stderr, "    %s: %s%s", what, line,
			strchr(line, '\n') ? "" : "\n");
	fclose(f);
}

/* Copies the lines of file that contain key to stderr, indented. */
static inline void
watchdog_show_matching(const char *file, const char *key)
{
	char line[512];
	FILE *f = fopen(file, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, key))
			fprintf(stderr, "    %s", line);
	fclose(f);
}

/* Mappings registered with a userfaultfd ("um": missing faults): a
 * thread waiting in handle_userfault waits on one of them. Returns how
 * many; prints each to out unless it is NULL. */
static inline unsigned
watchdog_registered(FILE *out)
{
	char line[512], head[512] = "";
	unsigned n = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, ' ') &&
		    strchr(line, '-') < strchr(line, ' ')) {
			snprintf(head, sizeof(head), "%s", line);
			continue;
		}
		if (strncmp(line, "VmFlags:", 8) || !strstr(line, " um"))
			continue;
		n++;
		if (out)
			fprintf(out, "    %s      %s", head, line);
	}
	fclose(f);
	return n;
}

/* What the test says it is doing, for the report (optional). */
static char watchdog_context[256];

static inline void
watchdog_dump(void)
{
	static const char *const what[] = { "comm", "wchan", "syscall",
					    "stack" };
	struct dirent *d;
	DIR *dir = opendir("/proc/self/task");

	if (!dir)
		return;
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		fprintf(stderr, "  thread %s\n", d->d_name);
		for (size_t i = 0; i < sizeof(what) / sizeof(what[0]); i++)
			watchdog_show(d->d_name, what[i]);
	}
	closedir(dir);
	/* To place the program counters "syscall" ends with. */
	fprintf(stderr, "  code mappings:\n");
	watchdog_show_matching("/proc/self/maps", " r-xp ");
}

static inline void *
watchdog_main(void *arg)
{
	unsigned seconds = (unsigned)(uintptr_t)arg;
	struct timespec ts = { .tv_sec = seconds };

	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) != 0)
		;
	fprintf(stderr, "watchdog: test still running after %u s (%s); its "
		"threads:\n", seconds, watchdog_context);
	watchdog_dump();
	fprintf(stderr, "  registered with a userfaultfd:\n");
	(void)watchdog_registered(stderr);
	/* Once more a moment later: who moved on, who is stuck. */
	sleep(1);
	fprintf(stderr, "watchdog: one second later:\n");
	watchdog_dump();
	fflush(stderr);
	/* Not abort(): a test that expects SIGABRT would pass. */
	raise(SIGKILL);
	return NULL;
}

/* Arm once, at the start of the test (or of its suite's .init). */
static inline void
watchdog_arm(unsigned seconds)
{
	pthread_t t;
	pthread_attr_t a;

	sigset_t all, old;
	int err;

	/* Signals meant for the test's own threads never land here. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&t, &a, watchdog_main,
			     (void *)(uintptr_t)seconds);
	pthread_attr_destroy(&a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		abort();
}

#endif /* ZP_TEST_WATCHDOG_H */
