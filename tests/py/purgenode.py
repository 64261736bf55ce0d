"""purgenode: helpers shared by the test_purge*.py stories.

A node is edged started with --purge-listen (so it runs purged as a child)
on a fresh cache directory, with a token file; purge() talks to purged's
API the way a publishing pipeline would."""
import json
import os
import sys
import time

sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402

TOKEN = "s3cret-token"
HOST = "edge.test"  # the Host edgetest's requests carry


def token_file(d, lines=None):
    p = os.path.join(d, "purge.token")
    with open(p, "w") as f:
        f.write("\n".join(lines or ["ci " + TOKEN]) + "\n")
    os.chmod(p, 0o600)
    return p


class Node:
    """edged + purged on one cache dir; a context manager like et.Edge."""

    def __init__(self, origin, *extra, cache=None, allow=None, threads=2,
                 env=None):
        self.dir = et.mktemp("purge")
        self.cache = cache or os.path.join(self.dir, "cache")
        self.token_file = token_file(self.dir)
        self.audit = os.path.join(self.dir, "audit.log")
        self.pport = et.free_port()
        self.aport = et.free_port()
        args = ["--cache-dir", self.cache,
                "--purge-listen", "127.0.0.1:%d" % self.pport,
                "--purge-token-file", self.token_file,
                "--purge-audit-log", self.audit,
                "--admin-listen", "127.0.0.1:%d" % self.aport]
        for a in allow or []:
            args += ["--purge-allow", a]
        self.edge = et.Edge(origin.url, *(args + list(extra)),
                            threads=threads, env=env)
        self.wait_purged()

    def wait_purged(self, timeout=10.0):
        def up():
            try:
                with et.Client(self.pport, timeout=2) as c:
                    return c.request("GET", "/healthz").status in (200, 403)
            except OSError:
                return False
        et.wait_for(up, timeout, 0.05, "purged listening on %d" % self.pport)

    def purged_pid(self):
        """The pid of edged's purged child (from /proc)."""
        kids = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % p) as f:
                    st = f.read()
                with open("/proc/%s/cmdline" % p, "rb") as f:
                    cmd = f.read().split(b"\0")
            except OSError:
                continue
            ppid = int(st.rpartition(")")[2].split()[1])
            if ppid == self.edge.pid and cmd and \
                    cmd[0].endswith(b"/purged"):
                kids.append(int(p))
        return kids[0] if kids else None

    def get(self, path, headers=None):
        return self.edge.request("GET", path, headers)

    def purge(self, method="PURGE", target="/", headers=None, body=None,
              token=TOKEN):
        h = [("Host", HOST)]
        if token is not None:
            h.append(("Authorization", "Bearer " + token))
        h += list(headers or [])
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.append(("Content-Type", "application/json"))
        with et.Client(self.pport) as c:
            return c.request(method, target, h, body)

    def purge_ok(self, **kw):
        r = self.purge(**kw)
        et.eq(r.status, 200, "purge status (%s)" % r.body[:200])
        return json.loads(r.body)

    def stats(self):
        with et.Client(self.aport) as c:
            return json.loads(c.request("GET", "/stats").body)

    def audit_lines(self):
        try:
            with open(self.audit) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def stop(self):
        self.edge.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.edge.__exit__(*exc)


def cached(r):
    """Whether a response came from the cache (Cache-Status: ...; hit)."""
    return "; hit" in (r.header("Cache-Status") or "")


def edgectl_path():
    return os.path.join(os.path.dirname(et.EDGED), "edgectl")


def wait_stored(node, path, timeout=5.0):
    """Until <path> is answered from the cache."""
    et.wait_for(lambda: cached(node.get(path)), timeout, 0.05,
                "%s cached" % path)


def wait_disk(node, n, timeout=5.0):
    """Until the disk store holds at least <n> objects (the writer thread
    commits a fill shortly after it ends; URL purges count what is on
    disk)."""
    et.wait_for(lambda: node.stats()["cache"]["objects"] >= n, timeout,
                0.02, "%d objects on disk" % n)


def sleep_ms(ms):
    time.sleep(ms / 1000.0)
