# POST /chat, the ways to give it a context: a session (its history in
# front of the input, the turn appended to it), previousChatId (the
# previous chat's context and reply), neither (a fresh chat, or a customer's
# automatic session); and the checks on the body.
#
# The assistants use the mock's "echo" model: its reply is the compact JSON
# of the messages it received, so each answer shows exactly what went
# upstream (echo replies nest and triple in size: three turns at most).
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of callhq_defaults below (Org A's
# key, a JSON body, the model location on the mock, nothing logged at
# [error] or worse).

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat);

our $CONFIG = api_location('/') . model_locations();

callhq_defaults(config => $CONFIG, valgrind_timeout => 10);

# Ids 10000000-0000-4000-8000-0000000000NN; chats made here without a
# session are named "c100-...", customer numbers start with +1555100.
#   01  assistant c100-echo (echo, temperature 0.2, maxTokens 64, SYS-100)
#   02  Org B's assistant         03  c100-fresh (echo, SYS-FRESH)
#   04  c100-customer (echo, SYS-CUSTOMER)
#   05  c100-nomodel (no model.model)
#   11  session for three turns   12  session with a seeded history
#   13  Org B's session           14  expired session (2003)
#   15  completed session         16  session with an inline assistant
#   17  session without assistant
#   b1  Org B's chat
#   c1, c2  chats of the previousChatId chain, made by POST /chat and
#           given these ids by the --- init of the block after
psql(q{
    delete from callhq.chats
     where id::text like '10000000-0000-4000-8000-%' or name like 'c100-%'
        or assistant_id::text like '10000000-0000-4000-8000-%';
    delete from callhq.sessions
     where id::text like '10000000-0000-4000-8000-%'
        or assistant_id::text like '10000000-0000-4000-8000-%'
        or customer->>'number' like '+1555100%'
        or customer->>'externalId' like 'c100-%';
    delete from callhq.assistants where id::text like '10000000-0000-4000-8000-%';

    insert into callhq.assistants (id, org_id, name, model, created_at, updated_at)
    select v.id::uuid, k.org_id, v.name, v.model::jsonb,
           '2010-01-01T00:00:00Z', '2010-01-01T00:00:00Z'
      from callhq.api_keys k,
           (values
            ('10000000-0000-4000-8000-000000000001', 'cq_test_a', 'c100-echo',
             '{"provider": "openai", "model": "echo", "temperature": 0.2, "maxTokens": 64,
               "messages": [{"role": "system", "content": "SYS-100"}]}'),
            ('10000000-0000-4000-8000-000000000002', 'cq_test_b', 'c100-b',
             '{"provider": "openai", "model": "echo",
               "messages": [{"role": "system", "content": "SYS-100-B"}]}'),
            ('10000000-0000-4000-8000-000000000003', 'cq_test_a', 'c100-fresh',
             '{"provider": "openai", "model": "echo",
               "messages": [{"role": "system", "content": "SYS-FRESH"}]}'),
            ('10000000-0000-4000-8000-000000000004', 'cq_test_a', 'c100-customer',
             '{"provider": "openai", "model": "echo",
               "messages": [{"role": "system", "content": "SYS-CUSTOMER"}]}'),
            ('10000000-0000-4000-8000-000000000005', 'cq_test_a', 'c100-nomodel',
             '{"provider": "openai"}'))
           v(id, key, name, model)
     where k.key_hash = sha256(v.key::bytea);

    insert into callhq.sessions (id, org_id, assistant_id, assistant, name, status,
                                 expiration_seconds, expires_at, next_seq,
                                 created_at, updated_at)
    select v.id::uuid, k.org_id, v.assistant_id::uuid, v.assistant::jsonb, v.name,
           v.status, 86400, v.expires_at::timestamptz, v.next_seq,
           '2010-02-01T00:00:00Z', '2010-02-01T00:00:00Z'
      from callhq.api_keys k,
           (values
            ('10000000-0000-4000-8000-000000000011', 'cq_test_a',
             '10000000-0000-4000-8000-000000000001', null, 'c100-three', 'active',
             '2099-01-01T00:00:00Z', 1),
            ('10000000-0000-4000-8000-000000000012', 'cq_test_a',
             '10000000-0000-4000-8000-000000000001', null, 'c100-seeded', 'active',
             '2099-01-01T00:00:00Z', 3),
            ('10000000-0000-4000-8000-000000000013', 'cq_test_b',
             '10000000-0000-4000-8000-000000000002', null, 'c100-b', 'active',
             '2099-01-01T00:00:00Z', 1),
            ('10000000-0000-4000-8000-000000000014', 'cq_test_a',
             '10000000-0000-4000-8000-000000000001', null, 'c100-expired', 'active',
             '2003-01-01T00:00:00Z', 1),
            ('10000000-0000-4000-8000-000000000015', 'cq_test_a',
             '10000000-0000-4000-8000-000000000001', null, 'c100-completed', 'completed',
             '2099-01-01T00:00:00Z', 1),
            ('10000000-0000-4000-8000-000000000016', 'cq_test_a', null,
             '{"name": "c100-inline", "model": {"model": "echo",
               "messages": [{"role": "system", "content": "SYS-INLINE"}]}}',
             'c100-inline', 'active', '2099-01-01T00:00:00Z', 1),
            ('10000000-0000-4000-8000-000000000017', 'cq_test_a', null, null,
             'c100-noassistant', 'active', '2099-01-01T00:00:00Z', 1))
           v(id, key, assistant_id, assistant, name, status, expires_at, next_seq)
     where k.key_hash = sha256(v.key::bytea);

    select callhq.messages_insert('10000000-0000-4000-8000-000000000012',
        '[{"role": "user", "content": "seed question"},
          {"role": "assistant", "content": "seed answer"}]', 1);

    insert into callhq.chats (id, org_id, assistant_id, messages, output, prompt_count)
    select '10000000-0000-4000-8000-0000000000b1', k.org_id,
           '10000000-0000-4000-8000-000000000002',
           '[{"role": "system", "content": "SYS-100-B"}, {"role": "user", "content": "b"}]',
           '[{"role": "assistant", "content": "secret of B"}]', 1
      from callhq.api_keys k where k.key_hash = sha256('cq_test_b');
});

