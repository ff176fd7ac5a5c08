#!/usr/bin/env bash
# `make test-deb`: the Debian package installed the way a user installs it,
# on a fresh Debian 12, then a chat with a session through Debian's nginx.
#
#   scripts/test-deb.sh [PACKAGE.deb]   (default: the one make deb built,
#                                        build/deb/libnginx-mod-http-callhq_<v>_<arch>.deb)
#
#  1. debootstrap bookworm (minbase) into /tmp/callhq-debroot.XXXXXX, from
#     the Debian mirror this machine's apt uses (CALLHQ_DEBIAN_MIRROR
#     overrides it), with bookworm-updates and the security suite as the
#     host has them; the downloaded .debs are kept in
#     /var/cache/callhq-debootstrap for the next run (the root is new each
#     time)
#  2. apt-get install ./the.deb in it: apt brings nginx (the nginx-abi-*
#     the package depends on) and postgresql-client (recommended)
#  3. checks the files: the module, modules-enabled/50-mod-http-callhq.conf
#     a link to modules-available, the SQL, the example site
#  4. a throwaway PostgreSQL of the host (scripts/pg.sh, 127.0.0.1 only:
#     the root shares the host's network), migrated by the package's
#     /usr/share/callhq/sql/migrate.sh run inside the root; a key
#  5. the package's example site (its database, port and model changed by
#     sed) in sites-enabled, stock nginx started in the root, the mock
#     model (t/mock/mock_model.py, "recall") on the host
#  6. an assistant, a session, a chat, a streamed chat that remembers the
#     first, the session's history
#  7. apt-get remove: the link set aside (.removed); purge: gone
#
# Needs root (debootstrap, chroot, mount). CALLHQ_KEEP_ROOT=1 keeps the
# root for a look (nothing mounted in it any more: rm -rf it when done).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

deb=${1:-build/deb/$(dpkg-parsechangelog -l debian/changelog -SSource)_$(dpkg-parsechangelog -l debian/changelog -SVersion)_$(dpkg-architecture -qDEB_HOST_ARCH).deb}
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
[ -f "$deb" ] || { echo "test-deb.sh: no $deb" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "test-deb.sh: needs root (debootstrap, chroot)" >&2; exit 1; }
pkg=$(dpkg-deb -f "$deb" Package)

say() { printf 'test-deb.sh: %s (%ss)\n' "$*" "$SECONDS"; }
fail() { echo "test-deb.sh: FAIL: $*" >&2; exit 1; }

# the mirror and the security mirror of the host's apt (one-line or
# deb822 sources)
uris=$(for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                /etc/apt/sources.list.d/*.sources; do
           [ -f "$f" ] && cat "$f"
       done | sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\).*/\2/p; s/^URIs: *//p' \
       | tr ' ' '\n' | sort -u)
