"""The admin listener's figures are exact: after a scripted sequence of
requests (hits, misses, 404s, an origin failure, a POST, a method the node
refuses), every counter of /metrics and /stats equals what the test did and
saw on the wire, and so it is under concurrent load on four workers.

/metrics is read by a strict parser of the Prometheus text exposition
format 0.0.4 written here (HELP, then TYPE, then the family's samples, once
per family; metric and label name syntax; escapes; counters end in _total;
histogram buckets ascend, are cumulative and end at +Inf == _count), which
is itself checked against bad input first.  Admin requests are never
counted; admin_allow and admin_token_file refuse with 403 and 401 and log
the client."""
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402

# ---------------------------------------------------------------- the parser

METRIC_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class ExpositionError(ValueError):
    pass


def _value(s, where):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        raise ExpositionError("%s: bad value %r" % (where, s))
    return float(s)


def _labels(s, where):
    """Parse 'a="x",b="y"' (the text between braces) into a dict."""
    labels, i = {}, 0
    while i < len(s):
        m = re.match(r"([^=]*)=\"", s[i:])
        if not m:
            raise ExpositionError("%s: bad label at %r" % (where, s[i:]))
        name = m.group(1)
        if not LABEL_RE.match(name) or name.startswith("__"):
            raise ExpositionError("%s: bad label name %r" % (where, name))
        if name in labels:
            raise ExpositionError("%s: label %s twice" % (where, name))
        i += m.end()
        val = []
        while True:
            if i >= len(s):
                raise ExpositionError("%s: unterminated label value" % where)
            c = s[i]
            if c == "\\":
                nxt = s[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise ExpositionError("%s: bad escape \\%s" % (where, nxt))
                val.append("\n" if nxt == "n" else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise ExpositionError("%s: newline in a label value" % where)
            else:
                val.append(c)
                i += 1
        labels[name] = "".join(val)
        if i < len(s):
            if s[i] != ",":
                raise ExpositionError("%s: expected ',' at %r" % (where, s[i:]))
            i += 1
    return labels


def _family_of(name, families):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            base = name[:-len(suffix)]
            if families.get(base, {}).get("type") == "histogram":
                return base
    return name


def parse_exposition(text):
    """Parse and check text format 0.0.4.  Returns {family: {"type",
    "help", "samples": [(name, labels, value)]}}; raises ExpositionError."""
    if not text.endswith("\n"):
        raise ExpositionError("the text does not end with a newline")
    families, order, current = {}, [], None
    seen_series = set()
    for no, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d" % no
        if line == "":
            raise ExpositionError("%s: empty line" % where)
        if line != line.strip(" "):
            raise ExpositionError("%s: leading or trailing blanks" % where)
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) < 4 or parts[1] not in ("HELP", "TYPE"):
                raise ExpositionError("%s: a comment that is neither HELP "
                                      "nor TYPE: %r" % (where, line))
            kind, name, rest = parts[1], parts[2], parts[3]
            if not METRIC_RE.match(name):
                raise ExpositionError("%s: bad metric name %r" % (where, name))
            fam = families.get(name)
            if kind == "HELP":
                if fam is not None:
                    raise ExpositionError("%s: second HELP for %s, or HELP "
                                          "after its samples" % (where, name))
                if re.fullmatch(r"([^\\]|\\[\\n])*", rest) is None:
                    raise ExpositionError("%s: bad escape in HELP" % where)
                families[name] = {"help": rest, "type": None, "samples": []}
                order.append(name)
                current = name
            else:
                if fam is None or current != name:
                    raise ExpositionError("%s: TYPE of %s without its HELP "
                                          "just before" % (where, name))
                if fam["type"] is not None or fam["samples"]:
                    raise ExpositionError("%s: second TYPE for %s" % (where,
                                                                      name))
                if rest not in TYPES:
                    raise ExpositionError("%s: unknown type %r" % (where, rest))
                if rest == "counter" and not name.endswith("_total"):
                    raise ExpositionError("%s: counter %s does not end in "
                                          "_total" % (where, name))
                fam["type"] = rest
            continue
        m = re.match(r"([^{ ]+)(\{(.*)\})? (\S+)( (-?\d+))?\Z", line)
        if not m:
            raise ExpositionError("%s: bad sample line %r" % (where, line))
        name = m.group(1)
        if not METRIC_RE.match(name):
            raise ExpositionError("%s: bad metric name %r" % (where, name))
        labels = _labels(m.group(3), where) if m.group(2) else {}
        value = _value(m.group(4), where)
        fam_name = _family_of(name, families)
        if fam_name != current:
            raise ExpositionError("%s: sample %s outside its family's block "
                                  "(or before its HELP/TYPE)" % (where, name))
        fam = families[fam_name]
        if fam["type"] is None:
            raise ExpositionError("%s: sample before TYPE" % where)
        if fam["type"] in ("counter", "gauge") and name != fam_name:
            raise ExpositionError("%s: %s in family %s" % (where, name,
                                                           fam_name))
        if fam["type"] == "counter" and not value >= 0:
            raise ExpositionError("%s: negative counter" % where)
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            raise ExpositionError("%s: series %r twice" % (where, key))
        seen_series.add(key)
        fam["samples"].append((name, labels, value))
    for name in order:
        fam = families[name]
        if fam["type"] is None:
            raise ExpositionError("%s has HELP but no TYPE" % name)
        if fam["type"] == "histogram":
            _check_histogram(name, fam["samples"])
    return families


def _check_histogram(name, samples):
    groups = {}
    for sname, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None,
                                     "count": None})
        if sname == name + "_bucket":
            if "le" not in labels:
                raise ExpositionError("%s: bucket without le" % name)
            g["buckets"].append((_value(labels["le"], name + " le"), value))
        elif sname == name + "_sum":
            g["sum"] = value
        elif sname == name + "_count":
            g["count"] = value
        else:
            raise ExpositionError("%s: stray sample %s" % (name, sname))
    if not groups:
        raise ExpositionError("%s: a histogram without samples" % name)
    for rest, g in groups.items():
        b = g["buckets"]
        if not b or b[-1][0] != math.inf:
            raise ExpositionError("%s%r: the last bucket is not +Inf"
                                  % (name, rest))
        for (le0, c0), (le1, c1) in zip(b, b[1:]):
            if not le1 > le0:
                raise ExpositionError("%s%r: le not ascending" % (name, rest))
            if c1 < c0:
                raise ExpositionError("%s%r: buckets not cumulative"
                                      % (name, rest))
        if g["count"] is None or g["sum"] is None:
            raise ExpositionError("%s%r: _sum or _count missing"
                                  % (name, rest))
        if b[-1][1] != g["count"]:
            raise ExpositionError("%s%r: +Inf bucket %s != _count %s"
                                  % (name, rest, b[-1][1], g["count"]))


