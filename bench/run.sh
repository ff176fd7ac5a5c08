#!/usr/bin/env bash
# `make bench`: ngx_http_callhq_module side by side with its two floors.
#
#   floor A  the same chats through a plain nginx proxy_pass (no module):
#            the client sends the whole upstream body (history included)
#   floor B  pgbench running the module's own SQL for one chat
#            (callhq.chat_begin, then callhq.chat_record), no nginx at all
#   module   POST /chat (10/20/100/1000 messages of history), streaming
#            POST /chat, POST /session, GET /session/{id}, GET /session
#
# Everything runs on loopback: a throwaway PostgreSQL, a canned model (a
# second nginx answering `return 200 ...`, so the model costs nothing), the
# plain proxy and nginx with the module. Results go to
# bench/results/<date>-<host>.md and are printed.
#
#   BENCH_QUICK=1        smoke run (~2 minutes): 2 s per scenario, one repeat,
#                        worker_processes 2 only, no profile
#   BENCH_DURATION=4     seconds measured per scenario and repeat
#   BENCH_REPEATS=3      repeats (min/median/max are reported)
#   BENCH_WARMUP=1       seconds of warm-up before a scenario's first repeat
#   BENCH_CONC=16        concurrent connections (wrk -c, pgbench -c)
#   BENCH_WORKERS="1 2"  nginx worker_processes to measure with
#   BENCH_LONG=100000    chats (at least) in the RSS stability run (0: skip);
#                        it runs on the last BENCH_WORKERS, on fresh workers
#                        warmed up a tenth of its time (3 s at least)
#   BENCH_PROFILE=auto   auto: profile when a target is missed; 1: always; 0: never
#   BENCH_PROFILE_REQS=1000  requests sent to the profiled worker (a tenth of
#                        that with 1000-message histories, half streaming)
#   BENCH_ONLY=regex     run only the scenarios whose names match
#   BENCH_KEEP_TMP=1     keep the temporary directory (logs, raw results)
#   BENCH_OUT=file.md    write the report there instead of bench/results/
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
lib=$top/bench/lib

quick=${BENCH_QUICK:-}
if [ -n "$quick" ] && [ "$quick" != 0 ]; then
    duration=${BENCH_DURATION:-2}
    repeats=${BENCH_REPEATS:-1}
    warmup=${BENCH_WARMUP:-1}
    long=${BENCH_LONG:-2000}
    profile_reqs=${BENCH_PROFILE_REQS:-500}
    workers_list=${BENCH_WORKERS:-2}
    profile=${BENCH_PROFILE:-0}
    counts=(2000 2000 500 100)           # sessions seeded per history length
else
    quick=""
    duration=${BENCH_DURATION:-4}
    repeats=${BENCH_REPEATS:-3}
    warmup=${BENCH_WARMUP:-1}
    long=${BENCH_LONG:-100000}
    profile_reqs=${BENCH_PROFILE_REQS:-1000}
    counts=(6000 6000 2000 300)
fi
conc=${BENCH_CONC:-16}
workers_list=${workers_list:-${BENCH_WORKERS:-"1 2"}}
profile=${profile:-${BENCH_PROFILE:-auto}}
lengths=(10 20 100 1000)                 # history lengths of POST /chat
input="How do I reset my password? I cannot find the link anywhere."
key=bench-key

module=$top/build/ngx_http_callhq_module.so
[ -f "$module" ] || { echo "bench: build the module first (make)" >&2; exit 1; }
nginx=/usr/sbin/nginx
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
pgbench=$bindir/pgbench
for tool in wrk "$pgbench" "$nginx" psql cc python3; do
    command -v "$tool" >/dev/null || {
        echo "bench: $tool is missing (scripts/deps.sh bench)" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/callhq-bench.XXXXXX)
chmod 755 "$tmp"
# a copy: a rebuild of build/ during the run must not change what is measured
module_built=$(date -u -r "$module" '+%Y-%m-%d %H:%M UTC')
cp "$module" "$tmp/ngx_http_callhq_module.so"
module=$tmp/ngx_http_callhq_module.so
results=$tmp/results.jsonl
: > "$results"
read -r pg_port canned_port proxy_port module_port < <(scripts/freeport.pl 4)
conninfo="host=127.0.0.1 port=$pg_port dbname=callhq user=callhq"
user=""
[ "$(id -u)" = 0 ] && user="user root;"
hz=$(getconf CLK_TCK)

started=$(date +%s)
log() { printf '[bench %4ds] %s\n' $(( $(date +%s) - started )) "$*" >&2; }

