#!/usr/bin/env python3
"""Story: edged serves every address it is given, from several threads.

Repeated --listen options (IPv4, and [::1] where the IPv6 loopback works)
all serve, and X-Forwarded-For names the client of each family; with
--threads 4, 200 requests over 20 concurrent keep-alive connections all get
the right bodies; an address already in use is a start-up error, not a
hang.
"""

import os
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def test_two_listeners():
    p1, p2 = et.free_port(), et.free_port()
    listen = ["127.0.0.1:%d" % p1, "127.0.0.1:%d" % p2]
    v6 = et.ipv6_loopback_works()
    if v6:
        p6 = et.free_port("::1")
        listen.append("[::1]:%d" % p6)
    with et.Origin() as o, et.Edge(o.url, listen=listen) as e:
        for port in (p1, p2):
            with et.Client(port) as c:
                r = c.request("GET", "/echo")
                et.eq(r.status, 200, "served on 127.0.0.1:%d" % port)
                xff = {n.lower(): v for n, v in r.json()["headers"]}.get(
                    "x-forwarded-for")
                et.eq(xff, "127.0.0.1", "X-Forwarded-For over IPv4")
        if v6:
            with et.Client(p6, "::1") as c:
                r = c.request("GET", "/echo")
                et.eq(r.status, 200, "served on [::1]:%d" % p6)
                xff = {n.lower(): v for n, v in r.json()["headers"]}.get(
                    "x-forwarded-for")
                et.eq(xff, "::1", "X-Forwarded-For over IPv6")
                et.check_pattern(c.request("GET", "/obj/v6?size=70000").body,
                                 70000)
        else:
            print("# no IPv6 loopback here: the [::1] part was skipped")


def test_threads_4_concurrent_clients():
    n_conns, per_conn = 20, 10
    errors = []
    done = []
    lock = threading.Lock()

    def client(edge_port, k):
        try:
            with et.Client(edge_port, timeout=20) as c:
                for i in range(per_conn):
                    n = 1000 * k + 37 * i + (k * i % 5) * 10000
                    r = c.request("GET", "/obj/c%d-%d?size=%d" % (k, i, n))
                    et.eq(r.status, 200, "status")
                    et.check_pattern(r.body, n)
            with lock:
                done.append(k)
        except BaseException as ex:
            with lock:
                errors.append("connection %d: %r" % (k, ex))

    with et.Origin() as o, et.Edge(o.url, threads=4) as e:
        o.reset()
        threads = [threading.Thread(target=client, args=(e.port, k),
                                    daemon=True) for k in range(n_conns)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.1, 30 - (time.monotonic() - t0)))
        et.eq(errors, [], "client errors")
        et.eq(len(done), n_conns, "connections that finished in time")
        et.eq(o.count(), n_conns * per_conn, "requests at the origin")


def test_address_in_use_fails_fast():
    if not os.access(et.EDGED, os.X_OK):
        raise et.Skip("no edged")
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        tmp = et.mktemp("inuse")
        ready = os.path.join(tmp, "ready")
        with open(os.path.join(tmp, "stderr"), "wb") as err:
            p = et._spawn([et.EDGED, "--listen", "127.0.0.1:%d" % port,
                           "--origin", "http://127.0.0.1:9",
                           "--ready-file", ready], subprocess.DEVNULL, err)
            try:
                rc = p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
                raise AssertionError("edged kept running with its --listen "
                                     "address in use")
        et.ok(rc != 0, "a non-zero exit status (got %d)" % rc)
        et.ok(not os.path.exists(ready) or
              os.path.getsize(ready) == 0, "no ready file")
    finally:
        blocker.close()


if __name__ == "__main__":
    et.main()
