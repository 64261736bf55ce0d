"""edgetest: the harness shared by edged's Python integration tests.

Standard library only (Python 3.11).  Every socket is on loopback, every
wait has a time bound, and every process started here is stopped when the
test file ends, even when it fails (and with PR_SET_PDEATHSIG when the test
process itself dies).

Running
-------
    make check                         # all of them, through automake
    EDGED=./edged TESTS_SRCDIR=./tests python3 tests/py/test_bodies.py
    python3 tests/py/test_bodies.py test_head     # only the named tests
    EDGETEST_KEEP=1 python3 tests/py/...          # keep the temp dirs

Environment: EDGED is the binary under test (default <repo>/edged),
TESTS_SRCDIR the tests directory (default the parent of this file's
directory), EDGETEST_KEEP=1 keeps the per-test temporary directories (their
path is printed) and EDGETEST_VERBOSE=1 makes the origin log each request.

Writing a test file
-------------------
One story per file, named tests/py/test_<story>.py; the module docstring
tells the story.  List a new file in PY_TESTS in Makefile.am.

    import sys

    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    import edgetest as et  # noqa: E402

    def test_small_get():
        with et.Origin() as o, et.Edge(o.url) as e, e.connect() as c:
            r = c.request("GET", "/obj/a?size=10")
            et.eq(r.status, 200, "status")
            et.check_pattern(r.body, 10)

    if __name__ == "__main__":
        et.main()

main() runs the module's test_* functions in the order they are defined
(or those named on the command line) and prints TAP: "1..N", then "ok N -
name" or "not ok N - name" with the traceback as "#" lines.  Each test has
a time limit (default 60 s, @et.timeout(S) to change it) enforced with
SIGALRM.  raise et.Skip("why") skips one test.  The exit status is 0 if
every test passed or was skipped, 1 if any failed, and 77 (automake's SKIP)
if edged is missing or every test was skipped.  main(needs_edged=False)
runs even without edged (test_harness.py).

Start Origin and Edge from the main thread: their processes get SIGKILL
when the thread that started them ends.  Close client connections once
done with them (leaving the with-block does): edged lingers up to 2 s on a
connection it closed until the client closes too (unless the client asked
for the close and sent nothing more), and stop() waits for it.

What is here
------------
Origin(host="127.0.0.1", port=0, tls=None)
                     tests/origin/origin.py (its docstring documents every
                     path and parameter): .url, .port, .count(path=None,
                     complete=False), .connections(), .reset(), .get_json().
                     tls=(cert, key) or (cert, key, client_ca) serves HTTPS;
                     .url is then https://localhost:PORT.
pattern(offset, length), check_pattern(data, size=None, offset=0), BLOCK,
pattern_block(k)     the origin's body pattern, byte i =
                     (i * 7 + (i >> 8) + (i >> 16) * 13) & 0xff.
parse_multipart(r)   the (fields, data) parts of a multipart/byteranges
                     response, its framing checked.
ScriptOrigin(script)  a loopback origin whose n-th connection runs
                     script(n, conn) (conn: .read_request(), .read_body(head),
                     .send(bytes), .reset()): .url, .port, .request_lines.
RawOrigin(response)  a ScriptOrigin answering each connection's request with
                     <response> and closing: .requests, .delay_s.
SilentListener()      a port whose connects hang (a full accept queue): .port.
BusPage(cache_dir)   writes the purge bus's state into cache_dir/purge.seq as
                     purged's bus reader does (edged only reads it): .set(
                     state=..., heartbeat_ms=...), .get(name), .applied(ms,
                     seq), .init(), .close(); now_ms() is the wall clock.
                     BUS_STATES names the states.  bus_test_binary(): an
                     edged whose purged (the page's real writer with
                     purge_bus) only waits, for Edge(binary=...).
SlowReader(edge, target, size, rate=100000)
                     a thread reading one GET slowly: .start(), .stop.set(),
                     .finish() (the rest at full speed), .body, .error.
Edge(origin_url, *extra_args, threads=2, listen=None, env=None, user=None,
     binary=None)
                     edged with --listen 127.0.0.1:<free> (or each of
                     <listen>) --origin <url> --threads N --ready-file
                     --access-log in a temporary directory, then the extra
                     arguments; stdout and stderr go to files there.
                     user="nobody" adds --user nobody and gives that user
                     the temporary directory (run as root).  Waits
                     up to 10 s for the ready file.  .port, .pid, .proc,
                     .tmpdir, .access_log, .rss_kib(), .stderr_text(),
                     .access_log_lines(), .wait_access_log(pred),
                     .send_signal(sig), .wait_exit(timeout), .connect(),
                     .request(...), .stop() (SIGTERM, bounded wait, then
                     exit status 0 and no sanitizer report are required).
                     binary: another edged to run (bus_test_binary()).
Client(port, host)   one client connection: .send(bytes), .request(method,
                     target, headers, body, version), .read_response(),
                     .assert_closed(timeout), .is_open(wait), .reader.
build_request(), chunk_encode()
                     request bytes, chunked bodies with extensions/trailers.
raw_request(port, data, timeout)
                     send raw bytes, read until close or timeout: RawResult
                     (.data, .closed, .reset, .elapsed, .responses()).
read_response(src, method="GET", allow_incomplete=False, read_body=True)
                     one HTTP/1.1 response from a socket, Client, Reader or
                     bytes: Response with .status, .reason, .version,
                     .headers [(name, value)], .header(), .header_list(),
                     .tokens(), .body, .json(), .interim (1xx responses),
                     .framing ("length", "chunked", "close", "none"),
                     .complete, .trailers.  Strict: a malformed response
                     raises ResponseError.
strace(edge, calls)  a with-block under strace -f of edge's system calls
                     <calls>; yields the log's path (skips without strace).
free_port(), ipv6_loopback_works(), connection_refused(), wait_for(),
eq(), ok(), sha256(), mktemp(), Skip, timeout().
"""

