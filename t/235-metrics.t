# Prometheus metrics (callhq_metrics): after real traffic (chats that
# completed, streamed, failed upstream, were refused, and a Responses
# chat), a scrape counts each as it happened, summed in the shared zone,
# and `promtool check metrics` (Debian's prometheus package) finds
# nothing wrong with the exposition.  The traffic goes in --- init, on the
# block's own nginx (t/fixtures/gate.pl); the block's request is the
# scrape whose values are checked.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat gate webhook);

sub id { sprintf '23000000-0000-4000-8000-0000000000%s', shift }

our %ASST = ('01' => 'echo', '02' => 'echo+fail-500');
our %SESS = ('11' => '01', '12' => '02');

psql(q{
    delete from callhq.sessions where id::text like '23000000-%'
        or name in ('c230-new', 'c235-hooked');
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

sub send_chat {
    my ($path, $sid, $more) = @_;
    my $resp = main::http_now('POST', $path,
                              qq[{"sessionId": "$sid", "input": "hi"]
                              . ($more ? ", $more" : '') . '}');
    return ($resp =~ m{\AHTTP/1\.1 (\d+)})[0] // 0;
}

# the traffic: 3 chats that complete (one streamed, one Responses), one
# the model fails, one refused (an unknown session): each status checked
sub traffic {
    my $s = main::http_now('POST', '/session', '{"name": "c230-new"}');
    Test::More::like($s, qr{\AHTTP/1\.1 201 }, "$0 - a session created");
    my @got = (send_chat('/chat', $main::OK), send_chat('/chat', $main::OK, '"stream": true'),
               send_chat('/chat/responses', $main::OK, '"stream": false'),
               send_chat('/chat', $main::FAIL), send_chat('/chat', id('99')));
    Test::More::is("@got", '201 200 200 502 404', "$0 - the traffic answered");
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
.*callhq_model_responses_total\{class="2xx"\} 3
.*callhq_model_responses_total\{class="5xx"\} 1
.*callhq_chat_first_delta_seconds_bucket\{le="\+Inf"\} 1
.*callhq_chat_first_delta_seconds_count 1
.*callhq_chat_duration_seconds_bucket\{le="\+Inf"\} 4
.*callhq_chat_duration_seconds_count 4
.*callhq_postgres_query_duration_seconds_count\{statement="callhq_turn_take"\} [4-9]
.*callhq_postgres_query_duration_seconds_count\{statement="callhq_turn_record"\} 3
.*callhq_postgres_errors_total\{reason="unavailable"\} 0
.*callhq_turn_conflicts_total 0
.*callhq_sessions_created_total 1
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
