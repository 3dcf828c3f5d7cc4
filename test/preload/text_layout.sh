#!/bin/sh
# text_layout.sh LIB LDSCRIPT OWN_SMAPS [release|other|noopt]: the
# library's code that ordinary programs run (src/hot_text.ld) and its
# constants lie in mappings of their own, so that the kernel's
# fault-around (64 KiB around a fault, never past the mapping that
# faulted) maps only what a program runs together:
#   - .text.zp_load (behind .init and .plt), .text.zp_core and each
#     .text.zp_hotN are each alone in a LOAD segment, and the rest of the
#     text in one without them;
#   - _fini, GCC's frame_dummy and __do_global_dtors_aux (run at every load
#     and exit) are in .text.zp_load; operator new and delete in the core
#     or a group (bench/hot_text must read callgrind's names mangled, as nm
#     gives them);
#   - .text.zp_boot (what boot alone runs, dropped once boot is done) is
#     alone in its segment;
#   - .rodata and .rodata.zp_cold are each alone in a segment: not with
#     the ELF headers, which every process reads, nor with the unwind
#     tables, nor the constants every process that allocates reads with
#     the rare ones (src/rodata_first.ld);
#   - every function the script names is still a function of LIB (built by
#     GCC, as the list was), so a rename shows up here (rerun
#     bench/hot_text);
#   - what it is for: OWN_SMAPS, which never allocates, has no constants
#     and no code of LIB resident but .text.zp_load's (any optimised GCC
#     build: at -O0, "noopt", its helpers are functions of their own);
#     python3 starting has none of the rest of the text resident
#     (release build: others inline differently from the build
#     bench/hot_text traced), and, in any optimised build, none of boot's
#     text (dropped) nor of the rare constants at its exit.
set -u
# readelf's headings are translated.
LC_ALL=C
export LC_ALL
lib=$1
ld=$2
own_smaps=$3
kind=${4:-release}
fail=0
text=
hot=

for t in readelf nm awk; do
	command -v $t >/dev/null || { echo "SKIP: no $t" >&2; exit 77; }
done

# Each LOAD segment, one a line: its file offset, then its sections.
loads=$(readelf -lW "$lib" | awk '
	/^Program Headers:/ { ph = 1; n = 0; next }
	/Segment Sections/ { ph = 0; sm = 1; next }
	ph && $1 ~ /^[A-Z_]+$/ && $1 != "Type" { if ($1 == "LOAD") off[n] = $2; n++ }
	sm && $1 ~ /^[0-9]+$/ && (($1 + 0) in off) { i = $1 + 0; $1 = ""; print off[i] $0 }')
# load_of SECTION: the line of SECTION's LOAD segment; segment_of: the
# sections sharing it; offset_of: its file offset.
load_of() {
	printf '%s\n' "$loads" | awk -v s="$1" '{ for (i = 2; i <= NF; i++) if ($i == s) print }'
}
segment_of() {
	load_of "$1" | cut -d' ' -f2-
}
offset_of() {
	load_of "$1" | cut -d' ' -f1
}
alone() {
	got=$(segment_of "$1")
	if [ "$got" != "$1" ]; then
		echo "FAIL: $1 does not have a LOAD segment of its own (${got:-none})" >&2
		fail=1
	fi
}

got=$(segment_of .text.zp_load)
for s in $got; do
	case $s in
	.init|.plt|.plt.got|.plt.sec|.text.zp_load) ;;
	*)	echo "FAIL: .text.zp_load shares its segment with $s" >&2
		fail=1 ;;
	esac
done
[ -n "$got" ] || { echo "FAIL: no .text.zp_load in a LOAD segment" >&2; fail=1; }
alone .text.zp_boot
alone .text.zp_core
groups=$(printf '%s\n' "$loads" | tr ' ' '\n' | grep '^\.text\.zp_hot[0-9][0-9]*$')
[ -n "$groups" ] || { echo "FAIL: no .text.zp_hot groups" >&2; fail=1; }
for g in $groups; do
	alone "$g"
done
case " $(segment_of .text) " in
*" .text.zp_"*)	echo "FAIL: the rest of the text shares a segment with the hot code" >&2
		fail=1 ;;
esac
alone .rodata
alone .rodata.zp_cold

