#!/usr/bin/env python3
"""Story: an upgrade keeps the disk cache it finds.

A node upgraded from a binary that wrote store format 1 (every chunk of a
body whole in its own LMDB value, the lru key in lru_pos) opens that cache
directory as it is: it says so once in its log, and serves every object
in it as a hit, without asking the origin, bodies byte for byte (a body
in a few pages, 4 KiB, three streamed chunks, ranges of them).  Objects
it stores now (format 2) sit beside the old ones and both survive a
restart.  purged and edgectl work on the old objects as on new ones: a
URL purge, a tag purge (whose background reclaim deletes the old records
and their chunks), a prefix purge and a soft purge.  Under a small
cache_size, new objects evict the old ones, least recently used first, and
the store's accounting follows.

The cache directory is tests/py/data/store-format1.tar.gz, made by
tests/py/data/make_store_format1.py with edged from before format 2.
"""

import json
import os
import subprocess
import sys
import tarfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "data"))
import make_store_format1 as fmt1  # noqa: E402

FIXTURE = os.path.join(et.TESTS_SRCDIR, "py", "data", "store-format1.tar.gz")


def old_cache():
    """A fresh copy of the format-1 cache directory."""
    d = et.mktemp("fmt1")
    with tarfile.open(FIXTURE) as t:
        t.extractall(d)
    return os.path.join(d, "cache")


def targets():
    return [(p, size, fmt1.target(p, size, tag))
            for p, size, tag in fmt1.OBJECTS]


def test_old_objects_are_hits():
    cache = old_cache()
    with et.Origin() as o, pn.Node(o, cache=cache) as n:
        for p, size, t in targets():
            r = n.get(t)
            et.eq(r.status, 200, p)
            et.ok(pn.cached(r), "%s is a hit (%s)"
                  % (p, r.header("Cache-Status")))
            et.check_pattern(r.body, size)
        et.eq(o.count(), 0, "the origin was not asked")
        big = fmt1.target("/obj/f1/big", 600000, None)
        # A range across the first two chunks, and one in the last.
        r = n.get(big, [("Range", "bytes=262000-262299")])
        et.eq(r.status, 206, "range status")
        et.check_pattern(r.body, 300, 262000)
        r = n.get(big, [("Range", "bytes=-1000")])
        et.eq(r.status, 206, "suffix range status")
        et.check_pattern(r.body, 1000, 599000)
        et.eq(o.count(), 0, "ranges came from the cache")
        log = n.edge.stderr_text()
        et.ok("store format 1: its %d objects are kept" % len(fmt1.OBJECTS)
              in log, "the log says the old objects are kept: %s"
              % log[-2000:])
        et.ok("emptying" not in log, "nothing emptied")
        # New objects beside the old ones.
        for size in (100, 4096, 70000, 400000):
            t = "/obj/new%d?size=%d&ttl=%d" % (size, size, fmt1.TTL)
            et.eq(n.get(t).status, 200, "new %d" % size)
            pn.wait_stored(n, t)
    with et.Origin() as o, pn.Node(o, cache=cache) as n:
        for p, size, t in targets():
            r = n.get(t)
            et.ok(pn.cached(r), "%s after a restart" % p)
            et.check_pattern(r.body, size)
        for size in (100, 4096, 70000, 400000):
            r = n.get("/obj/new%d?size=%d&ttl=%d" % (size, size, fmt1.TTL))
            et.ok(pn.cached(r), "new %d after a restart" % size)
            et.check_pattern(r.body, size)
        et.eq(o.count(), 0, "the origin was not asked after the restart")
        et.ok("store format 1" not in n.edge.stderr_text(),
              "the second start opens format 2")


