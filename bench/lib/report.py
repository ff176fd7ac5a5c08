#!/usr/bin/env python3
"""The markdown report of bench/run.sh.

    report.py RESULTS.jsonl MACHINE.json TMPDIR MISSED_FILE > report.md

RESULTS.jsonl holds one object per measured run (see measure() in run.sh);
TMPDIR the RSS samples of the long run (rss-long-w<N>.txt: a time, then
"VmRSS,RssAnon,RssShmem" kB per worker, or VmRSS alone in older runs) and
the size of the workers' shared mappings (shm-long-w<N>.txt). The names of
missed targets are written to MISSED_FILE, one a line, for the profiler.
"""
import glob
import json
import os
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
        # private (RssAnon); runs before it was sampled have none
        "anon0": sum(ok[0]["rss_anon_before"]) if "rss_anon_before" in ok[0] else None,
        "anon1": sum(ok[-1]["rss_anon_after"]) if "rss_anon_after" in ok[-1] else None,
        "errors": sum(errors(r) for r in rs),
        "requests": sum(r["requests"] for r in ok),
        "bytes": med([r.get("bytes", 0) / r["requests"] for r in ok]),
        "other": med([100.0 * r.get("other_cpu_s", 0) / (r["wall_s"] * int(m["nproc"]))
                      for r in ok if r.get("wall_s")]),
        "gen": med([1000.0 * r.get("loadgen_cpu_s", 0) / r["requests"] for r in ok]),
        "blks": med([(r["pg_blks_hit"] + r["pg_blks_read"]) / r["requests"]
                     for r in ok if "pg_blks_hit" in r]),
    }
    if s["kind"] == "sse":
        s["total50"] = [r["total_p50_ms"] for r in ok]
        s["total99"] = [r["total_p99_ms"] for r in ok]
    sent = [r["sent"] for r in ok if r.get("sent") and r["sent"].get("chats")]
    if sent:
        s["sent_avg"] = med([float(x["avg_len"]) for x in sent])
        s["sent_min"] = min(x["min_len"] for x in sent)
        s["sent_max"] = max(x["max_len"] for x in sent)
    # pgbench runs of floor C: PostgreSQL CPU once every client is connected
    st = [1000.0 * r["steady_pg_cpu_s"] / r["steady_tx"] for r in ok if r.get("steady_tx")]
    if st:
        s["pgs"] = st
    for k in ("rps", "p50", "p99", "cpu", "pg", "pgs", "total50", "total99"):
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
if m.get("before"):
    w("| before | %s, built in a git worktree, its own database migrated by that commit's sql/ |"
      % m["before"])
