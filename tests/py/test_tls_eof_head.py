#!/usr/bin/env python3
"""Story: a TLS client's end comes with its request head.

A client may send its request and close in one flight: the records of the
head, then its close_notify (or a bare FIN), read by edged together.  A
complete head is answered whole before the close; half a head followed by
the end is never taken for a request: edged closes cleanly (its
close_notify, then the end of file), answers nothing, writes no access-log
line for a request it never got, and says in its log that the client
closed within a request head.  Each case is sent as one write of the records,
so that edged reads the head and the end together.
"""
import socket
import ssl
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

FULL = b"GET /obj/eof?size=3000 HTTP/1.1\r\nHost: localhost\r\n\r\n"
HALF = b"GET /obj/half?size=3000 HTTP/1.1\r\nHost: loc"



class RawTLS:
    """A TLS client over memory BIOs: what it writes leaves only when
    flush() sends it, in one send, and its close_notify can follow the
    request in that send."""

    def __init__(self, port):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.inb, self.outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inb, self.outb,
                                server_hostname="localhost")
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self._recv()
        self.flush()

    def _recv(self):
        b = self.sock.recv(65536)
        if b:
            self.inb.write(b)
        else:
            self.inb.write_eof()
        return b

    def flush(self):
        data = self.outb.read()
        if data:
            self.sock.sendall(data)

    def close_notify(self):
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass  # the server's close_notify is read later

    def read_all(self, timeout=10.0):
        """Plaintext until the server's close_notify or end of file."""
        got, end = b"", time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                d = self.obj.read(65536)
                if not d:
                    return got, "close_notify"
                got += d
                continue
            except ssl.SSLZeroReturnError:
                return got, "close_notify"
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as e:
                return got, "error: %s" % e
            if not self._recv():
                return got, "eof"
        raise AssertionError("no end within %.0f s" % timeout)

    def close(self):
        self.sock.close()


def tls_edge(o):
    tls = et.self_signed(et.mktemp("cert"))
    if tls is None:
        raise et.Skip("openssl cannot make a certificate")
    cert, key = tls
    port = et.free_port()
    e = et.Edge(o.url, "--listen-tls", "127.0.0.1:%d" % port,
                "--tls-cert", cert, "--tls-key", key, threads=1)
    e.tls_port = port
    return e


def send_and_end(e, data, end):
    c = RawTLS(e.tls_port)
    c.obj.write(data)
    if end == "close_notify":
        c.close_notify()
    c.flush()
    c.sock.shutdown(socket.SHUT_WR)  # the FIN in the same flight
    got, how = c.read_all()
    c.close()
    return got, how


def test_full_head_then_end_is_answered():
    with et.Origin() as o, tls_edge(o) as e:
        for end in ("close_notify", "fin"):
            got, how = send_and_end(e, FULL, end)
            head, _, body = got.partition(b"\r\n\r\n")
            et.ok(head.startswith(b"HTTP/1.1 200"),
                  "%s: answered (%r, %s)" % (end, got[:60], how))
            et.eq(len(body), 3000, "%s: the whole body" % end)
            et.check_pattern(body, 3000)
        et.wait_for(lambda: sum("/obj/eof" in ln
                                for ln in e.access_log_lines()) == 2,
                    what="both logged")


def test_half_head_then_end_is_closed_cleanly():
    with et.Origin() as o, tls_edge(o) as e:
        for end in ("close_notify", "fin"):
            got, how = send_and_end(e, HALF, end)
            et.eq(got, b"", "%s: nothing answered" % end)
            et.ok(how in ("close_notify", "eof"),
                  "%s: a clean close (%s)" % (end, how))
        # A request after them is answered: nothing was left behind.
        got, how = send_and_end(e, FULL, "close_notify")
        et.ok(got.startswith(b"HTTP/1.1 200"), "the next client answered")
        time.sleep(0.3)
        et.eq(sum("/obj/half" in ln for ln in e.access_log_lines()), 0,
              "no line for a request never received")
        et.eq(o.count("/obj/half"), 0, "no fetch for it")
        et.eq(e.stderr_text().count("closed within a request head"), 2,
              "a log line for each")


if __name__ == "__main__":
    et.main()
