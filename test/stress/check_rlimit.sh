#!/bin/sh
# check_rlimit.sh PROG LIB - a program that lowers RLIMIT_AS after
# start-up (compat_rlimit) can still create a thread and allocate, and
# gets as many 1 MiB blocks under LIB as under glibc, less what LIB's own
# fixed address space takes: one zone step (2 MiB) that a small program's
# first objects use a little of. LIB empty: glibc alone (the program is
# sound).
set -u
prog=$1
lib=${2:-}
g=$("$prog") || { echo "check_rlimit: glibc run failed: $g"; exit 1; }
g=${g#blocks }
echo "glibc: $g blocks"
[ -n "$lib" ] || exit 0
z=$(LD_PRELOAD=$lib RLIMIT_EXPECT_REUSE=1 "$prog") || { echo "check_rlimit: run under $lib failed: $z"; exit 1; }
z=${z#blocks }
echo "zpmalloc: $z blocks"
if [ "$z" -lt $((g - 2)) ]; then
	echo "check_rlimit: $z blocks under $lib, glibc reached $g"
	exit 1
fi
