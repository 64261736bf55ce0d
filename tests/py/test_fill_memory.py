#!/usr/bin/env python3
"""Story: an origin body larger than the memory edged may still take fails
that one shared fetch, not the node.

A shared fetch keeps the body it is storing in 256 KiB blocks until it is
complete, and the origin decides how many.  edged runs with its address
space capped a little above what it uses (RLIMIT_AS, set on the running
process) and fetches a 256 MiB object that max_object_size allows it to
store: a block allocation fails part way.  The client gets a truncated
transfer, nothing partial is stored (only-if-cached gets 504), edged keeps
running, and once the cap is lifted it serves again and exits cleanly.

glibc is told a fixed mmap threshold, so that every block is its own
mapping and the cap is met by a block rather than by whatever small
allocation comes next, and one arena for all threads: a thread whose first
allocation comes after the cap (the store's writer, which a small put
written through the map leaves without one) would otherwise reserve an
arena of its own, and fail there.
"""

import os
import resource
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

BIG = 256 * 1024 * 1024
HEADROOM = 64 * 1024 * 1024


@et.timeout(90)
def test_fill_out_of_memory_fails_the_fill():
    env = dict(os.environ)
    env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    env["MALLOC_ARENA_MAX"] = "1"
    # Under ASan, a failed allocation must return NULL as libc's does.
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                           ":allocator_may_return_null=1").lstrip(":")
    cache = os.path.join(et.mktemp("fillmem"), "cache")
    with et.Origin() as o, et.Edge(o.url, "--cache-dir", cache,
                                   "--cache-size", "1G",
                                   "--max-object-size", "1G",
                                   env=env) as e:
        et.eq(e.request("GET", "/obj/warm?size=1000&ttl=60").status, 200,
              "a first request (threads and arenas set up)")
        soft, hard = resource.prlimit(e.pid, resource.RLIMIT_AS)
        cap = et.proc_kib(e.pid, "VmSize") * 1024 + HEADROOM
        if hard != resource.RLIM_INFINITY and hard < cap:
            raise et.Skip("RLIMIT_AS hard limit too low")
        resource.prlimit(e.pid, resource.RLIMIT_AS, (cap, hard))
        target = "/obj/big?size=%d&ttl=60" % BIG
        with e.connect() as c:
            c.send(b"GET " + target.encode() +
                   b" HTTP/1.1\r\nHost: x\r\n\r\n")
            r = et.read_response(c, allow_incomplete=True)
        et.ok(e.proc.poll() is None,
              "edged survived: %s" % e.stderr_text()[-300:])
        resource.prlimit(e.pid, resource.RLIMIT_AS, (soft, hard))
        et.eq(r.status, 200, "the head went out before the body")
        et.ok(not r.complete and len(r.body) < BIG,
              "a truncated transfer (%d bytes)" % len(r.body))
        et.check_pattern(r.body, offset=0)
        r = e.request("GET", target,
                      [("Cache-Control", "only-if-cached")])
        et.eq(r.status, 504, "nothing partial was stored")
        r = e.request("GET", "/obj/after?size=5000&ttl=60")
        et.eq(r.status, 200, "serving again")
        et.check_pattern(r.body, 5000)
        e.stop()


if __name__ == "__main__":
    et.main()
