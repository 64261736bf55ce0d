"""The HTTP/1.1 stories that matter to a browser, told again over HTTP/2
(prior knowledge on listen_h2c): a hit purged through purged becomes a
miss; gzip and brotli variants negotiated by accept-encoding decode to the
identity body; stale-while-revalidate answers at once and stale-if-error
answers when the origin is down; sites are chosen by :authority (421 for
none); only-if-cached gets 504 for what is not stored; HEAD gets the head
of a hit and no DATA; a conditional request gets 304.  And a SIGHUP reload
keeps h2 connections: no GOAWAY, a stream in flight finishes from its
origin, and the next stream on the same connection follows the new
configuration (docs/architecture.md says why).
"""

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import h2raw  # noqa: E402

h2raw.need_h2()
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402


def h2c_args():
    port = et.free_port()
    return port, ["--listen-h2c", "127.0.0.1:%d" % port]


def cache_status(st):
    return st.header("cache-status") or ""


def get(c, path, authority="localhost", headers=(), method="GET"):
    st = c.response(c.request(path, method=method, authority=authority,
                              headers=list(headers)), timeout=20)
    et.eq(st.reset, None, "%s %s not reset" % (method, path))
    return st


def test_purge_then_miss():
    with et.Origin() as o:
        port, args = h2c_args()
        with pn.Node(o, *args) as n, h2raw.Conn(port) as c:
            path = "/obj/p?size=5000&ttl=300"
            et.eq(get(c, path, pn.HOST).status, 200, "fill")
            pn.wait_disk(n, 1)
            st = get(c, path, pn.HOST)
            et.ok("hit" in cache_status(st), "an h2 hit: %s"
                  % cache_status(st))
            et.eq(o.count("/obj/p"), 1, "one origin request")
            n.purge_ok(target=path)
            st = get(c, path, pn.HOST)
            et.eq(st.status, 200, "after the purge")
            et.check_pattern(bytes(st.body), 5000)
            et.ok("fwd=" in cache_status(st) and "hit" not in
                  cache_status(st), "a miss after the purge: %s"
                  % cache_status(st))
            et.eq(o.count("/obj/p"), 2, "the origin asked again")


def decode(coding, body):
    if coding == "gzip":
        return gzip.decompress(body)
    if shutil.which("brotli") is None:
        raise et.Skip("brotli not installed (tools/deps.sh --test)")
    return subprocess.run(["brotli", "-d", "-c"], input=body,
                          stdout=subprocess.PIPE, check=True).stdout


