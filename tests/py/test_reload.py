#!/usr/bin/env python3
"""Story: SIGHUP reloads the whole configuration, and nothing is lost.

A node runs from a config file of site blocks.  The operator edits the file
and sends SIGHUP: a site is added, one removed, one moves to another
origin, gets a default TTL and drops the query from its keys; the next
requests follow the new file, and purged, restarted on the new
configuration, purges by the new key rules.  A file with an error is
refused as a whole, naming file:line:col, and the old configuration keeps
serving; a restart-only directive is named in a warning while the rest is
applied.  A response in flight across a reload completes from the origin
it started with.  Under load (keep-alive and new connections, hits, misses
and slow responses) twenty reloads in a row fail no request and drop no
connection, and the cache (memory and disk) keeps its objects.
"""

import json
import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402


def write(path, text):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)  # as an editor or a deploy tool does


def conf_path():
    return os.path.join(et.mktemp("reload"), "edged.conf")


def stats(port):
    with et.Client(port) as c:
        return json.loads(c.request("GET", "/stats").body)


def reload(e, port, gen):
    """SIGHUP, then wait for generation <gen> to be in force."""
    e.send_signal(signal.SIGHUP)
    et.wait_for(lambda: stats(port)["config"]["generation"] == gen, 5, 0.02,
                "generation %d" % gen)


def get(e, target, host):
    return e.request("GET", target, headers={"Host": host})


V1 = """\
site a.test {
	origin %(o1)s
}
site b.test {
	origin %(o1)s
}
"""

V2 = """\
site a.test {
	origin %(o2)s
	cache_default_ttl 60s
	cache_query drop
}
site c.test {
	origin %(o1)s
}
"""


def test_reload_changes_sites_origins_policy_and_keys():
    with et.Origin() as o1, et.Origin() as o2:
        path = conf_path()
        write(path, V1 % {"o1": o1.url, "o2": o2.url})
        with pn.Node(o1, "-c", path) as n:
            e = n.edge
            et.eq(get(e, "/obj/k?size=10&v=1", "a.test").status, 200, "a")
            et.eq(get(e, "/obj/k?size=10&v=1", "a.test").status, 200, "a")
            et.eq(o1.count("/obj/k"), 2, "no TTL: a.test stores nothing")
            et.eq(get(e, "/obj/x?size=10", "b.test").status, 200, "b")
            et.eq(get(e, "/obj/x?size=10", "c.test").status, 421,
                  "no c.test yet")
            et.eq(n.stats()["config"]["generation"], 1, "generation 1")

            old_purged = n.purged_pid()
            write(path, V2 % {"o1": o1.url, "o2": o2.url})
            reload(e, n.aport, 2)
            et.eq(get(e, "/obj/x?size=10", "b.test").status, 421,
                  "b.test is gone")
            et.eq(get(e, "/obj/x?size=10", "c.test").status, 200,
                  "c.test is served")
            before = o1.count("/obj/k")
            r = get(e, "/obj/k?size=10&v=2", "a.test")
            et.eq(r.status, 200, "a.test")
            et.eq((o1.count("/obj/k") - before, o2.count("/obj/k")), (0, 1),
                  "a.test now goes to its new origin")
            r = get(e, "/obj/k?size=10&v=3", "a.test")
            et.ok(pn.cached(r), "stored by the new TTL and keyed without "
                  "the query (%s)" % r.header("Cache-Status"))
            et.eq(o2.count("/obj/k"), 1, "one fetch")

            st = n.stats()
            et.eq((st["config"]["reloads"], st["config"]["reloads_failed"]),
                  (1, 0), "one reload, none refused")
            sc = st["site_counters"]
            et.ok("b.test" not in sc and "c.test" in sc,
                  "the sites of the new file: %s" % sorted(sc))
            et.ok(sc["a.test"]["requests"] >= 4,
                  "a.test's count carried over: %s" % sc["a.test"])

            # purged keys by the new rules: the query is not in the key.
            pn.wait_disk(n, 1)
            et.wait_for(lambda: n.purged_pid() not in (None, old_purged), 5,
                        0.02, "purged restarted on the new configuration")
            n.wait_purged()
            j = n.purge_ok(method="POST", target="/purge",
                           body={"urls": ["http://a.test/obj/k?v=9"]})
            et.eq(j["matched"], 1, "purged by the new key rules (%s)" % j)
            r = get(e, "/obj/k?size=10&v=4", "a.test")
            et.ok(not pn.cached(r), "a miss after the purge")
            et.eq(o2.count("/obj/k"), 2, "refetched")


