"""The shield tier (docs/shield.md): edges fill their misses from parent
edged nodes, picked by rendezvous hashing of the cache key.

Every node here is a real edged with its own cache directory, node_name
and Via pseudonym (which names it in Cache-Status); one test origin counts
the requests that reach it.  Stories: a miss goes through the shield once
and a second edge hits the shield; keys spread over two parents, each key
always to the same one; a dead shield sends edges to the origin and a
shield that is back gets its keys again; parent_only without a parent is
an error that says so; two nodes that are each other's parent end in 508;
what a parent and an origin receive (CDN-Loop, Host, Accept-Encoding,
Edge-Bus-Applied); Cache-Status members in tier order; Age adding up; a
revalidation and a range through the shield; codings made at the edge.
The herd (200 clients over three edges) is in test_shield_herd.py.
"""

import json
import re
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def node(origin_url, name, *args, listen=None):
    """An edged named <name> (node_name and Via) with a cache."""
    return et.Edge(origin_url, "--cache-dir", et.mktemp("shield-" + name),
                   "--node-name", name, "--via", name, *args, listen=listen)


def parent_args(*parents):
    a = []
    for p in parents:
        a += ["--parent-server", "http://127.0.0.1:%d" % p.port]
    return a


def members(r):
    """Cache-Status members in order: [(cache name, rest)]."""
    out = []
    for line in r.header_list("Cache-Status"):
        for m in line.split(","):
            m = m.strip()
            if m:
                name, _, rest = m.partition(";")
                out.append((name.strip(), rest.strip()))
    return out


def echo_headers(r):
    return json.loads(r.body)["headers"]


def header_of(hs, name):
    v = [h[1] for h in hs if h[0].lower() == name.lower()]
    return v


def test_miss_through_shield():
    with et.Origin() as o, node(o.url, "shield") as s, \
            node(o.url, "edge1", *parent_args(s)) as e1, \
            node(o.url, "edge2", *parent_args(s)) as e2:
        r = e1.request("GET", "/obj/a?size=5000&ttl=60")
        et.eq(r.status, 200, "status")
        et.check_pattern(r.body, 5000)
        et.eq(o.count(), 1, "the origin saw one request")
        m = members(r)
        et.eq([n for n, _ in m], ["shield", "edge1"],
              "Cache-Status: the shield's member, then the edge's")
        et.ok(m[0][1].startswith("fwd=uri-miss"), "a miss at the shield")
        et.ok(m[1][1].startswith("fwd=uri-miss"), "and at the edge")

        r = e2.request("GET", "/obj/a?size=5000&ttl=60")
        et.eq(r.status, 200, "second edge: status")
        et.check_pattern(r.body, 5000)
        et.eq(o.count(), 1, "the second edge's miss was the shield's hit")
        m = members(r)
        et.eq([n for n, _ in m], ["shield", "edge2"], "two members")
        et.ok(m[0][1].startswith("hit"), "a hit at the shield: %r" % (m,))
        et.ok(m[1][1].startswith("fwd=uri-miss"), "a miss at the edge")

        # The edge's stored copy does not keep the shield's member: a hit
        # there is this node's answer alone.
        r = e1.request("GET", "/obj/a?size=5000&ttl=60")
        m = members(r)
        et.eq([n for n, _ in m], ["edge1"], "an edge hit: one member")
        et.ok(m[0][1].startswith("hit"), "a hit")
        et.eq(o.count(), 1, "still one origin request")


def metric_samples(port, family):
    """{frozenset of label pairs: value} of <family> in /metrics."""
    with et.Client(port) as c:
        r = c.request("GET", "/metrics")
    et.eq(r.status, 200, "/metrics")
    out = {}
    for line in r.body.decode().splitlines():
        m = re.match(r"^%s\{([^}]*)\} (\S+)$" % re.escape(family), line)
        if m:
            out[frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(1)))] = \
                float(m.group(2))
    return out


