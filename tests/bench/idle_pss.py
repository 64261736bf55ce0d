"""Idle memory: edged's PSS after one request through it.

    python3 tests/bench/idle_pss.py [--starts 5] [--port BASE] EDGED [EDGED ...]

Starts each binary in turn (A, B, A, B, ...), --starts times each, on a new
cache directory under $TMPDIR (/dev/shm puts it on tmpfs, as the
side-by-side runs do) with their settings (--cache-size 4G --memory-size 2G
--threads 2), makes one request through it to tests/origin/origin.py,
waits a second and reads Pss and Anonymous from /proc/PID/smaps_rollup.
Anonymous is the process's own memory, which the sharing of libraries with
other processes on the machine does not move.  Prints each reading, then
each binary's medians in MiB.  Under MALLOC_MMAP_THRESHOLD_=131072 glibc's
dynamic mmap threshold stays out of the figures.  The ports are BASE,
BASE+1 and BASE+2 (free ones when not given).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchproc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ORIGIN = os.path.join(HERE, "..", "origin", "origin.py")
SETTLE_S = 1.0     # after the request, before reading
READY_S = 30       # edged's ready file and the origin's port
ORIGIN_LIFE_S = 600  # the origin stops by itself after this


def rollup_kib(pid):
    """Pss and Anonymous (KiB) from /proc/PID/smaps_rollup: the second is
    the process's own memory, which the sharing of libraries with other
    processes on the machine does not move."""
    got = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("Pss", "Anonymous"):
                got[name] = int(rest.split()[0])
    if len(got) != 2:
        raise SystemExit("no Pss or Anonymous for %d" % pid)
    return got["Pss"], got["Anonymous"]


def wait_for(path, proc, what):
    deadline = time.monotonic() + READY_S
    while not (os.path.exists(path) and os.path.getsize(path) > 0):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("%s did not start" % what)
        time.sleep(0.05)


def one_start(edged, work, ports, origin_port):
    """Pss and Anonymous in KiB of <edged> started afresh, after one
    request."""
    cache = tempfile.mkdtemp(dir=work, prefix="cache.")
    ready = os.path.join(cache, "ready")
    p = subprocess.Popen(
        [edged, "--listen", "127.0.0.1:%d" % ports[0],
         "--admin-listen", "127.0.0.1:%d" % ports[1],
         "--origin", "http://127.0.0.1:%d" % origin_port,
         "--cache-dir", os.path.join(cache, "c"), "--cache-size", "4G",
         "--memory-size", "2G", "--threads", "2", "--log-level", "warn",
         "--ready-file", ready],
        stdin=subprocess.DEVNULL)
    try:
        wait_for(ready, p, edged)
        url = "http://127.0.0.1:%d/obj/idle?size=1024" % ports[0]
        with urllib.request.urlopen(url, timeout=10) as r:
            if r.status != 200 or len(r.read()) != 1024:
                raise SystemExit("%s: the request failed" % edged)
        time.sleep(SETTLE_S)
        return rollup_kib(p.pid)
    finally:
        benchproc.stop([p], cache)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("edged", nargs="+")
    a = ap.parse_args()
    if a.port:
        ports = [a.port, a.port + 1, a.port + 2]
    else:
        ports = [benchproc.free_port() for _ in range(3)]
    work = tempfile.mkdtemp(prefix="idle-pss.")
    port_file = os.path.join(work, "origin.port")
    origin = subprocess.Popen(
        [sys.executable, ORIGIN, "--listen", "127.0.0.1:%d" % ports[2],
         "--port-file", port_file, "--max-lifetime", str(ORIGIN_LIFE_S)],
        stdin=subprocess.DEVNULL)
    got = {b: [] for b in a.edged}
    try:
        wait_for(port_file, origin, "the origin")
        for i in range(a.starts):
            for b in a.edged:
                pss, anon = one_start(b, work, ports, ports[2])
                got[b].append((pss, anon))
                print("start %d %s: Pss %d KiB, Anonymous %d KiB"
                      % (i + 1, b, pss, anon), flush=True)
    finally:
        benchproc.stop([origin], work)
    for b in a.edged:
        print("%s: median Pss %.1f MiB, Anonymous %.1f MiB" % (
            b, statistics.median(k[0] for k in got[b]) / 1024,
            statistics.median(k[1] for k in got[b]) / 1024))


if __name__ == "__main__":
    main()
