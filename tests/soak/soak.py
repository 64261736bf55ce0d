#!/usr/bin/env python3
"""soak: edged under a long mixed load, checked for what only time shows.

    make soak                                   # 10 minutes
    SOAK_SECONDS=60 make soak
    python3 tests/soak/soak.py --edged ./edged --duration 600 [--clients 16]

Build with ./configure --enable-sanitizers first for the ASan/UBSan soak
(make soak uses the edged of the current build, whatever it is).

One edged (with purged) on a fresh cache directory with a small memory
tier and a small disk budget, so that both evict all the time, before the
test origin (tests/origin/origin.py).  <clients> threads send, until the
time is up, a mix of:

    hits      GET of 200 hot objects (bodies checked byte for byte)
    ranges    single and multipart ranges of the hot objects
    variants  compressible text asked for with gzip, br or identity
    misses    GET of new keys, 100 B to 256 KiB
    purges    PURGE of a hot URL, or of a tag every hot object carries
    aborts    a 2 MiB object read for 16 KiB, then the connection dropped
    resets    the origin resets the connection mid-body
    slow      an origin that answers after 300 ms and drips its body
    slow-read a client that reads a 512 KiB body at 256 KiB/s

What it checks, and prints with its figures:
  - edged never dies, and answers only the statuses each action allows;
    every hot body and range matches the origin's pattern;
  - RSS flat after warm-up: the highest anonymous RSS (RssAnon: the heap,
    not the LMDB map's file pages) of the last half of the run is at most
    16 MiB or 10% above what it was when warm-up ended;
  - no descriptor leaked: at an idle moment after warm-up and again at
    the end, edged and purged hold the same number of descriptors (but one),
    not counting edged's connections to the origin, which libcurl keeps
    for reuse in varying numbers;
  - on SIGTERM, exit status 0 and no sanitizer report (edgetest's stop()).
The last line is "soak: PASS ..." or "soak: FAIL ..."; the exit status
is 0 or 1.
"""
import argparse
import os
import random
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "py"))
sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402

HOT = 200
HOT_SIZE = 24 * 1024
TAG = "soak-hot"
SAMPLE_S = 2.0
RSS_SLACK_KIB = 16 * 1024
RSS_SLACK_RATIO = 0.10
FD_SLACK = 1  # a client connection edged is still closing
SLOW_READ_RATE = 256 * 1024  # bytes/s

# action: (weight, statuses it may answer)
ACTIONS = {
    "hit": (40, {200}),
    "range": (10, {206}),
    "variant": (10, {200}),
    "miss": (15, {200}),
    "purge": (3, {200}),
    "abort": (5, None),
    "reset": (5, {200, 502, 504}),
    "slow": (6, {200}),
    "slowread": (2, {200}),
}


def hot_target(k):
    return "/obj/hot-%d?size=%d&ttl=3600&hdr=Surrogate-Key:%s" % (
        k, HOT_SIZE, TAG)


