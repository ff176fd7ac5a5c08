#!/usr/bin/env bash
# `make run`: a throwaway PostgreSQL, the demo model and nginx with the
# module on 127.0.0.1:${PORT:-8080}, in the foreground until Ctrl-C.
#
#   PORT=8080                  where nginx listens
#   CALLHQ_UPSTREAM_URL=https://api.openai.com/v1/chat/completions
#   CALLHQ_UPSTREAM_KEY=sk-... an OpenAI-compatible server instead of the
#                              demo model
#   CALLHQ_MODEL=gpt-4o-mini   the demo assistant's model (default recall)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

port=${PORT:-8080}
run=$top/.run
mkdir -p "$run/nginx/conf" "$run/nginx/logs" "$run/nginx/tmp"
read -r pg_port mock_port < <(scripts/freeport.pl 2)

mock_pid=""
nginx_pid=""
stop() {
    trap - INT TERM EXIT
    echo
    echo "stopping..."
    [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null || true
    [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    scripts/pg.sh stop "$run/pg" || true
    echo "stopped (data kept in .run/; rm -rf .run to start afresh)"
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

scripts/pg.sh start "$run/pg" "$pg_port"
conninfo="host=127.0.0.1 port=$pg_port dbname=callhq user=callhq"
sql/migrate.sh "$conninfo"
rm -f "$run"/nginx/conf/callhq-widget-*.conf

if [ ! -s "$run/api-key" ]; then
    psql -X -q -tA -v ON_ERROR_STOP=1 "$conninfo" \
        -c "select callhq.api_key_create(callhq.org_create('demo'))" \
        > "$run/api-key"
fi
key=$(cat "$run/api-key")

if [ -n "${CALLHQ_UPSTREAM_URL:-}" ]; then
    upstream=$CALLHQ_UPSTREAM_URL
    model=${CALLHQ_MODEL:-gpt-4o-mini}
else
    python3 t/mock/mock_model.py --port "$mock_port" > "$run/mock.log" 2>&1 &
    mock_pid=$!
    upstream=http://127.0.0.1:$mock_port/v1/chat/completions
    model=${CALLHQ_MODEL:-recall}
fi

auth=""
if [ -n "${CALLHQ_UPSTREAM_KEY:-}" ]; then
    auth="proxy_set_header Authorization \"Bearer $CALLHQ_UPSTREAM_KEY\";"
fi

user=""
[ "$(id -u)" = 0 ] && user="user root;"

# texts answered late go to api.twilio.com (README: SMS): nginx resolves
# that name itself, with the machine's first name server
resolver=""
ns=$(awk '$1 == "nameserver" { print $2; exit }' /etc/resolv.conf 2>/dev/null || true)
case "$ns" in
    "") ;;
    *:*) resolver="resolver [$ns] ipv6=off;" ;;
    *) resolver="resolver $ns ipv6=off;" ;;
esac

cat > "$run/nginx/conf/nginx.conf" <<CONF
load_module $top/build/ngx_http_callhq_module.so;
$user
daemon off;
worker_processes 2;
pid $run/nginx/logs/nginx.pid;
error_log $run/nginx/logs/error.log info;

events { worker_connections 1024; }

http {
    log_format callhq '\$remote_addr [\$time_local] "\$request" \$status '
                      '\$body_bytes_sent \$request_time';
    access_log $run/nginx/logs/access.log callhq;
    client_body_temp_path $run/nginx/tmp/body;
    proxy_temp_path $run/nginx/tmp/proxy;
    fastcgi_temp_path $run/nginx/tmp/fastcgi;
    uwsgi_temp_path $run/nginx/tmp/uwsgi;
    scgi_temp_path $run/nginx/tmp/scgi;

    callhq_postgres "$conninfo";
    callhq_webhook_allow 127.0.0.1;    # webhooks to receivers on this machine
    $resolver
    include $run/nginx/conf/callhq-widget-http*.conf;

    server {
        listen 127.0.0.1:$port;

        location / {
            callhq_api;
            callhq_model_location /_model;
        }

        # the OpenAI surface: baseURL "http://host:port/v1" in OpenAI's SDKs
        location /v1/ {
            callhq_openai;
            callhq_model_location /_model;
        }

        # Twilio's Messaging webhook (README: SMS)
        location = /sms/twilio {
            callhq_sms_twilio;
            callhq_model_location /_model;
        }

        # Prometheus: this machine only
        location = /metrics {
            callhq_metrics;
            allow 127.0.0.1;
            deny all;
        }

        location = /_model {
            internal;
            client_max_body_size 0;
            proxy_pass $upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_server_name on;
            proxy_buffering off;
            proxy_read_timeout 120s;
            $auth
        }

        include $run/nginx/conf/callhq-widget-server*.conf;
    }
}
CONF

