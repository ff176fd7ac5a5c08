#!/usr/bin/env python3
"""pgbench's output and per-transaction logs (-l) as one JSON line, in the
shape of bench.lua's: requests, rps, p50/p90/p99 latency in ms.

    pgbench_json.py PGBENCH_STDOUT LOGFILE...
"""
import json
import os
import re
import sys

out = open(sys.argv[1]).read()
lat = []
# BENCH_STEADY_FROM (epoch seconds): also count the transactions that ended
# from then on, and pass BENCH_STEADY_PG (PostgreSQL CPU s in that window)
steady_from = os.environ.get("BENCH_STEADY_FROM")
steady_from = float(steady_from) if steady_from else None
steady_tx, steady_end = 0, 0.0
for name in sys.argv[2:]:
    with open(name) as f:
        for line in f:
            p = line.split()
            # client_id transaction_no time script_no time_epoch time_us
            if len(p) >= 6 and p[2].isdigit():
                lat.append(int(p[2]) / 1000.0)
                end = int(p[4]) + int(p[5]) / 1e6
                if steady_from is not None and end >= steady_from:
                    steady_tx += 1
                    steady_end = max(steady_end, end)
lat.sort()


def pct(q):
    if not lat:
        return 0.0
    return lat[min(len(lat) - 1, int(q / 100.0 * (len(lat) - 1) + 0.5))]


m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
failed = re.search(r"number of failed transactions: (\d+)", out)
dur = re.search(r"duration: (\d+) s", out)
# -r: average latency of each statement
stmt = {}
body = out.split("statement latencies", 1)
if len(body) == 2:
    for line in body[1].splitlines()[1:]:
        mm = re.match(r"^\s+([0-9.]+)\s+(?:\d+\s+)?(.*)$", line)
        if not mm:
            continue
        for fn in ("chat_begin", "chat_record", "chat_release"):
            if "callhq." + fn in mm.group(2):
                stmt[fn + "_avg_ms"] = float(mm.group(1))
        # every SQL statement in script order (floor C: read, write)
        if not mm.group(2).lstrip().startswith("\\"):
            stmt.setdefault("stmt_avg_ms", []).append(float(mm.group(1)))

print(json.dumps({
    **stmt,
    "requests": len(lat),
    "duration_s": float(dur.group(1)) if dur else 0,
    "rps": float(m.group(1)) if m else 0.0,
    "p50_ms": round(pct(50), 3), "p90_ms": round(pct(90), 3),
    "p99_ms": round(pct(99), 3),
    "mean_ms": round(sum(lat) / len(lat), 3) if lat else 0,
    "errors": int(failed.group(1)) if failed else 0,
    **({"steady_tx": steady_tx,
        "steady_s": round(max(steady_end - steady_from, 0.0), 3),
        "steady_pg_cpu_s": float(os.environ.get("BENCH_STEADY_PG") or 0)}
       if steady_from is not None else {}),
}))
