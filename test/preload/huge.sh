#!/bin/sh
# huge.sh LIB: python3 replacing 16 MiB buffers that it fills gets huge
# pages for them after the first few (statistics: large nr_huge), with the
# same output as without; 64 MiB callocs it writes one page in 64 of never
# do, and its peak RSS grows by what it wrote. A heap of 80 MiB of small
# strings grows by steps faulted in on huge pages (zones nr_huge_steps),
# none with ZPMALLOC_HUGE_HEAP_MB=0. Skipped (77) without python3 or
# transparent huge pages; the large blocks' part also without PAGEMAP_SCAN
# (the kernel_zero_page probe).
set -u
lib=$1
name=huge
. "$(dirname "$0")/common.sh"
command -v python3 >/dev/null 2>&1 || exit 77
grep -q '\[never\]' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null &&
	exit 77
[ -r /sys/kernel/mm/transparent_hugepage/enabled ] || exit 77

# $1: program; prints its output; statistics in $tmp/stats.json.
# Under a limit of 1 GiB the watermarks follow python's own RSS, not the
# machine's or the container's: huge heap steps are due whatever else runs.
run() {
	LD_PRELOAD="$lib" ZPMALLOC_STATS=json ZPMALLOC_MEMORY_LIMIT=1g \
		ZPMALLOC_STATS_FILE="$tmp/stats.json" python3 -c "$1"
}
# $1: key of the "large" object, "kzp" for the zero-page probe, or
# "steps" for the zones' huge steps.
stat() {
	env -u LD_PRELOAD python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
k = sys.argv[2]
print(d["zero"]["kernel_zero_page"] if k == "kzp"
      else sum(z["nr_huge_steps"] for z in d["zones"]) if k == "steps"
      else d["large"][k])' "$tmp/stats.json" "$1"
}

# Strings of 600 to 1000 bytes are slab objects (pymalloc takes 512 and
# less): 100,000 of them grow the heap step after step.
strings='
import zlib
keep = [bytes([i % 251]) * (600 + i % 400) for i in range(100000)]
print(zlib.crc32(b"".join(keep[::97])), sum(map(len, keep)))'
want=$(env -u LD_PRELOAD python3 -c "$strings") || fail "python3 failed"
got=$(run "$strings") || fail "small strings: python3 failed under zpmalloc"
[ "$got" = "$want" ] || fail "small strings: output $got, want $want"
steps=$(stat steps)
[ "$steps" -ge 1 ] || fail "small strings: no step faulted in on a huge page"
got=$(ZPMALLOC_HUGE_HEAP_MB=0 run "$strings") ||
	fail "small strings, HUGE_HEAP_MB=0: python3 failed under zpmalloc"
[ "$got" = "$want" ] || fail "small strings, off: output $got, want $want"
[ "$(stat steps)" -eq 0 ] || fail "HUGE_HEAP_MB=0: $(stat steps) huge steps"

filled='
import zlib
crc = 0
for i in range(8):
    b = bytes([i + 1]) * (16 << 20)
    crc = zlib.crc32(b[::4096], crc)
print(crc)'
want=$(env -u LD_PRELOAD python3 -c "$filled") || fail "python3 failed"
got=$(run "$filled") || fail "filled buffers: python3 failed under zpmalloc"
[ "$got" = "$want" ] || fail "filled buffers: output $got, want $want"
[ "$(stat kzp)" = -1 ] && exit 77
huge=$(stat nr_huge)
[ "$huge" -ge 1 ] || fail "filled buffers: no block placed for huge pages"

# bytearray(n) clears what calloc gave it; ctypes reaches calloc itself.
sparse='
import ctypes, resource
libc = ctypes.CDLL(None)
libc.calloc.restype = ctypes.c_void_p
libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
n, step = 64 << 20, 64 << 12
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for i in range(6):
    p = libc.calloc(1, n)
    for at in range(0, n, step):
        ctypes.memset(p + at, i + 1, 1)
    got = sum(ctypes.string_at(p + at, 1)[0] for at in range(0, n, step))
    assert got == (i + 1) * (n // step), got
    libc.free(p)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)'
peak=$(run "$sparse") || fail "sparse buffers: python3 failed under zpmalloc"
huge=$(stat nr_huge)
[ "$huge" -eq 0 ] || fail "sparse buffers: $huge blocks placed for huge pages"
# A 64 MiB buffer is resident whole on huge pages; written one page in
# 64 it adds 1 MiB to the peak (measured from the loop's start, so that
# the same bound holds under valgrind).
[ "$peak" -lt 16384 ] || fail "sparse buffers: peak RSS grew by $peak KiB"
blocks=$(stat nr_alloc)

echo "huge pages ok ($blocks blocks, sparse peak +$peak KiB," \
	"$steps huge heap steps)"
exit 0
