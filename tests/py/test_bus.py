"""Story: one purge reaches every node through the purge bus (Redis Streams).

Three nodes (edged + purged each, their own cache directories) and one
redis-server of the test's own, one origin.  A purge sent to one node is
published to the stream, applied by every node from there, and with
?wait=TIMEOUT answered once every live node applied it: no node serves a
hit of it after the answer.  A node killed with -9 catches up when it
returns; purged killed between applying and recording neither loses nor
repeats a purge; a node whose missed entries were trimmed soft-purges
everything it stored and says so; Redis stopped, restarted or emptied
while purges go on; malformed entries are skipped and counted; a wrong
password is named without the secret; rediss:// is refused."""
import json
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402

TTL = "ttl=300"
STREAM = "fleet"


def bus_node(o, r, name, *extra, cache=None, stream=STREAM, env=None):
    return pn.Node(o, "--purge-bus", "%s/%s" % (r.url, stream),
                   "--node-name", name, *extra, cache=cache, env=env)


def fleet(n, status=200):
    with et.Client(n.pport) as c:
        r = c.request("GET", "/fleet",
                      [("Authorization", "Bearer " + pn.TOKEN)])
    if status is not None:
        et.eq(r.status, status, "GET /fleet (%s)" % r.body[:300])
    return json.loads(r.body)


def self_state(n):
    """This node's own bus state, also while Redis is out of reach (503)."""
    return fleet(n, None)["self"]


def wait_current(nodes, timeout=10.0):
    for n in nodes:
        et.wait_for(lambda: self_state(n)["state"] == "current", timeout,
                    0.05, "node on %d current" % n.pport)


def fill(n, path):
    et.eq(n.get(path).status, 200, "fill %s" % path)
    pn.wait_stored(n, path)


def purge_wait(n, body, wait="5s", status=200):
    r = n.purge(method="POST", target="/purge?wait=" + wait, body=body)
    et.eq(r.status, status, "purge answer (%s)" % r.body[:600])
    return json.loads(r.body)


def url(path):
    return "http://%s%s" % (pn.HOST, path)


def kill9(n):
    """kill -9 purged and edged of a node, as a crash would."""
    pid = n.purged_pid()
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
    n.edge.kill()


def purged_log(n):
    return n.edge.stderr_text()


def test_purge_reaches_every_node():
    a_path = "/obj/every-a?%s" % TTL
    t_path = "/obj/every-t?%s&hdr=Surrogate-Key:team-x" % TTL
    keep = "/obj/every-keep?%s" % TTL
    with et.Origin() as o, et.Redis() as r:
        nodes = [bus_node(o, r, "n%d" % i) for i in range(3)]
        try:
            wait_current(nodes)
            for n in nodes:
                for p in (a_path, t_path, keep):
                    fill(n, p)
            j = purge_wait(nodes[0], {"urls": [url(a_path)]})
            et.ok(j.get("bus_id"), "the answer carries the stream ID")
            et.eq(j["fleet"]["confirmed"], True, "confirmed by all")
            et.eq(sorted(x["name"] for x in j["fleet"]["nodes"]),
                  ["n0", "n1", "n2"], "every node in the registry")
            # No node serves the purged object once the answer came.
            for n in nodes:
                et.ok(not pn.cached(n.get(a_path)),
                      "URL purge: a miss on the node on %d" % n.pport)
                et.ok(pn.cached(n.get(keep)), "others still hits")
            # A tag purge (PURGE with Surrogate-Key) sent to another node.
            r2 = nodes[1].purge(target="/", headers=[
                ("Surrogate-Key", "team-x")])
            et.eq(r2.status, 200, "tag purge (%s)" % r2.body[:300])
            jt = json.loads(r2.body)
            et.ok(jt.get("bus_id"), "tag purge published")
            # Without ?wait the answer waits for this node only: the
            # others follow within milliseconds.
            et.ok(not pn.cached(nodes[1].get(t_path)),
                  "tag purge: a miss on the publishing node at once")
            for n in (nodes[0], nodes[2]):
                et.wait_for(lambda: fleet(n)["self"]["applied"] ==
                            jt["bus_id"], 5, 0.02, "applied everywhere")
                et.ok(not pn.cached(n.get(t_path)),
                      "tag purge: a miss on the node on %d" % n.pport)
            # Every purge is in the stream once, with its node's name.
            entries = r.command("XRANGE", STREAM, "-", "+")
            et.eq(len(entries), 2, "two entries in the stream")
            et.eq(entries[1][1][3], b"n1", "the publishing node's name")
            # A dry run stays local.
            before = len(r.command("XRANGE", STREAM, "-", "+"))
            dr = nodes[2].purge(method="POST", target="/purge",
                                body={"urls": [url(keep)], "dry_run": True})
            et.eq(dr.status, 200, "dry run")
            et.eq(len(r.command("XRANGE", STREAM, "-", "+")), before,
                  "a dry run is not published")
            # edgectl: fleet through purged, and purge straight to Redis.
            ctl = pn.edgectl_path()
            env = dict(os.environ, EDGECTL_TOKEN_FILE=nodes[0].token_file,
                       EDGECTL_PURGE_API="http://127.0.0.1:%d"
                       % nodes[0].pport)
            out = subprocess.run([ctl, "fleet"], env=env, timeout=20,
                                 capture_output=True, text=True)
            et.eq(out.returncode, 0, "edgectl fleet (%s)" % out.stderr)
            for name in ("n0", "n1", "n2"):
                et.ok(name in out.stdout, "edgectl fleet lists " + name)
            out = subprocess.run(
                [ctl, "purge", "--bus", "%s/%s" % (r.url, STREAM), "--url",
                 url(keep), "--wait=5s"], env=env, timeout=20,
                capture_output=True, text=True)
            et.eq(out.returncode, 0, "edgectl purge --bus --wait (%s%s)"
                  % (out.stdout, out.stderr))
            et.ok("applied by every live node" in out.stdout,
                  "confirmed (%s)" % out.stdout)
            for n in nodes:
                et.ok(not pn.cached(n.get(keep)),
                      "edgectl --bus purge applied on %d" % n.pport)
        finally:
            for n in nodes:
                n.stop()


