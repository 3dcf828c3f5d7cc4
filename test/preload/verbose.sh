#!/bin/sh
# verbose.sh LIB: ZPMALLOC_VERBOSE=1 makes a preloaded program print the
# "zpmalloc: active" line once per process (proof the preload took effect),
# and nothing is printed without the preload or without the option.
set -u
lib=$1
out=$(LD_PRELOAD="$lib" ZPMALLOC_VERBOSE=1 sh -c 'exit 0' 2>&1) || exit 1
case $out in
"zpmalloc: active (version "*) ;;
*) echo "no active line: '$out'" >&2; exit 1 ;;
esac
if [ "$(printf '%s\n' "$out" | grep -c '^zpmalloc: active')" -ne 1 ]; then
	echo "expected one active line, got: $out" >&2
	exit 1
fi
out=$(LD_PRELOAD="$lib" sh -c 'exit 0' 2>&1) || exit 1
if [ -n "$out" ]; then
	echo "output without ZPMALLOC_VERBOSE: '$out'" >&2
	exit 1
fi
out=$(ZPMALLOC_VERBOSE=1 sh -c 'exit 0' 2>&1) || exit 1
if [ -n "$out" ]; then
	echo "output without the preload: '$out'" >&2
	exit 1
fi
echo "$out"
exit 0