/usr/sbin/nginx -p "$run/nginx" -c conf/nginx.conf -t -q
/usr/sbin/nginx -p "$run/nginx" -c conf/nginx.conf &
nginx_pid=$!
sleep 0.5

# the web chat widget at /: its own org, key and assistant (widget/setup.sh)
widget/setup.sh "$conninfo" "http://127.0.0.1:$port" "$run" "$run/nginx/conf" \
    "$model" >/dev/null
kill -HUP "$nginx_pid"

url=http://127.0.0.1:$port
cat <<MSG

ngx_http_callhq_module is running at $url
web chat widget: $url/  (demo page; nginx adds the widget's key, see widget/)
API key: $key   (also in .run/api-key)
model upstream: $upstream
logs: .run/nginx/logs/error.log, .run/nginx/logs/access.log
metrics (Prometheus): $url/metrics

Try it:

  KEY=\$(cat .run/api-key)
  A=\$(curl -s $url/assistant -H "Authorization: Bearer \$KEY" \\
        -H 'Content-Type: application/json' \\
        -d '{"name":"demo","model":{"provider":"openai","model":"$model",
             "messages":[{"role":"system","content":"You are helpful."}]}}' \\
      | sed 's/.*"id" *: *"\\([^"]*\\)".*/\\1/;q')
  S=\$(curl -s $url/session -H "Authorization: Bearer \$KEY" \\
        -H 'Content-Type: application/json' -d "{\"assistantId\":\"\$A\"}" \\
      | sed 's/.*"id" *: *"\\([^"]*\\)".*/\\1/;q')
  curl -s $url/chat -H "Authorization: Bearer \$KEY" \\
       -H 'Content-Type: application/json' \\
       -d "{\"sessionId\":\"\$S\",\"input\":\"Hi, my name is Sarah\"}"
  curl -sN $url/chat -H "Authorization: Bearer \$KEY" \\
       -H 'Content-Type: application/json' \\
       -d "{\"sessionId\":\"\$S\",\"input\":\"What is my name?\",\"stream\":true}"
  curl -s $url/session/\$S -H "Authorization: Bearer \$KEY"

SMS: a phone number on that assistant, then a text as Twilio would send it,
signed with the number's auth token:

  curl -s $url/phone-number -H "Authorization: Bearer \$KEY" \\
       -H 'Content-Type: application/json' \\
       -d "{\"number\":\"+15551234567\",\"twilioAccountSid\":\"ACdemo\",
            \"twilioAuthToken\":\"demo-token\",\"assistantId\":\"\$A\"}"
  SIG=\$(printf '%s' '$url/sms/twilioBodyHi, my name is SarahFrom+15557770001MessageSidSM1To+15551234567' \\
        | openssl dgst -sha1 -hmac demo-token -binary | base64)
  curl -s $url/sms/twilio -H "X-Twilio-Signature: \$SIG" \\
       --data 'Body=Hi%2C+my+name+is+Sarah&From=%2B15557770001&MessageSid=SM1&To=%2B15551234567'

A real Twilio number: make nginx reachable at https://<your host>/sms/twilio
(set callhq_sms_public_url to that URL when TLS ends in front of nginx),
create the phone number with its account SID and auth token, and set the
number's "A message comes in" webhook to that URL, HTTP POST. A reply the
model takes longer than 10 s to make (callhq_sms_reply_timeout) is sent
with Twilio's REST API instead, with that SID and token.

Ctrl-C stops everything.
MSG

wait "$nginx_pid"
