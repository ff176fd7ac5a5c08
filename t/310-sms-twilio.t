# callhq_sms_twilio: Twilio's Messaging webhook.  Signatures (computed
# here, over the exact URL and the sorted parameters), the number by To,
# the customer's session by (number, From), context across texts, TwiML
# answers (escaped, split), MessageSid idempotency (one after the other
# and at once), model failure, the fallback of a number without an
# assistant, inactivity expiry, tenancy.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect sms);
use POSIX ();
use Time::HiRes ();

our $SMS = qq{
location = /sms/twilio {
    callhq_sms_twilio;
    callhq_model_location /_model;
    callhq_session_expiration 120s;
}
location = /sms/public {
    callhq_sms_twilio;
    callhq_model_location /_model;
    callhq_sms_public_url https://sms.example.com/hook?x=1;
    callhq_sms_error_message "Oops <sorry> & try later";
}
location /sms/ { return 404; }
};

callhq_defaults(config => api_location('/') . $SMS
                          . model_locations(read_timeout => '5s'),
                block => $::SMS_BLOCK);

# Org A's assistants 31000000-0000-4000-8000-0000000000NN (model):
#   01 recall   02 parrot   03 parrot+slow-1500   04 recall+fail-500
# Org A's numbers +1555310000N, token tok-N:
#   1 on 01   2 on 02   3 on 03   4 on 04   5 on 01, SMS disabled
#   6 without assistant, fallbackMessage   7 without either
# Org B's number +15553100009 on its assistant 09 (recall), token tok-9.
our %ASST = ('01' => 'recall', '02' => 'parrot', '03' => 'parrot+slow-1500',
             '04' => 'recall+fail-500', '09' => 'recall');

sub id { sprintf '31000000-0000-4000-8000-0000000000%s', shift }
sub num { "+1555310000" . shift }

psql(q{
    delete from callhq.sessions where org_id in (select org_id from callhq.api_keys)
       and phone_number_id::text like '31000000-%';
    delete from callhq.phone_numbers where id::text like '31000000-%';
    delete from callhq.assistants where id::text like '31000000-%';
} . join('', map { my $org = $_ eq '09' ? 'cq_test_b' : 'cq_test_a'; qq{
    insert into callhq.assistants (id, org_id, name, model)
    select '@{[ id($_) ]}', k.org_id, 'sms-$_',
           '{"provider": "openai", "model": "$ASST{$_}"}'
      from callhq.api_keys k where k.key_hash = sha256('$org'::bytea);
} } sort keys %ASST) . q{
    insert into callhq.phone_numbers (id, org_id, number, twilio_account_sid,
                                      twilio_auth_token, assistant_id, sms_enabled,
                                      fallback_message)
    select ('31000000-0000-4000-8000-00000000010' || v.n)::uuid, k.org_id,
           '+1555310000' || v.n, 'AC310', 'tok-' || v.n,
           ('31000000-0000-4000-8000-0000000000' || v.a)::uuid, v.sms, v.fallback
      from callhq.api_keys k,
           (values ('1', '01', true, null, 'cq_test_a'),
                   ('2', '02', true, null, 'cq_test_a'),
                   ('3', '03', true, null, 'cq_test_a'),
                   ('4', '04', true, null, 'cq_test_a'),
                   ('5', '01', false, null, 'cq_test_a'),
                   ('6', null, true, 'We are closed & <away>', 'cq_test_a'),
                   ('7', null, true, null, 'cq_test_a'),
                   ('9', '09', true, null, 'cq_test_b'))
           v(n, a, sms, fallback, key)
     where k.key_hash = sha256(v.key::bytea);
});

# One webhook from a child process; its raw answer lands in $file.
our %CHILD;
sub sms_in_background {
    my ($file, %o) = @_;
    unlink $file;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my (undef, $resp) = main::sms_raw(%o);
        if (open my $out, '>', $file) { print $out $resp; close $out }
        POSIX::_exit(0);
    }
    $CHILD{$file} = $pid;
}

sub background_done {
    my $file = shift;
    waitpid delete $CHILD{$file}, 0;
    open my $in, '<', $file or return '';
    local $/;
    return scalar <$in>;
}

# the customer's sessions on number n: "<messages> <active>" each
sub sessions_of {
    my ($n, $from) = @_;
    return main::sms_sessions_of("31000000-0000-4000-8000-00000000010$n", $from);
}

sub chats_of_sid {
    my $sid = shift;
    return CallHQ::Test::psql(qq{select count(*) from callhq.chats
                                  where metadata->>'messageSid' = '$sid'});
}

our $TMP = $ENV{CALLHQ_TEST_TMP} // '/tmp';
our $LONG = join ' ', map { sprintf 'w%04d', $_ } 1 .. 400;