sub id { sprintf '10000000-0000-4000-8000-0000000000%s', shift }

our ($ECHO, $B_ASST, $FRESH, $CUSTOMER, $NOMODEL) = map { id($_) } qw(01 02 03 04 05);
our ($THREE, $SEEDED, $B_SESS, $EXPIRED, $COMPLETED, $INLINE, $NOASST)
    = map { id($_) } 11 .. 17;
our ($B_CHAT, $C1, $C2) = map { id($_) } qw(b1 c1 c2);
our $MISSING = id('ff');

our @SYS = ([system => 'SYS-100']);

# The three turns of session 11: each context is the one before, its reply
# and the new input.
our @T1 = (@SYS, [user => 'first question']);
our $E1 = ::echo(@T1);
our @T2 = (@T1, [assistant => $E1], [user => 'second question']);
our $E2 = ::echo(@T2);
our @T3 = (@T2, [assistant => $E2], [user => 'third question']);
our $E3 = ::echo(@T3);

sub turn_chat {
    my ($ctx, $reply, %more) = @_;
    my $input = $ctx->[-1][1];
    return ::chat(input => $input, assistantId => $ECHO, messages => $ctx,
                  output => [[assistant => $reply]],
                  usage => ::usage($ctx, $reply), %more);
}

sub upstream_echo {
    return ::mock_requests(::upstream(model => 'echo', temperature => '0.2',
                                      max_tokens => 64, messages => [@_]));
}

# A session fixture as GET /session/{id} reads it, with its history.
sub session_of {
    my ($id, $name, $msgs, %more) = @_;
    return ::session_body({ id => $id, orgId => $::ORG_A, name => $name,
        status => 'active', assistantId => $ECHO, expirationSeconds => \86400,
        expiresAt => '2099-01-01T00:00:00.000Z',
        createdAt => '2010-02-01T00:00:00.000Z',
        updatedAt => '2010-02-01T00:00:00.000Z', %more }, @$msgs);
}

# The previousChatId chain: one (fresh), two (after one), three (after two).
our @CH1 = (@SYS, [user => 'c100 one']);
our $CE1 = ::echo(@CH1);
our @CH2 = (@CH1, [assistant => $CE1], [user => 'c100 two']);
our $CE2 = ::echo(@CH2);
our @CH3 = (@CH2, [assistant => $CE2], [user => 'c100 three']);
our $CE3 = ::echo(@CH3);

