#!/usr/bin/env python3
"""Story: CDN-Cache-Control is a Structured Field, and a broken one is
ignored whole.

An origin tells browsers one thing in Cache-Control and this node another
in CDN-Cache-Control (RFC 9213).  The targeted field is an RFC 8941
Dictionary: when it parses and its directives have the types RFC 9213
infers, it rules; when it does not (max-age="600", junk, a bad
parameter), the node behaves as if it were absent and Cache-Control
rules, instead of honouring half of it.
"""

import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def twice(e, path):
    """GET <path> twice; the second response's Cache-Status."""
    for _ in range(2):
        r = e.request("GET", path)
        et.eq(r.status, 200, "status of " + path)
    return r.header("cache-status")


def edge(o):
    return et.Edge(o.url, "--cache-dir", et.mktemp("cache") + "/c")


def test_valid_field_rules_over_cache_control():
    path = ("/obj/ok?size=10&hdr=Cache-Control:no-store"
            "&hdr=CDN-Cache-Control:max-age=600;foo=bar")
    with et.Origin() as o, edge(o) as e:
        st = twice(e, path)
        et.ok(st.startswith("edged; hit"), "stored for 600 s: %s" % st)
        et.eq(o.count("/obj/ok"), 1, "one origin fetch")


def test_string_max_age_makes_cache_control_rule():
    path = ("/obj/str?size=10&hdr=Cache-Control:no-store"
            "&hdr=CDN-Cache-Control:max-age=%22600%22")
    with et.Origin() as o, edge(o) as e:
        st = twice(e, path)
        et.ok("hit" not in st, "Cache-Control's no-store rules: %s" % st)
        et.eq(o.count("/obj/str"), 2, "each request went to the origin")


def test_junk_member_drops_the_whole_field():
    path = ("/obj/junk?size=10&hdr=Cache-Control:max-age=600"
            "&hdr=CDN-Cache-Control:no-store,%20%26%26%26")
    with et.Origin() as o, edge(o) as e:
        st = twice(e, path)
        et.ok(st.startswith("edged; hit"),
              "its no-store is not half-honoured: %s" % st)
        et.eq(o.count("/obj/junk"), 1, "one origin fetch")


def test_parameter_error_drops_the_whole_field():
    path = ("/obj/param?size=10&hdr=Cache-Control:max-age=600"
            "&hdr=CDN-Cache-Control:private;Q=1")
    with et.Origin() as o, edge(o) as e:
        st = twice(e, path)
        et.ok(st.startswith("edged; hit"), "Cache-Control rules: %s" % st)


if __name__ == "__main__":
    et.main()
