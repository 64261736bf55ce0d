#!/usr/bin/env python3
"""Story: the node's own HTTP/1.1 client fetches from plain http origins.

Requests without a body to an http origin given by address go out on the
node's native client: one connection per request at a time, kept per worker
and per server while the origin keeps it open, the response framed by
Content-Length, chunks or the origin's close.  An origin may close a kept
connection just as a request goes out on it: an idempotent request that
got no response byte is sent once more on a new connection, and the client
never sees the failure; a request with another method is not sent twice.
Heads the client cannot frame safely are a 502, bodies cut short are never
delivered as complete, and a slow client pauses the origin's body without
losing a byte.

Most origins here are scripted sockets (edgetest.ScriptOrigin): each connection
runs the test's function, which reads requests and writes bytes as given.
"""

import http.client
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


OK5 = (b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
       b"Content-Length: 5\r\n\r\nhello")


def edge(o, *args):
    return et.Edge(o.url, "--cache-dir", et.mktemp("cache") + "/c", *args,
                   threads=1)


def no_fetch_failed(e):
    et.ok("fetch failed" not in e.stderr_text(),
          "no fetch failed: %r" % e.stderr_text()[-500:])


def test_keep_alive_reuse():
    with et.Origin() as o, edge(o) as e:
        conns, seqs = set(), []
        for i in range(6):
            r = e.request("GET", "/obj/k%d?size=3000&ttl=60" % i)
            et.eq(r.status, 200, "miss %d" % i)
            et.check_pattern(r.body, 3000)
            conns.add(r.header("x-origin-conn"))
            seqs.append(int(r.header("x-origin-seq")))
        et.eq(len(conns), 1, "one origin connection for every miss")
        et.eq(seqs, list(range(1, 7)), "requests in turn on it")
        r = e.request("GET", "/obj/k0?size=3000&ttl=60")
        et.ok("hit" in (r.header("cache-status") or ""), "then a hit")


def test_server_closes_between_requests():
    """The origin closes its side with no word once a request is in on a
    kept connection, as one whose keep-alive timeout ran out at that
    moment would: with a FIN, then with a reset."""
    def script(n, c):
        if n == 0:
            c.read_request()
            c.send(OK5)
            c.read_request()
            return  # closed with the request unanswered
        if n == 1:
            c.read_request()
            c.send(OK5)
            c.read_request()
            c.reset()
            return  # the same, with a reset
        while c.read_request():
            c.send(OK5)

    with et.ScriptOrigin(script) as o, edge(o) as e:
        for i in range(3):
            r = e.request("GET", "/r%d" % i)
            et.eq((r.status, r.body), (200, b"hello"), "request %d" % i)
        et.eq(o.request_lines, [b"GET /r0 HTTP/1.1", b"GET /r1 HTTP/1.1",
                           b"GET /r1 HTTP/1.1", b"GET /r2 HTTP/1.1",
                           b"GET /r2 HTTP/1.1"],
              "a request the origin dropped on a kept connection went again")
        et.eq(o.nconn, 3, "each time on a new connection")
        no_fetch_failed(e)


def test_non_idempotent_not_resent():
    def script(n, c):
        c.read_request()
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        c.read_request()

    with et.ScriptOrigin(script) as o, edge(o) as e:
        r = e.request("GET", "/first", headers={"Cache-Control": "no-store"})
        et.eq(r.status, 200, "the first request")
        r = e.request("FOO", "/second")
        et.eq(r.status, 502, "FOO on the connection the origin dropped")
        et.eq(o.request_lines, [b"GET /first HTTP/1.1", b"FOO /second HTTP/1.1"],
              "FOO was sent once")


def test_chunked_bodies():
    with et.Origin() as o, edge(o) as e:
        # Chunks of 100 bytes written 37 at a time: chunk lines and data
        # split across reads anywhere.
        r = e.request("GET", "/obj/c1?size=3000&chunked=1&chunk=100&drip=37"
                      "&tick_ms=1&ttl=60")
        et.eq(r.status, 200, "dripped chunks")
        et.check_pattern(r.body, 3000)
        r = e.request("GET", "/obj/c2?size=300000&chunked=1&chunk=7000")
        et.check_pattern(r.body, 300000)
        r2 = e.request("GET", "/obj/c3?size=10")
        et.eq(r2.header("x-origin-conn"), r.header("x-origin-conn"),
              "the connection is kept after a chunked body")

    body = (b"5;ext=1;q=\"x\"\r\nhello\r\n6 ;y\r\n world\r\n0\r\n"
            b"X-Trailer: t\r\nX-Other: u\r\n\r\n")

    def script(n, c):
        while c.read_request():
            c.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n" + body)

    with et.ScriptOrigin(script) as o, edge(o) as e:
        for i in range(2):
            r = e.request("GET", "/t%d" % i)
            et.eq((r.status, r.body), (200, b"hello world"),
                  "extensions and trailers %d" % i)
            et.ok(not r.has("x-trailer"), "no trailer field in the head")
        et.eq(o.nconn, 1, "both on one connection")


