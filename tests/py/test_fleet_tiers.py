"""Story: a fleet of three edges and one shield on one purge bus.

Every node is edged with purged on the same Redis stream, the edges
filling their misses from the shield (parent_server).  A purge sent to any
node, with ?wait, is a miss on every node once answered, the shield
included, so no edge can refill the old object from it; a tag purge
likewise, as the shield hands an object's tags (Surrogate-Key) to the
edges, which are caches of the fleet, though never to end users.  The tier race: an edge that has applied a purge asks a shield
whose purged is held back (stopped) for the object; the edge's request
says which bus entry it has applied (Edge-Bus-Applied), the shield sees
that it is behind and goes to the origin rather than hand back the old
copy it still holds.
"""
import json
import os
import signal
import sys

sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402

STREAM = "tiers"


def tier_node(o, r, name, *extra):
    n = pn.Node(o, "--purge-bus", "%s/%s" % (r.url, STREAM),
                "--node-name", name, "--via", name, *extra)
    n.name = name
    return n


def parent(p):
    return ["--parent-server", "http://127.0.0.1:%d" % p.edge.port]


def state(n):
    with et.Client(n.pport) as c:
        r = c.request("GET", "/fleet",
                      [("Authorization", "Bearer " + pn.TOKEN)])
    return json.loads(r.body)["self"]["state"]


def wait_current(nodes):
    for n in nodes:
        et.wait_for(lambda: state(n) == "current", 10, 0.05,
                    "node on %d current" % n.pport)


def members(r):
    return [m.strip().partition(";")[0].strip()
            for line in r.header_list("Cache-Status")
            for m in line.split(",") if m.strip()]


def hit_here(r):
    """Whether this node (the last Cache-Status member) answered from its
    cache; the members before it are the shield's."""
    last = [m.strip() for line in r.header_list("Cache-Status")
            for m in line.split(",") if m.strip()][-1]
    return last.split(";")[1].strip() == "hit"


def url(path):
    return "http://%s%s" % (pn.HOST, path)


def test_purge_is_a_miss_on_every_tier():
    obj = "/obj/tiers-a?ttl=300"
    tagged = "/obj/tiers-t?ttl=300&hdr=Surrogate-Key:team-y"
    with et.Origin() as o, et.Redis() as r:
        shield = tier_node(o, r, "shield")
        edges = []
        try:
            edges = [tier_node(o, r, "edge%d" % i, *parent(shield))
                     for i in range(3)]
            wait_current([shield] + edges)
            for e in edges:
                for p in (obj, tagged):
                    et.eq(e.get(p).status, 200, "fill " + p)
                    pn.wait_stored(e, p)
            et.eq(o.count(), 2, "the shield fetched each object once")
            # The shield hands its tags to the edges (caches of the
            # fleet: CDN-Loop, from fleet_allow), never to end users.
            et.ok(not shield.get(tagged).has("surrogate-key"),
                  "an end user of the shield gets no Surrogate-Key")
            et.ok(not edges[0].get(tagged).has("surrogate-key"),
                  "nor one of an edge")
            j = edges[2].purge_ok(method="POST", target="/purge?wait=5s",
                                  body={"urls": [url(obj)]})
            et.eq(j["fleet"]["confirmed"], True, "confirmed by all four")
            for n in [shield] + edges:
                et.ok(not hit_here(n.get(obj)), "a miss on " + n.name)
            et.eq(o.count(), 3, "and one more origin fetch in all: the "
                  "edges refilled from the shield's fresh copy")
            j = edges[0].purge_ok(method="POST", target="/purge?wait=5s",
                                  headers=[], body={"tags": ["team-y"]})
            et.eq(j["fleet"]["confirmed"], True, "tag purge confirmed")
            for e in edges:
                r2 = e.get(tagged)
                et.ok(not hit_here(r2), "tag purge: a miss at the edge")
                et.eq(members(r2)[-2:], ["shield", e.name],
                      "through the shield")
            et.eq(o.count(), 4, "the shield refetched the tagged object")
        finally:
            for n in edges + [shield]:
                n.stop()


def test_tier_race_shield_behind():
    obj = "/obj/race?ttl=300"
    with et.Origin() as o, et.Redis() as r:
        shield = tier_node(o, r, "shield")
        edge = None
        pid = None
        try:
            edge = tier_node(o, r, "edge", *parent(shield))
            wait_current([shield, edge])
            et.eq(edge.get(obj).status, 200, "fill through the shield")
            pn.wait_stored(edge, obj)
            pn.wait_stored(shield, obj)
            et.eq(o.count(), 1, "one origin fetch")
            # Hold the shield's bus reader back.
            pid = shield.purged_pid()
            os.kill(pid, signal.SIGSTOP)
            j = edge.purge_ok(method="POST", target="/purge",
                              body={"urls": [url(obj)]})
            et.ok(j.get("bus_id"), "published and applied at the edge")
            r2 = edge.get(obj)
            et.eq(r2.status, 200, "the edge's miss")
            et.eq(o.count(), 2, "the shield, behind, went to the origin "
                  "instead of handing back its old copy")
            cs = r2.header_list("Cache-Status")
            et.ok(any("detail=bus-behind" in x for x in cs),
                  "the shield says why: %r" % cs)
            os.kill(pid, signal.SIGCONT)
            pid = None
            wait_current([shield])
            et.ok(not hit_here(shield.get(obj)),
                  "caught up, the shield misses on the purged URL too")
        finally:
            if pid is not None:
                os.kill(pid, signal.SIGCONT)
            for n in ([edge] if edge else []) + [shield]:
                n.stop()


if __name__ == "__main__":
    et.main()
