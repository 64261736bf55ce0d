"""h2raw: a raw HTTP/2 client for edged's tests, frame by frame.

Frames are built and parsed here (RFC 9113 §4.1) so that a test can send
what no well-behaved client library would (floods, resets, bad headers);
header blocks go through the hpack package (Debian python3-hpack, a
dependency of python3-h2).  Every socket has a timeout.

    with h2raw.Conn(port) as c:
        sid = c.request("/obj/a?size=10")
        r = c.response(sid)          # .status, .headers, .body, .reset
        c.goaway_code(timeout=5)     # the GOAWAY's error code, or None

need_h2() re-executes the calling test under /usr/bin/python3 when the
python3 on PATH lacks the h2 packages (as with a pyenv interpreter), and
makes the test file skip (exit 77) with the reason when neither has them.
"""

import os
import socket
import ssl
import struct
import sys
import time

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0, 1, 2, 3, 4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 5, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20

NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 7, 8, 9, 11

SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH = 1, 2
SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_INITIAL_WINDOW_SIZE = 3, 4
SETTINGS_MAX_HEADER_LIST_SIZE = 6

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SYSTEM_PYTHON = "/usr/bin/python3"


def need_h2():
    """Make sure hpack and h2 import, re-running under the system Python
    if needed; exit 77 (skip) with the reason if they cannot."""
    try:
        import h2  # noqa: F401
        import hpack  # noqa: F401
        return
    except ImportError:
        pass
    if (os.path.exists(SYSTEM_PYTHON) and
            os.path.realpath(sys.executable) !=
            os.path.realpath(SYSTEM_PYTHON) and
            not os.environ.get("H2RAW_REEXEC")):
        os.environ["H2RAW_REEXEC"] = "1"
        os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON] + sys.argv)
    print("1..0 # SKIP python3-h2 is not installed "
          "(apt-get install python3-h2)")
    sys.exit(77)


def frame(ftype, flags, sid, payload=b""):
    return (struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) +
            struct.pack(">I", sid & 0x7fffffff) + payload)


def settings_payload(settings):
    return b"".join(struct.pack(">HI", k, v) for k, v in settings)


class Stream:
    def __init__(self):
        self.headers = []
        self.body = bytearray()
        self.ended = False
        self.reset = None   # RST_STREAM error code

    @property
    def status(self):
        for k, v in self.headers:
            if k == ":status":
                return int(v)
        return None

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None


