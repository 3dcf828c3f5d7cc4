#!/bin/bash
# check_misuse.sh MISUSE LIB - every heap-misuse case must die by SIGABRT
# with exactly one stderr line "zpmalloc: <call>(): ... 0x<address>"
# (<call> may hold a space and brackets: "operator delete[]").
# Negative control: LIB="" REQUIRE_ZP=0 (plain glibc, whose messages differ)
# must fail.
set -u
prog=$1 lib=$2
dir=$(dirname "$0")
"$dir/preload.sh" "$lib" /bin/true >/dev/null || exit $?
nfail=0
while read -r name call; do
	err=$(LD_PRELOAD=$lib timeout 20 "$prog" "$name" 2>&1 >/dev/null)
	rc=$?
	lines=$(printf '%s\n' "$err" | grep -c .)
	if [ $rc -ne 134 ]; then
		why="exit status $rc, not SIGABRT (134)"
	elif [ "$lines" -ne 1 ]; then
		why="$lines lines on stderr, not one"
	elif [[ $err != "zpmalloc: $call(): "* ]] ||
		! [[ $err =~ 0x[0-9a-f]+ ]]; then
		why="message does not match 'zpmalloc: $call(): ... 0x...'"
	else
		echo "ok   $name: $err"
		continue
	fi
	nfail=$((nfail + 1))
	echo "FAIL $name: $why"
	[ -n "$err" ] && printf '     stderr: %s\n' "$err" | head -5
done < <("$prog" --list)
echo "check_misuse: $nfail case(s) failed"
[ $nfail -eq 0 ]
