#!/bin/sh
# run_fuzz.sh FUZZER CORPUS [SECONDS] - run a libFuzzer target briefly.
# The committed seed corpus is copied (libFuzzer writes new inputs into its
# first corpus directory) and the run is bounded by FUZZ_SECONDS (default
# 20). A crash, a shadow-model violation or a leak fails the test; the
# reproducer is written under $ARTIFACTS (crash-*). FUZZ_PRELOAD is
# preloaded into the fuzzer alone (the negative controls' libbadmalloc.so).
set -u
fuzzer=$1 corpus=$2
secs=${FUZZ_SECONDS:-${3:-20}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$corpus"/* "$work/"
# The outer timeout catches a hang the fuzzer's own -timeout cannot
# (a deadlock outside the input loop). libFuzzer's default error exit code
# is 77, which Meson reads as "skipped": make every finding exit 1.
timeout $((secs + 60)) \
	env ${FUZZ_PRELOAD:+LD_PRELOAD="$FUZZ_PRELOAD"} \
	"$fuzzer" "$work" -max_total_time="$secs" -timeout=20 \
	-error_exitcode=1 -timeout_exitcode=1 -rss_limit_mb=3072 \
	-print_final_stats=1 -artifact_prefix="${ARTIFACTS:-$work/}"
