# Texts sent with Twilio's REST API, through the webhook outbox (issue 15,
# items 3 and 4): a model slower than callhq_sms_reply_timeout is answered
# for with an empty <Response/>, and its reply is sent once by the mock
# Twilio API (t/mock/webhook_receiver.py), again after a refusal, as
# several texts in order when it is long; a webhook sent again does not
# answer it twice; a late model failure texts the apology; POST /chat
# with transport twilio.sms texts its reply, or its input; session and
# chat webhooks fire for SMS chats; old sms_inbound rows go; the
# callhq_sms_* counters move.  The Twilio API is on loopback without
# callhq_webhook_allow: the operator's URL is not a tenant's.
use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect webhook sms);
use JSON::PP ();

$ENV{TEST_NGINX_WH_PORT} = ::start_receiver('--pg',
                                            $ENV{TEST_NGINX_PG_CONNINFO});

our $R = "http://127.0.0.1:$ENV{TEST_NGINX_WH_PORT}";
our $TW = '/2010-04-01/Accounts/AC320/Messages.json';

$::SMS_ACCOUNT = 'AC320';
$::SMS_PREFIX = 'SM320';

our $TWILIO = "callhq_twilio_api_url http://127.0.0.1:\$TEST_NGINX_WH_PORT/;\n"
              . "callhq_webhook_sweep_interval 200ms;\n";

# no callhq_webhook_allow: only the Twilio API's sends may go to loopback
our $HTTP = ::wh_http(allow => undef) . $TWILIO;

# and with it, for the blocks whose assistant has a server.url
our $HTTP_ALLOW = ::wh_http() . $TWILIO;

our $SMS = <<'_EOC_';
location = /sms/twilio {
    callhq_sms_twilio;
    callhq_model_location /_model;
    callhq_sms_reply_timeout 1s;
}
location = /metrics {
    callhq_metrics;
    callhq_metrics_db_interval 0;
}
_EOC_

::wh_defaults(http_config => $HTTP,
              config => $SMS,
              block => $::SMS_BLOCK);

END {
    eval { psql(q{delete from callhq.webhook_outbox where url like '%/t320/%'
                     or phone_number_id::text like '32000000-%'}) };
}

# Org A's assistants 32000000-0000-4000-8000-0000000000NN (model):
#   01 parrot+slow-4000   02 parrot   03 parrot+slow-4000+fail-500
#   04 parrot, server.url the receiver's /t320/hooks   05 recall+fail-500
# Org A's numbers +1555320000N (id ...10N), account AC320, token tok-N:
#   1 on 01   2 on 02   3 on 03   4 on 04   5 on 02, SMS disabled
#   6 without assistant   7 on 05
# Org B's number +15553200009 on its assistant 09 (parrot).
our %ASST = ('01' => 'parrot+slow-4000', '02' => 'parrot',
             '03' => 'parrot+slow-4000+fail-500', '04' => 'parrot',
             '05' => 'recall+fail-500', '09' => 'parrot');

sub id { sprintf '32000000-0000-4000-8000-0000000000%s', shift }
sub pid { '32000000-0000-4000-8000-00000000010' . shift }
sub num { "+1555320000" . shift }

psql(q{
    delete from callhq.webhook_outbox where url like '%/t320/%'
        or phone_number_id::text like '32000000-%';
    delete from callhq.sessions where phone_number_id::text like '32000000-%'
        or assistant_id::text like '32000000-%';
    delete from callhq.phone_numbers where id::text like '32000000-%';
    delete from callhq.assistants where id::text like '32000000-%';
});
# the session.deleted events those deletes queued at their commit (a run
# before this one, the PgBouncer pass's, left sessions of the hooked
# assistant): a transaction of its own, after that commit
psql(q{
    delete from callhq.webhook_outbox where url like '%/t320/%'
        or phone_number_id::text like '32000000-%';
} . join('', map { my $org = $_ eq '09' ? 'cq_test_b' : 'cq_test_a';
                   my $server = $_ eq '04' ? qq{'{"url": "$R/t320/hooks"}'}
                                           : 'null'; qq{
    insert into callhq.assistants (id, org_id, name, model, server)
    select '@{[ id($_) ]}', k.org_id, 'sms-$_',
           '{"provider": "openai", "model": "$ASST{$_}"}', $server
      from callhq.api_keys k where k.key_hash = sha256('$org'::bytea);
} } sort keys %ASST) . q{
    insert into callhq.phone_numbers (id, org_id, number, twilio_account_sid,
                                      twilio_auth_token, assistant_id, sms_enabled)
    select ('32000000-0000-4000-8000-00000000010' || v.n)::uuid, k.org_id,
           '+1555320000' || v.n, 'AC320', 'tok-' || v.n,
           ('32000000-0000-4000-8000-0000000000' || v.a)::uuid, v.sms
      from callhq.api_keys k,
           (values ('1', '01', true, 'cq_test_a'), ('2', '02', true, 'cq_test_a'),
                   ('3', '03', true, 'cq_test_a'), ('4', '04', true, 'cq_test_a'),
                   ('5', '02', false, 'cq_test_a'), ('6', null, true, 'cq_test_a'),
                   ('7', '05', true, 'cq_test_a'), ('9', '09', true, 'cq_test_b'))
           v(n, a, sms, key)
     where k.key_hash = sha256(v.key::bytea);
});

