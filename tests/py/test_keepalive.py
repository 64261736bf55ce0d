#!/usr/bin/env python3
"""Story: connections are persistent on both sides of edged.

A client can send 100 requests on one connection, or 20 pipelined in one
write and get the answers in order, also when it half-closes right after
them (a body cut by that end of file closes the connection); HTTP/1.0
connections close unless the client asks for keep-alive; an idle
connection is closed after --keepalive-timeout; and on the origin side edged reuses a few connections
instead of opening one per request.
"""

import json
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def test_100_sequential_requests_one_connection():
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        o.reset()
        for i in range(100):
            n = (i * 101) % 5000
            r = c.request("GET", "/obj/seq%d?size=%d" % (i, n))
            et.eq(r.status, 200, "status of request %d" % i)
            et.check_pattern(r.body, n)
        et.eq(o.count(), 100, "requests at the origin")
        conns = o.connections()
        et.ok(conns <= 2, "edged reused its origin connections: 100 "
              "requests came over %d connections" % conns)


def test_20_pipelined_requests_in_order():
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        sizes = [1000 + 777 * i for i in range(20)]
        c.send(b"".join(et.build_request("GET", "/obj/pipe%d?size=%d"
                                         % (i, n))
                        for i, n in enumerate(sizes)))
        for i, n in enumerate(sizes):
            r = c.read_response()
            et.eq((r.status, len(r.body)), (200, n),
                  "response %d (status, length)" % i)
            et.check_pattern(r.body, n)
        et.check_pattern(c.request("GET", "/obj/after?size=5").body, 5)


def test_pipelined_mixed_methods():
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        body = b"pipelined body " * 1000
        reqs = [("GET", "/obj/m1?size=300", None),
                ("HEAD", "/obj/m2?size=400", None),
                ("POST", "/echo?n=3", body),
                ("GET", "/obj/m4?size=500&chunked=1", None),
                ("DELETE", "/echo?n=5", None),
                ("GET", "/obj/m6?size=600", None)]
        c.send(b"".join(et.build_request(m, t, body=b) for m, t, b in reqs))
        r = c.read_response()
        et.check_pattern(r.body, 300)
        r = c.read_response("HEAD")
        et.eq((r.status, r.header("Content-Length"), r.body),
              (200, "400", b""), "HEAD")
        d = c.read_response().json()
        et.eq((d["method"], d["target"], d["body_length"],
               d["body_sha256"]),
              ("POST", "/echo?n=3", len(body), et.sha256(body)), "POST")
        et.check_pattern(c.read_response().body, 500)
        d = c.read_response().json()
        et.eq((d["method"], d["target"]), ("DELETE", "/echo?n=5"), "DELETE")
        et.check_pattern(c.read_response().body, 600)


def test_http10_without_keepalive_closes():
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        r = c.request("GET", "/obj/a?size=100", version="HTTP/1.0")
        et.check_pattern(r.body, 100)
        c.assert_closed(what="an HTTP/1.0 connection without keep-alive")


def test_http10_keepalive_stays_open():
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        for i in range(3):
            r = c.request("GET", "/obj/k%d?size=%d" % (i, 100 + i),
                          [("Connection", "keep-alive")],
                          version="HTTP/1.0")
            et.eq(r.status, 200, "status")
            et.eq(r.framing, "length", "Content-Length framing")
            et.check_pattern(r.body, 100 + i)
            et.ok("keep-alive" in r.tokens("Connection"),
                  "an HTTP/1.0 keep-alive response says so "
                  "(Connection: %r)" % r.header("Connection"))
        et.ok(c.is_open(), "still open after three requests")


def test_http10_keepalive_chunked_origin_closes():
    # A body of unknown length can only be close-delimited to HTTP/1.0.
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        c.send(et.build_request("GET", "/obj/k?size=70000&chunked=1",
                                [("Connection", "keep-alive")],
                                version="HTTP/1.0"))
        r = c.read_response()
        et.eq((r.status, r.framing), (200, "close"),
              "close-delimited to an HTTP/1.0 client")
        et.check_pattern(r.body, 70000)


def test_pipelined_large_responses():
    with et.Origin() as o, et.Edge(o.url) as e, e.connect(timeout=20) as c:
        sizes = [(1 << 20) + 4099 * i for i in range(10)]
        c.send(b"".join(et.build_request(
            "GET", "/obj/big%d?size=%d&chunked=%d" % (i, n, i % 2))
            for i, n in enumerate(sizes)))
        for i, n in enumerate(sizes):
            r = c.read_response()
            et.eq((r.status, len(r.body)), (200, n), "response %d" % i)
            et.check_pattern(r.body, n)


