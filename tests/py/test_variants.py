"""Compression variants: a stored compressible response is also kept as
brotli and gzip; each client gets the coding its Accept-Encoding prefers,
with Vary, Content-Encoding, Content-Length and an ETag of its own; every
variant decodes with the system gzip and brotli tools to the identity
body; an origin's coded response is decoded once for clients that do not
take it; a compression bomb costs bounded work and is logged."""
import json
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402

TEXT = "/text/v?size=300000&ttl=300&hdr=ETag:%22t1%22"


def admin_args():
    port = et.free_port()
    return port, ["--admin-listen", "127.0.0.1:%d" % port]


def stats(port):
    with et.Client(port) as c:
        r = c.request("GET", "/stats")
        et.eq(r.status, 200, "stats status")
        return json.loads(r.body)


def variants(port):
    return stats(port)["cache"]["variants"]


def edge(o, *args):
    port, extra = admin_args()
    d = et.mktemp("cache") + "/c"
    return port, et.Edge(o.url, "--cache-dir", d, *(list(extra) + list(args)))


def tool(argv, data):
    if shutil.which(argv[0]) is None:
        raise et.Skip("%s not installed (tools/deps.sh --test)" % argv[0])
    return subprocess.run(argv, input=data, stdout=subprocess.PIPE,
                          check=True).stdout


def get(e, path, ae=None, extra=None):
    h = {}
    if ae is not None:
        h["Accept-Encoding"] = ae
    h.update(extra or {})
    return e.request("GET", path, headers=h)


def fill_and_wait(e, port, path, n=2):
    """Store <path> (identity) and wait until <n> variants are made."""
    r = get(e, path)
    et.eq(r.status, 200, "fill status")
    et.ok("stored" in r.header("cache-status"), r.header("cache-status"))
    et.wait_for(lambda: variants(port)["made"] >= n, timeout=10,
                what="%d variants made" % n)
    return r.body


def test_every_variant_decodes_to_the_identity_body():
    with et.Origin() as o:
        port, e = edge(o)
        with e:
            ident = fill_and_wait(e, port, TEXT)
            et.eq(len(ident), 300000, "identity length")
            r = get(e, TEXT)
            et.eq(r.header("content-encoding"), None, "identity: no coding")
            et.eq(r.body, ident, "identity hit")

            gz = get(e, TEXT, "gzip")
            et.eq(gz.header("content-encoding"), "gzip", "gzip chosen")
            et.eq(int(gz.header("content-length")), len(gz.body),
                  "gzip Content-Length")
            et.ok(len(gz.body) < len(ident) // 4,
                  "gzip is smaller: %d" % len(gz.body))
            et.eq(tool(["gzip", "-d", "-c"], gz.body), ident,
                  "gzip -d gives the identity body")

            br = get(e, TEXT, "gzip, deflate, br")
            et.eq(br.header("content-encoding"), "br", "br chosen")
            et.eq(int(br.header("content-length")), len(br.body),
                  "br Content-Length")
            et.eq(tool(["brotli", "-d", "-c"], br.body), ident,
                  "brotli -d gives the identity body")

            tags = {r.header("etag"), gz.header("etag"), br.header("etag")}
            et.eq(tags, {'"t1"', '"t1-gzip"', '"t1-br"'}, "an ETag per coding")
            for x in (r, gz, br):
                et.ok("accept-encoding" in x.tokens("vary"),
                      "Vary lists Accept-Encoding: %r" % x.header("vary"))
                et.ok(x.header("cache-status").startswith("edged; hit"),
                      "a hit: %s" % x.header("cache-status"))
        et.eq(o.count("/text/v"), 1, "one origin request for all codings")


NEGOTIATION = [
    # (Accept-Encoding or None, expected Content-Encoding or None, status)
    (None, None, 200),
    ("", None, 200),
    ("gzip", "gzip", 200),
    ("br", "br", 200),
    ("gzip, br", "br", 200),
    ("br;q=0.5, gzip", "gzip", 200),
    ("gzip;q=0.5, br;q=0.4", None, 200),
    ("gzip;q=0.5, br;q=0.4, identity;q=0.1", "gzip", 200),
    ("*", "br", 200),
    ("br;q=0, *", "gzip", 200),
    ("gzip;q=0, br;q=0", None, 200),
    ("deflate", None, 200),
    ("identity;q=0, gzip", "gzip", 200),
    ("*;q=0, identity", None, 200),
    ("*;q=0", None, 406),
    ("identity;q=0", None, 406),
    ("deflate, identity;q=0", None, 406),
]


def test_negotiation_table():
    with et.Origin() as o:
        port, e = edge(o)
        with e:
            ident = fill_and_wait(e, port, TEXT)
            for ae, enc, status in NEGOTIATION:
                r = get(e, TEXT, ae)
                what = "Accept-Encoding: %r" % ae
                et.eq(r.status, status, what + " status")
                et.ok("accept-encoding" in r.tokens("vary"),
                      what + " Vary: %r" % r.header("vary"))
                if status != 200:
                    et.ok("not-acceptable" in r.header("cache-status"),
                          what + " Cache-Status")
                    continue
                et.eq(r.header("content-encoding"), enc, what + " coding")
                if enc is None:
                    et.eq(r.body, ident, what + " body")
            et.ok(variants(port)["not_acceptable"] >= 3, "406s counted")
        et.eq(o.count("/text/v"), 1, "one origin request")


