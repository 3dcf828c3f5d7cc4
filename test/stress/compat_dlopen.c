/*
 * compat_dlopen.c - dlopen many system libraries under the preload.
 *
 * A preloaded allocator that takes much initial-exec TLS eats the static
 * TLS surplus that dlopen'ed libraries with static TLS (libgomp, libresolv,
 * libm on some builds) need: their dlopen then fails with "cannot allocate
 * memory in static TLS block". Every library in the list that exists must
 * open; some are exercised through dlsym so their allocations run too; all
 * are closed and opened a second time. At least 10 must be present.
 * `compat_dlopen <lib>...` also opens the given paths: check with a library
 * that itself needs a large static TLS block (libbigtls.so) that the
 * failure is seen (the negative control).
 */
#include <dlfcn.h>

#include "common.h"

static const char *const libs[] = {
	"libm.so.6", "libresolv.so.2", "libgomp.so.1", "libstdc++.so.6",
	"libz.so.1", "libsqlite3.so.0", "libcrypt.so.1", "libssl.so.3",
	"libcrypto.so.3", "libexpat.so.1", "liblzma.so.5", "libbz2.so.1.0",
	"libzstd.so.1", "libpcre2-8.so.0", "libffi.so.8", "libgmp.so.10",
	"libuuid.so.1", "libcap.so.2", "libacl.so.1", "libattr.so.1",
	"libselinux.so.1", "libtinfo.so.6", "libreadline.so.8",
	"libxml2.so.2", "libcurl.so.4", "libgcrypt.so.20", "libblkid.so.1",
	"libmount.so.1", "libnss_dns.so.2", "libnss_files.so.2",
	"libpython3.11.so.1.0", "liburing.so.2", "libcriterion.so.3",
};

#define NLIBS (sizeof(libs) / sizeof(libs[0]))

static void *
sym(void *h, const char *name)
{
	void *f = h ? dlsym(h, name) : NULL;

	if (h && !f)
		fail("compat_dlopen: %s missing", name);
	return f;
}

static void
exercise(void **h)
{
	/* zlib: compress and restore 1 MiB. */
	int (*comp)(unsigned char *, unsigned long *, const unsigned char *,
		    unsigned long) = sym(h[4], "compress");
	int (*uncomp)(unsigned char *, unsigned long *, const unsigned char *,
		      unsigned long) = sym(h[4], "uncompress");
	/* sqlite: an in-memory table. */
	int (*sq_open)(const char *, void **) = sym(h[5], "sqlite3_open");
	int (*sq_exec)(void *, const char *, void *, void *, char **) =
		sym(h[5], "sqlite3_exec");
	int (*sq_close)(void *) = sym(h[5], "sqlite3_close");
	char *(*crypt_fn)(const char *, const char *) = sym(h[6], "crypt");

	if (comp) {
		unsigned long n = 1 << 20, cn = n + n / 100 + 1024, rn = n;
		unsigned char *src = malloc(n), *c = malloc(cn),
			      *r = malloc(n);

		for (unsigned long i = 0; i < n; i++)
			src[i] = (unsigned char)(i * 7 / 1000);
		if (comp(c, &cn, src, n) || uncomp(r, &rn, c, cn) ||
		    rn != n || memcmp(src, r, n))
			fail("compat_dlopen: zlib round trip failed");
		free(src);
		free(c);
		free(r);
	}
	if (sq_open) {
		void *db;
		char *err = NULL;

		if (sq_open(":memory:", &db) ||
		    sq_exec(db, "create table t(a, b); "
			    "with recursive c(x) as (select 1 union all "
			    "select x + 1 from c where x < 20000) "
			    "insert into t select x, hex(randomblob(x % 200)) "
			    "from c; create index i on t(b); "
			    "delete from t where a % 3 = 0; vacuum;",
			    NULL, NULL, &err))
			fail("compat_dlopen: sqlite: %s", err ? err : "?");
		sq_close(db);
	}
	if (crypt_fn && !crypt_fn("secret", "$6$saltsalt$"))
		fail("compat_dlopen: crypt failed");
}

static unsigned
open_all(void **h, int argc, char **argv)
{
	unsigned n = 0;

	for (size_t i = 0; i < NLIBS; i++) {
		h[i] = dlopen(libs[i], RTLD_NOW | RTLD_LOCAL);
		if (h[i]) {
			n++;
			continue;
		}
		/* Absent from this machine is fine; any other error is not. */
		const char *err = dlerror();

		if (!strstr(err, "No such file"))
			fail("compat_dlopen: dlopen(%s): %s", libs[i], err);
	}
	for (int i = 1; i < argc; i++)
		if (!dlopen(argv[i], RTLD_NOW | RTLD_LOCAL))
			fail("compat_dlopen: dlopen(%s): %s", argv[i],
			     dlerror());
	return n;
}

int
main(int argc, char **argv)
{
	void *h[NLIBS];
	unsigned n = 0;

	for (int round = 0; round < 2; round++) {
		n = open_all(h, argc, argv);
		exercise(h);
		for (size_t i = 0; i < NLIBS; i++)
			if (h[i])
				dlclose(h[i]);
	}
	printf("compat_dlopen: %u of %zu libraries opened twice\n", n, NLIBS);
	if (n < 10)
		fail("compat_dlopen: only %u libraries present", n);
	return 0;
}
