# common.sh - sourced by preload checks after setting name: a scratch
# directory $tmp, removed at exit, and fail MESSAGE (to stderr, exit 1).
tmp=$(mktemp -d "${TMPDIR:-/tmp}/zp-$name.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
fail() {
	echo "$*" >&2
	exit 1
}
