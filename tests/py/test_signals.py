#!/usr/bin/env python3
"""Story: edged stops gracefully on SIGTERM and reopens its logs on SIGHUP.

On SIGTERM it stops accepting at once (new connections are refused), lets
in-flight responses finish in full (up to --drain-timeout), closes idle
keep-alive connections right away, and exits 0.  A response still running
when the drain timeout expires is cut off, and edged exits anyway.  On
SIGHUP after a log rotation (rename), it writes to new files at the old
paths.
"""

import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def start_slow(e, target):
    """Send GET <target> on a new connection; return the client."""
    c = e.connect(timeout=15)
    c.send(et.build_request("GET", target))
    return c


def test_sigterm_lets_inflight_finish():
    with et.Origin() as o, et.Edge(o.url, "--drain-timeout", "5s") as e:
        size = 200000
        c = start_slow(e, "/obj/s?size=%d&body_delay_ms=1500" % size)
        r = c.read_response(read_body=False)   # the head came through
        et.eq(r.status, 200, "status")
        idle = e.connect()
        et.check_pattern(idle.request("GET", "/obj/i?size=10").body, 10)
        t0 = time.monotonic()
        e.send_signal(signal.SIGTERM)
        et.wait_for(lambda: et.connection_refused(e.port), 2.0,
                    what="new connections to be refused after SIGTERM")
        idle.assert_closed(timeout=1.5, what="an idle keep-alive connection "
                           "at SIGTERM")
        body = c.reader.read_exact(size)
        et.check_pattern(body, size)
        et.ok(time.monotonic() - t0 > 1.0, "the body came after the delay")
        c.assert_closed(timeout=2.0, what="the drained connection after its "
                        "response")
        rc = e.wait_exit(5.0)
        et.ok(rc is not None, "edged exits within the drain timeout")
        et.ok(time.monotonic() - t0 < 4.0, "and soon after the last response "
              "(%.2f s after SIGTERM)" % (time.monotonic() - t0))
        e.stop()   # asserts status 0 and a clean stderr


def test_sigterm_before_origin_head():
    with et.Origin() as o, et.Edge(o.url, "--drain-timeout", "5s") as e:
        c = start_slow(e, "/obj/h?size=50000&delay_ms=1500")
        et.wait_for(lambda: o.count("/obj/h") == 1, 2.0,
                    what="the request to reach the origin")
        e.send_signal(signal.SIGTERM)
        r = c.read_response()
        et.eq(r.status, 200, "the in-flight request is answered")
        et.check_pattern(r.body, 50000)
        c.assert_closed(timeout=2.0, what="the drained connection after its "
                        "response")
        et.ok(e.wait_exit(2.0) is not None, "edged exits once the response "
              "is done")
        e.stop()


def test_sigterm_idle_only_exits_fast():
    with et.Origin() as o, et.Edge(o.url, "--drain-timeout", "5s") as e:
        clients = [e.connect() for _ in range(3)]
        for i, c in enumerate(clients):
            et.check_pattern(c.request("GET", "/obj/x%d?size=5" % i).body, 5)
        t0 = time.monotonic()
        e.send_signal(signal.SIGTERM)
        for c in clients:
            c.assert_closed(timeout=1.5, what="an idle connection")
        et.ok(e.wait_exit(2.0) is not None, "with nothing in flight edged "
              "exits at once, not after the drain timeout")
        et.ok(time.monotonic() - t0 < 2.0, "exit took %.2f s"
              % (time.monotonic() - t0))
        e.stop()


def test_drain_timeout_cuts_off():
    with et.Origin() as o, et.Edge(o.url, "--drain-timeout", "1s") as e:
        size = 100000
        c = start_slow(e, "/obj/long?size=%d&body_delay_ms=6000" % size)
        r = c.read_response(read_body=False)
        et.eq(r.status, 200, "status")
        t0 = time.monotonic()
        e.send_signal(signal.SIGTERM)
        rc = e.wait_exit(4.0)
        et.ok(rc is not None, "edged exits after --drain-timeout 1s even "
              "with a response in flight")
        et.ok(time.monotonic() - t0 < 3.5, "exit took %.2f s"
              % (time.monotonic() - t0))
        body = c.reader.read_exact(size)
        et.ok(len(body) < size, "the unfinished response is cut off")
        e.stop()


def test_sighup_reopens_logs():
    with et.Origin() as o:
        tmp = et.mktemp("hup")
        errlog = os.path.join(tmp, "error.log")
        with et.Edge(o.url, "--error-log", errlog, "--log-level",
                     "info") as e:
            alog = e.access_log
            et.eq(e.request("GET", "/obj/before-rotate?size=10").status, 200,
                  "status")
            e.wait_access_log(lambda l: "/obj/before-rotate" in l)
            os.rename(alog, alog + ".1")
            if os.path.exists(errlog):
                os.rename(errlog, errlog + ".1")
            e.send_signal(signal.SIGHUP)
            et.wait_for(lambda: os.path.exists(alog), 3.0,
                        what="a new access log at the old path after SIGHUP")
            et.wait_for(lambda: os.path.exists(errlog), 3.0,
                        what="a new error log at the old path after SIGHUP")
            et.eq(e.request("GET", "/obj/after-rotate?size=10").status, 200,
                  "status")
            e.wait_access_log(lambda l: "/obj/after-rotate" in l)
            old = "\n".join(e.access_log_lines(alog + ".1"))
            et.ok("/obj/before-rotate" in old and "/obj/after-rotate"
                  not in old, "the old file keeps the old lines only")
            et.eq(e.request("GET", "/obj/still?size=10").status, 200,
                  "edged serves after SIGHUP")


if __name__ == "__main__":
    et.main()
