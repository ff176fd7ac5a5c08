# /phone-number: create, list (a plain array, newest first), get, patch,
# delete; E.164 and the other checks, each naming the field at fault; a
# number held by one org only (409 for any other); twilioAuthToken stored
# but never shown nor logged; another org's id is 404; deleting the
# assistant leaves its numbers without one.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect);

# the token of every fixture number: never in an answer nor in the log
our $TOKEN = 'tok_secret_4c1d';

callhq_defaults(no_error_log => "[error]\n[crit]\n[alert]\n$TOKEN");

# Org A's numbers 30000000-0000-4000-8000-0000000000NN:
#   01     +15550000001, every field, assistant 91
#   11-13  +1555000001N, created 2003-02-01..03
#   21     +15550000021 to patch
#   31     +15550000031 to delete
#   41     +15550000041 on assistant 92, which a block deletes
# Org B's number 51: +15550000051.
psql(qq{
    delete from callhq.phone_numbers
     where id::text like '30000000-0000-4000-8000-0000000000__'
        or number like '+1555000%' or number like '+4420%';
    delete from callhq.assistants
     where id::text like '30000000-0000-4000-8000-0000000000__';

    insert into callhq.assistants (id, org_id, name)
    select v.id::uuid, k.org_id, v.name
      from callhq.api_keys k,
           (values ('30000000-0000-4000-8000-000000000091', 'pn-asst'),
                   ('30000000-0000-4000-8000-000000000092', 'pn-asst-gone'))
           v(id, name)
     where k.key_hash = sha256('cq_test_a');

    insert into callhq.assistants (id, org_id, name)
    select '30000000-0000-4000-8000-000000000093', k.org_id, 'pn-asst-b'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_b');

    insert into callhq.phone_numbers (id, org_id, number, name, twilio_account_sid,
                                      twilio_auth_token, assistant_id, sms_enabled,
                                      fallback_message, created_at, updated_at)
    select v.id::uuid, k.org_id, v.number, v.name, 'AC0001', '$TOKEN',
           v.assistant_id::uuid, v.sms, v.fallback,
           v.created_at::timestamptz, v.created_at::timestamptz
      from callhq.api_keys k,
           (values
            ('30000000-0000-4000-8000-000000000001', '+15550000001', 'pn-get',
             '30000000-0000-4000-8000-000000000091', false, 'Closed today.',
             '2003-01-01T00:00:00Z', 'cq_test_a'),
            ('30000000-0000-4000-8000-000000000011', '+15550000011', 'pn-list-1',
             null, true, null, '2003-02-01T00:00:00Z', 'cq_test_a'),
            ('30000000-0000-4000-8000-000000000012', '+15550000012', 'pn-list-2',
             null, true, null, '2003-02-02T00:00:00Z', 'cq_test_a'),
            ('30000000-0000-4000-8000-000000000013', '+15550000013', 'pn-list-3',
             null, true, null, '2003-02-03T00:00:00Z', 'cq_test_a'),
            ('30000000-0000-4000-8000-000000000021', '+15550000021', 'pn-patch',
             null, true, 'old', '2003-01-01T00:00:00Z', 'cq_test_a'),
            ('30000000-0000-4000-8000-000000000031', '+15550000031', 'pn-delete',
             null, true, null, '2003-01-01T00:00:00Z', 'cq_test_a'),
            ('30000000-0000-4000-8000-000000000041', '+15550000041', 'pn-unlink',
             '30000000-0000-4000-8000-000000000092', true, null,
             '2003-01-01T00:00:00Z', 'cq_test_a'),
            ('30000000-0000-4000-8000-000000000051', '+15550000051', 'pn-org-b',
             null, true, null, '2003-01-01T00:00:00Z', 'cq_test_b'))
           v(id, number, name, assistant_id, sms, fallback, created_at, key)
     where k.key_hash = sha256(v.key::bytea);
});

sub id { sprintf '30000000-0000-4000-8000-0000000000%02d', shift }

our $GET_BODY = ::body(::obj(id => id(1), orgId => $::ORG_A,
    provider => 'twilio', number => '+15550000001', name => 'pn-get',
    twilioAccountSid => 'AC0001', assistantId => id(91),
    smsEnabled => \'false', fallbackMessage => 'Closed today.',
    status => 'active',
    createdAt => '2003-01-01T00:00:00.000Z',
    updatedAt => '2003-01-01T00:00:00.000Z'));

