"""Story: an upgrade under load drops nothing.

An edged serves keep-alive clients, clients that open a connection per
request, misses, slow responses and purges.  A second edged (the same
binary, as an upgrade would start the new one) is started with --takeover:
it receives the running one's listening sockets, serves on them, and the
old one drains and exits 0.  No connect is refused and no request fails;
the slow responses that were in flight on the old edged complete byte for
byte; the disk cache is the new edged's too (what the old one stored is a
hit).  A keep-alive connection the old edged closes while idle is reopened
by its client, as HTTP allows (RFC 9112 section 9.3.1): only a request that
got no byte of its response is sent again, and the test counts those.  A
connection accepted just before the drain gets its first request answered.
The new edged can be taken over in turn, and the purge API refuses nothing
either: the purge listener is handed over too, and purges wait in its
queue while the old edged's purged stops and the new one's starts.  SIGUSR2
makes the running edged start the new one itself, as nginx's USR2 does, and
TLS listeners are handed over like the others.  A takeover that fails
leaves the old edged serving and says why."""
import http.client
import os
import ssl
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402

TTL = "ttl=300"
HOT = ["/obj/hot-%d?%s&size=%d" % (i, TTL, 1000 + 997 * i) for i in range(8)]
SLOW_MS = 1500


class Load:
    """Client threads until stop: keep-alive ones (hits, misses, slow
    responses) and one-request-per-connection ones.  Every failure is kept
    with its reason."""

    def __init__(self, port, keepalive=4, fresh=3):
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failures = []
        self.done = 0
        self.retried = 0  # idle keep-alive connections closed by the old edged
        self.seq = 0
        self.threads = [threading.Thread(target=self.keepalive, args=(i,))
                        for i in range(keepalive)]
        self.threads += [threading.Thread(target=self.fresh, args=(i,))
                         for i in range(fresh)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        et.ok(not any(t.is_alive() for t in self.threads), "clients ended")

    def fail(self, what):
        with self.lock:
            self.failures.append(what)

    def next_target(self, i):
        with self.lock:
            self.seq += 1
            n = self.seq
        kind = n % 10
        if kind < 6:
            return HOT[n % len(HOT)], None
        if kind < 9:  # a miss of a new object, stored
            size = 500 + n * 37 % 40000
            return "/obj/miss-%d-%d?%s&size=%d" % (i, n, TTL, size), size
        return "/obj/slowish-%d?delay_ms=150&size=3000" % n, 3000

    @staticmethod
    def check(r, body, target, size):
        if r.status != 200:
            return "%s: status %d" % (target, r.status)
        want = size
        if want is None:
            want = int(target.rpartition("size=")[2])
        if len(body) != want or body != et.pattern(0, want):
            return "%s: body of %d bytes, not the %d expected" % (
                target, len(body), want)
        return None

    def keepalive(self, i):
        conn, used = None, False
        while not self.stop.is_set():
            target, size = self.next_target(i)
            for attempt in (1, 2):
                if conn is None:
                    conn = http.client.HTTPConnection(
                        "127.0.0.1", self.port, timeout=20)
                    used = False
                got_bytes = False
                try:
                    conn.request("GET", target, headers={"Host": pn.HOST})
                    r = conn.getresponse()
                    got_bytes = True
                    body = r.read()
                    err = self.check(r, body, target, size)
                    if err is not None:
                        self.fail("keep-alive " + err)
                    if r.will_close:
                        conn.close()
                        conn = None
                    used = True
                    break
                except (http.client.RemoteDisconnected, ConnectionError,
                        http.client.BadStatusLine) as ex:
                    conn.close()
                    conn = None
                    # A reused connection closed before any response byte:
                    # resend once on a new one.  Anything else fails.
                    if used and not got_bytes and attempt == 1:
                        with self.lock:
                            self.retried += 1
                        continue
                    self.fail("keep-alive %s: %r (attempt %d)" % (
                        target, ex, attempt))
                    break
                except OSError as ex:
                    self.fail("keep-alive %s: %r" % (target, ex))
                    if conn is not None:
                        conn.close()
                    conn = None
                    break
            with self.lock:
                self.done += 1
        if conn is not None:
            conn.close()

    def fresh(self, i):
        while not self.stop.is_set():
            target, size = self.next_target(100 + i)
            conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                              timeout=20)
            try:
                conn.request("GET", target, headers={
                    "Host": pn.HOST, "Connection": "close"})
                r = conn.getresponse()
                err = self.check(r, r.read(), target, size)
                if err is not None:
                    self.fail("new connection " + err)
            except OSError as ex:  # refused, reset, timed out
                self.fail("new connection %s: %r" % (target, ex))
            except http.client.HTTPException as ex:
                self.fail("new connection %s: %r" % (target, ex))
            finally:
                conn.close()
            with self.lock:
                self.done += 1


