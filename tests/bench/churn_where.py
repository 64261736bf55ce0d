#!/usr/bin/env python3
"""Connection churn on several servers, interleaved: where the time goes.

    tests/bench/churn_where.py ROUNDS SECONDS NAME=CMD [NAME=CMD ...]
    tests/bench/churn_where.py 5 3 \\
        off='./edged --threads 2' defer='./edged --threads 2 \\
        --listen-defer-accept 1s' nginx=nginx nginx-def='nginx deferred'

Like hit_ab.py with BENCH_CLOSE=1: wrk -t1 -c64 on CPU 0 (BENCH_CONNS
sets the connections), one 1 KiB URL with "Connection: close",
tests/bench/bench_origin on CPU 0, each server on CPU 1.  Per run it also
prints wrk's own CPU (rusage of the child), the kernel's share of the
server's CPU, the server's voluntary context
switches (its workers' sleeps, so its wake-ups), the share of the run that
the server's threads and wrk waited runnable for a CPU (schedstat's run
delay; over 100% for several threads), the idle share of each core from
/proc/stat, and the change in the kernel's ListenOverflows and RetransSegs
(counted for the whole network namespace: other loopback traffic shows
there too).  A CMD not starting with "nginx" is an edged: --listen,
--origin, --cache-dir and --memory-size 2G are added.  CMD "nginx" or
"nginx deferred" is nginx-nosf as the shared harness configures it (2
workers, sendfile off, open_file_cache), its proxy_cache in the temporary
directory, "deferred" added to its listen.  Loopback only; every process
started here is stopped at the end, and its temporary directory removed.
"""
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import benchproc  # noqa: E402
from benchproc import free_port, stop  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

NGINX_CONF = """user root;
worker_processes 2;
worker_rlimit_nofile 16384;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    sendfile off; tcp_nopush off; tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    open_file_cache max=10000 inactive=120s;
    open_file_cache_valid 120s;
    open_file_cache_min_uses 1;
    proxy_cache_path {d}/cache levels=1:2 keys_zone=edge:16m
        inactive=1d use_temp_path=off;
    upstream origin {{ server 127.0.0.1:{op}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096 {defer};
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache edge;
            proxy_cache_lock on;
            proxy_buffers 32 8k;
        }}
    }}
}}
"""


def tree(pid):
    """<pid> and its children (nginx's workers)."""
    out = [pid]
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def cpu_s(pid, which=(11, 12)):
    """CPU-seconds of <pid>'s tree: user and system, or <which> of them
    (11 user, 12 system)."""
    return sum(benchproc.cpu_s(p, which) for p in tree(pid))


def vcsw(pid):
    """Voluntary context switches of every thread of <pid>'s tree."""
    n = 0
    for p in tree(pid):
        for t in os.listdir("/proc/%d/task" % p):
            with open("/proc/%d/task/%s/status" % (p, t)) as f:
                m = re.search(r"^voluntary_ctxt_switches:\s+(\d+)", f.read(),
                              re.M)
                n += int(m.group(1))
    return n


def run_delay(pid):
    """Nanoseconds the threads of <pid>'s tree have waited for a CPU while
    runnable (schedstat's second field)."""
    n = 0
    for p in tree(pid):
        try:
            for t in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/schedstat" % (p, t)) as f:
                    n += int(f.read().split()[1])
        except OSError:
            pass
    return n


def tcp_counts():
    """The kernel's ListenOverflows and RetransSegs (the whole namespace:
    other loopback traffic counts too)."""
    got = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        lines = open(path).read().splitlines()
        for names, vals in zip(lines[::2], lines[1::2]):
            for k, v in zip(names.split()[1:], vals.split()[1:]):
                got[names.split()[0] + k] = int(v)
    return got["TcpExt:ListenOverflows"], got["Tcp:RetransSegs"]


def cores():
    """{cpu: (idle ticks, total ticks)} for cpu0 and cpu1."""
    res = {}
    for line in open("/proc/stat"):
        m = re.match(r"cpu([01]) (.*)", line)
        if m:
            v = [int(x) for x in m.group(2).split()]
            res[int(m.group(1))] = (v[3] + v[4], sum(v[:8]))
    return res


def wait_port(port):
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit("not listening: %d" % port)


def start(name, cmd, d, op, procs):
    port = free_port()
    argv = cmd.split()
    if argv[0] == "nginx":
        with open(d + "/nginx.conf", "w") as f:
            f.write(NGINX_CONF.format(d=d, op=op, port=port,
                                      defer=" ".join(argv[1:])))
        argv = ["nginx", "-e", d + "/error.log", "-c", d + "/nginx.conf",
                "-g", "daemon off;"]
    else:
        argv += ["--listen", "127.0.0.1:%d" % port, "--origin",
                 "http://127.0.0.1:%d" % op, "--cache-dir", d + "/cache",
                 "--memory-size", "2G", "--log-level", "warn"]
    p = subprocess.Popen(["taskset", "-c", "1"] + argv,
                         stdout=open(d + "/log", "w"),
                         stderr=subprocess.STDOUT)
    procs.append(p)
    wait_port(port)
    for _ in range(3):
        subprocess.run(["curl", "-sf", "-o", "/dev/null",
                        "http://127.0.0.1:%d/obj/ab?size=1024" % port],
                       check=True)
    return p, port


