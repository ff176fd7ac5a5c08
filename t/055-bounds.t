# Bounds set by configuration, not by the client (issue 14, item 5): the
# query-string parser is linear however often a name repeats, and a NUL
# byte answers 400 naming the parameter; a number PostgreSQL's numeric
# cannot hold answers 400 naming its field (jsonb would refuse the whole
# body with "value overflows numeric format");
# assistantOverrides.variableValues are bounded in number and size
# (callhq_max_variables, callhq_max_variable_size), filled in once (never
# again: no value grows the prompts twice), and the prompts they fill by
# callhq_max_prompt_size, counted before they are built (a chat of a
# session with stored variables, in two statements, too); a page of GET
# /chat, GET /session and GET /assistant by callhq_max_list_size.  And
# (item 10) API keys are compared in constant time.
#
# Blocks without their own http_config, config, more_headers or
# no_error_log get the defaults of callhq_defaults (t/CallHQ/Test.pm).

use Test::Nginx::Socket 'no_plan';
use lib 't';
use CallHQ::Test;

callhq_defaults(config => api_location('/') . model_locations(),
                extra_http => 'callhq_webhooks off;');

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

# 65 variables, one over callhq_max_variables' default.
our $VARS65 = join ', ', map { qq["v$_": "x"] } 1 .. 65;

# Variables whose values name the next: v1 is "{{v2}}{{v2}}", ... v20 is
# "x".  Filled again and again, "{{v1}}" would grow to 2^19 x's; filled
# once, it is "{{v2}}{{v2}}".
our $CASCADE = join ', ', (map { my $n = $_ + 1; qq["v$_": "{{v$n}}{{v$n}}"] } 1 .. 19),
                          '"v20": "x"';

# An 8000-byte value for a prompt with 200 {{a}}: 1.6 MB filled.
our $BIG_A = 'y' x 8000;