nginx_pids=()
sampler_pid=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null || true
    for pid in "${nginx_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${nginx_pids[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    scripts/pg.sh stop "$tmp/pg" 2>/dev/null || true
    if [ -n "${BENCH_KEEP_TMP:-}" ] || [ $rc -ne 0 ]; then
        rm -rf "$tmp/pg/data"
        echo "bench: kept $tmp (logs and raw results; the database is gone)" >&2
    else
        rm -rf "$tmp"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

q() { psql -X -q -tA -v ON_ERROR_STOP=1 "$conninfo" "$@"; }


# ---------------------------------------------------------------- processes

# $1 name, $2 worker_processes, $3 server block(s), $4 more http lines,
# $5 main context lines
write_nginx_conf() {
    local dir=$tmp/nginx-$1
    mkdir -p "$dir/conf" "$dir/logs" "$dir/tmp"
    cat > "$dir/conf/nginx.conf" <<CONF
$5
$user
daemon off;
master_process on;
worker_processes $2;
pid $dir/logs/nginx.pid;
error_log $dir/logs/error.log warn;
worker_rlimit_nofile 65536;

events { worker_connections 8192; }

http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    # bodies of long histories stay in memory, as they do in the module
    client_body_buffer_size 4m;
    client_max_body_size 0;
$4
$3
}
CONF
}

# starts nginx $1 (its master stays our child); waits for its workers
start_nginx() {
    local dir=$tmp/nginx-$1
    "$nginx" -p "$dir" -c conf/nginx.conf -t -q
    "$nginx" -p "$dir" -c conf/nginx.conf &
    nginx_pids+=($!)
    eval "master_$1=$!"
    for _ in $(seq 1 100); do
        [ -n "$(workers_of $!)" ] && break
        sleep 0.05
    done
    sleep 0.3
}

stop_nginx() {
    local pid=$1 p
    kill -QUIT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local keep=()
    for p in "${nginx_pids[@]}"; do
        [ "$p" = "$pid" ] || keep+=("$p")
    done
    nginx_pids=("${keep[@]}")
}

workers_of() { pgrep -P "$1" 2>/dev/null | sort -n | tr '\n' ' ' || true; }

# clock ticks of /proc/PID/stat: utime+stime, or with "all" also the
# reaped children's cutime+cstime; 0 for a process that is gone
ticks_of() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    awk -v all="${2:-}" '{ print $12 + $13 + (all ? $14 + $15 : 0) }' <<< "$s"
}

# utime+stime in seconds, summed over pids
cpu_of() {
    local t=0 pid
    for pid in "$@"; do
        t=$(( t + $(ticks_of "$pid") ))
    done
    awk -v t="$t" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }'
}

# RSS in kB of each pid, space separated
rss_of() {
    local pid out=""
    for pid in "$@"; do
        out="$out $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)"
    done
    echo $out
}

# CPU seconds of this shell's reaped children (the load generators): the
# caller runs `times > FILE` itself (in a subshell it would see nothing)
children_cpu() {
    tail -n 1 "$1" | awk '{
        split($1, u, "m"); split($2, s, "m");
        printf "%.2f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }'
}

# busy CPU seconds of the whole machine, all processes (ours or not)
machine_busy() {
    awk -v hz="$hz" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}

# all CPU PostgreSQL has used: the postmaster, its reaped children
# (cutime+cstime) and the live ones
pg_cpu() {
    local pm t pid
    pm=$(head -n 1 "$tmp/pg/data/postmaster.pid")
    t=$(ticks_of "$pm" all)
    for pid in $(pgrep -P "$pm"); do
        t=$(( t + $(ticks_of "$pid") ))
    done
    awk -v t="$t" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }'
}


# ---------------------------------------------------------------- database

log "PostgreSQL on 127.0.0.1:$pg_port"
scripts/pg.sh start "$tmp/pg" "$pg_port"
sql/migrate.sh "$conninfo" >/dev/null
q -v key="$key" -v msg_bytes=100 -f "$lib/seed.sql" >/dev/null
for i in "${!lengths[@]}"; do
    log "seeding ${counts[$i]} sessions of ${lengths[$i]} messages"
    q -c "select bench.seed(${lengths[$i]}, ${counts[$i]})" >/dev/null
done
q -c "vacuum analyze" >/dev/null
key_hash=$(q -c "select '\\x' || encode(sha256('$key'::bytea), 'hex')")
opts='{"defaultExpirationSeconds":86400,"contextMessages":0,"contextBytes":0,"turnLeaseSeconds":600}'

