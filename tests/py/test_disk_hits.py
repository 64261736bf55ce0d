#!/usr/bin/env python3
"""Story: hits on large objects read from disk do not load whole bodies.

An object larger than the memory tier keeps (about 2 MiB by default) lives
in LMDB alone, so every hit on it is read from disk.  edged reads such a
body one 256 KiB chunk at a time as the client's connection drains, for the
whole body, one range or many, instead of copying all of it into memory
before the first byte goes out.

Five 60 MiB objects are stored, then edged restarts on the same cache and
five clients read them at about 100 KB/s: edged's RSS stays within 64 MiB
of what it was before (each body alone is 60 MiB), and a reader that then
takes the rest at full speed gets every byte.  A fast reader, ranges,
multipart ranges, HEAD, 304, If-Range and a gzip variant read from disk
answer as they did.  When the object is replaced or would be evicted
while a client is still reading it, that client still gets the copy it
began with, whole; a chunk that fails its checksum is never sent: the
transfer ends before it (the cut is counted), or, if it is the first
chunk, the request is a miss answered by the origin.  A range asked for within the object's
stale-while-revalidate window is answered from disk too.
"""

import json
import os
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402

SIZE = 60 << 20
READERS = 5
RATE = 100 * 1000            # bytes per second per reader
RSS_LIMIT_KIB = 64 * 1024
# Of which the process's own memory (heap), not LMDB's file pages mapped
# as the chunks are read: about 3 MiB here, 12 MiB under AddressSanitizer
# (whose quarantine below keeps 8 MiB of freed chunks).
ANON_LIMIT_KIB = 24 * 1024
CHUNK = 256 * 1024           # CACHE_CHUNK_SIZE
MID = 8 << 20                # an object well above the memory tier's cap

# Under AddressSanitizer freed memory sits in a quarantine (256 MiB by
# default) and would count as growth here: keep it small for this story.
ASAN_ENV = {"ASAN_OPTIONS": ":".join(filter(None, [
    os.environ.get("ASAN_OPTIONS", ""),
    "quarantine_size_mb=8", "thread_local_quarantine_size_kb=256"]))}


def path(i, size=SIZE):
    return "/obj/disk%d?size=%d&ttl=300&hdr=ETag:%%22v%d%%22" % (i, size, i)


def stats(port):
    with et.Client(port) as c:
        return json.loads(c.request("GET", "/stats").body)


