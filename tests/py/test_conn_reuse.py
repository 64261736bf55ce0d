#!/usr/bin/env python3
"""Story: a connection's memory outlives it, and nothing else does.

edged keeps the memory and the two buffers of a closed plain connection
for the next one.  Connections that end in every awkward way (a head
bigger than the room kept for it, a head cut short, an answer the client
never read, a body left unread) are followed, on the same worker, by
clients that must each see a clean connection: their own answers only,
whole, and no bytes left behind by the one before.
"""
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

BIG = 4 * 1024 * 1024  # more than the socket takes: output left behind


def clean_connections(e, n):
    """<n> new connections, kept alive for two hits or closed after one,
    each answered with exactly its own response."""
    for i in range(n):
        with e.connect() as c:
            if i % 2:
                r = c.request("GET", "/obj/small?size=700",
                              headers={"Connection": "close"})
                et.check_pattern(r.body, 700)
                c.settimeout(5)
                et.eq(c.sock.recv(65536), b"", "connection %d: nothing "
                      "after its answer" % i)
            else:
                for _ in range(2):
                    r = c.request("GET", "/obj/small?size=700")
                    et.eq(r.status, 200, "connection %d: status" % i)
                    et.check_pattern(r.body, 700)


def test_after_unread_answers_and_cut_heads():
    with et.Origin() as o, et.Edge(o.url, threads=1) as e:
        et.check_pattern(e.request("GET", "/obj/big?size=%d" % BIG).body,
                         BIG)
        et.check_pattern(e.request("GET", "/obj/small?size=700").body, 700)
        for _ in range(3):
            # An answer far larger than the socket takes, never read: the
            # connection ends with output queued and its write event on.
            c = e.connect()
            c.send(et.build_request("GET", "/obj/big?size=%d" % BIG))
            time.sleep(0.2)
            c.sock.close()
            # A head cut short: input left in the buffer.
            c = e.connect()
            c.send(b"GET /obj/small?size=700 HTTP/1.1\r\nHost: a\r\nX-Le")
            time.sleep(0.1)
            c.sock.close()
            # A head larger than the room kept for one (1 KiB).
            with e.connect() as c:
                r = c.request("GET", "/obj/small?size=700",
                              headers={"X-Long": "v" * 3000})
                et.check_pattern(r.body, 700)
            # A body announced and not sent whole.
            c = e.connect()
            c.send(et.build_request("POST", "/obj/post",
                                    {"Content-Length": "5000"}) + b"x" * 100)
            time.sleep(0.1)
            c.sock.close()
            clean_connections(e, 6)


def test_reused_connections_keep_their_timers():
    """A kept connection's timer stays assigned for the next: its
    keep-alive timeout must still close each one that reuses it."""
    with et.Origin() as o, \
            et.Edge(o.url, "--keepalive-timeout", "1s", threads=1) as e:
        clean_connections(e, 4)
        for i in range(3):
            with e.connect() as c:
                et.check_pattern(
                    c.request("GET", "/obj/small?size=700").body, 700)
                t0 = time.monotonic()
                c.assert_closed(timeout=3.0,
                                what="idle reused connection %d" % i)
                dt = time.monotonic() - t0
                et.ok(0.8 <= dt <= 3.0,
                      "connection %d closed after %.2f s (timeout 1 s)"
                      % (i, dt))
        clean_connections(e, 2)


if __name__ == "__main__":
    et.main()