# id lists: each concurrent chat gets a session of its own
for i in "${!lengths[@]}"; do
    q -c "select bench.sid(${lengths[$i]}, n)
            from generate_series(1, ${counts[$i]}) n" > "$tmp/ids-${lengths[$i]}"
done

# floor A's bodies: byte for byte what the module sends upstream for the
# first session of each length (as chat_begin builds it)
input_json=$(q -c "select to_jsonb(\$\$$input\$\$::text)::text")
for len in "${lengths[@]}"; do
    for stream in false true; do
        tail='"stream":false}'
        [ $stream = true ] && tail='"stream":true,"stream_options":{"include_usage":true}}'
        q -c "select '{' || callhq.chat_params(a.model) || ',\"messages\":['
                     || concat_ws(',', callhq.chat_raws(a.model->'messages'),
                                  callhq.chat_history(bench.sid($len, 1), 0, 0),
                                  callhq.chat_raws(jsonb_build_array(jsonb_build_object(
                                      'role', 'user', 'content', \$\$$input\$\$::text))))
                     || '],' || '$tail'
                from callhq.assistants a, bench.conf c where a.id = c.assistant_id" \
            | tr -d '\n' > "$tmp/upstream-$len-$stream.json"
    done
done

reset_db() {
    q -c "select bench.trim()" >/dev/null
    q -c "vacuum callhq.messages, callhq.sessions, callhq.chats" >/dev/null
}


# ---------------------------------------------------------------- nginx

reply="Sure. Open Settings, choose Security, then Reset password, and follow the link we send to your email address."
chunk() { printf 'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","choices":[{"index":0,"delta":%s,"finish_reason":%s}]}\\n\\n' "$1" "$2"; }
sse="$(chunk '{"role":"assistant","content":""}' null)"
sse="$sse$(chunk '{"content":"Sure. Open Settings, "}' null)"
sse="$sse$(chunk '{"content":"choose Security, then Reset password, "}' null)"
sse="$sse$(chunk '{"content":"and follow the link we send "}' null)"
sse="$sse$(chunk '{"content":"to your email address."}' null)"
sse="$sse$(chunk '{}' '"stop"')"
sse="${sse}data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":250,\"completion_tokens\":24,\"total_tokens\":274}}\\n\\ndata: [DONE]\\n\\n"
completion="{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"$reply\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":250,\"completion_tokens\":24,\"total_tokens\":274}}"

write_nginx_conf canned 1 "
    server {
        listen 127.0.0.1:$canned_port backlog=4096;
        location = /_canned {
            default_type application/json;
            return 200 '$completion';
        }
        location = /_canned_sse {
            default_type text/event-stream;
            return 200 '$sse';
        }
    }" "" ""

# both proxies, plain and module, reach the model this way
upstream_block="
    upstream canned {
        server 127.0.0.1:$canned_port;
        keepalive 64;
        keepalive_requests 10000000;
    }"
# $1 location, $2 canned path, $3 more directives
model_location() {
    echo "
        location = $1 {
            ${3:-}
            proxy_pass http://canned$2;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_buffering off;
            proxy_read_timeout 120s;
        }"
}

write_confs() {   # $1 worker_processes
    write_nginx_conf proxy "$1" "
    server {
        listen 127.0.0.1:$proxy_port backlog=4096;
        $(model_location /v1/chat/completions /_canned)
        $(model_location /stream/v1/chat/completions /_canned_sse)
    }" "$upstream_block" ""

    write_nginx_conf module "$1" "
    callhq_postgres \"$conninfo\";
    server {
        listen 127.0.0.1:$module_port backlog=4096;
        location / {
            callhq_api;
            callhq_model_location /_model;
        }
        # the same API; its chats go to the canned event stream
        location /stream/ {
            callhq_api;
            callhq_model_location /_model_sse;
        }
        $(model_location /_model /_canned internal\;)
        $(model_location /_model_sse /_canned_sse internal\;)
    }" "$upstream_block" "load_module $module;"
}

log "canned model on 127.0.0.1:$canned_port"
start_nginx canned


# ---------------------------------------------------------------- measuring

export BENCH_AUTH="Bearer $key"

