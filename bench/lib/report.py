#!/usr/bin/env python3
"""The markdown report of bench/run.sh.

    report.py RESULTS.jsonl MACHINE.json TMPDIR MISSED_FILE > report.md

RESULTS.jsonl holds one object per measured run (see measure() in run.sh);
TMPDIR the RSS samples of the long run (rss-long-w<N>.txt). The names of
missed targets are written to MISSED_FILE, one a line, for the profiler.
"""
import json
import re
import statistics
import sys
from collections import OrderedDict

results_file, machine_file, tmp, missed_file = sys.argv[1:5]
runs = [json.loads(line) for line in open(results_file) if line.strip()]
m = json.load(open(machine_file))

groups = OrderedDict()
for r in runs:
    groups.setdefault((r["workers"], r["name"]), []).append(r)


def med(v):
    return statistics.median(v) if v else None


def errors(r):
    return sum(v for k, v in r.items()
               if k.startswith("err_") or k in ("bad_status", "no_delta", "errors"))


def summary(rs):
    """Aggregates of one scenario's repeats."""
    ok = [r for r in rs if r.get("requests")]
    if not ok:
        return None
    lat50 = "first_p50_ms" if ok[0]["kind"] == "sse" else "p50_ms"
    lat99 = "first_p99_ms" if ok[0]["kind"] == "sse" else "p99_ms"
    s = {
        "kind": ok[0]["kind"], "conc": ok[0]["conc"], "n": len(ok),
        "rps": [r["rps"] for r in ok],
        "p50": [r[lat50] for r in ok],
        "p99": [r[lat99] for r in ok],
        "cpu": [1000.0 * r["worker_cpu_s"] / r["requests"] for r in ok],
        "pg": [1000.0 * r["pg_cpu_s"] / r["requests"] for r in ok],
        "rss0": sum(ok[0]["rss_before"]), "rss1": sum(ok[-1]["rss_after"]),
        "errors": sum(errors(r) for r in rs),
        "requests": sum(r["requests"] for r in ok),
        "bytes": med([r.get("bytes", 0) / r["requests"] for r in ok]),
        "other": med([100.0 * r.get("other_cpu_s", 0) / (r["wall_s"] * int(m["nproc"]))
                      for r in ok if r.get("wall_s")]),
        "gen": med([1000.0 * r.get("loadgen_cpu_s", 0) / r["requests"] for r in ok]),
    }
    if s["kind"] == "sse":
        s["total50"] = [r["total_p50_ms"] for r in ok]
        s["total99"] = [r["total_p99_ms"] for r in ok]
    sent = [r["sent"] for r in ok if r.get("sent") and r["sent"].get("chats")]
    if sent:
        s["sent_avg"] = med([float(x["avg_len"]) for x in sent])
        s["sent_min"] = min(x["min_len"] for x in sent)
        s["sent_max"] = max(x["max_len"] for x in sent)
    for k in ("rps", "p50", "p99", "cpu", "pg", "total50", "total99"):
        if k in s:
            s[k + "_med"] = med(s[k])
    return s


def rng(v, fmt="%.1f"):
    """median (min–max) over repeats"""
    if not v:
        return "–"
    if len(v) == 1:
        return fmt % v[0]
    return (fmt + " (" + fmt + "–" + fmt + ")") % (med(v), min(v), max(v))


def f(x, fmt="%.2f"):
    return "–" if x is None else fmt % x


def ratio(a, b, fmt="%.2f×"):
    if a is None or b is None or b == 0:
        return "–"
    return fmt % (a / b)


def get(workers, name):
    rs = groups.get((workers, name))
    return summary(rs) if rs else None


def sent_text(s, hist):
    if hist is None:
        return "–"
    if "sent_avg" not in s:
        return str(hist)
    if s["sent_min"] == s["sent_max"]:
        return "%d" % s["sent_min"]
    return "%.1f (%d–%d)" % (s["sent_avg"], s["sent_min"], s["sent_max"])


out = []
w = out.append

w("# ngx_http_callhq_module benchmark, %s on %s" % (m["date"], m["host"]))
w("")
w("| machine | |")
w("|---|---|")
w("| CPU | %s, %s logical CPUs (nproc) |" % (m["cpu"], m["nproc"]))
w("| RAM | %s |" % m["ram"])
w("| kernel | %s |" % m["kernel"])
w("| nginx | %s |" % m["nginx"])
w("| PostgreSQL | %s (fsync=off, synchronous_commit=off, as scripts/pg.sh runs it) |" % m["postgres"])
w("| load generators | %s (1 thread), pgbench of PostgreSQL %s, bench/lib/sse_bench.c |"
  % (m["wrk"], (re.findall(r"\d+\.\d+", m["postgres"]) or ["?"])[0]))
