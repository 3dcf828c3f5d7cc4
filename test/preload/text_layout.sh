#!/bin/sh
# text_layout.sh LIB LDSCRIPT [release]: the library's code that every process runs
# (src/hot_text.ld) lies in one 64 KiB window, where the kernel's
# fault-around maps it with one fault, apart from the rest of the text:
#   - the text segment starts on a 64 KiB boundary and asks ld.so for that
#     alignment (p_align), so the window is the same in memory;
#   - .text.zp_hot, which holds the listed functions, _fini and GCC's
#     frame_dummy and __do_global_dtors_aux (run at every load and exit)
#     and operator new and delete, ends inside that first window;
#   - .rodata lies in the first segment's 64 KiB window, beside the ELF
#     headers ld.so reads anyway, and not in a segment with the unwind
#     tables (src/rodata_first.ld);
#   - every function the script names is still a function of LIB (built by
#     GCC, as the list was), so a rename shows up here (rerun
#     bench/hot_text).
set -u
lib=$1
ld=$2
kind=${3:-release}
fail=0
win=65536

for t in readelf nm awk; do
	command -v $t >/dev/null || { echo "SKIP: no $t" >&2; exit 77; }
done

seg=$(readelf -lW "$lib" | awk '$1 == "LOAD" && $7 == "E" { print $3, $8; exit }
	$1 == "LOAD" && $8 == "E" { print $3, $9; exit }')
set -- $seg
[ $# -eq 2 ] || { echo "FAIL: no executable LOAD segment in $lib" >&2; exit 1; }
seg_start=$(($1))
seg_align=$(($2))
if [ $((seg_start % win)) -ne 0 ] || [ "$seg_align" -lt $win ]; then
	printf 'FAIL: text segment at 0x%x, p_align 0x%x (want 64 KiB)\n' \
		"$seg_start" "$seg_align" >&2
	fail=1
fi

# section NAME: its address and size, or nothing.
sections=$(readelf -SW "$lib" | sed 's/^ *\[ *[0-9]*\] *//')
section() {
	printf '%s\n' "$sections" | awk -v n="$1" '$1 == n { print "0x" $3, "0x" $5 }'
}

hot=$(section .text.zp_hot)
set -- $hot
[ $# -eq 2 ] || { echo "FAIL: no .text.zp_hot section in $lib" >&2; exit 1; }
hot_start=$(($1))
hot_end=$(($1 + $2))
if [ "$hot_start" -lt "$seg_start" ] ||
   [ "$hot_end" -gt $((seg_start + win)) ]; then
	printf 'FAIL: .text.zp_hot [0x%x, 0x%x) leaves the window at 0x%x\n' \
		"$hot_start" "$hot_end" "$seg_start" >&2
	fail=1
fi

# _fini and GCC's __do_global_dtors_aux run at every exit, frame_dummy at
# every load (outside, they cost every process a second 64 KiB of text:
# 3caef25 pushed them out); operator new and delete in every C++ program
# (bench/hot_text must read callgrind's names mangled, as nm gives them).
syms=$(nm "$lib")
for sym in _fini __do_global_dtors_aux frame_dummy _Znwm _ZdlPv; do
	at=$(printf '%s\n' "$syms" | awk -v s=$sym '$3 == s { print "0x" $1 }')
	if [ -z "$at" ] || [ $((at)) -lt "$hot_start" ] ||
	   [ $((at)) -ge "$hot_end" ]; then
		echo "FAIL: $sym ($at) is not in .text.zp_hot" >&2
		fail=1
	fi
done

first=$(readelf -lW "$lib" | awk '$1 == "LOAD" { print $3, $6; exit }')
ro=$(section .rodata)
eh=$(section .eh_frame)
eh=${eh%% *}
set -- $first $ro
if [ $# -ne 4 ] || [ $(($1)) -ne 0 ] || [ $(($3 + $4)) -gt $(($2)) ] ||
   [ $(($3 + $4)) -gt $win ]; then
	echo "FAIL: .rodata ($ro) is not in the first segment's window ($first)" >&2
	fail=1
elif [ -n "$eh" ] && [ $((eh)) -lt $(($2)) ]; then
	echo "FAIL: .eh_frame ($eh) shares the first segment with .rodata" >&2
	fail=1
fi

# The list names what GCC emits (its clones, what it leaves out of line);
# another compiler inlines differently, and only the layout is checked.
if readelf -p .comment "$lib" 2>/dev/null | grep -qi clang; then
	[ $fail -eq 0 ] && echo "layout ok; function names not checked (not built by GCC)"
	exit $fail
fi

# Functions of LIB, with GCC's clone suffixes taken off.
funcs=$(printf '%s\n' "$syms" | awk '$2 ~ /^[tT]$/ { print $3 }' |
	sed -E 's/\.(part|isra|constprop|cold)(\.[0-9]+)?$//; s/\.(part|isra|constprop)(\.[0-9]+)?$//' |
	sort -u)
names=$(sed -n 's/^[[:space:]]*\*(\.text\.\([A-Za-z0-9_]*\) .*/\1/p' "$ld")
n=0
for f in $names; do
	n=$((n + 1))
	if ! printf '%s\n' "$funcs" | grep -qx "$f"; then
		echo "FAIL: $ld names $f, which $lib does not have" >&2
		fail=1
	fi
done
if [ $n -lt 50 ]; then
	echo "FAIL: $ld lists only $n functions" >&2
	fail=1
fi

# What it is for: a program that allocates (python3 starting, the first
# of the programs bench/hot_text traces) has no more of the library's
# text resident than the window. A function it runs that the list lacks
# (a new one called at boot) maps a second window: 64 KiB more in every
# process. Only for the release build the list was made from.
if [ "$kind" = release ] && command -v python3 >/dev/null 2>&1; then
	text=$(LD_PRELOAD="$lib" python3 -c '
import sys
rss, name, total = 0, sys.argv[1], 0
for line in open("/proc/self/smaps"):
    f = line.split()
    if "-" in f[0] and len(f) >= 5 and ":" not in f[0]:
        text = f[1].startswith("r-x") and f[-1] == name
    elif f[0] == "Rss:" and text:
        total += int(f[1])
print(total)' "$(readlink -f "$lib")")
	if [ -z "$text" ] || [ "$text" -gt 64 ]; then
		echo "FAIL: python3 has ${text:-?} KiB of $lib's text resident (one window: 64)" >&2
		fail=1
	fi
fi

[ $fail -eq 0 ] && printf '%d functions and _fini in [0x%x, 0x%x), the text segment'"'"'s first 64 KiB; python3 maps %s KiB of it\n' \
	"$n" "$hot_start" "$hot_end" "${text:-?}"
exit $fail
