"""A damaged cache never takes the node down.

Each story fills a cache directory through the real edged, stops it
cleanly, damages a copy of what LMDB wrote the way a bad disk or a crash
would (a scribbled leaf page, a truncated data.mdb, a read-only mount),
then starts edged on it again: the node serves from the origin, moves a
damaged cache aside (kept for inspection, named in the log) and starts it
empty, or runs proxy-only and says so in /healthz and /stats.  A kill -9
is not damage: that cache is kept.  purged refuses a damaged cache rather
than crash on it, and leaves the move to edged."""
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402

N = 60          # objects stored before the damage
SIZE = 3000     # bytes each (one chunk, a small record)


# ------------------------------------------------------------ LMDB's file

P_BRANCH = 0x01
F_SUBDATA = 0x02
P_INVALID = (1 << 64) - 1


class LmdbFile:
    """Just enough of LMDB's on-disk format (64-bit, lmdb.h / mdb.c) to
    find the leaf pages of one named database: a page starts with pgno(8)
    pad(2) flags(2) lower(2) upper(2) and the u16 node offsets; a node is
    lo(2) hi(2) flags(2) ksize(2) key data, lo|hi<<16 the data size of a
    leaf node, lo|hi<<16|flags<<32 the child page of a branch node."""

    def __init__(self, path):
        # The pages up to the last only: a store written through its map
        # is as long as the map, most of it holes.
        with open(path, "rb") as f:
            self.data = f.read(2 * 4096)
            metas = [self._meta(i) for i in (0, 1)]
            self.meta = max(metas, key=lambda m: m["txnid"])
            self.psize = self.meta["psize"]
            f.seek(0)
            self.data = f.read(self.used_bytes())

    def used_bytes(self):
        """data.mdb's bytes up to its last page, as its meta page says."""
        return (self.meta["last_pgno"] + 1) * self.psize

    def _meta(self, i):
        off = i * 4096  # meta pages are at the start of the first pages
        magic, = struct.unpack_from("<I", self.data, off + 16)
        et.eq(magic, 0xBEEFC0DE, "LMDB meta page magic")
        free_db = struct.unpack_from("<IHHQQQQQ", self.data, off + 40)
        main_db = struct.unpack_from("<IHHQQQQQ", self.data, off + 88)
        last, txnid = struct.unpack_from("<QQ", self.data, off + 136)
        return {"psize": free_db[0], "main_root": main_db[7],
                "last_pgno": last, "txnid": txnid}

    def page_flags(self, pgno):
        return struct.unpack_from("<H", self.data, pgno * self.psize + 10)[0]

    def node_offsets(self, pgno):
        base = pgno * self.psize
        lower, = struct.unpack_from("<H", self.data, base + 12)
        return [base + struct.unpack_from("<H", self.data, base + 16 + 2 * i)[0]
                for i in range((lower - 16) // 2)]

    def leaves(self, root):
        if root == P_INVALID:
            return []
        if not self.page_flags(root) & P_BRANCH:
            return [root]
        out = []
        for off in self.node_offsets(root):
            lo, hi, fl = struct.unpack_from("<HHH", self.data, off)
            out += self.leaves(lo | (hi << 16) | (fl << 32))
        return out

    def db_root(self, name):
        for pg in self.leaves(self.meta["main_root"]):
            for off in self.node_offsets(pg):
                lo, hi, fl, ks = struct.unpack_from("<HHHH", self.data, off)
                if fl & F_SUBDATA and self.data[off + 8:off + 8 + ks] == \
                        name.encode():
                    return struct.unpack_from(
                        "<IHHQQQQQ", self.data, off + 8 + ks)[7]
        raise AssertionError("no database %r in data.mdb" % name)


def scribble_leaf_sizes(cache):
    """Overwrite the data size of every record in the leaf pages of the
    objects database with ~2 GiB: LMDB hands that length out as it is, and
    reading a record then runs off the end of the file or the map."""
    path = os.path.join(cache, "data.mdb")
    f = LmdbFile(path)
    leaves = f.leaves(f.db_root("objects"))
    et.ok(leaves, "the objects database has leaf pages")
    with open(path, "r+b") as fh:
        for pg in leaves:
            for off in f.node_offsets(pg):
                fh.seek(off + 2)
                fh.write(struct.pack("<H", 0x7FFF))
    return len(leaves)


def wrong_page_type(cache):
    """Clear the page type of every leaf of the objects database: LMDB
    notices this one itself (MDB_CORRUPTED) instead of faulting."""
    path = os.path.join(cache, "data.mdb")
    f = LmdbFile(path)
    with open(path, "r+b") as fh:
        for pg in f.leaves(f.db_root("objects")):
            fh.seek(pg * f.psize + 10)
            fh.write(b"\0\0")


# ------------------------------------------------------------ helpers

def admin_args():
    port = et.free_port()
    return port, ["--admin-listen", "127.0.0.1:%d" % port]


def admin_get(port, path):
    with et.Client(port) as c:
        return c.request("GET", path)


def stats(port):
    r = admin_get(port, "/stats")
    et.eq(r.status, 200, "stats status")
    return json.loads(r.body)


def url(i):
    return "/obj/k%d?size=%d&ttl=300" % (i, SIZE)


def get(e, i):
    r = e.request("GET", url(i))
    et.eq(r.status, 200, "status of %s" % url(i))
    et.check_pattern(r.body, SIZE)
    return r


def filled_cache(o):
    """A cache directory holding N committed objects, edged stopped."""
    d = os.path.join(et.mktemp("damaged"), "cache")
    port, extra = admin_args()
    with et.Edge(o.url, "--cache-dir", d, *extra) as e:
        for i in range(N):
            get(e, i)
        et.wait_for(lambda: stats(port)["cache"]["objects"] >= N,
                    timeout=10, what="every object committed")
    return d


def asides(d):
    return sorted(x for x in os.listdir(d) if x.startswith("damaged-"))


def check_moved_aside(e, d, what):
    """edged logged the move, and the damaged files are kept aside."""
    a = asides(d)
    et.eq(len(a), 1, "one damaged copy kept in %s" % d)
    kept = os.path.join(d, a[0])
    et.ok(os.path.getsize(os.path.join(kept, "data.mdb")) > 0,
          "the damaged data.mdb is kept in %s" % kept)
    log = e.stderr_text()
    et.ok("moved aside to %s" % kept in log and what in log,
          "the log names the copy and the damage (%s):\n%s" % (what, log))
    et.ok(not os.path.exists(os.path.join(d, "damaged")),
          "the marker went with the damaged files")


def serves_fresh(e, port, o):
    """Every object comes from the origin, whole, and is stored again."""
    before = o.count()
    for i in range(N):
        r = get(e, i)
        et.ok("fwd=uri-miss" in r.header("cache-status"),
              "%s from the origin: %s" % (url(i), r.header("cache-status")))
    et.eq(o.count() - before, N, "origin requests")
    et.wait_for(lambda: stats(port)["cache"]["objects"] >= N, timeout=10,
                what="the objects stored in the new cache")
    r = get(e, 0)
    et.ok(r.header("cache-status").startswith("edged; hit"),
          "stored again: %s" % r.header("cache-status"))
    s = stats(port)["cache"]
    et.eq((s["enabled"], s["state"]), (True, "ok"), "cache state")
    h = admin_get(port, "/healthz")
    et.eq((h.status, h.body), (200, b"ok\n"), "/healthz")


def proxy_only(e, port, o, why):
    """The node serves every request from the origin and says why."""
    h = admin_get(port, "/healthz")
    et.eq((h.status, h.body), (200, ("ok\ncache: disabled (%s)\n" % why)
                                .encode()), "/healthz")
    s = stats(port)["cache"]
    et.eq((s["enabled"], s["state"]), (False, "disabled (%s)" % why),
          "/stats cache state")
    m = admin_get(port, "/metrics").body.decode()
    et.ok("\nedge_cache_disabled 1\n" in m, "edge_cache_disabled 1")
    before = o.count()
    for _ in range(2):
        get(e, 0)
    et.eq(o.count() - before, 2, "both requests went to the origin")
    et.ok("running proxy-only" in e.stderr_text(), "the log says so")


# ------------------------------------------------------------ stories

@et.timeout(120)
def test_corrupted_leaf_page_crashes_once_then_is_moved_aside():
    with et.Origin() as o:
        d = filled_cache(o)
        pages = scribble_leaf_sizes(d)
        # LMDB cannot see this damage before it reads the page: edged
        # starts, and dies on the first read of a stored object.
        port, extra = admin_args()
        e = et.Edge(o.url, "--cache-dir", d, *extra)
        try:
            h = admin_get(port, "/healthz")
            et.eq(h.status, 200, "edged started on the damaged file")
            try:
                e.request("GET", url(0), timeout=5)
            except (OSError, AssertionError):
                pass
            rc = e.wait_exit(15)
            et.ok(rc is not None and rc != 0,
                  "edged died reading the scribbled page (%s)" % rc)
        finally:
            e.kill()
        et.ok(os.path.exists(os.path.join(d, "damaged")),
              "the crash inside the store left the marker (%d pages "
              "scribbled); stderr:\n%s" % (pages, e.stderr_text()[-2000:]))
        # The next start does not crash on the same page again.
        port, extra = admin_args()
        with et.Edge(o.url, "--cache-dir", d, *extra) as e:
            # A fault past the file's end (SIGBUS) or, the file being
            # as long as the map, past the map's (SIGSEGV).
            check_moved_aside(e, d, "inside the store")
            serves_fresh(e, port, o)


@et.timeout(120)
def test_page_lmdb_finds_wrong_stops_the_cache_without_a_crash():
    with et.Origin() as o:
        d = filled_cache(o)
        wrong_page_type(d)
        port, extra = admin_args()
        with et.Edge(o.url, "--cache-dir", d, *extra) as e:
            before = o.count()
            for i in range(N):
                get(e, i)  # served from the origin, never a 5xx
            et.ok(o.count() - before >= 1, "the origin answered")
            s = stats(port)["cache"]
            et.eq(s["state"],
                  "disabled (damaged: moved aside at the next start)",
                  "state once LMDB reported the damage")
            # Nothing stored any more, not even in memory: a purge could
            # not reach it.
            before = o.count()
            get(e, 0)
            get(e, 0)
            et.eq(o.count() - before, 2, "proxy-only after the damage")
            et.ok("MDB_CORRUPTED" in e.stderr_text(), "logged")
        port, extra = admin_args()
        with et.Edge(o.url, "--cache-dir", d, *extra) as e:
            check_moved_aside(e, d, "MDB_CORRUPTED")
            serves_fresh(e, port, o)


@et.timeout(120)
def test_truncated_data_mdb_is_moved_aside_at_start():
    with et.Origin() as o:
        d = filled_cache(o)
        path = os.path.join(d, "data.mdb")
        os.truncate(path, LmdbFile(path).used_bytes() // 2)
        port, extra = admin_args()
        with et.Edge(o.url, "--cache-dir", d, *extra) as e:
            check_moved_aside(e, d, "truncated")
            serves_fresh(e, port, o)


@et.timeout(60)
def test_kill9_is_not_damage():
    with et.Origin() as o:
        d = filled_cache(o)
        port, extra = admin_args()
        e = et.Edge(o.url, "--cache-dir", d, *extra)
        try:
            # Writes in flight when the process dies.
            for i in range(N, N + 20):
                r = e.request("GET", "/obj/big%d?size=300000&ttl=300" % i)
                et.eq(r.status, 200, "status")
        finally:
            e.kill()
        port, extra = admin_args()
        with et.Edge(o.url, "--cache-dir", d, *extra) as e:
            et.eq(asides(d), [], "nothing moved aside")
            et.ok(not os.path.exists(os.path.join(d, "damaged")),
                  "no marker")
            before = o.count()
            for i in range(N):
                r = get(e, i)
                et.ok(r.header("cache-status").startswith("edged; hit"),
                      "object %d kept: %s" % (i, r.header("cache-status")))
            et.eq(o.count(), before, "no origin request")
            s = stats(port)["cache"]
            et.eq((s["enabled"], s["state"]), (True, "ok"), "cache state")


def _ro_mount_prefix():
    """The argv prefix that runs a command with the directory "$0" bound
    read-only in a mount namespace of its own, or None.  As root, unshare
    -m; otherwise (or where that is refused) a user namespace, unshare -rm.
    Both leave the host's mounts alone."""
    script = ('mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0"'
              ' && exec "$@"')
    probe = et.mktemp("roprobe")
    for unshare in (["unshare", "-m"], ["unshare", "-rm"]):
        argv = unshare + ["sh", "-c", script, probe, "sh", "-c",
                          'touch "$0"/x 2>/dev/null && exit 3 || exit 0',
                          probe]
        try:
            rc = subprocess.run(argv, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if rc.returncode == 0:
            return unshare + ["sh", "-c", script]
    return None


@et.timeout(60)
def test_read_only_cache_dir_runs_proxy_only():
    prefix = _ro_mount_prefix()
    if prefix is None:
        raise et.Skip("no mount namespace here (unshare -m / -rm refused);"
                      " test_unwritable_cache_dir_runs_proxy_only covers "
                      "proxy-only")
    with et.Origin() as o:
        d = filled_cache(o)
        data = os.path.join(d, "data.mdb")
        before = (os.path.getsize(data), os.stat(data).st_mtime_ns)
        # edged, exec'd by the wrapper (same pid), sees <d> read-only.
        wrapper = os.path.join(et.mktemp("ro"), "edged-ro")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec %s %s %s \"$@\"\n" % (
                " ".join("'%s'" % a for a in prefix), d, et.EDGED))
        os.chmod(wrapper, 0o755)
        saved, et.EDGED = et.EDGED, wrapper
        try:
            port, extra = admin_args()
            e = et.Edge(o.url, "--cache-dir", d, *extra)
        finally:
            et.EDGED = saved
        with e:
            proxy_only(e, port, o, "read-only file system")
        et.eq((os.path.getsize(data), os.stat(data).st_mtime_ns), before,
              "the cache is left as it was")


@et.timeout(60)
def test_unwritable_cache_dir_runs_proxy_only():
    # A file where the cache directory should be: what root cannot write
    # even without a read-only mount.
    with et.Origin() as o:
        f = os.path.join(et.mktemp("notdir"), "file")
        with open(f, "w") as fh:
            fh.write("not a directory\n")
        port, extra = admin_args()
        with et.Edge(o.url, "--cache-dir", os.path.join(f, "cache"),
                     *extra) as e:
            proxy_only(e, port, o, "not a directory")


@et.timeout(90)
def test_purged_refuses_a_damaged_cache_and_edged_moves_it():
    purged = os.path.join(os.path.dirname(et.EDGED), "purged")
    if not os.access(purged, os.X_OK):
        raise et.Skip("no purged beside edged")
    with et.Origin() as o:
        d = filled_cache(o)
        path = os.path.join(d, "data.mdb")
        os.truncate(path, LmdbFile(path).used_bytes() // 2)
        size = os.path.getsize(os.path.join(d, "data.mdb"))
        tmp = et.mktemp("purged")
        p = subprocess.run(
            [purged, "--cache-dir", d, "--listen",
             "127.0.0.1:%d" % et.free_port(), "--token-file",
             pn.token_file(tmp), "--audit-log", os.path.join(tmp, "audit")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        err = p.stderr.decode()
        et.eq(p.returncode, 1, "purged's exit status (stderr: %s)" % err)
        et.ok("is damaged" in err and "truncated" in err and
              "not starting" in err, "purged says why: %s" % err)
        et.eq((asides(d), os.path.getsize(os.path.join(d, "data.mdb"))),
              ([], size), "purged leaves the move to edged")
        # edged moves it aside before it starts purged on the new one.
        with pn.Node(o, cache=d) as n:
            check_moved_aside(n.edge, d, "truncated")
            get(n.edge, 0)
            r = n.purge("PURGE", url(0))
            et.eq(r.status, 200, "purged answers on the new cache")



@et.timeout(90)
def test_edged_waits_for_purged_to_close_the_store_before_moving_it():
    purged = os.path.join(os.path.dirname(et.EDGED), "purged")
    if not os.access(purged, os.X_OK):
        raise et.Skip("no purged beside edged")
    with et.Origin() as o:
        d = filled_cache(o)
        tmp = et.mktemp("purged")
        pport = et.free_port()
        p = subprocess.Popen(
            [purged, "--cache-dir", d, "--listen", "127.0.0.1:%d" % pport,
             "--token-file", pn.token_file(tmp), "--audit-log",
             os.path.join(tmp, "audit")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            et.wait_for(lambda: not et.connection_refused(pport), 10,
                        what="purged listening")
            # What a crash inside the store leaves, while this purged
            # (of a dead edged, say) still has the files open.
            with open(os.path.join(d, "damaged"), "w") as f:
                f.write("SIGSEGV inside the store, pid 1\n")
            stopped = []

            def stop_purged():
                stopped.append(time.monotonic())
                p.send_signal(signal.SIGTERM)
            t = threading.Timer(1.5, stop_purged)
            t.start()
            port, extra = admin_args()
            try:
                e = et.Edge(o.url, "--cache-dir", d, *extra,
                            ready_timeout=20)
                ready = time.monotonic()
            finally:
                t.join()
            with e:
                et.eq(p.wait(10), 0, "purged's exit status")
                et.ok(ready > stopped[0], "edged was ready only after "
                      "purged was told to stop (it waited to move)")
                check_moved_aside(e, d, "SIGSEGV inside the store, pid 1")
                serves_fresh(e, port, o)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(10)


if __name__ == "__main__":
    et.main()
