# The outbox stays small and fair: a session.updated event carries the
# session without its history and the messages its change appended, so
# its size does not grow with the history; delivered and dead rows go
# after callhq_webhook_retention (7 days by default); a stored assistant's
# secret, headers and timeout are read when its event is sent (not copied
# into the row), and an event whose assistant was deleted goes dead; one
# org's slow receiver holds at most its share of a worker's delivery
# slots, and another org's events go out meanwhile; a graceful stop hands
# the events it claimed and sent nothing of back at once, and a graceful
# reload one whose receiver holds it (the new workers deliver it again
# at once, not after the 6-minute lease); the LISTEN connection comes back after PostgreSQL
# restarts, and a NOTIFY through it wakes the dispatcher again.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect webhook);
use IO::Socket::INET ();

$ENV{TEST_NGINX_WH_PORT} = ::start_receiver(
    '--secret', $::WH_SECRET, '--pg', $ENV{TEST_NGINX_PG_CONNINFO});

our $R = "http://127.0.0.1:$ENV{TEST_NGINX_WH_PORT}";

# a DNS server that never answers: a delivery to a name waits in the resolver
our $SILENT = IO::Socket::INET->new(Proto => 'udp', LocalAddr => '127.0.0.1',
                                    LocalPort => 0) or die "udp socket: $!\n";
our $SILENT_PORT = $SILENT->sockport;

# a master to reload (TEST 10)
master_on();

# /_b/...: the API as Org B
::wh_defaults(config => <<'_EOC_');
location /_b/ {
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/;
    proxy_set_header Authorization "Bearer cq_test_b";
}
_EOC_

# The hanging receiver's events retry no more after their block; the
# events TEST 5 leaves pending are TEST 6's.
add_test_cleanup_handler(sub { ::settle_outbox('%/t250/slow%') });

END {
    CallHQ::Test::pg_start() if !CallHQ::Test::pg_running();
    eval { psql(q{delete from callhq.webhook_outbox where url like '%/t250/%'}) };
}

# Waits (60 s at most) until the receiver got $n requests to $path, of any
# kind: a held one counts as it arrives.
sub receiver_got {
    my ($path, $n) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $ENV{TEST_NGINX_WH_PORT},
                                     Proto => 'tcp')
        or die "receiver: $!\n";
    print {$sock} "GET /_wait?path=$path&until=$n&count=any&timeout=60"
                  . " HTTP/1.0\r\n\r\n";
    local $/;
    my $answer = <$sock> // '';
    die "the receiver did not get $n requests to $path:\n$answer"
        if $answer =~ /timed out/ || $answer !~ /^HTTP\/1\.\d 200 /;
}

# Waits (60 s at most) until a listener's LISTEN ran; false if none did.
our $LISTENING = q{select count(*) from pg_stat_activity
                    where application_name = 'callhq_webhook_listen'
                      and query like 'LISTEN%' and state = 'idle'};

sub listening {
    my $deadline = time + 60;
    while (time < $deadline) {
        return 1 if psql($LISTENING) > 0;
        select undef, undef, undef, 0.1;
    }
    return 0;
}

sub id { sprintf '25000000-0000-4000-8000-0000000000%02d', shift }

