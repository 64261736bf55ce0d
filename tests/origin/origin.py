#!/usr/bin/env python3
"""Scriptable HTTP/1.1 origin for edged's tests, and the README's demo origin.

    python3 tests/origin/origin.py --listen 127.0.0.1:9000
    python3 tests/origin/origin.py --listen 127.0.0.1:0 --port-file /tmp/port
    python3 tests/origin/origin.py --tls-cert c.pem --tls-key k.pem ...  # https

Standard library only.  One thread per connection, HTTP/1.1 keep-alive (and
HTTP/1.0 keep-alive when asked for), request bodies read with Content-Length
or chunked framing, "Expect: 100-continue" answered with 100 Continue.
Nothing is logged on stdout unless --verbose is given.

With --tls-cert and --tls-key it speaks HTTPS instead (TLS 1.2 and 1.3, the
handshake in the connection's thread); with --tls-client-ca too it requires
a client certificate signed by that CA.  /echo then also reports "tls":
{"version", "sni", "client_cert_cn"}.

Paths
-----
GET / and /index.html
    A small self-contained HTML page showing the request headers this origin
    received (Via, X-Forwarded-For, ...) and the time.
    Cache-Control: public, max-age=60.

/obj/<anything>?<parameters>
    A body of a deterministic pattern (see pattern() below).  Parameters:
      size=N           body length in bytes (default 1024; any size, streamed)
      first=N          the body is bytes [N, N + size) of the pattern
                       (default 0), so that one URL can answer new bytes
      status=S         status code (default 200; 1xx, 204 and 304 have no body)
      delay_ms=D       wait D ms before sending the response head
      body_delay_ms=D  wait D ms after the head, before the body
      hdr=Name:Value   an extra response header (repeatable)
      ttl=S            Cache-Control: public, max-age=S
      chunked=1        Transfer-Encoding: chunked (16 KiB chunks) instead of
                       Content-Length
      chunk=N          chunk size for chunked=1 (default 16384)
      drip=B           send the body B bytes at a time, one write per tick
      tick_ms=T        the drip interval (default 100)
      pause_after=N    after N body bytes, pause pause_ms (default 3000) ms
      pause_ms=D
      reset_after=N    send the head and N body bytes, then reset the
                       connection (SO_LINGER 0: RST) once they are delivered
      reset=1          reset the connection instead of sending any response
      hangup=1         close the connection (FIN) instead of any response
      garbage=1        answer with bytes that are not HTTP, then close
      close=1          "Connection: close" and close after the response
    Every response carries X-Origin-Conn: <connection number> and
    X-Origin-Seq: <request number on that connection> (from 1).

/text/<anything>?<parameters>
    A compressible text body: text_body(size) (lines of words, deterministic
    from the length).  Parameters size=, ttl=, hdr=, delay_ms=,
    pause_after= and pause_ms= (over the bytes sent, coded or not) as for
    /obj, and:
      ctype=T          Content-Type (default text/plain; charset=utf-8)
      enc=gzip|br      send the body coded so (Content-Encoding), made with
                       Python's gzip module or the system brotli tool
    Counts like /obj.

/bomb?size=N
    A gzip body (Content-Encoding: gzip, text/plain, max-age=60) that
    inflates to N zero bytes (default 256 MiB): a compression bomb, made of
    16 MiB gzip members back to back.

/page?n=N&size=S
    An HTML page (Cache-Control: public, max-age=60) that loads N (default
    8, at most 100) sub-resources from this origin's paths, as a browser
    test needs: a stylesheet /text/page.css (ctype=text/css), then by its
    inline script N-1 fetch()es of /obj/page-K?size=S&ttl=60 (default 20000
    bytes) whose bodies it checks against the pattern below.  It ends with
    <body data-done="N-1"> and <li id="r-K">K LENGTH ok|bad</li> per fetch
    (or "K error TEXT").

/obj/... with ranges=1 answers a single-range "Range: bytes=a-b" request
    with 206 and Content-Range, as an origin that serves ranges does, and
    X-Origin-Range: <the Range field it received>.

/echo (any method)
    200 with a JSON description of the request exactly as received:
    {"method", "target", "version", "headers": [[name, value], ...] in order,
     "raw_head" (latin-1 text of the head), "body_length", "body_sha256",
     "body_chunked", "trailers", "chunk_extensions", "peer", "conn", "seq"}
    and the header X-Echo-Method: <method>.  Query parameters status= and
    hdr= work as for /obj.  Cache-Control: no-store, or with ttl=S
    "public, max-age=S" (a cached echo shows what a revalidation sent).

/__count[?path=P]
    {"requests": N, "complete": K, "connections": C} counting every request
    except /__ ones since the last reset: "requests" when the head has
    arrived, "complete" once the whole body has too; "connections" counts
    the connections that carried at least one such request.  With path=P
    only requests for that path are counted (P without "?" is compared with
    the path part of the target, P with "?" with the whole target).
/__reset
    Zeroes the counters.

HEAD works on every path: the same head as GET, no body.

Body pattern
------------
Byte i of every /obj body is

    (i * 7 + (i >> 8) + (i >> 16) * 13) & 0xff

so a body is known from its length alone, any byte range can be generated
(pattern(offset, length)), and a repeated, lost or reordered block of any
size below 16 MiB is caught.  64 KiB block k is BASE translated by adding
13 * k (mod 256) to every byte, so generation is one bytes.translate() per
block and a body streams at memory speed whatever its size.
"""

