#!/bin/sh
# check_cgroup.sh PROG LIB - zpmalloc's watermarks come from the memory
# limit of the cgroup it runs in, and act: PROG (cgroup_pressure) runs in
# a new memory cgroup limited to LIMIT_MB (memory.high where cgroup v2
# has the memory controller, else cgroup v1's memory.limit_in_bytes),
# and must finish, with zpmalloc's statistics naming that cgroup and
# limit and counting at least one reaction to the low watermark. With
# full userfaultfd the zero-page engine must have given back most of the
# zeroed block, keeping the peak RSS under the limit. Needs root (makes a
# cgroup): skipped otherwise, or where no cgroup hierarchy is writable.
set -u
prog=$1
lib=$2
LIMIT_MB=${LIMIT_MB:-128}
limit=$((LIMIT_MB << 20))
[ "$(id -u)" = 0 ] || { echo "check_cgroup: needs root to make a cgroup: skipped"; exit 77; }

dir= kind=
v2=
for root in /sys/fs/cgroup /sys/fs/cgroup/unified; do
	if [ -f "$root/cgroup.controllers" ] &&
	   grep -qw memory "$root/cgroup.controllers"; then
		v2=$root
		break
	fi
done
if [ -n "$v2" ]; then
	echo +memory > "$v2/cgroup.subtree_control" 2>/dev/null
	dir=$v2/zptest.$$
	mkdir "$dir" 2>/dev/null && echo "$limit" > "$dir/memory.high" 2>/dev/null &&
		kind="cgroup v2 memory.high" || dir=
fi
if [ -z "$dir" ] && [ -d /sys/fs/cgroup/memory ]; then
	dir=/sys/fs/cgroup/memory/zptest.$$
	mkdir "$dir" 2>/dev/null && echo "$limit" > "$dir/memory.limit_in_bytes" 2>/dev/null &&
		kind="cgroup v1 memory.limit_in_bytes" || dir=
fi
if [ -z "$dir" ]; then
	echo "check_cgroup: no writable memory cgroup (v2 with the memory controller, or v1): skipped"
	exit 77
fi
trap 'rmdir "$dir" 2>/dev/null' EXIT
out=$(mktemp)
stats=$(mktemp)
echo "check_cgroup: $kind = $LIMIT_MB MiB in $dir"
# The background scanner is held off for the run: on a loaded machine it
# would give the zeroed block back before the program nears the limit,
# and the reaction to the watermark would never be put to the test.
sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$dir" \
	env LD_PRELOAD="$lib" ZPMALLOC_STATS=json ZPMALLOC_STATS_FILE="$stats" \
	ZPMALLOC_RECLAIM_INTERVAL_MS=600000 "$prog" "$LIMIT_MB" > "$out" 2>&1
rc=$?
cat "$out"
if [ $rc -ne 0 ]; then
	echo "check_cgroup: the program failed (status $rc) under the limit"
	exit 1
fi
python3 - "$stats" "$dir" "$limit" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
lim, zero = s["limit"], s["zero"]
print("limit:", json.dumps(lim))
print("zero: level %s reclaimed %d pages" % (zero["level"], zero["reclaimed_pages"]))
ok = True
if "cgroup " + sys.argv[2] not in lim["source"] or lim["limit_bytes"] != int(sys.argv[3]):
    print("check_cgroup: the statistics do not name the cgroup's limit"); ok = False
if lim["nr_low"] < 1:
    print("check_cgroup: no reaction to the low watermark"); ok = False
if zero["level"] == "uffd" and zero["reclaimed_pages"] < 6000:
    print("check_cgroup: the zero-filled block was not given back"); ok = False
sys.exit(0 if ok else 1)
PY