w("| module | %s, %s |" % (m["module"], m.get("module_so", "")))
w("| run | %s s × %s repeats per scenario (after %s s warm-up), %s connections, worker_processes %s%s |"
  % (m["duration"], m["repeats"], m["warmup"], m["conc"], m["workers"],
     ", **BENCH_QUICK smoke run**" if m["quick"] else ""))
w("")
w("Everything (load generator, nginx, canned model, PostgreSQL) shares the "
  "same %s CPUs, so throughput is bounded by the sum of their CPU; the "
  "per-request CPU columns are the fairer comparison." % m["nproc"])
w("")

# --------------------------------------------------------------- floor B
w("## Floor B: the database alone (pgbench, the module's SQL for one chat)")
w("")
w("`callhq.chat_begin` then `callhq.chat_record`, prepared, %s clients, "
  "each on its own random sessions (bench/lib/floor_b.sql)." % m["conc"])
w("")
w("| clients | history (sent) | chats/s | p50 ms | p99 ms | chat_begin avg ms | chat_record avg ms "
  "| PostgreSQL CPU s/1k chats | pgbench CPU s/1k | other load % | errors |")
w("|---|---|---|---|---|---|---|---|---|---|---|")
for name in [k[1] for k in groups if k[0] == 0]:
    s = get(0, name)
    if not s:
        continue
    rs = groups[(0, name)]
    hist = int(name.split()[2][1:])
    w("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
        s["conc"], sent_text(s, hist), rng(s["rps"]), rng(s["p50"], "%.2f"),
        rng(s["p99"], "%.2f"),
        f(med([r.get("chat_begin_avg_ms") for r in rs if r.get("chat_begin_avg_ms")]), "%.3f"),
        f(med([r.get("chat_record_avg_ms") for r in rs if r.get("chat_record_avg_ms")]), "%.3f"),
        f(s["pg_med"]), f(s["gen"]), f(s["other"], "%.0f"), s["errors"]))
w("")

# --------------------------------------------------------------- per workers
workers = sorted({k[0] for k in groups if k[0] != 0})
targets = []
missed = set()

