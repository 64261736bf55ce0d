#!/usr/bin/env python3
"""System calls per churn request on several servers, counted by the
kernel's tracepoints.

    tests/bench/churn_sys.py ROUNDS SECONDS NAME=CMD [NAME=CMD ...]
    tests/bench/churn_sys.py 3 3 main='/tmp/main/edged --threads 2' \\
        branch='./edged --threads 2' nginx=nginx

The servers are started as tests/bench/churn_where.py starts them (each on
CPU 1; "nginx" is nginx-nosf as the shared harness configures it), and
each in turn gets wrk -t1 -c64 with "Connection: close" on CPU 0 for
SECONDS + 2 s, of which `perf stat` counts the middle SECONDS on the
server's threads: every system call (raw_syscalls:sys_enter), those of
each name below, the failed accept4, recvfrom and epoll_ctl, and the
context switches.  Counts are per response written (sendmsg + writev),
medians over the rounds.  strace -c (tests/bench/sys_load.sh) slows the
server enough to change what it does: batches of accepts grow, and the
client has written its request by the time a connection is read; the
tracepoints cost little enough to leave that as it is.  Needs perf with
the right to trace (root).  Loopback only; every process started here is
stopped at the end.
"""
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import churn_where  # noqa: E402
from benchproc import stop  # noqa: E402

CALLS = ("accept4", "recvfrom", "readv", "sendmsg", "writev", "close",
         "epoll_wait", "epoll_ctl", "openat", "read", "pread64",
         "sched_yield")
FAILED = ("accept4", "recvfrom", "epoll_ctl")


def count(pids, secs):
    """{event: count} of `perf stat` on <pids> for <secs> seconds."""
    ev = ["-e", "raw_syscalls:sys_enter,sched:sched_switch," +
          ",".join("syscalls:sys_enter_" + c for c in CALLS)]
    for c in FAILED:
        ev += ["-e", "syscalls:sys_exit_" + c, "--filter", "ret < 0"]
    out = subprocess.run(
        ["perf", "stat", "-x,", "-p", ",".join(str(p) for p in pids)] + ev +
        ["--", "sleep", str(secs)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        timeout=secs + 30).stderr
    got = {}
    for line in out.splitlines():
        f = line.split(",")
        if len(f) > 3 and f[0].isdigit():
            got[f[2]] = int(f[0])
    if "raw_syscalls:sys_enter" not in got:
        sys.exit("perf stat counted nothing:\n" + out)
    return got


def row(got):
    """(label, calls per response) from one count."""
    n = max(got.get("syscalls:sys_enter_sendmsg", 0) +
            got.get("syscalls:sys_enter_writev", 0), 1)
    res = [("all", got["raw_syscalls:sys_enter"] / n)]
    for c in CALLS:
        res.append((c, got.get("syscalls:sys_enter_" + c, 0) / n))
    for c in FAILED:
        res.append((c + " failed", got.get("syscalls:sys_exit_" + c, 0) / n))
    res.append(("switches", got.get("sched:sched_switch", 0) / n))
    res.append(("responses", n))
    return res


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rounds, secs = int(sys.argv[1]), int(sys.argv[2])
    specs = [a.split("=", 1) for a in sys.argv[3:]]
    work = tempfile.mkdtemp(prefix="churn-sys.")
    procs = []
    try:
        servers = churn_where.start_all(specs, work, procs)
        res = {}
        for r in range(rounds):
            order = servers[r % len(servers):] + servers[:r % len(servers)]
            for name, p, port in order:
                wrk = churn_where.churn_load(port, secs + 2)
                time.sleep(1)
                got = count(churn_where.tree(p.pid), secs)
                wrk.wait(timeout=secs + 30)
                res.setdefault(name, []).append(row(got))
        labels = [k for k, _ in res[servers[0][0]][0]]
        print("%-16s %s" % ("per response", " ".join(
            "%10s" % n for n, _, _ in servers)))
        for i, k in enumerate(labels):
            print("%-16s %s" % (k, " ".join(
                "%10.3f" % statistics.median(x[i][1] for x in res[n])
                if k != "responses" else
                "%10d" % statistics.median(x[i][1] for x in res[n])
                for n, _, _ in servers)))
        print("(medians of %d rounds x %d s)" % (rounds, secs))
    finally:
        stop(procs, work)


if __name__ == "__main__":
    main()
