"""A herd over three edges costs the origin one request with a shield.

200 clients ask for the same uncached object at once, spread evenly over
three edged nodes; the origin takes 2 s to answer.  Without a shield each
edge coalesces its own clients into one fetch: three origin requests.
With one shield behind the three edges, each edge coalesces its clients
and the shield coalesces the three edges' misses: one origin request.
Every client gets the whole, correct body either way.  The test prints
the two counts (the figure in docs/shield.md):

    EDGED=$PWD/edged TESTS_SRCDIR=$PWD/tests python3 tests/py/test_shield_herd.py
"""

import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

CLIENTS = 200
SIZE = 50000


def node(origin_url, name, *args):
    return et.Edge(origin_url, "--cache-dir", et.mktemp("herd-" + name),
                   "--node-name", name, "--via", name, *args)


def herd(edges, path):
    """CLIENTS requests for <path>, round-robin over <edges>, released
    together; returns the responses (or exceptions)."""
    barrier = threading.Barrier(CLIENTS)
    results = [None] * CLIENTS

    def one(i):
        e = edges[i % len(edges)]
        try:
            c = e.connect(timeout=30)
            try:
                barrier.wait(timeout=30)
                results[i] = c.request("GET", path)
            finally:
                c.close()
        except Exception as ex:  # reported by the caller
            results[i] = ex

    threads = [threading.Thread(target=one, args=(i,))
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def check(results):
    for i, r in enumerate(results):
        et.ok(not isinstance(r, Exception) and r is not None,
              "client %d answered: %r" % (i, r))
        et.eq(r.status, 200, "client %d status" % i)
        et.check_pattern(r.body, SIZE)


@et.timeout(120)
def test_herd_without_shield():
    with et.Origin() as o, node(o.url, "e1") as e1, node(o.url, "e2") as e2, \
            node(o.url, "e3") as e3:
        path = "/obj/herd?ttl=60&delay_ms=2000&size=%d" % SIZE
        check(herd([e1, e2, e3], path))
        n = o.count()
        print("# figure: %d clients over 3 edges, no shield: %d origin "
              "requests" % (CLIENTS, n))
        et.eq(n, 3, "one origin request per edge")


@et.timeout(120)
def test_herd_with_shield():
    with et.Origin() as o, node(o.url, "s") as s:
        p = ["--parent-server", "http://127.0.0.1:%d" % s.port]
        with node(o.url, "e1", *p) as e1, node(o.url, "e2", *p) as e2, \
                node(o.url, "e3", *p) as e3:
            path = "/obj/herd?ttl=60&delay_ms=2000&size=%d" % SIZE
            results = herd([e1, e2, e3], path)
            check(results)
            n = o.count()
            print("# figure: %d clients over 3 edges, one shield: %d origin "
                  "requests" % (CLIENTS, n))
            et.eq(n, 1, "one origin request for the whole herd")
            collapsed = sum(1 for r in results
                            if "collapsed" in (r.header("Cache-Status") or ""))
            et.ok(collapsed >= CLIENTS - 3 - 3,
                  "the rest waited on shared fills (%d collapsed)"
                  % collapsed)


if __name__ == "__main__":
    et.main()