run_tests();

# What the blocks left behind.
Test::More::is(sessions_of(1, '+15557770001'), '4 false,2 true',
               'sms: the first session of customer 1 expired with 2 turns, a new one has 1');
Test::More::is(sessions_of(1, '+15557770002'), '4 true',
               'sms: customer 2 has a session of its own on the same number');
Test::More::is(CallHQ::Test::psql(q{
    select count(*) from callhq.sessions
     where phone_number_id in ('31000000-0000-4000-8000-000000000104',
                               '31000000-0000-4000-8000-000000000106',
                               '31000000-0000-4000-8000-000000000107')
       and next_seq > 1}), '0',
    'sms: a failed model, or a number without assistant, recorded nothing');
Test::More::is(CallHQ::Test::psql(q{
    select count(*) from callhq.sessions s join callhq.api_keys k
        on k.org_id = s.org_id and k.key_hash = sha256('cq_test_b'::bytea)
     where s.phone_number_id = '31000000-0000-4000-8000-000000000109'}), '1',
    "sms: org B's number's session is org B's");
Test::More::is(CallHQ::Test::psql(q{
    select expiration_seconds || ' ' || renew_on_activity || ' '
           || (extract(epoch from expires_at - updated_at))::int
      from callhq.sessions
     where phone_number_id = '31000000-0000-4000-8000-000000000101'
       and customer->>'number' = '+15557770002'}), '120 true 120',
    'sms: expirationSeconds from callhq_session_expiration, renewed by the last text');

__DATA__

=== TEST 1: a signed text: TwiML with the assistant's reply, escaped
--- sms eval
{ To => main::num(1), From => '+15557770001', Body => 'Hi, my name is Sarah' }
--- error_code: 200
--- response_headers
Content-Type: text/xml
--- response_body eval
main::twiml('Nice to meet you, Sarah! I&apos;ll remember that. (turn 1)')



=== TEST 2: the next text of the customer has the context of the first
--- sms eval
{ To => main::num(1), From => '+15557770001', Body => 'What is my name?' }
--- error_code: 200
--- response_body eval
main::twiml('Your name is Sarah.')



=== TEST 3: another customer on the same number is a conversation of its own
--- sms eval
{ To => main::num(1), From => '+15557770002', Body => 'What is my name?' }
--- error_code: 200
--- response_body eval
main::twiml('You haven&apos;t told me your name yet.')



=== TEST 4: no signature, a wrong one, one over another URL or with another token: 403, nothing told
--- init
Test::More::is(main::sessions_of(1, '+15557770001'), '4 true',
               "$0 - TEST 4: customer 1's session has both turns");