def test_parents_in_metrics_and_stats():
    """An edge's parents are a pool of its site in /metrics and /stats,
    role="parent" beside role="origin", named host:port as the origin
    servers are: a miss filled by the shield counts on the shield's
    series, none on the origin's."""
    admin = et.free_port()
    with et.Origin() as o, node(o.url, "shield") as s, \
            node(o.url, "edge1", "--admin-listen", "127.0.0.1:%d" % admin,
                 *parent_args(s)) as e1:
        for i in range(3):
            et.eq(e1.request("GET", "/obj/p%d?size=100&ttl=60" % i).status,
                  200, "a miss through the shield")
        osrv = o.url.split("//")[1]
        psrv = "127.0.0.1:%d" % s.port

        def lab(role, server):
            return frozenset({("pool", "default"), ("role", role),
                              ("server", server)})
        req = metric_samples(admin, "edge_origin_requests_total")
        et.eq(req, {lab("origin", osrv): 0, lab("parent", psrv): 3},
              "origin requests by role")
        up = metric_samples(admin, "edge_origin_server_up")
        et.eq(up, {lab("origin", osrv): 1, lab("parent", psrv): 1},
              "servers up by role")
        retries = metric_samples(admin, "edge_origin_retries_total")
        et.eq(set(retries), {frozenset({("pool", "default"),
                                        ("role", r)})
                             for r in ("origin", "parent")},
              "a retries series per pool")
        with et.Client(admin) as c:
            st = json.loads(c.request("GET", "/stats").body)
        et.eq([(p["role"], p["balance"], [v["server"] for v in p["servers"]])
               for p in st["pools"]],
              [("origin", "round-robin", [osrv]),
               ("parent", "consistent-hash", [psrv])], "/stats pools")
        et.eq({(r["role"], r["server"]): r["requests"]
               for r in st["origins"]},
              {("origin", osrv): 0, ("parent", psrv): 3}, "/stats origins")


def test_fields_to_parent_and_origin():
    """The parent is the test origin itself: /echo shows what it got."""
    with et.Origin() as o, et.Origin() as p, \
            node(o.url, "edge-a", "--parent-server", p.url,
                 "--purge-bus", "redis://127.0.0.1:9/edged:purges") as e:
        hdrs = [("Host", "www.example.com"),
                ("CDN-Loop", "other-cdn; v=1"),
                ("Accept-Encoding", "gzip, br"),
                ("Edge-Bus-Applied", "999-9")]
        r = e.request("GET", "/echo?x=1", headers=hdrs)
        et.eq(r.status, 200, "status")
        et.eq(o.count(), 0, "the origin was not asked")
        hs = echo_headers(r)
        et.eq(header_of(hs, "CDN-Loop"), ["other-cdn; v=1, edge-a"],
              "the client's CDN-Loop kept, ours appended")
        et.eq(header_of(hs, "Host"), ["www.example.com"],
              "the parent gets the client's Host")
        et.eq(header_of(hs, "Accept-Encoding"), ["identity"],
              "the parent is asked for identity")
        bus = header_of(hs, "Edge-Bus-Applied")
        et.eq(len(bus), 1, "one Edge-Bus-Applied (the client's is gone)")
        et.ok(re.fullmatch(r"[0-9]+-[0-9]+", bus[0]) and bus[0] != "999-9",
              "this node's applied ID: %r" % bus)
        et.eq(json.loads(r.body)["target"], "/echo?x=1", "path and query")

    # The same node without parents, and with a dead parent: the origin
    # gets the client's Accept-Encoding and never Edge-Bus-Applied.
    port = et.free_port()
    for extra in ([], ["--parent-server", "http://127.0.0.1:%d" % port]):
        with et.Origin() as o, node(o.url, "edge-a", "--purge-bus",
                                    "redis://127.0.0.1:9", *extra) as e:
            r = e.request("GET", "/echo", headers=hdrs)
            et.eq(r.status, 200, "status (%s)" % extra)
            hs = echo_headers(r)
            et.eq(header_of(hs, "CDN-Loop"), ["other-cdn; v=1, edge-a"],
                  "the origin gets CDN-Loop too")
            et.eq(header_of(hs, "Accept-Encoding"), ["gzip, br"],
                  "and the client's Accept-Encoding")
            et.eq(header_of(hs, "Edge-Bus-Applied"), [],
                  "never Edge-Bus-Applied")
            et.eq(header_of(hs, "Host"), ["www.example.com"], "Host")

    # Without purge_bus, a parent gets no Edge-Bus-Applied either.
    with et.Origin() as o, et.Origin() as p, \
            node(o.url, "edge-a", "--parent-server", p.url) as e:
        hs = echo_headers(e.request("GET", "/echo", headers=hdrs))
        et.eq(header_of(hs, "Edge-Bus-Applied"), [], "no bus, no field")


def test_hrw_spread():
    with et.Origin() as o, node(o.url, "s1") as s1, node(o.url, "s2") as s2, \
            node(o.url, "e1", *parent_args(s1, s2)) as e1, \
            node(o.url, "e2", *parent_args(s2, s1)) as e2:
        home = {}
        for k in range(40):
            r = e1.request("GET", "/obj/k%d?ttl=60&size=100" % k)
            et.eq(r.status, 200, "status")
            home[k] = members(r)[0][0]
        et.eq(o.count(), 40, "one origin request per key")
        n1 = sum(1 for v in home.values() if v == "s1")
        et.ok(5 <= n1 <= 35, "keys spread over both parents (%d on s1)" % n1)
        for k in range(40):
            r = e2.request("GET", "/obj/k%d?ttl=60&size=100" % k)
            m = members(r)
            et.eq(m[0][0], home[k], "key %d: the same home from e2" % k)
            et.ok(m[0][1].startswith("hit"), "a hit there")
        et.eq(o.count(), 40, "no second origin request")

        # s1 dies: a new edge's misses for s1's keys go to the next parent
        # in hash order, s2, not to the origin.
        s1.kill()
        on_s1 = [k for k in range(40) if home[k] == "s1"]
        with node(o.url, "e3", *parent_args(s1, s2)) as e3:
            for k in on_s1:
                r = e3.request("GET", "/obj/k%d?ttl=60&size=100" % k)
                et.eq(r.status, 200, "status with s1 dead")
                et.eq([n for n, _ in members(r)], ["s2", "e3"],
                      "key %d: through s2" % k)
            et.eq(o.count(), 40 + len(on_s1), "s2 fetched s1's keys once")


