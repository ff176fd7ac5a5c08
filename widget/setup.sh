#!/usr/bin/env bash
# Set up the CallHQ web chat widget on an nginx that serves the API.
#
#   widget/setup.sh CONNINFO API_URL STATE_DIR CONF_DIR [MODEL]
#
#   CONNINFO   libpq conninfo of the module's database
#   API_URL    where the API answers, e.g. http://127.0.0.1:8080
#   STATE_DIR  keeps widget-key and widget-assistant between runs
#   CONF_DIR   receives callhq-widget-http.conf (include it in http {})
#              and callhq-widget-server.conf (include it in the API's
#              server {}); reload nginx afterwards (kill -HUP <master pid>)
#   MODEL      the widget assistant's model (default recall)
#
# What it does:
#   1. creates an organisation "web widget" and an API key for it (once;
#      the key is kept in STATE_DIR/widget-key and never reaches a browser),
#   2. creates that org's only assistant through the API (once, or again
#      when the kept one is gone; every run sets its model to MODEL), kept
#      in STATE_DIR/widget-assistant,
#   3. writes the two nginx fragments:
#        GET  /                        the demo page (widget/index.html)
#        GET  /widget/callhq-chat.js   the widget
#        POST /widget/chat             chat for the widget's assistant only:
#             rate-limited per client address, the body must be exactly
#             {"input":"...","customer":{"externalId":"..."},"stream":true}
#             and is rebuilt with the pinned assistantId before nginx passes
#             it, with the widget org's key, to the API's POST /chat.
#
# Prints the assistant id.
set -euo pipefail

if [ $# -lt 4 ]; then
    echo "usage: $0 CONNINFO API_URL STATE_DIR CONF_DIR [MODEL]" >&2
    exit 2
fi
conninfo=$1
api=${2%/}
state=$3
conf=$4
model=${5:-recall}
widget=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$state" "$conf"

# 1. the widget's own organisation and key
if [ ! -s "$state/widget-key" ]; then
    (umask 077
     psql -X -q -tA -v ON_ERROR_STOP=1 "$conninfo" \
         -c "select callhq.api_key_create(callhq.org_create('web widget'))" \
         > "$state/widget-key.new")
    mv "$state/widget-key.new" "$state/widget-key"
fi
key=$(cat "$state/widget-key")

json_field() {      # json_field NAME < json
    python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"
}

# 2. its one assistant, with MODEL (the API may need a moment after nginx starts)
body=$(python3 - "$model" <<'PY'
import json, sys
print(json.dumps({
    "name": "web widget",
    "model": {"provider": "openai", "model": sys.argv[1], "messages": [
        {"role": "system",
         "content": "You are the assistant of a website's chat widget. "
                    "Answer briefly and politely."}]},
    "metadata": {"channel": "web-widget"},
}))
PY
)
api_call() {        # api_call METHOD PATH [BODY]: prints the body, then the status
    local out
    for _ in $(seq 1 50); do
        if out=$(curl -s -w '\n%{http_code}' -X "$1" -H "Authorization: Bearer $key" \
                      -H 'Content-Type: application/json' ${3:+-d "$3"} "$api$2"); then
            printf '%s\n' "$out"
            return 0
        fi
        sleep 0.1
    done
    echo "widget/setup.sh: no answer from $api" >&2
    return 1
}
assistant=""
if [ -s "$state/widget-assistant" ]; then
    assistant=$(cat "$state/widget-assistant")
    # still there? then bring its model up to date
    [ "$(api_call PATCH "/assistant/$assistant" "$body" | tail -n 1)" = 200 ] || assistant=""
fi
if [ -z "$assistant" ]; then
    out=$(api_call POST /assistant "$body")
    assistant=$(sed '$d' <<<"$out" | json_field id 2>/dev/null || true)
    if [ -z "$assistant" ]; then
        echo "widget/setup.sh: could not create the assistant: $out" >&2
        exit 1
    fi
    echo "$assistant" > "$state/widget-assistant"
fi

# 3. the nginx fragments
cat > "$conf/callhq-widget-http.conf" <<CONF
# CallHQ web chat widget (written by widget/setup.sh)
limit_req_zone \$binary_remote_addr zone=callhq_widget:1m rate=20r/m;

# The only body POST /widget/chat passes on: the widget's own, exactly as
# JSON.stringify writes it. Anything else (another assistantId, an inline
# assistant, a sessionId, extra fields) matches nothing and is refused.
map \$request_body \$callhq_widget_body {
    '~^\\{"input":(?<cq_input>"(?:[^"\\\\\\\\]|\\\\\\\\.)*"),"customer":\\{"externalId":"(?<cq_customer>[A-Za-z0-9_-]{8,64})"\\},"stream":true\\}\$'
        '{"assistantId":"$assistant","input":\$cq_input,"customer":{"externalId":"\$cq_customer"},"stream":true}';
    default '';
}
CONF

cat > "$conf/callhq-widget-server.conf" <<CONF
# CallHQ web chat widget (written by widget/setup.sh)
location = / {
    root $widget;
    try_files /index.html =404;
    charset utf-8;
    add_header Cache-Control no-cache;
}

location = /widget/callhq-chat.js {
    alias $widget/callhq-chat.js;
    default_type application/javascript;
    charset utf-8;
    add_header Cache-Control no-cache;
}

# Chat for the widget's assistant, with the widget org's key added here:
# the browser never sees a key, and this location reaches nothing but
# POST /chat for that one assistant.
location = /widget/chat {
    if (\$request_method != POST) {
        return 405;
    }
    limit_req zone=callhq_widget burst=5 nodelay;
    limit_req_status 429;
    # the whole body in memory, so that \$request_body sees it
    client_max_body_size 8k;
    client_body_buffer_size 8k;
    # nginx's own refusals, and the API's 400 (a body that is not the
    # widget's), as JSON errors like the API's
    proxy_intercept_errors on;
    error_page 400 = @callhq_widget_400;
    error_page 405 = @callhq_widget_405;
    error_page 413 = @callhq_widget_413;
    error_page 429 = @callhq_widget_429;

    proxy_pass $api/chat;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Authorization "Bearer $key";
    proxy_set_header Cookie "";
    proxy_set_header Content-Type application/json;
    proxy_set_body \$callhq_widget_body;
    proxy_buffering off;
    proxy_read_timeout 120s;
}

location @callhq_widget_400 {
    default_type application/json;
    return 400 '{"statusCode":400,"error":"Bad Request","message":"body must be JSON: {input: string, customer: {externalId: string}, stream: true}"}';
}
location @callhq_widget_405 {
    default_type application/json;
    add_header Allow POST always;
    return 405 '{"statusCode":405,"error":"Method Not Allowed","message":"use POST"}';
}
location @callhq_widget_413 {
    default_type application/json;
    return 413 '{"statusCode":413,"error":"Payload Too Large","message":"message too long"}';
}
location @callhq_widget_429 {
    default_type application/json;
    return 429 '{"statusCode":429,"error":"Too Many Requests","message":"too many messages, wait a moment"}';
}
CONF

echo "$assistant"
