"""Config checks that tell the truth.

An operator runs `edged -t` before a restart and trusts its answer: what
start-up would refuse, -t refuses too, each error at the file:line:col of
the value at fault.  And a second edged started by mistake on the port of
a running one is refused rather than quietly sharing its listener through
SO_REUSEPORT.
"""

import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402


def edged(*args):
    return subprocess.run([et.EDGED] + [str(a) for a in args], timeout=20,
                          capture_output=True, text=True)


def test_t_refuses_what_start_refuses():
    d = et.mktemp("confcheck")
    conf = os.path.join(d, "edged.conf")
    with open(conf, "w") as f:
        f.write("listen no-such-host.invalid:8080\n"
                "origin http://127.0.0.1:9\n"
                "cache_dir %s/missing/cache\n"
                "purge_listen 127.0.0.1:8090\n"
                "purge_token_file %s/no-tokens\n"
                "user no-such-user-edged\n" % (d, d))
    want = [
        "%s:6:6: error: user: no-such-user-edged: no such user" % conf,
        "%s:1:8: error: listen: no-such-host.invalid:8080: " % conf,
        "%s:3:11: error: cache_dir: %s/missing/cache: its parent "
        "%s/missing does not exist" % (conf, d, d),
        "%s:5:18: error: purge_token_file: %s/no-tokens: " % (conf, d),
    ]
    for args in (["-t", "-c", conf], ["-c", conf]):
        out = edged(*args)
        et.eq(out.returncode, 2, "%s: exit status (%s)" % (args, out.stderr))
        lines = out.stderr.splitlines()
        et.eq(len(lines), len(want), "%s: one line per error: %s"
              % (args, out.stderr))
        for l, w in zip(lines, want):
            et.ok(l.startswith(w), "%s: %r starts with %r" % (args, l, w))
    # The same file with every fault mended passes.
    os.mkdir(os.path.join(d, "missing"))
    with open(os.path.join(d, "no-tokens"), "w") as f:
        f.write("t0ken-for-the-check\n")
    out = edged("-t", "-c", conf, "--listen", "127.0.0.1:8080", "--user",
                "")
    et.eq((out.returncode, out.stderr.strip()),
          (0, "edged: configuration %s is ok" % conf), "mended")


def test_errors_after_a_syntax_error():
    d = et.mktemp("confcheck")
    conf = os.path.join(d, "edged.conf")
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:8080\n"
                "origin \"http://127.0.0.1:9\n"
                "admin_listen 127.0.0.1:8081\n"
                "admin_allow 10.0.0.300\n"
                "listen 127.0.0.1:8080\n")
    out = edged("-t", "-c", conf)
    et.eq(out.returncode, 2, "refused")
    et.eq(out.stderr,
          "%s:2:8: error: origin: unterminated quoted value\n"
          "%s:5:8: error: listen: 127.0.0.1:8080 given twice\n"
          "%s:4:13: error: admin_allow: \"10.0.0.300\": not an IPv4 or IPv6 "
          "address (write ADDRESS[/PREFIX] or loopback)\n"
          % (conf, conf, conf), "every error, each at its place")


def test_second_edged_on_a_held_port():
    with et.Origin() as o, et.Edge(o.url) as e:
        d = et.mktemp("confcheck")
        second = subprocess.run(
            [et.EDGED, "--listen", "127.0.0.1:%d" % e.port, "--origin",
             o.url, "--ready-file", os.path.join(d, "ready")],
            timeout=20, capture_output=True, text=True)
        et.eq(second.returncode, 1, "the second edged is refused (%s)"
              % second.stderr)
        et.ok("127.0.0.1:%d: not free" % e.port in second.stderr,
              "and says why: %s" % second.stderr)
        et.ok(not os.path.exists(os.path.join(d, "ready")), "never ready")
        et.eq(e.request("GET", "/obj/a?size=10").status, 200,
              "the first one still serves")


if __name__ == "__main__":
    et.main()
