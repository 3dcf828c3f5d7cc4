#!/bin/sh
# gcc: compile a generated C file (many functions, a big table, a switch)
# at -O2, run the program, and compare the assembly too.
. "$(dirname "$0")/need.sh"
need gcc awk cksum
awk 'BEGIN {
	print "#include <stdio.h>"
	print "static const unsigned tab[] = {"
	for (i = 0; i < 5000; i++)
		printf "%u,%s", (i * 2654435761) % 4294967291, i % 8 == 7 ? "\n" : " "
	print "};"
	for (f = 0; f < 400; f++) {
		printf "static unsigned f%d(unsigned x) {\n", f
		printf "\tunsigned acc = %d;\n", f
		printf "\tfor (unsigned i = 0; i < %d; i++)\n", 10 + f % 13
		printf "\t\tacc = acc * 33u + (x ^ tab[(i + %d) %% 5000]);\n", f
		printf "\tswitch (x %% 5) { case 0: acc += %d; break; case 1: acc ^= %d; break; default: acc -= x; }\n", f, f * 3
		print "\treturn acc;\n}"
	}
	print "int main(void) {\n\tunsigned s = 0;"
	for (f = 0; f < 400; f++)
		printf "\ts += f%d(s + %d);\n", f, f
	print "\tprintf(\"%u\\n\", s);\n\treturn 0;\n}"
}' >gen.c
gcc -O2 -S -o gen.s gen.c
grep -v '\.ident' gen.s | cksum
gcc -O2 -o gen gen.c
./gen
