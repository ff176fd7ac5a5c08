# Configuration: nginx refuses configurations the module cannot serve
# (with the [emerg] message naming the directive; a host name in
# callhq_postgres, which libpq would resolve blocking), accepts every directive
# with a valid value, and serves the API under a prefix location.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test;

# Every block states its own http_config and config.
callhq_defaults(
    http_config => undef, config => undef, skip_must_die => 1,
    no_error_log => "[error]\n[crit]\n[alert]\n[emerg]",
    block => sub {
        my $block = shift;
        # deliveries other suites queued must not log into these blocks
        my $http_config = $block->http_config // '';
        $block->set_value(http_config => "$http_config\ncallhq_webhooks off;")
            if $http_config =~ /\bcallhq_postgres\b/
               && $http_config !~ /\bcallhq_webhooks\b/;
    });

# Sessions of this file are named c000-*.
psql(q{delete from callhq.sessions where name like 'c000-%'});

END {
    eval { psql(q{delete from callhq.sessions where name like 'c000-%'}) };
}

run_tests();

__DATA__

=== TEST 1: callhq_api without callhq_postgres: nginx refuses to start
--- config
location / { callhq_api; }
--- must_die
--- error_log
[emerg]
"callhq_api" needs "callhq_postgres" in the http block



=== TEST 2: callhq_session_expiration below 60s: refused
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
--- config
location / {
    callhq_session_expiration 30s;
    callhq_api;
}
--- must_die
--- error_log
[emerg]
"callhq_session_expiration" must be between 60s and 30d



=== TEST 3: callhq_session_expiration above 30 days: refused
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
--- config
location / {
    callhq_session_expiration 2592001s;
    callhq_api;
}
--- must_die
--- error_log
[emerg]
"callhq_session_expiration" must be between 60s and 30d



=== TEST 4: callhq_session_expiration too low at the http level: refused
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_session_expiration 59s;
--- config
location / { callhq_api; }
--- must_die
--- error_log
[emerg]
"callhq_session_expiration" must be between 60s and 30d



=== TEST 5: callhq_postgres_pool_size 0: refused
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_postgres_pool_size 0;
--- config
location / { callhq_api; }
--- must_die
--- error_log
[emerg]
value must be between 1 and 63



=== TEST 6: callhq_postgres_pool_size 64: refused
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_postgres_pool_size 64;
--- config
location / { callhq_api; }
--- must_die
--- error_log
[emerg]
value must be between 1 and 63



=== TEST 7: callhq_api twice in a location: refused
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
--- config
location / {
    callhq_api;
    callhq_api;
}
--- must_die
--- error_log
[emerg]
"callhq_api" directive is duplicate



=== TEST 8: callhq_postgres outside the http block: refused
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
--- config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
location / { callhq_api; }
--- must_die
--- error_log
[emerg]
"callhq_postgres" directive is not allowed here



=== TEST 9: callhq_api with an argument: refused
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
--- config
location / { callhq_api on; }
--- must_die
--- error_log
[emerg]
invalid number of arguments in "callhq_api" directive



=== TEST 10: every directive set: nginx starts and serves the API
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_postgres_pool_size 2;
callhq_postgres_queue 8;
callhq_postgres_queue_timeout 2s;
callhq_postgres_connect_timeout 2s;
callhq_postgres_query_timeout 10s;
callhq_postgres_idle_timeout 30s;
--- config
location / {
    callhq_max_body_size 64k;
    callhq_session_expiration 2h;
    callhq_model_location /_model;
    callhq_max_reply_size 1m;
    callhq_turn_timeout 5s;
    callhq_turn_lease 120s;
    callhq_record_retry 30s;
    callhq_context_messages 20;
    callhq_context_bytes 32k;
    callhq_max_variables 16;
    callhq_max_variable_size 1k;
    callhq_max_prompt_size 256k;
    callhq_max_list_size 4m;
    callhq_api;
}

