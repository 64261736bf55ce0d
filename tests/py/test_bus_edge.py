#!/usr/bin/env python3
"""Story: a node on the purge bus serves a hit only when it can prove it has
every purge, and a parent never hands a fleet node what it may have purged.

edged reads the bus state that purged's reader keeps in the cache
directory's shared page; here the test writes that page itself (BusPage),
so each state is set exactly, and the purged edged runs with purge_bus is
one that only waits (bus_test_binary).  One object with a validator is filled; then
for each state of the bus and each purge_bus_offline policy, the next
request is either a hit the origin never sees, a conditional request to the
origin first (Cache-Status fwd=stale; detail=bus-revalidate), or, with
"serve", a hit that says detail=bus-offline and is logged.  A page left by
a previous run (its heartbeat older than edged) proves nothing: within the
grace after start-up hits are revalidated, after it the offline policy
applies.  As a parent, a request whose Edge-Bus-Applied (from fleet_allow)
is after this node's applied ID is a miss (detail=bus-behind); the field
is ignored from anyone else or when unreadable, and never reaches the
origin.  /metrics and /stats show it all, and nothing of the bus without
one.
"""

import json
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

OBJ = "/echo?ttl=600&hdr=ETag:%22v1%22"
GRACE_MS = 2500
NO_REDIS = "redis://127.0.0.1:1"  # never dialled: the test is the reader


def admin_get(port, path):
    with et.Client(port) as c:
        r = c.request("GET", path)
    et.eq(r.status, 200, "admin %s" % path)
    return r


def metric_lines(port):
    return admin_get(port, "/metrics").body.decode().splitlines()


def sample(lines, name):
    """The value of the sample line starting with <name> (labels included,
    written as edged writes them)."""
    for ln in lines:
        if ln.startswith(name + " "):
            return float(ln.split(" ")[1])
    raise AssertionError("no sample %s" % name)


def stats(port):
    return json.loads(admin_get(port, "/stats").body)


class Node:
    """edged on a bus, its cache dir, its admin port and the page."""

    def __init__(self, o, policy="revalidate", extra=(), page_first=None):
        self.dir = et.mktemp("bus")
        self.cache = self.dir + "/cache"
        self.admin = et.free_port()
        self.page = et.BusPage(self.cache)
        if page_first is not None:
            page_first(self.page)
        self.started_ms = et.now_ms()
        self.e = et.Edge(o.url, "--cache-dir", self.cache,
                         "--purge-bus", NO_REDIS,
                         "--purge-bus-grace", "%dms" % GRACE_MS,
                         "--purge-bus-offline", policy,
                         "--admin-listen", "127.0.0.1:%d" % self.admin,
                         *extra, binary=et.bus_test_binary())

    def past_start_grace(self):
        left = self.started_ms + GRACE_MS + 200 - et.now_ms()
        if left > 0:
            time.sleep(left / 1000)

    def state(self, state, hb_ago=0, dis_ago=None):
        now = et.now_ms()
        self.page.set(magic=et.BUS_PAGE_MAGIC, state=state,
                      heartbeat_ms=now - hb_ago,
                      disconnected_ms=0 if dis_ago is None else now - dis_ago)

    def close(self):
        self.e.stop()
        self.page.close()


def get(n, o, target=OBJ, headers=None):
    """GET <target>: (response, whether the origin was asked, the request
    fields the origin got, lower-cased, or None)."""
    before = o.count("/echo")
    r = n.e.request("GET", target, headers)
    et.eq(r.status, 200, "status of %s" % target)
    asked = o.count("/echo") - before
    et.ok(asked in (0, 1), "at most one origin request (%d)" % asked)
    sent = None
    if asked:
        sent = {k.lower(): v for k, v in r.json()["headers"]}
    return r, asked == 1, sent


def cache_status(r):
    return r.header("Cache-Status") or ""


