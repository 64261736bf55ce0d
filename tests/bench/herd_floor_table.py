#!/usr/bin/env python3
"""The table of tests/bench/herd_floor.sh's output: per herd label, the medians
of total_ms, of the first response and of the span from the first to the last
response (the client reading), over the herds that got 200 answers."""
import json
import statistics as st
import sys

rows = {}
for path in sys.argv[1:]:
    for line in open(path):
        label, _, js = line.partition(" ")
        try:
            r = json.loads(js)
        except ValueError:
            continue
        if r.get("ok") == r.get("n"):
            rows.setdefault(label, []).append(r)
print("| herd | n | total ms: median (min-max) | first response ms | first to last response ms |")
print("|---|---|---|---|---|")
for label, rs in rows.items():
    tot = [r["total_ms"] for r in rs]
    first = [r["first_resp_ms"] for r in rs]
    span = [r["last_resp_ms"] - r["first_resp_ms"] for r in rs]
    print(f"| {label} | {len(rs)} | {st.median(tot):.1f} ({min(tot)}-{max(tot)}) "
          f"| {st.median(first):.1f} | {st.median(span):.1f} |")