# The customer's automatic session: its id is generated, so the first
# chat's answer keeps it in an environment variable, which the config of
# later blocks uses (location /t/customer-session).
$ENV{TEST_NGINX_C100_CUSTOMER_SESSION} = '10000000-0000-4000-8000-0000000000fe';
our @CU1 = ([system => 'SYS-CUSTOMER'], [user => 'hi by sms']);
our $CUE1 = ::echo(@CU1);
our @CU2 = (@CU1, [assistant => $CUE1], [user => 'again']);
our $CUE2 = ::echo(@CU2);

our $CUSTOMER_CONFIG = $CONFIG . <<'_EOC_';
location = /t/customer-session {
    # no regex (rewrite): nginx 1.22 leaks a PCRE2 context valgrind reports
    try_files /c100-no-such-file /session/$TEST_NGINX_C100_CUSTOMER_SESSION;
}
_EOC_

sub customer_sid { return quotemeta $ENV{TEST_NGINX_C100_CUSTOMER_SESSION} }

# GET /session?customerNumberAny=+15551000001: exactly one row, the
# customer's session, whose expiresAt is its updatedAt (the last chat) plus
# the hour of callhq_session_expiration.
sub customer_list {
    return ::all_of(
        ::whole(quotemeta('{"results": [')
            . ::obj(id => qr/"(??{ main::customer_sid() })"/, orgId => $::ORG_A,
                    status => 'active', customer => { number => '+15551000001' },
                    createdAt => $::TS, expiresAt => $::TS, updatedAt => $::TS,
                    assistantId => $CUSTOMER, expirationSeconds => \3600)
            . quotemeta('], "metadata": ')
            . ::obj(itemsPerPage => \100, totalItems => \1, currentPage => \1,
                    totalPages => \1, hasNextPage => \'false', sortOrder => 'DESC')
            . quotemeta('}')),
        '"expiresAt": "(?<e>[^"]+)", "updatedAt": "(?<u>[^"]+)"'
        . '(?(?{ main::ts_plus($+{u}, 3600) ne $+{e} })(*FAIL))');
}

run_tests();

# Chats without a session left every session's history alone.
is(psql(q{select count(*) from callhq.messages
           where content in ('"c100 fresh start"', '"c100 inline start"', '"c100 one"',
                             '"c100 two"', '"c100 three"', '"c100 switch"')}) + 0, 0,
   "$0 - chats without a session appended nothing to any session");
is(psql(q{select count(*) from callhq.sessions
           where assistant_id = '10000000-0000-4000-8000-000000000003'}) + 0, 0,
   "$0 - ... and made no session");

__DATA__

=== TEST 1: session, turn 1: upstream gets the system prompt and the input; 201 with the Chat
--- request eval
["POST /chat\n{\"sessionId\": \"$main::THREE\", \"input\": \"first question\"}",
 "GET /_mock/requests?n=1"]
--- error_code eval
[201, 200]
--- response_headers eval
["Content-Type: application/json", "Content-Type: application/json"]
--- response_body eval
[::whole(main::turn_chat(\@main::T1, $main::E1, sessionId => $main::THREE)),
 main::upstream_echo(@main::T1)]



=== TEST 2: session, turn 2: the first turn goes in front of the input
--- request eval
["POST /chat\n{\"sessionId\": \"$main::THREE\", \"input\": \"second question\"}",
 "GET /_mock/requests?n=1"]
--- error_code eval
[201, 200]
--- response_body eval
[::whole(main::turn_chat(\@main::T2, $main::E2, sessionId => $main::THREE)),
 main::upstream_echo(@main::T2)]



=== TEST 3: session, turn 3: both turns, in order, then the input
--- request eval
["POST /chat\n{\"sessionId\": \"$main::THREE\", \"input\": \"third question\"}",
 "GET /_mock/requests?n=1"]
--- error_code eval
[201, 200]
--- response_body eval
[::whole(main::turn_chat(\@main::T3, $main::E3, sessionId => $main::THREE)),
 main::upstream_echo(@main::T3)]