# the receiver's control, at once
sub receiver { ::sms_get(shift, $ENV{TEST_NGINX_WH_PORT}) }

# a webhook to a slow number, timed: its answer must be the empty one,
# after the reply timeout and well before the model's 4 s
sub late_sms {
    my ($test, %o) = @_;
    my ($t, $resp) = ::sms_raw(%o);
    Test::More::ok($t > 0.9 && $t < 3.5,
                   "$0 - $test: answered after 1 s, before the model ($t s)");
    Test::More::like($resp, qr{\AHTTP/1\.1 200 OK\r\n(?=.*\r\nContent-Type: text/xml\r\n)(?=.*\r\nConnection: close\r\n).*\r\n\r\n\Q${\ ::twiml() }\E\z}s,
                     "$0 - $test: an empty <Response/>");
}

sub sessions_of { main::sms_sessions_of(pid(shift), shift) }

sub chat_req {
    return "POST /chat\n" . JSON::PP->new->canonical->encode({@_});
}

# the counters of a scrape, by series
sub counters {
    my %c;
    for (split /\n/, ::sms_get('/metrics')) {
        $c{$1} = $2 if /^(callhq_sms_\w+(?:\{[^}]*\})?) (\d+)$/;
    }
    return \%c;
}

our $WAIT_FIELDS = 'From,To,Body,auth';

run_tests();

__DATA__

=== TEST 1: a model slower than callhq_sms_reply_timeout: an empty answer, then the reply by the REST API, sent again after a refusal
--- init
main::receiver('/_control?reset=1&refuse=1');
main::late_sms('TEST 1', To => main::num(1), From => '+15557770001',
               Body => 'slow one', MessageSid => 'SM320slow');
--- request eval
::wait_req(path => $main::TW, until => 1, settle => 1,
           fields => $main::WAIT_FIELDS)
--- response_body
twilio.sms 503 A valid From="+15553200001" To="+15557770001" Body="slow one" auth="AC320:tok-1"
twilio.sms 201 A valid From="+15553200001" To="+15557770001" Body="slow one" auth="AC320:tok-1"
--- error_log
goes by Twilio's REST API
Twilio answered 503
--- no_error_log
[error]
[crit]
[alert]
tok-1



=== TEST 2: the same MessageSid sent again: an empty answer, not the reply a second time
--- sms eval
{ To => main::num(1), From => '+15557770001', Body => 'slow one',
  MessageSid => 'SM320slow' }
--- error_code: 200
--- response_body eval
main::twiml()
--- error_log
goes by the REST API: answering empty



=== TEST 3: one chat, recorded in the session; one text sent; the outbox row has no credentials
--- init
Test::More::is(CallHQ::Test::psql(q{select count(*) from callhq.chats
                                     where metadata->>'messageSid' = 'SM320slow'}),
               '1', "$0 - TEST 3: one chat");
Test::More::is(main::sessions_of(1, '+15557770001'), '2 true',
               "$0 - TEST 3: the turn is in the customer's session");
Test::More::is(CallHQ::Test::psql(q{
    select count(*) || ' ' || count(*) filter (where o.secret is null
                                                 and o.body not like '%tok-%'
                                                 and o.url = '')
      from callhq.webhook_outbox o
     where o.phone_number_id = '32000000-0000-4000-8000-000000000101'}),
    '1 1', "$0 - TEST 3: one row, without the auth token");
--- request eval
::wait_req(path => $main::TW, until => 1, settle => 0.5, summary => 1)
--- response_body
requests=2 ids=1 duplicates=0 valid=2



