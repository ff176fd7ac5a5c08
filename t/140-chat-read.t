# The read side of chats: GET /chat/{id}, GET /chat (filters sessionId,
# assistantId, assistantIdAny, previousChatId, the createdAt filters; paged
# like sessions), DELETE /chat/{id}; another org's chats answer 404 and
# never show up in a list.
#
# Chats are fixtures with fixed ids and times, plus one made by POST /chat
# (the --- init of the block after gives it a fixed id).
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of callhq_defaults below.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat);

our $CONFIG = api_location('/') . model_locations(mock => 0);

callhq_defaults(config => $CONFIG, valgrind_timeout => 10);

# Ids 14000000-0000-4000-8000-0000000000NN:
#   01, 02  Org A's assistants (01 echo)   03  Org B's assistant
#   11  session of 01, history q1 r1 q2 r2  12  session of 02
#   c1  11's first chat (usage)          c2  11's second chat
#   c3  after c1, no session, incomplete c4  an inline assistant's, named
#   c5  12's chat                        c7  after c2
#   cb  Org B's chat                     c6  made by POST /chat
# created 2014-03-01T00:00:0N (c1 ... c5, c7 = 7, cb = 9)
psql(q{
    delete from callhq.chats where id::text like '14000000-0000-4000-8000-%'
                                or name like 'c140-%';
    delete from callhq.sessions where id::text like '14000000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '14000000-0000-4000-8000-%';

    insert into callhq.assistants (id, org_id, name, model)
    select v.id::uuid, k.org_id, v.name, v.model::jsonb
      from callhq.api_keys k,
           (values
            ('14000000-0000-4000-8000-000000000001', 'cq_test_a', 'c140-one',
             '{"provider": "openai", "model": "echo",
               "messages": [{"role": "system", "content": "SYS-140"}]}'),
            ('14000000-0000-4000-8000-000000000002', 'cq_test_a', 'c140-two',
             '{"provider": "openai", "model": "echo"}'),
            ('14000000-0000-4000-8000-000000000003', 'cq_test_b', 'c140-b',
             '{"provider": "openai", "model": "echo"}'))
           v(id, key, name, model)
     where k.key_hash = sha256(v.key::bytea);

    insert into callhq.sessions (id, org_id, assistant_id, name, expiration_seconds,
                                 expires_at, next_seq, created_at, updated_at)
    select v.id::uuid, k.org_id, v.assistant_id::uuid, v.name, 86400,
           '2099-01-01T00:00:00Z', v.next_seq, '2014-02-01T00:00:00Z', '2014-02-01T00:00:00Z'
      from callhq.api_keys k,
           (values
            ('14000000-0000-4000-8000-000000000011', '14000000-0000-4000-8000-000000000001',
             'c140-11', 5),
            ('14000000-0000-4000-8000-000000000012', '14000000-0000-4000-8000-000000000002',
             'c140-12', 1))
           v(id, assistant_id, name, next_seq)
     where k.key_hash = sha256('cq_test_a');

    select callhq.messages_insert('14000000-0000-4000-8000-000000000011',
        '[{"role": "user", "content": "q1"}, {"role": "assistant", "content": "r1"},
          {"role": "user", "content": "q2"}, {"role": "assistant", "content": "r2"}]', 1);

    insert into callhq.chats (id, org_id, assistant_id, assistant, session_id,
                              previous_chat_id, name, input, messages, output, status,
                              usage, metadata, prompt_count, created_at, updated_at)
    select v.id::uuid, k.org_id, v.assistant_id::uuid, v.assistant::jsonb,
           v.session_id::uuid, v.previous_chat_id::uuid, v.name, v.input::jsonb,
           v.messages::jsonb, v.output::jsonb, v.status, v.usage::jsonb,
           v.metadata::jsonb, 1, v.created_at::timestamptz, v.created_at::timestamptz
      from callhq.api_keys k,
           (values
            ('14000000-0000-4000-8000-0000000000c1', 'cq_test_a',
             '14000000-0000-4000-8000-000000000001', null,
             '14000000-0000-4000-8000-000000000011', null, null, '"q1"',
             '[{"role": "system", "content": "SYS-140"}, {"role": "user", "content": "q1"}]',
             '[{"role": "assistant", "content": "r1"}]', 'completed',
             '{"promptTokens": 2, "completionTokens": 1}', null, '2014-03-01T00:00:01Z'),
            ('14000000-0000-4000-8000-0000000000c2', 'cq_test_a',
             '14000000-0000-4000-8000-000000000001', null,
             '14000000-0000-4000-8000-000000000011', null, null, '"q2"',
             '[{"role": "system", "content": "SYS-140"}, {"role": "user", "content": "q1"},
               {"role": "assistant", "content": "r1"}, {"role": "user", "content": "q2"}]',
             '[{"role": "assistant", "content": "r2"}]', 'completed',
             '{"promptTokens": 4, "completionTokens": 1}', '{"turn": 2}', '2014-03-01T00:00:02Z'),
            ('14000000-0000-4000-8000-0000000000c3', 'cq_test_a',
             '14000000-0000-4000-8000-000000000002', null, null,
             '14000000-0000-4000-8000-0000000000c1', null,
             '[{"role": "user", "content": "follow"}]',
             '[{"role": "user", "content": "q1"}, {"role": "assistant", "content": "r1"},
               {"role": "user", "content": "follow"}]',
             '[{"role": "assistant", "content": "fol"}]', 'incomplete', null, null,
             '2014-03-01T00:00:03Z'),
            ('14000000-0000-4000-8000-0000000000c4', 'cq_test_a', null,
             '{"model": {"model": "echo"}}', null, null, 'c140-inline', '"alone"',
             '[{"role": "user", "content": "alone"}]',
             '[{"role": "assistant", "content": "[]"}]', 'completed', null, null,
             '2014-03-01T00:00:04Z'),
            ('14000000-0000-4000-8000-0000000000c5', 'cq_test_a',
             '14000000-0000-4000-8000-000000000002', null,
             '14000000-0000-4000-8000-000000000012', null, null, '"hi"',
             '[{"role": "user", "content": "hi"}]',
             '[{"role": "assistant", "content": "ho"}]', 'completed', null, null,
             '2014-03-01T00:00:05Z'),
            ('14000000-0000-4000-8000-0000000000c7', 'cq_test_a',
             '14000000-0000-4000-8000-000000000001', null, null,
             '14000000-0000-4000-8000-0000000000c2', null, '"more"',
             '[{"role": "system", "content": "SYS-140"}, {"role": "user", "content": "more"}]',
             '[{"role": "assistant", "content": "yes"}]', 'completed', null, null,
             '2014-03-01T00:00:07Z'),
            ('14000000-0000-4000-8000-0000000000cb', 'cq_test_b',
             '14000000-0000-4000-8000-000000000003', null, null, null, null, '"b"',
             '[{"role": "user", "content": "b"}]',
             '[{"role": "assistant", "content": "secret of B"}]', 'completed', null, null,
             '2014-03-01T00:00:09Z'))
           v(id, key, assistant_id, assistant, session_id, previous_chat_id, name, input,
             messages, output, status, usage, metadata, created_at)
     where k.key_hash = sha256(v.key::bytea);
});

