#!/usr/bin/env python3
"""Does MSG_ZEROCOPY avoid the copy on this path?  One 100 KiB send over a
loopback TCP connection with SO_ZEROCOPY, then its completion read from the
error queue: code 1 (SO_EE_CODE_ZEROCOPY_COPIED) means the kernel copied
the bytes after all, as it does whenever the receiver is local.

    python3 tests/bench/zerocopy_probe.py
"""
import socket
import struct
import sys
import time

SO_ZEROCOPY = 60
MSG_ZEROCOPY = 0x4000000
SO_EE_ORIGIN_ZEROCOPY = 5
SIZE = 102400


def main():
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    c = socket.create_connection(lst.getsockname(), timeout=5)
    s, _ = lst.accept()
    c.setsockopt(socket.SOL_SOCKET, SO_ZEROCOPY, 1)
    n = c.send(bytes(SIZE), MSG_ZEROCOPY)
    got = 0
    while got < n:
        got += len(s.recv(1 << 20))
    for _ in range(100):
        try:
            _, anc, _, _ = c.recvmsg(0, 1024, socket.MSG_ERRQUEUE |
                                     socket.MSG_DONTWAIT)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        for _, _, d in anc:
            _, origin, _, code, _, first, last = struct.unpack("IBBBBII",
                                                               d[:16])
            if origin == SO_EE_ORIGIN_ZEROCOPY:
                print("sent %d bytes with MSG_ZEROCOPY (sends %d-%d): %s"
                      % (n, first, last, "the kernel copied them" if code & 1
                         else "no copy"))
                return 0
    print("no completion on the error queue")
    return 1


if __name__ == "__main__":
    sys.exit(main())