import atexit
import ctypes
import hashlib
import http.client
import importlib.util
import json
import mmap
import os
import pwd
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import weakref

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EDGED = os.environ.get("EDGED") or os.path.join(REPO, "edged")
TESTS_SRCDIR = os.environ.get("TESTS_SRCDIR") or os.path.dirname(HERE)
ORIGIN_PY = os.path.join(TESTS_SRCDIR, "origin", "origin.py")
KEEP = os.environ.get("EDGETEST_KEEP") == "1"
VERBOSE = os.environ.get("EDGETEST_VERBOSE") == "1"

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:",
                   "LeakSanitizer", "ERROR: ThreadSanitizer")

# ---------------------------------------------------------------- origin body

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
_spec = importlib.util.spec_from_file_location("edgetest_origin", ORIGIN_PY)
origin_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(origin_mod)
pattern = origin_mod.pattern            # pattern(offset, length) -> bytes
pattern_block = origin_mod.pattern_block
BLOCK = origin_mod.BLOCK


def check_pattern(data, size=None, offset=0):
    """Assert <data> is bytes [offset, offset + len) of the origin pattern
    (and, if <size> is given, exactly <size> bytes long)."""
    if size is not None and len(data) != size:
        raise AssertionError("body length %d, expected %d"
                             % (len(data), size))
    want = pattern(offset, len(data))
    if data != want:
        i = next(i for i in range(len(data)) if data[i] != want[i])
        raise AssertionError(
            "body differs from the pattern at byte %d (offset %d): "
            "got %r, expected %r" % (i, offset + i, bytes(data[i:i + 16]),
                                     want[i:i + 16]))


def parse_multipart(r):
    """The parts of a multipart/byteranges response <r>: a list of
    (fields, data), field names in lower case; checks the framing."""
    m = re.match(r"multipart/byteranges; boundary=(\S+)$",
                 r.header("content-type") or "")
    ok(m is not None, "multipart type: %r" % r.header("content-type"))
    b = m.group(1).encode()
    body = r.body
    eq(int(r.header("content-length")), len(body), "Content-Length")
    ok(body.endswith(b"\r\n--" + b + b"--\r\n"), "closing delimiter")
    parts = []
    for chunk in body.split(b"--" + b)[1:-1]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        fields = {}
        for line in head.strip().split(b"\r\n"):
            n, _, v = line.decode().partition(":")
            fields[n.strip().lower()] = v.strip()
        parts.append((fields, data))
    return parts


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- assertions

def _short(v, n=300):
    s = repr(v)
    return s if len(s) <= n else s[:n] + "...(%d chars)" % len(s)


def eq(got, want, what="value"):
    if got != want:
        raise AssertionError("%s: got %s, expected %s"
                             % (what, _short(got), _short(want)))


def ok(cond, what):
    if not cond:
        raise AssertionError(what)


class Skip(Exception):
    """Raise to skip the current test."""


class TestTimeout(Exception):
    pass


def timeout(seconds):
    """Decorator: give a test <seconds> instead of the default 60."""
    def deco(fn):
        fn.edgetest_timeout = seconds
        return fn
    return deco


def wait_for(pred, timeout=5.0, interval=0.02, what="condition"):
    """Poll pred() until it returns a true value (returned) or time runs out
    (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------- processes

_children = []          # every Popen started here, killed at exit
_tmpdirs = []           # removed at exit unless EDGETEST_KEEP=1 or a failure
_failed = False


try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None


def _pdeathsig():
    """preexec_fn: the child gets SIGKILL when the thread that started it
    dies, so start processes from the main thread."""
    if _libc is not None:
        _libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def _spawn(argv, stdout, stderr, env=None):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout,
                         stderr=stderr, env=env, preexec_fn=_pdeathsig,
                         close_fds=True)
    _children.append(p)
    return p


def _cleanup():
    for p in _children:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except Exception:
                pass
    for d in _tmpdirs:
        if KEEP or _failed:
            sys.stdout.write("# kept %s\n" % d)
        else:
            shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def mktemp(prefix):
    d = tempfile.mkdtemp(prefix="edgetest-%s-" % prefix)
    _tmpdirs.append(d)
    return d


def self_signed(d, cn="localhost"):
    """A throwaway P-256 certificate for <cn> and its key, made in <d>:
    (cert, key), or None when no openssl command can make one."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    r = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=" + cn,
         "-days", "1", "-keyout", key, "-out", cert],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    return (cert, key) if r.returncode == 0 else None


_given_ports = set()


def free_port(host="127.0.0.1"):
    """A port that is free to bind now.  Drawn at random below the kernel's
    ephemeral range, so that outgoing connections do not take it meanwhile;
    the kernel picks one if none of the tries is free.  Never the same port
    twice in one test process: two draws before either is bound would
    otherwise collide now and then."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        port = random.randint(20000, 32000)
        if port in _given_ports:
            continue
        s = socket.socket(fam, socket.SOCK_STREAM)
        try:
            s.bind((host, port))
            _given_ports.add(port)
            return port
        except OSError:
            continue
        finally:
            s.close()
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def ipv6_loopback_works():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        s.listen(1)
        c = socket.create_connection(("::1", s.getsockname()[1]), timeout=2)
        c.close()
        return True
    except OSError:
        return False
    finally:
        s.close()


def _read_file(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _wait_file(path, proc, timeout, what, logs=()):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.path.getsize(path) > 0:
                return
        except OSError:
            pass
        if proc.poll() is not None:
            raise AssertionError(
                "%s exited with status %s before writing %s\n%s"
                % (what, proc.returncode, path,
                   "\n".join(_read_file(p)[-3000:] for p in logs)))
        if time.monotonic() >= deadline:
            raise AssertionError("%s did not write %s within %.0f s\n%s"
                                 % (what, path, timeout,
                                    "\n".join(_read_file(p)[-3000:]
                                              for p in logs)))
        time.sleep(0.01)


class strace:
    """strace -f of <edge>'s system calls <calls> ("openat,pread64") while
    a with-block runs; the block gets the log's path.  Skips the test
    where strace is missing or cannot attach (no ptrace)."""

    def __init__(self, edge, calls):
        exe = shutil.which("strace")
        if exe is None:
            raise Skip("strace not found")
        self.log = os.path.join(edge.tmpdir, "strace")
        self.proc = subprocess.Popen(
            [exe, "-f", "-o", self.log, "-e", "trace=" + calls, "-p",
             str(edge.pid)], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        time.sleep(1.0)  # attached to every thread
        if self.proc.poll() is not None:
            raise Skip("strace cannot attach: %s"
                       % self.proc.stderr.read().decode(errors="replace"))

    def __enter__(self):
        return self.log

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)
        return False


def proc_kib(pid, field="VmRSS"):
    """A size from /proc/PID/status in KiB: VmRSS, RssAnon, VmSize..."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for pid %d" % (field, pid))