def value_of(fams, family, name=None, **labels):
    """The value of the one sample of <family> (sample <name>) whose labels
    include <labels>."""
    got = [v for n, l, v in fams[family]["samples"]
           if n == (name or family)
           and all(l.get(k) == v for k, v in labels.items())]
    if len(got) != 1:
        raise AssertionError("%d samples of %s%r" % (len(got), family, labels))
    return got[0]


# ---------------------------------------------------------------- helpers

def admin_args():
    port = et.free_port()
    return port, ["--admin-listen", "127.0.0.1:%d" % port]


def admin_get(port, path, headers=None):
    with et.Client(port) as c:
        return c.request("GET", path, headers)


def metrics(port):
    r = admin_get(port, "/metrics")
    et.eq(r.status, 200, "/metrics status")
    et.eq(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8",
          "/metrics content type")
    return parse_exposition(r.body.decode("utf-8"))


def stats(port, query=""):
    r = admin_get(port, "/stats" + query)
    et.eq(r.status, 200, "/stats status")
    et.eq(r.header("content-type"), "application/json", "/stats type")
    return json.loads(r.body)


def wire_bytes(r):
    """Bytes edged sent for response <r> (head and body)."""
    et.ok(r.framing in ("length", "none"), "framing %s" % r.framing)
    return len(r.raw_head) + len(r.body)


def edged_version():
    out = subprocess.run([et.EDGED, "--version"], capture_output=True,
                         text=True, check=True).stdout
    return out.split()[1]


# The /stats fields the tests, the dashboard and docs/metrics.md rely on.
STATS_FIELDS = {
    "version": str, "uptime_s": int, "uptime_ms": int, "workers": int,
    "draining": bool, "requests": int, "responses": dict,
    "requests_by_method": dict, "client_aborts": int, "bad_requests": int,
    "origin_fetches": int, "origin_errors": int, "origin_timeouts": int,
    "bytes_sent": int, "response_bytes": dict, "connections_accepted": int,
    "connections_open": int, "cache": dict, "origins": list, "windows": dict,
    "sites": dict,
}
CACHE_FIELDS = ("enabled", "hits_memory", "hits_disk", "misses",
                "revalidations", "not_modified", "stores", "invalidations",
                "bypass", "stale", "coalesced", "purges", "objects", "bytes",
                "memory_objects", "memory_bytes", "puts", "put_drops",
                "evictions", "memory_evictions", "map_full", "corrupt",
                "io_errors")
