#!/usr/bin/env python3
"""Story: response bodies and proxy headers go through edged intact.

GET bodies of 0 B, 1 KiB and 10 MiB arrive byte for byte, whether the
origin sends Content-Length or chunked, to HTTP/1.1 and HTTP/1.0 clients;
HEAD and bodiless statuses carry no body; the origin sees the request as
the client sent it plus Via / X-Forwarded-For / X-Forwarded-Proto and minus
the hop-by-hop fields; the client sees the origin's response minus its
hop-by-hop fields, plus Via.
"""

import sys
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

SIZES = (0, 1024, 10 << 20)

# RFC 9110 §7.6.1 and the edged spec: never forwarded, either way.
HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer",
              "transfer-encoding", "upgrade", "proxy-connection",
              "proxy-authenticate", "proxy-authorization"}


def obj(name, size, **params):
    q = {"size": size}
    q.update(params)
    return "/obj/%s?%s" % (name, urllib.parse.urlencode(q, doseq=True))


def test_get_content_length_http11():
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        for n in SIZES:
            r = c.request("GET", obj("cl%d" % n, n))
            et.eq(r.status, 200, "status for %d B" % n)
            et.eq(r.header("Content-Length"), str(n),
                  "the origin's Content-Length is kept")
            et.eq(r.has("Transfer-Encoding"), False, "no Transfer-Encoding")
            et.check_pattern(r.body, n)


def test_get_chunked_origin_http11():
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        for n in SIZES:
            r = c.request("GET", obj("ch%d" % n, n, chunked=1))
            et.eq(r.status, 200, "status for %d B" % n)
            et.eq(r.framing, "chunked",
                  "an origin body without Content-Length reaches an "
                  "HTTP/1.1 client chunked")
            et.check_pattern(r.body, n)
        # the connection is still in step after chunked bodies
        et.check_pattern(c.request("GET", obj("after", 10)).body, 10)


def test_get_http10_client():
    with et.Origin() as o, et.Edge(o.url) as e:
        for n in SIZES:
            c = e.connect()
            r = c.request("GET", obj("h10cl%d" % n, n), version="HTTP/1.0")
            et.eq((r.status, r.header("Content-Length")), (200, str(n)),
                  "HTTP/1.0 client, Content-Length origin")
            et.check_pattern(r.body, n)
            c.assert_closed(what="HTTP/1.0 connection without keep-alive")
            c.close()
            c = e.connect()
            c.send(et.build_request("GET", obj("h10ch%d" % n, n, chunked=1),
                                    version="HTTP/1.0"))
            r = c.read_response()
            et.eq(r.status, 200, "status")
            et.eq(r.has("Transfer-Encoding"), False,
                  "no chunked coding to an HTTP/1.0 client")
            et.eq(r.framing, "close", "close-delimited body")
            et.check_pattern(r.body, n)
            c.close()


def test_head():
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        r = c.request("HEAD", obj("head", 12345))
        et.eq((r.status, r.header("Content-Length"), r.body),
              (200, "12345", b""), "HEAD: the length, no body")
        # a body sent by mistake would show up as garbage before this one
        et.check_pattern(c.request("GET", obj("head", 777)).body, 777)
        r = c.request("HEAD", obj("headch", 5000, chunked=1))
        et.eq((r.status, r.body), (200, b""), "HEAD of a chunked resource")
        et.check_pattern(c.request("GET", obj("head2", 321)).body, 321)
        r = c.request("HEAD", "/echo")
        et.eq((r.status, r.header("X-Echo-Method"), r.body),
              (200, "HEAD", b""), "HEAD reaches the origin as HEAD")
        et.ok(int(r.header("Content-Length") or 0) > 0,
              "HEAD keeps the origin's Content-Length")


def test_status_passthrough():
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        for status, size in ((404, 100), (500, 50), (503, 0), (201, 10)):
            r = c.request("GET", obj("st%d" % status, size, status=status))
            et.eq(r.status, status, "origin status passes through")
            et.check_pattern(r.body, size)
        for status in (204, 304):
            r = c.request("GET", obj("st%d" % status, 100, status=status))
            et.eq((r.status, r.body), (status, b""), "%d has no body" % status)
        et.check_pattern(c.request("GET", obj("st-after", 99)).body, 99)


