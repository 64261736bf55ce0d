"""Story: a tag purge over 100,000 objects is one generation record, and
every one of them is gone for the next request.

The store is filled directly (tests/bench/bench_purge fill: what edged
would store for GET /obj/I with Host edge.test, tagged "all" and
"mod10-<I % 10>"), then a node starts on it.  A purge of mod10-3 takes
exactly the tenth of a sample that carries it; a purge of "all" takes the
rest.  The time purged reports is printed (make bench measures it for
1,000,000 objects); correctness is what is checked."""
import os
import random
import subprocess
import sys

sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402

N = 100000
SAMPLE = 300


def bench_purge():
    p = os.environ.get("BENCH_PURGE") or os.path.join(
        os.path.dirname(et.EDGED), "tests", "bench", "bench_purge")
    if not os.access(p, os.X_OK):
        raise et.Skip("bench_purge not built (%s)" % p)
    return p


@et.timeout(120)
def test_tag_purge_100k():
    tool = bench_purge()
    cache = os.path.join(et.mktemp("scale"), "cache")
    r = subprocess.run([tool, "fill", cache, str(N), pn.HOST],
                       capture_output=True, timeout=90)
    et.eq(r.returncode, 0, "fill: %s" % r.stderr)
    et.ok(("stored %d objects" % N).encode() in r.stdout,
          "stored: %s" % r.stdout)
    rnd = random.Random(6)
    sample = rnd.sample(range(N), SAMPLE)
    with et.Origin() as o, pn.Node(o, cache=cache) as n:
        for i in sample[:20]:
            et.ok(pn.cached(n.get("/obj/%d" % i)), "object %d is a hit "
                  "before the purge" % i)
        j = n.purge_ok(headers=[("Surrogate-Key", "mod10-3")])
        et.eq(j["matched"], N // 10, "objects tagged mod10-3")
        sys.stdout.write("# tag purge over %d objects: %.3f ms\n"
                         % (N // 10, j["ms"]))
        for i in sample:
            r = n.get("/obj/%d" % i)
            et.eq(r.status, 200, "status")
            et.eq(pn.cached(r), i % 10 != 3,
                  "object %d after purging mod10-3 (%s)"
                  % (i, r.header("Cache-Status")))
        j = n.purge_ok(headers=[("Surrogate-Key", "all")])
        sys.stdout.write("# tag purge over %d objects: %.3f ms\n"
                         % (N, j["ms"]))
        for i in sample:
            r = n.get("/obj/%d" % i)
            et.ok(not pn.cached(r), "object %d after purging all" % i)
        # (how many lookups found a purged object depends on how far
        # purged's background reclaim got: only the seq is certain)
        et.eq(n.stats()["cache"]["purges"]["seq"], 2, "the node's seq")


if __name__ == "__main__":
    et.main()