@et.timeout(90)
def test_shield_killed_and_back():
    port = et.free_port()
    listen = ["127.0.0.1:%d" % port]
    with et.Origin() as o:
        sdir = et.mktemp("shield-s")
        s = et.Edge(o.url, "--cache-dir", sdir, "--node-name", "s",
                    "--via", "s", listen=listen)
        with et.Edge(o.url, "--cache-dir", et.mktemp("shield-e"),
                     "--node-name", "e", "--via", "e",
                     "--parent-server", "http://127.0.0.1:%d" % port,
                     "--origin-max-fails", "1",
                     "--origin-fail-timeout", "1s") as e:
            r = e.request("GET", "/obj/one?ttl=60")
            et.eq([n for n, _ in members(r)], ["s", "e"], "through s")
            s.kill()
            t0 = time.monotonic()
            r = e.request("GET", "/obj/two?ttl=60")
            et.eq(r.status, 200, "the shield is dead: still 200")
            et.check_pattern(r.body, 1024)
            et.eq([n for n, _ in members(r)], ["e"], "from the origin")
            r = e.request("GET", "/obj/three?ttl=60")
            et.eq([n for n, _ in members(r)], ["e"], "and the next miss")
            et.ok(time.monotonic() - t0 < 5, "without waiting on timeouts")
            et.eq(o.count(), 3, "origin requests")

            s = et.Edge(o.url, "--cache-dir", sdir, "--node-name", "s",
                        "--via", "s", listen=listen)
            time.sleep(1.2)  # the cool-down

            def back():
                r = e.request("GET", "/obj/four-%d?ttl=60"
                              % int(time.monotonic() * 1000))
                return [n for n, _ in members(r)] == ["s", "e"]
            et.wait_for(back, timeout=10, what="misses through s again")
        s.stop()


def test_parent_only():
    port = et.free_port()
    with et.Origin() as o, node(o.url, "e", "--parent-server",
                                "http://127.0.0.1:%d" % port,
                                "--parent-only", "1",
                                "--origin-max-fails", "2") as e:
        for i in range(2):
            r = e.request("GET", "/obj/x?ttl=60")
            et.eq(r.status, 502, "a refused parent: 502")
            m = members(r)
            et.eq(len(m), 1, "one member")
            et.ok("detail=parent-error" in m[0][1],
                  "Cache-Status says the parent failed: %r" % (m,))
        r = e.request("GET", "/obj/x?ttl=60")
        et.eq(r.status, 503, "no parent up: 503 at once")
        et.ok("detail=no-parent-up" in members(r)[0][1],
              "and says why: %r" % (members(r),))
        et.eq(o.count(), 0, "the origin was never asked")

    d = et.mktemp("shield-conf")
    with open(d + "/c.conf", "w") as f:
        f.write("listen 127.0.0.1:1\norigin %s\nparent_only 1\n" % "http://x")
    import subprocess
    p = subprocess.run([et.EDGED, "-t", "-c", d + "/c.conf"],
                       capture_output=True, text=True, timeout=10)
    et.eq(p.returncode, 2, "parent_only without parent_server: refused")
    et.ok("parent_only" in p.stderr and "parent_server" in p.stderr,
          "and says why: %r" % p.stderr)


def test_loop_ends_in_508():
    pa, pb = et.free_port(), et.free_port()
    with et.Origin() as o, \
            node(o.url, "a", "--parent-server", "http://127.0.0.1:%d" % pb,
                 listen=["127.0.0.1:%d" % pa]) as a, \
            node(o.url, "b", "--parent-server", "http://127.0.0.1:%d" % pa,
                 listen=["127.0.0.1:%d" % pb]) as b:
        t0 = time.monotonic()
        r = a.request("GET", "/obj/loop?ttl=60")
        et.eq(r.status, 508, "Loop Detected")
        et.ok(time.monotonic() - t0 < 2, "quickly")
        m = members(r)
        et.eq([n for n, _ in m], ["a", "b", "a"],
              "a refused it when it came back through b: %r" % (m,))
        et.ok("detail=loop" in m[0][1], "the loop is named")
        et.eq(o.count(), 0, "the origin never saw it")
        r = b.request("GET", "/obj/loop2")
        et.eq(r.status, 508, "from b too")


