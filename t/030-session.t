# /session: create (defaults, the callhq_session_expiration directive,
# bounds, seed history, inline assistant, customer and metadata), get with
# the history, patch, delete, expiry, and the validation errors.
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of callhq_defaults (t/CallHQ/Test.pm: Org
# A's key, a JSON body, nothing logged at [error] or worse).

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect);

callhq_defaults();

# Ids 03000000-0000-4000-8000-0000000000NN; every session name starts
# with "s030-" (those created by POST too, so that a re-run starts clean).
#   01     Org A's assistant s030-asst       02  Org B's assistant
#   11     s030-get: customer, metadata, three messages
#   21-26  sessions to PATCH (name, status, expiry, messages, invalid, customer)
#   31     s030-delete, two messages
#   41     s030-expired: stored active, expired in 2003
#   42     s030-unexpired: active until 2099
psql(q{
    delete from callhq.sessions where name like 's030-%';
    delete from callhq.sessions
     where id::text like '03000000-0000-4000-8000-0000000000__';
    delete from callhq.assistants
     where id::text like '03000000-0000-4000-8000-0000000000__';

    insert into callhq.assistants (id, org_id, name, model, created_at, updated_at)
    select '03000000-0000-4000-8000-000000000001', k.org_id, 's030-asst',
           '{"model": "gpt-4o"}', '2003-01-01T00:00:00Z', '2003-01-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_a');

    insert into callhq.assistants (id, org_id, name, created_at, updated_at)
    select '03000000-0000-4000-8000-000000000002', k.org_id, 's030-b-asst',
           '2003-01-01T00:00:00Z', '2003-01-01T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_b');

    insert into callhq.sessions (id, org_id, assistant_id, name, status,
                                 expiration_seconds, expires_at, customer, metadata,
                                 created_at, updated_at)
    select v.id::uuid, k.org_id, v.assistant_id::uuid, v.name, v.status,
           v.expiration_seconds, v.expires_at::timestamptz, v.customer::jsonb,
           v.metadata::jsonb, '2003-03-01T00:00:00Z', '2003-03-01T00:00:00Z'
      from callhq.api_keys k,
           (values
            ('03000000-0000-4000-8000-000000000011', '03000000-0000-4000-8000-000000000001',
             's030-get', 'active', 86400, '2099-01-01T00:00:00Z',
             '{"number": "+4930111", "name": "Ada"}', '{"crm": {"id": 7}}'),
            ('03000000-0000-4000-8000-000000000021', '03000000-0000-4000-8000-000000000001',
             's030-patch-name', 'active', 86400, '2099-01-01T00:00:00Z', null,
             '{"keep": true}'),
            ('03000000-0000-4000-8000-000000000022', null,
             's030-patch-status', 'active', 86400, '2099-01-01T00:00:00Z', null, null),
            ('03000000-0000-4000-8000-000000000023', null,
             's030-patch-expiry', 'active', 86400, '2099-01-01T00:00:00Z', null, null),
            ('03000000-0000-4000-8000-000000000024', null,
             's030-patch-messages', 'active', 86400, '2099-01-01T00:00:00Z', null, null),
            ('03000000-0000-4000-8000-000000000025', null,
             's030-patch-invalid', 'active', 86400, '2099-01-01T00:00:00Z', null, null),
            ('03000000-0000-4000-8000-000000000026', null,
             's030-patch-customer', 'active', 86400, '2099-01-01T00:00:00Z',
             '{"number": "+4930222"}', '{"a": 1}'),
            ('03000000-0000-4000-8000-000000000031', '03000000-0000-4000-8000-000000000001',
             's030-delete', 'active', 86400, '2099-01-01T00:00:00Z', null, null),
            ('03000000-0000-4000-8000-000000000041', null,
             's030-expired', 'active', 86400, '2003-03-02T00:00:00Z', null, null),
            ('03000000-0000-4000-8000-000000000042', null,
             's030-unexpired', 'active', 86400, '2099-01-01T00:00:00Z', null, null))
           v(id, assistant_id, name, status, expiration_seconds, expires_at,
             customer, metadata)
     where k.key_hash = sha256('cq_test_a');

    select callhq.messages_insert('03000000-0000-4000-8000-000000000011',
        '[{"role": "user", "content": "Hi"},
          {"role": "assistant", "content": "Hello, Ada."},
          {"role": "user", "content": "Say \"bye\"\nplease"}]', 1);
    select callhq.messages_insert('03000000-0000-4000-8000-000000000024',
        '[{"role": "user", "content": "old 1"}, {"role": "assistant", "content": "old 2"}]', 1);
    select callhq.messages_insert('03000000-0000-4000-8000-000000000031',
        '[{"role": "user", "content": "to go"}, {"role": "assistant", "content": "gone"}]', 1);
    update callhq.sessions set next_seq = 4
     where id = '03000000-0000-4000-8000-000000000011';
    update callhq.sessions set next_seq = 3
     where id in ('03000000-0000-4000-8000-000000000024',
                  '03000000-0000-4000-8000-000000000031');
});

