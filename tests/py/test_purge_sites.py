#!/usr/bin/env python3
"""Story: sites that key their objects their own way are purged by URL all
the same.

One node serves three sites besides its top level (which keeps queries
and keys http and https alike): drop.test leaves the query out of its keys
(cache_query drop), *.utm.test leaves utm_* parameters out
(cache_query_drop utm_*), and scheme.test keys http and https apart
(cache_key_scheme 1).  Objects stored through edged are purged by URL
through purged, by POST /purge, by PURGE with the site's Host and by
edgectl: each purge matches the object (its answer counts it, under the key
edged stored), and the next request is a miss that goes to the origin.
purged builds each URL's key with the rules of the site its host names,
as edged does, because edged hands it its whole configuration.

purged also runs on its own from the same config file (-c FILE), its
flags overriding the file, and refuses a bad file naming file:line.
"""

import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402

Q = "size=64&ttl=300"

SITES = """\
# each site keys its objects its own way; the top level keeps queries
site drop.test {
	cache_query drop
}
site *.utm.test {
	cache_query_drop utm_*
}
site scheme.test {
	cache_key_scheme 1
}
"""

# (Host, path requested and purged, the key edged stores it under)
OBJECTS = [
    ("drop.test", "/obj/d?%s&v=1" % Q, "drop.test/obj/d"),
    ("www.utm.test", "/obj/u?%s&utm_source=mail" % Q,
     "www.utm.test/obj/u?%s" % Q),
    ("scheme.test", "/obj/s?%s" % Q, "http://scheme.test/obj/s?%s" % Q),
]


