#!/usr/bin/env python3
#
# test_select.py - which libzpmalloc.so tools/zpmalloc picks by itself.
#
# Issue 11 item 16: after the README's test command the tool took the
# newest build*/ (build-sanitize, an ASan -O0 build) and every zpmalloc run
# of the main job failed. The rule now: --lib or $ZPMALLOC_LIB, used as
# given; else the build the tool runs from, build/ next to the source tree,
# the installed library (an installed tool looks there first), each only
# if meson recorded it as a build made for use (no sanitizer, optimised,
# no debug assertions).
#
# Each case lays out a small tree in a temporary directory: copies of the
# tool (unconfigured, configured in a build tree, installed) and build
# directories holding a copy of the real library with a copy of the real
# meson-info/intro-buildoptions.json, edited to the configuration the case
# needs. The library the tool chose is read back from the LD_PRELOAD that
# `zpmalloc run` hands the program.
#
# Usage: test_select.py TOOL BUILD_ROOT LIBZPMALLOC
#
import json
import os
import shutil
import subprocess
import sys
import tempfile

failures = []
RELEASE = {"buildtype": "release", "optimization": "3", "debug": False,
           "b_sanitize": "none", "debug_asserts": False}
ASAN = {"buildtype": "debug", "optimization": "0", "debug": True,
        "b_sanitize": "address,undefined", "debug_asserts": True}
TEST = {"buildtype": "debugoptimized", "optimization": "2", "debug": True,
        "b_sanitize": "none", "debug_asserts": True}
DEBUG = {"buildtype": "debug", "optimization": "0", "debug": True,
         "b_sanitize": "none", "debug_asserts": False}


def check(cond, what, detail=""):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
        if detail:
            print("     " + detail.replace("\n", "\n     "), flush=True)
    return cond


class Tree:
    """A source tree with a copy of the tool, and builds around it."""

    def __init__(self, tmp, tool, options_json, lib):
        self.tmp = tmp
        self.src = os.path.join(tmp, "src")
        self.options = options_json
        self.lib = lib
        os.makedirs(os.path.join(self.src, "tools"))
        with open(tool, encoding="utf-8") as f:
            self.text = f.read()
        self.tool = self.install_tool(os.path.join(self.src, "tools"), {})

    def install_tool(self, where, markers):
        """A copy of the tool in where, with meson's markers filled in."""
        text = self.text
        for name, value in markers.items():
            text = text.replace(f'"@{name}@"', json.dumps(value))
        os.makedirs(where, exist_ok=True)
        path = os.path.join(where, "zpmalloc")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(path, 0o755)
        return path

    def build(self, name, opts, mtime=None):
        """A build directory name/ (relative to the tree's parent if it
        starts with '../') with the library and meson's options."""
        path = os.path.normpath(os.path.join(self.src, name))
        os.makedirs(os.path.join(path, "src"), exist_ok=True)
        os.makedirs(os.path.join(path, "meson-info"), exist_ok=True)
        lib = os.path.join(path, "src", "libzpmalloc.so")
        shutil.copy(self.lib, lib)
        doc = [dict(o, value=opts[o["name"]]) if o["name"] in opts else o
               for o in self.options]
        with open(os.path.join(path, "meson-info",
                               "intro-buildoptions.json"), "w") as f:
            json.dump(doc, f)
        if mtime is not None:
            os.utime(lib, (mtime, mtime))
        return path


def pick(tool, lib=None, env=None):
    """(library the tool chose or None, completed process)."""
    e = {k: v for k, v in os.environ.items()
         if k not in ("ZPMALLOC_LIB", "LD_PRELOAD")}
    e.update(env or {})
    args = [tool, "run"] + (["--lib", lib] if lib else []) + [
        "--", "sh", "-c", 'printf %s "$LD_PRELOAD"']
    r = subprocess.run(args, capture_output=True, text=True, env=e,
                       timeout=120)
    chosen = r.stdout.split(":")[0] if r.returncode == 0 else None
    return chosen, r


def lib_of(build):
    return os.path.realpath(os.path.join(build, "src", "libzpmalloc.so"))


def installed_elsewhere(tool):
    """Installed copies on this machine: the unconfigured tool's last
    resort, which some negative cases must then allow for."""
    _chosen, r = pick(tool)
    return r.returncode == 0


def case_test_builds_only(t, installed):
    """The README's test command leaves build-test/ and build-sanitize/:
    neither is picked, and the error names them with why."""
    t.build("build-test", TEST)
    t.build("build-sanitize", ASAN)
    chosen, r = pick(t.tool)
    if installed:
        check(chosen and not chosen.startswith(t.tmp),
              "test builds only: an installed library, not a test build",
              r.stderr)
        return
    check(r.returncode != 0 and "cannot find a usable" in r.stderr and
          "build/src/libzpmalloc.so (build/ next to the source tree): "
          "missing" in r.stderr, "test builds only: no library, and "
          "build/ is reported missing", r.stderr)
    check("build-sanitize/src/libzpmalloc.so: a sanitizer build "
          "(b_sanitize=address,undefined" in r.stderr and
          "build-test/src/libzpmalloc.so: a test build with debug "
          "assertions" in r.stderr and "--lib PATH" in r.stderr,
          "test builds only: the error lists them, why each is not a "
          "build for use, and --lib", r.stderr)


