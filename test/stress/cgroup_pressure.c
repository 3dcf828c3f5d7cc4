/*
 * cgroup_pressure.c - a program that comes close to its container's
 * memory limit while holding memory zpmalloc could give back.
 *
 * It zero-fills a 48 MiB block it keeps (pages that read zero again:
 * the zero-page engine can return them), frees a few blocks (pages the
 * zones could keep for reuse), then allocates and writes 1 MiB blocks
 * until its live data reaches LIMIT_MB * 3 / 4 besides the zeroed block.
 * Without a reaction to the limit that is more than the limit; with one,
 * the headroom falling below the low watermark makes zpmalloc give back
 * free pages and zero pages at once.
 *
 * Usage: cgroup_pressure LIMIT_MB. Prints the peak RSS (VmHWM) and what
 * it allocated; exits 0 when every allocation succeeded and was intact.
 */
#include "common.h"

static size_t
vm_hwm_kb(void)
{
	char buf[4096], *s;
	ssize_t n;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return 0;
	n = (ssize_t)fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	s = strstr(buf, "VmHWM:");
	return s ? strtoul(s + 6, NULL, 10) : 0;
}

int
main(int argc, char **argv)
{
	long limit_mb = argc > 1 ? strtol(argv[1], NULL, 10) : 128;
	size_t zeroed = (size_t)48 << 20, nr = (size_t)limit_mb * 3 / 4;
	unsigned char *z = malloc(zeroed), **blk = calloc(nr, sizeof(*blk));

	if (!z || !blk)
		fail("malloc failed");
	/* The barriers keep the compiler from seeing through malloc and
	 * dropping stores whose values it can predict. */
	memset(z, 0xab, zeroed);
	__asm__ volatile("" : : "r"(z) : "memory");
	memset(z, 0, zeroed);
	__asm__ volatile("" : : "r"(z) : "memory");
	for (int i = 0; i < 4; i++) {
		char *p = malloc((size_t)6 << 20);

		if (!p)
			fail("malloc failed");
		memset(p, 1, (size_t)6 << 20);
		__asm__ volatile("" : : "r"(p) : "memory");
		free(p);
	}
	for (size_t i = 0; i < nr; i++) {
		blk[i] = malloc((size_t)1 << 20);
		if (!blk[i])
			fail("malloc of block %zu failed", i);
		memset(blk[i], (int)(i & 0xff), (size_t)1 << 20);
		__asm__ volatile("" : : "r"(blk[i]) : "memory");
	}
	for (size_t i = 0; i < nr; i++)
		if (blk[i][12345] != (unsigned char)(i & 0xff))
			fail("block %zu changed", i);
	for (size_t i = 0; i < zeroed; i += 4096)
		if (z[i])
			fail("the zeroed block changed at %zu", i);
	printf("cgroup_pressure: %zu MiB written, 48 MiB zeroed, peak RSS "
	       "%zu KiB\n", nr, vm_hwm_kb());
	return 0;
}