=== TEST 4: the session's history is the three user/assistant pairs, in order
--- request eval
"GET /session/$main::THREE"
--- response_body eval
main::session_of($main::THREE, 'c100-three',
    [[user => 'first question'], [assistant => $main::E1],
     [user => 'second question'], [assistant => $main::E2],
     [user => 'third question'], [assistant => $main::E3]],
    updatedAt => $::TS)



=== TEST 5: the API key does not go upstream, the body is JSON with its exact length
--- request
GET /_mock/requests?n=1&full=1
--- response_body eval
::all_of(qr/"method":"POST","path":"\/v1\/chat\/completions","version":"HTTP\/1.1"/,
         qr/\["Content-Type","application\/json"\]/,
         qr/\["Content-Length","@{[ length ::upstream(model => 'echo',
             temperature => '0.2', max_tokens => 64, messages => \@main::T3) ]}"\]/,
         qr/\A(?!.*cq_test_a)(?!.*"Authorization")/s)



=== TEST 6: nor do the client's other credentials (cookies, API key headers of its own)
--- more_headers eval
"$::AUTH_A\nCookie: sid=browser-secret\nX-Api-Key: client-key"
--- request eval
["POST /chat\n{\"assistantId\": \"$main::FRESH\", \"input\": \"headers\", \"name\": \"c100-headers\"}",
 "GET /_mock/requests?n=1&full=1"]
--- error_code eval
[201, 200]
--- response_body eval
[qr/"status": "completed"/, qr/\A(?!.*browser-secret)(?!.*client-key)(?!.*cq_test_a).*"headers"/s]



=== TEST 7: a seeded history goes in front; an input array is appended as it is
--- request eval
["POST /chat\n{\"sessionId\": \"$main::SEEDED\", \"input\": [{\"role\": \"user\", \"content\": \"part one\"}, {\"role\": \"user\", \"content\": \"part two\"}]}",
 "GET /session/$main::SEEDED"]
--- error_code eval
[201, 200]
--- response_body eval
my @ctx = (@main::SYS, [user => 'seed question'], [assistant => 'seed answer'],
           [user => 'part one'], [user => 'part two']);
my $e = ::echo(@ctx);
[::whole(::chat(input => ::msgs([user => 'part one'], [user => 'part two']),
               sessionId => $main::SEEDED, assistantId => $main::ECHO,
               messages => \@ctx, output => [[assistant => $e]],
               usage => ::usage(\@ctx, $e))),
 main::session_of($main::SEEDED, 'c100-seeded',
     [[user => 'seed question'], [assistant => 'seed answer'],
      [user => 'part one'], [user => 'part two'], [assistant => $e]],
     updatedAt => $::TS)]



=== TEST 8: a session with an inline assistant chats with it; the chat keeps it
--- request eval
["POST /chat\n{\"sessionId\": \"$main::INLINE\", \"input\": \"hello inline\"}",
 "GET /_mock/requests?n=1"]
--- error_code eval
[201, 200]
--- response_body eval
my @ctx = ([system => 'SYS-INLINE'], [user => 'hello inline']);
my $e = ::echo(@ctx);
[::whole(::chat(input => 'hello inline', sessionId => $main::INLINE,
               assistant => { name => 'c100-inline', model => { model => 'echo',
                   messages => [{ role => 'system', content => 'SYS-INLINE' }] } },
               messages => \@ctx, output => [[assistant => $e]],
               usage => ::usage(\@ctx, $e))),
 ::mock_requests(::upstream(model => 'echo', messages => \@ctx))]



=== TEST 9: sessionId with previousChatId, assistantId or assistant; neither and no assistant: 400
--- request eval
my $s = $main::THREE;
["POST /chat\n{\"sessionId\": \"$s\", \"previousChatId\": \"$main::B_CHAT\", \"input\": \"x\"}",
 "POST /chat\n{\"sessionId\": \"$s\", \"assistantId\": \"$main::ECHO\", \"input\": \"x\"}",
 "POST /chat\n{\"sessionId\": \"$s\", \"assistant\": {\"model\": {\"model\": \"echo\"}}, \"input\": \"x\"}",
 "POST /chat\n{\"input\": \"x\"}",
 "POST /chat\n{\"input\": \"x\", \"customer\": {\"number\": \"+15551000009\"}}",
 "POST /chat\n{\"assistant\": {\"model\": {\"model\": \"echo\"}}, \"input\": \"x\", \"customer\": {\"number\": \"+15551000009\"}}",
 "POST /chat\n{\"assistantId\": \"$main::ECHO\", \"input\": \"x\", \"customer\": {\"name\": \"Ann\"}}"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400]