def test_age_adds_up():
    with et.Origin() as o, node(o.url, "s") as s, \
            node(o.url, "e", *parent_args(s)) as e:
        path = "/obj/age?ttl=600&hdr=Age:100"
        r = s.request("GET", path)
        et.eq(r.header("Age"), "100", "the origin's Age on the shield's miss")
        time.sleep(2.1)
        r = e.request("GET", path)
        a1 = int(r.header("Age"))
        et.ok(a1 >= 102, "the shield's Age counts its own residence: %d" % a1)
        et.ok(members(r)[0][1].startswith("hit"), "a shield hit")
        time.sleep(2.1)
        r = e.request("GET", path)
        a2 = int(r.header("Age"))
        et.ok(members(r)[-1][1].startswith("hit"), "an edge hit")
        et.ok(a2 >= a1 + 2, "the edge adds its own to the shield's: "
              "%d then %d" % (a1, a2))
        et.ok(a2 <= a1 + 4, "and nothing more: %d then %d" % (a1, a2))
        et.eq(o.count(), 1, "one origin request")


def test_revalidation_through_shield():
    # The edge keeps responses 1 s at most, the shield for their 60 s:
    # the edge's copy goes stale while the shield's is fresh.
    with et.Origin() as o, node(o.url, "s") as s, \
            node(o.url, "e", "--cache-max-ttl", "1s", *parent_args(s)) as e:
        path = '/obj/rv?ttl=60&hdr=ETag:"v1"'
        r = e.request("GET", path)
        et.eq(r.status, 200, "status")
        time.sleep(2.1)
        r = e.request("GET", path)
        et.eq(r.status, 200, "status after revalidation")
        et.check_pattern(r.body, 1024)
        m = members(r)
        et.ok("fwd=stale" in m[-1][1] and "fwd-status=304" in m[-1][1],
              "the edge revalidated and got 304: %r" % (m,))
        et.eq(o.count(), 1, "the shield answered the conditional")
        line = s.wait_access_log(lambda l: "/obj/rv" in l and " 304 " in l)
        et.ok(line, "the shield answered 304: %r" % line)


def test_range_through_shield():
    with et.Origin() as o, node(o.url, "s") as s, \
            node(o.url, "e1", *parent_args(s)) as e1, \
            node(o.url, "e2", *parent_args(s)) as e2:
        path = "/obj/rg?ttl=60&size=100000&ranges=1"
        r = e1.request("GET", path, headers=[("Range", "bytes=1000-1999")])
        et.eq(r.status, 206, "206 on a miss through the shield")
        et.eq(r.header("Content-Range"), "bytes 1000-1999/100000", "range")
        et.eq(r.body, et.pattern(1000, 1000), "the bytes")
        et.eq(r.header("X-Origin-Range"), None, "no Range reached the origin")
        r = e2.request("GET", path)
        et.eq(r.status, 200, "the whole object from another edge")
        et.check_pattern(r.body, 100000)
        # The edge's 206 may be done before the shield has the rest of
        # the body: then this request joins the shield's fill.
        m = members(r)
        et.ok(m[0][1].startswith("hit") or "collapsed" in m[0][1],
              "the shield had it, or was still fetching it: %r" % (m,))
        r = e1.request("GET", path, headers=[("Range", "bytes=-10")])
        et.eq(r.status, 206, "and the first edge stored it whole")
        et.eq(r.body, et.pattern(99990, 10), "the last bytes")
        et.ok(members(r)[-1][1].startswith("hit"), "an edge hit")
        et.eq(o.count(), 1, "one origin request")


def test_codings_made_at_the_edge():
    with et.Origin() as o, node(o.url, "s") as s, \
            node(o.url, "e", *parent_args(s)) as e:
        path = "/text/t?ttl=60&size=20000"
        r = e.request("GET", path, headers=[("Accept-Encoding", "gzip")])
        et.eq(r.status, 200, "status")

        def coded(enc):
            r = e.request("GET", path, headers=[("Accept-Encoding", enc)])
            return (r.header("Content-Encoding") == enc and
                    members(r)[-1][1].startswith("hit"))
        et.wait_for(lambda: coded("gzip"), timeout=10, what="a gzip hit")
        et.wait_for(lambda: coded("br"), timeout=10, what="a br hit")
        r = e.request("GET", path)
        et.eq(r.header("Content-Encoding"), None, "identity for the rest")
        et.eq(len(r.body), 20000, "its length")
        et.eq(o.count(), 1, "one origin request for every coding")


if __name__ == "__main__":
    et.main()
