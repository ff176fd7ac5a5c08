# The OpenAI surface's conversations (callhq_openai at /v1/): POST, GET,
# POST (metadata) and DELETE /conversations/{id}, its items (list, add,
# get, delete), GET /responses/{id}/input_items, OpenAI's list shape and
# its pagination, every field's error naming its param, tenancy (another
# org's ids are 404 on every route), expiry (410), and a conversation
# that is a session: one made by POST /session is a conversation, and the
# other way round.
#
# The assistant uses the mock's "echo" model: its reply is the compact
# JSON of the messages it received, so each answer shows the history that
# went upstream.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test;

our $CONFIG = api_location('/') . <<'_EOC_' . model_locations();
location /v1/ {
    callhq_openai;
    callhq_model_location /_model;
}
_EOC_

callhq_defaults(config => $CONFIG, valgrind_timeout => 10);

sub id { sprintf '42000000-0000-4000-8000-0000000000%s', shift }

# Ids 42000000-0000-4000-8000-0000000000NN:
#   01  o420-echo (Org A; echo, SYS-420)    02  o420-b (Org B)
#   03  o420-other (Org A)
#   12  Org B's conversation   13  an expired one of Org A
#   14  one of Org A whose turn a chat holds
#   21..26  made by the blocks, given these ids by rekey() (below)
#   b1  Org B's response       c1, c2, c4  responses made by the blocks
our ($ECHO, $B_ASST, $OTHER) = (id('01'), id('02'), id('03'));
our ($B_CONV, $EXPIRED, $BUSY) = (id('12'), id('13'), id('14'));
our ($NEW, $FREE, $PAGE, $SESS, $GONE, $TOOLS) = map { id($_) } qw(21 22 23 24 25 26);
our ($B_RESP, $R_IN, $R_ID, $R_CONV) = (id('b1'), id('c1'), id('c2'), id('c4'));

psql(q{
    delete from callhq.chats
     where id::text like '42000000-0000-4000-8000-%' or metadata->>'t' like 'o420-%'
        or assistant_id::text like '42000000-0000-4000-8000-%';
    delete from callhq.sessions
     where id::text like '42000000-0000-4000-8000-%' or metadata->>'t' like 'o420-%';
    delete from callhq.assistants where id::text like '42000000-0000-4000-8000-%';

    insert into callhq.assistants (id, org_id, name, model)
    select v.id::uuid, k.org_id, v.name, v.model::jsonb
      from callhq.api_keys k,
           (values
            ('42000000-0000-4000-8000-000000000001', 'cq_test_a', 'o420-echo',
             '{"provider": "openai", "model": "echo",
               "messages": [{"role": "system", "content": "SYS-420"}]}'),
            ('42000000-0000-4000-8000-000000000002', 'cq_test_b', 'o420-b',
             '{"provider": "openai", "model": "echo"}'),
            ('42000000-0000-4000-8000-000000000003', 'cq_test_a', 'o420-other',
             '{"provider": "openai", "model": "echo"}'))
           v(id, key, name, model)
     where k.key_hash = sha256(v.key::bytea);

    insert into callhq.sessions (id, org_id, assistant_id, status, expiration_seconds,
                                 expires_at, next_seq, busy_chat, busy_until)
    select v.id::uuid, k.org_id, v.assistant_id::uuid, 'active', 86400,
           v.expires_at::timestamptz, 2, v.busy::uuid,
           case when v.busy is not null then now() + interval '1 hour' end
      from callhq.api_keys k,
           (values
            ('42000000-0000-4000-8000-000000000012', 'cq_test_b',
             '42000000-0000-4000-8000-000000000002', '2099-01-01T00:00:00Z', null),
            ('42000000-0000-4000-8000-000000000013', 'cq_test_a',
             '42000000-0000-4000-8000-000000000001', '2003-01-01T00:00:00Z', null),
            ('42000000-0000-4000-8000-000000000014', 'cq_test_a',
             '42000000-0000-4000-8000-000000000001', '2099-01-01T00:00:00Z',
             '42000000-0000-4000-8000-0000000000ee'))
           v(id, key, assistant_id, expires_at, busy)
     where k.key_hash = sha256(v.key::bytea);

    insert into callhq.messages (session_id, seq, role, content, raw)
    select s.id, 1, 'user', '"old"', '{"role":"user","content":"old"}'
      from callhq.sessions s where s.id::text like '42000000-0000-4000-8000-00000000001_';

    insert into callhq.chats (id, org_id, assistant_id, input, messages, output, prompt_count)
    select '42000000-0000-4000-8000-0000000000b1', k.org_id,
           '42000000-0000-4000-8000-000000000002', '"b"',
           '[{"role": "user", "content": "b"}]',
           '[{"role": "assistant", "content": "secret of B"}]', 0
      from callhq.api_keys k where k.key_hash = sha256('cq_test_b');
});

# The session a block made (its metadata.t is $tag) gets the id $id, with
# its messages and chats, so that the blocks after it can name it.
sub rekey {
    my ($tag, $id) = @_;
    psql(qq{do \$\$
        declare
            s    callhq.sessions;
            old  uuid;
        begin
            select * into strict s from callhq.sessions where metadata->>'t' = '$tag';
            old := s.id;
            s.id := '$id';
            insert into callhq.sessions select (s).*;
            update callhq.messages set session_id = s.id where session_id = old;
            update callhq.chats set session_id = s.id where session_id = old;
            delete from callhq.sessions where id = old;
        end \$\$});
}

