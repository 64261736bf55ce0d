#!/usr/bin/env python3
"""Makes store-format1.tar.gz, the cache directory test_store_format1.py
opens: run once with EDGED naming an edged built from a commit before
store format 2 (for example eaad086), from the tests/py
directory:

    EDGED=/path/to/old/edged python3 data/make_store_format1.py

Every object it stores is fresh for ten years (ttl), so the test finds
them fresh.  OBJECTS lists them; the test imports it.
"""

import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import edgetest as et  # noqa: E402

TTL = 10 * 365 * 86400
# (path, size, tag): a body in one page, one of 4 KiB, a few pages, three
# chunks (streamed to LMDB), and objects for tag, prefix and soft purges.
OBJECTS = [
    ("/obj/f1/small", 300, None),
    ("/obj/f1/4k", 4096, None),
    ("/obj/f1/mid", 20000, None),
    ("/obj/f1/big", 600000, None),
    ("/obj/f1/tagged", 5000, "grp-old"),
    ("/obj/f1/pre/a", 7000, None),
    ("/obj/f1/pre/b", 9000, None),
    ("/obj/f1/soft", 3000, None),
]


def target(path, size, tag):
    t = "%s?size=%d&ttl=%d" % (path, size, TTL)
    if tag:
        t += "&hdr=Surrogate-Key:%s" % tag
    return t


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "store-format1.tar.gz")
    with et.Origin() as o:
        d = et.mktemp("fmt1")
        cache = os.path.join(d, "cache")
        with et.Edge(o.url, "--cache-dir", cache, "--memory-size", "0") as e:
            for p, size, tag in OBJECTS:
                r = e.request("GET", target(p, size, tag))
                et.eq(r.status, 200, p)
            for p, size, tag in OBJECTS:
                et.wait_for(lambda: "hit" in (e.request(
                    "GET", target(p, size, tag)).header("Cache-Status")
                    or ""), 5.0, 0.05, p + " stored")
        subprocess.run(["tar", "-C", d, "-czf", out, "cache/data.mdb"],
                       check=True)
    print(out)


if __name__ == "__main__":
    main()
