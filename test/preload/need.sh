# need.sh - sourced by workloads: skip (exit 77) unless every program named
# is on PATH.
need() {
	for prog in "$@"; do
		if ! command -v "$prog" >/dev/null 2>&1; then
			echo "skip: $prog not installed" >&2
			exit 77
		fi
	done
}
