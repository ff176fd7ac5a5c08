# A chat of a session keeps its context by reference (sql/007): its row
# holds the assistant's prompts and the chat's input (chats.messages, with
# prompt_count) and the seqs of the session's history it was sent
# (history_from .. history_to); callhq.chat_context() puts them together
# again. Every answer with a chat (POST /chat, GET /chat/{id}, GET /chat,
# DELETE /chat/{id}) shows that context last, as "messages", compact.
#
# A session's history must stay what its chats point to: PATCH /session
# with "messages" first copies each chat's context into the chat, and
# answers 409 while a chat of the session runs (busy_chat set, busy_until
# in the future).
#
# The assistants use the mock's "echo" model: its reply is the compact JSON
# of the messages it got, so every reply shows what went upstream, and
# GET /_mock/requests shows the upstream bodies themselves.
#
# A chat that runs while a block's requests come goes from a child process
# started in --- init (::chat_in_background, t/fixtures/chat.pl), and the
# block keeps nginx until it has ended (a request that waits for it, or
# ::background_answered in the --- init): the runners stop nginx between
# blocks, which drops a chat still running. TEST 18 ends a turn's lease
# (in SQL, as if its worker had died) under a model that takes 3 s.
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of callhq_defaults below.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat);

use IO::Socket::INET ();
use Time::HiRes ();

# Ids 16000000-0000-4000-8000-0000000000NN:
#   01  c160-echo (echo, SYS-160)        02  c160-other (echo, SYS-160-B)
#   03  c160-slow (echo+slow-1500, SYS-160)
#   04  c160-two (echo; prompts: system SYS-160-A, developer DEV-160)
#   05  c160-slower (echo+slow-3000, SYS-160), for a lease that runs out
#   11  session of 01: h1 h2, then the chats q1, q2, a PATCH, q3
#   12  session of 03: h1 h2, a chat runs while PATCH comes
#   13  session of 01: h1 ... h6, context window of 2 messages
#   14  session of 01: h1 h2, busy (set with psql)
#   15  session of 04: no history, prompts and developer messages
#   16  session of 05: h1 h2, PATCH after the chat's lease ran out
#   17  session of 03: h1 h2, deleted while its chat runs
#   18  session of 01: h1 ... h6, context window of the 3 newest in bytes
#   19  session of 01: h1 ... h6, context window of 10 bytes (no history)
#   c1, c2, c3  chats of session 11 (q1, q2, q3), d1  a chat after c3,
#   a3, a8, a9  the chats of sessions 13, 18, 19,
#   e1  session 17's chat; named c160-... by POST /chat, given these ids
#       by the --- init of the block after
our %ASST = ('01' => ['echo', [system => 'SYS-160']],
             '02' => ['echo', [system => 'SYS-160-B']],
             '03' => ['echo+slow-1500', [system => 'SYS-160']],
             '04' => ['echo', [system => 'SYS-160-A'], [developer => 'DEV-160']],
             '05' => ['echo+slow-3000', [system => 'SYS-160']]);
our %SESS = ('11' => '01', '12' => '03', '13' => '01', '14' => '01', '15' => '04',
             '16' => '05', '17' => '03', '18' => '01', '19' => '01');
our @H2 = ([user => 'h1'], [assistant => 'h2']);
our @H6 = map { [($_ % 2 ? 'user' : 'assistant') => "h$_"] } 1 .. 6;
our %SEED = (map({ $_ => \@H2 } qw(11 12 14 16 17)), map({ $_ => \@H6 } qw(13 18 19)));

sub id { sprintf '16000000-0000-4000-8000-0000000000%s', shift }