mirror=${CALLHQ_DEBIAN_MIRROR:-$(grep -E '/debian/?$' <<<"$uris" | head -n 1 || true)}
mirror=${mirror:-http://deb.debian.org/debian}
security=$(grep -E '/debian-security/?$' <<<"$uris" | head -n 1 || true)

root=$(mktemp -d /tmp/callhq-debroot.XXXXXX)
chmod 755 "$root"
tmp=$(mktemp -d /tmp/callhq-testdeb.XXXXXX)
chmod 755 "$tmp"
read -r pg_port mock_port nginx_port < <(scripts/freeport.pl 3)
mock_pid=""

cleanup() {
    set +e
    if [ -f "$root/run/nginx.pid" ]; then
        kill -QUIT "$(cat "$root/run/nginx.pid")" 2>/dev/null
        sleep 0.5
    fi
    [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null
    scripts/pg.sh stop "$tmp/pg" 2>/dev/null
    # ours, and any debootstrap left behind when it failed, deepest first
    awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/mounts \
        | sort -r | while read -r m; do umount "$m" || umount -l "$m"; done
    if [ -n "${CALLHQ_KEEP_ROOT:-}" ]; then
        echo "test-deb.sh: kept $root and $tmp"
    else
        rm -rf --one-file-system "$root" "$tmp"
    fi
}
trap cleanup EXIT

in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
                LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

# 1. a fresh bookworm
cache=/var/cache/callhq-debootstrap
mkdir -p "$cache"
say "debootstrap bookworm from $mirror into $root"
nice debootstrap --variant=minbase --cache-dir="$cache" bookworm "$root" \
    "$mirror" >"$tmp/debootstrap.log" 2>&1 \
    || { tail -n 20 "$tmp/debootstrap.log" >&2; fail "debootstrap"; }
{
    echo "deb $mirror bookworm main"
    echo "deb $mirror bookworm-updates main"
    [ -n "$security" ] && echo "deb $security bookworm-security main"
} > "$root/etc/apt/sources.list"
# no daemon started by a package's scripts; the test starts nginx itself
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
mount -t proc proc "$root/proc"

# 2. the package, as a user installs it
cp "$deb" "$root/tmp/"
say "apt-get install ./$(basename "$deb")"
{
    in_root apt-get update -qq
    in_root nice apt-get install -y -q "./tmp/$(basename "$deb")"
} >"$tmp/apt.log" 2>&1 || { tail -n 30 "$tmp/apt.log" >&2; fail "apt-get install"; }
in_root dpkg-query -W -f='${Package} ${Version}\n' "$pkg" nginx postgresql-client-15

# 3. where the files are
link=$root/etc/nginx/modules-enabled/50-mod-http-callhq.conf
[ -L "$link" ] || fail "no $link"
[ "$(readlink "$link")" = /usr/share/nginx/modules-available/mod-http-callhq.conf ] \
    || fail "$link points to $(readlink "$link")"
grep -qx 'load_module modules/ngx_http_callhq_module.so;' \
    "$root/usr/share/nginx/modules-available/mod-http-callhq.conf" \
    || fail "mod-http-callhq.conf has no load_module line"
for f in /usr/lib/nginx/modules/ngx_http_callhq_module.so \
         /usr/share/callhq/sql/migrate.sh /usr/share/callhq/sql/001_schema.sql \
         /usr/share/callhq/sql/functions/chat.sql \
         "/usr/share/doc/$pkg/examples/callhq-site.conf" \
         "/usr/share/doc/$pkg/README.md.gz" "/usr/share/doc/$pkg/copyright"; do
    [ -e "$root$f" ] || fail "no $f in the package"
done
say "installed: the module enabled through $(basename "$link"), SQL, docs"

# 4. the database: the host's throwaway cluster, migrated from the package
scripts/pg.sh start "$tmp/pg" "$pg_port"
conninfo="host=127.0.0.1 port=$pg_port dbname=callhq user=callhq"
in_root /usr/share/callhq/sql/migrate.sh "$conninfo" >"$tmp/migrate.log" 2>&1 \
    || { cat "$tmp/migrate.log" >&2; fail "the package's migrate.sh"; }
grep -q '^applied functions' "$tmp/migrate.log" || fail "migrate.sh applied no functions"
key=$(in_root psql -X -q -tA -v ON_ERROR_STOP=1 "$conninfo" \
          -c "select callhq.api_key_create(callhq.org_create('test-deb'))")
say "migrated by /usr/share/callhq/sql/migrate.sh in the root"

# 5. the example site, stock nginx
python3 t/mock/mock_model.py --port "$mock_port" >"$tmp/mock.log" 2>&1 &
mock_pid=$!
sed -e "s|^callhq_postgres .*|callhq_postgres \"$conninfo\";|" \
    -e "s|listen 8080;|listen 127.0.0.1:$nginx_port;|" \
    -e "s|http://127.0.0.1:8000/|http://127.0.0.1:$mock_port/|" \
    "$root/usr/share/doc/$pkg/examples/callhq-site.conf" \
    > "$root/etc/nginx/sites-available/callhq"
ln -s ../sites-available/callhq "$root/etc/nginx/sites-enabled/callhq"
rm -f "$root/etc/nginx/sites-enabled/default"    # port 80 is not ours
in_root nginx -t -q || fail "nginx -t"
in_root nginx || fail "nginx did not start"
for _ in $(seq 1 50); do
    curl -s -o /dev/null "http://127.0.0.1:$nginx_port/" && break
    sleep 0.1
done
say "stock nginx $(in_root nginx -v 2>&1 | sed 's|.*/||') serving the example site on :$nginx_port"

# 6. a conversation
url=http://127.0.0.1:$nginx_port
H=(-H "Authorization: Bearer $key" -H 'Content-Type: application/json')
json() { python3 -c 'import json,sys; print(json.load(sys.stdin)'"$1"')'; }

asst=$(curl -sf "$url/assistant" "${H[@]}" -d '{"name":"deb",
         "model":{"provider":"openai","model":"recall",
                  "messages":[{"role":"system","content":"You are helpful."}]}}' \
       | json '["id"]') || fail "POST /assistant"
sess=$(curl -sf "$url/session" "${H[@]}" -d "{\"assistantId\":\"$asst\"}" \
       | json '["id"]') || fail "POST /session"
code=$(curl -s -o "$tmp/chat1.json" -w '%{http_code}' "$url/chat" "${H[@]}" \
       -d "{\"sessionId\":\"$sess\",\"input\":\"Hi, my name is Sarah\"}")
[ "$code" = 201 ] || fail "the first chat answered $code: $(cat "$tmp/chat1.json")"
curl -sfN "$url/chat" "${H[@]}" \
    -d "{\"sessionId\":\"$sess\",\"input\":\"What is my name?\",\"stream\":true}" \
    > "$tmp/chat2.sse" || fail "the streamed chat"
reply=$(sed -n 's/^data: //p' "$tmp/chat2.sse" \
        | python3 -c 'import json,sys; print("".join(json.loads(l)["delta"] for l in sys.stdin if l.strip()))')
grep -q Sarah <<<"$reply" || fail "the second chat did not remember: '$reply'"
n=$(curl -sf "$url/session/$sess" -H "Authorization: Bearer $key" \
    | json '["messages"].__len__()')
[ "$n" = 4 ] || fail "the session holds $n messages, not 4"
# the example's /metrics counted both (a chat is counted as its request
# is freed, a moment after its answer)
for _ in $(seq 1 50); do
    curl -sf "$url/metrics" > "$tmp/metrics.txt" || fail "GET /metrics"
    grep -q '^callhq_chats_total{surface="chat",status="completed"} 2$' \
        "$tmp/metrics.txt" && break
    sleep 0.1
done
grep -q '^callhq_chats_total{surface="chat",status="completed"} 2$' "$tmp/metrics.txt" \
    || fail "/metrics: $(grep '^callhq_chats_total' "$tmp/metrics.txt" | tr '\n' ' ')"
grep -q "chat=" "$root/var/log/nginx/callhq.log" || fail "no access log line"
if grep -E '\[(alert|crit|emerg)\]' "$root/var/log/nginx/error.log"; then
    fail "nginx logged the above"
fi
say "a session of two chats through Debian's nginx, counted by /metrics: '$reply'"

# 7. remove keeps the admin's choice aside, purge takes the link away
kill -QUIT "$(cat "$root/run/nginx.pid")"
for _ in $(seq 1 50); do [ -f "$root/run/nginx.pid" ] || break; sleep 0.1; done
in_root apt-get remove -y -q "$pkg" >>"$tmp/apt.log" 2>&1 || fail "apt-get remove"
[ -L "$link.removed" ] && [ ! -e "$link" ] || fail "remove: the link was not set aside"
in_root apt-get purge -y -q "$pkg" >>"$tmp/apt.log" 2>&1 || fail "apt-get purge"
[ ! -e "$link" ] && [ ! -L "$link.removed" ] || fail "purge left a link"
say "remove set the link aside, purge removed it"

say "PASS"