our $NEW_TS = qr/"20(?!03-)\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"/;

run_tests();

# the tokens given were stored as given (the webhook's signature key)
Test::More::is(psql(q{select twilio_auth_token from callhq.phone_numbers
                       where number = '+4420700000002'}),
               'tok_stored_7', 'POST /phone-number stored twilioAuthToken');
Test::More::is(psql(q{select twilio_auth_token from callhq.phone_numbers
                       where id = '30000000-0000-4000-8000-000000000021'}),
               'tok_new_21', 'PATCH /phone-number stored twilioAuthToken');

__DATA__

=== TEST 1: POST /phone-number: 201, every field but the token, smsEnabled true by default
--- request eval
qq{POST /phone-number
{"provider": "twilio", "number": "+4420700000001", "name": "pn-created",
 "twilioAccountSid": "AC0002", "twilioAuthToken": "$::TOKEN",
 "assistantId": "30000000-0000-4000-8000-000000000091"}}
--- error_code: 201
--- response_body eval
::body(::obj(id => $::UUID, orgId => $::ORG_A, provider => 'twilio',
    number => '+4420700000001', name => 'pn-created',
    twilioAccountSid => 'AC0002',
    assistantId => '30000000-0000-4000-8000-000000000091',
    smsEnabled => \'true', status => 'active',
    createdAt => $::NEW_TS, updatedAt => $::NEW_TS))



