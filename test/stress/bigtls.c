/*
 * bigtls.c - a library needing 64 KiB of initial-exec TLS: dlopen of it
 * must fail for lack of static TLS, the negative control of compat_dlopen.
 */
__thread char bigtls_block[64 << 10]
	__attribute__((tls_model("initial-exec")));

char *bigtls_touch(void);

char *
bigtls_touch(void)
{
	return bigtls_block;
}
