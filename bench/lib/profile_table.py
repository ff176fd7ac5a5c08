#!/usr/bin/env python3
"""A profile of one nginx worker as markdown tables (bench/run.sh).

    profile_table.py callgrind|perf PROFILE_FILE NAME SSE_BENCH_JSON

Top functions by self cost and by inclusive cost, per request.
"""
import json
import re
import subprocess
import sys

tool, path, name, res = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
ok = max(res.get("requests", 0), 1)
failed = res.get("bad_status", 0) + res.get("errors", 0) + res.get("no_delta", 0)


def run(args):
    return subprocess.run(args, capture_output=True, text=True).stdout


def clean(fn):
    fn = re.sub(r"^\?\?\?:", "", fn.strip())
    fn = re.sub(r"^\S*/([^/\s]+:)", r"\1", fn)      # source paths: file name only
    fn = re.sub(r"\[/\S*/([^/\]]+)\]", r"[\1]", fn)  # object paths: file name only
    return fn[:120]


tables = []
if tool == "callgrind":
    total = 0
    for line in open(path):
        if line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
    unit = "Ir"
    head = ("%s requests (%d failed): %s instructions per request (callgrind Ir)."
            % (res.get("requests", 0), failed, "{:,}".format(total // ok)))
    for incl in ("no", "yes"):
        rows = []
        for l in run(["callgrind_annotate", "--inclusive=" + incl,
                      "--threshold=99", path]).splitlines():
            m = re.match(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(.*)$", l)
            if m and ":" in m.group(2) and "PROGRAM TOTALS" not in l:
                rows.append((int(m.group(1).replace(",", "")), clean(m.group(2))))
        rows.sort(key=lambda r: -r[0])
        tables.append((incl == "yes", rows, total))
else:
    report = run(["perf", "report", "-i", path, "--stdio", "--no-children",
                  "--sort", "dso,symbol", "-g", "none"])
    m = re.search(r"Event count \(approx\.\): (\d+)", report)
    total = int(m.group(1)) if m else 0
    unit = "events"
    head = ("%s requests (%d failed): %s events per request (perf)."
            % (res.get("requests", 0), failed, "{:,}".format(total // ok)))
    for children in (False, True):
        if children:
            report = run(["perf", "report", "-i", path, "--stdio", "--children",
                          "--sort", "dso,symbol", "-g", "none"])
        rows = []
        for l in report.splitlines():
            m = re.match(r"^\s*([\d.]+)%\s+(?:[\d.]+%\s+)?(\S+)\s+\[(.)\]\s+(.*?)(\s+-\s+-)?\s*$", l)
            if m:
                dso = m.group(2)
                if dso.startswith("["):
                    dso = "kernel" if "kernel" in dso else dso.strip("[]")
                rows.append((float(m.group(1)) / 100.0 * total,
                             "%s [%s]" % (m.group(4), dso)))
        rows.sort(key=lambda r: -r[0])
        tables.append((children, rows, total))

print("**%s**: %s" % (name, head))
print()
for inclusive, rows, total in tables:
    print("%s:" % ("By inclusive cost (the function and all it calls)" if inclusive
                   else "By self cost"))
    print()
    print("| %s/request | %% | function |" % unit)
    print("|---|---|---|")
    for cost, fn in rows[:30 if inclusive else 22]:
        print("| %s | %.1f | `%s` |" % ("{:,}".format(int(cost // ok)),
                                        100.0 * cost / max(total, 1), fn))
    print()