def churn_load(port, secs, stdout=subprocess.DEVNULL):
    """wrk -t1 on CPU 0 for <secs>: the 1 KiB object start() cached, each
    request on a connection of its own ("Connection: close"), over
    BENCH_CONNS (64) connections at once."""
    return subprocess.Popen(
        ["taskset", "-c", "0", "wrk", "-t1",
         "-c%s" % os.environ.get("BENCH_CONNS", "64"), "-d%ds" % secs,
         "-H", "Connection: close",
         "http://127.0.0.1:%d/obj/ab?size=1024" % port],
        stdout=stdout, text=True)


def run_wrk(port, secs):
    p = churn_load(port, secs, subprocess.PIPE)
    # wrk's wait for a CPU, sampled until it exits (cumulative).
    delay = 0
    while True:
        pid, _, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            break
        delay = max(delay, run_delay(p.pid))
        time.sleep(0.1)
    p.returncode = 0
    out = p.stdout.read()
    return out, ru.ru_utime + ru.ru_stime, delay


def start_all(specs, work, procs):
    """bench_origin on CPU 0, then each (NAME, CMD) of <specs> as start()
    starts it, in a directory of its own under <work>; every process goes
    into <procs>.  Returns [(name, process, port)]."""
    op = free_port()
    procs.append(subprocess.Popen(
        ["taskset", "-c", "0",
         os.environ.get("BENCH_ORIGIN",
                        os.path.join(HERE, "bench_origin")), str(op)]))
    time.sleep(0.3)
    servers = []
    for name, cmd in specs:
        d = os.path.join(work, name)
        os.mkdir(d)
        p, port = start(name, cmd, d, op, procs)
        servers.append((name, p, port))
    return servers

def main():
    if len(sys.argv) < 4 or shutil.which("wrk") is None:
        sys.exit(__doc__)
    rounds, secs = int(sys.argv[1]), int(sys.argv[2])
    specs = [a.split("=", 1) for a in sys.argv[3:]]
    work = tempfile.mkdtemp(prefix="churn-where.")
    procs = []
    cols = ("req/s", "req/srv-CPU-s", "srv us/req", "wrk us/req",
            "srv sys%", "wakeups/req", "srv wait%", "wrk wait%", "cpu0 idle%",
            "cpu1 idle%", "overflows", "retrans")
    try:
        servers = start_all(specs, work, procs)
        res = {}
        print("%-10s %s" % ("", " ".join("%13s" % c for c in cols)))
        for r in range(rounds):
            order = servers[r % len(servers):] + servers[:r % len(servers)]
            for name, p, port in order:
                c0, w0, k0 = cpu_s(p.pid), vcsw(p.pid), cores()
                s0 = cpu_s(p.pid, (12,))
                d0, t0 = run_delay(p.pid), tcp_counts()
                out, wrk_cpu, wrk_delay = run_wrk(port, secs)
                d1, t1 = run_delay(p.pid), tcp_counts()
                used = max(cpu_s(p.pid) - c0, 1e-9)
                sys_used = cpu_s(p.pid, (12,)) - s0
                w1, k1 = vcsw(p.pid), cores()
                n = int(re.search(r"(\d+) requests in", out).group(1))
                rps = float(re.search(r"Requests/sec:\s+([\d.]+)",
                                      out).group(1))
                bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
                if bad:
                    sys.exit("%s: %s non-2xx answers" % (name, bad.group(1)))
                idle = [100.0 * (k1[c][0] - k0[c][0]) /
                        max(k1[c][1] - k0[c][1], 1) for c in (0, 1)]
                row = (rps, n / used, 1e6 * used / n, 1e6 * wrk_cpu / n,
                       100 * sys_used / used, (w1 - w0) / n, (d1 - d0) / 1e7 / secs,
                       wrk_delay / 1e7 / secs, idle[0], idle[1],
                       t1[0] - t0[0], t1[1] - t0[1])
                res.setdefault(name, []).append(row)
                print("%-10s %s" % (name, " ".join(
                    "%13.2f" % x if x < 100 else "%13.0f" % x for x in row)),
                    flush=True)
        print("medians (round %d x %d s):" % (rounds, secs))
        for name, _, _ in servers:
            med = [statistics.median(x[i] for x in res[name])
                   for i in range(len(cols))]
            print("%-10s %s" % (name, " ".join(
                "%13.2f" % x if x < 100 else "%13.0f" % x for x in med)))
    finally:
        stop(procs, work)


if __name__ == "__main__":
    main()
