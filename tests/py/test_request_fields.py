#!/usr/bin/env python3
"""Story: what of the client's request reaches the origin.

Fields the cache key does not cover, yet that origins commonly reflect
into links, redirects or routing (X-Forwarded-Host, Forwarded,
X-Original-URL, X-HTTP-Method-Override, ...), are dropped before the
origin by default: an origin that echoed one would otherwise store one
client's value for everyone.  The node's own X-Forwarded-For (appended to)
and X-Forwarded-Proto (replaced) still go.  A site's origin_pass_fields
lets named ones through and origin_drop_fields drops more; the other
site keeps the defaults.  docs/origin-request.md is the table.

And RFC 9111 §3.5: a request whose Authorization is removed because its
Connection field names it carries no credentials to the origin, so its
response is stored as any other; with Authorization forwarded it is not.
"""

import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

UNKEYED = ("X-Forwarded-Host", "X-Forwarded-Scheme", "X-Forwarded-Port",
           "Forwarded", "X-Original-URL", "X-Rewrite-URL",
           "X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override")


def origin_saw(e, target, headers, host=None):
    h = dict(headers)
    if host is not None:
        h["Host"] = host
    r = e.request("GET", target, headers=h)
    et.eq(r.status, 200, "GET %s" % target)
    seen = {}
    for n, v in json.loads(r.body)["headers"]:
        seen.setdefault(n.lower(), []).append(v)
    return seen


def client_fields():
    h = {n: "evil.example" for n in UNKEYED}
    h["X-Original-URL"] = "/admin"
    h["X-HTTP-Method-Override"] = "DELETE"
    h["X-Forwarded-For"] = "192.0.2.7"
    h["X-Forwarded-Proto"] = "https"
    h["X-Other"] = "kept"
    h["X-Secret"] = "s"
    return h


def test_unkeyed_fields_dropped_by_default():
    with et.Origin() as o, et.Edge(o.url) as e:
        seen = origin_saw(e, "/echo?a", client_fields())
        for n in UNKEYED:
            et.ok(n.lower() not in seen, "%s does not reach the origin" % n)
        et.eq(seen.get("x-other"), ["kept"], "other fields go through")
        et.eq(seen.get("x-secret"), ["s"], "X-Secret too, by default")
        et.eq(seen.get("x-forwarded-for"), ["192.0.2.7, 127.0.0.1"],
              "the node appends to X-Forwarded-For")
        et.eq(seen.get("x-forwarded-proto"), ["http"],
              "the node sets X-Forwarded-Proto")


def test_per_site_pass_and_drop():
    d = et.mktemp("fields")
    conf = os.path.join(d, "edged.conf")
    with et.Origin() as o:
        with open(conf, "w") as f:
            f.write("site a.example {\n"
                    "\torigin %s\n"
                    "\torigin_pass_fields X-Forwarded-Host forwarded\n"
                    "\torigin_pass_fields X-Forwarded-Port\n"
                    "\torigin_drop_fields X-Secret\n"
                    "}\n"
                    "site b.example {\n"
                    "\torigin %s\n"
                    "}\n" % (o.url, o.url))
        with et.Edge(None, "-c", conf) as e:
            seen = origin_saw(e, "/echo?b", client_fields(), "a.example")
            for n in ("X-Forwarded-Host", "Forwarded", "X-Forwarded-Port"):
                et.eq(seen.get(n.lower()), ["evil.example"],
                      "a.example passes %s" % n)
            for n in ("X-Forwarded-Scheme", "X-Original-URL"):
                et.ok(n.lower() not in seen, "a.example drops %s" % n)
            et.ok("x-secret" not in seen, "a.example drops X-Secret")
            et.eq(seen.get("x-other"), ["kept"], "a.example: X-Other")
            seen = origin_saw(e, "/echo?c", client_fields(), "b.example")
            for n in UNKEYED:
                et.ok(n.lower() not in seen, "b.example drops %s" % n)
            et.eq(seen.get("x-secret"), ["s"], "b.example passes X-Secret")


def test_authorization_named_by_connection_is_no_credential():
    with et.Origin() as o, et.Edge(o.url, "--cache-dir",
                                   et.mktemp("cache") + "/c") as e:
        # Forwarded credentials: RFC 9111 §3.5 forbids storing (no
        # public or s-maxage in the response).
        target = "/obj/auth?size=10&hdr=Cache-Control:max-age%3D300"
        r = e.request("GET", target, headers={"Authorization": "Basic eDp5"})
        et.ok("stored" not in r.header("cache-status"),
              "with credentials: not stored: %s" % r.header("cache-status"))
        r = e.request("GET", target)
        et.ok("hit" not in r.header("cache-status"),
              "nothing stored: %s" % r.header("cache-status"))
        et.eq(o.count("/obj/auth"), 2, "two origin requests")

        # Connection names it: hop-by-hop, so the origin never sees it.
        seen = origin_saw(e, "/echo?conn", {"Authorization": "Basic eDp5",
                                            "Connection": "Authorization"})
        et.ok("authorization" not in seen, "it did not reach the origin")
        target = "/obj/conn?size=10&hdr=Cache-Control:max-age%3D300"
        r = e.request("GET", target, headers={
            "Authorization": "Basic eDp5", "Connection": "Authorization"})
        et.ok("stored" in r.header("cache-status"),
              "without credentials at the origin: stored: %s"
              % r.header("cache-status"))
        r = e.request("GET", target)
        et.ok(r.header("cache-status").startswith("edged; hit"),
              "then a hit: %s" % r.header("cache-status"))
        et.eq(o.count("/obj/conn"), 1, "one origin request")


if __name__ == "__main__":
    et.main()