import argparse
import fcntl
import gzip
import hashlib
import html
import http
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.parse
import zlib

BLOCK = 65536
_BASE = bytes(((i * 7) + (i >> 8)) & 0xFF for i in range(BLOCK))
_TABLES = [bytes((b + c) & 0xFF for b in range(256)) for c in range(256)]

MAX_LINE = 65536          # longest request line or header line
MAX_HEAD = 1 << 20        # largest request head
MAX_HEADERS = 1000
IDLE_TIMEOUT_S = 60.0     # a keep-alive connection idle this long is closed
IO_TIMEOUT_S = 120.0      # bound on any one blocking send or receive


def pattern_block(k):
    """The k-th 64 KiB block of the pattern (bytes, BLOCK long)."""
    c = (13 * k) & 0xFF
    if c == 0:
        return _BASE
    return _BASE.translate(_TABLES[c])


def pattern(offset, length):
    """Bytes [offset, offset + length) of the body pattern."""
    out = bytearray()
    end = offset + length
    pos = offset
    while pos < end:
        k, r = divmod(pos, BLOCK)
        n = min(BLOCK - r, end - pos)
        out += pattern_block(k)[r:r + n]
        pos += n
    return bytes(out)


def pattern_chunks(size, chunk=BLOCK, first=0):
    """Yield bytes [first, first + size) of the pattern as memoryviews of
    at most <chunk> bytes."""
    pos, size = first, first + size
    while pos < size:
        k, r = divmod(pos, BLOCK)
        blk = memoryview(pattern_block(k))
        end = min(BLOCK, r + (size - pos))
        while r < end:
            n = min(chunk, end - r)
            yield blk[r:r + n]
            r += n
            pos += n


class Counters:
    """Request counters since the last /__reset; one lock covers all fields."""

    def __init__(self):
        self.lock = threading.Lock()
        self.gen = 0
        self.requests = 0
        self.complete = 0
        self.connections = 0
        self.by_path = {}
        self.by_target = {}
        self.complete_by_path = {}
        self.complete_by_target = {}
        self.next_conn = 0

    def new_conn_id(self):
        with self.lock:
            self.next_conn += 1
            return self.next_conn

    def count(self, conn, target):
        path = target.split("?", 1)[0]
        with self.lock:
            self.requests += 1
            self.by_path[path] = self.by_path.get(path, 0) + 1
            self.by_target[target] = self.by_target.get(target, 0) + 1
            if conn.counted_gen != self.gen:
                conn.counted_gen = self.gen
                self.connections += 1

    def count_complete(self, target):
        path = target.split("?", 1)[0]
        with self.lock:
            self.complete += 1
            self.complete_by_path[path] = \
                self.complete_by_path.get(path, 0) + 1
            self.complete_by_target[target] = \
                self.complete_by_target.get(target, 0) + 1

    def snapshot(self, path=None):
        with self.lock:
            if path is None:
                return {"requests": self.requests,
                        "complete": self.complete,
                        "connections": self.connections}
            if "?" in path:
                n = self.by_target.get(path, 0)
                c = self.complete_by_target.get(path, 0)
            else:
                n = self.by_path.get(path, 0)
                c = self.complete_by_path.get(path, 0)
            return {"path": path, "requests": n, "complete": c}

    def reset(self):
        with self.lock:
            self.gen += 1
            self.requests = 0
            self.complete = 0
            self.connections = 0
            self.by_path.clear()
            self.by_target.clear()
            self.complete_by_path.clear()
            self.complete_by_target.clear()