def test_close_delimited_and_not_kept():
    def script(n, c):
        path = c.read_request().split(b" ")[1]
        if path == b"/eof":
            c.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n\r\n"
                   + b"x" * 100000)
        elif path == b"/http10":
            c.send(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nab")
            c.read_request()  # a request on it would be an error
        elif path == b"/close":
            c.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                   b"Content-Length: 2\r\n\r\ncd")
            c.read_request()

    with et.ScriptOrigin(script) as o, edge(o) as e:
        r = e.request("GET", "/eof")
        et.eq((r.status, len(r.body)), (200, 100000), "until close")
        r = e.request("GET", "/eof")
        et.ok("hit" in (r.header("cache-status") or ""),
              "a body read until close is complete: stored")
        for path, body in (("/http10", b"ab"), ("/close", b"cd")):
            for i in range(2):
                r = e.request("GET", path,
                              headers={"Cache-Control": "no-store"})
                et.eq((r.status, r.body), (200, body), "%s %d" % (path, i))
        et.eq(o.nconn, 5, "no connection the origin did not keep was reused")
        no_fetch_failed(e)


def check_502(head, what):
    def script(n, c):
        while c.read_request():
            c.send(head)

    with et.ScriptOrigin(script) as o, edge(o) as e:
        r = e.request("GET", "/bad")
        et.eq(r.status, 502, what)
        et.wait_for(lambda: "invalid response head" in e.stderr_text(),
                    what="a log line for %s" % what)


def test_framing_errors():
    check_502(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
              "a bad status line")
    check_502(b"HTTP/1.1 200 OK\r\nA: b\nContent-Length: 0\r\n\r\n",
              "a field line ended by a bare LF")
    check_502(b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * 70000 +
              b"\r\nContent-Length: 0\r\n\r\n", "a head over 64 KiB")
    check_502(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
              "a 101 nobody asked for")


def test_bad_chunk_is_not_complete():
    # A size that is not hex; white space after a size with no extension
    # following (outside RFC 9112's chunk-ext grammar, refused from
    # clients too).
    for bad in (b"zz\r\n", b"6 \r\n world\r\n0\r\n\r\n"):
        def script(n, c, bad=bad):
            c.read_request()
            c.send(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                   + bad)

        with et.ScriptOrigin(script) as o, edge(o) as e:
            res = et.raw_request(
                e.port, b"GET /c HTTP/1.1\r\nHost: a\r\n\r\n", timeout=5)
            rs = res.responses()
            et.ok(not rs or rs[0].status != 200 or not rs[0].complete,
                  "a bad chunk line %r never ends as a complete 200" % bad)
            r = e.request("GET", "/c")
            et.ok(r.status != 200 or "hit" not in (r.header("cache-status")
                                                   or ""), "nor stored")


def test_no_body_responses_keep_the_connection():
    def script(n, c):
        while True:
            head = c.read_request()
            if not head:
                return
            path = head.split(b" ")[1]
            if path == b"/204":
                c.send(b"HTTP/1.1 204 No Content\r\n\r\n")
            elif path == b"/head":
                c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
            else:
                c.send(OK5)

    with et.ScriptOrigin(script) as o, edge(o) as e:
        r = e.request("GET", "/204")
        et.eq(r.status, 204, "204")
        r = e.request("HEAD", "/head", headers={"Cache-Control": "no-store"})
        et.eq((r.status, r.body), (200, b""), "HEAD")
        r = e.request("GET", "/after")
        et.eq((r.status, r.body), (200, b"hello"), "GET after them")
        et.eq(o.nconn, 1, "one connection")
        no_fetch_failed(e)


def test_slow_client_pauses_the_origin():
    size = 8 * 1000 * 1000
    with et.Origin() as o, edge(o) as e:
        sr = et.SlowReader(e, "/obj/slow?size=%d&hdr=Cache-Control:no-store"
                           % size, size, rate=2 * 1000 * 1000)
        sr.start()
        et.wait_for(lambda: len(sr.body) > 1000000, timeout=10,
                    what="a first part read slowly")
        sr.stop.set()
        sr.join(10)
        sr.finish()
        et.ok(sr.error is None, "slow reader: %r" % sr.error)
        et.check_pattern(bytes(sr.body), size)
        r = e.request("GET", "/obj/after?size=10")
        et.eq(r.status, 200, "the next miss")


def test_slow_client_pauses_a_chunked_origin():
    """A chunked origin body paused by a full client (the decoder has
    framed data the client cannot take yet) goes on whole."""
    size = 8 * 1000 * 1000
    with et.Origin() as o, edge(o) as e:
        c = http.client.HTTPConnection("127.0.0.1", e.port, timeout=10)
        c.connect()
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.request("GET", "/obj/chunky?size=%d&chunked=1&chunk=7000"
                  "&hdr=Cache-Control:no-store" % size)
        r = c.getresponse()
        et.eq(r.status, 200, "status")
        body = r.read(100000)
        time.sleep(1.5)  # full all the way back: the origin is paused
        body += r.read()
        c.close()
        et.check_pattern(body, size)
        r = e.request("GET", "/obj/after?size=10")
        et.eq(r.status, 200, "the next miss")


def test_host_name_origin_uses_curl():
    """A host name is resolved by libcurl's resolver, off the loop."""
    with et.Origin() as o, et.Edge("http://localhost:%d" % o.port,
                                   "--cache-dir", et.mktemp("cache") + "/c",
                                   threads=1) as e:
        r = e.request("GET", "/obj/n?size=100")
        et.eq(r.status, 200, "a miss from a named origin")
        et.check_pattern(r.body, 100)


if __name__ == "__main__":
    et.main()
