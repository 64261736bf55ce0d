#!/usr/bin/env python3
"""Story: a node configured with long purge_allow and cache_query_drop
lists hands every entry to the purged it starts.

edged hands purged its whole configuration (its checked --dump-config, on
an inherited descriptor).  Thirty purge_allow lines with loopback last
still let a purge from 127.0.0.1 through (the list is not cut, and edged
does not abort handing it over), and forty cache_query_drop lines make
purged build the same keys as the workers: a purge naming a URL with the
last dropped parameter finds the object stored without it.  A value that
could not go over whole (longer than a config-file line) stops edged at
start, saying why, rather than reaching purged cut.
"""

import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402

TTL = "size=64&ttl=300"


def test_long_allow_list_reaches_purged():
    allow = ["10.%d.0.0/16" % i for i in range(30)] + ["loopback"]
    with et.Origin() as o, pn.Node(o, allow=allow) as n:
        p = "/obj/allow?%s" % TTL
        n.get(p)
        pn.wait_stored(n, p)
        pn.wait_disk(n, 1)
        j = n.purge_ok(target=p)
        et.eq(j["matched"], 1, "the loopback client purged the object")
        et.ok(not pn.cached(n.get(p)), "purged")


def test_long_query_drop_list_reaches_purged():
    drop = []
    for i in range(40):
        drop += ["--cache-query-drop", "z%d" % i]
    with et.Origin() as o, pn.Node(o, *drop) as n:
        p = "/obj/drop?%s&z39=1" % TTL
        n.get(p)
        pn.wait_stored(n, p)
        pn.wait_disk(n, 1)
        # Another value of the last dropped parameter: the same key.
        j = n.purge_ok(target="/obj/drop?%s&z39=2" % TTL)
        et.eq(j["matched"], 1, "purged keys drop z39 as the workers do")
        et.ok(not pn.cached(n.get(p)), "purged")


def test_value_that_cannot_go_over_stops_edged():
    d = et.mktemp("pargs")
    tok = pn.token_file(d)
    with et.Origin() as o:
        r = subprocess.run(
            [et.EDGED, "--listen", "127.0.0.1:%d" % et.free_port(),
             "--origin", o.url, "--cache-dir", os.path.join(d, "cache"),
             "--purge-listen", "127.0.0.1:%d" % et.free_port(),
             "--purge-token-file", tok,
             "--cache-query-drop", "z" * 5000],
            capture_output=True, timeout=20)
    et.ok(r.returncode != 0, "edged does not start (%d)" % r.returncode)
    et.ok(b"line too long" in r.stderr and
          b"cannot be handed to purged" in r.stderr,
          "and says why: %s" % r.stderr[-600:])


if __name__ == "__main__":
    et.main()
