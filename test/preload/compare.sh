#!/bin/sh
# compare.sh LIB WORKLOAD [ARGS...]
# Runs the workload script twice, each in a fresh directory: once with
# glibc's malloc, once with LIB preloaded. Both runs must exit 0 and print
# the same standard output; the preloaded run must show that zpmalloc was
# active and must not have reported anything else. Exit 77 (skip) when the
# workload says a program it needs is missing.
set -u
lib=$1
work=$2
shift 2

if [ ! -r "$lib" ]; then
	echo "compare.sh: $lib not found" >&2
	exit 1
fi
# "Active" is not enough: the programs' malloc@GLIBC_2.2.5 references must
# bind to the library, or every comparison below is glibc against glibc.
if ! LD_PRELOAD=$lib LD_DEBUG=bindings /bin/true 2>&1 |
     grep -q "to $lib \[0\]: normal symbol \`malloc'"; then
	echo "compare.sh: malloc references do not bind to $lib" >&2
	exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/zp-preload.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir "$tmp/glibc" "$tmp/zpmalloc"

(
	unset LD_PRELOAD
	cd "$tmp/glibc" && HOME="$tmp/glibc" sh "$work" "$@"
) >"$tmp/glibc.out" 2>"$tmp/glibc.err"
rc_glibc=$?
if [ "$rc_glibc" -eq 77 ]; then
	cat "$tmp/glibc.err" >&2
	exit 77
fi

(
	cd "$tmp/zpmalloc" && HOME="$tmp/zpmalloc" LD_PRELOAD="$lib" \
		ZPMALLOC_VERBOSE=1 sh "$work" "$@"
) >"$tmp/zpmalloc.out" 2>"$tmp/zpmalloc.err"
rc_zp=$?

fail=0
if [ "$rc_glibc" -ne 0 ]; then
	echo "glibc run exited $rc_glibc" >&2
	fail=1
fi
if [ "$rc_zp" -ne 0 ]; then
	echo "zpmalloc run exited $rc_zp" >&2
	fail=1
fi
if ! cmp -s "$tmp/glibc.out" "$tmp/zpmalloc.out"; then
	echo "outputs differ (glibc vs zpmalloc):" >&2
	diff "$tmp/glibc.out" "$tmp/zpmalloc.out" | head -40 >&2
	fail=1
fi
if ! grep -q '^zpmalloc: active' "$tmp/zpmalloc.err"; then
	echo "zpmalloc was not active in the preloaded run" >&2
	fail=1
fi
if grep '^zpmalloc: ' "$tmp/zpmalloc.err" | grep -qv '^zpmalloc: active'; then
	echo "zpmalloc reported a problem:" >&2
	grep '^zpmalloc: ' "$tmp/zpmalloc.err" | grep -v '^zpmalloc: active' |
		head -20 >&2
	fail=1
fi
if [ "$fail" -ne 0 ]; then
	echo "--- glibc stderr ---" >&2
	head -20 "$tmp/glibc.err" >&2
	echo "--- zpmalloc stderr ---" >&2
	grep -v '^zpmalloc: active' "$tmp/zpmalloc.err" | head -20 >&2
	exit 1
fi
echo "identical output: $(wc -l <"$tmp/glibc.out") lines," \
	"$(wc -c <"$tmp/glibc.out") bytes"
exit 0
