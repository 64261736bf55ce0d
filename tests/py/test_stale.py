#!/usr/bin/env python3
"""Story: stale content keeps a site up and its origin unhurried.

A response past its lifetime but within stale-while-revalidate (or the
operator's cache_grace) is answered at once from cache while one background
request refreshes it, however many clients ask.  When the origin is down,
refuses, times out or answers 5xx, a stale response within stale-if-error
(or cache_stale_if_error) is served instead of an error, and Cache-Status
and the access log say so and why; past the allowance the error comes
through.  must-revalidate and no-cache forbid both.
"""

import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def edge_args(*extra):
    return ("--cache-dir", et.mktemp("c"), "--cache-size", "64M",
            "--cache-query-drop", "delay_ms",
            "--cache-query-drop", "status") + extra


def status_of(r):
    return r.header("Cache-Status") or ""


def timed_get(e, target):
    t0 = time.monotonic()
    r = e.request("GET", target, timeout=20)
    return r, time.monotonic() - t0


def many(n, fn):
    out = [None] * n
    ts = [threading.Thread(target=lambda i=i: out.__setitem__(i, fn()))
          for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    return out


def swr_story(o, e, path, query):
    r = e.request("GET", path + query)
    et.eq(r.status, 200, "filled")
    et.eq(o.count(path), 1, "one fill")
    time.sleep(2.2)   # past max-age=1
    # The refresh takes 1.5 s at the origin; stale answers do not wait.
    slow = path + query + "&delay_ms=1500"
    rs = many(10, lambda: timed_get(e, slow))
    for r, dt in rs:
        et.eq(r.status, 200, "stale answer")
        et.check_pattern(r.body, 2000)
        et.ok("stale-while-revalidate" in status_of(r),
              "Cache-Status says so: %s" % status_of(r))
        et.ok(dt < 1.0, "answered without waiting for the origin "
              "(%.2f s)" % dt)
    et.wait_for(lambda: o.count(path, complete=True) == 2, 5,
                what="the background refresh")
    time.sleep(1.8)   # let it finish and be stored
    et.eq(o.count(path), 2, "exactly one background request")
    r = e.request("GET", path + query)
    et.ok(status_of(r).startswith("edged; hit; ttl="),
          "the refreshed object is fresh: %s" % status_of(r))


def test_stale_while_revalidate_directive():
    with et.Origin() as o, et.Edge(o.url, *edge_args()) as e:
        swr_story(o, e, "/obj/swr",
                  "?size=2000&ttl=1"
                  "&hdr=Cache-Control:stale-while-revalidate=30")


def test_grace_from_the_config():
    with et.Origin() as o, et.Edge(o.url, *edge_args(
            "--cache-grace", "30s")) as e:
        swr_story(o, e, "/obj/grace", "?size=2000&ttl=1")


def test_grace_never_against_must_revalidate():
    with et.Origin() as o, et.Edge(o.url, *edge_args(
            "--cache-grace", "30s", "--cache-stale-if-error", "1h")) as e:
        q = "/obj/mr?size=100&ttl=1&hdr=Cache-Control:must-revalidate"
        e.request("GET", q)
        time.sleep(2.2)
        r, dt = timed_get(e, q + "&delay_ms=600")
        et.eq(r.status, 200, "revalidated")
        et.ok(dt >= 0.5, "waited for the origin (%.2f s)" % dt)
        et.ok("fwd=stale" in status_of(r) and "hit" not in status_of(r),
              "went forward: %s" % status_of(r))
        time.sleep(2.2)
        r = e.request("GET", q + "&status=503")
        et.eq(r.status, 503, "no stale-if-error against must-revalidate")


def test_stale_if_error_origin_down():
    port = et.free_port()
    with et.Edge("http://127.0.0.1:%d" % port, *edge_args()) as e:
        q = "/obj/sie?size=3000&ttl=1&hdr=Cache-Control:stale-if-error=4"
        with et.Origin(port=port):
            r = e.request("GET", q)
            et.eq(r.status, 200, "filled")
            filled = time.monotonic()
        time.sleep(2.2)   # stale, within stale-if-error=4
        rs = many(5, lambda: e.request("GET", q, timeout=20))
        for r in rs:
            et.eq(r.status, 200, "stale instead of 502")
            et.check_pattern(r.body, 3000)
            st = status_of(r)
            et.ok("fwd=stale" in st and "stale-if-error" in st and
                  "connect" in st, "Cache-Status says why: %s" % st)
        e.wait_access_log(lambda l: "stale-if-error" in l)
        # Past max-age 1 + stale-if-error 4, with a second to spare for
        # ages counted in whole seconds.
        time.sleep(max(0.0, filled + 6.5 - time.monotonic()))
        r = e.request("GET", q)
        et.eq(r.status, 502, "past the allowance the error comes through")


def test_no_healthy_server_serves_stale_at_once():
    # Health checks take the pool's only server out; a stale response is
    # then served without trying the origin, a URL never stored gets 503.
    o = et.Origin()
    try:
        with et.Edge(None, "--origin-server", o.url, *edge_args(
                "--cache-stale-if-error", "1h",
                "--health-check-path", "/obj/hc?size=1",
                "--health-check-interval", "200ms",
                "--health-check-timeout", "500ms",
                "--health-check-rise", "1",
                "--health-check-fall", "1",
                "--origin-first-byte-timeout", "30s")) as e:
            q = "/obj/pool?size=3000&ttl=1"
            et.eq(e.request("GET", q).status, 200, "filled")
            o.stop()
            time.sleep(2.2)
            t0 = time.monotonic()
            r = e.request("GET", q)
            dt = time.monotonic() - t0
            et.eq(r.status, 200, "stale while no server is up")
            et.check_pattern(r.body, 3000)
            et.ok("stale-if-error" in status_of(r), status_of(r))
            et.ok(dt < 1.0, "at once (%.2f s)" % dt)
            et.wait_for(lambda: e.request("GET", "/obj/never").status == 503,
                        5, what="the checks to take the server out")
            r = e.request("GET", q)
            et.ok("no_healthy_server" in status_of(r),
                  "why, once the pool is down: %s" % status_of(r))
    finally:
        o.stop()


def test_stale_if_error_on_5xx_from_the_config():
    with et.Origin() as o, et.Edge(o.url, *edge_args(
            "--cache-stale-if-error", "1h")) as e:
        # 2 s, not 1: the origin's Date has whole seconds, so a copy may
        # be stored up to a second old, and "fresh again" below needs it
        # fresh for a moment after the refresh.
        q = "/obj/s5?size=3000&ttl=2"
        e.request("GET", q)
        time.sleep(3.2)
        r = e.request("GET", q + "&status=503")
        et.eq(r.status, 200, "stale instead of the 503")
        et.check_pattern(r.body, 3000)
        et.ok("fwd=stale; fwd-status=503; detail=stale-if-error"
              in status_of(r), "Cache-Status: %s" % status_of(r))
        r = e.request("GET", q)
        et.eq(r.status, 200, "the origin is back")
        et.ok("fwd-status=200" in status_of(r) or
              "fwd=stale" in status_of(r), "refreshed: %s" % status_of(r))
        r = e.request("GET", q)
        et.ok(status_of(r).startswith("edged; hit"), "fresh again")


def test_no_stale_if_error_for_no_cache_client():
    with et.Origin() as o, et.Edge(o.url, *edge_args(
            "--cache-stale-if-error", "1h")) as e:
        q = "/obj/nc?size=100&ttl=1"
        e.request("GET", q)
        time.sleep(2.2)
        r = e.request("GET", q + "&status=503",
                      headers=[("Cache-Control", "no-cache")])
        et.eq(r.status, 503, "a client asking for validation gets the error")


if __name__ == "__main__":
    et.main()
