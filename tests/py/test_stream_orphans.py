"""Chunks that a stream left behind when edged died are never served as a
later object's, and their space comes back.

A large body is streamed to the store chunk by chunk, each chunk committed
on its own and the record last.  kill -9 between the two leaves chunks
under the key with no record: orphans.  A later object stored under that
key with no record there skips the delete of the old one (a new key costs
no lookup), so it must neither read an orphan nor keep one for good: every
chunk it reads is written with its record, and its own delete sweeps all
chunks under the key.

The story: edged streams a 4 MiB body that pauses after 3 MiB and is
killed with 12 chunks committed.  The next edged (with a memory tier large
enough that the next object is written whole, not streamed) fills the same
URL from another origin: a 600 KiB body of other bytes (3 chunks).  A
third edged serves it from disk (the memory tier is empty): the new bytes.
Once it expires and is refilled, the old object's delete sweeps the key,
and the store's space is back to that of one small object."""
import json
import random
import socket
import sys
import time

sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402

PATH = "/obj/orphan?size=4194304&pause_after=3145728&pause_ms=30000&ttl=300"
STREAMED = 3 * 1024 * 1024
SMALL_MEM = ["--memory-size", "16M"]  # admits 128 KiB: 4 MiB is streamed
BIG_MEM = ["--memory-size", "256M"]  # admits 2 MiB: 600 KiB is not
NEW_LEN = 600 * 1024
TTL = 6  # the new object's: long enough for one restart


def admin_args():
    port = et.free_port()
    return port, ["--admin-listen", "127.0.0.1:%d" % port]


def store_bytes(port):
    with et.Client(port) as c:
        r = c.request("GET", "/stats")
        et.eq(r.status, 200, "stats status")
        return json.loads(r.body)["cache"]


def new_origin(body, ttl):
    head = ("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
            "Cache-Control: public, max-age=%d\r\nConnection: close\r\n\r\n"
            % (len(body), ttl)).encode()
    return et.RawOrigin(head + body)


@et.timeout(120)
def test_orphan_chunks_are_not_served_and_their_space_comes_back():
    d = et.mktemp("orphans") + "/c"
    new_body = random.Random(7).randbytes(NEW_LEN)

    with et.Origin() as o:
        port, extra = admin_args()
        e = et.Edge(o.url, "--cache-dir", d, *SMALL_MEM, *extra)
        try:
            empty = store_bytes(port)["bytes"]
            s = socket.create_connection(("127.0.0.1", e.port), timeout=10)
            s.sendall(et.build_request("GET", PATH))
            deadline = time.monotonic() + 30
            s.settimeout(0.2)
            while store_bytes(port)["bytes"] < empty + STREAMED * 9 // 10:
                et.ok(time.monotonic() < deadline,
                      "the stream's chunks committed")
                try:
                    s.recv(1 << 20)  # the client keeps reading
                except socket.timeout:
                    pass
            et.ok(store_bytes(port)["objects"] == 0, "no record yet")
        finally:
            e.kill()
        s.close()

    with new_origin(new_body, TTL) as ro:
        port, extra = admin_args()
        with et.Edge(ro.url, "--cache-dir", d, *BIG_MEM, *extra) as e:
            orphaned = store_bytes(port)["bytes"]
            et.ok(orphaned >= empty + STREAMED * 9 // 10,
                  "the orphans survived kill -9: %d bytes, %d empty"
                  % (orphaned, empty))
            r = e.request("GET", PATH)
            filled = time.monotonic()
            et.eq(r.status, 200, "status")
            et.ok(r.body == new_body, "the new body from the origin")
            et.wait_for(lambda: store_bytes(port)["objects"] == 1,
                        timeout=10, what="the new object stored")

    with new_origin(new_body[:1000], 300) as ro:
        port, extra = admin_args()
        with et.Edge(ro.url, "--cache-dir", d, *BIG_MEM, *extra) as e:
            r = e.request("GET", PATH)
            et.eq(r.status, 200, "status")
            et.ok(time.monotonic() - filled < TTL, "read before it expired")
            et.ok(r.header("cache-status").startswith("edged; hit"),
                  "a hit from disk: %s" % r.header("cache-status"))
            et.eq(len(r.body), NEW_LEN, "the stored length")
            et.ok(r.body == new_body, "the stored bytes, no orphan's")
            et.eq(store_bytes(port)["corrupt"], 0, "no corrupt record")
            et.eq(ro.requests, 0, "no origin request")

            # Expired and refilled with 1000 bytes: the old object's
            # delete sweeps every chunk under the key, the orphans too.
            time.sleep(max(0.0, filled + TTL + 1 - time.monotonic()))
            e.request("GET", PATH)

            et.wait_for(lambda: ro.requests == 1 and
                        store_bytes(port)["puts"] == 1,
                        timeout=10, what="the refill stored")
            c = store_bytes(port)
            et.eq(c["objects"], 1, "objects")
            et.ok(c["bytes"] < empty + 65536,
                  "the space back to one small object: %d bytes, %d empty"
                  % (c["bytes"], empty))
            r = e.request("GET", PATH)
            et.ok(r.body == new_body[:1000], "the refilled body")


if __name__ == "__main__":
    et.main()