WINDOW_FIELDS = ("span_s", "requests", "requests_per_s", "hits", "misses",
                 "stale", "bypass", "bytes_cache", "bytes_origin",
                 "bytes_edge", "origin_requests", "origin_errors",
                 "hit_ratio")
SITE_FIELDS = ("requests", "hits", "hits_memory", "hits_disk", "misses",
               "stale", "bypass", "bytes_cache", "bytes_origin", "bytes_edge",
               "origin_requests", "origin_errors", "origin_errors_by_kind",
               "origin_duration", "windows")


def check_stats_shape(s):
    for k, t in STATS_FIELDS.items():
        et.ok(k in s, "/stats has %s" % k)
        et.ok(isinstance(s[k], t), "/stats %s is a %s: %r" % (k, t.__name__,
                                                              s[k]))
    for k in CACHE_FIELDS:
        et.ok(k in s["cache"], "/stats cache has %s" % k)
    for w in ("1m", "5m", "15m"):
        for k in WINDOW_FIELDS:
            et.ok(k in s["windows"][w], "window %s has %s" % (w, k))
    et.ok(list(s["sites"]) == ["default"], "one site, default: %r"
          % list(s["sites"]))
    for k in SITE_FIELDS:
        et.ok(k in s["sites"]["default"], "site has %s" % k)
    d = s["origins"][0]["duration"]
    et.eq(len(d["counts"]), len(d["le_s"]) + 1, "counts = bounds + 1")
    et.eq(sorted(d["le_s"]), d["le_s"], "bounds ascend")
    et.eq(sum(d["counts"]), d["count"], "histogram count")


ALL_CLASSES = [(m, st) for m in ("get", "head", "post", "put", "delete",
                                 "patch", "options", "other")
               for st in ("none", "1xx", "2xx", "3xx", "4xx", "5xx")]

# ---------------------------------------------------------------- tests


def test_the_parser_rejects_what_is_not_exposition_format():
    good = ('# HELP a_total A counter, with \\\\ and \\n escaped.\n'
            '# TYPE a_total counter\n'
            'a_total{x="q\\"uo\\\\te\\n",y="2"} 3\n'
            '# HELP h A histogram.\n# TYPE h histogram\n'
            'h_bucket{le="0.1"} 1\nh_bucket{le="1"} 2\n'
            'h_bucket{le="+Inf"} 2\nh_sum 0.5\nh_count 2\n'
            '# HELP g A gauge.\n# TYPE g gauge\ng -1.5e3\n')
    fams = parse_exposition(good)
    et.eq(fams["a_total"]["samples"][0][1]["x"], 'q"uo\\te\n',
          "label escapes decoded")
    bad = {
        "no final newline": good[:-1],
        "counter without _total": good.replace("a_total", "a"),
        "TYPE before HELP": "# TYPE g gauge\n# HELP g x\ng 1\n",
        "no TYPE": "# HELP g x\ng 1\n",
        "sample before HELP": "g 1\n# HELP g x\n# TYPE g gauge\n",
        "interleaved families": ("# HELP g x\n# TYPE g gauge\n"
                                 "# HELP k x\n# TYPE k gauge\nk 1\ng 1\n"),
        "bad metric name": "# HELP 1g x\n# TYPE 1g gauge\n1g 1\n",
        "bad label name": '# HELP g x\n# TYPE g gauge\ng{1a="x"} 1\n',
        "bad escape": '# HELP g x\n# TYPE g gauge\ng{a="\\t"} 1\n',
        "unquoted label": '# HELP g x\n# TYPE g gauge\ng{a=x} 1\n',
        "duplicate series": '# HELP g x\n# TYPE g gauge\ng 1\ng 2\n',
        "bad value": '# HELP g x\n# TYPE g gauge\ng one\n',
        "unknown type": '# HELP g x\n# TYPE g meter\ng 1\n',
        "+Inf != _count": good.replace("h_count 2", "h_count 3"),
        "not cumulative": good.replace('h_bucket{le="1"} 2',
                                       'h_bucket{le="1"} 0'),
        "no +Inf bucket": good.replace('h_bucket{le="+Inf"} 2\n', ""),
        "le not ascending": good.replace('le="1"', 'le="0.05"'),
        "plain comment": "# just a comment\n" + good,
        "trailing blank": good.replace("g -1.5e3", "g -1.5e3 "),
        "bad HELP escape": good.replace("A gauge.", "A \\gauge."),
    }
    for what, text in bad.items():
        try:
            parse_exposition(text)
        except ExpositionError:
            continue
        raise AssertionError("the parser accepted: %s" % what)