sub id { sprintf '03000000-0000-4000-8000-0000000000%02d', shift }

our $ASST = id(1);
our $B_ASST = id(2);

# a fixture session as stored (2003-03-01, active until 2099), with changes
sub fixture {
    my ($n, $name, %more) = @_;
    return { id => id($n), orgId => $::ORG_A, name => $name, status => 'active',
             expirationSeconds => \86400, expiresAt => '2099-01-01T00:00:00.000Z',
             createdAt => '2003-03-01T00:00:00.000Z',
             updatedAt => '2003-03-01T00:00:00.000Z', %more };
}

# a session just created
sub created {
    return { id => $::UUID, orgId => $::ORG_A, status => 'active',
             expirationSeconds => \86400, expiresAt => $::TS,
             createdAt => $::TS, updatedAt => $::TS, @_ };
}

our $NEW_TS = qr/"20(?!03-)\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"/;

our $GET_BODY = ::session_body(fixture(11, 's030-get', assistantId => $ASST,
        customer => { number => '+4930111', name => 'Ada' },
        metadata => { crm => { id => \7 } }),
    [user => 'Hi'], [assistant => 'Hello, Ada.'], [user => "Say \"bye\"\nplease"]);

our $INVALID_BODY = ::session_body(fixture(25, 's030-patch-invalid'));

run_tests();

# DELETE took the session's messages with it (TEST 31).
is(psql(q{select count(*) from callhq.messages
           where session_id = '03000000-0000-4000-8000-000000000031'}) + 0, 0,
   "$0 - the deleted session's messages are gone");

__DATA__