@et.timeout(120)
def test_killed_node_catches_up():
    paths = ["/obj/cu-%d?%s" % (i, TTL) for i in range(1000)]
    with et.Origin() as o, et.Redis() as r:
        a = bus_node(o, r, "a")
        b = bus_node(o, r, "b")
        try:
            wait_current([a, b])
            for p in paths:
                et.eq(b.get(p).status, 200, "fill")
            pn.wait_disk(b, len(paths), timeout=20)
            cache = b.cache
            kill9(b)
            # 1,000 purges while b is down: 100 of 10 URLs each.
            for i in range(0, len(paths), 10):
                a.purge_ok(method="POST", target="/purge",
                           body={"urls": [url(p) for p in paths[i:i + 10]]})
            o.reset()
            b = bus_node(o, r, "b", cache=cache)
            wait_current([b])
            for p in paths:
                et.ok(not pn.cached(b.get(p)),
                      "%s not served from the old copy" % p)
            et.eq(o.count(), len(paths), "each refetched once")
            st = self_state(b)
            et.eq(st["applied"], self_state(a)["applied"], "b caught up")
            et.eq(st["gaps"], 0, "no gap")
        finally:
            a.stop()
            b.stop()


def test_kill_between_applying_and_recording():
    """purged kills itself at a chosen point of applying (a test hook
    built only with --enable-debug): before the transaction that applies
    and records commits, and after it commits but before anything else.
    Restarted by edged, it applies each purge exactly once: the store's
    purge seq counts one per purge."""
    with et.Origin() as o, et.Redis() as r:
        d = et.mktemp("bus-kill")
        before = os.path.join(d, "kill-before")
        after = os.path.join(d, "kill-after")
        a = bus_node(o, r, "a")
        # The hook is read from purged's environment, inherited from edged.
        n = bus_node(o, r, "k", env={
            "PURGED_TEST_KILL_BEFORE_COMMIT": before,
            "PURGED_TEST_KILL_AFTER_COMMIT": after})
        try:
            wait_current([a, n])
            seq0 = inspect_seq(n)
            p1 = "/obj/k1?%s" % TTL
            fill(n, p1)
            pid = n.purged_pid()
            open(before, "w").close()
            a.purge_ok(method="POST", target="/purge",
                       body={"urls": [url(p1)]})
            try:
                et.wait_for(lambda: not os.path.exists(before), 5, 0.02,
                            "the hook fired")
            except AssertionError:
                raise et.Skip("no test hook: purged built without "
                              "--enable-debug")
            et.wait_for(lambda: n.purged_pid() not in (None, pid), 5, 0.05,
                        "purged restarted")
            n.wait_purged()
            wait_current([n])
            et.eq(inspect_seq(n), seq0 + 1, "killed before commit: "
                  "applied once after the restart, not lost")
            et.ok(not pn.cached(n.get(p1)), "and the purge holds")
            p2 = "/obj/k2?%s" % TTL
            fill(n, p2)
            pid = n.purged_pid()
            open(after, "w").close()
            a.purge_ok(method="POST", target="/purge",
                       body={"urls": [url(p2)]})
            et.wait_for(lambda: not os.path.exists(after), 5, 0.02,
                        "the hook fired")
            et.wait_for(lambda: n.purged_pid() not in (None, pid), 5, 0.05,
                        "purged restarted")
            n.wait_purged()
            wait_current([n])
            et.eq(inspect_seq(n), seq0 + 2, "killed after commit: "
                  "not applied again after the restart")
            et.ok(not pn.cached(n.get(p2)), "and the purge holds")
        finally:
            a.stop()
            n.stop()


