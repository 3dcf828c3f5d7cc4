#!/bin/sh
# stats.sh LIB: ZPMALLOC_STATS=1 writes every table at exit to
# ZPMALLOC_STATS_FILE (%p is the pid), ZPMALLOC_STATS=json one JSON object;
# without the option nothing is written.
set -u
lib=$1
name=stats
. "$(dirname "$0")/common.sh"

LD_PRELOAD="$lib" ZPMALLOC_STATS=1 ZPMALLOC_STATS_FILE="$tmp/text.%p" \
	sh -c 'x=$(seq 1 2000 | sort -rn | head -1); test "$x" = 2000' ||
	fail "workload failed"
set -- "$tmp"/text.*
[ -f "$1" ] || fail "no statistics file"
for section in options buddyinfo zoneinfo slabinfo 'heap of light classes' \
	'large blocks' 'zero-page engine'; do
	grep -q -- "--- $section ---" "$1" || fail "no $section in $1"
done
case $1 in
"$tmp/text.$$" | "$tmp/text.%p") fail "pid not substituted: $1" ;;
esac

LD_PRELOAD="$lib" ZPMALLOC_STATS=json ZPMALLOC_STATS_FILE="$tmp/stats.json" \
	seq 1 1000 >/dev/null || fail "json workload failed"
[ -s "$tmp/stats.json" ] || fail "no JSON statistics"
if command -v python3 >/dev/null 2>&1; then
	env -u LD_PRELOAD python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("version", "zones", "slabs", "heap", "large", "zero", "usage"):
    assert k in d, k
# The first thread begins every class in the heap.
assert d["heap"]["nr_alloc"] > 0, d["heap"]
assert d["zero"]["kernel_zero_page"] in (-1, 0, 1), d["zero"]
' "$tmp/stats.json" || fail "invalid JSON: $(head -c 300 "$tmp/stats.json")"
fi

LD_PRELOAD="$lib" ZPMALLOC_STATS_FILE="$tmp/off.%p" seq 1 1000 >/dev/null
set -- "$tmp"/off.*
[ -f "$1" ] && fail "statistics written without ZPMALLOC_STATS"
echo "statistics ok"
exit 0