class Conn:
    """One HTTP/2 connection: plain (prior knowledge) or over <tls> (an
    ssl.SSLContext, with ALPN h2), or over <sock>, an object that has
    the socket methods used here (sendall, recv, settimeout, close).
    <settings>: (id, value) pairs of the first SETTINGS.  With
    auto_window, DATA is acknowledged with WINDOW_UPDATE as it is read."""

    def __init__(self, port, host="127.0.0.1", tls=None, sni=None,
                 settings=(), timeout=10.0, auto_window=True,
                 preface=True, sock=None):
        if sock is not None:
            s = sock
        else:
            s = socket.create_connection((host, port), timeout=timeout)
        if tls is not None:
            s = tls.wrap_socket(s, server_hostname=sni)
        self.sock = s
        import hpack
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = b""
        self.next_sid = 1
        self.streams = {}
        self.goaway = None  # (last_stream_id, error_code)
        self.closed = False
        self.auto_window = auto_window
        self.server_settings = {}
        self._block = None  # (sid, bytes) of a header block in progress
        if preface:
            self.send(PREFACE + frame(SETTINGS, 0, 0,
                                      settings_payload(settings)))

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _reply(self, data):
        """An automatic answer (ACK, WINDOW_UPDATE): the server may have
        closed already."""
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def send_frame(self, ftype, flags, sid, payload=b""):
        self.send(frame(ftype, flags, sid, payload))

    def new_sid(self):
        sid = self.next_sid
        self.next_sid += 2
        return sid

    def block(self, headers):
        return self.enc.encode(headers)

    def request(self, path, method="GET", authority="localhost",
                headers=(), body=None, end_stream=None, sid=None):
        """Send a request's HEADERS (and its body in DATA frames); return
        the stream id."""
        sid = sid or self.new_sid()
        hs = [(":method", method), (":scheme", "http"),
              (":authority", authority), (":path", path)] + list(headers)
        if end_stream is None:
            end_stream = body is None
        self.streams.setdefault(sid, Stream())
        self.send_headers(sid, self.block(hs), end_stream)
        if body is not None:
            self.send_body(sid, body)
        return sid

    def send_headers(self, sid, block, end_stream=True, max_frame=16384):
        """A header block: HEADERS, then CONTINUATION frames if it is
        longer than <max_frame>."""
        parts = [block[i:i + max_frame]
                 for i in range(0, len(block), max_frame)] or [b""]
        data = b""
        for i, p in enumerate(parts):
            flags = END_HEADERS if i == len(parts) - 1 else 0
            if i == 0:
                data += frame(HEADERS, flags | (END_STREAM if end_stream
                                                else 0), sid, p)
            else:
                data += frame(CONTINUATION, flags, sid, p)
        self.send(data)

    def send_body(self, sid, body, chunk=16384, end=True):
        for i in range(0, len(body), chunk):
            last = end and i + chunk >= len(body)
            self.send_frame(DATA, END_STREAM if last else 0, sid,
                            body[i:i + chunk])
        if end and not body:
            self.send_frame(DATA, END_STREAM, sid)

    def read_frame(self, timeout=10.0):
        """The next frame as (type, flags, sid, payload), handled first;
        None once the server has closed."""
        deadline = time.monotonic() + timeout
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(
                self.buf[:3], "big"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame within %.1f s" % timeout)
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                data = b""
            except socket.timeout:
                raise TimeoutError("no frame within %.1f s" % timeout)
            if not data:
                self.closed = True
                return None
            self.buf += data
        n = int.from_bytes(self.buf[:3], "big")
        ftype, flags = self.buf[3], self.buf[4]
        sid = int.from_bytes(self.buf[5:9], "big") & 0x7fffffff
        payload = self.buf[9:9 + n]
        self.buf = self.buf[9 + n:]
        self._handle(ftype, flags, sid, payload)
        return ftype, flags, sid, payload

    def _handle(self, ftype, flags, sid, payload):
        st = self.streams.setdefault(sid, Stream()) if sid else None
        if ftype in (HEADERS, CONTINUATION):
            if ftype == HEADERS:
                if flags & PADDED:
                    payload = payload[1:len(payload) - payload[0]]
                if flags & PRIO:
                    payload = payload[5:]
                self._block = (sid, payload)
            else:
                self._block = (sid, self._block[1] + payload)
            if flags & END_HEADERS:
                hs = self.dec.decode(self._block[1])
                st.headers += [(k if isinstance(k, str) else k.decode(),
                                v if isinstance(v, str) else v.decode())
                               for k, v in hs]
                self._block = None
            if flags & END_STREAM:
                st.ended = True
        elif ftype == DATA:
            if flags & PADDED:
                payload = payload[1:len(payload) - payload[0]]
            st.body += payload
            if flags & END_STREAM:
                st.ended = True
            if self.auto_window and len(payload) > 0:
                inc = struct.pack(">I", len(payload))
                self._reply(frame(WINDOW_UPDATE, 0, 0, inc) +
                          (frame(WINDOW_UPDATE, 0, sid, inc)
                           if not st.ended else b""))
        elif ftype == RST_STREAM:
            st.reset = struct.unpack(">I", payload[:4])[0]
        elif ftype == SETTINGS and not flags & ACK:
            for i in range(0, len(payload), 6):
                k, v = struct.unpack(">HI", payload[i:i + 6])
                self.server_settings[k] = v
            self._reply(frame(SETTINGS, ACK, 0))
        elif ftype == PING and not flags & ACK:
            self._reply(frame(PING, ACK, 0, payload))
        elif ftype == GOAWAY:
            self.goaway = struct.unpack(">II", payload[:8])
            self.goaway = (self.goaway[0] & 0x7fffffff, self.goaway[1])

    def response(self, sid, timeout=10.0):
        """Read until stream <sid> ends (or is reset); its Stream."""
        deadline = time.monotonic() + timeout
        st = self.streams.setdefault(sid, Stream())
        while not st.ended and st.reset is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("stream %d did not end" % sid)
            if self.read_frame(left) is None:
                raise ConnectionError("closed before stream %d ended "
                                      "(GOAWAY %r)" % (sid, self.goaway))
        return st

    def goaway_code(self, timeout=10.0):
        """Read until GOAWAY (its error code) or close (None)."""
        deadline = time.monotonic() + timeout
        while self.goaway is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no GOAWAY within %.1f s" % timeout)
            try:
                if self.read_frame(left) is None:
                    break
            except TimeoutError:
                raise
        return None if self.goaway is None else self.goaway[1]

    def drain_until_closed(self, timeout=10.0):
        """Read (and handle) frames until the server closes; whether it
        did within <timeout>."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.read_frame(deadline - time.monotonic()) is None:
                    return True
            except TimeoutError:
                return False
        return False


def tls_context(cafile=None, alpn=("h2",)):
    ctx = ssl.create_default_context(cafile=cafile)
    if cafile is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(list(alpn))
    return ctx
