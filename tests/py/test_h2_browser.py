"""A browser loads a page over HTTP/2 through the node: headless Chromium
(Debian's chromium) connects to edged's TLS listener, ALPN picks h2, and
the page and its sub-resources (a stylesheet and a dozen fetches whose
bytes the page checks) come from the test origin through edged.  The
page reports every body intact, the access log has each request once as
HTTP/2, the node counted a stream for each on one or two h2 connections
and no HTTP/1.1 request, and a second load is answered from the cache
without the origin.

Skipped when chromium is not installed (apt-get install chromium)."""

import json
import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402
import test_tls as tt  # noqa: E402

N = 13        # sub-resources of the page: the stylesheet and 12 fetches
SIZE = 30000  # bytes of each fetched body
PAGE = "/page?n=%d&size=%d" % (N, SIZE)


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise et.Skip("chromium not installed (apt-get install chromium)")


def load(port):
    """The page's DOM once its script is done, as headless Chromium saw it.
    The certificate is the test CA's; Chromium has no way to trust that
    CA without a certificate database, so it is told to accept it, and
    default.test resolves to loopback."""
    argv = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--user-data-dir=" + et.mktemp("chromium"),
            "--ignore-certificate-errors",
            "--host-resolver-rules=MAP default.test 127.0.0.1",
            "--virtual-time-budget=10000", "--dump-dom",
            "https://default.test:%d%s" % (port, PAGE)]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=90)
    if p.returncode != 0:
        raise AssertionError("chromium exited %d: %s" % (
            p.returncode, p.stderr.decode("utf-8", "replace")[-2000:]))
    return p.stdout.decode("utf-8", "replace")


def stats(e):
    with et.Client(e.admin_port) as c:
        return json.loads(c.request("GET", "/stats").body)


def check_page(dom):
    et.ok('data-done="%d"' % (N - 1) in dom, "every fetch ended: %s"
          % re.findall(r"<body[^>]*>", dom))
    for k in range(1, N):
        m = re.search(r'<li id="r-%d">([^<]*)</li>' % k, dom)
        et.eq(m and m.group(1), "%d %d ok" % (k, SIZE),
              "sub-resource %d intact" % k)


@et.timeout(180)
def test_chromium_loads_a_page_over_h2():
    chromium()
    with et.Origin() as o, tt.tls_edge(o.url, "--cache-dir",
                                       et.mktemp("cache")) as e:
        check_page(load(e.tls_port))
        lines = []

        def logged():
            # By the request line: every line's Referer names /page.
            lines[:] = [l for l in e.access_log_lines()
                        if '"GET /page?' in l or '"GET /text/page.css' in l
                        or '"GET /obj/page-' in l]
            return len(lines) >= N + 1
        et.wait_for(logged, 5, what="an access log line per request")
        et.eq(len(lines), N + 1, "the page and each sub-resource once: %r"
              % lines)
        # The favicon's request (if Chromium asks) may still be on its way:
        # read the counters and the log until they agree.
        every, st = [], {}

        def settled():
            st.update(stats(e))
            every[:] = e.access_log_lines()
            return st["requests_by_protocol"]["http2"] == len(every)
        et.wait_for(settled, 5, what="the counters and the access log agree")
        et.ok(all('HTTP/2"' in l for l in every),
              "all of them over HTTP/2: %r" % [l for l in every
                                               if 'HTTP/2"' not in l])
        page = ["/page", "/text/page.css"] + \
            ["/obj/page-%d" % k for k in range(1, N)]
        for p in page:
            et.eq(o.count(p), 1, "%s from the origin once" % p)
        et.eq(st["requests_by_protocol"]["http1"], 0, "no HTTP/1.1 request")
        et.eq(st["requests_by_protocol"]["http2"], len(every),
              "each HTTP/2 request counted")
        # Chromium may open a second connection (it keeps requests with
        # and without credentials apart), never one per request.
        et.ok(1 <= st["http2"]["connections"] <= 2,
              "h2 connections: %d" % st["http2"]["connections"])
        et.eq(st["http2"]["streams"], len(every), "a stream per request")

        # Again, with a fresh profile: every answer from the cache.
        check_page(load(e.tls_port))
        for p in page:
            et.eq(o.count(p), 1, "%s not asked again" % p)
        et.wait_for(lambda: sum("/page" in l and "hit" in l
                                for l in e.access_log_lines()) == N + 1, 5,
                    what="hits for the page and its sub-resources")

if __name__ == "__main__":
    et.main()
