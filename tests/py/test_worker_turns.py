#!/usr/bin/env python3
"""Story: two busy workers on one core take turns, not kernel ticks.

edged runs two workers pinned to one CPU, as the benchmark runs them, and
h2load on another CPU keeps both busy with 1 KiB hits on 16 keep-alive
connections, 4 pipelined on each. A busy worker never waits in epoll_wait,
so if it did not hand the core over itself the kernel would switch between
the two only at its tick (4 ms at HZ=250), and every connection of the
other worker would wait that long: the p99 of hits. Instead, when
workers outnumber the CPUs edged may run on, once a millisecond a worker
that finds a sibling waiting for its CPU yields to it: /stats counts
worker_yields; a worker alone on its CPU never yields (its core would only
go to unrelated work). With the core to the workers alone, each
worker's mean time on the CPU per switch (/proc/PID/task/TID/schedstat:
run time / timeslices) stays well under a tick, where it could reach the
tick before; a loaded machine does not give the core to the workers alone
(other work cuts every slice short, main's too), and that part then skips.
A worker reads its sibling's /proc stat line through a descriptor it opens
once, not an open and a close per look (strace counts them; skipped
without strace).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

H2LOAD = shutil.which("h2load")
CONNS = 16          # client connections, spread by the kernel over workers
PIPELINE = 4        # requests in flight on each
LOAD_S = 3          # h2load's duration
RAMP_S = 0.5        # load before the measurement starts
MEASURE_S = 2.0
BUSY_SHARE = 0.9    # the workers must have had at least this share of
                    # the core: both always runnable, and nothing else
                    # there to cut their slices short
MAX_MEAN_SLICE_MS = 2.5  # the quantum and a turn, with room for ASan
TARGET = "/obj/turns?size=1024&ttl=600"


def cache_args():
    """A cache directory of the test's own: without one edged caches
    nothing and every request would be a miss."""
    return ["--cache-dir", os.path.join(et.mktemp("cache"), "c")]


def pinned_edge(o, cpu, *args, threads):
    """edged started on CPU <cpu> alone (it inherits this process's
    affinity, so it knows from the start whether its workers are crowded),
    with a cache directory and no access log."""
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        return et.Edge(o.url, *cache_args(), *args, threads=threads,
                       access_log=False)
    finally:
        os.sched_setaffinity(0, mine)


def worker_tids(pid):
    """{tid: name} of edged's worker threads (named edged-worker-N)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
        except OSError:
            continue
        if name.startswith("edged-worker-"):
            out[int(tid)] = name
    return out


def schedstat(pid, tid):
    """(ns on the CPU, ns waiting to run, timeslices) of one thread."""
    with open("/proc/%d/task/%d/schedstat" % (pid, tid)) as f:
        run_ns, wait_ns, slices = (int(x) for x in f.read().split())
    return run_ns, wait_ns, slices


