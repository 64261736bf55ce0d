"""HTTP/2 limits and attacks: each refused with the right frame and code,
counted, with bounded work, and without effect on other connections.

A raw client (h2raw.py) on a listen_h2c port sends what a browser never
would: more streams than SETTINGS_MAX_CONCURRENT_STREAMS, an oversized
header list, a bad HPACK table size update, streams opened and reset in a
loop (CVE-2023-44487), a CONTINUATION flood, SETTINGS, PING, PRIORITY and
empty DATA floods, a window it never opens, malformed header sections and
a Content-Length that disagrees with its DATA.  After each, a second
connection still gets its answer, and /stats counts the refusal under
http2.refused.
"""

import json
import struct
import sys
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import h2raw  # noqa: E402

h2raw.need_h2()
import edgetest as et  # noqa: E402

MAX_STREAMS = 20


def h2_edge(o, *extra):
    port, admin = et.free_port(), et.free_port()
    e = et.Edge(o.url, "--listen-h2c", "127.0.0.1:%d" % port,
                "--admin-listen", "127.0.0.1:%d" % admin,
                "--h2-max-concurrent-streams", str(MAX_STREAMS), *extra,
                threads=1)
    e.h2_port, e.admin_port = port, admin
    return e


def stats(e):
    with urllib.request.urlopen("http://127.0.0.1:%d/stats" % e.admin_port,
                                timeout=5) as r:
        return json.load(r)


def refused(e, reason):
    return stats(e)["http2"]["refused"][reason]


def others_fine(e):
    """A fresh connection is answered at once."""
    with h2raw.Conn(e.h2_port) as c:
        st = c.response(c.request("/obj/other?size=3000"), timeout=5)
        et.eq(st.status, 200, "another connection's status")
        et.check_pattern(bytes(st.body), 3000)


def test_concurrent_streams_refused():
    with et.Origin() as o, h2_edge(o) as e, h2raw.Conn(e.h2_port) as c:
        sids = [c.request("/obj/slow%d?size=10&delay_ms=1500" % i)
                for i in range(MAX_STREAMS + 5)]
        sts = [c.response(s, timeout=10) for s in sids]
        refused_n = sum(1 for s in sts if s.reset is not None)
        et.ok(refused_n >= 5, "5 streams over the limit reset: %d"
              % refused_n)
        et.ok(all(s.reset in (h2raw.REFUSED_STREAM, h2raw.PROTOCOL_ERROR)
                  for s in sts if s.reset is not None), "reset codes")
        et.eq(sum(1 for s in sts if s.status == 200), len(sids) - refused_n,
              "the others answered")
        et.eq(c.server_settings.get(h2raw.SETTINGS_MAX_CONCURRENT_STREAMS),
              MAX_STREAMS, "SETTINGS_MAX_CONCURRENT_STREAMS")
        et.eq(c.server_settings.get(h2raw.SETTINGS_ENABLE_PUSH), 0,
              "no push")
        et.ok(refused(e, "concurrent_streams") >= 5, "counted")
        others_fine(e)


def test_header_list_too_large():
    with et.Origin() as o, h2_edge(o) as e, h2raw.Conn(e.h2_port) as c:
        sid = c.request("/obj/big-head?size=10",
                        headers=[("x-big%d" % i, "v" * 4000)
                                 for i in range(10)])
        st = c.response(sid)
        et.eq(st.status, 431, "status")
        et.eq(o.count("/obj/big-head"), 0, "never forwarded")
        et.eq(refused(e, "header_list"), 1, "counted")
        # The connection goes on.
        st = c.response(c.request("/obj/after?size=10"))
        et.eq(st.status, 200, "next stream")
        others_fine(e)


def test_hpack_table_size_over_the_limit():
    with et.Origin() as o, h2_edge(o) as e, h2raw.Conn(e.h2_port) as c:
        # A dynamic table size update (RFC 7541 §6.3) to 1 MiB, over the
        # 4096 bytes our SETTINGS allow.
        upd = bytes([0x3f]) + bytes([0xe1, 0xff, 0x3f])
        block = upd + c.block([(":method", "GET"), (":scheme", "http"),
                               (":authority", "localhost"),
                               (":path", "/obj/x")])
        c.send_frame(h2raw.HEADERS, h2raw.END_HEADERS | h2raw.END_STREAM,
                     1, block)
        et.eq(c.goaway_code(), h2raw.COMPRESSION_ERROR, "GOAWAY code")
        et.ok(c.drain_until_closed(5), "closed")
        et.eq(refused(e, "hpack"), 1, "counted")
        others_fine(e)