--- response_body eval
[::cerr(400, 'sessionId and previousChatId cannot be used together'),
 ::cerr(400, 'assistantId cannot be used with sessionId; a session is tied to its assistant'),
 ::cerr(400, 'assistant cannot be used with sessionId; a session is tied to its assistant'),
 ::cerr(400, 'assistantId or assistant is required'),
 ::cerr(400, 'assistantId or assistant is required'),
 ::cerr(400, 'assistantId is required with customer'),
 ::cerr(400, 'customer.number or customer.externalId is required')]



=== TEST 10: input missing, null, of the wrong type, empty, or with a bad message: 400
--- request eval
my $s = qq{"sessionId": "$main::THREE"};
["POST /chat\n{$s}",
 "POST /chat\n{$s, \"input\": null}",
 "POST /chat\n{$s, \"input\": 42}",
 "POST /chat\n{$s, \"input\": {\"role\": \"user\", \"content\": \"x\"}}",
 "POST /chat\n{$s, \"input\": []}",
 "POST /chat\n{$s, \"input\": [{\"role\": \"robot\", \"content\": \"x\"}]}",
 "POST /chat\n{$s, \"input\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"user\"}]}",
 "POST /chat\n{$s, \"input\": [\"x\"]}"]
--- error_code eval
[(400) x 8]
--- response_body eval
[::cerr(400, 'input is required'),
 ::cerr(400, 'input must not be null'),
 ::cerr(400, 'input must be a string or an array of messages'),
 ::cerr(400, 'input must be a string or an array of messages'),
 ::cerr(400, 'input must not be empty'),
 ::cerr(400, 'input[0].role must be one of system, user, assistant, tool, developer'),
 ::cerr(400, 'input[1].content is required'),
 ::cerr(400, 'input[0] must be an object')]



=== TEST 11: other fields: ids that are not UUIDs, stream, name, unknown members: 400
--- request eval
my $s = qq{"sessionId": "$main::THREE"};
["POST /chat\n{\"sessionId\": \"c100-three\", \"input\": \"x\"}",
 "POST /chat\n{\"previousChatId\": 7, \"input\": \"x\"}",
 "POST /chat\n{\"assistantId\": \"c100-echo\", \"input\": \"x\"}",
 "POST /chat\n{$s, \"input\": \"x\", \"stream\": \"yes\"}",
 "POST /chat\n{$s, \"input\": \"x\", \"name\": \"c100-678901234567890123456789012345678901\"}",
 "POST /chat\n{$s, \"input\": \"x\", \"colour\": \"red\"}",
 "POST /chat\n{\"assistantId\": \"$main::NOMODEL\", \"input\": \"x\"}",
 "POST /chat\n{\"sessionId\": \"$main::NOASST\", \"input\": \"x\"}",
 "POST /chat\n[\"x\"]"]
--- error_code eval
[(400) x 9]
--- response_body eval
[::cerr(400, 'sessionId must be a UUID'),
 ::cerr(400, 'previousChatId must be a UUID'),
 ::cerr(400, 'assistantId must be a UUID'),
 ::cerr(400, 'stream must be a boolean'),
 ::cerr(400, 'name must be at most 40 characters'),
 ::cerr(400, 'property colour should not exist'),
 ::cerr(400, 'assistant model.model is required to chat'),
 ::cerr(400, "Session $main::NOASST has no assistant to chat with"),
 ::cerr(400, 'body must be a JSON object')]



=== TEST 12: unknown or other org's session, assistant, previous chat: 404 naming it
--- request eval
["POST /chat\n{\"sessionId\": \"$main::MISSING\", \"input\": \"x\"}",
 "POST /chat\n{\"sessionId\": \"$main::B_SESS\", \"input\": \"x\"}",
 "POST /chat\n{\"assistantId\": \"$main::MISSING\", \"input\": \"x\"}",
 "POST /chat\n{\"assistantId\": \"$main::B_ASST\", \"input\": \"x\"}",
 "POST /chat\n{\"previousChatId\": \"$main::MISSING\", \"input\": \"x\"}",
 "POST /chat\n{\"previousChatId\": \"$main::B_CHAT\", \"input\": \"x\"}",
 "GET /_mock/requests?n=1"]