def expect_hit(n, o, what, offline=False):
    r, asked, _ = get(n, o)
    cs = cache_status(r)
    et.ok(not asked, "%s: served from cache, the origin not asked (%s)"
          % (what, cs))
    et.ok("; hit" in cs, "%s: a hit (%s)" % (what, cs))
    et.eq("detail=bus-offline" in cs, offline,
          "%s: detail=bus-offline said iff served offline (%s)" % (what, cs))


def expect_revalidated(n, o, what):
    r, asked, sent = get(n, o)
    et.ok(asked, "%s: the origin is asked first" % what)
    et.eq(sent.get("if-none-match"), '"v1"',
          "%s: with the stored validator" % what)
    cs = cache_status(r)
    et.ok("fwd=stale; detail=bus-revalidate" in cs,
          "%s: Cache-Status says why (%s)" % (what, cs))


def each_state(n, o, policy):
    """Every state of the bus, once edged's start grace is over."""
    def off(what):
        if policy == "serve":
            expect_hit(n, o, what, offline=True)
        else:
            expect_revalidated(n, o, what)

    n.state("current")
    expect_hit(n, o, "current")
    n.state("catching_up")
    expect_revalidated(n, o, "catching up (whatever the policy)")
    n.state("disconnected", dis_ago=GRACE_MS - 700)
    expect_hit(n, o, "disconnected within the grace")
    n.state("disconnected", dis_ago=GRACE_MS + 700)
    off("disconnected past the grace")
    n.state("disconnected", dis_ago=None)
    off("disconnected, never current since purged started (no grace)")
    n.state("current", hb_ago=GRACE_MS + 700)
    off("current, but the heartbeat past the grace (purged hung or dead)")
    n.state("starting")
    off("purged starting, long after edged did")
    n.state("current")
    n.page.set(magic=0)
    off("a page of the wrong magic")
    n.state("current")
    expect_hit(n, o, "current again")
    # only-if-cached may not be answered from what the bus cannot vouch
    # for, and may not go to the origin either.
    n.state("catching_up")
    before = o.count("/echo")
    r = n.e.request("GET", OBJ, [("Cache-Control", "only-if-cached")])
    et.eq((r.status, o.count("/echo")), (504, before),
          "catching up, only-if-cached: 504, the origin not asked")
    n.state("current")


def run_policy(policy):
    with et.Origin() as o:
        n = Node(o, policy)
        try:
            n.state("current")
            r, asked, _ = get(n, o)
            et.ok(asked, "the fill")
            n.past_start_grace()
            each_state(n, o, policy)
            lines = metric_lines(n.admin)
            offline_hits = 5 if policy == "serve" else 0
            reval = 2 if policy == "serve" else 7  # with only-if-cached
            et.eq(sample(lines, 'edge_bus_hits_total{result="offline"}'),
                  offline_hits, "offline hits counted")
            et.eq(sample(lines,
                         'edge_bus_hits_total{result="revalidated"}'),
                  reval, "bus revalidations counted")
            log = n.e.stderr_text()
            et.eq("serving cache hits without proof" in log,
                  policy == "serve",
                  "serving offline is logged (only then): %s" % log[-500:])
        finally:
            n.close()


def test_states_policy_revalidate():
    run_policy("revalidate")


def test_states_policy_serve():
    run_policy("serve")


@et.timeout(30)
def test_start_grace_and_grace_boundary():
    with et.Origin() as o:
        n = Node(o, "serve")
        try:
            # No page written yet (never believed): revalidate while
            # edged is younger than the grace.
            r, asked, _ = get(n, o)
            et.ok(asked, "the fill")
            expect_revalidated(n, o, "nothing written, just started")
            n.past_start_grace()
            expect_hit(n, o, "nothing written, past the grace",
                       offline=True)
            # The grace counts from disconnected_ms: a node that has just
            # lost the bus still serves, then no longer.
            n.state("current")
            n.state("disconnected", dis_ago=0)
            lost = n.page.get("disconnected_ms")
            expect_hit(n, o, "lost the bus just now")
            while et.now_ms() < lost + GRACE_MS - 300:
                n.page.set(heartbeat_ms=et.now_ms())
                expect_hit(n, o, "lost the bus, within the grace")
                time.sleep(0.2)
            while et.now_ms() <= lost + GRACE_MS + 100:
                time.sleep(0.05)
            n.page.set(heartbeat_ms=et.now_ms())
            expect_hit(n, o, "lost the bus, past the grace", offline=True)
        finally:
            n.close()


