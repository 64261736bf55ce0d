"""Story: a publishing pipeline purges through purged, and the very next
request to edged sees it.

One node (edged running purged as a child, one cache dir) in front of the
test origin.  Objects are filled, purged by URL (every Vary variant), by
tag (Surrogate-Key and Cache-Tag), by prefix, soft and hard, dry, in a JSON
batch; bad requests get 401, 403, 405, 400 and 413; every purge and refusal
lands in the audit log; edgectl drives the same API."""
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402

TTL = "ttl=300"


def fill(node, path, headers=None):
    r = node.get(path, headers)
    et.eq(r.status, 200, "fill %s" % path)
    r = node.get(path, headers)
    et.ok(pn.cached(r), "%s is a hit after the fill (%s)"
          % (path, r.header("Cache-Status")))


def test_url_purge_every_variant():
    # Two Vary variants (X-Lang), each stored as identity plus the gzip
    # and br copies the node makes of a text body: six objects, one URL.
    path = "/text/v?size=20000&%s&hdr=Vary:X-Lang" % TTL
    with et.Origin() as o, pn.Node(o) as n:
        langs = ["en", "fr"]
        encs = ["gzip", "br", "identity"]
        for lang in langs:
            fill(n, path, [("X-Lang", lang)])
        pn.wait_disk(n, 6)
        for lang in langs:
            for enc in encs:
                r = n.get(path, [("X-Lang", lang), ("Accept-Encoding", enc)])
                et.ok(pn.cached(r), "%s %s cached before" % (lang, enc))
        j = n.purge_ok(target=path)
        et.eq(j["matched"], 6, "one URL: every Vary and coding variant")
        et.eq(j["items"][0]["key"], pn.HOST + path, "the key purged")
        # only-if-cached asks the cache alone (504 when nothing is
        # stored), so one variant's refill cannot hide another's purge.
        for lang in langs:
            for enc in encs:
                r = n.get(path, [("X-Lang", lang), ("Accept-Encoding", enc),
                                 ("Cache-Control", "only-if-cached")])
                et.eq(r.status, 504, "variant %s %s is gone" % (lang, enc))
        before = o.count()
        r = n.get(path, [("X-Lang", "en")])
        et.ok(r.status == 200 and not pn.cached(r), "refetched")
        et.eq(o.count() - before, 1, "from the origin")
        other = "/obj/other?%s" % TTL
        fill(n, other)
        n.purge_ok(target=path)
        et.ok(pn.cached(n.get(other)), "another URL is untouched")


def test_absolute_url_and_dry_run():
    path = "/obj/abs?%s" % TTL
    with et.Origin() as o, pn.Node(o) as n:
        fill(n, path)
        pn.wait_disk(n, 1)
        j = n.purge_ok(target=path + "&dry=1")
        et.eq(j["dry_run"], True, "dry=1 makes a dry run")
        et.eq(j["matched"], 1, "the dry run counts the object")
        et.ok(pn.cached(n.get(path)), "a dry run purges nothing")
        j = n.purge_ok(method="POST", target="/purge",
                       body={"urls": ["http://%s%s" % (pn.HOST, path)],
                             "dry_run": True})
        et.eq(j["matched"], 1, "JSON dry run counts too")
        et.ok(pn.cached(n.get(path)), "still cached")
        # A query on POST /purge was ignored: ?dry=1 purged for real.
        r = n.purge(method="POST", target="/purge?dry=1",
                    body={"urls": ["http://%s%s" % (pn.HOST, path)]})
        et.eq(r.status, 400, "POST /purge with a query: 400 (%s)" % r.body)
        et.ok(b"dry_run" in r.body, "saying where the options go")
        et.ok(pn.cached(n.get(path)), "and nothing purged")
        j = n.purge_ok(target="http://%s%s" % (pn.HOST, path))
        et.eq(j["matched"], 1, "absolute-form target")
        et.ok(not pn.cached(n.get(path)), "purged")


