#!/usr/bin/env python3
"""Story: a worker's origin transfers reuse curl handles, and carry nothing over.

A worker keeps the curl easy handles of finished fetches and gives each
new fetch one of them with the options every fetch shares already set; a
fetch that needed anything more (HEAD, a request body, another method)
has its handle reset before the next one takes it.  With one worker every
fetch below takes the handle the previous one left: a GET after a HEAD
gets its body, and a GET after a POST or an extension method goes out as
a GET without a body.
"""

import json
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def get_echo(e, target):
    r = e.request("GET", target)
    et.eq(r.status, 200, "GET %s" % target)
    return json.loads(r.body)


def test_get_after_head_has_its_body():
    with et.Origin() as o, et.Edge(o.url, "--threads", "1", "--cache-dir",
                                   et.mktemp("cache") + "/c") as e:
        for i in range(3):
            # no-store: not a fill (which would fetch a GET), a HEAD upstream
            r = e.request("HEAD", "/obj/h%d?size=5000" % i,
                          headers={"Cache-Control": "no-store"})
            et.eq(r.status, 200, "HEAD %d" % i)
            et.eq(r.body, b"", "HEAD %d: no body" % i)
            r = e.request("GET", "/obj/g%d?size=5000" % i)
            et.eq(r.status, 200, "GET after HEAD %d" % i)
            et.eq(len(r.body), 5000, "GET after HEAD %d: the whole body" % i)
            et.eq(r.body, et.pattern(0, 5000),
                  "GET after HEAD %d: the body's bytes" % i)
        et.eq(sum(o.count("/obj/h%d" % i) for i in range(3)), 3,
              "every HEAD reached the origin")


def test_get_after_body_and_other_methods():
    with et.Origin() as o, et.Edge(o.url, "--threads", "1", "--cache-dir",
                                   et.mktemp("cache") + "/c") as e:
        for method in ("POST", "PUT", "FOO", "DELETE", "OPTIONS"):
            r = e.request(method, "/echo?m", body=b"abcdef",
                          headers={"Content-Type": "text/plain"})
            et.eq(r.status, 200, method)
            j = json.loads(r.body)
            et.eq(j["method"], method, "%s reached the origin" % method)
            et.eq(j["body_length"], 6, "%s: with its body" % method)
            j = get_echo(e, "/echo?after-%s" % method)
            et.eq(j["method"], "GET", "after %s: a GET" % method)
            et.eq(j["body_length"], 0, "after %s: no body" % method)
            names = [h[0].lower() for h in j["headers"]]
            et.ok("content-length" not in names and
                  "transfer-encoding" not in names,
                  "after %s: no body framing sent: %r" % (method, names))


if __name__ == "__main__":
    et.main()