=== TEST 1: POST with assistantId: 201, active, expirationSeconds 86400, expiresAt = createdAt + 1 day
--- request
POST /session
{"assistantId": "03000000-0000-4000-8000-000000000001", "name": "s030-new"}
--- error_code: 201
--- response_headers
Content-Type: application/json
--- response_body eval
::all_of(::session_body(main::created(name => 's030-new', assistantId => $main::ASST)),
         ::expires_after(86400),
         qr/"createdAt": (?<c>"[^"]+"), "expiresAt": "[^"]+", "updatedAt": \k<c>/)



=== TEST 2: callhq_session_expiration sets the default: 2h is 7200 seconds
--- config
location / {
    callhq_session_expiration 2h;
    callhq_api;
}
--- request
POST /session
{"name": "s030-directive"}
--- error_code: 201
--- response_body eval
::all_of(::session_body(main::created(name => 's030-directive',
                                      expirationSeconds => \7200)),
         ::expires_after(7200))



=== TEST 3: an expirationSeconds in the body wins over the directive
--- config
location / {
    callhq_session_expiration 2h;
    callhq_api;
}
--- request
POST /session
{"name": "s030-explicit", "expirationSeconds": 600}
--- error_code: 201
--- response_body eval
::all_of(::session_body(main::created(name => 's030-explicit',
                                      expirationSeconds => \600)),
         ::expires_after(600))



=== TEST 4: expirationSeconds 60 and 2592000 are the bounds, both accepted
--- request eval
["POST /session\n{\"name\": \"s030-exp-60\", \"expirationSeconds\": 60}",
 "POST /session\n{\"name\": \"s030-exp-30d\", \"expirationSeconds\": 2592000}"]
--- error_code eval
[201, 201]
--- response_body eval
[::all_of(::session_body(main::created(name => 's030-exp-60',
                                       expirationSeconds => \60)),
          ::expires_after(60)),
 ::all_of(::session_body(main::created(name => 's030-exp-30d',
                                       expirationSeconds => \2592000)),
          ::expires_after(2592000))]



=== TEST 5: expirationSeconds 59, 2592001, 90.5 or a string: 400
--- request eval
["POST /session\n{\"expirationSeconds\": 59}",
 "POST /session\n{\"expirationSeconds\": 2592001}",
 "POST /session\n{\"expirationSeconds\": 90.5}",
 "POST /session\n{\"expirationSeconds\": \"3600\"}"]
--- error_code eval
[400, 400, 400, 400]
--- response_body eval
[::err(400, 'expirationSeconds must be an integer between 60 and 2592000'),
 ::err(400, 'expirationSeconds must be an integer between 60 and 2592000'),
 ::err(400, 'expirationSeconds must be an integer between 60 and 2592000'),
 ::err(400, 'expirationSeconds must be an integer between 60 and 2592000')]



=== TEST 6: a name over 40 characters, or not a string: 400
--- request eval
["POST /session\n{\"name\": \"s030-678901234567890123456789012345678901\"}",
 "POST /session\n{\"name\": \"s030-6789012345678901234567890123456789012\"}",
 "POST /session\n{\"name\": 42}"]
--- error_code eval
[400, 400, 400]
--- response_body eval
[::err(400, 'name must be at most 40 characters'),
 ::err(400, 'name must be at most 40 characters'),
 ::err(400, 'name must be a string')]



=== TEST 7: a name of exactly 40 characters is accepted
--- request
POST /session
{"name": "s030-67890123456789012345678901234567890"}
--- error_code: 201
--- response_body eval
::session_body(main::created(name => 's030-67890123456789012345678901234567890'))



=== TEST 8: status completed is accepted on create, an unknown status is not
--- request eval
["POST /session\n{\"name\": \"s030-completed\", \"status\": \"completed\"}",
 "POST /session\n{\"name\": \"s030-paused\", \"status\": \"paused\"}"]
--- error_code eval
[201, 400]
--- response_body eval
[::session_body(main::created(name => 's030-completed', status => 'completed')),
 ::err(400, 'status must be one of active, completed')]



=== TEST 9: seed messages are kept in order, answered compact
--- request
POST /session
{"name": "s030-seeded", "messages": [
  {"role": "system", "content": "Be kind."},
  {"role": "user", "content": "Hi \"there\""},
  {"role": "assistant", "content": "Hello!"},
  {"role": "user", "content": "Grüße"}]}
--- error_code: 201
--- response_body eval
::session_body(main::created(name => 's030-seeded'),
               [system => 'Be kind.'], [user => 'Hi "there"'],
               [assistant => 'Hello!'], [user => "Gr\xc3\xbc\xc3\x9fe"])



=== TEST 10: invalid seed messages: 400 naming the index and member
--- request eval
["POST /session\n{\"name\": \"s030-rejected\", \"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"robot\", \"content\": \"b\"}]}",
 "POST /session\n{\"name\": \"s030-rejected\", \"messages\": [{\"role\": \"user\"}]}",
 "POST /session\n{\"name\": \"s030-rejected\", \"messages\": [{\"role\": \"user\", \"content\": \"a\", \"colour\": \"x\"}]}",
 "POST /session\n{\"name\": \"s030-rejected\", \"messages\": \"hi\"}"]
--- error_code eval
[400, 400, 400, 400]
--- response_body eval
[::err(400, 'messages[1].role must be one of system, user, assistant, tool, developer'),
 ::err(400, 'messages[0].content is required'),
 ::err(400, 'property messages[0].colour should not exist'),
 ::err(400, 'messages must be an array')]



=== TEST 11: ... and a rejected POST left no session behind
--- request
GET /session?name=s030-rejected
--- response_body eval
::list_body([])



=== TEST 12: GET /session/{id}: the session with its whole history, oldest first
--- request
GET /session/03000000-0000-4000-8000-000000000011
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body eval
$main::GET_BODY



=== TEST 13: an unknown assistantId, or another org's: 404 naming it
--- request eval
["POST /session\n{\"name\": \"s030-no-asst\", \"assistantId\": \"03000000-0000-4000-8000-0000000000ff\"}",
 "POST /session\n{\"name\": \"s030-no-asst\", \"assistantId\": \"03000000-0000-4000-8000-000000000002\"}",
 "GET /session?name=s030-no-asst"]
--- error_code eval
[404, 404, 200]
--- response_body eval
[::err(404, 'Assistant 03000000-0000-4000-8000-0000000000ff not found'),
 ::err(404, 'Assistant 03000000-0000-4000-8000-000000000002 not found'),
 ::list_body([])]



=== TEST 14: an assistantId that is not a UUID: 400
--- request
POST /session
{"assistantId": "s030-asst"}
--- error_code: 400
--- response_body eval
::err(400, 'assistantId must be a UUID')



=== TEST 15: an inline assistant is stored with the session
--- request
POST /session
{"name": "s030-inline", "assistant": {"name": "Inline",
 "model": {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "Answer in French."}]}}}
