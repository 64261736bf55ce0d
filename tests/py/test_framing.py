#!/usr/bin/env python3
"""Story: the framing a client controls cannot make two parsers disagree,
nor one client's request change what others get.

- A chunked request body any of whose framing lines (a size line, an
  extension, the end of chunk data, the last chunk, a trailer field, the
  end of the trailer section) ends in a bare LF gets 400 and a closed
  connection; what follows it is never read as a second request, and the
  origin never receives the body complete.
- A request-target with a fragment ("/a#b") gets 400 and never reaches the
  origin or the cache ("/a%23b" is an ordinary path).
- The HTTP/2 connection preface on this HTTP/1.1 port gets 400 and a
  closed connection.
- A GET or HEAD with a body goes to the origin with its body, and its
  response is neither stored nor answered from the store: another client
  without the body gets what the origin says to it.
- Every error the HTTP layer answers itself (400, 413, 414, 431, 505)
  carries "Cache-Status: <via>; fwd=bypass; detail=...", as the node's
  other answers do.
"""

import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

NODE = "framing-node"
ARGS = ("--via", NODE, "--max-request-line", "2K", "--max-header-size", "4K",
        "--max-body-size", "1K")

# What a smuggler would hide behind the bad request.
SMUGGLED = b"GET /obj/smuggled?size=1 HTTP/1.1\r\nHost: x\r\n\r\n"

