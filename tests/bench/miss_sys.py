#!/usr/bin/env python3
"""What the kernel does per miss, on several servers: system calls by
name, the failed ones, context switches and page faults, counted by the
kernel's tracepoints.

    tests/bench/miss_sys.py ROUNDS SECONDS NAME=CMD [NAME=CMD ...]
    tests/bench/miss_sys.py 3 3 main='/tmp/main/edged --threads 2' \\
        branch='./edged --threads 2' ats=ats

Each server runs on CPU 1, tests/bench/bench_origin and wrk -t1 -c64 with
tests/bench/miss.lua (every request a new 1 KiB key) on CPU 0, the stores
on tmpfs (BENCH_DIR, default /dev/shm) as the shared harness has them.  A
CMD not starting with "ats" is an edged: --listen, --origin, --cache-dir,
--cache-size 4G and --memory-size 2G are added.  CMD "ats" is Traffic
Server as the shared harness configures it (2 event threads, a 4 GB RAM
cache in front of a 4 GB cache file, logging off), every thread of it
re-pinned to CPU 1 once it is up.

Each server in turn is loaded, and from a second into the load `perf
stat` counts SECONDS on every thread of the server and of the origin:
every system call (raw_syscalls:sys_enter), each name that a first pass
of SECONDS found the server making, the failed calls of each name (exit
with ret < 0), context switches and minor faults; and each thread's user
and system CPU from /proc, read at the window's start and end (in clock
ticks: a few per cent).  A figure per miss is the server's count divided
by the responses the origin wrote in the same window (its sendmsg and
writev: one per response).  Medians over the rounds; with BY_THREAD=1
also per thread name (digits dropped).  With PROFILE=1 each round also
records the server's threads (perf record, cpu-clock at 4,999 Hz of their
own CPU time, so time waiting for a CPU is not sampled) and counts samples
per 1,000 misses by where the kernel was entered: each system call, page
faults, interrupts, or user space.  Faults that MADV_POPULATE_* or other
kernel code takes on a thread's behalf are not in "minor-faults" (perf
counts only those taken from user space), but their time is sampled.
strace -c would slow the server enough to change what it does.  Needs
perf with the right to trace (root).  Loopback only; every process
started here is stopped at the end and its directory removed.
"""
import collections
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from benchproc import TCK, free_port, stop  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ORIGIN_WRITES = ("sendmsg", "writev")

ATS_RECORDS = """\
CONFIG proxy.config.admin.user_id STRING #-1
CONFIG proxy.config.exec_thread.autoconfig INT 0
CONFIG proxy.config.exec_thread.limit INT 2
CONFIG proxy.config.exec_thread.affinity INT 0
CONFIG proxy.config.accept_threads INT 1
CONFIG proxy.config.task_threads INT 2
CONFIG proxy.config.cache.threads_per_disk INT 8
CONFIG proxy.config.http.server_ports STRING {port}:ip-in=127.0.0.1
CONFIG proxy.config.http.insert_request_via_str INT 0
CONFIG proxy.config.http.insert_response_via_str INT 0
CONFIG proxy.config.http.cache.http INT 1
CONFIG proxy.config.http.cache.required_headers INT 2
CONFIG proxy.config.reverse_proxy.enabled INT 1
CONFIG proxy.config.url_remap.remap_required INT 1
CONFIG proxy.config.log.logging_enabled INT 0
CONFIG proxy.config.diags.debug.enabled INT 0
CONFIG proxy.config.net.connections_throttle INT 10000
CONFIG proxy.config.net.max_connections_in INT 10000
CONFIG proxy.config.http.keep_alive_no_activity_timeout_in INT 120
CONFIG proxy.config.cache.ram_cache.size INT 4294967296
CONFIG proxy.config.cache.ram_cache_cutoff INT 4194304
CONFIG proxy.config.cache.min_average_object_size INT 4096
CONFIG proxy.config.cache.enable_read_while_writer INT 1
CONFIG proxy.config.http.background_fill_active_timeout INT 0
CONFIG proxy.config.http.background_fill_completed_threshold FLOAT 0.000000
CONFIG proxy.config.cache.max_doc_size INT 0
CONFIG proxy.config.http.cache.max_open_read_retries INT 100
CONFIG proxy.config.http.cache.open_read_retry_time INT 10
"""

