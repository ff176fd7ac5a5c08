# GET /session: {results, metadata}, rows without messages, paging,
# sortOrder, every filter, and the 400s for bad parameters.
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of callhq_defaults (t/CallHQ/Test.pm: Org
# A's key, a JSON body, nothing logged at [error] or worse).

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test qw(expect);

callhq_defaults();

# Ids 04000000-0000-4000-8000-0000000000NN, all created in April 2004.
# Org A's assistants 01 and 02; Org A's sessions (all active until 2099):
#
#   id  name     assistant  customer.number  createdAt   updatedAt
#   11  l040-s1  01         +4401            2004-04-01  2004-04-05
#   12  l040-s2  01         +4402            2004-04-02  2004-04-02
#   13  l040-s3  02         +4403            2004-04-03  2004-04-06
#   16  l040-s6  01         -                2004-04-03  2004-04-03
#   14  l040-s4  02         -                2004-04-04  2004-04-04
#   15  l040-s5  -          +4401            2004-04-05  2004-04-05
#
# 13 and 16 share their createdAt: the id decides between them. Org B has
# session 19 (l040-b, +4401, 2004-04-03), never in Org A's answers.
# Session 11 has two messages, which list rows leave out.
psql(q{
    delete from callhq.sessions
     where id::text like '04000000-0000-4000-8000-0000000000__';
    delete from callhq.assistants
     where id::text like '04000000-0000-4000-8000-0000000000__';

    insert into callhq.assistants (id, org_id, name, created_at, updated_at)
    select v.id::uuid, k.org_id, v.name, '2004-01-01T00:00:00Z', '2004-01-01T00:00:00Z'
      from callhq.api_keys k,
           (values ('04000000-0000-4000-8000-000000000001', 'l040-asst-1'),
                   ('04000000-0000-4000-8000-000000000002', 'l040-asst-2')) v(id, name)
     where k.key_hash = sha256('cq_test_a');

    insert into callhq.sessions (id, org_id, assistant_id, name, expiration_seconds,
                                 expires_at, customer, created_at, updated_at)
    select v.id::uuid, k.org_id, v.assistant_id::uuid, v.name, 86400,
           '2099-01-01T00:00:00Z', v.customer::jsonb, v.created_at::timestamptz,
           v.updated_at::timestamptz
      from callhq.api_keys k,
           (values
            ('04000000-0000-4000-8000-000000000011', '04000000-0000-4000-8000-000000000001',
             'l040-s1', '{"number": "+4401"}', '2004-04-01T00:00:00Z', '2004-04-05T00:00:00Z'),
            ('04000000-0000-4000-8000-000000000012', '04000000-0000-4000-8000-000000000001',
             'l040-s2', '{"number": "+4402"}', '2004-04-02T00:00:00Z', '2004-04-02T00:00:00Z'),
            ('04000000-0000-4000-8000-000000000013', '04000000-0000-4000-8000-000000000002',
             'l040-s3', '{"number": "+4403"}', '2004-04-03T00:00:00Z', '2004-04-06T00:00:00Z'),
            ('04000000-0000-4000-8000-000000000016', '04000000-0000-4000-8000-000000000001',
             'l040-s6', null, '2004-04-03T00:00:00Z', '2004-04-03T00:00:00Z'),
            ('04000000-0000-4000-8000-000000000014', '04000000-0000-4000-8000-000000000002',
             'l040-s4', null, '2004-04-04T00:00:00Z', '2004-04-04T00:00:00Z'),
            ('04000000-0000-4000-8000-000000000015', null,
             'l040-s5', '{"number": "+4401"}', '2004-04-05T00:00:00Z', '2004-04-05T00:00:00Z'))
           v(id, assistant_id, name, customer, created_at, updated_at)
     where k.key_hash = sha256('cq_test_a');

    insert into callhq.sessions (id, org_id, name, expiration_seconds, expires_at,
                                 customer, created_at, updated_at)
    select '04000000-0000-4000-8000-000000000019', k.org_id, 'l040-b', 86400,
           '2099-01-01T00:00:00Z', '{"number": "+4401"}',
           '2004-04-03T00:00:00Z', '2004-04-03T00:00:00Z'
      from callhq.api_keys k where k.key_hash = sha256('cq_test_b');

    select callhq.messages_insert('04000000-0000-4000-8000-000000000011',
        '[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]', 1);
    update callhq.sessions set next_seq = 3
     where id = '04000000-0000-4000-8000-000000000011';
});

# the session ids by their number: ids(15, 14) -> [id 15, id 14]
sub ids { [ map { sprintf '04000000-0000-4000-8000-0000000000%02d', $_ } @_ ] }

# all of Org A's fixtures, and no other session of the org
our $W = 'createdAtGe=2004-04-01&createdAtLt=2004-05-01';

run_tests();

__DATA__

=== TEST 1: the shape: {results, metadata}; a row has every field but messages
--- request
GET /session?id=04000000-0000-4000-8000-000000000011
--- error_code: 200
--- response_headers
Content-Type: application/json
--- response_body eval
::body(::obj(
    results => [{ id => main::ids(11)->[0], orgId => $::ORG_A, name => 'l040-s1',
                  status => 'active', assistantId => main::ids(1)->[0],
                  customer => { number => '+4401' }, expirationSeconds => \86400,
                  expiresAt => '2099-01-01T00:00:00.000Z',
                  createdAt => '2004-04-01T00:00:00.000Z',
                  updatedAt => '2004-04-05T00:00:00.000Z' }],
    metadata => { itemsPerPage => \100, totalItems => \1, currentPage => \1,
                  totalPages => \1, hasNextPage => \'false', sortOrder => 'DESC' }))



=== TEST 2: newest first by default (equal createdAt: the greater id first)
--- request eval
"GET /session?$main::W"
--- error_code: 200
--- response_body eval
::list_body(main::ids(15, 14, 16, 13, 12, 11))



=== TEST 3: sortOrder=ASC: oldest first, and said so in metadata
--- request eval
["GET /session?$main::W&sortOrder=ASC", "GET /session?$main::W&sortOrder=asc"]
--- error_code eval
[200, 200]
--- response_body eval
[::list_body(main::ids(11, 12, 13, 16, 14, 15), sortOrder => 'ASC'),
 ::list_body(main::ids(11, 12, 13, 16, 14, 15), sortOrder => 'ASC')]



=== TEST 4: sortOrder=DESC and sortBy=createdAt are accepted
--- request eval
"GET /session?$main::W&sortOrder=DESC&sortBy=createdAt"
--- error_code: 200
--- response_body eval
::list_body(main::ids(15, 14, 16, 13, 12, 11))



=== TEST 5: page 1 of 2
--- request eval
"GET /session?$main::W&limit=4"
--- error_code: 200
--- response_body eval
::list_body(main::ids(15, 14, 16, 13), itemsPerPage => \4, totalItems => \6,
            totalPages => \2, hasNextPage => \'true')



=== TEST 6: page 2 of 2
--- request eval
"GET /session?$main::W&limit=4&page=2"
--- error_code: 200
--- response_body eval
::list_body(main::ids(12, 11), itemsPerPage => \4, totalItems => \6,
            currentPage => \2, totalPages => \2, hasNextPage => \'false')



=== TEST 7: a page past the last: no rows, the totals still right
--- request eval
"GET /session?$main::W&limit=4&page=3"
--- error_code: 200
--- response_body eval
::list_body([], itemsPerPage => \4, totalItems => \6, currentPage => \3,
            totalPages => \2, hasNextPage => \'false')



=== TEST 8: paging ascending
--- request eval
"GET /session?$main::W&limit=4&page=2&sortOrder=ASC"
--- error_code: 200
--- response_body eval
::list_body(main::ids(14, 15), itemsPerPage => \4, totalItems => \6,
            currentPage => \2, totalPages => \2, sortOrder => 'ASC')



=== TEST 9: limit 1000 is the largest
--- request eval
"GET /session?$main::W&limit=1000"
--- error_code: 200
--- response_body eval
::list_body(main::ids(15, 14, 16, 13, 12, 11), itemsPerPage => \1000)



=== TEST 10: id: that session only; another org's id finds nothing
--- request eval
["GET /session?id=04000000-0000-4000-8000-000000000013",
 "GET /session?id=04000000-0000-4000-8000-000000000019"]
--- error_code eval
[200, 200]
--- response_body eval
[::list_body(main::ids(13)), ::list_body([])]



=== TEST 11: idAny: a comma list (blanks allowed), another org's ids left out
--- request eval
["GET /session?idAny=04000000-0000-4000-8000-000000000011,04000000-0000-4000-8000-000000000013,04000000-0000-4000-8000-000000000019",
 "GET /session?idAny=04000000-0000-4000-8000-000000000012,%2004000000-0000-4000-8000-000000000014"]
--- error_code eval
[200, 200]
--- response_body eval
[::list_body(main::ids(13, 11)), ::list_body(main::ids(14, 12))]



=== TEST 12: name: exact match only
--- request eval
["GET /session?name=l040-s2", "GET /session?name=l040-s", "GET /session?name=L040-S2"]
--- error_code eval
[200, 200, 200]
--- response_body eval
[::list_body(main::ids(12)), ::list_body([]), ::list_body([])]



=== TEST 13: assistantId
--- request eval
["GET /session?assistantId=04000000-0000-4000-8000-000000000001",
 "GET /session?assistantId=04000000-0000-4000-8000-000000000002"]
--- error_code eval
[200, 200]
--- response_body eval
[::list_body(main::ids(16, 12, 11)), ::list_body(main::ids(14, 13))]



=== TEST 14: assistantIdAny
--- request eval
"GET /session?assistantIdAny=04000000-0000-4000-8000-000000000001,04000000-0000-4000-8000-000000000002"
--- error_code: 200
--- response_body eval
::list_body(main::ids(14, 16, 13, 12, 11))



=== TEST 15: customerNumberAny (a "+" sent as %2B), another org's customers left out
--- request eval
["GET /session?$main::W&customerNumberAny=%2B4401",
 "GET /session?$main::W&customerNumberAny=%2B4401,%2B4403"]
--- error_code eval
[200, 200]
--- response_body eval
[::list_body(main::ids(15, 11)), ::list_body(main::ids(15, 13, 11))]



=== TEST 16: filters combine (and)
--- request eval
["GET /session?assistantId=04000000-0000-4000-8000-000000000001&customerNumberAny=%2B4401&$main::W",
 "GET /session?$main::W&assistantIdAny=04000000-0000-4000-8000-000000000002&name=l040-s3"]
--- error_code eval
[200, 200]
--- response_body eval
[::list_body(main::ids(11)), ::list_body(main::ids(13))]



=== TEST 17: createdAtGt excludes the instant, createdAtGe includes it
--- request eval
["GET /session?createdAtGt=2004-04-03T00:00:00.000Z&createdAtLt=2004-05-01",
 "GET /session?createdAtGe=2004-04-03T00:00:00.000Z&createdAtLt=2004-05-01"]
--- error_code eval
[200, 200]
--- response_body eval
[::list_body(main::ids(15, 14)), ::list_body(main::ids(15, 14, 16, 13))]



=== TEST 18: createdAtLt excludes the instant, createdAtLe includes it
--- request eval
["GET /session?createdAtGe=2004-04-01&createdAtLt=2004-04-03T00:00:00Z",
 "GET /session?createdAtGe=2004-04-01&createdAtLe=2004-04-03T00:00:00Z"]
--- error_code eval
[200, 200]
--- response_body eval
[::list_body(main::ids(12, 11)), ::list_body(main::ids(16, 13, 12, 11))]



=== TEST 19: createdAt filters with an offset: 02:00+02:00 is midnight UTC
--- request eval
["GET /session?createdAtGe=2004-04-03T02:00:00%2B02:00&createdAtLe=2004-04-04T02:00:00+02:00"]
--- error_code eval
[200]
--- response_body eval
[::list_body(main::ids(14, 16, 13))]



=== TEST 20: updatedAtGt excludes the instant, updatedAtGe includes it
--- request eval
["GET /session?$main::W&updatedAtGt=2004-04-05T00:00:00Z",
 "GET /session?$main::W&updatedAtGe=2004-04-05T00:00:00Z"]
--- error_code eval
[200, 200]
--- response_body eval
[::list_body(main::ids(13)), ::list_body(main::ids(15, 13, 11))]



=== TEST 21: updatedAtLt excludes the instant, updatedAtLe includes it
--- request eval
["GET /session?$main::W&updatedAtLt=2004-04-04T00:00:00Z",
 "GET /session?$main::W&updatedAtLe=2004-04-04T00:00:00Z"]
--- error_code eval
[200, 200]
--- response_body eval
[::list_body(main::ids(16, 12)), ::list_body(main::ids(14, 16, 12))]



=== TEST 22: Org B's list of the same window holds only its own session
--- more_headers eval
$::AUTH_B
--- request eval
"GET /session?$main::W"
--- error_code: 200
--- response_body eval
::list_body(main::ids(19))



=== TEST 23: invalid page: 400 naming it
--- request eval
["GET /session?page=0", "GET /session?page=two", "GET /session?page=-1"]
--- error_code eval
[400, 400, 400]
--- response_body eval
[::err(400, 'page must be an integer between 1 and 1000000'),
 ::err(400, 'page must be an integer between 1 and 1000000'),
 ::err(400, 'page must be an integer between 1 and 1000000')]



=== TEST 24: invalid limit: 400 naming it
--- request eval
["GET /session?limit=0", "GET /session?limit=1001", "GET /session?limit=", "GET /session?limit=1.5"]
--- error_code eval
[400, 400, 400, 400]
--- response_body eval
[::err(400, 'limit must be an integer between 1 and 1000'),
 ::err(400, 'limit must be an integer between 1 and 1000'),
 ::err(400, 'limit must be an integer between 1 and 1000'),
 ::err(400, 'limit must be an integer between 1 and 1000')]



=== TEST 25: invalid sortOrder or sortBy: 400 naming it
--- request eval
["GET /session?sortOrder=newest", "GET /session?sortBy=name"]
--- error_code eval
[400, 400]
--- response_body eval
[::err(400, 'sortOrder must be one of ASC, DESC'),
 ::err(400, 'sortBy must be one of createdAt, duration, cost')]



=== TEST 26: invalid timestamps: 400 naming the parameter
--- request eval
["GET /session?createdAtGt=yesterday",
 "GET /session?createdAtLt=2004-02-30",
 "GET /session?createdAtGe=04/04/2004",
 "GET /session?createdAtLe=1712102400",
 "GET /session?updatedAtGt=2004-04-01T25:00:00Z",
 "GET /session?updatedAtLt=",
 "GET /session?updatedAtGe=2004-04-01T00:00:00ZZ",
 "GET /session?updatedAtLe=now"]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400]
