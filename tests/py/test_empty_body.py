#!/usr/bin/env python3
"""Story: a cacheable response with an empty body is served and stored.

An origin's 200 with "Content-Length: 0" and a lifetime used to end in a
502 whenever a cache was configured: the fill waited for a body callback
that never comes for zero bytes, and took the end of the transfer for a
reset.  Now it is a miss that is stored, then a hit from memory and,
after a restart with no memory tier, from disk; a HEAD and a range of it
behave; clients sharing its fill all get it; and a chunked empty body
(length unknown until the end) is stored too.
"""

import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

EMPTY = "/obj/empty?size=0&ttl=60"


def status_of(r):
    return r.header("cache-status") or ""


def test_miss_then_hits_from_memory_and_disk():
    cache = et.mktemp("cache") + "/c"
    with et.Origin() as o:
        with et.Edge(o.url, "--cache-dir", cache) as e:
            r = e.request("GET", EMPTY)
            et.eq((r.status, r.body), (200, b""), "the miss")
            et.eq(r.header("content-length"), "0", "Content-Length")
            et.ok("stored" in status_of(r), "stored: " + status_of(r))
            r = e.request("GET", EMPTY)
            et.eq((r.status, r.body), (200, b""), "the hit")
            et.ok("hit" in status_of(r), "a hit: " + status_of(r))
            r = e.request("HEAD", EMPTY)
            et.eq((r.status, r.header("content-length")), (200, "0"),
                  "HEAD of the stored copy")
            r = e.request("GET", EMPTY, [("Range", "bytes=0-0")])
            et.eq(r.status, 416, "no byte to range over")
        with et.Edge(o.url, "--cache-dir", cache, "--memory-size",
                     "0") as e:
            r = e.request("GET", EMPTY)
            et.eq((r.status, r.body), (200, b""), "from disk")
            et.ok("hit" in status_of(r), "a disk hit: " + status_of(r))
        et.eq(o.count(), 1, "one origin request in all")


def test_shared_fill_of_an_empty_body():
    with et.Origin() as o, \
            et.Edge(o.url, "--cache-dir", et.mktemp("cache") + "/c") as e:
        target = "/obj/herd?size=0&ttl=60&delay_ms=300"
        got = []

        def one():
            got.append(e.request("GET", target))
        ts = [threading.Thread(target=one) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        et.eq(sorted((r.status, r.body) for r in got), [(200, b"")] * 8,
              "every client of the shared fill")
        et.eq(o.count(), 1, "one origin request")


def test_chunked_empty_body_is_stored():
    with et.Origin() as o, \
            et.Edge(o.url, "--cache-dir", et.mktemp("cache") + "/c") as e:
        target = "/obj/ch?size=0&ttl=60&chunked=1"
        for want in ("stored", "hit"):
            r = e.request("GET", target)
            et.eq((r.status, r.body), (200, b""), want)
            et.ok(want in status_of(r), "%s: %s" % (want, status_of(r)))
        et.eq(o.count(), 1, "one origin request")


if __name__ == "__main__":
    et.main()
