#!/usr/bin/env python3
"""Story: 102 and 103 Early Hints from the origin reach the client.

RFC 9110 §15.2: an intermediary forwards 1xx responses.  The client gets
the origin's 103 (with its Link fields) and 102 before the final
response; none is stored, and no field of theirs leaks into the final
response, fresh or from the cache.  An HTTP/1.0 client gets none (it
cannot take one).  The origin's 100 Continue is not forwarded: the node
answers a client's Expect: 100-continue itself, once.  Of the clients that
share one origin fetch, only the one that started it gets the 1xx.
"""

import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

HINTS = (b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n"
         b"Connection: X-Hop\r\nX-Hop: 1\r\n\r\n"
         b"HTTP/1.1 102 Processing\r\n\r\n")
FINAL = (b"HTTP/1.1 200 OK\r\nCache-Control: max-age=300\r\n"
         b"Content-Length: 5\r\n\r\nhello")


def edge(o, *args):
    return et.Edge(o.url, "--cache-dir", et.mktemp("cache") + "/c", *args,
                   threads=1)


def get(e, target, version="HTTP/1.1", extra=b""):
    return et.raw_request(e.port, b"GET " + target.encode() + b" " +
                          version.encode() + b"\r\nHost: x\r\n" + extra +
                          b"Connection: close\r\n\r\n", 5).data


def split(data):
    """The status lines and heads of <data>, and the final body."""
    heads = []
    while True:
        head, _, data = data.partition(b"\r\n\r\n")
        heads.append(head)
        if not head.startswith(b"HTTP/1.1 1"):
            return heads, data


def test_early_hints_forwarded_not_stored():
    with et.RawOrigin(HINTS + FINAL) as o, edge(o) as e:
        heads, body = split(get(e, "/page"))
        et.eq([h.split(b"\r\n")[0] for h in heads],
              [b"HTTP/1.1 103 Early Hints", b"HTTP/1.1 102 Processing",
               b"HTTP/1.1 200 OK"], "103, 102, then the final response")
        et.ok(b"\r\nLink: </s.css>; rel=preload" in heads[0],
              "the 103 carries the Link: %r" % heads[0])
        et.ok(b"X-Hop" not in heads[0] and b"Connection" not in heads[0],
              "but not the hop-by-hop fields: %r" % heads[0])
        et.ok(b"Link" not in heads[2], "no Link in the final head")
        et.eq(body, b"hello", "the body")
        heads, body = get(e, "/page"), None
        et.ok(heads.startswith(b"HTTP/1.1 200 OK") and b"Link" not in heads
              and b"hit" in heads,
              "the stored response: a hit, no 1xx, no Link: %r" % heads)
        et.eq(o.requests, 1, "one origin request")


def test_http10_client_gets_no_interim():
    with et.RawOrigin(HINTS + FINAL) as o, edge(o) as e:
        data = get(e, "/old", "HTTP/1.0")
        et.ok(data.startswith(b"HTTP/1.1 200 OK") and b"Link" not in data,
              "HTTP/1.0: the final response only: %r" % data[:200])


def test_uncacheable_and_100_continue():
    # The raw origin closes after each response, so it says so (RFC 9112
    # §9.6): a POST cannot be sent again, and one sent on a connection the
    # origin is closing unannounced would be lost.
    final = FINAL.replace(b"max-age=300",
                          b"no-store\r\nConnection: close")
    with et.RawOrigin(b"HTTP/1.1 100 Continue\r\n\r\n" + HINTS + final) as o, \
            edge(o) as e:
        heads, body = split(get(e, "/nostore"))
        et.eq([h.split(b" ")[1] for h in heads], [b"103", b"102", b"200"],
              "a response that is not stored: 103 and 102 too, the "
              "origin's 100 not")
        data = et.raw_request(e.port, b"POST /post HTTP/1.1\r\nHost: x\r\n"
                              b"Expect: 100-continue\r\nContent-Length: 3"
                              b"\r\nConnection: close\r\n\r\nabc", 5).data
        heads, body = split(data)
        et.eq([h.split(b" ")[1] for h in heads],
              [b"100", b"103", b"102", b"200"],
              "Expect: one 100, the node's, then the origin's 103, 102")


def test_shared_fill_only_the_first_client():
    with et.RawOrigin(HINTS + FINAL) as o, edge(o) as e:
        out = {}

        def second():
            time.sleep(0.3)
            out["b"] = get(e, "/shared")

        # The origin holds its answer back until both clients are in.
        o.delay_s = 0.8
        t = threading.Thread(target=second)
        t.start()
        out["a"] = get(e, "/shared")
        t.join(10)
        et.ok(out["a"].startswith(b"HTTP/1.1 103"), "the first: hints")
        et.ok(out["b"].startswith(b"HTTP/1.1 200") and b"Link" not in
              out["b"], "the second joined the fetch: no 1xx: %r"
              % out["b"][:200])
        et.eq(o.requests, 1, "one origin fetch")


if __name__ == "__main__":
    et.main()
