#!/usr/bin/env python3
"""Story: how edged reads a plain HTTP/1.1 client.

A request head may arrive with the connection, after it, in pieces, or
larger than one read; pipelined heads arrive together.  A request body is
read only as fast as the origin takes it: while the origin holds it back,
edged keeps a bounded amount, and reads on once the origin reads.  A body
that stops for longer than the client body timeout ends the connection; one
whose pauses are shorter, however long it takes in all, is read whole.
Once the body is read the body timeout no longer runs: the connection
waits for a slow answer or idles as keep-alive allows.
"""

import json
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

UPLOAD = 48 << 20         # bytes a client tries to send a stalled origin
HELD_MAX = 32 << 20       # more than this taken: edged did not stop reading


def test_heads_in_pieces_large_and_pipelined():
    with et.Origin() as o, et.Edge(o.url) as e:
        # Nothing to read at accept: the head comes later, in pieces.
        with e.connect() as c:
            time.sleep(0.2)
            for piece in (b"GET /obj/p1?size=100 HT", b"TP/1.1\r\nHo",
                          b"st: a\r\n\r\n"):
                c.send(piece)
                time.sleep(0.1)
            r = c.read_response()
            et.eq(r.status, 200, "head in pieces")
            et.check_pattern(r.body, 100)
        # A head begun with the connection (the first read, at accept,
        # finds part of it) and ended later; then a second request.
        for _ in range(5):
            with e.connect() as c:
                c.send(b"GET /obj/p4?size=100 HTTP/1.1\r\nHo")
                time.sleep(0.2)
                c.send(b"st: a\r\n\r\n")
                r = c.read_response()
                et.eq(r.status, 200, "head begun at accept, ended later")
                et.check_pattern(r.body, 100)
                time.sleep(0.1)
                r = c.request("GET", "/obj/p4?size=100")
                et.eq(r.status, 200, "the next request on it")
        # A head several reads long.
        fields = {"X-Big-%d" % i: "v" * 4000 for i in range(6)}
        with e.connect() as c:
            r = c.request("GET", "/obj/p2?size=300", headers=fields)
            et.eq(r.status, 200, "24 KiB head")
            et.check_pattern(r.body, 300)
        # Pipelined heads, all in one send, answered in order.
        with e.connect() as c:
            c.send(b"".join(et.build_request(
                "GET", "/obj/p3-%d?size=%d" % (i, 10 + i)) for i in range(40)))
            for i in range(40):
                r = c.read_response()
                et.eq(r.status, 200, "pipelined %d" % i)
                et.check_pattern(r.body, 10 + i)


class HoldingOrigin:
    """A loopback origin that reads a request head, then reads the body
    only once .release is set, and answers with the body's length as
    JSON.  Its receive buffer is small, so what a client got rid of is
    mostly what edged holds."""

    def __init__(self):
        self.release = threading.Event()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.lsock.settimeout(30)
        self.url = "http://127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            c, _ = self.lsock.accept()
        except OSError:
            return
        with c:
            c.settimeout(30)
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = c.recv(4096)
                if not d:
                    return
                buf += d
            head, _, body = buf.partition(b"\r\n\r\n")
            want = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
                    if l.lower().startswith(b"content-length:")][0]
            if not self.release.wait(30):
                return
            got = len(body)
            while got < want:
                d = c.recv(1 << 20)
                if not d:
                    break
                got += len(d)
            reply = json.dumps({"body_length": got}).encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                      b"Cache-Control: no-store\r\n\r\n%s"
                      % (len(reply), reply))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.lsock.close()
        self.thread.join(5)
        return False


def test_upload_read_as_the_origin_takes_it():
    with HoldingOrigin() as o, et.Edge(o.url) as e:
        c = e.connect(timeout=30)
        c.send(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
               % UPLOAD)
        block = b"u" * 65536
        sent = 0
        c.sock.setblocking(False)
        quiet_since = time.monotonic()
        # Send until nothing has been taken for half a second.
        while sent < UPLOAD and time.monotonic() - quiet_since < 0.5:
            try:
                n = c.sock.send(block[:min(len(block), UPLOAD - sent)])
            except BlockingIOError:
                time.sleep(0.01)
                continue
            sent += n
            quiet_since = time.monotonic()
        et.ok(sent < HELD_MAX,
              "edged took %d bytes while the origin read none" % sent)
        o.release.set()
        c.sock.setblocking(True)
        while sent < UPLOAD:
            sent += c.sock.send(block[:min(len(block), UPLOAD - sent)])
        r = c.read_response("POST")
        et.eq(r.status, 200, "status once the origin read")
        et.eq(json.loads(r.body)["body_length"], UPLOAD, "body read whole")
        c.close()


def test_body_timeout_counts_pauses_not_the_whole():
    with et.Origin() as o, et.Edge(o.url, "--client-body-timeout",
                                   "1s") as e:
        # Ten pieces, 0.4 s apart: 3.6 s in all, no pause of 1 s.
        with e.connect(timeout=10) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\n"
                   b"Content-Length: 1000\r\n\r\n")
            for _ in range(10):
                time.sleep(0.4)
                c.send(b"b" * 100)
            r = c.read_response("POST")
            et.eq(r.status, 200, "slow body read whole")
            et.eq(json.loads(r.body)["body_length"], 1000, "echoed length")
        # A body that stops: the connection ends after about 1 s.
        with e.connect(timeout=10) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\n"
                   b"Content-Length: 1000\r\n\r\n" + b"b" * 10)
            t0 = time.monotonic()
            et.ok(c.is_open(wait=0.7), "open before the timeout")
            et.wait_for(lambda: not c.is_open(wait=0.1), timeout=4.0,
                        what="the stalled upload's connection closed")
            et.ok(time.monotonic() - t0 < 4.0, "closed within 4 s")


def test_body_timeout_ends_with_the_body():
    # The body timeout covers reading a body, not what the connection
    # does after it: idle keep-alive, or waiting for a slow answer.
    with et.Origin() as o, et.Edge(o.url, "--client-body-timeout", "1s",
                                   "--keepalive-timeout", "10s") as e:
        with e.connect(timeout=10) as c:
            r = c.request("POST", "/echo", body=b"b" * 1000)
            et.eq(r.status, 200, "upload answered")
            time.sleep(1.6)
            et.ok(c.is_open(wait=0.1), "idle past the body timeout: open")
            r = c.request("GET", "/obj/after-body?size=100&delay_ms=1600")
            et.eq(r.status, 200, "slow answer after an upload")
            et.check_pattern(r.body, 100)


if __name__ == "__main__":
    et.main()
