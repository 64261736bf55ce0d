#!/usr/bin/env python3
"""Story: concurrent misses for one URL make one origin request.

200 clients ask for a cold URL whose origin takes 500 ms: the origin sees
exactly one request and every client gets the whole, correct body.  The
clients waiting on that fetch get its bytes as they arrive, not after the
fill has ended; the first client leaving does not stop it for the others;
a fill that breaks mid-body ends every client's transfer truncated and
stores nothing.  A response that may not be stored releases the waiters at
once and the URL is then fetched by each client on its own (hit-for-miss),
so an uncacheable slow URL never makes its clients queue one behind the
other.  A Vary that a waiter does not match sends that waiter to the origin
on its own.  Revalidations of a stale object are shared the same way.
"""

import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def cache_args(tmp):
    return ("--cache-dir", tmp, "--cache-size", "64M",
            "--memory-size", "32M")


def parallel(n, fn):
    """Run fn(i) in n threads at once; return the results in order."""
    out = [None] * n
    errs = []
    start = threading.Barrier(n)

    def run(i):
        try:
            start.wait(10)
            out[i] = fn(i)
        except Exception as ex:  # reported by the caller
            errs.append(ex)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    if errs:
        raise errs[0]
    return out


def get(e, target, headers=None, timeout=20.0):
    return e.request("GET", target, headers=headers, timeout=timeout)


def stats(port):
    r = et.raw_request(port, b"GET /stats HTTP/1.1\r\nHost: a\r\n"
                       b"Connection: close\r\n\r\n").response()
    et.eq(r.status, 200, "/stats")
    return r.json()


def test_200_clients_one_origin_request():
    aport = et.free_port()
    with et.Origin() as o, et.Edge(o.url, *cache_args(et.mktemp("c")),
                                   "--admin-listen", "127.0.0.1:%d" % aport,
                                   threads=2) as e:
        target = "/obj/herd?size=300000&ttl=60&delay_ms=500"
        rs = parallel(200, lambda i: get(e, target))
        for r in rs:
            et.eq(r.status, 200, "every client gets the response")
            et.check_pattern(r.body, 300000)
        et.eq(o.count("/obj/herd"), 1, "the origin saw one request")
        collapsed = sum(1 for r in rs
                        if "collapsed" in (r.header("Cache-Status") or ""))
        hits = sum(1 for r in rs
                   if (r.header("Cache-Status") or "").startswith(
                       "edged; hit"))
        et.eq(1 + collapsed + hits, 200,
              "one leader; the rest waited on it or hit its object")
        c = stats(aport)["cache"]
        et.eq(c["coalesced"], collapsed, "/stats counts the waiters")
        et.eq(c["coalesce_released"], 0, "none was sent away")
        r = get(e, target)
        et.ok(r.header("Cache-Status").startswith("edged; hit"),
              "stored: %s" % r.header("Cache-Status"))


def read_head(c):
    return et.read_response(c, read_body=False)


def test_waiters_get_bytes_before_the_fill_ends():
    # The origin sends 100000 bytes, then pauses 3 s before the rest: the
    # waiters must have those bytes while it pauses.
    with et.Origin() as o, et.Edge(o.url, *cache_args(et.mktemp("c")),
                                   threads=2) as e:
        target = ("/obj/slow?size=400000&ttl=60&pause_after=100000"
                  "&pause_ms=3000")
        clients = [e.connect(timeout=20) for _ in range(6)]
        for c in clients:
            c.send(et.build_request("GET", target))
            time.sleep(0.02)   # the first one leads
        t0 = time.monotonic()
        heads = [read_head(c) for c in clients]
        for h in heads:
            et.eq(h.status, 200, "head")
            et.eq(h.header("Content-Length"), "400000", "length")
        for c in clients:
            got = c.reader.read_exact(100000)
            et.check_pattern(got, 100000)
        early = time.monotonic() - t0
        et.ok(early < 2.5, "the first 100000 bytes reached every client "
              "while the origin paused (%.2f s)" % early)
        for c in clients:
            rest = c.reader.read_exact(300000)
            et.check_pattern(rest, 300000, offset=100000)
            c.close()
        et.eq(o.count("/obj/slow"), 1, "one origin request")


