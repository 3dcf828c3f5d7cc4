#!/usr/bin/env bash
# Builds zpmalloc and runs every test suite: the README's test command and
# what .ci/run executes. Exit status is non-zero on any failure.
#
# The matrix the zero-page engine needs:
#   1. everything as root, where full userfaultfd is available;
#   2. the allocator-level suites again with ZPMALLOC_UFFD=0 (forced off);
#   3. the same again as an ordinary user (created here), where only
#      user-mode-only userfaultfd is allowed, so the engine must fall back
#      to the plain kernel zero page.
# Then the unit and conformance suites of a build without statistics, and
# the sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build-test}
# Suites that run through the preloaded library and so honour ZPMALLOC_*.
LEVEL_SUITES=(--suite conformance --suite preload --suite levels)

if [ ! -f "$BUILD/build.ninja" ]; then
	# Debug assertions on, optimised, so the suites exercise zp_assert.
	meson setup "$BUILD" --buildtype=debugoptimized -Ddebug_asserts=true
fi
ninja -C "$BUILD"

echo "=== 1/5 all suites, root, userfaultfd available ==="
meson test -C "$BUILD" --no-rebuild --print-errorlogs --num-processes 2

echo "=== 2/5 userfaultfd forced off (ZPMALLOC_UFFD=0) ==="
ZPMALLOC_UFFD=0 meson test -C "$BUILD" --no-rebuild --print-errorlogs \
	--num-processes 2 --logbase uffd-off "${LEVEL_SUITES[@]}"

echo "=== 3/5 as an unprivileged user ==="
if [ "$(id -u)" -ne 0 ]; then
	echo "already unprivileged: run 1 covered it"
else
	user=zptest
	id "$user" >/dev/null 2>&1 || useradd --system --no-create-home "$user"
	# Criterion 2.4.1's runner binds /tmp/criterion_<pid>.sock, a fixed
	# path it cannot unlink when another user owns it: a root runner
	# killed earlier leaves its socket, and the user's runner that is
	# given the same pid fails ("Address already in use").
	for sock in /tmp/criterion_*.sock; do
		pid=${sock#/tmp/criterion_}
		pid=${pid%.sock}
		[ -e "$sock" ] && ! kill -0 "$pid" 2>/dev/null &&
			rm -f "$sock"
	done
	home=$(mktemp -d /tmp/zptest-home.XXXXXX)
	chown "$user" "$home"
	trap 'rm -rf "$home"' EXIT
	# From the user's home: meson returns to its starting directory.
	as_user() (cd "$home" &&
		runuser -u "$user" -- env HOME="$home" PATH="$PATH" "$@")
	# The user needs the tree and a build directory it can write. It
	# builds a copy in its own home, wherever the checkout sits (a 0700
	# home included) and without loosening anyone's permissions.
	copy=$home/src
	as_user mkdir "$copy"
	tar -C "$ROOT" --exclude='./build*' --exclude="./$BUILD" \
		--exclude=./.git -cf - . | as_user tar -C "$copy" -xf -
	ubuild=$copy/build-unprivileged
	as_user meson setup "$ubuild" "$copy" \
		--buildtype=debugoptimized -Ddebug_asserts=true >/dev/null
	as_user ninja -C "$ubuild" >/dev/null
	as_user meson test -C "$ubuild" --no-rebuild --print-errorlogs \
		--num-processes 2 --logbase unprivileged \
		"${LEVEL_SUITES[@]}" --suite unit
	rm -rf "$home"
fi

echo "=== 4/5 built without statistics (-Dstats=false) ==="
# A configuration the README offers: nothing may depend on the counters
# it drops (mallinfo2, slabinfo and the tests that read them).
nostats=$BUILD-nostats
if [ ! -f "$nostats/build.ninja" ]; then
	meson setup "$nostats" --buildtype=debugoptimized \
		-Ddebug_asserts=true -Dstats=false >/dev/null
fi
ninja -C "$nostats" >/dev/null
meson test -C "$nostats" --no-rebuild --print-errorlogs --num-processes 2 \
	--logbase nostats --suite unit --suite conformance

echo "=== 5/5 sanitizers and fuzzing ==="
bash test/sanitize.sh