class BadRequest(Exception):
    pass


class Request:
    def __init__(self):
        self.method = ""
        self.target = ""
        self.version = ""
        self.headers = []
        self.raw_head = b""
        self.body_length = 0
        self.body_sha256 = hashlib.sha256().hexdigest()
        self.body_chunked = False
        self.trailers = []
        self.chunk_extensions = []

    def header(self, name):
        name = name.lower()
        vals = [v for n, v in self.headers if n.lower() == name]
        return ", ".join(vals) if vals else None

    def wants_close(self):
        tokens = [t.strip().lower()
                  for t in (self.header("Connection") or "").split(",")]
        if "close" in tokens:
            return True
        if self.version == "HTTP/1.0":
            return "keep-alive" not in tokens
        return False


class Conn:
    """One client connection, served by one thread."""

    def __init__(self, server, sock, peer):
        self.server = server
        self.sock = sock
        self.peer = peer
        self.rfile = sock.makefile("rb")
        self.id = server.counters.new_conn_id()
        self.seq = 0
        self.counted_gen = -1

    # ---- reading ----

    def read_line(self):
        line = self.rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise BadRequest("line too long")
        return line

    def read_head(self):
        """Returns a Request, or None on a clean close before any byte."""
        raw = bytearray()
        line = self.read_line()
        while line in (b"\r\n", b"\n"):  # RFC 9112 §2.2: ignore leading CRLF
            line = self.read_line()
        if not line:
            return None
        raw += line
        parts = line.rstrip(b"\r\n").split(b" ")
        if len(parts) != 3:
            raise BadRequest("bad request line")
        req = Request()
        req.method, req.target, req.version = (p.decode("latin-1")
                                               for p in parts)
        while True:
            line = self.read_line()
            if not line:
                raise BadRequest("eof in head")
            raw += line
            if len(raw) > MAX_HEAD or len(req.headers) > MAX_HEADERS:
                raise BadRequest("head too large")
            if line in (b"\r\n", b"\n"):
                break
            text = line.rstrip(b"\r\n").decode("latin-1")
            if text[:1] in (" ", "\t") and req.headers:
                n, v = req.headers[-1]  # obs-fold: RFC 9112 §5.2
                req.headers[-1] = [n, v + " " + text.strip(" \t")]
                continue
            if ":" not in text:
                raise BadRequest("header without colon")
            name, value = text.split(":", 1)
            req.headers.append([name, value.strip(" \t")])
        req.raw_head = bytes(raw)
        return req

    def read_body(self, req):
        """Reads the whole body, keeping only its length and sha256."""
        h = hashlib.sha256()
        te = req.header("Transfer-Encoding")
        cl = req.header("Content-Length")
        if te is not None:
            if te.strip().lower().split(",")[-1].strip() != "chunked":
                raise BadRequest("unsupported transfer-encoding")
            req.body_chunked = True
            while True:
                line = self.read_line()
                if not line.endswith(b"\n"):
                    raise BadRequest("eof in chunk size")
                size_s, _, ext = line.rstrip(b"\r\n").partition(b";")
                try:
                    size = int(size_s.strip(b" \t"), 16)
                except ValueError:
                    raise BadRequest("bad chunk size")
                if ext:
                    req.chunk_extensions.append(ext.decode("latin-1"))
                if size == 0:
                    break
                self._read_counted(size, h, req)
                if self.rfile.read(2) not in (b"\r\n",):
                    raise BadRequest("bad chunk end")
            while True:
                line = self.read_line()
                if not line:
                    raise BadRequest("eof in trailers")
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("latin-1").rstrip("\r\n") \
                    .partition(":")
                req.trailers.append([name, value.strip(" \t")])
        elif cl is not None:
            try:
                n = int(cl)
            except ValueError:
                raise BadRequest("bad content-length")
            if n < 0:
                raise BadRequest("bad content-length")
            self._read_counted(n, h, req)
        req.body_sha256 = h.hexdigest()

    def _read_counted(self, n, h, req):
        while n > 0:
            data = self.rfile.read(min(n, BLOCK))
            if not data:
                raise BadRequest("eof in body")
            h.update(data)
            req.body_length += len(data)
            n -= len(data)

    # ---- writing ----

    def send_head(self, status, headers, req, close):
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Status"
        lines = ["HTTP/1.1 %d %s" % (status, reason)]
        lines.append("Date: " + time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                              time.gmtime()))
        lines.append("Server: edged-test-origin")
        lines.append("X-Origin-Conn: %d" % self.id)
        lines.append("X-Origin-Seq: %d" % self.seq)
        has_conn = any(n.lower() == "connection" for n, _ in headers)
        for n, v in headers:
            lines.append("%s: %s" % (n, v))
        if close and not has_conn:
            lines.append("Connection: close")
        elif req.version == "HTTP/1.0" and not close and not has_conn:
            lines.append("Connection: keep-alive")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.sock.sendall(data)

    def send_simple(self, req, status, body, ctype, extra=(), close=False):
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = [("Content-Type", ctype),
                   ("Content-Length", str(len(body)))] + list(extra)
        self.send_head(status, headers, req, close)
        if req.method != "HEAD" and body_allowed(status):
            self.sock.sendall(body)

    def reset(self):
        """Abort the connection with an RST (SO_LINGER 0 then close)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
        self.sock.close()

    def wait_delivered(self, limit_s=5.0):
        """Wait until the peer has acknowledged everything we sent."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            try:
                buf = fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ,
                                  b"\0\0\0\0")
                if struct.unpack("i", buf)[0] == 0:
                    break
            except OSError:
                break
            time.sleep(0.005)
        time.sleep(0.05)  # let the peer's application read what arrived

    # ---- serving ----

    def serve(self):
        try:
            self.sock.settimeout(IDLE_TIMEOUT_S)
            while not self.server.stopping:
                try:
                    req = self.read_head()
                except (BadRequest, UnicodeError) as e:
                    self.server.log("bad request from %s: %s" % (self.peer, e))
                    self.send_simple(Request(), 400, "bad request\n",
                                     "text/plain", close=True)
                    return
                if req is None:
                    return
                self.sock.settimeout(IO_TIMEOUT_S)
                self.seq += 1
                if not req.target.startswith("/__"):
                    self.server.counters.count(self, req.target)
                if (req.header("Expect") or "").lower() == "100-continue" \
                        and req.version == "HTTP/1.1":
                    self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                try:
                    self.read_body(req)
                except BadRequest as e:
                    self.server.log("bad body from %s: %s" % (self.peer, e))
                    self.send_simple(req, 400, "bad request body\n",
                                     "text/plain", close=True)
                    return
                if not req.target.startswith("/__"):
                    self.server.counters.count_complete(req.target)
                self.server.log("%s %s %s conn=%d seq=%d" % (
                    req.method, req.target, req.version, self.id, self.seq))
                if not self.dispatch(req):
                    return
                self.sock.settimeout(IDLE_TIMEOUT_S)
        except (OSError, ValueError) as e:
            self.server.log("conn %d: %s" % (self.id, e))
        finally:
            try:
                self.rfile.close()
                self.sock.close()
            except OSError:
                pass

    def dispatch(self, req):
        """Answer one request.  Returns False if the connection must close."""
        path, _, query = req.target.partition("?")
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        close = req.wants_close()
        if path.startswith("/obj/"):
            return self.do_obj(req, q, close)
        if path.startswith("/text/"):
            return self.do_text(req, q, close)
        if path == "/bomb":
            return self.do_bomb(req, q, close)
        if path == "/echo":
            return self.do_echo(req, q, close)
        if path == "/page":
            self.send_simple(req, 200, resource_page(q),
                             "text/html; charset=utf-8",
                             [("Cache-Control", "public, max-age=60")], close)
        elif path in ("/", "/index.html"):
            self.send_simple(req, 200, demo_page(req, self.peer),
                             "text/html; charset=utf-8",
                             [("Cache-Control", "public, max-age=60")], close)
        elif path == "/__count":
            p = q.get("path", [None])[0]
            body = json.dumps(self.server.counters.snapshot(p)) + "\n"
            self.send_simple(req, 200, body, "application/json",
                             [("Cache-Control", "no-store")], close)
        elif path == "/__reset":
            self.server.counters.reset()
            self.send_simple(req, 200, '{"ok": true}\n', "application/json",
                             [("Cache-Control", "no-store")], close)
        else:
            self.send_simple(req, 404, "not found: %s\n" % path, "text/plain",
                             close=close)
        return not close

    def do_echo(self, req, q, close):
        status = int(q.get("status", ["200"])[0])
        desc = {
            "method": req.method,
            "target": req.target,
            "version": req.version,
            "headers": req.headers,
            "raw_head": req.raw_head.decode("latin-1"),
            "body_length": req.body_length,
            "body_sha256": req.body_sha256,
            "body_chunked": req.body_chunked,
            "trailers": req.trailers,
            "chunk_extensions": req.chunk_extensions,
            "peer": list(self.peer[:2]),
            "conn": self.id,
            "seq": self.seq,
        }
        if isinstance(self.sock, ssl.SSLSocket):
            cert = self.sock.getpeercert() or {}
            cn = [v for rdn in cert.get("subject", ()) for k, v in rdn
                  if k == "commonName"]
            desc["tls"] = {"version": self.sock.version(),
                           "sni": getattr(self.sock, "edgetest_sni", None),
                           "client_cert_cn": cn[0] if cn else None}
        ttl = q.get("ttl", [""])[0]
        cc = "public, max-age=%d" % int(ttl) if ttl.isdigit() else "no-store"
        extra = [("X-Echo-Method", req.method),
                 ("Cache-Control", cc)] + extra_headers(q)
        self.send_simple(req, status, json.dumps(desc) + "\n",
                         "application/json", extra, close)
        return not close

    def do_text(self, req, q, close):
        def num(name, default):
            try:
                return int(q.get(name, [default])[0])
            except ValueError:
                return int(default)

        delay_ms = num("delay_ms", "0")
        if delay_ms > 0:
            time.sleep(delay_ms / 1000.0)
        body = text_body(num("size", "4096"))
        extra = []
        enc = q.get("enc", [""])[0]
        if enc == "gzip":
            body = gzip.compress(body, 6, mtime=0)
            extra.append(("Content-Encoding", "gzip"))
        elif enc == "br":
            body = subprocess.run(["brotli", "-c", "-q", "5"], input=body,
                                  stdout=subprocess.PIPE, check=True).stdout
            extra.append(("Content-Encoding", "br"))
        if "ttl" in q:
            extra.append(("Cache-Control",
                          "public, max-age=%d" % num("ttl", "0")))
        ctype = q.get("ctype", ["text/plain; charset=utf-8"])[0]
        pause_after = num("pause_after", "-1")
        if pause_after < 0:
            self.send_simple(req, 200, body, ctype,
                             extra + extra_headers(q), close)
            return not close
        self.send_head(200, [("Content-Type", ctype),
                             ("Content-Length", str(len(body)))] +
                       extra + extra_headers(q), req, close)
        if req.method != "HEAD":
            self.sock.sendall(body[:pause_after])
            time.sleep(num("pause_ms", "3000") / 1000.0)
            self.sock.sendall(body[pause_after:])
        return not close

    def do_bomb(self, req, q, close):
        try:
            size = int(q.get("size", [str(256 << 20)])[0])
        except ValueError:
            size = 256 << 20
        self.send_simple(req, 200, bomb_body(size), "text/plain",
                         [("Content-Encoding", "gzip"),
                          ("Cache-Control", "public, max-age=60")], close)
        return not close

    def do_obj(self, req, q, close):
        def num(name, default):
            try:
                return int(q.get(name, [default])[0])
            except ValueError:
                return int(default)

        size = num("size", "1024")
        status = num("status", "200")
        close = close or num("close", "0") != 0
        chunked = num("chunked", "0") != 0
        delay_ms = num("delay_ms", "0")
        if delay_ms > 0:
            time.sleep(delay_ms / 1000.0)
        if num("reset", "0"):
            self.reset()
            return False
        if num("hangup", "0"):
            self.sock.shutdown(socket.SHUT_RDWR)
            return False
        if num("garbage", "0"):
            self.sock.sendall(b"this is not an HTTP response\r\n\r\n")
            self.sock.shutdown(socket.SHUT_RDWR)
            return False
        headers = [("Content-Type", "application/octet-stream")]
        rng = parse_single_range(req.header("range"), size) \
            if num("ranges", "0") and status == 200 else None
        if rng is not None:
            first, last = rng
            status = 206
            headers.append(("Content-Range",
                            "bytes %d-%d/%d" % (first, last, size)))
            headers.append(("Content-Length", str(last - first + 1)))
            headers.append(("X-Origin-Range", req.header("range")))
            if "ttl" in q:
                headers.append(("Cache-Control",
                                "public, max-age=%d" % num("ttl", "0")))
            headers += extra_headers(q)
            self.send_head(status, headers, req, close)
            if req.method != "HEAD":
                self.sock.sendall(pattern(first, last - first + 1))
            return not close
        if status == 204 or 100 <= status < 200:
            pass  # RFC 9110 §8.6: no framing fields at all
        elif chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        else:
            headers.append(("Content-Length", str(size)))
        if "ttl" in q:
            headers.append(("Cache-Control",
                            "public, max-age=%d" % num("ttl", "0")))
        headers += extra_headers(q)
        if any(n.lower() == "connection" and "close" in v.lower()
               for n, v in headers):
            close = True
        self.send_head(status, headers, req, close)
        if req.method == "HEAD" or not body_allowed(status):
            return not close
        body_delay_ms = num("body_delay_ms", "0")
        if body_delay_ms > 0:
            time.sleep(body_delay_ms / 1000.0)
        reset_after = num("reset_after", "-1")
        limit = size if reset_after < 0 else min(size, reset_after)
        self.send_body(size, limit, chunked, q, num)
        if reset_after >= 0:
            self.wait_delivered()
            self.reset()
            return False
        if chunked:
            self.sock.sendall(b"0\r\n\r\n")
        return not close

    def send_body(self, size, limit, chunked, q, num):
        """Send the first <limit> bytes of a <size>-byte pattern body.

        A prefix of the pattern is the pattern of a shorter body, so only
        <limit> bytes are generated."""
        drip = num("drip", "0")
        tick_s = num("tick_ms", "100") / 1000.0
        pause_after = num("pause_after", "-1")
        pause_s = num("pause_ms", "3000") / 1000.0
        piece = num("chunk", "16384") if chunked else BLOCK
        if drip > 0:
            piece = min(piece, drip)
        sent = 0
        for mv in pattern_chunks(limit, max(1, piece), num("first", "0")):
            if 0 <= pause_after - sent < len(mv):
                cut = pause_after - sent
                if cut:
                    self.write_piece(mv[:cut], chunked)
                time.sleep(pause_s)
                mv = mv[cut:]
                sent += cut
                pause_after = -1
            self.write_piece(mv, chunked)
            sent += len(mv)
            if drip > 0:
                time.sleep(tick_s)
        if pause_after == sent:
            time.sleep(pause_s)

    def write_piece(self, mv, chunked):
        if not chunked:
            self.sock.sendall(mv)
            return
        bufs = [memoryview(b"%x\r\n" % len(mv)), mv, memoryview(b"\r\n")]
        while bufs:  # sendmsg may write part of the vector on a full buffer
            n = self.sock.sendmsg(bufs)
            while bufs and n >= len(bufs[0]):
                n -= len(bufs[0])
                bufs.pop(0)
            if bufs and n:
                bufs[0] = bufs[0][n:]