def test_variants_by_accept_encoding():
    text = "/text/v?size=200000&ttl=300&hdr=ETag:%22t1%22"
    aport = et.free_port()
    with et.Origin() as o:
        port, args = h2c_args()
        with et.Edge(o.url, "--cache-dir", et.mktemp("cache"),
                     "--admin-listen", "127.0.0.1:%d" % aport, *args), \
                h2raw.Conn(port) as c:
            ident = get(c, text)
            et.eq(len(ident.body), 200000, "identity fill")

            def made():
                with et.Client(aport) as a:
                    st = json.loads(a.request("GET", "/stats").body)
                return st["cache"]["variants"]["made"] >= 2
            et.wait_for(made, 10, what="gzip and br variants made")
            ident = get(c, text)
            et.eq(ident.header("content-encoding"), None, "identity")
            for ae, want in (("gzip", "gzip"), ("gzip, deflate, br", "br")):
                st = get(c, text, headers=[("accept-encoding", ae)])
                et.eq(st.header("content-encoding"), want, "%s chosen" % want)
                et.eq(int(st.header("content-length")), len(st.body),
                      "%s content-length" % want)
                et.ok("accept-encoding" in (st.header("vary") or "").lower(),
                      "Vary: %r" % st.header("vary"))
                et.ok("hit" in cache_status(st), cache_status(st))
                et.ok(len(st.body) < len(ident.body) // 4, "smaller")
                et.eq(decode(want, bytes(st.body)), bytes(ident.body),
                      "%s decodes to the identity body" % want)
        et.eq(o.count("/text/v"), 1, "one origin request for every coding")


def stale_edge(origin_url, port_args, *extra):
    return et.Edge(origin_url, "--cache-dir", et.mktemp("cache"),
                   "--cache-query-drop", "delay_ms", *(port_args +
                                                        list(extra)))


def test_stale_while_revalidate():
    with et.Origin() as o:
        port, args = h2c_args()
        q = ("/obj/swr?size=2000&ttl=1"
             "&hdr=Cache-Control:stale-while-revalidate=30")
        with stale_edge(o.url, args) as e, h2raw.Conn(port) as c:
            et.eq(get(c, q).status, 200, "fill")
            time.sleep(2.2)  # past max-age=1
            t0 = time.monotonic()
            # The refresh takes 1.5 s at the origin; the answer does not.
            st = get(c, q + "&delay_ms=1500")
            dt = time.monotonic() - t0
            et.eq(st.status, 200, "stale answer")
            et.check_pattern(bytes(st.body), 2000)
            et.ok("stale-while-revalidate" in cache_status(st),
                  cache_status(st))
            et.ok(dt < 1.0, "without waiting for the origin (%.2f s)" % dt)
            et.wait_for(lambda: o.count("/obj/swr", complete=True) == 2, 5,
                        what="the background refresh")
            e.wait_access_log(lambda l: "/obj/swr" in l and
                              "HTTP/2" in l and "stale" in l)


def test_stale_if_error_origin_down():
    oport = et.free_port()
    port, args = h2c_args()
    q = "/obj/sie?size=3000&ttl=1&hdr=Cache-Control:stale-if-error=30"
    with stale_edge("http://127.0.0.1:%d" % oport, args) as e, \
            h2raw.Conn(port) as c:
        with et.Origin(port=oport):
            et.eq(get(c, q).status, 200, "fill")
        time.sleep(2.2)
        st = get(c, q)
        et.eq(st.status, 200, "stale instead of 502")
        et.check_pattern(bytes(st.body), 3000)
        et.ok("fwd=stale" in cache_status(st) and
              "stale-if-error" in cache_status(st), cache_status(st))
        e.wait_access_log(lambda l: "stale-if-error" in l and "HTTP/2" in l)


def test_sites_by_authority():
    with et.Origin() as o1, et.Origin() as o2:
        d = et.mktemp("sites")
        conf = os.path.join(d, "edged.conf")
        with open(conf, "w") as f:
            f.write("site a.example {\n\torigin %s\n}\n"
                    "site *.b.example {\n\torigin %s\n}\n" % (o1.url, o2.url))
        port, args = h2c_args()
        with et.Edge(None, "-c", conf, *args), h2raw.Conn(port) as c:
            et.eq(get(c, "/obj/x?size=10", "a.example").status, 200, "a")
            et.eq(get(c, "/obj/y?size=10", "www.B.example:443").status, 200,
                  "the wildcard, any case, with a port")
            et.eq((o1.count(), o2.count()), (1, 1), "each site's origin")
            st = get(c, "/obj/n", "c.example")
            et.eq(st.status, 421, "no site for c.example")
            et.eq(cache_status(st), "edged; fwd=bypass; detail=unknown-host",
                  "Cache-Status")
            et.eq(o1.count() + o2.count(), 2, "the 421 reached no origin")


def test_only_if_cached_head_and_304():
    with et.Origin() as o:
        port, args = h2c_args()
        q = "/obj/c?size=7000&ttl=300&hdr=ETag:%22e7%22"
        with et.Edge(o.url, "--cache-dir", et.mktemp("cache"), *args), \
                h2raw.Conn(port) as c:
            oic = [("cache-control", "only-if-cached")]
            st = get(c, q, headers=oic)
            et.eq(st.status, 504, "only-if-cached, not stored: 504")
            et.eq(o.count("/obj/c"), 0, "the origin not asked")
            et.eq(get(c, q).status, 200, "fill")
            et.wait_for(lambda: "hit" in cache_status(get(c, q)), 5,
                        what="stored")
            st = get(c, q, headers=oic)
            et.eq(st.status, 200, "only-if-cached, stored")
            et.check_pattern(bytes(st.body), 7000)

            st = get(c, q, method="HEAD")
            et.eq(st.status, 200, "HEAD")
            et.eq(st.header("content-length"), "7000", "the GET's length")
            et.eq(bytes(st.body), b"", "no body")
            et.ok("hit" in cache_status(st), cache_status(st))

            st = get(c, q, headers=[("if-none-match", '"e7"')])
            et.eq(st.status, 304, "If-None-Match matches: 304")
            et.eq(st.header("etag"), '"e7"', "with the ETag")
            et.eq(bytes(st.body), b"", "no body")
            st = get(c, q, headers=[("if-none-match", '"other"')])
            et.eq(st.status, 200, "no match: 200")
            et.check_pattern(bytes(st.body), 7000)
            et.eq(o.count("/obj/c"), 1, "all from one origin request")
            dframes = []
            sid = c.request(q, method="HEAD")
            while True:
                f = c.read_frame(10)
                et.ok(f is not None, "connection open")
                if f[2] == sid:
                    dframes.append(f[0])
                    if f[1] & h2raw.END_STREAM:
                        break
            et.eq(dframes, [h2raw.HEADERS], "HEAD: one HEADERS frame that "
                  "ends the stream, no DATA")


def stats(aport):
    with et.Client(aport) as a:
        return json.loads(a.request("GET", "/stats").body)


def test_reload_keeps_h2_connections():
    aport = et.free_port()
    with et.Origin() as o1, et.Origin() as o2:
        conf = os.path.join(et.mktemp("reload"), "edged.conf")
        with open(conf, "w") as f:
            f.write("origin %s\n" % o1.url)
        port, args = h2c_args()
        with et.Edge(None, "-c", conf, "--admin-listen",
                     "127.0.0.1:%d" % aport, *args) as e, \
                h2raw.Conn(port) as c:
            et.eq(get(c, "/obj/before?size=10").status, 200, "before")
            slow = c.request("/obj/slow?size=100000&body_delay_ms=600")
            et.wait_for(lambda: o1.count("/obj/slow") == 1, 5,
                        what="the slow stream at the origin")
            with open(conf + ".new", "w") as f:
                f.write("origin %s\n" % o2.url)
            os.rename(conf + ".new", conf)
            e.send_signal(signal.SIGHUP)
            et.wait_for(lambda: stats(aport)["config"]["generation"] == 2, 5,
                        what="generation 2")
            st = c.response(slow, timeout=10)
            et.eq(st.status, 200, "the stream in flight finished")
            et.check_pattern(bytes(st.body), 100000)
            et.eq((o1.count("/obj/slow"), o2.count("/obj/slow")), (1, 0),
                  "from the origin it started with")
            st = get(c, "/obj/after?size=10")
            et.eq(st.status, 200, "a new stream on the same connection")
            et.eq((o1.count("/obj/after"), o2.count("/obj/after")), (0, 1),
                  "goes to the new configuration's origin")
            et.eq(c.goaway, None, "no GOAWAY on reload")
            et.eq(stats(aport)["http2"]["connections"], 1,
                  "one connection all along")


if __name__ == "__main__":
    et.main()