def slow_get(port, path, size, out, idx):
    """One slow response, head and body late: out[idx] = error or None."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", path, headers={"Host": pn.HOST})
        r = conn.getresponse()
        body = r.read()
        conn.close()
        if r.status != 200 or body != et.pattern(0, size):
            out[idx] = "%s: status %d, %d bytes" % (path, r.status, len(body))
        else:
            out[idx] = None
    except (OSError, http.client.HTTPException) as ex:
        out[idx] = "%s: %r" % (path, ex)


def takeover_args(node):
    return ["--cache-dir", node.cache,
            "--purge-listen", "127.0.0.1:%d" % node.pport,
            "--purge-token-file", node.token_file,
            "--purge-audit-log", node.audit,
            "--admin-listen", "127.0.0.1:%d" % node.aport]


def take_over(node, o, old, threads=2):
    """Start edged --takeover on <old>'s listeners; wait for <old> to exit
    0.  The new et.Edge."""
    new = et.Edge(o.url, *(takeover_args(node) + ["--takeover"]),
                  listen=old.listen, threads=threads)
    rc = old.wait_exit(40)
    et.ok(rc is not None, "the old edged exits after its drain")
    old.stop()  # exit status 0, no sanitizer report
    et.ok("takeover" in old.stderr_text(), "the old edged logs the takeover")
    return new


def admin_health(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/healthz")
        return c.getresponse().status
    finally:
        c.close()


@et.timeout(120)
def test_takeover_under_load():
    with et.Origin() as o:
        node = pn.Node(o, threads=2)
        first = node.edge
        port = first.port
        for p in HOT:
            et.eq(first.request("GET", p).status, 200, "fill " + p)
        for p in HOT:
            pn.wait_stored(node, p)
        fetched = o.count()

        load = Load(port).start()
        purges = {"ok": 0, "failed": []}

        def purge_loop():
            while not load.stop.is_set():
                try:
                    r = node.purge(target="/obj/purged-often?" + TTL)
                    if r.status == 200:
                        purges["ok"] += 1
                    else:
                        purges["failed"].append(r.status)
                except (OSError, et.ResponseError) as ex:
                    purges["failed"].append(repr(ex))
        purgers = [threading.Thread(target=purge_loop) for _ in range(3)]
        for t in purgers:
            t.start()
        time.sleep(1.0)
        # Slow responses in flight on the old edged during the handover.
        slow = [None] * 6
        slow_threads = []
        for k in range(len(slow)):
            path = "/obj/slow-%d?delay_ms=%d&body_delay_ms=300&size=%d" % (
                k, SLOW_MS, 20000 + k)
            t = threading.Thread(target=slow_get,
                                 args=(port, path, 20000 + k, slow, k))
            t.start()
            slow_threads.append(t)
        et.wait_for(lambda: o.count() >= fetched + len(slow), 5, 0.02,
                    "the slow requests reached the origin")
        second = take_over(node, o, first, threads=3)
        node.edge = second
        for t in slow_threads:
            t.join(30)
        et.eq([s for s in slow if s is not None], [],
              "slow responses in flight at the takeover")
        time.sleep(1.0)
        # The new edged can be taken over in turn (it owns the socket path).
        third = take_over(node, o, second, threads=2)
        node.edge = third
        time.sleep(1.0)
        load.finish()
        for t in purgers:
            t.join(30)
        sys.stdout.write("# %d requests, %d resent after an idle keep-alive "
                         "close; %d purges\n" % (load.done, load.retried,
                                                 purges["ok"]))
        et.eq(purges["failed"][:5], [], "failed purges (of %d)" %
              purges["ok"])
        et.ok(purges["ok"] > 10, "purges ran")
        et.eq(load.failures[:5], [], "failed requests (of %d)" % load.done)
        et.ok(load.done > 100, "the load ran (%d requests)" % load.done)

        # The cache the first edged filled is the third's.
        before = o.count()
        for p in HOT:
            r = third.request("GET", p)
            et.eq(r.status, 200, p)
            et.ok(pn.cached(r), "%s is a hit after two takeovers" % p)
        et.eq(o.count(), before, "origin fetches for the stored objects")
        et.eq(admin_health(node.aport), 200, "/healthz of the new edged")

        # purged was handed over: the new edged's child purges.
        node.wait_purged()
        node.purge_ok(target=HOT[0])
        et.ok(not pn.cached(third.request("GET", HOT[0])),
              "a purge through the new purged")
        third.stop()


def gone(pid):
    """Whether <pid> has exited (a zombie no one reaps counts)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@et.timeout(90)
