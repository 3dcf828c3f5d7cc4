#!/bin/sh
# git: init, add and commit generated files, change some, commit again,
# then log, diff and blame; author, committer and dates are fixed so the
# hashes are too.
. "$(dirname "$0")/need.sh"
need git awk
export GIT_AUTHOR_NAME=Zp GIT_AUTHOR_EMAIL=zp@example.org
export GIT_COMMITTER_NAME=Zp GIT_COMMITTER_EMAIL=zp@example.org
export GIT_AUTHOR_DATE='2026-01-01T00:00:00+0000'
export GIT_COMMITTER_DATE='2026-01-01T00:00:00+0000'
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
set -e
git -c init.defaultBranch=main init -q repo
cd repo
mkdir -p src/a src/b
awk 'BEGIN {
	for (f = 0; f < 300; f++) {
		file = sprintf("src/%s/f%03d.txt", f % 2 ? "a" : "b", f)
		for (l = 0; l < 200; l++)
			printf "file %d line %d %x\n", f, l, (f * 7919 + l * 104729) % 65536 > file
		close(file)
	}
}'
git add -A
git commit -q -m 'first: generated files'
awk 'BEGIN {
	for (f = 0; f < 300; f += 7) {
		file = sprintf("src/%s/f%03d.txt", f % 2 ? "a" : "b", f)
		printf "appended %d\n", f >> file
		close(file)
	}
}'
git rm -q src/a/f001.txt
git commit -q -a -m 'second: appends and a removal'
git log --stat --format='%H %an %s'
git diff --stat HEAD~1 HEAD | tail -1
git blame -s src/b/f014.txt | tail -3
git gc -q
git count-objects -v | grep -v size
if git fsck --no-progress 2>fsck.err; then
	echo "fsck ok"
else
	echo "fsck failed"
	grep -v '^zpmalloc: active' fsck.err
fi
