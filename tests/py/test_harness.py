#!/usr/bin/env python3
"""Story: the test origin and the harness, without edged.

The other stories trust tests/origin/origin.py and edgetest's HTTP client;
this one checks them against each other directly, so a failure elsewhere
points at edged and not at the tools.  It runs even when edged is not built.
"""

import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def test_pattern_definition():
    # byte i = (i*7 + (i >> 8) + (i >> 16) * 13) & 0xff, at any offset
    for off in (0, 1, 255, 65535, 65536, 3 * 65536 + 17, (1 << 30) - 5):
        data = et.pattern(off, 300)
        want = bytes(((i * 7) + (i >> 8) + (i >> 16) * 13) & 0xFF
                     for i in range(off, off + 300))
        et.eq(data, want, "pattern at %d" % off)
    et.check_pattern(et.pattern(1000, 70000), 70000, offset=1000)
    try:
        bad = bytearray(et.pattern(0, 100000))
        bad[77777] ^= 1
        et.check_pattern(bytes(bad), 100000)
    except AssertionError as e:
        et.ok("77777" in str(e), "mismatch position reported: %s" % e)
    else:
        raise AssertionError("check_pattern missed a flipped bit")


def test_obj_sizes_and_framing():
    with et.Origin() as o, et.Client(o.port) as c:
        for size in (0, 1, 1024, 65535, 65536, 65537, 1 << 20):
            for chunked in (0, 1):
                r = c.request("GET", "/obj/s?size=%d&chunked=%d"
                              % (size, chunked))
                et.eq(r.status, 200, "status")
                et.eq(r.framing, "chunked" if chunked else "length",
                      "framing")
                et.check_pattern(r.body, size)
        r = c.request("HEAD", "/obj/s?size=5000")
        et.eq((r.header("Content-Length"), r.body), ("5000", b""), "HEAD")
        r = c.request("GET", "/obj/s?size=10&status=404&ttl=7"
                      "&hdr=X-A:1&hdr=X-B:two%20words")
        et.eq(r.status, 404, "status")
        et.eq(r.header("Cache-Control"), "public, max-age=7", "ttl")
        et.eq((r.header("X-A"), r.header("X-B")), ("1", "two words"), "hdr")
        r = c.request("GET", "/obj/s?size=10&status=204")
        et.eq((r.status, r.has("Content-Length"), r.body), (204, False, b""),
              "204")
        r = c.request("GET", "/obj/s?size=10")
        et.eq(r.header("X-Origin-Seq"), "18", "all on one connection")


def test_pipelining_and_http10():
    with et.Origin() as o:
        sizes = [100 + 37 * i for i in range(20)]
        data = b"".join(et.build_request("GET", "/obj/p%d?size=%d" % (i, n))
                        for i, n in enumerate(sizes))
        with et.Client(o.port) as c:
            c.send(data)
            for n in sizes:
                et.check_pattern(c.read_response().body, n)
        res = et.raw_request(o.port, et.build_request(
            "GET", "/obj/a?size=10", version="HTTP/1.0"), timeout=3)
        et.ok(res.closed and res.elapsed < 2, "HTTP/1.0 closes: %r" % res)
        with et.Client(o.port) as c:
            for _ in range(3):
                r = c.request("GET", "/obj/a?size=10",
                              [("Connection", "keep-alive")],
                              version="HTTP/1.0")
                et.eq(r.header("Connection"), "keep-alive", "1.0 keep-alive")
            r = c.request("GET", "/obj/a?size=10&close=1")
            et.eq(r.header("Connection"), "close", "close=1")
            c.assert_closed()


def test_echo():
    with et.Origin() as o, et.Client(o.port) as c:
        r = c.request("GET", "/echo?a=1&b=%20x",
                      [("Host", "h.test"), ("X-Multi", "a"),
                       ("x-multi", "b"), ("Connection", "foo")])
        d = r.json()
        et.eq((d["method"], d["target"], d["version"]),
              ("GET", "/echo?a=1&b=%20x", "HTTP/1.1"), "request line")
        et.eq(d["headers"], [["Host", "h.test"], ["X-Multi", "a"],
                             ["x-multi", "b"], ["Connection", "foo"]],
              "headers in order")
        et.eq(r.header("X-Echo-Method"), "GET", "X-Echo-Method")
        body = os.urandom(300000)
        r = c.request("PUT", "/echo", body=body)
        d = r.json()
        et.eq((d["body_length"], d["body_sha256"], d["body_chunked"]),
              (len(body), et.sha256(body), False), "CL body")
        enc = et.chunk_encode(body, (1, 1000, 77777), ext=';x="y z"',
                              trailers=[("X-T", "1")])
        r = c.request("POST", "/echo",
                      [("Transfer-Encoding", "chunked")], enc)
        d = r.json()
        et.eq((d["body_length"], d["body_sha256"], d["body_chunked"]),
              (len(body), et.sha256(body), True), "chunked body")
        et.eq(d["trailers"], [["X-T", "1"]], "trailers")
        et.ok(len(d["chunk_extensions"]) > 3, "extensions seen")
        r = c.request("HEAD", "/echo")
        et.eq((r.status, r.body), (200, b""), "HEAD /echo")
        et.ok(int(r.header("Content-Length")) > 0, "HEAD keeps the length")