--- error_code eval
[404, 404, 404, 404, 404, 404, 200]
--- response_body eval
[::cerr(404, "Session $main::MISSING not found"),
 ::cerr(404, "Session $main::B_SESS not found"),
 ::cerr(404, "Assistant $main::MISSING not found"),
 ::cerr(404, "Assistant $main::B_ASST not found"),
 ::cerr(404, "Chat $main::MISSING not found"),
 ::cerr(404, "Chat $main::B_CHAT not found"),
 ::mock_requests(::upstream(model => 'echo', messages =>
     [[system => 'SYS-INLINE'], [user => 'hello inline']]))]



=== TEST 13: an expired or a completed session: 410, nothing appended
--- request eval
["POST /chat\n{\"sessionId\": \"$main::EXPIRED\", \"input\": \"too late\"}",
 "POST /chat\n{\"sessionId\": \"$main::COMPLETED\", \"input\": \"too late\"}",
 "GET /session/$main::EXPIRED",
 "GET /session/$main::COMPLETED"]
--- error_code eval
[410, 410, 200, 200]
--- response_body eval
[::cerr(410, "Session $main::EXPIRED is completed; create a new session"),
 ::cerr(410, "Session $main::COMPLETED is completed; create a new session"),
 main::session_of($main::EXPIRED, 'c100-expired', [], status => 'completed',
                  expiresAt => '2003-01-01T00:00:00.000Z'),
 main::session_of($main::COMPLETED, 'c100-completed', [], status => 'completed')]



=== TEST 14: the 400s, 404s and 410s above left session 11 as it was
--- request eval
"GET /session/$main::THREE"
--- response_body eval
main::session_of($main::THREE, 'c100-three',
    [[user => 'first question'], [assistant => $main::E1],
     [user => 'second question'], [assistant => $main::E2],
     [user => 'third question'], [assistant => $main::E3]],
    updatedAt => $::TS)



=== TEST 15: a fresh chat with assistantId: 201 without sessionId, no session made
--- request eval
["POST /chat\n{\"assistantId\": \"$main::FRESH\", \"input\": \"c100 fresh start\", \"name\": \"c100-fresh\", \"metadata\": {\"ticket\": 7}}",
 "GET /session?assistantId=$main::FRESH"]
--- error_code eval
[201, 200]
--- response_body eval
my @ctx = ([system => 'SYS-FRESH'], [user => 'c100 fresh start']);
my $e = ::echo(@ctx);
[::whole(::chat(input => 'c100 fresh start', name => 'c100-fresh', assistantId => $main::FRESH,
               metadata => { ticket => \7 },
               messages => \@ctx, output => [[assistant => $e]],
               usage => ::usage(\@ctx, $e))),
 ::list_body([])]



=== TEST 16: a fresh chat with an inline assistant: 201, the chat keeps the assistant
--- request
POST /chat
{"assistant": {"name": "c100-inline-fresh", "model": {"model": "echo",
   "messages": [{"role": "system", "content": "SYS-INLINE-FRESH"}]}},
 "input": "c100 inline start", "name": "c100-inline"}
--- error_code: 201
--- response_body eval
my @ctx = ([system => 'SYS-INLINE-FRESH'], [user => 'c100 inline start']);
my $e = ::echo(@ctx);
::whole(::chat(input => 'c100 inline start', name => 'c100-inline',
              assistant => { name => 'c100-inline-fresh', model => { model => 'echo',
                  messages => [{ role => 'system', content => 'SYS-INLINE-FRESH' }] } },
              messages => \@ctx, output => [[assistant => $e]],
              usage => ::usage(\@ctx, $e)))



=== TEST 17: assistantId wins over an inline assistant given with it
--- request eval
"POST /chat\n" . qq{{"assistantId": "$main::FRESH", "assistant": {"model": {"model": "echo+fail-500"}}, "input": "c100 fresh start", "name": "c100-both"}}
--- error_code: 201
--- response_body eval
my @ctx = ([system => 'SYS-FRESH'], [user => 'c100 fresh start']);
my $e = ::echo(@ctx);
::whole(::chat(input => 'c100 fresh start', name => 'c100-both', assistantId => $main::FRESH,
              messages => \@ctx, output => [[assistant => $e]],
              usage => ::usage(\@ctx, $e)))



