#!/usr/bin/env python3
"""Reads an `strace -f -ttt` of edged during herds (tests/bench/herd_strace.sh)
and prints, per herd, in ms from the first client request read (readv or recvfrom):
  connect   the origin connect(), if the fetch opened a connection
  send      the origin request's sendto()
  before    client requests read before that send (both workers)
  head      the origin's response head read (recvfrom)
  fanout    from that head to the last response written (writev)
"""
import re
import sys

events = []
pending = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\d+)\s+(\d+\.\d+) (.*)", line.rstrip())
    if not m:
        continue
    pid, t, rest = m.group(1), float(m.group(2)), m.group(3)
    if rest.endswith("<unfinished ...>"):
        pending[pid] = (t, rest[: -len("<unfinished ...>")])
        continue
    resumed = re.match(r"<\.\.\. \w+ resumed>(.*)", rest)
    if resumed:
        if pid not in pending:
            continue
        t, head = pending.pop(pid)
        rest = head + resumed.group(1)
    call = re.match(r"(\w+)\((\d+), (.*)", rest)
    if call:
        events.append((t, call.group(1), call.group(3)))
events.sort()

herds, cur = [], None
for t, call, args in events:
    # A client's request: read with readv or recv (recvfrom in the trace).
    if call in ("readv", "recvfrom") and '"GET /obj/herd-' in args:
        if cur is None or ("last_write" in cur and t - cur["first"] > 0.3):
            cur = {"first": t, "before": 0}
            herds.append(cur)
        if "send" not in cur:
            cur["before"] += 1
    if cur is None:
        continue
    if call == "connect" and "sin_port" in args and "connect" not in cur:
        cur["connect"] = t
    elif call == "sendto" and '"GET /obj/herd-' in args and "send" not in cur:
        cur["send"] = t
    elif call == "recvfrom" and '"HTTP/1.1' in args and "head" not in cur:
        cur["head"] = t
    elif call == "writev" and '"HTTP/1.1' in args:
        cur["last_write"] = t

for h in herds:
    def ms(k, base="first"):
        return f"{(h[k] - h[base]) * 1000:.2f}" if k in h and base in h else "-"
    print(f"connect {ms('connect')} send {ms('send')} before {h['before']} "
          f"head {ms('head')} fanout {ms('last_write', 'head')}")