# sym_in SYMBOL SECTION...: SYMBOL lies in one of the sections.
sections=$(readelf -SW "$lib" | sed 's/^ *\[ *[0-9]*\] *//')
syms=$(nm "$lib")
sym_in() {
	sym=$1
	shift
	where="$*"
	at=$(printf '%s\n' "$syms" | awk -v s=$sym '$3 == s { print "0x" $1 }')
	for s in "$@"; do
		set -- $(printf '%s\n' "$sections" | awk -v n="$s" '$1 == n { print "0x" $3, "0x" $5 }')
		[ -n "$at" ] && [ $# -eq 2 ] && [ $((at)) -ge $(($1)) ] &&
			[ $((at)) -lt $(($1 + $2)) ] && return 0
	done
	echo "FAIL: $sym (${at:-absent}) is not in $where" >&2
	fail=1
}
for sym in _fini __do_global_dtors_aux frame_dummy; do
	sym_in $sym .text.zp_load
done
for sym in _Znwm _ZdlPv; do
	sym_in $sym .text.zp_core $groups
done

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

# resident SMAPS SECTION: KiB resident in SMAPS (a process's smaps) of
# LIB's mapping of SECTION's segment (the page it starts on).
real=$(readlink -f "$lib")
resident() {
	at=$(($(offset_of "$2") / 4096 * 4096))
	printf '%s\n' "$1" | awk -v lib="$real" '
		/^[0-9a-f]+-[0-9a-f]+ / { m = ($NF == lib); o = $3 }
		m && $1 == "Rss:" { print o, $2 }' |
	while read -r o kib; do
		[ $((0x$o)) -eq $at ] && echo "$kib"
	done | awk '{ k += $1 } END { print k + 0 }'
}
# A program that never allocates runs the load and exit hooks only: the
# load group's page (which shows the library was loaded), no constants.
if [ "$kind" != noopt ]; then
	out=$(LD_PRELOAD="$real" "$own_smaps") ||
		{ echo "FAIL: $own_smaps failed under the preload" >&2; fail=1; }
	for s in .text.zp_boot .text.zp_core $groups .text .rodata .rodata.zp_cold; do
		kib=$(resident "$out" $s)
		[ "$kib" -eq 0 ] && continue
		echo "FAIL: a program that never allocates has $kib KiB of $lib's $s resident" >&2
		fail=1
	done
	text=$(resident "$out" .text.zp_load)
	if [ "$text" -eq 0 ]; then
		echo "FAIL: $own_smaps has none of $lib's load group resident (not preloaded?)" >&2
		fail=1
	fi
fi
# A program that allocates: boot's text went once boot was done (a
# function marked zp_boot_text that runs later brings it back), and it
# read none of the rare constants (a string read on a common path, or an
# option name read without a ZPMALLOC_ variable, maps them all). Its
# environment names no option: one that does reads the names (the test
# command's runs with ZPMALLOC_UFFD=0, say). The system's python3, not
# a wrapper that runs it under valgrind (test/sanitize.sh), which maps
# and reads the library its own way.
zp_vars=$(env | sed -n 's/^\(ZPMALLOC_[A-Za-z0-9_]*\)=.*/-u \1/p')
py=$(PATH=/usr/bin:/bin command -v python3)
if [ "$kind" != noopt ] && [ -n "$py" ]; then
	out=$(env $zp_vars LD_PRELOAD="$real" "$py" -c 'import sys; sys.stdout.write(open("/proc/self/smaps").read())') ||
		{ echo "FAIL: python3 failed under the preload" >&2; fail=1; }
	if [ "$(resident "$out" .text.zp_core)" -eq 0 ]; then
		echo "FAIL: python3 has none of $lib's core resident (not preloaded?)" >&2
		fail=1
	fi
	for s in .text.zp_boot .rodata.zp_cold; do
		kib=$(resident "$out" $s)
		[ "$kib" -eq 0 ] && continue
		echo "FAIL: python3 has $kib KiB of $lib's $s resident" >&2
		fail=1
	done
fi
# Only for the release build the list was made from: a function a program
# runs that the list lacks (a new one called at boot) maps a page of
# another group or of the rest, in every process.
if [ "$kind" = release ]; then
	if [ -n "$py" ]; then
		cold=$(resident "$out" .text)
		if [ "$cold" -ne 0 ]; then
			echo "FAIL: python3 has $cold KiB of the rest of $lib's text resident" >&2
			fail=1
		fi
		hot=0
		for s in .text.zp_load .text.zp_core $groups; do
			hot=$((hot + $(resident "$out" $s)))
		done
	fi
fi

[ $fail -eq 0 ] && printf '%d functions in %s groups besides load and core, each a mapping of its own%s%s\n' \
	"$n" "$(printf '%s\n' $groups | wc -l)" \
	"${text:+; a program that never allocates maps $text KiB of the code}" \
	"${hot:+, python3 $hot KiB}"
exit $fail
