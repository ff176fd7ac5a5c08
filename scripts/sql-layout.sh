#!/usr/bin/env bash
# Check the layout of sql/ (run by `make test` before the suites):
#   - a numbered migration (sql/NNN_*.sql) defines no function: functions
#     live in sql/functions/*.sql, re-applied by sql/migrate.sh every run
#   - no function name is defined twice anywhere in sql/, so the definition
#     in sql/functions/ is the live one
# Only statements at the start of a line count, not comments.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
shopt -s nullglob
status=0

create='^[[:space:]]*create[[:space:]]+(or[[:space:]]+replace[[:space:]]+)?function'

migrations=(sql/[0-9][0-9][0-9]_*.sql)
if [ ${#migrations[@]} -gt 0 ] &&
   grep -EinH "$create" "${migrations[@]}" >&2; then
    echo "sql-layout: a migration defines a function; put it in" \
         "sql/functions/ (a migration may only drop one)" >&2
    status=1
fi

twice=$(grep -EioH "$create[[:space:]]+callhq\.[a-z0-9_]+" \
             sql/*.sql sql/functions/*.sql |
        sed -E 's/.*callhq\.//' | tr 'A-Z' 'a-z' | sort | uniq -d)
if [ -n "$twice" ]; then
    for name in $twice; do
        echo "sql-layout: callhq.$name is defined more than once:" >&2
        grep -EinH "$create[[:space:]]+callhq\.$name[[:space:]]*\(" \
             sql/*.sql sql/functions/*.sql >&2 || true
    done
    status=1
fi

exit $status
