#!/bin/sh
# A dict- and str-heavy Python script: many small objects, resizing dicts,
# string building, sorting, JSON round trips.
. "$(dirname "$0")/need.sh"
need python3
PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 python3 - <<'PY'
import json, hashlib
d = {}
for i in range(200000):
    d["key%07d" % i] = ["v" * (i % 17), i, str(i * 7)]
words = {}
text = " ".join("w%d" % (i * 7919 % 5003) for i in range(300000))
for w in text.split():
    words[w] = words.get(w, 0) + 1
top = sorted(words.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
print("dict", len(d), sum(len(v[0]) for v in d.values()))
print("words", len(words), top)
blob = json.dumps(d, sort_keys=True)
back = json.loads(blob)
print("json", len(blob), back == d)
parts = []
for i in range(100000):
    parts.append(("%x" % (i * 2654435761 % 2**32)).upper())
s = "-".join(sorted(parts))
print("join", len(s), hashlib.sha256(s.encode()).hexdigest())
del d, back
nested = [{"a": [str(j) for j in range(i % 50)]} for i in range(50000)]
print("nested", sum(len(x["a"]) for x in nested))
PY