@et.timeout(60)
def test_busy_workers_on_one_core_take_turns():
    if H2LOAD is None:
        raise et.Skip("h2load (nghttp2-client) is not installed")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise et.Skip("needs two CPUs: one for edged, one for the clients")
    if not os.path.exists("/proc/self/schedstat"):
        raise et.Skip("no /proc/PID/schedstat (CONFIG_SCHED_INFO)")
    edge_cpu, client_cpus = cpus[-1], set(cpus[:-1])
    mine = os.sched_getaffinity(0)
    with et.Origin() as o, pinned_edge(o, edge_cpu, threads=2) as e:
        try:
            os.sched_setaffinity(0, client_cpus)
            tids = worker_tids(e.pid)
            et.eq(len(tids), 2, "edged's named worker threads")
            for _ in range(2):
                r = e.request("GET", TARGET)
                et.eq(r.status, 200, "warm-up status")
            # h2load inherits this process's CPUs: the other ones.
            load = subprocess.Popen(
                [H2LOAD, "--h1", "-t1", "-c%d" % CONNS, "-m%d" % PIPELINE,
                 "-D%d" % LOAD_S,
                 "http://127.0.0.1:%d%s" % (e.port, TARGET)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                time.sleep(RAMP_S)
                before = {t: schedstat(e.pid, t) for t in tids}
                t0 = time.monotonic()
                time.sleep(MEASURE_S)
                wall_ns = (time.monotonic() - t0) * 1e9
                after = {t: schedstat(e.pid, t) for t in tids}
                out = load.communicate(timeout=LOAD_S + 20)[0].decode()
            finally:
                if load.poll() is None:
                    load.kill()
                    load.wait()
            m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, "
                          r"(\d+) succeeded", out)
            et.ok(m is not None and int(m.group(1)) > 0
                  and m.group(1) == m.group(2),
                  "every h2load request succeeded: %s" % out[-600:])
        finally:
            os.sched_setaffinity(0, mine)
        run_total = 0
        report = []
        for t, name in sorted(tids.items()):
            run_ns = after[t][0] - before[t][0]
            slices = after[t][2] - before[t][2]
            run_total += run_ns
            report.append((name, run_ns, slices))
        print("# %s requests; over %.1f s the workers had %.0f%% of CPU %d"
              % (m.group(1), wall_ns / 1e9, 100.0 * run_total / wall_ns,
                 edge_cpu))
        for name, run_ns, slices in report:
            print("# %s: %.0f ms on the CPU in %d timeslices, %.3f ms each"
                  % (name, run_ns / 1e6, slices,
                     run_ns / 1e6 / max(slices, 1)))
        if run_total < BUSY_SHARE * wall_ns:
            raise et.Skip("the workers had %.0f%% of their core (other work "
                          "on it, or too little load): no tick to measure"
                          % (100.0 * run_total / wall_ns))
        for name, run_ns, slices in report:
            et.ok(run_ns > 0 and slices > 0, "%s served load" % name)
            mean_ms = run_ns / 1e6 / slices
            et.ok(mean_ms < MAX_MEAN_SLICE_MS,
                  "%s ran %.3f ms per timeslice (at most %.1f ms): a busy "
                  "worker hands the core over every quantum"
                  % (name, mean_ms, MAX_MEAN_SLICE_MS))


def stats(aport):
    with et.Client(aport) as c:
        return json.loads(c.request("GET", "/stats").body)


def pinned_edge_under_load(o, threads, seconds):
    """edged with <threads> workers pinned to the last CPU, h2load on the
    others for <seconds>: /stats afterwards."""
    cpus = sorted(os.sched_getaffinity(0))
    aport = et.free_port()
    mine = os.sched_getaffinity(0)
    with pinned_edge(o, cpus[-1], "--admin-listen", "127.0.0.1:%d" % aport,
                     threads=threads) as e:
        try:
            os.sched_setaffinity(0, set(cpus[:-1]))  # and so h2load
            r = e.request("GET", TARGET)
            et.eq(r.status, 200, "warm-up status")
            out = subprocess.run(
                [H2LOAD, "--h1", "-t1", "-c%d" % CONNS, "-m%d" % PIPELINE,
                 "-D%d" % seconds, "http://127.0.0.1:%d%s" % (e.port, TARGET)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                timeout=seconds + 30).stdout.decode()
        finally:
            os.sched_setaffinity(0, mine)
        et.ok(re.search(r" 0 failed, 0 errored", out) is not None,
              "every h2load request succeeded: %s" % out[-600:])
        return stats(aport)


@et.timeout(60)
def test_a_waiting_sibling_gets_the_core():
    """Two workers on one CPU under load: a worker that finds its sibling
    waiting for the CPU hands it over (/stats worker_yields)."""
    if H2LOAD is None:
        raise et.Skip("h2load (nghttp2-client) is not installed")
    if len(os.sched_getaffinity(0)) < 2:
        raise et.Skip("needs two CPUs: one for edged, one for the clients")
    with et.Origin() as o:
        st = pinned_edge_under_load(o, 2, 2)
    print("# worker_yields %r over %d requests"
          % (st.get("worker_yields"), st["requests"]))
    et.ok(st.get("worker_yields", 0) > 0,
          "the workers handed the core to each other: %r"
          % st.get("worker_yields"))


@et.timeout(60)
def test_a_worker_alone_keeps_its_core():
    """One worker on its CPU is not crowded: it runs libevent's loop as
    before and never yields (a yield would only give its core to unrelated
    work)."""
    if H2LOAD is None:
        raise et.Skip("h2load (nghttp2-client) is not installed")
    if len(os.sched_getaffinity(0)) < 2:
        raise et.Skip("needs two CPUs: one for edged, one for the clients")
    with et.Origin() as o:
        st = pinned_edge_under_load(o, 1, 2)
    et.ok(st["requests"] > 1000, "load served: %r" % st["requests"])
    et.eq(st.get("worker_yields"), 0, "worker_yields")


@et.timeout(60)
def test_a_sibling_is_looked_at_through_one_descriptor():
    """Two workers on one CPU under load look at each other once a
    millisecond: each opens its sibling's stat file once and reads it
    again (pread) at every look."""
    if H2LOAD is None:
        raise et.Skip("h2load (nghttp2-client) is not installed")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise et.Skip("needs two CPUs: one for edged, one for the clients")
    mine = os.sched_getaffinity(0)
    with et.Origin() as o, pinned_edge(o, cpus[-1], threads=2) as e:
        with et.strace(e, "openat,pread64") as log:
            try:
                os.sched_setaffinity(0, set(cpus[:-1]))  # and so h2load
                out = subprocess.run(
                    [H2LOAD, "--h1", "-t1", "-c%d" % CONNS,
                     "-m%d" % PIPELINE, "-D2",
                     "http://127.0.0.1:%d%s" % (e.port, TARGET)],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    timeout=40).stdout.decode()
            finally:
                os.sched_setaffinity(0, mine)
        et.ok(re.search(r" 0 failed, 0 errored", out) is not None,
              "every h2load request succeeded: %s" % out[-600:])
        lines = et._read_file(log).splitlines()
        opens = [ln for ln in lines if "openat(" in ln and "/task/" in ln]
        looks = [ln for ln in lines if "pread64(" in ln]
        print("# %d opens of a stat file, %d reads" % (len(opens),
                                                       len(looks)))
        et.ok(len(looks) > 10, "the workers looked at each other: %d "
              "reads" % len(looks))
        et.ok(len(opens) <= 2, "each opened its sibling's stat file at "
              "most once: %s" % opens[:4])


def test_workers_default_to_the_cpus_edged_may_run_on():
    # Without `threads`, one worker per CPU of edged's affinity (taskset,
    # a container's cpuset), not per CPU online: a node given one CPU of
    # a larger host would otherwise crowd every worker onto it.
    with et.Origin() as o:
        with pinned_edge(o, 0, threads=None) as e:
            et.eq(len(worker_tids(e.proc.pid)), 1, "workers on one CPU")
        with et.Edge(o.url, threads=None) as e:
            et.eq(len(worker_tids(e.proc.pid)), len(os.sched_getaffinity(0)),
                  "workers on every CPU this test may use")


if __name__ == "__main__":
    et.main()
