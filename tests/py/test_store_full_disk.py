#!/usr/bin/env python3
"""Story: the store, written through its map, on a disk that fills up.

edged writes data.mdb through its memory map (MDB_WRITEMAP), where a page
written into a hole of the file on a full disk would fault (SIGBUS) rather
than fail.  It keeps the file reserved (fallocate) ahead of what each
write transaction can reach, so on a full disk a write is refused and the
objects are not stored, as with pwrite: edged stays up, says why once,
serves every response, and stores again once there is room.

The small disk is a tmpfs of TMPFS_MIB mounted in a user and mount
namespace of edged's own (unshare -rm), far below cache_size; the test is
skipped where unprivileged namespaces are not allowed.  A second test
checks the disk a store takes on an ordinary directory: data.mdb is as long
as the map (cache_size) from the start, with holes, and what it takes, in
allocated blocks, stays within cache_size.
"""

import json
import os
import shutil
import stat
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

MIB = 1 << 20
TMPFS_MIB = 8
CACHE_SIZE = 64 * MIB
BODY = 256 * 1024
TTL = "ttl=300"
FULL = "disk writes failing: disk full"
FS_META_DIV = 256


def namespaces_work():
    if shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "-rm", "true"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    return r.returncode == 0


def stats(port):
    with et.Client(port) as c:
        r = c.request("GET", "/stats")
        et.eq(r.status, 200, "stats status")
        return json.loads(r.body)["cache"]


def fill(e, name):
    r = e.request("GET", "/obj/%s?size=%d&%s" % (name, BODY, TTL))
    et.eq(r.status, 200, "fill %s" % name)
    et.check_pattern(r.body, BODY)


@et.timeout(90)
def test_full_disk_refuses_writes_without_a_fault():
    if not namespaces_work():
        raise et.Skip("unprivileged user and mount namespaces not "
                      "available")
    d = et.mktemp("fulldisk")
    cache = os.path.join(d, "disk")
    os.mkdir(cache)
    runner = os.path.join(d, "edged-small-disk")
    with open(runner, "w") as f:
        f.write("#!/bin/sh\nexec unshare -rm sh -c 'mount -t tmpfs -o "
                "size=%dm tmpfs %s && exec %s \"$@\"' edged \"$@\"\n"
                % (TMPFS_MIB, cache, et.EDGED))
    os.chmod(runner, stat.S_IRWXU)
    port = et.free_port()
    with et.Origin() as o, et.Edge(o.url, "--cache-dir",
                                   os.path.join(cache, "c"),
                                   "--cache-size", str(CACHE_SIZE),
                                   "--memory-size", "0",
                                   "--admin-listen", "127.0.0.1:%d" % port,
                                   binary=runner) as e:
        # Four times the disk: the writes must start failing.
        n = 4 * TMPFS_MIB * MIB // BODY
        for i in range(n):
            fill(e, "f%d" % i)
        et.wait_for(lambda: FULL in e.stderr_text(), 10, 0.05,
                    "the disk full line")
        st = stats(port)
        et.ok(st["put_drops"] > 0, "puts dropped (%d)" % st["put_drops"])
        et.ok(st["objects"] > 0, "some stored before (%d)" % st["objects"])
        # Still up and serving, misses and what it stored.
        for i in range(8):
            fill(e, "g%d" % i)
        et.ok("without its map" not in e.stderr_text(),
              "written through its map")
        et.ok("reached page" not in e.stderr_text(),
              "no commit past its reservation")
        # A fault would have ended it; stop() checks a clean exit.
        e.stop()


@et.timeout(60)
def test_disk_taken_within_cache_size():
    d = et.mktemp("diskuse")
    cache = os.path.join(d, "cache")
    size = 16 * MIB
    with et.Origin() as o, et.Edge(o.url, "--cache-dir", cache,
                                   "--cache-size", str(size),
                                   "--memory-size", "0") as e:
        # Written through its map: as long as the map, holding little.
        data = os.path.join(cache, "data.mdb")
        st = os.stat(data)
        et.eq(st.st_size, size, "data.mdb is as long as cache_size")
        et.ok(st.st_blocks * 512 < size // 2,
              "an empty store takes little on disk (%d bytes)"
              % (st.st_blocks * 512))
        # Twice cache_size: eviction keeps the store within it.
        for i in range(2 * size // BODY):
            fill(e, "u%d" % i)
        et.wait_for(lambda: os.stat(data).st_blocks > 0, 5, 0.05,
                    "data.mdb written")
        # st_blocks also counts the file system's own blocks for the
        # file (ext4's extent tree): a 256th more is allowed for those.
        used = os.stat(data).st_blocks * 512
        et.ok(used <= size + size // FS_META_DIV,
              "data.mdb takes %d bytes on disk, within %d" % (used, size))
        e.stop()


if __name__ == "__main__":
    et.main()
