#!/usr/bin/env python3
"""Story: the access log has exactly one line per request.

Every request (sequential, pipelined, HEAD, POST, an origin error, an
origin failure, a malformed request) gets one line naming the client, the
method and URL, the status, the bytes sent, the timings and a cache-status
field ("-" while there is no cache); nothing is logged twice, and nothing is
lost when edged stops right after answering.  The field order is not pinned
here: the checks look for the values, not their columns.

A line also names the site asked for (Host) and the protocol spoken
(HTTP/1.0, HTTP/1.1; HTTP/2 in test_h2.py), and with
access_log_format json every line is one JSON object with the fields a
log shipper expects, whatever bytes the client sent.
"""

import json
import os

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


def test_host_and_protocol():
    with et.Origin() as o, et.Edge(o.url) as e:
        with e.connect() as c:
            c.request("GET", "/obj/h11?size=10",
                      headers=[("Host", "www.example.test")])
        with e.connect() as c:
            c.request("GET", "/obj/h10?size=10", version="HTTP/1.0",
                      headers=[("Host", "old.example.test")])
        l11 = e.wait_access_log(lambda l: "/obj/h11" in l)
        l10 = e.wait_access_log(lambda l: "/obj/h10" in l)
        et.ok('"www.example.test"' in l11 and "HTTP/1.1\"" in l11,
              "host and HTTP/1.1: %r" % l11)
        et.ok('"old.example.test"' in l10 and "HTTP/1.0\"" in l10,
              "host and HTTP/1.0: %r" % l10)


def test_json_lines():
    cache = os.path.join(et.mktemp("alog"), "cache")
    with et.Origin() as o, et.Edge(o.url, "--access-log-format", "json",
                                   "--cache-dir", cache) as e:
        hdrs = [("Host", "json.example.test"),
                ("User-Agent", 'probe/1.0 "quoted" \\ \xe9t\xe9'),
                ("Referer", "http://ref.example.test/a?b=c")]
        for _ in range(2):
            with e.connect() as c:
                r = c.request("GET", "/obj/j?size=500&ttl=60",
                              headers=hdrs)
                et.eq(r.status, 200, "status")
        with e.connect() as c:
            c.request("HEAD", "/obj/j2?size=5", version="HTTP/1.0")
        with e.connect() as c:
            c.request("POST", "/echo?post=1", body=b"x" * 10)
        et.wait_for(lambda: len(e.access_log_lines()) >= 4, 3.0,
                    what="four lines")
        recs = [json.loads(l) for l in e.access_log_lines()]
        want_keys = {"time", "client", "method", "host", "uri", "protocol",
                     "status", "bytes", "duration_ms", "cache_status",
                     "origin_ms", "origin_result", "upstream", "user_agent",
                     "referer", "aborted", "error"}
        for r in recs:
            et.eq(set(r), want_keys, "the fields of %r" % r)
        # Each worker buffers its own lines: the file's order is not the
        # requests' order.
        head = [r for r in recs if r["method"] == "HEAD"][0]
        post = [r for r in recs if r["method"] == "POST"][0]
        miss, hit = sorted((r for r in recs if r["method"] == "GET"),
                           key=lambda r: r["origin_result"] is None)
        et.eq((miss["method"], miss["uri"], miss["host"], miss["protocol"],
               miss["status"]),
              ("GET", "/obj/j?size=500&ttl=60", "json.example.test",
               "HTTP/1.1", 200), "request and status")
        et.ok(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", miss["time"]),
              "ISO 8601 time: %r" % miss["time"])
        et.eq(miss["client"], "127.0.0.1", "client")
        et.ok(isinstance(miss["bytes"], int) and miss["bytes"] > 500,
              "bytes, a number: %r" % miss["bytes"])
        et.ok(isinstance(miss["duration_ms"], int), "duration, a number")
        et.eq(miss["user_agent"],
              "probe/1.0 \\x22quoted\\x22 \\x5c \\xe9t\\xe9",
              "user agent, its quotes and bytes escaped")
        et.eq(miss["referer"], "http://ref.example.test/a?b=c", "referer")
        et.ok("miss" in miss["cache_status"], "a miss: %r"
              % miss["cache_status"])
        et.ok(isinstance(miss["origin_ms"], int), "origin time, a number")
        et.eq(miss["origin_result"], "ok", "origin result")
        et.eq(post["upstream"], o.url, "the server that answered a POST")
        et.ok(hit["cache_status"].startswith("hit"), "then a hit: %r"
              % hit["cache_status"])
        et.eq((hit["origin_ms"], hit["origin_result"], hit["upstream"]),
              (None, None, None), "no origin for the hit")
        et.eq((head["method"], head["protocol"], head["host"],
               head["user_agent"], head["referer"], head["aborted"],
               head["error"]),
              ("HEAD", "HTTP/1.0", None, None, None, False, None),
              "absent values are null")


def test_json_format_is_checked():
    out = __import__("subprocess").run(
        [et.EDGED, "-t", "--listen", "127.0.0.1:1", "--origin",
         "http://127.0.0.1:2", "--access-log-format", "xml"],
        capture_output=True, text=True, timeout=20)
    et.eq((out.returncode, out.stderr),
          (2, 'edged: error: access_log_format: "xml": must be text or '
           'json\n'), "refused, saying why")


if __name__ == "__main__":
    et.main()