class Load:
    def __init__(self, node, clients, seed):
        self.node = node
        self.port = node.edge.port
        self.clients = clients
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = {a: 0 for a in ACTIONS}
        self.errors = []
        self.error_targets = []  # whose access-log lines the report shows
        self.paused = threading.Event()
        self.idle = threading.Semaphore(0)
        self.stop = threading.Event()
        self.serial = 0
        names = list(ACTIONS)
        self.names = names
        self.weights = [ACTIONS[a][0] for a in names]

    def error(self, what, target=None):
        with self.lock:
            if len(self.errors) < 20:
                self.errors.append(what)
                if target is not None:
                    self.error_targets.append(target)

    def next_serial(self):
        with self.lock:
            self.serial += 1
            return self.serial

    def expect(self, action, r, target):
        want = ACTIONS[action][1]
        if want is not None and r.status not in want:
            self.error("%s %s: status %d" % (action, target, r.status))
            return False
        return True

    def one(self, rng, action):
        h = [("Host", pn.HOST)]
        if action == "hit":
            t = hot_target(rng.randrange(HOT))
            with et.Client(self.port) as c:
                r = c.request("GET", t, h)
            if self.expect(action, r, t):
                et.check_pattern(r.body, HOT_SIZE)
        elif action == "range":
            t = hot_target(rng.randrange(HOT))
            a = rng.randrange(HOT_SIZE - 10)
            b = rng.randrange(a, HOT_SIZE)
            with et.Client(self.port) as c:
                r = c.request("GET", t, h + [("Range", "bytes=%d-%d" % (a, b))])
            if self.expect(action, r, t):
                et.check_pattern(r.body, None, a)
                et.eq(len(r.body), b - a + 1, "range length")
        elif action == "variant":
            t = "/text/v-%d?size=20000&ttl=3600" % rng.randrange(50)
            enc = rng.choice(["gzip", "br", "identity"])
            with et.Client(self.port) as c:
                r = c.request("GET", t, h + [("Accept-Encoding", enc)])
            self.expect(action, r, t)
        elif action == "miss":
            t = "/obj/miss-%d?size=%d&ttl=600" % (
                self.next_serial(), rng.randrange(100, 256 * 1024))
            with et.Client(self.port) as c:
                r = c.request("GET", t, h)
            self.expect(action, r, t)
        elif action == "purge":
            if rng.random() < 0.2:
                r = self.node.purge(headers=[("Surrogate-Key", TAG)])
            else:
                r = self.node.purge(target=hot_target(rng.randrange(HOT)))
            self.expect(action, r, "PURGE")
        elif action == "abort":
            t = "/obj/big-%d?size=%d&ttl=600" % (rng.randrange(20),
                                                 2 * 1024 * 1024)
            s = socket.create_connection(("127.0.0.1", self.port), 10)
            try:
                s.sendall(et.build_request("GET", t, h))
                got = 0
                while got < 16384:
                    d = s.recv(16384)
                    if not d:
                        break
                    got += len(d)
            finally:
                s.close()
        elif action == "reset":
            t = "/obj/reset-%d?size=100000&reset_after=5000" % (
                self.next_serial())
            with et.Client(self.port) as c:
                try:
                    r = c.request("GET", t, h)
                    self.expect(action, r, t)
                except (et.ResponseError, OSError):
                    pass  # the head went out before the origin reset
        elif action == "slow":
            t = "/obj/slow-%d?size=4096&delay_ms=300&drip=1024&tick_ms=50" % (
                rng.randrange(1000))
            with et.Client(self.port) as c:
                r = c.request("GET", t, h)
            self.expect(action, r, t)
        elif action == "slowread":
            size = 512 * 1024
            t = "/obj/slowread-%d?size=%d&ttl=600" % (rng.randrange(20), size)
            with et.Client(self.port, timeout=30) as c:
                c.send(et.build_request("GET", t, h))
                r = c.read_response(read_body=False)
                if not self.expect(action, r, t):
                    return
                body = bytearray(c.reader.buf)
                c.reader.buf.clear()
                t0 = time.monotonic()
                while len(body) < size:
                    d = c.sock.recv(8192)
                    if not d:
                        self.error("%s: EOF after %d bytes of %s"
                                   % (action, len(body), t), t)
                        return
                    body += d
                    ahead = len(body) / SLOW_READ_RATE - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
                et.check_pattern(bytes(body), size)

    def worker(self, wid):
        rng = random.Random(self.rng.random() + wid)
        while not self.stop.is_set():
            if self.paused.is_set():
                self.idle.release()
                while self.paused.is_set() and not self.stop.is_set():
                    time.sleep(0.05)
                continue
            action = rng.choices(self.names, self.weights)[0]
            try:
                self.one(rng, action)
            except (AssertionError, OSError, et.ResponseError) as e:
                self.error("%s: %s" % (action, str(e)[:200]))
            with self.lock:
                self.counts[action] += 1

    def start(self):
        self.threads = [threading.Thread(target=self.worker, args=(i,),
                                         daemon=True)
                        for i in range(self.clients)]
        for t in self.threads:
            t.start()

    def pause(self):
        """Every client idle (between two requests)."""
        self.paused.set()
        for _ in range(self.clients):
            if not self.idle.acquire(timeout=60):
                raise AssertionError("clients did not go idle in 60 s")

    def resume(self):
        self.paused.clear()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)


