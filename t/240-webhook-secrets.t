# server.secret is shown only as a hint ("whsec_…" and its last four
# characters, none of a short one) in every answer: POST, GET, PATCH and
# lists of /assistant, and the inline assistants of sessions and chats;
# the database keeps the secret and signatures use it.  A PATCH that sends
# back the server a GET showed keeps the secret.  Logged webhook URLs
# leave out user information and the query string.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect webhook);

$ENV{TEST_NGINX_WH_PORT} = ::start_receiver(
    '--secret', $::WH_SECRET, '--pg', $ENV{TEST_NGINX_PG_CONNINFO});

our $R = "http://127.0.0.1:$ENV{TEST_NGINX_WH_PORT}";

::wh_defaults();

add_test_cleanup_handler(sub { ::settle_outbox('%/t240/%') });

sub id { sprintf '24000000-0000-4000-8000-0000000000%02d', shift }

# $WH_SECRET is whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
our $HINT = "whsec_\x{2026}LaSw";
utf8::encode(our $HINT_BYTES = $HINT);

psql(qq{
    delete from callhq.webhook_outbox where url like '%/t240/%';
    delete from callhq.sessions where id::text like '24000000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '24000000-0000-4000-8000-%';

    insert into callhq.assistants (id, org_id, name, model, server)
    select v.id::uuid, k.org_id, v.name, '{"provider": "openai", "model": "echo"}',
           v.server::jsonb
      from callhq.api_keys k,
           (values ('@{[ id(1) ]}', 'w240-keep',
                    '{"url": "$R/t240/keep", "secret": "$::WH_SECRET"}'),
                   ('@{[ id(2) ]}', 'w240-replace',
                    '{"url": "$R/t240/replace", "secret": "$::WH_SECRET"}'),
                   ('@{[ id(3) ]}', 'w240-creds',
                    '{"url": "http://someone:pa55word\@127.0.0.1:$ENV{TEST_NGINX_WH_PORT}/t240/creds?token=s3cr3t-t0ken"}'))
           v(id, name, server)
     where k.key_hash = sha256('cq_test_a');
});

run_tests();

__DATA__

=== TEST 1: POST /assistant answers the secret as a hint: "whsec_…" and its last four
--- request eval
"POST /assistant\n{\"name\": \"w240-new\", \"server\": {\"url\": \"https://hooks.example.com/h\", \"secret\": \"$::WH_SECRET\"}}"
--- error_code: 201
--- response_body eval
qr/\A(?!.*MfKQ9r8).*"server": \{"url": "https:\/\/hooks\.example\.com\/h", "secret": "\Q$main::HINT_BYTES\E"\}/s



=== TEST 2: ... and the database keeps the whole secret
--- request eval
::pgwait_req(q{select server->>'secret' from callhq.assistants
                where name = 'w240-new' order by created_at desc limit 1},
             $::WH_SECRET)
--- response_body eval
"$::WH_SECRET\n"



=== TEST 3: short secrets show no character of theirs; one without "whsec_" shows its last four
--- request eval
["POST /assistant\n{\"server\": {\"url\": \"https://h.example/\", \"secret\": \"whsec_c2VjcmV0\"}}",
 "POST /assistant\n{\"server\": {\"url\": \"https://h.example/\", \"secret\": \"a-raw-secret-of-24-chars\"}}",
 "POST /assistant\n{\"server\": {\"url\": \"https://h.example/\", \"secret\": \"short\"}}"]
--- error_code eval
[201, 201, 201]
--- response_body eval
[qr/"secret": "whsec_\x{e2}\x{80}\x{a6}"\}/, qr/"secret": "\x{e2}\x{80}\x{a6}hars"\}/,
 qr/"secret": "\x{e2}\x{80}\x{a6}"\}/]



=== TEST 4: GET /assistant/{id} and GET /assistant show the hint
--- request eval
["GET /assistant/24000000-0000-4000-8000-000000000001", "GET /assistant?limit=1000"]
--- response_body eval
[qr/\A(?!.*MfKQ9r8).*"secret": "\Q$main::HINT_BYTES\E"/s,
 qr/\A(?!.*MfKQ9r8).*"w240-keep"/s]



=== TEST 5: PATCH with the server as GET showed it keeps the secret: the next event is signed with it
--- request eval
["GET /_receiver/_control?reset=1",
 "PATCH /assistant/24000000-0000-4000-8000-000000000001\n{\"server\": {\"url\": \"$main::R/t240/keep\", \"secret\": \"$main::HINT_BYTES\"}}",
 "POST /session\n{\"assistantId\": \"24000000-0000-4000-8000-000000000001\", \"name\": \"w240-keep\"}",
 ::wait_req(path => '/t240/keep', until => 1, fields => 'session.name')]
--- error_code eval
[200, 200, 201, 200]
--- response_body eval
["ok\n", qr/"secret": "\Q$main::HINT_BYTES\E"/, qr/"w240-keep"/,
 "session.created 200 A valid session.name=\"w240-keep\"\n"]



=== TEST 6: a PATCH with another secret replaces it
--- request eval
["PATCH /assistant/24000000-0000-4000-8000-000000000002\n{\"server\": {\"url\": \"$main::R/t240/replace\", \"secret\": \"whsec_bmV3LXNlY3JldC1vZi1hbGw=\"}}",
 ::pgwait_req(q{select server->>'secret' from callhq.assistants
                 where id = '24000000-0000-4000-8000-000000000002'},
              'whsec_bmV3LXNlY3JldC1vZi1hbGw=')]
--- response_body eval
[qr/"secret": "whsec_\x{e2}\x{80}\x{a6}bGw="/, "whsec_bmV3LXNlY3JldC1vZi1hbGw=\n"]



=== TEST 7: an inline assistant of a session shows the hint, and its events are signed with the secret
--- request eval
["GET /_receiver/_control?reset=1",
 "POST /session\n{\"name\": \"w240-inline\", \"assistant\": {\"model\": {\"provider\": \"openai\", \"model\": \"echo\"}, \"server\": {\"url\": \"$main::R/t240/inline\", \"secret\": \"$::WH_SECRET\"}}}",
 ::wait_req(path => '/t240/inline', until => 1, fields => 'session.name')]
--- error_code eval
[200, 201, 200]
--- response_body eval
["ok\n", qr/\A(?!.*MfKQ9r8).*"secret": "\Q$main::HINT_BYTES\E"/s,
 "session.created 200 A valid session.name=\"w240-inline\"\n"]



=== TEST 8: ... and the session list too
--- request
GET /session?name=w240-inline
--- response_body eval
qr/\A(?!.*MfKQ9r8).*"secret": "\Q$main::HINT_BYTES\E"/s



=== TEST 9: a logged webhook URL has neither its user information nor its query string
--- init
::insert_session('24000000-0000-4000-8000-000000000021',
                 '24000000-0000-4000-8000-000000000003', 'w240-creds');
--- request eval
::pgwait_req(q{select last_error from callhq.webhook_outbox
                where url like '%/t240/creds%' and attempts > 0},
             'the URL must not contain user information')
--- response_body
the URL must not contain user information
--- error_log eval
qr/\[warn\] .*callhq: webhook attempt 1 failed: the URL must not contain user information, webhook: msg_[0-9a-f-]{36}, url: "http:\/\/127\.0\.0\.1:\d+\/t240\/creds"$/m
--- no_error_log
s3cr3t
pa55word
[error]
