#!/bin/sh
# check_secure.sh PROG - ZPMALLOC_* options are ignored in secure mode.
# PROG is compat_secure (linked to libzpmalloc with an absolute RUNPATH).
# Two copies run with AT_SECURE set by the kernel, each with an effective
# id that is not its real one:
#   setgid: setgid to an unprivileged group, run by root;
#   setuid: setuid root, run by `nobody` (from a directory only root and
#           nobody's group can enter).
# In both the effective uid is 0, so the loader can read libzpmalloc.so
# wherever the build sits, a private (0700) home included. A copy setuid
# to another user could not, nor be pointed at a copy of the library: in
# secure mode the loader ignores LD_LIBRARY_PATH, and $ORIGIN outside the
# system library directories (tried: "cannot open shared object file").
# The same program without either bit is the control: there
# ZPMALLOC_VERBOSE=1 must print its line, which shows the check could fail.
set -u
prog=$1
if [ "$(id -u)" != 0 ]; then
	echo "check_secure: needs root to make setuid and setgid copies: skipped"
	exit 77
fi
user=nobody
id "$user" >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin "$user"
group=$(id -gn "$user")
if [ "$(id -g "$user")" = 0 ]; then
	echo "check_secure: $user's group is root's"
	exit 1
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
chgrp "$group" "$dir"
chmod 710 "$dir"
cp "$prog" "$dir/plain"
cp "$prog" "$dir/sgid"
chgrp "$group" "$dir/sgid"
chmod 2755 "$dir/sgid"
cp "$prog" "$dir/suid"
chmod 4755 "$dir/suid"

out=$(ZPMALLOC_VERBOSE=1 "$dir/plain" 2>"$dir/plain.err") || {
	echo "check_secure: control run failed"; cat "$dir/plain.err"; exit 1; }
echo "control: $out; stderr: $(cat "$dir/plain.err")"
case $out in *zpmalloc=absent*)
	echo "check_secure: libzpmalloc has no zp_version yet: skipped"
	exit 77 ;;
esac
if ! grep -q '^zpmalloc' "$dir/plain.err"; then
	echo "check_secure: ZPMALLOC_VERBOSE=1 printed nothing even without"
	echo "secure mode, so the secure runs would prove nothing"
	exit 1
fi

# secure_run NAME COMMAND...: the run must see AT_SECURE=1 and print
# nothing of zpmalloc's own although its options ask for it.
secure_run() {
	name=$1
	shift
	out=$("$@" env ZPMALLOC_VERBOSE=1 ZPMALLOC_STATS=1 "$dir/$name" \
		2>"$dir/$name.err") || {
		echo "check_secure: $name run failed"; cat "$dir/$name.err"
		exit 1; }
	echo "$name: $out; stderr: $(cat "$dir/$name.err")"
	case $out in
	*AT_SECURE=1*) ;;
	*)	echo "check_secure: the $name copy did not run in secure mode"
		echo "(is $dir on a nosuid file system?)"
		exit 1 ;;
	esac
	if grep -q '^zpmalloc' "$dir/$name.err"; then
		echo "check_secure: ZPMALLOC_* options were honoured in secure"
		echo "mode ($name)"
		exit 1
	fi
}
secure_run sgid
secure_run suid runuser -u "$user" --
echo "check_secure: options ignored under AT_SECURE (setgid and setuid)"