def test_bad_config_refused_old_one_serves():
    admin = et.free_port()
    with et.Origin() as o1, et.Origin() as o2:
        path = conf_path()
        write(path, V1 % {"o1": o1.url, "o2": o2.url})
        with et.Edge(None, "-c", path,
                     "--admin-listen", "127.0.0.1:%d" % admin) as e:
            write(path, "site a.test {\n\torigin %s\n\tcache_default_ttl "
                  "5 parsecs\n}\n" % o2.url)
            e.send_signal(signal.SIGHUP)
            et.wait_for(lambda: stats(admin)["config"]["reloads_failed"] == 1,
                        5, 0.02, "the reload to be refused")
            err = e.stderr_text()
            et.ok("%s:3:" % path in err and "error:" in err,
                  "the log names file:line:col:\n" + err[-1500:])
            et.ok("not reloaded" in err, "and says nothing changed")
            st = stats(admin)
            et.eq((st["config"]["generation"], st["config"]["reloads"]),
                  (1, 0), "still generation 1")
            et.eq(get(e, "/obj/x?size=10", "b.test").status, 200,
                  "the old sites still serve")
            et.eq((o1.count("/obj/x"), o2.count()), (1, 0), "the old origin")
            # A file that cannot even be read: refused the same way.
            os.rename(path, path + ".gone")
            e.send_signal(signal.SIGHUP)
            et.wait_for(lambda: stats(admin)["config"]["reloads_failed"] == 2,
                        5, 0.02, "the second refusal")
            et.eq(get(e, "/obj/x?size=10", "a.test").status, 200,
                  "still serving")


def test_restart_only_directive_warned_rest_applied():
    admin = et.free_port()
    with et.Origin() as o1:
        path = conf_path()
        write(path, "node_name n1\nvia first\n" + V1 % {"o1": o1.url})
        with et.Edge(None, "-c", path,
                     "--admin-listen", "127.0.0.1:%d" % admin) as e:
            r = get(e, "/obj/x?size=10", "a.test")
            et.ok(r.header("Cache-Status").startswith("first;"),
                  r.header("Cache-Status"))
            write(path, "node_name n2\nvia second\nkeepalive_timeout 5s\n" +
                  V1 % {"o1": o1.url})
            reload(e, admin, 2)
            err = e.stderr_text()
            for d in ("node_name", "keepalive_timeout"):
                et.ok("%s changed: takes effect on restart" % d in err,
                      "a warning names %s:\n%s" % (d, err[-1500:]))
            et.ok("via changed" not in err, "via is reloaded, not warned")
            r = get(e, "/obj/x?size=10", "a.test")
            et.ok(r.header("Cache-Status").startswith("second;"),
                  "the rest applies: %s" % r.header("Cache-Status"))


def test_inflight_response_completes_from_its_origin():
    admin = et.free_port()
    with et.Origin() as o1, et.Origin() as o2:
        path = conf_path()
        write(path, "origin %s\n" % o1.url)
        with et.Edge(None, "-c", path,
                     "--admin-listen", "127.0.0.1:%d" % admin) as e:
            res = {}

            def slow():
                res["r"] = e.request(
                    "GET", "/obj/slow?size=100000&body_delay_ms=600")

            t = threading.Thread(target=slow)
            t.start()
            et.wait_for(lambda: o1.count("/obj/slow") == 1, 5, 0.01,
                        "the slow request at the origin")
            write(path, "origin %s\n" % o2.url)
            reload(e, admin, 2)
            t.join(10)
            r = res["r"]
            et.eq(r.status, 200, "status")
            et.check_pattern(r.body, 100000)
            et.eq((o1.count("/obj/slow"), o2.count("/obj/slow")), (1, 0),
                  "completed by the origin it started with")
            et.eq(e.request("GET", "/obj/slow?size=10").status, 200, "next")
            et.eq(o2.count("/obj/slow"), 1, "the next goes to the new one")


