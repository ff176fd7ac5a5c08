# A worker never waits on the database: while one request's query is
# held inside PostgreSQL, or its connection attempt hangs, the same worker
# (workers(1), no master) goes on serving other requests.
#
# Proof by state and order, never by elapsed time: the slow query is an
# insert held at a test gate (t/fixtures/gate.pl) that only the test
# opens, and the hanging connect goes to a socket that accepts TCP but
# never answers.  A blocked worker could not answer the block's own
# requests before the gate opens or the connect times out; the next block
# checks that the slow request was indeed still pending afterwards.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test;

use IO::Select ();
use IO::Socket::INET ();
use POSIX ();

require './t/fixtures/gate.pl';

no_shuffle();
no_root_location();
log_level('info');
workers(1);

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value(more_headers =>
        "Authorization: Bearer cq_test_a\nContent-Type: application/json")
        unless defined $block->more_headers;
    $block->set_value(no_error_log => "[error]\n[crit]\n[alert]")
        unless defined $block->no_error_log;
});

sub total_items {
    my $n = shift;
    return qr/\A\{"results": \[.*\], "metadata": \{.*"totalItems": $n[,}]/s;
}

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
--- config
location / { callhq_api; }
--- init
main::spawn_request('slow', 'POST', '/session', '{"name": "gate-070-slow"}');
main::gate_wait_held('gate-070-slow');
--- request eval
["GET /session?name=gate-070-slow",
 "POST /session\n{\"name\": \"n070-meanwhile\"}",
 "GET /session?name=n070-meanwhile"]
--- error_code eval
[200, 201, 200]
--- response_body_like eval
[::total_items(0),
 qr/\A\{"id": "[0-9a-f-]{36}", .*"name": "n070-meanwhile", /s,
 ::total_items(1)]
--- timeout: 10



=== TEST 2: ... the held insert was still pending all along, and completes when released
--- init
Test::More::is(main::gate_held_count('gate-070-slow'), 1,
               'TEST 2: the slow insert was still held after TEST 1');
main::gate_open('gate-070-slow');
Test::More::like(main::child_response('slow'),
    qr{\AHTTP/1\.1 201 .*"name": "gate-070-slow"}s,
    'TEST 2: the slow POST was answered 201');
--- request
GET /session?name=gate-070-slow
--- response_body_like eval
::total_items(1)



=== TEST 3: while a connect to the database hangs, the worker answers other requests
--- http_config
callhq_postgres "host=127.0.0.1 port=$TEST_NGINX_SILENT_PORT dbname=callhq user=callhq sslmode=disable";
callhq_postgres_connect_timeout 3s;
--- config
location / { callhq_api; }
location = /ping { return 200 "pong\n"; }
--- init
main::spawn_request('connect', 'GET', '/session');
# the pool's connection attempt has reached the silent server
IO::Select->new($main::SILENT)->can_read(20)
    or die "nginx never tried to connect\n";
--- request
GET /ping
--- response_body
pong



=== TEST 4: ... the connect was still pending, and then answers 503 "database connect timed out"
--- init
Test::More::is(waitpid($main::CHILD{connect}, POSIX::WNOHANG()), 0,
               'TEST 4: the request waiting for the connect was still pending');
Test::More::like(main::child_response('connect'),
    qr{\AHTTP/1\.1 503 .*\r\n\r\n\{"statusCode":503,"error":"Service Unavailable","message":"database connect timed out"\}\z}s,
    'TEST 4: the request waiting for the connect was answered 503');
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
--- timeout: 15
