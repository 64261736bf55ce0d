"""An operator opens /dashboard on a node that is serving traffic: the page
is the one in the source tree, loads nothing from elsewhere, and in headless
Chromium (Debian's chromium, run here) it draws every chart with data.  A
screenshot is kept as the test's artefact: in the test's temporary
directory and as test_dashboard.png in $ARTIFACT_DIR (default: tests/py/
under the current directory when it has one, as in the build tree, else the
current directory).  With admin_token_file set, the page asks for the token.

Skipped when chromium is not installed (apt-get install chromium)."""
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402

CHARTS = ("c-ratio", "c-req", "c-bytes", "c-lat", "c-origin")
WIDTH, HEIGHT = 1400, 1000
TALL = 1400


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise et.Skip("chromium not installed (apt-get install chromium)")


def run_chromium(url, mode, out=None, budget_ms=5000, height=HEIGHT):
    """Run headless Chromium on <url>: mode "dom" returns the DOM after
    <budget_ms> of virtual time, mode "shot" writes a PNG to <out>."""
    profile = et.mktemp("chromium")
    argv = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--user-data-dir=" + profile,
            "--virtual-time-budget=%d" % budget_ms,
            "--window-size=%d,%d" % (WIDTH, height)]
    argv += ["--dump-dom"] if mode == "dom" else ["--screenshot=" + out]
    p = subprocess.run(argv + [url], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=90)
    if p.returncode != 0:
        raise AssertionError("chromium exited %d: %s" % (
            p.returncode, p.stderr.decode("utf-8", "replace")[-2000:]))
    return p.stdout.decode("utf-8", "replace")


def png_pixels(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB/RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    et.eq(data[:8], b"\x89PNG\r\n\x1a\n", "PNG signature")
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB",
                                                                body)
            et.ok(depth == 8 and ctype in (2, 6) and interlace == 0,
                  "an 8-bit RGB(A) PNG: %r" % ((depth, ctype, interlace),))
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    bpp = 4 if ctype == 6 else 3
    raw, stride, rows, prev = zlib.decompress(idat), w * bpp, [], None
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        up = prev or bytearray(stride)
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = up[i], up[i - bpp] if i >= bpp else 0
            if ft == 1:
                line[i] = (line[i] + a) & 0xff
            elif ft == 2:
                line[i] = (line[i] + b) & 0xff
            elif ft == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xff
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pr) & 0xff
        rows.append(line)
        prev = line
    return w, h, [[tuple(r[i:i + 3]) for i in range(0, stride, bpp)]
                  for r in rows]


def count_near(rows, rgb, tol=12):
    return sum(1 for row in rows for p in row
               if all(abs(p[k] - rgb[k]) <= tol for k in range(3)))


PANEL = (0x16, 0x1b, 0x22)


def band(rgb, alpha=0.3):
    """The colour of a series' area: its colour at the chart's fill alpha
    over the panel's background."""
    return tuple(round(alpha * c + (1 - alpha) * p) for c, p in zip(rgb, PANEL))


def artifact_path(name):
    d = os.environ.get("ARTIFACT_DIR")
    if not d:
        here = os.path.join(os.getcwd(), "tests", "py")
        d = here if os.path.isdir(here) else os.getcwd()
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, name)


def traffic(port, seconds, stop):
    """Hits, misses, slow misses, 404s and origin failures from 3 clients."""
    def run(k):
        n = 0
        end = time.monotonic() + seconds
        c = et.Client(port)
        try:
            while time.monotonic() < end and not stop.is_set():
                r = n % 20
                if r < 13:
                    t = "/obj/hot%d?size=%d&ttl=300" % (n % 25, 2000 + 500 * (n % 7))
                elif r < 16:
                    t = "/obj/m%d-%d?size=30000&delay_ms=%d" % (k, n, 2 * (n % 9))
                elif r < 18:
                    t = "/obj/nf%d-%d?status=404" % (k, n)
                else:
                    t = "/obj/bad?reset=1"
                resp = c.request("GET", t)
                if resp.header("connection") == "close":
                    c.close()
                    c = et.Client(port)
                n += 1
                time.sleep(0.004)
        finally:
            c.close()
    ts = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in ts:
        t.start()
    return ts


