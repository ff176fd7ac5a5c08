#!/usr/bin/env bash
# `make test`: start a throwaway PostgreSQL and the mock model, then run
# the Test::Nginx suites in t/ against Debian's nginx and our module.
#
#   TESTS="t/010-session.t"   run only these files
#   CALLHQ_VALGRIND=1         run nginx under valgrind (make test-valgrind)
#   PERL5LIB=.../test-nginx/lib   use OpenResty's Test::Nginx instead of t/lib
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# sql/: functions only in sql/functions/, each defined once
scripts/sql-layout.sh

module=$top/build/ngx_http_callhq_module.so
[ -f "$module" ] || { echo "test.sh: build the module first (make)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/callhq-test.XXXXXX)
chmod 755 "$tmp"
read -r pg_port mock_port nginx_port < <(scripts/freeport.pl 3)

mock_pid=""
cleanup() {
    [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true
    scripts/pgbouncer.sh stop "$tmp/pgbouncer" 2>/dev/null || true
    scripts/pg.sh stop "$tmp/pg" 2>/dev/null || true
    if [ -f "$tmp/servroot/logs/nginx.pid" ]; then
        kill -QUIT "$(cat "$tmp/servroot/logs/nginx.pid")" 2>/dev/null || true
    fi
    if [ -z "${CALLHQ_KEEP_TMP:-}" ]; then
        rm -rf "$tmp"
    else
        echo "test.sh: kept $tmp"
    fi
}
trap cleanup EXIT

scripts/pg.sh start "$tmp/pg" "$pg_port"
conninfo="host=127.0.0.1 port=$pg_port dbname=callhq user=callhq"
sql/migrate.sh "$conninfo" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 "$conninfo" -f t/fixtures/orgs.sql >/dev/null

# An upgrade in place: a second database restored from a dump of one that
# commit 4895be3's migrations made (the last layout with functions in the
# migrations; orgs.sql and four chats), upgraded by today's migrate.sh. Its
# old rows must read back as written; t/100-chat.t and t/160-chat-context.t
# run against it after the other suites. With the whole suite only
# (TESTS unset), or CALLHQ_UPGRADE_TEST=1.
upgrade=${CALLHQ_UPGRADE_TEST:-}
[ -z "$upgrade" ] && [ -z "${TESTS:-}" ] && upgrade=1
if [ "$upgrade" = 1 ]; then
    upgrade_conninfo="host=127.0.0.1 port=$pg_port dbname=callhq_upgrade user=callhq"
    psql -X -q -v ON_ERROR_STOP=1 \
        "host=127.0.0.1 port=$pg_port dbname=postgres user=callhq" \
        -c "create database callhq_upgrade"
    psql -X -q -v ON_ERROR_STOP=1 "$upgrade_conninfo" \
        -f t/fixtures/upgrade-4895be3.sql >/dev/null
    sql/migrate.sh "$upgrade_conninfo" >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 "$upgrade_conninfo" \
        -f t/fixtures/upgrade-check.sql
    echo "test.sh: the 4895be3 fixture upgraded in place, its rows read back"
fi

python3 t/mock/mock_model.py --port "$mock_port" >"$tmp/mock.log" 2>&1 &
mock_pid=$!
for _ in $(seq 1 50); do
    grep -q listening "$tmp/mock.log" 2>/dev/null && break
    sleep 0.1
done

export TEST_NGINX_BINARY=${TEST_NGINX_BINARY:-/usr/sbin/nginx}
export TEST_NGINX_LOAD_MODULES=$module
export TEST_NGINX_SERVROOT=$tmp/servroot
export TEST_NGINX_PORT=$nginx_port
export TEST_NGINX_PG_CONNINFO=$conninfo
export TEST_NGINX_MOCK_PORT=$mock_port
export TEST_NGINX_LOG_LEVEL=${TEST_NGINX_LOG_LEVEL:-info}
export CALLHQ_TEST_PGDIR=$tmp/pg
export CALLHQ_TEST_PGPORT=$pg_port
export CALLHQ_TEST_TMP=$tmp

if [ -n "${CALLHQ_VALGRIND:-}" ]; then
    export TEST_NGINX_USE_VALGRIND=1
    export TEST_NGINX_VALGRIND_SUPPRESSIONS=$top/t/valgrind.supp
    # nginx under valgrind answers a block's first request slowly (a cold
    # start, new PostgreSQL connections): the blocks that set no time-out
    # of their own wait longer than the runner's 3 s
    export TEST_NGINX_TIMEOUT=${TEST_NGINX_TIMEOUT:-30}
fi

# OpenResty's Test::Nginx when it is installed, our own runner otherwise
inc=()
if perl -MTest::Nginx::Socket -e 1 2>/dev/null; then
    echo "test.sh: using the installed Test::Nginx::Socket"
else
    inc=(-I "$top/t/lib")
fi

# every pass runs even when one fails (a long valgrind run reports all)
failed=0
prove "${inc[@]}" ${TESTS:-t/*.t} || failed=1

# The chat, webhook and SMS-sending suites once more through PgBouncer (Debian's, in
# transaction mode: no named statements kept), as many deployments run:
# callhq_postgres_prepare off, LISTEN on a direct connection. With the
# whole suite only (TESTS unset), or CALLHQ_PGBOUNCER_TEST=1.
pgbouncer=${CALLHQ_PGBOUNCER_TEST:-}
[ -z "$pgbouncer" ] && [ -z "${TESTS:-}" ] && pgbouncer=1
if [ "$pgbouncer" = 1 ]; then
    read -r pgb_port < <(scripts/freeport.pl 1)
    scripts/pgbouncer.sh start "$tmp/pgbouncer" "$pgb_port" "$pg_port"
    echo "test.sh: chat, webhook and SMS-sending suites through PgBouncer"
    CALLHQ_TEST_PGBOUNCER=1 TEST_NGINX_PG_DIRECT=$conninfo \
    TEST_NGINX_PG_CONNINFO="host=127.0.0.1 port=$pgb_port dbname=callhq user=callhq" \
        prove "${inc[@]}" ${CALLHQ_PGBOUNCER_SUITES:-t/100-chat.t \
            t/110-chat-stream.t t/130-chat-turns.t t/160-chat-context.t \
            t/172-chat-batch.t t/200-webhooks.t t/260-two-nodes.t \
            t/320-sms-rest.t} || failed=1
fi

if [ "$upgrade" = 1 ]; then
    echo "test.sh: chat suites against the upgraded database"
    TEST_NGINX_PG_CONNINFO=$upgrade_conninfo \
        prove "${inc[@]}" t/100-chat.t t/160-chat-context.t || failed=1
fi
exit $failed