def test_sigusr2_starts_the_new_edged_itself():
    with et.Origin() as o:
        node = pn.Node(o)
        old = node.edge
        for p in HOT[:3]:
            et.eq(old.request("GET", p).status, 200, "fill " + p)
            pn.wait_stored(node, p)
        load = Load(old.port, keepalive=2, fresh=2).start()
        time.sleep(0.5)
        old.send_signal(et.signal.SIGUSR2)
        rc = old.wait_exit(40)
        new_pid = None
        m = et.re.search(r"SIGUSR2: started \S+ \(pid (\d+)\)",
                         old.stderr_text())
        if m:
            new_pid = int(m.group(1))
        try:
            et.ok(rc == 0, "the old edged drained and exited 0 (%s)" % rc)
            et.ok(new_pid is not None and not gone(new_pid),
                  "the new edged runs")
            time.sleep(0.5)
            load.finish()
            et.eq(load.failures[:5], [], "failed requests (of %d)" %
                  load.done)
            for p in HOT[:3]:
                et.ok(pn.cached(old.request("GET", p)), "%s is a hit" % p)
            node.wait_purged()
        finally:
            load.stop.set()
            if new_pid is not None and not gone(new_pid):
                os.kill(new_pid, et.signal.SIGTERM)
                et.wait_for(lambda: gone(new_pid), 15, 0.05,
                            "the new edged stops")
        # Both wrote to the one stderr: two clean stops, no report.
        old.stop()
        et.eq(old.stderr_text().count("info edge: stopped"), 2,
              "both edged stopped")


def test_connection_accepted_before_the_drain_is_answered():
    """A client that connected just before the drain began (its request
    still on the way) gets its answer: the drain closes connections only
    at a response boundary.  Keep-alive ones that have had a response are
    closed when idle; the new one is answered with Connection: close."""
    with et.Origin() as o:
        e = et.Edge(o.url)
        fresh = e.connect()
        used = e.connect()
        et.eq(used.request("GET", HOT[0]).status, 200, "a first response")
        time.sleep(0.2)  # both accepted by a worker
        e.send_signal(et.signal.SIGTERM)
        et.wait_for(lambda: "draining" in e.stderr_text(), 5, 0.02,
                    "the drain began")
        time.sleep(0.2)
        used.assert_closed(5, "the idle keep-alive connection")
        r = fresh.request("GET", HOT[1])
        et.eq(r.status, 200, "the request of the new connection")
        et.ok("close" in r.tokens("Connection"), "Connection: close")
        fresh.assert_closed(5, "the new connection after its response")
        fresh.close()
        used.close()
        et.eq(e.wait_exit(10), 0, "edged drained and exited")
        e.stop()


