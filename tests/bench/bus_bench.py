#!/usr/bin/env python3
"""bus_bench: figures of the purge bus for docs/fleet.md.

    EDGED=./edged TESTS_SRCDIR=./tests python3 tests/bench/bus_bench.py \
        [--purges 1000] [--catchup 100000]

Starts one redis-server, one origin and three nodes (edged + purged) on
loopback, as the tests do (tests/py/edgetest.py), then measures:

1. publish-to-applied latency on all three nodes: --purges POST
   /purge?wait=10s to node 0, one after another, each timed from the
   request to its answer, which comes once every node applied the purge
   (so it includes the confirmation's registry read: an upper bound);
   and the nodes' own histogram (entry ID time to applied, ms buckets).
2. catch-up: node 2 is stopped, --catchup purges are appended to the
   stream (pipelined XADD, as a pipeline would publish), and the time
   from node 2's restart until it has applied them all is measured.
"""
import argparse
import json
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "py"))
sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402

STREAM = "bench"


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def fleet(n):
    with et.Client(n.pport) as c:
        r = c.request("GET", "/fleet",
                      [("Authorization", "Bearer " + pn.TOKEN)])
    return json.loads(r.body)


def xadd_many(port, n, body):
    """n XADDs on one connection, pipelined in batches of 1,000."""
    cmd = et._resp_encode(["XADD", STREAM, "*", "v", "1", "node", "bench",
                           "purge", body])
    with socket.create_connection(("127.0.0.1", port), 30) as s:
        r = et.Reader(s)
        left = n
        while left > 0:
            k = min(1000, left)
            s.sendall(cmd * k)
            for _ in range(k):
                et._resp_read(r)
            left -= k


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--purges", type=int, default=1000)
    ap.add_argument("--catchup", type=int, default=100000)
    args = ap.parse_args()
    with et.Origin() as o, et.Redis() as r:
        url = "%s/%s" % (r.url, STREAM)
        nodes = [pn.Node(o, "--purge-bus", url, "--node-name", "b%d" % i)
                 for i in range(3)]
        for n in nodes:
            et.wait_for(lambda: fleet(n)["self"]["state"] == "current", 10,
                        0.05, "current")
        lat = []
        for i in range(args.purges):
            body = {"urls": ["http://%s/obj/b%d" % (pn.HOST, i)]}
            t0 = time.perf_counter()
            res = nodes[0].purge(method="POST", target="/purge?wait=10s",
                                 body=body)
            lat.append((time.perf_counter() - t0) * 1000.0)
            if res.status != 200:
                raise SystemExit("purge %d: %d %s" % (i, res.status,
                                                     res.body[:300]))
        print("publish-to-applied on 3 nodes (POST /purge?wait, %d purges):"
              " p50 %.2f ms, p99 %.2f ms, max %.2f ms"
              % (len(lat), pct(lat, 50), pct(lat, 99), max(lat)))
        bounds = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, "inf"]
        for n in nodes:
            s = fleet(n)["self"]
            hist = ", ".join("le %s: %d" % (b, c) for b, c in
                             zip(bounds, s["latency_le"]) if c)
            print("  node %s histogram (entry ID to applied): %s"
                  % (s["node"], hist))

        cache = nodes[2].cache
        nodes[2].stop()
        body = json.dumps({"urls": ["http://%s/obj/c" % pn.HOST]})
        t0 = time.perf_counter()
        xadd_many(r.port, args.catchup, body)
        print("appended %d entries in %.2f s" % (
            args.catchup, time.perf_counter() - t0))
        last = r.command("XREVRANGE", STREAM, "+", "-", "COUNT", "1")[0][0]
        t0 = time.perf_counter()
        n2 = pn.Node(o, "--purge-bus", url, "--node-name", "b2",
                     cache=cache)
        t_up = time.perf_counter() - t0
        et.wait_for(lambda: fleet(n2)["self"]["applied"] == last.decode(),
                    600, 0.01, "caught up")
        t_done = time.perf_counter() - t0
        print("catch-up of %d missed purges: %.2f s from the node's start "
              "(%.2f s of it starting edged and purged)"
              % (args.catchup, t_done, t_up))
        n2.stop()
        nodes[0].stop()
        nodes[1].stop()


if __name__ == "__main__":
    main()
