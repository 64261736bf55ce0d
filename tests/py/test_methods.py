#!/usr/bin/env python3
"""Story: extension methods go to the origin; refused ones never do.

A method the node has no name for (a valid token: FOO, PROPFIND, ...) is
forwarded to the origin as it came, with its body; the answer is never
stored, and a successful one invalidates the stored responses for the
target, as POST, PUT and DELETE do (RFC 9111 §4.4).  The methods in
refuse_methods (default TRACE, CONNECT and PURGE) get 501 from the node
and the connection closes; CONNECT always does.  A refused PURGE, a
Varnish habit, gets 405 instead, with Allow and a body that says where
purges go (the purge listener, not this port), and the connection stays
open.
"""

import json
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def edge(o, *args):
    return et.Edge(o.url, "--cache-dir", et.mktemp("cache") + "/c", *args)


def test_extension_method_forwarded_not_stored():
    with et.Origin() as o, edge(o) as e:
        for i in range(2):
            r = e.request("FOO", "/echo?x", body=b"abc",
                          headers={"Content-Type": "text/plain"})
            et.eq(r.status, 200, "FOO reaches the origin")
            j = json.loads(r.body)
            et.eq(j["method"], "FOO", "as FOO")
            et.eq(j["body_length"], 3, "with its body")
            et.ok("stored" not in r.header("cache-status") and
                  "hit" not in r.header("cache-status"),
                  "never stored: %s" % r.header("cache-status"))
        # A body that reads as a request is the body, never a second one.
        smuggled = b"GET /obj/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        for framing in ({"Content-Length": str(len(smuggled))},
                        {"Transfer-Encoding": "chunked"}):
            body = smuggled if "Content-Length" in framing else (
                b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled))
            data = et.raw_request(e.port, b"FOO /echo?s HTTP/1.1\r\nHost: x"
                                  b"\r\n" + b"".join(
                                      b"%s: %s\r\n" % (k.encode(), v.encode())
                                      for k, v in framing.items()) +
                                  b"Connection: close\r\n\r\n" + body, 5).data
            et.ok(data.startswith(b"HTTP/1.1 200") and
                  b'"body_length": %d' % len(smuggled) in data,
                  "FOO with %r: its body: %r" % (framing, data[:300]))
        et.eq(o.count("/obj/smuggled"), 0, "no smuggled request")
        r = e.request("PROPFIND", "/obj/p?size=10&ttl=300")
        et.eq(r.status, 200, "PROPFIND too")
        r = e.request("PROPFIND", "/obj/p?size=10&ttl=300")
        et.ok("hit" not in r.header("cache-status"),
              "an extension method is never a hit: %s"
              % r.header("cache-status"))
        et.eq(o.count("/obj/p"), 2, "both went to the origin")


def test_extension_method_invalidates():
    with et.Origin() as o, edge(o) as e:
        t = "/obj/inv?size=10&ttl=300"
        e.request("GET", t)
        r = e.request("GET", t)
        et.ok(r.header("cache-status").startswith("edged; hit"), "stored")
        r = e.request("FOO", t)
        et.eq(r.status, 200, "FOO succeeded")
        r = e.request("GET", t)
        et.ok("hit" not in r.header("cache-status"),
              "FOO invalidated the stored response: %s"
              % r.header("cache-status"))
        et.eq(o.count("/obj/inv"), 3, "GET, FOO, GET at the origin")


def test_keys_short_and_long_are_stored_and_invalidated():
    """A key's URL is kept in the transaction when it fits its room (256
    bytes) and allocated when longer: keys on each side of that, and a
    long one, are stored, hit, and invalidated by an unsafe method."""
    with et.Origin() as o, edge(o) as e:
        for n in list(range(225, 265)) + [2000]:
            t = "/obj/k%d?size=%d&ttl=300&pad=%s" % (n, n, "p" * n)
            for i in range(2):
                r = e.request("GET", t)
                et.check_pattern(r.body, n)
                if i:
                    et.ok(r.header("cache-status").startswith("edged; hit"),
                          "%d: stored: %s" % (n, r.header("cache-status")))
        t = "/obj/k2000?size=2000&ttl=300&pad=" + "p" * 2000
        et.eq(e.request("FOO", t).status, 200, "FOO succeeded")
        r = e.request("GET", t)
        et.ok("hit" not in r.header("cache-status"),
              "FOO invalidated the long key: %s" % r.header("cache-status"))
        et.eq(o.count("/obj/k2000"), 3, "GET, FOO, GET at the origin")


def refused(e, method, target="/obj/r?size=10"):
    c = e.connect()
    try:
        r = c.request(method, target)
        et.eq(r.status, 501, "%s is refused" % method)
        et.ok("detail=method" in r.header("cache-status"),
              "%s: Cache-Status %r" % (method, r.header("cache-status")))
        c.assert_closed(what="the connection after %s" % method)
    finally:
        c.close()


def test_refused_methods():
    with et.Origin() as o, edge(o) as e:
        refused(e, "TRACE")
        refused(e, "CONNECT", "example.com:443")
        refused(e, "X" * 40)
        r = e.request("trace", "/obj/lower?size=10")
        et.eq(r.status, 200, "methods are case-sensitive: trace is not "
              "TRACE")
        et.eq(o.count("/obj/r"), 0, "nothing refused reached the origin")


def test_purge_points_to_the_purge_listener():
    with et.Origin() as o, edge(o) as e, e.connect() as c:
        r = c.request("PURGE", "/obj/r?size=10")
        et.eq(r.status, 405, "PURGE on the edge's port")
        et.ok("PURGE" not in r.header("allow") and
              "GET" in r.header("allow"), "Allow: %r" % r.header("allow"))
        et.ok(b"purge_listen" in r.body and b"edgectl purge" in r.body,
              "the body says where purges go: %r" % r.body)
        et.ok("detail=method" in r.header("cache-status"), "Cache-Status")
        r = c.request("GET", "/obj/r?size=10")
        et.eq(r.status, 200, "the connection goes on")
        et.eq(o.count("/obj/r"), 1, "the PURGE never reached the origin")


def test_refuse_methods_configured():
    with et.Origin() as o, edge(o, "--refuse-methods", "FOO BAR") as e:
        refused(e, "FOO")
        refused(e, "BAR")
        refused(e, "CONNECT", "example.com:443")
        r = e.request("TRACE", "/echo?t")
        et.eq(r.status, 200, "TRACE is forwarded when not refused")
        et.eq(json.loads(r.body)["method"], "TRACE", "as TRACE")


if __name__ == "__main__":
    et.main()
