"""The cache survives restarts and kill -9, stays within its disk and
memory budgets, and never turns a full store into a client error.

Each story fills the cache through the real edged from the test origin,
then checks what the next edged on the same --cache-dir serves (and that
the origin saw no second request for what had been stored)."""
import json
import os
import signal
import sys
import time

sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402


def admin_args():
    port = et.free_port()
    return port, ["--admin-listen", "127.0.0.1:%d" % port]


def stats(port):
    with et.Client(port) as c:
        r = c.request("GET", "/stats")
        et.eq(r.status, 200, "stats status")
        return json.loads(r.body)


def cache_dir():
    d = os.path.join(et.mktemp("cache"), "c")
    return d


def get(e, path, size):
    r = e.request("GET", path)
    et.eq(r.status, 200, "status of %s" % path)
    et.check_pattern(r.body, size)
    return r


def test_restart_keeps_objects_and_their_age():
    d = cache_dir()
    with et.Origin() as o:
        port, extra = admin_args()
        with et.Edge(o.url, "--cache-dir", d, *extra) as e:
            r = get(e, "/obj/keep?size=5000&ttl=300", 5000)
            et.ok("stored" in r.header("cache-status"), r.header("cache-status"))
            et.wait_for(lambda: stats(port)["cache"]["objects"] >= 1,
                        what="the object is committed")
        time.sleep(1.1)
        port, extra = admin_args()
        with et.Edge(o.url, "--cache-dir", d, *extra) as e:
            r = get(e, "/obj/keep?size=5000&ttl=300", 5000)
            et.ok(r.header("cache-status").startswith("edged; hit"),
                  "a hit after restart: %s" % r.header("cache-status"))
            et.ok(int(r.header("age")) >= 1, "Age carried over: %s" % r.header("age"))
            s = stats(port)
            et.eq(s["cache"]["hits_disk"], 1, "served from disk")
        et.eq(o.count("/obj/keep"), 1, "origin requests")


@et.timeout(120)
def test_kill9_loses_nothing_committed_and_shows_nothing_partial():
    d = cache_dir()
    n = 40
    with et.Origin() as o:
        port, extra = admin_args()
        e = et.Edge(o.url, "--cache-dir", d, *extra)
        try:
            for i in range(n):
                get(e, "/obj/k%d?size=%d&ttl=300" % (i, 1000 + i * 3000),
                    1000 + i * 3000)
            et.wait_for(lambda: stats(port)["cache"]["objects"] >= n,
                        timeout=10, what="every object committed")
            # More fills in flight, then kill -9 while they are stored.
            for i in range(n, n + 20):
                get(e, "/obj/k%d?size=300000&ttl=300" % i, 300000)
        finally:
            e.kill()
        before = o.count()
        port, extra = admin_args()
        with et.Edge(o.url, "--cache-dir", d, *extra) as e:
            for i in range(n):
                r = get(e, "/obj/k%d?size=%d&ttl=300" % (i, 1000 + i * 3000),
                        1000 + i * 3000)
                et.ok(r.header("cache-status").startswith("edged; hit"),
                      "committed object %d survived kill -9" % i)
            # Whatever was in flight is either whole or absent.
            for i in range(n, n + 20):
                get(e, "/obj/k%d?size=300000&ttl=300" % i, 300000)
            et.eq(stats(port)["cache"]["corrupt"], 0, "no corrupt records")
        et.ok(o.count() - before <= 20, "only in-flight objects refetched")


@et.timeout(120)
def test_small_disk_budget_evicts_without_client_errors():
    d = cache_dir()
    with et.Origin() as o:
        port, extra = admin_args()
        with et.Edge(o.url, "--cache-dir", d, "--cache-size", "4M",
                     "--memory-size", "1M", *extra) as e:
            for i in range(200):
                get(e, "/obj/ev%d?size=65536&ttl=300" % i, 65536)
            et.wait_for(lambda: stats(port)["cache"]["puts"] +
                        stats(port)["cache"]["put_drops"] >= 200,
                        timeout=10, what="every store handled")
            s = stats(port)["cache"]
            et.ok(s["evictions"] > 0, "evictions: %r" % s)
            et.ok(s["bytes"] <= 4 * 1024 * 1024, "accounted bytes within budget: %r" % s)
            et.ok(s["memory_bytes"] <= 1024 * 1024, "memory tier within budget: %r" % s)
            # The most recent objects are still served from cache (a put
            # that met a full map is dropped, so not necessarily all).
            hits = 0
            for i in range(190, 200):
                r = get(e, "/obj/ev%d?size=65536&ttl=300" % i, 65536)
                hits += r.header("cache-status").startswith("edged; hit")
            et.ok(hits >= 7, "%d of the 10 most recent objects cached" % hits)


@et.timeout(120)
def test_memory_tier_stays_bounded_under_load():
    d = cache_dir()
    with et.Origin() as o:
        port, extra = admin_args()
        with et.Edge(o.url, "--cache-dir", d, "--memory-size", "2M",
                     *extra) as e:
            peak = 0
            for rnd in range(3):
                for i in range(100):
                    get(e, "/obj/m%d?size=40000&ttl=300" % i, 40000)
                peak = max(peak, stats(port)["cache"]["memory_bytes"])
            et.ok(peak <= 2 * 1024 * 1024, "memory tier peak %d <= 2 MiB" % peak)
            et.ok(stats(port)["cache"]["hits_disk"] > 0,
                  "objects beyond the memory budget come from disk")
            et.eq(o.count(), 100, "each object fetched once")


def test_writer_thread_is_named():
    """The writer thread is named, so that a thread listing tells its
    share of the CPU apart from the workers' (tests/bench/miss_store.sh
    reads it so)."""
    with et.Origin() as o:
        with et.Edge(o.url, "--cache-dir", cache_dir()) as e:
            names = []
            for tid in os.listdir("/proc/%d/task" % e.pid):
                with open("/proc/%d/task/%s/comm" % (e.pid, tid)) as f:
                    names.append(f.read().strip())
            et.eq(names.count("cache-writer"), 1,
                  "one thread named cache-writer among %s" % names)


if __name__ == "__main__":
    et.main()