CHUNKED_HEAD = (b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")

# (name, chunked body): each has exactly one bare LF as a line end.
BARE_LF_BODIES = [
    ("size_line", b"2\nxx\r\n0\r\n\r\n"),
    ("ext_name", b"2;a\nxx\r\n0\r\n\r\n"),
    ("ext_token", b"2;a=b\nxx\r\n0\r\n\r\n"),
    ("ext_quoted", b'2;a="b"\nxx\r\n0\r\n\r\n'),
    ("data_end", b"2\r\nxx\n0\r\n\r\n"),
    ("last_chunk", b"2\r\nxx\r\n0\n\r\n"),
    ("last_chunk_ext", b"2\r\nxx\r\n0;a=b\n\r\n"),
    ("empty_trailer_end", b"2\r\nxx\r\n0\r\n\n"),
    ("trailer_field", b"2\r\nxx\r\n0\r\nT: 1\n\r\n"),
    ("trailer_end", b"2\r\nxx\r\n0\r\nT: 1\r\n\n"),
]

CACHE_STATUS_RE = re.compile(
    r"^%s; fwd=bypass; detail=[a-z0-9-]+$" % re.escape(NODE))


def one_refusal(e, name, data, status):
    """Send <data> with a request pipelined behind it: exactly one answer,
    <status>, with Connection: close and the node's Cache-Status, then the
    close.  Returns the response."""
    res = et.raw_request(e.port, data + SMUGGLED, timeout=3)
    rs = res.responses()
    et.eq(len(rs), 1, "%s: one response (%r)" % (name, res))
    r = rs[0]
    et.eq(r.status, status, "%s: status (%r)" % (name, res))
    et.ok("close" in r.tokens("Connection"), "%s: Connection: close" % name)
    cs = r.header("Cache-Status") or ""
    et.ok(CACHE_STATUS_RE.match(cs), "%s: Cache-Status %r" % (name, cs))
    et.ok(res.closed, "%s: the connection is closed" % name)
    return r


def test_chunked_bare_lf_refused():
    problems = []
    with et.Origin() as o, et.Edge(o.url, *ARGS) as e:
        # The same bodies with CRLF everywhere are fine.
        for name, body in BARE_LF_BODIES:
            good = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            r = e.request("POST", "/echo", [("Transfer-Encoding", "chunked")],
                          good)
            et.eq(r.status, 200, "%s with CRLF" % name)
            et.eq(r.json()["body_length"], 2, "%s with CRLF: body" % name)
        for name, body in BARE_LF_BODIES:
            o.reset()
            try:
                one_refusal(e, name, CHUNKED_HEAD + body, 400)
            except AssertionError as ex:
                problems.append(str(ex))
            if o.count("/obj/smuggled"):
                problems.append("%s: the request behind it was forwarded"
                                % name)
            if o.count(complete=True):
                problems.append("%s: the origin got the body complete" % name)
        e.wait_access_log(lambda l: '"bare LF' in l,
                          what="an access log line naming the bare LF")
    if problems:
        raise AssertionError("\n  ".join(problems))


def test_fragment_refused():
    with et.Origin() as o, et.Edge(o.url, *ARGS) as e:
        for target in ("/obj/f?size=5#frag", "/obj/f#", "/obj/f#x?size=5",
                       "http://x/obj/f#x"):
            r = one_refusal(e, target, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"
                            % target.encode(), 400)
            et.ok(r.header("Cache-Status").endswith("detail=bad-request"),
                  "%s: detail" % target)
        et.eq(o.count(), 0, "nothing reached the origin")
        # An encoded '#' is part of an ordinary path.
        r = e.request("GET", "/obj/f%23x?size=5&ttl=60")
        et.eq(r.status, 200, "/obj/f%23x")
        et.eq(o.count(), 1, "/obj/f%23x was fetched")


def test_http2_preface_refused():
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    with et.Origin() as o, et.Edge(o.url, *ARGS) as e:
        res = et.raw_request(e.port, preface + settings, timeout=3)
        rs = res.responses()
        et.eq(len(rs), 1, "one response (%r)" % res)
        et.eq(rs[0].status, 400, "the preface gets 400")
        et.ok(CACHE_STATUS_RE.match(rs[0].header("Cache-Status") or ""),
              "Cache-Status %r" % rs[0].header("Cache-Status"))
        et.ok(res.closed, "the connection is closed")
        et.eq(o.count(), 0, "nothing reached the origin")
        e.wait_access_log(lambda l: "HTTP/2 connection preface" in l,
                          what="an access log line naming the preface")


def test_get_with_body_never_stored():
    d = os.path.join(et.mktemp("cache"), "c")
    bypass = NODE + "; fwd=bypass; detail=request-body"
    with et.Origin() as o, et.Edge(o.url, "--cache-dir", d, *ARGS) as e:
        # What the origin answers to a GET with a body is not stored.
        t = "/obj/g?size=5&ttl=60"
        r = e.request("GET", t, body=b"secret")
        et.eq(r.status, 200, "GET with a body")
        r = e.request("GET", t)
        et.eq(o.count(), 2, "a GET without a body went to the origin too")
        r = e.request("GET", t)
        et.eq(o.count(), 2, "the answer to a plain GET was stored")
        et.ok(r.header("Cache-Status").startswith(NODE + "; hit"),
              "a hit: %r" % r.header("Cache-Status"))

        # Nor is a GET with a body answered from the store.
        r = e.request("GET", t, [("Transfer-Encoding", "chunked")],
                      et.chunk_encode(b"chunked!", sizes=(3,)))
        et.eq(r.status, 200, "GET with a chunked body")
        et.eq(r.header("Cache-Status"), bypass, "chunked: Cache-Status")
        et.eq(o.count(), 3, "the GET with a body went to the origin")
        e.request("GET", t)
        et.eq(o.count(), 3, "and the stored answer is still used")

        # HEAD likewise.
        h = "/obj/h?size=5&ttl=60"
        r = e.request("HEAD", h, [("Content-Length", "4")], b"body")
        et.eq(r.status, 200, "HEAD with a body")
        et.eq(r.header("Cache-Status"), bypass, "HEAD: Cache-Status")
        et.eq(o.count(), 4, "the HEAD went to the origin")
        e.request("GET", h)
        et.eq(o.count(), 5, "the answer to the HEAD was not stored")

        # An explicit empty body is no body.
        z = "/obj/z?size=5&ttl=60"
        e.request("GET", z, [("Content-Length", "0")], b"")
        r = e.request("GET", z)
        et.eq(o.count(), 6, "a GET with Content-Length: 0 is stored")
        et.ok(r.header("Cache-Status").startswith(NODE + "; hit"),
              "then a hit: %r" % r.header("Cache-Status"))

        # The body goes to the origin, and the answer says why it is not
        # stored.
        r = e.request("GET", "/echo", body=b"secret")
        et.eq(r.json()["body_length"], 6, "the origin got the GET's body")
        et.eq(r.header("Cache-Status"), bypass, "Cache-Status")


def test_own_errors_carry_cache_status():
    with et.Origin() as o, et.Edge(o.url, *ARGS) as e:
        cases = [
            ("garbage", b"hello?\r\n\r\n", 400, "bad-request"),
            ("bad_chunk", CHUNKED_HEAD + b"zz\r\n", 400, "bad-request"),
            ("too_large", b"POST /echo HTTP/1.1\r\nHost: x\r\n"
             b"Content-Length: 5000\r\n\r\n", 413, "content-too-large"),
            ("too_large_chunked", CHUNKED_HEAD + b"800\r\n" + b"x" * 2048,
             413, "content-too-large"),
            ("uri_too_long", b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n"
             % (b"a" * 3000), 414, "uri-too-long"),
            ("head_too_large", b"GET / HTTP/1.1\r\nHost: x\r\nX: %s\r\n\r\n"
             % (b"b" * 5000), 431, "request-header-fields-too-large"),
            ("version", b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505,
             "http-version-not-supported"),
        ]
        for name, data, status, detail in cases:
            r = one_refusal(e, name, data, status)
            et.eq(r.header("Cache-Status"),
                  "%s; fwd=bypass; detail=%s" % (NODE, detail),
                  "%s: Cache-Status" % name)
        et.eq(o.count(complete=True), 0, "nothing reached the origin whole")


if __name__ == "__main__":
    et.main()