# one measured run of a load generator against nginx $master:
#   measure NAME KIND(wrk|sse|pgbench) CONC HIST REPEAT -- command...
# appends one JSON object to $results
measure() {
    local name=$1 kind=$2 c=$3 hist=$4 rep=$5 out
    shift 6
    local wpids=() cpids=()
    if [ "$kind" != pgbench ]; then
        read -r -a wpids <<< "$(workers_of "$master")"
    fi
    read -r -a cpids <<< "$(workers_of "$master_canned")"
    local cpu0 pg0 rss0 can0 gen0 busy0 cpu1 pg1 rss1 can1 gen1 busy1 t0 t1 load
    load=$(cut -d' ' -f1 /proc/loadavg)
    cpu0=$(cpu_of "${wpids[@]}"); rss0=$(rss_of "${wpids[@]}"); pg0=$(pg_cpu)
    can0=$(cpu_of "${cpids[@]}"); busy0=$(machine_busy)
    times > "$tmp/times0"
    t0=$(date +%s.%N)
    out=$("$@" 2>"$tmp/last.err" | grep '^{' | tail -n 1) || true
    t1=$(date +%s.%N)
    times > "$tmp/times1"
    busy1=$(machine_busy); can1=$(cpu_of "${cpids[@]}")
    cpu1=$(cpu_of "${wpids[@]}"); rss1=$(rss_of "${wpids[@]}"); pg1=$(pg_cpu)
    gen0=$(children_cpu "$tmp/times0"); gen1=$(children_cpu "$tmp/times1")
    if [ -z "$out" ]; then
        echo "bench: $name produced no result:" >&2
        cat "$tmp/last.err" >&2
        out='{"requests":0}'
    fi
    local sent='{}'
    if [ "$hist" != - ]; then
        sent=$(q -c "select row_to_json(s) from bench.sent($hist) s")
    fi
    python3 - "$out" "$sent" <<PY >> "$results"
import json, sys
r = json.loads(sys.argv[1])
wall = $t1 - $t0
ours = ($cpu1 - $cpu0) + ($pg1 - $pg0) + ($can1 - $can0) + ($gen1 - $gen0)
r.update(name="$name", kind="$kind", conc=$c, hist="$hist", repeat=$rep,
         workers=${cur_workers:-0}, sent=json.loads(sys.argv[2]),
         worker_cpu_s=round($cpu1 - $cpu0, 2), pg_cpu_s=round($pg1 - $pg0, 2),
         canned_cpu_s=round($can1 - $can0, 2), loadgen_cpu_s=round($gen1 - $gen0, 2),
         machine_busy_s=round($busy1 - $busy0, 2),
         other_cpu_s=round(max(0.0, ($busy1 - $busy0) - ours), 2),
         loadavg=$load,
         rss_before=[int(x) for x in "$rss0".split()],
         rss_after=[int(x) for x in "$rss1".split()],
         wall_s=round(wall, 2))
print(json.dumps(r))
PY
    log "$(python3 -c "
import json,sys; r=json.loads(open('$results').readlines()[-1])
lat = r.get('p50_ms', r.get('first_p50_ms', 0))
print('%-30s w=%s #%s: %8.1f req/s  p50 %6.2f ms  p99 %6.2f ms  cpu: worker %.2fs pg %.2fs gen %.2fs other %.2fs  errors %s' % (
  r['name'], r['workers'], r['repeat'], r.get('rps', 0), lat,
  r.get('p99_ms', r.get('first_p99_ms', 0)), r['worker_cpu_s'], r['pg_cpu_s'],
  r['loadgen_cpu_s'], r['other_cpu_s'],
  sum(v for k, v in r.items() if k.startswith('err') or k in ('bad_status', 'no_delta', 'errors'))))")"
}

wrk_cmd() {   # duration method path body ids [conc]
    wrk -t1 -c "${6:-$conc}" -d "${1}s" --timeout 10s -s "$lib/bench.lua" \
        "http://127.0.0.1:$port" -- "$2" "$3" "$4" "$5" 1
}

sse_cmd() {   # duration conc path body ids
    "$tmp/sse_bench" -p "$port" -c "$2" -d "$1" -u "$3" -b "$4" \
        ${5:+-i "$5"} -H "Authorization: Bearer $key"
}

# a scenario: warm-up, then $repeats measured runs, the database trimmed
# back to its seed before each (chats append to histories)
#   scenario NAME KIND CONC HIST TRIM runner args...
scenario() {
    local name=$1 kind=$2 c=$3 hist=$4 trim=$5 runner=$6
    shift 6
    if [ -n "${BENCH_ONLY:-}" ] && ! grep -Eq -- "$BENCH_ONLY" <<< "$name"; then
        return 0
    fi
    [ "$trim" = 1 ] && reset_db
    if [ "$warmup" != 0 ]; then
        "$runner" "$warmup" "$@" >/dev/null 2>&1 || true
    fi
    for rep in $(seq 1 "$repeats"); do
        [ "$trim" = 1 ] && reset_db
        measure "$name" "$kind" "$c" "$hist" "$rep" -- "$runner" "$duration" "$@"
    done
}

