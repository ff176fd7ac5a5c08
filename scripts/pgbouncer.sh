#!/usr/bin/env bash
# A throwaway PgBouncer in transaction pooling mode, in front of the test
# PostgreSQL (make test's PgBouncer pass).
#
#   scripts/pgbouncer.sh start DIR PORT PG_PORT   listen on 127.0.0.1:PORT
#   scripts/pgbouncer.sh stop DIR
#
# PgBouncer refuses to run as root: as root, it runs as "postgres".
set -euo pipefail

cmd=${1:?usage: pgbouncer.sh start DIR PORT PG_PORT | stop DIR}
dir=${2:?directory}

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$cmd" in
start)
    port=${3:?port}
    pg_port=${4:?PostgreSQL port}
    mkdir -p "$dir"
    cat > "$dir/pgbouncer.ini" <<INI
[databases]
callhq = host=127.0.0.1 port=$pg_port dbname=callhq

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 40
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
    echo '"callhq" ""' > "$dir/users.txt"
    if [ "$(id -u)" = 0 ]; then
        chown -R postgres: "$dir"
    fi
    as_owner /usr/sbin/pgbouncer -d "$dir/pgbouncer.ini"
    for _ in $(seq 1 50); do
        psql -X -q -h 127.0.0.1 -p "$port" -U callhq -d callhq \
            -tAc 'select 1' >/dev/null 2>&1 && exit 0
        sleep 0.1
    done
    echo "pgbouncer.sh: PgBouncer did not start" >&2
    tail -n 20 "$dir/pgbouncer.log" >&2 || true
    exit 1
    ;;
stop)
    if [ -f "$dir/pgbouncer.pid" ]; then
        kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null || true
    fi
    ;;
*)
    echo "usage: pgbouncer.sh start DIR PORT PG_PORT | stop DIR" >&2
    exit 2
    ;;
esac
