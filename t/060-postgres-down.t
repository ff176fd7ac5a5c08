# The database going away, and the pool running out: PostgreSQL stopped
# under a running nginx answers 503 "database unavailable" (logged, the
# worker keeps serving) and the same nginx recovers when it is back; a
# pool whose connections are all busy answers 503 "database pool
# exhausted" once the wait queue is full or the wait timed out; a query
# over callhq_postgres_query_timeout answers 503 and its connection is
# replaced; idle connections close after callhq_postgres_idle_timeout; a
# client leaving while its statement is prepared does not spoil the
# connection.
#
# Each scenario is one block, on one nginx: slow queries are inserts held
# at a test gate, and what happens between two requests (open a gate,
# start PostgreSQL, collect a concurrent request's answer) is a request to
# the test helper under /_test/ (see t/fixtures/gate.pl).  No sleep
# decides an outcome.  The error log is checked as a whole
# (check_accum_error_log): a line logged by a block's first request is
# still there when the checks after its later requests run.
#
# The webhook dispatcher runs its claims through the same pool, once a
# second: the blocks turn it off ("callhq_webhooks off") so that every
# query and every connection they see is theirs.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(gate);

gate_defaults(no_error_log => "[crit]\n[alert]\nexited on signal");

sub err503 {
    my $message = shift;
    return '{"statusCode":503,"error":"Service Unavailable",'
           . '"message":"' . $message . '"}';
}

# Sessions of this file are named d060-* and gate-060-*.
psql(q{delete from callhq.sessions where name like 'd060-%'});
main::gate_reset(qw(gate-060-busy-1 gate-060-busy-2 gate-060-queue
                    gate-060-timeout gate-060-late gate-060-waiter));

END {
    # whatever happened, leave the database running for the next suite
    pg_start() if !CallHQ::Test::pg_running();
}

run_tests();

__DATA__

=== TEST 1: PostgreSQL stops under nginx: 503 JSON, logged, the worker keeps answering; back, the same nginx recovers
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_webhooks off;
--- config
location / { callhq_api; }
--- init
# the pool has a connection to lose
main::http_now('GET', '/session?name=d060-down') =~ m{^HTTP/1\.1 200 }
    or die "the first query failed\n";
my $from = main::log_size();
CallHQ::Test::pg_stop();
main::wait_for_log(qr/idle postgres connection lost/, $from)
    or die "the pool did not notice PostgreSQL going away\n";
--- request eval
["GET /session",
 "POST /session\n{\"name\": \"d060-down\"}",
 "GET /_test/pg_start",
 "POST /session\n{\"name\": \"d060-up\"}",
 "GET /session?name=d060-down"]
