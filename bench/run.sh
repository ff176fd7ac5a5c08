#!/usr/bin/env bash
# `make bench`: ngx_http_callhq_module side by side with its three floors,
# and with the module of an earlier commit (before/after in one run).
#
#   floor A  the same chats through a plain nginx proxy_pass (no module):
#            the client sends the whole upstream body (history included)
#   floor B  pgbench running the module's own SQL for one chat
#            (callhq.chat_begin, then callhq.chat_record), no nginx at all
#   floor C  pgbench of a plain chat service's two statements on the
#            obvious schema (database naive, bench/lib/floor_c_schema.sql):
#            read session + assistant + history (json_agg), then one CTE
#            appending the two messages, bumping the seq and inserting the
#            chat; at BENCH_CONC and at each of BENCH_HIGH_CONC clients
#   module   POST /chat (10/20/100/1000 messages of history; 20 also at
#            BENCH_HIGH_CONC connections), streaming POST /chat,
#            contention (BENCH_CONTENTION connections chatting on ONE
#            session, each waiting for its turn), POST /session,
#            GET /session/{id}, GET /session
#   revisit  POST /chat h20 where chats come back to their sessions, as
#            real conversations do: the connections go round a ring of
#            BENCH_REVISIT sessions per connection (never two chats at
#            once on one session), so that each session gets a few turns
#            per repeat and the history cache (callhq_history_cache) hits;
#            at BENCH_CONC and BENCH_REVISIT_CONC connections, with the
#            cache on ("module"), off ("nocache": a second nginx with
#            `callhq_history_cache off;`) and before (at BENCH_CONC); on
#            the last BENCH_WORKERS only, with a table cache on vs off
#   two nodes  POST /chat h20 on one ring of sessions (as revisit) by wrk
#            with two threads, half a ring apart: both threads on one
#            nginx ("onenode"), then each on its own of two nginx (separate
#            prefixes, the same database: "twonode"), so that a session's
#            chats go through the two nodes in turn; on the last
#            BENCH_WORKERS only, reported as twonode ÷ onenode (on a
#            machine of few cores, the cost of crossing nodes, not scaling)
#   before   the module of commit BENCH_BEFORE (built in a git worktree,
#            its own database migrated with that commit's sql/ and seeded
#            the same way): chat h20 at BENCH_CONC and BENCH_HIGH_CONC,
#            streaming h20, contention, revisit at BENCH_CONC; reported
#            next to the module with the ratio after/before
#
# PostgreSQL runs with pg_stat_statements (track = all) and track_functions
# = all: the report has the top statements and functions of the last
# repeat of the module's 20-message chats (random sessions, and revisit
# with the history cache on) and of floor C, and the shared blocks per
# request of every run (top-level statements).
#
# Everything runs on loopback: a throwaway PostgreSQL, a canned model (a
# second nginx answering `return 200 ...`, so the model costs nothing), the
# plain proxy and nginx with the module. Results go to
# bench/results/<date>-<host>.md and are printed.
#
#   BENCH_QUICK=1        smoke run (~6 minutes): 2 s per scenario, one repeat,
#                        worker_processes 2 only, no profile, function
#                        counts of pooled backends not waited for
#   BENCH_DURATION=4     seconds measured per scenario and repeat
#   BENCH_REPEATS=3      repeats (min/median/max are reported)
#   BENCH_WARMUP=1       seconds of warm-up before a scenario's first repeat
#   BENCH_CONC=16        concurrent connections (wrk -c, pgbench -c)
#   BENCH_HIGH_CONC="32 64"  more concurrencies of module chat h20, floor C
#                        and before (targets vs floor C are checked there)
#   BENCH_CONTENTION=4   connections racing on one session
#   BENCH_REVISIT=25     sessions per connection in the revisit scenarios
#                        (0: skip them)
#   BENCH_REVISIT_CONC=32  more concurrencies of the revisit scenarios
#   BENCH_TWO_NODES=1    the two-node scenarios (0: skip them)
#   BENCH_BEFORE=4895be3 the commit measured as "before" (0: skip)
#   BENCH_PG_STATS=1     pg_stat_statements and track_functions = all
#                        (0: neither, as runs before 2026-12-06 had)
#   BENCH_STATS_FOR=regex  the scenarios of the last BENCH_WORKERS whose
#                        database profile is taken, instead of module and
#                        before chat h20 and module chat h20 revisit (floor
#                        C's stays; each profiled nginx scenario waits 10 s)
#   BENCH_WORKERS="1 2"  nginx worker_processes to measure with
#   BENCH_LONG=100000    chats (at least) in the RSS stability run (0: skip);
#                        it runs on the last BENCH_WORKERS, on fresh workers
#                        warmed up a tenth of its time (3 s at least)
#   BENCH_PROFILE=auto   auto: profile when a target is missed; 1: always; 0: never
#   BENCH_PROFILE_REQS=1000  requests sent to the profiled worker (a tenth of
#                        that with 1000-message histories, half streaming)
#   BENCH_POOL=n         callhq_postgres_pool_size of the module's nginx
#   BENCH_HISTORY_CACHE=64m  callhq_history_cache of the module measured (the
#                        default 32m is too small for a full run's 300
#                        sessions of 1000 messages)
#   BENCH_MODULE_HTTP="directive value;"  more http lines for the module
#                        measured (not before's), e.g.
#                        "callhq_postgres_queue 4096;"
#                        (unset: the module's default)
#   BENCH_ONLY=regex     run only the scenarios whose names match (floor C
#                        is "floorC chat h20 ...", before "before ...", two
#                        nodes "onenode chat h20" and "twonode chat h20":
#                        BENCH_QUICK=1 BENCH_ONLY=node BENCH_BEFORE=0
#                        BENCH_LONG=0 BENCH_REVISIT=0 runs those alone,
#                        in about two minutes)
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
    stats_wait=0                         # function counts not waited for
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
# the history cache holds the 1000-message sessions that chat (about 130 KB
# each, 300 of them in a full run: 40 MB, more than the default 32m, which
# a cycle through them would empty ahead of each chat)
cache_size="callhq_history_cache ${BENCH_HISTORY_CACHE:-64m};"
conc=${BENCH_CONC:-16}
high_conc=${BENCH_HIGH_CONC-"32 64"}
contention=${BENCH_CONTENTION:-4}
revisit=${BENCH_REVISIT:-25}
revisit_conc=${BENCH_REVISIT_CONC-32}
two_nodes=${BENCH_TWO_NODES:-1}
before=${BENCH_BEFORE:-4895be3}
pg_stats=${BENCH_PG_STATS:-1}
stats_regex=${BENCH_STATS_FOR:-}
stats_wait=${stats_wait:-10.5}
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
read -r pg_port canned_port proxy_port module_port before_port nocache_port \
    node2_port < <(scripts/freeport.pl 7)
