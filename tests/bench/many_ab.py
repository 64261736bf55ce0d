#!/usr/bin/env python3
"""Hits over many objects on two edged binaries, interleaved, on this machine.

    tests/bench/many_ab.py ROUNDS OBJECTS MEMORY BEFORE AFTER
    tests/bench/many_ab.py 8 100000 40M /tmp/old/edged ./edged

The shared harness's "many" scenario, with the two binaries side by side
instead of each beside a peer: one tests/bench/bench_origin (BENCH_ORIGIN to
name another) on CPU 0; each edged (--threads 2, --cache-size 4G, a memory
tier of MEMORY, its own cache directory) on CPU 1, warmed with OBJECTS
objects of 4 KiB fetched once each through itself.  Then ROUNDS rounds of
`wrk -t1 -c64 -d5s` on CPU 0, a uniform random key per request, the two
binaries in turn (which goes first alternates); each round prints req/s and
requests per edged CPU-second (utime + stime of all its threads, from
/proc), and the end the medians and the median of after / before per round.
Loopback only; every process started here is stopped at the end.
"""
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from benchproc import cpu_s, free_port, stop  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WARM_THREADS = 16
SIZE = 4096
LUA = r"""
local n = %d
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
end
function request()
  return wrk.format("GET", "/obj/m" .. math.random(0, n - 1) .. "?size=%d")
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d\n", summary.requests,
    summary.duration, summary.errors.status + summary.errors.read +
    summary.errors.connect + summary.errors.timeout))
end
"""


def warm(port, lo, hi):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for k in range(lo, hi):
        c.request("GET", "/obj/m%d?size=%d" % (k, SIZE))
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit("warm-up: status %d" % r.status)
    c.close()


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    rounds, n, memory = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    bins = {"before": sys.argv[4], "after": sys.argv[5]}
    origin = os.environ.get("BENCH_ORIGIN") or os.path.join(HERE, "bench_origin")
    tmp = tempfile.mkdtemp(prefix="many-ab-")
    lua = os.path.join(tmp, "many.lua")
    with open(lua, "w") as f:
        f.write(LUA % (n, SIZE))
    procs = []
    try:
        op = free_port()
        procs.append(subprocess.Popen(["taskset", "-c", "0", origin, str(op)]))
        srv = {}
        for name, b in bins.items():
            port = free_port()
            d = os.path.join(tmp, name)
            os.mkdir(d)
            p = subprocess.Popen(
                ["taskset", "-c", "1", b, "--listen", "127.0.0.1:%d" % port,
                 "--origin", "http://127.0.0.1:%d" % op,
                 "--cache-dir", d + "/cache", "--cache-size", "4G",
                 "--memory-size", memory, "--threads", "2",
                 "--log-level", "warn", "--ready-file", d + "/ready"],
                stdout=subprocess.DEVNULL, stderr=open(d + "/err", "w"))
            procs.append(p)
            srv[name] = (port, p)
            for _ in range(100):
                if os.path.exists(d + "/ready"):
                    break
                time.sleep(0.1)
            else:
                sys.exit("%s: not ready" % name)
        for name, (port, p) in srv.items():
            t0 = time.time()
            th = [threading.Thread(target=warm, args=(
                port, i * n // WARM_THREADS, (i + 1) * n // WARM_THREADS))
                for i in range(WARM_THREADS)]
            for t in th:
                t.start()
            for t in th:
                t.join()
            print("warm %s: %d objects in %.1f s" % (name, n, time.time() - t0),
                  flush=True)
        time.sleep(3)  # the writer's last batches
        res = {"before": [], "after": []}
        for r in range(rounds):
            for name in (("before", "after") if r % 2 == 0
                         else ("after", "before")):
                port, p = srv[name]
                c0 = cpu_s(p.pid)
                out = subprocess.run(
                    ["taskset", "-c", "0", "wrk", "-t1", "-c64", "-d5s",
                     "--timeout", "5s", "-s", lua, "http://127.0.0.1:%d/" % port],
                    capture_output=True, text=True, timeout=60).stdout
                c1 = cpu_s(p.pid)
                line = [l for l in out.splitlines() if l.startswith("RESULT ")]
                if not line:
                    sys.exit("wrk: no result: %s" % out[-300:])
                req, us, errs = (int(x) for x in line[-1].split()[1:])
                rps, per_cpu = req / (us / 1e6), req / max(c1 - c0, 0.01)
                res[name].append((rps, per_cpu))
                print("round %d %-6s %8.0f req/s %8.0f req/CPU-s errors %d"
                      % (r + 1, name, rps, per_cpu, errs), flush=True)
        for name in res:
            print("%-6s median %8.0f req/s %8.0f req/CPU-s" % (
                name, statistics.median(x[0] for x in res[name]),
                statistics.median(x[1] for x in res[name])))
        rr = [a[0] / b[0] for a, b in zip(res["after"], res["before"])]
        rc = [a[1] / b[1] for a, b in zip(res["after"], res["before"])]
        print("after/before per round: req/s %s" % " ".join("%.2f" % x for x in rr))
        print("after/before per round: req/CPU-s %s"
              % " ".join("%.2f" % x for x in rc))
        print("median after/before: req/s %.3f, req/CPU-s %.3f"
              % (statistics.median(rr), statistics.median(rc)))
    finally:
        stop(procs, tmp)


if __name__ == "__main__":
    main()