def test_counters_match_a_scripted_sequence():
    urls = {"/obj/u%d?size=%d&ttl=300" % (i, 700 + 300 * i): n
            for i, n in enumerate((3, 1, 4, 2, 5))}
    with et.Origin() as o:
        port, extra = admin_args()
        cdir = os.path.join(et.mktemp("cache"), "c")
        with et.Edge(o.url, "--cache-dir", cdir, *extra) as e:
            # Before any traffic: every series is there, at zero.
            m0 = metrics(port)
            for meth, st in ALL_CLASSES:
                et.eq(value_of(m0, "edge_requests_total", site="default",
                               method=meth, status=st), 0, "%s %s" % (meth, st))
            by = {"cache": 0, "origin": 0, "edge": 0}
            want = {("get", "2xx"): 0, ("get", "4xx"): 0, ("get", "5xx"): 0,
                    ("head", "2xx"): 0, ("post", "2xx"): 0,
                    ("other", "5xx"): 0}
            with e.connect() as c:
                for url, n in urls.items():
                    for i in range(n):
                        r = c.request("GET", url)
                        et.eq(r.status, 200, url)
                        cs = r.header("cache-status")
                        et.ok(cs.startswith("edged; hit") == (i > 0), cs)
                        by["cache" if i > 0 else "origin"] += wire_bytes(r)
                        want[("get", "2xx")] += 1
                for i in range(3):
                    r = c.request("GET", "/obj/nf%d?status=404" % i)
                    et.eq(r.status, 404, "404 from the origin")
                    by["origin"] += wire_bytes(r)
                    want[("get", "4xx")] += 1
                r = c.request("HEAD", next(iter(urls)))
                et.eq(r.status, 200, "HEAD hit")
                by["cache"] += wire_bytes(r)
                want[("head", "2xx")] += 1
                r = c.request("POST", "/echo", body=b"x" * 100)
                et.eq(r.status, 200, "POST")
                by["origin"] += wire_bytes(r)
                want[("post", "2xx")] += 1
                r = c.request("GET", "/obj/broken?reset=1")
                et.eq(r.status, 502, "origin reset")
                by["edge"] += wire_bytes(r)
                want[("get", "5xx")] += 1
            # A method the node refuses (refuse_methods: 501) closes the
            # connection.
            with e.connect() as c:
                r = c.request("TRACE", "/pot")
                et.eq(r.status, 501, "refused method")
                by["edge"] += wire_bytes(r)
                want[("other", "5xx")] += 1
            nreq = sum(want.values())
            hits = sum(urls.values()) - len(urls) + 1  # and the HEAD
            misses = len(urls) + 3 + 1                 # 404s, the reset
            ofetch = len(urls) + 3 + 1 + 1             # and the POST
            et.wait_for(lambda: stats(port)["cache"]["objects"] == len(urls),
                        what="every object committed")
            et.wait_for(lambda: stats(port)["connections_open"] == 0,
                        what="client connections closed")

            for _ in range(2):  # admin requests count nowhere
                m = metrics(port)
                s = stats(port)
            check_stats_shape(s)
            # /metrics
            for (meth, st) in ALL_CLASSES:
                et.eq(value_of(m, "edge_requests_total", site="default",
                               method=meth, status=st),
                      want.get((meth, st), 0), "requests %s %s" % (meth, st))
            et.eq(value_of(m, "edge_cache_hits_total", tier="memory"), hits,
                  "memory hits")
            et.eq(value_of(m, "edge_cache_hits_total", tier="disk"), 0,
                  "disk hits")
            et.eq(value_of(m, "edge_cache_misses_total"), misses, "misses")
            et.eq(value_of(m, "edge_cache_stale_total", reason="revalidate"),
                  0, "stale")
            et.eq(value_of(m, "edge_cache_bypass_total"), 1, "bypass (POST)")
            et.eq(value_of(m, "edge_cache_stores_total"), len(urls), "stores")
            et.eq(value_of(m, "edge_cache_objects"), len(urls), "objects")
            et.ok(value_of(m, "edge_cache_bytes") > 0, "cache bytes")
            et.ok(value_of(m, "edge_cache_memory_bytes") > 0, "memory bytes")
            et.eq(value_of(m, "edge_cache_evictions_total", tier="disk"), 0,
                  "evictions")
            et.eq(value_of(m, "edge_coalesced_total"), 0, "coalesced")
            for t in ("hard", "soft"):
                et.eq(value_of(m, "edge_cache_purged_lookups_total", type=t),
                      0, "lookups that found a purged object")
            srv = o.url.split("//")[1]
            et.eq(value_of(m, "edge_origin_requests_total", pool="default",
                           server=srv), ofetch, "origin requests")
            kinds = [l["kind"] for _, l, _ in
                     m["edge_origin_errors_total"]["samples"]]
            et.ok({"connect", "connect_timeout", "first_byte_timeout",
                   "idle_timeout", "reset", "protocol", "internal"} <=
                  set(kinds), "every kind of origin error: %r" % kinds)
            for kind in kinds:
                et.eq(value_of(m, "edge_origin_errors_total", pool="default",
                               server=srv, kind=kind),
                      1 if kind == "reset" else 0, "origin errors %s" % kind)
            et.eq(s["origins"][0]["errors"],
                  {k: 1 if k == "reset" else 0 for k in kinds},
                  "/stats origin errors")
            # Every fetch but the reset one had a response head.
            et.eq(value_of(m, "edge_origin_duration_seconds",
                           "edge_origin_duration_seconds_count",
                           server=srv), ofetch - 1, "histogram count")
            et.ok(value_of(m, "edge_origin_duration_seconds",
                           "edge_origin_duration_seconds_sum",
                           server=srv) > 0, "histogram sum")
            for k, v in by.items():
                et.eq(value_of(m, "edge_response_bytes_total", **{"from": k}),
                      v, "bytes from %s" % k)
            et.eq(value_of(m, "edge_connections_open"), 0, "open connections")
            et.eq(value_of(m, "edge_connections_accepted_total"), 2,
                  "connections accepted")
            et.eq(value_of(m, "edge_build_info", version=edged_version()), 1,
                  "build info")
            et.eq(value_of(m, "edge_draining"), 0, "not draining")

            # /stats: the same figures
            et.eq(s["requests"], nreq, "requests")
            et.eq(s["responses"], {"1xx": 0, "2xx": 17, "3xx": 0, "4xx": 3,
                                   "5xx": 2}, "responses")
            for (meth, st) in ALL_CLASSES:
                et.eq(s["requests_by_method"][meth][st],
                      want.get((meth, st), 0), "by method %s %s" % (meth, st))
            c = s["cache"]
            et.eq((c["hits_memory"], c["hits_disk"], c["misses"], c["bypass"],
                   c["stores"], c["objects"], c["stale"]["revalidate"],
                   c["coalesced"], c["purges"]),
                  (hits, 0, misses, 1, len(urls), len(urls), 0, 0,
                   {"hard": 0, "soft": 0, "seq": 0}), "cache figures")
            et.eq(s["response_bytes"], by, "response bytes")
            et.eq(s["bytes_sent"], sum(by.values()), "bytes sent")
            et.eq((s["origin_fetches"], s["origin_errors"]), (ofetch, 1),
                  "origin fetches and errors")
            og = s["origins"][0]
            et.eq((og["pool"], og["server"], og["requests"],
                   og["errors"]["reset"], og["duration"]["count"]),
                  ("default", srv, ofetch, 1, ofetch - 1), "origin figures")
            site = s["sites"]["default"]
            et.eq((site["requests"], site["hits"], site["misses"],
                   site["bypass"], site["bytes_cache"], site["bytes_origin"],
                   site["bytes_edge"], site["origin_requests"],
                   site["origin_errors"]),
                  (nreq, hits, misses, 1, by["cache"], by["origin"],
                   by["edge"], ofetch, 1), "the default site")
            # Up for less than a minute: every window holds it all.
            for name in ("1m", "5m", "15m"):
                for w in (s["windows"][name], site["windows"][name]):
                    et.eq((w["requests"], w["hits"], w["misses"],
                           w["bytes_cache"], w["bytes_origin"]),
                          (nreq, hits, misses, by["cache"], by["origin"]),
                          "window %s" % name)
                    et.ok(0 < w["span_s"] <= 60, "span %r" % w["span_s"])
                    hr = w["hit_ratio"]
                    et.ok(abs(hr["requests"] - hits / (hits + misses)) < 1e-9,
                          "hit ratio by requests %r" % hr)
                    et.ok(abs(hr["bytes"] - by["cache"] /
                              (by["cache"] + by["origin"])) < 1e-9,
                          "hit ratio by bytes %r" % hr)
            # The per-second history the dashboard starts from.
            h = stats(port, "?history=30")["sites"]["default"]["history"]
            rows = h["rows"]
            et.ok(rows and rows[0][0] == 0 and rows[0][1] == 0,
                  "history starts at zero: %r" % rows[:1])
            et.ok(all(b[0] > a[0] and b[1] >= a[1]
                      for a, b in zip(rows, rows[1:])),
                  "history ascends")
            et.ok(rows[-1][1] <= nreq, "history within the totals")


