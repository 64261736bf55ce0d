#!/usr/bin/env python3
"""Story: the access log's bytes are what the client was sent.

A client that reads 100 KiB of a 16 MiB hit and closes did not get 16 MiB:
its line counts the bytes the socket took (head and body, as nginx's
$bytes_sent does), which is at most what it read plus what the kernel's
buffers hold, and says the answer was aborted.  That holds for a plain
hit sent from a file (sendfile) and for one over TLS.  A client that reads
everything is logged with exactly the bytes it received, alone or
pipelined.
"""
import fcntl
import json
import os
import socket
import ssl
import struct
import sys
import termios
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

SIZE = 8 * 1024 * 1024
READ = 100 * 1024
RCVBUF = 64 * 1024
TLS_RECORD = 16 * 1024 + 256  # a record's content and its framing



def tx_queue(port, peer_port):
    """Bytes the kernel holds unacknowledged in edged's socket on <port>
    toward the client on <peer_port> (/proc/net/tcp tx_queue), or None."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fl = line.split()
            local, remote, st = fl[1], fl[2], fl[3]
            if (st == "01" and int(local.split(":")[1], 16) == port and
                    int(remote.split(":")[1], 16) == peer_port):
                return int(fl[4].split(":")[0], 16)
    return None


def in_kernel(s, port):
    """What the kernel holds between edged and client socket <s>, once
    edged has stopped writing (nothing changes for a while)."""
    last, same = None, 0
    for _ in range(200):
        now = (tx_queue(port, s.getsockname()[1]),
               struct.unpack("i", fcntl.ioctl(s.fileno(), termios.FIONREAD,
                                              b"\0" * 4))[0])
        same = same + 1 if now == last else 0
        if same >= 10 and now[0] is not None:
            return now[0] + now[1]
        last = now
        time.sleep(0.03)
    raise AssertionError("edged's socket never filled")


def log_for(e, target):
    """The JSON access-log entry of <target>'s latest request."""
    def find():
        got = [json.loads(l) for l in e.access_log_lines()
               if target in l]
        return got[-1] if got else None
    return et.wait_for(find, timeout=10, what="log line of " + target)


def log_all(e, target, n):
    def find():
        got = [json.loads(l) for l in e.access_log_lines()
               if target in l]
        return got if len(got) >= n else None
    return et.wait_for(find, timeout=10, what="%d lines of %s" % (n, target))


def small_rcvbuf_socket(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def read_part_then_reset(s, port, target):
    """Ask for <target>, read READ bytes, wait until edged's socket is
    full, then reset the connection; the bytes read and those the kernel
    held."""
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n"
               % target).encode())
    got = 0
    while got < READ:
        b = s.recv(READ - got)
        if not b:
            break
        got += len(b)
    held = in_kernel(s, port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                 struct.pack("ii", 1, 0))
    s.close()
    return got, held


def read_all(s, req):
    """Send <req>, read to the end of file; the bytes received."""
    s.sendall(req)
    got = 0
    while True:
        b = s.recv(1 << 16)
        if not b:
            return got
        got += len(b)


def check_partial(entry, got, held, what, exact):
    et.ok(entry["aborted"], "%s: logged as aborted" % what)
    if exact:
        et.eq(entry["bytes"], got + held,
              "%s: bytes read (%d) and held by the kernel (%d)"
              % (what, got, held))
    else:
        # TLS: the kernel holds records, the log counts their content,
        # and the client's TLS layer may hold a record it read in part.
        et.ok(got <= entry["bytes"] <= got + held + TLS_RECORD,
              "%s: bytes %d between the %d read and those, a record and "
              "the %d the kernel held" % (what, entry["bytes"], got, held))
    et.ok(entry["bytes"] < SIZE, "%s: not the whole body" % what)


def json_edge(o, *extra):
    return et.Edge(o.url, "--access-log-format", "json", "--cache-dir",
                   os.path.join(et.mktemp("cache"), "c"), *extra,
                   threads=1)


@et.timeout(120)
def test_plain_hit_read_in_part():
    target = "/obj/big?size=%d&ttl=600" % SIZE
    with et.Origin() as o, json_edge(o) as e:
        r = e.request("GET", target)
        et.eq(len(r.body), SIZE, "warm-up body")
        raw = small_rcvbuf_socket(e.port)
        got, held = read_part_then_reset(raw, e.port, target)
        et.eq(got, READ, "bytes read")
        entries = log_all(e, "/obj/big", 2)
        check_partial(entries[-1], got, held, "plain hit", True)


@et.timeout(120)
def test_tls_hit_read_in_part():
    tls = et.self_signed(et.mktemp("cert"))
    if tls is None:
        raise et.Skip("openssl cannot make a certificate")
    tport = et.free_port()
    target = "/obj/bigtls?size=%d&ttl=600" % SIZE
    with et.Origin() as o, json_edge(
            o, "--listen-tls", "127.0.0.1:%d" % tport, "--tls-cert",
            tls[0], "--tls-key", tls[1]) as e:
        r = e.request("GET", target)
        et.eq(len(r.body), SIZE, "warm-up body")
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        raw = small_rcvbuf_socket(tport)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        got, held = read_part_then_reset(s, tport, target)
        et.eq(got, READ, "bytes read")
        entries = log_all(e, "/obj/bigtls", 2)
        check_partial(entries[-1], got, held, "TLS hit", False)


def test_whole_answers_exactly():
    with et.Origin() as o, json_edge(o) as e:
        for size in (10, 200 * 1024):
            target = "/obj/w%d?size=%d&ttl=600" % (size, size)
            e.request("GET", target)  # warm
            with socket.create_connection(("127.0.0.1", e.port), 10) as s:
                got = read_all(s, ("GET %s HTTP/1.1\r\nHost: localhost\r\n"
                                   "Connection: close\r\n\r\n"
                                   % target).encode())
            entry = log_all(e, "/obj/w%d?" % size, 2)[-1]
            et.eq(entry["bytes"], got, "size %d: bytes logged" % size)
            et.eq(entry["aborted"], False, "size %d: aborted" % size)
        # Pipelined: two answers in one read, each logged with its own.
        a, b = "/obj/w10?size=10&ttl=600", "/obj/w%d?size=%d&ttl=600" % (
            200 * 1024, 200 * 1024)
        with socket.create_connection(("127.0.0.1", e.port), 10) as s:
            got = read_all(s, ("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n"
                               "GET %s HTTP/1.1\r\nHost: localhost\r\n"
                               "Connection: close\r\n\r\n" % (a, b)).encode())
        ea = log_all(e, "/obj/w10?", 3)[-1]
        eb = log_all(e, "/obj/w%d?" % (200 * 1024), 3)[-1]
        et.eq(ea["bytes"] + eb["bytes"], got, "pipelined bytes logged")


if __name__ == "__main__":
    et.main()