ATS_RUNROOT = """\
prefix: {d}
exec_prefix: /usr
bindir: /usr/bin
sbindir: /usr/sbin
sysconfdir: {d}/etc
datadir: {d}/var
includedir: /usr/include
libdir: /usr/lib/trafficserver
libexecdir: /usr/lib/trafficserver/modules
localstatedir: {d}/var
runtimedir: {d}/run
logdir: {d}/log
cachedir: {d}/cache
"""


def threads(pid):
    """The thread ids of <pid> and of its children."""
    out = []
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            out.append(int(t))
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                for c in f.read().split():
                    out += threads(int(c))
    except OSError:
        pass
    return out


def ready(port):
    for _ in range(300):
        r = subprocess.run(
            ["curl", "-s", "-m", "2", "-o", "/dev/null", "-w",
             "%{http_code}",
             "http://127.0.0.1:%d/obj/ready?size=16" % port],
            stdout=subprocess.PIPE, text=True)
        if r.stdout == "200":
            return True
        time.sleep(0.2)
    return False


def start(cmd, d, op, procs):
    """Start one server in <d>; returns (process, port)."""
    port = free_port()
    argv = cmd.split()
    if argv[0] == "ats":
        for sub in ("etc", "run", "log", "var", "cache"):
            os.mkdir(os.path.join(d, sub))
        shutil.copytree("/etc/trafficserver", d + "/etc", dirs_exist_ok=True)
        with open(d + "/etc/records.config", "w") as f:
            f.write(ATS_RECORDS.format(port=port))
        with open(d + "/etc/remap.config", "w") as f:
            f.write("map http://127.0.0.1:{p}/ http://127.0.0.1:{o}/\n"
                    "map / http://127.0.0.1:{o}/\n".format(p=port, o=op))
        with open(d + "/etc/storage.config", "w") as f:
            f.write(d + "/cache/ats-cache.db 4G\n")
        with open(d + "/etc/plugin.config", "w") as f:
            f.write("")
        with open(d + "/cache/ats-cache.db", "w") as f:
            f.truncate(4 << 30)
        with open(d + "/runroot.yaml", "w") as f:
            f.write(ATS_RUNROOT.format(d=d))
        argv = ["traffic_server", "--run-root=" + d + "/runroot.yaml"]
    else:
        argv[0] = os.path.abspath(argv[0]) if "/" in argv[0] else argv[0]
        argv += ["--listen", "127.0.0.1:%d" % port, "--origin",
                 "http://127.0.0.1:%d" % op, "--cache-dir", d + "/cache",
                 "--cache-size", "4G", "--memory-size", "2G",
                 "--log-level", "warn"]
    p = subprocess.Popen(["taskset", "-c", "1"] + argv, cwd=d,
                         stdout=open(d + "/out", "w"),
                         stderr=subprocess.STDOUT)
    procs.append(p)
    if not ready(port):
        with open(d + "/out") as f:
            sys.exit("%s: no answer on port %d:\n%s" % (cmd, port, f.read()))
    # Traffic Server binds its event threads to every CPU once they start.
    subprocess.run(["taskset", "-a", "-p", "-c", "1", str(p.pid)],
                   stdout=subprocess.DEVNULL, check=True)
    return p, port


def stat_path(tid):
    with open("/proc/%d/status" % tid) as f:
        tgid = re.search(r"^Tgid:\s+(\d+)", f.read(), re.M).group(1)
    return "/proc/%s/task/%d/stat" % (tgid, tid)