def test_expect_100():
    with et.Origin() as o, et.Client(o.port) as c:
        body = b"x" * 5000
        c.send(et.build_request("POST", "/echo",
                                [("Expect", "100-continue"),
                                 ("Content-Length", "5000")]))
        line = c.reader.read_line()
        et.eq(line, b"HTTP/1.1 100 Continue\r\n", "interim response")
        et.eq(c.reader.read_line(), b"\r\n", "end of interim head")
        c.send(body)
        et.eq(c.read_response().json()["body_length"], 5000, "body")


def test_counters():
    with et.Origin() as o:
        with et.Client(o.port) as c:
            for _ in range(5):
                c.request("GET", "/obj/x?size=1")
            c.request("GET", "/obj/y?size=1")
        et.eq(o.count(), 6, "requests")
        et.eq(o.count("/obj/x"), 5, "per path")
        et.eq(o.count("/obj/y?size=1"), 1, "per target")
        et.eq(o.connections(), 1, "connections")
        o.reset()
        et.eq((o.count(), o.connections()), (0, 0), "after reset")
        with et.Client(o.port) as c1, et.Client(o.port) as c2:
            c1.request("GET", "/obj/x")
            c2.request("GET", "/obj/x")
            c1.request("GET", "/obj/x")
        et.eq((o.count(), o.connections()), (3, 2), "two connections")


def test_delays_and_failures():
    with et.Origin() as o:
        t0 = time.monotonic()
        r = et.Client(o.port).request("GET", "/obj/d?size=10&delay_ms=300")
        et.ok(0.28 < time.monotonic() - t0 < 2, "delay_ms")
        with et.Client(o.port) as c:
            t0 = time.monotonic()
            c.send(et.build_request("GET", "/obj/d?size=10&body_delay_ms=400"))
            r = c.read_response()
            et.ok(0.38 < time.monotonic() - t0 < 2, "body_delay_ms")
            et.check_pattern(r.body, 10)
        with et.Client(o.port) as c:
            r = c.request("GET", "/obj/r?size=1000000&reset_after=100000",
                          allow_incomplete=True)
            et.eq((r.status, r.complete, len(r.body)), (200, False, 100000),
                  "reset_after delivers N bytes, then resets")
            et.ok(c.reader.reset, "ended by RST")
        with et.Client(o.port) as c:
            r = c.request("GET", "/obj/r?size=100000&chunked=1"
                          "&reset_after=50000", allow_incomplete=True)
            et.eq((r.complete, len(r.body)), (False, 50000), "chunked reset")
        for q in ("reset=1", "hangup=1"):
            res = et.raw_request(o.port,
                                 et.build_request("GET", "/obj/f?" + q))
            et.ok(res.closed and res.data == b"", "%s: %r" % (q, res))
        res = et.raw_request(o.port, et.build_request("GET",
                                                      "/obj/f?garbage=1"))
        et.ok(res.closed and not res.data.startswith(b"HTTP/"),
              "garbage: %r" % res)
        t0 = time.monotonic()
        r = et.Client(o.port).request("GET", "/obj/p?size=200000&chunked=1"
                                      "&pause_after=100000&pause_ms=500")
        et.check_pattern(r.body, 200000)
        et.ok(0.48 < time.monotonic() - t0 < 2, "pause")
        t0 = time.monotonic()
        r = et.Client(o.port).request("GET", "/obj/p?size=1000&drip=250"
                                      "&tick_ms=100")
        et.check_pattern(r.body, 1000)
        et.ok(0.28 < time.monotonic() - t0 < 2, "drip: 3 ticks")


def test_demo_page():
    with et.Origin() as o, et.Client(o.port) as c:
        r = c.request("GET", "/", [("Via", "1.1 edged"),
                                   ("X-Forwarded-For", "192.0.2.1")])
        et.eq(r.status, 200, "status")
        et.eq(r.header("Cache-Control"), "public, max-age=60", "cc")
        page = r.body.decode()
        et.ok("edged demo origin" in page and "192.0.2.1" in page,
              "page shows the headers")
        et.eq(c.request("GET", "/index.html").status, 200, "index.html")
        et.eq(c.request("GET", "/nope").status, 404, "404")


def test_ipv6_origin():
    if not et.ipv6_loopback_works():
        raise et.Skip("no IPv6 loopback")
    with et.Origin(host="::1") as o, et.Client(o.port, "::1") as c:
        et.eq(c.request("GET", "/echo").json()["peer"][0], "::1", "peer")


if __name__ == "__main__":
    et.main(needs_edged=False)
