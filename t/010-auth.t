# Authentication and tenancy: every call needs "Authorization: Bearer <key>";
# an org never sees, changes or learns about another org's resources (its
# ids answer 404, exactly like ids that do not exist).
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of callhq_defaults (t/CallHQ/Test.pm: Org
# A's key, a JSON body, nothing logged at [error] or worse).

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect);

callhq_defaults();

# Org A owns an assistant and a session (with one message); Org B owns an
# assistant of its own. Ids 01000000-0000-4000-8000-0000000000NN.
psql(q{
    delete from callhq.sessions
     where id in ('01000000-0000-4000-8000-000000000011');
    delete from callhq.assistants
     where id in ('01000000-0000-4000-8000-000000000001',
                  '01000000-0000-4000-8000-000000000002');
    delete from callhq.sessions where name = 'auth-unauthorized';

    insert into callhq.assistants (id, org_id, name, model, created_at, updated_at)
    select '01000000-0000-4000-8000-000000000001', k.org_id, 'auth-a-assistant',
           '{"model": "gpt-4o"}', '2001-01-01T00:00:00Z', '2001-01-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');

    insert into callhq.assistants (id, org_id, name, created_at, updated_at)
    select '01000000-0000-4000-8000-000000000002', k.org_id, 'auth-b-assistant',
           '2001-01-02T00:00:00Z', '2001-01-02T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_b');

    insert into callhq.sessions (id, org_id, assistant_id, name, expiration_seconds,
                                 expires_at, next_seq, created_at, updated_at)
    select '01000000-0000-4000-8000-000000000011', k.org_id,
           '01000000-0000-4000-8000-000000000001', 'auth-a-session', 86400,
           '2099-01-01T00:00:00Z', 2, '2001-01-01T00:00:00Z', '2001-01-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');

    select callhq.messages_insert('01000000-0000-4000-8000-000000000011',
                                  '[{"role": "user", "content": "secret of A"}]', 1);
});

our $A_ASST = '01000000-0000-4000-8000-000000000001';
our $B_ASST = '01000000-0000-4000-8000-000000000002';
our $A_SESS = '01000000-0000-4000-8000-000000000011';
our $MISSING = '01000000-0000-4000-8000-0000000000ff';

# Org A's fixtures as Org A reads them.
our $A_ASST_BODY = ::body(::obj(id => $A_ASST, orgId => $::ORG_A,
    name => 'auth-a-assistant', model => { model => 'gpt-4o' },
    createdAt => '2001-01-01T00:00:00.000Z',
    updatedAt => '2001-01-01T00:00:00.000Z'));

our $A_SESS_BODY = ::session_body({ id => $A_SESS, orgId => $::ORG_A,
    name => 'auth-a-session', status => 'active', assistantId => $A_ASST,
    expirationSeconds => \86400, expiresAt => '2099-01-01T00:00:00.000Z',
    createdAt => '2001-01-01T00:00:00.000Z',
    updatedAt => '2001-01-01T00:00:00.000Z' }, [user => 'secret of A']);

run_tests();

__DATA__

=== TEST 1: no Authorization header: 401 with the JSON error shape
--- more_headers
Content-Type: application/json
--- request
GET /assistant
--- error_code: 401
--- response_headers
Content-Type: application/json
--- response_body chomp
{"statusCode":401,"error":"Unauthorized","message":"Authorization header with \"Bearer <api key>\" is required"}



=== TEST 2: another scheme than Bearer: 401
--- more_headers
Authorization: Basic Y3FfdGVzdF9hOg==
--- request
GET /assistant
--- error_code: 401
--- response_headers
Content-Type: application/json
--- response_body chomp
{"statusCode":401,"error":"Unauthorized","message":"Authorization must be \"Bearer <api key>\""}



=== TEST 3: the bare key without a scheme: 401
--- more_headers
Authorization: cq_test_a
--- request
GET /session
--- error_code: 401
--- response_body chomp
{"statusCode":401,"error":"Unauthorized","message":"Authorization must be \"Bearer <api key>\""}