def inspect_seq(n):
    with et.Client(n.pport) as c:
        r = c.request("GET", "/inspect?url=" + url("/x"),
                      [("Authorization", "Bearer " + pn.TOKEN)])
    return json.loads(r.body)["purge_seq"]


def test_trimmed_stream_soft_purges_everything():
    p = "/obj/gap?%s" % TTL
    with et.Origin() as o, et.Redis() as r:
        n = bus_node(o, r, "g", "--purge-bus-retention", "1000")
        try:
            wait_current([n])
            fill(n, p)
            cache = n.cache
            kill9(n)
            # 3,000 entries with MAXLEN ~ 1000: the node's next one is
            # trimmed away.  Published straight to Redis, as a pipeline
            # with edgectl --bus would.
            body = json.dumps({"urls": ["http://other.test/x"]})
            for i in range(3000):
                r.command("XADD", STREAM, "MAXLEN", "~", "1000", "*", "v",
                          "1", "node", "pipeline", "purge", body)
            o.reset()
            n = bus_node(o, r, "g", cache=cache)
            wait_current([n])
            st = self_state(n)
            et.eq(st["gaps"], 1, "the gap is counted")
            et.ok("were trimmed" in purged_log(n), "and logged")
            rr = n.get(p)
            et.ok(not pn.cached(rr), "what it stored before is stale (%s)"
                  % rr.header("Cache-Status"))
            et.eq(o.count(), 1, "revalidated with the origin")
            et.ok(pn.cached(n.get(p)), "then fresh again")
        finally:
            n.stop()


@et.timeout(90)
def test_redis_stopped_restarted_and_emptied():
    p1 = "/obj/rs1?%s" % TTL
    p2 = "/obj/rs2?%s" % TTL
    with et.Origin() as o, et.Redis(persist=True) as r:
        a = bus_node(o, r, "a")
        b = bus_node(o, r, "b")
        try:
            wait_current([a, b])
            for n in (a, b):
                fill(n, p1)
                fill(n, p2)
            r.stop()
            # Not published, not applied: the pipeline must retry.
            res = a.purge(method="POST", target="/purge",
                          body={"urls": [url(p1)]})
            et.eq(res.status, 503, "Redis down: 503 (%s)" % res.body[:300])
            et.ok("not published" in json.loads(res.body)["error"],
                  "saying it was not published")
            et.ok(pn.cached(a.get(p1)), "and not applied locally")
            et.wait_for(lambda: self_state(a)["state"] == "disconnected",
                        5, 0.05, "state disconnected")
            r.start()
            wait_current([a, b], timeout=15)
            et.wait_for(lambda: a.purge(method="POST", target="/purge",
                                        body={"urls": [url(p1)]}).status
                        == 200, 10, 0.2, "the retried purge goes through")
            et.wait_for(lambda: not pn.cached(b.get(p1)), 5, 0.05,
                        "applied on b after the restart")
            et.eq(self_state(b)["gaps"], 0, "a restart that kept the "
                  "stream is no gap")
            et.eq(self_state(b)["reconnects"], 1, "one reconnect counted")
            # Emptied: the stream is gone under the nodes.
            r.command("FLUSHALL")
            et.wait_for(lambda: self_state(b)["gaps"] == 1, 10, 0.1,
                        "emptied Redis: a gap")
            et.ok(not pn.cached(b.get(p2)), "everything before is stale")
            purge_wait(a, {"urls": [url(p2)]})
        finally:
            a.stop()
            b.stop()


