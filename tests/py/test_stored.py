#!/usr/bin/env python3
"""Story: "stored" is said only of what was stored.

Cache-Status goes out in the response head, before the body has arrived,
so the head says "stored" when the node has decided to store the response
and its store is not known to be failing.  The access log line is written
when the transaction ends and says "stored" only if the whole body arrived
and was handed to a healthy store; otherwise it drops the claim and says
why in a detail (docs/metrics.md "What stored means").

An origin that resets in the middle of a body: the client's head said
stored, the log does not, and the next request is a miss again, for a
shared fetch and for one a client makes alone.  A HEAD miss, answered
from a shared fetch when its head comes, logs "pending": the GETs after
it find the object stored.  A disk whose writes fail
(here: a file-size limit on edged, so LMDB's writes come back short; the
limit is below cache_size from the start, so that the store is written
with pwrite rather than through its map): once
the writer has seen the failure, neither the head nor the log says stored,
the failure is logged once with what it means and then summed up at most
every few seconds, not once per batch, and its end is logged when the
limit is lifted; from then on responses are stored again.
"""

import json
import os
import re
import resource
import stat
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

MIB = 1 << 20


def admin_args():
    port = et.free_port()
    return port, ["--admin-listen", "127.0.0.1:%d" % port]


def stats(port):
    with et.Client(port) as c:
        r = c.request("GET", "/stats")
        et.eq(r.status, 200, "stats status")
        return json.loads(r.body)


def log_status(e, path):
    """The quoted cache-status field of the one access log line of <path>."""
    line = e.wait_access_log(lambda l: ('"GET %s ' % path) in l, 5.0,
                             what="the access log line of " + path)
    m = re.search(r'" \d{3} \d+ \d+ \S+ \S+ "([^"]*)"', line)
    et.ok(m is not None, "a cache-status field in %r" % line)
    return m.group(1)


def cut_short(e, path):
    """GET <path>, which the origin resets mid-body; returns the head."""
    c = e.connect()
    try:
        c.send(et.build_request("GET", path))
        c.settimeout(10)
        r = c.read_response(allow_incomplete=True)
    finally:
        c.close()
    et.eq(r.status, 200, "the head went out before the reset")
    et.ok(not r.complete, "the body is cut short")
    return r


def test_reset_mid_body_is_not_logged_stored():
    with et.Origin() as o, \
            et.Edge(o.url, "--cache-dir",
                    os.path.join(et.mktemp("cache"), "c")) as e:
        path = "/obj/cut?size=%d&ttl=300&reset_after=200000" % (4 * MIB)
        r = cut_short(e, path)
        cs = r.header("cache-status")
        et.ok(cs.endswith("; stored"),
              "the head says what the node decided: %s" % cs)
        st = log_status(e, path)
        et.ok("stored" not in st.split("; "),
              "a response cut short is not logged as stored: %r" % st)
        et.ok("detail=incomplete" in st, "the log says why: %r" % st)
        # And indeed it was not: the next request goes to the origin.
        o.reset()
        cut_short(e, path)
        et.eq(o.count(path.split("?")[0]), 1, "a miss again")


def test_reset_mid_body_alone_is_not_logged_stored():
    # A response that may not be stored makes its URL hit-for-miss: the
    # next request fetches alone (not through a shared fetch).  The query
    # parameters that differ are left out of the key.
    port, extra = admin_args()
    with et.Origin() as o, \
            et.Edge(o.url, "--cache-dir",
                    os.path.join(et.mktemp("cache"), "c"),
                    "--cache-query-drop", "hdr",
                    "--cache-query-drop", "reset_after", *extra) as e:
        base = "/obj/alone?size=%d&ttl=300" % (4 * MIB)
        r = e.request("GET", base + "&hdr=Cache-Control:private")
        et.eq(r.status, 200, "a private response")
        path = base + "&reset_after=200000"
        r = cut_short(e, path)
        cs = r.header("cache-status")
        et.ok(cs.endswith("; stored"), "decided to store: %s" % cs)
        et.eq(stats(port)["cache"]["hit_for_miss_misses"], 1,
              "the fetch was a lone one")
        st = log_status(e, path)
        et.ok("stored" not in st.split("; ") and "detail=incomplete" in st,
              "not logged as stored: %r" % st)


def test_complete_response_is_logged_stored():
    with et.Origin() as o, \
            et.Edge(o.url, "--cache-dir",
                    os.path.join(et.mktemp("cache"), "c")) as e:
        path = "/obj/whole?size=300000&ttl=300"
        r = e.request("GET", path)
        et.check_pattern(r.body, 300000)
        et.ok(r.header("cache-status").endswith("; stored"),
              r.header("cache-status"))
        et.eq(log_status(e, path), "fwd=uri-miss; stored", "logged stored")
        r = e.request("GET", path)
        et.ok(r.header("cache-status").startswith("edged; hit"),
              "and it was: %s" % r.header("cache-status"))