dbinfo() { echo "host=127.0.0.1 port=$pg_port dbname=$1 user=callhq"; }
conninfo=$(dbinfo callhq)
before_conninfo=$(dbinfo callhq_before)
naive_conninfo=$(dbinfo naive)
user=""
[ "$(id -u)" = 0 ] && user="user root;"
hz=$(getconf CLK_TCK)

started=$(date +%s)
log() { printf '[bench %4ds] %s\n' $(( $(date +%s) - started )) "$*" >&2; }

nginx_pids=()
sampler_pid=""
before_wt=""
before_build_pid=""
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
    if [ -n "$before_build_pid" ]; then
        kill -- "$before_build_pid" 2>/dev/null || true
        wait "$before_build_pid" 2>/dev/null || true
    fi
    if [ -n "$before_wt" ] && [ -d "$before_wt" ]; then
        git -C "$top" worktree remove --force "$before_wt" 2>/dev/null || true
    fi
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
# qdb DB args...: psql on another database of the bench's cluster
qdb() { local db=$1; shift; psql -X -q -tA -v ON_ERROR_STOP=1 "$(dbinfo "$db")" "$@"; }


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

# the workers of master $1 ("PID,PID": of both)
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

# RSS in kB of each pid, space separated, each "VmRSS,RssAnon,RssShmem":
# the shared zones' pages a worker touches count in its VmRSS (RssShmem),
# a leak is in its private memory (RssAnon); RssFile is the rest
rss_of() {
    local pid r out=""
    for pid in "$@"; do
        r=$(awk '/^VmRSS:/ {v = $2} /^RssAnon:/ {a = $2} /^RssShmem:/ {s = $2}
                 END {print v + 0 "," a + 0 "," s + 0}' "/proc/$pid/status" 2>/dev/null) || true
        out="$out ${r:-0,0,0}"
    done
    echo $out
}

# kB of shared writable mappings of each pid (nginx's shared zones: what
# RssShmem is bounded by), space separated
shm_size_of() {
    local pid r out=""
    for pid in "$@"; do
        r=$(awk '$2 ~ /^[r-][w-][x-]s$/ {s = 1; next}
                 /^Size:/ {if (s) t += $2; s = 0}
                 END {print t + 0}' "/proc/$pid/smaps" 2>/dev/null) || true
        out="$out ${r:-0}"
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

# the module of BENCH_BEFORE, built in a git worktree while the databases
# are seeded (waited for before the first measurement)
before_so=""
before_short=""
if [ "$before" != 0 ]; then
    before_rev=$(git -C "$top" rev-parse --verify --quiet "$before^{commit}") || {
        echo "bench: BENCH_BEFORE=$before is not a commit (0 skips before/after)" >&2
        exit 1; }
    before_short=$(git -C "$top" rev-parse --short "$before_rev")
    before_wt=$tmp/before-src
    git -C "$top" worktree add --detach "$before_wt" "$before_rev" >/dev/null 2>&1
    log "building the module of $before_short (BENCH_BEFORE) in $before_wt"
    make -C "$before_wt" > "$tmp/before-build.log" 2>&1 &
    before_build_pid=$!
fi

log "PostgreSQL on 127.0.0.1:$pg_port"
scripts/pg.sh start "$tmp/pg" "$pg_port"
if [ "$pg_stats" != 0 ]; then
    # a restart loads pg_stat_statements; nested statements (those of the
    # SQL functions) are counted too
    q -c "alter system set shared_preload_libraries = 'pg_stat_statements'" \
      -c "alter system set track_functions = 'all'" >/dev/null
    scripts/pg.sh stop "$tmp/pg"
    scripts/pg.sh start "$tmp/pg" "$pg_port"
    q -c "alter system set pg_stat_statements.track = 'all'" \
      -c "alter system set pg_stat_statements.track_planning = on" \
      -c "select pg_reload_conf()" -c "create extension pg_stat_statements" >/dev/null
fi
if [ -n "${BENCH_AUTO_EXPLAIN:-}" ]; then
    q -c "alter system set session_preload_libraries = 'auto_explain'" \
      -c "alter system set auto_explain.log_min_duration = 0" \
      -c "alter system set auto_explain.log_analyze = on" \
      -c "alter system set auto_explain.log_buffers = on" \
      -c "alter system set auto_explain.log_nested_statements = on" \
      -c "alter system set auto_explain.sample_rate = $BENCH_AUTO_EXPLAIN" \
      -c "select pg_reload_conf()" >/dev/null
fi
pg_ver=$(q -c "show server_version_num")
sql/migrate.sh "$conninfo" >/dev/null
q -v key="$key" -v msg_bytes=100 -f "$lib/seed.sql" >/dev/null
for i in "${!lengths[@]}"; do
    log "seeding ${counts[$i]} sessions of ${lengths[$i]} messages"
    q -c "select bench.seed(${lengths[$i]}, ${counts[$i]})" >/dev/null
done
q -c "vacuum analyze" >/dev/null

# floor C: the plain service's schema in database naive, as many sessions
# of 20 messages as the module's 20-message scenario has
log "floor C: seeding ${counts[1]} sessions of 20 messages (database naive)"
q -c "create database naive"
qdb naive -f "$lib/floor_c_schema.sql" >/dev/null
qdb naive -c "select naive.seed(20, ${counts[1]}, 100)" -c "vacuum analyze" >/dev/null

# before: that commit's migrations, the same seed (20-message sessions only)
if [ -n "$before_wt" ]; then
    log "before: database callhq_before, migrated by $before_short's sql/migrate.sh"
    q -c "create database callhq_before"
    "$before_wt/sql/migrate.sh" "$before_conninfo" >/dev/null
    qdb callhq_before -v key="$key" -v msg_bytes=100 -f "$lib/seed.sql" >/dev/null
    qdb callhq_before -c "select bench.seed(20, ${counts[1]})" -c "vacuum analyze" >/dev/null
    log "waiting for the build of $before_short"
    if ! wait "$before_build_pid"; then
        before_build_pid=""
        tail -n 30 "$tmp/before-build.log" >&2
        echo "bench: building $before_short failed (BENCH_BEFORE=0 skips before/after)" >&2
        exit 1
    fi
    before_build_pid=""
    before_so=$tmp/before.so
    cp "$before_wt/build/ngx_http_callhq_module.so" "$before_so"
    git -C "$top" worktree remove --force "$before_wt"
    before_wt=""
fi
key_hash=$(q -c "select '\\x' || encode(sha256('$key'::bytea), 'hex')")
opts='{"defaultExpirationSeconds":86400,"contextMessages":0,"contextBytes":0,"turnLeaseSeconds":600}'

# id lists: each concurrent chat gets a session of its own
for i in "${!lengths[@]}"; do
    q -c "select bench.sid(${lengths[$i]}, n)
            from generate_series(1, ${counts[$i]}) n" > "$tmp/ids-${lengths[$i]}"
done
# contention: every chat on the first 20-message session
head -n 1 "$tmp/ids-20" > "$tmp/ids-one"

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

# the database the scenarios run on: callhq (the module), callhq_before
# (the module of BENCH_BEFORE) or naive (floor C)
cur_db=callhq
reset_db() {
    if [ "$cur_db" = naive ]; then
        qdb naive -c "select naive.trim()" >/dev/null
        qdb naive -c "vacuum naive.messages, naive.sessions, naive.chats" >/dev/null
    else
        qdb "$cur_db" -c "select bench.trim()" >/dev/null
        qdb "$cur_db" -c "vacuum callhq.messages, callhq.sessions, callhq.chats" >/dev/null
    fi
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

# the module's http lines and server: $1 port, $2 conninfo
module_server() {
    echo "
    callhq_postgres \"$2\";
    # pooled backends stay (one that exits mid-run can make PostgreSQL's
    # CPU sample short: two pools, the module's and before's, sit idle in turn)
    callhq_postgres_idle_timeout 3600s;
    ${BENCH_POOL:+callhq_postgres_pool_size $BENCH_POOL;}
    # contention: chats wait for their session's turn, never 409
    callhq_turn_timeout 120s;
    server {
        listen 127.0.0.1:$1 backlog=4096;
        location / {
            callhq_api;
            callhq_model_location /_model;
        }
        # the same API; its chats go to the canned event stream
        location /stream/ {
            callhq_api;
            callhq_model_location /_model_sse;
        }
        # chats racing on one session: its history grows by two messages
        # a chat, the context sent stays at the last 20
        location /contention/ {
            callhq_api;
            callhq_model_location /_model;
            callhq_context_messages 20;
        }
        $(model_location /_model /_canned internal\;)
        $(model_location /_model_sse /_canned_sse internal\;)
    }"
}

write_confs() {   # $1 worker_processes
    write_nginx_conf proxy "$1" "
    server {
        listen 127.0.0.1:$proxy_port backlog=4096;
        $(model_location /v1/chat/completions /_canned)
        $(model_location /stream/v1/chat/completions /_canned_sse)
    }" "$upstream_block" ""

    write_nginx_conf module "$1" "$(module_server "$module_port" "$conninfo")" \
        "$upstream_block
    $cache_size
    ${BENCH_MODULE_HTTP:-}" "load_module $module;"
    if [ -n "$before_so" ]; then
        write_nginx_conf before "$1" "$(module_server "$before_port" "$before_conninfo")" \
            "$upstream_block" "load_module $before_so;"
    fi
    # the module without its history cache (revisit scenarios)
    write_nginx_conf nocache "$1" "$(module_server "$nocache_port" "$conninfo")" \
        "$upstream_block
    ${BENCH_MODULE_HTTP:-}
    callhq_history_cache off;" "load_module $module;"
    # a second node of the module on the same database (two nodes)
    write_nginx_conf node2 "$1" "$(module_server "$node2_port" "$conninfo")" \
        "$upstream_block
    $cache_size
    ${BENCH_MODULE_HTTP:-}" "load_module $module;"
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
    local blk0 blk1
    blk0=$(pg_blks)
    cpu0=$(cpu_of "${wpids[@]}"); rss0=$(rss_of "${wpids[@]}"); pg0=$(pg_cpu)
    can0=$(cpu_of "${cpids[@]}"); busy0=$(machine_busy)
    times > "$tmp/times0"
    t0=$(date +%s.%N)
    out=$("$@" 2>"$tmp/last.err" | grep '^{' | tail -n 1) || true
    t1=$(date +%s.%N)
    times > "$tmp/times1"
    busy1=$(machine_busy); can1=$(cpu_of "${cpids[@]}")
    cpu1=$(cpu_of "${wpids[@]}"); rss1=$(rss_of "${wpids[@]}"); pg1=$(pg_cpu)
    blk1=$(pg_blks)
    gen0=$(children_cpu "$tmp/times0"); gen1=$(children_cpu "$tmp/times1")
    if [ -z "$out" ]; then
        echo "bench: $name produced no result:" >&2
        cat "$tmp/last.err" >&2
        out='{"requests":0}'
    fi
    if [ -n "$stats_title" ]; then
        pg_stats_snapshot "$stats_title" "$out" "$kind" || echo "bench: pg_stat_statements snapshot failed" >&2
        stats_title=""
    fi
    local sent='{}' schema=bench
    [ "$cur_db" = naive ] && schema=naive
    if [ "$hist" != - ]; then
        sent=$(qdb "$cur_db" -c "select row_to_json(s) from $schema.sent($hist) s")
    fi
    python3 - "$out" "$sent" "$blk0" "$blk1" <<PY >> "$results"
import json, sys
r = json.loads(sys.argv[1])
b0, b1 = sys.argv[3].split(), sys.argv[4].split()
if len(b0) == 2 and len(b1) == 2:
    r.update(pg_blks_hit=int(b1[0]) - int(b0[0]), pg_blks_read=int(b1[1]) - int(b0[1]))
wall = $t1 - $t0
# per worker "VmRSS,RssAnon,RssShmem" kB; rss_before/after stay VmRSS
def rss(v):
    t = [[int(x) for x in p.split(",")] for p in v.split()]
    return [[x[i] for x in t] for i in range(3)]
vm0, anon0, shm0 = rss("$rss0")
vm1, anon1, shm1 = rss("$rss1")
ours = ($cpu1 - $cpu0) + ($pg1 - $pg0) + ($can1 - $can0) + ($gen1 - $gen0)
r.update(name="$name", kind="$kind", conc=$c, hist="$hist", repeat=$rep,
         workers=${cur_workers:-0}, sent=json.loads(sys.argv[2]),
         worker_cpu_s=round($cpu1 - $cpu0, 2), pg_cpu_s=round($pg1 - $pg0, 2),
         canned_cpu_s=round($can1 - $can0, 2), loadgen_cpu_s=round($gen1 - $gen0, 2),
         machine_busy_s=round($busy1 - $busy0, 2),
         other_cpu_s=round(max(0.0, ($busy1 - $busy0) - ours), 2),
         loadavg=$load,
         rss_before=vm0, rss_after=vm1,
         rss_anon_before=anon0, rss_anon_after=anon1,
         rss_shmem_before=shm0, rss_shmem_after=shm1,
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

# shared blocks hit and read so far by the top-level statements on
# $cur_db (pg_stat_statements; they include those of the statements they
# run), "hit read", or nothing without pg_stat_statements or before 14
pg_blks() {
    [ "$pg_stats" != 0 ] && [ "$pg_ver" -ge 140000 ] || return 0
    q -F ' ' -c "
        select coalesce(sum(shared_blks_hit), 0), coalesce(sum(shared_blks_read), 0)
          from pg_stat_statements
         where toplevel and dbid = (select oid from pg_database where datname = '$cur_db')" \
        2>/dev/null || true
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
        if [ "$rep" = "$repeats" ] && [ "$pg_stats" != 0 ] && [ -n "$stats_for" ] \
                && grep -Eq -- "$stats_for" <<< "$name"; then
            # pooled backends report their function counts when idle for
            # 10 s: those of the warm-up must come in before the reset
            [ "$kind" != pgbench ] && sleep "$stats_wait"
            pg_stats_reset
            stats_title="$name, $c connections${cur_workers:+, worker_processes $cur_workers}"
            [ "$cur_workers" = 0 ] && stats_title="$name, $c clients"
        fi
        measure "$name" "$kind" "$c" "$hist" "$rep" -- "$runner" "$duration" "$@"
    done
}

# pair NAME KIND CONC HIST TRIM runner args...: scenario "module NAME" on
# the module, then "before NAME" on the module of BENCH_BEFORE
pair() {
    local name=$1
    shift
    port=$module_port master=$master_module cur_db=callhq
    scenario "module $name" "$@"
    if [ -n "$before_so" ]; then
        port=$before_port master=$master_before cur_db=callhq_before
        scenario "before $name" "$@"
        port=$module_port master=$master_module cur_db=callhq
    fi
}


# ------------------------------------------------- database-side profile
#
# pg_stat_statements (track = all: the statements inside SQL functions too)
# and pg_stat_user_functions over the last repeat of the scenarios that
# match $stats_for; each snapshot is a markdown part of the report.

stats_for=""
stats_title=""
stats_n=0

pg_stats_reset() {
    q -c "select pg_stat_statements_reset()" >/dev/null
    qdb "$cur_db" -c "select pg_stat_reset()" >/dev/null
}

# pg_stats_snapshot TITLE RESULT_JSON KIND
pg_stats_snapshot() {
    local title=$1 n f ver wal=""
    n=$(python3 -c "import json,sys; print(json.loads(sys.argv[1]).get('requests', 0))" "$2")
    [ "$n" -gt 0 ] || return 0
    stats_n=$((stats_n + 1))
    f=$tmp/pgstats-$(printf '%02d' $stats_n).md
    ver=$(q -c "show server_version_num")
    [ "$ver" -ge 130000 ] && wal=", round(wal_bytes / greatest(calls, 1))"
    {
        echo "### $title"
        echo
        echo "$n requests in the measured run. pg_stat_statements, top 12 by"
        echo "total_exec_time (↳: a statement run inside a function, whose time"
        echo "is also in the calling statement's); per call: rows, shared"
        echo "blocks hit and read${wal:+, WAL bytes}:"
        echo
        echo "| statement | calls | calls/req | total ms | mean ms | plans | mean plan ms | rows | blks hit | blks read |${wal:+ WAL B |}"
        echo "|---|---|---|---|---|---|---|---|---|---|${wal:+---|}"
        q -F ' | ' -c "
            select '\`' || replace(case when $( [ "$ver" -ge 140000 ] && echo toplevel || echo true )
                                       then '' else '↳ ' end
                                  || left(regexp_replace(query, '\s+', ' ', 'g'), 80), '|', '\|') || '\`',
                   calls, round(calls::numeric / $n, 2),
                   round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3),
                   plans, round(mean_plan_time::numeric, 3),
                   round(rows::numeric / greatest(calls, 1), 1),
                   round(shared_blks_hit::numeric / greatest(calls, 1), 1),
                   round(shared_blks_read::numeric / greatest(calls, 1), 2)$wal
              from pg_stat_statements
             where dbid = (select oid from pg_database where datname = '$cur_db')
               and query !~* 'pg_stat_statements|pg_stat_reset'
             order by total_exec_time desc
             limit 12" | sed 's/^/| /; s/$/ |/'
        echo
    } > "$f"
    # an idle backend sends its function counts within 10 s (PostgreSQL
    # 15's PGSTAT_IDLE_INTERVAL); pgbench's backends, as they exit
    if [ "$3" = pgbench ]; then sleep 1.5; else sleep "$stats_wait"; fi
    local rows note=""
    if [ "$3" != pgbench ] && [ "$stats_wait" = 0 ]; then
        note="; BENCH_QUICK: read at once, so some backends' counts are missing or the warm-up's"
    fi
    rows=$(qdb "$cur_db" -F ' | ' -c "
        select schemaname || '.' || funcname || '()', calls,
               round(calls::numeric / $n, 2), round(self_time::numeric, 1),
               round((self_time * 1000 / greatest(calls, 1))::numeric, 1),
               round((total_time * 1000 / greatest(calls, 1))::numeric, 1)
          from pg_stat_user_functions
         where calls > 0
         order by self_time desc
         limit 12")
    {
        if [ -n "$rows" ]; then
            echo "pg_stat_user_functions (track_functions = all), top 12 by self"
            echo "time (SQL functions the planner inlines are not counted)$note:"
            echo
            echo "| function | calls | calls/req | self ms | self µs/call | total µs/call |"
            echo "|---|---|---|---|---|---|"
            sed 's/^/| /; s/$/ |/' <<< "$rows"
        else
            echo "pg_stat_user_functions: no function called."
        fi
        echo
    } >> "$f"
}

wrk_run() { local d=$1; shift; wrk_cmd "$d" "$@"; }
# wrk_nodes_run DURATION "PORT PORT" method path body ids: two wrk
# threads (BENCH_CONC connections in all), thread k on the k-th port
wrk_nodes_run() {
    local d=$1 ports=$2
    shift 2
    BENCH_NODES=$ports wrk -t2 -c "$conc" -d "${d}s" --timeout 10s \
        -s "$lib/bench.lua" "http://127.0.0.1:$port" -- "$@" 2
}
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

# floor C: a plain chat service's two statements (bench/lib/floor_c.sql).
# pgbench's -T includes connecting its clients (a fork and a first plan
# each, 30 ms apiece on a loaded 2-core machine), so it is given 1 s more
# per 16 clients, and the PostgreSQL CPU of the steady state is measured
# too: from when every client's backend is up (0.2 s later) to the end,
# over the transactions that ended in that window (steady_* fields)
pgbench_c_run() {   # duration clients
    local c=$2 pm n0 pid t_s pg_s pg_e
    local per=$(( $(wc -l < "$tmp/ids-20") / c ))
    pm=$(head -n 1 "$tmp/pg/data/postmaster.pid")
    n0=$(pgrep -c -P "$pm" || true)
    "$pgbench" -n -M prepared -r -c "$c" -j 1 -T "$(( $1 + 1 + c / 16 ))" -f "$lib/floor_c.sql" \
        -D per="$per" -D input="$input" -D reply="$reply" \
        -l --log-prefix="$tmp/pgbench" "$naive_conninfo" > "$tmp/pgbench.out" 2>&1 &
    pid=$!
    for _ in $(seq 1 400); do
        [ "$(pgrep -c -P "$pm" || true)" -ge $(( n0 + c )) ] && break
        sleep 0.05
    done
    sleep 0.2
    t_s=$(date +%s.%N); pg_s=$(pg_cpu)
    wait "$pid" || { cat "$tmp/pgbench.out" >&2; return 1; }
    pg_e=$(pg_cpu)
    BENCH_STEADY_FROM=$t_s BENCH_STEADY_PG=$(awk -v a="$pg_s" -v b="$pg_e" 'BEGIN { printf "%.2f", b - a }') \
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

log "floor C: pgbench, a plain chat service's two statements, $conc${high_conc:+ $high_conc} clients"
cur_db=naive stats_for='^floorC chat h20$'
scenario "floorC chat h20" pgbench "$conc" 20 1 pgbench_c_run "$conc"
for c in $high_conc; do
    scenario "floorC chat h20 c$c" pgbench "$c" 20 1 pgbench_c_run "$c"
done
cur_db=callhq stats_for=""

for w in $workers_list; do
    cur_workers=$w
    write_confs "$w"
    start_nginx proxy
    start_nginx module
    [ -n "$before_so" ] && start_nginx before
    log "worker_processes $w: plain proxy on :$proxy_port, module on :$module_port${before_so:+, before ($before_short) on :$before_port}"
    # the database profile of module (and before) chat h20, or of
    # BENCH_STATS_FOR's scenarios: last workers only
    stats_for=""
    [ "$w" = "$(echo $workers_list | awk '{print $NF}')" ] &&
        stats_for=${stats_regex:-'^(module|before) chat h20$'}

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
    chat_body="{\"sessionId\":\"%ID%\",\"input\":$input_json}"
    stream_body="{\"sessionId\":\"%ID%\",\"input\":$input_json,\"stream\":true}"
    for len in "${lengths[@]}"; do
        if [ "$len" = 20 ]; then
            pair "chat h20" wrk "$conc" 20 1 wrk_run POST /chat "$chat_body" "$tmp/ids-20"
        else
            scenario "module chat h$len" wrk "$conc" "$len" 1 wrk_run \
                POST /chat "$chat_body" "$tmp/ids-$len"
        fi
    done
    [ -n "$stats_regex" ] || stats_for=""
    for c in $high_conc; do
        pair "chat h20 c$c" wrk "$c" 20 1 wrk_run POST /chat "$chat_body" "$tmp/ids-20" "$c"
    done
    pair "stream h20" sse "$conc" 20 1 sse_run "$conc" /stream/chat "$stream_body" "$tmp/ids-20"
    pair "stream h20 c1" sse 1 20 1 sse_run 1 /stream/chat "$stream_body" "$tmp/ids-20"
    # all chats on one session, each waiting for its turn (the context
    # sent stays at 20 messages, the history grows)
    pair "contention h20 c$contention" wrk "$contention" - 1 wrk_run \
        POST /contention/chat "$chat_body" "$tmp/ids-one" "$contention"
    # revisit: chats come back to their sessions (a ring of BENCH_REVISIT
    # sessions per connection), with the history cache on, off and before;
    # the database profile of the module's at BENCH_CONC (cache on: its
    # take statement against that of module chat h20, which hardly hits)
    if [ "$revisit" -gt 0 ] && [ "$w" = "$(echo $workers_list | awk '{print $NF}')" ]; then
        start_nginx nocache
        log "worker_processes $w: revisit, $revisit sessions per connection; history cache off on :$nocache_port"
        for c in $conc $revisit_conc; do
            sfx=""
            [ "$c" = "$conc" ] || sfx=" c$c"
            head -n $(( c * revisit )) "$tmp/ids-20" > "$tmp/ids-revisit-$c"
            [ "$(wc -l < "$tmp/ids-revisit-$c")" -eq $(( c * revisit )) ] ||
                log "revisit: only ${counts[1]} sessions of 20 messages for $c × $revisit"
            [ -n "$stats_regex" ] || stats_for='^module chat h20 revisit$'
            # before at BENCH_CONC only (a full run's time)
            if [ "$c" = "$conc" ]; then
                pair "chat h20 revisit" wrk "$c" 20 1 wrk_run POST /chat "$chat_body" \
                    "$tmp/ids-revisit-$c" "$c"
            else
                scenario "module chat h20 revisit$sfx" wrk "$c" 20 1 wrk_run POST /chat \
                    "$chat_body" "$tmp/ids-revisit-$c" "$c"
            fi
            port=$nocache_port master=$master_nocache
            scenario "nocache chat h20 revisit$sfx" wrk "$c" 20 1 wrk_run POST /chat \
                "$chat_body" "$tmp/ids-revisit-$c" "$c"
            port=$module_port master=$master_module
            [ -n "$stats_regex" ] || stats_for=""
        done
        stop_nginx "$master_nocache"
    fi
    # two nodes: the same sessions chatted with by two wrk threads half a
    # ring apart, both on this node, then one on each node, so that each
    # session's turns alternate between the nodes (its history cache on
    # either node is then always a turn behind); the workers of both
    # nodes are measured
    if [ "$two_nodes" != 0 ] && [ "$w" = "$(echo $workers_list | awk '{print $NF}')" ]; then
        ring=$revisit
        [ "$ring" -gt 0 ] || ring=25
        head -n $(( conc * ring )) "$tmp/ids-20" > "$tmp/ids-nodes"
        start_nginx node2
        log "worker_processes $w: two nodes, :$module_port and :$node2_port, $ring sessions per connection"
        scenario "onenode chat h20" wrk "$conc" 20 1 wrk_nodes_run \
            "$module_port $module_port" POST /chat "$chat_body" "$tmp/ids-nodes"
        master="$master_module,$master_node2"
        scenario "twonode chat h20" wrk "$conc" 20 1 wrk_nodes_run \
            "$module_port $node2_port" POST /chat "$chat_body" "$tmp/ids-nodes"
        master=$master_module
        stop_nginx "$master_node2"
    fi
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
        log "long run: $long chats or more (${secs}s, more if short) after a ${warm} s warm-up, sampling worker RSS (VmRSS, RssAnon, RssShmem)"
        reset_db
        read -r -a wpids <<< "$(workers_of "$master")"
        shm_size_of "${wpids[@]}" > "$tmp/shm-long-w$w.txt"
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
    [ -n "$before_so" ] && stop_nginx "$master_before"
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
  "high_conc": "$high_conc", "contention": $contention, "revisit": $revisit, "pg_stats": "$pg_stats" != "0",
  "pool": "${BENCH_POOL:-}",
  "module_http": """${BENCH_MODULE_HTTP:-}""".strip(),
  "history_cache": "${BENCH_HISTORY_CACHE:-64m}",
  "before": ("commit $before_short (BENCH_BEFORE), sha1 " + sh("sha1sum $before_so")[:12]) if "$before_so" else "",
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