# Assistants (Org A but 05):
#   01 w250-size      02 w250-rotate (a wrong secret until TEST 4)
#   03 w250-deleted   04 w250-slow (hangs)   05 w250-fair (Org B)
#   06 w250-unsent (its name is never resolved)
#   07 w250-held (holds the first attempt)   08 w250-listen
# Sessions: 11 (2 messages) and 12 (300 messages) of 01.
psql(qq{
    delete from callhq.webhook_outbox where url like '%/t250/%';
    delete from callhq.sessions where id::text like '25000000-0000-4000-8000-%'
        or assistant_id::text like '25000000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '25000000-0000-4000-8000-%';

    insert into callhq.assistants (id, org_id, name, model, server)
    select v.id::uuid, k.org_id, v.name, '{"provider": "openai", "model": "parrot"}',
           v.server::jsonb
      from callhq.api_keys k,
           (values ('cq_test_a', '@{[ id(1) ]}', 'w250-size',
                    '{"url": "$R/t250/size", "secret": "$::WH_SECRET"}'),
                   ('cq_test_a', '@{[ id(2) ]}', 'w250-rotate',
                    '{"url": "$R/t250/rotate", "secret": "whsec_d3Jvbmc=",
                      "headers": {"X-V": "old"}}'),
                   ('cq_test_a', '@{[ id(3) ]}', 'w250-deleted',
                    '{"url": "$R/t250/deleted", "secret": "$::WH_SECRET"}'),
                   ('cq_test_a', '@{[ id(4) ]}', 'w250-slow',
                    '{"url": "$R/t250/slow?hang=9", "secret": "$::WH_SECRET",
                      "timeoutSeconds": 100}'),
                   ('cq_test_b', '@{[ id(5) ]}', 'w250-fair',
                    '{"url": "$R/t250/fair", "secret": "$::WH_SECRET"}'),
                   ('cq_test_a', '@{[ id(6) ]}', 'w250-unsent',
                    '{"url": "http://unsent.test:9/t250/unsent", "timeoutSeconds": 100}'),
                   ('cq_test_a', '@{[ id(7) ]}', 'w250-held',
                    '{"url": "$R/t250/held?hang=1", "secret": "$::WH_SECRET",
                      "timeoutSeconds": 100}'),
                   ('cq_test_a', '@{[ id(8) ]}', 'w250-listen',
                    '{"url": "$R/t250/listen", "secret": "$::WH_SECRET"}'))
           v(key, id, name, server)
     where k.key_hash = sha256(convert_to(v.key, 'UTF8'));

    insert into callhq.sessions (id, org_id, assistant_id, name, expiration_seconds,
                                 expires_at, next_seq)
    select v.id::uuid, k.org_id, '@{[ id(1) ]}', v.name, 86400,
           now() + interval '1 day', v.n + 1
      from callhq.api_keys k,
           (values ('@{[ id(11) ]}', 'w250-short', 2),
                   ('@{[ id(12) ]}', 'w250-long!', 300)) v(id, name, n)
     where k.key_hash = sha256('cq_test_a');

    insert into callhq.messages (session_id, seq, role, content, raw)
    select s.id, g, 'user', to_jsonb('message ' || g),
           jsonb_build_object('role', 'user', 'content', 'message ' || g)::text
      from callhq.sessions s, generate_series(1, 300) g
     where s.id in ('@{[ id(11) ]}', '@{[ id(12) ]}')
       and g < s.next_seq;
});

# The fixtures' own events are not what the blocks look for.
psql(q{update callhq.webhook_outbox set state = 'delivered'
        where url like '%/t250/%' and state = 'pending'});

run_tests();

__DATA__

=== TEST 1: chats on sessions of 2 and 300 messages: every event delivered
--- request eval
["GET /_receiver/_control?reset=1",
 "POST /chat\n{\"sessionId\": \"25000000-0000-4000-8000-000000000011\", \"input\": \"same input\"}",
 "POST /chat\n{\"sessionId\": \"25000000-0000-4000-8000-000000000012\", \"input\": \"same input\"}",
 ::wait_req(path => '/t250/size', until => 4, summary => 1)]
--- error_code eval
[200, 201, 201, 200]
--- response_body eval
["ok\n", qr/"same input"/, qr/"same input"/,
 "requests=4 ids=4 duplicates=0 valid=4\n"]



=== TEST 2: ... session.updated carries the session without messages and the new turn: the same size for both
--- request eval
["GET /_receiver/_log?path=/t250/size",
 ::pgwait_req(q{select string_agg(payload->'message'->'session'->>'name'
                                  || ' messages=' || coalesce(payload->'message'->'session'->>'messages', '-')
                                  || ' new=' || (payload->'message'->>'newMessages'),
                                  ', ' order by payload->'message'->'session'->>'name')
                  from callhq.webhook_outbox
                 where url like '%/t250/size' and type = 'session.updated'
                   and state = 'delivered'},
              'w250-long! messages=- new=[{"role": "user", "content": "same input"}, {"role": "assistant", "content": "same input"}], '
              . 'w250-short messages=- new=[{"role": "user", "content": "same input"}, {"role": "assistant", "content": "same input"}]'),
 ::pgwait_req(q{select max(octet_length(body)) - min(octet_length(body)) < 16
                  from callhq.webhook_outbox
                 where url like '%/t250/size' and type = 'session.updated'
                having count(*) = 2}, 't')]
