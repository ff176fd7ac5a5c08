#!/usr/bin/env bash
# `make bench-pg`: what a chat costs PostgreSQL, counted in instructions.
#
# PostgreSQL runs under valgrind's callgrind, which counts the instructions
# every backend executes (Ir): unlike CPU time, the count does not move
# with the other load of a shared machine, so one run compares commits and
# floors exactly. It measures, one client at a time:
#
#   module     POST /chat {sessionId, input} on a 20-message session, each
#              chat on another of 2000 sessions (the history cache misses)
#   revisit    the same on 25 sessions in turn (the node's history cache
#              has each session at its version: no history rows read)
#   before     both, with the module of each commit of PGCOST_BEFORE (built
#              in a git worktree, its own database migrated by its sql/)
#   floor C    pgbench of a plain chat service's two statements on the
#              obvious schema (bench/lib/floor_c.sql), as make bench runs it
#
# Each figure is (Ir of a long run - Ir of a short run) / (chats of the
# long run - chats of the short run), summed over the backends that served
# the runs (the module's pooled connections, its LISTEN connections,
# pgbench's), so connection start-up and first plans cancel out. The
# background processes (WAL writer, checkpointer) are not counted, for the
# module nor for floor C (autovacuum is off), nor is the webhook
# dispatcher's poll, which comes once a second, not once a chat
# (callhq_webhook_interval 1h here).
#
#   PGCOST_BEFORE="4895be3 44cbacb"   commits measured as "before" ("": none)
#   PGCOST_SHORT=6 PGCOST_LONG=24     seconds of the two runs of each row
#   PGCOST_OUT=file.md                the report (bench/results/<date>-<host>-pg-cost.md)
#   PGCOST_KEEP=1                     keep the callgrind files (cg/) to read
#                                     with callgrind_annotate
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
lib=$top/bench/lib
before_list=${PGCOST_BEFORE-"4895be3 44cbacb"}
short=${PGCOST_SHORT:-6}
long=${PGCOST_LONG:-24}
sessions=2000
key=bench-key
input="How do I reset my password? I cannot find the link anywhere."

module=$top/build/ngx_http_callhq_module.so
[ -f "$module" ] || { echo "pg-cost: build the module first (make)" >&2; exit 1; }
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
for tool in wrk valgrind callgrind_annotate "$bindir/pgbench" nginx psql; do
    command -v "$tool" >/dev/null || [ -x "$tool" ] || {
        echo "pg-cost: $tool is missing (scripts/deps.sh bench)" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/callhq-pgcost.XXXXXX)
chmod 755 "$tmp"
mkdir -p "$tmp/cg"
owner=""
if [ "$(id -u)" = 0 ]; then
    owner=postgres
    chown postgres "$tmp/cg"
fi
read -r pg_port canned_port nginx_port < <(scripts/freeport.pl 3)
dbinfo() { echo "host=127.0.0.1 port=$pg_port dbname=$1 user=callhq"; }
q() { local db=$1; shift; psql -X -q -tA -v ON_ERROR_STOP=1 "$(dbinfo "$db")" "$@"; }

started=$(date +%s)
log() { printf '[pg-cost %4ds] %s\n' $(( $(date +%s) - started )) "$*" >&2; }

