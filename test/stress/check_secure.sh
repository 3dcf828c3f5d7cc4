#!/bin/sh
# check_secure.sh PROG - ZPMALLOC_* options are ignored in secure mode.
# PROG is compat_secure (linked to libzpmalloc with an absolute RUNPATH).
# A copy owned by `nobody` with the setuid bit, run by root, starts with
# euid != ruid, so the kernel sets AT_SECURE. The same copy without the bit
# is the control: there ZPMALLOC_VERBOSE=1 must print its line, which shows
# the check below could fail.
set -u
prog=$1
if [ "$(id -u)" != 0 ]; then
	echo "check_secure: needs root to make a setuid copy: skipped"
	exit 77
fi
user=nobody
id "$user" >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin "$user"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
chmod 755 "$dir"
cp "$prog" "$dir/plain"
cp "$prog" "$dir/suid"
chown "$user" "$dir/suid"
chmod 4755 "$dir/suid"

out=$(ZPMALLOC_VERBOSE=1 "$dir/plain" 2>"$dir/plain.err") || {
	echo "check_secure: control run failed"; cat "$dir/plain.err"; exit 1; }
echo "control:  $out; stderr: $(cat "$dir/plain.err")"
case $out in *zpmalloc=absent*)
	echo "check_secure: libzpmalloc has no zp_version yet: skipped"
	exit 77 ;;
esac
if ! grep -q '^zpmalloc' "$dir/plain.err"; then
	echo "check_secure: ZPMALLOC_VERBOSE=1 printed nothing even without"
	echo "secure mode, so the secure run would prove nothing"
	exit 1
fi
out=$(ZPMALLOC_VERBOSE=1 ZPMALLOC_STATS=1 "$dir/suid" 2>"$dir/suid.err") || {
	echo "check_secure: setuid run failed"; cat "$dir/suid.err"; exit 1; }
echo "setuid:   $out; stderr: $(cat "$dir/suid.err")"
case $out in
*AT_SECURE=1*) ;;
*)	echo "check_secure: the setuid copy did not run in secure mode"
	exit 1 ;;
esac
if grep -q '^zpmalloc' "$dir/suid.err"; then
	echo "check_secure: ZPMALLOC_* options were honoured in secure mode"
	exit 1
fi
echo "check_secure: options ignored under AT_SECURE"