for wk in workers:
    w("## worker_processes %d" % wk)
    w("")
    w("req/s, p50 and p99 as median (min–max) over repeats. CPU columns: "
      "seconds per 1000 requests, nginx workers (utime+stime from "
      "/proc/PID/stat) and all of PostgreSQL. RSS: sum over the workers, "
      "before the first repeat → after the last. ×A: module ÷ floor A "
      "(plain proxy_pass, same history), ×B: module ÷ floor B (pgbench, same history). "
      "Other load: CPU used by processes that are not part of the benchmark, "
      "in % of the machine (this host may be shared).")
    w("")
    w("| scenario | history sent | req/s | p50 ms | p99 ms | worker CPU s/1k | PG CPU s/1k "
      "| worker RSS MB | resp. bytes | other load % | errors | req/s ×A | CPU ×A | req/s ×B | PG CPU ×B |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    names = [k[1] for k in groups if k[0] == wk and k[1] != "module long h20"]
    for name in names:
        s = get(wk, name)
        if not s:
            w("| %s | no result | | | | | | | | | | | | | |" % name)
            continue
        hist = None
        fa = fb = None
        parts = name.split()
        for p in parts:
            if p.startswith("h") and p[1:].isdigit():
                hist = int(p[1:])
        if name.startswith("module chat") or name.startswith("module stream"):
            fa = get(wk, name.replace("module", "floorA"))
            fb = get(0, "floorB chat h%d%s" % (hist, " c1" if name.endswith(" c1") else ""))
        if name.startswith("floorA"):
            sent = "%d (in the body)" % hist
        else:
            sent = sent_text(s, hist) if name.startswith("module chat") or \
                name.startswith("module stream") else (str(hist) if hist else "–")
        w("| %s%s | %s | %s | %s | %s | %s | %s | %.1f → %.1f | %s | %s | %d | %s | %s | %s | %s |" % (
            name, " (c=%d)" % s["conc"] if s["conc"] != int(m["conc"]) else "",
            sent, rng(s["rps"]), rng(s["p50"], "%.2f"), rng(s["p99"], "%.2f"),
            f(s["cpu_med"], "%.3f"), f(s["pg_med"]),
            s["rss0"] / 1024.0, s["rss1"] / 1024.0, f(s["bytes"], "%.0f"),
            f(s["other"], "%.0f"), s["errors"],
            ratio(s["rps_med"], fa and fa["rps_med"], "%.3f×"),
            ratio(s["cpu_med"], fa and fa["cpu_med"]),
            ratio(s["rps_med"], fb and fb["rps_med"]),
            ratio(s["pg_med"], fb and fb["pg_med"])))
    w("")

    # streaming detail
    rows = []
    for name in ("floorA stream h20", "module stream h20",
                 "floorA stream h20 c1", "module stream h20 c1"):
        s = get(wk, name)
        if s:
            rows.append((name, s))
    if rows:
        w("Streaming, time to the first delta and to the end of the response (ms):")
        w("")
        w("| scenario | conc | first delta p50 | first delta p99 | total p50 | total p99 |")
        w("|---|---|---|---|---|---|")
        for name, s in rows:
            w("| %s | %d | %s | %s | %s | %s |" % (
                name, s["conc"], rng(s["p50"], "%.3f"), rng(s["p99"], "%.3f"),
                rng(s["total50"], "%.3f"), rng(s["total99"], "%.3f")))
        w("")

    # targets
    def target(what, value, ok, key):
        targets.append((wk, what, value, ok))
        if ok is False:
            missed.add(key)

    mc, fb = get(wk, "module chat h20"), get(0, "floorB chat h20")
    if mc and fb:
        r = mc["rps_med"] / fb["rps_med"]
        target("chat req/s ≥ 0.8 × floor B (20 messages)",
               "%.0f vs %.0f chats/s = %.2f×" % (mc["rps_med"], fb["rps_med"], r),
               r >= 0.8, "rps_vs_floorB")
    fa = get(wk, "floorA chat h20")
    if mc and fa:
        r = mc["cpu_med"] / fa["cpu_med"] if fa["cpu_med"] else float("inf")
        target("worker CPU per chat ≤ 1.5 × per plain-proxy request (20 messages)",
               "%.3f vs %.3f ms = %.1f×" % (mc["cpu_med"], fa["cpu_med"], r),
               r <= 1.5, "cpu_vs_floorA")
    h10, h1000 = get(wk, "module chat h10"), get(wk, "module chat h1000")
    if h10 and h1000:
        r = h1000["p50_med"] / h10["p50_med"]
        target("1000-message history p50 ≤ 3 × 10-message p50",
               "%.2f vs %.2f ms = %.2f× (p99 %.2f×)" % (
                   h1000["p50_med"], h10["p50_med"], r,
                   h1000["p99_med"] / h10["p99_med"]),
               r <= 3, "h1000_latency")
    for sfx, label in (("", "at %s connections" % m["conc"]), (" c1", "at 1 connection")):
        ms, fs = get(wk, "module stream h20" + sfx), get(wk, "floorA stream h20" + sfx)
        if ms and fs:
            d = ms["p50_med"] - fs["p50_med"]
            fb1 = groups.get((0, "floorB chat h20" + sfx)) or []
            begin = med([r["chat_begin_avg_ms"] for r in fb1 if r.get("chat_begin_avg_ms")])
            target("streaming first delta p50 ≤ plain proxy + 1 ms (%s)" % label,
                   "%.3f vs %.3f ms: +%.3f ms%s" % (
                       ms["p50_med"], fs["p50_med"], d,
                       "; chat_begin alone (pgbench, %s): %.3f ms avg" % (
                           "1 client" if sfx else "%s clients" % m["conc"], begin)
                       if begin else ""),
                   d <= 1.0, "stream_first_delta" + sfx.replace(" ", "_"))
    lr = groups.get((wk, "module long h20"))
    if lr and lr[0].get("requests"):
        r = lr[0]
        b, a = r["rss_before"], r["rss_after"]
        worst = max(abs(x1 - x0) / x0 for x0, x1 in zip(b, a)) if b else 0
        samples = []
        try:
            for line in open("%s/rss-long-w%d.txt" % (tmp, wk)):
                p = line.split()
                if len(p) > 1:
                    samples.append([int(x) for x in p[1:]])
        except OSError:
            pass
        spread = ""
        if samples:
            n = len(samples)
            picks = sorted({0, n // 4, n // 2, (3 * n) // 4, n - 1})
            spread = "; sampled each second, at 0/25/50/75/100% of the run: " + "; ".join(
                "worker %d: %s MB" % (i + 1, " → ".join("%.1f" % (samples[k][i] / 1024.0)
                                                          for k in picks))
                for i in range(len(samples[0])))
        # A leak grows with the chats served; a worker that gets more of
        # the run's connections than of the warm-up's steps up once, at the
        # start. Flat is judged from a tenth of the way in, both shown.
        later = ""
        if len(samples) >= 10:
            s0, s1 = samples[len(samples) // 10], samples[-1]
            worst = max(abs(x1 - x0) / x0 for x0, x1 in zip(s0, s1) if x0)
            later = "; from 10%% of the run to its end: worst %+.1f%%" % (
                100.0 * max(((x1 - x0) / x0 for x0, x1 in zip(s0, s1) if x0),
                            key=abs))
        parts = r.get("parts", 1)
        target("worker RSS flat (±5%%) over a long run (%d chats%s)" % (
                   r["requests"],
                   ", %d wrk runs back to back" % parts if parts > 1 else ""),
               "per worker %s → %s MB, worst %+.1f%%%s%s" % (
                   "/".join("%.1f" % (x / 1024.0) for x in b),
                   "/".join("%.1f" % (x / 1024.0) for x in a),
                   100.0 * max(((x1 - x0) / x0 for x0, x1 in zip(b, a)), key=abs) if b else 0,
                   later, spread),
               worst <= 0.05, "rss")

if any(k[1] == "module long h20" for k in groups):
    w("## Long run")
    w("")
    for (wk, name), rs in groups.items():
        if name != "module long h20":
            continue
        s = summary(rs)
        if not s:
            continue
        w("worker_processes %d: %d chats in %.0f s (%s chats/s, p50 %s ms, p99 %s ms, "
          "%d errors), histories sent %s messages." % (
              wk, s["requests"], rs[0]["duration_s"], rng(s["rps"]),
              rng(s["p50"], "%.2f"), rng(s["p99"], "%.2f"), s["errors"],
              sent_text(s, 20)))
    w("")

w("## Targets")
w("")
w("| workers | target | measured | |")
w("|---|---|---|---|")
for wk, what, value, ok in targets:
    w("| %d | %s | %s | %s |" % (wk, what, value, "PASS" if ok else "**MISS**"))
w("")

w("## How this was measured")
w("")
w("- `make bench` (bench/run.sh). A throwaway PostgreSQL (scripts/pg.sh) "
  "seeded with an org, one assistant and sessions of 10, 20, 100 and 1000 "
  "messages (about 100 bytes of content each); the model is a second "
  "nginx (1 worker) answering a canned completion or a canned SSE stream "
  "with `return 200`, reached through `proxy_pass` with upstream keepalive "
  "and `proxy_buffering off` by both nginx under test.")
w("- Floor A: nginx without the module, `proxy_pass` to the canned model; "
  "the client sends the upstream body the module would build itself "
  "(system prompt, the whole history, the input), as a client of a plain "
  "proxy has to.")
w("- Module: `POST /chat {sessionId, input}`; the module reads the session, "
  "assistant and history (callhq.chat_begin), calls the model through its "
  "subrequest, records the turn (callhq.chat_record) and answers the Chat, "
  "whose `messages` repeat the whole context (hence the response sizes).")
w("- Each chat appends two messages: chats rotate over thousands of seeded "
  "sessions (never two at once on one session), and the database is trimmed "
  "back to the seed (bench.trim()) and vacuumed before every repeat. "
  "\"history sent\" is the mean (min–max) history length that chats really "
  "sent, computed from the turns appended.")
w("- Latency: wrk's percentiles (bench/lib/bench.lua); streaming: "
  "bench/lib/sse_bench.c, time to the first `data:` line and to the end of "
  "the response; floor B: pgbench's per-transaction log.")
w("- CPU: utime+stime of the nginx workers (and of all PostgreSQL "
  "processes, reaped backends included) before and after each run, divided "
  "by the requests wrk completed; clock-tick resolution (10 ms). Floor B's "
  "PostgreSQL CPU includes pgbench's 16 new backends (fork, first plan and "
  "PL/pgSQL compile), the module's pooled connections are warm; floor B "
  "also builds the client body in SQL (bench.sid, to_jsonb).")
w("- Throughput and latency targets compare whole-machine runs: on a small "
  "machine the load generator, nginx and the canned model take CPU from "
  "PostgreSQL, which is the bottleneck of every chat scenario. Look at the "
  "other-load column before trusting a difference between two rows.")
w("")

open(missed_file, "w").write("".join(k + "\n" for k in sorted(missed)))
print("\n".join(out))
