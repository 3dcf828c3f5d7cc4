#!/bin/sh
# cxx_noruntime.sh LIB PROG: how zpmalloc's operator new fails without
# libstdc++ (see cxx_noruntime.c). Without any C++ runtime a throwing new
# cannot throw: it must abort with one "zpmalloc: operator new(): ..." line,
# as an uncaught std::bad_alloc would end the program; nothrow new returns
# NULL. With libc++abi loaded, its operators take over the failure. The
# llvm cases skip (exit 77) when libc++abi.so.1 is not installed.
set -u
lib=$1
prog=$2
fail=0
skip=0

run() {
	out=$(LD_PRELOAD=$lib "$prog" "$1" 2>"$tmp")
	rc=$?
	err=$(cat "$tmp")
}
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT INT TERM

run nothrow
if [ $rc -ne 0 ] || [ "$out" != "nothrow new: NULL" ]; then
	echo "FAIL nothrow: exit $rc, stdout '$out', stderr '$err'"
	fail=1
fi
run throw
lines=$(printf '%s\n' "$err" | grep -c .)
case $err in
"zpmalloc: operator new(): cannot allocate "*" bytes, and no C++ runtime"*)
	if [ $rc -ne 134 ] || [ "$lines" -ne 1 ]; then
		echo "FAIL throw: exit $rc (not 134) or $lines stderr lines"
		fail=1
	fi ;;
*)
	echo "FAIL throw: exit $rc, stderr '$err'"
	fail=1 ;;
esac
run llvm
if [ $rc -eq 77 ]; then
	skip=1
elif [ $rc -ne 0 ] || [ "$out" != "nothrow new: NULL" ]; then
	echo "FAIL llvm: exit $rc, stdout '$out', stderr '$err'"
	fail=1
fi
run llvm-throw
if [ $rc -eq 77 ]; then
	skip=1
elif [ $rc -ne 134 ] || ! printf '%s\n' "$err" | grep -q 'std::bad_alloc'; then
	echo "FAIL llvm-throw: exit $rc, stderr '$err'"
	fail=1
fi
[ $fail -ne 0 ] && exit 1
if [ $skip -ne 0 ]; then
	echo "libc++abi.so.1 not installed: llvm cases skipped"
	exit 77
fi
echo "ok: no runtime aborts or returns NULL; libc++abi takes the failure"
exit 0
