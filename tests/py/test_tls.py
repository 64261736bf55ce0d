#!/usr/bin/env python3
"""Story: edged terminates TLS, and speaks TLS to https origins.

A test CA and its certificates are made with the openssl command at the
start (default.test is the default certificate, www.example.com and
*.example.org are chosen by SNI).  curl, `openssl s_client` and Python's ssl
module handshake with TLS 1.2 and 1.3; TLS 1.0 and 1.1 are refused.  SNI
picks the certificate (exact, wildcard of one label, else the default).
Sessions resume from tickets (whose keys rotate) and from the session
cache, also connection after connection as a client making one per
request does (TLS 1.3 and 1.2).  Requests sent behind the client's
Finished are answered (HTTP/1.1 and h2), and a client that asked for the
close is let go at once, but not while its answer is still in the socket
(a close_notify sent right behind the request would draw a reset).  A
client's FIN without close_notify behind its request, or behind its
request's body, still gets the answer, and so does one whose FIN comes
while a large answer waits for the socket.  SIGHUP reloads the
certificates while a keep-alive connection stays open and usable; a broken new certificate is refused and the old one stays.
A client that stalls in the handshake is dropped after
client_header_timeout, garbage on the TLS port is dropped, and edged keeps
serving.  The origin hears X-Forwarded-Proto: https, and HTTP and HTTPS
share cached objects.  An https origin is verified against origin_ca_file
(a certificate from elsewhere gets 502), can ask for a client certificate,
and an OCSP response is stapled when configured.  A large hit's head
shares the first full TLS record with its body, which follows in whole
records.
"""

import atexit
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")
PKI = None  # the directory of the test CA, made once


def run(argv, input=None, timeout=15):
    p = subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def must(argv):
    rc, out = run(argv)
    if rc != 0:
        raise AssertionError("%s failed (%d):\n%s" % (" ".join(argv), rc,
                                                       out))
    return out


def pki():
    """The test CA and certificates, in a temp dir (made on first use)."""
    global PKI
    if OPENSSL is None:
        raise et.Skip("no openssl command (apt-get install openssl)")
    if PKI is not None:
        return PKI
    # Not under et.mktemp(): the files must outlive every test of the run.
    d = tempfile.mkdtemp(prefix="edged-tls-pki-")
    atexit.register(shutil.rmtree, d, True)

    def p(name):
        return os.path.join(d, name)

    must([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
          "ec_paramgen_curve:P-256", "-nodes", "-keyout", p("ca.key"),
          "-out", p("ca.crt"), "-days", "2", "-subj", "/CN=edged test CA"])
    # A second, unrelated CA: its certificates are not trusted.
    must([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
          "ec_paramgen_curve:P-256", "-nodes", "-keyout", p("rogue.key"),
          "-out", p("rogue.crt"), "-days", "2", "-subj", "/CN=rogue CA"])
    PKI = d
    for name, cn, san in [
            ("default", "default.test", "DNS:default.test"),
            ("www", "www.example.com", "DNS:www.example.com"),
            ("wild", "*.example.org", "DNS:*.example.org"),
            ("origin", "localhost", "DNS:localhost,IP:127.0.0.1"),
            ("client", "edge-client", "DNS:edge-client"),
            ("default2", "default.test", "DNS:default.test")]:
        make_cert(name, cn, san)
    make_cert("badorigin", "localhost", "DNS:localhost,IP:127.0.0.1",
              ca="rogue")
    return d


def make_cert(name, cn, san, ca="ca", rsa=False):
    """<name>.crt and <name>.key signed by <ca>; <name>-chain.crt adds the
    CA certificate."""
    d = PKI

    def p(n):
        return os.path.join(d, n)

    newkey = ["rsa:2048"] if rsa else ["ec", "-pkeyopt",
                                       "ec_paramgen_curve:P-256"]
    must([OPENSSL, "req", "-newkey"] + newkey + [
        "-nodes", "-keyout", p(name + ".key"), "-out", p(name + ".csr"),
        "-subj", "/CN=" + cn])
    with open(p(name + ".ext"), "w") as f:
        f.write("subjectAltName=%s\n" % san)
    must([OPENSSL, "x509", "-req", "-in", p(name + ".csr"), "-CA",
          p(ca + ".crt"), "-CAkey", p(ca + ".key"), "-CAcreateserial",
          "-out", p(name + ".crt"), "-days", "2", "-extfile",
          p(name + ".ext")])
    with open(p(name + "-chain.crt"), "w") as out:
        for n in (name + ".crt", ca + ".crt"):
            with open(p(n)) as f:
                out.write(f.read())


def pk(name):
    return os.path.join(pki(), name)


def serial_of(path):
    out = must([OPENSSL, "x509", "-in", path, "-noout", "-serial"])
    return out.strip().split("=", 1)[1].upper()


def tls_edge(origin_url, *extra, certs="default", sni=True, admin=True,
             threads=2):
    """edged with a TLS listener (e.tls_port) and the default certificate
    <certs> (its key is the one before any "-": default-chain is
    default-chain.crt with default.key), copied into its temp dir (e.cert_path, e.key_path) so that a
    test may replace them; with the two SNI certificates unless sni=False,
    and an admin listener (e.admin_port)."""
    tls_port = et.free_port()
    args = ["--listen-tls", "127.0.0.1:%d" % tls_port]
    d = et.mktemp("certs")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    shutil.copy(pk(certs + ".crt"), cert)
    shutil.copy(pk(certs.split("-")[0] + ".key"), key)
    args += ["--tls-cert", cert, "--tls-key", key]
    if sni:
        args += ["--tls-sni-cert", "www.example.com %s %s"
                 % (pk("www.crt"), pk("www.key")),
                 "--tls-sni-cert", "*.example.org %s %s"
                 % (pk("wild.crt"), pk("wild.key"))]
    admin_port = None
    if admin:
        admin_port = et.free_port()
        args += ["--admin-listen", "127.0.0.1:%d" % admin_port]
    e = et.Edge(origin_url, *(args + list(extra)), threads=threads)
    e.tls_port, e.admin_port = tls_port, admin_port
    e.cert_path, e.key_path, e.certdir = cert, key, d
    return e


def stats(e):
    with urllib.request.urlopen("http://127.0.0.1:%d/stats" % e.admin_port,
                                timeout=5) as r:
        return json.load(r)