@et.timeout(30)
def test_page_of_a_previous_run():
    with et.Origin() as o:
        before = et.now_ms() - 5000

        def old_page(p):
            p.set(magic=et.BUS_PAGE_MAGIC, state="current",
                  heartbeat_ms=before)

        n = Node(o, "serve", page_first=old_page)
        try:
            # The page says current, but its heartbeat is older than this
            # edged: a previous run's, it proves nothing.
            r, asked, _ = get(n, o)
            et.ok(asked, "the fill")
            expect_revalidated(n, o, "previous run's page, just started")
            n.past_start_grace()
            expect_hit(n, o, "previous run's page, past the grace",
                       offline=True)
            n.state("current")
            expect_hit(n, o, "a heartbeat of this run")
        finally:
            n.close()


def behind(n, o, value, what, expect):
    """GET with Edge-Bus-Applied: <value> (a list: one field each)."""
    values = value if isinstance(value, list) else [value]
    r, asked, sent = get(n, o, OBJ,
                         [("Edge-Bus-Applied", v) for v in values])
    cs = cache_status(r)
    if expect:
        et.ok(asked, "%s: a miss, the origin asked" % what)
        et.ok("detail=bus-behind" in cs, "%s: says why (%s)" % (what, cs))
        et.ok("if-none-match" not in sent,
              "%s: not a revalidation of what we have" % what)
        et.ok("edge-bus-applied" not in sent,
              "%s: the field does not reach the origin" % what)
    else:
        et.ok(not asked and "; hit" in cs,
              "%s: served from cache (%s)" % (what, cs))
    return r


@et.timeout(40)
def test_tier_race_parent_side():
    with et.Origin() as o:
        n = Node(o, "revalidate")
        try:
            n.state("current")
            n.page.applied(1000, 5)
            get(n, o)
            behind(n, o, "1000-6", "their ID after ours", True)
            # The miss refilled the cache: a plain request is a hit.
            r, asked, _ = get(n, o)
            et.ok(not asked, "the bus-behind answer was stored")
            behind(n, o, "1000-5", "the same ID", False)
            behind(n, o, "999-99", "an older ID", False)
            behind(n, o, "1001", "ms alone (seq 0) after ours", True)
            behind(n, o, "1000-x", "unparsable: ignored", False)
            behind(n, o, "", "empty: ignored", False)
            behind(n, o, ["1000-6", "1000-7"], "two fields: ignored", False)
            # Our reader catches up: the same request is a hit now.
            n.page.applied(1000, 7)
            behind(n, o, "1000-7", "after we caught up", False)
            # Stripped from what goes upstream whoever sent it: a miss and
            # an unsafe method.
            r, asked, sent = get(n, o, "/echo?ttl=600&new=1",
                                 [("Edge-Bus-Applied", "1-0")])
            et.ok(asked and "edge-bus-applied" not in sent,
                  "a plain miss: stripped")
            r = n.e.request("POST", "/echo", [("Edge-Bus-Applied",
                                               "5000-0")], b"x")
            et.ok("edge-bus-applied" not in
                  {k.lower() for k, _ in r.json()["headers"]},
                  "a POST: stripped")
            lines = metric_lines(n.admin)
            f = 'edge_bus_applied_field_total{result="%s"}'
            et.eq(sample(lines, f % "behind"), 2, "behind counted")
            et.eq(sample(lines, f % "current"), 4, "current counted")
            et.eq(sample(lines, f % "ignored"), 3, "ignored counted")
        finally:
            n.close()


