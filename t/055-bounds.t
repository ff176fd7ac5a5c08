# Bounds set by configuration, not by the client (issue 14, item 5): the
# query-string parser is linear however often a name repeats, and a NUL
# byte answers 400 naming the parameter; a number PostgreSQL's numeric
# cannot hold answers 400 naming its field (jsonb would refuse the whole
# body with "value overflows numeric format").  And (item 10) API keys are
# compared in constant time.
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of callhq_defaults (t/CallHQ/Test.pm).

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test;

callhq_defaults(extra_http => 'callhq_webhooks off;');

# The exact error body the module sends (jansson, compact).
sub err {
    my ($status, $message) = @_;
    my %reason = (400 => 'Bad Request', 413 => 'Payload Too Large');
    $message =~ s/(["\\])/\\$1/g;
    return qq[{"statusCode":$status,"error":"$reason{$status}",]
           . qq["message":"$message"}];
}

# 3000 made-up session ids, each given as its own idAny=: 129 KB of query
# string that the parser once joined again for each (166 MB in all).
our $MANY_IDS = join '&', map {
    sprintf 'idAny=00000000-0000-4000-8000-%012d', $_
} 1 .. 3000;

# The API key of a request is compared with the keys a worker cached in
# constant time: the module calls CRYPTO_memcmp (timing itself is not
# asserted).
{
    my $so = $ENV{TEST_NGINX_LOAD_MODULES} // 'build/ngx_http_callhq_module.so';
    $so = 'build/ngx_http_callhq_module.so' unless -f $so;
    my $nm = `nm -D --undefined-only $so 2>/dev/null`;
    ok($nm =~ /\bCRYPTO_memcmp\b/,
       't/055-bounds.t - API keys are compared with CRYPTO_memcmp');
}

# Sessions of this file are named b055-*.
psql(q{delete from callhq.sessions where name like 'b055-%'});

END {
    eval { psql(q{delete from callhq.sessions where name like 'b055-%'}) };
}

run_tests();

__DATA__

=== TEST 1: a NUL byte in a query value: 400 naming the parameter
--- request
GET /session?name=a%00b
--- error_code: 400
--- response_body eval
::err(400, 'name must not contain a NUL byte (%00)')



=== TEST 2: a NUL byte in a query parameter's name: 400
--- request
GET /session?na%00me=x
--- error_code: 400
--- response_body eval
::err(400, 'a query parameter name must not contain a NUL byte (%00)')



=== TEST 3: a NUL byte in the second value of a repeated parameter: 400 naming it
--- request
GET /session?idAny=00000000-0000-4000-8000-000000000001&idAny=%00
--- error_code: 400
--- response_body eval
::err(400, 'idAny must not contain a NUL byte (%00)')



=== TEST 4: a repeated parameter reads its values joined, in order
--- request
GET /session?limit=1&limit=2
--- error_code: 400
--- response_body eval
::err(400, 'limit must be an integer between 1 and 1000')



=== TEST 5: a repeated idAny filters by every id given
--- request
GET /session?idAny=00000000-0000-4000-8000-000000000001&idAny=00000000-0000-4000-8000-000000000002,00000000-0000-4000-8000-000000000003&idAny=
--- error_code: 200
--- response_body_like eval
qr/\A\{"results": \[\], "metadata": \{.*"totalItems": 0[,}]/s



=== TEST 6: 3000 repeats of one parameter (129 KB of query string) are read once
--- config
large_client_header_buffers 4 256k;
location / { callhq_api; }
--- request eval
"GET /session?$::MANY_IDS"
--- error_code: 200
--- response_body_like eval
qr/\A\{"results": \[\], "metadata": \{.*"totalItems": 0[,}]/s



=== TEST 7: escapes: + is a blank, %2B a plus, a stray % stays (a session so named)
--- request
POST /session
{"name": "b055 x+y%zz%4"}
--- error_code: 201



=== TEST 8: ... is found by that name
--- request
GET /session?name=b055+x%2By%zz%4
--- error_code: 200
--- response_body_like eval
qr/\A\{"results": \[\{.*"name": "b055 x\+y%zz%4".*"totalItems": 1[,}]/s



=== TEST 9: a number beyond numeric's weight: 400 naming the field, not jsonb's message
--- request
POST /session
{"name": "b055-n1", "expirationSeconds": 1e131072}
--- error_code: 400
--- response_body eval
::err(400, 'expirationSeconds is a number out of range: at most 131072 digits before the decimal point and 16383 after')



=== TEST 10: a number with more than 16383 digits after the point: 400 naming the field
--- request
POST /assistant
{"name": "b055", "model": {"model": "echo", "temperature": 1.5e-16383}}
--- error_code: 400
--- response_body eval
::err(400, 'model.temperature is a number out of range: at most 131072 digits before the decimal point and 16383 after')



=== TEST 11: deep in arrays and objects, the path names each step
--- request
POST /session
{"name": "b055-n2", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b, \"c\"", "metadata": {"n": [1, {"x": 2}, -1e-20000]}}]}
--- error_code: 400
--- response_body eval
::err(400, 'messages[1].metadata.n[2] is a number out of range: at most 131072 digits before the decimal point and 16383 after')



=== TEST 12: a chat's body: the same
--- request
POST /chat
{"assistantId": "00000000-0000-4000-8000-000000000001", "input": "hi", "metadata": {"big": 1e200000}}
--- error_code: 400
--- response_body eval
::err(400, 'metadata.big is a number out of range: at most 131072 digits before the decimal point and 16383 after')



=== TEST 13: numbers at numeric's bounds are taken
--- request
POST /session
{"name": "b055-n3", "metadata": {"a": 1e131071, "b": 1e-16383, "c": 0e999999, "d": -0.5e-16382}}
--- error_code: 201
--- response_body_like eval
qr/"name": "b055-n3"/
