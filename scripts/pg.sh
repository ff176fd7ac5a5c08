#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for `make run`, `make test` and `make bench`.
#
#   scripts/pg.sh start DIR PORT    initdb DIR/data if needed, start it on
#                                   127.0.0.1:PORT, create database callhq
#   scripts/pg.sh stop DIR          stop it (fast shutdown)
#
# PostgreSQL refuses to run as root: as root, the cluster belongs to the
# "postgres" system user that Debian's package creates.
set -euo pipefail

cmd=${1:?usage: pg.sh start DIR PORT | stop DIR}
dir=${2:?directory}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bindir" ]; then
    echo "pg.sh: PostgreSQL server binaries not found" >&2
    exit 1
fi

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
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$dir"
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bindir/initdb" -D "$dir/data" -A trust -U callhq \
            -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2; exit 1; }
    fi
    # loopback only; the socket lives in DIR, not in /var/run
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir \
            -c max_connections=200 -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null || { tail -n 20 "$dir/postgres.log" >&2; exit 1; }
    if ! "$bindir/psql" -X -q -h 127.0.0.1 -p "$port" -U callhq -d postgres \
            -tAc "select 1 from pg_database where datname = 'callhq'" \
            | grep -q 1; then
        "$bindir/psql" -X -q -h 127.0.0.1 -p "$port" -U callhq -d postgres \
            -c "create database callhq"
    fi
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    fi
    ;;
*)
    echo "usage: pg.sh start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
