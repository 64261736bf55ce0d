#!/usr/bin/env python3
"""Story: an origin whose response head is framed ambiguously gets 502,
and nothing of it is stored; an unknown transfer coding is read until the
origin closes and delivered, never stored (RFC 9112 §6.3).

RFC 9112 §5.2 (obs-fold), §5.1 (no white space between a field name and
the colon) and §6.3 (Content-Length values that differ) make such a head
invalid: a downstream reader could frame it differently from the node, so
the node answers 502 with a Cache-Status detail and logs the origin server
and the reason.  Identical repeated Content-Length values are one value
(RFC 9110 §8.6) and are served.

The origin here is a raw socket that answers each request with bytes the
test gives, so every malformation reaches the node as written.
"""

import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


HEAD = (b"HTTP/1.1 200 OK\r\nCache-Control: public, max-age=300\r\n"
        b"Content-Type: text/plain\r\n")


def edge(o):
    return et.Edge(o.url, "--cache-dir", et.mktemp("cache") + "/c",
                   threads=1)


def check_refused(fields, body, reason):
    with et.RawOrigin(HEAD + fields + b"\r\n" + body) as o, edge(o) as e:
        for i in range(2):
            r = e.request("GET", "/f")
            et.eq(r.status, 502, "%s: 502 (try %d)" % (reason, i + 1))
            cs = r.header("cache-status") or ""
            et.ok("detail=origin-protocol-error" in cs,
                  "%s: Cache-Status detail: %r" % (reason, cs))
            et.ok(b"smuggled" not in r.body and not r.has("x-after"),
                  "%s: nothing of the origin's head reached the client"
                  % reason)
        et.eq(o.requests, 2, "%s: nothing stored, both went to the origin"
              % reason)
        et.wait_for(lambda: reason in e.stderr_text() and
                    "127.0.0.1:%d" % o.port in e.stderr_text(),
                    what="a log line naming the server and %s" % reason)


def test_obs_fold_502():
    check_refused(b"X-A: a\r\n smuggled\r\nX-After: 1\r\nContent-Length: 5"
                  b"\r\n", b"hello", "obs-fold")


def test_obs_fold_tab_502():
    check_refused(b"Content-Length: 5\r\nX-A: a\r\n\tsmuggled\r\n", b"hello",
                  "obs-fold")


def test_two_content_lengths_502():
    check_refused(b"Content-Length: 5\r\nX-After: 1\r\nContent-Length: 8\r\n",
                  b"hellosmuggled", "Content-Length")


def test_content_length_list_502():
    check_refused(b"Content-Length: 5, 8\r\n", b"hellosmuggled",
                  "Content-Length")


def test_space_before_colon_502():
    check_refused(b"Content-Length : 8\r\nX-After: 1\r\n", b"smuggled",
                  "white space between a field name and the colon")


def test_tab_before_colon_502():
    check_refused(b"X-After\t: 1\r\nContent-Length: 5\r\n", b"hello",
                  "white space between a field name and the colon")


def test_empty_field_name_502():
    check_refused(b": smuggled\r\nX-After: 1\r\nContent-Length: 5\r\n",
                  b"hello", "an empty field name")


def test_field_name_not_a_token_502():
    check_refused(b"X-A(b): smuggled\r\nX-After: 1\r\nContent-Length: 5\r\n",
                  b"hello", "a field name that is not a token")


def test_identical_content_lengths_served():
    # RFC 9110 §8.6: a list or repeat of one value may be taken as one.
    for fields in (b"Content-Length: 5\r\nContent-Length: 5\r\n",
                   b"Content-Length: 5, 5\r\n"):
        with et.RawOrigin(HEAD + fields + b"\r\nhello") as o, edge(o) as e:
            r = e.request("GET", "/f")
            et.eq(r.status, 200, "%r: served" % fields)
            et.eq(r.body, b"hello", "%r: the body" % fields)
            r = e.request("GET", "/f")
            et.ok(r.header("cache-status").startswith("edged; hit"),
                  "%r: stored: %s" % (fields, r.header("cache-status")))
            et.eq(o.requests, 1, "one origin request")


def check_delivered(te, body, want):
    with et.RawOrigin(HEAD + b"Transfer-Encoding: " + te + b"\r\n\r\n" +
                   body) as o, edge(o) as e:
        for i in range(2):
            r = e.request("GET", "/u")
            et.eq(r.status, 200, "TE %r: delivered (try %d)" % (te, i + 1))
            et.eq(r.body, want, "TE %r: the body" % te)
            cs = r.header("cache-status")
            et.ok("hit" not in cs and "stored" not in cs,
                  "TE %r: not stored: %s" % (te, cs))
        et.eq(o.requests, 2, "TE %r: each request went to the origin" % te)


def test_unknown_transfer_coding_read_until_close():
    # RFC 9112 §6.3: no chunked at all, so the body ends where the origin
    # closes.  Delivered as it came (the node cannot decode it), never
    # stored: a cut connection would look like a complete body.
    body = b"opaque bytes of an unknown coding\r\n0\r\n\r\nmore"
    check_delivered(b"foo", body, body)
    check_delivered(b"x-custom;q=1", body, body)


def test_unknown_coding_under_chunked():
    # chunked is final: the node removes it and passes the rest as it
    # came, never stored.
    check_delivered(b"foo, chunked", b"5\r\nhello\r\n0\r\n\r\n", b"hello")


def test_ambiguous_transfer_codings_502():
    # libcurl decodes chunks wherever chunked is named, so a chunked that
    # is not the final coding cannot be read until close as §6.3 says:
    # refused rather than framed differently from a downstream reader.
    check_refused(b"Transfer-Encoding: chunked, foo\r\n", b"5\r\nhello\r\n"
                  b"0\r\n\r\n", "chunked is not the final transfer coding")
    check_refused(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: "
                  b"chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n",
                  "chunked is not the final transfer coding")
    # §6.3 item 3: "ought to be handled as an error".
    check_refused(b"Content-Length: 5\r\nTransfer-Encoding: foo\r\n",
                  b"hellosmuggled", "Transfer-Encoding with Content-Length")


if __name__ == "__main__":
    et.main()