=== TEST 18: previousChatId chain, one: a fresh chat
--- request eval
"POST /chat\n{\"assistantId\": \"$main::ECHO\", \"input\": \"c100 one\", \"name\": \"c100-chain-1\"}"
--- error_code: 201
--- response_body eval
::whole(::chat(input => 'c100 one', name => 'c100-chain-1', assistantId => $main::ECHO,
              messages => \@main::CH1, output => [[assistant => $main::CE1]],
              usage => ::usage(\@main::CH1, $main::CE1)))



=== TEST 19: chain, two: one's messages and output, then the input; one's assistant
--- init
CallHQ::Test::psql(qq{update callhq.chats set id = '$main::C1' where name = 'c100-chain-1'});
--- request eval
"POST /chat\n{\"previousChatId\": \"$main::C1\", \"input\": \"c100 two\", \"name\": \"c100-chain-2\"}"
--- error_code: 201
--- response_body eval
::whole(::chat(input => 'c100 two', name => 'c100-chain-2', assistantId => $main::ECHO,
              previousChatId => $main::C1,
              messages => \@main::CH2, output => [[assistant => $main::CE2]],
              usage => ::usage(\@main::CH2, $main::CE2)))



=== TEST 20: chain, three: two's context (one's included) and output, then the input
--- init
CallHQ::Test::psql(qq{update callhq.chats set id = '$main::C2' where name = 'c100-chain-2'});
--- request eval
["POST /chat\n{\"previousChatId\": \"$main::C2\", \"input\": \"c100 three\", \"name\": \"c100-chain-3\"}",
 "GET /_mock/requests?n=1",
 "GET /chat?previousChatId=$main::C1"]
--- error_code eval
[201, 200, 200]
--- response_body eval
[::whole(::chat(input => 'c100 three', name => 'c100-chain-3', assistantId => $main::ECHO,
               previousChatId => $main::C2,
               messages => \@main::CH3, output => [[assistant => $main::CE3]],
               usage => ::usage(\@main::CH3, $main::CE3))),
 main::upstream_echo(@main::CH3),
 ::chat_list([::chat(id => $main::C2, input => 'c100 two', name => 'c100-chain-2',
                     assistantId => $main::ECHO, previousChatId => $main::C1,
                     messages => \@main::CH2, output => [[assistant => $main::CE2]],
                     usage => ::usage(\@main::CH2, $main::CE2))])]



=== TEST 21: previousChatId with another assistant: its system prompt, not the previous one's
--- request eval
"POST /chat\n{\"previousChatId\": \"$main::C1\", \"assistantId\": \"$main::FRESH\", \"input\": \"c100 switch\", \"name\": \"c100-switch\"}"
--- error_code: 201
--- response_body eval
my @ctx = ([system => 'SYS-FRESH'], [user => 'c100 one'], [assistant => $main::CE1],
           [user => 'c100 switch']);
my $e = ::echo(@ctx);
::whole(::chat(input => 'c100 switch', name => 'c100-switch', assistantId => $main::FRESH,
              previousChatId => $main::C1,
              messages => \@ctx, output => [[assistant => $e]],
              usage => ::usage(\@ctx, $e)))



=== TEST 22: customer, first chat: a session is made for the customer; the answer names it
--- config eval
$main::CONFIG =~ s/callhq_api;/callhq_api; callhq_session_expiration 1h;/r
--- request eval
["POST /chat\n{\"assistantId\": \"$main::CUSTOMER\", \"customer\": {\"number\": \"+15551000001\"}, \"input\": \"hi by sms\"}",
 "GET /session?customerNumberAny=%2B15551000001"]
--- error_code eval
[201, 200]
--- response_body eval
[::all_of(::whole(::chat(input => 'hi by sms', assistantId => $main::CUSTOMER,
                         sessionId => $::UUID,
                         messages => \@main::CU1, output => [[assistant => $main::CUE1]],
                         usage => ::usage(\@main::CU1, $main::CUE1))),
          qr/"sessionId": "([^"]+)"(?{ $ENV{TEST_NGINX_C100_CUSTOMER_SESSION} = $^N })/),
 main::customer_list()]



