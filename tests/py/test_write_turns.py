#!/usr/bin/env python3
"""Story: a large hit leaves in the turn it is made.

A plain HTTP/1.1 hit on a body kept in a sealed memory file is a head in
memory and the body as a file segment.  edged writes the head (writev) and
at once the body (sendfile), and asks the event loop to watch the socket
only when it took less than everything: a client that reads along costs
no epoll_ctl per response (strace counts the calls; skipped without
strace or the right to trace).  Pipelined answers that mix small bodies
in memory and large ones in files, read by a client slower than edged
writes, still arrive whole and in order.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

STRACE = shutil.which("strace")
SIZE = 100 * 1024  # sealed: at least CACHE_OBJ_FD_MIN (64 KiB)
HITS = 300


def strace_counts(path):
    """{syscall: calls} from the table strace -c wrote to <path>."""
    counts = {}
    for line in et._read_file(path).splitlines():
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            counts[f[-1]] = int(f[3])
    return counts


def edge_args():
    """An admin port, and the arguments for it and a cache directory."""
    port = et.free_port()
    return port, ["--admin-listen", "127.0.0.1:%d" % port,
                  "--cache-dir", os.path.join(et.mktemp("cache"), "c")]


def sealed_bodies(aport):
    with et.Client(aport) as c:
        return json.loads(c.request("GET", "/stats").body)["cache"][
            "sealed_bodies"]


def warm(e, target, size):
    r = e.request("GET", target)
    et.eq(r.status, 200, "%s: status" % target)
    et.check_pattern(r.body, size)


@et.timeout(120)
def test_hits_need_no_write_event():
    """HITS keep-alive hits of 100 KiB: one writev and one sendfile each,
    and the write event is never switched on and off for them."""
    if STRACE is None:
        raise et.Skip("strace not found")
    target = "/obj/big?size=%d&ttl=600" % SIZE
    aport, extra = edge_args()
    with et.Origin() as o, et.Edge(o.url, *extra, threads=1) as e:
        warm(e, target, SIZE)
        et.wait_for(lambda: sealed_bodies(aport) == 1, what="body sealed")
        log = os.path.join(e.tmpdir, "strace")
        st = subprocess.Popen(
            [STRACE, "-f", "-c", "-o", log, "-e",
             "trace=epoll_ctl,writev,sendfile", "-p", str(e.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # attached to every thread
        if st.poll() is not None:
            raise et.Skip("strace cannot attach: %s"
                          % st.stderr.read().decode(errors="replace"))
        with e.connect() as c:
            for _ in range(HITS):
                r = c.request("GET", target)
                et.eq(r.status, 200, "status")
                et.eq(len(r.body), SIZE, "body length")
            et.check_pattern(r.body, SIZE)
        st.send_signal(signal.SIGINT)
        st.wait(10)
        n = strace_counts(log)
        # (strace may miss a call at either end of its watch.)
        et.ok(HITS - 5 <= n.get("sendfile", 0) <= HITS + 5,
              "a sendfile per hit: %r" % n)
        et.ok(HITS - 5 <= n.get("writev", 0) <= HITS + 5,
              "a writev per hit: %r" % n)
        # The connection's own registrations and a rare full socket only.
        et.ok(n.get("epoll_ctl", 0) < HITS // 10,
              "no write event per hit: %r" % n)


@et.timeout(120)
def test_pipelined_memory_and_files_to_a_slow_reader():
    """Forty pipelined requests alternating 1 KiB (memory) and 300 KiB
    (file) bodies, read through a small receive buffer: every response
    whole and in order, whatever stopped each write."""
    small = "/obj/s?size=1024&ttl=600"
    big = "/obj/b?size=%d&ttl=600" % (300 * 1024)
    aport, extra = edge_args()
    with et.Origin() as o, et.Edge(o.url, *extra) as e:
        warm(e, small, 1024)
        warm(e, big, 300 * 1024)
        et.wait_for(lambda: sealed_bodies(aport) == 1, what="body sealed")
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        s.settimeout(30)
        s.connect((e.host, e.port))
        order = [small, big] * 20
        s.sendall(b"".join(et.build_request("GET", t) for t in order))
        for i, t in enumerate(order):
            if i < 4:
                time.sleep(0.2)  # let edged meet a full socket
            r = et.read_response(s)
            et.eq(r.status, 200, "response %d: status" % i)
            et.check_pattern(r.body, 1024 if t == small else 300 * 1024)
        s.close()


if __name__ == "__main__":
    et.main()