@et.timeout(60)
def test_rapid_reset():
    with et.Origin() as o, h2_edge(o) as e, h2raw.Conn(e.h2_port) as c:
        frames = b""
        for i in range(2000):
            sid = c.new_sid()
            frames += h2raw.frame(
                h2raw.HEADERS, h2raw.END_HEADERS | h2raw.END_STREAM, sid,
                c.block([(":method", "GET"), (":scheme", "http"),
                         (":authority", "localhost"),
                         (":path", "/obj/rr%d?size=10&delay_ms=500" % i)]))
            frames += h2raw.frame(h2raw.RST_STREAM, 0, sid,
                                  struct.pack(">I", h2raw.CANCEL))
        try:
            c.send(frames)
        except OSError:
            pass  # closed under us: what we want
        et.eq(c.goaway_code(), h2raw.ENHANCE_YOUR_CALM, "GOAWAY code")
        et.ok(refused(e, "rapid_reset") >= 1, "counted")
        # The budget (twice the concurrent streams) bounds the work.
        n = o.count()
        et.ok(n <= 3 * MAX_STREAMS, "origin requests bounded: %d" % n)
        others_fine(e)


def test_continuation_flood():
    with et.Origin() as o, h2_edge(o) as e, h2raw.Conn(e.h2_port) as c:
        block = c.block([(":method", "GET"), (":scheme", "http"),
                         (":authority", "localhost"), (":path", "/obj/c")])
        data = h2raw.frame(h2raw.HEADERS, 0, 1, block)
        for _ in range(200):
            data += h2raw.frame(h2raw.CONTINUATION, 0, 1,
                                c.block([("x-a", "b")]))
        try:
            c.send(data)
        except OSError:
            pass
        code = c.goaway_code()
        et.ok(code in (h2raw.ENHANCE_YOUR_CALM, h2raw.PROTOCOL_ERROR),
              "GOAWAY code %r" % code)
        et.ok(c.drain_until_closed(5), "closed")
        et.eq(refused(e, "continuation_flood"), 1, "counted")
        et.eq(o.count(), 0, "nothing forwarded")
        others_fine(e)


def flood(e, make, reason):
    with h2raw.Conn(e.h2_port) as c:
        data = b"".join(make(c, i) for i in range(3000))
        try:
            c.send(data)
        except OSError:
            pass
        et.eq(c.goaway_code(), h2raw.ENHANCE_YOUR_CALM,
              reason + ": GOAWAY code")
        et.ok(c.drain_until_closed(5), reason + ": closed")
    et.ok(refused(e, reason) >= 1, reason + ": counted")
    others_fine(e)


def test_settings_ping_priority_floods():
    with et.Origin() as o, h2_edge(o) as e:
        flood(e, lambda c, i: h2raw.frame(h2raw.SETTINGS, 0, 0),
              "settings_flood")
        flood(e, lambda c, i: h2raw.frame(h2raw.PING, 0, 0, b"12345678"),
              "ping_flood")
        flood(e, lambda c, i: h2raw.frame(
            h2raw.PRIORITY, 0, 2 * i + 1, struct.pack(">IB", 0, 15)),
            "priority_flood")


def test_empty_data_frames():
    with et.Origin() as o, h2_edge(o) as e:
        def make(c, i):
            if i == 0:
                return h2raw.frame(
                    h2raw.HEADERS, h2raw.END_HEADERS, 1,
                    c.block([(":method", "POST"), (":scheme", "http"),
                             (":authority", "localhost"),
                             (":path", "/echo")]))
            return h2raw.frame(h2raw.DATA, 0, 1)
        flood(e, make, "empty_data")


