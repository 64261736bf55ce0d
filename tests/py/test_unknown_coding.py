#!/usr/bin/env python3
"""Story: a response in a content coding the node does not know is stored
as it came and served as it came.

The origin sends "Content-Encoding: zstd" (or deflate, or a list of
codings): the node cannot decode or recode those bytes, and does not need
to: it stores them opaque, under the coding's own variant, and serves them
byte for byte, with the origin's Content-Encoding and Vary:
Accept-Encoding, to every client whose Accept-Encoding does not refuse the
coding (RFC 9110 §12.5.3: no Accept-Encoding at all, the coding named with
q > 0, or "*" with q > 0).  A client that refuses it goes to the origin,
which may have another representation for it.  No gzip or br variants are
made of such a response, and concurrent clients that take the coding
share one origin fetch.
"""

import json
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def admin_args():
    port = et.free_port()
    return port, ["--admin-listen", "127.0.0.1:%d" % port]


def variants(port):
    with et.Client(port) as c:
        r = c.request("GET", "/stats")
        et.eq(r.status, 200, "stats status")
        return json.loads(r.body)["cache"]["variants"]


def get(e, path, ae=None):
    h = {} if ae is None else {"Accept-Encoding": ae}
    r = e.request("GET", path, headers=h)
    et.eq(r.status, 200, "status of %s (AE %r)" % (path, ae))
    return r


def edge(o, *args):
    return et.Edge(o.url, "--cache-dir", et.mktemp("cache") + "/c", *args)


def test_stored_and_served_as_it_came():
    path = "/text/z?size=20000&ttl=300&hdr=Content-Encoding:zstd"
    port, extra = admin_args()
    with et.Origin() as o, edge(o, *extra) as e:
        first = get(e, path, "zstd, gzip")
        et.eq(first.header("content-encoding"), "zstd", "the origin's coding")
        et.ok("stored" in first.header("cache-status"),
              "stored: %s" % first.header("cache-status"))
        et.ok("accept-encoding" in first.tokens("vary"),
              "Vary: Accept-Encoding: %r" % first.header("vary"))
        for ae in ("zstd", "gzip;q=0.5, zstd", "*", None, "ZSTD;q=0.1"):
            r = get(e, path, ae)
            et.ok(r.header("cache-status").startswith("edged; hit"),
                  "AE %r: a hit: %s" % (ae, r.header("cache-status")))
            et.eq(r.header("content-encoding"), "zstd", "AE %r: zstd" % ae)
            et.eq(r.body, first.body, "AE %r: the origin's bytes" % ae)
            et.ok("accept-encoding" in r.tokens("vary"),
                  "AE %r: Vary: %r" % (ae, r.header("vary")))
        et.eq(o.count("/text/z"), 1, "one origin request")
        et.eq(variants(port)["made"], 0, "no variants of an opaque body")


def test_a_client_that_refuses_it_goes_to_the_origin():
    path = "/text/r?size=5000&ttl=300&hdr=Content-Encoding:zstd"
    with et.Origin() as o, edge(o) as e:
        get(e, path, "zstd")
        for ae in ("gzip, br", "zstd;q=0, gzip", "*;q=0, identity", "",
                   "*, zstd;q=0"):
            r = get(e, path, ae)
            et.ok("hit" not in r.header("cache-status"),
                  "AE %r refuses zstd: not a hit: %s"
                  % (ae, r.header("cache-status")))
        et.eq(o.count("/text/r"), 6, "each refusing client fetched")
        r = get(e, path, "zstd")
        et.ok(r.header("cache-status").startswith("edged; hit"),
              "a client that takes it still hits: %s"
              % r.header("cache-status"))


def test_a_list_of_codings_needs_each_one():
    path = "/text/l?size=5000&ttl=300&hdr=Content-Encoding:gzip,%20zstd"
    with et.Origin() as o, edge(o) as e:
        first = get(e, path, "gzip, zstd")
        et.eq(first.header("content-encoding"), "gzip, zstd", "as it came")
        r = get(e, path, "zstd, gzip;q=0.3")
        et.ok(r.header("cache-status").startswith("edged; hit"),
              "both taken: a hit: %s" % r.header("cache-status"))
        et.eq(r.body, first.body, "the origin's bytes")
        r = get(e, path, "gzip")
        et.ok("hit" not in r.header("cache-status"),
              "zstd not taken: not a hit: %s" % r.header("cache-status"))
        et.eq(o.count("/text/l"), 2, "two origin requests")


def test_concurrent_clients_share_one_fetch():
    path = "/text/c?size=300000&ttl=300&delay_ms=400&hdr=Content-Encoding:br2"
    with et.Origin() as o, edge(o) as e:
        out = []

        def one():
            out.append(get(e, path, "br2"))

        ts = [threading.Thread(target=one) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(20)
        et.eq(len(out), 4, "four answers")
        for r in out:
            et.eq(r.header("content-encoding"), "br2", "as it came")
            et.eq(r.body, out[0].body, "the same bytes")
        et.eq(o.count("/text/c"), 1, "one origin fetch for four clients")


if __name__ == "__main__":
    et.main()
