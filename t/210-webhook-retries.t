# Webhooks that are never lost: a failed attempt (an error status, a
# refused, dropped or silent connection) is retried with growing back-off
# under the same webhook-id; the events of a session keep their order when
# an earlier one fails; an event too old is dead-lettered; events pending
# while nginx is down, or in flight when it stops, are delivered after it
# starts again; LISTEN/NOTIFY wakes the dispatcher, and its connection
# comes back when the database drops it.
#
# Deliveries are checked through nginx on the receiver
# (t/mock/webhook_receiver.py), see t/fixtures/webhook.pl.  What a block
# leaves pending goes dead after it, unless the block says --- keep_outbox
# (its next block goes on with it).

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect webhook);

$ENV{TEST_NGINX_WH_PORT} = ::start_receiver(
    '--secret', $::WH_SECRET, '--pg', $ENV{TEST_NGINX_PG_CONNINFO});

our $R = "http://127.0.0.1:$ENV{TEST_NGINX_WH_PORT}";
our $CLOSED = ::free_tcp_port();    # nobody listens there

::wh_defaults();

add_test_cleanup_handler(sub {
    my $block = shift;
    ::settle_outbox('%/t210/%') unless defined $block->keep_outbox;
});

sub id { sprintf '21000000-0000-4000-8000-0000000000%02d', shift }

# Ids 21000000-0000-4000-8000-0000000000NN, all of Org A: assistants 01-10,
# a fixture session 20 + NN for each assistant NN, sessions 31 and 32 made
# by the --- init of the blocks that look at the log.
#   01 w210-retry (500 three times)     02 w210-order (the path's first 500)
#   03 w210-restart      04 w210-dead (always 500)
#   05 w210-down         06 w210-timeout (silent once, timeoutSeconds 1)
#   07 w210-refused (nobody listens)    08 w210-inflight (silent once)
#   09 w210-listen       10 w210-close (connection closed once)
my @assistants = (
    [1, 'w210-retry', { url => "$R/t210/retry?fail=3" }],
    [2, 'w210-order', { url => "$R/t210/order?fail_first=1" }],
    [3, 'w210-restart', { url => "$R/t210/restart" }],
    [4, 'w210-dead', { url => "$R/t210/dead?fail=100000" }],
    [5, 'w210-down', { url => "$R/t210/down" }],
    [6, 'w210-timeout', { url => "$R/t210/timeout?hang=1",
                          timeoutSeconds => 1 }],
    [7, 'w210-refused', { url => "http://127.0.0.1:$CLOSED/t210/refused" }],
    [8, 'w210-inflight', { url => "$R/t210/inflight?hang=1",
                           timeoutSeconds => 60 }],
    [9, 'w210-listen', { url => "$R/t210/listen" }],
    [10, 'w210-close', { url => "$R/t210/close?close=1" }],
);

my $json = JSON::PP->new->canonical;
my $values = join ",\n", map {
    my ($n, $name, $server) = @$_;
    sprintf "('%s', '%s', '%s')", id($n), $name,
            $json->encode({ secret => $::WH_SECRET, %$server })
} @assistants;
my $sessions = join ",\n", map {
    sprintf "('%s', '%s', 'w210-session-%d')", id(20 + $_->[0]),
            id($_->[0]), $_->[0]
} @assistants;

use JSON::PP ();

psql(qq{
    delete from callhq.webhook_outbox where url like '%/t210/%';
    delete from callhq.sessions
     where id::text like '21000000-0000-4000-8000-%'
        or assistant_id::text like '21000000-0000-4000-8000-%';
    delete from callhq.assistants
     where id::text like '21000000-0000-4000-8000-%';

    insert into callhq.assistants (id, org_id, name, server)
    select v.id::uuid, k.org_id, v.name, v.server::jsonb
      from callhq.api_keys k, (values $values) v(id, name, server)
     where k.key_hash = sha256('cq_test_a');

    insert into callhq.sessions (id, org_id, assistant_id, name,
                                 expiration_seconds, expires_at)
    select v.id::uuid, k.org_id, v.assistant_id::uuid, v.name, 86400,
           '2099-01-01T00:00:00Z'
      from callhq.api_keys k, (values $sessions) v(id, assistant_id, name)
     where k.key_hash = sha256('cq_test_a');
});

psql(q{update callhq.webhook_outbox set state = 'delivered'
        where url like '%/t210/%' and state = 'pending'});

END {
    eval { psql(q{delete from callhq.webhook_outbox where url like '%/t210/%'}) };
}

run_tests();

__DATA__

