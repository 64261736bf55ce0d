#!/usr/bin/env python3
"""Story: edged runs as a service: rotated logs, another user, systemd.

logrotate renames every log of a node (edged's error and access logs,
purged's error log and purge audit log) and sends edged SIGUSR1: each is
written afresh at its old path, purged's too, and the renamed files get
nothing more.  Started as root with --user nobody, edged serves and stores
as nobody, with no capability left, and what it created is nobody's.
Under systemd's Type=notify it says READY=1 once it serves and STOPPING=1
when it drains.  The shipped units pass systemd-analyze verify.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402
import purgenode as pn  # noqa: E402


def read(path):
    """The text of <path>, "" if it is not there (yet)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def proc_status(pid):
    """/proc/PID/status as a dict of its fields (main thread)."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def test_sigusr1_reopens_every_log():
    with et.Origin() as o:
        tmp = et.mktemp("usr1")
        errlog = os.path.join(tmp, "error.log")
        n = pn.Node(o, "--error-log", errlog, "--log-level", "info")
        with n.edge as e:
            alog = e.access_log
            et.eq(e.request("GET", "/obj/before?size=10").status, 200,
                  "status")
            e.wait_access_log(lambda l: "/obj/before" in l)
            n.purge_ok(target="/obj/before")
            logs = [alog, errlog, n.audit]
            for p in logs:
                et.ok(os.path.exists(p), "%s written before the rotation"
                      % os.path.basename(p))
                os.rename(p, p + ".1")
            e.send_signal(signal.SIGUSR1)
            et.wait_for(lambda: os.path.exists(alog) and
                        os.path.exists(errlog), 3.0,
                        what="edged's logs anew at their paths")
            # purged says it reopened, in the new error log (not the old).
            et.wait_for(lambda: "SIGUSR1: logs reopened" in
                        read(errlog), 3.0,
                        what="purged's line in the new error log")
            et.eq(e.request("GET", "/obj/after?size=10").status, 200,
                  "edged serves after SIGUSR1")
            e.wait_access_log(lambda l: "/obj/after" in l)
            n.purge_ok(target="/obj/after")
            et.wait_for(lambda: "/obj/after" in read(n.audit), 3.0,
                        what="the purge in a new audit log")
            old_alog = read(alog + ".1")
            et.ok("/obj/after" not in old_alog,
                  "the renamed access log gets no new line")
            et.ok("/obj/after" not in read(n.audit + ".1"),
                  "the renamed audit log gets no new line")
            et.ok("logs reopened" not in read(errlog + ".1"),
                  "the renamed error log gets no new line from purged")
            et.ok(n.purged_pid() is not None, "purged is still running")


def test_user_drops_privileges():
    if os.geteuid() != 0:
        raise et.Skip("needs root (to become another user)")
    user = "nobody"
    pw = pwd.getpwnam(user)
    cache_parent = et.mktemp("usercache")
    os.chown(cache_parent, pw.pw_uid, pw.pw_gid)
    cache = os.path.join(cache_parent, "cache")
    with et.Origin() as o, et.Edge(o.url, "--cache-dir", cache,
                                   "--memory-size", "0",
                                   user=user) as e:
        st = proc_status(e.pid)
        et.eq(st["Uid"], [str(pw.pw_uid)] * 4, "real, effective, saved "
              "and fs uid")
        et.eq(st["Gid"], [str(pw.pw_gid)] * 4, "and gids")
        for cap in ("CapPrm", "CapEff", "CapAmb"):
            et.eq(int(st[cap][0], 16), 0, "%s of the main thread" % cap)
        for tid in os.listdir("/proc/%d/task" % e.pid):
            with open("/proc/%d/task/%s/status" % (e.pid, tid)) as f:
                caps = [l.split()[1] for l in f
                        if l.startswith(("CapPrm", "CapEff"))]
            et.ok(all(int(c, 16) == 0 for c in caps),
                  "thread %s holds no capability (%s)" % (tid, caps))
        r = e.request("GET", "/obj/u?size=5000&ttl=60")
        et.eq(r.status, 200, "status of the miss")
        et.check_pattern(r.body, 5000)

        # With no memory tier, a hit comes from the LMDB store on disk.
        def hit():
            r = e.request("GET", "/obj/u?size=5000&ttl=60")
            return "hit" in r.header("Cache-Status") and r
        r = et.wait_for(hit, 5.0, 0.05, "a hit from the store")
        et.check_pattern(r.body, 5000)
        et.eq(o.count("/obj/u"), 1, "origin requests")
        for name in os.listdir(cache):
            et.eq(os.stat(os.path.join(cache, name)).st_uid, pw.pw_uid,
                  "the owner of %s" % name)
        et.eq(os.stat(e.access_log).st_uid, pw.pw_uid,
              "the owner of the access log")


def test_user_refused_when_unknown():
    with et.Origin() as o:
        try:
            et.Edge(o.url, "--user", "no-such-user-edged", ready_timeout=5)
        except AssertionError as ex:
            et.ok("no-such-user-edged" in str(ex) and "no such user" in
                  str(ex), "the start fails naming the user: %s" % ex)
        else:
            raise AssertionError("edged started as an unknown user")


def test_notify_ready_and_stopping():
    tmp = et.mktemp("notify")
    path = os.path.join(tmp, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(10)
    try:
        with et.Origin() as o:
            e = et.Edge(o.url, env={"NOTIFY_SOCKET": path})
            with e:
                msg = s.recv(4096).decode()
                et.ok("READY=1" in msg.split("\n"),
                      "READY=1 once serving: %r" % msg)
                et.ok(os.path.exists(e.ready_file),
                      "after every listener is bound")
                et.eq(e.request("GET", "/obj/n?size=10").status, 200,
                      "status")
                e.send_signal(signal.SIGTERM)
                msg = s.recv(4096).decode()
                et.ok("STOPPING=1" in msg.split("\n"),
                      "STOPPING=1 on SIGTERM: %r" % msg)
    finally:
        s.close()


def test_units_verify():
    exe = shutil.which("systemd-analyze")
    if exe is None:
        raise et.Skip("no systemd-analyze")
    build = os.path.dirname(os.path.abspath(et.EDGED))
    units = os.path.join(build, "contrib", "systemd")
    tmp = et.mktemp("units")
    for name in ("edged.service", "purged.service"):
        src = os.path.join(units, name)
        if not os.path.exists(src):
            raise AssertionError("%s not built (make)" % src)
        with open(src) as f:
            text = f.read()
        # verify wants the binaries it names: point them at this build's.
        for line in text.splitlines():
            if line.startswith(("ExecStart=", "ExecStartPre=")):
                prog = line.partition("=")[2].split()[0]
                text = text.replace(prog, os.path.join(
                    build, os.path.basename(prog)))
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    r = subprocess.run([exe, "verify", "--man=no"] +
                       [os.path.join(tmp, n) for n in
                        ("edged.service", "purged.service")],
                       capture_output=True, text=True, timeout=60)
    # Outside a booted systemd (a container) verify may complain about the
    # manager itself: only lines about our units count.
    ours = [l for l in (r.stdout + r.stderr).splitlines()
            if "edged.service" in l or "purged.service" in l]
    et.eq(ours, [], "systemd-analyze verify on the units")


if __name__ == "__main__":
    et.main()
