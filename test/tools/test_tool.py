#!/usr/bin/env python3
#
# test_tool.py - checks tools/zpmalloc end to end: the help of every
# command, the compare table and its CSV files, the SVG chart (parsed as
# XML, every line inside the drawing), the output-mismatch and failure
# reports, run's LD_PRELOAD handling with and without --no-inherit, the
# library search errors, and stats.
#
# Usage: test_tool.py TOOL [CONFIGURED_TOOL] [LIBZPMALLOC]
# The allocator under test in run/compare is jemalloc wherever the check is
# about the tool's mechanics; zpmalloc joins when LIBZPMALLOC exports
# malloc and preloads into /bin/true.
#
import csv
import importlib.machinery
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

SVG_NS = "{http://www.w3.org/2000/svg}"
PY = sys.executable
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def tool_run(tool, args, env=None, timeout=180):
    e = dict(os.environ)
    e.pop("ZPMALLOC_LIB", None)
    e.update(env or {})
    return subprocess.run([tool] + args, capture_output=True, text=True,
                          env=e, timeout=timeout)


def load(tool):
    loader = importlib.machinery.SourceFileLoader("zpmalloc_tool", tool)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def test_help(tool):
    r = tool_run(tool, ["--help"])
    check(r.returncode == 0 and all(c in r.stdout for c in
                                    ("run", "compare", "stats")),
          f"{os.path.basename(os.path.dirname(tool))}: --help lists the "
          "commands")
    wants = {"run": ["--no-inherit", "--lib"],
             "compare": ["--runs", "--allocators", "--out", "--interval",
                         "--lib"],
             "stats": ["--json", "--lib"]}
    for cmd, opts in wants.items():
        r = tool_run(tool, [cmd, "--help"])
        check(r.returncode == 0 and r.stdout.startswith("usage:") and
              all(o in r.stdout for o in opts),
              f"{cmd} --help shows usage and {', '.join(opts)}")


# Touches 48 MiB, holds it, and reports its own minor faults on stderr so
# the tool's count (which also covers exit) can be checked against it.
ALLOC_PROG = ("import resource, sys, time\n"
              "a = [bytearray(1 << 20) for i in range(48)]\n"
              "for b in a: b[::4096] = b'x' * len(b[::4096])\n"
              "time.sleep(0.25)\n"
              "print(sum(len(b) for b in a))\n"
              "ru = resource.getrusage(resource.RUSAGE_SELF)\n"
              "print('minflt', ru.ru_minflt, file=sys.stderr)\n")


def parse_table(stdout, names):
    lines = stdout.splitlines()
    head = [i for i, l in enumerate(lines) if l.startswith("allocator ")]
    if not check(len(head) == 1, "compare prints one table header"):
        return None, {}
    cols = lines[head[0]].split()
    rows = {}
    for line in lines[head[0] + 1:head[0] + 1 + len(names)]:
        f = line.split()
        rows[f[0]] = dict(zip(cols, f))
    return cols, rows


def check_svg(path, names, runs, command):
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        check(False, f"rss.svg parses as XML ({e})")
        return
    check(root.tag == SVG_NS + "svg", "rss.svg root is an SVG element")
    vb = [float(v) for v in root.get("viewBox", "").split()]
    check(len(vb) == 4 and vb[2] > 0 and vb[3] > 0 and
          root.get("width") and root.get("height"),
          "rss.svg has width, height and a viewBox")
    title = root.find(SVG_NS + "title")
    check(title is not None and command in title.text,
          "rss.svg title names the command")
    texts = " ".join("".join(t.itertext()) for t in
                     root.iter(SVG_NS + "text"))
    check(all(n in texts for n in names), "legend names every allocator")
    check("time" in texts and "(s)" in texts and "RSS" in texts and
          "MiB" in texts, "axes are labelled with units")
    lines = list(root.iter(SVG_NS + "polyline"))
    check(len(lines) == runs * len(names),
          f"one line per run and allocator ({len(lines)})")
    inside = True
    for pl in lines:
        pts = pl.get("points").split()
        for p in pts:
            x, y = (float(v) for v in p.split(","))
            inside &= 0 <= x <= vb[2] and 0 <= y <= vb[3]
    check(inside and lines, "every point lies inside the drawing")
    colours = {pl.get("stroke") for pl in lines}
    check(len(colours) == len(names), "each allocator has its own colour")
    for el in root.iter():
        if el.tag.startswith(SVG_NS + "image") or el.get("href") or \
           el.get("{http://www.w3.org/1999/xlink}href"):
            check(False, "rss.svg refers to nothing outside itself")
            break


