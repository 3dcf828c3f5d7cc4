#!/bin/sh
# check_oom.sh OOM LIB - run the out-of-memory program with LIB preloaded
# under address-space limits (prlimit --as), small and roomy: every NULL
# must carry ENOMEM and allocation must work again after frees.
# Negative control: LIB=libbadmalloc.so BADMALLOC=errno REQUIRE_ZP=0 fails.
set -u
prog=$1 lib=$2
dir=$(dirname "$0")
"$dir/preload.sh" "$lib" /bin/true >/dev/null || exit $?
for mb in 192 1024; do
	echo "== prlimit --as=${mb}MiB"
	prlimit --as=$((mb << 20)) env LD_PRELOAD="$lib" timeout 120 "$prog"
	rc=$?
	if [ $rc -ne 0 ]; then
		echo "check_oom: failed under --as=${mb}MiB (exit $rc)"
		exit 1
	fi
done
