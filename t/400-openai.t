# The OpenAI surface (callhq_openai at /v1/): POST /responses as OpenAI's
# SDKs expect it: model names the assistant, instructions, input as a
# string or message items, previous_response_id, store, the parameters
# passed upstream, the Response object, and every error in OpenAI's shape
# naming its param.
#
# The assistants use the mock's "echo" model: its reply is the compact JSON
# of the messages it received, so each answer shows exactly what went
# upstream.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat);

our $CONFIG = api_location('/') . <<'_EOC_' . model_locations();
location /v1/ {
    callhq_openai;
    callhq_model_location /_model;
}
_EOC_

callhq_defaults(config => $CONFIG, valgrind_timeout => 10);

# Ids 40000000-0000-4000-8000-0000000000NN:
#   01  o400-echo (Org A; echo, temperature 0.2, maxTokens 64, SYS-400)
#   02  o400-b (Org B)          03, 04  two of Org A named o400-twin
#   b1  Org B's chat            c1  the chain's first response (TEST 5)
#   c3  TEST 3's response, deleted by TEST 17
#   11  a session of o400-echo, a conversation   12  Org B's session
#   13  an expired session of o400-echo
psql(q{
    delete from callhq.chats
     where id::text like '40000000-0000-4000-8000-%' or metadata->>'t' like 'o400-%'
        or assistant_id::text like '40000000-0000-4000-8000-%';
    delete from callhq.sessions where id::text like '40000000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '40000000-0000-4000-8000-%';

    insert into callhq.assistants (id, org_id, name, model)
    select v.id::uuid, k.org_id, v.name, v.model::jsonb
      from callhq.api_keys k,
           (values
            ('40000000-0000-4000-8000-000000000001', 'cq_test_a', 'o400-echo',
             '{"provider": "openai", "model": "echo", "temperature": 0.2, "maxTokens": 64,
               "messages": [{"role": "system", "content": "SYS-400"}]}'),
            ('40000000-0000-4000-8000-000000000002', 'cq_test_b', 'o400-b',
             '{"provider": "openai", "model": "echo"}'),
            ('40000000-0000-4000-8000-000000000003', 'cq_test_a', 'o400-twin',
             '{"provider": "openai", "model": "echo"}'),
            ('40000000-0000-4000-8000-000000000004', 'cq_test_a', 'o400-twin',
             '{"provider": "openai", "model": "echo"}'))
           v(id, key, name, model)
     where k.key_hash = sha256(v.key::bytea);

    insert into callhq.sessions (id, org_id, assistant_id, name, status,
                                 expiration_seconds, expires_at, next_seq)
    select v.id::uuid, k.org_id, v.assistant_id::uuid, 'o400', 'active', 86400,
           v.expires_at::timestamptz, 1
      from callhq.api_keys k,
           (values
            ('40000000-0000-4000-8000-000000000011', 'cq_test_a',
             '40000000-0000-4000-8000-000000000001', '2099-01-01T00:00:00Z'),
            ('40000000-0000-4000-8000-000000000012', 'cq_test_b',
             '40000000-0000-4000-8000-000000000002', '2099-01-01T00:00:00Z'),
            ('40000000-0000-4000-8000-000000000013', 'cq_test_a',
             '40000000-0000-4000-8000-000000000001', '2003-01-01T00:00:00Z'))
           v(id, key, assistant_id, expires_at)
     where k.key_hash = sha256(v.key::bytea);

    insert into callhq.chats (id, org_id, assistant_id, messages, output, prompt_count)
    select '40000000-0000-4000-8000-0000000000b1', k.org_id,
           '40000000-0000-4000-8000-000000000002',
           '[{"role": "user", "content": "b"}]',
           '[{"role": "assistant", "content": "secret of B"}]', 0
      from callhq.api_keys k where k.key_hash = sha256('cq_test_b');
});

sub id { sprintf '40000000-0000-4000-8000-0000000000%s', shift }

our ($ECHO, $B_ASST) = (id('01'), id('02'));
our ($B_CHAT, $C1, $C3) = (id('b1'), id('c1'), id('c3'));
our ($CONV, $B_CONV, $EXPIRED) = (id('11'), id('12'), id('13'));