=== TEST 2: the token given is the one stored (the webhook's signature key)
--- request eval
qq{POST /phone-number
{"number": "+4420700000002", "twilioAccountSid": "AC0002",
 "twilioAuthToken": "tok_stored_7"}}
--- error_code: 201
--- response_body_like: "number": "\+4420700000002"
--- no_error_log eval
["[error]", "tok_stored_7"]



=== TEST 3: GET /phone-number/{id}: every field, never the token
--- request eval
"GET /phone-number/" . main::id(1)
--- error_code: 200
--- response_body eval
$::GET_BODY



=== TEST 4: GET /phone-number: a plain array, newest first, limit and the createdAt filters
--- request
GET /phone-number?createdAtGe=2003-02-01T00:00:00Z&createdAtLt=2003-03-01T00:00:00Z&limit=2
--- error_code: 200
--- response_body eval
::array_body(main::id(13), main::id(12))



=== TEST 5: another org's number: 404 to GET, PATCH and DELETE, absent from the list, unchanged
--- request eval
["GET /phone-number/" . main::id(51),
 "PATCH /phone-number/" . main::id(51) . "\n{\"name\": \"taken\"}",
 "DELETE /phone-number/" . main::id(51),
 "GET /phone-number?createdAtLt=2003-01-02T00:00:00Z"]
--- error_code eval
[404, 404, 404, 200]
--- response_body eval
[::err(404, 'Phone number ' . main::id(51) . ' not found'),
 ::err(404, 'Phone number ' . main::id(51) . ' not found'),
 ::err(404, 'Phone number ' . main::id(51) . ' not found'),
 qr/\A(?!.*\Q${\ main::id(51)}\E).*\Q${\ main::id(1)}\E/s]



=== TEST 6: org B's row is still there and named as it was
--- request
GET /phone-number?createdAtLt=2003-01-02T00:00:00Z
--- more_headers
Authorization: Bearer cq_test_b
--- error_code: 200
--- response_body eval
::array_body(main::id(51))



=== TEST 7: a number another org holds: 409, and the other org's row is left alone
--- request
POST /phone-number
{"number": "+15550000051", "twilioAccountSid": "AC9", "twilioAuthToken": "t"}
--- error_code: 409
--- response_body eval
'{"statusCode":409,"error":"Conflict","message":"number +15550000051 is already in use"}'



=== TEST 8: PATCH to a number already held: 409
--- request eval
"PATCH /phone-number/" . main::id(21) . qq{\n{"number": "+15550000001"}}
--- error_code: 409
--- response_body_like: already in use



=== TEST 9: number that is not E.164: 400 naming number
--- request eval
[map { qq{POST /phone-number\n{"number": "$_", "twilioAccountSid": "AC",
          "twilioAuthToken": "t"}} }
     ('5551234567', '+0155512345', '+1 555 123 4567', '+1555123456789012', '+', '')]
--- error_code eval
[400, 400, 400, 400, 400, 400]
--- response_body eval
[map { ::err(400, $_) }
 (('number must be an E.164 phone number (+ and up to 15 digits, as +15551234567)') x 3,
  'number must be at most 16 characters',
  ('number must be an E.164 phone number (+ and up to 15 digits, as +15551234567)') x 2)]



=== TEST 10: missing or mistyped fields: 400 naming each
--- request eval
[qq{POST /phone-number\n{"twilioAccountSid": "AC", "twilioAuthToken": "t"}},
 qq{POST /phone-number\n{"number": "+15559990001", "twilioAuthToken": "t"}},
 qq{POST /phone-number\n{"number": "+15559990001", "twilioAccountSid": "AC"}},
 qq{POST /phone-number\n{"number": 15559990001, "twilioAccountSid": "AC", "twilioAuthToken": "t"}},
 qq{POST /phone-number\n{"number": "+15559990001", "twilioAccountSid": "AC", "twilioAuthToken": "t", "smsEnabled": "yes"}},
 qq{POST /phone-number\n{"number": "+15559990001", "twilioAccountSid": "AC", "twilioAuthToken": "t", "provider": "vonage"}},
 qq{POST /phone-number\n{"number": "+15559990001", "twilioAccountSid": "AC", "twilioAuthToken": "t", "assistantId": "nope"}},
 qq{POST /phone-number\n{"number": "+15559990001", "twilioAccountSid": "AC", "twilioAuthToken": "t", "colour": "red"}},
 qq{POST /phone-number\n{"number": "+15559990001", "twilioAccountSid": "AC", "twilioAuthToken": "t", "name": "${\ ('n' x 41)}"}},
 qq{PATCH /phone-number/${\ main::id(21)}\n{"twilioAuthToken": null}}]
--- error_code eval
[(400) x 10]
--- response_body eval
[map { ::err(400, $_) }
 'number is required', 'twilioAccountSid is required',
 'twilioAuthToken is required', 'number must be a string',
 'smsEnabled must be a boolean', 'provider must be one of twilio',
 'assistantId must be a UUID', 'property colour should not exist',
 'name must be at most 40 characters', 'twilioAuthToken must not be null']



=== TEST 11: nothing of the refused requests was written
--- request
GET /phone-number?createdAtGe=2020-01-01T00:00:00Z
--- error_code: 200
--- response_body_unlike: 5559990001



=== TEST 12: assistantId of another org: 404, as one that does not exist
--- request
POST /phone-number
{"number": "+15559990002", "twilioAccountSid": "AC", "twilioAuthToken": "t",
 "assistantId": "30000000-0000-4000-8000-000000000093"}
--- error_code: 404
--- response_body eval
::err(404, 'Assistant 30000000-0000-4000-8000-000000000093 not found')



=== TEST 13: PATCH: given members replace, null clears, the rest stays; the token is changed, not shown
--- request eval
"PATCH /phone-number/" . main::id(21) . qq{
{"smsEnabled": false, "fallbackMessage": null, "name": "pn-patched",
 "twilioAuthToken": "tok_new_21", "assistantId": "30000000-0000-4000-8000-000000000091"}}
--- error_code: 200
--- response_body eval
::all_of(
  ::body(::obj(id => main::id(21), orgId => $::ORG_A, provider => 'twilio',
    number => '+15550000021', name => 'pn-patched', twilioAccountSid => 'AC0001',
    assistantId => main::id(91), smsEnabled => \'false', status => 'active',
    createdAt => '2003-01-01T00:00:00.000Z', updatedAt => $::NEW_TS)))
--- no_error_log eval
["[error]", "tok_new_21"]



=== TEST 14: DELETE: 200 with the deleted number, then 404
--- request eval
["DELETE /phone-number/" . main::id(31), "GET /phone-number/" . main::id(31)]
--- error_code eval
[200, 404]
--- response_body eval
[qr/\A\{"id": "\Q${\ main::id(31)}\E".*"number": "\+15550000031"/,
 ::err(404, 'Phone number ' . main::id(31) . ' not found')]



=== TEST 15: deleting its assistant leaves the number, without assistantId
--- request eval
["DELETE /assistant/30000000-0000-4000-8000-000000000092",
 "GET /phone-number/" . main::id(41)]
--- error_code eval
[200, 200]
--- response_body eval
[qr/pn-asst-gone/,
 qr/\A(?!.*assistantId)\{"id": "\Q${\ main::id(41)}\E".*"number": "\+15550000041"/s]



=== TEST 16: an id that is not a UUID: 400; an unknown one: 404
--- request eval
["GET /phone-number/abc",
 "GET /phone-number/30000000-0000-4000-8000-000000000099"]
--- error_code eval
[400, 404]
--- response_body eval
[::err(400, 'Phone number id "abc" must be a UUID'),
 ::err(404, 'Phone number 30000000-0000-4000-8000-000000000099 not found')]



=== TEST 17: the SDK's Twilio members the module has not: 400 naming each, nothing written
--- request eval
[(map { qq{POST /phone-number\n{"provider": "twilio", "number": "+15559990003",
          "twilioAccountSid": "AC", "twilioAuthToken": "t", $_}} }
      '"twilioApiKey": "SK1"', '"twilioApiSecret": "s"',
      '"fallbackDestination": {"type": "number", "number": "+15550000099"}',
      '"hooks": []', '"squadId": "30000000-0000-4000-8000-000000000091"',
      '"workflowId": "30000000-0000-4000-8000-000000000091"',
      '"server": {"url": "https://example.com/hook"}',
      '"numberE164CheckEnabled": false'),
 "PATCH /phone-number/" . main::id(21) . qq{\n{"provider": "twilio", "server": {"url": "https://example.com/hook"}}},
 qq{POST /phone-number\n{"provider": "byo-phone-number", "number": "+15559990003",
    "twilioAccountSid": "AC", "twilioAuthToken": "t"}},
 "GET /phone-number?createdAtGe=2020-01-01T00:00:00Z"]
--- error_code eval
[(400) x 10, 200]
--- response_body eval
[(map { ::err(400, $_) }
  'twilioApiKey is not supported: give twilioAuthToken (it keys the webhook signature)',
  'twilioApiSecret is not supported: give twilioAuthToken (it keys the webhook signature)',
  'fallbackDestination is not supported (no calls): use fallbackMessage',
  'hooks is not supported (no calls)',
  'squadId is not supported: give assistantId',
  'workflowId is not supported: give assistantId',
  q{server is not supported on a phone number: give the assistant's server},
  'property numberE164CheckEnabled should not exist',
  q{server is not supported on a phone number: give the assistant's server},
  'provider must be one of twilio'),
 qr/\A(?!.*5559990003)/s]



=== TEST 18: the SDK's shape with those members null: 201, as without them; PATCH with provider
--- request eval
[qq{POST /phone-number
{"provider": "twilio", "number": "+4420700000003", "twilioAccountSid": "AC0003",
 "twilioAuthToken": "$::TOKEN", "name": "pn-sdk", "smsEnabled": true,
 "twilioApiKey": null, "twilioApiSecret": null, "fallbackDestination": null,
 "hooks": null, "squadId": null, "workflowId": null, "server": null}},
 "PATCH /phone-number/" . main::id(11) . qq{
{"provider": "twilio", "name": "pn-list-1b", "squadId": null, "server": null}}]
--- error_code eval
[201, 200]
--- response_body eval
[::body(::obj(id => $::UUID, orgId => $::ORG_A, provider => 'twilio',
    number => '+4420700000003', name => 'pn-sdk', twilioAccountSid => 'AC0003',
    smsEnabled => \'true', status => 'active',
    createdAt => $::NEW_TS, updatedAt => $::NEW_TS)),
 ::body(::obj(id => main::id(11), orgId => $::ORG_A, provider => 'twilio',
    number => '+15550000011', name => 'pn-list-1b', twilioAccountSid => 'AC0001',
    smsEnabled => \'true', status => 'active',
    createdAt => '2003-02-01T00:00:00.000Z', updatedAt => $::NEW_TS))]
