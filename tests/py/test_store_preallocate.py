#!/usr/bin/env python3
"""Story: a store reserved whole at start (cache_preallocate 1).

With the option, data.mdb is as long as cache_size from the start and
every byte of it is allocated, and the store is written through its memory
map.  Objects are stored and served from it as without the option, purged
(edged's child, opening the same store the same way) purges them, and they
survive a restart, with the option and without it: the file is the same
LMDB store.  Where the file cannot be reserved (here a file size limit
below cache_size) edged says so once and stores as without the option,
rather than writing into a file with holes, where a full disk would fault.
"""

import os
import stat
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402

MIB = 1 << 20
SIZE = 64 * MIB
TTL = "ttl=300"
WARNING = "cache_preallocate: cannot reserve"


def data_file(cache):
    return os.stat(os.path.join(cache, "data.mdb"))


def test_reserved_stored_purged_and_kept():
    d = et.mktemp("prealloc")
    cache = os.path.join(d, "cache")
    with et.Origin() as o:
        with pn.Node(o, "--cache-size", str(SIZE), "--memory-size", "0",
                     "--cache-preallocate", "1", cache=cache) as n:
            st = data_file(cache)
            et.eq(st.st_size, SIZE, "data.mdb is as long as cache_size")
            et.ok(st.st_blocks * 512 >= SIZE,
                  "all of it allocated (%d blocks)" % st.st_blocks)
            for p in ("/obj/a?size=3000&" + TTL, "/obj/b?size=70000&" + TTL):
                r = n.get(p)
                et.eq(r.status, 200, "fill %s" % p)
            pn.wait_disk(n, 2)
            # memory_size 0: a hit is read from the mapped file.
            r = n.get("/obj/b?size=70000&" + TTL)
            et.ok(pn.cached(r), "hit from disk (%s)"
                  % r.header("Cache-Status"))
            et.check_pattern(r.body, 70000)
            n.purge_ok(target="/obj/a?size=3000&" + TTL)
            r = n.get("/obj/a?size=3000&" + TTL)
            et.ok(not pn.cached(r), "purged by purged on the same store")
            et.ok(WARNING not in n.edge.stderr_text(), "no warning")
            n.stop()
        et.eq(data_file(cache).st_size, SIZE, "still cache_size long")
        for extra in (["--cache-preallocate", "1"], []):
            with et.Edge(o.url, "--cache-dir", cache, "--cache-size",
                         str(SIZE), "--memory-size", "0", *extra) as e:
                r = e.request("GET", "/obj/b?size=70000&" + TTL)
                et.ok(pn.cached(r), "kept across a restart %s (%s)"
                      % (extra, r.header("Cache-Status")))
                et.check_pattern(r.body, 70000)
                e.stop()


def test_file_size_limit_stores_without_the_map():
    d = et.mktemp("prealloc-limit")
    cache = os.path.join(d, "cache")
    wrapper = os.path.join(d, "edged-fsize")
    # 16 MiB (ulimit -f counts 1 KiB blocks in bash): data.mdb cannot be
    # made cache_size long.
    with open(wrapper, "w") as f:
        f.write("#!/bin/bash\nulimit -f 16384\nexec %s \"$@\"\n" % et.EDGED)
    os.chmod(wrapper, stat.S_IRWXU)
    with et.Origin() as o, et.Edge(o.url, "--cache-dir", cache,
                                   "--cache-size", str(SIZE),
                                   "--memory-size", "0",
                                   "--cache-preallocate", "1",
                                   binary=wrapper) as e:
        et.wait_for(lambda: WARNING in e.stderr_text(), 5, 0.05,
                    "the warning")
        et.eq(e.stderr_text().count(WARNING), 1, "said once")
        et.ok(data_file(cache).st_size < SIZE, "data.mdb not reserved")
        p = "/obj/c?size=5000&" + TTL
        et.eq(e.request("GET", p).status, 200, "fill")
        et.wait_for(lambda: pn.cached(e.request("GET", p)), 5, 0.05,
                    "stored without the map")
        e.stop()


if __name__ == "__main__":
    et.main()
