#!/usr/bin/env python3
"""Cache hits on several edged binaries, interleaved, on this machine.

    tests/bench/hit_ab.py ROUNDS SECONDS SIZES NAME=EDGED [NAME=EDGED ...]
    tests/bench/hit_ab.py 5 4 102400,1024 before=/tmp/old/edged after=./edged

One tests/bench/bench_origin (BENCH_ORIGIN to name another) on CPU 0; each
edged (--threads 2, a 2 GiB memory tier, its own cache directory) on CPU 1;
each size warmed with three requests.  Then ROUNDS rounds: in each, for each
size, each binary in turn gets `wrk -t1 -c64 -dSECONDS` on CPU 0, and the
round prints req/s and requests per edged CPU-second (utime + stime from
/proc, the steadier figure on a shared machine).  Medians at the end, as
ratios to the first binary.  BENCH_CLOSE=1 sends "Connection: close", so
that every request is a new connection (the harness's churn); BENCH_CONNS
sets wrk's connections (default 64; 1 prices a connection without batching).  Loopback only; every process started here is
stopped at the end.
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from benchproc import cpu_s, free_port, stop  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def wait_ready(path):
    for _ in range(100):
        if os.path.exists(path):
            return
        time.sleep(0.1)
    sys.exit("not ready: %s" % path)


def main():
    if len(sys.argv) < 5 or shutil.which("wrk") is None:
        sys.exit(__doc__)
    rounds, secs = int(sys.argv[1]), int(sys.argv[2])
    sizes = [int(x) for x in sys.argv[3].split(",")]
    bins = [a.split("=", 1) for a in sys.argv[4:]]
    close = (["-H", "Connection: close"]
             if os.environ.get("BENCH_CLOSE") == "1" else [])
    conns = int(os.environ.get("BENCH_CONNS", "64"))
    origin = os.environ.get("BENCH_ORIGIN",
                            os.path.join(HERE, "bench_origin"))
    work = tempfile.mkdtemp(prefix="hit-ab.")
    procs, servers = [], []
    try:
        op = free_port()
        procs.append(subprocess.Popen(["taskset", "-c", "0", origin,
                                       str(op)]))
        for name, binary in bins:
            d = os.path.join(work, name)
            os.mkdir(d)
            ep = free_port()
            p = subprocess.Popen(
                ["taskset", "-c", "1", binary, "--listen",
                 "127.0.0.1:%d" % ep, "--origin", "http://127.0.0.1:%d" % op,
                 "--threads", "2", "--cache-dir", d + "/cache",
                 "--memory-size", "2G", "--log-level", "warn",
                 "--ready-file", d + "/ready"],
                stdout=open(d + "/log", "w"), stderr=subprocess.STDOUT)
            procs.append(p)
            servers.append((name, p, ep))
            wait_ready(d + "/ready")
            for size in sizes:
                for _ in range(3):
                    subprocess.run(["curl", "-s", "-o", "/dev/null",
                                    "http://127.0.0.1:%d/obj/ab?size=%d"
                                    % (ep, size)], check=True)
        res = {}
        for r in range(rounds):
            for size in sizes:
                for name, p, ep in servers:
                    c0 = cpu_s(p.pid)
                    out = subprocess.run(
                        ["taskset", "-c", "0", "wrk", "-t1", "-c%d" % conns,
                         "-d%ds" % secs] + close +
                        ["http://127.0.0.1:%d/obj/ab?size=%d" % (ep, size)],
                        capture_output=True, text=True).stdout
                    used = max(cpu_s(p.pid) - c0, 1e-9)
                    n = int(re.search(r"(\d+) requests in", out).group(1))
                    rps = float(re.search(r"Requests/sec:\s+([\d.]+)",
                                          out).group(1))
                    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
                    res.setdefault((size, name), []).append((rps, n / used))
                    print("round %d size %d %-10s %8.0f req/s %8.0f "
                          "req/CPU-s cpu %3.0f%%%s"
                          % (r, size, name, rps, n / used,
                             100 * used / secs,
                             " non-2xx: " + bad.group(1) if bad else ""),
                          flush=True)
        print("medians:")
        for size in sizes:
            base = None
            for name, _, _ in servers:
                rps = statistics.median(x[0] for x in res[(size, name)])
                eff = statistics.median(x[1] for x in res[(size, name)])
                base = base or (rps, eff)
                print("size %d %-10s %8.0f req/s %8.0f req/CPU-s "
                      "(x %.2f, x %.2f of %s)"
                      % (size, name, rps, eff, rps / base[0], eff / base[1],
                         servers[0][0]))
    finally:
        stop(procs, work)


if __name__ == "__main__":
    main()