--- error_code: 201
--- response_body eval
::session_body(main::created(name => 's030-inline',
    assistant => { name => 'Inline',
                   model => { model => 'gpt-4o-mini',
                              messages => [{ role => 'system',
                                             content => 'Answer in French.' }] } }))



=== TEST 16: an inline assistant is checked like POST /assistant, with its path
--- request eval
["POST /session\n{\"assistant\": {\"colour\": \"red\"}}",
 "POST /session\n{\"assistant\": {\"model\": {\"provider\": \"openai\"}}}",
 "POST /session\n{\"assistant\": \"Inline\"}"]
--- error_code eval
[400, 400, 400]
--- response_body eval
[::err(400, 'property assistant.colour should not exist'),
 ::err(400, 'assistant.model.model is required'),
 ::err(400, 'assistant must be an object')]



=== TEST 17: with assistantId, an inline assistant is ignored
--- request
POST /session
{"name": "s030-both", "assistantId": "03000000-0000-4000-8000-000000000001",
 "assistant": {"name": "ignored"}}
--- error_code: 201
--- response_body eval
::session_body(main::created(name => 's030-both', assistantId => $main::ASST))



=== TEST 18: customer and metadata round-trip (nulls inside metadata kept)
--- request
POST /session
{"name": "s030-customer",
 "customer": {"number": "+15551234567", "name": "Bob", "email": "bob@example.com", "externalId": "crm-42"},
 "metadata": {"source": "sms", "nested": {"n": 1, "empty": null}, "list": [1, "two"]}}
--- error_code: 201
--- response_body eval
::session_body(main::created(name => 's030-customer',
    customer => { number => '+15551234567', name => 'Bob',
                  email => 'bob@example.com', externalId => 'crm-42' },
    metadata => { source => 'sms', nested => { n => \1, empty => \'null' },
                  list => [\1, 'two'] }))



=== TEST 19: an invalid customer: 400 naming the member
--- request eval
["POST /session\n{\"customer\": {\"phone\": \"+1\"}}",
 "POST /session\n{\"customer\": {\"number\": 15551234567}}",
 "POST /session\n{\"customer\": \"+15551234567\"}",
 "POST /session\n{\"metadata\": \"x\"}"]
--- error_code eval
[400, 400, 400, 400]
--- response_body eval
[::err(400, 'property customer.phone should not exist'),
 ::err(400, 'customer.number must be a string'),
 ::err(400, 'customer must be an object'),
 ::err(400, 'metadata must be an object')]



=== TEST 20: an unknown field: property X should not exist
--- request
POST /session
{"name": "s030-unknown", "channel": "sms"}
--- error_code: 400
--- response_body eval
::err(400, 'property channel should not exist')



=== TEST 21: PATCH name: only the name changes (history, metadata kept), updatedAt moves
--- request
PATCH /session/03000000-0000-4000-8000-000000000021
{"name": "s030-renamed"}
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body eval
::session_body(main::fixture(21, 's030-renamed', assistantId => $main::ASST,
                             metadata => { keep => \'true' },
                             updatedAt => $main::NEW_TS))