sub id { sprintf '14000000-0000-4000-8000-0000000000%s', shift }

our ($A1, $A2, $B_ASST) = map { id($_) } qw(01 02 03);
our ($S11, $S12) = map { id($_) } qw(11 12);
our ($C1, $C2, $C3, $C4, $C5, $C6, $C7, $CB) = map { id($_) } qw(c1 c2 c3 c4 c5 c6 c7 cb);

sub at { my $n = shift; return "2014-03-01T00:00:0$n.000Z" }

# The fixture chats, as the API shows them.
our %CHAT = (
    $C1 => ::chat(id => $C1, assistantId => $A1, sessionId => $S11, input => 'q1',
                  messages => [[system => 'SYS-140'], [user => 'q1']],
                  output => [[assistant => 'r1']],
                  usage => { promptTokens => \2, completionTokens => \1 },
                  createdAt => at(1), updatedAt => at(1)),
    $C2 => ::chat(id => $C2, assistantId => $A1, sessionId => $S11, input => 'q2',
                  messages => [[system => 'SYS-140'], [user => 'q1'], [assistant => 'r1'],
                               [user => 'q2']],
                  output => [[assistant => 'r2']], metadata => { turn => \2 },
                  usage => { promptTokens => \4, completionTokens => \1 },
                  createdAt => at(2), updatedAt => at(2)),
    $C3 => ::chat(id => $C3, assistantId => $A2, previousChatId => $C1,
                  input => ::msgs([user => 'follow']),
                  messages => [[user => 'q1'], [assistant => 'r1'], [user => 'follow']],
                  output => [[assistant => 'fol']], status => 'incomplete',
                  createdAt => at(3), updatedAt => at(3)),
    $C4 => ::chat(id => $C4, assistant => { model => { model => 'echo' } },
                  name => 'c140-inline', input => 'alone',
                  messages => [[user => 'alone']], output => [[assistant => '[]']],
                  createdAt => at(4), updatedAt => at(4)),
    $C5 => ::chat(id => $C5, assistantId => $A2, sessionId => $S12, input => 'hi',
                  messages => [[user => 'hi']], output => [[assistant => 'ho']],
                  createdAt => at(5), updatedAt => at(5)),
    $C7 => ::chat(id => $C7, assistantId => $A1, previousChatId => $C2, input => 'more',
                  messages => [[system => 'SYS-140'], [user => 'more']],
                  output => [[assistant => 'yes']], createdAt => at(7), updatedAt => at(7)),
    $CB => ::chat(id => $CB, orgId => $::ORG_B, assistantId => $B_ASST, input => 'b',
                  messages => [[user => 'b']], output => [[assistant => 'secret of B']],
                  createdAt => at(9), updatedAt => at(9)),
);