@et.timeout(90)
def test_wait_reports_down_nodes():
    p = "/obj/wd?%s" % TTL
    with et.Origin() as o, et.Redis() as r:
        nodes = [bus_node(o, r, "w%d" % i) for i in range(3)]
        try:
            wait_current(nodes)
            kill9(nodes[2])
            # Just killed: its heartbeat is recent, so it is waited for
            # and named as not having applied the purge.
            j = purge_wait(nodes[0], {"urls": [url(p)]}, wait="1s",
                           status=202)
            et.eq(j["fleet"]["confirmed"], False, "not confirmed")
            et.eq(j["fleet"]["not_applied"], ["w2"], "w2 named")
            # Once its heartbeat is older than the bound, it is down.
            et.wait_for(lambda: "w2" in fleet(nodes[0])["down"], 10, 0.2,
                        "w2 down")
            ctl = pn.edgectl_path()
            env = dict(os.environ, EDGECTL_TOKEN_FILE=nodes[1].token_file,
                       EDGECTL_PURGE_API="http://127.0.0.1:%d"
                       % nodes[1].pport)
            out = subprocess.run([ctl, "purge", "--url", url(p),
                                  "--wait=3s"], env=env, timeout=20,
                                 capture_output=True, text=True)
            et.eq(out.returncode, 0, "edgectl --wait (%s%s)"
                  % (out.stdout, out.stderr))
            et.ok("node w2 is down" in out.stdout,
                  "edgectl names the down node (%s)" % out.stdout)
        finally:
            nodes[0].stop()
            nodes[1].stop()


def test_malformed_entries_skipped():
    p = "/obj/mal?%s" % TTL
    with et.Origin() as o, et.Redis() as r:
        n = bus_node(o, r, "m")
        try:
            wait_current([n])
            fill(n, p)
            bad = [
                ["v", "9", "node", "x", "purge", "{}"],
                ["v", "1", "node", "x", "purge", "not json"],
                ["v", "1", "node", "x", "purge",
                 json.dumps({"urls": ["ftp://nope"]})],
                ["v", "1", "node", "x", "purge", json.dumps({"urls": 5})],
                ["v", "1", "node", "x", "purge",
                 "[" * 100000 + "]" * 100000],
                ["junk", "only"],
            ]
            for f in bad:
                r.command("XADD", STREAM, "*", *f)
            r.command("XADD", STREAM, "*", "v", "1", "node", "x", "purge",
                      json.dumps({"urls": [url(p)]}))
            et.wait_for(lambda: not pn.cached(n.get(p)), 5, 0.05,
                        "the good entry after the bad ones is applied")
            st = self_state(n)
            et.eq(st["malformed"], len(bad), "each bad entry counted")
            last = r.command("XREVRANGE", STREAM, "+", "-", "COUNT", "1")
            et.eq(st["applied"], last[0][0].decode(), "all recorded")
            et.ok("skipped" in purged_log(n), "and logged")
        finally:
            n.stop()


def test_wrong_password_and_rediss():
    with et.Origin() as o, et.Redis(password="right-pass") as r:
        d = et.mktemp("bus-pw")
        pw = os.path.join(d, "pw")
        with open(pw, "w") as f:
            f.write("wrong-secret-42\n")
        n = bus_node(o, r, "p", "--purge-bus-password-file", pw)
        try:
            et.wait_for(lambda: "authentication failed" in purged_log(n),
                        5, 0.05, "the failure logged")
            log = purged_log(n)
            et.ok("redis://127.0.0.1:%d/%s" % (r.port, STREAM) in log,
                  "naming the bus")
            et.ok("wrong-secret-42" not in log, "never the secret")
            res = n.purge(method="POST", target="/purge",
                          body={"urls": [url("/obj/x")]})
            et.eq(res.status, 503, "no bus, no purge")
        finally:
            n.stop()
        with open(pw, "w") as f:
            f.write("right-pass\n")
        with bus_node(o, r, "p2", "--purge-bus-password-file", pw) as n2:
            wait_current([n2])
            purge_wait(n2, {"urls": [url("/obj/x")]})
    # Refused at start, with the reason.
    for bad, why in (("rediss://127.0.0.1:1", "has no TLS"),
                     ("redis://u:pw@127.0.0.1:1", "purge_bus_password_file"),
                     ("redis://127.0.0.1", "HOST:PORT")):
        out = subprocess.run([et.EDGED, "-t", "--cache-dir", "/nonexistent",
                              "--origin", "http://127.0.0.1:1",
                              "--purge-bus", bad], timeout=20,
                             capture_output=True, text=True)
        et.eq(out.returncode, 2, "%s refused" % bad)
        et.ok(why in out.stderr, "%s: says why (%s)" % (bad, out.stderr))
    out = subprocess.run([et.EDGED, "-t", "--origin", "http://127.0.0.1:1",
                          "--cache-dir", "/nonexistent",
                          "--purge-bus", "redis://127.0.0.1:1",
                          "--purge-bus-password-file", "/nonexistent/pw"],
                         timeout=20, capture_output=True, text=True)
    et.eq(out.returncode, 2, "a missing password file is refused")
    et.ok("purge_bus_password_file" in out.stderr, "naming it (%s)"
          % out.stderr)


if __name__ == "__main__":
    et.main()