def source_page():
    path = os.path.join(et.TESTS_SRCDIR, "..", "edge", "dashboard.html")
    with open(path, "rb") as f:
        return f.read()


def test_page_is_the_source_and_self_contained():
    with et.Origin() as o:
        port = et.free_port()
        with et.Edge(o.url, "--admin-listen", "127.0.0.1:%d" % port):
            with et.Client(port) as c:
                r = c.request("GET", "/dashboard")
            et.eq(r.status, 200, "status")
            et.eq(r.header("content-type"), "text/html; charset=utf-8", "type")
            et.ok("default-src 'none'" in (r.header(
                "content-security-policy") or ""), "a CSP that forbids "
                "everything but what the page needs")
            et.ok(r.body == source_page(), "the served page is "
                  "edge/dashboard.html byte for byte (regenerate "
                  "edge/edge_dashboard.h: see its rule in Makefile.am)")
            text = r.body.decode("utf-8")
            for pat in (r"""(src|href)\s*=\s*["']?(https?:)?//""",
                        r"@import", r"url\(", r"<link\b",
                        r"<script[^>]*\bsrc="):
                et.ok(not re.search(pat, text, re.I),
                      "nothing loaded from elsewhere: %s" % pat)


@et.timeout(180)
def test_charts_have_data_in_headless_chromium():
    chromium()
    with et.Origin() as o:
        port = et.free_port()
        cdir = os.path.join(et.mktemp("cache"), "c")
        with et.Edge(o.url, "--admin-listen", "127.0.0.1:%d" % port,
                     "--cache-dir", cdir, "--cache-size", "64M",
                     "--memory-size", "8M") as e:
            stop = threading.Event()
            ts = traffic(e.port, 12, stop)
            try:
                time.sleep(8)  # history for the page's first request
                url = "http://127.0.0.1:%d/dashboard" % port
                dom = run_chromium(url, "dom")
                tmp = et.mktemp("dashboard")
                shot = os.path.join(tmp, "dashboard.png")
                run_chromium(url, "shot", shot)
            finally:
                stop.set()
                for t in ts:
                    t.join()
            art = artifact_path("test_dashboard.png")
            shutil.copyfile(shot, art)
            sys.stdout.write("# screenshot: %s\n" % art)

            et.ok('data-state="live"' in dom, "the page is live: %s" %
                  re.findall(r'<body[^>]*>', dom))
            rects = {}
            for cid in CHARTS:
                tag = re.search(r'<canvas id="%s"[^>]*>' % cid, dom)
                et.ok(tag is not None, "canvas %s in the DOM" % cid)
                pts = re.search(r'data-points="(\d+)"', tag.group(0))
                box = re.search(r'data-rect="(\d+),(\d+),(\d+),(\d+)"',
                                tag.group(0))
                et.ok(pts and box, "%s: %s" % (cid, tag.group(0)))
                et.ok(int(pts.group(1)) >= 3, "%s charted %s points"
                      % (cid, pts.group(1)))
                rects[cid] = tuple(int(box.group(k)) for k in range(1, 5))
            for tid in ("t-rps", "t-hr", "t-hb", "t-bw", "t-lat"):
                m = re.search(r'id="%s">([^<]*)' % tid, dom)
                et.ok(m and re.search(r"\d", m.group(1)),
                      "tile %s shows a figure: %r" % (tid, m and m.group(1)))
            et.ok(re.search(r"<td>default</td><td>\d", dom),
                  "the sites table has the default site")
            # The budgets, in the config's units (64M, not 67.1 MB), and
            # how full each tier is.
            for tier, budget in (("disk", "64M"), ("memory", "8M")):
                m = re.search(r'<div class="meter" id="b-%s" data-pct="([\d.]+)">'
                              r'.*?<b>(\S+) of (\S+) (?:&middot;|\u00b7) ([\d.]+)%%</b>'
                              % tier, dom)
                et.ok(m is not None, "a %s budget meter" % tier)
                et.eq(m.group(3), budget, "%s budget" % tier)
                et.ok(re.fullmatch(r"[\d.]+[BKMG]", m.group(2)),
                      "%s used in K/M/G: %s" % (tier, m.group(2)))
                et.ok(0 < float(m.group(1)) < 100, "%s is partly full: %s%%"
                      % (tier, m.group(1)))
            et.ok(re.search(r"<span>on disk</span>[\d.]+[BKMG]<", dom),
                  "sizes in K/M/G of 1024")

            w, h, rows = png_pixels(shot)
            et.eq((w, h), (WIDTH, HEIGHT), "screenshot size")
            # Each chart drew its series (pixels of the series' colour
            # inside the canvas: the legends are outside).
            for cid, name, rgb in (("c-ratio", "hit ratio", (0x3f, 0xb9, 0x50)),
                                   ("c-req", "hits", (0x3f, 0xb9, 0x50)),
                                   ("c-bytes", "from origin", (0x58, 0xa6, 0xff)),
                                   ("c-lat", "p99", (0xf0, 0x88, 0x3e)),
                                   ("c-origin", "errors", (0xf8, 0x51, 0x49))):
                x, y, cw, ch = rects[cid]
                box = [row[x:x + cw] for row in rows[y:y + ch]]
                n = count_near(box, rgb)
                et.ok(n > 40, "%s: %d pixels of the %s colour" % (cid, n, name))