=== TEST 23: customer, second chat: the same session, its history in front; expiry renewed
--- init
# the session was idle a while: it would expire in ten minutes
CallHQ::Test::psql(q{update callhq.sessions set expires_at = now() + interval '10 minutes'
                      where customer->>'number' = '+15551000001'});
--- config eval
$main::CONFIG =~ s/callhq_api;/callhq_api; callhq_session_expiration 1h;/r
--- request eval
["POST /chat\n{\"assistantId\": \"$main::CUSTOMER\", \"customer\": {\"number\": \"+15551000001\"}, \"input\": \"again\"}",
 "GET /session?customerNumberAny=%2B15551000001"]
--- error_code eval
[201, 200]
--- response_body eval
[::whole(::chat(input => 'again', assistantId => $main::CUSTOMER,
               sessionId => qr/"(??{ main::customer_sid() })"/,
               messages => \@main::CU2, output => [[assistant => $main::CUE2]],
               usage => ::usage(\@main::CU2, $main::CUE2))),
 main::customer_list()]



=== TEST 24: customer session: its history is the two turns
--- config eval
$main::CUSTOMER_CONFIG
--- request
GET /t/customer-session
--- response_body eval
::session_re({ id => qr/"(??{ main::customer_sid() })"/, orgId => $::ORG_A,
                 status => 'active', assistantId => $main::CUSTOMER,
                 customer => { number => '+15551000001' },
                 expirationSeconds => \3600, expiresAt => $::TS,
                 createdAt => $::TS, updatedAt => $::TS },
    [user => 'hi by sms'], [assistant => $main::CUE1],
    [user => 'again'], [assistant => $main::CUE2])



=== TEST 25: a customer known by externalId gets a session of its own
--- request eval
["POST /chat\n{\"assistantId\": \"$main::CUSTOMER\", \"customer\": {\"externalId\": \"c100-web-1\"}, \"input\": \"web hello\"}",
 "GET /session?assistantId=$main::CUSTOMER&sortOrder=ASC"]
--- error_code eval
[201, 200]
--- response_body eval
my @ctx = ([system => 'SYS-CUSTOMER'], [user => 'web hello']);
my $e = ::echo(@ctx);
[::all_of(::whole(::chat(input => 'web hello', assistantId => $main::CUSTOMER,
                         sessionId => $::UUID, messages => \@ctx,
                         output => [[assistant => $e]], usage => ::usage(\@ctx, $e))),
          qr/"sessionId": "(?!(??{ main::customer_sid() }))/),
 ::all_of(qr/\A\{"results": \[\{"id": "(??{ main::customer_sid() })"[^{}]*"customer": \{"number": "\+15551000001"\}[^{}]*\}, \{"id": "[^"]+"[^{}]*"customer": \{"externalId": "c100-web-1"\}[^{}]*"expirationSeconds": 86400\}\], /,
          qr/"totalItems": 2,/)]



=== TEST 26: the customer's session expired: the next chat starts a new one
--- init
CallHQ::Test::psql(q{update callhq.sessions set expires_at = now() - interval '1 second'
                      where customer->>'number' = '+15551000001'});
--- request eval
["POST /chat\n{\"assistantId\": \"$main::CUSTOMER\", \"customer\": {\"number\": \"+15551000001\"}, \"input\": \"back again\"}",
 "GET /session?customerNumberAny=%2B15551000001&sortOrder=ASC"]
--- error_code eval
[201, 200]
--- response_body eval
my @ctx = ([system => 'SYS-CUSTOMER'], [user => 'back again']);
my $e = ::echo(@ctx);
[::all_of(::whole(::chat(input => 'back again', assistantId => $main::CUSTOMER,
                         sessionId => $::UUID, messages => \@ctx,
                         output => [[assistant => $e]], usage => ::usage(\@ctx, $e))),
          qr/"sessionId": "(?!(??{ main::customer_sid() }))/),
 ::all_of(qr/\A\{"results": \[\{"id": "(??{ main::customer_sid() })", "orgId": "[^"]+", "status": "completed", [^{}]*\{[^{}]*\}[^{}]*\}, \{"id": "(?!(??{ main::customer_sid() }))[^"]+", "orgId": "[^"]+", "status": "active", /,
          qr/"totalItems": 2,/)]
