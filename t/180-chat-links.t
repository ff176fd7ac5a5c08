# What a chat is linked to, now that chats.org_id and chats.assistant_id
# are not foreign keys (sql/009_chat_path.sql): deleting an assistant
# leaves its chats without it, deleting an org deletes all of its chats,
# those without a session too.
#
# Ids 18000000-0000-4000-8000-0000000000NN: 01 an assistant of Org A
# (echo), 11 its session; 02 an assistant of Org Z (made here), 12 its
# session.

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect chat);

our $CONFIG = api_location('/') . model_locations();

callhq_defaults(config => $CONFIG, valgrind_timeout => 10);

psql(q{
    delete from callhq.orgs where name = 'Org Z';
    delete from callhq.chats where session_id = '18000000-0000-4000-8000-000000000011';
    delete from callhq.sessions where id::text like '18000000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '18000000-0000-4000-8000-%';

    select callhq.api_key_add(callhq.org_create('Org Z'), 'cq_test_z');

    insert into callhq.assistants (id, org_id, name, model)
    select v.id::uuid, k.org_id, 'c180', '{"provider": "openai", "model": "echo"}'
      from callhq.api_keys k,
           (values ('18000000-0000-4000-8000-000000000001', 'cq_test_a'),
                   ('18000000-0000-4000-8000-000000000002', 'cq_test_z')) v(id, key)
     where k.key_hash = sha256(v.key::bytea);

    insert into callhq.sessions (id, org_id, assistant_id, expiration_seconds,
                                 expires_at)
    select v.id::uuid, a.org_id, a.id, 86400, '2099-01-01T00:00:00Z'
      from callhq.assistants a,
           (values ('18000000-0000-4000-8000-000000000011',
                    '18000000-0000-4000-8000-000000000001'),
                   ('18000000-0000-4000-8000-000000000012',
                    '18000000-0000-4000-8000-000000000002')) v(id, assistant)
     where a.id = v.assistant::uuid;
});

run_tests();

# Org Z goes, and every chat of it with it
my $org = psql(q{select id from callhq.orgs where name = 'Org Z'});
is(psql("select count(*) from callhq.chats where org_id = '$org'"), 2,
   'Org Z has its two chats');
psql("delete from callhq.orgs where id = '$org'");
is(psql("select count(*) from callhq.chats where org_id = '$org'"), 0,
   'deleting Org Z deleted its chats, the one without a session too');
is(psql("select count(*) from callhq.sessions where org_id = '$org'"), 0,
   'and its session');

__DATA__

=== TEST 1: a chat of the session
--- request
POST /chat
{"sessionId": "18000000-0000-4000-8000-000000000011", "input": "c180 hello"}
--- error_code: 201
--- response_body_like: "assistantId": "18000000-0000-4000-8000-000000000001"



=== TEST 2: its assistant is deleted
--- request
DELETE /assistant/18000000-0000-4000-8000-000000000001
--- error_code: 200



=== TEST 3: the chat stays, without the assistant
--- request
GET /chat?sessionId=18000000-0000-4000-8000-000000000011
--- error_code: 200
--- response_body_like: "c180 hello"
--- response_body_unlike: "assistantId"



=== TEST 4: Org Z chats in its session
--- more_headers
Authorization: Bearer cq_test_z
Content-Type: application/json
--- request
POST /chat
{"sessionId": "18000000-0000-4000-8000-000000000012", "input": "z one"}
--- error_code: 201



=== TEST 5: and without a session
--- more_headers
Authorization: Bearer cq_test_z
Content-Type: application/json
--- request
POST /chat
{"assistantId": "18000000-0000-4000-8000-000000000002", "input": "z two"}
--- error_code: 201