@et.timeout(30)
def test_tier_race_outside_fleet_allow():
    with et.Origin() as o:
        n = Node(o, "revalidate", ("--fleet-allow", "10.0.0.0/8"))
        try:
            n.state("current")
            get(n, o)
            behind(n, o, "99999-0", "a client outside fleet_allow", False)
            r, asked, sent = get(n, o, "/echo?ttl=600&other=1",
                                 [("Edge-Bus-Applied", "99999-0")])
            et.ok("edge-bus-applied" not in sent, "and stripped")
            lines = metric_lines(n.admin)
            et.eq(sample(lines,
                         'edge_bus_applied_field_total{result="ignored"}'),
                  2, "ignored counted")
        finally:
            n.close()


@et.timeout(40)
def test_tier_race_edge_and_parent():
    """An edge that applied a purge its parent has not gets no stored copy
    from it, until the parent catches up."""
    with et.Origin() as o:
        parent = Node(o, "revalidate", ("--node-name", "parent",
                                        "--via", "parent"))
        edge = None
        try:
            edge = Node(o, "revalidate", (
                "--node-name", "edge", "--via", "edge", "--parent-server",
                "http://127.0.0.1:%d" % parent.e.port))
            for n in (parent, edge):
                n.state("current")
            parent.page.applied(1000, 5)
            edge.page.applied(1000, 6)
            r = parent.e.request("GET", "/obj/t?size=100&ttl=600")
            et.eq((r.status, o.count()), (200, 1), "the parent has it")
            r = edge.e.request("GET", "/obj/t?size=100&ttl=600")
            cs = ", ".join(r.header_list("Cache-Status"))
            et.eq((r.status, o.count()), (200, 2),
                  "the parent is behind the edge: the origin answers")
            et.ok("parent; fwd=miss; detail=bus-behind" in cs,
                  "the parent's member says why: %s" % cs)
            parent.page.applied(1000, 6)
            r = parent.e.request("GET", "/obj/u?size=100&ttl=600")
            et.eq(o.count(), 3, "the parent has another")
            r = edge.e.request("GET", "/obj/u?size=100&ttl=600")
            cs = ", ".join(r.header_list("Cache-Status"))
            et.eq((r.status, o.count()), (200, 3),
                  "caught up: the parent's copy serves the edge")
            et.ok("parent; hit" in cs, "a hit at the parent: %s" % cs)
        finally:
            if edge is not None:
                edge.close()
            parent.close()


def bus_stats(n):
    return stats(n.admin)["bus"]


@et.timeout(90)
def test_offline_policy_with_a_real_bus():
    """The same story with the real reader: purged on a redis-server of the
    test's own, the server stopped past the grace and started again."""
    with et.Origin() as o, et.Redis() as r:
        for policy in ("revalidate", "serve"):
            admin = et.free_port()
            n = Node.__new__(Node)
            n.admin = admin
            n.e = et.Edge(o.url, "--cache-dir", et.mktemp("bus"),
                          "--purge-bus", r.url,
                          # Well above the reader's 1 s heartbeat.
                          "--purge-bus-grace", "3s",
                          "--purge-bus-offline", policy,
                          "--admin-listen", "127.0.0.1:%d" % admin)
            try:
                # Current, and a heartbeat to prove it.
                et.wait_for(lambda: bus_stats(n)["verdict"] == "serve", 15,
                            0.1, "the reader current")
                r0, asked, _ = get(n, o)
                et.ok(asked, "the fill")
                expect_hit(n, o, "%s: bus current" % policy)
                r.stop()
                et.wait_for(lambda: (bus_stats(n)["state"], bus_stats(n)[
                    "verdict"]) == ("disconnected", "serve_offline"
                                    if policy == "serve" else "revalidate"),
                    15, 0.1, "the grace over")
                if policy == "serve":
                    expect_hit(n, o, "serve: the bus gone", offline=True)
                else:
                    expect_revalidated(n, o, "revalidate: the bus gone")
                r.start()

                # The reader reconnects, catches up (hits revalidated
                # meanwhile), and is current: hits are served again.
                def hit_again():
                    r1, asked, _ = get(n, o)
                    cs = cache_status(r1)
                    return not asked and "; hit" in cs and "bus-" not in cs
                et.wait_for(hit_again, 15, 0.2,
                            "%s: hits served again, the bus back" % policy)
            finally:
                n.e.stop()


