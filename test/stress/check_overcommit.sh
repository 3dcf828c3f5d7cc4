#!/bin/sh
# check_overcommit.sh OOM LIB - the out-of-memory program under strict
# overcommit (vm.overcommit_memory=2), with glibc and with LIB preloaded.
#
# Manual, root only, and not part of any suite: it changes a system-wide
# setting. For the few seconds it runs, the commit limit sits 512 MiB above
# what the system has committed, and the program exhausts that headroom, so
# anything else that commits memory then fails too. Both settings are put back
# on exit. Example:
#   test/stress/check_overcommit.sh build/test/stress/oom build/src/libzpmalloc.so
set -u
prog=$1 lib=$2
sys=/proc/sys/vm
[ "$(id -u)" -eq 0 ] && [ -w $sys/overcommit_memory ] || {
	echo "check_overcommit: needs root and a writable $sys"; exit 77; }
mode=$(cat $sys/overcommit_memory) ratio=$(cat $sys/overcommit_ratio)
kbytes=$(cat $sys/overcommit_kbytes)
restore() {
	echo "$kbytes" >$sys/overcommit_kbytes
	[ "$kbytes" -eq 0 ] && echo "$ratio" >$sys/overcommit_ratio
	echo "$mode" >$sys/overcommit_memory
}
trap restore EXIT INT TERM
committed=$(awk '/^Committed_AS:/ { print $2 }' /proc/meminfo)
swap=$(awk '/^SwapTotal:/ { print $2 }' /proc/meminfo)
# CommitLimit = swap + overcommit_kbytes in this mode.
echo $((committed + 524288 - swap)) >$sys/overcommit_kbytes
echo 2 >$sys/overcommit_memory
grep -E '^(CommitLimit|Committed_AS):' /proc/meminfo
rc=0
echo "== glibc"
timeout 120 "$prog" || { echo "check_overcommit: glibc run failed"; rc=1; }
echo "== $lib"
LD_PRELOAD=$lib timeout 120 "$prog" ||
	{ echo "check_overcommit: zpmalloc run failed"; rc=1; }
exit $rc
