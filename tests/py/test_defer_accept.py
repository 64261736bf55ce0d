#!/usr/bin/env python3
"""Story: with listen_defer_accept, edged sees a connection once it speaks.

With --listen-defer-accept 1s (TCP_DEFER_ACCEPT on listen and listen_tls),
requests over HTTP and HTTPS are served as before.  A client that connects
and sends nothing is not accepted: /stats counts no open connection while
it waits.  The kernel hands it over once the defer period has passed (1 s,
its first SYN-ACK retransmission), and from then on it is edged's: counted,
and closed by the header timeout, so such a client is gone within the defer
period plus client_header_timeout.  A client that sends its request late
within the period is served.  The setting is applied to listening sockets a
takeover hands over too, on and off.  listen_h2c is left as it was.  A value
that is not whole seconds, or above 1m, is a config error.
"""

import json
import os
import socket
import ssl
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

DEFER = ["--listen-defer-accept", "1s"]
# The kernel's period for 3s is 3 s: room for a loaded machine between
# "at once" and "deferred".
DEFER3 = ["--listen-defer-accept", "3s"]
# Long enough that the accepted connection can be seen counted before the
# header timeout closes it.
HEADER = ["--client-header-timeout", "1500ms"]


def admin_edge(o, *extra, **kw):
    port = kw.pop("admin_port", None) or et.free_port()
    return port, et.Edge(o.url, "--admin-listen", "127.0.0.1:%d" % port,
                         *extra, **kw)


def stat(port, name):
    with et.Client(port) as c:
        r = c.request("GET", "/stats")
    et.eq(r.status, 200, "/stats status")
    return json.loads(r.body)[name]


def open_conns(port):
    return stat(port, "connections_open")


def idle_connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s, time.monotonic()


def never_counted(aport, secs, what):
    """connections_open stays 0 for <secs>."""
    end = time.monotonic() + secs
    while time.monotonic() < end:
        et.eq(open_conns(aport), 0, what)
        time.sleep(0.05)


