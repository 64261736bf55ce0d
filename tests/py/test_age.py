#!/usr/bin/env python3
"""Story: the Age an origin (or a cache before it) sends counts once, as
RFC 9111 §5.1 reads it.

Age is a single delta-seconds.  An upstream that sends a list ("Age: 7200,
0") or two Age lines has sent a list-based value: the node takes its first
member, discarding the rest, and ignores the field when that member is not
a number.  The age it stores with the response then shows in the Age of
every hit, and decides freshness: a response that arrives older than its
max-age is stale at once and the next request goes back to the origin.
"""

import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def hit_age(e, path):
    """Fill <path>, then GET it again: the hit's Age in seconds."""
    r = e.request("GET", path)
    et.eq(r.status, 200, "fill status")
    h = e.request("GET", path)
    et.eq(h.status, 200, "hit status")
    et.ok(h.header("cache-status").startswith("edged; hit"),
          "%s: a hit: %s" % (path, h.header("cache-status")))
    return int(h.header("age"))


def test_list_based_age_takes_the_first_member():
    with et.Origin() as o, et.Edge(o.url, "--cache-dir",
                                   et.mktemp("cache") + "/c") as e:
        age = hit_age(e, "/obj/list?size=10&ttl=86400&hdr=Age:7200,%200")
        et.ok(7200 <= age < 7260, "Age: 7200, 0 is 7200 old: %d" % age)
        age = hit_age(e, "/obj/rev?size=10&ttl=86400&hdr=Age:0,%207200")
        et.ok(0 <= age < 60, "Age: 0, 7200 is new: %d" % age)


def test_two_age_lines_take_the_first():
    with et.Origin() as o, et.Edge(o.url, "--cache-dir",
                                   et.mktemp("cache") + "/c") as e:
        age = hit_age(e, "/obj/two?size=10&ttl=86400&hdr=Age:100"
                      "&hdr=Age:7200")
        et.ok(100 <= age < 160, "the first line's 100, not 7200: %d" % age)


def test_invalid_first_member_is_ignored():
    with et.Origin() as o, et.Edge(o.url, "--cache-dir",
                                   et.mktemp("cache") + "/c") as e:
        age = hit_age(e, "/obj/bad?size=10&ttl=86400&hdr=Age:soon,%207200")
        et.ok(0 <= age < 60, "an invalid Age counts as none: %d" % age)


def test_age_past_max_age_is_stale_on_arrival():
    path = "/obj/old?size=10&ttl=3600&hdr=Age:7200,%200"
    with et.Origin() as o, et.Edge(o.url, "--cache-dir",
                                   et.mktemp("cache") + "/c") as e:
        for _ in range(2):
            r = e.request("GET", path)
            et.eq(r.status, 200, "status")
            et.ok("hit" not in r.header("cache-status"),
                  "older than its max-age: not a fresh hit: %s"
                  % r.header("cache-status"))
        et.eq(o.count("/obj/old"), 2, "each request went to the origin")


if __name__ == "__main__":
    et.main()
