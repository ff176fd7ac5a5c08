# /assistant: create, list (a plain array, newest first), get, patch,
# delete, and every validation error, each naming the field at fault;
# server.secret shows as a hint ("whsec_…", see t/240-webhook-secrets.t).
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of callhq_defaults (t/CallHQ/Test.pm: Org
# A's key, a JSON body, nothing logged at [error] or worse).

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect);

callhq_defaults();

# Org A's assistants, ids 02000000-0000-4000-8000-0000000000NN:
#   01     asst-get, every field set
#   11-13  asst-list-1..3, created 2002-02-01..03 (13 updated 2002-02-10)
#   21-23  asst-patch, asst-patch-model, asst-patch-clear
#   31     asst-delete, with session 41 on it
psql(q{
    delete from callhq.sessions where id = '02000000-0000-4000-8000-000000000041';
    delete from callhq.assistants
     where id::text like '02000000-0000-4000-8000-0000000000__';

    insert into callhq.assistants (id, org_id, name, model, first_message, server,
                                   server_messages, metadata, created_at, updated_at)
    select v.id::uuid, k.org_id, v.name, v.model::jsonb, v.first_message,
           v.server::jsonb, v.server_messages::jsonb, v.metadata::jsonb,
           v.created_at::timestamptz, v.updated_at::timestamptz
      from callhq.api_keys k,
           (values
            ('02000000-0000-4000-8000-000000000001', 'asst-get',
             '{"provider": "openai", "model": "gpt-4o", "messages": [{"role": "system", "content": "You are terse."}], "temperature": 0.7, "maxTokens": 256}',
             'Hello!',
             '{"url": "https://hooks.example.com/callhq", "secret": "whsec_dGVzdA==", "headers": {"X-Env": "test"}, "timeoutSeconds": 5}',
             '["session.created", "chat.created"]', '{"team": "qa"}',
             '2002-01-01T00:00:00Z', '2002-01-01T00:00:00Z'),
            ('02000000-0000-4000-8000-000000000011', 'asst-list-1', null, null,
             null, null, null, '2002-02-01T00:00:00Z', '2002-02-01T00:00:00Z'),
            ('02000000-0000-4000-8000-000000000012', 'asst-list-2', null, null,
             null, null, null, '2002-02-02T00:00:00Z', '2002-02-02T00:00:00Z'),
            ('02000000-0000-4000-8000-000000000013', 'asst-list-3', null, null,
             null, null, null, '2002-02-03T00:00:00Z', '2002-02-10T00:00:00Z'),
            ('02000000-0000-4000-8000-000000000021', 'asst-patch',
             '{"provider": "openai", "model": "gpt-4o", "temperature": 0.3}', 'Hi',
             null, null, null, '2002-01-01T00:00:00Z', '2002-01-01T00:00:00Z'),
            ('02000000-0000-4000-8000-000000000022', 'asst-patch-model',
             '{"provider": "openai", "model": "gpt-4o", "temperature": 0.3}', null,
             null, null, null, '2002-01-01T00:00:00Z', '2002-01-01T00:00:00Z'),
            ('02000000-0000-4000-8000-000000000023', 'asst-patch-clear', null, 'Bye',
             null, null, '{"a": 1}', '2002-01-01T00:00:00Z', '2002-01-01T00:00:00Z'),
            ('02000000-0000-4000-8000-000000000031', 'asst-delete',
             '{"model": "gpt-4o"}', null, null, null, null,
             '2002-01-01T00:00:00Z', '2002-01-01T00:00:00Z'))
           v(id, name, model, first_message, server, server_messages, metadata,
             created_at, updated_at)
     where k.key_hash = sha256('cq_test_a');

    insert into callhq.sessions (id, org_id, assistant_id, name, expiration_seconds,
                                 expires_at, created_at, updated_at)
    select '02000000-0000-4000-8000-000000000041', k.org_id,
           '02000000-0000-4000-8000-000000000031', 'asst-delete-session', 86400,
           '2099-01-01T00:00:00Z', '2002-01-01T00:00:00Z', '2002-01-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');
});

sub id { sprintf '02000000-0000-4000-8000-0000000000%02d', shift }