def case_readme_build(t):
    """Issue 11 item 16: build/ (release) is picked although a sanitizer
    build is newer."""
    build = t.build("build", RELEASE, mtime=1_000_000_000)
    t.build("build-sanitize", ASAN)
    chosen, r = pick(t.tool)
    check(chosen == lib_of(build) and not r.stderr,
          "build/ is picked, not the newer build-sanitize/",
          f"chose {chosen}\n{r.stderr}")
    e = {k: v for k, v in os.environ.items() if k != "ZPMALLOC_LIB"}
    r = subprocess.run([t.tool, "compare", "--runs", "1", "--allocators",
                        "zpmalloc", "--out", os.path.join(t.tmp, "cmp"),
                        "--", "true"], capture_output=True, text=True,
                       env=e, timeout=120)
    check(r.returncode == 0 and f"zpmalloc: {lib_of(build)} (build/ next "
          "to the source tree, buildtype=release)" in r.stdout,
          "compare says which library it uses and why", r.stdout + r.stderr)


def case_refused_build(t, opts, word, installed):
    """build/ itself configured for testing: refused, with the reason."""
    build = t.build("build", opts)
    chosen, r = pick(t.tool)
    label = f"build/ as {opts['buildtype']}/{opts['b_sanitize']}/" \
            f"asserts={opts['debug_asserts']}"
    if installed:
        check(chosen != lib_of(build) and f"not using {lib_of(build)}"
              in r.stderr and word in r.stderr,
              f"{label}: refused with the reason, installed one used",
              r.stderr)
        return
    check(r.returncode != 0 and word in r.stderr and
          "used only when named with --lib" in r.stderr,
          f"{label}: refused as {word!r}", r.stderr)


def case_explicit(t):
    """--lib and $ZPMALLOC_LIB take any build, a sanitizer one included."""
    san = t.build("build-sanitize", ASAN)
    chosen, r = pick(t.tool, lib=lib_of(san))
    check(chosen == lib_of(san), "--lib takes a sanitizer build",
          r.stderr)
    chosen, r = pick(t.tool, env={"ZPMALLOC_LIB": lib_of(san)})
    check(chosen == lib_of(san), "$ZPMALLOC_LIB takes a sanitizer build",
          r.stderr)


def configured_markers(t, build, libdir):
    return {"ZP_SOURCE_ROOT": t.src, "ZP_BUILD_ROOT": build,
            "ZP_LIBDIR": libdir, "ZP_VERSION": "0.0-test"}


def case_configured(t):
    """The copy meson configures in a build tree uses that build when it
    is one for use, else says why not and goes on to build/."""
    readme = t.build("build", RELEASE)
    own = t.build("../other-build", RELEASE)
    libdir = os.path.join(t.tmp, "prefix", "lib")
    tool = t.install_tool(os.path.join(own, "tools"),
                          configured_markers(t, own, libdir))
    chosen, r = pick(tool)
    check(chosen == lib_of(own) and not r.stderr,
          "configured copy: its own release build", r.stderr)
    t.build("../other-build", ASAN)
    chosen, r = pick(tool)
    check(chosen == lib_of(readme) and f"not using {lib_of(own)} (the "
          "build this tool was configured in): a sanitizer build"
          in r.stderr, "configured copy in a sanitizer build: says so and "
          "uses build/", f"chose {chosen}\n{r.stderr}")


def case_installed(t):
    """An installed copy prefers the installed library to build trees."""
    readme = t.build("build", RELEASE)
    own = t.build("../other-build", RELEASE)
    libdir = os.path.join(t.tmp, "prefix", "lib")
    tool = t.install_tool(os.path.join(t.tmp, "prefix", "bin"),
                          configured_markers(t, own, libdir))
    chosen, r = pick(tool)
    check(chosen == lib_of(readme),
          "installed copy, nothing installed: build/", r.stderr)
    os.makedirs(libdir)
    shutil.copy(t.lib, os.path.join(libdir, "libzpmalloc.so"))
    chosen, r = pick(tool)
    check(chosen == os.path.realpath(os.path.join(libdir, "libzpmalloc.so")),
          "installed copy: the installed library first", r.stderr)


def main():
    tool, build_root, lib = sys.argv[1:4]
    with open(os.path.join(build_root, "meson-info",
                           "intro-buildoptions.json")) as f:
        options = json.load(f)
    cases = [
        ("test builds only", lambda t, i: case_test_builds_only(t, i)),
        ("README build", lambda t, i: case_readme_build(t)),
        ("sanitizer build/", lambda t, i: case_refused_build(
            t, ASAN, "a sanitizer build", i)),
        ("debug build/", lambda t, i: case_refused_build(
            t, DEBUG, "an unoptimised build (buildtype=debug", i)),
        ("test build/", lambda t, i: case_refused_build(
            t, TEST, "a test build with debug assertions", i)),
        ("explicit", lambda t, i: case_explicit(t)),
        ("configured", lambda t, i: case_configured(t)),
        ("installed", lambda t, i: case_installed(t)),
    ]
    for name, run in cases:
        with tempfile.TemporaryDirectory(prefix="zp-select-") as tmp:
            t = Tree(tmp, tool, options, lib)
            # Before any build exists in the tree.
            installed = installed_elsewhere(t.tool)
            if installed:
                print(f"# {name}: a libzpmalloc.so is installed on this "
                      "machine; the search may end there")
            run(t, installed)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