# the chat a block made (its metadata.t is $tag) gets the id $id
sub rekey_chat {
    my ($tag, $id) = @_;
    psql(qq{update callhq.chats set id = '$id' where metadata->>'t' = '$tag'});
}

# an OpenAI error, whole
sub bad {
    my ($message, $param, $code, $type) = @_;
    my $q = sub { defined $_[0] ? '"' . quotemeta($_[0]) . '"' : 'null' };
    $type //= 'invalid_request_error';
    return qr/\A\{"error":\{"message":"\Q$message\E","type":"$type","param":@{[
        $q->($param) ]},"code":@{[ $q->($code) ]}\}\}\z/;
}

# the item ids of a list, in its order, and its first_id, last_id, has_more
sub ids {
    my ($owner, @n) = @_;
    return join '', map { "\\{\"id\": \"msg_${owner}_$_\"[^{}]*(\\{[^{}]*\\}[^{}]*)*\\}(, )?" } @n;
}

sub page {
    my ($owner, $more, @n) = @_;
    my $items = ids($owner, @n);
    my ($first, $last) = ("msg_${owner}_$n[0]", "msg_${owner}_$n[-1]");
    return qr/\A\{"data": \[$items\], "object": "list", "last_id": "$last", "first_id": "$first", "has_more": $more\}\z/;
}

run_tests();

__DATA__

=== TEST 1: POST /conversations: items and metadata (metadata.assistant names the assistant)
--- request
POST /v1/conversations
{"items": [{"type": "message", "role": "user", "content": "I am Ada."}, {"role": "assistant", "content": [{"type": "output_text", "text": "Hello Ada."}]}], "metadata": {"t": "o420-new", "assistant": "o420-echo"}}
--- error_code: 200
--- response_body eval
qr/\A\{"id": "conv_[0-9a-f-]{36}", "object": "conversation", "metadata": \{"t": "o420-new", "assistant": "o420-echo"\}, "created_at": \d{10}\}\z/



=== TEST 2: GET /conversations/{id}, and its items oldest first: a user's input_text, the assistant's output_text
--- init
main::rekey('o420-new', $main::NEW);
--- request eval
["GET /v1/conversations/conv_$main::NEW",
 "GET /v1/conversations/conv_$main::NEW/items?order=asc"]
--- error_code eval
[200, 200]
--- response_body eval
[qr/\A\{"id": "conv_\Q$main::NEW\E", "object": "conversation", "metadata": \{"t": "o420-new", "assistant": "o420-echo"\}, "created_at": \d{10}\}\z/,
 "{\"data\": [{\"id\": \"msg_${main::NEW}_1\", \"role\": \"user\", \"type\": \"message\", \"status\": \"completed\", \"content\": [{\"text\": \"I am Ada.\", \"type\": \"input_text\"}]}, {\"id\": \"msg_${main::NEW}_2\", \"role\": \"assistant\", \"type\": \"message\", \"status\": \"completed\", \"content\": [{\"text\": \"Hello Ada.\", \"type\": \"output_text\", \"logprobs\": [], \"annotations\": []}]}], \"object\": \"list\", \"last_id\": \"msg_${main::NEW}_2\", \"first_id\": \"msg_${main::NEW}_1\", \"has_more\": false}"]



=== TEST 3: a response in it: sent its items, appended to it; its items newest first by default
--- request eval
["POST /v1/responses\n{\"model\": \"o420-echo\", \"input\": \"Who am I?\", \"conversation\": \"conv_$main::NEW\", \"metadata\": {\"t\": \"o420-inconv\"}}",
 "GET /v1/conversations/conv_$main::NEW/items?limit=2"]
