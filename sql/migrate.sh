#!/usr/bin/env bash
# Apply the schema of ngx_http_callhq_module: migrations, then functions.
#
#   sql/migrate.sh "<libpq conninfo>"      e.g. "host=127.0.0.1 dbname=callhq"
#
# The schema comes in two kinds of files (Flyway's versioned and repeatable
# migrations):
#
#   sql/NNN_*.sql        schema changes (tables, columns, indexes, data),
#                        applied once each, in name order, each in one
#                        transaction together with its row in
#                        callhq.schema_migrations; one line printed per file
#   sql/functions/*.sql  every SQL function, each defined once, as it is
#                        now (create or replace); all of them re-applied on
#                        every run, in one transaction, after the migrations
#
# So a fresh install and an upgrade are the same command, and the live
# definition of a function is the only one in sql/. A migration must not
# call a callhq function (no column default, data update or DO block that
# needs one): on a fresh database the migrations run before any function
# exists. A migration that changes a function's arguments or result type
# drops the old function (drop function if exists); the functions step
# then creates the new one.
#
# The functions transaction runs with check_function_bodies off, so the
# order of the files (and of the functions in them) does not matter. The
# webhook triggers are attached there too, next to their functions in
# functions/webhook.sql (drop trigger if exists, create constraint
# trigger): a trigger can only be created once its function exists, which
# on a fresh database is after the migrations. That transaction briefly
# locks callhq.sessions and callhq.chats against writes.
#
# Two runs at once are safe: every transaction takes the same advisory lock
# first, and the second run skips the migrations the first applied. The
# database must be UTF8.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 \"<libpq conninfo>\"" >&2
    exit 2
fi
conninfo=$1
dir=$(cd "$(dirname "$0")" && pwd)

# no "already exists, skipping" notices
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

run_psql() {
    psql -X -q -v ON_ERROR_STOP=1 -d "$conninfo" "$@"
}

# All of this script's transactions take this lock first.
lock="select pg_advisory_xact_lock(hashtext('callhq.migrate')) as locked \\gset"

run_psql -1 <<EOF
$lock
create schema if not exists callhq;
create table if not exists callhq.schema_migrations (
    version     text        primary key,
    applied_at  timestamptz not null default now()
);
EOF

applied=$(run_psql -At -c "select version from callhq.schema_migrations")

shopt -s nullglob
LC_COLLATE=C            # glob order = byte order of the names
files=("$dir"/[0-9][0-9][0-9]_*.sql)

for file in "${files[@]}"; do
    version=$(basename "$file" .sql)
    if grep -qxF -- "$version" <<<"$applied"; then
        continue
    fi

    # The check is repeated under the lock, inside the transaction, for a
    # concurrent run that got there first.
    run_psql -1 -v version="$version" -v file="$file" <<EOF
$lock
select exists (select 1 from callhq.schema_migrations
                where version = :'version') as already_applied \gset
\if :already_applied
\else
\i :file
insert into callhq.schema_migrations (version) values (:'version');
\echo applied :version
\endif
EOF
done

# Every function, and the triggers that call them, as sql/functions/ has
# them now: one transaction, so a failure leaves the old ones in place.
functions=("$dir"/functions/*.sql)
script="$lock
set local check_function_bodies = off;"
for file in "${functions[@]}"; do
    case $file in *"'"*)
        echo "migrate.sh: a quote in the path $file" >&2; exit 1 ;;
    esac
    script+=$'\n'"\\i '$file'"
done
if [ ${#functions[@]} -gt 0 ]; then
    run_psql -1 <<<"$script"
    echo "applied functions (${#functions[@]} files)"
fi