# an OpenAI error, whole
sub oerr {
    my ($message, $type, $param, $code) = @_;
    my $q = sub { defined $_[0] ? '"' . quotemeta($_[0]) . '"' : 'null' };
    return qr/\A\{"error":\{"message":"\Q$message\E","type":"$type","param":@{[
        $q->($param) ]},"code":@{[ $q->($code) ]}\}\}\z/;
}

sub bad { oerr(shift, 'invalid_request_error', @_) }

run_tests();

is(psql(q{select count(*) from callhq.chats where metadata->>'t' = 'o400-nostore'}) + 0,
   0, "$0 - store: false recorded nothing");
is(psql(q{select count(*) from callhq.chats where metadata->>'t' = 'o400-one'}) + 0,
   1, "$0 - a stored response is a chat");

__DATA__

=== TEST 1: a string input, the assistant by name: 200 with the Response object
--- request
POST /v1/responses
{"model": "o400-echo", "input": "hello"}
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body eval
qr/\A\{"id":"resp_([0-9a-f-]{36})","object":"response","created_at":\d{10},"status":"completed","background":false,"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":"o400-echo","output":\[\{"id":"msg_\1","type":"message","status":"completed","role":"assistant","content":\[\{"type":"output_text","text":"\[\{\\"role\\":\\"system\\",\\"content\\":\\"SYS-400\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"hello\\"\}\]","annotations":\[\],"logprobs":\[\]\}\]\}\],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":\{"effort":null,"summary":null\},"store":true,"temperature":null,"text":\{"format":\{"type":"text"\}\},"tool_choice":"auto","tools":\[\],"top_p":null,"truncation":"disabled","user":null,"metadata":\{\},"conversation":null,"usage":\{"input_tokens":(\d+),"input_tokens_details":\{"cached_tokens":0\},"output_tokens":(\d+),"output_tokens_details":\{"reasoning_tokens":0\},"total_tokens":(\d+)\}\}\z(?(?{ $2 + $3 == $4 && $2 > 0 })|(*FAIL))/



=== TEST 2: the assistant's model and settings go upstream, not streamed
--- request
GET /_mock/requests?n=1
--- response_body eval
qr/\A\[\{"model":"echo","temperature":0.2,"max_tokens":64,"messages":\[\{"role":"system","content":"SYS-400"\},\{"role":"user","content":"hello"\}\],"stream":false\}\]\n\z/



=== TEST 3: by id, with instructions first; temperature, top_p, max_output_tokens, metadata upstream and echoed
--- request eval
["POST /v1/responses\n{\"model\": \"$main::ECHO\", \"input\": \"hi\", \"instructions\": \"Be brief.\", \"temperature\": 0.7, \"top_p\": 0.5, \"max_output_tokens\": 33, \"metadata\": {\"t\": \"o400-params\"}}",
 "GET /_mock/requests?n=1"]
--- error_code eval
[200, 200]
--- response_body eval
[qr/"status":"completed".*"instructions":"Be brief\.","max_output_tokens":33,"model":"\Q$main::ECHO\E".*"text":"\[\{\\"role\\":\\"system\\",\\"content\\":\\"Be brief\.\\"\},\{\\"role\\":\\"system\\",\\"content\\":\\"SYS-400\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"hi\\"\}\]".*"temperature":0\.7,.*"top_p":0\.5,.*"metadata":\{"t":"o400-params"\}/,
 qr/\A(?=.*"temperature":0\.7)(?=.*"top_p":0\.5)(?=.*"max_tokens":33[,}])(?=.*"metadata":\{"t":"o400-params"\})(?=.*"messages":\[\{"role":"system","content":"Be brief\."\},\{"role":"system","content":"SYS-400"\},\{"role":"user","content":"hi"\}\])/s]



