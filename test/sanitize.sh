#!/usr/bin/env bash
# sanitize.sh - the sanitizer runs of issue 6, the last stage of
# test/run-all.sh (a few minutes on two cores, most of it valgrind).
#
#   1. AddressSanitizer + UndefinedBehaviorSanitizer: the core is built as
#      ordinary static libraries with -Db_sanitize=address,undefined in its
#      own build directory (build-sanitize), and the white-box suites run
#      there: every unit test and the fault-injection test of the stress
#      suite. ASan replaces the test programs' own malloc, which is fine:
#      the unit tests call the core directly (alloc_*, zone_*), so ASan and
#      UBSan check the allocator's code, stack and globals.
#   2. valgrind memcheck on the preloaded library. LD_PRELOAD of a malloc
#      replacement conflicts with memcheck's own malloc replacement: by
#      default memcheck also redirects the malloc of the preloaded library,
#      and zpmalloc never runs. --soname-synonyms=somalloc=NONE points the
#      replacement at the main executable instead (which defines no malloc),
#      so libzpmalloc.so runs for real under memcheck's instrumentation and
#      any invalid read or write in its code is reported. (Memcheck cannot
#      see the blocks zpmalloc hands out: their memory comes from mmap and
#      reads as defined, so this checks zpmalloc's code, not the program's
#      use of the heap.) What memcheck cannot know, the PAGEMAP_SCAN
#      ioctl's output, the OS layer clears before the call, so no
#      suppressions are needed. Two parts:
#        a. the stress/compatibility programs, short runs;
#        b. the preload suite (real programs): meson runs it with a PATH
#           whose python3, sqlite3, git, gcc, perl and sort are wrappers
#           that exec the real program under valgrind. Both the glibc and
#           the zpmalloc run go through valgrind; any memcheck error makes
#           the program exit 99 and the test fail.
#
# Usage: test/sanitize.sh [asan|valgrind|valgrind-preload|all] (default all)
# Env:   BUILD (build directory with libzpmalloc.so for the valgrind runs,
#        default build-test), SAN_BUILD (default build-sanitize).
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
BUILD=${BUILD:-build-test}
SAN_BUILD=${SAN_BUILD:-build-sanitize}
status=0

run_asan() {
	echo "=== ASan+UBSan: unit suites and fault injection ($SAN_BUILD)"
	if [ ! -d "$SAN_BUILD" ]; then
		meson setup "$SAN_BUILD" --buildtype=debug \
			-Ddebug_asserts=true \
			-Db_sanitize=address,undefined -Db_lundef=false \
			-Dbenches=false || return 1
	fi
	ninja -C "$SAN_BUILD" || return 1
	# halt_on_error: a UBSan report fails the test instead of scrolling by.
	# Leak checking is off: Criterion's runner and the tests' own glibc
	# allocations are not what is under test.
	export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
	meson test -C "$SAN_BUILD" --print-errorlogs --num-processes 2 \
		--suite unit || return 1
	meson test -C "$SAN_BUILD" --print-errorlogs fault-inject
}

# --fair-sched=yes: valgrind runs one thread at a time, and by default a
# thread that never makes a system call keeps the CPU for long slices while
# one that does (a lock wait, an madvise) queues behind it each time;
# compat_trim's trim took 10 minutes that way, and 5 s with fair turns.
VG=(valgrind -q --fair-sched=yes --error-exitcode=99
    --soname-synonyms=somalloc=NONE)
# No zero-page reclaim under valgrind: a program access to a page in the
# reclaim window is a userfaultfd MISSING fault that the handler thread
# resolves, but valgrind runs one thread at a time and a thread blocked in
# a page fault (not a system call) keeps the turn, so the handler never
# runs. A python3 of the preload suite hung that way (main thread in
# handle_userfault, the others waiting for their turn) until meson's
# timeout. The reclaimer registers memory with userfaultfd only for its
# window, so without it no fault ever goes to the handler.
VG_ENV=(ZPMALLOC_RECLAIM=0)

run_valgrind() {
	local lib="$PWD/$BUILD/src/libzpmalloc.so" dir="$BUILD/test/stress"
	local rc=0 p

	# Not compat_deepbind: memcheck replaces glibc's malloc too, so the
	# deep-bound library's blocks are memcheck's, not glibc chunks, and
	# zpmalloc rightly refuses to hand them to glibc's free.
	echo "=== valgrind memcheck: stress and compatibility programs"
	ninja -C "$BUILD" || return 1
	for p in "stress_threads" "stress_fork" "stress_signal" \
		 "compat_dlopen" "compat_trim"; do
		set -- $p
		echo "--- $1"
		if ! env "${VG_ENV[@]}" \
		     LD_PRELOAD=$lib STRESS_SECONDS=3 STRESS_THREADS=2 \
		     STRESS_MIN_FORKS=1 STRESS_MIN_STEPS=1 STRESS_MIN_SIGNALS=50 \
		     TRIM_CHECK_RSS=0 \
		     timeout 600 \
		     "${VG[@]}" "$dir/$1" "${@:2}" >/dev/null; then
			echo "FAIL $1 under valgrind"
			rc=1
		fi
	done
	return $rc
}

run_valgrind_preload() {
	local wrap prog real

	echo "=== valgrind memcheck: the preload suite"
	wrap=$(mktemp -d)
	trap 'rm -rf "$wrap"' RETURN
	for prog in python3 sqlite3 git gcc perl sort; do
		# The system binary, not a version-manager shim script.
		real=$(PATH=/usr/bin:/bin command -v "$prog") || continue
		# PYTHONMALLOC=malloc: pymalloc's arena test reads uninitialised
		# memory by design and would fail the glibc run.
		cat >"$wrap/$prog" <<-EOF
		#!/bin/sh
		PYTHONMALLOC=malloc ${VG_ENV[*]} exec ${VG[*]} "$real" "\$@"
		EOF
		chmod +x "$wrap/$prog"
	done
	PATH="$wrap:$PATH" meson test -C "$BUILD" --print-errorlogs \
		--num-processes 2 --timeout-multiplier 4 --suite preload
}

case $what in
asan) run_asan || status=1 ;;
valgrind) run_valgrind || status=1 ;;
valgrind-preload) run_valgrind_preload || status=1 ;;
all)
	run_asan || status=1
	run_valgrind || status=1
	run_valgrind_preload || status=1
	;;
*) echo "usage: $0 [asan|valgrind|valgrind-preload|all]" >&2; exit 2 ;;
esac
exit $status
