#!/usr/bin/env python3
"""Story: an operator loads contrib/prometheus/edged-alerts.yml into
Prometheus and imports contrib/grafana/edged-dashboard.json into Grafana.
The rules pass `promtool check rules` and their unit tests (`promtool test
rules`; skipped without promtool, which tools/deps.sh --test installs with
Debian's prometheus package), and every query of both names only metrics
that edged has, with labels those metrics carry: as docs/metrics.md lists
them, and as a running edged (on a purge bus, so the bus families are
there) exposes them.
"""
import json
import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

SRC = os.path.dirname(os.path.abspath(et.TESTS_SRCDIR))
RULES = os.path.join(SRC, "contrib", "prometheus", "edged-alerts.yml")
RULES_TEST = os.path.join(SRC, "contrib", "prometheus", "edged-alerts.test.yml")
DASHBOARD = os.path.join(SRC, "contrib", "grafana", "edged-dashboard.json")
METRICS_MD = os.path.join(SRC, "docs", "metrics.md")

# A metric name, not part of a recording rule's level:name:operation.
NAME = re.compile(r"(?<![\w:])((?:edge|process)_[a-z0-9_]+)(?![\w:])")
SELECTOR = re.compile(r"(?<![\w:])((?:edge|process)_[a-z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every series
HIST_SUFFIXES = ("_bucket", "_sum", "_count")


def documented():
    """{family: set of labels} of the /metrics table of docs/metrics.md."""
    with open(METRICS_MD) as f:
        doc = f.read()
    part = doc.split("\n## /metrics\n", 1)[1].split("\n## ", 1)[0]
    fams = {}
    for line in part.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 5 or not cells[1].startswith("`"):
            continue
        labels = set(re.findall(r"`(\w+)`", cells[3]))
        kind = cells[2]
        for name in re.findall(r"`(\w+)`", cells[1]):
            fams[name] = labels
            if kind == "histogram":
                fams[name + "_bucket"] = labels | {"le"}
                fams[name + "_sum"] = fams[name + "_count"] = labels
    et.ok(len(fams) > 60, "docs/metrics.md lists the families: %d" % len(fams))
    return fams


def dashboard_queries():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    out = []

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("expr", "definition") and isinstance(v, str):
                    out.append(v)
                elif k == "query" and isinstance(v, str):
                    out.append(v)
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(dash)
    et.ok(len(dash["panels"]) >= 12, "dashboard panels: %d" % len(dash["panels"]))
    return dash, out


def check_names(what, texts, fams):
    used = set()
    for t in texts:
        for name in NAME.findall(t):
            et.ok(name in fams, "%s: %s is a metric of edged" % (what, name))
            used.add(name.rsplit("_bucket", 1)[0])
        for name, inner in SELECTOR.findall(t):
            for label in MATCHER.findall(inner):
                et.ok(label in fams.get(name, set()) | TARGET_LABELS,
                      "%s: %s has a label %s (it has %s)"
                      % (what, name, label, sorted(fams.get(name, ()))))
    return used


def rules_text():
    with open(RULES) as f:
        return f.read()


def test_rules_pass_promtool():
    promtool = shutil.which("promtool")
    if promtool is None:
        raise et.Skip("promtool not installed (tools/deps.sh --test "
                      "installs Debian's prometheus package)")
    for argv in ([promtool, "check", "rules", RULES],
                 [promtool, "test", "rules", RULES_TEST]):
        p = subprocess.run(argv, capture_output=True, timeout=60,
                           cwd=os.path.dirname(RULES))
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        et.eq(p.returncode, 0, "%s:\n%s" % (" ".join(argv[1:3]), out))
        et.ok("SUCCESS" in out, out)


def test_queries_name_documented_metrics():
    fams = documented()
    used = check_names("rules", [rules_text()], fams)
    for alert in ("EdgedDown", "EdgedHitRatioDrop", "EdgedOriginErrors",
                  "EdgedPurgeBusLag", "EdgedPurgeBusOffline",
                  "EdgedDiskCacheFull", "EdgedHigh5xxRate"):
        et.ok("alert: %s\n" % alert in rules_text(), "an alert %s" % alert)
    dash, queries = dashboard_queries()
    used |= check_names("dashboard", queries, fams)
    for want in ("edge_cache_budget_bytes", "edge_bus_lag_seconds",
                 "edge_origin_duration_seconds", "process_cpu_seconds_total"):
        et.ok(want in used, "%s is charted or alerted on" % want)
    # Sizes in the units the config uses: bytes(IEC) is Grafana's "bytes".
    units = {p["title"]: p["fieldConfig"]["defaults"].get("unit")
             for p in dash["panels"]}
    et.eq(units["Cache size and budget"], "bytes", "IEC sizes")


def test_queries_name_metrics_a_running_edged_has():
    fams = documented()
    names = set()
    for t in [rules_text()] + dashboard_queries()[1]:
        names |= set(NAME.findall(t))
    port = et.free_port()
    cdir = os.path.join(et.mktemp("cache"), "c")
    with et.Origin() as o:
        with et.Edge(o.url, "--admin-listen", "127.0.0.1:%d" % port,
                     "--cache-dir", cdir,
                     "--purge-bus", "redis://127.0.0.1:9/edged:purges") as e:
            et.eq(e.request("GET", "/obj/a?size=10").status, 200, "a fetch")
            with et.Client(port) as c:
                r = c.request("GET", "/metrics")
            et.eq(r.status, 200, "/metrics")
    live = {}
    for line in r.body.decode().splitlines():
        m = re.match(r"^([a-z_0-9]+)(?:\{([^}]*)\})? ", line)
        if m:
            live.setdefault(m.group(1), set()).update(
                re.findall(r'(\w+)="', m.group(2) or ""))
    for name in sorted(names):
        et.ok(name in live, "%s in a running edged's /metrics" % name)
        if name in fams and not name.endswith(HIST_SUFFIXES):
            et.eq(live[name], fams[name], "%s: its labels" % name)


if __name__ == "__main__":
    et.main()