our $GET_BODY = ::body(::obj(id => id(1), orgId => $::ORG_A, name => 'asst-get',
    model => { provider => 'openai', model => 'gpt-4o',
               messages => [{ role => 'system', content => 'You are terse.' }],
               temperature => \'0.7', maxTokens => \256 },
    firstMessage => 'Hello!',
    server => { url => 'https://hooks.example.com/callhq',
                secret => "whsec_\xe2\x80\xa6", headers => { 'X-Env' => 'test' },
                timeoutSeconds => \5 },
    serverMessages => ['session.created', 'chat.created'],
    metadata => { team => 'qa' },
    createdAt => '2002-01-01T00:00:00.000Z',
    updatedAt => '2002-01-01T00:00:00.000Z'));

our $DELETE_BODY = ::body(::obj(id => id(31), orgId => $::ORG_A,
    name => 'asst-delete', model => { model => 'gpt-4o' },
    createdAt => '2002-01-01T00:00:00.000Z',
    updatedAt => '2002-01-01T00:00:00.000Z'));

# a timestamp of now, not the fixture's 2002
our $NEW_TS = qr/"20(?!02-)\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"/;

run_tests();

__DATA__

=== TEST 1: POST /assistant creates it: 201 with id, orgId, every field, createdAt = updatedAt
--- request
POST /assistant
{"name": "asst-created", "model": {"provider": "openai", "model": "gpt-4o-mini",
 "messages": [{"role": "system", "content": "Be brief."}], "temperature": 0.5,
 "maxTokens": 100}, "firstMessage": "How can I help?",
 "server": {"url": "http://127.0.0.1:9/hook", "secret": "whsec_c2VjcmV0",
            "headers": {"X-Token": "t0k"}, "timeoutSeconds": 20},
 "serverMessages": ["session.created", "session.deleted"],
 "metadata": {"owner": "qa", "tags": ["a", "b"]}}
