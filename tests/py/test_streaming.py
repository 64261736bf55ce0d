#!/usr/bin/env python3
"""Story: edged streams; it never holds a whole body.

A 1 GiB origin response goes through edged to a client that first reads
slowly (about 2 s of small reads) and then as fast as it can.  The first
bytes arrive well within a second, edged's RSS grows by less than 64 MiB at
any point (so it pushes back on the origin instead of buffering), and every
one of the 2^30 bytes arrives, in order, checked against the pattern.  A
client that goes away mid-transfer costs nothing lasting, and a slow client
does not hold up others.
"""

import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

SIZE = 1 << 30
RSS_LIMIT_KIB = 64 * 1024

# Under AddressSanitizer freed memory sits in a quarantine (256 MiB by
# default) and would count as growth here: keep it small for this story.
ASAN_ENV = {"ASAN_OPTIONS": ":".join(filter(None, [
    os.environ.get("ASAN_OPTIONS", ""),
    "quarantine_size_mb=8", "thread_local_quarantine_size_kb=256"]))}


class BodyCheck:
    """Receives a body into 64 KiB blocks and compares each one with the
    pattern as it completes."""

    def __init__(self, reader):
        self.reader = reader
        self.sock = reader.sock
        self.buf = bytearray(et.BLOCK)
        self.view = memoryview(self.buf)
        self.fill = 0
        self.block = 0
        self.total = 0

    def _put(self, data):
        while data:
            n = min(len(data), et.BLOCK - self.fill)
            self.buf[self.fill:self.fill + n] = data[:n]
            self.fill += n
            self.total += n
            data = data[n:]
            self._check_full()

    def _check_full(self):
        if self.fill == et.BLOCK:
            if self.buf != et.pattern_block(self.block):
                self._fail(et.BLOCK)
            self.block += 1
            self.fill = 0

    def _fail(self, n):
        want = et.pattern_block(self.block)
        i = next(i for i in range(n) if self.buf[i] != want[i])
        raise AssertionError("body differs from the pattern at byte %d"
                             % (self.block * et.BLOCK + i))

    def start(self):
        """Take what the reader already buffered after the head."""
        self._put(bytes(self.reader.buf))
        self.reader.buf.clear()

    def recv(self, max_bytes):
        """One recv of up to max_bytes; returns the count (0 at EOF)."""
        want = min(max_bytes, et.BLOCK - self.fill)
        n = self.sock.recv_into(self.view[self.fill:self.fill + want])
        self.fill += n
        self.total += n
        self._check_full()
        return n

    def finish(self):
        if self.fill and self.buf[:self.fill] != \
                et.pattern_block(self.block)[:self.fill]:
            self._fail(self.fill)


@et.timeout(120)
def test_1gib_slow_then_fast():
    with et.Origin() as o, et.Edge(o.url, env=ASAN_ENV) as e:
        et.check_pattern(e.request("GET", "/obj/warm?size=4194304").body,
                         4 << 20)
        base = e.rss_kib()
        peak = base
        c = e.connect(timeout=30)
        t0 = time.monotonic()
        c.send(et.build_request("GET", "/obj/big?size=%d" % SIZE))
        r = c.read_response(read_body=False)
        et.eq((r.status, r.header("Content-Length")), (200, str(SIZE)),
              "head")
        body = BodyCheck(c.reader)
        body.start()
        while body.total == 0:
            body.recv(4096)
        ttfb = time.monotonic() - t0
        et.ok(ttfb < 1.0, "first body byte after %.2f s" % ttfb)

        # slow phase: ~2 s of 4 KiB reads 10 ms apart
        slow_end = time.monotonic() + 2.0
        other_done = False
        while time.monotonic() < slow_end:
            et.ok(body.recv(4096) > 0, "EOF in the slow phase")
            time.sleep(0.01)
            peak = max(peak, e.rss_kib())
            if not other_done and time.monotonic() > slow_end - 1.5:
                t1 = time.monotonic()
                r2 = e.request("GET", "/obj/other?size=100000")
                et.check_pattern(r2.body, 100000)
                et.ok(time.monotonic() - t1 < 1.0, "a second client is "
                      "served while the first one reads slowly")
                other_done = True
        slow_bytes = body.total
        et.ok(peak - base < RSS_LIMIT_KIB, "RSS grew by %d KiB while the "
              "client read slowly (limit %d)" % (peak - base, RSS_LIMIT_KIB))

        # fast phase
        next_sample = time.monotonic()
        t_fast = time.monotonic()
        while body.total < SIZE:
            if body.recv(et.BLOCK) == 0:
                break
            if time.monotonic() >= next_sample:
                peak = max(peak, e.rss_kib())
                next_sample = time.monotonic() + 0.1
        body.finish()
        dt = time.monotonic() - t_fast
        et.eq(body.total, SIZE, "bytes received")
        et.ok(peak - base < RSS_LIMIT_KIB, "RSS grew by %d KiB during the "
              "transfer (limit %d)" % (peak - base, RSS_LIMIT_KIB))
        print("# slow phase %d KiB, fast phase %.0f MB/s, RSS %d -> peak "
              "%d KiB, first byte after %.3f s"
              % (slow_bytes // 1024, (SIZE - slow_bytes) / dt / 1e6, base,
                 peak, ttfb))
        # the connection is still usable
        et.check_pattern(c.request("GET", "/obj/after?size=10").body, 10)
        c.close()


@et.timeout(60)
def test_client_abort_mid_transfer():
    with et.Origin() as o, et.Edge(o.url, env=ASAN_ENV) as e:
        base = None
        for i in range(3):
            c = e.connect()
            c.send(et.build_request("GET", "/obj/abort%d?size=%d"
                                    % (i, SIZE)))
            r = c.read_response(read_body=False)
            et.eq(r.status, 200, "status")
            got = len(c.reader.buf)
            while got < (32 << 20):
                d = c.sock.recv(et.BLOCK)
                et.ok(d, "EOF before 32 MiB")
                got += len(d)
            c.close()
            r = e.request("GET", "/obj/after%d?size=1000" % i)
            et.check_pattern(r.body, 1000)
            if base is None:
                base = e.rss_kib()
        time.sleep(0.5)
        grown = e.rss_kib() - base
        et.ok(grown < RSS_LIMIT_KIB, "RSS grew by %d KiB over aborted "
              "transfers" % grown)


if __name__ == "__main__":
    et.main()