class Node:
    """edged on a cache directory, with an admin listener."""

    def __init__(self, o, cache, *extra):
        self.admin = et.free_port()
        self.e = et.Edge(o.url, "--cache-dir", cache, "--cache-size", "1G",
                         "--admin-listen", "127.0.0.1:%d" % self.admin,
                         *extra, env=ASAN_ENV)

    def stats(self):
        return stats(self.admin)["cache"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.e.stop()


def drain(e, target, size):
    """GET <target> and read its body without keeping it."""
    c = e.connect(timeout=60)
    try:
        c.send(et.build_request("GET", target))
        r = c.read_response(read_body=False)
        et.eq(r.status, 200, "fill " + target)
        got = len(c.reader.buf)
        c.reader.buf.clear()
        while got < size:
            d = c.sock.recv(1 << 20)
            et.ok(d, "EOF after %d of %d bytes" % (got, size))
            got += len(d)
    finally:
        c.close()


def fill(o, cache, targets, *extra):
    """Store each (target, size) through edged, then stop it: everything
    committed, nothing left in memory."""
    with Node(o, cache, *extra) as n:
        for t, size in targets:
            drain(n.e, t, size)
        et.wait_for(lambda: n.stats()["puts"] >= len(targets), timeout=60,
                    what="every object committed")


@et.timeout(180)
def test_five_slow_readers_of_disk_hits():
    cache = et.mktemp("cache") + "/c"
    with et.Origin() as o:
        fill(o, cache, [(path(i), SIZE) for i in range(READERS)])
        with Node(o, cache) as n:
            e = n.e
            et.check_pattern(e.request("GET", "/obj/warm?size=1048576").body,
                             1 << 20)
            time.sleep(0.5)
            base, anon = e.rss_kib(), et.proc_kib(e.pid, "RssAnon")
            peak, peak_anon = base, anon
            readers = [et.SlowReader(e, path(i), SIZE, RATE)
                       for i in range(READERS)]
            for r in readers:
                r.start()
            until = time.monotonic() + 6
            while time.monotonic() < until:
                peak = max(peak, e.rss_kib())
                peak_anon = max(peak_anon, et.proc_kib(e.pid, "RssAnon"))
                time.sleep(0.1)
            for r in readers:
                et.ok(r.error is None, "reader: %s" % r.error)
                et.ok(r.head.header("Cache-Status").startswith("edged; hit"),
                      "a hit: %s" % r.head.header("Cache-Status"))
                et.ok(0 < len(r.body) < SIZE // 4,
                      "a slow reader has read %d bytes" % len(r.body))
            print("# RSS %d KiB idle, peak %d KiB (+%d KiB; anonymous +%d "
                  "KiB) with %d slow readers of disk hits"
                  % (base, peak, peak - base, peak_anon - anon, READERS))
            et.ok(peak - base < RSS_LIMIT_KIB, "RSS grew by %d KiB while %d "
                  "clients read disk hits slowly (limit %d)"
                  % (peak - base, READERS, RSS_LIMIT_KIB))
            et.ok(peak_anon - anon < ANON_LIMIT_KIB, "anonymous RSS grew by "
                  "%d KiB (limit %d)" % (peak_anon - anon, ANON_LIMIT_KIB))

            for r in readers:
                r.stop.set()
            for r in readers:
                r.join(5)
            body = readers[0].finish()
            et.eq(len(body), SIZE, "the fast finish got every byte")
            et.check_pattern(body, SIZE)
            for r in readers:
                r.c.close()
            s = n.stats()
            et.eq(s["hits_disk"], READERS, "every reader was a disk hit")
            et.eq(s["disk_streams"], READERS, "each read as it was sent")
            et.eq(s["disk_stream_cuts"], 0, "none cut short")
        et.eq(o.count("/obj/disk0"), 1, "one origin fetch")


@et.timeout(120)
def test_fast_reads_ranges_and_conditionals_from_disk():
    cache = et.mktemp("cache") + "/c"
    t = path(7, MID)
    with et.Origin() as o:
        fill(o, cache, [(t, MID)])
        with Node(o, cache) as n:
            e = n.e
            r = e.request("GET", t, timeout=30)
            et.eq(r.status, 200, "whole")
            et.check_pattern(r.body, MID)
            et.ok(r.header("Cache-Status").startswith("edged; hit"),
                  "a hit: %s" % r.header("Cache-Status"))
            et.ok(r.header("Age") is not None, "Age")
            for a, b in ((0, 0), (1000, 1999), (CHUNK - 10, CHUNK + 10),
                         (3 * CHUNK, 5 * CHUNK - 1), (MID - 7, MID - 1)):
                r = e.request("GET", t, {"Range": "bytes=%d-%d" % (a, b)})
                et.eq((r.status, r.header("Content-Range")),
                      (206, "bytes %d-%d/%d" % (a, b, MID)), "range")
                et.eq(r.body, et.pattern(a, b - a + 1), "range bytes")
            r = e.request("GET", t, {"Range": "bytes=-10,5-9,%d-%d"
                                     % (2 * CHUNK - 1, 2 * CHUNK)})
            parts = et.parse_multipart(r)
            et.eq([p[1] for p in parts],
                  [et.pattern(5, 5), et.pattern(2 * CHUNK - 1, 2),
                   et.pattern(MID - 10, 10)], "multipart from disk")
            r = e.request("GET", t, {"Range": "bytes=%d-" % (MID + 5)})
            et.eq((r.status, r.header("Content-Range")),
                  (416, "bytes */%d" % MID), "416")
            r = e.request("HEAD", t)
            et.eq((r.status, r.header("Content-Length"), r.body),
                  (200, str(MID), b""), "HEAD")
            r = e.request("GET", t, {"If-None-Match": '"v7"'})
            et.eq((r.status, r.body), (304, b""), "304")
            et.ok(r.header("Cache-Status").startswith("edged; hit"),
                  "304 a hit: %s" % r.header("Cache-Status"))
            r = e.request("GET", t, {"Range": "bytes=10-19",
                                     "If-Range": '"v7"'})
            et.eq((r.status, r.body), (206, et.pattern(10, 10)),
                  "If-Range matches")
            r = e.request("GET", t, {"Range": "bytes=10-19",
                                     "If-Range": '"other"'}, timeout=30)
            et.eq(r.status, 200, "If-Range does not match: the whole")
            et.check_pattern(r.body, MID)
            s = n.stats()
            # GETs with a body: whole, 5 ranges, multipart, If-Range x2.
            et.eq(s["disk_streams"], 9, "streamed: %r" % s)
            et.eq(s["disk_stream_cuts"], 0, "none cut")
            et.eq(s["hits_memory"], 0, "never promoted to memory")
        et.eq(o.count("/obj/disk7"), 1, "one origin fetch")


@et.timeout(120)
def test_a_large_gzip_variant_from_disk():
    # The origin's gzip body (a bomb: 1 GiB of zeros) is the stored
    # variant, about 1 MiB of coded bytes: over the memory tier's cap
    # once edged restarts with a small one.
    cache = et.mktemp("cache") + "/c"
    t = "/bomb?size=%d" % (1 << 30)
    gz = {"Accept-Encoding": "gzip"}
    with et.Origin() as o:
        with Node(o, cache) as n:
            coded = n.e.request("GET", t, gz, timeout=30).body
            et.wait_for(lambda: n.stats()["puts"] >= 1, timeout=30,
                        what="the gzip response committed")
        et.ok(len(coded) > 3 * CHUNK, "it spans chunks (%d bytes)"
              % len(coded))
        with Node(o, cache, "--memory-size", "1M") as n:
            r = n.e.request("GET", t, gz, timeout=30)
            et.eq((r.status, r.header("Content-Encoding")), (200, "gzip"),
                  "gzip from disk")
            et.ok(r.header("Cache-Status").startswith("edged; hit"),
                  "a hit: %s" % r.header("Cache-Status"))
            et.eq(r.body, coded, "the stored gzip bytes")
            r = n.e.request("GET", t, dict(gz, Range="bytes=%d-%d"
                                          % (CHUNK - 3, CHUNK + 3)))
            et.eq((r.status, r.header("Content-Encoding"), r.body),
                  (206, "gzip", coded[CHUNK - 3:CHUNK + 4]),
                  "a range of the gzip bytes")
            r = n.e.request("GET", t, dict(gz, Range="bytes=0-1,-2"))
            et.eq((r.status, r.body), (200, coded),
                  "many ranges of a coded variant: the whole")
            et.eq(n.stats()["disk_streams"], 3, "each read as sent")
        et.eq(o.count("/bomb"), 1, "one origin fetch")


def slow_reader_under_way(e, t, size):
    r = et.SlowReader(e, t, size, RATE)
    # A small window, so that what the kernel buffers is far from the
    # whole body: edged still has chunks to read from disk.
    r.c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    r.start()
    et.wait_for(lambda: len(r.body) > 300 * 1000, timeout=20,
                what="the slow reader under way")
    return r


def finish_whole(r, size):
    """Let slow reader <r> take the rest at full speed: every byte of the
    copy it began with."""
    r.stop.set()
    r.join(5)
    et.ok(r.error is None, "reader: %s" % r.error)
    body = r.finish()
    et.eq(len(body), size, "the whole body")
    et.check_pattern(body, size)
    r.c.close()


@et.timeout(150)
def test_replaced_while_streaming_the_reader_keeps_its_copy():
    # The origin's new answer (other bytes: "first" is left out of the
    # key) replaces the stored object a slow client is reading.  That
    # client still gets the copy it began with, whole; the old chunks go
    # once it is done.
    cache = et.mktemp("cache") + "/c"
    t = path(8)
    drop = ("--cache-query-drop", "first")
    with et.Origin() as o:
        fill(o, cache, [(t, SIZE)], *drop)
        with Node(o, cache, *drop) as n:
            r = slow_reader_under_way(n.e, t, SIZE)
            c = n.e.connect(timeout=60)
            c.send(et.build_request("GET", t + "&first=65536",
                                    {"Cache-Control": "no-cache"}))
            h = c.read_response(read_body=False)
            et.eq(h.status, 200, "refetch")
            got = len(c.reader.buf)
            c.reader.buf.clear()
            while got < SIZE:
                d = c.sock.recv(1 << 20)
                et.ok(d, "refetch EOF after %d bytes" % got)
                got += len(d)
            c.close()
            et.wait_for(lambda: n.stats()["puts"] >= 1, timeout=60,
                        what="the new copy committed")
            both = n.stats()["bytes"]
            finish_whole(r, SIZE)
            et.ok(both > 2 * SIZE,
                  "both copies on disk while the old one was read")
            s = n.stats()
            et.eq(s["disk_stream_cuts"], 0, "nothing cut")
            et.wait_for(lambda: n.stats()["bytes"] < 1.5 * SIZE,
                        timeout=10, what="the old copy's chunks deleted")
            r2 = n.e.request("GET", t, timeout=30)
            et.ok(r2.header("Cache-Status").startswith("edged; hit"),
                  "the new copy is a hit")
            et.check_pattern(r2.body, SIZE, 65536)
        et.eq(o.count("/obj/disk8"), 2, "two origin fetches")


@et.timeout(120)
def test_evicted_while_streaming_the_reader_gets_all():
    # A store of 64 MiB: while a client reads a 7 MiB object from it
    # slowly, 96 MiB of other objects go in, which evicts the oldest.
    # The object being read is passed over, and the client gets it whole.
    # (Larger than what the sockets buffer, about 4 MiB here: edged still
    # reads chunks from disk after the evictions.)
    cache = et.mktemp("cache") + "/c"
    size = 7 << 20
    t = path(11, size)
    with et.Origin() as o:
        with Node(o, cache, "--cache-size", "64M",
                  "--memory-size", "1M") as n:
            drain(n.e, t, size)
            et.wait_for(lambda: n.stats()["puts"] >= 1, timeout=30,
                        what="the object committed")
            r = slow_reader_under_way(n.e, t, size)
            for i in range(96):
                drain(n.e, "/obj/fill%d?size=%d&ttl=300" % (i, 1 << 20),
                      1 << 20)
            et.wait_for(lambda: n.stats()["puts"] >= 97, timeout=60,
                        what="the other objects committed")
            et.ok(n.stats()["evictions"] > 0, "objects were evicted")
            finish_whole(r, size)
            et.eq(n.stats()["disk_stream_cuts"], 0, "nothing cut")
            r2 = n.e.request("GET", t, timeout=30)
            et.ok(r2.header("Cache-Status").startswith("edged; hit"),
                  "the object in use was kept: %s"
                  % r2.header("Cache-Status"))
            et.check_pattern(r2.body, size)
        et.eq(o.count("/obj/disk11"), 1, "one origin fetch")


@et.timeout(120)
def test_purged_while_streaming_the_transfer_is_cut():
    # A hard purge takes the chunks a reader has yet to send: its
    # transfer ends short (never with other bytes), and the cut is counted.
    size = 16 << 20
    t = path(12, size)
    with et.Origin() as o:
        with pn.Node(o) as n:
            drain(n.edge, t, size)
            pn.wait_disk(n, 1, timeout=30)
            r = slow_reader_under_way(n.edge, t, size)
            n.purge_ok(target=t)
            r.stop.set()
            r.join(5)
            et.ok(r.error is None, "reader: %s" % r.error)
            body = r.finish()
            et.ok(len(body) < size, "the transfer ended short (%d bytes)"
                  % len(body))
            et.check_pattern(body, None)
            r.c.assert_closed(5, "the cut connection")
            r.c.close()
            et.eq(n.stats()["cache"]["disk_stream_cuts"], 1,
                  "the cut is counted")
            n.edge.wait_access_log(lambda l: "cut-replaced" in l, timeout=5)
            r2 = n.get(t)
            et.ok("fwd=uri-miss" in r2.header("Cache-Status"),
                  "purged: %s" % r2.header("Cache-Status"))
        et.eq(o.count("/obj/disk12"), 2, "fetched again")


@et.timeout(60)
def test_stale_while_revalidate_range_from_disk():
    # A range of a large object on disk, stale within its
    # stale-while-revalidate window: answered from the stored copy while
    # one refresh runs behind it (this once aborted the node).
    cache = et.mktemp("cache") + "/c"
    t = ("/obj/swr?size=%d&hdr=Cache-Control:max-age%%3D1,"
         "stale-while-revalidate%%3D60" % MID)
    with et.Origin() as o:
        fill(o, cache, [(t, MID)])
        time.sleep(1.5)
        with Node(o, cache) as n:
            r = n.e.request("GET", t, {"Range": "bytes=%d-%d"
                                       % (CHUNK - 5, CHUNK + 4)})
            et.eq((r.status, r.body), (206, et.pattern(CHUNK - 5, 10)),
                  "the stale range")
            et.ok("stale-while-revalidate" in r.header("Cache-Status"),
                  "stale: %s" % r.header("Cache-Status"))
            et.wait_for(lambda: o.count("/obj/swr") == 2, timeout=10,
                        what="the refresh")
            r = n.e.request("GET", t, timeout=30)
            et.eq(r.status, 200, "whole")
            et.check_pattern(r.body, MID)


def corrupt_chunk(cache, i):
    """Flip one byte of stored body chunk <i> in the LMDB file: the
    chunk's first 252 KiB are unique in a cache of one object under 16 MiB
    (the pattern repeats every 16 MiB), and LMDB keeps the chunk's value
    (all of it but a tail of less than a page, which its record keeps)
    whole."""
    f = os.path.join(cache, "data.mdb")
    with open(f, "rb") as fh:
        data = fh.read()
    needle = et.pattern(i * CHUNK, CHUNK - 4096)
    at = data.find(needle)
    et.ok(at >= 0, "chunk %d found in data.mdb" % i)
    et.eq(data.find(needle, at + 1), -1, "found once")
    with open(f, "r+b") as fh:
        fh.seek(at + 1000)
        fh.write(bytes([data[at + 1000] ^ 0xFF]))


@et.timeout(120)
def test_a_chunk_failing_its_checksum_is_never_sent():
    with et.Origin() as o:
        # A bad chunk in the middle: the transfer ends before it.
        cache = et.mktemp("cache") + "/c"
        t = path(9, MID)
        fill(o, cache, [(t, MID)])
        corrupt_chunk(cache, 12)
        with Node(o, cache) as n:
            c = n.e.connect(timeout=30)
            c.send(et.build_request("GET", t))
            r = c.read_response(allow_incomplete=True)
            et.eq(r.status, 200, "the head went out")
            et.ok(not r.complete, "the body is cut short")
            et.eq(len(r.body), 12 * CHUNK, "every chunk before the bad one")
            et.check_pattern(r.body, None)
            c.close()
            s = n.stats()
            et.eq((s["disk_stream_cuts"], s["corrupt"]), (1, 1),
                  "cut and counted")
            n.e.wait_access_log(lambda l: "cut-corrupt" in l, timeout=5)
            r = n.e.request("GET", t, timeout=30)
            et.ok("fwd=uri-miss" in r.header("Cache-Status"),
                  "the bad copy was removed: %s" % r.header("Cache-Status"))
            et.check_pattern(r.body, MID)
        et.eq(o.count("/obj/disk9"), 2, "fetched again")

        # A bad first chunk: nothing was sent yet, so a miss.
        cache = et.mktemp("cache") + "/c"
        t = path(10, MID)
        fill(o, cache, [(t, MID)])
        corrupt_chunk(cache, 0)
        with Node(o, cache) as n:
            r = n.e.request("GET", t, timeout=30)
            et.eq(r.status, 200, "answered")
            et.ok("fwd=uri-miss" in r.header("Cache-Status"),
                  "a miss: %s" % r.header("Cache-Status"))
            et.check_pattern(r.body, MID)
            s = n.stats()
            et.eq((s["disk_stream_cuts"], s["corrupt"], s["misses"]),
                  (0, 1, 1), "counted as a miss")
            r = n.e.request("GET", t, timeout=30)
            et.ok(r.header("Cache-Status").startswith("edged; hit"),
                  "stored again: %s" % r.header("Cache-Status"))
            et.check_pattern(r.body, MID)
        et.eq(o.count("/obj/disk10"), 2, "fetched again")


if __name__ == "__main__":
    et.main()