def test_bad_settings():
    with et.Origin() as o:
        for args, want in ((("--purge-bus-offline", "maybe"),
                            "purge_bus_offline"),
                           (("--fleet-allow", "10.0.0.300"), "fleet_allow")):
            try:
                e = et.Edge(o.url, "--cache-dir", et.mktemp("c"), *args,
                            ready_timeout=3)
            except AssertionError as ex:
                et.ok(want in str(ex), "%s refused: %s" % (want, ex))
                continue
            e.stop()
            raise AssertionError("edged started with %r" % (args,))


@et.timeout(30)
def test_metrics_and_stats():
    with et.Origin() as o:
        n = Node(o, "serve")
        try:
            time.sleep(0.5)  # a heartbeat of this run, 250 ms old
            n.state("current", hb_ago=250)
            n.page.applied(1733540000000, 3)
            n.page.set(lag_entries=7, lag_ms=1500, published=4, applied=11,
                       gaps=1, reconnects=2, malformed=3,
                       latency_le0=2, latency_le5=1, latency_le11=1,
                       latency_count=4, latency_sum_us=6051000)
            lines = metric_lines(n.admin)
            want = {
                "edge_bus_state": 3, "edge_bus_verdict": 0,
                "edge_bus_lag_entries": 7, "edge_bus_lag_seconds": 1.5,
                "edge_bus_applied_total": 11, "edge_bus_published_total": 4,
                "edge_bus_gaps_total": 1, "edge_bus_reconnects_total": 2,
                "edge_bus_malformed_total": 3,
                'edge_bus_apply_latency_seconds_bucket{le="0.001"}': 2,
                'edge_bus_apply_latency_seconds_bucket{le="0.05"}': 3,
                'edge_bus_apply_latency_seconds_bucket{le="5"}': 3,
                'edge_bus_apply_latency_seconds_bucket{le="+Inf"}': 4,
                "edge_bus_apply_latency_seconds_count": 4,
                "edge_bus_apply_latency_seconds_sum": 6.051,
            }
            for k, v in want.items():
                et.eq(sample(lines, k), v, k)
            age = sample(lines, "edge_bus_heartbeat_age_seconds")
            et.ok(0.2 <= age < 5, "heartbeat age %s" % age)
            et.ok("# TYPE edge_bus_apply_latency_seconds histogram" in lines,
                  "the latency is a histogram")
            b = stats(n.admin)["bus"]
            et.eq(b["state"], "current", "/stats state")
            et.eq(b["verdict"], "serve", "/stats verdict")
            et.eq(b["applied_id"], "1733540000000-3", "/stats applied_id")
            et.eq(b["lag_ms"], 1500, "/stats lag_ms")
            et.eq(b["apply_latency"]["count"], 4, "/stats latency count")
            et.eq(b["apply_latency"]["counts"][5], 1, "per bucket")
            n.state("disconnected")
            b = stats(n.admin)["bus"]
            et.eq((b["state"], b["verdict"]),
                  ("disconnected", "serve_offline"), "/stats follows")
        finally:
            n.close()
        # Without a bus: nothing of it, but the field's outcomes.
        admin = et.free_port()
        with et.Edge(o.url, "--cache-dir", et.mktemp("c"), "--admin-listen",
                     "127.0.0.1:%d" % admin) as e:
            lines = metric_lines(admin)
            et.ok(not any(ln.startswith("edge_bus_state") or
                          ln.startswith("edge_bus_hits_total") or
                          ln.startswith("edge_bus_apply_latency")
                          for ln in lines), "no bus figures without a bus")
            et.eq(sample(lines,
                         'edge_bus_applied_field_total{result="behind"}'),
                  0, "the field's outcomes always")
            et.ok("bus" not in stats(admin), "no bus in /stats")
            del e


if __name__ == "__main__":
    et.main()