def test_etag_and_304_per_variant():
    with et.Origin() as o:
        port, e = edge(o)
        with e:
            fill_and_wait(e, port, TEXT)
            cases = [
                ("gzip", '"t1-gzip"', 304),
                ("gzip", '"t1"', 200),
                ("br", '"t1-br"', 304),
                ("br", '"t1-gzip"', 200),
                (None, '"t1"', 304),
                (None, '"t1-gzip"', 200),
                ("gzip", 'W/"t1-gzip"', 304),   # weak comparison (13.1.2)
                ("gzip", '"x", "t1-gzip"', 304),
            ]
            for ae, inm, status in cases:
                r = get(e, TEXT, ae, {"If-None-Match": inm})
                et.eq(r.status, status, "AE %r, If-None-Match %s" % (ae, inm))
                if status == 304:
                    et.eq(r.body, b"", "304 has no body")
                    et.ok(r.header("etag") in inm, "304 carries its ETag: %s"
                          % r.header("etag"))


def test_what_gets_no_variants():
    with et.Origin() as o:
        port, e = edge(o, "--compress-min-size", "2K")
        with e:
            paths = [
                "/obj/bin?size=50000&ttl=300",                  # octet-stream
                "/text/small?size=1000&ttl=300",                # < 2K
                "/text/nt?size=50000&hdr=Cache-Control:public,max-age=300,"
                "no-transform",                                 # no-transform
                "/text/img?size=50000&ttl=300&ctype=image/png",  # not listed
            ]
            for p in paths:
                r = get(e, p)
                et.eq(r.status, 200, p)
                et.ok("stored" in r.header("cache-status"),
                      "%s stored: %s" % (p, r.header("cache-status")))
            et.wait_for(lambda: stats(port)["cache"]["puts"] >= len(paths),
                        what="every object committed")
            for p in paths:
                r = get(e, p, "gzip, br")
                et.eq(r.header("content-encoding"), None, "%s: identity" % p)
                et.ok(r.header("cache-status").startswith("edged; hit"),
                      "%s: a hit" % p)
            v = variants(port)
            et.eq(v["made"], 0, "no variant made: %r" % v)


def test_chunked_responses_by_their_size():
    """The head of a chunked response says nothing of its size: what the
    head decided is completed by the body's length once it is whole."""
    with et.Origin() as o:
        port, e = edge(o, "--compress-min-size", "2K", "--compress-types",
                       "application/octet-stream")
        with e:
            small = "/obj/chs?size=1000&ttl=300&chunked=1"
            big = "/obj/chb?size=50000&ttl=300&chunked=1"
            et.eq(get(e, small).status, 200, "small filled")
            body = fill_and_wait(e, port, big)
            r = get(e, big, "gzip")
            et.eq(r.header("content-encoding"), "gzip", "a gzip variant")
            et.eq(tool(["gzip", "-dc"], r.body), body, "decodes to the body")
            et.wait_for(lambda: stats(port)["cache"]["puts"] >= 2,
                        what="both objects committed")
            r = get(e, small, "gzip, br")
            et.eq(r.header("content-encoding"), None, "small: identity")
            et.eq(variants(port)["made"], 2, "none made of the small one")


def test_compress_types_and_levels_are_configurable():
    with et.Origin() as o:
        port, e = edge(o, "--compress-types", "image/*", "--gzip-level", "1",
                       "--brotli-level", "0")
        with e:
            p = "/text/img?size=50000&ttl=300&ctype=image/x-text"
            fill_and_wait(e, port, p, n=1)
            r = get(e, p, "gzip, br")
            et.eq(r.header("content-encoding"), "gzip",
                  "only gzip (brotli_level 0)")
            t = get(e, "/text/t?size=50000&ttl=300")
            et.eq(t.status, 200, "text")
            r = get(e, "/text/t?size=50000&ttl=300", "gzip")
            et.eq(r.header("content-encoding"), None,
                  "text/plain not in compress_types")


def test_vary_merges_with_the_origins():
    path = "/text/vc?size=40000&ttl=300&hdr=Vary:Cookie"
    with et.Origin() as o:
        port, e = edge(o)
        with e:
            a = get(e, path, None, {"Cookie": "a=1"})
            et.ok(set(a.tokens("vary")) >= {"cookie", "accept-encoding"},
                  "Vary: %r" % a.header("vary"))
            et.wait_for(lambda: variants(port)["made"] >= 2,
                        what="variants made")
            g = get(e, path, "gzip", {"Cookie": "a=1"})
            et.eq(g.header("content-encoding"), "gzip", "same cookie: gzip")
            et.eq(tool(["gzip", "-d", "-c"], g.body), a.body, "decodes")
            b = get(e, path, "gzip", {"Cookie": "a=2"})
            et.ok("miss" in b.header("cache-status"),
                  "other cookie: a miss: %s" % b.header("cache-status"))
        et.eq(o.count("/text/vc"), 2, "one fetch per cookie")


