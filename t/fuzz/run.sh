#!/usr/bin/env bash
# A bounded fuzzing campaign: each fuzzer given, one after the other (one
# process at a time), for FUZZ_SECONDS seconds, or FUZZ_RUNS executions
# when that is set.  Usage (see t/fuzz/README):
#   FUZZ_SECONDS=60 t/fuzz/run.sh build/fuzz/fuzz_scan build/fuzz/fuzz_jansson
#   FUZZ_RUNS=10000000 nice -n 19 t/fuzz/run.sh build/fuzz/fuzz_sse
# FUZZ_TIMEOUT (10 s) is libFuzzer's -timeout, in wall-clock time: on a
# loaded machine a niced fuzzer can be starved past it on any input.
# Each starts from its seeds (t/fuzz/corpus-<x> and <x>.dict for fuzz_<x>
# when they exist, else t/fuzz/corpus and json.dict) plus its own working
# corpus in build/fuzz/ (kept between runs; new inputs go there, never
# into t/fuzz/).  A
# crash, leak, timeout or sanitizer report stops the campaign: the input
# is in build/fuzz/<fuzzer>-crash-* (or -leak-, -timeout-, ...), and the
# exit status is non-zero.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
seconds="${FUZZ_SECONDS:-60}"

[ $# -gt 0 ] || { echo "usage: $0 fuzzer..." >&2; exit 2; }

for f in "$@"; do
    name="$(basename "$f")"
    dir="$(dirname "$f")"
    work="$dir/corpus-$name"
    log="$dir/$name.log"
    mkdir -p "$work"

    seeds="$here/corpus-${name#fuzz_}"
    dict="$here/${name#fuzz_}.dict"
    [ -d "$seeds" ] || seeds="$here/corpus"
    [ -f "$dict" ] || dict="$here/json.dict"

    # 8192 bytes hold the deep-nesting seeds (513 levels and more) and a
    # query string of nginx's default 8k header buffer; a model stream
    # of 256 bytes holds an event or two (feeding it a byte a time costs its
    # square)
    max_len=8192
    [ "$name" = fuzz_sse ] && max_len=256

    if [ -n "${FUZZ_RUNS:-}" ]; then
        limit="-runs=$FUZZ_RUNS"
        echo "fuzz: $name for $FUZZ_RUNS executions (log: $log)"
    else
        limit="-max_total_time=$seconds"
        echo "fuzz: $name for ${seconds}s (log: $log)"
    fi

    if ! "$f" "$limit" -max_len="$max_len" -timeout="${FUZZ_TIMEOUT:-10}" \
            -rss_limit_mb=2048 -dict="$dict" \
            -artifact_prefix="$dir/$name-" -print_final_stats=1 \
            "$work" "$seeds" > "$log" 2>&1
    then
        grep -E "^fuzz_|ERROR|SUMMARY|Test unit written" "$log" >&2 || true
        echo "fuzz: $name FAILED; reproduce with: $f <the input above>" >&2
        exit 1
    fi

    grep -E "^fuzz_jansson: known|^stat::number_of_executed_units|^stat::average_exec_per_sec|^Done" "$log" \
        | sed -e "s/^fuzz_jansson: //" -e "s/^/fuzz: $name: /"
done

echo "fuzz: no crash"