def test_slow_read_window_never_opened():
    with et.Origin() as o, h2_edge(o, "--send-timeout", "1s") as e:
        with h2raw.Conn(e.h2_port, auto_window=False,
                        settings=[(h2raw.SETTINGS_INITIAL_WINDOW_SIZE,
                                   0)]) as c:
            t0 = time.monotonic()
            sid = c.request("/obj/slow-read?size=5000000")
            st = c.response(sid, timeout=10)
            et.eq(st.status, 200, "the head went out")
            et.eq(len(st.body), 0, "no body through a shut window")
            et.eq(st.reset, h2raw.CANCEL, "RST_STREAM code")
            et.ok(time.monotonic() - t0 < 5, "within the send timeout")
            et.eq(refused(e, "slow_read"), 1, "counted")
            # The connection itself is fine.
            c.send_frame(h2raw.PING, 0, 0, b"abcdefgh")
            deadline = time.monotonic() + 5
            while True:
                f = c.read_frame(deadline - time.monotonic())
                if f and f[0] == h2raw.PING and f[1] & h2raw.ACK:
                    break
        others_fine(e)
        # The origin transfer paused with the client: the edge holds a
        # bounded part of the 5 MB (its stream and connection budgets).
        et.ok(e.rss_kib() < 200 * 1024, "memory")


BAD_HEADERS = [
    ("no :path", [(":method", "GET"), (":scheme", "http"),
                  (":authority", "localhost")]),
    ("unknown pseudo-header", [(":method", "GET"), (":scheme", "http"),
                               (":authority", "localhost"),
                               (":path", "/obj/a"), (":foo", "x")]),
    ("pseudo-header after a field", [(":method", "GET"),
                                     (":scheme", "http"), ("x-a", "1"),
                                     (":authority", "localhost"),
                                     (":path", "/obj/a")]),
    ("connection-specific field", [(":method", "GET"), (":scheme", "http"),
                                   (":authority", "localhost"),
                                   (":path", "/obj/a"),
                                   ("connection", "keep-alive")]),
    ("transfer-encoding", [(":method", "GET"), (":scheme", "http"),
                           (":authority", "localhost"),
                           (":path", "/obj/a"),
                           ("transfer-encoding", "chunked")]),
    ("upper-case name", [(":method", "GET"), (":scheme", "http"),
                         (":authority", "localhost"), (":path", "/obj/a"),
                         ("X-Upper", "1")]),
]


def test_malformed_header_sections():
    with et.Origin() as o, h2_edge(o) as e, h2raw.Conn(e.h2_port) as c:
        for what, hs in BAD_HEADERS:
            sid = c.new_sid()
            c.send_frame(h2raw.HEADERS, h2raw.END_HEADERS | h2raw.END_STREAM,
                         sid, c.block(hs))
            st = c.response(sid)
            et.eq(st.reset, h2raw.PROTOCOL_ERROR, what + ": RST_STREAM")
        et.eq(o.count(), 0, "nothing forwarded")
        et.eq(refused(e, "bad_header"), len(BAD_HEADERS), "counted")
        st = c.response(c.request("/obj/fine?size=10"))
        et.eq(st.status, 200, "the connection goes on")
        others_fine(e)


def test_content_length_disagrees_with_data():
    with et.Origin() as o, h2_edge(o) as e, h2raw.Conn(e.h2_port) as c:
        sid = c.request("/echo", method="POST",
                        headers=[("content-length", "10")], body=b"12345")
        st = c.response(sid)
        et.eq(st.reset, h2raw.PROTOCOL_ERROR, "fewer bytes: RST_STREAM")
        sid = c.request("/echo", method="POST",
                        headers=[("content-length", "3")], body=b"12345")
        st = c.response(sid)
        et.eq(st.reset, h2raw.PROTOCOL_ERROR, "more bytes: RST_STREAM")
        et.eq(refused(e, "content_length"), 2, "counted")
        st = c.response(c.request("/echo", method="POST",
                                  headers=[("content-length", "5")],
                                  body=b"12345"))
        et.eq(st.status, 200, "a body that agrees")
        et.eq(json.loads(bytes(st.body))["body_length"], 5, "echoed")
        others_fine(e)


if __name__ == "__main__":
    et.main()
