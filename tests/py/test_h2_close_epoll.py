"""Story: an HTTP/2 connection leaves epoll before its socket is closed.

The worker's loop applies epoll changes (its changelist) at its next wait,
so a connection closed in the same turn as its events were stopped made
libevent delete a descriptor that was already closed: an EPOLL_CTL_DEL
failing with EBADF per connection.  Clients on h2c and on TLS (ALPN h2)
each make a request and close; strace, attached to edged, must see no
EPOLL_CTL_DEL fail while every connection is answered and freed (skipped
without strace or the right to trace).
"""
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import h2raw  # noqa: E402

h2raw.need_h2()
import edgetest as et  # noqa: E402

CONNS = 20


@et.timeout(120)
def test_closed_connections_leave_epoll_first():
    h2c, aport, tport = et.free_port(), et.free_port(), et.free_port()
    extra = ["--listen-h2c", "127.0.0.1:%d" % h2c,
             "--admin-listen", "127.0.0.1:%d" % aport]
    tls = et.self_signed(et.mktemp("cert"))
    if tls is not None:
        extra += ["--listen-tls", "127.0.0.1:%d" % tport,
                  "--tls-cert", tls[0], "--tls-key", tls[1]]
    with et.Origin() as o, et.Edge(o.url, *extra, threads=1) as e:
        with et.strace(e, "epoll_ctl,close") as log:
            for i in range(CONNS):
                with h2raw.Conn(h2c) as c:
                    r = c.response(c.request("/obj/c%d?size=100" % i))
                    et.eq(r.status, 200, "h2c status")
                if tls is None:
                    continue
                with h2raw.Conn(tport, tls=h2raw.tls_context()) as c:
                    r = c.response(c.request("/obj/t%d?size=100" % i))
                    et.eq(r.status, 200, "h2 over TLS status")
            # Every connection seen closed by edged, then a turn or two.
            et.wait_for(lambda: et._read_file(log).count("close(") >=
                        CONNS * (2 if tls else 1), what="closes traced")
            time.sleep(0.5)
        trace = et._read_file(log)
        bad = [ln for ln in trace.splitlines()
               if "EPOLL_CTL_DEL" in ln and "EBADF" in ln]
        et.eq(len(bad), 0, "EPOLL_CTL_DEL of a closed socket (%s)"
              % (bad[:3],))
        et.ok(trace.count("EPOLL_CTL_DEL") > 0, "the deletes were traced")


if __name__ == "__main__":
    et.main()