wrk_run() { local d=$1; shift; wrk_cmd "$d" "$@"; }
sse_run() { local d=$1; shift; sse_cmd "$d" "$@"; }
pgbench_run() {   # duration len [clients]
    local c=${3:-$conc}
    local per=$(( $(wc -l < "$tmp/ids-$2") / c ))
    "$pgbench" -n -M prepared -r -c "$c" -j 1 -T "$1" -f "$lib/floor_b.sql" \
        -D key="$key_hash" -D opts="$opts" -D len="$2" -D per="$per" \
        -D input="$input" -D reply="$reply" \
        -l --log-prefix="$tmp/pgbench" "$conninfo" > "$tmp/pgbench.out" 2>&1 || {
        cat "$tmp/pgbench.out" >&2; return 1; }
    python3 "$lib/pgbench_json.py" "$tmp/pgbench.out" "$tmp"/pgbench.[0-9]*
    rm -f "$tmp"/pgbench.[0-9]*
}

# wrk runs for a time, not a count: the long run goes on in parts until it
# has made its chats (a growing chats table slows it down as it goes), and
# prints one result, latencies weighted by each part's requests
long_run() {   # chats seconds method path body ids
    local want=$1 secs=$2 made=0 parts=0 line
    shift 2
    : > "$tmp/long-parts"
    while [ "$made" -lt "$want" ] && [ "$parts" -lt 5 ]; do
        line=$(wrk_cmd "$secs" "$@" | grep '^{' | tail -n 1) || true
        [ -n "$line" ] || break
        echo "$line" >> "$tmp/long-parts"
        parts=$((parts + 1))
        read -r made secs < <(python3 - "$tmp/long-parts" "$want" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
made = sum(r["requests"] for r in rs)
rate = max(rs[-1]["rps"], 1.0)
print(made, max(2, int((int(sys.argv[2]) - made) / rate * 1.1 + 1)))
PY
)
    done
    python3 - "$tmp/long-parts" <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
n = sum(r["requests"] for r in rs) or 1
out = {k: sum(r[k] for r in rs) for k in rs[0]
       if k in ("requests", "duration_s", "bytes") or k.startswith("err_")}
out["rps"] = out["requests"] / max(out["duration_s"], 1e-9)
for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms"):
    out[k] = sum(r[k] * r["requests"] for r in rs) / n
out["max_ms"] = max(r["max_ms"] for r in rs)
out["parts"] = len(rs)
print(json.dumps(out))
PY
}

cc -O2 -o "$tmp/sse_bench" "$lib/sse_bench.c"

cur_workers=0
master=""
log "floor B: pgbench, the module's SQL for one chat, $conc clients"
for len in "${lengths[@]}"; do
    scenario "floorB chat h$len" pgbench "$conc" "$len" 1 pgbench_run "$len"
done
# the database's share of a chat's first delta: chat_begin, unloaded
scenario "floorB chat h20 c1" pgbench 1 20 1 pgbench_run 20 1

