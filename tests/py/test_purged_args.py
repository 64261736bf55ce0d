#!/usr/bin/env python3
"""Story: a node configured with long purge_allow and cache_query_drop
lists hands every entry to the purged it starts.

edged passes its purge settings to purged on the command line.  Thirty
purge_allow lines with loopback last still let a purge from 127.0.0.1
through (the list is not cut, and edged does not abort building it), and
forty cache_query_drop lines make purged build the same keys as the
workers: a purge naming a URL with the last dropped parameter finds the
object stored without it.
"""

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


if __name__ == "__main__":
    et.main()
