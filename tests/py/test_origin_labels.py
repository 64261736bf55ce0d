#!/usr/bin/env python3
"""Story: each origin series names the server it really is.

A config file names three sites: a.example on one origin, b.example on a
pool of two other origins, and c.example whose only server is a port where
nothing listens, taken out at once by its health checks.  After a few
requests to each, /metrics has edge_origin_requests_total,
edge_origin_errors_total and edge_origin_duration_seconds once per pool and
server, labelled with the site's name and the server's host:port, each
holding only what that server did: a.example's fetches on its origin, the
round-robin halves on b.example's two, an origin reset on the server that
reset.  Fetches that found no server up (503 at once) have a series of
their pool with an empty server.  /stats "origins" has the same rows and
figures, and the pools' edge_origin_server_* series are there for the same
pools and servers, spelled the same (host:port, not the configured URL).
"""

import json
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def write_conf(text):
    d = et.mktemp("originlabels")
    path = os.path.join(d, "edged.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def samples(text, family):
    """{(labels...): value} of every sample named <family>."""
    out = {}
    for line in text.splitlines():
        m = re.match(r'^%s\{([^}]*)\} (\S+)$' % re.escape(family), line)
        if m:
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"',
                                             m.group(1))))
            out[labels] = float(m.group(2))
    return out


def lab(**kw):
    """Labels of an origin series: none of these sites has parents."""
    return tuple(sorted(dict(kw, role="origin").items()))


def test_each_series_is_its_own_server():
    admin = et.free_port()
    dead = et.free_port()
    with et.Origin() as o1, et.Origin() as o2, et.Origin() as o3:
        a1 = o1.url.split("//")[1]
        b1 = o2.url.split("//")[1]
        b2 = o3.url.split("//")[1]
        c1 = "127.0.0.1:%d" % dead
        conf = write_conf("""\
site a.example {
	origin %s
}
site b.example {
	origin_server %s
	origin_server %s
}
site c.example {
	origin http://%s
	health_check_path /obj/hc
	health_check_interval 100ms
	health_check_fall 1
}
""" % (o1.url, o2.url, o3.url, c1))
        with et.Edge(None, "-c", conf,
                     "--admin-listen", "127.0.0.1:%d" % admin) as e:
            for i in range(3):
                r = e.request("GET", "/obj/a%d?size=10" % i,
                              headers={"Host": "a.example"})
                et.eq(r.status, 200, "a.example request %d" % i)
            for i in range(4):
                r = e.request("GET", "/obj/b%d?size=10" % i,
                              headers={"Host": "b.example"})
                et.eq(r.status, 200, "b.example request %d" % i)
            et.eq((o1.count(), o2.count(), o3.count()), (3, 2, 2),
                  "a's three on its origin, b's four spread over two")
            # Round-robin: the next one goes to b.example's first server.
            r = e.request("GET", "/obj/broken?reset=1",
                          headers={"Host": "b.example"})
            et.eq(r.status, 502, "origin reset")
            # (curl may send it twice on a reused connection: both to b1)
            et.eq((o2.count("/obj/broken") > 0, o3.count("/obj/broken")),
                  (True, 0), "the reset was on b1")

            def c_down():
                with et.Client(admin) as c:
                    st = json.loads(c.request("GET", "/stats").body)
                return [p["servers"][0]["up"] for p in st["pools"]
                        if p["site"] == "c.example"] == [False]
            et.wait_for(c_down, timeout=5, what="c.example's server down")
            r = e.request("GET", "/obj/c?size=10",
                          headers={"Host": "c.example"})
            et.eq(r.status, 503, "no server up: 503")

            with et.Client(admin) as c:
                m = c.request("GET", "/metrics").body.decode()
                st = json.loads(c.request("GET", "/stats").body)

            want_req = {lab(pool="a.example", server=a1): 3,
                        lab(pool="b.example", server=b1): 3,
                        lab(pool="b.example", server=b2): 2,
                        lab(pool="c.example", server=c1): 0,
                        lab(pool="c.example", server=""): 1}
            et.eq(samples(m, "edge_origin_requests_total"), want_req,
                  "edge_origin_requests_total by pool and server")
            errs = samples(m, "edge_origin_errors_total")
            for labels, v in errs.items():
                d = dict(labels)
                want = 0
                if d["kind"] == "reset" and d["server"] == b1:
                    want = 1
                if d["kind"] == "no_healthy_server" and d["server"] == "":
                    want = 1
                et.eq(v, want, "edge_origin_errors_total %r" % (labels,))
            et.eq({(dict(l)["pool"], dict(l)["server"]) for l in errs},
                  {(dict(l)["pool"], dict(l)["server"]) for l in want_req},
                  "errors for the same pools and servers")
            counts = samples(m, "edge_origin_duration_seconds_count")
            et.eq(counts, {lab(pool="a.example", server=a1): 3,
                           lab(pool="b.example", server=b1): 2,
                           lab(pool="b.example", server=b2): 2,
                           lab(pool="c.example", server=c1): 0,
                           lab(pool="c.example", server=""): 0},
                  "response heads per server (the reset had none)")
            for name in ("edge_origin_server_up", "edge_origin_server_fetches_total"):
                got = {(dict(l)["pool"], dict(l)["server"])
                       for l in samples(m, name)}
                et.eq(got, {("a.example", a1), ("b.example", b1),
                            ("b.example", b2), ("c.example", c1)},
                      "%s labels: host:port, as the series above" % name)

            rows = {(o["pool"], o["server"]): o for o in st["origins"]}
            et.eq(set(rows), {(dict(l)["pool"], dict(l)["server"])
                              for l in want_req}, "/stats origins rows")
            for labels, v in want_req.items():
                d = dict(labels)
                o = rows[(d["pool"], d["server"])]
                et.eq(o["requests"], v, "/stats requests of %r" % (labels,))
            et.eq(rows[("b.example", b1)]["errors"]["reset"], 1,
                  "/stats: the reset on b1")
            et.eq(rows[("b.example", b2)]["errors"]["reset"], 0,
                  "/stats: none on b2")
            et.eq(rows[("c.example", "")]["errors"]["no_healthy_server"], 1,
                  "/stats: the 503 of c.example")
            et.eq(rows[("a.example", a1)]["duration"]["count"], 3,
                  "/stats: a.example's heads")
            et.eq(sum(o["requests"] for o in st["origins"]),
                  st["origin_fetches"], "the rows add up to the node's")


if __name__ == "__main__":
    et.main()
