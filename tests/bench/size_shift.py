#!/usr/bin/env python3
"""What the memory tier holds when the sizes of the objects shift.

    tests/bench/size_shift.py MEMORY DUR EDGED [EDGED...]
    tests/bench/size_shift.py 64M 10 /tmp/main/edged ./edged

Each edged in turn (on CPU 1, --threads 2, a memory tier of MEMORY, its store in a
fresh directory under STORE_DIR, default /dev/shm) behind one
tests/bench/bench_origin (BENCH_ORIGIN to name another) and wrk on CPU 0:
a warm-up of 64
objects of each size, then one phase per size of SIZES (default
"1024 4096 12288"), each `wrk -t1 -c16 -dDUR` of new keys of that size,
so each phase fills the tier and evicts the one before (a size named
twice: a tier that keeps evicting one size).  HOT="PCT N": in the
phases after the first, PCT per cent of the requests go to one of the
first N keys of the first phase (old objects that stay popular).  After each phase
one line: requests, requests per edged CPU-second (utime + stime during
the phase) and its minor page faults per request, the tier's objects and charge (memory_bytes), what its
size classes hold (memory_slab_bytes) and gave back
(memory_slab_given_back_bytes; absent before they gave anything back),
and the growth of edged's RssAnon over the warm-up's.  Loopback only;
every process started here is stopped at the end.
"""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from benchproc import cpu_s, free_port, minflt, rss_anon_kib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = r"""
local n = 0
function request()
  if math.random(100) <= %d then
    return wrk.format("GET", "/obj/%s-" .. math.random(%d) .. "?size=%d")
  end
  n = n + 1
  return wrk.format("GET", "/obj/%s-" .. n .. "?size=%d")
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %%d\n", summary.requests))
end
"""


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise SystemExit("%s: status %d" % (path, r.status))
        return body
    finally:
        c.close()


def run(binary, memory, dur, sizes, hot, origin_port, tmp):
    port, admin = free_port(), free_port()
    d = tempfile.mkdtemp(dir=tmp)
    p = subprocess.Popen(
        ["taskset", "-c", "1", binary, "--listen", "127.0.0.1:%d" % port,
         "--admin-listen", "127.0.0.1:%d" % admin,
         "--origin", "http://127.0.0.1:%d" % origin_port,
         "--cache-dir", d + "/cache", "--cache-size", "4G",
         "--memory-size", memory, "--threads", "2", "--log-level", "warn",
         "--ready-file", d + "/ready"],
        stdout=subprocess.DEVNULL, stderr=open(d + "/err", "w"))
    try:
        for _ in range(100):
            if os.path.exists(d + "/ready"):
                break
            time.sleep(0.1)
        else:
            raise SystemExit("%s: not ready" % binary)
        for size in sizes:
            for i in range(64):
                get(port, "/obj/warm%d-%d?size=%d" % (size, i, size))
        base = rss_anon_kib(p.pid)
        print("%s, memory_size %s:" % (binary, memory), flush=True)
        for k, size in enumerate(sizes):
            lua = os.path.join(d, "p%d.lua" % k)
            with open(lua, "w") as f:
                f.write(LUA % (hot[0] if k > 0 else 0, "p0-s%d" % sizes[0],
                               max(hot[1], 1), sizes[0], "p%d-s%d" % (k, size),
                               size))
            c0, f0 = cpu_s(p.pid), minflt(p.pid)
            out = subprocess.run(
                ["taskset", "-c", "0", "wrk", "-t1", "-c16", "-d%ds" % dur, "--timeout", "5s",
                 "-s", lua, "http://127.0.0.1:%d/" % port],
                capture_output=True, text=True, timeout=dur + 60).stdout
            n = [int(l.split()[1]) for l in out.splitlines()
                 if l.startswith("RESULT")][0]
            c1, f1 = cpu_s(p.pid), minflt(p.pid)
            time.sleep(1)
            st = json.loads(get(admin, "/stats"))["cache"]
            print("  %5d B: %7d requests, %6d per edged CPU-s, %.2f minor "
                  "faults each, tier %6d objects, charged %5.1f MiB, slab "
                  "%5.1f MiB, given back %6.1f MiB, RssAnon +%5.1f MiB" % (
                      size, n, n / max(c1 - c0, 0.01), (f1 - f0) / max(n, 1),
                      st["memory_objects"],
                      st["memory_bytes"] / 2**20,
                      st["memory_slab_bytes"] / 2**20,
                      st.get("memory_slab_given_back_bytes", 0) / 2**20,
                      (rss_anon_kib(p.pid) - base) / 1024), flush=True)
    finally:
        p.terminate()
        p.wait(30)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    memory, dur = sys.argv[1], int(sys.argv[2])
    sizes = [int(s) for s in os.environ.get(
        "SIZES", "1024 4096 12288").split()]
    hot = [int(s) for s in os.environ.get("HOT", "0 0").split()]
    origin = os.environ.get("BENCH_ORIGIN") or os.path.join(
        HERE, "bench_origin")
    tmp = tempfile.mkdtemp(prefix="size-shift-",
                           dir=os.environ.get("STORE_DIR", "/dev/shm"))
    op = free_port()
    o = subprocess.Popen(["taskset", "-c", "0", origin, str(op)])
    try:
        time.sleep(0.3)
        for b in sys.argv[3:]:
            run(b, memory, dur, sizes, hot, op, tmp)
    finally:
        o.terminate()
        o.wait(30)
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