class Origin:
    """tests/origin/origin.py on <port> (0: a free one), as a context
    manager.  Start it from the main thread (see _pdeathsig)."""

    def __init__(self, host="127.0.0.1", port=0, lifetime_s=600, tls=None):
        self.host = host
        self.tls = tls
        self.tmpdir = mktemp("origin")
        self.port_file = os.path.join(self.tmpdir, "port")
        self.log_path = os.path.join(self.tmpdir, "origin.log")
        listen = ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)
        argv = [sys.executable, ORIGIN_PY, "--listen", listen,
                "--port-file", self.port_file,
                "--max-lifetime", str(lifetime_s)]
        if VERBOSE:
            argv.append("--verbose")
        if tls:
            argv += ["--tls-cert", tls[0], "--tls-key", tls[1]]
            if len(tls) > 2:
                argv += ["--tls-client-ca", tls[2]]
        self._log = open(self.log_path, "wb")
        self.proc = _spawn(argv, self._log, subprocess.STDOUT)
        _wait_file(self.port_file, self.proc, 10, "origin.py",
                   [self.log_path])
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        hostpart = "[%s]" % host if ":" in host else host
        if tls:
            self.url = "https://localhost:%d" % self.port
        else:
            self.url = "http://%s:%d" % (hostpart, self.port)
        wait_for(self._accepts, 5, what="origin to accept")

    def _accepts(self):
        try:
            socket.create_connection((self.host, self.port), 1).close()
            return True
        except OSError:
            return False

    def get_json(self, target):
        """GET <target> straight from the origin (no proxy) as JSON."""
        if self.tls:
            import ssl
            ctx = ssl._create_unverified_context()
            if len(self.tls) > 2:   # it wants a client certificate
                ctx.load_cert_chain(self.tls[0], self.tls[1])
            conn = http.client.HTTPSConnection(self.host, self.port,
                                               timeout=5, context=ctx)
        else:
            conn = http.client.HTTPConnection(self.host, self.port,
                                              timeout=5)
        try:
            conn.request("GET", target)
            r = conn.getresponse()
            if r.status != 200:
                raise AssertionError("origin %s: status %d" % (target,
                                                               r.status))
            return json.loads(r.read())
        finally:
            conn.close()

    def count(self, path=None, complete=False):
        """Requests whose head arrived since the last reset (for one path if
        given); with complete=True, those whose whole body arrived too."""
        q = "" if path is None else "?path=" + urllib.parse.quote(path)
        return self.get_json("/__count" + q)[
            "complete" if complete else "requests"]

    def connections(self):
        """Connections that carried a counted request since the last reset."""
        return self.get_json("/__count")["connections"]

    def reset(self):
        self.get_json("/__reset")

    def log_text(self):
        return _read_file(self.log_path)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


REDIS_SERVER = os.environ.get("REDIS_SERVER", "/usr/bin/redis-server")


class Redis:
    """A redis-server of its own on a free loopback port, in a temporary
    directory (never a system service), with a small RESP client.  With
    persist=True it keeps an append-only file, so that stop() and start()
    bring back the same stream; password= sets requirepass.  Skips the
    test when redis-server is not installed (tools/deps.sh --test)."""

    def __init__(self, persist=False, password=None, port=None):
        if not os.access(REDIS_SERVER, os.X_OK):
            raise Skip("redis-server not found at %s" % REDIS_SERVER)
        self.dir = mktemp("redis")
        self.port = port or free_port()
        self.persist = persist
        self.password = password
        self.proc = None
        self.url = "redis://127.0.0.1:%d" % self.port
        # A port picked here may be taken by another test between the
        # pick and redis-server's bind; the first start then moves.
        self._may_move = port is None
        self.start()
        self._may_move = False

    def start(self):
        for _ in range(3):
            if self._start_once() == "up":
                return
            log = _read_file(os.path.join(self.dir, "redis.log"))
            if not (self._may_move and "Address already in use" in log):
                raise AssertionError("redis-server on %d exited: %s"
                                     % (self.port, log[-400:]))
            self.port = free_port()
            self.url = "redis://127.0.0.1:%d" % self.port
        raise AssertionError("redis-server found no free port")

    def _start_once(self):
        """Start redis-server: "up" once it answers, "exited" if it
        stopped first."""
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind",
                "127.0.0.1", "--save", "", "--dir", self.dir,
                "--appendonly", "yes" if self.persist else "no",
                "--appendfsync", "always", "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")]
        if self.password:
            argv += ["--requirepass", self.password]
        self._log = open(os.path.join(self.dir, "stdout"), "ab")
        self.proc = _spawn(argv, self._log, subprocess.STDOUT)

        def up():
            if self.proc.poll() is not None:
                return "exited"
            try:
                if self.command("PING") in (b"PONG", "PONG"):
                    return "up"
            except (OSError, RedisError) as e:
                if "NOAUTH" in str(e) or "WRONGPASS" in str(e):
                    return "up"
            return None
        # A loaded machine (the sanitizer build beside other tests) has
        # taken over 10 s to bring it up.
        return wait_for(up, 30, 0.05, "redis-server on %d" % self.port)

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self._log.close()
        self.proc = None

    def command(self, *args, timeout=5.0):
        """One command on a fresh connection; the decoded reply (bytes,
        int, list or None).  An error reply raises RedisError."""
        with socket.create_connection(("127.0.0.1", self.port),
                                      timeout) as s:
            r = Reader(s)
            if self.password:
                s.sendall(_resp_encode(["AUTH", self.password]))
                _resp_read(r)
            s.sendall(_resp_encode(args))
            return _resp_read(r)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


