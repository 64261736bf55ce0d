"""The node's stories over HTTP/2: misses and hits, a fill shared by an
HTTP/1.1 client and an HTTP/2 stream, ranges, revalidation, request
bodies streamed to the origin, many streams on one connection, ALPN h2 on
a TLS listener (and http/1.1 when tls_alpn says so), hits over TLS in
whole records, requests counted by protocol in /metrics, and a graceful
GOAWAY on SIGTERM that lets the streams in flight finish.  curl --http2-prior-knowledge and curl --http2
tell the client side of the simple stories, the raw client (h2raw.py)
the others.
"""

import hashlib
import json
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import h2raw  # noqa: E402

h2raw.need_h2()
import edgetest as et  # noqa: E402

CURL = shutil.which("curl")


def h2_edge(o, *extra, threads=2):
    port, admin = et.free_port(), et.free_port()
    e = et.Edge(o.url, "--listen-h2c", "127.0.0.1:%d" % port,
                "--admin-listen", "127.0.0.1:%d" % admin,
                "--cache-dir", et.mktemp("cache"), *extra, threads=threads)
    e.h2_port, e.admin_port = port, admin
    return e


def admin(e, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s"
                                % (e.admin_port, path), timeout=5) as r:
        return r.read().decode()


def curl(*args):
    if CURL is None:
        raise et.Skip("no curl")
    p = subprocess.run([CURL, "-sS"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def test_miss_then_hit_with_curl():
    with et.Origin() as o, h2_edge(o) as e:
        url = "http://127.0.0.1:%d/obj/mh?size=100000&ttl=60" % e.h2_port
        for i, want in enumerate(("fwd=uri-miss", "hit")):
            rc, out, err = curl("--http2-prior-knowledge", "-D", "-", url)
            et.eq(rc, 0, "curl: " + err)
            head, body = out.split(b"\r\n\r\n", 1)
            et.ok(head.startswith(b"HTTP/2 200"), "HTTP/2 200: %r" % head)
            et.ok(want.encode() in head, "Cache-Status %s: %r" % (want, head))
            et.check_pattern(body, 100000)
        et.eq(o.count("/obj/mh"), 1, "one origin request")
        et.wait_for(lambda: sum("/obj/mh" in l
                                for l in e.access_log_lines()) == 2, 5,
                    what="two access log lines")
        log = [l for l in e.access_log_lines() if "/obj/mh" in l]
        et.eq(len(log), 2, "two access log lines")
        et.ok(all('HTTP/2"' in l for l in log), "protocol logged: %r" % log)
        m = admin(e, "/metrics")
        et.ok('edge_requests_by_protocol_total{protocol="HTTP/2"} 2' in m,
              "requests by protocol in /metrics")
        et.ok("edge_h2_connections_total 2" in m, "h2 connections")


def test_many_streams_on_one_connection():
    with et.Origin() as o, h2_edge(o) as e, h2raw.Conn(e.h2_port) as c:
        sizes = [1, 100, 16384, 16385, 70000, 300000, 5] * 5
        sids = [(c.request("/obj/m%d?size=%d&ttl=60" % (i % 7, n)), n)
                for i, n in enumerate(sizes)]
        for sid, n in sids:
            st = c.response(sid, timeout=20)
            et.eq(st.status, 200, "status")
            et.eq(st.header("content-length"), str(n), "content-length")
            et.check_pattern(bytes(st.body), n)


def test_shared_fill_h1_client_and_h2_stream():
    with et.Origin() as o, h2_edge(o) as e:
        target = "/obj/shared?size=300000&ttl=60&delay_ms=600"
        res = {}

        def h1():
            res["h1"] = e.request("GET", target)

        t = threading.Thread(target=h1)
        t.start()
        et.wait_for(lambda: o.count("/obj/shared") == 1, 5, what="fill")
        with h2raw.Conn(e.h2_port) as c:
            # The same Host: the same cache key.
            st = c.response(c.request(target, authority="edge.test"),
                            timeout=10)
        t.join(10)
        et.eq(st.status, 200, "h2 status")
        et.check_pattern(bytes(st.body), 300000)
        et.eq(res["h1"].status, 200, "h1 status")
        et.check_pattern(res["h1"].body, 300000)
        et.eq(o.count("/obj/shared"), 1, "one origin fetch for both")
        st_json = json.loads(admin(e, "/stats"))
        et.ok(st_json["cache"]["coalesced"] >= 1, "coalesced")


def test_range_over_h2():
    with et.Origin() as o, h2_edge(o) as e, h2raw.Conn(e.h2_port) as c:
        c.response(c.request("/obj/r?size=50000&ttl=60"))
        st = c.response(c.request("/obj/r?size=50000&ttl=60",
                                  headers=[("range", "bytes=1000-1999")]))
        et.eq(st.status, 206, "status")
        et.eq(st.header("content-range"), "bytes 1000-1999/50000", "range")
        et.eq(bytes(st.body), et.pattern(1000, 1000), "the bytes")


def test_early_hints_over_h2():
    """The origin's 103 and 102 reach an h2 client as HEADERS frames that
    do not end the stream, before the final response; none is stored."""
    hints = (b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n"
             b"\r\nHTTP/1.1 102 Processing\r\n\r\n")
    final = (b"HTTP/1.1 200 OK\r\nCache-Control: max-age=300\r\n"
             b"Content-Length: 5\r\n\r\nhello")
    with et.RawOrigin(hints + final) as o, h2_edge(o) as e, \
            h2raw.Conn(e.h2_port) as c:
        st = c.response(c.request("/page"))
        et.eq([v for k, v in st.headers if k == ":status"],
              ["103", "102", "200"], "103, 102, then the final status")
        et.ok(("link", "</s.css>; rel=preload") in st.headers,
              "the 103's Link: %r" % st.headers)
        et.eq(bytes(st.body), b"hello", "the body")
        st = c.response(c.request("/page"))
        et.eq([v for k, v in st.headers if k == ":status"], ["200"],
              "the stored response alone")
        et.ok("link" not in [k for k, v in st.headers], "no Link stored")


def test_revalidation_over_h2():
    with et.Origin() as o, h2_edge(o) as e, h2raw.Conn(e.h2_port) as c:
        t = "/obj/rv?size=2000&ttl=1&hdr=ETag:%22v1%22"
        st = c.response(c.request(t))
        et.eq(st.status, 200, "first")
        time.sleep(1.3)
        st = c.response(c.request(t))
        et.eq(st.status, 200, "after the lifetime")
        et.check_pattern(bytes(st.body), 2000)
        et.eq(o.count("/obj/rv"), 2, "asked the origin again")
        et.ok("fwd=stale" in (st.header("cache-status") or ""),
              "Cache-Status: %r" % st.header("cache-status"))


def test_request_body_streams_to_origin():
    with et.Origin() as o, h2_edge(o) as e, h2raw.Conn(e.h2_port) as c:
        body = bytes(et.pattern(0, 1000000))
        sid = c.request("/echo", method="POST", body=body,
                        headers=[("content-type", "application/x-test")])
        st = c.response(sid, timeout=20)
        et.eq(st.status, 200, "status")
        j = json.loads(bytes(st.body))
        et.eq(j["body_length"], len(body), "length at the origin")
        et.eq(j["body_sha256"], hashlib.sha256(body).hexdigest(), "bytes")
        # Without Content-Length the origin gets it chunked.
        sid = c.request("/echo", method="PUT", body=b"x" * 70000)
        j = json.loads(bytes(c.response(sid, timeout=20).body))
        et.eq(j["body_length"], 70000, "unknown length")


def test_alpn_h2_on_tls():
    import test_tls as tt
    with et.Origin() as o, tt.tls_edge(o.url, "--cache-dir",
                                       et.mktemp("cache")) as e:
        rc, out = tt.curl("https://default.test:%d/obj/a?size=20000"
                          % e.tls_port, "--http2", "--resolve",
                          "default.test:%d:127.0.0.1" % e.tls_port)
        et.eq(rc, 0, out)
        et.ok("ALPN: server accepted h2" in out, "ALPN h2: " + out)
        et.ok("< HTTP/2 200" in out, "HTTP/2 200")
        ctx = h2raw.tls_context(cafile=tt.pk("ca.crt"))
        with h2raw.Conn(e.tls_port, tls=ctx, sni="default.test") as c:
            et.eq(c.sock.selected_alpn_protocol(), "h2", "ALPN")
            st = c.response(c.request("/obj/b?size=100000&ttl=60",
                                      authority="default.test"))
            et.check_pattern(bytes(st.body), 100000)

            def hit():
                st = c.response(c.request("/obj/b?size=100000&ttl=60",
                                          authority="default.test"))
                et.check_pattern(bytes(st.body), 100000)
                return "hit" in st.header("cache-status")
            et.wait_for(hit, 5, interval=0.1, what="a hit over TLS")
    with et.Origin() as o, tt.tls_edge(o.url, "--tls-alpn",
                                       "http/1.1") as e:
        rc, out = tt.curl("https://default.test:%d/obj/a?size=10"
                          % e.tls_port, "--http2", "--resolve",
                          "default.test:%d:127.0.0.1" % e.tls_port)
        et.ok("ALPN: server accepted http/1.1" in out, "tls_alpn: " + out)


class RecordSock:
    """A TLS client socket for h2raw.Conn(sock=...) that sees the records:
    .sizes is the plaintext length of each record that carried bytes
    (session tickets carry none)."""

    def __init__(self, port, ctx, sni, rcvbuf=0):
        self.inc, self.outg = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.outg, False, sni)
        self.sock = socket.socket()
        if rcvbuf:
            # Before connect, so the window the client offers is small.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.raw, self.plain, self.sizes = b"", b"", []
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outg.read())
                got = self.sock.recv(65536)
                if not got:
                    raise AssertionError("closed in the handshake")
                self.inc.write(got)
        self.sock.sendall(self.outg.read())

    def sendall(self, data):
        self.tls.write(data)
        self.sock.sendall(self.outg.read())

    def settimeout(self, t):
        self.sock.settimeout(t)

    def close(self):
        self.sock.close()

    def recv(self, n):
        while not self.plain:
            got = self.sock.recv(65536)
            if not got:
                return b""
            self.raw += got
            while len(self.raw) >= 5 and len(self.raw) >= 5 + \
                    int.from_bytes(self.raw[3:5], "big"):
                k = 5 + int.from_bytes(self.raw[3:5], "big")
                self.inc.write(self.raw[:k])
                self.raw = self.raw[k:]
                plain = b""
                while True:
                    try:
                        plain += self.tls.read(65536)
                    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                        break
                if plain:
                    self.sizes.append(len(plain))
                    self.plain += plain
        out, self.plain = self.plain[:n], self.plain[n:]
        return out


