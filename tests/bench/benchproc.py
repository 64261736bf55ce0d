"""What the Python benchmark scripts share: a free loopback port, a
process's CPU time, faults and memory read from /proc, and the stop of what
they started."""

import os
import shutil
import socket
import subprocess

TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def stat_fields(pid):
    """/proc/PID/stat's fields after the command name: [7] minor faults,
    [11] user and [12] system clock ticks of every thread, ended ones too."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_s(pid, which=(11, 12)):
    """CPU-seconds <pid> has used: user and system, or <which> of them."""
    f = stat_fields(pid)
    return sum(int(f[i]) for i in which) / TCK


def minflt(pid):
    return int(stat_fields(pid)[7])


def rss_anon_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise SystemExit("no RssAnon for %d" % pid)


def stop(procs, work):
    """Stop what a script started (killed if it lingers 20 s after a
    terminate) and remove its working directory."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    shutil.rmtree(work, ignore_errors=True)