def rss_anon_kib(pid):
    """Anonymous resident memory: the heap and stacks, not the LMDB map
    (file pages, which the kernel may drop) that VmRSS also counts."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon for pid %d" % pid)


def tcp_peers():
    """Socket inode -> remote port of every TCP socket (IPv4 and IPv6)."""
    peers = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    col = line.split()
                    peers[col[9]] = int(col[2].rsplit(":", 1)[1], 16)
        except OSError:
            pass
    return peers


def fds(pid, origin_port):
    """(descriptors of <pid> but its connections to the origin, those).
    libcurl keeps a varying number of origin connections for reuse: they
    are not leaks, and counting them made the check flaky."""
    peers = tcp_peers()
    mine = origin = 0
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return 0, 0
    for n in names:
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, n))
        except OSError:
            continue
        if link.startswith("socket:[") and \
                peers.get(link[8:-1]) == origin_port:
            origin += 1
        else:
            mine += 1
    return mine, origin


def idle_fds(node, origin_port):
    """Descriptors of edged and purged once in-flight work has settled,
    and apart from them edged's connections to the origin."""
    time.sleep(3)
    e = fds(node.edge.pid, origin_port)
    p = fds(node.purged_pid() or 0, origin_port)
    return e[0] + p[0], e[1] + p[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edged", default=None)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.edged:
        et.EDGED = os.path.abspath(a.edged)
    # ASan's quarantine and the memory tier fill during warm-up; a short
    # run needs half its time for that before RSS means anything.
    warmup = min(60.0, a.duration * 0.5)
    fails = []
    with et.Origin(lifetime_s=int(a.duration) + 300) as o, \
            pn.Node(o, "--memory-size", "8M", "--cache-size", "64M",
                    "--max-object-size", "4M", "--log-level", "warn",
                    threads=2) as node:
        load = Load(node, a.clients, a.seed)
        t0 = time.monotonic()
        load.start()
        samples = []
        fd_warm = None
        rss_warm = None
        while time.monotonic() - t0 < a.duration:
            time.sleep(SAMPLE_S)
            if node.edge.proc.poll() is not None:
                fails.append("edged exited with status %d" %
                             node.edge.proc.returncode)
                break
            el = time.monotonic() - t0
            samples.append((el, rss_anon_kib(node.edge.pid)))
            if rss_warm is None and el >= warmup:
                load.pause()
                fd_warm, oc_warm = idle_fds(node, o.port)
                rss_warm = rss_anon_kib(node.edge.pid)
                load.resume()
        load.pause()
        alive = node.edge.proc.poll() is None
        fd_end, oc_end = idle_fds(node, o.port) if alive else (None, None)
        load.finish()
        elapsed = time.monotonic() - t0
        total = sum(load.counts.values())
        print("soak: %.0f s, %d clients, %d requests (%.0f/s): %s" % (
            elapsed, a.clients, total, total / elapsed,
            ", ".join("%s %d" % kv for kv in load.counts.items())))
        for e in load.errors:
            fails.append(e)
        # How edged itself saw each request that went wrong (the log is
        # flushed every ~200 ms; the load has been paused longer).
        log = node.edge.access_log_lines()
        for t in load.error_targets:
            for line in [l for l in log if t in l][-3:]:
                print("soak: access log: " + line)
        if samples:
            step = max(1, len(samples) // 10)
            print("soak: anonymous RSS over time (s: KiB): " + ", ".join(
                "%.0f: %d" % sm for sm in samples[::step]))
        if alive and rss_warm is not None:
            late = [r for el, r in samples if el >= elapsed / 2]
            peak = max(late) if late else rss_warm
            bound = rss_warm + max(RSS_SLACK_KIB, rss_warm * RSS_SLACK_RATIO)
            print("soak: anonymous RSS %d KiB after warm-up (%.0f s), peak of the "
                  "last half %d KiB, bound %d KiB" % (
                      rss_warm, warmup, peak, bound))
            if peak > bound:
                fails.append("RSS grew: %d KiB -> %d KiB" % (rss_warm, peak))
            print("soak: descriptors of edged and purged when idle: %d "
                  "after warm-up, %d at the end (and origin connections "
                  "kept for reuse: %d, %d)" % (fd_warm, fd_end, oc_warm,
                                               oc_end))
            if fd_end > fd_warm + FD_SLACK:
                fails.append("descriptors grew: %d -> %d" % (fd_warm, fd_end))
        elif alive:
            fails.append("the run ended before warm-up did (%.0f s)" % warmup)
        if alive:
            try:
                node.edge.stop(timeout=60)
            except AssertionError as e:
                fails.append(str(e)[:2000])
    if fails:
        for f in fails:
            print("soak: " + f)
        print("soak: FAIL (%d problems)" % len(fails))
        return 1
    print("soak: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
