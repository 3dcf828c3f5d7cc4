#!/bin/sh
# cxx_bind.sh LIB PROG: with LIB preloaded, every operator new and operator
# delete that PROG references binds to LIB, not to libstdc++ (which would
# leave the preload tests of C++ testing libstdc++ over our malloc), and so
# do libstdc++'s own references to them (std::string, std::vector inside
# the library). PROG must reference all twenty; it is not run past its
# start (LD_BIND_NOW binds everything before main).
set -u
lib=$1
prog=$2
ops='_Znwm _Znam _ZnwmRKSt9nothrow_t _ZnamRKSt9nothrow_t
_ZnwmSt11align_val_t _ZnamSt11align_val_t
_ZnwmSt11align_val_tRKSt9nothrow_t _ZnamSt11align_val_tRKSt9nothrow_t
_ZdlPv _ZdaPv _ZdlPvm _ZdaPvm _ZdlPvRKSt9nothrow_t _ZdaPvRKSt9nothrow_t
_ZdlPvSt11align_val_t _ZdaPvSt11align_val_t
_ZdlPvmSt11align_val_t _ZdaPvmSt11align_val_t
_ZdlPvSt11align_val_tRKSt9nothrow_t _ZdaPvSt11align_val_tRKSt9nothrow_t'

out=$(LD_PRELOAD=$lib LD_BIND_NOW=1 LD_DEBUG=bindings "$prog" --bind-only \
	2>&1 >/dev/null) || { echo "$prog failed under $lib" >&2; exit 1; }
fail=0
for op in $ops; do
	if ! printf '%s\n' "$out" | grep -qF \
	     "binding file $prog [0] to $lib [0]: normal symbol \`$op'"; then
		echo "FAIL: $op of $prog does not bind to $lib" >&2
		printf '%s\n' "$out" | grep -F "symbol \`$op'" | head -3 >&2
		fail=1
	fi
done
for op in _Znwm _ZdlPv; do
	if ! printf '%s\n' "$out" | grep -Eq \
	     "binding file [^ ]*/libstdc\+\+\.so\.6 \[0\] to $lib \[0\]: normal symbol \`$op'"; then
		echo "FAIL: libstdc++'s own $op does not bind to $lib" >&2
		fail=1
	fi
done
[ $fail -eq 0 ] && echo "all 20 operators of $prog and libstdc++'s bind to $lib"
exit $fail