def test_compare(tool, allocs, tmp):
    out = os.path.join(tmp, "cmp")
    names = [a.split("=")[0] for a in allocs.split(",")]
    runs = 2
    r = tool_run(tool, ["compare", "--runs", str(runs), "--allocators",
                        allocs, "--interval", "10", "--out", out, "--",
                        PY, "-c", ALLOC_PROG])
    if not check(r.returncode == 0, f"compare {allocs} exits 0"):
        print(r.stdout, r.stderr)
        return
    cols, rows = parse_table(r.stdout, names)
    check(cols == ["allocator", "runs", "wall_s", "peak_rss_MiB",
                   "mean_rss_MiB", "minflt", "time_vs_glibc",
                   "peak_vs_glibc"], "table columns")
    check(sorted(rows) == sorted(names), "one row per allocator")
    for n, row in rows.items():
        nums = [float(row[c]) for c in cols[2:]]
        check(row["runs"] == str(runs) and all(v > 0 for v in nums),
              f"{n}: runs and positive figures")
        # 48 MiB written: every allocator's peak must show it
        check(48 <= float(row["peak_rss_MiB"]) < 400,
              f"{n}: peak RSS {row['peak_rss_MiB']} MiB sees the 48 MiB")
        check(float(row["mean_rss_MiB"]) <= float(row["peak_rss_MiB"]),
              f"{n}: mean RSS <= peak")
    if "glibc" in rows:
        check(rows["glibc"]["time_vs_glibc"] == "1.00" and
              rows["glibc"]["peak_vs_glibc"] == "1.00",
              "glibc's own ratios are 1.00")
    check(re.search(r"^outputs: identical across allocators", r.stdout,
                    re.M) is not None, "outputs reported identical")
    with open(os.path.join(out, "samples.csv")) as f:
        data = list(csv.reader(f))
    check(data[0][:6] == ["allocator", "run", "t", "rss", "anon",
                          "lazyfree"], "samples.csv header")
    seen = {(d[0], d[1]) for d in data[1:]}
    check(seen == {(n, str(i)) for n in names for i in range(1, runs + 1)},
          "samples.csv holds every allocator and run")
    ok = True
    for n in names:
        ts = [float(d[2]) for d in data[1:] if d[0] == n and d[1] == "1"]
        ok &= ts == sorted(ts) and len(ts) >= 5
        ok &= all(int(d[3]) >= int(d[4]) >= 0 and int(d[5]) >= 0
                  for d in data[1:] if d[0] == n)
    check(ok, "samples: time increases, Rss >= Anonymous >= 0")
    with open(os.path.join(out, "runs.csv")) as f:
        rcsv = list(csv.DictReader(f))
    check(len(rcsv) == runs * len(names), "runs.csv has one row per run")
    ok = bool(rcsv)
    for row in rcsv:
        with open(os.path.join(out, f"stderr-{row['allocator']}-"
                               f"{row['run']}.txt")) as f:
            own = int(f.read().split()[1])
        ok &= own <= int(row["minflt"]) <= own + 5000
    check(ok, "minor faults: at least the program's own count")
    check_svg(os.path.join(out, "rss.svg"), names, runs, PY)


def test_compare_reports(tool, tmp):
    r = tool_run(tool, ["compare", "--runs", "1", "--allocators",
                        "glibc,jemalloc", "--out", os.path.join(tmp, "m"),
                        "--", PY, "-c",
                        "import os; print(os.environ.get('LD_PRELOAD'))"])
    check(r.returncode == 0 and "WARNING: outputs DIFFER across "
          "allocators" in r.stdout, "differing outputs are reported")
    r = tool_run(tool, ["compare", "--runs", "2", "--allocators",
                        "glibc,jemalloc", "--out", os.path.join(tmp, "f"),
                        "--", PY, "-c", "import sys; sys.exit(3)"])
    check(r.returncode == 1 and "FAILED" in r.stderr and
          "exit status 3" in r.stderr, "a failing run makes compare exit 1")
    r = tool_run(tool, ["compare", "--allocators", "glibc,nosuch", "--",
                        "true"])
    check(r.returncode == 1 and "unknown allocator" in r.stderr,
          "an unknown allocator is an error")


SHOW = ('echo "preload=[$LD_PRELOAD]"; '
        'echo "self=$(grep -c libjemalloc /proc/$$/maps)"; '
        'echo "child=$(cat /proc/self/maps | grep -c libjemalloc)"')