class RedisError(Exception):
    pass


def _resp_encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def _resp_read(r):
    line = r.read_line()
    t, rest = line[:1], line[1:].rstrip(b"\r\n")
    if t == b"+":
        return rest
    if t == b"-":
        raise RedisError(rest.decode("utf-8", "replace"))
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = r.read_exact(n + 2)
        return data[:-2]
    if t == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [_resp_read(r) for _ in range(n)]
    raise RedisError("bad RESP line %r" % line)


class Edge:
    """The edged under test, as a context manager.

    Started with --listen 127.0.0.1:<free port> (or the <listen> list),
    --origin <origin_url>, --threads <threads>, --ready-file and
    --access-log in a temporary directory, then <extra_args>.  stdout and
    stderr go to files in that directory.  Construction waits (up to
    <ready_timeout> s) for the ready file; leaving the with-block calls
    stop(), which requires exit status 0 and no sanitizer report unless the
    block is left by an exception."""

    def __init__(self, origin_url, *extra_args, threads=2, listen=None,
                 ready_timeout=10.0, access_log=True, env=None, user=None,
                 binary=None):
        if not os.access(EDGED, os.X_OK):
            raise Skip("edged not found at %s (set EDGED)" % EDGED)
        binary = binary or EDGED
        self.tmpdir = mktemp("edge")
        if user is not None:
            # edged writes its ready file and logs there as <user>.
            pw = pwd.getpwnam(user)
            os.chown(self.tmpdir, pw.pw_uid, pw.pw_gid)
        self.ready_file = os.path.join(self.tmpdir, "ready")
        self.access_log = os.path.join(self.tmpdir, "access.log")
        self.stderr_path = os.path.join(self.tmpdir, "stderr")
        self.stdout_path = os.path.join(self.tmpdir, "stdout")
        if listen is None:
            self.port = free_port()
            listen = ["127.0.0.1:%d" % self.port]
        else:
            self.port = int(listen[0].rpartition(":")[2])
        self.listen = list(listen)
        self.host = "127.0.0.1"
        h = listen[0].rpartition(":")[0]
        if h.startswith("["):
            self.host = h[1:-1]
        argv = [binary]
        for a in listen:
            argv += ["--listen", a]
        if origin_url is not None:
            argv += ["--origin", origin_url]
        if threads is not None:  # None: edged's default
            argv += ["--threads", str(threads)]
        argv += ["--ready-file", self.ready_file]
        if access_log:
            argv += ["--access-log", self.access_log]
        if user is not None:
            argv += ["--user", user]
        argv += [str(a) for a in extra_args]
        self.argv = argv
        e = dict(os.environ)
        e.update(env or {})
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = _spawn(argv, self._out, self._err, env=e)
        self.pid = self.proc.pid
        self.stopped = False
        try:
            _wait_file(self.ready_file, self.proc, ready_timeout,
                       "edged (%s)" % " ".join(argv), [self.stderr_path])
        except BaseException:
            self.kill()
            raise

    # ---- process ----

    def rss_kib(self):
        return proc_kib(self.pid)

    def stderr_text(self):
        return _read_file(self.stderr_path)

    def sanitizer_reports(self):
        return [l for l in self.stderr_text().splitlines()
                if any(m in l for m in SANITIZER_MARKS)]

    def access_log_lines(self, path=None):
        return _read_file(path or self.access_log).splitlines()

    def wait_access_log(self, pred, timeout=3.0, path=None,
                        what="an access log line"):
        """Wait until some access-log line satisfies pred(line); return it.
        (The log is buffered per worker and flushed every ~200 ms.)"""
        def find():
            for l in self.access_log_lines(path):
                if pred(l):
                    return l
            return None
        try:
            return wait_for(find, timeout, 0.05, what)
        except AssertionError as e:
            raise AssertionError("%s; the log holds:\n%s" % (
                e, "\n".join(self.access_log_lines(path)[-20:])))

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Wait up to <timeout> s for exit; return the status (None if it
        is still running)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.stopped = True
        self._out.close()
        self._err.close()

    def stop(self, timeout=10.0, sig=signal.SIGTERM, check=True):
        """SIGTERM (unless it exited already), wait up to <timeout> s, then
        assert exit status 0 and a clean stderr.  Returns the status."""
        if self.stopped:
            return self.proc.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.kill()
            if check:
                raise AssertionError("edged did not exit within %.0f s of "
                                     "SIGTERM (killed)" % timeout)
            return None
        self.stopped = True
        self._out.close()
        self._err.close()
        if check:
            reports = self.sanitizer_reports()
            if reports or rc != 0:
                raise AssertionError(
                    "edged exited with status %d%s\n--- stderr (tail):\n%s"
                    % (rc, "; sanitizer: " + reports[0] if reports else "",
                       self.stderr_text()[-4000:]))
        return rc

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            self.stop()
        elif not self.stopped:
            # keep the test's own exception; still report a crash
            rc = self.stop(check=False)
            if rc not in (0, None) or self.sanitizer_reports():
                sys.stdout.write("# edged also exited with %s; stderr tail:\n"
                                 % rc)
                for l in self.stderr_text()[-3000:].splitlines():
                    sys.stdout.write("#   %s\n" % l)
        return False

    # ---- clients ----

    def connect(self, timeout=10.0):
        return Client(self.port, self.host, timeout)

    def request(self, method, target, headers=None, body=None,
                version="HTTP/1.1", timeout=10.0):
        """One request on a fresh connection; returns the Response."""
        c = self.connect(timeout)
        try:
            return c.request(method, target, headers, body, version)
        finally:
            c.close()


