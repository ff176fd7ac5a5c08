# Authentication and tenancy: every call needs "Authorization: Bearer <key>";
# an org never sees, changes or learns about another org's resources (its
# ids answer 404, exactly like ids that do not exist).
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of add_block_preprocessor below (Org A's
# key, a JSON body, nothing logged at [error] or worse).

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test;

BEGIN { require './t/fixtures/expect.pl' }

no_shuffle();
no_root_location();
log_level('info');

add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value(http_config =>
        qq{callhq_postgres "\$TEST_NGINX_PG_CONNINFO";})
        unless defined $block->http_config;
    $block->set_value(config => 'location / { callhq_api; }')
        unless defined $block->config;
    $block->set_value(more_headers => $::AUTH_A)
        unless defined $block->more_headers;
    $block->set_value(no_error_log => "[error]\n[crit]\n[alert]")
        unless defined $block->no_error_log;
});

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