def test_first_client_leaving_does_not_stop_the_fill():
    with et.Origin() as o, et.Edge(o.url, *cache_args(et.mktemp("c")),
                                   threads=2) as e:
        target = "/obj/leave?size=200000&ttl=60&delay_ms=300&body_delay_ms=300"
        first = e.connect()
        first.send(et.build_request("GET", target))
        time.sleep(0.1)
        second = e.connect(timeout=20)
        second.send(et.build_request("GET", target))
        time.sleep(0.1)
        first.close()   # the leader goes away before the head
        r = second.read_response()
        et.eq(r.status, 200, "the waiter still gets the response")
        et.check_pattern(r.body, 200000)
        second.close()
        r = get(e, target)
        et.ok(r.header("Cache-Status").startswith("edged; hit"),
              "and it was stored: %s" % r.header("Cache-Status"))
        et.eq(o.count("/obj/leave"), 1, "one origin request")


def test_a_waiter_leaving_is_dropped():
    with et.Origin() as o, et.Edge(o.url, *cache_args(et.mktemp("c")),
                                   threads=2) as e:
        target = ("/obj/drop?size=600000&ttl=60&pause_after=100000"
                  "&pause_ms=800")
        clients = [e.connect(timeout=20) for _ in range(4)]
        for c in clients:
            c.send(et.build_request("GET", target))
            time.sleep(0.02)
        for c in clients:
            et.eq(read_head(c).status, 200, "head")
        clients[2].reader.read_exact(1000)
        clients[2].close()   # a waiter goes away mid-body
        for i, c in enumerate(clients):
            if i == 2:
                continue
            et.check_pattern(c.reader.read_exact(600000), 600000)
            c.close()
        et.eq(o.count("/obj/drop"), 1, "one origin request")
        r = get(e, target)
        et.ok(r.header("Cache-Status").startswith("edged; hit"),
              "stored: %s" % r.header("Cache-Status"))


def test_fill_failing_mid_body_truncates_everyone():
    with et.Origin() as o, et.Edge(o.url, *cache_args(et.mktemp("c")),
                                   threads=2) as e:
        target = "/obj/broken?size=500000&ttl=60&delay_ms=300&reset_after=150000"
        rs = parallel(5, lambda i: _read_incomplete(e, target))
        for r in rs:
            et.eq(r.status, 200, "the head was sent")
            et.ok(not r.complete, "the transfer is truncated, not complete")
            et.ok(len(r.body) < 500000, "short body")
            et.check_pattern(r.body)
        et.eq(o.count("/obj/broken"), 1, "one origin request")
        r = _read_incomplete(e, target)
        et.ok(not (r.header("Cache-Status") or "").startswith("edged; hit"),
              "nothing was stored: %s" % r.header("Cache-Status"))
        et.eq(o.count("/obj/broken"), 2, "the next request went to origin")


def _read_incomplete(e, target):
    c = e.connect(timeout=20)
    try:
        c.send(et.build_request("GET", target))
        return c.read_response(allow_incomplete=True)
    finally:
        c.close()


def test_uncacheable_is_not_serialised():
    with et.Origin() as o, et.Edge(o.url, *cache_args(et.mktemp("c")),
                                   threads=2) as e:
        target = ("/obj/private?size=1000&delay_ms=700"
                  "&hdr=Cache-Control:private")
        t0 = time.monotonic()
        rs = parallel(10, lambda i: get(e, target))
        first_wave = time.monotonic() - t0
        for r in rs:
            et.eq(r.status, 200, "first wave")
            et.check_pattern(r.body, 1000)
        et.eq(o.count("/obj/private"), 10, "each client went to the origin")
        # Serialised, 10 clients would take 7 s; released at once, two
        # origin round trips.
        et.ok(first_wave < 4.0, "first wave %.2f s" % first_wave)
        t0 = time.monotonic()
        rs = parallel(10, lambda i: get(e, target))
        second_wave = time.monotonic() - t0
        for r in rs:
            et.eq(r.status, 200, "second wave")
        et.eq(o.count("/obj/private"), 20, "hit-for-miss: each on its own")
        et.ok(second_wave < 3.0, "second wave %.2f s (in parallel)"
              % second_wave)