pm=""
aux=0
nginx_pids=()
worktrees=()
cleanup() {
    local rc=$? pid wt
    trap - EXIT INT TERM
    for pid in "${nginx_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    scripts/pg.sh stop "$tmp/pg" 2>/dev/null || true
    for wt in "${worktrees[@]}"; do
        git -C "$top" worktree remove --force "$wt" 2>/dev/null || true
    done
    if [ $rc -ne 0 ] || [ -n "${PGCOST_KEEP:-}" ]; then
        echo "pg-cost: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# ------------------------------------------------------- modules of before

declare -A before_so
for rev in $before_list; do
    wt=$tmp/src-$rev
    git -C "$top" worktree add --detach "$wt" "$rev" >/dev/null 2>&1
    worktrees+=("$wt")
    log "building the module of $rev"
    make -C "$wt" > "$tmp/build-$rev.log" 2>&1 || {
        tail -n 20 "$tmp/build-$rev.log" >&2; exit 1; }
    cp "$wt/build/ngx_http_callhq_module.so" "$tmp/module-$rev.so"
    before_so[$rev]=$tmp/module-$rev.so
done
cp "$module" "$tmp/module-now.so"


# ------------------------------------------------ the databases, seeded

log "PostgreSQL on 127.0.0.1:$pg_port: seeding"
scripts/pg.sh start "$tmp/pg" "$pg_port"
seed() {   # database, migrate.sh
    "$2" "$(dbinfo "$1")" >/dev/null
    q "$1" -v key="$key" -v msg_bytes=100 -f "$lib/seed.sql" >/dev/null
    q "$1" -c "select bench.seed(20, $sessions)" -c "vacuum analyze" >/dev/null
}
seed callhq sql/migrate.sh
for rev in $before_list; do
    q callhq -c "create database before_$rev"
    seed "before_$rev" "$tmp/src-$rev/sql/migrate.sh"
done
q callhq -c "create database naive"
q naive -f "$lib/floor_c_schema.sql" >/dev/null
q naive -c "select naive.seed(20, $sessions, 100)" -c "vacuum analyze" >/dev/null
q callhq -c "select bench.sid(20, n) from generate_series(1, $sessions) n" \
    > "$tmp/ids-all"
head -n 25 "$tmp/ids-all" > "$tmp/ids-revisit"
input_json=$(q callhq -c "select to_jsonb(\$\$$input\$\$::text)::text")
scripts/pg.sh stop "$tmp/pg"

# the same cluster again, its postmaster (and so every backend) in callgrind
log "PostgreSQL under callgrind"
as_owner() { if [ -n "$owner" ]; then runuser -u "$owner" -- "$@"; else "$@"; fi; }
as_owner valgrind --tool=callgrind --callgrind-out-file="$tmp/cg/cg.%p" \
    "$bindir/postgres" -D "$tmp/pg/data" -c listen_addresses=127.0.0.1 \
    -p "$pg_port" -k "$tmp/pg" -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off -c autovacuum=off -c max_connections=50 \
    > "$tmp/pg/callgrind.log" 2>&1 &
for _ in $(seq 1 120); do
    q callhq -c "select 1" >/dev/null 2>&1 && break
    sleep 1
done
q callhq -c "select 1" >/dev/null
sleep 3
pm=$(head -n 1 "$tmp/pg/data/postmaster.pid")
aux=$(pgrep -c -P "$pm" || true)     # checkpointer, WAL writer...


# ---------------------------------------------------------------- nginx

reply="Sure. Open Settings, choose Security, then Reset password."
completion="{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"$reply\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":250,\"completion_tokens\":24,\"total_tokens\":274}}"
user=""
[ "$(id -u)" = 0 ] && user="user root;"

# $1 name, $2 module (empty: the canned model), $3 database
write_conf() {
    local dir=$tmp/nginx-$1 body
    mkdir -p "$dir/conf" "$dir/logs"
    if [ -z "$2" ]; then
        body="server {
        listen 127.0.0.1:$canned_port;
        location = /_canned {
            default_type application/json;
            return 200 '$completion';
        }
    }"
    else
        body="callhq_postgres \"$(dbinfo "$3")\";
    callhq_turn_timeout 120s;
    # the webhook dispatcher's poll comes once a second whatever the
    # traffic: at callgrind's pace (tens of chats a second) it would count
    # as a tenth of a claim per chat, at nginx's as a thousandth
    callhq_webhook_interval 1h;
    upstream canned { server 127.0.0.1:$canned_port; keepalive 8; }
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            callhq_api;
            callhq_model_location /_model;
        }
        location = /_model {
            internal;
            proxy_pass http://canned/_canned;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"
    fi
    cat > "$dir/conf/nginx.conf" <<CONF
${2:+load_module $2;}
$user
daemon off;
master_process on;
worker_processes 1;
pid $dir/logs/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    $body
}
CONF
}

start_nginx() {   # name: sets nginx_pid
    nginx -p "$tmp/nginx-$1" -c conf/nginx.conf -t -q
    nginx -p "$tmp/nginx-$1" -c conf/nginx.conf &
    nginx_pid=$!
    nginx_pids+=("$nginx_pid")
    for _ in $(seq 1 100); do
        [ -n "$(pgrep -P "$nginx_pid" || true)" ] && break
        sleep 0.05
    done
    sleep 0.3
}

stop_nginx() {   # pid: waits for it, then for its backends' callgrind files
    kill -QUIT "$1" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    settle
}

# until PostgreSQL has no client backend left (each writes its callgrind
# file as it exits): the postmaster's children are its background ones
settle() {
    for _ in $(seq 1 300); do
        [ "$(pgrep -c -P "$pm" || true)" -le "$aux" ] && break
        sleep 0.2
    done
    sleep 1
}

