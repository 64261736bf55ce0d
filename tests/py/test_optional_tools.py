#!/usr/bin/env python3
"""Story: a new user runs `make check` on a machine that lacks one of the
optional test tools (varnishtest, brotli, chromium, python3-h2,
redis-server, promtool: tools/deps.sh --test installs them).  The tests
that need the tool are skipped and say why; none fails, and the run's
status is a pass or automake's skip (77), never an error.

Each tool is hidden from one test that uses it: a program by a PATH of
links to everything else on PATH, python3-h2 by an h2 package earlier on
PYTHONPATH that does not import, redis-server by REDIS_SERVER.
"""
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

PY = os.path.join(et.TESTS_SRCDIR, "py")
RUN_LIMIT_S = 150


def path_without(*names):
    """A directory of links to every program on PATH but <names>."""
    d = et.mktemp("path")
    for src in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
        if not os.path.isdir(src):
            continue
        for n in os.listdir(src):
            dst = os.path.join(d, n)
            if n not in names and not os.path.lexists(dst):
                os.symlink(os.path.join(src, n), dst)
    return d


def run(argv, **env):
    e = dict(os.environ, EDGED=et.EDGED, TESTS_SRCDIR=et.TESTS_SRCDIR)
    e.update(env)
    p = subprocess.run(argv, env=e, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=RUN_LIMIT_S)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def check_skipped(what, rc, out, reason):
    et.ok(rc in (0, 77), "%s: exit %d (a pass or a skip):\n%s"
          % (what, rc, out[-2000:]))
    et.ok("not ok" not in out, "%s: nothing failed:\n%s" % (what, out[-2000:]))
    et.ok(reason in out and "SKIP" in out,
          "%s: skipped, saying %r:\n%s" % (what, reason, out[-2000:]))


def test_no_varnishtest():
    vtc = os.path.join(et.TESTS_SRCDIR, "vtc", "b00001.vtc")
    rc, out = run(["/bin/sh", os.path.join(et.TESTS_SRCDIR, "vtc", "run.sh"),
                   vtc], PATH=path_without("varnishtest"))
    et.eq(rc, 77, "run.sh without varnishtest: automake's skip\n" + out)
    et.ok("SKIP: varnishtest not found" in out, "the reason: %r" % out)


def test_no_brotli():
    rc, out = run([sys.executable, os.path.join(PY, "test_variants.py"),
                   "test_every_variant_decodes_to_the_identity_body"],
                  PATH=path_without("brotli"))
    check_skipped("test_variants.py without brotli", rc, out,
                  "brotli not installed")


def test_no_chromium():
    rc, out = run([sys.executable, os.path.join(PY, "test_dashboard.py"),
                   "test_charts_have_data_in_headless_chromium"],
                  PATH=path_without("chromium", "chromium-browser"))
    check_skipped("test_dashboard.py without chromium", rc, out,
                  "chromium not installed")


def test_no_python3_h2():
    shadow = et.mktemp("noh2")
    os.mkdir(os.path.join(shadow, "h2"))
    with open(os.path.join(shadow, "h2", "__init__.py"), "w") as f:
        f.write('raise ImportError("python3-h2 hidden by the test")\n')
    rc, out = run([sys.executable, os.path.join(PY, "test_h2.py")],
                  PYTHONPATH=shadow)
    check_skipped("test_h2.py without python3-h2", rc, out,
                  "python3-h2 is not installed")


def test_no_redis_server():
    rc, out = run([sys.executable, os.path.join(PY, "test_bus.py"),
                   "test_purge_reaches_every_node"],
                  REDIS_SERVER="/nonexistent/redis-server")
    check_skipped("test_bus.py without redis-server", rc, out,
                  "redis-server not found")


def test_no_promtool():
    rc, out = run([sys.executable, os.path.join(PY, "test_contrib.py")],
                  PATH=path_without("promtool"))
    check_skipped("test_contrib.py without promtool", rc, out,
                  "promtool not installed")


if __name__ == "__main__":
    et.main()