--- response_body eval
[qr/newMessages/,
 'w250-long! messages=- new=[{"role": "user", "content": "same input"}, {"role": "assistant", "content": "same input"}], '
 . "w250-short messages=- new=[{\"role\": \"user\", \"content\": \"same input\"}, {\"role\": \"assistant\", \"content\": \"same input\"}]\n",
 "t\n"]



=== TEST 3: delivered and dead rows older than the retention (7 days by default) go; pending and recent ones stay
--- http_config eval
::wh_http(sweep_interval => '100ms')
--- init
CallHQ::Test::psql(q{
    insert into callhq.webhook_outbox (org_id, type, payload, body, url, state,
                                       created_at, delivered_at, next_attempt_at)
    select k.org_id, v.type, '{}', '{}', 'http://127.0.0.1:9/t250/purge', v.state,
           now() - v.age::interval,
           case when v.state = 'delivered' then now() - v.age::interval end,
           now() + interval '1 hour'
      from callhq.api_keys k,
           (values ('go-delivered', 'delivered', '8 days'),
                   ('go-dead', 'dead', '8 days'),
                   ('keep-delivered', 'delivered', '6 days'),
                   ('keep-pending', 'pending', '8 days')) v(type, state, age)
     where k.key_hash = sha256('cq_test_a');
});
--- request eval
::pgwait_req(q{select string_agg(type, ',' order by type) from callhq.webhook_outbox
                where url like '%/t250/purge'}, 'keep-delivered,keep-pending')
--- response_body
keep-delivered,keep-pending



=== TEST 4: callhq_webhook_retention 1d: the 6-day-old row goes too
--- http_config eval
::wh_http(sweep_interval => '100ms', retention => '1d')
--- request eval
::pgwait_req(q{select string_agg(type, ',' order by type) from callhq.webhook_outbox
                where url like '%/t250/purge'}, 'keep-pending')
--- response_body
keep-pending



=== TEST 5: with delivery off, events of stored assistants hold no secret nor headers; the assistant's secret and headers change, one is deleted (the receiver is reset now: TEST 6's nginx may deliver before its first request)
--- http_config eval
::wh_http(interval => '1h') . "callhq_webhooks off;"
--- init
::insert_session('25000000-0000-4000-8000-000000000021',
                 '25000000-0000-4000-8000-000000000002', 'w250-rotate');
::insert_session('25000000-0000-4000-8000-000000000022',
                 '25000000-0000-4000-8000-000000000003', 'w250-deleted');
--- request eval
["GET /_receiver/_control?reset=1",
 "PATCH /assistant/25000000-0000-4000-8000-000000000002\n{\"server\": {\"url\": \"$main::R/t250/rotate\", \"secret\": \"$::WH_SECRET\", \"headers\": {\"X-V\": \"new\"}}}",
 "DELETE /assistant/25000000-0000-4000-8000-000000000003",
 ::pgwait_req(q{select count(*) filter (where secret is null and headers is null
                                              and assistant_id is not null)
                       || '/' || count(*)
                  from callhq.webhook_outbox
                 where (url like '%/t250/rotate' or url like '%/t250/deleted')
                   and state = 'pending'}, '2/2')]
--- response_body eval
["ok\n", qr/"X-V": "new"/, qr/"w250-deleted"/, "2/2\n"]



=== TEST 6: delivery on: the event goes out signed with the assistant's secret and headers of now; the deleted assistant's goes dead
--- request eval
[::wait_req(path => '/t250/rotate', until => 1, headers => 'x-v'),
 ::pgwait_req(q{select state || ': ' || last_error from callhq.webhook_outbox
                 where url like '%/t250/deleted'},
              'dead: its assistant was deleted or has no server.url'),
 "GET /_receiver/_count?path=/t250/deleted"]
--- response_body eval
["session.created 200 A valid x-v=\"new\"\n",
 "dead: its assistant was deleted or has no server.url\n", "0\n"]



=== TEST 7: one org's receiver hangs: it holds half of the worker's 4 slots, and Org B's event goes out meanwhile
--- http_config eval
::wh_http(batch => 4)
--- init
::insert_session(sprintf('25000000-0000-4000-8000-0000000000%02d', $_),
                 '25000000-0000-4000-8000-000000000004', "w250-slow-$_")
    for 31 .. 36;