def test_client_connection_close():
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        r = c.request("GET", "/obj/c?size=10", [("Connection", "close")])
        et.check_pattern(r.body, 10)
        et.ok("close" in r.tokens("Connection"),
              "Connection: close in the response")
        c.assert_closed()


def test_origin_close_is_hop_by_hop():
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        for i in range(3):
            r = c.request("GET", "/obj/oc%d?size=50&close=1" % i)
            et.check_pattern(r.body, 50)
            et.ok("close" not in r.tokens("Connection"),
                  "the origin closing is not the client's business")
        et.ok(c.is_open(), "client connection still open")
        et.eq(o.count(), 3, "requests at the origin")


def test_keepalive_timeout():
    with et.Origin() as o, \
            et.Edge(o.url, "--keepalive-timeout", "1s") as e, \
            e.connect() as c:
        et.check_pattern(c.request("GET", "/obj/a?size=10").body, 10)
        t0 = time.monotonic()
        et.ok(c.is_open(0.5), "open just after the response")
        c.assert_closed(timeout=3.0, what="an idle keep-alive connection")
        dt = time.monotonic() - t0
        et.ok(0.8 <= dt <= 3.0, "closed after %.2f s (timeout 1 s)" % dt)


def test_keepalive_timeout_runs_from_the_last_answer():
    """Requests within the timeout push the close back: it comes one
    timeout after the last answer, not after the first."""
    with et.Origin() as o, \
            et.Edge(o.url, "--keepalive-timeout", "1s") as e, \
            e.connect() as c:
        for _ in range(3):
            et.check_pattern(c.request("GET", "/obj/a?size=10").body, 10)
            time.sleep(0.6)
        et.ok(c.is_open(0.1), "open 0.7 s after the last answer")
        t0 = time.monotonic()
        et.check_pattern(c.request("GET", "/obj/a?size=10").body, 10)
        c.assert_closed(timeout=3.0, what="an idle keep-alive connection")
        dt = time.monotonic() - t0
        et.ok(0.8 <= dt <= 3.0, "closed %.2f s after the last answer "
              "(timeout 1 s)" % dt)


def test_pipelined_then_half_close():
    # Requests sent before the client's end of file are all answered,
    # the first one slow enough that edged reads the end of file while
    # it waits; then the connection closes.
    with et.Origin() as o, et.Edge(o.url) as e, e.connect(timeout=10) as c:
        body = b"half-closed body " * 100
        c.send(et.build_request("GET", "/obj/hc1?size=100&delay_ms=300") +
               et.build_request("POST", "/echo?n=2", body=body) +
               et.build_request("GET", "/obj/hc3?size=300"))
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response()
        et.eq(r.status, 200, "first answer")
        et.check_pattern(r.body, 100)
        r = c.read_response("POST")
        et.eq((r.status, json.loads(r.body)["body_length"]),
              (200, len(body)), "second answer (status, body length)")
        r = c.read_response()
        et.eq(r.status, 200, "third answer")
        et.check_pattern(r.body, 300)
        c.assert_closed(timeout=3.0, what="the half-closed connection")


def test_half_close_within_a_pipelined_body():
    # The end of file comes within the second request's body: the first
    # is answered, then the connection closes rather than wait for the
    # rest of a body that cannot come.
    with et.Origin() as o, et.Edge(o.url) as e, e.connect(timeout=10) as c:
        c.send(et.build_request("GET", "/obj/hb1?size=100&delay_ms=300") +
               b"POST /echo HTTP/1.1\r\nHost: a\r\n"
               b"Content-Length: 1000\r\n\r\n" + b"b" * 10)
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response()
        et.eq(r.status, 200, "first answer")
        et.check_pattern(r.body, 100)
        c.assert_closed(timeout=3.0, what="the connection cut in a body")


def test_half_close_while_the_answer_waits_for_the_socket():
    # A cached answer larger than the socket takes is queued whole, and
    # the client half-closes right after its request and reads late: the
    # whole answer still goes out before the close (over TLS the end of
    # file used to drop a queued answer: test_tls.py).
    size = 16 << 20
    url = "/obj/hw?size=%d&ttl=60" % size
    with et.Origin() as o, et.Edge(o.url) as e:
        with e.connect(timeout=10) as c:  # a miss: the answer is then
            c.send(et.build_request("GET", url))  # queued whole at once
            et.check_pattern(c.read_response().body, size)
        with e.connect(timeout=10) as c:
            c.send(et.build_request("GET", url))
            c.sock.shutdown(socket.SHUT_WR)
            time.sleep(0.5)  # edged reads the end of file meanwhile
            r = c.read_response()
            et.eq(r.status, 200, "the answer")
            et.check_pattern(r.body, size)
            c.assert_closed(timeout=3.0, what="the half-closed connection")


if __name__ == "__main__":
    et.main()