LOAD_SITES = """\
default_site load.test
site load.test {
	origin %s
	cache_default_ttl %ds
}
"""


@et.timeout(120)
def test_twenty_reloads_under_load():
    admin = et.free_port()
    with et.Origin() as o1, et.Origin() as o2:
        path = conf_path()
        cdir = os.path.join(et.mktemp("cache"), "c")
        write(path, LOAD_SITES % (o1.url, 300))
        with et.Edge(None, "-c", path, "--cache-dir", cdir,
                     "--admin-listen", "127.0.0.1:%d" % admin) as e:
            hot = ["/obj/hot%d?size=%d&ttl=600" % (i, 1000 + i)
                   for i in range(8)]
            for p in hot:
                et.eq(e.request("GET", p).status, 200, "warm " + p)
            et.wait_for(lambda: stats(admin)["cache"]["objects"] >= len(hot),
                        5, 0.02, "the hot objects on disk")
            stop = threading.Event()
            errors, done = [], [0]
            lock = threading.Lock()

            def check(r, target, size):
                if r.status != 200 or len(r.body) != size:
                    raise AssertionError("%s: %d, %d bytes" %
                                         (target, r.status, len(r.body)))

            def keepalive(k):
                n = 0
                try:
                    with e.connect() as c:
                        while not stop.is_set():
                            n += 1
                            if n % 2:
                                p = hot[n % len(hot)]
                                size = 1000 + n % len(hot)
                            else:
                                size = 2000 + k
                                p = "/obj/miss-%d-%d?size=%d" % (k, n, size)
                            check(c.request("GET", p), p, size)
                            with lock:
                                done[0] += 1
                except Exception as ex:  # noqa: BLE001
                    errors.append("keep-alive %d: %r" % (k, ex))

            def fresh(k):
                n = 0
                try:
                    while not stop.is_set():
                        n += 1
                        p = "/obj/new-%d-%d?size=3000" % (k, n)
                        check(e.request("GET", p), p, 3000)
                        with lock:
                            done[0] += 1
                except Exception as ex:  # noqa: BLE001
                    errors.append("new connections %d: %r" % (k, ex))

            def slow(k):
                n = 0
                try:
                    with e.connect() as c:
                        while not stop.is_set():
                            n += 1
                            p = ("/obj/slow-%d-%d?size=50000&delay_ms=150&"
                                 "body_delay_ms=150" % (k, n))
                            check(c.request("GET", p), p, 50000)
                            with lock:
                                done[0] += 1
                except Exception as ex:  # noqa: BLE001
                    errors.append("slow %d: %r" % (k, ex))

            threads = ([threading.Thread(target=keepalive, args=(k,))
                        for k in range(3)] +
                       [threading.Thread(target=fresh, args=(k,))
                        for k in range(2)] +
                       [threading.Thread(target=slow, args=(k,))
                        for k in range(2)])
            for t in threads:
                t.start()
            time.sleep(0.3)
            for g in range(2, 22):
                o = o2 if g % 2 else o1
                write(path, LOAD_SITES % (o.url, 300 + g))
                reload(e, admin, g)
                time.sleep(0.05)
            time.sleep(0.3)
            stop.set()
            for t in threads:
                t.join(30)
            et.eq(errors, [], "no request failed, no connection dropped")
            et.ok(done[0] > 100, "requests done across the reloads: %d"
                  % done[0])
            st = stats(admin)
            et.eq((st["config"]["reloads"], st["config"]["reloads_failed"],
                   st["config"]["generation"]), (20, 0, 21), "20 reloads")
            for p in hot:
                r = e.request("GET", p)
                et.ok(pn.cached(r), "%s is still a hit (%s)" %
                      (p, r.header("Cache-Status")))
            for i in range(len(hot)):
                et.eq(o1.count("/obj/hot%d" % i) + o2.count("/obj/hot%d" % i),
                      1, "hot%d fetched once, before the reloads" % i)
            et.ok(o1.count() > 0 and o2.count() > 0,
                  "misses went to both origins as the file alternated")


if __name__ == "__main__":
    et.main()
