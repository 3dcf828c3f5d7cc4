/*
 * compat_bigtls.c - a program with 256 KiB of static TLS.
 *
 * glibc carves a thread's static TLS from its stack, so a helper thread
 * created with a small fixed stack fails to start in such a program.
 * zpmalloc's reclaim must still work, and nothing may appear on the
 * program's stderr. Under zpmalloc with live reclaim, a zeroed block must
 * be reclaimed within a few seconds; stderr is captured and must stay
 * empty.
 */
#include <fcntl.h>

#include "common.h"
#include "zpinfo.h"

#define BLOCK	((size_t)64 << 20)

static __thread char big_tls[256 << 10];

int
main(void)
{
	int err_pipe[2], saved = dup(2);
	char *p, buf[512];
	struct zp_info in;
	uint64_t end;
	ssize_t n;

	memset(big_tls, 1, sizeof(big_tls));
	if (saved < 0 || pipe(err_pipe) != 0 || dup2(err_pipe[1], 2) < 0)
		return 2;
	p = malloc(BLOCK);
	if (!p)
		fail("malloc");
	memset(p, 1, BLOCK);
	memset(p, 0, BLOCK);
	end = now_ns() + 6000000000ULL;
	while (zp_has_reclaim() && now_ns() < end && zp_info_get(&in) &&
	       in.nr_reclaimed_pages < BLOCK / 4096 / 2)
		usleep(20000);
	free(p);
	dup2(saved, 2);
	fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
	n = read(err_pipe[0], buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = 0;
		fail("stray stderr output: %s", buf);
	}
	if (zp_has_reclaim() && zp_info_get(&in) &&
	    in.nr_reclaimed_pages < BLOCK / 4096 / 2)
		fail("no reclaim with big static TLS (%lu pages)",
		     (unsigned long)in.nr_reclaimed_pages);
	printf("compat_bigtls: ok (%d byte TLS)\n", (int)sizeof(big_tls));
	return 0;
}