def client_ctx(version=None):
    ctx = ssl.create_default_context(cafile=pk("ca.crt"))
    ctx.check_hostname = False  # the tests look at the certificate
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


class TLSClient(et.Client):
    """et.Client over TLS: .cert is the server certificate (a dict),
    .version the protocol."""

    def __init__(self, port, sni=None, ctx=None, timeout=10.0):
        raw = socket.create_connection(("127.0.0.1", port), timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ctx = ctx or client_ctx()
        self.sock = ctx.wrap_socket(raw, server_hostname=sni)
        self.cert = self.sock.getpeercert()
        self.version = self.sock.version()
        self.reader = et.Reader(self.sock)


def cn(cert):
    return [v for rdn in cert["subject"] for k, v in rdn
            if k == "commonName"][0]


def s_client(port, *args, data=b"", timeout=15):
    """openssl s_client against <port>; returns its output."""
    rc, out = run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port,
                   "-CAfile", pk("ca.crt")] + list(args), input=data,
                  timeout=timeout)
    return out


def s_client_get(port, *args):
    """s_client sending one request and reading until the server closes:
    a TLS 1.3 ticket arrives after the handshake, so a client that quits
    at once may not have one to save."""
    req = (b"GET /obj/s?size=10 HTTP/1.1\r\nHost: default.test\r\n"
           b"Connection: close\r\n\r\n")
    return s_client(port, "-ign_eof", *args, data=req)


def curl(url, *args):
    if CURL is None:
        raise et.Skip("no curl command")
    rc, out = run([CURL, "-sS", "-v", "--max-time", "10", "--cacert",
                   pk("ca.crt")] + list(args) + [url])
    return rc, out


# ------------------------------------------------------------------ tests


def test_handshakes_tls12_and_tls13():
    with et.Origin() as o, tls_edge(o.url) as e:
        for flag, want in (("--tlsv1.2", "TLSv1.2"), ("--tlsv1.3",
                                                      "TLSv1.3")):
            # HTTP/1.1 here; test_h2.py has the h2 side of ALPN.
            rc, out = curl("https://default.test:%d/obj/c?size=100"
                           % e.tls_port, flag, "--http1.1", "--tls-max",
                           want[-3:], "--resolve",
                           "default.test:%d:127.0.0.1" % e.tls_port)
            et.eq(rc, 0, "curl %s exit status\n%s" % (flag, out))
            et.ok("SSL connection using %s" % want in out,
                  "curl negotiated %s:\n%s" % (want, out))
            et.ok("ALPN: server accepted http/1.1" in out, "ALPN http/1.1")
            et.ok("< HTTP/1.1 200" in out, "a 200 over TLS")
        for flag, want in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            req = (b"GET /obj/s?size=10 HTTP/1.1\r\nHost: default.test\r\n"
                   b"Connection: close\r\n\r\n")
            out = s_client(e.tls_port, flag, "-servername", "default.test",
                           "-verify_hostname", "default.test", "-ign_eof",
                           "-alpn", "http/1.1", data=req)
            et.ok("Protocol  : %s" % want in out or
                  "New, %s" % want in out, "s_client %s:\n%s" % (flag, out))
            et.ok("Verify return code: 0 (ok)" in out, "verified: " + out)
            et.ok("ALPN protocol: http/1.1" in out, "ALPN: " + out)
            et.ok("HTTP/1.1 200 OK" in out, "the response: " + out)
        with TLSClient(e.tls_port, "default.test") as c:
            for i in range(3):   # keep-alive over TLS
                r = c.request("GET", "/obj/k%d?size=5000" % i)
                et.eq(r.status, 200, "status")
                et.check_pattern(r.body, 5000)
        et.ok(stats(e)["tls"]["handshakes"] >= 5, "handshakes counted")


def test_bodies_over_tls():
    with et.Origin() as o, tls_edge(o.url) as e:
        with TLSClient(e.tls_port, "www.example.com") as c:
            body = et.pattern(0, 1 << 20)
            r = c.request("POST", "/echo", body=body)
            j = r.json()
            et.eq(j["body_length"], len(body), "a 1 MiB upload")
            et.eq(j["body_sha256"], et.sha256(body), "intact")
            chunked = et.chunk_encode(body[:300000], sizes=(7000, 16384))
            r = c.request("POST", "/echo", headers=[
                ("Transfer-Encoding", "chunked")], body=chunked)
            et.eq(r.json()["body_sha256"], et.sha256(body[:300000]),
                  "a chunked upload, intact")
            r = c.request("GET", "/obj/big?size=%d" % (3 << 20))
            et.check_pattern(r.body, 3 << 20)
            # A slow reader: backpressure over TLS, then the whole body.
            c.send(et.build_request("GET", "/obj/slow?size=%d" % (2 << 20)))
            r = c.read_response(read_body=False)
            got = bytearray()
            while len(got) < 2 << 20:
                got += c.reader.read_exact(min(65536, (2 << 20) - len(got)))
                if len(got) < 512 * 1024:
                    time.sleep(0.01)
            et.check_pattern(bytes(got), 2 << 20)
            et.eq(c.request("GET", "/obj/after?size=5").status, 200,
                  "the connection is still in step")


def response_records(port, target, sni="www.example.com"):
    """GET <target> over TLS 1.3 with a client that sees the records:
    returns the plaintext length of each record that carries bytes of the
    response (session tickets carry none), and the response bytes."""
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_ctx(ssl.TLSVersion.TLSv1_3).wrap_bio(inc, outg, False, sni)
    with socket.create_connection(("127.0.0.1", port), 10) as sock:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outg.read())
                got = sock.recv(65536)
                if not got:
                    raise AssertionError("closed in the handshake")
                inc.write(got)
        sock.sendall(outg.read())
        tls.write(et.build_request("GET", target))
        sock.sendall(outg.read())
        raw, resp, sizes, want = b"", b"", [], None
        while want is None or len(resp) < want:
            got = sock.recv(65536)
            if not got:
                raise AssertionError("closed before the whole response")
            raw += got
            while len(raw) >= 5 and len(raw) >= 5 + int.from_bytes(
                    raw[3:5], "big"):
                n = 5 + int.from_bytes(raw[3:5], "big")
                inc.write(raw[:n])
                raw = raw[n:]
                plain = b""
                while True:
                    try:
                        plain += tls.read(65536)
                    except ssl.SSLWantReadError:
                        break
                if plain:
                    sizes.append(len(plain))
                    resp += plain
            end = resp.find(b"\r\n\r\n")
            if want is None and end >= 0:
                head = resp[:end].decode("latin-1").lower()
                cl = head.split("content-length:")[1].split("\r\n")[0]
                want = end + 4 + int(cl)
    return sizes, resp