=== TEST 22: ... and GET reads the new name
--- request
GET /session/03000000-0000-4000-8000-000000000021
--- response_body eval
::session_body(main::fixture(21, 's030-renamed', assistantId => $main::ASST,
                             metadata => { keep => \'true' },
                             updatedAt => $main::NEW_TS))



=== TEST 23: PATCH status completed, then back to active
--- request eval
["PATCH /session/03000000-0000-4000-8000-000000000022\n{\"status\": \"completed\"}",
 "GET /session/03000000-0000-4000-8000-000000000022",
 "PATCH /session/03000000-0000-4000-8000-000000000022\n{\"status\": \"active\"}"]
--- error_code eval
[200, 200, 200]
--- response_body eval
[::session_body(main::fixture(22, 's030-patch-status', status => 'completed',
                              updatedAt => $main::NEW_TS)),
 ::session_body(main::fixture(22, 's030-patch-status', status => 'completed',
                              updatedAt => $main::NEW_TS)),
 ::session_body(main::fixture(22, 's030-patch-status',
                              updatedAt => $main::NEW_TS))]



=== TEST 24: PATCH expirationSeconds: expiry counted from createdAt (2003: so now completed)
--- request
PATCH /session/03000000-0000-4000-8000-000000000023
{"expirationSeconds": 2592000}
--- error_code: 200
--- response_body eval
::session_body(main::fixture(23, 's030-patch-expiry', status => 'completed',
                             expirationSeconds => \2592000,
                             expiresAt => '2003-03-31T00:00:00.000Z',
                             updatedAt => $main::NEW_TS))



=== TEST 25: PATCH messages replaces the history
--- request
PATCH /session/03000000-0000-4000-8000-000000000024
{"messages": [{"role": "system", "content": "new 1"}, {"role": "user", "content": "new 2"}, {"role": "assistant", "content": "new 3"}]}
--- error_code: 200
--- response_body eval
::session_body(main::fixture(24, 's030-patch-messages', updatedAt => $main::NEW_TS),
               [system => 'new 1'], [user => 'new 2'], [assistant => 'new 3'])



=== TEST 26: ... GET reads the new history; an empty array empties it
--- request eval
["GET /session/03000000-0000-4000-8000-000000000024",
 "PATCH /session/03000000-0000-4000-8000-000000000024\n{\"messages\": []}",
 "GET /session/03000000-0000-4000-8000-000000000024"]
--- error_code eval
[200, 200, 200]
--- response_body eval
[::session_body(main::fixture(24, 's030-patch-messages', updatedAt => $main::NEW_TS),
                [system => 'new 1'], [user => 'new 2'], [assistant => 'new 3']),
 ::session_body(main::fixture(24, 's030-patch-messages', updatedAt => $main::NEW_TS)),
 ::session_body(main::fixture(24, 's030-patch-messages', updatedAt => $main::NEW_TS))]



=== TEST 27: PATCH customer and metadata replaces them; null clears
--- request eval
["PATCH /session/03000000-0000-4000-8000-000000000026\n{\"customer\": {\"externalId\": \"ext-1\"}, \"metadata\": {\"b\": 2}}",
 "PATCH /session/03000000-0000-4000-8000-000000000026\n{\"customer\": null, \"metadata\": null, \"name\": null}"]
--- error_code eval
[200, 200]
--- response_body eval
[::session_body(main::fixture(26, 's030-patch-customer',
                              customer => { externalId => 'ext-1' },
                              metadata => { b => \2 }, updatedAt => $main::NEW_TS)),
 ::session_body(do { my $f = main::fixture(26, 'gone', updatedAt => $main::NEW_TS);
                     delete $f->{name}; $f })]



=== TEST 28: invalid PATCH bodies: 400 naming the field, and nothing changed
--- request eval
["PATCH /session/03000000-0000-4000-8000-000000000025\n{\"name\": \"s030-never\", \"expirationSeconds\": 59}",
 "PATCH /session/03000000-0000-4000-8000-000000000025\n{\"status\": \"paused\"}",
 "PATCH /session/03000000-0000-4000-8000-000000000025\n{\"status\": null}",
 "PATCH /session/03000000-0000-4000-8000-000000000025\n{\"expirationSeconds\": null}",
 "PATCH /session/03000000-0000-4000-8000-000000000025\n{\"messages\": null}",
 "PATCH /session/03000000-0000-4000-8000-000000000025\n{\"assistantId\": \"03000000-0000-4000-8000-000000000001\"}",
 "PATCH /session/03000000-0000-4000-8000-000000000025\n{\"name\": \"s030-6789012345678901234567890123456789012\"}",
 "GET /session/03000000-0000-4000-8000-000000000025"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 200]
