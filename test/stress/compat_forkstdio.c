/*
 * compat_forkstdio.c - fork in a threaded program that uses stdio.
 *
 * One thread forks in a loop (each child only _exits), one flushes every
 * stream (fflush(NULL), which holds stdio's list lock while it takes each
 * stream's lock), one reads 50,000-byte lines with getline, which reallocs
 * while it holds that stream's lock, and frees each line. glibc's fork
 * takes stdio's list lock before its malloc locks; an allocator whose fork
 * handlers take their locks first deadlocks the three threads: the forker
 * holds the allocator and waits for the list lock, the flusher holds the
 * list lock and waits for the stream, the reader holds the stream and
 * waits for the allocator.
 *
 * Passes when the run ends; a hang is caught by the watchdog below (and by
 * the test's timeout). Env: STRESS_SECONDS (default 3).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "common.h"

#define LINE_BYTES	50000
#define NR_LINES	8

static atomic_bool stop;
static atomic_ulong nr_forks, nr_lines, nr_flushes;
static FILE *in;

static void *
forker(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		if (pid < 0)
			fail("fork: %s", strerror(errno));
		if (waitpid(pid, NULL, 0) != pid)
			fail("waitpid: %s", strerror(errno));
		atomic_fetch_add(&nr_forks, 1);
	}
	return NULL;
}

static void *
flusher(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		fflush(NULL);
		atomic_fetch_add(&nr_flushes, 1);
	}
	return NULL;
}

static void *
reader(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		char *line = NULL;
		size_t cap = 0;
		ssize_t n = getline(&line, &cap, in);

		if (n < 0) {
			rewind(in);
		} else if (n != LINE_BYTES + 1 || line[LINE_BYTES / 2] != 'x') {
			fail("getline: %zd bytes, expected %d", n,
			     LINE_BYTES + 1);
		} else {
			atomic_fetch_add(&nr_lines, 1);
		}
		free(line);
	}
	return NULL;
}

static FILE *
make_input(void)
{
	FILE *f = tmpfile();
	char *line = malloc(LINE_BYTES + 1);

	if (!f || !line)
		fail("tmpfile: %s", strerror(errno));
	memset(line, 'x', LINE_BYTES);
	line[LINE_BYTES] = '\n';
	for (int i = 0; i < NR_LINES; i++)
		if (fwrite(line, 1, LINE_BYTES + 1, f) != LINE_BYTES + 1)
			fail("fwrite: %s", strerror(errno));
	free(line);
	rewind(f);
	return f;
}

int
main(void)
{
	double seconds = stress_seconds(3);
	struct timespec run = { (time_t)seconds,
				(long)((seconds - (time_t)seconds) * 1e9) };
	pthread_t t[3];
	void *(*fn[3])(void *) = { forker, flusher, reader };

	in = make_input();
	start_watchdog("compat_forkstdio", seconds + 20, NULL, 0);
	for (int i = 0; i < 3; i++)
		if (pthread_create(&t[i], NULL, fn[i], NULL))
			fail("pthread_create failed");
	nanosleep(&run, NULL);
	atomic_store(&stop, true);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	printf("compat_forkstdio: %lu forks, %lu flushes, %lu lines\n",
	       atomic_load(&nr_forks), atomic_load(&nr_flushes),
	       atomic_load(&nr_lines));
	if (!atomic_load(&nr_forks) || !atomic_load(&nr_lines))
		fail("no progress");
	return 0;
}