def test_origin_coded_response_is_stored_and_decoded_once():
    for enc in ("gzip", "br"):
        path = "/text/oc-%s?size=200000&ttl=300&enc=%s&hdr=ETag:%%22o%%22" % (
            enc, enc)
        with et.Origin() as o:
            port, e = edge(o)
            with e:
                r = get(e, path, enc)
                et.eq(r.header("content-encoding"), enc, "stored as it came")
                plain = tool(["gzip" if enc == "gzip" else "brotli", "-d",
                              "-c"], r.body)
                et.eq(len(plain), 200000, "the origin's body decodes")
                h = get(e, path, enc)
                et.eq(h.body, r.body, "%s hit: the origin's bytes" % enc)
                et.eq(h.header("etag"), '"o"', "the origin's ETag")
                for i in range(3):
                    d = get(e, path)
                    et.eq(d.status, 200, "identity client")
                    et.eq(d.header("content-encoding"), None, "decoded")
                    et.eq(d.body, plain, "decoded body byte for byte")
                    et.eq(d.header("etag"), '"o-identity"',
                          "decoded copy has its own ETag")
                v = variants(port)
                et.eq(v["decoded"], 1, "decoded once, then stored: %r" % v)
            et.eq(o.count(path.split("?")[0]), 1, "one origin request")


def test_large_origin_coded_response_is_decoded_off_the_loop():
    path = "/text/big-gz?size=%d&ttl=300&enc=gzip" % (3 << 20)
    with et.Origin() as o:
        port, e = edge(o)
        with e:
            r = get(e, path, "gzip")
            plain = tool(["gzip", "-d", "-c"], r.body)
            et.eq(len(plain), 3 << 20, "the origin's body")
            # Over 1 MiB decoded: the pool does it; this client goes to
            # the origin (which here sends gzip regardless).
            d = get(e, path)
            et.eq(d.status, 200, "identity client while decoding")
            et.wait_for(lambda: variants(port)["decoded"] >= 1, timeout=20,
                        what="the identity copy decoded by the pool")
            d = get(e, path)
            et.eq(d.header("content-encoding"), None, "then identity")
            et.eq(d.body, plain, "byte for byte")
            et.ok(d.header("cache-status").startswith("edged; hit"),
                  "a hit: %s" % d.header("cache-status"))


def test_compression_bomb_is_capped_and_logged():
    path = "/bomb?size=%d" % (512 << 20)
    with et.Origin() as o:
        port, e = edge(o, "--decompress-max-size", "16M")
        with e:
            r = get(e, path, "gzip")
            et.eq(r.status, 200, "a gzip client gets the bytes as they are")
            et.eq(r.header("content-encoding"), "gzip", "coded")
            et.ok(len(r.body) < 2 << 20, "small on the wire: %d" % len(r.body))
            rss0 = e.rss_kib()
            get(e, path)  # queues the decoding; goes to the origin
            et.wait_for(lambda: variants(port)["bombs"] >= 1, timeout=20,
                        what="the bomb found by the pool")
            for i in range(3):
                d = get(e, path)
                et.eq(d.status, 406, "an identity client: 406")
            v = variants(port)
            et.eq(v["bombs"], 1, "decoded once, not per request: %r" % v)
            et.eq(v["decoded"], 0, "nothing decoded: %r" % v)
            et.ok(e.rss_kib() - rss0 < 200 * 1024,
                  "memory stayed bounded (%d KiB more)"
                  % (e.rss_kib() - rss0))
            et.ok("compression bomb" in e.stderr_text(), "the bomb is logged")
        et.eq(o.count("/bomb"), 2, "origin requests: the fill, the one "
              "identity request while decoding")


def test_bomb_ratio_cap():
    path = "/bomb?size=%d" % (64 << 20)
    with et.Origin() as o:
        port, e = edge(o, "--decompress-max-ratio", "50")
        with e:
            get(e, path, "gzip")
            get(e, path)
            et.wait_for(lambda: variants(port)["bombs"] >= 1, timeout=20,
                        what="stopped by the ratio cap")
            d = get(e, path)
            et.eq(d.status, 406, "then 406")
        port, e2 = edge(o, "--decompress-max-ratio", "0")
        with e2:
            get(e2, path, "gzip")
            get(e2, path)
            et.wait_for(lambda: variants(port)["decoded"] >= 1, timeout=30,
                        what="no ratio cap, under the size cap: decoded")
            # 64 MiB is past a memory shard: served once committed.
            et.wait_for(lambda: stats(port)["cache"]["puts"] >= 2,
                        timeout=30, what="the identity copy committed")
            d = get(e2, path)
            et.eq(d.status, 200, "identity")
            et.eq(len(d.body), 64 << 20, "all of it")
            et.ok(d.body.count(0) == len(d.body), "zeros")


if __name__ == "__main__":
    et.main()