--- response_body eval
[::err(400, 'expirationSeconds must be an integer between 60 and 2592000'),
 ::err(400, 'status must be one of active, completed'),
 ::err(400, 'status must not be null'),
 ::err(400, 'expirationSeconds must not be null'),
 ::err(400, 'messages must not be null'),
 ::err(400, 'property assistantId should not exist'),
 ::err(400, 'name must be at most 40 characters'),
 $main::INVALID_BODY]



=== TEST 29: a session whose expiresAt has passed reads as completed
--- request
GET /session/03000000-0000-4000-8000-000000000041
--- error_code: 200
--- response_body eval
::session_body(main::fixture(41, 's030-expired', status => 'completed',
                             expiresAt => '2003-03-02T00:00:00.000Z'))



=== TEST 30: ... in the list too, while an unexpired one reads active
--- request
GET /session?idAny=03000000-0000-4000-8000-000000000041,03000000-0000-4000-8000-000000000042&sortOrder=ASC
--- error_code: 200
--- response_body eval
::body(::obj(results => [
        main::fixture(41, 's030-expired', status => 'completed',
                      expiresAt => '2003-03-02T00:00:00.000Z'),
        main::fixture(42, 's030-unexpired') ],
    metadata => { itemsPerPage => \100, totalItems => \2, currentPage => \1,
                  totalPages => \1, hasNextPage => \'false', sortOrder => 'ASC' }))



=== TEST 31: DELETE answers 200 with the deleted session and its history
--- request
DELETE /session/03000000-0000-4000-8000-000000000031
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body eval
::session_body(main::fixture(31, 's030-delete', assistantId => $main::ASST),
               [user => 'to go'], [assistant => 'gone'])



=== TEST 32: ... after which GET, PATCH and DELETE answer 404
--- request eval
["GET /session/03000000-0000-4000-8000-000000000031",
 "PATCH /session/03000000-0000-4000-8000-000000000031\n{\"name\": \"back\"}",
 "DELETE /session/03000000-0000-4000-8000-000000000031"]
--- error_code eval
[404, 404, 404]
--- response_body eval
[::err(404, 'Session 03000000-0000-4000-8000-000000000031 not found'),
 ::err(404, 'Session 03000000-0000-4000-8000-000000000031 not found'),
 ::err(404, 'Session 03000000-0000-4000-8000-000000000031 not found')]



=== TEST 33: an id that is not a UUID: 400, for GET, PATCH and DELETE
--- request eval
["GET /session/s030-get",
 "PATCH /session/03000000-0000-4000-8000-0000000000111\n{\"name\": \"x\"}",
 "DELETE /session/{03000000-0000-4000-8000-000000000011}"]
--- error_code eval
[400, 400, 400]
--- response_body eval
[::err(400, 'Session id "s030-get" must be a UUID'),
 ::err(400, 'Session id "03000000-0000-4000-8000-0000000000111" must be a UUID'),
 ::err(400, 'Session id "{03000000-0000-4000-8000-000000000011}" must be a UUID')]



=== TEST 34: a method the route does not take: 405 with Allow
--- request eval
["PUT /session/03000000-0000-4000-8000-000000000011\n{}", "DELETE /session"]
--- error_code eval
[405, 405]
--- response_headers eval
["Allow: GET, PATCH, DELETE", "Allow: GET, POST"]
--- response_body eval
[::err(405, 'PUT is not allowed on /session/03000000-0000-4000-8000-000000000011 (allowed: GET, PATCH, DELETE)'),
 ::err(405, 'DELETE is not allowed on /session (allowed: GET, POST)')]



=== TEST 35: callhq_session_expiration under 60s: nginx refuses the configuration
--- config
location / {
    callhq_session_expiration 59s;
    callhq_api;
}
--- must_die
--- error_log
[emerg]
"callhq_session_expiration" must be between 60s and 30d
--- no_error_log
[alert]
