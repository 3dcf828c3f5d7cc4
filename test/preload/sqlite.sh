#!/bin/sh
# sqlite3: a table filled in one transaction, an index, grouped and ordered
# queries, an update and a delete.
. "$(dirname "$0")/need.sh"
need sqlite3 awk
awk 'BEGIN {
	q = sprintf("%c", 39)
	print "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INT, v REAL);"
	print "BEGIN;"
	for (i = 0; i < 40000; i++)
		printf "INSERT INTO t(name, grp, v) VALUES(%cn%d-%s%c, %d, %d.25);\n",
			39, (i * 7919) % 100003, substr("abcdefghij", 1 + i % 10), 39,
			i % 97, (i * 31) % 1000
	print "COMMIT;"
	print "CREATE INDEX t_grp ON t(grp, name);"
	print "SELECT grp, count(*), sum(v), min(name), max(name) FROM t GROUP BY grp ORDER BY grp;"
	print "SELECT name FROM t WHERE grp = 42 ORDER BY name LIMIT 20;"
	print "UPDATE t SET v = v * 2 WHERE grp % 3 = 0;"
	print "DELETE FROM t WHERE grp % 5 = 1;"
	print "SELECT count(*), sum(v), group_concat(grp, " q "," q ") FROM (SELECT DISTINCT grp, 0 AS v FROM t);"
	print "SELECT sum(v), count(DISTINCT name) FROM t;"
	print "SELECT name, length(name) FROM t ORDER BY v DESC, name LIMIT 10;"
}' >load.sql
sqlite3 test.db <load.sql
sqlite3 test.db "PRAGMA integrity_check; VACUUM; SELECT count(*) FROM t;"
