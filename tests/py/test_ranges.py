"""Range requests (RFC 9110 14) answered from cache: single, suffix and
open ranges, several ranges as multipart/byteranges, If-Range with an
ETag or a date, 416, ranges of a compressed variant over its own bytes,
ranges of a 100 MiB object, a miss answered from the whole fetch, and
objects too large to store passed to the origin with their Range."""
import json
import sys

sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402

LM = "Tue, 15 Nov 2022 08:12:31 GMT"
OBJ = "/obj/r?size=100000&ttl=300&hdr=ETag:%22r1%22&hdr=Last-Modified:" + \
    LM.replace(" ", "%20")


def admin_args():
    port = et.free_port()
    return port, ["--admin-listen", "127.0.0.1:%d" % port]


def stats(port):
    with et.Client(port) as c:
        return json.loads(c.request("GET", "/stats").body)


def edge(o, *args):
    port, extra = admin_args()
    d = et.mktemp("cache") + "/c"
    return port, et.Edge(o.url, "--cache-dir", d, *(list(extra) + list(args)))


def rget(e, path, rng=None, extra=None):
    h = {}
    if rng is not None:
        h["Range"] = rng
    h.update(extra or {})
    return e.request("GET", path, headers=h)


def check_206(r, first, last, total, what):
    et.eq(r.status, 206, what + " status")
    et.eq(r.header("content-range"), "bytes %d-%d/%d" % (first, last, total),
          what + " Content-Range")
    et.eq(int(r.header("content-length")), last - first + 1,
          what + " Content-Length")
    et.check_pattern(r.body, None, first)
    et.eq(len(r.body), last - first + 1, what + " length")


def test_single_suffix_open_ranges_from_cache():
    with et.Origin() as o:
        port, e = edge(o)
        with e:
            r = rget(e, OBJ)
            et.eq(r.status, 200, "fill")
            cases = [("bytes=0-99", 0, 99), ("bytes=500-", 500, 99999),
                     ("bytes=-100", 99900, 99999), ("bytes=99999-", 99999,
                                                    99999),
                     ("bytes=0-999999", 0, 99999),
                     ("bytes=262140-262150", None, None),
                     ("bytes=1000-1000", 1000, 1000)]
            for rng, a, b in cases:
                r = rget(e, OBJ, rng)
                if a is None:
                    et.eq(r.status, 416, rng)
                    continue
                check_206(r, a, b, 100000, rng)
                et.ok(r.header("cache-status").startswith("edged; hit"),
                      "%s: a hit" % rng)
                et.eq(r.header("etag"), '"r1"', "ETag kept")
            h = e.request("HEAD", OBJ, headers={"Range": "bytes=0-9"})
            et.eq(h.status, 200, "HEAD ignores Range")
        et.eq(o.count("/obj/r"), 1, "one origin request")


def test_range_across_chunks_of_a_large_object():
    size = 3 * 256 * 1024 + 10
    path = "/obj/chunks?size=%d&ttl=300" % size
    with et.Origin() as o:
        port, e = edge(o)
        with e:
            rget(e, path)
            a, b = 256 * 1024 - 5, 2 * 256 * 1024 + 5
            check_206(rget(e, path, "bytes=%d-%d" % (a, b)), a, b, size,
                      "across three chunks")


def test_multiple_ranges_are_multipart():
    with et.Origin() as o:
        port, e = edge(o)
        with e:
            rget(e, OBJ)
            r = rget(e, OBJ, "bytes=0-9, 50000-50009, -5")
            et.eq(r.status, 206, "status")
            et.eq(r.header("content-range"), None, "no top Content-Range")
            parts = et.parse_multipart(r)
            want = [(0, 9), (50000, 50009), (99995, 99999)]
            et.eq(len(parts), 3, "three parts")
            for (f, data), (a, b) in zip(parts, want):
                et.eq(f["content-range"], "bytes %d-%d/100000" % (a, b),
                      "part Content-Range")
                et.eq(f["content-type"], "application/octet-stream",
                      "part Content-Type")
                et.check_pattern(data, None, a)
                et.eq(len(data), b - a + 1, "part length")
            # Overlapping and unsorted ranges are coalesced.
            r = rget(e, OBJ, "bytes=20-29,0-24")
            check_206(r, 0, 29, 100000, "coalesced")
            # Too many ranges: the whole body.
            many = ",".join("%d-%d" % (i * 10, i * 10) for i in range(17))
            r = rget(e, OBJ, "bytes=" + many)
            et.eq(r.status, 200, "17 ranges: 200")
            et.eq(len(r.body), 100000, "whole body")


