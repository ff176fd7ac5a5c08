#!/usr/bin/env bash
# Apply the schema migrations of ngx_http_callhq_module.
#
#   sql/migrate.sh "<libpq conninfo>"      e.g. "host=127.0.0.1 dbname=callhq"
#
# Applies every sql/NNN_*.sql that callhq.schema_migrations does not list
# yet, in name order, each in one transaction together with its row there,
# and prints one line per file applied. Running it again applies nothing.
# Two runs at once are safe: they take turns on an advisory lock, and the
# second skips what the first applied. The database must be UTF8.
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