=== TEST 1: 500 three times: retried with growing back-off under the same webhook-id, then delivered; the attempts are counted
--- http_config eval
::wh_http(backoff => '200ms 1s')
--- request eval
["GET /_receiver/_control?reset=1",
 "PATCH /session/21000000-0000-4000-8000-000000000021\n{\"name\": \"w210-retried\"}",
 ::wait_req(path => '/t210/retry', until => 1, min_gaps => '100,200,400',
            fields => 'session.name'),
 ::pgwait_req(q{select attempts || ' ' || state || ' ' || last_error
                  from callhq.webhook_outbox
                 where session_id = '21000000-0000-4000-8000-000000000021'
                   and type = 'session.updated'},
              '3 delivered the receiver answered 500'),
 "GET /_webhooks"]
--- response_body eval
["ok\n", qr/"w210-retried"/,
 "session.updated 500 A valid session.name=\"w210-retried\"\n"
 . "session.updated 500 A valid session.name=\"w210-retried\"\n"
 . "session.updated 500 A valid session.name=\"w210-retried\"\n"
 . "session.updated 200 A valid session.name=\"w210-retried\"\n"
 . "gaps ok\n",
 "3 delivered the receiver answered 500\n",
 qr/"worker":\{"inFlight":0,"attempts":4,"failures":3\}\}\z/]



=== TEST 2: the first attempt of a session's earlier event fails: the later events wait for it, and keep their order
--- request eval
["GET /_receiver/_control?reset=1",
 "PATCH /session/21000000-0000-4000-8000-000000000022\n{\"name\": \"w210-first\"}",
 "PATCH /session/21000000-0000-4000-8000-000000000022\n{\"name\": \"w210-second\"}",
 "DELETE /session/21000000-0000-4000-8000-000000000022",
 ::wait_req(path => '/t210/order', until => 3, fields => 'session.name')]
--- response_body eval
["ok\n", qr/"w210-first"/, qr/"w210-second"/, qr/"w210-second"/,
 "session.updated 500 A valid session.name=\"w210-first\"\n"
 . "session.updated 200 A valid session.name=\"w210-first\"\n"
 . "session.updated 200 B valid session.name=\"w210-second\"\n"
 . "session.deleted 200 C valid session.name=\"w210-second\"\n"]



=== TEST 3: an event older than callhq_webhook_max_age is dead-lettered: warn for each failed attempt, info for the end
--- http_config eval
::wh_http(max_age => '1s')
--- init
::insert_session('21000000-0000-4000-8000-000000000031',
                 '21000000-0000-4000-8000-000000000004', 'w210-dead');
--- request eval
::pgwait_req(q{select state from callhq.webhook_outbox
                where session_id = '21000000-0000-4000-8000-000000000031'}, 'dead')
--- response_body
dead
--- error_log eval
[qr/\[warn\] .*callhq: webhook attempt 1 failed: the receiver answered 500, webhook: msg_[0-9a-f-]{36}, url: "http:\/\/127\.0\.0\.1:\d+\/t210\/dead"/,
 qr/\[info\] .*callhq: webhook dead-lettered after \d+ attempts, the last: the receiver answered 500, webhook: msg_/]



=== TEST 4: a receiver that drops connections without answering is retried until it answers again
--- request eval
["GET /_receiver/_control?reset=1",
 "GET /_receiver/_control?down=1",
 "PATCH /session/21000000-0000-4000-8000-000000000025\n{\"name\": \"w210-down\"}",
 ::wait_req(path => '/t210/down', until => 2, count => 'any'),
 "GET /_receiver/_control?down=0",
 ::wait_req(path => '/t210/down', until => 1),
 ::pgwait_req(q{select last_error from callhq.webhook_outbox
                 where session_id = '21000000-0000-4000-8000-000000000025'
                   and type = 'session.updated'},
              'the receiver closed the connection without a response')]
--- response_body eval
["ok\n", "ok\n", qr/"w210-down"/,
 "session.updated down A valid\nsession.updated down A valid\n",
 "ok\n",
 qr/\A(session\.updated down A valid\n){2,}session\.updated 200 A valid\n\z/,
 "the receiver closed the connection without a response\n"]



=== TEST 5: a refused connection fails the attempt, with a warning
--- init
::insert_session('21000000-0000-4000-8000-000000000032',
                 '21000000-0000-4000-8000-000000000007', 'w210-refused');
--- request eval
::pgwait_req(q{select last_error from callhq.webhook_outbox
                where session_id = '21000000-0000-4000-8000-000000000032'
                  and attempts > 0},
             'connect() failed (111: Connection refused)')
--- response_body
connect() failed (111: Connection refused)
--- error_log eval
qr/\[warn\] .*callhq: webhook attempt 1 failed: connect\(\) failed \(111: Connection refused\), webhook: msg_[0-9a-f-]{36}, url: "http:\/\/127\.0\.0\.1:\d+\/t210\/refused"/