write_conf canned "" ""
start_nginx canned
export BENCH_AUTH="Bearer $key"


# ---------------------------------------------------------------- measuring

# the Ir of the callgrind files written since the list in $1
ir_since() {
    local f total=0 ir
    for f in $(comm -13 "$1" <(ls "$tmp/cg" | sort)); do
        ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$tmp/cg/$f")
        total=$(( total + ${ir:-0} ))
    done
    echo "$total"
}

# one run: prints "Ir chats"; $1 seconds, $2 kind (module|floorc),
# $3 nginx name or database, $4 ids file
run_once() {
    local secs=$1 kind=$2 what=$3 ids=${4:-} list=$tmp/list out n ir
    settle
    ls "$tmp/cg" | sort > "$list"
    if [ "$kind" = module ]; then
        start_nginx "$what"
        out=$(wrk -t1 -c1 -d "${secs}s" --timeout 60s -s "$lib/bench.lua" \
                "http://127.0.0.1:$nginx_port" -- POST /chat \
                "{\"sessionId\":\"%ID%\",\"input\":$input_json}" "$ids" 1 \
              | grep '^{"requests"')
        stop_nginx "$nginx_pid"
        n=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["requests"] - d["err_status"] - d["err_read"] - d["err_timeout"])' "$out")
    else
        out=$(PGPASSWORD= "$bindir/pgbench" -n -M prepared -c 1 -T "$secs" \
                -D per="$sessions" -D input="$input" -D reply="$reply" \
                -f "$lib/floor_c.sql" "$(dbinfo naive)" 2>&1)
        settle
        n=$(awk '/actually processed/ { split($NF, x, "/"); print x[1] }' <<< "$out")
    fi
    ir=$(ir_since "$list")
    echo "$ir $n"
}

results=()
# measure LABEL KIND WHAT [IDS]
measure() {
    local a b per
    read -r ir1 n1 < <(run_once "$short" "$2" "$3" "${4:-}")
    read -r ir2 n2 < <(run_once "$long" "$2" "$3" "${4:-}")
    if [ "$n2" -le "$n1" ]; then
        echo "pg-cost: $1: no more chats in the long run ($n1, $n2)" >&2
        exit 1
    fi
    per=$(( (ir2 - ir1) / (n2 - n1) ))
    log "$1: $per instructions per chat ($n1 and $n2 chats)"
    results+=("$1|$per|$n1|$n2")
}

measure "floor C" floorc naive
for name in now $before_list; do
    if [ "$name" = now ]; then
        so=$tmp/module-now.so db=callhq label="module"
    else
        so=${before_so[$name]} db=before_$name label="before $name"
    fi
    write_conf "m-$name" "$so" "$db"
    measure "$label chat h20" module "m-$name" "$tmp/ids-all"
    measure "$label chat h20 revisit" module "m-$name" "$tmp/ids-revisit"
done


# ---------------------------------------------------------------- report

floor=${results[0]#*|}
floor=${floor%%|*}
host=$(hostname -s)
out=${PGCOST_OUT:-$top/bench/results/$(date -u +%Y-%m-%d)-$host-pg-cost.md}
rev=$(git -C "$top" rev-parse --short HEAD)
{
    echo "# PostgreSQL instructions per chat, $(date -u '+%Y-%m-%d %H:%M UTC') on $host"
    echo
    echo "bench/pg-cost.sh (make bench-pg): PostgreSQL $("$bindir/postgres" -V | awk '{print $3}') under callgrind, one client,"
    echo "20-message sessions, the canned model; module at $rev$( git -C "$top" diff --quiet HEAD -- ngx_http_callhq_module sql || echo ' (with uncommitted changes)')."
    echo "Ir per chat = (Ir of a ${long} s run - Ir of a ${short} s run) / (their chats' difference),"
    echo "over every client backend (autovacuum off, background processes and the webhook"
    echo "dispatcher's once-a-second poll not counted: callhq_webhook_interval 1h)."
    echo
    echo "| run | Ir per chat | ÷ floor C | chats (short, long) |"
    echo "|---|---|---|---|"
    for r in "${results[@]}"; do
        IFS='|' read -r label per n1 n2 <<< "$r"
        printf '| %s | %s | %s× | %s, %s |\n' "$label" \
            "$(python3 -c "print(f'{$per:,}'.replace(',', ' '))")" \
            "$(python3 -c "print(f'{$per / $floor:.2f}')")" "$n1" "$n2"
    done
} > "$out"
cat "$out"
log "done: $out"
