#!/usr/bin/env python3
"""Story: large hits leave from sealed memory files.

A body of 64 KiB or more that enters the memory tier is moved into a
sealed memfd (no write, shrink or growth), and a plain HTTP/1.1 hit hands
that file to the kernel (sendfile) instead of having it copy the bytes out
of edged's memory.  Every hit must still be byte-identical to the origin's
body: whole bodies across chunk boundaries, single and multiple ranges,
HEAD, a slow reader whose object is purged or evicted while it is being
sent, a body promoted from disk after a restart, the same objects over
TLS and HTTP/2 (which read the file's mapping), and bodies beyond the
descriptor budget (a quarter of RLIMIT_NOFILE), which stay in ordinary
memory.  /stats counts the sealed bodies and their bytes, and every
descriptor comes back once nothing holds the object.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402

CHUNK = 256 * 1024  # CACHE_CHUNK_SIZE
SEAL_MIN = 64 * 1024  # CACHE_OBJ_FD_MIN
CURL = shutil.which("curl")


def admin_args(cache=None):
    """An admin port, and the arguments for it and a cache directory."""
    port = et.free_port()
    cache = cache or os.path.join(et.mktemp("cache"), "c")
    return port, ["--admin-listen", "127.0.0.1:%d" % port,
                  "--cache-dir", cache]


def cache_stats(port):
    with et.Client(port) as c:
        r = c.request("GET", "/stats")
        et.eq(r.status, 200, "stats status")
        return json.loads(r.body)["cache"]


def body_files(pid):
    """How many sealed body files edged <pid> has open."""
    n = 0
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            if os.readlink(os.path.join(d, fd)).startswith(
                    "/memfd:edged-body"):
                n += 1
        except OSError:
            pass  # closed meanwhile
    return n


def fill(e, aport, target, n_stored):
    """A miss that stores <target>; waits until the store has n_stored."""
    r = e.request("GET", target)
    et.eq(r.status, 200, "%s: the miss" % target)
    et.wait_for(lambda: cache_stats(aport)["memory_objects"] >= n_stored,
                what="%s in the memory tier" % target)


def hit(e, target, size, offset=0):
    r = e.request("GET", target)
    et.eq(r.status, 200, "%s: status" % target)
    et.ok("hit" in (r.header("Cache-Status") or ""),
          "%s: a hit (%r)" % (target, r.header("Cache-Status")))
    et.check_pattern(r.body, size, offset)
    return r


def test_large_hits_sent_from_sealed_files():
    """Bodies at and above 64 KiB are sealed and hit byte for byte, one
    below is not; the sizes cross the 256 KiB chunk boundary."""
    sizes = (SEAL_MIN - 1, SEAL_MIN, 102400, CHUNK, CHUNK + 1,
             3 * CHUNK + 777)
    aport, extra = admin_args()
    with et.Origin() as o, et.Edge(o.url, *extra) as e:
        for i, size in enumerate(sizes):
            fill(e, aport, "/obj/s%d?size=%d&ttl=600" % (size, size), i + 1)
        s = cache_stats(aport)
        et.eq(s["sealed_bodies"], len(sizes) - 1,
              "every body of 64 KiB or more is sealed: %r" % s)
        pages = sum(-(-size // 4096) * 4096 for size in sizes[1:])
        et.eq(s["sealed_bytes"], pages, "their pages counted")
        et.ok(s["memory_bytes"] >= pages,
              "and charged to the memory tier: %r" % s)
        et.eq(body_files(e.pid), len(sizes) - 1, "one file each")
        for _ in range(3):
            for size in sizes:
                hit(e, "/obj/s%d?size=%d&ttl=600" % (size, size), size)
        # Many hits on one keep-alive connection, each read whole.
        with e.connect() as c:
            for _ in range(50):
                r = c.request("GET", "/obj/s102400?size=102400&ttl=600")
                et.check_pattern(r.body, 102400)
        for size in sizes:
            et.eq(o.count("/obj/s%d" % size), 1, "%d: one fetch" % size)


def test_ranges_and_head():
    size = 3 * CHUNK + 777
    target = "/obj/r?size=%d&ttl=600" % size
    aport, extra = admin_args()
    with et.Origin() as o, et.Edge(o.url, *extra) as e:
        fill(e, aport, target, 1)
        et.eq(cache_stats(aport)["sealed_bodies"], 1, "sealed")
        for first, last in ((0, 0), (CHUNK - 10, CHUNK + 10),
                            (1000, 2 * CHUNK + 5000), (size - 1, size - 1),
                            (5, size - 1)):
            r = e.request("GET", target,
                          [("Range", "bytes=%d-%d" % (first, last))])
            et.eq(r.status, 206, "range %d-%d" % (first, last))
            et.eq(r.header("Content-Range"),
                  "bytes %d-%d/%d" % (first, last, size), "Content-Range")
            et.check_pattern(r.body, last - first + 1, first)
        r = e.request("GET", target, [("Range", "bytes=-1000")])
        et.eq(r.status, 206, "a suffix range")
        et.check_pattern(r.body, 1000, size - 1000)
        r = e.request("GET", target,
                      [("Range", "bytes=0-99,%d-%d,-50"
                        % (CHUNK - 3, CHUNK + 300))])
        et.eq(r.status, 206, "several ranges")
        parts = et.parse_multipart(r)
        et.eq(len(parts), 3, "three parts")
        for (fields, data), (first, n) in zip(
                parts, ((0, 100), (CHUNK - 3, 304), (size - 50, 50))):
            et.check_pattern(data, n, first)
        with e.connect() as c:
            r = c.request("HEAD", target)
            et.eq(r.status, 200, "HEAD")
            et.eq(r.header("Content-Length"), str(size), "HEAD's length")
            et.eq(r.body, b"", "no body after HEAD")
            r = c.request("GET", target)
            et.check_pattern(r.body, size)  # the connection is in step
            # Range is defined for GET only (RFC 9110 §14.2).
            r = c.request("HEAD", target, [("Range", "bytes=10-20")])
            et.eq((r.status, r.header("Content-Length"), r.body),
                  (200, str(size), b""), "a HEAD with a Range")
            r = c.request("GET", target, [("Range", "bytes=10-20")])
            et.check_pattern(r.body, 11, 10)
        et.eq(o.count("/obj/r"), 1, "one fetch")


def send_buffer_max():
    """The most a TCP socket's send buffer grows to (tcp_wmem's maximum):
    edged writes until the socket takes no more, so only what is beyond
    this stays in its output buffer."""
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        return int(f.read().split()[2])


class TightReader(threading.Thread):
    """<count> pipelined GETs read slowly through a 4 KiB receive buffer:
    more than the kernel's socket buffers take, so the rest of the
    responses waits in edged's output buffer as file segments."""

    def __init__(self, port, target, count, rate=50000):
        super().__init__(daemon=True)
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.s.settimeout(30)
        self.s.connect(("127.0.0.1", port))
        self.s.sendall(et.build_request("GET", target) * count)
        self.count = count
        self.rate = rate
        self.data = bytearray()
        self.error = None

    def run(self):
        try:
            t0 = time.monotonic()
            while len(self.bodies()) < self.count:
                d = self.s.recv(65536)
                if not d:
                    raise AssertionError("EOF after %d bytes"
                                         % len(self.data))
                self.data += d
                ahead = len(self.data) / self.rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        except Exception as ex:  # reported by the test thread
            self.error = ex

    def bodies(self):
        """The bodies of the complete responses read so far."""
        out, at = [], 0
        while True:
            end = self.data.find(b"\r\n\r\n", at)
            if end < 0:
                return out
            head = bytes(self.data[at:end]).decode("latin-1").lower()
            n = int(head.split("content-length:")[1].split("\r\n")[0])
            if end + 4 + n > len(self.data):
                return out
            out.append(bytes(self.data[end + 4:end + 4 + n]))
            at = end + 4 + n


