#!/usr/bin/env python3
"""Story: slow readers of large cacheable objects do not grow edged's memory.

Five clients each ask for a different 60 MiB cacheable object and read it
at about 100 KB/s.  The origin delivers every byte in a few seconds, so
each shared fill is complete long before its reader is: edged writes the
bodies to the store as they arrive and lets the readers catch up from
there, instead of keeping five whole objects in memory for them.  While
they read, edged's own memory (RssAnon: the store's pages, written through
its map, are the page cache's) stays within 64 MiB of what it was before
(each object alone is 60 MiB).  Then one reader takes the rest of its body at
full speed and gets every byte, checked against the origin's pattern, and
the object is stored: a second request is a hit with the same body.
"""

import os
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

SIZE = 60 << 20
READERS = 5
RATE = 100 * 1000            # bytes per second per reader
RSS_LIMIT_KIB = 64 * 1024

# Under AddressSanitizer freed memory sits in a quarantine (256 MiB by
# default) and would count as growth here: keep it small for this story.
ASAN_ENV = {"ASAN_OPTIONS": ":".join(filter(None, [
    os.environ.get("ASAN_OPTIONS", ""),
    "quarantine_size_mb=8", "thread_local_quarantine_size_kb=256"]))}


def path(i):
    return "/obj/slow%d?size=%d&ttl=300" % (i, SIZE)


@et.timeout(90)
def test_five_slow_readers():
    with tempfile.TemporaryDirectory() as tmp, et.Origin() as o, \
            et.Edge(o.url, "--cache-dir", tmp, "--cache-size", "1G",
                    env=ASAN_ENV) as e:
        et.check_pattern(e.request("GET", "/obj/warm?size=1048576").body,
                         1 << 20)
        time.sleep(0.5)
        base = et.proc_kib(e.pid, "RssAnon")
        peak = base
        readers = [et.SlowReader(e, path(i), SIZE, RATE)
                   for i in range(READERS)]
        for r in readers:
            r.start()
        # Every fill gets its whole body from the origin within seconds.
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            peak = max(peak, et.proc_kib(e.pid, "RssAnon"))
            if o.count(complete=True) >= READERS + 1:
                break
            time.sleep(0.1)
        et.eq(o.count(complete=True), READERS + 1, "origin responses sent")
        # Readers go on slowly for a while after that.
        until = time.monotonic() + 4
        while time.monotonic() < until:
            peak = max(peak, et.proc_kib(e.pid, "RssAnon"))
            time.sleep(0.1)
        for r in readers:
            et.ok(r.error is None, "reader: %s" % r.error)
            et.ok(0 < len(r.body) < SIZE // 4,
                  "a slow reader has read %d bytes" % len(r.body))
        print("# RssAnon %d KiB idle, peak %d KiB (+%d KiB) with %d slow "
              "readers" % (base, peak, peak - base, READERS))
        et.ok(peak - base < RSS_LIMIT_KIB, "RssAnon grew by %d KiB while %d "
              "clients read slowly (limit %d)"
              % (peak - base, READERS, RSS_LIMIT_KIB))

        for r in readers:
            r.stop.set()
        for r in readers:
            r.join(5)
        body = readers[0].finish()
        et.check_pattern(body, SIZE)
        for r in readers[1:]:
            r.c.close()
        readers[0].c.close()

        r = e.request("GET", path(0))
        et.eq(r.status, 200, "status")
        et.ok(r.header("Cache-Status").find("hit") >= 0,
              "stored: %s" % r.header("Cache-Status"))
        et.check_pattern(r.body, SIZE)
        et.eq(o.count(path(0).split("?")[0]), 1, "one origin fetch")


if __name__ == "__main__":
    et.main()
