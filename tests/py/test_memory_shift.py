#!/usr/bin/env python3
"""Story: when the sizes of the objects a node caches shift, the memory
tier gives back what the old sizes held.

A 16 MiB memory tier is filled with 1 KiB objects, then with 4 KiB ones,
then with 12 KiB ones: each size lives in size classes of its own
(cache/cache_slab.c), and each fill evicts the one before.  Through all
three, what the tier's classes hold (`memory_slab_bytes` in /stats) stays
within a quarter of memory_size above it, and so does the process's own
resident memory (RssAnon) above what it was after a warm-up with every
size: the budget bounds the process, not only the tier's charge.  The
runs given back (`memory_slab_given_back_bytes`) add up to at least
memory_size, and once the 1 KiB objects are back they are served from
the memory tier again.
"""

import json
import os
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

MEMORY = 16 << 20
# What may be held above memory_size: the classes' partly used and kept
# empty runs.
SLACK = MEMORY // 4
# Beyond the tier, the process's heap moves a little between phases
# (fills, connections, the writer's queue).
HEAP_SLACK_KIB = 8 * 1024
SIZES = (1024, 4096, 12288)
# Objects of each size: enough to fill the tier twice over (1 KiB ones
# are charged about 1.5 KiB each with their head and entries).
PASSES = 2
CLIENTS = 4

# Under AddressSanitizer freed memory sits in a quarantine (256 MiB by
# default) and would count as growth here: keep it small for this story.
ASAN_ENV = {"ASAN_OPTIONS": ":".join(filter(None, [
    os.environ.get("ASAN_OPTIONS", ""),
    "quarantine_size_mb=1", "thread_local_quarantine_size_kb=64"]))}


def stats(port):
    with et.Client(port) as c:
        return json.loads(c.request("GET", "/stats").body)["cache"]


def target(size, i):
    return "/obj/s%d-%d?size=%d&ttl=600" % (size, i, size)


def fetch_all(e, size, count):
    """GET <count> objects of <size> bytes over CLIENTS connections."""
    errors = []

    def run(k):
        try:
            with e.connect(timeout=30) as c:
                for i in range(k, count, CLIENTS):
                    r = c.request("GET", target(size, i))
                    if r.status != 200 or len(r.body) != size:
                        errors.append("%s: %d, %d bytes" % (
                            target(size, i), r.status, len(r.body)))
                        return
        except Exception as ex:  # reported below, from the main thread
            errors.append("%s: %r" % (size, ex))

    threads = [threading.Thread(target=run, args=(k,))
               for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    et.eq(errors, [], "every %d-byte object fetched" % size)


@et.timeout(240)
def test_sizes_shift():
    admin = et.free_port()
    cache = et.mktemp("shift")
    with et.Origin() as o, et.Edge(
            o.url, "--cache-dir", cache + "/cache", "--memory-size", "16M",
            "--admin-listen", "127.0.0.1:%d" % admin, env=ASAN_ENV) as e:
        # Warm-up: every size's path through the process once, so the
        # heap's own growth is not counted against the tier.
        for size in SIZES:
            fetch_all(e, size, 64)
        base = et.proc_kib(e.pid, "RssAnon")
        held = []
        for size in SIZES:
            st = stats(admin)
            n = PASSES * MEMORY // (size + 512)
            fetch_all(e, size, n)
            st = stats(admin)
            held.append((size, st["memory_bytes"], st["memory_slab_bytes"],
                         et.proc_kib(e.pid, "RssAnon") - base))
        report = "; ".join(
            "after %d B: charged %d, slab %d, RssAnon +%d KiB" % h
            for h in held)
        print("# " + report)
        for size, charged, slab, grew in held:
            et.ok(charged <= MEMORY, "tier charged within memory_size: "
                  + report)
            et.ok(slab <= MEMORY + SLACK,
                  "slab within memory_size + 1/4: " + report)
            et.ok(grew <= (MEMORY + SLACK) // 1024 + HEAP_SLACK_KIB,
                  "RssAnon within memory_size + 1/4: " + report)
        # What the 1 and 4 KiB classes held went back to the system.
        given = stats(admin)["memory_slab_given_back_bytes"]
        et.ok(given >= MEMORY, "given back: %d bytes" % given)
        # The classes given back are taken again.
        hits0 = stats(admin)["hits_memory"]
        fetch_all(e, 1024, 256)
        fetch_all(e, 1024, 256)
        et.ok(stats(admin)["hits_memory"] >= hits0 + 256,
              "1 KiB objects hit the memory tier again")


if __name__ == "__main__":
    et.main()
