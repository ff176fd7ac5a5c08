# A worker never waits on the database: while one request's query is
# held inside PostgreSQL, or its connection attempt hangs, the same worker
# (workers(1), no master) goes on serving other requests.
#
# Proof by state and order, never by elapsed time: the slow query is an
# insert held at a test gate (t/fixtures/gate.pl) that only the test
# opens, and the hanging connect goes to a socket that accepts TCP but
# never answers.  A blocked worker could not answer the block's own
# requests before the gate opens or the connect times out; a request to
# the test helper (/_test/, see t/fixtures/gate.pl) then checks that the
# slow request was indeed still pending, and collects its answer.
#
# The webhook dispatcher, which claims through the same pool once a
# second, is off ("callhq_webhooks off"): only the test's requests use
# the pool.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(gate);

use IO::Select ();
use IO::Socket::INET ();

workers(1);
gate_defaults();

# A PostgreSQL that never answers: the kernel completes the TCP handshake
# (the connection waits in the backlog), nobody ever reads or writes.
our $SILENT = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                    Proto => 'tcp', Listen => 16,
                                    ReuseAddr => 1)
    or die "cannot listen: $!\n";
$ENV{TEST_NGINX_SILENT_PORT} = $SILENT->sockport;

# Sessions of this file are named n070-* and gate-070-*.
psql(q{delete from callhq.sessions where name like 'n070-%'});
main::gate_reset('gate-070-slow');

run_tests();

__DATA__

=== TEST 1: while an insert is held in PostgreSQL, the worker serves reads and writes
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_postgres_pool_size 4;
callhq_webhooks off;
--- config
location / { callhq_api; }
--- init
main::spawn_request('slow', 'POST', '/session', '{"name": "gate-070-slow"}');
main::gate_wait_held('gate-070-slow');
--- request eval
["GET /session?name=gate-070-slow",
 "POST /session\n{\"name\": \"n070-meanwhile\"}",
 "GET /session?name=n070-meanwhile",
 "GET /_test/backends/gate-070-slow",
 "GET /_test/open/gate-070-slow",
 "GET /_test/child/slow",
 "GET /session?name=gate-070-slow"]
--- error_code eval
[200, 201, 200, 200, 200, 200, 200]
--- response_body eval
[::total_items(0),
 qr/\A\{"id": "[0-9a-f-]{36}", .*"name": "n070-meanwhile", /s,
 ::total_items(1),
 # the slow insert was still held after all that
 '1',
 'open',
 ::raw_response(201, '\{"id": "[0-9a-f-]{36}", .*"name": "gate-070-slow", '),
 ::total_items(1)]



=== TEST 2: while a connect to the database hangs, the worker answers other requests
--- http_config
callhq_postgres "host=127.0.0.1 port=$TEST_NGINX_SILENT_PORT dbname=callhq user=callhq sslmode=disable";
callhq_postgres_connect_timeout 3s;
callhq_postgres_queue_timeout 60s;
callhq_webhooks off;
--- config
location / { callhq_api; }
location = /ping { return 200 "pong\n"; }
--- init
main::spawn_request('connect', 'GET', '/session');
# the pool's connection attempt has reached the silent server
IO::Select->new($main::SILENT)->can_read(60)
    or die "nginx never tried to connect\n";
--- request eval
["GET /ping", "GET /_test/pending/connect", "GET /_test/child/connect"]
--- response_body eval
["pong\n",
 # the ping was answered while the connect was still pending
 'pending',
 ::raw_response(503, '\{"statusCode":503,"error":"Service Unavailable","message":"database connect timed out"\}\z')]
--- no_error_log
[crit]
[alert]



=== TEST 3: a connect over callhq_postgres_connect_timeout: 503 JSON, logged
--- http_config
callhq_postgres "host=127.0.0.1 port=$TEST_NGINX_SILENT_PORT dbname=callhq user=callhq sslmode=disable";
callhq_postgres_connect_timeout 1s;
callhq_postgres_queue_timeout 60s;
callhq_webhooks off;
--- config
location / { callhq_api; }
--- request
GET /session
--- error_code: 503
--- response_body eval
'{"statusCode":503,"error":"Service Unavailable",'
. '"message":"database connect timed out"}'
--- error_log
callhq: postgres connect timed out
--- no_error_log
[crit]
[alert]
