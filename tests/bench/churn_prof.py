#!/usr/bin/env python3
"""Where a churn request's CPU goes, per server: perf samples per 1,000
responses, by the kernel function they fell under.

    tests/bench/churn_prof.py OUTDIR NAME=CMD [NAME=CMD ...]
    tests/bench/churn_prof.py /tmp/prof main='/tmp/main/edged --threads 2' \\
        branch='./edged --threads 2' nginx=nginx

The servers are started as tests/bench/churn_where.py starts them (each on
CPU 1, wrk -t1 -c64 with "Connection: close" on CPU 0, "nginx" is
nginx-nosf as the shared harness configures it).  Each in turn gets wrk for
8 s, of which the middle 4 s are sampled with `perf record -e cpu-clock
-F 4999 -g` on the server's processes (OUTDIR/NAME.data, for perf report)
while `perf stat` counts the responses written (sendmsg + writev) in the
same window.  Printed per server: the samples per 1,000 responses, all and
user space, and, for each function in FUNCS, those that had it on the stack
(perf report --children: a call's whole cost, its softirq work included).
One sample is 0.2 us of CPU per request at 1,000 requests.  Needs perf
with the right to trace (root).  Loopback only; every process started here
is stopped at the end.
"""
import os
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import churn_where  # noqa: E402
from benchproc import stop  # noqa: E402

FUNCS = ("__x64_sys_accept4", "__x64_sys_recvfrom", "__sys_sendmsg",
         "do_writev", "__x64_sys_close", "__x64_sys_epoll_wait",
         "__x64_sys_epoll_ctl", "__x64_sys_pread64", "__x64_sys_sched_yield",
         "schedule", "exit_to_user_mode_loop")
SECS = 4


def sample(pids, data):
    """perf record of <pids> into <data> for SECS s; the responses perf
    stat counted meanwhile."""
    st = subprocess.Popen(
        ["perf", "stat", "-x,", "-e",
         "syscalls:sys_enter_sendmsg,syscalls:sys_enter_writev",
         "-p", pids, "--", "sleep", str(SECS)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4999",
                    "-g", "-p", pids, "-o", data, "--", "sleep", str(SECS)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=SECS + 30, check=True)
    err = st.communicate(timeout=SECS + 30)[1]
    return sum(int(f[0]) for f in (line.split(",") for line in
                                   err.splitlines()) if f[0].isdigit())


def shares(data, children):
    """{symbol or dso: percent of samples} from perf report."""
    argv = ["perf", "report", "-i", data, "--stdio", "-g", "none"]
    argv += ["--children", "--sort", "sym"] if children else \
        ["--no-children", "--sort", "dso"]
    out = subprocess.run(argv, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout
    got = {}
    for line in out.splitlines():
        f = line.split()
        if not f or line.startswith("#") or not f[0].endswith("%"):
            continue
        got[f[-1]] = float(f[0].rstrip("%"))
    return got


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    outdir = sys.argv[1]
    specs = [a.split("=", 1) for a in sys.argv[2:]]
    os.makedirs(outdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="churn-prof.")
    procs = []
    try:
        servers = churn_where.start_all(specs, work, procs)
        rows = {}
        for name, p, port in servers:
            wrk = churn_where.churn_load(port, SECS + 4)
            time.sleep(2)
            data = os.path.join(outdir, name + ".data")
            pids = ",".join(str(x) for x in churn_where.tree(p.pid))
            n = sample(pids, data)
            wrk.wait(timeout=SECS + 30)
            total = int(subprocess.run(
                ["perf", "script", "-i", data, "-F", "period"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True).stdout.count("\n"))
            per = 1000.0 * total / max(n, 1)
            dso = shares(data, False)
            sym = shares(data, True)
            user = 100.0 - dso.get("[kernel.kallsyms]", 0.0)
            rows[name] = [n, per, per * user / 100] + \
                [per * sym.get(f, 0.0) / 100 for f in FUNCS]
        names = [s[0] for s in servers]
        print("%-26s" % "per 1,000 responses" +
              "".join("%12s" % n for n in names))
        labels = ["responses sampled", "all samples", "user space"] + \
            list(FUNCS)
        for i, label in enumerate(labels):
            print("%-26s" % label + "".join(
                "%12.0f" % rows[n][i] if i == 0 else "%12.1f" % rows[n][i]
                for n in names))
    finally:
        stop(procs, work)


if __name__ == "__main__":
    main()