def test_vary_mismatch_fetches_alone():
    with et.Origin() as o, et.Edge(o.url, *cache_args(et.mktemp("c")),
                                   threads=2) as e:
        target = "/obj/vary?size=5000&ttl=60&delay_ms=400&hdr=Vary:X-Lang"

        def one(i):
            time.sleep(0.0 if i == 0 else 0.1)
            return get(e, target, headers=[("X-Lang", "a" if i < 3 else "b")])

        rs = parallel(5, one)
        for r in rs:
            et.eq(r.status, 200, "answered")
            et.check_pattern(r.body, 5000)
        n = o.count("/obj/vary")
        et.ok(n >= 2, "the X-Lang: b clients did not get the a variant "
              "(%d origin requests)" % n)
        et.ok(n <= 3, "the X-Lang: a clients shared one (%d)" % n)
        for lang in ("a", "b"):
            r = get(e, target, headers=[("X-Lang", lang)])
            et.ok(r.header("Cache-Status").startswith("edged; hit"),
                  "variant %s stored: %s" % (lang, r.header("Cache-Status")))


def test_waiters_with_ranges_share_the_fetch():
    with et.Origin() as o, et.Edge(o.url, *cache_args(et.mktemp("c")),
                                   threads=2) as e:
        target = "/obj/rng?size=700000&ttl=60&delay_ms=400"
        ranges = [None, "bytes=0-99", "bytes=650000-", "bytes=-10",
                  "bytes=300000-300009,500000-500009"]

        def one(i):
            time.sleep(0.0 if i == 0 else 0.1)
            h = [("Range", ranges[i])] if ranges[i] else None
            return get(e, target, headers=h)

        rs = parallel(len(ranges), one)
        et.eq(rs[0].status, 200, "the leader asked for all of it")
        et.check_pattern(rs[0].body, 700000)
        et.eq((rs[1].status, rs[1].body), (206, et.pattern(0, 100)),
              "first bytes")
        et.eq(rs[1].header("Content-Range"), "bytes 0-99/700000", "range")
        et.eq((rs[2].status, rs[2].body),
              (206, et.pattern(650000, 50000)), "open range")
        et.eq((rs[3].status, rs[3].body), (206, et.pattern(699990, 10)),
              "suffix range")
        et.eq(rs[4].status, 206, "two ranges")
        et.ok(rs[4].header("Content-Type").startswith(
            "multipart/byteranges"), "as multipart")
        for r in rs[1:]:
            et.ok("collapsed" in r.header("Cache-Status"),
                  "waited on the fetch: %s" % r.header("Cache-Status"))
        et.eq(o.count("/obj/rng"), 1, "one origin request for all")


def test_waiter_that_cannot_take_the_coding_fetches_alone():
    # The origin answers the leader's Accept-Encoding: gzip with a gzip
    # body; a waiter that takes only identity must not get that body: it
    # asks the origin itself (this test origin sends gzip anyway).
    with et.Origin() as o, et.Edge(o.url, *cache_args(et.mktemp("c")),
                                   threads=2) as e:
        target = "/text/enc?size=20000&ttl=60&enc=gzip&delay_ms=400"

        def one(i):
            time.sleep(0.0 if i == 0 else 0.1)
            h = [("Accept-Encoding", "gzip")] if i < 2 else \
                [("Accept-Encoding", "identity")]
            return get(e, target, headers=h)

        rs = parallel(3, one)
        et.eq(rs[0].header("Content-Encoding"), "gzip", "the leader: gzip")
        et.eq(rs[1].header("Content-Encoding"), "gzip", "a gzip waiter too")
        et.ok("collapsed" in rs[1].header("Cache-Status"),
              rs[1].header("Cache-Status"))
        et.eq(rs[2].status, 200, "the identity-only client is answered")
        et.ok("collapsed" not in rs[2].header("Cache-Status"),
              "not from the gzip fetch: %s" % rs[2].header("Cache-Status"))
        et.eq(o.count("/text/enc"), 2, "it asked the origin itself")


def test_revalidations_are_coalesced():
    tmp = et.mktemp("c")
    with et.Origin() as o, et.Edge(o.url, *cache_args(tmp),
                                   "--cache-query-drop", "status",
                                   "--cache-query-drop", "delay_ms",
                                   threads=2) as e:
        base = "/obj/reval?size=20000&ttl=1&hdr=ETag:%22v1%22"
        r = get(e, base)
        et.eq(r.status, 200, "filled")
        time.sleep(2.2)   # stale now
        target = base + "&status=304&delay_ms=500"
        rs = parallel(20, lambda i: get(e, target))
        for r in rs:
            et.eq(r.status, 200, "answered from the refreshed object")
            et.check_pattern(r.body, 20000)
        et.eq(o.count("/obj/reval"), 2,
              "one fill, then one shared revalidation")


if __name__ == "__main__":
    et.main()