def proc_figures(pid):
    """What /proc says of process <pid>: (cpu s, rss, vsize, start s)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/stat") as f:
        btime = next(int(line.split()[1]) for line in f
                     if line.startswith("btime "))
    # fields[0] is the state, field 3 of proc(5)
    return ((int(fields[11]) + int(fields[12])) / tick,
            int(fields[21]) * page, int(fields[20]),
            btime + int(fields[19]) / tick)


def test_build_process_and_budget_metrics():
    """edge_build_info names the version; process_* agree with what /proc
    says of the edged process; edge_cache_budget_bytes is the configured
    cache_size and memory_size."""
    with et.Origin() as o:
        port, extra = admin_args()
        cdir = os.path.join(et.mktemp("cache"), "c")
        with et.Edge(o.url, "--cache-dir", cdir, "--cache-size", "64M",
                     "--memory-size", "8M", *extra) as e:
            with e.connect() as c:
                for i in range(20):
                    et.eq(c.request("GET", "/obj/p%d?size=5000" % i).status,
                          200, "fill")
            vsz_before = proc_figures(e.pid)[2]
            m = metrics(port)
            vsz_after = proc_figures(e.pid)[2]
            s = stats(port)
            cpu, rss, _, start = proc_figures(e.pid)
            et.eq(value_of(m, "edge_build_info", version=s["version"]), 1,
                  "edge_build_info{version}")
            et.eq(value_of(m, "edge_cache_budget_bytes", tier="disk"),
                  64 << 20, "disk budget: cache_size")
            et.eq(value_of(m, "edge_cache_budget_bytes", tier="memory"),
                  8 << 20, "memory budget: memory_size")
            et.eq((s["cache"]["budget_bytes"],
                   s["cache"]["memory_budget_bytes"]), (64 << 20, 8 << 20),
                  "/stats budgets")
            et.eq(m["process_cpu_seconds_total"]["type"], "counter",
                  "cpu is a counter")
            pcpu = value_of(m, "process_cpu_seconds_total")
            et.ok(0 <= pcpu <= cpu, "cpu %r <= /proc's later %r" % (pcpu, cpu))
            et.ok(abs(value_of(m, "process_start_time_seconds") - start)
                  < 0.02, "start time as /proc says")
            et.ok(abs(time.time() - start) < 120, "started just now")
            # Building the page itself may grow the heap after the figure
            # was read: it lies between /proc's before and after.
            pvsz = value_of(m, "process_virtual_memory_bytes")
            et.ok(min(vsz_before, vsz_after) <= pvsz
                  <= max(vsz_before, vsz_after),
                  "virtual memory %r between /proc's %r and %r"
                  % (pvsz, vsz_before, vsz_after))
            prss = value_of(m, "process_resident_memory_bytes")
            et.ok(0 < prss and abs(prss - rss) < 16 << 20,
                  "resident %r near /proc's %r" % (prss, rss))
            nfd = len(os.listdir("/proc/%d/fd" % e.pid))
            et.ok(abs(value_of(m, "process_open_fds") - nfd) <= 4,
                  "open fds near %d" % nfd)
            with open("/proc/%d/limits" % e.pid) as f:
                lim = next(line.split()[3] for line in f
                           if line.startswith("Max open files"))
            got = value_of(m, "process_max_fds")
            et.ok(got == int(lim) if lim != "unlimited" else got >= 2 ** 63,
                  "max fds %r, limits %r" % (got, lim))


def test_one_server_label_spelling():
    """Every family labelled server spells it host:port, as
    edge_origin_requests_total does: one server's series join across
    families."""
    with et.Origin() as o:
        port, extra = admin_args()
        with et.Edge(o.url, *extra) as e:
            et.eq(e.request("GET", "/obj/x?size=10").status, 200, "fetch")
            m = metrics(port)
            srv = o.url.split("//")[1]
            fams = [f for f in m if any("server" in l for _, l, _ in
                                        m[f]["samples"])]
            et.ok(len(fams) >= 8, "families with a server label: %r" % fams)
            for f in fams:
                got = {l["server"] for _, l, _ in m[f]["samples"]} - {""}
                et.eq(got, {srv}, "%s: server spelled host:port" % f)
            et.eq(stats(port)["pools"][0]["servers"][0]["server"], srv,
                  "/stats pools servers[].server")


@et.timeout(120)
def test_counters_exact_under_concurrent_load():
    nthreads, per_thread = 8, 150
    hot = ["/obj/hot%d?size=%d&ttl=300" % (i, 500 + 37 * i) for i in range(10)]
    with et.Origin() as o:
        port, extra = admin_args()
        cdir = os.path.join(et.mktemp("cache"), "c")
        with et.Edge(o.url, "--cache-dir", cdir, *extra, threads=4) as e:
            with e.connect() as c:  # warm: 10 misses
                for u in hot:
                    et.eq(c.request("GET", u).status, 200, u)
            # A request is counted once the socket has taken its answer,
            # a moment after the client may have read it: the base is
            # taken once the warm-up connection has ended.
            et.wait_for(lambda: stats(port)["connections_open"] == 0,
                        what="the warm-up connection closed")
            base = stats(port)
            results = [None] * nthreads
            errors = []

            def run(k):
                got = {"hit": 0, "miss": 0, "404": 0, "bytes": 0}
                try:
                    with e.connect() as c:
                        for i in range(per_thread):
                            r = i % 10
                            if r < 7:
                                resp = c.request("GET", hot[(k + i) % 10])
                                et.eq(resp.status, 200, "hit status")
                                got["hit"] += 1
                            elif r < 9:
                                resp = c.request(
                                    "GET", "/obj/t%d-%d?size=900" % (k, i))
                                et.eq(resp.status, 200, "miss status")
                                got["miss"] += 1
                            else:
                                resp = c.request(
                                    "GET", "/obj/n%d-%d?status=404" % (k, i))
                                et.eq(resp.status, 404, "404 status")
                                got["404"] += 1
                            got["bytes"] += wire_bytes(resp)
                except BaseException as ex:  # reported by the main thread
                    errors.append(ex)
                results[k] = got

            ts = [threading.Thread(target=run, args=(k,))
                  for k in range(nthreads)]
            for t in ts:
                t.start()
            # Read while the load runs: the exposition stays well formed.
            while any(t.is_alive() for t in ts):
                metrics(port)
            for t in ts:
                t.join()
            if errors:
                raise errors[0]
            tot = {k: sum(r[k] for r in results) for k in results[0]}
            et.wait_for(lambda: stats(port)["connections_open"] == 0,
                        what="client connections closed")
            s = stats(port)
            m = metrics(port)
            n = nthreads * per_thread
            d = lambda f: f(s) - f(base)  # noqa: E731
            et.eq(d(lambda x: x["requests"]), n, "requests")
            et.eq(d(lambda x: x["responses"]["2xx"]), tot["hit"] + tot["miss"],
                  "2xx")
            et.eq(d(lambda x: x["responses"]["4xx"]), tot["404"], "4xx")
            et.eq(d(lambda x: x["cache"]["hits_memory"] +
                    x["cache"]["hits_disk"]), tot["hit"], "hits")
            et.eq(d(lambda x: x["cache"]["misses"]), tot["miss"] + tot["404"],
                  "misses")
            et.eq(d(lambda x: x["origin_fetches"]), tot["miss"] + tot["404"],
                  "origin fetches")
            et.eq(d(lambda x: x["bytes_sent"]), tot["bytes"], "bytes sent")
            et.eq(d(lambda x: x["response_bytes"]["cache"] +
                    x["response_bytes"]["origin"]), tot["bytes"],
                  "bytes by origin")
            et.eq(s["connections_accepted"], nthreads + 1, "connections")
            # /metrics agrees with /stats.
            et.eq(value_of(m, "edge_requests_total", method="get",
                           status="2xx"), s["responses"]["2xx"], "get 2xx")
            et.eq(value_of(m, "edge_requests_total", method="get",
                           status="4xx"), s["responses"]["4xx"], "get 4xx")
            et.eq(value_of(m, "edge_cache_misses_total"),
                  s["cache"]["misses"], "misses")
            et.eq(value_of(m, "edge_origin_duration_seconds",
                           "edge_origin_duration_seconds_count"),
                  s["origin_fetches"], "every fetch timed")
            et.eq(value_of(m, "edge_response_bytes_total", **{"from": "cache"}),
                  s["response_bytes"]["cache"], "cache bytes")
            w = s["windows"]["1m"]["hit_ratio"]
            et.ok(0 < w["requests"] < 1 and 0 < w["bytes"] < 1,
                  "1-minute ratios after traffic: %r" % w)


def test_open_connections_gauge():
    with et.Origin() as o:
        port, extra = admin_args()
        with et.Edge(o.url, *extra, threads=4) as e:
            clients = [e.connect() for _ in range(5)]
            try:
                et.wait_for(lambda: value_of(metrics(port),
                                             "edge_connections_open") == 5,
                            what="5 open connections")
                et.eq(stats(port)["connections_open"], 5, "/stats agrees")
            finally:
                for c in clients[:3]:
                    c.close()
            et.wait_for(lambda: stats(port)["connections_open"] == 2,
                        what="2 left open")
            for c in clients[3:]:
                c.close()
            et.wait_for(lambda: stats(port)["connections_open"] == 0,
                        what="none left")


def test_admin_allow_refuses_and_logs_the_client():
    with et.Origin() as o:
        port, extra = admin_args()
        with et.Edge(o.url, *extra, "--admin-allow", "10.0.0.0/8",
                     "--admin-allow", "::1") as e:
            for path in ("/metrics", "/stats", "/healthz", "/dashboard"):
                et.eq(admin_get(port, path).status, 403, path)
            et.wait_for(lambda: "403 for client 127.0.0.1" in
                        e.stderr_text(), what="the refusal logged")
            et.eq(e.request("GET", "/obj/x?size=10").status, 200,
                  "the public listener does not care")
        port, extra = admin_args()
        with et.Edge(o.url, *extra, "--admin-allow", "127.0.0.1/32"):
            et.eq(admin_get(port, "/metrics").status, 200, "a /32 match")


def test_admin_token():
    tok = "s3cret-Token_42"
    d = et.mktemp("token")
    path = os.path.join(d, "token")
    with open(path, "w") as f:
        f.write(tok + "\n")
    os.chmod(path, 0o600)
    with et.Origin() as o:
        port, extra = admin_args()
        with et.Edge(o.url, *extra, "--admin-token-file", path) as e:
            r = admin_get(port, "/metrics")
            et.eq(r.status, 401, "no token")
            et.ok((r.header("www-authenticate") or "").startswith("Bearer"),
                  "WWW-Authenticate: %r" % r.header("www-authenticate"))
            for bad in ("Bearer nope", "Bearer " + tok + "x", "Basic " + tok,
                        "Bearer " + tok[:-1]):
                et.eq(admin_get(port, "/stats",
                                {"Authorization": bad}).status, 401, bad)
            for ok_value in ("Bearer " + tok, "bearer  " + tok):
                et.eq(admin_get(port, "/metrics",
                                {"Authorization": ok_value}).status, 200,
                      ok_value)
            et.eq(admin_get(port, "/healthz").status, 200,
                  "/healthz needs no token")
            et.eq(admin_get(port, "/dashboard").status, 200,
                  "/dashboard (no data) needs no token")
            et.wait_for(lambda: "401 for client 127.0.0.1" in
                        e.stderr_text(), what="the refusal logged")


def test_healthz_and_draining():
    with et.Origin() as o:
        port, extra = admin_args()
        with et.Edge(o.url, *extra) as e:
            adm = et.Client(port)
            try:
                r = adm.request("GET", "/healthz")
                et.eq((r.status, r.body), (200, b"ok\n"), "serving")
                # A slow response keeps the node draining for a while.
                slow = e.connect()
                slow.send(et.build_request("GET", "/obj/slow?delay_ms=1500"))
                et.wait_for(lambda: o.count("/obj/slow") == 1,
                            what="the slow request at the origin")
                e.send_signal(signal.SIGTERM)
                et.wait_for(lambda: "draining" in e.stderr_text(),
                            what="draining")
                r = adm.request("GET", "/healthz")
                et.eq((r.status, r.body), (503, b"draining\n"), "draining")
                # A new probe (a load balancer's) gets 503 too, not a
                # refused connection.
                with et.Client(port) as probe:
                    r = probe.request("GET", "/healthz")
                    et.eq(r.status, 503, "a new connection while draining")
                m = parse_exposition(adm.request("GET", "/metrics")
                                     .body.decode())
                et.eq(value_of(m, "edge_draining"), 1, "edge_draining")
                et.eq(slow.read_response().status, 200, "the slow one ends")
                slow.close()
            finally:
                adm.close()
            et.eq(e.wait_exit(10), 0, "drained")


def test_bad_admin_settings_stop_start_up():
    d = et.mktemp("bad")
    for args, msg in ((["--admin-allow", "10.1.2.3/8"], "beyond the prefix"),
                      (["--admin-allow", "10.0.0.0/33"], "prefix length"),
                      (["--admin-allow", "localhost"], "not an IPv4 or IPv6"),
                      (["--admin-token-file", os.path.join(d, "missing")],
                       "No such file")):
        p = subprocess.run(
            [et.EDGED, "--listen", "127.0.0.1:%d" % et.free_port(),
             "--origin", "http://127.0.0.1:9", "--threads", "1",
             "--admin-listen", "127.0.0.1:%d" % et.free_port()] + args,
            capture_output=True, text=True, timeout=20)
        # Configuration errors, found by the checks -t runs too: 2.
        et.eq(p.returncode, 2, "exit status for %r" % args)
        et.ok(msg in p.stderr, "%r in stderr: %r" % (msg, p.stderr))


if __name__ == "__main__":
    et.main()
