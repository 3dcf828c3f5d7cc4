#!/bin/sh
# preload.sh LIB PROG [ARGS...] - run PROG with LIB preloaded.
# Exits 77 (meson: skipped) when LIB is not an active zpmalloc, i.e. the
# shim has not landed in this build, unless REQUIRE_ZP=0 (the negative
# controls preload libbadmalloc.so, which is not zpmalloc).
lib=$1
shift
if [ "${REQUIRE_ZP:-1}" != 0 ]; then
	if ! LD_PRELOAD=$lib ZPMALLOC_VERBOSE=1 /bin/true 2>&1 |
	     grep -q '^zpmalloc: active'; then
		echo "preload.sh: $lib is not an active zpmalloc: skipped"
		exit 77
	fi
	# Active is not enough: programs' malloc@GLIBC_2.2.5 references must
	# bind to the library, or every test here silently tests glibc.
	if ! LD_PRELOAD=$lib LD_DEBUG=bindings /bin/true 2>&1 |
	     grep -q "to $lib \[0\]: normal symbol \`malloc'"; then
		echo "preload.sh: libc's malloc references do not bind to $lib"
		echo "(symbol versions of the exports?): not interposed"
		exit 1
	fi
fi
LD_PRELOAD=$lib exec "$@"