=== TEST 4: Bearer with an empty key: 401
nginx drops the trailing blank of "Bearer ", so the module sees "Bearer":
either message of the module's is right, what matters is the 401.
--- more_headers
Authorization: Bearer 
--- request
GET /assistant
--- error_code: 401
--- response_headers
Content-Type: application/json
--- response_body_like eval
qr/\A\{"statusCode":401,"error":"Unauthorized","message":"(?:API key is empty|Authorization must be \\"Bearer <api key>\\")"\}\z/



=== TEST 5: a 401 is answered once, and the connection goes on to the next request
Two requests on one connection: the second is read only when the first is
completely done, so a handler that goes on after its 401 shows here.
--- pipelined_requests eval
["GET /assistant", "GET /session/01000000-0000-4000-8000-000000000011"]
--- more_headers eval
["Content-Type: application/json", "Authorization: Basic Y3FfdGVzdF9hOg=="]
--- error_code eval
[401, 401]
--- response_body eval
[::err(401, 'Authorization header with "Bearer <api key>" is required'),
 ::err(401, 'Authorization must be "Bearer <api key>"')]



=== TEST 6: an unknown key: 401 Invalid API key
--- more_headers
Authorization: Bearer cq_test_nobody
--- request
GET /assistant
--- error_code: 401
--- response_headers
Content-Type: application/json
--- response_body chomp
{"statusCode":401,"error":"Unauthorized","message":"Invalid API key"}



=== TEST 7: keys are compared exactly (case matters)
--- more_headers
Authorization: Bearer CQ_TEST_A
--- request
GET /assistant
--- error_code: 401
--- response_body chomp
{"statusCode":401,"error":"Unauthorized","message":"Invalid API key"}



=== TEST 8: an unknown key answers 401 before the path id is looked at
--- more_headers
Authorization: Bearer cq_test_nobody
--- request
GET /session/not-a-uuid
--- error_code: 401
--- response_body chomp
{"statusCode":401,"error":"Unauthorized","message":"Invalid API key"}



=== TEST 9: an unknown key cannot write: POST /session answers 401
--- more_headers
Authorization: Bearer cq_test_nobody
Content-Type: application/json
--- request
POST /session
{"name": "auth-unauthorized"}
--- error_code: 401
--- response_body chomp
{"statusCode":401,"error":"Unauthorized","message":"Invalid API key"}



=== TEST 10: ... and created nothing
--- request
GET /session?name=auth-unauthorized
--- response_body eval
::list_body([])



=== TEST 11: the scheme is case-insensitive, blanks around the key are ignored
--- more_headers
Authorization: bearer   cq_test_a
--- request
GET /assistant/01000000-0000-4000-8000-000000000001
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body eval
$main::A_ASST_BODY



=== TEST 12: Org A reads its own assistant and session
--- request eval
["GET /assistant/$main::A_ASST", "GET /session/$main::A_SESS"]
--- error_code eval
[200, 200]
--- response_body eval
[$main::A_ASST_BODY, $main::A_SESS_BODY]



=== TEST 13: Org B gets Org A's assistant as 404, exactly like a missing id
--- more_headers eval
$main::AUTH_B
--- request eval
["GET /assistant/$main::A_ASST", "GET /assistant/$main::MISSING"]
--- error_code eval
[404, 404]
--- response_body eval
[::err(404, "Assistant $main::A_ASST not found"),
 ::err(404, "Assistant $main::MISSING not found")]



=== TEST 14: Org B cannot PATCH Org A's assistant; it stays as it was
--- more_headers eval
[$main::AUTH_B, $main::AUTH_B, $main::AUTH_A]
--- request eval
["PATCH /assistant/$main::A_ASST\n{\"name\": \"taken by B\"}",
 "PATCH /assistant/$main::MISSING\n{\"name\": \"taken by B\"}",
 "GET /assistant/$main::A_ASST"]
--- error_code eval
[404, 404, 200]
--- response_body eval
[::err(404, "Assistant $main::A_ASST not found"),
 ::err(404, "Assistant $main::MISSING not found"),
 $main::A_ASST_BODY]



