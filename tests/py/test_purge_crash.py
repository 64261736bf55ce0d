"""Story: purges hold through crashes, restarts and races.

kill -9 of edged and purged right after purged answered OK, then a
restart on the same cache dir: the purge is still there.  purged killed
with -9 is restarted by edged.  A fill from the origin that began before a
purge and ends after it is not served as fresh afterwards.  SIGTERM to
edged stops purged too."""
import os
import signal
import subprocess
import sys
import threading

sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402

TTL = "ttl=300"


def fill(node, path):
    et.eq(node.get(path).status, 200, "fill %s" % path)
    pn.wait_stored(node, path)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_kill9_after_ok_then_restart():
    url = "/obj/k-url?%s" % TTL
    tagged = "/obj/k-tag?%s&hdr=Surrogate-Key:k9" % TTL
    soft = "/obj/k-soft?%s" % TTL
    keep = "/obj/k-keep?%s" % TTL
    with et.Origin() as o:
        n = pn.Node(o)
        cache = n.cache
        try:
            for p in (url, tagged, soft, keep):
                fill(n, p)
            pn.wait_disk(n, 4)
            n.purge_ok(method="POST", target="/purge",
                       body={"urls": ["http://%s%s" % (pn.HOST, url)],
                             "tags": ["k9"]})
            n.purge_ok(target=soft, headers=[("Purge-Mode", "soft")])
            pid = n.purged_pid()
            et.ok(pid is not None, "purged runs as edged's child")
            os.kill(pid, signal.SIGKILL)
            n.edge.kill()
        except BaseException:
            n.edge.kill()
            raise
        with pn.Node(o, cache=cache) as n2:
            before = o.count()
            for p in (url, tagged):
                r = n2.get(p)
                et.eq(r.status, 200, "status of %s" % p)
                et.ok(not pn.cached(r), "%s still purged after kill -9 "
                      "and restart (%s)" % (p, r.header("Cache-Status")))
            r = n2.get(soft)
            et.ok(not pn.cached(r), "soft-purged object not fresh")
            et.eq(o.count() - before, 3, "three went to the origin")
            et.ok(pn.cached(n2.get(keep)), "the rest survived as hits")


def test_purged_restarted_after_kill9():
    p = "/obj/r?%s&hdr=Surrogate-Key:r" % TTL
    with et.Origin() as o, pn.Node(o) as n:
        pid = n.purged_pid()
        et.ok(pid is not None, "purged is running")
        os.kill(pid, signal.SIGKILL)
        et.wait_for(lambda: n.purged_pid() not in (None, pid), 10, 0.05,
                    "a new purged")
        n.wait_purged()
        fill(n, p)
        n.purge_ok(headers=[("Surrogate-Key", "r")])
        et.ok(not pn.cached(n.get(p)), "the restarted purged purges")
        et.ok("restarting" in n.edge.stderr_text(), "the restart is logged")


def test_sigterm_stops_purged():
    with et.Origin() as o:
        n = pn.Node(o)
        pid = n.purged_pid()
        et.ok(pid is not None, "purged is running")
        n.stop()
        et.wait_for(lambda: not alive(pid), 5, 0.05, "purged stopped")


def test_bad_purge_settings_stop_edged():
    d = et.mktemp("badtok")
    cases = [
        (["--purge-token-file", os.path.join(d, "missing")],
         "purge_token_file"),
        (["--purge-token-file", pn.token_file(et.mktemp("badtok"),
                                              ["two words here"])],
         "each line must be TOKEN"),
        (["--purge-token-file", pn.token_file(et.mktemp("goodtok")),
          "--purge-allow", "10.0.0.0/33"], "prefix length"),
        ([], "needs purge_token_file"),
        ([], "needs cache_dir"),
        # Only what is missing is named.
        (["--purge-token-file", pn.token_file(et.mktemp("goodtok")),
          "--cache-dir", ""], "purge_listen: needs cache_dir (the store"),
    ]
    for args, want in cases:
        port = et.free_port()
        argv = [et.EDGED, "--listen", "127.0.0.1:%d" % et.free_port(),
                "--origin", "http://127.0.0.1:9", "--purge-listen",
                "127.0.0.1:%d" % port] + (
                    ["--cache-dir", os.path.join(d, "c")] if args else []
                ) + args
        r = subprocess.run(argv, capture_output=True, timeout=20)
        et.ok(r.returncode != 0, "edged refuses %s" % args)
        et.ok(want.encode() in r.stderr, "says %r: %s" % (want, r.stderr))


def slow_fill_story(o, n, path, purge_kw):
    result = {}

    def get():
        result["r"] = n.get(path)

    t = threading.Thread(target=get)
    t.start()
    try:
        # The fill has begun: the origin has the request.
        et.wait_for(lambda: o.count(path.split("?")[0]) >= 1, 10, 0.02,
                    "the slow request at the origin")
        n.purge_ok(**purge_kw)
    finally:
        t.join(30)
    r = result.get("r")
    et.ok(r is not None and r.status == 200, "the slow fill completed")
    et.check_pattern(r.body, 1024)
    before = o.count()
    r = n.get(path)
    et.ok(not pn.cached(r), "the fill that began before the purge is not "
          "served as fresh (%s)" % r.header("Cache-Status"))
    et.eq(o.count() - before, 1, "the next request went to the origin")
    et.ok(pn.cached(n.get(path)), "the fill after the purge is cached")


def test_purge_races_slow_body():
    path = "/obj/slowbody?%s&body_delay_ms=1500&hdr=Surrogate-Key:slow" % TTL
    with et.Origin() as o, pn.Node(o) as n:
        slow_fill_story(o, n, path, {"headers": [("Surrogate-Key",
                                                  "slow")]})


def test_purge_races_slow_head():
    path = "/obj/slowhead?%s&delay_ms=1500" % TTL
    with et.Origin() as o, pn.Node(o) as n:
        slow_fill_story(o, n, path, {"target": path})


if __name__ == "__main__":
    et.main()
