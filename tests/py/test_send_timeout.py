#!/usr/bin/env python3
"""Story: a client that stops reading is closed after `send_timeout`,
whichever request of its keep-alive connection it stops on.

The send timeout counts the time the socket stays full with nothing
taken by the client.  A client that reads its first answer and then
stops reading a large second one (or a second one after a request with a
body) must not hold its connection, its output buffer and a fill's
reader forever: edged closes it after `send_timeout`, as it does on a
first request.
"""

import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import edgetest as et  # noqa: E402

BIG = 32 << 20
TIMEOUT_S = 1


def closed_within(sock, seconds):
    """True when edged closes the connection within <seconds>: read
    nothing until then, then drain and look for the end."""
    time.sleep(seconds)
    sock.settimeout(5)
    try:
        while True:
            data = sock.recv(1 << 20)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def stalled_after(e, first):
    s = socket.create_connection(("127.0.0.1", e.port))
    s.sendall(first)
    buf = b""
    s.settimeout(5)
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += s.recv(4096)
    et.eq(len(body), length, "the first answer, whole")
    s.sendall(b"GET /obj/stall?size=%d&ttl=300 HTTP/1.1\r\n"
              b"Host: localhost\r\n\r\n" % BIG)
    return s


def closed_when_stalled_after(first, what):
    with et.Origin() as o, \
            et.Edge(o.url, "--send-timeout", "%ds" % TIMEOUT_S) as e:
        et.eq(len(e.request("GET", "/obj/stall?size=%d&ttl=300"
                            % BIG).body), BIG, "warm")
        s = stalled_after(e, first)
        et.ok(closed_within(s, TIMEOUT_S + 3),
              "closed after the send timeout " + what)
        s.close()


@et.timeout(60)
def test_stalled_second_response_is_closed():
    closed_when_stalled_after(
        b"GET /obj/small?size=2&ttl=300 HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "on the second response")


@et.timeout(60)
def test_stalled_after_a_request_body_is_closed():
    closed_when_stalled_after(
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Length: 2\r\n\r\nok",
        "following a request body")


if __name__ == "__main__":
    et.main(globals())