def test_unsatisfiable_and_malformed_ranges():
    with et.Origin() as o:
        port, e = edge(o)
        with e:
            rget(e, OBJ)
            for rng in ("bytes=100000-", "bytes=200000-300000", "bytes=-0"):
                r = rget(e, OBJ, rng)
                et.eq(r.status, 416, rng)
                et.eq(r.header("content-range"), "bytes */100000",
                      rng + " Content-Range")
                et.eq(r.body, b"", rng + " no body")
            for rng in ("bytes=9-1", "items=0-9", "bytes=abc", "bytes="):
                r = rget(e, OBJ, rng)
                et.eq(r.status, 200, "%s ignored" % rng)
                et.eq(len(r.body), 100000, "%s whole body" % rng)


def test_if_range_match_and_mismatch():
    with et.Origin() as o:
        port, e = edge(o)
        with e:
            rget(e, OBJ)
            cases = [('"r1"', 206), ('"other"', 200), ('W/"r1"', 200),
                     (LM, 206), ("Tue, 15 Nov 2022 08:12:32 GMT", 200),
                     ("garbage", 200)]
            for ifr, status in cases:
                r = rget(e, OBJ, "bytes=10-19", {"If-Range": ifr})
                et.eq(r.status, status, "If-Range: %s" % ifr)
                if status == 206:
                    check_206(r, 10, 19, 100000, ifr)
                else:
                    et.eq(len(r.body), 100000, "whole body for %s" % ifr)


def test_ranges_of_a_compressed_variant_are_over_its_bytes():
    path = "/text/rz?size=200000&ttl=300&hdr=ETag:%22z%22"
    with et.Origin() as o:
        port, e = edge(o)
        with e:
            rget(e, path)
            et.wait_for(lambda: stats(port)["cache"]["variants"]["made"] >= 2,
                        what="variants made")
            full = e.request("GET", path, headers={"Accept-Encoding": "gzip"})
            et.eq(full.header("content-encoding"), "gzip", "gzip variant")
            n = len(full.body)
            r = e.request("GET", path, headers={"Accept-Encoding": "gzip",
                                                "Range": "bytes=10-49"})
            et.eq(r.status, 206, "206 of the gzip variant")
            et.eq(r.header("content-encoding"), "gzip", "still gzip")
            et.eq(r.header("content-range"), "bytes 10-49/%d" % n,
                  "over the encoded length")
            et.eq(r.body, full.body[10:50], "the encoded bytes")
            r = e.request("GET", path, headers={"Accept-Encoding": "gzip",
                                                "Range": "bytes=0-9",
                                                "If-Range": '"z"'})
            et.eq(r.status, 200, "the identity ETag does not match gzip")
            r = e.request("GET", path, headers={"Accept-Encoding": "gzip",
                                                "Range": "bytes=0-9",
                                                "If-Range": '"z-gzip"'})
            et.eq(r.status, 206, "the gzip ETag does")
            r = e.request("GET", path, headers={"Accept-Encoding": "br",
                                                "Range": "bytes=0-1,5-6"})
            et.eq(r.status, 200, "no multipart of a coded variant: whole")
            et.eq(r.header("content-encoding"), "br", "br")