=== TEST 4: the slow model fails after the empty answer: the apology is texted, nothing recorded
--- init
main::receiver('/_control?reset=1');
main::late_sms('TEST 4', To => main::num(3), From => '+15557770003',
               Body => 'fail late');
--- request eval
::wait_req(path => $main::TW, until => 1, settle => 0.5, fields => 'To,Body')
--- response_body
twilio.sms 201 A valid To="+15557770003" Body="Sorry, something went wrong on our side. Please try again in a moment."
--- error_log
after Twilio had its answer: texting callhq_sms_error_message
--- no_error_log
[crit]
[alert]



=== TEST 5: POST /chat with transport twilio.sms: the chat in the customer's SMS session, its reply texted
--- init
Test::More::is(main::sessions_of(3, '+15557770003'), '0 true',
               "$0 - TEST 5: TEST 4's failed chat recorded nothing");
main::receiver('/_control?reset=1');
--- request eval
[main::chat_req(phoneNumberId => main::pid(2),
                customer => { number => '+15557770005' },
                transport => { type => 'twilio.sms' }, input => 'hello there'),
 ::wait_req(path => $main::TW, until => 1, fields => $main::WAIT_FIELDS)]
--- error_code eval
[201, 200]
--- response_body_like eval
[qr/\A(?=.*"sessionId": "[^"]+")(?=.*"output": \[\{"role": "assistant", "content": "hello there"\}\])/,
 qr/\Atwilio.sms 201 A valid From="\+15553200002" To="\+15557770005" Body="hello there" auth="AC320:tok-2"\n\z/]



=== TEST 6: the customer texts back: the same session
--- sms eval
{ To => main::num(2), From => '+15557770005', Body => 'and again' }
--- error_code: 200
--- response_body eval
main::twiml('and again')



=== TEST 7: useLLMGeneratedMessageForOutbound false: the input is texted and recorded as the assistant's, no model (this one's fails)
--- init
Test::More::is(main::sessions_of(2, '+15557770005'), '4 true',
               "$0 - TEST 7: both turns in one session");
main::receiver('/_control?reset=1');
--- request eval
[main::chat_req(phoneNumberId => main::pid(7),
                customer => { number => '+15557770007' },
                transport => { type => 'twilio.sms',
                               useLLMGeneratedMessageForOutbound => JSON::PP::false },
                input => 'Your order shipped & is <on> its way'),
 ::wait_req(path => $main::TW, until => 1, fields => 'From,To,Body')]
--- error_code eval
[201, 200]
--- response_body_like eval
[qr/\A\{.*"input": "Your order shipped & is <on> its way".*"output": \[\{"role": "assistant", "content": "Your order shipped & is <on> its way"\}\].*"messages": \[\]\}\z/,
 qr/\Atwilio.sms 201 A valid From="\+15553200007" To="\+15557770007" Body="Your order shipped & is <on> its way"\n\z/]