def test_tag_purge():
    a = "/obj/a?%s&hdr=Surrogate-Key:news%%20sport" % TTL
    b = "/obj/b?%s&hdr=Cache-Tag:sport,weather" % TTL
    c = "/obj/c?%s&hdr=Surrogate-Key:news" % TTL
    d = "/obj/d?%s" % TTL
    with et.Origin() as o, pn.Node(o) as n:
        for p in (a, b, c, d):
            fill(n, p)
        pn.wait_disk(n, 4)
        j = n.purge_ok(headers=[("Surrogate-Key", "sport")])
        et.eq(j["items"][0]["type"], "tag", "a tag purge")
        et.eq(j["items"][0]["matched"], 2, "two objects carry sport")
        for p in (a, b):
            et.ok(not pn.cached(n.get(p)), "%s (tagged sport) purged" % p)
        for p in (c, d):
            et.ok(pn.cached(n.get(p)), "%s (not sport) still cached" % p)
        # what was refilled after the purge is fresh again
        et.ok(pn.cached(n.get(b)), "the refill of b is cached")
        # xkey is the Varnish spelling; several tags at once
        n.purge_ok(headers=[("xkey", "news weather")])
        et.ok(not pn.cached(n.get(c)), "xkey purge")
        et.ok(pn.cached(n.get(d)), "untagged object still cached")
        et.ok(not pn.cached(n.get(b)), "b (tagged weather) purged again")
        s = n.stats()["cache"]["purges"]
        et.ok(s["hard"] >= 4 and s["seq"] == 2, "purge counters: %s" % s)


def test_surrogate_key_kept_from_clients():
    p = "/obj/sk?%s&hdr=Surrogate-Key:x&hdr=Cache-Tag:y" % TTL
    with et.Origin() as o, pn.Node(o) as n:
        r = n.get(p)
        et.ok(not r.has("Surrogate-Key"), "Surrogate-Key not passed on")
        et.ok(r.has("Cache-Tag"), "Cache-Tag passed on")
        r = n.get(p)
        et.ok(pn.cached(r) and not r.has("Surrogate-Key"),
              "nor on a hit")
    with et.Origin() as o, pn.Node(o, "--surrogate-key-pass", "1") as n:
        et.ok(n.get(p).has("Surrogate-Key"), "passed on when configured")


def test_prefix_purge_json_batch():
    paths = ["/obj/static/%d?%s" % (i, TTL) for i in range(3)]
    other = "/obj/dynamic/1?%s" % TTL
    tagged = "/obj/t?%s&hdr=Surrogate-Key:batch" % TTL
    with et.Origin() as o, pn.Node(o) as n:
        for p in paths + [other, tagged]:
            fill(n, p)
        j = n.purge_ok(method="POST", target="/purge", body={
            "prefixes": ["http://%s/obj/static/" % pn.HOST],
            "tags": ["batch"],
            "urls": ["http://%s/obj/none" % pn.HOST]})
        et.eq(len(j["items"]), 3, "three items")
        et.ok(j["seq"] > 0, "a sequence number")
        for p in paths + [tagged]:
            et.ok(not pn.cached(n.get(p)), "%s purged" % p)
        et.ok(pn.cached(n.get(other)), "outside the prefix: cached")


def test_soft_purge():
    p = "/obj/soft?%s" % TTL
    h = "/obj/hard?%s" % TTL
    stale_ok = [("Cache-Control", "max-stale=600")]
    with et.Origin() as o, pn.Node(o) as n:
        fill(n, p)
        fill(n, h)
        j = n.purge_ok(target=p, headers=[("Purge-Mode", "soft")])
        et.eq(j["soft"], True, "soft")
        n.purge_ok(target=h)
        # A client that accepts stale content still gets the soft-purged
        # object from the cache: stale, not gone.
        r = n.get(p, stale_ok)
        et.ok(pn.cached(r), "soft-purged object served stale "
              "to a max-stale client (%s)" % r.header("Cache-Status"))
        r = n.get(h, stale_ok)
        et.ok(not pn.cached(r), "hard-purged object is gone even for "
              "max-stale")
        # An ordinary request does not take it as fresh: it revalidates.
        before = o.count()
        r = n.get(p)
        et.ok(not pn.cached(r), "soft-purged object is not fresh (%s)"
              % r.header("Cache-Status"))
        et.eq(o.count() - before, 1, "the origin was asked")
        et.ok(pn.cached(n.get(p)), "the refreshed object is fresh")


