#!/bin/sh
# sort(1) on a generated file of about 20 MB: large buffers, several
# threads, a merge.
. "$(dirname "$0")/need.sh"
need sort awk cksum
awk 'BEGIN {
	x = 12345
	for (i = 0; i < 600000; i++) {
		x = (x * 1103515245 + 12345) % 2147483648
		printf "%010d %s %d\n", x, substr("qwertyuiopasdfghjklzxcvbnm", 1 + x % 20), i
	}
}' >big.txt
LC_ALL=C sort --parallel=2 big.txt | cksum
LC_ALL=C sort -S 1M -k2,2 -k1,1n big.txt | cksum
LC_ALL=C sort -u -k2,2 big.txt | head -5