sub chats { return [map { $CHAT{$_} } @_] }

# The chat POST /chat makes (c6 once renamed).
our @MADE = ([system => 'SYS-140'], [user => 'to read']);
our $MADE_REPLY = ::echo(@MADE);

sub made {
    return ::chat(assistantId => $A1, input => 'to read', name => 'c140-made',
                  metadata => { source => 'test' }, messages => \@MADE,
                  output => [[assistant => $MADE_REPLY]],
                  usage => ::usage(\@MADE, $MADE_REPLY), @_);
}

# Every list below is limited to these assistants, so that chats of other
# suites do not count.
our $MINE = "assistantIdAny=$A1,$A2";

run_tests();

__DATA__

=== TEST 1: GET /chat/{id}: the chat with its context, output, status and usage
--- request eval
"GET /chat/$main::C1"
--- response_headers
Content-Type: application/json
--- response_body eval
::whole($main::CHAT{$main::C1})



=== TEST 2: an incomplete chat, after another, without session or usage; an inline assistant's
--- request eval
["GET /chat/$main::C3", "GET /chat/$main::C4", "GET /chat/$main::C2"]
--- response_body eval
[map { ::whole($main::CHAT{$_}) } $main::C3, $main::C4, $main::C2]



=== TEST 3: GET /chat?sessionId=: the session's chats, newest first, or oldest first
--- request eval
["GET /chat?sessionId=$main::S11", "GET /chat?sessionId=$main::S11&sortOrder=ASC",
 "GET /chat?sessionId=$main::S12"]
--- response_body eval
[::chat_list(main::chats($main::C2, $main::C1)),
 ::chat_list(main::chats($main::C1, $main::C2), sortOrder => 'ASC'),
 ::chat_list(main::chats($main::C5))]



=== TEST 4: GET /chat?assistantId=, ?assistantIdAny=, ?previousChatId=
--- request eval
["GET /chat?assistantId=$main::A2", "GET /chat?$main::MINE",
 "GET /chat?previousChatId=$main::C1", "GET /chat?previousChatId=$main::C2",
 "GET /chat?previousChatId=$main::C5"]