def test_run(tool, jemalloc, tmp):
    libm = [p for p in ("/lib/x86_64-linux-gnu/libm.so.6",
                        "/usr/lib/x86_64-linux-gnu/libm.so.6",
                        "/lib64/libm.so.6") if os.path.exists(p)]
    env = {"LD_PRELOAD": libm[0]} if libm else {}
    r = tool_run(tool, ["run", "--lib", jemalloc, "--", "sh", "-c", SHOW],
                 env=env)
    want = os.path.realpath(jemalloc) + (":" + libm[0] if libm else "")
    check(r.returncode == 0 and f"preload=[{want}]" in r.stdout,
          "run prepends the absolute library to LD_PRELOAD")
    check("self=0" not in r.stdout and "child=0" not in r.stdout,
          "run: the program and its children use the library")
    r = tool_run(tool, ["run", "--no-inherit", "--lib", jemalloc, "--",
                        "sh", "-c", SHOW])
    check(r.returncode == 0 and "preload=[]" in r.stdout and
          "self=0" not in r.stdout and "child=0" in r.stdout,
          "run --no-inherit: the program uses it, its children do not")
    script = os.path.join(tmp, "script.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\n" + SHOW.replace("; ", "\n") + "\n")
    os.chmod(script, 0o755)
    r = tool_run(tool, ["run", "--no-inherit", "--lib", jemalloc, "--",
                        script])
    check(r.returncode == 0 and "self=0" not in r.stdout and
          "child=0" in r.stdout, "run --no-inherit works for #! scripts")
    r = tool_run(tool, ["run", "--lib", jemalloc, "--", "sh", "-c",
                        "exit 7"])
    check(r.returncode == 7, "run passes the program's exit status on")


def test_search(tool, tmp):
    r = tool_run(tool, ["run", "--", "true"],
                 env={"ZPMALLOC_LIB": os.path.join(tmp, "none.so")})
    check(r.returncode == 1 and "ZPMALLOC_LIB" in r.stderr,
          "a missing $ZPMALLOC_LIB is reported")
    libc = [p for p in ("/lib/x86_64-linux-gnu/libm.so.6",
                        "/lib64/libm.so.6") if os.path.exists(p)]
    if libc:
        r = tool_run(tool, ["run", "--lib", libc[0], "--", "true"])
        check(r.returncode == 1 and "does not export malloc" in r.stderr,
              "a library without malloc is refused")


def test_interposition(tool, tmp):
    """A library whose malloc has a symbol version of its own is loaded
    but never called: the tool must refuse it rather than measure glibc."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        print("skip interposition check: no C compiler")
        return
    src = os.path.join(tmp, "vmalloc.c")
    ver = os.path.join(tmp, "vmalloc.map")
    lib = os.path.join(tmp, "libvmalloc.so")
    with open(src, "w") as f:
        f.write("#include <stddef.h>\n"
                "extern void *__libc_malloc(size_t);\n"
                "void *malloc(size_t n) { return __libc_malloc(n); }\n")
    with open(ver, "w") as f:
        f.write("VMALLOC_1.0 { global: malloc; local: *; };\n")
    r = subprocess.run([cc, "-shared", "-fPIC", "-o", lib, src,
                        "-Wl,--version-script=" + ver], capture_output=True)
    if not check(r.returncode == 0, "build a library with versioned malloc"):
        return
    r = tool_run(tool, ["run", "--lib", lib, "--", "true"])
    check(r.returncode == 1 and "does not replace malloc" in r.stderr,
          "a library whose malloc does not interpose is refused")


def test_stats(tool, jemalloc, zp):
    r = tool_run(tool, ["stats", "--lib", jemalloc, "--", PY, "-c",
                        "print(1)"])
    check(r.returncode == 1 and "no statistics" in r.stderr,
          "stats says clearly when no statistics were written")
    if not zp:
        return
    r = tool_run(tool, ["stats", "--lib", zp, "--", PY, "-c",
                        "print('hello')"])
    check(r.returncode == 0 and r.stdout.startswith("hello\n") and
          "==> zpmalloc statistics: pid" in r.stdout and
          len(r.stdout) > 200, "stats prints the program's statistics")
    r = tool_run(tool, ["stats", "--json", "--lib", zp, "--", PY, "-c",
                        "pass"])
    import json
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        doc = None
    check(r.returncode == 0 and isinstance(doc, dict) and doc,
          "stats --json prints one JSON object")


def usable(zp):
    if not zp or not os.path.exists(zp):
        return None
    env = dict(os.environ, LD_PRELOAD=zp)
    r = subprocess.run(["/bin/true"], env=env, capture_output=True)
    return zp if r.returncode == 0 and not r.stderr else None


def main():
    tool = os.path.abspath(sys.argv[1])
    configured = sys.argv[2] if len(sys.argv) > 2 else None
    zp = usable(sys.argv[3] if len(sys.argv) > 3 else None)
    mod = load(tool)
    jemalloc = mod.find_jemalloc()
    test_help(tool)
    if configured:
        test_help(os.path.abspath(configured))
    why = mod.check_malloc_library(zp) if zp else "not built"
    if why:
        print(f"# zpmalloc library not usable, its checks skipped: {why}")
        zp = None
    else:
        print(f"# zpmalloc library: {zp}")
    with tempfile.TemporaryDirectory(prefix="zp-tooltest-") as tmp:
        test_compare(tool, "glibc,jemalloc", tmp)
        if zp:
            test_compare(tool, f"glibc,jemalloc,zpmalloc={zp}", tmp)
        test_compare_reports(tool, tmp)
        test_run(tool, jemalloc, tmp)
        test_search(tool, tmp)
        test_interposition(tool, tmp)
        test_stats(tool, jemalloc, zp)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