@et.timeout(120)
def test_purge_and_eviction_while_being_sent():
    """A slow reader holds a sealed body while its object is purged, and
    another while its object is evicted by a stream of new ones; both get
    every byte right, and the files are closed once they are done."""
    size = 200000
    with et.Origin() as o, pn.Node(o, "--memory-size", "32M") as n:
        aport = n.aport
        pa = "/obj/pa?size=%d&ttl=600" % size
        ev = "/obj/ev?size=%d&ttl=600" % size
        fill(n.edge, aport, pa, 1)
        fill(n.edge, aport, ev, 2)
        et.eq(cache_stats(aport)["sealed_bodies"], 2, "both sealed")
        # pa's responses cannot all leave edged's output buffer, even
        # into a send buffer grown to its maximum; ev is asked once, so
        # that S3-FIFO does not hold on to it.
        ra = TightReader(n.edge.port, pa, send_buffer_max() // size + 12)
        rb = TightReader(n.edge.port, ev, 1, rate=20000)
        ra.start()
        rb.start()
        et.wait_for(lambda: len(ra.data) > 10000 and len(rb.data) > 10000,
                    what="both readers under way")
        n.purge_ok(target=pa)
        r = n.get(pa)
        et.ok("hit" not in (r.header("Cache-Status") or ""),
              "purged: the next request misses")
        et.check_pattern(r.body, size)
        et.eq(cache_stats(aport)["sealed_bodies"], 3,
              "the purged body's file stays open while it is sent")
        # New objects, each asked twice (so that they reach S3-FIFO's
        # main queue), push ev out of the 32 MB tier.
        disk_hits = cache_stats(aport)["hits_disk"]
        for _ in range(2):
            for i in range(300):
                n.get("/obj/other%d?size=%d&ttl=600" % (i, size))
        r = n.get(ev)
        et.ok("hit" in (r.header("Cache-Status") or ""), "ev: a hit")
        et.check_pattern(r.body, size)
        s = cache_stats(aport)
        et.ok(s["memory_evictions"] > 0 and s["hits_disk"] > disk_hits,
              "ev was evicted from memory, hit from disk: %r" % s)
        et.ok(ra.is_alive() and rb.is_alive(), "both still reading")
        for t in (ra, rb):
            t.rate = 1 << 30  # the rest at once
            t.join(30)
            et.ok(t.error is None, "reader: %r" % t.error)
        for t in (ra, rb):
            et.eq(len(t.bodies()), t.count, "every response")
            for b in t.bodies():
                et.check_pattern(b, size)
        ra.s.close()
        rb.s.close()
        # What the tier holds stays sealed; the files sent are closed.
        et.wait_for(lambda: body_files(n.edge.pid) ==
                    cache_stats(aport)["sealed_bodies"],
                    what="open files = sealed bodies counted")
        s = cache_stats(aport)
        et.ok(s["sealed_bodies"] <= 32 * 1024 * 1024 // size,
              "no more sealed than the tier can hold: %r" % s)
        et.ok(s["sealed_bytes"] <= s["memory_bytes"],
              "every sealed byte charged to the tier: %r" % s)


def test_promoted_from_disk():
    """After a restart the body comes from LMDB, is sealed as it enters
    the memory tier, and hits from the file."""
    size = 300000
    target = "/obj/disk?size=%d&ttl=600" % size
    aport, extra = admin_args()
    with et.Origin() as o:
        with et.Edge(o.url, *extra) as e:
            fill(e, aport, target, 1)
            et.wait_for(lambda: cache_stats(aport)["objects"] >= 1,
                        what="written to disk")
        with et.Edge(o.url, *extra) as e:
            et.eq(cache_stats(aport)["sealed_bodies"], 0, "nothing yet")
            hit(e, target, size)
            et.eq(cache_stats(aport)["sealed_bodies"], 1,
                  "promoted and sealed")
            hit(e, target, size)
            et.eq(cache_stats(aport)["hits_memory"], 1, "a memory hit")
        et.eq(o.count("/obj/disk"), 1, "one fetch in all")


def curl(*args):
    """The body curl got; the Host edgetest's requests carry, so that
    every protocol asks for the same cached object."""
    p = subprocess.run([CURL, "-sS", "--max-time", "20", "-H",
                        "Host: %s" % pn.HOST] + list(args),
                       capture_output=True, timeout=30)
    et.eq(p.returncode, 0, "curl %r: %s" % (args, p.stderr))
    return p.stdout


def test_tls_and_http2_read_the_mapping():
    tls = et.self_signed(et.mktemp("certs"), cn="edge.test")
    if CURL is None or tls is None:
        raise et.Skip("needs curl and openssl")
    size = CHUNK + 4321
    target = "/obj/t?size=%d&ttl=600" % size
    crt, key = tls
    tport, h2port = et.free_port(), et.free_port()
    aport, extra = admin_args()
    with et.Origin() as o, et.Edge(
            o.url, "--listen-tls", "127.0.0.1:%d" % tport,
            "--tls-cert", crt, "--tls-key", key,
            "--listen-h2c", "127.0.0.1:%d" % h2port, *extra) as e:
        fill(e, aport, target, 1)
        et.eq(cache_stats(aport)["sealed_bodies"], 1, "sealed")
        url = "https://127.0.0.1:%d%s" % (tport, target)
        et.check_pattern(curl("-k", "--http1.1", url), size)
        et.check_pattern(curl("-k", "--http2", url), size)
        et.check_pattern(curl("-k", "--http1.1", "-r", "%d-%d"
                              % (CHUNK - 7, CHUNK + 70), url), 78, CHUNK - 7)
        h2c = "http://127.0.0.1:%d%s" % (h2port, target)
        et.check_pattern(curl("--http2-prior-knowledge", h2c), size)
        et.check_pattern(curl("--http2-prior-knowledge", "-r", "100-199",
                              h2c), 100, 100)
        hit(e, target, size)
        s = cache_stats(aport)
        et.eq(s["hits_memory"], 6, "six memory hits: %r" % s)
        et.eq(o.count("/obj/t"), 1, "one fetch")


def test_descriptor_budget():
    """With RLIMIT_NOFILE at 256, at most 64 bodies take a file; the rest
    stay in ordinary memory and hit just as well."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        raise et.Skip("needs prlimit")
    d = et.mktemp("wrap")
    wrap = os.path.join(d, "edged")
    with open(wrap, "w") as f:
        f.write("#!/bin/sh\nexec %s --nofile=256:256 %s \"$@\"\n"
                % (prlimit, os.path.abspath(et.EDGED)))
    os.chmod(wrap, 0o755)
    size = 70000
    aport, extra = admin_args()
    with et.Origin() as o, et.Edge(o.url, *extra, binary=wrap) as e:
        for i in range(80):
            fill(e, aport, "/obj/b%d?size=%d&ttl=600" % (i, size), i + 1)
        s = cache_stats(aport)
        et.eq(s["sealed_bodies"], 64, "a quarter of 256: %r" % s)
        et.eq(body_files(e.pid), 64, "64 files open")
        for i in range(80):
            hit(e, "/obj/b%d?size=%d&ttl=600" % (i, size), size)


if __name__ == "__main__":
    et.main()