def test_auth_and_acl():
    p = "/obj/auth?%s" % TTL
    with et.Origin() as o, pn.Node(o) as n:
        fill(n, p)
        r = n.purge(target=p, token=None)
        et.eq(r.status, 401, "no token")
        et.ok("Bearer" in (r.header("WWW-Authenticate") or ""),
              "WWW-Authenticate")
        et.eq(n.purge(target=p, token="wrong").status, 401, "wrong token")
        et.ok(pn.cached(n.get(p)), "refused purges purge nothing")
        # Nothing purges through edged's public listener.
        r = n.edge.request("PURGE", p)
        et.ok(r.status != 200 or pn.cached(n.get(p)),
              "PURGE on the public listener does not purge")
        et.ok(pn.cached(n.get(p)), "still cached")
        lines = n.audit_lines()
        et.ok(sum("refused=401" in l and "client=127.0.0.1" in l
                  for l in lines) == 2, "both refusals audited:\n%s"
              % "\n".join(lines))
        et.wait_for(lambda: "401 for client 127.0.0.1" in
                    n.edge.stderr_text(), 3, 0.05, "refusal logged")
    with et.Origin() as o, pn.Node(o, allow=["10.0.0.0/8"]) as n:
        fill(n, p)
        r = n.purge(target=p)
        et.eq(r.status, 403, "address outside purge_allow")
        et.ok(pn.cached(n.get(p)), "forbidden purge purges nothing")
        et.ok(any("refused=403" in l for l in n.audit_lines()),
              "403 audited")


def test_bad_input():
    with et.Origin() as o, pn.Node(o) as n:
        et.eq(n.purge(method="DELETE", target="/x").status, 405, "DELETE")
        r = n.purge(method="POST", target="/purge", body=b'{"urls": [')
        et.eq(r.status, 400, "bad JSON")
        et.ok("bad JSON at line 1" in r.body.decode(), "says where: %s"
              % r.body)
        r = n.purge(method="POST", target="/purge", body={"url": ["x"]})
        et.eq(r.status, 400, "unknown member")
        et.ok("unknown member" in r.body.decode(), "says which")
        r = n.purge(method="POST", target="/purge",
                    body={"urls": ["not a url"]})
        et.eq(r.status, 400, "not a URL")
        r = n.purge(method="POST", target="/purge", body={"soft": 1,
                                                          "tags": ["a"]})
        et.eq(r.status, 400, "soft must be a boolean")
        r = n.purge(method="POST", target="/purge", body={})
        et.eq(r.status, 400, "nothing to purge")
        r = n.purge(method="POST", target="/purge", body={
            "prefixes": ["http://h/" + "p" * 600]})
        et.eq(r.status, 400, "prefix too long")
        et.ok("longer than 500" in r.body.decode(), "says so: %s" % r.body)
        # A body where none is read is answered (the server then closes:
        # the unread body leaves the framing unknown).
        h = [("Authorization", "Bearer " + pn.TOKEN)]
        r = n.purge(target="/obj/none", body=b"x" * 5000)
        et.eq(r.status, 200, "PURGE with a body")
        r = n.purge(method="GET", target="/inspect?url=http://h/",
                    body=b"y" * 100)
        et.eq(r.status, 200, "inspect with a body")
        et.eq(n.purge(method="GET", target="/healthz").status, 200,
              "purged still serves")
        r = n.purge(method="POST", target="/purge",
                    body=b"[" + b" " * (2 << 20) + b"]")
        et.eq(r.status, 413, "too large")
        with et.Client(n.pport) as c:
            r = c.request("PURGE", "/x", [("Authorization",
                                           "Bearer " + pn.TOKEN)],
                          version="HTTP/1.0")
            et.eq(r.status, 400, "no Host: 400")


def test_audit_log():
    p = "/obj/aud?%s" % TTL
    with et.Origin() as o, pn.Node(o) as n:
        fill(n, p)
        pn.wait_disk(n, 1)
        j = n.purge_ok(target=p)
        n.purge_ok(headers=[("Surrogate-Key", "t1"),
                            ("Purge-Mode", "soft")])
        lines = [l for l in n.audit_lines() if "seq=" in l]
        et.eq(len(lines), 2, "one line per purge")
        l0 = lines[0]
        for part in ("client=127.0.0.1", "token=ci", "seq=%d" % j["seq"],
                     "mode=hard", "matched=1", "ms=",
                     "url:%s/obj/aud" % pn.HOST):
            et.ok(part in l0, "%r in %r" % (part, l0))
        et.ok("mode=soft" in lines[1] and "tag:t1" in lines[1],
              "soft tag purge line: %r" % lines[1])
        et.ok(l0[:4].isdigit() and "T" in l0.split()[0], "timestamped")