=== TEST 4: message items with input_text parts, and a developer message
--- request eval
["POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": [{\"role\": \"developer\", \"content\": \"DEV\"}, {\"type\": \"message\", \"role\": \"user\", \"content\": [{\"type\": \"input_text\", \"text\": \"part \"}, {\"type\": \"input_text\", \"text\": \"two\"}]}]}",
 "GET /_mock/requests?n=1"]
--- error_code eval
[200, 200]
--- response_body eval
[qr/"status":"completed"/,
 qr/"messages":\[\{"role":"system","content":"SYS-400"\},\{"role":"system","content":"DEV"\},\{"role":"user","content":"part two"\}\]/]



=== TEST 5: the first response of a chain (kept as c1 by the next block's init)
--- request
POST /v1/responses
{"model": "o400-echo", "input": "one", "metadata": {"t": "o400-one"}}
--- error_code: 200
--- response_body eval
qr/"status":"completed"/



=== TEST 6: previous_response_id: its context and output, then the input; its instructions are not inherited
--- init
main::psql(qq{update callhq.chats set id = '$main::C1' where metadata->>'t' = 'o400-one'});
--- request eval
["POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"two\", \"previous_response_id\": \"resp_$main::C1\"}",
 "GET /_mock/requests?n=1"]
--- error_code eval
[200, 200]
--- response_body eval
[qr/"previous_response_id":"resp_\Q$main::C1\E"/,
 qr/"messages":\[\{"role":"system","content":"SYS-400"\},\{"role":"user","content":"one"\},\{"role":"assistant","content":"\[\{\\"role\\":\\"system\\",\\"content\\":\\"SYS-400\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"one\\"\}\]"\},\{"role":"user","content":"two"\}\]/]



=== TEST 7: store: false answers as usual and records nothing (checked after the blocks)
--- request
POST /v1/responses
{"model": "o400-echo", "input": "secret", "store": false, "metadata": {"t": "o400-nostore"}}
--- error_code: 200
--- response_body eval
qr/"status":"completed".*"store":false/



=== TEST 8: stream defaults to false; null values are absent
--- request
POST /v1/responses
{"model": "o400-echo", "input": "x", "stream": null, "temperature": null}
--- error_code: 200
--- response_headers
Content-Type: application/json



=== TEST 9: model: unknown, another org's, missing, not a string, a name two assistants share
--- request eval
["POST /v1/responses\n{\"model\": \"nope\", \"input\": \"x\"}",
 "POST /v1/responses\n{\"model\": \"o400-b\", \"input\": \"x\"}",
 "POST /v1/responses\n{\"model\": \"$main::B_ASST\", \"input\": \"x\"}",
 "POST /v1/responses\n{\"input\": \"x\"}",
 "POST /v1/responses\n{\"model\": 4, \"input\": \"x\"}",
 "POST /v1/responses\n{\"model\": \"o400-twin\", \"input\": \"x\"}"]
--- error_code eval
[404, 404, 404, 400, 400, 400]
--- response_body eval
[main::bad("The model 'nope' does not exist: it names no assistant.", 'model', 'model_not_found'),
 main::bad("The model 'o400-b' does not exist: it names no assistant.", 'model', 'model_not_found'),
 main::bad("The model '$main::B_ASST' does not exist: it names no assistant.", 'model', 'model_not_found'),
 main::bad("Missing required parameter: 'model'.", 'model', 'missing_required_parameter'),
 main::bad("Invalid type for 'model': expected an assistant's id or name.", 'model', 'invalid_type'),
 main::bad("The model 'o400-twin' names 2 assistants; use an assistant id.", 'model', 'invalid_value')]



=== TEST 10: input: missing, empty, an unsupported item, a bad part, a bad role
--- request eval
["POST /v1/responses\n{\"model\": \"o400-echo\"}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": []}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": [{\"type\": \"item_reference\", \"id\": \"msg_1\"}]}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": [{\"role\": \"user\", \"content\": [{\"type\": \"input_image\", \"image_url\": \"u\"}]}]}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": [{\"role\": \"robot\", \"content\": \"x\"}]}"]
--- error_code eval
[400, 400, 400, 400, 400]
--- response_body eval
[main::bad("Missing required parameter: 'input'.", 'input', 'missing_required_parameter'),
 main::bad("Invalid value for 'input': expected a string or a non-empty array of items.", 'input', 'invalid_value'),
 main::bad("Invalid value for 'input[0].type': only message, function_call and function_call_output items are supported.", 'input[0].type', 'invalid_value'),
 main::bad("Invalid value for 'input[0].content[0].type': only input_text and output_text parts are supported.", 'input[0].content[0].type', 'invalid_value'),
 main::bad("Invalid value for 'input[0].role': expected one of user, assistant, system, developer.", 'input[0].role', 'invalid_value')]



=== TEST 11: previous_response_id: not a resp_ id, unknown, another org's
--- request eval
["POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\", \"previous_response_id\": \"$main::C1\"}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\", \"previous_response_id\": \"resp_40000000-0000-4000-8000-0000000000ff\"}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\", \"previous_response_id\": \"resp_$main::B_CHAT\"}"]
--- error_code eval
[400, 404, 404]
--- response_body eval
[main::bad("Invalid 'previous_response_id': expected an id that begins with 'resp_'.", 'previous_response_id', 'invalid_value'),
 main::bad("Previous response with id 'resp_40000000-0000-4000-8000-0000000000ff' not found.", 'previous_response_id', 'previous_response_not_found'),
 main::bad("Previous response with id 'resp_$main::B_CHAT' not found.", 'previous_response_id', 'previous_response_not_found')]



=== TEST 12: unknown and unsupported parameters, wrong types, out of range
--- request eval
["POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\", \"frobnicate\": 1}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\", \"reasoning\": {}}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\", \"stream\": \"yes\"}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\", \"store\": 0}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\", \"temperature\": 3}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\", \"max_output_tokens\": 1.5}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\", \"instructions\": 1}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\", \"metadata\": {\"k\": 1}}"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400]
--- response_body eval
[main::bad("Unknown parameter: 'frobnicate'.", 'frobnicate', 'unknown_parameter'),
 main::bad("Parameter 'reasoning' is not supported yet.", 'reasoning', 'unsupported_parameter'),
 main::bad("stream must be a boolean", 'stream', undef),
 main::bad("Invalid type for 'store': expected a boolean.", 'store', 'invalid_type'),
 main::bad("Invalid 'temperature': 3 is out of range [0, 2].", 'temperature', 'invalid_value'),
 main::bad("Invalid type for 'max_output_tokens': expected an integer.", 'max_output_tokens', 'invalid_type'),
 main::bad("Invalid type for 'instructions': expected a string.", 'instructions', 'invalid_type'),
 main::bad("Invalid 'metadata': at most 16 string values, keys of at most 64 characters, values of at most 512.", 'metadata', 'invalid_value')]



=== TEST 13: the body: not JSON, not an object; wrong method, unknown path
--- request eval
["POST /v1/responses\n{\"model\": ",
 "POST /v1/responses\n[1]",
 "GET /v1/responses",
 "POST /v1/nope\n{}"]
--- error_code eval
[400, 400, 405, 404]
--- response_body eval
[qr/\A\{"error":\{"message":"body is not valid JSON: [^"]+","type":"invalid_request_error","param":null,"code":null\}\}\z/,
 main::bad("body must be a JSON object", undef, undef),
 main::bad("GET is not allowed on /v1/responses (allowed: POST)", undef, undef),
 main::bad("Cannot POST /v1/nope", undef, undef)]



=== TEST 14: no key, an unknown key: 401 as OpenAI's
--- more_headers eval
["Content-Type: application/json", "Authorization: Bearer nope\nContent-Type: application/json"]
--- request eval
["POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\"}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\"}"]
--- error_code eval
[401, 401]
--- response_body eval
[main::oerr('Authorization header with \"Bearer <api key>\" is required', 'invalid_request_error', undef, 'invalid_api_key'),
 qr/\A\{"error":\{"message":"[^"]+","type":"invalid_request_error","param":null,"code":"invalid_api_key"\}\}\z/]



=== TEST 15: /chat/responses on callhq_api is as it was: streamed by default, CallHQ errors
--- request eval
["POST /chat/responses\n{\"assistantId\": \"$main::ECHO\", \"input\": \"x\", \"metadata\": {\"t\": \"o400-old\"}}",
 "POST /chat/responses\n{\"model\": \"o400-echo\", \"input\": \"x\"}"]
--- error_code eval
[200, 400]
--- response_headers eval
["Content-Type: text/event-stream", "Content-Type: application/json"]
--- response_body eval
[qr/^event: response.created/, qr/\A\{"statusCode":400,"error":"Bad Request","message":"[^"]*model/]



=== TEST 16: GET /responses/{id}: the Response as the chat keeps it; another org's, a bad id: 404
--- init
main::psql(qq{update callhq.chats set id = '$main::C3' where metadata->>'t' = 'o400-params'});
--- request eval
["GET /v1/responses/resp_$main::C1",
 "GET /v1/responses/resp_$main::B_CHAT",
 "GET /v1/responses/$main::C1"]
--- error_code eval
[200, 404, 404]
--- response_body eval
[qr/\A(?=\{"id": "resp_\Q$main::C1\E")(?=.*"model": "o400-echo")(?=.*"object": "response")(?=.*"status": "completed")(?=.*"output": \[\{"id": "msg_\Q$main::C1\E", "role": "assistant", "type": "message", "status": "completed", "content": \[\{"text": "\[\{\\"role\\":\\"system\\",\\"content\\":\\"SYS-400\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"one\\"\}\]", "type": "output_text")(?=.*"metadata": \{"t": "o400-one"\})(?=.*"previous_response_id": null)(?=.*"total_tokens": [1-9])(?=.*"created_at": \d{10},)/s,
 main::bad("Response with id 'resp_$main::B_CHAT' not found.", undef, undef),
 main::bad("Response with id '$main::C1' not found.", undef, undef)]



=== TEST 17: DELETE /responses/{id}: deleted, then 404; another org's: 404
--- request eval
["DELETE /v1/responses/resp_$main::C3",
 "GET /v1/responses/resp_$main::C3",
 "DELETE /v1/responses/resp_$main::B_CHAT"]
--- error_code eval
[200, 404, 404]
--- response_body eval
["{\"id\": \"resp_$main::C3\", \"object\": \"response.deleted\", \"deleted\": true}",
 main::bad("Response with id 'resp_$main::C3' not found.", undef, undef),
 main::bad("Response with id 'resp_$main::B_CHAT' not found.", undef, undef)]



=== TEST 18: conversation (a session): each turn sees the ones before and is appended; instructions are not kept
--- request eval
["POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"first\", \"conversation\": \"conv_$main::CONV\", \"instructions\": \"ONCE\"}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"second\", \"conversation\": {\"id\": \"conv_$main::CONV\"}}",
 "GET /session/$main::CONV"]
--- error_code eval
[200, 200, 200]
--- response_body eval
[qr/"text":"\[\{\\"role\\":\\"system\\",\\"content\\":\\"ONCE\\"\},\{\\"role\\":\\"system\\",\\"content\\":\\"SYS-400\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"first\\"\}\]".*"conversation":\{"id":"conv_\Q$main::CONV\E"\}/,
 qr/"text":"\[\{\\"role\\":\\"system\\",\\"content\\":\\"SYS-400\\"\},\{\\"role\\":\\"user\\",\\"content\\":\\"first\\"\},\{\\"role\\":\\"assistant\\",\\"content\\":\\"\[\{\\\\\\"role\\\\\\":\\\\\\"system\\\\\\",\\\\\\"content\\\\\\":\\\\\\"ONCE\\\\\\"\}.*\{\\"role\\":\\"user\\",\\"content\\":\\"second\\"\}\]".*"conversation":\{"id":"conv_\Q$main::CONV\E"\}/,
 qr/"messages": \[\{"role":"user","content":"first"\}, \{"role":"assistant","content":"[^\n]*"\}, \{"role":"user","content":"second"\}, \{"role":"assistant","content":"[^\n]*"\}\]\}\z/]



=== TEST 19: conversation: another org's, unknown, expired, another assistant's model, with previous_response_id
--- request eval
["POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\", \"conversation\": \"conv_$main::B_CONV\"}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\", \"conversation\": \"conv_nope\"}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\", \"conversation\": \"conv_$main::EXPIRED\"}",
 "POST /v1/responses\n{\"model\": \"40000000-0000-4000-8000-000000000003\", \"input\": \"x\", \"conversation\": \"conv_$main::CONV\"}",
 "POST /v1/responses\n{\"model\": \"o400-echo\", \"input\": \"x\", \"conversation\": \"conv_$main::CONV\", \"previous_response_id\": \"resp_$main::C1\"}"]
--- error_code eval
[404, 404, 410, 400, 400]
--- response_body eval
[main::bad("Conversation with id 'conv_$main::B_CONV' not found.", 'conversation', undef),
 main::bad("Conversation with id 'conv_nope' not found.", 'conversation', undef),
 main::bad("Conversation with id 'conv_$main::EXPIRED' has expired; create a new conversation.", 'conversation', 'conversation_expired'),
 main::bad("The model '40000000-0000-4000-8000-000000000003' is not the assistant of conversation 'conv_$main::CONV'.", 'model', 'invalid_value'),
 main::bad("previous_response_id and conversation cannot be used together.", 'previous_response_id', 'invalid_value')]