def h2_bad_header(port):
    """One HTTP/2 request whose field name is upper case (RFC 9113 §8.2.1),
    which the node refuses with RST_STREAM (a bad_header refusal); its
    header block is HPACK by hand: indexed :method GET, :scheme http and
    :path /, then literals without indexing, so no HPACK library is needed."""
    def lit(name, value):
        return bytes([0, len(name)]) + name + bytes([len(value)]) + value
    block = b"\x82\x86\x84" + lit(b":authority", b"edge.test") + \
        lit(b"X-Upper", b"1")
    frames = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" +
              b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" +     # SETTINGS
              struct.pack(">I", len(block))[1:] +            # HEADERS,
              b"\x01\x05\x00\x00\x00\x01" + block)           # END_STREAM|HEADERS
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(frames)
        got, end = b"", time.monotonic() + 5
        # Until the RST_STREAM (type 3) arrives or the node closes.
        while b"\x03\x00\x00\x00\x00\x01" not in got and \
                time.monotonic() < end:
            data = s.recv(4096)
            if not data:
                break
            got += data


def h2_traffic(port, seconds, stop):
    """Batches of HTTP/2 requests (hits and misses), each batch many
    streams on one connection of curl --http2-prior-knowledge."""
    curl = shutil.which("curl")
    if curl is None:
        raise et.Skip("no curl")

    def run():
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end and not stop.is_set():
            urls = ["http://127.0.0.1:%d/obj/h2-%d?size=1500&ttl=300"
                    % (port, (n + k) % 30) for k in range(10)]
            subprocess.run([curl, "-s", "--http2-prior-knowledge",
                            "-o", "/dev/null"] + urls, timeout=20,
                           stdin=subprocess.DEVNULL)
            n += 10
            time.sleep(0.05)
    t = threading.Thread(target=run)
    t.start()
    return t