def test_h2_hits_fill_whole_tls_records():
    """Over TLS each frame went out as a record (and a write) of its own,
    and a 16 KiB DATA frame with its 9-byte header does not fit one
    record: a 100 KiB hit was eight records and eight writes.  The frames
    are now packed into whole records: all but the last one of a response
    are full."""
    import test_tls as tt
    record = 16384
    with et.Origin() as o, tt.tls_edge(o.url, "--cache-dir",
                                       et.mktemp("cache"), threads=1) as e:
        ctx = h2raw.tls_context(cafile=tt.pk("ca.crt"))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        rs = RecordSock(e.tls_port, ctx, "default.test")
        et.eq(rs.tls.selected_alpn_protocol(), "h2", "ALPN")
        # Windows wide enough for every response: flow control does not
        # cut a record short.
        with h2raw.Conn(0, sock=rs, settings=[
                (h2raw.SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20)]) as c:
            c.send_frame(h2raw.WINDOW_UPDATE, 0, 0,
                         struct.pack(">I", 1 << 24))
            for i, size in enumerate((102400, 40000, 3000)):
                target = "/obj/rec%d?size=%d&ttl=60" % (size, size)
                st = c.response(c.request(target, authority="default.test"))
                et.check_pattern(bytes(st.body), size)
                et.wait_for(lambda: tt.stats(e)["cache"]["objects"] > i,
                            what="the object to be stored")
                mark = len(rs.sizes)
                st = c.response(c.request(target, authority="default.test"))
                sizes = rs.sizes[mark:]
                et.check_pattern(bytes(st.body), size)
                et.ok("hit" in st.header("cache-status"), "%d: a hit" % size)
                et.ok(all(n == record for n in sizes[:-1]),
                      "%d bytes: %r are whole records but the last"
                      % (size, sizes))
                et.eq(len(sizes), -(-sum(sizes) // record),
                      "%d bytes: as few records as can hold it" % size)
            # Each response's last record leaves with the rest, not
            # after a timer (as a TCP cork left on would hold it).
            t0 = time.monotonic()
            for _ in range(20):
                st = c.response(c.request("/obj/rec102400?size=102400&ttl=60",
                                          authority="default.test"))
                et.eq(len(st.body), 102400, "a whole hit")
            et.ok(time.monotonic() - t0 < 3.0,
                  "20 hits of 100 KiB in %.2f s" % (time.monotonic() - t0))


def tls_h2_conn(e, rcvbuf):
    """An h2 connection over TLS whose windows are wide open, on a socket
    with a small receive buffer: what the edge writes is held up by TCP
    as soon as the client stops reading."""
    import test_tls as tt
    ctx = h2raw.tls_context(cafile=tt.pk("ca.crt"))
    rs = RecordSock(e.tls_port, ctx, "default.test", rcvbuf=rcvbuf)
    c = h2raw.Conn(0, sock=rs, settings=[
        (h2raw.SETTINGS_INITIAL_WINDOW_SIZE, (1 << 31) - 1)])
    c.send_frame(h2raw.WINDOW_UPDATE, 0, 0, struct.pack(">I", (1 << 30)))
    return c


BIG = 4 << 20  # more than the socket buffers of both ends hold


def test_tls_output_waits_for_the_socket():
    """Over TLS the edge writes its gathered records itself: when the
    socket takes no more, they wait for it to be writable, and every byte
    arrives once the client reads again."""
    import test_tls as tt
    with et.Origin() as o, tt.tls_edge(o.url, threads=1) as e:
        with tls_h2_conn(e, 4096) as c:
            sids = [c.request("/obj/full%d?size=%d&ttl=60" % (i, BIG),
                              authority="default.test") for i in range(3)]
            time.sleep(1.5)  # not reading: the socket fills
            for sid in sids:
                st = c.response(sid, timeout=60)
                et.eq(st.status, 200, "status")
                et.check_pattern(bytes(st.body), BIG)
            st = c.response(c.request("/obj/after?size=3000",
                                      authority="default.test"))
            et.check_pattern(bytes(st.body), 3000)


def test_tls_client_that_stops_reading_is_closed():
    """A client that leaves the socket full is dropped after send_timeout,
    counted as a slow read, whatever its windows say."""
    import test_tls as tt
    with et.Origin() as o, tt.tls_edge(o.url, "--send-timeout", "1s",
                                       threads=1) as e:
        with tls_h2_conn(e, 4096) as c:
            for i in range(3):
                c.request("/obj/stuck%d?size=%d" % (i, BIG),
                          authority="default.test")
            time.sleep(4)  # send_timeout, then the connection's own
            c.sock.settimeout(10)
            got, t0 = 0, time.monotonic()
            while time.monotonic() - t0 < 20:
                try:
                    b = c.sock.recv(65536)
                except (ConnectionError, ssl.SSLError):
                    break
                if not b:
                    break
                got += len(b)
            et.ok(got < 3 * BIG, "closed before it all went: %d" % got)
            et.ok(tt.stats(e)["http2"]["refused"]["slow_read"] >= 1,
                  "counted")


def test_sigterm_goaway_lets_streams_finish():
    with et.Origin() as o, h2_edge(o, threads=1) as e, \
            h2raw.Conn(e.h2_port) as c:
        sid = c.request("/obj/slow?size=200000&delay_ms=800")
        et.wait_for(lambda: o.count("/obj/slow") == 1, 5, what="fetch")
        e.send_signal(signal.SIGTERM)
        st = c.response(sid, timeout=10)
        et.eq(c.goaway, (sid, h2raw.NO_ERROR), "GOAWAY NO_ERROR")
        et.eq(st.status, 200, "the stream in flight finished")
        et.check_pattern(bytes(st.body), 200000)
        et.ok(c.drain_until_closed(5), "then the connection closes")
        et.eq(e.wait_exit(10), 0, "exit status")


if __name__ == "__main__":
    et.main()
