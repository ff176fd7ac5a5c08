# Turn order, the context window and the variables.
#
# Turn order: the chats of one session never interleave. A chat sent while
# another of the same session runs waits for it (callhq_turn_timeout) and
# then sees its reply; past the bound it answers 409. The turn is a lease
# in PostgreSQL (callhq_turn_lease): one left behind runs out by itself.
# The first chat of such a pair runs in a child process started from the
# block's --- init (::chat_in_background, which returns once that chat
# holds the session's turn); the block's own request is the second chat.
# Their model is "digest+slow-1000": a second late and its reply a digest
# of the messages it got, so the second chat's reply shows whether the
# first one's reply was in its context.
#
# Context window: callhq_context_messages and callhq_context_bytes bound
# the history sent upstream (the system prompt and the input always go);
# the stored history is never trimmed.
#
# Variables: $callhq_* in an access log format.
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of callhq_defaults below.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat);

our $MODEL_LOCATIONS = model_locations();

our $CONFIG = api_location('/') . $MODEL_LOCATIONS;

# The API at / with more directives, and at /patient/ with the defaults
# (a turn timeout of 30 seconds).
sub config_with {
    my $more = shift;
    return api_location('/', $more) . api_location('/patient/')
           . $MODEL_LOCATIONS;
}

callhq_defaults(config => $CONFIG, valgrind_timeout => 10);

# Ids 13000000-0000-4000-8000-0000000000NN (system prompt SYS-130 each):
#   01  c130-slow (digest+slow-1000)      02  c130-echo (echo)
#   03  c130-digest (digest)
#   04  c130-customer (digest+slow-1000)  05  c130-fail (echo+fail-500)
#   06  c130-cut (echo+cut-after-3)
#   11  two chats at once (01)            12  past the bound (01)
#   13  context: 2 messages (02)          14  context: 100 bytes (02)
#   15  variables (02)                    16  variables, failed (05)
#   17  variables, cut (06)               18  context: 99 bytes (02)
#   19  context: 10 bytes (02)            1a  context: 3 messages, 70 bytes (02)
#   1b  a lease left behind (02)          1c  callhq_turn_lease (01)
#   1d  a client leaves while waiting (01)
#   1e  a history of 1.2 MB (03)
#   c1  a chat to continue by previousChatId (02)
# Sessions 13, 14, 18, 19 and 1a hold six messages h1 ... h6.
our %ASST = ('01' => 'digest+slow-1000', '02' => 'echo', '03' => 'digest',
             '04' => 'digest+slow-1000',
             '05' => 'echo+fail-500', '06' => 'echo+cut-after-3');
our %SESS = ('11' => '01', '12' => '01', '13' => '02', '14' => '02', '15' => '02',
             '16' => '05', '17' => '06', '18' => '02', '19' => '02', '1a' => '02',
             '1b' => '02', '1c' => '01', '1d' => '01', '1e' => '03');
our @H = map { [($_ % 2 ? 'user' : 'assistant') => "h$_"] } 1 .. 6;

sub id { sprintf '13000000-0000-4000-8000-0000000000%s', shift }

psql(q{
    delete from callhq.sessions
     where id::text like '13000000-0000-4000-8000-%' or customer->>'number' like '+1555130%';
    delete from callhq.chats
     where id::text like '13000000-0000-4000-8000-%'
        or assistant_id::text like '13000000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '13000000-0000-4000-8000-%';
} . join('', map { qq{
    insert into callhq.assistants (id, org_id, name, model)
    select '@{[ id($_) ]}', k.org_id, 'c130-$_',
           '{"provider": "openai", "model": "$ASST{$_}",
             "messages": [{"role": "system", "content": "SYS-130"}]}'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
} } sort keys %ASST) . join('', map { qq{
    insert into callhq.sessions (id, org_id, assistant_id, name, expiration_seconds,
                                 expires_at, created_at, updated_at)
    select '@{[ id($_) ]}', k.org_id, '@{[ id($SESS{$_}) ]}', 'c130-$_', 86400,
           '2099-01-01T00:00:00Z', '2013-02-01T00:00:00Z', '2013-02-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
} } sort keys %SESS) . join('', map { qq{
    select callhq.messages_insert('@{[ id($_) ]}',
        '[@{[ join ', ', map { ::raw(@$_) } @H ]}]', 1);
    update callhq.sessions set next_seq = 7 where id = '@{[ id($_) ]}';
} } qw(13 14 18 19 1a)) . qq{
    select callhq.messages_insert('@{[ id('1e') ]}',
        jsonb_build_array(jsonb_build_object('role', 'user', 'content', repeat('a', 600000)),
                          jsonb_build_object('role', 'assistant', 'content', repeat('b', 600000))),
        1);
    update callhq.sessions set next_seq = 3 where id = '@{[ id('1e') ]}';
} . qq{
    insert into callhq.chats (id, org_id, assistant_id, messages, output, prompt_count)
    select '@{[ id('c1') ]}', k.org_id, '@{[ id('02') ]}',
           '[{"role": "system", "content": "SYS-130"}, {"role": "user", "content": "p1"},
             {"role": "assistant", "content": "p2"}, {"role": "user", "content": "p3"}]',
           '[{"role": "assistant", "content": "p4"}]', 1
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
});