--- sms eval
[{ To => main::num(1), From => '+15557770003', Body => 'x', -sig => '' },
 { To => main::num(1), From => '+15557770003', Body => 'x',
   -sig => 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=' },
 { To => main::num(1), From => '+15557770003', Body => 'x',
   -url => 'http://localhost/sms/other' },
 { To => main::num(1), From => '+15557770003', Body => 'x', -token => 'tok-2' }]
--- error_code eval
[403, 403, 403, 403]
--- response_body_unlike eval
[qr/signature|token|tok-|\+1555/i, qr/signature|token|tok-|\+1555/i,
 qr/signature|token|tok-|\+1555/i, qr/signature|token|tok-|\+1555/i]



=== TEST 5: ... and none of them opened a session
--- init
Test::More::is(main::sessions_of(1, '+15557770003'), '',
               "$0 - TEST 5: no session for the unsigned texts");
--- sms eval
{ To => main::num(1), From => '+15557770003', Body => 'x',
  -sig => 'not base64 at all' }
--- error_code: 403



=== TEST 6: a signature over the parameters as sent, not as sorted on the wire, nor as encoded
--- more_headers eval
"Content-Type: application/x-www-form-urlencoded\nX-Twilio-Signature: "
. main::twilio_sig('tok-1', 'http://localhost/sms/twilio',
                   To => main::num(1), From => '+15557770003', Body => 'a b',
                   MessageSid => 'SM310raw')
--- request eval
"POST /sms/twilio\nBody=a%20b&To=" . main::enc(main::num(1))
. "&MessageSid=SM310raw&From=%2B15557770003"
--- error_code: 200
--- response_body_like: ^<\?xml version="1.0" encoding="UTF-8"\?><Response><Message>You said: &quot;a b&quot; \(turn 1\)</Message></Response>$



=== TEST 7: an unknown number, and one with SMS disabled: 404
--- sms eval
[{ To => '+15553109999', From => '+15557770001', Body => 'x' },
 { To => main::num(5), From => '+15557770001', Body => 'x' }]
--- error_code eval
[404, 404]



=== TEST 8: callhq_sms_public_url: the URL signed is the one Twilio called
--- sms eval
[{ To => main::num(2), From => '+15557770004', Body => 'public',
   -path => '/sms/public', -url => 'https://sms.example.com/hook?x=1' },
 { To => main::num(2), From => '+15557770004', Body => 'public',
   -path => '/sms/public' }]
--- error_code eval
[200, 403]
--- response_body eval
[main::twiml('public'), qr/./]



=== TEST 9: XML escaping: < & > quotes, non-ASCII, an emoji, and '+' in the text
--- sms eval
{ To => main::num(2), From => '+15557770004',
  Body => qq{5 < 6 & "x" 'y' > 1+1 caf\xc3\xa9 \xf0\x9f\x98\x80} }
--- error_code: 200
--- response_body eval
main::twiml(qq{5 &lt; 6 &amp; &quot;x&quot; &apos;y&apos; &gt; 1+1 caf\xc3\xa9 \xf0\x9f\x98\x80})



=== TEST 10: a reply over 1600 characters: two messages, cut at the last blank before the limit
--- sms eval
{ To => main::num(2), From => '+15557770005', Body => $main::LONG }
--- error_code: 200
--- response_body eval
main::twiml(CORE::join(' ', map { sprintf 'w%04d', $_ } 1 .. 266),
            CORE::join(' ', map { sprintf 'w%04d', $_ } 267 .. 400))



=== TEST 11: a word longer than a message is cut at 1600 characters, not bytes
--- sms eval
[{ To => main::num(2), From => '+15557770006', Body => 'x' x 2000 },
 { To => main::num(2), From => '+15557770007', Body => "\xc3\xa9" x 1700 }]
--- error_code eval
[200, 200]
--- response_body eval
[main::twiml('x' x 1600, 'x' x 400),
 main::twiml("\xc3\xa9" x 1600, "\xc3\xa9" x 100)]



=== TEST 12: a text with a MessageSid ...
--- sms eval
{ To => main::num(1), From => '+15557770002', Body => 'my name is Ann',
  MessageSid => 'SM310again' }
--- error_code: 200
--- response_body eval
main::twiml('Nice to meet you, Ann! I&apos;ll remember that. (turn 2)')



=== TEST 13: ... sent again: the reply recorded, no second chat
--- sms eval
{ To => main::num(1), From => '+15557770002', Body => 'my name is Ann',
  MessageSid => 'SM310again' }
--- error_code: 200
--- response_body eval
main::twiml('Nice to meet you, Ann! I&apos;ll remember that. (turn 2)')
--- error_log
sent again, answering with the reply of chat



=== TEST 14: ... one chat for it, and the session has its turn once
--- init
Test::More::is(main::chats_of_sid('SM310again'), '1', "$0 - TEST 14: one chat");
Test::More::is(main::sessions_of(1, '+15557770002'), '4 true',
               "$0 - TEST 14: two turns in the session, not three");
--- request
GET /phone-number/31000000-0000-4000-8000-000000000101
--- error_code: 200



=== TEST 15: the same MessageSid while its first webhook still runs: the second waits and answers the same
--- init
main::sms_in_background("$main::TMP/sms310-first", To => main::num(3),
                        From => '+15557770008', Body => 'slow reply',
                        MessageSid => 'SM310concurrent');
for (1 .. 200) {
    last if CallHQ::Test::psql(q{select count(*) from callhq.sessions
        where phone_number_id = '31000000-0000-4000-8000-000000000103'
          and busy_chat is not null}) > 0;
    Time::HiRes::sleep(0.025);
}
--- sms eval
{ To => main::num(3), From => '+15557770008', Body => 'slow reply',
  MessageSid => 'SM310concurrent' }
--- timeout: 15
--- error_code: 200
--- response_body eval
main::twiml('slow reply')
--- error_log
sent again, answering with the reply of chat



=== TEST 16: ... the first answered the same, and there was one chat
--- init
my $first = main::background_done("$main::TMP/sms310-first");
Test::More::like($first, qr{\AHTTP/1\.1 200 .*\r\n\r\n\Q${\ main::twiml('slow reply') }\E\z}s,
                 "$0 - TEST 16: the first webhook's answer");
Test::More::is(main::chats_of_sid('SM310concurrent'), '1', "$0 - TEST 16: one chat");
Test::More::is(main::sessions_of(3, '+15557770008'), '2 true',
               "$0 - TEST 16: one turn in the session");
--- request
GET /phone-number/31000000-0000-4000-8000-000000000103
--- error_code: 200



=== TEST 17: the model fails: a short apology, nothing recorded
--- sms eval
{ To => main::num(4), From => '+15557770009', Body => 'hello?' }
--- error_code: 200
--- response_body eval
main::twiml('Sorry, something went wrong on our side. Please try again in a moment.')
--- error_log
model failed for SMS chat
--- no_error_log
[crit]
[alert]



=== TEST 18: callhq_sms_error_message, escaped
--- sms eval
{ To => main::num(4), From => '+15557770009', Body => 'hello?',
  -path => '/sms/public', -url => 'https://sms.example.com/hook?x=1' }
--- error_code: 200
--- response_body eval
main::twiml('Oops &lt;sorry&gt; &amp; try later')
--- error_log
model failed for SMS chat
--- no_error_log
[crit]
[alert]



=== TEST 19: a number without assistant: its fallbackMessage, or the default one
--- sms eval
[{ To => main::num(6), From => '+15557770001', Body => 'anyone?' },
 { To => main::num(7), From => '+15557770001', Body => 'anyone?' }]
--- error_code eval
[200, 200]
--- response_body eval
[main::twiml('We are closed &amp; &lt;away&gt;'),
 main::twiml('Sorry, nobody can answer messages to this number right now.')]



=== TEST 20: the customer's session expired from inactivity: the next text opens a new one
--- init
CallHQ::Test::psql(q{update callhq.sessions set expires_at = now() - interval '1 second'
                      where phone_number_id = '31000000-0000-4000-8000-000000000101'
                        and customer->>'number' = '+15557770001'});
--- sms eval
{ To => main::num(1), From => '+15557770001', Body => 'What is my name?' }
--- error_code: 200
--- response_body eval
main::twiml('You haven&apos;t told me your name yet.')



=== TEST 21: org B's number, with org B's token; org A's token on it is 403
--- sms eval
[{ To => main::num(9), From => '+15557770001', Body => 'I am called Bea' },
 { To => main::num(9), From => '+15557770001', Body => 'x', -token => 'tok-1' }]
--- error_code eval
[200, 403]
--- response_body eval
[main::twiml('Nice to meet you, Bea! I&apos;ll remember that. (turn 1)'), qr/./]



=== TEST 22: GET is 405; a form without MessageSid is 400
--- request eval
["GET /sms/twilio",
 "POST /sms/twilio\nTo=%2B15553100001&From=%2B15557770001&Body=x"]
--- more_headers eval
["", "Content-Type: application/x-www-form-urlencoded\nX-Twilio-Signature: x"]
--- error_code eval
[405, 400]



=== TEST 22: sessions show phoneNumberId and customer.number; GET /session?phoneNumberId= filters
--- request
GET /session?phoneNumberId=31000000-0000-4000-8000-000000000101&number=%2B15557770002
--- error_code: 200
--- response_body_like eval
qr/\A\{"results": \[\{"id": "[^"]+", .*"customer": \{"number": "\+15557770002"\}, .*"phoneNumberId": "31000000-0000-4000-8000-000000000101", .*\}\], "metadata": \{.*"totalItems": 1,/s



=== TEST 23: phoneNumberIdAny: this org's sessions of those numbers only (org B's number has one, unseen)
--- request
GET /session?phoneNumberIdAny=31000000-0000-4000-8000-000000000101,31000000-0000-4000-8000-000000000109,31000000-0000-4000-8000-000000000102&limit=1000
--- error_code: 200
--- response_body_like eval
qr/\A(?!.*000000000109).*"totalItems": 8,/s



=== TEST 24: phoneNumberId that is not a UUID: 400 naming it
--- request
GET /session?phoneNumberId=abc
--- error_code: 400
--- response_body eval
::err(400, 'phoneNumberId must be a UUID')



=== TEST 25: a Host with a port: the URL signed with the port, or without it ($host), as Twilio's validators allow
--- sms eval
[{ To => main::num(2), From => '+15557770004', Body => 'port',
   -host => 'localhost:8080', -url => 'http://localhost:8080/sms/twilio' },
 { To => main::num(2), From => '+15557770004', Body => 'no port',
   -host => 'localhost:8080', -url => 'http://localhost/sms/twilio' },
 { To => main::num(2), From => '+15557770004', Body => 'other port',
   -host => 'localhost:8080', -url => 'http://localhost:9090/sms/twilio' },
 { To => main::num(2), From => '+15557770004', Body => 'public',
   -path => '/sms/public', -host => 'localhost:8080',
   -url => 'http://localhost:8080/sms/public' }]
--- error_code eval
[200, 200, 403, 403]
--- response_body eval
[main::twiml('port'), main::twiml('no port'), qr/./, qr/./]