def test_failed_takeover_keeps_serving():
    with et.Origin() as o:
        node = pn.Node(o)
        old = node.edge
        et.eq(old.request("GET", HOT[0]).status, 200, "before")
        # The new edged receives the listeners, then fails to open its
        # access log: the old one must keep them.
        bad = os.path.join(node.dir, "no-such-dir", "access.log")
        argv = [et.EDGED, "--origin", o.url, "--listen", old.listen[0],
                "--threads", "2", "--access-log", bad, "--takeover"]
        argv += takeover_args(node)
        with open(os.path.join(node.dir, "new.stderr"), "wb") as err:
            p = et._spawn(argv, None, err)
            rc = p.wait(20)
        et.eq(rc, 1, "the failed new edged's exit status")
        with open(os.path.join(node.dir, "new.stderr")) as f:
            err = f.read()
        et.ok("no-such-dir" in err, "the new edged says why: %r" % err[-300:])
        et.ok(not any(m in err for m in et.SANITIZER_MARKS),
              "no sanitizer report from the failed edged")
        et.wait_for(lambda: "still serving" in old.stderr_text(), 5, 0.05,
                    "the old edged says why it keeps serving")
        et.ok("failed before it was ready" in old.stderr_text(),
              "the cause is logged")
        et.ok(old.proc.poll() is None, "the old edged runs")
        for _ in range(20):
            et.eq(old.request("GET", HOT[0]).status, 200, "after")
        et.eq(admin_health(node.aport), 200, "/healthz")
        node.wait_purged()
        # A later takeover still works: the old edged listens again.
        node.edge = take_over(node, o, old)
        et.eq(node.edge.request("GET", HOT[0]).status, 200, "new edged")
        node.edge.stop()


def test_second_edged_on_the_cache_dir_leaves_the_socket():
    """A second edged on the same cache_dir but other ports (a test setup,
    say) starts without a takeover socket and does not disturb the first's.
    """
    with et.Origin() as o:
        node = pn.Node(o)
        with et.Edge(o.url, "--cache-dir", node.cache) as other:
            et.eq(other.request("GET", HOT[1]).status, 200, "second edged")
            et.ok("another edged listens there" in other.stderr_text(),
                  "the second says it has no takeover socket")
        et.ok("takeover" not in node.edge.stderr_text(),
              "the first saw no takeover attempt")
        node.edge = take_over(node, o, node.edge)
        et.eq(node.edge.request("GET", HOT[1]).status, 200, "taken over")
        node.edge.stop()


def tls_get(port, path):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                    context=ctx)
    try:
        c.request("GET", path, headers={"Host": pn.HOST})
        r = c.getresponse()
        return r.status, r.getheader("Cache-Status") or "", r.read()
    finally:
        c.close()


def test_tls_listener_is_handed_over():
    d = et.mktemp("tkotls")
    tls = et.self_signed(d)
    if tls is None:
        raise et.Skip("openssl cannot make a certificate")
    cert, key = tls
    tls_port = et.free_port()
    args = ["--cache-dir", os.path.join(d, "cache"), "--listen-tls",
            "127.0.0.1:%d" % tls_port, "--tls-cert", cert, "--tls-key", key]
    with et.Origin() as o:
        old = et.Edge(o.url, *args)
        status, _, body = tls_get(tls_port, HOT[2])
        et.eq(status, 200, "TLS before")
        et.wait_for(lambda: "hit" in tls_get(tls_port, HOT[2])[1], 5, 0.05,
                    "stored")
        new = et.Edge(o.url, *(args + ["--takeover"]), listen=old.listen)
        et.ok(old.wait_exit(30) is not None, "the old edged exits")
        old.stop()
        status, cs, body2 = tls_get(tls_port, HOT[2])
        et.eq(status, 200, "TLS after")
        et.ok("hit" in cs, "a hit through the new edged: %s" % cs)
        et.eq(body2, body, "the same body")
        new.stop()


def test_takeover_without_running_edged():
    d = et.mktemp("tko")
    r = subprocess.run(
        [et.EDGED, "--origin", "http://127.0.0.1:9", "--listen",
         "127.0.0.1:%d" % et.free_port(), "--cache-dir",
         os.path.join(d, "cache"), "--takeover"],
        capture_output=True, timeout=20)
    et.eq(r.returncode, 1, "exit status")
    et.ok(not any(m.encode() in r.stderr for m in et.SANITIZER_MARKS),
          "no sanitizer report")
    et.ok(b"is an edged with this configuration running?" in r.stderr,
          "says why: %r" % r.stderr[-300:])


if __name__ == "__main__":
    et.main()
