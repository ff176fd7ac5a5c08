#!/usr/bin/env bash
# The clients' tests against the real module: the TypeScript package
# (clients/typescript, Node's test runner), the web chat widget in
# headless Chromium (clients/browser-test, playwright-core), and the
# official Vapi and OpenAI SDKs (clients/sdk-compat, clients/openai-compat;
# the latter against the callhq_openai location at /v1/).
#
# Starts its own throwaway PostgreSQL (orgs with keys cq_test_a and
# cq_test_b, as scripts/test.sh), the mock model and nginx with the module
# and the widget (widget/setup.sh), on free ports, and stops them at exit.
#
#   scripts/test-clients.sh            npm ci (when needed), tsc, all tests
#   scripts/test-clients.sh CMD ...    the same stack, then CMD instead of
#                                      the tests (its environment has
#                                      CALLHQ_URL, CALLHQ_KEY, ...)
#   CALLHQ_KEEP_TMP=1                  keep the temporary directory (logs)
#   CALLHQ_SCREENSHOT=path.png         where the browser test saves its
#                                      screenshot (default clients/test-output/)
#
# Needs node (18+), npm and /usr/bin/chromium: scripts/deps.sh clients.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

module=$top/build/ngx_http_callhq_module.so
[ -f "$module" ] || { echo "test-clients.sh: build the module first (make)" >&2; exit 1; }
for tool in node npm; do
    command -v "$tool" >/dev/null \
        || { echo "test-clients.sh: $tool missing (scripts/deps.sh clients)" >&2; exit 1; }
done

# npm ci only when package-lock.json changed since the last install
npm_ci() {
    local dir=$1
    if [ ! -f "$dir/node_modules/.package-lock.json" ] \
            || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    fi
}

if [ $# -eq 0 ]; then
    [ -x /usr/bin/chromium ] \
        || { echo "test-clients.sh: /usr/bin/chromium missing (scripts/deps.sh clients)" >&2; exit 1; }
    npm_ci clients/typescript
    npm_ci clients/browser-test
    npm_ci clients/sdk-compat
    npm_ci clients/openai-compat
    (cd clients/typescript && node_modules/.bin/tsc -p tsconfig.json \
                           && node_modules/.bin/tsc -p tsconfig.test.json)
fi

tmp=$(mktemp -d /tmp/callhq-clients.XXXXXX)
chmod 755 "$tmp"
mkdir -p "$tmp/nginx/conf" "$tmp/nginx/logs" "$tmp/nginx/tmp"
read -r pg_port mock_port nginx_port < <(scripts/freeport.pl 3)

mock_pid=""
nginx_pid=""
# shellcheck disable=SC2317  # (run by the trap)
cleanup() {
    local rc=$?
    if [ -n "$nginx_pid" ]; then kill -QUIT "$nginx_pid" 2>/dev/null || true; fi
    if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    scripts/pg.sh stop "$tmp/pg" 2>/dev/null || true
    if [ "$rc" -ne 0 ] && [ -f "$tmp/nginx/logs/error.log" ]; then
        echo "--- nginx error.log (last 30 lines)" >&2
        tail -n 30 "$tmp/nginx/logs/error.log" >&2 || true
    fi
    if [ -z "${CALLHQ_KEEP_TMP:-}" ]; then
        rm -rf "$tmp"
    else
        echo "test-clients.sh: kept $tmp"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/pg.sh start "$tmp/pg" "$pg_port"
conninfo="host=127.0.0.1 port=$pg_port dbname=callhq user=callhq"
sql/migrate.sh "$conninfo" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 "$conninfo" -f t/fixtures/orgs.sql >/dev/null

python3 t/mock/mock_model.py --port "$mock_port" >"$tmp/mock.log" 2>&1 &
mock_pid=$!
for _ in $(seq 1 50); do
    grep -q listening "$tmp/mock.log" 2>/dev/null && break
    sleep 0.1
done

user=""
[ "$(id -u)" = 0 ] && user="user root;"

# as scripts/run.sh, plus the widget's fragments (written below)
cat > "$tmp/nginx/conf/nginx.conf" <<CONF
load_module $module;
$user
daemon off;
worker_processes 2;
pid $tmp/nginx/logs/nginx.pid;
error_log $tmp/nginx/logs/error.log info;

events { worker_connections 1024; }

http {
    access_log $tmp/nginx/logs/access.log;
    client_body_temp_path $tmp/nginx/tmp/body;
    proxy_temp_path $tmp/nginx/tmp/proxy;
    fastcgi_temp_path $tmp/nginx/tmp/fastcgi;
    uwsgi_temp_path $tmp/nginx/tmp/uwsgi;
    scgi_temp_path $tmp/nginx/tmp/scgi;

    callhq_postgres "$conninfo";
    callhq_webhook_allow 127.0.0.1;
    include $tmp/nginx/conf/callhq-widget-http*.conf;

    server {
        listen 127.0.0.1:$nginx_port;

        location / {
            callhq_api;
            callhq_model_location /_model;
        }

        location /v1/ {
            callhq_openai;
            callhq_model_location /_model;
        }

        location = /_model {
            internal;
            client_max_body_size 0;
            proxy_pass http://127.0.0.1:$mock_port/v1/chat/completions;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 120s;
        }

        include $tmp/nginx/conf/callhq-widget-server*.conf;
    }
}
CONF

/usr/sbin/nginx -p "$tmp/nginx" -c conf/nginx.conf -t -q
/usr/sbin/nginx -p "$tmp/nginx" -c conf/nginx.conf &
nginx_pid=$!
url=http://127.0.0.1:$nginx_port

# The widget's assistant streams slowly (150 ms between deltas), so that
# the browser test can see the text arrive piece by piece.
widget_assistant=$(widget/setup.sh "$conninfo" "$url" "$tmp" "$tmp/nginx/conf" \
                       "recall+slowstream-150")
kill -HUP "$nginx_pid"
for _ in $(seq 1 50); do
    curl -s -o /dev/null -w '%{content_type}' "$url/" 2>/dev/null | grep -q text/html && break
    sleep 0.1
done

export CALLHQ_URL=$url
export CALLHQ_KEY=cq_test_a
export CALLHQ_KEY_B=cq_test_b
export CALLHQ_PG=$conninfo
export CALLHQ_MOCK_URL=http://127.0.0.1:$mock_port
export CALLHQ_WIDGET_KEY; CALLHQ_WIDGET_KEY=$(cat "$tmp/widget-key")
export CALLHQ_WIDGET_ASSISTANT=$widget_assistant
export CALLHQ_SCREENSHOT=${CALLHQ_SCREENSHOT:-$top/clients/test-output/widget.png}

if [ $# -gt 0 ]; then
    "$@"
    exit
fi

# The test files share this one server, each with assistants and sessions
# of its own (and, for the widget's rate limit, its own client addresses).
rc=0
(cd clients/typescript && node --test build/test/*.test.js) || rc=1
(cd clients/browser-test && node --test widget.test.mjs) || rc=1
(cd clients/sdk-compat && node --test sdk.test.mjs) || rc=1
(cd clients/openai-compat && node --test openai.test.mjs) || rc=1
exit "$rc"