def wait_closed(s, timeout):
    """Seconds until the server closes <s> (EOF or reset), reading and
    returning what it sent too."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return time.monotonic(), data


def test_requests_are_served():
    with et.Origin() as o, et.Edge(o.url, *DEFER) as e:
        for i in range(5):
            with e.connect() as c:
                r = c.request("GET", "/obj/d%d?size=3000" % (i % 2))
                et.eq(r.status, 200, "request %d" % i)
                et.check_pattern(r.body, 3000)


def test_idle_connection_is_accepted_late_and_closed():
    with et.Origin() as o:
        aport, e = admin_edge(o, *(DEFER + HEADER))
        with e:
            s, t0 = idle_connect(e.port)
            # The kernel holds it until about 1 s after the handshake.
            never_counted(aport, 0.5, "an idle connection is not accepted")
            et.eq(stat(aport, "connections_accepted"), 0, "nor counted as "
                  "accepted")
            et.wait_for(lambda: open_conns(aport) == 1, 3, 0.02,
                        "the idle connection accepted after the period")
            t_acc = time.monotonic() - t0
            et.ok(t_acc >= 0.8, "accepted after %.2f s, not before the "
                  "defer period" % t_acc)
            t_end, data = wait_closed(s, 8)
            s.close()
            el = t_end - t0
            # The header timeout counts from the accept, not the connect.
            et.ok(2.1 <= el <= 1 + 1.5 + 2.0,
                  "closed after %.2f s: the period, then the 1.5 s header "
                  "timeout" % el)
            if data:
                et.eq(et.read_response(data).status, 408,
                      "the only allowed answer")
            et.wait_for(lambda: open_conns(aport) == 0, 3, 0.05,
                        "no connection left open")


def test_late_request_within_the_period_is_served():
    with et.Origin() as o:
        aport, e = admin_edge(o, *DEFER3)
        with e:
            s, t0 = idle_connect(e.port)
            time.sleep(0.4)
            et.eq(open_conns(aport), 0, "not accepted before its request")
            s.sendall(b"GET /obj/late?size=100 HTTP/1.1\r\nHost: x\r\n\r\n")
            r = et.read_response(s)
            et.eq(r.status, 200, "served once it spoke")
            et.check_pattern(r.body, 100)
            el = time.monotonic() - t0
            et.ok(el < 2.5, "accepted with its data (%.2f s), not at the "
                  "end of the 3 s period" % el)
            et.eq(open_conns(aport), 1, "counted once accepted")
            s.close()


def test_tls_listener_defers_and_serves():
    d = et.mktemp("defertls")
    tls = et.self_signed(d)
    if tls is None:
        raise et.Skip("openssl cannot make a certificate")
    cert, key = tls
    tport = et.free_port()
    with et.Origin() as o:
        aport, e = admin_edge(o, *DEFER3, "--listen-tls",
                              "127.0.0.1:%d" % tport, "--tls-cert", cert,
                              "--tls-key", key)
        with e:
            s, _ = idle_connect(tport)
            never_counted(aport, 1.5, "an idle TLS connection is not "
                          "accepted")
            s.close()
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            raw = socket.create_connection(("127.0.0.1", tport), timeout=10)
            with ctx.wrap_socket(raw, server_hostname="localhost") as t:
                t.sendall(b"GET /obj/t?size=500 HTTP/1.1\r\nHost: x\r\n"
                          b"Connection: close\r\n\r\n")
                r = et.read_response(t)
                et.eq(r.status, 200, "served over TLS")
                et.check_pattern(r.body, 500)


def test_h2c_listener_is_not_deferred():
    hport = et.free_port()
    with et.Origin() as o:
        aport, e = admin_edge(o, *DEFER3, "--listen-h2c",
                              "127.0.0.1:%d" % hport)
        with e:
            s, _ = idle_connect(hport)
            et.wait_for(lambda: stat(aport, "connections_accepted") == 1,
                        2, 0.02, "an idle h2c connection accepted at once")
            s.close()


def test_takeover_applies_the_new_setting():
    d = et.mktemp("defertko")
    cache = os.path.join(d, "cache")
    with et.Origin() as o:
        # On, then taken over with it off: the same socket accepts at once.
        aport, old = admin_edge(o, "--cache-dir", cache, *DEFER3)
        s, _ = idle_connect(old.port)
        never_counted(aport, 0.5, "deferred on the first edged")
        s.close()
        # Its FIN is not a bare ACK: the kernel hands it over, and the old
        # edged closes it, before the takeover.
        et.wait_for(lambda: stat(aport, "connections_accepted") == 1, 2,
                    0.02, "the closed connection handed over")
        et.wait_for(lambda: open_conns(aport) == 0, 2, 0.02, "and closed")
        _, new = admin_edge(o, "--cache-dir", cache, "--takeover",
                            admin_port=aport, listen=old.listen)
        et.ok(old.wait_exit(30) is not None, "the old edged exits")
        old.stop()
        s, _ = idle_connect(new.port)
        et.wait_for(lambda: open_conns(aport) == 1, 2, 0.02,
                    "accepted at once after a takeover to 0")
        s.close()
        et.wait_for(lambda: open_conns(aport) == 0, 5, 0.05, "closed")
        # Off, then taken over with it on.
        _, newer = admin_edge(o, "--cache-dir", cache, "--takeover", *DEFER3,
                              admin_port=aport, listen=old.listen)
        et.ok(new.wait_exit(30) is not None, "the second edged exits")
        new.stop()
        s, _ = idle_connect(newer.port)
        never_counted(aport, 1.5, "deferred after a takeover to 3s")
        s.close()
        with newer.connect() as c:
            et.eq(c.request("GET", "/obj/k?size=10").status, 200, "served")
        newer.stop()


def check_conf(d, value, want):
    path = os.path.join(d, "e.conf")
    with open(path, "w") as f:
        f.write("listen 127.0.0.1:1\norigin http://127.0.0.1:2\n"
                "listen_defer_accept %s\n" % value)
    r = subprocess.run([et.EDGED, "-t", "-c", path], capture_output=True,
                       text=True, timeout=30)
    et.eq(r.returncode, 2, "exit status for %r" % value)
    et.ok("%s:3:21: error: listen_defer_accept: %s" % (path, want)
          in r.stderr, "the error for %r: %r" % (value, r.stderr))


def test_bad_values_are_config_errors():
    d = et.mktemp("deferconf")
    check_conf(d, "1500ms", "1500ms: must be whole seconds (0: off)")
    check_conf(d, "2m", "must be between 0 and 1m")
    check_conf(d, "1", "missing unit")
    check_conf(d, "-1s", "")
    r = subprocess.run([et.EDGED, "-t", "--listen", "127.0.0.1:1",
                        "--origin", "http://127.0.0.1:2",
                        "--listen-defer-accept", "30s"],
                       capture_output=True, text=True, timeout=30)
    et.eq(r.returncode, 0, "30s is a good value: %r" % r.stderr)


if __name__ == "__main__":
    et.main()