def whole(data, methods):
    """Whether <data> holds complete responses to all <methods>."""
    try:
        return len(et.parse_responses(data, methods)) >= len(methods)
    except et.ResponseError:
        return False


def test_records_sent_together_are_all_read():
    """edged reads ahead over HTTP/1.1: one read(2) takes what the socket
    holds, several records, of which libevent decrypts one.  Two pipelined
    requests and a POST whose head and body are records of their own, all
    in one segment, must each be answered, not left in OpenSSL's buffer
    until the client sends again."""
    with et.Origin() as o, tls_edge(o.url) as e:
        s, tls, inc, outg = held_finished(e.tls_port, "http/1.1")
        with s:
            s.sendall(outg.read())
            body = et.pattern(0, 3000)
            tls.write(et.build_request("GET", "/obj/ra1?size=100"))
            tls.write(et.build_request("GET", "/obj/ra2?size=200"))
            tls.write(b"POST /echo HTTP/1.1\r\nHost: a\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body))
            tls.write(body)
            s.sendall(outg.read())  # four records, one segment
            s.settimeout(5)
            plain = b""
            while not whole(plain, ["GET", "GET", "POST"]):
                try:
                    got = s.recv(65536)
                except socket.timeout:
                    raise AssertionError("stalled after %d bytes: %r"
                                         % (len(plain), plain[-200:]))
                if not got:
                    raise AssertionError("closed after %d bytes"
                                         % len(plain))
                inc.write(got)
                while True:
                    try:
                        plain += tls.read(65536)
                    except ssl.SSLWantReadError:
                        break
        r1, r2, r3 = et.parse_responses(plain, ["GET", "GET", "POST"])
        et.check_pattern(r1.body, 100)
        et.check_pattern(r2.body, 200)
        et.eq(r3.json()["body_sha256"], et.sha256(body), "the POST body")


def held_finished(port, alpn):
    """A TLS 1.3 handshake whose client Finished is not sent yet: returns
    the socket and the client's TLS object and BIOs, so that a test can
    send the Finished and what follows it in one segment."""
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    ctx = client_ctx(ssl.TLSVersion.TLSv1_3)
    ctx.set_alpn_protocols([alpn])
    tls = ctx.wrap_bio(inc, outg, False, "www.example.com")
    s = socket.create_connection(("127.0.0.1", port), 10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            s.sendall(outg.read())
            got = s.recv(65536)
            if not got:
                s.close()
                raise AssertionError("closed in the handshake")
            inc.write(got)
    et.eq(tls.selected_alpn_protocol(), alpn, "ALPN")
    return s, tls, inc, outg


def read_until(s, tls, inc, done, what):
    """Decrypt what <s> receives until done(plaintext), in 5 s."""
    s.settimeout(5)
    plain = b""
    while not done(plain):
        try:
            got = s.recv(65536)
        except socket.timeout:
            raise AssertionError("%s: stalled after %d bytes: %r"
                                 % (what, len(plain), plain[-200:]))
        if not got:
            raise AssertionError("%s: closed after %d bytes"
                                 % (what, len(plain)))
        inc.write(got)
        while True:
            try:
                plain += tls.read(65536)
            except ssl.SSLWantReadError:
                break
    return plain


def read_to_end(s, tls, inc):
    """Decrypt what <s> receives until the connection ends (its end of
    file, or a reset), in 5 s: (plaintext, whether a close_notify came)."""
    s.settimeout(5)
    plain, notify = b"", False
    while True:
        try:
            got = s.recv(65536)
        except ConnectionResetError:
            break
        if not got:
            break
        inc.write(got)
        try:
            while not notify:
                got = tls.read(65536)
                notify = got == b""  # the close_notify
                plain += got
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            notify = True
    return plain, notify


def test_requests_sent_with_the_finished_are_read():
    """OpenSSL reads ahead from the ClientHello on, so the read that
    takes the client's Finished also takes what the client sent behind it:
    HTTP/1.1 requests, or an h2 preface, SETTINGS and HEADERS, each a
    record of its own.  They must be answered when the handshake ends,
    not left in OpenSSL's buffer until the client sends again."""
    with et.Origin() as o, tls_edge(o.url) as e:
        s, tls, inc, outg = held_finished(e.tls_port, "http/1.1")
        with s:
            tls.write(et.build_request("GET", "/obj/fin1?size=100"))
            tls.write(et.build_request("GET", "/obj/fin2?size=200"))
            s.sendall(outg.read())  # Finished and two records
            plain = read_until(s, tls, inc,
                               lambda p: whole(p, ["GET", "GET"]),
                               "HTTP/1.1")
        r1, r2 = et.parse_responses(plain, ["GET", "GET"])
        et.check_pattern(r1.body, 100)
        et.check_pattern(r2.body, 200)

        s, tls, inc, outg = held_finished(e.tls_port, "h2")
        with s:
            tls.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            tls.write(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            # HPACK (RFC 7541): :method GET and :scheme https from the
            # static table, :authority and :path as literals.
            block = b"\x82\x87"
            for idx, v in ((1, b"www.example.com"),
                           (4, b"/obj/fin3?size=300")):
                block += bytes([idx, len(v)]) + v
            # HEADERS, END_STREAM | END_HEADERS, stream 1
            tls.write(len(block).to_bytes(3, "big") + b"\x01\x05" +
                      (1).to_bytes(4, "big") + block)
            s.sendall(outg.read())  # Finished and three records

            def ended(p):
                # frames after the server's SETTINGS: DATA with
                # END_STREAM on stream 1 ends the response
                i = 0
                while i + 9 <= len(p):
                    n = int.from_bytes(p[i:i + 3], "big")
                    if (p[i + 3] == 0 and p[i + 4] & 1 and
                            int.from_bytes(p[i + 5:i + 9], "big") == 1):
                        return True
                    i += 9 + n
                return False
            plain = read_until(s, tls, inc, ended, "h2")
        et.ok(len(plain) > 300, "an h2 response of %d bytes" % len(plain))


def test_large_hits_fill_whole_records():
    """A hit's head went as a TLS record (and a write) of its
    own before the body's records; it now fills the first full record
    with the start of the body, and the body follows in full records."""
    record = 16384
    cache = os.path.join(et.mktemp("cache"), "c")
    with et.Origin() as o, tls_edge(o.url, "--cache-dir", cache,
                                    threads=1) as e:
        for i, size in enumerate((102400, 20000, 3000)):
            target = "/obj/rec%d?size=%d&ttl=60" % (size, size)
            response_records(e.tls_port, target)  # the miss stores it
            et.wait_for(lambda: stats(e)["cache"]["objects"] > i,
                        what="the object to be stored")
            sizes, resp = response_records(e.tls_port, target)
            end = resp.find(b"\r\n\r\n")
            et.check_pattern(resp[end + 4:], size)
            et.ok(b"hit" in resp[:end].lower(), "%d bytes: a hit" % size)
            et.eq(sizes[0], min(record, len(resp)),
                  "%d bytes: the head shares the first full record" % size)
            et.eq(len(sizes), -(-len(resp) // record),
                  "%d bytes: %r are whole records but the last"
                  % (size, sizes))
        # The socket is corked while records queue up and uncorked once
        # they are written: a cork left on would hold each response's
        # last segment for 200 ms.
        with TLSClient(e.tls_port, "www.example.com") as c:
            t0 = time.monotonic()
            for _ in range(20):
                r = c.request("GET", "/obj/rec102400?size=102400&ttl=60")
                et.eq(len(r.body), 102400, "a whole hit")
            et.ok(time.monotonic() - t0 < 3.0,
                  "20 hits of 100 KiB in %.2f s" % (time.monotonic() - t0))


def test_sigterm_closes_tls_connections():
    with et.Origin() as o:
        e = tls_edge(o.url, "--drain-timeout", "5s")
        with e, TLSClient(e.tls_port, "default.test") as idle:
            et.eq(idle.request("GET", "/obj/i?size=5").status, 200, "status")
            t0 = time.monotonic()
            e.send_signal(signal.SIGTERM)
            idle.sock.settimeout(3)
            try:
                data = idle.sock.recv(100)
            except ssl.SSLEOFError:
                raise AssertionError("closed without close_notify")
            et.eq(data, b"", "a clean TLS close (close_notify)")
            t = time.monotonic() - t0
            et.ok(t < 1, "an idle TLS connection is closed at once (%s)" % t)
            idle.close()  # else edged lingers for the client's close
            et.ok(e.wait_exit(3) is not None, "and edged exits")
            et.ok(time.monotonic() - t0 < 2, "without waiting for the "
                  "drain timeout")


def test_asked_close_frees_the_tls_connection_at_once():
    """A client that asks for the close and has sent nothing more gets
    its answer and a close_notify, and edged closes its end at once, as
    over plain HTTP, rather than wait for the client's close_notify.  One
    that sent more behind such a request still gets its answer whole."""
    with et.Origin() as o, tls_edge(o.url) as e:
        with TLSClient(e.tls_port, "www.example.com") as c:
            r = c.request("GET", "/obj/tc?size=1000",
                          headers={"Connection": "close"})
            et.check_pattern(r.body, 1000)
            c.sock.settimeout(3)
            et.eq(c.sock.recv(100), b"", "a close_notify after the answer")
            # Our end stays open: edged must not wait for it.
            et.wait_for(lambda: stats(e)["connections_open"] == 0,
                        timeout=1.0, what="edged closed its end")
        for i in range(3):
            with TLSClient(e.tls_port, "www.example.com") as c:
                c.send(et.build_request("GET", "/obj/tc2?size=200000",
                                        {"Connection": "close"}) +
                       et.build_request("GET", "/obj/more%d" % i))
                et.check_pattern(c.read_response().body, 200000)
                c.sock.settimeout(3)
                et.eq(c.sock.recv(100), b"", "the second request is not "
                      "answered")


def test_close_notify_behind_a_close_request():
    """A client may send its close_notify right behind a request that
    asked for the close and read the answer after (TLS 1.3 lets one side
    close while the other sends on).  edged closes at once only once its
    socket has sent the answer: a close_notify that reached a closed
    socket would be answered with a reset that drops the answer's end.
    The close_notify's timing is a race, so this runs many times."""
    with et.Origin() as o, tls_edge(o.url) as e:
        for i in range(20):
            s, tls, inc, outg = held_finished(e.tls_port, "http/1.1")
            with s:
                tls.write(et.build_request("GET", "/obj/notify?size=400000",
                                           {"Connection": "close"}))
                s.sendall(outg.read())
                time.sleep(0.001 * (i % 4))
                try:
                    tls.unwrap()  # our close_notify, then read on
                except ssl.SSLWantReadError:
                    pass
                s.sendall(outg.read())
                plain, _ = read_to_end(s, tls, inc)
            r, = et.parse_responses(plain, ["GET"])
            et.check_pattern(r.body, 400000)


def test_half_close_after_the_request_gets_the_answer():
    """A client that sends its request and then shuts down its sending
    side (a FIN, no close_notify) still gets the whole answer, then a
    close_notify, and edged lets the connection go.  The end of file may
    be read while the answer (from the origin) is queued but not yet
    written, or in one read with the request: a race, so each case runs
    many times."""
    with et.Origin() as o, tls_edge(o.url) as e:
        for close in (True, False) * 50:
            s, tls, inc, outg = held_finished(e.tls_port, "http/1.1")
            with s:
                tls.write(et.build_request(
                    "GET", "/obj/half?size=5000",
                    {"Connection": "close"} if close else None))
                s.sendall(outg.read())
                s.shutdown(socket.SHUT_WR)
                plain, notify = read_to_end(s, tls, inc)
                r, = et.parse_responses(plain, ["GET"])
                et.check_pattern(r.body, 5000)
                et.ok(notify, "a close_notify after the answer (%s)"
                      % ("Connection: close" if close else "keep-alive"))
        et.wait_for(lambda: stats(e)["connections_open"] == 0,
                    timeout=3.0, what="edged closed every connection")


def test_half_close_after_the_body_gets_the_answer():
    """A client that sends a request's body and then a FIN (no
    close_notify) gets the answer: libevent reports that end of file
    before it hands on the body's last bytes, read with it.  A race, so
    it runs many times."""
    with et.Origin() as o, tls_edge(o.url) as e:
        for i in range(30):
            body = os.urandom(3000)
            s, tls, inc, outg = held_finished(e.tls_port, "http/1.1")
            with s:
                tls.write(et.build_request(
                    "POST", "/echo?fin=%d" % i,
                    {"Content-Length": str(len(body))}))
                s.sendall(outg.read())
                time.sleep(0.02)  # the head is read: the request is active
                tls.write(body)
                s.sendall(outg.read())
                s.shutdown(socket.SHUT_WR)
                plain, _ = read_to_end(s, tls, inc)
            r, = et.parse_responses(plain, ["POST"])
            d = r.json()
            et.eq((d["body_length"], d["body_sha256"]),
                  (len(body), et.sha256(body)), "request %d: the body" % i)


def test_half_close_while_a_large_answer_waits_for_the_socket():
    """A client that half-closes (a FIN, with or without its close_notify
    first) while a large answer still waits for the socket gets all of
    it: libevent's OpenSSL bufferevent stops writing when it reads the end
    of the connection, and the answer stalled half-way until the drain
    timeout.  Kept alive or asked to close, edged then closes."""
    size = 8 << 20
    with et.Origin() as o, tls_edge(o.url) as e:
        with TLSClient(e.tls_port, "www.example.com") as c:
            et.check_pattern(c.request("GET", "/obj/hw?size=%d" % size).body,
                             size)  # now a hit, written at once
        for notify, close in ((False, False), (True, False), (False, True),
                              (True, True)):
            what = "%s, %s" % ("close_notify and FIN" if notify else "FIN",
                               "Connection: close" if close else "keep-alive")
            s, tls, inc, outg = held_finished(e.tls_port, "http/1.1")
            with s:
                tls.write(et.build_request(
                    "GET", "/obj/hw?size=%d" % size,
                    {"Connection": "close"} if close else None))
                s.sendall(outg.read())
                time.sleep(0.3)  # the socket fills, the rest waits
                if notify:
                    try:
                        tls.unwrap()
                    except ssl.SSLWantReadError:
                        pass
                    s.sendall(outg.read())
                s.shutdown(socket.SHUT_WR)
                try:
                    plain, _ = read_to_end(s, tls, inc)
                except socket.timeout:
                    raise AssertionError("%s: the answer stalled" % what)
            r, = et.parse_responses(plain, ["GET"])
            et.check_pattern(r.body, size)
        et.wait_for(lambda: stats(e)["connections_open"] == 0,
                    timeout=3.0, what="edged closed every connection")


def test_tls10_and_tls11_refused():
    with et.Origin() as o, tls_edge(o.url) as e:
        for flag in ("-tls1", "-tls1_1"):
            out = s_client(e.tls_port, flag, "-cipher", "DEFAULT:@SECLEVEL=0")
            et.ok("alert protocol version" in out or
                  "unsupported protocol" in out or
                  "no protocols available" in out,
                  "s_client %s refused:\n%s" % (flag, out))
            et.ok("Cipher is (NONE)" in out or "Cipher    : 0000" in out or
                  "no peer certificate available" in out,
                  "no session with %s:\n%s" % (flag, out))
        ctx = client_ctx()
        with warnings.catch_warnings():   # TLS 1.1 is deprecated: the point
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        except ssl.SSLError:
            pass
        try:
            TLSClient(e.tls_port, "default.test", ctx).close()
            raise AssertionError("a TLS 1.1 handshake succeeded")
        except (ssl.SSLError, OSError):
            pass
        st = et.wait_for(lambda: (lambda s: s if s["tls"][
            "handshake_errors"] >= 2 else None)(stats(e)), 3,
            what="the refusals to be counted")
        et.eq(st["tls"]["handshakes"], 0, "no handshake completed")
        # edged serves on.
        with TLSClient(e.tls_port, "default.test") as c:
            et.eq(c.request("GET", "/obj/x?size=1").status, 200, "status")


def test_sni_picks_the_certificate():
    with et.Origin() as o, tls_edge(o.url) as e:
        cases = [("www.example.com", "www.example.com"),
                 ("WWW.Example.COM", "www.example.com"),
                 ("a.example.org", "*.example.org"),
                 ("zz-9.example.org", "*.example.org"),
                 ("a.b.example.org", "default.test"),   # one label only
                 ("example.org", "default.test"),
                 ("unknown.test", "default.test"),
                 (None, "default.test")]                # no SNI at all
        for sni, want in cases:
            with TLSClient(e.tls_port, sni) as c:
                et.eq(cn(c.cert), want, "certificate for SNI %r" % sni)
                r = c.request("GET", "/obj/n?size=3")
                et.eq(r.status, 200, "a request over it")
        out = s_client(e.tls_port, "-servername", "www.example.com",
                       "-verify_hostname", "www.example.com")
        et.ok("Verify return code: 0 (ok)" in out,
              "s_client verifies www.example.com:\n" + out)


def test_resumption_tickets_and_cache():
    with et.Origin() as o, tls_edge(o.url) as e:
        sess = os.path.join(e.tmpdir, "sess")
        for args in (["-tls1_3"], ["-tls1_2"], ["-tls1_2", "-no_ticket"]):
            out = s_client_get(e.tls_port, "-sess_out", sess, *args)
            et.ok("New, TLS" in out, "first handshake is full (%s):\n%s"
                  % (args, out))
            out = s_client_get(e.tls_port, "-sess_in", sess, *args)
            et.ok("Reused, TLS" in out, "resumed with %s:\n%s" % (args, out))
        st = stats(e)["tls"]
        et.ok(st["resumed"] >= 3, "resumptions counted: %r" % st)


def test_each_request_on_a_resumed_connection():
    """As a client making a connection per request does (the benchmark's
    h1-resume): each connection asks for the close and resumes the session
    of the one before, from its newest ticket, over TLS 1.3 and 1.2.
    Every one after the first resumes, gets its answer whole and a
    close_notify, and edged counts the resumptions."""
    with et.Origin() as o, tls_edge(o.url) as e:
        n = 5
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            ctx = client_ctx(version)
            sess = None
            for i in range(n):
                raw = socket.create_connection(("127.0.0.1", e.tls_port), 10)
                with ctx.wrap_socket(raw, server_hostname="www.example.com",
                                     session=sess) as s:
                    s.sendall(et.build_request(
                        "GET", "/obj/res?size=3000",
                        {"Connection": "close"}))
                    data = b""
                    while True:
                        got = s.recv(65536)
                        if not got:
                            break  # the close_notify
                        data += got
                    r, = et.parse_responses(data, ["GET"])
                    et.check_pattern(r.body, 3000)
                    et.eq(s.session_reused, i > 0,
                          "%s connection %d resumed" % (version.name, i))
                    sess = s.session
        st = stats(e)["tls"]
        et.ok(st["resumed"] >= 2 * (n - 1), "resumptions counted: %r" % st)


@et.timeout(40)
def test_ticket_keys_rotate():
    rotate = 3.0
    with et.Origin() as o:
        e = tls_edge(o.url, "--tls-ticket-rotate", "3s",
                     "--tls-session-cache", "0")
        with e:
            t_ready = time.monotonic()
            sess = os.path.join(e.tmpdir, "sess")
            out = s_client_get(e.tls_port, "-sess_out", sess)
            et.ok("New, TLSv1.3" in out, "full handshake: " + out)
            # After one rotation the ticket's key is the previous one:
            # still accepted.
            time.sleep(max(0.0, t_ready + rotate + 0.7 - time.monotonic()))
            out = s_client_get(e.tls_port, "-sess_in", sess)
            et.ok("Reused, TLSv1.3" in out, "resumed after one rotation:\n"
                  + out)
            # After two, its key is gone: a full handshake.
            time.sleep(max(0.0, t_ready + 2 * rotate + 1.0 -
                           time.monotonic()))
            out = s_client_get(e.tls_port, "-sess_in", sess)
            et.ok("New, TLSv1.3" in out, "not resumed after two rotations:\n"
                  + out)


def test_reload_under_an_open_connection():
    with et.Origin() as o, tls_edge(o.url) as e:
        old = serial_of(pk("default.crt"))
        new = serial_of(pk("default2.crt"))
        with TLSClient(e.tls_port, "default.test") as c:
            et.eq(c.cert["serialNumber"], old, "serial before")
            et.eq(c.request("GET", "/obj/r1?size=10").status, 200, "status")
            shutil.copy(pk("default2.crt"), e.cert_path)
            shutil.copy(pk("default2.key"), e.key_path)
            e.send_signal(signal.SIGHUP)
            et.wait_for(lambda: "certificates reloaded" in e.stderr_text(),
                        5, what="the reload to be logged")
            # The open connection still works...
            r = c.request("GET", "/obj/r2?size=10")
            et.eq(r.status, 200, "the old connection after the reload")
            et.check_pattern(r.body, 10)
            # ... and new ones see the new certificate, on every worker.
            for _ in range(6):
                with TLSClient(e.tls_port, "default.test") as n:
                    et.eq(n.cert["serialNumber"], new, "serial after")
                    et.eq(n.request("GET", "/obj/r3?size=1").status, 200,
                          "a request on a new connection")
            r = c.request("GET", "/obj/r4?size=10")
            et.eq(r.status, 200, "the old connection is still usable")
        # SNI certificates come through the reload too.
        with TLSClient(e.tls_port, "www.example.com") as n:
            et.eq(cn(n.cert), "www.example.com", "SNI after the reload")


def test_broken_certificate_refused_on_reload():
    with et.Origin() as o, tls_edge(o.url) as e:
        old = serial_of(pk("default.crt"))
        with TLSClient(e.tls_port, "default.test") as c:
            et.eq(c.request("GET", "/obj/b1?size=10").status, 200, "status")
            # A new certificate whose key does not match.
            shutil.copy(pk("default2.crt"), e.cert_path)
            e.send_signal(signal.SIGHUP)
            et.wait_for(lambda: "reload refused" in e.stderr_text(), 5,
                        what="the refusal to be logged")
            err = e.stderr_text()
            et.ok("key values mismatch" in err or "does not match" in err,
                  "the log says why:\n" + err[-2000:])
            et.ok(e.key_path in err, "and names the file")
            for _ in range(4):
                with TLSClient(e.tls_port, "default.test") as n:
                    et.eq(n.cert["serialNumber"], old, "the old one stays")
            et.eq(c.request("GET", "/obj/b2?size=10").status, 200,
                  "the open connection is untouched")
            # Garbage in place of the certificate: refused as well.
            with open(e.cert_path, "w") as f:
                f.write("not a certificate\n")
            e.send_signal(signal.SIGHUP)
            et.wait_for(lambda: e.stderr_text().count("reload refused") >= 2,
                        5, what="the second refusal")
            et.ok("no start line" in e.stderr_text() or
                  "cannot load the certificate" in e.stderr_text(),
                  "why: " + e.stderr_text()[-1000:])
            with TLSClient(e.tls_port, "default.test") as n:
                et.eq(n.cert["serialNumber"], old, "still the old one")
            # Fixed files load.
            shutil.copy(pk("default2.key"), e.key_path)
            shutil.copy(pk("default2.crt"), e.cert_path)
            e.send_signal(signal.SIGHUP)
            et.wait_for(lambda: "certificates reloaded" in e.stderr_text(),
                        5, what="the good reload")
            with TLSClient(e.tls_port, "default.test") as n:
                et.eq(n.cert["serialNumber"], serial_of(pk("default2.crt")),
                      "the fixed certificate is served")


def client_hello():
    """The first bytes a TLS client sends (a whole ClientHello)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, out, server_hostname="default.test")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def closed_within(sock, limit):
    """Seconds until the peer closes <sock> (or None after <limit>)."""
    t0 = time.monotonic()
    sock.settimeout(limit)
    try:
        while True:
            d = sock.recv(4096)
            if not d:
                break
    except socket.timeout:
        return None
    except (ConnectionResetError, ssl.SSLError):
        pass
    return time.monotonic() - t0


def test_stalled_handshake_times_out():
    with et.Origin() as o, tls_edge(o.url, "--client-header-timeout",
                                    "1s") as e:
        hello = client_hello()
        et.ok(len(hello) > 100, "a ClientHello of %d bytes" % len(hello))
        silent = socket.create_connection(("127.0.0.1", e.tls_port), 5)
        half = socket.create_connection(("127.0.0.1", e.tls_port), 5)
        half.sendall(hello[:len(hello) // 2])
        # Meanwhile other clients are served.
        with TLSClient(e.tls_port, "default.test") as c:
            et.eq(c.request("GET", "/obj/t?size=10").status, 200, "status")
        for s, what in ((silent, "a client that sends nothing"),
                        (half, "half a ClientHello")):
            t = closed_within(s, 5)
            et.ok(t is not None, "%s is dropped" % what)
            et.ok(t < 3, "%s is dropped after the 1 s timeout (%.2f s)"
                  % (what, t))
            s.close()
        st = et.wait_for(lambda: (lambda s: s if s["tls"][
            "handshake_timeouts"] >= 2 else None)(stats(e)), 3,
            what="the timeouts to be counted")
        et.eq(st["tls"]["handshake_timeouts"], 2, "two handshake timeouts")
        et.ok("TLS handshake timeout" in e.stderr_text(), "logged")


def test_garbage_is_dropped():
    with et.Origin() as o, tls_edge(o.url) as e:
        junk = [et.build_request("GET", "/obj/g?size=1"),   # plain HTTP
                bytes(range(256)) * 4,
                b"\x16\x03\x01\x00\x05hello",             # a bad record
                b"\x16\x03\x01\xff\xff" + b"\x00" * 100]   # too long
        for data in junk:
            res = et.raw_request(e.tls_port, data, timeout=3)
            et.ok(res.closed, "closed: %r" % res)
            et.ok(res.elapsed < 2, "at once: %r" % res)
            et.ok(b"HTTP/" not in res.data, "no HTTP answer: %r" % res)
        # A client that connects and leaves.
        socket.create_connection(("127.0.0.1", e.tls_port), 5).close()
        st = et.wait_for(lambda: (lambda s: s if s["tls"][
            "handshake_errors"] >= 4 else None)(stats(e)), 3,
            what="the errors to be counted")
        et.eq(st["tls"]["handshakes"], 0, "no handshake completed")
        et.ok("TLS handshake failed" in e.stderr_text(), "logged at info")
        with TLSClient(e.tls_port, "default.test") as c:
            et.eq(c.request("GET", "/obj/g?size=7").status, 200,
                  "edged keeps serving")
        r = e.request("GET", "/obj/g?size=7")
        et.eq(r.status, 200, "plain HTTP too")


def test_x_forwarded_proto():
    with et.Origin() as o, tls_edge(o.url) as e:
        with TLSClient(e.tls_port, "www.example.com") as c:
            r = c.request("GET", "/echo", headers=[("X-Forwarded-Proto",
                                                     "http")])
            h = dict((k.lower(), v) for k, v in r.json()["headers"])
            et.eq(h.get("x-forwarded-proto"), "https", "over TLS")
        r = e.request("GET", "/echo", headers=[("X-Forwarded-Proto",
                                                 "https")])
        h = dict((k.lower(), v) for k, v in r.json()["headers"])
        et.eq(h.get("x-forwarded-proto"), "http", "over plain HTTP")


def test_http_and_https_share_the_cache():
    with et.Origin() as o:
        cache = os.path.join(et.mktemp("cache"), "c")
        with tls_edge(o.url, "--cache-dir", cache) as e:
            r = e.request("GET", "/obj/shared?size=2000&ttl=60")
            et.eq(r.status, 200, "status over HTTP")
            et.wait_for(lambda: stats(e)["cache"]["objects"] >= 1,
                        what="the object to be stored")
            with TLSClient(e.tls_port, "edge.test") as c:
                r = c.request("GET", "/obj/shared?size=2000&ttl=60")
                et.check_pattern(r.body, 2000)
                et.ok("hit" in (r.header("Cache-Status") or ""),
                      "an HTTPS request hits what HTTP stored: %r"
                      % r.header("Cache-Status"))
            et.eq(o.count("/obj/shared"), 1, "one origin fetch")
        o.reset()
        cache = os.path.join(et.mktemp("cache"), "c")
        with tls_edge(o.url, "--cache-dir", cache, "--cache-key-scheme",
                      "1") as e:
            e.request("GET", "/obj/apart?size=100&ttl=60")
            et.wait_for(lambda: stats(e)["cache"]["objects"] >= 1,
                        what="the object to be stored")
            with TLSClient(e.tls_port, "edge.test") as c:
                r = c.request("GET", "/obj/apart?size=100&ttl=60")
                et.ok("hit" not in (r.header("Cache-Status") or ""),
                      "cache_key_scheme 1: HTTPS has its own entry")
                et.wait_for(lambda: stats(e)["cache"]["objects"] >= 2,
                            what="the second object to be stored")
                r = c.request("GET", "/obj/apart?size=100&ttl=60")
                et.ok("hit" in (r.header("Cache-Status") or ""),
                      "which hits next time")
            et.eq(o.count("/obj/apart"), 2, "two origin fetches")


def test_https_origin_verified_with_ca_file():
    with et.Origin(tls=(pk("origin.crt"), pk("origin.key"))) as o:
        with et.Edge(o.url, "--origin-ca-file", pk("ca.crt")) as e:
            r = e.request("GET", "/echo")
            et.eq(r.status, 200, "status through an https origin")
            tls = r.json()["tls"]
            et.eq(tls["sni"], "localhost", "SNI sent to the origin")
            et.ok(tls["version"] in ("TLSv1.2", "TLSv1.3"), "version")
            r = e.request("GET", "/obj/o?size=70000")
            et.check_pattern(r.body, 70000)
        # Without the CA file, the system store does not know our CA.
        with et.Edge(o.url) as e:
            r = e.request("GET", "/obj/o?size=10")
            et.eq(r.status, 502, "an unknown CA is refused")
            line = e.wait_access_log(lambda l: "/obj/o" in l)
            et.ok(" tls " in line, "access log says tls: " + line)


def test_https_origin_bad_certificate():
    with et.Origin(tls=(pk("badorigin.crt"), pk("badorigin.key"))) as o:
        with et.Edge(o.url, "--origin-ca-file", pk("ca.crt")) as e:
            r = e.request("GET", "/obj/bad?size=10")
            et.eq(r.status, 502, "a certificate from another CA: 502")
            et.eq(o.count(), 0, "no request reached the origin")
            et.ok("certificate" in e.stderr_text(),
                  "the log says why: " + e.stderr_text()[-500:])
    # The right CA but the wrong name.
    with et.Origin(tls=(pk("www.crt"), pk("www.key"))) as o:
        with et.Edge(o.url, "--origin-ca-file", pk("ca.crt")) as e:
            et.eq(e.request("GET", "/obj/n?size=1").status, 502,
                  "a certificate for another name: 502")


def test_https_origin_client_certificate():
    tls = (pk("origin.crt"), pk("origin.key"), pk("ca.crt"))
    with et.Origin(tls=tls) as o:
        with et.Edge(o.url, "--origin-ca-file", pk("ca.crt")) as e:
            et.eq(e.request("GET", "/obj/m?size=1").status, 502,
                  "no client certificate: refused")
        with et.Edge(o.url, "--origin-ca-file", pk("ca.crt"),
                     "--origin-client-cert", pk("client.crt"),
                     "--origin-client-key", pk("client.key")) as e:
            r = e.request("GET", "/echo")
            et.eq(r.status, 200, "with one: served")
            et.eq(r.json()["tls"]["client_cert_cn"], "edge-client",
                  "the origin saw our certificate")


def ocsp_response(cert, out):
    """A 'good' OCSP response for <cert>, signed by the test CA."""
    d = pki()
    serial = serial_of(cert)
    index = os.path.join(d, "index.txt")
    with open(index, "w") as f:
        f.write("V\t301231000000Z\t\t%s\tunknown\t/CN=x\n" % serial)
    req = out + ".req"
    must([OPENSSL, "ocsp", "-issuer", pk("ca.crt"), "-cert", cert,
          "-reqout", req, "-no_nonce"])
    must([OPENSSL, "ocsp", "-index", index, "-rsigner", pk("ca.crt"),
          "-rkey", pk("ca.key"), "-CA", pk("ca.crt"), "-reqin", req,
          "-respout", out, "-ndays", "1"])


def test_ocsp_stapling():
    d = et.mktemp("ocsp")
    resp = os.path.join(d, "resp.der")
    ocsp_response(pk("default.crt"), resp)
    with et.Origin() as o, tls_edge(o.url, "--tls-ocsp-file", resp,
                                    certs="default-chain") as e:
        out = s_client(e.tls_port, "-status", "-servername", "default.test")
        et.ok("OCSP Response Status: successful" in out, "stapled:\n" + out)
        et.ok("Cert Status: good" in out, "good")
        out = s_client(e.tls_port, "-status", "-servername",
                       "www.example.com")
        et.ok("OCSP response: no response sent" in out,
              "not for the SNI certificate without one:\n" + out)
    # An SNI certificate with its own response (the fourth field).
    www_resp = os.path.join(d, "www.der")
    ocsp_response(pk("www.crt"), www_resp)
    with et.Origin() as o, tls_edge(o.url, "--tls-sni-cert",
                                    "www.example.com %s %s %s"
                                    % (pk("www-chain.crt"), pk("www.key"),
                                       www_resp), sni=False) as e:
        out = s_client(e.tls_port, "-status", "-servername",
                       "www.example.com")
        et.ok("Cert Status: good" in out and "www.example.com" in out,
              "the SNI certificate's own response:\n" + out)
        out = s_client(e.tls_port, "-status", "-servername", "default.test")
        et.ok("OCSP response: no response sent" in out,
              "none for the default certificate here:\n" + out)
    # A response about another certificate stops start-up.
    with et.Origin() as o:
        try:
            tls_edge(o.url, "--tls-ocsp-file", resp, certs="www-chain",
                     sni=False).stop()
            raise AssertionError("edged started with a foreign response")
        except AssertionError as ex:
            et.ok("not about this certificate" in str(ex), str(ex)[-600:])


def test_config_is_checked():
    d = et.mktemp("conf")
    conf = os.path.join(d, "tls.conf")
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:1\norigin http://127.0.0.1:2\n"
                "listen_tls 127.0.0.1:3\n"
                'tls_sni_cert "*.com %s %s"\n'
                'tls_sni_cert "www.a.test onlyonefile"\n'
                % (pk("www.crt"), pk("www.key")))
    rc, out = run([et.EDGED, "-t", "-c", conf])
    et.eq(rc, 2, "exit status")
    et.ok("tls.conf:4:14: error: tls_sni_cert: a wildcard needs at least "
          "two labels" in out, out)
    et.ok("tls.conf:5:14: error: tls_sni_cert: expected" in out, out)
    # Semantics: a TLS listener needs a default certificate.
    rc, out = run([et.EDGED, "-t", "--listen-tls", "127.0.0.1:3",
                   "--origin", "http://127.0.0.1:2"])
    et.eq(rc, 2, "no tls_cert: exit status")
    et.ok("listen_tls: needs tls_cert" in out, out)
    # -t loads the files as start-up would.
    rc, out = run([et.EDGED, "-t", "--listen-tls", "127.0.0.1:3",
                   "--origin", "http://127.0.0.1:2", "--tls-cert",
                   pk("www.crt"), "--tls-key", pk("default.key")])
    et.eq(rc, 2, "a key for another certificate: exit status")
    et.ok("cannot load the private key" in out, out)
    rc, out = run([et.EDGED, "-t", "--listen-tls", "127.0.0.1:3",
                   "--origin", "http://127.0.0.1:2", "--tls-cert",
                   pk("www.crt"), "--tls-key", pk("www.key"),
                   "--tls-sni-cert", "x.test /nonexistent.pem %s"
                   % pk("www.key")])
    et.eq(rc, 2, "a missing file: exit status")
    et.ok("/nonexistent.pem" in out and "x.test" in out, out)
    rc, out = run([et.EDGED, "-t", "--listen-tls", "127.0.0.1:3",
                   "--origin", "http://127.0.0.1:2", "--tls-cert",
                   pk("www.crt"), "--tls-key", pk("www.key")])
    et.eq(rc, 0, "a good configuration: " + out)



def test_https_pool_server_by_address_with_tls_name():
    """origin_tls_name: connect to the address, verify and send SNI for
    the name (the URL alone names an address no certificate covers)."""
    with et.Origin(tls=(pk("www.crt"), pk("www.key"))) as o:
        url = "https://127.0.0.1:%d" % o.port
        with et.Edge(None, "--origin-server", url,
                     "--origin-tls-name", "www.example.com",
                     "--origin-ca-file", pk("ca.crt")) as e:
            r = e.request("GET", "/echo")
            et.eq(r.status, 200, "verified against the TLS name")
            et.eq(r.json()["tls"]["sni"], "www.example.com",
                  "the TLS name is the SNI")
        with et.Edge(None, "--origin-server", url,
                     "--origin-ca-file", pk("ca.crt")) as e:
            et.eq(e.request("GET", "/echo").status, 502,
                  "without it, 127.0.0.1 does not match the certificate")

if __name__ == "__main__":
    et.main()
