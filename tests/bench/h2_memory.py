"""Bytes of edged's memory per idle HTTP/2 connection and per open stream.

    EDGED=./edged TESTS_SRCDIR=./tests /usr/bin/python3 tests/bench/h2_memory.py

Opens N idle connections on a listen_h2c port (preface and SETTINGS
exchanged), then S streams held open by an origin that answers late, and
prints edged's RSS growth divided by each.  RSS is coarse (pages,
allocator arenas): the figures are an upper bound, not an exact size.
"""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "py"))
import h2raw  # noqa: E402

h2raw.need_h2()
import edgetest as et  # noqa: E402

CONNS = 1000
STREAM_CONNS, STREAMS = 20, 100


def settle(e):
    time.sleep(0.5)
    return e.rss_kib()


def main():
    with et.Origin() as o:
        port = et.free_port()
        with et.Edge(o.url, "--listen-h2c", "127.0.0.1:%d" % port,
                     threads=1) as e:
            # Warm up: one connection and one stream of each kind first.
            with h2raw.Conn(port) as c:
                c.response(c.request("/obj/w?size=10"))
            base = settle(e)
            idle = [h2raw.Conn(port) for _ in range(CONNS)]
            for c in idle:
                c.read_frame(5)  # our SETTINGS: the session exists
            grown = settle(e)
            per_conn = (grown - base) * 1024 / CONNS
            busy = [h2raw.Conn(port) for _ in range(STREAM_CONNS)]
            for c in busy:
                c.read_frame(5)
            before = settle(e)
            for c in busy:
                for i in range(STREAMS):
                    c.request("/obj/s%d?size=10&delay_ms=8000" % i)
            et.wait_for(lambda: o.count() >= STREAM_CONNS * STREAMS, 20,
                        what="every stream at the origin")
            after = settle(e)
            per_stream = (after - before) * 1024 / (STREAM_CONNS * STREAMS)
            print("idle h2 connection: %.0f bytes (%d connections, RSS "
                  "%d -> %d KiB)" % (per_conn, CONNS, base, grown))
            print("open stream (waiting on the origin): %.0f bytes (%d "
                  "streams, RSS %d -> %d KiB)" % (
                      per_stream, STREAM_CONNS * STREAMS, before, after))
            for c in idle + busy:
                c.close()


if __name__ == "__main__":
    main()
