#!/usr/bin/env python3
"""Story: request bodies reach the origin intact, and oversized ones don't.

POST and PUT bodies with Content-Length (0 B, 1 KiB, 5 MiB) and chunked
bodies (many chunks, chunk extensions, trailers) arrive at /echo with the
right length and sha256; "Expect: 100-continue" gets "100 Continue" before
the client sends the body; a body over --max-body-size gets 413 whether its
size is announced or chunked.  A client that sends its body and then
shuts down its sending side still gets the answer: the body came whole,
whether edged had handed it on yet or not; a body cut short by that end
of file reaches the origin as no whole request.
"""

import os
import random
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def echo_of(r):
    et.eq(r.status, 200, "status")
    return r.json()


def test_content_length_bodies():
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        for method in ("POST", "PUT"):
            for n in (0, 1024, 5 << 20):
                body = os.urandom(n)
                d = echo_of(c.request(method, "/echo?m=%s&n=%d" % (method, n),
                                      [("Content-Type",
                                        "application/octet-stream")], body))
                et.eq((d["method"], d["body_length"], d["body_sha256"]),
                      (method, n, et.sha256(body)),
                      "%s of %d bytes at the origin" % (method, n))


def test_chunked_bodies():
    rnd = random.Random(7)
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        body = bytes(rnd.getrandbits(8) for _ in range(300000))
        sizes = [rnd.choice((1, 2, 7, 100, 999, 4096, 16384, 65539))
                 for _ in range(200)]
        for ext, trailers in ((None, None),
                              (";ext=1", None),
                              (';a=b;q="quoted string"', [("X-Trailer", "t1"),
                                                           ("X-Sum", "x")])):
            enc = et.chunk_encode(body, sizes, ext, trailers)
            d = echo_of(c.request("POST", "/echo",
                                  [("Transfer-Encoding", "chunked")], enc))
            et.eq((d["body_length"], d["body_sha256"]),
                  (len(body), et.sha256(body)),
                  "chunked body (ext %r, trailers %r)" % (ext, trailers))
        d = echo_of(c.request("PUT", "/echo",
                              [("Transfer-Encoding", "chunked")],
                              b"0\r\n\r\n"))
        et.eq((d["method"], d["body_length"]), ("PUT", 0), "empty chunked")
        # still in step after all of that
        et.check_pattern(c.request("GET", "/obj/after?size=10").body, 10)


def test_methods():
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        for m in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            body = b"patch body" if m in ("PATCH", "POST", "PUT") else None
            r = c.request(m, "/echo?method=" + m, body=body)
            et.eq((r.status, r.header("X-Echo-Method")), (200, m),
                  "%s reaches the origin" % m)
            et.eq(r.json()["body_length"], len(body or b""), "body length")


def expect_100(c, target, headers, body):
    """Send the head, wait for 100 Continue, then send the body."""
    c.send(et.build_request("POST", target,
                            headers + [("Expect", "100-continue")]))
    c.settimeout(5)
    line = c.reader.read_line()
    et.eq(line[:12], b"HTTP/1.1 100", "interim response before the body "
          "(got %r)" % line)
    while line != b"\r\n":
        line = c.reader.read_line()
        et.ok(line.endswith(b"\r\n"), "interim head ends")
    c.send(body)
    return c.read_response()


def test_expect_100_continue():
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        body = os.urandom(100000)
        d = echo_of(expect_100(c, "/echo?e=1",
                               [("Content-Length", str(len(body)))], body))
        et.eq((d["body_length"], d["body_sha256"]),
              (len(body), et.sha256(body)), "body after 100 Continue")
        enc = et.chunk_encode(body, (1000, 3333))
        d = echo_of(expect_100(c, "/echo?e=2",
                               [("Transfer-Encoding", "chunked")], enc))
        et.eq((d["body_length"], d["body_sha256"]),
              (len(body), et.sha256(body)), "chunked body after 100")


class Sender(threading.Thread):
    """Sends a large request in the background: the edge may answer and
    close before reading it all."""

    def __init__(self, sock, data):
        super().__init__(daemon=True)
        self.sock = sock
        self.data = data

    def run(self):
        try:
            self.sock.sendall(self.data)
        except OSError:
            pass


def big_request(e, head_fields, body):
    c = e.connect()
    data = et.build_request("POST", "/echo?big=1", head_fields, body)
    s = Sender(c.sock, data)
    s.start()
    r = c.read_response()
    s.join(10)
    c.close()
    return r


def test_max_body_size():
    with et.Origin() as o, \
            et.Edge(o.url, "--max-body-size", "1M") as e:
        limit = 1 << 20
        body = os.urandom(limit)
        d = echo_of(e.request("POST", "/echo?at-limit=1", body=body))
        et.eq(d["body_length"], limit, "a body of exactly the limit passes")
        o.reset()
        big = os.urandom(2 << 20)
        r = big_request(e, [("Content-Length", str(len(big)))], big)
        et.eq(r.status, 413, "Content-Length over --max-body-size")
        et.eq(o.count(), 0, "an announced oversized body never reaches "
              "the origin")
        r = big_request(e, [("Transfer-Encoding", "chunked")],
                        et.chunk_encode(big, (65536,)))
        et.eq(r.status, 413, "chunked body over --max-body-size")
        c = e.connect()
        c.send(et.build_request("POST", "/echo?expect-big=1",
                                [("Content-Length", str(len(big))),
                                 ("Expect", "100-continue")]))
        c.settimeout(5)
        r = c.read_response()
        et.eq(r.status, 413, "Expect: 100-continue with an oversized "
              "Content-Length gets 413 without sending the body")
        c.close()
        d = echo_of(e.request("POST", "/echo?after=1", body=b"ok"))
        et.eq(d["body_length"], 2, "the edge still serves")


def test_body_then_end_of_file():
    """The end of file read behind a whole body (with a length or
    chunked) before the handler took it (the origin connection is still
    being made) does not drop the request.  A race, so it runs many times, with the head apart from the
    body (read while the request is active) or together with it."""
    with et.Origin() as o, et.Edge(o.url) as e:
        for i in range(30):
            body = os.urandom(3000)
            if i % 3 == 2:
                framing, sent = {"Transfer-Encoding": "chunked"}, \
                    et.chunk_encode(body, sizes=(1000,))
            else:
                framing, sent = {"Content-Length": str(len(body))}, body
            head = et.build_request("POST", "/echo?fin=%d" % i, framing)
            with socket.create_connection(("127.0.0.1", e.port), 5) as s:
                if i % 2:
                    s.sendall(head)
                    time.sleep(0.02)
                    s.sendall(sent)
                else:
                    s.sendall(head + sent)
                s.shutdown(socket.SHUT_WR)
                d = echo_of(et.read_response(s))
            et.eq((d["body_length"], d["body_sha256"]),
                  (len(body), et.sha256(body)), "request %d: the body" % i)
        # A body cut by the end of file is still no request.
        for i in range(4):
            with socket.create_connection(("127.0.0.1", e.port), 5) as s:
                s.sendall(et.build_request("POST", "/echo?cut=%d" % i,
                                           {"Content-Length": "3000"}))
                time.sleep(0.02 * (i % 2))
                s.sendall(b"x" * 1000)
                s.shutdown(socket.SHUT_WR)
                s.settimeout(5)
                got = b""
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    got += d
            et.ok(not got.startswith(b"HTTP/1.1 2"),
                  "cut body %d: no success (%r)" % (i, got[:40]))
            et.eq(o.count("/echo", complete=True), 30,
                  "cut body %d: no whole request at the origin" % i)


if __name__ == "__main__":
    et.main()