def test_purges_of_old_objects():
    cache = old_cache()
    t = {p: tt for p, _, tt in targets()}
    with et.Origin() as o, pn.Node(o, cache=cache) as n:
        j = n.purge_ok(target=t["/obj/f1/mid"])
        et.ok(j["items"][0]["matched"] >= 1, "URL purge matched: %s" % j)
        j = n.purge_ok(headers=[("Surrogate-Key", "grp-old")])
        et.eq(j["items"][0]["matched"], 1, "tag purge matched")
        n.purge_ok(method="POST", target="/purge", body={
            "prefixes": ["http://%s/obj/f1/pre/" % pn.HOST]})
        n.purge_ok(target=t["/obj/f1/soft"],
                   headers=[("Purge-Mode", "soft")])
        r = n.get(t["/obj/f1/soft"], [("Cache-Control", "max-stale=600")])
        et.ok(pn.cached(r), "soft-purged old object served stale")
        for p in ("/obj/f1/mid", "/obj/f1/tagged", "/obj/f1/pre/a",
                  "/obj/f1/pre/b", "/obj/f1/soft"):
            r = n.get(t[p])
            et.ok(not pn.cached(r), "%s purged (%s)"
                  % (p, r.header("Cache-Status")))
        for p in ("/obj/f1/small", "/obj/f1/4k", "/obj/f1/big"):
            r = n.get(t[p])
            et.ok(pn.cached(r), "%s untouched" % p)
        et.wait_for(lambda: "reclaim: " in n.edge.stderr_text(), 10.0, 0.1,
                    "purged's reclaim after the tag and prefix purges")
        ctl = pn.edgectl_path()
        if os.access(ctl, os.X_OK):
            env = dict(os.environ,
                       EDGECTL_PURGE_API="http://127.0.0.1:%d" % n.pport,
                       EDGECTL_ADMIN="http://127.0.0.1:%d" % n.aport,
                       EDGECTL_TOKEN_FILE=n.token_file)
            r = subprocess.run([ctl, "--json", "inspect", "http://%s%s" % (
                pn.HOST, t["/obj/f1/4k"])], env=env, capture_output=True,
                timeout=20)
            et.eq(r.returncode, 0, "inspect: %s" % r.stderr)
            v = json.loads(r.stdout)["keys"][0]["variants"]
            et.eq(v[0]["size"], 4096, "edgectl reads an old record")
            r = subprocess.run([ctl, "purge", "--url", "http://%s%s" % (
                pn.HOST, t["/obj/f1/4k"])], env=env, capture_output=True,
                timeout=20)
            et.eq(r.returncode, 0, "edgectl purge: %s" % r.stderr)
            et.ok(not pn.cached(n.get(t["/obj/f1/4k"])),
                  "purged through edgectl")


@et.timeout(120)
def test_old_objects_are_evicted():
    cache = old_cache()
    t = {p: tt for p, _, tt in targets()}
    with et.Origin() as o, pn.Node(o, "--cache-size", "4M",
                                   "--memory-size", "1M", cache=cache) as n:
        # Used just now: the last of the old objects to go.
        et.ok(pn.cached(n.get(t["/obj/f1/4k"])), "the 4 KiB object is a hit")
        for i in range(120):
            r = n.get("/obj/ev%d?size=65536&ttl=300" % i)
            et.eq(r.status, 200, "new object %d" % i)
        et.wait_for(lambda: n.stats()["cache"]["puts"] +
                    n.stats()["cache"]["put_drops"] >= 120, 10.0, 0.05,
                    "every store handled")
        s = n.stats()["cache"]
        et.ok(s["evictions"] > 0, "evictions: %r" % s)
        et.ok(s["bytes"] <= 4 << 20, "accounted bytes within budget: %r" % s)
        et.eq(s["corrupt"], 0, "nothing corrupt")
        gone = [p for p in ("/obj/f1/big", "/obj/f1/mid", "/obj/f1/small")
                if not pn.cached(n.get(t[p]))]
        et.eq(len(gone), 3, "the old objects not used were evicted")
    with et.Origin() as o, pn.Node(o, "--cache-size", "4M",
                                   "--memory-size", "1M", cache=cache) as n:
        s = n.stats()["cache"]
        et.ok(0 < s["objects"] <= 120, "objects after a restart: %r" % s)
        r = n.get("/obj/ev119?size=65536&ttl=300")
        et.ok(pn.cached(r), "the newest object survived the restart")
        et.check_pattern(r.body, 65536)


if __name__ == "__main__":
    et.main()
