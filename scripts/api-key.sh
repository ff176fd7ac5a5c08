#!/usr/bin/env bash
# `make api-key PG="conninfo" ORG=name`: a new API key for an organisation.
#
#   scripts/api-key.sh "<libpq conninfo>" "<org name>"
#
# The organisation named ORG gets a new key; when there is none by that
# name it is created first (callhq.org_create), so running it again gives
# the same organisation a second key (keys of one org are interchangeable;
# revoke one by its prefix, see sql/functions/org.sql). Two organisations
# of that name: it refuses, and names their ids. The key is printed once on
# stdout, alone (KEY=$(make -s api-key ...)); the org's id goes to stderr.
# Only the key's SHA-256 is stored (callhq.api_key_create).
set -euo pipefail

if [ $# -ne 2 ] || [ -z "$1" ] || [ -z "$2" ]; then
    echo "usage: $0 \"<libpq conninfo>\" \"<org name>\"" >&2
    exit 2
fi
conninfo=$1
org=$2

# One transaction under an advisory lock: two runs at once for a new name
# make one organisation, not two. psql variables (:'org') quote the name.
out=$(psql -X -q -tA -v ON_ERROR_STOP=1 -v org="$org" -d "$conninfo" <<'EOF'
begin;
select pg_advisory_xact_lock(hashtext('callhq.api-key'));
select count(*) as n, string_agg(id::text, ' ') as ids
  from callhq.orgs where name = :'org' \gset
select :n > 1 as several \gset
\if :several
rollback;
\echo several :ids
\else
select coalesce((select id from callhq.orgs where name = :'org'),
                callhq.org_create(:'org')) as org_id \gset
select callhq.api_key_create(:'org_id') as key \gset
commit;
\echo org :org_id
\echo key :key
\endif
EOF
) || exit 1

case $out in
*"several "*)
    echo "api-key.sh: several organisations are named '$org':" \
         "${out#*several }; add a key to one with" \
         "select callhq.api_key_create('<org id>')" >&2
    exit 1 ;;
esac

org_id=$(sed -n 's/^org //p' <<<"$out")
key=$(sed -n 's/^key //p' <<<"$out")
if [ -z "$key" ]; then
    echo "api-key.sh: no key made: $out" >&2
    exit 1
fi
echo "api-key.sh: a new key for org '$org' ($org_id), shown only now:" >&2
echo "$key"