def test_edgectl():
    ctl = pn.edgectl_path()
    if not os.access(ctl, os.X_OK):
        raise et.Skip("edgectl not built")
    p = "/obj/ctl?%s&hdr=Surrogate-Key:ctl" % TTL
    with et.Origin() as o, pn.Node(o) as n:
        fill(n, p)
        pn.wait_disk(n, 1)
        env = dict(os.environ,
                   EDGECTL_PURGE_API="http://127.0.0.1:%d" % n.pport,
                   EDGECTL_ADMIN="http://127.0.0.1:%d" % n.aport,
                   EDGECTL_TOKEN_FILE=n.token_file)

        def run(*args):
            return subprocess.run([ctl] + list(args), env=env,
                                  capture_output=True, timeout=20)

        r = run("--json", "inspect", "http://%s%s" % (pn.HOST, p))
        et.eq(r.returncode, 0, "inspect: %s" % r.stderr)
        j = json.loads(r.stdout)
        v = j["keys"][0]["variants"]
        et.eq(len(v), 1, "one variant stored")
        et.eq(v[0]["tags"], ["ctl"], "tags shown")
        et.eq(v[0]["status"], 200, "status shown")
        et.ok(0 < v[0]["ttl_left"] <= 300, "TTL left shown")
        et.eq(v[0]["size"], 1024, "size shown")
        r = run("inspect", "http://%s%s" % (pn.HOST, p))
        et.ok(b"tags: ctl" in r.stdout, "text inspect: %s" % r.stdout)

        r = run("--json", "purge", "--tag", "ctl", "--soft")
        et.eq(r.returncode, 0, "purge: %s" % r.stderr)
        et.eq(json.loads(r.stdout)["soft"], True, "soft purge")
        r = run("--json", "inspect", "http://%s%s" % (pn.HOST, p))
        et.eq(json.loads(r.stdout)["keys"][0]["variants"][0]["purged"],
              "soft", "inspect shows the soft purge")
        r = run("purge", "--url", "http://%s%s" % (pn.HOST, p))
        et.eq(r.returncode, 0, "URL purge: %s" % r.stderr)
        et.ok(b"matched" in r.stdout, "text output: %s" % r.stdout)
        et.ok(not pn.cached(n.get(p)), "purged through edgectl")

        r = run("--json", "stats")
        et.eq(r.returncode, 0, "stats: %s" % r.stderr)
        et.ok("requests" in json.loads(r.stdout) or json.loads(r.stdout),
              "stats JSON")
        r = run("purge")
        et.eq(r.returncode, 2, "purge without items is a usage error")
        bad = dict(env, EDGECTL_TOKEN_FILE=pn.token_file(
            et.mktemp("bad"), ["nope"]))
        r = subprocess.run([ctl, "purge", "--tag", "x"], env=bad,
                           capture_output=True, timeout=20)
        et.eq(r.returncode, 1, "a refused purge fails")
        et.ok(b"401" in r.stderr, "says 401: %s" % r.stderr)