def write_conf(text):
    path = os.path.join(et.mktemp("psites"), "edged.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def get(n, host, path, extra=None):
    return n.get(path, [("Host", host)] + list(extra or []))


def fill_all(n, tag):
    """Store every object (a path of its own per purge method); return
    [(host, path, key)]."""
    objs = []
    for host, path, key in OBJECTS:
        p = path.replace("/obj/", "/obj/%s-" % tag)
        k = key.replace("/obj/", "/obj/%s-" % tag)
        et.eq(get(n, host, p).status, 200, "fill %s%s" % (host, p))
        et.wait_for(lambda: pn.cached(get(n, host, p)), 5, 0.05,
                    "%s%s cached" % (host, p))
        objs.append((host, p, k))
    return objs


def check_gone(n, o, objs, how):
    """Each object's next request is a miss, answered by the origin."""
    for host, p, _ in objs:
        before = o.count()
        r = get(n, host, p)
        cs = r.header("Cache-Status") or ""
        et.ok(r.status == 200 and "fwd=uri-miss" in cs,
              "%s: %s%s is a miss after the purge (%s)" % (how, host, p, cs))
        et.eq(o.count() - before, 1, "%s: %s%s refetched" % (how, host, p))


def test_post_purge_uses_each_sites_rules():
    with et.Origin() as o, pn.Node(o, "-c", write_conf(SITES)) as n:
        objs = fill_all(n, "post")
        pn.wait_disk(n, len(objs))
        urls = ["http://%s%s" % (h, p) for h, p, _ in objs]
        j = n.purge_ok(method="POST", target="/purge", body={"urls": urls})
        et.eq(j["matched"], len(objs), "every URL matched (%s)" % j)
        et.eq([it["key"] for it in j["items"]], [k for _, _, k in objs],
              "the keys edged stored under")
        et.eq([it["matched"] for it in j["items"]], [1] * len(objs),
              "one object per URL")
        check_gone(n, o, objs, "POST /purge")


def test_purge_method_resolves_the_host():
    with et.Origin() as o, pn.Node(o, "-c", write_conf(SITES)) as n:
        objs = fill_all(n, "purge")
        pn.wait_disk(n, len(objs))
        for host, p, key in objs:
            h = [("Host", host), ("Authorization", "Bearer " + pn.TOKEN)]
            with et.Client(n.pport) as c:
                r = c.request("PURGE", p, h)
            et.eq(r.status, 200, "PURGE %s%s (%s)" % (host, p, r.body[:200]))
            j = json.loads(r.body)
            et.eq(j["matched"], 1, "PURGE with Host %s matched" % host)
            keys = [it["key"] for it in j["items"]]
            et.ok(key in keys, "the stored key %s among %s" % (key, keys))
        check_gone(n, o, objs, "PURGE")


def test_edgectl_purge_by_url():
    ctl = pn.edgectl_path()
    if not os.access(ctl, os.X_OK):
        raise et.Skip("edgectl not built")
    with et.Origin() as o, pn.Node(o, "-c", write_conf(SITES)) as n:
        objs = fill_all(n, "ctl")
        pn.wait_disk(n, len(objs))
        env = dict(os.environ,
                   EDGECTL_PURGE_API="http://127.0.0.1:%d" % n.pport,
                   EDGECTL_TOKEN_FILE=n.token_file)
        args = [ctl, "--json", "purge"]
        for host, p, _ in objs:
            args += ["--url", "http://%s%s" % (host, p)]
        r = subprocess.run(args, env=env, capture_output=True, timeout=20)
        et.eq(r.returncode, 0, "edgectl purge: %s" % r.stderr)
        j = json.loads(r.stdout)
        et.eq(j["matched"], len(objs), "every URL matched (%s)" % j)
        check_gone(n, o, objs, "edgectl")


def test_standalone_purged_reads_the_config_file():
    purged = os.path.join(os.path.dirname(et.EDGED), "purged")
    d = et.mktemp("psolo")
    cache = os.path.join(d, "cache")
    token = pn.token_file(d)
    pport = et.free_port()
    # The node's whole config, purge settings too; purged is not edged's
    # child here (no purge_listen for edged), and its --listen flag
    # overrides the file's purge address.
    conf = write_conf(SITES + """\
cache_dir %s
purge_token_file %s
purge_allow loopback
""" % (cache, token))
    with et.Origin() as o, et.Edge(o.url, "-c", conf) as e:
        host, p, key = OBJECTS[0]
        et.eq(e.request("GET", p, {"Host": host}).status, 200, "fill")
        et.wait_for(lambda: pn.cached(e.request("GET", p, {"Host": host})),
                    5, 0.05, "stored")
        log = os.path.join(d, "purged.log")
        with open(log, "w") as lf:
            proc = subprocess.Popen(
                [purged, "-c", conf, "--listen", "127.0.0.1:%d" % pport],
                stdout=lf, stderr=lf)
        try:
            def up():
                if proc.poll() is not None:
                    with open(log) as f:
                        raise AssertionError("purged exited %d: %s"
                                             % (proc.returncode, f.read()))
                try:
                    with et.Client(pport, timeout=2) as c:
                        return c.request("GET", "/healthz").status == 200
                except OSError:
                    return False
            et.wait_for(up, 10, 0.05, "purged on its --listen address")
            # A fill is on disk once the writer thread commits it.
            h = [("Host", "x"), ("Authorization", "Bearer " + pn.TOKEN),
                 ("Content-Type", "application/json")]

            def matched(dry):
                b = json.dumps({"urls": ["http://%s%s" % (host, p)],
                                "dry_run": dry})
                with et.Client(pport) as c:
                    r = c.request("POST", "/purge", h, b.encode())
                return json.loads(r.body)["matched"]
            # A dry run until the writer has committed the fill: a real
            # purge before that would also cancel the pending store.
            et.wait_for(lambda: matched(True) == 1, 5, 0.05,
                        "the file's site rules: matched (dry run)")
            et.eq(matched(False), 1, "the file's site rules: matched")
            r = e.request("GET", p, {"Host": host})
            et.ok("fwd=uri-miss" in (r.header("Cache-Status") or ""),
                  "a miss after the purge")
        finally:
            proc.terminate()
            et.eq(proc.wait(10), 0, "purged stops cleanly on SIGTERM")
            with open(log) as f:
                et.ok("Sanitizer" not in f.read(), "no sanitizer report")
    bad = write_conf(SITES + "site x.test {\n\tcache_query nope\n}\n")
    r = subprocess.run([purged, "-c", bad, "--cache-dir", cache,
                        "--listen", "127.0.0.1:%d" % pport,
                        "--token-file", token],
                       capture_output=True, timeout=20)
    et.eq(r.returncode, 2, "a bad file is a usage error")
    et.ok(("%s:11:" % bad).encode() in r.stderr and b"cache_query" in
          r.stderr, "names file:line: %s" % r.stderr)
    r = subprocess.run([purged, "--cache-dir", cache, "--listen",
                        "127.0.0.1:%d" % pport, "--token-file", token,
                        "--cache-key-scheme", "2"],
                       capture_output=True, timeout=20)
    et.eq(r.returncode, 2, "--cache-key-scheme takes 0 or 1, as edged's")
    et.ok(b"--cache-key-scheme" in r.stderr, "says which: %s" % r.stderr)


if __name__ == "__main__":
    et.main()