--- response_body eval
[::err(400, 'createdAtGt must be an ISO 8601 timestamp'),
 ::err(400, 'createdAtLt must be an ISO 8601 timestamp'),
 ::err(400, 'createdAtGe must be an ISO 8601 timestamp'),
 ::err(400, 'createdAtLe must be an ISO 8601 timestamp'),
 ::err(400, 'updatedAtGt must be an ISO 8601 timestamp'),
 ::err(400, 'updatedAtLt must be an ISO 8601 timestamp'),
 ::err(400, 'updatedAtGe must be an ISO 8601 timestamp'),
 ::err(400, 'updatedAtLe must be an ISO 8601 timestamp')]



=== TEST 27: invalid id filters: 400 naming the parameter
--- request eval
["GET /session?id=l040-s1",
 "GET /session?idAny=04000000-0000-4000-8000-000000000011,l040-s2",
 "GET /session?idAny=,",
 "GET /session?assistantId=l040-asst-1",
 "GET /session?assistantIdAny=04000000-0000-4000-8000-00000000000x",
 "GET /session?customerNumberAny="]
--- error_code eval
[400, 400, 400, 400, 400, 400]
--- response_body eval
[::err(400, 'id must be a UUID'),
 ::err(400, 'idAny must be a comma-separated list of UUIDs'),
 ::err(400, 'idAny must be a comma-separated list'),
 ::err(400, 'assistantId must be a UUID'),
 ::err(400, 'assistantIdAny must be a comma-separated list of UUIDs'),
 ::err(400, 'customerNumberAny must be a comma-separated list')]



=== TEST 28: an unknown parameter: 400 naming it (chat filters are not session filters)
--- request eval
["GET /session?status=active", "GET /session?sessionId=04000000-0000-4000-8000-000000000011"]
--- error_code eval
[400, 400]
--- response_body eval
[::err(400, 'property status should not exist'),
 ::err(400, 'property sessionId should not exist')]



=== TEST 29: a query string that is not UTF-8: 400
--- request eval
["GET /session?name=l040-%FF", "GET /session?%FF=1"]
--- error_code eval
[400, 400]
--- response_body eval
[::err(400, 'query string is not valid UTF-8'),
 ::err(400, 'query string is not valid UTF-8')]