for w in $workers_list; do
    cur_workers=$w
    write_confs "$w"
    start_nginx proxy
    start_nginx module
    log "worker_processes $w: plain proxy on :$proxy_port, module on :$module_port"

    port=$proxy_port master=$master_proxy
    for len in "${lengths[@]}"; do
        scenario "floorA chat h$len" wrk "$conc" - 0 wrk_run \
            POST /v1/chat/completions "@$tmp/upstream-$len-false.json" -
    done
    scenario "floorA stream h20" sse "$conc" - 0 sse_run "$conc" \
        /stream/v1/chat/completions "@$tmp/upstream-20-true.json" ""
    scenario "floorA stream h20 c1" sse 1 - 0 sse_run 1 \
        /stream/v1/chat/completions "@$tmp/upstream-20-true.json" ""

    port=$module_port master=$master_module
    for len in "${lengths[@]}"; do
        scenario "module chat h$len" wrk "$conc" "$len" 1 wrk_run \
            POST /chat "{\"sessionId\":\"%ID%\",\"input\":$input_json}" "$tmp/ids-$len"
    done
    scenario "module stream h20" sse "$conc" 20 1 sse_run "$conc" /stream/chat \
        "{\"sessionId\":\"%ID%\",\"input\":$input_json,\"stream\":true}" "$tmp/ids-20"
    scenario "module stream h20 c1" sse 1 20 1 sse_run 1 /stream/chat \
        "{\"sessionId\":\"%ID%\",\"input\":$input_json,\"stream\":true}" "$tmp/ids-20"
    reset_db
    scenario "module POST /session" wrk "$conc" - 0 wrk_run POST /session \
        "{\"assistantId\":\"$(q -c 'select assistant_id from bench.conf')\",\"name\":\"bench-new\"}" -
    reset_db
    scenario "module GET /session/{id} h100" wrk "$conc" - 0 wrk_run GET /session/%ID% - "$tmp/ids-100"
    scenario "module GET /session" wrk "$conc" - 0 wrk_run GET /session - -

    if [ "$w" = "$(echo $workers_list | awk '{print $NF}')" ] && [ "$long" -gt 0 ]; then
        # RSS over a long run of chats (20-message histories)
        rps=$(python3 -c "
import json
rs=[json.loads(l) for l in open('$results')]
v=sorted(r['rps'] for r in rs if r['name']=='module chat h20' and r['workers']==$w)
print(v[len(v)//2] if v else 500)")
        # the short runs' rate, less a sixth: the chats table grows
        secs=$(python3 -c "print(max(5, int($long / max($rps, 1.0) * 1.2 + 0.5)))")
        warm=$(( secs / 10 > 3 ? secs / 10 : 3 ))
        # fresh workers, warmed up with the same chats, so that the first
        # sample is not what earlier scenarios (1000-message bodies) left
        stop_nginx "$master_module"
        start_nginx module
        master=$master_module
        reset_db
        wrk_run "$warm" POST /chat "{\"sessionId\":\"%ID%\",\"input\":$input_json}" \
            "$tmp/ids-20" >/dev/null 2>&1 || true
        log "long run: $long chats or more (${secs}s, more if short) after a ${warm} s warm-up, sampling worker RSS"
        reset_db
        read -r -a wpids <<< "$(workers_of "$master")"
        ( while :; do
              echo "$(date +%s.%N) $(rss_of "${wpids[@]}")"
              sleep 1
          done ) > "$tmp/rss-long.txt" &
        sampler_pid=$!
        measure "module long h20" wrk "$conc" 20 1 -- long_run "$long" "$secs" \
            POST /chat "{\"sessionId\":\"%ID%\",\"input\":$input_json}" "$tmp/ids-20"
        kill "$sampler_pid" 2>/dev/null || true
        wait "$sampler_pid" 2>/dev/null || true
        sampler_pid=""
        cp "$tmp/rss-long.txt" "$tmp/rss-long-w$w.txt"
    fi

    stop_nginx "$master_proxy"
    stop_nginx "$master_module"
done
reset_db


# ---------------------------------------------------------------- report

host=$(hostname -s 2>/dev/null || hostname)
day=$(date +%Y-%m-%d)
out=${BENCH_OUT:-$top/bench/results/$day-$host.md}
mkdir -p "$(dirname "$out")"

python3 - > "$tmp/machine.json" <<PY
import json, subprocess, platform, os
def sh(c):
    p = subprocess.run(c, shell=True, capture_output=True, text=True)
    return (p.stdout + p.stderr).strip()
cpu = ""
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip(); break
mem = ""
for line in open("/proc/meminfo"):
    if line.startswith("MemTotal"):
        mem = "%.1f GiB" % (int(line.split()[1]) / 1048576); break
print(json.dumps({
  "date": sh("date -u '+%Y-%m-%d %H:%M UTC'"), "host": "$host",
  "nproc": sh("nproc") or os.cpu_count(), "ram": mem, "cpu": cpu,
  "kernel": platform.release(),
  "nginx": sh("$nginx -v 2>&1").replace("nginx version: ", ""),
  "postgres": sh("$bindir/postgres --version"),
  "wrk": sh("wrk -v 2>&1 | head -n 1").split(" Copyright")[0],
  "module_so": "build/ngx_http_callhq_module.so built $module_built, sha1 " + sh("sha1sum $module")[:12],
  "module": "commit " + sh("git -C $top rev-parse --short HEAD") + (" (dirty)" if sh("git -C $top status --porcelain -- ngx_http_callhq_module sql") else ""),
  "duration": $duration, "repeats": $repeats, "warmup": $warmup, "conc": $conc,
  "workers": "$workers_list", "long": $long, "quick": bool("$quick"),
}))
PY

python3 "$lib/report.py" "$results" "$tmp/machine.json" "$tmp" "$tmp/missed" > "$out"


# ---------------------------------------------------------------- profile
#
# Where a target is missed: the nginx side under callgrind (perf where it
# can count instructions), a fixed number of requests to one worker, and
# the database side with track_functions (self time of each SQL function).

# profile_one NAME CONF PATH BODY IDS REQUESTS: one worker of nginx-CONF
# serving REQUESTS requests (4 connections, after 200 unprofiled ones),
# under callgrind (instrumented only meanwhile) or perf record
profile_one() {
    local name=$1 conf=$2 path=$3 body=$4 ids=$5 n=$6 pid res port slug
    local send=("$tmp/sse_bench" -c 4 -a -u "$path" -b "$body" ${ids:+-i "$ids"}
                -H "Authorization: Bearer $key")
    slug=$(tr -c 'a-zA-Z0-9\n' - <<< "$name")
    log "profile ($profiler): $name, $n requests"
    port=$module_port
    [ "$conf" = proxy ] && port=$proxy_port
    if [ "$profiler" = callgrind ]; then
        # timer_resolution wakes an idle nginx, so that callgrind_control
        # is heard at once (it waits a minute for a process in epoll_wait)
        sed -i 's/^master_process on;/master_process off; timer_resolution 10ms;/' \
            "$tmp/nginx-$conf/conf/nginx.conf"
        valgrind --tool=callgrind --instr-atstart=no --dump-instr=no \
            --callgrind-out-file="$tmp/prof.$slug.out" \
            "$nginx" -p "$tmp/nginx-$conf" -c conf/nginx.conf 2>"$tmp/prof.$slug.log" &
        pid=$!
        nginx_pids+=("$pid")
        for _ in $(seq 1 300); do
            (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.1
        done
        "${send[@]}" -p "$port" -n 200 >/dev/null
        callgrind_control -i on "$pid" >/dev/null
        res=$("${send[@]}" -p "$port" -n "$n")
        callgrind_control -i off "$pid" >/dev/null
        stop_nginx "$pid"
        sed -i 's/^master_process off; timer_resolution 10ms;/master_process on;/' \
            "$tmp/nginx-$conf/conf/nginx.conf"
    else
        start_nginx "$conf"
        eval "pid=\$(workers_of \$master_$conf)"
        pid=${pid%% *}
        "${send[@]}" -p "$port" -n 200 >/dev/null
        perf record -q -e "$perf_event" -g -p "$pid" -o "$tmp/prof.$slug.out" \
            -- sleep 100000 2>"$tmp/prof.$slug.log" &
        local rec=$!
        nginx_pids+=("$rec")
        sleep 0.5
        res=$("${send[@]}" -p "$port" -n "$n")
        kill -INT "$rec"
        wait "$rec" 2>/dev/null || true
        stop_nginx "$rec"
        eval "stop_nginx \$master_$conf"
    fi
    python3 "$lib/profile_table.py" "$profiler" "$tmp/prof.$slug.out" "$name" "$res"
}

# the self time of each SQL function (track_functions) over one pgbench
# client running RUNNER (which prints bench JSON): with one client, wall
# time is close to CPU time
#   pg_profile TITLE RUNNER ARGS...
pg_profile() {
    local title=$1 res n
    shift
    log "profile (track_functions): $title"
    q -c "alter database callhq set track_functions = 'all'" >/dev/null
    reset_db
    q -c "select pg_stat_reset()" >/dev/null
    res=$("$@")
    sleep 1.5
    q -c "alter database callhq reset track_functions" >/dev/null
    n=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['requests'])" "$res")
    echo "**PostgreSQL, $title**: $n calls by one pgbench client with"
    echo "track_functions = all (self: without the functions it calls;"
    echo "SQL functions the planner inlines are not counted):"
    echo
    echo "| function | calls/request | self µs/request | total µs/request |"
    echo "|---|---|---|---|"
    q -F ' | ' -c "
        select 'callhq.' || funcname || '()',
               round(calls::numeric / $n, 2),
               round((self_time * 1000 / $n)::numeric, 1),
               round((total_time * 1000 / $n)::numeric, 1)
          from pg_stat_user_functions
         where schemaname = 'callhq'
         order by self_time desc
         limit 15" | sed 's/^/| /; s/$/ |/'
    echo
}

# GET /session as the module runs it (no query string)
pgbench_list() {   # duration
    cat > "$tmp/list.sql" <<'SQL'
select status, body from callhq.api_session_list(:key::bytea, null, '{}'::jsonb, null, :opts::jsonb);
SQL
    "$pgbench" -n -M prepared -c 1 -j 1 -T "$1" -f "$tmp/list.sql" \
        -D key="$key_hash" -D opts="$opts" -l --log-prefix="$tmp/pgbench" \
        "$conninfo" > "$tmp/pgbench.out" 2>&1 || { cat "$tmp/pgbench.out" >&2; return 1; }
    python3 "$lib/pgbench_json.py" "$tmp/pgbench.out" "$tmp"/pgbench.[0-9]*
    rm -f "$tmp"/pgbench.[0-9]*
}

profile_section() {
    local missed=$1
    echo "## Profile"
    echo
    echo "Missed: ${missed:-nothing (BENCH_PROFILE=1)}."
    echo
    if [ "$profiler" = perf ]; then
        echo "nginx is profiled with \`perf record -e $perf_event -g\` on its"
        echo "one worker while it serves the requests counted (4 connections)."
    else
        echo "perf cannot count instructions on this machine"
        echo "(\`perf stat -e instructions true\`: $perf_why), so nginx is"
        echo "profiled with valgrind --tool=callgrind: one worker process"
        echo "(master_process off), instrumented only while it serves the"
        echo "requests counted (4 connections). Ir counts user-space"
        echo "instructions only, not the kernel's share of the worker's CPU,"
        echo "and counts each byte that \`rep movsb\` copies (glibc's memcpy for"
        echo "large blocks) as an instruction: read memcpy's Ir as bytes copied."
    fi
    echo "nginx's static functions have no symbols in Debian's stripped"
    echo "binary and show as addresses."
    echo
    write_confs 1
    local body20="{\"sessionId\":\"%ID%\",\"input\":$input_json}"
    reset_db
    if grep -q cpu_vs_floorA <<< "$missed" || [ "$profile" = 1 ]; then
        profile_one "plain proxy, 20 messages" proxy /v1/chat/completions \
            "@$tmp/upstream-20-false.json" "" "$profile_reqs"
        profile_one "module POST /chat, 20 messages" module /chat \
            "$body20" "$tmp/ids-20" "$profile_reqs"
    fi
    if grep -q h1000 <<< "$missed" || [ "$profile" = 1 ]; then
        reset_db
        profile_one "module POST /chat, 1000 messages" module /chat \
            "$body20" "$tmp/ids-1000" "$(( profile_reqs / 10 ))"
    fi
    if grep -q stream <<< "$missed" || [ "$profile" = 1 ]; then
        reset_db
        profile_one "module streaming POST /chat, 20 messages" module /stream/chat \
            "{\"sessionId\":\"%ID%\",\"input\":$input_json,\"stream\":true}" \
            "$tmp/ids-20" "$(( profile_reqs / 2 ))"
    fi
    pg_profile "one chat with 20 messages of history (floor B's SQL)" \
        pgbench_run "$duration" 20 1
    if grep -q h1000 <<< "$missed" || [ "$profile" = 1 ]; then
        pg_profile "one chat with 1000 messages of history (floor B's SQL)" \
            pgbench_run "$duration" 1000 1
    fi
    pg_profile "GET /session (100 of $(q -c 'select count(*) from callhq.sessions') sessions)" \
        pgbench_list "$duration"
    reset_db
}

# perf where it can count instructions (BENCH_PROFILER=perf|callgrind
# forces one; BENCH_PERF_EVENT=cpu-clock lets perf sample without counters)
perf_event=${BENCH_PERF_EVENT:-instructions}
perf_why=$(perf stat -e instructions true 2>&1) || perf_why="perf failed"
if grep -q "not supported" <<< "$perf_why"; then
    perf_why="<not supported>"
fi
profiler=${BENCH_PROFILER:-}
if [ -z "$profiler" ]; then
    profiler=callgrind
    if command -v perf >/dev/null && ! grep -q "not supported\|failed" <<< "$perf_why"; then
        profiler=perf
    fi
fi

missed=$(cat "$tmp/missed" 2>/dev/null || true)
if [ "$profile" = 1 ] || { [ "$profile" = auto ] && [ -n "$missed" ]; }; then
    if [ "$profiler" = callgrind ]; then
        command -v callgrind_control >/dev/null || scripts/deps.sh valgrind
    fi
    log "profiling (missed: $(echo $missed))"
    profile_section "$(echo $missed)" >> "$out" || echo "bench: profiling failed" >&2
fi

log "done: $out"
cat "$out"