--- error_code eval
[200, 200]
--- response_body eval
[qr/"text":"\[\{\\"role\\":\\"system\\",\\"content\\":\\"SYS-420\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"I am Ada\.\\"\},\{\\"role\\":\\"assistant\\",\\"content\\":\\"Hello Ada\.\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"Who am I\?\\"\}\]".*"conversation":\{"id":"conv_\Q$main::NEW\E"\}/,
 qr/\A\{"data": \[\{"id": "msg_\Q$main::NEW\E_4", "role": "assistant", "type": "message", "status": "completed", "content": \[\{"text": "\[\{\\"role\\":\\"system\\",\\"content\\":\\"SYS-420\\"\}.*\{"id": "msg_\Q$main::NEW\E_3", "role": "user", "type": "message", "status": "completed", "content": \[\{"text": "Who am I\?", "type": "input_text"\}\]\}\], "object": "list", "last_id": "msg_\Q$main::NEW\E_3", "first_id": "msg_\Q$main::NEW\E_4", "has_more": true\}\z/]



=== TEST 4: without an assistant, the first response's model chooses it; then another model is refused
--- request eval
["POST /v1/conversations\n{\"metadata\": {\"t\": \"o420-free\"}}",
 "GET /session?limit=100"]
--- error_code eval
[200, 200]
--- response_body eval
[qr/\A\{"id": "conv_[0-9a-f-]{36}", "object": "conversation", "metadata": \{"t": "o420-free"\}, "created_at": \d{10}\}\z/,
 qr/\{(?:(?!"assistantId")[^{}])*"metadata": \{"t": "o420-free"\}(?:(?!"assistantId")[^{}])*\}/]



=== TEST 5: (the conversation of TEST 4) the first response's model becomes its assistant
--- init
main::rekey('o420-free', $main::FREE);
--- request eval
["POST /v1/responses\n{\"model\": \"o420-echo\", \"input\": \"one\", \"conversation\": {\"id\": \"conv_$main::FREE\"}}",
 "GET /session/$main::FREE",
 "POST /v1/responses\n{\"model\": \"o420-other\", \"input\": \"two\", \"conversation\": \"conv_$main::FREE\"}"]
--- error_code eval
[200, 200, 400]
--- response_body eval
[qr/"text":"\[\{\\"role\\":\\"system\\",\\"content\\":\\"SYS-420\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"one\\"\}\]"/,
 qr/"assistantId": "\Q$main::ECHO\E"/,
 main::bad("The model 'o420-other' is not the assistant of conversation 'conv_$main::FREE'.", 'model', 'invalid_value')]



=== TEST 6: pagination: limit, after, order, has_more, first_id, last_id
--- request
POST /v1/conversations
{"items": [{"role": "user", "content": "1"}, {"role": "assistant", "content": "2"}, {"role": "user", "content": "3"}, {"role": "developer", "content": "4"}, {"role": "system", "content": "5"}], "metadata": {"t": "o420-page"}}
--- error_code: 200



=== TEST 7: (the conversation of TEST 6) pages of 2, either way
--- init
main::rekey('o420-page', $main::PAGE);
--- request eval
["GET /v1/conversations/conv_$main::PAGE/items?order=asc&limit=2",
 "GET /v1/conversations/conv_$main::PAGE/items?order=asc&limit=2&after=msg_${main::PAGE}_2",
 "GET /v1/conversations/conv_$main::PAGE/items?order=asc&limit=2&after=msg_${main::PAGE}_4",
 "GET /v1/conversations/conv_$main::PAGE/items",
 "GET /v1/conversations/conv_$main::PAGE/items?limit=3&after=msg_${main::PAGE}_3",
 "GET /v1/conversations/conv_$main::PAGE/items?order=asc&after=msg_${main::PAGE}_5"]
--- error_code eval
[200, 200, 200, 200, 200, 200]
--- response_body eval
[main::page($main::PAGE, 'true', 1, 2),
 main::page($main::PAGE, 'true', 3, 4),
 main::page($main::PAGE, 'false', 5),
 main::page($main::PAGE, 'false', 5, 4, 3, 2, 1),
 main::page($main::PAGE, 'false', 2, 1),
 '{"data": [], "object": "list", "last_id": null, "first_id": null, "has_more": false}']



=== TEST 8: items: added at the end, read one, deleted (the gap stays, the next response is not sent it; its model becomes the assistant)
--- request eval
["POST /v1/conversations/conv_$main::PAGE/items\n{\"items\": [{\"role\": \"user\", \"content\": [{\"type\": \"input_text\", \"text\": \"six\"}]}, {\"type\": \"message\", \"role\": \"assistant\", \"content\": \"seven\"}]}",
 "GET /v1/conversations/conv_$main::PAGE/items/msg_${main::PAGE}_6",
 "DELETE /v1/conversations/conv_$main::PAGE/items/msg_${main::PAGE}_2",
 "GET /v1/conversations/conv_$main::PAGE/items/msg_${main::PAGE}_2",
 "GET /v1/conversations/conv_$main::PAGE/items?order=asc&limit=3",
 "POST /v1/responses\n{\"model\": \"o420-echo\", \"input\": \"eight\", \"conversation\": \"conv_$main::PAGE\"}"]
--- error_code eval
[200, 200, 200, 404, 200, 200]
--- response_body eval
["{\"data\": [{\"id\": \"msg_${main::PAGE}_6\", \"role\": \"user\", \"type\": \"message\", \"status\": \"completed\", \"content\": [{\"text\": \"six\", \"type\": \"input_text\"}]}, {\"id\": \"msg_${main::PAGE}_7\", \"role\": \"assistant\", \"type\": \"message\", \"status\": \"completed\", \"content\": [{\"text\": \"seven\", \"type\": \"output_text\", \"logprobs\": [], \"annotations\": []}]}], \"object\": \"list\", \"last_id\": \"msg_${main::PAGE}_7\", \"first_id\": \"msg_${main::PAGE}_6\", \"has_more\": false}",
 "{\"id\": \"msg_${main::PAGE}_6\", \"role\": \"user\", \"type\": \"message\", \"status\": \"completed\", \"content\": [{\"text\": \"six\", \"type\": \"input_text\"}]}",
 qr/\A\{"id": "conv_\Q$main::PAGE\E", "object": "conversation", "metadata": \{"t": "o420-page"\}, "created_at": \d{10}\}\z/,
 main::bad("Item with id 'msg_${main::PAGE}_2' not found.", 'item_id', undef),
 main::page($main::PAGE, 'true', 1, 3, 4),
 qr/"text":"\[\{\\"role\\":\\"system\\",\\"content\\":\\"SYS-420\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"1\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"3\\"\},\{\\"role\\":\\"system\\",\\"content\\":\\"4\\"\},\{\\"role\\":\\"system\\",\\"content\\":\\"5\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"six\\"\},\{\\"role\\":\\"assistant\\",\\"content\\":\\"seven\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"eight\\"\}\]"/]



=== TEST 9: POST /conversations/{id}: metadata replaced; it is required
--- request eval
["POST /v1/conversations/conv_$main::PAGE\n{\"metadata\": {\"t\": \"o420-page\", \"topic\": \"numbers\"}}",
 "GET /v1/conversations/$main::PAGE",
 "POST /v1/conversations/conv_$main::PAGE\n{}"]
--- error_code eval
[200, 200, 400]
--- response_body eval
[qr/\A\{"id": "conv_\Q$main::PAGE\E", "object": "conversation", "metadata": \{"t": "o420-page", "topic": "numbers"\}, "created_at": \d{10}\}\z/,
 qr/\A\{"id": "conv_\Q$main::PAGE\E", "object": "conversation", "metadata": \{"t": "o420-page", "topic": "numbers"\}/,
 main::bad("Missing required parameter: 'metadata'.", 'metadata', 'missing_required_parameter')]



=== TEST 10: a session made by POST /session is a conversation
--- request eval
["POST /session\n{\"assistantId\": \"$main::ECHO\", \"messages\": [{\"role\": \"user\", \"content\": \"I live in Oslo.\"}, {\"role\": \"assistant\", \"content\": \"Nice.\"}], \"metadata\": {\"t\": \"o420-sess\"}}"]
--- error_code eval
[201]



=== TEST 11: (the session of TEST 10) its messages are the conversation's items, a response in it sees them
--- init
main::rekey('o420-sess', $main::SESS);
--- request eval
["GET /v1/conversations/conv_$main::SESS",
 "GET /v1/conversations/conv_$main::SESS/items?order=asc",
 "POST /v1/responses\n{\"model\": \"$main::ECHO\", \"input\": \"Where?\", \"conversation\": \"conv_$main::SESS\"}",
 "GET /session/$main::SESS"]
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
[qr/\A\{"id": "conv_\Q$main::SESS\E", "object": "conversation", "metadata": \{"t": "o420-sess"\}, "created_at": \d{10}\}\z/,
 qr/\A\{"data": \[\{"id": "msg_\Q$main::SESS\E_1", "role": "user", "type": "message", "status": "completed", "content": \[\{"text": "I live in Oslo\.", "type": "input_text"\}\]\}, \{"id": "msg_\Q$main::SESS\E_2", "role": "assistant", .*"has_more": false\}\z/,
 qr/"text":"\[\{\\"role\\":\\"system\\",\\"content\\":\\"SYS-420\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"I live in Oslo\.\\"\},\{\\"role\\":\\"assistant\\",\\"content\\":\\"Nice\.\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"Where\?\\"\}\]"/,
 qr/"messages": \[\{"role":"user","content":"I live in Oslo\."\}, \{"role":"assistant","content":"Nice\."\}, \{"role":"user","content":"Where\?"\}, \{"role":"assistant","content":"[^\n]+"\}\]\}\z/]



=== TEST 12: and a conversation is a session: GET /session by either id, POST /chat with its sessionId; GET /responses/{id} of a response in it names it
--- init
main::rekey_chat('o420-inconv', $main::R_CONV);
--- request eval
["GET /session/conv_$main::NEW",
 "POST /chat\n{\"sessionId\": \"$main::NEW\", \"input\": \"by chat\"}",
 "GET /v1/conversations/conv_$main::NEW/items?limit=1",
 "GET /v1/responses/resp_$main::R_CONV"]
--- error_code eval
[200, 201, 200, 200]
--- response_body eval
[qr/\A\{"id": "\Q$main::NEW\E".*"metadata": \{"t": "o420-new", "assistant": "o420-echo"\}.*"messages": \[\{"role":"user","content":"I am Ada\."\}, \{"role":"assistant","content":"Hello Ada\."\}, \{"role":"user","content":"Who am I\?"\}, /,
 qr/"sessionId": "\Q$main::NEW\E"/,
 qr/\A\{"data": \[\{"id": "msg_\Q$main::NEW\E_6", "role": "assistant", "type": "message", "status": "completed", "content": \[\{"text": "\[\{\\"role\\":\\"system\\".*\{\\"role\\":\\"user\\",\\"content\\":\\"by chat\\"\}\]"/,
 qr/\A(?=.*"model": "o420-echo")(?=.*"conversation": \{"id": "conv_\Q$main::NEW\E"\})(?=.*"id": "resp_\Q$main::R_CONV\E")/]



=== TEST 13: a conversation without an assistant takes metadata.assistant's when updated; DELETE: deleted, then 404 here and as a session
--- init
main::psql(qq{insert into callhq.sessions (id, org_id, status, expiration_seconds, expires_at)
              select '$main::GONE', s.org_id, 'active', 60, now() + interval '1 hour'
                from callhq.sessions s where s.id = '$main::NEW'});
--- request eval
["POST /v1/conversations/conv_$main::GONE\n{\"metadata\": {\"assistant\": \"$main::ECHO\"}}",
 "GET /session/$main::GONE",
 "DELETE /v1/conversations/conv_$main::GONE",
 "GET /v1/conversations/conv_$main::GONE",
 "GET /session/$main::GONE",
 "DELETE /v1/conversations/conv_$main::GONE"]
--- error_code eval
[200, 200, 200, 404, 404, 404]
--- response_body eval
[qr/\A\{"id": "conv_\Q$main::GONE\E", "object": "conversation", "metadata": \{"assistant": "\Q$main::ECHO\E"\}/,
 qr/"assistantId": "\Q$main::ECHO\E"/,
 "{\"id\": \"conv_$main::GONE\", \"object\": \"conversation.deleted\", \"deleted\": true}",
 main::bad("Conversation with id 'conv_$main::GONE' not found.", 'conversation_id', undef),
 qr/not found/,
 main::bad("Conversation with id 'conv_$main::GONE' not found.", 'conversation_id', undef)]



=== TEST 14: POST /conversations: each field checked, naming it
--- request eval
["POST /v1/conversations\n{\"items\": {}}",
 "POST /v1/conversations\n{\"items\": [" . join(',', ('{"role": "user", "content": "x"}') x 21) . "]}",
 "POST /v1/conversations\n{\"items\": [\"x\"]}",
 "POST /v1/conversations\n{\"items\": [{\"type\": \"item_reference\", \"id\": \"x\"}]}",
 "POST /v1/conversations\n{\"items\": [{\"role\": \"robot\", \"content\": \"x\"}]}",
 "POST /v1/conversations\n{\"items\": [{\"role\": \"user\"}]}",
 "POST /v1/conversations\n{\"items\": [{\"role\": \"user\", \"content\": [{\"type\": \"input_image\"}]}]}",
 "POST /v1/conversations\n{\"items\": [{\"role\": \"user\", \"content\": [{\"type\": \"input_text\"}]}]}",
 "POST /v1/conversations\n{\"metadata\": {\"k\": 1}}",
 "POST /v1/conversations\n{\"metadata\": \"x\"}",
 "POST /v1/conversations\n{\"metadata\": {\"assistant\": \"nope\"}}",
 "POST /v1/conversations\n{\"metadata\": {\"assistant\": \"o420-b\"}}",
 "POST /v1/conversations\n{\"frobnicate\": 1}",
 "POST /v1/conversations?x=1\n{}",
 "POST /v1/conversations\n[1]"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 404, 404, 400, 400, 400]
--- response_body eval
[main::bad("Invalid 'items': expected an array of at most 20 items.", 'items', 'invalid_value'),
 main::bad("Invalid 'items': expected an array of at most 20 items.", 'items', 'invalid_value'),
 main::bad("Invalid type for 'items[0]': expected an object.", 'items[0]', 'invalid_type'),
 main::bad("Invalid value for 'items[0].type': only message, function_call and function_call_output items are supported.", 'items[0].type', 'invalid_value'),
 main::bad("Invalid value for 'items[0].role': expected one of user, assistant, system, developer.", 'items[0].role', 'invalid_value'),
 main::bad("Invalid type for 'items[0].content': expected a string or an array of content parts.", 'items[0].content', 'invalid_type'),
 main::bad("Invalid value for 'items[0].content[0].type': only input_text and output_text parts are supported.", 'items[0].content[0].type', 'invalid_value'),
 main::bad("Missing required parameter: 'items[0].content[0].text'.", 'items[0].content[0].text', 'missing_required_parameter'),
 main::bad("Invalid 'metadata': at most 16 string values, keys of at most 64 characters, values of at most 512.", 'metadata', 'invalid_value'),
 main::bad("Invalid 'metadata': at most 16 string values, keys of at most 64 characters, values of at most 512.", 'metadata', 'invalid_value'),
 main::bad("The model 'nope' does not exist: it names no assistant.", 'metadata.assistant', 'model_not_found'),
 main::bad("The model 'o420-b' does not exist: it names no assistant.", 'metadata.assistant', 'model_not_found'),
 main::bad("Unknown parameter: 'frobnicate'.", 'frobnicate', 'unknown_parameter'),
 main::bad("Unknown parameter: 'x'.", 'x', 'unknown_parameter'),
 main::bad("body must be a JSON object", undef, undef)]



=== TEST 15: the items routes' fields and query strings, naming them (the module's own messages too)
--- request eval
["POST /v1/conversations/conv_$main::PAGE/items\n{}",
 "POST /v1/conversations/conv_$main::PAGE/items\n{\"items\": [{\"role\": \"user\", \"content\": 5}]}",
 "GET /v1/conversations/conv_$main::PAGE/items?limit=0",
 "GET /v1/conversations/conv_$main::PAGE/items?limit=101",
 "GET /v1/conversations/conv_$main::PAGE/items?limit=x",
 "GET /v1/conversations/conv_$main::PAGE/items?order=up",
 "GET /v1/conversations/conv_$main::PAGE/items?after=msg_${main::NEW}_1",
 "GET /v1/conversations/conv_$main::PAGE/items?before=x",
 "GET /v1/conversations/conv_$main::PAGE/items/msg_${main::NEW}_1",
 "GET /v1/conversations/conv_$main::PAGE/items/nope",
 "POST /v1/conversations/conv_$main::PAGE\n{\"metadata\": {\"a\": [1]}}",
 "GET /v1/conversations/conv_$main::PAGE/items?limit=1%00"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400, 404, 404, 400, 400]
--- response_body eval
[main::bad("Missing required parameter: 'items'.", 'items', 'missing_required_parameter'),
 main::bad("Invalid type for 'items[0].content': expected a string or an array of content parts.", 'items[0].content', 'invalid_type'),
 main::bad("Invalid 'limit': expected an integer from 1 to 100.", 'limit', 'invalid_value'),
 main::bad("Invalid 'limit': expected an integer from 1 to 100.", 'limit', 'invalid_value'),
 main::bad("Invalid 'limit': expected an integer from 1 to 100.", 'limit', 'invalid_value'),
 main::bad("Invalid 'order': expected asc or desc.", 'order', 'invalid_value'),
 main::bad("Invalid 'after': 'msg_${main::NEW}_1' is not an item of this list.", 'after', 'invalid_value'),
 main::bad("Unknown parameter: 'before'.", 'before', 'unknown_parameter'),
 main::bad("Item with id 'msg_${main::NEW}_1' not found.", 'item_id', undef),
 main::bad("Item with id 'nope' not found.", 'item_id', undef),
 main::bad("Invalid 'metadata': at most 16 string values, keys of at most 64 characters, values of at most 512.", 'metadata', 'invalid_value'),
 main::bad("limit must not contain a NUL byte (%00)", 'limit', undef)]



=== TEST 16: tenancy: another org's conversation is 404 on every route
--- request eval
["GET /v1/conversations/conv_$main::B_CONV",
 "POST /v1/conversations/conv_$main::B_CONV\n{\"metadata\": {}}",
 "DELETE /v1/conversations/conv_$main::B_CONV",
 "GET /v1/conversations/conv_$main::B_CONV/items",
 "POST /v1/conversations/conv_$main::B_CONV/items\n{\"items\": [{\"role\": \"user\", \"content\": \"x\"}]}",
 "GET /v1/conversations/conv_$main::B_CONV/items/msg_${main::B_CONV}_1",
 "DELETE /v1/conversations/conv_$main::B_CONV/items/msg_${main::B_CONV}_1",
 "GET /v1/conversations/$main::B_CONV",
 "GET /v1/responses/resp_$main::B_RESP/input_items"]
--- error_code eval
[404, 404, 404, 404, 404, 404, 404, 404, 404]
--- response_body eval
[main::bad("Conversation with id 'conv_$main::B_CONV' not found.", 'conversation_id', undef),
 main::bad("Conversation with id 'conv_$main::B_CONV' not found.", 'conversation_id', undef),
 main::bad("Conversation with id 'conv_$main::B_CONV' not found.", 'conversation_id', undef),
 main::bad("Conversation with id 'conv_$main::B_CONV' not found.", 'conversation_id', undef),
 main::bad("Conversation with id 'conv_$main::B_CONV' not found.", 'conversation_id', undef),
 main::bad("Conversation with id 'conv_$main::B_CONV' not found.", 'conversation_id', undef),
 main::bad("Conversation with id 'conv_$main::B_CONV' not found.", 'conversation_id', undef),
 main::bad("Conversation with id '$main::B_CONV' not found.", 'conversation_id', undef),
 main::bad("Response with id 'resp_$main::B_RESP' not found.", undef, undef)]



=== TEST 17: tenancy: Org B sees its own, and not Org A's
--- more_headers
Authorization: Bearer cq_test_b
Content-Type: application/json
--- request eval
["GET /v1/conversations/conv_$main::B_CONV/items",
 "GET /v1/conversations/conv_$main::PAGE",
 "GET /v1/conversations/conv_$main::PAGE/items/msg_${main::PAGE}_1"]
--- error_code eval
[200, 404, 404]
--- response_body eval
[main::page($main::B_CONV, 'false', 1),
 main::bad("Conversation with id 'conv_$main::PAGE' not found.", 'conversation_id', undef),
 main::bad("Conversation with id 'conv_$main::PAGE' not found.", 'conversation_id', undef)]



=== TEST 18: an expired conversation is 410 on every route but DELETE
--- request eval
["GET /v1/conversations/conv_$main::EXPIRED",
 "POST /v1/conversations/conv_$main::EXPIRED\n{\"metadata\": {}}",
 "GET /v1/conversations/conv_$main::EXPIRED/items",
 "POST /v1/conversations/conv_$main::EXPIRED/items\n{\"items\": [{\"role\": \"user\", \"content\": \"x\"}]}",
 "GET /v1/conversations/conv_$main::EXPIRED/items/msg_${main::EXPIRED}_1",
 "DELETE /v1/conversations/conv_$main::EXPIRED/items/msg_${main::EXPIRED}_1",
 "POST /v1/responses\n{\"model\": \"o420-echo\", \"input\": \"x\", \"conversation\": \"conv_$main::EXPIRED\"}",
 "DELETE /v1/conversations/conv_$main::EXPIRED"]
--- error_code eval
[410, 410, 410, 410, 410, 410, 410, 200]
--- response_body eval
[main::bad("Conversation with id 'conv_$main::EXPIRED' has expired; create a new conversation.", 'conversation_id', 'conversation_expired'),
 main::bad("Conversation with id 'conv_$main::EXPIRED' has expired; create a new conversation.", 'conversation_id', 'conversation_expired'),
 main::bad("Conversation with id 'conv_$main::EXPIRED' has expired; create a new conversation.", 'conversation_id', 'conversation_expired'),
 main::bad("Conversation with id 'conv_$main::EXPIRED' has expired; create a new conversation.", 'conversation_id', 'conversation_expired'),
 main::bad("Conversation with id 'conv_$main::EXPIRED' has expired; create a new conversation.", 'conversation_id', 'conversation_expired'),
 main::bad("Conversation with id 'conv_$main::EXPIRED' has expired; create a new conversation.", 'conversation_id', 'conversation_expired'),
 main::bad("Conversation with id 'conv_$main::EXPIRED' has expired; create a new conversation.", 'conversation', 'conversation_expired'),
 qr/"deleted": true/]



=== TEST 19: a conversation whose turn a chat holds: its items cannot change (409)
--- request eval
["POST /v1/conversations/conv_$main::BUSY/items\n{\"items\": [{\"role\": \"user\", \"content\": \"x\"}]}",
 "DELETE /v1/conversations/conv_$main::BUSY/items/msg_${main::BUSY}_1",
 "GET /v1/conversations/conv_$main::BUSY/items"]
--- error_code eval
[409, 409, 200]
--- response_body eval
[main::bad("Conversation with id 'conv_$main::BUSY' is busy with a response; try again when it is done.", 'conversation_id', 'conversation_busy'),
 main::bad("Conversation with id 'conv_$main::BUSY' is busy with a response; try again when it is done.", 'conversation_id', 'conversation_busy'),
 main::page($main::BUSY, 'false', 1)]



=== TEST 20: GET /responses/{id}/input_items: a response made with three input items (kept as c1 by the next block's init)
--- request
POST /v1/responses
{"model": "42000000-0000-4000-8000-000000000001", "input": [{"role": "developer", "content": "D"}, {"role": "user", "content": [{"type": "input_text", "text": "U1"}]}, {"role": "assistant", "content": "A"}], "metadata": {"t": "o420-in"}}
--- error_code: 200
--- response_body eval
qr/"model":"42000000-0000-4000-8000-000000000001"/



=== TEST 21: (the response of TEST 20) its input items, paginated; GET /responses/{id} answers the model as the create did
--- init
main::rekey_chat('o420-in', $main::R_IN);
--- request eval
["GET /v1/responses/resp_$main::R_IN/input_items",
 "GET /v1/responses/resp_$main::R_IN/input_items?order=asc&limit=2",
 "GET /v1/responses/resp_$main::R_IN/input_items?order=asc&limit=2&after=msg_${main::R_IN}_2",
 "GET /v1/responses/resp_$main::R_IN/input_items?after=msg_${main::NEW}_2",
 "GET /v1/responses/resp_$main::R_IN"]
--- error_code eval
[200, 200, 200, 400, 200]
--- response_body eval
["{\"data\": [{\"id\": \"msg_${main::R_IN}_3\", \"role\": \"assistant\", \"type\": \"message\", \"status\": \"completed\", \"content\": [{\"text\": \"A\", \"type\": \"output_text\", \"logprobs\": [], \"annotations\": []}]}, {\"id\": \"msg_${main::R_IN}_2\", \"role\": \"user\", \"type\": \"message\", \"status\": \"completed\", \"content\": [{\"text\": \"U1\", \"type\": \"input_text\"}]}, {\"id\": \"msg_${main::R_IN}_1\", \"role\": \"developer\", \"type\": \"message\", \"status\": \"completed\", \"content\": [{\"text\": \"D\", \"type\": \"input_text\"}]}], \"object\": \"list\", \"last_id\": \"msg_${main::R_IN}_1\", \"first_id\": \"msg_${main::R_IN}_3\", \"has_more\": false}",
 main::page($main::R_IN, 'true', 1, 2),
 main::page($main::R_IN, 'false', 3),
 main::bad("Invalid 'after': 'msg_${main::NEW}_2' is not an item of this list.", 'after', 'invalid_value'),
 qr/\A(?=.*"model": "42000000-0000-4000-8000-000000000001")(?=.*"conversation": null)/]



=== TEST 22: input_items of a string input: one user message; of an unstored response: 404
--- request eval
["POST /v1/responses\n{\"model\": \"o420-echo\", \"input\": \"just this\", \"metadata\": {\"t\": \"o420-str\"}}",
 "POST /v1/responses\n{\"model\": \"o420-echo\", \"input\": \"not kept\", \"store\": false, \"metadata\": {\"t\": \"o420-nostore\"}}"]
--- error_code eval
[200, 200]



=== TEST 23: (the responses of TEST 22)
--- init
main::rekey_chat('o420-str', $main::R_ID);
main::psql(q{update callhq.chats set id = '42000000-0000-4000-8000-0000000000c3' where metadata->>'t' = 'o420-nostore'});
--- request eval
["GET /v1/responses/resp_$main::R_ID/input_items",
 "GET /v1/responses/resp_42000000-0000-4000-8000-0000000000c3/input_items",
 "GET /v1/responses/resp_$main::R_ID",
 "GET /v1/responses/resp_$main::R_ID/input_items?limit=3&order=sideways"]
--- error_code eval
[200, 404, 200, 400]
--- response_body eval
["{\"data\": [{\"id\": \"msg_${main::R_ID}_1\", \"role\": \"user\", \"type\": \"message\", \"status\": \"completed\", \"content\": [{\"text\": \"just this\", \"type\": \"input_text\"}]}], \"object\": \"list\", \"last_id\": \"msg_${main::R_ID}_1\", \"first_id\": \"msg_${main::R_ID}_1\", \"has_more\": false}",
 main::bad("Response with id 'resp_42000000-0000-4000-8000-0000000000c3' not found.", undef, undef),
 qr/"model": "o420-echo"/,
 main::bad("Invalid 'order': expected asc or desc.", 'order', 'invalid_value')]



=== TEST 24: routes: a method a path does not take is 405 with Allow; paths that are none are 404
--- request eval
["PATCH /v1/conversations/conv_$main::PAGE\n{}",
 "PUT /v1/conversations/conv_$main::PAGE/items/msg_${main::PAGE}_1\n{}",
 "GET /v1/conversations/conv_$main::PAGE/nope",
 "GET /v1/conversations/conv_$main::PAGE/items/msg_${main::PAGE}_1/more",
 "GET /v1/responses/resp_$main::R_ID/items",
 "GET /v1/conversations"]
--- error_code eval
[405, 405, 404, 404, 404, 405]
--- response_body eval
[main::bad("PATCH is not allowed on /v1/conversations/conv_$main::PAGE (allowed: GET, POST, DELETE)", undef, undef),
 main::bad("PUT is not allowed on /v1/conversations/conv_$main::PAGE/items/msg_${main::PAGE}_1 (allowed: GET, DELETE)", undef, undef),
 main::bad("Cannot GET /v1/conversations/conv_$main::PAGE/nope", undef, undef),
 main::bad("Cannot GET /v1/conversations/conv_$main::PAGE/items/msg_${main::PAGE}_1/more", undef, undef),
 main::bad("Cannot GET /v1/responses/resp_$main::R_ID/items", undef, undef),
 main::bad("GET is not allowed on /v1/conversations (allowed: POST)", undef, undef)]



=== TEST 25: an unknown key is 401 as OpenAI's on the new routes too
--- more_headers
Authorization: Bearer nope
Content-Type: application/json
--- request eval
["GET /v1/conversations/conv_$main::PAGE/items",
 "POST /v1/conversations\n{}",
 "GET /v1/responses/resp_$main::R_IN/input_items"]
--- error_code eval
[401, 401, 401]
--- response_body eval
[qr/\A\{"error":\{"message":"[^"]+","type":"invalid_request_error","param":null,"code":"invalid_api_key"\}\}\z/,
 qr/\A\{"error":\{"message":"[^"]+","type":"invalid_request_error","param":null,"code":"invalid_api_key"\}\}\z/,
 qr/\A\{"error":\{"message":"[^"]+","type":"invalid_request_error","param":null,"code":"invalid_api_key"\}\}\z/]



=== TEST 26: tool items: a conversation made with a call of two tools and one answer
--- request
POST /v1/conversations
{"items": [{"role": "user", "content": "Weather and time?"}, {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}, {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": "{}"}, {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}], "metadata": {"t": "o420-tools"}}
--- error_code: 200



=== TEST 27: (the conversation of TEST 26) an assistant message that only calls tools is a function_call item per call; pages end and begin inside it; deleting a call deletes its message
--- init
main::rekey('o420-tools', $main::TOOLS);
--- request eval
["GET /v1/conversations/conv_$main::TOOLS/items?order=asc",
 "GET /v1/conversations/conv_$main::TOOLS/items?order=asc&limit=2",
 "GET /v1/conversations/conv_$main::TOOLS/items?order=asc&limit=2&after=fc_${main::TOOLS}_2_0",
 "GET /v1/conversations/conv_$main::TOOLS/items?after=fc_${main::TOOLS}_2_1",
 "GET /v1/conversations/conv_$main::TOOLS/items/fc_${main::TOOLS}_2_1",
 "GET /v1/conversations/conv_$main::TOOLS/items/fc_${main::TOOLS}_2_2",
 "GET /v1/conversations/conv_$main::TOOLS/items/msg_${main::TOOLS}_2",
 "DELETE /v1/conversations/conv_$main::TOOLS/items/fc_${main::TOOLS}_2_0",
 "GET /v1/conversations/conv_$main::TOOLS/items?order=asc"]
--- error_code eval
[200, 200, 200, 200, 200, 404, 404, 200, 200]
--- response_body eval
["{\"data\": [{\"id\": \"msg_${main::TOOLS}_1\", \"role\": \"user\", \"type\": \"message\", \"status\": \"completed\", \"content\": [{\"text\": \"Weather and time?\", \"type\": \"input_text\"}]}, {\"id\": \"fc_${main::TOOLS}_2_0\", \"name\": \"get_weather\", \"type\": \"function_call\", \"status\": \"completed\", \"call_id\": \"call_1\", \"arguments\": \"{\\\"city\\\":\\\"Oslo\\\"}\"}, {\"id\": \"fc_${main::TOOLS}_2_1\", \"name\": \"get_time\", \"type\": \"function_call\", \"status\": \"completed\", \"call_id\": \"call_2\", \"arguments\": \"{}\"}, {\"id\": \"fco_${main::TOOLS}_3\", \"type\": \"function_call_output\", \"output\": \"sunny\", \"status\": \"completed\", \"call_id\": \"call_1\"}], \"object\": \"list\", \"last_id\": \"fco_${main::TOOLS}_3\", \"first_id\": \"msg_${main::TOOLS}_1\", \"has_more\": false}",
 qr/\A\{"data": \[\{"id": "msg_\Q$main::TOOLS\E_1".*\{"id": "fc_\Q$main::TOOLS\E_2_0".*?\}\], "object": "list", "last_id": "fc_\Q$main::TOOLS\E_2_0", "first_id": "msg_\Q$main::TOOLS\E_1", "has_more": true\}\z/,
 qr/\A\{"data": \[\{"id": "fc_\Q$main::TOOLS\E_2_1".*?\}, \{"id": "fco_\Q$main::TOOLS\E_3".*?\}\], "object": "list", "last_id": "fco_\Q$main::TOOLS\E_3", "first_id": "fc_\Q$main::TOOLS\E_2_1", "has_more": false\}\z/,
 qr/\A\{"data": \[\{"id": "fc_\Q$main::TOOLS\E_2_0".*?\}, \{"id": "msg_\Q$main::TOOLS\E_1".*\], "object": "list", "last_id": "msg_\Q$main::TOOLS\E_1", "first_id": "fc_\Q$main::TOOLS\E_2_0", "has_more": false\}\z/,
 "{\"id\": \"fc_${main::TOOLS}_2_1\", \"name\": \"get_time\", \"type\": \"function_call\", \"status\": \"completed\", \"call_id\": \"call_2\", \"arguments\": \"{}\"}",
 main::bad("Item with id 'fc_${main::TOOLS}_2_2' not found.", 'item_id', undef),
 main::bad("Item with id 'msg_${main::TOOLS}_2' not found.", 'item_id', undef),
 qr/\A\{"id": "conv_\Q$main::TOOLS\E", "object": "conversation"/,
 qr/\A\{"data": \[\{"id": "msg_\Q$main::TOOLS\E_1"[^{}]*\{[^{}]*\}\]\}, \{"id": "fco_\Q$main::TOOLS\E_3"[^{}]*\}\], "object": "list", "last_id": "fco_\Q$main::TOOLS\E_3", "first_id": "msg_\Q$main::TOOLS\E_1", "has_more": false\}\z/]