@et.timeout(180)
def test_protocols_panel_shows_http2():
    """Requests over HTTP/1.1 and HTTP/2 at once: the protocol chart draws
    both, and the HTTP/2 figures are the node's (/stats), refusals by
    reason included."""
    chromium()
    with et.Origin() as o:
        port, h2port = et.free_port(), et.free_port()
        with et.Edge(o.url, "--admin-listen", "127.0.0.1:%d" % port,
                     "--listen-h2c", "127.0.0.1:%d" % h2port,
                     "--cache-dir", et.mktemp("cache")) as e:
            h2_bad_header(h2port)
            stop = threading.Event()
            ts = traffic(e.port, 14, stop) + [h2_traffic(h2port, 14, stop)]
            try:
                time.sleep(8)  # history for the page's first request
                url = "http://127.0.0.1:%d/dashboard" % port
                # Tall enough for the fourth row of panels.
                dom = run_chromium(url, "dom", height=TALL)
                tmp = et.mktemp("dashboard")
                shot = os.path.join(tmp, "protocols.png")
                run_chromium(url, "shot", shot, height=TALL)
            finally:
                stop.set()
                for t in ts:
                    t.join()
            with et.Client(port) as c:
                st = json.loads(c.request("GET", "/stats").body)
        tag = re.search(r'<canvas id="c-proto"[^>]*>', dom)
        et.ok(tag is not None, "the protocol chart is on the page")
        pts = re.search(r'data-points="(\d+)"', tag.group(0))
        et.ok(pts and int(pts.group(1)) >= 3, "c-proto charted: %s"
              % tag.group(0))
        legend = re.search(r'id="l-proto">(.*?)</div>', dom)
        et.ok(legend and "HTTP/1.1" in legend.group(1) and
              "HTTP/2" in legend.group(1), "a series per protocol: %r"
              % (legend and legend.group(1)))
        kv = re.search(r'id="h2-kv">(.*?)</div></div>', dom)
        et.ok(kv is not None, "the HTTP/2 figures are on the page")
        fig = dict(re.findall(r"<span>([a-z_]+)</span>([^<]*)", kv.group(0)))
        et.eq(fig.get("bad_header"), "1", "the refusal, by its reason: %r"
              % fig)
        et.eq(fig.get("refused"), "1", "refusals in all")
        et.ok(int(fig.get("connections", "0")) >= 2, "h2 connections: %r"
              % fig)
        # The page's last poll came before the traffic ended: no more
        # than /stats says now, and many streams on each connection.
        et.ok(10 <= int(fig["streams"]) <= st["http2"]["streams"],
              "streams %r against /stats %d" % (fig["streams"],
                                                st["http2"]["streams"]))
        et.ok(st["requests_by_protocol"]["http2"] >= 10 and
              st["requests_by_protocol"]["http1"] >= 10,
              "both protocols had traffic: %r" % st["requests_by_protocol"])
        # Both series drew, in the chart's box: a band's line or its fill
        # (the line's colour at 0.3 over the panel).  The HTTP/2 band is
        # stacked on HTTP/1.1's, so where HTTP/2's rate is small its line
        # covers HTTP/1.1's; the fill below stays.
        box = tuple(int(x) for x in re.search(
            r'data-rect="(\d+),(\d+),(\d+),(\d+)"', tag.group(0)).groups())
        w, h, rows = png_pixels(shot)
        x, y, cw, ch = box
        et.ok(y + ch <= h, "the chart %r is in the screenshot (%d high)"
              % (box, h))
        area = [row[x:x + cw] for row in rows[y:y + ch]]
        for name, rgb in (("HTTP/1.1", (0x58, 0xa6, 0xff)),
                          ("HTTP/2", (0x3f, 0xb9, 0x50))):
            line, fill = count_near(area, rgb), count_near(area, band(rgb))
            et.ok(line + fill > 40, "%s: %d pixels of its line, %d of its "
                  "fill" % (name, line, fill))


@et.timeout(120)
def test_page_asks_for_the_token():
    chromium()
    d = et.mktemp("token")
    path = os.path.join(d, "token")
    with open(path, "w") as f:
        f.write("dashboard-token\n")
    os.chmod(path, 0o600)
    with et.Origin() as o:
        port = et.free_port()
        with et.Edge(o.url, "--admin-listen", "127.0.0.1:%d" % port,
                     "--admin-token-file", path):
            dom = run_chromium("http://127.0.0.1:%d/dashboard" % port, "dom",
                               budget_ms=2000)
            et.ok('data-state="login"' in dom, "the page asks for a token: %s"
                  % re.findall(r'<body[^>]*>', dom))


if __name__ == "__main__":
    et.main()