=== TEST 15: Org B cannot DELETE Org A's assistant; it is still there
--- more_headers eval
[$main::AUTH_B, $main::AUTH_B, $main::AUTH_A]
--- request eval
["DELETE /assistant/$main::A_ASST", "DELETE /assistant/$main::MISSING",
 "GET /assistant/$main::A_ASST"]
--- error_code eval
[404, 404, 200]
--- response_body eval
[::err(404, "Assistant $main::A_ASST not found"),
 ::err(404, "Assistant $main::MISSING not found"),
 $main::A_ASST_BODY]



=== TEST 16: Org B's assistant list holds its own assistant, none of Org A's
--- more_headers eval
$main::AUTH_B
--- request
GET /assistant?createdAtGe=2001-01-01&createdAtLt=2001-02-01
--- response_body eval
::array_body($main::B_ASST)



=== TEST 17: Org A's assistant list does not hold Org B's
--- request
GET /assistant?createdAtGe=2001-01-01&createdAtLt=2001-02-01
--- response_body eval
::array_body($main::A_ASST)



=== TEST 18: Org B gets Org A's session as 404, exactly like a missing id
--- more_headers eval
$main::AUTH_B
--- request eval
["GET /session/$main::A_SESS", "GET /session/$main::MISSING"]
--- error_code eval
[404, 404]
--- response_body eval
[::err(404, "Session $main::A_SESS not found"),
 ::err(404, "Session $main::MISSING not found")]



=== TEST 19: Org B cannot PATCH Org A's session; it stays as it was
--- more_headers eval
[$main::AUTH_B, $main::AUTH_B, $main::AUTH_A]
--- request eval
["PATCH /session/$main::A_SESS\n{\"name\": \"taken by B\", \"messages\": []}",
 "PATCH /session/$main::MISSING\n{\"name\": \"taken by B\", \"messages\": []}",
 "GET /session/$main::A_SESS"]
--- error_code eval
[404, 404, 200]
--- response_body eval
[::err(404, "Session $main::A_SESS not found"),
 ::err(404, "Session $main::MISSING not found"),
 $main::A_SESS_BODY]



=== TEST 20: Org B cannot DELETE Org A's session; it is still there
--- more_headers eval
[$main::AUTH_B, $main::AUTH_B, $main::AUTH_A]
--- request eval
["DELETE /session/$main::A_SESS", "DELETE /session/$main::MISSING",
 "GET /session/$main::A_SESS"]
--- error_code eval
[404, 404, 200]
--- response_body eval
[::err(404, "Session $main::A_SESS not found"),
 ::err(404, "Session $main::MISSING not found"),
 $main::A_SESS_BODY]



=== TEST 21: Org B's session list shows none of Org A's sessions, whatever the filter
--- more_headers eval
$main::AUTH_B
--- request eval
["GET /session?id=$main::A_SESS",
 "GET /session?idAny=$main::A_SESS",
 "GET /session?name=auth-a-session",
 "GET /session?assistantId=$main::A_ASST",
 "GET /session?createdAtGe=2001-01-01&createdAtLt=2001-02-01"]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_body eval
[::list_body([]), ::list_body([]), ::list_body([]), ::list_body([]),
 ::list_body([])]



=== TEST 22: Org A's session list does show it (the filters above are right)
--- request eval
["GET /session?id=$main::A_SESS",
 "GET /session?name=auth-a-session",
 "GET /session?assistantId=$main::A_ASST"]
--- error_code eval
[200, 200, 200]
--- response_body eval
[::list_body([$main::A_SESS]), ::list_body([$main::A_SESS]),
 ::list_body([$main::A_SESS])]



=== TEST 23: Org B cannot start a session on Org A's assistant
--- more_headers eval
$main::AUTH_B
--- request eval
"POST /session\n{\"name\": \"auth-b-on-a\", \"assistantId\": \"$main::A_ASST\"}"
--- error_code: 404
--- response_body eval
::err(404, "Assistant $main::A_ASST not found")