=== TEST 8: ... the session holds the assistant's message only; the next literal text goes to it too
--- init
Test::More::is(CallHQ::Test::psql(q{
    select string_agg(m.role || ':' || (m.content #>> '{}'), ',' order by m.seq)
      from callhq.messages m join callhq.sessions s on s.id = m.session_id
     where s.phone_number_id = '32000000-0000-4000-8000-000000000107'}),
    'assistant:Your order shipped & is <on> its way',
    "$0 - TEST 8: one assistant message");
--- request eval
main::chat_req(phoneNumberId => main::pid(7), customer => { number => '+15557770007' },
               transport => { type => 'twilio.sms',
                              useLLMGeneratedMessageForOutbound => JSON::PP::false },
               input => 'It arrives tomorrow')
--- error_code: 201
--- response_body_like: "content": "It arrives tomorrow"



=== TEST 9: transport's validation: 400 naming the field, another org's number 404
--- request eval
[map { main::chat_req(input => 'x', %$_) }
 { sessionId => main::id('99'), transport => { type => 'twilio.sms' } },
 { phoneNumberId => main::pid(2), transport => { type => 'twilio.sms' },
   previousChatId => main::id('99'), customer => { number => '+15557770005' } },
 { phoneNumberId => main::pid(2), customer => { number => '+15557770005' } },
 { transport => { type => 'twilio.sms' }, customer => { number => '+15557770005' } },
 { phoneNumberId => main::pid(2), transport => { type => 'vapi.websocket' },
   customer => { number => '+15557770005' } },
 { phoneNumberId => main::pid(2), transport => { type => 'twilio.sms', x => 1 },
   customer => { number => '+15557770005' } },
 { phoneNumberId => main::pid(2), customer => { number => '+15557770005' },
   transport => { type => 'twilio.sms', useLLMGeneratedMessageForOutbound => 'no' } },
 { phoneNumberId => main::pid(2), transport => 'twilio.sms',
   customer => { number => '+15557770005' } },
 { phoneNumberId => main::pid(2), transport => { type => 'twilio.sms' } },
 { phoneNumberId => main::pid(2), transport => { type => 'twilio.sms' },
   customer => { number => '5557770005' } },
 { phoneNumberId => 'abc', transport => { type => 'twilio.sms' },
   customer => { number => '+15557770005' } },
 { phoneNumberId => main::pid(5), transport => { type => 'twilio.sms' },
   customer => { number => '+15557770005' } },
 { phoneNumberId => main::pid(6), transport => { type => 'twilio.sms' },
   customer => { number => '+15557770005' } },
 { phoneNumberId => main::pid(2), transport => { type => 'twilio.sms' },
   customer => { number => '+15557770005' }, assistantId => main::id('01') },
 { phoneNumberId => main::pid(2), transport => { type => 'twilio.sms' },
   customer => { number => '+15557770005' },
   assistant => { model => { provider => 'openai', model => 'parrot' } } },
 { phoneNumberId => main::pid(9), transport => { type => 'twilio.sms' },
   customer => { number => '+15557770005' } }]
--- error_code eval
[(400) x 15, 404]
--- response_body eval
[::err(400, 'transport cannot be used with sessionId; a session already has its channel'),
 ::err(400, 'transport cannot be used with previousChatId'),
 ::err(400, 'transport is required with phoneNumberId'),
 ::err(400, 'phoneNumberId is required with transport'),
 ::err(400, 'transport.type must be "twilio.sms"'),
 ::err(400, 'property transport.x should not exist'),
 ::err(400, 'transport.useLLMGeneratedMessageForOutbound must be a boolean'),
 ::err(400, 'transport must be an object'),
 ::err(400, 'customer.number is required with transport'),
 ::err(400, 'customer.number must be an E.164 phone number (+15551234567) with transport'),
 ::err(400, 'phoneNumberId must be a UUID'),
 ::err(400, 'phoneNumberId: phone number ' . main::pid(5) . ' has SMS disabled'),
 ::err(400, 'phoneNumberId: phone number ' . main::pid(6) . ' has no assistant'),
 ::err(400, "assistantId must be the phone number's assistant with transport"),
 ::err(400, "assistant cannot be used with transport; the phone number's assistant answers"),
 ::err(404, 'Phone number ' . main::pid(9) . ' not found')]



=== TEST 10: ... an input that is not text, or stream, with useLLMGeneratedMessageForOutbound false
--- request eval
[main::chat_req(phoneNumberId => main::pid(7), customer => { number => '+15557770007' },
                transport => { type => 'twilio.sms',
                               useLLMGeneratedMessageForOutbound => JSON::PP::false },
                input => [{ role => 'user', content => 'x' }]),
 main::chat_req(phoneNumberId => main::pid(7), customer => { number => '+15557770007' },
                transport => { type => 'twilio.sms',
                               useLLMGeneratedMessageForOutbound => JSON::PP::false },
                input => 'x', stream => JSON::PP::true)]
--- error_code eval
[400, 400]
--- response_body eval
[::err(400, 'input must be a non-empty string with transport.useLLMGeneratedMessageForOutbound false'),
 ::err(400, 'stream cannot be used with transport.useLLMGeneratedMessageForOutbound false; no model answers')]



=== TEST 11: session and chat webhooks fire for an SMS chat, with its phone number
--- http_config eval: $main::HTTP_ALLOW
--- init
main::receiver('/_control?reset=1');
my (undef, $resp) = main::sms_raw(To => main::num(4), From => '+15557770004',
                                  Body => 'hooked');
Test::More::like($resp, qr{\r\n\r\n\Q${\ main::twiml('hooked') }\E\z},
                 "$0 - TEST 11: the reply in TwiML");
--- request eval
::wait_req(path => '/t320/hooks', until => 3,
           fields => 'session.phoneNumberId,session.customer.number,chat.output.0.content')
--- response_body eval
qq{session.created 200 A unsigned session.phoneNumberId="@{[ main::pid(4) ]}" session.customer.number="+15557770004" chat.output.0.content=-\n}
. qq{chat.created 200 B unsigned session.phoneNumberId=- session.customer.number=- chat.output.0.content="hooked"\n}
. qq{session.updated 200 C unsigned session.phoneNumberId="@{[ main::pid(4) ]}" session.customer.number="+15557770004" chat.output.0.content=-\n}



=== TEST 12: texts received go after callhq_webhook_retention (7 days), as settled events do
--- init
CallHQ::Test::psql(q{
    delete from callhq.sms_inbound where message_sid like 'SM320old%' or message_sid like 'SM320new%';
    insert into callhq.sms_inbound (phone_number_id, message_sid, created_at)
    select '32000000-0000-4000-8000-000000000101', 'SM320old' || n, now() - interval '8 days'
      from generate_series(1, 150) n;
    insert into callhq.sms_inbound (phone_number_id, message_sid, created_at)
    values ('32000000-0000-4000-8000-000000000101', 'SM320new', now() - interval '6 days');
});
--- request eval
[::pgwait_req(q{select count(*) from callhq.sms_inbound where message_sid like 'SM320old%'}, '0'),
 ::pgwait_req(q{select count(*) from callhq.sms_inbound where message_sid like 'SM320new%'}, '1')]
--- response_body eval
["0\n", "1\n"]



=== TEST 13: callhq_sms_received_total and callhq_sms_sent_total{result} move
--- init
main::receiver('/_control?reset=1&refuse=1');
my $before = main::counters();
main::late_sms('TEST 13', To => main::num(1), From => '+15557770013', Body => 'counted');
main::receiver('/_wait?path=' . $main::TW . '&until=1');
my $after = main::counters();
for (['callhq_sms_received_total', 1], ['callhq_sms_sent_total{result="sent"}', 1],
     ['callhq_sms_sent_total{result="failed"}', 1]) {
    Test::More::is(($after->{$_->[0]} // -1) - ($before->{$_->[0]} // 0), $_->[1],
                   "$0 - TEST 13: $_->[0] moved by $_->[1]");
}
--- request
GET /metrics
--- response_body_like
# HELP callhq_sms_received_total Texts received by callhq_sms_twilio, signed, for a known number\.
# TYPE callhq_sms_received_total counter
callhq_sms_received_total \d+
# HELP callhq_sms_sent_total Texts sent with Twilio's REST API: attempts by result\.
# TYPE callhq_sms_sent_total counter
callhq_sms_sent_total\{result="sent"\} \d+
callhq_sms_sent_total\{result="failed"\} \d+



=== TEST 14: a late reply over 1600 characters: two texts, in order, cut at the last blank before the limit
--- init
main::receiver('/_control?reset=1');
main::late_sms('TEST 14', To => main::num(1), From => '+15557770014',
               Body => CORE::join(' ', map { sprintf 'w%04d', $_ } 1 .. 400));
--- request eval
::wait_req(path => $main::TW, until => 2, settle => 0.5, fields => 'Body')
--- response_body eval
'twilio.sms 201 A valid Body="' . CORE::join(' ', map { sprintf 'w%04d', $_ } 1 .. 266) . "\"\n"
. 'twilio.sms 201 B valid Body="' . CORE::join(' ', map { sprintf 'w%04d', $_ } 267 .. 400) . "\"\n"



=== TEST 15: Twilio refuses a text for good (a 4xx): it goes dead at once, and the session's next text goes out
--- init
main::receiver('/_control?reset=1&refuse=1&refuse_status=400');
--- request eval
[map({ main::chat_req(phoneNumberId => main::pid(7),
                      customer => { number => '+15557770015' },
                      transport => { type => 'twilio.sms',
                                     useLLMGeneratedMessageForOutbound => JSON::PP::false },
                      input => $_) } 'refused', 'accepted'),
 ::wait_req(path => $main::TW, until => 1, settle => 1, fields => 'Body'),
 ::pgwait_req(q{select string_agg(o.state || ' ' || o.attempts, ',' order by o.id)
                  from callhq.webhook_outbox o
                 where o.payload->>'To' = '+15557770015'}, 'dead 1,delivered 0')]
--- error_code eval
[201, 201, 200, 200]
--- response_body_like eval
[qr/"content": "refused"/, qr/"content": "accepted"/,
 qr/\Atwilio.sms 400 A valid Body="refused"\ntwilio.sms 201 B valid Body="accepted"\n\z/,
 qr/\Adead 1,delivered 0\n\z/]