location /_model {
    internal;
    proxy_pass http://127.0.0.1:$TEST_NGINX_MOCK_PORT;
}
--- request
POST /session
{"name": "c000-all-directives"}
--- error_code: 201
--- response_body_like eval
qr/\A\{"id": "[0-9a-f-]{36}", .*"name": "c000-all-directives", .*"expirationSeconds": 7200, /s



=== TEST 11: without callhq_session_expiration a session lasts one day
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
--- config
location / { callhq_api; }
--- request
POST /session
{"name": "c000-default-expiration"}
--- error_code: 201
--- response_body_like eval
qr/\A\{"id": "[0-9a-f-]{36}", .*"name": "c000-default-expiration", .*"expirationSeconds": 86400, /s



=== TEST 12: callhq_session_expiration at the server level reaches the location
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
--- config
callhq_session_expiration 3h;
location / { callhq_api; }
--- request
POST /session
{"name": "c000-server-expiration"}
--- error_code: 201
--- response_body_like eval
qr/\A\{"id": "[0-9a-f-]{36}", .*"name": "c000-server-expiration", .*"expirationSeconds": 10800, /s



=== TEST 13: the API under a prefix location: GET /api/session
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
--- config
location /api/ { callhq_api; }
--- request
GET /api/session?name=c000-all-directives
--- error_code: 200
--- response_body_like eval
qr/\A\{"results": \[\{"id": "[0-9a-f-]{36}", .*"name": "c000-all-directives", .*\}\], "metadata": \{.*"totalItems": 1[,}]/s



=== TEST 14: under a prefix location, paths are relative to it
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
--- config
location /api/ { callhq_api; }
--- request
PUT /api/session
--- error_code: 405
--- response_headers
Allow: GET, POST
--- response_body eval
'{"statusCode":405,"error":"Method Not Allowed",'
. '"message":"PUT is not allowed on /api/session (allowed: GET, POST)"}'



=== TEST 15: only the callhq_api location answers with the API
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
--- config
location /api/ { callhq_api; }
location / { return 204; }
--- request
GET /session
--- error_code: 204
--- response_body



=== TEST 16: a host name in callhq_postgres: refused, naming the fix
--- http_config
callhq_postgres "host=db.example.invalid port=5432 dbname=callhq user=callhq";
--- config
location / { callhq_api; }
--- must_die
--- error_log
[emerg]
"callhq_postgres" host "db.example.invalid" is a name: libpq would resolve it with a blocking lookup in the worker; use its IP address



=== TEST 17: localhost is a name too: refused
--- http_config
callhq_postgres "host=127.0.0.1,localhost dbname=callhq user=callhq";
--- config
location / { callhq_api; }
--- must_die
--- error_log
[emerg]
"callhq_postgres" host "localhost" is a name



=== TEST 18: a host name in a postgresql:// URI: refused
--- http_config
callhq_postgres "postgresql://callhq@db.example.invalid:5432/callhq";
--- config
location / { callhq_api; }
--- must_die
--- error_log
[emerg]
"callhq_postgres" host "db.example.invalid" is a name



=== TEST 19: a connection string libpq cannot parse: refused with its reason
--- http_config
callhq_postgres "host=127.0.0.1 nosuchoption=1";
--- config
location / { callhq_api; }
--- must_die
--- error_log
[emerg]
"callhq_postgres" is not a valid libpq connection string: invalid connection option "nosuchoption"



=== TEST 20: a name with hostaddr (no lookup: libpq connects to the address) serves
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO host=db.example.invalid hostaddr=127.0.0.1";
--- config
location / { callhq_api; }
--- request
GET /session?limit=1
--- error_code: 200



=== TEST 21: IPv4, IPv6 addresses and Unix socket paths are addresses: nginx starts
--- http_config
callhq_postgres "host=127.0.0.1,::1,/var/run/postgresql,@abstract dbname=callhq user=callhq";
--- config
location /api/ { callhq_api; }
location / { return 204; }
--- request
GET /
--- error_code: 204



=== TEST 22: callhq_turn_lease below 3s (renewed every third of it): refused
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
--- config
location / {
    callhq_turn_lease 2s;
    callhq_record_retry 30s;
    callhq_api;
}
--- must_die
--- error_log
[emerg]
"callhq_turn_lease" must be at least 3s



=== TEST 23: callhq_turn_recheck below 100ms (a waiting chat would ask the database in a loop): refused
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
--- config
location / {
    callhq_turn_recheck 0;
    callhq_api;
}
--- must_die
--- error_log
[emerg]
"callhq_turn_recheck" must be at least 100ms