def test_head_miss_says_pending():
    # A HEAD miss fills the cache through a shared GET; its own line is
    # written when its head is sent, before the body has arrived.
    with et.Origin() as o, \
            et.Edge(o.url, "--cache-dir",
                    os.path.join(et.mktemp("cache"), "c")) as e:
        path = "/obj/head?size=300000&ttl=300"
        r = e.request("HEAD", path)
        et.ok(r.header("cache-status").endswith("; stored"),
              r.header("cache-status"))
        line = et.wait_for(lambda: [l for l in e.access_log_lines()
                                    if '"HEAD %s ' % path in l], 5.0)[0]
        et.ok('"fwd=uri-miss; detail=pending"' in line,
              "the outcome is not known yet: %r" % line)
        et.wait_for(lambda: e.request("GET", path).header("cache-status")
                    .startswith("edged; hit"), 5.0, 0.1, "then a hit")
        et.eq(o.count(path.split("?")[0]), 1, "one origin request")


def store_lines(e):
    """The error log's warnings and errors about the store."""
    return [l for l in e.stderr_text().splitlines()
            if " cache: " in l and (" err " in l or " warn " in l)]


def fetch(e, path, size):
    r = e.request("GET", path)
    et.eq(r.status, 200, "status of " + path)
    et.check_pattern(r.body, size)
    return r.header("cache-status")


@et.timeout(90)
def test_failing_disk_is_said_once_and_not_called_stored():
    tmp = et.mktemp("cache")
    d = os.path.join(tmp, "c")
    port, extra = admin_args()
    size = 512 * 1024
    # A file-size limit below cache_size from the start: data.mdb cannot
    # be as long as its map, so the store is written with pwrite(2), whose
    # writes the limit cuts short (a store written through its map is
    # map-long already and takes its room by fallocate, which the limit
    # does not bound; test_store_full_disk.py fills a real disk).
    wrapper = os.path.join(tmp, "edged-fsize")
    with open(wrapper, "w") as f:
        f.write("#!/bin/bash\nulimit -S -f %d\nexec %s \"$@\"\n"
                % (128 * 1024, et.EDGED))  # KiB: 128 MiB
    os.chmod(wrapper, stat.S_IRWXU)
    with et.Origin() as o, \
            et.Edge(o.url, "--cache-dir", d, "--cache-size", "256M",
                    *extra, binary=wrapper) as e:
        cs = fetch(e, "/obj/before?size=%d&ttl=300" % size, size)
        et.ok(cs.endswith("; stored"), "a healthy store: %s" % cs)
        et.wait_for(lambda: stats(port)["cache"]["objects"] >= 1, 5.0,
                    what="the first object is on disk")
        # From now on the data file may grow by at most 1 MiB: LMDB's
        # writes past that come back short (SIGXFSZ is ignored by edged).
        lim = os.path.getsize(os.path.join(d, "data.mdb")) + MIB
        _, hard = resource.prlimit(e.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(e.pid, resource.RLIMIT_FSIZE, (lim, hard))
        i = 0

        def failing():
            nonlocal i
            i += 1
            fetch(e, "/obj/fill%d?size=%d&ttl=300" % (i, size), size)
            return stats(port)["cache"]["io_errors"] > 0
        et.wait_for(failing, 20.0, 0.05, "a failed write")

        # Known to fail: no response is called stored, head or log.
        path = "/obj/during?size=%d&ttl=300" % size
        cs = fetch(e, path, size)
        et.ok(cs.endswith("; detail=store-failing") and "stored" not in cs,
              "the head does not promise a store: %s" % cs)
        et.eq(log_status(e, path), "fwd=uri-miss; detail=store-failing",
              "nor does the log")
        # Many more failing batches: a bounded number of lines.
        t0 = time.monotonic()
        errors0 = stats(port)["cache"]["io_errors"]
        for k in range(30):
            fetch(e, "/obj/more%d?size=%d&ttl=300" % (k, size), size)
            time.sleep(0.05)
        et.wait_for(lambda: stats(port)["cache"]["io_errors"] >=
                    errors0 + 10, 10.0, 0.05, "more failed writes")
        lines = store_lines(e)
        secs = time.monotonic() - t0
        et.ok(len(lines) <= 2 + secs / 5,
              "%d lines for %d failed writes in %.1f s:\n%s" % (
                  len(lines), stats(port)["cache"]["io_errors"], secs,
                  "\n".join(lines[:20])))
        begin = [l for l in lines if "disk writes failing" in l]
        et.eq(len(begin), 1, "the failure is said once: %r" % lines)
        et.ok("file size limit" in begin[0],
              "with what it means: %r" % begin[0])

        # The limit is lifted: the next batch commits, the end is logged,
        # and responses are stored (and said to be) again.
        resource.prlimit(e.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, hard))
        n = 0

        def recovered():
            nonlocal n
            n += 1
            fetch(e, "/obj/after%d?size=1000&ttl=300" % n, 1000)
            return any("disk writes succeed again" in l
                       for l in store_lines(e))
        et.wait_for(recovered, 15.0, 0.1, "writes succeed again")
        path = "/obj/healthy?size=%d&ttl=300" % size
        cs = fetch(e, path, size)
        et.ok(cs.endswith("; stored"), "stored again: %s" % cs)
        et.eq(log_status(e, path), "fwd=uri-miss; stored", "logged stored")
        et.wait_for(lambda: o.count("/obj/healthy") == 1 and
                    e.request("GET", path).header("cache-status")
                    .startswith("edged; hit"), 5.0, 0.1, "a hit")


if __name__ == "__main__":
    et.main()
