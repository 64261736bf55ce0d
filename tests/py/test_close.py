#!/usr/bin/env python3
"""Story: how edged writes its answers and closes a client connection.

A client that asks for the close (Connection: close, or HTTP/1.0) and has
sent nothing more is let go as soon as its answer is written: the
connection is gone from edged at once, not after a wait for the client's
own close.  A client that sent more bytes after such a request still gets
its answer whole (edged lingers rather than reset it).  Answers larger
than the socket takes are finished by the write event, for a slow reader
too, and the connection then answers its next request at once.  The
last segment of an answer before the close carries the FIN: the client
receives no more segments for a closed answer than for one kept alive.
"""

import json
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def admin_edge(o, *extra):
    port = et.free_port()
    return port, et.Edge(o.url, "--admin-listen", "127.0.0.1:%d" % port,
                         *extra)


def open_conns(port):
    with et.Client(port) as c:
        r = c.request("GET", "/stats")
    et.eq(r.status, 200, "/stats status")
    return json.loads(r.body)["connections_open"]


def read_to_eof(c):
    """The client's bytes up to the server's close; fails on a reset."""
    data = bytearray(c.reader.buf)
    c.reader.buf.clear()
    while True:
        chunk = c.sock.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk


def test_asked_close_frees_the_connection_at_once():
    with et.Origin() as o:
        port, edge = admin_edge(o)
        with edge as e:
            with e.connect() as c:
                r = c.request("GET", "/obj/a?size=1000",
                              headers={"Connection": "close"})
                et.check_pattern(r.body, 1000)
                et.eq(read_to_eof(c), b"", "nothing after the answer")
                # Our end stays open: edged must not wait for it.
                t0 = time.monotonic()
                et.wait_for(lambda: open_conns(port) == 0, timeout=1.0,
                            what="edged closed its end")
                et.ok(time.monotonic() - t0 < 1.0, "closed within 1 s")


def test_http10_frees_the_connection_at_once():
    with et.Origin() as o:
        port, edge = admin_edge(o)
        with edge as e:
            with e.connect() as c:
                r = c.request("GET", "/obj/b?size=2000", version="HTTP/1.0")
                et.check_pattern(r.body, 2000)
                et.eq(read_to_eof(c), b"", "nothing after the answer")
                et.wait_for(lambda: open_conns(port) == 0, timeout=1.0,
                            what="edged closed its end")


def test_bytes_after_close_do_not_cut_the_answer():
    with et.Origin() as o:
        port, edge = admin_edge(o)
        with edge as e:
            et.check_pattern(e.connect().request(
                "GET", "/obj/c?size=300000").body, 300000)  # now a hit
            for i in range(5):
                with e.connect() as c:
                    c.send(et.build_request("GET", "/obj/c?size=300000",
                                            {"Connection": "close"}) +
                           et.build_request("GET", "/obj/more%d" % i))
                    r = c.read_response()
                    et.check_pattern(r.body, 300000)
                    et.eq(read_to_eof(c), b"", "the second request is "
                          "not answered")
            et.wait_for(lambda: open_conns(port) == 0, timeout=5.0,
                        what="every connection closed")


def test_large_answer_to_a_slow_reader_then_a_small_one():
    size = 8 * 1024 * 1024
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        et.check_pattern(c.request("GET", "/obj/big?size=%d" % size).body,
                         size)
        # Now a hit: far more than the socket takes in one write.
        c.send(et.build_request("GET", "/obj/big?size=%d" % size))
        time.sleep(0.3)  # edged fills the socket and waits to write
        r = c.read_response()
        et.check_pattern(r.body, size)
        for i in range(3):
            r = c.request("GET", "/obj/small%d?size=10" % i)
            et.check_pattern(r.body, 10)


def test_large_answer_with_close_is_whole():
    size = 4 * 1024 * 1024
    with et.Origin() as o, et.Edge(o.url) as e:
        et.check_pattern(e.connect().request(
            "GET", "/obj/bc?size=%d" % size).body, size)
        with e.connect() as c:
            c.send(et.build_request("GET", "/obj/bc?size=%d" % size,
                                    {"Connection": "close"}))
            time.sleep(0.3)
            r = c.read_response()
            et.check_pattern(r.body, size)
            et.eq(read_to_eof(c), b"", "closed after the answer")


TCPI_SEGS_IN = 140  # struct tcp_info: tcpi_segs_in (Linux 4.2)


def segments_in(e, close):
    """Segments the client received for one hit on a new connection: the
    answer read whole, and with close up to edged's FIN."""
    headers = {"Connection": "close"} if close else {}
    with e.connect() as c:
        r = c.request("GET", "/obj/fin?size=1000", headers=headers)
        et.check_pattern(r.body, 1000)
        if close:
            et.eq(read_to_eof(c), b"", "nothing after the answer")
        info = c.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    if len(info) < TCPI_SEGS_IN + 4:
        raise et.Skip("no tcpi_segs_in in this kernel's tcp_info")
    return struct.unpack_from("I", info, TCPI_SEGS_IN)[0]


def test_fin_rides_on_the_answer():
    with et.Origin() as o, et.Edge(o.url) as e:
        et.check_pattern(e.connect().request(
            "GET", "/obj/fin?size=1000").body, 1000)  # now a hit
        # A window update now and then adds a segment to either: the
        # fewest of a few tries is the exchange itself.
        kept = min(segments_in(e, close=False) for _ in range(8))
        closed = min(segments_in(e, close=True) for _ in range(8))
        et.eq(closed, kept, "segments for a closed answer (%d) against "
              "a kept one (%d)" % (closed, kept))


if __name__ == "__main__":
    et.main()
