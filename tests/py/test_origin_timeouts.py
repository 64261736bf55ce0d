#!/usr/bin/env python3
"""Story: an origin timeout is named by the phase it happened in.

libcurl reports one error for every timeout; edged names it by where the
fetch was: connect_timeout (no TCP connection), tls_timeout (connected, no
TLS handshake), first_byte_timeout (the request went out, no response
head) or idle_timeout (inside the body), whichever clock ran out.  The
access log's origin_result, the error log and the per-kind counters say
so.  A keep-alive connection that was already open has no connect of its
own, and a timeout on it must not be called a connect timeout: the first
byte and the body are timed on a reused connection here (one worker, so
one connection pool; the origin counts its connections).
"""

import json
import re
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def origin_result(e, path):
    """The origin_result field of the one access log line of <path>."""
    line = e.wait_access_log(lambda l: ('"GET %s ' % path) in l, 5.0,
                             what="the access log line of " + path)
    m = re.search(r'" \d{3} \d+ \d+ (\S+) (\S+) "', line)
    et.ok(m is not None, "origin fields in %r" % line)
    return m.group(2)


def kinds(port):
    with et.Client(port) as c:
        r = c.request("GET", "/stats")
        et.eq(r.status, 200, "stats status")
        return json.loads(r.body)["sites"]["default"]["origin_errors_by_kind"]


def get(e, path):
    c = e.connect()
    try:
        c.send(et.build_request("GET", path))
        c.settimeout(15)
        return c.read_response(allow_incomplete=True)
    finally:
        c.close()


def warm(e, o):
    """One fast request: the worker keeps its origin connection open."""
    r = e.request("GET", "/obj/warm?size=10")
    et.eq(r.status, 200, "a first request opens the connection")
    et.eq(o.connections(), 1, "one origin connection")


def test_connect_timeout():
    # A listener whose accept queue is full: the kernel drops further SYNs.
    with et.SilentListener() as sl:
        with et.Edge("http://127.0.0.1:%d" % sl.port,
                     "--origin-connect-timeout", "1s",
                     "--origin-first-byte-timeout", "10s") as e:
            r = get(e, "/obj/c?size=10")
            et.eq(r.status, 504, "connect timeout")
            et.eq(origin_result(e, "/obj/c?size=10"), "connect_timeout",
                  "named so")


def test_tls_handshake_timeout():
    # Accepts TCP connections and never answers the TLS ClientHello.
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    lsock.settimeout(0.2)
    port = lsock.getsockname()[1]
    held, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                held.append(lsock.accept()[0])
            except OSError:
                pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    aport = et.free_port()
    try:
        with et.Edge("https://127.0.0.1:%d" % port,
                     "--origin-connect-timeout", "1s",
                     "--origin-first-byte-timeout", "10s",
                     "--admin-listen", "127.0.0.1:%d" % aport) as e:
            t0 = time.monotonic()
            r = get(e, "/obj/t?size=10")
            dt = time.monotonic() - t0
            et.eq(r.status, 504, "a handshake that never ends")
            et.ok(0.8 <= dt <= 3.0, "after the connect timeout (%.2f s)" % dt)
            et.ok(len(held) >= 1, "the TCP connection was accepted")
            et.eq(origin_result(e, "/obj/t?size=10"), "tls_timeout",
                  "named by its phase")
            et.eq(kinds(aport).get("tls_timeout"), 1, "and counted so")
            et.ok("fetch timed out: tls_timeout" in e.stderr_text() or
                  "(tls_timeout)" in e.stderr_text(),
                  "and logged so:\n" + e.stderr_text())
    finally:
        stop.set()
        t.join(2)
        for s in held:
            s.close()
        lsock.close()


def test_first_byte_timeout_on_a_reused_connection():
    with et.Origin() as o, \
            et.Edge(o.url, "--origin-first-byte-timeout", "1s",
                    threads=1) as e:
        warm(e, o)
        path = "/obj/slowhead?size=10&delay_ms=3000"
        r = get(e, path)
        et.eq(r.status, 504, "no head in time")
        et.eq(o.connections(), 1, "on the connection that was open")
        et.eq(origin_result(e, path), "first_byte_timeout",
              "a reused connection's timeout is not a connect timeout")


def test_first_byte_timeout_on_a_new_connection():
    with et.Origin() as o, \
            et.Edge(o.url, "--origin-first-byte-timeout", "1s",
                    threads=1) as e:
        path = "/obj/slowhead?size=10&delay_ms=3000"
        r = get(e, path)
        et.eq(r.status, 504, "no head in time")
        et.eq(origin_result(e, path), "first_byte_timeout", "named so")


def test_body_timeouts_on_a_reused_connection():
    # The idle clock, then the total one, running out inside the body.
    for flag in ("--origin-idle-timeout", "--origin-total-timeout"):
        with et.Origin() as o, \
                et.Edge(o.url, flag, "1s", threads=1) as e:
            warm(e, o)
            path = "/obj/stall?size=100000&pause_after=1000&pause_ms=3000"
            r = get(e, path)
            et.eq(r.status, 200, "%s: the head came in time" % flag)
            et.ok(not r.complete, "%s: the body is cut short" % flag)
            et.eq(o.connections(), 1, "on the connection that was open")
            et.eq(origin_result(e, path), "idle_timeout",
                  "%s: named by its phase, the body" % flag)


def test_idle_timeout_counts_from_the_last_bytes():
    # 200 bytes every 0.3 s for 2,000 bytes (2.7 s), then 4 s of silence:
    # with a 1 s idle timeout the body runs past 1 s of the head and is
    # cut 1 s after its last bytes came, not earlier.
    with et.Origin() as o, \
            et.Edge(o.url, "--origin-idle-timeout", "1s", threads=1) as e:
        warm(e, o)
        path = ("/obj/drip?size=3000&drip=200&tick_ms=300&pause_after=2000"
                "&pause_ms=4000")
        t0 = time.monotonic()
        r = get(e, path)
        took = time.monotonic() - t0
        et.eq(r.status, 200, "the head came in time")
        et.ok(not r.complete, "the body is cut short")
        et.eq(len(r.body), 2000, "every byte before the silence")
        et.ok(3.4 <= took < 6.5, "cut about 1 s after the last bytes: %.2f s"
              % took)
        et.eq(origin_result(e, path), "idle_timeout", "named by its phase")


if __name__ == "__main__":
    et.main()