--- response_body eval
[::chat_list(main::chats($main::C5, $main::C3)),
 ::chat_list(main::chats($main::C7, $main::C5, $main::C3, $main::C2, $main::C1)),
 ::chat_list(main::chats($main::C3)),
 ::chat_list(main::chats($main::C7)),
 ::chat_list([])]



=== TEST 5: filters together: sessionId and assistantId
--- request eval
["GET /chat?sessionId=$main::S11&assistantId=$main::A1",
 "GET /chat?sessionId=$main::S11&assistantId=$main::A2"]
--- response_body eval
[::chat_list(main::chats($main::C2, $main::C1)), ::chat_list([])]



=== TEST 6: paging: limit, page, the metadata of sessions
--- request eval
["GET /chat?$main::MINE&limit=2",
 "GET /chat?$main::MINE&limit=2&page=2",
 "GET /chat?$main::MINE&limit=2&page=3",
 "GET /chat?$main::MINE&limit=2&page=4"]
--- response_body eval
my %m = (itemsPerPage => \2, totalItems => \5, totalPages => \3);
[::chat_list(main::chats($main::C7, $main::C5), %m, hasNextPage => \'true'),
 ::chat_list(main::chats($main::C3, $main::C2), %m, currentPage => \2, hasNextPage => \'true'),
 ::chat_list(main::chats($main::C1), %m, currentPage => \3),
 ::chat_list([], %m, currentPage => \4)]



=== TEST 7: createdAt filters
--- request eval
["GET /chat?$main::MINE&createdAtGt=2014-03-01T00:00:03.000Z",
 "GET /chat?$main::MINE&createdAtGe=2014-03-01T00:00:03.000Z",
 "GET /chat?$main::MINE&createdAtLt=2014-03-01T00:00:02Z&sortOrder=ASC",
 "GET /chat?$main::MINE&createdAtLe=2014-03-01T00:00:02Z&sortOrder=ASC"]
--- response_body eval
[::chat_list(main::chats($main::C7, $main::C5)),
 ::chat_list(main::chats($main::C7, $main::C5, $main::C3)),
 ::chat_list(main::chats($main::C1), sortOrder => 'ASC'),
 ::chat_list(main::chats($main::C1, $main::C2), sortOrder => 'ASC')]



=== TEST 8: bad query parameters and ids: 400 naming them
--- request eval
["GET /chat?sessionId=c140-11",
 "GET /chat?previousChatId=42",
 "GET /chat?name=c140-inline",
 "GET /chat?limit=0",
 "GET /chat?sortOrder=UP",
 "GET /chat/c140-c1",
 "GET /chat/$main::C1?expand=1",
 "DELETE /chat/c140-c1"]
--- error_code eval
[(400) x 8]
--- response_body eval
[::cerr(400, 'sessionId must be a UUID'),
 ::cerr(400, 'previousChatId must be a UUID'),
 ::cerr(400, 'property name should not exist'),
 ::cerr(400, 'limit must be an integer between 1 and 1000'),
 ::cerr(400, 'sortOrder must be one of ASC, DESC'),
 ::cerr(400, 'Chat id "c140-c1" must be a UUID'),
 ::cerr(400, 'property expand should not exist'),
 ::cerr(400, 'Chat id "c140-c1" must be a UUID')]



=== TEST 9: an unknown chat, another org's chat: 404, the same
--- request eval
["GET /chat/@{[ main::id('ff') ]}", "GET /chat/$main::CB", "DELETE /chat/$main::CB",
 "GET /chat?assistantId=$main::B_ASST"]
--- error_code eval
[404, 404, 404, 200]
--- response_body eval
[::cerr(404, 'Chat ' . main::id('ff') . ' not found'),
 ::cerr(404, "Chat $main::CB not found"),
 ::cerr(404, "Chat $main::CB not found"),
 ::chat_list([])]