def test_a_range_miss_is_answered_from_the_whole_fetch():
    path = "/obj/miss?size=500000&ttl=300"
    with et.Origin() as o:
        port, e = edge(o)
        with e:
            r = rget(e, path, "bytes=300000-300099")
            check_206(r, 300000, 300099, 500000, "miss")
            et.ok("stored" in r.header("cache-status"),
                  "the whole response was stored: %s"
                  % r.header("cache-status"))
            et.wait_for(lambda: stats(port)["cache"]["puts"] >= 1,
                        what="committed")
            r = rget(e, path)
            et.eq(r.status, 200, "then the whole")
            et.check_pattern(r.body, 500000)
            r = rget(e, "/obj/miss2?size=5000&ttl=300", "bytes=0-1,10-11")
            parts = et.parse_multipart(r)
            et.eq([p[1] for p in parts], [et.pattern(0, 2), et.pattern(10, 2)],
                  "multipart on a miss")
            r = rget(e, "/obj/miss3?size=5000&ttl=300", "bytes=9000-")
            et.eq(r.status, 416, "416 on a miss")
            et.eq(r.header("content-range"), "bytes */5000", "its range")
            for p in ("/obj/miss", "/obj/miss2", "/obj/miss3"):
                et.eq(o.count(p), 1, "%s fetched once" % p)
            r = rget(e, "/obj/miss3?size=5000&ttl=300")
            et.ok(r.header("cache-status").startswith("edged; hit"),
                  "the 416 miss stored the object")


@et.timeout(240)
def test_ranges_on_a_100_mib_object():
    size = 100 << 20
    path = "/obj/big?size=%d&ttl=300" % size
    d = et.mktemp("cache") + "/c"
    args = ["--cache-dir", d, "--max-object-size", "128M", "--memory-size",
            "2G", "--cache-size", "2G"]
    want = [(0, 0), (size // 2, size // 2 + 65535), (size - 100, size - 1),
            (77777777, 78888888)]
    with et.Origin() as o:
        port, extra = admin_args()
        with et.Edge(o.url, *(args + extra)) as e:
            r = rget(e, path, "bytes=1000-1999")
            check_206(r, 1000, 1999, size, "miss on 100 MiB")
            et.wait_for(lambda: stats(port)["cache"]["puts"] >= 1,
                        timeout=60, what="the 100 MiB object committed")
            for a, b in want:
                r = rget(e, path, "bytes=%d-%d" % (a, b))
                check_206(r, a, b, size, "range %d-%d" % (a, b))
                et.ok(r.header("cache-status").startswith("edged; hit"),
                      "a hit")
            r = rget(e, path, "bytes=-10,50000000-50000009")
            parts = et.parse_multipart(r)
            et.eq(len(parts), 2, "two parts")
            et.check_pattern(parts[0][1], None, 50000000)
            et.check_pattern(parts[1][1], None, size - 10)
        # A new process: the object is on disk only.  Ranges read only
        # the chunks they cover.
        port, extra = admin_args()
        with et.Edge(o.url, *(args + extra)) as e:
            rss0 = e.rss_kib()
            for a, b in want:
                r = rget(e, path, "bytes=%d-%d" % (a, b))
                check_206(r, a, b, size, "from disk: range %d-%d" % (a, b))
            s = stats(port)["cache"]
            et.eq(s["hits_disk"], len(want), "disk hits")
            et.eq(s["variants"]["partial_reads"], len(want),
                  "each read only its chunks: %r" % s["variants"])
            et.ok(e.rss_kib() - rss0 < 40 * 1024,
                  "no whole 100 MiB body loaded (%d KiB more)"
                  % (e.rss_kib() - rss0))
            r = rget(e, path, "bytes=5-9", {"If-Range": '"nope"'})
            et.eq(r.status, 200, "If-Range mismatch: the whole, from disk")
            et.check_pattern(r.body, size)
        et.eq(o.count("/obj/big"), 1, "one origin request")


def test_too_large_objects_pass_their_range_to_the_origin():
    path = "/obj/huge?size=%d&ttl=300&ranges=1" % (3 << 20)
    with et.Origin() as o:
        port, e = edge(o, "--max-object-size", "1M")
        with e:
            r = rget(e, path, "bytes=100-199")
            check_206(r, 100, 199, 3 << 20, "first: from the whole fetch")
            et.eq(r.header("x-origin-range"), None,
                  "the first fetch was whole")
            for rng, a, b in (("bytes=100-199", 100, 199),
                              ("bytes=-50", (3 << 20) - 50, (3 << 20) - 1)):
                r = rget(e, path, rng)
                check_206(r, a, b, 3 << 20, "then from the origin")
                et.eq(r.header("x-origin-range"), rng,
                      "the origin got the Range")
                et.ok("stored" not in r.header("cache-status"),
                      "not stored: %s" % r.header("cache-status"))
        et.eq(o.count("/obj/huge"), 3, "every request went to the origin")


if __name__ == "__main__":
    et.main()
