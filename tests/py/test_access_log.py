#!/usr/bin/env python3
"""Story: the access log has exactly one line per request.

Every request (sequential, pipelined, HEAD, POST, an origin error, an
origin failure, a malformed request) gets one line naming the client, the
method and URL, the status, the bytes sent, the timings and a cache-status
field ("-" while there is no cache); nothing is logged twice, and nothing is
lost when edged stops right after answering.  The field order is not pinned
here: the checks look for the values, not their columns.
"""

import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def line_for(lines, url):
    """The one line whose URL field is <url> (or starts with it)."""
    pat = re.compile(re.escape(url) + r"""(?=[\s"?&]|$)""")
    found = [l for l in lines if pat.search(l)]
    et.eq(len(found), 1, "lines for %r" % url)
    return found[0]


def after_status(line, status):
    """The whitespace-separated fields after the status field."""
    toks = line.split()
    for i, t in enumerate(toks):
        if t == str(status):
            return toks[i + 1:]
    raise AssertionError("no status %d field in %r" % (status, line))


def test_one_line_per_request():
    with et.Origin() as o, et.Edge(o.url) as e:
        with e.connect() as c:
            for i in range(10):
                c.request("GET", "/obj/seq%d?size=%d" % (i, 1000 + i))
            c.send(b"".join(et.build_request("GET", "/obj/pipe%d?size=10" % i)
                            for i in range(5)))
            for i in range(5):
                c.read_response()
            c.request("HEAD", "/obj/head?size=5000")
            c.request("POST", "/echo?post=1", body=b"p" * 3000)
            c.request("GET", "/obj/missing?size=20&status=404")
            c.request("GET", "/obj/slow?size=10&delay_ms=300")
        n = 10 + 5 + 4
        et.wait_for(lambda: len(e.access_log_lines()) >= n, 3.0,
                    what="%d access log lines" % n)
        time.sleep(0.4)  # a second flush must not repeat anything
        lines = e.access_log_lines()
        et.eq(len(lines), n, "one line per request:\n" + "\n".join(lines))
        for i in range(10):
            l = line_for(lines, "/obj/seq%d?size=%d" % (i, 1000 + i))
            et.ok("GET" in l and "127.0.0.1" in l, "method and client: %r"
                  % l)
            rest = after_status(l, 200)
            nums = [int(t) for t in rest if t.isdigit()]
            et.ok(nums and nums[0] >= 1000 + i, "bytes sent after the "
                  "status (%r)" % l)
            et.ok("-" in rest or '"-"' in rest, "a cache-status field "
                  "'-' (%r)" % l)
        for i in range(5):
            line_for(lines, "/obj/pipe%d?size=10" % i)
        et.ok(re.search(r"\bHEAD\b", line_for(lines, "/obj/head")), "HEAD")
        et.ok(re.search(r"\bPOST\b", line_for(lines, "/echo?post=1")), "POST")
        after_status(line_for(lines, "/obj/missing"), 404)
        slow = after_status(line_for(lines, "/obj/slow"), 200)
        et.ok(any(re.fullmatch(r"[0-9.]+", t) and
                  (300 <= float(t) < 10000 or 0.3 <= float(t) < 10)
                  for t in slow[1:]),
              "a duration of ~300 ms for the slow request (%r)" % slow)


def test_errors_are_logged():
    port = et.free_port()
    with et.Edge("http://127.0.0.1:%d" % port) as e:
        et.eq(e.request("GET", "/obj/down?size=1").status, 502, "status")
        et.raw_request(e.port,
                       b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        e.wait_access_log(lambda l: "/obj/down" in l and
                          re.search(r"\b502\b", l), what="the 502 line")
        e.wait_access_log(lambda l: re.search(r"\b400\b", l),
                          what="the 400 line")


def test_nothing_lost_at_stop():
    with et.Origin() as o:
        e = et.Edge(o.url)
        with e.connect() as c:
            for i in range(50):
                c.request("GET", "/obj/last%d?size=10" % i)
        e.stop()
        lines = e.access_log_lines()
        et.eq(len(lines), 50, "lines written by the time edged exited")


if __name__ == "__main__":
    et.main()