--- error_code eval
[503, 503, 200, 201, 200]
--- response_body eval
[::err503('database unavailable'),
 ::err503('database unavailable'),
 'started',
 qr/\A\{"id": "[0-9a-f-]{36}", .*"name": "d060-up", /s,
 ::total_items(0)]
--- response_headers eval
["Content-Type: application/json", "Content-Type: application/json",
 "Content-Type: text/plain", "Content-Type: application/json",
 "Content-Type: application/json"]
--- error_log
callhq: postgres connection failed: Connection refused



=== TEST 2: every connection busy past callhq_postgres_queue_timeout: 503 "database pool exhausted"; the busy ones finish
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO application_name=callhq-060-busy";
callhq_postgres_pool_size 2;
callhq_postgres_queue_timeout 1s;
callhq_webhooks off;
--- config
location / { callhq_api; }
--- init
# both connections open and idle first (however long connecting takes)
main::spawn_request("warm-$_", 'GET', '/session?name=d060-warm') for 1, 2;
main::child_response("warm-$_") for 1, 2;
main::sql_wait(q{(select count(*) from pg_stat_activity
                   where application_name = 'callhq-060-busy') = 2})
    or die "the pool did not open its two connections\n";
main::spawn_request('busy-1', 'POST', '/session', '{"name": "gate-060-busy-1"}');
main::spawn_request('busy-2', 'POST', '/session', '{"name": "gate-060-busy-2"}');
main::gate_wait_held('gate-060-busy-1');
main::gate_wait_held('gate-060-busy-2');
--- request eval
["GET /session?name=gate-060-busy-1",
 "GET /_test/open/gate-060-busy-1,gate-060-busy-2",
 "GET /_test/child/busy-1",
 "GET /_test/child/busy-2",
 "GET /session?name=gate-060-busy-2"]
--- error_code eval
[503, 200, 200, 200, 200]
--- response_body eval
[::err503('database pool exhausted'),
 'open',
 ::raw_response(201, '\{"id": "[0-9a-f-]{36}", .*"name": "gate-060-busy-1", '),
 ::raw_response(201, '\{"id": "[0-9a-f-]{36}", .*"name": "gate-060-busy-2", '),
 ::total_items(1)]
--- error_log
callhq: no postgres connection became free in time



=== TEST 3: the wait queue full: 503 "database pool exhausted" at once; the queued query runs after the busy one
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_postgres_pool_size 1;
callhq_postgres_queue 1;
callhq_postgres_queue_timeout 60s;
callhq_webhooks off;
--- config
location / { callhq_api; }
--- init
main::spawn_request('queue-a', 'POST', '/session', '{"name": "gate-060-queue"}');
main::gate_wait_held('gate-060-queue');
# B waits in the queue, behind A's connection (setup, not an assertion)
main::spawn_request('queue-b', 'GET', '/session?name=gate-060-queue');
Time::HiRes::sleep(0.5);
--- request eval
["GET /session",
 "GET /_test/open/gate-060-queue",
 "GET /_test/child/queue-a",
 "GET /_test/child/queue-b",
 "GET /session?name=gate-060-queue"]
--- error_code eval
[503, 200, 200, 200, 200]
--- response_body eval
[::err503('database pool exhausted'),
 'open',
 ::raw_response(201, '\{"id": "[0-9a-f-]{36}", .*"name": "gate-060-queue", '),
 # B saw A's session: it ran after A had committed
 ::raw_response(200, '\{"results": \[.*\], "metadata": \{.*"totalItems": 1[,}]'),
 ::total_items(1)]
--- error_log
callhq: postgres wait queue is full (1 queries)



=== TEST 4: a query over callhq_postgres_query_timeout: 503, logged; PostgreSQL cancels it
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_postgres_pool_size 1;
callhq_postgres_query_timeout 1s;
callhq_webhooks off;
--- config
location / { callhq_api; }
--- request eval
["POST /session\n{\"name\": \"gate-060-timeout\"}",
 "GET /_test/backends/gate-060-timeout",
 "GET /session?name=gate-060-timeout"]
--- error_code eval
[503, 200, 200]
--- response_body eval
[::err503('database query timed out'),
 # the server's statement_timeout cancelled the held insert
 '0',
 # and nothing of it was stored
 ::total_items(0)]
--- error_log
callhq: postgres query timed out



=== TEST 5: a query answered 503 for its timeout leaves nothing behind
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_postgres_query_timeout 1s;
callhq_webhooks off;
--- config
location / { callhq_api; }
--- request eval
["POST /session\n{\"name\": \"gate-060-late\"}",
 "GET /_test/open/gate-060-late",
 "GET /_test/wait_none/gate-060-late",
 "GET /session?name=gate-060-late"]
--- error_code eval
[503, 200, 200, 200]
--- response_body eval
[::err503('database query timed out'),
 'open',
 '0',
 ::total_items(0)]



=== TEST 6: a query queued behind one that times out runs on a new connection
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_postgres_pool_size 1;
callhq_postgres_query_timeout 2s;
callhq_webhooks off;
--- config
location / { callhq_api; }
--- init
main::spawn_request('slow', 'POST', '/session', '{"name": "gate-060-waiter"}');
main::gate_wait_held('gate-060-waiter');
# the waiter queues behind the slow insert (setup, not an assertion)
main::spawn_request('waiter', 'GET', '/session?name=d060-none');
Time::HiRes::sleep(0.5);
--- request eval
["GET /_test/child/slow", "GET /_test/child/waiter",
 "GET /_test/open/gate-060-waiter"]
--- response_body eval
[::raw_response(503, '\{"statusCode":503,"error":"Service Unavailable","message":"database query timed out"\}\z'),
 ::raw_response(200, '\{"results": \[\], "metadata": \{.*"totalItems": 0[,}]'),
 'open']



=== TEST 7: an idle connection closes after callhq_postgres_idle_timeout, the next query opens one
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO application_name=callhq-060-idle";
callhq_postgres_idle_timeout 1s;
callhq_webhooks off;
--- config
location / { callhq_api; }
--- request eval
["GET /session?name=d060-up",
 "GET /_test/wait_none/callhq-060-idle",
 "GET /session?name=d060-up",
 "GET /_test/backends/callhq-060-idle"]
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
[::total_items(1), '0', ::total_items(1), '1']



=== TEST 8: callhq_postgres_queue 0 with a free slot in the pool: the query is answered
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_postgres_pool_size 1;
callhq_postgres_queue 0;
callhq_webhooks off;
--- config
location / { callhq_api; }
--- request
GET /session?name=d060-up
--- response_body_like eval
::total_items(1)



=== TEST 9: a client that leaves while its statement is being prepared does not spoil the connection
--- log_level: debug
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO application_name=callhq-060-drain";
callhq_postgres_pool_size 1;
callhq_webhooks off;
--- config
location / { callhq_api; }
--- init
# the only connection, with the "get" statement prepared
main::http_now('GET', '/session/06000000-0000-4000-8000-000000000001')
    =~ m{^HTTP/1\.1 404 } or die "the first query failed\n";
# its backend stops answering: the "list" statement's Prepare stays in flight
$main::STOPPED = main::sql_value(q{select pid from pg_stat_activity
                                    where application_name = 'callhq-060-drain'});
kill 'STOP', $main::STOPPED;
my $from = main::log_size();
main::spawn_request('drain', 'GET', '/session?name=d060-drain');
main::wait_for_log(qr/prepare "callhq_api_session_list"/, $from)
    or die "the list statement was not sent (is nginx built --with-debug?)\n";
main::child_kill('drain');
main::wait_for_log(qr/client prematurely closed connection/, $from)
    or die "nginx did not notice the client leave\n";
kill 'CONT', $main::STOPPED;
undef $main::STOPPED;
--- request eval
["GET /session?name=d060-drain", "GET /session?name=d060-drain"]
--- error_code eval
[200, 200]
--- response_body_like eval
[::total_items(0), ::total_items(0)]
--- no_error_log
[error]
[crit]
[alert]
