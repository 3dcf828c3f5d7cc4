#!/bin/sh
# check_badinput.sh BADINPUT LIB - run the bad-input program under glibc
# and with LIB preloaded; every line (result and errno) must be the same.
# Negative control: LIB=libbadmalloc.so BADMALLOC=errno REQUIRE_ZP=0 must
# fail.
set -u
prog=$1 lib=$2
dir=$(dirname "$0")
"$dir/preload.sh" "$lib" /bin/true >/dev/null || exit $?
want=$(env -u LD_PRELOAD -u BADMALLOC "$prog") || {
	echo "check_badinput: glibc run failed"; exit 1; }
got=$(LD_PRELOAD=$lib "$prog")
rc=$?
if [ $rc -ne 0 ]; then
	echo "check_badinput: preloaded run exited $rc"
	exit 1
fi
if [ "$want" != "$got" ]; then
	echo "check_badinput: differences (- glibc, + $lib):"
	printf '%s\n' "$want" >"${TMPDIR:-/tmp}/badinput.$$.want"
	printf '%s\n' "$got" >"${TMPDIR:-/tmp}/badinput.$$.got"
	diff -u "${TMPDIR:-/tmp}/badinput.$$.want" \
		"${TMPDIR:-/tmp}/badinput.$$.got" | tail -n +3
	rm -f "${TMPDIR:-/tmp}/badinput.$$.want" \
		"${TMPDIR:-/tmp}/badinput.$$.got"
	exit 1
fi
echo "check_badinput: $(printf '%s\n' "$got" | wc -l) cases identical"