=== TEST 6: a receiver silent past server.timeoutSeconds: the attempt times out and is retried
--- request eval
["GET /_receiver/_control?reset=1",
 "PATCH /session/21000000-0000-4000-8000-000000000026\n{\"name\": \"w210-timeout\"}",
 ::wait_req(path => '/t210/timeout', until => 1),
 ::pgwait_req(q{select attempts || ' ' || last_error from callhq.webhook_outbox
                 where session_id = '21000000-0000-4000-8000-000000000026'
                   and type = 'session.updated'},
              '1 timed out after 1000 ms')]
--- response_body eval
["ok\n", qr/"w210-timeout"/,
 "session.updated hang A valid\nsession.updated 200 A valid\n",
 "1 timed out after 1000 ms\n"]



=== TEST 7: a connection closed without a response fails the attempt; the retry is delivered
--- request eval
["GET /_receiver/_control?reset=1",
 "PATCH /session/21000000-0000-4000-8000-000000000030\n{\"name\": \"w210-close\"}",
 ::wait_req(path => '/t210/close', until => 1)]
--- response_body eval
["ok\n", qr/"w210-close"/,
 "session.updated closed A valid\nsession.updated 200 A valid\n"]



=== TEST 8: events written while delivery is off stay pending...
--- http_config eval
::wh_http() . "callhq_webhooks off;\n"
--- keep_outbox
--- request eval
["GET /_receiver/_control?reset=1",
 "PATCH /session/21000000-0000-4000-8000-000000000023\n{\"name\": \"w210-restart-1\"}",
 "PATCH /session/21000000-0000-4000-8000-000000000023\n{\"name\": \"w210-restart-2\"}",
 ::pgwait_req(q{select count(*) from callhq.webhook_outbox
                 where session_id = '21000000-0000-4000-8000-000000000023'
                   and state = 'pending' and attempts = 0}, '2')]
--- response_body eval
["ok\n", qr/"w210-restart-1"/, qr/"w210-restart-2"/, "2\n"]



=== TEST 9: ... and nginx delivers them, in order, once it runs with delivery on
--- request eval
::wait_req(path => '/t210/restart', until => 2, fields => 'session.name')
--- response_body
session.updated 200 A valid session.name="w210-restart-1"
session.updated 200 B valid session.name="w210-restart-2"



=== TEST 10: a delivery in flight when nginx stops...
--- http_config eval
::wh_http(lease => '6s')
--- keep_outbox
--- request eval
["GET /_receiver/_control?reset=1",
 "PATCH /session/21000000-0000-4000-8000-000000000028\n{\"name\": \"w210-inflight\"}",
 ::wait_req(path => '/t210/inflight', until => 1, count => 'any')]
--- response_body eval
["ok\n", qr/"w210-inflight"/, "session.updated hang A valid\n"]



=== TEST 11: ... is abandoned, not failed, and sent again under the same webhook-id when its lease ends
--- http_config eval
::wh_http(lease => '6s')
--- request eval
[::wait_req(path => '/t210/inflight', until => 1),
 ::pgwait_req(q{select attempts || ' ' || state || ' ' || coalesce(last_error, '-')
                  from callhq.webhook_outbox
                 where session_id = '21000000-0000-4000-8000-000000000028'
                   and type = 'session.updated'},
              '0 delivered -')]
--- response_body eval
["session.updated hang A valid\nsession.updated 200 A valid\n",
 "0 delivered -\n"]



=== TEST 12: LISTEN/NOTIFY wakes the dispatcher (the timer is an hour), and its connection comes back when the database drops it
--- http_config eval
::wh_http(interval => '1h')
--- request eval
["GET /_receiver/_control?reset=1",
 "PATCH /session/21000000-0000-4000-8000-000000000029\n{\"name\": \"w210-notified-1\"}",
 ::wait_req(path => '/t210/listen', until => 1, fields => 'session.name'),
 ::pgwait_req(q{select count(pg_terminate_backend(pid)) from pg_stat_activity
                 where application_name = 'callhq_webhook_listen'}, '1'),
 ::pgwait_req(q{select count(*) from pg_stat_activity
                 where application_name = 'callhq_webhook_listen'}, '0'),
 ::pgwait_req(q{select count(*) from pg_stat_activity
                 where application_name = 'callhq_webhook_listen'
                   and query = 'LISTEN callhq_webhook; LISTEN callhq_turn'}, '1'),
 "PATCH /session/21000000-0000-4000-8000-000000000029\n{\"name\": \"w210-notified-2\"}",
 ::wait_req(path => '/t210/listen', until => 2, fields => 'session.name')]
--- response_body eval
["ok\n", qr/"w210-notified-1"/,
 "session.updated 200 A valid session.name=\"w210-notified-1\"\n",
 "1\n", "0\n", "1\n", qr/"w210-notified-2"/,
 "session.updated 200 A valid session.name=\"w210-notified-1\"\n"
 . "session.updated 200 B valid session.name=\"w210-notified-2\"\n"]