def perf_stat(tids, secs, events):
    """{tid: {event: count}} of `perf stat` on the threads <tids>, with
    "user us" and "system us": each thread's CPU in the same window (from
    /proc, read at its start and end)."""
    paths = " ".join(stat_path(t) for t in tids)
    run = subprocess.run(
        ["perf", "stat", "--per-thread", "-x,", "-t",
         ",".join(str(t) for t in tids)] + events +
        ["--", "sh", "-c", "cat %s; sleep %d; echo; cat %s 2>/dev/null" %
         (paths, secs, paths)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        timeout=secs + 120)
    out = run.stderr
    got = collections.defaultdict(collections.Counter)
    cpu = [{int(line.split()[0]): line.rsplit(")", 1)[1].split()
            for line in part.splitlines()}
           for part in run.stdout.split("\n\n")]
    for tid in set(cpu[0]) & set(cpu[1]):
        for key, i in (("user us", 11), ("system us", 12)):
            got[tid][key] = (int(cpu[1][tid][i]) -
                             int(cpu[0][tid][i])) * 1e6 / TCK
    for line in out.splitlines():
        f = line.split(",")
        if len(f) > 4 and re.match(r".*-\d+$", f[0]):
            n = int(f[1]) if f[1].isdigit() else 0  # "<not counted>": idle
            got[int(f[0].rsplit("-", 1)[1])][f[3]] += n
    if not got:
        sys.exit("perf stat counted nothing:\n" + out)
    return got


def seen_calls(tids, secs):
    """The names of the system calls <tids> make in <secs>."""
    names = set(ORIGIN_WRITES)
    for c in perf_stat(tids, secs, ["-e", "syscalls:sys_enter_*"]).values():
        names |= {e.split("sys_enter_", 1)[1] for e, n in c.items()
                  if n and "sys_enter_" in e}
    return sorted(names)


def comm(tid):
    """The thread's name without its digits: the workers as one."""
    try:
        with open("/proc/%d/comm" % tid) as f:
            return re.sub(r"[0-9]+", "", f.read().strip())
    except OSError:
        return "?"


def measure(srv_tids, origin_tids, secs, calls):
    """({thread name: {key: count per miss}}, misses) for the server's
    threads over <secs>; misses are the origin's responses."""
    ev = ["-e", "raw_syscalls:sys_enter,context-switches,minor-faults," +
          ",".join("syscalls:sys_enter_" + c for c in calls),
          "-e", ",".join("syscalls:sys_exit_" + c for c in calls),
          "--filter", "ret < 0"]
    got = perf_stat(srv_tids + origin_tids, secs, ev)
    misses = sum(got[t]["syscalls:sys_enter_" + c]
                 for t in origin_tids for c in ORIGIN_WRITES)
    per = collections.defaultdict(collections.Counter)
    for t in srv_tids:
        for e, n in got[t].items():
            e = e.replace("raw_syscalls:sys_enter", "all calls")
            e = e.replace("syscalls:sys_enter_", "")
            e = e.replace("syscalls:sys_exit_", "failed ")
            per[comm(t)][e] += n
    return per, max(misses, 1)


def where(stack):
    """Where a sample's kernel time was entered from: "user", "sys NAME"
    (the system call), "page fault", "irq NAME", or "other"."""
    kern = [sym for ip, sym in stack if ip >= 0xffff000000000000]
    if not kern:
        return "user"
    kern.reverse()  # from the entry inwards
    if kern[0].startswith("entry_SYSCALL"):
        for sym in kern[1:]:
            if sym in ("do_syscall_64", "x64_sys_call") or "thunk" in sym:
                continue
            return "sys " + re.sub(
                r"^_*(x64_sys_|do_sys_|sys_|do_|ksys_)?_*(sys_)?", "", sym)
    if any("page_fault" in sym for sym in kern):
        return "page fault"
    if kern[0].startswith("asm_sysvec_"):
        return "irq " + kern[0][len("asm_sysvec_"):]
    return "other"


def profile(srv_tids, origin_tids, secs, data):
    """({thread name: {where: samples}}, misses): `perf record` of the
    server's threads at 4,999 Hz of their own CPU time for <secs>, and the
    origin's responses meanwhile."""
    st = subprocess.Popen(
        ["perf", "stat", "-x,", "-t", ",".join(map(str, origin_tids)),
         "-e", ",".join("syscalls:sys_enter_" + c for c in ORIGIN_WRITES),
         "--", "sleep", str(secs)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    subprocess.run(["perf", "record", "-q", "-o", data, "-e", "cpu-clock",
                    "-F", "4999", "-g", "-t", ",".join(map(str, srv_tids)),
                    "--", "sleep", str(secs)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True, timeout=secs + 120)
    misses = sum(int(line.split(",")[0]) for line in
                 st.communicate(timeout=secs + 120)[1].splitlines()
                 if line.split(",")[0].isdigit())
    out = subprocess.run(["perf", "script", "-i", data, "-F",
                          "comm,ip,sym"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True,
                         check=True).stdout
    per = collections.defaultdict(collections.Counter)
    for sample in out.split("\n\n"):
        lines = sample.strip("\n").splitlines()
        if not lines:
            continue
        stack = [(int(f[0], 16), f[1] if len(f) > 1 else "?")
                 for f in (x.split() for x in lines[1:])]
        name = re.sub(r"[0-9]+", "", lines[0].strip().rsplit(" ", 1)[0])
        per[name][where(stack)] += 1
        per[name]["all samples"] += 1
    return per, max(misses, 1)


def load(port, tag, fn):
    """fn() while wrk asks <port> for new keys, from a second into the
    load; perf takes a while to set up its counters, so wrk is stopped
    (SIGINT, which it answers with its summary) when fn returns."""
    wrk = subprocess.Popen(
        ["taskset", "-c", "0", "wrk", "-t1", "-c64", "-d300s",
         "-s", os.path.join(HERE, "miss.lua"),
         "http://127.0.0.1:%d/" % port, "--", tag],
        stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        got = fn()
    finally:
        wrk.send_signal(signal.SIGINT)
        out = wrk.communicate(timeout=30)[0]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad or not re.search(r"(\d+) requests in", out):
        sys.exit("port %d: %s" % (port, out))
    return got


def main():
    if len(sys.argv) < 4 or shutil.which("wrk") is None:
        sys.exit(__doc__)
    rounds, secs = int(sys.argv[1]), int(sys.argv[2])
    specs = [a.split("=", 1) for a in sys.argv[3:]]
    # The stores on tmpfs, as the shared harness has them.
    work = tempfile.mkdtemp(prefix="miss-sys.", dir=os.environ.get(
        "BENCH_DIR", "/dev/shm"))
    procs, servers = [], []
    try:
        op = free_port()
        origin = subprocess.Popen(
            ["taskset", "-c", "0", os.environ.get(
                "BENCH_ORIGIN", os.path.join(HERE, "bench_origin")),
             str(op)])
        procs.append(origin)
        time.sleep(0.3)
        for name, cmd in specs:
            d = os.path.join(work, name)
            os.mkdir(d)
            p, port = start(cmd, d, op, procs)
            servers.append((name, p, port))
        res, prof = {}, {}
        calls = {}
        for r in range(rounds):
            order = servers[r % len(servers):] + servers[:r % len(servers)]
            for name, p, port in order:
                if name not in calls:
                    calls[name] = load(port, "%s-seen" % name, lambda: (
                        seen_calls(threads(p.pid), secs)))
                per, misses = load(port, "%s-%d" % (name, r), lambda: (
                    measure(threads(p.pid), threads(origin.pid), secs,
                            calls[name])))
                res.setdefault(name, []).append((per, misses))
                if os.environ.get("PROFILE") == "1":
                    got = load(port, "%s-p%d" % (name, r), lambda: (
                        profile(threads(p.pid), threads(origin.pid), secs,
                                os.path.join(work, "perf.data"))))
                    prof.setdefault(name, []).append(got)
        report(servers, res)
        if prof:
            print("\nperf samples (4,999 Hz) per 1,000 misses, by where "
                  "the kernel was entered:")
            report(servers, prof, "samples", 1000)
    finally:
        stop(procs, work)


def report(servers, res, unit="per miss", scale=1):
    """Per miss (per <scale> misses), medians over the rounds: the whole
    server, then (with BY_THREAD=1) each thread name; <unit> heads it."""
    names = [n for n, _, _ in servers]

    def med(name, pick):
        return statistics.median(scale * pick(per) / m for per, m in res[name])

    def total(key):
        return lambda per: sum(c[key] for c in per.values())

    keys = collections.Counter()
    for name in names:
        for per, m in res[name]:
            for c in per.values():
                for k, n in c.items():
                    keys[k] = max(keys[k], n / m)
    first = ["user us", "system us", "all calls", "context-switches",
             "minor-faults", "all samples"]
    calls = sorted((k for k in keys if k not in first and
                    not k.startswith("failed ")),
                   key=lambda k: -keys[k])
    rows = []
    for k in first + calls:
        rows.append(k)
        if keys.get("failed " + k, 0) > 0:
            rows.append("failed " + k)
    print("%-30s %s" % (unit, " ".join("%10s" % n for n in names)))
    for k in rows:
        v = [med(n, total(k)) for n in names]
        if max(v) >= 0.005:
            print("%-30s %s" % (k, " ".join("%10.3f" % x for x in v)))
    print("%-30s %s" % ("misses counted", " ".join(
        "%10d" % statistics.median(m for _, m in res[n]) for n in names)))
    if os.environ.get("BY_THREAD") != "1":
        return
    for name in names:
        tnames = sorted({t for per, _ in res[name] for t in per})
        print("\n%s, by thread:" % name)
        print("%-30s %s" % (unit, " ".join(
            "%14s" % t[:14] for t in tnames)))
        for k in rows:
            v = [med(name, lambda per, t=t, k=k: per[t][k]) for t in tnames]
            if max(v) >= 0.005:
                print("%-30s %s" % (k, " ".join("%14.3f" % x for x in v)))


if __name__ == "__main__":
    main()