# Sessions of this file are named b055-*; its assistants have ids
# 05500000-...
psql(q{
    delete from callhq.chats where assistant_id::text like '05500000-0000-4000-8000-%';
    delete from callhq.sessions where name like 'b055-%'
        or assistant_id::text like '05500000-0000-4000-8000-%';
    delete from callhq.assistants where id::text like '05500000-0000-4000-8000-%';

    insert into callhq.assistants (id, org_id, name, model)
    select v.id::uuid, k.org_id, v.name, v.model::jsonb
      from callhq.api_keys k,
           (values
            ('05500000-0000-4000-8000-000000000001', 'b055-cascade',
             '{"provider": "openai", "model": "echo",
               "messages": [{"role": "system", "content": "P {{v1}}"}]}'),
            ('05500000-0000-4000-8000-000000000002', 'b055-many',
             '{"provider": "openai", "model": "echo",
               "messages": [{"role": "system", "content": "'
             || repeat('{{a}}', 200) || '"}]}')) v(id, name, model)
     where k.key_hash = sha256('cq_test_a');

    -- b055-vars: a session of b055-many whose stored variables fill its
    -- prompts to 1200 bytes
    insert into callhq.sessions (id, org_id, assistant_id, name,
                                 assistant_overrides, expiration_seconds,
                                 expires_at)
    select '05500000-0000-4000-8000-000000000011', k.org_id,
           '05500000-0000-4000-8000-000000000002', 'b055-vars',
           '{"variableValues": {"a": "123456"}}', 86400,
           now() + interval '1 day'
      from callhq.api_keys k
     where k.key_hash = sha256('cq_test_a');
});

END {
    eval {
        psql(q{
            delete from callhq.chats where assistant_id::text like '05500000-0000-4000-8000-%';
            delete from callhq.sessions where name like 'b055-%'
                or assistant_id::text like '05500000-0000-4000-8000-%';
            delete from callhq.assistants where id::text like '05500000-0000-4000-8000-%';
        });
    };
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



=== TEST 14: 65 variables (callhq_max_variables 64): 400 before PostgreSQL sees them
--- request eval
"POST /session\n{\"name\": \"b055-v65\", \"assistantOverrides\": {\"variableValues\": {$::VARS65}}}"
--- error_code: 400
--- response_body eval
::err(400, 'assistantOverrides.variableValues has 65 variables, more than 64 (callhq_max_variables)')



=== TEST 15: a value of 9000 bytes (callhq_max_variable_size 8k): 400 naming it
--- request eval
"POST /chat\n{\"assistantId\": \"05500000-0000-4000-8000-000000000001\", \"input\": \"hi\", "
. "\"assistantOverrides\": {\"variableValues\": {\"small\": 1, \"big\": \"" . ('z' x 9000) . "\"}}}"
--- error_code: 400
--- response_body eval
::err(400, 'assistantOverrides.variableValues.big is 9002 bytes, more than 8192 (callhq_max_variable_size)')



=== TEST 16: the bounds are directives
--- config
location / {
    callhq_max_variables 2;
    callhq_max_variable_size 10;
    callhq_api;
}
--- request eval
["POST /session\n{\"name\": \"b055-v3\", \"assistantOverrides\": {\"variableValues\": {\"a\": 1, \"b\": 2, \"c\": 3}}}",
 "POST /session\n{\"name\": \"b055-v2\", \"assistantOverrides\": {\"variableValues\": {\"a\": 1, \"b\": \"0123456789\"}}}"]
--- error_code eval
[400, 400]
--- response_body eval
[::err(400, 'assistantOverrides.variableValues has 3 variables, more than 2 (callhq_max_variables)'),
 ::err(400, 'assistantOverrides.variableValues.b is 12 bytes, more than 10 (callhq_max_variable_size)')]



=== TEST 17: a value is filled in once, never filled again (20 variables that name the next)
--- request eval
"POST /chat\n{\"assistantId\": \"05500000-0000-4000-8000-000000000001\", \"input\": \"hi\", "
. "\"assistantOverrides\": {\"variableValues\": {$::CASCADE}}}"
--- error_code: 201
--- response_body_like eval
qr/"messages": \[\{"role":"system","content":"P \{\{v2\}\}\{\{v2\}\}"\},\{"role":"user","content":"hi"\}\]\}\z/



=== TEST 18: prompts that would fill to 1.6 MB (callhq_max_prompt_size 1m): 400, nothing built
--- request eval
"POST /chat\n{\"assistantId\": \"05500000-0000-4000-8000-000000000002\", \"input\": \"hi\", "
. "\"assistantOverrides\": {\"variableValues\": {\"a\": \"$::BIG_A\"}}}"
--- error_code: 400
--- response_body eval
::err(400, 'assistantOverrides.variableValues would make the system prompts 1600000 bytes, more than 1048576 (callhq_max_prompt_size)')



=== TEST 19: callhq_max_prompt_size is a directive
--- config eval
CallHQ::Test::api_location('/', 'callhq_max_prompt_size 1000;')
. CallHQ::Test::model_locations()
--- request
POST /chat
{"assistantId": "05500000-0000-4000-8000-000000000002", "input": "hi", "assistantOverrides": {"variableValues": {"a": "123456"}}}
--- error_code: 400
--- response_body eval
::err(400, 'assistantOverrides.variableValues would make the system prompts 1200 bytes, more than 1000 (callhq_max_prompt_size)')



=== TEST 20: within the bounds, variables fill the prompts
--- request
POST /chat
{"assistantId": "05500000-0000-4000-8000-000000000002", "input": "hi", "assistantOverrides": {"variableValues": {"a": "ab"}}}
--- error_code: 201
--- response_body_like eval
qr/"messages": \[\{"role":"system","content":"(?:ab){200}"\}/



=== TEST 21: a page of GET /chat past callhq_max_list_size: 400 naming limit
--- config eval
CallHQ::Test::api_location('/', 'callhq_max_list_size 500;')
--- request
GET /chat?assistantId=05500000-0000-4000-8000-000000000002&limit=10
--- error_code: 400
--- response_body eval
::err(400, 'limit: this page of chats is over 500 bytes (callhq_max_list_size) by its chat 1; ask for fewer')



=== TEST 22: within it, the page answers
--- request
GET /chat?assistantId=05500000-0000-4000-8000-000000000002&limit=10
--- error_code: 200
--- response_body_like eval
qr/\A\{"results": \[\{"id": "[0-9a-f-]{36}", .*"content":"(?:ab){200}".*\], "metadata": \{.*"totalItems": 1[,}]/s



=== TEST 23: a chat of a session with stored variables (two statements) is bounded by callhq_max_prompt_size too
--- config eval
CallHQ::Test::api_location('/', 'callhq_max_prompt_size 1000;')
. CallHQ::Test::model_locations()
--- request
POST /chat
{"sessionId": "05500000-0000-4000-8000-000000000011", "input": "hi"}
--- error_code: 400
--- response_body eval
::err(400, 'assistantOverrides.variableValues would make the system prompts 1200 bytes, more than 1000 (callhq_max_prompt_size)')



=== TEST 24: ... and within it, the session's variables fill the prompts
--- request
POST /chat
{"sessionId": "05500000-0000-4000-8000-000000000011", "input": "hi"}
--- error_code: 201
--- response_body_like eval
qr/"messages": \[\{"role":"system","content":"(?:123456){200}"\}/



=== TEST 25: a page of GET /session past callhq_max_list_size: 400 naming limit
--- config eval
CallHQ::Test::api_location('/', 'callhq_max_list_size 200;')
--- request
GET /session?name=b055-vars&limit=10
--- error_code: 400
--- response_body eval
::err(400, 'limit: this page of sessions is over 200 bytes (callhq_max_list_size) by its session 1; ask for fewer')



=== TEST 26: ... within it, the page answers
--- config eval
CallHQ::Test::api_location('/', 'callhq_max_list_size 2k;')
--- request
GET /session?name=b055-vars&limit=10
--- error_code: 200
--- response_body_like eval
qr/\A\{"results": \[\{"id": "05500000-0000-4000-8000-000000000011", .*\], "metadata": \{.*"totalItems": 1[,}]/s



=== TEST 27: a page of GET /assistant past callhq_max_list_size: 400 naming limit (b055-many's prompt is 1000 bytes)
--- config eval
CallHQ::Test::api_location('/', 'callhq_max_list_size 1000;')
--- request
GET /assistant?limit=1000
--- error_code: 400
--- response_body_like eval
qr/\A\Q{"statusCode":400,"error":"Bad Request","message":"limit: this page of assistants is over 1000 bytes (callhq_max_list_size) by its assistant \E\d+\Q; ask for fewer"}\E\z/



=== TEST 28: ... within it, the page answers, newest first
--- config eval
CallHQ::Test::api_location('/', 'callhq_max_list_size 8m;')
--- request
GET /assistant?limit=1000
--- error_code: 200
--- response_body_like eval
qr/\A\[\{.*"id": "05500000-0000-4000-8000-000000000002", .*"id": "05500000-0000-4000-8000-000000000001", .*\]\z/s