our ($SLOW, $ECHO, $DIGEST, $CUSTOMER, $FAIL, $CUT) = map { id($_) } qw(01 02 03 04 05 06);
our ($ORDER, $BOUND, $M2, $B100, $VARS, $VFAIL, $VCUT, $B99, $B10, $M3B70, $STALE,
     $LEASE, $GHOST, $BIG) = map { id($_) } qw(11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e);
our $PREV = id('c1');

our @SYS = ([system => 'SYS-130']);
our $TMP = $ENV{CALLHQ_TEST_TMP} // '/tmp';

sub post {
    my ($sid, $input, $more, $path) = @_;
    return 'POST ' . ($path // '/chat') . "\n{\"sessionId\": \"$sid\", \"input\": \"$input\""
           . ($more ? ", $more" : '') . '}';
}

sub body_of { my $r = post(@_); $r =~ s/^[^\n]*\n//; return $r }

# A chat of a session with assistant $asst and this context, its reply the
# digest (or echo) of the context.
sub slow_chat {
    my ($sid, $asst, $ctx, $reply) = @_;
    return ::whole(::chat(input => $ctx->[-1][1], sessionId => $sid, assistantId => $asst,
                          messages => $ctx, output => [[assistant => $reply]],
                          usage => ::usage($ctx, $reply)));
}

# Two chats on session 11: "first" (in the background), then "second".
our @O1 = (@SYS, [user => 'first']);
our $OD1 = ::digest(@O1);
our @O2 = (@O1, [assistant => $OD1], [user => 'second']);
our $OD2 = ::digest(@O2);

# Session 12: "first" (background), "second" (409), "third" (waits).
our @B3 = (@O1, [assistant => $OD1], [user => 'third']);
our $BD3 = ::digest(@B3);

# Customer +15551300001, two first chats at once.
our @C2 = (@O1, [assistant => $OD1], [user => 'second']);

# The byte bounds: the raw sizes of the last messages of h1 ... h6.
our $BYTES_3 = length(::raw(@{ $H[3] })) + length(::raw(@{ $H[4] })) + length(::raw(@{ $H[5] }));

sub bounded {
    my ($sid, @hist) = @_;
    my @ctx = (@SYS, @hist, [user => 'now']);
    my $e = ::echo(@ctx);
    return (::whole(::chat(input => 'now', sessionId => $sid, assistantId => $ECHO,
                           messages => \@ctx, output => [[assistant => $e]],
                           usage => ::usage(\@ctx, $e))), $e);
}

our $VARS_HTTP = <<'_EOC_';
callhq_postgres "$TEST_NGINX_PG_CONNINFO";
log_format callhq_vars 'VARS $request_method $uri $status chat=$callhq_chat_id '
                       'session=$callhq_session_id org=$callhq_org_id '
                       'model=$callhq_model status=$callhq_chat_status '
                       'upstream=$callhq_upstream_status time=$callhq_upstream_time '
                       'prompt=$callhq_prompt_tokens completion=$callhq_completion_tokens';
_EOC_

our $VARS_CONFIG = config_with('access_log logs/access.log callhq_vars;');

# An access log line of a chat.
sub vars_line {
    my (%v) = @_;
    my $line = "VARS $v{request} $v{code} chat=" . ($v{chat} // '[0-9a-f-]{36}')
        . " session=$v{session} org=" . ($v{org} // $::ORG_A)
        . " model=\Q$v{model}\E status=$v{status} upstream=$v{upstream} time="
        . ($v{time} // '\d+\.\d{3}') . " prompt=$v{prompt} completion=$v{completion}";
    return qr/^$line$/;
}

our @V1 = (@SYS, [user => 'vars please']);
our $VE1 = ::echo(@V1);
our @V2 = (@V1, [assistant => $VE1], [user => 'vars stream']);
our $VE2 = ::echo(@V2);

run_tests();

__DATA__

=== TEST 1: two chats of a session at once: the second waits for the first, then sees its reply
--- init
main::chat_in_background("$main::TMP/c130-order", "id = '$main::ORDER'",
                         main::body_of($main::ORDER, 'first'));
--- request eval
main::post($main::ORDER, 'second')
--- timeout: 10
--- error_code: 201
--- response_body eval
main::slow_chat($main::ORDER, $main::SLOW, \@main::O2, $main::OD2)



=== TEST 2: ... the first answered 201; the history is the two pairs, never interleaved
--- init
::background_answered("$main::TMP/c130-order", 201,
    main::slow_chat($main::ORDER, $main::SLOW, \@main::O1, $main::OD1),
    "$0 - TEST 2: the first chat");
--- request eval
["GET /session/$main::ORDER", "GET /chat?sessionId=$main::ORDER&sortOrder=ASC"]
--- response_body eval
[::session_body({ id => $main::ORDER, orgId => $::ORG_A, name => 'c130-11',
                  status => 'active', assistantId => $main::SLOW,
                  expirationSeconds => \86400, expiresAt => '2099-01-01T00:00:00.000Z',
                  createdAt => '2013-02-01T00:00:00.000Z', updatedAt => $::TS },
                [user => 'first'], [assistant => $main::OD1],
                [user => 'second'], [assistant => $main::OD2]),
 ::chat_list([map { ::chat(input => $_->[-1][1], sessionId => $main::ORDER,
                           assistantId => $main::SLOW, messages => $_,
                           output => [[assistant => ::digest(@$_)]],
                           usage => ::usage($_, ::digest(@$_))) } \@main::O1, \@main::O2],
             sortOrder => 'ASC')]



=== TEST 3: past callhq_turn_timeout: 409; a chat with the default bound waits its turn
--- init
main::chat_in_background("$main::TMP/c130-bound", "id = '$main::BOUND'",
                         main::body_of($main::BOUND, 'first'));
--- config eval
main::config_with('callhq_turn_timeout 200ms;')
--- request eval
[main::post($main::BOUND, 'second'),
 main::post($main::BOUND, 'third', undef, '/patient/chat')]
--- timeout: 10
--- error_code eval
[409, 201]
--- response_headers eval
["Content-Type: application/json", "Content-Type: application/json"]
--- response_body eval
[::cerr(409, "Session $main::BOUND is busy with another chat"),
 main::slow_chat($main::BOUND, $main::SLOW, \@main::B3, $main::BD3)]



=== TEST 4: ... the 409 left nothing: the history is the first and the third pair
--- init
::background_answered("$main::TMP/c130-bound", 201,
    main::slow_chat($main::BOUND, $main::SLOW, \@main::O1, $main::OD1),
    "$0 - TEST 4: the first chat");
--- request eval
"GET /session/$main::BOUND"
--- response_body eval
::session_body({ id => $main::BOUND, orgId => $::ORG_A, name => 'c130-12',
                 status => 'active', assistantId => $main::SLOW,
                 expirationSeconds => \86400, expiresAt => '2099-01-01T00:00:00.000Z',
                 createdAt => '2013-02-01T00:00:00.000Z', updatedAt => $::TS },
               [user => 'first'], [assistant => $main::OD1],
               [user => 'third'], [assistant => $main::BD3])



=== TEST 5: a customer's first two chats at once: one session, the second sees the first
--- init
main::chat_in_background("$main::TMP/c130-customer", "customer->>'number' = '+15551300001'",
    qq{{"assistantId": "$main::CUSTOMER", "customer": {"number": "+15551300001"}, "input": "first"}});
--- request eval
"POST /chat\n" . qq{{"assistantId": "$main::CUSTOMER", "customer": {"number": "+15551300001"}, "input": "second"}}
--- timeout: 10
--- error_code: 201
--- response_body eval
::whole(::chat(input => 'second', sessionId => $::UUID, assistantId => $main::CUSTOMER,
               messages => \@main::C2, output => [[assistant => ::digest(@main::C2)]],
               usage => ::usage(\@main::C2, ::digest(@main::C2))))



=== TEST 6: ... the first answered 201 with the same session; the customer has one session
--- init
::background_answered("$main::TMP/c130-customer", 201,
    ::whole(::chat(input => 'first', sessionId => $::UUID, assistantId => $main::CUSTOMER,
                   messages => \@main::O1, output => [[assistant => $main::OD1]],
                   usage => ::usage(\@main::O1, $main::OD1))),
    "$0 - TEST 6: the first chat");
--- request
GET /session?customerNumberAny=%2B15551300001
--- response_body eval
::all_of(qr/\A\{"results": \[\{"id": "[^"]+", [^\]]*\}\], "metadata": /,
         qr/"totalItems": 1,/, qr/"customer": \{"number": "\+15551300001"\}/)



=== TEST 7: a lease left behind (a crashed nginx) runs out; the chat waiting for it goes on
--- init
CallHQ::Test::psql(qq{update callhq.sessions
                         set busy_chat = gen_random_uuid(), busy_until = now() + interval '1 second'
                       where id = '$main::STALE'});
--- config eval
main::config_with('callhq_turn_timeout 10s;')
--- request eval
main::post($main::STALE, 'after the crash')
--- timeout: 10
--- error_code: 201
--- response_body eval
my @ctx = (@main::SYS, [user => 'after the crash']);
main::slow_chat($main::STALE, $main::ECHO, \@ctx, ::echo(@ctx))



=== TEST 8: ... while it lasts, a chat past its bound answers 409
--- init
CallHQ::Test::psql(qq{update callhq.sessions
                         set busy_chat = gen_random_uuid(), busy_until = now() + interval '1 hour'
                       where id = '$main::STALE'});
--- config eval
main::config_with('callhq_turn_timeout 300ms;')
--- request eval
main::post($main::STALE, 'still busy')
--- error_code: 409
--- response_body eval
::cerr(409, "Session $main::STALE is busy with another chat")



=== TEST 9: callhq_turn_lease sets how long a chat holds its session
--- init
main::chat_in_background("$main::TMP/c130-lease", "id = '$main::LEASE'",
                         main::body_of($main::LEASE, 'first'));
Test::More::is(CallHQ::Test::psql(qq{
    select busy_until > now() + interval '70 seconds'
       and busy_until <= now() + interval '77 seconds'
      from callhq.sessions where id = '$main::LEASE'}), 't',
    "$0 - TEST 9: the lease runs 77 seconds");
--- config eval
main::config_with('callhq_turn_lease 77s;')
--- request eval
main::post($main::LEASE, 'second')
--- timeout: 10
--- error_code: 201
--- response_body eval
main::slow_chat($main::LEASE, $main::SLOW, \@main::O2, $main::OD2)



=== TEST 10: ... and gives it back when the chat is recorded
--- init
::background_answered("$main::TMP/c130-lease", 201,
    main::slow_chat($main::LEASE, $main::SLOW, \@main::O1, $main::OD1),
    "$0 - TEST 10: the first chat");
Test::More::is(CallHQ::Test::psql(qq{
    select coalesce(busy_chat::text, 'free') from callhq.sessions where id = '$main::LEASE'}),
    'free', "$0 - TEST 10: the session is free");
--- request eval
"GET /session/$main::LEASE"
--- response_body eval
::session_body({ id => $main::LEASE, orgId => $::ORG_A, name => 'c130-1c',
                 status => 'active', assistantId => $main::SLOW,
                 expirationSeconds => \86400, expiresAt => '2099-01-01T00:00:00.000Z',
                 createdAt => '2013-02-01T00:00:00.000Z', updatedAt => $::TS },
               [user => 'first'], [assistant => $main::OD1],
               [user => 'second'], [assistant => $main::OD2])



=== TEST 11: a client leaves while its chat waits for the turn
--- init
main::chat_in_background("$main::TMP/c130-ghost", "id = '$main::GHOST'",
                         main::body_of($main::GHOST, 'first'));
--- request eval
main::post($main::GHOST, 'ghost')
--- timeout: 0.3
--- abort
--- ignore_response
--- wait: 2.5



=== TEST 12: ... its chat never ran: the history is the first pair only
--- init
::background_answered("$main::TMP/c130-ghost", 201,
    main::slow_chat($main::GHOST, $main::SLOW, \@main::O1, $main::OD1),
    "$0 - TEST 12: the first chat");
--- request eval
["GET /session/$main::GHOST", "GET /chat?sessionId=$main::GHOST"]
--- response_body eval
[::session_body({ id => $main::GHOST, orgId => $::ORG_A, name => 'c130-1d',
                  status => 'active', assistantId => $main::SLOW,
                  expirationSeconds => \86400, expiresAt => '2099-01-01T00:00:00.000Z',
                  createdAt => '2013-02-01T00:00:00.000Z', updatedAt => $::TS },
                [user => 'first'], [assistant => $main::OD1]),
 ::chat_list([::chat(input => 'first', sessionId => $main::GHOST, assistantId => $main::SLOW,
                     messages => \@main::O1, output => [[assistant => $main::OD1]],
                     usage => ::usage(\@main::O1, $main::OD1))])]



=== TEST 13: context windows: the newest N messages, the newest that fit in N bytes, both
--- config eval
main::config_with('') . <<"_EOC_"
location /m2/ { callhq_api; callhq_model_location /_model; callhq_context_messages 2; }
location /b100/ { callhq_api; callhq_model_location /_model; callhq_context_bytes $main::BYTES_3; }
location /b99/ { callhq_api; callhq_model_location /_model; callhq_context_bytes @{[ $main::BYTES_3 - 1 ]}; }
location /b10/ { callhq_api; callhq_model_location /_model; callhq_context_bytes 10; }
location /m3b70/ { callhq_api; callhq_model_location /_model; callhq_context_messages 3; callhq_context_bytes 70; }
_EOC_
--- request eval
[main::post($main::M2, 'now', undef, '/m2/chat'),
 main::post($main::B100, 'now', undef, '/b100/chat'),
 main::post($main::B99, 'now', undef, '/b99/chat'),
 main::post($main::B10, 'now', undef, '/b10/chat'),
 main::post($main::M3B70, 'now', undef, '/m3b70/chat'),
 "GET /_mock/requests?n=5"]
--- error_code eval
[201, 201, 201, 201, 201, 200]
--- response_body eval
my @h = @main::H;
[(main::bounded($main::M2, @h[4, 5]))[0],
 (main::bounded($main::B100, @h[3 .. 5]))[0],
 (main::bounded($main::B99, @h[4, 5]))[0],
 (main::bounded($main::B10))[0],
 (main::bounded($main::M3B70, @h[4, 5]))[0],
 ::mock_requests(map { ::upstream(model => 'echo', messages => [@main::SYS, @$_, [user => 'now']]) }
                 [@h[4, 5]], [@h[3 .. 5]], [@h[4, 5]], [], [@h[4, 5]])]



=== TEST 14: ... the stored history is whole: h1 ... h6, then the new turn
--- request eval
"GET /session/$main::M2"
--- response_body eval
::session_body({ id => $main::M2, orgId => $::ORG_A, name => 'c130-13', status => 'active',
                 assistantId => $main::ECHO, expirationSeconds => \86400,
                 expiresAt => '2099-01-01T00:00:00.000Z',
                 createdAt => '2013-02-01T00:00:00.000Z', updatedAt => $::TS },
               @main::H, [user => 'now'], [assistant => (main::bounded($main::M2, @main::H[4, 5]))[1]])



=== TEST 15: the context window bounds what a previousChatId hands on
--- config eval
main::config_with('callhq_context_messages 2;')
--- request eval
"POST /chat\n{\"previousChatId\": \"$main::PREV\", \"input\": \"next\", \"name\": \"c130-next\"}"
--- error_code: 201
--- response_body eval
my @ctx = (@main::SYS, [user => 'p3'], [assistant => 'p4'], [user => 'next']);
my $e = ::echo(@ctx);
::whole(::chat(input => 'next', name => 'c130-next', assistantId => $main::ECHO,
               previousChatId => $main::PREV, messages => \@ctx,
               output => [[assistant => $e]], usage => ::usage(\@ctx, $e)))



=== TEST 16: a context of 1.2 MB goes upstream, whatever client_max_body_size the model location has
--- config eval
$main::CONFIG =~ s/proxy_buffering off;/proxy_buffering off; client_max_body_size 1k;/r
--- request eval
main::post($main::BIG, 'big history')
--- error_code: 201
--- response_body eval
my @ctx = (@main::SYS, [user => 'a' x 600000], [assistant => 'b' x 600000],
           [user => 'big history']);
main::slow_chat($main::BIG, $main::DIGEST, \@ctx, ::digest(@ctx))



=== TEST 17: variables of a chat: ids, model, status, upstream status and time, tokens
--- http_config eval
$main::VARS_HTTP
--- config eval
$main::VARS_CONFIG
--- request eval
main::post($main::VARS, 'vars please')
--- error_code: 201
--- access_log eval
[main::vars_line(request => 'POST /chat', code => 201, session => $main::VARS, model => 'echo',
                 status => 'completed', upstream => 200,
                 prompt => ${ ::usage(\@main::V1, $main::VE1)->{promptTokens} },
                 completion => ${ ::usage(\@main::V1, $main::VE1)->{completionTokens} })]



=== TEST 18: variables of a streamed chat
--- http_config eval
$main::VARS_HTTP
--- config eval
$main::VARS_CONFIG
--- request eval
main::post($main::VARS, 'vars stream', '"stream": true')
--- access_log eval
[main::vars_line(request => 'POST /chat', code => 200, session => $main::VARS, model => 'echo',
                 status => 'completed', upstream => 200,
                 prompt => ${ ::usage(\@main::V2, $main::VE2)->{promptTokens} },
                 completion => ${ ::usage(\@main::V2, $main::VE2)->{completionTokens} })]



=== TEST 19: variables of a chat whose model failed
--- http_config eval
$main::VARS_HTTP
--- config eval
$main::VARS_CONFIG
--- request eval
main::post($main::VFAIL, 'fails')
--- error_code: 502
--- access_log eval
[main::vars_line(request => 'POST /chat', code => 502, session => $main::VFAIL,
                 model => 'echo+fail-500', status => '-', upstream => 500,
                 prompt => 0, completion => 0)]
--- no_error_log
[crit]
[alert]



=== TEST 20: variables of a stream the model cut
--- http_config eval
$main::VARS_HTTP
--- config eval
$main::VARS_CONFIG
--- request eval
main::post($main::VCUT, 'cut', '"stream": true')
--- access_log eval
[main::vars_line(request => 'POST /chat', code => 200, session => $main::VCUT,
                 model => 'echo+cut-after-3', status => 'incomplete', upstream => 200,
                 prompt => 0, completion => 0)]
--- no_error_log
[crit]
[alert]



=== TEST 21: variables of a chat without a session
--- http_config eval
$main::VARS_HTTP
--- config eval
$main::VARS_CONFIG
--- request eval
"POST /chat\n{\"assistantId\": \"$main::ECHO\", \"input\": \"alone\", \"name\": \"c130-alone\"}"
--- error_code: 201
--- access_log eval
my @ctx = (@main::SYS, [user => 'alone']);
my $u = ::usage(\@ctx, ::echo(@ctx));
[main::vars_line(request => 'POST /chat', code => 201, session => '-', model => 'echo',
                 status => 'completed', upstream => 200,
                 prompt => ${ $u->{promptTokens} }, completion => ${ $u->{completionTokens} })]



=== TEST 22: variables of a request that is not a chat: not found
--- http_config eval
$main::VARS_HTTP
--- config eval
$main::VARS_CONFIG
--- request eval
"GET /session/$main::VARS"
--- access_log eval
[qr{^VARS GET /session/13000000-0000-4000-8000-000000000015 200 chat=- session=- org=- model=- status=- upstream=- time=- prompt=- completion=-$}]