--- error_code: 201
--- response_headers
Content-Type: application/json
--- response_body eval
::all_of(
  ::body(::obj(id => $::UUID, orgId => $::ORG_A, name => 'asst-created',
    model => { provider => 'openai', model => 'gpt-4o-mini',
               messages => [{ role => 'system', content => 'Be brief.' }],
               temperature => \'0.5', maxTokens => \100 },
    firstMessage => 'How can I help?',
    server => { url => 'http://127.0.0.1:9/hook', secret => "whsec_\xe2\x80\xa6",
                headers => { 'X-Token' => 't0k' }, timeoutSeconds => \20 },
    serverMessages => ['session.created', 'session.deleted'],
    metadata => { owner => 'qa', tags => ['a', 'b'] },
    createdAt => $main::NEW_TS, updatedAt => $main::NEW_TS)),
  qr/"createdAt": (?<c>"[^"]+"), "updatedAt": \k<c>/)



=== TEST 2: POST with a name only: absent members are left out of the answer
--- request
POST /assistant
{"name": "asst-minimal"}
--- error_code: 201
--- response_body eval
::body(::obj(id => $::UUID, orgId => $::ORG_A, name => 'asst-minimal',
             createdAt => $::TS, updatedAt => $::TS))



=== TEST 3: a name of exactly 40 characters (not bytes) is accepted
--- request
POST /assistant
{"name": "éééééééééééééééééééééééééééééééééééééééé"}
--- error_code: 201
--- response_body eval
::body(::obj(id => $::UUID, orgId => $::ORG_A, name => "\xc3\xa9" x 40,
             createdAt => $::TS, updatedAt => $::TS))



=== TEST 4: temperature 0 and 2 are the bounds, both accepted
--- request eval
["POST /assistant\n{\"model\": {\"model\": \"m\", \"temperature\": 0}}",
 "POST /assistant\n{\"model\": {\"model\": \"m\", \"temperature\": 2}}"]
--- error_code eval
[201, 201]
--- response_body eval
[::body(::obj(id => $::UUID, orgId => $::ORG_A,
              model => { model => 'm', temperature => \0 },
              createdAt => $::TS, updatedAt => $::TS)),
 ::body(::obj(id => $::UUID, orgId => $::ORG_A,
              model => { model => 'm', temperature => \2 },
              createdAt => $::TS, updatedAt => $::TS))]



=== TEST 5: GET /assistant/{id} answers every stored field
--- request
GET /assistant/02000000-0000-4000-8000-000000000001
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body eval
$main::GET_BODY



=== TEST 6: GET /assistant is a plain array, newest first
--- request
GET /assistant?createdAtGe=2002-02-01&createdAtLt=2002-03-01
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body eval
::array_body(main::id(13), main::id(12), main::id(11))



=== TEST 7: list rows carry every field
--- request
GET /assistant?createdAtGe=2002-02-03&createdAtLt=2002-02-04
--- response_body eval
::body(::arr(::obj(id => main::id(13), orgId => $::ORG_A, name => 'asst-list-3',
                   createdAt => '2002-02-03T00:00:00.000Z',
                   updatedAt => '2002-02-10T00:00:00.000Z')))



=== TEST 8: limit keeps the newest
--- request
GET /assistant?createdAtGe=2002-02-01&createdAtLt=2002-03-01&limit=2
--- response_body eval
::array_body(main::id(13), main::id(12))



=== TEST 9: createdAtGt excludes the instant given, createdAtGe includes it
--- request eval
["GET /assistant?createdAtGt=2002-02-01T00:00:00.000Z&createdAtLt=2002-03-01",
 "GET /assistant?createdAtGe=2002-02-01T00:00:00.000Z&createdAtLt=2002-03-01"]
--- error_code eval
[200, 200]
--- response_body eval
[::array_body(main::id(13), main::id(12)),
 ::array_body(main::id(13), main::id(12), main::id(11))]



=== TEST 10: createdAtLt excludes the instant given, createdAtLe includes it
--- request eval
["GET /assistant?createdAtGe=2002-02-01&createdAtLt=2002-02-02T00:00:00Z",
 "GET /assistant?createdAtGe=2002-02-01&createdAtLe=2002-02-02T00:00:00Z"]
--- error_code eval
[200, 200]
--- response_body eval
[::array_body(main::id(11)),
 ::array_body(main::id(12), main::id(11))]



=== TEST 11: updatedAtGt / updatedAtGe / updatedAtLt / updatedAtLe
--- request eval
["GET /assistant?createdAtGe=2002-02-01&createdAtLt=2002-03-01&updatedAtGt=2002-02-02T00:00:00Z",
 "GET /assistant?createdAtGe=2002-02-01&createdAtLt=2002-03-01&updatedAtGe=2002-02-02T00:00:00Z",
 "GET /assistant?createdAtGe=2002-02-01&createdAtLt=2002-03-01&updatedAtLt=2002-02-02T00:00:00Z",
 "GET /assistant?createdAtGe=2002-02-01&createdAtLt=2002-03-01&updatedAtLe=2002-02-02T00:00:00Z"]
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
[::array_body(main::id(13)),
 ::array_body(main::id(13), main::id(12)),
 ::array_body(main::id(11)),
 ::array_body(main::id(12), main::id(11))]



=== TEST 12: a timestamp with an offset, encoded or with its "+" decoded to a blank
--- request eval
["GET /assistant?createdAtGe=2002-02-02T01:00:00%2B01:00&createdAtLt=2002-03-01",
 "GET /assistant?createdAtGe=2002-02-02T01:00:00+01:00&createdAtLt=2002-03-01"]
--- error_code eval
[200, 200]
--- response_body eval
[::array_body(main::id(13), main::id(12)),
 ::array_body(main::id(13), main::id(12))]



=== TEST 13: invalid limit: 400 naming it
--- request eval
["GET /assistant?limit=0", "GET /assistant?limit=1001", "GET /assistant?limit=ten"]
--- error_code eval
[400, 400, 400]
--- response_body eval
[::err(400, 'limit must be an integer between 1 and 1000'),
 ::err(400, 'limit must be an integer between 1 and 1000'),
 ::err(400, 'limit must be an integer between 1 and 1000')]



=== TEST 14: invalid timestamps: 400 naming the parameter
--- request eval
["GET /assistant?createdAtGt=yesterday", "GET /assistant?updatedAtLe=2002-13-45"]
--- error_code eval
[400, 400]
--- response_body eval
[::err(400, 'createdAtGt must be an ISO 8601 timestamp'),
 ::err(400, 'updatedAtLe must be an ISO 8601 timestamp')]



=== TEST 15: an unknown query parameter: 400 (the assistant list has no page)
--- request eval
["GET /assistant?page=2", "GET /assistant?name=asst-get"]
--- error_code eval
[400, 400]
--- response_body eval
[::err(400, 'property page should not exist'),
 ::err(400, 'property name should not exist')]



=== TEST 16: PATCH changes only the name; model and firstMessage untouched, updatedAt moves
--- request
PATCH /assistant/02000000-0000-4000-8000-000000000021
{"name": "asst-patched"}
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body eval
::body(::obj(id => main::id(21), orgId => $::ORG_A, name => 'asst-patched',
             model => { provider => 'openai', model => 'gpt-4o',
                        temperature => \'0.3' },
             firstMessage => 'Hi', createdAt => '2002-01-01T00:00:00.000Z',
             updatedAt => $main::NEW_TS))



=== TEST 17: ... and the change is stored
--- request
GET /assistant/02000000-0000-4000-8000-000000000021
--- response_body eval
::body(::obj(id => main::id(21), orgId => $::ORG_A, name => 'asst-patched',
             model => { provider => 'openai', model => 'gpt-4o',
                        temperature => \'0.3' },
             firstMessage => 'Hi', createdAt => '2002-01-01T00:00:00.000Z',
             updatedAt => $main::NEW_TS))



=== TEST 18: PATCH model replaces the model whole (members not given are gone)
--- request
PATCH /assistant/02000000-0000-4000-8000-000000000022
{"model": {"model": "gpt-4o-mini"}}
--- error_code: 200
--- response_body eval
::body(::obj(id => main::id(22), orgId => $::ORG_A, name => 'asst-patch-model',
             model => { model => 'gpt-4o-mini' },
             createdAt => '2002-01-01T00:00:00.000Z', updatedAt => $main::NEW_TS))



=== TEST 19: PATCH with null clears a member
--- request
PATCH /assistant/02000000-0000-4000-8000-000000000023
{"firstMessage": null, "metadata": null}
--- error_code: 200
--- response_body eval
::body(::obj(id => main::id(23), orgId => $::ORG_A, name => 'asst-patch-clear',
             createdAt => '2002-01-01T00:00:00.000Z', updatedAt => $main::NEW_TS))



=== TEST 20: an invalid PATCH answers 400 and changes nothing
--- request eval
["PATCH /assistant/02000000-0000-4000-8000-000000000001\n{\"name\": \"renamed\", \"model\": {\"model\": \"m\", \"temperature\": 3}}",
 "GET /assistant/02000000-0000-4000-8000-000000000001"]
--- error_code eval
[400, 200]
--- response_body eval
[::err(400, 'model.temperature must be a number between 0 and 2'),
 $main::GET_BODY]



=== TEST 21: DELETE answers 200 with the deleted assistant
--- request
DELETE /assistant/02000000-0000-4000-8000-000000000031
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body eval
$main::DELETE_BODY



=== TEST 22: ... after which it is gone: GET, PATCH and DELETE answer 404
--- request eval
["GET /assistant/02000000-0000-4000-8000-000000000031",
 "PATCH /assistant/02000000-0000-4000-8000-000000000031\n{\"name\": \"back\"}",
 "DELETE /assistant/02000000-0000-4000-8000-000000000031"]
--- error_code eval
[404, 404, 404]
--- response_body eval
[::err(404, 'Assistant 02000000-0000-4000-8000-000000000031 not found'),
 ::err(404, 'Assistant 02000000-0000-4000-8000-000000000031 not found'),
 ::err(404, 'Assistant 02000000-0000-4000-8000-000000000031 not found')]



=== TEST 23: ... and its session stays, without assistantId
--- request
GET /session/02000000-0000-4000-8000-000000000041
--- error_code: 200
--- response_body eval
::session_body({ id => main::id(41), orgId => $::ORG_A,
                 name => 'asst-delete-session', status => 'active',
                 expirationSeconds => \86400,
                 expiresAt => '2099-01-01T00:00:00.000Z',
                 createdAt => '2002-01-01T00:00:00.000Z',
                 updatedAt => '2002-01-01T00:00:00.000Z' })



=== TEST 24: an unknown id: 404 naming it, for GET, PATCH and DELETE
--- request eval
["GET /assistant/02000000-0000-4000-8000-0000000000ff",
 "PATCH /assistant/02000000-0000-4000-8000-0000000000ff\n{\"name\": \"x\"}",
 "DELETE /assistant/02000000-0000-4000-8000-0000000000ff"]
--- error_code eval
[404, 404, 404]
--- response_body eval
[::err(404, 'Assistant 02000000-0000-4000-8000-0000000000ff not found'),
 ::err(404, 'Assistant 02000000-0000-4000-8000-0000000000ff not found'),
 ::err(404, 'Assistant 02000000-0000-4000-8000-0000000000ff not found')]



=== TEST 25: an id that is not a UUID: 400, for GET, PATCH and DELETE
--- request eval
["GET /assistant/not-a-uuid",
 "PATCH /assistant/02000000-0000-4000-8000-00000000001\n{\"name\": \"x\"}",
 "DELETE /assistant/02000000-0000-4000-8000-0000000000gg"]
--- error_code eval
[400, 400, 400]
--- response_body eval
[::err(400, 'Assistant id "not-a-uuid" must be a UUID'),
 ::err(400, 'Assistant id "02000000-0000-4000-8000-00000000001" must be a UUID'),
 ::err(400, 'Assistant id "02000000-0000-4000-8000-0000000000gg" must be a UUID')]



=== TEST 26: item routes take no query parameters
--- request
GET /assistant/02000000-0000-4000-8000-000000000001?expand=1
--- error_code: 400
--- response_body eval
::err(400, 'property expand should not exist')



=== TEST 27: name over 40 characters: 400
--- request
POST /assistant
{"name": "12345678901234567890123456789012345678901"}
--- error_code: 400
--- response_headers
Content-Type: application/json
--- response_body eval
::err(400, 'name must be at most 40 characters')



=== TEST 28: wrong types: 400 naming the field
--- request eval
["POST /assistant\n{\"name\": 5}",
 "POST /assistant\n{\"model\": \"gpt-4o\"}",
 "POST /assistant\n{\"firstMessage\": [\"hi\"]}",
 "POST /assistant\n{\"metadata\": [1]}",
 "POST /assistant\n{\"server\": \"https://x\"}",
 "POST /assistant\n{\"serverMessages\": \"session.created\"}",
 "POST /assistant\n{\"model\": {\"model\": \"m\", \"messages\": \"hi\"}}",
 "POST /assistant\n{\"model\": {\"model\": 4}}"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400]
--- response_body eval
[::err(400, 'name must be a string'),
 ::err(400, 'model must be an object'),
 ::err(400, 'firstMessage must be a string'),
 ::err(400, 'metadata must be an object'),
 ::err(400, 'server must be an object'),
 ::err(400, 'serverMessages must be an array'),
 ::err(400, 'model.messages must be an array'),
 ::err(400, 'model.model must be a string')]



=== TEST 29: model.model is required
--- request
POST /assistant
{"model": {"provider": "openai"}}
--- error_code: 400
--- response_body eval
::err(400, 'model.model is required')



=== TEST 30: temperature out of range or not a number: 400
--- request eval
["POST /assistant\n{\"model\": {\"model\": \"m\", \"temperature\": 2.01}}",
 "POST /assistant\n{\"model\": {\"model\": \"m\", \"temperature\": -0.1}}",
 "POST /assistant\n{\"model\": {\"model\": \"m\", \"temperature\": \"1\"}}"]
--- error_code eval
[400, 400, 400]
--- response_body eval
[::err(400, 'model.temperature must be a number between 0 and 2'),
 ::err(400, 'model.temperature must be a number between 0 and 2'),
 ::err(400, 'model.temperature must be a number between 0 and 2')]



=== TEST 31: maxTokens must be a whole number from 1
--- request eval
["POST /assistant\n{\"model\": {\"model\": \"m\", \"maxTokens\": 0}}",
 "POST /assistant\n{\"model\": {\"model\": \"m\", \"maxTokens\": 1.5}}"]
--- error_code eval
[400, 400]
--- response_body eval
[::err(400, 'model.maxTokens must be an integer between 1 and 1000000'),
 ::err(400, 'model.maxTokens must be an integer between 1 and 1000000')]



=== TEST 32: model.messages: role and content checked, the index named
--- request eval
["POST /assistant\n{\"model\": {\"model\": \"m\", \"messages\": [{\"role\": \"system\", \"content\": \"a\"}, {\"role\": \"robot\", \"content\": \"b\"}]}}",
 "POST /assistant\n{\"model\": {\"model\": \"m\", \"messages\": [{\"role\": \"system\", \"content\": 5}]}}"]
--- error_code eval
[400, 400]
--- response_body eval
[::err(400, 'model.messages[1].role must be one of system, user, assistant, tool, developer'),
 ::err(400, 'model.messages[0].content must be a string')]



=== TEST 33: a serverMessages value that is not an event name: 400 with its index
--- request
POST /assistant
{"serverMessages": ["session.created", "session.exploded"]}
--- error_code: 400
--- response_body eval
::err(400, 'serverMessages[1] must be one of session.created, session.updated, session.deleted, chat.created, chat.deleted')



=== TEST 34: an unknown field: property X should not exist (nested ones with their path)
--- request eval
["POST /assistant\n{\"name\": \"x\", \"colour\": \"red\"}",
 "POST /assistant\n{\"model\": {\"model\": \"m\", \"topP\": 1}}",
 "POST /assistant\n{\"server\": {\"url\": \"https://x.example\", \"retries\": 3}}"]
--- error_code eval
[400, 400, 400]
--- response_body eval
[::err(400, 'property colour should not exist'),
 ::err(400, 'property model.topP should not exist'),
 ::err(400, 'property server.retries should not exist')]



=== TEST 35: server.url must be an http(s) URL, and is required with server
--- request eval
["POST /assistant\n{\"server\": {\"url\": \"ftp://files.example/hook\"}}",
 "POST /assistant\n{\"server\": {\"url\": \"https://a b.example/\"}}",
 "POST /assistant\n{\"server\": {\"secret\": \"whsec_x\"}}"]
--- error_code eval
[400, 400, 400]
--- response_body eval
[::err(400, 'server.url must be an http:// or https:// URL'),
 ::err(400, 'server.url must be an http:// or https:// URL'),
 ::err(400, 'server.url is required')]



=== TEST 36: server.headers and server.timeoutSeconds are checked
--- request eval
["POST /assistant\n{\"server\": {\"url\": \"https://x.example\", \"headers\": {\"X-A\": \"a\\nInjected: 1\"}}}",
 "POST /assistant\n{\"server\": {\"url\": \"https://x.example\", \"headers\": {\"Bad Header\": \"a\"}}}",
 "POST /assistant\n{\"server\": {\"url\": \"https://x.example\", \"timeoutSeconds\": 301}}"]
--- error_code eval
[400, 400, 400]
--- response_body eval
[::err(400, 'server.headers.X-A must not contain control characters'),
 ::err(400, 'server.headers.Bad Header is not a valid header name'),
 ::err(400, 'server.timeoutSeconds must be an integer between 1 and 300')]



=== TEST 37: a body that is not JSON, or not an object: 400
--- request eval
["POST /assistant\n{\"name\": ", "POST /assistant\n[{\"name\": \"x\"}]"]
--- error_code eval
[400, 400]
--- response_body eval
[qr/\A\{"statusCode":400,"error":"Bad Request","message":"body is not valid JSON: [^"]+"\}\z/,
 ::err(400, 'body must be a JSON object')]



=== TEST 38: a body that is not JSON by its Content-Type: 415
--- more_headers
Authorization: Bearer cq_test_a
Content-Type: text/plain
--- request
POST /assistant
{"name": "asst-text"}
--- error_code: 415
--- response_headers
Content-Type: application/json
--- response_body eval
::err(415, 'Content-Type must be application/json, not "text/plain"')



=== TEST 39: a body over callhq_max_body_size: 413
--- config
location / {
    callhq_max_body_size 64;
    callhq_api;
}
--- request
POST /assistant
{"name": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}
--- error_code: 413
--- response_headers
Content-Type: application/json
--- response_body eval
::err(413, 'request body is 92 bytes, the limit is 64')



=== TEST 40: a method the route does not take: 405 with Allow
--- request eval
["PUT /assistant\n{}", "POST /assistant/02000000-0000-4000-8000-000000000001\n{}"]
--- error_code eval
[405, 405]
--- response_headers eval
["Allow: GET, POST", "Allow: GET, PATCH, DELETE"]
--- response_body eval
[::err(405, 'PUT is not allowed on /assistant (allowed: GET, POST)'),
 ::err(405, 'POST is not allowed on /assistant/02000000-0000-4000-8000-000000000001 (allowed: GET, PATCH, DELETE)')]