--- request eval
["GET /_receiver/_control?reset=1",
 ::pgwait_req(q{select count(*) from callhq.webhook_outbox
                 where url like '%/t250/slow%' and state = 'pending'
                   and next_attempt_at > now() + interval '2 minutes'}, '2'),
 "POST /_b/session\n{\"assistantId\": \"25000000-0000-4000-8000-000000000005\", \"name\": \"w250-fair\"}",
 ::wait_req(path => '/t250/fair', until => 1, fields => 'session.name'),
 ::pgwait_req(q{select count(*) from callhq.webhook_outbox
                 where url like '%/t250/slow%' and state = 'pending'
                   and next_attempt_at > now() + interval '2 minutes'}, '2')]
--- error_code eval
[200, 200, 201, 200, 200]
--- response_body eval
["ok\n", "2\n", qr/"w250-fair"/,
 "session.created 200 A valid session.name=\"w250-fair\"\n", "2\n"]



=== TEST 8: an event claimed by a delivery that waits for DNS...
--- http_config eval
::wh_http(resolver => "127.0.0.1:$main::SILENT_PORT ipv6=off")
--- init
::insert_session('25000000-0000-4000-8000-000000000041',
                 '25000000-0000-4000-8000-000000000006', 'w250-unsent');
--- request eval
::pgwait_req(q{select count(*) from callhq.webhook_outbox
                where url like '%/t250/unsent' and state = 'pending'
                  and next_attempt_at > now() + interval '2 minutes'}, '1')
--- response_body
1



=== TEST 9: ... is handed back at once when that nginx stops gracefully, not after its 6-minute lease
--- http_config eval
::wh_http() . "callhq_webhooks off;"
--- request eval
::pgwait_req(q{select count(*) from callhq.webhook_outbox
                where url like '%/t250/unsent' and state = 'pending'
                  and next_attempt_at <= now()}, '1')
--- response_body
1



=== TEST 10: a graceful reload while the receiver holds an event: the old worker hands it back, the new workers deliver it again at once, not 6 minutes later
--- init
::insert_session('25000000-0000-4000-8000-000000000051',
                 '25000000-0000-4000-8000-000000000007', 'w250-held');
main::receiver_got('/t250/held', 1);
my $from = CallHQ::Test::log_size();
kill 'HUP', CallHQ::Test::nginx_pid();
# no request of the block may reach the old worker: it would close it idle
CallHQ::Test::wait_for_log(qr/gracefully shutting down/, $from)
    or die "nginx did not reload\n";
--- request eval
[::wait_req(path => '/t250/held', until => 1, timeout => 60),
 ::pgwait_req(q{select state || ' ' || attempts || ' '
                       || (delivered_at < created_at + interval '1 minute')
                  from callhq.webhook_outbox where url like '%/t250/held%'},
              'delivered 0 true', timeout => 30)]
--- response_body eval
["session.created hang A valid\nsession.created 200 A valid\n",
 "delivered 0 true\n"]



=== TEST 11: PostgreSQL restarts: the listener connects and LISTENs again, and an event's NOTIFY wakes the dispatcher (its interval is 1 h)
--- http_config eval
::wh_http(interval => '1h', sweep_interval => 0)
--- init
main::listening() or die "the listener did not LISTEN\n";
my $from = CallHQ::Test::log_size();
CallHQ::Test::pg_stop();
CallHQ::Test::wait_for_log(qr/webhook listener lost/, $from)
    or die "the listener did not notice PostgreSQL going away\n";
CallHQ::Test::pg_start();
--- request eval
[::pgwait_req($main::LISTENING, '1', timeout => 60),
 "POST /session\n{\"assistantId\": \"25000000-0000-4000-8000-000000000008\", \"name\": \"w250-listen\"}",
 ::wait_req(path => '/t250/listen', until => 1, fields => 'session.name')]
--- error_code eval
[200, 201, 200]
--- response_body eval
["1\n", qr/"w250-listen"/,
 "session.created 200 A valid session.name=\"w250-listen\"\n"]
--- no_error_log
[crit]
[alert]
