#!/usr/bin/env python3
"""A herd like the shared harness's herd.py, with the client's own times.

  herd_timed.py HOST PORT PATH [N=200] [TIMEOUT_S=30]

Opens N connections to a loopback server, then writes N requests for PATH
(Connection: close) at once and reads every response (Content-Length).  One
JSON line: ok (2xx count), total_ms (first write to last response, as
herd.py), last_write_ms (when the client had written every request),
first_resp_ms and last_resp_ms (the first and last response read whole).
The span from the first to the last response is the client's own reading
when the server wrote them all at once (tests/bench/herd_ideal.c).
"""
import asyncio
import json
import sys
import time


async def one(host, port, path, go, timeout, res):
    r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    req = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
           "User-Agent: herd\r\nConnection: close\r\n\r\n").encode()
    res["open"] += 1
    await go.wait()
    try:
        w.write(req)
        await w.drain()
        res["writes"].append(time.monotonic())
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        clen = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                clen = int(line.split(b":", 1)[1])
        await asyncio.wait_for(r.readexactly(clen), timeout)
        res["reads"].append(time.monotonic())
        res["ok"] += 200 <= status < 300
    except (asyncio.TimeoutError, OSError, ValueError,
            asyncio.IncompleteReadError) as e:
        res["errors"].append(type(e).__name__)
    finally:
        w.close()


async def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 30.0
    if not host.startswith("127."):
        sys.exit("herd_timed.py: loopback targets only")
    res = {"open": 0, "ok": 0, "writes": [], "reads": [], "errors": []}
    go = asyncio.Event()
    tasks = [asyncio.create_task(one(host, port, path, go, timeout, res))
             for _ in range(n)]
    for _ in range(200):  # at most 10 s for every connection to open
        if res["open"] >= n:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)
    t0 = time.monotonic()
    go.set()
    await asyncio.wait_for(
        asyncio.gather(*tasks, return_exceptions=True), timeout + 5)
    t1 = time.monotonic()

    def ms(t):
        return round((t - t0) * 1000, 1)
    print("JSON " + json.dumps({
        "n": n, "ok": res["ok"], "total_ms": ms(t1),
        "last_write_ms": ms(max(res["writes"])) if res["writes"] else None,
        "first_resp_ms": ms(min(res["reads"])) if res["reads"] else None,
        "last_resp_ms": ms(max(res["reads"])) if res["reads"] else None,
        "errors": sorted(set(res["errors"]))[:5]}))


if __name__ == "__main__":
    asyncio.run(main())