def test_request_headers_at_origin():
    sent = [("Host", "example.test"),
            ("User-Agent", "edgetest/1"),
            ("X-Custom", "v1"),
            ("Connection", "foo"),
            ("Foo", "dropped because Connection names it"),
            ("TE", "trailers"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
            ("Proxy-Connection", "keep-alive"),
            ("Via", "1.0 fred"),
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Multi", "a"),
            ("X-Multi", "b")]
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        r = c.request("GET", "/echo?a=1&b=%20x&c", sent)
        et.eq(r.status, 200, "status")
        d = r.json()
        got = d["headers"]

        def at_origin(name):
            vals = [v for n, v in got if n.lower() == name.lower()]
            return ", ".join(vals) if vals else None

        et.eq((d["method"], d["target"]), ("GET", "/echo?a=1&b=%20x&c"),
              "method and target unchanged")
        et.eq(at_origin("Host"), "example.test", "Host passed through")
        et.eq(at_origin("Via"), "1.0 fred, 1.1 edged", "Via appended")
        et.eq(at_origin("X-Forwarded-For"), "203.0.113.7, 127.0.0.1",
              "X-Forwarded-For appended")
        et.eq(at_origin("X-Forwarded-Proto"), "http", "X-Forwarded-Proto")
        et.eq(at_origin("X-Custom"), "v1", "end-to-end field kept")
        et.eq(at_origin("User-Agent"), "edgetest/1", "User-Agent kept")
        et.eq(at_origin("X-Multi"), "a, b", "repeated field kept in order")
        et.eq(at_origin("Foo"), None, "field named by Connection removed")
        for name in HOP_BY_HOP - {"connection"}:
            et.eq(at_origin(name), None, "%s removed" % name)
        conn = [t.strip().lower()
                for t in (at_origin("Connection") or "").split(",")
                if t.strip()]
        et.ok(set(conn) <= {"keep-alive", "close"},
              "the client's Connection options are not forwarded: %r"
              % at_origin("Connection"))
        # a second request without Via / X-Forwarded-For
        d = c.request("GET", "/echo", [("Host", "example.test")]).json()
        vals = {n.lower(): v for n, v in d["headers"]}
        et.eq(vals.get("via"), "1.1 edged", "Via added")
        et.eq(vals.get("x-forwarded-for"), "127.0.0.1", "X-Forwarded-For set")


def test_no_invented_request_headers():
    with et.Origin() as o, et.Edge(o.url) as e:
        d = e.request("GET", "/echo", [("Host", "h.test"),
                                       ("X-Only", "1")]).json()
        names = {n.lower() for n, _ in d["headers"]}
        extra = names - {"host", "x-only", "via", "x-forwarded-for",
                         "x-forwarded-proto", "connection", "cdn-loop"}
        et.eq(sorted(extra), [],
              "fields the client did not send (besides the proxy fields)")


def test_target_passed_unchanged():
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        for target in ("/echo?q=a%20b&r=/x/../y&s=%2e%2e&t=&u",
                       "/echo?z=1&a=2&z=0",
                       "/echo?",
                       "/echo?%7e=~&p=a+b;c"):
            d = c.request("GET", target).json()
            et.eq(d["target"], target, "target at the origin")


def test_absolute_form_target():
    # RFC 9112 §3.2.2: a server MUST accept the absolute-form; a proxy
    # sends the origin-form on, with Host taken from the authority.
    with et.Origin() as o, et.Edge(o.url) as e:
        r = e.request("GET", "http://abs.example.test/echo?x=1",
                      [("Host", "abs.example.test")])
        et.eq(r.status, 200, "absolute-form accepted")
        d = r.json()
        et.eq(d["target"], "/echo?x=1", "origin-form at the origin")
        vals = {n.lower(): v for n, v in d["headers"]}
        et.eq(vals.get("host"), "abs.example.test", "Host")


def test_via_and_origin_host_options():
    with et.Origin() as o, \
            et.Edge(o.url, "--via", "cdn-test", "--origin-host",
                    "origin.internal") as e:
        r = e.request("GET", "/echo", [("Host", "www.example.test")])
        vals = {n.lower(): v for n, v in r.json()["headers"]}
        et.eq(vals.get("host"), "origin.internal", "--origin-host")
        et.eq(vals.get("via"), "1.1 cdn-test", "--via at the origin")
        et.eq(r.header("Via"), "1.1 cdn-test", "--via in the response")


def test_response_hop_by_hop_removed():
    hdrs = ["Connection:x-drop", "X-Drop:1", "Keep-Alive:timeout=5",
            "X-Keep:yes", "Proxy-Authenticate:Basic realm=x",
            "Upgrade:websocket", "Trailer:X-T", "Via:1.1 upstream"]
    with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
        r = c.request("GET", obj("hop", 500, hdr=hdrs))
        et.eq(r.status, 200, "status")
        et.check_pattern(r.body, 500)
        for name in ("X-Drop", "Keep-Alive", "Proxy-Authenticate",
                     "Upgrade", "Trailer"):
            et.eq(r.header(name), None, "response field %s removed" % name)
        et.ok("x-drop" not in r.tokens("Connection"),
              "Connection: x-drop not forwarded (got %r)"
              % r.header("Connection"))
        et.eq(r.header("X-Keep"), "yes", "end-to-end response field kept")
        et.eq(r.header("Via"), "1.1 upstream, 1.1 edged",
              "Via appended to the origin's")
        r = c.request("GET", obj("cookies", 10, hdr=["Set-Cookie:a=1; Path=/",
                                                     "Set-Cookie:b=2",
                                                     "X-Dup:x", "X-Dup:y"]))
        et.eq(r.header_list("Set-Cookie"), ["a=1; Path=/", "b=2"],
              "Set-Cookie fields stay separate (RFC 9110 §5.3)")
        et.eq(r.header("X-Dup"), "x, y", "repeated fields kept in order")
        r = c.request("GET", obj("plain", 10))
        et.eq(r.header("Via"), "1.1 edged", "Via on every response")
        et.eq(r.header("X-Origin-Seq") is not None, True,
              "origin fields pass through")


if __name__ == "__main__":
    et.main()
