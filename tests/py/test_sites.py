#!/usr/bin/env python3
"""Story: one node fronts several sites, chosen by the request's Host.

A config file names two sites, each with its own origin: a.example (exact)
and *.b.example (a wildcard for one more label).  Requests go to the origin
of the site their Host names, whatever its case or port; an unknown Host
gets 421 with a clear body, or the default site when default_site is set.
Each site has its own cache policy: the same response is cached for one
site and not for the other.  edged -t points at the line of a bad block.
"""

import json
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def write_conf(text):
    d = et.mktemp("sites")
    path = os.path.join(d, "edged.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def get(e, target, host):
    return e.request("GET", target, headers={"Host": host})


def two_sites(o1, o2, extra=""):
    return write_conf("""\
# two sites, one origin each
site a.example {
	origin %s
}
site *.b.example {
	origin_server %s
}
%s""" % (o1.url, o2.url, extra))


def test_routed_by_host():
    admin = et.free_port()
    with et.Origin() as o1, et.Origin() as o2:
        conf = two_sites(o1, o2)
        with et.Edge(None, "-c", conf,
                     "--admin-listen", "127.0.0.1:%d" % admin) as e:
            for host in ("a.example", "A.Example:8080", "a.example."):
                r = get(e, "/obj/x?size=10", host)
                et.eq(r.status, 200, "Host %s" % host)
            et.eq((o1.count(), o2.count()), (3, 0),
                  "exact name, any case, with a port or a trailing dot")
            for host in ("www.b.example", "img.B.example:443"):
                et.eq(get(e, "/obj/y", host).status, 200, "Host %s" % host)
            et.eq((o1.count(), o2.count()), (3, 2),
                  "the wildcard site's origin")
            # Absolute form: the target's authority decides (RFC 9112 §3.2.2).
            r = get(e, "http://a.example/obj/z", "www.b.example")
            et.eq(r.status, 200, "absolute-form request")
            et.eq(o1.count("/obj/z"), 1, "routed by the target's authority")
            for host in ("b.example", "x.y.b.example", "c.example"):
                r = get(e, "/obj/n", host)
                et.eq(r.status, 421, "unknown Host %s: 421" % host)
                et.ok(b"serves no site" in r.body,
                      "with a clear body: %r" % r.body)
                et.eq(r.header("Cache-Status"),
                      "edged; fwd=bypass; detail=unknown-host",
                      "and a Cache-Status")
            et.eq(o1.count() + o2.count(), 6, "unknown hosts reach no origin")
            r = e.request("GET", "/obj/n", version="HTTP/1.0")
            et.eq(r.status, 421, "no Host and no default site: 421")
            with et.Client(admin) as c:
                st = json.loads(c.request("GET", "/stats").body)
                m = c.request("GET", "/metrics").body.decode()
            et.eq(st["site_counters"]["a.example"]["requests"], 4,
                  "/stats counts a.example's requests")
            et.eq(st["site_counters"]["*.b.example"]["requests"], 2,
                  "/stats counts the wildcard site's")
            et.eq(st["unknown_host"], 4, "/stats counts the 421s")
            et.ok(re.search(r'^edge_site_requests_total\{site="a.example"\} 4$',
                            m, re.M), "/metrics per-site requests")
            et.ok(re.search(r'^edge_unknown_host_total 4$', m, re.M),
                  "/metrics 421s")


def test_default_site():
    with et.Origin() as o1, et.Origin() as o2:
        conf = two_sites(o1, o2, "default_site www.b.example\n")
        # default_site must name a site exactly; the wildcard is not one.
        res = subprocess.run([et.EDGED, "-t", "-c", conf, "--listen",
                              "127.0.0.1:1"], capture_output=True, text=True)
        et.eq(res.returncode, 2, "-t refuses a default_site no site names")
        et.ok("default_site: \"www.b.example\" is not a name of any site"
              in res.stderr, res.stderr)
        conf = two_sites(o1, o2, "default_site *.b.example\n")
        with et.Edge(None, "-c", conf) as e:
            et.eq(get(e, "/obj/d", "nowhere.test").status, 200,
                  "an unknown Host goes to the default site")
            et.eq(o2.count("/obj/d"), 1, "the default site's origin")


def test_per_site_cache_policy():
    with et.Origin() as o1, et.Origin() as o2:
        conf = write_conf("""\
cache_default_ttl 0
site a.example {
	origin %s
	cache_default_ttl 60s
}
site b.example {
	origin %s
}
""" % (o1.url, o2.url))
        cdir = os.path.join(et.mktemp("cache"), "c")
        with et.Edge(None, "-c", conf, "--cache-dir", cdir) as e:
            # No Cache-Control, no Last-Modified: only a default TTL
            # makes it storable.
            for _ in range(3):
                et.eq(get(e, "/obj/p?size=100", "a.example").status, 200, "a")
                et.eq(get(e, "/obj/p?size=100", "b.example").status, 200, "b")
            et.eq(o1.count("/obj/p"), 1, "a.example caches it (60s default)")
            et.eq(o2.count("/obj/p"), 3, "b.example inherits 0: not stored")
            r = get(e, "/obj/p?size=100", "a.example")
            et.ok(r.header("cache-status").find("hit") >= 0,
                  "a.example: a hit (%s)" % r.header("cache-status"))


def test_t_names_the_line():
    conf = write_conf("""\
listen 127.0.0.1:1
site a.example {
	origin http://127.0.0.1:2
	tls_cert x.pem
}
site a.example *.a {
	origin_server http://127.0.0.1:3 weight=0
}
site c.example {
	cache_default_ttl 5s
}
""")
    res = subprocess.run([et.EDGED, "-t", "-c", conf], capture_output=True,
                         text=True)
    et.eq(res.returncode, 2, "-t fails")
    want = [
        "%s:4:2: error: tls_cert: cannot be set in a site block "
        "(only at the top level)" % conf,
        "%s:6:16: error: site: \"*.a\": a wildcard is \"*.\" and a domain of "
        "two labels or more (*.example.com)" % conf,
        "%s:7:16: error: origin_server: weight must be between 1 and 256"
        % conf,
        # The cross checks run after those errors too, but say
        # nothing of what is missing: it may be on a refused line.
        "%s:6:1: error: site: a.example is also named by the site at %s:2"
        % (conf, conf),
    ]
    et.eq(res.stderr.splitlines(), want, "every error, at its line")
    conf = write_conf("""\
listen 127.0.0.1:1
site a.example {
	origin http://127.0.0.1:2
}
site A.example {
	origin http://127.0.0.1:3
}
site c.example {
	cache_default_ttl 5s
}
""")
    res = subprocess.run([et.EDGED, "-t", "-c", conf], capture_output=True,
                         text=True)
    et.eq(res.returncode, 2, "-t fails")
    et.eq(res.stderr.splitlines(), [
        "%s:5:1: error: site: a.example is also named by the site at %s:2"
        % (conf, conf),
        "%s:8:1: error: site: no origin: set origin or origin_server in the "
        "block or at the top level" % conf], "cross-site errors")


if __name__ == "__main__":
    et.main()