w("| run | %s s × %s repeats per scenario (after %s s warm-up), %s connections, worker_processes %s, callhq_postgres_pool_size %s, callhq_history_cache %s%s%s |"
  % (m["duration"], m["repeats"], m["warmup"], m["conc"], m["workers"],
     m.get("pool") or "of each module's default (BENCH_POOL unset)",
     m.get("history_cache") or "32m (the default)",
     ", the module's http also has `%s` (BENCH_MODULE_HTTP)" % m["module_http"]
     if m.get("module_http") else "",
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
for name in [k[1] for k in groups if k[0] == 0 and k[1].startswith("floorB")]:
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

# --------------------------------------------------------------- floor C
fc_names = [k[1] for k in groups if k[0] == 0 and k[1].startswith("floorC")]
if fc_names:
    w("## Floor C: a plain chat service's SQL (pgbench, the obvious schema)")
    w("")
    w("Database `naive` (bench/lib/floor_c_schema.sql): sessions(id, seq, "
      "expires_at, assistant_id), assistants(model, prompt), messages(session_id, "
      "seq, role, content), chats(session_id, input, output, tokens), seeded "
      "with as many 20-message sessions as the module's 20-message scenario, the "
      "same message texts. One transaction of pgbench = the two statements of one "
      "chat on a random session of the client's own slice, prepared, each in its "
      "own transaction: the session (open), its assistant and its history "
      "(json_agg in seq order); then one CTE appending the user message and the "
      "reply, bumping sessions.seq and inserting the chat (bench/lib/floor_c.sql).")
    w("")
    w("PostgreSQL CPU of the whole run includes forking and warming up one "
      "backend per client (as floor B's does); \"steady\" counts it from when "
      "every client is connected, over the transactions that ended after: the "
      "module's pooled connections are warm, so the ratios below use it.")
    w("")
    w("| clients | history (sent) | tx/s | p50 ms | p99 ms | read avg ms | write avg ms "
      "| PostgreSQL CPU s/1k tx | steady | pgbench CPU s/1k | other load % | errors |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in fc_names:
        s = get(0, name)
        if not s:
            continue
        rs = groups[(0, name)]
        st = [r.get("stmt_avg_ms") or [] for r in rs]
        w("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
            s["conc"], sent_text(s, 20), rng(s["rps"]), rng(s["p50"], "%.2f"),
            rng(s["p99"], "%.2f"),
            f(med([x[0] for x in st if len(x) > 0]), "%.3f"),
            f(med([x[1] for x in st if len(x) > 1]), "%.3f"),
            f(s["pg_med"]), rng(s.get("pgs"), "%.2f"), f(s["gen"]),
            f(s["other"], "%.0f"), s["errors"]))
    w("")


def pg_c(s):
    """floor C's PostgreSQL CPU per transaction, steady when measured"""
    return s.get("pgs_med", s["pg_med"])


def conc_of(name):
    """the c<N> of a scenario's name, None for the main concurrency"""
    mm = re.search(r" c(\d+)$", name)
    return int(mm.group(1)) if mm else None


# --------------------------------------------------------------- per workers
workers = sorted({k[0] for k in groups if k[0] != 0})
targets = []
missed = set()

for wk in workers:
    w("## worker_processes %d" % wk)
    w("")
    w("req/s, p50 and p99 as median (min–max) over repeats. CPU columns: "
      "seconds per 1000 requests, nginx workers (utime+stime from "
      "/proc/PID/stat) and all of PostgreSQL. RSS: sum over the workers "
      "(VmRSS), before the first repeat → after the last; private: the part "
      "of it that is the workers' own (RssAnon), the rest being shared zones' "
      "pages and mapped files. ×A: module ÷ floor A "
      "(plain proxy_pass, same history), ×B: module ÷ floor B (pgbench, same history). "
      "Other load: CPU used by processes that are not part of the benchmark, "
      "in % of the machine (this host may be shared).")
    w("")
    w("| scenario | history sent | req/s | p50 ms | p99 ms | worker CPU s/1k | PG CPU s/1k "
      "| worker RSS MB | private MB | resp. bytes | other load % | errors "
      "| req/s ×A | CPU ×A | req/s ×B | PG CPU ×B |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    names = [k[1] for k in groups if k[0] == wk and k[1] != "module long h20"]
    for name in names:
        s = get(wk, name)
        if not s:
            w("| %s | no result | | | | | | | | | | | | | | |" % name)
            continue
        hist = None
        fa = fb = None
        parts = name.split()
        for p in parts:
            if p.startswith("h") and p[1:].isdigit():
                hist = int(p[1:])
        if (name.startswith("module chat") or name.startswith("module stream")) \
                and conc_of(name) in (None, 1):
            fa = get(wk, name.replace("module", "floorA"))
            fb = get(0, "floorB chat h%d%s" % (hist, " c1" if name.endswith(" c1") else ""))
        if name.startswith("floorA"):
            sent = "%d (in the body)" % hist
        elif "contention" in name:
            sent = "%d (of a growing history)" % hist
        else:
            sent = sent_text(s, hist) if re.match(r"(module|nocache|before|onenode|twonode) (chat|stream)", name) \
                else (str(hist) if hist else "–")
        w("| %s%s | %s | %s | %s | %s | %s | %s | %.1f → %.1f | %s | %s | %s | %d | %s | %s | %s | %s |" % (
            name, " (c=%d)" % s["conc"] if s["conc"] != int(m["conc"]) else "",
            sent, rng(s["rps"]), rng(s["p50"], "%.2f"), rng(s["p99"], "%.2f"),
            f(s["cpu_med"], "%.3f"), f(s["pg_med"]),
            s["rss0"] / 1024.0, s["rss1"] / 1024.0,
            "%.1f → %.1f" % (s["anon0"] / 1024.0, s["anon1"] / 1024.0)
            if s["anon0"] is not None and s["anon1"] is not None else "–",
            f(s["bytes"], "%.0f"),
            f(s["other"], "%.0f"), s["errors"],
            ratio(s["rps_med"], fa and fa["rps_med"], "%.3f×"),
            ratio(s["cpu_med"], fa and fa["cpu_med"]),
            ratio(s["rps_med"], fb and fb["rps_med"]),
            ratio(s["pg_med"], fb and fb["pg_med"])))
    w("")

    # streaming detail
    rows = []
    for name in ("floorA stream h20", "module stream h20", "before stream h20",
                 "floorA stream h20 c1", "module stream h20 c1", "before stream h20 c1"):
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

    # the module against floor C, at each concurrency both have
    rows = []
    for name in [k[1] for k in groups if k[0] == 0 and k[1].startswith("floorC")]:
        c = conc_of(name)
        mc = get(wk, "module chat h20" + (" c%d" % c if c else ""))
        fc = get(0, name)
        if mc and fc:
            rows.append((fc["conc"], mc, fc))
    if rows:
        w("The module against floor C (a plain chat service's two statements), "
          "20 messages: chats/s ÷ floor C tx/s (target ≥ 1.3 at 32 and 64), "
          "PostgreSQL CPU per chat ÷ per floor C transaction (target ≤ 0.6):")
        w("")
        w("| connections | module chats/s | floor C tx/s | ×C | module PG CPU ms/chat "
          "| floor C PG CPU ms/tx (steady) | ×C | module p50 / p99 ms | floor C p50 / p99 ms |")
        w("|---|---|---|---|---|---|---|---|---|")
        for c, mc, fc in rows:
            w("| %d | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s |" % (
                c, f(mc["rps_med"], "%.0f"), f(fc["rps_med"], "%.0f"),
                ratio(mc["rps_med"], fc["rps_med"]), f(mc["pg_med"], "%.3f"),
                f(pg_c(fc), "%.3f"), ratio(mc["pg_med"], pg_c(fc)),
                f(mc["p50_med"]), f(mc["p99_med"]), f(fc["p50_med"]), f(fc["p99_med"])))
        w("")

    # revisit: the history cache on vs off
    rows = []
    for name in [k[1] for k in groups if k[0] == wk and k[1].startswith("module chat h20 revisit")]:
        on, off = get(wk, name), get(wk, "nocache" + name[len("module"):])
        if on and off:
            rows.append((on, off, get(wk, "before" + name[len("module"):])))
    if rows:
        w("History cache: on vs off (ratio), the revisit scenarios: chats going "
          "round a ring of %s sessions per connection (20 messages seeded), so "
          "that a session's next chat finds its history in the cache, bar the "
          "first of each repeat (the trim moves every session's version back). "
          "Off: the same module with `callhq_history_cache off;`. Shared blocks: "
          "hit + read per chat by all of its statements (pg_stat_statements). "
          "Medians over repeats; ratio on ÷ off:"
          % m.get("revisit", 25))
        w("")
        w("| connections | history sent (on / off) | req/s on | req/s off | on/off "
          "| p50 ms on / off | p99 ms on / off | PG CPU ms/chat on | off | on/off "
          "| shared blocks/chat on | off | on/off | before req/s, PG CPU ms/chat |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for on, off, b in rows:
            w("| %d | %s / %s | %s | %s | %s | %s / %s | %s / %s | %s | %s | %s | %s | %s | %s | %s |" % (
                on["conc"], sent_text(on, 20), sent_text(off, 20),
                f(on["rps_med"], "%.0f"), f(off["rps_med"], "%.0f"),
                ratio(on["rps_med"], off["rps_med"]),
                f(on["p50_med"]), f(off["p50_med"]), f(on["p99_med"]), f(off["p99_med"]),
                f(on["pg_med"], "%.3f"), f(off["pg_med"], "%.3f"),
                ratio(on["pg_med"], off["pg_med"]),
                f(on["blks"], "%.1f"), f(off["blks"], "%.1f"), ratio(on["blks"], off["blks"]),
                "%s, %s" % (f(b["rps_med"], "%.0f"), f(b["pg_med"], "%.3f")) if b else "–"))
        w("")

    # two nodes against one, the same chats on the same sessions
    one, two = get(wk, "onenode chat h20"), get(wk, "twonode chat h20")
    if one and two:
        w("Two nodes: two nginx with the module (separate prefixes, "
          "worker_processes %d each, one PostgreSQL) against one. The same "
          "%s connections (wrk, 2 threads half a ring of %s × %s 20-message "
          "sessions apart) chat with the same sessions: \"one node\" sends "
          "both threads to one nginx, \"two nodes\" each thread to its own "
          "node, so that a session's turns alternate between the nodes and "
          "each node's history cache is a turn behind. Worker CPU is both "
          "nodes' together. **All of it shares %s CPUs: this measures the "
          "cost of crossing nodes, not scaling** (a second node adds no "
          "CPU here; on its own machine it would). Medians, ratio two ÷ one:"
          % (wk, m["conc"], m["conc"], m.get("revisit") or 25, m["nproc"]))
        w("")
        w("| | req/s | p50 ms | p99 ms | worker CPU ms/chat | PG CPU ms/chat "
          "| shared blocks/chat | errors |")
        w("|---|---|---|---|---|---|---|---|")
        for label, s in (("one node", one), ("two nodes", two)):
            w("| %s | %s | %s | %s | %s | %s | %s | %d |" % (
                label, f(s["rps_med"], "%.0f"), f(s["p50_med"]), f(s["p99_med"]),
                f(s["cpu_med"], "%.3f"), f(s["pg_med"], "%.3f"),
                f(s["blks"], "%.1f"), s["errors"]))
        w("| two ÷ one | %s | %s | %s | %s | %s | %s | |" % (
            ratio(two["rps_med"], one["rps_med"]), ratio(two["p50_med"], one["p50_med"]),
            ratio(two["p99_med"], one["p99_med"]), ratio(two["cpu_med"], one["cpu_med"]),
            ratio(two["pg_med"], one["pg_med"]), ratio(two["blks"], one["blks"])))
        w("")

    # before/after
    rows = []
    for name in [k[1] for k in groups if k[0] == wk and k[1].startswith("before ")]:
        b, a = get(wk, name), get(wk, "module" + name[len("before"):])
        if a and b:
            rows.append((name[len("before "):], a, b))
    if rows:
        w("Before/after: the module of %s against this build, in the same run "
          "(after ÷ before; latencies of streams are the first delta's):"
          % m.get("before", "BENCH_BEFORE").split(" (")[0])
        w("")
        w("| scenario | conc | before req/s | after req/s | after/before "
          "| before p50 / p99 ms | after p50 / p99 ms | before PG CPU ms/req | after PG CPU ms/req "
          "| after/before | before / after non-2xx or errors |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        for name, a, b in rows:
            w("| %s | %d | %s | %s | %s | %s / %s | %s / %s | %s | %s | %s | %d / %d |" % (
                name, a["conc"], f(b["rps_med"], "%.0f"), f(a["rps_med"], "%.0f"),
                ratio(a["rps_med"], b["rps_med"]),
                f(b["p50_med"], "%.3f"), f(b["p99_med"], "%.3f"),
                f(a["p50_med"], "%.3f"), f(a["p99_med"], "%.3f"),
                f(b["pg_med"], "%.3f"), f(a["pg_med"], "%.3f"),
                ratio(a["pg_med"], b["pg_med"]), b["errors"], a["errors"]))
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
        target("1000-message history p50 ≤ 2 × 10-message p50",
               "%.2f vs %.2f ms = %.2f× (p99 %.2f×)" % (
                   h1000["p50_med"], h10["p50_med"], r,
                   h1000["p99_med"] / h10["p99_med"]),
               r <= 2, "h1000_latency")
    for sfx, label in (("", "at %s connections" % m["conc"]), (" c1", "at 1 connection")):
        ms, fs = get(wk, "module stream h20" + sfx), get(wk, "floorA stream h20" + sfx)
        if ms and fs:
            d = ms["p50_med"] - fs["p50_med"]
            fb1 = groups.get((0, "floorB chat h20" + sfx)) or []
            begin = med([r["chat_begin_avg_ms"] for r in fb1 if r.get("chat_begin_avg_ms")])
            # issue 13: +1 ms at 1 connection, +2 ms at 16 (a saturated
            # database adds its queue to the take)
            limit = 1.0 if sfx else 2.0
            target("streaming first delta p50 ≤ plain proxy + %.0f ms (%s)" % (limit, label),
                   "%.3f vs %.3f ms: +%.3f ms%s" % (
                       ms["p50_med"], fs["p50_med"], d,
                       "; chat_begin alone (pgbench, %s): %.3f ms avg" % (
                           "1 client" if sfx else "%s clients" % m["conc"], begin)
                       if begin else ""),
                   d <= limit, "stream_first_delta" + sfx.replace(" ", "_"))
    for c in [conc_of(k[1]) for k in groups
              if k[0] == 0 and k[1].startswith("floorC") and conc_of(k[1])]:
        mc, fc = get(wk, "module chat h20 c%d" % c), get(0, "floorC chat h20 c%d" % c)
        if mc and fc:
            r = mc["rps_med"] / fc["rps_med"]
            target("chat req/s ≥ 1.3 × floor C at %d connections (20 messages)" % c,
                   "%.0f vs %.0f = %.2f×" % (mc["rps_med"], fc["rps_med"], r),
                   r >= 1.3, "rps_vs_floorC")
            r = mc["pg_med"] / pg_c(fc) if pg_c(fc) else float("inf")
            target("PostgreSQL CPU per chat ≤ 0.6 × floor C's per transaction at %d "
                   "connections" % c,
                   "%.3f vs %.3f ms (steady) = %.2f×" % (mc["pg_med"], pg_c(fc), r),
                   r <= 0.6, "pg_vs_floorC")
    a, b = get(wk, "module chat h20"), get(wk, "before chat h20")
    if a and b:
        r = a["rps_med"] / b["rps_med"]
        target("chat req/s after ≥ 2.5 × before (%s, 20 messages, %s connections)"
               % (m.get("before", "").split(" (")[0], m["conc"]),
               "%.0f vs %.0f chats/s = %.2f×" % (a["rps_med"], b["rps_med"], r),
               r >= 2.5, "after_before")
    lr = groups.get((wk, "module long h20"))
    if lr and lr[0].get("requests"):
        r = lr[0]
        # A leak is in the workers' private memory (RssAnon); the pages of
        # the shared zones they touch (RssShmem) grow as the zones fill, up
        # to the zones' sizes. Runs that sampled VmRSS alone are judged on it.
        private = "rss_anon_before" in r
        k = 1 if private else 0
        b, a = ((r["rss_anon_before"], r["rss_anon_after"]) if private
                else (r["rss_before"], r["rss_after"]))
        samples = []       # each second, per worker [VmRSS, RssAnon, RssShmem] or [VmRSS]
        try:
            for line in open("%s/rss-long-w%d.txt" % (tmp, wk)):
                p = line.split()
                if len(p) > 1:
                    samples.append([[int(y) for y in x.split(",")] for x in p[1:]])
        except OSError:
            pass
        if samples and len(samples[0][0]) <= k:
            samples = []
        shm_size = []
        try:
            shm_size = [int(x) for x in open("%s/shm-long-w%d.txt" % (tmp, wk)).read().split()]
        except (OSError, ValueError):
            pass

        def mb(v):
            return "/".join("%.1f" % (x / 1024.0) for x in v)

        def change(v0, v1):
            d = [(x1 - x0) / x0 for x0, x1 in zip(v0, v1) if x0]
            return max(d, key=abs) if d else 0.0
        worst = abs(change(b, a))
        spread = ""
        if samples:
            n = len(samples)
            picks = sorted({0, n // 4, n // 2, (3 * n) // 4, n - 1})

            def walk(i, j):
                return " → ".join("%.1f" % (samples[t][i][j] / 1024.0) for t in picks)
            spread = "; sampled each second, at 0/25/50/75/100%% of the run: %s" % "; ".join(
                ("worker %d: private %s, shared %s MB" % (i + 1, walk(i, 1), walk(i, 2))
                 if private else "worker %d: %s MB" % (i + 1, walk(i, 0)))
                for i in range(len(samples[0])))
        # A leak grows with the chats served; a worker that gets more of
        # the run's connections than of the warm-up's steps up once, at the
        # start. Flat is judged from a tenth of the way in, both shown.
        later = ""
        if len(samples) >= 10:
            s0 = [x[k] for x in samples[len(samples) // 10]]
            s1 = [x[k] for x in samples[-1]]
            worst = abs(change(s0, s1))
            later = "; from 10%% of the run to its end: worst %+.1f%%" % (100.0 * change(s0, s1))
        parts = r.get("parts", 1)
        runs = "%d chats%s" % (r["requests"], ", %d wrk runs back to back" % parts if parts > 1 else "")
        if private:
            target("worker private memory (RssAnon) flat (±5%%) over a long run (%s)" % runs,
                   "private per worker %s → %s MB, worst %+.1f%%%s; shared (RssShmem, "
                   "bounded by the shared zones' sizes%s) %s → %s MB; VmRSS %s → %s MB%s" % (
                       mb(b), mb(a), 100.0 * change(b, a), later,
                       ": %s MB mapped per worker" % mb(shm_size) if shm_size else "",
                       mb(r["rss_shmem_before"]), mb(r["rss_shmem_after"]),
                       mb(r["rss_before"]), mb(r["rss_after"]), spread),
                   worst <= 0.05, "rss")
        else:
            target("worker RSS flat (±5%%) over a long run (%s)" % runs,
                   "per worker %s → %s MB, worst %+.1f%%%s%s" % (
                       mb(b), mb(a), 100.0 * change(b, a), later, spread),
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

parts = sorted(glob.glob(os.path.join(tmp, "pgstats-*.md")))
if parts:
    w("## Database profile")
    w("")
    w("PostgreSQL ran with pg_stat_statements (track = all) and track_functions "
      "= all in every scenario; the counters were reset before the last repeat "
      "of each scenario below and read right after it (functions: once the "
      "backends had reported them).")
    w("")
    for part in parts:
        out.extend(open(part).read().rstrip("\n").split("\n"))
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
w("- Floor C: pgbench of the two statements a plain chat service would run "
  "for one chat, on the obvious schema (database `naive`, "
  "bench/lib/floor_c_schema.sql and floor_c.sql), at the module's "
  "concurrency and at %s clients; the module's 20-message chats run at those "
  "connections too, for the ratios." % (m.get("high_conc") or "no more"))
w("- Contention: %s connections of wrk post chats to ONE session; each chat "
  "waits for the previous one's turn (callhq_turn_timeout 120s, so no 409: "
  "non-2xx answers are counted as errors). The location sends the last 20 "
  "messages as context (callhq_context_messages 20) while the history grows."
  % m.get("contention", 4))
if any(k[1].startswith("module chat h20 revisit") for k in groups):
    w("- Revisit: wrk (1 thread) goes round the first %s × *connections* "
      "20-message sessions in turn, so the chats in flight are on distinct "
      "sessions and each session comes back after %s × *connections* chats, "
      "a few turns per repeat (its history grows by two messages a turn: "
      "\"history sent\"). It runs on the last worker_processes only, with "
      "the module (history cache on, as configured by default), a second "
      "nginx with the same module and `callhq_history_cache off;` in its "
      "http block (\"nocache\"), and the module of BENCH_BEFORE."
      % (m.get("revisit", 25), m.get("revisit", 25)))
if any(k[1] == "twonode chat h20" for k in groups):
    w("- Two nodes: a second nginx with the module (its own prefix and "
      "port, the same configuration and database) beside the first; wrk "
      "runs 2 threads (bench/lib/bench.lua, `BENCH_NODES`), each on its own "
      "half of the connections, starting half a ring apart on one ring of "
      "20-message sessions, on one node, then one thread per node. Worker "
      "CPU sums both nodes' workers. Both nodes, PostgreSQL and wrk share "
      "the machine's CPUs, so on a small machine the ratio is the cost of "
      "crossing nodes (history read again, two pools), not a speed-up.")
if m.get("before"):
    w("- Before: the module of %s, built from a git worktree of that commit "
      "(`make`), on its own database (callhq_before) migrated by that commit's "
      "sql/migrate.sh and seeded by the same bench/lib/seed.sql (20-message "
      "sessions only); its scenarios run right after the module's, on the "
      "same nginx configuration." % m["before"].split(",")[0])
w("- Latency: wrk's percentiles (bench/lib/bench.lua); streaming: "
  "bench/lib/sse_bench.c, time to the first `data:` line and to the end of "
  "the response; floor B: pgbench's per-transaction log.")
w("- CPU: utime+stime of the nginx workers (and of all PostgreSQL "
  "processes, reaped backends included) before and after each run, divided "
  "by the requests wrk completed; clock-tick resolution (10 ms). Floor B's "
  "PostgreSQL CPU includes pgbench's 16 new backends (fork, first plan and "
  "PL/pgSQL compile), the module's pooled connections are warm; floor B "
  "also builds the client body in SQL (bench.sid, to_jsonb).")
w("- RSS: VmRSS, RssAnon and RssShmem of each worker from /proc/PID/status "
  "(RssFile is the rest: nginx, the module and libraries), before and "
  "after each run and each second of the long run. The tables show VmRSS "
  "and its private part (RssAnon). VmRSS also counts the pages of the "
  "shared zones (the history cache, `callhq_history_cache`, 32 MB by "
  "default; the metrics) a worker has touched, which grow as the zones "
  "fill, up to their sizes, so the long run's flat target is judged on "
  "RssAnon per worker, where a leak shows; RssShmem is shown beside it "
  "with the size of the workers' shared mappings (/proc/PID/smaps).")
w("- Throughput and latency targets compare whole-machine runs: on a small "
  "machine the load generator, nginx and the canned model take CPU from "
  "PostgreSQL, which is the bottleneck of every chat scenario. Look at the "
  "other-load column before trusting a difference between two rows.")
w("")

open(missed_file, "w").write("".join(k + "\n" for k in sorted(missed)))
print("\n".join(out))