=== TEST 10: Org B sees its own chat, and none of Org A's
--- more_headers eval
$::AUTH_B
--- request eval
["GET /chat/$main::CB", "GET /chat/$main::C1", "DELETE /chat/$main::C1",
 "GET /chat?sessionId=$main::S11", "GET /chat?$main::MINE", "GET /chat?previousChatId=$main::C1",
 "GET /chat?assistantId=$main::B_ASST"]
--- error_code eval
[200, 404, 404, 200, 200, 200, 200]
--- response_body eval
[::whole($main::CHAT{$main::CB}),
 ::cerr(404, "Chat $main::C1 not found"), ::cerr(404, "Chat $main::C1 not found"),
 ::chat_list([]), ::chat_list([]), ::chat_list([]),
 ::chat_list(main::chats($main::CB))]



=== TEST 11: ... and Org B's DELETE left Org A's chat alone
--- request eval
"GET /chat/$main::C1"
--- response_body eval
::whole($main::CHAT{$main::C1})



=== TEST 12: DELETE /chat/{id}: 200 with the deleted chat; then it is gone
--- request eval
["DELETE /chat/$main::C3", "GET /chat/$main::C3", "DELETE /chat/$main::C3",
 "GET /chat?previousChatId=$main::C1"]
--- error_code eval
[200, 404, 404, 200]
--- response_headers eval
["Content-Type: application/json", "", "", ""]
--- response_body eval
[::whole($main::CHAT{$main::C3}),
 ::cerr(404, "Chat $main::C3 not found"), ::cerr(404, "Chat $main::C3 not found"),
 ::chat_list([])]



=== TEST 13: deleting a session's chat leaves the history; a chat after it loses the link only
--- request eval
["DELETE /chat/$main::C2", "GET /chat/$main::C7", "GET /chat?sessionId=$main::S11",
 "GET /session/$main::S11"]
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
[::whole($main::CHAT{$main::C2}),
 ::whole(::chat(id => $main::C7, assistantId => $main::A1, input => 'more',
                messages => [[system => 'SYS-140'], [user => 'more']],
                output => [[assistant => 'yes']], createdAt => main::at(7),
                updatedAt => main::at(7))),
 ::chat_list(main::chats($main::C1)),
 ::session_body({ id => $main::S11, orgId => $::ORG_A, name => 'c140-11',
                  status => 'active', assistantId => $main::A1,
                  expirationSeconds => \86400, expiresAt => '2099-01-01T00:00:00.000Z',
                  createdAt => '2014-02-01T00:00:00.000Z',
                  updatedAt => '2014-02-01T00:00:00.000Z' },
                [user => 'q1'], [assistant => 'r1'], [user => 'q2'], [assistant => 'r2'])]



=== TEST 14: a method the chats do not take: 405 with Allow
--- request
PUT /chat
{}
--- error_code: 405
--- response_headers
Allow: GET, POST
--- response_body eval
::cerr(405, 'PUT is not allowed on /chat (allowed: GET, POST)')



=== TEST 15: a chat made by POST /chat reads back as POST answered it
--- request eval
"POST /chat\n{\"assistantId\": \"$main::A1\", \"input\": \"to read\", \"name\": \"c140-made\", \"metadata\": {\"source\": \"test\"}}"
--- error_code: 201
--- response_body eval
::whole(main::made())



=== TEST 16: ... GET /chat/{id}, in GET /chat, DELETE
--- init
CallHQ::Test::psql(qq{update callhq.chats set id = '$main::C6' where name = 'c140-made'});
--- request eval
["GET /chat/$main::C6", "GET /chat?assistantId=$main::A1&createdAtGt=2020-01-01",
 "DELETE /chat/$main::C6", "GET /chat/$main::C6"]
--- error_code eval
[200, 200, 200, 404]
--- response_body eval
[::whole(main::made(id => $main::C6)),
 ::chat_list([main::made(id => $main::C6)]),
 ::whole(main::made(id => $main::C6)),
 ::cerr(404, "Chat $main::C6 not found")]
