"""Every range form against every tier and every coding.

A 416 for an object on disk but not in the memory tier once aborted edged
(the plan sent no byte, so no chunk was read, and the sender asserted that
the body was loaded).  Here each form (single, suffix, open, multipart,
unsatisfiable, If-Range that matches and one that does not) is asked of
each tier (the memory tier; the disk alone, after a restart with no memory
tier; a shared fill still arriving) in each coding (identity, and gzip and
br: variants the node made, or, for the fill, a coding the origin sent).
The identity objects span several 256 KiB chunks, so a range reads only
some of them; the coded copies and one object are small, as in the first
report."""
import json
import sys
import threading
import urllib.request

sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402

TEXT = 300000  # the text body; its coded copies are a few chunks or less
OBJ = "/obj/m?size=700000&ttl=300&hdr=ETag:%22m%22"
SMALL = "/obj/s?size=2000&ttl=300&hdr=ETag:%22s%22"
TXT = "/text/t?size=%d&ttl=300&hdr=ETag:%%22t%%22" % TEXT
CODINGS = ("identity", "gzip", "br")


def forms(n, etag):
    """(name, Range, If-Range, what the answer is) for a representation
    of <n> bytes: ("206", [(first, last), ...]), ("200",) or ("416",)."""
    return [
        ("single", "bytes=10-99", None, ("206", [(10, 99)])),
        ("suffix", "bytes=-100", None, ("206", [(n - 100, n - 1)])),
        ("open", "bytes=%d-" % (n - 50), None, ("206", [(n - 50, n - 1)])),
        ("multipart", "bytes=0-9,%d-%d" % (n // 2, n // 2 + 9), None,
         ("206", [(0, 9), (n // 2, n // 2 + 9)])),
        ("unsatisfiable", "bytes=%d-%d" % (n + 1000, n + 2000), None,
         ("416",)),
        ("if-range match", "bytes=20-29", etag, ("206", [(20, 29)])),
        ("if-range mismatch", "bytes=20-29", '"nope"', ("200",)),
    ]


def check(r, ref, want, coded, what):
    """<r> answers a form whose expectation is <want> over <ref>."""
    n = len(ref)
    kind = want[0]
    if kind == "206" and len(want[1]) > 1 and coded:
        kind = "200"  # a coded representation is never cut in parts
    if kind == "416":
        et.eq(r.status, 416, what + ": status")
        et.eq(r.header("content-range"), "bytes */%d" % n,
              what + ": Content-Range")
        et.eq(r.body, b"", what + ": no body")
    elif kind == "200":
        et.eq(r.status, 200, what + ": status")
        et.eq(r.body, ref, what + ": the whole representation")
    elif len(want[1]) == 1:
        a, b = want[1][0]
        et.eq(r.status, 206, what + ": status")
        et.eq(r.header("content-range"), "bytes %d-%d/%d" % (a, b, n),
              what + ": Content-Range")
        et.eq(r.body, ref[a:b + 1], what + ": the bytes asked for")
    else:
        et.eq(r.status, 206, what + ": status")
        parts = et.parse_multipart(r)
        et.eq([d for _, d in parts], [ref[a:b + 1] for a, b in want[1]],
              what + ": the parts")
        for (f, _), (a, b) in zip(parts, want[1]):
            et.eq(f["content-range"], "bytes %d-%d/%d" % (a, b, n),
                  what + ": a part's Content-Range")
    if coded and r.status != 416:
        et.eq(r.header("content-encoding"), coded, what + ": its coding")


def stats(port):
    with et.Client(port) as c:
        return json.loads(c.request("GET", "/stats").body)


def ae(coding):
    return {"Accept-Encoding": coding}


def representations(e):
    """(path, coding, body, ETag) of every stored representation."""
    reps = []
    for path, codings in ((OBJ, ("identity",)), (SMALL, ("identity",)),
                          (TXT, CODINGS)):
        for c in codings:
            r = e.request("GET", path, headers=ae(c))
            et.eq(r.status, 200, "%s %s: whole" % (path, c))
            et.eq(r.header("content-encoding"),
                  None if c == "identity" else c, "%s: %s copy" % (path, c))
            reps.append((path, c, r.body, r.header("etag")))
    return reps


def ask_every_form(e, reps, tier):
    for path, coding, ref, etag in reps:
        coded = None if coding == "identity" else coding
        for name, rng, ifr, want in forms(len(ref), etag):
            h = ae(coding)
            h["Range"] = rng
            if ifr is not None:
                h["If-Range"] = ifr
            r = e.request("GET", path, headers=h)
            what = "%s, %s %s, %s" % (tier, path.split("?")[0], coding, name)
            check(r, ref, want, coded, what)
            et.ok(r.header("cache-status").startswith("edged; hit"),
                  what + ": a hit (%s)" % r.header("cache-status"))


@et.timeout(120)
def test_every_form_from_memory_and_from_disk_alone():
    with et.Origin() as o:
        admin = et.free_port()
        d = et.mktemp("cache") + "/c"
        args = ["--cache-dir", d, "--admin-listen", "127.0.0.1:%d" % admin]
        with et.Edge(o.url, *args) as e:
            e.request("GET", TXT)
            et.wait_for(lambda: stats(admin)["cache"]["variants"]["made"]
                        >= 2, what="gzip and br copies made")
            reps = representations(e)
            ask_every_form(e, reps, "memory")
            et.wait_for(lambda: stats(admin)["cache"]["puts"] >= 5,
                        what="every copy committed")
        # A new process, and no memory tier: every answer is read from
        # LMDB, and a range reads only the chunks it needs.
        with et.Edge(o.url, *(args + ["--memory-size", "0"])) as e:
            ask_every_form(e, reps, "disk")
            et.ok(stats(admin)["cache"]["variants"]["partial_reads"] > 0,
                  "ranges read only their chunks")
        for p in (OBJ, SMALL, TXT):
            et.eq(o.count(p.split("?")[0]), 1, p + ": fetched once")


def origin_bytes(o, target):
    with urllib.request.urlopen(o.url + target, timeout=10) as r:
        return r.read()


@et.timeout(120)
def test_every_form_from_a_fill_in_progress():
    """Each waiter joins a fill whose origin pauses after its first 100
    bytes (the br copy of the text is about 200), so every answer is cut
    from bytes as they arrive."""
    with et.Origin() as o:
        d = et.mktemp("cache") + "/c"
        with et.Edge(o.url, "--cache-dir", d) as e:
            for coding in CODINGS:
                if coding == "identity":
                    path = "/obj/f-%s?size=700000&ttl=300&hdr=ETag:%%22f%%22"
                    ref = et.pattern(0, 700000)
                else:
                    q = "size=%d&enc=%s" % (TEXT, coding)
                    path = "/text/f-%s?" + q + "&ttl=300&hdr=ETag:%%22f%%22"
                    ref = origin_bytes(o, "/text/ref?" + q)
                path = (path % coding) + "&pause_after=100&pause_ms=1500"
                cases = forms(len(ref), '"f"')
                got = [None] * (len(cases) + 1)

                def ask(i, headers):
                    with et.Client(e.port) as c:
                        got[i] = c.request("GET", path, headers=headers)

                lead = threading.Thread(target=ask, args=(0, ae(coding)))
                lead.start()
                et.wait_for(lambda: o.count(path.split("?")[0]) == 1,
                            what="the fill has begun")
                threads = []
                for i, (_, rng, ifr, _) in enumerate(cases, 1):
                    h = ae(coding)
                    h["Range"] = rng
                    if ifr is not None:
                        h["If-Range"] = ifr
                    threads.append(threading.Thread(target=ask, args=(i, h)))
                    threads[-1].start()
                for t in [lead] + threads:
                    t.join(30)
                et.eq(got[0].body, ref, coding + ": the leader's body")
                for i, (name, _, _, want) in enumerate(cases, 1):
                    what = "fill, %s, %s" % (coding, name)
                    et.ok(got[i] is not None, what + ": answered")
                    check(got[i], ref, want,
                          None if coding == "identity" else coding, what)
                    et.ok("collapsed" in got[i].header("cache-status"),
                          what + ": joined the fill (%s)"
                          % got[i].header("cache-status"))
                et.eq(o.count(path.split("?")[0]), 1,
                      coding + ": one origin request")


if __name__ == "__main__":
    et.main()