# ---------------------------------------------------------------- purge bus

# The bus state in the shared page: this mirrors struct cache_bus_page of
# cache/cache_bus.h (one u64 per field, in the struct's order) and its place
# in the page (BUS_PAGE_OFFSET of cache/cache_store_purge.c).  Change the
# three together.
BUS_PAGE_OFFSET = 64
BUS_LATENCY_BUCKETS = 12  # CACHE_BUS_LATENCY_BUCKETS
BUS_FIELDS = (["magic", "state", "heartbeat_ms", "disconnected_ms",
               "applied_lock", "applied_ms", "applied_seq", "lag_entries",
               "lag_ms", "published", "applied", "gaps", "reconnects",
               "malformed"]
              + ["latency_le%d" % i for i in range(BUS_LATENCY_BUCKETS)]
              + ["latency_count", "latency_sum_us"])
BUS_OFFSETS = {name: BUS_PAGE_OFFSET + 8 * i
               for i, name in enumerate(BUS_FIELDS)}
BUS_PAGE_MAGIC = 0x6275737061676531  # "buspage1"
BUS_STATES = {"none": 0, "starting": 1, "catching_up": 2, "current": 3,
              "disconnected": 4}


def now_ms():
    """The wall clock in ms, as the page's times are."""
    return int(time.time() * 1000)


_bus_binary = None


def bus_test_binary():
    """A copy of edged beside a "purged" that only waits for SIGTERM.  With
    purge_bus, edged runs the purged beside its binary, whose bus reader
    would write the page every second; with this one the test is the
    page's only writer.  Made once per test file."""
    global _bus_binary
    if _bus_binary is None:
        d = mktemp("busbin")
        exe = os.path.join(d, "edged")
        shutil.copy2(EDGED, exe)
        stub = os.path.join(d, "purged")
        with open(stub, "w") as f:
            f.write("#!/usr/bin/env python3\n"
                    "# Stands in for purged: the test writes the bus page.\n"
                    "import signal, sys\n"
                    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
                    "signal.pause()\n")
        os.chmod(stub, 0o755)
        _bus_binary = exe
    return _bus_binary


class BusPage:
    """A stand-in for purged's bus reader: the writer of the bus state in
    <cache_dir>/purge.seq.  The file is made (one page of zeros) if it is
    not there yet, so a page can be written before edged starts."""

    def __init__(self, cache_dir):
        os.makedirs(cache_dir, exist_ok=True)
        path = os.path.join(cache_dir, "purge.seq")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < mmap.PAGESIZE:
                os.ftruncate(fd, mmap.PAGESIZE)
            self.mm = mmap.mmap(fd, mmap.PAGESIZE)
        finally:
            os.close(fd)

    def get(self, name):
        return struct.unpack_from("=Q", self.mm, BUS_OFFSETS[name])[0]

    def set(self, **fields):
        """Write the named fields (a state by its name or number)."""
        for name, v in fields.items():
            if name == "state" and isinstance(v, str):
                v = BUS_STATES[v]
            struct.pack_into("=Q", self.mm, BUS_OFFSETS[name], v)

    def init(self):
        """As cache_bus_page_init: magic, starting, not yet current."""
        self.set(magic=BUS_PAGE_MAGIC, disconnected_ms=0, state="starting")

    def applied(self, ms, seq):
        """The last applied ID, under the page's sequence lock."""
        self.set(applied_lock=self.get("applied_lock") + 1)
        self.set(applied_ms=ms, applied_seq=seq)
        self.set(applied_lock=self.get("applied_lock") + 1)

    def close(self):
        self.mm.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- HTTP client

class ResponseError(AssertionError):
    """The bytes received are not a valid HTTP/1.1 response."""