psql(q{
    delete from callhq.chats
     where name like 'c160-%' or id::text like '16000000-0000-4000-8000-%'
        or assistant_id::text like '16000000-0000-4000-8000-%';
    delete from callhq.sessions
     where id::text like '16000000-0000-4000-8000-%'
        or assistant_id::text like '16000000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '16000000-0000-4000-8000-%';
} . join('', map { my ($model, @p) = @{ $ASST{$_} }; qq{
    insert into callhq.assistants (id, org_id, name, model)
    select '@{[ id($_) ]}', k.org_id, 'c160-$_',
           '{"provider": "openai", "model": "$model",
             "messages": [@{[ join ', ', map { ::raw(@$_) } @p ]}]}'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
} } sort keys %ASST) . join('', map { qq{
    insert into callhq.sessions (id, org_id, assistant_id, name, expiration_seconds,
                                 expires_at, next_seq, created_at, updated_at)
    select '@{[ id($_) ]}', k.org_id, '@{[ id($SESS{$_}) ]}', 'c160-$_', 86400,
           '2099-01-01T00:00:00Z', @{[ 1 + @{ $SEED{$_} // [] } ]},
           '2016-02-01T00:00:00Z', '2016-02-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
} . ($SEED{$_} ? qq{
    select callhq.messages_insert('@{[ id($_) ]}',
        '[@{[ join ', ', map { ::raw(@$_) } @{ $SEED{$_} } ]}]', 1);
} : '') } sort keys %SESS));

our ($ECHO, $OTHER, $SLOW, $TWO, $SLOWER) = map { id($_) } qw(01 02 03 04 05);
our ($S11, $S12, $S13, $S14, $S15, $S16, $S17, $S18, $S19)
    = map { id($_) } 11 .. 19;
our ($C1, $C2, $C3, $P1, $O1) = map { id($_) } qw(c1 c2 c3 d1 e1);

our @SYS = ([system => 'SYS-160']);
our @SYSB = ([system => 'SYS-160-B']);
our @N2 = ([user => 'n1'], [assistant => 'n2']);
our $N2_BODY = '{"messages": [{"role": "user", "content": "n1"}, {"role": "assistant", "content": "n2"}]}';

# The byte bound that keeps the 3 newest of h1 ... h6 (as 130-chat-turns.t).
our $BYTES_3 = 0;
$BYTES_3 += length ::raw(@$_) for @H6[3 .. 5];

our $TMP = $ENV{CALLHQ_TEST_TMP} // '/tmp';

our $CONFIG = api_location('/')
    . api_location('/m2/', 'callhq_context_messages 2;')
    . api_location('/lease/', 'callhq_turn_lease 60s;')
    . model_locations(read_timeout => '6s')
    . api_location('/b3/', "callhq_context_bytes $BYTES_3;")
    . api_location('/b10/', 'callhq_context_bytes 10;');

callhq_defaults(config => $CONFIG, extra_http => 'callhq_webhooks off;',
                valgrind_timeout => 10);

# The contexts of session 11's chats and of those after them.
our @Q1 = (@SYS, @H2, [user => 'q1']);
our $R1 = ::echo(@Q1);
our @Q2 = (@Q1, [assistant => $R1], [user => 'q2']);
our $R2 = ::echo(@Q2);
our @Q3 = (@SYS, @N2, [user => 'q3']);
our $R3 = ::echo(@Q3);

# A chat (regex source) with this context and the echo of it as its reply.
sub chat_of {
    my ($ctx, %more) = @_;
    my $reply = ::echo(@$ctx);
    return ::chat(input => $ctx->[-1][1], messages => $ctx,
                  output => [[assistant => $reply]], usage => ::usage($ctx, $reply), %more);
}

sub s11_chat {
    my ($ctx, $name, %more) = @_;
    return chat_of($ctx, sessionId => $S11, assistantId => $ECHO, name => $name, %more);
}

# A session as GET /session/{id} reads it.
sub session_of {
    my ($sid, $updated, @msgs) = @_;
    my %more = ref $updated eq 'HASH' ? %$updated : (updatedAt => $updated);
    return ::session_body({ id => $sid, orgId => $::ORG_A, name => 'c160-' . substr($sid, -2),
        status => 'active', assistantId => id($SESS{ substr $sid, -2 }),
        expirationSeconds => \86400, expiresAt => '2099-01-01T00:00:00.000Z',
        createdAt => '2016-02-01T00:00:00.000Z', %more }, @msgs);
}

our $SEEDED_AT = '2016-02-01T00:00:00.000Z';

# Messages as jsonb prints them (chats.messages).
sub jsonb_msgs {
    return '[' . join(', ', map { '{"role": ' . ::json_str($_->[0]) . ', "content": '
                                  . ::json_str($_->[1]) . '}' } @_) . ']';
}

# What psql finds in the row of a chat.
sub chat_row {
    my $id = shift;
    return CallHQ::Test::psql(qq{select messages::text || '|' || coalesce(prompt_count::text, '')
                                        || '|' || coalesce(history_from::text, '')
                                        || '|' || coalesce(history_to::text, '')
                                   from callhq.chats where id = '$id'});
}

sub name_chat {
    my ($name, $id) = @_;
    CallHQ::Test::psql(qq{update callhq.chats set id = '$id' where name = '$name'});
}

sub busy_message {
    my $sid = shift;
    return ::cerr(409, "Session $sid is busy with another chat; its messages cannot be replaced now");
}

# Poll an SQL condition until it holds (30 s at most).
sub sql_until {
    my $cond = shift;
    for (1 .. 600) {
        return 1 if CallHQ::Test::psql("select ($cond)::text") eq 'true';
        Time::HiRes::sleep(0.05);
    }
    Test::More::fail("waited in vain for: $cond");
    return 0;
}

# A request with Org A's key from --- init, while the block's nginx runs:
# (status, body).
sub http {
    my ($method, $uri, $body) = @_;
    $body //= '';
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => Test::Nginx::Util::server_port_for_client(),
                                     Timeout => 30)
        or return (0, "cannot connect: $!");
    print $sock "$method $uri HTTP/1.1\r\nHost: localhost\r\n"
        . "Authorization: Bearer cq_test_a\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
    local $/;
    my $resp = <$sock> // '';
    my ($head, $text) = split /\r\n\r\n/, $resp, 2;
    my ($status) = ($head // '') =~ m{\AHTTP/1\.1 (\d+) };
    return ($status // 0, $text // '');
}

run_tests();

# A session's chats went with it.
is(psql(qq{select count(*) from callhq.chats where session_id = '$S11'}) + 0, 0,
   "$0 - no chat of the deleted session 11 is left");

__DATA__

=== TEST 1: a chat of a session: the prompts, the history, the input go upstream; the answer shows them
--- request eval
["POST /chat\n{\"sessionId\": \"$main::S11\", \"input\": \"q1\", \"name\": \"c160-q1\"}",
 "GET /_mock/requests?n=1"]
--- error_code eval
[201, 200]
--- response_body eval
[::whole(main::s11_chat(\@main::Q1, 'c160-q1')),
 ::mock_requests(::upstream(model => 'echo', messages => \@main::Q1))]



=== TEST 2: its row keeps the prompts and the input only, and the seqs of the history it was sent
--- init
main::name_chat('c160-q1', $main::C1);
Test::More::is(main::chat_row($main::C1),
    main::jsonb_msgs(@main::SYS, [user => 'q1']) . '|1|1|2',
    "$0 - TEST 2: chats.messages of c1: prompt and input; history 1 .. 2");
--- request eval
["GET /chat/$main::C1",
 "POST /chat\n{\"sessionId\": \"$main::S11\", \"input\": \"q2\", \"name\": \"c160-q2\"}"]
--- error_code eval
[200, 201]
--- response_body eval
[::whole(main::s11_chat(\@main::Q1, 'c160-q1', id => $main::C1)),
 ::whole(main::s11_chat(\@main::Q2, 'c160-q2'))]



=== TEST 3: PATCH replaces the history: the earlier chats still show exactly what they were sent
--- init
main::name_chat('c160-q2', $main::C2);
Test::More::is(main::chat_row($main::C2),
    main::jsonb_msgs(@main::SYS, [user => 'q2']) . '|1|1|4',
    "$0 - TEST 3: chats.messages of c2: prompt and input; history 1 .. 4");
--- request eval
["PATCH /session/$main::S11\n$main::N2_BODY",
 "GET /chat/$main::C1", "GET /chat/$main::C2",
 "GET /chat?sessionId=$main::S11&sortOrder=ASC"]
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
[main::session_of($main::S11, $::TS, @main::N2),
 ::whole(main::s11_chat(\@main::Q1, 'c160-q1', id => $main::C1)),
 ::whole(main::s11_chat(\@main::Q2, 'c160-q2', id => $main::C2)),
 ::chat_list([main::s11_chat(\@main::Q1, 'c160-q1', id => $main::C1),
              main::s11_chat(\@main::Q2, 'c160-q2', id => $main::C2)], sortOrder => 'ASC')]



=== TEST 4: ... PATCH copied their whole contexts into their rows; a later chat is sent the new history
--- init
Test::More::is(main::chat_row($main::C1), main::jsonb_msgs(@main::Q1) . '|1||',
               "$0 - TEST 4: c1 holds its whole context now");
Test::More::is(main::chat_row($main::C2), main::jsonb_msgs(@main::Q2) . '|1||',
               "$0 - TEST 4: c2 holds its whole context now");
--- request eval
["POST /chat\n{\"sessionId\": \"$main::S11\", \"input\": \"q3\", \"name\": \"c160-q3\"}",
 "GET /_mock/requests?n=1",
 "GET /session/$main::S11"]
--- error_code eval
[201, 200, 200]
--- response_body eval
[::whole(main::s11_chat(\@main::Q3, 'c160-q3')),
 ::mock_requests(::upstream(model => 'echo', messages => \@main::Q3)),
 main::session_of($main::S11, $::TS, @main::N2, [user => 'q3'], [assistant => $main::R3])]



=== TEST 5: the later chat points into the new history (seqs 1 .. 2 again); the list shows all three
--- init
main::name_chat('c160-q3', $main::C3);
Test::More::is(main::chat_row($main::C3),
    main::jsonb_msgs(@main::SYS, [user => 'q3']) . '|1|1|2',
    "$0 - TEST 5: chats.messages of c3: prompt and input; history 1 .. 2 of the new history");
--- request eval
["GET /chat?sessionId=$main::S11&sortOrder=ASC", "GET /chat/$main::C3",
 "DELETE /chat/$main::C2", "GET /chat/$main::C2"]
--- error_code eval
[200, 200, 200, 404]
--- response_body eval
[::chat_list([main::s11_chat(\@main::Q1, 'c160-q1', id => $main::C1),
              main::s11_chat(\@main::Q2, 'c160-q2', id => $main::C2),
              main::s11_chat(\@main::Q3, 'c160-q3', id => $main::C3)], sortOrder => 'ASC'),
 ::whole(main::s11_chat(\@main::Q3, 'c160-q3', id => $main::C3)),
 ::whole(main::s11_chat(\@main::Q2, 'c160-q2', id => $main::C2)),
 ::cerr(404, "Chat $main::C2 not found")]



=== TEST 6: previousChatId of a session's chat: its whole context, its prompts skipped, then its output
--- request eval
["POST /chat\n{\"previousChatId\": \"$main::C3\", \"assistantId\": \"$main::OTHER\", \"input\": \"p1\", \"name\": \"c160-p1\"}",
 "GET /_mock/requests?n=1",
 "POST /chat\n{\"previousChatId\": \"$main::C1\", \"input\": \"p2\", \"name\": \"c160-p2\"}",
 "GET /_mock/requests?n=1",
 "POST /m2/chat\n{\"previousChatId\": \"$main::C3\", \"input\": \"p3\", \"name\": \"c160-p3\"}",
 "GET /_mock/requests?n=1"]
--- error_code eval
[201, 200, 201, 200, 201, 200]
--- response_body eval
my @p1 = (@main::SYSB, @main::N2, [user => 'q3'], [assistant => $main::R3], [user => 'p1']);
my @p2 = (@main::Q1, [assistant => $main::R1], [user => 'p2']);
my @p3 = (@main::SYS, [user => 'q3'], [assistant => $main::R3], [user => 'p3']);
[::whole(main::chat_of(\@p1, assistantId => $main::OTHER, previousChatId => $main::C3, name => 'c160-p1')),
 ::mock_requests(::upstream(model => 'echo', messages => \@p1)),
 ::whole(main::chat_of(\@p2, assistantId => $main::ECHO, previousChatId => $main::C1, name => 'c160-p2')),
 ::mock_requests(::upstream(model => 'echo', messages => \@p2)),
 ::whole(main::chat_of(\@p3, assistantId => $main::ECHO, previousChatId => $main::C3, name => 'c160-p3')),
 ::mock_requests(::upstream(model => 'echo', messages => \@p3))]



=== TEST 7: context windows: what went upstream is what the chat shows afterwards
--- request eval
["POST /m2/chat\n{\"sessionId\": \"$main::S13\", \"input\": \"now\"}",
 "POST /b3/chat\n{\"sessionId\": \"$main::S18\", \"input\": \"now\"}",
 "POST /b10/chat\n{\"sessionId\": \"$main::S19\", \"input\": \"now\"}",
 "GET /_mock/requests?n=3",
 "GET /chat?sessionId=$main::S13", "GET /chat?sessionId=$main::S18", "GET /chat?sessionId=$main::S19"]
--- error_code eval
[201, 201, 201, 200, 200, 200, 200]
--- response_body eval
my @h = @main::H6;
my @ctx = ([@main::SYS, @h[4, 5], [user => 'now']], [@main::SYS, @h[3 .. 5], [user => 'now']],
           [@main::SYS, [user => 'now']]);
my @sid = ($main::S13, $main::S18, $main::S19);
[(map { ::whole(main::chat_of($ctx[$_], sessionId => $sid[$_], assistantId => $main::ECHO)) } 0 .. 2),
 ::mock_requests(map { ::upstream(model => 'echo', messages => $_) } @ctx),
 (map { ::chat_list([main::chat_of($ctx[$_], sessionId => $sid[$_], assistantId => $main::ECHO)]) } 0 .. 2)]



=== TEST 8: ... the rows reference exactly the bounded history; PATCH (to [] as well) keeps those contexts
--- init
Test::More::is(CallHQ::Test::psql(qq{
    select string_agg(right(s.id::text, 2) || ':' || c.prompt_count || ':'
                      || coalesce(c.history_from::text, '-') || '-'
                      || coalesce(c.history_to::text, '-') || ':' || c.messages::text, ' '
                      order by s.id)
      from callhq.chats c join callhq.sessions s on s.id = c.session_id
     where s.id in ('$main::S13', '$main::S18', '$main::S19')}),
    CORE::join(' ', map { "$_:1:" . {13 => '5-6', 18 => '4-6', 19 => '---'}->{$_} . ':'
                          . main::jsonb_msgs(@main::SYS, [user => 'now']) } 13, 18, 19),
    "$0 - TEST 8: the windows' rows: prompt and input; history 5..6, 4..6, none");
CallHQ::Test::psql(qq{update callhq.chats set id = ('16000000-0000-4000-8000-0000000000a' || right(session_id::text, 1))::uuid
                       where session_id in ('$main::S13', '$main::S18', '$main::S19')});
--- request eval
["PATCH /session/$main::S13\n$main::N2_BODY", "PATCH /session/$main::S18\n{\"messages\": []}",
 "GET /chat/@{[ main::id('a3') ]}", "GET /chat/@{[ main::id('a8') ]}", "GET /chat/@{[ main::id('a9') ]}"]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_body eval
my @h = @main::H6;
[main::session_of($main::S13, $::TS, @main::N2), main::session_of($main::S18, $::TS),
 ::whole(main::chat_of([@main::SYS, @h[4, 5], [user => 'now']], id => main::id('a3'),
                       sessionId => $main::S13, assistantId => $main::ECHO)),
 ::whole(main::chat_of([@main::SYS, @h[3 .. 5], [user => 'now']], id => main::id('a8'),
                       sessionId => $main::S18, assistantId => $main::ECHO)),
 ::whole(main::chat_of([@main::SYS, [user => 'now']], id => main::id('a9'),
                       sessionId => $main::S19, assistantId => $main::ECHO))]



=== TEST 9: PATCH with messages while a chat of the session runs (busy, set with psql): 409, nothing changes
--- init
CallHQ::Test::psql(qq{update callhq.sessions
                         set busy_chat = gen_random_uuid(), busy_until = now() + interval '1 hour'
                       where id = '$main::S14'});
--- request eval
["PATCH /session/$main::S14\n$main::N2_BODY",
 "PATCH /session/$main::S14\n{\"name\": \"c160-not-this\", \"messages\": []}",
 "GET /session/$main::S14"]
--- error_code eval
[409, 409, 200]
--- response_headers eval
["Content-Type: application/json", "Content-Type: application/json", ""]
--- response_body eval
[main::busy_message($main::S14), main::busy_message($main::S14),
 main::session_of($main::S14, $main::SEEDED_AT, @main::H2)]



=== TEST 10: ... another org's PATCH of that busy session: 404, as for any session it cannot see
--- more_headers eval
$::AUTH_B
--- request eval
["PATCH /session/$main::S14\n$main::N2_BODY", "PATCH /session/$main::S14\n{\"name\": \"c160-b\"}"]
--- error_code eval
[404, 404]
--- response_body eval
[::cerr(404, "Session $main::S14 not found"), ::cerr(404, "Session $main::S14 not found")]



=== TEST 11: ... PATCH without messages on the busy session works
--- request eval
["PATCH /session/$main::S14\n{\"name\": \"c160-renamed\", \"metadata\": {\"k\": 1}}",
 "GET /session/$main::S14"]
--- error_code eval
[200, 200]
--- response_body eval
[main::session_of($main::S14, { updatedAt => $::TS, name => 'c160-renamed', metadata => { k => \1 } }, @main::H2),
 main::session_of($main::S14, { updatedAt => $::TS, name => 'c160-renamed', metadata => { k => \1 } }, @main::H2)]



=== TEST 12: ... a lease that ran out no longer holds PATCH back
--- init
CallHQ::Test::psql(qq{update callhq.sessions set busy_until = now() - interval '1 second'
                       where id = '$main::S14'});
--- request eval
"PATCH /session/$main::S14\n$main::N2_BODY"
--- error_code: 200
--- response_body eval
main::session_of($main::S14, { updatedAt => $::TS, name => 'c160-renamed', metadata => { k => \1 } }, @main::N2)



=== TEST 13: a chat running for real: PATCH with messages answers 409, PATCH of its name works; the next chat waits
--- init
main::chat_in_background("$main::TMP/c160-busy", "id = '$main::S12'",
                         qq{{"sessionId": "$main::S12", "input": "slow one"}});
--- request eval
["PATCH /session/$main::S12\n$main::N2_BODY",
 "PATCH /session/$main::S12\n{\"name\": \"c160-busy-renamed\"}",
 "POST /chat\n{\"sessionId\": \"$main::S12\", \"input\": \"after\"}"]
--- timeout: 10
--- error_code eval
[409, 200, 201]
--- response_body eval
my @ctx = (@main::SYS, @main::H2, [user => 'slow one']);
[main::busy_message($main::S12),
 main::session_of($main::S12, { updatedAt => $::TS, name => 'c160-busy-renamed' }, @main::H2),
 ::whole(main::chat_of([@ctx, [assistant => ::echo(@ctx)], [user => 'after']],
                       sessionId => $main::S12, assistantId => $main::SLOW))]



=== TEST 14: ... the chat answered with the context it was sent, and still shows it; its turn is recorded
--- init
::background_answered("$main::TMP/c160-busy", 201,
    ::whole(main::chat_of([@main::SYS, @main::H2, [user => 'slow one']], sessionId => $main::S12,
                          assistantId => $main::SLOW)),
    "$0 - TEST 14: the running chat");
--- request eval
["GET /chat?sessionId=$main::S12&sortOrder=ASC", "GET /session/$main::S12"]
--- response_body eval
my @ctx = (@main::SYS, @main::H2, [user => 'slow one']);
my @ctx2 = (@ctx, [assistant => ::echo(@ctx)], [user => 'after']);
[::chat_list([main::chat_of(\@ctx, sessionId => $main::S12, assistantId => $main::SLOW),
              main::chat_of(\@ctx2, sessionId => $main::S12, assistantId => $main::SLOW)],
             sortOrder => 'ASC'),
 main::session_of($main::S12, { updatedAt => $::TS, name => 'c160-busy-renamed' },
                  @main::H2, [user => 'slow one'], [assistant => ::echo(@ctx)],
                  [user => 'after'], [assistant => ::echo(@ctx2)])]



=== TEST 15: two prompts (one developer), developer input: the rows keep them, the contexts say system
--- request eval
["POST /chat\n{\"sessionId\": \"$main::S15\", \"name\": \"c160-dev-1\", \"input\": [{\"role\": \"developer\", \"content\": \"dev input\"}, {\"role\": \"user\", \"content\": \"u1\"}]}",
 "POST /chat\n{\"sessionId\": \"$main::S15\", \"name\": \"c160-dev-2\", \"input\": \"u2\"}",
 "GET /_mock/requests?n=1",
 "GET /chat?sessionId=$main::S15&sortOrder=ASC"]
--- error_code eval
[201, 201, 200, 200]
--- response_body eval
my @p = ([system => 'SYS-160-A'], [system => 'DEV-160']);
my @c1 = (@p, [system => 'dev input'], [user => 'u1']);
my @c2 = (@c1, [assistant => ::echo(@c1)], [user => 'u2']);
my $in1 = ::msgs([developer => 'dev input'], [user => 'u1']);
[::whole(main::chat_of(\@c1, sessionId => $main::S15, assistantId => $main::TWO, name => 'c160-dev-1',
                       input => $in1)),
 ::whole(main::chat_of(\@c2, sessionId => $main::S15, assistantId => $main::TWO, name => 'c160-dev-2')),
 ::mock_requests(::upstream(model => 'echo', messages => \@c2)),
 ::chat_list([main::chat_of(\@c1, sessionId => $main::S15, assistantId => $main::TWO,
                            name => 'c160-dev-1', input => $in1),
              main::chat_of(\@c2, sessionId => $main::S15, assistantId => $main::TWO,
                            name => 'c160-dev-2')], sortOrder => 'ASC')]



=== TEST 16: ... rows as stored (developer kept); the assistant's new prompt changes no recorded chat
--- init
Test::More::is(CallHQ::Test::psql(q{select string_agg(messages::text || '|' || prompt_count || '|'
                                                      || coalesce(history_from::text, '') || '|'
                                                      || coalesce(history_to::text, ''), ' ' order by name)
                                      from callhq.chats where name like 'c160-dev-%'}),
    main::jsonb_msgs([system => 'SYS-160-A'], [developer => 'DEV-160'], [developer => 'dev input'],
                     [user => 'u1']) . '|2|| '
    . main::jsonb_msgs([system => 'SYS-160-A'], [developer => 'DEV-160'], [user => 'u2']) . '|2|1|3',
    "$0 - TEST 16: the rows of the developer chats");
--- request eval
["PATCH /assistant/$main::TWO\n{\"model\": {\"provider\": \"openai\", \"model\": \"echo\", \"messages\": [{\"role\": \"system\", \"content\": \"SYS-160-NEW\"}]}}",
 "GET /chat?sessionId=$main::S15&sortOrder=ASC",
 "POST /chat\n{\"sessionId\": \"$main::S15\", \"name\": \"c160-dev-3\", \"input\": \"u3\"}"]
--- error_code eval
[200, 200, 201]
--- response_body eval
my @p = ([system => 'SYS-160-A'], [system => 'DEV-160']);
my @c1 = (@p, [system => 'dev input'], [user => 'u1']);
my @c2 = (@c1, [assistant => ::echo(@c1)], [user => 'u2']);
my @c3 = ([system => 'SYS-160-NEW'], @c2[2 .. $#c2], [assistant => ::echo(@c2)], [user => 'u3']);
my $in1 = ::msgs([developer => 'dev input'], [user => 'u1']);
[qr/"SYS-160-NEW"/,
 ::chat_list([main::chat_of(\@c1, sessionId => $main::S15, assistantId => $main::TWO,
                            name => 'c160-dev-1', input => $in1),
              main::chat_of(\@c2, sessionId => $main::S15, assistantId => $main::TWO,
                            name => 'c160-dev-2')], sortOrder => 'ASC'),
 ::whole(main::chat_of(\@c3, sessionId => $main::S15, assistantId => $main::TWO, name => 'c160-dev-3'))]



=== TEST 17: DELETE /session: its chats go with it; a chat that continued one keeps its context, loses the link
--- init
main::name_chat('c160-p1', $main::P1);
--- request eval
["DELETE /session/$main::S11", "GET /chat/$main::C1", "GET /chat/$main::C3",
 "GET /chat?sessionId=$main::S11", "GET /chat/$main::P1"]
--- error_code eval
[200, 404, 404, 200, 200]
--- response_body eval
my @p1 = (@main::SYSB, @main::N2, [user => 'q3'], [assistant => $main::R3], [user => 'p1']);
[main::session_of($main::S11, $::TS, @main::N2, [user => 'q3'], [assistant => $main::R3]),
 ::cerr(404, "Chat $main::C1 not found"), ::cerr(404, "Chat $main::C3 not found"),
 ::chat_list([]),
 ::whole(main::chat_of(\@p1, id => $main::P1, assistantId => $main::OTHER, name => 'c160-p1'))]



=== TEST 18: PATCH after a running chat's lease ran out is allowed; the late turn comes after the new history
--- init
main::chat_in_background("$main::TMP/c160-lease", "id = '$main::S16'",
                         qq{{"sessionId": "$main::S16", "input": "late", "name": "c160-late"}},
                         '/lease/chat');
# the lease runs out as if its worker had stopped renewing it (60s: the
# worker's first renewal is 20s away)
CallHQ::Test::psql(qq{update callhq.sessions set busy_until = now() - interval '1 second'
                       where id = '$main::S16'});
Test::More::is((main::http(PATCH => "/session/$main::S16", $main::N2_BODY))[0], 200,
               "$0 - TEST 18: PATCH with messages once the lease ran out: 200");
::background_answered("$main::TMP/c160-lease", 201,
    ::whole(main::chat_of([@main::SYS, @main::H2, [user => 'late']], sessionId => $main::S16,
                          assistantId => $main::SLOWER, name => 'c160-late')),
    "$0 - TEST 18: the late chat");
--- request eval
"GET /session/$main::S16"
--- response_body eval
main::session_of($main::S16, $::TS, @main::N2, [user => 'late'],
                 [assistant => ::echo(@main::SYS, @main::H2, [user => 'late'])])



=== TEST 19: ... the late chat shows the context it was sent (h1 h2), not the history PATCH put there
# The lease ran out and PATCH replaced the messages while the model
# answered: chat_record finds the session's history_epoch moved on, asks
# the module for the context (100), and keeps it in full.
--- request eval
"GET /chat?sessionId=$main::S16"
--- response_body eval
::chat_list([main::chat_of([@main::SYS, @main::H2, [user => 'late']], sessionId => $main::S16,
                           assistantId => $main::SLOWER, name => 'c160-late')])



=== TEST 20: DELETE /session while its chat runs: 200; the chat answers with the context it was sent
--- init
main::chat_in_background("$main::TMP/c160-orphan", "id = '$main::S17'",
                         qq{{"sessionId": "$main::S17", "input": "orphan", "name": "c160-orphan"}});
Test::More::is((main::http(DELETE => "/session/$main::S17"))[0], 200,
               "$0 - TEST 20: DELETE /session while its chat runs: 200");
::background_answered("$main::TMP/c160-orphan", 201,
    ::whole(main::chat_of([@main::SYS, @main::H2, [user => 'orphan']],
                          assistantId => $main::SLOW, name => 'c160-orphan')),
    "$0 - TEST 20: the orphan chat");
main::name_chat('c160-orphan', $main::O1);
--- request eval
["GET /session/$main::S17", "GET /chat?sessionId=$main::S17"]
--- error_code eval
[404, 200]
--- response_body eval
[::cerr(404, "Session $main::S17 not found"), ::chat_list([])]



=== TEST 21: ... and GET /chat/{id} reads it back as POST /chat answered it
# The session went while the model answered: chat_record asks the module
# for the context (100), and the chat stays alone with all of it.
--- request eval
"GET /chat/$main::O1"
--- response_body eval
::whole(main::chat_of([@main::SYS, @main::H2, [user => 'orphan']], id => $main::O1,
                      assistantId => $main::SLOW, name => 'c160-orphan'))
