#!/usr/bin/env bash
# newuser.sh - plays a new user of the README (issues 11 item 16 and 12).
#
# A new user clones into a directory only they can enter (mode 0700, like
# /root and every home Debian's adduser makes) and runs the README's two
# commands, in either order. This script does exactly that, twice, each
# time on a clean clone of the committed HEAD in a fresh 0700 directory:
#   A. the test command, then the main job;
#   B. the main job, then the test command.
# The commands are read from README.md (the sh block after "Run the main
# job" and after "Run every test"), so the README and this script cannot
# drift apart. After each main job it checks that the table has a zpmalloc
# row whose runs all succeeded and that the library was the clone's own
# build/; then that `tools/zpmalloc run` and `tools/zpmalloc stats` work
# from the clone with no options.
#
# Runs the whole test matrix twice (about 15 minutes on an idle two-core
# machine). .ci/run runs it after installing the dependencies.
# Usage: test/newuser.sh [--keep]   (--keep: leave the clones behind)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
keep=${1:-}

fail() {
	echo "newuser: FAIL: $*" >&2
	exit 1
}

# The one-line sh block that follows the first line matching $1.
readme_command() {
	local cmd
	cmd=$(awk -v marker="$1" '
		index($0, marker) { found = 1; next }
		found && /^```sh$/ { inside = 1; next }
		inside && /^```$/ { exit }
		inside { print }' README.md)
	[ -n "$cmd" ] && [ "$(printf '%s\n' "$cmd" | wc -l)" -eq 1 ] ||
		fail "README.md: no one-line sh block after '$1'"
	printf '%s\n' "$cmd"
}

MAIN_CMD=$(readme_command "**Run the main job**")
TEST_CMD=$(readme_command "**Run every test**")
HEAD=$(git rev-parse HEAD)
echo "newuser: commit $HEAD"
[ -z "$(git status --porcelain --untracked-files=no)" ] ||
	echo "newuser: note: uncommitted changes here are not tested"
echo "newuser: main job:     $MAIN_CMD"
echo "newuser: test command: $TEST_CMD"

# A clean clone of HEAD in a new private directory; prints its path.
fresh_clone() {
	local dir
	dir=$(mktemp -d)
	chmod 700 "$dir"
	git clone -q --no-checkout "$ROOT" "$dir/zpmalloc"
	git -C "$dir/zpmalloc" fetch -q "$ROOT" HEAD
	git -C "$dir/zpmalloc" checkout -q --detach FETCH_HEAD
	[ "$(stat -c %a "$dir")" = 700 ] || fail "$dir is not private"
	printf '%s\n' "$dir/zpmalloc"
}

run_test_command() {
	local clone=$1
	echo "=== newuser: README test command in $clone"
	(cd "$clone" && bash -c "$TEST_CMD") ||
		fail "the README's test command failed in $clone"
}

# The main job; then its table, and the run and stats commands.
run_main_job() {
	local clone=$1 log lib alloc row runs out
	log=$(dirname "$clone")/main-job.log
	echo "=== newuser: README main job in $clone"
	(cd "$clone" && bash -c "$MAIN_CMD") 2>&1 | tee "$log" ||
		fail "the README's main job failed in $clone (log: $log)"
	lib=$(realpath -m "$clone/build/src/libzpmalloc.so")
	grep -qF "  zpmalloc: $lib (build/ next to the source tree" "$log" ||
		fail "the main job did not use the clone's build/ ($lib)"
	# Every allocator's runs all succeeded: a plain count in the runs
	# column (failures show as ok/total).
	for alloc in glibc jemalloc zpmalloc; do
		row=$(grep -E "^$alloc +" "$log" | tail -n 1) ||
			fail "the main job's table has no $alloc row"
		runs=$(awk '{ print $2 }' <<<"$row")
		[[ $runs =~ ^[1-9][0-9]*$ ]] ||
			fail "$alloc runs in the main job: '$runs' ($row)"
	done
	grep -q '^outputs: identical across allocators' "$log" ||
		fail "the allocators' outputs differ in the main job"
	echo "newuser: main job ok: $row"

	out=$(cd "$clone" && ZPMALLOC_VERBOSE=1 tools/zpmalloc run -- \
		sh -c 'echo "$LD_PRELOAD"' 2>&1) ||
		fail "tools/zpmalloc run failed: $out"
	grep -qxF "$lib" <<<"$out" && grep -q '^zpmalloc: active' <<<"$out" ||
		fail "tools/zpmalloc run did not preload $lib: $out"
	out=$(cd "$clone" && tools/zpmalloc stats -- python3 -c 'print(1)' \
		2>&1) || fail "tools/zpmalloc stats failed: $out"
	grep -q '^==> zpmalloc statistics: pid' <<<"$out" ||
		fail "tools/zpmalloc stats printed no statistics: $out"
	echo "newuser: run and stats ok"
}

finish() {
	local clone=$1
	if [ "$keep" = --keep ]; then
		echo "newuser: kept $clone"
	else
		rm -rf "$(dirname "$clone")"
	fi
}

echo "=== newuser: A. test command, then main job"
clone=$(fresh_clone)
run_test_command "$clone"
run_main_job "$clone"
finish "$clone"

echo "=== newuser: B. main job, then test command"
clone=$(fresh_clone)
run_main_job "$clone"
run_test_command "$clone"
finish "$clone"

echo "newuser: both orders passed"