class Reader:
    """Buffered reading from a socket (or from fixed bytes), keeping what is
    read ahead for the next response (pipelining)."""

    def __init__(self, src):
        self.buf = bytearray()
        self.sock = None
        self.eof = False
        self.reset = False
        if isinstance(src, (bytes, bytearray, memoryview)):
            self.buf += src
            self.eof = True
        else:
            self.sock = src

    def _fill(self, n=BLOCK):
        """Read more; False at EOF (or on a reset, which sets .reset)."""
        if self.eof:
            return False
        try:
            d = self.sock.recv(min(max(n, 4096), 1 << 20))
        except ConnectionResetError:
            self.reset = True
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def read_line(self, limit=65536):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise ResponseError("line longer than %d bytes" % limit)
            if not self._fill():
                line = bytes(self.buf)
                self.buf.clear()
                return line

    def read_exact(self, n):
        """Up to n bytes: fewer only at EOF."""
        while len(self.buf) < n and self._fill(n - len(self.buf)):
            pass
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_some(self, n):
        """Up to n bytes, at least one unless at EOF."""
        if not self.buf:
            self._fill(n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_to_eof(self, limit=1 << 31):
        while len(self.buf) <= limit and self._fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out


_readers = weakref.WeakKeyDictionary()


def reader_for(src):
    if isinstance(src, Reader):
        return src
    if isinstance(src, Client):
        return src.reader
    if isinstance(src, (bytes, bytearray, memoryview)):
        return Reader(src)
    r = _readers.get(src)
    if r is None:
        r = _readers[src] = Reader(src)
    return r


class Response:
    def __init__(self):
        self.version = ""
        self.status = 0
        self.reason = ""
        self.headers = []        # [(name, value)] in order, names as sent
        self.body = b""
        self.interim = []        # [(status, reason, headers)] for 1xx
        self.trailers = []
        self.framing = "none"    # length, chunked, close or none
        self.complete = True     # False: the body ended early (EOF/reset)
        self.raw_head = b""

    def header(self, name):
        """All values of field <name> joined with ", ", or None."""
        vals = self.header_list(name)
        return ", ".join(vals) if vals else None

    def header_list(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def has(self, name):
        return bool(self.header_list(name))

    def tokens(self, name):
        """Comma-separated tokens of a field, lower-cased."""
        return [t.strip().lower() for t in (self.header(name) or "").split(",")
                if t.strip()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %d %s, %d header fields, %d body bytes, %s%s>" % (
            self.status, self.reason, len(self.headers), len(self.body),
            self.framing, "" if self.complete else ", INCOMPLETE")


def _parse_head(r):
    """Read one response head; returns (version, status, reason, headers,
    raw) or raises ResponseError (including on EOF before any byte)."""
    raw = bytearray()
    line = r.read_line()
    if not line:
        raise ResponseError("connection closed before a response%s"
                            % (" (reset)" if r.reset else ""))
    raw += line
    if not line.endswith(b"\r\n"):
        raise ResponseError("status line without CRLF: %r" % line[:200])
    parts = line[:-2].decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") \
            or len(parts[1]) != 3 or not parts[1].isdigit():
        raise ResponseError("bad status line: %r" % line[:200])
    version, status = parts[0], int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    while True:
        line = r.read_line()
        raw += line
        if not line.endswith(b"\r\n"):
            raise ResponseError("head truncated or bare LF: %r"
                                % bytes(raw[-200:]))
        if line == b"\r\n":
            break
        text = line[:-2].decode("latin-1")
        if text[:1] in (" ", "\t"):
            raise ResponseError("obs-fold in a response: %r" % text)
        name, sep, value = text.partition(":")
        if not sep or not name or name != name.strip():
            raise ResponseError("bad header line: %r" % text)
        headers.append((name, value.strip(" \t")))
    return version, status, reason, headers, bytes(raw)


def read_response(src, method="GET", head=None, allow_incomplete=False,
                  max_body=1 << 31, read_body=True):
    """Read one response from a socket, Client, Reader or bytes.

    1xx responses before the final one are collected in .interim.  The body
    is framed as RFC 9112 §6.3 says (HEAD, 1xx, 204 and 304 have none).  A
    body that ends early raises ResponseError unless <allow_incomplete>, in
    which case .complete is False and .body holds what arrived.  With
    read_body=False only the head is read (.framing is set, the body stays
    in the reader for the caller)."""
    r = reader_for(src)
    if head is None:
        head = method == "HEAD"
    resp = Response()
    while True:
        version, status, reason, headers, raw = _parse_head(r)
        if 100 <= status < 200 and status != 101:
            resp.interim.append((status, reason, headers))
            continue
        break
    resp.version, resp.status, resp.reason = version, status, reason
    resp.headers, resp.raw_head = headers, raw
    te = resp.tokens("Transfer-Encoding")
    cls = resp.header_list("Content-Length")
    if head or status in (204, 304) or 100 <= status < 200:
        resp.framing = "none"
        return resp
    if not read_body:
        resp.framing = ("chunked" if te and te[-1] == "chunked" else
                        "close" if te else "length" if cls else "close")
        return resp
    if te:
        if cls:
            raise ResponseError("both Transfer-Encoding and Content-Length")
        if te[-1] != "chunked":
            resp.framing = "close"
            resp.body = r.read_to_eof(max_body)
            return resp
        resp.framing = "chunked"
        body = bytearray()
        while True:
            line = r.read_line()
            if not line.endswith(b"\r\n"):
                resp.complete = False
                break
            size_s = line[:-2].split(b";", 1)[0].strip()
            try:
                size = int(size_s, 16)
            except ValueError:
                raise ResponseError("bad chunk size line %r" % line[:100])
            if size == 0:
                while True:
                    line = r.read_line()
                    if not line.endswith(b"\r\n"):
                        resp.complete = False
                        break
                    if line == b"\r\n":
                        break
                    n, _, v = line[:-2].decode("latin-1").partition(":")
                    resp.trailers.append((n, v.strip()))
                break
            data = r.read_exact(size)
            body += data
            if len(data) < size:
                resp.complete = False
                break
            crlf = r.read_exact(2)
            if crlf != b"\r\n":
                if len(crlf) < 2:
                    resp.complete = False
                    break
                raise ResponseError("chunk data not followed by CRLF")
            if len(body) > max_body:
                raise ResponseError("body over %d bytes" % max_body)
        resp.body = bytes(body)
    elif cls:
        if len(set(cls)) != 1 or not cls[0].isdigit():
            raise ResponseError("bad Content-Length %r" % cls)
        n = int(cls[0])
        if n > max_body:
            raise ResponseError("Content-Length %d over the limit" % n)
        resp.framing = "length"
        resp.body = r.read_exact(n)
        resp.complete = len(resp.body) == n
    else:
        resp.framing = "close"
        resp.body = r.read_to_eof(max_body)
    if not resp.complete and not allow_incomplete:
        raise ResponseError("%s body ended early after %d bytes%s"
                            % (resp.framing, len(resp.body),
                               " (reset)" if r.reset else ""))
    return resp


def parse_responses(data, methods=None):
    """Split bytes holding several responses; <methods> lists the request
    methods in order (for HEAD)."""
    r = Reader(data)
    out = []
    i = 0
    while r.buf:
        m = methods[i] if methods and i < len(methods) else "GET"
        out.append(read_response(r, m))
        i += 1
    return out


def build_request(method, target, headers=None, body=None,
                  version="HTTP/1.1", host="edge.test"):
    """Request bytes.  <headers> is a list of (name, value) pairs (or a
    dict); Host is added for HTTP/1.1 unless given, and Content-Length for
    a bytes body unless a framing field is given (then <body> is sent as
    is, so a chunked body must be pre-encoded)."""
    if isinstance(headers, dict):
        headers = list(headers.items())
    headers = list(headers or [])
    names = {n.lower() for n, _ in headers}
    if "host" not in names and version == "HTTP/1.1" and host:
        headers.insert(0, ("Host", host))
    if body is not None and not names & {"content-length",
                                          "transfer-encoding"}:
        headers.append(("Content-Length", str(len(body))))
    head = "%s %s %s\r\n" % (method, target, version)
    head += "".join("%s: %s\r\n" % (n, v) for n, v in headers) + "\r\n"
    return head.encode("latin-1") + (body or b"")


def chunk_encode(data, sizes=(4096,), ext=None, trailers=None):
    """Chunked encoding of <data> with chunk sizes cycling through <sizes>,
    an optional chunk extension string (";name=value") and trailer
    fields."""
    out = bytearray()
    pos = 0
    i = 0
    while pos < len(data):
        n = min(sizes[i % len(sizes)], len(data) - pos)
        i += 1
        out += b"%x%s\r\n" % (n, (ext or "").encode())
        out += data[pos:pos + n] + b"\r\n"
        pos += n
    out += b"0\r\n"
    for n, v in trailers or []:
        out += ("%s: %s\r\n" % (n, v)).encode("latin-1")
    out += b"\r\n"
    return bytes(out)


class Client:
    """One client connection to <port>."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = Reader(self.sock)

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, target, headers=None, body=None,
                version="HTTP/1.1", **kw):
        self.send(build_request(method, target, headers, body, version))
        return self.read_response(method, **kw)

    def read_response(self, method="GET", **kw):
        return read_response(self.reader, method, **kw)

    def settimeout(self, t):
        self.sock.settimeout(t)

    def assert_closed(self, timeout=2.0, what="the connection"):
        """Assert the peer closes (EOF or reset) within <timeout> s without
        sending anything more; then close our end, as a real client would
        (edged lingers on a half-closed connection until the client
        closes)."""
        deadline = time.monotonic() + timeout
        extra = bytes(self.reader.buf)
        self.reader.buf.clear()
        while not self.reader.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s is still open after %.1f s"
                                     % (what, timeout))
            self.sock.settimeout(left)
            try:
                self.reader._fill()
            except socket.timeout:
                continue
            extra += bytes(self.reader.buf)
            self.reader.buf.clear()
        self.sock.close()
        if extra:
            raise AssertionError("%s sent %d unexpected bytes before "
                                 "closing: %r" % (what, len(extra),
                                                  extra[:200]))

    def is_open(self, wait=0.2):
        """True unless the peer closes (EOF or reset) within <wait> s."""
        if self.reader.eof:
            return False
        old = self.sock.gettimeout()
        self.sock.settimeout(wait)
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK))
        except socket.timeout:
            return True
        except OSError:
            return False
        finally:
            self.sock.settimeout(old)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class RawResult:
    def __init__(self):
        self.data = b""
        self.closed = False     # the peer closed (EOF or reset)
        self.reset = False      # ... with a reset
        self.elapsed = 0.0      # seconds until close or timeout

    def responses(self, methods=None):
        return parse_responses(self.data, methods)

    def response(self, method="GET"):
        return read_response(self.data, method)

    def __repr__(self):
        return "<RawResult %d bytes, %s after %.2f s: %r>" % (
            len(self.data), "reset" if self.reset else
            "closed" if self.closed else "open", self.elapsed,
            self.data[:120])



class ScriptOrigin:
    """A loopback origin whose n-th connection (from 0) runs script(n, conn),
    for what origin.py cannot send (odd framing, closes and resets at chosen
    moments).  conn.read_request() returns the next request head (b"" at
    EOF), conn.read_body(head) the body its Content-Length announces,
    conn.send(bytes) writes, conn.reset() makes the close a reset.  .url,
    .port; .request_lines lists every request line received.  Used as a
    with-block."""

    def __init__(self, script):
        self.script = script
        self.request_lines = []
        self.lock = threading.Lock()
        self.nconn = 0
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                n = self.nconn
                self.nconn += 1
            threading.Thread(target=self._serve, args=(n, c),
                             daemon=True).start()

    def _serve(self, n, c):
        c.settimeout(5)
        try:
            self.script(n, ScriptConn(self, c))
        except OSError:
            pass
        finally:
            c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.thread.join(2)
        self.lsock.close()
        return False


class ScriptConn:
    """One connection of a ScriptOrigin, as its script sees it."""

    def __init__(self, origin, sock):
        self.origin = origin
        self.sock = sock
        self.buf = b""

    def read_request(self):
        while b"\r\n\r\n" not in self.buf:
            d = self.sock.recv(4096)
            if not d:
                return b""
            self.buf += d
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        with self.origin.lock:
            self.origin.request_lines.append(head.split(b"\r\n")[0])
        return head

    def read_body(self, head):
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        want = int(m.group(1)) if m else 0
        while len(self.buf) < want:
            d = self.sock.recv(65536)
            if not d:
                break
            self.buf += d
        body, self.buf = self.buf[:want], self.buf[want:]
        return body

    def send(self, data):
        self.sock.sendall(data)

    def reset(self):
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))


class RawOrigin(ScriptOrigin):
    """A loopback origin answering every request with <response> bytes,
    then closing the connection, for heads origin.py cannot send (obs-fold,
    interim responses, odd framing).  .url, .port; .requests counts the
    request heads received.  Used as a with-block."""

    def __init__(self, response):
        self.response = response
        self.delay_s = 0  # before answering, once the head has come
        super().__init__(self._answer)

    @property
    def requests(self):
        with self.lock:
            return len(self.request_lines)

    def _answer(self, n, conn):
        head = conn.read_request()
        if not head:
            return
        # Read the body too: closing with unread bytes would send a
        # reset, which may reach the node before the response does.
        conn.read_body(head)
        time.sleep(self.delay_s)
        conn.send(self.response)


class SilentListener:
    """A loopback port whose accept queue is full, so the kernel drops
    further SYNs and a connect hangs until its timeout: .port, used as a
    with-block (the sockets close at its end)."""

    def __init__(self):
        self.lsock = socket.socket()
        self.fill = []
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(0)
        self.port = self.lsock.getsockname()[1]
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fill.append(s)
        time.sleep(0.1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for s in self.fill:
            s.close()
        self.lsock.close()


class SlowReader(threading.Thread):
    """Reads one GET's body at about <rate> bytes/s until .stop is set,
    keeping what it read; .finish() then reads the rest at full speed.
    For stories that hold a large response open slowly.  Errors in the
    thread are kept in .error for the test thread to report."""

    def __init__(self, edge, target, size, rate=100 * 1000):
        super().__init__(daemon=True)
        self.size = size
        self.rate = rate
        self.c = edge.connect(timeout=30)
        self.c.send(build_request("GET", target))
        self.stop = threading.Event()
        self.body = bytearray()
        self.head = None
        self.error = None

    def run(self):
        try:
            r = self.c.read_response(read_body=False)
            self.head = r
            eq((r.status, r.header("Content-Length")),
               (200, str(self.size)), "head")
            self.body += self.c.reader.buf
            self.c.reader.buf.clear()
            t0 = time.monotonic()
            while not self.stop.is_set():
                d = self.c.sock.recv(4096)
                if not d:
                    raise AssertionError("EOF after %d bytes"
                                         % len(self.body))
                self.body += d
                ahead = len(self.body) / self.rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        except Exception as ex:  # reported by the test thread
            self.error = ex

    def finish(self):
        """Read the rest as fast as possible, until the end or EOF."""
        self.c.settimeout(30)
        while len(self.body) < self.size:
            d = self.c.sock.recv(1 << 20)
            if not d:
                break
            self.body += d
        return bytes(self.body)


def raw_request(port, data, timeout=5.0, host="127.0.0.1",
                close_after=None):
    """Send <data>, then read until the peer closes or <timeout> s pass.
    If <close_after> is given, reading stops as soon as that many responses
    are complete (parsed as GET).  Returns a RawResult."""
    res = RawResult()
    t0 = time.monotonic()
    s = socket.create_connection((host, port), timeout)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the edge may answer and close before reading everything
        buf = bytearray()
        deadline = t0 + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                d = s.recv(BLOCK)
            except socket.timeout:
                break
            except ConnectionResetError:
                res.closed = res.reset = True
                break
            if not d:
                res.closed = True
                break
            buf += d
            if close_after is not None:
                try:
                    if len(parse_responses(bytes(buf))) >= close_after:
                        break
                except ResponseError:
                    pass
        res.data = bytes(buf)
    finally:
        s.close()
    res.elapsed = time.monotonic() - t0
    return res


def connection_refused(port, host="127.0.0.1", timeout=1.0):
    """True if a TCP connect to <port> is refused (nothing listens)."""
    try:
        s = socket.create_connection((host, port), timeout)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    s.close()
    return False


# ---------------------------------------------------------------- runner

def _on_alarm(signum, frame):
    raise TestTimeout("test time limit reached")


def main(default_timeout=60, needs_edged=True):
    """Run the calling module's test_* functions; exit with TAP status."""
    global _failed
    mod = sys.modules["__main__"]
    tests = [(n, f) for n, f in vars(mod).items()
             if n.startswith("test_") and callable(f)
             and getattr(f, "__module__", None) == mod.__name__]
    tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
    if len(sys.argv) > 1:
        want = set(sys.argv[1:])
        unknown = want - {n for n, _ in tests}
        if unknown:
            sys.stderr.write("unknown tests: %s\n" % " ".join(sorted(unknown)))
            sys.exit(2)
        tests = [t for t in tests if t[0] in want]
    name = os.path.basename(getattr(mod, "__file__", "test"))
    if needs_edged and not os.access(EDGED, os.X_OK):
        print("1..0 # SKIP %s: edged not found at %s (set EDGED)"
              % (name, EDGED))
        sys.exit(77)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    print("1..%d" % len(tests))
    sys.stdout.flush()
    failed = skipped = 0
    for i, (tname, fn) in enumerate(tests, 1):
        t0 = time.monotonic()
        limit = getattr(fn, "edgetest_timeout", default_timeout)
        signal.alarm(limit)
        try:
            fn()
            signal.alarm(0)
            print("ok %d - %s # %.2f s" % (i, tname, time.monotonic() - t0))
        except Skip as e:
            signal.alarm(0)
            skipped += 1
            print("ok %d - %s # SKIP %s" % (i, tname, e))
        except BaseException as e:
            signal.alarm(0)
            if isinstance(e, KeyboardInterrupt):
                raise
            failed += 1
            _failed = True
            print("not ok %d - %s # %.2f s" % (i, tname,
                                                time.monotonic() - t0))
            for line in traceback.format_exc().rstrip().splitlines():
                print("#   " + line)
        sys.stdout.flush()
    print("# %s: %d passed, %d failed, %d skipped"
          % (name, len(tests) - failed - skipped, failed, skipped))
    sys.stdout.flush()
    if failed:
        sys.exit(1)
    if tests and skipped == len(tests):
        sys.exit(77)
    sys.exit(0)
