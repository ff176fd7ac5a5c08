# Prometheus metrics (callhq_metrics): after real traffic (chats that
# completed, streamed, failed upstream, were refused, and a Responses
# chat), a scrape counts each as it happened, summed in the shared zone,
# and `promtool check metrics` (Debian's prometheus package) finds
# nothing wrong with the exposition.  The traffic goes in --- init, on the
# block's own nginx (t/fixtures/gate.pl); the block's request is the
# scrape whose values are checked.  Sessions opened for a customer (by a
# chat or a text) count as created, and as expired when swept; statements
# that time out or find the pool full count under those reasons.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat gate webhook);
use Digest::SHA qw(hmac_sha1_base64);
use IO::Socket::INET ();

sub id { sprintf '23000000-0000-4000-8000-0000000000%s', shift }

our %ASST = ('01' => 'echo', '02' => 'echo+fail-500');
our %SESS = ('11' => '01', '12' => '02');

psql(q{
    delete from callhq.sessions where id::text like '23000000-%'
        or name in ('c230-new', 'c235-hooked')
        or assistant_id::text like '23000000-%';
    delete from callhq.phone_numbers where id::text like '23000000-%';
    delete from callhq.chats where id::text like '23000000-%'
        or assistant_id::text like '23000000-%';
    delete from callhq.assistants where id::text like '23000000-%';
} . join('', map { qq{
    insert into callhq.assistants (id, org_id, name, model)
    select '@{[ id($_) ]}', k.org_id, 'c230-$_',
           '{"provider": "openai", "model": "$ASST{$_}"}'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
} } sort keys %ASST) . join('', map { qq{
    insert into callhq.sessions (id, org_id, assistant_id, name, expiration_seconds,
                                 expires_at)
    select '@{[ id($_) ]}', k.org_id, '@{[ id($SESS{$_}) ]}', 'c230-$_', 86400,
           '2099-01-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
} } sort keys %SESS));

our ($OK, $FAIL) = (id('11'), id('12'));
main::gate_reset('gate-235-slow');

# a number texted through Twilio, on the assistant that echoes
psql(q{
    insert into callhq.phone_numbers (id, org_id, number, twilio_account_sid,
                                      twilio_auth_token, assistant_id, sms_enabled)
    select '23000000-0000-4000-8000-000000000101', k.org_id, '+15552350001',
           'AC235', 'tok-235', '23000000-0000-4000-8000-000000000001', true
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
});

our $SMS = "location = /sms/twilio {\n    callhq_sms_twilio;\n"
           . "    callhq_model_location /_model;\n}\n";