def test_edgectl_rough_edges():
    # What a new user tripped over.
    ctl = pn.edgectl_path()
    if not os.access(ctl, os.X_OK):
        raise et.Skip("edgectl not built")
    p = "/obj/rough?%s&hdr=Surrogate-Key:rough" % TTL
    with et.Origin() as o, pn.Node(o) as n:
        fill(n, p)
        pn.wait_disk(n, 1)
        env = dict(os.environ,
                   EDGECTL_PURGE_API="http://127.0.0.1:%d" % n.pport,
                   EDGECTL_ADMIN="http://127.0.0.1:%d" % n.aport,
                   EDGECTL_TOKEN_FILE=n.token_file)

        def run(*args, env=env):
            return subprocess.run([ctl] + list(args), env=env,
                                  capture_output=True, text=True,
                                  timeout=20)

        # --json after the command, and inspect names the variant.
        r = run("inspect", "http://%s%s" % (pn.HOST, p), "--json")
        et.eq(r.returncode, 0, "inspect ... --json: %s" % r.stderr)
        v = json.loads(r.stdout)["keys"][0]["variants"][0]
        et.eq(v["variant"], "identity", "the variant by its coding")
        r = run("inspect", "http://%s%s" % (pn.HOST, p))
        et.ok("variant identity:" in r.stdout, "text: %s" % r.stdout)

        # A tag purge says what matched, not "by URL".
        r = run("purge", "--tag", "rough", "--dry-run")
        et.eq(r.returncode, 0, "tag purge: %s" % r.stderr)
        et.ok("by URL" not in r.stdout and "tag rough: 1 matched"
              in r.stdout and ": 1 object(s) matched," in r.stdout,
              "tag purge output: %s" % r.stdout)

        # A prefix purge says, checkably, that it does not count.
        r = run("purge", "--prefix", "http://%s/obj/" % pn.HOST,
                "--dry-run", "--json")
        et.eq(r.returncode, 0, "prefix purge: %s" % r.stderr)
        j = json.loads(r.stdout)
        et.eq((j["counted"], j["items"][0]["counted"],
               j["items"][0]["matched"]), (False, False, None),
              "not counted, and says so: %s" % j)
        r = run("purge", "--prefix", "http://%s/obj/" % pn.HOST,
                "--dry-run")
        et.ok("not counted" in r.stdout, "text: %s" % r.stdout)
        r = run("purge", "--url", "http://%s%s" % (pn.HOST, p),
                "--dry-run", "--json")
        j = json.loads(r.stdout)
        et.eq((j["matched"], j["counted"]), (1, True), "a URL counts")

        # No token file: said so, before any request is made.
        bare = {k: v for k, v in env.items() if k != "EDGECTL_TOKEN_FILE"}
        for args in (["purge", "--tag", "x"], ["fleet"],
                     ["inspect", "http://%s/x" % pn.HOST]):
            r = run(*args, env=bare)
            et.eq(r.returncode, 2, "%s without a token file" % args)
            et.ok("no token file" in r.stderr and "401" not in r.stderr,
                  "%s: %s" % (args, r.stderr))
        missing = os.path.join(et.mktemp("tok"), "nope")
        r = run("purge", "--tag", "x", "--token-file", missing, env=bare)
        et.eq(r.returncode, 1, "a token file that is not there")
        et.ok(missing in r.stderr and "No such file" in r.stderr and
              "401" not in r.stderr, "named as missing: %s" % r.stderr)
        et.ok(pn.cached(n.get(p)), "nothing was purged (dry runs only)")


def test_soft_purge_keeps_stale_protection():
    # With a grace period, a soft-purged object is answered at once while
    # one background request refreshes it; with the origin failing, it is
    # served as stale-if-error.  A hard-purged one has neither.
    with et.Origin() as o, pn.Node(o, "--cache-grace", "60s",
                                   "--cache-stale-if-error", "1h",
                                   "--cache-query-drop", "status") as n:
        p = "/obj/sp?%s" % TTL
        fill(n, p)
        n.purge_ok(target=p, headers=[("Purge-Mode", "soft")])
        before = o.count()
        r = n.get(p)
        et.ok("stale-while-revalidate" in r.header("Cache-Status"),
              "answered stale, refreshed behind: %s"
              % r.header("Cache-Status"))
        et.wait_for(lambda: o.count() - before == 1, 5,
                    what="one background refresh")
        et.wait_for(lambda: n.get(p).header("Cache-Status").startswith(
            "edged; hit; ttl="), 5, what="the refreshed object")
    with et.Origin() as o, pn.Node(o, "--cache-stale-if-error", "1h",
                                   "--cache-query-drop", "status") as n:
        q = "/obj/sq?%s" % TTL
        fill(n, q)
        n.purge_ok(target=q, headers=[("Purge-Mode", "soft")])
        r = n.get(q + "&status=503")
        et.eq(r.status, 200, "origin 503: the soft-purged copy instead")
        et.ok("stale-if-error" in r.header("Cache-Status"),
              r.header("Cache-Status"))
        n.purge_ok(target=q)
        r = n.get(q + "&status=503")
        et.eq(r.status, 503, "after a hard purge the error comes through")


def test_request_after_a_purge_never_joins_an_older_fetch():
    with et.Origin() as o, pn.Node(o, "--cache-query-drop", "delay_ms") as n:
        p = "/obj/race?%s" % TTL
        out = {}

        def first():
            out["a"] = n.get(p + "&delay_ms=1200")

        import threading
        t = threading.Thread(target=first)
        t.start()
        et.wait_for(lambda: o.count("/obj/race") == 1, 5,
                    what="the first fetch to reach the origin")
        n.purge_ok(target=p)
        r = n.get(p + "&delay_ms=200")
        t.join(10)
        et.eq(r.status, 200, "answered")
        et.ok("collapsed" not in r.header("Cache-Status"),
              "did not wait on the fetch from before the purge: %s"
              % r.header("Cache-Status"))
        et.eq(o.count("/obj/race"), 2, "a fetch of its own")
        et.eq(out["a"].status, 200, "the first client got its answer")


if __name__ == "__main__":
    et.main()
