#!/usr/bin/env python3
"""Story: a wake-up of the listener accepts without a failed accept4.

A failed accept4 is an expensive call: the kernel makes the new socket's
file before it finds the queue empty, and frees it again. edged takes one
connection per wake-up of a listener, and a listener with more queued is
reported again by the next epoll_wait, so accept4 fails only when a
wake-up finds nothing at all. Clients one after the other then cost no
failed accept4 (libevent's listener, which accepts until EAGAIN, paid one
per connection), and a burst of clients that queue up together is
still taken in full (strace counts the calls; skipped without strace or the
right to trace).
"""
import os
import shutil
import socket
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402
from test_first_read import Strace  # noqa: E402

STRACE = shutil.which("strace")
TARGET = "/obj/accept?size=1024&ttl=600"
SEQUENTIAL = 40  # clients one after the other
BURST = 48       # clients connected before any of them writes


def get(s):
    """Send a request on connected <s> and read its answer and close."""
    s.sendall(et.build_request("GET", TARGET, {"Connection": "close"}))
    r = et.read_response(s)
    et.eq(r.status, 200, "status")
    et.check_pattern(r.body, 1024)
    et.eq(s.recv(1), b"", "closed after the answer")


@et.timeout(120)
def test_each_wake_up_accepts_without_a_failed_call():
    if STRACE is None:
        raise et.Skip("strace not found")
    cache = ["--cache-dir", os.path.join(et.mktemp("cache"), "c")]
    with et.Origin() as o, et.Edge(o.url, *cache, threads=1) as e:
        with socket.create_connection((e.host, e.port), timeout=10) as s:
            get(s)  # cached
        with Strace(e, "accept4") as st:
            for _ in range(SEQUENTIAL):
                with socket.create_connection((e.host, e.port),
                                              timeout=10) as s:
                    get(s)
        calls, failed = st.counts.get("accept4", (0, 0))
        print("# %d clients one after the other: %d accept4, %d failed"
              % (SEQUENTIAL, calls, failed))
        et.ok(calls - failed == SEQUENTIAL,
              "every client accepted: %d of %d" % (calls - failed,
                                                   SEQUENTIAL))
        # Accepting until EAGAIN fails once per connection here.
        et.ok(failed <= SEQUENTIAL // 10,
              "at most one accept4 in ten fails: %d of %d" % (failed, calls))

        # Connections queued together are taken one per turn, each turn's
        # epoll_wait reporting the listener again while any are left.
        with Strace(e, "accept4") as st:
            burst = [socket.create_connection((e.host, e.port), timeout=10)
                     for _ in range(BURST)]
            for s in burst:
                get(s)
                s.close()
        calls, failed = st.counts.get("accept4", (0, 0))
        print("# a burst of %d clients: %d accept4, %d failed"
              % (BURST, calls, failed))
        et.ok(calls - failed == BURST,
              "every client of the burst accepted: %d of %d"
              % (calls - failed, BURST))
        et.ok(failed <= BURST // 10,
              "at most one accept4 in ten fails: %d of %d" % (failed, calls))


if __name__ == "__main__":
    et.main()
