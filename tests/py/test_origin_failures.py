#!/usr/bin/env python3
"""Story: when the origin fails, the client learns it honestly.

An origin that is down gives 502 at once; one that cannot be connected to
in time, or is slow to send its head, gives 504 after the configured
timeout; one that resets, hangs up or talks nonsense before its head (a
bare CR or a NUL inside a field included) gives 502.  An origin that resets or stalls in the middle of a body makes edged
close the client connection, so the client sees a truncated transfer and
never a complete-looking body.  After every failure edged still serves.
"""

import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def good(e, what):
    r = e.request("GET", "/obj/good?size=1000")
    et.eq(r.status, 200, "a good request after %s" % what)
    et.check_pattern(r.body, 1000)


def timed(e, target, **kw):
    c = e.connect()
    t0 = time.monotonic()
    try:
        r = c.request("GET", target, **kw)
    finally:
        c.close()
    return r, time.monotonic() - t0


def test_origin_down_502_then_up():
    port = et.free_port()
    with et.Edge("http://127.0.0.1:%d" % port,
                 "--origin-connect-timeout", "1s") as e:
        r, dt = timed(e, "/obj/a?size=10")
        et.eq(r.status, 502, "origin refused the connection")
        et.ok(dt < 1.0, "502 at once, not after a timeout (%.2f s)" % dt)
        et.ok(len(r.body) > 0, "a short text body")
        r, dt = timed(e, "/obj/a?size=10")
        et.eq(r.status, 502, "and again")
        with et.Origin(port=port):
            good(e, "the origin came up")


def test_connect_timeout_504():
    # A listener whose accept queue is full: the kernel drops further SYNs,
    # so edged's connect hangs until --origin-connect-timeout.
    with et.SilentListener() as sl:
        with et.Edge("http://127.0.0.1:%d" % sl.port,
                     "--origin-connect-timeout", "1s",
                     "--origin-first-byte-timeout", "10s") as e:
            r, dt = timed(e, "/obj/a?size=10")
            et.eq(r.status, 504, "connect timeout")
            et.ok(0.8 <= dt <= 3.0, "after ~1 s (%.2f s)" % dt)


def test_first_byte_timeout_504():
    with et.Origin() as o, \
            et.Edge(o.url, "--origin-first-byte-timeout", "1s") as e:
        r, dt = timed(e, "/obj/slow?size=10&delay_ms=3000")
        et.eq(r.status, 504, "slow origin head")
        et.ok(0.8 <= dt <= 2.5, "after ~1 s (%.2f s)" % dt)
        good(e, "a first-byte timeout")
        r, dt = timed(e, "/obj/fine?size=10&delay_ms=300")
        et.eq(r.status, 200, "a head within the timeout is fine")


def test_failures_before_head_502():
    with et.Origin() as o, et.Edge(o.url) as e:
        for q in ("reset=1", "hangup=1", "garbage=1"):
            r, dt = timed(e, "/obj/f?size=10&" + q)
            et.eq(r.status, 502, "origin %s before the head" % q)
            et.ok(dt < 2.0, "answered quickly (%.2f s)" % dt)
            good(e, q)


def test_bad_bytes_in_origin_field_502():
    # RFC 9110 §5.5: a bare CR or a NUL inside a field is invalid.  Passed
    # on, a bare CR ends the line early for some clients (the next field
    # was glued to it).
    with et.Origin() as o, et.Edge(o.url) as e:
        for name, v in (("CR", "a%0Db"), ("NUL", "a%00b")):
            r = et.raw_request(e.port, b"GET /obj/cr?size=10&hdr=X-A:" +
                               v.encode() + b"&hdr=X-B:c HTTP/1.1\r\n"
                               b"Host: x\r\nConnection: close\r\n\r\n", 5)
            et.ok(r.data.startswith(b"HTTP/1.1 502 "),
                  "%s in an origin field: 502 (%r)" % (name, r.data[:80]))
            et.ok(b"\rb" not in r.data and b"\0" not in r.data,
                  "%s: nothing of the field reached the client" % name)
            good(e, name)


def test_client_gives_up_on_slow_origin():
    with et.Origin() as o, et.Edge(o.url) as e:
        for i in range(5):
            c = e.connect()
            c.send(et.build_request("GET", "/obj/gone%d?size=100000"
                                    "&delay_ms=500" % i))
            c.close()
        c = e.connect()
        c.send(et.build_request("GET", "/obj/gone-mid?size=10000000"
                                "&body_delay_ms=300"))
        c.read_response(read_body=False)
        c.close()
        good(e, "clients that went away while the origin was slow")
        time.sleep(0.8)  # let the abandoned fetches end, then stop cleanly


def truncated(e, target, limit_s=10):
    """GET <target>; assert the client never sees a complete-looking 200
    body and that the connection is closed.  Returns (response, seconds)."""
    c = e.connect()
    t0 = time.monotonic()
    try:
        c.send(et.build_request("GET", target))
        c.settimeout(limit_s)
        r = c.read_response(allow_incomplete=True)
        dt = time.monotonic() - t0
        if r.status == 200:
            et.ok(not r.complete, "a broken origin body must not look "
                  "complete to the client (%r)" % r)
            et.ok(c.reader.eof, "the client connection is closed")
        else:
            # answering 5xx is honest too, if nothing was sent yet
            et.ok(r.status in (502, 504), "status %d" % r.status)
        return r, dt
    finally:
        c.close()


def test_reset_mid_body():
    with et.Origin() as o, et.Edge(o.url) as e:
        size = 10 << 20
        r, _ = truncated(e, "/obj/r?size=%d&reset_after=262144" % size)
        et.eq(r.status, 200, "the head was on its way before the reset")
        et.ok(len(r.body) < size, "fewer than Content-Length bytes")
        et.check_pattern(r.body)
        good(e, "a reset with Content-Length")
        r, _ = truncated(e, "/obj/rc?size=%d&chunked=1&reset_after=262144"
                         % size)
        et.eq(r.framing, "chunked", "chunked to the client")
        et.check_pattern(r.body)
        good(e, "a reset in a chunked body")


def test_idle_mid_body():
    with et.Origin() as o, \
            et.Edge(o.url, "--origin-idle-timeout", "1s",
                    "--origin-first-byte-timeout", "5s") as e:
        for chunked in (0, 1):
            r, dt = truncated(e, "/obj/i?size=1048576&chunked=%d"
                              "&pause_after=131072&pause_ms=4000" % chunked)
            et.eq(r.status, 200, "head forwarded before the stall")
            et.check_pattern(r.body)
            et.ok(dt < 3.0, "cut off by --origin-idle-timeout, not by the "
                  "origin resuming at 4 s (%.2f s)" % dt)
            good(e, "an idle origin (chunked=%d)" % chunked)
        # stalled between the head and the first body byte
        r, dt = truncated(e, "/obj/i2?size=100000&body_delay_ms=4000")
        et.ok(dt < 3.0, "cut off by --origin-idle-timeout (%.2f s)" % dt)
        good(e, "an idle origin before the first body byte")


if __name__ == "__main__":
    et.main()