def text_body(size):
    """<size> bytes of compressible text, a function of <size> alone."""
    words = [b"edge", b"cache", b"origin", b"variant", b"range", b"brotli",
             b"gzip", b"header", b"request", b"response", b"node", b"byte"]
    out = bytearray()
    i = 0
    while len(out) < size:
        out += words[(i * 7 + i // 13) % len(words)]
        out += b"\n" if i % 11 == 10 else b" "
        i += 1
    return bytes(out[:size])


_BOMBS = {}


def bomb_body(size):
    """A gzip body that inflates to <size> zero bytes (cached): members of
    16 MiB of zeros back to back (RFC 1952 2.2), cheap to make at any size."""
    if size not in _BOMBS:
        def member(n):
            c = zlib.compressobj(9, zlib.DEFLATED, 31)
            zero = bytes(1 << 20)
            parts = []
            while n > 0:
                parts.append(c.compress(zero[:min(n, len(zero))]))
                n -= min(n, len(zero))
            parts.append(c.flush())
            return b"".join(parts)
        unit = 16 << 20
        body = member(unit) * (size // unit)
        if size % unit or size == 0:
            body += member(size % unit)
        _BOMBS[size] = body
    return _BOMBS[size]


def parse_single_range(value, size):
    """(first, last) of a satisfiable single "bytes=a-b" / "a-" / "-n"."""
    if not value or not value.startswith("bytes=") or "," in value:
        return None
    a, _, b = value[6:].strip().partition("-")
    try:
        if a == "":
            n = int(b)
            return (max(0, size - n), size - 1) if 0 < n and size else None
        first = int(a)
        last = int(b) if b else size - 1
    except ValueError:
        return None
    if first >= size or last < first:
        return None
    return first, min(last, size - 1)


def body_allowed(status):
    return not (100 <= status < 200 or status in (204, 304))


def extra_headers(q):
    out = []
    for h in q.get("hdr", []):
        name, _, value = h.partition(":")
        if name:
            out.append((name.strip(), value.strip()))
    return out


PAGE_MAX_RESOURCES = 100


def resource_page(q):
    """/page: an HTML page of sub-resources that checks what it gets."""
    n = max(1, min(PAGE_MAX_RESOURCES, int(q.get("n", ["8"])[0])))
    size = int(q.get("size", ["20000"])[0])
    return """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>sub-resources</title>
<link rel="stylesheet" href="/text/page.css?size=2000&ttl=60&ctype=text/css">
</head><body data-done="0"><ol id="res"></ol>
<script>
(function () {
	var n = %d, size = %d, done = 0, list = document.getElementById('res');
	function pat(i) { return (i * 7 + (i >> 8) + (i >> 16) * 13) & 255; }
	function show(k, text) {
		var li = document.createElement('li');
		li.id = 'r-' + k; li.textContent = k + ' ' + text;
		list.appendChild(li);
		document.body.setAttribute('data-done', String(++done));
	}
	for (var k = 1; k < n; k++) (function (k) {
		fetch('/obj/page-' + k + '?size=' + size + '&ttl=60')
			.then(function (r) { return r.arrayBuffer(); })
			.then(function (b) {
				var v = new Uint8Array(b), good = true;
				for (var i = 0; i < v.length; i++) if (v[i] !== pat(i)) { good = false; break; }
				show(k, v.length + ' ' + (good ? 'ok' : 'bad'));
			})
			.catch(function (e) { show(k, 'error ' + e); });
	})(k);
})();
</script></body></html>
""" % (n, size)


def demo_page(req, peer):
    rows = "\n".join(
        "<tr><th>%s</th><td>%s</td></tr>" % (html.escape(n), html.escape(v))
        for n, v in req.headers)
    notable = []
    for name in ("Via", "X-Forwarded-For", "X-Forwarded-Proto"):
        v = req.header(name)
        notable.append("<li><b>%s</b>: %s</li>" % (
            name, html.escape(v) if v else "<i>absent (not through edged?)</i>"))
    now = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return DEMO_PAGE % {
        "now": now,
        "peer": html.escape("%s:%s" % (peer[0], peer[1])),
        "request": html.escape("%s %s %s" % (req.method, req.target,
                                             req.version)),
        "notable": "\n".join(notable),
        "rows": rows,
    }


DEMO_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edged demo origin</title>
<style>
 body { font: 15px/1.5 system-ui, sans-serif; margin: 2em auto; max-width: 52em;
        padding: 0 1em; color: #1d2330; background: #f7f8fb; }
 h1 { font-size: 1.6em; margin-bottom: .2em; }
 .sub { color: #5b6478; margin-top: 0; }
 .card { background: #fff; border: 1px solid #dde2ec; border-radius: 8px;
         padding: 1em 1.3em; margin: 1em 0; }
 table { border-collapse: collapse; width: 100%%; }
 th, td { text-align: left; padding: .25em .6em; border-bottom: 1px solid #eef0f5;
          vertical-align: top; font-family: ui-monospace, monospace; font-size: 13px; }
 th { white-space: nowrap; color: #36405a; width: 14em; }
 code { background: #eef1f7; padding: 0 .3em; border-radius: 3px; }
 ul { padding-left: 1.2em; }
</style></head>
<body>
<h1>edged demo origin</h1>
<p class="sub">Generated at %(now)s for %(peer)s &mdash;
<code>Cache-Control: public, max-age=60</code></p>
<div class="card"><b>Request</b>: <code>%(request)s</code>
<ul>
%(notable)s
</ul></div>
<div class="card"><b>Request headers as this origin received them</b>
<table>
%(rows)s
</table></div>
<div class="card"><b>Try</b>
<ul>
<li><a href="/obj/demo?size=100000&amp;ttl=30">/obj/demo?size=100000&amp;ttl=30</a>
 &mdash; 100 kB of a test pattern, cacheable for 30 s</li>
<li><a href="/obj/slow?delay_ms=2000">/obj/slow?delay_ms=2000</a> &mdash; a slow origin</li>
<li><a href="/echo">/echo</a> &mdash; the request as JSON</li>
<li><a href="/__count">/__count</a> &mdash; requests this origin has served</li>
</ul></div>
</body></html>
"""


class Server:
    def __init__(self, addrs, verbose=False, tls=None):
        self.verbose = verbose
        self.tls = tls          # an ssl.SSLContext, or None for plain HTTP
        self.counters = Counters()
        self.stopping = False
        self.socks = []
        for host, port in addrs:
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((host, port))
            s.listen(256)
            s.settimeout(0.5)
            self.socks.append(s)

    def log(self, msg):
        if self.verbose:
            sys.stdout.write("origin: %s\n" % msg)
            sys.stdout.flush()

    def ports(self):
        return [s.getsockname()[1] for s in self.socks]

    def accept_loop(self, s):
        while not self.stopping:
            try:
                c, peer = s.accept()
            except socket.timeout:
                continue
            except OSError:
                if self.stopping:
                    return
                time.sleep(0.05)  # EMFILE and the like: do not spin
                continue
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t = threading.Thread(target=self.serve_conn, args=(c, peer),
                                 daemon=True)
            t.start()

    def serve_conn(self, c, peer):
        if self.tls is not None:
            try:
                c.settimeout(10)
                c = self.tls.wrap_socket(c, server_side=True)
                c.settimeout(None)
            except (ssl.SSLError, OSError) as e:
                self.log("TLS handshake with %s failed: %s" % (peer[0], e))
                c.close()
                return
        Conn(self, c, peer).serve()

    def run(self, lifetime_s):
        threads = [threading.Thread(target=self.accept_loop, args=(s,),
                                    daemon=True) for s in self.socks]
        for t in threads:
            t.start()
        deadline = time.monotonic() + lifetime_s if lifetime_s > 0 else None
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            self.stopping = True


def parse_listen(s):
    host, sep, port = s.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % s)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return host, int(port)
    except ValueError:
        raise argparse.ArgumentTypeError("bad port in %r" % s)


def main(argv=None):
    ap = argparse.ArgumentParser(description="edged test and demo origin")
    ap.add_argument("--listen", type=parse_listen, action="append",
                    help="HOST:PORT or [V6]:PORT to serve on (repeatable; "
                    "port 0 picks a free one); default 127.0.0.1:9000")
    ap.add_argument("--port-file",
                    help="write the (first) bound port to this file")
    ap.add_argument("--max-lifetime", type=float, default=0,
                    help="exit after this many seconds (0: run until killed)")
    ap.add_argument("--verbose", action="store_true",
                    help="log each request on stdout")
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate "
                    "chain (PEM)")
    ap.add_argument("--tls-key", help="the private key of --tls-cert")
    ap.add_argument("--tls-client-ca", help="require a client certificate "
                    "signed by this CA (PEM)")
    args = ap.parse_args(argv)
    addrs = args.listen or [("127.0.0.1", 9000)]
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(args.tls_cert, args.tls_key)

        def on_sni(sock, name, ctx):
            sock.edgetest_sni = name
        tls.sni_callback = on_sni
        if args.tls_client_ca:
            tls.verify_mode = ssl.CERT_REQUIRED
            tls.load_verify_locations(args.tls_client_ca)
    try:
        srv = Server(addrs, args.verbose, tls)
    except OSError as e:
        sys.stderr.write("origin: cannot listen: %s\n" % e)
        return 1
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.ports()[0])
        os.replace(tmp, args.port_file)
    srv.log("listening on %s" % ", ".join(
        "%s:%d" % (h, p) for (h, _), p in zip(addrs, srv.ports())))
    try:
        srv.run(args.max_lifetime)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