# a text from $from, signed as Twilio signs (see t/310-sms-twilio.t): the
# status of the TwiML answer
sub sms_now {
    my ($from, $sid) = @_;
    my %p = (AccountSid => 'AC235', MessageSid => $sid, From => $from,
             To => '+15552350001', Body => 'hi', NumMedia => '0');
    my $sig = hmac_sha1_base64('http://localhost/sms/twilio'
                               . join('', map { $_ . $p{$_} } sort keys %p),
                               'tok-235');
    $sig .= '=' while length($sig) % 4;
    my $body = join '&', map {
        (my $v = $p{$_}) =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge;
        "$_=$v" } sort keys %p;
    my $sock = IO::Socket::INET->new(
        PeerAddr => '127.0.0.1', Timeout => 30,
        PeerPort => Test::Nginx::Util::server_port_for_client())
        or die "cannot connect: $!\n";
    print {$sock} "POST /sms/twilio HTTP/1.1\r\nHost: localhost\r\n"
                  . "Content-Type: application/x-www-form-urlencoded\r\n"
                  . "X-Twilio-Signature: $sig\r\nConnection: close\r\n"
                  . "Content-Length: " . length($body) . "\r\n\r\n$body";
    local $/;
    return ((<$sock> // '') =~ m{\AHTTP/1\.1 (\d+)})[0] // 0;
}

sub send_chat {
    my ($path, $sid, $more) = @_;
    my $resp = main::http_now('POST', $path,
                              qq[{"sessionId": "$sid", "input": "hi"]
                              . ($more ? ", $more" : '') . '}');
    return ($resp =~ m{\AHTTP/1\.1 (\d+)})[0] // 0;
}

# the traffic: 4 chats that complete (one streamed, one Responses, one
# through callhq_openai), one the model fails, one refused (an unknown
# session): each status checked
sub traffic {
    my $s = main::http_now('POST', '/session', '{"name": "c230-new"}');
    Test::More::like($s, qr{\AHTTP/1\.1 201 }, "$0 - a session created");
    my @got = (send_chat('/chat', $main::OK), send_chat('/chat', $main::OK, '"stream": true'),
               send_chat('/chat/responses', $main::OK, '"stream": false'),
               send_chat('/chat', $main::FAIL), send_chat('/chat', id('99')));
    my $o = main::http_now('POST', '/v1/responses',
                           '{"model": "' . id('01') . '", "input": "hi"}');
    push @got, ($o =~ m{\AHTTP/1\.1 (\d+)})[0] // 0;
    Test::More::is("@got", '201 200 200 502 404 200', "$0 - the traffic answered");
    # a conversation is a session too
    Test::More::like(main::http_now('POST', '/v1/conversations',
                                    '{"metadata": {"t": "c235-conv"}}'),
                     qr{\AHTTP/1\.1 200 }, "$0 - a conversation created");
}

sub sql_until_235 {
    my ($sql, $want) = @_;
    my $deadline = time + 60;
    while (time < $deadline) {
        return 1 if CallHQ::Test::psql($sql) eq $want;
        Time::HiRes::sleep(0.05);
    }
    die "never $want: $sql\n";
}

# promtool's verdict on a scrape: its output, empty when all is well
sub promtool {
    my $resp = main::http_now('GET', '/metrics');
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    Test::More::like($head, qr{\AHTTP/1\.1 200 .*Content-Type: text/plain; version=0\.0\.4}s,
                     "$0 - the scrape is the text format");
    my $file = "$ENV{CALLHQ_TEST_TMP}/metrics.txt";
    open my $fh, '>', $file or die "$file: $!\n";
    print {$fh} $body // '';
    close $fh;
    my $out = `promtool check metrics < $file 2>&1`;
    Test::More::is($? >> 8, 0, "$0 - promtool check metrics exits 0");
    Test::More::is($out, '', "$0 - promtool check metrics says nothing");
}

our $HTTP = <<'_EOC_';
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_webhook_allow 127.0.0.1;
_EOC_

# a receiver for the session events of assistant 03
our $RECEIVER = main::start_receiver();
our $HOOKED = id('03');
psql(qq{
    insert into callhq.assistants (id, org_id, name, model, server)
    select '$HOOKED', k.org_id, 'c230-03', '{"provider": "openai", "model": "echo"}',
           '{"url": "http://127.0.0.1:$RECEIVER/t235"}'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
});

# an event is settled (delivered or dead) for the session named $name
sub settled {
    my $name = shift;
    my $deadline = time + 60;
    while (time < $deadline) {
        return 1 if CallHQ::Test::psql(qq{
            select count(*) from callhq.webhook_outbox o, callhq.sessions s
             where o.state = 'delivered' and o.session_id = s.id
               and s.name = '$name'}) > 0;
        Time::HiRes::sleep(0.05);
    }
    die "no event delivered for session $name\n";
}

our $CONFIG = api_location('/') . model_locations()
              . "location /v1/ {\n    callhq_openai;\n"
              . "    callhq_model_location /_model;\n}\n"
              . "location = /metrics {\n    callhq_metrics;\n"
              . "    callhq_metrics_db_interval 0;\n}\n";

gate_defaults(http_config => $HTTP, no_error_log => "[crit]\n[alert]");

run_tests();

__DATA__

=== TEST 1: after real traffic, the scrape counts each chat as it ended, and promtool accepts it
--- config eval
$main::CONFIG
--- init
main::traffic();
main::promtool();
--- request
GET /metrics
--- response_body_like eval
qr/\A# HELP callhq_chats_total .*
callhq_chats_total\{surface="chat",status="completed"\} 2
callhq_chats_total\{surface="chat",status="incomplete"\} 0
callhq_chats_total\{surface="chat",status="failed"\} 1
callhq_chats_total\{surface="chat",status="refused"\} 1
callhq_chats_total\{surface="responses",status="completed"\} 1
.*callhq_chats_total\{surface="openai",status="completed"\} 1
.*callhq_chats_total\{surface="sms",status="completed"\} 0
.*callhq_model_responses_total\{class="2xx"\} 4
.*callhq_model_responses_total\{class="5xx"\} 1
.*callhq_chat_first_delta_seconds_bucket\{le="\+Inf"\} 1
.*callhq_chat_first_delta_seconds_count 1
.*callhq_chat_duration_seconds_bucket\{le="\+Inf"\} 5
.*callhq_chat_duration_seconds_count 5
.*callhq_postgres_query_duration_seconds_count\{statement="callhq_turn_record"\} 3
.*callhq_postgres_query_duration_seconds_count\{statement="callhq_turn_take_all"\} [4-9]
.*callhq_postgres_errors_total\{reason="unavailable"\} 0
.*callhq_turn_conflicts_total 0
.*callhq_sessions_created_total 2
.*callhq_postgres_connections\{worker="0",state="open"\} [1-9]\d*
.*callhq_webhook_outbox_events\{state="pending"\} \d+
callhq_webhook_outbox_events\{state="dead"\} \d+
\z/s



=== TEST 2: a chat past its turn's bound counts as a wait and a conflict
--- config eval
$main::CONFIG =~ s/callhq_api;/callhq_api;\n    callhq_turn_timeout 200ms;/r
--- init
CallHQ::Test::psql(qq{update callhq.sessions set busy_chat = gen_random_uuid(),
                         busy_until = now() + interval '1 minute' where id = '$main::OK'});
Test::More::is(main::send_chat('/chat', $main::OK), 409, "$0 - the busy session answers 409");
CallHQ::Test::psql(qq{update callhq.sessions set busy_chat = null, busy_until = null
                       where id = '$main::OK'});
--- request
GET /metrics
--- response_body_like eval
qr/callhq_chats_total\{surface="chat",status="refused"\} 1\n.*callhq_turn_waits_total 1\n.*callhq_turn_conflicts_total 1\n/s



=== TEST 3: a webhook delivered counts, with its time; an expired session swept counts
--- config eval
$main::CONFIG
--- http_config eval
$main::HTTP . "callhq_webhook_sweep_interval 1s;\n"
--- init
my $s = main::http_now('POST', '/session',
                       qq{{"name": "c235-hooked", "assistantId": "$main::HOOKED"}});
Test::More::like($s, qr{\AHTTP/1\.1 201 }, "$0 - a session with a webhook");
main::settled('c235-hooked');
CallHQ::Test::psql(qq{update callhq.sessions set expires_at = now() - interval '1 second'
                       where name = 'c235-hooked'});
main::sql_until_235(qq{select status from callhq.sessions where name = 'c235-hooked'},
                    'completed');
--- request
GET /metrics
--- response_body_like eval
qr/\A(?=.*\ncallhq_sessions_expired_total [1-9]\d*\n)(?=.*\ncallhq_webhook_deliveries_total\{result="delivered"\} [1-9]\d*\n)(?=.*\ncallhq_webhook_delivery_seconds_count [1-9]\d*\n)/s



=== TEST 4: a customer's first chat and first text open sessions that count as created, the next ones do not; swept when expired, they count as expired
--- config eval
$main::CONFIG . $main::SMS
--- http_config eval
$main::HTTP . "callhq_webhook_sweep_interval 1s;\n"
--- init
my $asst = main::id('01');
my @got = map {
    (main::http_now('POST', '/chat', qq[{"assistantId": "$asst", "input": "hi",
                                          "customer": {"number": "+15550235001"}}])
     =~ m{\AHTTP/1\.1 (\d+)})[0] // 0 } 1, 2;
push @got, main::sms_now('+15550235002', 'SM2350001'),
           main::sms_now('+15550235002', 'SM2350002');
Test::More::is("@got", '201 201 200 200', "$0 - two chats and two texts answered");
Test::More::is(CallHQ::Test::psql(qq{
    select count(*) from callhq.sessions
     where assistant_id = '$asst' and customer->>'number' like '+1555023500_'}),
    2, "$0 - one session for each customer");
CallHQ::Test::psql(qq{update callhq.sessions set expires_at = now() - interval '1 second'
                       where assistant_id = '$asst'
                         and customer->>'number' like '+1555023500_'});
main::sql_until_235(qq{select count(*) from callhq.sessions
                        where assistant_id = '$asst' and status = 'completed'
                          and customer->>'number' like '+1555023500_'}, 2);
--- request
GET /metrics
--- response_body_like eval
qr/\A(?=.*\ncallhq_chats_total\{surface="chat",status="completed"\} 2\n)(?=.*\ncallhq_chats_total\{surface="sms",status="completed"\} 2\n)(?=.*\ncallhq_sessions_created_total 2\n)(?=.*\ncallhq_sessions_expired_total [2-9]\d*\n)/s



=== TEST 5: a statement past callhq_postgres_query_timeout counts as a timeout, one the full pool refuses as exhausted
--- http_config
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
callhq_postgres_pool_size 1;
callhq_postgres_queue 0;
callhq_postgres_query_timeout 2s;
callhq_webhooks off;
--- config eval
$main::CONFIG
--- init
main::spawn_request('slow', 'POST', '/session', '{"name": "gate-235-slow"}');
main::gate_wait_held('gate-235-slow');
Test::More::like(main::http_now('GET', '/session'),
                 qr{\AHTTP/1\.1 503 .*"database pool exhausted"}s,
                 "$0 - the one connection busy, no queue: refused");
Test::More::like(main::child_response('slow'),
                 qr{\AHTTP/1\.1 503 .*"database query timed out"}s,
                 "$0 - the held insert timed out");
--- request
GET /metrics
--- response_body_like eval
qr/\ncallhq_postgres_errors_total\{reason="unavailable"\} 0\ncallhq_postgres_errors_total\{reason="exhausted"\} 1\ncallhq_postgres_errors_total\{reason="timeout"\} 1\n/s
--- error_log
callhq: postgres query timed out
